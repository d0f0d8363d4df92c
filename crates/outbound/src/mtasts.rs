//! SMTP MTA Strict Transport Security (RFC 8461): a destination that publishes a policy in
//! `enforce` mode gets mail only through the MX hosts the policy names, over TLS with a
//! certificate valid for the MX host's name (PKIX). The policy is discovered through the
//! `_mta-sts` TXT record, fetched over HTTPS from `mta-sts.<domain>` (certificate checked,
//! no redirects, bounded size and time) and cached for its `max_age`, re-fetched when the
//! TXT record's `id` changes.
//!
//! `testing` mode policies are fetched and cached but change nothing (no TLSRPT reports
//! are sent yet); `none` removes a cached policy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hickory_proto::rr::{RData, RecordType};
use http_body_util::{BodyExt as _, Empty, Limited};
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::dns::DnsClient;
use crate::route;

/// Largest policy body accepted (RFC 8461 §3.2: 64 KB is plenty for a list of MX names).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
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
                "mx" => mx.push(v.to_ascii_lowercase()),
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

struct Cached {
    id: String,
    policy: Policy,
    expires: Instant,
}

/// Policies by domain, shared by the runner's deliveries.
pub struct MtaSts {
    dns: DnsClient,
    roots: Arc<RootCertStore>,
    /// The HTTPS port (443; tests use another).
    port: u16,
    timeout: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for MtaSts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtaSts")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl MtaSts {
    pub fn new(dns: DnsClient, roots: Arc<RootCertStore>, port: u16, timeout: Duration) -> MtaSts {
        MtaSts {
            dns,
            roots,
            port,
            timeout,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, domain: &str) -> Option<(String, Policy)> {
        let cache = self.cache.lock().ok()?;
        let c = cache.get(domain)?;
        (c.expires > Instant::now()).then(|| (c.id.clone(), c.policy.clone()))
    }

    /// The policy that applies to `domain` now, or `None`. A fetch that fails keeps a
    /// cached, unexpired policy (RFC 8461 §5.1: an attacker who blocks the fetch must not
    /// turn the policy off).
    pub async fn policy(&self, domain: &str) -> Option<Policy> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let cached = self.cached(&domain);
        let name = format!("_mta-sts.{domain}.");
        // RFC 8461 §3.1: exactly one `v=STSv1` record, or there is no policy.
        let id = match self.dns.query(&name, RecordType::TXT).await {
            Ok(a) => {
                let ids: Vec<Option<String>> = a
                    .data()
                    .filter_map(|d| match d {
                        RData::TXT(t) => {
                            let s: String = t
                                .txt_data
                                .iter()
                                .map(|p| String::from_utf8_lossy(p).into_owned())
                                .collect();
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
            Err(_) => None,
        };
        let Some(id) = id else {
            return cached.map(|(_, p)| p);
        };
        if let Some((cid, p)) = &cached {
            if *cid == id {
                return Some(p.clone());
            }
        }
        match self.fetch(&domain).await {
            Ok(policy) => {
                if let Ok(mut cache) = self.cache.lock() {
                    if policy.mode == Mode::None {
                        cache.remove(&domain);
                    } else {
                        cache.insert(
                            domain.clone(),
                            Cached {
                                id,
                                policy: policy.clone(),
                                expires: Instant::now() + policy.max_age,
                            },
                        );
                    }
                }
                Some(policy)
            }
            Err(e) => {
                tracing::debug!(%domain, error = %e, "MTA-STS policy fetch failed");
                cached.map(|(_, p)| p)
            }
        }
    }

    /// GET https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.3).
    pub async fn fetch(&self, domain: &str) -> Result<Policy, String> {
        let host = format!("mta-sts.{domain}");
        tokio::time::timeout(self.timeout, self.fetch_inner(&host))
            .await
            .map_err(|_| format!("fetching the policy from {host}: timed out"))?
    }

    async fn fetch_inner(&self, host: &str) -> Result<Policy, String> {
        let addrs = route::addresses(&self.dns, host, false)
            .await
            .map_err(|e| format!("{host}: {e}"))?;
        let mut last = format!("{host}: no address");
        for ip in addrs {
            match self.get(host, SocketAddr::new(ip, self.port)).await {
                Ok(p) => return Ok(p),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn get(&self, host: &str, addr: SocketAddr) -> Result<Policy, String> {
        // The same PKIX verification as an MTA-STS-enforced MX gets.
        let config = crate::tls::TlsPolicy::Pkix {
            roots: self.roots.clone(),
        }
        .client_config()
        .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{host} ({addr}): {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{host}: TLS: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| format!("{host}: HTTP: {e}"))?;
        let driver = tokio::spawn(conn);
        let request = hyper::Request::get("/.well-known/mta-sts.txt")
            .header(hyper::header::HOST, host)
            .header(hyper::header::USER_AGENT, "postern")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{host}: HTTP: {e}"))?;
        // RFC 8461 §3.3: only 200 counts; redirects are not followed.
        if response.status() != hyper::StatusCode::OK {
            driver.abort();
            return Err(format!("{host}: HTTP status {}", response.status()));
        }
        let text_plain = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/plain"));
        if !text_plain {
            driver.abort();
            return Err(format!("{host}: the policy is not text/plain"));
        }
        let body = Limited::new(response.into_body(), MAX_POLICY_BYTES)
            .collect()
            .await
            .map_err(|e| format!("{host}: reading the policy: {e}"))?
            .to_bytes();
        driver.abort();
        let text =
            std::str::from_utf8(&body).map_err(|_| format!("{host}: policy is not UTF-8"))?;
        Policy::parse(text).map_err(|e| format!("{host}: {e}"))
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
            MtaSts::new(dns, roots, port, Duration::from_secs(5)),
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
