//! `postern serve`: data directory, TLS, listeners, privilege drop, store, shutdown.
//!
//! Order matters: bind (may need root) → drop privileges → open the store as the
//! unprivileged user, so every file the server creates belongs to that user.

use crate::config::{Config, LogFormat, StoreBackend};
use postern_core::store::FsBlobStore;
use postern_core::store::sqlite::{SqliteBlobStore, SqliteOptions, SqliteStore};
use postern_core::{Core, CoreSettings};
use postern_net::{Handler, ListenerKind, ListenerSpec, Server};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The default service user; when it does not exist Postern runs as `nobody` and says so.
const DEFAULT_RUN_AS: &str = "postern";

fn core_settings(cfg: &Config) -> CoreSettings {
    let a = &cfg.auth;
    let l = &cfg.limits;
    CoreSettings {
        plus_separator: '+',
        argon2: postern_core::Argon2Settings {
            memory_kib: a.argon2_memory_kib,
            iterations: a.argon2_iterations,
            parallelism: a.argon2_parallelism,
        },
        limiter: postern_core::limiter::LimiterSettings {
            free_per_account: a.free_attempts_per_account,
            free_per_ip: a.free_attempts_per_ip,
            free_per_password: a.free_attempts_per_password,
            max_delay: Duration::from_secs(a.max_delay_secs),
            window: Duration::from_secs(a.window_secs),
        },
        mime: postern_core::message::MimeLimits {
            nesting_depth: l.mime_nesting_depth,
            parts: l.mime_parts,
            header_count: l.mime_header_count,
        },
        auth_cache_ttl: Duration::from_secs(a.auth_cache_ttl_secs),
        queue_lifetime: Duration::from_secs(cfg.outbound.max_queue_lifetime_secs),
    }
}

/// Creates the data directory (mode 0700) when missing, and takes group and other
/// permissions off one that exists; true when it was created now.
pub fn ensure_data_dir(dir: &Path) -> Result<bool, String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if dir.is_dir() {
        if let Ok(meta) = std::fs::metadata(dir) {
            let mode = meta.mode() & 0o777;
            let ours = meta.uid() == nix::unistd::Uid::effective().as_raw();
            if mode & 0o077 != 0 && ours {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(|e| format!("cannot restrict {} to its owner: {e}", dir.display()))?;
                tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "data directory was open to others; now 0700");
            }
        }
        return Ok(false);
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot set permissions on {}: {e}", dir.display()))?;
    Ok(true)
}

/// Opens the configured store: the embedded one under the data directory, or
/// PostgreSQL (`[store] backend = "postgres"`), whose blobs then live in the database too
/// so that every node sees them.
pub async fn open_core(cfg: &Config) -> Result<Core, String> {
    ensure_data_dir(&cfg.data_dir)?;
    let (store, blobs): (
        Arc<dyn postern_core::store::Store>,
        Arc<dyn postern_core::store::BlobStore>,
    ) = match cfg.store.backend {
        StoreBackend::Embedded => {
            let opts = SqliteOptions {
                group_commit_max: cfg.store.group_commit_max,
                reader_connections: cfg.store.reader_connections,
            };
            let store = Arc::new(
                SqliteStore::open(&cfg.data_dir.join("meta.sqlite"), opts)
                    .map_err(|e| e.to_string())?,
            );
            let files =
                FsBlobStore::open(&cfg.data_dir.join("blobs")).map_err(|e| e.to_string())?;
            // Small blobs commit with the records that refer to them (one fsync for
            // both); bigger ones, and those written before, are files.
            let blobs = SqliteBlobStore::new(store.clone(), files, cfg.store.inline_blob_max);
            (store, Arc::new(blobs))
        }
        StoreBackend::Postgres => {
            let url = cfg
                .store
                .url
                .as_deref()
                .ok_or("store.url is required with backend = \"postgres\"")?;
            let opts = postern_store_pg::PgOptions {
                pool_size: cfg.store.pool_size,
                blobs_in_database: true,
                ..Default::default()
            };
            let store = postern_store_pg::PgStore::connect(url, &cfg.store.schema, opts)
                .await
                .map_err(|e| format!("PostgreSQL store: {e}"))?;
            let blobs = store.blob_store();
            (Arc::new(store), Arc::new(blobs))
        }
    };
    let core = Core::new(store, blobs, core_settings(cfg)).map_err(|e| e.to_string())?;
    // Mail the server sends for accounts (iMIP invitations) is DKIM-signed as submitted
    // mail is.
    core.set_mail_signer(Arc::new(DkimMailSigner));
    Ok(core)
}

