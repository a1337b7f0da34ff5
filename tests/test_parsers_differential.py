"""Differential tests: every name and value Werkzeug hands a Flask view (``request.args``,
``.form``, ``.files`` file names, ``.cookies``, ``.get_json()`` keys and strings) is among the
values Rampart's detection inspects for the same request, or Rampart reports the request as one
it cannot inspect (and refuses it).

Werkzeug itself is the oracle: each request is built as raw bytes, put in a WSGI environ, handed
first to the engine's extractor (``_native.inspected_values``, which reads and replays the body
as the adapter does) and then to ``werkzeug.Request``. Hypothesis generates random and
adversarial requests (seeded: ``derandomize=True``); ``RAMPART_DIFF_EXAMPLES`` raises the
number of examples per test (``make test-differential``).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from typing import Any

from flask_rampart import _native
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Request

EXAMPLES = int(os.environ.get("RAMPART_DIFF_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SURROGATE = re.compile("[\ud800-\udfff]")


def environ(
    *,
    query: bytes = b"",
    cookie: str | None = None,
    content_type: str | None = None,
    body: bytes = b"",
) -> dict[str, Any]:
    """A WSGI environ as a server builds it: byte strings as latin-1 ``str``."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": "POST" if body else "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": query.decode("latin-1"),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    if cookie is not None:
        env["HTTP_COOKIE"] = cookie
    if content_type is not None:
        env["CONTENT_TYPE"] = content_type
    return env


def leaves(doc: Any, out: list[str]) -> None:
    """Every key and string of a parsed JSON document, without recursion."""
    stack = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            out.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def werkzeug_sees(env: dict[str, Any]) -> list[str]:
    """Every name and value a view could read from the request, as Werkzeug parses it."""
    req = Request(env)
    seen: list[str] = []
    try:
        seen.extend(x for kv in req.args.items(multi=True) for x in kv)
    except UnicodeDecodeError:
        pass  # a query string that is not UTF-8: Werkzeug raises, the view sees nothing
    seen.extend(x for kv in req.cookies.items(multi=True) for x in kv)
    if req.is_json:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20_000))
        try:
            leaves(req.get_json(silent=True), seen)
        except RecursionError:
            pass  # deeper than Python's json reads: the view gets an error, no values
        finally:
            sys.setrecursionlimit(limit)
    else:
        seen.extend(x for kv in req.form.items(multi=True) for x in kv)
        for name, f in req.files.items(multi=True):
            seen.extend([name, f.filename])
    return [s for s in seen if isinstance(s, str) and s]


def check(env: dict[str, Any]) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
    values, why = _native.inspected_values(env)
    seen = werkzeug_sees(env)
    if why is not None:
        return values, why
    inspected = {v for _, v in values}
    for s in seen:
        s = SURROGATE.sub("\ufffd", s)
        assert s in inspected, (s, values)
    return values, why


# --------------------------------------------------------------------------- strategies

URL_PIECES = [
    "a", "b", "q", "=", "&", "&&", "+", "%", "%2", "%20", "%2B", "%26", "%3D", "%41", "%ff",
    "%FF", "%C3", "%A9", "%C3%A9", "%e2%82", "%E2%82%AC", "%zz", ";", "'", "\"", "<", "é",
    "\u20ac", " ", "%00", "\\", "#",
]  # fmt: skip


@st.composite
def url_bytes(draw: st.DrawFn) -> bytes:
    """Query strings and urlencoded bodies: escapes valid and not, separators, raw UTF-8."""
    text = "".join(draw(st.lists(st.sampled_from(URL_PIECES), max_size=24)))
    raw = text.encode()
    if draw(st.booleans()):
        raw += draw(st.binary(max_size=6))
    return raw


LB = st.sampled_from([b"\r\n", b"\n", b"\r"])
TCHARS = "abcXYZ019'()+_-.:=?"


