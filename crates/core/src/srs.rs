//! The Sender Rewriting Scheme (SRS, Shevek's "guarded" scheme as Postfix's postsrsd and
//! most forwarders use it): how mail to an alias of ours that forwards to another domain
//! keeps passing SPF at the destination, and how a bounce of it finds its way back.
//!
//! - Forwarding rewrites the envelope sender `user@origin` into
//!   `SRS0=HHHHHH=TT=origin=user@<our domain>`: `TT` is the day (base32, modulo 1024) and
//!   `HHHHHH` a keyed hash (HMAC-SHA256, base32, case-insensitive, so an MTA that lower-cases
//!   the local part does not break it) of the day, the origin domain and the user.
//!   An address that is already `SRS0=…@forwarder` becomes
//!   `SRS1=HHHHHH=forwarder==HHHHHH=TT=origin=user@<our domain>` (one hop recorded, not
//!   a growing chain); an `SRS1` one keeps its first forwarder and is re-hashed.
//! - A bounce (`MAIL FROM:<>`) to such an address is sent on to the address it encodes
//!   once the hash checks and the day is at most [`MAX_AGE_DAYS`] old; a forged, altered or
//!   old address is unknown (so the server is not an open relay for anyone who can
//!   write `SRS0=`).
//!
//! A rewritten local part longer than [`crate::address::MAX_SRS_LOCAL`] is not made:
//! such mail is forwarded with its original sender (SPF may then fail at the
//! destination) rather than with an address no one could answer.
//!
//! The key is 32 bytes kept by the installation (`<data dir>/srs.key`, or on PostgreSQL
//! derived from the nodes' shared secret), so addresses stay valid across restarts and
//! on every node.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a rewritten address stays valid for bounces (Shevek's default is 21 days;
/// a queue keeps retrying for 5 by default).
pub const MAX_AGE_DAYS: u32 = 21;
/// Length of the hash in base32 characters (30 bits).
const HASH_LEN: usize = 6;
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

#[derive(Clone)]
pub struct Srs {
    key: [u8; 32],
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Srs { key: <hidden> }")
    }
}

/// Days since the Unix epoch.
pub fn today() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs / 86_400).unwrap_or(u32::MAX)
}

fn timestamp(day: u32) -> String {
    let t = day % 1024;
    let a = ALPHABET[(t >> 5) as usize] as char;
    let b = ALPHABET[(t & 31) as usize] as char;
    format!("{a}{b}")
}

/// The day a two-character timestamp names, within the last 1024 days of `today`.
fn timestamp_age(ts: &str, today: u32) -> Option<u32> {
    let value = |c: u8| {
        ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .map(|p| p as u32)
    };
    let b = ts.as_bytes();
    if b.len() != 2 {
        return None;
    }
    let t = (value(b[0])? << 5) | value(b[1])?;
    match (today % 1024 + 1024 - t) % 1024 {
        // One day ahead: another node's clock already past midnight.
        1023 => Some(0),
        age => Some(age),
    }
}

impl Srs {
    pub fn new(key: [u8; 32]) -> Self {
        Srs { key }
    }

