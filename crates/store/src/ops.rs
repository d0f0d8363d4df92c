//! Write operations as plain data. A batch of them is applied atomically: all or none.
//! Being data rather than closures, a batch means the same to every backend (the
//! embedded writer thread applies it synchronously; PostgreSQL applies it in one
//! transaction), and several batches can share one commit (group commit).

use crate::model::*;
use crate::outbound_tls::*;
use crate::queue::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagAction {
    /// Replace the flags and keywords (IMAP `FLAGS`).
    Set,
    /// Add them (`+FLAGS`).
    Add,
    /// Remove them (`-FLAGS`).
    Remove,
}

#[derive(Debug, Clone)]
pub enum Op {
    CreateDomain(Domain),
    /// Refused while the domain still has principals or aliases.
    RemoveDomain(DomainId),
    /// Refused when the local part is taken by a principal or an alias of the domain.
    CreatePrincipal(Principal),
    /// Removes the principal with its credentials, mailboxes, messages and journal.
    RemovePrincipal(PrincipalId),
    SetQuota {
        principal: PrincipalId,
        quota_bytes: Option<u64>,
    },
    /// Adds an app password. Refused for a `Password` credential: there is one main
    /// password, replaced with `SetPassword`.
    AddCredential(Credential),
    RemoveCredential(CredentialId),
    /// Replace the principal's main password (creates it when there is none).
    SetPassword {
        principal: PrincipalId,
        credential: Credential,
    },
    /// Refused when the local part is a principal's, or the same alias exists.
    AddAlias(Alias),
    RemoveAlias(AliasId),
    AddGroupMember {
        group: PrincipalId,
        member: String,
    },
    RemoveGroupMember {
        group: PrincipalId,
        member: String,
    },
    /// Who may send to a group (`authenticated`, `members`); `None` = anyone (the row
    /// goes). Refused for a principal that is not a group.
    SetGroupSenders {
        group: PrincipalId,
        senders: Option<String>,
    },
    /// `uid_validity`, `uid_next` and `highest_modseq` are set by the store.
    CreateMailbox(Mailbox),
    RenameMailbox {
        account: PrincipalId,
        mailbox: MailboxId,
        name: String,
    },
    /// Subscribes or unsubscribes (IMAP SUBSCRIBE/LSUB). Not a journal change.
    SetSubscribed {
        account: PrincipalId,
        mailbox: MailboxId,
        subscribed: bool,
    },
    /// Sets another principal's rights on a mailbox (RFC 4314 letters, as given); empty
    /// rights remove the entry. Not a journal change.
    SetMailboxAcl {
        account: PrincipalId,
        mailbox: MailboxId,
        grantee: PrincipalId,
        rights: String,
    },
    /// Removes the mailbox and expunges what it holds.
    DeleteMailbox {
        account: PrincipalId,
        mailbox: MailboxId,
    },
    /// Adds a message to a mailbox. When `message.id` already exists for the account
    /// (a copy), only a new mailbox entry is made. Refused over quota.
    AppendMessage {
        message: MessageRecord,
        mailbox: MailboxId,
        flags: Flags,
        keywords: Vec<String>,
    },
    /// Change flags of the given UIDs (missing UIDs are ignored, as IMAP requires).
    StoreFlags {
        account: PrincipalId,
        mailbox: MailboxId,
        uids: Vec<u32>,
        action: FlagAction,
        flags: Flags,
        keywords: Vec<String>,
        /// CONDSTORE: skip UIDs whose modseq is above this (RFC 7162 §3.1.3).
        unchanged_since: Option<u64>,
        /// What the caller may change (a delegate's ACL rights, RFC 4314 §4); everything
        /// else keeps its value as of the commit, whatever `action` says. `None`: all.
        scope: Option<FlagScope>,
    },
    /// Remove the given UIDs from the mailbox.
    Expunge {
        account: PrincipalId,
        mailbox: MailboxId,
        uids: Vec<u32>,
        /// Only those of `uids` that carry `\Deleted` when the batch commits (IMAP
        /// EXPUNGE: the caller's view may be older than another session's undelete);
        /// false for MOVE, which removes what it copied.
        only_deleted: bool,
    },
    /// Append to the access ledger, chained to the entry before it.
    AppendLedger(LedgerRecord),
    /// Keeps a blob's bytes in the metadata store under `hash` (their SHA-256, checked):
    /// made by [`crate::BlobStore::stage`] so that a small blob commits with the batch
    /// that refers to it — one durability point for both. Storing the same bytes again
    /// keeps one copy. Result: [`OpResult::Done`].
    PutBlob {
        hash: String,
        data: BlobBytes,
    },
    /// Removes a blob kept by `PutBlob`; a missing one is not an error.
    DeleteBlob(String),
    /// Puts a message in the outbound queue. Its blob must already be durable (or be
    /// put by a `PutBlob` of the same batch).
    Enqueue {
        message: QueuedMessage,
        recipients: Vec<QueuedRecipient>,
    },
    /// Leases to `owner`, until `lease_until_ms`, every due and unleased recipient of at
    /// most `limit` messages (oldest due first). A lease past its time is free again.
    /// Result: [`OpResult::Claimed`].
    ClaimQueued {
        owner: String,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    },
    /// Records attempt outcomes; each releases its recipient's lease. With `owner`, only
    /// recipients still queued and leased to `owner` change (a late attempt whose lease
    /// ran out, and that another claim took over, changes nothing). Unknown recipients
    /// are ignored (the message may have been deleted meanwhile). A message left with no
    /// queued recipient is removed in the same batch. Result: [`OpResult::QueueUpdated`].
    UpdateQueued {
        owner: Option<String>,
        updates: Vec<QueueUpdate>,
    },
    /// Makes the message's queued recipients that no node holds due at `now_ms`.
    RetryQueued {
        message: QueueId,
        now_ms: i64,
    },
    /// Removes a queued message with its recipients (done, or deleted by an operator).
    RemoveQueued(QueueId),
    /// Refused when the domain already has a key with this selector.
    AddDkimKey(DkimKeyRecord),
    RemoveDkimKey {
        domain: DomainId,
        selector: String,
    },
    /// Creates a DAV collection (`modseq` is set by the store). Refused when the account
    /// already has a collection of that name. Journal: `dav_collection_created`.
    CreateDavCollection(DavCollection),
    /// Changes a collection's properties. Journal: `dav_collection_changed`.
    UpdateDavCollection {
        account: PrincipalId,
        collection: DavCollectionId,
        props: DavCollectionProps,
    },
    /// Removes a collection and every resource in it. Journal: `dav_collection_deleted`.
    DeleteDavCollection {
        account: PrincipalId,
        collection: DavCollectionId,
    },
    /// Creates or replaces the resource of that name in its collection when `expect`
    /// holds for the ETag there (else [`crate::StoreError::Modified`]); refused
    /// (`Conflict`) when another resource of the collection has the same UID. `id`,
    /// `modseq` are set by the store (a replaced resource keeps its id). Journal:
    /// `dav_resource_changed`. Result: [`OpResult::DavWritten`].
    PutDavResource {
        resource: DavResource,
        expect: DavExpect,
    },
    /// Removes a resource when `expect` holds (a missing one is `NotFound`). Its name
    /// stays as a tombstone for sync-collection. Journal: `dav_resource_removed`.
    DeleteDavResource {
        account: PrincipalId,
        collection: DavCollectionId,
        name: String,
        expect: DavExpect,
    },
    /// Sets `grantee`'s rights (RFC 4314 letters) on one of `account`'s DAV collections
    /// (calendar/address-book sharing); empty rights remove the grant. The collection
    /// must be the account's and the grantee must exist (else `NotFound`).
    SetDavShare {
        account: PrincipalId,
        collection: DavCollectionId,
        grantee: PrincipalId,
        rights: String,
    },
    /// Stores (or replaces) a domain's cached MTA-STS policy.
    PutStsPolicy(StsPolicyRecord),
    /// Forgets a domain's cached MTA-STS policy (a missing one is not an error).
    RemoveStsPolicy(String),
    /// Adds each count to its counter (made when missing). Counts for a (domain, day)
    /// whose report was already sent are dropped.
    AddTlsRpt(Vec<TlsRptCount>),
    /// Leases to `owner`, until `lease_until_ms`, at most `limit` (domain, day) reports
    /// with counters, a day before `before_day`, not sent and not leased by another
    /// claim whose lease still runs. Result: [`OpResult::TlsRptClaimed`].
    ClaimTlsRpt {
        owner: String,
        before_day: String,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    },
    /// Marks the (domain, day) report that `owner` holds as sent and drops its counters;
    /// changes nothing when `owner` no longer holds it. Also forgets sent marks older
    /// than [`TLSRPT_SENT_KEEP_MS`]. Result: [`OpResult::Done`].
    FinishTlsRpt {
        owner: String,
        domain: String,
        day: String,
        now_ms: i64,
    },
}

