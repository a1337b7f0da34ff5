"""Issue 19, "Detection reads exactly what the application reads": regression tests for the
places where Rampart's view of a request and the application's used to differ.

Every test drives a real Flask app through the test client. The app has a deliberately
vulnerable view: it builds ``SELECT secret FROM users WHERE name = '<value>'`` from the request
and runs it against an in-memory sqlite3 table holding a secret row. Each attack is first sent
to the same app *without* Rampart and must leak the secret there, so every test proves its
payload is a working exploit; then Rampart must refuse it (403), while a benign twin of the same
shape (an O'Brien padded the same way) reaches the view (200).

Bodies Rampart cannot inspect as the application will read them are refused whatever they hold,
under ``detection_uninspectable`` (default ``"block"``): 413 for a body over
``detection_max_body_size`` (file uploads excluded), 400 for a body that claims JSON or a form
and does not parse; ``"log"`` lets them through with a ``noted`` event, ``"allow"`` silently.

Multipart and cookie parsing are covered elsewhere.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote

import pytest
from conftest import CLIENT_IP, RampartLog, vulnerable_lookup
from flask import Flask, request
from flask_rampart import Rampart, SecurityConfig
from flask_rampart.utils import detect_penetration_attempt
from werkzeug.test import TestResponse

SECRET = "flag-7f1c-do-not-leak"
UNION = "' UNION SELECT secret FROM users --"
BENIGN = "Mary O'Brien"
#: About 6 KB of harmless prose, without a newline (the SQL comment runs to the end of line).
PAD = "the quick brown fox jumps over the lazy dog while we wait for the bus " * 88
SMALL_BODY_LIMIT = 4096


def padded(core: str) -> str:
    return PAD + core + PAD


# --------------------------------------------------------------------------- the app


def lookup(value: str) -> str:
    """The vulnerable query: ``value`` is pasted into the SQL string."""
    return vulnerable_lookup(value, SECRET)


def find_q(doc: Any) -> str:
    """The string under the first ``q`` key of a JSON document, however deep."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("q"), str):
                return str(node["q"])
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return ""


def query_view() -> str:
    return lookup(request.args.get("q", ""))


def form_view() -> str:
    return lookup(request.form.get("q", ""))


def json_view() -> str:
    return lookup(find_q(request.get_json()))


def forced_json_view() -> str:
    return lookup(find_q(request.get_json(force=True)))


def header_view() -> str:
    return lookup(request.headers.get("X-Name", ""))


def raw_view() -> str:
    return lookup(request.get_data().decode("utf-8", "replace"))


def raw_form_view() -> str:
    """An API that parses a form body itself, whatever its Content-Type says."""
    fields = parse_qs(request.get_data().decode("utf-8", "replace"))
    return lookup(fields.get("q", [""])[0])


def upload_view() -> str:
    sizes = {name: len(f.read()) for name, f in request.files.items()}
    return lookup(request.form.get("q", "")) + f" files:{sizes}"


def image_view() -> str:
    return f"stored {len(request.get_data())} bytes"


def helper_view() -> tuple[str, int]:
    """Answers 500 naming the exception when the helper raises (an HTTPException included)."""
    try:
        attack, info = detect_penetration_attempt(request)
    except Exception as exc:
        return f"helper raised {type(exc).__name__}: {exc}", 500
    return json.dumps({"attack": attack, "info": info}), 200


VIEWS: dict[str, Callable[[], Any]] = {
    "query": query_view,
    "form": form_view,
    "json": json_view,
    "forced_json": forced_json_view,
    "header": header_view,
    "raw": raw_view,
    "raw_form": raw_form_view,
    "upload": upload_view,
    "image": image_view,
    "helper": helper_view,
}


def make_app(
    protected: bool = True, flask_config: dict[str, Any] | None = None, **fields: Any
) -> Flask:
    app = Flask("blind_spots", static_folder=None)
    app.config["TESTING"] = True
    if flask_config:
        app.config.update(flask_config)
    for name, view in VIEWS.items():
        app.add_url_rule(f"/{name}", endpoint=name, view_func=view, methods=["GET", "POST"])
    if protected:
        fields.setdefault("enable_rate_limiting", False)
        fields.setdefault("enable_ip_banning", False)
        Rampart(app, SecurityConfig(**fields))
    return app


