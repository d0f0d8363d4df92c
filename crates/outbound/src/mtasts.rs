//! SMTP MTA Strict Transport Security (RFC 8461): a destination that publishes a policy in
//! `enforce` mode gets mail only through the MX hosts the policy names, over TLS with a
//! certificate valid for the MX host's name (PKIX). The policy is discovered through the
//! `_mta-sts` TXT record, fetched over HTTPS from `mta-sts.<domain>` (certificate checked,
//! no redirects, bounded size and time) and cached for its `max_age` — in memory and in
//! the store, so every node and a restarted one keep enforcing it — re-fetched when the
//! TXT record's `id` changes.
//!
//! `testing` mode policies are fetched and cached but change nothing for delivery; their
//! failures are counted for TLS reports (`tlsrpt.rs`, RFC 8460). `none` removes a cached
//! policy. Fetches go through the egress-safe client (`egress.rs`: public addresses only
//! unless `[outbound] allow_private_destinations`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::rr::{RData, RecordType};
use rustls::RootCertStore;

use postern_core::Core;
use postern_core::store::{StsPolicyRecord, now_ms};

use crate::dns::DnsClient;
use crate::egress::HttpsClient;

/// RFC 8460 §4.3.2.2 result types of a policy that could not be had.
pub const FETCH_ERROR: &str = "sts-policy-fetch-error";
pub const INVALID: &str = "sts-policy-invalid";
pub const WEBPKI_INVALID: &str = "sts-webpki-invalid";
/// Longest `_mta-sts` TXT record read (RFC 8461 §3.1 records are a few dozen bytes).
pub const MAX_TXT_BYTES: usize = 1024;

/// Largest policy body accepted (RFC 8461 §3.2: 64 KB is plenty for a list of MX names).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Most `mx:` patterns in one policy (a policy lists a domain's few MX names; more is
/// refused as invalid, so one domain cannot make every report and cache entry huge).
pub const MAX_MX_PATTERNS: usize = 64;
/// Policies kept in one node's memory; past it the expired ones go, then all (the store
/// still has them).
pub const MAX_CACHED_POLICIES: usize = 10_000;
/// A cached policy is fetched again once it is this old (or half its `max_age`, when
/// shorter), even when its TXT id is unchanged, so `max_age` keeps moving forward and a
/// fetch blocked just when it would expire cannot switch the policy off (RFC 8461 §10.2).
pub const REFRESH_AFTER_MS: i64 = 86_400_000;
/// Longest `max_age` honoured (RFC 8461 §3.2: 31557600 seconds, one year).
pub const MAX_AGE_SECS: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// `mx:` patterns, lower-case; `*.example.com` matches one leftmost label.
    pub mx: Vec<String>,
    pub max_age: Duration,
}

impl Policy {
    /// RFC 8461 §3.2 policy text: `key: value` lines (CRLF or LF).
    pub fn parse(text: &str) -> Result<Policy, String> {
        let mut version = None;
        let mut mode = None;
        let mut mx = Vec::new();
        let mut max_age = None;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                return Err(format!("policy line without ':': {line:?}"));
            };
            let v = v.trim();
            match k.trim() {
                "version" => version = Some(v.to_string()),
                "mode" => {
                    mode = Some(match v {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("unknown mode {other:?}")),
                    })
                }
                "mx" => {
                    if mx.len() >= MAX_MX_PATTERNS {
                        return Err(format!("more than {MAX_MX_PATTERNS} mx patterns"));
                    }
                    mx.push(v.to_ascii_lowercase())
                }
                "max_age" => {
                    let n: u64 = v
                        .parse()
                        .map_err(|_| format!("max_age {v:?} is not a number"))?;
                    max_age = Some(Duration::from_secs(n.min(MAX_AGE_SECS)));
                }
                // Unknown fields are ignored (RFC 8461 §3.2).
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("version is not STSv1".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mode != Mode::None && mx.is_empty() {
            return Err("no mx patterns".into());
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// The policy as RFC 8460 §4.4 `policy-string` lines.
    pub fn strings(&self) -> Vec<String> {
        let mut v = vec![
            "version: STSv1".to_string(),
            format!("mode: {}", mode_str(self.mode)),
        ];
        v.extend(self.mx.iter().map(|m| format!("mx: {m}")));
        v.push(format!("max_age: {}", self.max_age.as_secs()));
        v
    }

    /// RFC 8461 §4.1: a pattern matches the host exactly, or `*.` matches exactly one
    /// leftmost label.
    pub fn mx_matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => *p == host,
        })
    }
}

