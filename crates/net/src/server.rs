//! Accept loops, admission (connection limits), implicit-TLS handshakes, connection
//! tracking and graceful shutdown.
//!
//! Metrics (names are part of the operator interface):
//! - `postern_connections_accepted_total{listener}`: connections handed to a handler
//!   (for implicit-TLS listeners, after the handshake succeeded).
//! - `postern_connections_refused_total{listener, reason}`: connections closed before a
//!   handler saw them; `reason` is `limit_total`, `limit_ip` or `tls_handshake`.
//!   Every TCP connection accepted by the OS lands in exactly one of the two counters,
//!   unless shutdown interrupts its handshake.
//! - `postern_connections_active`: connections admitted and not yet ended, including
//!   those still in their TLS handshake.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{BoundListener, Limits, ListenerKind, NetError};

/// How long an accept loop pauses after the OS refuses to hand over a connection for
/// lack of descriptors or memory. The pending connection stays queued, so retrying at
/// once would spin a core; 100 ms lets other connections close meanwhile while adding
/// no noticeable delay for the queued peer.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// A fresh process-wide session id (never 0, never reused while the process runs), for
/// log correlation across protocols. [`ConnInfo::id`] comes from here.
pub fn next_session_id() -> u64 {
    NEXT_SESSION.fetch_add(1, Ordering::Relaxed)
}

/// A byte stream a handler can talk over: plain TCP, TLS, or anything else (tests use
/// `tokio::io::duplex`).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// The stream handed to a [`Handler`]. It is itself a [`Stream`], so a session can pass
/// it to [`crate::tls::starttls`].
pub type BoxStream = Box<dyn Stream>;

/// Where a connection came from and what it may do next.
#[derive(Clone)]
pub struct ConnInfo {
    /// Process-wide unique session id (see [`next_session_id`]); the `session` field of
    /// the connection's tracing span.
    pub id: u64,
    /// The listener that accepted it.
    pub kind: ListenerKind,
    /// Our address as the peer connected to it (the concrete address, also when the
    /// listener is bound to a wildcard).
    pub local: SocketAddr,
    /// The peer.
    pub remote: SocketAddr,
    /// True when the stream is already TLS (implicit-TLS listeners).
    pub tls: bool,
    /// For STARTTLS on plain listeners, when the server has TLS material; `None` on
    /// implicit-TLS listeners (already encrypted) and when no certificate exists.
    pub tls_acceptor: Option<TlsAcceptor>,
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnInfo")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("tls", &self.tls)
            .field("starttls_available", &self.tls_acceptor.is_some())
            .finish()
    }
}

/// A protocol session factory: one call per admitted connection.
pub trait Handler: Send + Sync + 'static {
    /// Serves one connection until it ends. The returned future owns the stream; when
    /// it completes the connection is closed and its limit slots released. It should
    /// watch `shutdown` and say goodbye in protocol terms when it fires; after the grace
    /// period of [`Server::shutdown`] it is aborted wherever it is.
    fn handle(
        &self,
        stream: BoxStream,
        info: ConnInfo,
        shutdown: Shutdown,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

    /// Bytes written to a connection refused for limits before closing it (e.g. SMTP
    /// `421 4.7.0 Too many connections\r\n`, IMAP `* BYE Too many connections\r\n`);
    /// `None` = just close. Keep it short: it is written once, without waiting, into
    /// the socket's empty send buffer.
    fn refusal(&self) -> Option<&'static [u8]> {
        None
    }
}

/// Tells handlers the server is stopping. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A signal and its trigger, for driving a handler outside a [`Server`] (tests).
    pub fn channel() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// Completes once shutdown has been signalled (at once if it already was). Also
    /// completes if the trigger is gone, since nothing could then stop the server
    /// gracefully any more.
    pub async fn triggered(&mut self) {
        // Err means the sender was dropped: treated as triggered, see above.
        let _ = self.rx.wait_for(|stopping| *stopping).await;
    }

    /// True once shutdown has been signalled or the trigger is gone.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }
}

/// The sending side of [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl ShutdownTrigger {
    /// Signals every [`Shutdown`] made from this trigger.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Another receiver.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

