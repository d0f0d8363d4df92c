//! The outbound queue and DKIM keys in the embedded store: the queue ops applied inside the
//! writer's transaction, and the reads.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Result, StoreError};
use crate::model::{BlobRef, DomainId, PrincipalId};
use crate::ops::{Op, OpResult};
use crate::queue::*;

const MESSAGE_COLS: &str = "id, blob_hash, size, sender, account_id, envid, ret, requiretls, \
     smtputf8, eight_bit, created_ms, expires_ms";
const RECIPIENT_COLS: &str = "message_id, idx, address, domain, orcpt, notify, state, attempts, \
     next_attempt_ms, last_status, last_error, remote_host, delay_notified, lease_owner, \
     lease_until_ms";

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedMessage> {
    Ok(QueuedMessage {
        id: QueueId(r.get(0)?),
        blob: BlobRef {
            hash: r.get(1)?,
            size: r.get::<_, i64>(2)?.max(0) as u64,
        },
        sender: r.get(3)?,
        account: r.get::<_, Option<i64>>(4)?.map(PrincipalId),
        envid: r.get(5)?,
        ret: r.get(6)?,
        requiretls: r.get(7)?,
        smtputf8: r.get(8)?,
        eight_bit: r.get(9)?,
        created_ms: r.get(10)?,
        expires_ms: r.get(11)?,
    })
}

fn recipient_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedRecipient> {
    let state: String = r.get(6)?;
    Ok(QueuedRecipient {
        message: QueueId(r.get(0)?),
        idx: r.get(1)?,
        address: r.get(2)?,
        domain: r.get(3)?,
        orcpt: r.get(4)?,
        notify: r.get(5)?,
        // An unknown state (written by a newer build) reads as failed: never re-sent.
        state: RecipientState::parse(&state).unwrap_or(RecipientState::Failed),
        attempts: r.get(7)?,
        next_attempt_ms: r.get(8)?,
        last_status: r.get(9)?,
        last_error: r.get(10)?,
        remote_host: r.get(11)?,
        delay_notified: r.get(12)?,
        lease_owner: r.get(13)?,
        lease_until_ms: r.get(14)?,
    })
}

