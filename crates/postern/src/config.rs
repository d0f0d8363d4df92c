//! The configuration file: every setting Postern has, its default, and why.
//!
//! `postern serve` with no file runs on [`Config::default`]; a file (TOML) overrides any
//! subset of it. `postern.example.toml` at the repository root lists every setting with
//! its default, and a test keeps the two equal.
//!
//! **Standards**: the defaults of the protocol limits follow RFC 5321 (SMTP), RFC 4954
//! (SMTP AUTH), RFC 9051 (IMAP4rev2), RFC 7162 (IMAP line lengths), RFC 2177 (IDLE);
//! each field cites the section it relies on.
//!
//! **Security**: the file is trusted operator input, but a mistake in it must not open a
//! hole silently. Unknown keys are errors (a misspelt `admin_allow_remote` must not
//! quietly fall back to a default); the admin listener may leave loopback only with an
//! explicit `listen.admin_allow_remote = true` (DESIGN.md §2 invariant 8); the hostname
//! must be a plain domain, because it is written into SMTP and IMAP greetings.
//!
//! **Invariants**: every limit a parser or session enforces is a named setting here with a
//! default and a reason (DESIGN.md §2 invariant 6). Every error names the file, the
//! dotted key (`limits.message_size`, `listen.smtp[1]`) and, when the key is in the file,
//! its line and column.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// Upper bound for every `*_secs` setting: one week. `Instant + Duration` panics on
/// overflow, so an absurd value must be refused here, not discovered at the first timeout.
const MAX_SECS: u64 = 7 * 24 * 3600;

/// Default maximum message size, shared by `message_size`, `imap_literal_size` and
/// `http_body_size` so one number describes "the biggest message we take".
const DEFAULT_MESSAGE_SIZE: u64 = 50 * 1024 * 1024;

/// All of Postern's settings. Built by [`Config::from_toml_str`], [`Config::load`] or
/// [`Config::default`]; every section and field may be left out of the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The server's own domain name: the SMTP greeting and EHLO name (RFC 5321 §4.1.1.1,
    /// §4.3.1), the IMAP greeting, Received header fields. Default: this machine's
    /// hostname (`/proc/sys/kernel/hostname`, else `/etc/hostname`), else `localhost`,
    /// so a fresh install says who it is without being told. Must be a domain name
    /// (RFC 5321 §4.1.2 `Domain`), since it is written verbatim into protocol lines.
    pub hostname: String,
    /// Where the store keeps metadata and message blobs. Default `./postern-data`: a
    /// relative path so `postern serve` in an empty directory just works; packaged
    /// installs set an absolute path.
    pub data_dir: PathBuf,
    /// Listening sockets.
    pub listen: ListenConfig,
    /// The certificate for STARTTLS and implicit TLS.
    pub tls: TlsConfig,
    /// Process-level settings.
    pub server: ServerConfig,
    /// Bounds on every connection, line, literal, message and parse (invariant 6).
    pub limits: LimitsConfig,
    /// Login throttling and password hashing (invariant 11).
    pub auth: AuthConfig,
    /// Logging.
    pub log: LogConfig,
    /// Storage backend.
    pub store: StoreConfig,
    /// DNS for SPF, DKIM, DMARC and ARC checks of inbound mail.
    pub dns: DnsConfig,
    /// SMTP policy choices (limits are in `[limits]`).
    pub smtp: SmtpConfig,
    /// Sending mail to other domains: the queue runner.
    pub outbound: OutboundConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: machine_hostname(),
            data_dir: PathBuf::from("./postern-data"),
            listen: ListenConfig::default(),
            tls: TlsConfig::default(),
            server: ServerConfig::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            store: StoreConfig::default(),
            dns: DnsConfig::default(),
            smtp: SmtpConfig::default(),
            outbound: OutboundConfig::default(),
        }
    }
}

/// Listening sockets, each a list of `"ip:port"` strings (`"[::]:25"` for IPv6). Host
/// names are refused: what a name resolves to can change, a bound address cannot. An
/// empty list turns that listener off. Port 0 asks the OS for a free port (tests).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// SMTP from other mail servers (MX). Default `0.0.0.0:25`: port 25 is where the
    /// internet delivers mail (RFC 5321 §4.5.4.2); STARTTLS is offered on it (RFC 3207).
    #[serde(deserialize_with = "socket_addrs")]
    pub smtp: Vec<SocketAddr>,
    /// Message submission with STARTTLS. Default `0.0.0.0:587` (RFC 6409 §3.1).
    #[serde(deserialize_with = "socket_addrs")]
    pub submission: Vec<SocketAddr>,
    /// Message submission over implicit TLS. Default `0.0.0.0:465` (RFC 8314 §3.3, which
    /// prefers it to STARTTLS).
    #[serde(deserialize_with = "socket_addrs")]
    pub submissions: Vec<SocketAddr>,
    /// IMAP with STARTTLS. Default `0.0.0.0:143` (RFC 9051 §2.1).
    #[serde(deserialize_with = "socket_addrs")]
    pub imap: Vec<SocketAddr>,
    /// IMAP over implicit TLS. Default `0.0.0.0:993` (RFC 8314 §3.2).
    #[serde(deserialize_with = "socket_addrs")]
    pub imaps: Vec<SocketAddr>,
    /// Plain HTTP. Default `0.0.0.0:80`: redirects to HTTPS and ACME challenges; no
    /// credentials are accepted on it.
    #[serde(deserialize_with = "socket_addrs")]
    pub http: Vec<SocketAddr>,
    /// HTTPS: web client, JMAP, CalDAV/CardDAV, ActiveSync, autodiscover. Default
    /// `0.0.0.0:443`.
    #[serde(deserialize_with = "socket_addrs")]
    pub https: Vec<SocketAddr>,
    /// The admin API, on its own socket (invariant 8). Default `127.0.0.1:8008`: loopback,
    /// so managing the server needs a shell on it. A non-loopback address is refused
    /// unless `admin_allow_remote` is true.
    #[serde(deserialize_with = "socket_addrs")]
    pub admin: Vec<SocketAddr>,
    /// Allows `admin` addresses off loopback. Default false: exposing management to the
    /// network must be a decision written in the file, never a side effect of an address
    /// (invariant 8; ProxyShell reached Exchange's management through its public port).
    pub admin_allow_remote: bool,
}

impl Default for ListenConfig {
    fn default() -> Self {
        let v4 = |port| vec![SocketAddr::from(([0, 0, 0, 0], port))];
        ListenConfig {
            smtp: v4(25),
            submission: v4(587),
            submissions: v4(465),
            imap: v4(143),
            imaps: v4(993),
            http: v4(80),
            https: v4(443),
            admin: vec![SocketAddr::from(([127, 0, 0, 1], 8008))],
            admin_allow_remote: false,
        }
    }
}

