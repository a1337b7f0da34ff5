"""Security headers, CSP and per-request nonces."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask_rampart import SecurityConfig
from werkzeug.test import TestResponse

AppFactory = Callable[..., Flask]

DEFAULT_HEADERS = {
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "geolocation=(), microphone=(), camera=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Permitted-Cross-Domain-Policies": "none",
    "X-XSS-Protection": "0",
}
HSTS_DEFAULT = "max-age=31536000; includeSubDomains"
ALL_HEADER_NAMES = [
    *DEFAULT_HEADERS,
    "Strict-Transport-Security",
    "Content-Security-Policy",
    "Content-Security-Policy-Report-Only",
    "Cross-Origin-Embedder-Policy",
]


def get(
    app: Flask,
    path: str = "/hello",
    ip: str = "198.51.100.7",
    https: bool = True,
) -> TestResponse:
    base_url = "https://localhost" if https else "http://localhost"
    return app.test_client().get(path, base_url=base_url, environ_base={"REMOTE_ADDR": ip})


def assert_default_headers(resp: TestResponse, *, hsts: bool = True) -> None:
    for name, value in DEFAULT_HEADERS.items():
        assert resp.headers.getlist(name) == [value], name
    if hsts:
        assert resp.headers.getlist("Strict-Transport-Security") == [HSTS_DEFAULT]
    # off by default
    assert "Cross-Origin-Embedder-Policy" not in resp.headers
    assert "Content-Security-Policy" not in resp.headers
    assert "Content-Security-Policy-Report-Only" not in resp.headers


def csp_directives(value: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in value.split(";"):
        tokens = part.split()
        if tokens:
            out[tokens[0]] = tokens[1:]
    return out


def test_default_headers_on_a_normal_response(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig())
    resp = get(app)
    assert resp.status_code == 200
    assert_default_headers(resp)


def test_default_headers_on_plain_http(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig())
    resp = get(app, https=False)
    assert resp.status_code == 200
    assert_default_headers(resp, hsts=False)


def test_default_headers_on_a_blocked_response(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(blacklist=["203.0.113.5"]))
    resp = get(app, ip="203.0.113.5")
    assert resp.status_code == 403
    assert_default_headers(resp)


def test_default_headers_on_other_rampart_responses(make_app: AppFactory) -> None:
    emergency = get(make_app(SecurityConfig(emergency_mode=True)))
    assert emergency.status_code == 503
    assert_default_headers(emergency)

    ua = make_app(SecurityConfig(blocked_user_agents=["curl"]))
    resp = ua.test_client().get(
        "/hello", base_url="https://localhost", headers={"User-Agent": "curl/8"}
    )
    assert resp.status_code == 403
    assert_default_headers(resp)


def test_default_headers_on_excluded_paths_and_404(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig())
    static = get(app, "/static/x")
    assert static.status_code == 200
    assert_default_headers(static)
    missing = get(app, "/nope")
    assert missing.status_code == 404
    assert_default_headers(missing)


def test_csp_from_a_dict(make_app: AppFactory) -> None:
    app = make_app(
        SecurityConfig(
            security_headers={
                "csp": {
                    "default-src": ["'self'"],
                    "script-src": ["'self'", "https://cdn.example.com"],
                }
            }
        )
    )
    resp = get(app)
    assert resp.headers.getlist("Content-Security-Policy") == [
        "default-src 'self'; script-src 'self' https://cdn.example.com"
    ]
    assert "Content-Security-Policy-Report-Only" not in resp.headers
    # the other defaults are still there
    assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_csp_from_a_string(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(security_headers={"csp": "default-src 'none'"}))
    assert get(app).headers["Content-Security-Policy"] == "default-src 'none'"


def test_csp_report_only(make_app: AppFactory) -> None:
    app = make_app(
        SecurityConfig(
            security_headers={
                "csp": {"default-src": ["'self'"]},
                "csp_report_only": True,
            }
        )
    )
    resp = get(app)
    assert resp.headers["Content-Security-Policy-Report-Only"] == "default-src 'self'"
    assert "Content-Security-Policy" not in resp.headers


@pytest.mark.parametrize(
    ("key", "header"),
    [
        ("frame_options", "X-Frame-Options"),
        ("content_type_options", "X-Content-Type-Options"),
        ("xss_protection", "X-XSS-Protection"),
        ("referrer_policy", "Referrer-Policy"),
        ("permissions_policy", "Permissions-Policy"),
        ("cross_origin_opener_policy", "Cross-Origin-Opener-Policy"),
        ("cross_origin_resource_policy", "Cross-Origin-Resource-Policy"),
        ("permitted_cross_domain_policies", "X-Permitted-Cross-Domain-Policies"),
        ("hsts", "Strict-Transport-Security"),
    ],
)
def test_a_key_set_to_none_removes_only_that_header(
    make_app: AppFactory, key: str, header: str
) -> None:
    app = make_app(SecurityConfig(security_headers={key: None}))
    resp = get(app)
    assert header not in resp.headers
    others = [name for name in DEFAULT_HEADERS if name != header]
    for name in others:
        assert name in resp.headers, name


def test_overriding_one_key_keeps_the_other_defaults(make_app: AppFactory) -> None:
    app = make_app(
        SecurityConfig(
            security_headers={
                "frame_options": "DENY",
                "hsts": {
                    "max_age": 63072000,
                    "include_subdomains": True,
                    "preload": True,
                },
                "cross_origin_embedder_policy": "require-corp",
            }
        )
    )
    resp = get(app)
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Strict-Transport-Security"] == (
        "max-age=63072000; includeSubDomains; preload"
    )
    assert resp.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


@pytest.mark.parametrize(
    "security_headers",
    [{"enabled": False}, None],
    ids=["enabled-false", "none"],
)
def test_all_headers_can_be_turned_off(
    make_app: AppFactory, security_headers: dict[str, bool] | None
) -> None:
    app = make_app(SecurityConfig(security_headers=security_headers, blacklist=["203.0.113.5"]))
    for resp in (get(app), get(app, ip="203.0.113.5")):
        for name in ALL_HEADER_NAMES:
            assert name not in resp.headers, name


def test_custom_headers(make_app: AppFactory) -> None:
    app = make_app(
        SecurityConfig(
            security_headers={"custom": {"X-Custom": "yes", "X-Team": "blue; green"}},
            blacklist=["203.0.113.5"],
        )
    )
    for resp in (get(app), get(app, ip="203.0.113.5")):
        assert resp.headers.getlist("X-Custom") == ["yes"]
        assert resp.headers.getlist("X-Team") == ["blue; green"]
        assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_header_set_by_the_view_is_left_alone(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig())
    resp = get(app, "/view-header")
    assert resp.status_code == 200
    assert resp.headers.getlist("X-Frame-Options") == ["DENY"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_header_set_by_the_view_case_insensitive(make_app: AppFactory) -> None:
    def lower() -> tuple[str, int, dict[str, str]]:
        return "lower", 200, {"referrer-policy": "no-referrer"}

    app = make_app(SecurityConfig(), lower=lower)
    resp = get(app, "/lower")
    assert resp.headers.getlist("Referrer-Policy") == ["no-referrer"]


# --------------------------------------------------------------------------- nonces

NONCE_CONFIG = {
    "csp": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
    },
    "csp_nonce_in": ["script-src"],
}


def test_nonce_is_fresh_per_request_and_matches_header_and_template(
    make_app: AppFactory,
) -> None:
    app = make_app(SecurityConfig(security_headers=NONCE_CONFIG))
    nonces = []
    for _ in range(3):
        resp = get(app, "/template")
        assert resp.status_code == 200
        nonce = resp.get_data(as_text=True).strip()
        assert nonce
        assert re.fullmatch(r"[A-Za-z0-9+/=_-]{16,}", nonce), nonce
        directives = csp_directives(resp.headers["Content-Security-Policy"])
        assert directives["script-src"] == ["'self'", f"'nonce-{nonce}'"]
        assert directives["default-src"] == ["'self'"]
        assert directives["style-src"] == ["'self'"]
        nonces.append(nonce)
    assert len(set(nonces)) == 3


def test_csp_nonce_function_matches_the_header(make_app: AppFactory) -> None:
    app = make_app(SecurityConfig(security_headers=NONCE_CONFIG))
    resp = get(app, "/nonce")
    nonce = resp.get_data(as_text=True)
    assert nonce
    assert f"'nonce-{nonce}'" in resp.headers["Content-Security-Policy"]


def test_nonce_in_several_directives_is_the_same_value(make_app: AppFactory) -> None:
    config = {**NONCE_CONFIG, "csp_nonce_in": ["script-src", "style-src"]}
    app = make_app(SecurityConfig(security_headers=config))
    resp = get(app, "/template")
    nonce = resp.get_data(as_text=True).strip()
    directives = csp_directives(resp.headers["Content-Security-Policy"])
    assert f"'nonce-{nonce}'" in directives["script-src"]
    assert f"'nonce-{nonce}'" in directives["style-src"]
    assert not any(s.startswith("'nonce-") for s in directives["default-src"])


def test_nonce_with_report_only(make_app: AppFactory) -> None:
    config = {**NONCE_CONFIG, "csp_report_only": True}
    app = make_app(SecurityConfig(security_headers=config))
    resp = get(app, "/template")
    nonce = resp.get_data(as_text=True).strip()
    assert f"'nonce-{nonce}'" in resp.headers["Content-Security-Policy-Report-Only"]
