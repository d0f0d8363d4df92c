//! SEARCH key evaluation: does one message match a parsed search program?
//!
//! **Standards:** RFC 9051 §6.4.4 (SEARCH keys), RFC 3501 §6.4.4 (IMAP4rev1 keys: NEW,
//! OLD, RECENT), RFC 7162 §3.1.5 (MODSEQ), RFC 8514 §4 (SAVEDBEFORE/ON/SINCE,
//! SAVEDATESUPPORTED), RFC 8474 §6 (EMAILID, THREADID), RFC 5032 (OLDER, YOUNGER),
//! RFC 5182 (`$`, the saved result), RFC 2047 (encoded words in HEADER), RFC 2045
//! (transfer encodings of BODY text).
//!
//! **Security:** the search strings come from the client, the messages from anyone who
//! can send mail. Nothing here allocates more than a constant factor of one message; the
//! body is never handed to `mail_parser::MessageParser` (not safe on hostile input, see
//! `postern_core::message`): the MIME tree stored at delivery gives the text parts'
//! offsets, and only their bytes are decoded. The tree is walked with an explicit stack.
//! Key trees are recursed over; their depth is capped by the command parser.
//!
//! **Invariants:** [`matches`] never panics. Whether a key needs the message bytes is
//! decided by the key alone ([`needs_content`]), so a result never depends on whether
//! another key made the caller load them. Dates are compared as calendar days in UTC,
//! except the SENT* keys, which use the day written in the Date header (RFC 3501
//! §6.4.4: "disregarding time and timezone").

use mail_parser::HeaderValue;
use mail_parser::parsers::MessageStream;
use postern_core::store::{Addr, BodyPart, Flags, MailboxEntry, MessageRecord};
use postern_imap_proto::{Date, IString, SearchKey, SeqNum, SeqSet};

/// One message as SEARCH sees it.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub seq: u32,
    pub entry: &'a MailboxEntry,
    pub record: &'a MessageRecord,
    /// The message bytes, present when [`needs_content`] said so. A key that needs them
    /// does not match when they are absent.
    pub raw: Option<&'a [u8]>,
    /// IMAP4rev1 \Recent for this session.
    pub recent: bool,
}

/// What a search needs to know about the mailbox and the session.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub now_ms: i64,
    /// Highest sequence number and UID in the mailbox (for `*`).
    pub max_seq: u32,
    pub max_uid: u32,
    /// The UIDs saved by SEARCHRES (`$`), empty when none. Sorted ascending (as a SEARCH
    /// result is): membership is a binary search, so a 100 000-message `$` stays cheap.
    pub saved: &'a [u32],
    /// Maps a sequence number to its UID and back for the current mailbox view (seq i ↔
    /// uids[i-1]). Not needed by the evaluation itself: `$` in a sequence set means the
    /// sequence numbers of the saved UIDs, which is the same as "the UID is saved".
    pub uids: &'a [u32],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SearchError {
    /// RFC 9051 §6.4.4: "NO [BADCHARSET]" lists the charsets we support.
    #[error("[BADCHARSET (UTF-8 US-ASCII)] charset not supported")]
    BadCharset,
}

/// CHARSET must be absent, UTF-8 or US-ASCII (case-insensitive). RFC 9051 §6.4.4 only
/// requires UTF-8; US-ASCII is a subset, so accepting it costs nothing.
pub fn check_charset(charset: Option<&IString>) -> Result<(), SearchError> {
    match charset {
        None => Ok(()),
        Some(c)
            if c.as_bytes().eq_ignore_ascii_case(b"UTF-8")
                || c.as_bytes().eq_ignore_ascii_case(b"US-ASCII") =>
        {
            Ok(())
        }
        Some(_) => Err(SearchError::BadCharset),
    }
}

/// True when some key needs the message bytes (BODY, TEXT, HEADER of a field not in
/// the stored envelope); the caller then loads them.
pub fn needs_content(keys: &[SearchKey]) -> bool {
    keys.iter().any(key_needs_content)
}

fn key_needs_content(key: &SearchKey) -> bool {
    match key {
        SearchKey::Body(_) | SearchKey::Text(_) => true,
        SearchKey::Header(name, value) => {
            !matches!(envelope_field(name.as_bytes(), value), EnvField::Served(_))
        }
        SearchKey::Not(k) => key_needs_content(k),
        SearchKey::Or(a, b) => key_needs_content(a) || key_needs_content(b),
        SearchKey::And(list) => needs_content(list),
        _ => false,
    }
}

