//! The request pipeline: the one place that says which checks run, in which order.
//!
//! Each check is a small function returning `Some(Hit)` when it would block. In enforcing mode the
//! first hit becomes the response; in passive mode every hit becomes an event and the request goes
//! on. The plain allow path allocates nothing and returns `None`: the adapter then appends the
//! precomputed [`Engine::static_headers`].

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::config::{Config, Storage};
use crate::decision::{Event, Headers, Outcome, Response, Verdict};
use crate::detect::{Detector, Finding, Scan};
use crate::error::ConfigErrors;
use crate::filter::country::Refusal;
use crate::limit::policy::{Limit, Messages};
use crate::limit::{Clock, Quota};
use crate::net::client_ip::ClientAddr;
use crate::net::cloud::{CloudTable, Provider};
use crate::net::geo::{is_unplaceable, Country, CountrySource};
use crate::request::RequestView;
use crate::respond::cors::{CorsAnswer, CorsPolicy};
use crate::route::{self, RoutePolicy, Routes, Skips};
use crate::stats::{Snapshot, Stats};
use crate::store::{
    Admission, Ban, Charge, MemoryStore, RedisStore, ShmStore, Store, StoreStats, Subject,
};

pub use limits::{LimitState, LimitsError};

/// The compiled policy. Built once at start-up; `inspect` takes `&self`. Counters and bans live in
/// the [`Store`]; route policies are added once, when the adapter knows its routes.
#[derive(Debug, Clone)]
pub struct Engine {
    config: Config,
    store: Arc<dyn Store>,
    clock: Clock,
    routes: OnceLock<Routes>,
    /// Where countries come from (`geo_ip_handler`), set once by the adapter.
    geo: Arc<OnceLock<Arc<dyn CountrySource>>>,
    /// Each cloud provider's current ranges, replaced whole on refresh.
    clouds: Arc<CloudTable>,
    /// Live counters (`rampart.stats`), shared by clones.
    stats: Arc<Stats>,
}

/// What [`Engine::report`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Strikes counted in the window, this one included.
    pub count: u32,
    /// Set when this report caused a ban, until then (ms since the epoch).
    pub banned_until_ms: Option<u64>,
    /// An event when something worth logging happened (a ban, or one passive mode held back).
    pub event: Option<Event>,
}

/// Which request headers the engine will look at, so an adapter reads only those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Needs {
    pub user_agent: bool,
    pub forwarded_for: bool,
    pub forwarded_proto: bool,
    pub origin: bool,
    pub host: bool,
    /// Route checks: the content type and the buffered body (honeypot fields).
    pub body: bool,
    /// Detection: every header, the cookies, the content type and the buffered body.
    pub detection: bool,
}

/// Everything a check may look at.
struct Ctx<'r, 'a> {
    req: &'r RequestView<'a>,
    client: ClientAddr,
    /// The client is on the IP whitelist (so country and cloud rules do not apply to it).
    whitelisted: bool,
}

/// A check's finding: what would be sent, and why.
struct Hit {
    status: u16,
    body: Cow<'static, str>,
    action: &'static str,
    rule: String,
    message: String,
    location: Option<String>,
    /// Extra response headers (`Retry-After`, rate-limit state).
    headers: Headers,
    /// What detection found, for `penetration_attempt`.
    findings: Vec<Finding>,
    country: Option<Country>,
    cloud: Option<Provider>,
    /// Counts toward the automatic ban (country and cloud blocks with `geo_auto_ban`).
    strike: bool,
}

impl Hit {
    fn new(
        status: u16,
        body: &'static str,
        action: &'static str,
        rule: impl Into<String>,
        message: String,
    ) -> Hit {
        Hit {
            status,
            body: Cow::Borrowed(body),
            action,
            rule: rule.into(),
            message,
            location: None,
            headers: Vec::new(),
            findings: Vec::new(),
            country: None,
            cloud: None,
            strike: false,
        }
    }
}

/// A check: `Some(hit)` when it would block. It may leave notes (a failing geolocation handler)
/// in the events.
type Check = fn(&Engine, &Ctx<'_, '_>, &mut Vec<Event>) -> Option<Hit>;

/// The checks that need no route, in order, each with the `bypass` name that skips it. Excluded
/// paths and methods are decided before this list runs. A check that some route skips waits for
/// the route ([`Engine::inspect_route`]); the others run before routing. Then come the route's
/// own checks, admission (the client's ban, then every applicable rate limit, counted in one
/// store operation; see [`Engine::admission`]), detection and the route's monitors: right after
/// this list when no route policy exists, otherwise once the adapter knows the route. The CORS
/// preflight answer and the Python-side `custom_request_check` come last.
const PIPELINE: &[(Check, Skips)] = &[
    (emergency_mode, Skips::NONE),
    (enforce_https, Skips::HTTPS),
    (blacklist, Skips::IP),
    (whitelist, Skips::IP),
    (country, Skips::COUNTRIES),
    (cloud_provider, Skips::CLOUDS),
    (user_agent, Skips::USER_AGENT),
];

impl Engine {
    /// Builds an engine from a validated config, with an in-memory store and the system clock.
    #[must_use]
    pub fn new(config: Config) -> Engine {
        let store = Arc::new(MemoryStore::new(config.max_tracked_keys));
        Engine {
            config,
            store,
            clock: Clock::System,
            routes: OnceLock::new(),
            geo: Arc::new(OnceLock::new()),
            clouds: Arc::new(CloudTable::default()),
            stats: Arc::new(Stats::default()),
        }
    }

