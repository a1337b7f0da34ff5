//! `flask_rampart._native`: the `PyO3` binding of `rampart-core`.
//!
//! Translation only: a config string in, a `Decision` (or `None`) out, core errors mapped to the
//! Python `ConfigError`. The WSGI environ is read in place; only the keys the engine needs are
//! looked up, with interned key strings.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyInt, PyList, PyString, PyTuple, PyType};
use rampart_core::config::{defaults_json, Level};
use rampart_core::decision::{is_repeatable, Event, Headers, Verdict};
use rampart_core::detect::extract::inspects_header;
use rampart_core::detect::{Category, Finding, Kind, Scan};
use rampart_core::engine::LimitsError;
use rampart_core::limit::Clock;
use rampart_core::net::cidr::parse_peer;
use rampart_core::net::cloud::{self, Provider};
use rampart_core::net::geo::{Country, CountrySource, GeoDb, GeoSlot};
use rampart_core::net::mmdb;
use rampart_core::store::StoreStats;
use rampart_core::{ConfigErrors, Engine as CoreEngine, Needs, RequestView, FIELDS};

/// Maps core validation errors to `flask_rampart.errors.ConfigError(message, [(field, reason)])`.
fn config_error(py: Python<'_>, errors: &ConfigErrors) -> PyErr {
    let pairs: Vec<(String, String)> = errors
        .0
        .iter()
        .map(|e| (e.field.clone(), e.message.clone()))
        .collect();
    let class = py
        .import("flask_rampart.errors")
        .and_then(|m| m.getattr("ConfigError"))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match class {
        Ok(cls) => PyErr::from_type(cls, (errors.to_string(), pairs)),
        Err(e) => e,
    }
}

/// A clock for tests: set and advanced by hand, in seconds since the Unix epoch.
#[pyclass(frozen, module = "flask_rampart._native")]
struct ManualClock {
    clock: Clock,
}

fn secs_to_ms(seconds: f64) -> PyResult<u64> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(PyValueError::new_err(format!(
            "time must be a finite number of seconds >= 0, not {seconds}"
        )));
    }
    // Rounded to whole milliseconds; range checked above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((seconds * 1000.0).round() as u64)
}

#[allow(clippy::cast_precision_loss)]
fn ms_to_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

#[pymethods]
impl ManualClock {
    #[new]
    #[pyo3(signature = (start=1_000_000.0))]
    fn new(start: f64) -> PyResult<Self> {
        Ok(ManualClock {
            clock: Clock::manual(secs_to_ms(start)?),
        })
    }

    /// Now, in seconds.
    fn now(&self) -> f64 {
        ms_to_secs(self.clock.now_ms())
    }

    fn set(&self, seconds: f64) -> PyResult<()> {
        self.clock.set_ms(secs_to_ms(seconds)?);
        Ok(())
    }

    fn advance(&self, seconds: f64) -> PyResult<()> {
        self.clock.advance_ms(secs_to_ms(seconds)?);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("ManualClock({})", self.now())
    }
}

/// Parses an IP given by Python code (`ban("203.0.113.9")`).
fn ip_arg(ip: &str) -> PyResult<IpAddr> {
    parse_peer(ip.trim())
        .ok_or_else(|| PyValueError::new_err(format!("{ip:?} is not an IP address")))
}

/// A compiled security policy.
#[pyclass(frozen, module = "flask_rampart._native")]
struct Engine {
    core: CoreEngine,
    needs: Needs,
    /// The environ key of the client-address header (`HTTP_X_FORWARDED_FOR`).
    ip_key: Py<PyString>,
    /// `(headers, names)` for the static list alone, then static + each precomputed CORS set.
    cached: Vec<Py<PyTuple>>,
    /// Set with the route policies: what the route stage reads, and the environ keys of the
    /// headers route checks look at.
    route_needs: OnceLock<(Needs, Vec<Py<PyString>>)>,
    /// The most bytes of a multipart body read (spooled) for inspection: the application's
    /// `MAX_CONTENT_LENGTH`, beyond which it refuses the body itself (`u64::MAX`: none).
    spool_cap: std::sync::atomic::AtomicU64,
}

impl Engine {
    fn spool_cap(&self) -> u64 {
        self.spool_cap.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The body bytes to buffer for detection; `None` when detection is off (or reads no body).
    fn body_limit(&self) -> Option<usize> {
        self.core.detector()?;
        Some(self.core.config().detection.max_body_bytes).filter(|&n| n > 0)
    }

    fn detector(&self) -> PyResult<&rampart_core::detect::Detector> {
        self.core.detector().ok_or_else(|| {
            PyRuntimeError::new_err(
                "penetration-attempt detection is off (enable_penetration_detection=False)",
            )
        })
    }
}

fn custom_dict<'py>(
    py: Python<'py>,
    r: &rampart_core::detect::CustomRule,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", r.id)?;
    d.set_item("pattern", &r.pattern)?;
    d.set_item("category", r.category.as_str())?;
    d.set_item("score", r.score)?;
    d.set_item("description", &r.description)?;
    Ok(d)
}

/// `(headers, names)`: a header list and the lower-case names in it that the application's own
/// headers override (all but the repeatable ones).
fn header_pair<'py>(
    py: Python<'py>,
    headers: &[(String, String)],
) -> PyResult<Bound<'py, PyTuple>> {
    let list = PyList::new(py, headers)?;
    let names: Vec<String> = headers
        .iter()
        .filter(|(n, _)| !is_repeatable(n))
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    let names = PyFrozenSet::new(py, &names)?;
    PyTuple::new(py, [list.into_any(), names.into_any()])
}

/// What to do with a request that is not on the plain allow path.
#[pyclass(frozen, module = "flask_rampart._native")]
struct Decision {
    verdict: Verdict,
}

/// An environ value as text (lossy for strings Python cannot encode).
fn env_str<'py>(
    env: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
) -> Option<Bound<'py, PyString>> {
    env.get_item(key)
        .ok()
        .flatten()
        .and_then(|v| v.cast_into::<PyString>().ok())
}

fn text<'a>(s: Option<&'a Bound<'_, PyString>>) -> Option<Cow<'a, str>> {
    s.map(|s| {
        s.to_cow()
            .unwrap_or_else(|_| Cow::Owned(s.to_string_lossy().into_owned()))
    })
}

/// Where the buffered body (and the count of bytes left unread) wait for the engine, and for
/// `detect_penetration_attempt` later in the request.
const BODY_KEY: &str = "rampart.body";
const TRUNCATED_KEY: &str = "rampart.body_truncated";

