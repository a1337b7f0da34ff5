"""The Flask extension object: construction, app factories, app.extensions, RAMPART_* config."""

from __future__ import annotations

from collections.abc import Callable

import flask_rampart
import pytest
from flask import Flask, current_app
from flask_rampart import ConfigError, FlaskAPIGuard, Rampart, SecurityConfig

BAD = "203.0.113.5"
GOOD = "198.51.100.7"


def peer(ip: str) -> dict[str, str]:
    return {"REMOTE_ADDR": ip}


def bare_app() -> Flask:
    app = Flask("rampart_bare_app", static_folder=None)
    app.config["TESTING"] = True

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    @app.get("/ip")
    def ip() -> str:
        return str(current_app.extensions["rampart"].extension.client_ip())

    return app


def test_constructor_with_app_protects_it() -> None:
    app = bare_app()
    Rampart(app, config=SecurityConfig(blacklist=[BAD]))
    client = app.test_client()
    assert client.get("/hello", environ_base=peer(BAD)).status_code == 403
    resp = client.get("/hello", environ_base=peer(GOOD))
    assert resp.status_code == 200
    assert resp.data == b"hello"


def test_app_factory_init_app() -> None:
    rampart = Rampart()

    def create_app() -> Flask:
        app = bare_app()
        rampart.init_app(app, config=SecurityConfig(blacklist=[BAD]))
        return app

    app = create_app()
    client = app.test_client()
    assert client.get("/hello", environ_base=peer(BAD)).status_code == 403
    assert client.get("/hello", environ_base=peer(GOOD)).status_code == 200
    assert app.extensions["rampart"].extension is rampart


def test_constructor_config_used_by_init_app() -> None:
    rampart = Rampart(config=SecurityConfig(blacklist=[BAD]))
    app = bare_app()
    rampart.init_app(app)
    assert app.test_client().get("/hello", environ_base=peer(BAD)).status_code == 403


def test_init_app_without_any_config_uses_defaults() -> None:
    app = bare_app()
    Rampart(app)
    resp = app.test_client().get("/hello", environ_base=peer(BAD))
    assert resp.status_code == 200
    # defaults are active: security headers are added
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    state = app.extensions["rampart"]
    assert state.config.exclude_paths == SecurityConfig().exclude_paths


def test_two_apps_in_one_process_do_not_interfere() -> None:
    app_a, app_b = bare_app(), bare_app()
    Rampart(app_a, config=SecurityConfig(blacklist=["10.0.0.1"]))
    Rampart(app_b, config=SecurityConfig(blacklist=["10.0.0.2"]))
    a, b = app_a.test_client(), app_b.test_client()

    assert a.get("/hello", environ_base=peer("10.0.0.1")).status_code == 403
    assert a.get("/hello", environ_base=peer("10.0.0.2")).status_code == 200
    assert b.get("/hello", environ_base=peer("10.0.0.1")).status_code == 200
    assert b.get("/hello", environ_base=peer("10.0.0.2")).status_code == 403
    # and again in the other order, to catch state leaking from the last-initialised app
    assert a.get("/hello", environ_base=peer("10.0.0.1")).status_code == 403
    assert b.get("/hello", environ_base=peer("10.0.0.1")).status_code == 200

    assert app_a.extensions["rampart"].config.blacklist == ["10.0.0.1"]
    assert app_b.extensions["rampart"].config.blacklist == ["10.0.0.2"]


def test_one_extension_instance_two_apps_with_different_configs() -> None:
    rampart = Rampart()
    app_a, app_b = bare_app(), bare_app()
    rampart.init_app(app_a, config=SecurityConfig(blacklist=["10.0.0.1"]))
    rampart.init_app(app_b, config=SecurityConfig(whitelist=["10.0.0.1"]))
    a, b = app_a.test_client(), app_b.test_client()

    assert a.get("/hello", environ_base=peer("10.0.0.1")).status_code == 403
    assert a.get("/hello", environ_base=peer("10.0.0.9")).status_code == 200
    assert b.get("/hello", environ_base=peer("10.0.0.1")).status_code == 200
    assert b.get("/hello", environ_base=peer("10.0.0.9")).status_code == 403
    # client_ip() on the shared instance resolves against the current app
    assert a.get("/ip", environ_base=peer("10.0.0.9")).data == b"10.0.0.9"
    assert b.get("/ip", environ_base=peer("10.0.0.1")).data == b"10.0.0.1"


def test_app_extensions_state() -> None:
    app = bare_app()
    config = SecurityConfig(blacklist=[BAD])
    rampart = Rampart(app, config=config)
    state = app.extensions["rampart"]
    assert state.extension is rampart
    assert state.engine is not None
    assert isinstance(state.config, SecurityConfig)
    assert state.config.blacklist == [BAD]


def test_flaskapi_guard_alias() -> None:
    assert FlaskAPIGuard is Rampart
    app = bare_app()
    FlaskAPIGuard(app, config=SecurityConfig(blacklist=[BAD]))
    assert app.test_client().get("/hello", environ_base=peer(BAD)).status_code == 403