    /// The same engine on another clock (tests, simulations).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Engine {
        self.clock = clock;
        self
    }

    /// The same engine on the store its config names (`storage_uri`): opens the shared-memory
    /// file or connects to Redis. [`Engine::new`] alone keeps everything in this process.
    ///
    /// # Errors
    /// When the store cannot be opened; the message says which and why.
    pub fn open_store(self) -> Result<Engine, String> {
        let store: Arc<dyn Store> = match &self.config.storage {
            Storage::Memory => return Ok(self),
            Storage::Shm(options) => Arc::new(ShmStore::open(options)?),
            Storage::Redis(options) => {
                Arc::new(RedisStore::open(options, self.config.max_tracked_keys)?)
            }
        };
        Ok(self.with_store(store))
    }

    /// The same engine on another store (shared with other engines or processes).
    #[must_use]
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Engine {
        self.store = store;
        self
    }

    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Adds the route policies (JSON: endpoint → policy, see [`crate::route`]). Once only:
    /// the adapter calls it when its routes are final.
    ///
    /// # Errors
    /// Every bad entry; or a single error when routes were already set.
    pub fn set_routes(&self, json: &str) -> Result<(), ConfigErrors> {
        let routes = self.parse_routes(json)?;
        self.routes.set(routes).map_err(|_| {
            let mut e = ConfigErrors::default();
            e.push("<routes>", "route policies were already set");
            e
        })
    }

    /// Validates route policies against this configuration without keeping them (decorators
    /// check their arguments when they are applied).
    ///
    /// # Errors
    /// Every bad entry.
    pub fn check_routes(&self, json: &str) -> Result<(), ConfigErrors> {
        self.parse_routes(json).map(|_| ())
    }

    fn parse_routes(&self, json: &str) -> Result<Routes, ConfigErrors> {
        let c = &self.config;
        let cx = route::Context {
            default_algorithm: c.rate_limits.default_algorithm,
            has_geo_source: c.geo.has_handler
                || c.geo.ipinfo_token.is_some()
                || self.geo.get().is_some(),
            detector: c.detection.detector.as_ref(),
            dormant_detection: c.detection.dormant.as_ref(),
        };
        route::parse_routes(json, &cx)
    }

    /// Whether the route stage must run: some route has a policy, or a limit is counted per
    /// endpoint. The adapter then calls [`Engine::inspect_route`] once routing is done;
    /// otherwise [`Engine::inspect`] does it all.
    #[must_use]
    pub fn route_mode(&self) -> bool {
        self.routes.get().is_some_and(|r| !r.is_empty())
            || (self.config.rate_limits.enabled && self.config.rate_limits.needs_endpoint())
    }

    /// What [`Engine::inspect_route`] reads: [`Engine::needs`] and what route checks add.
    #[must_use]
    pub fn route_needs(&self) -> Needs {
        let mut needs = self.needs();
        if let Some(r) = self.routes.get() {
            needs.user_agent |= r.user_agent;
            needs.host |= r.host;
            needs.body |= r.body;
            needs.detection |= r.detector.is_some();
        }
        needs
    }

    /// The WSGI environ keys route checks read ([`RequestView::named`]).
    #[must_use]
    pub fn route_env_keys(&self) -> &[String] {
        self.routes.get().map_or(&[], |r| r.env_keys.as_slice())
    }

    /// The endpoints with return monitors, each with whether its patterns need the body.
    #[must_use]
    pub fn response_monitors(&self) -> Vec<(String, bool)> {
        let Some(routes) = self.routes.get() else {
            return Vec::new();
        };
        routes
            .by_endpoint
            .iter()
            .filter(|(_, p)| !p.returns.is_empty())
            .map(|(e, p)| {
                let body = p.returns.iter().any(|m| match &m.kind {
                    route::MonitorKind::Return(pattern) => pattern.needs_body(),
                    _ => false,
                });
                (e.clone(), body)
            })
            .collect()
    }

    /// The cloud providers route policies block (the adapter loads their ranges).
    #[must_use]
    pub fn route_clouds(&self) -> crate::net::cloud::Providers {
        let mut all = crate::net::cloud::Providers::default();
        if let Some(r) = self.routes.get() {
            for p in r.by_endpoint.values() {
                for provider in p.clouds.iter() {
                    all.insert(provider);
                }
            }
        }
        all
    }

    /// Validates and builds in one step, reporting every problem at once.
    ///
    /// # Errors
    /// Every bad field.
    pub fn from_json(json: &str) -> Result<Engine, ConfigErrors> {
        Config::from_json(json).map(Engine::new)
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Headers for every allowed response when `inspect` returned `None`.
    #[must_use]
    pub fn static_headers(&self) -> &Headers {
        &self.config.headers.static_headers
    }

    #[must_use]
    pub fn needs(&self) -> Needs {
        let c = &self.config;
        let proxies = !c.proxies.trusted.is_empty();
        Needs {
            user_agent: c.user_agents.is_some(),
            forwarded_for: c.proxies.reads_header(),
            forwarded_proto: proxies && c.proxies.trust_forwarded_proto,
            origin: c.cors.is_some(),
            host: c.enforce_https,
            body: false,
            detection: c.detection.detector.is_some(),
        }
    }

    /// The client address after trusted-proxy resolution.
    #[must_use]
    pub fn client_ip(&self, req: &RequestView<'_>) -> Option<IpAddr> {
        self.config.proxies.resolve(req.peer, req.forwarded_for).ip
    }

    /// What the checks see: the request and its resolved client.
    fn context<'r, 'a>(&self, req: &'r RequestView<'a>) -> Ctx<'r, 'a> {
        let client = self.config.proxies.resolve(req.peer, req.forwarded_for);
        let whitelisted = match (&self.config.whitelist, client.ip) {
            (Some(list), Some(ip)) => list.contains(ip),
            _ => false,
        };
        Ctx {
            req,
            client,
            whitelisted,
        }
    }

    /// Whether no check applies to this request (an excluded path or method).
    #[must_use]
    pub fn skips(&self, req: &RequestView<'_>) -> bool {
        self.is_excluded(req.path)
            || self
                .config
                .exclude_methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(req.method))
    }

    /// Decides a request. `None` means: allow, with [`Engine::static_headers`], nothing to log.
    #[must_use]
    pub fn inspect(&self, req: &RequestView<'_>) -> Option<Verdict> {
        let start = Instant::now();
        self.stats.request();
        let verdict = self.decide(req);
        self.stats.timed(elapsed_ns(start));
        verdict
    }

    fn decide(&self, req: &RequestView<'_>) -> Option<Verdict> {
        let ctx = self.context(req);
        let mut events = Vec::new();
        let mut limit_headers = None;
        if !self.skips(req) {
            let deferred = self.routes.get().map_or(Skips::NONE, |r| r.deferred);
            for (check, skip) in PIPELINE {
                if deferred.has(*skip) {
                    continue;
                }
                if let Some(block) = self.run(*check, &ctx, &mut events) {
                    return Some(block);
                }
            }
            if !self.route_mode() {
                match self.admission(&ctx, None, None, &mut events) {
                    Ok(headers) => limit_headers = headers,
                    Err(hit) => {
                        if let Some(block) = self.enforce(&hit, &ctx, &mut events) {
                            return Some(block);
                        }
                    }
                }
                if let Some(hit) = self.detection(&ctx, None, &mut events) {
                    if let Some(block) = self.enforce(&hit, &ctx, &mut events) {
                        return Some(block);
                    }
                }
            }
        }
        self.allow(req, events, limit_headers)
    }

    /// Runs one check: a hit that counts toward the automatic ban is reported, and a blocking
    /// one becomes the verdict (or, in passive mode, an event).
    fn run(&self, check: Check, ctx: &Ctx<'_, '_>, events: &mut Vec<Event>) -> Option<Verdict> {
        let hit = check(self, ctx, events)?;
        self.settle(&hit, ctx, events)
    }

    fn settle(&self, hit: &Hit, ctx: &Ctx<'_, '_>, events: &mut Vec<Event>) -> Option<Verdict> {
        if hit.strike {
            if let Some(ip) = ctx.client.ip {
                events.extend(self.report(ip).event);
            }
        }
        self.enforce(hit, ctx, events)
    }

    /// The route stage, once the Flask endpoint is known (`None` when routing found none): the
    /// global checks some route skips (unless this one does), the route's own checks, bans and
    /// rate limits, detection, and the route's monitors. Used only in [`Engine::route_mode`].
    /// `None` means nothing to add; otherwise the verdict's `headers` go on the response, or it
    /// responds.
    #[must_use]
    pub fn inspect_route(&self, req: &RequestView<'_>, endpoint: Option<&str>) -> Option<Verdict> {
        let start = Instant::now();
        let verdict = self.decide_route(req, endpoint);
        self.stats.timed(elapsed_ns(start));
        verdict
    }

    fn decide_route(&self, req: &RequestView<'_>, endpoint: Option<&str>) -> Option<Verdict> {
        if self.skips(req) {
            return None;
        }
        let verdict = self.route_stage(req, endpoint);
        if verdict.respond.is_some() {
            return Some(verdict);
        }
        // A preflight the checks let through is answered here (the WSGI stage left it).
        match self.preflight(req) {
            Some(response) => Some(Verdict {
                respond: Some(response),
                ..verdict
            }),
            None => (verdict != Verdict::default()).then_some(verdict),
        }
    }

    /// [`Engine::inspect_route`] before the preflight answer: a block, or what to add (maybe
    /// nothing).
    fn route_stage(&self, req: &RequestView<'_>, endpoint: Option<&str>) -> Verdict {
        let ctx = self.context(req);
        let mut events = Vec::new();
        let route = self.routes.get().and_then(|r| r.get(endpoint));
        let skips = route.map_or(Skips::NONE, |r| r.skips);
        let deferred = self.routes.get().map_or(Skips::NONE, |r| r.deferred);
        for (check, skip) in PIPELINE {
            if deferred.has(*skip) && !skips.has(*skip) {
                if let Some(block) = self.run(*check, &ctx, &mut events) {
                    return block;
                }
            }
        }
        if let Some(r) = route {
            for check in route_checks::CHECKS {
                if let Some(hit) = check(self, &ctx, r, &mut events) {
                    if let Some(block) = self.settle(&hit, &ctx, &mut events) {
                        return block;
                    }
                }
            }
        }
        let headers = match self.admission(&ctx, Some(endpoint.unwrap_or("")), route, &mut events) {
            Ok(headers) => headers,
            Err(hit) => {
                if let Some(block) = self.enforce(&hit, &ctx, &mut events) {
                    return block;
                }
                None
            }
        };
        if let Some(hit) = self.detection(&ctx, route, &mut events) {
            if let Some(block) = self.enforce(&hit, &ctx, &mut events) {
                return block;
            }
        }
        if let Some(r) = route {
            self.monitor(&ctx, endpoint.unwrap_or(""), &r.monitors, 200, &mut events);
        }
        Verdict {
            limit_headers: headers,
            events,
            ..Verdict::default()
        }
    }

    /// A blocking finding: the block verdict, or in passive mode an event and `None`.
    fn enforce(&self, hit: &Hit, ctx: &Ctx<'_, '_>, events: &mut Vec<Event>) -> Option<Verdict> {
        if self.config.passive_mode {
            events.push(Self::event(hit, Outcome::Passive, ctx));
            return None;
        }
        events.push(Self::event(hit, Outcome::Blocked, ctx));
        self.stats.blocked(hit.action);
        Some(Verdict {
            respond: Some(self.block_response(hit, ctx.req)),
            events: std::mem::take(events),
            ..Verdict::default()
        })
    }

    /// Admission: the client's ban, then every rate limit that applies, counted all or nothing
    /// in one store operation. `endpoint` is the Flask endpoint (`None` before routing) and
    /// `route` its policy. `Ok` carries the rate-limit headers for the response.
    fn admission(
        &self,
        ctx: &Ctx<'_, '_>,
        endpoint: Option<&str>,
        route: Option<&RoutePolicy>,
        events: &mut Vec<Event>,
    ) -> Result<Option<Headers>, Box<Hit>> {
        let skips = route.map_or(Skips::NONE, |r| r.skips);
        let ip = ctx.client.ip;
        let ban_subject = if self.config.bans.enabled && !skips.has(Skips::IP_BAN) {
            ip.map(Subject::ip)
        } else {
            None
        };
        let rl = &self.config.rate_limits;
        let mut limits: Vec<&Limit> = Vec::new();
        if !skips.has(Skips::RATE_LIMIT) {
            // A route's `geo_rate_limit` entry for the client replaces the global limits, as a
            // `rate_limit` (standalone) does; a client it has no entry for gets the global ones.
            let geo = route.and_then(|r| self.geo_limit(ctx, r, events));
            if rl.enabled {
                if !route.is_some_and(|r| r.standalone) && geo.is_none() {
                    limits.extend(&rl.global);
                }
                if let Some(by_path) = rl.by_path.get(ctx.req.path) {
                    limits.extend(by_path);
                }
            }
            // A route's own limits are its decorators': they apply whatever the global switch.
            if let Some(r) = route {
                limits.extend(&r.limits);
            }
            limits.extend(geo);
        }
        if ban_subject.is_none() && limits.is_empty() {
            return Ok(None);
        }
        let name = endpoint.unwrap_or("");
        let charges: Vec<Charge> = limits
            .iter()
            .map(|l| Charge {
                key: l.scope.key(l.id, ip, name),
                rule: l.rule,
            })
            .collect();
        let now = self.clock.now_ms();
        let mut quotas = Vec::new();
        let admission = self.store.admit(now, ban_subject, &charges, &mut quotas);
        if let Some(note) = self.store.take_warning() {
            events.push(storage_event(note, ctx));
        }
        match admission {
            Admission::Admitted => Ok(self.limit_headers(&limits, &quotas, now, None)),
            Admission::Unavailable => Err(Box::new(unavailable_hit())),
            Admission::Banned(ban) => Err(Box::new(self.banned_hit(ip, &ban, now))),
            Admission::Limited { index } => {
                let mut hit = self.limited_hit(ip, limits[index], &quotas[index]);
                if let Some(h) = self.limit_headers(&limits, &quotas, now, Some(index)) {
                    hit.headers.extend(h);
                }
                Err(Box::new(hit))
            }
        }
    }

    /// `X-RateLimit-*` (and the draft `RateLimit-Policy` / `RateLimit`) for the limits that
    /// applied. The `X-` trio describes the limit closest to refusing (or the one that refused).
    fn limit_headers(
        &self,
        limits: &[&Limit],
        quotas: &[Quota],
        now_ms: u64,
        refused: Option<usize>,
    ) -> Option<Headers> {
        let rl = &self.config.rate_limits;
        if limits.is_empty() || quotas.len() != limits.len() || !(rl.headers || rl.draft_headers) {
            return None;
        }
        let mut headers = Vec::with_capacity(5);
        if rl.headers {
            let pick = refused.or_else(|| {
                (0..quotas.len()).min_by_key(|&i| (quotas[i].remaining, quotas[i].limit))
            })?;
            let q = quotas[pick];
            let reset_epoch = now_ms.saturating_add(q.reset_ms).div_ceil(1000);
            headers.push(("X-RateLimit-Limit".to_owned(), q.limit.to_string()));
            headers.push(("X-RateLimit-Remaining".to_owned(), q.remaining.to_string()));
            headers.push(("X-RateLimit-Reset".to_owned(), reset_epoch.to_string()));
        }
        if rl.draft_headers {
            let mut policy = String::new();
            let mut state = String::new();
            for (l, q) in limits.iter().zip(quotas) {
                let sep = if policy.is_empty() { "" } else { ", " };
                let name = draft_name(&l.name);
                let _ = write!(
                    policy,
                    "{sep}\"{name}\";q={};w={}",
                    l.rule.limit,
                    l.rule.window_secs()
                );
                let _ = write!(
                    state,
                    "{sep}\"{name}\";r={};t={}",
                    q.remaining,
                    q.reset_ms.div_ceil(1000)
                );
            }
            headers.push(("RateLimit-Policy".to_owned(), policy));
            headers.push(("RateLimit".to_owned(), state));
        }
        Some(headers)
    }

    /// Sets where countries come from (the `geo_ip_handler`); once.
    ///
    /// # Errors
    /// A source was already set.
    pub fn set_country_source(&self, source: Arc<dyn CountrySource>) -> Result<(), &'static str> {
        self.geo
            .set(source)
            .map_err(|_| "the geolocation source was already set")
    }

    /// The country of `ip` from the configured source: `Ok(None)` when no source is set, the
    /// address is private, or the source does not place it.
    ///
    /// # Errors
    /// The source failed (a handler raised).
    pub fn country_of(&self, ip: IpAddr) -> Result<Option<Country>, String> {
        if is_unplaceable(ip) {
            return Ok(None);
        }
        self.geo.get().map_or(Ok(None), |s| s.country(ip))
    }

    /// Each cloud provider's current ranges (the adapter loads and refreshes them).
    #[must_use]
    pub fn clouds(&self) -> &CloudTable {
        &self.clouds
    }

    /// Whether the store shares values between hosts ([`Engine::shared_get`]).
    #[must_use]
    pub fn shares_blobs(&self) -> bool {
        self.store.shares_blobs()
    }

    /// A value other hosts shared under `{prefix}{key}` (Redis only).
    #[must_use]
    pub fn shared_get(&self, key: &str) -> Option<Vec<u8>> {
        self.store.blob_get(key)
    }

    /// Shares a value with other hosts for `ttl_ms` (Redis only); whether it was stored.
    #[must_use]
    pub fn shared_set(&self, key: &str, value: &[u8], ttl_ms: u64) -> bool {
        self.store.blob_set(key, value, ttl_ms)
    }

    /// The compiled detector, when detection is on.
    #[must_use]
    pub fn detector(&self) -> Option<&Detector> {
        self.config.detection.detector.as_deref()
    }

    /// Inspects a request for attacks without acting on it (what the adapter's
    /// `detect_penetration_attempt` reports). `None` when detection is off or the path is
    /// excluded from it.
    #[must_use]
    pub fn scan(&self, req: &RequestView<'_>) -> Option<Scan> {
        let d = self.detector()?;
        (!d.skips_path(req.path)).then(|| d.scan_request(req))
    }

    /// Detection: an attack is a hit (403 "Suspicious activity detected") that counts toward
    /// the automatic ban; the request that reaches the threshold gets 403 "IP has been banned".
    /// With `detection_action="log"` the attack is only an event. A value too long to inspect
    /// whole leaves a `noted` event saying how much was not read.
    fn detection(
        &self,
        ctx: &Ctx<'_, '_>,
        route: Option<&RoutePolicy>,
        events: &mut Vec<Event>,
    ) -> Option<Hit> {
        let policy = &self.config.detection;
        let detector = match route {
            Some(r) if r.skips.has(Skips::DETECTION) || r.detection == Some(false) => None,
            Some(r) if r.detection == Some(true) => self
                .detector()
                .or_else(|| self.routes.get().and_then(|rs| rs.detector.as_deref())),
            _ => self.detector(),
        }?;
        let scan = (!detector.skips_path(ctx.req.path)).then(|| detector.scan_request(ctx.req))?;
        if scan.truncated_bytes > 0 {
            let note = Hit::new(
                200,
                "",
                "inspection_truncated",
                "detect:truncated",
                format!(
                    "{} bytes not inspected (over the detection limits) at {}",
                    scan.truncated_bytes,
                    scan.truncated_at.join(", ")
                ),
            );
            events.push(Self::event(&note, Outcome::Noted, ctx));
        }
        if !scan.attack {
            return scan
                .uninspectable
                .and_then(|(reason, why)| Self::uninspectable(policy, reason, why, ctx, events));
        }
        let mut categories: Vec<&'static str> =
            scan.findings.iter().map(|f| f.category.as_str()).collect();
        categories.sort_unstable();
        categories.dedup();
        for c in categories {
            self.stats.detected(c);
        }
        let rules: Vec<String> = scan.findings.iter().map(|f| f.rule.to_string()).collect();
        let mut hit = Hit::new(
            policy.status,
            "Suspicious activity detected",
            "penetration_attempt",
            format!("detect:{}", rules.join(",")),
            format!("score {}: {}", scan.score, scan.summary()),
        );
        hit.findings = scan.findings;
        let ip = ctx.client.ip;
        let mut banned = false;
        if policy.auto_ban && !policy.log_only {
            if let Some(ip) = ip {
                let report = self.report(ip);
                banned = report.banned_until_ms.is_some();
                events.extend(report.event);
            }
        }
        if policy.log_only {
            events.push(Self::event(&hit, Outcome::Passive, ctx));
            return None;
        }
        if banned {
            hit.status = 403;
            hit.body = Cow::Borrowed("IP has been banned");
        }
        Some(hit)
    }

    /// A body that cannot be inspected as the application will read it, and held no attack in
    /// what could be read: refused (413 or 400), or let through with an event, as
    /// `detection_uninspectable` says. Not a strike: nothing hostile was seen.
    fn uninspectable(
        policy: &crate::detect::policy::DetectPolicy,
        reason: crate::detect::Uninspectable,
        why: String,
        ctx: &Ctx<'_, '_>,
        events: &mut Vec<Event>,
    ) -> Option<Hit> {
        use crate::detect::policy::UninspectablePolicy;
        use crate::detect::Uninspectable;
        let body = match reason {
            Uninspectable::TooLarge => "Request body too large to inspect",
            Uninspectable::Malformed => "Malformed request body",
            Uninspectable::Ambiguous => "Ambiguous request body",
        };
        let hit = Hit::new(
            reason.status(),
            body,
            "request_uninspectable",
            format!("uninspectable:{}", reason.as_str()),
            why,
        );
        match policy.uninspectable {
            UninspectablePolicy::Block => return Some(hit),
            UninspectablePolicy::Log => events.push(Self::event(&hit, Outcome::Detected, ctx)),
            UninspectablePolicy::Allow => events.push(Self::event(&hit, Outcome::Noted, ctx)),
        }
        None
    }

    fn banned_hit(&self, ip: Option<IpAddr>, ban: &Ban, now_ms: u64) -> Hit {
        let secs = ban.until_ms.saturating_sub(now_ms).div_ceil(1000).max(1);
        let who = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let mut hit = Hit::new(
            403,
            "IP address banned",
            "ip_ban_enforced",
            "ip_ban",
            format!(
                "IP address {who} is banned for {secs} more s ({})",
                ban.reason
            ),
        );
        if self.config.messages == Messages::Detailed {
            hit.body = Cow::Owned(format!("ip {who} banned for {secs}s ({})", ban.reason));
        }
        hit.headers
            .push(("Retry-After".to_owned(), secs.to_string()));
        hit
    }

    fn limited_hit(&self, ip: Option<IpAddr>, limit: &Limit, quota: &Quota) -> Hit {
        let secs = quota.retry_after_ms.div_ceil(1000).max(1);
        let who = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let (n, w) = (limit.rule.limit, limit.rule.window_secs());
        let mut hit = Hit::new(
            429,
            "Too many requests",
            "rate_limited",
            format!("rate_limit:{}", limit.name),
            format!(
                "{who} is over {n} requests in {w}s ({}, {}, keyed by {}); retry in {secs}s",
                limit.name,
                limit.rule.algorithm.as_str(),
                limit.scope.as_str()
            ),
        );
        if self.config.messages == Messages::Detailed {
            hit.body = Cow::Owned(format!(
                "ip {who} rate limited for {secs}s (over {n} requests in a {w}s window)"
            ));
        }
        hit.headers
            .push(("Retry-After".to_owned(), secs.to_string()));
        hit
    }

    /// Bans `ip` for `duration_ms` (default: `auto_ban_duration`). Returns the end of the ban
    /// and an event to log.
    ///
    /// # Errors
    /// When IP banning is disabled.
    pub fn ban(
        &self,
        ip: IpAddr,
        duration_ms: Option<u64>,
        reason: &str,
    ) -> Result<(u64, Event), &'static str> {
        if !self.config.bans.enabled {
            return Err("IP banning is disabled (enable_ip_banning=False)");
        }
        let now = self.clock.now_ms();
        let duration = duration_ms.unwrap_or(self.config.bans.duration_ms).max(1);
        let until = now.saturating_add(duration);
        let reason = if reason.is_empty() {
            "banned manually"
        } else {
            reason
        };
        self.store.ban(Subject::ip(ip), until, reason);
        let event = ban_event(
            ip,
            "ip_banned",
            Outcome::Blocked,
            format!(
                "IP address {ip} banned for {}s ({reason})",
                duration.div_ceil(1000)
            ),
        );
        Ok((until, event))
    }

    /// Lifts the ban of `ip`; whether there was one.
    #[must_use]
    pub fn unban(&self, ip: IpAddr) -> bool {
        self.store.unban(Subject::ip(ip))
    }

    /// The ban of `ip`, if one is in force.
    #[must_use]
    pub fn ban_of(&self, ip: IpAddr) -> Option<Ban> {
        self.store.ban_of(Subject::ip(ip), self.clock.now_ms())
    }

    /// Every ban in force, soonest to end first.
    #[must_use]
    pub fn bans(&self) -> Vec<(IpAddr, Ban)> {
        self.store
            .bans(self.clock.now_ms())
            .into_iter()
            .map(|(s, b)| (s.as_ip(), b))
            .collect()
    }

    /// Counts a suspicious event from `ip` toward the automatic ban (`auto_ban_threshold` in
    /// `auto_ban_window` seconds bans for `auto_ban_duration`). In passive mode the ban is only
    /// logged. Nothing happens when banning is disabled or the client is already banned.
    #[must_use]
    pub fn report(&self, ip: IpAddr) -> Report {
        let bans = &self.config.bans;
        let none = Report {
            count: 0,
            banned_until_ms: None,
            event: None,
        };
        if !bans.enabled {
            return none;
        }
        let subject = Subject::ip(ip);
        let now = self.clock.now_ms();
        if self.store.ban_of(subject, now).is_some() {
            return none;
        }
        let rule = bans.strike_rule();
        let reason = format!(
            "reported {} times in a {}s window",
            rule.limit,
            rule.window_secs()
        );
        let ban_for = (!self.config.passive_mode).then_some(bans.duration_ms);
        let strike = self.store.strike(now, subject, &rule, ban_for, &reason);
        let secs = bans.duration_ms.div_ceil(1000);
        let event = if let Some(_until) = strike.banned_until_ms {
            Some(ban_event(
                ip,
                "ip_banned",
                Outcome::Blocked,
                format!("IP address {ip} banned for {secs}s ({reason})"),
            ))
        } else if strike.count >= rule.limit {
            Some(ban_event(
                ip,
                "ip_banned",
                Outcome::Passive,
                format!("IP address {ip} would be banned for {secs}s ({reason})"),
            ))
        } else {
            None
        };
        Report {
            count: strike.count,
            banned_until_ms: strike.banned_until_ms,
            event,
        }
    }

    /// Forgets every rate-limit counter of `ip` (its limits start afresh); its ban and its
    /// strikes toward one are kept.
    pub fn reset_limits(&self, ip: IpAddr) {
        self.store.reset_subject(Subject::ip(ip));
    }

    /// Forgets every counter and ban.
    pub fn reset_state(&self) {
        self.store.clear();
    }

    #[must_use]
    pub fn store_stats(&self) -> StoreStats {
        self.store.stats()
    }

    /// This engine's live counters (this process), and the store's round trips and errors.
    #[must_use]
    pub fn stats(&self) -> (Snapshot, (u64, u64)) {
        (self.stats.snapshot(), self.store.io_counts())
    }

    /// Counts a refusal decided outside the engine (the adapter's own checks: a
    /// `custom_request_check`, a credential verifier, `custom_validation`) in
    /// [`Engine::stats`] under its event action, as the engine counts its own blocks. Only for
    /// a request really refused: not in passive mode.
    pub fn count_refusal(&self, action: &str) {
        self.stats.blocked(action.to_owned());
    }

    /// The store's counts, or why it is not working as configured (Redis unreachable: the
    /// counts are then this process's own). Takes no pending warning: those become events.
    ///
    /// # Errors
    /// The store's degraded state, as [`Store::degraded`] says it.
    pub fn store_health(&self) -> Result<StoreStats, (StoreStats, String)> {
        // Counting the keys talks to the store: it is also the probe that finds Redis gone (or
        // back). The note that makes is left for the next request's event.
        let stats = self.store.stats();
        match self.store_problem() {
            Some(message) => Err((stats, message)),
            None => Ok(stats),
        }
    }

    /// Why the store is not working as configured right now, without talking to it (and
    /// without counting its keys, which walks the whole table or keyspace): what a poll asks.
    #[must_use]
    pub fn store_problem(&self) -> Option<String> {
        self.store.degraded()
    }

    fn allow(
        &self,
        req: &RequestView<'_>,
        events: Vec<Event>,
        limit_headers: Option<Headers>,
    ) -> Option<Verdict> {
        let mut verdict = Verdict {
            limit_headers,
            events,
            ..Verdict::default()
        };
        if let (Some(cors), Some(origin)) = (&self.config.cors, req.origin) {
            let preflight_method = req
                .access_control_request_method
                .filter(|_| req.method.eq_ignore_ascii_case("OPTIONS"));
            let answer = match preflight_method {
                // In route mode the route stage answers preflights, after bans and limits.
                Some(_) if self.route_mode() && !self.skips(req) => {
                    CorsAnswer::Set(CorsPolicy::REFUSED)
                }
                Some(_) => {
                    if let Some(response) = self.preflight(req) {
                        verdict.respond = Some(response);
                        return Some(verdict);
                    }
                    // A refused preflight gets no CORS headers; the app answers it.
                    CorsAnswer::Set(CorsPolicy::REFUSED)
                }
                None => cors.answer(origin),
            };
            match answer {
                CorsAnswer::Set(i) => verdict.cors_set = Some(i),
                CorsAnswer::Computed(h) => verdict.headers.get_or_insert_with(Vec::new).extend(h),
            }
        }
        if let Some(csp) = &self.config.headers.nonce_csp {
            if let Some(nonce) = new_nonce() {
                verdict
                    .headers
                    .get_or_insert_with(Vec::new)
                    .push((csp.header.to_owned(), csp.render(&nonce)));
                verdict.nonce = Some(nonce);
            }
        }
        if verdict.events.is_empty()
            && verdict.headers.is_none()
            && verdict.limit_headers.is_none()
            && verdict.cors_set.is_none()
            && verdict.respond.is_none()
        {
            None
        } else {
            Some(verdict)
        }
    }

    /// The answer to an allowed CORS preflight: 204 with the CORS headers. `None` when the
    /// request is not a preflight, or the policy refuses it (the app answers it then).
    fn preflight(&self, req: &RequestView<'_>) -> Option<Response> {
        let (cors, origin) = (self.config.cors.as_ref()?, req.origin?);
        let method = req
            .access_control_request_method
            .filter(|_| req.method.eq_ignore_ascii_case("OPTIONS"))?;
        let cors_headers = cors.preflight(origin, method, req.access_control_request_headers)?;
        let mut headers = self.response_headers(None);
        headers.extend(cors_headers);
        headers.push(("Content-Length".into(), "0".into()));
        Some(Response {
            status: 204,
            body: String::new(),
            headers,
        })
    }

    /// The precomputed CORS header lists `Verdict::cors_set` points into (empty without CORS).
    #[must_use]
    pub fn cors_sets(&self) -> &[Headers] {
        self.config.cors.as_ref().map_or(&[], |c| c.sets())
    }

    /// Whether `path` is under one of `exclude_paths` (the path itself or below it).
    #[must_use]
    pub fn is_excluded(&self, path: &str) -> bool {
        self.config
            .exclude_paths
            .iter()
            .any(|p| crate::request::path_is_under(path, p))
    }

    /// Security headers for a response Rampart builds itself, CORS added for an allowed origin.
    fn response_headers(&self, origin: Option<&str>) -> Headers {
        let mut headers = self.config.headers.static_headers.clone();
        if let Some(csp) = &self.config.headers.nonce_csp {
            headers.push((csp.header.to_owned(), csp.render_without_nonce()));
        }
        if let (Some(cors), Some(origin)) = (&self.config.cors, origin) {
            cors.actual(origin, &mut headers);
        }
        headers
    }

    /// Builds the response for a blocking hit (also used for status codes the adapter blocks with).
    fn block_response(&self, hit: &Hit, req: &RequestView<'_>) -> Response {
        let body = self
            .config
            .custom_error_responses
            .iter()
            .find(|(s, _)| *s == hit.status)
            .map_or_else(|| hit.body.clone().into_owned(), |(_, b)| b.clone());
        let mut headers = Vec::with_capacity(self.config.headers.static_headers.len() + 5);
        headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
        headers.push(("Content-Length".into(), body.len().to_string()));
        if let Some(location) = &hit.location {
            headers.push(("Location".into(), location.clone()));
        }
        headers.extend(hit.headers.iter().cloned());
        headers.extend(self.response_headers(req.origin));
        Response {
            status: hit.status,
            body,
            headers,
        }
    }

    /// A block response for a status decided outside the pipeline (e.g. a failing custom check
    /// with `fail_secure`), with the configured body override, security and CORS headers.
    #[must_use]
    pub fn error_response(
        &self,
        status: u16,
        default_body: impl Into<Cow<'static, str>>,
        req: &RequestView<'_>,
    ) -> Response {
        let mut hit = Hit::new(status, "", "error", "", String::new());
        hit.body = default_body.into();
        self.block_response(&hit, req)
    }

    fn event(hit: &Hit, outcome: Outcome, ctx: &Ctx<'_, '_>) -> Event {
        Event {
            action: hit.action,
            outcome,
            rule: hit.rule.clone(),
            message: hit.message.clone(),
            status: hit.status,
            client_ip: ctx.client.ip,
            method: ctx.req.method.to_owned(),
            path: ctx.req.path.to_owned(),
            findings: hit.findings.clone(),
            country: hit.country,
            cloud: hit.cloud,
        }
    }
}