/// Reads up to `limit` bytes of the request body into `environ[BODY_KEY]` when its content type
/// is inspected, and puts back a `wsgi.input` that replays them: an `io.BytesIO` when the body
/// was read whole, else a `_ReplayInput` (those bytes, then the rest of the stream), with the
/// bytes left unread counted in `environ[TRUNCATED_KEY]`. A body without `Content-Length` is
/// read only when the server says the stream ends (`wsgi.input_terminated`). A stream that
/// fails (a client gone away) leaves nothing to inspect; the application sees the same error.
///
/// A multipart body over `limit` is read whole instead, up to `spool_cap` (the application's
/// `MAX_CONTENT_LENGTH`), into a temporary file (`flask_rampart.detection._spool`): a text
/// field may come after a file of any size. The file is both the application's `wsgi.input`
/// and `environ[BODY_KEY]`, which the engine maps read-only ([`mapped::Body`]).
fn buffer_body<'py>(
    py: Python<'py>,
    env: &Bound<'py, PyDict>,
    limit: usize,
    spool_cap: u64,
) -> PyResult<()> {
    static BYTES_IO: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static REPLAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let Some(stream) = env.get_item(intern!(py, "wsgi.input"))? else {
        return Ok(());
    };
    let content_type = env_str(env, intern!(py, "CONTENT_TYPE"));
    // No `Content-Type` reads as an empty one (which the engine inspects as text).
    let content_type = text(content_type.as_ref()).unwrap_or_default();
    let inspected = rampart_core::detect::extract::body_kind(&content_type).is_some();
    if !inspected {
        return Ok(());
    }
    let length = match env.get_item(intern!(py, "CONTENT_LENGTH"))? {
        Some(raw) if raw.is_truthy()? => match content_length(&raw) {
            Some(n) => Some(n),
            None => return Ok(()),
        },
        _ => None,
    };
    let want = match length {
        None => {
            let terminated = env.get_item(intern!(py, "wsgi.input_terminated"))?;
            if !terminated.map_or(Ok(false), |t| t.is_truthy())? {
                return Ok(());
            }
            limit.saturating_add(1)
        }
        Some(n) if n <= 0 => return Ok(()),
        Some(n) => usize::try_from(n).map_or(limit, |n| n.min(limit)),
    };
    let data = match read_up_to(py, &stream, want) {
        Ok(Some(data)) => data,
        Ok(None) => return Ok(()),
        Err(e) if e.is_instance_of::<PyOSError>(py) || e.is_instance_of::<PyValueError>(py) => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let got = data.as_bytes().len();
    let replay = |head: &Bound<'py, PyBytes>| -> PyResult<Bound<'py, PyAny>> {
        REPLAY
            .import(py, "flask_rampart.detection", "_ReplayInput")?
            .call1((head, &stream))
    };
    let bytes_io = |head: &Bound<'py, PyBytes>| -> PyResult<Bound<'py, PyAny>> {
        BYTES_IO.import(py, "io", "BytesIO")?.call1((head,))
    };
    let multipart = rampart_core::detect::extract::body_kind(&content_type)
        == Some(rampart_core::detect::extract::BodyKind::Multipart);
    let over = match length {
        None => got > limit,
        Some(n) => usize::try_from(n).is_ok_and(|n| n > got),
    };
    if multipart && over {
        // Text fields may follow file contents anywhere in the body: read it all (into a
        // temporary file), up to what the application itself accepts.
        let fits = length.is_none_or(|n| u64::try_from(n).is_ok_and(|n| n <= spool_cap));
        if fits {
            static SPOOL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            let spooled = SPOOL
                .import(py, "flask_rampart.detection", "_spool")?
                .call1((&data, &stream, length, spool_cap));
            let spooled = match spooled {
                Ok(t) => t,
                Err(e)
                    if e.is_instance_of::<PyOSError>(py)
                        || e.is_instance_of::<PyValueError>(py) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let (input, view, complete): (Bound<'py, PyAny>, Bound<'py, PyAny>, bool) =
                spooled.extract()?;
            env.set_item(intern!(py, "wsgi.input"), input)?;
            if !complete {
                env.set_item(TRUNCATED_KEY, 1)?;
            }
            return env.set_item(BODY_KEY, view);
        }
    }
    let data = match length {
        None if got > limit => {
            env.set_item(intern!(py, "wsgi.input"), replay(&data)?)?;
            env.set_item(TRUNCATED_KEY, 1)?;
            PyBytes::new(py, data.as_bytes().get(..limit).unwrap_or_default())
        }
        Some(n) if usize::try_from(n).is_ok_and(|n| n > got) => {
            env.set_item(intern!(py, "wsgi.input"), replay(&data)?)?;
            env.set_item(TRUNCATED_KEY, n - i64::try_from(got).unwrap_or(i64::MAX))?;
            data
        }
        _ => {
            env.set_item(intern!(py, "wsgi.input"), bytes_io(&data)?)?;
            data
        }
    };
    env.set_item(BODY_KEY, data)
}

/// `CONTENT_LENGTH` as a number: a decimal string (Python's `int()` for anything else, such
/// as `" 12 "`); `None` when it is not one.
fn content_length(raw: &Bound<'_, PyAny>) -> Option<i64> {
    if let Ok(s) = raw.cast::<PyString>() {
        if let Some(n) = s.to_str().ok().and_then(|s| s.parse::<i64>().ok()) {
            return Some(n);
        }
    }
    let py = raw.py();
    py.get_type::<PyInt>().call1((raw,)).ok()?.extract().ok()
}

/// Up to `want` bytes from `stream`, reading on after a short read (a socket returns what has
/// arrived) until `want` or the end. `None` when the stream does not give bytes.
fn read_up_to<'py>(
    py: Python<'py>,
    stream: &Bound<'py, PyAny>,
    want: usize,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let read = intern!(py, "read");
    let Ok(first) = stream.call_method1(read, (want,))?.cast_into::<PyBytes>() else {
        return Ok(None);
    };
    let len = first.as_bytes().len();
    if len >= want || len == 0 {
        return Ok(Some(first));
    }
    let mut all = first.as_bytes().to_vec();
    while all.len() < want {
        let Ok(more) = stream
            .call_method1(read, (want - all.len(),))?
            .cast_into::<PyBytes>()
        else {
            break;
        };
        if more.as_bytes().is_empty() {
            break;
        }
        all.extend_from_slice(more.as_bytes());
    }
    Ok(Some(PyBytes::new(py, &all)))
}

/// Reads the environ keys the engine needs (and the `named` ones route checks read), then runs
/// `f` on the borrowed view.
fn with_view<R>(
    py: Python<'_>,
    needs: Needs,
    ip_key: &Py<PyString>,
    named: &[Py<PyString>],
    env: &Bound<'_, PyDict>,
    f: impl FnOnce(&RequestView<'_>) -> R,
) -> R {
    let method = env_str(env, intern!(py, "REQUEST_METHOD"));
    let path = env_str(env, intern!(py, "PATH_INFO"));
    let script = env_str(env, intern!(py, "SCRIPT_NAME"));
    let query = env_str(env, intern!(py, "QUERY_STRING"));
    let scheme = env_str(env, intern!(py, "wsgi.url_scheme"));
    let peer = env_str(env, intern!(py, "REMOTE_ADDR"));
    let ua = needs
        .user_agent
        .then(|| env_str(env, intern!(py, "HTTP_USER_AGENT")))
        .flatten();
    let xff = needs
        .forwarded_for
        .then(|| env_str(env, ip_key.bind(py)))
        .flatten();
    let xfp = needs
        .forwarded_proto
        .then(|| env_str(env, intern!(py, "HTTP_X_FORWARDED_PROTO")))
        .flatten();
    let host = needs
        .host
        .then(|| {
            env_str(env, intern!(py, "HTTP_HOST"))
                .or_else(|| env_str(env, intern!(py, "SERVER_NAME")))
        })
        .flatten();
    let (origin, acrm, acrh) = if needs.origin {
        (
            env_str(env, intern!(py, "HTTP_ORIGIN")),
            env_str(env, intern!(py, "HTTP_ACCESS_CONTROL_REQUEST_METHOD")),
            env_str(env, intern!(py, "HTTP_ACCESS_CONTROL_REQUEST_HEADERS")),
        )
    } else {
        (None, None, None)
    };
    let (method, path, script, query, scheme) = (
        text(method.as_ref()),
        text(path.as_ref()),
        text(script.as_ref()),
        text(query.as_ref()),
        text(scheme.as_ref()),
    );
    let (peer, ua, xff, xfp, host) = (
        text(peer.as_ref()),
        text(ua.as_ref()),
        text(xff.as_ref()),
        text(xfp.as_ref()),
        text(host.as_ref()),
    );
    let (origin, acrm, acrh) = (
        text(origin.as_ref()),
        text(acrm.as_ref()),
        text(acrh.as_ref()),
    );
    // Detection: the cookies, the content type, the body the adapter buffered, and every
    // header that carries user data.
    let detect = needs.detection;
    let with_body = detect || needs.body;
    let cookie = if detect {
        env_str(env, intern!(py, "HTTP_COOKIE"))
    } else {
        None
    };
    let content_type = if with_body {
        env_str(env, intern!(py, "CONTENT_TYPE"))
    } else {
        None
    };
    let body = if with_body {
        env.get_item(intern!(py, "rampart.body"))
            .ok()
            .flatten()
            .and_then(|b| mapped::Body::of(&b))
    } else {
        None
    };
    let body_truncated: u64 = if with_body {
        env.get_item(intern!(py, "rampart.body_truncated"))
            .ok()
            .flatten()
            .and_then(|v| v.extract().ok())
            .unwrap_or(0)
    } else {
        0
    };
    let mut header_objs: Vec<(Bound<'_, PyString>, Bound<'_, PyString>)> = Vec::new();
    if detect {
        for (k, v) in env.iter() {
            let (Ok(k), Ok(v)) = (k.cast_into::<PyString>(), v.cast_into::<PyString>()) else {
                continue;
            };
            let keep = k
                .to_str()
                .ok()
                .and_then(|k| k.strip_prefix("HTTP_"))
                .is_some_and(|name| name != "COOKIE" && inspects_header(name));
            if keep {
                header_objs.push((k, v));
            }
        }
    }
    let header_texts: Vec<(Cow<'_, str>, Cow<'_, str>)> = header_objs
        .iter()
        .filter_map(|(k, v)| Some((text(Some(k))?, text(Some(v))?)))
        .collect();
    let headers: Vec<(&str, &str)> = header_texts
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("HTTP_")?, v.as_ref())))
        .collect();
    let (cookie, content_type) = (text(cookie.as_ref()), text(content_type.as_ref()));
    let named_objs: Vec<(&Py<PyString>, Bound<'_, PyString>)> = named
        .iter()
        .filter_map(|k| Some((k, env_str(env, k.bind(py))?)))
        .collect();
    let named_texts: Vec<(Cow<'_, str>, Cow<'_, str>)> = named_objs
        .iter()
        .filter_map(|(k, v)| Some((text(Some(k.bind(py)))?, text(Some(v))?)))
        .collect();
    let named_view: Vec<(&str, &str)> = named_texts
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    let view = RequestView {
        named: &named_view,
        cookie: cookie.as_deref(),
        content_type: content_type.as_deref(),
        headers: &headers,
        body: body.as_ref().map_or(&[], mapped::Body::as_bytes),
        body_truncated,
        method: method.as_deref().unwrap_or("GET"),
        path: path.as_deref().unwrap_or("/"),
        script_name: script.as_deref().unwrap_or(""),
        query: query.as_deref().unwrap_or(""),
        scheme: scheme.as_deref().unwrap_or("http"),
        peer: peer.as_deref(),
        host: host.as_deref(),
        user_agent: ua.as_deref(),
        forwarded_for: xff.as_deref(),
        forwarded_proto: xfp.as_deref(),
        origin: origin.as_deref(),
        access_control_request_method: acrm.as_deref(),
        access_control_request_headers: acrh.as_deref(),
    };
    f(&view)
}

