//! Inbound message authentication: SPF (RFC 7208), DKIM (RFC 6376, RFC 8301, RFC 8463),
//! ARC (RFC 8617) and DMARC (RFC 7489, as revised by DMARCbis), with the results written
//! as one `Authentication-Results` header field (RFC 8601).
//!
//! The cryptography and the record grammars are `mail-auth` 0.13's; this module decides
//! which identities are checked, bounds the work a hostile message or a slow DNS can
//! cause, normalises the results to the RFC vocabularies and renders them.
//!
//! # What `mail-auth` 0.13 enforces, and what this module adds
//!
//! * SPF DNS-lookup limit (RFC 7208 §4.6.4): enforced by `mail-auth` — at most 10
//!   mechanisms/modifiers that query DNS (`include`, `a`, `mx`, `ptr`, `exists`,
//!   `redirect`), the 11th gives `permerror`; at most 10 MX names per `mx`; an SPF
//!   evaluation also stops (`permerror`) after 20 s of wall time. The limit of **2 void
//!   lookups** (RFC 7208 §4.6.4) is **not** enforced by `mail-auth` 0.13, nor is the rule
//!   that two `v=spf1` records make a `permerror` (RFC 7208 §4.5: it takes the first one
//!   that parses). Our own overall time budget (below) bounds what is left.
//! * DKIM `l=` (RFC 6376 §8.2): a signature with a body length tag is not verified at
//!   all (it comes back `neutral`, "signature length ignored") because we parse in
//!   `mail-auth`'s strict mode. RSA keys under 1024 bits are refused by `ring`
//!   (RFC 8301 §3.2). `rsa-sha1` is verified by `mail-auth`; this module turns such a
//!   result into `permerror` (RFC 8301 §3.1).
//! * DKIM signature count: `mail-auth` verifies every signature; this module verifies at
//!   most [`MAX_DKIM_SIGNATURES`].
//! * ARC: `mail-auth` refuses chains of more than 50 sets (RFC 8617 §4.2.1).
//! * DMARC: `mail-auth` 0.13 implements the DMARCbis DNS tree walk to find the policy
//!   record and the organizational domain (no public-suffix list), `p=`, `sp=`, `np=` and
//!   `t=y`. It does not parse `pct=` at all (DMARCbis removed it), so `pct=` is ignored:
//!   a failing message always gets the full published policy (RFC 7489 §6.6.4 allowed
//!   sampling; we choose not to sample, which only ever makes us stricter).
//!
//! # Time
//!
//! Each DNS query waits at most [`DnsSettings::timeout`] per try, with
//! [`DNS_RETRIES`] retry; the whole verification of one message waits at most
//! [`MAX_DNS_TIMEOUTS_PER_MESSAGE`] × `timeout`. A check that has not finished by then
//! reports `temperror`.

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use mail_auth::common::crypto::Algorithm;
use mail_auth::dkim::{DkimError, Signature};
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput,
    DmarcResult, DnsError, Error, MessageAuthenticator, SpfOutput, SpfResult,
};
use tokio::time::{Instant, timeout_at};

/// Most DKIM signatures verified per message. Each costs a DNS query and a public-key
/// operation, and the signatures are chosen by the sender: without a cap, a message with
/// thousands of `DKIM-Signature` fields costs thousands of queries and RSA verifications.
/// RFC 6376 §6.1 lets a verifier limit the signatures it tries; legitimate mail rarely
/// carries more than three (author, ESP, mailing list). Signatures after the first ten
/// (in header order, i.e. the most recently added first) are not reported at all, and
/// at most this many malformed signatures are reported either.
pub const MAX_DKIM_SIGNATURES: usize = 10;