fn emergency_mode(e: &Engine, ctx: &Ctx<'_, '_>, _: &mut Vec<Event>) -> Option<Hit> {
    let c = &e.config;
    if !c.emergency_mode
        || ctx
            .client
            .ip
            .is_some_and(|ip| c.emergency_whitelist.contains(ip))
    {
        return None;
    }
    Some(Hit::new(
        503,
        "Service temporarily unavailable",
        "emergency_mode",
        "emergency_mode",
        String::from("emergency mode: only the emergency whitelist is served"),
    ))
}

fn enforce_https(e: &Engine, ctx: &Ctx<'_, '_>, _: &mut Vec<Event>) -> Option<Hit> {
    if !e.config.enforce_https {
        return None;
    }
    https_hit(e, ctx)
}

/// A plain-HTTP request: redirected to its `https://` URL (400 without a usable host).
fn https_hit(e: &Engine, ctx: &Ctx<'_, '_>) -> Option<Hit> {
    if e.config
        .proxies
        .is_https(ctx.req.scheme, ctx.client, ctx.req.forwarded_proto)
    {
        return None;
    }
    match https_url(ctx.req) {
        Some(url) => Some(Hit {
            location: Some(url),
            ..Hit::new(
                301,
                "",
                "https_redirect",
                "enforce_https",
                String::from("plain HTTP redirected to HTTPS"),
            )
        }),
        None => Some(Hit::new(
            400,
            "Bad Request",
            "https_redirect",
            "enforce_https",
            String::from("plain HTTP request without a usable Host header cannot be redirected"),
        )),
    }
}