/// How long a sent TLS report's mark is kept (a late count for its day is dropped
/// while the mark is there).
pub const TLSRPT_SENT_KEEP_MS: i64 = 31 * 24 * 3600 * 1000;

/// A blob's bytes in an [`Op::PutBlob`]: shared, so retrying a batch copies no bytes,
/// and shown by length only.
#[derive(Clone, PartialEq, Eq)]
pub struct BlobBytes(pub std::sync::Arc<Vec<u8>>);

impl std::fmt::Debug for BlobBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobBytes({} bytes)", self.0.len())
    }
}

impl std::ops::Deref for BlobBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// The UIDs of a `StoreFlags` or `Expunge` in first-seen order without repeats: a UID
/// named twice is acted on once (both backends call this).
pub fn unique_uids(uids: &[u32]) -> Vec<u32> {
    let mut seen = std::collections::HashSet::with_capacity(uids.len());
    uids.iter().copied().filter(|u| seen.insert(*u)).collect()
}

/// The part of a message's flags a `StoreFlags` may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagScope {
    pub flags: Flags,
    pub keywords: bool,
}

/// The flags and keywords a `StoreFlags` leaves on one message: the same arithmetic for
/// every backend. Keywords compare case-insensitively (RFC 9051 §2.3.2) and keep the
/// spelling they were first given.
pub fn apply_flag_action(
    old_flags: Flags,
    old_keywords: &[String],
    action: FlagAction,
    flags: Flags,
    keywords: &[String],
    scope: Option<FlagScope>,
) -> (Flags, Vec<String>) {
    let (new_flags, new_keywords) = flag_action(old_flags, old_keywords, action, flags, keywords);
    match scope {
        None => (new_flags, new_keywords),
        Some(s) => (
            Flags((old_flags.0 & !s.flags.0) | (new_flags.0 & s.flags.0)),
            if s.keywords {
                new_keywords
            } else {
                old_keywords.to_vec()
            },
        ),
    }
}

