//! `postern store migrate`: an embedded installation (the SQLite file and the blob
//! files) copied into a new PostgreSQL schema row for row, then verified.
//!
//! **What is copied:** every table of the embedded schema with every column as stored —
//! ids, UIDVALIDITY, `uid_next`, UIDs, modseqs, `highest_modseq`, usage counters, the
//! journal, credentials, aliases, group members, ACLs, the whole ledger (seq, record,
//! prev_hash, hash) and its head — plus every blob (the files, and the small blobs the
//! database keeps in `inline_blobs`), under the same content-addressed name, into
//! `blobs`/`blob_chunks`. [`TABLES`] lists the columns; before anything is
//! written both sides' catalogues are compared with it, so a column added to either
//! `schema.sql` without being added here stops the migration instead of being dropped.
//!
//! **Locking (the server must be stopped):** the SQLite file is opened read-write only
//! so that the connection can hold SQLite's write lock (a read-only connection cannot);
//! with `locking_mode = EXCLUSIVE` and `BEGIN EXCLUSIVE` the lock is only granted when
//! no other connection has the file open, so a server that is still running — even an
//! idle one — makes the migration fail after [`SQLITE_LOCK_WAIT`] with "stop the
//! server". `PRAGMA query_only` then forbids this connection any change, and the lock is
//! held until the PostgreSQL copy has committed (the SQLite transaction is rolled back:
//! nothing is written there; closing the last connection checkpoints the WAL, as a
//! server's shutdown does), so nobody can change the store underneath the copy. Blob
//! files are read while the lock is held; a blob written by a process that had not
//! committed is an orphan, copied like every other file.
//!
//! **Atomicity:** one PostgreSQL transaction creates the schema (the same DDL
//! [`crate::PgStore::connect`] runs), copies every row and blob, reads everything back
//! and verifies it (row counts, per-table digests, blob hashes, the ledger chain).
//! Only when all of it agrees is it committed; anything else rolls it back, so a failed
//! or interrupted migration leaves no schema (or the empty one it started from) and the
//! next attempt starts clean. The transaction holds the schema's migration lock, so a
//! node started on the schema meanwhile waits and then finds it complete. Afterwards a
//! [`PgStore`] is opened on the committed schema and the ledger chain is verified once
//! more through the `Store` trait, against the head found before.
//!
//! **NUL in text:** PostgreSQL text cannot hold U+0000. Where the PostgreSQL backend
//! itself stores NUL as U+FFFD (`rows::nul_safe`: a message's Message-ID lookup column,
//! the ledger's actor/target lookup columns) the migration does the same; the exact
//! values stay in the JSON (`meta`, `record`), where NUL is an escape. In any other
//! column a NUL cannot be represented faithfully and the migration refuses, naming the
//! table, key and column.
//!
//! **Digests:** each table's rows are hashed in primary-key order in one canonical,
//! type-tagged form (NULL, integer as i64, text as its bytes, boolean) — computed from
//! the SQLite rows as they must appear in PostgreSQL (booleans from SQLite's 0/1 as the
//! embedded backend reads them, NUL mapped as above) and independently from the rows
//! read back from PostgreSQL. Both schemas compare text by bytes (SQLite's BINARY,
//! PostgreSQL's `COLLATE "C"`), so primary-key order is the same on both sides.
//!
//! **Security:** the URL and schema are operator input; the schema name passes
//! [`crate::valid_schema_name`] before it reaches SQL. Stored values are only bound
//! as parameters.

use crate::error::{describe, pg_err};
use crate::rows::nul_safe;
use crate::{PgOptions, PgStore, connect_one, lock_schema, prepare_schema, valid_schema_name};
use postern_store::blob::{hash_bytes, valid_hash};
use postern_store::{LedgerRecord, RawLedgerEntry, Result, Store, StoreError, ledger};
use rusqlite::types::{Value as SqlValue, ValueRef};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_postgres::types::ToSql;

/// How long the migration waits for SQLite's write lock: a running server's writer
/// holds it only for one group commit, so waiting longer only delays the message that
/// the server must be stopped.
pub const SQLITE_LOCK_WAIT: Duration = Duration::from_secs(5);

/// The embedded schema version this migration reads (`PRAGMA user_version`).
const SQLITE_SCHEMA_VERSION: i64 = 9;

/// Rows read from SQLite and inserted with one statement: 500 × at most 15 columns is
/// far below PostgreSQL's 65535 bind parameters, and big enough that round trips do
/// not dominate.
const ROWS_PER_BATCH: usize = 500;

/// Blob bytes gathered before one multi-row insert (a single bigger blob is one batch).
const BLOB_BATCH_BYTES: usize = 8 << 20;

/// Tables only the embedded schema has: `inline_blobs` holds small blobs, copied into
/// `blobs`/`blob_chunks` with the blob files (not as a table).
const SQLITE_ONLY_TABLES: [&str; 1] = ["inline_blobs"];

/// Tables only the PostgreSQL schema has; everything else must be in [`TABLES`].
const PG_ONLY_TABLES: [&str; 5] = [
    "schema_version",
    "blobs",
    "blob_chunks",
    "login_throttle",
    "node_secrets",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// SQLite INTEGER → BIGINT.
    I64,
    /// SQLite INTEGER → INT.
    I32,
    /// TEXT → TEXT COLLATE "C".
    Text,
    /// SQLite INTEGER 0/1 → BOOLEAN.
    Bool,
    /// BLOB → BYTEA.
    Bytes,
}

/// One column of a copied table.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    name: &'static str,
    ty: Ty,
    nullable: bool,
    /// NUL becomes U+FFFD, as the PostgreSQL backend stores this column; otherwise a
    /// NUL refuses the migration.
    nul_to_fffd: bool,
}

const fn c(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        nullable: false,
        nul_to_fffd: false,
    }
}

