"""Issue 19, "Parse as Werkzeug parses": the multipart and cookie blind spots, end to end through a
real Werkzeug server on loopback, with the requests sent as raw bytes.

The app has a deliberately vulnerable view: it pastes every form value and every cookie into
``SELECT secret FROM users WHERE name = '<value>'`` and runs it on an in-memory sqlite3 table
holding a secret row. Each attack is first sent to the same app without Rampart and must leak
the secret there (so it is a working exploit, and Werkzeug reads it the way the test says);
then, protected by ``Rampart(app)``, it must be refused (403, or 400 for a request that can be
read two ways) while a benign twin of the same shape reaches the view (200).

Before the parsers were rewritten, each of these attacks reached the view: a multipart part
with LF line breaks (or CR) was skipped, ``name="q;filename=x"`` was split on the quoted ``;``
and taken for a file upload (whose content is not inspected), the engine took the first of two
``boundary`` parameters where Werkzeug takes the last, a quoted cookie's ``\\047`` escapes
were inspected as written, not as the ``'`` the view gets, and a delimiter padded with white
space where Werkzeug's 64 KiB read ends was a delimiter to the engine and content to Werkzeug.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator

import pytest
from conftest import vulnerable_lookup
from flask import Flask, request
from flask_rampart import Rampart, SecurityConfig, _native
from werkzeug.serving import make_server

SECRET = "flag-5ee-parsers"
ATTACK = "' OR '1'='1"
BENIGN = "Mary O'Brien"


def lookup(value: str) -> str:
    return vulnerable_lookup(value, SECRET) + ";"


def make_app(protected: bool) -> Flask:
    app = Flask("parsers_e2e", static_folder=None)

    @app.route("/", methods=["GET", "POST"])
    def everything() -> str:
        values = list(request.form.values()) + list(request.cookies.values())
        return "".join(lookup(v) for v in values) or "nothing"

    if protected:
        Rampart(app, SecurityConfig(enable_rate_limiting=False, enable_ip_banning=False))
    return app


class Server:
    """``app`` served by Werkzeug's own WSGI server on a free loopback port, in a thread."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def send(self, headers: dict[str, str], body: bytes = b"") -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(
                "POST", "/", body=body, headers={"Content-Length": str(len(body)), **headers}
            )
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def bare() -> Iterator[Server]:
    s = Server(make_app(protected=False))
    yield s
    s.close()


@pytest.fixture(scope="module")
def guarded() -> Iterator[Server]:
    s = Server(make_app(protected=True))
    yield s
    s.close()


def multipart(content_type: str, body: bytes) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": content_type}, body


def lf_only(value: str) -> tuple[dict[str, str], bytes]:
    body = b'--B\nContent-Disposition: form-data; name="q"\n\n' + value.encode() + b"\n--B--\n"
    return multipart("multipart/form-data; boundary=B", body)


def cr_only(value: str) -> tuple[dict[str, str], bytes]:
    body = b"--B\rContent-Disposition: form-data; name=q\r\r" + value.encode() + b"\r--B--\r"
    return multipart("multipart/form-data; boundary=B", body)


def quoted_semicolon(value: str) -> tuple[dict[str, str], bytes]:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="q;filename=x.png"\r\n\r\n'
        + value.encode()
        + b"\r\n--B--\r\n"
    )
    return multipart("multipart/form-data; boundary=B", body)


def two_boundaries(value: str) -> tuple[dict[str, str], bytes]:
    # The first boundary frames a harmless part; Werkzeug reads the body with the second.
    body = (
        b"--A\r\nContent-Disposition: form-data; name=decoy\r\n\r\nhello\r\n--A--\r\n"
        b"--Z\r\nContent-Disposition: form-data; name=q\r\n\r\n" + value.encode() + b"\r\n--Z--\r\n"
    )
    return multipart("multipart/form-data; boundary=A; boundary=Z", body)


def padded_across_chunks(value: str, pad: bytes = b"    ") -> tuple[dict[str, str], bytes]:
    """A delimiter line whose white space a 64 KiB chunk of Werkzeug's reader ends in: Werkzeug
    takes it for content, so the "file" after it is the end of text field ``a``."""
    first = b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\n"
    filler = b"x" * (65536 - len(first) - len(b"\r\n--B") - 2)
    body = (
        first
        + filler
        + b"\r\n--B"
        + pad
        + b"\r\nContent-Disposition: form-data; name=f; filename=p.png\r\n\r\n"
        + value.encode()
        + b"\r\n--B--\r\n"
    )
    return multipart("multipart/form-data; boundary=B", body)


def octal_cookie(value: str) -> tuple[dict[str, str], bytes]:
    escaped = "".join(f"\\{ord(c):03o}" if c in "' " else c for c in value)
    return {"Cookie": f'name="{escaped}"; theme=dark'}, b""


CASES = {
    "multipart_lf_only": (lf_only, 403),
    "multipart_cr_only": (cr_only, 403),
    "multipart_quoted_semicolon": (quoted_semicolon, 403),
    # The payload is found (403) before the ambiguity would refuse it (400).
    "multipart_two_boundaries": (two_boundaries, 403),
    "cookie_octal_escapes": (octal_cookie, 403),
    "multipart_padding_across_chunks": (padded_across_chunks, 400),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_attack_leaks_without_rampart(case: str, bare: Server) -> None:
    build, _ = CASES[case]
    status, text = bare.send(*build(ATTACK))
    assert status == 200, text
    assert SECRET in text, text


@pytest.mark.parametrize("case", sorted(CASES))
def test_attack_is_refused(case: str, guarded: Server) -> None:
    build, want = CASES[case]
    status, text = guarded.send(*build(ATTACK))
    assert status == want, (status, text[:200])
    assert SECRET not in text


# (Two boundaries are refused whatever the body: their twin is below.)
TWINNED = sorted(
    c for c, (_, want) in CASES.items() if want == 403 and c != "multipart_two_boundaries"
)


@pytest.mark.parametrize("case", TWINNED)
def test_benign_twin_passes(case: str, guarded: Server) -> None:
    build, _ = CASES[case]
    status, text = guarded.send(*build(BENIGN))
    assert status == 200, (status, text[:200])
    assert "query failed" in text  # the view got the value, quote and all
    assert SECRET not in text


def test_two_boundaries_are_refused_as_ambiguous_whatever_the_body(guarded: Server) -> None:
    status, text = guarded.send(*two_boundaries(BENIGN))
    assert status == 400, (status, text[:200])
    assert SECRET not in text


def test_unpadded_twin_of_the_chunk_case_passes(guarded: Server) -> None:
    status, text = guarded.send(*padded_across_chunks(BENIGN, pad=b""))
    assert status == 200, (status, text[:200])
    assert SECRET not in text


def test_benign_twin_of_two_boundaries_passes_with_one(guarded: Server) -> None:
    headers, body = two_boundaries(BENIGN)
    headers = {"Content-Type": "multipart/form-data; boundary=Z"}
    status, text = guarded.send(headers, body)
    assert status == 200, (status, text[:200])
    assert "query failed" in text


def test_escaped_cookie_is_not_an_attack_as_written() -> None:
    """The cookie attack depends on the parser: its raw text, as the engine inspected it before,
    is clean; only unescaped (as Werkzeug reads it) is it an attack."""
    engine = _native.Engine("{}")
    headers, _ = octal_cookie(ATTACK)
    raw = headers["Cookie"].split(";")[0].split("=", 1)[1]
    assert engine.scan_text(raw, "cookie", "name")["attack"] is False
    assert engine.scan_text(ATTACK, "cookie", "name")["attack"] is True