/// All keys ANDed.
pub fn matches(keys: &[SearchKey], item: &Item, cx: &Context) -> bool {
    keys.iter().all(|k| eval(k, item, cx))
}

fn eval(key: &SearchKey, item: &Item, cx: &Context) -> bool {
    let entry = item.entry;
    let record = item.record;
    let env = &record.meta.envelope;
    let flag = |f: Flags| entry.flags.contains(f);
    match key {
        SearchKey::All => true,
        SearchKey::Answered => flag(Flags::ANSWERED),
        SearchKey::Deleted => flag(Flags::DELETED),
        SearchKey::Draft => flag(Flags::DRAFT),
        SearchKey::Flagged => flag(Flags::FLAGGED),
        SearchKey::Seen => flag(Flags::SEEN),
        SearchKey::Unanswered => !flag(Flags::ANSWERED),
        SearchKey::Undeleted => !flag(Flags::DELETED),
        SearchKey::Undraft => !flag(Flags::DRAFT),
        SearchKey::Unflagged => !flag(Flags::FLAGGED),
        SearchKey::Unseen => !flag(Flags::SEEN),
        // RFC 3501 §6.4.4: NEW is "RECENT UNSEEN", OLD is "NOT RECENT".
        SearchKey::New => item.recent && !flag(Flags::SEEN),
        SearchKey::Old => !item.recent,
        SearchKey::Recent => item.recent,
        // RFC 9051 §9 note: keywords compare case-insensitively.
        SearchKey::Keyword(k) => entry.keywords.iter().any(|w| k.eq_ignore_case(w)),
        SearchKey::Unkeyword(k) => !entry.keywords.iter().any(|w| k.eq_ignore_case(w)),
        SearchKey::Bcc(s) => addrs_match(&env.bcc, &needle(s)),
        SearchKey::Cc(s) => addrs_match(&env.cc, &needle(s)),
        SearchKey::From(s) => addrs_match(&env.from, &needle(s)),
        SearchKey::To(s) => addrs_match(&env.to, &needle(s)),
        SearchKey::Subject(s) => env
            .subject
            .as_deref()
            .is_some_and(|subj| contains(subj, &needle(s))),
        SearchKey::Header(name, value) => header_matches(name.as_bytes(), value, item),
        SearchKey::Body(s) => item
            .raw
            .is_some_and(|raw| body_contains(raw, &record.meta.body, &needle(s))),
        SearchKey::Text(s) => item.raw.is_some_and(|raw| {
            let n = needle(s);
            header_text_contains(header_section(raw, &record.meta.body), &n)
                || body_contains(raw, &record.meta.body, &n)
        }),
        // RFC 9051 §6.4.4: INTERNALDATE "disregarding time and timezone"; see the
        // module doc for the choice of UTC.
        SearchKey::Before(d) => ms_day(record.received_ms) < day(d),
        SearchKey::On(d) => ms_day(record.received_ms) == day(d),
        SearchKey::Since(d) => ms_day(record.received_ms) >= day(d),
        SearchKey::SentBefore(d) => sent_day(record) < day(d),
        SearchKey::SentOn(d) => sent_day(record) == day(d),
        SearchKey::SentSince(d) => sent_day(record) >= day(d),
        // RFC 8514 §4: the save date; ours is always known.
        SearchKey::SavedBefore(d) => ms_day(entry.saved_ms) < day(d),
        SearchKey::SavedOn(d) => ms_day(entry.saved_ms) == day(d),
        SearchKey::SavedSince(d) => ms_day(entry.saved_ms) >= day(d),
        SearchKey::SaveDateSupported => true,
        // RFC 9051 §6.4.4: LARGER/SMALLER are strict.
        SearchKey::Larger(n) => entry.size > *n,
        SearchKey::Smaller(n) => entry.size < *n,
        SearchKey::Uid(set) => in_set(set, entry.uid, entry.uid, cx.max_uid, cx.saved),
        SearchKey::SeqSet(set) => in_set(set, item.seq, entry.uid, cx.max_seq, cx.saved),
        // RFC 7162 §3.1.5: the entry name only narrows metadata items; for system flags
        // and keywords the per-message modseq is the one that counts.
        SearchKey::ModSeq { mod_seq, .. } => entry.modseq >= *mod_seq,
        // RFC 5032 §3: OLDER n is "more than n seconds ago", YOUNGER n "within n
        // seconds": exact complements.
        SearchKey::Older(n) => age_ms(cx.now_ms, record.received_ms) > i64::from(*n) * 1000,
        SearchKey::Younger(n) => age_ms(cx.now_ms, record.received_ms) <= i64::from(*n) * 1000,
        // RFC 8474 §6: exact match of the object ids.
        SearchKey::EmailId(id) => record.id.to_string() == id.as_str(),
        SearchKey::ThreadId(id) => record.thread_id == id.as_str(),
        SearchKey::Not(k) => !eval(k, item, cx),
        SearchKey::Or(a, b) => eval(a, item, cx) || eval(b, item, cx),
        SearchKey::And(list) => list.iter().all(|k| eval(k, item, cx)),
    }
}