const fn n(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        nullable: true,
        nul_to_fffd: false,
    }
}

/// One copied table: its primary key, its columns in both schemas, and the columns
/// only PostgreSQL has, derived from the others as the PostgreSQL backend derives them.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pk: &'static [&'static str],
    cols: &'static [Col],
    derived: &'static [Col],
}

use Ty::*;

/// Every table of the embedded schema, parents before children (foreign keys).
pub const TABLES: &[Table] = &[
    Table {
        name: "domains",
        pk: &["id"],
        cols: &[c("id", I64), c("name", Text), c("created_ms", I64)],
        derived: &[],
    },
    Table {
        name: "principals",
        pk: &["id"],
        cols: &[
            c("id", I64),
            c("domain_id", I64),
            c("local_part", Text),
            c("kind", Text),
            c("display_name", Text),
            n("quota_bytes", I64),
            c("used_bytes", I64),
            c("message_count", I64),
            c("highest_modseq", I64),
            c("last_uid_validity", I64),
            c("created_ms", I64),
        ],
        derived: &[],
    },
    Table {
        name: "credentials",
        pk: &["id"],
        cols: &[
            c("id", I64),
            c("principal_id", I64),
            c("kind", Text),
            c("label", Text),
            c("protocols", Text),
            c("hash", Text),
            c("created_ms", I64),
        ],
        derived: &[],
    },
    Table {
        name: "aliases",
        pk: &["id"],
        cols: &[
            c("id", I64),
            c("domain_id", I64),
            c("local_part", Text),
            c("target", Text),
            c("created_ms", I64),
        ],
        derived: &[],
    },
    Table {
        name: "group_members",
        pk: &["group_id", "member"],
        cols: &[c("group_id", I64), c("member", Text)],
        derived: &[],
    },
    Table {
        name: "group_settings",
        pk: &["group_id"],
        cols: &[c("group_id", I64), c("senders", Text)],
        derived: &[],
    },
    Table {
        name: "mailboxes",
        pk: &["id"],
        cols: &[
            c("id", I64),
            c("account_id", I64),
            c("name", Text),
            n("special_use", Text),
            c("uid_validity", I64),
            c("uid_next", I64),
            c("highest_modseq", I64),
            c("subscribed", Bool),
            c("created_ms", I64),
        ],
        derived: &[],
    },
    Table {
        name: "messages",
        pk: &["id"],
        cols: &[
            c("id", I64),
            c("account_id", I64),
            c("blob_hash", Text),
            c("size", I64),
            c("received_ms", I64),
            c("thread_id", Text),
            Col {
                nul_to_fffd: true,
                ..n("message_id_hdr", Text)
            },
            c("meta", Text),
        ],
        derived: &[],
    },
    Table {
        name: "mailbox_messages",
        pk: &["mailbox_id", "uid"],
        cols: &[
            c("mailbox_id", I64),
            c("uid", I64),
            c("message_id", I64),
            c("flags", I64),
            c("keywords", Text),
            c("modseq", I64),
            c("saved_ms", I64),
            c("size", I64),
        ],
        derived: &[],
    },
    Table {
        name: "journal",
        pk: &["account_id", "modseq"],
        cols: &[
            c("account_id", I64),
            c("modseq", I64),
            c("kind", Text),
            n("mailbox_id", I64),
            n("message_id", I64),
            n("uid", I64),
            c("at_ms", I64),
        ],
        derived: &[],
    },
    Table {
        name: "ledger_head",
        pk: &["id"],
        cols: &[c("id", I32), c("seq", I64), c("hash", Text)],
        derived: &[],
    },
    Table {
        name: "ledger",
        pk: &["seq"],
        cols: &[
            c("seq", I64),
            c("record", Text),
            c("prev_hash", Text),
            c("hash", Text),
        ],
        // From the record, as crates/store-pg/src/apply.rs writes them on append.
        derived: &[
            Col {
                nul_to_fffd: true,
                ..n("actor_account", Text)
            },
            Col {
                nul_to_fffd: true,
                ..n("target", Text)
            },
            c("time_ms", I64),
        ],
    },
    Table {
        name: "mailbox_acl",
        pk: &["mailbox_id", "grantee_id"],
        cols: &[
            c("mailbox_id", I64),
            c("account_id", I64),
            c("grantee_id", I64),
            c("rights", Text),
        ],
        derived: &[],
    },
    Table {
        name: "queue_messages",
        pk: &["id"],
        cols: &[
            c("id", I64),
            c("blob_hash", Text),
            c("size", I64),
            c("sender", Text),
            n("account_id", I64),
            n("envid", Text),
            n("ret", Text),
            c("requiretls", Bool),
            c("smtputf8", Bool),
            c("eight_bit", Bool),
            c("created_ms", I64),
            c("expires_ms", I64),
        ],
        derived: &[],
    },
    Table {
        name: "queue_recipients",
        pk: &["message_id", "idx"],
        cols: &[
            c("message_id", I64),
            c("idx", I32),
            c("address", Text),
            c("domain", Text),
            n("orcpt", Text),
            n("notify", Text),
            c("state", Text),
            c("attempts", I32),
            c("next_attempt_ms", I64),
            n("last_status", Text),
            n("last_error", Text),
            n("remote_host", Text),
            c("delay_notified", Bool),
            n("lease_owner", Text),
            c("lease_until_ms", I64),
        ],
        derived: &[],
    },
    Table {
        name: "dkim_keys",
        pk: &["domain_id", "selector"],
        cols: &[
            c("domain_id", I64),
            c("selector", Text),
            c("algorithm", Text),
            c("private_der", Bytes),
            c("created_ms", I64),
        ],
        derived: &[],
    },
    Table {
        name: "dav_collections",
        pk: &["id"],
        cols: &[
            c("id", I64),
            c("account_id", I64),
            c("kind", Text),
            c("name", Text),
            c("display_name", Text),
            n("color", Text),
            n("sort_order", I64),
            n("description", Text),
            c("components", Text),
            c("modseq", I64),
            c("created_ms", I64),
            n("timezone", Text),
        ],
        derived: &[],
    },
    Table {
        name: "dav_resources",
        pk: &["id"],
        cols: &[
            c("id", I64),
            c("collection_id", I64),
            c("account_id", I64),
            c("name", Text),
            c("etag", Text),
            c("data", Text),
            c("size", I64),
            c("component", Text),
            c("uid", Text),
            n("start_ms", I64),
            n("end_ms", I64),
            c("modseq", I64),
            c("modified_ms", I64),
            c("deleted", Bool),
        ],
        derived: &[],
    },
    Table {
        name: "dav_shares",
        pk: &["collection_id", "grantee_id"],
        cols: &[
            c("collection_id", I64),
            c("account_id", I64),
            c("grantee_id", I64),
            c("rights", Text),
        ],
        derived: &[],
    },
    Table {
        name: "mta_sts_policies",
        pk: &["domain"],
        cols: &[
            c("domain", Text),
            c("policy_id", Text),
            c("mode", Text),
            c("mx", Text),
            c("max_age_secs", I64),
            c("fetched_ms", I64),
        ],
        derived: &[],
    },
    Table {
        name: "tlsrpt_counts",
        pk: &[
            "domain",
            "day",
            "policy_type",
            "policy_strings",
            "mx_host",
            "result_type",
            "receiving_ip",
        ],
        cols: &[
            c("domain", Text),
            c("day", Text),
            c("policy_type", Text),
            c("policy_strings", Text),
            c("mx_host", Text),
            c("result_type", Text),
            c("receiving_ip", Text),
            c("count", I64),
        ],
        derived: &[],
    },
    Table {
        name: "tlsrpt_reports",
        pk: &["domain", "day"],
        cols: &[
            c("domain", Text),
            c("day", Text),
            n("lease_owner", Text),
            c("lease_until_ms", I64),
            n("sent_ms", I64),
        ],
        derived: &[],
    },
];