fn blacklist(e: &Engine, ctx: &Ctx<'_, '_>, _: &mut Vec<Event>) -> Option<Hit> {
    let ip = ctx.client.ip?;
    if !e.config.blacklist.contains(ip) {
        return None;
    }
    Some(Hit::new(
        403,
        "Forbidden",
        "ip_blacklisted",
        "ip.blacklist",
        format!("IP address {ip} is blacklisted"),
    ))
}

fn whitelist(e: &Engine, ctx: &Ctx<'_, '_>, _: &mut Vec<Event>) -> Option<Hit> {
    if e.config.whitelist.is_none() || ctx.whitelisted {
        return None;
    }
    let who = ctx
        .client
        .ip
        .map_or_else(|| "unknown address".to_owned(), |ip| ip.to_string());
    Some(Hit::new(
        403,
        "Forbidden",
        "ip_not_whitelisted",
        "ip.whitelist",
        format!("IP address {who} is not whitelisted"),
    ))
}

fn country(e: &Engine, ctx: &Ctx<'_, '_>, events: &mut Vec<Event>) -> Option<Hit> {
    if ctx.whitelisted {
        return None;
    }
    country_hit(e, ctx, &e.config.geo, "", events)
}

/// A country rule's refusal (`rule_prefix` tells a route's rules from the global ones).
fn country_hit(
    e: &Engine,
    ctx: &Ctx<'_, '_>,
    policy: &crate::filter::country::GeoPolicy,
    rule_prefix: &str,
    events: &mut Vec<Event>,
) -> Option<Hit> {
    if !policy.active() {
        return None;
    }
    let ip = ctx.client.ip?;
    if is_unplaceable(ip) {
        return None;
    }
    let found = e.country_of(ip).unwrap_or_else(|why| {
        events.push(geo_event(why, ctx));
        None
    });
    let (action, message) = match policy.refusal(found)? {
        Refusal::Blocked(c) => (
            "country_blocked",
            format!("IP address {ip} is in {c}, one of blocked_countries"),
        ),
        Refusal::NotAllowed(Some(c)) => (
            "country_not_allowed",
            format!("IP address {ip} is in {c}, not one of whitelist_countries"),
        ),
        Refusal::NotAllowed(None) => (
            "country_not_allowed",
            format!("IP address {ip} has no known country, and whitelist_countries is set"),
        ),
    };
    let rule = format!(
        "{rule_prefix}country:{}",
        found.as_ref().map_or("unknown", Country::as_str)
    );
    let mut hit = Hit::new(403, "Forbidden", action, rule, message);
    hit.country = found;
    hit.strike = e.config.geo.auto_ban;
    Some(hit)
}

