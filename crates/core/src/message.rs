//! Message metadata, extracted once at delivery.
//!
//! Messages are immutable blobs; what IMAP FETCH (ENVELOPE, BODYSTRUCTURE, BODY[n]) and
//! JMAP Email/get need is parsed here once and stored beside the blob, so no protocol
//! ever parses a message again (DESIGN §3). Every part carries byte offsets into the
//! blob, so a protocol serves a part by slicing.
//!
//! **Standards:** RFC 5322 (header section, folding), RFC 2045/2046 (MIME entities,
//! default types, multipart delimiters), RFC 2047 (encoded words), RFC 2183
//! (Content-Disposition), RFC 2231 (parameter continuations), RFC 9051 §7.5.2
//! (ENVELOPE and BODYSTRUCTURE fields), RFC 8970 (PREVIEW).
//!
//! **Security:** the input is whatever an SMTP peer or an IMAP/JMAP client sent. The
//! MIME structure is walked by this module, not by `mail_parser::MessageParser::parse`,
//! because that parser (0.11.9) is not safe on hostile input:
//! - 100 000-deep `message/rfc822` nesting overflows the stack (measured: even the 8 MiB
//!   main thread aborts); its nested `Message` values are built and dropped recursively;
//! - a multipart whose children each declare a boundary that never occurs costs O(n²):
//!   every child rescans the rest of the message (measured: 570 KB took 15.7 s in a
//!   debug build);
//! - its RFC 2231 continuation merge is quadratic in the length of one Content-Type
//!   field (measured: a 17 MB field took 12.7 s).
//!
//! So the walk here is a single forward pass over lines with the stack of active
//! boundaries, recursion bounded by [`MimeLimits::nesting_depth`] (and
//! [`HARD_NESTING_DEPTH`]), at most [`MimeLimits::parts`] parts examined, and sections of
//! more than [`MimeLimits::header_count`] fields not descended into. mail-parser is used
//! for what it does well and in linear time: the value of one header field (addresses,
//! RFC 2047 words, dates, message ids, Content-Type parameters, the latter capped at
//! [`MAX_PARAMETER_FIELD`] bytes) and the charset/transfer decoding of preview text.
//!
//! **Invariants:** [`extract`] never panics and never fails; its time is linear in the
//! message size; every offset satisfies `header_offset <= body_offset <= end_offset <=
//! raw.len()`, and a child lies inside its parent.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::html_to_text;
use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};
use postern_store::{Addr, BodyPart, Envelope, MessageMeta};
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::BufRead;

/// Caps on what we parse (named settings in config: `limits.mime_nesting_depth`,
/// `limits.mime_parts`, `limits.mime_header_count`). A message over a cap is still
/// accepted and stored whole; only the part where the cap applied is described as
/// opaque bytes (`BodyPart::truncated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MimeLimits {
    /// Deepest nesting of parts (each `multipart` child and each encapsulated message is
    /// one level; the message itself is level 0). A container at this depth is not
    /// descended into. Values above [`HARD_NESTING_DEPTH`] are treated as that.
    pub nesting_depth: usize,
    /// Most MIME parts examined in one message, the top-level body included. When a
    /// multipart would exceed it, that multipart becomes opaque, and so does every
    /// enclosing multipart that still has children to read: the walk never examines
    /// more parts than this, whatever the message holds.
    pub parts: usize,
    /// Most header fields in one header section. A part whose section has more is
    /// opaque: its children (or encapsulated message) are not read.
    pub header_count: usize,
}

impl Default for MimeLimits {
    fn default() -> Self {
        MimeLimits {
            nesting_depth: 50,
            parts: 10_000,
            header_count: 5_000,
        }
    }
}

/// Ceiling on the nesting depth whatever the configuration says, for two reasons:
/// - the walk recurses once per level and runs on tokio threads with 2 MiB stacks; 60
///   levels need well under 1 MiB even in a debug build (about 6 KiB a level there);
/// - the store keeps `MessageMeta` as JSON, two JSON levels per MIME level, and
///   serde_json refuses input nested deeper than 128: at 60 levels the deepest value is
///   at about 124, at 62 a stored record could no longer be read back.
///
/// Both are tested at this ceiling with 10 000-deep input.
pub const HARD_NESTING_DEPTH: usize = 60;

/// Longest Content-Type / Content-Disposition value handed to mail-parser. Its RFC 2231
/// continuation merge is quadratic in the field length; real fields, long encoded file
/// names included, are a few kilobytes. The rest of a longer field is ignored.
pub const MAX_PARAMETER_FIELD: usize = 64 * 1024;

/// RFC 2046 §5.1.1 allows 70 characters; longer values are accepted up to one legal line
/// (RFC 5322 §2.1.1) for lenience, and beyond that the multipart has no usable boundary.
const MAX_BOUNDARY: usize = 998;

/// RFC 8970 §3: the preview is at most 256 characters.
const PREVIEW_CHARS: usize = 256;

/// Encoded bytes of a text/plain part read for the preview: 256 characters after
/// whitespace collapsing fit easily, and the cost stays flat for huge bodies.
const PREVIEW_TEXT_SOURCE: usize = 64 * 1024;

/// Encoded bytes of a text/html part read for the preview: HTML often opens with a long
/// `<head>` and inline CSS before the first visible word.
const PREVIEW_HTML_SOURCE: usize = 256 * 1024;

/// Most ids [`thread_references`] returns. A hostile References field can hold 100 000
/// ids and each is a store lookup. The first id (the thread's root) and the last ones
/// (the nearest ancestors) matter most, so the middle is dropped, as RFC 5537 §3.4.4
/// trims References (it keeps the first and removes from the second on).
pub const MAX_THREAD_REFERENCES: usize = 100;

/// Parse once at delivery. Never panics, never fails: bytes that have no header section
/// at all (no well-formed field before the first blank line) become one `text/plain`
/// part covering all bytes (`header_offset == body_offset == 0`).
///
/// `envelope.message_id` is stored as the bare id without angle brackets (what threading
/// looks up); the IMAP layer puts the brackets back for ENVELOPE. Sender and Reply-To are
/// stored as they are in the header (possibly empty); RFC 9051 §7.5.2 defaulting them to
/// From is the IMAP layer's job. Address groups are kept as RFC 9051 §7.5.2 writes
/// them: a start marker with the group name, the members, an end marker (see [`Addr`]);
/// an empty group is just the two markers.
pub fn extract(raw: &[u8], limits: &MimeLimits) -> MessageMeta {
    let mut walker = Walker {
        raw,
        limits: *limits,
        depth_cap: limits.nesting_depth.min(HARD_NESTING_DEPTH),
        parts: 1,
        boundaries: Vec::new(),
    };
    let head = walker.head(0);
    if head.valid == 0 && head.count > 0 {
        return opaque_message(raw);
    }
    let (envelope, sent_ms, references) = walker.envelope(&head);
    let (body, _) = walker.part_from_head(head, 0, false);
    MessageMeta {
        envelope,
        sent_ms,
        references,
        preview: preview(raw, &body),
        has_attachment: has_attachment(&body, false),
        body,
    }
}

/// Message-IDs (without angle brackets) this message points to: In-Reply-To then
/// References, for threading. Duplicates are dropped (first occurrence kept); at most
/// [`MAX_THREAD_REFERENCES`] ids, keeping In-Reply-To, the first reference and the last
/// ones.
pub fn thread_references(meta: &MessageMeta) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    if let Some(irt) = &meta.envelope.in_reply_to {
        for id in parse_ids(irt.as_bytes()) {
            if seen.insert(id.clone()) {
                out.push(id);
            }
        }
    }
    let refs = &meta.references;
    let room = MAX_THREAD_REFERENCES.saturating_sub(out.len());
    let picked: Vec<&String> = if refs.len() <= room {
        refs.iter().collect()
    } else if room == 0 {
        Vec::new()
    } else {
        refs.iter()
            .take(1)
            .chain(refs.iter().skip(refs.len() - (room - 1)))
            .collect()
    };
    for id in picked {
        if !id.is_empty() && seen.insert(id.clone()) {
            out.push(id.clone());
        }
    }
    out.truncate(MAX_THREAD_REFERENCES);
    out
}

/// Bytes with no header section: one opaque text/plain part, nothing else known.
fn opaque_message(raw: &[u8]) -> MessageMeta {
    let body = BodyPart {
        media_type: "text".into(),
        subtype: "plain".into(),
        params: default_params(),
        header_offset: 0,
        body_offset: 0,
        end_offset: raw.len() as u64,
        lines: count_lines(raw),
        ..Default::default()
    };
    MessageMeta {
        preview: preview(raw, &body),
        body,
        ..Default::default()
    }
}

/// RFC 2045 §5.2: no (or an invalid) Content-Type means `text/plain; charset=us-ascii`.
/// The charset is written out so BODYSTRUCTURE shows what a reader must assume.
fn default_params() -> Vec<(String, String)> {
    vec![("charset".into(), "us-ascii".into())]
}

