//! The domain's errors. Each has a class, and each protocol has one function that turns
//! a class into its wire reply (SMTP code, IMAP `NO`/`BAD`, HTTP status).

use postern_store::StoreError;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request itself is malformed.
    Protocol,
    /// Well-formed but not allowed or not possible (exists, not found, refused).
    Policy,
    /// Authentication failed or is throttled.
    Auth,
    /// A limit or quota was reached.
    Resource,
    /// Our fault or the storage's; try again later.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("refused: {0}")]
    Refused(String),
    /// The caller lacks a right on an object it can see (RFC 4314 NOPERM).
    #[error("not permitted: {0}")]
    Forbidden(String),
    /// Wrong user or password — deliberately never says which.
    #[error("authentication failed")]
    AuthFailed,
    #[error("too many failed attempts; try again in {}s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error("quota exceeded")]
    QuotaExceeded,
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn class(&self) -> ErrorClass {
        match self {
            CoreError::Invalid { .. } => ErrorClass::Protocol,
            CoreError::NotFound(_)
            | CoreError::Conflict(_)
            | CoreError::Refused(_)
            | CoreError::Forbidden(_) => ErrorClass::Policy,
            CoreError::AuthFailed | CoreError::Throttled(_) => ErrorClass::Auth,
            CoreError::QuotaExceeded => ErrorClass::Resource,
            CoreError::Unavailable(_) | CoreError::Internal(_) => ErrorClass::Internal,
        }
    }

    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        CoreError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(s) => CoreError::Conflict(s),
            StoreError::NotFound(s) => CoreError::NotFound(s),
            StoreError::Refused(s) => CoreError::Refused(s),
            StoreError::QuotaExceeded { .. } => CoreError::QuotaExceeded,
            StoreError::Modified(m) => CoreError::Refused(format!("modified since {m}")),
            StoreError::Unavailable(s) => CoreError::Unavailable(s),
            e @ (StoreError::CorruptBlob { .. } | StoreError::Invalid(_)) => {
                CoreError::Internal(e.to_string())
            }
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
