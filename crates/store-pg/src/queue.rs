//! The outbound queue and DKIM keys in PostgreSQL. Claims take rows with
//! `FOR UPDATE SKIP LOCKED`, so nodes claiming at the same time each get different
//! recipients without waiting for each other.

use postern_store::*;
use tokio_postgres::Row;

use crate::apply::{Batch, WResult};
use crate::error::pg_err;
use crate::rows::{col, u64_of};

const MESSAGE_COLS: &str = "id, blob_hash, size, sender, account_id, envid, ret, requiretls, \
     smtputf8, eight_bit, created_ms, expires_ms";
const RECIPIENT_COLS: &str = "message_id, idx, address, domain, orcpt, notify, state, attempts, \
     next_attempt_ms, last_status, last_error, remote_host, delay_notified, lease_owner, \
     lease_until_ms";

fn message_row(r: &Row) -> Result<QueuedMessage> {
    Ok(QueuedMessage {
        id: QueueId(col(r, 0)?),
        blob: BlobRef {
            hash: col(r, 1)?,
            size: u64_of(col(r, 2)?),
        },
        sender: col(r, 3)?,
        account: col::<Option<i64>>(r, 4)?.map(PrincipalId),
        envid: col(r, 5)?,
        ret: col(r, 6)?,
        requiretls: col(r, 7)?,
        smtputf8: col(r, 8)?,
        eight_bit: col(r, 9)?,
        created_ms: col(r, 10)?,
        expires_ms: col(r, 11)?,
    })
}