/// The whole verification of one message may wait for DNS at most this many
/// [`DnsSettings::timeout`]s. SPF, DKIM and ARC run concurrently and DMARC follows, so
/// with a dead resolver the work needs `2 × (1 + DNS_RETRIES)` = 4 timeouts; a slow but
/// working resolver has room for SPF's ten sequential lookups. It keeps a peer's SMTP
/// transaction well inside the 10 minutes it waits for our reply to DATA
/// (RFC 5321 §4.5.3.2.6).
pub const MAX_DNS_TIMEOUTS_PER_MESSAGE: u32 = 6;

/// Retries per DNS query after the first try times out (hickory's `attempts`, which
/// counts retries: measured, a query to a dead server takes `(1 + DNS_RETRIES) × timeout`).
/// One retry covers a lost UDP datagram.
pub const DNS_RETRIES: usize = 1;

/// Longest reverse-path or HELO text copied into the header: the SMTP limit on a
/// reverse-path (RFC 5321 §4.5.3.1.3). Keeps every token of the header far below the
/// 998-octet line limit (RFC 5322 §2.1.1) whatever the peer sends.
const MAX_SHOWN_IDENTITY: usize = 256;

/// Longest domain name (RFC 1035 §2.3.4, without the root label), used for `d=`, `s=`
/// and the From domain when shown in the header.
const MAX_DOMAIN_LEN: usize = 253;

/// Folding width for the header (RFC 5322 §2.1.1: lines SHOULD be at most 78 characters
/// excluding CRLF). A single token longer than that cannot be folded and stays on its own
/// line; the limits above keep such a line under 998 octets.
const FOLD_WIDTH: usize = 78;

/// Where DNS questions go. Empty `nameservers` = the system's resolv.conf.
///
/// `timeout` is per query attempt; zero means hickory's default (5 s).
#[derive(Debug, Clone)]
pub struct DnsSettings {
    pub nameservers: Vec<SocketAddr>,
    pub timeout: Duration,
}

/// What the sender's domain asks for when DMARC fails (RFC 7489 §6.3 `p=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcDisposition {
    Pass,
    /// No DMARC record, or no From domain to check (also: an unusable record or a From
    /// field naming several domains, RFC 7489 §6.6.1, §6.6.3).
    None,
    /// Temporary DNS failure while checking (RFC 7489 §6.6.3, also when the time budget
    /// ran out).
    TempError,
    /// DMARC failed; the policy the domain publishes for this message (`p=`, or `sp=` /
    /// `np=` for a subdomain; `t=y` lowers it one step). `pct=` is not applied.
    Fail(DmarcPolicy),
}

pub struct VerifyInput<'a> {
    pub remote_ip: IpAddr,
    pub helo: &'a str,
    /// The reverse-path without brackets; "" for the null reverse-path `<>`.
    pub mail_from: &'a str,
    /// Our host name: the authserv-id of Authentication-Results.
    pub hostname: &'a str,
    pub raw: &'a [u8],
}

#[derive(Debug, Clone)]
pub struct Verdict {
    /// The complete header field, `Authentication-Results: …\r\n`, folded.
    pub authentication_results: String,
    pub dmarc: DmarcDisposition,
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`, `permerror`.
    pub spf: String,
    /// (signing domain, result) per DKIM signature.
    pub dkim: Vec<(String, String)>,
    pub arc: String,
    /// The same facts as JSON, for the ledger entry of the delivery:
    /// `{"spf": {"result", "domain"}, "dkim": [{"domain", "selector", "result"}],
    /// "arc": "…", "dmarc": {"result", "policy", "domain"}}` (`policy` is `null` when no
    /// DMARC record applied).
    pub summary: serde_json::Value,
}

/// Verifies inbound messages. Build one per configuration and share it (`Arc`) between
/// sessions: it holds the DNS resolver and its cache.
pub struct InboundVerifier {
    auth: MessageAuthenticator,
    budget: Duration,
}

/// The identity SPF checks for one transaction (RFC 7208 §2.3, §2.4).
enum SpfIdentity<'a> {
    /// MAIL FROM:<sender>, `domain` = its domain part.
    MailFrom { sender: &'a str, domain: &'a str },
    /// MAIL FROM:<> — the HELO domain is checked as `postmaster@helo` (RFC 7208 §2.4).
    Helo { domain: &'a str },
}

impl<'a> SpfIdentity<'a> {
    fn of(input: &VerifyInput<'a>) -> Self {
        if input.mail_from.is_empty() {
            SpfIdentity::Helo { domain: input.helo }
        } else {
            let domain = input.mail_from.rsplit_once('@').map_or("", |(_, d)| d);
            SpfIdentity::MailFrom {
                sender: input.mail_from,
                domain,
            }
        }
    }