fn age_ms(now_ms: i64, then_ms: i64) -> i64 {
    now_ms.saturating_sub(then_ms)
}

/// A search string as the lower-cased text it is compared with. Strings that are not
/// UTF-8 (a client that said US-ASCII and sent 8-bit bytes) are read lossily.
fn needle(s: &IString) -> String {
    String::from_utf8_lossy(s.as_bytes()).to_lowercase()
}

/// Case-insensitive substring (RFC 9051 §6.4.4), Unicode lower-casing on both sides.
fn contains(haystack: &str, needle_lower: &str) -> bool {
    needle_lower.is_empty() || haystack.to_lowercase().contains(needle_lower)
}

/// FROM/TO/CC/BCC: the name or the address of any address of the field, or the name
/// of a group in it (the group name is in the field's text, which RFC 9051 §6.4.4
/// matches against).
fn addrs_match(addrs: &[Addr], needle_lower: &str) -> bool {
    addrs.iter().any(|a| {
        a.name.as_deref().is_some_and(|n| contains(n, needle_lower))
            || a.address
                .as_deref()
                .is_some_and(|n| contains(n, needle_lower))
    })
}

/// Whether `seq` (or, for `$`, `uid`) is in the set. `*` is `max`; `n:m` is `m:n`
/// (RFC 9051 §9 `seq-range`). `$` is the saved UIDs — for a sequence set, their
/// sequence numbers, which select the same messages (RFC 5182 §2.1).
fn in_set(set: &SeqSet, value: u32, uid: u32, max: u32, saved: &[u32]) -> bool {
    match set {
        SeqSet::Saved => saved.binary_search(&uid).is_ok(),
        SeqSet::Ranges(ranges) => ranges.ranges().iter().any(|r| {
            let resolve = |n: SeqNum| match n {
                SeqNum::Value(v) => v.get(),
                SeqNum::Star => max,
            };
            let (a, b) = (resolve(r.from), resolve(r.to));
            a.min(b) <= value && value <= a.max(b)
        }),
    }
}

// ---- dates ----

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn day(d: &Date) -> i64 {
    days_from_civil(
        i64::from(d.year()),
        i64::from(d.month()),
        i64::from(d.day()),
    )
}

/// The UTC calendar day of an instant.
fn ms_day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The day of the Date header as written (time and zone disregarded, RFC 3501 §6.4.4);
/// else the day of the parsed instant; else, as Dovecot does, the INTERNALDATE's day.
fn sent_day(record: &MessageRecord) -> i64 {
    let written = record.meta.envelope.date.as_deref().and_then(|raw| {
        let mut owned = Vec::with_capacity(raw.len() + 1);
        owned.extend_from_slice(raw.as_bytes());
        owned.push(b'\n');
        match MessageStream::new(&owned).parse_date() {
            HeaderValue::DateTime(dt) if dt.is_valid() => Some(days_from_civil(
                i64::from(dt.year),
                i64::from(dt.month),
                i64::from(dt.day),
            )),
            _ => None,
        }
    });
    written.unwrap_or_else(|| ms_day(record.meta.sent_ms.unwrap_or(record.received_ms)))
}

// ---- header fields ----

/// How HEADER finds a field: from the stored envelope (no message bytes needed) or by
/// scanning the header section.
enum EnvField {
    Served(Served),
    Raw,
}

enum Served {
    Subject,
    Date,
    InReplyTo,
    From,
    Sender,
    ReplyTo,
    To,
    Cc,
    Bcc,
}