fn level(l: Option<Level>) -> Option<&'static str> {
    l.map(Level::as_str)
}

fn stats_dict<'py>(py: Python<'py>, s: &StoreStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("keys", s.keys)?;
    d.set_item("bans", s.bans)?;
    d.set_item("bytes", s.bytes)?;
    Ok(d)
}

fn event_dict<'py>(py: Python<'py>, e: &Event) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("event.action", e.action)?;
    d.set_item("event.outcome", e.outcome.as_str())?;
    d.set_item("source.ip", e.client_ip.map(|ip| ip.to_string()))?;
    d.set_item("http.request.method", &e.method)?;
    d.set_item("url.path", &e.path)?;
    d.set_item("http.response.status_code", e.status)?;
    d.set_item("rule.id", &e.rule)?;
    d.set_item("message", &e.message)?;
    if let Some(c) = e.country {
        d.set_item("source.geo.country_iso_code", c.as_str())?;
    }
    if let Some(p) = e.cloud {
        d.set_item("cloud.provider", p.name())?;
    }
    if !e.findings.is_empty() {
        let findings = e
            .findings
            .iter()
            .map(|f| finding_dict(py, f))
            .collect::<PyResult<Vec<_>>>()?;
        d.set_item("rampart.findings", findings)?;
    }
    Ok(d)
}

fn finding_dict<'py>(py: Python<'py>, f: &Finding) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("rule", f.rule)?;
    d.set_item("category", f.category.as_str())?;
    d.set_item("score", f.score)?;
    d.set_item("location", &f.location)?;
    d.set_item("excerpt", &f.excerpt)?;
    d.set_item("description", &f.description)?;
    Ok(d)
}

