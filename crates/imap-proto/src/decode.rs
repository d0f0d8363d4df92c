//! The bounded streaming command decoder.
//!
//! Two passes over the caller's buffer: `frame` finds where the command ends (lines,
//! literal headers, literal data) without allocating, and decides `Incomplete` /
//! `LiteralNeeded` / `Failed` for anything about size; only a completely framed command
//! reaches the grammar (`Parser`), so running out of bytes there is a grammar error
//! (`Failed`), never "need more".

use std::borrow::Cow;
use std::num::NonZeroU32;

use base64::Engine;

use crate::types::*;

/// The RFC 7888 §5 LITERAL- ceiling for non-synchronising literals.
pub const LITERAL_MINUS_MAX: u64 = 4096;

/// Decoder limits; each stops one kind of hostile input (THREATS.md "IMAP bombs").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest line (between CRLFs, literal data excluded). Stops the "1 GB line with no
    /// CRLF": past this many bytes without LF the command is `Failed`, so a caller never
    /// buffers more than this per line. Config `limits.imap_line_length` (65 536).
    pub line_length: usize,
    /// Largest literal. Synchronising literals over it come back as `LiteralNeeded` for
    /// the caller to refuse ([`Limits::accepts_literal`]) before sending `+`;
    /// non-synchronising ones are `Failed` at once (RFC 7888 §4). Config
    /// `limits.imap_literal_size` (50 MiB, the message size).
    pub literal_size: u64,
    /// Deepest nesting of SEARCH keys (`(`, `NOT`, `OR`). The grammar recurses there,
    /// so this bounds the stack: 100 000 `(` is `Failed`, not a stack overflow. Config
    /// `limits.imap_nesting_depth` (64).
    pub nesting_depth: usize,
    /// Most elements in any one list (search keys, fetch items, sequence-set parts,
    /// flags, APPEND messages, header names, ID pairs) and most literals per command.
    /// Stops item-count amplification inside an allowed line. Default 10 000.
    pub max_items: usize,
    /// LITERAL+ is in force (RFC 7888 §3): non-synchronising literals up to
    /// `literal_size`. When false only LITERAL- applies: over 4096 bytes is `Failed`.
    pub literal_plus: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            line_length: 65_536,
            literal_size: 50 * 1024 * 1024,
            nesting_depth: 64,
            max_items: 10_000,
            literal_plus: true,
        }
    }
}

impl Limits {
    /// Whether a synchronising literal of `length` may be accepted (send `+ `).
    pub fn accepts_literal(&self, length: u64) -> bool {
        length <= self.literal_size
    }
}

/// Why [`parse_command`] did not return a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Need more bytes; nothing is wrong so far.
    #[error("incomplete command")]
    Incomplete,
    /// The buffer ends right after a literal header `{n}` / `{n+}` / `~{n}` (RFC 9051
    /// §4.3, §7.5). For a synchronising literal the caller sends `+ ` (if
    /// [`Limits::accepts_literal`]) or refuses with a tagged `NO`/`BAD` and drops the
    /// buffered line (the client will not send the data); for a non-synchronising one it
    /// just reads on (its size was already checked). Calling again with no new bytes
    /// returns the same answer, so the caller answers each literal once — e.g. by
    /// remembering the buffer length at which it sent `+ `.
    #[error("literal of {length} bytes announced")]
    LiteralNeeded {
        tag: Tag,
        length: u64,
        non_sync: bool,
    },
    /// Bad input: answer `BAD` (tagged when the tag was readable).
    #[error("{reason}")]
    Failed {
        tag: Option<Tag>,
        reason: Cow<'static, str>,
    },
}

fn failed(tag: Option<Tag>, reason: impl Into<Cow<'static, str>>) -> ParseError {
    ParseError::Failed {
        tag,
        reason: reason.into(),
    }
}

/// Parse one command from the start of `buf`. On success returns how many bytes it
/// used (through the final CRLF) and the command.
pub fn parse_command(buf: &[u8], limits: &Limits) -> Result<(usize, Command), ParseError> {
    let end = frame(buf, limits)?;
    let mut p = Parser {
        buf: &buf[..end],
        pos: 0,
        limits,
        depth: 0,
    };
    let tag = p.tag().map_err(|r| failed(None, r))?;
    let body = p.command().map_err(|r| failed(Some(tag.clone()), r))?;
    // RFC 9051 §2.2.1: the command ends with CRLF, nothing after it.
    if p.pos != end - 2 || &buf[end - 2..end] != b"\r\n" {
        return Err(failed(Some(tag), "unexpected characters at end of command"));
    }
    Ok((end, Command { tag, body }))
}

/// One line of a continuation (IDLE's `DONE`, an AUTHENTICATE response): through CRLF,
/// bounded by `line_length`, never containing a literal.
fn line<'a>(buf: &'a [u8], limits: &Limits) -> Result<(usize, &'a [u8]), ParseError> {
    let window = &buf[..buf.len().min(limits.line_length)];
    let Some(lf) = window.iter().position(|b| *b == b'\n') else {
        if buf.len() >= limits.line_length {
            return Err(failed(None, "line too long"));
        }
        return Err(ParseError::Incomplete);
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(failed(None, "bare LF"));
    }
    Ok((lf + 1, &buf[..lf - 1]))
}

/// The line that ends IDLE (RFC 9051 §6.3.13 `idle = "IDLE" CRLF "DONE"`): returns the
/// bytes used. Anything but `DONE` (case-insensitive) is `Failed`.
pub fn parse_idle_done(buf: &[u8], limits: &Limits) -> Result<usize, ParseError> {
    let (n, l) = line(buf, limits)?;
    if l.eq_ignore_ascii_case(b"DONE") {
        Ok(n)
    } else {
        Err(failed(None, "expected DONE"))
    }
}

/// A client's answer to an AUTHENTICATE challenge (RFC 9051 §6.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResponse {
    /// `*`: the client cancels the exchange (answer `BAD`).
    Cancel,
    /// The decoded response (empty for an empty line).
    Data(Secret<Vec<u8>>),
}

/// One AUTHENTICATE continuation line (RFC 9051 §6.2.2: base64, or `*` to cancel).
pub fn parse_auth_response(
    buf: &[u8],
    limits: &Limits,
) -> Result<(usize, AuthResponse), ParseError> {
    let (n, l) = line(buf, limits)?;
    if l == b"*" {
        return Ok((n, AuthResponse::Cancel));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(l)
        .map_err(|_| failed(None, "invalid base64 response"))?;
    Ok((n, AuthResponse::Data(Secret::new(data))))
}

/// Best-effort tag for an error before the grammar ran (framing failures).
fn leading_tag(buf: &[u8]) -> Option<Tag> {
    let n = buf
        .iter()
        .take(1024)
        .take_while(|b| is_tag_char(**b))
        .count();
    if n == 0 || buf.get(n) != Some(&b' ') {
        return None;
    }
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| Tag::new(s).ok())
}

