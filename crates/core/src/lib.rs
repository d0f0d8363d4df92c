//! # postern-core — the domain and all of its policy
//!
//! Principals, addresses, mailboxes, messages, credentials, quotas, the change journal's
//! meaning and the access ledger. Protocol sessions translate wire commands into calls
//! here; they hold no policy and never touch a backend. Every read of content and every
//! change to credentials, aliases and permissions is written to the ledger *here*, so no
//! protocol can forget to (DESIGN invariant 10).
//!
//! **Standards:** RFC 5321/5322 addresses ([`address`]); RFC 9051 mailbox semantics
//! (UIDVALIDITY, special-use per RFC 6154).
//!
//! **Security:** inputs are addresses, names and secrets from users and admins, and
//! message bytes from the network. Addresses and names are parsed into normalised values
//! at the edge ([`address`]); message bytes are parsed once with caps ([`message`]).
//! Authentication lives in [`auth`], the only module that can make an `Authenticated`.
//!
//! **Invariants:** a change and its ledger entry commit in one batch; an acknowledged
//! message is durable (blob fsynced before the record commits); unknown users and wrong
//! passwords are indistinguishable.
#![forbid(unsafe_code)]

pub mod access;
pub mod address;
pub mod admin;
pub mod auth;
pub mod dav;
pub mod delivery;
pub mod directory;
pub mod error;
pub mod limiter;
pub mod mail;
pub mod mailbox;
pub mod message;
pub mod outbound;
pub mod srs;

pub use auth::{AdminSession, Argon2Settings, Authenticated};
pub use error::{CoreError, ErrorClass, Result};
pub use postern_store as store;

use postern_store::{Actor, BlobStore, LedgerRecord, Op, SessionInfo, Store};
use std::sync::Arc;

/// Who is acting and from where: the ledger's `actor` and `session`.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub actor: Actor,
    pub session: SessionInfo,
}

#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// Separator of plus addressing (`user+tag@`).
    pub plus_separator: char,
    pub argon2: Argon2Settings,
    pub limiter: limiter::LimiterSettings,
    pub mime: message::MimeLimits,
    /// How long a verified password is remembered (`[auth] auth_cache_ttl_secs`);
    /// zero turns the cache off.
    pub auth_cache_ttl: std::time::Duration,
    /// How long a queued message may wait before it bounces (`[outbound]
    /// max_queue_lifetime_secs`); fixed on the message when it is queued.
    pub queue_lifetime: std::time::Duration,
}

impl Default for CoreSettings {
    fn default() -> Self {
        CoreSettings {
            plus_separator: '+',
            argon2: Argon2Settings::default(),
            limiter: Default::default(),
            mime: Default::default(),
            auth_cache_ttl: std::time::Duration::from_secs(300),
            queue_lifetime: std::time::Duration::from_millis(outbound::DEFAULT_LIFETIME_MS as u64),
        }
    }
}

/// Most verified passwords remembered at once ([`auth::AuthCache`]).
const AUTH_CACHE_ENTRIES: usize = 10_000;

pub struct Core {
    /// Private to `core`: a protocol reaches stored data only through `Core`'s methods,
    /// which decide access and write the ledger (DESIGN invariants 2 and 10).
    pub(crate) store: Arc<dyn Store>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub settings: CoreSettings,
    limiter: limiter::RateLimiter,
    /// A hash of a random password with the configured cost, verified against when an
    /// account has no password, so that path costs what a real check costs.
    dummy_hash: String,
    /// SHA-256 of the admin token ([`Core::set_admin_token`]).
    admin_token: std::sync::RwLock<Option<[u8; 32]>>,
    /// Argon2id verifications at once: each takes ~19 MiB and a core, so unbounded
    /// parallel logins would exhaust memory before the limiter sees them as failures.
    hash_slots: tokio::sync::Semaphore,
    /// Passwords verified recently ([`CoreSettings::auth_cache_ttl`]).
    auth_cache: auth::AuthCache,
    /// Last snapshots of recently opened mailboxes ([`Core::open_mailbox`]).
    views: mailbox::ViewCache,
    /// Woken when this node puts something in the outbound queue ([`Core::queue_wakeup`]).
    queue_notify: tokio::sync::Notify,
    /// Signs mail the server sends for accounts (iMIP), [`Core::set_mail_signer`].
    mail_signer: std::sync::OnceLock<Arc<dyn dav::imip::MailSigner>>,
    /// The installation's SRS key ([`Core::set_srs_key`]); without one, aliases that
    /// forward to other domains answer 451.
    srs: std::sync::OnceLock<srs::Srs>,
}

impl Core {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        settings: CoreSettings,
    ) -> Result<Core> {
        let dummy_hash = auth::hash_password(settings.argon2, &auth::generate_secret(24))?;
        let shared_limiter = store.shared_limiter();
        Ok(Core {
            store,
            blobs,
            auth_cache: auth::AuthCache::new(settings.auth_cache_ttl, AUTH_CACHE_ENTRIES),
            views: Default::default(),
            limiter: limiter::RateLimiter::new(settings.limiter.clone())
                .with_shared(shared_limiter),
            settings,
            dummy_hash,
            admin_token: std::sync::RwLock::new(None),
            queue_notify: tokio::sync::Notify::new(),
            mail_signer: std::sync::OnceLock::new(),
            srs: std::sync::OnceLock::new(),
            hash_slots: tokio::sync::Semaphore::new(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
                    .max(1),
            ),
        })
    }

    /// Counters shared by the nodes on this store (several nodes on PostgreSQL), for the
    /// protocols' own throttles (SMTP RCPT probing); `None` on the embedded store.
    pub fn shared_counters(&self) -> Option<Arc<dyn postern_store::SharedLimiter>> {
        self.store.shared_limiter()
    }

    /// Builds a ledger record for `ctx`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ledger_record(
        ctx: &Ctx,
        action: &str,
        target: Option<&str>,
        objects: Vec<String>,
        result: &str,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> LedgerRecord {
        LedgerRecord {
            time_ms: postern_store::now_ms(),
            actor: ctx.actor.clone(),
            session: ctx.session.clone(),
            action: action.into(),
            target: target.map(str::to_string),
            objects,
            result: result.into(),
            before,
            after,
        }
    }

    /// Appends one ledger entry on its own (for reads, searches and refusals; changes
    /// put their entry in the same batch as the change).
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        ctx: &Ctx,
        action: &str,
        target: Option<&str>,
        objects: Vec<String>,
        result: &str,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Result<()> {
        let rec = Self::ledger_record(ctx, action, target, objects, result, before, after);
        self.store.write(vec![Op::AppendLedger(rec)]).await?;
        metrics::counter!("postern_ledger_entries_total").increment(1);
        Ok(())
    }
}
