//! FETCH body sections served from the stored blob and its stored MIME tree.
//!
//! `BODY[section]<partial>`, `BINARY[part]`, `BINARY.SIZE[part]`, `RFC822`,
//! `RFC822.HEADER` and `RFC822.TEXT` are answered by slicing the message bytes at the
//! offsets [`postern_core::message::extract`] recorded at delivery; the message is
//! never parsed again. Only `HEADER.FIELDS[.NOT]` (a scan of one header section) and
//! `BINARY` (transfer decoding of the leaves) look at the bytes at all.
//!
//! **Standards:** RFC 9051 §6.4.5 (section specifiers and part numbering, `<partial>`,
//! `BINARY`, `BINARY.SIZE`), RFC 3516 §4 (BINARY, `[UNKNOWN-CTE]`), RFC 5322 §2.2
//! (header fields, folding) and §4.5.3 (obsolete white space before the colon),
//! RFC 2045 §6 (Content-Transfer-Encoding: base64, quoted-printable, identity).
//!
//! **Security:** the blob is whatever an SMTP peer or an IMAP client sent; the
//! section comes from the client. Every slice goes through `get()`, so an offset that
//! does not fit the blob gives empty bytes, never a panic. Decoding is linear in the
//! part size and lenient (junk in base64 is skipped, a bad `=` escape in
//! quoted-printable is kept as it is), so no content makes decoding fail or loop. Recursion
//! follows the stored tree, whose depth the extractor caps
//! (`postern_core::message::HARD_NESTING_DEPTH`).
//!
//! **Choices** (compared with Dovecot 2.3.19 on the test messages below, 2026-11-25):
//! - A part number that does not exist gives `None` (the caller writes NIL). Part 1
//!   of a non-multipart *message* (the top level, or the message inside a
//!   message/rfc822 part) is its body; a leaf inside a multipart has no sub-parts
//!   (Dovecot also accepts `2.1` for a leaf `2`; we do not).
//! - `N.MIME` of the message inside a message/rfc822 (e.g. `2.1.MIME` when the
//!   encapsulated message is not multipart) is that message's header, as Dovecot
//!   answers ("b) return the same as HEADER", `imap-msgpart.c`).
//! - `BINARY` of a multipart or message/rfc822 part is not refused: like Dovecot
//!   (`index-mail-binary.c`), every leaf inside it is decoded and each decoded leaf's
//!   header gets its Content-Transfer-Encoding fields replaced by
//!   `Content-Transfer-Encoding: binary`; delimiters, preambles and epilogues are kept.
//!   `BINARY[]` is the whole message converted that way (its own header included).
//!   An unknown encoding anywhere in the converted subtree is `NO [UNKNOWN-CTE]`.
//! - `HEADER.FIELDS` of a header section with no blank line (a message that is all
//!   header) has no blank line either, as RFC 9051 §6.4.5 says; Dovecot 2.3 adds one.
//! - `BODY[n]` of a multipart nested in a multipart ends with its close delimiter
//!   (the extractor's offsets); Dovecot also sends the line end after it, which
//!   RFC 2046 §5.1.1 gives to the enclosing delimiter. BINARY sizes differ likewise.
//! - Base64 with characters outside the alphabet is decoded leniently (RFC 2045 §6.8);
//!   Dovecot 2.3 answers `NO [PARSE] Invalid data in MIME part`.
//! - Bytes are served as stored: line ends are not converted (Dovecot turns bare LF
//!   into CRLF), and NUL is not replaced (Dovecot sends 0x80 in BODY); the response
//!   writer must choose a literal8 for BINARY data that holds NUL (RFC 9051 §4.3.1).
//!
//! **Invariants:** no function here panics; `binary_size` equals the length of what
//! `binary` returns; `HEADER.FIELDS (x)` and `HEADER.FIELDS.NOT (x)` partition the
//! header's fields.

use postern_core::store::BodyPart;
use postern_imap_proto::{Partial, Section, SectionText};
use std::borrow::Cow;
use std::num::NonZeroU32;

/// Why a BINARY fetch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    /// RFC 3516 §4.3 / RFC 9051 §7.1: `NO [UNKNOWN-CTE]`. The section, or a leaf inside
    /// it (BINARY of a multipart decodes every leaf, as Dovecot does), has a
    /// Content-Transfer-Encoding other than 7bit, 8bit, binary, base64 and
    /// quoted-printable.
    #[error("[UNKNOWN-CTE] unknown content-transfer-encoding")]
    UnknownCte,
}

/// `BODY[section]` bytes, before any `<partial>` (RFC 9051 §6.4.5). `None` when the
/// part does not exist, or when `HEADER`/`TEXT`/`HEADER.FIELDS` is asked of a part
/// that is not message/rfc822 (the caller writes NIL).
pub fn body_section<'a>(
    raw: &'a [u8],
    body: &BodyPart,
    section: &Section,
) -> Option<Cow<'a, [u8]>> {
    let part = find_part(body, &section.part)?;
    let nested = !section.part.is_empty();
    let text = match &section.text {
        // RFC 9051 §6.4.5: BODY[] is the whole message; BODY[n] is the part's body,
        // which for message/rfc822 is the whole encapsulated message.
        None if nested => return Some(Cow::Borrowed(text(raw, part))),
        None => return Some(Cow::Borrowed(raw)),
        // "The MIME part specifier MUST be prefixed by one or more numeric part
        // specifiers": the part's own header section, blank line included.
        Some(SectionText::Mime) => {
            return nested.then(|| Cow::Borrowed(header(raw, part)));
        }
        Some(t) => t,
    };
    // HEADER, HEADER.FIELDS and TEXT after a part number are only valid for a
    // message/rfc822 part and refer to the encapsulated message (RFC 9051 §6.4.5).
    let message = if nested {
        &part.message.as_deref()?.1
    } else {
        body
    };
    Some(match text {
        SectionText::Header => Cow::Borrowed(header(raw, message)),
        SectionText::Text => Cow::Borrowed(self::text(raw, message)),
        SectionText::HeaderFields { not, fields } => {
            let names: Vec<&[u8]> = fields.iter().map(|f| f.as_bytes()).collect();
            Cow::Owned(header_fields(header(raw, message), &names, *not))
        }
        // Answered above.
        SectionText::Mime => return None,
    })
}

