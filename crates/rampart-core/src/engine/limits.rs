//! Where one client stands against every rate limit, read from the store without counting
//! anything (`flask rampart limits show`).
//!
//! The limits are the ones admission would charge the client with somewhere in the app: the
//! global ones, every path's, every route's own (its decorators' limits and, for the client's
//! country, its `geo_rate_limit`), and the route's behavioural monitors, which count in the
//! same store. One store read covers them all.

use std::fmt;
use std::net::IpAddr;

use super::Engine;
use crate::error::ConfigErrors;
use crate::limit::policy::{Limit, Scope};
use crate::limit::{Quota, Rule};
use crate::route::Routes;
use crate::store::Charge;

/// One rate limit as it stands for a client, nothing counted ([`Engine::limits_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    /// The limit's name, as events and rate-limit headers give it: `global` (`rate_limit`, or
    /// the first of `rate_limits` without it), `global-2`… (the `rate_limits` in order),
    /// `path:/login`, `route:<endpoint>#1`, `route:<endpoint>:geo:US`,
    /// `monitor:<endpoint>:usage_monitor#0`.
    pub name: String,
    /// The Flask endpoint the count is about: a route's own, or each endpoint for a limit
    /// counted per endpoint (`""`: requests no route matched); `None` for limits over every
    /// endpoint.
    pub endpoint: Option<String>,
    /// Whose requests it counts together (the client's alone, or shared).
    pub scope: Scope,
    pub rule: Rule,
    /// The requests that count against it now, `limit - remaining` (for the sliding-window
    /// counter, its weighted count rounded up; for GCRA, the burst not yet restored).
    pub used: u32,
    /// Where it stands, read as before a request: `remaining`, `reset_ms` (0 when nothing is
    /// used) and, when nothing remains, `retry_after_ms`.
    pub quota: Quota,
}

/// Why [`Engine::limits_of`] could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitsError {
    /// The route policies handed in are invalid.
    Routes(ConfigErrors),
    /// The store cannot be read (Redis unreachable): its counters are unknown.
    Unreachable,
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitsError::Routes(errors) => errors.fmt(f),
            LimitsError::Unreachable => f.write_str(
                "the store cannot be read (Redis unreachable): the shared counters are unknown",
            ),
        }
    }
}

impl std::error::Error for LimitsError {}

impl Engine {
    /// Where `ip` stands against every rate limit that can apply to it, read from the store
    /// without counting or changing anything. Limits counted per endpoint are listed once for
    /// each of `endpoints` and once for `""` (requests no route matched). `routes` (JSON, as
    /// for [`Engine::set_routes`]) stand in for the route policies while none are set: a
    /// process that has served no request yet, such as a command line.
    ///
    /// # Errors
    /// The route policies handed in are invalid, or the store cannot be read.
    pub fn limits_of(
        &self,
        ip: IpAddr,
        endpoints: &[&str],
        routes: Option<&str>,
    ) -> Result<Vec<LimitState>, LimitsError> {
        let pending;
        let routes: Option<&Routes> = match (self.routes.get(), routes) {
            (Some(set), _) => Some(set),
            (None, Some(json)) => {
                pending = self.parse_routes(json).map_err(LimitsError::Routes)?;
                Some(&pending)
            }
            (None, None) => None,
        };
        let mut every: Vec<&str> = endpoints.to_vec();
        every.push("");
        every.sort_unstable();
        every.dedup();

        let mut rows: Vec<(&Limit, Option<&str>)> = Vec::new();
        let rl = &self.config.rate_limits;
        if rl.enabled {
            let mut paths: Vec<(&String, &Vec<Limit>)> = rl.by_path.iter().collect();
            paths.sort_by_key(|(path, _)| *path);
            for limit in rl
                .global
                .iter()
                .chain(paths.into_iter().flat_map(|(_, l)| l))
            {
                if limit.scope.needs_endpoint() {
                    rows.extend(every.iter().map(|e| (limit, Some(*e))));
                } else {
                    rows.push((limit, None));
                }
            }
        }
        if let Some(routes) = routes {
            let mut by_endpoint: Vec<_> = routes.by_endpoint.iter().collect();
            by_endpoint.sort_by_key(|(endpoint, _)| *endpoint);
            // The client's country picks a route's `geo_rate_limit` entry, as in admission (a
            // source that fails leaves the default entry).
            let needs_country = by_endpoint.iter().any(|(_, p)| !p.geo_limits.is_empty());
            let country = if needs_country {
                self.country_of(ip).ok().flatten()
            } else {
                None
            };
            for (endpoint, policy) in by_endpoint {
                let pick = |want| policy.geo_limits.iter().find(|(c, _)| *c == want);
                let geo = country
                    .and_then(|c| pick(Some(c)))
                    .or_else(|| pick(None))
                    .map(|(_, l)| l);
                let monitors = policy.monitors.iter().chain(&policy.returns);
                for limit in policy
                    .limits
                    .iter()
                    .chain(geo)
                    .chain(monitors.map(|m| &m.limit))
                {
                    rows.push((limit, Some(endpoint.as_str())));
                }
            }
        }

        let charges: Vec<Charge> = rows
            .iter()
            .map(|(l, endpoint)| Charge {
                key: l.scope.key(l.id, Some(ip), endpoint.unwrap_or("")),
                rule: l.rule,
            })
            .collect();
        let mut quotas = Vec::with_capacity(charges.len());
        if !self.store.peek(self.clock.now_ms(), &charges, &mut quotas) {
            return Err(LimitsError::Unreachable);
        }
        Ok(rows
            .into_iter()
            .zip(quotas)
            .map(|((limit, endpoint), quota)| LimitState {
                name: limit.name.clone(),
                endpoint: endpoint.map(str::to_owned),
                scope: limit.scope,
                rule: limit.rule,
                used: limit.rule.limit.saturating_sub(quota.remaining),
                quota,
            })
            .collect())
    }
}
