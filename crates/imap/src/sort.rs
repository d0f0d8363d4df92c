//! SORT: ordering search results, and the base subject that SORT and THREAD share.
//!
//! **Standards:** RFC 5256 §2.1 (base subject), §3 (SORT keys, i;ascii-casemap,
//! ties in sequence order), RFC 5957 (DISPLAYFROM, DISPLAYTO), RFC 4790 §9.2
//! (i;ascii-casemap).
//!
//! **Security:** subjects and addresses come from anyone who can send mail. Base
//! subject extraction is linear in the subject's length even for hostile input such as
//! 100 000 `[blob]` prefixes (a naive reading of RFC 5256 steps 3–5 rescans the blob
//! chain after each removal, which is quadratic). Each key is computed once per
//! message, not once per comparison.
//!
//! **Invariants:** [`sort`] returns every item's sequence number exactly once; equal
//! keys keep sequence order whatever REVERSE says (RFC 5256 §3).

use crate::search::Item;
use postern_core::store::Addr;
use postern_imap_proto::{SortCriterion, SortKey};
use std::cmp::Ordering;

/// Returns the items' sequence numbers in sorted order; ties broken by sequence number
/// (RFC 5256 §3: "the messages are in sequence order").
pub fn sort(criteria: &[SortCriterion], items: &[Item]) -> Vec<u32> {
    let mut keyed: Vec<(Vec<Key>, u32)> = items
        .iter()
        .map(|it| (criteria.iter().map(|c| key_of(c.key, it)).collect(), it.seq))
        .collect();
    keyed.sort_by(|(ka, sa), (kb, sb)| {
        for ((a, b), c) in ka.iter().zip(kb).zip(criteria) {
            let o = a.cmp(b);
            let o = if c.reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        sa.cmp(sb)
    });
    keyed.into_iter().map(|(_, seq)| seq).collect()
}

/// One criterion's value for one message. Within one criterion every message has the
/// same variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Number(i64),
    Size(u64),
    /// Already mapped for i;ascii-casemap (ASCII letters upper-cased), so byte order is
    /// the collation's order.
    Text(Vec<u8>),
}

fn key_of(key: SortKey, it: &Item) -> Key {
    let meta = &it.record.meta;
    let env = &meta.envelope;
    match key {
        SortKey::Arrival => Key::Number(it.record.received_ms),
        // RFC 5256 §3: the Date header in UTC, else INTERNALDATE.
        SortKey::Date => Key::Number(meta.sent_ms.unwrap_or(it.record.received_ms)),
        SortKey::Size => Key::Size(it.entry.size),
        SortKey::From => Key::Text(casemap(addr_mailbox(first_mailbox(&env.from)))),
        SortKey::To => Key::Text(casemap(addr_mailbox(first_mailbox(&env.to)))),
        SortKey::Cc => Key::Text(casemap(addr_mailbox(first_mailbox(&env.cc)))),
        SortKey::DisplayFrom => Key::Text(casemap(display(first_mailbox(&env.from)))),
        SortKey::DisplayTo => Key::Text(casemap(display(first_mailbox(&env.to)))),
        SortKey::Subject => Key::Text(casemap(&base_subject(
            env.subject.as_deref().unwrap_or_default(),
        ))),
    }
}

/// The first address of a list that is not a group marker: RFC 5256's "first address"
/// of `To: Team: a@x;` is a@x, and of `To: undisclosed-recipients:;` there is none.
fn first_mailbox(list: &[Addr]) -> Option<&Addr> {
    list.iter().find(|a| !a.is_group_marker())
}

/// RFC 5256 §3 FROM/TO/CC: the addr-mailbox (local part) of the first address; a
/// missing address sorts as the empty string.
fn addr_mailbox(a: Option<&Addr>) -> &str {
    let address = a.and_then(|a| a.address.as_deref()).unwrap_or_default();
    match address.rfind('@') {
        Some(at) => address.get(..at).unwrap_or_default(),
        None => address,
    }
}

/// RFC 5957 §3: the display name of the first address, else its addr-spec.
fn display(a: Option<&Addr>) -> &str {
    match a {
        Some(Addr {
            name: Some(name), ..
        }) if !name.trim().is_empty() => name.trim(),
        Some(a) => a.address.as_deref().unwrap_or_default(),
        None => "",
    }
}

