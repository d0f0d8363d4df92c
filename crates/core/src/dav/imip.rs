//! iMIP (RFC 6047): scheduling messages by mail, for attendees and organisers of other
//! domains.
//!
//! **Out:** a REQUEST, CANCEL or REPLY becomes a `multipart/alternative` message (a
//! text/plain summary and the `text/calendar; method=…` object, both base64) from the
//! acting account's address, DKIM-signed when its domain has keys (through the signer
//! the server installs, [`Core::set_mail_signer`]) and put in the outbound queue with a
//! `dav.schedule.imip` ledger entry in the same batch. Header fields are built from
//! checked addresses and a SUMMARY with every control character removed and non-ASCII
//! text RFC 2047-encoded, so an organiser's SUMMARY cannot add header fields.
//!
//! **In:** a message delivered by SMTP whose envelope sender and single From address
//! agree, whose sender's domain is positively authenticated ([`sender_authenticated`]:
//! DMARC pass, a DKIM pass with d= the From domain, or SPF pass for it; a domain without
//! DMARC is not enough) and that was not filed as junk, carrying a
//! `text/calendar` part (at most [`MAX_IMIP_PARTS`] parts looked at, the object at most
//! [`MAX_IMIP_BYTES`], at most [`MAX_IMIP_COMPONENTS`] components):
//! - REPLY: applied to the recipient's copy only when the sender is another domain's
//!   address (local attendees answer through CalDAV), the recipient organises the event
//!   and the sender is one of its attendees, and only that attendee's PARTSTAT changes.
//! - REQUEST / CANCEL: only when ORGANIZER is the sender and another domain's address,
//!   the recipient is an attendee, and the message's SEQUENCE is not older than the
//!   copy's; an existing copy is changed only when it has that organiser. A message about
//!   one instance (no master component) changes that instance only. A room answers a
//!   REQUEST by itself (a REPLY mail back).
//!
//! "Another domain" is seen from the recipient: a hosted domain other than the
//! recipient's is another tenant, and counts as external.
//!
//! Anything else is ignored (`dav.schedule.imip.ignored` in the ledger, with why); the
//! message itself is delivered as any other.

use super::ical::Cal;
use super::sched::{Recipient, itip, reply_of};
use crate::error::Result;
use crate::outbound::{EnvelopeOptions, OutboundRecipient, is_eight_bit, queue_parts};
use crate::{Core, Ctx};
use base64::Engine;
use postern_store::*;
use serde_json::json;
use std::future::Future;
use std::pin::Pin;

/// Largest text/calendar object taken from a message.
pub const MAX_IMIP_BYTES: usize = 256 << 10;
/// Most MIME parts looked at for one.
pub const MAX_IMIP_PARTS: usize = 32;
/// Most components (events, overrides, time zones) in an object taken from mail.
pub const MAX_IMIP_COMPONENTS: usize = 64;
/// Largest message looked at for a text/calendar part at all.
pub const MAX_IMIP_MESSAGE: usize = 4 << 20;
/// SUMMARY characters carried into a Subject.
const SUBJECT_CHARS: usize = 120;

/// Signs a message the server sends for an account (DKIM with the From domain's keys):
/// the DKIM-Signature fields to put in front, `None` when the domain has no key.
pub trait MailSigner: Send + Sync {
    fn sign<'a>(
        &'a self,
        core: &'a Core,
        raw: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Option<String>, String>> + Send + 'a>>;
}

/// Removes control characters and cuts to `max` characters.
fn clean_text(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect::<String>()
        .trim()
        .to_string()
}