/// The `<partial>` window (RFC 9051 §6.4.5): bytes `[offset, offset + length)`,
/// clipped to the data; empty when the offset is at or past the end.
pub fn partial<'a>(bytes: &'a [u8], p: Option<&Partial>) -> &'a [u8] {
    let Some(p) = p else {
        return bytes;
    };
    let start = usize::try_from(p.offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = start
        .saturating_add(usize::try_from(p.length).unwrap_or(usize::MAX))
        .min(bytes.len());
    bytes.get(start..end).unwrap_or_default()
}

/// `BINARY[part]` (RFC 3516 §4.2, RFC 9051 §6.4.5): the part's body with its
/// Content-Transfer-Encoding removed. An empty path is the whole message, header
/// included; a multipart or message/rfc822 part has every leaf inside it decoded (see
/// the module doc). `Ok(None)` when the part does not exist.
pub fn binary(
    raw: &[u8],
    body: &BodyPart,
    part: &[NonZeroU32],
) -> Result<Option<Vec<u8>>, BinaryError> {
    let Some(target) = find_part(body, part) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    convert(raw, target, part.is_empty(), &mut out)?;
    Ok(Some(out))
}

/// `BINARY.SIZE[part]` (RFC 3516 §4.2): the length [`binary`] would return, counted
/// without keeping the decoded bytes.
pub fn binary_size(
    raw: &[u8],
    body: &BodyPart,
    part: &[NonZeroU32],
) -> Result<Option<u64>, BinaryError> {
    let Some(target) = find_part(body, part) else {
        return Ok(None);
    };
    let mut count = Count(0);
    convert(raw, target, part.is_empty(), &mut count)?;
    Ok(Some(count.0))
}

/// `RFC822.HEADER` = `BODY[HEADER]` of `body`: its header section including the blank
/// line that ends it (absent only when the section has none).
pub fn header<'a>(raw: &'a [u8], body: &BodyPart) -> &'a [u8] {
    slice(raw, body.header_offset, body.body_offset)
}

/// `RFC822.TEXT` = `BODY[TEXT]` of `body`: everything after its header section.
pub fn text<'a>(raw: &'a [u8], body: &BodyPart) -> &'a [u8] {
    slice(raw, body.body_offset, body.end_offset)
}

fn slice(raw: &[u8], from: u64, to: u64) -> &[u8] {
    let (Ok(from), Ok(to)) = (usize::try_from(from), usize::try_from(to)) else {
        return &[];
    };
    raw.get(from..to).unwrap_or_default()
}

fn is_multipart(part: &BodyPart) -> bool {
    part.media_type.eq_ignore_ascii_case("multipart")
}

/// The part a numeric section path names (RFC 9051 §6.4.5): the Nth child of a
/// multipart; `1` for the body of a non-multipart message; a number after a
/// message/rfc822 part continues inside its encapsulated message. The empty path is
/// the message itself.
fn find_part<'b>(root: &'b BodyPart, path: &[NonZeroU32]) -> Option<&'b BodyPart> {
    let mut part = root;
    // Whether `part` is a message (the top level or an encapsulated one) rather than
    // a body part: only a message's single body is numbered 1.
    let mut at_message = true;
    for (i, n) in path.iter().enumerate() {
        if is_multipart(part) {
            // A truncated multipart has no children, so every number misses.
            let index = usize::try_from(n.get() - 1).ok()?;
            part = part.parts.get(index)?;
        } else if !(at_message && n.get() == 1) {
            // "non-multipart [MIME-IMB] messages with no encapsulated message, only
            // have a part 1" (RFC 9051 §6.4.5); a leaf body part has none.
            return None;
        }
        at_message = false;
        if i + 1 < path.len() {
            if let Some(inner) = part.message.as_deref() {
                part = &inner.1;
                at_message = true;
            } else if !is_multipart(part) {
                return None;
            }
        }
    }
    Some(part)
}

/// One header field: its name (before the colon, trailing white space removed,
/// RFC 5322 §4.5.3; `None` for a line without a colon or a stray continuation line)
/// and its bytes, continuation lines and line ends included.
struct Field<'a> {
    name: Option<&'a [u8]>,
    bytes: &'a [u8],
}

/// A header section split into fields, and the blank line that ends it, if any.
struct Fields<'a> {
    fields: Vec<Field<'a>>,
    blank: Option<&'a [u8]>,
}

