//! The embedded backend: SQLite in WAL mode.
//!
//! One writer thread owns the only writing connection. It takes every batch that is
//! waiting (up to `group_commit_max`), applies each inside its own savepoint, and
//! commits them together: parallel sessions share one fsync (group commit), and a batch
//! that fails rolls back alone. Readers use a small pool of read-only connections, each
//! read inside one transaction, so it sees one snapshot.

mod apply;
mod blobs;
mod dav;
mod outbound_tls;
mod queue;

use crate::error::{Result, StoreError};
use crate::model::*;
use crate::ops::{Op, OpResult};
use crate::queue::*;
use crate::{RawLedgerEntry, Store};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, oneshot};

pub use blobs::SqliteBlobStore;

const SCHEMA_VERSION: i64 = 9;

/// WAL frames after which a commit checkpoints (SQLite's default is 1000).
const WAL_AUTOCHECKPOINT: i64 = 4000;

/// How long a connection waits for a lock another connection holds.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Settings of the embedded backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How many waiting write batches share one commit (one fsync).
    pub group_commit_max: usize,
    /// Read connections kept open.
    pub reader_connections: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            group_commit_max: 256,
            reader_connections: 4,
        }
    }
}

struct WriteJob {
    ops: Vec<Op>,
    reply: oneshot::Sender<Result<Vec<OpResult>>>,
}

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Option<std::sync::mpsc::SyncSender<WriteJob>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    opts: SqliteOptions,
    notify: broadcast::Sender<ChangeNotice>,
}

pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(e.to_string())
        }
        _ => StoreError::Unavailable(format!("sqlite: {e}")),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        db_err(e)
    }
}

fn open_conn(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    // Another process (the CLI next to a running server) may hold the write lock briefly.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // The writer applies each batch in a savepoint: the savepoint's undo pages (the
        // statement journal) stay in memory instead of a temporary file, which cost
        // every page a batch changed a write(2) of its own. Durability is the WAL's.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // A checkpoint copies each page changed since the last one into the database
        // file once: the pages every group commit rewrites (journal, ledger, index
        // leaves) are copied once per 4000 WAL frames (16 MiB) instead of once per
        // 1000, and the checkpoint's database fsync comes a quarter as often.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
    }
    // FULL: the WAL is fsynced at every commit, so a commit is durable when it returns.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

const MIGRATE_1_TO_2: &str = "CREATE TABLE mailbox_acl (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    account_id INTEGER NOT NULL REFERENCES principals(id),
    grantee_id INTEGER NOT NULL REFERENCES principals(id),
    rights TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, grantee_id)
) WITHOUT ROWID;
CREATE INDEX mailbox_acl_grantee ON mailbox_acl(grantee_id);";

/// 2 → 3: each mailbox entry carries its message's size, and entries are indexed by
/// modseq, so listing a mailbox and catching up with it read `mailbox_messages` only.
const MIGRATE_2_TO_3: &str = "ALTER TABLE mailbox_messages ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE mailbox_messages SET size = (SELECT m.size FROM messages m WHERE m.id = mailbox_messages.message_id);
CREATE INDEX mailbox_messages_modseq ON mailbox_messages(mailbox_id, modseq);";

/// Schema 9: who may send to a group.
const GROUP_SETTINGS_SQL: &str = "CREATE TABLE IF NOT EXISTS group_settings (
    group_id INTEGER PRIMARY KEY REFERENCES principals(id) ON DELETE CASCADE,
    senders TEXT NOT NULL
);";

