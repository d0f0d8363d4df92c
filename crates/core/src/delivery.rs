//! Delivery into mailboxes: one message, many recipients, one commit.
//!
//! **Standards:** RFC 5321 §4.4 (the trace fields the session prepends before calling
//! here), RFC 5322 §3.6 (one From field), RFC 6409 §8 (a submission server may check
//! that the sender is the authenticated user), RFC 1870 (SIZE and quota).
//!
//! **Security:** the bytes come from an SMTP peer. They are parsed once, with caps
//! ([`crate::message::extract`]); the header scan here ([`header_fields`]) is a single
//! forward pass that allocates nothing per field.
//!
//! **Invariants:** a delivery is one [`Store::write`] batch: every recipient's
//! `AppendMessage` and the one `message.deliver` ledger entry commit together or not at
//! all, after the blob is durable, and before the caller acknowledges (DESIGN
//! invariants 10 and 13). The blob is written once whatever the number of recipients.

use crate::address::{Address, parse_address};
use crate::auth::Authenticated;
use crate::error::{CoreError, Result};
use crate::mail::Stored;
use crate::{Core, Ctx};
use postern_store::*;
use std::collections::BTreeSet;

/// Whether an account can take a message, checked when a recipient is named (RCPT), so
/// that a full mailbox is refused before the message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaCheck {
    Ok,
    /// Usage already reaches the quota (RFC 3463 4.2.2, mailbox full).
    Full,
    /// The size the client declared (RFC 1870 `SIZE=`) does not fit in what is left
    /// (RFC 1870 §6.2: 552 5.2.2).
    TooLarge,
}

/// One header field of a header section: its name and the byte range of the whole field,
/// continuation lines and final line end included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField<'a> {
    pub name: &'a [u8],
    pub start: usize,
    pub end: usize,
}

/// The fields of the top-level header section of `raw`, in order, up to the blank line
/// (or the first line that is neither a field nor a continuation, which ends the section
/// as mail-parser and MUAs treat it). Lines end at LF; CR before it is part of the line.
pub fn header_fields(raw: &[u8]) -> Vec<HeaderField<'_>> {
    let mut out: Vec<HeaderField<'_>> = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        let next = match raw[pos..].iter().position(|&b| b == b'\n') {
            Some(n) => pos + n + 1,
            None => raw.len(),
        };
        let line = &raw[pos..next];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // RFC 5322 §2.2.3: a folded continuation of the field before it.
            match out.last_mut() {
                Some(f) => f.end = next,
                None => break,
            }
        } else {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                break;
            };
            let name = &line[..colon];
            // RFC 5322 §3.6.8: field names are printable ASCII except the colon.
            if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
                break;
            }
            out.push(HeaderField {
                name,
                start: pos,
                end: next,
            });
        }
        pos = next;
    }
    out
}