    fn domain(&self) -> &'a str {
        match self {
            SpfIdentity::MailFrom { domain, .. } | SpfIdentity::Helo { domain } => domain,
        }
    }
}

impl InboundVerifier {
    /// Builds the resolver: UDP and TCP to each configured nameserver (TCP is used when an
    /// answer is truncated), or the system's resolv.conf when none is configured. The
    /// hosts file is never consulted: SPF `a`/`mx` answers must come from the DNS.
    pub fn new(dns: &DnsSettings) -> Result<Self, String> {
        let (config, mut opts) = if dns.nameservers.is_empty() {
            read_system_conf().map_err(|e| format!("reading the system DNS configuration: {e}"))?
        } else {
            let servers = dns
                .nameservers
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                })
                .collect();
            (
                ResolverConfig::from_name_servers(servers),
                ResolverOpts::default(),
            )
        };
        if !dns.timeout.is_zero() {
            opts.timeout = dns.timeout;
        }
        opts.attempts = DNS_RETRIES;
        opts.use_hosts_file = ResolveHosts::Never;
        let budget = opts
            .timeout
            .saturating_mul(MAX_DNS_TIMEOUTS_PER_MESSAGE)
            .max(Duration::from_millis(1));
        let auth = MessageAuthenticator::new(config, opts)
            .map_err(|e| format!("building the DNS resolver: {e}"))?;
        Ok(InboundVerifier { auth, budget })
    }

    /// The longest [`verify`](Self::verify) waits for DNS before reporting `temperror`.
    pub fn time_budget(&self) -> Duration {
        self.budget
    }

    /// Checks SPF, DKIM, ARC and DMARC for one received message. Never fails and never
    /// panics: a message that does not parse gets `dkim=none`, `arc=none`, `dmarc=none`
    /// (SPF depends on the envelope only and is still checked).
    pub async fn verify(&self, input: &VerifyInput<'_>) -> Verdict {
        match AssertUnwindSafe(self.verify_inner(input))
            .catch_unwind()
            .await
        {
            Ok(verdict) => verdict,
            Err(_) => {
                tracing::error!(
                    remote_ip = %input.remote_ip,
                    "message authentication panicked; delivering with temperror results"
                );
                internal_error_verdict(input)
            }
        }
    }

    async fn verify_inner(&self, input: &VerifyInput<'_>) -> Verdict {
        let deadline = Instant::now() + self.budget;
        let remote_ip = input.remote_ip.to_canonical();
        let authserv_id = authserv_id(input.hostname);
        let identity = SpfIdentity::of(input);

        let mut message = AuthenticatedMessage::parse(input.raw);
        if let Some(message) = message.as_mut() {
            limit_dkim_work(message);
        }
        let message = message;

        // SPF depends on the envelope, DKIM and ARC on the content: run them together.
        let (spf, dkim, arc) = tokio::join!(
            self.check_spf(input, remote_ip, &identity, deadline),
            async {
                match &message {
                    Some(m) => self.check_dkim(m, deadline).await,
                    None => Vec::new(),
                }
            },
            async {
                match &message {
                    Some(m) => self.check_arc(m, deadline).await,
                    None => ArcOutput::default(),
                }
            },
        );

        let dmarc_domain_for_spf = identity.domain();
        let dmarc = match &message {
            Some(m) => {
                self.check_dmarc(m, &dkim, dmarc_domain_for_spf, &spf, deadline)
                    .await
            }
            None => DmarcOutput::default(),
        };

        let disposition = disposition(&dmarc);
        let header_from = message.as_ref().map_or("", |m| m.from());

        // Authentication-Results (RFC 8601 §2.2): one resinfo per method.
        let mut resinfos = vec![spf_resinfo(&authserv_id, &spf, input, remote_ip, &identity)];
        if dkim.is_empty() {
            resinfos.push("dkim=none".to_string());
        }
        resinfos.extend(
            dkim.iter()
                .map(|o| dkim_resinfo(&authserv_id, o, header_from)),
        );
        resinfos.push(method_resinfo(
            &authserv_id,
            AuthenticationResults::new(&authserv_id).with_arc_result(&arc, remote_ip),
        ));
        resinfos.push(if dmarc.domain().is_empty() {
            // No (single) From domain: DMARC does not apply (RFC 7489 §6.6.1).
            "dmarc=none".to_string()
        } else {
            let shown = dmarc
                .clone()
                .with_domain(truncate(dmarc.domain(), MAX_DOMAIN_LEN));
            let text = method_resinfo(
                &authserv_id,
                AuthenticationResults::new(&authserv_id).with_dmarc_result(&shown),
            );
            // policy.dmarc names a published policy; without a record there is none.
            match text.strip_suffix(" policy.dmarc=none") {
                Some(stripped) if dmarc.dmarc_record().is_none() => stripped.to_string(),
                _ => text,
            }
        });
        let authentication_results = fold_authentication_results(&authserv_id, &resinfos);

        let spf_result = spf_result_name(spf.result()).to_string();
        let spf_domain = truncate(spf.domain(), MAX_DOMAIN_LEN).to_string();
        let dkim_rows: Vec<(String, String, String)> = dkim
            .iter()
            .map(|o| {
                let (d, s) = o
                    .signature()
                    .map_or(("", ""), |s| (s.d.as_str(), s.s.as_str()));
                (
                    truncate(d, MAX_DOMAIN_LEN).to_string(),
                    truncate(s, MAX_DOMAIN_LEN).to_string(),
                    dkim_result_name(o.result()).to_string(),
                )
            })
            .collect();
        let arc_result = dkim_result_name(arc.result()).to_string();
        let dmarc_result = match disposition {
            DmarcDisposition::Pass => "pass",
            DmarcDisposition::None => "none",
            DmarcDisposition::TempError => "temperror",
            DmarcDisposition::Fail(_) => "fail",
        };
        let dmarc_policy = dmarc
            .dmarc_record()
            .map(|_| policy_name(dmarc_policy(dmarc.policy())));

        let summary = serde_json::json!({
            "spf": { "result": spf_result, "domain": spf_domain },
            "dkim": dkim_rows
                .iter()
                .map(|(d, s, r)| serde_json::json!({ "domain": d, "selector": s, "result": r }))
                .collect::<Vec<_>>(),
            "arc": arc_result,
            "dmarc": {
                "result": dmarc_result,
                "policy": dmarc_policy,
                "domain": truncate(dmarc.domain(), MAX_DOMAIN_LEN),
            },
        });

        Verdict {
            authentication_results,
            dmarc: disposition,
            spf: spf_result,
            dkim: dkim_rows.into_iter().map(|(d, _, r)| (d, r)).collect(),
            arc: arc_result,
            summary,
        }
    }

    /// SPF for MAIL FROM, or for HELO when MAIL FROM is null (RFC 7208 §2.3, §2.4).
    async fn check_spf(
        &self,
        input: &VerifyInput<'_>,
        remote_ip: IpAddr,
        identity: &SpfIdentity<'_>,
        deadline: Instant,
    ) -> SpfOutput {
        let domain = identity.domain();
        // RFC 7208 §4.3: a malformed or single-label domain (or an address literal as
        // HELO, §2.3) gives "none" without any DNS query.
        if !is_spf_domain(domain) {
            return SpfOutput::new(domain.to_string()).with_result(SpfResult::None);
        }
        let params = match identity {
            SpfIdentity::MailFrom { sender, .. } => {
                SpfParameters::verify_mail_from(remote_ip, input.helo, input.hostname, sender)
            }
            SpfIdentity::Helo { domain } => {
                SpfParameters::verify_ehlo(remote_ip, domain, input.hostname)
            }
        };
        match timeout_at(deadline, self.auth.verify_spf(params)).await {
            Ok(output) => output,
            // RFC 7208 §2.6.6: a transient (here: time) failure is temperror.
            Err(_) => SpfOutput::new(domain.to_string()).with_result(SpfResult::TempError),
        }
    }

    /// DKIM, every signature kept by [`limit_dkim_work`] (RFC 6376 §6.1), with the results
    /// normalised by [`normalise_dkim`].
    async fn check_dkim<'x>(
        &self,
        message: &'x AuthenticatedMessage<'x>,
        deadline: Instant,
    ) -> Vec<DkimOutput<'x>> {
        if message.dkim_headers.is_empty() && !message.has_dkim_errors {
            return Vec::new();
        }
        match timeout_at(deadline, self.auth.verify_dkim(message)).await {
            Ok(outputs) => outputs
                .into_iter()
                .map(|o| normalise_dkim(message, o))
                .collect(),
            Err(_) => message
                .dkim_headers
                .iter()
                .map(|h| DkimOutput::temp_err(budget_error()).with_signature(&h.header))
                .collect(),
        }
    }

    /// ARC chain validation (RFC 8617 §5.2), results limited to pass / fail / none
    /// (§4.4) plus temperror for DNS trouble.
    async fn check_arc<'x>(
        &self,
        message: &'x AuthenticatedMessage<'x>,
        deadline: Instant,
    ) -> ArcOutput<'x> {
        let output = match timeout_at(deadline, self.auth.verify_arc(message)).await {
            Ok(output) => output,
            Err(_) => {
                return ArcOutput::default().with_result(DkimResult::TempError(budget_error()));
            }
        };
        let result = match output.result() {
            DkimResult::Pass | DkimResult::None | DkimResult::TempError(_) => return output,
            // RFC 8617 §5.2: any failure of the chain (body hash, signature, instance
            // numbers, cv=) is "fail"; mail-auth reports some of them as neutral.
            DkimResult::Neutral(e) | DkimResult::PermError(e) | DkimResult::Fail(e) => {
                DkimResult::Fail(e.clone())
            }
        };
        output.with_result(result)
    }

    /// DMARC (RFC 7489 §6.6): policy discovery and identifier alignment.
    async fn check_dmarc<'x>(
        &self,
        message: &'x AuthenticatedMessage<'x>,
        dkim: &'x [DkimOutput<'x>],
        spf_domain: &'x str,
        spf: &'x SpfOutput,
        deadline: Instant,
    ) -> DmarcOutput {
        if message.from.is_empty() {
            return DmarcOutput::default();
        }
        // RFC 7489 §4.1 / RFC 7208 §2.4: with a null MAIL FROM the SPF-authenticated
        // identifier is the HELO domain, which `spf_domain` already is.
        let params = DmarcParameters::new(message, dkim, spf_domain, spf);
        match timeout_at(deadline, self.auth.verify_dmarc(params)).await {
            Ok(output) => output,
            Err(_) => {
                let domain = message
                    .from()
                    .rsplit_once('@')
                    .map_or("", |(_, d)| d)
                    .to_string();
                DmarcOutput::new(domain)
                    .with_spf_result(DmarcResult::TempError(budget_error()))
                    .with_dkim_result(DmarcResult::TempError(budget_error()))
            }
        }
    }
}