/// Fields whose stored form answers HEADER exactly enough: the decoded Subject, the
/// verbatim Date and In-Reply-To, and address fields by name or address. An empty
/// string on an address field asks "is the field present?", which the stored address
/// list (empty for an unparsable field) cannot tell, so that one reads the bytes;
/// Message-ID is stored without its brackets, so it reads the bytes too.
fn envelope_field(name: &[u8], value: &IString) -> EnvField {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    let served = if is("subject") {
        Served::Subject
    } else if is("date") {
        Served::Date
    } else if is("in-reply-to") {
        Served::InReplyTo
    } else if value.as_bytes().is_empty() {
        return EnvField::Raw;
    } else if is("from") {
        Served::From
    } else if is("sender") {
        Served::Sender
    } else if is("reply-to") {
        Served::ReplyTo
    } else if is("to") {
        Served::To
    } else if is("cc") {
        Served::Cc
    } else if is("bcc") {
        Served::Bcc
    } else {
        return EnvField::Raw;
    };
    EnvField::Served(served)
}

/// RFC 9051 §6.4.4 HEADER: the field's value contains the string; an empty string
/// matches every message that has the field.
fn header_matches(name: &[u8], value: &IString, item: &Item) -> bool {
    let env = &item.record.meta.envelope;
    let n = needle(value);
    let opt = |v: &Option<String>| v.as_deref().is_some_and(|t| contains(t, &n));
    match envelope_field(name, value) {
        EnvField::Served(Served::Subject) => opt(&env.subject),
        EnvField::Served(Served::Date) => opt(&env.date),
        EnvField::Served(Served::InReplyTo) => opt(&env.in_reply_to),
        EnvField::Served(Served::From) => addrs_match(&env.from, &n),
        EnvField::Served(Served::Sender) => addrs_match(&env.sender, &n),
        EnvField::Served(Served::ReplyTo) => addrs_match(&env.reply_to, &n),
        EnvField::Served(Served::To) => addrs_match(&env.to, &n),
        EnvField::Served(Served::Cc) => addrs_match(&env.cc, &n),
        EnvField::Served(Served::Bcc) => addrs_match(&env.bcc, &n),
        EnvField::Raw => item.raw.is_some_and(|raw| {
            for_each_field(header_section(raw, &item.record.meta.body), |field, v| {
                field.eq_ignore_ascii_case(name) && (n.is_empty() || contains(&decode_value(v), &n))
            })
        }),
    }
}

/// The message's own header section. A message the extractor found no header in
/// (`body_offset == 0`) has none, so its first lines are not mistaken for fields.
fn header_section<'r>(raw: &'r [u8], body: &BodyPart) -> &'r [u8] {
    let end = usize::try_from(body.body_offset).unwrap_or(usize::MAX);
    raw.get(..end).unwrap_or(raw)
}

/// TEXT on the header: a field's name or decoded value contains the string.
fn header_text_contains(header: &[u8], needle_lower: &str) -> bool {
    for_each_field(header, |name, value| {
        contains(&String::from_utf8_lossy(name), needle_lower)
            || contains(&decode_value(value), needle_lower)
    })
}

/// Calls `f(name, value)` for each field of a header section until it returns true;
/// `value` runs from after the colon through the field's last line end (folded, as on
/// the wire). Lines without a colon that are not continuations are skipped. Linear in
/// the section's length.
fn for_each_field(header: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> bool) -> bool {
    // The current field: name range and where its value starts.
    let mut current: Option<(usize, usize, usize)> = None;
    let mut pos = 0;
    let len = header.len();
    let mut flush = |cur: Option<(usize, usize, usize)>, end: usize| match cur {
        Some((ns, ne, vs)) => f(
            header.get(ns..ne).unwrap_or_default(),
            header.get(vs..end).unwrap_or_default(),
        ),
        None => false,
    };
    while pos < len {
        let rest = header.get(pos..).unwrap_or_default();
        let next = rest
            .iter()
            .position(|&c| c == b'\n')
            .map_or(len, |i| pos + i + 1);
        let line = header.get(pos..next).unwrap_or_default();
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return flush(current, pos);
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            pos = next;
            continue;
        }
        if flush(current.take(), pos) {
            return true;
        }
        if let Some(colon) = line.iter().position(|&c| c == b':') {
            let name = line.get(..colon).unwrap_or_default();
            let trimmed = name
                .iter()
                .rposition(|c| !matches!(c, b' ' | b'\t'))
                .map_or(0, |i| i + 1);
            current = Some((pos, pos + trimmed, pos + colon + 1));
        }
        pos = next;
    }
    flush(current, len)
}

/// A field value unfolded with its RFC 2047 encoded words decoded.
fn decode_value(value: &[u8]) -> String {
    let parse = |v: &[u8]| match MessageStream::new(v).parse_unstructured() {
        HeaderValue::Text(t) => t.into_owned(),
        _ => String::new(),
    };
    if value.ends_with(b"\n") {
        parse(value)
    } else {
        // mail-parser ends a field at a line end; the last field of a message without a
        // final newline needs one.
        let mut owned = Vec::with_capacity(value.len() + 1);
        owned.extend_from_slice(value);
        owned.push(b'\n');
        parse(&owned)
    }
}

