//! Connection limits. Each field says why its default is what it is; each has a test in
//! `tests/` that hits it.

use std::time::Duration;

/// Limits applied by [`crate::Server`] to every listener it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once across all listeners except [`crate::ListenerKind::Admin`].
    ///
    /// Default 4096. Each connection holds one file descriptor and, with TLS, roughly
    /// 40–70 KiB of rustls buffers plus the session's own state, so 4096 bounds the edge
    /// at a few hundred MiB: enough for a site with a thousand users each keeping several
    /// IMAP connections (clients open up to five per account) and idle `IDLE`s. It needs
    /// RLIMIT_NOFILE above it; [`crate::privilege::raise_nofile_limit`] raises the soft
    /// limit to the hard one (systemd's default hard limit is 524288).
    ///
    /// Admin connections are exempt so that a flood on a public port cannot lock the
    /// administrator out of the loopback admin API (DESIGN.md §2 invariant 8); they still
    /// count against [`Limits::connections_per_ip`].
    pub max_connections: usize,

    /// Connections open at once from one remote address: an IPv4 address, or an IPv6
    /// /64 prefix (one subscriber gets a whole /64, so counting single IPv6 addresses
    /// would let one host rotate through 2^64 of them). IPv4-mapped IPv6 addresses count
    /// as their IPv4 address.
    ///
    /// Default 256: an office behind one NAT address with ~50 users, each with a couple
    /// of devices holding several IMAP connections, stays under it; one host can still
    /// take no more than 1/16 of [`Limits::max_connections`].
    pub connections_per_ip: usize,

    /// Time allowed for a TLS handshake (implicit TLS, and STARTTLS through
    /// [`crate::tls::starttls`]) from accept to finished.
    ///
    /// Default 10 s. A real handshake is two round trips; even over a slow mobile link it
    /// finishes in well under two seconds. A peer that has not finished in 10 s is either
    /// broken or holding a connection slot on purpose (slowloris), and before the
    /// handshake there is no protocol in which to tell it anything.
    pub tls_handshake_timeout: Duration,

    /// Pending-connection queue length passed to `listen(2)`.
    ///
    /// Default 1024: absorbs a burst of connections arriving while the accept loop is
    /// busy (e.g. a client reconnecting hundreds of IMAP sessions after a network
    /// change). Linux silently caps it at `net.core.somaxconn` (4096 since 5.4).
    pub listen_backlog: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            connections_per_ip: 256,
            tls_handshake_timeout: Duration::from_secs(10),
            listen_backlog: 1024,
        }
    }
}
