//! Store errors. Backends map their own failures into these variants so that `core`
//! never sees a backend type.

/// Every way a store operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (a domain, address or mailbox name that exists).
    #[error("already exists: {0}")]
    Conflict(String),
    /// An object named by an operation does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// An operation would break a rule of the data (domain not empty, quota, …).
    #[error("refused: {0}")]
    Refused(String),
    /// The account's quota would be exceeded: `used + size > limit`.
    #[error("quota exceeded: {used} + {size} > {limit} bytes")]
    QuotaExceeded { used: u64, size: u64, limit: u64 },
    /// A conditional write found the object changed (`unchanged_since`).
    #[error("modified since {0}")]
    Modified(u64),
    /// A blob's content does not match its name.
    #[error("blob {hash} is corrupt: content hashes to {actual}")]
    CorruptBlob { hash: String, actual: String },
    /// Stored data that cannot be decoded (a bug or tampering, never user input).
    #[error("stored data is invalid: {0}")]
    Invalid(String),
    /// The backend failed (I/O, database); the operation may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// True when trying again later may succeed (maps to SMTP 451, IMAP NO [UNAVAILABLE]).
    pub fn is_temporary(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Unavailable(format!("I/O: {e}"))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