/// A literal header at the end of a line (RFC 9051 §4.3, RFC 7888 §3, RFC 3516 §4.2):
/// `{n}`, `{n+}`, `~{n}`, `~{n+}`. Returns (length, non_sync).
fn literal_header(line: &[u8]) -> Result<Option<(u64, bool)>, &'static str> {
    if line.last() != Some(&b'}') {
        return Ok(None);
    }
    // `{` is not an ASTRING-CHAR, so outside a quoted string a trailing `{...}` can
    // only be a literal header; `}` alone ends an atom legitimately. At most 19 digits
    // + `+` inside the braces.
    let body = &line[..line.len() - 1];
    let Some(open) = body.iter().rev().take(21).position(|b| *b == b'{') else {
        return Ok(None);
    };
    let inner = &body[body.len() - open..];
    // A DQUOTE between them puts the `{` inside a quoted string that closed before
    // the atom ending in `}`: `a LOGIN "l{cai" e2}` is valid (RFC 9051 §4.3 quoted
    // allows `{`, ATOM-CHAR allows `}`). A `{` in a quoted string still open at the
    // line end is bad input either way (quoted cannot hold CR/LF), and the grammar
    // says so. Found by the round_trip fuzz target.
    if inner.contains(&b'"') {
        return Ok(None);
    }
    let (digits, non_sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, true),
        None => (inner, false),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err("malformed literal header");
    }
    let n = parse_u64(digits).ok_or("literal length out of range")?;
    // `number64` (RFC 9051 §9) is at most 2^63-1.
    if n > i64::MAX as u64 {
        return Err("literal length out of range");
    }
    Ok(Some((n, non_sync)))
}

fn parse_u64(d: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for b in d {
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Find the end of the command (index after its final CRLF) without allocating.
fn frame(buf: &[u8], limits: &Limits) -> Result<usize, ParseError> {
    let mut seg = 0usize;
    let mut literals = 0usize;
    loop {
        let window_end = buf.len().min(seg.saturating_add(limits.line_length));
        let Some(i) = buf[seg..window_end].iter().position(|b| *b == b'\n') else {
            if buf.len() - seg >= limits.line_length {
                return Err(failed(leading_tag(buf), "line too long"));
            }
            return Err(ParseError::Incomplete);
        };
        let lf = seg + i;
        // RFC 9051 §2.2: lines end in CRLF; a bare LF is refused, not guessed at.
        if lf == seg || buf[lf - 1] != b'\r' {
            return Err(failed(leading_tag(buf), "bare LF"));
        }
        let line = &buf[seg..lf - 1];
        let header = literal_header(line).map_err(|r| failed(leading_tag(buf), r))?;
        let Some((length, non_sync)) = header else {
            return Ok(lf + 1);
        };
        let tag = leading_tag(buf);
        literals += 1;
        if literals > limits.max_items {
            return Err(failed(tag, "too many literals"));
        }
        if non_sync {
            // RFC 7888 §5: LITERAL- allows non-synchronising literals up to 4096 only.
            if !limits.literal_plus && length > LITERAL_MINUS_MAX {
                return Err(failed(
                    tag,
                    "non-synchronizing literal over 4096 bytes (LITERAL-)",
                ));
            }
            // RFC 7888 §4: the client did not wait, so the only safe answer is BAD.
            if length > limits.literal_size {
                return Err(failed(tag, "literal too large"));
            }
        }
        let Some(tag) = tag else {
            return Err(failed(None, "literal without a valid tag"));
        };
        let data = lf + 1;
        let have = (buf.len() - data) as u64;
        if have == 0 {
            return Err(ParseError::LiteralNeeded {
                tag,
                length,
                non_sync,
            });
        }
        if !limits.accepts_literal(length) {
            // Data arrived although the literal was never accepted.
            return Err(failed(Some(tag), "literal too large"));
        }
        if have < length {
            return Err(ParseError::Incomplete);
        }
        // `length <= have <= usize::MAX`, so the conversion is exact.
        seg = data + length as usize;
    }
}

type PResult<T> = Result<T, Cow<'static, str>>;

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    depth: usize,
}

fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'=')
}

fn nz(v: u32) -> PResult<NonZeroU32> {
    NonZeroU32::new(v).ok_or(Cow::Borrowed("zero is not allowed here"))
}

