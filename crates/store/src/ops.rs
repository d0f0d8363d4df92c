//! Write operations as plain data. A batch of them is applied atomically: all or none.
//! Being data rather than closures, a batch means the same to every backend (the
//! embedded writer thread applies it synchronously; PostgreSQL applies it in one
//! transaction), and several batches can share one commit (group commit).

use crate::model::*;

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
    },
    /// Remove the given UIDs from the mailbox.
    Expunge {
        account: PrincipalId,
        mailbox: MailboxId,
        uids: Vec<u32>,
    },
    /// Append to the access ledger, chained to the entry before it.
    AppendLedger(LedgerRecord),
}

/// The UIDs of a `StoreFlags` or `Expunge` in first-seen order without repeats: a UID
/// named twice is acted on once (both backends call this).
pub fn unique_uids(uids: &[u32]) -> Vec<u32> {
    let mut seen = std::collections::HashSet::with_capacity(uids.len());
    uids.iter().copied().filter(|u| seen.insert(*u)).collect()
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
}
