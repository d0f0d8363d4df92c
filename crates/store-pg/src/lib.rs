//! # postern-store-pg — Postern's store in PostgreSQL, for many nodes
//!
//! [`PgStore`] implements [`postern_store::Store`] and [`PgBlobStore`] implements
//! [`postern_store::BlobStore`] over one PostgreSQL schema, with exactly the semantics
//! of the embedded SQLite backend: the same errors for the same situations, the same
//! journal numbering, the same UIDVALIDITY rule and the same ledger chain (built with
//! [`postern_store::ledger`], so hashes agree across backends). Any number of stateless
//! `postern` nodes may share one schema; change notices cross nodes by LISTEN/NOTIFY.
//! [`migrate::from_embedded`] (`postern store migrate`) copies an embedded installation
//! into a new schema, all or nothing, and verifies the copy.
//!
//! **Standards:** the PostgreSQL frontend/backend protocol (through `tokio-postgres`);
//! mailbox state follows RFC 9051 (UIDVALIDITY, UIDNEXT) and RFC 7162 (modification
//! sequences), as in `postern-store`.
//!
//! **Security:** untrusted values (names, addresses, headers, blob names) are only ever
//! bound as statement parameters, never spliced into SQL. The one identifier spliced
//! into SQL — the schema name, in DDL, `search_path` and the LISTEN channel — is
//! validated as `[a-z_][a-z0-9_]*` (at most 47 bytes, not `pg_…`) before any use, and
//! is operator configuration, not input. Blob names are checked as 64 lower-case hex
//! digits before they reach a query. Connections are plain TCP for now (loopback); TLS
//! will come through `tokio-postgres-rustls` with the ring provider.
//!
//! **Where PostgreSQL differs from SQLite:** text cannot hold NUL. A name or address
//! with NUL is refused (`Refused`, never a transient error) and lookups by one find
//! nothing; values that come from mail or sessions and are only looked up (a
//! Message-ID, a ledger record's account and target) are indexed with NUL as U+FFFD,
//! while the record itself keeps the exact value in its JSON.
//!
//! **Invariants:**
//! - A batch of [`postern_store::Op`] is one transaction: all or nothing. When `write`
//!   returns Ok it is committed (durable with `synchronous_commit` on, which `connect`
//!   forces when the server has it off).
//! - Each account's journal numbers changes 1, 2, 3, … in commit order without gaps:
//!   the account's `principals` row is locked for the whole batch (all touched accounts,
//!   in id order, up front) and `highest_modseq` is incremented under that lock; the
//!   lock is held to commit, so a later number never commits before an earlier one.
//! - The ledger is one global hash chain: appends lock the single `ledger_head` row to
//!   commit, so no two entries (from any node) chain to the same head. Every batch
//!   takes its locks in one order (accounts, domains, ledger head); a deadlock that
//!   remains possible (a lock upgrade against a foreign-key check) is retried.
//! - When `write` returns, this store's subscribers have the batch's notices (unless
//!   the LISTEN connection is down; then a reconnect catches up per account).
//! - Every read is one snapshot: one statement, or one REPEATABLE READ transaction.
#![forbid(unsafe_code)]

mod apply;
mod blob;
mod dav;
mod error;
mod listen;
pub mod migrate;
mod outbound_tls;
mod queue;
mod rows;
mod throttle;

pub use blob::{CHUNK_SIZE, PgBlobStore};

use crate::apply::{Batch, WriteError};
use crate::error::{describe, is_retryable, pg_err, pool_err};
use crate::rows::{col, limit_of, mailbox_cols, principal_cols, u64_of};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use listen::Notices;
use postern_store::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i32 = 8;

/// First key of the advisory lock that serialises migrations (second: the schema).
const MIGRATION_LOCK: i32 = 0x7057_7231;

const SCHEMA_SQL: &str = include_str!("schema.sql");
const QUEUE_SQL: &str = include_str!("queue.sql");
const DAV_SQL: &str = include_str!("dav.sql");
const DAV_SHARE_SQL: &str = include_str!("dav_share.sql");
const OUTBOUND_TLS_SQL: &str = include_str!("outbound_tls.sql");
/// 7 → 8: a calendar's time zone (CalDAV calendar-timezone).
const DAV_TIMEZONE_SQL: &str =
    "ALTER TABLE dav_collections ADD COLUMN IF NOT EXISTS timezone TEXT COLLATE \"C\"";
/// Schema 8: who may send to a group (made IF NOT EXISTS at every open: a schema made
/// between the two additions of version 8 has the column without the table).
const GROUP_SETTINGS_SQL: &str = "CREATE TABLE IF NOT EXISTS group_settings (
        group_id BIGINT PRIMARY KEY REFERENCES principals(id) ON DELETE CASCADE,
        senders TEXT COLLATE \"C\" NOT NULL
     )";