/// `v=STSv1; id=…;` → the id (RFC 8461 §3.1).
pub fn txt_id(txt: &str) -> Option<String> {
    let mut fields = txt.split(';').map(str::trim);
    if fields.next() != Some("v=STSv1") {
        return None;
    }
    fields
        .filter_map(|f| f.strip_prefix("id="))
        .map(str::to_string)
        .find(|id| {
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

#[derive(Debug, Clone)]
struct Cached {
    id: String,
    policy: Policy,
    /// Unix milliseconds.
    expires_ms: i64,
}

/// What a policy lookup found.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// The policy that applies now (fresh or cached), if any.
    pub policy: Option<Policy>,
    /// The domain announces a policy that could not be fetched or used: an RFC 8460
    /// §4.3.2.2 result type (`sts-policy-fetch-error`, `sts-policy-invalid`,
    /// `sts-webpki-invalid`) and what happened.
    pub failure: Option<(&'static str, String)>,
}

/// Policies by domain, shared by the runner's deliveries: in memory, and (with a store)
/// in the store, where every node and every restart finds them (RFC 8461 §5.1: a cached
/// policy is used until its `max_age` runs out, whatever happens to its TXT record or
/// its web server meanwhile).
pub struct MtaSts {
    dns: DnsClient,
    https: HttpsClient,
    /// The HTTPS port (443; tests use another).
    port: u16,
    timeout: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    core: std::sync::OnceLock<Arc<Core>>,
}

impl std::fmt::Debug for MtaSts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtaSts")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

fn mode_str(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "enforce",
        Mode::Testing => "testing",
        Mode::None => "none",
    }
}

impl MtaSts {
    pub fn new(dns: DnsClient, roots: Arc<RootCertStore>, port: u16, timeout: Duration) -> MtaSts {
        MtaSts {
            https: HttpsClient::new(dns.clone(), roots, false, timeout),
            dns,
            port,
            timeout,
            cache: Mutex::new(HashMap::new()),
            core: std::sync::OnceLock::new(),
        }
    }

    /// Fetches policies from hosts at private addresses too (`[outbound]
    /// allow_private_destinations`; tests). Refused by default (DESIGN §2 invariant 9).
    pub fn allowing_private(mut self, allow: bool) -> MtaSts {
        self.https = self.https.allowing_private(allow);
        self
    }

    /// Keeps policies in the store too (shared by the nodes, kept across restarts). The
    /// queue runner attaches its `Core` when it starts; a second call changes nothing.
    pub fn use_store(&self, core: Arc<Core>) {
        let _ = self.core.set(core);
    }

    fn remembered(&self, domain: &str, now: i64) -> Option<Cached> {
        let cache = self.cache.lock().ok()?;
        let c = cache.get(domain)?;
        (c.expires_ms > now).then(|| c.clone())
    }

    fn remember(&self, domain: &str, c: Option<Cached>) {
        if let Ok(mut cache) = self.cache.lock() {
            match c {
                Some(c) => {
                    if cache.len() >= MAX_CACHED_POLICIES && !cache.contains_key(domain) {
                        let now = now_ms();
                        cache.retain(|_, v| v.expires_ms > now);
                        if cache.len() >= MAX_CACHED_POLICIES {
                            cache.clear();
                        }
                    }
                    cache.insert(domain.to_string(), c);
                }
                None => {
                    cache.remove(domain);
                }
            }
        }
    }

    /// The stored policy of `domain` when it has not expired.
    async fn stored(&self, domain: &str, now: i64) -> Option<Cached> {
        let core = self.core.get()?;
        let r = match core.sts_policy(domain).await {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(%domain, error = %e, "reading the cached MTA-STS policy failed");
                return None;
            }
        };
        if r.expires_ms() <= now {
            return None;
        }
        let mode = match r.mode.as_str() {
            "enforce" => Mode::Enforce,
            "testing" => Mode::Testing,
            _ => return None,
        };
        let max_age = u64::try_from(r.max_age_secs).unwrap_or(0).min(MAX_AGE_SECS);
        Some(Cached {
            id: r.policy_id.clone(),
            policy: Policy {
                mode,
                mx: r.mx.clone(),
                max_age: Duration::from_secs(max_age),
            },
            expires_ms: r.expires_ms(),
        })
    }

    async fn store_policy(&self, domain: &str, id: &str, policy: &Policy, now: i64) {
        let Some(core) = self.core.get() else {
            return;
        };
        let record = (policy.mode != Mode::None).then(|| StsPolicyRecord {
            domain: domain.to_string(),
            policy_id: id.to_string(),
            mode: mode_str(policy.mode).to_string(),
            mx: policy.mx.clone(),
            max_age_secs: i64::try_from(policy.max_age.as_secs()).unwrap_or(i64::MAX),
            fetched_ms: now,
        });
        if let Err(e) = core.sts_policy_set(domain, record).await {
            tracing::warn!(%domain, error = %e, "storing the MTA-STS policy failed");
        }
    }

    /// The `id` of the domain's single `v=STSv1` TXT record; `None` when there is none,
    /// more than one, or the lookup failed (RFC 8461 §3.1).
    async fn txt(&self, domain: &str) -> Option<String> {
        let name = format!("_mta-sts.{domain}.");
        let a = self.dns.query(&name, RecordType::TXT).await.ok()?;
        let ids: Vec<Option<String>> = a
            .data()
            .filter_map(|d| match d {
                RData::TXT(t) => {
                    let mut s = String::new();
                    for p in t.txt_data.iter() {
                        if s.len() + p.len() > MAX_TXT_BYTES {
                            return Some(None);
                        }
                        s.push_str(&String::from_utf8_lossy(p));
                    }
                    s.starts_with("v=STSv1").then(|| txt_id(&s))
                }
                _ => None,
            })
            .collect();
        match ids.as_slice() {
            [Some(id)] => Some(id.clone()),
            _ => None,
        }
    }

    /// The policy that applies to `domain` now, or `None`.
    pub async fn policy(&self, domain: &str) -> Option<Policy> {
        self.lookup(domain).await.policy
    }

    /// The policy that applies to `domain` now, with what went wrong getting it. A TXT
    /// record that is gone or cannot be looked up, and a fetch that fails, keep a cached,
    /// unexpired policy (RFC 8461 §5.1, §10.2: an attacker who blocks them must not turn
    /// the policy off); a TXT `id` equal to the cached one uses it without a fetch.
    pub async fn lookup(&self, domain: &str) -> Lookup {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let now = now_ms();
        let id = self.txt(&domain).await;
        let mut cached = self.remembered(&domain, now);
        // Not in this node's memory, or another id: the store may know better (another
        // node, or this one before a restart).
        if cached.as_ref().is_none_or(|c| Some(&c.id) != id.as_ref()) {
            if let Some(s) = self.stored(&domain, now).await {
                if cached.is_none() || Some(&s.id) == id.as_ref() {
                    self.remember(&domain, Some(s.clone()));
                    cached = Some(s);
                }
            }
        }
        let Some(id) = id else {
            return Lookup {
                policy: cached.map(|c| c.policy),
                failure: None,
            };
        };
        // The same id: the cached policy, fetched again only when it is due a refresh
        // (a failed refresh keeps it, unreported).
        let mut refreshing = false;
        if let Some(c) = &cached {
            if c.id == id {
                let max_age = i64::try_from(c.policy.max_age.as_millis()).unwrap_or(i64::MAX);
                let fetched = c.expires_ms.saturating_sub(max_age);
                if now < fetched.saturating_add(REFRESH_AFTER_MS.min(max_age / 2)) {
                    return Lookup {
                        policy: Some(c.policy.clone()),
                        failure: None,
                    };
                }
                refreshing = true;
            }
        }
        match self.fetch_classified(&domain).await {
            Ok(policy) => {
                let expires_ms = now
                    .saturating_add(i64::try_from(policy.max_age.as_millis()).unwrap_or(i64::MAX));
                self.remember(
                    &domain,
                    (policy.mode != Mode::None).then(|| Cached {
                        id: id.clone(),
                        policy: policy.clone(),
                        expires_ms,
                    }),
                );
                self.store_policy(&domain, &id, &policy, now).await;
                Lookup {
                    policy: Some(policy),
                    failure: None,
                }
            }
            Err((kind, e)) => {
                tracing::debug!(%domain, error = %e, "MTA-STS policy fetch failed");
                Lookup {
                    policy: cached.map(|c| c.policy),
                    failure: (!refreshing).then_some((kind, e)),
                }
            }
        }
    }

    /// GET https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.3).
    pub async fn fetch(&self, domain: &str) -> Result<Policy, String> {
        self.fetch_classified(domain).await.map_err(|(_, e)| e)
    }

    /// [`MtaSts::fetch`], with the RFC 8460 result type of a failure.
    async fn fetch_classified(&self, domain: &str) -> Result<Policy, (&'static str, String)> {
        let host = format!("mta-sts.{domain}");
        tokio::time::timeout(self.timeout, self.fetch_inner(&host))
            .await
            .map_err(|_| {
                (
                    FETCH_ERROR,
                    format!("fetching the policy from {host}: timed out"),
                )
            })?
    }

    async fn fetch_inner(&self, host: &str) -> Result<Policy, (&'static str, String)> {
        use crate::egress::EgressError;
        let response = self
            .https
            .request(
                host,
                self.port,
                "/.well-known/mta-sts.txt",
                None,
                MAX_POLICY_BYTES,
            )
            .await
            .map_err(|e| match e {
                EgressError::Tls(m) => (WEBPKI_INVALID, m),
                EgressError::TooBig(m) => (INVALID, m),
                other => (FETCH_ERROR, other.to_string()),
            })?;
        // RFC 8461 §3.3: only 200 counts; redirects are not followed.
        if response.status != 200 {
            return Err((
                FETCH_ERROR,
                format!("{host}: HTTP status {}", response.status),
            ));
        }
        let text_plain = response
            .content_type
            .as_deref()
            .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/plain"));
        if !text_plain {
            return Err((INVALID, format!("{host}: the policy is not text/plain")));
        }
        let text = std::str::from_utf8(&response.body)
            .map_err(|_| (INVALID, format!("{host}: policy is not UTF-8")))?;
        Policy::parse(text).map_err(|e| (INVALID, format!("{host}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdns::{Zone, a, serve, txt};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A test CA, and an HTTPS server for `names` with a certificate it signed, answering
    /// every request with `response` (raw HTTP). Returns (roots, port, response slot).
    async fn https(
        names: &[&str],
        signed_by_ca: bool,
    ) -> (Arc<RootCertStore>, u16, Arc<Mutex<String>>) {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = if signed_by_ca {
            params.signed_by(&key, &issuer).expect("leaf")
        } else {
            params.self_signed(&key).expect("self-signed")
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).expect("root");
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("der");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .expect("config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let response = Arc::new(Mutex::new(String::new()));
        let r2 = response.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let r = r2.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let text = r.lock().map(|g| g.clone()).unwrap_or_default();
                    let _ = tls.write_all(text.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (Arc::new(roots), port, response)
    }

    fn ok(body: &str, content_type: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    const POLICY: &str =
        "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n";

    async fn setup(id: &str, signed_by_ca: bool) -> (MtaSts, Arc<Mutex<String>>) {
        let (roots, port, response) = https(&["mta-sts.example.test"], signed_by_ca).await;
        let mut z = Zone::default();
        z.add("_mta-sts.example.test", txt(&format!("v=STSv1; id={id};")))
            .add("mta-sts.example.test", a([127, 0, 0, 1]));
        let dns = serve(z).await;
        (
            MtaSts::new(dns, roots, port, Duration::from_secs(5)).allowing_private(true),
            response,
        )
    }

    #[tokio::test]
    async fn fetches_checks_and_caches_the_policy() {
        let (sts, response) = setup("a1", true).await;
        *response.lock().unwrap() = ok(POLICY, "text/plain; charset=utf-8");
        let p = sts.policy("example.test").await.expect("policy");
        assert_eq!(p.mode, Mode::Enforce);
        assert!(p.mx_matches("mx.example.test"));
        // Cached: the server now answers 404, the id is unchanged, the policy stays.
        *response.lock().unwrap() = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into();
        assert!(sts.policy("example.test").await.is_some());
        // A domain without the TXT record has no policy.
        assert!(sts.policy("other.test").await.is_none());
    }

    /// With an unchanged TXT id a cached policy is fetched again once half its max_age
    /// (at most a day) has passed; a failed refresh keeps it.
    #[tokio::test]
    async fn a_cached_policy_is_refreshed_before_it_expires() {
        let (sts, response) = setup("r1", true).await;
        let short = |mode: &str| {
            ok(
                &format!("version: STSv1\r\nmode: {mode}\r\nmx: mx.example.test\r\nmax_age: 2\r\n"),
                "text/plain",
            )
        };
        *response.lock().unwrap() = short("enforce");
        assert_eq!(
            sts.policy("example.test").await.unwrap().mode,
            Mode::Enforce
        );
        // Not due yet: the server's new answer is not fetched.
        *response.lock().unwrap() = short("testing");
        assert_eq!(
            sts.policy("example.test").await.unwrap().mode,
            Mode::Enforce
        );
        // Half of max_age later: fetched again.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            sts.policy("example.test").await.unwrap().mode,
            Mode::Testing
        );
        // Due again, and the server fails: the cached policy stays, nothing reported.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        *response.lock().unwrap() = "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".into();
        let l = sts.lookup("example.test").await;
        assert_eq!(l.policy.map(|p| p.mode), Some(Mode::Testing));
        assert!(l.failure.is_none(), "{:?}", l.failure);
    }

    #[tokio::test]
    async fn bad_answers_are_no_policy() {
        let (sts, response) = setup("b1", true).await;
        for bad in [
            "HTTP/1.1 301 Moved Permanently\r\nLocation: https://elsewhere.test/\r\nContent-Length: 0\r\n\r\n".to_string(),
            ok(POLICY, "text/html"),
            ok("version: STSv1\r\nmode: enforce\r\n", "text/plain"),
            ok(&"x".repeat(MAX_POLICY_BYTES + 1), "text/plain"),
        ] {
            *response.lock().unwrap() = bad.clone();
            assert!(sts.fetch("example.test").await.is_err(), "{}", &bad[..40]);
        }
        // A certificate not from a trusted CA: refused.
        let (untrusted, response) = setup("c1", false).await;
        *response.lock().unwrap() = ok(POLICY, "text/plain");
        let e = untrusted.fetch("example.test").await.unwrap_err();
        assert!(e.contains("TLS"), "{e}");
    }

    /// A `_mta-sts` record longer than [`MAX_TXT_BYTES`] is not read (no policy).
    #[tokio::test]
    async fn an_oversized_txt_record_is_no_policy() {
        let mut z = Zone::default();
        let long: Vec<String> = std::iter::once("v=STSv1; id=big1;".to_string())
            .chain((0..5).map(|_| " ".repeat(210)))
            .collect();
        z.add(
            "_mta-sts.big.test",
            RData::TXT(hickory_proto::rr::rdata::TXT::new(long)),
        )
        .add("_mta-sts.small.test", txt("v=STSv1; id=small1;"));
        let dns = serve(z).await;
        let sts = MtaSts::new(
            dns,
            Arc::new(RootCertStore::empty()),
            1,
            Duration::from_secs(2),
        );
        assert_eq!(sts.txt("small.test").await.as_deref(), Some("small1"));
        assert_eq!(sts.txt("big.test").await, None);
    }

    #[test]
    fn parses_the_rfc_example() {
        let p = Policy::parse(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
        )
        .expect("parse");
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, Duration::from_secs(604_800));
        assert!(p.mx_matches("mail.example.com"));
        assert!(p.mx_matches("MAIL.example.com."));
        assert!(p.mx_matches("mx1.example.net"));
        // One label only, not the bare domain, not two labels.
        assert!(!p.mx_matches("example.net"));
        assert!(!p.mx_matches("a.b.example.net"));
        assert!(!p.mx_matches("evil-mail.example.com"));
    }

    #[test]
    fn refuses_broken_policies() {
        assert!(Policy::parse("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n").is_err());
        assert!(Policy::parse("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n").is_err());
        assert!(Policy::parse("version: STSv1\nmode: enforce\nmax_age: 1\n").is_err());
        assert!(Policy::parse("version: STSv1\nmode: enforce\nmx: a\n").is_err());
        let capped = Policy::parse("version: STSv1\nmode: testing\nmx: a\nmax_age: 99999999999\n")
            .expect("parse");
        assert_eq!(capped.max_age, Duration::from_secs(MAX_AGE_SECS));
        assert!(Policy::parse("version: STSv1\nmode: none\nmax_age: 86400\n").is_ok());
        let many = |n: usize| {
            let mx: String = (0..n).map(|i| format!("mx: mx{i}.example\n")).collect();
            format!("version: STSv1\nmode: enforce\n{mx}max_age: 86400\n")
        };
        assert!(Policy::parse(&many(MAX_MX_PATTERNS)).is_ok());
        assert!(Policy::parse(&many(MAX_MX_PATTERNS + 1)).is_err());
    }

    #[test]
    fn txt_ids() {
        assert_eq!(
            txt_id("v=STSv1; id=20160831085700Z;"),
            Some("20160831085700Z".into())
        );
        assert_eq!(txt_id("v=STSv1;id=abc"), Some("abc".into()));
        assert_eq!(txt_id("v=spf1 -all"), None);
        assert_eq!(txt_id("v=STSv1; id=bad-char;"), None);
    }
}
