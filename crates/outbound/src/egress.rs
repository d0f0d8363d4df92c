//! The one HTTPS client of the outbound side (DESIGN §2 invariant 9): MTA-STS policy
//! fetches (RFC 8461 §3.3) and TLS reports posted to `https:` addresses (RFC 8460 §5.2).
//! Names are resolved through our resolver and every address is checked *after*
//! resolution: loopback, private, link-local, shared, documentation and metadata ranges
//! are refused (unless `[outbound] allow_private_destinations`, for tests and internal
//! setups). The certificate must be valid for the host name under the trust anchors
//! (PKIX), redirects are never followed, and the answer's size and the whole exchange's
//! time are bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::dns::DnsClient;
use crate::route;

/// What went wrong, by the stage it went wrong in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("{0}")]
    Resolve(String),
    /// Every address of the host is one we never connect to.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Connect(String),
    /// The TLS handshake failed (certificate not valid for the name, untrusted, …).
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Http(String),
    /// The answer was bigger than allowed.
    #[error("{0}")]
    TooBig(String),
    #[error("{0}")]
    Timeout(String),
}

/// An answer: status, Content-Type and the (bounded) body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct HttpsClient {
    dns: DnsClient,
    roots: Arc<RootCertStore>,
    allow_private: bool,
    timeout: Duration,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("allow_private", &self.allow_private)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpsClient {
    /// `timeout` bounds one whole request (every address tried, the answer read).
    pub fn new(
        dns: DnsClient,
        roots: Arc<RootCertStore>,
        allow_private: bool,
        timeout: Duration,
    ) -> HttpsClient {
        HttpsClient {
            dns,
            roots,
            allow_private,
            timeout,
        }
    }

    pub fn allowing_private(mut self, allow: bool) -> HttpsClient {
        self.allow_private = allow;
        self
    }

    /// GET (no `body`) or POST (`body` with its content type) `path` on `host:port`,
    /// reading at most `max_answer` bytes of the answer.
    pub async fn request(
        &self,
        host: &str,
        port: u16,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        max_answer: usize,
    ) -> Result<Response, EgressError> {
        let body = body.map(|(t, b)| (t.to_string(), Bytes::from(b)));
        tokio::time::timeout(
            self.timeout,
            self.request_inner(host, port, path, body, max_answer),
        )
        .await
        .map_err(|_| EgressError::Timeout(format!("{host}: timed out")))?
    }

    async fn request_inner(
        &self,
        host: &str,
        port: u16,
        path: &str,
        body: Option<(String, Bytes)>,
        max_answer: usize,
    ) -> Result<Response, EgressError> {
        let mut addrs = route::addresses(&self.dns, host, false)
            .await
            .map_err(|e| EgressError::Resolve(format!("{host}: {e}")))?;
        if !self.allow_private {
            addrs.retain(|ip| crate::runner::is_public(*ip));
            if addrs.is_empty() {
                return Err(EgressError::Refused(format!(
                    "{host}: every address is loopback, private, link-local or otherwise not public"
                )));
            }
        }
        let mut last = EgressError::Resolve(format!("{host}: no address"));
        for ip in addrs {
            match self
                .one(
                    host,
                    SocketAddr::new(ip, port),
                    path,
                    body.clone(),
                    max_answer,
                )
                .await
            {
                Ok(r) => return Ok(r),
                // A certificate problem is the host's, not the address's.
                Err(e @ EgressError::Tls(_)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn one(
        &self,
        host: &str,
        addr: SocketAddr,
        path: &str,
        body: Option<(String, Bytes)>,
        max_answer: usize,
    ) -> Result<Response, EgressError> {
        let http = |e: String| EgressError::Http(format!("{host}: HTTP: {e}"));
        let config = crate::tls::TlsPolicy::Pkix {
            roots: self.roots.clone(),
        }
        .client_config()
        .map_err(|e| EgressError::Tls(e.to_string()))?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| EgressError::Resolve(format!("{host}: {e}")))?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| EgressError::Connect(format!("{host} ({addr}): {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| EgressError::Tls(format!("{host}: TLS: {e}")))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| http(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let authority = match addr.port() {
            443 => host.to_string(),
            port => format!("{host}:{port}"),
        };
        let builder = hyper::Request::builder()
            .uri(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, "postern");
        let request = match body {
            None => builder
                .method(hyper::Method::GET)
                .body(Full::new(Bytes::new())),
            Some((content_type, bytes)) => builder
                .method(hyper::Method::POST)
                .header(hyper::header::CONTENT_TYPE, content_type)
                .body(Full::new(bytes)),
        }
        .map_err(|e| http(e.to_string()))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| http(e.to_string()))?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = Limited::new(response.into_body(), max_answer)
                .collect()
                .await
                .map_err(|e| EgressError::TooBig(format!("{host}: reading the answer: {e}")))?
                .to_bytes();
            Ok(Response {
                status,
                content_type,
                body,
            })
        }
        .await;
        driver.abort();
        result
    }
}

/// `https://host[:port]/path` → (host, port, path). No user information, no fragment;
/// the host a DNS name.
pub fn parse_https_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') || path.contains('#') || path.bytes().any(|b| b <= b' ') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 443),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| (host, port, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdns::{Zone, a, serve};

    #[test]
    fn urls() {
        assert_eq!(
            parse_https_url("https://Reports.Example.com/v1/tlsrpt"),
            Some(("reports.example.com".into(), 443, "/v1/tlsrpt".into()))
        );
        assert_eq!(
            parse_https_url("https://r.example:8443"),
            Some(("r.example".into(), 8443, "/".into()))
        );
        for bad in [
            "http://r.example/",
            "https://user@r.example/",
            "https://[::1]/",
            "https://r.example:x/",
            "https:///path",
            "https://r.example/a b",
        ] {
            assert_eq!(parse_https_url(bad), None, "{bad}");
        }
    }

    /// A name that resolves to loopback is refused after resolution (no connection is
    /// even tried: nothing listens there).
    #[tokio::test]
    async fn private_addresses_are_refused_after_resolution() {
        let mut z = Zone::default();
        z.add("inside.test", a([127, 0, 0, 1]))
            .add("meta.test", a([169, 254, 169, 254]));
        let dns = serve(z).await;
        let client = HttpsClient::new(
            dns,
            Arc::new(RootCertStore::empty()),
            false,
            Duration::from_secs(5),
        );
        for host in ["inside.test", "meta.test"] {
            let e = client
                .request(host, 443, "/", None, 1024)
                .await
                .unwrap_err();
            assert!(matches!(e, EgressError::Refused(_)), "{host}: {e:?}");
        }
    }
}
