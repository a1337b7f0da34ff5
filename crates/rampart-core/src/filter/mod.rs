//! Request filters that need compiled matchers.

pub mod user_agent;
