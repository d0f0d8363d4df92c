//! One SMTP connection: the command state machine of RFC 5321 §4.1.4 (EHLO/HELO → MAIL
//! → RCPT+ → DATA/BDAT, with RSET, NOOP, QUIT, HELP, VRFY, EXPN at any time), STARTTLS
//! (RFC 3207), AUTH (RFC 4954) on the submission listeners, and delivery through
//! `core`.
//!
//! MX (`ListenerKind::Smtp`) and submission (`Submission`, `Submissions`) share this
//! code; they differ in four places: AUTH is offered only on submission, MAIL on
//! submission needs AUTH and an owned sender, recipients of other domains are refused
//! differently, and only the MX runs SPF/DKIM/DMARC.

use crate::Shared;
use crate::command::{self, Command, ParseError, Path};
use crate::conn::{Conn, ConnError, Line};
use crate::data::{self, Problem};
use crate::limits::{DmarcQuarantineAction, DmarcRejectAction};
use crate::reply::{self, line};
use crate::trace;
use crate::verify::{DmarcDisposition, DmarcPolicy, VerifyInput};
use base64::Engine;
use postern_core::address::{Address, parse_address};
use postern_core::delivery::QuotaCheck;
use postern_core::directory::Resolution;
use postern_core::outbound::{EnvelopeOptions, OutboundRecipient};
use postern_core::store::{Actor, Principal, Role, SessionInfo};
use postern_core::{Authenticated, CoreError, Ctx};
use postern_net::{BoxStream, ConnInfo, ListenerKind, Shutdown};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

#[must_use]
pub(crate) enum Flow {
    Continue,
    Close,
}

struct Helo {
    name: String,
    esmtp: bool,
}

struct Rcpt {
    /// The address as accepted (normalised), for the Received `for` clause and the ledger.
    address: String,
    principals: Vec<Principal>,
    /// Members of a group left out because their mailbox is full.
    quota_skipped: Vec<String>,
    /// Submission to another domain: the address goes to the outbound queue.
    external: bool,
    /// Addresses in other domains this one forwards to (an alias's external targets, or
    /// the sender an SRS bounce address encodes): queued with the SRS sender.
    forward: Vec<String>,
    /// RFC 3461 NOTIFY and ORCPT (submission only).
    notify: Option<String>,
    orcpt: Option<String>,
}

/// A mail transaction (RFC 5321 §3.3), from MAIL to the end of the message.
struct Tx {
    /// The reverse-path, "" for `<>`.
    from: String,
    declared_size: Option<u64>,
    smtputf8: bool,
    body: Option<String>,
    /// RFC 3461 ENVID and RET, RFC 8689 REQUIRETLS (submission only).
    envid: Option<String>,
    ret: Option<String>,
    requiretls: bool,
    rcpts: Vec<Rcpt>,
    /// BDAT chunks so far (RFC 3030); `Some` once the first chunk arrived.
    bdat: Option<Vec<u8>>,
    /// The in-memory budget the BDAT chunks so far hold.
    bdat_held: data::Held,
}

pub(crate) struct Session {
    shared: Arc<Shared>,
    id: u64,
    kind: ListenerKind,
    remote: SocketAddr,
    conn: Conn,
    tls: bool,
    acceptor: Option<TlsAcceptor>,
    helo: Option<Helo>,
    auth: Option<Authenticated>,
    tx: Option<Tx>,
    /// Message transactions ended (delivered or refused) in this connection.
    messages: u32,
    errors: u32,
    unknown_rcpts: u32,
    /// NOOP/RSET/VRFY/EXPN/HELP since the last delivered message (`max_junk_commands`).
    junk: u32,
    /// When the connection must end whatever it does (`max_session`).
    session_end: Instant,
    shutdown: Shutdown,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    stream: BoxStream,
    info: ConnInfo,
    shutdown: Shutdown,
) {
    let write_timeout = shared.limits.command_timeout;
    let mut s = Session {
        id: info.id,
        kind: info.kind,
        remote: info.remote,
        conn: Conn::new(stream, write_timeout),
        tls: info.tls,
        acceptor: info.tls_acceptor,
        helo: None,
        auth: None,
        tx: None,
        messages: 0,
        errors: 0,
        unknown_rcpts: 0,
        junk: 0,
        session_end: Instant::now() + shared.limits.max_session,
        shutdown,
        shared,
    };
    // RFC 5321 §4.3.1: the greeting; §4.1.3 the name is our domain.
    let greeting = format!("220 {} ESMTP ready\r\n", s.shared.hostname);
    s.conn.send(greeting.as_bytes());
    s.serve().await;
    s.conn.close().await;
}

impl Session {
    fn submission(&self) -> bool {
        self.kind != ListenerKind::Smtp
    }

    fn plaintext_auth_allowed(&self) -> bool {
        self.tls
            || (self.shared.policy.allow_plaintext_auth_on_loopback
                && self.remote.ip().to_canonical().is_loopback())
    }

