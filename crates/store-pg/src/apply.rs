//! Applies one batch of [`Op`]s inside one READ COMMITTED transaction.
//!
//! Concurrency: every operation on an account's mailboxes runs under that account's
//! `principals` row lock (taken for the whole batch up front, in id order, and held to
//! commit), the lock that `highest_modseq = highest_modseq + 1` needs anyway. So one
//! account's writers are serialised, every read they make after the lock sees the
//! latest commit, journal numbers follow commit order, and quota checks cannot race.
//! Directory changes lock their domain row (also up front, after the accounts); ledger
//! appends lock `ledger_head` last. Results and errors are those of the SQLite backend
//! (`postern_store::sqlite::apply`).

use crate::error::is_constraint;
use crate::listen::payload;
use crate::rows::{self, col, i64_of, mailbox_cols, to_json, u64_of};
use deadpool_postgres::Transaction;
use postern_store::*;
use postern_store::{blob, ledger};
use std::collections::HashMap;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// A failure inside the transaction: a store error decided by the rules, or a raw
/// database error whose mapping (retry, conflict, unavailable) the caller decides.
pub(crate) enum WriteError {
    Store(StoreError),
    Pg(tokio_postgres::Error),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        WriteError::Pg(e)
    }
}

pub(crate) type WResult<T> = std::result::Result<T, WriteError>;
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Replaces a constraint violation with the rule's own error, as the SQLite backend's
/// `map_err(|e| match db_err(e) { Conflict(_) => …, other => other })` does. Any other
/// database error (a deadlock, say) stays raw so the caller can retry it.
fn on_constraint(e: WriteError, f: impl FnOnce() -> StoreError) -> WriteError {
    match e {
        WriteError::Pg(pe) if is_constraint(&pe) => WriteError::Store(f()),
        other => other,
    }
}

fn not_found(what: String) -> WriteError {
    WriteError::Store(StoreError::NotFound(what))
}

/// The account whose row an operation locks (for the up-front, ordered locking).
fn account_of(op: &Op) -> Option<PrincipalId> {
    match op {
        Op::AppendMessage { message, .. } => Some(message.account),
        Op::StoreFlags { account, .. }
        | Op::Expunge { account, .. }
        | Op::RenameMailbox { account, .. }
        | Op::SetSubscribed { account, .. }
        | Op::SetMailboxAcl { account, .. }
        | Op::DeleteMailbox { account, .. } => Some(*account),
        Op::CreateMailbox(m) => Some(m.account),
        Op::SetQuota { principal, .. } | Op::SetPassword { principal, .. } => Some(*principal),
        Op::RemovePrincipal(id) => Some(*id),
        Op::CreateDavCollection(c) => Some(c.account),
        Op::UpdateDavCollection { account, .. }
        | Op::DeleteDavCollection { account, .. }
        | Op::DeleteDavResource { account, .. }
        | Op::SetDavShare { account, .. } => Some(*account),
        Op::PutDavResource { resource, .. } => Some(resource.account),
        _ => None,
    }
}

/// The domain whose row an operation locks.
fn domain_of(op: &Op) -> Option<DomainId> {
    match op {
        Op::CreatePrincipal(p) => Some(p.domain),
        Op::AddAlias(a) => Some(a.domain),
        Op::RemoveDomain(id) => Some(*id),
        _ => None,
    }
}

pub(crate) struct Batch<'t, 'c> {
    tx: &'t Transaction<'c>,
    pub(crate) notices: Vec<ChangeNotice>,
    /// The ledger head once this batch holds its lock: (seq, hash) of the last entry.
    ledger_head: Option<(u64, String)>,
}

impl<'t, 'c> Batch<'t, 'c> {
    pub(crate) fn new(tx: &'t Transaction<'c>) -> Self {
        Batch {
            tx,
            notices: Vec::new(),
            ledger_head: None,
        }
    }

    pub(crate) async fn exec(&self, sql: &str, p: Params<'_>) -> WResult<u64> {
        let st = self.tx.prepare_cached(sql).await?;
        Ok(self.tx.execute(&st, p).await?)
    }

    pub(crate) async fn opt(&self, sql: &str, p: Params<'_>) -> WResult<Option<Row>> {
        let st = self.tx.prepare_cached(sql).await?;
        Ok(self.tx.query_opt(&st, p).await?)
    }

    pub(crate) async fn rows(&self, sql: &str, p: Params<'_>) -> WResult<Vec<Row>> {
        let st = self.tx.prepare_cached(sql).await?;
        Ok(self.tx.query(&st, p).await?)
    }

    async fn exists(&self, sql: &str, p: Params<'_>) -> WResult<bool> {
        Ok(self.opt(sql, p).await?.is_some())
    }