/// `{"attack", "score", "threshold", "findings", "summary", "truncated_bytes"}`.
fn scan_dict<'py>(py: Python<'py>, scan: &Scan, threshold: u32) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("attack", scan.attack)?;
    d.set_item("score", scan.score)?;
    d.set_item("threshold", threshold)?;
    let findings = scan
        .findings
        .iter()
        .map(|f| finding_dict(py, f))
        .collect::<PyResult<Vec<_>>>()?;
    d.set_item("findings", findings)?;
    d.set_item("summary", scan.summary())?;
    d.set_item("truncated_bytes", scan.truncated_bytes)?;
    Ok(d)
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (config_json, clock=None, open_store=false))]
    fn new(
        py: Python<'_>,
        config_json: &str,
        clock: Option<&ManualClock>,
        open_store: bool,
    ) -> PyResult<Self> {
        let mut core = CoreEngine::from_json(config_json).map_err(|e| config_error(py, &e))?;
        if let Some(c) = clock {
            core = core.with_clock(c.clock.clone());
        }
        if open_store {
            // Opening a file or resolving a URL: without the GIL.
            core = py.detach(|| core.open_store()).map_err(|why| {
                let mut errors = ConfigErrors::default();
                errors.push("storage_uri", why);
                config_error(py, &errors)
            })?;
        }
        let ip_key = PyString::new(py, &core.config().proxies.environ_key()).unbind();
        let needs = core.needs();
        let static_headers = core.static_headers();
        let mut cached = vec![header_pair(py, static_headers)?.unbind()];
        for set in core.cors_sets() {
            let mut all = static_headers.clone();
            all.extend(set.iter().cloned());
            cached.push(header_pair(py, &all)?.unbind());
        }
        Ok(Engine {
            core,
            needs,
            ip_key,
            cached,
            route_needs: OnceLock::new(),
            spool_cap: std::sync::atomic::AtomicU64::new(u64::MAX),
        })
    }

    /// `None`: allow with `static_headers`. A `(headers, names)` tuple: allow with these instead
    /// (the precomputed CORS answers, kept cheap). A `(headers, names, more)` tuple: the same,
    /// plus `more` (this request's rate-limit headers). Otherwise a `Decision`.
    fn inspect<'py>(
        &self,
        py: Python<'py>,
        environ: &Bound<'py, PyDict>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        if let Some(limit) = self.body_limit() {
            buffer_body(py, environ, limit, self.spool_cap())?;
        }
        let Some(verdict) = with_view(py, self.needs, &self.ip_key, &[], environ, |view| {
            self.core.inspect(view)
        }) else {
            return Ok(None);
        };
        let only_headers = verdict.respond.is_none()
            && verdict.events.is_empty()
            && verdict.nonce.is_none()
            && verdict.headers.is_none();
        if only_headers {
            let base = verdict.cors_set.map_or(Some(0), |i| i.checked_add(1));
            if let Some(pair) = base.and_then(|i| self.cached.get(i)) {
                let pair = pair.bind(py);
                return match &verdict.limit_headers {
                    // The cached (headers, names) pair, plus this request's rate-limit state.
                    Some(more) => {
                        let more = PyList::new(py, more)?;
                        let (list, names) = (pair.get_item(0)?, pair.get_item(1)?);
                        Ok(Some(
                            PyTuple::new(py, [list, names, more.into_any()])?.into_any(),
                        ))
                    }
                    None => Ok(Some(pair.clone().into_any())),
                };
            }
        }
        Ok(Some(Bound::new(py, Decision { verdict })?.into_any()))
    }

    /// The client IP after trusted-proxy resolution, or `None`.
    fn client_ip(&self, py: Python<'_>, environ: &Bound<'_, PyDict>) -> Option<String> {
        let needs = Needs {
            forwarded_for: self.needs.forwarded_for,
            ..Needs::default()
        };
        with_view(py, needs, &self.ip_key, &[], environ, |view| {
            self.core.client_ip(view)
        })
        .map(|ip| ip.to_string())
    }

    /// The route stage (bans and rate limits once the endpoint is known): `None` or a
    /// `Decision` (headers to add, or a response).
    #[pyo3(signature = (environ, endpoint))]
    fn inspect_route<'py>(
        &self,
        py: Python<'py>,
        environ: &Bound<'py, PyDict>,
        endpoint: Option<&str>,
    ) -> PyResult<Option<Decision>> {
        let (needs, named) = match self.route_needs.get() {
            Some((needs, named)) => (*needs, named.as_slice()),
            None => (self.needs, &[][..]),
        };
        if needs.body || (needs.detection && !self.needs.detection) {
            // A route check reads the body the WSGI wrapper did not buffer.
            let buffered = environ.contains(intern!(py, "rampart.body"))?;
            let limit = self.core.config().detection.max_body_bytes;
            if !buffered && limit > 0 {
                buffer_body(py, environ, limit, self.spool_cap())?;
            }
        }
        let verdict = with_view(py, needs, &self.ip_key, named, environ, |view| {
            self.core.inspect_route(view, endpoint)
        });
        Ok(verdict.map(|verdict| Decision { verdict }))
    }

    /// The application's `MAX_CONTENT_LENGTH` (`None`: no limit): a multipart body over the
    /// inspection limit is read whole for inspection only up to it.
    #[pyo3(signature = (limit))]
    fn set_spool_cap(&self, limit: Option<u64>) {
        self.spool_cap.store(
            limit.unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Adds route policies (JSON: endpoint → policy); once.
    fn set_routes(&self, py: Python<'_>, routes_json: &str) -> PyResult<()> {
        self.core
            .set_routes(routes_json)
            .map_err(|e| config_error(py, &e))?;
        let keys = self
            .core
            .route_env_keys()
            .iter()
            .map(|k| PyString::intern(py, k).unbind())
            .collect();
        let _ = self.route_needs.set((self.core.route_needs(), keys));
        Ok(())
    }

    /// Whether no check applies to a request of this method and path (`exclude_paths`,
    /// `exclude_methods`).
    fn is_skipped(&self, method: &str, path: &str) -> bool {
        self.core.skips(&RequestView {
            method,
            path,
            ..RequestView::default()
        })
    }

    /// Validates route policies against this configuration, without keeping them.
    fn check_routes(&self, py: Python<'_>, routes_json: &str) -> PyResult<()> {
        self.core
            .check_routes(routes_json)
            .map_err(|e| config_error(py, &e))
    }

    /// After the application answered: counts the response against the route's return
    /// monitors. Returns the event dicts to log.
    #[pyo3(signature = (environ, endpoint, status, body))]
    fn observe_response<'py>(
        &self,
        py: Python<'py>,
        environ: &Bound<'py, PyDict>,
        endpoint: Option<&str>,
        status: u16,
        body: &[u8],
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let needs = Needs {
            forwarded_for: self.needs.forwarded_for,
            ..Needs::default()
        };
        let events = with_view(py, needs, &self.ip_key, &[], environ, |view| {
            self.core.observe_response(view, endpoint, status, body)
        });
        events.iter().map(|e| event_dict(py, e)).collect()
    }

    /// `{endpoint: needs_body}` for the endpoints with return monitors.
    fn response_monitors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (endpoint, body) in self.core.response_monitors() {
            out.set_item(endpoint, body)?;
        }
        Ok(out)
    }

    /// The cloud providers route policies block (their ranges must be loaded).
    fn route_clouds(&self) -> Vec<&'static str> {
        self.core
            .route_clouds()
            .iter()
            .map(Provider::name)
            .collect()
    }

    /// Whether bans and limits wait for the route (`inspect_route`).
    #[getter]
    fn route_mode(&self) -> bool {
        self.core.route_mode()
    }

    /// Inspects the request in `environ` for attacks without acting on it: a scan dict, or
    /// `None` when detection is off or the path is excluded from it.
    fn detect<'py>(
        &self,
        py: Python<'py>,
        environ: &Bound<'py, PyDict>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(d) = self.core.detector() else {
            return Ok(None);
        };
        let threshold = d.settings().threshold;
        let scan = with_view(py, self.needs, &self.ip_key, &[], environ, |view| {
            self.core.scan(view)
        });
        scan.map(|s| scan_dict(py, &s, threshold)).transpose()
    }

    /// Inspects one value as if it arrived at `location` (`query`, `form`/`body`, `json`,
    /// `header`, `cookie`, `path`, `key`) under `name`.
    #[pyo3(signature = (text, location="query", name=""))]
    fn scan_text<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        location: &str,
        name: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let d = self.detector()?;
        let kind = Kind::parse(location).ok_or_else(|| {
            PyValueError::new_err(format!(
                "location must be one of query, form, body, json, header, cookie, path, key, raw; not {location:?}"
            ))
        })?;
        let threshold = d.settings().threshold;
        let scan = py.detach(|| d.scan_text(text, kind, name));
        scan_dict(py, &scan, threshold)
    }

    /// Adds a user rule; its dict. Raises `ConfigError` for a bad pattern, category or id.
    #[pyo3(signature = (pattern, category="custom", score=5, id=None, description=""))]
    fn add_pattern<'py>(
        &self,
        py: Python<'py>,
        pattern: &str,
        category: &str,
        score: i64,
        id: Option<i64>,
        description: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let d = self.detector()?;
        let mut errors = ConfigErrors::default();
        let cat = Category::parse(category);
        if cat.is_none() {
            errors.push(
                "category",
                format!("'{category}' is not a detection category"),
            );
        }
        let score = u8::try_from(score).ok().filter(|s| (1..=100).contains(s));
        if score.is_none() {
            errors.push("score", "must be a whole number from 1 to 100");
        }
        let id = match id.map(u32::try_from) {
            None => None,
            Some(Ok(id)) if id > 0 => Some(id),
            Some(_) => {
                errors.push("id", "must be a whole number from 1 to 4294967295");
                None
            }
        };
        let (Some(cat), Some(score), true) = (cat, score, errors.is_empty()) else {
            return Err(config_error(py, &errors));
        };
        let rule = d
            .add_rule(pattern, cat, score, id, description)
            .map_err(|e| config_error(py, &e))?;
        custom_dict(py, &rule)
    }

    /// Removes user rules by id (an int) or by pattern (a str); how many were removed.
    fn remove_pattern(&self, key: &Bound<'_, PyAny>) -> PyResult<usize> {
        let d = self.detector()?;
        if let Ok(id) = key.extract::<u32>() {
            return Ok(d.remove_rule(Some(id), None));
        }
        let pattern: String = key.extract()?;
        Ok(d.remove_rule(None, Some(&pattern)))
    }

    /// The user rules, as dicts.
    fn custom_patterns<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let d = self.detector()?;
        d.custom_rules()
            .iter()
            .map(|r| custom_dict(py, r))
            .collect()
    }

    /// Whether penetration-attempt detection is on.
    #[getter]
    fn detection_enabled(&self) -> bool {
        self.core.detector().is_some()
    }

    /// Now, in seconds since the epoch, on the engine's clock.
    fn now(&self) -> f64 {
        ms_to_secs(self.core.now_ms())
    }

    /// Bans `ip` for `seconds` (default `auto_ban_duration`): `(until, event)`.
    #[pyo3(signature = (ip, seconds=None, reason=""))]
    fn ban<'py>(
        &self,
        py: Python<'py>,
        ip: &str,
        seconds: Option<f64>,
        reason: &str,
    ) -> PyResult<(f64, Bound<'py, PyDict>)> {
        let ip = ip_arg(ip)?;
        let duration = match seconds {
            None => None,
            Some(s) if s > 0.0 => Some(secs_to_ms(s)?),
            Some(s) => {
                return Err(PyValueError::new_err(format!(
                    "a ban lasts a positive number of seconds, not {s}"
                )))
            }
        };
        let (until, event) = self
            .core
            .ban(ip, duration, reason)
            .map_err(PyRuntimeError::new_err)?;
        Ok((ms_to_secs(until), event_dict(py, &event)?))
    }

    /// Lifts the ban of `ip`; whether there was one.
    fn unban(&self, ip: &str) -> PyResult<bool> {
        Ok(self.core.unban(ip_arg(ip)?))
    }

    /// `(until, reason)` of the ban of `ip`, or `None`.
    fn ban_info(&self, ip: &str) -> PyResult<Option<(f64, String)>> {
        Ok(self
            .core
            .ban_of(ip_arg(ip)?)
            .map(|b| (ms_to_secs(b.until_ms), b.reason)))
    }

    /// Every ban in force: `[(ip, until, reason)]`, soonest to end first.
    fn bans(&self) -> Vec<(String, f64, String)> {
        self.core
            .bans()
            .into_iter()
            .map(|(ip, b)| (ip.to_string(), ms_to_secs(b.until_ms), b.reason))
            .collect()
    }

    /// Counts a suspicious event from `ip`: `(count, banned_until or None, event or None)`.
    fn report<'py>(
        &self,
        py: Python<'py>,
        ip: &str,
    ) -> PyResult<(u32, Option<f64>, Option<Bound<'py, PyDict>>)> {
        let r = self.core.report(ip_arg(ip)?);
        let event = r.event.as_ref().map(|e| event_dict(py, e)).transpose()?;
        Ok((r.count, r.banned_until_ms.map(ms_to_secs), event))
    }

    /// Forgets the rate-limit counters of `ip`.
    fn reset_limits(&self, ip: &str) -> PyResult<()> {
        self.core.reset_limits(ip_arg(ip)?);
        Ok(())
    }

    /// Where `ip` stands against every rate limit that can apply to it, nothing counted: a
    /// dict per limit (`name`, `endpoint`, `key`, `limit`, `window`, `algorithm`, `used`,
    /// `remaining`, `reset`, `retry_after`; times in seconds). Limits counted per endpoint are
    /// listed for each of `endpoints`; `routes` (JSON) stand in for the route policies until
    /// the first request sets them.
    #[pyo3(signature = (ip, endpoints, routes=None))]
    #[allow(clippy::needless_pass_by_value)]
    fn limits_of<'py>(
        &self,
        py: Python<'py>,
        ip: &str,
        endpoints: Vec<String>,
        routes: Option<&str>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let ip = ip_arg(ip)?;
        let names: Vec<&str> = endpoints.iter().map(String::as_str).collect();
        let found = py
            .detach(|| self.core.limits_of(ip, &names, routes))
            .map_err(|e| match e {
                LimitsError::Routes(errors) => config_error(py, &errors),
                LimitsError::Unreachable => PyRuntimeError::new_err(e.to_string()),
            })?;
        found
            .iter()
            .map(|s| {
                let d = PyDict::new(py);
                d.set_item("name", &s.name)?;
                d.set_item("endpoint", &s.endpoint)?;
                d.set_item("key", s.scope.as_str())?;
                d.set_item("limit", s.rule.limit)?;
                d.set_item("window", s.rule.window_secs())?;
                d.set_item("algorithm", s.rule.algorithm.as_str())?;
                d.set_item("used", s.used)?;
                d.set_item("remaining", s.quota.remaining)?;
                d.set_item("reset", ms_to_secs(s.quota.reset_ms))?;
                d.set_item("retry_after", ms_to_secs(s.quota.retry_after_ms))?;
                Ok(d)
            })
            .collect()
    }

    /// Counts a refusal decided in Python under its event action (`live_stats`' `blocked`).
    fn count_refusal(&self, action: &str) {
        self.core.count_refusal(action);
    }

    /// Forgets every counter and ban.
    fn reset_state(&self) {
        self.core.reset_state();
    }

    /// `{"keys", "bans", "bytes"}` of the store.
    fn store_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.core.store_stats())
    }

    /// Live counters of this engine (this process): requests, blocks by action, detections by
    /// category, engine time per call (p50/p99, µs), the store's round trips and errors.
    fn live_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (snap, (round_trips, errors)) = self.core.stats();
        let d = PyDict::new(py);
        d.set_item("requests", snap.requests)?;
        let blocked = PyDict::new(py);
        for (k, v) in &snap.blocked {
            blocked.set_item(k, v)?;
        }
        d.set_item("blocked_total", snap.blocked.values().sum::<u64>())?;
        d.set_item("blocked", blocked)?;
        let detections = PyDict::new(py);
        for (k, v) in &snap.detections {
            detections.set_item(k, v)?;
        }
        d.set_item("detections", detections)?;
        let timing = PyDict::new(py);
        timing.set_item("calls", snap.timed)?;
        #[allow(clippy::cast_precision_loss)]
        let micros = |ns: u64| ns as f64 / 1000.0;
        timing.set_item("p50_us", micros(snap.p50_ns))?;
        timing.set_item("p99_us", micros(snap.p99_ns))?;
        d.set_item("inspection", timing)?;
        let store = PyDict::new(py);
        store.set_item("round_trips", round_trips)?;
        store.set_item("errors", errors)?;
        d.set_item("store", store)?;
        Ok(d)
    }

    /// `(stats, problem)`: the store's counts, and why it is degraded (`None` when healthy).
    fn store_health<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyDict>, Option<String>)> {
        let (stats, problem) = match py.detach(|| self.core.store_health()) {
            Ok(s) => (s, None),
            Err((s, why)) => (s, Some(why)),
        };
        Ok((stats_dict(py, &stats)?, problem))
    }

    /// Why the store is degraded now (`None` when healthy), without talking to it.
    fn store_problem(&self) -> Option<String> {
        self.core.store_problem()
    }

    /// Whether `path` is under one of `exclude_paths`.
    fn is_excluded(&self, path: &str) -> bool {
        self.core.is_excluded(path)
    }

    /// A response Rampart sends itself for `status` (custom body, security and CORS headers).
    #[pyo3(signature = (status, environ, body=None))]
    fn error_response(
        &self,
        py: Python<'_>,
        status: u16,
        environ: &Bound<'_, PyDict>,
        body: Option<String>,
    ) -> PyResult<Decision> {
        if !(100..=599).contains(&status) {
            return Err(PyRuntimeError::new_err(format!("invalid status {status}")));
        }
        let body: Cow<'static, str> = match body {
            Some(b) => Cow::Owned(b),
            None => Cow::Borrowed(rampart_core::decision::reason_phrase(status)),
        };
        let response = with_view(py, self.needs, &self.ip_key, &[], environ, |view| {
            self.core.error_response(status, body, view)
        });
        Ok(Decision {
            verdict: Verdict {
                respond: Some(response),
                ..Verdict::default()
            },
        })
    }

    /// `(headers, names)` for every response on the plain allow path: the header list and the
    /// lower-case names in it that a header set by the application overrides.
    #[getter]
    fn static_headers<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyTuple>> {
        self.cached.first().map(|p| p.bind(py).clone())
    }

    /// Warnings about the configuration, to log at start-up.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.core.config().warnings.clone()
    }

    /// Settings the Python side acts on (logging, hooks, passive mode).
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.core.config();
        let d = PyDict::new(py);
        d.set_item("passive_mode", c.passive_mode)?;
        d.set_item("fail_secure", c.fail_secure)?;
        d.set_item("custom_log_file", c.logging.custom_log_file.clone())?;
        d.set_item("log_suspicious_level", level(c.logging.suspicious_level))?;
        d.set_item("log_request_level", level(c.logging.request_level))?;
        d.set_item("log_json", c.logging.json)?;
        let geo = &c.geo;
        d.set_item("country_rules", geo.active())?;
        d.set_item("ipinfo_token", geo.ipinfo_token.clone())?;
        d.set_item("ipinfo_db_path", geo.ipinfo_db_path.clone())?;
        let clouds = &c.clouds;
        let names: Vec<&str> = clouds.block.iter().map(Provider::name).collect();
        d.set_item("block_cloud_providers", names)?;
        d.set_item("cloud_ip_refresh_interval", clouds.refresh_secs)?;
        let pairs = |list: &[(Provider, String)]| -> PyResult<Bound<'py, PyDict>> {
            let m = PyDict::new(py);
            for (p, v) in list {
                m.set_item(p.name(), v)?;
            }
            Ok(m)
        };
        d.set_item("cloud_ranges_files", pairs(&clouds.files)?)?;
        d.set_item("cloud_ranges_urls", pairs(&clouds.urls)?)?;
        d.set_item("cloud_ranges_cache_dir", clouds.cache_dir.clone())?;
        Ok(d)
    }

    /// Country lookups through `db` (a `MaxMindDB` or `IPInfoManager`'s database); once.
    fn set_geo_database(&self, db: &GeoDatabase) -> PyResult<()> {
        self.core
            .set_country_source(db.slot.clone())
            .map_err(PyRuntimeError::new_err)
    }

    /// Country lookups through a Python object's `get_country(ip)`; once.
    fn set_geo_handler(&self, handler: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = handler.get_type().name()?.to_string();
        let source = PyCountrySource {
            handler: handler.clone().unbind(),
            name,
        };
        self.core
            .set_country_source(Arc::new(source))
            .map_err(PyRuntimeError::new_err)
    }

    /// The country of `ip` as the engine sees it (`None`: not placed, or no source).
    fn country_of(&self, ip: &str) -> PyResult<Option<String>> {
        let ip = ip_arg(ip)?;
        self.core
            .country_of(ip)
            .map(|c| c.map(|c| c.as_str().to_owned()))
            .map_err(PyRuntimeError::new_err)
    }

    /// Puts in a provider's ranges from its own format (or Rampart's cache format). Parsed
    /// without the GIL. Returns `(entries, merged ranges, skipped entries)`.
    fn load_cloud_ranges(
        &self,
        py: Python<'_>,
        provider: &str,
        data: &[u8],
    ) -> PyResult<(usize, usize, usize)> {
        let p = provider_arg(provider)?;
        let ranges = py
            .detach(|| cloud::parse(p, data))
            .map_err(PyValueError::new_err)?;
        let counts = (ranges.entries, ranges.set.ranges(), ranges.skipped);
        self.core.clouds().replace(p, ranges.set);
        Ok(counts)
    }

    /// A provider's current ranges as comma-joined CIDRs (the cache format), or `None`.
    fn cloud_ranges(&self, provider: &str) -> PyResult<Option<String>> {
        let p = provider_arg(provider)?;
        Ok(self.core.clouds().get(p).map(|set| {
            set.to_cidrs()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }))
    }

    /// `{provider: merged ranges}` for the providers loaded so far.
    fn cloud_counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for p in Provider::ALL {
            if let Some(set) = self.core.clouds().get(p) {
                d.set_item(p.name(), set.ranges())?;
            }
        }
        Ok(d)
    }

    /// The provider whose loaded ranges hold `ip`, or `None`.
    fn cloud_provider_of(&self, ip: &str) -> PyResult<Option<&'static str>> {
        let ip = ip_arg(ip)?;
        Ok(self
            .core
            .clouds()
            .provider_of(ip, cloud::Providers::all())
            .map(Provider::name))
    }

    /// Whether the store shares values between hosts (Redis).
    #[getter]
    fn shares_blobs(&self) -> bool {
        self.core.shares_blobs()
    }

    /// A value shared under `{redis_prefix}{key}`, or `None`. Without the GIL.
    fn shared_get<'py>(&self, py: Python<'py>, key: &str) -> Option<Bound<'py, PyBytes>> {
        py.detach(|| self.core.shared_get(key))
            .map(|v| PyBytes::new(py, &v))
    }

    /// Shares `value` under `{redis_prefix}{key}` for `ttl` seconds; whether it was stored.
    fn shared_set(&self, py: Python<'_>, key: &str, value: &[u8], ttl: f64) -> PyResult<bool> {
        let ttl_ms = secs_to_ms(ttl)?;
        Ok(py.detach(|| self.core.shared_set(key, value, ttl_ms)))
    }
}