/// An unstructured header value: ASCII as is, else RFC 2047 encoded-words (UTF-8,
/// base64, at most 45 octets of text each).
fn header_text(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return s.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

fn base64_lines(data: &[u8]) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(enc.len() + enc.len() / 76 * 2 + 2);
    for chunk in enc.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// The iMIP message for `cal` (with its METHOD) from `from` to `to`. Addresses must be
/// checked addresses (no spaces, controls or angle brackets).
pub fn build_message(from: &str, to: &str, cal: &Cal) -> Vec<u8> {
    let method = cal.method().unwrap_or_else(|| "PUBLISH".into());
    let method = if method.bytes().all(|b| b.is_ascii_alphabetic()) {
        method
    } else {
        "PUBLISH".into()
    };
    let master = cal.master();
    let summary = clean_text(
        master
            .and_then(|m| m.value("SUMMARY"))
            .unwrap_or("(no title)"),
        SUBJECT_CHARS,
    );
    let when = clean_text(master.and_then(|m| m.value("DTSTART")).unwrap_or(""), 64);
    let (subject, lead) = match method.as_str() {
        "REQUEST" => ("Invitation", format!("{from} invites you.")),
        "CANCEL" => ("Cancelled", format!("{from} cancelled this event.")),
        "REPLY" => {
            let ps = master
                .and_then(|m| m.attendee(from))
                .and_then(|a| a.param("PARTSTAT"))
                .map(|p| clean_text(p, 20))
                .unwrap_or_else(|| "replied".into());
            ("Reply", format!("{from} answered: {ps}."))
        }
        _ => ("Event", String::new()),
    };
    let domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or("localhost");
    let id = hex::encode(rand::random::<[u8; 16]>());
    let boundary = format!("=_postern_{}", hex::encode(rand::random::<[u8; 12]>()));
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let text = format!("{lead}\r\n\r\n{summary}\r\nWhen: {when}\r\n");
    let ical = cal.to_text();
    let mut m = String::new();
    m.push_str(&format!("From: <{from}>\r\n"));
    m.push_str(&format!("To: <{to}>\r\n"));
    m.push_str(&format!(
        "Subject: {}\r\n",
        header_text(&format!("{subject}: {summary}"))
    ));
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!("Message-ID: <{id}@{domain}>\r\n"));
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    );
    m.push_str(&base64_lines(text.as_bytes()));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(&format!(
        "Content-Type: text/calendar; charset=utf-8; method={method}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ));
    m.push_str(&base64_lines(ical.as_bytes()));
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// Whether an iMIP message needs SMTPUTF8: an address, or the header section, is not
/// ASCII.
fn envelope_needs_smtputf8(from: &str, to: &str, raw: &[u8]) -> bool {
    !from.is_ascii() || !to.is_ascii() || !crate::outbound::header_is_ascii(raw)
}

/// Whether a delivered message may carry iMIP (a cheap look before parsing).
pub fn may_carry_imip(raw: &[u8]) -> bool {
    raw.len() <= MAX_IMIP_MESSAGE
        && raw
            .windows(13)
            .any(|w| w.eq_ignore_ascii_case(b"text/calendar"))
}

/// Whether the verifier's summary (`details.authentication` of a delivery, see
/// `postern_smtp::verify::Verdict::summary`) positively authenticates `sender`'s domain
/// (the From domain: the caller checked that From is the envelope sender): DMARC pass,
/// or a DKIM pass whose d= is that domain, or SPF pass for that domain. `none` (no
/// DMARC record, no signature, no SPF record) is not enough: anyone can write any
/// address of such a domain.
pub fn sender_authenticated(auth: Option<&serde_json::Value>, sender: &str) -> bool {
    let Some(auth) = auth else {
        return false;
    };
    let Some((_, domain)) = sender.rsplit_once('@') else {
        return false;
    };
    let domain = domain.trim_end_matches('.');
    if domain.is_empty() {
        return false;
    }
    let is = |v: Option<&serde_json::Value>, want: &str| {
        v.and_then(|v| v.as_str())
            .is_some_and(|s| s.eq_ignore_ascii_case(want))
    };
    let same_domain = |v: Option<&serde_json::Value>| {
        v.and_then(|v| v.as_str())
            .is_some_and(|d| d.trim_end_matches('.').eq_ignore_ascii_case(domain))
    };
    if is(auth.pointer("/dmarc/result"), "fail") {
        return false;
    }
    if is(auth.pointer("/dmarc/result"), "pass") && same_domain(auth.pointer("/dmarc/domain")) {
        return true;
    }
    let dkim = auth
        .get("dkim")
        .and_then(|d| d.as_array())
        .is_some_and(|rows| {
            rows.iter()
                .any(|r| is(r.get("result"), "pass") && same_domain(r.get("domain")))
        });
    dkim || (is(auth.pointer("/spf/result"), "pass") && same_domain(auth.pointer("/spf/domain")))
}

/// The first text/calendar object of a message, bounded.
fn calendar_part(raw: &[u8]) -> Option<String> {
    use mail_parser::MimeHeaders;
    let msg = mail_parser::MessageParser::new().parse(raw)?;
    for part in msg.parts.iter().take(MAX_IMIP_PARTS) {
        let Some(ct) = part.content_type() else {
            continue;
        };
        if !(ct.ctype().eq_ignore_ascii_case("text")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("calendar")))
        {
            continue;
        }
        let body = part.contents();
        if body.len() > MAX_IMIP_BYTES {
            return None;
        }
        return std::str::from_utf8(body).ok().map(str::to_string);
    }
    None
}

impl Core {
    /// Installs the signer for mail the server sends for accounts (once).
    pub fn set_mail_signer(&self, signer: std::sync::Arc<dyn MailSigner>) {
        let _ = self.mail_signer.set(signer);
    }

    /// Queues an iMIP message from `from` (account `account`) to `to`.
    pub(crate) async fn imip_send(
        &self,
        ctx: &Ctx,
        account: Option<PrincipalId>,
        from: &str,
        to: &str,
        cal: &Cal,
    ) -> Result<()> {
        let (Ok(f), Ok(t)) = (
            crate::address::parse_address(from),
            crate::address::parse_address(to),
        ) else {
            return Err(crate::CoreError::invalid("address", "not a mail address"));
        };
        let (from, to) = (f.to_string(), t.to_string());
        let mut raw = build_message(&from, &to, cal);
        if let Some(signer) = self.mail_signer.get() {
            match signer.sign(self, &raw).await {
                Ok(Some(fields)) => {
                    let mut signed = fields.into_bytes();
                    signed.extend_from_slice(&raw);
                    raw = signed;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "iMIP message not signed"),
            }
        }
        // A UTF-8 address (in the envelope or the From/To fields) needs SMTPUTF8 (RFC 6531).
        let envelope = EnvelopeOptions {
            smtputf8: envelope_needs_smtputf8(&from, &to, &raw),
            lifetime_ms: Some(self.queue_lifetime_ms()),
            ..Default::default()
        };
        let parts = queue_parts(
            &from,
            account,
            &[OutboundRecipient {
                address: to.clone(),
                orcpt: None,
                notify: None,
            }],
            &envelope,
            is_eight_bit(&raw),
        );
        let blob = self.blobs.put(raw).await?;
        let (op, id, _) = parts.enqueue_op(&blob);
        let method = cal.method().unwrap_or_default();
        let uid = cal.uid().unwrap_or_default();
        self.store
            .write(vec![
                op,
                Op::AppendLedger(Core::ledger_record(
                    ctx,
                    "dav.schedule.imip",
                    Some(&to),
                    vec![format!("queue:{id}"), format!("uid:{uid}")],
                    "ok",
                    None,
                    Some(json!({"method": method, "from": from, "to": to, "size": blob.size})),
                )),
            ])
            .await?;
        self.queue_notify.notify_one();
        Ok(())
    }

    async fn imip_ignored(&self, ctx: &Ctx, sender: &str, why: &str) {
        let _ = self
            .record(
                ctx,
                "dav.schedule.imip.ignored",
                Some(sender),
                vec![],
                "ignored",
                None,
                Some(json!({"why": why})),
            )
            .await;
    }

    /// Processes a delivered message's iMIP content (see the module documentation).
    /// `junk`: the message went to junk; `authentication`: the verifier's summary
    /// (`None` for mail that did not come through SMTP verification).
    pub(crate) async fn imip_inbound(
        &self,
        ctx: &Ctx,
        mail_from: &str,
        recipients: &[Principal],
        raw: &[u8],
        junk: bool,
        authentication: Option<&serde_json::Value>,
    ) {
        let sender = mail_from.trim().to_ascii_lowercase();
        if sender.is_empty() {
            return;
        }
        let Some(text) = calendar_part(raw) else {
            return;
        };
        let shown: String = sender.chars().take(320).collect();
        if junk {
            return self.imip_ignored(ctx, &shown, "filed as junk").await;
        }
        if !sender_authenticated(authentication, &sender) {
            return self
                .imip_ignored(
                    ctx,
                    &shown,
                    "the sender's domain is not authenticated (no DMARC, aligned DKIM or SPF pass)",
                )
                .await;
        }
        match crate::delivery::single_from(raw) {
            Ok(f) if f.eq_ignore_ascii_case(&sender) => {}
            _ => {
                return self
                    .imip_ignored(ctx, &shown, "From differs from the envelope sender")
                    .await;
            }
        }
        let Some(cal) = Cal::parse(&text) else {
            return self.imip_ignored(ctx, &shown, "not iCalendar").await;
        };
        if cal.root.subs.len() > MAX_IMIP_COMPONENTS {
            return self.imip_ignored(ctx, &shown, "too many components").await;
        }
        let method = cal.method().unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for p in recipients {
            if !seen.insert(p.id) {
                continue;
            }
            if !matches!(
                p.kind,
                PrincipalKind::Individual | PrincipalKind::Resource | PrincipalKind::Shared
            ) {
                continue;
            }
            let addr = match self.sched_address(p).await {
                Ok(a) => a,
                Err(_) => continue,
            };
            let r = match method.as_str() {
                "REPLY" => self.imip_reply(ctx, p, &addr, &sender, &cal).await,
                "REQUEST" | "CANCEL" => {
                    self.imip_request(ctx, p, &addr, &sender, &cal, &method)
                        .await
                }
                _ => Ok(Some("not a REQUEST, REPLY or CANCEL")),
            };
            match r {
                Ok(None) => {}
                Ok(Some(why)) => self.imip_ignored(ctx, &shown, why).await,
                Err(e) => {
                    tracing::warn!(error = %e, "iMIP message not processed");
                }
            }
        }
    }

    async fn imip_reply(
        &self,
        ctx: &Ctx,
        p: &Principal,
        addr: &str,
        sender: &str,
        cal: &Cal,
    ) -> Result<Option<&'static str>> {
        // Local attendees answer through CalDAV: a mailed REPLY naming one of the
        // recipient's own domain is not theirs to make.
        if !matches!(
            self.sched_classify(sender, p.domain).await?,
            Recipient::External
        ) {
            return Ok(Some("a local attendee does not reply by mail"));
        }
        // Only the sender speaks for itself: every other ATTENDEE is dropped first.
        let mut only = cal.clone();
        for m in only.mains_mut() {
            m.props
                .retain(|q| q.name != "ATTENDEE" || q.address().as_deref() == Some(sender));
        }
        if only.attendee(sender).is_none() {
            return Ok(Some("the REPLY does not come from its attendee"));
        }
        Ok(
            match self.sched_apply_reply(ctx, p, addr, sender, &only).await? {
                true => None,
                false => Some("no event of the recipient's has the sender as attendee"),
            },
        )
    }

    async fn imip_request(
        &self,
        ctx: &Ctx,
        p: &Principal,
        addr: &str,
        sender: &str,
        cal: &Cal,
        method: &str,
    ) -> Result<Option<&'static str>> {
        if cal.organizer().as_deref() != Some(sender) {
            return Ok(Some("ORGANIZER is not the sender"));
        }
        if !matches!(
            self.sched_classify(sender, p.domain).await?,
            Recipient::External
        ) {
            return Ok(Some("a local ORGANIZER does not schedule by mail"));
        }
        if cal.attendee(addr).is_none() {
            return Ok(Some("the recipient is not an attendee"));
        }
        let mut plain = cal.clone();
        plain.set_method(None);
        // Indexing may expand a series: off the async workers, as a PUT's is.
        let text = plain.to_text();
        let valid = tokio::task::spawn_blocking(move || super::index_icalendar(&text).is_ok())
            .await
            .unwrap_or(false);
        if !valid {
            return Ok(Some("not a valid calendar object"));
        }
        // RFC 5546 §2.1.5: an older revision than the copy's is not applied (a replayed
        // or late message), a CANCEL no more than a REQUEST; per instance for a message
        // about instances.
        if let Some(uid) = cal.uid()
            && let Some((_, r)) = self.sched_find(p.id, &uid).await?
            && let Some(old) = Cal::parse(&r.data)
        {
            let msg = cal.clone();
            let older =
                tokio::task::spawn_blocking(move || super::sched::older_than_copy(&old, &msg))
                    .await
                    .unwrap_or(true);
            if older {
                return Ok(Some("an older SEQUENCE than the recipient's copy"));
            }
        }
        if method == "CANCEL" {
            self.sched_cancel(ctx, sender, p, addr, &itip(cal, "CANCEL"))
                .await?;
            return Ok(None);
        }
        let request = itip(cal, "REQUEST");
        // A room answers by itself only to organisers outside this server: another
        // hosted domain (another tenant) does not learn its busy time from the answer.
        let hosted_sender = match sender.rsplit_once('@') {
            Some((_, d)) => self.store.domains().await?.iter().any(|x| {
                x.name
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(d.trim_end_matches('.'))
            }),
            None => true,
        };
        if p.kind == PrincipalKind::Resource && !hosted_sender {
            let answer = self.sched_room_answer(ctx, p, addr, &plain).await?;
            self.sched_deliver(ctx, sender, p, addr, &request, Some(answer))
                .await?;
            let reply = reply_of(&plain, addr, answer);
            self.imip_send(ctx, Some(p.id), addr, sender, &reply)
                .await?;
            return Ok(None);
        }
        self.sched_deliver(ctx, sender, p, addr, &request, None)
            .await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_cannot_add_header_fields() {
        let ev = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:u\r\nDTSTART:20300101T090000Z\r\nSUMMARY:hi\\nBcc: evil@x.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let mut cal = Cal::parse(ev).unwrap();
        // A value with real line breaks (as a hostile parser could produce).
        cal.root.subs[0].props.iter_mut().for_each(|p| {
            if p.name == "SUMMARY" {
                p.value = "hi\r\nBcc: evil@x.org\r\n\r\nbody".into();
            }
        });
        let raw = build_message("a@x.org", "b@y.org", &cal);
        let text = String::from_utf8(raw).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        assert!(!head.lines().any(|l| l.starts_with("Bcc")), "{head}");
        assert!(head.contains("Subject: Invitation: hi  Bcc: evil@x.org"));
        assert!(text.contains("method=REQUEST"));
    }

    #[test]
    fn only_positive_authentication_of_the_from_domain_counts() {
        let v = |spf: &str, spf_d: &str, dkim: serde_json::Value, dmarc: &str, dmarc_d: &str| {
            json!({
                "spf": {"result": spf, "domain": spf_d},
                "dkim": dkim,
                "arc": "none",
                "dmarc": {"result": dmarc, "policy": null, "domain": dmarc_d},
            })
        };
        let s = "carol@ext.test";
        // Nothing published: none everywhere.
        assert!(!sender_authenticated(
            Some(&v("none", "ext.test", json!([]), "none", "ext.test")),
            s
        ));
        assert!(!sender_authenticated(None, s));
        // DMARC pass.
        assert!(sender_authenticated(
            Some(&v("none", "", json!([]), "pass", "ext.test")),
            s
        ));
        // Aligned DKIM (d= the From domain), not another domain's.
        let dk = |d: &str, r: &str| json!([{"domain": d, "selector": "s", "result": r}]);
        assert!(sender_authenticated(
            Some(&v("none", "", dk("EXT.test", "pass"), "none", "ext.test")),
            s
        ));
        assert!(!sender_authenticated(
            Some(&v("none", "", dk("evil.test", "pass"), "none", "ext.test")),
            s
        ));
        assert!(!sender_authenticated(
            Some(&v("none", "", dk("ext.test", "fail"), "none", "ext.test")),
            s
        ));
        // SPF pass for the sender's domain only.
        assert!(sender_authenticated(
            Some(&v("pass", "ext.test", json!([]), "none", "ext.test")),
            s
        ));
        assert!(!sender_authenticated(
            Some(&v("pass", "helo.test", json!([]), "none", "ext.test")),
            s
        ));
        assert!(!sender_authenticated(
            Some(&v("softfail", "ext.test", json!([]), "none", "ext.test")),
            s
        ));
        // A DMARC fail outweighs an SPF pass.
        assert!(!sender_authenticated(
            Some(&v("pass", "ext.test", json!([]), "fail", "ext.test")),
            s
        ));
    }

    #[test]
    fn utf8_addresses_ask_for_smtputf8() {
        let cal = Cal::parse("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:u\r\nSUMMARY:Réunion\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").unwrap();
        let raw = build_message("a@x.org", "b@y.org", &cal);
        assert!(!envelope_needs_smtputf8("a@x.org", "b@y.org", &raw));
        let raw = build_message("a@x.org", "jürgen@y.org", &cal);
        assert!(envelope_needs_smtputf8("a@x.org", "jürgen@y.org", &raw));
        assert!(envelope_needs_smtputf8("zoë@x.org", "b@y.org", &raw));
    }

    #[test]
    fn parts_beyond_the_cap_are_not_looked_at() {
        // The multipart container is part 0; `fillers` text parts, then the calendar.
        let msg = |fillers: usize| {
            let mut m = String::from(
                "From: <a@x.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
            );
            for i in 0..fillers {
                m.push_str(&format!(
                    "--b\r\nContent-Type: text/plain\r\n\r\nfiller {i}\r\n"
                ));
            }
            m.push_str("--b\r\nContent-Type: text/calendar; method=REPLY\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n--b--\r\n");
            m.into_bytes()
        };
        assert!(calendar_part(&msg(MAX_IMIP_PARTS - 2)).is_some());
        assert!(calendar_part(&msg(MAX_IMIP_PARTS - 1)).is_none());
    }

    #[test]
    fn non_ascii_subject_is_encoded() {
        assert_eq!(header_text("plain"), "plain");
        let e = header_text("Réunion");
        assert!(e.starts_with("=?utf-8?B?") && e.is_ascii());
    }

    #[test]
    fn finds_the_calendar_part_within_caps() {
        let cal = Cal::parse("BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:u\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").unwrap();
        let raw = build_message("a@x.org", "b@y.org", &cal);
        assert!(may_carry_imip(&raw));
        let got = calendar_part(&raw).unwrap();
        assert!(got.contains("METHOD:REPLY"));
        let big = format!(
            "Content-Type: text/calendar\r\n\r\n{}",
            "X".repeat(MAX_IMIP_BYTES + 1)
        );
        assert!(calendar_part(big.as_bytes()).is_none());
        let mut huge = b"Content-Type: text/calendar\r\n\r\n".to_vec();
        huge.resize(MAX_IMIP_MESSAGE + 1, b'x');
        assert!(!may_carry_imip(&huge));
        huge.truncate(MAX_IMIP_MESSAGE);
        assert!(may_carry_imip(&huge));
    }
}