fn flag_action(
    old_flags: Flags,
    old_keywords: &[String],
    action: FlagAction,
    flags: Flags,
    keywords: &[String],
) -> (Flags, Vec<String>) {
    match action {
        FlagAction::Set => (flags, keywords.to_vec()),
        FlagAction::Add => {
            let mut kw = old_keywords.to_vec();
            for k in keywords {
                if !kw.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    kw.push(k.clone());
                }
            }
            (old_flags.union(flags), kw)
        }
        FlagAction::Remove => {
            let kw = old_keywords
                .iter()
                .filter(|x| !keywords.iter().any(|k| k.eq_ignore_ascii_case(x)))
                .cloned()
                .collect();
            (old_flags.minus(flags), kw)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Done,
    MailboxCreated {
        uid_validity: u32,
    },
    Appended {
        uid: u32,
        modseq: u64,
    },
    /// UIDs changed with their new modseq; `skipped` failed `unchanged_since`.
    FlagsStored {
        changed: Vec<(u32, u64)>,
        skipped: Vec<u32>,
    },
    Expunged {
        uids: Vec<u32>,
    },
    LedgerAppended {
        seq: u64,
        hash: String,
    },
    /// The recipients leased by `ClaimQueued`, as (message, recipient index).
    Claimed(Vec<(QueueId, u32)>),
    /// `UpdateQueued`: the recipient indexes changed, and whether the message was
    /// removed (no recipient left queued).
    QueueUpdated {
        changed: Vec<u32>,
        removed: bool,
    },
    /// `RetryQueued`: how many recipients were made due.
    Retried(usize),
    /// `ClaimTlsRpt`: the (domain, day) reports leased.
    TlsRptClaimed(Vec<(String, String)>),
    /// A DAV resource was written: whether it is new, and its journal number.
    DavWritten {
        created: bool,
        modseq: u64,
    },
}