fn provider_arg(name: &str) -> PyResult<Provider> {
    Provider::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown cloud provider {name:?} (known: AWS, GCP, Azure)"
        ))
    })
}

/// A user's geolocation handler: `get_country(ip)` called when a country rule applies.
#[derive(Debug)]
struct PyCountrySource {
    handler: Py<PyAny>,
    name: String,
}

impl CountrySource for PyCountrySource {
    fn country(&self, ip: IpAddr) -> Result<Option<Country>, String> {
        Python::attach(|py| {
            let name = &self.name;
            let got = self
                .handler
                .bind(py)
                .call_method1(intern!(py, "get_country"), (ip.to_string(),))
                .map_err(|e| format!("{name}.get_country('{ip}') raised {e}"))?;
            if got.is_none() {
                return Ok(None);
            }
            let Ok(code) = got.extract::<String>() else {
                return Err(format!(
                    "{name}.get_country('{ip}') returned a {}, not a country code or None",
                    got.get_type()
                        .name()
                        .map_or_else(|_| "?".into(), |n| n.to_string())
                ));
            };
            if code.trim().is_empty() {
                return Ok(None);
            }
            Country::parse(&code).map(Some).ok_or_else(|| {
                format!(
                    "{name}.get_country('{ip}') returned '{code}', not a two-letter country code"
                )
            })
        })
    }
}

