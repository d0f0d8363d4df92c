//! IMAP response data encoders: the strings, flag lists, ENVELOPE, BODY/BODYSTRUCTURE,
//! date-times and sequence sets the server writes inside untagged responses.
//!
//! Every function appends bytes to a `Vec<u8>` and does no I/O; the session frames the
//! response lines around them. What goes out is derived from the metadata extracted once
//! at delivery (`postern_core::message::extract`), so no message is parsed here.
//!
//! **Standards:** RFC 9051 §4.3 (strings: quoted, literal), §4.5 (NIL), §5.1 (mailbox
//! names, INBOX), §7.5.2 (ENVELOPE, BODY, BODYSTRUCTURE) and §9 (formal syntax:
//! `astring`, `nstring`, `address`, `body-type-*`, `body-ext-*`, `date-time` with
//! `date-day-fixed`, `sequence-set`); RFC 3501 §5.1.3 (modified UTF-7 names for
//! IMAP4rev1 clients); RFC 6855 (UTF8=ACCEPT); RFC 3516 (`literal8`); RFC 2047 (encoded
//! words, to give decoded header text back to clients without UTF-8); RFC 6532 §3.5
//! (message/global).
//!
//! **Security:** the values written come from messages, i.e. from anyone who can send
//! mail. An attacker controls subjects, names, addresses, MIME parameters and the part
//! tree, and would like a value to break out of its string and forge response syntax
//! (`") BODY[] {5}` …). So every value is written as a quoted string only when that is
//! safe — no CR, LF or NUL, `\` and `"` escaped, 8-bit only for UTF-8 clients and only
//! when valid UTF-8, at most [`MAX_QUOTED`] bytes — and otherwise as a literal whose
//! length is counted from the bytes, never trusted from input. Atoms are only written
//! for values checked against `ASTRING-CHAR`; keywords that are not atoms are left out
//! rather than written raw. The body tree is walked with recursion bounded by
//! [`MAX_BODY_DEPTH`] whatever the stored tree holds.
//!
//! **Invariants:** no function panics; every output parses under the RFC 9051 grammar
//! (and the RFC 3501 grammar when [`Utf8`] is off — cross-checked in the tests with the
//! independent `imap-codec` decoder); a literal's announced length equals its byte count.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use postern_core::store::{Addr, BodyPart, Envelope, Flags, GroupMark};

/// Whether the client may receive UTF-8 in quoted strings (IMAP4rev2 enabled or UTF8=ACCEPT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf8(pub bool);

/// Longest value written as a quoted string; longer ones go as literals. RFC 9051 sets
/// no limit, but some clients read quoted strings into fixed buffers, and a literal
/// costs only its `{n}` prefix. Dovecot and Cyrus switch at a similar size.
pub const MAX_QUOTED: usize = 1024;

/// Deepest body tree written for BODY/BODYSTRUCTURE. The stored tree is capped at
/// delivery (`HARD_NESTING_DEPTH`, 60), so this only guards a tree built elsewhere:
/// below it a part is written as an opaque `application/octet-stream` leaf.
pub const MAX_BODY_DEPTH: usize = 100;

/// RFC 2047 §2: an encoded word is at most 75 characters. `=?UTF-8?B?` and `?=` take
/// 12, leaving 63 for base64, i.e. 15 groups of 4 = 45 bytes of text.
const ENCODED_WORD_BYTES: usize = 45;

/// `string`: quoted when safe, else a literal (RFC 9051 §4.3).
///
/// Quoted when the value has no CR, LF or NUL, is at most [`MAX_QUOTED`] bytes, and is
/// ASCII — or, with `utf8`, valid UTF-8 (RFC 9051 `QUOTED-CHAR` includes `UTF8-2/3/4`).
/// A literal is `CHAR8` in the grammar, which excludes NUL; a value holding NUL still
/// goes out as a literal (the only framing that cannot be broken), and callers serving
/// binary content should use [`literal8`].
pub fn quoted_or_literal(out: &mut Vec<u8>, s: &[u8], utf8: Utf8) {
    if can_quote(s, utf8) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        for &b in s {
            // RFC 9051 §9: quoted-specials are escaped inside a quoted string.
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

fn can_quote(s: &[u8], utf8: Utf8) -> bool {
    s.len() <= MAX_QUOTED
        && !s.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
        && (s.is_ascii() || (utf8.0 && std::str::from_utf8(s).is_ok()))
}

/// `nstring`: `NIL` or a string.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>, utf8: Utf8) {
    match s {
        Some(s) => quoted_or_literal(out, s, utf8),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// `astring`: an atom when every byte is an `ASTRING-CHAR`, else a string. The empty
/// value and any case of `NIL` are quoted, so a reader expecting `nstring` cannot take
/// them for NIL.
pub fn astring(out: &mut Vec<u8>, s: &str, utf8: Utf8) {
    if !s.is_empty() && !s.eq_ignore_ascii_case("NIL") && s.bytes().all(is_astring_char) {
        out.extend_from_slice(s.as_bytes());
    } else {
        quoted_or_literal(out, s.as_bytes(), utf8);
    }
}

/// `* ACL mailbox (SP identifier SP rights)*` CRLF (RFC 4314 §3.6): identifiers and
/// rights as `astring`s (an empty rights string is `""`).
pub fn acl_line(out: &mut Vec<u8>, mailbox_name: &str, entries: &[(String, String)], utf8: Utf8) {
    out.extend_from_slice(b"* ACL ");
    mailbox(out, mailbox_name, utf8);
    for (id, rights) in entries {
        out.push(b' ');
        astring(out, id, utf8);
        out.push(b' ');
        astring(out, rights, utf8);
    }
    out.extend_from_slice(b"\r\n");
}

/// `* LISTRIGHTS mailbox identifier required *(SP optional)` CRLF (RFC 4314 §3.7).
pub fn list_rights_line(
    out: &mut Vec<u8>,
    mailbox_name: &str,
    identifier: &str,
    required: &str,
    optional: &[&str],
    utf8: Utf8,
) {
    out.extend_from_slice(b"* LISTRIGHTS ");
    mailbox(out, mailbox_name, utf8);
    out.push(b' ');
    astring(out, identifier, utf8);
    out.push(b' ');
    astring(out, required, utf8);
    for o in optional {
        out.push(b' ');
        astring(out, o, utf8);
    }
    out.extend_from_slice(b"\r\n");
}

/// `* MYRIGHTS mailbox rights` CRLF (RFC 4314 §3.8).
pub fn my_rights_line(out: &mut Vec<u8>, mailbox_name: &str, rights: &str, utf8: Utf8) {
    out.extend_from_slice(b"* MYRIGHTS ");
    mailbox(out, mailbox_name, utf8);
    out.push(b' ');
    astring(out, rights, utf8);
    out.extend_from_slice(b"\r\n");
}

/// RFC 9051 §9 `ATOM-CHAR`: any CHAR except atom-specials
/// (`(` `)` `{` SP CTL `%` `*` `"` `\` `]`).
fn is_atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b)
}

/// RFC 9051 §9 `ASTRING-CHAR = ATOM-CHAR / resp-specials`.
fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// `literal`: `{n}` CRLF and the bytes (RFC 9051 §4.3).
pub fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 24);
    out.push(b'{');
    push_num(out, bytes.len() as u64);
    out.extend_from_slice(b"}\r\n");
    out.extend_from_slice(bytes);
}

