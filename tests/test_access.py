"""Access control end to end: IP lists, proxies, user agents, excluded paths, modes, HTTPS."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from flask_rampart import SecurityConfig
from werkzeug.test import TestResponse

if TYPE_CHECKING:
    from conftest import RampartLog

AppFactory = Callable[..., Flask]


def get(
    app: Flask,
    path: str = "/hello",
    ip: str | None = "198.51.100.7",
    headers: dict[str, str] | None = None,
    **kwargs: object,
) -> TestResponse:
    client = app.test_client()
    environ = {} if ip is None else {"REMOTE_ADDR": ip}
    return client.get(path, environ_base=environ, headers=headers or {}, **kwargs)


def is_plain_text(resp: TestResponse) -> bool:
    return resp.mimetype == "text/plain" and resp.mimetype_params.get("charset", "").lower() in (
        "utf-8",
        "utf8",
    )


# --------------------------------------------------------------------------- blacklist


@pytest.mark.parametrize(
    ("entry", "blocked", "allowed"),
    [
        pytest.param("203.0.113.5", "203.0.113.5", "203.0.113.6", id="ipv4"),
        pytest.param("198.51.100.0/24", "198.51.100.77", "198.51.101.1", id="ipv4-cidr"),
        pytest.param("2001:db8::2", "2001:db8::2", "2001:db8::3", id="ipv6"),
        pytest.param(
            "2001:db8:abcd::/48",
            "2001:db8:abcd:12::1",
            "2001:db8:abce::1",
            id="v6-cidr",
        ),
    ],
)
def test_blacklist_blocks_with_403_forbidden(
    make_app: AppFactory, entry: str, blocked: str, allowed: str
) -> None:
    app = make_app(SecurityConfig(blacklist=[entry]))
    resp = get(app, ip=blocked)
    assert resp.status_code == 403
    assert resp.data == b"Forbidden"
    assert is_plain_text(resp)

    ok = get(app, ip=allowed)
    assert ok.status_code == 200
    assert ok.data == b"hello"


def test_ipv6_notation_is_normalised(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["2001:db8::2"]))
    assert get(app, ip="2001:0db8:0000:0000:0000:0000:0000:0002").status_code == 403


def test_blacklist_applies_to_every_method_and_route(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.5"]))
    client = app.test_client()
    env = {"REMOTE_ADDR": "203.0.113.5"}
    assert client.post("/submit", data="x", environ_base=env).status_code == 403
    assert client.get("/admin", environ_base=env).status_code == 403
    # even a route that does not exist: the engine decides before routing
    assert client.get("/does-not-exist", environ_base=env).status_code == 403


# --------------------------------------------------------------------------- whitelist


def test_whitelist_only_listed_clients_pass(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(whitelist=["192.168.1.0/24", "2001:db8::1"]))
    assert get(app, ip="192.168.1.5").status_code == 200
    assert get(app, ip="2001:db8::1").status_code == 200
    denied = get(app, ip="10.0.0.1")
    assert denied.status_code == 403
    assert denied.data == b"Forbidden"
    assert get(app, ip="2001:db8::2").status_code == 403


@pytest.mark.parametrize("whitelist", [None, []], ids=["none", "empty"])
def test_empty_or_missing_whitelist_allows_everyone(
    make_app: AppFactory, whitelist: list[str] | None
) -> None:
    app = make_app(SecurityConfig(whitelist=whitelist))
    assert get(app, ip="10.0.0.1").status_code == 200
    assert get(app, ip="2001:db8::99").status_code == 200


def test_blacklist_beats_whitelist(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(whitelist=["192.168.1.0/24"], blacklist=["192.168.1.5"]))
    assert get(app, ip="192.168.1.5").status_code == 403
    assert get(app, ip="192.168.1.6").status_code == 200


# --------------------------------------------------------------------------- client IP


def test_without_trusted_proxies_spoofed_xff_changes_nothing(
    make_app: AppFactory,
) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.9"]))
    resp = get(app, ip="198.51.100.1", headers={"X-Forwarded-For": "203.0.113.9"})
    assert resp.status_code == 200
    ip = get(app, "/ip", ip="198.51.100.1", headers={"X-Forwarded-For": "203.0.113.9"})
    assert ip.data == b"198.51.100.1"
    # and a blacklisted peer cannot hide behind a forged header
    app2 = make_app(SecurityConfig(blacklist=["198.51.100.1"]))
    assert get(app2, ip="198.51.100.1", headers={"X-Forwarded-For": "8.8.8.8"}).status_code == 403


def test_untrusted_peer_xff_is_ignored(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(trusted_proxies=["10.0.0.1"], blacklist=["203.0.113.9"]))
    headers = {"X-Forwarded-For": "203.0.113.9"}
    assert get(app, ip="10.0.0.2", headers=headers).status_code == 200
    assert get(app, "/ip", ip="10.0.0.2", headers=headers).data == b"10.0.0.2"


def test_trusted_proxy_depth_1_uses_the_rightmost_entry(make_app: AppFactory) -> None:
    headers = {"X-Forwarded-For": "1.1.1.1, 203.0.113.9"}
    app = make_app(SecurityConfig(trusted_proxies=["10.0.0.0/8"], trusted_proxy_depth=1))
    assert get(app, "/ip", ip="10.0.0.1", headers=headers).data == b"203.0.113.9"

    blocks_client = make_app(
        SecurityConfig(trusted_proxies=["10.0.0.0/8"], blacklist=["203.0.113.9"])
    )
    assert get(blocks_client, ip="10.0.0.1", headers=headers).status_code == 403

    # the client-controlled leftmost entry is not trusted
    blocks_spoof = make_app(SecurityConfig(trusted_proxies=["10.0.0.0/8"], blacklist=["1.1.1.1"]))
    assert get(blocks_spoof, ip="10.0.0.1", headers=headers).status_code == 200

    # nor is the proxy itself treated as the client
    blocks_proxy = make_app(SecurityConfig(trusted_proxies=["10.0.0.0/8"], blacklist=["10.0.0.1"]))
    assert get(blocks_proxy, ip="10.0.0.1", headers=headers).status_code == 200


def test_trusted_proxy_depth_2_uses_the_second_entry_from_the_right(
    make_app: AppFactory,
) -> None:
    headers = {"X-Forwarded-For": "1.1.1.1, 203.0.113.9, 10.0.0.2"}
    app = make_app(SecurityConfig(trusted_proxies=["10.0.0.0/8"], trusted_proxy_depth=2))
    assert get(app, "/ip", ip="10.0.0.1", headers=headers).data == b"203.0.113.9"
    blocking = make_app(
        SecurityConfig(
            trusted_proxies=["10.0.0.0/8"],
            trusted_proxy_depth=2,
            blacklist=["203.0.113.9"],
        )
    )
    assert get(blocking, ip="10.0.0.1", headers=headers).status_code == 403


def test_short_xff_uses_the_leftmost_entry(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(trusted_proxies=["10.0.0.0/8"], trusted_proxy_depth=3))
    headers = {"X-Forwarded-For": "203.0.113.9, 10.0.0.2"}
    assert get(app, "/ip", ip="10.0.0.1", headers=headers).data == b"203.0.113.9"


@pytest.mark.parametrize(
    "xff",
    ["garbage", "1.1.1.1, not-an-ip", "1.1.1.1, 203.0.113.300", ""],
    ids=["garbage", "bad-rightmost", "bad-octet", "empty"],
)
def test_malformed_xff_falls_back_to_the_peer(make_app: AppFactory, xff: str) -> None:
    app = make_app(SecurityConfig(trusted_proxies=["10.0.0.0/8"], blacklist=["10.0.0.1"]))
    headers = {"X-Forwarded-For": xff}
    assert get(app, "/ip", ip="10.0.0.1", headers=headers).status_code == 403
    app2 = make_app(SecurityConfig(trusted_proxies=["10.0.0.0/8"]))
    assert get(app2, "/ip", ip="10.0.0.1", headers=headers).data == b"10.0.0.1"


def test_ipv4_mapped_ipv6_peer_matches_ipv4_blacklist(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["10.0.0.1"]))
    resp = get(app, ip="::ffff:10.0.0.1")
    assert resp.status_code == 403
    assert resp.data == b"Forbidden"
    assert get(app, ip="::ffff:10.0.0.2").status_code == 200


def test_ipv4_mapped_peer_matches_ipv4_cidr_and_whitelist(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(whitelist=["10.0.0.0/24"]))
    assert get(app, ip="::ffff:10.0.0.7").status_code == 200
    assert get(app, ip="::ffff:10.0.1.7").status_code == 403


def test_client_ip_of_ipv4_mapped_peer_is_the_ipv4_address(
    make_app: AppFactory,
) -> None:
    app = make_app(SecurityConfig())
    assert get(app, "/ip", ip="::ffff:10.0.0.1").data == b"10.0.0.1"


def test_client_ip_without_proxies_is_the_peer(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig())
    assert get(app, "/ip", ip="203.0.113.50").data == b"203.0.113.50"
    assert get(app, "/ip", ip="2001:db8::5").data == b"2001:db8::5"


# --------------------------------------------------------------------------- missing peer


def _client_without_peer(app: Flask, garbage: str | None) -> TestResponse:
    client = app.test_client()
    client.environ_base.pop("REMOTE_ADDR", None)
    environ = {} if garbage is None else {"REMOTE_ADDR": garbage}
    return client.get("/hello", environ_base=environ)


@pytest.mark.parametrize(
    "remote_addr", [None, "not-an-ip", ""], ids=["missing", "garbage", "empty"]
)
def test_unknown_peer_passes_blacklist(make_app: AppFactory, remote_addr: str | None) -> None:
    app = make_app(SecurityConfig(blacklist=["10.0.0.0/8"]))
    resp = _client_without_peer(app, remote_addr)
    assert resp.status_code == 200
    assert resp.data == b"hello"


@pytest.mark.parametrize(
    "remote_addr", [None, "not-an-ip", ""], ids=["missing", "garbage", "empty"]
)
def test_unknown_peer_fails_whitelist(make_app: AppFactory, remote_addr: str | None) -> None:
    app = make_app(SecurityConfig(whitelist=["10.0.0.0/8"]))
    resp = _client_without_peer(app, remote_addr)
    assert resp.status_code == 403
    assert resp.data == b"Forbidden"


@pytest.mark.parametrize("remote_addr", [None, "not-an-ip"], ids=["missing", "garbage"])
def test_unknown_peer_fails_emergency_mode(make_app: AppFactory, remote_addr: str | None) -> None:
    app = make_app(SecurityConfig(emergency_mode=True, emergency_whitelist=["10.0.0.0/8"]))
    assert _client_without_peer(app, remote_addr).status_code == 503


def test_client_ip_is_none_without_peer(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig())
    client = app.test_client()
    client.environ_base.pop("REMOTE_ADDR", None)
    resp = client.get("/ip")
    assert resp.status_code == 200
    assert resp.data == b"None"


# --------------------------------------------------------------------------- user agents


@pytest.mark.parametrize(
    "ua",
    [
        "curl/8.0",
        "CURL/7.1",
        "Mozilla/5.0 (compatible; Curl-ish)",
        "python-requests/2.31",
    ],
)
def test_blocked_user_agents_case_insensitive_search(make_app: AppFactory, ua: str) -> None:
    app = make_app(SecurityConfig(blocked_user_agents=["curl", r"python-requests/\d+"]))
    resp = get(app, headers={"User-Agent": ua})
    assert resp.status_code == 403
    assert resp.data == b"User-Agent not allowed"
    assert is_plain_text(resp)


@pytest.mark.parametrize("ua", ["Mozilla/5.0", "python-requests/x", "cur l"])
def test_other_user_agents_pass(make_app: AppFactory, ua: str) -> None:
    app = make_app(SecurityConfig(blocked_user_agents=["curl", r"python-requests/\d+"]))
    resp = get(app, headers={"User-Agent": ua})
    assert resp.status_code == 200


def test_request_without_user_agent_is_not_blocked(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blocked_user_agents=[".*", "curl"]))
    client = app.test_client()
    client.environ_base.pop("HTTP_USER_AGENT", None)
    resp = client.get("/hello", environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert resp.status_code == 200
    # the same app does block when a UA is present
    assert get(app, headers={"User-Agent": "curl/8"}).status_code == 403


def test_anchored_user_agent_pattern(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blocked_user_agents=["^bot$"]))
    assert get(app, headers={"User-Agent": "BOT"}).status_code == 403
    assert get(app, headers={"User-Agent": "robot"}).status_code == 200


# --------------------------------------------------------------------------- excluded paths


def test_default_excluded_paths_skip_checks(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.5"]))
    static = get(app, "/static/x", ip="203.0.113.5")
    assert static.status_code == 200
    assert static.data == b"static x"
    assert get(app, "/docs", ip="203.0.113.5").status_code == 200
    assert get(app, "/hello", ip="203.0.113.5").status_code == 403


def test_exclusion_is_a_path_segment_prefix(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.5"]))
    assert get(app, "/staticfoo", ip="203.0.113.5").status_code == 403
    assert get(app, "/docsfoo", ip="203.0.113.5").status_code == 403


def test_custom_exclude_paths_replace_the_defaults(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.5"], exclude_paths=["/admin"]))
    assert get(app, "/admin", ip="203.0.113.5").status_code == 200
    assert get(app, "/docs", ip="203.0.113.5").status_code == 403


def test_excluded_paths_skip_user_agent_and_whitelist(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(whitelist=["10.0.0.1"], blocked_user_agents=["curl"]))
    resp = get(app, "/static/x", ip="203.0.113.5", headers={"User-Agent": "curl/8"})
    assert resp.status_code == 200


# --------------------------------------------------------------------------- emergency mode


def test_emergency_mode_refuses_everyone_but_the_emergency_whitelist(
    make_app: AppFactory,
) -> None:
    app = make_app(
        SecurityConfig(emergency_mode=True, emergency_whitelist=["10.0.0.0/24", "2001:db8::1"])
    )
    resp = get(app, ip="198.51.100.7")
    assert resp.status_code == 503
    assert resp.data == b"Service temporarily unavailable"
    assert is_plain_text(resp)
    assert get(app, ip="10.0.0.42").status_code == 200
    assert get(app, ip="2001:db8::1").status_code == 200
    assert get(app, ip="10.0.1.1").status_code == 503


def test_emergency_mode_comes_before_the_blacklist(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(emergency_mode=True, blacklist=["198.51.100.7"]))
    assert get(app, ip="198.51.100.7").status_code == 503


def test_emergency_whitelisted_client_still_faces_the_blacklist(
    make_app: AppFactory,
) -> None:
    app = make_app(
        SecurityConfig(
            emergency_mode=True,
            emergency_whitelist=["10.0.0.0/24"],
            blacklist=["10.0.0.5"],
        )
    )
    assert get(app, ip="10.0.0.5").status_code == 403
    assert get(app, ip="10.0.0.6").status_code == 200


def test_excluded_paths_pass_in_emergency_mode(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(emergency_mode=True))
    assert get(app, "/static/x").status_code == 200


# --------------------------------------------------------------------------- passive mode


def test_passive_mode_logs_but_does_not_block(
    rampart_log: RampartLog, make_app: AppFactory
) -> None:
    app = make_app(SecurityConfig(passive_mode=True, blacklist=["203.0.113.5"]))
    resp = get(app, ip="203.0.113.5")
    assert resp.status_code == 200
    assert resp.data == b"hello"
    events = rampart_log.event_dicts
    assert events, "passive mode must still log the event"
    passive = [e for e in events if e["event.outcome"] == "passive"]
    assert passive
    assert passive[0]["source.ip"] == "203.0.113.5"
    assert passive[0]["url.path"] == "/hello"
    assert not [e for e in events if e["event.outcome"] == "blocked"]


def test_passive_mode_covers_user_agents_and_whitelist(
    rampart_log: RampartLog, make_app: AppFactory
) -> None:
    app = make_app(
        SecurityConfig(passive_mode=True, whitelist=["10.0.0.1"], blocked_user_agents=["curl"])
    )
    resp = get(app, ip="203.0.113.5", headers={"User-Agent": "curl/8"})
    assert resp.status_code == 200
    outcomes = {e["event.outcome"] for e in rampart_log.event_dicts}
    assert outcomes == {"passive"}


# --------------------------------------------------------------------------- HTTPS


def test_enforce_https_redirects_plain_http(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(enforce_https=True))
    resp = get(app, "/hello?q=1")
    assert resp.status_code == 301
    assert resp.headers["Location"] == "https://localhost/hello?q=1"
    assert resp.data == b""


def test_enforce_https_keeps_the_host_and_path(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(enforce_https=True))
    client = app.test_client()
    resp = client.get("/admin?a=1&b=two", base_url="http://example.org")
    assert resp.status_code == 301
    assert resp.headers["Location"] == "https://example.org/admin?a=1&b=two"


def test_https_request_passes(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(enforce_https=True))
    resp = app.test_client().get("/hello?q=1", base_url="https://localhost")
    assert resp.status_code == 200
    assert resp.data == b"hello"


def test_trusted_proxy_forwarded_proto_https_passes(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(enforce_https=True, trusted_proxies=["10.0.0.1"]))
    resp = get(app, ip="10.0.0.1", headers={"X-Forwarded-Proto": "https"})
    assert resp.status_code == 200
    plain = get(app, ip="10.0.0.1", headers={"X-Forwarded-Proto": "http"})
    assert plain.status_code == 301


def test_untrusted_forwarded_proto_is_ignored(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(enforce_https=True, trusted_proxies=["10.0.0.1"]))
    resp = get(app, ip="10.0.0.2", headers={"X-Forwarded-Proto": "https"})
    assert resp.status_code == 301


def test_forwarded_proto_ignored_when_not_trusted_by_config(
    make_app: AppFactory,
) -> None:
    app = make_app(
        SecurityConfig(
            enforce_https=True,
            trusted_proxies=["10.0.0.1"],
            trust_x_forwarded_proto=False,
        )
    )
    resp = get(app, ip="10.0.0.1", headers={"X-Forwarded-Proto": "https"})
    assert resp.status_code == 301


def test_https_redirect_comes_before_the_blacklist(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(enforce_https=True, blacklist=["203.0.113.5"]))
    assert get(app, ip="203.0.113.5").status_code == 301
    https = app.test_client().get(
        "/hello",
        base_url="https://localhost",
        environ_base={"REMOTE_ADDR": "203.0.113.5"},
    )
    assert https.status_code == 403


# --------------------------------------------------------------------------- error bodies


def test_custom_error_responses_replace_the_body(make_app: AppFactory) -> None:
    app = make_app(
        SecurityConfig(
            blacklist=["203.0.113.5"],
            blocked_user_agents=["curl"],
            custom_error_responses={403: "Go away"},
        )
    )
    resp = get(app, ip="203.0.113.5")
    assert resp.status_code == 403
    assert resp.data == b"Go away"
    ua = get(app, headers={"User-Agent": "curl/8"})
    assert ua.status_code == 403
    assert ua.data == b"Go away"


def test_custom_error_responses_only_for_their_status(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(emergency_mode=True, custom_error_responses={403: "Go away"}))
    resp = get(app)
    assert resp.status_code == 503
    assert resp.data == b"Service temporarily unavailable"


def test_custom_error_responses_for_503(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(emergency_mode=True, custom_error_responses={503: "Later"}))
    resp = get(app)
    assert resp.status_code == 503
    assert resp.data == b"Later"


def test_exclusion_matches_the_prefix_itself(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.5"]))
    # no /static route exists: an excluded path reaches Flask (404), a checked one gets 403
    assert get(app, "/static", ip="203.0.113.5").status_code == 404
    assert get(app, "/static/", ip="203.0.113.5").status_code == 404
    assert get(app, "/static/deep/file.css", ip="203.0.113.5").status_code == 404


def test_excluded_paths_skip_https_redirect(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(enforce_https=True))
    assert get(app, "/static/x").status_code == 200
    assert get(app, "/hello").status_code == 301


def test_blocked_head_request_has_headers_but_no_body(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["198.51.100.7"]))
    resp = app.test_client().head("/hello", environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert resp.status_code == 403
    assert resp.data == b""
    assert resp.headers["Content-Length"] == "9"
    assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_malformed_request_values_get_a_decision(make_app: AppFactory) -> None:
    app = make_app(
        SecurityConfig(
            trusted_proxies=["10.0.0.0/8"],
            blocked_user_agents=["curl"],
            enable_cors=True,
            enforce_https=True,
        )
    )
    client = app.test_client()
    weird = {
        "REMOTE_ADDR": "10.0.0.1",
        "HTTP_X_FORWARDED_FOR": "\x00, [::1, 999.1.1.1, ,",
        "HTTP_X_FORWARDED_PROTO": "https, \udcff",
        "HTTP_USER_AGENT": "\udcff" * 3,
        "HTTP_ORIGIN": "\x7f://",
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "",
    }
    resp = client.get("/hello", environ_overrides=weird)
    assert resp.status_code in {200, 301, 403}
    resp = client.options("/hello", environ_overrides=weird)
    assert resp.status_code < 500
