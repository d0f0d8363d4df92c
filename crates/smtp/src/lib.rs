//! # postern-smtp — receiving mail: the MX listener and submission
//!
//! One [`SmtpHandler`] serves the three SMTP listeners, told apart by
//! [`postern_net::ConnInfo::kind`]: `smtp` (port 25, mail from other servers, STARTTLS,
//! no AUTH, SPF/DKIM/DMARC through [`verify`]) and `submission` / `submissions` (587
//! STARTTLS, 465 implicit TLS: AUTH required, the sender must be the user's own). Both
//! deliver through `core` ([`postern_core::Core::deliver`] / `submit`): one blob, every
//! recipient and the ledger entry in one durable batch, before the 250.
//!
//! Flow: `net` accepts (connection limits, implicit TLS) → `session` (state machine;
//! `conn` reads ahead and batches replies; `command` parses lines; `data` reads the
//! message) → `core::resolve` per RCPT → `verify` (MX) → `trace` (Return-Path, Received,
//! Authentication-Results) → `core::deliver`.
//!
//! **Standards:** RFC 5321 (SMTP), RFC 3207 (STARTTLS), RFC 8314 (implicit TLS), RFC 6409
//! (submission), RFC 4954 (AUTH) with RFC 4616 (PLAIN) and LOGIN, RFC 4959 (SASL-IR),
//! RFC 2920 (PIPELINING), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8),
//! RFC 2034 / 3463 (enhanced status codes), RFC 7372 (5.7.26), RFC 3030 (CHUNKING/BDAT),
//! RFC 3848 (`with` names), RFC 8601 (Authentication-Results), RFC 7208 / 6376 / 7489 /
//! 8617 (in [`verify`]). DSN (RFC 3461) is not offered until the outbound queue (issue
//! 5) can send notices: its parameters are refused as unknown (555 5.5.4).
//!
//! **Security:** everything a peer sends is untrusted. Lines are bounded
//! (`limits.smtp_line_length`) and must end in CRLF; bare CR or LF in a command or in
//! the message is refused (RFC 5321 §2.3.8) and only `<CRLF>.<CRLF>` ends DATA, so
//! smuggled commands never become a second message ([`data`]). Bytes pipelined after
//! STARTTLS are discarded before the handshake ([`session`], CVE-2011-0411).
//! Addresses go through `core::address` (no control characters, `%`, `!`, quoting,
//! source routes or IP literals); recipients outside our domains are refused unless the
//! client authenticated (and then, until the outbound queue exists, refused as
//! temporary). AUTH is offered only on submission and only under TLS (loopback with
//! `auth.allow_plaintext_on_loopback` aside). VRFY says 252 and EXPN is off; unknown
//! recipients are counted per connection and per remote address ([`probe`]). Every
//! wait has a deadline (command, whole message, TLS handshake) and every count a limit
//! ([`SmtpLimits`]).
//!
//! **Invariants:** a 250 after DATA/BDAT is sent only once the message is durable in
//! every recipient's mailbox with its ledger entry (DESIGN invariants 10, 13) — every
//! recipient but those the message no longer fits (over quota at the end of the data),
//! who are left out and named in that ledger entry; a refused message stores nothing
//! (one race aside: usage growing between the quota check and the commit can leave an
//! unreferenced blob, see `Core::deliver`); one message never becomes two; no reply reveals whether an
//! address exists beyond what RCPT must say (550 5.1.1).
#![forbid(unsafe_code)]

mod command;
mod conn;
mod data;
pub mod limits;
mod probe;
pub mod reply;
mod session;
pub mod trace;
pub mod verify;

pub use limits::{DmarcQuarantineAction, DmarcRejectAction, SmtpLimits, SmtpPolicy};
pub use session::dkim_sign;

use postern_core::Core;
use postern_net::{BoxStream, ConnInfo, Handler, Shutdown};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use verify::InboundVerifier;

/// What every session of the handler shares.
pub(crate) struct Shared {
    core: Arc<Core>,
    hostname: String,
    limits: SmtpLimits,
    policy: SmtpPolicy,
    verifier: Arc<InboundVerifier>,
    probes: probe::ProbeGuard,
    /// One permit per message byte held in memory by any session ([`SmtpLimits::inflight_bytes`]).
    budget: Arc<tokio::sync::Semaphore>,
}

/// The SMTP listeners' [`Handler`]: MX and submission, by listener kind.
pub struct SmtpHandler {
    shared: Arc<Shared>,
}

impl SmtpHandler {
    /// `hostname` is our name in the greeting, EHLO reply and Received fields, and the
    /// authserv-id of Authentication-Results.
    pub fn new(
        core: Arc<Core>,
        hostname: &str,
        limits: SmtpLimits,
        policy: SmtpPolicy,
        verifier: Arc<InboundVerifier>,
    ) -> SmtpHandler {
        let limits_budget = limits.inflight_bytes;
        let probes = probe::ProbeGuard::new(
            policy.probe_ip_threshold,
            policy.probe_window,
            policy.probe_block,
        )
        .with_shared(core.shared_counters());
        SmtpHandler {
            shared: Arc::new(Shared {
                core,
                hostname: hostname.to_string(),
                limits,
                policy,
                verifier,
                probes,
                budget: Arc::new(tokio::sync::Semaphore::new(
                    usize::try_from(limits_budget)
                        .unwrap_or(usize::MAX)
                        .min(tokio::sync::Semaphore::MAX_PERMITS),
                )),
            }),
        }
    }
}

impl Handler for SmtpHandler {
    fn handle(
        &self,
        stream: BoxStream,
        info: ConnInfo,
        shutdown: Shutdown,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(session::run(self.shared.clone(), stream, info, shutdown))
    }

    fn refusal(&self) -> Option<&'static [u8]> {
        // RFC 5321 §3.1: 421 in place of the greeting when we cannot serve.
        Some(b"421 4.7.0 Too many connections; try again later\r\n")
    }
}