fn recipient_row(r: &Row) -> Result<QueuedRecipient> {
    let state: String = col(r, 6)?;
    Ok(QueuedRecipient {
        message: QueueId(col(r, 0)?),
        idx: col::<i32>(r, 1)?.max(0) as u32,
        address: col(r, 2)?,
        domain: col(r, 3)?,
        orcpt: col(r, 4)?,
        notify: col(r, 5)?,
        // An unknown state (written by a newer build) reads as failed: never re-sent.
        state: RecipientState::parse(&state).unwrap_or(RecipientState::Failed),
        attempts: col::<i32>(r, 7)?.max(0) as u32,
        next_attempt_ms: col(r, 8)?,
        last_status: col(r, 9)?,
        last_error: col(r, 10)?,
        remote_host: col(r, 11)?,
        delay_notified: col(r, 12)?,
        lease_owner: col(r, 13)?,
        lease_until_ms: col(r, 14)?,
    })
}

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl Batch<'_, '_> {
    pub(crate) async fn apply_queue(&mut self, op: &Op) -> WResult<OpResult> {
        match op {
            Op::Enqueue {
                message: m,
                recipients,
            } => {
                if recipients.is_empty() {
                    return Err(
                        StoreError::Invalid("a queued message needs recipients".into()).into(),
                    );
                }
                let size = i64::try_from(m.blob.size).unwrap_or(i64::MAX);
                let account = m.account.map(|a| a.0);
                self.exec(
                    &format!(
                        "INSERT INTO queue_messages ({MESSAGE_COLS})
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                    ),
                    &[
                        &m.id.0,
                        &m.blob.hash,
                        &size,
                        &m.sender,
                        &account,
                        &m.envid,
                        &m.ret,
                        &m.requiretls,
                        &m.smtputf8,
                        &m.eight_bit,
                        &m.created_ms,
                        &m.expires_ms,
                    ],
                )
                .await?;
                let sql = format!(
                    "INSERT INTO queue_recipients ({RECIPIENT_COLS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                );
                for r in recipients {
                    let idx = i32_of(r.idx);
                    let attempts = i32_of(r.attempts);
                    self.exec(
                        &sql,
                        &[
                            &m.id.0,
                            &idx,
                            &r.address,
                            &r.domain,
                            &r.orcpt,
                            &r.notify,
                            &r.state.as_str(),
                            &attempts,
                            &r.next_attempt_ms,
                            &r.last_status,
                            &r.last_error,
                            &r.remote_host,
                            &r.delay_notified,
                            &r.lease_owner,
                            &r.lease_until_ms,
                        ],
                    )
                    .await?;
                }
                Ok(OpResult::Done)
            }
            Op::ClaimQueued {
                owner,
                now_ms,
                lease_until_ms,
                limit,
            } => {
                let limit = i64::from(*limit);
                let rows = self
                    .rows(
                        "WITH due AS (
                           SELECT message_id, idx FROM queue_recipients
                           WHERE state = 'queued' AND next_attempt_ms <= $1
                             AND lease_until_ms <= $1
                             AND message_id IN (
                               SELECT message_id FROM queue_recipients
                               WHERE state = 'queued' AND next_attempt_ms <= $1
                                 AND lease_until_ms <= $1
                               GROUP BY message_id
                               ORDER BY MIN(next_attempt_ms), message_id LIMIT $4)
                           FOR UPDATE SKIP LOCKED)
                         UPDATE queue_recipients q SET lease_owner = $2, lease_until_ms = $3
                         FROM due WHERE q.message_id = due.message_id AND q.idx = due.idx
                         RETURNING q.message_id, q.idx",
                        &[now_ms, owner, lease_until_ms, &limit],
                    )
                    .await?;
                let mut claimed = rows
                    .iter()
                    .map(|r| Ok((QueueId(col(r, 0)?), col::<i32>(r, 1)?.max(0) as u32)))
                    .collect::<Result<Vec<_>>>()?;
                claimed.sort();
                Ok(OpResult::Claimed(claimed))
            }
            Op::UpdateQueued { owner, updates } => {
                let mut changed = Vec::new();
                let mut messages: Vec<QueueId> = Vec::new();
                for u in updates {
                    let idx = i32_of(u.idx);
                    let attempts = i32_of(u.attempts);
                    let n = self
                        .exec(
                            "UPDATE queue_recipients SET state = $3, attempts = $4,
                               next_attempt_ms = $5, last_status = $6, last_error = $7,
                               remote_host = $8, delay_notified = $9,
                               lease_owner = NULL, lease_until_ms = 0
                             WHERE message_id = $1 AND idx = $2
                               AND ($10::text IS NULL OR (lease_owner = $10 AND state = 'queued'))",
                            &[
                                &u.message.0,
                                &idx,
                                &u.state.as_str(),
                                &attempts,
                                &u.next_attempt_ms,
                                &u.last_status,
                                &u.last_error,
                                &u.remote_host,
                                &u.delay_notified,
                                owner,
                            ],
                        )
                        .await?;
                    if n > 0 {
                        changed.push(u.idx);
                    }
                    if !messages.contains(&u.message) {
                        messages.push(u.message);
                    }
                }
                let mut removed = false;
                for id in messages {
                    // Only when none is queued: the recipients first (foreign key), then
                    // the message.
                    let left = self
                        .opt(
                            "SELECT 1 FROM queue_recipients WHERE message_id = $1 AND state = 'queued' LIMIT 1",
                            &[&id.0],
                        )
                        .await?;
                    if left.is_none() {
                        self.exec(
                            "DELETE FROM queue_recipients WHERE message_id = $1",
                            &[&id.0],
                        )
                        .await?;
                        let n = self
                            .exec("DELETE FROM queue_messages WHERE id = $1", &[&id.0])
                            .await?;
                        removed |= n > 0;
                    }
                }
                Ok(OpResult::QueueUpdated { changed, removed })
            }
            Op::RetryQueued { message, now_ms } => {
                let n = self
                    .exec(
                        "UPDATE queue_recipients SET next_attempt_ms = $2
                         WHERE message_id = $1 AND state = 'queued' AND lease_until_ms <= $2",
                        &[&message.0, now_ms],
                    )
                    .await?;
                Ok(OpResult::Retried(n as usize))
            }
            Op::RemoveQueued(id) => {
                self.exec(
                    "DELETE FROM queue_recipients WHERE message_id = $1",
                    &[&id.0],
                )
                .await?;
                let n = self
                    .exec("DELETE FROM queue_messages WHERE id = $1", &[&id.0])
                    .await?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("queued message {id}")).into());
                }
                Ok(OpResult::Done)
            }
            Op::AddDkimKey(k) => {
                let n = self
                    .exec(
                        "INSERT INTO dkim_keys (domain_id, selector, algorithm, private_der, created_ms)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        &[
                            &k.domain.0,
                            &k.selector,
                            &k.algorithm,
                            &k.private_der,
                            &k.created_ms,
                        ],
                    )
                    .await?;
                if n == 0 {
                    return Err(
                        StoreError::Conflict(format!("DKIM selector {}", k.selector)).into(),
                    );
                }
                Ok(OpResult::Done)
            }
            Op::RemoveDkimKey { domain, selector } => {
                let n = self
                    .exec(
                        "DELETE FROM dkim_keys WHERE domain_id = $1 AND selector = $2",
                        &[&domain.0, selector],
                    )
                    .await?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("DKIM selector {selector}")).into());
                }
                Ok(OpResult::Done)
            }
            other => Err(StoreError::Invalid(format!("not a queue operation: {other:?}")).into()),
        }
    }
}