    /// Locks every account, then every domain, the batch touches, each in id order,
    /// before anything else; the ledger head comes last, when first needed. With one
    /// lock order for every batch, batches wait for each other instead of deadlocking
    /// (what remains — a lock upgrade meeting a foreign-key check — is retried).
    pub(crate) async fn lock_rows(&self, ops: &[Op]) -> WResult<()> {
        let mut accounts: Vec<i64> = ops.iter().filter_map(account_of).map(|p| p.0).collect();
        if !accounts.is_empty() {
            accounts.sort_unstable();
            accounts.dedup();
            self.rows(
                "SELECT id FROM principals WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
                &[&accounts],
            )
            .await?;
        }
        let mut domains: Vec<i64> = ops.iter().filter_map(domain_of).map(|d| d.0).collect();
        if !domains.is_empty() {
            domains.sort_unstable();
            domains.dedup();
            self.rows(
                "SELECT id FROM domains WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
                &[&domains],
            )
            .await?;
        }
        Ok(())
    }

    /// Queues one notification per journal entry; PostgreSQL delivers them at commit.
    pub(crate) async fn send_notices(&self, channel: &str) -> WResult<()> {
        if self.notices.is_empty() {
            return Ok(());
        }
        let payloads: Vec<String> = self.notices.iter().map(payload).collect();
        self.exec(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
            &[&channel, &payloads],
        )
        .await?;
        Ok(())
    }

    /// Takes `n` modification sequences of the account (under its row lock) and returns
    /// the first; they are `first .. first + n`.
    async fn take_modseqs(&self, account: PrincipalId, n: u64) -> WResult<u64> {
        let row = self
            .opt(
                "UPDATE principals SET highest_modseq = highest_modseq + $2 WHERE id = $1 RETURNING highest_modseq",
                &[&account.0, &i64_of(n)],
            )
            .await?
            .ok_or_else(|| not_found(format!("principal {account}")))?;
        Ok(u64_of(col(&row, 0)?) + 1 - n)
    }