/// Settings of the PostgreSQL backend.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections kept by the pool (the LISTEN connection comes on top).
    pub pool_size: usize,
    /// Time to open one connection.
    pub connect_timeout: Duration,
    /// How long an operation waits for a free pooled connection.
    pub acquire_timeout: Duration,
    /// How often a batch is run again after a deadlock or serialization failure.
    pub write_retries: u32,
    /// How long `write` waits for its own change notices to come back through LISTEN.
    pub notice_wait: Duration,
    /// Notices kept for slow subscribers (beyond it they see `Lagged`).
    pub notice_capacity: usize,
    /// Whether blobs live in this database ([`PgStore::blob_store`]); then
    /// `backend_check` also verifies that every message's blob has a row.
    pub blobs_in_database: bool,
    /// `application_name` of the connections (the LISTEN one gets ` listen` appended).
    pub application_name: String,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 16,
            connect_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(30),
            write_retries: 5,
            notice_wait: Duration::from_secs(5),
            notice_capacity: 4096,
            blobs_in_database: false,
            application_name: "postern".into(),
        }
    }
}

/// Longest schema name: the LISTEN channel `postern_changes_<schema>` must fit in
/// PostgreSQL's 63-byte identifiers.
pub const MAX_SCHEMA_LEN: usize = 47;

/// Checks a schema name before it is ever spliced into SQL: `[a-z_][a-z0-9_]*`, at most
/// [`MAX_SCHEMA_LEN`] bytes, not starting with `pg_` (reserved by PostgreSQL).
pub fn valid_schema_name(schema: &str) -> bool {
    let b = schema.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_SCHEMA_LEN
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !schema.starts_with("pg_")
}

/// Metadata, journal and ledger in PostgreSQL.
pub struct PgStore {
    pool: Pool,
    limiter: Arc<throttle::PgLimiter>,
    schema: String,
    channel: String,
    opts: PgOptions,
    notices: Arc<Notices>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

async fn connect_one(
    cfg: &tokio_postgres::Config,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    // TLS: tokio-postgres-rustls (ring provider) replaces NoTls here, in the pool's
    // manager and in the listener, once connections leave the loopback.
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| {
        StoreError::Unavailable(format!("cannot connect to PostgreSQL: {}", describe(&e)))
    })?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("postgres connection ended: {}", describe(&e));
        }
    });
    Ok((client, driver))
}

/// Creates the schema and its tables when missing, under an advisory lock so that
/// nodes starting together do not race. Returns whether `synchronous_commit` is off.
async fn migrate(client: &mut tokio_postgres::Client, schema: &str) -> Result<bool> {
    let tx = client.transaction().await.map_err(pg_err)?;
    prepare_schema(&tx, schema).await?;
    let sync: String = col(
        &tx.query_one("SELECT current_setting('synchronous_commit')", &[])
            .await
            .map_err(pg_err)?,
        0,
    )?;
    tx.commit().await.map_err(pg_err)?;
    Ok(sync == "off")
}

/// Takes the migration lock of `schema` (held to the end of `tx`), creates the schema
/// when missing and brings its tables to [`SCHEMA_VERSION`]. Leaves `search_path` set
/// to the schema for the rest of `tx`. Also used by [`migrate::from_embedded`], which
/// fills the new tables in the same transaction.
pub(crate) async fn prepare_schema(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
) -> Result<()> {
    lock_schema(tx, schema).await?;
    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(pg_err)?
        .is_some();
    // `schema` passed valid_schema_name: only [a-z0-9_] reaches the SQL text.
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .await
            .map_err(pg_err)?;
    }
    tx.batch_execute(&format!(
        "SET LOCAL search_path = \"{schema}\";
         CREATE TABLE IF NOT EXISTS schema_version (
             id INT PRIMARY KEY CHECK (id = 1),
             version INT NOT NULL
         );"
    ))
    .await
    .map_err(pg_err)?;
    let version: Option<i32> = match tx
        .query_opt("SELECT version FROM schema_version WHERE id = 1", &[])
        .await
        .map_err(pg_err)?
    {
        Some(r) => Some(col(&r, 0)?),
        None => None,
    };
    match version {
        None => {
            tx.batch_execute(SCHEMA_SQL).await.map_err(pg_err)?;
            tx.batch_execute(QUEUE_SQL).await.map_err(pg_err)?;
            tx.batch_execute(DAV_SQL).await.map_err(pg_err)?;
            tx.batch_execute(DAV_SHARE_SQL).await.map_err(pg_err)?;
            tx.batch_execute(OUTBOUND_TLS_SQL).await.map_err(pg_err)?;
            tx.batch_execute(DAV_TIMEZONE_SQL).await.map_err(pg_err)?;
            tx.execute(
                "INSERT INTO ledger_head (id, seq, hash) VALUES (1, 0, $1)",
                &[&ledger::GENESIS],
            )
            .await
            .map_err(pg_err)?;
            tx.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, $1)",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(pg_err)?;
        }
        Some(v) if v < SCHEMA_VERSION => {
            if v < 2 {
                // 1 → 2: mailbox ACLs (RFC 4314).
                tx.batch_execute(
                    "CREATE TABLE mailbox_acl (
                        mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id),
                        account_id BIGINT NOT NULL REFERENCES principals(id),
                        grantee_id BIGINT NOT NULL REFERENCES principals(id),
                        rights TEXT COLLATE \"C\" NOT NULL,
                        PRIMARY KEY (mailbox_id, grantee_id)
                    );
                    CREATE INDEX mailbox_acl_grantee ON mailbox_acl(grantee_id);",
                )
                .await
                .map_err(pg_err)?;
            }
            if v < 3 {
                // 2 → 3: each mailbox entry carries its message's size, and entries are
                // indexed by modseq (listing and catching up read mailbox_messages only).
                tx.batch_execute(
                    "ALTER TABLE mailbox_messages ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
                     UPDATE mailbox_messages mm SET size = m.size FROM messages m
                      WHERE m.id = mm.message_id;
                     CREATE INDEX mailbox_messages_modseq ON mailbox_messages(mailbox_id, modseq);",
                )
                .await
                .map_err(pg_err)?;
            }
            if v < 4 {
                // 3 → 4: the outbound queue and DKIM keys.
                tx.batch_execute(QUEUE_SQL).await.map_err(pg_err)?;
            }
            if v < 5 {
                // 4 → 5: CalDAV/CardDAV collections and resources.
                tx.batch_execute(DAV_SQL).await.map_err(pg_err)?;
            }
            if v < 6 {
                // 5 → 6: calendar and address-book sharing.
                tx.batch_execute(DAV_SHARE_SQL).await.map_err(pg_err)?;
            }
            if v < 7 {
                // 6 → 7: cached MTA-STS policies and TLS report counters.
                tx.batch_execute(OUTBOUND_TLS_SQL).await.map_err(pg_err)?;
            }
            if v < 8 {
                tx.batch_execute(DAV_TIMEZONE_SQL).await.map_err(pg_err)?;
            }
            tx.execute(
                "UPDATE schema_version SET version = $1 WHERE id = 1",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(pg_err)?;
        }
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::Invalid(format!(
                "schema {schema} has version {v}, this build knows {SCHEMA_VERSION}: upgrade Postern"
            )));
        }
        Some(_) => {}
    }
    // Unversioned: throttling counters and node secrets (crates/store-pg/src/throttle.rs).
    tx.batch_execute(throttle::SQL).await.map_err(pg_err)?;
    tx.batch_execute(GROUP_SETTINGS_SQL).await.map_err(pg_err)?;
    Ok(())
}