/// What one table's copy found.
#[derive(Debug, Clone)]
pub struct TableReport {
    pub table: &'static str,
    pub source_rows: u64,
    pub target_rows: u64,
    /// SHA-256 over the rows in primary-key order (see the module documentation).
    pub source_digest: String,
    pub target_digest: String,
}

impl TableReport {
    pub fn equal(&self) -> bool {
        self.source_rows == self.target_rows && self.source_digest == self.target_digest
    }
}

/// What [`from_embedded`] did and found.
#[derive(Debug, Clone, Default)]
pub struct MigrationReport {
    pub schema: String,
    pub tables: Vec<TableReport>,
    /// Blob files read (each hash checked) and their bytes.
    pub source_blobs: u64,
    pub source_blob_bytes: u64,
    /// Blobs read back from PostgreSQL (each hash checked) and their bytes.
    pub target_blobs: u64,
    pub target_blob_bytes: u64,
    /// Files under the blob directory that are not blobs (`tmp/…` left by a crash,
    /// anything else), not copied.
    pub ignored_files: Vec<String>,
    /// Ledger entries whose chain was verified on the target, and its head.
    pub ledger_entries: u64,
    pub ledger_head: Option<(u64, String)>,
    /// Whether the schema was committed. False whenever `problems` is not empty.
    pub committed: bool,
    pub problems: Vec<String>,
}

impl MigrationReport {
    pub fn ok(&self) -> bool {
        self.committed && self.problems.is_empty()
    }
}

/// A value as it must be in PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl Val {
    fn into_param(self, ty: Ty) -> Box<dyn ToSql + Sync + Send> {
        match (self, ty) {
            (Val::Null, I64) => Box::new(None::<i64>),
            (Val::Null, I32) => Box::new(None::<i32>),
            (Val::Null, Text) => Box::new(None::<String>),
            (Val::Null, Bool) => Box::new(None::<bool>),
            (Val::Null, Bytes) => Box::new(None::<Vec<u8>>),
            // Range checked when read (see `convert`).
            (Val::Int(v), I32) => Box::new(v as i32),
            (Val::Int(v), _) => Box::new(v),
            (Val::Text(s), _) => Box::new(s),
            (Val::Bool(b), _) => Box::new(b),
            (Val::Bytes(b), _) => Box::new(b),
        }
    }
}

/// The canonical form both digests are computed over.
struct RowDigest {
    h: Sha256,
    rows: u64,
}

impl RowDigest {
    fn new(table: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"postern-migrate-v1\0");
        h.update(table.as_bytes());
        h.update(b"\0");
        RowDigest { h, rows: 0 }
    }

    fn row(&mut self, row: &[Val]) {
        self.rows += 1;
        self.h.update(b"R");
        for v in row {
            match v {
                Val::Null => self.h.update(b"N"),
                Val::Int(i) => {
                    self.h.update(b"I");
                    self.h.update(i.to_be_bytes());
                }
                Val::Text(s) => {
                    self.h.update(b"T");
                    self.h.update((s.len() as u64).to_be_bytes());
                    self.h.update(s.as_bytes());
                }
                Val::Bool(b) => self.h.update(if *b { b"B1" } else { b"B0" }),
                Val::Bytes(b) => {
                    self.h.update(b"Y");
                    self.h.update((b.len() as u64).to_be_bytes());
                    self.h.update(b);
                }
            }
        }
    }

    fn finish(self) -> (u64, String) {
        (self.rows, hex::encode(self.h.finalize()))
    }
}

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("reading the embedded store: {e}"))
}

fn invalid(msg: String) -> StoreError {
    StoreError::Invalid(msg)
}