    /// Queues a reply; 4xx/5xx count towards the error limit, and reaching it adds the
    /// 421 and ends the session.
    fn send(&mut self, r: &str) -> Flow {
        self.conn.send(r.as_bytes());
        if reply::is_error(r) && !r.starts_with("421") {
            self.errors += 1;
            if self.errors >= self.shared.limits.errors_before_disconnect {
                metrics::counter!("postern_smtp_disconnects_total", "reason" => "errors")
                    .increment(1);
                self.conn.send(
                    line(
                        421,
                        "4.7.0",
                        &format!(
                            "{} Too many errors; closing connection",
                            self.shared.hostname
                        ),
                    )
                    .as_bytes(),
                );
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    fn reply(&mut self, code: u16, status: &str, text: &str) -> Flow {
        self.send(&line(code, status, text))
    }

    /// 421 and close (RFC 5321 §3.8).
    fn close_with(&mut self, status: &str, text: &str, reason: &'static str) -> Flow {
        metrics::counter!("postern_smtp_disconnects_total", "reason" => reason).increment(1);
        let r = line(421, status, &format!("{} {text}", self.shared.hostname));
        self.conn.send(r.as_bytes());
        Flow::Close
    }

    fn session_info(&self) -> SessionInfo {
        SessionInfo {
            protocol: "smtp".into(),
            remote: Some(self.remote.to_string()),
            client_id: self.helo.as_ref().map(|h| h.name.clone()),
            auth_method: None,
            session_id: Some(self.id),
        }
    }

    async fn serve(&mut self) {
        let max = self.shared.limits.line_length;
        loop {
            // RFC 5321 §4.5.3.2.7: the server waits this long for the next command; the
            // whole line must arrive within it (one byte a minute does not reset it).
            let deadline =
                (Instant::now() + self.shared.limits.command_timeout).min(self.session_end);
            let read = self
                .conn
                .read_line(max, deadline, Some(&mut self.shutdown))
                .await;
            let flow = match read {
                Err(ConnError::Timeout) if Instant::now() >= self.session_end => self.close_with(
                    "4.4.2",
                    "Connection has lasted too long; closing",
                    "session_time",
                ),
                Err(ConnError::Timeout) => {
                    self.close_with("4.4.2", "Timeout waiting for a command; closing", "timeout")
                }
                Err(ConnError::Shutdown) => {
                    self.close_with("4.3.2", "Service shutting down; closing", "shutdown")
                }
                Err(ConnError::Closed) => Flow::Close,
                // RFC 5321 §4.5.3.1.4 / §4.2.2: 500 5.5.2 for a line too long.
                Ok(Line::TooLong) => {
                    self.reply(500, "5.5.2", &format!("Line too long (limit {max} octets)"))
                }
                // RFC 5321 §2.3.8: CR and LF only as CRLF.
                Ok(Line::BareLf) => self.reply(
                    500,
                    "5.5.2",
                    "Bare LF in command; lines end with CRLF (RFC 5321 §2.3.8)",
                ),
                Ok(Line::BareCr) => {
                    self.reply(500, "5.5.2", "Bare CR in command (RFC 5321 §2.3.8)")
                }
                Ok(Line::Ok(bytes)) => self.command(&bytes).await,
            };
            if let Flow::Close = flow {
                return;
            }
        }
    }

    async fn command(&mut self, bytes: &[u8]) -> Flow {
        let cmd = match command::parse(bytes) {
            Ok(c) => c,
            Err(ParseError::Unknown) => return self.reply(500, "5.5.1", "Command unrecognized"),
            Err(ParseError::Encoding) => {
                return self.reply(500, "5.5.2", "Command is not valid UTF-8");
            }
            Err(ParseError::Syntax(s)) => return self.reply(501, "5.5.4", &format!("Syntax: {s}")),
            Err(ParseError::SourceRoute) => {
                return self.reply(
                    553,
                    "5.7.1",
                    "Source routes are not accepted (RFC 5321 §4.1.2)",
                );
            }
        };
        debug!(command = ?std::mem::discriminant(&cmd), "command");
        if matches!(
            cmd,
            Command::Noop | Command::Rset | Command::Vrfy | Command::Expn | Command::Help
        ) {
            // Commands that move no mail: a peer sending only these holds a connection
            // slot for nothing (RFC 5321 §7.8, resistance to attacks).
            self.junk += 1;
            if self.junk > self.shared.limits.max_junk_commands {
                return self.close_with(
                    "4.7.0",
                    "Too many commands without a message; closing",
                    "junk_commands",
                );
            }
        }
        match cmd {
            Command::Ehlo(name) => self.ehlo(name, true),
            Command::Helo(name) => self.ehlo(name, false),
            Command::StartTls => self.starttls().await,
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial).await,
            Command::Mail { path, params } => self.mail(path, params).await,
            Command::Rcpt { path, params } => self.rcpt(path, params).await,
            Command::Data => self.data().await,
            Command::Bdat { size, last } => self.bdat(size, last).await,
            // RFC 5321 §4.1.1.5.
            Command::Rset => {
                self.tx = None;
                self.reply(250, "2.0.0", "OK")
            }
            Command::Noop => self.reply(250, "2.0.0", "OK"),
            Command::Quit => {
                self.conn.send(line(221, "2.0.0", &format!("{} closing connection", self.shared.hostname)).as_bytes());
                Flow::Close
            }
            Command::Help => self.reply(214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT STARTTLS AUTH"),
            // RFC 5321 §3.5.3: 252 when we will not verify (no account enumeration).
            Command::Vrfy => self.reply(252, "2.5.0", "Cannot VRFY user, but will accept message for delivery"),
            // RFC 5321 §3.5.2: EXPN may be disabled; it lists group members.
            Command::Expn => self.reply(502, "5.5.1", "EXPN is not available"),
        }
    }

    /// RFC 5321 §4.1.1.1; EHLO resets any transaction (§4.1.4).
    fn ehlo(&mut self, name: String, esmtp: bool) -> Flow {
        self.tx = None;
        let host = self.shared.hostname.clone();
        let greet = format!(
            "{host} Hello {name} {}",
            trace::address_literal(self.remote.ip())
        );
        self.helo = Some(Helo { name, esmtp });
        if !esmtp {
            // RFC 2034 codes belong to EHLO sessions; HELO gets the bare reply.
            return self.send(&format!("250 {greet}\r\n"));
        }
        let mut lines = vec![
            greet,
            // RFC 2920.
            "PIPELINING".to_string(),
            // RFC 1870.
            format!("SIZE {}", self.shared.limits.message_size),
            // RFC 6152.
            "8BITMIME".to_string(),
            // RFC 6531.
            "SMTPUTF8".to_string(),
            // RFC 2034.
            "ENHANCEDSTATUSCODES".to_string(),
            // RFC 3030.
            "CHUNKING".to_string(),
        ];
        if self.submission() {
            // RFC 3461, for mail our users send: the queue sends the notices. Not on the
            // MX, where a success notice for local delivery would be ours to send to
            // strangers on request.
            lines.push("DSN".to_string());
            if self.tls {
                // RFC 8689 §4.1: offered over TLS only.
                lines.push("REQUIRETLS".to_string());
            }
        }
        if !self.tls && self.acceptor.is_some() {
            // RFC 3207.
            lines.push("STARTTLS".to_string());
        }
        if self.submission() && self.auth.is_none() && self.plaintext_auth_allowed() {
            // RFC 4954 §3; not offered before TLS (RFC 8314 §3), nor on the MX.
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        let n = lines.len();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == n { ' ' } else { '-' };
            out.push_str(&format!("250{sep}{l}\r\n"));
        }
        self.send(&out)
    }

    /// RFC 3207.
    async fn starttls(&mut self) -> Flow {
        if self.tls {
            return self.reply(503, "5.5.1", "TLS is already active");
        }
        let Some(acceptor) = self.acceptor.clone() else {
            return self.reply(454, "4.7.0", "TLS not available");
        };
        if self.helo.as_ref().is_none_or(|h| !h.esmtp) {
            return self.reply(503, "5.5.1", "Send EHLO first");
        }
        // RFC 3207 §4.2 and CVE-2011-0411: bytes that arrived after the STARTTLS line
        // were sent in plaintext, before the handshake; they are discarded, never
        // executed inside the TLS session (DESIGN invariant 7). A well-behaved client
        // sends nothing until it has read our 220 (RFC 2920 §3.1: STARTTLS ends a group).
        let dropped = self.conn.discard_buffered();
        if dropped > 0 {
            metrics::counter!("postern_smtp_starttls_discarded_total").increment(1);
            warn!(
                session = self.id,
                bytes = dropped,
                "discarded plaintext pipelined after STARTTLS"
            );
        }
        self.conn
            .send(line(220, "2.0.0", "Ready to start TLS").as_bytes());
        if self.conn.flush().await.is_err() {
            return Flow::Close;
        }
        let Some(plain) = self.conn.take_stream() else {
            return Flow::Close;
        };
        match postern_net::tls::starttls(plain, &acceptor, self.shared.limits.tls_handshake_timeout)
            .await
        {
            Ok(tls) => {
                self.conn.set_stream(tls);
                self.tls = true;
                // RFC 3207 §4.2: forget everything learnt before the handshake, EHLO
                // argument included; the client must EHLO again.
                self.helo = None;
                self.tx = None;
                self.auth = None;
                Flow::Continue
            }
            Err(e) => {
                debug!(session = self.id, error = %e, "STARTTLS handshake failed");
                Flow::Close
            }
        }
    }

    /// One line of a SASL exchange after a 334 challenge (RFC 4954 §4), base64-decoded.
    async fn sasl_response(&mut self, challenge: &str) -> Result<Vec<u8>, Flow> {
        self.conn.send(format!("334 {challenge}\r\n").as_bytes());
        let deadline = Instant::now() + self.shared.limits.command_timeout;
        let read = self
            .conn
            .read_line(
                self.shared.limits.line_length,
                deadline,
                Some(&mut self.shutdown),
            )
            .await;
        match read {
            Err(ConnError::Timeout) => Err(self.close_with(
                "4.4.2",
                "Timeout waiting for a response; closing",
                "timeout",
            )),
            Err(ConnError::Shutdown) => {
                Err(self.close_with("4.3.2", "Service shutting down; closing", "shutdown"))
            }
            Err(ConnError::Closed) => Err(Flow::Close),
            Ok(Line::TooLong) => {
                Err(self.reply(500, "5.5.6", "Authentication exchange line is too long"))
            }
            Ok(Line::BareLf | Line::BareCr) => {
                Err(self.reply(500, "5.5.2", "Bare CR or LF (RFC 5321 §2.3.8)"))
            }
            // RFC 4954 §4: "*" cancels.
            Ok(Line::Ok(l)) if l == b"*" => {
                Err(self.reply(501, "5.0.0", "Authentication cancelled"))
            }
            Ok(Line::Ok(l)) => self.decode_b64(&l),
        }
    }

    fn decode_b64(&mut self, s: &[u8]) -> Result<Vec<u8>, Flow> {
        if s == b"=" {
            return Ok(Vec::new());
        }
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| self.reply(501, "5.5.2", "Invalid base64 in authentication exchange"))
    }

    /// RFC 4954 with PLAIN (RFC 4616, SASL-IR) and LOGIN.
    async fn auth(&mut self, mechanism: &str, initial: Option<String>) -> Flow {
        if !self.submission() {
            return self.reply(
                502,
                "5.5.1",
                "AUTH is not offered on this port; use submission (587 or 465)",
            );
        }
        if self.helo.as_ref().is_none_or(|h| !h.esmtp) {
            return self.reply(503, "5.5.1", "Send EHLO first");
        }
        if self.auth.is_some() {
            return self.reply(503, "5.5.1", "Already authenticated");
        }
        if self.tx.is_some() {
            return self.reply(
                503,
                "5.5.1",
                "AUTH is not allowed during a mail transaction",
            );
        }
        if !self.plaintext_auth_allowed() {
            // RFC 4954 §6; DESIGN invariant 7.
            return self.reply(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            );
        }
        let (user, secret) = match mechanism {
            "PLAIN" => {
                let blob = match initial {
                    Some(i) => match self.decode_b64(i.as_bytes()) {
                        Ok(b) => b,
                        Err(f) => return f,
                    },
                    None => match self.sasl_response("").await {
                        Ok(b) => b,
                        Err(f) => return f,
                    },
                };
                // RFC 4616 §2: [authzid] NUL authcid NUL passwd.
                let parts: Vec<&[u8]> = blob.split(|&b| b == 0).collect();
                let [authz, authc, pass] = parts.as_slice() else {
                    return self.reply(501, "5.5.2", "Malformed PLAIN response");
                };
                if !authz.is_empty() && authz != authc {
                    // No proxy authorization: acting as someone else is not offered.
                    return self.reply(535, "5.7.8", "Authentication credentials invalid");
                }
                (authc.to_vec(), pass.to_vec())
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => match self.decode_b64(i.as_bytes()) {
                        Ok(b) => b,
                        Err(f) => return f,
                    },
                    // "Username:" / "Password:" (draft-murchison-sasl-login).
                    None => match self.sasl_response("VXNlcm5hbWU6").await {
                        Ok(b) => b,
                        Err(f) => return f,
                    },
                };
                let pass = match self.sasl_response("UGFzc3dvcmQ6").await {
                    Ok(b) => b,
                    Err(f) => return f,
                };
                (user, pass)
            }
            _ => {
                return self.reply(
                    504,
                    "5.5.4",
                    "Unrecognized authentication type; use PLAIN or LOGIN",
                );
            }
        };
        let (Ok(user), Ok(secret)) = (String::from_utf8(user), String::from_utf8(secret)) else {
            return self.reply(501, "5.5.2", "Credentials are not valid UTF-8");
        };
        let result = self
            .shared
            .core
            .authenticate(&user, &secret, "smtp", self.session_info())
            .await;
        match result {
            Ok(a) => {
                info!(session = self.id, user = a.address(), "authenticated");
                self.auth = Some(a);
                self.reply(235, "2.7.0", "Authentication successful")
            }
            Err(e) => {
                let r = reply::for_error(&e);
                self.send(&r)
            }
        }
    }

    /// RFC 5321 §4.1.1.2.
    async fn mail(&mut self, path: Path, params: Vec<(String, Option<String>)>) -> Flow {
        if self.helo.is_none() {
            return self.reply(503, "5.5.1", "Send EHLO or HELO first");
        }
        if self.tx.is_some() {
            return self.reply(503, "5.5.1", "Nested MAIL command");
        }
        if self.messages >= self.shared.limits.messages_per_connection {
            return self.close_with(
                "4.7.0",
                "Too many messages in one connection; reconnect to send more",
                "messages",
            );
        }
        if self.submission() && self.auth.is_none() {
            // RFC 4954 §6.
            return self.reply(530, "5.7.0", "Authentication required");
        }
        let mut tx = Tx {
            from: String::new(),
            declared_size: None,
            smtputf8: false,
            body: None,
            envid: None,
            ret: None,
            requiretls: false,
            rcpts: Vec::new(),
            bdat: None,
            bdat_held: data::Held::default(),
        };
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in &params {
            if seen.contains(&key.as_str()) {
                return self.reply(501, "5.5.4", &format!("Duplicate parameter {key}"));
            }
            seen.push(key);
            match (key.as_str(), value.as_deref()) {
                // RFC 1870 §6.
                ("SIZE", Some(v)) => {
                    let Some(n) = v.parse::<u64>().ok().filter(|_| v.len() <= 20) else {
                        return self.reply(501, "5.5.4", "Syntax: SIZE=<octets>");
                    };
                    if n > self.shared.limits.message_size {
                        // RFC 1870 §6.2.
                        return self.reply(
                            552,
                            "5.3.4",
                            "Message size exceeds fixed maximum message size",
                        );
                    }
                    tx.declared_size = Some(n);
                }
                // RFC 6152 §2; BINARYMIME (RFC 3030 §3) is not offered.
                ("BODY", Some(v))
                    if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") =>
                {
                    tx.body = Some(v.to_ascii_uppercase());
                }
                // RFC 6531 §3.4.
                ("SMTPUTF8", None) => tx.smtputf8 = true,
                // RFC 4954 §5: accepted from an authenticated client, not acted upon.
                ("AUTH", Some(_)) if self.submission() => {}
                // RFC 3461 §4.3.
                ("RET", Some(v)) if self.submission() => {
                    if !(v.eq_ignore_ascii_case("FULL") || v.eq_ignore_ascii_case("HDRS")) {
                        return self.reply(501, "5.5.4", "Syntax: RET=FULL or RET=HDRS");
                    }
                    tx.ret = Some(v.to_ascii_uppercase());
                }
                // RFC 3461 §4.4: xtext, at most 100 characters.
                ("ENVID", Some(v)) if self.submission() => {
                    if v.len() > 100 || !is_xtext(v) {
                        return self.reply(
                            501,
                            "5.5.4",
                            "Syntax: ENVID=<xtext of at most 100 characters>",
                        );
                    }
                    tx.envid = Some(v.to_string());
                }
                // RFC 8689 §4.1: only over TLS.
                ("REQUIRETLS", None) if self.submission() && self.tls => tx.requiretls = true,
                _ => return self.reply(555, "5.5.4", &format!("Unsupported MAIL parameter {key}")),
            }
        }
        if let Path::Mailbox(m) = &path {
            if !m.is_ascii() && !tx.smtputf8 {
                // RFC 6531 §3.4.
                return self.reply(
                    553,
                    "5.6.7",
                    "Non-ASCII address needs the SMTPUTF8 parameter",
                );
            }
            let a = match parse_address(m) {
                Ok(a) => a,
                Err(e) => return self.reply(553, "5.1.7", &format!("Bad sender address: {e}")),
            };
            tx.from = a.to_string();
            if let Some(auth) = &self.auth {
                match self.shared.core.may_send_as(auth, &a).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let who = auth.address().to_string();
                        return self.reply(
                            553,
                            "5.7.1",
                            &format!("Sender address <{a}> is not owned by {who}"),
                        );
                    }
                    Err(e) => {
                        let r = reply::for_error(&e);
                        return self.send(&r);
                    }
                }
            }
        } else if self.submission() {
            return self.reply(
                553,
                "5.7.1",
                "The null sender is not accepted on submission",
            );
        }
        self.tx = Some(tx);
        self.reply(250, "2.1.0", "Sender OK")
    }

    /// Counts an unknown recipient (metrics and the per-address probe guard; not the
    /// ledger, see `probe`). Not counted as an error towards
    /// `errors_before_disconnect`: a list with stale addresses must still reach the valid
    /// ones; `max_unknown_recipients` and the probe guard are the defence against
    /// probing.
    async fn unknown_rcpt(&mut self) -> Flow {
        self.unknown_rcpts += 1;
        metrics::counter!("postern_smtp_rcpt_unknown_total").increment(1);
        let shared = self.shared.clone();
        shared.probes.unknown_anywhere(self.remote.ip()).await;
        self.conn
            .send(line(550, "5.1.1", "No such user here").as_bytes());
        if self.unknown_rcpts >= self.shared.policy.max_unknown_recipients {
            return self.close_with(
                "4.7.1",
                "Too many unknown recipients; closing",
                "unknown_recipients",
            );
        }
        Flow::Continue
    }

    /// RFC 5321 §4.1.1.3.
    async fn rcpt(&mut self, path: Path, params: Vec<(String, Option<String>)>) -> Flow {
        let Some(tx) = &self.tx else {
            return self.reply(503, "5.5.1", "Send MAIL first");
        };
        let (declared, smtputf8, count) = (tx.declared_size, tx.smtputf8, tx.rcpts.len());
        if count >= self.shared.limits.recipients_per_message as usize {
            // RFC 5321 §4.5.3.1.10.
            return self.reply(452, "4.5.3", "Too many recipients");
        }
        let shared = self.shared.clone();
        if shared.probes.blocked_anywhere(self.remote.ip()).await {
            metrics::counter!("postern_smtp_rcpt_refused_total", "reason" => "probe_block")
                .increment(1);
            return self.reply(
                450,
                "4.7.1",
                "Too many unknown recipients from your address; try again later",
            );
        }
        // RFC 3461 NOTIFY and ORCPT, on submission only (where DSN is offered).
        let mut notify = None;
        let mut orcpt = None;
        for (key, value) in &params {
            match (key.as_str(), value.as_deref()) {
                ("NOTIFY", Some(v)) if self.submission() && notify.is_none() => {
                    let Some(n) = parse_notify(v) else {
                        return self.reply(
                            501,
                            "5.5.4",
                            "Syntax: NOTIFY=NEVER or NOTIFY=SUCCESS,FAILURE,DELAY",
                        );
                    };
                    notify = Some(n);
                }
                ("ORCPT", Some(v)) if self.submission() && orcpt.is_none() => {
                    // `addr-type ";" xtext`, at most 500 characters (RFC 3461 §4.2).
                    let ok = v.len() <= 500
                        && v.split_once(';').is_some_and(|(t, x)| {
                            !t.is_empty()
                                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                                && is_xtext(x)
                        });
                    if !ok {
                        return self.reply(501, "5.5.4", "Syntax: ORCPT=<addr-type>;<xtext>");
                    }
                    orcpt = Some(v.to_string());
                }
                _ => {
                    return self.reply(555, "5.5.4", &format!("Unsupported RCPT parameter {key}"));
                }
            }
        }
        let a: Address = match &path {
            Path::Null => return self.reply(501, "5.5.4", "Syntax: RCPT TO:<address>"),
            // RFC 5321 §4.5.1: <Postmaster> without a domain MUST be accepted; it is the
            // postmaster of the domain we answer as: our host name, or the nearest
            // parent domain of it that is ours (mx.example.com → example.com).
            Path::Postmaster => match postmaster(&self.shared).await {
                Some(a) => a,
                None => return self.reply(550, "5.1.1", "No such user here"),
            },
            Path::Mailbox(m) => {
                if !m.is_ascii() && !smtputf8 {
                    return self.reply(
                        553,
                        "5.6.7",
                        "Non-ASCII address needs the SMTPUTF8 parameter",
                    );
                }
                if m.rsplit_once('@').is_some_and(|(_, d)| d.starts_with('[')) {
                    // `<u@[192.0.2.1]>` names a host, not one of our domains.
                    return self.reply(
                        550,
                        "5.7.1",
                        "Relaying denied: address literals are not accepted",
                    );
                }
                match parse_address(m) {
                    Ok(a) => a,
                    // `%` and `!` relay hacks, quoting, control characters land here.
                    Err(e) => {
                        return self.reply(553, "5.1.3", &format!("Bad recipient address: {e}"));
                    }
                }
            }
        };
        let resolution = match self.shared.core.resolve(&a).await {
            Ok(r) => r,
            Err(e) => {
                warn!(session = self.id, error = %e, "recipient lookup failed");
                let r = reply::for_error(&e);
                return self.send(&r);
            }
        };
        // An SRS address of one of our domains is a bounce path, whatever a catch-all
        // would do with it.
        if postern_core::srs::is_srs(a.local()) && !matches!(resolution, Resolution::NotOurs) {
            return self.srs_rcpt(a, notify, orcpt).await;
        }
        let (local, external) = match resolution {
            Resolution::NotOurs if self.submission() => {
                // An authenticated user's mail to another domain: the outbound queue.
                if let Some(tx) = self.tx.as_mut() {
                    tx.rcpts.push(Rcpt {
                        address: a.to_string(),
                        principals: Vec::new(),
                        quota_skipped: Vec::new(),
                        external: true,
                        forward: Vec::new(),
                        notify,
                        orcpt,
                    });
                }
                return self.reply(250, "2.1.5", "Recipient OK (to be relayed)");
            }
            Resolution::NotOurs => {
                metrics::counter!("postern_smtp_rcpt_refused_total", "reason" => "relay")
                    .increment(1);
                return self.reply(550, "5.7.1", "Relaying denied");
            }
            // RFC 5321 §4.5.1: postmaster@ each of our domains is always deliverable;
            // without an alias it goes to the domain's first account.
            Resolution::Unknown if a.local().eq_ignore_ascii_case("postmaster") => {
                match self.shared.core.postmaster_fallback(a.domain()).await {
                    Ok(Some(p)) => (vec![p], Vec::new()),
                    Ok(None) => return self.unknown_rcpt().await,
                    Err(e) => {
                        let r = reply::for_error(&e);
                        return self.send(&r);
                    }
                }
            }
            Resolution::Unknown => return self.unknown_rcpt().await,
            Resolution::Deliver {
                local,
                external,
                restricted,
            } => {
                // Groups that take mail only from logged-in senders or their members
                // (postmaster is always deliverable, RFC 5321 §4.5.1).
                let postmaster = a.local().eq_ignore_ascii_case("postmaster");
                match self
                    .shared
                    .core
                    .group_refuses(&restricted, self.auth.as_ref())
                    .await
                {
                    Ok(None) => {}
                    Ok(Some(_)) if postmaster => {}
                    Ok(Some((g, why))) => {
                        metrics::counter!("postern_smtp_rcpt_refused_total", "reason" => "group_senders")
                            .increment(1);
                        // The address the sender wrote, not the group met inside it: aliases
                        // and nested groups stay private (the log names the group).
                        info!(session = self.id, rcpt = %a, group = %g.address, "refused: group sender rule");
                        let text = format!("{a} {why}");
                        return self.reply(550, "5.7.1", &text);
                    }
                    Err(e) => {
                        let r = reply::for_error(&e);
                        return self.send(&r);
                    }
                }
                (local, external)
            }
        };
        if !external.is_empty() && !self.submission() && !self.shared.core.can_forward() {
            // External targets (an alias forwarding outside) go out with an SRS sender;
            // without the installation's SRS key (a store opened without `serve`'s
            // set-up) delivering only the local targets would drop the forward
            // silently: 451 makes the sender retry instead.
            metrics::counter!("postern_smtp_rcpt_refused_total", "reason" => "forward_only")
                .increment(1);
            return self.reply(
                451,
                "4.3.0",
                "Forwarding for this address is not available; try again later",
            );
        }
        let forward: Vec<String> = external.iter().map(|e| e.to_string()).collect();
        let mut principals = Vec::with_capacity(local.len());
        let mut quota_skipped = Vec::new();
        let (mut full, mut too_large) = (false, false);
        for p in local {
            match self.shared.core.quota_check(&p, declared).await {
                Ok(QuotaCheck::Ok) => principals.push(p),
                Ok(QuotaCheck::Full) => {
                    full = true;
                    quota_skipped.push(p.local_part.clone());
                }
                Ok(QuotaCheck::TooLarge) => {
                    too_large = true;
                    quota_skipped.push(p.local_part.clone());
                }
                Err(e) => {
                    let r = reply::for_error(&e);
                    return self.send(&r);
                }
            }
        }
        if principals.is_empty() && forward.is_empty() {
            metrics::counter!("postern_smtp_rcpt_refused_total", "reason" => "quota").increment(1);
            return if too_large && !full {
                // RFC 1870 §6.2 / RFC 3463 5.2.2.
                self.reply(
                    552,
                    "5.2.2",
                    "Mailbox full: the message is larger than the space left",
                )
            } else {
                self.reply(452, "4.2.2", "Mailbox full")
            };
        }
        let rcpt = Rcpt {
            address: a.to_string(),
            principals,
            quota_skipped,
            external: false,
            forward,
            notify,
            orcpt,
        };
        if let Some(tx) = self.tx.as_mut() {
            tx.rcpts.push(rcpt);
        }
        self.reply(250, "2.1.5", "Recipient OK")
    }

    /// RCPT to an SRS address of ours ([`postern_core::srs`]): only a bounce
    /// (`MAIL FROM:<>`) may use it, and only when its hash and age check; it then goes on
    /// to the address it encodes. Anything else is an unknown user (a forged or expired
    /// address), or 550 5.7.1 for a real one used with a sender.
    async fn srs_rcpt(
        &mut self,
        a: Address,
        notify: Option<String>,
        orcpt: Option<String>,
    ) -> Flow {
        let bounce = self.tx.as_ref().is_some_and(|t| t.from.is_empty());
        match self.shared.core.srs_reverse(&a).await {
            Ok(Some(to)) if bounce => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.rcpts.push(Rcpt {
                        address: a.to_string(),
                        principals: Vec::new(),
                        quota_skipped: Vec::new(),
                        external: false,
                        forward: vec![to],
                        notify,
                        orcpt,
                    });
                }
                self.reply(
                    250,
                    "2.1.5",
                    "Recipient OK (returned to the original sender)",
                )
            }
            Ok(Some(_)) => self.reply(
                550,
                "5.7.1",
                "This address takes only delivery status notifications (MAIL FROM:<>)",
            ),
            Ok(None) => self.unknown_rcpt().await,
            Err(e) => {
                let r = reply::for_error(&e);
                self.send(&r)
            }
        }
    }

    /// The `failed` DSN (RFC 3464, status 5.2.2) for recipients a delivery left out
    /// because the message did not fit in what was left of their quota: one per RCPT
    /// that named one account (itself, an alias of it or a plus form), with that RCPT's
    /// address, ORCPT and NOTIFY (none when NOTIFY leaves FAILURE out). Members of a
    /// group are a list's (RFC 3461 §6.2.7.4): their failures are not reported to the
    /// sender, who would learn the membership; the ledger entry names them.
    fn quota_notice(
        &self,
        tx: &Tx,
        header: Vec<u8>,
        left_out: &[postern_core::store::PrincipalId],
    ) -> Option<Vec<u8>> {
        use postern_outbound::dsn::{Action, DsnRecipient};
        let now = time::OffsetDateTime::now_utc();
        let recipients: Vec<DsnRecipient> = tx
            .rcpts
            .iter()
            .filter(|r| matches!(r.principals.as_slice(), [p] if left_out.contains(&p.id)))
            .filter(|r| {
                r.notify
                    .as_deref()
                    .is_none_or(|n| n.split(',').any(|v| v == "FAILURE"))
            })
            .map(|r| DsnRecipient {
                final_recipient: r.address.clone(),
                original_recipient: r.orcpt.clone(),
                action: Action::Failed,
                status: "5.2.2".into(),
                remote_mta: None,
                diagnostic: Some(
                    "552 5.2.2 mailbox full: the message does not fit in what is left of the quota"
                        .into(),
                ),
                last_attempt: Some(now),
                will_retry_until: None,
            })
            .collect();
        if recipients.is_empty() {
            return None;
        }
        Some(self.notice(tx, header, &recipients))
    }

    /// A DSN from this session about `tx` to its sender, with the original's header.
    fn notice(
        &self,
        tx: &Tx,
        header: Vec<u8>,
        recipients: &[postern_outbound::dsn::DsnRecipient],
    ) -> Vec<u8> {
        use postern_outbound::dsn::{self, DsnInput, Ret};
        let now = time::OffsetDateTime::now_utc();
        dsn::build(&DsnInput {
            reporting_mta: &self.shared.hostname,
            return_to: &tx.from,
            envid: tx.envid.as_deref(),
            arrival: now,
            now,
            recipients,
            original: &header,
            ret: Ret::Headers,
        })
    }

    /// Sends the `delivered` DSN (RFC 3461 NOTIFY=SUCCESS) for recipients of ours to the
    /// sender. A failure is logged: the message itself is delivered.
    fn success_notice(&self, tx: &Tx, header: Vec<u8>, to: Vec<String>) -> Vec<u8> {
        use postern_outbound::dsn::{Action, DsnRecipient};
        let now = time::OffsetDateTime::now_utc();
        let recipients: Vec<DsnRecipient> = tx
            .rcpts
            .iter()
            .filter(|r| to.contains(&r.address))
            .map(|r| DsnRecipient {
                final_recipient: r.address.clone(),
                original_recipient: r.orcpt.clone(),
                action: Action::Delivered,
                status: "2.0.0".into(),
                remote_mta: None,
                diagnostic: None,
                last_attempt: Some(now),
                will_retry_until: None,
            })
            .collect();
        self.notice(tx, header, &recipients)
    }

    /// RFC 5321 §4.1.1.4.
    async fn data(&mut self) -> Flow {
        let Some(tx) = &self.tx else {
            return self.reply(503, "5.5.1", "Send MAIL first");
        };
        if tx.bdat.is_some() {
            return self.reply(503, "5.5.1", "DATA cannot follow BDAT (RFC 3030 §2)");
        }
        if tx.rcpts.is_empty() {
            // RFC 5321 §3.3.
            return self.reply(554, "5.5.1", "No valid recipients");
        }
        self.conn.send(b"354 End data with <CR><LF>.<CR><LF>\r\n");
        // A total for the whole message (see `limits.smtp_data_timeout_secs`), within
        // the connection's lifetime.
        let deadline = (Instant::now() + self.shared.limits.data_timeout).min(self.session_end);
        let limits = &self.shared.limits;
        let budget = self.shared.budget.clone();
        let read = data::read_data(
            &mut self.conn,
            limits.message_size,
            limits.line_length,
            deadline,
            &budget,
        )
        .await;
        match read {
            Err(ConnError::Timeout) => {
                self.close_with("4.4.2", "Timeout waiting for data; closing", "timeout")
            }
            Err(_) => Flow::Close,
            Ok(Err(problem)) => self.refuse_text(problem),
            Ok(Ok((msg, held))) => {
                let flow = self.finish(msg).await;
                // The budget is given back once the message has left memory.
                drop(held);
                flow
            }
        }
    }

    fn refuse_text(&mut self, problem: Problem) -> Flow {
        self.tx = None;
        self.messages += 1;
        let reason = match problem {
            Problem::TooBig => "too_big",
            Problem::Busy => "inflight_budget",
            Problem::LineTooLong => "line_too_long",
            Problem::BareLf => "bare_lf",
            Problem::BareCr => "bare_cr",
        };
        metrics::counter!("postern_smtp_messages_refused_total", "reason" => reason).increment(1);
        info!(session = self.id, reason, "message refused");
        let r = problem.reply(self.shared.limits.line_length);
        self.send(&r)
    }

    /// RFC 3030.
    async fn bdat(&mut self, size: u64, last: bool) -> Flow {
        let deadline = (Instant::now() + self.shared.limits.data_timeout).min(self.session_end);
        let max = self.shared.limits.message_size;
        let valid = self.tx.as_ref().is_some_and(|t| !t.rcpts.is_empty());
        if !valid {
            // The chunk is read and dropped all the same: its bytes must never be taken
            // as commands (they would be text the client meant as message).
            return match self.conn.read_exact_into(size, None, deadline).await {
                Err(ConnError::Timeout) => {
                    self.close_with("4.4.2", "Timeout waiting for data; closing", "timeout")
                }
                Err(_) => Flow::Close,
                Ok(()) if self.tx.is_some() => self.reply(554, "5.5.1", "No valid recipients"),
                Ok(()) => self.reply(503, "5.5.1", "Send MAIL and RCPT first"),
            };
        }
        let Some(tx) = self.tx.as_mut() else {
            return Flow::Close;
        };
        let buf = tx.bdat.get_or_insert_with(Vec::new);
        let fits = (buf.len() as u64).saturating_add(size) <= max;
        // Memory for the chunk comes out of the process-wide budget before it is read.
        let budgeted = fits
            && tx.bdat_held.grow(
                &self.shared.budget,
                usize::try_from(size).unwrap_or(usize::MAX),
            );
        let sink = if budgeted { Some(buf) } else { None };
        match self.conn.read_exact_into(size, sink, deadline).await {
            Err(ConnError::Timeout) => {
                return self.close_with("4.4.2", "Timeout waiting for data; closing", "timeout");
            }
            Err(_) => return Flow::Close,
            Ok(()) => {}
        }
        if !fits {
            return self.refuse_text(Problem::TooBig);
        }
        if !budgeted {
            return self.refuse_text(Problem::Busy);
        }
        if !last {
            return self.reply(250, "2.0.0", &format!("{size} octets received"));
        }
        let msg = self
            .tx
            .as_mut()
            .and_then(|t| t.bdat.take())
            .unwrap_or_default();
        let held = self.tx.as_mut().map(|t| std::mem::take(&mut t.bdat_held));
        if let Err(p) = data::check_text(&msg, self.shared.limits.line_length) {
            return self.refuse_text(p);
        }
        let flow = self.finish(msg).await;
        drop(held);
        flow
    }

    /// The message is complete: checks, trace fields, delivery, and the reply that
    /// acknowledges it only once it is durable (DESIGN invariant 13).
    async fn finish(&mut self, msg: Vec<u8>) -> Flow {
        let Some(tx) = self.tx.take() else {
            return self.reply(503, "5.5.1", "Send MAIL first");
        };
        self.messages += 1;
        // RFC 5321 §6.3: a message that already crossed this many hops is looping
        // (forwarding aliases make loops between servers possible).
        if trace::received_count(&msg) >= self.shared.limits.max_received as usize {
            metrics::counter!("postern_smtp_messages_refused_total", "reason" => "loop")
                .increment(1);
            info!(session = self.id, from = %tx.from, "refused: too many Received fields");
            return self.reply(
                554,
                "5.4.6",
                "Too many Received fields: the message is looping (RFC 5321 §6.3)",
            );
        }
        let shared = self.shared.clone();
        let hostname = shared.hostname.as_str();
        let ip = self.remote.ip();
        let (helo, esmtp) = match &self.helo {
            Some(h) => (h.name.clone(), h.esmtp),
            None => ("unknown".to_string(), false),
        };
        // Random (as store ids are): unique across restarts, unlike the connection
        // number, which starts again at every process start; it names the message in
        // the reply, the Received field and the ledger entry.
        let mid = postern_core::store::MessageId::generate().to_string();
        let with = trace::protocol(esmtp, tx.smtputf8, self.tls, self.auth.is_some());
        let single = (tx.rcpts.len() == 1).then(|| tx.rcpts[0].address.clone());
        let trace_fields = trace::trace_fields(
            &tx.from,
            &helo,
            ip,
            hostname,
            &with,
            &mid,
            single.as_deref(),
            &trace::date_now(),
        );
        let principals: Vec<Principal> = tx
            .rcpts
            .iter()
            .flat_map(|r| r.principals.iter().cloned())
            .collect();
        let mut details = json!({
            "message_id": mid,
            "listener": self.kind.name(),
            "helo": helo,
            "tls": self.tls,
            "rcpt": tx.rcpts.iter().map(|r| r.address.clone()).collect::<Vec<_>>(),
        });
        let quota: Vec<_> = tx
            .rcpts
            .iter()
            .filter(|r| !r.quota_skipped.is_empty())
            .map(|r| json!({"rcpt": r.address, "members": r.quota_skipped}))
            .collect();
        if !quota.is_empty() {
            details["quota_skipped"] = json!(quota);
        }
        if let Some(b) = &tx.body {
            details["body"] = json!(b);
        }
        let size = msg.len();
        let mut success_notice: Option<(Vec<u8>, Vec<String>)> = None;
        // The header returned in a failure notice for recipients left out over quota
        // (kept only when there is a sender to tell).
        let mut notice_header: Option<Vec<u8>> = None;
        let result = if self.submission() {
            let Some(auth) = self.auth.clone() else {
                return self.reply(530, "5.7.0", "Authentication required");
            };
            let (body, removed) = trace::strip_forged_results(msg, hostname);
            if removed > 0 {
                details["removed_authentication_results"] = json!(removed);
            }
            let mut full = trace_fields.into_bytes();
            full.extend_from_slice(&body);
            drop(body);
            let mut external: Vec<OutboundRecipient> = tx
                .rcpts
                .iter()
                .filter(|r| r.external)
                .map(|r| OutboundRecipient {
                    address: r.address.clone(),
                    orcpt: r.orcpt.clone(),
                    notify: r.notify.clone(),
                })
                .collect();
            // An alias of ours forwarding elsewhere: the user's own mail goes out from
            // the user's address (no SRS needed), like any other external recipient.
            external.extend(tx.rcpts.iter().flat_map(|r| {
                r.forward.iter().map(|f| OutboundRecipient {
                    address: f.clone(),
                    orcpt: Some(original_recipient(r)),
                    notify: r.notify.clone(),
                })
            }));
            let envelope = EnvelopeOptions {
                smtputf8: tx.smtputf8,
                envid: tx.envid.clone(),
                ret: tx.ret.clone(),
                requiretls: tx.requiretls,
                ..EnvelopeOptions::default()
            };
            // DKIM-sign with the author's domain keys (DMARC alignment), as the message
            // will be stored and sent.
            let signed = match dkim_sign(&shared.core, &full).await {
                Ok(Some(headers)) => {
                    details["dkim_signed"] = json!(true);
                    let mut out = headers.into_bytes();
                    out.extend_from_slice(&full);
                    out
                }
                Ok(None) => full,
                Err(e) => {
                    warn!(session = self.id, error = %e, "DKIM signing failed");
                    return self.reply(451, "4.3.0", "Signing failed; try again later");
                }
            };
            // RFC 3461 NOTIFY=SUCCESS for recipients delivered here: a `delivered` notice
            // once the delivery is durable (with the header only).
            let success: Vec<String> = tx
                .rcpts
                .iter()
                .filter(|r| !r.external)
                .filter(|r| {
                    r.notify
                        .as_deref()
                        .is_some_and(|n| n.split(',').any(|v| v == "SUCCESS"))
                })
                .map(|r| r.address.clone())
                .collect();
            if !tx.from.is_empty() {
                let header = postern_outbound::dsn::header_of(&signed).to_vec();
                if !success.is_empty() {
                    success_notice = Some((header.clone(), success));
                }
                notice_header = Some(header);
            }
            shared
                .core
                .submit(
                    &auth,
                    &tx.from,
                    &principals,
                    &external,
                    &envelope,
                    signed,
                    details,
                )
                .await
        } else {
            // RFC 7489 §6.6.1: DMARC needs exactly one author domain. A message with no
            // From, several From fields or several addresses would leave DMARC nothing
            // (or the wrong thing) to check while a mail client shows some author:
            // refused (RFC 5322 §3.6 requires exactly one From field).
            if let Err(why) = postern_core::delivery::single_from(&msg) {
                metrics::counter!("postern_smtp_messages_refused_total", "reason" => "from_field")
                    .increment(1);
                info!(session = self.id, from = %tx.from, why, "refused: not exactly one author");
                return self.reply(
                    550,
                    "5.7.1",
                    &format!("Message rejected: {why} (RFC 5322 §3.6, RFC 7489 §6.6.1)"),
                );
            }
            // RFC 7208 / 6376 / 7489 / 8617 checks on the text as received.
            let verdict = shared
                .verifier
                .verify(&VerifyInput {
                    remote_ip: ip,
                    helo: &helo,
                    mail_from: &tx.from,
                    hostname,
                    raw: &msg,
                })
                .await;
            let mut to_junk = false;
            match verdict.dmarc {
                DmarcDisposition::Fail(DmarcPolicy::Reject) => {
                    match shared.policy.dmarc_reject {
                        DmarcRejectAction::Reject => {
                            metrics::counter!("postern_smtp_messages_refused_total", "reason" => "dmarc").increment(1);
                            info!(session = self.id, from = %tx.from, "refused by DMARC p=reject");
                            // RFC 7489 §6.7 / §10.3: reject within the SMTP transaction.
                            // RFC 7372 §3.2: 5.7.26, multiple authentication checks failed.
                            return self.reply(550, "5.7.26", "Message rejected: it fails the DMARC policy of the sender's domain");
                        }
                        DmarcRejectAction::Quarantine => to_junk = true,
                        DmarcRejectAction::Accept => {}
                    }
                }
                DmarcDisposition::Fail(DmarcPolicy::Quarantine) => {
                    to_junk = shared.policy.dmarc_quarantine == DmarcQuarantineAction::Junk;
                }
                // TempError: accepted; the Authentication-Results field says temperror.
                _ => {}
            }
            details["authentication"] = verdict.summary.clone();
            let (body, removed) = trace::strip_forged_results(msg, hostname);
            if removed > 0 {
                details["removed_authentication_results"] = json!(removed);
            }
            let mut full = trace_fields.into_bytes();
            full.extend_from_slice(verdict.authentication_results.as_bytes());
            full.extend_from_slice(&body);
            drop(body);
            if !tx.from.is_empty() {
                notice_header = Some(postern_outbound::dsn::header_of(&full).to_vec());
            }
            let ctx = Ctx {
                actor: Actor {
                    account: None,
                    role: Role::Service,
                },
                session: self.session_info(),
            };
            // Aliases forwarding to other domains (and SRS bounces going back): queued
            // with the delivery, from the SRS sender of the first forwarding alias's
            // domain.
            let forwarding = tx
                .rcpts
                .iter()
                .find(|r| !r.forward.is_empty())
                .map(|first| postern_core::srs::Forwarding {
                    via_domain: first
                        .address
                        .rsplit_once('@')
                        .map(|(_, d)| d.to_string())
                        .unwrap_or_default(),
                    // ORCPT: the address the sender wrote (RFC 3461 §4.2), so a
                    // report of the forward says which of theirs it was.
                    to: tx
                        .rcpts
                        .iter()
                        .flat_map(|r| r.forward.iter().map(move |f| (r, f)))
                        .map(|(r, f)| OutboundRecipient {
                            address: f.clone(),
                            orcpt: Some(original_recipient(r)),
                            notify: None,
                        })
                        .collect(),
                });
            shared
                .core
                .deliver_forwarding(
                    &ctx,
                    &tx.from,
                    &principals,
                    forwarding.as_ref(),
                    full,
                    to_junk,
                    details,
                )
                .await
        };
        match result {
            Ok(d) => {
                metrics::counter!("postern_smtp_messages_accepted_total", "listener" => self.kind.name()).increment(1);
                if !d.left_out.is_empty() {
                    // SMTP has one reply after DATA: the recipients with room have the
                    // message; those without are named in the ledger entry.
                    metrics::counter!("postern_smtp_quota_left_out_total")
                        .increment(d.left_out.len() as u64);
                    info!(session = self.id, id = %mid, left_out = d.left_out.len(), "recipients left out: over quota");
                    // Accepted with 250, so the sender hears of them by a failure DSN
                    // (RFC 5321 §6.1), unless it is a bounce or NOTIFY excludes it.
                    if let Some(header) = notice_header.take()
                        && let Some(report) = self.quota_notice(&tx, header, &d.left_out_ids)
                    {
                        let shared = self.shared.clone();
                        if let Err(e) = shared
                            .core
                            .return_to_sender(
                                self.kind.name(),
                                &tx.from,
                                report,
                                &format!("smtp:{mid}"),
                            )
                            .await
                        {
                            warn!(session = self.id, error = %e, "could not send the over-quota notice");
                        }
                    }
                }
                info!(session = self.id, id = %mid, from = %tx.from, recipients = d.stored.len(), size, "delivered");
                self.junk = 0;
                // Not "delivered" for a recipient whose every account was left out.
                let success_notice = success_notice.and_then(|(header, mut success)| {
                    success.retain(|addr| {
                        !tx.rcpts.iter().any(|r| {
                            &r.address == addr
                                && !r.principals.is_empty()
                                && r.principals.iter().all(|p| d.left_out_ids.contains(&p.id))
                        })
                    });
                    (!success.is_empty()).then_some((header, success))
                });
                if let Some((header, success)) = success_notice {
                    let report = self.success_notice(&tx, header, success);
                    let shared = self.shared.clone();
                    if let Err(e) = shared
                        .core
                        .return_to_sender("submission", &tx.from, report, &format!("smtp:{mid}"))
                        .await
                    {
                        warn!(session = self.id, error = %e, "could not send the success notice");
                    }
                }
                self.reply(250, "2.0.0", &format!("Message accepted, id {mid}"))
            }
            // The message fits no recipient's remaining quota: nothing was stored (no
            // blob either); on retry the RCPT check leaves out the full mailboxes.
            Err(CoreError::QuotaExceeded) => self.reply(
                452,
                "4.2.2",
                "Mailbox full; nothing was delivered, try again later",
            ),
            Err(CoreError::Refused(why)) if self.submission() => self.reply(550, "5.7.1", &why),
            Err(e) => {
                warn!(session = self.id, error = %e, "delivery failed");
                let r = reply::for_error(&e);
                self.send(&r)
            }
        }
    }
}