// Header fields we read, by slot.
const CONTENT_TYPE: usize = 0;
const CONTENT_TRANSFER_ENCODING: usize = 1;
const CONTENT_ID: usize = 2;
const CONTENT_DESCRIPTION: usize = 3;
const CONTENT_DISPOSITION: usize = 4;
const CONTENT_LANGUAGE: usize = 5;
const CONTENT_LOCATION: usize = 6;
const DATE: usize = 7;
const SUBJECT: usize = 8;
const FROM: usize = 9;
const SENDER: usize = 10;
const REPLY_TO: usize = 11;
const TO: usize = 12;
const CC: usize = 13;
const BCC: usize = 14;
const IN_REPLY_TO: usize = 15;
const MESSAGE_ID: usize = 16;
const REFERENCES: usize = 17;
const FIELD_NAMES: [&[u8]; 18] = [
    b"content-type",
    b"content-transfer-encoding",
    b"content-id",
    b"content-description",
    b"content-disposition",
    b"content-language",
    b"content-location",
    b"date",
    b"subject",
    b"from",
    b"sender",
    b"reply-to",
    b"to",
    b"cc",
    b"bcc",
    b"in-reply-to",
    b"message-id",
    b"references",
];

fn field_slot(name: &[u8]) -> Option<usize> {
    FIELD_NAMES
        .iter()
        .position(|n| n.len() == name.len() && n.eq_ignore_ascii_case(name))
}

/// Where a forward scan stopped: at a delimiter line of an active boundary, or at the
/// end of the input.
#[derive(Debug, Clone, Copy)]
struct Stop {
    /// First byte of the delimiter line (`raw.len()` at the end).
    at: usize,
    /// First byte of the line after it.
    next: usize,
    /// Index into the boundary stack, and whether it is a close delimiter (`--b--`).
    hit: Option<(usize, bool)>,
}

/// One header section as found by [`Walker::head`].
struct Head {
    start: usize,
    /// First byte of the body: after the blank line, or where the section stopped.
    body: usize,
    /// Set when the section ran into a delimiter line: the part has no body.
    stop: Option<Stop>,
    /// Value ranges (after the colon, through the field's last line end) of the first
    /// occurrence of each field we read. RFC 5322 allows one of each; later copies are
    /// ignored.
    fields: [Option<(usize, usize)>; FIELD_NAMES.len()],
    /// Lines that start a field, well-formed or not, and stray continuation lines before
    /// any field (the header_count cap counts these).
    count: usize,
    /// Lines that start a well-formed field (`name:` with RFC 5322 ftext name).
    valid: usize,
}

struct Walker<'a> {
    raw: &'a [u8],
    limits: MimeLimits,
    depth_cap: usize,
    /// Parts examined so far (the top-level body is the first).
    parts: usize,
    /// Boundaries of the multiparts being read, outermost first.
    boundaries: Vec<Vec<u8>>,
}

