//! # postern-imap — the IMAP4rev2 server session
//!
//! A state machine over a byte stream: commands parsed by `postern-imap-proto`, answered
//! from `postern-core`, which decides access and writes the ledger. This crate holds no
//! policy and never touches a store backend.
//!
//! **Standards:** RFC 9051 (IMAP4rev2) with IMAP4rev1 (RFC 3501) behaviour for clients
//! that do not ENABLE it; the extensions listed in [`session`]'s CAPABILITY.
//!
//! **Security:** before login only small literals (LITERAL-, `preauth_literal_size`)
//! and short lines; LOGIN/AUTHENTICATE only under TLS unless loopback plaintext is
//! allowed by a named setting (LOGINDISABLED otherwise); read-ahead discarded at
//! STARTTLS; bad commands counted, the session ends past `max_bad_commands`; every read
//! of message data goes through a ledger grant in `core`. Every mailbox name is
//! resolved by `core::access` (own names, `Other Users/…`, `Shared/…`), and the
//! resulting `MailboxAccess` goes with every core call, which checks the RFC 4314
//! rights itself: the session never decides who may do what.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod conn;
mod fetch;
pub mod response;
pub mod search;
pub mod section;
mod selected;
mod session;
pub mod sort;
pub mod thread;

use postern_core::Core;
use postern_net::{BoxStream, ConnInfo, Handler, Shutdown};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// IMAP limits and policy (config `[limits]` imap_* and `[auth]`).
#[derive(Debug, Clone)]
pub struct ImapSettings {
    /// Parser limits after login (line length, literal size = APPENDLIMIT, nesting).
    pub limits: postern_imap_proto::Limits,
    /// Most bytes of one command with all its literals (MULTIAPPEND's total).
    pub max_command_size: u64,
    /// Largest literal before login.
    pub preauth_literal_size: u64,
    /// Longest line before login.
    pub preauth_line_length: usize,
    /// Silence allowed before login.
    pub login_timeout: Duration,
    /// Silence allowed after login, IDLE included (RFC 9051 §5.4: at least 30 minutes).
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub tls_timeout: Duration,
    /// Bad commands before the session is ended.
    pub max_bad_commands: u32,
    /// `auth.allow_plaintext_on_loopback`.
    pub allow_plaintext_auth_on_loopback: bool,
}

impl Default for ImapSettings {
    fn default() -> Self {
        ImapSettings {
            limits: postern_imap_proto::Limits::default(),
            max_command_size: 100 * 1024 * 1024,
            preauth_literal_size: 8 * 1024,
            preauth_line_length: 8 * 1024,
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30 * 60),
            write_timeout: Duration::from_secs(60),
            tls_timeout: Duration::from_secs(30),
            max_bad_commands: 20,
            allow_plaintext_auth_on_loopback: false,
        }
    }
}

pub(crate) struct Shared {
    pub(crate) core: Arc<Core>,
    pub(crate) settings: ImapSettings,
}

pub struct ImapHandler {
    shared: Arc<Shared>,
}

impl ImapHandler {
    pub fn new(core: Arc<Core>, settings: ImapSettings) -> ImapHandler {
        ImapHandler {
            shared: Arc::new(Shared { core, settings }),
        }
    }
}

impl Handler for ImapHandler {
    fn handle(
        &self,
        stream: BoxStream,
        info: ConnInfo,
        shutdown: Shutdown,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(session::run(self.shared.clone(), stream, info, shutdown))
    }

    fn refusal(&self) -> Option<&'static [u8]> {
        Some(b"* BYE [UNAVAILABLE] Too many connections; try again later\r\n")
    }
}
