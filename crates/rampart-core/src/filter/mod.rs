//! Request filters: user agents (compiled matchers), countries and cloud providers.

pub mod country;
pub mod user_agent;
