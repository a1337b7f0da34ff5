//! Network facts about a request: address sets and client IP resolution.

pub mod cidr;
pub mod client_ip;
