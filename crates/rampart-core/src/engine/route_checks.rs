//! The route stage's own checks (the decorators'), route rate limits by country, and the
//! behavioural monitors.

use std::borrow::Cow;

use super::{
    cloud_hit, country_hit, geo_event, https_hit, storage_event, user_agent_hit, Ctx, Engine, Hit,
};
use crate::decision::{Event, Outcome};
use crate::filter::request::{accepted, honeypot_field, CredentialCheck};
use crate::limit::monitor::Action;
use crate::limit::policy::Limit;
use crate::request::RequestView;
use crate::route::{Monitor, MonitorKind, RoutePolicy, Skips};
use crate::store::{Admission, Charge};

/// A route check: `Some(hit)` when it would block.
pub(super) type RouteCheck =
    fn(&Engine, &Ctx<'_, '_>, &RoutePolicy, &mut Vec<Event>) -> Option<Hit>;

/// In order: where the client may come from and when, then what the request must look like.
pub(super) const CHECKS: &[RouteCheck] = &[
    https,
    ip_lists,
    countries,
    clouds,
    user_agents,
    time_window,
    size,
    content_type,
    headers,
    auth,
    api_key,
    referrer,
    honeypot,
];

fn https(e: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    if !r.require_https || r.skips.has(Skips::HTTPS) {
        return None;
    }
    https_hit(e, ctx)
}

fn ip_lists(_: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    if r.skips.has(Skips::IP) || (r.blacklist.is_none() && r.whitelist.is_none()) {
        return None;
    }
    let ip = ctx.client.ip;
    let who = ip.map_or_else(|| "unknown address".to_owned(), |ip| ip.to_string());
    if let (Some(list), Some(ip)) = (&r.blacklist, ip) {
        if list.contains(ip) {
            return Some(Hit::new(
                403,
                "Forbidden",
                "ip_blacklisted",
                "route.ip.blacklist",
                format!("IP address {who} is on this route's blacklist"),
            ));
        }
    }
    let listed = match (&r.whitelist, ip) {
        (None, _) => true,
        (Some(list), Some(ip)) => list.contains(ip),
        (Some(_), None) => false,
    };
    (!listed).then(|| {
        Hit::new(
            403,
            "Forbidden",
            "ip_not_whitelisted",
            "route.ip.whitelist",
            format!("IP address {who} is not on this route's whitelist"),
        )
    })
}

fn countries(e: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, ev: &mut Vec<Event>) -> Option<Hit> {
    if r.skips.has(Skips::COUNTRIES) || ctx.whitelisted {
        return None;
    }
    country_hit(e, ctx, &r.countries, "route.", ev)
}

fn clouds(e: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    if r.skips.has(Skips::CLOUDS) || ctx.whitelisted {
        return None;
    }
    cloud_hit(e, ctx, r.clouds, "route.")
}

fn user_agents(_: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    if r.skips.has(Skips::USER_AGENT) {
        return None;
    }
    user_agent_hit(ctx, r.user_agents.as_ref()?, "route.")
}

fn time_window(e: &Engine, _: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    let w = r.time_window.as_ref()?;
    (!w.contains(e.now_ms())).then(|| {
        Hit::new(
            403,
            "Access not allowed at this time",
            "outside_time_window",
            "route.time_window",
            format!("this route is served {} only", w.label()),
        )
    })
}

/// `Content-Length` as a number: `Ok(None)` when absent or empty, `Err` when unreadable.
fn content_length(req: &RequestView<'_>) -> Result<Option<u64>, ()> {
    match req.env("CONTENT_LENGTH").map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s.parse::<u64>().map(Some).map_err(|_| ()),
    }
}

fn size(_: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    let max = r.max_body?;
    let message = match content_length(ctx.req) {
        Ok(Some(n)) if n > max => format!("Content-Length {n} is over this route's {max} bytes"),
        Err(()) => "Content-Length is not a number".to_owned(),
        // No length (a chunked body): the adapter stops reading past the limit.
        Ok(_) => return None,
    };
    Some(Hit::new(
        413,
        "Request too large",
        "request_too_large",
        "route.max_request_size",
        message,
    ))
}