impl Core {
    /// Whether the authenticated account may use `a` as its sender (MAIL FROM or a From
    /// header address): its own address, an alias whose target is the account, or a
    /// plus-addressed form of either. Catch-alls and group memberships do not count: a
    /// catch-all does not make every address of the domain someone's, and a member does
    /// not speak for the group.
    pub async fn may_send_as(&self, auth: &Authenticated, a: &Address) -> Result<bool> {
        let me = auth.principal().id;
        let Some(domain) = self.store.domain_by_name(a.domain()).await? else {
            return Ok(false);
        };
        let mut candidates = vec![a.local()];
        if let Some((base, _tag)) = a.split_plus(self.settings.plus_separator) {
            candidates.push(base);
        }
        for cand in candidates {
            if let Some(p) = self.store.principal_by_local(domain.id, cand).await? {
                if p.id == me {
                    return Ok(true);
                }
                // Local parts are unique across principals and aliases.
                continue;
            }
            for alias in self.store.aliases_for(domain.id, cand).await? {
                if let Ok(t) = parse_address(&alias.target)
                    && let Some(p) = self.find_principal(&t).await?
                    && p.id == me
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The quota check at RCPT time. `declared` is the client's `SIZE=` when given.
    pub async fn quota_check(&self, p: &Principal, declared: Option<u64>) -> Result<QuotaCheck> {
        let Some(limit) = p.quota_bytes else {
            return Ok(QuotaCheck::Ok);
        };
        let used = self.store.usage(p.id).await?.used_bytes;
        if used >= limit {
            return Ok(QuotaCheck::Full);
        }
        if declared.is_some_and(|d| d > limit - used) {
            return Ok(QuotaCheck::TooLarge);
        }
        Ok(QuotaCheck::Ok)
    }

    /// Delivers one message to local principals: parsed once, its blob written once, and
    /// every recipient's mailbox entry plus one `message.deliver` ledger entry committed
    /// in one batch. Principals are deduplicated; groups (which hold no mail) are
    /// skipped. `to_junk` files it in each account's Junk mailbox (INBOX when an account
    /// has none). `details` is added to the ledger entry (session facts, the
    /// authentication results summary).
    ///
    /// Fails with [`CoreError::QuotaExceeded`] when any recipient is over quota; nothing
    /// is stored then.
    pub async fn deliver(
        &self,
        ctx: &Ctx,
        mail_from: &str,
        recipients: &[Principal],
        raw: Vec<u8>,
        to_junk: bool,
        details: serde_json::Value,
    ) -> Result<Vec<Stored>> {
        let (meta, raw) = self.extract_meta(raw).await?;
        self.deliver_parsed(ctx, mail_from, recipients, meta, raw, to_junk, details)
            .await
    }

    /// Submission (RFC 6409): like [`Core::deliver`], but the message's From field must
    /// appear exactly once (RFC 5322 §3.6) and name only addresses `auth` may send as
    /// ([`Core::may_send_as`]); otherwise [`CoreError::Refused`] and nothing is stored.
    pub async fn submit(
        &self,
        auth: &Authenticated,
        mail_from: &str,
        recipients: &[Principal],
        raw: Vec<u8>,
        details: serde_json::Value,
    ) -> Result<Vec<Stored>> {
        // A second From field would be ignored by the metadata (first one wins) but may be
        // the one a mail client shows: refuse rather than pick one.
        let froms = header_fields(&raw)
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(b"from"))
            .count();
        if froms != 1 {
            return Err(CoreError::Refused(format!(
                "the message must have exactly one From header field, it has {froms}"
            )));
        }
        let (meta, raw) = self.extract_meta(raw).await?;
        if meta.envelope.from.is_empty() {
            return Err(CoreError::Refused(
                "the From header field holds no address".into(),
            ));
        }
        for addr in &meta.envelope.from {
            let owned = match addr.address.as_deref().map(parse_address) {
                Some(Ok(a)) => self.may_send_as(auth, &a).await?,
                _ => false,
            };
            if !owned {
                return Err(CoreError::Refused(format!(
                    "{} may not send as {}",
                    auth.address(),
                    addr.address.as_deref().unwrap_or("(unparsable address)")
                )));
            }
        }
        self.deliver_parsed(auth.ctx(), mail_from, recipients, meta, raw, false, details)
            .await
    }

    async fn extract_meta(&self, raw: Vec<u8>) -> Result<(MessageMeta, Vec<u8>)> {
        let limits = self.settings.mime;
        tokio::task::spawn_blocking(move || (crate::message::extract(&raw, &limits), raw))
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))
    }