/// Caps the DKIM work a message can ask for ([`MAX_DKIM_SIGNATURES`]): the first
/// signatures in header order are verified, the rest dropped; malformed signatures are
/// reported up to the same number.
fn limit_dkim_work(message: &mut AuthenticatedMessage<'_>) {
    message.dkim_headers.truncate(MAX_DKIM_SIGNATURES);
    let mut malformed = 0usize;
    message.errors.retain(|h| match h.header {
        Error::Dkim(_) => {
            malformed += 1;
            malformed <= MAX_DKIM_SIGNATURES
        }
        _ => true,
    });
}

/// Maps `mail-auth`'s DKIM outcome to RFC 6376 / RFC 8601 terms before DMARC sees it.
fn normalise_dkim<'x>(
    message: &'x AuthenticatedMessage<'x>,
    output: DkimOutput<'x>,
) -> DkimOutput<'x> {
    // The output borrows the signature from `message`; find that same signature with
    // the message's lifetime so a replacement output can carry it too.
    let signature: Option<&'x Signature> = output.signature().and_then(|s| {
        message
            .dkim_headers
            .iter()
            .map(|h| &h.header)
            .find(|candidate| std::ptr::eq(*candidate, s))
    });
    let Some(signature) = signature else {
        return output;
    };
    match output.result() {
        // RFC 8301 §3.1: rsa-sha1 MUST NOT be considered valid by a verifier.
        DkimResult::Pass if signature.a == Algorithm::RsaSha1 => {
            DkimOutput::perm_err(Error::Dkim(DkimError::UnsupportedAlgorithm))
                .with_signature(signature)
        }
        // RFC 6376 §6.1.3: a body hash mismatch is a verification failure (PERMFAIL),
        // RFC 8601 §2.7.1 "fail"; mail-auth calls it neutral.
        DkimResult::Neutral(e @ Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            DkimOutput::fail(e.clone()).with_signature(signature)
        }
        _ => output,
    }
}

