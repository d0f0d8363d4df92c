//! Addresses and domain names, parsed once at the edge into normalised values.
//!
//! **Standards:** RFC 5321 §4.1.2 (Mailbox, Dot-string), RFC 5322 §3.4.1 (addr-spec),
//! RFC 6531 (UTF-8 local parts), RFC 1035 §2.3.1 (labels).
//!
//! **Security:** everything here comes from users, admins or the network. Control
//! characters (CR, LF, NUL, U+0085, U+2028, …), quoting, source routes (`@a:b@c`),
//! `%` and `!` hacks and IP literals are refused, so an address can never smuggle a
//! header line or name another host (THREATS: header injection, open relay).

use crate::error::{CoreError, Result};

/// RFC 5321 §4.5.3.1.1 / .2: local part 64 octets, domain 255 (253 in text form).
pub const MAX_LOCAL: usize = 64;
/// An SRS address's local part (`SRS0=…`, `crate::srs`) carries a whole sender: longer
/// ones are accepted (RFC 5321 §4.5.3.1: "to the extent possible"), up to this.
pub const MAX_SRS_LOCAL: usize = 200;
pub const MAX_DOMAIN: usize = 253;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: String,
}

impl Address {
    pub fn local(&self) -> &str {
        &self.local
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// The local part without a `+tag` (plus addressing), and the tag.
    pub fn split_plus(&self, separator: char) -> Option<(&str, &str)> {
        let (base, tag) = self.local.split_once(separator)?;
        (!base.is_empty()).then_some((base, tag))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Characters that never appear in a name, subject or address we accept: they end a
/// header line or a protocol line somewhere (CR, LF, NUL, NEL, LS, PS), are other
/// control characters, or are invisible format characters (general category Cf:
/// zero-width spaces and joiners, bidirectional overrides such as U+202E, the BOM)
/// that make two different names look the same.
pub fn has_forbidden_chars(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}' || is_format_char(c))
}

/// Unicode general category Cf (Unicode 15), listed by hand to avoid a table crate.
fn is_format_char(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// A free-text field (display name, label): refused when it holds line breaks or control
/// characters, or is longer than `max` characters.
pub fn check_text(field: &'static str, s: &str, max: usize) -> Result<()> {
    if has_forbidden_chars(s) {
        return Err(CoreError::invalid(
            field,
            "contains a control character or line break",
        ));
    }
    if s.chars().count() > max {
        return Err(CoreError::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    Ok(())
}

/// A domain name: lower-case LDH labels (RFC 1035 §2.3.1). IDNs are taken in their
/// A-label (`xn--`) form so that one domain has one spelling.
pub fn parse_domain(s: &str) -> Result<String> {
    let d = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    if d.is_empty() || d.len() > MAX_DOMAIN {
        return Err(CoreError::invalid(
            "domain",
            "empty or longer than 253 characters",
        ));
    }
    // RFC 6531 §3.2 / RFC 5890: an internationalised domain (U-labels) is converted to
    // its A-label form here, so one domain has one spelling everywhere it is stored.
    if has_forbidden_chars(&d) {
        return Err(CoreError::invalid(
            "domain",
            "contains a control or invisible format character",
        ));
    }
    let d = if d.is_ascii() {
        d
    } else {
        idna::domain_to_ascii(&d).map_err(|_| {
            CoreError::invalid(
                "domain",
                format!("{d:?} is not a valid internationalised domain name"),
            )
        })?
    };
    if d.len() > MAX_DOMAIN {
        return Err(CoreError::invalid(
            "domain",
            "longer than 253 characters in A-label form",
        ));
    }
    for label in d.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(CoreError::invalid(
                "domain",
                format!("{label:?} is not a valid label"),
            ));
        }
    }
    if d.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(CoreError::invalid(
            "domain",
            "an IP address is not a mail domain",
        ));
    }
    Ok(d)
}

fn atext(c: char) -> bool {
    // RFC 5322 §3.2.3 atext less `%` and `!`, plus UTF-8 per RFC 6531 §3.3.
    c.is_ascii_alphanumeric()
        || "#$&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

/// A local part as a dot-atom. `%` and `!` are refused (the `u%other@ours` and UUCP
/// `other!u@ours` relay hacks, RFC 976), as are quoted strings. Normalised to NFC
/// (RFC 6532 §3.1) and lower case, so look-alike spellings (NFC vs NFD) are one name;
/// the length limit applies to the normalised form, which is what is stored.
pub fn parse_local(s: &str) -> Result<String> {
    use unicode_normalization::UnicodeNormalization;
    let max = if crate::srs::is_srs(s) {
        MAX_SRS_LOCAL
    } else {
        MAX_LOCAL
    };
    if s.is_empty() || s.len() > 4 * max {
        return Err(CoreError::invalid(
            "address",
            "local part empty or longer than 64 octets",
        ));
    }
    if has_forbidden_chars(s) {
        return Err(CoreError::invalid(
            "address",
            "contains a control character or line break",
        ));
    }
    if s.starts_with('.') || s.ends_with('.') || s.contains("..") {
        return Err(CoreError::invalid("address", "misplaced dot in local part"));
    }
    if let Some(c) = s.chars().find(|&c| c != '.' && !atext(c)) {
        return Err(CoreError::invalid(
            "address",
            format!("character {c:?} is not allowed in a local part"),
        ));
    }
    let normal: String = s.nfc().collect::<String>().to_lowercase().nfc().collect();
    if normal.len() > max {
        return Err(CoreError::invalid(
            "address",
            format!("local part longer than {max} octets"),
        ));
    }
    Ok(normal)
}

/// `local@domain`, normalised to lower case. Angle brackets, quoting, source routes,
/// IP literals and a second `@` are refused.
pub fn parse_address(s: &str) -> Result<Address> {
    let (local, domain) = s
        .rsplit_once('@')
        .ok_or_else(|| CoreError::invalid("address", "missing @"))?;
    if domain.starts_with('[') {
        return Err(CoreError::invalid(
            "address",
            "IP literal domains are not accepted",
        ));
    }
    Ok(Address {
        local: parse_local(local)?,
        domain: parse_domain(domain)?,
    })
}

/// Like [`parse_address`] but also accepts `*@domain`, the catch-all.
pub fn parse_alias_address(s: &str) -> Result<Address> {
    if let Some(domain) = s.strip_prefix("*@") {
        return Ok(Address {
            local: "*".into(),
            domain: parse_domain(domain)?,
        });
    }
    parse_address(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let a = parse_address("Alice.Smith@Example.COM").unwrap();
        assert_eq!(a.to_string(), "alice.smith@example.com");
        assert_eq!(parse_address("ü@example.com").unwrap().local(), "ü");
        let p = parse_address("bob+lists@example.com").unwrap();
        assert_eq!(p.split_plus('+'), Some(("bob", "lists")));
        assert_eq!(
            parse_address("+x@example.com").unwrap().split_plus('+'),
            None
        );
    }

    #[test]
    fn refuses_injection_and_relay_forms() {
        for bad in [
            "a\r\nRCPT TO:<x@y>@example.com",
            "a\n@example.com",
            "a\0@example.com",
            "a\u{2028}b@example.com",
            "a\u{85}b@example.com",
            "u%other.example@example.com",
            "@ours:u@other.example",
            "\"u@other.example\"@example.com",
            "other.example!u@example.com",
            "u@[127.0.0.1]",
            "u@127.0.0.1",
            "<u@example.com>",
            "u@exa mple.com",
            "u@-bad.com",
            "a..b@example.com",
            ".a@example.com",
            "noat",
            "u@",
            "@example.com",
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_address(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(check_text("name", "Bob\r\nBcc: x", 100).is_err());
        assert!(check_text("name", "Bob Smith", 100).is_ok());
    }

    #[test]
    fn look_alikes_are_one_name_or_refused() {
        // "é" precomposed (NFC) and as e + combining acute (NFD) are the same account.
        let nfc = parse_address("jos\u{e9}@example.com").unwrap();
        let nfd = parse_address("jose\u{301}@example.com").unwrap();
        assert_eq!(nfc, nfd);
        // Invisible format characters never make a second, identical-looking name.
        for bad in [
            "ad\u{200b}min@example.com",
            "admin\u{202e}@example.com",
            "\u{feff}admin@example.com",
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_text("name", "Bob\u{202e}kcilc", 100).is_err());
        // The limit applies after lower-casing: 'Ⱥ' (2 octets) lower-cases to 'ⱥ' (3).
        // 30 of them are 60 octets as typed but 90 stored: refused.
        assert!(parse_address(&format!("{}@example.com", "\u{23a}".repeat(30))).is_err());
        assert!(parse_address(&format!("{}@example.com", "\u{23a}".repeat(21))).is_ok());
        assert!(parse_address(&format!("{}@example.com", "\u{23a}".repeat(22))).is_err());
    }

    #[test]
    fn international_domains_become_a_labels() {
        let a = parse_address("ü@Bücher.example").unwrap();
        assert_eq!(a.to_string(), "ü@xn--bcher-kva.example");
        assert_eq!(
            parse_domain("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert!(parse_domain("a\u{200b}b.example").is_err());
    }

    #[test]
    fn catch_all() {
        assert_eq!(
            parse_alias_address("*@Example.com").unwrap().to_string(),
            "*@example.com"
        );
        assert!(parse_address("*@example.com").is_ok()); // '*' is atext, but only aliases give it meaning
    }
}