fn content_type(_: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    if r.content_types.is_empty() {
        return None;
    }
    let ct = ctx.req.env("CONTENT_TYPE").unwrap_or("").trim();
    let has_body = !matches!(content_length(ctx.req), Ok(None | Some(0)))
        || ctx.req.env("HTTP_TRANSFER_ENCODING").is_some();
    // A request without a body has no content type to filter (a GET on the same route).
    if ct.is_empty() && !has_body {
        return None;
    }
    if r.content_types.allows(ct) {
        return None;
    }
    let shown = if ct.is_empty() { "none" } else { ct };
    Some(Hit::new(
        415,
        "Unsupported content type",
        "content_type_refused",
        "route.content_type",
        format!("content type '{shown}' is not accepted here"),
    ))
}

fn headers(_: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    for h in &r.headers {
        let value = ctx.req.env(&h.env_key).map_or("", str::trim);
        if value.is_empty() {
            let mut hit = Hit::new(
                400,
                "",
                "header_missing",
                format!("route.header:{}", h.name),
                format!("required header {} is missing", h.name),
            );
            hit.body = Cow::Owned(format!("Missing required header: {}", h.name));
            return Some(hit);
        }
        if let Some(want) = &h.value {
            if accepted(std::slice::from_ref(want), value) != CredentialCheck::Accepted {
                let mut hit = Hit::new(
                    400,
                    "",
                    "header_mismatch",
                    format!("route.header:{}", h.name),
                    format!("header {} does not have the required value", h.name),
                );
                hit.body = Cow::Owned(format!(
                    "Header '{}' does not match the required value",
                    h.name
                ));
                return Some(hit);
            }
        }
    }
    None
}

fn auth(_: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    let rule = r.auth.as_ref()?;
    let (body, action, message) = match rule.check(ctx.req.env("HTTP_AUTHORIZATION")) {
        CredentialCheck::Accepted => return None,
        CredentialCheck::Missing => (
            "Authentication required",
            "auth_required",
            "no usable Authorization header",
        ),
        CredentialCheck::Rejected => (
            "Invalid credentials",
            "auth_failed",
            "the Authorization credential is not an accepted one",
        ),
    };
    let mut hit = Hit::new(401, body, action, "route.auth", message.to_owned());
    if let Some(scheme) = rule.challenge() {
        let challenge = if scheme == "Basic" {
            "Basic realm=\"restricted\", charset=\"UTF-8\"".to_owned()
        } else {
            scheme
        };
        hit.headers.push(("WWW-Authenticate".to_owned(), challenge));
    }
    Some(hit)
}

fn api_key(_: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    let key = r.api_key.as_ref()?;
    let value = ctx.req.env(&key.env_key).map_or("", str::trim);
    let (body, action, message) = match accepted(&key.accepted, value) {
        CredentialCheck::Accepted => return None,
        CredentialCheck::Missing => (
            "API key required",
            "api_key_missing",
            format!("no {} header", key.name),
        ),
        CredentialCheck::Rejected => (
            "Invalid API key",
            "api_key_invalid",
            format!("the {} header is not an accepted key", key.name),
        ),
    };
    Some(Hit::new(401, body, action, "route.api_key", message))
}

fn referrer(_: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    if r.referrers.is_empty() {
        return None;
    }
    match ctx.req.env("HTTP_REFERER").map(str::trim) {
        None | Some("") => Some(Hit::new(
            403,
            "Referrer required",
            "referrer_missing",
            "route.referrer",
            "no Referer header".to_owned(),
        )),
        Some(referer) if !r.referrers.allows(referer) => Some(Hit::new(
            403,
            "Invalid referrer",
            "referrer_refused",
            "route.referrer",
            "the Referer is not one of this route's domains".to_owned(),
        )),
        Some(_) => None,
    }
}

fn honeypot(_: &Engine, ctx: &Ctx<'_, '_>, r: &RoutePolicy, _: &mut Vec<Event>) -> Option<Hit> {
    if r.honeypot.is_empty() {
        return None;
    }
    let m = ctx.req.method;
    let has_form = ["POST", "PUT", "PATCH"]
        .iter()
        .any(|x| x.eq_ignore_ascii_case(m));
    if !has_form {
        return None;
    }
    let field = honeypot_field(
        &r.honeypot,
        ctx.req.content_type.unwrap_or(""),
        ctx.req.body,
    )?;
    let mut hit = Hit::new(
        403,
        "Forbidden",
        "honeypot_triggered",
        format!("route.honeypot:{field}"),
        format!("hidden field '{field}' was filled in (a bot)"),
    );
    hit.strike = true;
    Some(hit)
}

