//! Delivery status notifications (RFC 3464 in a multipart/report, RFC 6522): the bounce
//! when a recipient failed for good or the queue gave up, and the delay notice while it
//! still retries.
//!
//! Internationalised mail (RFC 6533): when the sender's or a recipient's address, or the
//! original's header, is not ASCII, the report is a `message/global-delivery-status`
//! (UTF-8 fields, `utf-8;` address types) and the original comes back as
//! `message/global` or `message/global-headers` (`report-type=global-delivery-status`,
//! 8-bit parts labelled `Content-Transfer-Encoding: 8bit`). Such a report needs an
//! SMTPUTF8 transaction only when its envelope or its own header is not ASCII
//! (`core::outbound` decides); a UTF-8 body part needs only 8BITMIME (RFC 6532).
//!
//! Never sent for a message whose reverse-path is null (`MAIL FROM:<>`): a DSN is itself
//! sent from `<>`, so a failing DSN cannot start a loop (RFC 5321 §4.5.5, §6.1).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// Size of the original kept in a full-return DSN; past it only the header is returned
/// (`text/rfc822-headers`), so a bounce of a 50 MB message is not another 50 MB message.
pub const MAX_RETURNED_BODY: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// RFC 3461 RET: what of the original the sender wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ret {
    #[default]
    Full,
    Headers,
}

#[derive(Debug, Clone)]
pub struct DsnRecipient {
    /// The recipient as delivered to (`Final-Recipient: rfc822;…`).
    pub final_recipient: String,
    /// ORCPT (RFC 3461 §4.2) as given by the sender, already `addr-type;xtext`.
    pub original_recipient: Option<String>,
    pub action: Action,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// The host that answered (`Remote-MTA: dns;…`).
    pub remote_mta: Option<String>,
    /// The remote server's reply, as received (`Diagnostic-Code: smtp;…`).
    pub diagnostic: Option<String>,
    pub last_attempt: Option<OffsetDateTime>,
    /// For `delayed`: when the queue gives up.
    pub will_retry_until: Option<OffsetDateTime>,
}

pub struct DsnInput<'a> {
    /// Our host name (`Reporting-MTA`, the From's domain, the Message-ID's right side).
    pub reporting_mta: &'a str,
    /// The original envelope sender: the DSN's recipient.
    pub return_to: &'a str,
    /// ENVID (RFC 3461 §4.4), xtext as given.
    pub envid: Option<&'a str>,
    pub arrival: OffsetDateTime,
    pub now: OffsetDateTime,
    pub recipients: &'a [DsnRecipient],
    pub original: &'a [u8],
    pub ret: Ret,
}

/// Removes what must not reach a header field: CR, LF and other controls (a remote reply
/// is multi-line and comes from a stranger), and keeps it to a sane length.
fn field_text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    let mut last_space = false;
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// A field of the `message/delivery-status` part, which is US-ASCII (RFC 3464 §2.1):
/// controls and non-ASCII characters become `?`.
fn ascii_field(s: &str, max: usize) -> String {
    field_text(s, max)
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect()
}

/// Decodes xtext (RFC 3461 §4): `+HH` is the octet HH. What does not decode is kept.
pub fn xtext_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// ORCPT as given (`rfc822;a+40b`) in the DSN field's form (`rfc822; a@b`), RFC 3461
/// §6.3: the xtext decoded.
fn original_recipient(orcpt: &str) -> String {
    match orcpt.split_once(';') {
        Some((kind, addr)) => format!("{}; {}", kind.trim(), xtext_decode(addr.trim())),
        None => xtext_decode(orcpt),
    }
}

pub(crate) fn date(t: OffsetDateTime) -> String {
    t.format(&Rfc2822).unwrap_or_default()
}

/// Most of a message's header returned in a DSN.
pub const MAX_RETURNED_HEADER: usize = 64 * 1024;

/// The header part of a message: up to and including the blank line that ends it (or all
/// of it when there is no body), at most [`MAX_RETURNED_HEADER`] octets.
pub fn header_of(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
        .unwrap_or(raw.len());
    &raw[..end.min(MAX_RETURNED_HEADER)]
}