fn cloud_provider(e: &Engine, ctx: &Ctx<'_, '_>, _: &mut Vec<Event>) -> Option<Hit> {
    if ctx.whitelisted {
        return None;
    }
    cloud_hit(e, ctx, e.config.clouds.block, "")
}

/// A client in the published ranges of one of `block`.
fn cloud_hit(
    e: &Engine,
    ctx: &Ctx<'_, '_>,
    block: crate::net::cloud::Providers,
    rule_prefix: &str,
) -> Option<Hit> {
    if block.is_empty() {
        return None;
    }
    let ip = ctx.client.ip?;
    let provider = e.clouds.provider_of(ip, block)?;
    let mut hit = Hit::new(
        403,
        "Cloud provider IP not allowed",
        "cloud_provider_blocked",
        format!("{rule_prefix}cloud:{}", provider.name()),
        format!(
            "IP address {ip} is in {}'s published ranges",
            provider.name()
        ),
    );
    hit.cloud = Some(provider);
    hit.strike = e.config.geo.auto_ban;
    Some(hit)
}

/// A geolocation handler failed: the country is unknown for this request; say why once here.
fn geo_event(message: String, ctx: &Ctx<'_, '_>) -> Event {
    note_event("geo_lookup_failed", "geo_ip_handler", message, ctx)
}

