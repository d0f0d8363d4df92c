//! Postern's network edge: binding listeners, TLS material, connection admission and
//! limits, graceful shutdown, and the one-time drop from root to an unprivileged user.
//!
//! Protocol sessions (SMTP, IMAP, HTTP, …) never see a socket: they implement
//! [`Handler`] and receive a [`BoxStream`] that is already past any implicit-TLS
//! handshake, plus a [`ConnInfo`] describing where it came from and a [`Shutdown`]
//! signal. Everything that decides *whether* a connection gets that far lives here.
//!
//! # Standards
//!
//! - RFC 8314 §3.3 (implicit TLS for submission on 465) and §3.2 / RFC 9051 §2
//!   (implicit TLS for IMAP on 993): [`ListenerKind::implicit_tls`] kinds finish the TLS
//!   handshake before the handler runs.
//! - RFC 3207 (SMTP STARTTLS) and RFC 9051 §6.2.1 (IMAP STARTTLS): plain listeners hand
//!   the session a [`tokio_rustls::TlsAcceptor`] and [`tls::starttls`] performs the upgrade
//!   under the same handshake deadline.
//! - RFC 8446 (TLS 1.3) and RFC 5246 (TLS 1.2), via rustls with the *ring* provider only.
//! - RFC 5280 for the self-signed certificate (SANs: host name, `localhost`, 127.0.0.1, ::1).
//!
//! # Security
//!
//! Untrusted input seen here: TCP connection attempts (rate and count) from any address,
//! and the bytes of the TLS handshake, which rustls parses. No application bytes are
//! read by this crate. Admission is decided before any byte is read, so a peer that is
//! over a limit costs one accept and one small write. A peer that opens a connection and
//! stays silent during an implicit-TLS handshake is closed after
//! [`Limits::tls_handshake_timeout`].
//!
//! Trusted input: listener addresses, certificate/key paths and the service user name,
//! all from the administrator's configuration. The data directory is trusted as a
//! location but *not* as content: [`privilege::drop_privileges`] runs as root over a tree
//! the unprivileged service user can write to, so it never follows symlinks and never
//! changes ownership of a hard-linked file (DESIGN.md §2 invariant 14).
//!
//! # Invariants
//!
//! - Every accepted connection counts against [`Limits::max_connections`] (except the
//!   admin listener, see [`Limits::max_connections`]) and [`Limits::connections_per_ip`]
//!   from accept until its handler's future ends or is aborted; the counts are released
//!   by a drop guard, so a panicking handler cannot leak a slot.
//! - An implicit-TLS listener never runs its handler on plaintext: without a TLS
//!   configuration it refuses to start ([`NetError::TlsNotConfigured`]).
//! - [`tls::starttls`] takes the raw stream by value, so the session cannot keep reading
//!   plaintext it buffered before the upgrade (DESIGN.md §2 invariant 7); a session that
//!   reads ahead must drop its buffer before calling it.
//! - After [`Server::shutdown`] returns, no listener accepts and no handler is running
//!   past its grace period.
//! - After [`privilege::drop_privileges`] returns `Dropped`, `setuid(0)` has been shown
//!   to fail.
//! - No `unsafe` code in this crate.

#![forbid(unsafe_code)]

mod error;
mod limits;
mod listener;
pub mod privilege;
mod server;
pub mod tls;

pub use error::NetError;
pub use limits::Limits;
pub use listener::{
    BindFailure, BindReport, BoundListener, ListenerKind, ListenerSpec, bind_all, bind_all_with,
};
pub use server::{
    BoxStream, ConnInfo, Handler, Server, Shutdown, ShutdownTrigger, Stream, next_session_id,
};
