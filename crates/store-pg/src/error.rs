//! Mapping PostgreSQL failures onto [`StoreError`], the way the SQLite backend maps its own.

use postern_store::StoreError;
use tokio_postgres::error::SqlState;

/// A readable account of a driver error: the server's message, SQLSTATE and detail
/// for database errors, the cause chain for the rest.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            s.push_str(": ");
            s.push_str(detail);
        }
        return s;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn class(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code().get(..2).unwrap_or(""))
}

/// Integrity constraint violations (SQLSTATE class 23: unique, foreign key, not null,
/// check): what SQLite reports as `SQLITE_CONSTRAINT`.
pub(crate) fn is_constraint(e: &tokio_postgres::Error) -> bool {
    class(e) == Some("23")
}

/// Failures after which the same transaction, run again, may succeed.
pub(crate) fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The generic mapping, used where the SQLite backend uses its `db_err`: constraint
/// violations are conflicts, data that PostgreSQL cannot hold (class 22, e.g. a NUL in
/// text) is refused, everything else is a (temporary) unavailability.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    match class(&e) {
        Some("23") => StoreError::Conflict(describe(&e)),
        Some("22") => StoreError::Refused(describe(&e)),
        _ => StoreError::Unavailable(format!("postgres: {}", describe(&e))),
    }
}

pub(crate) fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        other => StoreError::Unavailable(format!("postgres pool: {other}")),
    }
}

/// A column that does not decode is stored data we cannot trust, never user input.
pub(crate) fn decode_err(e: tokio_postgres::Error) -> StoreError {
    StoreError::Invalid(format!("column: {}", describe(&e)))
}