/// The certificate for every TLS listener. Both paths or neither.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Default none: the server then uses a
    /// self-signed certificate for `hostname`, so a fresh install can still offer TLS
    /// (and therefore accept logins) before a real certificate exists.
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`. Default none; required exactly when `cert` is given.
    pub key: Option<PathBuf>,
}

/// Process-level settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The unprivileged user to switch to after binding ports when started as root
    /// (invariant 14). Default `postern`, the user the packages create.
    pub run_as: String,
    /// On shutdown, how long in-flight sessions may finish before they are cut. Default
    /// 30: long enough for an SMTP DATA in progress to complete, well inside systemd's
    /// default 90 s stop timeout. 0 cuts at once (nothing acknowledged is lost either way,
    /// invariant 13).
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            run_as: "postern".to_owned(),
            shutdown_grace_secs: 30,
        }
    }
}

/// Bounds on untrusted input (DESIGN.md §2 invariant 6). Every value must be at least 1;
/// some have a larger floor where an RFC says what a server MUST accept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Open connections across all listeners. Default 10000: bounds memory and file
    /// descriptors (raise `RLIMIT_NOFILE` above it) while serving a large site's clients,
    /// most of which hold an idle IMAP connection each.
    pub max_connections: usize,
    /// Open connections from one IP address. Default 50: one host cannot take the whole
    /// pool, yet an office behind one NAT address, each mail client holding up to ~5 IMAP
    /// connections, still fits.
    pub connections_per_ip: usize,
    /// Seconds to complete a TLS handshake. Default 10: a real handshake takes a few round
    /// trips; a peer that stalls it is holding a connection slot for free.
    pub tls_handshake_timeout_secs: u64,
    /// Longest SMTP line in octets including CRLF: command lines, AUTH responses and
    /// message text lines. Default 12288: RFC 5321 requires at least 512 for commands
    /// (§4.5.3.1.4) and 1000 for text lines (§4.5.3.1.6), but RFC 4954 §4 names 12288 as
    /// the line length deployed AUTH mechanisms need (OAuth bearer tokens, Kerberos
    /// tickets), and real mail clients send text lines past 1000. Floor 1000
    /// (RFC 5321 §4.5.3.1: every implementation MUST be able to receive these sizes).
    pub smtp_line_length: usize,
    /// Largest message in octets, advertised with the SIZE extension (RFC 1870). Default
    /// 50 MiB: ~37 MiB of attachments after base64, above the 25-35 MB common at large
    /// providers so mail from them is never refused for size. Floor 65536
    /// (RFC 5321 §4.5.3.1.7: message content MUST be accepted up to at least 64K octets).
    pub message_size: u64,
    /// RCPT commands accepted per message. Default 1000: large internal distribution
    /// without letting one transaction fan out without end (Postfix uses the same).
    /// Floor 100 (RFC 5321 §4.5.3.1.8: at least 100 recipients MUST be buffered).
    pub recipients_per_message: u32,
    /// Messages accepted in one SMTP connection. Default 100: a sender with more
    /// reconnects, which re-runs connection-level checks and spreads load.
    pub messages_per_connection: u32,
    /// Error replies in one SMTP session before the server disconnects. Default 10: a real
    /// client errs once or twice; a prober or a client speaking the wrong protocol keeps
    /// going.
    pub smtp_errors_before_disconnect: u32,
    /// Seconds to wait for the next SMTP command. Default 300, the 5 minutes RFC 5321
    /// §4.5.3.2.7 says a server SHOULD wait.
    pub smtp_command_timeout_secs: u64,
    /// Seconds to receive a whole message after the 354 reply, up to the final `.`.
    /// A total, not per read, so a sender dripping one byte per command timeout cannot
    /// hold the connection for hours. Default 600: the 10 minutes RFC 5321 §4.5.3.2.6
    /// gives the client for the reply to the final dot; 50 MiB in 600 s needs ~90 KB/s.
    pub smtp_data_timeout_secs: u64,
    /// Message bytes all SMTP sessions together may hold in memory at once. Default
    /// 512 MiB: ten messages of the default largest size in flight at once, a small
    /// part of a server's memory; past it a message gets 452 4.3.1 (try later) instead
    /// of thousands of connections each growing toward `message_size`. At least
    /// `message_size`, or the largest message could never be taken.
    pub smtp_inflight_bytes: u64,
    /// `Received` fields a message may already carry before it is refused as a mail loop
    /// (554 5.4.6). Default 100, the threshold RFC 5321 §6.3 recommends ("at least 100");
    /// forwarding aliases make loops possible between two servers. Floor 25: fewer
    /// would refuse honest mail that crossed a few large providers' internal hops.
    pub smtp_max_received: u32,
    /// Longest IMAP command line in octets, literals excluded. Default 65536: RFC 7162 §4
    /// asks servers to accept at least 8192, and UID sets sent by clients with large
    /// mailboxes (CONDSTORE/QRESYNC, bulk STORE) go far beyond that; Dovecot uses 64 KiB.
    pub imap_line_length: usize,
    /// Largest IMAP literal in octets (APPEND, and every other literal). Default: the
    /// value of `message_size` (it follows `message_size` when left out), since an APPEND
    /// larger than a message we would accept by SMTP has no use.
    pub imap_literal_size: u64,
    /// Seconds an authenticated IMAP session, IDLE included, may stay silent before the
    /// server logs it out. Default 1800, which is also the floor: RFC 9051 §5.4 says an
    /// autologout timer after authentication MUST be at least 30 minutes; clients in IDLE
    /// re-issue it within 29 minutes for that reason (RFC 2177 §3).
    pub imap_idle_timeout_secs: u64,
    /// Deepest nesting of parenthesized lists in one IMAP command (SEARCH, FETCH).
    /// Default 64: real clients use a few levels; a bound keeps a recursive parser's
    /// stack use small (THREATS.md: 100 000 nested parentheses).
    pub imap_nesting_depth: usize,
    /// Most octets of one IMAP command with all its literals: bounds MULTIAPPEND, which
    /// may carry many messages of up to `imap_literal_size` each and is parsed whole.
    /// Default: twice `message_size` (it follows `message_size` when left out); at
    /// least `imap_literal_size`.
    pub imap_command_size: u64,
    /// Seconds a connection may stay silent before it logs in. Default 60: enough to
    /// type a password by hand over telnet, short enough that idle unauthenticated
    /// connections do not hold slots (THREATS.md: connection exhaustion).
    pub imap_login_timeout_secs: u64,
    /// Invalid IMAP commands (BAD) before the server says BYE. Default 20: clients
    /// that probe for extensions send a few; a fuzzer or a confused peer sends many.
    pub imap_errors_before_disconnect: u32,
    /// Largest literal accepted before login, in octets. Default 8192: LOGIN and
    /// AUTHENTICATE need a few hundred bytes; a larger literal before authentication
    /// is only ever a memory bomb (THREATS.md "IMAP bombs").
    pub imap_preauth_literal_size: u64,
    /// Total size in octets of one HTTP request's line and headers. Default 65536: fits
    /// large cookies and a Kerberos `Authorization: Negotiate` token (Windows allows
    /// tokens up to 48000 bytes) with room to spare.
    pub http_header_size: usize,
    /// Largest HTTP request body in octets. Default 50 MiB, like `message_size`: the
    /// largest bodies are message uploads (JMAP blob upload, ActiveSync SendMail).
    pub http_body_size: u64,
    /// Seconds for a client to send one request's line and headers. Default 60: slow
    /// clients on mobile links fit, slow-loris attacks do not hold a slot for long.
    /// (Pauses inside a request body are not bounded yet: the bodies the server takes
    /// today are small admin API requests; the upload surfaces bring a body timeout.)
    pub http_request_timeout_secs: u64,
    /// Deepest nesting of MIME parts (`multipart/*`, `message/rfc822`). Default 50: real
    /// mail, even forwarded-as-attachment chains, stays far below; THREATS.md lists
    /// 100 000-deep nesting as an attack.
    pub mime_nesting_depth: usize,
    /// Most MIME parts in one message. Default 10000: real mail has at most hundreds;
    /// a million-part message must not become a million index rows.
    pub mime_parts: usize,
    /// Most header fields in one message header section. Default 5000: long relay chains
    /// add one Received field per hop (RFC 5321 §6.3 loop detection counts them) and
    /// mailing lists add a few dozen more; thousands is only ever an attack.
    pub mime_header_count: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 10_000,
            connections_per_ip: 50,
            tls_handshake_timeout_secs: 10,
            smtp_line_length: 12_288,
            message_size: DEFAULT_MESSAGE_SIZE,
            recipients_per_message: 1000,
            messages_per_connection: 100,
            smtp_errors_before_disconnect: 10,
            smtp_command_timeout_secs: 300,
            smtp_data_timeout_secs: 600,
            smtp_inflight_bytes: 512 * 1024 * 1024,
            smtp_max_received: 100,
            imap_line_length: 65_536,
            imap_literal_size: DEFAULT_MESSAGE_SIZE,
            imap_idle_timeout_secs: 1800,
            imap_nesting_depth: 64,
            imap_command_size: 2 * DEFAULT_MESSAGE_SIZE,
            imap_login_timeout_secs: 60,
            imap_errors_before_disconnect: 20,
            imap_preauth_literal_size: 8192,
            http_header_size: 65_536,
            http_body_size: DEFAULT_MESSAGE_SIZE,
            http_request_timeout_secs: 60,
            mime_nesting_depth: 50,
            mime_parts: 10_000,
            mime_header_count: 5000,
        }
    }
}

/// Login throttling, shared by every login surface (invariant 11), and password hashing.
///
/// Failures are counted per account, per client IP and per password within a sliding
/// `window_secs`; past the free attempts of any counter each further attempt waits twice
/// as long as the last, up to `max_delay_secs`. Delays, not lockouts: a lockout would let
/// anyone lock a victim out by failing on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Accepts plaintext passwords on loopback connections without TLS (invariant 7 allows
    /// this exception). Default false: a TLS-terminating proxy on the same host makes every
    /// remote client look like loopback, so the exception must be asked for.
    pub allow_plaintext_on_loopback: bool,
    /// Failures against one account before delays start. Default 5: room for a few typos
    /// and a phone retrying an old password. With the doubling delay capped at 300 s this
    /// admits about 25 guesses an hour, well under the 100 consecutive failures NIST
    /// SP 800-63B §5.2.2 allows per account.
    pub free_attempts_per_account: u32,
    /// Failures from one IP address before delays start. Default 20: an office behind one
    /// NAT address has many users who mistype.
    pub free_attempts_per_ip: u32,
    /// Failures of one password, across all accounts, before delays start. Default 10:
    /// counts password spraying (one common password tried against many accounts), which
    /// the per-account counter never sees.
    pub free_attempts_per_password: u32,
    /// Cap on one delay in seconds. Default 300: keeps guessing slow while a legitimate
    /// user locked behind an attacker waits minutes, not hours.
    pub max_delay_secs: u64,
    /// How long a failure counts, in seconds. Default 3600: long enough to span a slow
    /// attack, short enough that yesterday's typos are forgotten.
    pub window_secs: u64,
    /// Argon2id memory cost in KiB. Default 19456 (19 MiB), OWASP's minimum for argon2id
    /// with 2 iterations: each concurrent login costs this much memory, so larger values
    /// are safer but make a login flood a memory flood. Must be at least
    /// 8 × `argon2_parallelism` (RFC 9106 §3.1).
    pub argon2_memory_kib: u32,
    /// Argon2id passes. Default 2 (OWASP, paired with 19 MiB).
    pub argon2_iterations: u32,
    /// Argon2id lanes. Default 1 (OWASP): the server parallelises across logins instead.
    /// At most 2^24 - 1 (RFC 9106 §3.1).
    pub argon2_parallelism: u32,
    /// Seconds a successful password check is remembered, so that a client logging in
    /// again with the same password skips the Argon2id hash (like Dovecot's
    /// `auth_cache_ttl`). Default 300. Only a keyed hash of (account, stored hash,
    /// password) is kept in memory, never the password; a changed password misses at
    /// once; failures are never remembered. 0 turns the cache off (SECURITY.md). The
    /// same time bounds the login of one HTTP (DAV) keep-alive connection: requests
    /// repeating the verified `Authorization` on that connection reuse it (one
    /// `auth.login` per connection, like an IMAP session) until it is this old.
    pub auth_cache_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            allow_plaintext_on_loopback: false,
            free_attempts_per_account: 5,
            free_attempts_per_ip: 20,
            free_attempts_per_password: 10,
            max_delay_secs: 300,
            window_secs: 3600,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            auth_cache_ttl_secs: 300,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing `EnvFilter` directive, e.g. `"info"` or `"info,postern_store=debug"`.
    /// Default `info`: connections, deliveries and errors, without per-command noise.
    /// `RUST_LOG`, when set, takes precedence.
    pub level: String,
    /// Line format. Default `text` for people reading a terminal; `json` for collectors.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The largest `store.inline_blob_max`.
pub const MAX_INLINE_BLOB: usize = 16 << 20;

/// Storage backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Which backend holds metadata and blobs. Default `embedded` (SQLite and files under
    /// `data_dir`), which needs no set-up.
    pub backend: StoreBackend,
    /// Most write batches that share one fsync in the embedded store's group commit.
    /// Default 256: under load one fsync acknowledges many deliveries, while a batch stays
    /// small enough that its latency is one disk flush (invariant 13: nothing is
    /// acknowledged before its fsync).
    pub group_commit_max: usize,
    /// Read-only SQLite connections beside the single writer. Default 4: WAL readers run
    /// in parallel with the writer; more than the cores that serve them buys nothing.
    pub reader_connections: usize,
    /// Blobs (message bytes) of at most this many octets are kept in the embedded
    /// store's database and committed with the records that refer to them, so one
    /// fsync of the group commit makes both durable; bigger ones are files under
    /// `data_dir/blobs`, each fsynced before its records commit. Default 131072 (128 KiB:
    /// most mail, while big attachments stay out of the WAL); 0 keeps every blob in a
    /// file. At most 16 MiB. Changing it moves nothing: blobs are read from both places.
    pub inline_blob_max: usize,
    /// With `backend = "postgres"`: the database, e.g.
    /// `postgres://postern@127.0.0.1:5432/postern`. Required there; unused otherwise.
    /// Several nodes with the same `url` and `schema` serve one set of mailboxes.
    pub url: Option<String>,
    /// With `backend = "postgres"`: the schema holding Postern's tables (created when
    /// missing). Default `postern`; `[a-z_][a-z0-9_]*`, at most 47 bytes (the change
    /// notice channel `postern_changes_<schema>` must fit PostgreSQL's 63-byte names).
    pub schema: String,
    /// With `backend = "postgres"`: pooled connections per node. Default 16: enough for
    /// the group of sessions one node serves at once without queueing, well below
    /// PostgreSQL's default `max_connections` of 100 for a few nodes.
    pub pool_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Embedded,
            group_commit_max: 256,
            reader_connections: 4,
            inline_blob_max: 128 * 1024,
            url: None,
            schema: "postern".to_owned(),
            pool_size: 16,
        }
    }
}

/// Where the inbound verifier (SPF, DKIM, DMARC, ARC) sends its DNS questions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Resolvers as `"ip:port"` strings. Default empty: the system's resolvers from
    /// `/etc/resolv.conf`. Set it to point at a local validating resolver, or when the
    /// system's resolver filters TXT answers.
    #[serde(deserialize_with = "socket_addrs")]
    pub nameservers: Vec<SocketAddr>,
    /// Seconds to wait for one DNS answer. Default 5: RFC 7208 §4.6.4 bounds SPF at 10
    /// lookups, and a sender's slow DNS must not hold the SMTP session near its own
    /// timeouts; a lookup that times out gives `temperror`, not a refusal.
    pub timeout_secs: u64,
    /// Believe the AD ("authentic data") bit from resolvers that are not on loopback,
    /// for DANE (outbound TLS). Default false: an AD bit crossing a network can be forged
    /// by anyone on the path (RFC 6840 §5.7); a loopback validating resolver's is used.
    pub trust_ad: bool,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            timeout_secs: 5,
            trust_ad: false,
        }
    }
}

/// SMTP policy choices.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// What to do with mail that fails DMARC when the sender's domain publishes
    /// `p=reject`: `reject` (550 5.7.26 during the transaction), `quarantine` (deliver to
    /// Junk) or `accept`. Default `reject`: the domain owner asked for it (RFC 7489
    /// §6.3), and refusing in-session makes the sending server, not us, tell the sender.
    pub dmarc_reject: DmarcReject,
    /// What to do with mail that fails DMARC under `p=quarantine`: `junk` or `accept`.
    /// Default `junk` (RFC 7489 §6.3: "treat as suspicious").
    pub dmarc_quarantine: DmarcQuarantine,
    /// Unknown recipients one SMTP connection may name before the server says 421 and
    /// closes; each remote address is also counted across connections and, past five
    /// times this within ten minutes, its RCPTs are refused for ten minutes. Default 20:
    /// a real sender with a stale list has a few typos per message, a dictionary attack
    /// (account enumeration) has thousands.
    pub max_unknown_recipients: u32,
    /// NOOP, RSET, VRFY, EXPN and HELP commands one SMTP connection may send without
    /// delivering a message before the server says 421 and closes. Default 100: a real
    /// client sends a few between messages; a peer that only keeps the connection (and
    /// a connection slot) busy sends them forever.
    pub max_junk_commands: u32,
    /// Longest an SMTP connection may last, in seconds, whatever it does; then 421 and
    /// close. Default 3600: a hundred large messages fit in it, a peer trickling commands
    /// under every per-command timeout does not hold a slot for ever.
    pub max_session_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            dmarc_reject: DmarcReject::Reject,
            dmarc_quarantine: DmarcQuarantine::Junk,
            max_unknown_recipients: 20,
            max_junk_commands: 100,
            max_session_secs: 3600,
        }
    }
}

/// The outbound queue and its delivery to other domains' mail servers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Run the queue runner on this node. Default true; with several nodes on one
    /// database any number may run it (claims are leased per recipient).
    pub enabled: bool,
    /// The TCP port of the destination MX hosts. Default 25 (RFC 5321 §4.5.4.2); tests
    /// point it at their own peers.
    pub port: u16,
    /// Send everything through this relay (`"host:port"`) instead of MX routing. Default
    /// none.
    pub smarthost: Option<String>,
    /// TLS to the smarthost: `opportunistic`, `required` (unauthenticated), `verify`
    /// (certificate valid for the smarthost's name under `ca_file` or the system roots)
    /// or `none`. Default `verify`: mail and credentials go to one known relay.
    pub smarthost_tls: SmarthostTls,
    /// PEM CA bundle for `verify`. Default: the system's (/etc/ssl/certs/ca-certificates.crt).
    pub ca_file: Option<PathBuf>,
    /// Use DANE (RFC 7672) where the destination's DNSSEC-signed zone publishes TLSA
    /// records; the resolvers in `[dns]` must validate (their AD bit is trusted).
    /// Default true.
    pub dane: bool,
    /// Honour MTA-STS (RFC 8461) policies: a destination in `enforce` mode gets mail only
    /// through the MX hosts its policy names, over TLS verified under `ca_file` or the
    /// system roots. Default true.
    pub mta_sts: bool,
    /// The HTTPS port MTA-STS policies are fetched from. Default 443 (RFC 8461 §3.3);
    /// tests point it elsewhere.
    pub mta_sts_port: u16,
    /// Try IPv6 addresses of a host before IPv4 ones. Default false.
    pub prefer_ipv6: bool,
    /// Deliver to mail hosts at loopback, private (RFC 1918, ULA), link-local or other
    /// non-public addresses. Default false: a domain whose MX points there would make the
    /// server a way into its own network (SSRF) or loop back to itself; internal relays
    /// and tests turn it on.
    pub allow_private_destinations: bool,
    /// Seconds to wait for a TCP connection to a mail host. Default 30.
    pub connect_timeout_secs: u64,
    /// Seconds to wait for each reply to a command. Default 300 (RFC 5321 §4.5.3.2).
    pub command_timeout_secs: u64,
    /// Seconds to wait for the reply after the message data. Default 600 (RFC 5321
    /// §4.5.3.2.6).
    pub data_timeout_secs: u64,
    /// How long a message may stay queued before its undelivered recipients fail with a
    /// bounce (status 4.4.7). Default 432000 (5 days, RFC 5321 §4.5.4.1).
    pub max_queue_lifetime_secs: u64,
    /// After how long a still-undelivered recipient gets a delay notice (RFC 3464
    /// `delayed`); 0 turns them off. Default 14400 (4 hours).
    pub delay_notice_secs: u64,
    /// First retry after this many seconds, doubling with each attempt. Default 300.
    pub retry_base_secs: u64,
    /// Longest wait between attempts. Default 3600.
    pub retry_max_secs: u64,
    /// Messages this node delivers at once. Default 16.
    pub concurrency: usize,
    /// Connections this node opens at once to one destination domain (or the
    /// smarthost). Default 4: receiving servers treat many parallel sessions from one
    /// sender as abuse.
    pub connections_per_destination: usize,
    /// Seconds a node holds claimed recipients; after that another node may take them.
    /// At least connect + 4 command + data timeouts (one delivery's worst case). Default
    /// 3600.
    pub lease_secs: u64,
    /// Seconds between looks at the queue when nothing wakes the runner. Default 10.
    pub poll_secs: u64,
    /// Record the TLS outcome of each delivery per recipient domain and send the
    /// domains that ask for them (`_smtp._tls` TXT) daily SMTP TLS reports (RFC 8460).
    /// Default true.
    pub tlsrpt: bool,
    /// Length of one reporting period in seconds, counted from midnight UTC. Default
    /// 86400 (RFC 8460 §4.1: daily reports); tests make it seconds. At most 86400.
    pub tlsrpt_period_secs: u64,
    /// Seconds between looks for finished periods to report. Default 3600.
    pub tlsrpt_interval_secs: u64,
    /// `organization-name` of the reports (RFC 8460 §4.4). Default: `hostname`.
    pub tlsrpt_organization: Option<String>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            enabled: true,
            port: 25,
            smarthost: None,
            smarthost_tls: SmarthostTls::Verify,
            ca_file: None,
            dane: true,
            mta_sts: true,
            mta_sts_port: 443,
            prefer_ipv6: false,
            allow_private_destinations: false,
            connect_timeout_secs: 30,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            max_queue_lifetime_secs: 432_000,
            delay_notice_secs: 14_400,
            retry_base_secs: 300,
            retry_max_secs: 3600,
            concurrency: 16,
            connections_per_destination: 4,
            lease_secs: 3600,
            poll_secs: 10,
            tlsrpt: true,
            tlsrpt_period_secs: 86_400,
            tlsrpt_interval_secs: 3600,
            tlsrpt_organization: None,
        }
    }
}

/// `outbound.smarthost_tls`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmarthostTls {
    #[default]
    Verify,
    Required,
    Opportunistic,
    None,
}

/// `smtp.dmarc_reject`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcReject {
    #[default]
    Reject,
    Quarantine,
    Accept,
}

/// `smtp.dmarc_quarantine`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcQuarantine {
    #[default]
    Junk,
    Accept,
}

/// Storage backends this build has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreBackend {
    /// SQLite for metadata, files named by hash for blobs, under `data_dir`.
    #[default]
    Embedded,
    /// PostgreSQL for metadata, journal, ledger and blobs (`store.url`): several nodes
    /// can share it.
    Postgres,
}

impl<'de> Deserialize<'de> for StoreBackend {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        match name.as_str() {
            "embedded" => Ok(StoreBackend::Embedded),
            "postgres" => Ok(StoreBackend::Postgres),
            other => Err(de::Error::custom(format_args!(
                "unknown backend `{other}`, expected `embedded` or `postgres`"
            ))),
        }
    }
}

/// A configuration that could not be read, parsed or accepted.
///
/// Displays as `origin:line:column: key `dotted.key`: message`, leaving out the parts
/// that are unknown.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The file (or other source) the text came from.
    pub origin: String,
    /// Dotted path of the offending key, e.g. `listen.smtp[1]` or `limits.message_size`.
    /// None for syntax and I/O errors.
    pub key: Option<String>,
    /// 1-based line of the offending text, when it is in the file.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the offending text, when it is in the file.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn render(&self) -> String {
        let mut out = self.origin.clone();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                out.push_str(&format!(":{column}"));
            }
        }
        if let Some(key) = &self.key {
            out.push_str(&format!(": key `{key}`"));
        }
        out.push_str(": ");
        out.push_str(&self.message);
        out
    }

    fn new(
        origin: &str,
        src: &str,
        key: Option<String>,
        span: Option<Range<usize>>,
        message: String,
    ) -> Self {
        let (line, column) = match span.and_then(|s| line_column(src, s.start)) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        };
        ConfigError {
            origin: origin.to_owned(),
            key,
            line,
            column,
            message,
        }
    }
}

impl Config {
    /// Parse TOML text. `origin` is the file name used in messages.
    pub fn from_toml_str(src: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = serde_path_to_error::deserialize(toml::Deserializer::new(src))
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                // serde_path_to_error writes "." for the root: a syntax error, no key.
                let key = (path != ".").then_some(path);
                // toml splits some syntax messages over lines; an error is one log line.
                let message = inner.message().trim().replace('\n', ": ");
                ConfigError::new(origin, src, key, inner.span(), message)
            })?;
        // Second pass over the same text for the position of each key. It parsed already,
        // so this can only fail on shapes Config has no field for (datetimes, arrays of
        // tables); then errors lose their line and imap_literal_size keeps what it has.
        let keys = KeySpans::parse(src);
        let literal_size_unset = keys
            .as_ref()
            .is_some_and(|k| k.find("limits.imap_literal_size").is_none());
        if literal_size_unset {
            config.limits.imap_literal_size = config.limits.message_size;
        }
        let command_size_unset = keys
            .as_ref()
            .is_some_and(|k| k.find("limits.imap_command_size").is_none());
        if command_size_unset {
            config.limits.imap_command_size = config.limits.message_size.saturating_mul(2);
        }
        config.check().map_err(|problem| {
            // Name the first of the keys involved that the file actually contains.
            let found = problem.keys.iter().find_map(|key| {
                keys.as_ref()
                    .and_then(|k| k.find(key))
                    .map(|span| (key.clone(), span))
            });
            let (key, span) = match found {
                Some((key, span)) => (key, Some(span)),
                None => (problem.keys[0].clone(), None),
            };
            ConfigError::new(origin, src, Some(key), span, problem.message)
        })?;
        Ok(config)
    }

    /// Read and parse a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            key: None,
            line: None,
            column: None,
            message: format!("cannot read the file: {e}"),
        })?;
        Config::from_toml_str(&src, &origin)
    }

    /// Every listener as (kind name, SocketAddr), in a fixed order: smtp, submission,
    /// submissions, imap, imaps, http, https, admin; within a kind, as written.
    pub fn listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        self.listener_lists()
            .into_iter()
            .flat_map(|(kind, addrs)| addrs.iter().map(move |a| (kind, *a)))
            .collect()
    }

    fn listener_lists(&self) -> [(&'static str, &[SocketAddr]); 8] {
        let l = &self.listen;
        [
            ("smtp", &l.smtp),
            ("submission", &l.submission),
            ("submissions", &l.submissions),
            ("imap", &l.imap),
            ("imaps", &l.imaps),
            ("http", &l.http),
            ("https", &l.https),
            ("admin", &l.admin),
        ]
    }

    /// Checks no single field's type can express. The first problem found is returned.
    fn check(&self) -> Result<(), Problem> {
        if !is_domain(&self.hostname) {
            return Err(Problem::at(
                "hostname",
                format!(
                    "`{}` is not a domain name (letters, digits and hyphens in dot-separated \
                     labels, RFC 5321 §4.1.2)",
                    self.hostname.escape_debug()
                ),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(Problem::at("data_dir", "must not be empty".to_owned()));
        }
        self.check_listeners()?;
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => {
                return Err(Problem::at(
                    "tls.cert",
                    "`tls.cert` is given without `tls.key`".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(Problem::at(
                    "tls.key",
                    "`tls.key` is given without `tls.cert`".to_owned(),
                ));
            }
            _ => {}
        }
        let run_as = &self.server.run_as;
        if run_as.is_empty()
            || run_as
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ':')
        {
            return Err(Problem::at(
                "server.run_as",
                format!("`{}` is not a user name", run_as.escape_debug()),
            ));
        }
        within(
            "server.shutdown_grace_secs",
            self.server.shutdown_grace_secs,
            0,
            MAX_SECS,
        )?;
        self.check_limits()?;
        self.check_auth()?;
        secs("dns.timeout_secs", self.dns.timeout_secs, 1, "")?;
        at_least(
            "smtp.max_unknown_recipients",
            self.smtp.max_unknown_recipients.into(),
            1,
            "",
        )?;
        at_least(
            "smtp.max_junk_commands",
            self.smtp.max_junk_commands.into(),
            1,
            "",
        )?;
        secs("smtp.max_session_secs", self.smtp.max_session_secs, 1, "")?;
        if self.log.level.trim().is_empty() {
            return Err(Problem::at("log.level", "must not be empty".to_owned()));
        }
        at_least(
            "store.group_commit_max",
            self.store.group_commit_max as u64,
            1,
            "",
        )?;
        at_least(
            "store.reader_connections",
            self.store.reader_connections as u64,
            1,
            "",
        )?;
        if self.store.inline_blob_max > MAX_INLINE_BLOB {
            return Err(Problem::at(
                "store.inline_blob_max",
                format!("must be at most {MAX_INLINE_BLOB} (16 MiB); bigger blobs belong in files"),
            ));
        }
        at_least("store.pool_size", self.store.pool_size as u64, 1, "")?;
        if !postern_store_pg::valid_schema_name(&self.store.schema) {
            return Err(Problem::at(
                "store.schema",
                format!(
                    "{:?}: use [a-z_][a-z0-9_]*, at most {} bytes, not starting with pg_",
                    self.store.schema,
                    postern_store_pg::MAX_SCHEMA_LEN
                ),
            ));
        }
        if self.store.backend == StoreBackend::Postgres {
            match self.store.url.as_deref() {
                None | Some("") => {
                    return Err(Problem {
                        keys: vec!["store.url".to_owned(), "store.backend".to_owned()],
                        message: "backend \"postgres\" needs `store.url` (postgres://user@host:port/database)".to_owned(),
                    });
                }
                Some(url)
                    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) =>
                {
                    return Err(Problem::at(
                        "store.url",
                        format!("{url:?} is not a postgres:// URL"),
                    ));
                }
                Some(_) => {}
            }
        }
        self.check_outbound()
    }

    fn check_outbound(&self) -> Result<(), Problem> {
        let o = &self.outbound;
        at_least("outbound.port", o.port.into(), 1, "")?;
        at_least("outbound.mta_sts_port", o.mta_sts_port.into(), 1, "")?;
        if let Some(sh) = &o.smarthost {
            let ok = sh
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(Problem::at(
                    "outbound.smarthost",
                    format!("{sh:?} is not \"host:port\""),
                ));
            }
        }
        secs(
            "outbound.connect_timeout_secs",
            o.connect_timeout_secs,
            1,
            "",
        )?;
        secs(
            "outbound.command_timeout_secs",
            o.command_timeout_secs,
            1,
            "",
        )?;
        secs("outbound.data_timeout_secs", o.data_timeout_secs, 1, "")?;
        secs(
            "outbound.max_queue_lifetime_secs",
            o.max_queue_lifetime_secs,
            1,
            "",
        )?;
        within(
            "outbound.delay_notice_secs",
            o.delay_notice_secs,
            0,
            MAX_SECS,
        )?;
        secs("outbound.retry_base_secs", o.retry_base_secs, 1, "")?;
        secs(
            "outbound.retry_max_secs",
            o.retry_max_secs,
            o.retry_base_secs,
            "at least retry_base_secs",
        )?;
        at_least("outbound.concurrency", o.concurrency as u64, 1, "")?;
        at_least(
            "outbound.connections_per_destination",
            o.connections_per_destination as u64,
            1,
            "",
        )?;
        secs("outbound.poll_secs", o.poll_secs, 1, "")?;
        within(
            "outbound.tlsrpt_period_secs",
            o.tlsrpt_period_secs,
            1,
            86_400,
        )?;
        secs(
            "outbound.tlsrpt_interval_secs",
            o.tlsrpt_interval_secs,
            1,
            "",
        )?;
        // A lease shorter than one delivery could let another node take recipients that
        // are still being sent.
        let longest = o.connect_timeout_secs + 4 * o.command_timeout_secs + o.data_timeout_secs;
        secs(
            "outbound.lease_secs",
            o.lease_secs,
            longest,
            "at least connect + 4 command + data timeouts",
        )?;
        Ok(())
    }

    fn check_listeners(&self) -> Result<(), Problem> {
        let l = &self.listen;
        for (i, addr) in l.admin.iter().enumerate() {
            if !l.admin_allow_remote && !addr.ip().to_canonical().is_loopback() {
                return Err(Problem::at(
                    format!("listen.admin[{i}]"),
                    format!(
                        "the admin API may listen on loopback only unless \
                         `listen.admin_allow_remote = true`; `{addr}` is not loopback"
                    ),
                ));
            }
        }
        // Two listeners on one address would fail at bind time with a less useful message.
        // Port 0 asks for any free port, so it may repeat.
        let mut seen: Vec<(String, SocketAddr)> = Vec::new();
        for (kind, addrs) in self.listener_lists() {
            for (i, addr) in addrs.iter().enumerate() {
                let key = format!("listen.{kind}[{i}]");
                if addr.port() != 0
                    && let Some((other, _)) = seen.iter().find(|(_, a)| a == addr)
                {
                    return Err(Problem {
                        message: format!("`{addr}` is used by both `{other}` and `{key}`"),
                        keys: vec![key, other.clone()],
                    });
                }
                seen.push((key, *addr));
            }
        }
        Ok(())
    }

    fn check_limits(&self) -> Result<(), Problem> {
        let l = &self.limits;
        let must_receive = "RFC 5321 §4.5.3.1: a server MUST be able to receive this";
        at_least("limits.max_connections", l.max_connections as u64, 1, "")?;
        at_least(
            "limits.connections_per_ip",
            l.connections_per_ip as u64,
            1,
            "",
        )?;
        secs(
            "limits.tls_handshake_timeout_secs",
            l.tls_handshake_timeout_secs,
            1,
            "",
        )?;
        at_least(
            "limits.smtp_line_length",
            l.smtp_line_length as u64,
            1000,
            must_receive,
        )?;
        at_least("limits.message_size", l.message_size, 65_536, must_receive)?;
        if l.smtp_inflight_bytes < l.message_size {
            return Err(Problem {
                keys: vec![
                    "limits.smtp_inflight_bytes".to_owned(),
                    "limits.message_size".to_owned(),
                ],
                message: format!(
                    "{} is below limits.message_size ({}): the largest message could never be taken",
                    l.smtp_inflight_bytes, l.message_size
                ),
            });
        }
        at_least(
            "limits.smtp_max_received",
            l.smtp_max_received.into(),
            25,
            "fewer would refuse honest mail that crossed a few providers' internal hops",
        )?;
        at_least(
            "limits.recipients_per_message",
            l.recipients_per_message.into(),
            100,
            must_receive,
        )?;
        at_least(
            "limits.messages_per_connection",
            l.messages_per_connection.into(),
            1,
            "",
        )?;
        at_least(
            "limits.smtp_errors_before_disconnect",
            l.smtp_errors_before_disconnect.into(),
            1,
            "",
        )?;
        secs(
            "limits.smtp_command_timeout_secs",
            l.smtp_command_timeout_secs,
            1,
            "",
        )?;
        secs(
            "limits.smtp_data_timeout_secs",
            l.smtp_data_timeout_secs,
            1,
            "",
        )?;
        at_least("limits.imap_line_length", l.imap_line_length as u64, 1, "")?;
        at_least("limits.imap_literal_size", l.imap_literal_size, 1, "")?;
        if l.imap_command_size < l.imap_literal_size {
            return Err(Problem {
                keys: vec![
                    "limits.imap_command_size".to_owned(),
                    "limits.imap_literal_size".to_owned(),
                ],
                message: format!(
                    "{} is below limits.imap_literal_size ({}): the largest APPEND could never be taken",
                    l.imap_command_size, l.imap_literal_size
                ),
            });
        }
        secs(
            "limits.imap_idle_timeout_secs",
            l.imap_idle_timeout_secs,
            1800,
            "RFC 9051 §5.4: an autologout timer after authentication MUST be at least 30 minutes",
        )?;
        at_least(
            "limits.imap_nesting_depth",
            l.imap_nesting_depth as u64,
            1,
            "",
        )?;
        secs(
            "limits.imap_login_timeout_secs",
            l.imap_login_timeout_secs,
            1,
            "",
        )?;
        at_least(
            "limits.imap_errors_before_disconnect",
            l.imap_errors_before_disconnect.into(),
            1,
            "",
        )?;
        at_least(
            "limits.imap_preauth_literal_size",
            l.imap_preauth_literal_size,
            1,
            "",
        )?;
        at_least("limits.http_header_size", l.http_header_size as u64, 1, "")?;
        at_least("limits.http_body_size", l.http_body_size, 1, "")?;
        secs(
            "limits.http_request_timeout_secs",
            l.http_request_timeout_secs,
            1,
            "",
        )?;
        // The parser's own ceiling (postern_core::message::HARD_NESTING_DEPTH): deeper
        // body structures would not survive the store's JSON round trip.
        within(
            "limits.mime_nesting_depth",
            l.mime_nesting_depth as u64,
            1,
            postern_core::message::HARD_NESTING_DEPTH as u64,
        )?;
        at_least("limits.mime_parts", l.mime_parts as u64, 1, "")?;
        at_least(
            "limits.mime_header_count",
            l.mime_header_count as u64,
            1,
            "",
        )?;
        Ok(())
    }

    fn check_auth(&self) -> Result<(), Problem> {
        let a = &self.auth;
        at_least(
            "auth.free_attempts_per_account",
            a.free_attempts_per_account.into(),
            1,
            "",
        )?;
        at_least(
            "auth.free_attempts_per_ip",
            a.free_attempts_per_ip.into(),
            1,
            "",
        )?;
        at_least(
            "auth.free_attempts_per_password",
            a.free_attempts_per_password.into(),
            1,
            "",
        )?;
        secs("auth.max_delay_secs", a.max_delay_secs, 1, "")?;
        secs("auth.window_secs", a.window_secs, 1, "")?;
        at_least(
            "auth.argon2_memory_kib",
            a.argon2_memory_kib.into(),
            8,
            "RFC 9106 §3.1",
        )?;
        at_least("auth.argon2_iterations", a.argon2_iterations.into(), 1, "")?;
        within(
            "auth.argon2_parallelism",
            a.argon2_parallelism.into(),
            1,
            (1 << 24) - 1,
        )?;
        if u64::from(a.argon2_memory_kib) < 8 * u64::from(a.argon2_parallelism) {
            return Err(Problem {
                keys: vec![
                    "auth.argon2_memory_kib".to_owned(),
                    "auth.argon2_parallelism".to_owned(),
                ],
                message: format!(
                    "argon2 needs at least 8 KiB per lane: {} KiB for {} lanes is too little \
                     (RFC 9106 §3.1)",
                    a.argon2_memory_kib, a.argon2_parallelism
                ),
            });
        }
        Ok(())
    }
}

/// A semantic error before its location is known.
struct Problem {
    /// The keys involved, the one to name first; the error names the first that is
    /// present in the file.
    keys: Vec<String>,
    message: String,
}

impl Problem {
    fn at(key: impl Into<String>, message: String) -> Problem {
        Problem {
            keys: vec![key.into()],
            message,
        }
    }
}

fn at_least(key: &str, value: u64, min: u64, why: &str) -> Result<(), Problem> {
    if value >= min {
        return Ok(());
    }
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(" ({why})")
    };
    Err(Problem::at(
        key,
        format!("{value} is too small: the minimum is {min}{why}"),
    ))
}

fn within(key: &str, value: u64, min: u64, max: u64) -> Result<(), Problem> {
    at_least(key, value, min, "")?;
    if value > max {
        return Err(Problem::at(
            key,
            format!("{value} is too large: the maximum is {max}"),
        ));
    }
    Ok(())
}

fn secs(key: &str, value: u64, min: u64, why: &str) -> Result<(), Problem> {
    at_least(key, value, min, why)?;
    if value > MAX_SECS {
        return Err(Problem::at(
            key,
            format!("{value} is too large: the maximum is {MAX_SECS} (one week)"),
        ));
    }
    Ok(())
}

/// RFC 5321 §4.1.2 `Domain` in ASCII (it goes into greetings as written): the one
/// domain rule of the project, `postern_core::address::parse_domain`, on an ASCII name.
fn is_domain(s: &str) -> bool {
    s.is_ascii() && !s.ends_with('.') && postern_core::address::parse_domain(s).is_ok()
}

fn machine_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|h| is_domain(h))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A list of `"ip:port"` strings. A visitor rather than `SocketAddr`'s own impl, for a
/// message that says what is expected, and so the error carries the element's own span.
fn socket_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    struct Addr(SocketAddr);
    impl<'de> Deserialize<'de> for Addr {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(AddrVisitor)
        }
    }
    struct AddrVisitor;
    impl Visitor<'_> for AddrVisitor {
        type Value = Addr;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an \"ip:port\" string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Addr, E> {
            v.parse().map(Addr).map_err(|_| {
                E::custom(format_args!(
                    "`{}` is not an address and port: expected \"ip:port\" such as \
                     \"0.0.0.0:25\" or \"[::]:25\" (host names are not resolved)",
                    v.escape_debug()
                ))
            })
        }
    }
    Ok(Vec::<Addr>::deserialize(d)?
        .into_iter()
        .map(|a| a.0)
        .collect())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(src: &str, offset: usize) -> Option<(usize, usize)> {
    let before = src.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Some((
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    ))
}

/// Where each key of a TOML text sits, to put a line on errors found after deserializing
/// (a second pass over the same text; `toml::Spanned` on keys and array elements).
enum KeySpans {
    /// (key, span of the key, what it holds)
    Table(Vec<(String, Range<usize>, KeySpans)>),
    /// (span of the element, what it holds)
    Array(Vec<(Range<usize>, KeySpans)>),
    Leaf,
}

impl KeySpans {
    fn parse(src: &str) -> Option<KeySpans> {
        toml::from_str(src).ok()
    }

    /// The span of a dotted path such as `listen.admin[1]` or `tls.cert`: the element for
    /// an index, the key for a name. None if the text does not contain it.
    fn find(&self, path: &str) -> Option<Range<usize>> {
        let mut node = self;
        let mut span = None;
        for part in path.split('.') {
            // `admin[1]` is the name `admin`, then index 1; `c[1][0]` nests.
            let (name, indexes) = match part.split_once('[') {
                Some((name, rest)) => (name, rest.strip_suffix(']')?.split("][").collect()),
                None => (part, Vec::new()),
            };
            let KeySpans::Table(entries) = node else {
                return None;
            };
            let (_, key_span, child) = entries.iter().find(|(k, _, _)| k == name)?;
            span = Some(key_span.clone());
            node = child;
            for index in indexes {
                let index: usize = index.parse().ok()?;
                let KeySpans::Array(items) = node else {
                    return None;
                };
                let (item_span, child) = items.get(index)?;
                span = Some(item_span.clone());
                node = child;
            }
        }
        span
    }
}

impl<'de> Deserialize<'de> for KeySpans {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeySpans;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any TOML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeySpans, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<toml::Spanned<String>>()? {
                    let span = key.span();
                    entries.push((key.into_inner(), span, map.next_value()?));
                }
                Ok(KeySpans::Table(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeySpans, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<toml::Spanned<KeySpans>>()? {
                    items.push((item.span(), item.into_inner()));
                }
                Ok(KeySpans::Array(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<KeySpans, E> {
                Ok(KeySpans::Leaf)
            }
            fn visit_i64<E>(self, _: i64) -> Result<KeySpans, E> {
                Ok(KeySpans::Leaf)
            }
            fn visit_u64<E>(self, _: u64) -> Result<KeySpans, E> {
                Ok(KeySpans::Leaf)
            }
            fn visit_f64<E>(self, _: f64) -> Result<KeySpans, E> {
                Ok(KeySpans::Leaf)
            }
            fn visit_str<E>(self, _: &str) -> Result<KeySpans, E> {
                Ok(KeySpans::Leaf)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../postern.example.toml");

    fn err(src: &str) -> ConfigError {
        match Config::from_toml_str(src, "postern.toml") {
            Ok(_) => panic!("accepted:\n{src}"),
            Err(e) => e,
        }
    }

    /// Asserts the error's key and 1-based line.
    fn assert_err(src: &str, key: Option<&str>, line: usize) -> ConfigError {
        let e = err(src);
        assert_eq!(e.key.as_deref(), key, "key of {e}");
        assert_eq!(e.line, Some(line), "line of {e}");
        e
    }

    #[test]
    fn empty_file_is_the_default() {
        let c = Config::from_toml_str("", "postern.toml").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.limits.imap_literal_size, c.limits.message_size);
        assert_eq!(c.limits.imap_command_size, 2 * c.limits.message_size);
        assert_eq!(
            c.listen.admin,
            vec!["127.0.0.1:8008".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn default_hostname_is_a_domain() {
        assert!(is_domain(&Config::default().hostname));
    }

    #[test]
    fn example_file_is_the_default() {
        let mut c = Config::from_toml_str(EXAMPLE, "postern.example.toml").unwrap();
        let d = Config::default();
        c.hostname = d.hostname.clone();
        assert_eq!(c, d);
    }

    /// The field names a struct's derived Deserialize expects, read by a Deserializer
    /// that only records them.
    fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        struct Grab<'a>(&'a mut &'static [&'static str]);
        impl<'de> Deserializer<'de> for Grab<'_> {
            type Error = de::value::Error;
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(de::Error::custom("fields recorded"))
            }
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
                enum identifier ignored_any
            }
        }
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Grab(&mut fields));
        assert!(!fields.is_empty());
        fields
    }

    fn sections() -> Vec<(&'static str, &'static [&'static str])> {
        vec![
            ("", fields_of::<Config>()),
            ("listen", fields_of::<ListenConfig>()),
            ("tls", fields_of::<TlsConfig>()),
            ("server", fields_of::<ServerConfig>()),
            ("limits", fields_of::<LimitsConfig>()),
            ("auth", fields_of::<AuthConfig>()),
            ("log", fields_of::<LogConfig>()),
            ("store", fields_of::<StoreConfig>()),
            ("dns", fields_of::<DnsConfig>()),
            ("smtp", fields_of::<SmtpConfig>()),
            ("outbound", fields_of::<OutboundConfig>()),
        ]
    }

    /// Every setting appears in the example, set or commented out, in its own section,
    /// so a new field cannot be forgotten there.
    #[test]
    fn example_file_names_every_setting() {
        let mut section = "";
        let mut seen: Vec<(String, String)> = Vec::new();
        for line in EXAMPLE.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name;
                continue;
            }
            let setting = line.strip_prefix('#').map_or(line, str::trim_start);
            if let Some((key, _)) = setting.split_once(" = ") {
                seen.push((section.to_owned(), key.to_owned()));
            }
        }
        for (name, fields) in sections() {
            for field in fields {
                let nested = sections().iter().any(|(s, _)| s == field);
                if name.is_empty() && nested {
                    assert!(
                        EXAMPLE.contains(&format!("\n[{field}]\n")),
                        "[{field}] missing"
                    );
                    continue;
                }
                assert!(
                    seen.contains(&(name.to_owned(), (*field).to_owned())),
                    "`{name}.{field}` is not in postern.example.toml"
                );
            }
        }
    }

    #[test]
    fn syntax_error_has_a_line_and_no_key() {
        let e = assert_err("[limits]\nmessage_size = 1\n[listen\n", None, 3);
        assert_eq!(e.column, Some(8));
        assert_eq!(
            e.to_string(),
            "postern.toml:3:8: invalid table header: expected `.`, `]`"
        );
    }

    #[test]
    fn duplicate_key_is_a_syntax_error() {
        assert_err(
            "[limits]\nmessage_size = 100000\nmessage_size = 200000\n",
            None,
            3,
        );
    }

    #[test]
    fn unknown_top_level_section() {
        let e = assert_err(
            "hostname = \"mx.example.org\"\n\n[limit]\nmessage_size = 1\n",
            Some("limit"),
            3,
        );
        assert!(e.message.contains("unknown field `limit`"), "{e}");
    }

    #[test]
    fn unknown_top_level_key() {
        assert_err(
            "hostname = \"mx.example.org\"\ndatadir = \"/var\"\n",
            Some("datadir"),
            2,
        );
    }

    #[test]
    fn unknown_key_inside_limits() {
        let e = assert_err(
            "[limits]\nmessage_size = 100000\n\nmax_message_size = 5\n",
            Some("limits.max_message_size"),
            4,
        );
        assert_eq!(e.column, Some(1));
    }

    #[test]
    fn unknown_key_in_dotted_and_inline_forms() {
        assert_err("\nlisten.smtpd = []\n", Some("listen.smtpd"), 2);
        assert_err(
            "\n\nauth = { window_secs = 60, windows = 1 }\n",
            Some("auth.windows"),
            3,
        );
    }

    #[test]
    fn wrong_type() {
        let e = assert_err(
            "[limits]\n\nmessage_size = \"big\"\n",
            Some("limits.message_size"),
            3,
        );
        assert_eq!(e.column, Some(16));
        assert_eq!(e.message, "invalid type: string \"big\", expected u64");
        assert_err(
            "[listen]\nadmin_allow_remote = \"yes\"\n",
            Some("listen.admin_allow_remote"),
            2,
        );
        assert_err("listen = 5\n", Some("listen"), 1);
    }

    #[test]
    fn listener_must_be_ip_and_port() {
        let e = assert_err(
            "[listen]\nsmtp = [\"localhost:25\"]\n",
            Some("listen.smtp[0]"),
            2,
        );
        assert!(
            e.message
                .contains("`localhost:25` is not an address and port"),
            "{e}"
        );
        assert_err(
            "[listen]\nsmtp = [\"1.2.3.4\"]\n",
            Some("listen.smtp[0]"),
            2,
        );
        assert_err("[listen]\nimap = [25]\n", Some("listen.imap[0]"), 2);
        // The element's own line in a multi-line list.
        assert_err(
            "[listen]\nsmtp = [\n  \"0.0.0.0:25\",\n  \"[::]:25\",\n  \"mx:25\",\n]\n",
            Some("listen.smtp[2]"),
            5,
        );
    }

    #[test]
    fn listeners_in_fixed_order() {
        let c = Config::from_toml_str(
            "[listen]\nsmtp = [\"[::]:25\", \"0.0.0.0:25\"]\nimaps = []\nhttp = []\n",
            "t",
        )
        .unwrap();
        let kinds: Vec<_> = c
            .listeners()
            .into_iter()
            .map(|(k, a)| format!("{k} {a}"))
            .collect();
        assert_eq!(
            kinds,
            [
                "smtp [::]:25",
                "smtp 0.0.0.0:25",
                "submission 0.0.0.0:587",
                "submissions 0.0.0.0:465",
                "imap 0.0.0.0:143",
                "https 0.0.0.0:443",
                "admin 127.0.0.1:8008",
            ]
        );
    }

    #[test]
    fn zero_negative_and_overflowing_limits() {
        let e = assert_err(
            "[limits]\nmax_connections = 0\n",
            Some("limits.max_connections"),
            2,
        );
        assert_eq!(e.message, "0 is too small: the minimum is 1");
        // Checks after deserializing point at the key; type errors (below) at the value.
        assert_eq!(e.column, Some(1));
        assert_err(
            "[limits]\n\nmessage_size = -1\n",
            Some("limits.message_size"),
            3,
        );
        assert_err(
            "[limits]\nrecipients_per_message = 5000000000\n",
            Some("limits.recipients_per_message"),
            2,
        );
        assert_err(
            "[auth]\nwindow_secs = 99999999999\n",
            Some("auth.window_secs"),
            2,
        );
        assert_err(
            "[auth]\nargon2_parallelism = 16777216\n",
            Some("auth.argon2_parallelism"),
            2,
        );
    }

    /// Every setting in [limits], [auth] and [store] refuses 0, naming itself and its
    /// line (integers by their range check, the others by type): a new limit without a
    /// check fails here.
    #[test]
    fn every_limit_refuses_zero() {
        for (section, fields) in sections() {
            if !["limits", "auth", "store", "smtp"].contains(&section) {
                continue;
            }
            // Zero turns the verified-password cache off, and keeps every blob in a
            // file (none inline): both are choices, not mistakes.
            for field in fields
                .iter()
                .filter(|f| !["auth_cache_ttl_secs", "inline_blob_max"].contains(*f))
            {
                let src = format!("# zero\n[{section}]\n{field} = 0\n");
                assert_err(&src, Some(&format!("{section}.{field}")), 3);
            }
        }
    }

    #[test]
    fn outbound_settings_are_checked() {
        for field in [
            "port",
            "mta_sts_port",
            "connect_timeout_secs",
            "command_timeout_secs",
            "data_timeout_secs",
            "max_queue_lifetime_secs",
            "retry_base_secs",
            "retry_max_secs",
            "concurrency",
            "connections_per_destination",
            "lease_secs",
            "poll_secs",
            "tlsrpt_period_secs",
            "tlsrpt_interval_secs",
        ] {
            let src = format!("# zero\n[outbound]\n{field} = 0\n");
            assert_err(&src, Some(&format!("outbound.{field}")), 3);
        }
        // A TLS reporting period is at most a day (RFC 8460 §4.1).
        assert_err(
            "# long\n[outbound]\ntlsrpt_period_secs = 86401\n",
            Some("outbound.tlsrpt_period_secs"),
            3,
        );
        // Zero turns delay notices off.
        let c = Config::from_toml_str("[outbound]\ndelay_notice_secs = 0\n", "t").unwrap();
        assert_eq!(c.outbound.delay_notice_secs, 0);
        // The lease must outlast one delivery.
        let e = assert_err(
            "[outbound]\nlease_secs = 100\n",
            Some("outbound.lease_secs"),
            2,
        );
        assert!(e.message.contains("minimum is 1830"), "{e}");
        let c = Config::from_toml_str(
            "[outbound]\nconnect_timeout_secs = 5\ncommand_timeout_secs = 5\ndata_timeout_secs = 5\nlease_secs = 30\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.outbound.lease_secs, 30);
        assert_err(
            "[outbound]\nretry_base_secs = 600\nretry_max_secs = 60\n",
            Some("outbound.retry_max_secs"),
            3,
        );
        assert_err(
            "[outbound]\nsmarthost = \"relay.example.net\"\n",
            Some("outbound.smarthost"),
            2,
        );
        let c = Config::from_toml_str(
            "[outbound]\nsmarthost = \"relay.example.net:587\"\nsmarthost_tls = \"required\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.outbound.smarthost_tls, SmarthostTls::Required);
    }

    #[test]
    fn rfc_floors() {
        let e = assert_err(
            "[limits]\nsmtp_line_length = 512\n",
            Some("limits.smtp_line_length"),
            2,
        );
        assert!(e.message.contains("minimum is 1000"), "{e}");
        assert_err(
            "[limits]\nmessage_size = 65535\n",
            Some("limits.message_size"),
            2,
        );
        assert_err(
            "[limits]\nrecipients_per_message = 99\n",
            Some("limits.recipients_per_message"),
            2,
        );
        assert_err(
            "[limits]\nsmtp_max_received = 24\n",
            Some("limits.smtp_max_received"),
            2,
        );
        let e = assert_err(
            "[limits]\nimap_idle_timeout_secs = 600\n",
            Some("limits.imap_idle_timeout_secs"),
            2,
        );
        assert!(e.message.contains("RFC 9051 §5.4"), "{e}");
        assert_err(
            "[limits]\nsmtp_command_timeout_secs = 604801\n",
            Some("limits.smtp_command_timeout_secs"),
            2,
        );
        Config::from_toml_str(
            "[limits]\nsmtp_line_length = 1000\nmessage_size = 65536\n",
            "t",
        )
        .unwrap();
    }

    #[test]
    fn imap_literal_size_follows_message_size_unless_set() {
        let c = Config::from_toml_str("[limits]\nmessage_size = 1000000\n", "t").unwrap();
        assert_eq!(c.limits.imap_literal_size, 1_000_000);
        let c = Config::from_toml_str(
            "[limits]\nmessage_size = 1000000\nimap_literal_size = 70000\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.limits.imap_literal_size, 70_000);
        assert_eq!(c.limits.imap_command_size, 2_000_000);
        let c = Config::from_toml_str("[limits]\nimap_command_size = 99000000\n", "t").unwrap();
        assert_eq!(c.limits.imap_command_size, 99_000_000);
        // A command cap below the literal cap could never carry the largest APPEND.
        let e = assert_err(
            "[limits]\nimap_literal_size = 70000\nimap_command_size = 69999\n",
            Some("limits.imap_command_size"),
            3,
        );
        assert!(e.message.contains("APPEND"), "{e}");
    }

    #[test]
    fn admin_off_loopback_needs_allow_remote() {
        let src = "[listen]\nadmin = [\n  \"127.0.0.1:8008\",\n  \"0.0.0.0:8008\",\n]\n";
        let e = assert_err(src, Some("listen.admin[1]"), 4);
        assert!(e.message.contains("admin_allow_remote"), "{e}");
        assert_err(
            "[listen]\nadmin = [\"[::]:8008\"]\n",
            Some("listen.admin[0]"),
            2,
        );
        let ok = format!("{src}admin_allow_remote = true\n");
        Config::from_toml_str(&ok, "t").unwrap();
        Config::from_toml_str(
            "[listen]\nadmin = [\"[::1]:8008\", \"[::ffff:127.0.0.1]:9\"]\n",
            "t",
        )
        .unwrap();
    }

    #[test]
    fn duplicate_listener_address() {
        // The clash is with a default; the key named is the one in the file.
        let e = assert_err(
            "[listen]\nsmtp = [\"0.0.0.0:587\"]\n",
            Some("listen.smtp[0]"),
            2,
        );
        assert_eq!(
            e.message,
            "`0.0.0.0:587` is used by both `listen.smtp[0]` and `listen.submission[0]`"
        );
        assert_err(
            "[listen]\nimap = [\"127.0.0.1:1143\"]\n\nimaps = [\"127.0.0.1:1143\"]\n",
            Some("listen.imaps[0]"),
            4,
        );
        // Port 0 means "any free port", so it may repeat (tests bind many of them).
        Config::from_toml_str(
            "[listen]\nsmtp = [\"127.0.0.1:0\"]\nimap = [\"127.0.0.1:0\"]\n",
            "t",
        )
        .unwrap();
    }

    #[test]
    fn tls_cert_and_key_go_together() {
        let e = assert_err(
            "[tls]\n\ncert = \"/etc/postern/cert.pem\"\n",
            Some("tls.cert"),
            3,
        );
        assert_eq!(e.message, "`tls.cert` is given without `tls.key`");
        assert_err("tls.key = \"/k.pem\"\n", Some("tls.key"), 1);
        let c = Config::from_toml_str("[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n", "t").unwrap();
        assert_eq!(c.tls.key, Some(PathBuf::from("/k.pem")));
    }

    #[test]
    fn argon2_memory_per_lane_names_a_key_in_the_file() {
        // 4096 lanes need 32768 KiB, more than the default 19456.
        assert_err(
            "[auth]\nargon2_parallelism = 4096\n",
            Some("auth.argon2_parallelism"),
            2,
        );
        assert_err(
            "[auth]\nargon2_parallelism = 4\nargon2_memory_kib = 16\n",
            Some("auth.argon2_memory_kib"),
            3,
        );
    }

    #[test]
    fn store_backend_and_log_format() {
        let e = assert_err(
            "[store]\nbackend = \"postgres\"\n",
            Some("store.backend"),
            2,
        );
        assert!(e.message.contains("needs `store.url`"), "{e}");
        assert_err(
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://h/db\"\nschema = \"Bad-Name\"\n",
            Some("store.schema"),
            4,
        );
        let c = Config::from_toml_str(
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1/test\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.store.backend, StoreBackend::Postgres);
        assert_err("[store]\nbackend = \"mysql\"\n", Some("store.backend"), 2);
        assert_err("[log]\nformat = \"xml\"\n", Some("log.format"), 2);
        let c = Config::from_toml_str("[log]\nformat = \"json\"\n", "t").unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn smtp_and_dns_sections() {
        let c = Config::from_toml_str(
            "[dns]\nnameservers = [\"127.0.0.1:53\", \"[::1]:5353\"]\ntimeout_secs = 2\n\
             [smtp]\ndmarc_reject = \"quarantine\"\ndmarc_quarantine = \"accept\"\nmax_unknown_recipients = 3\n\
             max_junk_commands = 7\nmax_session_secs = 60\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.dns.nameservers.len(), 2);
        assert_eq!(c.dns.timeout_secs, 2);
        assert_eq!(c.smtp.dmarc_reject, DmarcReject::Quarantine);
        assert_eq!(c.smtp.dmarc_quarantine, DmarcQuarantine::Accept);
        assert_eq!(c.smtp.max_unknown_recipients, 3);
        assert_eq!(c.smtp.max_junk_commands, 7);
        assert_eq!(c.smtp.max_session_secs, 60);
        assert_err(
            "[smtp]\nmax_junk_commands = 0\n",
            Some("smtp.max_junk_commands"),
            2,
        );
        assert_err(
            "[smtp]\nmax_session_secs = 0\n",
            Some("smtp.max_session_secs"),
            2,
        );
        assert_err(
            "[smtp]\ndmarc_reject = \"bounce\"\n",
            Some("smtp.dmarc_reject"),
            2,
        );
        assert_err(
            "[smtp]\ndmarc_quarantine = \"reject\"\n",
            Some("smtp.dmarc_quarantine"),
            2,
        );
        assert_err(
            "[dns]\nnameservers = [\"dns.example:53\"]\n",
            Some("dns.nameservers[0]"),
            2,
        );
        assert_err("[dns]\ntimeout_secs = 0\n", Some("dns.timeout_secs"), 2);
    }

    #[test]
    fn hostname_must_be_a_domain() {
        assert_err(
            "hostname = \"mx.example.org\\r\\n250 OK\"\n",
            Some("hostname"),
            1,
        );
        assert_err("\nhostname = \"\"\n", Some("hostname"), 2);
        assert_err("hostname = \"-bad.example\"\n", Some("hostname"), 1);
        Config::from_toml_str("hostname = \"mx1.example.org\"\n", "t").unwrap();
    }

    #[test]
    fn display_format() {
        let e = err("[limits]\nmax_connections = 1\n\n\n\n\nmessage_size = \"big\"\n");
        assert_eq!(
            e.to_string(),
            "postern.toml:7:16: key `limits.message_size`: invalid type: string \"big\", expected u64"
        );
        let e = ConfigError {
            origin: "f".into(),
            key: None,
            line: Some(3),
            column: None,
            message: "m".into(),
        };
        assert_eq!(e.to_string(), "f:3: m");
        let e = ConfigError {
            origin: "f".into(),
            key: Some("k".into()),
            line: None,
            column: None,
            message: "m".into(),
        };
        assert_eq!(e.to_string(), "f: key `k`: m");
    }

    #[test]
    fn load_reports_io_errors_and_the_path() {
        let e = Config::load(Path::new("/nonexistent/postern.toml")).unwrap_err();
        assert_eq!(e.origin, "/nonexistent/postern.toml");
        assert!(
            e.to_string()
                .starts_with("/nonexistent/postern.toml: cannot read the file: "),
            "{e}"
        );
        assert_eq!((e.key, e.line), (None, None));
    }

    #[test]
    fn key_spans_find() {
        let src = "a = 1\n[b]\nc = [\n 1,\n [2, 3],\n]\nd.e = { f = \"x\" }\n";
        let k = KeySpans::parse(src).unwrap();
        let line = |p: &str| {
            k.find(p)
                .and_then(|s| line_column(src, s.start))
                .map(|(l, _)| l)
        };
        assert_eq!(line("a"), Some(1));
        assert_eq!(line("b.c"), Some(3));
        assert_eq!(line("b.c[0]"), Some(4));
        assert_eq!(line("b.c[1][1]"), Some(5));
        assert_eq!(line("b.d.e.f"), Some(7));
        assert_eq!(line("b.x"), None);
        assert_eq!(line("b.c[2]"), None);
    }
}