@st.composite
def param_value(draw: st.DrawFn) -> str:
    """A Content-Disposition parameter: token, quoted with `;`, `\\"`, `%22`, or RFC 2231."""
    inner = draw(
        st.lists(
            st.sampled_from(["a", "x", ";", '\\"', "%22", "\\\\", "filename=f", " ", "é", "="]),
            min_size=1,
            max_size=6,
        )
    )
    kind = draw(st.sampled_from(["token", "quoted", "quoted", "star"]))
    if kind == "token":
        return "tok" + str(draw(st.integers(0, 99)))
    if kind == "star":
        return "*=utf-8''" + "".join(draw(st.lists(st.sampled_from(["a", "%41", "%C3%A9", "%3B"]))))
    return '"' + "".join(inner) + '"'


@st.composite
def multipart_body(draw: st.DrawFn) -> tuple[str, bytes]:
    boundary = draw(st.text(alphabet=TCHARS, min_size=1, max_size=12))
    b = boundary.encode()
    ct_forms = [
        f"multipart/form-data; boundary={boundary}",
        f'multipart/form-data; boundary="{boundary}"',
        f'Multipart/Form-Data;boundary="{boundary}"; charset=utf-8',
    ]
    content_type = draw(st.sampled_from(ct_forms))
    if draw(st.integers(0, 29)) == 0:
        content_type += "; boundary=other"
    # Rarely (these are refused as ambiguous, which ends the comparison): a second disposition.
    twice = draw(st.integers(0, 29)) == 0
    out = draw(st.sampled_from([b"", b"preamble", b"--x\r\n"]))
    for _ in range(draw(st.integers(0, 4))):
        out += draw(LB) + b"--" + b + draw(st.sampled_from([b"", b" ", b"\t "])) + draw(LB)
        headers: list[bytes] = []
        name_param = "name"
        val = draw(param_value())
        disp = "form-data; " + (name_param + val if val.startswith("*") else f"{name_param}={val}")
        if draw(st.booleans()):
            fv = draw(param_value())
            disp += "; filename" + (fv if fv.startswith("*") else "=" + fv)
        if draw(st.integers(0, 3)) == 0:
            disp += draw(
                st.sampled_from(
                    [
                        '; name ="q;filename=y"',
                        '; x="open; filename=z',
                        "; filename*0*=utf-8''a%20; filename*1=b",
                        "; name*=utf-8''%C3%A9t%C3%A9",
                        "; name*=iso-8859-1''caf%E9",
                        '; filename=""',
                        ";;; =; x",
                        "; FILENAME=Upper.txt",
                    ]
                )
            )
        hname = draw(
            st.sampled_from(["Content-Disposition", "content-disposition", "CONTENT-DISPOSITION"])
        )
        headers.append(f"{hname}: {disp}".encode())
        if twice:
            twice = False
            headers.append(b"Content-Disposition: form-data; name=second")
        if draw(st.booleans()):
            cs = draw(st.sampled_from(["utf-8", "iso-8859-1", "ascii", "utf-16", "UTF-8"]))
            mt = draw(st.sampled_from(["text/plain", "application/json", "image/png"]))
            headers.append(f"Content-Type: {mt}; charset={cs}".encode())
        if draw(st.integers(0, 4)) == 0:
            # A folded header line.
            headers[0] = headers[0].replace(b"; ", b";" + draw(LB) + b" ", 1)
        sep = draw(LB)
        out += sep.join(headers) + sep + sep
        content = draw(
            st.lists(
                st.sampled_from(
                    [
                        b"x",
                        b"1' OR '1'='1",
                        b"\r\n",
                        b"\n",
                        b"\xe9",
                        b"\xc3\xa9",
                        b"--",
                        b"-" + b,
                        b"\r",
                    ]
                ),
                max_size=6,
            )
        )
        out += b"".join(content)
    if draw(st.integers(0, 5)) > 0:
        out += draw(LB) + b"--" + b + b"--" + draw(st.sampled_from([b"", b"\r\n", b"epilogue"]))
    if draw(st.integers(0, 6)) == 0:
        # Random damage.
        at = draw(st.integers(0, len(out)))
        out = out[:at] + draw(st.binary(max_size=8)) + out[at:]
    return content_type, out