/// `literal8`: `~{n}` CRLF and the bytes, which may hold NUL (RFC 3516 §4.2, RFC 9051 §4.3).
pub fn literal8(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'~');
    literal(out, bytes);
}

fn push_num(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// Mailbox name: UTF-8 as is when utf8 (RFC 9051 §5.1), else modified UTF-7 (RFC 3501
/// §5.1.3). INBOX, in any case, is always written `INBOX`.
pub fn mailbox(out: &mut Vec<u8>, name: &str, utf8: Utf8) {
    if name.eq_ignore_ascii_case("INBOX") {
        out.extend_from_slice(b"INBOX");
    } else if utf8.0 || name.is_ascii() && !name.contains('&') {
        astring(out, name, utf8);
    } else {
        // RFC 3501 §5.1.3: `&` itself must be written `&-` too.
        astring(out, &postern_imap_proto::encode_mutf7(name), Utf8(false));
    }
}

/// A text that was decoded at delivery (subject, display name) for a client without UTF-8: ASCII as is; otherwise an RFC 2047 encoded-word form (=?UTF-8?B?...?=, split so no encoded word exceeds 75 chars), so the client decodes it back. With utf8 the text as is.
///
/// Control characters other than TAB (CR, LF, NUL, …) become spaces first: the text is
/// for people, an unfolded header has none, and a decoded `=?UTF-8?B?DQo=?=` should
/// not force a literal or reach a client as a line break. Without utf8, an ASCII text
/// holding `=?` is encoded too, so the client's RFC 2047 decoding cannot turn text that
/// merely looks like an encoded word into something else.
pub fn header_text(out: &mut Vec<u8>, text: Option<&str>, utf8: Utf8) {
    let Some(text) = text else {
        out.extend_from_slice(b"NIL");
        return;
    };
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect();
    if utf8.0 || (clean.is_ascii() && !clean.contains("=?")) {
        quoted_or_literal(out, clean.as_bytes(), utf8);
    } else {
        quoted_or_literal(out, encoded_words(&clean).as_bytes(), Utf8(false));
    }
}

/// RFC 2047 `B` encoded words for all of `text`, each holding whole characters (§5)
/// and at most 75 characters long (§2), separated by single spaces, which a decoder
/// drops between adjacent encoded words (§6.2).
fn encoded_words(text: &str) -> String {
    let mut words = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(ENCODED_WORD_BYTES);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (chunk, tail) = rest.split_at(cut);
        if !words.is_empty() {
            words.push(' ');
        }
        words.push_str("=?UTF-8?B?");
        BASE64.encode_string(chunk.as_bytes(), &mut words);
        words.push_str("?=");
        rest = tail;
    }
    words
}

/// A MIME parameter value (decoded from RFC 2231/2047 at delivery): as is when ASCII or
/// for a UTF-8 client, else encoded words, the form most clients decode in a file name.
/// ASCII values are never re-encoded: a boundary may legally contain `=?`.
fn param_value(out: &mut Vec<u8>, value: &str, utf8: Utf8) {
    if utf8.0 || value.is_ascii() {
        quoted_or_literal(out, value.as_bytes(), utf8);
    } else {
        quoted_or_literal(out, encoded_words(value).as_bytes(), Utf8(false));
    }
}

/// `(\Seen \Answered ... keyword ...)`; `recent` adds \Recent for IMAP4rev1 sessions.
///
/// Keywords that are not atoms (empty, or holding a space, `\`, a bracket, 8-bit, …)
/// are left out: written raw they would break the list, and the grammar has no quoted
/// form for a flag (RFC 9051 §9 `flag-keyword = atom`).
pub fn flag_list(out: &mut Vec<u8>, flags: Flags, keywords: &[String], recent: bool) {
    const SYSTEM: [(Flags, &[u8]); 5] = [
        (Flags::SEEN, b"\\Seen"),
        (Flags::ANSWERED, b"\\Answered"),
        (Flags::FLAGGED, b"\\Flagged"),
        (Flags::DELETED, b"\\Deleted"),
        (Flags::DRAFT, b"\\Draft"),
    ];
    out.push(b'(');
    let mut first = true;
    let mut item = |out: &mut Vec<u8>, bytes: &[u8]| {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(bytes);
    };
    for (flag, name) in SYSTEM {
        if flags.contains(flag) {
            item(out, name);
        }
    }
    if recent {
        item(out, b"\\Recent");
    }
    for keyword in keywords {
        if !keyword.is_empty() && keyword.bytes().all(is_atom_char) {
            item(out, keyword.as_bytes());
        }
    }
    out.push(b')');
}