@pytest.fixture(scope="module")
def bare() -> Flask:
    return make_app(protected=False)


@pytest.fixture(scope="module")
def guarded() -> Flask:
    return make_app()


def send(app: Flask, path: str, method: str = "POST", **kwargs: Any) -> TestResponse:
    return app.test_client().open(
        path, method=method, environ_base={"REMOTE_ADDR": CLIENT_IP}, **kwargs
    )


def assert_leaks(resp: TestResponse) -> None:
    assert resp.status_code == 200, resp.data[:200]
    assert SECRET in resp.get_data(as_text=True), resp.data[:200]


def assert_refused(resp: TestResponse, status: int = 403) -> None:
    assert resp.status_code == status, (resp.status_code, resp.data[:200])
    assert SECRET not in resp.get_data(as_text=True)


def assert_served(resp: TestResponse) -> None:
    assert resp.status_code == 200, (resp.status_code, resp.data[:200])
    assert SECRET not in resp.get_data(as_text=True)


def noted(log: RampartLog, outcome: str = "detected") -> list[dict[str, Any]]:
    """The uninspectable events: ``detected`` (logged as a warning) under ``"log"``, ``noted``
    (info) under ``"allow"``."""
    return [
        e
        for e in log.event_dicts
        if e.get("event.outcome") == outcome and e.get("event.action") == "request_uninspectable"
    ]


def mentions(event: dict[str, Any], *words: str) -> bool:
    text = json.dumps(event, default=str).lower()
    return any(w in text for w in words)


# --------------------------------------------------------------------------- the exploit


def test_the_vulnerable_view_leaks_the_secret_without_rampart(bare: Flask) -> None:
    assert_leaks(send(bare, "/query?q=" + quote(UNION, safe=""), method="GET"))
    assert_leaks(send(bare, "/query?q=" + quote(padded(UNION), safe=""), method="GET"))
    # The benign twin does not: the apostrophe breaks the query, the view answers anyway.
    resp = send(bare, "/query?q=" + quote(padded(BENIGN), safe=""), method="GET")
    assert_served(resp)
    assert b"query failed" in resp.data


def test_a_short_unpadded_attack_is_refused(bare: Flask, guarded: Flask) -> None:
    """The baseline: Rampart catches the payload when nothing hides it."""
    assert_leaks(send(bare, "/form", data={"q": UNION}))
    assert_refused(send(guarded, "/form", data={"q": UNION}))
    assert_served(send(guarded, "/form", data={"q": BENIGN}))


# --------------------------------------------------------------------------- (a) long values

#: name → how to send ``value`` so the view reads it.
Sender = Callable[[Flask, str], TestResponse]
LONG_VALUE_SENDERS: dict[str, Sender] = {
    "query": lambda app, v: send(app, "/query?q=" + quote(v, safe=""), method="GET"),
    "form": lambda app, v: send(app, "/form", data={"q": v}),
    "json": lambda app, v: send(app, "/json", json={"q": v}),
    "header": lambda app, v: send(app, "/header", method="GET", headers={"X-Name": v}),
}


@pytest.mark.parametrize("where", list(LONG_VALUE_SENDERS))
def test_attack_in_the_middle_of_a_long_value_is_refused(
    where: str, bare: Flask, guarded: Flask
) -> None:
    sender = LONG_VALUE_SENDERS[where]
    value = padded(UNION)
    assert len(value) > 10_000  # over detection_max_content_length's default
    assert_leaks(sender(bare, value))
    assert_refused(sender(guarded, value))


@pytest.mark.parametrize("where", list(LONG_VALUE_SENDERS))
def test_benign_long_value_passes(where: str, guarded: Flask) -> None:
    assert_served(LONG_VALUE_SENDERS[where](guarded, padded(BENIGN)))


def test_attack_in_the_middle_of_a_long_text_body_is_refused(bare: Flask, guarded: Flask) -> None:
    # About 370 KB: the payload lies past the windows the old scan read from the start.
    body = PAD * 30 + UNION + PAD * 30
    assert_leaks(send(bare, "/raw", data=body, content_type="text/plain"))
    assert_refused(send(guarded, "/raw", data=body, content_type="text/plain"))
    assert_served(
        send(guarded, "/raw", data=PAD * 30 + BENIGN + PAD * 30, content_type="text/plain")
    )