COOKIE_PIECES = [
    "a", "b", "sid", "=", "==", ";", "; ", " ", "\t", "\"", "\\", "\\\"", "\\\\", "\\047",
    "\\0471", "\\377", "\\303\\251", "\\x", "\\1", "OR", "1=1", ",", "\u00e9", "\u00c3\u00a9",
]  # fmt: skip


@st.composite
def cookie_header(draw: st.DrawFn) -> str:
    return "".join(draw(st.lists(st.sampled_from(COOKIE_PIECES), max_size=24)))


def json_values(depth: int = 3) -> st.SearchStrategy[str]:
    """JSON texts, written by hand so keys may repeat and Python's constants appear."""
    scalars = st.one_of(
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1", "-0.5e3", "true", "null"]),
        st.text(max_size=8).map(json.dumps),
        st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)),
        st.sampled_from(['"\\ud800"', '"\\ud83d\\ude00"', '"a\\u0000b"', '"\\/"']),
    )

    def containers(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        keys = st.sampled_from(['"a"', '"a"', '"b"', '"$ne"', '"\\u0061"', '"x y"'])
        obj = st.lists(st.tuples(keys, inner), max_size=4).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        )
        arr = st.lists(inner, max_size=4).map(lambda vs: "[" + ",".join(vs) + "]")
        return st.one_of(obj, arr)

    return st.recursive(scalars, containers, max_leaves=12)


ENCODINGS = [
    "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be",
]  # fmt: skip


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(url_bytes())
def test_query_strings(qs: bytes) -> None:
    check(environ(query=qs))


@SETTINGS
@given(url_bytes())
def test_urlencoded_bodies(body: bytes) -> None:
    check(environ(content_type="application/x-www-form-urlencoded", body=body))


@SETTINGS
@given(multipart_body())
def test_multipart_bodies(ct_body: tuple[str, bytes]) -> None:
    content_type, body = ct_body
    check(environ(content_type=content_type, body=body))


@SETTINGS
@given(cookie_header())
def test_cookie_headers(header: str) -> None:
    check(environ(cookie=header))


@SETTINGS
@given(json_values(), st.sampled_from(ENCODINGS))
def test_json_documents(doc: str, encoding: str) -> None:
    try:
        body = doc.encode(encoding, "surrogatepass")
    except UnicodeEncodeError:
        body = doc.encode("utf-8", "surrogatepass")
    check(environ(content_type="application/json", body=body))