/// 8 → 9: a calendar's time zone (CalDAV calendar-timezone). Made once: a table that
/// already has the column (dav.sql of a later version, run by an earlier step) keeps it.
fn add_timezone_column(tx: &Connection) -> Result<()> {
    let has: bool = tx.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('dav_collections') WHERE name = 'timezone'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        tx.execute_batch("ALTER TABLE dav_collections ADD COLUMN timezone TEXT;")?;
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        tx.execute_batch(include_str!("schema.sql"))?;
        tx.execute_batch(include_str!("queue.sql"))?;
        tx.execute_batch(include_str!("dav.sql"))?;
        tx.execute_batch(include_str!("dav_share.sql"))?;
        tx.execute_batch(include_str!("inline_blobs.sql"))?;
        tx.execute_batch(include_str!("outbound_tls.sql"))?;
        add_timezone_column(&tx)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    } else if (1..SCHEMA_VERSION).contains(&version) {
        if version < 2 {
            // 1 → 2: mailbox ACLs (RFC 4314).
            tx.execute_batch(MIGRATE_1_TO_2)?;
        }
        if version < 3 {
            tx.execute_batch(MIGRATE_2_TO_3)?;
        }
        if version < 4 {
            // 3 → 4: the outbound queue and DKIM keys.
            tx.execute_batch(include_str!("queue.sql"))?;
        }
        if version < 5 {
            // 4 → 5: CalDAV/CardDAV collections and resources.
            tx.execute_batch(include_str!("dav.sql"))?;
        }
        if version < 6 {
            // 5 → 6: calendar and address-book sharing.
            tx.execute_batch(include_str!("dav_share.sql"))?;
        }
        if version < 7 {
            // 6 → 7: small blobs in the database (their files stay where they are); the
            // unused index on messages.blob_hash goes.
            tx.execute_batch(include_str!("inline_blobs.sql"))?;
            tx.execute_batch("DROP INDEX IF EXISTS messages_blob")?;
        }
        if version < 8 {
            // 7 → 8: cached MTA-STS policies and TLS report counters.
            tx.execute_batch(include_str!("outbound_tls.sql"))?;
        }
        if version < 9 {
            add_timezone_column(&tx)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    } else if version > SCHEMA_VERSION {
        return Err(StoreError::Invalid(format!(
            "the data directory has schema version {version}, this build knows {SCHEMA_VERSION}: upgrade Postern"
        )));
    }
    // Indexes that store nothing new (made when missing, at any version).
    dav::ensure_indexes(&tx)?;
    // Made IF NOT EXISTS at every open (a store made between the two additions of
    // schema 9 has the column without the table).
    tx.execute_batch(GROUP_SETTINGS_SQL)?;
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating when needed) the database file at `path`.
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<Self> {
        let mut conn = open_conn(path, false)?;
        migrate(&mut conn)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<WriteJob>(opts.group_commit_max.max(1) * 4);
        let (notify, _) = broadcast::channel(4096);
        let n2 = notify.clone();
        let max = opts.group_commit_max.max(1);
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, rx, n2, max))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(handle)),
            readers: Arc::new(Mutex::new(Vec::new())),
            opts,
            notify,
        })
    }

    /// Stops the writer after the batches already queued are committed.
    pub fn close(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        if let Some(h) = self.writer_thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = h.join();
        }
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        let path = self.path.clone();
        let keep = self.opts.reader_connections;
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_conn(&path, true)?,
            };
            // One transaction: every statement of this read sees the same snapshot.
            conn.execute_batch("BEGIN DEFERRED")?;
            let out = f(&conn);
            let _ = conn.execute_batch("COMMIT");
            if let Ok(mut p) = pool.lock() {
                if p.len() < keep {
                    p.push(conn);
                }
            }
            out
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    /// A short read (a few rows found by key) on the calling thread, with a pooled
    /// connection, when one is free: no hop to a blocking thread and back, which costs
    /// more than the read itself (a delivery makes several). Without a free connection,
    /// as [`Self::read`]. Only for reads bounded by a key, never for scans.
    async fn read_now<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pooled = self.readers.lock().ok().and_then(|mut p| p.pop());
        let Some(conn) = pooled else {
            return self.read(f).await;
        };
        // One transaction: every statement of this read sees the same snapshot, taken
        // here without waiting: when the database is locked (another process holding
        // it exclusively, or recovering it), this async worker must not sleep in the
        // busy handler; the blocking path waits instead.
        let out = {
            let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut st| st.execute([]));
            let snapshot = conn.busy_timeout(std::time::Duration::ZERO).and_then(|_| {
                run("BEGIN DEFERRED")?;
                conn.prepare_cached("SELECT 1 FROM sqlite_schema LIMIT 1")?
                    .query_row([], |_| Ok(()))
                    .optional()
                    .map(|_| ())
            });
            let restored = conn.busy_timeout(BUSY_TIMEOUT);
            if snapshot.is_ok() && restored.is_ok() {
                let out = f(&conn);
                let _ = run("COMMIT");
                Ok(out)
            } else {
                let _ = run("ROLLBACK");
                Err(f)
            }
        };
        if let Ok(mut p) = self.readers.lock()
            && p.len() < self.opts.reader_connections
        {
            p.push(conn);
        }
        match out {
            Ok(out) => out,
            Err(f) => self.read(f).await,
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: std::sync::mpsc::Receiver<WriteJob>,
    notify: broadcast::Sender<ChangeNotice>,
    max: usize,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < max {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut outcomes: Vec<Result<(Vec<OpResult>, Vec<ChangeNotice>)>> =
            Vec::with_capacity(jobs.len());
        let committed = (|| -> Result<()> {
            let mut tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for job in &jobs {
                let mut sp = tx.savepoint()?;
                let mut notices = Vec::new();
                let mut results = Vec::with_capacity(job.ops.len());
                let mut failed = None;
                for op in &job.ops {
                    match apply::apply(&sp, op, &mut notices) {
                        Ok(r) => results.push(r),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                match failed {
                    None => {
                        sp.commit()?;
                        outcomes.push(Ok((results, notices)));
                    }
                    Some(e) => {
                        sp.rollback()?;
                        drop(sp);
                        outcomes.push(Err(e));
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })();
        match committed {
            Ok(()) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    match outcome {
                        Ok((results, notices)) => {
                            // Notices first: when `write` returns, every subscriber
                            // already has them, and one that subscribes afterwards
                            // never sees a notice older than what it read.
                            for n in notices {
                                let _ = notify.send(n);
                            }
                            let _ = job.reply.send(Ok(results));
                        }
                        Err(e) => {
                            let _ = job.reply.send(Err(e));
                        }
                    }
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Unavailable(format!(
                        "commit failed: {msg}"
                    ))));
                }
            }
        }
    }
}

// ---- row decoding --------------------------------------------------------------------

fn u64_of(v: i64) -> u64 {
    v.max(0) as u64
}

fn principal_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Principal> {
    let kind: String = r.get(3)?;
    Ok(Principal {
        id: PrincipalId(r.get(0)?),
        domain: DomainId(r.get(1)?),
        local_part: r.get(2)?,
        kind: PrincipalKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                format!("principal kind {kind:?}").into(),
            )
        })?,
        display_name: r.get(4)?,
        quota_bytes: r.get::<_, Option<i64>>(5)?.map(u64_of),
        created_ms: r.get(6)?,
    })
}
const PRINCIPAL_COLS: &str =
    "id, domain_id, local_part, kind, display_name, quota_bytes, created_ms";