// ---- body text ----

/// BODY: the decoded text of some text part — the message's own, and those of
/// encapsulated messages — contains the string. Transfer encodings and charsets are
/// decoded; HTML is reduced to its text so tag names do not match.
fn body_contains(raw: &[u8], body: &BodyPart, needle_lower: &str) -> bool {
    if needle_lower.is_empty() {
        return true;
    }
    let mut stack = vec![body];
    while let Some(part) = stack.pop() {
        if let Some(m) = &part.message {
            stack.push(&m.1);
        }
        if !part.parts.is_empty() {
            stack.extend(part.parts.iter().rev());
            continue;
        }
        if part.media_type == "text" && contains(&part_text(raw, part), needle_lower) {
            return true;
        }
    }
    false
}

fn part_text(raw: &[u8], part: &BodyPart) -> String {
    postern_core::message::part_text(raw, part, usize::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use postern_core::message::{MimeLimits, extract};
    use postern_core::store::{BlobRef, MessageId, PrincipalId};
    use postern_imap_proto::{CommandBody, Limits, parse_command};

    pub(crate) struct Msg {
        pub entry: MailboxEntry,
        pub record: MessageRecord,
        pub raw: Vec<u8>,
        pub recent: bool,
    }

    pub(crate) fn ms(y: i64, m: i64, d: i64, hour: i64) -> i64 {
        days_from_civil(y, m, d) * DAY_MS + hour * 3_600_000
    }

    /// A stored message built from literal bytes by the real extractor.
    pub(crate) fn msg(raw: &str, uid: u32) -> Msg {
        let raw = raw.replace('\n', "\r\n").into_bytes();
        let meta = extract(&raw, &MimeLimits::default());
        Msg {
            entry: MailboxEntry {
                uid,
                message: MessageId(i64::from(uid) * 4096 + 10),
                size: raw.len() as u64,
                flags: Flags::default(),
                keywords: Vec::new(),
                modseq: 1,
                saved_ms: ms(2024, 3, 6, 12),
            },
            record: MessageRecord {
                id: MessageId(i64::from(uid) * 4096 + 10),
                account: PrincipalId(1),
                blob: BlobRef {
                    hash: String::new(),
                    size: raw.len() as u64,
                },
                received_ms: ms(2024, 3, 5, 10),
                thread_id: format!("T{uid}"),
                meta,
            },
            raw,
            recent: false,
        }
    }

    pub(crate) fn item(m: &Msg, seq: u32) -> Item<'_> {
        Item {
            seq,
            entry: &m.entry,
            record: &m.record,
            raw: Some(&m.raw),
            recent: m.recent,
        }
    }

    fn keys(program: &str) -> (Option<IString>, Vec<SearchKey>) {
        // Non-ASCII words must be quoted strings on the wire.
        let program: Vec<String> = program
            .split(' ')
            .map(|w| {
                if !w.is_ascii() && !w.starts_with('"') && !w.ends_with('"') {
                    format!("\"{w}\"")
                } else {
                    w.to_string()
                }
            })
            .collect();
        let program = program.join(" ");
        let line = format!("a SEARCH {program}\r\n");
        match parse_command(line.as_bytes(), &Limits::default()) {
            Ok((_, c)) => match c.body {
                CommandBody::Search(s) => (s.charset, s.keys),
                other => panic!("not a search: {other:?}"),
            },
            Err(e) => panic!("{program}: {e:?}"),
        }
    }

    const NOW: i64 = 1_709_640_000_000 + 86_400_000; // 2024-03-06 12:00 UTC

    fn cx<'a>(saved: &'a [u32], uids: &'a [u32]) -> Context<'a> {
        Context {
            now_ms: NOW,
            max_seq: uids.len() as u32,
            max_uid: uids.last().copied().unwrap_or(0),
            saved,
            uids,
        }
    }

    const MAIN: &str = "From: Alice Example <alice@example.org>\n\
To: Bob <bob@example.net>, carol@example.com\n\
Cc: =?UTF-8?Q?J=C3=BCrgen?= <jurgen@example.de>\n\
Bcc: secret@example.org\n\
Subject: =?UTF-8?B?w4RwZmVs?= and pears\n\
Date: Mon, 4 Mar 2024 23:30:00 -0500\n\
Message-ID: <m1@example.org>\n\
X-Mailer: =?UTF-8?Q?Gr=C3=BCn?= Mail\n\
X-Folded: first part\n\
\x20second part\n\
X-Empty:\n\
MIME-Version: 1.0\n\
Content-Type: multipart/alternative; boundary=\"b\"\n\
\n\
--b\n\
Content-Type: text/plain; charset=iso-8859-1\n\
Content-Transfer-Encoding: quoted-printable\n\
\n\
Gr=FC=DFe aus M=FCnchen, soft=\n\
break here\n\
--b\n\
Content-Type: text/html; charset=utf-8\n\
Content-Transfer-Encoding: base64\n\
\n\
PHA+SGVsbG8gPGI+d29ybGQ8L2I+PC9wPg==\n\
--b--\n";

    fn main_msg() -> Msg {
        let mut m = msg(MAIN, 7);
        m.entry.flags = Flags::SEEN.union(Flags::FLAGGED);
        m.entry.keywords = vec!["$Forwarded".into(), "Work".into()];
        m.entry.modseq = 50;
        m
    }

    /// Evaluates a SEARCH program against the main message (seq 3 of 5, UID 7).
    fn eval_main(program: &str) -> bool {
        let m = main_msg();
        let (_, k) = keys(program);
        matches(&k, &item(&m, 3), &cx(&[7, 9], &[1, 4, 7, 8, 9]))
    }

    #[track_caller]
    fn yes(program: &str) {
        assert!(eval_main(program), "expected a match: {program}");
    }

    #[track_caller]
    fn no(program: &str) {
        assert!(!eval_main(program), "expected no match: {program}");
    }

    #[test]
    fn flags() {
        yes("ALL");
        yes("SEEN");
        no("UNSEEN");
        yes("FLAGGED");
        no("UNFLAGGED");
        no("ANSWERED");
        yes("UNANSWERED");
        no("DELETED");
        yes("UNDELETED");
        no("DRAFT");
        yes("UNDRAFT");
        yes("KEYWORD work");
        yes("KEYWORD $forwarded");
        no("KEYWORD $Junk");
        yes("UNKEYWORD $Junk");
        no("UNKEYWORD WORK");
    }

    #[test]
    fn recent_new_old() {
        let mut m = msg(MAIN, 7);
        let (_, k) = keys("NEW");
        let uids = [7];
        assert!(!matches(&k, &item(&m, 1), &cx(&[], &uids)));
        m.recent = true;
        assert!(matches(&k, &item(&m, 1), &cx(&[], &uids)));
        assert!(matches(&keys("RECENT").1, &item(&m, 1), &cx(&[], &uids)));
        assert!(!matches(&keys("OLD").1, &item(&m, 1), &cx(&[], &uids)));
        m.entry.flags = Flags::SEEN;
        assert!(!matches(&k, &item(&m, 1), &cx(&[], &uids)));
        m.recent = false;
        assert!(matches(&keys("OLD").1, &item(&m, 1), &cx(&[], &uids)));
        assert!(!matches(&keys("RECENT").1, &item(&m, 1), &cx(&[], &uids)));
    }

    #[test]
    fn addresses() {
        yes("FROM alice");
        yes("FROM \"ALICE EXAMPLE\"");
        yes("FROM example.org");
        no("FROM bob");
        yes("TO carol@");
        yes("TO bob");
        no("TO alice");
        yes("CC jürgen");
        yes("CC JÜRGEN");
        no("CC bob");
        yes("BCC secret");
        no("BCC alice");
    }

    #[test]
    fn subject_is_decoded() {
        yes("SUBJECT äpfel");
        yes("SUBJECT \"ÄPFEL AND\"");
        no("SUBJECT =?UTF-8?");
        no("SUBJECT oranges");
        // A message without a Subject field matches no SUBJECT, not even "".
        let m = msg("From: a@b\n\nbody\n", 1);
        let uids = [1];
        assert!(!matches(
            &keys("SUBJECT \"\"").1,
            &item(&m, 1),
            &cx(&[], &uids)
        ));
        assert!(matches(
            &keys("SUBJECT \"\"").1,
            &item(&main_msg(), 1),
            &cx(&[], &uids)
        ));
    }

    #[test]
    fn header() {
        yes("HEADER X-Mailer grün");
        yes("HEADER x-mailer \"GRÜN MAIL\"");
        no("HEADER X-Mailer =?UTF-8?");
        no("HEADER X-Mailer Outlook");
        // Folded values are unfolded.
        yes("HEADER X-Folded \"part second\"");
        // An empty string matches every message that has the field, even empty.
        yes("HEADER X-Empty \"\"");
        yes("HEADER X-Folded \"\"");
        no("HEADER X-Missing \"\"");
        // Fields served from the envelope.
        yes("HEADER Subject äpfel");
        no("HEADER Subject oranges");
        yes("HEADER From alice@");
        no("HEADER From bob");
        yes("HEADER Date \"4 Mar 2024\"");
        no("HEADER In-Reply-To x");
        yes("HEADER Message-ID <m1@example.org>");
        no("HEADER Message-ID <m2@example.org>");
        yes("HEADER To \"\"");
        no("HEADER Sender \"\"");
        // Field names inside the body are not header fields.
        no("HEADER Content-Transfer-Encoding \"\"");
    }

    #[test]
    fn body_and_text() {
        // Quoted-printable ISO-8859-1, soft line break.
        yes("BODY grüße");
        yes("BODY MÜNCHEN");
        yes("BODY \"softbreak\"");
        no("BODY \"soft=\"");
        // Base64 HTML, reduced to text.
        yes("BODY \"hello world\"");
        no("BODY <b>");
        no("BODY PHA+");
        no("BODY alice");
        // TEXT is header or body.
        yes("TEXT alice");
        yes("TEXT grün");
        yes("TEXT x-mailer");
        yes("TEXT münchen");
        no("TEXT nowhere-to-be-found");
        yes("BODY \"\"");
    }

    #[test]
    fn content_keys_without_bytes_do_not_match() {
        let m = main_msg();
        let mut it = item(&m, 1);
        it.raw = None;
        let uids = [7];
        assert!(!matches(&keys("BODY grüße").1, &it, &cx(&[], &uids)));
        assert!(!matches(
            &keys("HEADER X-Mailer grün").1,
            &it,
            &cx(&[], &uids)
        ));
        // The envelope serves these whether or not the bytes are there.
        assert!(matches(
            &keys("HEADER Subject pears").1,
            &it,
            &cx(&[], &uids)
        ));
    }

    #[test]
    fn needs_content_by_key() {
        let needs = |p: &str| needs_content(&keys(p).1);
        assert!(needs("BODY x"));
        assert!(needs("TEXT x"));
        assert!(needs("HEADER X-Mailer x"));
        assert!(needs("HEADER Message-ID x"));
        assert!(needs("HEADER From \"\""));
        assert!(needs("NOT (SEEN OR ALL BODY x)"));
        assert!(!needs("HEADER Subject x"));
        assert!(!needs("HEADER FROM x"));
        assert!(!needs("FROM x SUBJECT y SEEN NOT TO z OR CC a BCC b"));
    }

    #[test]
    fn dates() {
        // INTERNALDATE 2024-03-05 10:00 UTC.
        yes("ON 5-Mar-2024");
        no("ON 4-Mar-2024");
        yes("SINCE 5-Mar-2024");
        no("SINCE 6-Mar-2024");
        yes("BEFORE 6-Mar-2024");
        no("BEFORE 5-Mar-2024");
        // Date: Mon, 4 Mar 2024 23:30 -0500 is 5 March in UTC, but the day as written
        // counts.
        yes("SENTON 4-Mar-2024");
        no("SENTON 5-Mar-2024");
        yes("SENTBEFORE 5-Mar-2024");
        no("SENTBEFORE 4-Mar-2024");
        yes("SENTSINCE 4-Mar-2024");
        no("SENTSINCE 5-Mar-2024");
        // Save date 2024-03-06.
        yes("SAVEDON 6-Mar-2024");
        no("SAVEDON 5-Mar-2024");
        yes("SAVEDSINCE 6-Mar-2024");
        no("SAVEDSINCE 7-Mar-2024");
        yes("SAVEDBEFORE 7-Mar-2024");
        no("SAVEDBEFORE 6-Mar-2024");
        yes("SAVEDATESUPPORTED");
    }

    #[test]
    fn sent_date_falls_back_to_internaldate() {
        let m = msg("From: a@b\nDate: not a date\n\nbody\n", 1);
        let uids = [1];
        let on = |p: &str| matches(&keys(p).1, &item(&m, 1), &cx(&[], &uids));
        assert!(on("SENTON 5-Mar-2024"));
        assert!(!on("SENTON 4-Mar-2024"));
    }

    #[test]
    fn size_modseq_age_ids() {
        let size = main_msg().entry.size;
        yes(&format!("LARGER {}", size - 1));
        no(&format!("LARGER {size}"));
        yes(&format!("SMALLER {}", size + 1));
        no(&format!("SMALLER {size}"));
        yes("MODSEQ 50");
        no("MODSEQ 51");
        yes("MODSEQ \"/flags/\\\\Seen\" all 49");
        no("MODSEQ \"/flags/\\\\Seen\" priv 51");
        // Received 26 hours before NOW.
        yes("OLDER 3600");
        no("OLDER 93600");
        no("YOUNGER 3600");
        yes("YOUNGER 93600");
        let id = main_msg().record.id.to_string();
        yes(&format!("EMAILID {id}"));
        no("EMAILID M1");
        yes("THREADID T7");
        no("THREADID T8");
    }

    #[test]
    fn sequence_and_uid_sets() {
        // The main message is seq 3, UID 7 of UIDs 1 4 7 8 9; $ = 7 9.
        yes("3");
        yes("1:3");
        yes("5:2");
        yes("2,3");
        no("1:2,4");
        yes("3:*");
        yes("*:3");
        no("4:*");
        no("*");
        yes("UID 7");
        yes("UID 9:5");
        yes("UID 7:*");
        no("UID 8:*");
        no("UID *");
        yes("UID 1,5:7");
        yes("UID $");
        yes("$");
        yes("NOT UID 1:6,8:*");
        let m = main_msg();
        let uids = [1, 4, 7, 8, 9];
        let k = keys("$").1;
        assert!(!matches(&k, &item(&m, 3), &cx(&[1, 4], &uids)));
        assert!(!matches(&k, &item(&m, 3), &cx(&[], &uids)));
        // `*` is the last message, whatever the mailbox holds.
        let m9 = msg("Subject: x\n\nbody\n", 9);
        assert!(matches(&keys("*").1, &item(&m9, 5), &cx(&[], &uids)));
        assert!(matches(&keys("UID *").1, &item(&m9, 5), &cx(&[], &uids)));
        assert!(matches(
            &keys("UID 100:*").1,
            &item(&m9, 5),
            &cx(&[], &uids)
        ));
    }

    #[test]
    fn not_or_and_nesting() {
        yes("NOT DELETED");
        no("NOT SEEN");
        yes("OR DELETED SEEN");
        yes("OR SEEN DELETED");
        no("OR DELETED ANSWERED");
        yes("(SEEN FLAGGED)");
        no("(SEEN DELETED)");
        yes("NOT (SEEN DELETED)");
        yes("OR (DELETED SEEN) (FROM alice NOT TO alice)");
        no("NOT OR (DELETED SEEN) (FROM alice NOT TO alice)");
        yes("OR NOT OR DELETED ANSWERED DRAFT");
        no("OR OR DELETED ANSWERED OR DRAFT NOT FLAGGED");
        yes("SEEN FROM alice SUBJECT pears UID 7");
        no("SEEN FROM alice SUBJECT pears UID 8");
    }

    #[test]
    fn charset() {
        assert_eq!(check_charset(None), Ok(()));
        for ok in ["UTF-8", "utf-8", "US-ASCII", "us-ascii"] {
            let (c, _) = keys(&format!("CHARSET {ok} ALL"));
            assert_eq!(check_charset(c.as_ref()), Ok(()), "{ok}");
        }
        for bad in ["ISO-8859-1", "UTF8", "KOI8-R"] {
            let (c, _) = keys(&format!("CHARSET {bad} ALL"));
            assert_eq!(
                check_charset(c.as_ref()),
                Err(SearchError::BadCharset),
                "{bad}"
            );
        }
        assert!(
            SearchError::BadCharset
                .to_string()
                .starts_with("[BADCHARSET (UTF-8 US-ASCII)]")
        );
    }

    #[test]
    fn hostile_message_is_linear() {
        // 200 000 header fields and a 2 MB body: one pass each.
        let mut raw = String::new();
        for i in 0..200_000 {
            raw.push_str(&format!("X-H{i}: v\n"));
        }
        raw.push('\n');
        raw.push_str(&"a".repeat(2_000_000));
        let m = msg(&raw, 1);
        let uids = [1];
        let start = std::time::Instant::now();
        assert!(!matches(&keys("TEXT zzz").1, &item(&m, 1), &cx(&[], &uids)));
        assert!(matches(
            &keys("HEADER X-H199999 v").1,
            &item(&m, 1),
            &cx(&[], &uids)
        ));
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(ms_day(-1), -1);
        assert_eq!(
            day(&Date::new(2024, 2, 29).unwrap()),
            days_from_civil(2024, 2, 29)
        );
    }
}