/// The advisory lock that serialises schema creation and migration, to the end of `tx`.
pub(crate) async fn lock_schema(tx: &tokio_postgres::Transaction<'_>, schema: &str) -> Result<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&MIGRATION_LOCK, &schema],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL or key=value string),
    /// creating and migrating `schema` when needed, and starts the change listener.
    pub async fn connect(url: &str, schema: &str, opts: PgOptions) -> Result<PgStore> {
        if !valid_schema_name(schema) {
            return Err(StoreError::Invalid(format!(
                "schema name {schema:?}: use [a-z_][a-z0-9_]*, at most {MAX_SCHEMA_LEN} bytes, not pg_…"
            )));
        }
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("PostgreSQL URL: {e}")))?;
        cfg.connect_timeout(opts.connect_timeout);
        cfg.application_name(&opts.application_name);
        cfg.keepalives(true);
        cfg.keepalives_idle(Duration::from_secs(60));

        let (mut client, driver) = connect_one(&cfg).await?;
        let sync_off = migrate(&mut client, schema).await;
        // Dropping the client ends the connection; its task then finishes by itself.
        drop(client);
        drop(driver);
        let sync_off = sync_off?;

        // Every connection works inside the schema (and commits durably).
        let mut options = cfg.get_options().unwrap_or_default().to_string();
        options.push_str(&format!(" -c search_path={schema}"));
        if sync_off {
            tracing::warn!(
                "the server has synchronous_commit off; Postern's connections turn it on"
            );
            options.push_str(" -c synchronous_commit=on");
        }
        cfg.options(options.trim_start().to_string());

        let mgr = Manager::from_config(
            cfg.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(opts.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.acquire_timeout))
            .create_timeout(Some(opts.connect_timeout))
            .recycle_timeout(Some(opts.connect_timeout))
            .build()
            .map_err(|e| StoreError::Invalid(format!("postgres pool: {e}")))?;

        let channel = format!("postern_changes_{schema}");
        let notices = Arc::new(Notices::new(opts.notice_capacity));
        let mut listen_cfg = cfg.clone();
        listen_cfg.application_name(format!("{} listen", opts.application_name));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let listener = tokio::spawn(listen::run(
            listen_cfg,
            channel.clone(),
            notices.clone(),
            ready_tx,
        ));
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "change listener could not start: {e}"
                )));
            }
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "change listener stopped before starting".into(),
                ));
            }
        }
        Ok(PgStore {
            limiter: Arc::new(throttle::PgLimiter::new(pool.clone())),
            pool,
            schema: schema.to_string(),
            channel,
            opts,
            notices,
            listener,
        })
    }

    /// The schema this store works in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Blobs in the same database, over this store's pool.
    pub fn blob_store(&self) -> PgBlobStore {
        PgBlobStore::new(self.pool.clone())
    }

    /// Stops the change listener and closes the pool; later calls fail as unavailable.
    pub fn close(&self) {
        self.listener.abort();
        self.pool.close();
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_err)
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let c = self.client().await?;
        let st = c.prepare_cached(sql).await.map_err(pg_err)?;
        c.query(&st, params).await.map_err(pg_err)
    }

    async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let c = self.client().await?;
        let st = c.prepare_cached(sql).await.map_err(pg_err)?;
        c.query_opt(&st, params).await.map_err(pg_err)
    }

    /// One attempt at a batch: one transaction, committed or rolled back whole.
    async fn write_once(
        &self,
        ops: &[Op],
    ) -> std::result::Result<(Vec<OpResult>, Vec<ChangeNotice>), WriteError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut batch = Batch::new(&tx);
        batch.lock_rows(ops).await?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(batch.apply(op).await?);
        }
        batch.send_notices(&self.channel).await?;
        let notices = std::mem::take(&mut batch.notices);
        drop(batch);
        // A failed COMMIT leaves the outcome unknown (the connection may have dropped
        // after the server committed): never retried, reported as unavailable.
        tx.commit().await.map_err(|e| {
            WriteError::Store(StoreError::Unavailable(format!(
                "commit failed: {}",
                describe(&e)
            )))
        })?;
        Ok((results, notices))
    }
}

