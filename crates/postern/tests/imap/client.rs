//! A small, strict IMAP test client over a real socket (plain or TLS): it sends exactly
//! the bytes a test gives it, and reads responses whole — a line ending in `{n}` is
//! followed by n literal bytes and the rest of the line.

use super::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

pub trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

pub struct Client {
    io: BufReader<Box<dyn Io>>,
    next: u32,
    pub greeting: String,
    /// The TCP socket under any TLS or compression, for read timeouts.
    sock: Option<std::net::TcpStream>,
}

/// One tagged command's answer.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Untagged (`* ...`) and continuation (`+ ...`) lines, literals inlined, without CRLF.
    pub untagged: Vec<String>,
    /// `OK`, `NO` or `BAD`.
    pub status: String,
    /// The tagged line after the status (response code included), without CRLF.
    pub text: String,
}

impl Resp {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.status, "OK", "expected OK: {self:#?}");
        self
    }
    pub fn no(&self) -> &Self {
        assert_eq!(self.status, "NO", "expected NO: {self:#?}");
        self
    }
    pub fn bad(&self) -> &Self {
        assert_eq!(self.status, "BAD", "expected BAD: {self:#?}");
        self
    }
    /// Untagged lines starting with `prefix` (e.g. `"* LIST"`).
    pub fn lines(&self, prefix: &str) -> Vec<&str> {
        self.untagged
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(|s| s.as_str())
            .collect()
    }
    pub fn has(&self, needle: &str) -> bool {
        self.untagged.iter().any(|l| l.contains(needle))
    }
}

impl Client {
    pub fn over(io: Box<dyn Io>) -> Client {
        let mut c = Client {
            io: BufReader::new(io),
            next: 1,
            greeting: String::new(),
            sock: None,
        };
        c.greeting = c.read_response_line();
        c
    }

    /// Plain TCP to `addr`, greeting read.
    pub fn connect(addr: SocketAddr) -> Client {
        let tcp = connect(addr);
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        let sock = tcp.try_clone().unwrap();
        let mut c = Client::over(Box::new(tcp));
        c.sock = Some(sock);
        c
    }

    /// Implicit TLS (port 993 style), trusting the server's certificate.
    pub fn connect_tls(addr: SocketAddr, cert: &std::path::Path) -> Client {
        let tls = tls_connect(addr, cert, HOSTNAME);
        tls.sock.set_read_timeout(Some(PATIENCE)).unwrap();
        let sock = tls.sock.try_clone().unwrap();
        let mut c = Client::over(Box::new(tls));
        c.sock = Some(sock);
        c
    }

    /// Same stream, another layer (TLS, deflate): nothing read ahead may be lost.
    fn rewrap(self, wrap: impl FnOnce(Box<dyn Io>) -> Box<dyn Io>) -> Client {
        assert!(
            self.io.buffer().is_empty(),
            "bytes after the last response: {:?}",
            String::from_utf8_lossy(self.io.buffer())
        );
        Client {
            io: BufReader::new(wrap(self.io.into_inner())),
            next: self.next,
            greeting: self.greeting,
            sock: self.sock,
        }
    }

    /// After a tagged OK to STARTTLS: the TLS handshake over this connection, trusting
    /// only `cert` for [`HOSTNAME`].
    pub fn start_tls(self, cert: &std::path::Path) -> Client {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(HOSTNAME.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        self.rewrap(|io| {
            let mut tls = rustls::StreamOwned::new(conn, io);
            while tls.conn.is_handshaking() {
                tls.conn
                    .complete_io(&mut tls.sock)
                    .unwrap_or_else(|e| panic!("STARTTLS handshake: {e}"));
            }
            Box::new(tls)
        })
    }

    /// After a tagged OK to COMPRESS DEFLATE: raw deflate (RFC 4978) both ways.
    pub fn start_deflate(self) -> Client {
        self.rewrap_keeping(|io| Box::new(Deflated::new(io)))
    }

    /// [`Client::start_deflate`] going on with a compressor that has already sent
    /// something (commands pipelined behind COMPRESS).
    pub fn start_deflate_with(self, comp: flate2::Compress) -> Client {
        self.rewrap_keeping(|io| {
            let mut d = Deflated::new(io);
            d.comp = comp;
            Box::new(d)
        })
    }

    /// Like [`Client::rewrap`], but bytes already read past the last response are the
    /// new layer's first input (compressed data the server sent right after its OK to
    /// COMPRESS may arrive in the same read; unlike after STARTTLS, that is legitimate).
    fn rewrap_keeping(self, wrap: impl FnOnce(Box<dyn Io>) -> Box<dyn Io>) -> Client {
        let pending = self.io.buffer().to_vec();
        Client {
            io: BufReader::new(wrap(Box::new(Prefixed {
                pending: std::io::Cursor::new(pending),
                inner: self.io.into_inner(),
            }))),
            next: self.next,
            greeting: self.greeting,
            sock: self.sock,
        }
    }

    pub fn tag(&mut self) -> String {
        let t = format!("t{}", self.next);
        self.next += 1;
        t
    }

    /// Writes bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let w = self.io.get_mut();
        w.write_all(bytes).unwrap();
        w.flush().unwrap();
    }