fn split_header(hdr: &[u8]) -> Fields<'_> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut blank = None;
    // Start of the field being collected, with its name.
    let mut current: Option<(usize, Option<&[u8]>)> = None;
    let mut pos = 0;
    for line in hdr.split_inclusive(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        let next = pos + line.len();
        if content.is_empty() {
            // The blank line (CRLF or a bare LF in imported mail) ends the section.
            if let Some((start, name)) = current.take() {
                fields.push(Field {
                    name,
                    bytes: hdr.get(start..pos).unwrap_or_default(),
                });
            }
            blank = Some(line);
            break;
        }
        let continuation = matches!(content.first(), Some(b' ' | b'\t'));
        if !(continuation && current.is_some()) {
            if let Some((start, name)) = current.take() {
                fields.push(Field {
                    name,
                    bytes: hdr.get(start..pos).unwrap_or_default(),
                });
            }
            let name = if continuation {
                None
            } else {
                content
                    .iter()
                    .position(|&c| c == b':')
                    .and_then(|colon| content.get(..colon))
                    .map(trim_end_wsp)
            };
            current = Some((pos, name));
        }
        pos = next;
    }
    if let Some((start, name)) = current {
        fields.push(Field {
            name,
            bytes: hdr.get(start..pos).unwrap_or_default(),
        });
    }
    Fields { fields, blank }
}

fn trim_end_wsp(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    s.get(..end).unwrap_or_default()
}

/// `HEADER.FIELDS (names)` / `HEADER.FIELDS.NOT (names)` (RFC 9051 §6.4.5): the
/// fields whose name matches (ASCII case-insensitive, otherwise exact) — or, with
/// `not`, the others — in message order with their continuation lines, then the blank
/// line: "the blank line is included in all header fetches, except in the case of a
/// message that has no body and no blank line". Unparseable lines have no name, so
/// they only appear with `not`.
fn header_fields(hdr: &[u8], names: &[&[u8]], not: bool) -> Vec<u8> {
    let split = split_header(hdr);
    let mut out = Vec::new();
    for field in &split.fields {
        let matched = field
            .name
            .is_some_and(|n| names.iter().any(|want| want.eq_ignore_ascii_case(n)));
        if matched != not {
            out.extend_from_slice(field.bytes);
        }
    }
    if let Some(blank) = split.blank {
        out.extend_from_slice(blank);
    }
    out
}

/// Where decoded bytes go: kept, or only counted (BINARY.SIZE).
trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn byte(&mut self, b: u8) {
        self.put(&[b]);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn byte(&mut self, b: u8) {
        self.push(b);
    }
}

struct Count(u64);

impl Sink for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len() as u64);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cte {
    /// 7bit, 8bit, binary, or no field (RFC 2045 §6.1 default 7bit): served as is.
    Identity,
    Base64,
    QuotedPrintable,
}

fn cte(part: &BodyPart) -> Result<Cte, BinaryError> {
    let Some(encoding) = part.encoding.as_deref() else {
        return Ok(Cte::Identity);
    };
    let is = |name: &str| encoding.eq_ignore_ascii_case(name);
    if is("7bit") || is("8bit") || is("binary") {
        Ok(Cte::Identity)
    } else if is("base64") {
        Ok(Cte::Base64)
    } else if is("quoted-printable") {
        Ok(Cte::QuotedPrintable)
    } else {
        // RFC 3516 §4.3: NO [UNKNOWN-CTE].
        Err(BinaryError::UnknownCte)
    }
}

/// BINARY of one part, written to `out`: its header when `include_header` (rewritten
/// when the part is decoded), then its body — decoded for a leaf, or for a container
/// its bytes with every child converted in place (Dovecot's `add_binary_part`).
fn convert(
    raw: &[u8],
    part: &BodyPart,
    include_header: bool,
    out: &mut impl Sink,
) -> Result<(), BinaryError> {
    let encoding = cte(part)?;
    if include_header {
        let hdr = header(raw, part);
        if encoding == Cte::Identity {
            out.put(hdr);
        } else {
            binary_header(hdr, out);
        }
    }
    if let Some(inner) = part.message.as_deref() {
        // The encapsulated message spans the whole body (extractor invariant).
        return convert(raw, &inner.1, true, out);
    }
    if is_multipart(part) && !part.parts.is_empty() {
        let mut cursor = part.body_offset;
        for child in &part.parts {
            // Preamble, delimiter lines and the line ends before them, as stored.
            out.put(slice(raw, cursor, child.header_offset));
            convert(raw, child, true, out)?;
            cursor = child.end_offset;
        }
        out.put(slice(raw, cursor, part.end_offset));
        return Ok(());
    }
    let body = text(raw, part);
    match encoding {
        Cte::Identity => out.put(body),
        Cte::Base64 => decode_base64(body, out),
        Cte::QuotedPrintable => decode_qp(body, out),
    }
    Ok(())
}

/// A decoded part's header: its Content-Transfer-Encoding fields dropped and
/// `Content-Transfer-Encoding: binary` added last, before the blank line, so the
/// header describes the bytes that follow (as Dovecot does).
fn binary_header(hdr: &[u8], out: &mut impl Sink) {
    let split = split_header(hdr);
    let eol: &[u8] = match split.blank {
        Some(b"\n") => b"\n",
        _ => b"\r\n",
    };
    let mut ends_line = true;
    for field in &split.fields {
        let is_cte = field
            .name
            .is_some_and(|n| n.eq_ignore_ascii_case(b"content-transfer-encoding"));
        if !is_cte && !field.bytes.is_empty() {
            out.put(field.bytes);
            ends_line = field.bytes.ends_with(b"\n");
        }
    }
    if !ends_line {
        out.put(eol);
    }
    out.put(b"Content-Transfer-Encoding: binary");
    out.put(eol);
    if let Some(blank) = split.blank {
        out.put(blank);
    }
}