@settings(max_examples=max(5, EXAMPLES // 20), derandomize=True, deadline=None)
@given(st.integers(1000, 3000), st.sampled_from(["[", '{"k":']), st.sampled_from(ENCODINGS))
def test_deep_json(depth: int, opener: str, encoding: str) -> None:
    closer = "]" if opener == "[" else "}"
    doc = opener * depth + "\"1' OR '1'='1\"" + closer * depth
    values, why = check(environ(content_type="application/json", body=doc.encode(encoding)))
    assert why is None
    assert "1' OR '1'='1" in {v for _, v in values}


# --------------------------------------------------------------------------- the blind spots


def inspected(env: dict[str, Any]) -> set[str]:
    values, why = check(env)
    assert why is None, why
    return {v for _, v in values}


SQLI = "1' OR '1'='1"


def test_multipart_lf_only_part_is_inspected() -> None:
    body = b'--B\nContent-Disposition: form-data; name="q"\n\n' + SQLI.encode() + b"\n--B--\n"
    assert SQLI in inspected(environ(content_type="multipart/form-data; boundary=B", body=body))


def test_multipart_cr_only_part_is_inspected() -> None:
    body = b"--B\rContent-Disposition: form-data; name=q\r\r" + SQLI.encode() + b"\r--B--\r"
    assert SQLI in inspected(environ(content_type="multipart/form-data; boundary=B", body=body))


def test_multipart_semicolon_in_quoted_name_is_a_text_field() -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="a;filename=x"\r\n\r\n'
        + SQLI.encode()
        + b"\r\n--B--\r\n"
    )
    env = environ(content_type="multipart/form-data; boundary=B", body=body)
    values, why = _native.inspected_values(env)
    assert why is None
    assert ("multipart:a;filename=x", SQLI) in values
    assert Request(env).form["a;filename=x"] == SQLI


def test_multipart_two_boundaries_is_ambiguous() -> None:
    body = b"--A\r\nContent-Disposition: form-data; name=q\r\n\r\nx\r\n--A--\r\n"
    env = environ(content_type="multipart/form-data; boundary=A; boundary=B", body=body)
    _, why = _native.inspected_values(env)
    assert why == ("body_ambiguous", "multipart: two boundary parameters")


def test_multipart_two_dispositions_is_ambiguous() -> None:
    body = (
        b"--B\r\nContent-Disposition: form-data; name=q\r\n"
        b"Content-Disposition: form-data; name=f; filename=x.png\r\n\r\nx\r\n--B--\r\n"
    )
    _, why = _native.inspected_values(
        environ(content_type="multipart/form-data; boundary=B", body=body)
    )
    assert why is not None and why[0] == "body_ambiguous" and "Content-Disposition" in why[1]


def test_multipart_padding_where_a_chunk_ends_is_ambiguous() -> None:
    first = b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\n"
    filler = b"x" * (65536 - len(first) - len(b"\r\n--B") - 2)
    body = (
        first
        + filler
        + b"\r\n--B    \r\nContent-Disposition: form-data; name=f; filename=p.png\r\n\r\n"
        + SQLI.encode()
        + b"\r\n--B--\r\n"
    )
    env = environ(content_type="multipart/form-data; boundary=B", body=body)
    _, why = _native.inspected_values(env)
    assert why is not None and why[0] == "body_ambiguous" and "white space" in why[1]
    # Werkzeug reads one text field, the "file" at its end.
    assert Request(env).form["a"].endswith(SQLI)


def test_multipart_latin1_part_and_rfc2231_filename() -> None:
    body = (
        b"--B\r\nContent-Disposition: form-data; name=t\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9\r\n"
        b"--B\r\nContent-Disposition: form-data; name=f; filename*=UTF-8''%3Cscript%3E.txt\r\n"
        b"Content-Type: image/png\r\n\r\n\x89PNG\r\n--B--\r\n"
    )
    got = inspected(environ(content_type="multipart/form-data; boundary=B", body=body))
    assert {"café", "<script>.txt"} <= got


def test_cookie_octal_escapes_are_decoded() -> None:
    header = 'sid="1\\047 OR \\0471\\047=\\0471"; other=x'
    got = inspected(environ(cookie=header))
    assert SQLI in got
    assert Request(environ(cookie=header)).cookies["sid"] == SQLI


def test_cookie_quoted_semicolon_stays_in_the_value() -> None:
    assert "a;b" in inspected(environ(cookie='k="a;b"'))


def test_json_constants_utf16_and_bom() -> None:
    doc = '{"a": NaN, "b": Infinity, "c": -Infinity, "q": "' + SQLI.replace("'", "\\u0027") + '"}'
    for encoding in ENCODINGS:
        got = inspected(environ(content_type="application/json", body=doc.encode(encoding)))
        assert SQLI in got, encoding


def test_json_duplicate_keys_every_value() -> None:
    got = inspected(
        environ(content_type="application/json", body=b'{"q": "' + SQLI.encode() + b'", "q": "x"}')
    )
    assert {SQLI, "x"} <= got


def test_query_invalid_utf8_stays_escaped() -> None:
    values, _ = check(environ(query=b"q=%ff%27&r=a+b%2B"))
    assert ("query:q", "%FF'") in values
    assert ("query:r", "a b+") in values
