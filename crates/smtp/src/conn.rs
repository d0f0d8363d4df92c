//! The connection's byte stream with a read-ahead buffer and a reply buffer.
//!
//! PIPELINING (RFC 2920 §3.1): the session reads ahead, and replies wait in `out` until
//! the input buffer has no complete command left; they are flushed just before the
//! session would block on the socket, so a pipelined group gets its replies in one
//! write and a lock-step client gets each reply at once.

use postern_net::{BoxStream, Shutdown};
use std::io::BufRead;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub enum ConnError {
    /// The peer closed the connection (or it broke).
    Closed,
    /// The deadline passed before the expected bytes arrived.
    Timeout,
    /// The server is stopping.
    Shutdown,
}

/// One command line, judged (RFC 5321 §2.3.8: lines end with CRLF, and CR and LF never
/// appear alone).
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line without its CRLF.
    Ok(Vec<u8>),
    /// Longer than the limit; everything up to the next LF was skipped "to avoid loss
    /// of synchronization" (Postfix smtpd_chat.c).
    TooLong,
    /// Ended by LF without CR.
    BareLf,
    /// Holds a CR not followed by LF.
    BareCr,
}

/// Where the next LF is in `buf`, by std's memchr (fast even unoptimised).
pub fn find_lf(buf: &[u8]) -> Option<usize> {
    let mut r = buf;
    match r.skip_until(b'\n') {
        Ok(n) if n > 0 && buf[n - 1] == b'\n' => Some(n - 1),
        _ => None,
    }
}

pub struct Conn {
    stream: Option<BoxStream>,
    /// A peer that stops reading our replies (its receive window full) must not hold
    /// the session in a write forever.
    write_timeout: std::time::Duration,
    buf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
}

impl Conn {
    pub fn new(stream: BoxStream, write_timeout: std::time::Duration) -> Conn {
        Conn {
            stream: Some(stream),
            write_timeout,
            buf: Vec::with_capacity(4096),
            pos: 0,
            out: Vec::with_capacity(1024),
        }
    }

    /// Read-ahead bytes not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Drops every read-ahead byte; returns how many there were.
    pub fn discard_buffered(&mut self) -> usize {
        let n = self.buf.len() - self.pos;
        self.buf.clear();
        self.pos = 0;
        n
    }

    /// Queues a reply.
    pub fn send(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub async fn flush(&mut self) -> Result<(), ConnError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let stream = self.stream.as_mut().ok_or(ConnError::Closed)?;
        let r = tokio::time::timeout(self.write_timeout, async {
            stream.write_all(&self.out).await?;
            stream.flush().await
        })
        .await;
        self.out.clear();
        match r {
            Ok(Ok(())) => Ok(()),
            // Either way the connection is of no further use.
            Ok(Err(_)) | Err(_) => Err(ConnError::Closed),
        }
    }

    /// Flushes pending replies, then reads more bytes (at least one) before `deadline`.
    /// With `shutdown`, also returns when the server stops.
    pub async fn fill(
        &mut self,
        deadline: Instant,
        shutdown: Option<&mut Shutdown>,
    ) -> Result<(), ConnError> {
        self.flush().await?;
        if self.pos > 0 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let stream = self.stream.as_mut().ok_or(ConnError::Closed)?;
        self.buf.reserve(READ_CHUNK);
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut self.buf));
        let outcome = match shutdown {
            Some(s) => tokio::select! {
                r = read => r,
                () = s.triggered() => return Err(ConnError::Shutdown),
            },
            None => read.await,
        };
        match outcome {
            Err(_elapsed) => Err(ConnError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => Err(ConnError::Closed),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// The next command line, at most `max` octets with its CRLF, before `deadline`.
    pub async fn read_line(
        &mut self,
        max: usize,
        deadline: Instant,
        mut shutdown: Option<&mut Shutdown>,
    ) -> Result<Line, ConnError> {
        let mut skipping = false;
        loop {
            if let Some(i) = find_lf(self.buffered()) {
                let line = &self.buf[self.pos..self.pos + i + 1];
                let judged = if skipping || line.len() > max {
                    Line::TooLong
                } else if line.len() < 2 || line[line.len() - 2] != b'\r' {
                    Line::BareLf
                } else if line[..line.len() - 2].contains(&b'\r') {
                    Line::BareCr
                } else {
                    Line::Ok(line[..line.len() - 2].to_vec())
                };
                self.consume(i + 1);
                return Ok(judged);
            }
            if self.buffered().len() > max {
                skipping = true;
                self.discard_buffered();
            }
            self.fill(deadline, shutdown.as_deref_mut()).await?;
        }
    }

    /// Moves exactly `n` bytes out of the connection before `deadline`, appending them
    /// to `sink` when there is one (BDAT chunks, RFC 3030 §2: binary, counted, no
    /// end marker).
    pub async fn read_exact_into(
        &mut self,
        mut n: u64,
        mut sink: Option<&mut Vec<u8>>,
        deadline: Instant,
    ) -> Result<(), ConnError> {
        loop {
            let have = self.buffered().len() as u64;
            let take = have.min(n) as usize;
            if let Some(s) = sink.as_deref_mut() {
                s.extend_from_slice(&self.buffered()[..take]);
            }
            self.consume(take);
            n -= take as u64;
            if n == 0 {
                return Ok(());
            }
            self.fill(deadline, None).await?;
        }
    }

    /// Hands the stream over (STARTTLS); the caller has emptied the read buffer.
    pub fn take_stream(&mut self) -> Option<BoxStream> {
        self.stream.take()
    }

    pub fn set_stream(&mut self, stream: BoxStream) {
        self.stream = Some(stream);
    }

    /// Sends what is queued and closes the write side.
    pub async fn close(&mut self) {
        let _ = self.flush().await;
        if let Some(s) = self.stream.as_mut() {
            let _ = tokio::time::timeout(self.write_timeout, s.shutdown()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::find_lf;

    #[test]
    fn lf() {
        assert_eq!(find_lf(b"abc\r\nx"), Some(4));
        assert_eq!(find_lf(b"abc"), None);
        assert_eq!(find_lf(b""), None);
        assert_eq!(find_lf(b"\n"), Some(0));
    }
}
