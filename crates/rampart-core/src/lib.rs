//! The Rampart security engine.
//!
//! Pure Rust: no Python, no async runtime, no web framework types. An adapter (the `PyO3` binding
//! for Flask, later a tower layer) builds a [`RequestView`] from its request and asks
//! [`Engine::inspect`] what to do; everything that decides is here and tested here.

pub mod config;
pub mod decision;
pub mod detect;
pub mod engine;
pub mod error;
pub mod filter;
pub mod limit;
pub mod net;
pub mod request;
pub mod respond;
pub mod route;
pub mod stats;
pub mod store;

pub use config::{Config, FIELDS};
pub use decision::{Event, Outcome, Response, Verdict};
pub use engine::{Engine, Needs};
pub use error::{ConfigErrors, FieldError};
pub use request::RequestView;

/// The engine's version (the Python package reports the same).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