/// A MaxMind-format database the engine looks countries up in; replaced whole by `load`.
#[pyclass(frozen, module = "flask_rampart._native")]
struct GeoDatabase {
    slot: Arc<GeoSlot>,
}

#[pymethods]
impl GeoDatabase {
    #[new]
    fn new() -> Self {
        GeoDatabase {
            slot: Arc::new(GeoSlot::default()),
        }
    }

    /// Reads and swaps in the database at `path` (without the GIL); `ValueError` says why it
    /// cannot be used, and the previous database stays.
    #[allow(clippy::needless_pass_by_value)]
    fn load(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        let db = py
            .detach(|| GeoDb::open(&path))
            .map_err(PyValueError::new_err)?;
        self.slot.replace(Some(db));
        Ok(())
    }

    /// Checks that `path` is a usable database without swapping it in.
    #[staticmethod]
    #[allow(clippy::needless_pass_by_value)]
    fn check(py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.detach(|| GeoDb::open(&path).map(|_| ()))
            .map_err(PyValueError::new_err)
    }

    #[getter]
    fn loaded(&self) -> bool {
        self.slot.get().is_some()
    }

    fn country(&self, ip: &str) -> PyResult<Option<String>> {
        let ip = ip_arg(ip)?;
        Ok(self
            .slot
            .get()
            .and_then(|db| db.country(ip))
            .map(|c| c.as_str().to_owned()))
    }