    /// Writes bytes as they are; false when the server has closed the connection (a
    /// write error is fine: the server may close meanwhile).
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> bool {
        let w = self.io.get_mut();
        w.write_all(bytes).is_ok() && w.flush().is_ok()
    }

    /// The next response line, or `None` when the connection has closed.
    pub fn try_read_line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        match self.io.read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => Some(
                String::from_utf8_lossy(&line)
                    .trim_end_matches("\r\n")
                    .to_string(),
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("no response line and no close within the read timeout")
            }
            Err(_) => None,
        }
    }

    /// One response line with any literals it announces, without the final CRLF.
    pub fn read_response_line(&mut self) -> String {
        let mut out: Vec<u8> = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self.io.read_until(b'\n', &mut line).unwrap_or_else(|e| {
                panic!(
                    "reading a response line: {e}; so far {:?}",
                    String::from_utf8_lossy(&out)
                )
            });
            assert!(
                n > 0,
                "connection closed; so far {:?}",
                String::from_utf8_lossy(&out)
            );
            assert!(
                line.ends_with(b"\r\n"),
                "line without CRLF: {:?}",
                String::from_utf8_lossy(&line)
            );
            line.truncate(line.len() - 2);
            let lit = literal_len(&line);
            out.extend_from_slice(&line);
            match lit {
                Some(len) => {
                    out.extend_from_slice(b"\r\n");
                    let mut data = vec![0u8; len];
                    self.io.read_exact(&mut data).unwrap();
                    out.extend_from_slice(&data);
                }
                None => break,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads until the line tagged `tag`.
    pub fn read_until_tagged(&mut self, tag: &str) -> Resp {
        let mut untagged = Vec::new();
        loop {
            let line = self.read_response_line();
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
                return Resp {
                    untagged,
                    status: status.to_string(),
                    text: text.to_string(),
                };
            }
            untagged.push(line);
        }
    }

    /// Sends `TAG command\r\n` (the command may hold literals with LITERAL+ `{n+}`) and
    /// reads the answer.
    pub fn cmd(&mut self, command: &str) -> Resp {
        self.cmd_bytes(command.as_bytes())
    }

    pub fn cmd_bytes(&mut self, command: &[u8]) -> Resp {
        let tag = self.tag();
        let mut line = format!("{tag} ").into_bytes();
        line.extend_from_slice(command);
        line.extend_from_slice(b"\r\n");
        self.send_raw(&line);
        self.read_until_tagged(&tag)
    }

    /// LOGIN (needs `auth.allow_plaintext_on_loopback` on a plain connection).
    pub fn login(&mut self, user: &str, pass: &str) -> Resp {
        let r = self.cmd(&format!("LOGIN \"{user}\" \"{pass}\""));
        r.ok();
        r
    }

    /// APPEND with a LITERAL+ literal; returns the tagged response.
    pub fn append(&mut self, mailbox: &str, flags: &str, msg: &[u8]) -> Resp {
        let mut c = format!("APPEND \"{mailbox}\" ").into_bytes();
        if !flags.is_empty() {
            c.extend_from_slice(format!("({flags}) ").as_bytes());
        }
        c.extend_from_slice(format!("{{{}+}}\r\n", msg.len()).as_bytes());
        c.extend_from_slice(msg);
        self.cmd_bytes(&c)
    }

    /// Another handle on the TCP socket under any TLS or compression (for writing from
    /// a second thread while this one reads).
    pub fn raw_socket(&self) -> std::net::TcpStream {
        self.sock
            .as_ref()
            .expect("a client made by connect or connect_tls")
            .try_clone()
            .unwrap()
    }

    /// Read timeout of the underlying socket (default [`PATIENCE`]).
    pub fn set_timeout(&mut self, d: Duration) {
        self.sock
            .as_ref()
            .expect("a client made by connect or connect_tls")
            .set_read_timeout(Some(d))
            .unwrap();
    }

    /// True when the server has closed the connection (EOF or reset) — nothing more
    /// arrives; panics when a line arrives instead, or nothing within the timeout.
    pub fn closed(&mut self) -> bool {
        let mut b = Vec::new();
        match self.io.read_until(b'\n', &mut b) {
            Ok(0) => true,
            Ok(_) => panic!(
                "expected the connection to close, got {:?}",
                String::from_utf8_lossy(&b)
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the connection stayed open")
            }
            Err(_) => true,
        }
    }

    /// Reads whatever arrives until the server closes (after BYE).
    pub fn read_to_close(&mut self) -> String {
        let mut v = Vec::new();
        let _ = self.io.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// A stream whose first bytes were already read from it.
struct Prefixed {
    pending: std::io::Cursor<Vec<u8>>,
    inner: Box<dyn Io>,
}

impl Read for Prefixed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.pending.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl Write for Prefixed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// COMPRESS=DEFLATE on the client side: each write is compressed and sync-flushed, reads
/// are inflated; no zlib header (RFC 4978 §4).
struct Deflated {
    inner: Box<dyn Io>,
    comp: flate2::Compress,
    decomp: flate2::Decompress,
    raw: Vec<u8>,
    plain: Vec<u8>,
    pos: usize,
}

impl Deflated {
    fn new(inner: Box<dyn Io>) -> Deflated {
        Deflated {
            inner,
            comp: flate2::Compress::new(flate2::Compression::default(), false),
            decomp: flate2::Decompress::new(false),
            raw: Vec::new(),
            plain: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for Deflated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.plain.len() {
            self.plain.clear();
            self.pos = 0;
            if !self.raw.is_empty() {
                let mut out = Vec::with_capacity(64 * 1024);
                let before = self.decomp.total_in();
                self.decomp
                    .decompress_vec(&self.raw, &mut out, flate2::FlushDecompress::Sync)
                    .map_err(std::io::Error::other)?;
                let used = (self.decomp.total_in() - before) as usize;
                self.raw.drain(..used);
                self.plain = out;
                if !self.plain.is_empty() {
                    break;
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.inner.read(&mut chunk)?;
            if n == 0 {
                return Ok(0);
            }
            self.raw.extend_from_slice(&chunk[..n]);
        }
        let n = buf.len().min(self.plain.len() - self.pos);
        buf[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Deflated {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 64);
        let mut input = buf;
        loop {
            out.reserve(input.len() + 1024);
            let before = self.comp.total_in();
            self.comp
                .compress_vec(input, &mut out, flate2::FlushCompress::Sync)
                .map_err(std::io::Error::other)?;
            input = &input[(self.comp.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `{n}` or `~{n}` at the end of a response line.
fn literal_len(line: &[u8]) -> Option<usize> {
    if !line.ends_with(b"}") {
        return None;
    }
    let open = line.iter().rposition(|b| *b == b'{')?;
    std::str::from_utf8(&line[open + 1..line.len() - 1])
        .ok()?
        .parse()
        .ok()
}

/// A running server with two accounts, alice@example.com and bob@example.com
/// (passwords `alice-password` / `bob-password`), LOGIN allowed on loopback.
pub struct Env {
    pub server: Server,
}

pub const ALICE: (&str, &str) = ("alice@example.com", "alice-password");
pub const BOB: (&str, &str) = ("bob@example.com", "bob-password");

impl Env {
    pub fn start() -> Env {
        Env::start_with("")
    }

    pub fn start_with(extra: &str) -> Env {
        let mut toml = String::from("[auth]\nallow_plaintext_on_loopback = true\n");
        toml.push_str(extra);
        Env::accounts(Server::start_with(&toml))
    }

    /// Like [`Env::start_with`], but LOGIN/AUTHENTICATE need TLS even on loopback (the
    /// default configuration): `extra` must not hold an `[auth]` table.
    pub fn start_strict(extra: &str) -> Env {
        let mut toml = String::from("[auth]\nallow_plaintext_on_loopback = false\n");
        toml.push_str(extra);
        Env::accounts(Server::start_with(&toml))
    }

    fn accounts(server: Server) -> Env {
        server.cli_ok(&["domain", "add", "example.com"], "");
        server.cli_ok(&["account", "add", ALICE.0], format!("{}\n", ALICE.1));
        server.cli_ok(&["account", "add", BOB.0], format!("{}\n", BOB.1));
        Env { server }
    }

    /// A plain connection to the IMAP listener, not logged in.
    pub fn connect(&self) -> Client {
        Client::connect(self.server.addr("imap"))
    }

    /// Logged in as `who`.
    pub fn login(&self, who: (&str, &str)) -> Client {
        let mut c = self.connect();
        c.login(who.0, who.1);
        c
    }

    /// Imports an mbox into an account's mailbox with the CLI.
    pub fn import(&self, address: &str, mailbox: Option<&str>, mbox: &[u8]) {
        let mut args = vec!["mailbox", "import", address];
        if let Some(m) = mailbox {
            args.push("--mailbox");
            args.push(m);
        }
        self.server.cli_ok(&args, mbox);
    }
}

/// One message as an mbox (From_ line + bytes, `From ` lines in the body quoted).
#[allow(dead_code)] // used by imap_clients.rs, not by every test binary
pub fn mbox_of(messages: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(b"From sender@example.org Mon Jan  1 00:00:00 2024\n");
        for line in m.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(b"From ") {
                out.push(b'>');
            }
            out.extend_from_slice(line);
        }
        if !m.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}