    fn hash(&self, parts: &[&str]) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            // HMAC takes a key of any length: never reached.
            return String::new();
        };
        for p in parts {
            // Case-folded (local parts may come back lower-cased) and separated, so
            // ("ab","c") and ("a","bc") differ.
            mac.update(p.to_ascii_lowercase().as_bytes());
            mac.update(&[0]);
        }
        let out = mac.finalize().into_bytes();
        let mut bits: u64 = 0;
        for &b in out.iter().take(5) {
            bits = (bits << 8) | u64::from(b);
        }
        (0..HASH_LEN)
            .map(|i| ALPHABET[((bits >> (40 - 5 * (i + 1))) & 31) as usize] as char)
            .collect()
    }

    fn hash_ok(&self, given: &str, parts: &[&str]) -> bool {
        use subtle::ConstantTimeEq;
        let want = self.hash(parts);
        given.len() == want.len()
            && bool::from(given.to_ascii_uppercase().as_bytes().ct_eq(want.as_bytes()))
    }

    /// The envelope sender for mail from `sender` forwarded by `our_domain` on `day`.
    /// The null sender stays null (a bounce is forwarded as a bounce).
    pub fn forward(&self, sender: &str, our_domain: &str, day: u32) -> String {
        let out = self.rewrite(sender, our_domain, day);
        match out.rsplit_once('@') {
            Some((local, _)) if local.len() > crate::address::MAX_SRS_LOCAL => sender.to_string(),
            _ => out,
        }
    }

    fn rewrite(&self, sender: &str, our_domain: &str, day: u32) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return sender.to_string();
        };
        if local.is_empty() || domain.is_empty() {
            return sender.to_string();
        }
        if domain.eq_ignore_ascii_case(our_domain) {
            // Our own address (or our own SRS address): nothing to hide.
            return sender.to_string();
        }
        if let Some(rest) = strip_tag(local, "SRS0") {
            // user@… was rewritten by `domain`: record that hop only.
            let h = self.hash(&[domain, rest]);
            return format!("SRS1={h}={domain}=={rest}@{our_domain}");
        }
        if let Some(rest) = strip_tag(local, "SRS1")
            && let Some((first, srs0_rest)) =
                rest.split_once('=').and_then(|(_, r)| r.split_once("=="))
        {
            // Keep the first forwarder; only our hash is new.
            let h = self.hash(&[first, srs0_rest]);
            return format!("SRS1={h}={first}=={srs0_rest}@{our_domain}");
        }
        let ts = timestamp(day);
        let h = self.hash(&[&ts, domain, local]);
        format!("SRS0={h}={ts}={domain}={local}@{our_domain}")
    }

    /// Where a bounce to `local` (the local part of one of our addresses) goes: the
    /// address it encodes, when the hash checks and (SRS0) the day is recent; `None`
    /// for anything else, including a local part that is not SRS at all.
    pub fn reverse(&self, local: &str, day: u32) -> Option<String> {
        if let Some(rest) = strip_tag(local, "SRS0") {
            let mut it = rest.splitn(4, '=');
            let (h, ts, domain, user) = (it.next()?, it.next()?, it.next()?, it.next()?);
            if domain.is_empty() || user.is_empty() || !self.hash_ok(h, &[ts, domain, user]) {
                return None;
            }
            if timestamp_age(ts, day)? > MAX_AGE_DAYS {
                return None;
            }
            return Some(format!("{user}@{domain}"));
        }
        if let Some(rest) = strip_tag(local, "SRS1") {
            let (h, rest) = rest.split_once('=')?;
            let (first, srs0_rest) = rest.split_once("==")?;
            if first.is_empty() || srs0_rest.is_empty() || !self.hash_ok(h, &[first, srs0_rest]) {
                return None;
            }
            return Some(format!("SRS0={srs0_rest}@{first}"));
        }
        None
    }
}

/// The SRS key for nodes sharing `secret` (several nodes on PostgreSQL): a keyed
/// derivation, so the shared secret's other uses learn nothing from SRS addresses.
pub fn derive_key(secret: &[u8; 32]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(b"postern srs key v1\0");
    h.update(secret);
    h.finalize().into()
}

/// Mail to an alias forwarded to other domains ([`crate::Core::deliver_forwarding`]):
/// the targets, and which of our domains forwards (the SRS sender's domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    pub via_domain: String,
    pub to: Vec<crate::outbound::OutboundRecipient>,
}

impl crate::Core {
    /// Installs the SRS key (once; later calls are ignored).
    pub fn set_srs_key(&self, key: [u8; 32]) {
        let _ = self.srs.set(Srs::new(key));
    }

    /// Whether mail to aliases of other domains can be forwarded (an SRS key is set).
    pub fn can_forward(&self) -> bool {
        self.srs.get().is_some()
    }

    /// The envelope sender of mail from `mail_from` forwarded through `via_domain`.
    pub(crate) fn srs_sender(&self, mail_from: &str, via_domain: &str) -> String {
        match self.srs.get() {
            Some(s) => s.forward(mail_from, via_domain, today()),
            None => mail_from.to_string(),
        }
    }

    /// For an SRS address of one of our domains: the address a bounce to it goes to
    /// (`Ok(None)` when the hash, age or form is wrong, or no key is set). Not an SRS
    /// local part or not our domain: `Ok(None)` too — the caller checks [`is_srs`] first.
    pub async fn srs_reverse(
        &self,
        a: &crate::address::Address,
    ) -> crate::error::Result<Option<String>> {
        let Some(s) = self.srs.get() else {
            return Ok(None);
        };
        if !is_srs(a.local()) || self.store.domain_by_name(a.domain()).await?.is_none() {
            return Ok(None);
        }
        Ok(s.reverse(a.local(), today()))
    }
}

/// `local` without its `SRS0=` / `SRS1=` tag (any case), or `None`. Only `=` is taken
/// as the separator (what we and postsrsd write), so real names such as `srs0-backup`
/// stay names.
fn strip_tag<'a>(local: &'a str, tag: &str) -> Option<&'a str> {
    // Bytes, not characters: `local` may hold UTF-8 (a tag match is all ASCII, so the
    // rest then starts on a character boundary).
    let b = local.as_bytes();
    let head = b.get(..tag.len() + 1)?;
    (head[..tag.len()].eq_ignore_ascii_case(tag.as_bytes()) && head[tag.len()] == b'=')
        .then(|| local.get(tag.len() + 1..))
        .flatten()
}

