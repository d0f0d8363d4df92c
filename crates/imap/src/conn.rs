//! The connection's byte stream: a read-ahead buffer the command parser works on, an
//! output buffer flushed before the session blocks on the socket, and COMPRESS=DEFLATE
//! (RFC 4978) once negotiated.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use postern_net::{BoxStream, Shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;
/// How long [`Conn::close`] keeps reading after our last reply, and how much.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 4 * 1024 * 1024;
/// Output is written out once this much is queued, so a large FETCH streams.
pub const FLUSH_AT: usize = 256 * 1024;

#[derive(Debug)]
pub enum ConnError {
    /// The peer closed the connection (or it broke).
    Closed,
    /// The deadline passed before bytes arrived.
    Timeout,
    /// The server is stopping.
    Shutdown,
}

struct Deflate {
    comp: Compress,
    decomp: Decompress,
    /// Compressed bytes read from the socket, not yet inflated.
    raw_in: Vec<u8>,
}

pub struct Conn {
    stream: Option<BoxStream>,
    write_timeout: std::time::Duration,
    buf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    deflate: Option<Box<Deflate>>,
}

impl Conn {
    pub fn new(stream: BoxStream, write_timeout: std::time::Duration) -> Conn {
        Conn {
            stream: Some(stream),
            write_timeout,
            buf: Vec::with_capacity(4096),
            pos: 0,
            out: Vec::with_capacity(4096),
            deflate: None,
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

    pub fn send(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub fn pending_out(&self) -> usize {
        self.out.len()
    }

    pub async fn flush(&mut self) -> Result<(), ConnError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let data = match self.deflate.as_mut() {
            Some(d) => {
                let mut z = Vec::with_capacity(self.out.len() / 2 + 64);
                let mut input: &[u8] = &self.out;
                loop {
                    z.reserve(input.len() / 2 + 4096);
                    let (before_in, before_out) = (d.comp.total_in(), d.comp.total_out());
                    d.comp
                        .compress_vec(input, &mut z, FlushCompress::Sync)
                        .map_err(|_| ConnError::Closed)?;
                    let used = (d.comp.total_in() - before_in) as usize;
                    let made = d.comp.total_out() - before_out;
                    input = &input[used.min(input.len())..];
                    // The sync flush is complete when all input is taken and the output
                    // did not fill the room it had.
                    if (input.is_empty() && z.len() < z.capacity()) || (used == 0 && made == 0) {
                        break;
                    }
                }
                z
            }
            None => std::mem::take(&mut self.out),
        };
        self.out.clear();
        let stream = self.stream.as_mut().ok_or(ConnError::Closed)?;
        let r = tokio::time::timeout(self.write_timeout, async {
            stream.write_all(&data).await?;
            stream.flush().await
        })
        .await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(ConnError::Closed),
        }
    }

    /// Flushes pending output, then reads more bytes (at least one) before `deadline`,
    /// or returns when the server stops or `wake` resolves (IDLE's change notices).
    pub async fn fill(
        &mut self,
        deadline: Instant,
        shutdown: &mut Shutdown,
    ) -> Result<(), ConnError> {
        self.flush().await?;
        if self.pos > 0 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        loop {
            if let Some(d) = self.deflate.as_mut() {
                let before = self.buf.len();
                inflate_into(d, &mut self.buf)?;
                if self.buf.len() > before {
                    return Ok(());
                }
            }
            let stream = self.stream.as_mut().ok_or(ConnError::Closed)?;
            let mut chunk = Vec::with_capacity(READ_CHUNK);
            let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut chunk));
            let outcome = tokio::select! {
                r = read => r,
                () = shutdown.triggered() => return Err(ConnError::Shutdown),
            };
            match outcome {
                Err(_elapsed) => return Err(ConnError::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(ConnError::Closed),
                Ok(Ok(_)) => {}
            }
            match self.deflate.as_mut() {
                None => {
                    self.buf.extend_from_slice(&chunk);
                    return Ok(());
                }
                Some(d) => {
                    d.raw_in.extend_from_slice(&chunk);
                    // Compressed input that inflates to nothing cannot grow forever.
                    if d.raw_in.len() > 4 * READ_CHUNK {
                        return Err(ConnError::Closed);
                    }
                }
            }
        }
    }

    /// Starts COMPRESS=DEFLATE (RFC 4978: raw deflate, both directions); the caller has
    /// flushed the tagged OK first. Bytes already buffered were sent compressed after
    /// the command: they are inflated now.
    pub fn start_deflate(&mut self) -> Result<(), ConnError> {
        let mut d = Box::new(Deflate {
            comp: Compress::new(Compression::fast(), false),
            decomp: Decompress::new(false),
            raw_in: Vec::new(),
        });
        let rest = self.buf.split_off(self.pos);
        self.buf.clear();
        self.pos = 0;
        d.raw_in = rest;
        inflate_into(&mut d, &mut self.buf)?;
        self.deflate = Some(d);
        Ok(())
    }

    pub fn compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Hands the stream over (STARTTLS); the caller has emptied the read buffer.
    pub fn take_stream(&mut self) -> Option<BoxStream> {
        self.stream.take()
    }

    pub fn set_stream(&mut self, stream: BoxStream) {
        self.stream = Some(stream);
    }

    /// Sends what is queued and closes the write side.
    /// Sends what is queued, closes the write side, then reads and drops what the peer
    /// still sends for a moment (at most [`LINGER_BYTES`] in [`LINGER`]): closing a socket
    /// with unread input makes the kernel send RST, which can destroy our last reply
    /// (the BYE saying why) before the peer reads it.
    pub async fn close(&mut self) {
        let _ = self.flush().await;
        if let Some(s) = self.stream.as_mut() {
            let _ = tokio::time::timeout(self.write_timeout, s.shutdown()).await;
            let _ = tokio::time::timeout(LINGER, async {
                let mut sink = vec![0u8; 16 * 1024];
                let mut total = 0usize;
                while total < LINGER_BYTES {
                    match s.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
            })
            .await;
        }
    }
}

/// Most bytes one [`Conn::fill`] inflates: a deflate bomb (a few KB that inflate to
/// gigabytes) grows the buffer by at most this much per fill, and the session judges
/// every fill against its line and literal limits before asking for more.
const INFLATE_PER_FILL: usize = 4 * READ_CHUNK;

/// Inflates from `d.raw_in` onto `buf`, at most [`INFLATE_PER_FILL`] bytes.
fn inflate_into(d: &mut Deflate, buf: &mut Vec<u8>) -> Result<(), ConnError> {
    let limit = buf.len() + INFLATE_PER_FILL;
    while !d.raw_in.is_empty() && buf.len() < limit {
        // decompress_vec writes only into spare capacity: this bounds each pass.
        buf.reserve(READ_CHUNK.min(limit - buf.len()));
        let room = (limit - buf.len()).min(buf.capacity() - buf.len());
        let mut out = Vec::with_capacity(room);
        let before_in = d.decomp.total_in();
        let status = d
            .decomp
            .decompress_vec(&d.raw_in, &mut out, FlushDecompress::Sync)
            .map_err(|_| ConnError::Closed)?;
        // RFC 4978: the stream never ends while the connection lives; bytes after its
        // end could never be inflated and would only pile up.
        if status == flate2::Status::StreamEnd {
            return Err(ConnError::Closed);
        }
        let used = (d.decomp.total_in() - before_in) as usize;
        d.raw_in.drain(..used.min(d.raw_in.len()));
        let made = out.len();
        buf.extend_from_slice(&out);
        if used == 0 && made == 0 {
            break;
        }
    }
    Ok(())
}