/// One stored SQLite value as the PostgreSQL column needs it.
fn convert(t: &Table, col: &Col, v: ValueRef<'_>, key: &dyn Fn() -> String) -> Result<Val> {
    let bad = |what: &str| invalid(format!("{}.{} of row {}: {what}", t.name, col.name, key()));
    match (v, col.ty) {
        (ValueRef::Null, _) if col.nullable => Ok(Val::Null),
        (ValueRef::Null, _) => Err(bad("NULL in a NOT NULL column")),
        (ValueRef::Integer(i), I64) => Ok(Val::Int(i)),
        (ValueRef::Integer(i), I32) => i32::try_from(i)
            .map(|_| Val::Int(i))
            .map_err(|_| bad("integer out of range for INT")),
        // As the embedded backend reads it (rusqlite's bool: non-zero is true).
        (ValueRef::Integer(i), Bool) => Ok(Val::Bool(i != 0)),
        (ValueRef::Blob(b), Bytes) => Ok(Val::Bytes(b.to_vec())),
        (ValueRef::Text(b), Text) => {
            let s = std::str::from_utf8(b).map_err(|_| bad("text is not UTF-8"))?;
            if !s.contains('\0') {
                Ok(Val::Text(s.to_owned()))
            } else if col.nul_to_fffd {
                Ok(Val::Text(nul_safe(s).into_owned()))
            } else {
                Err(bad(
                    "holds NUL (U+0000), which PostgreSQL text cannot store; fix or remove it before migrating",
                ))
            }
        }
        (other, _) => Err(bad(&format!(
            "a {:?} value where {:?} was expected",
            other.data_type(),
            col.ty
        ))),
    }
}

/// The ledger's lookup columns, from the record, exactly as the PostgreSQL backend's
/// append derives them.
fn derive_ledger(row: &[Val]) -> Result<Vec<Val>> {
    let (Some(Val::Int(seq)), Some(Val::Text(json))) = (row.first(), row.get(1)) else {
        return Err(invalid("ledger row without seq and record".into()));
    };
    let record: LedgerRecord = serde_json::from_str(json).map_err(|e| {
        invalid(format!(
            "ledger entry {seq} does not decode ({e}); run `postern audit verify` on the embedded store"
        ))
    })?;
    let text = |s: Option<&str>| match s {
        Some(s) => Val::Text(nul_safe(s).into_owned()),
        None => Val::Null,
    };
    Ok(vec![
        text(record.actor.account.as_deref()),
        text(record.target.as_deref()),
        Val::Int(record.time_ms),
    ])
}

/// A page of a table in primary-key order, after the key `after`: (key, converted row).
fn read_page(
    conn: &rusqlite::Connection,
    t: &Table,
    after: Option<&[SqlValue]>,
) -> Result<Vec<(Vec<SqlValue>, Vec<Val>)>> {
    let cols: Vec<&str> = t.cols.iter().map(|c| c.name).collect();
    let pk = t.pk.join(", ");
    let placeholders: Vec<String> = (1..=t.pk.len()).map(|i| format!("?{i}")).collect();
    let filter = if after.is_some() {
        format!("WHERE ({pk}) > ({})", placeholders.join(", "))
    } else {
        String::new()
    };
    // Table and column names come from TABLES, never from input.
    let sql = format!(
        "SELECT {} FROM {} {filter} ORDER BY {pk} LIMIT {ROWS_PER_BATCH}",
        cols.join(", "),
        t.name
    );
    let key_idx: Vec<usize> =
        t.pk.iter()
            .map(|k| cols.iter().position(|c| c == k).unwrap_or(0))
            .collect();
    let mut st = conn.prepare(&sql).map_err(sqlite_err)?;
    let params: Vec<&dyn rusqlite::ToSql> = after
        .unwrap_or(&[])
        .iter()
        .map(|v| v as &dyn rusqlite::ToSql)
        .collect();
    let mut rows = st.query(params.as_slice()).map_err(sqlite_err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(sqlite_err)? {
        let mut key = Vec::with_capacity(key_idx.len());
        for &i in &key_idx {
            key.push(r.get::<_, SqlValue>(i).map_err(sqlite_err)?);
        }
        let show = || format!("{key:?}");
        let mut vals = Vec::with_capacity(t.cols.len() + t.derived.len());
        for (i, col) in t.cols.iter().enumerate() {
            let v = r.get_ref(i).map_err(sqlite_err)?;
            vals.push(convert(t, col, v, &show)?);
        }
        if !t.derived.is_empty() {
            vals.extend(derive_ledger(&vals)?);
        }
        out.push((key, vals));
    }
    Ok(out)
}

/// Opens the embedded store for the migration and takes its write lock (see the module
/// documentation); the returned connection is in that transaction, query-only.
fn open_locked(path: &Path) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    if !path.exists() {
        return Err(StoreError::NotFound(format!(
            "{}: no embedded store here",
            path.display()
        )));
    }
    // Read-write without CREATE: the file must exist, and only a writable connection
    // can hold the write lock.
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err)?;
    conn.busy_timeout(SQLITE_LOCK_WAIT).map_err(sqlite_err)?;
    let busy = |e: rusqlite::Error| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(format!(
                "{} is in use ({e}): stop the server (and any running `postern` command) before migrating",
                path.display()
            ))
        }
        _ => sqlite_err(e),
    };
    // EXCLUSIVE locking mode: the lock is only granted when no other connection has the
    // file open, so an idle running server is found too, not only one that is writing.
    // The first read takes the lock (in WAL mode, exclusive mode takes it there).
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE")
        .map_err(busy)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(busy)?;
    conn.execute_batch("PRAGMA query_only = ON")
        .map_err(sqlite_err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    if version != SQLITE_SCHEMA_VERSION {
        return Err(invalid(format!(
            "the embedded store has schema version {version}, this migration reads {SQLITE_SCHEMA_VERSION}: \
             start this build's server once on it (it upgrades the schema), stop it, then migrate"
        )));
    }
    Ok(conn)
}