    #[allow(clippy::too_many_arguments)]
    async fn deliver_parsed(
        &self,
        ctx: &Ctx,
        mail_from: &str,
        recipients: &[Principal],
        meta: MessageMeta,
        raw: Vec<u8>,
        to_junk: bool,
        details: serde_json::Value,
    ) -> Result<Vec<Stored>> {
        let mut seen = BTreeSet::new();
        let targets: Vec<&Principal> = recipients
            .iter()
            .filter(|p| p.kind.has_mailboxes() && seen.insert(p.id))
            .collect();
        if targets.is_empty() {
            return Err(CoreError::Refused("no recipient holds mail".into()));
        }
        let refs = crate::message::thread_references(&meta);
        let domains = self.store.domains().await?;
        let address_of = |p: &Principal| {
            let d = domains
                .iter()
                .find(|d| d.id == p.domain)
                .map(|d| d.name.as_str())
                .unwrap_or("?");
            format!("{}@{d}", p.local_part)
        };
        // Written once, fsynced, before any record refers to it.
        let blob = self.blobs.put(raw).await?;
        let received_ms = now_ms();
        let mut ops = Vec::with_capacity(targets.len() + 1);
        let mut placed = Vec::with_capacity(targets.len());
        let mut objects = Vec::with_capacity(targets.len() * 2);
        for p in &targets {
            let mailbox = if to_junk {
                match self.special_mailbox(p.id, SpecialUse::Junk).await {
                    Ok(m) => m,
                    Err(CoreError::NotFound(_)) => {
                        self.special_mailbox(p.id, SpecialUse::Inbox).await?
                    }
                    Err(e) => return Err(e),
                }
            } else {
                self.special_mailbox(p.id, SpecialUse::Inbox).await?
            };
            let id = MessageId::generate();
            let thread_id = match self.store.thread_of(p.id, &refs).await? {
                Some(t) => t,
                None => id.to_string(),
            };
            objects.push(format!("mailbox:{}", mailbox.id));
            objects.push(format!("message:{id}"));
            placed.push((id, mailbox.id));
            ops.push(Op::AppendMessage {
                message: MessageRecord {
                    id,
                    account: p.id,
                    blob: blob.clone(),
                    received_ms,
                    thread_id,
                    meta: meta.clone(),
                },
                mailbox: mailbox.id,
                flags: Flags::default(),
                keywords: vec![],
            });
        }
        let addresses: Vec<String> = targets.iter().map(|p| address_of(p)).collect();
        let target = (addresses.len() == 1).then(|| addresses[0].clone());
        let after = serde_json::json!({
            "sender": mail_from,
            "recipients": addresses,
            "size": blob.size,
            "blob": blob.hash,
            "junk": to_junk,
            "details": details,
        });
        ops.push(Op::AppendLedger(Core::ledger_record(
            ctx,
            "message.deliver",
            target.as_deref(),
            objects,
            "ok",
            None,
            Some(after),
        )));
        let results = self.store.write(ops).await?;
        let mut stored = Vec::with_capacity(placed.len());
        for ((message, mailbox), r) in placed.into_iter().zip(results) {
            match r {
                OpResult::Appended { uid, modseq } => stored.push(Stored {
                    message,
                    mailbox,
                    uid,
                    modseq,
                    blob: blob.hash.clone(),
                }),
                other => {
                    return Err(CoreError::Internal(format!(
                        "unexpected store result {other:?}"
                    )));
                }
            }
        }
        metrics::counter!("postern_messages_stored_total").increment(stored.len() as u64);
        metrics::counter!("postern_ledger_entries_total").increment(1);
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::header_fields;

    #[test]
    fn header_fields_fold_and_stop() {
        let raw = b"From: a@b\r\nSubject: x\r\n  y\r\nX-A: 1\r\n\r\nFrom: body@x\r\n";
        let f = header_fields(raw);
        let names: Vec<&[u8]> = f.iter().map(|f| f.name).collect();
        assert_eq!(names, [&b"From"[..], b"Subject", b"X-A"]);
        assert_eq!(&raw[f[1].start..f[1].end], b"Subject: x\r\n  y\r\n");
        // A line that is not a field ends the section.
        let f = header_fields(b"From: a\r\nnot a field\r\nTo: b\r\n\r\n");
        assert_eq!(f.len(), 1);
        assert!(header_fields(b"").is_empty());
        assert!(header_fields(b" leading continuation\r\n").is_empty());
    }
}
