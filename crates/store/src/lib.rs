//! # postern-store — what Postern keeps, behind traits
//!
//! The store traits ([`Store`], [`BlobStore`]) and the embedded backend
//! ([`sqlite::SqliteStore`] + [`blob::FsBlobStore`]). `core` sees only the traits and
//! the plain records of [`model`]; nothing here decides who may do what.
//!
//! **Standards:** none on the wire. Mailbox state follows the needs of RFC 9051
//! (UIDVALIDITY, UIDNEXT, flags) and RFC 7162 (per-account modification sequences).
//!
//! **Security:** record fields hold untrusted text (names, headers) and are only ever
//! bound as SQL parameters, never spliced into SQL. Blob names are checked hex digests,
//! so no stored value becomes a file path.
//!
//! **Invariants:**
//! - A batch of [`ops::Op`] is atomic; when `write` returns Ok the batch is durable
//!   (committed with fsync) — the basis of every protocol's acknowledgement.
//! - Each account's change journal numbers changes 1, 2, 3, … in commit order, with
//!   no gaps; `highest_modseq` is the last number.
//! - The ledger is append-only and hash-chained ([`ledger`]).
//! - A blob is durable before any record refers to it.
#![forbid(unsafe_code)]

pub mod blob;
pub mod conformance;
pub mod error;
pub mod ledger;
pub mod model;
pub mod ops;
pub mod outbound_tls;
pub mod queue;
pub mod sqlite;
pub mod verify;

pub use blob::{BlobStore, FsBlobStore};
pub use error::{Result, StoreError};
pub use model::*;
pub use ops::{BlobBytes, FlagAction, Op, OpResult};
pub use outbound_tls::*;
pub use queue::*;

use async_trait::async_trait;

