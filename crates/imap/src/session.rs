//! One IMAP connection: the state machine of RFC 9051 §3 (not authenticated →
//! authenticated → selected → logout), reading commands with the bounded parser and
//! answering them from `core`.

use crate::Shared;
use crate::conn::{Conn, ConnError, FLUSH_AT};
use crate::response::{self as resp, Utf8};
use crate::selected::{Delta, Selected, SetError};
use postern_core::access::{AclChange, MailboxAccess, Rights};
use postern_core::mailbox::NewMessage;
use postern_core::store::{FlagAction, Flags, SessionInfo, SpecialUse};
use postern_core::{Authenticated, CoreError};
use postern_imap_proto::{
    AuthResponse, Command, CommandBody, Flag, ListCommand, ListReturn, ListSelect, Mailbox,
    ParseError, StatusItem, StoreAction, Tag, parse_auth_response, parse_command, parse_idle_done,
};
use postern_net::{BoxStream, ConnInfo, Shutdown};
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Longest LIST/LSUB reference plus patterns, in bytes (twice the longest name).
const MAX_LIST_PATTERN_BYTES: usize = 2 * postern_core::mailbox::MAX_MAILBOX_NAME_BYTES;

/// What ENABLE turned on (RFC 5161).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Enabled {
    pub imap4rev2: bool,
    pub condstore: bool,
    pub qresync: bool,
    pub utf8: bool,
}

pub(crate) enum Flow {
    Continue,
    Logout,
}

pub(crate) struct Session {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Conn,
    pub(crate) info: ConnInfo,
    pub(crate) shutdown: Shutdown,
    pub(crate) tls: bool,
    pub(crate) auth: Option<Authenticated>,
    pub(crate) enabled: Enabled,
    pub(crate) selected: Option<Selected>,
    pub(crate) notices: Option<broadcast::Receiver<postern_core::store::ChangeNotice>>,
    /// A change notice for our account arrived since the last catch-up.
    pub(crate) dirty: bool,
    /// A `* BYE` went out from catch-up (the selected mailbox was deleted): the session
    /// ends after the current command, as BYE promises (RFC 9051 §7.1.5).
    pub(crate) closing: bool,
    pub(crate) client_id: Option<String>,
    bad_commands: u32,
    /// When the connection began: the login timeout counts from here.
    started: Instant,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    stream: BoxStream,
    info: ConnInfo,
    shutdown: Shutdown,
) {
    let tls = info.tls;
    let conn = Conn::new(stream, shared.settings.write_timeout);
    let mut s = Session {
        shared,
        conn,
        info,
        shutdown,
        tls,
        auth: None,
        enabled: Enabled::default(),
        selected: None,
        notices: None,
        dirty: false,
        closing: false,
        client_id: None,
        bad_commands: 0,
        started: Instant::now(),
    };
    metrics::gauge!("postern_imap_sessions").increment(1.0);
    let caps = s.capabilities();
    s.send(format!("* OK [CAPABILITY {caps}] Postern IMAP4rev2 ready\r\n").as_bytes());
    s.serve().await;
    s.conn.close().await;
    metrics::gauge!("postern_imap_sessions").decrement(1.0);
}

impl Session {
    pub(crate) fn send(&mut self, b: &[u8]) {
        self.conn.send(b);
    }

    pub(crate) fn utf8(&self) -> Utf8 {
        Utf8(self.enabled.imap4rev2 || self.enabled.utf8)
    }

    fn limits(&self) -> postern_imap_proto::Limits {
        if self.auth.is_some() {
            self.shared.settings.limits.clone()
        } else {
            // Before login nobody needs a large literal: LITERAL- and small caps.
            let mut l = self.shared.settings.limits.clone();
            l.literal_size = l
                .literal_size
                .min(self.shared.settings.preauth_literal_size);
            l.line_length = l.line_length.min(self.shared.settings.preauth_line_length);
            l.literal_plus = false;
            l
        }
    }

    fn plaintext_login_allowed(&self) -> bool {
        self.tls
            || (self.shared.settings.allow_plaintext_auth_on_loopback
                && self.info.remote.ip().is_loopback())
    }

    pub(crate) fn capabilities(&self) -> String {
        let mut c = vec!["IMAP4rev2", "IMAP4rev1", "SASL-IR", "ID", "ENABLE"];
        // Before login the parser takes non-synchronising literals of at most 4096
        // bytes (`limits()`): that is LITERAL-, not LITERAL+ (RFC 7888 §5).
        c.push(if self.auth.is_some() {
            "LITERAL+"
        } else {
            "LITERAL-"
        });
        if self.auth.is_none() {
            if !self.tls && self.info.tls_acceptor.is_some() {
                c.push("STARTTLS");
            }
            if self.plaintext_login_allowed() {
                c.push("AUTH=PLAIN");
            } else {
                c.push("LOGINDISABLED");
            }
            return c.join(" ");
        }
        c.extend([
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "SPECIAL-USE",
            "CREATE-SPECIAL-USE",
            "CONDSTORE",
            "QRESYNC",
            "ESEARCH",
            "SEARCHRES",
            "SORT",
            "SORT=DISPLAY",
            "THREAD=REFERENCES",
            "THREAD=ORDEREDSUBJECT",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "STATUS=SIZE",
            "QUOTA",
            // Only STORAGE is limited and reported (RFC 9208 §5: advertise only the
            // resources the server has).
            "QUOTA=RES-STORAGE",
            "BINARY",
            "MULTIAPPEND",
            "CHILDREN",
            "OBJECTID",
            "SAVEDATE",
            "PREVIEW",
            "UTF8=ACCEPT",
            "WITHIN",
            "ACL",
            "RIGHTS=texk",
        ]);
        if !self.conn.compressed() {
            c.push("COMPRESS=DEFLATE");
        }
        let mut s = c.join(" ");
        s.push_str(&format!(
            " APPENDLIMIT={}",
            self.shared.settings.limits.literal_size
        ));
        s
    }

    pub(crate) fn session_info(&self, method: &str) -> SessionInfo {
        SessionInfo {
            protocol: "imap".into(),
            remote: Some(self.info.remote.to_string()),
            client_id: self.client_id.clone(),
            auth_method: Some(method.into()),
            session_id: Some(self.info.id),
        }
    }

    fn deadline(&self) -> Instant {
        if self.auth.is_some() {
            Instant::now() + self.shared.settings.idle_timeout
        } else {
            // The whole time before login, not each pause: bytes trickled one at a time
            // (slowloris, THREATS.md) must not keep an unauthenticated slot forever.
            self.started + self.shared.settings.login_timeout
        }
    }