/// Signs with the keys of the From domain (`postern_smtp::dkim_sign`).
struct DkimMailSigner;

impl postern_core::dav::imip::MailSigner for DkimMailSigner {
    fn sign<'a>(
        &'a self,
        core: &'a Core,
        raw: &'a [u8],
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<String>, String>> + Send + 'a>,
    > {
        Box::pin(postern_smtp::dkim_sign(core, raw))
    }
}

/// After a change of user: the data directory must still be reachable. A service user
/// cannot traverse a 0700 parent (`sudo postern serve` inside /root or a home
/// directory); say so plainly instead of failing later on a file.
pub fn check_reachable(dir: &Path, user: &str) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "the service user {user} cannot reach the data directory {} ({e}): a directory above it \
             is not searchable by that user. Put the data directory where {user} can reach it \
             (e.g. --data /var/lib/postern) or make its parents searchable (chmod o+x)",
            dir.display()
        )),
    }
}

/// Run as root next to a server that dropped privileges, the CLI becomes the data
/// directory's owner, so files it creates (blobs, WAL) stay the server's.
pub fn become_data_owner(dir: &Path) -> Result<(), String> {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    use std::os::unix::fs::MetadataExt;
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let Ok(meta) = std::fs::metadata(dir) else {
        return Ok(());
    };
    if meta.uid() == 0 {
        return Ok(());
    }
    let (uid, gid) = (Uid::from_raw(meta.uid()), Gid::from_raw(meta.gid()));
    setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
    setgid(gid).map_err(|e| format!("setgid: {e}"))?;
    setuid(uid).map_err(|e| format!("setuid: {e}"))?;
    check_reachable(dir, &format!("uid {uid}"))
}

/// Reads the admin token, creating one (mode 0600) on first use. Returns it and whether
/// it was created now.
pub fn admin_token(dir: &Path) -> Result<(String, bool), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(ADMIN_TOKEN_FILE);
    let created = if path.exists() {
        false
    } else {
        let token = postern_core::auth::generate_secret(40);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        writeln!(f, "{token}").map_err(|e| e.to_string())?;
        true
    };
    let token = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = token.trim().to_string();
    if token.len() < 20 {
        return Err(format!(
            "{} holds a token shorter than 20 characters",
            path.display()
        ));
    }
    Ok((token, created))
}

/// Where the embedded installation keeps its SRS key (hex, 0600).
pub const SRS_KEY_FILE: &str = "srs.key";

