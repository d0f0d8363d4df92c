//! The SMTP client: one session to one host (RFC 5321 §3, §4), with STARTTLS (RFC 3207)
//! under a TLS policy (opportunistic, PKIX-verified for MTA-STS, DANE), PIPELINING
//! (RFC 2920) for the envelope, SIZE (RFC 1870), 8BITMIME/SMTPUTF8 flags, DSN parameters
//! (RFC 3461) and REQUIRETLS (RFC 8689).
//!
//! Replies are parsed with `smtp-proto` (EHLO keywords, enhanced status codes); reading,
//! limits, timeouts and the data stream are ours. The data stream never carries a bare CR
//! or LF: every line end goes out as CRLF and lines starting with `.` are doubled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

use crate::tls::TlsPolicy;

/// Longest reply line we read (RFC 5321 §4.5.3.1.5 says 512 octets; servers send longer
/// text, so we allow more but never unbounded).
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one (multi-line) reply.
pub const MAX_REPLY_LINES: usize = 128;
/// Characters of a reply's text kept (it goes into the queue, the ledger and DSNs).
pub const MAX_REPLY_TEXT: usize = 1000;

#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The name we give in EHLO.
    pub helo_name: String,
    pub connect_timeout: Duration,
    /// Per command reply (RFC 5321 §4.5.3.2 suggests 5 minutes).
    pub command_timeout: Duration,
    /// The reply to the end of data (RFC 5321 §4.5.3.2.6: 10 minutes), and per block
    /// written.
    pub data_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            helo_name: "localhost".into(),
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
        }
    }
}

/// One server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The enhanced status code (RFC 3463) when the server gave one.
    pub status: Option<[u8; 3]>,
    /// All lines, joined with a space, without the codes.
    pub text: String,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
    /// `x.y.z`: the server's enhanced code, or one derived from the basic code.
    pub fn status_code(&self) -> String {
        match self.status {
            Some([a, b, c]) => format!("{a}.{b}.{c}"),
            None if self.is_permanent() => "5.0.0".into(),
            None if self.is_transient() => "4.0.0".into(),
            None => "2.0.0".into(),
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some([a, b, c]) => write!(f, "{} {a}.{b}.{c} {}", self.code, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

/// What happened to one recipient in this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered(Reply),
    /// Try again later (4xx, or the session broke after RCPT).
    Temporary {
        status: String,
        reason: String,
    },
    /// Give up and bounce (5xx).
    Permanent {
        status: String,
        reason: String,
    },
}

impl Outcome {
    fn from_reply(reply: &Reply) -> Outcome {
        let reason = reply.to_string();
        if reply.is_permanent() {
            Outcome::Permanent {
                status: reply.status_code(),
                reason,
            }
        } else {
            Outcome::Temporary {
                status: reply.status_code(),
                reason,
            }
        }
    }
}

/// The session could not get as far as a transaction: the caller tries the next host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SessionFailure {
    /// RFC 3463 status for the DSN if every host fails this way.
    pub status: String,
    pub reason: String,
    /// True when this host can never take the message (REQUIRETLS refused, SIZE
    /// exceeded, no SMTPUTF8): another host may, and if none does it bounces.
    pub permanent: bool,
    /// The TLS handshake failed (opportunistic TLS may try again in plaintext).
    pub tls_failed: bool,
}

impl SessionFailure {
    fn temp(status: &str, reason: impl Into<String>) -> Self {
        SessionFailure {
            status: status.into(),
            reason: reason.into(),
            permanent: false,
            tls_failed: false,
        }
    }
    fn perm(status: &str, reason: impl Into<String>) -> Self {
        SessionFailure {
            permanent: true,
            ..SessionFailure::temp(status, reason)
        }
    }
    fn tls(reason: impl Into<String>) -> Self {
        SessionFailure {
            tls_failed: true,
            ..SessionFailure::temp("4.7.5", reason)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Recipient {
    pub address: String,
    /// RFC 3461 NOTIFY value as given by the sender (`SUCCESS,FAILURE`, `NEVER`, …).
    pub notify: Option<String>,
    /// RFC 3461 ORCPT, `addr-type;xtext`.
    pub orcpt: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Transaction<'a> {
    /// Reverse-path without brackets; "" for `<>`.
    pub mail_from: &'a str,
    pub recipients: &'a [Recipient],
    /// The message as stored (any line ends); it goes out as CRLF, dot-stuffed.
    pub message: &'a [u8],
    /// The message needs 8BITMIME (its body has octets above 127).
    pub eight_bit: bool,
    /// The envelope or header needs SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// RFC 8689: only over verified TLS to a server that offers REQUIRETLS.
    pub requiretls: bool,
    /// RFC 3461 RET (`FULL` / `HDRS`) and ENVID, passed on when the server offers DSN.
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
}

/// What the session learned about the TLS it used, for the ledger and the DSN.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionInfo {
    pub tls: bool,
    /// The TLS policy authenticated the server (PKIX name or TLSA match).
    pub tls_verified: bool,
    pub remote_host: String,
    /// The server offered DSN (RFC 3461): NOTIFY went on with the recipients, and a
    /// success notice is the next hop's to send.
    pub dsn: bool,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// While the TCP stream is inside the TLS handshake; never read or written.
    Gone,
}

fn gone() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "connection lost in STARTTLS",
    )
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Gone => Err(gone()),
        }
    }
    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::Tls(s) => s.write_all(buf).await,
            Stream::Gone => Err(gone()),
        }
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush().await,
            Stream::Tls(s) => s.flush().await,
            Stream::Gone => Err(gone()),
        }
    }
}

struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    settings: ClientSettings,
}

fn io_failure(what: &str, e: impl std::fmt::Display) -> SessionFailure {
    SessionFailure::temp("4.4.2", format!("{what}: {e}"))
}

impl Conn {
    /// One line (without CRLF), bounded.
    async fn line(&mut self, deadline: tokio::time::Instant) -> Result<Vec<u8>, SessionFailure> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_REPLY_LINE {
                return Err(SessionFailure::temp(
                    "4.5.0",
                    "reply line longer than we accept",
                ));
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => {
                    return Err(SessionFailure::temp(
                        "4.4.2",
                        "timed out waiting for a reply",
                    ));
                }
                Ok(Err(e)) => return Err(io_failure("reading a reply", e)),
                Ok(Ok(0)) => {
                    return Err(SessionFailure::temp(
                        "4.4.2",
                        "the server closed the connection",
                    ));
                }
                Ok(Ok(n)) => n,
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A whole reply: lines `NNN-text` up to the last `NNN text`. Also returns the raw
    /// lines, which EHLO parsing needs.
    /// `wait` bounds the whole reply, however many lines it has.
    async fn reply_raw(&mut self, wait: Duration) -> Result<(Reply, Vec<u8>), SessionFailure> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut raw = Vec::new();
        let mut code = None;
        let mut texts = Vec::new();
        for _ in 0..MAX_REPLY_LINES {
            let line = self.line(deadline).await?;
            raw.extend_from_slice(&line);
            raw.extend_from_slice(b"\r\n");
            let digits = line.get(..3).filter(|d| d.iter().all(u8::is_ascii_digit));
            let Some(digits) = digits else {
                return Err(SessionFailure::temp(
                    "4.5.0",
                    "malformed reply from the server",
                ));
            };
            let c = digits
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
            if *code.get_or_insert(c) != c || !(200..600).contains(&c) {
                return Err(SessionFailure::temp(
                    "4.5.0",
                    "malformed reply from the server",
                ));
            }
            let sep = line.get(3).copied();
            texts.push(String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned());
            match sep {
                Some(b'-') => continue,
                Some(b' ') | None => {
                    let reply = parse_reply(c, &raw, &texts);
                    return Ok((reply, raw));
                }
                _ => {
                    return Err(SessionFailure::temp(
                        "4.5.0",
                        "malformed reply from the server",
                    ));
                }
            }
        }
        Err(SessionFailure::temp("4.5.0", "reply with too many lines"))
    }

    async fn reply(&mut self) -> Result<Reply, SessionFailure> {
        let wait = self.settings.command_timeout;
        Ok(self.reply_raw(wait).await?.0)
    }