fn user_agent(e: &Engine, ctx: &Ctx<'_, '_>, _: &mut Vec<Event>) -> Option<Hit> {
    user_agent_hit(ctx, e.config.user_agents.as_ref()?, "")
}

fn user_agent_hit(
    ctx: &Ctx<'_, '_>,
    filter: &crate::filter::user_agent::UserAgentFilter,
    rule_prefix: &str,
) -> Option<Hit> {
    let ua = ctx.req.user_agent?;
    let pattern = filter.matching(ua)?;
    Some(Hit::new(
        403,
        "User-Agent not allowed",
        "user_agent_blocked",
        format!("{rule_prefix}user_agent:{pattern}"),
        format!("User-Agent matches blocked pattern '{pattern}'"),
    ))
}

/// The store could not answer and `storage_outage="block"`: 503, try again shortly.
fn unavailable_hit() -> Hit {
    let mut hit = Hit::new(
        503,
        "Service temporarily unavailable",
        "storage_unavailable",
        "storage".to_owned(),
        "the shared store is unreachable and storage_outage='block'".to_owned(),
    );
    hit.headers.push(("Retry-After".to_owned(), "5".to_owned()));
    hit
}

/// A store problem to log once (full table, lost connection), or its end (reconnected).
fn storage_event(note: crate::store::StoreNote, ctx: &Ctx<'_, '_>) -> Event {
    let action = if note.recovered {
        "storage_recovered"
    } else {
        "storage_degraded"
    };
    note_event(action, "storage", note.message, ctx)
}

