//! The outbound queue as `core` offers it: submission puts external recipients in it
//! (through [`Core::submit`]), the delivery runner (crate `postern-outbound`) claims,
//! reads and settles it, operators list, retry and delete. Every settlement writes its
//! ledger entry in the same batch; DKIM keys are kept per domain.

use postern_store::*;
use serde_json::json;

use crate::error::{CoreError, Result};
use crate::{AdminSession, Core, Ctx};

/// How long a message may stay in the queue before its undelivered recipients fail
/// (`[outbound] max_queue_lifetime_secs`, RFC 5321 §4.5.4.1 suggests 4–5 days).
pub const DEFAULT_LIFETIME_MS: i64 = 5 * 86_400_000;

/// One recipient of another domain, as the submission client gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecipient {
    pub address: String,
    /// RFC 3461 ORCPT (`addr-type;xtext`) and NOTIFY, passed on to the next hop.
    pub orcpt: Option<String>,
    pub notify: Option<String>,
}

/// Envelope facts of a submission that travel with the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvelopeOptions {
    pub envid: Option<String>,
    /// `FULL` or `HDRS`.
    pub ret: Option<String>,
    pub requiretls: bool,
    pub smtputf8: bool,
    /// How long it may stay queued; `None` = [`DEFAULT_LIFETIME_MS`].
    pub lifetime_ms: Option<i64>,
}

/// A queue entry waiting for its blob (made before the blob is written).
#[derive(Debug, Clone)]
pub struct QueueParts {
    message: QueuedMessage,
    recipients: Vec<QueuedRecipient>,
}

impl QueueParts {
    /// The `Enqueue` op over the stored blob, the queue id and the recipient addresses.
    pub(crate) fn enqueue_op(&self, blob: &BlobRef) -> (Op, QueueId, Vec<String>) {
        let mut message = self.message.clone();
        message.blob = blob.clone();
        let addresses = self.recipients.iter().map(|r| r.address.clone()).collect();
        (
            Op::Enqueue {
                message,
                recipients: self.recipients.clone(),
            },
            self.message.id,
            addresses,
        )
    }
}

/// Most forward targets a report to a forwarding-only alias is queued to.
const MAX_RETURN_FORWARDS: usize = 10;

/// Whether the header section of `raw` (up to the first empty line) is all ASCII.
pub(crate) fn header_is_ascii(raw: &[u8]) -> bool {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len());
    raw[..end].is_ascii()
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

/// The queue entry for `recipients` (the blob is filled in when written).
pub fn queue_parts(
    sender: &str,
    account: Option<PrincipalId>,
    recipients: &[OutboundRecipient],
    envelope: &EnvelopeOptions,
    eight_bit: bool,
) -> QueueParts {
    let now = now_ms();
    let id = QueueId::random();
    QueueParts {
        message: QueuedMessage {
            id,
            blob: BlobRef {
                hash: String::new(),
                size: 0,
            },
            sender: sender.to_string(),
            account,
            envid: envelope.envid.clone(),
            ret: envelope.ret.clone(),
            requiretls: envelope.requiretls,
            smtputf8: envelope.smtputf8,
            eight_bit,
            created_ms: now,
            expires_ms: now + envelope.lifetime_ms.unwrap_or(DEFAULT_LIFETIME_MS),
        },
        recipients: dedup(recipients)
            .into_iter()
            .enumerate()
            .map(|(i, r)| QueuedRecipient {
                message: id,
                idx: u32::try_from(i).unwrap_or(u32::MAX),
                address: r.address.clone(),
                domain: domain_of(&r.address),
                orcpt: r.orcpt.clone(),
                notify: r.notify.clone(),
                state: RecipientState::Queued,
                attempts: 0,
                next_attempt_ms: now,
                last_status: None,
                last_error: None,
                remote_host: None,
                delay_notified: false,
                lease_owner: None,
                lease_until_ms: 0,
            })
            .collect(),
    }
}

/// Each address once (the domain compared without case, RFC 5321 §2.4), first kept.
fn dedup(recipients: &[OutboundRecipient]) -> Vec<&OutboundRecipient> {
    let mut seen: Vec<String> = Vec::new();
    recipients
        .iter()
        .filter(|r| {
            let key = match r.address.rsplit_once('@') {
                Some((l, d)) => format!("{l}@{}", d.to_ascii_lowercase()),
                None => r.address.clone(),
            };
            if seen.contains(&key) {
                false
            } else {
                seen.push(key);
                true
            }
        })
        .collect()
}

