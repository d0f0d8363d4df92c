//! Trace fields added at delivery, and forged Authentication-Results removed.
//!
//! **Standards:** RFC 5321 §4.4 (Return-Path and Received at final delivery), RFC 3848
//! and RFC 6531 §3.7.3 (the `with` protocol names), RFC 5322 §3.3 (date-time), RFC 8601
//! §5 (remove Authentication-Results fields that claim our authserv-id).
//!
//! **Security:** every value written here was checked at the edge: the HELO name by
//! `command` (letters, digits, `-._` or an address literal), addresses by
//! `core::address` (no CR, LF or other control characters), so no field can be ended
//! early or a new one injected.

use postern_core::delivery::header_fields;
use std::net::IpAddr;

/// The `with` clause (RFC 3848 §1; RFC 6531 §3.7.3 for the UTF8 forms).
pub fn protocol(esmtp: bool, utf8: bool, tls: bool, auth: bool) -> String {
    let base = match (esmtp, utf8) {
        (_, true) => "UTF8SMTP",
        (true, false) => "ESMTP",
        (false, false) => "SMTP",
    };
    let mut s = base.to_string();
    if esmtp || utf8 {
        if tls {
            s.push('S');
        }
        if auth {
            s.push('A');
        }
    }
    s
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3 address literals).
pub fn address_literal(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

/// RFC 5322 §3.3 date-time in UTC, e.g. `Mon, 13 Apr 2026 08:00:00 +0000`.
pub fn date_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    );
    now.format(&fmt)
        .unwrap_or_else(|_| "Thu, 1 Jan 1970 00:00:00 +0000".into())
}

/// The fields written above the message at final delivery: Return-Path (RFC 5321 §4.4:
/// the delivery server MUST insert it) and Received (§4.4: "from" the HELO name and the
/// client's address literal, "by" us, "with" the protocol, "id", "for" the recipient
/// when there is exactly one, and the date).
#[allow(clippy::too_many_arguments)]
pub fn trace_fields(
    mail_from: &str,
    helo: &str,
    ip: IpAddr,
    hostname: &str,
    with: &str,
    id: &str,
    single_rcpt: Option<&str>,
    date: &str,
) -> String {
    let mut s = format!("Return-Path: <{mail_from}>\r\n");
    s.push_str(&format!(
        "Received: from {helo} ({})\r\n\tby {hostname} with {with} id {id}\r\n",
        address_literal(ip)
    ));
    match single_rcpt {
        Some(r) => s.push_str(&format!("\tfor <{r}>; {date}\r\n")),
        None => s.push_str(&format!("\t; {date}\r\n")),
    }
    s
}

/// The authserv-id of an Authentication-Results value (RFC 8601 §2.2: CFWS, then a
/// token or quoted-string), lower-cased.
fn authserv_id(value: &[u8]) -> Option<String> {
    let mut i = 0;
    // Skip folding white space and comments, which may nest (RFC 5322 §3.2.2).
    loop {
        while i < value.len() && matches!(value[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
        if value.get(i) == Some(&b'(') {
            let mut depth = 0usize;
            while i < value.len() {
                match value[i] {
                    b'\\' => i += 1,
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            continue;
        }
        break;
    }
    let rest = value.get(i..)?;
    let id: Vec<u8> = if let Some(q) = rest.strip_prefix(b"\"") {
        let end = q.iter().position(|&b| b == b'"')?;
        q[..end].to_vec()
    } else {
        rest.iter()
            .take_while(|&&b| !matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n' | b'('))
            .copied()
            .collect()
    };
    (!id.is_empty()).then(|| String::from_utf8_lossy(&id).to_ascii_lowercase())
}

/// Removes from the header section every Authentication-Results field whose
/// authserv-id is `ours` (RFC 8601 §5: a receiver MUST remove such fields arriving from
/// outside, or a sender could forge our verdict). Returns the message and how many
/// fields were removed.
pub fn strip_forged_results(raw: Vec<u8>, ours: &str) -> (Vec<u8>, usize) {
    let ours = ours.trim_end_matches('.').to_ascii_lowercase();
    let drop: Vec<(usize, usize)> = header_fields(&raw)
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case(b"authentication-results"))
        .filter(|f| {
            let value = raw.get(f.value_start..f.end).unwrap_or_default();
            authserv_id(value).is_some_and(|id| id.trim_end_matches('.') == ours)
        })
        .map(|f| (f.start, f.end))
        .collect();
    if drop.is_empty() {
        return (raw, 0);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    for (s, e) in &drop {
        out.extend_from_slice(&raw[at..*s]);
        at = *e;
    }
    out.extend_from_slice(&raw[at..]);
    (out, drop.len())
}

/// The `Received` fields of the top-level header section of `msg` (RFC 5321 §6.3 loop
/// detection counts them): lines starting `Received:` in any case, up to the empty
/// line that ends the header.
pub fn received_count(msg: &[u8]) -> usize {
    msg.split(|&b| b == b'\n')
        .take_while(|l| !l.trim_ascii_end().is_empty())
        .filter(|l| l.len() >= 9 && l[..9].eq_ignore_ascii_case(b"received:"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_results_removed() {
        let raw = b"Authentication-Results: MX.Example.com; spf=pass\r\n\
Authentication-Results: (comment)\r\n mx.example.com 1; dkim=pass\r\n\
Authentication-Results: other.example; spf=fail\r\n\
Authentication-Results: \"mx.example.com\"; dmarc=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.example.com; body\r\n"
            .to_vec();
        let (out, n) = strip_forged_results(raw, "mx.example.com");
        assert_eq!(n, 3);
        assert_eq!(
            out,
            b"Authentication-Results: other.example; spf=fail\r\nSubject: hi\r\n\r\nAuthentication-Results: mx.example.com; body\r\n"
        );
        let (same, n) = strip_forged_results(b"Subject: x\r\n\r\n".to_vec(), "mx.example.com");
        assert_eq!((same.as_slice(), n), (&b"Subject: x\r\n\r\n"[..], 0));
    }

    #[test]
    fn protocols() {
        assert_eq!(protocol(true, false, true, true), "ESMTPSA");
        assert_eq!(protocol(true, false, false, false), "ESMTP");
        assert_eq!(protocol(false, false, false, false), "SMTP");
        assert_eq!(protocol(true, true, true, false), "UTF8SMTPS");
        assert_eq!(
            address_literal("::ffff:192.0.2.1".parse().unwrap()),
            "[192.0.2.1]"
        );
        assert_eq!(
            address_literal("2001:db8::1".parse().unwrap()),
            "[IPv6:2001:db8::1]"
        );
        let d = date_now();
        assert!(d.ends_with(" +0000") && d.contains(", "), "{d}");
    }
}