fn mailbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Mailbox> {
    let su: Option<String> = r.get(3)?;
    Ok(Mailbox {
        id: MailboxId(r.get(0)?),
        account: PrincipalId(r.get(1)?),
        name: r.get(2)?,
        special_use: su.as_deref().and_then(SpecialUse::parse),
        uid_validity: r.get::<_, i64>(4)? as u32,
        uid_next: r.get::<_, i64>(5)? as u32,
        highest_modseq: u64_of(r.get(6)?),
        subscribed: r.get(7)?,
        created_ms: r.get(8)?,
    })
}
pub(crate) const MAILBOX_COLS: &str = "id, account_id, name, special_use, uid_validity, uid_next, highest_modseq, subscribed, created_ms";

fn alias_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alias> {
    Ok(Alias {
        id: AliasId(r.get(0)?),
        domain: DomainId(r.get(1)?),
        local_part: r.get(2)?,
        target: r.get(3)?,
        created_ms: r.get(4)?,
    })
}

/// Mailbox entries from rows of (uid, message_id, size, flags, keywords, modseq,
/// saved_ms). Keywords are JSON; the common empty list skips the decoder.
fn entry_rows(mut rows: rusqlite::Rows<'_>) -> Result<Vec<MailboxEntry>> {
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let keywords = r.get_ref(4)?.as_str().map_err(rusqlite::Error::from)?;
        out.push(MailboxEntry {
            uid: r.get::<_, i64>(0)? as u32,
            message: MessageId(r.get(1)?),
            size: u64_of(r.get(2)?),
            flags: Flags(r.get::<_, i64>(3)? as u32),
            keywords: if keywords == "[]" {
                Vec::new()
            } else {
                decode_json(keywords, "keywords")?
            },
            modseq: u64_of(r.get(5)?),
            saved_ms: r.get(6)?,
        });
    }
    Ok(out)
}