impl<'a> Walker<'a> {
    fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        self.raw.get(from..to).unwrap_or_default()
    }

    /// First byte of the line after the one starting at `pos`. `skip_until` on a byte
    /// slice runs std's memchr, which keeps line walking fast even in debug builds.
    fn next_line(&self, pos: usize) -> usize {
        let mut rest = self.raw.get(pos..).unwrap_or_default();
        match rest.skip_until(b'\n') {
            Ok(n) => pos.saturating_add(n).min(self.raw.len()),
            Err(_) => self.raw.len(),
        }
    }

    /// The line from `pos` to `next` without its line end (CRLF or bare LF).
    fn content(&self, pos: usize, next: usize) -> &'a [u8] {
        let line = self.slice(pos, next);
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        line.strip_suffix(b"\r").unwrap_or(line)
    }

    /// Length of the line end just before `pos` (2 for CRLF, 1 for LF, else 0).
    fn eol_before(&self, pos: usize) -> usize {
        if pos >= 2 && self.slice(pos - 2, pos) == b"\r\n" {
            2
        } else if pos >= 1 && self.slice(pos - 1, pos) == b"\n" {
            1
        } else {
            0
        }
    }

    /// Whether `line` is a delimiter of an active boundary. RFC 2046 §5.1.1: `--`,
    /// the boundary, optionally `--` (close), then only transport padding. The boundary
    /// must match exactly (not as a prefix), so a nested boundary that extends its
    /// parent's is not mistaken for it. The innermost boundary wins when two are equal.
    fn delimiter(&self, line: &[u8]) -> Option<(usize, bool)> {
        let rest = line.strip_prefix(b"--")?;
        for (level, boundary) in self.boundaries.iter().enumerate().rev() {
            if let Some(after) = rest.strip_prefix(boundary.as_slice()) {
                let (close, pad) = match after.strip_prefix(b"--") {
                    Some(pad) => (true, pad),
                    None => (false, after),
                };
                if pad.iter().all(|c| matches!(c, b' ' | b'\t' | b'\r')) {
                    return Some((level, close));
                }
            }
        }
        None
    }

    /// Scans lines from `from` (a line start) to the next delimiter of any active
    /// boundary, or to the end.
    fn scan(&self, from: usize) -> Stop {
        let len = self.raw.len();
        let end = Stop {
            at: len,
            next: len,
            hit: None,
        };
        if self.boundaries.is_empty() {
            return end;
        }
        let mut pos = from;
        while pos < len {
            let next = self.next_line(pos);
            if self.slice(pos, pos + 2) == b"--"
                && let Some(hit) = self.delimiter(self.content(pos, next))
            {
                return Stop {
                    at: pos,
                    next,
                    hit: Some(hit),
                };
            }
            pos = next;
        }
        end
    }

    /// End of a body that starts at `body` and stops at `stop`: the line end before a
    /// delimiter belongs to the delimiter (RFC 2046 §5.1.1), so it is not part of the body.
    fn body_end(&self, body: usize, stop: &Stop) -> usize {
        if stop.hit.is_some() {
            stop.at.saturating_sub(self.eol_before(stop.at)).max(body)
        } else {
            stop.at.max(body)
        }
    }

    /// Reads one header section starting at `start`. Every line is looked at once (to
    /// find the blank line), but only the first occurrence of the fields in
    /// [`FIELD_NAMES`] is remembered, so memory does not grow with the field count.
    fn head(&self, start: usize) -> Head {
        let len = self.raw.len();
        let mut head = Head {
            start,
            body: len,
            stop: None,
            fields: [None; FIELD_NAMES.len()],
            count: 0,
            valid: 0,
        };
        // The slot of the field whose continuation lines extend its value.
        let mut current: Option<usize> = None;
        // Whether a field line (well-formed or not) came before: a continuation line
        // before any field is a malformed line of its own.
        let mut in_field = false;
        let mut pos = start;
        while pos < len {
            let next = self.next_line(pos);
            let line = self.content(pos, next);
            if line.is_empty() {
                head.body = next;
                return head;
            }
            if line.starts_with(b"--")
                && let Some(hit) = self.delimiter(line)
            {
                let stop = Stop {
                    at: pos,
                    next,
                    hit: Some(hit),
                };
                head.body = self.body_end(start, &stop);
                head.stop = Some(stop);
                return head;
            }
            if matches!(line.first(), Some(b' ' | b'\t')) && in_field {
                if let Some(slot) = current
                    && let Some(range) = head.fields.get_mut(slot).and_then(Option::as_mut)
                {
                    range.1 = next;
                }
            } else {
                head.count += 1;
                in_field = true;
                current = None;
                if let Some(colon) = line.iter().position(|&c| c == b':') {
                    let name = trim_end_wsp(line.get(..colon).unwrap_or_default());
                    if !name.is_empty() && name.iter().all(|&c| (33..=126).contains(&c)) {
                        head.valid += 1;
                        if let Some(slot) = field_slot(name)
                            && let Some(entry) = head.fields.get_mut(slot)
                            && entry.is_none()
                        {
                            *entry = Some((pos + colon + 1, next));
                            current = Some(slot);
                        }
                    }
                }
            }
            pos = next;
        }
        head
    }

    /// Runs a mail-parser field parser on one field value. The parsers end a field at a
    /// line end that is not followed by white space, and return nothing at end of
    /// input, so a value that does not end in LF (cut by `cap`, or the last line of a
    /// message without a final newline) gets one.
    fn with_field<T>(
        &self,
        (from, to): (usize, usize),
        cap: usize,
        parse: impl for<'x> FnOnce(&mut MessageStream<'x>) -> T,
    ) -> T {
        let to = to.min(from.saturating_add(cap));
        let value = self.slice(from, to);
        if value.ends_with(b"\n") {
            parse(&mut MessageStream::new(value))
        } else {
            let mut owned = Vec::with_capacity(value.len() + 1);
            owned.extend_from_slice(value);
            owned.push(b'\n');
            parse(&mut MessageStream::new(&owned))
        }
    }

    /// The field's text as it is on the wire: unfolded (RFC 5322 §2.2.3), trimmed, not
    /// decoded. For fields IMAP sends verbatim (Date, In-Reply-To, Content-ID, …).
    fn raw_text(&self, (from, to): (usize, usize)) -> String {
        let unfolded: Vec<u8> = self
            .slice(from, to)
            .iter()
            .copied()
            .filter(|&c| c != b'\r' && c != b'\n')
            .collect();
        String::from_utf8_lossy(trim_wsp(&unfolded)).into_owned()
    }

    fn addresses(&self, range: Option<(usize, usize)>) -> Vec<Addr> {
        let Some(range) = range else {
            return Vec::new();
        };
        self.with_field(range, usize::MAX, |s| match s.parse_address() {
            HeaderValue::Address(Address::List(list)) => list.into_iter().map(to_addr).collect(),
            // mail-parser returns a list with any group as a list of groups, the
            // addresses outside a group as groups without a name (in order).
            HeaderValue::Address(Address::Group(groups)) => {
                let mut out = Vec::new();
                for g in groups {
                    let name = g.name.map(|n| n.trim().to_string());
                    match name {
                        Some(name) if !name.is_empty() => {
                            out.push(Addr::group_start(name));
                            out.extend(g.addresses.into_iter().map(to_addr));
                            out.push(Addr::group_end());
                        }
                        _ => out.extend(g.addresses.into_iter().map(to_addr)),
                    }
                }
                out
            }
            _ => Vec::new(),
        })
    }

    /// The envelope of a message-level header section, with the Date as epoch ms and the
    /// References ids.
    fn envelope(&self, head: &Head) -> (Envelope, Option<i64>, Vec<String>) {
        let f = &head.fields;
        let subject = f[SUBJECT].map(|r| {
            self.with_field(r, usize::MAX, |s| match s.parse_unstructured() {
                HeaderValue::Text(t) => t.into_owned(),
                _ => String::new(),
            })
        });
        let sent_ms = f[DATE]
            .and_then(|r| {
                self.with_field(r, usize::MAX, |s| match s.parse_date() {
                    HeaderValue::DateTime(dt) if dt.is_valid() => Some(dt.to_timestamp()),
                    _ => None,
                })
            })
            .and_then(|secs| secs.checked_mul(1000));
        let message_id = f[MESSAGE_ID].and_then(|r| {
            self.with_field(r, usize::MAX, |s| ids_of(s.parse_id()).into_iter().next())
        });
        let references = f[REFERENCES]
            .map(|r| self.with_field(r, usize::MAX, |s| ids_of(s.parse_id())))
            .unwrap_or_default();
        let envelope = Envelope {
            date: f[DATE].map(|r| self.raw_text(r)),
            subject,
            from: self.addresses(f[FROM]),
            sender: self.addresses(f[SENDER]),
            reply_to: self.addresses(f[REPLY_TO]),
            to: self.addresses(f[TO]),
            cc: self.addresses(f[CC]),
            bcc: self.addresses(f[BCC]),
            in_reply_to: f[IN_REPLY_TO].map(|r| self.raw_text(r)),
            message_id,
        };
        (envelope, sent_ms, references)
    }

    /// The part as its header section describes it; offsets of the body end, lines and
    /// children are filled in by [`Walker::part_from_head`].
    fn describe(&self, head: &Head, parent_digest: bool) -> BodyPart {
        let f = &head.fields;
        let mut part = BodyPart {
            header_offset: head.start as u64,
            body_offset: head.body as u64,
            ..Default::default()
        };
        let declared = f[CONTENT_TYPE].and_then(|r| {
            self.with_field(r, MAX_PARAMETER_FIELD, |s| match s.parse_content_type() {
                HeaderValue::ContentType(ct) => {
                    let ty = ct.ctype().to_ascii_lowercase();
                    let sub = ct.subtype().unwrap_or_default().to_ascii_lowercase();
                    if is_token(&ty) && is_token(&sub) {
                        Some((ty, sub, params_of(ct.attributes(), self.slice(r.0, r.1))))
                    } else {
                        None
                    }
                }
                _ => None,
            })
        });
        match declared {
            Some((ty, sub, params)) => {
                part.media_type = ty;
                part.subtype = sub;
                part.params = params;
            }
            // RFC 2046 §5.1.5: in a digest the default is message/rfc822.
            None if parent_digest => {
                part.media_type = "message".into();
                part.subtype = "rfc822".into();
            }
            None => {
                part.media_type = "text".into();
                part.subtype = "plain".into();
                part.params = default_params();
            }
        }
        part.id = f[CONTENT_ID].map(|r| self.raw_text(r));
        part.description = f[CONTENT_DESCRIPTION].map(|r| self.raw_text(r));
        part.encoding = f[CONTENT_TRANSFER_ENCODING].and_then(|r| {
            // The mechanism is one token (RFC 2045 §6.1); a trailing comment is dropped.
            let text = self.raw_text(r);
            let token = text
                .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            (!token.is_empty()).then_some(token)
        });
        if let Some(r) = f[CONTENT_DISPOSITION] {
            let disposition =
                self.with_field(r, MAX_PARAMETER_FIELD, |s| match s.parse_content_type() {
                    HeaderValue::ContentType(ct) => Some((
                        ct.ctype().to_ascii_lowercase(),
                        params_of(ct.attributes(), self.slice(r.0, r.1)),
                    )),
                    _ => None,
                });
            if let Some((kind, params)) = disposition
                && !kind.is_empty()
            {
                part.disposition = Some(kind);
                part.disposition_params = params;
            }
        }
        part.language = f[CONTENT_LANGUAGE]
            .map(|r| {
                self.raw_text(r)
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        part.location = f[CONTENT_LOCATION].map(|r| self.raw_text(r));
        part
    }

    /// One part from its header section: its body, children or encapsulated message,
    /// and where its body ends. Recursion: at most one level per nesting level, and
    /// `depth < depth_cap` is checked before descending.
    fn part_from_head(
        &mut self,
        head: Head,
        depth: usize,
        parent_digest: bool,
    ) -> (BodyPart, Stop) {
        let mut part = self.describe(&head, parent_digest);
        let over_headers = head.count > self.limits.header_count;
        let can_nest = depth < self.depth_cap && !over_headers;
        let stop = if let Some(stop) = head.stop {
            // The section ran into a delimiter: there is no body to look into.
            stop
        } else if part.media_type == "multipart" {
            let boundary = part
                .params
                .iter()
                .find(|(name, _)| name == "boundary")
                .map(|(_, value)| value.as_bytes())
                .filter(|b| !b.is_empty() && b.len() <= MAX_BOUNDARY)
                .map(<[u8]>::to_vec);
            match boundary {
                // Without a boundary there are no children to find (RFC 2046 §5.1.1
                // makes it mandatory): a multipart with no parts, described as declared.
                None => self.scan(head.body),
                Some(_) if !can_nest => {
                    part.truncated = true;
                    self.scan(head.body)
                }
                Some(boundary) => {
                    let digest = part.subtype == "digest";
                    self.multipart(&mut part, boundary, depth, digest)
                }
            }
        } else if is_message(&part) && identity_encoding(part.encoding.as_deref()) {
            if !can_nest || self.parts >= self.limits.parts {
                part.truncated = true;
                self.scan(head.body)
            } else {
                self.parts += 1;
                let inner = self.head(head.body);
                let (envelope, _, _) = self.envelope(&inner);
                let (body, stop) = self.part_from_head(inner, depth + 1, false);
                part.message = Some(Box::new((envelope, body)));
                stop
            }
        } else {
            self.scan(head.body)
        };
        if over_headers {
            part.truncated = true;
        }
        let end = self.body_end(head.body, &stop);
        part.end_offset = end as u64;
        if part.media_type == "text" || is_message(&part) {
            part.lines = count_lines(self.slice(head.body, end));
        }
        (part, stop)
    }

    /// The children of a multipart whose body starts at `part.body_offset`. Returns the
    /// stop that ends the multipart: a delimiter of an enclosing boundary, or the end.
    fn multipart(
        &mut self,
        part: &mut BodyPart,
        boundary: Vec<u8>,
        depth: usize,
        digest: bool,
    ) -> Stop {
        self.boundaries.push(boundary);
        let level = self.boundaries.len() - 1;
        // Preamble: everything before the first delimiter is ignored (RFC 2046 §5.1.1).
        let mut stop = self.scan(part.body_offset as usize);
        while let Some((hit, false)) = stop.hit
            && hit == level
        {
            if self.parts >= self.limits.parts {
                part.truncated = true;
                break;
            }
            self.parts += 1;
            let head = self.head(stop.next);
            let (child, child_stop) = self.part_from_head(head, depth + 1, digest);
            part.parts.push(child);
            stop = child_stop;
        }
        self.boundaries.truncate(level);
        if part.truncated {
            // Opaque from here: drop what was read and skip to an enclosing delimiter
            // (our own delimiters are no longer recognised, so this is one pass).
            part.parts = Vec::new();
            self.scan(stop.next)
        } else if matches!(stop.hit, Some((hit, true)) if hit == level) {
            // Epilogue after the close delimiter, ignored likewise.
            self.scan(stop.next)
        } else {
            // An enclosing delimiter or the end came first: the close delimiter is
            // missing, which we accept.
            stop
        }
    }
}

fn is_message(part: &BodyPart) -> bool {
    part.media_type == "message" && matches!(part.subtype.as_str(), "rfc822" | "global")
}

/// An encapsulated message is only parsed when its bytes are the message itself
/// (RFC 2046 §5.2.1 allows only 7bit, 8bit, binary). RFC 6532 §3.5 lets message/global
/// be base64 or quoted-printable; offsets into the blob could not describe the decoded
/// message, so such a part is a leaf with `message: None`.
fn identity_encoding(encoding: Option<&str>) -> bool {
    matches!(encoding, None | Some("7bit" | "8bit" | "binary"))
}

/// RFC 2045 §5.1 token: what a type or subtype must be to be taken as declared.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&c))
}