/// Text with a NUL cannot be stored in PostgreSQL, so no stored value equals it.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Mailbox entries from rows of (uid, message_id, size, flags, keywords, modseq,
/// saved_ms). Keywords are JSON; the common empty list skips the decoder.
fn entry_rows(rows: &[Row]) -> Result<Vec<MailboxEntry>> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let keywords: &str = col(r, 4)?;
        out.push(MailboxEntry {
            uid: col::<i64>(r, 0)? as u32,
            message: MessageId(col(r, 1)?),
            size: u64_of(col(r, 2)?),
            flags: Flags(col::<i64>(r, 3)? as u32),
            keywords: if keywords == "[]" {
                Vec::new()
            } else {
                rows::decode_json(keywords, "keywords")?
            },
            modseq: u64_of(col(r, 5)?),
            saved_ms: col(r, 6)?,
        });
    }
    Ok(out)
}

fn credential_row(r: &Row) -> Result<Credential> {
    let kind: String = col(r, 2)?;
    let protocols: String = col(r, 4)?;
    Ok(Credential {
        id: CredentialId(col(r, 0)?),
        principal: PrincipalId(col(r, 1)?),
        kind: if kind == "password" {
            CredentialKind::Password
        } else {
            CredentialKind::App
        },
        label: col(r, 3)?,
        protocols: rows::decode_json(&protocols, "credential protocols")?,
        hash: col(r, 5)?,
        created_ms: col(r, 6)?,
    })
}

fn ledger_row(r: &Row) -> Result<RawLedgerEntry> {
    Ok(RawLedgerEntry {
        seq: u64_of(col(r, 0)?),
        record_json: col(r, 1)?,
        prev_hash: col(r, 2)?,
        hash: col(r, 3)?,
    })
}

#[async_trait]
impl Store for PgStore {
    fn shared_limiter(&self) -> Option<Arc<dyn SharedLimiter>> {
        Some(self.limiter.clone())
    }