/// Whether `local` looks like an SRS address (it is then ours to check, never an
/// account's).
pub fn is_srs(local: &str) -> bool {
    strip_tag(local, "SRS0").is_some() || strip_tag(local, "SRS1").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u32 = 20_000;

    fn srs() -> Srs {
        Srs::new([7; 32])
    }

    #[test]
    fn forward_and_reverse_round_trip() {
        let s = srs();
        let f = s.forward("alice@origin.example", "fwd.example", DAY);
        assert!(f.starts_with("SRS0="), "{f}");
        assert!(f.ends_with("=origin.example=alice@fwd.example"), "{f}");
        let local = f.rsplit_once('@').unwrap().0;
        assert!(is_srs(local));
        assert_eq!(
            s.reverse(local, DAY).as_deref(),
            Some("alice@origin.example")
        );
        // A lower-cased copy (some MTAs fold local parts) still reverses.
        assert_eq!(
            s.reverse(&local.to_ascii_lowercase(), DAY + 3).as_deref(),
            Some("alice@origin.example")
        );
        // The null sender and our own addresses are left alone.
        assert_eq!(s.forward("", "fwd.example", DAY), "");
        assert_eq!(
            s.forward("bob@fwd.example", "fwd.example", DAY),
            "bob@fwd.example"
        );
    }

    #[test]
    fn forged_altered_and_old_addresses_do_not_reverse() {
        let s = srs();
        let f = s.forward("alice@origin.example", "fwd.example", DAY);
        let local = f.rsplit_once('@').unwrap().0.to_string();
        // Another destination with the same hash.
        let forged = local.replace("origin.example", "victim.example");
        assert_eq!(s.reverse(&forged, DAY), None);
        // Another key.
        assert_eq!(Srs::new([8; 32]).reverse(&local, DAY), None);
        // Too old, and the day wraps around modulo 1024.
        assert_eq!(
            s.reverse(&local, DAY + MAX_AGE_DAYS),
            Some("alice@origin.example".into())
        );
        assert_eq!(s.reverse(&local, DAY + MAX_AGE_DAYS + 1), None);
        assert_eq!(
            s.reverse(&local, DAY + 1024),
            Some("alice@origin.example".into())
        );
        // Not SRS, or truncated.
        assert_eq!(s.reverse("alice", DAY), None);
        assert_eq!(s.reverse("SRS0=", DAY), None);
        assert_eq!(s.reverse("SRS0=AAAAAA=AA=x", DAY), None);
        assert_eq!(s.reverse("SRS1=AAAAAA=x==", DAY), None);
    }

    #[test]
    fn limits_clock_skew_and_real_names() {
        let s = srs();
        // A long sender (VERP, bulk mail): still rewritten, and reversible.
        let long = format!("{}@{}.example", "b".repeat(60), "bounces".repeat(4));
        let f = s.forward(&long, "fwd.example", DAY);
        let local = f.rsplit_once('@').unwrap().0;
        assert!(
            local.len() > crate::address::MAX_LOCAL && is_srs(local),
            "{f}"
        );
        assert!(crate::address::parse_address(&f).is_ok(), "{f}");
        assert_eq!(s.reverse(local, DAY).as_deref(), Some(long.as_str()));
        // Too long to rewrite: the original sender stays.
        let huge = format!("{}@{}.example", "c".repeat(64), "d".repeat(150));
        assert_eq!(s.forward(&huge, "fwd.example", DAY), huge);
        // A timestamp one day ahead (another node past midnight) is fine.
        let ahead = s.forward("alice@origin.example", "fwd.example", DAY + 1);
        let local = ahead.rsplit_once('@').unwrap().0;
        assert_eq!(
            s.reverse(local, DAY).as_deref(),
            Some("alice@origin.example")
        );
        // Names that only start like a tag are not SRS.
        assert!(!is_srs("srs0-backup") && !is_srs("srs1+team") && !is_srs("srs0"));
        assert!(is_srs("srs0=x") && is_srs("SRS1=x"));
        // Multi-byte characters where the tag would be: no panic, not SRS.
        for l in ["abc\u{e9}", "srs\u{e9}=", "\u{7528}\u{6237}x", "sRs0\u{e9}"] {
            assert!(!is_srs(l), "{l}");
            assert_eq!(s.reverse(l, DAY), None);
        }
    }

    #[test]
    fn second_hop_uses_srs1() {
        let a = srs();
        let b = Srs::new([9; 32]);
        let first = a.forward("alice@origin.example", "one.example", DAY);
        let second = b.forward(&first, "two.example", DAY);
        assert!(second.starts_with("SRS1="), "{second}");
        assert!(second.contains("=one.example=="), "{second}");
        // A third hop keeps the first forwarder.
        let third = srs().forward(&second, "three.example", DAY);
        assert!(
            third.starts_with("SRS1=") && third.contains("=one.example=="),
            "{third}"
        );
        // The bounce path: two.example sends it back to one.example's SRS0 address,
        // which one.example reverses to the origin.
        let back = b.reverse(second.rsplit_once('@').unwrap().0, DAY).unwrap();
        assert_eq!(back, first);
        assert_eq!(
            a.reverse(back.rsplit_once('@').unwrap().0, DAY).as_deref(),
            Some("alice@origin.example")
        );
    }
}
