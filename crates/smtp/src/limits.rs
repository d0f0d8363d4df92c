//! The numbers and choices a session runs under, passed in as plain values by the
//! binary (which reads them from `[limits]`, `[auth]` and `[smtp]` of the configuration,
//! where each has its default and the reason for it).

use std::time::Duration;

/// Bounds on what one SMTP peer may send (DESIGN invariant 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpLimits {
    /// Longest command, AUTH or message text line in octets, CRLF included
    /// (`limits.smtp_line_length`).
    pub line_length: usize,
    /// Largest message in octets, advertised with SIZE (`limits.message_size`).
    pub message_size: u64,
    /// RCPT commands accepted per message (`limits.recipients_per_message`).
    pub recipients_per_message: u32,
    /// Message transactions per connection (`limits.messages_per_connection`).
    pub messages_per_connection: u32,
    /// Error replies before the server says 421 and closes
    /// (`limits.smtp_errors_before_disconnect`).
    pub errors_before_disconnect: u32,
    /// Time allowed for one command line to arrive (`limits.smtp_command_timeout_secs`).
    pub command_timeout: Duration,
    /// Time allowed for a whole message after 354, or for one BDAT chunk
    /// (`limits.smtp_data_timeout_secs`).
    pub data_timeout: Duration,
    /// Time allowed for the STARTTLS handshake (`limits.tls_handshake_timeout_secs`).
    pub tls_handshake_timeout: Duration,
    /// NOOP, RSET, VRFY, EXPN and HELP commands allowed since the last delivered
    /// message (or the start) before the server says 421 and closes
    /// (`smtp.max_junk_commands`).
    pub max_junk_commands: u32,
    /// Longest a connection may last, whatever it does (`smtp.max_session_secs`).
    pub max_session: Duration,
    /// Message bytes all sessions of the process may hold in memory at once
    /// (`limits.smtp_inflight_bytes`). Each session holds at most `message_size`, but
    /// thousands of sessions could each hold that: past this budget a message is
    /// refused with 452 4.3.1 (try later) instead of growing memory.
    pub inflight_bytes: u64,
    /// `Received` fields a message may already carry; at this many it is refused as a
    /// mail loop, 554 5.4.6 (RFC 5321 §6.3; `limits.smtp_max_received`).
    pub max_received: u32,
}

impl Default for SmtpLimits {
    /// The configuration's defaults (crates/postern/src/config.rs says why).
    fn default() -> Self {
        SmtpLimits {
            line_length: 12_288,
            message_size: 50 * 1024 * 1024,
            recipients_per_message: 1000,
            messages_per_connection: 100,
            errors_before_disconnect: 10,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            tls_handshake_timeout: Duration::from_secs(10),
            max_junk_commands: 100,
            max_session: Duration::from_secs(3600),
            inflight_bytes: 512 * 1024 * 1024,
            max_received: 100,
        }
    }
}

/// What to do with a message whose From domain publishes DMARC `p=reject` and fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcRejectAction {
    /// 550 5.7.26 at the end of DATA (RFC 7489 §6.7: reject during the SMTP transaction;
    /// RFC 7372 §3.2 code).
    Reject,
    /// Deliver to Junk.
    Quarantine,
    /// Deliver to the INBOX (the Authentication-Results header still says `fail`).
    Accept,
}

/// What to do with a message whose From domain publishes `p=quarantine` and fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcQuarantineAction {
    /// Deliver to Junk (RFC 7489 §6.3: "place into spam folder").
    Junk,
    /// Deliver to the INBOX.
    Accept,
}

/// Policy choices of the listener, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpPolicy {
    /// `auth.allow_plaintext_on_loopback`: AUTH without TLS from a loopback address.
    pub allow_plaintext_auth_on_loopback: bool,
    /// `smtp.dmarc_reject`.
    pub dmarc_reject: DmarcRejectAction,
    /// `smtp.dmarc_quarantine`.
    pub dmarc_quarantine: DmarcQuarantineAction,
    /// `smtp.max_unknown_recipients`: unknown recipients one connection may name before
    /// 421 and close (RCPT probing, THREATS "account enumeration").
    pub max_unknown_recipients: u32,
    /// Unknown recipients one remote address (IPv4, or IPv6 /64) may name within
    /// `probe_window`, across connections, before its RCPTs are refused for
    /// `probe_block`. Default 5 × `max_unknown_recipients`: a sender with a stale list
    /// spread over a few connections is not blocked, a dictionary attack is.
    pub probe_ip_threshold: u32,
    /// Default 10 minutes.
    pub probe_window: Duration,
    /// Default 10 minutes: long enough to make a dictionary attack slow, short enough
    /// that a legitimate relay sharing the address retries successfully (450 is
    /// temporary).
    pub probe_block: Duration,
}

impl Default for SmtpPolicy {
    fn default() -> Self {
        SmtpPolicy {
            allow_plaintext_auth_on_loopback: false,
            dmarc_reject: DmarcRejectAction::Reject,
            dmarc_quarantine: DmarcQuarantineAction::Junk,
            max_unknown_recipients: 20,
            probe_ip_threshold: 100,
            probe_window: Duration::from_secs(600),
            probe_block: Duration::from_secs(600),
        }
    }
}