/// Something worth logging about a request that blocked nothing.
fn note_event(action: &'static str, rule: &str, message: String, ctx: &Ctx<'_, '_>) -> Event {
    Event {
        action,
        outcome: Outcome::Noted,
        rule: rule.into(),
        message,
        status: 200,
        client_ip: ctx.client.ip,
        method: ctx.req.method.to_owned(),
        path: ctx.req.path.to_owned(),
        findings: Vec::new(),
        country: None,
        cloud: None,
    }
}

/// An event about a ban made or lifted outside a request.
fn ban_event(ip: IpAddr, action: &'static str, outcome: Outcome, message: String) -> Event {
    Event {
        action,
        outcome,
        rule: "ip_ban".into(),
        message,
        status: 403,
        client_ip: Some(ip),
        method: String::new(),
        path: String::new(),
        findings: Vec::new(),
        country: None,
        cloud: None,
    }
}

/// A limit's name as a draft-header policy token: the characters a quoted string may hold.
fn draft_name(name: &str) -> Cow<'_, str> {
    if name
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(
            name.chars()
                .map(|c| {
                    if c.is_ascii_graphic() && c != '"' && c != '\\' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect(),
        )
    }
}

/// The `https://` URL of a request, or `None` when its host is unusable. The path (decoded, as
/// WSGI gives it) is percent-encoded again; nothing from the request can inject a header.
fn https_url(req: &RequestView<'_>) -> Option<String> {
    let host = req.host?.trim();
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    if !host_ok {
        return None;
    }
    let host = host.strip_suffix(":80").unwrap_or(host);
    let mut url = String::with_capacity(16 + host.len() + req.path.len() + req.query.len());
    url.push_str("https://");
    url.push_str(host);
    let full_path = [req.script_name, req.path];
    if req.script_name.is_empty() && req.path.is_empty() {
        url.push('/');
    }
    for part in full_path {
        for ch in part.chars() {
            push_encoded(&mut url, ch, b"/-._~!$&'()*+,;=:@");
        }
    }
    if !req.query.is_empty() {
        url.push('?');
        for ch in req.query.chars() {
            push_encoded(&mut url, ch, b"/-._~!$&'()*+,;=:@?%");
        }
    }
    Some(url)
}

/// Appends `ch`, percent-encoded unless it is alphanumeric ASCII or in `safe`. Characters up to
/// U+00FF stand for the byte of the same value (WSGI's latin-1 strings); others are UTF-8 encoded.
fn push_encoded(out: &mut String, ch: char, safe: &[u8]) {
    if ch.is_ascii_alphanumeric() || (ch.is_ascii() && safe.contains(&(ch as u8))) {
        out.push(ch);
        return;
    }
    let code = u32::from(ch);
    if let Ok(byte) = u8::try_from(code) {
        let _ = write!(out, "%{byte:02X}");
    } else {
        let mut buf = [0u8; 4];
        for b in ch.encode_utf8(&mut buf).bytes() {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A fresh CSP nonce: 16 random bytes, base64. `None` only if the OS has no randomness to give.
fn new_nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(base64(&bytes))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

mod limits;
mod route_checks;
#[cfg(test)]
mod tests;