    async fn serve(&mut self) {
        // The buffer length at which we last answered a synchronising literal with `+`.
        let mut acked_at: Option<usize> = None;
        let mut skipping = false;
        loop {
            if skipping {
                // Dropping the rest of an over-long line, up to its LF.
                match self.conn.buffered().iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        self.conn.consume(i + 1);
                        skipping = false;
                    }
                    None => {
                        self.conn.discard_buffered();
                        if let Err(e) = self.fill().await {
                            self.end(e);
                            return;
                        }
                        continue;
                    }
                }
            }
            let limits = self.limits();
            let parsed = parse_command(self.conn.buffered(), &limits);
            match parsed {
                Ok((n, cmd)) => {
                    self.conn.consume(n);
                    acked_at = None;
                    // Arrived whole in one read, yet over the cap: refused in step.
                    if n as u64 > self.command_size() {
                        let msg = format!(
                            "{} NO [TOOBIG] Command larger than {} bytes\r\n",
                            cmd.tag.as_str(),
                            self.command_size()
                        );
                        self.send(msg.as_bytes());
                        continue;
                    }
                    match self.dispatch(cmd).await {
                        Ok(Flow::Continue) if self.closing => return,
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Logout) => return,
                        Err(e) => {
                            self.end(e);
                            return;
                        }
                    }
                    if self.conn.pending_out() > FLUSH_AT && self.conn.flush().await.is_err() {
                        return;
                    }
                    continue;
                }
                Err(ParseError::Incomplete) => {}
                Err(ParseError::LiteralNeeded {
                    tag,
                    length,
                    non_sync,
                }) => {
                    let here = self.conn.buffered().len();
                    if !non_sync && acked_at != Some(here) {
                        let fits = (here as u64).saturating_add(length) <= self.command_size();
                        if limits.accepts_literal(length) && fits {
                            self.send(b"+ Ready for literal data\r\n");
                            acked_at = Some(here);
                        } else {
                            // The client waits for `+`, so it sends no data: drop the line.
                            self.conn.discard_buffered();
                            acked_at = None;
                            let msg = if fits {
                                format!(
                                    "{} NO [TOOBIG] Literal of {length} bytes is over the limit of {}\r\n",
                                    tag.as_str(),
                                    limits.literal_size
                                )
                            } else {
                                format!(
                                    "{} NO [TOOBIG] Command would be over the limit of {} bytes\r\n",
                                    tag.as_str(),
                                    self.command_size()
                                )
                            };
                            self.send(msg.as_bytes());
                            if self.count_bad() {
                                return;
                            }
                            continue;
                        }
                    }
                }
                Err(ParseError::Failed { tag, reason }) => {
                    let t = tag.as_ref().map(|t| t.as_str()).unwrap_or("*");
                    // Skip the bad command: the whole of it (its literals included) when
                    // buffered, else everything buffered and the rest of the line as it
                    // arrives. Literal data that may still come (a refused `{n+}`, or
                    // bytes sent without waiting for `+`) cannot be told apart from
                    // commands: the connection ends, or a message body (APPEND of mail
                    // a webmail got from outside) would run as commands (RFC 7888 §4).
                    match failed_extent(self.conn.buffered()) {
                        Extent::Through(n) => self.conn.consume(n),
                        Extent::Line => {
                            self.conn.discard_buffered();
                            skipping = true;
                        }
                        Extent::Unsafe => {
                            self.send(format!("{t} BAD {reason}\r\n").as_bytes());
                            self.send(b"* BYE Cannot find the end of that command\r\n");
                            return;
                        }
                    }
                    acked_at = None;
                    self.send(format!("{t} BAD {reason}\r\n").as_bytes());
                    if self.count_bad() {
                        return;
                    }
                    continue;
                }
            }
            // A command still growing past the cap (non-synchronising literals, which
            // were never asked for) cannot be refused in step: the session ends.
            if self.conn.buffered().len() as u64 > self.command_size() {
                let msg = format!(
                    "* BYE [TOOBIG] Command larger than {} bytes\r\n",
                    self.command_size()
                );
                self.send(msg.as_bytes());
                return;
            }
            if let Err(e) = self.fill().await {
                self.end(e);
                return;
            }
        }
    }

    /// Most bytes one command may take with all its literals: MULTIAPPEND's total after
    /// login (`limits.imap_command_size`); before login a line and two small literals.
    fn command_size(&self) -> u64 {
        let st = &self.shared.settings;
        if self.auth.is_some() {
            st.max_command_size
        } else {
            (st.preauth_line_length as u64)
                .saturating_add(st.preauth_literal_size.saturating_mul(2))
        }
    }

    /// Counts a bad command; true when the session must end.
    fn count_bad(&mut self) -> bool {
        self.bad_commands += 1;
        if self.bad_commands >= self.shared.settings.max_bad_commands {
            self.send(b"* BYE Too many invalid commands\r\n");
            return true;
        }
        false
    }

    async fn fill(&mut self) -> Result<(), ConnError> {
        let deadline = self.deadline();
        self.conn.fill(deadline, &mut self.shutdown).await
    }

    fn end(&mut self, e: ConnError) {
        match e {
            ConnError::Timeout => self.send(b"* BYE Autologout; idle for too long\r\n"),
            ConnError::Shutdown => self.send(b"* BYE [UNAVAILABLE] Server shutting down\r\n"),
            ConnError::Closed => {}
        }
    }

    pub(crate) fn tagged(&mut self, tag: &Tag, status: &str, text: &str) {
        let line = format!("{} {status} {text}\r\n", tag.as_str());
        self.send(line.as_bytes());
    }

    pub(crate) fn no_for(&mut self, tag: &Tag, e: &CoreError) {
        let code = match e {
            CoreError::NotFound(_) => "[NONEXISTENT] ",
            CoreError::Conflict(_) => "[ALREADYEXISTS] ",
            CoreError::QuotaExceeded => "[OVERQUOTA] ",
            CoreError::AuthFailed => "[AUTHENTICATIONFAILED] ",
            CoreError::Throttled(_) => "[UNAVAILABLE] ",
            CoreError::Refused(_) | CoreError::Invalid { .. } => "[CANNOT] ",
            CoreError::Forbidden(_) => "[NOPERM] ",
            CoreError::Unavailable(_) => "[UNAVAILABLE] ",
            CoreError::Internal(_) => "[SERVERBUG] ",
        };
        let text = match e {
            CoreError::Internal(m) => {
                warn!(session = self.info.id, error = %m, "internal error");
                "Internal error".to_string()
            }
            other => sanitize(&other.to_string()),
        };
        let line = format!("{} NO {code}{text}\r\n", tag.as_str());
        self.send(line.as_bytes());
    }

    /// Mailbox name from the wire: modified UTF-7 for clients that did not enable UTF-8.
    pub(crate) fn mailbox_name(&self, m: &Mailbox) -> Result<String, String> {
        match m {
            Mailbox::Inbox => Ok("INBOX".into()),
            Mailbox::Other(n) => {
                if self.enabled.imap4rev2 || self.enabled.utf8 {
                    Ok(n.as_str().to_string())
                } else {
                    postern_imap_proto::decode_mutf7(n.as_str().as_bytes())
                        .map_err(|e| format!("mailbox name is not modified UTF-7: {e}"))
                }
            }
        }
    }

    async fn dispatch(&mut self, cmd: Command) -> Result<Flow, ConnError> {
        let Command { tag, body } = cmd;
        debug!(session = self.info.id, tag = tag.as_str(), "command");
        // Commands valid in any state.
        match body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                self.send(format!("* CAPABILITY {caps}\r\n").as_bytes());
                self.tagged(&tag, "OK", "CAPABILITY completed");
                return Ok(Flow::Continue);
            }
            // CHECK is a selected-state command (RFC 3501 §6.4.1).
            CommandBody::Check if self.selected.is_none() => {
                self.tagged(&tag, "BAD", "No mailbox selected");
                return Ok(Flow::Continue);
            }
            CommandBody::Noop | CommandBody::Check => {
                self.catch_up(true).await;
                self.tagged(&tag, "OK", "NOOP completed");
                return Ok(Flow::Continue);
            }
            CommandBody::Logout => {
                self.send(b"* BYE Logging out\r\n");
                self.tagged(&tag, "OK", "LOGOUT completed");
                return Ok(Flow::Logout);
            }
            CommandBody::Id { params } => {
                if let Some(p) = params {
                    let name = p.iter().find_map(|(k, v)| {
                        (k.as_bytes().eq_ignore_ascii_case(b"name"))
                            .then(|| v.as_ref().and_then(|v| v.as_str()).map(str::to_string))
                            .flatten()
                    });
                    if let Some(n) = name {
                        self.client_id =
                            Some(n.chars().filter(|c| !c.is_control()).take(64).collect());
                    }
                }
                self.send(b"* ID (\"name\" \"Postern\" \"vendor\" \"Postern\")\r\n");
                self.tagged(&tag, "OK", "ID completed");
                return Ok(Flow::Continue);
            }
            body => {
                if self.auth.is_none() {
                    return self.not_authenticated(tag, body).await;
                }
                self.authenticated(tag, body).await
            }
        }
    }

    async fn not_authenticated(&mut self, tag: Tag, body: CommandBody) -> Result<Flow, ConnError> {
        match body {
            CommandBody::StartTls => {
                if self.tls {
                    self.tagged(&tag, "BAD", "TLS is already active");
                    return Ok(Flow::Continue);
                }
                let Some(acceptor) = self.info.tls_acceptor.clone() else {
                    self.tagged(&tag, "NO", "TLS is not available");
                    return Ok(Flow::Continue);
                };
                // Anything sent after STARTTLS and before the handshake is not covered
                // by it (CVE-2011-0411 and kin): thrown away, never executed.
                let dropped = self.conn.discard_buffered();
                if dropped > 0 {
                    info!(
                        session = self.info.id,
                        bytes = dropped,
                        "discarded plaintext sent after STARTTLS"
                    );
                }
                self.tagged(&tag, "OK", "Begin TLS negotiation now");
                self.conn.flush().await?;
                let Some(stream) = self.conn.take_stream() else {
                    return Err(ConnError::Closed);
                };
                match postern_net::tls::starttls(
                    stream,
                    &acceptor,
                    self.shared.settings.tls_timeout,
                )
                .await
                {
                    Ok(s) => {
                        self.conn.set_stream(s);
                        self.tls = true;
                        Ok(Flow::Continue)
                    }
                    Err(e) => {
                        debug!(session = self.info.id, error = %e, "STARTTLS handshake failed");
                        Err(ConnError::Closed)
                    }
                }
            }
            CommandBody::Login { username, password } => {
                if !self.plaintext_login_allowed() {
                    self.tagged(
                        &tag,
                        "NO",
                        "[PRIVACYREQUIRED] LOGIN needs TLS (use STARTTLS or port 993)",
                    );
                    return Ok(Flow::Continue);
                }
                let user = String::from_utf8_lossy(username.as_bytes()).into_owned();
                let pass = String::from_utf8_lossy(password.expose().as_bytes()).into_owned();
                self.login(&tag, &user, &pass, "LOGIN").await;
                Ok(Flow::Continue)
            }
            CommandBody::Authenticate { mechanism, initial } => {
                if !mechanism.eq_ignore_case("PLAIN") {
                    self.tagged(&tag, "NO", "[CANNOT] Unsupported mechanism (use PLAIN)");
                    return Ok(Flow::Continue);
                }
                if !self.plaintext_login_allowed() {
                    self.tagged(&tag, "NO", "[PRIVACYREQUIRED] AUTHENTICATE needs TLS");
                    return Ok(Flow::Continue);
                }
                let data = match initial {
                    Some(d) => d.expose().clone(),
                    None => {
                        self.send(b"+ \r\n");
                        match self.read_auth_response().await? {
                            Some(d) => d,
                            None => {
                                self.tagged(&tag, "BAD", "AUTHENTICATE cancelled");
                                return Ok(Flow::Continue);
                            }
                        }
                    }
                };
                let mut parts = data.split(|b| *b == 0);
                let (authz, authc, pass) = (parts.next(), parts.next(), parts.next());
                let (Some(authz), Some(authc), Some(pass), None) =
                    (authz, authc, pass, parts.next())
                else {
                    self.tagged(&tag, "BAD", "Malformed PLAIN response");
                    return Ok(Flow::Continue);
                };
                if !authz.is_empty() && authz != authc {
                    self.tagged(
                        &tag,
                        "NO",
                        "[AUTHORIZATIONFAILED] Acting as another user is not allowed",
                    );
                    return Ok(Flow::Continue);
                }
                let user = String::from_utf8_lossy(authc).into_owned();
                let pass = String::from_utf8_lossy(pass).into_owned();
                self.login(&tag, &user, &pass, "PLAIN").await;
                Ok(Flow::Continue)
            }
            _ => {
                self.tagged(&tag, "BAD", "Command not valid before authentication");
                if self.count_bad() {
                    return Ok(Flow::Logout);
                }
                Ok(Flow::Continue)
            }
        }
    }

    /// One AUTHENTICATE continuation line; `None` when the client cancels.
    async fn read_auth_response(&mut self) -> Result<Option<Vec<u8>>, ConnError> {
        loop {
            let limits = self.limits();
            match parse_auth_response(self.conn.buffered(), &limits) {
                Ok((n, r)) => {
                    self.conn.consume(n);
                    return Ok(match r {
                        AuthResponse::Cancel => None,
                        AuthResponse::Data(d) => Some(d.expose().clone()),
                    });
                }
                Err(ParseError::Incomplete) | Err(ParseError::LiteralNeeded { .. }) => {
                    self.fill().await?
                }
                Err(ParseError::Failed { .. }) => {
                    if let Some(i) = self.conn.buffered().iter().position(|b| *b == b'\n') {
                        self.conn.consume(i + 1);
                    } else {
                        self.conn.discard_buffered();
                    }
                    return Ok(None);
                }
            }
        }
    }

    async fn login(&mut self, tag: &Tag, user: &str, pass: &str, method: &str) {
        let info = self.session_info(method);
        match self
            .shared
            .core
            .authenticate(user, pass, "imap", info)
            .await
        {
            Ok(a) => {
                info!(session = self.info.id, user = a.address(), "authenticated");
                self.auth = Some(a);
                self.notices = Some(self.shared.core.subscribe_changes());
                let caps = self.capabilities();
                self.tagged(tag, "OK", &format!("[CAPABILITY {caps}] Logged in"));
            }
            Err(e) => self.no_for(tag, &e),
        }
    }

    pub(crate) fn who(&self) -> Result<&Authenticated, ConnError> {
        self.auth.as_ref().ok_or(ConnError::Closed)
    }

    async fn authenticated(&mut self, tag: Tag, body: CommandBody) -> Result<Flow, ConnError> {
        match body {
            CommandBody::StartTls
            | CommandBody::Login { .. }
            | CommandBody::Authenticate { .. } => {
                self.tagged(&tag, "BAD", "Already authenticated");
            }
            CommandBody::Enable { capabilities } => {
                let mut on = Vec::new();
                for c in capabilities {
                    let s = c.as_str().to_ascii_uppercase();
                    match s.as_str() {
                        "IMAP4REV2" => self.enabled.imap4rev2 = true,
                        "CONDSTORE" => self.enabled.condstore = true,
                        "QRESYNC" => {
                            self.enabled.qresync = true;
                            self.enabled.condstore = true;
                        }
                        "UTF8=ACCEPT" => self.enabled.utf8 = true,
                        _ => continue,
                    }
                    on.push(c.as_str().to_string());
                }
                if !on.is_empty() {
                    self.send(format!("* ENABLED {}\r\n", on.join(" ")).as_bytes());
                } else {
                    self.send(b"* ENABLED\r\n");
                }
                self.tagged(&tag, "OK", "ENABLE completed");
            }
            CommandBody::Namespace => {
                // RFC 2342: personal, other users' and shared namespaces (core::access).
                self.send(
                    b"* NAMESPACE ((\"\" \"/\")) ((\"Other Users/\" \"/\")) ((\"Shared/\" \"/\"))\r\n",
                );
                self.tagged(&tag, "OK", "NAMESPACE completed");
            }
            CommandBody::Compress { algorithm } => {
                if !algorithm.eq_ignore_case("DEFLATE") {
                    self.tagged(&tag, "BAD", "Unknown compression algorithm");
                } else if self.conn.compressed() {
                    self.tagged(&tag, "NO", "[COMPRESSIONACTIVE] Already compressing");
                } else {
                    self.tagged(&tag, "OK", "DEFLATE active");
                    self.conn.flush().await?;
                    self.conn.start_deflate()?;
                }
            }
            CommandBody::Select { mailbox, params } => {
                self.select(&tag, &mailbox, params, false).await?;
            }
            CommandBody::Examine { mailbox, params } => {
                self.select(&tag, &mailbox, params, true).await?;
            }
            CommandBody::Create { mailbox, use_attrs } => {
                let name = match self.mailbox_name(&mailbox) {
                    Ok(n) => n,
                    Err(e) => {
                        self.tagged(&tag, "BAD", &e);
                        return Ok(Flow::Continue);
                    }
                };
                let mut su = None;
                for a in &use_attrs {
                    // The parser keeps the attribute without its `\` (`Archive`).
                    match special_use_of(a.as_str()) {
                        Some(s) if su.is_none() => su = Some(s),
                        _ => {
                            self.tagged(&tag, "NO", "[USEATTR] Unsupported special-use attribute");
                            return Ok(Flow::Continue);
                        }
                    }
                }
                let who = self.who()?.clone();
                // A trailing separator only says the name will have children (RFC 9051).
                let trimmed = name.strip_suffix('/').unwrap_or(&name).to_string();
                match self.shared.core.create_mailbox(&who, &trimmed, su).await {
                    Ok(_) => self.tagged(&tag, "OK", "CREATE completed"),
                    Err(CoreError::Conflict(m)) if m.contains("special use") => {
                        self.tagged(&tag, "NO", "[USEATTR] That special use is taken")
                    }
                    Err(e) => self.no_for(&tag, &e),
                }
            }
            CommandBody::Delete { mailbox } => {
                let Some(name) = self.name_or_bad(&tag, &mailbox) else {
                    return Ok(Flow::Continue);
                };
                let who = self.who()?.clone();
                let selected_this = self
                    .selected
                    .as_ref()
                    .is_some_and(|s| s.access.name == name);
                match self.shared.core.delete_mailbox(&who, &name).await {
                    Ok(()) => {
                        if selected_this {
                            self.selected = None;
                        }
                        self.tagged(&tag, "OK", "DELETE completed")
                    }
                    Err(e) => self.no_for(&tag, &e),
                }
            }
            CommandBody::Rename { from, to } => {
                let (Some(f), Some(t)) =
                    (self.name_or_bad(&tag, &from), self.mailbox_name(&to).ok())
                else {
                    if self.mailbox_name(&from).is_ok() {
                        self.tagged(&tag, "BAD", "Bad mailbox name");
                    }
                    return Ok(Flow::Continue);
                };
                let who = self.who()?.clone();
                match self.shared.core.rename_mailbox(&who, &f, &t).await {
                    Ok(()) => self.tagged(&tag, "OK", "RENAME completed"),
                    Err(e) => self.no_for(&tag, &e),
                }
            }
            CommandBody::Subscribe { mailbox } => self.subscribe(&tag, &mailbox, true).await?,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(&tag, &mailbox, false).await?,
            CommandBody::List(l) => self.list(&tag, l, false).await?,
            CommandBody::Lsub { reference, pattern } => {
                let l = ListCommand {
                    selection: Some(vec![ListSelect::Subscribed]),
                    reference,
                    patterns: vec![pattern],
                    returns: None,
                };
                self.list(&tag, l, true).await?;
            }
            CommandBody::Status { mailbox, items } => {
                let Some(name) = self.name_or_bad(&tag, &mailbox) else {
                    return Ok(Flow::Continue);
                };
                let who = self.who()?.clone();
                let r = match self.shared.core.resolve_mailbox(&who, &name).await {
                    Ok(access) => self.status_line(&access, &items).await?,
                    Err(e) => Err(e),
                };
                match r {
                    Ok(()) => self.tagged(&tag, "OK", "STATUS completed"),
                    Err(e) => self.no_for(&tag, &e),
                }
            }
            CommandBody::Append { mailbox, messages } => {
                self.append(&tag, &mailbox, messages).await?
            }
            CommandBody::Idle => return self.idle(&tag).await,
            CommandBody::GetQuotaRoot { mailbox } => {
                let Some(name) = self.name_or_bad(&tag, &mailbox) else {
                    return Ok(Flow::Continue);
                };
                let who = self.who()?.clone();
                let own = match self.shared.core.resolve_mailbox(&who, &name).await {
                    Ok(a) => a.is_own(&who),
                    Err(e) => {
                        self.no_for(&tag, &e);
                        return Ok(Flow::Continue);
                    }
                };
                // An account without a limit has no quota root: the QUOTAROOT response
                // lists none, and no QUOTA response follows (RFC 9208 §4.3.2; a QUOTA
                // response needs at least one resource, so `()` is not an option).
                // Another account's mailbox: its owner's quota is not ours to report.
                let quota = if own { self.quota().await? } else { None };
                let mut line = b"* QUOTAROOT ".to_vec();
                resp::mailbox(&mut line, &name, self.utf8());
                if quota.is_some() {
                    line.extend_from_slice(b" \"\"");
                }
                line.extend_from_slice(b"\r\n");
                self.send(&line);
                if let Some(q) = quota {
                    self.send(q.as_bytes());
                }
                self.tagged(&tag, "OK", "GETQUOTAROOT completed");
            }
            CommandBody::GetQuota { root } => {
                let quota = if root.as_bytes().is_empty() {
                    self.quota().await?
                } else {
                    None
                };
                match quota {
                    Some(q) => {
                        self.send(q.as_bytes());
                        self.tagged(&tag, "OK", "GETQUOTA completed");
                    }
                    None => self.tagged(&tag, "NO", "[NONEXISTENT] No such quota root"),
                }
            }
            CommandBody::SetQuota { .. } => {
                self.tagged(&tag, "NO", "[NOPERM] Quotas are set by the administrator");
            }
            CommandBody::SetAcl {
                mailbox,
                identifier,
                modify,
                rights,
            } => {
                let Ok(r) = Rights::parse(rights.as_str()) else {
                    // RFC 4314 §3.1: an unknown right is a BAD.
                    self.tagged(&tag, "BAD", "Unknown right (the rights are lrswipkxtea0)");
                    return Ok(Flow::Continue);
                };
                let change = match modify {
                    postern_imap_proto::RightsModify::Replace if r.is_empty() => AclChange::Delete,
                    postern_imap_proto::RightsModify::Replace => AclChange::Replace(r),
                    postern_imap_proto::RightsModify::Add => AclChange::Add(r),
                    postern_imap_proto::RightsModify::Remove => AclChange::Remove(r),
                };
                self.set_acl(&tag, &mailbox, &identifier, change, "SETACL")
                    .await?;
            }
            CommandBody::DeleteAcl {
                mailbox,
                identifier,
            } => {
                self.set_acl(&tag, &mailbox, &identifier, AclChange::Delete, "DELETEACL")
                    .await?;
            }
            CommandBody::GetAcl { mailbox } => self.get_acl(&tag, &mailbox).await?,
            CommandBody::ListRights {
                mailbox,
                identifier,
            } => self.list_rights(&tag, &mailbox, &identifier).await?,
            CommandBody::MyRights { mailbox } => self.my_rights(&tag, &mailbox).await?,
            other => {
                if self.selected.is_none() {
                    self.tagged(&tag, "BAD", "No mailbox selected");
                    return Ok(Flow::Continue);
                }
                return self.selected_command(tag, other).await;
            }
        }
        Ok(Flow::Continue)
    }

    pub(crate) fn name_or_bad(&mut self, tag: &Tag, m: &Mailbox) -> Option<String> {
        match self.mailbox_name(m) {
            Ok(n) => Some(n),
            Err(e) => {
                self.tagged(tag, "BAD", &e);
                None
            }
        }
    }

    /// SETACL / DELETEACL (RFC 4314 §3.1, §3.2): core checks `a` and records the change.
    async fn set_acl(
        &mut self,
        tag: &Tag,
        m: &Mailbox,
        identifier: &postern_imap_proto::IString,
        change: AclChange,
        verb: &str,
    ) -> Result<(), ConnError> {
        let Some(name) = self.name_or_bad(tag, m) else {
            return Ok(());
        };
        let who = self.who()?.clone();
        let id = String::from_utf8_lossy(identifier.as_bytes()).into_owned();
        let r = match self.shared.core.resolve_mailbox(&who, &name).await {
            Ok(access) => {
                self.shared
                    .core
                    .set_mailbox_acl(&who, &access, &id, change)
                    .await
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => self.tagged(tag, "OK", &format!("{verb} completed")),
            Err(e) => self.no_for(tag, &e),
        }
        Ok(())
    }

    /// GETACL (RFC 4314 §3.3): needs `a`.
    async fn get_acl(&mut self, tag: &Tag, m: &Mailbox) -> Result<(), ConnError> {
        let Some(name) = self.name_or_bad(tag, m) else {
            return Ok(());
        };
        let who = self.who()?.clone();
        let r = match self.shared.core.resolve_mailbox(&who, &name).await {
            Ok(access) => self
                .shared
                .core
                .mailbox_acl(&who, &access)
                .await
                .map(|acl| (access, acl)),
            Err(e) => Err(e),
        };
        match r {
            Ok((access, acl)) => {
                let entries: Vec<(String, String)> =
                    acl.into_iter().map(|(a, r)| (a, r.to_wire())).collect();
                let mut line = Vec::new();
                resp::acl_line(&mut line, &access.name, &entries, self.utf8());
                self.send(&line);
                self.tagged(tag, "OK", "GETACL completed");
            }
            Err(e) => self.no_for(tag, &e),
        }
        Ok(())
    }

    /// LISTRIGHTS (RFC 4314 §3.4): needs `a`. The owner always holds every right; anyone
    /// else may be given each right on its own.
    async fn list_rights(
        &mut self,
        tag: &Tag,
        m: &Mailbox,
        identifier: &postern_imap_proto::IString,
    ) -> Result<(), ConnError> {
        let Some(name) = self.name_or_bad(tag, m) else {
            return Ok(());
        };
        let who = self.who()?.clone();
        let id = String::from_utf8_lossy(identifier.as_bytes()).into_owned();
        let r = match self.shared.core.resolve_mailbox(&who, &name).await {
            Ok(access) => self
                .shared
                .core
                .mailbox_acl(&who, &access)
                .await
                .map(|_| access),
            Err(e) => Err(e),
        };
        match r {
            Ok(access) => {
                let all = Rights::ALL.to_string();
                let mut line = Vec::new();
                if id.eq_ignore_ascii_case(&access.owner_address) {
                    resp::list_rights_line(&mut line, &access.name, &id, &all, &[], self.utf8());
                } else if id.eq_ignore_ascii_case("anyone") || id.starts_with('-') {
                    // Not grantable here (COMPATIBILITY.md): nothing required, nothing
                    // optional.
                    resp::list_rights_line(&mut line, &access.name, &id, "", &[], self.utf8());
                } else {
                    let letters: Vec<String> = all.chars().map(|c| c.to_string()).collect();
                    let optional: Vec<&str> = letters.iter().map(String::as_str).collect();
                    resp::list_rights_line(
                        &mut line,
                        &access.name,
                        &id,
                        "",
                        &optional,
                        self.utf8(),
                    );
                }
                self.send(&line);
                self.tagged(tag, "OK", "LISTRIGHTS completed");
            }
            Err(e) => self.no_for(tag, &e),
        }
        Ok(())
    }

    /// MYRIGHTS (RFC 4314 §3.5): any right will do; none is "no such mailbox".
    async fn my_rights(&mut self, tag: &Tag, m: &Mailbox) -> Result<(), ConnError> {
        let Some(name) = self.name_or_bad(tag, m) else {
            return Ok(());
        };
        let who = self.who()?.clone();
        match self.shared.core.resolve_mailbox(&who, &name).await {
            Ok(access) => {
                let mut line = Vec::new();
                resp::my_rights_line(
                    &mut line,
                    &access.name,
                    &access.rights.to_wire(),
                    self.utf8(),
                );
                self.send(&line);
                self.tagged(tag, "OK", "MYRIGHTS completed");
            }
            Err(e) => self.no_for(tag, &e),
        }
        Ok(())
    }

    async fn subscribe(&mut self, tag: &Tag, m: &Mailbox, on: bool) -> Result<(), ConnError> {
        let Some(name) = self.name_or_bad(tag, m) else {
            return Ok(());
        };
        let who = self.who()?.clone();
        match self.shared.core.set_subscribed(&who, &name, on).await {
            Ok(()) => self.tagged(
                tag,
                "OK",
                if on {
                    "SUBSCRIBE completed"
                } else {
                    "UNSUBSCRIBE completed"
                },
            ),
            // Unsubscribing a name that no longer exists is fine (RFC 9051 §6.3.8).
            Err(CoreError::NotFound(_)) if !on => self.tagged(tag, "OK", "UNSUBSCRIBE completed"),
            Err(e) => self.no_for(tag, &e),
        }
        Ok(())
    }

    /// The QUOTA response of the account's one quota root `""`; `None` when the account
    /// has no limit (then there is no quota root).
    async fn quota(&mut self) -> Result<Option<String>, ConnError> {
        let who = self.who()?.clone();
        match self.shared.core.account_state(&who).await {
            Ok((_, usage, limit)) => Ok(limit.map(|l| {
                format!(
                    "* QUOTA \"\" (STORAGE {} {})\r\n",
                    usage.used_bytes.div_ceil(1024),
                    l / 1024
                )
            })),
            Err(e) => {
                warn!(session = self.info.id, error = %e, "quota read failed");
                Ok(None)
            }
        }
    }

    /// One STATUS response; the error (no `r`: RFC 4314 §4) is the caller's to report.
    async fn status_line(
        &mut self,
        access: &MailboxAccess,
        items: &[StatusItem],
    ) -> Result<Result<(), CoreError>, ConnError> {
        let who = self.who()?.clone();
        let (mb, entries) = match self.shared.core.open_mailbox(&who, access).await {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        let mut parts = Vec::new();
        for it in items {
            let v = match it {
                StatusItem::Messages => format!("MESSAGES {}", entries.len()),
                StatusItem::UidNext => format!("UIDNEXT {}", mb.uid_next.max(1)),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", mb.uid_validity),
                StatusItem::Unseen => format!(
                    "UNSEEN {}",
                    entries
                        .iter()
                        .filter(|e| !e.flags.contains(Flags::SEEN))
                        .count()
                ),
                StatusItem::Deleted => format!(
                    "DELETED {}",
                    entries
                        .iter()
                        .filter(|e| e.flags.contains(Flags::DELETED))
                        .count()
                ),
                StatusItem::Size => format!("SIZE {}", entries.iter().map(|e| e.size).sum::<u64>()),
                StatusItem::Recent => "RECENT 0".to_string(),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", mb.highest_modseq.max(1)),
                StatusItem::AppendLimit => {
                    format!("APPENDLIMIT {}", self.shared.settings.limits.literal_size)
                }
                StatusItem::MailboxId => format!("MAILBOXID (M{})", mb.id),
                StatusItem::DeletedStorage => format!(
                    "DELETED-STORAGE {}",
                    entries
                        .iter()
                        .filter(|e| e.flags.contains(Flags::DELETED))
                        .map(|e| e.size)
                        .sum::<u64>()
                        .div_ceil(1024)
                ),
            };
            parts.push(v);
        }
        let mut line = b"* STATUS ".to_vec();
        resp::mailbox(&mut line, &access.name, self.utf8());
        line.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        self.send(&line);
        Ok(Ok(()))
    }

    async fn list(&mut self, tag: &Tag, l: ListCommand, lsub: bool) -> Result<(), ConnError> {
        let who = self.who()?.clone();
        let utf8 = self.utf8();
        let mut reference = l.reference.as_str().to_string();
        if !(self.enabled.imap4rev2 || self.enabled.utf8) {
            match postern_imap_proto::decode_mutf7(reference.as_bytes()) {
                Ok(r) => reference = r,
                Err(_) => {
                    self.tagged(tag, "BAD", "Reference is not modified UTF-7");
                    return Ok(());
                }
            }
        }
        let mut patterns = Vec::new();
        // Matching costs pattern × name per mailbox: a pattern longer than any name
        // (with room for a reference) has no use.
        let total: usize = l.patterns.iter().map(|p| p.as_str().len()).sum();
        if total + reference.len() > MAX_LIST_PATTERN_BYTES {
            self.tagged(tag, "BAD", "LIST pattern too long");
            return Ok(());
        }
        for p in &l.patterns {
            let mut p = p.as_str().to_string();
            if !(self.enabled.imap4rev2 || self.enabled.utf8) {
                match postern_imap_proto::decode_mutf7(p.as_bytes()) {
                    Ok(d) => p = d,
                    Err(_) => {
                        self.tagged(tag, "BAD", "Pattern is not modified UTF-7");
                        return Ok(());
                    }
                }
            }
            patterns.push(p);
        }
        let cmd = if lsub { "LSUB" } else { "LIST" };
        // LIST "" "": the hierarchy delimiter and root (RFC 9051 §6.3.9).
        if patterns.len() == 1 && patterns[0].is_empty() && !lsub {
            self.send(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
            self.tagged(tag, "OK", "LIST completed");
            return Ok(());
        }
        let selection = l.selection.clone().unwrap_or_default();
        // Unknown options would change what the answer means: BAD, like Dovecot
        // ("List select/return option unknown"; RFC 5258 §3).
        if selection.iter().any(|s| matches!(s, ListSelect::Other(_)))
            || l.returns
                .iter()
                .flatten()
                .any(|r| matches!(r, ListReturn::Other(_)))
        {
            self.tagged(tag, "BAD", "Unknown LIST option");
            return Ok(());
        }
        let subscribed_only = selection
            .iter()
            .any(|s| matches!(s, ListSelect::Subscribed));
        let special_only = selection
            .iter()
            .any(|s| matches!(s, ListSelect::SpecialUse));
        let recursive = selection
            .iter()
            .any(|s| matches!(s, ListSelect::RecursiveMatch));
        let returns = l.returns.clone().unwrap_or_default();
        let ret_subscribed = returns.iter().any(|r| matches!(r, ListReturn::Subscribed));
        let status_items: Option<Vec<StatusItem>> = returns.iter().find_map(|r| match r {
            ListReturn::Status(s) => Some(s.clone()),
            _ => None,
        });
        // Every mailbox the user may look up (`l`): their own and other accounts' that
        // granted it (core::access), plus each level above a shown name that is not a
        // mailbox they may see (`Other Users`, `Other Users/<address>`, a parent without
        // `l`) as \Noselect — as if it did not exist but for its children (RFC 4314 §4).
        let visible = match self.shared.core.visible_mailboxes(&who).await {
            Ok(m) => m,
            Err(e) => {
                self.no_for(tag, &e);
                return Ok(());
            }
        };
        let mut mailboxes: Vec<ListEntry> = Vec::with_capacity(visible.len());
        let mut known: std::collections::HashSet<String> =
            visible.iter().map(|a| a.name.clone()).collect();
        for a in visible {
            let own = a.is_own(&who);
            if !own {
                let mut prefix = String::new();
                let levels: Vec<&str> = a.name.split('/').collect();
                for l in &levels[..levels.len().saturating_sub(1)] {
                    if !prefix.is_empty() {
                        prefix.push('/');
                    }
                    prefix.push_str(l);
                    if known.insert(prefix.clone()) {
                        mailboxes.push(ListEntry {
                            name: prefix.clone(),
                            subscribed: false,
                            special_use: None,
                            access: None,
                        });
                    }
                }
            }
            mailboxes.push(ListEntry {
                name: a.name.clone(),
                // Other accounts' mailboxes are always subscribed (core::mailbox
                // set_subscribed) and carry no special use in our view.
                subscribed: !own || a.mailbox.subscribed,
                special_use: if own { a.mailbox.special_use } else { None },
                access: Some(a),
            });
        }
        mailboxes.sort_by(|a, b| a.name.cmp(&b.name));
        let full: Vec<String> = patterns
            .iter()
            .map(|p| {
                if p.starts_with('/') || reference.is_empty() {
                    p.clone()
                } else if reference.ends_with('/') {
                    format!("{reference}{p}")
                } else {
                    format!("{reference}{p}")
                }
            })
            .collect();
        let names: Vec<&str> = mailboxes.iter().map(|m| m.name.as_str()).collect();
        let mut shown = 0usize;
        for mb in &mailboxes {
            let matched = full.iter().any(|p| wildcard_match(p, &mb.name));
            let child_subscribed = recursive
                && mailboxes
                    .iter()
                    .any(|c| c.subscribed && c.name.starts_with(&format!("{}/", mb.name)));
            if !matched {
                continue;
            }
            // RFC 3501 §6.3.9: LSUB with `%` shows an unsubscribed parent of a subscribed
            // name the pattern does not reach, flagged \Noselect.
            let lsub_parent = lsub
                && !mb.subscribed
                && mailboxes.iter().any(|c| {
                    c.subscribed
                        && c.name.starts_with(&format!("{}/", mb.name))
                        && !full.iter().any(|p| wildcard_match(p, &c.name))
                });
            if subscribed_only && !mb.subscribed && !child_subscribed && !lsub_parent {
                continue;
            }
            if special_only && mb.special_use.is_none_or(|s| s == SpecialUse::Inbox) {
                continue;
            }
            let has_children = names
                .iter()
                .any(|n| n.starts_with(&format!("{}/", mb.name)));
            let mut attrs: Vec<&str> = Vec::new();
            if lsub_parent || (mb.access.is_none() && !lsub) {
                attrs.push("\\Noselect");
            }
            if !lsub {
                attrs.push(if has_children {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
            }
            if (subscribed_only || ret_subscribed) && mb.subscribed && !lsub {
                attrs.push("\\Subscribed");
            }
            if let Some(su) = mb.special_use {
                if let Some(a) = special_use_attr(su) {
                    attrs.push(a);
                }
            }
            let mut line = format!("* {cmd} ({}) \"/\" ", attrs.join(" ")).into_bytes();
            resp::mailbox(&mut line, &mb.name, utf8);
            if child_subscribed && !lsub {
                line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            line.extend_from_slice(b"\r\n");
            self.send(&line);
            shown += 1;
            // LIST-STATUS: none for a \Noselect level or a mailbox without `r`
            // (RFC 5819 §2).
            if let (Some(items), Some(a)) = (&status_items, &mb.access) {
                let _ = self.status_line(a, items).await?;
            }
        }
        let _ = shown;
        self.tagged(tag, "OK", &format!("{cmd} completed"));
        Ok(())
    }

    async fn append(
        &mut self,
        tag: &Tag,
        mailbox: &Mailbox,
        messages: Vec<postern_imap_proto::AppendMessage>,
    ) -> Result<(), ConnError> {
        let Some(name) = self.name_or_bad(tag, mailbox) else {
            return Ok(());
        };
        let who = self.who()?.clone();
        let mb = match self.shared.core.resolve_mailbox(&who, &name).await {
            Ok(m) => m,
            Err(CoreError::NotFound(_)) => {
                self.tagged(tag, "NO", "[TRYCREATE] No such mailbox");
                return Ok(());
            }
            Err(e) => {
                self.no_for(tag, &e);
                return Ok(());
            }
        };
        let mut batch = Vec::with_capacity(messages.len());
        for m in messages {
            if m.data.is_empty() {
                self.tagged(tag, "NO", "Empty message");
                return Ok(());
            }
            let (flags, keywords) = match flags_of(m.flags.as_deref().unwrap_or(&[])) {
                Ok(x) => x,
                Err(e) => {
                    self.tagged(tag, "BAD", &e);
                    return Ok(());
                }
            };
            let received_ms = m.date.map(|d| datetime_ms(&d));
            batch.push(NewMessage {
                raw: m.data,
                flags,
                keywords,
                received_ms,
            });
        }
        match self.shared.core.append_messages(&who, &mb, batch).await {
            Ok(a) => {
                let mut code = format!("[APPENDUID {} ", a.uid_validity).into_bytes();
                resp::sequence_set(&mut code, &a.uids);
                code.extend_from_slice(b"] APPEND completed");
                let text = String::from_utf8_lossy(&code).into_owned();
                self.catch_up(true).await;
                self.tagged(tag, "OK", &text);
            }
            Err(e) => self.no_for(tag, &e),
        }
        Ok(())
    }

    async fn idle(&mut self, tag: &Tag) -> Result<Flow, ConnError> {
        self.send(b"+ idling\r\n");
        self.catch_up(true).await;
        let limits = self.limits();
        let deadline = Instant::now() + self.shared.settings.idle_timeout;
        loop {
            match parse_idle_done(self.conn.buffered(), &limits) {
                Ok(n) => {
                    self.conn.consume(n);
                    self.tagged(tag, "OK", "IDLE terminated");
                    return Ok(Flow::Continue);
                }
                Err(ParseError::Incomplete) | Err(ParseError::LiteralNeeded { .. }) => {}
                Err(ParseError::Failed { .. }) => {
                    if let Some(i) = self.conn.buffered().iter().position(|b| *b == b'\n') {
                        self.conn.consume(i + 1);
                    } else {
                        self.conn.discard_buffered();
                    }
                    self.tagged(tag, "BAD", "Expected DONE");
                    return Ok(Flow::Continue);
                }
            }
            self.conn.flush().await?;
            let Some(notices) = self.notices.as_mut() else {
                return Err(ConnError::Closed);
            };
            let account = self.auth.as_ref().map(|a| a.principal().id);
            // A selected mailbox of another account changes in that account.
            let owner = self.selected.as_ref().map(|s| s.access.owner);
            let shutdown = &mut self.shutdown;
            let conn = &mut self.conn;
            let woke = tokio::select! {
                r = conn.fill(deadline, shutdown) => { r?; false }
                n = notices.recv() => match n {
                    Ok(n) => Some(n.account) == account || Some(n.account) == owner,
                    Err(broadcast::error::RecvError::Lagged(_)) => true,
                    Err(broadcast::error::RecvError::Closed) => return Err(ConnError::Closed),
                },
            };
            if woke {
                self.dirty = true;
                self.catch_up(true).await;
                if self.closing {
                    return Ok(Flow::Logout);
                }
            }
        }
    }

    /// Takes in changes made elsewhere (other sessions, SMTP, the CLI) and announces
    /// them. `may_expunge` is false while answering FETCH/STORE/SEARCH by sequence
    /// number (RFC 9051 §7.5.1).
    /// Takes every queued change notice; one for our account marks the view dirty.
    fn drain_notices(&mut self) {
        let Some(account) = self.auth.as_ref().map(|a| a.principal().id) else {
            return;
        };
        let owner = self.selected.as_ref().map(|s| s.access.owner);
        if let Some(rx) = self.notices.as_mut() {
            loop {
                match rx.try_recv() {
                    Ok(n) => {
                        if n.account == account || Some(n.account) == owner {
                            self.dirty = true;
                        }
                    }
                    Err(broadcast::error::TryRecvError::Lagged(_)) => self.dirty = true,
                    Err(_) => break,
                }
            }
        }
    }

    pub(crate) async fn catch_up(&mut self, may_expunge: bool) {
        if self.auth.is_none() {
            return;
        }
        self.drain_notices();
        let Some(sel) = self.selected.as_ref() else {
            self.dirty = false;
            return;
        };
        let pending = !sel.pending_expunge.is_empty();
        // Another account's mailbox: its owner may change the ACL without a change
        // notice, so every command asks core again (a delta since the view's own modseq:
        // an index lookup when nothing changed), and a withdrawn right ends the session.
        let delegated = self
            .auth
            .as_ref()
            .is_some_and(|who| !sel.access.is_own(who));
        if !self.dirty && !(pending && may_expunge) && !delegated {
            return;
        }
        let since = sel.mailbox.highest_modseq;
        let validity = sel.mailbox.uid_validity;
        let access = sel.access.clone();
        let Some(who) = self.auth.clone() else { return };
        // Only what changed since the view's snapshot (its highest modseq); the whole
        // mailbox is re-read only if its UIDVALIDITY changed.
        let fresh = self.shared.core.mailbox_delta(&who, &access, since).await;
        self.dirty = false;
        let d = match fresh {
            Ok(d) if d.mailbox.uid_validity == validity => {
                let Some(sel) = self.selected.as_mut() else {
                    return;
                };
                let delta = sel.apply_delta(d, may_expunge);
                self.announce(delta);
                return;
            }
            Ok(_) => self.shared.core.open_mailbox(&who, &access).await,
            Err(e) => Err(e),
        };
        let (mb, entries) = match d {
            Ok(x) => x,
            Err(CoreError::NotFound(_)) => {
                // Deleted or renamed away under us.
                self.selected = None;
                self.send(b"* BYE [UNAVAILABLE] The selected mailbox was deleted\r\n");
                self.closing = true;
                return;
            }
            Err(CoreError::Forbidden(_)) => {
                // The owner took back the read right: the view must not keep serving
                // what the session may no longer read.
                self.selected = None;
                self.send(b"* BYE [NOPERM] Access to the selected mailbox was withdrawn\r\n");
                self.closing = true;
                return;
            }
            Err(e) => {
                warn!(session = self.info.id, error = %e, "catch-up failed");
                return;
            }
        };
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let delta = sel.catch_up(mb, entries, may_expunge);
        self.announce(delta);
    }

    pub(crate) fn announce(&mut self, delta: Delta) {
        let qresync = self.enabled.qresync;
        if qresync && !delta.expunged_uids.is_empty() {
            let mut line = b"* VANISHED ".to_vec();
            resp::sequence_set(&mut line, &delta.expunged_uids);
            line.extend_from_slice(b"\r\n");
            self.send(&line);
        } else {
            for seq in &delta.expunged_seqs {
                self.send(format!("* {seq} EXPUNGE\r\n").as_bytes());
            }
        }
        let rev1 = !self.enabled.imap4rev2;
        if let Some(n) = delta.exists {
            self.send(format!("* {n} EXISTS\r\n").as_bytes());
            if rev1 {
                let recent = self.selected.as_ref().map(|s| s.recent.len()).unwrap_or(0);
                self.send(format!("* {recent} RECENT\r\n").as_bytes());
            }
        }
        let condstore = self.enabled.condstore;
        for seq in delta.flag_changes {
            let Some(sel) = self.selected.as_ref() else {
                return;
            };
            let Some(e) = sel.entry(seq) else { continue };
            let recent = rev1 && sel.recent.contains(&e.uid);
            let mut line = format!("* {seq} FETCH (UID {} FLAGS ", e.uid).into_bytes();
            resp::flag_list(&mut line, e.flags, &e.keywords, recent);
            if condstore {
                line.extend_from_slice(format!(" MODSEQ ({})", e.modseq).as_bytes());
            }
            line.extend_from_slice(b")\r\n");
            self.send(&line);
        }
    }

    async fn select(
        &mut self,
        tag: &Tag,
        mailbox: &Mailbox,
        params: postern_imap_proto::SelectParams,
        read_only: bool,
    ) -> Result<(), ConnError> {
        // Selecting (even failing to) leaves the previous mailbox (RFC 9051 §6.3.2).
        let had = self.selected.take().is_some();
        if had && self.enabled.qresync {
            self.send(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        let Some(name) = self.name_or_bad(tag, mailbox) else {
            return Ok(());
        };
        if params.condstore {
            self.enabled.condstore = true;
        }
        if params.qresync.is_some() && !self.enabled.qresync {
            self.tagged(tag, "BAD", "QRESYNC was not enabled");
            return Ok(());
        }
        let who = self.who()?.clone();
        let access = match self.shared.core.resolve_mailbox(&who, &name).await {
            Ok(m) => m,
            Err(e) => {
                self.no_for(tag, &e);
                return Ok(());
            }
        };
        // Drain the notices queued so far before the snapshot, which includes them;
        // any that arrive after this point stay queued for the next catch-up.
        if let Some(rx) = self.notices.as_mut() {
            while rx.try_recv().is_ok() {}
        }
        self.dirty = false;
        // Needs `r` (core checks); without any right that changes the mailbox it is
        // read-only (RFC 4314 §4).
        let (mb, entries) = match self.shared.core.open_mailbox(&who, &access).await {
            Ok(x) => x,
            Err(e) => {
                self.no_for(tag, &e);
                return Ok(());
            }
        };
        let examine = read_only;
        let read_only = read_only || !access.rights.intersects(Rights::WRITABLE);
        let rights = access.rights;
        let sel = Selected::new(access, mb, entries, read_only);
        let rev1 = !self.enabled.imap4rev2;
        let mut out = Vec::with_capacity(512);
        let sys = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
        let kw = sel.keywords.join(" ");
        let sp = if kw.is_empty() { "" } else { " " };
        out.extend_from_slice(format!("* FLAGS ({sys}{sp}{kw})\r\n").as_bytes());
        out.extend_from_slice(format!("* {} EXISTS\r\n", sel.exists()).as_bytes());
        if rev1 {
            out.extend_from_slice(b"* 0 RECENT\r\n");
            if let Some(u) = sel.first_unseen() {
                out.extend_from_slice(format!("* OK [UNSEEN {u}] First unseen\r\n").as_bytes());
            }
        }
        if read_only {
            out.extend_from_slice(b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
        } else if rights.all_flags() {
            out.extend_from_slice(
                format!("* OK [PERMANENTFLAGS ({sys}{sp}{kw} \\*)] Flags permitted\r\n").as_bytes(),
            );
        } else {
            // Only the flags these rights may change (`s`, `t`, `w`: RFC 4314 §4).
            let mut p: Vec<&str> = Vec::new();
            if rights.contains(Rights::WRITE) {
                p.extend(["\\Answered", "\\Flagged"]);
            }
            if rights.contains(Rights::DELETE_MESSAGE) {
                p.push("\\Deleted");
            }
            if rights.contains(Rights::SEEN) {
                p.push("\\Seen");
            }
            if rights.contains(Rights::WRITE) {
                p.push("\\Draft");
                p.extend(sel.keywords.iter().map(String::as_str));
                p.push("\\*");
            }
            out.extend_from_slice(
                format!(
                    "* OK [PERMANENTFLAGS ({})] Flags permitted\r\n",
                    p.join(" ")
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(
            format!(
                "* OK [UIDVALIDITY {}] UIDs valid\r\n",
                sel.mailbox.uid_validity
            )
            .as_bytes(),
        );
        out.extend_from_slice(
            format!(
                "* OK [UIDNEXT {}] Predicted next UID\r\n",
                sel.mailbox.uid_next.max(1)
            )
            .as_bytes(),
        );
        out.extend_from_slice(
            format!(
                "* OK [HIGHESTMODSEQ {}] Highest\r\n",
                sel.mailbox.highest_modseq.max(1)
            )
            .as_bytes(),
        );
        out.extend_from_slice(format!("* OK [MAILBOXID (M{})] Ok\r\n", sel.mailbox.id).as_bytes());
        if !rev1 {
            out.extend_from_slice(b"* LIST () \"/\" ");
            resp::mailbox(&mut out, &sel.access.name, self.utf8());
            out.extend_from_slice(b"\r\n");
        }
        self.send(&out);
        let qresync = params.qresync.clone();
        self.selected = Some(sel);
        if let Some(q) = qresync {
            self.qresync_select(&q).await?;
        }
        let code = if read_only {
            "[READ-ONLY]"
        } else {
            "[READ-WRITE]"
        };
        let verb = if examine { "EXAMINE" } else { "SELECT" };
        self.tagged(tag, "OK", &format!("{code} {verb} completed"));
        Ok(())
    }

    /// RFC 7162 §3.2.5: what changed since the client's modseq.
    async fn qresync_select(
        &mut self,
        q: &postern_imap_proto::QresyncParams,
    ) -> Result<(), ConnError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        if q.uid_validity.get() != sel.mailbox.uid_validity {
            return Ok(());
        }
        let since = q.mod_seq.get();
        let access = sel.access.clone();
        let who = self.who()?.clone();
        let mut vanished = self
            .shared
            .core
            .expunged_since(&who, &access, since)
            .await
            .unwrap_or_default();
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        // Only UIDs the client may know and that are really gone now.
        vanished.retain(|u| sel.seq_of(*u).is_none());
        if let Some(known) = &q.known_uids {
            let max = u32::MAX;
            vanished.retain(|u| uid_in_set(known, *u, max));
        }
        let mut lines = Vec::new();
        if !vanished.is_empty() {
            lines.extend_from_slice(b"* VANISHED (EARLIER) ");
            resp::sequence_set(&mut lines, &vanished);
            lines.extend_from_slice(b"\r\n");
        }
        for (i, e) in sel.entries.iter().enumerate() {
            if e.modseq > since {
                let mut l = format!("* {} FETCH (UID {} FLAGS ", i + 1, e.uid).into_bytes();
                resp::flag_list(&mut l, e.flags, &e.keywords, false);
                l.extend_from_slice(format!(" MODSEQ ({}))\r\n", e.modseq).as_bytes());
                lines.extend_from_slice(&l);
            }
        }
        self.send(&lines);
        Ok(())
    }

    async fn selected_command(&mut self, tag: Tag, body: CommandBody) -> Result<Flow, ConnError> {
        match body {
            CommandBody::Close | CommandBody::Unselect => {
                let close = matches!(body, CommandBody::Close);
                if let Some(sel) = self.selected.take() {
                    if close && !sel.read_only {
                        let who = self.who()?.clone();
                        if let Ok((_, entries)) =
                            self.shared.core.open_mailbox(&who, &sel.access).await
                        {
                            let del: Vec<u32> = entries
                                .iter()
                                .filter(|e| e.flags.contains(Flags::DELETED))
                                .map(|e| e.uid)
                                .collect();
                            // Without `e` CLOSE only closes (RFC 4314 §4).
                            match self.shared.core.expunge(&who, &sel.access, del).await {
                                Ok(_) | Err(CoreError::Forbidden(_)) => {}
                                Err(e) => {
                                    self.no_for(&tag, &e);
                                    return Ok(Flow::Continue);
                                }
                            }
                        }
                    }
                }
                let verb = if close { "CLOSE" } else { "UNSELECT" };
                self.tagged(&tag, "OK", &format!("{verb} completed"));
            }
            CommandBody::Expunge => self.expunge(&tag, None).await?,
            CommandBody::UidExpunge { uids } => self.expunge(&tag, Some(uids)).await?,
            CommandBody::Fetch {
                uid,
                set,
                items,
                modifiers,
            } => crate::fetch::fetch(self, &tag, uid, &set, items, modifiers).await?,
            CommandBody::Store {
                uid,
                set,
                unchanged_since,
                action,
                silent,
                flags,
            } => {
                self.store(&tag, uid, &set, unchanged_since, action, silent, &flags)
                    .await?
            }
            CommandBody::Copy { uid, set, mailbox } => {
                self.copy(&tag, uid, &set, &mailbox, false).await?
            }
            CommandBody::Move { uid, set, mailbox } => {
                self.copy(&tag, uid, &set, &mailbox, true).await?
            }
            CommandBody::Search(s) => crate::fetch::search(self, &tag, s).await?,
            CommandBody::Sort(s) => crate::fetch::sort(self, &tag, s).await?,
            CommandBody::Thread(t) => crate::fetch::thread(self, &tag, t).await?,
            _ => {
                self.tagged(&tag, "BAD", "Command not valid in this state");
            }
        }
        Ok(Flow::Continue)
    }

    /// Resolves a set against the view; answers BAD itself when it is out of range.
    pub(crate) fn resolve_or_bad(
        &mut self,
        tag: &Tag,
        set: &postern_imap_proto::SeqSet,
        by_uid: bool,
    ) -> Option<Vec<u32>> {
        let sel = self.selected.as_ref()?;
        match sel.resolve(set, by_uid) {
            Ok(v) => Some(v),
            Err(SetError::OutOfRange) => {
                self.tagged(tag, "BAD", "Invalid message sequence number");
                None
            }
        }
    }

    async fn expunge(
        &mut self,
        tag: &Tag,
        uids: Option<postern_imap_proto::SeqSet>,
    ) -> Result<(), ConnError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        if sel.read_only {
            self.tagged(tag, "NO", "[READ-ONLY] Mailbox is read-only");
            return Ok(());
        }
        let id = sel.mailbox.id;
        let access = sel.access.clone();
        let limit: Option<std::collections::HashSet<u32>> = match &uids {
            Some(set) => {
                let Some(seqs) = self.resolve_or_bad(tag, set, true) else {
                    return Ok(());
                };
                let Some(sel) = self.selected.as_ref() else {
                    return Ok(());
                };
                Some(
                    seqs.iter()
                        .filter_map(|s| sel.entry(*s).map(|e| e.uid))
                        .collect(),
                )
            }
            None => None,
        };
        let who = self.who()?.clone();
        // The view brought up to date (only what changed since its snapshot) gives the
        // current \Deleted flags. Expunges found now wait, so that they are announced
        // with ours below, highest first.
        self.dirty = true;
        self.catch_up(false).await;
        let Some(sel) = self.selected.as_ref().filter(|s| s.mailbox.id == id) else {
            self.tagged(tag, "NO", "The selected mailbox is gone");
            return Ok(());
        };
        let del: Vec<u32> = sel
            .entries
            .iter()
            .filter(|e| e.flags.contains(Flags::DELETED))
            .filter(|e| limit.as_ref().is_none_or(|l| l.contains(&e.uid)))
            .map(|e| e.uid)
            .collect();
        if let Err(e) = self.shared.core.expunge(&who, &access, del).await {
            self.no_for(tag, &e);
            return Ok(());
        }
        self.dirty = true;
        self.catch_up(true).await;
        self.tagged(tag, "OK", "EXPUNGE completed");
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn store(
        &mut self,
        tag: &Tag,
        by_uid: bool,
        set: &postern_imap_proto::SeqSet,
        unchanged_since: Option<u64>,
        action: StoreAction,
        silent: bool,
        flags: &[Flag],
    ) -> Result<(), ConnError> {
        let Some(seqs) = self.resolve_or_bad(tag, set, by_uid) else {
            return Ok(());
        };
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        if sel.read_only {
            self.tagged(tag, "NO", "[READ-ONLY] Mailbox is read-only");
            return Ok(());
        }
        if unchanged_since.is_some() {
            self.enabled.condstore = true;
        }
        let (f, kw) = match flags_of(flags) {
            Ok(x) => x,
            Err(e) => {
                self.tagged(tag, "BAD", &e);
                return Ok(());
            }
        };
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let access = sel.access.clone();
        let uids: Vec<u32> = seqs
            .iter()
            .filter_map(|s| sel.entry(*s).map(|e| e.uid))
            .collect();
        let act = match action {
            StoreAction::Replace => FlagAction::Set,
            StoreAction::Add => FlagAction::Add,
            StoreAction::Remove => FlagAction::Remove,
        };
        let who = self.who()?.clone();
        let (changed, skipped) = match self
            .shared
            .core
            .store_flags(&who, &access, uids.clone(), act, f, kw, unchanged_since)
            .await
        {
            Ok(x) => x,
            Err(e) => {
                self.no_for(tag, &e);
                return Ok(());
            }
        };
        // Our own change: fetch the new state once, answer for the UIDs we stored
        // (unless .SILENT), and announce everything else from the same snapshot. Notices
        // are drained first: any that arrive later stay queued for the next catch-up.
        self.drain_notices();
        let since = self
            .selected
            .as_ref()
            .map(|s| s.mailbox.highest_modseq)
            .unwrap_or(0);
        let fresh = match self.shared.core.mailbox_delta(&who, &access, since).await {
            Ok(x) => x,
            Err(e) => {
                self.no_for(tag, &e);
                return Ok(());
            }
        };
        let condstore = self.enabled.condstore;
        let rev1 = !self.enabled.imap4rev2;
        let changed_uids: std::collections::HashSet<u32> =
            changed.iter().map(|(u, _)| *u).collect();
        let mut out = Vec::new();
        if let Some(sel) = self.selected.as_mut() {
            for e in fresh
                .changed
                .iter()
                .filter(|e| changed_uids.contains(&e.uid))
            {
                sel.set_flags(e.uid, e.flags, e.keywords.clone(), e.modseq);
            }
            // Without .SILENT every named message gets its flags; with it, only the
            // modseq under CONDSTORE (RFC 7162 §3.2 "silent" still reports MODSEQ? no:
            // it suppresses the FETCH entirely).
            for u in &uids {
                let Some(seq) = sel.seq_of(*u) else { continue };
                let Some(e) = sel.entry(seq) else { continue };
                if skipped.contains(u) {
                    continue;
                }
                if silent && !(condstore && changed_uids.contains(u) && unchanged_since.is_some()) {
                    continue;
                }
                let mut l = format!("* {seq} FETCH (").into_bytes();
                // RFC 7162 §3.1: once CONDSTORE is enabled, every untagged FETCH a STORE
                // causes carries UID and MODSEQ, a plain STORE's too.
                if by_uid || condstore {
                    l.extend_from_slice(format!("UID {} ", e.uid).as_bytes());
                }
                l.extend_from_slice(b"FLAGS ");
                resp::flag_list(
                    &mut l,
                    e.flags,
                    &e.keywords,
                    rev1 && sel.recent.contains(&e.uid),
                );
                if condstore {
                    l.extend_from_slice(format!(" MODSEQ ({})", e.modseq).as_bytes());
                }
                l.extend_from_slice(b")\r\n");
                out.extend_from_slice(&l);
            }
        }
        self.send(&out);
        self.dirty = false;
        if let Some(sel) = self.selected.as_mut() {
            let delta = sel.apply_delta(fresh, by_uid);
            self.announce(delta);
        }
        if skipped.is_empty() {
            self.tagged(tag, "OK", "STORE completed");
        } else {
            let Some(sel) = self.selected.as_ref() else {
                return Ok(());
            };
            let ids: Vec<u32> = if by_uid {
                skipped.clone()
            } else {
                skipped.iter().filter_map(|u| sel.seq_of(*u)).collect()
            };
            let mut code = b"[MODIFIED ".to_vec();
            resp::sequence_set(&mut code, &ids);
            code.extend_from_slice(b"] Conditional STORE failed");
            let text = String::from_utf8_lossy(&code).into_owned();
            self.tagged(tag, "OK", &text);
        }
        Ok(())
    }

    async fn copy(
        &mut self,
        tag: &Tag,
        by_uid: bool,
        set: &postern_imap_proto::SeqSet,
        mailbox: &Mailbox,
        remove: bool,
    ) -> Result<(), ConnError> {
        let Some(seqs) = self.resolve_or_bad(tag, set, by_uid) else {
            return Ok(());
        };
        let Some(name) = self.name_or_bad(tag, mailbox) else {
            return Ok(());
        };
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        if remove && sel.read_only {
            self.tagged(tag, "NO", "[READ-ONLY] Mailbox is read-only");
            return Ok(());
        }
        let from = sel.access.clone();
        let uids: Vec<u32> = seqs
            .iter()
            .filter_map(|s| sel.entry(*s).map(|e| e.uid))
            .collect();
        let who = self.who()?.clone();
        let dst = match self.shared.core.resolve_mailbox(&who, &name).await {
            Ok(m) => m,
            Err(CoreError::NotFound(_)) => {
                self.tagged(tag, "NO", "[TRYCREATE] No such mailbox");
                return Ok(());
            }
            Err(e) => {
                self.no_for(tag, &e);
                return Ok(());
            }
        };
        match self
            .shared
            .core
            .copy_messages(&who, &from, &uids, &dst, remove)
            .await
        {
            Ok(c) => {
                let mut code = Vec::new();
                if !c.pairs.is_empty() {
                    let src: Vec<u32> = c.pairs.iter().map(|p| p.0).collect();
                    let dst: Vec<u32> = c.pairs.iter().map(|p| p.1).collect();
                    code.extend_from_slice(format!("[COPYUID {} ", c.uid_validity).as_bytes());
                    // UIDs in the order of the pairs: both lists ascend together.
                    resp::sequence_set(&mut code, &src);
                    code.push(b' ');
                    resp::sequence_set(&mut code, &dst);
                    code.extend_from_slice(b"] ");
                }
                let code = String::from_utf8_lossy(&code).into_owned();
                if remove {
                    self.send(format!("* OK {code}Moved\r\n").as_bytes());
                    self.dirty = true;
                    self.catch_up(true).await;
                    self.tagged(tag, "OK", "MOVE completed");
                } else {
                    self.catch_up(by_uid).await;
                    self.tagged(tag, "OK", &format!("{code}COPY completed"));
                }
            }
            Err(e) => self.no_for(tag, &e),
        }
        Ok(())
    }
}

/// One name LIST may show: a mailbox the user may see, or (`access` None) a level
/// above one that is not itself such a mailbox (\Noselect).
struct ListEntry {
    name: String,
    subscribed: bool,
    special_use: Option<SpecialUse>,
    access: Option<MailboxAccess>,
}

/// Flags from the wire → stored flags and keywords. `\Recent` is ignored (it cannot be
/// stored, RFC 3501 §2.3.2); an unknown system flag is refused.
pub(crate) fn flags_of(flags: &[Flag]) -> Result<(Flags, Vec<String>), String> {
    let mut f = Flags::default();
    let mut kw: Vec<String> = Vec::new();
    for x in flags {
        match x {
            Flag::Answered => f = f.union(Flags::ANSWERED),
            Flag::Flagged => f = f.union(Flags::FLAGGED),
            Flag::Deleted => f = f.union(Flags::DELETED),
            Flag::Seen => f = f.union(Flags::SEEN),
            Flag::Draft => f = f.union(Flags::DRAFT),
            Flag::Recent => {}
            Flag::Extension(a) => return Err(format!("Unknown system flag \\{}", a.as_str())),
            Flag::Keyword(a) => {
                if !kw.iter().any(|k| k.eq_ignore_ascii_case(a.as_str())) {
                    kw.push(a.as_str().to_string());
                }
            }
        }
    }
    Ok((f, kw))
}

fn datetime_ms(d: &postern_imap_proto::DateTime) -> i64 {
    let date = d.date();
    let (h, m, s) = d.time();
    let month = time::Month::try_from(date.month()).unwrap_or(time::Month::January);
    let Ok(day) = time::Date::from_calendar_date(date.year() as i32, month, date.day()) else {
        return postern_core::store::now_ms();
    };
    let Ok(t) = time::Time::from_hms(h, m, s) else {
        return postern_core::store::now_ms();
    };
    let secs = time::PrimitiveDateTime::new(day, t)
        .assume_utc()
        .unix_timestamp()
        - i64::from(d.zone_minutes()) * 60;
    secs.saturating_mul(1000)
}

/// A CREATE-SPECIAL-USE attribute as the parser gives it: the name without `\`.
fn special_use_of(attr: &str) -> Option<SpecialUse> {
    Some(match attr.to_ascii_lowercase().as_str() {
        "drafts" => SpecialUse::Drafts,
        "sent" => SpecialUse::Sent,
        "junk" => SpecialUse::Junk,
        "trash" => SpecialUse::Trash,
        "archive" => SpecialUse::Archive,
        "all" => SpecialUse::All,
        "flagged" => SpecialUse::Flagged,
        _ => return None,
    })
}

fn special_use_attr(su: SpecialUse) -> Option<&'static str> {
    Some(match su {
        SpecialUse::Inbox => return None,
        SpecialUse::Drafts => "\\Drafts",
        SpecialUse::Sent => "\\Sent",
        SpecialUse::Junk => "\\Junk",
        SpecialUse::Trash => "\\Trash",
        SpecialUse::Archive => "\\Archive",
        SpecialUse::All => "\\All",
        SpecialUse::Flagged => "\\Flagged",
    })
}

/// LIST wildcard matching (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the
/// separator. INBOX matches case-insensitively. Iterative with backtracking over `*`/`%`
/// positions bounded by the name length (no exponential blow-up: memoised DP).
pub(crate) fn wildcard_match(pattern: &str, name: &str) -> bool {
    let mut p: Vec<char> = Vec::with_capacity(pattern.len());
    // INBOX is case-insensitive in patterns too (stored names spell it `INBOX`), but
    // only as a whole first level: `inbox*` must not match `Inboxes`.
    let rest = match pattern.get(..5) {
        Some(head)
            if head.eq_ignore_ascii_case("INBOX")
                && pattern[5..]
                    .chars()
                    .next()
                    .is_none_or(|c| matches!(c, '/' | '*' | '%')) =>
        {
            p.extend("INBOX".chars());
            &pattern[5..]
        }
        _ => pattern,
    };
    // Runs of `*` match what one `*` matches.
    for c in rest.chars() {
        if c == '*' && p.last() == Some(&'*') {
            continue;
        }
        p.push(c);
    }
    let n: Vec<char> = name.chars().collect();
    // dp[j] = pattern[..i] matches name[..j]
    let mut dp = vec![false; n.len() + 1];
    dp[0] = true;
    for &pc in &p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' => {
                let mut any = false;
                for j in 0..=n.len() {
                    any |= dp[j];
                    next[j] = any;
                }
            }
            '%' => {
                let mut any = false;
                for j in 0..=n.len() {
                    if j > 0 && n[j - 1] == '/' {
                        any = false;
                    }
                    any |= dp[j];
                    next[j] = any;
                }
            }
            c => {
                for j in 1..=n.len() {
                    next[j] = dp[j - 1] && n[j - 1] == c;
                }
            }
        }
        dp = next;
    }
    dp[n.len()]
}

fn uid_in_set(set: &postern_imap_proto::SeqSet, uid: u32, star: u32) -> bool {
    match set {
        postern_imap_proto::SeqSet::Saved => true,
        postern_imap_proto::SeqSet::Ranges(r) => r.ranges().iter().any(|r| {
            let v = |n: postern_imap_proto::SeqNum| match n {
                postern_imap_proto::SeqNum::Value(v) => v.get(),
                postern_imap_proto::SeqNum::Star => star,
            };
            let (a, b) = (v(r.from), v(r.to));
            (a.min(b)..=a.max(b)).contains(&uid)
        }),
    }
}

/// How much of the buffer a command that failed to parse takes up.
#[derive(Debug, PartialEq, Eq)]
enum Extent {
    /// Its bytes, literals included, end here.
    Through(usize),
    /// Its first line is not all here: skip to the next LF as bytes arrive.
    Line,
    /// Literal data of unknown extent may follow: nothing after can be trusted.
    Unsafe,
}

/// Walks a failed command's lines the way the framing does (RFC 9051 §4.3): a line
/// ending in a literal header `{n}`, `{n+}` or `~{n}` is followed by n bytes of data,
/// unless it is synchronising and no data came (the client waits for a `+` it will
/// not get).
fn failed_extent(buf: &[u8]) -> Extent {
    let mut seg = 0usize;
    loop {
        let Some(i) = buf[seg..].iter().position(|b| *b == b'\n') else {
            return Extent::Line;
        };
        let lf = seg + i;
        let line = &buf[seg..lf];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some((length, non_sync)) = trailing_literal(line) else {
            return Extent::Through(lf + 1);
        };
        let data = lf + 1;
        let have = buf.len() - data;
        if !non_sync && have == 0 {
            return Extent::Through(data);
        }
        match length {
            Some(n) if n <= have as u64 => seg = data + n as usize,
            _ => return Extent::Unsafe,
        }
    }
}

/// The literal header ending `line`: its length (`None` when too large to read) and
/// whether it is non-synchronising.
fn trailing_literal(line: &[u8]) -> Option<(Option<u64>, bool)> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|b| *b == b'{')?;
    let mut digits = &body[open + 1..];
    let non_sync = digits.last() == Some(&b'+');
    if non_sync {
        digits = &digits[..digits.len() - 1];
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok());
    Some((n, non_sync))
}

/// Text for a response line: no CR, LF or other control characters, and no `[` at the
/// start (which would read as a response code).
fn sanitize(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    t.trim_start_matches('[').to_string()
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn failed_extent_skips_literals() {
        use super::{Extent, failed_extent};
        assert_eq!(failed_extent(b"a FOO\r\nb NOOP\r\n"), Extent::Through(7));
        assert_eq!(
            failed_extent(b"a FOO {3+}\r\nabc\r\nb"),
            Extent::Through(17)
        );
        assert_eq!(failed_extent(b"a FOO {3}\r\n"), Extent::Through(11));
        assert_eq!(failed_extent(b"a FOO {9+}\r\nabc"), Extent::Unsafe);
        assert_eq!(
            failed_extent(b"a FOO {99999999999999999999999+}\r\n"),
            Extent::Unsafe
        );
        assert_eq!(failed_extent(b"a FOO {3}\r\nab"), Extent::Unsafe);
        assert_eq!(failed_extent(b"a FOO xxx"), Extent::Line);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "a/b/c"));
        assert!(wildcard_match("%", "a"));
        assert!(!wildcard_match("%", "a/b"));
        assert!(wildcard_match("a/%", "a/b"));
        assert!(!wildcard_match("a/%", "a/b/c"));
        assert!(wildcard_match("a*", "a/b/c"));
        assert!(wildcard_match("inbox", "INBOX"));
        assert!(wildcard_match("InBox/*", "INBOX/x"));
        assert!(!wildcard_match("Inbox", "Inboxes"));
        assert!(!wildcard_match("inbox*", "Inboxes"));
        assert!(wildcard_match("INBOX*", "INBOX/a"));
        // A multi-byte character at byte 5 of the name or the pattern: no panic.
        assert!(!wildcard_match("INBOX*", "abcd\u{e9}"));
        assert!(!wildcard_match("abcd\u{e9}*", "INBOX"));
        assert!(wildcard_match("%/%", "a/b"));
        assert!(!wildcard_match("S*x", "Sent"));
        let long = "*".repeat(1000);
        assert!(wildcard_match(&long, &"a".repeat(1000)));
    }
}