/// Octets above 127 anywhere in the message: it needs 8BITMIME at the next hop.
pub fn is_eight_bit(raw: &[u8]) -> bool {
    raw.iter().any(|b| *b >= 0x80)
}

/// A ledger fact the runner records with a settlement.
#[derive(Debug, Clone)]
pub struct QueueFact {
    /// `queue.deliver`, `queue.fail`, `queue.defer`, `queue.expire`, `queue.bounce`.
    pub action: &'static str,
    pub target: Option<String>,
    pub after: serde_json::Value,
}

/// The runner's identity in the ledger.
pub fn runner_ctx(node: &str) -> Ctx {
    Ctx {
        actor: Actor {
            account: None,
            role: Role::Service,
        },
        session: SessionInfo {
            protocol: "smtp-out".into(),
            remote: None,
            client_id: Some(node.to_string()),
            auth_method: None,
            session_id: None,
        },
    }
}

/// One queued message with what is needed to send it.
#[derive(Debug, Clone)]
pub struct QueueSummary {
    pub message: QueuedMessage,
    pub recipients: Vec<QueuedRecipient>,
}

impl Core {
    /// `queue_lifetime` in milliseconds.
    pub(crate) fn queue_lifetime_ms(&self) -> i64 {
        i64::try_from(self.settings.queue_lifetime.as_millis()).unwrap_or(DEFAULT_LIFETIME_MS)
    }

    /// Resolves when something was put in the queue on this node (other nodes find it
    /// when they poll).
    pub async fn queue_wakeup(&self) {
        self.queue_notify.notified().await
    }

    /// The DKIM keys of one of our domains (none for a domain we do not host).
    pub async fn dkim_keys_of(&self, domain: &str) -> Result<Vec<DkimKeyRecord>> {
        let name = domain.trim_end_matches('.').to_ascii_lowercase();
        match self.store.domain_by_name(&name).await? {
            Some(d) => Ok(self.store.dkim_keys(d.id).await?),
            None => Ok(Vec::new()),
        }
    }

    /// The cached MTA-STS policy of a domain (expired or not), shared by every node.
    pub async fn sts_policy(&self, domain: &str) -> Result<Option<StsPolicyRecord>> {
        Ok(self.store.sts_policy(domain).await?)
    }

    /// Caches a domain's MTA-STS policy (`None`: forgets it, for a `none` policy).
    pub async fn sts_policy_set(
        &self,
        domain: &str,
        policy: Option<StsPolicyRecord>,
    ) -> Result<()> {
        let op = match policy {
            Some(p) => Op::PutStsPolicy(p),
            None => Op::RemoveStsPolicy(domain.to_string()),
        };
        self.store.write(vec![op]).await?;
        Ok(())
    }

    /// Adds TLS outcomes to the report counters (RFC 8460).
    pub async fn tlsrpt_add(&self, counts: Vec<TlsRptCount>) -> Result<()> {
        if !counts.is_empty() {
            self.store.write(vec![Op::AddTlsRpt(counts)]).await?;
        }
        Ok(())
    }