/// What the per-IP limit counts by. See [`Limits::connections_per_ip`] for why IPv6 is
/// counted per /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum IpKey {
    V4(Ipv4Addr),
    V6Net(u64),
}

impl IpKey {
    fn of(ip: IpAddr) -> IpKey {
        // to_canonical: an IPv4 peer reaching a dual-stack socket as ::ffff:a.b.c.d is
        // the same peer as a.b.c.d.
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpKey::V4(v4),
            IpAddr::V6(v6) => IpKey::V6Net((u128::from(v6) >> 64) as u64),
        }
    }
}

#[derive(Default)]
struct State {
    /// Admitted connections counted against `max_connections` (all but admin).
    limited: usize,
    /// Per remote address (see [`IpKey`]); entries are removed at zero so the map only
    /// holds peers that are connected now.
    per_ip: HashMap<IpKey, usize>,
    /// Every admitted connection's task, so shutdown can abort stragglers. Its length
    /// is the number of active connections.
    conns: HashMap<u64, AbortHandle>,
}

/// Shared by every listener: limits, counts, connection tracking and the shutdown
/// signal.
pub struct Server {
    limits: Limits,
    acceptor: Option<TlsAcceptor>,
    state: Mutex<State>,
    /// Woken when the last connection ends, for [`Server::shutdown`].
    idle: Notify,
    shutdown_tx: watch::Sender<bool>,
    accept_loops: Mutex<Vec<AbortHandle>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("limits", &self.limits)
            .field("tls", &self.acceptor.is_some())
            .field("active_connections", &self.active_connections())
            .finish()
    }
}

/// Releases a connection's slots however its task ends: return, panic or abort.
struct ConnGuard {
    server: Arc<Server>,
    id: u64,
    key: IpKey,
    limited: bool,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let now_idle = {
            let mut state = self.server.lock_state();
            if self.limited {
                state.limited = state.limited.saturating_sub(1);
            }
            if let Some(n) = state.per_ip.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.per_ip.remove(&self.key);
                }
            }
            state.conns.remove(&self.id);
            state.conns.is_empty()
        };
        metrics::gauge!("postern_connections_active").decrement(1.0);
        if now_idle {
            self.server.idle.notify_waiters();
        }
    }
}

