//! # postern-imap-proto — the bounded IMAP4rev2 command parser
//!
//! Turns the bytes an IMAP client sends into typed [`Command`]s, one at a time, from a
//! buffer the session keeps filling: [`parse_command`] answers with a command and how
//! many bytes it used, or says the buffer is [`ParseError::Incomplete`], that a literal
//! was announced and the caller must decide on it ([`ParseError::LiteralNeeded`]), or that
//! the input is bad ([`ParseError::Failed`], answered with `BAD`). The two other things a
//! client sends — IDLE's `DONE` and AUTHENTICATE responses — have [`parse_idle_done`]
//! and [`parse_auth_response`], under the same line limit. No I/O, no server
//! state: the session (issue 4) owns both. Mailbox names arrive as UTF-8 (IMAP4rev2);
//! [`decode_mutf7`] converts IMAP4rev1 clients' modified UTF-7 names.
//!
//! **Standards:** RFC 9051 §2.2 (commands, CRLF), §4.3 (strings, literals), §5.1
//! (mailbox names), §6 (commands) and §9 (formal syntax); RFC 3501 §5.1.3 (modified
//! UTF-7) and its IMAP4rev1-only commands/keys (LSUB, CHECK, RECENT, NEW, OLD, RFC822*);
//! RFC 7888 (LITERAL+/LITERAL-); RFC 3516 (BINARY, `literal8`); RFC 3502 (MULTIAPPEND);
//! RFC 4959 (SASL-IR); RFC 5161 (ENABLE); RFC 6154 (SPECIAL-USE, CREATE-SPECIAL-USE);
//! RFC 7162 §3 (CONDSTORE/QRESYNC); RFC 4731 (ESEARCH); RFC 5182 (SEARCHRES `$`);
//! RFC 5256 (SORT/THREAD) and RFC 5957 (DISPLAYFROM/TO); RFC 5258 (LIST-EXTENDED);
//! RFC 5819 (LIST-STATUS); RFC 8438 (STATUS=SIZE); RFC 7889 (APPENDLIMIT); RFC 9208
//! (QUOTA); RFC 4314 (ACL); RFC 6851 (MOVE); RFC 4315 (UIDPLUS); RFC 8970 (PREVIEW);
//! RFC 8474 (OBJECTID); RFC 8514 (SAVEDATE); RFC 5032 (WITHIN); RFC 2971 (ID); RFC 4978
//! (COMPRESS); RFC 2177 (IDLE).
//!
//! **Security:** every byte is untrusted and may come before login. Each [`Limits`] field
//! stops one bomb (THREATS.md "IMAP bombs"): `line_length` — a line with no CRLF is
//! `Failed` once it is that long, never `Incomplete` forever; `literal_size` — the
//! length in `{n}` is read and checked before a single data byte is, and nothing is
//! allocated from it (`a LOGIN {4294967295}` is `LiteralNeeded` for the caller to
//! refuse; `{4294967295+}` is `Failed`); `literal_plus` — LITERAL- (RFC 7888 §5) caps
//! non-synchronising literals at 4096; `nesting_depth` — the only recursion (SEARCH
//! keys: `(`, `NOT`, `OR`) stops at the limit, so 100 000 `(` cannot overflow the stack
//! (64 levels fit in a 512 KiB stack even unoptimised — tested);
//! `max_items` — bounds every list and the literal count. Framing runs before any
//! allocation; the grammar then allocates at most in proportion to the framed command.
//! Credentials (LOGIN password, SASL initial response) are [`Secret`]s, hidden from `Debug`.
//!
//! **Invariants:** `Incomplete` and `LiteralNeeded` only ever mean "more bytes could make
//! this valid" — every prefix of a valid command gets one of them, never `Failed`;
//! `Failed` is final for that command. A [`Command`] holds only values the grammar
//! allows: newtypes ([`Tag`], [`Atom`], [`SeqRanges`], [`Mailbox`], [`Date`], ...) check
//! their invariants on construction. No `unsafe`, no panics on any input (a seeded fuzz
//! test in `tests.rs`; cargo-fuzz targets, round trip included, in `fuzz/`).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod decode;
mod mutf7;
pub mod types;

/// The canonical command encoder: test-only, and behind the non-default `encode`
/// feature for the round-trip fuzz target (`fuzz/`).
#[cfg(any(test, feature = "encode"))]
pub mod encode;
#[cfg(test)]
mod tests;

pub use decode::{
    AuthResponse, LITERAL_MINUS_MAX, Limits, ParseError, parse_auth_response, parse_command,
    parse_idle_done,
};
pub use mutf7::{Mutf7Error, decode_mutf7, encode_mutf7};
pub use types::*;