/// The postmaster address for `RCPT TO:<Postmaster>` (RFC 5321 §4.5.1).
async fn postmaster(shared: &Shared) -> Option<Address> {
    let mut domain = shared.hostname.as_str();
    loop {
        let a = parse_address(&format!("postmaster@{domain}")).ok()?;
        match shared.core.resolve(&a).await {
            Ok(Resolution::Deliver { .. }) => return Some(a),
            Ok(Resolution::Unknown)
                if matches!(shared.core.postmaster_fallback(domain).await, Ok(Some(_))) =>
            {
                return Some(a);
            }
            _ => {}
        }
        // Stop before a bare top-level label.
        match domain.split_once('.') {
            Some((_, parent)) if parent.contains('.') => domain = parent,
            _ => return None,
        }
    }
}

/// The DKIM-Signature fields for a submitted message: signed with every key of the domain
/// of its (single) From address, when that domain has keys. `Ok(None)`: nothing to sign
/// with. Signing runs off the async threads (RSA takes a few milliseconds).
pub async fn dkim_sign(core: &postern_core::Core, raw: &[u8]) -> Result<Option<String>, String> {
    let Ok(from) = postern_core::delivery::single_from(raw) else {
        return Ok(None);
    };
    let Some((_, domain)) = from.rsplit_once('@') else {
        return Ok(None);
    };
    postern_outbound::dkim::sign_as_domain(core, domain, raw).await
}