    async fn write(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut attempt = 0u32;
        loop {
            match self.write_once(&ops).await {
                Ok((results, notices)) => {
                    let mut last: Vec<(i64, u64)> = Vec::new();
                    for n in &notices {
                        match last.iter_mut().find(|(a, _)| *a == n.account.0) {
                            Some(e) => e.1 = e.1.max(n.modseq),
                            None => last.push((n.account.0, n.modseq)),
                        }
                    }
                    self.notices.wait_for(&last, self.opts.notice_wait).await;
                    return Ok(results);
                }
                Err(WriteError::Pg(e)) if is_retryable(&e) && attempt < self.opts.write_retries => {
                    attempt += 1;
                    tracing::debug!("write batch retried ({attempt}): {}", describe(&e));
                    let jitter = rand::random::<u64>() % 10;
                    tokio::time::sleep(Duration::from_millis((5 << attempt) + jitter)).await;
                }
                Err(WriteError::Pg(e)) => return Err(pg_err(e)),
                Err(WriteError::Store(e)) => return Err(e),
            }
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<ChangeNotice> {
        self.notices.subscribe()
    }

    async fn domains(&self) -> Result<Vec<Domain>> {
        self.query(
            "SELECT id, name, created_ms FROM domains ORDER BY name",
            &[],
        )
        .await?
        .iter()
        .map(rows::domain)
        .collect()
    }

    async fn domain_by_name(&self, name: &str) -> Result<Option<Domain>> {
        if has_nul(name) {
            return Ok(None);
        }
        self.query_opt(
            "SELECT id, name, created_ms FROM domains WHERE name = $1",
            &[&name],
        )
        .await?
        .as_ref()
        .map(rows::domain)
        .transpose()
    }

    async fn principals(&self, domain: Option<DomainId>) -> Result<Vec<Principal>> {
        let rows = match domain {
            Some(d) => {
                self.query(
                    concat!(
                        "SELECT ",
                        principal_cols!(),
                        " FROM principals WHERE domain_id = $1 ORDER BY domain_id, local_part"
                    ),
                    &[&d.0],
                )
                .await?
            }
            None => {
                self.query(
                    concat!(
                        "SELECT ",
                        principal_cols!(),
                        " FROM principals ORDER BY domain_id, local_part"
                    ),
                    &[],
                )
                .await?
            }
        };
        rows.iter().map(rows::principal).collect()
    }

    async fn principal(&self, id: PrincipalId) -> Result<Option<Principal>> {
        self.query_opt(
            concat!(
                "SELECT ",
                principal_cols!(),
                " FROM principals WHERE id = $1"
            ),
            &[&id.0],
        )
        .await?
        .as_ref()
        .map(rows::principal)
        .transpose()
    }

    async fn principal_by_local(&self, domain: DomainId, local: &str) -> Result<Option<Principal>> {
        if has_nul(local) {
            return Ok(None);
        }
        self.query_opt(
            concat!(
                "SELECT ",
                principal_cols!(),
                " FROM principals WHERE domain_id = $1 AND local_part = $2"
            ),
            &[&domain.0, &local],
        )
        .await?
        .as_ref()
        .map(rows::principal)
        .transpose()
    }

    async fn usage(&self, id: PrincipalId) -> Result<Usage> {
        let row = self
            .query_opt(
                "SELECT used_bytes, message_count FROM principals WHERE id = $1",
                &[&id.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("principal {id}")))?;
        Ok(Usage {
            used_bytes: u64_of(col(&row, 0)?),
            messages: u64_of(col(&row, 1)?),
        })
    }

    async fn credentials(&self, principal: PrincipalId) -> Result<Vec<Credential>> {
        self.query(
            "SELECT id, principal_id, kind, label, protocols, hash, created_ms FROM credentials
             WHERE principal_id = $1 ORDER BY created_ms, id",
            &[&principal.0],
        )
        .await?
        .iter()
        .map(credential_row)
        .collect()
    }

    async fn aliases(&self, domain: Option<DomainId>) -> Result<Vec<Alias>> {
        let rows = match domain {
            Some(d) => {
                self.query(
                    "SELECT id, domain_id, local_part, target, created_ms FROM aliases
                     WHERE domain_id = $1 ORDER BY domain_id, local_part, target",
                    &[&d.0],
                )
                .await?
            }
            None => {
                self.query(
                    "SELECT id, domain_id, local_part, target, created_ms FROM aliases
                     ORDER BY domain_id, local_part, target",
                    &[],
                )
                .await?
            }
        };
        rows.iter().map(rows::alias).collect()
    }

    async fn aliases_for(&self, domain: DomainId, local: &str) -> Result<Vec<Alias>> {
        if has_nul(local) {
            return Ok(Vec::new());
        }
        self.query(
            "SELECT id, domain_id, local_part, target, created_ms FROM aliases
             WHERE domain_id = $1 AND local_part = $2 ORDER BY target",
            &[&domain.0, &local],
        )
        .await?
        .iter()
        .map(rows::alias)
        .collect()
    }

    async fn group_members(&self, group: PrincipalId) -> Result<Vec<String>> {
        self.query(
            "SELECT member FROM group_members WHERE group_id = $1 ORDER BY member",
            &[&group.0],
        )
        .await?
        .iter()
        .map(|r| col(r, 0))
        .collect()
    }

    async fn group_senders(&self, group: PrincipalId) -> Result<Option<String>> {
        self.query_opt(
            "SELECT senders FROM group_settings WHERE group_id = $1",
            &[&group.0],
        )
        .await?
        .map(|r| col(&r, 0))
        .transpose()
    }

    async fn mailboxes(&self, account: PrincipalId) -> Result<Vec<Mailbox>> {
        self.query(
            concat!(
                "SELECT ",
                mailbox_cols!(),
                " FROM mailboxes WHERE account_id = $1 ORDER BY name"
            ),
            &[&account.0],
        )
        .await?
        .iter()
        .map(rows::mailbox)
        .collect()
    }

    async fn mailbox_entries(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
    ) -> Result<(Mailbox, Vec<MailboxEntry>)> {
        let mut client = self.client().await?;
        // Two statements, one snapshot.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_err)?;
        let st_mb = tx
            .prepare_cached(concat!(
                "SELECT ",
                mailbox_cols!(),
                " FROM mailboxes WHERE id = $1 AND account_id = $2"
            ))
            .await
            .map_err(pg_err)?;
        let st_entries = tx
            .prepare_cached(
                "SELECT uid, message_id, size, flags, keywords, modseq, saved_ms
                 FROM mailbox_messages WHERE mailbox_id = $1 ORDER BY uid",
            )
            .await
            .map_err(pg_err)?;
        let mb = tx
            .query_opt(&st_mb, &[&mailbox.0, &account.0])
            .await
            .map_err(pg_err)?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
        let mb = rows::mailbox(&mb)?;
        let entries = tx.query(&st_entries, &[&mailbox.0]).await.map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok((mb, entry_rows(&entries)?))
    }

    async fn mailbox_delta(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        since: u64,
    ) -> Result<postern_store::MailboxDelta> {
        let mut client = self.client().await?;
        // Three statements, one snapshot.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_err)?;
        let st_mb = tx
            .prepare_cached(concat!(
                "SELECT ",
                mailbox_cols!(),
                " FROM mailboxes WHERE id = $1 AND account_id = $2"
            ))
            .await
            .map_err(pg_err)?;
        let mb = tx
            .query_opt(&st_mb, &[&mailbox.0, &account.0])
            .await
            .map_err(pg_err)?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
        let mb = rows::mailbox(&mb)?;
        if mb.highest_modseq <= since {
            tx.commit().await.map_err(pg_err)?;
            return Ok(postern_store::MailboxDelta {
                mailbox: mb,
                changed: Vec::new(),
                expunged: Vec::new(),
            });
        }
        let since = rows::i64_of(since);
        let st_changed = tx
            .prepare_cached(
                "SELECT uid, message_id, size, flags, keywords, modseq, saved_ms
                 FROM mailbox_messages WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
            )
            .await
            .map_err(pg_err)?;
        let st_gone = tx
            .prepare_cached(
                "SELECT DISTINCT uid FROM journal WHERE account_id = $1 AND modseq > $2
                 AND kind = 'message_expunged' AND mailbox_id = $3 AND uid IS NOT NULL
                 ORDER BY uid",
            )
            .await
            .map_err(pg_err)?;
        let changed = tx
            .query(&st_changed, &[&mailbox.0, &since])
            .await
            .map_err(pg_err)?;
        let gone = tx
            .query(&st_gone, &[&account.0, &since, &mailbox.0])
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        let mut expunged = Vec::with_capacity(gone.len());
        for r in &gone {
            expunged.push(col::<i64>(r, 0)? as u32);
        }
        Ok(postern_store::MailboxDelta {
            mailbox: mb,
            changed: entry_rows(&changed)?,
            expunged,
        })
    }

    async fn message(&self, account: PrincipalId, id: MessageId) -> Result<Option<MessageRecord>> {
        let Some(r) = self
            .query_opt(
                "SELECT blob_hash, size, received_ms, thread_id, meta FROM messages
                 WHERE id = $1 AND account_id = $2",
                &[&id.0, &account.0],
            )
            .await?
        else {
            return Ok(None);
        };
        let meta: String = col(&r, 4)?;
        Ok(Some(MessageRecord {
            id,
            account,
            blob: BlobRef {
                hash: col(&r, 0)?,
                size: u64_of(col(&r, 1)?),
            },
            received_ms: col(&r, 2)?,
            thread_id: col(&r, 3)?,
            meta: rows::decode_json(&meta, "message metadata")?,
        }))
    }

    async fn messages(
        &self,
        account: PrincipalId,
        ids: Vec<MessageId>,
    ) -> Result<Vec<MessageRecord>> {
        let raw: Vec<i64> = ids.iter().map(|i| i.0).collect();
        let rows = self
            .query(
                "SELECT id, blob_hash, size, received_ms, thread_id, meta FROM messages
                 WHERE account_id = $1 AND id = ANY($2)",
                &[&account.0, &raw],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let meta: String = col(&r, 5)?;
            out.push(MessageRecord {
                id: MessageId(col(&r, 0)?),
                account,
                blob: BlobRef {
                    hash: col(&r, 1)?,
                    size: u64_of(col(&r, 2)?),
                },
                received_ms: col(&r, 3)?,
                thread_id: col(&r, 4)?,
                meta: rows::decode_json(&meta, "message metadata")?,
            });
        }
        Ok(out)
    }

    async fn mailbox_acl(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
    ) -> Result<Vec<(PrincipalId, String)>> {
        let rows = self
            .query(
                "SELECT grantee_id, rights FROM mailbox_acl
                 WHERE mailbox_id = $1 AND account_id = $2 ORDER BY grantee_id",
                &[&mailbox.0, &account.0],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((PrincipalId(col(r, 0)?), col(r, 1)?)))
            .collect()
    }

    async fn shared_with(&self, grantee: PrincipalId) -> Result<Vec<(Mailbox, String)>> {
        let rows = self
            .query(
                concat!(
                    "SELECT ",
                    mailbox_cols!("m."),
                    ", a.rights FROM mailbox_acl a JOIN mailboxes m ON m.id = a.mailbox_id
                     WHERE a.grantee_id = $1 AND m.account_id <> $1 ORDER BY m.account_id, m.name"
                ),
                &[&grantee.0],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((rows::mailbox(r)?, col(r, 9)?)))
            .collect()
    }

    async fn thread_of(
        &self,
        account: PrincipalId,
        message_ids: &[String],
    ) -> Result<Option<String>> {
        if message_ids.is_empty() {
            return Ok(None);
        }
        // Stored Message-IDs have NUL as U+FFFD (see rows::nul_safe); so do the keys.
        let ids: Vec<String> = message_ids
            .iter()
            .map(|s| rows::nul_safe(s).into_owned())
            .collect();
        // The first id (in the order given) that an account's message carries; among
        // several such messages, the lowest id, as SQLite's index order gives.
        self.query_opt(
            "SELECT m.thread_id FROM unnest($2::text[]) WITH ORDINALITY AS u(hdr, ord)
             JOIN messages m ON m.account_id = $1 AND m.message_id_hdr = u.hdr
             ORDER BY u.ord, m.id LIMIT 1",
            &[&account.0, &ids],
        )
        .await?
        .map(|r| col(&r, 0))
        .transpose()
    }

    async fn highest_modseq(&self, account: PrincipalId) -> Result<u64> {
        let row = self
            .query_opt(
                "SELECT highest_modseq FROM principals WHERE id = $1",
                &[&account.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("principal {account}")))?;
        Ok(u64_of(col(&row, 0)?))
    }

    async fn changes_since(
        &self,
        account: PrincipalId,
        since: u64,
        limit: usize,
    ) -> Result<Vec<Change>> {
        let rows = self
            .query(
                "SELECT modseq, kind, mailbox_id, message_id, uid, at_ms FROM journal
                 WHERE account_id = $1 AND modseq > $2 ORDER BY modseq LIMIT $3",
                &[&account.0, &rows::i64_of(since), &limit_of(limit)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let kind: String = col(r, 1)?;
            out.push(Change {
                account,
                modseq: u64_of(col(r, 0)?),
                kind: ChangeKind::parse(&kind)
                    .ok_or_else(|| StoreError::Invalid(format!("journal kind {kind:?}")))?,
                mailbox: col::<Option<i64>>(r, 2)?.map(MailboxId),
                message: col::<Option<i64>>(r, 3)?.map(MessageId),
                uid: col::<Option<i64>>(r, 4)?.map(|u| u as u32),
                at_ms: col(r, 5)?,
            });
        }
        Ok(out)
    }

    async fn ledger(&self, q: &LedgerQuery) -> Result<Vec<LedgerEntry>> {
        // The statement is assembled from fixed fragments (so each filter can use its
        // index); every value is a bound parameter.
        let from = rows::i64_of(q.from_seq);
        let limit = (q.limit > 0).then(|| limit_of(q.limit));
        let account = q.account.as_deref().map(|a| rows::nul_safe(a).into_owned());
        let mut sql =
            String::from("SELECT seq, record, prev_hash, hash FROM ledger WHERE seq >= $1");
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from];
        if let Some(account) = &account {
            params.push(account);
            let n = params.len();
            sql.push_str(&format!(" AND (actor_account = ${n} OR target = ${n})"));
        }
        if let Some(since) = &q.since_ms {
            params.push(since);
            let n = params.len();
            sql.push_str(&format!(" AND time_ms >= ${n}"));
        }
        sql.push_str(" ORDER BY seq");
        if let Some(limit) = &limit {
            params.push(limit);
            sql.push_str(&format!(" LIMIT ${}", params.len()));
        }
        let rows = self.query(&sql, &params).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let raw = ledger_row(r)?;
            out.push(LedgerEntry {
                seq: raw.seq,
                record: rows::decode_json(&raw.record_json, "ledger record")?,
                prev_hash: raw.prev_hash,
                hash: raw.hash,
            });
        }
        Ok(out)
    }

    async fn ledger_raw(&self, from_seq: u64, limit: usize) -> Result<Vec<RawLedgerEntry>> {
        self.query(
            "SELECT seq, record, prev_hash, hash FROM ledger WHERE seq >= $1 ORDER BY seq LIMIT $2",
            &[&rows::i64_of(from_seq), &limit_of(limit)],
        )
        .await?
        .iter()
        .map(ledger_row)
        .collect()
    }

    async fn queued(&self, id: QueueId) -> Result<Option<(QueuedMessage, Vec<QueuedRecipient>)>> {
        let mut client = self.client().await?;
        queue::queued(&mut client, id).await
    }

    async fn queue(&self, limit: usize) -> Result<Vec<(QueuedMessage, Vec<QueuedRecipient>)>> {
        let mut client = self.client().await?;
        queue::queue(&mut client, limit).await
    }

    async fn queue_stats(&self) -> Result<QueueStats> {
        let client = self.client().await?;
        queue::stats(&client).await
    }

    async fn dkim_keys(&self, domain: DomainId) -> Result<Vec<DkimKeyRecord>> {
        let client = self.client().await?;
        queue::dkim_keys(&client, domain).await
    }

    async fn dav_collections(&self, account: PrincipalId) -> Result<Vec<DavCollection>> {
        self.query(&dav::collections_sql(), &[&account.0])
            .await?
            .iter()
            .map(dav::collection_row)
            .collect()
    }

    async fn dav_resources(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
        filter: DavFilter,
    ) -> Result<Vec<DavResource>> {
        let rows = self
            .query(
                &dav::resources_sql(filter.with_data),
                &[
                    &collection.0,
                    &account.0,
                    &filter.component,
                    &filter.start_ms,
                    &filter.end_ms,
                ],
            )
            .await?;
        dav::resources(&rows, filter.with_data)
    }

    async fn dav_resources_named(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
        names: Vec<String>,
    ) -> Result<Vec<DavResource>> {
        let rows = self
            .query(
                &dav::resources_named_sql(),
                &[&collection.0, &account.0, &names],
            )
            .await?;
        dav::resources(&rows, true)
    }

    async fn dav_changes(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
        since: u64,
        limit: usize,
    ) -> Result<Vec<DavChange>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                dav::CHANGES_SQL,
                &[&collection.0, &account.0, &rows::i64_of(since), &limit],
            )
            .await?;
        dav::changes(&rows)
    }

    async fn dav_shares(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
    ) -> Result<Vec<(PrincipalId, String)>> {
        let rows = self
            .query(dav::SHARES_SQL, &[&collection.0, &account.0])
            .await?;
        rows.iter()
            .map(|r| Ok((PrincipalId(col(r, 0)?), col(r, 1)?)))
            .collect()
    }

    async fn dav_shared_with(&self, grantee: PrincipalId) -> Result<Vec<(DavCollection, String)>> {
        let rows = self.query(&dav::shared_with_sql(), &[&grantee.0]).await?;
        rows.iter()
            .map(|r| Ok((dav::collection_row(r)?, col(r, 12)?)))
            .collect()
    }

    async fn sts_policy(&self, domain: &str) -> Result<Option<StsPolicyRecord>> {
        self.query_opt(outbound_tls::STS_POLICY_SQL, &[&domain])
            .await?
            .as_ref()
            .map(outbound_tls::sts_row)
            .transpose()
    }

    async fn tlsrpt_counts(&self, domain: &str, day: &str) -> Result<Vec<TlsRptCount>> {
        self.query(outbound_tls::TLSRPT_COUNTS_SQL, &[&domain, &day])
            .await?
            .iter()
            .map(outbound_tls::count_row)
            .collect()
    }

    async fn referenced_blobs(&self) -> Result<Vec<BlobRef>> {
        self.query(
            "SELECT blob_hash, size FROM messages
             UNION SELECT blob_hash, size FROM queue_messages ORDER BY blob_hash",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(BlobRef {
                hash: col(r, 0)?,
                size: u64_of(col(r, 1)?),
            })
        })
        .collect()
    }

    async fn backend_check(&self) -> Result<Vec<String>> {
        // PostgreSQL enforces the foreign keys and its own page checksums; what is left
        // are facts that live in two places. Each check is an index lookup or one pass.
        let mut out = Vec::new();
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_err)?;
        match tx
            .query_opt("SELECT version FROM schema_version WHERE id = 1", &[])
            .await
            .map_err(pg_err)?
        {
            Some(r) if col::<i32>(&r, 0)? == SCHEMA_VERSION => {}
            Some(r) => out.push(format!(
                "postgres schema version is {}, this build knows {SCHEMA_VERSION}",
                col::<i32>(&r, 0)?
            )),
            None => out.push("postgres schema_version row is missing".into()),
        }
        // The head must be the chain's last entry: verify_ledger cannot see entries
        // removed from the end, the head can.
        let head = tx
            .query_opt(
                "SELECT h.seq, h.hash, l.seq, l.hash FROM ledger_head h
                 LEFT JOIN LATERAL (SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1) l ON true
                 WHERE h.id = 1",
                &[],
            )
            .await
            .map_err(pg_err)?;
        match head {
            None => out.push("postgres ledger_head row is missing".into()),
            Some(r) => {
                let head_seq: i64 = col(&r, 0)?;
                let head_hash: String = col(&r, 1)?;
                let last_seq: Option<i64> = col(&r, 2)?;
                let last_hash: Option<String> = col(&r, 3)?;
                if last_seq.unwrap_or(0) != head_seq
                    || last_hash.as_deref().unwrap_or(ledger::GENESIS) != head_hash
                {
                    out.push(format!(
                        "ledger ends at entry {} but its head records entry {head_seq} \
                         (entries were removed or added outside Postern)",
                        last_seq.unwrap_or(0)
                    ));
                }
            }
        }
        if self.opts.blobs_in_database {
            for r in tx
                .query(
                    "SELECT DISTINCT m.blob_hash FROM messages m
                     WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = m.blob_hash)
                     ORDER BY 1 LIMIT 100",
                    &[],
                )
                .await
                .map_err(pg_err)?
            {
                out.push(format!(
                    "message blob {} has no row in blobs",
                    col::<String>(&r, 0)?
                ));
            }
            for r in tx
                .query(
                    "SELECT b.hash FROM blobs b
                     WHERE NOT EXISTS (SELECT 1 FROM blob_chunks c WHERE c.hash = b.hash AND c.idx = 0)
                     ORDER BY 1 LIMIT 100",
                    &[],
                )
                .await
                .map_err(pg_err)?
            {
                out.push(format!("blob {} has no chunks", col::<String>(&r, 0)?));
            }
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(out)
    }
}
