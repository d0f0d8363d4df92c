//! Decoding rows into the plain records of `postern_store::model`.

use crate::error::decode_err;
use postern_store::*;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

/// The columns [`mailbox`] decodes, in order.
macro_rules! mailbox_cols {
    () => {
        "id, account_id, name, special_use, uid_validity, uid_next, highest_modseq, subscribed, created_ms"
    };
    ("m.") => {
        "m.id, m.account_id, m.name, m.special_use, m.uid_validity, m.uid_next, m.highest_modseq, m.subscribed, m.created_ms"
    };
}
pub(crate) use mailbox_cols;

/// The columns [`principal`] decodes, in order.
macro_rules! principal_cols {
    () => {
        "id, domain_id, local_part, kind, display_name, quota_bytes, created_ms"
    };
}
pub(crate) use principal_cols;

pub(crate) fn col<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T> {
    row.try_get(idx).map_err(decode_err)
}

/// BIGINT columns that hold unsigned counters.
pub(crate) fn u64_of(v: i64) -> u64 {
    v.max(0) as u64
}

/// Counters bound as BIGINT; values above `i64::MAX` are clamped as SQLite's backend does.
pub(crate) fn i64_of(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// A `usize` limit as a SQL `LIMIT` (PostgreSQL refuses negative limits).
pub(crate) fn limit_of(v: usize) -> i64 {
    v.min(i64::MAX as usize) as i64
}

/// Text for a lookup column: PostgreSQL cannot store NUL, so it becomes U+FFFD (the
/// value's exact form stays in the record's JSON). Queries map their keys the same way.
pub(crate) fn nul_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(e.to_string()))
}

pub(crate) fn domain(r: &Row) -> Result<Domain> {
    Ok(Domain {
        id: DomainId(col(r, 0)?),
        name: col(r, 1)?,
        created_ms: col(r, 2)?,
    })
}

pub(crate) fn principal(r: &Row) -> Result<Principal> {
    let kind: String = col(r, 3)?;
    Ok(Principal {
        id: PrincipalId(col(r, 0)?),
        domain: DomainId(col(r, 1)?),
        local_part: col(r, 2)?,
        kind: PrincipalKind::parse(&kind).unwrap_or(PrincipalKind::Individual),
        display_name: col(r, 4)?,
        quota_bytes: col::<Option<i64>>(r, 5)?.map(u64_of),
        created_ms: col(r, 6)?,
    })
}

pub(crate) fn mailbox(r: &Row) -> Result<Mailbox> {
    let su: Option<String> = col(r, 3)?;
    Ok(Mailbox {
        id: MailboxId(col(r, 0)?),
        account: PrincipalId(col(r, 1)?),
        name: col(r, 2)?,
        special_use: su.as_deref().and_then(SpecialUse::parse),
        uid_validity: col::<i64>(r, 4)? as u32,
        uid_next: col::<i64>(r, 5)? as u32,
        highest_modseq: u64_of(col(r, 6)?),
        subscribed: col(r, 7)?,
        created_ms: col(r, 8)?,
    })
}

pub(crate) fn alias(r: &Row) -> Result<Alias> {
    Ok(Alias {
        id: AliasId(col(r, 0)?),
        domain: DomainId(col(r, 1)?),
        local_part: col(r, 2)?,
        target: col(r, 3)?,
        created_ms: col(r, 4)?,
    })
}