/// Every table and column of the SQLite file must be one this migration copies.
fn check_sqlite_catalogue(conn: &rusqlite::Connection) -> Result<()> {
    let mut st = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(sqlite_err)?;
    let tables: Vec<String> = st
        .query_map([], |r| r.get(0))
        .map_err(sqlite_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sqlite_err)?;
    for name in &tables {
        if SQLITE_ONLY_TABLES.contains(&name.as_str()) {
            continue;
        }
        let Some(t) = TABLES.iter().find(|t| t.name == name) else {
            return Err(invalid(format!(
                "the embedded store has a table `{name}` this migration does not know: upgrade Postern"
            )));
        };
        let mut st = conn
            .prepare(&format!("PRAGMA table_info({})", t.name))
            .map_err(sqlite_err)?;
        let mut have: Vec<String> = st
            .query_map([], |r| r.get(1))
            .map_err(sqlite_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sqlite_err)?;
        let mut want: Vec<String> = t.cols.iter().map(|c| c.name.to_string()).collect();
        have.sort();
        want.sort();
        if have != want {
            return Err(invalid(format!(
                "embedded table {}: columns {have:?}, this migration copies {want:?}",
                t.name
            )));
        }
    }
    for t in TABLES {
        if !tables.iter().any(|n| n == t.name) {
            return Err(invalid(format!(
                "the embedded store has no table `{}`",
                t.name
            )));
        }
    }
    Ok(())
}

/// Every table and column of the new PostgreSQL schema must be one this migration fills.
async fn check_pg_catalogue(tx: &tokio_postgres::Transaction<'_>, schema: &str) -> Result<()> {
    let rows = tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .map_err(pg_err)?;
    let mut have: Vec<(String, String)> = Vec::with_capacity(rows.len());
    for r in &rows {
        have.push((
            r.try_get(0).map_err(crate::error::decode_err)?,
            r.try_get(1).map_err(crate::error::decode_err)?,
        ));
    }
    have.retain(|(t, _)| !PG_ONLY_TABLES.contains(&t.as_str()));
    let mut want: Vec<(String, String)> = TABLES
        .iter()
        .flat_map(|t| {
            t.cols
                .iter()
                .chain(t.derived)
                .map(|c| (t.name.to_string(), c.name.to_string()))
        })
        .collect();
    have.sort();
    want.sort();
    if have != want {
        let extra: Vec<_> = have.iter().filter(|x| !want.contains(x)).collect();
        let missing: Vec<_> = want.iter().filter(|x| !have.contains(x)).collect();
        return Err(invalid(format!(
            "the PostgreSQL schema and this migration disagree: columns not copied {extra:?}, columns missing {missing:?}"
        )));
    }
    Ok(())
}

/// (name, path) of blob files, sorted by name.
type BlobFiles = Vec<(String, PathBuf)>;

/// Where a blob of the embedded store is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum BlobSource {
    /// A row of `inline_blobs`.
    Inline,
    File(PathBuf),
}

/// Every blob of the embedded store, sorted by name, each once: the rows of
/// `inline_blobs` and the blob files (a blob in both places is read from the row; both
/// copies are checked against the name when read).
fn all_blobs(conn: &rusqlite::Connection, files: BlobFiles) -> Result<Vec<(String, BlobSource)>> {
    let mut st = conn
        .prepare("SELECT hash FROM inline_blobs ORDER BY hash")
        .map_err(sqlite_err)?;
    let inline: Vec<String> = st
        .query_map([], |r| r.get(0))
        .map_err(sqlite_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sqlite_err)?;
    let mut out: Vec<(String, BlobSource)> = Vec::with_capacity(inline.len() + files.len());
    for name in inline {
        if !valid_hash(&name) {
            return Err(invalid(format!(
                "inline_blobs holds a row named {name:?}, which is not a blob name; run `postern store verify`"
            )));
        }
        out.push((name, BlobSource::Inline));
    }
    out.extend(files.into_iter().map(|(n, p)| (n, BlobSource::File(p))));
    // Inline sorts before File: the row is kept when a name is in both places.
    out.sort();
    out.dedup_by(|b, a| a.0 == b.0);
    Ok(out)
}

/// Blob files under `dir` (`ab/cd/<sha256>`), sorted by name, and the other files.
fn list_blob_files(dir: &Path) -> Result<(BlobFiles, Vec<String>)> {
    let mut blobs = Vec::new();
    let mut ignored = Vec::new();
    if !dir.exists() {
        return Ok((blobs, ignored));
    }
    fn walk(
        root: &Path,
        dir: &Path,
        depth: usize,
        blobs: &mut Vec<(String, PathBuf)>,
        ignored: &mut Vec<String>,
    ) -> Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let ft = e.file_type()?;
            if ft.is_dir() && depth < 2 {
                walk(root, &path, depth + 1, blobs, ignored)?;
            } else if ft.is_file()
                && depth == 2
                && valid_hash(&name)
                && rel == format!("{}/{}/{name}", &name[0..2], &name[2..4])
            {
                blobs.push((name, path));
            } else if ft.is_dir() {
                ignored.push(format!("{rel}/"));
            } else {
                ignored.push(rel);
            }
        }
        Ok(())
    }
    walk(dir, dir, 0, &mut blobs, &mut ignored)?;
    blobs.sort();
    ignored.sort();
    Ok((blobs, ignored))
}

/// A multi-row INSERT of `rows` rows of `cols` columns.
fn insert_sql(table: &str, cols: &[&str], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
    let mut p = 1;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for i in 0..cols.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${p}"));
            p += 1;
        }
        sql.push(')');
    }
    sql
}