    /// Leases (domain, day) TLS reports of days before `before_day` to `owner`.
    pub async fn tlsrpt_claim(
        &self,
        owner: &str,
        before_day: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>> {
        let now = now_ms();
        let r = self
            .store
            .write(vec![Op::ClaimTlsRpt {
                owner: owner.to_string(),
                before_day: before_day.to_string(),
                now_ms: now,
                lease_until_ms: now.saturating_add(lease_ms),
                limit,
            }])
            .await?;
        match r.into_iter().next() {
            Some(OpResult::TlsRptClaimed(c)) => Ok(c),
            other => Err(CoreError::Internal(format!(
                "unexpected claim result {other:?}"
            ))),
        }
    }

    /// The counters of one claimed (domain, day) report.
    pub async fn tlsrpt_counts(&self, domain: &str, day: &str) -> Result<Vec<TlsRptCount>> {
        Ok(self.store.tlsrpt_counts(domain, day).await?)
    }

    /// Marks a claimed report sent (its counters go), with its ledger entry.
    pub async fn tlsrpt_finish(
        &self,
        owner: &str,
        domain: &str,
        day: &str,
        report_id: &str,
        sent_to: &[String],
    ) -> Result<()> {
        let ctx = runner_ctx(owner);
        self.store
            .write(vec![
                Op::FinishTlsRpt {
                    owner: owner.to_string(),
                    domain: domain.to_string(),
                    day: day.to_string(),
                    now_ms: now_ms(),
                },
                Op::AppendLedger(Core::ledger_record(
                    &ctx,
                    "tlsrpt.send",
                    Some(domain),
                    vec![format!("tlsrpt:{report_id}")],
                    "ok",
                    None,
                    Some(json!({"domain": domain, "day": day, "report_id": report_id, "rua": sent_to})),
                )),
            ])
            .await?;
        Ok(())
    }

    /// Leases due recipients to `owner` (see `Op::ClaimQueued`).
    pub async fn queue_claim(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<(QueueId, u32)>> {
        let now = now_ms();
        let r = self
            .store
            .write(vec![Op::ClaimQueued {
                owner: owner.to_string(),
                now_ms: now,
                lease_until_ms: now + lease_ms,
                limit,
            }])
            .await?;
        match r.into_iter().next() {
            Some(OpResult::Claimed(c)) => Ok(c),
            other => Err(CoreError::Internal(format!(
                "unexpected claim result {other:?}"
            ))),
        }
    }

    pub async fn queued(&self, id: QueueId) -> Result<Option<QueueSummary>> {
        Ok(self
            .store
            .queued(id)
            .await?
            .map(|(message, recipients)| QueueSummary {
                message,
                recipients,
            }))
    }

    /// The message bytes of a queued message (checked against their hash).
    /// `NotFound` when the content is missing or damaged: no attempt can send it.
    pub async fn queued_blob(&self, message: &QueuedMessage) -> Result<Vec<u8>> {
        match self.blobs.get(&message.blob.hash).await {
            Ok(b) => Ok(b),
            Err(StoreError::CorruptBlob { hash, .. }) => {
                Err(CoreError::NotFound(format!("blob {hash} (damaged)")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records the outcome of an attempt: each recipient's new state with its ledger
    /// fact, in one batch. Only recipients this node still holds change (a recipient
    /// whose lease ran out and that another node took is left to it, and gets no fact);
    /// the store removes the message once none of its recipients is queued. Returns the
    /// recipient indexes that changed.
    pub async fn queue_settle(
        &self,
        node: &str,
        id: QueueId,
        outcomes: Vec<(QueueUpdate, QueueFact)>,
    ) -> Result<Vec<u32>> {
        let Some((_, current)) = self.store.queued(id).await? else {
            return Ok(Vec::new());
        };
        let held = |idx: u32| {
            current.iter().any(|r| {
                r.idx == idx
                    && r.state == RecipientState::Queued
                    && r.lease_owner.as_deref() == Some(node)
            })
        };
        let ctx = runner_ctx(node);
        let mut updates = Vec::new();
        let mut ops = Vec::new();
        for (u, f) in outcomes.into_iter().filter(|(u, _)| held(u.idx)) {
            ops.push(Op::AppendLedger(Core::ledger_record(
                &ctx,
                f.action,
                f.target.as_deref(),
                vec![format!("queue:{id}")],
                "ok",
                None,
                Some(f.after),
            )));
            updates.push(u);
        }
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        ops.insert(
            0,
            Op::UpdateQueued {
                owner: Some(node.to_string()),
                updates,
            },
        );
        let results = self.store.write(ops).await?;
        match results.into_iter().next() {
            Some(OpResult::QueueUpdated { changed, .. }) => Ok(changed),
            other => Err(CoreError::Internal(format!(
                "unexpected settle result {other:?}"
            ))),
        }
    }

    /// Queues a message the server itself sends (a DSN) from the null reverse-path to
    /// `to`, with its ledger entry.
    pub async fn enqueue_generated(
        &self,
        node: &str,
        to: &str,
        raw: Vec<u8>,
        about: &str,
    ) -> Result<QueueId> {
        self.enqueue_server_mail(node, "queue.dsn", to, raw, about)
            .await
    }

    /// Queues a message the server itself sends from the null reverse-path to `to`
    /// (never bounced, RFC 3461 §6.2: NOTIFY=NEVER), with a ledger entry of `action`.
    pub async fn enqueue_server_mail(
        &self,
        node: &str,
        action: &str,
        to: &str,
        raw: Vec<u8>,
        about: &str,
    ) -> Result<QueueId> {
        let rcpt = [OutboundRecipient {
            address: to.to_string(),
            orcpt: None,
            // A DSN about a DSN is never sent (RFC 3461 §6.2): NOTIFY=NEVER.
            notify: Some("NEVER".into()),
        }];
        // An internationalised report (RFC 6533: a UTF-8 address or header) travels as
        // SMTPUTF8 mail (RFC 6531), like the mail it reports on.
        let envelope = EnvelopeOptions {
            smtputf8: !to.is_ascii() || !header_is_ascii(&raw),
            ..EnvelopeOptions::default()
        };
        let parts = queue_parts("", None, &rcpt, &envelope, is_eight_bit(&raw));
        // The blob commits with the queue entry (or, when big, is durable before it).
        let (blob, blob_ops) = self.blobs.stage(raw).await?;
        let (op, id, _) = parts.enqueue_op(&blob);
        let ctx = runner_ctx(node);
        let mut ops = vec![
            op,
            Op::AppendLedger(Core::ledger_record(
                &ctx,
                action,
                Some(to),
                vec![format!("queue:{id}"), about.to_string()],
                "ok",
                None,
                Some(json!({"to": to, "about": about, "size": blob.size})),
            )),
        ];
        ops.extend(blob_ops);
        self.store.write(ops).await?;
        self.queue_notify.notify_one();
        Ok(id)
    }

    /// Sends a DSN to `to`: into the mailbox when the address is ours, through the
    /// queue otherwise. Mail to an address of ours that does not exist is dropped (and
    /// logged by the caller): a DSN is never itself bounced.
    /// `about` names what the notice is about, for the ledger (`queue:<id>`,
    /// `message:<id>`).
    pub async fn return_to_sender(
        &self,
        node: &str,
        to: &str,
        raw: Vec<u8>,
        about: &str,
    ) -> Result<()> {
        let Ok(addr) = crate::address::parse_address(to) else {
            return Err(CoreError::Refused(format!(
                "unusable return address {to:?}"
            )));
        };
        // The sender of mail we forwarded is our SRS address: the report goes to the
        // sender it encodes (possibly another forwarder's SRS address, which is theirs
        // to reverse), never to whatever a catch-all of ours would make of it.
        if crate::srs::is_srs(addr.local())
            && !matches!(
                self.resolve(&addr).await?,
                crate::directory::Resolution::NotOurs
            )
        {
            return match self.srs_reverse(&addr).await? {
                Some(original) => self
                    .enqueue_generated(node, &original, raw, about)
                    .await
                    .map(|_| ()),
                None => Err(CoreError::NotFound(format!(
                    "return address {to}: an SRS address that does not check"
                ))),
            };
        }
        match self.resolve(&addr).await? {
            crate::directory::Resolution::NotOurs => {
                self.enqueue_generated(node, to, raw, about).await?;
                Ok(())
            }
            // A group that takes mail only from logged-in senders (or its members): a
            // notice is from nobody who logged in, and the return address is whatever
            // the sender claimed, so it would carry their text past the group's rule.
            crate::directory::Resolution::Deliver { restricted, .. } if !restricted.is_empty() => {
                Err(CoreError::Refused(format!(
                    "return address {to}: a group that does not take mail from outside"
                )))
            }
            // An alias of ours that only forwards: the report follows it.
            crate::directory::Resolution::Deliver {
                local, external, ..
            } if local.is_empty() && !external.is_empty() => {
                for target in external.iter().take(MAX_RETURN_FORWARDS) {
                    self.enqueue_generated(node, target, raw.clone(), about)
                        .await?;
                }
                Ok(())
            }
            crate::directory::Resolution::Deliver { local, .. } if !local.is_empty() => {
                // RFC 5321 §4.4: final delivery records the reverse-path, here the null
                // one, so that clients and filters can tell a DSN by its envelope.
                let mut raw = raw;
                raw.splice(0..0, b"Return-Path: <>\r\n".iter().copied());
                self.deliver(
                    &runner_ctx(node),
                    "",
                    &local,
                    raw,
                    false,
                    json!({"dsn_about": about}),
                )
                .await?;
                Ok(())
            }
            _ => Err(CoreError::NotFound(format!("return address {to}"))),
        }
    }

    pub async fn queue_stats(&self) -> Result<QueueStats> {
        Ok(self.store.queue_stats().await?)
    }

    // ---- operators ----

    pub async fn queue_list(
        &self,
        _admin: &AdminSession,
        limit: usize,
    ) -> Result<Vec<QueueSummary>> {
        Ok(self
            .store
            .queue(limit)
            .await?
            .into_iter()
            .map(|(message, recipients)| QueueSummary {
                message,
                recipients,
            })
            .collect())
    }

    pub async fn queue_show(&self, _admin: &AdminSession, id: QueueId) -> Result<QueueSummary> {
        self.queued(id)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("queued message {id}")))
    }

    /// Makes the message's waiting recipients due now (those a node is sending to stay
    /// with it).
    pub async fn queue_retry(&self, admin: &AdminSession, id: QueueId) -> Result<usize> {
        self.queue_show(admin, id).await?;
        let results = self
            .commit(vec![
                Op::RetryQueued {
                    message: id,
                    now_ms: now_ms(),
                },
                Op::AppendLedger(Core::ledger_record(
                    admin.ctx(),
                    "queue.retry",
                    None,
                    vec![format!("queue:{id}")],
                    "ok",
                    None,
                    None,
                )),
            ])
            .await?;
        self.queue_notify.notify_one();
        match results.first() {
            Some(OpResult::Retried(n)) => Ok(*n),
            _ => Ok(0),
        }
    }

    /// Removes a queued message without sending it (and without a DSN).
    pub async fn queue_delete(&self, admin: &AdminSession, id: QueueId) -> Result<()> {
        let q = self.queue_show(admin, id).await?;
        let before = json!({
            "sender": q.message.sender,
            "recipients": q.recipients.iter().map(|r| &r.address).collect::<Vec<_>>(),
            "size": q.message.blob.size,
        });
        self.commit(vec![
            Op::RemoveQueued(id),
            Op::AppendLedger(Core::ledger_record(
                admin.ctx(),
                "queue.delete",
                None,
                vec![format!("queue:{id}")],
                "ok",
                Some(before),
                None,
            )),
        ])
        .await?;
        Ok(())
    }

    /// One of our domains by name (a trailing dot and case ignored), with the name.
    async fn our_domain(&self, domain: &str) -> Result<(Domain, String)> {
        let name = domain.trim_end_matches('.').to_ascii_lowercase();
        match self.store.domain_by_name(&name).await? {
            Some(d) => Ok((d, name)),
            None => Err(CoreError::NotFound(format!("domain {name}"))),
        }
    }

    /// Stores a new DKIM key for one of our domains. The key bytes are not in the ledger.
    pub async fn dkim_key_add(
        &self,
        admin: &AdminSession,
        domain: &str,
        selector: &str,
        algorithm: &str,
        private_der: Vec<u8>,
    ) -> Result<()> {
        let valid_selector = !selector.is_empty()
            && selector.len() <= 63
            && selector
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_selector {
            return Err(CoreError::Invalid {
                field: "selector",
                reason: format!(
                    "{selector:?}: letters, digits, '-' and '_' only, at most 63 characters"
                ),
            });
        }
        let (d, name) = self.our_domain(domain).await?;
        self.commit(vec![
            Op::AddDkimKey(DkimKeyRecord {
                domain: d.id,
                selector: selector.to_string(),
                algorithm: algorithm.to_string(),
                private_der,
                created_ms: now_ms(),
            }),
            Op::AppendLedger(Core::ledger_record(
                admin.ctx(),
                "dkim.add",
                None,
                vec![format!("domain:{name}"), format!("dkim:{selector}")],
                "ok",
                None,
                Some(json!({"domain": name, "selector": selector, "algorithm": algorithm})),
            )),
        ])
        .await?;
        Ok(())
    }

    pub async fn dkim_key_list(
        &self,
        _admin: &AdminSession,
        domain: &str,
    ) -> Result<Vec<DkimKeyRecord>> {
        let (d, _) = self.our_domain(domain).await?;
        Ok(self.store.dkim_keys(d.id).await?)
    }

    pub async fn dkim_key_remove(
        &self,
        admin: &AdminSession,
        domain: &str,
        selector: &str,
    ) -> Result<()> {
        let (d, name) = self.our_domain(domain).await?;
        self.commit(vec![
            Op::RemoveDkimKey {
                domain: d.id,
                selector: selector.to_string(),
            },
            Op::AppendLedger(Core::ledger_record(
                admin.ctx(),
                "dkim.remove",
                None,
                vec![format!("domain:{name}"), format!("dkim:{selector}")],
                "ok",
                Some(json!({"domain": name, "selector": selector})),
                None,
            )),
        ])
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::header_is_ascii;

    #[test]
    fn only_the_header_decides_smtputf8_for_a_report() {
        assert!(header_is_ascii(
            b"From: a@b\r\nSubject: x\r\n\r\ncaf\xc3\xa9\r\n"
        ));
        assert!(!header_is_ascii(
            "From: jos\u{e9}@b\r\n\r\nbody\r\n".as_bytes()
        ));
        assert!(header_is_ascii(b"From: a@b\n\ncaf\xc3\xa9\n"));
        assert!(!header_is_ascii("Subject: caf\u{e9}".as_bytes()));
    }
}