    /// Journal entries `first, first + 1, …` of one kind in one mailbox, one per
    /// `(message, uid)`, with their notices.
    async fn journal(
        &mut self,
        account: PrincipalId,
        first: u64,
        kind: ChangeKind,
        mailbox: Option<MailboxId>,
        entries: &[(Option<MessageId>, Option<u32>)],
    ) -> WResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let messages: Vec<Option<i64>> = entries.iter().map(|e| e.0.map(|m| m.0)).collect();
        let uids: Vec<Option<i64>> = entries.iter().map(|e| e.1.map(i64::from)).collect();
        self.exec(
            "INSERT INTO journal (account_id, modseq, kind, mailbox_id, message_id, uid, at_ms)
             SELECT $1::bigint, $2::bigint + t.ord - 1, $3::text, $4::bigint, t.msg, t.uid, $7::bigint
             FROM unnest($5::bigint[], $6::bigint[]) WITH ORDINALITY AS t(msg, uid, ord)",
            &[
                &account.0,
                &i64_of(first),
                &kind.as_str(),
                &mailbox.map(|m| m.0),
                &messages,
                &uids,
                &now_ms(),
            ],
        )
        .await?;
        for i in 0..entries.len() as u64 {
            self.notices.push(ChangeNotice {
                account,
                modseq: first + i,
            });
        }
        Ok(())
    }

    async fn mailbox_of(&self, account: PrincipalId, mailbox: MailboxId) -> WResult<Mailbox> {
        let row = self
            .opt(
                concat!(
                    "SELECT ",
                    mailbox_cols!(),
                    " FROM mailboxes WHERE id = $1 AND account_id = $2"
                ),
                &[&mailbox.0, &account.0],
            )
            .await?
            .ok_or_else(|| not_found(format!("mailbox {mailbox}")))?;
        Ok(rows::mailbox(&row)?)
    }

    async fn insert_credential(&self, cred: &Credential) -> WResult<()> {
        let kind = match cred.kind {
            CredentialKind::Password => "password",
            CredentialKind::App => "app",
        };
        self.exec(
            "INSERT INTO credentials (id, principal_id, kind, label, protocols, hash, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &cred.id.0,
                &cred.principal.0,
                &kind,
                &cred.label,
                &to_json(&cred.protocols)?,
                &cred.hash,
                &cred.created_ms,
            ],
        )
        .await
        .map_err(|e| {
            on_constraint(e, || {
                StoreError::NotFound(format!("principal {}", cred.principal))
            })
        })?;
        Ok(())
    }

    /// Removes mailbox entries (the given UIDs in the given order, or every entry in
    /// UID order): usage, one journal entry each, and each message record no mailbox
    /// holds any more. Returns the UIDs that were there.
    /// `only_deleted`: skip those without `\Deleted` now (see `Op::Expunge`).
    async fn expunge(
        &mut self,
        account: PrincipalId,
        mailbox: MailboxId,
        uids: Option<&[u32]>,
        only_deleted: bool,
    ) -> WResult<Vec<u32>> {
        const SELECT: &str = "SELECT mm.uid, mm.message_id, mm.size, mm.flags FROM mailbox_messages mm WHERE mm.mailbox_id = $1";
        let found = match uids {
            Some(uids) => {
                let wanted: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
                self.rows(
                    &format!("{SELECT} AND mm.uid = ANY($2)"),
                    &[&mailbox.0, &wanted],
                )
                .await?
            }
            None => {
                self.rows(&format!("{SELECT} ORDER BY mm.uid"), &[&mailbox.0])
                    .await?
            }
        };
        let mut present: HashMap<u32, (i64, i64)> = HashMap::with_capacity(found.len());
        let mut order = Vec::with_capacity(found.len());
        for r in &found {
            let uid = col::<i64>(r, 0)? as u32;
            let flags: i64 = col::<i64>(r, 3)?;
            if only_deleted && flags & i64::from(Flags::DELETED.0) == 0 {
                continue;
            }
            present.insert(uid, (col(r, 1)?, col(r, 2)?));
            order.push(uid);
        }
        let order = uids.map(<[u32]>::to_vec).unwrap_or(order);
        // In request order; a UID named twice is expunged once.
        let mut done = Vec::new();
        let mut entries = Vec::new();
        let mut bytes = 0i64;
        for uid in order {
            if let Some((message, size)) = present.remove(&uid) {
                done.push(uid);
                entries.push((Some(MessageId(message)), Some(uid)));
                bytes += size;
            }
        }
        if done.is_empty() {
            return Ok(done);
        }
        let done_i: Vec<i64> = done.iter().map(|&u| i64::from(u)).collect();
        let messages: Vec<i64> = entries.iter().filter_map(|e| e.0.map(|m| m.0)).collect();
        self.exec(
            "DELETE FROM mailbox_messages WHERE mailbox_id = $1 AND uid = ANY($2)",
            &[&mailbox.0, &done_i],
        )
        .await?;
        self.exec(
            "DELETE FROM messages m WHERE m.id = ANY($1)
               AND NOT EXISTS (SELECT 1 FROM mailbox_messages mm WHERE mm.message_id = m.id)",
            &[&messages],
        )
        .await?;
        let n = done.len() as i64;
        let row = self
            .opt(
                "UPDATE principals SET used_bytes = used_bytes - $2, message_count = message_count - $3,
                   highest_modseq = highest_modseq + $3
                 WHERE id = $1 RETURNING highest_modseq",
                &[&account.0, &bytes, &n],
            )
            .await?
            .ok_or_else(|| not_found(format!("principal {account}")))?;
        let last = u64_of(col(&row, 0)?);
        self.exec(
            "UPDATE mailboxes SET highest_modseq = $2 WHERE id = $1",
            &[&mailbox.0, &i64_of(last)],
        )
        .await?;
        let first = last + 1 - n as u64;
        self.journal(
            account,
            first,
            ChangeKind::MessageExpunged,
            Some(mailbox),
            &entries,
        )
        .await?;
        Ok(done)
    }

    /// `group` exists and is a group (else NotFound / Refused with `refusal`). KEY
    /// SHARE: the group cannot be removed before the batch commits.
    async fn require_group(&self, group: PrincipalId, refusal: &str) -> WResult<()> {
        let kind: Option<String> = match self
            .opt(
                "SELECT kind FROM principals WHERE id = $1 FOR KEY SHARE",
                &[&group.0],
            )
            .await?
        {
            Some(r) => Some(col(&r, 0)?),
            None => None,
        };
        match kind.as_deref() {
            None => Err(not_found(format!("group {group}"))),
            Some("group") => Ok(()),
            Some(_) => Err(StoreError::Refused(refusal.into()).into()),
        }
    }

    pub(crate) async fn apply(&mut self, op: &Op) -> WResult<OpResult> {
        match op {
            Op::CreateDomain(d) => {
                self.exec(
                    "INSERT INTO domains (id, name, created_ms) VALUES ($1, $2, $3)",
                    &[&d.id.0, &d.name, &d.created_ms],
                )
                .await
                .map_err(|e| {
                    on_constraint(e, || StoreError::Conflict(format!("domain {}", d.name)))
                })?;
                Ok(OpResult::Done)
            }
            Op::RemoveDomain(id) => {
                // Locked first: a principal or alias being added to it waits, then is
                // seen below (or finds the domain gone).
                self.opt("SELECT 1 FROM domains WHERE id = $1 FOR UPDATE", &[&id.0])
                    .await?;
                if self
                    .exists(
                        "SELECT 1 FROM principals WHERE domain_id = $1 LIMIT 1",
                        &[&id.0],
                    )
                    .await?
                    || self
                        .exists(
                            "SELECT 1 FROM aliases WHERE domain_id = $1 LIMIT 1",
                            &[&id.0],
                        )
                        .await?
                {
                    return Err(StoreError::Refused(
                        "the domain still has accounts or aliases; remove them first".into(),
                    )
                    .into());
                }
                self.exec("DELETE FROM dkim_keys WHERE domain_id = $1", &[&id.0])
                    .await?;
                let n = self
                    .exec("DELETE FROM domains WHERE id = $1", &[&id.0])
                    .await?;
                if n == 0 {
                    return Err(not_found(format!("domain {id}")));
                }
                Ok(OpResult::Done)
            }
            Op::CreatePrincipal(p) => {
                // The domain lock serialises principal and alias creation in the domain,
                // so "no alias has this local part" stays true until the insert commits.
                if !self
                    .exists(
                        "SELECT 1 FROM domains WHERE id = $1 FOR NO KEY UPDATE",
                        &[&p.domain.0],
                    )
                    .await?
                {
                    return Err(not_found(format!("domain {}", p.domain)));
                }
                if self
                    .exists(
                        "SELECT 1 FROM aliases WHERE domain_id = $1 AND local_part = $2 LIMIT 1",
                        &[&p.domain.0, &p.local_part],
                    )
                    .await?
                {
                    return Err(
                        StoreError::Conflict(format!("{} is an alias", p.local_part)).into(),
                    );
                }
                self.exec(
                    "INSERT INTO principals (id, domain_id, local_part, kind, display_name, quota_bytes, created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &p.id.0,
                        &p.domain.0,
                        &p.local_part,
                        &p.kind.as_str(),
                        &p.display_name,
                        &p.quota_bytes.map(i64_of),
                        &p.created_ms,
                    ],
                )
                .await
                .map_err(|e| on_constraint(e, || StoreError::Conflict(format!("{} exists", p.local_part))))?;
                Ok(OpResult::Done)
            }
            Op::RemovePrincipal(id) => {
                if !self
                    .exists(
                        "SELECT 1 FROM principals WHERE id = $1 FOR UPDATE",
                        &[&id.0],
                    )
                    .await?
                {
                    return Err(not_found(format!("principal {id}")));
                }
                self.exec(
                    "DELETE FROM mailbox_acl WHERE account_id = $1 OR grantee_id = $1",
                    &[&id.0],
                )
                .await?;
                self.exec(
                    "DELETE FROM dav_shares WHERE account_id = $1 OR grantee_id = $1",
                    &[&id.0],
                )
                .await?;
                self.exec(
                    "DELETE FROM mailbox_messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = $1)",
                    &[&id.0],
                )
                .await?;
                self.exec("DELETE FROM messages WHERE account_id = $1", &[&id.0])
                    .await?;
                self.exec("DELETE FROM mailboxes WHERE account_id = $1", &[&id.0])
                    .await?;
                self.exec("DELETE FROM dav_resources WHERE account_id = $1", &[&id.0])
                    .await?;
                self.exec(
                    "DELETE FROM dav_collections WHERE account_id = $1",
                    &[&id.0],
                )
                .await?;
                self.exec("DELETE FROM journal WHERE account_id = $1", &[&id.0])
                    .await?;
                self.exec("DELETE FROM principals WHERE id = $1", &[&id.0])
                    .await?;
                Ok(OpResult::Done)
            }
            Op::SetQuota {
                principal,
                quota_bytes,
            } => {
                let n = self
                    .exec(
                        "UPDATE principals SET quota_bytes = $2 WHERE id = $1",
                        &[&principal.0, &quota_bytes.map(i64_of)],
                    )
                    .await?;
                if n == 0 {
                    return Err(not_found(format!("principal {principal}")));
                }
                Ok(OpResult::Done)
            }
            Op::AddCredential(cred) => {
                if cred.kind == CredentialKind::Password {
                    return Err(StoreError::Refused(
                        "the main password is set with SetPassword".into(),
                    )
                    .into());
                }
                self.insert_credential(cred).await?;
                Ok(OpResult::Done)
            }
            Op::RemoveCredential(id) => {
                let n = self
                    .exec("DELETE FROM credentials WHERE id = $1", &[&id.0])
                    .await?;
                if n == 0 {
                    return Err(not_found(format!("credential {id}")));
                }
                Ok(OpResult::Done)
            }
            Op::SetPassword {
                principal,
                credential,
            } => {
                // The principal's row is locked (lock_rows): two SetPasswords cannot
                // both delete nothing and insert one each.
                self.exec(
                    "DELETE FROM credentials WHERE principal_id = $1 AND kind = 'password'",
                    &[&principal.0],
                )
                .await?;
                let mut cred = credential.clone();
                cred.principal = *principal;
                cred.kind = CredentialKind::Password;
                self.insert_credential(&cred).await?;
                Ok(OpResult::Done)
            }
            Op::AddAlias(a) => {
                if !self
                    .exists(
                        "SELECT 1 FROM domains WHERE id = $1 FOR NO KEY UPDATE",
                        &[&a.domain.0],
                    )
                    .await?
                {
                    return Err(not_found(format!("domain {}", a.domain)));
                }
                if self
                    .exists(
                        "SELECT 1 FROM principals WHERE domain_id = $1 AND local_part = $2",
                        &[&a.domain.0, &a.local_part],
                    )
                    .await?
                {
                    return Err(
                        StoreError::Conflict(format!("{} is an account", a.local_part)).into(),
                    );
                }
                self.exec(
                    "INSERT INTO aliases (id, domain_id, local_part, target, created_ms) VALUES ($1, $2, $3, $4, $5)",
                    &[&a.id.0, &a.domain.0, &a.local_part, &a.target, &a.created_ms],
                )
                .await
                .map_err(|e| {
                    on_constraint(e, || {
                        StoreError::Conflict(format!("alias {} → {}", a.local_part, a.target))
                    })
                })?;
                Ok(OpResult::Done)
            }
            Op::RemoveAlias(id) => {
                let n = self
                    .exec("DELETE FROM aliases WHERE id = $1", &[&id.0])
                    .await?;
                if n == 0 {
                    return Err(not_found(format!("alias {id}")));
                }
                Ok(OpResult::Done)
            }
            Op::AddGroupMember { group, member } => {
                self.require_group(*group, "only a group has members")
                    .await?;
                self.exec(
                    "INSERT INTO group_members (group_id, member) VALUES ($1, $2)",
                    &[&group.0, member],
                )
                .await
                .map_err(|e| {
                    on_constraint(e, || {
                        StoreError::Conflict(format!("{member} is already a member"))
                    })
                })?;
                Ok(OpResult::Done)
            }
            Op::RemoveGroupMember { group, member } => {
                let n = self
                    .exec(
                        "DELETE FROM group_members WHERE group_id = $1 AND member = $2",
                        &[&group.0, member],
                    )
                    .await?;
                if n == 0 {
                    return Err(not_found(format!("member {member}")));
                }
                Ok(OpResult::Done)
            }
            Op::SetGroupSenders { group, senders } => {
                self.require_group(*group, "not a group").await?;
                match senders {
                    Some(s) => {
                        self.exec(
                            "INSERT INTO group_settings (group_id, senders) VALUES ($1, $2)
                             ON CONFLICT (group_id) DO UPDATE SET senders = excluded.senders",
                            &[&group.0, s],
                        )
                        .await?
                    }
                    None => {
                        self.exec(
                            "DELETE FROM group_settings WHERE group_id = $1",
                            &[&group.0],
                        )
                        .await?
                    }
                };
                Ok(OpResult::Done)
            }
            Op::CreateMailbox(m) => {
                // RFC 9051 §2.3.1.1: a name reused for a new mailbox must get a new
                // UIDVALIDITY. Time-based, and always above the account's last one.
                let now_s = (now_ms() / 1000).clamp(1, u32::MAX as i64);
                let row = self
                    .opt(
                        "UPDATE principals SET last_uid_validity = GREATEST($2::bigint, last_uid_validity + 1),
                           highest_modseq = highest_modseq + 1
                         WHERE id = $1 RETURNING last_uid_validity, highest_modseq",
                        &[&m.account.0, &now_s],
                    )
                    .await?
                    .ok_or_else(|| not_found(format!("principal {}", m.account)))?;
                let uid_validity: i64 = col(&row, 0)?;
                let modseq = u64_of(col(&row, 1)?);
                if uid_validity > u32::MAX as i64 {
                    return Err(StoreError::Refused("UIDVALIDITY space exhausted".into()).into());
                }
                self.exec(
                    "INSERT INTO mailboxes (id, account_id, name, special_use, uid_validity, uid_next, highest_modseq, subscribed, created_ms)
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8)",
                    &[
                        &m.id.0,
                        &m.account.0,
                        &m.name,
                        &m.special_use.map(|s| s.as_str()),
                        &uid_validity,
                        &i64_of(modseq),
                        &m.subscribed,
                        &m.created_ms,
                    ],
                )
                .await
                .map_err(|e| on_constraint(e, || StoreError::Conflict(format!("mailbox {}", m.name))))?;
                self.journal(
                    m.account,
                    modseq,
                    ChangeKind::MailboxCreated,
                    Some(m.id),
                    &[(None, None)],
                )
                .await?;
                Ok(OpResult::MailboxCreated {
                    uid_validity: uid_validity as u32,
                })
            }
            Op::RenameMailbox {
                account,
                mailbox,
                name,
            } => {
                self.mailbox_of(*account, *mailbox).await?;
                let modseq = self.take_modseqs(*account, 1).await?;
                self.exec(
                    "UPDATE mailboxes SET name = $2, highest_modseq = $3 WHERE id = $1",
                    &[&mailbox.0, name, &i64_of(modseq)],
                )
                .await
                .map_err(|e| {
                    on_constraint(e, || StoreError::Conflict(format!("mailbox {name}")))
                })?;
                self.journal(
                    *account,
                    modseq,
                    ChangeKind::MailboxRenamed,
                    Some(*mailbox),
                    &[(None, None)],
                )
                .await?;
                Ok(OpResult::Done)
            }
            Op::SetSubscribed {
                account,
                mailbox,
                subscribed,
            } => {
                self.mailbox_of(*account, *mailbox).await?;
                self.exec(
                    "UPDATE mailboxes SET subscribed = $2 WHERE id = $1",
                    &[&mailbox.0, subscribed],
                )
                .await?;
                Ok(OpResult::Done)
            }
            Op::SetMailboxAcl {
                account,
                mailbox,
                grantee,
                rights,
            } => {
                self.mailbox_of(*account, *mailbox).await?;
                if !self
                    .exists("SELECT 1 FROM principals WHERE id = $1", &[&grantee.0])
                    .await?
                {
                    return Err(not_found(format!("principal {grantee}")));
                }
                if rights.is_empty() {
                    self.exec(
                        "DELETE FROM mailbox_acl WHERE mailbox_id = $1 AND grantee_id = $2",
                        &[&mailbox.0, &grantee.0],
                    )
                    .await?;
                } else {
                    self.exec(
                        "INSERT INTO mailbox_acl (mailbox_id, account_id, grantee_id, rights)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (mailbox_id, grantee_id) DO UPDATE SET rights = EXCLUDED.rights",
                        &[&mailbox.0, &account.0, &grantee.0, rights],
                    )
                    .await?;
                }
                Ok(OpResult::Done)
            }
            Op::DeleteMailbox { account, mailbox } => {
                self.mailbox_of(*account, *mailbox).await?;
                self.exec(
                    "DELETE FROM mailbox_acl WHERE mailbox_id = $1",
                    &[&mailbox.0],
                )
                .await?;
                self.expunge(*account, *mailbox, None, false).await?;
                self.exec("DELETE FROM mailboxes WHERE id = $1", &[&mailbox.0])
                    .await?;
                let modseq = self.take_modseqs(*account, 1).await?;
                self.journal(
                    *account,
                    modseq,
                    ChangeKind::MailboxDeleted,
                    Some(*mailbox),
                    &[(None, None)],
                )
                .await?;
                Ok(OpResult::Done)
            }
            Op::AppendMessage {
                message,
                mailbox,
                flags,
                keywords,
            } => {
                let account = message.account;
                let mb = self.mailbox_of(account, *mailbox).await?;
                let row = self
                    .opt(
                        "SELECT quota_bytes, used_bytes FROM principals WHERE id = $1",
                        &[&account.0],
                    )
                    .await?
                    .ok_or_else(|| not_found(format!("principal {account}")))?;
                let quota: Option<i64> = col(&row, 0)?;
                let used: i64 = col(&row, 1)?;
                // A copy (the record exists) counts the stored size, not the request's.
                let stored = self
                    .opt(
                        "SELECT size FROM messages WHERE id = $1 AND account_id = $2",
                        &[&message.id.0, &account.0],
                    )
                    .await?;
                let have = stored.is_some();
                let size = match &stored {
                    Some(row) => u64_of(col(row, 0)?),
                    None => message.blob.size,
                };
                if let Some(limit) = quota {
                    let (limit, used) = (u64_of(limit), u64_of(used));
                    if used.saturating_add(size) > limit {
                        return Err(StoreError::QuotaExceeded { used, size, limit }.into());
                    }
                }
                if mb.uid_next == u32::MAX {
                    return Err(StoreError::Refused("the mailbox has used every UID".into()).into());
                }
                if !have {
                    self.exec(
                        "INSERT INTO messages (id, account_id, blob_hash, size, received_ms, thread_id, message_id_hdr, meta)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        &[
                            &message.id.0,
                            &account.0,
                            &message.blob.hash,
                            &i64_of(size),
                            &message.received_ms,
                            &message.thread_id,
                            &message.meta.envelope.message_id.as_deref().map(rows::nul_safe),
                            &to_json(&message.meta)?,
                        ],
                    )
                    .await?;
                }
                let uid = mb.uid_next;
                let row = self
                    .opt(
                        "UPDATE principals SET highest_modseq = highest_modseq + 1,
                           used_bytes = used_bytes + $2, message_count = message_count + 1
                         WHERE id = $1 RETURNING highest_modseq",
                        &[&account.0, &i64_of(size)],
                    )
                    .await?
                    .ok_or_else(|| not_found(format!("principal {account}")))?;
                let modseq = u64_of(col(&row, 0)?);
                self.exec(
                    "INSERT INTO mailbox_messages (mailbox_id, uid, message_id, flags, keywords, modseq, saved_ms, size)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &mailbox.0,
                        &i64::from(uid),
                        &message.id.0,
                        &i64::from(flags.0),
                        &to_json(keywords)?,
                        &i64_of(modseq),
                        &now_ms(),
                        &i64_of(size),
                    ],
                )
                .await?;
                self.exec(
                    "UPDATE mailboxes SET uid_next = $2, highest_modseq = $3 WHERE id = $1",
                    &[&mailbox.0, &(i64::from(uid) + 1), &i64_of(modseq)],
                )
                .await?;
                self.journal(
                    account,
                    modseq,
                    ChangeKind::MessageAdded,
                    Some(*mailbox),
                    &[(Some(message.id), Some(uid))],
                )
                .await?;
                Ok(OpResult::Appended { uid, modseq })
            }
            Op::StoreFlags {
                account,
                mailbox,
                uids,
                action,
                flags,
                keywords,
                unchanged_since,
                scope,
            } => {
                self.mailbox_of(*account, *mailbox).await?;
                self.store_flags(
                    *account,
                    *mailbox,
                    &postern_store::ops::unique_uids(uids),
                    *action,
                    *flags,
                    keywords,
                    *scope,
                    *unchanged_since,
                )
                .await
            }
            Op::Expunge {
                account,
                mailbox,
                uids,
                only_deleted,
            } => {
                self.mailbox_of(*account, *mailbox).await?;
                let uids = postern_store::ops::unique_uids(uids);
                let uids = self
                    .expunge(*account, *mailbox, Some(&uids), *only_deleted)
                    .await?;
                Ok(OpResult::Expunged { uids })
            }
            Op::AppendLedger(record) => {
                let (last_seq, prev) = match self.ledger_head.take() {
                    Some(head) => head,
                    None => {
                        // One row, locked to commit: appends from every node queue here,
                        // so no two entries ever chain to the same head.
                        let row = self
                            .opt(
                                "SELECT seq, hash FROM ledger_head WHERE id = 1 FOR UPDATE",
                                &[],
                            )
                            .await?
                            .ok_or_else(|| {
                                WriteError::Store(StoreError::Invalid(
                                    "the ledger head row is missing".into(),
                                ))
                            })?;
                        (u64_of(col(&row, 0)?), col::<String>(&row, 1)?)
                    }
                };
                let seq = last_seq + 1;
                let json = ledger::canonical(record);
                let hash = ledger::entry_hash(seq, &prev, &json);
                let json = String::from_utf8(json)
                    .map_err(|e| WriteError::Store(StoreError::Invalid(e.to_string())))?;
                let actor = record.actor.account.as_deref().map(rows::nul_safe);
                let target = record.target.as_deref().map(rows::nul_safe);
                self.exec(
                    "WITH appended AS (
                       INSERT INTO ledger (seq, record, prev_hash, hash, actor_account, target, time_ms)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)
                     )
                     UPDATE ledger_head SET seq = $1, hash = $4 WHERE id = 1",
                    &[&i64_of(seq), &json, &prev, &hash, &actor, &target, &record.time_ms],
                )
                .await?;
                self.ledger_head = Some((seq, hash.clone()));
                Ok(OpResult::LedgerAppended { seq, hash })
            }
            Op::PutBlob { hash, data } => {
                if !blob::valid_hash(hash) || blob::hash_bytes(data) != *hash {
                    return Err(WriteError::Store(StoreError::Invalid(format!(
                        "blob {hash:?}: the bytes do not have that hash"
                    ))));
                }
                // As PgBlobStore::put, inside this batch's transaction: the same bytes
                // stored twice keep one copy (a second writer waits for the first).
                let size = i64_of(data.len() as u64);
                let inserted = self
                    .opt(
                        "INSERT INTO blobs (hash, size) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING RETURNING 1",
                        &[hash, &size],
                    )
                    .await?
                    .is_some();
                if inserted {
                    let chunks: Vec<&[u8]> = if data.is_empty() {
                        vec![&[]]
                    } else {
                        data.chunks(crate::CHUNK_SIZE).collect()
                    };
                    for (i, chunk) in chunks.into_iter().enumerate() {
                        let idx = i as i32;
                        self.exec(
                            "INSERT INTO blob_chunks (hash, idx, data) VALUES ($1, $2, $3)",
                            &[hash, &idx, &chunk],
                        )
                        .await?;
                    }
                }
                Ok(OpResult::Done)
            }
            Op::DeleteBlob(hash) => {
                self.exec("DELETE FROM blobs WHERE hash = $1", &[hash])
                    .await?;
                Ok(OpResult::Done)
            }
            Op::Enqueue { .. }
            | Op::ClaimQueued { .. }
            | Op::UpdateQueued { .. }
            | Op::RetryQueued { .. }
            | Op::RemoveQueued(_)
            | Op::AddDkimKey(_)
            | Op::RemoveDkimKey { .. } => self.apply_queue(op).await,
            Op::CreateDavCollection(_)
            | Op::UpdateDavCollection { .. }
            | Op::DeleteDavCollection { .. }
            | Op::PutDavResource { .. }
            | Op::DeleteDavResource { .. }
            | Op::SetDavShare { .. } => self.apply_dav(op).await,
            Op::PutStsPolicy(_)
            | Op::RemoveStsPolicy(_)
            | Op::AddTlsRpt(_)
            | Op::ClaimTlsRpt { .. }
            | Op::FinishTlsRpt { .. } => self.apply_outbound_tls(op).await,
        }
    }

    /// STORE on the given UIDs, computed as the SQLite backend does one UID at a time
    /// (in request order, each seeing the previous ones' effect), then written in bulk.
    #[allow(clippy::too_many_arguments)]
    async fn store_flags(
        &mut self,
        account: PrincipalId,
        mailbox: MailboxId,
        uids: &[u32],
        action: FlagAction,
        flags: Flags,
        keywords: &[String],
        scope: Option<postern_store::ops::FlagScope>,
        unchanged_since: Option<u64>,
    ) -> WResult<OpResult> {
        let wanted: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
        let found = self
            .rows(
                "SELECT uid, flags, keywords, modseq FROM mailbox_messages WHERE mailbox_id = $1 AND uid = ANY($2)",
                &[&mailbox.0, &wanted],
            )
            .await?;
        let mut state: HashMap<u32, (Flags, Vec<String>, u64)> =
            HashMap::with_capacity(found.len());
        for r in &found {
            let kw: String = col(r, 2)?;
            state.insert(
                col::<i64>(r, 0)? as u32,
                (
                    Flags(col::<i64>(r, 1)? as u32),
                    rows::decode_json(&kw, "keywords")?,
                    u64_of(col(r, 3)?),
                ),
            );
        }
        // The account's row is locked: nobody else moves its modseq until commit.
        let base = match self
            .opt(
                "SELECT highest_modseq FROM principals WHERE id = $1",
                &[&account.0],
            )
            .await?
        {
            Some(r) => u64_of(col(&r, 0)?),
            None => return Err(not_found(format!("principal {account}"))),
        };
        let mut next = base;
        let mut changed = Vec::new();
        let mut skipped = Vec::new();
        for &uid in uids {
            let Some((old_flags, old_kw, old_modseq)) = state.get(&uid).cloned() else {
                continue;
            };
            if let Some(limit) = unchanged_since
                && old_modseq > limit
            {
                skipped.push(uid);
                continue;
            }
            let (new_flags, new_kw) = postern_store::ops::apply_flag_action(
                old_flags, &old_kw, action, flags, keywords, scope,
            );
            if new_flags == old_flags && new_kw == old_kw {
                continue;
            }
            next += 1;
            state.insert(uid, (new_flags, new_kw, next));
            changed.push((uid, next));
        }
        if changed.is_empty() {
            return Ok(OpResult::FlagsStored { changed, skipped });
        }
        let n = next - base;
        let moved = self
            .exec(
                "UPDATE principals SET highest_modseq = $3 WHERE id = $1 AND highest_modseq = $2",
                &[&account.0, &i64_of(base), &i64_of(next)],
            )
            .await?;
        if moved != 1 {
            return Err(StoreError::Unavailable(format!(
                "account {account}: modseq moved while its row was locked"
            ))
            .into());
        }
        // Final state per changed UID (a UID changes at most once per STORE, but the
        // last state is the one to keep either way).
        let mut final_uids = Vec::new();
        let mut final_flags = Vec::new();
        let mut final_kw = Vec::new();
        let mut final_modseq = Vec::new();
        let mut written = std::collections::HashSet::new();
        for &(uid, _) in changed.iter().rev() {
            if written.insert(uid)
                && let Some((f, kw, m)) = state.get(&uid)
            {
                final_uids.push(i64::from(uid));
                final_flags.push(i64::from(f.0));
                final_kw.push(to_json(kw)?);
                final_modseq.push(i64_of(*m));
            }
        }
        self.exec(
            "UPDATE mailbox_messages mm SET flags = u.flags, keywords = u.kw, modseq = u.modseq
             FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bigint[]) AS u(uid, flags, kw, modseq)
             WHERE mm.mailbox_id = $1 AND mm.uid = u.uid",
            &[&mailbox.0, &final_uids, &final_flags, &final_kw, &final_modseq],
        )
        .await?;
        self.exec(
            "UPDATE mailboxes SET highest_modseq = $2 WHERE id = $1",
            &[&mailbox.0, &i64_of(next)],
        )
        .await?;
        let entries: Vec<(Option<MessageId>, Option<u32>)> =
            changed.iter().map(|&(uid, _)| (None, Some(uid))).collect();
        self.journal(
            account,
            base + 1,
            ChangeKind::FlagsChanged,
            Some(mailbox),
            &entries,
        )
        .await?;
        debug_assert_eq!(n as usize, changed.len());
        Ok(OpResult::FlagsStored { changed, skipped })
    }
}
