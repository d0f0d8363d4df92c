//! The message text: DATA (RFC 5321 §4.1.1.4, §4.5.2) and BDAT (RFC 3030).
//!
//! smtp-proto 0.2.5's `DataReceiver` is not used: it accepts bare LF and bare CR as
//! ordinary text and has no line or size bound, so a message with `<LF>.<LF>` in it would
//! be stored with bare line ends and the session would have no way to refuse it. This
//! reader is ours:
//!
//! - only `<CRLF>.<CRLF>` ends DATA — a line that is exactly `.` CR LF, after a line that
//!   itself ended with CR LF (the DATA command's CRLF counts for the first line). So
//!   `<LF>.<LF>`, `<LF>.<CR><LF>`, `<CR>.<CR>`, `<CR><LF>.<LF>` are never an end, and
//!   whatever follows them is read as text (THREATS: SMTP smuggling, CVE-2023-51764/5/6);
//! - RFC 5321 §2.3.8: "SMTP client implementations MUST NOT transmit [CR and LF] except
//!   when they are intended as line terminators"; a message holding a bare LF or a bare
//!   CR is refused whole (550 5.6.0) once its real end arrives. Reading on to the real
//!   end keeps the session in step with the client, so nothing inside the refused text is
//!   ever taken as a command; Postfix's `smtpd_forbid_bare_newline` makes the same
//!   choice of refusing (it disconnects instead);
//! - dot-stuffing is undone (RFC 5321 §4.5.2: a leading `.` of a line is removed);
//! - a line longer than the limit or a message larger than the limit is refused the same
//!   way; bytes past the size limit are not kept, so memory stays bounded.

use crate::conn::{Conn, ConnError, find_lf};
use tokio::time::Instant;

/// The process-wide budget of message bytes held in memory.
pub type Budget = std::sync::Arc<tokio::sync::Semaphore>;

/// The part of the budget one message holds; given back when dropped.
#[derive(Default)]
pub struct Held(Option<tokio::sync::OwnedSemaphorePermit>);