async fn insert_rows(
    tx: &tokio_postgres::Transaction<'_>,
    t: &Table,
    rows: Vec<Vec<Val>>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let cols: Vec<&Col> = t.cols.iter().chain(t.derived).collect();
    let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
    let sql = insert_sql(t.name, &names, rows.len());
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(rows.len() * cols.len());
    for row in rows {
        for (v, col) in row.into_iter().zip(&cols) {
            params.push(v.into_param(col.ty));
        }
    }
    let refs: Vec<&(dyn ToSql + Sync)> =
        params.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
    tx.execute(sql.as_str(), &refs).await.map_err(|e| {
        StoreError::Unavailable(format!(
            "copying {} into PostgreSQL: {}",
            t.name,
            describe(&e)
        ))
    })?;
    Ok(())
}

/// Reads a table back from PostgreSQL in primary-key order and digests it.
async fn target_digest(tx: &tokio_postgres::Transaction<'_>, t: &Table) -> Result<(u64, String)> {
    use futures_util::StreamExt;
    let cols: Vec<&Col> = t.cols.iter().chain(t.derived).collect();
    let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        names.join(", "),
        t.name,
        t.pk.join(", ")
    );
    let none: [&(dyn ToSql + Sync); 0] = [];
    let stream = tx.query_raw(sql.as_str(), none).await.map_err(pg_err)?;
    futures_util::pin_mut!(stream);
    let mut d = RowDigest::new(t.name);
    let dec = crate::error::decode_err;
    while let Some(r) = stream.next().await {
        let r = r.map_err(pg_err)?;
        let mut vals = Vec::with_capacity(cols.len());
        for (i, col) in cols.iter().enumerate() {
            let v = match col.ty {
                I64 => r.try_get::<_, Option<i64>>(i).map_err(dec)?.map(Val::Int),
                I32 => r
                    .try_get::<_, Option<i32>>(i)
                    .map_err(dec)?
                    .map(|v| Val::Int(v.into())),
                Text => r
                    .try_get::<_, Option<String>>(i)
                    .map_err(dec)?
                    .map(Val::Text),
                Bool => r.try_get::<_, Option<bool>>(i).map_err(dec)?.map(Val::Bool),
                Bytes => r
                    .try_get::<_, Option<Vec<u8>>>(i)
                    .map_err(dec)?
                    .map(Val::Bytes),
            };
            vals.push(v.unwrap_or(Val::Null));
        }
        d.row(&vals);
    }
    Ok(d.finish())
}

/// Blob rows waiting for one multi-row insert.
#[derive(Default)]
struct BlobBatch {
    blobs: Vec<(String, i64)>,
    chunks: Vec<(String, i32, Vec<u8>)>,
    bytes: usize,
}

impl BlobBatch {
    fn add(&mut self, hash: &str, data: Vec<u8>) {
        self.blobs.push((hash.to_string(), data.len() as i64));
        self.bytes += data.len();
        if data.is_empty() {
            // As PgBlobStore::put: every stored blob has its chunk 0.
            self.chunks.push((hash.to_string(), 0, Vec::new()));
        } else {
            for (i, chunk) in data.chunks(crate::CHUNK_SIZE).enumerate() {
                self.chunks
                    .push((hash.to_string(), i as i32, chunk.to_vec()));
            }
        }
    }

    async fn flush(&mut self, tx: &tokio_postgres::Transaction<'_>) -> Result<()> {
        if self.blobs.is_empty() {
            return Ok(());
        }
        let blobs = std::mem::take(&mut self.blobs);
        let chunks = std::mem::take(&mut self.chunks);
        self.bytes = 0;
        let sql = insert_sql("blobs", &["hash", "size"], blobs.len());
        let params: Vec<&(dyn ToSql + Sync)> = blobs
            .iter()
            .flat_map(|(h, s)| [h as &(dyn ToSql + Sync), s])
            .collect();
        tx.execute(sql.as_str(), &params).await.map_err(pg_err)?;
        let sql = insert_sql("blob_chunks", &["hash", "idx", "data"], chunks.len());
        let params: Vec<&(dyn ToSql + Sync)> = chunks
            .iter()
            .flat_map(|(h, i, d)| [h as &(dyn ToSql + Sync), i, d])
            .collect();
        tx.execute(sql.as_str(), &params).await.map_err(pg_err)?;
        Ok(())
    }
}