# --------------------------------------------------------------------------- (b) over-size body


def json_body(value: str) -> bytes:
    return json.dumps({"q": value}).encode()


def form_body(value: str) -> bytes:
    return b"q=" + quote(value, safe="").encode()


OVERSIZE: dict[str, tuple[str, str, Callable[[str], bytes]]] = {
    "json": ("/json", "application/json", json_body),
    "form": ("/form", "application/x-www-form-urlencoded", form_body),
}


@pytest.mark.parametrize("kind", list(OVERSIZE))
def test_body_over_the_limit_is_refused_whatever_it_holds(kind: str, bare: Flask) -> None:
    path, content_type, build = OVERSIZE[kind]
    app = make_app(detection_max_body_size=SMALL_BODY_LIMIT)
    attack, benign = build(padded(UNION)), build(padded(BENIGN))
    assert len(attack) > SMALL_BODY_LIMIT and len(benign) > SMALL_BODY_LIMIT
    assert_leaks(send(bare, path, data=attack, content_type=content_type))
    assert_refused(send(app, path, data=attack, content_type=content_type), 413)
    assert_refused(send(app, path, data=benign, content_type=content_type), 413)


@pytest.mark.parametrize("kind", list(OVERSIZE))
def test_body_over_the_limit_is_noted_under_log(kind: str, rampart_log: RampartLog) -> None:
    path, content_type, build = OVERSIZE[kind]
    app = make_app(detection_max_body_size=SMALL_BODY_LIMIT, detection_uninspectable="log")
    rampart_log.clear()
    assert_served(send(app, path, data=build(padded(BENIGN)), content_type=content_type))
    notes = noted(rampart_log)
    assert notes, rampart_log.event_dicts
    assert any(mentions(e, "body_too_large", "too large") for e in notes), notes


@pytest.mark.parametrize("kind", list(OVERSIZE))
def test_body_over_the_limit_passes_under_allow(kind: str, rampart_log: RampartLog) -> None:
    path, content_type, build = OVERSIZE[kind]
    app = make_app(detection_max_body_size=SMALL_BODY_LIMIT, detection_uninspectable="allow")
    rampart_log.clear()
    assert_served(send(app, path, data=build(padded(BENIGN)), content_type=content_type))
    assert not noted(rampart_log), rampart_log.event_dicts
    notes = noted(rampart_log, "noted")
    assert any(mentions(e, "body_too_large") for e in notes), rampart_log.event_dicts


def test_over_size_body_is_only_logged_in_passive_mode(rampart_log: RampartLog) -> None:
    app = make_app(detection_max_body_size=SMALL_BODY_LIMIT, passive_mode=True)
    rampart_log.clear()
    assert_served(send(app, "/raw", data=padded(BENIGN), content_type="text/plain"))
    assert noted(rampart_log, "passive"), rampart_log.event_dicts


def test_big_file_upload_is_not_refused_as_an_over_size_body() -> None:
    app = make_app(detection_max_body_size=SMALL_BODY_LIMIT)
    data = {
        "q": BENIGN,
        "photo": (io.BytesIO(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64), "photo.png"),
    }
    resp = send(app, "/upload", data=data, content_type="multipart/form-data")
    assert_served(resp)
    assert b"'photo': 16392" in resp.data