/// A random positive, non-zero 63-bit id.
pub(crate) fn random_id() -> i64 {
    loop {
        let v = (rand::random::<u64>() >> 1) as i64;
        if v != 0 {
            return v;
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A ledger entry exactly as stored, for chain verification.
#[derive(Debug, Clone)]
pub struct RawLedgerEntry {
    pub seq: u64,
    pub record_json: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What [`Store::mailbox_delta`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxDelta {
    pub mailbox: Mailbox,
    /// Entries added or whose flags changed after `since`, in UID order.
    pub changed: Vec<MailboxEntry>,
    /// UIDs expunged after `since`, ascending (some may have been added after it too).
    pub expunged: Vec<u32>,
}

/// Login-throttling counters kept where every node sees them (several nodes on one
/// database). Keys are opaque strings (`account:…`, `ip:…`, `password:<keyed hash>`).
/// Errors are strings: the limiter falls back to its own memory when these fail.
#[async_trait]
pub trait SharedLimiter: Send + Sync {
    /// A 32-byte secret shared by the nodes, for keyed hashes of passwords (the same
    /// password must give the same key on every node). Made once, kept.
    async fn secret(&self) -> std::result::Result<[u8; 32], String>;
    /// The latest `blocked_until_ms` among `keys`, when it is after `now_ms`.
    async fn blocked_until(
        &self,
        keys: &[String],
        now_ms: i64,
    ) -> std::result::Result<Option<i64>, String>;
    /// Counts one failure on each key (restarting a key's count when its last failure
    /// is `window_ms` old); returns each key's failure count, in order.
    async fn count_failure(
        &self,
        keys: &[String],
        now_ms: i64,
        window_ms: i64,
    ) -> std::result::Result<Vec<u32>, String>;
    /// Sets `blocked_until_ms` of a key (never earlier than it is).
    async fn block(&self, key: &str, until_ms: i64) -> std::result::Result<(), String>;
    /// Forgets a key.
    async fn clear(&self, key: &str) -> std::result::Result<(), String>;
}

/// Metadata, journal and ledger. Every read is one consistent snapshot.
#[async_trait]
pub trait Store: Send + Sync {
    /// Throttling counters shared by every node on this store; `None` for a store that
    /// only one node uses (the embedded one): the limiter's memory is then the truth.
    fn shared_limiter(&self) -> Option<std::sync::Arc<dyn SharedLimiter>> {
        None
    }

    /// Applies the batch atomically and durably; one result per op, in order.
    async fn write(&self, ops: Vec<Op>) -> Result<Vec<OpResult>>;
    /// Notices sent after each commit that changed an account's journal.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ChangeNotice>;

    async fn domains(&self) -> Result<Vec<Domain>>;
    async fn domain_by_name(&self, name: &str) -> Result<Option<Domain>>;
    async fn principals(&self, domain: Option<DomainId>) -> Result<Vec<Principal>>;
    async fn principal(&self, id: PrincipalId) -> Result<Option<Principal>>;
    async fn principal_by_local(&self, domain: DomainId, local: &str) -> Result<Option<Principal>>;
    async fn usage(&self, id: PrincipalId) -> Result<Usage>;
    async fn credentials(&self, principal: PrincipalId) -> Result<Vec<Credential>>;
    async fn aliases(&self, domain: Option<DomainId>) -> Result<Vec<Alias>>;
    /// Aliases with this exact local part (`*` for the catch-all).
    async fn aliases_for(&self, domain: DomainId, local: &str) -> Result<Vec<Alias>>;
    async fn group_members(&self, group: PrincipalId) -> Result<Vec<String>>;
    /// Who may send to a group, as set by `Op::SetGroupSenders` (`None`: anyone).
    async fn group_senders(&self, group: PrincipalId) -> Result<Option<String>>;

    async fn mailboxes(&self, account: PrincipalId) -> Result<Vec<Mailbox>>;
    /// The ACL of one of the account's mailboxes: (grantee, rights), by grantee id.
    async fn mailbox_acl(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
    ) -> Result<Vec<(PrincipalId, String)>>;
    /// Other accounts' mailboxes on which `grantee` has an ACL entry, with its rights.
    async fn shared_with(&self, grantee: PrincipalId) -> Result<Vec<(Mailbox, String)>>;
    /// A mailbox and its entries in UID order, from one snapshot.
    async fn mailbox_entries(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
    ) -> Result<(Mailbox, Vec<MailboxEntry>)>;
    /// What changed in one mailbox after `since` (a modseq of the account), from one
    /// snapshot: the mailbox, its entries whose modseq is above `since` (added or flags
    /// changed) in UID order, and the UIDs expunged from it after `since`, ascending.
    /// With `since` at the mailbox's `highest_modseq` nothing has changed. Complete only
    /// because the journal is never pruned: a future pruning must give callers a floor
    /// below which they read the mailbox whole.
    async fn mailbox_delta(
        &self,
        account: PrincipalId,
        mailbox: MailboxId,
        since: u64,
    ) -> Result<MailboxDelta>;
    async fn message(&self, account: PrincipalId, id: MessageId) -> Result<Option<MessageRecord>>;
    /// The account's messages with these ids, from one snapshot, in no particular order;
    /// ids that are not the account's are left out.
    async fn messages(
        &self,
        account: PrincipalId,
        ids: Vec<MessageId>,
    ) -> Result<Vec<MessageRecord>>;
    /// The thread of the first message of the account whose Message-ID is one of these.
    async fn thread_of(
        &self,
        account: PrincipalId,
        message_ids: &[String],
    ) -> Result<Option<String>>;

    async fn highest_modseq(&self, account: PrincipalId) -> Result<u64>;
    /// Journal entries with modseq > `since`, oldest first, at most `limit`.
    async fn changes_since(
        &self,
        account: PrincipalId,
        since: u64,
        limit: usize,
    ) -> Result<Vec<Change>>;

    async fn ledger(&self, query: &LedgerQuery) -> Result<Vec<LedgerEntry>>;
    async fn ledger_raw(&self, from_seq: u64, limit: usize) -> Result<Vec<RawLedgerEntry>>;

    /// A queued message with its recipients in envelope order.
    async fn queued(&self, id: QueueId) -> Result<Option<(QueuedMessage, Vec<QueuedRecipient>)>>;
    /// Queued messages, oldest first, at most `limit`, each with its recipients.
    async fn queue(&self, limit: usize) -> Result<Vec<(QueuedMessage, Vec<QueuedRecipient>)>>;
    async fn queue_stats(&self) -> Result<QueueStats>;
    /// The domain's DKIM keys, oldest first.
    async fn dkim_keys(&self, domain: DomainId) -> Result<Vec<DkimKeyRecord>>;

    /// The account's DAV collections, by name.
    async fn dav_collections(&self, account: PrincipalId) -> Result<Vec<DavCollection>>;
    /// The live resources of one of the account's collections that pass `filter`, by
    /// name (an unknown collection has none).
    async fn dav_resources(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
        filter: DavFilter,
    ) -> Result<Vec<DavResource>>;
    /// The live resources of the collection with these names, with their data, by name;
    /// names not there are left out.
    async fn dav_resources_named(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
        names: Vec<String>,
    ) -> Result<Vec<DavResource>>;
    /// Resources of the collection changed or removed after `since` (a journal number),
    /// oldest change first, at most `limit`.
    async fn dav_changes(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
        since: u64,
        limit: usize,
    ) -> Result<Vec<DavChange>>;
    /// The grants on one of the account's DAV collections: (grantee, rights).
    async fn dav_shares(
        &self,
        account: PrincipalId,
        collection: DavCollectionId,
    ) -> Result<Vec<(PrincipalId, String)>>;
    /// Other accounts' DAV collections granted to `grantee`, with the rights, by owner
    /// then name.
    async fn dav_shared_with(&self, grantee: PrincipalId) -> Result<Vec<(DavCollection, String)>>;

    /// The cached MTA-STS policy of a domain (expired or not).
    async fn sts_policy(&self, domain: &str) -> Result<Option<StsPolicyRecord>>;
    /// The TLS outcome counters of one policy domain and day.
    async fn tlsrpt_counts(&self, domain: &str, day: &str) -> Result<Vec<TlsRptCount>>;

    /// Every (blob, size) that a message record or a queued message refers to.
    async fn referenced_blobs(&self) -> Result<Vec<BlobRef>>;
    /// Problems the backend can see in its own files (e.g. SQLite's integrity_check).
    async fn backend_check(&self) -> Result<Vec<String>>;
}
