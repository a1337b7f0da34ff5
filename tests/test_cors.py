"""CORS: simple requests, credentials, wildcards, preflights, blocked responses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask_rampart import SecurityConfig
from werkzeug.test import TestResponse

if TYPE_CHECKING:
    from conftest import RampartLog

AppFactory = Callable[..., Flask]

APP_ORIGIN = "https://app.example.com"
EVIL_ORIGIN = "https://evil.example.net"


def cors(**fields: Any) -> SecurityConfig:
    return SecurityConfig(enable_cors=True, **fields)


def get(
    app: Flask, origin: str | None, path: str = "/hello", ip: str = "198.51.100.7"
) -> TestResponse:
    headers = {} if origin is None else {"Origin": origin}
    return app.test_client().get(path, headers=headers, environ_base={"REMOTE_ADDR": ip})


def preflight(
    app: Flask,
    origin: str,
    method: str = "POST",
    request_headers: str | None = None,
    path: str = "/submit",
    ip: str = "198.51.100.7",
) -> TestResponse:
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if request_headers is not None:
        headers["Access-Control-Request-Headers"] = request_headers
    return app.test_client().options(path, headers=headers, environ_base={"REMOTE_ADDR": ip})


def csv(resp: TestResponse, name: str) -> list[str]:
    joined = ",".join(resp.headers.getlist(name))
    return [item.strip().lower() for item in joined.split(",") if item.strip()]


def cors_headers(resp: TestResponse) -> list[str]:
    return [k for k, _ in resp.headers.items() if k.lower().startswith("access-control-")]


def test_cors_off_by_default(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig())
    resp = get(app, APP_ORIGIN)
    assert resp.status_code == 200
    assert cors_headers(resp) == []


def test_allowed_origin_is_reflected_with_vary(make_app: AppFactory) -> None:
    app = make_app(cors(cors_allow_origins=[APP_ORIGIN]))
    resp = get(app, APP_ORIGIN)
    assert resp.status_code == 200
    assert resp.headers.getlist("Access-Control-Allow-Origin") == [APP_ORIGIN]
    assert "origin" in csv(resp, "Vary")
    assert "Access-Control-Allow-Credentials" not in resp.headers


def test_disallowed_origin_gets_no_cors_headers(make_app: AppFactory) -> None:
    app = make_app(cors(cors_allow_origins=[APP_ORIGIN], cors_expose_headers=["X-Trace"]))
    resp = get(app, EVIL_ORIGIN)
    assert resp.status_code == 200
    assert resp.data == b"hello"
    assert cors_headers(resp) == []


def test_request_without_origin_gets_no_allow_origin(make_app: AppFactory) -> None:
    app = make_app(cors(cors_allow_origins=[APP_ORIGIN]))
    resp = get(app, None)
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_wildcard_without_credentials_answers_star(make_app: AppFactory) -> None:
    app = make_app(cors())
    resp = get(app, EVIL_ORIGIN)
    assert resp.headers.getlist("Access-Control-Allow-Origin") == ["*"]
    assert "Access-Control-Allow-Credentials" not in resp.headers


def test_wildcard_with_credentials_answers_star_without_credentials(
    rampart_log: RampartLog, caplog: pytest.LogCaptureFixture, make_app: AppFactory
) -> None:
    app = make_app(cors(cors_allow_origins=["*"], cors_allow_credentials=True))
    # "logs a warning at start-up" (any logger; flask_rampart is the expected one)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("credential" in r.getMessage().lower() for r in warnings), [
        r.getMessage() for r in caplog.records
    ]
    resp = get(app, EVIL_ORIGIN)
    assert resp.headers.getlist("Access-Control-Allow-Origin") == ["*"]
    assert "Access-Control-Allow-Credentials" not in resp.headers
    pre = preflight(app, EVIL_ORIGIN)
    assert pre.status_code == 204
    assert pre.headers.getlist("Access-Control-Allow-Origin") == ["*"]
    assert "Access-Control-Allow-Credentials" not in pre.headers


def test_explicit_origin_with_credentials(make_app: AppFactory) -> None:
    app = make_app(cors(cors_allow_origins=[APP_ORIGIN], cors_allow_credentials=True))
    resp = get(app, APP_ORIGIN)
    assert resp.headers.getlist("Access-Control-Allow-Origin") == [APP_ORIGIN]
    assert resp.headers.getlist("Access-Control-Allow-Credentials") == ["true"]
    assert "origin" in csv(resp, "Vary")
    denied = get(app, EVIL_ORIGIN)
    assert cors_headers(denied) == []


def test_expose_headers(make_app: AppFactory) -> None:
    app = make_app(
        cors(
            cors_allow_origins=[APP_ORIGIN],
            cors_expose_headers=["X-Custom-Header", "X-Trace"],
        )
    )
    resp = get(app, APP_ORIGIN)
    assert set(csv(resp, "Access-Control-Expose-Headers")) == {
        "x-custom-header",
        "x-trace",
    }


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://a.example.com", True),
        ("https://deep.a.example.com", True),
        ("https://example.com.evil.net", False),
        ("https://evilexample.com", False),
        ("http://a.example.com", False),
        ("https://a.example.com.evil.net", False),
    ],
)
def test_subdomain_wildcard(make_app: AppFactory, origin: str, allowed: bool) -> None:
    app = make_app(cors(cors_allow_origins=["https://*.example.com"]))
    resp = get(app, origin)
    if allowed:
        assert resp.headers.getlist("Access-Control-Allow-Origin") == [origin]
        assert "origin" in csv(resp, "Vary")
    else:
        assert cors_headers(resp) == []


def test_preflight_is_answered_204(make_app: AppFactory) -> None:
    app = make_app(
        cors(
            cors_allow_origins=[APP_ORIGIN],
            cors_allow_methods=["GET", "POST"],
            cors_max_age=123,
        )
    )
    resp = preflight(app, APP_ORIGIN, "POST", "X-Requested-With, Content-Type")
    assert resp.status_code == 204
    assert resp.data == b""
    assert resp.headers.getlist("Access-Control-Allow-Origin") == [APP_ORIGIN]
    assert set(csv(resp, "Access-Control-Allow-Methods")) == {"get", "post"}
    assert resp.headers["Access-Control-Max-Age"] == "123"
    assert {"x-requested-with", "content-type"} <= set(csv(resp, "Access-Control-Allow-Headers"))


def test_preflight_default_max_age_and_methods(make_app: AppFactory) -> None:
    app = make_app(cors())
    resp = preflight(app, APP_ORIGIN, "DELETE", path="/hello")
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Max-Age"] == "600"
    assert set(csv(resp, "Access-Control-Allow-Methods")) == {
        "get",
        "post",
        "put",
        "patch",
        "delete",
        "options",
    }


def test_preflight_explicit_allowed_headers(make_app: AppFactory) -> None:
    app = make_app(cors(cors_allow_headers=["Content-Type", "X-Api-Key"]))
    resp = preflight(app, APP_ORIGIN, "POST", "X-Api-Key")
    assert resp.status_code == 204
    assert set(csv(resp, "Access-Control-Allow-Headers")) == {
        "content-type",
        "x-api-key",
    }


def test_preflight_from_disallowed_origin_goes_to_the_app(make_app: AppFactory) -> None:
    app = make_app(cors(cors_allow_origins=[APP_ORIGIN]))
    resp = preflight(app, EVIL_ORIGIN)
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert cors_headers(resp) == []
    # Flask's automatic OPTIONS answer, not Rampart's 204
    assert resp.status_code == 200
    assert "POST" in resp.headers.get("Allow", "")


def test_preflight_for_disallowed_method_is_not_answered(make_app: AppFactory) -> None:
    app = make_app(cors(cors_allow_origins=[APP_ORIGIN], cors_allow_methods=["GET"]))
    resp = preflight(app, APP_ORIGIN, "DELETE")
    assert resp.status_code != 204
    assert cors_headers(resp) == []


def test_preflight_from_blacklisted_ip_is_refused(make_app: AppFactory) -> None:
    app = make_app(cors(cors_allow_origins=[APP_ORIGIN], blacklist=["203.0.113.5"]))
    resp = preflight(app, APP_ORIGIN, ip="203.0.113.5")
    assert resp.status_code == 403
    assert resp.data == b"Forbidden"
    ok = preflight(app, APP_ORIGIN)
    assert ok.status_code == 204


def test_preflight_from_blocked_user_agent_is_refused(make_app: AppFactory) -> None:
    app = make_app(cors(blocked_user_agents=["curl"]))
    resp = app.test_client().options(
        "/hello",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "User-Agent": "curl/8",
        },
    )
    assert resp.status_code == 403


def test_plain_options_without_preflight_headers_goes_to_the_app(
    make_app: AppFactory,
) -> None:
    app = make_app(cors(cors_allow_origins=[APP_ORIGIN]))
    resp = app.test_client().options("/submit", headers={"Origin": APP_ORIGIN})
    assert resp.status_code == 200
    assert "POST" in resp.headers.get("Allow", "")


def test_blocked_response_carries_cors_headers(make_app: AppFactory) -> None:
    app = make_app(cors(cors_allow_origins=[APP_ORIGIN], blacklist=["203.0.113.5"]))
    resp = get(app, APP_ORIGIN, ip="203.0.113.5")
    assert resp.status_code == 403
    assert resp.data == b"Forbidden"
    assert resp.headers.getlist("Access-Control-Allow-Origin") == [APP_ORIGIN]
    evil = get(app, EVIL_ORIGIN, ip="203.0.113.5")
    assert evil.status_code == 403
    assert cors_headers(evil) == []


def test_excluded_path_carries_cors_headers(make_app: AppFactory) -> None:
    app = make_app(cors(cors_allow_origins=[APP_ORIGIN]))
    resp = get(app, APP_ORIGIN, path="/static/x")
    assert resp.status_code == 200
    assert resp.headers.getlist("Access-Control-Allow-Origin") == [APP_ORIGIN]


def test_cors_works_with_security_headers_off(make_app: AppFactory) -> None:
    app = make_app(cors(cors_allow_origins=[APP_ORIGIN], security_headers={"enabled": False}))
    resp = get(app, APP_ORIGIN)
    assert resp.headers.getlist("Access-Control-Allow-Origin") == [APP_ORIGIN]
    assert "X-Frame-Options" not in resp.headers