/// Reads every blob back from PostgreSQL, checking each against its name: (count,
/// bytes, digest over (name, size) in name order, problems).
async fn target_blobs(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<(u64, u64, String, Vec<String>)> {
    use futures_util::StreamExt;
    let none: [&(dyn ToSql + Sync); 0] = [];
    let stream = tx
        .query_raw(
            "SELECT b.hash, b.size, c.idx, c.data FROM blobs b
             LEFT JOIN blob_chunks c ON c.hash = b.hash ORDER BY b.hash, c.idx",
            none,
        )
        .await
        .map_err(pg_err)?;
    futures_util::pin_mut!(stream);
    let dec = crate::error::decode_err;
    let mut problems = Vec::new();
    let mut list = Sha256::new();
    let (mut count, mut bytes) = (0u64, 0u64);
    // (name, recorded size, hasher, bytes so far, next chunk index)
    let mut cur: Option<(String, i64, Sha256, u64, i32)> = None;
    let mut finish = |c: (String, i64, Sha256, u64, i32), problems: &mut Vec<String>| {
        let (name, size, h, len, _) = c;
        let actual = hex::encode(h.finalize());
        if actual != name {
            problems.push(format!("blob {name} reads back as {actual}"));
        }
        if size != len as i64 {
            problems.push(format!("blob {name} is {len} bytes, its row says {size}"));
        }
        list.update(name.as_bytes());
        list.update(len.to_be_bytes());
        count += 1;
        bytes += len;
    };
    while let Some(r) = stream.next().await {
        let r = r.map_err(pg_err)?;
        let name: String = r.try_get(0).map_err(dec)?;
        let size: i64 = r.try_get(1).map_err(dec)?;
        let idx: Option<i32> = r.try_get(2).map_err(dec)?;
        let data: Option<&[u8]> = r.try_get(3).map_err(dec)?;
        if cur.as_ref().is_none_or(|c| c.0 != name) {
            if let Some(done) = cur.take() {
                finish(done, &mut problems);
            }
            cur = Some((name.clone(), size, Sha256::new(), 0, 0));
        }
        let Some(c) = cur.as_mut() else { continue };
        match (idx, data) {
            (Some(i), Some(d)) if i == c.4 => {
                c.2.update(d);
                c.3 += d.len() as u64;
                c.4 += 1;
            }
            (None, _) => problems.push(format!("blob {name} has no chunks")),
            (Some(i), _) => problems.push(format!("blob {name}: chunk {i} out of order")),
        }
    }
    if let Some(done) = cur.take() {
        finish(done, &mut problems);
    }
    Ok((count, bytes, hex::encode(list.finalize()), problems))
}

/// Refuses a schema that holds anything: the migration only fills a new or empty one.
async fn check_empty(tx: &tokio_postgres::Transaction<'_>, schema: &str) -> Result<()> {
    let rows = tx
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             UNION ALL
             SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = $1
             ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(pg_err)?;
    if rows.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = rows
        .iter()
        .take(8)
        .map(|r| r.try_get::<_, String>(0).unwrap_or_default())
        .collect();
    let more = if rows.len() > names.len() {
        ", …"
    } else {
        ""
    };
    Err(StoreError::Refused(format!(
        "schema {schema} is not empty (it holds {} objects: {}{more}); migrate only into a new or \
         empty schema: choose another --schema, or drop it (DROP SCHEMA {schema} CASCADE) if it \
         holds nothing you need",
        rows.len(),
        names.join(", ")
    )))
}

/// Copies the embedded store (`sqlite_path`, `blobs_dir`) into the new or empty schema
/// `schema` of the database at `url`, and verifies the copy; see the module
/// documentation. `Err` when the migration cannot start or fails (nothing committed);
/// `Ok` with the report otherwise — committed only when [`MigrationReport::ok`].
///
/// Blocks on SQLite and file reads between its awaits: run it on a runtime with a
/// worker to spare (the CLI does), not inside a latency-sensitive server.
pub async fn from_embedded(
    sqlite_path: &Path,
    blobs_dir: &Path,
    url: &str,
    schema: &str,
) -> Result<MigrationReport> {
    if !valid_schema_name(schema) {
        return Err(invalid(format!(
            "schema name {schema:?}: use [a-z_][a-z0-9_]*, at most {} bytes, not pg_…",
            crate::MAX_SCHEMA_LEN
        )));
    }
    let mut cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| invalid(format!("PostgreSQL URL: {e}")))?;
    cfg.application_name("postern store migrate");
    cfg.connect_timeout(Duration::from_secs(10));

    let sqlite = open_locked(sqlite_path)?;
    check_sqlite_catalogue(&sqlite)?;
    let (blob_files, ignored) = list_blob_files(blobs_dir)?;
    let blob_files = all_blobs(&sqlite, blob_files)?;
    {
        let mut st = sqlite
            .prepare("SELECT DISTINCT blob_hash FROM messages ORDER BY blob_hash")
            .map_err(sqlite_err)?;
        let referenced: Vec<String> = st
            .query_map([], |r| r.get(0))
            .map_err(sqlite_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sqlite_err)?;
        let missing: Vec<&String> = referenced
            .iter()
            .filter(|h| {
                blob_files
                    .binary_search_by(|(n, _)| n.as_str().cmp(h))
                    .is_err()
            })
            .collect();
        if !missing.is_empty() {
            return Err(invalid(format!(
                "{} message blob(s) are missing from {} and the database (first: {}); run \
                 `postern store verify` and repair the embedded store before migrating",
                missing.len(),
                blobs_dir.display(),
                missing[0]
            )));
        }
    }

    let mut report = MigrationReport {
        schema: schema.to_string(),
        ignored_files: ignored,
        ..Default::default()
    };

    let (mut client, driver) = connect_one(&cfg).await?;
    let result = copy_and_verify(&sqlite, &blob_files, &mut client, schema, &mut report).await;
    drop(client);
    drop(driver);
    // Ends the read (nothing was written) and releases SQLite's write lock.
    let _ = sqlite.execute_batch("ROLLBACK");
    drop(sqlite);
    result?;
    if !report.committed {
        return Ok(report);
    }

    // Through the Store trait, on the committed schema: the same chain and head.
    let store = PgStore::connect(
        url,
        schema,
        PgOptions {
            pool_size: 2,
            blobs_in_database: true,
            application_name: "postern store migrate".into(),
            ..PgOptions::default()
        },
    )
    .await?;
    let anchor = report.ledger_head.clone();
    match postern_store::verify::verify_ledger_head(
        &store,
        anchor.as_ref().map(|(s, h)| (*s, h.as_str())),
    )
    .await?
    {
        Ok((n, head)) if n == report.ledger_entries && head == anchor => {}
        Ok((n, head)) => report.problems.push(format!(
            "after commit the ledger has {n} entries with head {head:?}, expected {} with {anchor:?}",
            report.ledger_entries
        )),
        Err(b) => report
            .problems
            .push(format!("after commit, ledger entry {}: {}", b.seq, b.reason)),
    }
    report.problems.extend(
        store
            .backend_check()
            .await?
            .into_iter()
            .map(|p| format!("after commit: {p}")),
    );
    store.close();
    Ok(report)
}

