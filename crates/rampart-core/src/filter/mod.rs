//! Request filters: user agents (compiled matchers), countries and cloud providers, and the
//! route-level checks (content types, sizes, headers, credentials, referrers, honeypots, time
//! windows).

pub mod country;
pub mod request;
pub mod time_window;
pub mod user_agent;
