//! Applies one [`Op`] inside the writer's transaction.

use super::{MAILBOX_COLS, db_err};
use crate::error::{Result, StoreError};
use crate::ledger;
use crate::model::*;
use crate::ops::{Op, OpResult};
use rusqlite::{Connection, OptionalExtension, params};

fn exists(c: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<bool> {
    Ok(c.query_row(sql, p, |_| Ok(())).optional()?.is_some())
}

fn check_changed(n: usize, what: impl FnOnce() -> String) -> Result<()> {
    if n == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

/// Takes the account's next modification sequence.
fn next_modseq(c: &Connection, account: PrincipalId) -> Result<u64> {
    c.query_row(
        "UPDATE principals SET highest_modseq = highest_modseq + 1 WHERE id = ?1 RETURNING highest_modseq",
        [account.0],
        |r| r.get::<_, i64>(0),
    )
    .optional()?
    .map(|v| v as u64)
    .ok_or_else(|| StoreError::NotFound(format!("principal {account}")))
}

#[allow(clippy::too_many_arguments)]
fn journal(
    c: &Connection,
    notices: &mut Vec<ChangeNotice>,
    account: PrincipalId,
    modseq: u64,
    kind: ChangeKind,
    mailbox: Option<MailboxId>,
    message: Option<MessageId>,
    uid: Option<u32>,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO journal (account_id, modseq, kind, mailbox_id, message_id, uid, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        account.0,
        modseq as i64,
        kind.as_str(),
        mailbox.map(|m| m.0),
        message.map(|m| m.0),
        uid.map(|u| u as i64),
        crate::now_ms()
    ])?;
    notices.push(ChangeNotice { account, modseq });
    Ok(())
}

fn mailbox_of(c: &Connection, account: PrincipalId, mailbox: MailboxId) -> Result<Mailbox> {
    let sql = format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = ?1 AND account_id = ?2");
    c.query_row(&sql, params![mailbox.0, account.0], |r| {
        let su: Option<String> = r.get(3)?;
        Ok(Mailbox {
            id: MailboxId(r.get(0)?),
            account: PrincipalId(r.get(1)?),
            name: r.get(2)?,
            special_use: su.as_deref().and_then(SpecialUse::parse),
            uid_validity: r.get::<_, i64>(4)? as u32,
            uid_next: r.get::<_, i64>(5)? as u32,
            highest_modseq: r.get::<_, i64>(6)? as u64,
            subscribed: r.get(7)?,
            created_ms: r.get(8)?,
        })
    })
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn insert_credential(c: &Connection, cred: &Credential) -> Result<()> {
    let kind = match cred.kind {
        CredentialKind::Password => "password",
        CredentialKind::App => "app",
    };
    c.execute(
        "INSERT INTO credentials (id, principal_id, kind, label, protocols, hash, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            cred.id.0,
            cred.principal.0,
            kind,
            cred.label,
            to_json(&cred.protocols)?,
            cred.hash,
            cred.created_ms
        ],
    )
    .map_err(|e| match db_err(e) {
        StoreError::Conflict(_) => StoreError::NotFound(format!("principal {}", cred.principal)),
        other => other,
    })?;
    Ok(())
}

/// Removes one mailbox entry: journal, usage, and the message record when no other
/// mailbox holds it. Returns false when the UID is not there.
fn expunge_one(
    c: &Connection,
    notices: &mut Vec<ChangeNotice>,
    account: PrincipalId,
    mailbox: MailboxId,
    uid: u32,
    only_deleted: bool,
) -> Result<bool> {
    let row = c
        .prepare_cached(
            "SELECT message_id, size, flags FROM mailbox_messages WHERE mailbox_id = ?1 AND uid = ?2",
        )?
        .query_row(params![mailbox.0, uid as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })
        .optional()?;
    let Some((message, size, flags)) = row else {
        return Ok(false);
    };
    if only_deleted && flags & i64::from(Flags::DELETED.0) == 0 {
        return Ok(false);
    }
    c.prepare_cached("DELETE FROM mailbox_messages WHERE mailbox_id = ?1 AND uid = ?2")?
        .execute(params![mailbox.0, uid as i64])?;
    let still_held = exists(
        c,
        "SELECT 1 FROM mailbox_messages WHERE message_id = ?1 LIMIT 1",
        [message],
    )?;
    if !still_held {
        c.prepare_cached("DELETE FROM messages WHERE id = ?1")?
            .execute([message])?;
    }
    c.prepare_cached(
        "UPDATE principals SET used_bytes = used_bytes - ?2, message_count = message_count - 1 WHERE id = ?1",
    )?
    .execute(params![account.0, size])?;
    let modseq = next_modseq(c, account)?;
    c.prepare_cached("UPDATE mailboxes SET highest_modseq = ?2 WHERE id = ?1")?
        .execute(params![mailbox.0, modseq as i64])?;
    journal(
        c,
        notices,
        account,
        modseq,
        ChangeKind::MessageExpunged,
        Some(mailbox),
        Some(MessageId(message)),
        Some(uid),
    )?;
    Ok(true)
}

pub(super) fn apply(c: &Connection, op: &Op, notices: &mut Vec<ChangeNotice>) -> Result<OpResult> {
    match op {
        Op::CreateDomain(d) => {
            c.execute(
                "INSERT INTO domains (id, name, created_ms) VALUES (?1, ?2, ?3)",
                params![d.id.0, d.name, d.created_ms],
            )
            .map_err(|e| match db_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("domain {}", d.name)),
                other => other,
            })?;
            Ok(OpResult::Done)
        }
        Op::RemoveDomain(id) => {
            if exists(
                c,
                "SELECT 1 FROM principals WHERE domain_id = ?1 LIMIT 1",
                [id.0],
            )? || exists(
                c,
                "SELECT 1 FROM aliases WHERE domain_id = ?1 LIMIT 1",
                [id.0],
            )? {
                return Err(StoreError::Refused(
                    "the domain still has accounts or aliases; remove them first".into(),
                ));
            }
            c.execute("DELETE FROM dkim_keys WHERE domain_id = ?1", [id.0])?;
            let n = c.execute("DELETE FROM domains WHERE id = ?1", [id.0])?;
            check_changed(n, || format!("domain {id}"))?;
            Ok(OpResult::Done)
        }
        Op::CreatePrincipal(p) => {
            if !exists(c, "SELECT 1 FROM domains WHERE id = ?1", [p.domain.0])? {
                return Err(StoreError::NotFound(format!("domain {}", p.domain)));
            }
            if exists(
                c,
                "SELECT 1 FROM aliases WHERE domain_id = ?1 AND local_part = ?2 LIMIT 1",
                params![p.domain.0, p.local_part],
            )? {
                return Err(StoreError::Conflict(format!(
                    "{} is an alias",
                    p.local_part
                )));
            }
            c.execute(
                "INSERT INTO principals (id, domain_id, local_part, kind, display_name, quota_bytes, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    p.id.0,
                    p.domain.0,
                    p.local_part,
                    p.kind.as_str(),
                    p.display_name,
                    p.quota_bytes.map(|q| q.min(i64::MAX as u64) as i64),
                    p.created_ms
                ],
            )
            .map_err(|e| match db_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("{} exists", p.local_part)),
                other => other,
            })?;
            Ok(OpResult::Done)
        }
        Op::RemovePrincipal(id) => {
            if !exists(c, "SELECT 1 FROM principals WHERE id = ?1", [id.0])? {
                return Err(StoreError::NotFound(format!("principal {id}")));
            }
            c.execute(
                "DELETE FROM mailbox_acl WHERE account_id = ?1 OR grantee_id = ?1",
                [id.0],
            )?;
            c.execute(
                "DELETE FROM mailbox_messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?1)",
                [id.0],
            )?;
            c.execute("DELETE FROM messages WHERE account_id = ?1", [id.0])?;
            c.execute("DELETE FROM mailboxes WHERE account_id = ?1", [id.0])?;
            c.execute(
                "DELETE FROM dav_shares WHERE account_id = ?1 OR grantee_id = ?1",
                [id.0],
            )?;
            c.execute("DELETE FROM dav_resources WHERE account_id = ?1", [id.0])?;
            c.execute("DELETE FROM dav_collections WHERE account_id = ?1", [id.0])?;
            c.execute("DELETE FROM journal WHERE account_id = ?1", [id.0])?;
            c.execute("DELETE FROM principals WHERE id = ?1", [id.0])?;
            Ok(OpResult::Done)
        }
        Op::SetQuota {
            principal,
            quota_bytes,
        } => {
            let n = c.execute(
                "UPDATE principals SET quota_bytes = ?2 WHERE id = ?1",
                params![
                    principal.0,
                    quota_bytes.map(|q| q.min(i64::MAX as u64) as i64)
                ],
            )?;
            check_changed(n, || format!("principal {principal}"))?;
            Ok(OpResult::Done)
        }
        Op::AddCredential(cred) => {
            if cred.kind == CredentialKind::Password {
                return Err(StoreError::Refused(
                    "the main password is set with SetPassword".into(),
                ));
            }
            insert_credential(c, cred)?;
            Ok(OpResult::Done)
        }
        Op::RemoveCredential(id) => {
            let n = c.execute("DELETE FROM credentials WHERE id = ?1", [id.0])?;
            check_changed(n, || format!("credential {id}"))?;
            Ok(OpResult::Done)
        }
        Op::SetPassword {
            principal,
            credential,
        } => {
            c.execute(
                "DELETE FROM credentials WHERE principal_id = ?1 AND kind = 'password'",
                [principal.0],
            )?;
            let mut cred = credential.clone();
            cred.principal = *principal;
            cred.kind = CredentialKind::Password;
            insert_credential(c, &cred)?;
            Ok(OpResult::Done)
        }
        Op::AddAlias(a) => {
            if !exists(c, "SELECT 1 FROM domains WHERE id = ?1", [a.domain.0])? {
                return Err(StoreError::NotFound(format!("domain {}", a.domain)));
            }
            if exists(
                c,
                "SELECT 1 FROM principals WHERE domain_id = ?1 AND local_part = ?2",
                params![a.domain.0, a.local_part],
            )? {
                return Err(StoreError::Conflict(format!(
                    "{} is an account",
                    a.local_part
                )));
            }
            c.execute(
                "INSERT INTO aliases (id, domain_id, local_part, target, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![a.id.0, a.domain.0, a.local_part, a.target, a.created_ms],
            )
            .map_err(|e| match db_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("alias {} → {}", a.local_part, a.target)),
                other => other,
            })?;
            Ok(OpResult::Done)
        }
        Op::RemoveAlias(id) => {
            let n = c.execute("DELETE FROM aliases WHERE id = ?1", [id.0])?;
            check_changed(n, || format!("alias {id}"))?;
            Ok(OpResult::Done)
        }
        Op::AddGroupMember { group, member } => {
            require_group(c, *group, "only a group has members")?;
            c.execute(
                "INSERT INTO group_members (group_id, member) VALUES (?1, ?2)",
                params![group.0, member],
            )
            .map_err(|e| match db_err(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("{member} is already a member"))
                }
                other => other,
            })?;
            Ok(OpResult::Done)
        }
        Op::RemoveGroupMember { group, member } => {
            let n = c.execute(
                "DELETE FROM group_members WHERE group_id = ?1 AND member = ?2",
                params![group.0, member],
            )?;
            check_changed(n, || format!("member {member}"))?;
            Ok(OpResult::Done)
        }
        Op::SetGroupSenders { group, senders } => {
            require_group(c, *group, "not a group")?;
            match senders {
                Some(s) => c.execute(
                    "INSERT INTO group_settings (group_id, senders) VALUES (?1, ?2)
                     ON CONFLICT (group_id) DO UPDATE SET senders = excluded.senders",
                    params![group.0, s],
                )?,
                None => c.execute("DELETE FROM group_settings WHERE group_id = ?1", [group.0])?,
            };
            Ok(OpResult::Done)
        }
        Op::CreateMailbox(m) => {
            let last: Option<i64> = c
                .query_row(
                    "SELECT last_uid_validity FROM principals WHERE id = ?1",
                    [m.account.0],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(last) = last else {
                return Err(StoreError::NotFound(format!("principal {}", m.account)));
            };
            // RFC 9051 §2.3.1.1: a name reused for a new mailbox must get a new
            // UIDVALIDITY. Time-based, and always above the account's last one.
            let now_s = (crate::now_ms() / 1000).clamp(1, u32::MAX as i64);
            let uid_validity = now_s.max(last + 1);
            if uid_validity > u32::MAX as i64 {
                return Err(StoreError::Refused("UIDVALIDITY space exhausted".into()));
            }
            c.execute(
                "UPDATE principals SET last_uid_validity = ?2 WHERE id = ?1",
                params![m.account.0, uid_validity],
            )?;
            let modseq = next_modseq(c, m.account)?;
            c.execute(
                "INSERT INTO mailboxes (id, account_id, name, special_use, uid_validity, uid_next, highest_modseq, subscribed, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8)",
                params![
                    m.id.0,
                    m.account.0,
                    m.name,
                    m.special_use.map(|s| s.as_str()),
                    uid_validity,
                    modseq as i64,
                    m.subscribed,
                    m.created_ms
                ],
            )
            .map_err(|e| match db_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("mailbox {}", m.name)),
                other => other,
            })?;
            journal(
                c,
                notices,
                m.account,
                modseq,
                ChangeKind::MailboxCreated,
                Some(m.id),
                None,
                None,
            )?;
            Ok(OpResult::MailboxCreated {
                uid_validity: uid_validity as u32,
            })
        }
        Op::RenameMailbox {
            account,
            mailbox,
            name,
        } => {
            mailbox_of(c, *account, *mailbox)?;
            let modseq = next_modseq(c, *account)?;
            c.execute(
                "UPDATE mailboxes SET name = ?2, highest_modseq = ?3 WHERE id = ?1",
                params![mailbox.0, name, modseq as i64],
            )
            .map_err(|e| match db_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("mailbox {name}")),
                other => other,
            })?;
            journal(
                c,
                notices,
                *account,
                modseq,
                ChangeKind::MailboxRenamed,
                Some(*mailbox),
                None,
                None,
            )?;
            Ok(OpResult::Done)
        }
        Op::SetSubscribed {
            account,
            mailbox,
            subscribed,
        } => {
            mailbox_of(c, *account, *mailbox)?;
            c.execute(
                "UPDATE mailboxes SET subscribed = ?2 WHERE id = ?1",
                params![mailbox.0, subscribed],
            )?;
            Ok(OpResult::Done)
        }
        Op::SetMailboxAcl {
            account,
            mailbox,
            grantee,
            rights,
        } => {
            mailbox_of(c, *account, *mailbox)?;
            if !exists(c, "SELECT 1 FROM principals WHERE id = ?1", [grantee.0])? {
                return Err(StoreError::NotFound(format!("principal {grantee}")));
            }
            if rights.is_empty() {
                c.execute(
                    "DELETE FROM mailbox_acl WHERE mailbox_id = ?1 AND grantee_id = ?2",
                    params![mailbox.0, grantee.0],
                )?;
            } else {
                c.execute(
                    "INSERT INTO mailbox_acl (mailbox_id, account_id, grantee_id, rights)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (mailbox_id, grantee_id) DO UPDATE SET rights = excluded.rights",
                    params![mailbox.0, account.0, grantee.0, rights],
                )?;
            }
            Ok(OpResult::Done)
        }
        Op::DeleteMailbox { account, mailbox } => {
            mailbox_of(c, *account, *mailbox)?;
            c.execute("DELETE FROM mailbox_acl WHERE mailbox_id = ?1", [mailbox.0])?;
            let uids: Vec<i64> = c
                .prepare("SELECT uid FROM mailbox_messages WHERE mailbox_id = ?1 ORDER BY uid")?
                .query_map([mailbox.0], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for uid in uids {
                expunge_one(c, notices, *account, *mailbox, uid as u32, false)?;
            }
            c.execute("DELETE FROM mailboxes WHERE id = ?1", [mailbox.0])?;
            let modseq = next_modseq(c, *account)?;
            journal(
                c,
                notices,
                *account,
                modseq,
                ChangeKind::MailboxDeleted,
                Some(*mailbox),
                None,
                None,
            )?;
            Ok(OpResult::Done)
        }
        Op::AppendMessage {
            message,
            mailbox,
            flags,
            keywords,
        } => {
            let account = message.account;
            let mb = mailbox_of(c, account, *mailbox)?;
            let (quota, used): (Option<i64>, i64) = c
                .prepare_cached("SELECT quota_bytes, used_bytes FROM principals WHERE id = ?1")?
                .query_row([account.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
            // A copy (the record exists) counts the stored size, not the request's.
            let stored: Option<i64> = c
                .prepare_cached("SELECT size FROM messages WHERE id = ?1 AND account_id = ?2")?
                .query_row(params![message.id.0, account.0], |r| r.get(0))
                .optional()?;
            let have = stored.is_some();
            let size = stored.map(|s| s.max(0) as u64).unwrap_or(message.blob.size);
            if let Some(limit) = quota {
                let (limit, used) = (limit.max(0) as u64, used.max(0) as u64);
                if used.saturating_add(size) > limit {
                    return Err(StoreError::QuotaExceeded { used, size, limit });
                }
            }
            if mb.uid_next == u32::MAX {
                return Err(StoreError::Refused("the mailbox has used every UID".into()));
            }
            if !have {
                c.prepare_cached(
                    "INSERT INTO messages (id, account_id, blob_hash, size, received_ms, thread_id, message_id_hdr, meta)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    message.id.0,
                    account.0,
                    message.blob.hash,
                    size as i64,
                    message.received_ms,
                    message.thread_id,
                    message.meta.envelope.message_id,
                    to_json(&message.meta)?
                ])?;
            }
            let uid = mb.uid_next;
            let modseq = next_modseq(c, account)?;
            c.prepare_cached(
                "INSERT INTO mailbox_messages (mailbox_id, uid, message_id, flags, keywords, modseq, saved_ms, size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                mailbox.0,
                uid as i64,
                message.id.0,
                flags.0 as i64,
                to_json(keywords)?,
                modseq as i64,
                crate::now_ms(),
                size as i64
            ])?;
            c.prepare_cached(
                "UPDATE mailboxes SET uid_next = ?2, highest_modseq = ?3 WHERE id = ?1",
            )?
            .execute(params![mailbox.0, uid as i64 + 1, modseq as i64])?;
            c.prepare_cached(
                "UPDATE principals SET used_bytes = used_bytes + ?2, message_count = message_count + 1 WHERE id = ?1",
            )?
            .execute(params![account.0, size as i64])?;
            journal(
                c,
                notices,
                account,
                modseq,
                ChangeKind::MessageAdded,
                Some(*mailbox),
                Some(message.id),
                Some(uid),
            )?;
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
            mailbox_of(c, *account, *mailbox)?;
            let mut changed = Vec::new();
            let mut skipped = Vec::new();
            let mut last_modseq = None;
            for uid in crate::ops::unique_uids(uids) {
                let row = c
                    .prepare_cached(
                        "SELECT flags, keywords, modseq FROM mailbox_messages WHERE mailbox_id = ?1 AND uid = ?2",
                    )?
                    .query_row(params![mailbox.0, uid as i64], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                    })
                    .optional()?;
                let Some((old_flags, old_kw, old_modseq)) = row else {
                    continue;
                };
                if let Some(limit) = unchanged_since {
                    if old_modseq as u64 > *limit {
                        skipped.push(uid);
                        continue;
                    }
                }
                let old_flags = Flags(old_flags as u32);
                let old_kw: Vec<String> = serde_json::from_str(&old_kw)
                    .map_err(|e| StoreError::Invalid(format!("keywords: {e}")))?;
                let (new_flags, new_kw) = crate::ops::apply_flag_action(
                    old_flags, &old_kw, *action, *flags, keywords, *scope,
                );
                if new_flags == old_flags && new_kw == old_kw {
                    continue;
                }
                let modseq = next_modseq(c, *account)?;
                c.prepare_cached(
                    "UPDATE mailbox_messages SET flags = ?3, keywords = ?4, modseq = ?5 WHERE mailbox_id = ?1 AND uid = ?2",
                )?
                .execute(params![mailbox.0, uid as i64, new_flags.0 as i64, to_json(&new_kw)?, modseq as i64])?;
                journal(
                    c,
                    notices,
                    *account,
                    modseq,
                    ChangeKind::FlagsChanged,
                    Some(*mailbox),
                    None,
                    Some(uid),
                )?;
                changed.push((uid, modseq));
                last_modseq = Some(modseq);
            }
            if let Some(m) = last_modseq {
                c.prepare_cached("UPDATE mailboxes SET highest_modseq = ?2 WHERE id = ?1")?
                    .execute(params![mailbox.0, m as i64])?;
            }
            Ok(OpResult::FlagsStored { changed, skipped })
        }
        Op::Expunge {
            account,
            mailbox,
            uids,
            only_deleted,
        } => {
            mailbox_of(c, *account, *mailbox)?;
            let mut done = Vec::new();
            for uid in crate::ops::unique_uids(uids) {
                if expunge_one(c, notices, *account, *mailbox, uid, *only_deleted)? {
                    done.push(uid);
                }
            }
            Ok(OpResult::Expunged { uids: done })
        }
        Op::AppendLedger(record) => {
            // Inside the write transaction (BEGIN IMMEDIATE), so no other process can
            // append between reading the head and inserting after it.
            let head: Option<(i64, String)> = c
                .prepare_cached("SELECT seq, hash FROM ledger_head WHERE id = 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (seq, prev) = match head {
                Some((s, h)) => (s as u64 + 1, h),
                None => (1, ledger::GENESIS.to_string()),
            };
            let json = ledger::canonical(record);
            let hash = ledger::entry_hash(seq, &prev, &json);
            let json = String::from_utf8(json).map_err(|e| StoreError::Invalid(e.to_string()))?;
            c.prepare_cached(
                "INSERT INTO ledger (seq, record, prev_hash, hash) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![seq as i64, json, prev, hash])?;
            c.prepare_cached(
                "INSERT INTO ledger_head (id, seq, hash) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            )?
            .execute(params![seq as i64, hash])?;
            Ok(OpResult::LedgerAppended { seq, hash })
        }
        Op::PutBlob { hash, data } => {
            if !crate::blob::valid_hash(hash) || crate::blob::hash_bytes(data) != *hash {
                return Err(StoreError::Invalid(format!(
                    "blob {hash:?}: the bytes do not have that hash"
                )));
            }
            c.prepare_cached(
                "INSERT INTO inline_blobs (hash, data) VALUES (?1, ?2) ON CONFLICT (hash) DO NOTHING",
            )?
            .execute(params![hash, &data[..]])?;
            Ok(OpResult::Done)
        }
        Op::DeleteBlob(hash) => {
            c.prepare_cached("DELETE FROM inline_blobs WHERE hash = ?1")?
                .execute([hash])?;
            Ok(OpResult::Done)
        }
        Op::Enqueue { .. }
        | Op::ClaimQueued { .. }
        | Op::UpdateQueued { .. }
        | Op::RetryQueued { .. }
        | Op::RemoveQueued(_)
        | Op::AddDkimKey(_)
        | Op::RemoveDkimKey { .. } => super::queue::apply(c, op),
        Op::CreateDavCollection(_)
        | Op::UpdateDavCollection { .. }
        | Op::DeleteDavCollection { .. }
        | Op::PutDavResource { .. }
        | Op::DeleteDavResource { .. }
        | Op::SetDavShare { .. } => super::dav::apply(c, op, notices),
        Op::PutStsPolicy(_)
        | Op::RemoveStsPolicy(_)
        | Op::AddTlsRpt(_)
        | Op::ClaimTlsRpt { .. }
        | Op::FinishTlsRpt { .. } => super::outbound_tls::apply(c, op),
    }
}

/// `group` exists and is a group (else NotFound / Refused with `refusal`).
fn require_group(c: &Connection, group: PrincipalId, refusal: &str) -> Result<()> {
    let kind: Option<String> = c
        .query_row(
            "SELECT kind FROM principals WHERE id = ?1",
            [group.0],
            |r| r.get(0),
        )
        .optional()?;
    match kind.as_deref() {
        None => Err(StoreError::NotFound(format!("group {group}"))),
        Some("group") => Ok(()),
        Some(_) => Err(StoreError::Refused(refusal.into())),
    }
}