    fn asn(&self, ip: &str) -> PyResult<Option<u32>> {
        let ip = ip_arg(ip)?;
        Ok(self.slot.get().and_then(|db| db.asn(ip)))
    }

    /// `{"database_type", "build_epoch", "ip_version", "node_count", "bytes"}` or `None`.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(db) = self.slot.get() else {
            return Ok(None);
        };
        let i = db.info();
        let d = PyDict::new(py);
        d.set_item("database_type", i.database_type)?;
        d.set_item("build_epoch", i.build_epoch)?;
        d.set_item("ip_version", i.ip_version)?;
        d.set_item("node_count", i.node_count)?;
        d.set_item("bytes", i.bytes)?;
        Ok(Some(d))
    }
}

/// A small `.mmdb` country database: `networks` maps CIDR ranges to country codes (and,
/// for the IPInfo layout, optionally `(code, asn)`).
#[pyfunction]
#[pyo3(signature = (networks, layout="maxmind", database_type=None))]
fn build_country_db<'py>(
    py: Python<'py>,
    networks: Vec<(String, Bound<'py, PyAny>)>,
    layout: &str,
    database_type: Option<String>,
) -> PyResult<Bound<'py, PyBytes>> {
    let ipinfo = match layout {
        "maxmind" => false,
        "ipinfo" => true,
        other => {
            return Err(PyValueError::new_err(format!(
                "layout must be 'maxmind' or 'ipinfo', not {other:?}"
            )))
        }
    };
    let mut entries = Vec::with_capacity(networks.len());
    for (cidr, value) in networks {
        let net =
            rampart_core::net::cidr::parse_entry(&cidr).map_err(|e| PyValueError::new_err(e.0))?;
        let (code, asn): (String, Option<u32>) = match value.extract::<String>() {
            Ok(code) => (code, None),
            Err(_) => value.extract()?,
        };
        let data = if ipinfo {
            mmdb::Data::ipinfo_country(&code, asn)
        } else {
            mmdb::Data::maxmind_country(&code)
        };
        entries.push((net, data));
    }
    let kind = database_type.unwrap_or_else(|| {
        if ipinfo {
            "ipinfo country_asn.mmdb".into()
        } else {
            "GeoLite2-Country".into()
        }
    });
    let bytes = py.detach(|| mmdb::build(&kind, &entries));
    Ok(PyBytes::new(py, &bytes))
}