/// Two statements, one snapshot (REPEATABLE READ, read only).
async fn snapshot(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg_err)
}

async fn recipients_of(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[i64],
) -> Result<Vec<QueuedRecipient>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {RECIPIENT_COLS} FROM queue_recipients WHERE message_id = ANY($1)
                 ORDER BY message_id, idx"
            ),
            &[&ids],
        )
        .await
        .map_err(pg_err)?;
    rows.iter().map(recipient_row).collect()
}

fn group(
    messages: Vec<QueuedMessage>,
    recipients: Vec<QueuedRecipient>,
) -> Vec<(QueuedMessage, Vec<QueuedRecipient>)> {
    let mut out: Vec<(QueuedMessage, Vec<QueuedRecipient>)> =
        messages.into_iter().map(|m| (m, Vec::new())).collect();
    for r in recipients {
        if let Some((_, list)) = out.iter_mut().find(|(m, _)| m.id == r.message) {
            list.push(r);
        }
    }
    out
}

pub(crate) async fn queued(
    client: &mut deadpool_postgres::Client,
    id: QueueId,
) -> Result<Option<(QueuedMessage, Vec<QueuedRecipient>)>> {
    let tx = snapshot(client).await?;
    let row = tx
        .query_opt(
            &format!("SELECT {MESSAGE_COLS} FROM queue_messages WHERE id = $1"),
            &[&id.0],
        )
        .await
        .map_err(pg_err)?;
    let Some(row) = row else { return Ok(None) };
    let m = message_row(&row)?;
    let r = recipients_of(&tx, &[m.id.0]).await?;
    tx.commit().await.map_err(pg_err)?;
    Ok(Some((m, r)))
}

pub(crate) async fn queue(
    client: &mut deadpool_postgres::Client,
    limit: usize,
) -> Result<Vec<(QueuedMessage, Vec<QueuedRecipient>)>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let tx = snapshot(client).await?;
    let rows = tx
        .query(
            &format!("SELECT {MESSAGE_COLS} FROM queue_messages ORDER BY created_ms, id LIMIT $1"),
            &[&limit],
        )
        .await
        .map_err(pg_err)?;
    let messages = rows.iter().map(message_row).collect::<Result<Vec<_>>>()?;
    let ids: Vec<i64> = messages.iter().map(|m| m.id.0).collect();
    let recipients = recipients_of(&tx, &ids).await?;
    tx.commit().await.map_err(pg_err)?;
    Ok(group(messages, recipients))
}

pub(crate) async fn stats(client: &deadpool_postgres::Client) -> Result<QueueStats> {
    let r = client
        .query_one(
            "SELECT (SELECT COUNT(*) FROM queue_messages),
                    (SELECT MIN(created_ms) FROM queue_messages),
                    (SELECT COUNT(*) FROM queue_recipients WHERE state = 'queued'),
                    (SELECT MIN(GREATEST(next_attempt_ms, lease_until_ms)) FROM queue_recipients
                      WHERE state = 'queued')",
            &[],
        )
        .await
        .map_err(pg_err)?;
    Ok(QueueStats {
        messages: u64_of(col(&r, 0)?),
        oldest_created_ms: col(&r, 1)?,
        queued_recipients: u64_of(col(&r, 2)?),
        next_due_ms: col(&r, 3)?,
    })
}

pub(crate) async fn dkim_keys(
    client: &deadpool_postgres::Client,
    domain: DomainId,
) -> Result<Vec<DkimKeyRecord>> {
    let rows = client
        .query(
            "SELECT domain_id, selector, algorithm, private_der, created_ms FROM dkim_keys
             WHERE domain_id = $1 ORDER BY created_ms, selector",
            &[&domain.0],
        )
        .await
        .map_err(pg_err)?;
    rows.iter()
        .map(|r| {
            Ok(DkimKeyRecord {
                domain: DomainId(col(r, 0)?),
                selector: col(r, 1)?,
                algorithm: col(r, 2)?,
                private_der: col(r, 3)?,
                created_ms: col(r, 4)?,
            })
        })
        .collect()
}
