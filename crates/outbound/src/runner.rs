//! The queue runner: claims due recipients from the store (leased, so several nodes can
//! run one each), sends each message to each destination domain, and settles the outcome
//! per recipient — delivered, failed (bounce), or deferred with exponential backoff and
//! jitter until the message's lifetime runs out (then it fails as expired). Delay notices
//! and bounces are DSNs (RFC 3464) to the envelope sender.
//!
//! Nothing is acknowledged by the runner: the only promise is the one the submission
//! made (the message is durable in the queue). A node killed mid-delivery leaves its
//! leases to expire; the recipients are then tried again, which may deliver a message
//! twice — SMTP's own at-least-once edge (RFC 5321 §6.1).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postern_core::Core;
use postern_core::outbound::QueueFact;
use postern_core::store::{
    QueueId, QueueUpdate, QueuedMessage, QueuedRecipient, RecipientState, now_ms,
};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::client::{self, ClientSettings, Outcome, Recipient, SessionFailure, Transaction};
use crate::dns::DnsClient;
use crate::dsn::{self, Action, DsnInput, DsnRecipient, Ret};
use crate::mtasts::{Mode, MtaSts};
use crate::route::{self, Dane, RouteError};
use crate::tls::TlsPolicy;

/// At most `limit` connections at once per destination (the recipient domain, or the
/// smarthost): a busy queue must not open dozens of sessions to one receiving server,
/// which would take them for an attack and throttle or block us.
#[derive(Debug)]
pub struct DestinationLimits {
    limit: usize,
    slots: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl DestinationLimits {
    pub fn new(limit: usize) -> DestinationLimits {
        DestinationLimits {
            limit: limit.max(1),
            slots: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Waits for a connection slot to `destination`; the slot is held until the permit
    /// is dropped.
    pub async fn acquire(&self, destination: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let sem = {
            let mut slots = self.slots.lock().ok()?;
            // Forget idle destinations now and then so the map stays small.
            if slots.len() > 10_000 {
                let limit = self.limit;
                slots.retain(|_, s| s.available_permits() < limit);
            }
            slots
                .entry(destination.to_ascii_lowercase())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.limit)))
                .clone()
        };
        sem.acquire_owned().await.ok()
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Time kept back from a lease for settling an attempt after its deliveries.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// Most recipients in one SMTP transaction (RFC 5321 §4.5.3.1.8 requires servers to take
/// at least 100).
pub const MAX_RCPTS_PER_TRANSACTION: usize = 100;

/// A relay all mail goes through instead of MX routing.
#[derive(Debug, Clone)]
pub struct Smarthost {
    pub host: String,
    pub port: u16,
    pub tls: TlsPolicy,
}

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// This node's name in leases and the ledger.
    pub node: String,
    /// Our host name: EHLO and the DSNs' Reporting-MTA.
    pub hostname: String,
    /// The port of MX hosts (25; tests use another).
    pub port: u16,
    pub smarthost: Option<Smarthost>,
    pub client: ClientSettings,
    pub dns: DnsClient,
    /// Use DANE where the destination publishes authentic TLSA records.
    pub dane: bool,
    /// Deliver to loopback, private, link-local and other non-public addresses (a mail
    /// host of another domain normally never has one; tests and internal relays do).
    pub allow_private: bool,
    /// MTA-STS policies (RFC 8461), when enabled.
    pub mta_sts: Option<Arc<MtaSts>>,
    /// Trust anchors for PKIX checks (MTA-STS `enforce`).
    pub roots: Arc<rustls::RootCertStore>,
    pub prefer_ipv6: bool,
    /// When a still-queued recipient gets a delay notice; zero: never.
    pub delay_notice: Duration,
    /// First retry after this, doubling each attempt up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Messages being delivered at once by this node.
    pub concurrency: usize,
    /// Connections this node holds at once to one destination domain (or smarthost).
    pub per_destination: Arc<DestinationLimits>,
    /// How long a claim holds a recipient; longer than any one delivery can take.
    pub lease: Duration,
    /// How often the queue is looked at when nothing wakes the runner (other nodes'
    /// submissions, retries coming due).
    pub poll: Duration,
    /// SMTP TLS reporting (RFC 8460), when enabled: outcomes are counted and reports
    /// sent by a task the runner starts.
    pub tlsrpt: Option<crate::tlsrpt::TlsRptSettings>,
}

/// When the next attempt comes after `attempts` failed ones: `base · 2^(attempts-1)`,
/// capped at `max`, with ±20 % jitter so that deferred mail does not retry in lockstep.
pub fn backoff(attempts: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    let plain = base.saturating_mul(1u32 << exp).min(max);
    let jitter = rand::random::<f64>() * 0.4 + 0.8;
    plain.mul_f64(jitter)
}

/// NOTIFY (RFC 3461 §4.1): absent means FAILURE (and DELAY at our discretion: we send it).
fn notify_allows(notify: Option<&str>, what: &str) -> bool {
    match notify {
        None => what != "SUCCESS",
        Some(n) => n.split(',').any(|v| v.trim().eq_ignore_ascii_case(what)),
    }
}

/// Runs until `shutdown` resolves. Errors of one round are logged and the next round
/// starts after `poll`.
pub async fn run(
    core: Arc<Core>,
    settings: RunnerSettings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    if let Some(m) = &settings.mta_sts {
        m.use_store(core.clone());
    }
    // The reporter lives as long as the runner (dropped with it, also when aborted).
    let _reporter = settings.tlsrpt.clone().map(|t| {
        AbortOnDrop(tokio::spawn(crate::tlsrpt::run(
            core.clone(),
            settings.node.clone(),
            settings.hostname.clone(),
            settings.dns.clone(),
            t,
        )))
    });
    let settings = Arc::new(settings);
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
    tokio::pin!(shutdown);
    info!(node = %settings.node, "outbound queue runner started");
    loop {
        publish_metrics(&core).await;
        let free = slots.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            let lease = i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX);
            let limit = u32::try_from(free).unwrap_or(u32::MAX);
            match core.queue_claim(&settings.node, lease, limit).await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "claiming from the queue failed");
                    Vec::new()
                }
            }
        };
        if free == 0 {
            // Every slot busy: wait for one to come free (or a stop), nothing else.
            tokio::select! {
                _ = &mut shutdown => break,
                _ = slots.clone().acquire_owned() => {}
            }
            continue;
        }
        if claimed.is_empty() {
            let wait = match core.queue_stats().await {
                Ok(s) => s
                    .next_due_ms
                    .map(|due| Duration::from_millis(due.saturating_sub(now_ms()).max(0) as u64))
                    .unwrap_or(settings.poll)
                    .min(settings.poll),
                Err(_) => settings.poll,
            }
            .max(Duration::from_millis(50));
            tokio::select! {
                _ = &mut shutdown => break,
                _ = core.queue_wakeup() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        let mut by_message: BTreeMap<QueueId, Vec<u32>> = BTreeMap::new();
        for (id, idx) in claimed {
            by_message.entry(id).or_default().push(idx);
        }
        for (id, idxs) in by_message {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let core = core.clone();
            let settings = settings.clone();
            tokio::spawn(async move {
                // Bounded by the lease (less a margin for the settlement): past it another
                // claim may take these recipients, so this attempt must have given up.
                let margin = (settings.lease / 4).min(LEASE_MARGIN);
                let budget = settings.lease.saturating_sub(margin);
                match tokio::time::timeout(budget, process(&core, &settings, id, &idxs)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        warn!(queue = %id, error = %e, "queue attempt failed; the lease will expire and it is tried again");
                    }
                    Err(_) => {
                        warn!(queue = %id, "queue attempt ran out of its lease; it is tried again");
                    }
                }
                drop(permit);
            });
        }
    }
    info!("outbound queue runner stopped");
}

