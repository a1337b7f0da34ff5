//! Configuration errors.
//!
//! Validation never stops at the first problem: every bad field is collected into one
//! [`ConfigErrors`], so a user fixes their configuration in one round trip.

use std::fmt;

/// One bad field: its dotted path (`security_headers.hsts.max_age`, `blacklist[2]`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every bad field of a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<FieldError>);

impl ConfigErrors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some error concerns `field` (exactly, or one of its elements / sub-keys).
    #[must_use]
    pub fn mentions(&self, field: &str) -> bool {
        self.0.iter().any(|e| {
            e.field == field
                || e.field
                    .strip_prefix(field)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} invalid configuration field{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  - {}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