impl Engine {
    /// The route's `geo_rate_limit` entry for the client's country (or its default).
    pub(super) fn geo_limit<'r>(
        &self,
        ctx: &Ctx<'_, '_>,
        r: &'r RoutePolicy,
        events: &mut Vec<Event>,
    ) -> Option<&'r Limit> {
        if r.geo_limits.is_empty() {
            return None;
        }
        let country = ctx.client.ip.and_then(|ip| {
            self.country_of(ip).unwrap_or_else(|why| {
                events.push(geo_event(why, ctx));
                None
            })
        });
        let pick = |want: Option<_>| {
            r.geo_limits
                .iter()
                .find(|(c, _)| *c == want)
                .map(|(_, l)| l)
        };
        country.and_then(|c| pick(Some(c))).or_else(|| pick(None))
    }

    /// Counts the request against each monitor; those past their threshold act. `status` is
    /// the one their events carry (the response's, for return monitors).
    pub(super) fn monitor<'m>(
        &self,
        ctx: &Ctx<'_, '_>,
        endpoint: &str,
        monitors: impl IntoIterator<Item = &'m Monitor>,
        status: u16,
        events: &mut Vec<Event>,
    ) {
        let mut quotas = Vec::new();
        for m in monitors {
            let charge = Charge {
                key: m.limit.scope.key(m.limit.id, ctx.client.ip, endpoint),
                rule: m.limit.rule,
            };
            let now = self.clock.now_ms();
            let admission = self.store.admit(now, None, &[charge], &mut quotas);
            if let Some(note) = self.store.take_warning() {
                events.push(storage_event(note, ctx));
            }
            if matches!(admission, Admission::Limited { .. }) {
                self.trigger(ctx, endpoint, m, status, events);
            }
        }
    }

    /// A monitor past its threshold: an event, and a ban when its action says so.
    fn trigger(
        &self,
        ctx: &Ctx<'_, '_>,
        endpoint: &str,
        m: &Monitor,
        status: u16,
        events: &mut Vec<Event>,
    ) {
        let who = ctx
            .client
            .ip
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let mut message = format!("{who}: {} on {endpoint}", m.describe);
        let mut ban = None;
        if m.action == Action::Ban {
            let reason = format!("{} on {endpoint}: {}", m.kind.name(), m.describe);
            match ctx.client.ip {
                Some(_) if self.config.passive_mode => {
                    message.push_str("; would ban (passive mode)");
                }
                Some(ip) => match self.ban(ip, None, &reason) {
                    Ok((_, event)) => {
                        message.push_str("; banned");
                        ban = Some(event);
                    }
                    Err(why) => {
                        message.push_str("; not banned: ");
                        message.push_str(why);
                    }
                },
                None => message.push_str("; not banned: the client IP is unknown"),
            }
        }
        let outcome = if m.action == Action::Alert {
            Outcome::Alert
        } else {
            Outcome::Detected
        };
        let mut event = super::note_event(
            m.kind.name(),
            &format!("route.{}", m.kind.name()),
            message,
            ctx,
        );
        event.outcome = outcome;
        event.status = status;
        events.push(event);
        events.extend(ban);
    }

    /// After the application answered: counts the response against the route's return
    /// monitors (`status` and, for body patterns, the first bytes of the body). Returns the
    /// events to log.
    #[must_use]
    pub fn observe_response(
        &self,
        req: &RequestView<'_>,
        endpoint: Option<&str>,
        status: u16,
        body: &[u8],
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(r) = self.routes.get().and_then(|rs| rs.get(endpoint)) else {
            return events;
        };
        if r.returns.is_empty() || self.skips(req) {
            return events;
        }
        let ctx = self.context(req);
        let matched = r.returns.iter().filter(|m| match &m.kind {
            MonitorKind::Return(p) => p.matches(status, body),
            _ => false,
        });
        self.monitor(&ctx, endpoint.unwrap_or(""), matched, status, &mut events);
        events
    }
}