/// DMARC outcome → what the session acts on (RFC 7489 §6.6.2, §6.6.3).
fn disposition(dmarc: &DmarcOutput) -> DmarcDisposition {
    match dmarc.result() {
        DmarcResult::Pass => DmarcDisposition::Pass,
        DmarcResult::TempError(_) => DmarcDisposition::TempError,
        // An unusable record or From domain is treated as no policy (RFC 7489 §6.6.3).
        DmarcResult::None | DmarcResult::PermError(_) => DmarcDisposition::None,
        DmarcResult::Fail(_) => DmarcDisposition::Fail(dmarc_policy(dmarc.policy())),
    }
}

fn dmarc_policy(policy: Policy) -> DmarcPolicy {
    match policy {
        Policy::Reject => DmarcPolicy::Reject,
        Policy::Quarantine => DmarcPolicy::Quarantine,
        Policy::None | Policy::Unspecified => DmarcPolicy::None,
    }
}

fn policy_name(policy: DmarcPolicy) -> &'static str {
    match policy {
        DmarcPolicy::None => "none",
        DmarcPolicy::Quarantine => "quarantine",
        DmarcPolicy::Reject => "reject",
    }
}

/// RFC 7208 §2.6 result names.
fn spf_result_name(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

/// RFC 8601 §2.7.1 result names.
fn dkim_result_name(result: &DkimResult) -> &'static str {
    match result {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn budget_error() -> Error {
    Error::Dns(DnsError::Resolver(
        "verification time budget exhausted".to_string(),
    ))
}

/// A valid, multi-label domain for SPF (RFC 7208 §4.3): 1–63-octet labels of letters,
/// digits, `-`, `_` (or non-ASCII, for U-labels), at most 253 octets. Address literals
/// such as `[192.0.2.1]` are not domains.
fn is_spf_domain(domain: &str) -> bool {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || domain.len() > MAX_DOMAIN_LEN {
        return false;
    }
    let mut labels = 0usize;
    for label in domain.split('.') {
        labels += 1;
        if label.is_empty()
            || label.len() > 63
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
        {
            return false;
        }
    }
    labels >= 2
}

/// Our authserv-id (RFC 8601 §2.5): the host name, reduced to characters that need no
/// quoting in a `value` (RFC 2045 token), so a misconfigured name cannot break the field.
fn authserv_id(hostname: &str) -> String {
    let id: String = hostname
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(MAX_DOMAIN_LEN)
        .collect();
    if id.is_empty() {
        "localhost".to_string()
    } else {
        id
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// The text of the one method in `results` (built by `mail-auth` for `authserv_id`),
/// without the authserv-id and the builder's own separator.
fn method_resinfo(authserv_id: &str, results: AuthenticationResults<'_>) -> String {
    // Display = authserv-id followed by ";\r\n\t<resinfo>" per method.
    let text = results.to_string();
    let text = text.strip_prefix(authserv_id).unwrap_or(&text);
    text.strip_prefix(";\r\n\t").unwrap_or(text).to_string()
}

/// `spf=… smtp.mailfrom=…` (RFC 8601 §2.7.2), or `smtp.helo=` when MAIL FROM was null and
/// the HELO identity was checked (RFC 7208 §2.4).
fn spf_resinfo(
    authserv_id: &str,
    spf: &SpfOutput,
    input: &VerifyInput<'_>,
    remote_ip: IpAddr,
    identity: &SpfIdentity<'_>,
) -> String {
    let helo = truncate(input.helo, MAX_SHOWN_IDENTITY);
    let results = AuthenticationResults::new(authserv_id);
    method_resinfo(
        authserv_id,
        match identity {
            SpfIdentity::MailFrom { sender, .. } => results.with_spf_mailfrom_result(
                spf,
                remote_ip,
                truncate(sender, MAX_SHOWN_IDENTITY),
                helo,
            ),
            SpfIdentity::Helo { .. } => results.with_spf_ehlo_result(spf, remote_ip, helo),
        },
    )
}

/// `dkim=… header.d=… header.s=…` (RFC 8601 §2.7.1). A signature whose `d=`, `s=` or `i=`
/// is longer than any DNS name could be is shown without them: it cannot have verified
/// (its key cannot be looked up) and its text would make an unfoldable line.
fn dkim_resinfo(authserv_id: &str, output: &DkimOutput<'_>, header_from: &str) -> String {
    if let Some(signature) = output.signature()
        && (signature.d.len() > MAX_DOMAIN_LEN
            || signature.s.len() > MAX_DOMAIN_LEN
            || signature.i.len() > MAX_SHOWN_IDENTITY)
    {
        return format!(
            "dkim={} (signature identifiers too long)",
            dkim_result_name(output.result())
        );
    }
    method_resinfo(
        authserv_id,
        AuthenticationResults::new(authserv_id)
            .with_dkim_result(output, truncate(header_from, MAX_SHOWN_IDENTITY)),
    )
}

/// Renders the header field: `Authentication-Results: <authserv-id>;` then each resinfo
/// on its own line, folded at white space (never inside a quoted-string) so that lines
/// stay within [`FOLD_WIDTH`] (RFC 5322 §2.1.1, §2.2.3), CRLF line ends, CRLF at the end.
fn fold_authentication_results(authserv_id: &str, resinfos: &[String]) -> String {
    let mut out = String::with_capacity(128 + resinfos.iter().map(String::len).sum::<usize>());
    out.push_str("Authentication-Results: ");
    out.push_str(authserv_id);
    if resinfos.is_empty() {
        // RFC 8601 §2.2: "none" when no method was applied.
        out.push_str("; none\r\n");
        return out;
    }
    out.push(';');
    for (i, resinfo) in resinfos.iter().enumerate() {
        let last = i + 1 == resinfos.len();
        out.push_str("\r\n\t");
        let mut line_len = 1; // the tab
        let words = split_words(resinfo);
        let count = words.len();
        for (j, word) in words.into_iter().enumerate() {
            let suffix = if !last && j + 1 == count { ";" } else { "" };
            let width = word.len() + suffix.len();
            if j > 0 {
                if line_len + 1 + width > FOLD_WIDTH {
                    out.push_str("\r\n\t");
                    line_len = 1;
                } else {
                    out.push(' ');
                    line_len += 1;
                }
            }
            out.push_str(word);
            out.push_str(suffix);
            line_len += width;
        }
    }
    out.push_str("\r\n");
    out
}

/// Splits at spaces that are outside quoted-strings (RFC 5322 §3.2.4); white space
/// inside a quoted-string is content and must not become a fold.
fn split_words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut in_quote = false;
    let mut escaped = false;
    let mut start = 0;
    for (pos, ch) in text.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_quote = false;
            }
            continue;
        }
        match ch {
            '"' => in_quote = true,
            ' ' | '\t' | '\r' | '\n' => {
                if let Some(word) = text.get(start..pos).filter(|w| !w.is_empty()) {
                    words.push(word);
                }
                start = pos + ch.len_utf8();
            }
            _ => {}
        }
    }
    if let Some(word) = text.get(start..).filter(|w| !w.is_empty()) {
        words.push(word);
    }
    words
}