/// The parameters of a Content-Type / Content-Disposition field whose raw value is
/// `field`. mail-parser reports the language of an RFC 2231 extended value
/// (`name*=charset'lang'…`) as an extra parameter `name-language`; one the field does
/// not actually hold is dropped, since it is not a parameter of the message.
fn params_of(
    attributes: Option<&[mail_parser::Attribute<'_>]>,
    field: &[u8],
) -> Vec<(String, String)> {
    let field = field.to_ascii_lowercase();
    attributes
        .unwrap_or_default()
        .iter()
        .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
        .filter(|(name, _)| {
            !name.ends_with("-language") || field.windows(name.len()).any(|w| w == name.as_bytes())
        })
        .collect()
}

fn to_addr(a: mail_parser::Addr<'_>) -> Addr {
    Addr::mailbox(
        a.name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        a.address
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
    )
}

fn ids_of(value: HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![id.into_owned()],
        HeaderValue::TextList(ids) => ids.into_iter().map(Cow::into_owned).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|id| !id.is_empty())
    .collect()
}

fn parse_ids(text: &[u8]) -> Vec<String> {
    let mut owned = Vec::with_capacity(text.len() + 1);
    owned.extend_from_slice(text);
    owned.push(b'\n');
    ids_of(MessageStream::new(&owned).parse_id())
}

fn trim_end_wsp(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    s.get(..end).unwrap_or_default()
}

fn trim_wsp(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(s.len());
    trim_end_wsp(s.get(start..).unwrap_or_default())
}

/// RFC 9051 §7.5.2 body-fld-lines: line ends in the encoded body, plus one for a last
/// line without a line end.
fn count_lines(body: &[u8]) -> u64 {
    let mut rest = body;
    let mut lines = 0u64;
    while !rest.is_empty() {
        match rest.skip_until(b'\n') {
            Ok(0) | Err(_) => break,
            Ok(_) => lines += 1,
        }
    }
    lines
}

/// Whether the message has something a user would call an attachment: a part marked
/// `attachment`, or a non-text leaf (including an encapsulated message) that is not an
/// inline resource of a multipart/related (RFC 2387). A truncated multipart counts,
/// since what it holds is unknown.
fn has_attachment(part: &BodyPart, in_related: bool) -> bool {
    if part.disposition.as_deref() == Some("attachment") {
        return true;
    }
    match part.media_type.as_str() {
        "multipart" if part.truncated => true,
        "multipart" => {
            let related = part.subtype == "related";
            part.parts.iter().any(|p| has_attachment(p, related))
        }
        "text" => false,
        _ => !in_related,
    }
}

/// RFC 8970 preview: up to 256 characters of the first text/plain part that is not an
/// attachment, else of the first such text/html part converted to text, with white space
/// collapsed. Encapsulated messages are attachments, not looked into.
fn preview(raw: &[u8], body: &BodyPart) -> String {
    let mut plain = None;
    let mut html = None;
    find_text(body, &mut plain, &mut html);
    let (part, is_html) = match (plain, html) {
        (Some(p), _) => (p, false),
        (None, Some(h)) => (h, true),
        (None, None) => return String::new(),
    };
    let cap = if is_html {
        PREVIEW_HTML_SOURCE
    } else {
        PREVIEW_TEXT_SOURCE
    };
    let text = part_text(raw, part, cap);
    collapse(&text, PREVIEW_CHARS)
}

/// The text of a `text/*` part: its first `max_source` body bytes with the transfer
/// encoding removed (leniently), decoded from its charset, HTML reduced to text. For
/// PREVIEW and for SEARCH BODY/TEXT.
pub fn part_text(raw: &[u8], part: &BodyPart, max_source: usize) -> String {
    let from = usize::try_from(part.body_offset).unwrap_or(usize::MAX);
    let end = usize::try_from(part.end_offset)
        .unwrap_or(usize::MAX)
        .min(raw.len());
    let to = end.min(from.saturating_add(max_source));
    let cut = to < end;
    let encoded = raw.get(from..to).unwrap_or_default();
    let bytes: Cow<'_, [u8]> = match part.encoding.as_deref() {
        Some(e) if e.eq_ignore_ascii_case("base64") => Cow::Owned(decode_base64_lenient(encoded)),
        Some(e) if e.eq_ignore_ascii_case("quoted-printable") => {
            Cow::Owned(decode_qp_lenient(encoded))
        }
        _ => Cow::Borrowed(encoded),
    };
    let charset = part
        .params
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.as_str());
    let mut text = match charset.and_then(|c| charset_decoder(c.as_bytes())) {
        Some(decode) => decode(&bytes),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    };
    if cut {
        // A character split by the cut decodes as U+FFFD; it is not in the message.
        while text.ends_with('\u{FFFD}') {
            text.pop();
        }
    }
    if part.subtype == "html" {
        text = html_to_text(&text);
    }
    text
}

fn find_text<'p>(
    part: &'p BodyPart,
    plain: &mut Option<&'p BodyPart>,
    html: &mut Option<&'p BodyPart>,
) {
    if plain.is_some() || part.disposition.as_deref() == Some("attachment") {
        return;
    }
    match (part.media_type.as_str(), part.subtype.as_str()) {
        ("multipart", _) => {
            for child in &part.parts {
                find_text(child, plain, html);
            }
        }
        ("text", "plain") => *plain = Some(part),
        ("text", "html") if html.is_none() => *html = Some(part),
        _ => {}
    }
}

/// White space and control characters become single spaces, trimmed, at most `max`
/// characters.
fn collapse(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            if count + 1 >= max {
                break;
            }
            out.push(' ');
            count += 1;
        }
        space = false;
        out.push(c);
        count += 1;
        if count >= max {
            break;
        }
    }
    out
}

/// Base64 as mail really has it: characters outside the alphabet (line ends, stray
/// junk) are skipped and padding is optional.
fn decode_base64_lenient(encoded: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = encoded
        .iter()
        .copied()
        .filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        .collect();
    base64_decode(&clean).unwrap_or_default()
}