/// Whether the report about `input` must be internationalised (RFC 6533 §3, §6): an
/// address or the original's header holds non-ASCII text, so the report (and the SMTP
/// transaction that carries it) needs UTF-8.
pub fn is_global(input: &DsnInput<'_>) -> bool {
    !input.return_to.is_ascii()
        || !header_of(input.original).is_ascii()
        || input.recipients.iter().any(|r| {
            !r.final_recipient.is_ascii()
                || r.original_recipient
                    .as_deref()
                    .is_some_and(|o| !original_recipient(o).is_ascii())
        })
}

/// An address field of the status part: `rfc822; a@b`, or for a non-ASCII address in a
/// global report RFC 6533 §3's `utf-8; …` (the unitext form: UTF-8 as is, controls
/// removed).
fn address_field(global: bool, address: &str) -> String {
    if global && !address.is_ascii() {
        format!("utf-8; {}", field_text(address, 512))
    } else {
        format!("rfc822; {}", ascii_field(address, 512))
    }
}

/// Builds the whole DSN message (header and body, CRLF line ends). The caller sends it
/// with `MAIL FROM:<>` to `return_to`.
pub fn build(input: &DsnInput<'_>) -> Vec<u8> {
    let global = is_global(input);
    // Fields of the status part: UTF-8 allowed in a global one (RFC 6533 §6.2).
    let status_text = |s: &str, max: usize| {
        if global {
            field_text(s, max)
        } else {
            ascii_field(s, max)
        }
    };
    let host = field_text(input.reporting_mta, 255);
    let boundary = format!(
        "postern-dsn-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let all = |a: &[Action]| input.recipients.iter().all(|r| a.contains(&r.action));
    let (subject, intro) = if all(&[Action::Delayed]) {
        (
            "Delayed Mail (still being retried)",
            "Your message could not be delivered yet to the recipients below. It stays\r\n\
in the queue and delivery will be tried again; you do not need to resend it.\r\n\r\n",
        )
    } else if all(&[Action::Delivered, Action::Relayed, Action::Delayed]) {
        (
            "Successful Mail Delivery Report",
            "Your message was delivered to the recipients below (or, for \"relayed\", handed\r\n\
to a mail system that cannot report delivery).\r\n\r\n",
        )
    } else {
        (
            "Undelivered Mail Returned to Sender",
            "Your message could not be delivered to one or more recipients. It is\r\n\
attached below.\r\n\r\n",
        )
    };
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n"
    ));
    m.push_str(&format!("To: <{}>\r\n", field_text(input.return_to, 512)));
    m.push_str(&format!("Subject: {subject}\r\n"));
    m.push_str(&format!("Date: {}\r\n", date(input.now)));
    m.push_str(&format!(
        "Message-ID: <dsn.{:016x}@{host}>\r\n",
        rand::random::<u64>()
    ));
    // RFC 3834 §5: automatic responses say so, so that auto-responders stay quiet.
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    // RFC 6522 §3: report-type names the second part's subtype.
    let report_type = if global {
        "global-delivery-status"
    } else {
        "delivery-status"
    };
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type={report_type};\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str("This is a MIME-encapsulated message.\r\n\r\n");

    // Part 1: for people.
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ));
    m.push_str(&format!("This is the mail system at host {host}.\r\n\r\n"));
    m.push_str(intro);
    for r in input.recipients {
        let why = r
            .diagnostic
            .as_deref()
            .map(|d| field_text(d, 900))
            .unwrap_or_else(|| format!("status {}", r.status));
        let via = r
            .remote_mta
            .as_deref()
            .map(|h| format!(" (host {})", field_text(h, 255)))
            .unwrap_or_default();
        m.push_str(&format!(
            "<{}>{}: {}\r\n",
            field_text(&r.final_recipient, 512),
            via,
            why
        ));
    }
    m.push_str("\r\n");

    // Part 2: message/delivery-status (RFC 3464 §2.1–2.3), or its RFC 6533 §6.2 form.
    let status_type = if global {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    // The status part's fields are written below; a global one may hold UTF-8, so it
    // is labelled 8bit (RFC 2045 §6) when it does. Built first, then headed.
    let mut status = String::new();
    status.push_str(&format!(
        "Reporting-MTA: dns; {}\r\n",
        ascii_field(&host, 255)
    ));
    if let Some(envid) = input.envid {
        // RFC 3461 §6.3(a): the ENVID decoded from xtext.
        status.push_str(&format!(
            "Original-Envelope-Id: {}\r\n",
            ascii_field(&xtext_decode(envid), 100)
        ));
    }
    status.push_str(&format!("Arrival-Date: {}\r\n", date(input.arrival)));
    for r in input.recipients {
        status.push_str("\r\n");
        if let Some(orcpt) = &r.original_recipient {
            let decoded = original_recipient(orcpt);
            let field = match decoded.split_once(';') {
                // RFC 6533 §3: a UTF-8 address is of type utf-8, whatever the ORCPT named.
                Some((_, addr)) if global && !addr.is_ascii() => address_field(true, addr.trim()),
                _ => ascii_field(&decoded, 512),
            };
            status.push_str(&format!("Original-Recipient: {field}\r\n"));
        }
        status.push_str(&format!(
            "Final-Recipient: {}\r\n",
            address_field(global, &r.final_recipient)
        ));
        status.push_str(&format!("Action: {}\r\n", r.action.as_str()));
        status.push_str(&format!("Status: {}\r\n", ascii_field(&r.status, 20)));
        if let Some(h) = &r.remote_mta {
            status.push_str(&format!("Remote-MTA: dns; {}\r\n", ascii_field(h, 255)));
        }
        if let Some(d) = &r.diagnostic {
            status.push_str(&format!(
                "Diagnostic-Code: smtp; {}\r\n",
                status_text(d, 900)
            ));
        }
        if let Some(t) = r.last_attempt {
            status.push_str(&format!("Last-Attempt-Date: {}\r\n", date(t)));
        }
        if let Some(t) = r.will_retry_until {
            status.push_str(&format!("Will-Retry-Until: {}\r\n", date(t)));
        }
    }
    status.push_str("\r\n");
    let cte = if status.is_ascii() {
        ""
    } else {
        "Content-Transfer-Encoding: 8bit\r\n"
    };
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: {status_type}\r\n{cte}\r\n"
    ));
    m.push_str(&status);

    // Part 3: the original (RFC 3462 message/rfc822, or only its header).
    let mut out = m.into_bytes();
    let full = input.ret == Ret::Full && input.original.len() <= MAX_RETURNED_BODY;
    // RFC 6533 §5, §6.3: message/global and message/global-headers in a global report.
    let (whole, headers) = if global {
        ("message/global", "message/global-headers")
    } else {
        ("message/rfc822", "text/rfc822-headers")
    };
    // 8-bit content is labelled so (RFC 2045 §6; RFC 6532 §3.7).
    let cte = |part: &[u8]| {
        if part.is_ascii() {
            ""
        } else {
            "Content-Transfer-Encoding: 8bit\r\n"
        }
    };
    if full {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: {whole}\r\n{}\r\n",
                cte(input.original)
            )
            .as_bytes(),
        );
        push_crlf(&mut out, input.original);
    } else {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: {headers}\r\n{}\r\n",
                cte(header_of(input.original))
            )
            .as_bytes(),
        );
        push_crlf(&mut out, header_of(input.original));
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// Appends `data` with every line end made CRLF (a stored message may hold bare LFs; the
/// wire never carries one).
fn push_crlf(out: &mut Vec<u8>, data: &[u8]) {
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        if prev == b'\r' && b != b'\n' {
            out.push(b'\n');
        }
        out.push(b);
        prev = b;
    }
    if prev == b'\r' {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn rcpt(action: Action, status: &str, diag: Option<&str>) -> DsnRecipient {
        DsnRecipient {
            final_recipient: "bob@example.net".into(),
            original_recipient: Some("rfc822;bob@example.net".into()),
            action,
            status: status.into(),
            remote_mta: Some("mx.example.net".into()),
            diagnostic: diag.map(str::to_string),
            last_attempt: Some(datetime!(2026-11-25 08:00 UTC)),
            will_retry_until: None,
        }
    }

    fn input<'a>(rcpts: &'a [DsnRecipient], original: &'a [u8], ret: Ret) -> DsnInput<'a> {
        DsnInput {
            reporting_mta: "mail.example.com",
            return_to: "alice@example.com",
            envid: Some("QQ314159"),
            arrival: datetime!(2026-11-25 07:00 UTC),
            now: datetime!(2026-11-25 08:00 UTC),
            recipients: rcpts,
            original,
            ret,
        }
    }

    const ORIGINAL: &[u8] =
        b"From: alice@example.com\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nbody line\r\n";

    #[test]
    fn failure_report_has_the_rfc3464_fields() {
        let rcpts = [rcpt(
            Action::Failed,
            "5.1.1",
            Some("550 5.1.1 <bob@example.net>: user unknown\r\n550 second line"),
        )];
        let dsn = build(&input(&rcpts, ORIGINAL, Ret::Full));
        let text = String::from_utf8(dsn.clone()).expect("utf8");
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("Subject: Undelivered Mail Returned to Sender\r\n"));
        assert!(text.contains("Auto-Submitted: auto-replied\r\n"));
        assert!(text.contains("Reporting-MTA: dns; mail.example.com\r\n"));
        assert!(text.contains("Original-Envelope-Id: QQ314159\r\n"));
        assert!(text.contains("Original-Recipient: rfc822; bob@example.net\r\n"));
        assert!(text.contains("Final-Recipient: rfc822; bob@example.net\r\n"));
        assert!(text.contains("Action: failed\r\nStatus: 5.1.1\r\n"));
        assert!(text.contains("Remote-MTA: dns; mx.example.net\r\n"));
        // A multi-line remote reply becomes one line; nothing can inject a field.
        assert!(text.contains(
            "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: user unknown 550 second line\r\n"
        ));
        assert!(text.contains("Content-Type: message/rfc822\r\n\r\nFrom: alice@example.com"));
        // Every line ends in CRLF; no bare LF or CR.
        for (i, &b) in dsn.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(dsn[i - 1], b'\r', "bare LF at {i}");
            }
            if b == b'\r' {
                assert_eq!(dsn.get(i + 1), Some(&b'\n'), "bare CR at {i}");
            }
        }
        // It parses as a report with three parts.
        let parsed = mail_parser::MessageParser::default()
            .parse(&dsn)
            .expect("parses");
        // The multipart root and its three parts (the attached message adds its own).
        assert!(parsed.parts.len() >= 4, "{}", parsed.parts.len());
        assert_eq!(
            mail_parser::MimeHeaders::content_type(&parsed)
                .and_then(|c| c.attribute("report-type")),
            Some("delivery-status")
        );
    }

    #[test]
    fn delay_notice_and_header_only_return() {
        let mut r = rcpt(Action::Delayed, "4.4.1", Some("connection refused"));
        r.will_retry_until = Some(datetime!(2026-11-30 07:00 UTC));
        let rcpts = [r];
        let text = String::from_utf8(build(&input(&rcpts, ORIGINAL, Ret::Headers))).expect("utf8");
        assert!(text.contains("Subject: Delayed Mail (still being retried)\r\n"));
        assert!(text.contains("Action: delayed\r\n"));
        assert!(text.contains("Will-Retry-Until: Mon, 30 Nov 2026 07:00:00 +0000\r\n"));
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n"));
        assert!(!text.contains("body line"));
    }

    #[test]
    fn large_originals_come_back_as_headers_only() {
        let mut big = ORIGINAL.to_vec();
        big.extend(std::iter::repeat_n(b'x', MAX_RETURNED_BODY));
        let rcpts = [rcpt(Action::Failed, "5.0.0", None)];
        let text = String::from_utf8(build(&input(&rcpts, &big, Ret::Full))).expect("utf8");
        assert!(text.contains("text/rfc822-headers"));
        assert!(text.len() < 10_000);
    }

    #[test]
    fn xtext_is_decoded_and_fields_stay_ascii() {
        assert_eq!(xtext_decode("QQ+2B314+3D"), "QQ+314=");
        assert_eq!(xtext_decode("bad+ZZend+4"), "bad+ZZend+4");
        assert_eq!(
            original_recipient("rfc822;Bob+40example.net"),
            "rfc822; Bob@example.net"
        );
        let mut r = rcpt(Action::Failed, "5.1.1", Some("550 pas d'utilisateur «bob»"));
        // xtext-encoded, ASCII once decoded (a UTF-8 one makes the report global:
        // `internationalised_mail_gets_a_global_report`).
        r.original_recipient = Some("rfc822;b+2Bb+40example.net".into());
        let rcpts = [r];
        let mut i = input(&rcpts, ORIGINAL, Ret::Headers);
        i.envid = Some("ID+2B1");
        let dsn = build(&i);
        let status_part = String::from_utf8_lossy(&dsn).into_owned();
        let part = status_part
            .split("Content-Type: message/delivery-status")
            .nth(1)
            .and_then(|p| p.split("Content-Type: text/rfc822-headers").next())
            .unwrap()
            .to_string();
        assert!(part.is_ascii(), "{part}");
        assert!(part.contains("Original-Envelope-Id: ID+1\r\n"), "{part}");
        assert!(
            part.contains("Original-Recipient: rfc822; b+b@example.net"),
            "{part}"
        );
        assert!(
            part.contains("Diagnostic-Code: smtp; 550 pas d'utilisateur ?bob?"),
            "{part}"
        );
    }

    #[test]
    fn internationalised_mail_gets_a_global_report() {
        const UTF8_ORIGINAL: &[u8] = "From: jos\u{e9}@example.com\r\nTo: \u{7528}\u{6237}@example.net\r\nSubject: caf\u{e9}\r\n\r\nbody\r\n".as_bytes();
        let mut r = rcpt(Action::Failed, "5.1.1", Some("550 5.1.1 «unknown»"));
        r.final_recipient = "\u{7528}\u{6237}@example.net".into();
        r.original_recipient = Some("rfc822;\u{7528}\u{6237}+40example.net".into());
        let rcpts = [r];
        let mut i = input(&rcpts, UTF8_ORIGINAL, Ret::Full);
        i.return_to = "jos\u{e9}@example.com";
        assert!(is_global(&i));
        let text = String::from_utf8(build(&i)).expect("utf8");
        assert!(
            text.contains("Content-Type: multipart/report; report-type=global-delivery-status;")
                && text.contains(
                    "Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                ),
            "{text}"
        );
        assert!(
            text.contains("Final-Recipient: utf-8; \u{7528}\u{6237}@example.net\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Original-Recipient: utf-8; \u{7528}\u{6237}@example.net\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Diagnostic-Code: smtp; 550 5.1.1 «unknown»\r\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "Content-Type: message/global\r\nContent-Transfer-Encoding: 8bit\r\n\r\nFrom: jos\u{e9}@"
            ),
            "{text}"
        );
        assert!(!text.contains("message/rfc822"), "{text}");
        // Headers only: message/global-headers.
        i.ret = Ret::Headers;
        let text = String::from_utf8(build(&i)).expect("utf8");
        assert!(
            text.contains("Content-Type: message/global-headers\r\n"),
            "{text}"
        );
        // Only the header's bytes decide: an ASCII header with an 8-bit body stays classic.
        let rcpts = [rcpt(Action::Failed, "5.1.1", None)];
        let body8 = "From: a@example.com\r\n\r\ncaf\u{e9}\r\n".as_bytes();
        let i = input(&rcpts, body8, Ret::Full);
        assert!(!is_global(&i));
        assert!(
            String::from_utf8(build(&i))
                .expect("utf8")
                .contains("message/delivery-status")
        );
    }

    #[test]
    fn bare_line_ends_in_the_original_become_crlf() {
        let mut out = Vec::new();
        push_crlf(&mut out, b"a\nb\rc\r\nd\r");
        assert_eq!(out, b"a\r\nb\r\nc\r\nd\r\n");
    }
}