/// xtext (RFC 3461 §4): printable ASCII except `+` and `=`, which appear only as `+HH`.
fn is_xtext(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
                if !(i + 2 < b.len() && hex(b[i + 1]) && hex(b[i + 2])) {
                    return false;
                }
                i += 3;
            }
            b'!'..=b'~' if b[i] != b'=' => i += 1,
            _ => return false,
        }
    }
    true
}

/// RFC 3461 §4.1: `NEVER`, or one or more of `SUCCESS`, `FAILURE`, `DELAY`.
fn parse_notify(v: &str) -> Option<String> {
    let parts: Vec<String> = v
        .split(',')
        .map(|p| p.trim().to_ascii_uppercase())
        .collect();
    let never = parts.iter().any(|p| p == "NEVER");
    let known = parts
        .iter()
        .all(|p| matches!(p.as_str(), "NEVER" | "SUCCESS" | "FAILURE" | "DELAY"));
    let mut unique = parts.clone();
    unique.sort();
    unique.dedup();
    if !known || (never && parts.len() > 1) || unique.len() != parts.len() {
        return None;
    }
    Some(parts.join(","))
}

/// RFC 3461 ORCPT for a forwarded copy: the sender's own ORCPT when given, else the
/// address the sender wrote, as `rfc822;` xtext (§4, §4.2).
fn original_recipient(r: &Rcpt) -> String {
    if let Some(o) = &r.orcpt {
        return o.clone();
    }
    let mut x = String::from("rfc822;");
    for b in r.address.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            x.push(b as char);
        } else {
            x.push_str(&format!("+{b:02X}"));
        }
    }
    x
}