impl Held {
    /// Takes `n` more bytes of the budget without waiting; false when it is spent.
    pub fn grow(&mut self, budget: &Budget, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        match budget.clone().try_acquire_many_owned(n) {
            Ok(p) => {
                match &mut self.0 {
                    Some(h) => h.merge(p),
                    None => self.0 = Some(p),
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// Why a message's text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    TooBig,
    /// The process-wide budget of message bytes in memory is spent (`inflight_bytes`).
    Busy,
    LineTooLong,
    BareLf,
    BareCr,
}

impl Problem {
    /// The reply for it (RFC 3463 codes).
    pub fn reply(self, max_line: usize) -> String {
        match self {
            // RFC 5321 §4.5.3.1.10 / RFC 1870 §6.3.
            Problem::TooBig => "552 5.3.4 Message too big for system\r\n".into(),
            // RFC 3463 §3.4: X.3.1 mail system full (temporary: the sender retries).
            Problem::Busy => "452 4.3.1 Insufficient system storage; try again later\r\n".into(),
            Problem::LineTooLong => format!(
                "550 5.6.0 Message refused: a text line is longer than {max_line} octets (RFC 5321 §4.5.3.1.6)\r\n"
            ),
            Problem::BareLf => {
                "550 5.6.0 Message refused: bare LF in message text; lines must end with CRLF (RFC 5321 §2.3.8)\r\n".into()
            }
            Problem::BareCr => {
                "550 5.6.0 Message refused: bare CR in message text (RFC 5321 §2.3.8)\r\n".into()
            }
        }
    }
}

/// Reads DATA text up to `<CRLF>.<CRLF>`; the 354 has been sent. Returns the unstuffed
/// message (its last CRLF included, the end marker not) or the first problem found.
pub async fn read_data(
    conn: &mut Conn,
    max_size: u64,
    max_line: usize,
    deadline: Instant,
    budget: &Budget,
) -> Result<Result<(Vec<u8>, Held), Problem>, ConnError> {
    let mut msg: Vec<u8> = Vec::new();
    let mut held = Held::default();
    let mut problem: Option<Problem> = None;
    // The previous line ended with CRLF (true at the start: the DATA command's CRLF).
    let mut after_crlf = true;
    // Inside an over-long line whose start was dropped; its last dropped byte.
    let mut long_line: Option<u8> = None;
    loop {
        let buf = conn.buffered();
        let Some(i) = find_lf(buf) else {
            if long_line.is_some() || buf.len() > max_line {
                problem.get_or_insert(Problem::LineTooLong);
                long_line = buf.last().copied().or(long_line);
                conn.discard_buffered();
            }
            conn.fill(deadline, None).await?;
            continue;
        };
        let line = &buf[..=i];
        if let Some(last) = long_line.take() {
            // The tail of an over-long line: already refused; only its end matters.
            after_crlf = if line.len() >= 2 {
                line[line.len() - 2] == b'\r'
            } else {
                last == b'\r'
            };
            conn.consume(i + 1);
            continue;
        }
        // RFC 5321 §4.1.1.4: the end of mail data indicator.
        if after_crlf && line == b".\r\n" {
            conn.consume(i + 1);
            return Ok(match problem {
                Some(p) => Err(p),
                None => Ok((msg, held)),
            });
        }
        let crlf = line.len() >= 2 && line[line.len() - 2] == b'\r';
        let text = &line[..line.len() - if crlf { 2 } else { 1 }];
        let found = if !crlf {
            Some(Problem::BareLf)
        } else if text.contains(&b'\r') {
            Some(Problem::BareCr)
        } else if line.len() > max_line {
            Some(Problem::LineTooLong)
        } else {
            None
        };
        if let Some(p) = found {
            problem.get_or_insert(p);
        }
        after_crlf = crlf;
        if problem.is_none() {
            // RFC 5321 §4.5.2: remove the first of a line's leading dots.
            let unstuffed = if line[0] == b'.' { &line[1..] } else { line };
            if msg.len() as u64 + unstuffed.len() as u64 > max_size {
                problem = Some(Problem::TooBig);
                msg = Vec::new();
                held = Held::default();
            } else if !held.grow(budget, unstuffed.len()) {
                problem = Some(Problem::Busy);
                msg = Vec::new();
                held = Held::default();
            } else {
                msg.extend_from_slice(unstuffed);
            }
        } else if !msg.is_empty() {
            msg = Vec::new();
            held = Held::default();
        }
        conn.consume(i + 1);
    }
}

/// Checks a BDAT message (RFC 3030 carries it counted, so no end marker and no
/// dot-stuffing) for the same line rules as DATA: every LF preceded by CR, every CR
/// followed by LF, no line longer than `max_line` octets.
pub fn check_text(msg: &[u8], max_line: usize) -> Result<(), Problem> {
    let mut rest = msg;
    while !rest.is_empty() {
        let (line, more) = match find_lf(rest) {
            Some(i) => (&rest[..=i], true),
            None => (rest, false),
        };
        if line.len() > max_line {
            return Err(Problem::LineTooLong);
        }
        let body = if more {
            match line.strip_suffix(b"\r\n") {
                Some(b) => b,
                None => return Err(Problem::BareLf),
            }
        } else {
            line
        };
        if body.contains(&b'\r') {
            return Err(Problem::BareCr);
        }
        rest = &rest[line.len()..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdat_text_rules() {
        assert_eq!(check_text(b"a\r\nb\r\n", 100), Ok(()));
        assert_eq!(check_text(b"a\r\nb", 100), Ok(()));
        assert_eq!(check_text(b"", 100), Ok(()));
        assert_eq!(check_text(b"a\nb\r\n", 100), Err(Problem::BareLf));
        assert_eq!(check_text(b"a\rb\r\n", 100), Err(Problem::BareCr));
        assert_eq!(check_text(b"a\r", 100), Err(Problem::BareCr));
        assert_eq!(check_text(b"aaaa\r\n", 5), Err(Problem::LineTooLong));
    }
}