/// ENVELOPE (RFC 9051 §7.5.2): (date subject from sender reply-to to cc bcc in-reply-to message-id); sender and reply-to default to from when empty, as RFC 9051 requires; address = (name adl mailbox host) with NIL adl; an address with no @ or group syntax handled sensibly; NIL where absent.
///
/// Groups are written as RFC 9051 §7.5.2 says: a start marker `(NIL NIL "name" NIL)`,
/// the members, an end marker `(NIL NIL NIL NIL)`; an empty group is the two markers.
/// The host of an address is never NIL (NIL host means a group marker): an address
/// without `@` gets the
/// host `MISSING_DOMAIN`, one without an address at all `MISSING_MAILBOX` and
/// `MISSING_DOMAIN`, as Dovecot writes them. The Message-ID, stored bare, gets its
/// angle brackets back.
pub fn envelope(out: &mut Vec<u8>, env: &Envelope, utf8: Utf8) {
    out.push(b'(');
    nstring(out, env.date.as_deref().map(str::as_bytes), utf8);
    out.push(b' ');
    header_text(out, env.subject.as_deref(), utf8);
    out.push(b' ');
    address_list(out, &env.from, utf8);
    out.push(b' ');
    // RFC 9051 §7.5.2: "If the Sender or Reply-To fields are absent in the [RFC-5322]
    // header, or are present but empty, the server sets the corresponding member of
    // the envelope to be the same value as the from member".
    let sender = if env.sender.is_empty() {
        &env.from
    } else {
        &env.sender
    };
    address_list(out, sender, utf8);
    out.push(b' ');
    let reply_to = if env.reply_to.is_empty() {
        &env.from
    } else {
        &env.reply_to
    };
    address_list(out, reply_to, utf8);
    for list in [&env.to, &env.cc, &env.bcc] {
        out.push(b' ');
        address_list(out, list, utf8);
    }
    out.push(b' ');
    nstring(out, env.in_reply_to.as_deref().map(str::as_bytes), utf8);
    out.push(b' ');
    match env.message_id.as_deref() {
        Some(id) if id.starts_with('<') => quoted_or_literal(out, id.as_bytes(), utf8),
        Some(id) => quoted_or_literal(out, format!("<{id}>").as_bytes(), utf8),
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b')');
}

/// `"(" 1*address ")" / nil`; addresses with neither name nor address are skipped,
/// group markers are written as markers. No space between addresses: the grammar has
/// none (some servers write one and clients carry quirks for it, e.g. imap-codec's
/// `quirk_spaces_between_addresses`).
fn address_list(out: &mut Vec<u8>, addrs: &[Addr], utf8: Utf8) {
    let mut written = false;
    for addr in addrs {
        if addr.group.is_none() && addr.name.is_none() && addr.address.is_none() {
            continue;
        }
        if !written {
            out.push(b'(');
        }
        written = true;
        match addr.group {
            // The group's display name is the mailbox field of the start marker.
            Some(GroupMark::Start) => {
                out.extend_from_slice(b"(NIL NIL ");
                header_text(out, Some(addr.name.as_deref().unwrap_or_default()), utf8);
                out.extend_from_slice(b" NIL)");
            }
            Some(GroupMark::End) => out.extend_from_slice(b"(NIL NIL NIL NIL)"),
            None => address(out, addr, utf8),
        }
    }
    out.extend_from_slice(if written { b")" } else { b"NIL" });
}

/// `address = "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")"`. The source
/// route (adl) is obsolete and never kept: NIL.
fn address(out: &mut Vec<u8>, addr: &Addr, utf8: Utf8) {
    let (local, host) = match addr.address.as_deref() {
        // The last `@`: a quoted local part may hold one.
        Some(a) => match a.rsplit_once('@') {
            Some((l, h)) => (
                if l.is_empty() { "MISSING_MAILBOX" } else { l },
                if h.is_empty() { "MISSING_DOMAIN" } else { h },
            ),
            None => (a, "MISSING_DOMAIN"),
        },
        None => ("MISSING_MAILBOX", "MISSING_DOMAIN"),
    };
    out.push(b'(');
    header_text(out, addr.name.as_deref(), utf8);
    out.extend_from_slice(b" NIL ");
    quoted_or_literal(out, local.as_bytes(), utf8);
    out.push(b' ');
    quoted_or_literal(out, host.as_bytes(), utf8);
    out.push(b')');
}

/// BODY (extensible=false) or BODYSTRUCTURE (extensible=true) from the stored BodyPart tree (RFC 9051 §7.5.2 body, body-type-1part, body-type-mpart, body-ext-*): multipart = (parts... "subtype" [ext: (params) disposition language location]); basic = ("type" "subtype" (params)|NIL id description encoding size [ext: md5=NIL disposition language location]); text adds lines; message/rfc822 (and message/global) adds envelope body lines. size = end_offset - body_offset.
///
/// Types, subtypes, encodings, parameter names and disposition types are written in
/// upper case as in the RFC's examples (and Cyrus, Gmail); parameter values as stored.
/// The stored default `charset=us-ascii` of a part without Content-Type is written,
/// as Dovecot does. A part that cannot be described as its type is written as an
/// `APPLICATION/OCTET-STREAM` leaf with its own fields (id, description, encoding,
/// size, disposition, language, location) and no parameters: a part with `truncated`
/// set (served as opaque bytes), a part without a type or subtype, a multipart without children (the grammar needs
/// `1*body`), a message/rfc822 or message/global without its parsed message (the
/// grammar needs an envelope), and any part below [`MAX_BODY_DEPTH`].
pub fn body_structure(out: &mut Vec<u8>, part: &BodyPart, extensible: bool, utf8: Utf8) {
    body(out, part, extensible, utf8, 0);
}