/// Gives `core` the key of the SRS addresses it writes when forwarding to other
/// domains and checks when their bounces come back (`postern_core::srs`): on PostgreSQL
/// derived from the nodes' shared secret, so every node checks what any node wrote; on
/// the embedded store a random key kept in the data directory, made on first start.
async fn install_srs_key(core: &Core, cfg: &Config) -> Result<(), String> {
    if let Some(shared) = core.shared_counters() {
        let secret = shared
            .secret()
            .await
            .map_err(|e| format!("the nodes' shared secret (SRS key): {e}"))?;
        core.set_srs_key(postern_core::srs::derive_key(&secret));
        return Ok(());
    }
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = cfg.data_dir.join(SRS_KEY_FILE);
    if !path.exists() {
        // Whole or not at all: written beside, synced, renamed, the directory synced, so
        // a crash never leaves a partial key (which would stop the next start) and a
        // power loss never brings back "no key" after bounces went out under this one.
        let key: [u8; 32] = rand::random();
        let tmp = cfg.data_dir.join(format!("{SRS_KEY_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        writeln!(f, "{}", hex::encode(key)).map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
        drop(f);
        std::fs::rename(&tmp, &path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        std::fs::File::open(&cfg.data_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", cfg.data_dir.display()))?;
    }
    if let Ok(meta) = std::fs::metadata(&path)
        && meta.permissions().mode() & 0o077 != 0
    {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {} to its owner: {e}", path.display()))?;
        tracing::warn!(file = %path.display(), "SRS key was readable by others; now 0600");
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let key: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| format!("{} does not hold a 32-byte hex key", path.display()))?;
    core.set_srs_key(key);
    Ok(())
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The IMAP limits from the configuration (`[limits]` imap_*, `[auth]`).
pub fn imap_settings(cfg: &Config) -> postern_imap::ImapSettings {
    let l = &cfg.limits;
    postern_imap::ImapSettings {
        limits: postern_imap_proto::Limits {
            line_length: l.imap_line_length,
            literal_size: l.imap_literal_size,
            nesting_depth: l.imap_nesting_depth,
            ..Default::default()
        },
        idle_timeout: Duration::from_secs(l.imap_idle_timeout_secs),
        login_timeout: Duration::from_secs(l.imap_login_timeout_secs),
        max_bad_commands: l.imap_errors_before_disconnect,
        max_command_size: l.imap_command_size,
        preauth_literal_size: l.imap_preauth_literal_size,
        tls_timeout: Duration::from_secs(l.tls_handshake_timeout_secs),
        allow_plaintext_auth_on_loopback: cfg.auth.allow_plaintext_on_loopback,
        ..Default::default()
    }
}

/// The SMTP limits and policy from the configuration (`[limits]`, `[auth]`, `[smtp]`).
/// The queue runner's settings from `[outbound]` and `[dns]`.
pub fn runner_settings(cfg: &Config) -> Result<postern_outbound::runner::RunnerSettings, String> {
    use postern_outbound::runner::{RunnerSettings, Smarthost};
    use postern_outbound::tls::TlsPolicy;
    let o = &cfg.outbound;
    let secs = Duration::from_secs;
    // Trust anchors for verified TLS (smarthost `verify`, MTA-STS `enforce`).
    let ca_path = o
        .ca_file
        .clone()
        .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
    let (roots, roots_note) = match std::fs::read(&ca_path) {
        Ok(pem) => {
            let (roots, _bad) = postern_outbound::tls::roots_from_pem(&pem);
            let note = roots
                .is_empty()
                .then(|| format!("{}: no certificate in it", ca_path.display()));
            (Arc::new(roots), note)
        }
        Err(e) if o.ca_file.is_some() => {
            return Err(format!("outbound.ca_file {}: {e}", ca_path.display()));
        }
        Err(e) => (
            Arc::new(postern_outbound::tls::roots_from_pem(b"").0),
            Some(format!("{}: {e}", ca_path.display())),
        ),
    };
    if let Some(note) = &roots_note {
        tracing::warn!(%note, "no trust anchors: MTA-STS enforce destinations will be deferred");
    }
    let dns = postern_outbound::dns::DnsClient::new(
        cfg.dns.nameservers.clone(),
        secs(cfg.dns.timeout_secs),
    )
    .trusting_remote_ad(cfg.dns.trust_ad);
    if dns.servers().is_empty() {
        tracing::warn!(
            "no DNS resolver (empty [dns] nameservers and /etc/resolv.conf): outbound mail waits"
        );
    }
    let mta_sts = o.mta_sts.then(|| {
        Arc::new(
            postern_outbound::mtasts::MtaSts::new(
                dns.clone(),
                roots.clone(),
                o.mta_sts_port,
                secs(o.connect_timeout_secs.max(10)),
            )
            .allowing_private(o.allow_private_destinations),
        )
    });
    let smarthost = match &o.smarthost {
        None => None,
        Some(sh) => {
            let (host, port) = sh
                .rsplit_once(':')
                .and_then(|(h, p)| {
                    Some((h.trim_matches(|c| c == '[' || c == ']'), p.parse().ok()?))
                })
                .ok_or_else(|| format!("outbound.smarthost {sh:?} is not host:port"))?;
            let tls = match o.smarthost_tls {
                crate::config::SmarthostTls::Verify => {
                    if roots.is_empty() {
                        return Err(format!(
                            "outbound.smarthost_tls = \"verify\" needs trust anchors: {}",
                            roots_note.clone().unwrap_or_default()
                        ));
                    }
                    TlsPolicy::Pkix {
                        roots: roots.clone(),
                    }
                }
                crate::config::SmarthostTls::Required => TlsPolicy::Required,
                crate::config::SmarthostTls::Opportunistic => TlsPolicy::Opportunistic,
                crate::config::SmarthostTls::None => TlsPolicy::Plain,
            };
            Some(Smarthost {
                host: host.to_string(),
                port,
                tls,
            })
        }
    };
    let tlsrpt = o.tlsrpt.then(|| postern_outbound::tlsrpt::TlsRptSettings {
        period: secs(o.tlsrpt_period_secs),
        interval: secs(o.tlsrpt_interval_secs),
        organization: o
            .tlsrpt_organization
            .clone()
            .unwrap_or_else(|| cfg.hostname.clone()),
        contact: format!("postmaster@{}", cfg.hostname),
        https: postern_outbound::egress::HttpsClient::new(
            dns.clone(),
            roots.clone(),
            o.allow_private_destinations,
            secs(o.connect_timeout_secs.max(10) * 3),
        ),
        lease: secs(o.lease_secs),
    });
    Ok(RunnerSettings {
        tlsrpt,
        node: format!("{}-{:08x}", cfg.hostname, rand::random::<u32>()),
        hostname: cfg.hostname.clone(),
        port: o.port,
        smarthost,
        client: postern_outbound::client::ClientSettings {
            helo_name: cfg.hostname.clone(),
            connect_timeout: secs(o.connect_timeout_secs),
            command_timeout: secs(o.command_timeout_secs),
            data_timeout: secs(o.data_timeout_secs),
        },
        dns,
        dane: o.dane,
        allow_private: o.allow_private_destinations,
        mta_sts,
        roots,
        prefer_ipv6: o.prefer_ipv6,
        delay_notice: secs(o.delay_notice_secs),
        retry_base: secs(o.retry_base_secs),
        retry_max: secs(o.retry_max_secs),
        concurrency: o.concurrency,
        per_destination: Arc::new(postern_outbound::runner::DestinationLimits::new(
            o.connections_per_destination,
        )),
        lease: secs(o.lease_secs),
        poll: secs(o.poll_secs),
    })
}

pub fn smtp_settings(cfg: &Config) -> (postern_smtp::SmtpLimits, postern_smtp::SmtpPolicy) {
    use crate::config::{DmarcQuarantine, DmarcReject};
    use postern_smtp::{DmarcQuarantineAction, DmarcRejectAction};
    let l = &cfg.limits;
    let limits = postern_smtp::SmtpLimits {
        line_length: l.smtp_line_length,
        message_size: l.message_size,
        recipients_per_message: l.recipients_per_message,
        max_received: l.smtp_max_received,
        messages_per_connection: l.messages_per_connection,
        errors_before_disconnect: l.smtp_errors_before_disconnect,
        command_timeout: Duration::from_secs(l.smtp_command_timeout_secs),
        data_timeout: Duration::from_secs(l.smtp_data_timeout_secs),
        tls_handshake_timeout: Duration::from_secs(l.tls_handshake_timeout_secs),
        max_junk_commands: cfg.smtp.max_junk_commands,
        max_session: Duration::from_secs(cfg.smtp.max_session_secs),
        inflight_bytes: l.smtp_inflight_bytes,
    };
    let max_unknown = cfg.smtp.max_unknown_recipients;
    let policy = postern_smtp::SmtpPolicy {
        allow_plaintext_auth_on_loopback: cfg.auth.allow_plaintext_on_loopback,
        dmarc_reject: match cfg.smtp.dmarc_reject {
            DmarcReject::Reject => DmarcRejectAction::Reject,
            DmarcReject::Quarantine => DmarcRejectAction::Quarantine,
            DmarcReject::Accept => DmarcRejectAction::Accept,
        },
        dmarc_quarantine: match cfg.smtp.dmarc_quarantine {
            DmarcQuarantine::Junk => DmarcQuarantineAction::Junk,
            DmarcQuarantine::Accept => DmarcQuarantineAction::Accept,
        },
        max_unknown_recipients: max_unknown,
        probe_ip_threshold: max_unknown.saturating_mul(5),
        ..Default::default()
    };
    (limits, policy)
}

fn handler_for(
    kind: ListenerKind,
    core: &Arc<Core>,
    cfg: &Config,
    metrics: &crate::http::Metrics,
    smtp: &Arc<postern_smtp::SmtpHandler>,
    imap: &Arc<postern_imap::ImapHandler>,
) -> Arc<dyn Handler> {
    match kind {
        // One handler (and so one RCPT-probe map) for MX and submission; the session
        // tells them apart by listener kind.
        ListenerKind::Smtp | ListenerKind::Submission | ListenerKind::Submissions => smtp.clone(),
        ListenerKind::Imap | ListenerKind::Imaps => imap.clone(),
        ListenerKind::Admin => crate::http::admin_handler(core.clone(), cfg, metrics.clone()),
        ListenerKind::Http | ListenerKind::Https => crate::http::web_handler(core.clone(), cfg),
    }
}

pub fn run(cfg: Config) -> Result<ExitCode, String> {
    init_logging(&cfg);
    let created = ensure_data_dir(&cfg.data_dir)?;
    let tls = postern_net::tls::load_or_create(
        &cfg.data_dir,
        &cfg.hostname,
        cfg.tls.cert.as_deref(),
        cfg.tls.key.as_deref(),
    )
    .map_err(|e| format!("TLS: {e}"))?;
    if tls.created {
        println!(
            "created a self-signed certificate for {} at {}",
            cfg.hostname,
            tls.cert_path.display()
        );
    }
    let (token, token_created) = admin_token(&cfg.data_dir)?;
    if token_created {
        println!(
            "created the admin API token in {} (send it as `Authorization: Bearer <token>`)",
            cfg.data_dir.join(ADMIN_TOKEN_FILE).display()
        );
    }

    let limits = postern_net::Limits {
        max_connections: cfg.limits.max_connections,
        connections_per_ip: cfg.limits.connections_per_ip,
        tls_handshake_timeout: Duration::from_secs(cfg.limits.tls_handshake_timeout_secs),
        ..Default::default()
    };
    let specs: Vec<ListenerSpec> = cfg
        .listeners()
        .into_iter()
        .filter_map(|(name, addr)| {
            ListenerKind::from_name(name).map(|kind| ListenerSpec { kind, addr })
        })
        .collect();
    let report = postern_net::bind_all_with(&specs, &limits);
    for f in &report.failed {
        eprintln!("postern: could not bind {f}");
    }
    if report.bound.is_empty() {
        return Err(
            "no listener could be bound; see the errors above (ports below 1024 need root)".into(),
        );
    }
    let _ = postern_net::privilege::raise_nofile_limit();
    // Falling back to `nobody` is for the default name only: a service user the operator
    // named but mistyped must not silently become a uid other daemons share.
    if nix::unistd::Uid::effective().is_root()
        && cfg.server.run_as != DEFAULT_RUN_AS
        && !matches!(
            nix::unistd::User::from_name(&cfg.server.run_as),
            Ok(Some(_))
        )
    {
        return Err(format!(
            "server.run_as = {:?}: no such user (create it, or leave the default {DEFAULT_RUN_AS:?})",
            cfg.server.run_as
        ));
    }
    // Shown to the operator as they gave it; used absolute (checked after the drop).
    let shown_dir = cfg.data_dir.clone();
    let mut cfg = cfg;
    cfg.data_dir = std::fs::canonicalize(&cfg.data_dir).unwrap_or_else(|_| cfg.data_dir.clone());
    match postern_net::privilege::drop_privileges(&cfg.server.run_as, &[cfg.data_dir.as_path()])
        .map_err(|e| format!("dropping privileges: {e}"))?
    {
        postern_net::privilege::DropOutcome::Dropped { user, uid, gid } => {
            check_reachable(&cfg.data_dir, &user)?;
            println!("running as {user} (uid {uid}, gid {gid})");
        }
        postern_net::privilege::DropOutcome::NotRoot => {}
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let metrics = crate::http::Metrics::install();
        let core = Arc::new(open_core(&cfg).await?);
        core.set_admin_token(&token);
        install_srs_key(&core, &cfg).await?;
        let server = Server::new(limits, Some(tls.config.clone()));
        // Built once: the verifier's resolver and caches are shared by every session.
        let dns = postern_smtp::verify::DnsSettings {
            nameservers: cfg.dns.nameservers.clone(),
            timeout: Duration::from_secs(cfg.dns.timeout_secs),
        };
        let verifier = Arc::new(postern_smtp::verify::InboundVerifier::new(&dns).map_err(|e| format!("DNS resolver: {e}"))?);
        let (smtp_limits, smtp_policy) = smtp_settings(&cfg);
        let smtp = Arc::new(postern_smtp::SmtpHandler::new(core.clone(), &cfg.hostname, smtp_limits, smtp_policy, verifier));
        let imap = Arc::new(postern_imap::ImapHandler::new(core.clone(), imap_settings(&cfg)));
        let runner = if cfg.outbound.enabled {
            let settings = runner_settings(&cfg)?;
            let mut stop = server.shutdown_signal();
            Some(tokio::spawn(postern_outbound::runner::run(core.clone(), settings, async move {
                stop.triggered().await
            })))
        } else {
            None
        };
        for l in report.bound {
            let kind = l.spec.kind;
            let addr = l.local_addr;
            let handler = handler_for(kind, &core, &cfg, &metrics, &smtp, &imap);
            server.spawn(l, handler).map_err(|e| format!("{kind} on {addr}: {e}"))?;
            println!("listening {} {}", kind.name(), addr);
        }
        if created || !core.has_domains().await.unwrap_or(true) {
            let data = shown_dir.display();
            println!("next: add a domain and an account:");
            println!("  postern --data {data} domain add example.com");
            println!("  postern --data {data} account add you@example.com   (reads a password, or generates one)");
        }
        let signals = Signals::install();
        println!("ready");
        let _ = std::io::stdout().flush();
        tracing::info!(hostname = %cfg.hostname, data_dir = %shown_dir.display(), "postern started");

        signals.wait().await;
        tracing::info!("shutting down: draining sessions");
        let cut = server.shutdown(Duration::from_secs(cfg.server.shutdown_grace_secs)).await;
        if cut > 0 {
            tracing::warn!(cut, "sessions still open after the grace period were closed");
        }
        if let Some(r) = runner {
            // Deliveries in flight are cut; their leases expire and they are tried again.
            r.abort();
        }
        println!("stopped");
        Ok::<_, String>(ExitCode::SUCCESS)
    })
}

/// SIGTERM / SIGINT, installed before `ready` is printed so that a signal sent right
/// after it drains instead of killing the process.
struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => Signals(Some((t, i))),
            _ => Signals(None),
        }
    }

    async fn wait(self) {
        match self.0 {
            Some((mut term, mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            // Without handlers the server runs until killed.
            None => std::future::pending::<()>().await,
        }
    }
}