    async fn send(&mut self, line: &str) -> Result<(), SessionFailure> {
        let wait = self.settings.command_timeout;
        match timeout(wait, async {
            self.stream.write_all(line.as_bytes()).await?;
            self.stream.flush().await
        })
        .await
        {
            Err(_) => Err(SessionFailure::temp("4.4.2", "timed out sending a command")),
            Ok(Err(e)) => Err(io_failure("sending a command", e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn command(&mut self, line: &str) -> Result<Reply, SessionFailure> {
        self.send(line).await?;
        self.reply().await
    }
}

/// The enhanced status code from a reply, through smtp-proto's reply parser.
fn parse_reply(code: u16, raw: &[u8], texts: &[String]) -> Reply {
    let mut receiver = smtp_proto::response::parser::ResponseReceiver::default();
    let status = receiver
        .parse(&mut raw.iter())
        .ok()
        .map(|r| r.esc)
        .filter(|esc| esc[0] != 0 && u16::from(esc[0]) == code / 100);
    let text = texts
        .iter()
        .map(|t| {
            // Drop the enhanced code at the start of each line; it is kept in `status`.
            match status {
                Some([a, b, c]) => t
                    .strip_prefix(&format!("{a}.{b}.{c}"))
                    .map(str::trim_start)
                    .unwrap_or(t)
                    .to_string(),
                None => t.clone(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    Reply {
        code,
        status,
        text: text
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_REPLY_TEXT)
            .collect(),
    }
}

/// What EHLO told us.
#[derive(Debug, Clone, Default)]
struct Extensions {
    caps: u32,
    size: usize,
}

impl Extensions {
    fn has(&self, cap: u32) -> bool {
        self.caps & cap != 0
    }
}

async fn ehlo(conn: &mut Conn) -> Result<Extensions, SessionFailure> {
    let helo = conn.settings.helo_name.clone();
    conn.send(&format!("EHLO {helo}\r\n")).await?;
    let wait = conn.settings.command_timeout;
    let (reply, raw) = conn.reply_raw(wait).await?;
    if reply.code == 250 {
        let parsed = smtp_proto::EhloResponse::<String>::parse(&mut raw.iter());
        return Ok(match parsed {
            Ok(e) => Extensions {
                caps: e.capabilities,
                size: e.size,
            },
            // An EHLO answer smtp-proto cannot read: go on without extensions.
            Err(_) => Extensions::default(),
        });
    }
    if reply.is_permanent() {
        // RFC 5321 §4.1.4: a server that does not know EHLO gets HELO.
        let reply = conn.command(&format!("HELO {helo}\r\n")).await?;
        if reply.code == 250 {
            return Ok(Extensions::default());
        }
        return Err(SessionFailure::temp(
            &reply.status_code(),
            format!("HELO refused: {reply}"),
        ));
    }
    Err(SessionFailure::temp(
        &reply.status_code(),
        format!("EHLO refused: {reply}"),
    ))
}

/// The data stream: CRLF line ends, dot-stuffed (RFC 5321 §4.5.2), ending in CRLF.CRLF.
pub fn wire_data(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 8);
    let mut at_line_start = true;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if message.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                at_line_start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Refuses a parameter value or address that would break the command line.
fn clean(s: &str) -> bool {
    !s.bytes()
        .any(|b| b < 0x20 || b == 0x7f || b == b'<' || b == b'>')
}

/// Runs one session against `addr` (named `host` for SNI and certificate checks) and sends
/// the transaction. `Err` means no transaction happened (try the next host); `Ok` has one
/// outcome per recipient, in order.
pub async fn deliver(
    settings: &ClientSettings,
    host: &str,
    addr: SocketAddr,
    policy: &TlsPolicy,
    tx: &Transaction<'_>,
) -> Result<(Vec<Outcome>, SessionInfo), SessionFailure> {
    if !clean(tx.mail_from) || tx.recipients.iter().any(|r| !clean(&r.address)) {
        return Err(SessionFailure::perm(
            "5.1.3",
            "an envelope address holds characters SMTP cannot carry",
        ));
    }
    let stream = match timeout(settings.connect_timeout, TcpStream::connect(addr)).await {
        Err(_) => {
            return Err(SessionFailure::temp(
                "4.4.1",
                format!("connecting to {addr}: timed out"),
            ));
        }
        Ok(Err(e)) => {
            return Err(SessionFailure::temp(
                "4.4.1",
                format!("connecting to {addr}: {e}"),
            ));
        }
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        stream: Stream::Plain(stream),
        buf: Vec::new(),
        settings: settings.clone(),
    };
    let mut info = SessionInfo {
        remote_host: host.to_string(),
        ..SessionInfo::default()
    };
    let result = session(&mut conn, host, policy, tx, &mut info).await;
    // QUIT politely, but a server that does not answer costs us nothing more.
    let quit = async {
        if conn.send("QUIT\r\n").await.is_ok() {
            let _ = conn.reply().await;
        }
    };
    let _ = timeout(Duration::from_secs(5), quit).await;
    result.map(|outcomes| (outcomes, info))
}

async fn session(
    conn: &mut Conn,
    host: &str,
    policy: &TlsPolicy,
    tx: &Transaction<'_>,
    info: &mut SessionInfo,
) -> Result<Vec<Outcome>, SessionFailure> {
    let greeting = conn.reply().await?;
    if greeting.code != 220 {
        // Even a 5xx greeting is this host's state, not the message's: the next host
        // is tried, and the message waits (RFC 5321 §3.1).
        return Err(SessionFailure::temp(
            &greeting.status_code(),
            format!("greeting: {greeting}"),
        ));
    }
    let mut ext = ehlo(conn).await?;

    if !matches!(policy, TlsPolicy::Plain) {
        if ext.has(smtp_proto::EXT_START_TLS) {
            let reply = conn.command("STARTTLS\r\n").await?;
            if reply.code != 220 {
                if policy.requires_tls() {
                    return Err(SessionFailure::temp(
                        "4.7.5",
                        format!("STARTTLS refused and TLS is required: {reply}"),
                    ));
                }
            } else {
                // RFC 3207 §5 / CVE-2011-0411: anything the server sent after its 220 was
                // sent in plaintext and must not be read as if it came over TLS.
                if !conn.buf.is_empty() {
                    return Err(SessionFailure::temp(
                        "4.7.0",
                        "the server sent data after 220 to STARTTLS",
                    ));
                }
                let config = policy
                    .client_config()
                    .map_err(|e| SessionFailure::temp("4.7.5", format!("TLS set-up: {e}")))?;
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let name = ServerName::try_from(host.to_string()).map_err(|e| {
                    SessionFailure::temp("4.7.5", format!("server name {host}: {e}"))
                })?;
                let Stream::Plain(plain) = std::mem::replace(&mut conn.stream, Stream::Gone) else {
                    return Err(SessionFailure::temp("4.7.0", "STARTTLS twice"));
                };
                let tls = timeout(
                    conn.settings.command_timeout,
                    connector.connect(name, plain),
                )
                .await
                .map_err(|_| SessionFailure::tls("TLS handshake timed out"))?
                .map_err(|e| SessionFailure::tls(format!("TLS handshake: {e}")))?;
                conn.stream = Stream::Tls(Box::new(tls));
                info.tls = true;
                info.tls_verified = policy.authenticates();
                // RFC 3207 §4.2: forget what EHLO said before TLS.
                ext = ehlo(conn).await?;
            }
        } else if policy.requires_tls() {
            return Err(SessionFailure::temp(
                "4.7.5",
                "the server does not offer STARTTLS and the TLS policy requires it",
            ));
        }
    }

    if tx.requiretls && !(info.tls_verified && ext.has(smtp_proto::EXT_REQUIRE_TLS)) {
        // RFC 8689 §4.2.1: no verified TLS or no REQUIRETLS at the next hop → not sent.
        return Err(SessionFailure::perm(
            "5.7.30",
            "REQUIRETLS: the next hop does not offer REQUIRETLS over verified TLS",
        ));
    }
    let size = tx.message.len();
    if ext.size > 0 && size > ext.size {
        return Err(SessionFailure::perm(
            "5.3.4",
            format!(
                "message of {size} octets is over the server's SIZE {}",
                ext.size
            ),
        ));
    }
    // RFC 6531 §3.4: only mail that needs it (non-ASCII in the envelope or the header)
    // asks for SMTPUTF8; the client's flag alone does not make ASCII mail undeliverable.
    let needs_utf8 = tx.smtputf8
        && (!tx.mail_from.is_ascii()
            || tx.recipients.iter().any(|r| !r.address.is_ascii())
            || !crate::dsn::header_of(tx.message).is_ascii());
    if needs_utf8 && !ext.has(smtp_proto::EXT_SMTP_UTF8) {
        // RFC 6531 §3.4: no downgrade; the message cannot be sent to this server.
        return Err(SessionFailure::perm(
            "5.6.7",
            "the message needs SMTPUTF8 and the server does not offer it",
        ));
    }

    let dsn = ext.has(smtp_proto::EXT_DSN);
    info.dsn = dsn;
    let mut mail = format!("MAIL FROM:<{}>", tx.mail_from);
    if ext.has(smtp_proto::EXT_SIZE) {
        mail.push_str(&format!(" SIZE={size}"));
    }
    if tx.eight_bit && ext.has(smtp_proto::EXT_8BIT_MIME) {
        mail.push_str(" BODY=8BITMIME");
    }
    if needs_utf8 {
        mail.push_str(" SMTPUTF8");
    }
    if tx.requiretls {
        mail.push_str(" REQUIRETLS");
    }
    if dsn {
        if let Some(ret) = tx.ret.filter(|r| matches!(*r, "FULL" | "HDRS")) {
            mail.push_str(&format!(" RET={ret}"));
        }
        if let Some(envid) = tx.envid.filter(|e| clean(e) && !e.contains(' ')) {
            mail.push_str(&format!(" ENVID={envid}"));
        }
    }
    mail.push_str("\r\n");
    let mut rcpts = Vec::with_capacity(tx.recipients.len());
    for r in tx.recipients {
        let mut line = format!("RCPT TO:<{}>", r.address);
        if dsn {
            if let Some(n) = r.notify.as_deref().filter(|n| clean(n) && !n.contains(' ')) {
                line.push_str(&format!(" NOTIFY={n}"));
            }
            if let Some(o) = r.orcpt.as_deref().filter(|o| clean(o) && !o.contains(' ')) {
                line.push_str(&format!(" ORCPT={o}"));
            }
        }
        line.push_str("\r\n");
        rcpts.push(line);
    }

    // The envelope: pipelined in one write when the server allows it (RFC 2920 §3.1).
    let (mail_reply, rcpt_replies) = if ext.has(smtp_proto::EXT_PIPELINING) {
        let mut batch = mail.clone();
        for r in &rcpts {
            batch.push_str(r);
        }
        conn.send(&batch).await?;
        let mail_reply = conn.reply().await?;
        let mut replies = Vec::with_capacity(rcpts.len());
        for _ in &rcpts {
            replies.push(conn.reply().await?);
        }
        (mail_reply, replies)
    } else {
        let mail_reply = conn.command(&mail).await?;
        let mut replies = Vec::with_capacity(rcpts.len());
        if mail_reply.is_positive() {
            for r in &rcpts {
                replies.push(conn.command(r).await?);
            }
        }
        (mail_reply, replies)
    };
    if !mail_reply.is_positive() {
        // The sender was refused: the same outcome for every recipient.
        let o = Outcome::from_reply(&mail_reply);
        return Ok(vec![o; tx.recipients.len()]);
    }
    let mut outcomes: Vec<Option<Outcome>> = rcpt_replies
        .iter()
        .map(|r| (!r.is_positive()).then(|| Outcome::from_reply(r)))
        .collect();
    if outcomes.iter().all(Option::is_some) {
        let _ = conn.command("RSET\r\n").await;
        return Ok(outcomes.into_iter().flatten().collect());
    }

    let data = conn.command("DATA\r\n").await?;
    if data.code != 354 {
        let o = Outcome::from_reply(&data);
        return Ok(outcomes
            .into_iter()
            .map(|x| x.unwrap_or_else(|| o.clone()))
            .collect());
    }
    let wire = wire_data(tx.message);
    let wait = conn.settings.data_timeout;
    let sent = async {
        for chunk in wire.chunks(64 * 1024) {
            timeout(wait, conn.stream.write_all(chunk))
                .await
                .map_err(|_| SessionFailure::temp("4.4.2", "timed out sending the message"))?
                .map_err(|e| io_failure("sending the message", e))?;
        }
        timeout(wait, conn.stream.flush())
            .await
            .map_err(|_| SessionFailure::temp("4.4.2", "timed out sending the message"))?
            .map_err(|e| io_failure("sending the message", e))
    };
    let final_reply = match sent.await {
        Ok(()) => conn.reply_raw(wait).await.map(|(r, _)| r),
        Err(e) => Err(e),
    };
    let end = match final_reply {
        Ok(reply) if reply.is_positive() => Outcome::Delivered(reply),
        Ok(reply) => Outcome::from_reply(&reply),
        // The connection broke after the data: the message may or may not have been taken
        // (RFC 1047); retrying is SMTP's own at-least-once edge.
        Err(f) => Outcome::Temporary {
            status: f.status,
            reason: f.reason,
        },
    };
    Ok(outcomes
        .iter_mut()
        .map(|x| x.take().unwrap_or_else(|| end.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::Tlsa;
    use std::sync::Mutex;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    /// How the scripted peer behaves.
    #[derive(Clone, Default)]
    struct Peer {
        ehlo: Vec<&'static str>,
        reject_rcpt: Vec<&'static str>,
        data_reply: Option<&'static str>,
        hang_up_in_data: bool,
        tls: Option<Arc<rustls::ServerConfig>>,
        greeting: Option<&'static str>,
    }

    #[derive(Default)]
    struct Seen {
        commands: Vec<String>,
        data: Vec<u8>,
        tls: bool,
    }

    async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        stream: S,
        peer: &Peer,
        seen: &Mutex<Seen>,
        tls_done: bool,
    ) -> Option<S> {
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let cmd = line.trim_end().to_string();
            seen.lock().ok()?.commands.push(cmd.clone());
            let upper = cmd.to_ascii_uppercase();
            let reply: String = if upper.starts_with("EHLO") {
                let mut exts: Vec<&str> = peer.ehlo.clone();
                if tls_done {
                    exts.retain(|e| *e != "STARTTLS");
                }
                let mut s = String::from("250-peer.test\r\n");
                for (i, e) in exts.iter().enumerate() {
                    let sep = if i + 1 == exts.len() { ' ' } else { '-' };
                    s.push_str(&format!("250{sep}{e}\r\n"));
                }
                if exts.is_empty() {
                    s = "250 peer.test\r\n".into();
                }
                s
            } else if upper == "STARTTLS" {
                r.get_mut()
                    .write_all(b"220 2.0.0 go ahead\r\n")
                    .await
                    .ok()?;
                return Some(r.into_inner());
            } else if upper.starts_with("MAIL") {
                "250 2.1.0 ok\r\n".into()
            } else if upper.starts_with("RCPT") {
                if peer.reject_rcpt.iter().any(|x| cmd.contains(x)) {
                    "550 5.1.1 no such user\r\n".into()
                } else {
                    "250 2.1.5 ok\r\n".into()
                }
            } else if upper == "DATA" {
                r.get_mut().write_all(b"354 go\r\n").await.ok()?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if r.read_until(b'\n', &mut l).await.ok()? == 0 {
                        return None;
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    data.extend_from_slice(&l);
                    if peer.hang_up_in_data {
                        return None;
                    }
                }
                seen.lock().ok()?.data = data;
                peer.data_reply
                    .unwrap_or("250 2.0.0 queued as X\r\n")
                    .into()
            } else if upper == "QUIT" {
                r.get_mut().write_all(b"221 bye\r\n").await.ok()?;
                return None;
            } else {
                "250 ok\r\n".into()
            };
            r.get_mut().write_all(reply.as_bytes()).await.ok()?;
        }
    }

    async fn peer(p: Peer) -> (SocketAddr, Arc<Mutex<Seen>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s2 = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let greeting = p.greeting.unwrap_or("220 peer.test ESMTP\r\n");
                if s.write_all(greeting.as_bytes()).await.is_err() {
                    continue;
                }
                let Some(plain) = serve(s, &p, &s2, false).await else {
                    continue;
                };
                let Some(cfg) = p.tls.clone() else { continue };
                let Ok(tls) = tokio_rustls::TlsAcceptor::from(cfg).accept(plain).await else {
                    continue;
                };
                if let Ok(mut g) = s2.lock() {
                    g.tls = true;
                }
                serve(tls, &p, &s2, true).await;
            }
        });
        (addr, seen)
    }

    fn settings() -> ClientSettings {
        ClientSettings {
            helo_name: "postern.test".into(),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            data_timeout: Duration::from_secs(5),
        }
    }

    fn rcpts(list: &[&str]) -> Vec<Recipient> {
        list.iter()
            .map(|a| Recipient {
                address: a.to_string(),
                notify: Some("FAILURE,DELAY".into()),
                orcpt: Some(format!("rfc822;{a}")),
            })
            .collect()
    }

    fn tls_config() -> (Arc<rustls::ServerConfig>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["mx.peer.test".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .expect("server config");
        (Arc::new(cfg), spki)
    }

    const MSG: &[u8] = b"From: a@x.test\nTo: b@y.test\n\n.leading dot\nbare lf\rbare cr\r\nend";

    #[tokio::test]
    async fn pipelined_delivery_with_one_recipient_refused() {
        let (addr, seen) = peer(Peer {
            ehlo: vec!["PIPELINING", "SIZE 1000000", "8BITMIME", "DSN"],
            reject_rcpt: vec!["nobody@"],
            ..Peer::default()
        })
        .await;
        let r = rcpts(&["bob@y.test", "nobody@y.test", "carol@y.test"]);
        let tx = Transaction {
            mail_from: "a@x.test",
            recipients: &r,
            message: MSG,
            eight_bit: true,
            ret: Some("HDRS"),
            envid: Some("ENV1"),
            ..Transaction::default()
        };
        let (out, info) = deliver(&settings(), "mx.peer.test", addr, &TlsPolicy::Plain, &tx)
            .await
            .expect("session");
        assert!(!info.tls);
        assert!(matches!(out[0], Outcome::Delivered(_)), "{out:?}");
        assert!(
            matches!(&out[1], Outcome::Permanent { status, .. } if status == "5.1.1"),
            "{out:?}"
        );
        assert!(matches!(out[2], Outcome::Delivered(_)));
        let seen = seen.lock().expect("lock");
        let mail = seen
            .commands
            .iter()
            .find(|c| c.starts_with("MAIL"))
            .expect("mail");
        assert_eq!(
            mail,
            &format!(
                "MAIL FROM:<a@x.test> SIZE={} BODY=8BITMIME RET=HDRS ENVID=ENV1",
                MSG.len()
            )
        );
        assert!(seen.commands.contains(
            &"RCPT TO:<bob@y.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@y.test".to_string()
        ));
        // CRLF everywhere, the leading dot doubled.
        assert_eq!(
            seen.data,
            b"From: a@x.test\r\nTo: b@y.test\r\n\r\n..leading dot\r\nbare lf\r\nbare cr\r\nend\r\n"
        );
    }

    #[tokio::test]
    async fn temporary_and_permanent_data_replies() {
        for (reply, temp) in [
            ("451 4.3.0 try later\r\n", true),
            ("554 5.6.0 no\r\n", false),
        ] {
            let (addr, _) = peer(Peer {
                data_reply: Some(reply),
                ..Peer::default()
            })
            .await;
            let r = rcpts(&["bob@y.test"]);
            let tx = Transaction {
                mail_from: "",
                recipients: &r,
                message: MSG,
                ..Transaction::default()
            };
            let (out, _) = deliver(&settings(), "h", addr, &TlsPolicy::Plain, &tx)
                .await
                .expect("session");
            match (&out[0], temp) {
                (Outcome::Temporary { status, reason }, true) => {
                    assert_eq!(status, "4.3.0");
                    assert!(reason.contains("try later"), "{reason}");
                }
                (Outcome::Permanent { status, .. }, false) => assert_eq!(status, "5.6.0"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn hang_up_during_data_is_temporary() {
        let (addr, _) = peer(Peer {
            hang_up_in_data: true,
            ..Peer::default()
        })
        .await;
        let r = rcpts(&["bob@y.test"]);
        let tx = Transaction {
            mail_from: "a@x.test",
            recipients: &r,
            message: MSG,
            ..Transaction::default()
        };
        let (out, _) = deliver(&settings(), "h", addr, &TlsPolicy::Plain, &tx)
            .await
            .expect("session");
        assert!(matches!(out[0], Outcome::Temporary { .. }), "{out:?}");
    }

    #[tokio::test]
    async fn refused_connection_and_bad_greeting_are_session_failures() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let r = rcpts(&["bob@y.test"]);
        let tx = Transaction {
            mail_from: "a@x.test",
            recipients: &r,
            message: MSG,
            ..Transaction::default()
        };
        let e = deliver(&settings(), "h", addr, &TlsPolicy::Plain, &tx)
            .await
            .expect_err("refused");
        assert!(!e.permanent);
        let (addr, _) = peer(Peer {
            greeting: Some("421 4.3.2 busy\r\n"),
            ..Peer::default()
        })
        .await;
        let e = deliver(&settings(), "h", addr, &TlsPolicy::Plain, &tx)
            .await
            .expect_err("busy");
        assert_eq!(e.status, "4.3.2");
    }

    #[tokio::test]
    async fn starttls_policies() {
        let (cfg, spki) = tls_config();
        let r = rcpts(&["bob@y.test"]);
        let tx = Transaction {
            mail_from: "a@x.test",
            recipients: &r,
            message: MSG,
            ..Transaction::default()
        };
        // Opportunistic: encrypted, not authenticated.
        let (addr, seen) = peer(Peer {
            ehlo: vec!["STARTTLS", "PIPELINING"],
            tls: Some(cfg.clone()),
            ..Peer::default()
        })
        .await;
        let (out, info) = deliver(
            &settings(),
            "mx.peer.test",
            addr,
            &TlsPolicy::Opportunistic,
            &tx,
        )
        .await
        .expect("session");
        assert!(matches!(out[0], Outcome::Delivered(_)));
        assert!(info.tls && !info.tls_verified);
        assert!(seen.lock().expect("lock").tls);

        // DANE-EE with the right key: verified.
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki)
            .as_ref()
            .to_vec();
        let good = TlsPolicy::Dane {
            records: vec![Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: digest.clone(),
            }],
        };
        let (out, info) = deliver(&settings(), "mx.peer.test", addr, &good, &tx)
            .await
            .expect("session");
        assert!(matches!(out[0], Outcome::Delivered(_)));
        assert!(info.tls_verified);

        // DANE-EE with another key: no delivery, temporary.
        let mut wrong = digest;
        wrong[0] ^= 1;
        let bad = TlsPolicy::Dane {
            records: vec![Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: wrong,
            }],
        };
        let e = deliver(&settings(), "mx.peer.test", addr, &bad, &tx)
            .await
            .expect_err("mismatch");
        assert!(!e.permanent && e.status == "4.7.5", "{e:?}");

        // PKIX with no roots that know the self-signed certificate: refused.
        let pkix = TlsPolicy::Pkix {
            roots: Arc::new(rustls::RootCertStore::empty()),
        };
        assert!(
            deliver(&settings(), "mx.peer.test", addr, &pkix, &tx)
                .await
                .is_err()
        );

        // TLS required but not offered.
        let (addr, _) = peer(Peer::default()).await;
        let e = deliver(&settings(), "mx.peer.test", addr, &TlsPolicy::Required, &tx)
            .await
            .expect_err("no starttls");
        assert_eq!(e.status, "4.7.5");
    }

    #[tokio::test]
    async fn requiretls_size_and_smtputf8_refusals_are_permanent() {
        let (addr, seen) = peer(Peer {
            ehlo: vec!["SIZE 10"],
            ..Peer::default()
        })
        .await;
        let r = rcpts(&["bob@y.test"]);
        let base = Transaction {
            mail_from: "a@x.test",
            recipients: &r,
            message: MSG,
            ..Transaction::default()
        };
        let e = deliver(&settings(), "h", addr, &TlsPolicy::Opportunistic, &base)
            .await
            .expect_err("size");
        assert!(e.permanent && e.status == "5.3.4", "{e:?}");
        let tx = Transaction {
            requiretls: true,
            ..base.clone()
        };
        let e = deliver(&settings(), "h", addr, &TlsPolicy::Opportunistic, &tx)
            .await
            .expect_err("requiretls");
        assert!(e.permanent && e.status == "5.7.30", "{e:?}");
        // A non-ASCII address needs SMTPUTF8, which this server lacks.
        let intl = rcpts(&["b\u{f6}b@y.test"]);
        let small = Transaction {
            message: b"x",
            smtputf8: true,
            recipients: &intl,
            ..base.clone()
        };
        let e = deliver(&settings(), "h", addr, &TlsPolicy::Plain, &small)
            .await
            .expect_err("smtputf8");
        assert!(e.permanent && e.status == "5.6.7", "{e:?}");
        // Nothing was sent in any of them.
        let nothing_sent = !seen
            .lock()
            .expect("lock")
            .commands
            .iter()
            .any(|c| c.starts_with("MAIL"));
        assert!(nothing_sent);
        // The client's SMTPUTF8 flag alone (all ASCII) does not stop delivery.
        let ascii = Transaction {
            message: b"x",
            smtputf8: true,
            ..base
        };
        let (out, _) = deliver(&settings(), "h", addr, &TlsPolicy::Plain, &ascii)
            .await
            .expect("ascii mail goes");
        assert!(matches!(out[0], Outcome::Delivered(_)), "{out:?}");
        let mail = seen
            .lock()
            .expect("lock")
            .commands
            .iter()
            .find(|c| c.starts_with("MAIL"))
            .cloned()
            .expect("MAIL sent");
        assert!(!mail.contains("SMTPUTF8"), "{mail}");
    }

    #[tokio::test]
    async fn injected_envelope_addresses_never_reach_the_wire() {
        let (addr, seen) = peer(Peer::default()).await;
        let r = rcpts(&["bob@y.test>\r\nRCPT TO:<evil@z.test"]);
        let tx = Transaction {
            mail_from: "a@x.test",
            recipients: &r,
            message: MSG,
            ..Transaction::default()
        };
        let e = deliver(&settings(), "h", addr, &TlsPolicy::Plain, &tx)
            .await
            .expect_err("refused");
        assert!(e.permanent);
        assert!(seen.lock().expect("lock").commands.is_empty());
    }

    #[test]
    fn wire_data_is_crlf_and_dot_stuffed() {
        assert_eq!(wire_data(b""), b".\r\n");
        assert_eq!(wire_data(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(wire_data(b"a\r\n.b"), b"a\r\n..b\r\n.\r\n");
        // Never a bare LF or CR on the wire (RFC 5321 §2.3.8): each becomes CRLF, and a
        // dot after one is stuffed like any other line start.
        assert_eq!(
            wire_data(b"a\nb\rc\r\n\n.d\n"),
            b"a\r\nb\r\nc\r\n\r\n..d\r\n.\r\n"
        );
        assert_eq!(wire_data(b"x\n.\n"), b"x\r\n..\r\n.\r\n");
    }

    #[test]
    fn enhanced_codes_are_read() {
        let r = parse_reply(
            550,
            b"550 5.1.1 no such user\r\n",
            &["5.1.1 no such user".into()],
        );
        assert_eq!(r.status, Some([5, 1, 1]));
        assert_eq!(r.text, "no such user");
        let r = parse_reply(550, b"550 no such user\r\n", &["no such user".into()]);
        assert_eq!(r.status_code(), "5.0.0");
    }
}