async fn publish_metrics(core: &Core) {
    if let Ok(s) = core.queue_stats().await {
        metrics::gauge!("postern_queue_messages").set(s.messages as f64);
        metrics::gauge!("postern_queue_recipients").set(s.queued_recipients as f64);
        let age = s
            .oldest_created_ms
            .map(|t| (now_ms() - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        metrics::gauge!("postern_queue_oldest_age_seconds").set(age);
    }
}

/// What one recipient's attempt came to, before it is settled.
struct Attempted<'a> {
    r: &'a QueuedRecipient,
    update: QueueUpdate,
    fact: QueueFact,
    /// A DSN this outcome asks for: (action, status, reason, remote host).
    notice: Option<(Action, String, String, Option<String>)>,
}

/// One attempt at the claimed recipients of one message.
async fn process(
    core: &Core,
    settings: &RunnerSettings,
    id: QueueId,
    idxs: &[u32],
) -> Result<(), String> {
    let Some(q) = core.queued(id).await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let mine: Vec<&QueuedRecipient> = q
        .recipients
        .iter()
        .filter(|r| idxs.contains(&r.idx) && r.state == RecipientState::Queued)
        .collect();
    let mut results: Vec<(&QueuedRecipient, Outcome, Option<String>, bool)> = Vec::new();
    let raw = match core.queued_blob(&q.message).await {
        Ok(raw) => raw,
        // The content is gone (or damaged): no attempt can ever send it. Each recipient
        // fails now, with a notice to the sender, instead of retrying for days.
        Err(e @ postern_core::CoreError::NotFound(_)) => {
            warn!(queue = %id, error = %e, "queued message content unreadable");
            for r in &mine {
                let o = Outcome::Permanent {
                    status: "5.3.0".into(),
                    reason: format!("the queued message could not be read: {e}"),
                };
                results.push((r, o, None, false));
            }
            Vec::new()
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut tls_outcomes: Vec<(String, Vec<crate::tlsrpt::Outcome>)> = Vec::new();
    if results.is_empty() {
        let mut by_domain: BTreeMap<&str, Vec<&QueuedRecipient>> = BTreeMap::new();
        for r in &mine {
            by_domain.entry(r.domain.as_str()).or_default().push(r);
        }
        for (domain, rcpts) in by_domain {
            for chunk in rcpts.chunks(MAX_RCPTS_PER_TRANSACTION) {
                let mut tls = Vec::new();
                let (outcomes, next_hop_dsn) =
                    attempt_domain(settings, &q.message, &raw, domain, chunk, &mut tls).await;
                tls_outcomes.push((domain.to_string(), tls));
                for (r, (o, host)) in chunk.iter().zip(outcomes) {
                    results.push((r, o, host, next_hop_dsn));
                }
            }
        }
    }

    // RFC 8460: the TLS outcomes, counted per policy domain and period; never those
    // of delivering TLS reports themselves (§3).
    if let Some(t) = &settings.tlsrpt {
        if !crate::tlsrpt::is_report(&q.message.sender, &raw) {
            let period = crate::tlsrpt::stamp(crate::tlsrpt::period_start(now_ms(), t.period));
            let counts: Vec<_> = tls_outcomes
                .into_iter()
                .flat_map(|(domain, o)| {
                    let ascii = idna::domain_to_ascii(&domain).unwrap_or(domain);
                    crate::tlsrpt::counts(&ascii, &period, o)
                })
                .collect();
            if let Err(e) = core.tlsrpt_add(counts).await {
                warn!(queue = %id, error = %e, "recording TLS outcomes failed");
            }
        }
    }

    let now = now_ms();
    let expires = q.message.expires_ms;
    let expired = now >= expires;
    let delay_after = i64::try_from(settings.delay_notice.as_millis()).unwrap_or(i64::MAX);
    let mut attempted = Vec::with_capacity(results.len());
    for (r, outcome, host, next_hop_dsn) in results {
        let attempts = r.attempts.saturating_add(1);
        let mut u = QueueUpdate {
            message: id,
            idx: r.idx,
            state: RecipientState::Queued,
            attempts,
            next_attempt_ms: now,
            last_status: None,
            last_error: None,
            remote_host: host.clone(),
            delay_notified: r.delay_notified,
        };
        let (fact, notice) = match outcome {
            Outcome::Delivered(reply) => {
                u.state = RecipientState::Delivered;
                u.last_status = Some(reply.status_code());
                u.last_error = Some(reply.to_string());
                let fact = QueueFact {
                    action: "queue.deliver",
                    target: Some(r.address.clone()),
                    after: json!({"recipient": r.address, "host": host, "reply": reply.to_string(), "attempts": attempts}),
                };
                // RFC 3461 §6.2.2: a next hop without DSN cannot report success, so we
                // say the message was relayed; one with DSN got NOTIFY and reports.
                let notice =
                    (!next_hop_dsn && notify_allows(r.notify.as_deref(), "SUCCESS")).then(|| {
                        (
                            Action::Relayed,
                            "2.0.0".to_string(),
                            reply.to_string(),
                            host.clone(),
                        )
                    });
                (fact, notice)
            }
            Outcome::Permanent { status, reason } => {
                u.state = RecipientState::Failed;
                u.last_status = Some(status.clone());
                u.last_error = Some(reason.clone());
                let fact = QueueFact {
                    action: "queue.fail",
                    target: Some(r.address.clone()),
                    after: json!({"recipient": r.address, "host": host, "status": status, "reason": reason, "attempts": attempts}),
                };
                let notice = notify_allows(r.notify.as_deref(), "FAILURE")
                    .then(|| (Action::Failed, status, reason, host.clone()));
                (fact, notice)
            }
            Outcome::Temporary { status, reason } if expired => {
                u.state = RecipientState::Failed;
                u.last_status = Some("4.4.7".into());
                u.last_error = Some(format!("expired in the queue; last: {reason}"));
                let fact = QueueFact {
                    action: "queue.expire",
                    target: Some(r.address.clone()),
                    after: json!({"recipient": r.address, "host": host, "status": status, "reason": reason, "attempts": attempts}),
                };
                // RFC 3463 4.4.7: delivery time expired; reported as failed.
                let notice = notify_allows(r.notify.as_deref(), "FAILURE")
                    .then(|| (Action::Failed, "4.4.7".to_string(), reason, host.clone()));
                (fact, notice)
            }
            Outcome::Temporary { status, reason } => {
                let wait = backoff(attempts, settings.retry_base, settings.retry_max);
                let next = now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                // Never past the expiry: the last attempt happens at the end of the lifetime.
                u.next_attempt_ms = next.min(expires);
                u.last_status = Some(status.clone());
                u.last_error = Some(reason.clone());
                let fact = QueueFact {
                    action: "queue.defer",
                    target: Some(r.address.clone()),
                    after: json!({"recipient": r.address, "host": host, "status": status, "reason": reason, "attempts": attempts, "next_attempt_ms": u.next_attempt_ms}),
                };
                let late = !settings.delay_notice.is_zero()
                    && now >= q.message.created_ms.saturating_add(delay_after);
                let notice = if late && !r.delay_notified {
                    // Sent at most once, whether NOTIFY asks for it or not.
                    u.delay_notified = true;
                    notify_allows(r.notify.as_deref(), "DELAY")
                        .then(|| (Action::Delayed, status, reason, host.clone()))
                } else {
                    None
                };
                (fact, notice)
            }
        };
        attempted.push(Attempted {
            r,
            update: u,
            fact,
            notice,
        });
    }
    let changed = core
        .queue_settle(
            &settings.node,
            id,
            attempted
                .iter()
                .map(|a| (a.update.clone(), a.fact.clone()))
                .collect(),
        )
        .await
        .map_err(|e| e.to_string())?;
    for a in attempted.iter().filter(|a| changed.contains(&a.r.idx)) {
        let name = match a.update.state {
            RecipientState::Delivered => "postern_queue_delivered_total",
            RecipientState::Failed if a.fact.action == "queue.expire" => {
                "postern_queue_expired_total"
            }
            RecipientState::Failed => "postern_queue_failed_total",
            RecipientState::Queued => "postern_queue_deferred_total",
        };
        metrics::counter!(name).increment(1);
    }
    debug!(queue = %id, changed = changed.len(), "queue attempt settled");

    // DSNs after the settlement is durable, and only for what it changed: a crash in
    // between loses a notice, never sends one for an outcome that was not recorded.
    if q.message.sender.is_empty() {
        return Ok(());
    }
    for kind in [Action::Failed, Action::Delayed, Action::Relayed] {
        let recipients: Vec<DsnRecipient> = attempted
            .iter()
            .filter(|a| changed.contains(&a.r.idx))
            .filter_map(|a| a.notice.as_ref().map(|n| (a.r, n)))
            .filter(|(_, n)| n.0 == kind)
            .map(|(r, (action, status, reason, host))| DsnRecipient {
                final_recipient: r.address.clone(),
                original_recipient: r.orcpt.clone(),
                action: *action,
                status: status.clone(),
                remote_mta: host.clone(),
                diagnostic: Some(reason.clone()),
                last_attempt: time_of(now),
                will_retry_until: (*action == Action::Delayed)
                    .then(|| time_of(expires))
                    .flatten(),
            })
            .collect();
        if recipients.is_empty() {
            continue;
        }
        // The whole message goes back only with a failure the sender asked it for
        // (RET=FULL, the default), and never for REQUIRETLS mail, whose content must
        // not travel where TLS is not assured.
        let full = kind == Action::Failed
            && q.message.ret.as_deref() != Some("HDRS")
            && !q.message.requiretls;
        let report = dsn::build(&DsnInput {
            reporting_mta: &settings.hostname,
            return_to: &q.message.sender,
            envid: q.message.envid.as_deref(),
            arrival: time_of(q.message.created_ms).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            now: time_of(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            recipients: &recipients,
            original: &raw,
            ret: if full { Ret::Full } else { Ret::Headers },
        });
        if let Err(e) = core
            .return_to_sender(
                &settings.node,
                &q.message.sender,
                report,
                &format!("queue:{id}"),
            )
            .await
        {
            warn!(queue = %id, error = %e, "could not send the delivery status notification");
        }
    }
    Ok(())
}

/// An address a mail host on the internet may have: not loopback, private, link-local,
/// shared (CGNAT), documentation, multicast or unspecified.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                // IETF protocol assignments (192.0.0.0/24: Oracle Cloud's metadata is
                // 192.0.0.192) and benchmarking (198.18.0.0/15).
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        std::net::IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(std::net::IpAddr::V4(v4));
            }
            let seg = v6.segments();
            let o = v6.octets();
            let embedded =
                |at: usize| std::net::Ipv4Addr::new(o[at], o[at + 1], o[at + 2], o[at + 3]);
            // Forms that carry an IPv4 address: NAT64 (64:ff9b::/96, 64:ff9b:1::/48),
            // IPv4-compatible (::/96), 6to4 (2002::/16): the IPv4 address decides.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                return is_public(std::net::IpAddr::V4(embedded(12)));
            }
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1 {
                return false;
            }
            if seg[..6] == [0, 0, 0, 0, 0, 0] {
                return is_public(std::net::IpAddr::V4(embedded(12)));
            }
            if seg[0] == 0x2002 {
                return is_public(std::net::IpAddr::V4(embedded(2)));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                // Site-local (deprecated, still routed inside some networks) and the
                // discard prefix 100::/64.
                || (seg[0] & 0xffc0) == 0xfec0
                || (seg[0] == 0x100 && seg[1..4] == [0, 0, 0])
                || (seg[0] == 0x2001 && seg[1] == 0x0db8))
        }
    }
}