def multipart_file_then_field(value: str, file_size: int) -> tuple[bytes, str]:
    """A hand-built multipart body: a large binary file part first, then the text field ``q``."""
    boundary = "rampart-boundary-7d1"
    blob = (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * (file_size // 256 + 1))[:file_size]
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="photo"; filename="photo.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body += blob
    body += (
        f"\r\n--{boundary}\r\n"
        'Content-Disposition: form-data; name="q"\r\n\r\n'
        f"{value}\r\n--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("file_size", [SMALL_BODY_LIMIT * 4, 3_000_000])
def test_text_field_after_a_big_file_is_inspected(file_size: int, bare: Flask) -> None:
    """The body is over the inspection limit, but only because of the file: the engine reads
    it whole (spooled to a temporary file) and finds the field that comes after the file."""
    app = make_app(detection_max_body_size=SMALL_BODY_LIMIT)
    attack, ct = multipart_file_then_field(UNION, file_size)
    assert_leaks(send(bare, "/upload", data=attack, content_type=ct))
    assert_refused(send(app, "/upload", data=attack, content_type=ct))
    benign, ct = multipart_file_then_field(BENIGN, file_size)
    resp = send(app, "/upload", data=benign, content_type=ct)
    assert_served(resp)
    assert f"'photo': {file_size}" in resp.get_data(as_text=True)


def test_multipart_text_fields_over_the_limit_are_refused() -> None:
    """Text fields count toward the limit (file contents do not): past it, 413."""
    app = make_app(detection_max_body_size=SMALL_BODY_LIMIT)
    data = {"q": padded(BENIGN), "r": padded(BENIGN)}
    assert_refused(send(app, "/upload", data=data, content_type="multipart/form-data"), 413)
    small = {"q": BENIGN, "photo": (io.BytesIO(b"\x89PNG" + bytes(SMALL_BODY_LIMIT * 2)), "a.png")}
    assert_served(send(app, "/upload", data=small, content_type="multipart/form-data"))


def test_big_multipart_over_max_content_length_is_left_to_flask() -> None:
    """Past Flask's MAX_CONTENT_LENGTH the application refuses the body itself (413) without
    reading it; Rampart does not spool what the application will never read."""
    app = make_app(
        flask_config={"MAX_CONTENT_LENGTH": 100_000}, detection_max_body_size=SMALL_BODY_LIMIT
    )
    body, ct = multipart_file_then_field(BENIGN, 200_000)
    assert send(app, "/upload", data=body, content_type=ct).status_code == 413


def test_malformed_json_is_refused(bare: Flask) -> None:
    """A body that says JSON but does not parse: the engine cannot read it as the app might
    (a lenient parser, a fallback to the raw text), so it is refused; the view reads raw bytes."""
    app = make_app()
    attack = b'{"q": "' + UNION.encode() + b'", '
    assert_leaks(send(bare, "/raw", data=UNION, content_type="application/json"))
    resp = send(app, "/raw", data=attack, content_type="application/json")
    assert resp.status_code in (400, 403), (resp.status_code, resp.data[:200])  # either refusal
    assert_refused(send(app, "/raw", data=b'{"q": "hello", ', content_type="application/json"), 400)


def test_malformed_json_is_noted_under_log(rampart_log: RampartLog) -> None:
    app = make_app(detection_uninspectable="log")
    rampart_log.clear()
    assert_served(send(app, "/raw", data=b'{"q": "hello", ', content_type="application/json"))
    notes = noted(rampart_log)
    assert any(mentions(e, "body_malformed", "malformed") for e in notes), rampart_log.event_dicts


# --------------------------------------------------------------------------- (d) JSON Python reads


#: About 200 KB of short prose strings: a JSON body the engine cannot parse was read as text in
#: windows, 12 from the start and the last; a value between them went unread.
NOTES = json.dumps(["a note about the order " + str(i) for i in range(6000)])


def test_json_with_nan_is_walked_as_json(bare: Flask, guarded: Flask) -> None:
    """Python's json reads NaN and Infinity, so the application sees this document."""

    def doc(value: str) -> bytes:
        return (
            '{"score": NaN, "limit": Infinity, "before": '
            + NOTES
            + ', "q": '
            + json.dumps(value)
            + ', "after": '
            + NOTES
            + "}"
        ).encode()

    assert_leaks(send(bare, "/json", data=doc(UNION), content_type="application/json"))
    assert_refused(send(guarded, "/json", data=doc(UNION), content_type="application/json"))
    assert_served(send(guarded, "/json", data=doc(BENIGN), content_type="application/json"))


def test_200_deep_json_with_the_payload_at_the_bottom(bare: Flask, guarded: Flask) -> None:
    """Deeper than the engine's parser nests (128), well within Python's."""

    def doc(value: str) -> bytes:
        deep = '{"a": ' * 200 + json.dumps({"q": value}) + "}" * 200
        return ("[" + NOTES + ", " + deep + ", " + NOTES + "]").encode()

    assert_leaks(send(bare, "/json", data=doc(UNION), content_type="application/json"))
    assert_refused(send(guarded, "/json", data=doc(UNION), content_type="application/json"))
    assert_served(send(guarded, "/json", data=doc(BENIGN), content_type="application/json"))


# --------------------------------------------------------------------------- (c) other media types

FORCED_JSON_TYPES = [
    "application/octet-stream",
    "application/x-json",
    "application/json, text/plain",
    "image/png",
    None,
]


@pytest.mark.parametrize("content_type", FORCED_JSON_TYPES)
def test_json_read_with_force_is_inspected_whatever_its_type(
    content_type: str | None, bare: Flask, guarded: Flask
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    attack, benign = json_body(UNION), json_body(BENIGN)
    assert_leaks(send(bare, "/forced_json", data=attack, headers=headers))
    assert_refused(send(guarded, "/forced_json", data=attack, headers=headers))
    assert_served(send(guarded, "/forced_json", data=benign, headers=headers))


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "image/png", "application/x-json"]
)
def test_raw_text_body_is_inspected_whatever_its_type(
    content_type: str, bare: Flask, guarded: Flask
) -> None:
    headers = {"Content-Type": content_type}
    assert_leaks(send(bare, "/raw", data=UNION, headers=headers))
    assert_refused(send(guarded, "/raw", data=UNION, headers=headers))
    assert_served(send(guarded, "/raw", data=BENIGN, headers=headers))


def test_form_body_sent_as_octet_stream_is_inspected(bare: Flask, guarded: Flask) -> None:
    headers = {"Content-Type": "application/octet-stream"}
    attack = b"page=2&" + form_body(UNION)
    assert_leaks(send(bare, "/raw_form", data=attack, headers=headers))
    assert_refused(send(guarded, "/raw_form", data=attack, headers=headers))
    assert_served(send(guarded, "/raw_form", data=b"page=2&" + form_body(BENIGN), headers=headers))


def test_genuinely_binary_image_passes(guarded: Flask) -> None:
    body = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(19).randbytes(16_000)
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    resp = send(guarded, "/image", data=body, content_type="image/png")
    assert_served(resp)
    assert resp.data == f"stored {len(body)} bytes".encode()


# --------------------------------------------------------------------------- (f) the helper


class _Reset(io.BytesIO):
    """A client that went away: every read fails."""

    def read(self, size: int | None = -1, /) -> bytes:
        raise ConnectionResetError("connection reset by peer")


HELPER_APPS: dict[str, dict[str, Any]] = {
    "without Rampart": {"protected": False},
    "with Rampart": {},
    "with detection off": {"enable_penetration_detection": False},
}


def assert_helper_answered(resp: TestResponse) -> dict[str, Any]:
    assert resp.status_code == 200, (resp.status_code, resp.data[:300])
    answer: dict[str, Any] = json.loads(resp.data)
    assert isinstance(answer["attack"], bool) and isinstance(answer["info"], str)
    return answer


@pytest.mark.parametrize("setup", list(HELPER_APPS))
def test_helper_does_not_raise_over_flask_max_content_length(setup: str) -> None:
    app = make_app(flask_config={"MAX_CONTENT_LENGTH": 1000}, **HELPER_APPS[setup])
    body = padded(BENIGN)[:5000]
    resp = send(app, "/helper", data=body, content_type="text/plain")
    if setup == "with Rampart" and resp.status_code == 413:
        return  # Rampart itself refused the body Flask would refuse; the view never ran
    assert assert_helper_answered(resp)["attack"] is False


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("setup", list(HELPER_APPS))
def test_helper_does_not_raise_when_the_client_disconnects(setup: str, framing: str) -> None:
    """A body that fails to read (a client that went away), sent with a Content-Length or
    chunked (``wsgi.input_terminated``, as gunicorn sets it)."""
    app = make_app(**HELPER_APPS[setup])
    overrides: dict[str, Any] = {"CONTENT_LENGTH": "10"}
    if framing == "chunked":
        overrides = {"wsgi.input_terminated": True}
    resp = send(
        app,
        "/helper",
        input_stream=_Reset(b"x" * 10),
        content_type="text/plain",
        environ_overrides=overrides,
    )
    assert_helper_answered(resp)
