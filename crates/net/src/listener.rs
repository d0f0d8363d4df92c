//! Listener kinds and binding. Binding happens before the privilege drop (ports below
//! 1024 need root) and before any runtime exists, so it is plain blocking socket code.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::Limits;

/// What a listener serves. The names are the configuration keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// SMTP MX, port 25, STARTTLS (RFC 5321, RFC 3207).
    Smtp,
    /// Message submission, port 587, STARTTLS (RFC 6409).
    Submission,
    /// Message submission over implicit TLS, port 465 (RFC 8314 §3.3).
    Submissions,
    /// IMAP, port 143, STARTTLS (RFC 9051).
    Imap,
    /// IMAP over implicit TLS, port 993 (RFC 8314 §3.2).
    Imaps,
    /// HTTP, port 80 (redirects and ACME only, by the web crate's choice).
    Http,
    /// HTTPS, port 443.
    Https,
    /// Admin API, loopback by default (DESIGN.md §2 invariant 8).
    Admin,
}

impl ListenerKind {
    /// The configuration key, also used as the `listener` metric label and log field.
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Smtp => "smtp",
            ListenerKind::Submission => "submission",
            ListenerKind::Submissions => "submissions",
            ListenerKind::Imap => "imap",
            ListenerKind::Imaps => "imaps",
            ListenerKind::Http => "http",
            ListenerKind::Https => "https",
            ListenerKind::Admin => "admin",
        }
    }

    /// True when TLS starts at connect, before any protocol byte.
    pub fn implicit_tls(self) -> bool {
        matches!(
            self,
            ListenerKind::Submissions | ListenerKind::Imaps | ListenerKind::Https
        )
    }

    /// Every kind, in configuration order.
    pub fn all() -> [ListenerKind; 8] {
        [
            ListenerKind::Smtp,
            ListenerKind::Submission,
            ListenerKind::Submissions,
            ListenerKind::Imap,
            ListenerKind::Imaps,
            ListenerKind::Http,
            ListenerKind::Https,
            ListenerKind::Admin,
        ]
    }

    /// The kind whose [`ListenerKind::name`] is `name`.
    pub fn from_name(name: &str) -> Option<ListenerKind> {
        ListenerKind::all().into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One address to listen on, for one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSpec {
    /// What it serves.
    pub kind: ListenerKind,
    /// Where. Port 0 asks the OS for a free port (tests).
    pub addr: SocketAddr,
}

/// A socket that is bound and listening, not yet served.
#[derive(Debug)]
pub struct BoundListener {
    /// What was asked for.
    pub spec: ListenerSpec,
    /// What the OS gave (differs from `spec.addr` when the port was 0).
    pub local_addr: SocketAddr,
    /// Non-blocking, so the runtime can take it as is.
    listener: TcpListener,
}

impl BoundListener {
    /// The socket itself, for a caller that serves it without [`crate::Server`].
    /// It is non-blocking. Connections on it bypass this crate's limits.
    pub fn into_std(self) -> TcpListener {
        self.listener
    }

    pub(crate) fn into_parts(self) -> (ListenerSpec, SocketAddr, TcpListener) {
        (self.spec, self.local_addr, self.listener)
    }
}

/// A listener that could not be bound.
#[derive(Debug)]
pub struct BindFailure {
    /// What was asked for.
    pub spec: ListenerSpec,
    /// For the operator, e.g. "address already in use".
    pub reason: String,
    /// The OS error's kind, for a caller deciding whether the failure is fatal.
    pub error_kind: io::ErrorKind,
}

impl fmt::Display for BindFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {}: {}",
            self.spec.kind, self.spec.addr, self.reason
        )
    }
}

/// What [`bind_all`] managed. One failure does not stop the others: the operator sees
/// every problem at once, and the binary decides what is fatal.
#[derive(Debug, Default)]
pub struct BindReport {
    /// Listening sockets, in the order of the specs.
    pub bound: Vec<BoundListener>,
    /// The rest, in the order of the specs.
    pub failed: Vec<BindFailure>,
}

/// Binds every spec with the default [`Limits::listen_backlog`].
pub fn bind_all(specs: &[ListenerSpec]) -> BindReport {
    bind_all_with(specs, &Limits::default())
}

/// Binds every spec, with `SO_REUSEADDR` (a restart must not wait out TIME_WAIT) and,
/// for IPv6 addresses, `IPV6_V6ONLY` so that `[::]:25` and `0.0.0.0:25` can both be
/// configured and each address family has exactly one owner.
pub fn bind_all_with(specs: &[ListenerSpec], limits: &Limits) -> BindReport {
    let mut report = BindReport::default();
    for spec in specs {
        match bind_one(spec.addr, limits.listen_backlog) {
            Ok(listener) => {
                // local_addr cannot fail on a bound socket in practice, but if it does
                // the operator should hear about it rather than get a listener with an
                // unknown address.
                match listener.local_addr() {
                    Ok(local_addr) => report.bound.push(BoundListener {
                        spec: spec.clone(),
                        local_addr,
                        listener,
                    }),
                    Err(e) => report.failed.push(failure(spec, &e)),
                }
            }
            Err(e) => report.failed.push(failure(spec, &e)),
        }
    }
    report
}

fn bind_one(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    // socket2 opens with SOCK_CLOEXEC, so no descriptor leaks across an exec
    // (there are none by design, DESIGN.md §2 invariant 14, but it costs nothing).
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn failure(spec: &ListenerSpec, e: &io::Error) -> BindFailure {
    let reason = match e.kind() {
        io::ErrorKind::PermissionDenied if spec.addr.port() < 1024 => {
            "permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE".to_owned()
        }
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::AddrInUse => "address already in use".to_owned(),
        io::ErrorKind::AddrNotAvailable => {
            "address not available: no interface on this host has it".to_owned()
        }
        _ => e.to_string(),
    };
    BindFailure {
        spec: spec.clone(),
        reason,
        error_kind: e.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in ListenerKind::all() {
            assert_eq!(ListenerKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(ListenerKind::from_name("pop3"), None);
    }

    #[test]
    fn implicit_tls_kinds() {
        let tls: Vec<_> = ListenerKind::all()
            .into_iter()
            .filter(|k| k.implicit_tls())
            .collect();
        assert_eq!(
            tls,
            [
                ListenerKind::Submissions,
                ListenerKind::Imaps,
                ListenerKind::Https
            ]
        );
    }
}
