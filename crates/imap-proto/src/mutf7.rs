//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3), for IMAP4rev1 clients that did not
//! ENABLE IMAP4rev2 or UTF8=ACCEPT (RFC 9051 §5.1, §6.3.1). Decoding is strict: only the
//! one canonical spelling of each name is accepted, so two different wire names can
//! never reach the same mailbox (THREATS.md: "decode once, reject non-canonical").

/// Why a modified UTF-7 name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mutf7Error {
    #[error("character outside printable US-ASCII")]
    NotPrintable,
    #[error("unterminated or empty base64 run")]
    BadShift,
    #[error("invalid modified base64")]
    BadBase64,
    #[error("invalid UTF-16")]
    BadUtf16,
    #[error("non-canonical encoding")]
    NonCanonical,
}

fn b64_value(b: u8) -> Option<u32> {
    // RFC 3501 §5.1.3: modified BASE64 with "," instead of "/".
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b',' => 63,
        _ => return None,
    } as u32)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Decode a modified UTF-7 mailbox name to UTF-8.
pub fn decode_mutf7(s: &[u8]) -> Result<String, Mutf7Error> {
    let mut out = String::new();
    let mut i = 0;
    let mut prev_shift_end = None;
    while i < s.len() {
        let b = s[i];
        if !(0x20..=0x7e).contains(&b) {
            return Err(Mutf7Error::NotPrintable);
        }
        if b != b'&' {
            out.push(b as char);
            i += 1;
            continue;
        }
        let start = i + 1;
        let Some(len) = s[start..].iter().position(|c| *c == b'-') else {
            return Err(Mutf7Error::BadShift);
        };
        let run = &s[start..start + len];
        i = start + len + 1;
        if run.is_empty() {
            out.push('&');
            continue;
        }
        // Two adjacent base64 runs must have been written as one.
        if prev_shift_end == Some(start - 1) {
            return Err(Mutf7Error::NonCanonical);
        }
        prev_shift_end = Some(i);
        let mut units = Vec::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in run {
            acc = (acc << 6) | b64_value(*c).ok_or(Mutf7Error::BadBase64)?;
            bits += 6;
            if bits >= 16 {
                bits -= 16;
                units.push((acc >> bits) as u16);
                acc &= (1 << bits) - 1;
            }
        }
        // Leftover bits must be fewer than 6 and zero (RFC 2152 padding rule).
        if bits >= 6 || acc != 0 || units.is_empty() {
            return Err(Mutf7Error::BadBase64);
        }
        for ch in char::decode_utf16(units.iter().copied()) {
            let ch = ch.map_err(|_| Mutf7Error::BadUtf16)?;
            // Printable ASCII must be written as itself.
            if (' '..='~').contains(&ch) {
                return Err(Mutf7Error::NonCanonical);
            }
            out.push(ch);
        }
    }
    Ok(out)
}

/// Encode a UTF-8 name as modified UTF-7 (for answering IMAP4rev1 clients).
pub fn encode_mutf7(s: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let (mut acc, mut bits) = (0u32, 0u32);
        for u in pending.drain(..) {
            acc = (acc << 16) | u32::from(u);
            bits += 16;
            while bits >= 6 {
                bits -= 6;
                out.push(B64[((acc >> bits) & 63) as usize] as char);
            }
            acc &= (1 << bits) - 1;
        }
        if bits > 0 {
            out.push(B64[((acc << (6 - bits)) & 63) as usize] as char);
        }
        out.push('-');
    };
    for ch in s.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_examples() {
        // RFC 3501 §5.1.3 example.
        assert_eq!(
            decode_mutf7(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(decode_mutf7(b"Entw&APw-rfe").unwrap(), "Entwürfe");
        assert_eq!(decode_mutf7(b"A&-B").unwrap(), "A&B");
        assert_eq!(decode_mutf7(b"plain").unwrap(), "plain");
        assert_eq!(decode_mutf7(b"&2D3eAA-").unwrap(), "\u{1F600}");
    }

    #[test]
    fn round_trip() {
        for s in [
            "~peter/mail/台北/日本語",
            "Entwürfe",
            "A&B",
            "",
            "a\u{1F600}b&c",
            "ÄÖÜ x",
        ] {
            assert_eq!(decode_mutf7(encode_mutf7(s).as_bytes()).unwrap(), s, "{s}");
        }
    }

    #[test]
    fn bad() {
        assert_eq!(decode_mutf7(b"&U,BTFw"), Err(Mutf7Error::BadShift));
        assert_eq!(decode_mutf7(b"a\x80"), Err(Mutf7Error::NotPrintable));
        assert_eq!(decode_mutf7(b"a\tb"), Err(Mutf7Error::NotPrintable));
        assert_eq!(decode_mutf7(b"&U/BTFw-"), Err(Mutf7Error::BadBase64));
        // "&AGE-" is "a", which must be written as itself.
        assert_eq!(decode_mutf7(b"&AGE-"), Err(Mutf7Error::NonCanonical));
        // Two runs back to back.
        assert_eq!(decode_mutf7(b"&APw-&APw-"), Err(Mutf7Error::NonCanonical));
        // Lone high surrogate.
        assert_eq!(decode_mutf7(b"&2D0-"), Err(Mutf7Error::BadUtf16));
        // Non-zero padding bits.
        assert_eq!(decode_mutf7(b"&APx-"), Err(Mutf7Error::BadBase64));
    }
}