impl Server {
    /// A server with these limits. `tls` enables implicit-TLS listeners and STARTTLS.
    pub fn new(limits: Limits, tls: Option<Arc<rustls::ServerConfig>>) -> Arc<Server> {
        let (shutdown_tx, _) = watch::channel(false);
        Arc::new(Server {
            limits,
            acceptor: tls.map(TlsAcceptor::from),
            state: Mutex::new(State::default()),
            idle: Notify::new(),
            shutdown_tx,
            accept_loops: Mutex::new(Vec::new()),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Spawns the accept loop for `listener` on the current tokio runtime.
    ///
    /// Implicit-TLS kinds finish the handshake (within
    /// [`Limits::tls_handshake_timeout`]) before `handler` runs; without TLS material
    /// they refuse to start with [`NetError::TlsNotConfigured`].
    pub fn spawn(
        self: &Arc<Self>,
        listener: BoundListener,
        handler: Arc<dyn Handler>,
    ) -> Result<(), NetError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NetError::NoRuntime)?;
        if *self.shutdown_tx.borrow() {
            return Err(NetError::ShuttingDown);
        }
        let (spec, local_addr, std_listener) = listener.into_parts();
        let kind = spec.kind;
        if kind.implicit_tls() && self.acceptor.is_none() {
            return Err(NetError::TlsNotConfigured {
                listener: kind.name(),
            });
        }
        let listener =
            TcpListener::from_std(std_listener).map_err(|source| NetError::Register {
                listener: kind.name(),
                source,
            })?;
        let span = info_span!("listener", listener = kind.name(), addr = %local_addr);
        let task = runtime.spawn(
            Arc::clone(self)
                .accept_loop(listener, kind, local_addr, handler)
                .instrument(span),
        );
        lock(&self.accept_loops).push(task.abort_handle());
        info!(listener = kind.name(), addr = %local_addr, "listening");
        Ok(())
    }

    /// Connections admitted and not yet ended (including admin connections and those
    /// still in a TLS handshake).
    pub fn active_connections(&self) -> usize {
        self.lock_state().conns.len()
    }

    /// A receiver of this server's shutdown signal.
    pub fn shutdown_signal(&self) -> Shutdown {
        Shutdown {
            rx: self.shutdown_tx.subscribe(),
        }
    }

    /// Stops accepting, signals [`Shutdown`] to every handler, waits up to `grace` for
    /// connections to end, then aborts the rest. Returns how many were aborted.
    ///
    /// An aborted handler's future is dropped at its next `.await`, which closes its
    /// socket; this does not wait for that.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.shutdown_tx.send_replace(true);
        // The loops also watch the signal; aborting as well makes "no listener accepts
        // once this returns" hold even if a loop is parked in an accept backoff.
        for task in lock(&self.accept_loops).drain(..) {
            task.abort();
        }
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Register before looking at the count, so a connection ending in between
            // cannot be missed.
            notified.as_mut().enable();
            if self.active_connections() == 0 {
                info!("shutdown: all connections ended");
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let state = self.lock_state();
        for task in state.conns.values() {
            task.abort();
        }
        let aborted = state.conns.len();
        warn!(aborted, "shutdown: grace period over, aborting connections");
        aborted
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        kind: ListenerKind,
        listener_addr: SocketAddr,
        handler: Arc<dyn Handler>,
    ) {
        let mut shutdown = self.shutdown_signal();
        loop {
            let accepted = tokio::select! {
                biased;
                () = shutdown.triggered() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, remote)) => {
                    // Interactive protocols exchange short lines; Nagle would hold each
                    // reply for the peer's delayed ACK. Failure only costs latency.
                    let _ = tcp.set_nodelay(true);
                    let local = tcp.local_addr().unwrap_or(listener_addr);
                    self.admit(tcp, kind, local, remote, &handler);
                }
                Err(e) if is_resource_exhaustion(&e) => {
                    warn!(error = %e, "accept failed for lack of resources; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                // Per-connection failures (ECONNABORTED: the peer gave up while queued,
                // EPERM from a firewall hook, …) say nothing about the next connection.
                Err(e) => debug!(error = %e, "accept failed"),
            }
        }
        info!("stopped accepting");
    }

    /// Decides on a freshly accepted connection: refuse it for a limit, or count it and
    /// spawn its task. Runs inline in the accept loop, before reading any byte.
    fn admit(
        self: &Arc<Self>,
        tcp: TcpStream,
        kind: ListenerKind,
        local: SocketAddr,
        remote: SocketAddr,
        handler: &Arc<dyn Handler>,
    ) {
        let key = IpKey::of(remote.ip());
        let limited = kind != ListenerKind::Admin;
        let mut state = self.lock_state();
        if limited && state.limited >= self.limits.max_connections {
            drop(state);
            self.refuse(tcp, kind, remote, handler.as_ref(), "limit_total");
            return;
        }
        let from_ip = state.per_ip.get(&key).copied().unwrap_or(0);
        if from_ip >= self.limits.connections_per_ip {
            drop(state);
            self.refuse(tcp, kind, remote, handler.as_ref(), "limit_ip");
            return;
        }
        if limited {
            state.limited += 1;
        }
        *state.per_ip.entry(key).or_insert(0) += 1;
        metrics::gauge!("postern_connections_active").increment(1.0);

        let id = next_session_id();
        let guard = ConnGuard {
            server: Arc::clone(self),
            id,
            key,
            limited,
        };
        let info = ConnInfo {
            id,
            kind,
            local,
            remote,
            tls: kind.implicit_tls(),
            tls_acceptor: if kind.implicit_tls() {
                None
            } else {
                self.acceptor.clone()
            },
        };
        let span = info_span!("conn", session = id, listener = kind.name(), remote = %remote);
        let task = tokio::spawn(
            Arc::clone(self)
                .serve(tcp, info, Arc::clone(handler), guard)
                .instrument(span),
        );
        // Inserted while still holding the lock: the task's guard removes this entry
        // under the same lock, so it cannot run before the entry exists and leave a
        // stale handle behind.
        state.conns.insert(id, task.abort_handle());
    }

    /// Closes a connection refused for a limit, after one non-blocking attempt to write
    /// the handler's refusal. No task is spawned: under a flood, refused peers must cost
    /// nothing beyond the accept.
    fn refuse(
        &self,
        tcp: TcpStream,
        kind: ListenerKind,
        remote: SocketAddr,
        handler: &dyn Handler,
        reason: &'static str,
    ) {
        metrics::counter!(
            "postern_connections_refused_total",
            "listener" => kind.name(),
            "reason" => reason
        )
        .increment(1);
        debug!(listener = kind.name(), %remote, reason, "connection refused");
        let Some(bytes) = handler.refusal() else {
            return;
        };
        // A tokio stream's try_write reports WouldBlock until the reactor has seen the
        // socket become writable, which a just-accepted socket has not; the plain
        // socket writes straight into its empty send buffer.
        match tcp.into_std() {
            Ok(mut std_tcp) => {
                if let Err(e) = std_tcp.write(bytes) {
                    debug!(%remote, error = %e, "refusal not written");
                }
            }
            Err(e) => debug!(%remote, error = %e, "refusal not written"),
        }
    }

    /// One admitted connection: implicit-TLS handshake if needed, then the handler.
    async fn serve(
        self: Arc<Self>,
        tcp: TcpStream,
        info: ConnInfo,
        handler: Arc<dyn Handler>,
        guard: ConnGuard,
    ) {
        let _guard = guard;
        let kind = info.kind;
        let mut shutdown = self.shutdown_signal();
        let stream: BoxStream = if kind.implicit_tls() {
            let Some(acceptor) = self.acceptor.clone() else {
                // spawn() refuses implicit-TLS listeners without TLS material.
                return;
            };
            let handshake =
                tokio::time::timeout(self.limits.tls_handshake_timeout, acceptor.accept(tcp));
            let outcome = tokio::select! {
                outcome = handshake => outcome,
                () = shutdown.triggered() => {
                    debug!("shutdown during TLS handshake");
                    return;
                }
            };
            match outcome {
                Ok(Ok(tls)) => Box::new(tls),
                Ok(Err(e)) => {
                    refused_handshake(kind);
                    debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_elapsed) => {
                    refused_handshake(kind);
                    debug!(timeout = ?self.limits.tls_handshake_timeout, "TLS handshake timed out");
                    return;
                }
            }
        } else {
            Box::new(tcp)
        };
        metrics::counter!("postern_connections_accepted_total", "listener" => kind.name())
            .increment(1);
        info!(local = %info.local, tls = info.tls, "connected");
        handler.handle(stream, info, shutdown).await;
        info!("disconnected");
    }
}

fn refused_handshake(kind: ListenerKind) {
    metrics::counter!(
        "postern_connections_refused_total",
        "listener" => kind.name(),
        "reason" => "tls_handshake"
    )
    .increment(1);
}

/// Out of descriptors or kernel memory: the condition outlasts this connection.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
    )
}

/// Our critical sections do not panic, so a poisoned lock still guards consistent
/// counts; carrying on beats taking every listener down.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn ipv6_counts_per_64() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(IpKey::of(a.into()), IpKey::of(b.into()));
        assert_ne!(IpKey::of(a.into()), IpKey::of(c.into()));
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let mapped: Ipv6Addr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: Ipv4Addr = "192.0.2.7".parse().unwrap();
        assert_eq!(IpKey::of(mapped.into()), IpKey::of(v4.into()));
        let other: Ipv4Addr = "192.0.2.8".parse().unwrap();
        assert_ne!(IpKey::of(other.into()), IpKey::of(v4.into()));
    }

    #[test]
    fn session_ids_are_unique() {
        let a = next_session_id();
        let b = next_session_id();
        assert!(a != 0 && b > a);
    }

    #[tokio::test]
    async fn shutdown_signal_channel() {
        let (trigger, mut signal) = Shutdown::channel();
        assert!(!signal.is_triggered());
        trigger.trigger();
        signal.triggered().await;
        assert!(signal.is_triggered());
        let (trigger, mut orphan) = Shutdown::channel();
        drop(trigger);
        assert!(orphan.is_triggered());
        orphan.triggered().await;
    }
}
