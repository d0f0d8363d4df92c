//! Delivery into mailboxes: one message, many recipients, one commit.
//!
//! **Standards:** RFC 5321 §4.4 (the trace fields the session prepends before calling
//! here), RFC 5322 §3.6 (one From field), RFC 6409 §8 (a submission server may check
//! that the sender is the authenticated user), RFC 1870 (SIZE and quota).
//!
//! **Security:** the bytes come from an SMTP peer. They are parsed once, with caps
//! ([`crate::message::extract`]); the header checks here ([`header_section`],
//! [`single_from`]) read the top-level header section with mail-parser itself (headers
//! only), so they see exactly the fields the metadata sees.
//!
//! **Invariants:** a delivery is one [`Store::write`] batch: every recipient's
//! `AppendMessage` (recipients over quota left out before, and named in the entry) and
//! the one `message.deliver` ledger entry commit together or not at all, with the blob
//! (a small one is put by the same batch, a big one is durable before it), and before
//! the caller acknowledges (DESIGN invariants 10 and 13). The blob is written once
//! whatever the number of recipients.

use crate::address::{Address, parse_address};
use crate::auth::Authenticated;
use crate::error::{CoreError, Result};
use crate::mail::Stored;
use crate::{Core, Ctx};
use postern_store::*;
use std::collections::BTreeSet;

/// Messages up to this size are parsed on the calling task ([`Core::extract_meta`]).
const EXTRACT_INLINE_MAX: usize = 32 * 1024;

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

/// What [`Core::deliver`] and [`Core::submit`] did: the copies stored, and the
/// recipients left out because the message does not fit in what is left of their quota
/// (also recorded in the delivery's ledger entry, `quota_left_out`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub stored: Vec<Stored>,
    pub left_out: Vec<String>,
    /// The principals of `left_out`.
    pub left_out_ids: Vec<PrincipalId>,
}

/// One header field of a header section: its name (trimmed, as mail-parser reads it) and
/// the byte range of the whole field, continuation lines and final line end included;
/// `value_start` is just after the colon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField<'a> {
    pub name: &'a [u8],
    pub start: usize,
    pub value_start: usize,
    pub end: usize,
}

/// The top-level header section of a message as mail-parser (which makes the stored
/// metadata) reads it: its fields, and how many lines it skipped because they were
/// neither a field nor a continuation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderSection<'a> {
    pub fields: Vec<HeaderField<'a>>,
    /// Lines before the end of the section that mail-parser skipped (no colon: neither
    /// a field nor a continuation).
    pub stray_lines: usize,
    /// Where the first of them starts.
    pub first_stray: Option<usize>,
}

/// Reads the top-level header section of `raw` with mail-parser itself, so that the
/// fields every check here sees are exactly those the metadata (and a mail client built
/// on the same reading) sees: a line without a colon is skipped, not the end of the
/// section, and `Name :` (RFC 5322 §4.5.3 obsolete syntax) is the field `Name`.
pub fn header_section(raw: &[u8]) -> HeaderSection<'_> {
    let mut out = HeaderSection::default();
    let Some(msg) = mail_parser::MessageParser::new().parse_headers(raw) else {
        return out;
    };
    let mut at = 0usize;
    for h in msg.headers() {
        let (start, value_start, end) = (
            h.offset_field as usize,
            h.offset_start as usize,
            h.offset_end as usize,
        );
        if start > raw.len() || end > raw.len() || value_start == 0 || value_start > end {
            continue;
        }
        let gap = count_stray(raw.get(at..start).unwrap_or_default());
        if gap > 0 && out.first_stray.is_none() {
            out.first_stray = Some(at);
        }
        out.stray_lines += gap;
        let name = raw
            .get(start..value_start - 1)
            .unwrap_or_default()
            .trim_ascii();
        out.fields.push(HeaderField {
            name,
            start,
            value_start,
            end,
        });
        at = end;
    }
    // Skipped lines after the last field, up to the blank (or white-space-only) line
    // that ends the section for mail-parser.
    for l in raw.get(at..).unwrap_or_default().split(|&b| b == b'\n') {
        if l.trim_ascii().is_empty() {
            break;
        }
        out.stray_lines += 1;
        out.first_stray.get_or_insert(at);
    }
    out
}