/// i;ascii-casemap (RFC 4790 §9.2): ASCII letters compare as upper case, other octets
/// as themselves.
pub(crate) fn casemap(s: &str) -> Vec<u8> {
    s.bytes().map(|b| b.to_ascii_uppercase()).collect()
}

/// RFC 5256 §2.1 base subject extraction (strip Re:/Fwd:/[blob] prefixes, (fwd)
/// trailers, whitespace normalisation) on the decoded subject.
pub fn base_subject(subject: &str) -> String {
    analyse_subject(subject).0
}

/// The base subject and whether extraction removed a reply or forward marker (a
/// `subj-refwd`, a `(fwd)` trailer or a `[fwd: …]` wrapper), which REFERENCES step 5
/// needs (RFC 5256 §4).
pub(crate) fn analyse_subject(subject: &str) -> (String, bool) {
    // Step 1: the subject is already decoded; tabs and line ends become spaces, runs of
    // spaces one space.
    let mut s: Vec<u8> = Vec::with_capacity(subject.len());
    for c in subject.bytes() {
        let c = if matches!(c, b'\t' | b'\r' | b'\n') {
            b' '
        } else {
            c
        };
        if c == b' ' && s.last() == Some(&b' ') {
            continue;
        }
        s.push(c);
    }
    let mut lo = 0;
    let mut hi = s.len();
    let mut refwd = false;
    loop {
        // Step 2: trailing subj-trailer = "(fwd)" / WSP, repeatedly.
        loop {
            let t = s.get(lo..hi).unwrap_or_default();
            if t.ends_with(b" ") {
                hi -= 1;
            } else if t.len() >= 5
                && t.get(t.len() - 5..)
                    .is_some_and(|e| e.eq_ignore_ascii_case(b"(fwd)"))
            {
                hi -= 5;
                refwd = true;
            } else {
                break;
            }
        }
        let text = s.get(..hi).unwrap_or_default();
        // Steps 3–5. Below `known_fail` the text at `lo` is a chain of blobs already
        // seen not to be followed by a subj-refwd: step 4 removes one blob at a time
        // from such a chain, and step 3 would fail again on the rest, so it is skipped.
        let mut known_fail = 0;
        loop {
            // Step 3: subj-leader = (*subj-blob subj-refwd) / WSP, repeatedly.
            loop {
                if lo < hi && text.get(lo) == Some(&b' ') {
                    lo += 1;
                    continue;
                }
                if lo >= known_fail {
                    match leader(text, lo) {
                        Ok(end) => {
                            lo = end;
                            refwd = true;
                            continue;
                        }
                        Err(chain_end) => known_fail = chain_end,
                    }
                }
                break;
            }
            // Step 4: a leading subj-blob, if what remains is a non-empty subj-base.
            match blob(text, lo) {
                Some(end) if end < hi => lo = end,
                _ => break,
            }
        }
        // Step 6: "[fwd:" … "]" around everything: unwrap and go back to step 2.
        let t = s.get(lo..hi).unwrap_or_default();
        if t.len() >= 6
            && t.get(..5).is_some_and(|h| h.eq_ignore_ascii_case(b"[fwd:"))
            && t.ends_with(b"]")
        {
            lo += 5;
            hi -= 1;
            refwd = true;
            continue;
        }
        break;
    }
    let base = s.get(lo..hi).unwrap_or_default();
    (String::from_utf8_lossy(base).into_owned(), refwd)
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP` at `i`; the end of the match.
fn blob(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'[') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match s.get(j) {
            Some(b']') => break,
            Some(b'[') | None => return None,
            Some(_) => j += 1,
        }
    }
    j += 1;
    while s.get(j) == Some(&b' ') {
        j += 1;
    }
    Some(j)
}

/// `*subj-blob subj-refwd` at `i`, with
/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`. Ok: the end of the match;
/// Err: where the blob chain ended. Greedy matching is exact here: a blob starts with
/// `[`, which neither "re"/"fw" nor ":" can.
fn leader(s: &[u8], i: usize) -> Result<usize, usize> {
    let mut p = i;
    while let Some(end) = blob(s, p) {
        p = end;
    }
    let chain_end = p;
    let starts = |at: usize, w: &[u8]| {
        s.get(at..at + w.len())
            .is_some_and(|x| x.eq_ignore_ascii_case(w))
    };
    let mut q = if starts(p, b"re") || (starts(p, b"fw") && !starts(p, b"fwd")) {
        p + 2
    } else if starts(p, b"fwd") {
        p + 3
    } else {
        return Err(chain_end);
    };
    while s.get(q) == Some(&b' ') {
        q += 1;
    }
    if let Some(end) = blob(s, q) {
        q = end;
    }
    if s.get(q) == Some(&b':') {
        Ok(q + 1)
    } else {
        Err(chain_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::tests::{Msg, item, ms, msg};
    use postern_imap_proto::{CommandBody, Limits, parse_command};

    fn criteria(list: &str) -> Vec<SortCriterion> {
        let line = format!("a SORT ({list}) UTF-8 ALL\r\n");
        match parse_command(line.as_bytes(), &Limits::default()) {
            Ok((_, c)) => match c.body {
                CommandBody::Sort(s) => s.criteria,
                other => panic!("not a sort: {other:?}"),
            },
            Err(e) => panic!("{list}: {e:?}"),
        }
    }

    #[test]
    fn base_subject_rfc5256_rules() {
        let cases = [
            ("", ""),
            ("test", "test"),
            ("Re: test", "test"),
            ("RE:test", "test"),
            ("Re: Re: re: test", "test"),
            ("Fwd: test", "test"),
            ("FW: test", "test"),
            ("fwd:fw:re:test", "test"),
            ("Re[2]: test", "test"),
            ("Re [2]: test", "test"),
            ("[PATCH] Re: test", "test"),
            ("[PATCH 1/2] [list] RE: Fwd: test", "test"),
            ("[list] test", "test"),
            ("[a][b]  [c] test", "test"),
            ("[list]", "[list]"),
            ("[list] [PATCH]", "[PATCH]"),
            ("test (fwd)", "test"),
            ("test (FWD)  (fwd) ", "test"),
            ("[Fwd: test]", "test"),
            ("[fwd: Re: test] (fwd)", "test"),
            ("[fwd: [list] hello]", "hello"),
            ("Re: [fwd: Re: x]", "x"),
            ("  Re:   hello\tworld \r\n again  ", "hello world again"),
            ("Re: ", ""),
            ("Re: Äpfel [und] Birnen", "Äpfel [und] Birnen"),
            ("Ré: x", "Ré: x"),
            ("Reply: x", "Reply: x"),
            ("re: re: [a] [b] re: x", "x"),
            ("Re x", "Re x"),
            ("[unterminated Re: x", "[unterminated Re: x"),
        ];
        for (subject, base) in cases {
            assert_eq!(base_subject(subject), base, "{subject:?}");
        }
    }

    #[test]
    fn group_markers_are_not_addresses() {
        let to = vec![
            Addr::group_start("undisclosed-recipients".into()),
            Addr::group_end(),
            Addr::group_start("Team".into()),
            Addr::mailbox(Some("Zed".into()), Some("zed@example.org".into())),
            Addr::group_end(),
        ];
        assert_eq!(addr_mailbox(first_mailbox(&to)), "zed");
        assert_eq!(display(first_mailbox(&to)), "Zed");
        let empty = vec![Addr::group_start("nobody".into()), Addr::group_end()];
        assert_eq!(addr_mailbox(first_mailbox(&empty)), "");
        assert_eq!(display(first_mailbox(&empty)), "");
    }

    #[test]
    fn reply_or_forward_marker() {
        assert!(analyse_subject("Re: x").1);
        assert!(analyse_subject("[list] Fwd: x").1);
        assert!(analyse_subject("x (fwd)").1);
        assert!(analyse_subject("[fwd: x]").1);
        assert!(!analyse_subject("x").1);
        assert!(!analyse_subject("[list] x").1);
    }

    #[test]
    fn base_subject_is_linear_on_hostile_input() {
        let start = std::time::Instant::now();
        let blobs = "[a]".repeat(300_000);
        assert_eq!(base_subject(&format!("{blobs} x")), "x");
        assert_eq!(base_subject(&blobs), "[a]");
        let refs = "Re: [x] ".repeat(100_000);
        assert_eq!(base_subject(&format!("{refs}y")), "y");
        let open = "re[".repeat(100_000);
        assert_eq!(base_subject(&open), open);
        let fwd = format!("{}x{}", "[fwd: ".repeat(50_000), "]".repeat(50_000));
        assert_eq!(base_subject(&fwd), "x");
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    /// Five messages: (subject, from, to, cc, date header, size padding, arrival day).
    fn mailbox() -> Vec<Msg> {
        let spec = [
            (
                "Re: beta",
                "\"Zed\" <b@x.org>",
                "carl@y",
                "",
                "Tue, 5 Mar 2024 10:00:00 +0000",
                0,
                1,
            ),
            (
                "alpha",
                "Al <A@x.org>",
                "\"bea\" <bea@y>",
                "cc1@z",
                "Mon, 4 Mar 2024 10:00:00 +0000",
                300,
                5,
            ),
            (
                "[list] Beta",
                "c@x.org",
                "Dan <aaron@y>",
                "",
                "garbage",
                100,
                3,
            ),
            (
                "ALPHA (fwd)",
                "\"\" <a@x.org>",
                "",
                "cc0@z",
                "Wed, 6 Mar 2024 10:00:00 +0000",
                200,
                2,
            ),
            (
                "gamma",
                "Bob <d@x.org>",
                "zoe@y",
                "",
                "Mon, 4 Mar 2024 10:00:00 +0000",
                300,
                4,
            ),
        ];
        spec.iter()
            .enumerate()
            .map(|(i, (subject, from, to, cc, date, pad, day))| {
                let mut raw = format!("Subject: {subject}\nFrom: {from}\nDate: {date}\n");
                if !to.is_empty() {
                    raw.push_str(&format!("To: {to}\n"));
                }
                if !cc.is_empty() {
                    raw.push_str(&format!("Cc: {cc}\n"));
                }
                raw.push('\n');
                raw.push_str(&"x".repeat(*pad));
                let mut m = msg(&raw, i as u32 + 1);
                m.entry.size = *pad as u64;
                m.record.received_ms = ms(2024, 3, *day, 0);
                m
            })
            .collect()
    }

    fn sorted(list: &str) -> Vec<u32> {
        let msgs = mailbox();
        let items: Vec<_> = msgs.iter().zip(1..).map(|(m, s)| item(m, s)).collect();
        sort(&criteria(list), &items)
    }

    #[test]
    fn single_keys() {
        assert_eq!(sorted("ARRIVAL"), vec![1, 4, 3, 5, 2]);
        assert_eq!(sorted("REVERSE ARRIVAL"), vec![2, 5, 3, 4, 1]);
        // Message 3 has no valid Date: its INTERNALDATE (3 March) is used.
        assert_eq!(sorted("DATE"), vec![3, 2, 5, 1, 4]);
        // Equal sizes (2 and 5) stay in sequence order, also reversed.
        assert_eq!(sorted("SIZE"), vec![1, 3, 4, 2, 5]);
        assert_eq!(sorted("REVERSE SIZE"), vec![2, 5, 4, 3, 1]);
        // Base subjects alpha, alpha, beta, beta, gamma, compared case-insensitively.
        assert_eq!(sorted("SUBJECT"), vec![2, 4, 1, 3, 5]);
        // FROM: the local part, case-insensitively: A, a, b, c, d.
        assert_eq!(sorted("FROM"), vec![2, 4, 1, 3, 5]);
        // TO: "" (none), aaron, bea, carl, zoe.
        assert_eq!(sorted("TO"), vec![4, 3, 2, 1, 5]);
        // CC: "" ×3 in sequence order, then cc0, cc1.
        assert_eq!(sorted("CC"), vec![1, 3, 5, 4, 2]);
        // DISPLAYFROM: Al, a@x.org (empty name), Bob, c@x.org, Zed.
        assert_eq!(sorted("DISPLAYFROM"), vec![4, 2, 5, 3, 1]);
        // DISPLAYTO: "" , bea, carl@y, Dan, zoe@y.
        assert_eq!(sorted("DISPLAYTO"), vec![4, 2, 1, 3, 5]);
    }

    #[test]
    fn several_keys_and_reverse() {
        // Subject, then newest first within a subject.
        assert_eq!(sorted("SUBJECT REVERSE DATE"), vec![4, 2, 1, 3, 5]);
        assert_eq!(sorted("REVERSE SUBJECT DATE"), vec![5, 3, 1, 2, 4]);
        // Size, then arrival: 2 and 5 both 300 bytes; 5 arrived first.
        assert_eq!(sorted("REVERSE SIZE ARRIVAL"), vec![5, 2, 4, 3, 1]);
        assert_eq!(sorted("SIZE REVERSE ARRIVAL"), vec![1, 3, 4, 2, 5]);
        assert!(sort(&criteria("SIZE"), &[]).is_empty());
    }
}