fn base64_value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Base64 as mail really has it (RFC 2045 §6.8: "all line breaks or other characters
/// not found in Table 1 must be ignored by decoding software"): everything outside the
/// alphabet is skipped, padding is optional, a lone trailing sextet is dropped. The
/// same leniency as the extractor's preview decoding, so BINARY and PREVIEW agree.
fn decode_base64(encoded: &[u8], out: &mut impl Sink) {
    let mut acc: u32 = 0;
    let mut n = 0;
    for value in encoded.iter().filter_map(|&c| base64_value(c)) {
        acc = (acc << 6) | value;
        n += 1;
        if n == 4 {
            out.put(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.byte((acc >> 4) as u8),
        3 => out.put(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Quoted-printable as mail really has it (RFC 2045 §6.7): white space at the end of a
/// line is transport padding and removed (rule 3); `=` ending a line is a soft break
/// (rule 5); `=XX` in either case decodes; any other `=` stays as it is. Hard line
/// ends are kept as stored.
fn decode_qp(encoded: &[u8], out: &mut impl Sink) {
    for line in encoded.split_inclusive(|&b| b == b'\n') {
        let (content, eol): (&[u8], &[u8]) = if let Some(c) = line.strip_suffix(b"\r\n") {
            (c, b"\r\n")
        } else if let Some(c) = line.strip_suffix(b"\n") {
            (c, b"\n")
        } else {
            (line, b"")
        };
        let content = trim_end_wsp(content);
        let (content, soft) = match content.strip_suffix(b"=") {
            Some(c) => (c, true),
            None => (content, false),
        };
        let mut i = 0;
        while let Some(&c) = content.get(i) {
            if c == b'='
                && let (Some(h), Some(l)) = (
                    content.get(i + 1).copied().and_then(hex_value),
                    content.get(i + 2).copied().and_then(hex_value),
                )
            {
                out.byte(h << 4 | l);
                i += 3;
                continue;
            }
            out.byte(c);
            i += 1;
        }
        if !soft {
            out.put(eol);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_core::message::{MimeLimits, extract};
    use postern_imap_proto::IString;

    fn tree(raw: &[u8]) -> BodyPart {
        extract(raw, &MimeLimits::default()).body
    }

    fn path(s: &str) -> Vec<NonZeroU32> {
        if s.is_empty() {
            return Vec::new();
        }
        s.split('.')
            .map(|n| NonZeroU32::new(n.parse().unwrap()).unwrap())
            .collect()
    }

    /// Parses a section spec the way the wire writes it: `""`, `"2.1"`, `"2.HEADER"`,
    /// `"1.MIME"`, `"HEADER.FIELDS (A B)"`, `"3.HEADER.FIELDS.NOT (A)"`.
    fn spec(s: &str) -> Section {
        let (head, list) = match s.split_once(" (") {
            Some((h, l)) => (h, Some(l.trim_end_matches(')'))),
            None => (s, None),
        };
        let mut numbers = Vec::new();
        let mut rest = Vec::new();
        for piece in head.split('.').filter(|p| !p.is_empty()) {
            if rest.is_empty() && piece.bytes().all(|b| b.is_ascii_digit()) {
                numbers.push(NonZeroU32::new(piece.parse().unwrap()).unwrap());
            } else {
                rest.push(piece);
            }
        }
        let fields = || {
            list.unwrap()
                .split(' ')
                .map(|f| IString::new(f.as_bytes().to_vec()).unwrap())
                .collect()
        };
        let text = match rest.join(".").as_str() {
            "" => None,
            "HEADER" => Some(SectionText::Header),
            "TEXT" => Some(SectionText::Text),
            "MIME" => Some(SectionText::Mime),
            "HEADER.FIELDS" => Some(SectionText::HeaderFields {
                not: false,
                fields: fields(),
            }),
            "HEADER.FIELDS.NOT" => Some(SectionText::HeaderFields {
                not: true,
                fields: fields(),
            }),
            other => panic!("bad spec {other}"),
        };
        Section {
            part: numbers,
            text,
        }
    }

    fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = hay
            .windows(from.len())
            .position(|w| w == from)
            .expect("pattern present");
        [&hay[..at], to, &hay[at + from.len()..]].concat()
    }

    fn body(raw: &[u8], b: &BodyPart, s: &str) -> Option<Vec<u8>> {
        body_section(raw, b, &spec(s)).map(Cow::into_owned)
    }

    #[track_caller]
    fn assert_body(raw: &[u8], b: &BodyPart, s: &str, want: &[u8]) {
        let got = body(raw, b, s);
        assert_eq!(
            got.as_deref().map(String::from_utf8_lossy),
            Some(String::from_utf8_lossy(want)),
            "BODY[{s}]"
        );
    }

    #[track_caller]
    fn assert_nil(raw: &[u8], b: &BodyPart, s: &str) {
        assert_eq!(body(raw, b, s), None, "BODY[{s}]");
    }

    const SIMPLE: &[u8] = b"From: Alice <a@example.org>\r\n\
Subject: Lunch\r\n plans\r\n\
To: b@example.org\r\n\
X-Obsolete : spaced name\r\n\
\r\n\
Hello\r\n\
World\r\n";

    #[test]
    fn simple_message_sections() {
        let raw = SIMPLE;
        let b = tree(raw);
        let hdr: &[u8] = b"From: Alice <a@example.org>\r\nSubject: Lunch\r\n plans\r\nTo: b@example.org\r\nX-Obsolete : spaced name\r\n\r\n";
        assert_body(raw, &b, "", raw);
        assert_body(raw, &b, "HEADER", hdr);
        assert_body(raw, &b, "TEXT", b"Hello\r\nWorld\r\n");
        assert_eq!(header(raw, &b), hdr);
        assert_eq!(text(raw, &b), b"Hello\r\nWorld\r\n");
        // RFC 9051 §6.4.5: a non-multipart message has only a part 1, its body.
        assert_body(raw, &b, "1", b"Hello\r\nWorld\r\n");
        assert_body(raw, &b, "1.MIME", hdr);
        assert_nil(raw, &b, "2");
        assert_nil(raw, &b, "1.1");
        assert_nil(raw, &b, "1.HEADER");
        assert_nil(raw, &b, "1.TEXT");
    }

    #[test]
    fn header_fields() {
        let raw = SIMPLE;
        let b = tree(raw);
        // A folded field keeps its continuation line; the blank line ends the result.
        assert_body(
            raw,
            &b,
            "HEADER.FIELDS (SUBJECT)",
            b"Subject: Lunch\r\n plans\r\n\r\n",
        );
        // Message order, not request order; names are case-insensitive.
        assert_body(
            raw,
            &b,
            "HEADER.FIELDS (subject FROM)",
            b"From: Alice <a@example.org>\r\nSubject: Lunch\r\n plans\r\n\r\n",
        );
        // No match: just the blank line.
        assert_body(raw, &b, "HEADER.FIELDS (X-NONE)", b"\r\n");
        // Exact names: a prefix does not match.
        assert_body(
            raw,
            &b,
            "HEADER.FIELDS (SUBJ TO)",
            b"To: b@example.org\r\n\r\n",
        );
        // Obsolete syntax: white space between the name and the colon.
        assert_body(
            raw,
            &b,
            "HEADER.FIELDS (x-obsolete)",
            b"X-Obsolete : spaced name\r\n\r\n",
        );
        assert_body(
            raw,
            &b,
            "HEADER.FIELDS.NOT (Subject X-Obsolete)",
            b"From: Alice <a@example.org>\r\nTo: b@example.org\r\n\r\n",
        );
        assert_body(raw, &b, "HEADER.FIELDS.NOT (X-NONE)", header(raw, &b));
    }

    #[test]
    fn header_fields_edge_cases() {
        // A stray continuation before any field and a line without a colon match no
        // name: they are only in NOT.
        let raw = b" stray\r\nSubject: s\r\nnot a field\r\n\tcont\r\n\r\nbody";
        let b = BodyPart {
            header_offset: 0,
            body_offset: 42,
            end_offset: raw.len() as u64,
            ..Default::default()
        };
        assert_eq!(
            &raw[..42],
            b" stray\r\nSubject: s\r\nnot a field\r\n\tcont\r\n\r\n"
        );
        assert_body(raw, &b, "HEADER.FIELDS (SUBJECT)", b"Subject: s\r\n\r\n");
        assert_body(
            raw,
            &b,
            "HEADER.FIELDS.NOT (SUBJECT)",
            b" stray\r\nnot a field\r\n\tcont\r\n\r\n",
        );
        // No blank line (a message that is all header): none is added (RFC 9051
        // §6.4.5 "except in the case of a message that has no body and no blank line").
        let raw = b"Subject: only\r\nTo: x@example.org\r\n";
        let b = tree(raw);
        assert_body(raw, &b, "HEADER", raw);
        assert_body(raw, &b, "TEXT", b"");
        assert_body(raw, &b, "HEADER.FIELDS (TO)", b"To: x@example.org\r\n");
        assert_body(raw, &b, "HEADER.FIELDS (CC)", b"");
    }

    const MIXED: &[u8] = b"From: a@example.org\r\n\
Subject: mixed\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
This is the preamble.\r\n\
--outer\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Part one.\r\n\
--outer\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AA!EC \r\n\
A/8=\r\n\
--outer\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
caf=C3=A9 soft=\r\n\
break =3D done  \r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain\r\n\
\r\n\
plain\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>html</p>\r\n\
--inner--\r\n\
--outer--\r\n\
epilogue\r\n";

    #[test]
    fn multipart_sections() {
        let raw = MIXED;
        let b = tree(raw);
        assert_eq!(b.parts.len(), 4);
        assert_body(raw, &b, "1", b"Part one.");
        assert_body(
            raw,
            &b,
            "1.MIME",
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        );
        assert_body(raw, &b, "2", b"AA!EC \r\nA/8=");
        assert_body(raw, &b, "3", b"caf=C3=A9 soft=\r\nbreak =3D done  ");
        // BODY[n] of a multipart is its raw body, delimiters included.
        assert_body(
            raw,
            &b,
            "4",
            b"--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--inner--",
        );
        assert_body(
            raw,
            &b,
            "4.MIME",
            b"Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n",
        );
        assert_body(raw, &b, "4.1", b"plain");
        assert_body(raw, &b, "4.2", b"<p>html</p>");
        assert_body(raw, &b, "4.2.MIME", b"Content-Type: text/html\r\n\r\n");
        let text_start = raw.windows(9).position(|w| w == b"This is t").unwrap();
        assert_body(raw, &b, "TEXT", &raw[text_start..]);
        assert_body(raw, &b, "HEADER", &raw[..text_start]);
        assert_body(
            raw,
            &b,
            "HEADER.FIELDS (Content-Type)",
            b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n",
        );
        // A leaf in a multipart has no part 1 (Dovecot would answer 1.1 as 1).
        for missing in [
            "5", "4.3", "1.1", "2.1", "4.1.1", "1.HEADER", "4.TEXT", "4.2.TEXT",
        ] {
            assert_nil(raw, &b, missing);
        }
    }

    #[test]
    fn binary_leaves() {
        let raw = MIXED;
        let b = tree(raw);
        // base64 with a line break, junk and padding.
        assert_eq!(binary(raw, &b, &path("2")), Ok(Some(vec![0, 1, 2, 3, 255])));
        assert_eq!(binary_size(raw, &b, &path("2")), Ok(Some(5)));
        // quoted-printable: soft break, =3D, transport padding removed.
        let qp = "café softbreak = done".as_bytes();
        assert_eq!(binary(raw, &b, &path("3")), Ok(Some(qp.to_vec())));
        assert_eq!(binary_size(raw, &b, &path("3")), Ok(Some(qp.len() as u64)));
        // No encoding: as is.
        assert_eq!(binary(raw, &b, &path("1")), Ok(Some(b"Part one.".to_vec())));
        assert_eq!(
            binary(raw, &b, &path("4.2")),
            Ok(Some(b"<p>html</p>".to_vec()))
        );
        // Non-existent parts.
        assert_eq!(binary(raw, &b, &path("9")), Ok(None));
        assert_eq!(binary_size(raw, &b, &path("4.9")), Ok(None));
    }

    #[test]
    fn binary_containers_like_dovecot() {
        let raw = MIXED;
        let b = tree(raw);
        // A multipart with only identity leaves is its body unchanged.
        let four = binary(raw, &b, &path("4")).unwrap().unwrap();
        assert_eq!(four, body(raw, &b, "4").unwrap());
        // BINARY[]: the whole message, each decoded leaf's header saying binary.
        let want = replace(
            raw,
            b"Content-Transfer-Encoding: base64\r\n\r\nAA!EC \r\nA/8=",
            b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02\x03\xff",
        );
        let want = replace(
            &want,
            b"Content-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf=C3=A9 soft=\r\nbreak =3D done  ",
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: binary\r\n\r\ncaf\u{e9} softbreak = done".as_bytes(),
        );
        // Dovecot 2.3.19 answered this byte for byte (for the same message with the
        // base64 junk removed, which it refuses): BINARY.SIZE[] 591.
        assert_eq!(want.len(), 591);
        let whole = binary(raw, &b, &[]).unwrap().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&whole),
            String::from_utf8_lossy(&want)
        );
        assert_eq!(binary_size(raw, &b, &[]), Ok(Some(want.len() as u64)));
    }

    #[test]
    fn unknown_cte() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f\r\n--b\r\n\r\nplain\r\n--b--\r\n";
        let b = tree(raw);
        assert_eq!(binary(raw, &b, &path("1")), Err(BinaryError::UnknownCte));
        assert_eq!(
            binary_size(raw, &b, &path("1")),
            Err(BinaryError::UnknownCte)
        );
        // Converting a container converts the leaf inside it.
        assert_eq!(binary(raw, &b, &[]), Err(BinaryError::UnknownCte));
        assert_eq!(binary(raw, &b, &path("2")), Ok(Some(b"plain".to_vec())));
        // BODY is not affected.
        assert_body(raw, &b, "1", b"begin 644 f");
        assert_eq!(
            BinaryError::UnknownCte.to_string(),
            "[UNKNOWN-CTE] unknown content-transfer-encoding"
        );
        // Identity encodings in any case.
        for cte in ["7bit", "8BIT", "Binary"] {
            let raw = format!("Content-Transfer-Encoding: {cte}\r\n\r\nab=3D\r\n");
            let b = tree(raw.as_bytes());
            assert_eq!(
                binary(raw.as_bytes(), &b, &path("1")),
                Ok(Some(b"ab=3D\r\n".to_vec()))
            );
        }
    }

    const FORWARD: &[u8] = b"From: a@example.org\r\n\
Subject: fwd\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain\r\n\
\r\n\
See attached.\r\n\
--b1\r\n\
Content-Type: message/rfc822\r\n\
Content-Description: forwarded\r\n\
\r\n\
From: c@example.org\r\n\
Subject: inner\r\n\
Content-Type: multipart/mixed; boundary=\"b2\"\r\n\
\r\n\
--b2\r\n\
Content-Type: text/plain\r\n\
\r\n\
inner text\r\n\
--b2\r\n\
Content-Type: image/gif\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
R0lGODlh\r\n\
--b2--\r\n\
--b1--\r\n";

    #[test]
    fn message_rfc822_sections() {
        let raw = FORWARD;
        let b = tree(raw);
        let inner_hdr: &[u8] = b"From: c@example.org\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n";
        let inner_text: &[u8] = b"--b2\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--b2\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlh\r\n--b2--";
        let inner = [inner_hdr, inner_text].concat();
        assert_body(raw, &b, "1", b"See attached.");
        // BODY[2] of a message/rfc822 is the whole encapsulated message.
        assert_body(raw, &b, "2", &inner);
        assert_body(
            raw,
            &b,
            "2.MIME",
            b"Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n",
        );
        assert_body(raw, &b, "2.HEADER", inner_hdr);
        assert_body(raw, &b, "2.TEXT", inner_text);
        assert_body(
            raw,
            &b,
            "2.HEADER.FIELDS (SUBJECT)",
            b"Subject: inner\r\n\r\n",
        );
        assert_body(
            raw,
            &b,
            "2.HEADER.FIELDS.NOT (Subject Content-Type)",
            b"From: c@example.org\r\n\r\n",
        );
        assert_body(raw, &b, "2.1", b"inner text");
        assert_body(raw, &b, "2.1.MIME", b"Content-Type: text/plain\r\n\r\n");
        assert_body(raw, &b, "2.2", b"R0lGODlh");
        assert_nil(raw, &b, "2.3");
        assert_nil(raw, &b, "2.1.1");
        assert_nil(raw, &b, "1.TEXT");
        assert_nil(raw, &b, "2.1.HEADER");
        assert_eq!(binary(raw, &b, &path("2.2")), Ok(Some(b"GIF89a".to_vec())));
        assert_eq!(binary_size(raw, &b, &path("2.2")), Ok(Some(6)));
        // BINARY[2]: the encapsulated message with its base64 leaf decoded.
        let want = [
            inner_hdr,
            b"--b2\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--b2\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: binary\r\n\r\nGIF89a\r\n--b2--",
        ]
        .concat();
        assert_eq!(binary(raw, &b, &path("2")), Ok(Some(want.clone())));
        assert_eq!(
            binary_size(raw, &b, &path("2")),
            Ok(Some(want.len() as u64))
        );
    }

    #[test]
    fn message_rfc822_with_single_part_content() {
        let raw =
            b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nbody\r\n";
        let b = tree(raw);
        assert_body(raw, &b, "1", b"Subject: x\r\n\r\nbody\r\n");
        assert_body(raw, &b, "1.HEADER", b"Subject: x\r\n\r\n");
        assert_body(raw, &b, "1.TEXT", b"body\r\n");
        // N.1 of a message/rfc822 whose content is not multipart is its body.
        assert_body(raw, &b, "1.1", b"body\r\n");
        // Its MIME header is the encapsulated message's header (Dovecot's choice).
        assert_body(raw, &b, "1.1.MIME", b"Subject: x\r\n\r\n");
        assert_body(
            raw,
            &b,
            "1.MIME",
            b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n",
        );
        assert_nil(raw, &b, "1.2");
        assert_nil(raw, &b, "1.1.1");
        assert_nil(raw, &b, "2");
    }

    /// The structure of RFC 9051 §6.4.5's example, each leaf's body naming its part.
    #[test]
    fn rfc9051_example_structure() {
        let raw = b"Subject: example\r\n\
Content-Type: MULTIPART/MIXED; boundary=a\r\n\
\r\n\
--a\r\n\
Content-Type: TEXT/PLAIN\r\n\
\r\n\
leaf 1\r\n\
--a\r\n\
Content-Type: APPLICATION/OCTET-STREAM\r\n\
\r\n\
leaf 2\r\n\
--a\r\n\
Content-Type: MESSAGE/RFC822\r\n\
\r\n\
Subject: three\r\n\
Content-Type: MULTIPART/MIXED; boundary=c\r\n\
\r\n\
--c\r\n\
Content-Type: TEXT/PLAIN\r\n\
\r\n\
leaf 3.1\r\n\
--c\r\n\
Content-Type: APPLICATION/OCTET-STREAM\r\n\
\r\n\
leaf 3.2\r\n\
--c--\r\n\
--a\r\n\
Content-Type: MULTIPART/MIXED; boundary=d\r\n\
\r\n\
--d\r\n\
Content-Type: IMAGE/GIF\r\n\
\r\n\
leaf 4.1\r\n\
--d\r\n\
Content-Type: MESSAGE/RFC822\r\n\
\r\n\
Subject: four-two\r\n\
Content-Type: MULTIPART/MIXED; boundary=e\r\n\
\r\n\
--e\r\n\
Content-Type: TEXT/PLAIN\r\n\
\r\n\
leaf 4.2.1\r\n\
--e\r\n\
Content-Type: MULTIPART/ALTERNATIVE; boundary=f\r\n\
\r\n\
--f\r\n\
Content-Type: TEXT/PLAIN\r\n\
\r\n\
leaf 4.2.2.1\r\n\
--f\r\n\
Content-Type: TEXT/RICHTEXT\r\n\
\r\n\
leaf 4.2.2.2\r\n\
--f--\r\n\
--e--\r\n\
--d--\r\n\
--a--\r\n";
        let b = tree(raw);
        for leaf in ["1", "2", "3.1", "3.2", "4.1", "4.2.1", "4.2.2.1", "4.2.2.2"] {
            assert_body(raw, &b, leaf, format!("leaf {leaf}").as_bytes());
        }
        assert_body(raw, &b, "4.1.MIME", b"Content-Type: IMAGE/GIF\r\n\r\n");
        assert_body(
            raw,
            &b,
            "3.HEADER",
            b"Subject: three\r\nContent-Type: MULTIPART/MIXED; boundary=c\r\n\r\n",
        );
        assert_body(
            raw,
            &b,
            "4.2.HEADER.FIELDS (subject)",
            b"Subject: four-two\r\n\r\n",
        );
        let t = body(raw, &b, "4.2.TEXT").unwrap();
        assert!(t.starts_with(b"--e\r\n") && t.ends_with(b"--e--"));
        let t = body(raw, &b, "3.TEXT").unwrap();
        assert!(t.starts_with(b"--c\r\n") && t.ends_with(b"--c--"));
        for missing in [
            "5",
            "3.3",
            "4.3",
            "4.2.3",
            "4.2.2.3",
            "4.1.HEADER",
            "4.HEADER",
        ] {
            assert_nil(raw, &b, missing);
        }
    }

    #[test]
    fn lf_only_message() {
        let raw = b"Subject: lf\nTo: x@example.org\n\nline one\nline two\n";
        let b = tree(raw);
        assert_body(raw, &b, "HEADER", b"Subject: lf\nTo: x@example.org\n\n");
        assert_body(raw, &b, "TEXT", b"line one\nline two\n");
        assert_body(raw, &b, "HEADER.FIELDS (to)", b"To: x@example.org\n\n");
        assert_body(raw, &b, "HEADER.FIELDS (none)", b"\n");

        let raw = b"Content-Type: multipart/mixed; boundary=z\n\n--z\n\
Content-Transfer-Encoding: quoted-printable\n\nsoft=\nbreak\n--z\n\
Content-Type: text/plain\n\nsecond\n--z--\n";
        let b = tree(raw);
        assert_body(raw, &b, "1", b"soft=\nbreak");
        assert_body(
            raw,
            &b,
            "1.MIME",
            b"Content-Transfer-Encoding: quoted-printable\n\n",
        );
        assert_body(raw, &b, "2", b"second");
        assert_eq!(binary(raw, &b, &path("1")), Ok(Some(b"softbreak".to_vec())));
        let whole = binary(raw, &b, &[]).unwrap().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&whole),
            "Content-Type: multipart/mixed; boundary=z\n\n--z\n\
Content-Transfer-Encoding: binary\n\nsoftbreak\n--z\n\
Content-Type: text/plain\n\nsecond\n--z--\n"
        );
    }

    #[test]
    fn partial_windows() {
        let p = |offset, length| Partial { offset, length };
        assert_eq!(partial(b"hello", None), b"hello");
        assert_eq!(partial(b"hello", Some(&p(0, 5))), b"hello");
        assert_eq!(partial(b"hello", Some(&p(1, 3))), b"ell");
        assert_eq!(partial(b"hello", Some(&p(3, 100))), b"lo");
        assert_eq!(partial(b"hello", Some(&p(0, 0))), b"");
        // At and after the end: empty.
        assert_eq!(partial(b"hello", Some(&p(5, 1))), b"");
        assert_eq!(partial(b"hello", Some(&p(6, 1))), b"");
        assert_eq!(partial(b"hello", Some(&p(u64::MAX, u64::MAX))), b"");
        assert_eq!(partial(b"hello", Some(&p(4, u64::MAX))), b"o");
        assert_eq!(partial(b"", Some(&p(0, 10))), b"");
    }

    #[test]
    fn base64_decoder() {
        let dec = |s: &[u8]| {
            let mut out = Vec::new();
            decode_base64(s, &mut out);
            out
        };
        assert_eq!(dec(b"SGVsbG8sIHdvcmxkIQ=="), b"Hello, world!");
        assert_eq!(dec(b"SGVs\r\nbG8s\r\nIHdv\r\ncmxk\r\nIQ"), b"Hello, world!");
        assert_eq!(dec(b"SG!Vs*bG8 \tsI\x00Hdv=cmxkIQ==\r\n"), b"Hello, world!");
        assert_eq!(dec(b""), b"");
        assert_eq!(dec(b"===="), b"");
        // A lone trailing sextet carries no whole byte.
        assert_eq!(dec(b"SGVsb"), b"Hel");
    }

    #[test]
    fn qp_decoder() {
        let dec = |s: &[u8]| {
            let mut out = Vec::new();
            decode_qp(s, &mut out);
            out
        };
        assert_eq!(dec(b"a=3Db=3db"), b"a=b=b");
        assert_eq!(dec(b"soft=\r\nbreak"), b"softbreak");
        assert_eq!(dec(b"soft= \t\r\nbreak"), b"softbreak");
        assert_eq!(dec(b"hard  \r\nline\t\r\n"), b"hard\r\nline\r\n");
        assert_eq!(dec(b"lf=\nonly\n"), b"lfonly\n");
        // A bad escape stays as it is.
        assert_eq!(dec(b"=ZZ =4 =\xff"), b"=ZZ =4 =\xff");
        assert_eq!(dec(b"end="), b"end");
        let mut n = Count(0);
        decode_qp(b"caf=C3=A9=\r\n!", &mut n);
        assert_eq!(n.0, 6);
    }

    #[test]
    fn truncated_part_is_opaque() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\n";
        let limits = MimeLimits {
            parts: 2,
            ..Default::default()
        };
        let b = extract(raw, &limits).body;
        assert!(b.truncated && b.parts.is_empty());
        assert_nil(raw, &b, "1");
        let text_at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_body(raw, &b, "TEXT", &raw[text_at..]);
        assert_eq!(binary(raw, &b, &[]), Ok(Some(raw.to_vec())));
    }

    #[test]
    fn offsets_outside_the_blob_do_not_panic() {
        let b = BodyPart {
            header_offset: 10,
            body_offset: 1_000,
            end_offset: 5,
            encoding: Some("base64".into()),
            ..Default::default()
        };
        let raw = b"short";
        assert_body(raw, &b, "HEADER", b"");
        assert_body(raw, &b, "TEXT", b"");
        assert_body(raw, &b, "1", b"");
        assert_body(raw, &b, "HEADER.FIELDS (A)", b"");
        assert_eq!(binary(raw, &b, &path("1")), Ok(Some(Vec::new())));
    }
}