fn body(out: &mut Vec<u8>, part: &BodyPart, ext: bool, utf8: Utf8, depth: usize) {
    let opaque = part.truncated || depth >= MAX_BODY_DEPTH;
    out.push(b'(');
    if part.media_type == "multipart" && !part.parts.is_empty() && !opaque {
        for child in &part.parts {
            body(out, child, ext, utf8, depth + 1);
        }
        out.push(b' ');
        media_token(out, &part.subtype, utf8);
        if ext {
            out.push(b' ');
            params(out, &part.params, false, utf8);
            out.push(b' ');
            ext_tail(out, part, utf8);
        }
    } else {
        let message = part
            .message
            .as_deref()
            .filter(|_| !opaque && part.media_type == "message");
        let is_message_type =
            part.media_type == "message" && matches!(part.subtype.as_str(), "rfc822" | "global");
        let described = !opaque
            && !part.media_type.is_empty()
            && !part.subtype.is_empty()
            && part.media_type != "multipart"
            && (!is_message_type || message.is_some());
        if described {
            media_token(out, &part.media_type, utf8);
            out.push(b' ');
            media_token(out, &part.subtype, utf8);
            out.push(b' ');
            // RFC 2045 §5.2: text without a charset is US-ASCII; written out, as
            // Dovecot does, so clients need not know the default.
            let default_charset = part.media_type == "text"
                && !part
                    .params
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case("charset"));
            params(out, &part.params, default_charset, utf8);
        } else {
            out.extend_from_slice(b"\"APPLICATION\" \"OCTET-STREAM\" NIL");
        }
        out.push(b' ');
        nstring(out, part.id.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        nstring(out, part.description.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        media_token(out, part.encoding.as_deref().unwrap_or("7bit"), utf8);
        out.push(b' ');
        push_num(out, part.end_offset.saturating_sub(part.body_offset));
        if described {
            if let (Some((env, inner)), true) = (message, is_message_type) {
                out.push(b' ');
                envelope(out, env, utf8);
                out.push(b' ');
                body(out, inner, ext, utf8, depth + 1);
                out.push(b' ');
                push_num(out, part.lines);
            } else if part.media_type == "text" {
                out.push(b' ');
                push_num(out, part.lines);
            }
        }
        if ext {
            // body-fld-md5: not computed (RFC 9051 allows NIL).
            out.extend_from_slice(b" NIL ");
            ext_tail(out, part, utf8);
        }
    }
    out.push(b')');
}

/// A type, subtype, parameter name or encoding: a token, upper-cased.
fn media_token(out: &mut Vec<u8>, token: &str, utf8: Utf8) {
    quoted_or_literal(out, token.to_ascii_uppercase().as_bytes(), utf8);
}

/// `body-fld-param = "(" string SP string *(SP string SP string) ")" / nil`, with
/// `charset=us-ascii` first when `default_charset`.
fn params(out: &mut Vec<u8>, params: &[(String, String)], default_charset: bool, utf8: Utf8) {
    if params.is_empty() && !default_charset {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    if default_charset {
        out.extend_from_slice(b"\"CHARSET\" \"us-ascii\"");
    }
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 || default_charset {
            out.push(b' ');
        }
        media_token(out, name, utf8);
        out.push(b' ');
        param_value(out, value, utf8);
    }
    out.push(b')');
}

/// `body-fld-dsp SP body-fld-lang SP body-fld-loc`, shared by both extension forms.
fn ext_tail(out: &mut Vec<u8>, part: &BodyPart, utf8: Utf8) {
    match part.disposition.as_deref() {
        Some(kind) => {
            out.push(b'(');
            media_token(out, kind, utf8);
            out.push(b' ');
            params(out, &part.disposition_params, false, utf8);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match part.language.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        [one] => quoted_or_literal(out, one.as_bytes(), utf8),
        many => {
            out.push(b'(');
            for (i, tag) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                quoted_or_literal(out, tag.as_bytes(), utf8);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstring(out, part.location.as_deref().map(str::as_bytes), utf8);
}

/// INTERNALDATE / date-time: "25-Nov-2026 04:20:45 +0000" (quoted, day padded with a space per RFC 9051 date-day-fixed) from epoch milliseconds, UTC.
///
/// `date-year` is four digits, so times outside years 1..=9999 are clamped to them.
pub fn date_time(out: &mut Vec<u8>, ms: i64) {
    // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
    const MIN_SECS: i64 = -62_135_596_800;
    const MAX_SECS: i64 = 253_402_300_799;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000).clamp(MIN_SECS, MAX_SECS);
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let month = MONTHS
        .get(usize::from(u8::from(t.month())).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    let text = format!(
        "\"{:>2}-{}-{:04} {:02}:{:02}:{:02} +0000\"",
        t.day(),
        month,
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    );
    out.extend_from_slice(text.as_bytes());
}

/// A sorted sequence-set/uid-set in compact form: [1,2,3,5,7,8] → "1:3,5,7:8"; input may be unsorted with duplicates; empty input writes nothing.
///
/// 0 is not a sequence number or UID (`nz-number`) and is skipped.
pub fn sequence_set(out: &mut Vec<u8>, values: &[u32]) {
    let mut sorted: Vec<u32> = values.iter().copied().filter(|&v| v != 0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = sorted[i];
        }
        if start != sorted[0] {
            out.push(b',');
        }
        push_num(out, u64::from(start));
        if end != start {
            out.push(b':');
            push_num(out, u64::from(end));
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_core::message::{MimeLimits, extract};
    use postern_core::store::MessageMeta;

    const OFF: Utf8 = Utf8(false);
    const ON: Utf8 = Utf8(true);

    fn run(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn meta(raw: &str) -> MessageMeta {
        extract(raw.replace('\n', "\r\n").as_bytes(), &MimeLimits::default())
    }

    fn bs(m: &MessageMeta, ext: bool) -> String {
        run(|o| body_structure(o, &m.body, ext, OFF))
    }

    fn env(m: &MessageMeta) -> String {
        run(|o| envelope(o, &m.envelope, OFF))
    }

    /// The response line a FETCH of every static item gives, as the session writes it.
    fn fetch_line(m: &MessageMeta, utf8: Utf8) -> Vec<u8> {
        let mut line = b"* 1 FETCH (UID 5 FLAGS ".to_vec();
        flag_list(&mut line, Flags::SEEN, &["$Forwarded".to_string()], false);
        line.extend_from_slice(b" INTERNALDATE ");
        date_time(&mut line, 1_795_580_445_000);
        line.extend_from_slice(b" RFC822.SIZE 123 ENVELOPE ");
        envelope(&mut line, &m.envelope, utf8);
        line.extend_from_slice(b" BODY ");
        body_structure(&mut line, &m.body, false, utf8);
        line.extend_from_slice(b" BODYSTRUCTURE ");
        body_structure(&mut line, &m.body, true, utf8);
        line.extend_from_slice(b")\r\n");
        line
    }

    /// An independent IMAP4rev1 decoder (imap-codec, quirks off) must read the whole
    /// line as one FETCH with all seven items.
    fn assert_decodes(line: &[u8]) {
        use imap_codec::imap_types::response::{Data, Response};
        use imap_codec::{ResponseCodec, decode::Decoder};
        match ResponseCodec::default().decode(line) {
            Ok((rest, Response::Data(Data::Fetch { items, .. }))) => {
                assert!(
                    rest.is_empty(),
                    "left over: {:?}",
                    String::from_utf8_lossy(rest)
                );
                assert_eq!(items.as_ref().len(), 7);
            }
            other => panic!(
                "imap-codec rejected {:?}: {other:?}",
                String::from_utf8_lossy(line)
            ),
        }
    }

    fn check_message(raw: &str, envelope: &str, body: &str, structure: &str) {
        let m = meta(raw);
        assert_eq!(env(&m), envelope);
        assert_eq!(bs(&m, false), body);
        assert_eq!(bs(&m, true), structure);
        assert_decodes(&fetch_line(&m, OFF));
    }

    #[test]
    fn quoting() {
        let q = |s: &[u8], u| run(|o| quoted_or_literal(o, s, u));
        assert_eq!(q(b"abc", OFF), "\"abc\"");
        assert_eq!(q(b"", OFF), "\"\"");
        assert_eq!(q(b"a\"b\\c", OFF), "\"a\\\"b\\\\c\"");
        assert_eq!(q(b"tab\there", OFF), "\"tab\there\"");
        assert_eq!(q(b"a\rb", OFF), "{3}\r\na\rb");
        assert_eq!(q(b"a\nb", ON), "{3}\r\na\nb");
        assert_eq!(q(b"a\r\nb", ON), "{4}\r\na\r\nb");
        assert_eq!(q(b"a\0b", ON), "{3}\r\na\0b");
        assert_eq!(q("Grüße".as_bytes(), OFF), "{7}\r\nGrüße");
        assert_eq!(q("Grüße".as_bytes(), ON), "\"Grüße\"");
        assert_eq!(q("\"ü\"".as_bytes(), ON), "\"\\\"ü\\\"\"");
        let mut out = Vec::new();
        quoted_or_literal(&mut out, b"a\xffb", ON);
        assert_eq!(out, b"{3}\r\na\xffb", "invalid UTF-8 is never quoted");
        let long = "x".repeat(MAX_QUOTED);
        assert_eq!(q(long.as_bytes(), OFF), format!("\"{long}\""));
        let longer = "x".repeat(MAX_QUOTED + 1);
        assert_eq!(q(longer.as_bytes(), OFF), format!("{{1025}}\r\n{longer}"));
    }

    #[test]
    fn nstrings_and_literals() {
        assert_eq!(run(|o| nstring(o, None, OFF)), "NIL");
        assert_eq!(run(|o| nstring(o, Some(b""), OFF)), "\"\"");
        assert_eq!(run(|o| nstring(o, Some(b"NIL"), OFF)), "\"NIL\"");
        assert_eq!(run(|o| literal(o, b"")), "{0}\r\n");
        assert_eq!(run(|o| literal(o, b"hello")), "{5}\r\nhello");
        let mut out = Vec::new();
        literal8(&mut out, b"a\0\xff");
        assert_eq!(out, b"~{3}\r\na\0\xff");
    }

    #[test]
    fn astrings() {
        let a = |s: &str, u| run(|o| astring(o, s, u));
        assert_eq!(a("INBOX", OFF), "INBOX");
        assert_eq!(a("user@example.org", OFF), "user@example.org");
        assert_eq!(a("a]b", OFF), "a]b", "resp-specials are ASTRING-CHARs");
        assert_eq!(a("NIL", OFF), "\"NIL\"");
        assert_eq!(a("nIl", OFF), "\"nIl\"");
        assert_eq!(a("", OFF), "\"\"");
        for special in [
            "a b", "a(b", "a)b", "a{b", "a%", "a*", "a\"b", "a\\b", "a\x01",
        ] {
            assert!(a(special, OFF).starts_with('"'), "{special:?}");
        }
        assert_eq!(a("über", ON), "\"über\"");
        assert_eq!(a("über", OFF), "{5}\r\nüber");
    }

    #[test]
    fn acl_responses() {
        let acl = |e: &[(&str, &str)]| {
            let e: Vec<(String, String)> = e
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            run(|o| acl_line(o, "Other Users/a@x.org/Sp ace", &e, OFF))
        };
        assert_eq!(
            acl(&[("a@x.org", "lrswipkxtea"), ("b@x.org", "")]),
            "* ACL \"Other Users/a@x.org/Sp ace\" a@x.org lrswipkxtea b@x.org \"\"\r\n"
        );
        assert_eq!(
            run(|o| list_rights_line(o, "INBOX", "nil", "", &["l", "r"], OFF)),
            "* LISTRIGHTS INBOX \"nil\" \"\" l r\r\n"
        );
        assert_eq!(
            run(|o| my_rights_line(o, "INBOX", "lr", OFF)),
            "* MYRIGHTS INBOX lr\r\n"
        );
    }

    #[test]
    fn mailboxes() {
        let m = |s: &str, u| run(|o| mailbox(o, s, u));
        assert_eq!(m("INBOX", OFF), "INBOX");
        assert_eq!(m("inbox", ON), "INBOX");
        assert_eq!(m("Archive/2026", OFF), "Archive/2026");
        assert_eq!(m("My Folder", OFF), "\"My Folder\"");
        assert_eq!(m("Entwürfe", OFF), "Entw&APw-rfe");
        assert_eq!(m("Entwürfe", ON), "\"Entwürfe\"");
        assert_eq!(m("A&B", OFF), "A&-B");
        assert_eq!(m("A&B", ON), "A&B");
        assert_eq!(m("INBOX/Sub", OFF), "INBOX/Sub");
        assert_eq!(m("NIL", OFF), "\"NIL\"");
    }

    /// Decodes the output of [`header_text`] the way a client does: the encoded words of
    /// a quoted string.
    fn decode_words(quoted: &str) -> String {
        let inner = quoted.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
        let mut text = Vec::new();
        for word in inner.split(' ') {
            assert!(word.len() <= 75, "{word} is too long");
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .unwrap()
                .strip_suffix("?=")
                .unwrap();
            let bytes = BASE64.decode(b64).unwrap();
            // RFC 2047 §5: each word holds whole characters.
            assert!(std::str::from_utf8(&bytes).is_ok());
            text.extend(bytes);
        }
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn header_texts() {
        let h = |s: Option<&str>, u| run(|o| header_text(o, s, u));
        assert_eq!(h(None, OFF), "NIL");
        assert_eq!(h(Some(""), OFF), "\"\"");
        assert_eq!(h(Some("Hello \"you\""), OFF), "\"Hello \\\"you\\\"\"");
        assert_eq!(h(Some("Grüße"), OFF), "\"=?UTF-8?B?R3LDvMOfZQ==?=\"");
        assert_eq!(h(Some("Grüße"), ON), "\"Grüße\"");
        assert_eq!(h(Some("a\r\nb\0c\td"), OFF), "\"a  b c\td\"");
        assert_eq!(
            h(Some("=?UTF-8?Q?x?="), OFF),
            "\"=?UTF-8?B?PT9VVEYtOD9RP3g/PQ==?=\""
        );
        assert_eq!(h(Some("=?UTF-8?Q?x?="), ON), "\"=?UTF-8?Q?x?=\"");
        // Long texts are split into several words, never inside a character.
        for text in [
            "ü".repeat(40),
            "€".repeat(40),
            format!("a{}", "😀".repeat(30)),
        ] {
            let out = h(Some(&text), OFF);
            assert!(out.contains("?= =?UTF-8?B?"), "{out}");
            assert_eq!(decode_words(&out), text);
        }
    }

    #[test]
    fn flag_lists() {
        let f = |flags, kw: &[&str], recent| {
            let kw: Vec<String> = kw.iter().map(|k| k.to_string()).collect();
            run(|o| flag_list(o, flags, &kw, recent))
        };
        assert_eq!(f(Flags::default(), &[], false), "()");
        assert_eq!(f(Flags::default(), &[], true), "(\\Recent)");
        assert_eq!(
            f(Flags::ALL, &["$Forwarded", "Junk"], true),
            "(\\Seen \\Answered \\Flagged \\Deleted \\Draft \\Recent $Forwarded Junk)"
        );
        assert_eq!(
            f(
                Flags::SEEN.union(Flags::DRAFT),
                &["", "a b", "x)", "\\Seen", "ü", "ok"],
                false
            ),
            "(\\Seen \\Draft ok)",
            "keywords that are not atoms are left out"
        );
    }

    #[test]
    fn envelope_defaults_and_odd_addresses() {
        let empty = Envelope::default();
        assert_eq!(
            run(|o| envelope(o, &empty, OFF)),
            "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
        let addr = |name: Option<&str>, address: Option<&str>| {
            Addr::mailbox(name.map(str::to_string), address.map(str::to_string))
        };
        let e = Envelope {
            subject: Some("x".into()),
            from: vec![addr(Some("Root"), Some("root")), addr(None, None)],
            sender: vec![addr(None, Some("s@h"))],
            to: vec![
                addr(Some("Only a name"), None),
                addr(None, Some("\"a@b\"@c")),
            ],
            cc: vec![addr(None, None)],
            bcc: vec![addr(None, Some("@h")), addr(None, Some("l@"))],
            message_id: Some("<already@bracketed>".into()),
            ..Default::default()
        };
        let out = run(|o| envelope(o, &e, OFF));
        assert_eq!(
            out,
            "(NIL \"x\" ((\"Root\" NIL \"root\" \"MISSING_DOMAIN\")) ((NIL NIL \"s\" \"h\")) \
             ((\"Root\" NIL \"root\" \"MISSING_DOMAIN\")) \
             ((\"Only a name\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")\
             (NIL NIL \"\\\"a@b\\\"\" \"c\")) NIL \
             ((NIL NIL \"MISSING_MAILBOX\" \"h\")(NIL NIL \"l\" \"MISSING_DOMAIN\")) \
             NIL \"<already@bracketed>\")"
        );
        let m = MessageMeta {
            envelope: e,
            ..Default::default()
        };
        assert_decodes(&fetch_line(&m, OFF));
    }

    #[test]
    fn envelope_groups() {
        let plain = |a: &str| Addr::mailbox(None, Some(a.to_string()));
        let e = Envelope {
            from: vec![plain("a@example.org")],
            to: vec![
                Addr::group_start("undisclosed-recipients".into()),
                Addr::group_end(),
                plain("b@example.org"),
            ],
            cc: vec![
                plain("x@example.org"),
                Addr::group_start("Gr\u{fc}ppe".into()),
                Addr::mailbox(Some("C".into()), Some("c@example.org".into())),
                Addr::group_end(),
            ],
            ..Default::default()
        };
        let out = run(|o| envelope(o, &e, Utf8(true)));
        assert_eq!(
            out,
            "(NIL NIL ((NIL NIL \"a\" \"example.org\")) ((NIL NIL \"a\" \"example.org\")) \
             ((NIL NIL \"a\" \"example.org\")) \
             ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)\
             (NIL NIL \"b\" \"example.org\")) \
             ((NIL NIL \"x\" \"example.org\")(NIL NIL \"Gr\u{fc}ppe\" NIL)\
             (\"C\" NIL \"c\" \"example.org\")(NIL NIL NIL NIL)) NIL NIL NIL)"
        );
        // Without UTF-8 the group name is an encoded word, like a display name.
        let out = run(|o| envelope(o, &e, OFF));
        assert!(
            out.contains("(NIL NIL \"=?UTF-8?B?R3LDvHBwZQ==?=\" NIL)"),
            "{out}"
        );
        let m = MessageMeta {
            envelope: e,
            ..Default::default()
        };
        assert_decodes(&fetch_line(&m, OFF));
    }

    #[test]
    fn simple_text() {
        check_message(
            SIMPLE,
            "(\"Wed, 25 Nov 2026 04:20:45 +0000\" \"Hello\" \
             ((\"Alice Example\" NIL \"alice\" \"example.org\")) \
             ((\"Alice Example\" NIL \"alice\" \"example.org\")) \
             ((\"Alice Example\" NIL \"alice\" \"example.org\")) \
             ((NIL NIL \"bob\" \"example.net\")) NIL NIL NIL \"<abc.1@example.org>\")",
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 14 2)",
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 14 2 NIL NIL NIL NIL)",
        );
    }

    #[test]
    fn multipart_alternative() {
        check_message(
            ALTERNATIVE,
            "(\"Wed, 25 Nov 2026 04:20:45 +0000\" \"Alt\" ((NIL NIL \"alice\" \"example.org\")) \
             ((NIL NIL \"alice\" \"example.org\")) ((NIL NIL \"list\" \"example.org\")) \
             ((\"Bob\" NIL \"bob\" \"example.net\")(NIL NIL \"carol\" \"example.net\")) \
             ((\"Dave\" NIL \"dave\" \"example.net\")) NIL \"<parent@example.org>\" \
             \"<alt@example.org>\")",
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 1)\
             (\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"QUOTED-PRINTABLE\" 11 1) \
             \"ALTERNATIVE\")",
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 1 NIL NIL NIL NIL)\
             (\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"QUOTED-PRINTABLE\" 11 1 \
             NIL NIL NIL NIL) \"ALTERNATIVE\" (\"BOUNDARY\" \"b1\") NIL NIL NIL)",
        );
    }

    #[test]
    fn multipart_mixed_with_attachment() {
        check_message(
            MIXED,
            "(NIL \"Report\" ((NIL NIL \"alice\" \"example.org\")) \
             ((NIL NIL \"alice\" \"example.org\")) ((NIL NIL \"alice\" \"example.org\")) \
             ((NIL NIL \"bob\" \"example.net\")) NIL NIL NIL \"<mixed@example.org>\")",
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 12 1)\
             (\"APPLICATION\" \"PDF\" (\"NAME\" \"report.pdf\") \"<part2@example.org>\" \
             \"The report\" \"BASE64\" 12) \"MIXED\")",
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 12 1 NIL NIL NIL NIL)\
             (\"APPLICATION\" \"PDF\" (\"NAME\" \"report.pdf\") \"<part2@example.org>\" \
             \"The report\" \"BASE64\" 12 NIL (\"ATTACHMENT\" (\"FILENAME\" \"report.pdf\")) \
             (\"en\" \"de\") \"http://example.org/report.pdf\") \"MIXED\" \
             (\"BOUNDARY\" \"outer\") NIL NIL NIL)",
        );
    }

    #[test]
    fn message_rfc822_inside_multipart() {
        let inner_env = "(NIL \"hello\" ((\"Carol\" NIL \"carol\" \"example.net\")) \
             ((NIL NIL \"carol-bounces\" \"example.net\")) \
             ((\"Carol\" NIL \"carol\" \"example.net\")) \
             ((NIL NIL \"alice\" \"example.org\")) NIL NIL NIL \"<inner@example.net>\")";
        check_message(
            FORWARD,
            "(NIL \"Fwd: hello\" ((NIL NIL \"alice\" \"example.org\")) \
             ((NIL NIL \"alice\" \"example.org\")) ((NIL NIL \"alice\" \"example.org\")) \
             ((NIL NIL \"bob\" \"example.net\")) NIL NIL NIL \"<fwd@example.org>\")",
            &format!(
                "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 9 1)\
                 (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 152 {inner_env} \
                 (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 1) 7) \
                 \"MIXED\")"
            ),
            &format!(
                "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 9 1 \
                 NIL NIL NIL NIL)\
                 (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 152 {inner_env} \
                 (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 1 \
                 NIL NIL NIL NIL) 7 NIL NIL NIL NIL) \
                 \"MIXED\" (\"BOUNDARY\" \"f\") NIL NIL NIL)"
            ),
        );
    }

    #[test]
    fn nested_multipart() {
        check_message(
            NESTED,
            "(NIL \"nested\" ((NIL NIL \"alice\" \"example.org\")) \
             ((NIL NIL \"alice\" \"example.org\")) ((NIL NIL \"alice\" \"example.org\")) \
             NIL NIL NIL NIL NIL)",
            "(((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 4 1)\
             (\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 11 1) \
             \"ALTERNATIVE\")(\"IMAGE\" \"PNG\" NIL NIL NIL \"BASE64\" 12) \"MIXED\")",
            "(((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 4 1 NIL NIL NIL NIL)\
             (\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 11 1 NIL NIL NIL NIL) \
             \"ALTERNATIVE\" (\"BOUNDARY\" \"a\") NIL NIL NIL)\
             (\"IMAGE\" \"PNG\" NIL NIL NIL \"BASE64\" 12 NIL \
             (\"INLINE\" (\"FILENAME\" \"dot.png\")) NIL NIL) \
             \"MIXED\" (\"BOUNDARY\" \"m\") NIL NIL NIL)",
        );
    }

    #[test]
    fn decoded_text_for_rev1_and_utf8_clients() {
        let m = meta(UNICODE);
        let name = "\"=?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?=\"";
        assert_eq!(
            env(&m),
            format!(
                "(NIL \"=?UTF-8?B?R3LDvMOfZSAicXVvdGVkIiBiYWNrXHNsYXNo?=\" \
                 (({name} NIL \"juergen\" \"example.de\")) \
                 (({name} NIL \"juergen\" \"example.de\")) \
                 (({name} NIL \"juergen\" \"example.de\")) \
                 ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)"
            )
        );
        assert_eq!(
            run(|o| envelope(o, &m.envelope, ON)),
            "(NIL \"Grüße \\\"quoted\\\" back\\\\slash\" \
             ((\"Jürgen Müller\" NIL \"juergen\" \"example.de\")) \
             ((\"Jürgen Müller\" NIL \"juergen\" \"example.de\")) \
             ((\"Jürgen Müller\" NIL \"juergen\" \"example.de\")) \
             ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)"
        );
        // The raw 8-bit Content-Description goes as a literal to a rev1 client, the RFC
        // 2231 file name as an encoded word.
        assert_eq!(
            bs(&m, true),
            "(\"APPLICATION\" \"OCTET-STREAM\" (\"NAME\" \"=?UTF-8?B?w7xiZXIuYmlu?=\") NIL \
             {6}\r\nPrüfe \"7BIT\" 3 NIL NIL NIL NIL)"
        );
        assert_eq!(
            run(|o| body_structure(o, &m.body, false, ON)),
            "(\"APPLICATION\" \"OCTET-STREAM\" (\"NAME\" \"über.bin\") NIL \"Prüfe\" \"7BIT\" 3)"
        );
        assert_decodes(&fetch_line(&m, OFF));
    }

    fn leaf(media_type: &str, subtype: &str) -> BodyPart {
        BodyPart {
            media_type: media_type.into(),
            subtype: subtype.into(),
            body_offset: 10,
            end_offset: 30,
            ..Default::default()
        }
    }

    fn line_with(part: BodyPart) -> Vec<u8> {
        fetch_line(
            &MessageMeta {
                body: part,
                ..Default::default()
            },
            OFF,
        )
    }

    #[test]
    fn parts_that_cannot_be_described_are_opaque() {
        let opaque = "(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"7BIT\" 20)";
        // A multipart a limit stopped: no children were kept.
        let mut truncated = leaf("multipart", "mixed");
        truncated.params = vec![("boundary".into(), "x".into())];
        truncated.truncated = true;
        // A multipart without a boundary has no children either.
        let childless = leaf("multipart", "mixed");
        // message/rfc822 in base64: not parsed, so no envelope to give.
        let mut unparsed = leaf("message", "rfc822");
        unparsed.encoding = Some("base64".into());
        for part in [truncated, childless] {
            assert_eq!(run(|o| body_structure(o, &part, false, OFF)), opaque);
            assert_decodes(&line_with(part));
        }
        assert_eq!(
            run(|o| body_structure(o, &unparsed, true, OFF)),
            "(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 20 NIL NIL NIL NIL)"
        );
        assert_decodes(&line_with(unparsed));
        // A truncated multipart inside a good one.
        let mut outer = leaf("multipart", "mixed");
        let mut inner = leaf("multipart", "related");
        inner.truncated = true;
        outer.parts = vec![leaf("text", "plain"), inner];
        assert_eq!(
            run(|o| body_structure(o, &outer, false, OFF)),
            format!(
                "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 20 0)\
                 {opaque} \"MIXED\")"
            )
        );
        assert_decodes(&line_with(outer));
    }

    #[test]
    fn other_message_types_and_odd_offsets() {
        // message/delivery-status is a basic part, not body-type-msg.
        let mut part = leaf("message", "delivery-status");
        part.end_offset = 5; // before body_offset: size 0, no panic
        assert_eq!(
            run(|o| body_structure(o, &part, false, OFF)),
            "(\"MESSAGE\" \"DELIVERY-STATUS\" NIL NIL NIL \"7BIT\" 0)"
        );
        assert_decodes(&line_with(part));
        // message/global (RFC 6532) carries an envelope and body like message/rfc822.
        let mut global = leaf("message", "global");
        global.lines = 3;
        global.message = Some(Box::new((
            Envelope {
                subject: Some("ü".into()),
                ..Default::default()
            },
            leaf("text", "plain"),
        )));
        assert_eq!(
            run(|o| body_structure(o, &global, false, ON)),
            "(\"MESSAGE\" \"GLOBAL\" NIL NIL NIL \"7BIT\" 20 \
             (NIL \"ü\" NIL NIL NIL NIL NIL NIL NIL NIL) \
             (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 20 0) 3)"
        );
    }

    #[test]
    fn depth_is_capped() {
        let mut part = leaf("text", "plain");
        for _ in 0..MAX_BODY_DEPTH + 50 {
            let mut outer = leaf("multipart", "mixed");
            outer.parts = vec![part];
            part = outer;
        }
        let out = run(|o| body_structure(o, &part, true, OFF));
        assert_eq!(out.matches("\"MIXED\"").count(), MAX_BODY_DEPTH);
        assert_eq!(out.matches("OCTET-STREAM").count(), 1);
        assert!(!out.contains("TEXT"));
        assert_eq!(out.matches('(').count(), out.matches(')').count());
    }

    #[test]
    fn date_times() {
        let d = |ms| run(|o| date_time(o, ms));
        assert_eq!(d(1_795_580_445_000), "\"25-Nov-2026 04:20:45 +0000\"");
        assert_eq!(d(0), "\" 1-Jan-1970 00:00:00 +0000\"");
        assert_eq!(d(-1), "\"31-Dec-1969 23:59:59 +0000\"");
        assert_eq!(d(951_782_400_999), "\"29-Feb-2000 00:00:00 +0000\"");
        assert_eq!(d(i64::MAX), "\"31-Dec-9999 23:59:59 +0000\"");
        assert_eq!(d(i64::MIN), "\" 1-Jan-0001 00:00:00 +0000\"");
    }

    #[test]
    fn sequence_sets() {
        let s = |v: &[u32]| run(|o| sequence_set(o, v));
        assert_eq!(s(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(s(&[8, 7, 5, 3, 3, 2, 1, 5]), "1:3,5,7:8");
        assert_eq!(s(&[]), "");
        assert_eq!(s(&[0]), "");
        assert_eq!(s(&[0, 4]), "4");
        assert_eq!(s(&[42]), "42");
        assert_eq!(s(&[u32::MAX, u32::MAX - 1, 1]), "1,4294967294:4294967295");
    }

    const SIMPLE: &str = "From: \"Alice Example\" <alice@example.org>
To: bob@example.net
Subject: Hello
Date: Wed, 25 Nov 2026 04:20:45 +0000
Message-ID: <abc.1@example.org>
Content-Type: text/plain; charset=utf-8

Hi Bob,
bye
";

    const ALTERNATIVE: &str = "From: alice@example.org
To: Bob <bob@example.net>, carol@example.net
Cc: Dave <dave@example.net>
Reply-To: list@example.org
Subject: Alt
Date: Wed, 25 Nov 2026 04:20:45 +0000
Message-ID: <alt@example.org>
In-Reply-To: <parent@example.org>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=\"b1\"

--b1
Content-Type: text/plain; charset=us-ascii

plain
--b1
Content-Type: text/html; charset=us-ascii
Content-Transfer-Encoding: quoted-printable

<p>html</p>
--b1--
";

    const MIXED: &str = "From: alice@example.org
To: bob@example.net
Subject: Report
Message-ID: <mixed@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"outer\"

preamble
--outer
Content-Type: text/plain

see attached
--outer
Content-Type: application/pdf; name=\"report.pdf\"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename=\"report.pdf\"
Content-ID: <part2@example.org>
Content-Description: The report
Content-Language: en, de
Content-Location: http://example.org/report.pdf

JVBERi0xLjQK
--outer--
";

    const FORWARD: &str = "From: alice@example.org
To: bob@example.net
Subject: Fwd: hello
Message-ID: <fwd@example.org>
Content-Type: multipart/mixed; boundary=\"f\"

--f
Content-Type: text/plain

see below
--f
Content-Type: message/rfc822

From: Carol <carol@example.net>
Sender: carol-bounces@example.net
To: alice@example.org
Subject: hello
Message-ID: <inner@example.net>

inner body
--f--
";

    const NESTED: &str = "From: alice@example.org
Subject: nested
Content-Type: multipart/mixed; boundary=\"m\"

--m
Content-Type: multipart/alternative; boundary=\"a\"

--a
Content-Type: text/plain

text
--a
Content-Type: text/html

<b>html</b>
--a--
--m
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Disposition: inline; filename=\"dot.png\"

iVBORw0KGgo=
--m--
";

    const UNICODE: &str = "From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>
To: undisclosed-recipients:;
Subject: =?UTF-8?B?R3LDvMOfZQ==?= \"quoted\" back\\slash
Content-Type: application/octet-stream; name*=UTF-8''%C3%BCber.bin
Content-Description: Prüfe

x
";
}
