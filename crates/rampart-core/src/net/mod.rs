//! Network facts about a request: address sets, client IP resolution, cloud ranges, geolocation.

pub mod cidr;
pub mod client_ip;
pub mod cloud;
pub mod geo;
pub mod mmdb;