/// The verdict when verification itself failed (a panic inside the libraries): every
/// method temperror, so nothing is treated as authenticated and nothing is rejected on
/// a policy we could not evaluate.
fn internal_error_verdict(input: &VerifyInput<'_>) -> Verdict {
    let authserv_id = authserv_id(input.hostname);
    let resinfos = [
        "spf=temperror (internal error)".to_string(),
        "dkim=temperror (internal error)".to_string(),
        "dmarc=temperror (internal error)".to_string(),
    ];
    Verdict {
        authentication_results: fold_authentication_results(&authserv_id, &resinfos),
        dmarc: DmarcDisposition::TempError,
        spf: "temperror".to_string(),
        dkim: Vec::new(),
        arc: "temperror".to_string(),
        summary: serde_json::json!({
            "spf": { "result": "temperror", "domain": "" },
            "dkim": [],
            "arc": "temperror",
            "dmarc": { "result": "temperror", "policy": null, "domain": "" },
            "error": "internal error during verification",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_quoted_strings_and_width() {
        let resinfos = vec![
            "spf=pass (mx.example: domain of a@b.example designates 192.0.2.1 as permitted sender) smtp.mailfrom=\"a b c d e f g h i j k l m n o p q r s t u v\"@b.example".to_string(),
            "dmarc=pass header.from=b.example policy.dmarc=none".to_string(),
        ];
        let header = fold_authentication_results("mx.example", &resinfos);
        assert!(header.ends_with("\r\n"));
        assert!(header.contains("\"a b c d e f g h i j k l m n o p q r s t u v\"@b.example"));
        for line in header.trim_end_matches("\r\n").split("\r\n") {
            assert!(line.len() <= FOLD_WIDTH, "{line:?}");
        }
        assert!(!header.contains("\n\r") && !header.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn spf_domains() {
        assert!(is_spf_domain("example.com"));
        assert!(is_spf_domain("example.com."));
        assert!(is_spf_domain("_spf.example-1.com"));
        assert!(!is_spf_domain("localhost"));
        assert!(!is_spf_domain("[192.0.2.1]"));
        assert!(!is_spf_domain("a..b"));
        assert!(!is_spf_domain(""));
        assert!(!is_spf_domain(&format!("{}.com", "a".repeat(64))));
    }

    #[test]
    fn authserv_id_is_a_token() {
        assert_eq!(authserv_id("mx.example.com"), "mx.example.com");
        assert_eq!(authserv_id("mx ex;ample"), "mxexample");
        assert_eq!(authserv_id(""), "localhost");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