#[pymethods]
impl Decision {
    /// Whether Rampart answers this request itself (`status`, `body`, `headers`).
    #[getter]
    fn respond(&self) -> bool {
        self.verdict.respond.is_some()
    }

    #[getter]
    fn status(&self) -> u16 {
        self.verdict.respond.as_ref().map_or(200, |r| r.status)
    }

    #[getter]
    fn status_line(&self) -> String {
        self.verdict
            .respond
            .as_ref()
            .map_or_else(|| "200 OK".to_owned(), rampart_core::Response::status_line)
    }

    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        let body = self
            .verdict
            .respond
            .as_ref()
            .map_or("", |r| r.body.as_str());
        pyo3::types::PyBytes::new(py, body.as_bytes())
    }

    /// The headers of Rampart's own response (all of them), or the headers to add to the
    /// application's response on top of `Engine.static_headers` (`None`: just those).
    #[getter]
    fn headers(&self) -> Option<Headers> {
        match (
            &self.verdict.respond,
            &self.verdict.headers,
            &self.verdict.limit_headers,
        ) {
            (Some(r), _, _) => Some(r.headers.clone()),
            (None, h, None) => h.clone(),
            (None, None, Some(l)) => Some(l.clone()),
            (None, Some(h), Some(l)) => Some(h.iter().chain(l).cloned().collect()),
        }
    }

    /// For the application's response: `(headers, names)` like `Engine.static_headers`, with
    /// the static list and this request's own headers together.
    fn merged_headers<'py>(
        &self,
        py: Python<'py>,
        engine: &Engine,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut all = engine.core.static_headers().clone();
        if let Some(i) = self.verdict.cors_set {
            all.extend(
                engine
                    .core
                    .cors_sets()
                    .get(i)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        all.extend(self.verdict.headers.iter().flatten().cloned());
        all.extend(self.verdict.limit_headers.iter().flatten().cloned());
        header_pair(py, &all)
    }

    #[getter]
    fn nonce(&self) -> Option<String> {
        self.verdict.nonce.clone()
    }

    /// Structured events, ECS-style keys.
    #[getter]
    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for e in &self.verdict.events {
            list.append(event_dict(py, e)?)?;
        }
        Ok(list)
    }

    fn __repr__(&self) -> String {
        format!(
            "Decision(status={}, respond={}, events={})",
            self.status(),
            self.respond(),
            self.verdict.events.len()
        )
    }
}

/// Every field's default, as a JSON object.
#[pyfunction]
fn config_defaults() -> String {
    defaults_json()
}

/// Every value penetration detection would inspect in the request in `environ`, as
/// `[(location, value)]` (`query:q`, `multipart:f.filename`, `json:$.a`, ...), skipping none,
/// and the first reason part of it cannot be inspected as the application reads it
/// (`("body_ambiguous", "multipart: two boundary parameters")`) or `None`. The body is read
/// from `wsgi.input` (up to `max_body_bytes`, replayed for the application) unless already
/// buffered. For differential tests against Werkzeug.
#[pyfunction]
#[pyo3(signature = (environ, max_body_bytes=1 << 20))]
#[allow(clippy::type_complexity)]
fn inspected_values(
    py: Python<'_>,
    environ: &Bound<'_, PyDict>,
    max_body_bytes: usize,
) -> PyResult<(Vec<(String, String)>, Option<(&'static str, String)>)> {
    if environ.get_item(BODY_KEY)?.is_none() {
        buffer_body(py, environ, max_body_bytes, u64::MAX)?;
    }
    let ip_key = PyString::new(py, "HTTP_X_FORWARDED_FOR").unbind();
    let needs = Needs {
        detection: true,
        body: true,
        ..Needs::default()
    };
    let (values, why) = with_view(py, needs, &ip_key, &[], environ, |view| {
        rampart_core::detect::extract::values(view)
    });
    Ok((values, why.map(|(reason, why)| (reason.as_str(), why))))
}

/// Every configuration field name.
#[pyfunction]
fn field_names() -> Vec<&'static str> {
    FIELDS.iter().map(|f| f.name).collect()
}

#[pymodule(gil_used = false)]
mod _native {
    #[pymodule_export]
    use super::build_country_db;
    #[pymodule_export]
    use super::config_defaults;
    #[pymodule_export]
    use super::field_names;
    #[pymodule_export]
    use super::inspected_values;
    #[pymodule_export]
    use super::Decision;
    #[pymodule_export]
    use super::Engine;
    #[pymodule_export]
    use super::GeoDatabase;
    #[pymodule_export]
    use super::ManualClock;

    #[pymodule_export]
    const VERSION: &str = rampart_core::VERSION;
}

/// A buffered body as the engine reads it: `bytes`, or a read-only memory map of the file a
/// large multipart body was spooled to (see `flask_rampart.detection._spool`).
mod mapped {
    #![allow(unsafe_code)]

    use pyo3::prelude::*;
    use pyo3::types::PyBytes;

    pub enum Body<'py> {
        Bytes(Bound<'py, PyBytes>),
        Mapped(memmap2::Mmap),
    }

    impl<'py> Body<'py> {
        /// `bytes`, or an open file (its `fileno()`), mapped read-only.
        pub fn of(obj: &Bound<'py, PyAny>) -> Option<Body<'py>> {
            if let Ok(b) = obj.cast::<PyBytes>() {
                return Some(Body::Bytes(b.clone()));
            }
            let fd: i32 = obj.call_method0("fileno").ok()?.extract().ok()?;
            // The file's position is the application's (it reads the same file); the mapping
            // takes the file's size from the file itself.
            unsafe { memmap2::Mmap::map(fd) }.ok().map(Body::Mapped)
        }

        pub fn as_bytes(&self) -> &[u8] {
            match self {
                Body::Bytes(b) => b.as_bytes(),
                Body::Mapped(m) => m,
            }
        }
    }
}