pub(super) fn apply(c: &Connection, op: &Op) -> Result<OpResult> {
    match op {
        Op::Enqueue {
            message: m,
            recipients,
        } => {
            if recipients.is_empty() {
                return Err(StoreError::Invalid(
                    "a queued message needs recipients".into(),
                ));
            }
            c.prepare_cached(&format!(
                "INSERT INTO queue_messages ({MESSAGE_COLS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?
            .execute(params![
                m.id.0,
                m.blob.hash,
                m.blob.size as i64,
                m.sender,
                m.account.map(|a| a.0),
                m.envid,
                m.ret,
                m.requiretls,
                m.smtputf8,
                m.eight_bit,
                m.created_ms,
                m.expires_ms
            ])?;
            let mut st = c.prepare_cached(&format!(
                "INSERT INTO queue_recipients ({RECIPIENT_COLS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ))?;
            for r in recipients {
                st.execute(params![
                    m.id.0,
                    r.idx,
                    r.address,
                    r.domain,
                    r.orcpt,
                    r.notify,
                    r.state.as_str(),
                    r.attempts,
                    r.next_attempt_ms,
                    r.last_status,
                    r.last_error,
                    r.remote_host,
                    r.delay_notified,
                    r.lease_owner,
                    r.lease_until_ms
                ])?;
            }
            Ok(OpResult::Done)
        }
        Op::ClaimQueued {
            owner,
            now_ms,
            lease_until_ms,
            limit,
        } => {
            let ids: Vec<i64> = c
                .prepare_cached(
                    "SELECT message_id FROM queue_recipients
                     WHERE state = 'queued' AND next_attempt_ms <= ?1 AND lease_until_ms <= ?1
                     GROUP BY message_id ORDER BY MIN(next_attempt_ms), message_id LIMIT ?2",
                )?
                .query_map(params![now_ms, limit], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut claimed = Vec::new();
            let mut st = c.prepare_cached(
                "UPDATE queue_recipients SET lease_owner = ?1, lease_until_ms = ?2
                 WHERE message_id = ?3 AND state = 'queued' AND next_attempt_ms <= ?4
                   AND lease_until_ms <= ?4
                 RETURNING idx",
            )?;
            for id in ids {
                let idxs: Vec<u32> = st
                    .query_map(params![owner, lease_until_ms, id, now_ms], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                claimed.extend(idxs.into_iter().map(|i| (QueueId(id), i)));
            }
            claimed.sort();
            Ok(OpResult::Claimed(claimed))
        }
        Op::UpdateQueued { owner, updates } => {
            let mut st = c.prepare_cached(
                "UPDATE queue_recipients SET state = ?3, attempts = ?4, next_attempt_ms = ?5,
                   last_status = ?6, last_error = ?7, remote_host = ?8, delay_notified = ?9,
                   lease_owner = NULL, lease_until_ms = 0
                 WHERE message_id = ?1 AND idx = ?2
                   AND (?10 IS NULL OR (lease_owner = ?10 AND state = 'queued'))",
            )?;
            let mut changed = Vec::new();
            let mut messages: Vec<QueueId> = Vec::new();
            for u in updates {
                let n = st.execute(params![
                    u.message.0,
                    u.idx,
                    u.state.as_str(),
                    u.attempts,
                    u.next_attempt_ms,
                    u.last_status,
                    u.last_error,
                    u.remote_host,
                    u.delay_notified,
                    owner
                ])?;
                if n > 0 {
                    changed.push(u.idx);
                }
                if !messages.contains(&u.message) {
                    messages.push(u.message);
                }
            }
            let mut removed = false;
            for id in messages {
                removed |= remove_if_done(c, id)?;
            }
            Ok(OpResult::QueueUpdated { changed, removed })
        }
        Op::RetryQueued { message, now_ms } => {
            let n = c
                .prepare_cached(
                    "UPDATE queue_recipients SET next_attempt_ms = ?2
                     WHERE message_id = ?1 AND state = 'queued' AND lease_until_ms <= ?2",
                )?
                .execute(params![message.0, now_ms])?;
            Ok(OpResult::Retried(n))
        }
        Op::RemoveQueued(id) => {
            c.prepare_cached("DELETE FROM queue_recipients WHERE message_id = ?1")?
                .execute([id.0])?;
            let n = c
                .prepare_cached("DELETE FROM queue_messages WHERE id = ?1")?
                .execute([id.0])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("queued message {id}")));
            }
            Ok(OpResult::Done)
        }
        Op::AddDkimKey(k) => {
            let taken = c
                .query_row(
                    "SELECT 1 FROM dkim_keys WHERE domain_id = ?1 AND selector = ?2",
                    params![k.domain.0, k.selector],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if taken {
                return Err(StoreError::Conflict(format!(
                    "DKIM selector {}",
                    k.selector
                )));
            }
            c.execute(
                "INSERT INTO dkim_keys (domain_id, selector, algorithm, private_der, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    k.domain.0,
                    k.selector,
                    k.algorithm,
                    k.private_der,
                    k.created_ms
                ],
            )?;
            Ok(OpResult::Done)
        }
        Op::RemoveDkimKey { domain, selector } => {
            let n = c.execute(
                "DELETE FROM dkim_keys WHERE domain_id = ?1 AND selector = ?2",
                params![domain.0, selector],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("DKIM selector {selector}")));
            }
            Ok(OpResult::Done)
        }
        other => Err(StoreError::Invalid(format!(
            "not a queue operation: {other:?}"
        ))),
    }
}

/// Removes the message when none of its recipients is still queued.
fn remove_if_done(c: &Connection, id: QueueId) -> Result<bool> {
    let queued = c
        .prepare_cached(
            "SELECT 1 FROM queue_recipients WHERE message_id = ?1 AND state = 'queued' LIMIT 1",
        )?
        .query_row([id.0], |_| Ok(()))
        .optional()?
        .is_some();
    if queued {
        return Ok(false);
    }
    // The recipients first (foreign key), then the message.
    c.prepare_cached("DELETE FROM queue_recipients WHERE message_id = ?1")?
        .execute([id.0])?;
    let n = c
        .prepare_cached("DELETE FROM queue_messages WHERE id = ?1")?
        .execute([id.0])?;
    Ok(n > 0)
}

fn recipients_of(c: &Connection, id: i64) -> Result<Vec<QueuedRecipient>> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT {RECIPIENT_COLS} FROM queue_recipients WHERE message_id = ?1 ORDER BY idx"
        ))?
        .query_map([id], recipient_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(super) fn queued(
    c: &Connection,
    id: QueueId,
) -> Result<Option<(QueuedMessage, Vec<QueuedRecipient>)>> {
    let m = c
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLS} FROM queue_messages WHERE id = ?1"
        ))?
        .query_row([id.0], message_row)
        .optional()?;
    match m {
        Some(m) => {
            let r = recipients_of(c, m.id.0)?;
            Ok(Some((m, r)))
        }
        None => Ok(None),
    }
}

pub(super) fn queue(
    c: &Connection,
    limit: usize,
) -> Result<Vec<(QueuedMessage, Vec<QueuedRecipient>)>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let messages: Vec<QueuedMessage> = c
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLS} FROM queue_messages ORDER BY created_ms, id LIMIT ?1"
        ))?
        .query_map([limit], message_row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let r = recipients_of(c, m.id.0)?;
        out.push((m, r));
    }
    Ok(out)
}

pub(super) fn stats(c: &Connection) -> Result<QueueStats> {
    let (messages, oldest): (i64, Option<i64>) = c.query_row(
        "SELECT COUNT(*), MIN(created_ms) FROM queue_messages",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (queued, next): (i64, Option<i64>) = c.query_row(
        // A leased recipient is not due before its lease ends.
        "SELECT COUNT(*), MIN(MAX(next_attempt_ms, lease_until_ms)) FROM queue_recipients
         WHERE state = 'queued'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(QueueStats {
        messages: messages.max(0) as u64,
        queued_recipients: queued.max(0) as u64,
        oldest_created_ms: oldest,
        next_due_ms: next,
    })
}

pub(super) fn dkim_keys(c: &Connection, domain: DomainId) -> Result<Vec<DkimKeyRecord>> {
    let rows = c
        .prepare_cached(
            "SELECT domain_id, selector, algorithm, private_der, created_ms FROM dkim_keys
             WHERE domain_id = ?1 ORDER BY created_ms, selector",
        )?
        .query_map([domain.0], |r| {
            Ok(DkimKeyRecord {
                domain: DomainId(r.get(0)?),
                selector: r.get(1)?,
                algorithm: r.get(2)?,
                private_der: r.get(3)?,
                created_ms: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}