fn time_of(ms: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

fn all(n: usize, outcome: Outcome, host: Option<String>) -> Vec<(Outcome, Option<String>)> {
    vec![(outcome, host); n]
}

fn from_failure(f: &SessionFailure) -> Outcome {
    if f.permanent {
        Outcome::Permanent {
            status: f.status.clone(),
            reason: f.reason.clone(),
        }
    } else {
        Outcome::Temporary {
            status: f.status.clone(),
            reason: f.reason.clone(),
        }
    }
}

fn from_route(e: &RouteError) -> Outcome {
    if e.permanent() {
        Outcome::Permanent {
            status: e.status().into(),
            reason: e.to_string(),
        }
    } else {
        Outcome::Temporary {
            status: e.status().into(),
            reason: e.to_string(),
        }
    }
}

/// Sends to one destination domain: each MX host in order, each of its addresses, until
/// one holds a transaction. One outcome per recipient, with the host that gave it.
async fn attempt_domain(
    settings: &RunnerSettings,
    message: &QueuedMessage,
    raw: &[u8],
    domain: &str,
    rcpts: &[&QueuedRecipient],
    tls: &mut Vec<crate::tlsrpt::Outcome>,
) -> (Vec<(Outcome, Option<String>)>, bool) {
    use crate::tlsrpt::Applied;
    let recipients: Vec<Recipient> = rcpts
        .iter()
        .map(|r| Recipient {
            address: r.address.clone(),
            notify: r.notify.clone(),
            orcpt: r.orcpt.clone(),
        })
        .collect();
    let tx = Transaction {
        mail_from: &message.sender,
        recipients: &recipients,
        message: raw,
        eight_bit: message.eight_bit,
        smtputf8: message.smtputf8,
        requiretls: message.requiretls,
        ret: message.ret.as_deref(),
        envid: message.envid.as_deref(),
    };
    let n = rcpts.len();

    // (host name, addresses, port, policy, the policy as TLS reports name it)
    let mut targets: Vec<(
        String,
        Vec<std::net::IpAddr>,
        u16,
        Result<TlsPolicy, RouteError>,
        Option<Applied>,
    )> = Vec::new();
    if let Some(sh) = &settings.smarthost {
        match route::addresses(&settings.dns, &sh.host, settings.prefer_ipv6).await {
            Ok(addrs) => targets.push((sh.host.clone(), addrs, sh.port, Ok(sh.tls.clone()), None)),
            Err(_) if sh.host.parse::<std::net::IpAddr>().is_ok() => {
                let ip = sh.host.parse().map(|ip| vec![ip]).unwrap_or_default();
                targets.push((sh.host.clone(), ip, sh.port, Ok(sh.tls.clone()), None));
            }
            Err(e) => return (all(n, from_route(&e), Some(sh.host.clone())), false),
        }
    } else {
        // RFC 5890: a U-label domain is looked up as its A-labels.
        let ascii = match idna::domain_to_ascii(domain) {
            Ok(a) if !a.is_empty() => a,
            _ => {
                let bad = Outcome::Permanent {
                    status: "5.1.2".into(),
                    reason: format!("{domain} is not a valid domain name"),
                };
                return (all(n, bad, None), false);
            }
        };
        let domain = ascii.as_str();
        let dest = match route::destination(&settings.dns, domain, settings.prefer_ipv6).await {
            Ok(d) => d,
            Err(e) => return (all(n, from_route(&e), None), false),
        };
        // RFC 8461 §4.2 / §5: under an `enforce` policy only the MX hosts it names are
        // used, and each only over TLS valid for its name.
        let lookup = match &settings.mta_sts {
            Some(m) => m.lookup(domain).await,
            None => Default::default(),
        };
        let any_sts = lookup.policy.clone();
        // RFC 8460 §4.3.2.2: a policy announced but not had is a failure of its own.
        if let Some((kind, _)) = &lookup.failure {
            tls.push(crate::tlsrpt::Outcome {
                applied: match &any_sts {
                    Some(p) => Applied {
                        policy_type: "sts",
                        strings: p.strings(),
                    },
                    None => Applied::none(),
                },
                mx: String::new(),
                result: kind,
                ip: String::new(),
            });
        }
        // RFC 8460 §3: a TLS report is delivered whatever TLS failures stand in the way
        // (they may be what it reports): no MTA-STS or DANE requirement, opportunistic
        // TLS with the plaintext fallback.
        let tls_report = crate::tlsrpt::is_report(&message.sender, raw);
        let sts = any_sts
            .clone()
            .filter(|p| p.mode == Mode::Enforce && !tls_report);
        // RFC 8461 §5 `testing`: check as `enforce` would, report what fails (RFC 8460),
        // deliver as without a policy.
        let testing = any_sts.clone().filter(|p| p.mode == Mode::Testing);
        for host in dest.hosts {
            let mut count_session = true;
            if let Some(p) = &testing
                && !p.mx_matches(&host.name)
            {
                tls.push(crate::tlsrpt::Outcome {
                    applied: Applied {
                        policy_type: "sts",
                        strings: p.strings(),
                    },
                    mx: host.name.clone(),
                    result: "validation-failure",
                    ip: String::new(),
                });
                // Reported once, here; the session itself is not counted again.
                count_session = false;
            }
            if let Some(p) = &sts {
                if !p.mx_matches(&host.name) {
                    debug!(%domain, host = %host.name, "MX host not in the MTA-STS policy: skipped");
                    tls.push(crate::tlsrpt::Outcome {
                        applied: Applied {
                            policy_type: "sts",
                            strings: p.strings(),
                        },
                        mx: host.name.clone(),
                        result: "validation-failure",
                        ip: String::new(),
                    });
                    continue;
                }
            }
            // RFC 8689 §4.2.1: REQUIRETLS mail needs a next hop whose name is assured
            // (DNSSEC-signed MX or an MTA-STS policy naming it, in any mode), checked
            // with PKIX when there is no DANE.
            let assured_name =
                dest.mx_authentic || any_sts.as_ref().is_some_and(|p| p.mx_matches(&host.name));
            let pkix = sts.is_some() || (message.requiretls && assured_name);
            let dane = if settings.dane && dest.mx_authentic {
                match route::dane(&settings.dns, &host.name, settings.port).await {
                    Ok(d) => Ok(d),
                    // RFC 7672 §2.2: a TLSA lookup that fails in a signed zone: this host
                    // is not used now.
                    Err(e) => Err(e),
                }
            } else {
                Ok(Dane::None)
            };
            // DANE, where it applies, takes precedence over MTA-STS (RFC 8461 §2).
            let policy = dane.map(|d| match d {
                _ if tls_report => TlsPolicy::Opportunistic,
                Dane::Records(records) => TlsPolicy::Dane { records },
                Dane::Unusable | Dane::None if pkix => TlsPolicy::Pkix {
                    roots: settings.roots.clone(),
                },
                Dane::Unusable => TlsPolicy::Required,
                Dane::None => TlsPolicy::Opportunistic,
            });
            let applied = match &policy {
                Ok(p) => Applied::of(p, any_sts.as_ref()),
                // A TLSA lookup that failed in a signed zone (RFC 8460 §4.3.2.1).
                Err(_) => {
                    tls.push(crate::tlsrpt::Outcome {
                        applied: Applied {
                            policy_type: "tlsa",
                            strings: Vec::new(),
                        },
                        mx: host.name.clone(),
                        result: "dnssec-invalid",
                        ip: String::new(),
                    });
                    Applied::none()
                }
            };
            targets.push((
                host.name,
                host.addrs,
                settings.port,
                policy,
                count_session.then_some(applied),
            ));
        }
        if targets.is_empty() {
            let none = Outcome::Temporary {
                status: "4.7.5".into(),
                reason: format!("no MX host of {domain} is named by its MTA-STS policy"),
            };
            return (all(n, none, None), false);
        }
    }

    let mut last = Outcome::Temporary {
        status: "4.4.1".into(),
        reason: format!("no mail host of {domain} could be reached"),
    };
    // A mail host of another domain at a private address would let a sender reach our
    // own network through us (and an MX at our own address would loop).
    if !settings.allow_private && settings.smarthost.is_none() {
        for t in targets.iter_mut() {
            t.1.retain(|ip| is_public(*ip));
        }
        if targets.iter().all(|t| t.1.is_empty()) {
            let refused = Outcome::Permanent {
                status: "5.4.4".into(),
                reason: format!("every mail host of {domain} has a non-public address"),
            };
            return (all(n, refused, None), false);
        }
    }
    let mut last_host = None;
    let mut last_perm: Option<(Outcome, Option<String>)> = None;
    let mut any_temporary = false;
    let destination = settings
        .smarthost
        .as_ref()
        .map_or(domain.to_string(), |sh| format!("{}:{}", sh.host, sh.port));
    let _slot = settings.per_destination.acquire(&destination).await;
    for (name, addrs, port, policy, applied) in targets {
        let policy = match policy {
            Ok(p) => p,
            Err(e) => {
                last = from_route(&e);
                last_host = Some(name);
                any_temporary = true;
                continue;
            }
        };
        // An MTA-STS `testing` host (reported under its policy, but opportunistic):
        // the session is first made with the policy's PKIX check, so what fails is
        // reported; a TLS failure then delivers opportunistically, unreported.
        let verify_first = matches!(policy, TlsPolicy::Opportunistic)
            && applied.as_ref().is_some_and(|a| a.policy_type == "sts");
        let checked = if verify_first {
            TlsPolicy::Pkix {
                roots: settings.roots.clone(),
            }
        } else {
            policy.clone()
        };
        for ip in addrs {
            let addr = SocketAddr::new(ip, port);
            let mut result = client::deliver(&settings.client, &name, addr, &checked, &tx).await;
            if let Some(applied) = &applied {
                let result_type = match &result {
                    Ok((_, info)) if info.tls => Some(""),
                    Ok(_) => Some("starttls-not-supported"),
                    Err(f) => crate::tlsrpt::classify(&checked, f),
                };
                if let Some(result_type) = result_type {
                    tls.push(crate::tlsrpt::Outcome {
                        applied: applied.clone(),
                        mx: name.clone(),
                        result: result_type,
                        ip: ip.to_string(),
                    });
                }
            }
            if verify_first && matches!(&result, Err(f) if f.tls_failed) {
                result = client::deliver(&settings.client, &name, addr, &policy, &tx).await;
            }
            // RFC 7435: opportunistic TLS that fails in the handshake falls back to
            // plaintext on the same host rather than not delivering at all.
            if let (Err(f), TlsPolicy::Opportunistic) = (&result, &policy) {
                if f.tls_failed && !message.requiretls {
                    result = client::deliver(&settings.client, &name, addr, &TlsPolicy::Plain, &tx)
                        .await;
                }
            }
            match result {
                Ok((outcomes, info)) => {
                    let list = outcomes
                        .into_iter()
                        .map(|o| (o, Some(name.clone())))
                        .collect();
                    return (list, info.dsn);
                }
                Err(f) => {
                    debug!(host = %name, %addr, reason = %f.reason, "host failed; trying the next");
                    // A host that can never take this message (no REQUIRETLS, SIZE,
                    // SMTPUTF8) does not speak for the others: they are tried. The
                    // message bounces only when every host refused it for good; a host
                    // that failed for now keeps it queued.
                    if f.permanent {
                        if last_perm.is_none() {
                            last_perm = Some((from_failure(&f), Some(name.clone())));
                        }
                        break;
                    }
                    last = from_failure(&f);
                    last_host = Some(name.clone());
                    any_temporary = true;
                }
            }
        }
    }
    match last_perm {
        Some((perm, host)) if !any_temporary => (all(n, perm, host), false),
        _ => (all(n, last, last_host), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = Duration::from_secs(60);
        let max = Duration::from_secs(3600);
        for _ in 0..50 {
            let a = backoff(1, base, max).as_secs_f64();
            assert!((48.0..=72.0).contains(&a), "{a}");
            let c = backoff(3, base, max).as_secs_f64();
            assert!((192.0..=288.0).contains(&c), "{c}");
            let big = backoff(40, base, max).as_secs_f64();
            assert!((2880.0..=4320.0).contains(&big), "{big}");
        }
    }

    #[test]
    fn public_addresses() {
        for private in [
            "127.0.0.2",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            // Metadata and special IPv4 ranges.
            "169.254.169.254",
            "192.0.0.192",
            "198.18.0.1",
            // IPv6 forms carrying a private IPv4 address.
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "::10.0.0.1",
            "::127.0.0.1",
            "2002:a9fe:a9fe::1",
            "2002:0a00:0001::",
            // Site-local and discard.
            "fec0::1",
            "100::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "93.184.216.34",
            "2a00:1450::1",
            // The same forms carrying a public IPv4 address.
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn destinations_hold_at_most_their_limit() {
        let limits = DestinationLimits::new(2);
        let a = limits.acquire("Example.net").await.expect("slot");
        let b = limits.acquire("example.net").await.expect("slot");
        // A third to the same destination waits; another destination does not.
        let waiting =
            tokio::time::timeout(Duration::from_millis(100), limits.acquire("example.net")).await;
        assert!(waiting.is_err(), "a third connection to one destination");
        assert!(limits.acquire("other.example").await.is_some());
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(1), limits.acquire("example.net")).await;
        assert!(matches!(c, Ok(Some(_))));
        drop(b);
    }

    #[test]
    fn notify_values() {
        assert!(notify_allows(None, "FAILURE"));
        assert!(notify_allows(None, "DELAY"));
        assert!(!notify_allows(None, "SUCCESS"));
        assert!(!notify_allows(Some("NEVER"), "FAILURE"));
        assert!(notify_allows(Some("SUCCESS,FAILURE"), "FAILURE"));
        assert!(!notify_allows(Some("SUCCESS,FAILURE"), "DELAY"));
    }
}