/// Quoted-printable as mail really has it: `=XX` decodes, `=` before a line end is a
/// soft break, any other `=` stays as it is.
fn decode_qp_lenient(encoded: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while let Some(&c) = encoded.get(i) {
        if c == b'=' {
            match (encoded.get(i + 1), encoded.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(&h), Some(&l)) => {
                    if let (Some(h), Some(l)) = (hex(h), hex(l)) {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn meta(raw: &[u8]) -> MessageMeta {
        let m = extract(raw, &MimeLimits::default());
        check(raw, &m.body);
        m
    }

    fn slice(raw: &[u8], from: u64, to: u64) -> &[u8] {
        &raw[from as usize..to as usize]
    }

    fn body_of<'r>(raw: &'r [u8], p: &BodyPart) -> &'r [u8] {
        slice(raw, p.body_offset, p.end_offset)
    }

    /// Offsets are ordered and nested, multipart children start right after a delimiter
    /// line of their parent's boundary, encapsulated messages span their part's body,
    /// and `lines` matches its definition.
    fn check(raw: &[u8], p: &BodyPart) {
        assert!(p.header_offset <= p.body_offset, "{p:?}");
        assert!(p.body_offset <= p.end_offset, "{p:?}");
        assert!(p.end_offset as usize <= raw.len(), "{p:?}");
        if p.media_type == "text" || is_message(p) {
            let body = body_of(raw, p);
            let ends = body.iter().filter(|&&c| c == b'\n').count() as u64;
            let partial = u64::from(!body.is_empty() && !body.ends_with(b"\n"));
            assert_eq!(p.lines, ends + partial, "{p:?}");
        }
        if p.truncated {
            assert!(p.parts.is_empty() && p.message.is_none());
        }
        if let Some((_, boundary)) = p.params.iter().find(|(n, _)| n == "boundary") {
            for c in &p.parts {
                assert!(c.header_offset >= p.body_offset && c.end_offset <= p.end_offset);
                let before = &raw[..c.header_offset as usize];
                let before = before.strip_suffix(b"\n").expect("delimiter line end");
                let line_start = before
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let line = &before[line_start..];
                let delimiter = format!("--{boundary}");
                assert!(
                    line.starts_with(delimiter.as_bytes()),
                    "{:?}",
                    String::from_utf8_lossy(line)
                );
                check(raw, c);
            }
        } else {
            assert!(p.parts.is_empty());
        }
        if let Some(inner) = &p.message {
            assert_eq!(inner.1.header_offset, p.body_offset);
            assert_eq!(inner.1.end_offset, p.end_offset);
            check(raw, &inner.1);
        }
    }

    fn addr(name: Option<&str>, address: &str) -> Addr {
        Addr::mailbox(name.map(str::to_string), Some(address.to_string()))
    }

    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    #[test]
    fn plain_message() {
        let raw = crlf(
            "Return-Path: <bounce@example.org>\n\
             Date: Tue, 05 Mar 2024 10:20:30\n +0100\n\
             From: \"Alice Example\" <alice@example.org>\n\
             To: bob@example.com, Carol <carol@example.net>\n\
             Cc: undisclosed-recipients:;\n\
             Subject:   Lunch\n  plans  \n\
             Message-ID: <abc.123@example.org>\n\
             In-Reply-To: <parent@example.org>\n\
             References: <root@example.org>\n <parent@example.org>\n\
             \n\
             Hi Bob,\n\
             \n\
             lunch at   noon?\n",
        );
        let m = meta(&raw);
        let e = &m.envelope;
        assert_eq!(e.date.as_deref(), Some("Tue, 05 Mar 2024 10:20:30 +0100"));
        assert_eq!(m.sent_ms, Some(1_709_630_430_000));
        assert_eq!(e.subject.as_deref(), Some("Lunch plans"));
        assert_eq!(
            e.from,
            vec![addr(Some("Alice Example"), "alice@example.org")]
        );
        assert!(
            e.sender.is_empty() && e.reply_to.is_empty(),
            "IMAP layer defaults them"
        );
        assert_eq!(
            e.to,
            vec![
                addr(None, "bob@example.com"),
                addr(Some("Carol"), "carol@example.net")
            ]
        );
        assert_eq!(
            e.cc,
            vec![
                Addr::group_start("undisclosed-recipients".into()),
                Addr::group_end()
            ],
            "an empty group is its two markers"
        );
        assert_eq!(e.message_id.as_deref(), Some("abc.123@example.org"));
        assert_eq!(e.in_reply_to.as_deref(), Some("<parent@example.org>"));
        assert_eq!(m.references, vec!["root@example.org", "parent@example.org"]);
        assert_eq!(
            thread_references(&m),
            vec!["parent@example.org", "root@example.org"],
            "In-Reply-To first, duplicates dropped"
        );
        let b = &m.body;
        assert_eq!(
            (b.media_type.as_str(), b.subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!(b.params, default_params());
        assert_eq!(b.encoding, None);
        assert_eq!(b.header_offset, 0);
        assert_eq!(body_of(&raw, b), b"Hi Bob,\r\n\r\nlunch at   noon?\r\n");
        assert_eq!(b.end_offset as usize, raw.len());
        assert_eq!(b.lines, 3);
        assert_eq!(m.preview, "Hi Bob, lunch at noon?");
        assert!(!m.has_attachment);
    }

    #[test]
    fn multipart_alternative() {
        let raw = crlf(
            "From: a@example.org\n\
             Subject: alt\n\
             MIME-Version: 1.0\n\
             Content-Type: multipart/alternative; boundary=\"=_alt 1\"\n\
             \n\
             This is the preamble.\n\
             --=_alt 1\n\
             Content-Type: text/plain; charset=UTF-8\n\
             Content-Transfer-Encoding: quoted-printable\n\
             \n\
             Caf=C3=A9 au lait =\n\
             is nice\n\
             --=_alt 1  \n\
             Content-Type: text/html; charset=UTF-8\n\
             \n\
             <p>Caf\u{e9} <b>html</b></p>\n\
             \n\
             --=_alt 1--\n\
             epilogue\n",
        );
        let m = meta(&raw);
        let b = &m.body;
        assert_eq!(
            (b.media_type.as_str(), b.subtype.as_str()),
            ("multipart", "alternative")
        );
        assert_eq!(
            b.params,
            vec![("boundary".to_string(), "=_alt 1".to_string())]
        );
        assert_eq!(b.parts.len(), 2);
        let (p, h) = (&b.parts[0], &b.parts[1]);
        assert_eq!(p.subtype, "plain");
        assert_eq!(p.params, vec![("charset".to_string(), "UTF-8".to_string())]);
        assert_eq!(p.encoding.as_deref(), Some("quoted-printable"));
        assert_eq!(body_of(&raw, p), b"Caf=C3=A9 au lait =\r\nis nice");
        assert_eq!(p.lines, 2);
        assert_eq!(h.subtype, "html");
        assert_eq!(
            body_of(&raw, h),
            "<p>Caf\u{e9} <b>html</b></p>\r\n".as_bytes()
        );
        assert_eq!(
            h.lines, 1,
            "the line end before the delimiter is the delimiter's"
        );
        let hdr = slice(&raw, h.header_offset, h.body_offset);
        assert_eq!(hdr, b"Content-Type: text/html; charset=UTF-8\r\n\r\n");
        assert_eq!(
            b.end_offset as usize,
            raw.len(),
            "the top-level body runs to the end"
        );
        assert_eq!(m.preview, "Caf\u{e9} au lait is nice");
        assert!(!m.has_attachment);
    }

    #[test]
    fn multipart_mixed_with_base64_attachment() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&payload);
        let lines: Vec<&str> = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let raw = crlf(&format!(
            "From: a@example.org\n\
             Content-Type: multipart/mixed;\n boundary=outer\n\
             \n\
             --outer\n\
             Content-Type: text/plain\n\
             \n\
             See attached.\n\
             --outer\n\
             Content-Type: application/octet-stream; name=\"data.bin\"\n\
             Content-Transfer-Encoding: BASE64\n\
             Content-Disposition: attachment;\n filename*=UTF-8''na%C3%AFve.bin; size=1000\n\
             Content-ID: <part2@example.org>\n\
             Content-Description: some bytes\n\
             Content-Language: en, de\n\
             Content-Location: http://example.org/data.bin\n\
             \n\
             {}\n\
             --outer--\n",
            lines.join("\n")
        ));
        let m = meta(&raw);
        let b = &m.body;
        assert_eq!(b.parts.len(), 2);
        let t = &b.parts[0];
        assert_eq!(body_of(&raw, t), b"See attached.");
        assert_eq!(t.params, vec![], "declared without charset: as given");
        let a = &b.parts[1];
        assert_eq!(
            (a.media_type.as_str(), a.subtype.as_str()),
            ("application", "octet-stream")
        );
        assert_eq!(a.params, vec![("name".to_string(), "data.bin".to_string())]);
        assert_eq!(a.encoding.as_deref(), Some("base64"));
        assert_eq!(a.disposition.as_deref(), Some("attachment"));
        assert!(
            a.disposition_params
                .contains(&("filename".to_string(), "na\u{ef}ve.bin".to_string()))
        );
        assert!(
            a.disposition_params
                .contains(&("size".to_string(), "1000".to_string()))
        );
        assert_eq!(a.id.as_deref(), Some("<part2@example.org>"));
        assert_eq!(a.description.as_deref(), Some("some bytes"));
        assert_eq!(a.language, vec!["en", "de"]);
        assert_eq!(a.location.as_deref(), Some("http://example.org/data.bin"));
        assert_eq!(a.lines, 0, "lines are only counted for text and messages");
        let body = body_of(&raw, a);
        assert_eq!(body, lines.join("\r\n").as_bytes());
        assert_eq!(decode_base64_lenient(body), payload);
        // The part's header starts right after the delimiter line.
        assert!(raw[..a.header_offset as usize].ends_with(b"\r\n--outer\r\n"));
        assert!(raw[a.end_offset as usize..].starts_with(b"\r\n--outer--"));
        assert!(m.has_attachment);
        assert_eq!(m.preview, "See attached.");
    }

    #[test]
    fn nested_message_rfc822() {
        let raw = crlf(
            "From: fwd@example.org\n\
             Subject: Fwd: hello\n\
             Content-Type: multipart/mixed; boundary=b1\n\
             \n\
             --b1\n\
             Content-Type: text/plain; charset=us-ascii\n\
             \n\
             Forwarding.\n\
             --b1\n\
             Content-Type: message/rfc822\n\
             \n\
             From: =?ISO-8859-1?Q?J=F6rg?= <joerg@example.de>\n\
             Subject: hello\n\
             Message-ID: <inner@example.de>\n\
             Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
             Content-Type: multipart/alternative; boundary=b2\n\
             \n\
             --b2\n\
             Content-Type: text/plain\n\
             \n\
             inner text\n\
             --b2--\n\
             \n\
             --b1--\n",
        );
        let m = meta(&raw);
        assert_eq!(m.body.parts.len(), 2);
        let msg = &m.body.parts[1];
        assert_eq!(
            (msg.media_type.as_str(), msg.subtype.as_str()),
            ("message", "rfc822")
        );
        let (env, inner) = msg.message.as_deref().expect("encapsulated message");
        assert_eq!(env.subject.as_deref(), Some("hello"));
        assert_eq!(env.from, vec![addr(Some("J\u{f6}rg"), "joerg@example.de")]);
        assert_eq!(env.message_id.as_deref(), Some("inner@example.de"));
        assert_eq!(env.date.as_deref(), Some("Mon, 1 Jan 2024 00:00:00 +0000"));
        assert_eq!(inner.subtype, "alternative");
        assert_eq!(inner.parts.len(), 1);
        assert_eq!(body_of(&raw, &inner.parts[0]), b"inner text");
        assert!(slice(&raw, msg.body_offset, msg.end_offset).starts_with(b"From: =?ISO"));
        assert!(slice(&raw, msg.body_offset, msg.end_offset).ends_with(b"--b2--\r\n"));
        assert_eq!(msg.lines, 11);
        assert!(m.has_attachment, "a forwarded message is an attachment");
        assert_eq!(m.preview, "Forwarding.");
        assert_eq!(m.envelope.subject.as_deref(), Some("Fwd: hello"));
    }

    #[test]
    fn rfc2231_language_is_not_a_parameter() {
        let raw = crlf(
            "Content-Type: text/plain; charset=us-ascii; name*=UTF-8'en'%E2%82%AC.txt\n\
             Content-Disposition: inline; filename*=iso-8859-1'de'%E4.txt; x-language=fr\n\
             \n\
             body\n",
        );
        let m = meta(&raw);
        let names: Vec<&str> = m.body.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["charset", "name"], "{:?}", m.body.params);
        let names: Vec<&str> = m
            .body
            .disposition_params
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert!(
            !names.contains(&"filename-language") && names.contains(&"x-language"),
            "{:?}",
            m.body.disposition_params
        );
    }

    #[test]
    fn address_groups() {
        let raw = crlf(
            "From: a@example.org\n\
             To: undisclosed-recipients:;, b@example.org\n\
             Cc: x@example.org, Team: c1@example.org,\n Carol <c2@example.org>; y@example.org\n\
             Bcc: =?UTF-8?Q?Gr=C3=BCppe?=: z@example.org;\n\
             \n\
             body\n",
        );
        let m = meta(&raw);
        let e = &m.envelope;
        assert_eq!(e.from, vec![addr(None, "a@example.org")]);
        assert_eq!(
            e.to,
            vec![
                Addr::group_start("undisclosed-recipients".into()),
                Addr::group_end(),
                addr(None, "b@example.org"),
            ]
        );
        assert_eq!(
            e.cc,
            vec![
                addr(None, "x@example.org"),
                Addr::group_start("Team".into()),
                addr(None, "c1@example.org"),
                addr(Some("Carol"), "c2@example.org"),
                Addr::group_end(),
                addr(None, "y@example.org"),
            ]
        );
        assert_eq!(
            e.bcc,
            vec![
                Addr::group_start("Gr\u{fc}ppe".into()),
                addr(None, "z@example.org"),
                Addr::group_end(),
            ]
        );
    }

    #[test]
    fn encoded_words() {
        let raw = crlf(
            "From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <jm@example.de>\n\
             To: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\n\
             Subject: =?UTF-8?B?0J7RgtGH0ZHRgiDQt9CwINC90LXQtNC10LvRjg==?=\n\
             \x20=?ISO-8859-1?Q?_caf=E9?=\n\
             \n\
             body\n",
        );
        let m = meta(&raw);
        assert_eq!(
            m.envelope.subject.as_deref(),
            Some(
                "\u{41e}\u{442}\u{447}\u{451}\u{442} \u{437}\u{430} \u{43d}\u{435}\u{434}\u{435}\u{43b}\u{44e} caf\u{e9}"
            )
        );
        assert_eq!(
            m.envelope.from,
            vec![addr(Some("J\u{fc}rgen M\u{fc}ller"), "jm@example.de")]
        );
        assert_eq!(
            m.envelope.to,
            vec![addr(Some("Andr\u{e9} Pirard"), "PIRARD@vm1.ulg.ac.be")]
        );
    }

    #[test]
    fn missing_content_type_defaults() {
        let raw = crlf(
            "Subject: digest\n\
             Content-Type: multipart/digest; boundary=d\n\
             \n\
             --d\n\
             \n\
             Subject: first\n\
             \n\
             one\n\
             --d\n\
             Content-Type: text/plain\n\
             \n\
             two\n\
             --d--\n",
        );
        let m = meta(&raw);
        let first = &m.body.parts[0];
        assert_eq!(
            (first.media_type.as_str(), first.subtype.as_str()),
            ("message", "rfc822")
        );
        assert!(first.params.is_empty());
        let (env, inner) = first.message.as_deref().unwrap();
        assert_eq!(env.subject.as_deref(), Some("first"));
        assert_eq!(
            (inner.media_type.as_str(), inner.subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!(inner.params, default_params());
        assert_eq!(body_of(&raw, inner), b"one");
        assert_eq!(m.body.parts[1].subtype, "plain");

        // An invalid Content-Type is treated as absent (RFC 2045 §5.2).
        let m = meta(b"Content-Type: text\r\n\r\nx");
        assert_eq!(
            (m.body.media_type.as_str(), m.body.subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!(m.body.params, default_params());
        // Type and subtype are lower-cased, parameter names too, values as given.
        let m = meta(b"Content-Type: TEXT/HTML; CharSet=\"ISO-8859-1\"\r\n\r\n<p>x</p>");
        assert_eq!(
            (m.body.media_type.as_str(), m.body.subtype.as_str()),
            ("text", "html")
        );
        assert_eq!(
            m.body.params,
            vec![("charset".to_string(), "ISO-8859-1".to_string())]
        );
        assert_eq!(m.preview, "x");
    }

    #[test]
    fn bare_lf_message() {
        let raw = b"From: a@example.org\nContent-Type: multipart/mixed; boundary=x\n\npre\n--x\nContent-Type: text/plain\n\nline one\nline two\n--x\n\nno headers\n--x--\n";
        let m = meta(raw);
        assert_eq!(m.body.parts.len(), 2);
        let one = &m.body.parts[0];
        assert_eq!(body_of(raw, one), b"line one\nline two");
        assert_eq!(one.lines, 2);
        let two = &m.body.parts[1];
        assert_eq!(slice(raw, two.header_offset, two.body_offset), b"\n");
        assert_eq!(body_of(raw, two), b"no headers");
        assert_eq!(two.params, default_params());
        assert_eq!(m.preview, "line one line two");
    }

    #[test]
    fn garbage_bytes() {
        let raw: Vec<u8> = (0..5000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .filter(|&b| b != b':')
            .collect();
        let m = meta(&raw);
        assert_eq!(
            (m.body.media_type.as_str(), m.body.subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!((m.body.header_offset, m.body.body_offset), (0, 0));
        assert_eq!(m.body.end_offset as usize, raw.len());
        assert_eq!(m.envelope, Envelope::default());
        assert!(!m.body.truncated);

        let m = meta(b"just some text\nwith no header at all\n");
        assert_eq!(m.body.body_offset, 0);
        assert_eq!(m.preview, "just some text with no header at all");
        // Nothing at all, or only a blank line.
        for raw in [&b""[..], b"\r\n", b"\n\n\n", b"--", b"\xff\xfe:\r\n"] {
            let m = meta(raw);
            assert_eq!(m.body.end_offset as usize, raw.len());
        }
        // A header section that is never ended by a blank line: no body.
        let m = meta(b"Subject: only headers\r\nFrom: a@b");
        assert_eq!(m.envelope.subject.as_deref(), Some("only headers"));
        assert_eq!(m.envelope.from, vec![addr(None, "a@b")]);
        assert_eq!(m.body.body_offset, m.body.end_offset);
    }

    #[test]
    fn multipart_edge_cases() {
        // A nested boundary that extends its parent's is not taken for it; a missing close
        // delimiter is accepted; a part whose header runs into a delimiter has no body.
        let raw = crlf(
            "Content-Type: multipart/mixed; boundary=abc\n\
             \n\
             --abc\n\
             Content-Type: multipart/alternative; boundary=abcdef\n\
             \n\
             --abcdef\n\
             \n\
             deep\n\
             --abcdef\n\
             Content-Type: text/html\n\
             --abc\n\
             Content-Type: image/png\n\
             Content-Transfer-Encoding: base64\n\
             \n\
             iVBORw0KGgo=\n",
        );
        let m = meta(&raw);
        let b = &m.body;
        assert_eq!(b.parts.len(), 2);
        let alt = &b.parts[0];
        assert_eq!(alt.parts.len(), 2);
        assert_eq!(body_of(&raw, &alt.parts[0]), b"deep");
        let html = &alt.parts[1];
        assert_eq!(html.body_offset, html.end_offset);
        assert_eq!(
            slice(&raw, html.header_offset, html.body_offset),
            b"Content-Type: text/html"
        );
        let png = &b.parts[1];
        assert_eq!(
            body_of(&raw, png),
            b"iVBORw0KGgo=\r\n",
            "to the end: no close delimiter"
        );
        assert!(m.has_attachment, "an image outside multipart/related");

        // Inline images of multipart/related are not attachments.
        let raw = crlf(
            "Content-Type: multipart/related; boundary=r\n\
             \n\
             --r\n\
             Content-Type: text/html\n\
             \n\
             <img src=\"cid:i\">\n\
             --r\n\
             Content-Type: image/gif\n\
             Content-ID: <i>\n\
             \n\
             GIF\n\
             --r--\n",
        );
        let m = meta(&raw);
        assert!(!m.has_attachment);
        assert_eq!(m.body.parts[1].id.as_deref(), Some("<i>"));

        // No boundary parameter, or a boundary that never occurs: a multipart without parts.
        for raw in [
            &b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhi\r\n"[..],
            b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--x\r\n\r\nhi\r\n",
        ] {
            let m = meta(raw);
            assert_eq!(m.body.media_type, "multipart");
            assert!(m.body.parts.is_empty() && !m.body.truncated);
            assert_eq!(m.body.end_offset as usize, raw.len());
        }

        // A base64 message/rfc822 cannot be described by offsets: a leaf.
        let m = meta(b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQp5\r\n");
        assert!(m.body.message.is_none());
        assert_eq!(m.body.lines, 1);
        assert!(m.has_attachment);
    }

    #[test]
    fn html_only_preview_and_length() {
        let words = "word ".repeat(200);
        let raw = format!(
            "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .encode(format!("<html><head><style>p {{}}</style></head><body><p>Hello&nbsp;<b>there</b>\n\n\t{words}</p></body></html>"))
            }
        );
        let m = meta(raw.as_bytes());
        assert!(
            m.preview.starts_with("Hello there word word"),
            "{}",
            m.preview
        );
        assert_eq!(m.preview.chars().count(), 256);
        assert!(!m.preview.ends_with(' '));
        // ISO-8859-1 text via the charset parameter.
        let m = meta(b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nd=E9j=E0 vu =\r\n=3D ok\r\n");
        assert_eq!(m.preview, "d\u{e9}j\u{e0} vu = ok");
    }

    #[test]
    fn thread_references_are_bounded() {
        let mut m = MessageMeta::default();
        m.envelope.in_reply_to = Some("<p@x> (message of Monday)".into());
        m.references = (0..1000).map(|i| format!("r{i}@x")).collect();
        let refs = thread_references(&m);
        assert_eq!(refs.len(), MAX_THREAD_REFERENCES);
        assert_eq!(refs[0], "p@x");
        assert_eq!(refs[1], "r0@x", "the thread root is kept");
        assert_eq!(refs.last().map(String::as_str), Some("r999@x"));
    }

    #[test]
    fn small_caps_make_parts_opaque() {
        let raw = crlf(
            "Content-Type: multipart/mixed; boundary=a\n\
             \n\
             --a\n\
             Content-Type: multipart/mixed; boundary=b\n\
             \n\
             --b\n\
             \n\
             one\n\
             --b\n\
             \n\
             two\n\
             --b--\n\
             --a\n\
             \n\
             three\n\
             --a--\n",
        );
        // Depth: the inner multipart (depth 1) is not descended into.
        let m = extract(
            &raw,
            &MimeLimits {
                nesting_depth: 1,
                ..Default::default()
            },
        );
        check(&raw, &m.body);
        assert_eq!(m.body.parts.len(), 2);
        assert!(m.body.parts[0].truncated);
        assert!(body_of(&raw, &m.body.parts[0]).ends_with(b"--b--"));
        assert!(m.has_attachment, "an opaque multipart may hold anything");
        // Parts: root + 3 fit, the 4th (the second child of the inner multipart) does not:
        // the inner multipart becomes opaque, then the outer one, which has more children.
        let m = extract(
            &raw,
            &MimeLimits {
                parts: 3,
                ..Default::default()
            },
        );
        check(&raw, &m.body);
        assert!(m.body.truncated && m.body.parts.is_empty());
        let m = extract(
            &raw,
            &MimeLimits {
                parts: 5,
                ..Default::default()
            },
        );
        check(&raw, &m.body);
        assert!(!m.body.truncated && m.body.parts.len() == 2);
        // Header count.
        let m = extract(
            &raw,
            &MimeLimits {
                header_count: 0,
                ..Default::default()
            },
        );
        check(&raw, &m.body);
        assert!(m.body.truncated && m.body.parts.is_empty());
        assert_eq!(m.body.media_type, "multipart", "the type stays as declared");
    }

    /// Runs `f` and asserts it took less than a generous bound for a loaded 2-core CI
    /// machine; the measured time is printed (see it with `--nocapture`).
    fn timed<T>(name: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        let took = start.elapsed();
        eprintln!("{name}: {took:?}");
        assert!(took < Duration::from_secs(10), "{name} took {took:?}");
        out
    }

    #[test]
    fn bomb_deep_multipart() {
        let n = 100_000;
        let mut raw = Vec::new();
        for i in 0..n {
            raw.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"Content-Type: text/plain\r\n\r\nleaf\r\n");
        for i in (0..n).rev() {
            raw.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
        }
        let m = timed("100 000-deep multipart", || {
            extract(&raw, &MimeLimits::default())
        });
        check(&raw, &m.body);
        let mut p = &m.body;
        let mut depth = 0;
        while let Some(child) = p.parts.first() {
            p = child;
            depth += 1;
        }
        assert_eq!(depth, 50);
        assert!(p.truncated && p.media_type == "multipart");
        assert_eq!(m.body.end_offset as usize, raw.len());
    }

    #[test]
    fn bomb_deep_message() {
        let n = 100_000;
        let mut raw = Vec::new();
        for _ in 0..n {
            raw.extend_from_slice(b"Subject: x\r\nContent-Type: message/rfc822\r\n\r\n");
        }
        raw.extend_from_slice(b"Subject: y\r\n\r\nhi\r\n");
        let m = timed("100 000-deep message/rfc822", || {
            extract(&raw, &MimeLimits::default())
        });
        check(&raw, &m.body);
        let mut p = &m.body;
        let mut depth = 0;
        while let Some((_, inner)) = p.message.as_deref() {
            p = inner;
            depth += 1;
        }
        assert_eq!(depth, 50);
        assert!(p.truncated);
    }

    #[test]
    fn bomb_deep_alternating_nesting() {
        // multipart → message/rfc822 → multipart → …, each level with a boundary that
        // also must be tracked while skipping.
        let n = 50_000;
        let mut raw = Vec::new();
        for i in 0..n {
            raw.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=m{i}\r\n\r\n--m{i}\r\nContent-Type: message/rfc822\r\n\r\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"\r\nend\r\n");
        for i in (0..n).rev() {
            raw.extend_from_slice(format!("--m{i}--\r\n").as_bytes());
        }
        let m = timed("50 000 × (multipart, message) nesting", || {
            extract(&raw, &MimeLimits::default())
        });
        check(&raw, &m.body);
    }

    /// At the hard ceiling, whatever the configured depth, the recursion fits in half of
    /// a tokio worker's 2 MiB stack and the result survives the store's JSON.
    #[test]
    fn hard_depth_ceiling_fits_the_stack() {
        let n = 10_000;
        let mut deep_mp = Vec::new();
        for i in 0..n {
            deep_mp.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        let mut deep_msg = Vec::new();
        for i in 0..n {
            deep_msg.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=m{i}\r\n\r\n--m{i}\r\nContent-Type: message/rfc822\r\n\r\n").as_bytes());
        }
        let limits = MimeLimits {
            nesting_depth: usize::MAX,
            ..Default::default()
        };
        let handle = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let a = extract(&deep_mp, &limits);
                let b = extract(&deep_msg, &limits);
                (a, b)
            })
            .unwrap();
        let (a, b) = handle.join().expect("no stack overflow");
        for m in [&a, &b] {
            let json = serde_json::to_string(m).unwrap();
            let back: MessageMeta =
                serde_json::from_str(&json).expect("within serde_json's depth limit");
            assert_eq!(&back, m);
        }
        let mut p = &a.body;
        let mut depth = 0;
        while let Some(child) = p.parts.first() {
            p = child;
            depth += 1;
        }
        assert_eq!(depth, HARD_NESTING_DEPTH);
    }

    #[test]
    fn bomb_million_parts() {
        let n = 1_000_000;
        let mut raw = Vec::with_capacity(n * 10 + 100);
        raw.extend_from_slice(
            b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n",
        );
        for _ in 0..n {
            raw.extend_from_slice(b"--b\r\n\r\nx\r\n");
        }
        raw.extend_from_slice(b"--b--\r\n");
        let m = timed("1 000 000 parts", || extract(&raw, &MimeLimits::default()));
        check(&raw, &m.body);
        assert!(m.body.truncated && m.body.parts.is_empty());
        assert_eq!(m.envelope.subject.as_deref(), Some("parts"));
        assert_eq!(m.body.end_offset as usize, raw.len());

        // The same inside another multipart: the rest is skipped by scanning for the
        // outer delimiter, and the outer multipart has no further child, so it stays.
        let mut raw = Vec::with_capacity(n * 10 + 200);
        raw.extend_from_slice(b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n");
        for _ in 0..n {
            raw.extend_from_slice(b"--b\r\n\r\nx\r\n");
        }
        raw.extend_from_slice(b"--b--\r\n--outer--\r\n");
        let m = timed("1 000 000 parts, nested", || {
            extract(&raw, &MimeLimits::default())
        });
        check(&raw, &m.body);
        assert!(!m.body.truncated && m.body.parts.len() == 1);
        assert!(m.body.parts[0].truncated && m.body.parts[0].parts.is_empty());
        assert!(body_of(&raw, &m.body.parts[0]).ends_with(b"--b--"));
    }

    #[test]
    fn bomb_parts_declaring_missing_boundaries() {
        // Quadratic in mail-parser: every child multipart rescans for its boundary.
        let n = 200_000;
        let mut raw = Vec::new();
        raw.extend_from_slice(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n");
        for i in 0..n {
            raw.extend_from_slice(
                format!("--b\r\nContent-Type: multipart/mixed; boundary=z{i}\r\n\r\nx\r\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"--b--\r\n");
        let m = timed("200 000 parts with missing boundaries", || {
            extract(&raw, &MimeLimits::default())
        });
        check(&raw, &m.body);
        assert!(m.body.truncated);
        // Under the parts cap every child is examined.
        let small = &raw[..raw.len() / 40];
        let m = timed("5 000 parts with missing boundaries", || {
            extract(small, &MimeLimits::default())
        });
        check(small, &m.body);
        assert!(!m.body.truncated && m.body.parts.len() > 4000);
    }

    #[test]
    fn bomb_many_headers() {
        let mut raw = Vec::new();
        for i in 0..100_000 {
            raw.extend_from_slice(format!("X-Header-{i}: value {i}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"Subject: after the flood\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nx\r\n--q--\r\n");
        let m = timed("100 000 headers", || extract(&raw, &MimeLimits::default()));
        check(&raw, &m.body);
        assert!(m.body.truncated && m.body.parts.is_empty());
        assert_eq!(m.envelope.subject.as_deref(), Some("after the flood"));
        assert_eq!(m.body.media_type, "multipart");
    }

    #[test]
    fn bomb_huge_folded_headers() {
        let mut raw = Vec::new();
        raw.extend_from_slice(b"Subject: start");
        for _ in 0..200_000 {
            raw.extend_from_slice(b"\r\n word");
        }
        raw.extend_from_slice(b"\r\nTo: a@example.org");
        for i in 0..50_000 {
            raw.extend_from_slice(format!(",\r\n \"N{i}\" <u{i}@example.org>").as_bytes());
        }
        raw.extend_from_slice(b"\r\nContent-Type: text/plain; name*0=a");
        for i in 1..100_000 {
            raw.extend_from_slice(format!(";\r\n name*{i}=b").as_bytes());
        }
        raw.extend_from_slice(b"\r\n\r\nbody\r\n");
        assert!(raw.len() > 3_000_000);
        let m = timed("1 MB folded Subject, To and Content-Type", || {
            extract(&raw, &MimeLimits::default())
        });
        check(&raw, &m.body);
        let subject = m.envelope.subject.unwrap();
        assert!(subject.starts_with("start word word") && subject.len() > 1_000_000);
        assert_eq!(m.envelope.to.len(), 50_001);
        assert_eq!(
            (m.body.media_type.as_str(), m.body.subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!(body_of(&raw, &m.body), b"body\r\n");
    }

    #[test]
    fn bomb_huge_encoded_word() {
        use base64::Engine as _;
        let text = "\u{e9}".repeat(600_000);
        let word = base64::engine::general_purpose::STANDARD.encode(&text);
        let raw = format!("Subject: =?utf-8?b?{word}?=\r\n\r\nx");
        let m = timed("1.6 MB encoded word", || {
            extract(raw.as_bytes(), &MimeLimits::default())
        });
        assert_eq!(m.envelope.subject.as_deref(), Some(text.as_str()));
    }

    #[test]
    fn bomb_long_boundaries() {
        // Delimiter checks cost at most the line length per active boundary.
        let boundary = "-".repeat(900);
        let mut raw =
            format!("Content-Type: multipart/mixed; boundary=\"{boundary}x\"\r\n\r\n").into_bytes();
        for _ in 0..20_000 {
            raw.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        }
        let m = timed("18 MB of near-delimiters", || {
            extract(&raw, &MimeLimits::default())
        });
        check(&raw, &m.body);
        assert!(m.body.parts.is_empty());

        // 50 active boundaries sharing a long prefix, then lines that match the prefix:
        // each line is compared with every boundary.
        let prefix = "=".repeat(900);
        let mut raw = Vec::new();
        for i in 0..50 {
            raw.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=\"{prefix}{i}\"\r\n\r\n--{prefix}{i}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        for _ in 0..20_000 {
            raw.extend_from_slice(format!("--{prefix}\r\n").as_bytes());
        }
        let m = timed("50 long boundaries × 18 MB of near-delimiters", || {
            extract(&raw, &MimeLimits::default())
        });
        check(&raw, &m.body);
    }

    /// The corpus of the shared generator: every message's offsets are consistent, and
    /// each part's offsets and decoded content agree with mail-parser's own full parse
    /// (safe on this benign input).
    #[test]
    fn gen_mbox_corpus() {
        let script = std::path::Path::new("/work/shared/tools/gen_mbox.py");
        if !script.exists() {
            eprintln!("skipped: {} not found", script.display());
            return;
        }
        let dir = std::env::temp_dir().join(format!("postern-message-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("sample.mbox");
        let status = match std::process::Command::new("python3")
            .arg(script)
            .args(["--count", "100", "--seed", "7", "--out"])
            .arg(&out)
            .output()
        {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("skipped: python3 not found");
                return;
            }
            Err(e) => panic!("python3: {e}"),
        };
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let mbox = std::fs::read(&out).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let messages = split_mbox(&mbox);
        assert_eq!(messages.len(), 100);
        let (mut leaves, mut nested) = (0, 0);
        for raw in &messages {
            let m = meta(raw);
            assert!(m.envelope.message_id.is_some() && m.sent_ms.is_some());
            assert!(!m.envelope.from.is_empty());
            let parsed = mail_parser::MessageParser::default()
                .parse(raw.as_slice())
                .unwrap();
            let mut ours = Vec::new();
            preorder(&m.body, &mut ours);
            compare(raw, &ours, &parsed, &mut leaves, &mut nested);
        }
        assert!(
            leaves > 200 && nested > 0,
            "leaves {leaves}, nested {nested}"
        );
    }

    fn split_mbox(mbox: &[u8]) -> Vec<Vec<u8>> {
        let mut messages: Vec<Vec<u8>> = Vec::new();
        for line in mbox.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b"From ") {
                if let Some(last) = messages.last_mut() {
                    // mailbox.mbox writes a blank line after each message.
                    last.pop();
                }
                messages.push(Vec::new());
            } else if let Some(current) = messages.last_mut() {
                // Python's generator quotes "From " at a line start as ">From ".
                current.extend_from_slice(
                    line.strip_prefix(b">")
                        .filter(|l| l.starts_with(b"From "))
                        .unwrap_or(line),
                );
            }
        }
        if let Some(last) = messages.last_mut() {
            last.pop();
        }
        messages
    }

    fn preorder<'p>(p: &'p BodyPart, out: &mut Vec<&'p BodyPart>) {
        out.push(p);
        for c in &p.parts {
            preorder(c, out);
        }
    }

    fn compare(
        raw: &[u8],
        ours: &[&BodyPart],
        theirs: &mail_parser::Message<'_>,
        leaves: &mut usize,
        nested: &mut usize,
    ) {
        use mail_parser::PartType;
        assert_eq!(ours.len(), theirs.parts.len());
        for (i, (o, t)) in ours.iter().zip(&theirs.parts).enumerate() {
            assert_eq!(o.header_offset, t.offset_header as u64, "part {i}");
            assert_eq!(o.body_offset, t.offset_body as u64, "part {i}");
            match &t.body {
                PartType::Multipart(_) => assert_eq!(o.media_type, "multipart"),
                PartType::Message(inner) => {
                    *nested += 1;
                    let (_, body) = o.message.as_deref().expect("encapsulated message");
                    let mut inner_ours = Vec::new();
                    preorder(body, &mut inner_ours);
                    compare(raw, &inner_ours, inner, leaves, nested);
                }
                leaf => {
                    *leaves += 1;
                    if i > 0 {
                        assert_eq!(o.end_offset, t.offset_end as u64, "part {i}");
                    }
                    let encoded = body_of(raw, o);
                    let decoded = match o.encoding.as_deref() {
                        Some("base64") => decode_base64_lenient(encoded),
                        Some("quoted-printable") => decode_qp_lenient(encoded),
                        _ => encoded.to_vec(),
                    };
                    match leaf {
                        PartType::Text(text) | PartType::Html(text) => {
                            assert_eq!(String::from_utf8_lossy(&decoded), text.as_ref(), "part {i}")
                        }
                        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
                            assert_eq!(&decoded, bytes.as_ref(), "part {i}")
                        }
                        _ => unreachable!(),
                    }
                }
            }
        }
    }
}