fn inv(e: Invalid) -> Cow<'static, str> {
    Cow::Borrowed(e.0)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.buf.get(self.pos..self.pos + 2) == Some(b"\r\n")
    }

    fn expect(&mut self, b: u8, what: &'static str) -> PResult<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Cow::Borrowed(what))
        }
    }

    fn sp(&mut self) -> PResult<()> {
        self.expect(b' ', "expected SP")
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Keywords are case-insensitive (RFC 9051 §9 note 1). Returns the upper-cased word.
    fn word(&mut self) -> PResult<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_word_char) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(Cow::Borrowed("expected a keyword"));
        }
        Ok(String::from_utf8_lossy(&self.buf[start..self.pos]).to_ascii_uppercase())
    }

    /// Whether the next bytes are `w` (case-insensitive) followed by a non-word byte.
    fn peek_word(&self, w: &str) -> bool {
        let end = self.pos + w.len();
        match self.buf.get(self.pos..end) {
            Some(s) => {
                s.eq_ignore_ascii_case(w.as_bytes())
                    && !self.buf.get(end).copied().is_some_and(is_word_char)
            }
            None => false,
        }
    }

    fn check_items(&self, n: usize) -> PResult<()> {
        if n >= self.limits.max_items {
            Err(Cow::Borrowed("too many items in a list"))
        } else {
            Ok(())
        }
    }

    /// `"(" item *(SP item) ")"`, or with `allow_empty` also `"()"`.
    fn paren_list<T>(
        &mut self,
        allow_empty: bool,
        mut f: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        self.expect(b'(', "expected (")?;
        let mut v = Vec::new();
        if self.eat(b')') {
            return if allow_empty {
                Ok(v)
            } else {
                Err(Cow::Borrowed("empty list"))
            };
        }
        loop {
            self.check_items(v.len())?;
            v.push(f(self)?);
            if self.eat(b')') {
                return Ok(v);
            }
            self.sp()?;
        }
    }

    // --- RFC 9051 §9 lexical rules ---

    fn tag(&mut self) -> PResult<Tag> {
        let start = self.pos;
        while self.peek().is_some_and(is_tag_char) {
            self.pos += 1;
        }
        let s = std::str::from_utf8(&self.buf[start..self.pos]).map_err(|_| "bad tag")?;
        let t = Tag::new(s).map_err(inv)?;
        self.sp()?;
        Ok(t)
    }

    fn atom(&mut self) -> PResult<Atom> {
        let start = self.pos;
        while self.peek().is_some_and(is_atom_char) {
            self.pos += 1;
        }
        let s = std::str::from_utf8(&self.buf[start..self.pos]).map_err(|_| "bad atom")?;
        Atom::new(s).map_err(inv)
    }

    /// `number = 1*DIGIT` (32-bit unsigned, RFC 9051 §9).
    fn number(&mut self) -> PResult<u32> {
        let v = self.number64()?;
        u32::try_from(v).map_err(|_| Cow::Borrowed("number out of range"))
    }

    /// `number64` (RFC 9051 §9): 0 ≤ n < 2^63.
    fn number64(&mut self) -> PResult<u64> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
            if self.pos - start > 19 {
                return Err(Cow::Borrowed("number out of range"));
            }
        }
        if start == self.pos {
            return Err(Cow::Borrowed("expected a number"));
        }
        let v = parse_u64(&self.buf[start..self.pos]).ok_or("number out of range")?;
        if v > i64::MAX as u64 {
            return Err(Cow::Borrowed("number out of range"));
        }
        Ok(v)
    }

    fn nz_number(&mut self) -> PResult<NonZeroU32> {
        nz(self.number()?)
    }

    /// `quoted = DQUOTE *QUOTED-CHAR DQUOTE` (RFC 9051 §9; UTF-8 allowed in rev2).
    fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.expect(b'"', "expected quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') | Some(0) => {
                    return Err(Cow::Borrowed("unterminated quoted string"));
                }
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        _ => return Err(Cow::Borrowed("bad escape in quoted string")),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        // QUOTED-CHAR admits only whole UTF8-2/3/4 sequences beyond ASCII.
        if out.iter().any(|b| *b >= 0x80) && std::str::from_utf8(&out).is_err() {
            return Err(Cow::Borrowed("invalid UTF-8 in quoted string"));
        }
        Ok(out)
    }

    /// `literal` (RFC 9051 §4.3) or, with `binary_ok`, `literal8` (RFC 3516 §4.2).
    /// The framing pass already checked length and presence. Returns (data, is_literal8).
    fn literal(&mut self, binary_ok: bool) -> PResult<(Vec<u8>, bool)> {
        let binary = self.eat(b'~');
        if binary && !binary_ok {
            return Err(Cow::Borrowed("literal8 not allowed here"));
        }
        self.expect(b'{', "expected literal")?;
        let len = self.number64()?;
        self.eat(b'+');
        self.expect(b'}', "bad literal header")?;
        if !self.at_end() {
            return Err(Cow::Borrowed("literal header must end the line"));
        }
        self.pos += 2;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|e| *e <= self.buf.len())
            .ok_or("literal beyond the command")?;
        let data = &self.buf[self.pos..end];
        // CHAR8 = %x01-ff: NUL only in literal8.
        if !binary && data.contains(&0) {
            return Err(Cow::Borrowed("NUL in literal"));
        }
        self.pos = end;
        Ok((data.to_vec(), binary))
    }

    fn string(&mut self) -> PResult<IString> {
        let v = match self.peek() {
            Some(b'"') => self.quoted()?,
            Some(b'{') => self.literal(false)?.0,
            _ => return Err(Cow::Borrowed("expected string")),
        };
        IString::new(v).map_err(inv)
    }

    /// `astring = 1*ASTRING-CHAR / string`.
    fn astring(&mut self) -> PResult<IString> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => {
                let start = self.pos;
                while self.peek().is_some_and(is_astring_char) {
                    self.pos += 1;
                }
                if start == self.pos {
                    return Err(Cow::Borrowed("expected astring"));
                }
                IString::new(self.buf[start..self.pos].to_vec()).map_err(inv)
            }
        }
    }

    /// `nstring = string / nil`.
    fn nstring(&mut self) -> PResult<Option<IString>> {
        if self.peek_word("NIL") {
            self.pos += 3;
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    fn utf8(v: IString) -> PResult<String> {
        v.as_str()
            .map(str::to_owned)
            .ok_or(Cow::Borrowed("mailbox name is not UTF-8"))
    }

    /// `mailbox = "INBOX" / astring` (RFC 9051 §9; INBOX case-insensitive, §5.1).
    fn mailbox(&mut self) -> PResult<Mailbox> {
        let s = Self::utf8(self.astring()?)?;
        Mailbox::new(&s).map_err(inv)
    }

    /// `list-mailbox = 1*list-char / string` (RFC 9051 §9).
    fn list_mailbox(&mut self) -> PResult<ListMailbox> {
        let v = match self.peek() {
            Some(b'"') | Some(b'{') => self.string()?,
            _ => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|b| is_astring_char(b) || b == b'%' || b == b'*')
                {
                    self.pos += 1;
                }
                if start == self.pos {
                    return Err(Cow::Borrowed("expected list pattern"));
                }
                IString::new(self.buf[start..self.pos].to_vec()).map_err(inv)?
            }
        };
        ListMailbox::new(&Self::utf8(v)?).map_err(inv)
    }

    /// The LIST/LSUB reference: `mailbox` in the grammar (an astring, so no unquoted
    /// wildcards), but `""` is allowed, hence a [`ListMailbox`] (RFC 9051 §6.3.9).
    fn reference(&mut self) -> PResult<ListMailbox> {
        ListMailbox::new(&Self::utf8(self.astring()?)?).map_err(inv)
    }

    /// `sequence-set` or `$` (RFC 9051 §9 `seq-last-command`, RFC 5182).
    fn seq_set(&mut self) -> PResult<SeqSet> {
        if self.eat(b'$') {
            return Ok(SeqSet::Saved);
        }
        let mut v = Vec::new();
        loop {
            self.check_items(v.len())?;
            let from = self.seq_number()?;
            let to = if self.eat(b':') {
                self.seq_number()?
            } else {
                from
            };
            v.push(SeqRange { from, to });
            if !self.eat(b',') {
                break;
            }
        }
        Ok(SeqSet::Ranges(SeqRanges::new(v).map_err(inv)?))
    }

    fn seq_number(&mut self) -> PResult<SeqNum> {
        if self.eat(b'*') {
            Ok(SeqNum::Star)
        } else {
            Ok(SeqNum::Value(self.nz_number()?))
        }
    }

    /// `flag` (RFC 9051 §9); `\*` is only in PERMANENTFLAGS, never from a client.
    fn flag(&mut self) -> PResult<Flag> {
        if self.eat(b'\\') {
            let a = self.atom()?;
            let f = match a.as_str().to_ascii_uppercase().as_str() {
                "ANSWERED" => Flag::Answered,
                "FLAGGED" => Flag::Flagged,
                "DELETED" => Flag::Deleted,
                "SEEN" => Flag::Seen,
                "DRAFT" => Flag::Draft,
                "RECENT" => Flag::Recent,
                _ => Flag::Extension(a),
            };
            Ok(f)
        } else {
            Ok(Flag::Keyword(self.atom()?))
        }
    }

    fn flag_list(&mut self) -> PResult<Vec<Flag>> {
        self.paren_list(true, Self::flag)
    }

    /// `date = date-text / DQUOTE date-text DQUOTE` (RFC 9051 §9).
    fn date(&mut self) -> PResult<Date> {
        let q = self.eat(b'"');
        let day = self.digits(1, 2)?;
        self.expect(b'-', "bad date")?;
        let month = self.month()?;
        self.expect(b'-', "bad date")?;
        let year = self.digits(4, 4)?;
        if q {
            self.expect(b'"', "bad date")?;
        }
        Date::new(year, month, day as u8).map_err(inv)
    }

    fn digits(&mut self, min: usize, max: usize) -> PResult<u16> {
        let start = self.pos;
        while self.pos - start < max && self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos - start < min {
            return Err(Cow::Borrowed("expected digits"));
        }
        Ok(self.buf[start..self.pos]
            .iter()
            .fold(0u16, |a, b| a * 10 + u16::from(b - b'0')))
    }

    fn month(&mut self) -> PResult<u8> {
        const M: [&[u8; 3]; 12] = [
            b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV",
            b"DEC",
        ];
        let s = self.buf.get(self.pos..self.pos + 3).ok_or("bad month")?;
        let i = M
            .iter()
            .position(|m| s.eq_ignore_ascii_case(&m[..]))
            .ok_or("bad month")?;
        self.pos += 3;
        Ok(i as u8 + 1)
    }

    /// `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone
    /// DQUOTE` (RFC 9051 §9); `date-day-fixed = (SP DIGIT) / 2DIGIT`.
    fn date_time(&mut self) -> PResult<DateTime> {
        self.expect(b'"', "expected date-time")?;
        let day = if self.eat(b' ') {
            self.digits(1, 1)?
        } else {
            self.digits(2, 2)?
        };
        self.expect(b'-', "bad date-time")?;
        let month = self.month()?;
        self.expect(b'-', "bad date-time")?;
        let year = self.digits(4, 4)?;
        self.sp()?;
        let h = self.digits(2, 2)?;
        self.expect(b':', "bad time")?;
        let m = self.digits(2, 2)?;
        self.expect(b':', "bad time")?;
        let s = self.digits(2, 2)?;
        self.sp()?;
        let sign: i16 = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return Err(Cow::Borrowed("bad zone"));
        };
        let z = self.digits(4, 4)?;
        self.expect(b'"', "bad date-time")?;
        let zone = sign * ((z / 100) as i16 * 60 + (z % 100) as i16);
        if z % 100 > 59 {
            return Err(Cow::Borrowed("bad zone"));
        }
        let date = Date::new(year, month, day as u8).map_err(inv)?;
        DateTime::new(date, h as u8, m as u8, s as u8, zone).map_err(inv)
    }

    fn mod_seq(&mut self) -> PResult<ModSeq> {
        ModSeq::new(self.number64()?).map_err(inv)
    }

    fn object_id(&mut self) -> PResult<ObjectId> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            self.pos += 1;
        }
        let s = std::str::from_utf8(&self.buf[start..self.pos]).map_err(|_| "bad object id")?;
        ObjectId::new(s).map_err(inv)
    }

    // --- commands (RFC 9051 §6) ---

    fn command(&mut self) -> PResult<CommandBody> {
        let name = self.word()?;
        Ok(match name.as_str() {
            "CAPABILITY" => CommandBody::Capability,
            "NOOP" => CommandBody::Noop,
            "LOGOUT" => CommandBody::Logout,
            "STARTTLS" => CommandBody::StartTls,
            "AUTHENTICATE" => self.authenticate()?,
            "LOGIN" => {
                self.sp()?;
                let username = self.astring()?;
                self.sp()?;
                let password = Secret::new(self.astring()?);
                CommandBody::Login { username, password }
            }
            "ENABLE" => {
                // RFC 9051 §6.3.1 `enable = "ENABLE" 1*(SP capability)`.
                let mut capabilities = Vec::new();
                while self.eat(b' ') {
                    self.check_items(capabilities.len())?;
                    capabilities.push(self.atom()?);
                }
                if capabilities.is_empty() {
                    return Err(Cow::Borrowed("ENABLE needs a capability"));
                }
                CommandBody::Enable { capabilities }
            }
            "SELECT" | "EXAMINE" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                let params = self.select_params()?;
                if name == "SELECT" {
                    CommandBody::Select { mailbox, params }
                } else {
                    CommandBody::Examine { mailbox, params }
                }
            }
            "CREATE" => {
                self.sp()?;
                let mailbox = self.mailbox()?;
                let mut use_attrs = Vec::new();
                // RFC 6154 §6 `create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"`.
                if self.eat(b' ') {
                    let params = self.paren_list(false, |p| {
                        if p.word()? != "USE" {
                            return Err(Cow::Borrowed("unknown CREATE parameter"));
                        }
                        p.sp()?;
                        p.paren_list(true, |p| {
                            p.expect(b'\\', "expected \\attribute")?;
                            p.atom()
                        })
                    })?;
                    use_attrs = params.into_iter().flatten().collect();
                }
                CommandBody::Create { mailbox, use_attrs }
            }
            "DELETE" => CommandBody::Delete {
                mailbox: self.sp_mailbox()?,
            },
            "RENAME" => {
                let from = self.sp_mailbox()?;
                let to = self.sp_mailbox()?;
                CommandBody::Rename { from, to }
            }
            "SUBSCRIBE" => CommandBody::Subscribe {
                mailbox: self.sp_mailbox()?,
            },
            "UNSUBSCRIBE" => CommandBody::Unsubscribe {
                mailbox: self.sp_mailbox()?,
            },
            "LIST" => CommandBody::List(self.list()?),
            "LSUB" => {
                self.sp()?;
                let reference = self.reference()?;
                self.sp()?;
                let pattern = self.list_mailbox()?;
                CommandBody::Lsub { reference, pattern }
            }
            "NAMESPACE" => CommandBody::Namespace,
            "STATUS" => {
                let mailbox = self.sp_mailbox()?;
                self.sp()?;
                let items = self.paren_list(false, Self::status_item)?;
                CommandBody::Status { mailbox, items }
            }
            "APPEND" => self.append()?,
            "IDLE" => CommandBody::Idle,
            "CHECK" => CommandBody::Check,
            "CLOSE" => CommandBody::Close,
            "UNSELECT" => CommandBody::Unselect,
            "EXPUNGE" => CommandBody::Expunge,
            "SEARCH" => CommandBody::Search(self.search(false)?),
            "SORT" => CommandBody::Sort(self.sort(false)?),
            "THREAD" => CommandBody::Thread(self.thread(false)?),
            "FETCH" => self.fetch(false)?,
            "STORE" => self.store(false)?,
            "COPY" | "MOVE" => self.copy_move(&name, false)?,
            "UID" => {
                self.sp()?;
                let sub = self.word()?;
                match sub.as_str() {
                    "SEARCH" => CommandBody::Search(self.search(true)?),
                    "SORT" => CommandBody::Sort(self.sort(true)?),
                    "THREAD" => CommandBody::Thread(self.thread(true)?),
                    "FETCH" => self.fetch(true)?,
                    "STORE" => self.store(true)?,
                    "COPY" | "MOVE" => self.copy_move(&sub, true)?,
                    "EXPUNGE" => {
                        self.sp()?;
                        CommandBody::UidExpunge {
                            uids: self.seq_set()?,
                        }
                    }
                    _ => return Err(Cow::Borrowed("unknown UID command")),
                }
            }
            "GETQUOTA" => {
                self.sp()?;
                CommandBody::GetQuota {
                    root: self.astring()?,
                }
            }
            "GETQUOTAROOT" => CommandBody::GetQuotaRoot {
                mailbox: self.sp_mailbox()?,
            },
            "SETQUOTA" => {
                // RFC 9208 §4.1.3 `setquota = "SETQUOTA" SP quota-root-name SP setquota-list`.
                self.sp()?;
                let root = self.astring()?;
                self.sp()?;
                let limits = self.paren_list(true, |p| {
                    let name = p.atom()?;
                    p.sp()?;
                    Ok((name, p.number64()?))
                })?;
                CommandBody::SetQuota { root, limits }
            }
            "SETACL" => {
                // RFC 4314 §3.1 `setacl = "SETACL" SP mailbox SP identifier SP mod-rights`.
                let mailbox = self.sp_mailbox()?;
                self.sp()?;
                let identifier = self.astring()?;
                self.sp()?;
                let r = Self::utf8(self.astring()?)?;
                let (modify, rest) = match r.as_bytes().first() {
                    Some(b'+') => (RightsModify::Add, &r[1..]),
                    Some(b'-') => (RightsModify::Remove, &r[1..]),
                    _ => (RightsModify::Replace, &r[..]),
                };
                CommandBody::SetAcl {
                    mailbox,
                    identifier,
                    modify,
                    rights: Rights::new(rest).map_err(inv)?,
                }
            }
            "DELETEACL" => {
                let mailbox = self.sp_mailbox()?;
                self.sp()?;
                CommandBody::DeleteAcl {
                    mailbox,
                    identifier: self.astring()?,
                }
            }
            "GETACL" => CommandBody::GetAcl {
                mailbox: self.sp_mailbox()?,
            },
            "LISTRIGHTS" => {
                let mailbox = self.sp_mailbox()?;
                self.sp()?;
                CommandBody::ListRights {
                    mailbox,
                    identifier: self.astring()?,
                }
            }
            "MYRIGHTS" => CommandBody::MyRights {
                mailbox: self.sp_mailbox()?,
            },
            "ID" => {
                // RFC 2971 §4 `id = "ID" SPACE id_params_list`.
                self.sp()?;
                if self.peek_word("NIL") {
                    self.pos += 3;
                    CommandBody::Id { params: None }
                } else {
                    let params = self.paren_list(true, |p| {
                        let k = p.string()?;
                        p.sp()?;
                        Ok((k, p.nstring()?))
                    })?;
                    CommandBody::Id {
                        params: Some(params),
                    }
                }
            }
            "COMPRESS" => {
                self.sp()?;
                CommandBody::Compress {
                    algorithm: self.atom()?,
                }
            }
            _ => return Err(Cow::Borrowed("unknown command")),
        })
    }

    fn sp_mailbox(&mut self) -> PResult<Mailbox> {
        self.sp()?;
        self.mailbox()
    }

    /// RFC 9051 §6.2.2, RFC 4959 §7 `initial-resp = (base64 / "=")`.
    fn authenticate(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let mechanism = self.atom()?;
        let mut initial = None;
        if self.eat(b' ') {
            if self.eat(b'=') {
                initial = Some(Secret::new(Vec::new()));
            } else {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
                {
                    self.pos += 1;
                }
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&self.buf[start..self.pos])
                    .map_err(|_| "invalid base64 initial response")?;
                if data.is_empty() {
                    return Err(Cow::Borrowed("empty initial response must be ="));
                }
                initial = Some(Secret::new(data));
            }
        }
        Ok(CommandBody::Authenticate { mechanism, initial })
    }

    /// RFC 7162 §3.1.8, §3.2.5 (`select-param`).
    fn select_params(&mut self) -> PResult<SelectParams> {
        let mut params = SelectParams::default();
        if !self.eat(b' ') {
            return Ok(params);
        }
        let list = self.paren_list(false, |p| {
            let w = p.word()?;
            match w.as_str() {
                "CONDSTORE" => Ok(None),
                "QRESYNC" => {
                    p.sp()?;
                    p.expect(b'(', "expected (")?;
                    let uid_validity = p.nz_number()?;
                    p.sp()?;
                    let mod_seq = p.mod_seq()?;
                    let mut known_uids = None;
                    let mut seq_match = None;
                    if p.eat(b' ') && p.peek() != Some(b'(') {
                        known_uids = Some(p.seq_set()?);
                        if !p.eat(b' ') {
                            p.expect(b')', "expected )")?;
                            return Ok(Some(QresyncParams {
                                uid_validity,
                                mod_seq,
                                known_uids,
                                seq_match,
                            }));
                        }
                    }
                    if p.eat(b'(') {
                        let seqs = p.seq_set()?;
                        p.sp()?;
                        let uids = p.seq_set()?;
                        p.expect(b')', "expected )")?;
                        seq_match = Some((seqs, uids));
                    }
                    p.expect(b')', "expected )")?;
                    Ok(Some(QresyncParams {
                        uid_validity,
                        mod_seq,
                        known_uids,
                        seq_match,
                    }))
                }
                _ => Err(Cow::Borrowed("unknown SELECT parameter")),
            }
        })?;
        for q in list {
            match q {
                None => params.condstore = true,
                Some(q) => params.qresync = Some(q),
            }
        }
        Ok(params)
    }

    /// RFC 9051 §6.3.9 / RFC 5258 §6 `list`.
    fn list(&mut self) -> PResult<ListCommand> {
        self.sp()?;
        let mut selection = None;
        if self.peek() == Some(b'(') {
            selection = Some(self.paren_list(true, |p| {
                let w = p.word()?;
                Ok(match w.as_str() {
                    "SUBSCRIBED" => ListSelect::Subscribed,
                    "REMOTE" => ListSelect::Remote,
                    "RECURSIVEMATCH" => ListSelect::RecursiveMatch,
                    "SPECIAL-USE" => ListSelect::SpecialUse,
                    _ => ListSelect::Other(Atom::new(&w).map_err(inv)?),
                })
            })?);
            // RFC 5258 §3: RECURSIVEMATCH alone (or with only REMOTE) is BAD.
            if let Some(sel) = &selection
                && sel.contains(&ListSelect::RecursiveMatch)
                && sel
                    .iter()
                    .all(|o| matches!(o, ListSelect::RecursiveMatch | ListSelect::Remote))
            {
                return Err(Cow::Borrowed(
                    "RECURSIVEMATCH needs another selection option",
                ));
            }
            self.sp()?;
        }
        let reference = self.reference()?;
        self.sp()?;
        let patterns = if self.peek() == Some(b'(') {
            self.paren_list(false, Self::list_mailbox)?
        } else {
            vec![self.list_mailbox()?]
        };
        let mut returns = None;
        if self.eat(b' ') {
            if self.word()? != "RETURN" {
                return Err(Cow::Borrowed("expected RETURN"));
            }
            self.sp()?;
            returns = Some(self.paren_list(true, |p| {
                let w = p.word()?;
                Ok(match w.as_str() {
                    "SUBSCRIBED" => ListReturn::Subscribed,
                    "CHILDREN" => ListReturn::Children,
                    "SPECIAL-USE" => ListReturn::SpecialUse,
                    "STATUS" => {
                        p.sp()?;
                        ListReturn::Status(p.paren_list(false, Self::status_item)?)
                    }
                    _ => ListReturn::Other(Atom::new(&w).map_err(inv)?),
                })
            })?);
        }
        Ok(ListCommand {
            selection,
            reference,
            patterns,
            returns,
        })
    }

    fn status_item(&mut self) -> PResult<StatusItem> {
        Ok(match self.word()?.as_str() {
            "MESSAGES" => StatusItem::Messages,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "DELETED" => StatusItem::Deleted,
            "SIZE" => StatusItem::Size,
            "RECENT" => StatusItem::Recent,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            "APPENDLIMIT" => StatusItem::AppendLimit,
            "MAILBOXID" => StatusItem::MailboxId,
            "DELETED-STORAGE" => StatusItem::DeletedStorage,
            _ => return Err(Cow::Borrowed("unknown status item")),
        })
    }

    /// RFC 3502 §6 (MULTIAPPEND): `append = "APPEND" SP mailbox 1*append-message`,
    /// `append-message = append-opts SP append-data`; literal8 from RFC 3516 §4.4.
    fn append(&mut self) -> PResult<CommandBody> {
        let mailbox = self.sp_mailbox()?;
        let mut messages = Vec::new();
        while self.eat(b' ') {
            self.check_items(messages.len())?;
            let mut flags = None;
            let mut date = None;
            if self.peek() == Some(b'(') {
                flags = Some(self.flag_list()?);
                self.sp()?;
            }
            if self.peek() == Some(b'"') {
                date = Some(self.date_time()?);
                self.sp()?;
            }
            let (data, binary) = self.literal(true)?;
            messages.push(AppendMessage {
                flags,
                date,
                data,
                binary,
            });
        }
        if messages.is_empty() {
            return Err(Cow::Borrowed("APPEND needs a message"));
        }
        Ok(CommandBody::Append { mailbox, messages })
    }

    /// RFC 9051 §6.4.4, RFC 4731 §3 `search-return-opts`.
    fn search(&mut self, uid: bool) -> PResult<SearchCommand> {
        self.sp()?;
        let mut returns = None;
        if self.peek_word("RETURN") {
            self.pos += 6;
            self.sp()?;
            returns = Some(self.paren_list(true, |p| {
                Ok(match p.word()?.as_str() {
                    "MIN" => SearchReturn::Min,
                    "MAX" => SearchReturn::Max,
                    "ALL" => SearchReturn::All,
                    "COUNT" => SearchReturn::Count,
                    "SAVE" => SearchReturn::Save,
                    _ => return Err(Cow::Borrowed("unknown search return option")),
                })
            })?);
            self.sp()?;
        }
        let mut charset = None;
        if self.peek_word("CHARSET") {
            self.pos += 7;
            self.sp()?;
            charset = Some(self.astring()?);
            self.sp()?;
        }
        let keys = self.search_keys()?;
        Ok(SearchCommand {
            uid,
            returns,
            charset,
            keys,
        })
    }

    /// `search-key *(SP search-key)` up to the end of the command.
    fn search_keys(&mut self) -> PResult<Vec<SearchKey>> {
        let mut keys = vec![self.search_key()?];
        while self.eat(b' ') {
            self.check_items(keys.len())?;
            keys.push(self.search_key()?);
        }
        Ok(keys)
    }

    /// One `search-key` (RFC 9051 §6.4.4, §9). Recursion (`(`, NOT, OR) is bounded by
    /// `limits.nesting_depth` before descending, so the stack depth is too.
    fn search_key(&mut self) -> PResult<SearchKey> {
        match self.peek() {
            Some(b'(') | Some(b'*') | Some(b'$') => {}
            Some(b) if b.is_ascii_digit() => {}
            _ => return self.search_key_word(),
        }
        if self.peek() == Some(b'(') {
            self.enter()?;
            let keys = self.paren_list(false, Self::search_key);
            self.depth -= 1;
            return Ok(SearchKey::And(keys?));
        }
        Ok(SearchKey::SeqSet(self.seq_set()?))
    }

    fn enter(&mut self) -> PResult<()> {
        if self.depth >= self.limits.nesting_depth {
            return Err(Cow::Borrowed("nesting too deep"));
        }
        self.depth += 1;
        Ok(())
    }

    fn search_key_word(&mut self) -> PResult<SearchKey> {
        use SearchKey as K;
        let w = self.word()?;
        let k = match w.as_str() {
            "ALL" => K::All,
            "ANSWERED" => K::Answered,
            "DELETED" => K::Deleted,
            "DRAFT" => K::Draft,
            "FLAGGED" => K::Flagged,
            "NEW" => K::New,
            "OLD" => K::Old,
            "RECENT" => K::Recent,
            "SEEN" => K::Seen,
            "UNANSWERED" => K::Unanswered,
            "UNDELETED" => K::Undeleted,
            "UNDRAFT" => K::Undraft,
            "UNFLAGGED" => K::Unflagged,
            "UNSEEN" => K::Unseen,
            "SAVEDATESUPPORTED" => K::SaveDateSupported,
            "BCC" | "BODY" | "CC" | "FROM" | "SUBJECT" | "TEXT" | "TO" => {
                self.sp()?;
                let s = self.astring()?;
                match w.as_str() {
                    "BCC" => K::Bcc(s),
                    "BODY" => K::Body(s),
                    "CC" => K::Cc(s),
                    "FROM" => K::From(s),
                    "SUBJECT" => K::Subject(s),
                    "TEXT" => K::Text(s),
                    _ => K::To(s),
                }
            }
            "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" | "SAVEDBEFORE"
            | "SAVEDON" | "SAVEDSINCE" => {
                self.sp()?;
                let d = self.date()?;
                match w.as_str() {
                    "BEFORE" => K::Before(d),
                    "ON" => K::On(d),
                    "SINCE" => K::Since(d),
                    "SENTBEFORE" => K::SentBefore(d),
                    "SENTON" => K::SentOn(d),
                    "SENTSINCE" => K::SentSince(d),
                    "SAVEDBEFORE" => K::SavedBefore(d),
                    "SAVEDON" => K::SavedOn(d),
                    _ => K::SavedSince(d),
                }
            }
            "HEADER" => {
                self.sp()?;
                let name = self.astring()?;
                self.sp()?;
                K::Header(name, self.astring()?)
            }
            "KEYWORD" | "UNKEYWORD" => {
                self.sp()?;
                let a = self.atom()?;
                if w == "KEYWORD" {
                    K::Keyword(a)
                } else {
                    K::Unkeyword(a)
                }
            }
            "LARGER" | "SMALLER" => {
                self.sp()?;
                let n = self.number64()?;
                if w == "LARGER" {
                    K::Larger(n)
                } else {
                    K::Smaller(n)
                }
            }
            "UID" => {
                self.sp()?;
                K::Uid(self.seq_set()?)
            }
            "NOT" => {
                self.sp()?;
                self.enter()?;
                let k = self.search_key();
                self.depth -= 1;
                K::Not(Box::new(k?))
            }
            "OR" => {
                self.sp()?;
                self.enter()?;
                let a = self.search_key();
                let r = a.and_then(|a| {
                    self.sp()?;
                    Ok((a, self.search_key()?))
                });
                self.depth -= 1;
                let (a, b) = r?;
                K::Or(Box::new(a), Box::new(b))
            }
            "MODSEQ" => {
                // RFC 7162 §3.1.5 `search-modsequence = "MODSEQ" [search-modseq-ext] SP
                // mod-sequence-valzer`; `search-modseq-ext = SP entry-name SP entry-type-req`.
                self.sp()?;
                let mut entry = None;
                if self.peek() == Some(b'"') {
                    let name = self.string()?;
                    self.sp()?;
                    let t = match self.word()?.as_str() {
                        "PRIV" => EntryType::Priv,
                        "SHARED" => EntryType::Shared,
                        "ALL" => EntryType::All,
                        _ => return Err(Cow::Borrowed("bad entry type")),
                    };
                    self.sp()?;
                    entry = Some((name, t));
                }
                K::ModSeq {
                    entry,
                    mod_seq: self.number64()?,
                }
            }
            "EMAILID" | "THREADID" => {
                self.sp()?;
                let id = self.object_id()?;
                if w == "EMAILID" {
                    K::EmailId(id)
                } else {
                    K::ThreadId(id)
                }
            }
            "OLDER" | "YOUNGER" => {
                self.sp()?;
                let n = self.nz_number()?.get();
                if w == "OLDER" {
                    K::Older(n)
                } else {
                    K::Younger(n)
                }
            }
            _ => return Err(Cow::Borrowed("unknown search key")),
        };
        Ok(k)
    }

    /// RFC 5256 §5 `sort`.
    fn sort(&mut self, uid: bool) -> PResult<SortCommand> {
        self.sp()?;
        let criteria = self.paren_list(false, |p| {
            let mut reverse = false;
            let mut w = p.word()?;
            if w == "REVERSE" {
                reverse = true;
                p.sp()?;
                w = p.word()?;
            }
            let key = match w.as_str() {
                "ARRIVAL" => SortKey::Arrival,
                "CC" => SortKey::Cc,
                "DATE" => SortKey::Date,
                "FROM" => SortKey::From,
                "SIZE" => SortKey::Size,
                "SUBJECT" => SortKey::Subject,
                "TO" => SortKey::To,
                "DISPLAYFROM" => SortKey::DisplayFrom,
                "DISPLAYTO" => SortKey::DisplayTo,
                _ => return Err(Cow::Borrowed("unknown sort key")),
            };
            Ok(SortCriterion { reverse, key })
        })?;
        self.sp()?;
        let charset = self.astring()?;
        self.sp()?;
        let keys = self.search_keys()?;
        Ok(SortCommand {
            uid,
            criteria,
            charset,
            keys,
        })
    }

    /// RFC 5256 §5 `thread`.
    fn thread(&mut self, uid: bool) -> PResult<ThreadCommand> {
        self.sp()?;
        let a = self.atom()?;
        let algorithm = match a.as_str().to_ascii_uppercase().as_str() {
            "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
            "REFERENCES" => ThreadAlgorithm::References,
            _ => ThreadAlgorithm::Other(a),
        };
        self.sp()?;
        let charset = self.astring()?;
        self.sp()?;
        let keys = self.search_keys()?;
        Ok(ThreadCommand {
            uid,
            algorithm,
            charset,
            keys,
        })
    }

    /// RFC 9051 §6.4.5 `fetch`, RFC 7162 §3.1.4.1 / §3.2.6 modifiers.
    fn fetch(&mut self, uid: bool) -> PResult<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let items = if self.peek() == Some(b'(') {
            FetchItems::List {
                items: self.paren_list(false, Self::fetch_item)?,
                paren: true,
            }
        } else if self.peek_word("ALL") {
            self.pos += 3;
            FetchItems::All
        } else if self.peek_word("FAST") {
            self.pos += 4;
            FetchItems::Fast
        } else if self.peek_word("FULL") {
            self.pos += 4;
            FetchItems::Full
        } else {
            FetchItems::List {
                items: vec![self.fetch_item()?],
                paren: false,
            }
        };
        let mut modifiers = FetchModifiers::default();
        if self.eat(b' ') {
            let mods = self.paren_list(false, |p| match p.word()?.as_str() {
                "CHANGEDSINCE" => {
                    p.sp()?;
                    Ok(Some(p.mod_seq()?))
                }
                "VANISHED" => Ok(None),
                _ => Err(Cow::Borrowed("unknown fetch modifier")),
            })?;
            for m in mods {
                match m {
                    Some(s) => modifiers.changed_since = Some(s),
                    None => modifiers.vanished = true,
                }
            }
        }
        Ok(CommandBody::Fetch {
            uid,
            set,
            items,
            modifiers,
        })
    }

    fn fetch_item(&mut self) -> PResult<FetchItem> {
        use FetchItem as F;
        let w = self.word()?;
        Ok(match w.as_str() {
            "ENVELOPE" => F::Envelope,
            "FLAGS" => F::Flags,
            "INTERNALDATE" => F::InternalDate,
            "RFC822.SIZE" => F::Rfc822Size,
            "RFC822" => F::Rfc822,
            "RFC822.HEADER" => F::Rfc822Header,
            "RFC822.TEXT" => F::Rfc822Text,
            "BODYSTRUCTURE" => F::BodyStructure,
            "UID" => F::Uid,
            "MODSEQ" => F::ModSeq,
            "EMAILID" => F::EmailId,
            "THREADID" => F::ThreadId,
            "SAVEDATE" => F::SaveDate,
            "BODY" if self.peek() != Some(b'[') => F::Body,
            "BODY" | "BODY.PEEK" => {
                let section = self.section()?;
                let partial = self.partial()?;
                F::BodySection {
                    peek: w == "BODY.PEEK",
                    section,
                    partial,
                }
            }
            "BINARY" | "BINARY.PEEK" => {
                let part = self.section_binary()?;
                let partial = self.partial()?;
                F::Binary {
                    peek: w == "BINARY.PEEK",
                    part,
                    partial,
                }
            }
            "BINARY.SIZE" => F::BinarySize {
                part: self.section_binary()?,
            },
            "PREVIEW" => {
                // RFC 8970 §7 `"PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]`.
                let save = self.pos;
                if self.eat(b' ') && self.eat(b'(') && self.peek_word("LAZY") {
                    self.pos += 4;
                    self.expect(b')', "expected )")?;
                    F::Preview { lazy: true }
                } else {
                    self.pos = save;
                    F::Preview { lazy: false }
                }
            }
            _ => return Err(Cow::Borrowed("unknown fetch item")),
        })
    }

    /// `section = "[" [section-spec] "]"` (RFC 9051 §9).
    fn section(&mut self) -> PResult<Section> {
        self.expect(b'[', "expected [")?;
        let mut part = Vec::new();
        let mut text = None;
        if self.eat(b']') {
            return Ok(Section { part, text });
        }
        // section-part = nz-number *("." nz-number)
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.check_items(part.len())?;
            part.push(self.nz_number()?);
            if !self.eat(b'.') {
                break;
            }
        }
        if self.peek() != Some(b']') {
            let w = self.word()?;
            text = Some(match w.as_str() {
                "HEADER" => SectionText::Header,
                "TEXT" => SectionText::Text,
                "MIME" if !part.is_empty() => SectionText::Mime,
                "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                    self.sp()?;
                    let fields = self.paren_list(false, Self::astring)?;
                    SectionText::HeaderFields {
                        not: w.ends_with(".NOT"),
                        fields,
                    }
                }
                _ => return Err(Cow::Borrowed("bad section")),
            });
        } else if self.buf.get(self.pos - 1) == Some(&b'.') {
            return Err(Cow::Borrowed("bad section"));
        }
        self.expect(b']', "expected ]")?;
        Ok(Section { part, text })
    }

    /// `section-binary = "[" [section-part] "]"` (RFC 9051 §9).
    fn section_binary(&mut self) -> PResult<Vec<NonZeroU32>> {
        self.expect(b'[', "expected [")?;
        let mut part = Vec::new();
        if !self.eat(b']') {
            loop {
                self.check_items(part.len())?;
                part.push(self.nz_number()?);
                if !self.eat(b'.') {
                    break;
                }
            }
            self.expect(b']', "expected ]")?;
        }
        Ok(part)
    }

    /// `partial = "<" number64 "." nz-number64 ">"` (RFC 9051 §9).
    fn partial(&mut self) -> PResult<Option<Partial>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let offset = self.number64()?;
        self.expect(b'.', "expected .")?;
        let length = self.number64()?;
        if length == 0 {
            return Err(Cow::Borrowed("partial length must be non-zero"));
        }
        self.expect(b'>', "expected >")?;
        Ok(Some(Partial { offset, length }))
    }

    /// RFC 9051 §6.4.6 `store`, RFC 7162 §3.1.3 `store-modifier`.
    fn store(&mut self, uid: bool) -> PResult<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mut unchanged_since = None;
        if self.peek() == Some(b'(') {
            let mods = self.paren_list(false, |p| {
                if p.word()? != "UNCHANGEDSINCE" {
                    return Err(Cow::Borrowed("unknown store modifier"));
                }
                p.sp()?;
                p.number64()
            })?;
            unchanged_since = mods.last().copied();
            self.sp()?;
        }
        let action = if self.eat(b'+') {
            StoreAction::Add
        } else if self.eat(b'-') {
            StoreAction::Remove
        } else {
            StoreAction::Replace
        };
        let silent = match self.word()?.as_str() {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return Err(Cow::Borrowed("expected FLAGS")),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut v = vec![self.flag()?];
            while self.eat(b' ') {
                self.check_items(v.len())?;
                v.push(self.flag()?);
            }
            v
        };
        Ok(CommandBody::Store {
            uid,
            set,
            unchanged_since,
            action,
            silent,
            flags,
        })
    }

    fn copy_move(&mut self, name: &str, uid: bool) -> PResult<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        let mailbox = self.sp_mailbox()?;
        Ok(if name == "COPY" {
            CommandBody::Copy { uid, set, mailbox }
        } else {
            CommandBody::Move { uid, set, mailbox }
        })
    }
}