def test_rampart_config_keys_are_merged_with_explicit_config() -> None:
    app = bare_app()
    app.config["RAMPART_BLOCKED_USER_AGENTS"] = ["sqlmap", "nikto"]
    Rampart(app, config=SecurityConfig(blacklist=[BAD]))
    client = app.test_client()

    effective = app.extensions["rampart"].config
    assert effective.blocked_user_agents == ["sqlmap", "nikto"]
    assert effective.blacklist == [BAD]
    resp = client.get("/hello", environ_base=peer(GOOD), headers={"User-Agent": "sqlmap/1.7"})
    assert resp.status_code == 403
    assert resp.data == b"User-Agent not allowed"
    assert client.get("/hello", environ_base=peer(BAD)).status_code == 403
    assert client.get("/hello", environ_base=peer(GOOD)).status_code == 200


def test_rampart_config_keys_alone_configure_the_extension() -> None:
    app = bare_app()
    app.config["RAMPART_BLACKLIST"] = [BAD]
    Rampart(app)
    assert app.test_client().get("/hello", environ_base=peer(BAD)).status_code == 403
    assert app.extensions["rampart"].config.blacklist == [BAD]


def test_explicit_config_wins_over_app_config() -> None:
    app = bare_app()
    app.config["RAMPART_BLACKLIST"] = [GOOD]
    Rampart(app, config=SecurityConfig(blacklist=[BAD]))
    client = app.test_client()
    assert client.get("/hello", environ_base=peer(BAD)).status_code == 403
    assert client.get("/hello", environ_base=peer(GOOD)).status_code == 200
    assert app.extensions["rampart"].config.blacklist == [BAD]


def test_explicit_value_equal_to_default_still_wins() -> None:
    """An explicitly passed field wins even when it equals the default."""
    app = bare_app()
    app.config["RAMPART_PASSIVE_MODE"] = True
    Rampart(app, config=SecurityConfig(blacklist=[BAD], passive_mode=False))
    assert app.extensions["rampart"].config.passive_mode is False
    assert app.test_client().get("/hello", environ_base=peer(BAD)).status_code == 403


def test_app_config_wins_over_default() -> None:
    app = bare_app()
    app.config["RAMPART_PASSIVE_MODE"] = True
    Rampart(app, config=SecurityConfig(blacklist=[BAD]))
    assert app.extensions["rampart"].config.passive_mode is True
    assert app.test_client().get("/hello", environ_base=peer(BAD)).status_code == 200


def test_non_rampart_app_config_keys_are_ignored() -> None:
    app = bare_app()
    app.config["SECRET_KEY"] = "x"
    app.config["RAMPARTISH"] = "not ours"
    Rampart(app)
    assert app.test_client().get("/hello").status_code == 200


def test_unknown_rampart_key_is_a_config_error_at_init_app() -> None:
    app = bare_app()
    app.config["RAMPART_RATE_LIMT"] = 5
    with pytest.raises(ConfigError) as excinfo:
        Rampart(app)
    text = " ".join(f"{field} {message}" for field, message in excinfo.value.errors).lower()
    assert "rate_limt" in text


def test_invalid_rampart_value_is_a_config_error_at_init_app() -> None:
    app = bare_app()
    app.config["RAMPART_BLACKLIST"] = ["10.0.0.300"]
    app.config["RAMPART_TRUSTED_PROXY_DEPTH"] = 0
    with pytest.raises(ConfigError) as excinfo:
        Rampart(app)
    fields = [field for field, _ in excinfo.value.errors]
    assert any(f.startswith("blacklist") for f in fields)
    assert "trusted_proxy_depth" in fields


def test_a_bad_field_in_app_config_is_a_config_error() -> None:
    app = bare_app()
    app.config["RAMPART_BLOCKED_COUNTRIES"] = ["CN"]
    with pytest.raises(ConfigError) as excinfo:
        Rampart(app)
    assert "blocked_countries" in [field for field, _ in excinfo.value.errors]


def test_rate_limit_from_app_config_applies() -> None:
    app = bare_app()
    app.config["RAMPART_RATE_LIMIT"] = 2
    Rampart(app)
    client = app.test_client()
    assert [client.get("/hello").status_code for _ in range(3)] == [200, 200, 429]


def test_init_twice_on_the_same_app_raises() -> None:
    app = bare_app()
    rampart = Rampart(app, config=SecurityConfig())
    with pytest.raises(RuntimeError):
        rampart.init_app(app)
    with pytest.raises(RuntimeError):
        Rampart(app)
    # the first registration is intact
    assert app.extensions["rampart"].extension is rampart
    assert app.test_client().get("/hello").status_code == 200


def test_version_is_a_string() -> None:
    assert isinstance(flask_rampart.__version__, str)
    assert flask_rampart.__version__


def test_conftest_factory_builds_a_protected_app(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(SecurityConfig(blacklist=[BAD]))
    client = app.test_client()
    assert client.get("/", environ_base=peer(BAD)).status_code == 403
    assert client.get("/", environ_base=peer(GOOD)).data == b"index"
    assert client.post("/submit", data="abc", environ_base=peer(GOOD)).data == b"submitted:abc"
