//! The crate's one error type. Each way the edge can fail has its own variant so the
//! binary can print an operator-actionable message and tests can match exactly.

use std::io;
use std::path::PathBuf;

/// Errors from binding, TLS material, serving and privilege dropping.
///
/// Per-connection failures (a refused peer, a failed handshake) are not errors of the
/// server: they are logged, counted in metrics and the connection is closed.
#[derive(thiserror::Error, Debug)]
pub enum NetError {
    /// [`crate::Server::spawn`] was called outside a tokio runtime.
    #[error("no tokio runtime: listeners must be spawned from inside one")]
    NoRuntime,

    /// An implicit-TLS listener (465, 993, 443) was configured but no TLS material
    /// exists; serving it as plaintext would expose credentials, so it does not start.
    #[error("listener {listener} needs TLS but no certificate is configured")]
    TlsNotConfigured {
        /// Config name of the listener ([`crate::ListenerKind::name`]).
        listener: &'static str,
    },

    /// [`crate::Server::spawn`] after [`crate::Server::shutdown`] began.
    #[error("server is shutting down")]
    ShuttingDown,

    /// Handing a bound socket to the async runtime failed.
    #[error("listener {listener}: cannot register socket with the runtime: {source}")]
    Register {
        /// Config name of the listener.
        listener: &'static str,
        /// The OS error.
        source: io::Error,
    },

    /// Only one of the certificate and key paths was configured. Falling back to a
    /// self-signed certificate would hide the administrator's mistake.
    #[error("TLS certificate and key must be configured together (got only the {given})")]
    TlsPathsIncomplete {
        /// "certificate" or "key": the one that was given.
        given: &'static str,
    },

    /// A PEM file could not be read or parsed.
    #[error("{path}: cannot read PEM: {source}")]
    TlsPem {
        /// The file.
        path: PathBuf,
        /// What went wrong (includes I/O errors).
        source: rustls_pki_types::pem::Error,
    },

    /// The certificate file holds no `CERTIFICATE` section.
    #[error("{path}: no certificate found")]
    TlsNoCertificate {
        /// The file.
        path: PathBuf,
    },

    /// The key file holds no private key section (PKCS#8, PKCS#1 or SEC1).
    #[error("{path}: no private key found")]
    TlsNoPrivateKey {
        /// The file.
        path: PathBuf,
    },

    /// rustls rejected the certificate/key pair (e.g. the key does not match).
    #[error("TLS configuration rejected: {0}")]
    TlsConfig(#[from] rustls::Error),

    /// The host name for the self-signed certificate is neither a DNS name (RFC 1123
    /// labels) nor an IP address; a certificate for it would match nothing.
    #[error("cannot make a certificate for {hostname:?}: not a host name or IP address")]
    InvalidHostname {
        /// What was given.
        hostname: String,
    },

    /// Generating the self-signed certificate failed.
    #[error("cannot generate self-signed certificate: {0}")]
    TlsGenerate(#[from] rcgen::Error),

    /// Writing the self-signed certificate, its key or their directory failed.
    #[error("{path}: cannot write TLS material: {source}")]
    TlsWrite {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },

    /// A STARTTLS handshake failed (bad ClientHello, protocol mismatch, reset).
    #[error("TLS handshake failed: {0}")]
    TlsHandshake(io::Error),

    /// A STARTTLS handshake did not finish within the deadline.
    #[error("TLS handshake timed out")]
    TlsHandshakeTimeout,

    /// Looking up the service user in the user database failed.
    #[error("cannot look up user {user}: {source}")]
    UserLookup {
        /// The name looked up.
        user: String,
        /// The errno.
        source: nix::Error,
    },

    /// Neither the configured user nor the fallback `nobody` exists.
    #[error("user {user} does not exist and neither does the fallback \"nobody\"")]
    NoSuchUser {
        /// The configured name.
        user: String,
    },

    /// The configured service user is uid 0 (or has gid 0): dropping to it would
    /// drop nothing.
    #[error("refusing to run as {user}: uid {uid} gid {gid} is privileged")]
    TargetIsPrivileged {
        /// The resolved name.
        user: String,
        /// Its uid.
        uid: u32,
        /// Its primary gid.
        gid: u32,
    },

    /// Changing ownership of the data directory tree failed.
    #[error("{path}: cannot change owner: {source}")]
    Chown {
        /// The path (for entries deep in the tree, the directory and entry name).
        path: PathBuf,
        /// The errno.
        source: nix::Error,
    },

    /// The tree to chown is deeper than [`crate::privilege::MAX_CHOWN_DEPTH`].
    #[error("{path}: directory tree deeper than {max} levels; not ours, refusing to chown")]
    ChownTooDeep {
        /// The directory at which the limit was hit.
        path: PathBuf,
        /// The limit.
        max: usize,
    },

    /// One of setgroups / setgid / setuid failed.
    #[error("{step} failed: {source}")]
    SetIds {
        /// Which call.
        step: &'static str,
        /// The errno.
        source: nix::Error,
    },

    /// After dropping, `setuid(0)` succeeded or the ids are not what was asked for.
    /// The process must not continue.
    #[error("privilege drop did not stick: {0}")]
    PrivilegesRegainable(String),

    /// Reading or raising RLIMIT_NOFILE failed.
    #[error("cannot adjust the open-file limit: {0}")]
    Rlimit(nix::Error),
}
