"""custom_request_check, custom_response_modifier and fail_secure."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import flask
from flask import Flask, Response
from flask_rampart import SecurityConfig
from werkzeug.test import TestResponse

if TYPE_CHECKING:
    from conftest import RampartLog

AppFactory = Callable[..., Flask]


def get(
    app: Flask,
    path: str = "/hello",
    ip: str = "198.51.100.7",
    headers: dict[str, str] | None = None,
) -> TestResponse:
    return app.test_client().get(path, environ_base={"REMOTE_ADDR": ip}, headers=headers or {})


def test_check_returning_a_response_short_circuits(make_app: AppFactory) -> None:
    view_calls: list[str] = []

    def guarded() -> str:
        view_calls.append("called")
        return "guarded view"

    def check(req: flask.Request) -> Response | None:
        if req.args.get("token") != "s3cret":
            return Response("no token", status=418, mimetype="text/plain")
        return None

    app = make_app(SecurityConfig(custom_request_check=check), guarded=guarded)
    denied = get(app, "/guarded")
    assert denied.status_code == 418
    assert denied.data == b"no token"
    assert view_calls == []

    allowed = get(app, "/guarded?token=s3cret")
    assert allowed.status_code == 200
    assert allowed.data == b"guarded view"
    assert view_calls == ["called"]


def test_check_receives_the_real_flask_request(make_app: AppFactory) -> None:
    seen: list[dict[str, Any]] = []

    def check(req: flask.Request) -> None:
        seen.append(
            {
                "is_request": isinstance(req, flask.Request),
                "args": req.args.to_dict(),
                "path": req.path,
                "method": req.method,
                "header": req.headers.get("X-Probe"),
                "body": req.get_data(as_text=True),
            }
        )

    app = make_app(SecurityConfig(custom_request_check=check))
    resp = app.test_client().post(
        "/submit?a=1&b=two",
        data="payload",
        headers={"X-Probe": "probe"},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert resp.status_code == 200
    # the view can still read the body after the check did
    assert resp.data == b"submitted:payload"
    assert seen == [
        {
            "is_request": True,
            "args": {"a": "1", "b": "two"},
            "path": "/submit",
            "method": "POST",
            "header": "probe",
            "body": "payload",
        }
    ]


def test_check_runs_after_the_builtin_checks(make_app: AppFactory) -> None:
    calls: list[str] = []

    def check(req: flask.Request) -> None:
        calls.append(req.path)

    app = make_app(SecurityConfig(custom_request_check=check, blacklist=["203.0.113.5"]))
    assert get(app, ip="203.0.113.5").status_code == 403
    assert calls == []
    assert get(app).status_code == 200
    assert calls == ["/hello"]


def test_check_response_gets_security_headers(make_app: AppFactory) -> None:
    def check(req: flask.Request) -> Response:
        return Response("nope", status=401)

    app = make_app(SecurityConfig(custom_request_check=check))
    resp = get(app)
    assert resp.status_code == 401
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_response_modifier_applies_to_normal_and_blocked_responses(
    make_app: AppFactory,
) -> None:
    def modifier(resp: Response) -> Response:
        resp.headers["X-Modified"] = "yes"
        return resp

    app = make_app(
        SecurityConfig(
            custom_response_modifier=modifier,
            blacklist=["203.0.113.5"],
            blocked_user_agents=["curl"],
        )
    )
    ok = get(app)
    assert ok.status_code == 200
    assert ok.data == b"hello"
    assert ok.headers.getlist("X-Modified") == ["yes"]

    blocked = get(app, ip="203.0.113.5")
    assert blocked.status_code == 403
    assert blocked.data == b"Forbidden"
    assert blocked.headers.getlist("X-Modified") == ["yes"]

    ua = get(app, headers={"User-Agent": "curl/8"})
    assert ua.status_code == 403
    assert ua.headers.getlist("X-Modified") == ["yes"]


def test_response_modifier_applies_to_emergency_and_redirect(
    make_app: AppFactory,
) -> None:
    def modifier(resp: Response) -> Response:
        resp.headers["X-Modified"] = "yes"
        return resp

    emergency = make_app(SecurityConfig(custom_response_modifier=modifier, emergency_mode=True))
    resp = get(emergency)
    assert resp.status_code == 503
    assert resp.headers.getlist("X-Modified") == ["yes"]

    https = make_app(SecurityConfig(custom_response_modifier=modifier, enforce_https=True))
    redirect = get(https)
    assert redirect.status_code == 301
    assert redirect.headers.getlist("X-Modified") == ["yes"]


def test_response_modifier_can_replace_the_response(make_app: AppFactory) -> None:
    def modifier(resp: Response) -> Response:
        new = Response(f"wrapped {resp.status_code}", status=resp.status_code)
        new.headers["X-Wrapped"] = "1"
        return new

    app = make_app(SecurityConfig(custom_response_modifier=modifier, blacklist=["203.0.113.5"]))
    ok = get(app)
    assert ok.data == b"wrapped 200"
    assert ok.headers["X-Wrapped"] == "1"
    blocked = get(app, ip="203.0.113.5")
    assert blocked.status_code == 403
    assert blocked.data == b"wrapped 403"


def test_response_modifier_receives_a_flask_response(make_app: AppFactory) -> None:
    seen: list[bool] = []

    def modifier(resp: Response) -> Response:
        seen.append(isinstance(resp, flask.Response))
        return resp

    app = make_app(SecurityConfig(custom_response_modifier=modifier, blacklist=["203.0.113.5"]))
    get(app)
    get(app, ip="203.0.113.5")
    assert seen == [True, True]


def test_fail_secure_true_answers_500(make_app: AppFactory) -> None:
    view_calls: list[str] = []

    def boom(req: flask.Request) -> None:
        raise RuntimeError("check exploded")

    def guarded() -> str:
        view_calls.append("called")
        return "guarded view"

    app = make_app(SecurityConfig(custom_request_check=boom, fail_secure=True), guarded=guarded)
    resp = get(app, "/guarded")
    assert resp.status_code == 500
    assert view_calls == []


def test_fail_secure_is_the_default(make_app: AppFactory) -> None:
    def boom(req: flask.Request) -> None:
        raise RuntimeError("check exploded")

    app = make_app(SecurityConfig(custom_request_check=boom))
    assert get(app).status_code == 500


def test_fail_open_lets_the_request_through_and_logs(
    rampart_log: RampartLog, make_app: AppFactory
) -> None:
    def boom(req: flask.Request) -> None:
        raise RuntimeError("check exploded")

    app = make_app(SecurityConfig(custom_request_check=boom, fail_secure=False))
    resp = get(app)
    assert resp.status_code == 200
    assert resp.data == b"hello"
    assert rampart_log.records, "a failing check must be logged even when failing open"


def test_excluded_paths_skip_the_custom_check(make_app: AppFactory) -> None:
    calls: list[str] = []

    def deny_all(req: flask.Request) -> Response:
        calls.append(req.path)
        return Response("denied", status=403)

    app = make_app(SecurityConfig(custom_request_check=deny_all))
    static = get(app, "/static/x")
    assert static.status_code == 200
    assert static.data == b"static x"
    docs = get(app, "/docs")
    assert docs.status_code == 200
    assert calls == []
    assert get(app, "/hello").status_code == 403
    assert calls == ["/hello"]


def test_passive_mode_does_not_disable_the_custom_check(make_app: AppFactory) -> None:
    """passive_mode concerns Rampart's own checks; the user's check still decides."""
    calls: list[str] = []

    def check(req: flask.Request) -> None:
        calls.append(req.path)

    app = make_app(SecurityConfig(custom_request_check=check, passive_mode=True))
    assert get(app).status_code == 200
    assert calls == ["/hello"]


def test_response_modifier_applies_to_excluded_paths(make_app: AppFactory) -> None:
    def modifier(resp: Response) -> Response:
        resp.headers["X-Modified"] = "yes"
        return resp

    app = make_app(SecurityConfig(custom_response_modifier=modifier))
    resp = get(app, "/static/x")
    assert resp.status_code == 200
    assert resp.headers.getlist("X-Modified") == ["yes"]