async fn copy_and_verify(
    sqlite: &rusqlite::Connection,
    blob_files: &[(String, BlobSource)],
    client: &mut tokio_postgres::Client,
    schema: &str,
    report: &mut MigrationReport,
) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_err)?;
    lock_schema(&tx, schema).await?;
    check_empty(&tx, schema).await?;
    prepare_schema(&tx, schema).await?;
    // The whole copy must be durable when COMMIT returns, whatever the server's default.
    tx.batch_execute("SET LOCAL synchronous_commit = on")
        .await
        .map_err(pg_err)?;
    check_pg_catalogue(&tx, schema).await?;
    // The new schema starts with the genesis head; the copied row replaces it.
    tx.execute("DELETE FROM ledger_head", &[])
        .await
        .map_err(pg_err)?;

    let mut digests = Vec::with_capacity(TABLES.len());
    for t in TABLES {
        let mut d = RowDigest::new(t.name);
        let mut after: Option<Vec<SqlValue>> = None;
        loop {
            let page = read_page(sqlite, t, after.as_deref())?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            let full = page.len() == ROWS_PER_BATCH;
            let rows: Vec<Vec<Val>> = page.into_iter().map(|(_, v)| v).collect();
            for r in &rows {
                d.row(r);
            }
            insert_rows(&tx, t, rows).await?;
            if !full {
                break;
            }
        }
        if t.name == "ledger_head" && d.rows == 0 {
            // An embedded store that never appended has no head row and reads as the
            // genesis head; PostgreSQL needs the row.
            let row = vec![
                Val::Int(1),
                Val::Int(0),
                Val::Text(ledger::GENESIS.to_string()),
            ];
            d.row(&row);
            insert_rows(&tx, t, vec![row]).await?;
        }
        digests.push((t, d.finish()));
    }

    let mut batch = BlobBatch::default();
    let mut source_list = Sha256::new();
    for (name, source) in blob_files {
        let data = match source {
            BlobSource::File(path) => std::fs::read(path)?,
            BlobSource::Inline => sqlite
                .prepare_cached("SELECT data FROM inline_blobs WHERE hash = ?1")
                .map_err(sqlite_err)?
                .query_row([name], |r| r.get::<_, Vec<u8>>(0))
                .map_err(sqlite_err)?,
        };
        let actual = hash_bytes(&data);
        if &actual != name {
            return Err(StoreError::CorruptBlob {
                hash: name.clone(),
                actual,
            });
        }
        report.source_blobs += 1;
        report.source_blob_bytes += data.len() as u64;
        source_list.update(name.as_bytes());
        source_list.update((data.len() as u64).to_be_bytes());
        batch.add(name, data);
        if batch.bytes >= BLOB_BATCH_BYTES || batch.blobs.len() >= ROWS_PER_BATCH {
            batch.flush(&tx).await?;
        }
    }
    batch.flush(&tx).await?;
    let source_list = hex::encode(source_list.finalize());

    // Verification, inside the transaction: a difference rolls everything back.
    for (t, (rows, digest)) in digests {
        let (target_rows, target_digest) = target_digest(&tx, t).await?;
        let r = TableReport {
            table: t.name,
            source_rows: rows,
            target_rows,
            source_digest: digest,
            target_digest,
        };
        if !r.equal() {
            report.problems.push(format!(
                "table {}: {} rows (sha256 {}) copied, {} rows (sha256 {}) read back",
                r.table, r.source_rows, r.source_digest, r.target_rows, r.target_digest
            ));
        }
        report.tables.push(r);
    }
    let (count, bytes, target_list, problems) = target_blobs(&tx).await?;
    report.target_blobs = count;
    report.target_blob_bytes = bytes;
    report.problems.extend(problems);
    if target_list != source_list {
        report.problems.push(format!(
            "blobs: {} ({} bytes) copied, {count} ({bytes} bytes) read back, lists differ",
            report.source_blobs, report.source_blob_bytes
        ));
    }
    let fetch = |from: u64, limit: usize| {
        let tx = &tx;
        async move {
            let rows = tx
                .query(
                    "SELECT seq, record, prev_hash, hash FROM ledger WHERE seq >= $1 ORDER BY seq LIMIT $2",
                    &[&crate::rows::i64_of(from), &crate::rows::limit_of(limit)],
                )
                .await
                .map_err(pg_err)?;
            rows.iter()
                .map(crate::ledger_row)
                .collect::<Result<Vec<RawLedgerEntry>>>()
        }
    };
    match postern_store::verify::verify_ledger_pages(fetch, None).await? {
        Ok((n, head)) => {
            report.ledger_entries = n;
            report.ledger_head = head;
        }
        Err(b) => report.problems.push(format!(
            "ledger entry {} (copied as stored): {}; run `postern audit verify` on the embedded store",
            b.seq, b.reason
        )),
    }
    let row = tx
        .query_one("SELECT seq, hash FROM ledger_head WHERE id = 1", &[])
        .await
        .map_err(pg_err)?;
    let head: (i64, String) = (
        row.try_get(0).map_err(crate::error::decode_err)?,
        row.try_get(1).map_err(crate::error::decode_err)?,
    );
    let chain_head = report
        .ledger_head
        .clone()
        .map(|(s, h)| (s as i64, h))
        .unwrap_or((0, ledger::GENESIS.to_string()));
    if head != chain_head {
        report.problems.push(format!(
            "the ledger head records entry {} but the chain ends at {}; run `postern store verify` \
             on the embedded store",
            head.0, chain_head.0
        ));
    }

    if report.problems.is_empty() {
        tx.commit().await.map_err(|e| {
            StoreError::Unavailable(format!(
                "COMMIT failed ({}): the schema may or may not exist; check it before retrying",
                describe(&e)
            ))
        })?;
        report.committed = true;
    } else {
        tx.rollback().await.map_err(pg_err)?;
    }
    Ok(())
}