/// Lines of `gap` (bytes between fields, which mail-parser skipped) holding anything
/// but white space.
fn count_stray(gap: &[u8]) -> usize {
    gap.split(|&b| b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .count()
}

/// The fields of the top-level header section of `raw`, in order ([`header_section`]).
pub fn header_fields(raw: &[u8]) -> Vec<HeaderField<'_>> {
    header_section(raw).fields
}

/// The one author address of a message received from outside, for DMARC (RFC 7489
/// §6.6.1: the RFC5322.From domain must be exactly one), or why there is not exactly
/// one: no From field, several From fields, a From field naming no address or several,
/// or a From field that a stricter reader would not see as From (the obsolete `From :`
/// or a name indented on the first line), or a From field after a line that is neither a
/// field nor a continuation (mail-auth's reader, which finds the DMARC domain, ends the
/// header section there and does not take those as From, while mail-parser and mail
/// clients do).
pub fn single_from(raw: &[u8]) -> std::result::Result<String, String> {
    let section = header_section(raw);
    let froms: Vec<&HeaderField<'_>> = section
        .fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case(b"from"))
        .collect();
    let f = match froms.as_slice() {
        [] => return Err("the message has no From header field".into()),
        [f] => *f,
        more => {
            return Err(format!(
                "the message has {} From header fields; it must have exactly one",
                more.len()
            ));
        }
    };
    if section.first_stray.is_some_and(|s| s < f.start) {
        // mail-auth ends the header section at such a line: it would not see this From
        // and DMARC would check nothing.
        return Err(
            "the From header field follows a line that is neither a field nor a continuation"
                .into(),
        );
    }
    let at_line_start = f.start == 0 || raw.get(f.start - 1) == Some(&b'\n');
    let raw_name = raw.get(f.start..f.value_start - 1).unwrap_or_default();
    if !at_line_start || !raw_name.eq_ignore_ascii_case(b"from") {
        return Err("the From header field must be written `From:` at the start of a line".into());
    }
    let value = raw.get(f.value_start..f.end).unwrap_or_default();
    let parsed = mail_parser::parsers::MessageStream::new(value).parse_address();
    let addresses: Vec<&str> = parsed
        .as_address()
        .map(|a| a.iter().filter_map(|a| a.address.as_deref()).collect())
        .unwrap_or_default();
    match addresses.as_slice() {
        [one] if one.contains('@') => Ok(one.to_string()),
        [_] | [] => Err("the From header field names no address".into()),
        more => Err(format!(
            "the From header field names {} addresses; it must name exactly one",
            more.len()
        )),
    }
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
        // Send As: the address is another account's (or its alias), and that account's
        // INBOX grants this user the `0` right.
        if let Some(owner) = self.find_principal(a).await?
            && owner.id != me
        {
            return self.has_send_as(owner.id, me).await;
        }
        Ok(false)
    }

    /// Whether `grantee` holds the send-as right (`0`) on `owner`'s INBOX.
    async fn has_send_as(&self, owner: PrincipalId, grantee: PrincipalId) -> Result<bool> {
        let Some(inbox) = self
            .store
            .mailboxes(owner)
            .await?
            .into_iter()
            .find(|m| m.special_use == Some(SpecialUse::Inbox))
        else {
            return Ok(false);
        };
        let acl = self.store.mailbox_acl(owner, inbox.id).await?;
        Ok(acl.iter().any(|(g, rights)| {
            *g == grantee
                && crate::access::Rights::parse(rights)
                    .is_ok_and(|r| r.contains(crate::access::Rights::SEND_AS))
        }))
    }

    /// Where `postmaster@domain` goes when the directory has no such address: the
    /// domain's first individual account (the earliest created; for a new domain, the
    /// account its administrator made first). RFC 5321 §4.5.1: every domain we receive
    /// mail for must accept mail to its postmaster. `None` when `domain` is not ours or
    /// has no individual account. An alias or account named `postmaster` takes
    /// precedence: this is only the fallback.
    pub async fn postmaster_fallback(&self, domain: &str) -> Result<Option<Principal>> {
        let Some(d) = self.store.domain_by_name(domain).await? else {
            return Ok(None);
        };
        let mut accounts: Vec<Principal> = self
            .store
            .principals(Some(d.id))
            .await?
            .into_iter()
            .filter(|p| p.kind == PrincipalKind::Individual)
            .collect();
        accounts.sort_by_key(|p| (p.created_ms, p.id));
        Ok(accounts.into_iter().next())
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
    /// A recipient the message does not fit (its size over what is left of the quota) is
    /// left out, checked before the blob is written, and named in the ledger entry
    /// (`quota_left_out`) and in [`Delivered::left_out`]; the others get the message.
    /// Fails with [`CoreError::QuotaExceeded`] when it fits no recipient: nothing is
    /// stored and no blob written then. One race remains: when usage grows between the
    /// check and the commit (another delivery to the same account), the store refuses
    /// the batch; it is retried without the accounts now full, and if none is left a
    /// big blob just written stays unreferenced (reported by `verify`, removed by no one
    /// yet: another delivery of the same bytes may be about to refer to it); a small
    /// one was never stored.
    pub async fn deliver(
        &self,
        ctx: &Ctx,
        mail_from: &str,
        recipients: &[Principal],
        raw: Vec<u8>,
        to_junk: bool,
        details: serde_json::Value,
    ) -> Result<Delivered> {
        self.deliver_forwarding(ctx, mail_from, recipients, None, raw, to_junk, details)
            .await
    }

    /// [`Core::deliver`], and for aliases that forward to other domains the outbound
    /// queue entry in the same batch (durable together before the 250), sent from the
    /// SRS form of `mail_from` ([`crate::srs`]; a bounce stays a bounce) so the
    /// destination's SPF check sees our domain. The forward is named in the ledger entry
    /// (`forwarded_to`).
    #[allow(clippy::too_many_arguments)]
    pub async fn deliver_forwarding(
        &self,
        ctx: &Ctx,
        mail_from: &str,
        recipients: &[Principal],
        forward: Option<&crate::srs::Forwarding>,
        raw: Vec<u8>,
        to_junk: bool,
        mut details: serde_json::Value,
    ) -> Result<Delivered> {
        // Mail filed as junk (DMARC quarantine) is not sent on under our name: the
        // destination would judge our reputation by it, and its bounce would go to a
        // sender that is probably forged. The ledger entry says so.
        let forward = match forward {
            Some(f) if to_junk && !f.to.is_empty() => {
                details["forward_withheld"] =
                    serde_json::json!(f.to.iter().map(|r| r.address.clone()).collect::<Vec<_>>());
                if recipients.is_empty() {
                    return Err(CoreError::Refused(
                        "the message fails its sender's authentication policy and is not forwarded"
                            .into(),
                    ));
                }
                None
            }
            other => other,
        };
        let queued = forward.filter(|f| !f.to.is_empty()).map(|f| {
            details["forwarded_to"] =
                serde_json::json!(f.to.iter().map(|r| r.address.clone()).collect::<Vec<_>>());
            let sender = self.srs_sender(mail_from, &f.via_domain);
            details["forward_sender"] = serde_json::json!(sender);
            let envelope = crate::outbound::EnvelopeOptions {
                smtputf8: !sender.is_ascii()
                    || f.to.iter().any(|r| !r.address.is_ascii())
                    || !crate::outbound::header_is_ascii(&raw),
                lifetime_ms: Some(self.queue_lifetime_ms()),
                ..Default::default()
            };
            crate::outbound::queue_parts(
                &sender,
                None,
                &f.to,
                &envelope,
                crate::outbound::is_eight_bit(&raw),
            )
        });
        // iMIP (RFC 6047) is read after the message is stored (dav/imip.rs).
        let imip = crate::dav::imip::may_carry_imip(&raw).then(|| raw.clone());
        let authentication = details.get("authentication").cloned();
        let forwarding = queued.is_some();
        let (meta, raw) = self.extract_meta(raw).await?;
        let delivered = self
            .deliver_parsed(
                ctx, mail_from, recipients, meta, raw, to_junk, details, queued,
            )
            .await?;
        if forwarding {
            self.queue_notify.notify_one();
        }
        if let Some(m) = imip {
            self.imip_inbound(
                ctx,
                mail_from,
                recipients,
                &m,
                to_junk,
                authentication.as_ref(),
            )
            .await;
        }
        Ok(delivered)
    }

    /// Submission (RFC 6409): like [`Core::deliver`], but the message's From field must
    /// appear exactly once (RFC 5322 §3.6) and name only addresses `auth` may send as
    /// ([`Core::may_send_as`]); otherwise [`CoreError::Refused`] and nothing is stored.
    ///
    /// `external` recipients (other domains) go to the outbound queue in the same batch as
    /// the local deliveries and the ledger entry: all of it is durable, or none, before
    /// the client hears 250. `raw` is stored once, as it will be sent (DKIM-signed by the
    /// caller), for local and external recipients alike.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit(
        &self,
        auth: &Authenticated,
        mail_from: &str,
        recipients: &[Principal],
        external: &[crate::outbound::OutboundRecipient],
        envelope: &crate::outbound::EnvelopeOptions,
        raw: Vec<u8>,
        details: serde_json::Value,
    ) -> Result<Delivered> {
        // A second From field would be ignored by the metadata (first one wins) but may be
        // the one a mail client shows: refuse rather than pick one.
        let section = header_section(&raw);
        if section.stray_lines > 0 {
            // mail-parser skips such a line; another reader may end the header section
            // there or take it as part of a field. Refuse rather than guess.
            return Err(CoreError::Refused(
                "the header section has a line that is neither a field nor a continuation".into(),
            ));
        }
        let froms = section
            .fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(b"from"))
            .count();
        if froms != 1 {
            return Err(CoreError::Refused(format!(
                "the message must have exactly one From header field, it has {froms}"
            )));
        }
        // Sender and the resent fields name who sent it (RFC 5322 §3.6.2, §3.6.6): the
        // same rule as From, so they cannot show someone else as the sender either.
        let mut senders: Vec<(String, String)> = Vec::new();
        for f in &section.fields {
            let name = String::from_utf8_lossy(f.name).to_ascii_lowercase();
            if !matches!(name.as_str(), "sender" | "resent-from" | "resent-sender") {
                continue;
            }
            let value = raw.get(f.value_start..f.end).unwrap_or_default();
            let parsed = mail_parser::parsers::MessageStream::new(value).parse_address();
            let list: Vec<String> = parsed
                .as_address()
                .map(|a| {
                    a.iter()
                        .filter_map(|a| a.address.as_deref().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if list.is_empty() {
                return Err(CoreError::Refused(format!(
                    "the {name} header field holds no address"
                )));
            }
            senders.extend(list.into_iter().map(|a| (name.clone(), a)));
        }
        for (field, addr) in senders {
            let owned = match parse_address(&addr) {
                Ok(a) => self.may_send_as(auth, &a).await?,
                Err(_) => false,
            };
            if !owned {
                return Err(CoreError::Refused(format!(
                    "{} may not send as {addr} ({field} header field)",
                    auth.address()
                )));
            }
        }
        let (meta, raw) = self.extract_meta(raw).await?;
        // Group markers (`From: Team: a@x;`) name no mailbox: only the members count.
        let authors: Vec<_> = meta
            .envelope
            .from
            .iter()
            .filter(|a| !a.is_group_marker())
            .collect();
        if authors.is_empty() {
            return Err(CoreError::Refused(
                "the From header field holds no address".into(),
            ));
        }
        for addr in authors {
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
        let queued = (!external.is_empty()).then(|| {
            let mut envelope = envelope.clone();
            envelope.lifetime_ms.get_or_insert(self.queue_lifetime_ms());
            crate::outbound::queue_parts(
                mail_from,
                Some(auth.principal().id),
                external,
                &envelope,
                crate::outbound::is_eight_bit(&raw),
            )
        });
        let delivered = self
            .deliver_parsed(
                auth.ctx(),
                mail_from,
                recipients,
                meta,
                raw,
                false,
                details,
                queued,
            )
            .await?;
        if !external.is_empty() {
            self.queue_notify.notify_one();
        }
        Ok(delivered)
    }

    pub(crate) async fn extract_meta(&self, raw: Vec<u8>) -> Result<(MessageMeta, Vec<u8>)> {
        let limits = self.settings.mime;
        // A small message parses in microseconds, less than a hop to a blocking thread
        // and back; a big one (attachments to decode for the preview) moves off the
        // async workers.
        if raw.len() <= EXTRACT_INLINE_MAX {
            return Ok((crate::message::extract(&raw, &limits), raw));
        }
        tokio::task::spawn_blocking(move || (crate::message::extract(&raw, &limits), raw))
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))
    }

    /// The principals of `targets` with room for `size` more octets, and the addresses
    /// of those without.
    async fn split_by_room<'p>(
        &self,
        targets: &[&'p Principal],
        size: u64,
        address_of: &(dyn Fn(&Principal) -> String + Sync),
    ) -> Result<(Vec<&'p Principal>, Vec<String>)> {
        let (mut fit, mut left_out) = (Vec::new(), Vec::new());
        for p in targets {
            let room = match p.quota_bytes {
                None => true,
                Some(limit) => {
                    let used = self.store.usage(p.id).await?.used_bytes;
                    used.saturating_add(size) <= limit
                }
            };
            if room {
                fit.push(*p);
            } else {
                left_out.push(address_of(p));
            }
        }
        Ok((fit, left_out))
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
        queued: Option<crate::outbound::QueueParts>,
    ) -> Result<Delivered> {
        let mut seen = BTreeSet::new();
        let all: Vec<&Principal> = recipients
            .iter()
            .filter(|p| p.kind.has_mailboxes() && seen.insert(p.id))
            .collect();
        if all.is_empty() && queued.is_none() {
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
        // Quota first, before the blob exists (as `import_message` does): a message that
        // fits no one leaves nothing behind.
        let size = raw.len() as u64;
        let (mut targets, mut left_out) = self.split_by_room(&all, size, &address_of).await?;
        if targets.is_empty() && queued.is_none() {
            return Err(CoreError::QuotaExceeded);
        }
        // Stored once. Staged: a small blob is put by the delivery's own batch (one
        // durability point for the blob and its records, shared by the group commit); a
        // big one is written and fsynced now, before any record refers to it.
        let (blob, blob_ops) = self.blobs.stage(raw).await?;
        // The store checks quota again, atomically; a refusal there means usage grew
        // since the check above: check again and retry without the accounts now full.
        let mut attempts = 0;
        let (placed, results) = loop {
            attempts += 1;
            let (mut ops, placed) = self
                .delivery_ops(
                    ctx,
                    mail_from,
                    &targets,
                    &left_out,
                    &meta,
                    &refs,
                    &blob,
                    to_junk,
                    &details,
                    &address_of,
                    queued.as_ref(),
                )
                .await?;
            // Last: the results read below are the first ops'.
            ops.extend(blob_ops.iter().cloned());
            match self.store.write(ops).await {
                Ok(results) => break (placed, results),
                Err(StoreError::QuotaExceeded { .. }) if attempts < 3 => {
                    let (fit, full) = self.split_by_room(&targets, size, &address_of).await?;
                    left_out.extend(full);
                    targets = fit;
                    if targets.is_empty() && queued.is_none() {
                        return Err(CoreError::QuotaExceeded);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
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
        let left_out_ids = all
            .iter()
            .filter(|p| !targets.iter().any(|t| t.id == p.id))
            .map(|p| p.id)
            .collect();
        Ok(Delivered {
            stored,
            left_out,
            left_out_ids,
        })
    }

    /// The batch of one delivery: every target's `AppendMessage`, then the ledger entry.
    #[allow(clippy::too_many_arguments)]
    async fn delivery_ops(
        &self,
        ctx: &Ctx,
        mail_from: &str,
        targets: &[&Principal],
        left_out: &[String],
        meta: &MessageMeta,
        refs: &[String],
        blob: &BlobRef,
        to_junk: bool,
        details: &serde_json::Value,
        address_of: &(dyn Fn(&Principal) -> String + Sync),
        queued: Option<&crate::outbound::QueueParts>,
    ) -> Result<(Vec<Op>, Vec<(MessageId, MailboxId)>)> {
        let received_ms = now_ms();
        let mut ops = Vec::with_capacity(targets.len() + 1);
        let mut placed = Vec::with_capacity(targets.len());
        let mut objects = Vec::with_capacity(targets.len() * 2);
        for p in targets {
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
            let thread_id = match self.store.thread_of(p.id, refs).await? {
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
        let mut after = serde_json::json!({
            "sender": mail_from,
            "recipients": addresses,
            "size": blob.size,
            "blob": blob.hash,
            "junk": to_junk,
            "details": details,
        });
        if !left_out.is_empty() {
            after["quota_left_out"] = serde_json::json!(left_out);
        }
        if let Some(q) = queued {
            let (enqueue, id, external) = q.enqueue_op(blob);
            objects.push(format!("queue:{id}"));
            after["queued"] = serde_json::json!({"id": id.to_string(), "recipients": external});
            ops.push(enqueue);
        }
        ops.push(Op::AppendLedger(Core::ledger_record(
            ctx,
            "message.deliver",
            target.as_deref(),
            objects,
            "ok",
            None,
            Some(after),
        )));
        Ok((ops, placed))
    }
}

#[cfg(test)]
mod tests {
    use super::{header_fields, header_section};

    #[test]
    fn header_fields_fold_and_stop() {
        let raw = b"From: a@b\r\nSubject: x\r\n  y\r\nX-A: 1\r\n\r\nFrom: body@x\r\n";
        let f = header_fields(raw);
        let names: Vec<&[u8]> = f.iter().map(|f| f.name).collect();
        assert_eq!(names, [&b"From"[..], b"Subject", b"X-A"]);
        assert_eq!(&raw[f[1].start..f[1].end], b"Subject: x\r\n  y\r\n");
        assert_eq!(&raw[f[1].value_start..f[1].end], b" x\r\n  y\r\n");
        assert_eq!(header_section(raw).stray_lines, 0);
        assert!(header_fields(b"").is_empty());
    }

    /// A line with no colon is skipped, not the end of the section, and `Name :` is the
    /// field `Name`: the reading of mail-parser, which makes the metadata.
    #[test]
    fn header_fields_read_as_mail_parser_does() {
        let raw = b"From: a\r\nX no-colon\r\nAuthentication-Results : mx; dmarc=pass\r\nFrom : c\r\n\r\nbody\r\n";
        let s = header_section(raw);
        let names: Vec<&[u8]> = s.fields.iter().map(|f| f.name).collect();
        assert_eq!(names, [&b"From"[..], b"Authentication-Results", b"From"]);
        assert_eq!(s.stray_lines, 1);
        let ar = s.fields[1];
        assert_eq!(
            &raw[ar.start..ar.end],
            b"Authentication-Results : mx; dmarc=pass\r\n"
        );
        assert_eq!(&raw[ar.value_start..ar.end], b" mx; dmarc=pass\r\n");
        let s = header_section(b"From: a\r\nTo: b\r\nstray at the end\r\n\r\nbody\r\n");
        assert_eq!((s.fields.len(), s.stray_lines), (2, 1));
        assert_eq!(s.first_stray, Some(16));
    }
}