fn decode_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        let sender = self
            .writer
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?;
        // The channel is bounded: when the writer falls behind, writers wait here — on
        // a blocking thread, and only then; normally the job goes straight in.
        let stopped = || StoreError::Unavailable("the store writer stopped".into());
        match sender.try_send(WriteJob { ops, reply }) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(job)) => {
                tokio::task::spawn_blocking(move || sender.send(job))
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("write task failed: {e}")))?
                    .map_err(|_| stopped())?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
        }
        rx.await.map_err(|_| stopped())?
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeNotice> {
        self.notify.subscribe()
    }

    async fn domains(&self) -> Result<Vec<Domain>> {
        self.read_now(|c| {
            let mut st =
                c.prepare_cached("SELECT id, name, created_ms FROM domains ORDER BY name")?;
            let rows = st.query_map([], |r| {
                Ok(Domain {
                    id: DomainId(r.get(0)?),
                    name: r.get(1)?,
                    created_ms: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn domain_by_name(&self, name: &str) -> Result<Option<Domain>> {
        let name = name.to_string();
        self.read_now(move |c| {
            Ok(
                c.prepare_cached("SELECT id, name, created_ms FROM domains WHERE name = ?1")?
                    .query_row([&name], |r| {
                        Ok(Domain {
                            id: DomainId(r.get(0)?),
                            name: r.get(1)?,
                            created_ms: r.get(2)?,
                        })
                    })
                    .optional()?,
            )
        })
        .await
    }

    async fn principals(&self, domain: Option<DomainId>) -> Result<Vec<Principal>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {PRINCIPAL_COLS} FROM principals WHERE ?1 IS NULL OR domain_id = ?1 ORDER BY domain_id, local_part"
            );
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map([domain.map(|d| d.0)], principal_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn principal(&self, id: PrincipalId) -> Result<Option<Principal>> {
        self.read_now(move |c| {
            let sql = format!("SELECT {PRINCIPAL_COLS} FROM principals WHERE id = ?1");
            Ok(c.prepare_cached(&sql)?
                .query_row([id.0], principal_row)
                .optional()?)
        })
        .await
    }

    async fn principal_by_local(&self, domain: DomainId, local: &str) -> Result<Option<Principal>> {
        let local = local.to_string();
        self.read_now(move |c| {
            let sql = format!(
                "SELECT {PRINCIPAL_COLS} FROM principals WHERE domain_id = ?1 AND local_part = ?2"
            );
            Ok(c.prepare_cached(&sql)?
                .query_row(params![domain.0, local], principal_row)
                .optional()?)
        })
        .await
    }

    async fn usage(&self, id: PrincipalId) -> Result<Usage> {
        self.read_now(move |c| {
            c.prepare_cached("SELECT used_bytes, message_count FROM principals WHERE id = ?1")?
                .query_row([id.0], |r| {
                    Ok(Usage {
                        used_bytes: u64_of(r.get(0)?),
                        messages: u64_of(r.get(1)?),
                    })
                })
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("principal {id}")))
        })
        .await
    }

    async fn credentials(&self, principal: PrincipalId) -> Result<Vec<Credential>> {
        self.read_now(move |c| {
            let mut st = c.prepare(
                "SELECT id, principal_id, kind, label, protocols, hash, created_ms FROM credentials
                 WHERE principal_id = ?1 ORDER BY created_ms, id",
            )?;
            let rows = st.query_map([principal.0], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, p, kind, label, protocols, hash, created_ms) = row?;
                out.push(Credential {
                    id: CredentialId(id),
                    principal: PrincipalId(p),
                    kind: match kind.as_str() {
                        "password" => CredentialKind::Password,
                        "app" => CredentialKind::App,
                        other => {
                            return Err(StoreError::Invalid(format!("credential kind {other:?}")));
                        }
                    },
                    label,
                    protocols: decode_json(&protocols, "credential protocols")?,
                    hash,
                    created_ms,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn aliases(&self, domain: Option<DomainId>) -> Result<Vec<Alias>> {
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT id, domain_id, local_part, target, created_ms FROM aliases
                 WHERE ?1 IS NULL OR domain_id = ?1 ORDER BY domain_id, local_part, target",
            )?;
            let rows = st.query_map([domain.map(|d| d.0)], alias_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn aliases_for(&self, domain: DomainId, local: &str) -> Result<Vec<Alias>> {
        let local = local.to_string();
        self.read_now(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, domain_id, local_part, target, created_ms FROM aliases
                 WHERE domain_id = ?1 AND local_part = ?2 ORDER BY target",
            )?;
            let rows = st.query_map(params![domain.0, local], alias_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn group_members(&self, group: PrincipalId) -> Result<Vec<String>> {
        self.read_now(move |c| {
            let mut st = c.prepare_cached(
                "SELECT member FROM group_members WHERE group_id = ?1 ORDER BY member",
            )?;
            let rows = st.query_map([group.0], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn group_senders(&self, group: PrincipalId) -> Result<Option<String>> {
        self.read_now(move |c| {
            Ok(
                c.prepare_cached("SELECT senders FROM group_settings WHERE group_id = ?1")?
                    .query_row([group.0], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }

    async fn mailboxes(&self, account: PrincipalId) -> Result<Vec<Mailbox>> {
        self.read_now(move |c| {
            let sql =
                format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = ?1 ORDER BY name");
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map([account.0], mailbox_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn mailbox_acl(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
    ) -> Result<Vec<(PrincipalId, String)>> {
        self.read_now(move |c| {
            let mut st = c.prepare_cached(
                "SELECT grantee_id, rights FROM mailbox_acl
                 WHERE mailbox_id = ?1 AND account_id = ?2 ORDER BY grantee_id",
            )?;
            let rows = st.query_map(params![mailbox.0, account.0], |r| {
                Ok((PrincipalId(r.get(0)?), r.get::<_, String>(1)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn shared_with(&self, grantee: PrincipalId) -> Result<Vec<(Mailbox, String)>> {
        self.read(move |c| {
            let cols = MAILBOX_COLS
                .split(", ")
                .map(|col| format!("m.{col}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {cols}, a.rights FROM mailbox_acl a JOIN mailboxes m ON m.id = a.mailbox_id
                 WHERE a.grantee_id = ?1 AND m.account_id <> ?1 ORDER BY m.account_id, m.name"
            );
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map([grantee.0], |r| {
                Ok((mailbox_row(r)?, r.get::<_, String>(9)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn mailbox_entries(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
    ) -> Result<(Mailbox, Vec<MailboxEntry>)> {
        self.read(move |c| {
            let sql =
                format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = ?1 AND account_id = ?2");
            let mb = c
                .query_row(&sql, params![mailbox.0, account.0], mailbox_row)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
            let mut st = c.prepare_cached(
                "SELECT uid, message_id, size, flags, keywords, modseq, saved_ms
                 FROM mailbox_messages WHERE mailbox_id = ?1 ORDER BY uid",
            )?;
            let out = entry_rows(st.query([mailbox.0])?)?;
            Ok((mb, out))
        })
        .await
    }

    async fn mailbox_delta(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        since: u64,
    ) -> Result<crate::MailboxDelta> {
        self.read(move |c| {
            let sql =
                format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = ?1 AND account_id = ?2");
            let mb = c
                .prepare_cached(&sql)?
                .query_row(params![mailbox.0, account.0], mailbox_row)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
            if mb.highest_modseq <= since {
                return Ok(crate::MailboxDelta {
                    mailbox: mb,
                    changed: Vec::new(),
                    expunged: Vec::new(),
                });
            }
            let since = since.min(i64::MAX as u64) as i64;
            let changed = entry_rows(
                c.prepare_cached(
                    "SELECT uid, message_id, size, flags, keywords, modseq, saved_ms
                     FROM mailbox_messages WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
                )?
                .query(params![mailbox.0, since])?,
            )?;
            let mut expunged: Vec<u32> = c
                .prepare_cached(
                    "SELECT uid FROM journal WHERE account_id = ?1 AND modseq > ?2
                     AND kind = 'message_expunged' AND mailbox_id = ?3 AND uid IS NOT NULL",
                )?
                .query_map(params![account.0, since, mailbox.0], |r| {
                    r.get::<_, i64>(0).map(|u| u as u32)
                })?
                .collect::<rusqlite::Result<_>>()?;
            expunged.sort_unstable();
            expunged.dedup();
            Ok(crate::MailboxDelta {
                mailbox: mb,
                changed,
                expunged,
            })
        })
        .await
    }

    async fn message(&self, account: PrincipalId, id: MessageId) -> Result<Option<MessageRecord>> {
        Ok(self.messages(account, vec![id]).await?.into_iter().next())
    }

    async fn messages(
        &self,
        account: PrincipalId,
        ids: Vec<MessageId>,
    ) -> Result<Vec<MessageRecord>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT blob_hash, size, received_ms, thread_id, meta FROM messages
                 WHERE id = ?1 AND account_id = ?2",
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let row = st
                    .query_row(params![id.0, account.0], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    })
                    .optional()?;
                if let Some((hash, size, received_ms, thread_id, meta)) = row {
                    out.push(MessageRecord {
                        id,
                        account,
                        blob: BlobRef {
                            hash,
                            size: u64_of(size),
                        },
                        received_ms,
                        thread_id,
                        meta: decode_json(&meta, "message metadata")?,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn thread_of(
        &self,
        account: PrincipalId,
        message_ids: &[String],
    ) -> Result<Option<String>> {
        let ids = message_ids.to_vec();
        self.read_now(move |c| {
            let mut st = c.prepare_cached(
                "SELECT thread_id FROM messages WHERE account_id = ?1 AND message_id_hdr = ?2 LIMIT 1",
            )?;
            for id in &ids {
                if let Some(t) = st
                    .query_row(params![account.0, id], |r| r.get::<_, String>(0))
                    .optional()?
                {
                    return Ok(Some(t));
                }
            }
            Ok(None)
        })
        .await
    }

    async fn highest_modseq(&self, account: PrincipalId) -> Result<u64> {
        self.read_now(move |c| {
            c.query_row(
                "SELECT highest_modseq FROM principals WHERE id = ?1",
                [account.0],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(u64_of)
            .ok_or_else(|| StoreError::NotFound(format!("principal {account}")))
        })
        .await
    }

    async fn changes_since(
        &self,
        account: PrincipalId,
        since: u64,
        limit: usize,
    ) -> Result<Vec<Change>> {
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT modseq, kind, mailbox_id, message_id, uid, at_ms FROM journal
                 WHERE account_id = ?1 AND modseq > ?2 ORDER BY modseq LIMIT ?3",
            )?;
            let rows = st.query_map(params![account.0, since as i64, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (modseq, kind, mailbox, message, uid, at_ms) = row?;
                out.push(Change {
                    account,
                    modseq: u64_of(modseq),
                    kind: ChangeKind::parse(&kind)
                        .ok_or_else(|| StoreError::Invalid(format!("journal kind {kind:?}")))?,
                    mailbox: mailbox.map(MailboxId),
                    message: message.map(MessageId),
                    uid: uid.map(|u| u as u32),
                    at_ms,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn ledger(&self, q: &LedgerQuery) -> Result<Vec<LedgerEntry>> {
        let q = q.clone();
        self.read(move |c| {
            let mut st = c.prepare(
                "SELECT seq, record, prev_hash, hash FROM ledger
                 WHERE seq >= ?1
                   AND (?2 IS NULL OR json_extract(record, '$.actor.account') = ?2
                        OR json_extract(record, '$.target') = ?2)
                   AND (?3 IS NULL OR json_extract(record, '$.time_ms') >= ?3)
                 ORDER BY seq LIMIT ?4",
            )?;
            let limit = if q.limit == 0 {
                i64::MAX
            } else {
                q.limit as i64
            };
            let rows = st.query_map(
                params![q.from_seq as i64, q.account, q.since_ms, limit],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, record, prev_hash, hash) = row?;
                out.push(LedgerEntry {
                    seq: u64_of(seq),
                    record: decode_json(&record, "ledger record")?,
                    prev_hash,
                    hash,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn ledger_raw(&self, from_seq: u64, limit: usize) -> Result<Vec<RawLedgerEntry>> {
        self.read(move |c| {
            let mut st =
                c.prepare("SELECT seq, record, prev_hash, hash FROM ledger WHERE seq >= ?1 ORDER BY seq LIMIT ?2")?;
            let rows = st.query_map(params![from_seq as i64, limit as i64], |r| {
                Ok(RawLedgerEntry {
                    seq: u64_of(r.get(0)?),
                    record_json: r.get(1)?,
                    prev_hash: r.get(2)?,
                    hash: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn queued(&self, id: QueueId) -> Result<Option<(QueuedMessage, Vec<QueuedRecipient>)>> {
        self.read(move |c| queue::queued(c, id)).await
    }

    async fn queue(&self, limit: usize) -> Result<Vec<(QueuedMessage, Vec<QueuedRecipient>)>> {
        self.read(move |c| queue::queue(c, limit)).await
    }

    async fn queue_stats(&self) -> Result<QueueStats> {
        self.read(queue::stats).await
    }

    async fn dkim_keys(&self, domain: DomainId) -> Result<Vec<DkimKeyRecord>> {
        self.read(move |c| queue::dkim_keys(c, domain)).await
    }

    async fn dav_collections(&self, account: PrincipalId) -> Result<Vec<DavCollection>> {
        self.read_now(move |c| dav::collections(c, account)).await
    }

    async fn dav_resources(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
        filter: DavFilter,
    ) -> Result<Vec<DavResource>> {
        self.read(move |c| dav::resources(c, account, collection, &filter))
            .await
    }

    async fn dav_resources_named(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
        names: Vec<String>,
    ) -> Result<Vec<DavResource>> {
        self.read(move |c| dav::resources_named(c, account, collection, &names))
            .await
    }

    async fn dav_changes(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
        since: u64,
        limit: usize,
    ) -> Result<Vec<DavChange>> {
        self.read(move |c| dav::changes(c, account, collection, since, limit))
            .await
    }

    async fn dav_shares(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
    ) -> Result<Vec<(PrincipalId, String)>> {
        self.read(move |c| dav::shares(c, account, collection))
            .await
    }

    async fn dav_shared_with(&self, grantee: PrincipalId) -> Result<Vec<(DavCollection, String)>> {
        self.read(move |c| dav::shared_with(c, grantee)).await
    }

    async fn sts_policy(&self, domain: &str) -> Result<Option<crate::StsPolicyRecord>> {
        let domain = domain.to_string();
        self.read(move |c| outbound_tls::sts_policy(c, &domain))
            .await
    }

    async fn tlsrpt_counts(&self, domain: &str, day: &str) -> Result<Vec<crate::TlsRptCount>> {
        let (domain, day) = (domain.to_string(), day.to_string());
        self.read(move |c| outbound_tls::tlsrpt_counts(c, &domain, &day))
            .await
    }

    async fn referenced_blobs(&self) -> Result<Vec<BlobRef>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT blob_hash, size FROM messages
                 UNION SELECT blob_hash, size FROM queue_messages ORDER BY blob_hash",
            )?;
            let rows = st.query_map([], |r| {
                Ok(BlobRef {
                    hash: r.get(0)?,
                    size: u64_of(r.get(1)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn backend_check(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare("PRAGMA integrity_check")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for r in rows {
                let r = r?;
                if r != "ok" {
                    out.push(format!("sqlite integrity_check: {r}"));
                }
            }
            // The head row must name the last entry: a truncated ledger leaves it ahead.
            let head: Option<(i64, String)> = c
                .query_row("SELECT seq, hash FROM ledger_head WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let last: Option<(i64, String)> = c
                .query_row("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            if head != last {
                let show = |x: &Option<(i64, String)>| x.as_ref().map(|(s, _)| s.to_string()).unwrap_or("none".into());
                out.push(format!(
                    "ledger head says entry {} but the last stored entry is {} (entries removed from the end?)",
                    show(&head),
                    show(&last)
                ));
            }
            let mut st = c.prepare("PRAGMA foreign_key_check")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            for r in rows {
                out.push(format!("sqlite foreign key broken in table {}", r?));
            }
            Ok(out)
        })
        .await
    }
}
