//! Where mail for a domain goes: MX hosts in preference order (RFC 5321 §5.1), the implicit
//! MX when there is none, null MX (RFC 7505), address literals, and the TLSA records of a
//! host for DANE (RFC 7672 §2.2).

use std::net::IpAddr;

use hickory_proto::rr::{RData, RecordType};
use rand::seq::SliceRandom as _;

use crate::dns::{DnsClient, DnsError};
use crate::tls::Tlsa;

/// Most MX hosts tried per delivery attempt (RFC 5321 §5.1 leaves the number to us).
pub const MAX_MX_HOSTS: usize = 10;
/// Most addresses tried per host.
pub const MAX_ADDRS_PER_HOST: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// The host name without the trailing dot (the address for a literal).
    pub name: String,
    pub preference: u16,
    pub addrs: Vec<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct Destination {
    pub hosts: Vec<MxHost>,
    /// The MX answer was DNSSEC-validated (DANE applies only then, RFC 7672 §2.2.1).
    pub mx_authentic: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the domain publishes a null MX: it accepts no mail (RFC 7505)")]
    NullMx,
    #[error("the domain does not exist")]
    NoSuchDomain,
    #[error("no address for any mail host of the domain")]
    NoAddress,
    #[error("{0}")]
    Temporary(String),
}

impl RouteError {
    /// RFC 3463 / RFC 7505 §4 status for the DSN.
    pub fn status(&self) -> &'static str {
        match self {
            RouteError::NullMx => "5.1.10",
            RouteError::NoSuchDomain => "5.1.2",
            RouteError::NoAddress => "4.4.4",
            RouteError::Temporary(_) => "4.4.3",
        }
    }

    pub fn permanent(&self) -> bool {
        matches!(self, RouteError::NullMx | RouteError::NoSuchDomain)
    }
}

impl From<DnsError> for RouteError {
    fn from(e: DnsError) -> Self {
        RouteError::Temporary(e.to_string())
    }
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
fn address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
    {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// A and AAAA of a host (AAAA first when `prefer_ipv6`).
pub async fn addresses(
    dns: &DnsClient,
    host: &str,
    prefer_ipv6: bool,
) -> Result<Vec<IpAddr>, RouteError> {
    let name = fqdn(host);
    let (a, aaaa) = tokio::join!(
        dns.query(&name, RecordType::A),
        dns.query(&name, RecordType::AAAA)
    );
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let mut errors = Vec::new();
    match a {
        Ok(ans) => v4.extend(ans.data().filter_map(|d| match d {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })),
        Err(e) => errors.push(e),
    }
    match aaaa {
        Ok(ans) => v6.extend(ans.data().filter_map(|d| match d {
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })),
        Err(e) => errors.push(e),
    }
    let mut all = if prefer_ipv6 {
        [v6, v4].concat()
    } else {
        [v4, v6].concat()
    };
    if all.is_empty() {
        if let Some(e) = errors.into_iter().next() {
            return Err(e.into());
        }
        return Err(RouteError::NoAddress);
    }
    all.truncate(MAX_ADDRS_PER_HOST);
    Ok(all)
}

/// The mail hosts of `domain` in the order to try them.
pub async fn destination(
    dns: &DnsClient,
    domain: &str,
    prefer_ipv6: bool,
) -> Result<Destination, RouteError> {
    if let Some(ip) = address_literal(domain) {
        return Ok(Destination {
            hosts: vec![MxHost {
                name: ip.to_string(),
                preference: 0,
                addrs: vec![ip],
            }],
            mx_authentic: false,
        });
    }
    let answer = dns.query(&fqdn(domain), RecordType::MX).await?;
    if answer.nx_domain {
        return Err(RouteError::NoSuchDomain);
    }
    let mut mx: Vec<(u16, String)> = answer
        .data()
        .filter_map(|d| match d {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
            _ => None,
        })
        .collect();
    // RFC 7505 §3: a single MX of "." with preference 0 says "no mail here".
    let is_null = |name: &str| name == "." || name.is_empty();
    if !mx.is_empty() && mx.iter().all(|(_, n)| is_null(n)) {
        return Err(RouteError::NullMx);
    }
    mx.retain(|(_, n)| !is_null(n));
    if mx.is_empty() {
        // RFC 5321 §5.1: no MX → the domain itself is the host, preference 0.
        let addrs = addresses(dns, domain, prefer_ipv6).await?;
        return Ok(Destination {
            hosts: vec![MxHost {
                name: domain.trim_end_matches('.').to_string(),
                preference: 0,
                addrs,
            }],
            mx_authentic: answer.authentic,
        });
    }
    // Lowest preference first; equal preferences in random order (RFC 5321 §5.1).
    mx.shuffle(&mut rand::thread_rng());
    mx.sort_by_key(|(p, _)| *p);
    mx.dedup_by(|a, b| a.1.eq_ignore_ascii_case(&b.1));
    mx.truncate(MAX_MX_HOSTS);
    let mut hosts = Vec::new();
    let mut last_error = None;
    for (preference, name) in mx {
        let host = name.trim_end_matches('.').to_string();
        match addresses(dns, &host, prefer_ipv6).await {
            Ok(addrs) => hosts.push(MxHost {
                name: host,
                preference,
                addrs,
            }),
            Err(e) => last_error = Some(e),
        }
    }
    if hosts.is_empty() {
        return Err(last_error.unwrap_or(RouteError::NoAddress));
    }
    Ok(Destination {
        hosts,
        mx_authentic: answer.authentic,
    })
}

/// What DANE says for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dane {
    /// No authentic TLSA records: DANE does not apply.
    None,
    /// Authentic TLSA records, at least one usable: authenticate with them.
    Records(Vec<Tlsa>),
    /// Authentic TLSA records, none usable: TLS is required but not authenticated
    /// (RFC 7672 §2.2).
    Unusable,
}

/// TLSA records of `_port._tcp.host` (RFC 7672 §2.2.2). Only an authentic answer counts;
/// a failed lookup of a host in a signed zone is a temporary failure (the host may not be
/// tried without them).
pub async fn dane(dns: &DnsClient, host: &str, port: u16) -> Result<Dane, RouteError> {
    let name = format!("_{port}._tcp.{}", fqdn(host));
    let answer = dns.query(&name, RecordType::TLSA).await?;
    if !answer.authentic || answer.nx_domain {
        return Ok(Dane::None);
    }
    let records: Vec<Tlsa> = answer
        .data()
        .filter_map(|d| match d {
            RData::TLSA(t) => Some(Tlsa {
                usage: u8::from(t.cert_usage),
                selector: u8::from(t.selector),
                matching: u8::from(t.matching),
                data: t.cert_data.clone(),
            }),
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return Ok(Dane::None);
    }
    if records.iter().any(Tlsa::usable) {
        Ok(Dane::Records(records))
    } else {
        Ok(Dane::Unusable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdns::{Zone, a, mx, serve, tlsa, txt};

    #[tokio::test]
    async fn mx_order_implicit_mx_null_mx_and_nxdomain() {
        let mut z = Zone::default();
        z.add("example.test", mx(20, "b.example.test."))
            .add("example.test", mx(10, "a.example.test."))
            .add("a.example.test", a([127, 0, 0, 2]))
            .add("b.example.test", a([127, 0, 0, 3]))
            .add("implicit.test", a([127, 0, 0, 4]))
            .add("nullmx.test", mx(0, "."))
            .add("noaddr.test", mx(10, "ghost.noaddr.test."))
            .add("noaddr.test", txt("v=spf1 -all"));
        let dns = serve(z).await;
        let d = destination(&dns, "example.test", false)
            .await
            .expect("route");
        let names: Vec<_> = d.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["a.example.test", "b.example.test"]);
        assert_eq!(d.hosts[0].addrs, vec![IpAddr::from([127, 0, 0, 2])]);
        assert!(!d.mx_authentic);
        let d = destination(&dns, "implicit.test", false)
            .await
            .expect("implicit");
        assert_eq!(d.hosts[0].name, "implicit.test");
        assert_eq!(
            destination(&dns, "nullmx.test", false).await.unwrap_err(),
            RouteError::NullMx
        );
        let e = destination(&dns, "missing.test", false).await.unwrap_err();
        assert_eq!(e, RouteError::NoSuchDomain);
        assert!(e.permanent());
        let e = destination(&dns, "noaddr.test", false).await.unwrap_err();
        assert!(!e.permanent(), "{e:?}");
        let d = destination(&dns, "[127.0.0.9]", false)
            .await
            .expect("literal");
        assert_eq!(d.hosts[0].addrs, vec![IpAddr::from([127, 0, 0, 9])]);
    }

    #[tokio::test]
    async fn tlsa_counts_only_when_authentic() {
        let mut z = Zone::default();
        z.add("_25._tcp.mx.example.test", tlsa(3, 1, 1, vec![1; 32]))
            .add("_25._tcp.pkix.example.test", tlsa(1, 1, 1, vec![2; 32]));
        let plain = serve(z.clone()).await;
        assert_eq!(
            dane(&plain, "mx.example.test", 25).await.unwrap(),
            Dane::None
        );
        z.authentic = true;
        let signed = serve(z).await;
        match dane(&signed, "mx.example.test", 25).await.unwrap() {
            Dane::Records(r) => assert_eq!(r[0].usage, 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            dane(&signed, "pkix.example.test", 25).await.unwrap(),
            Dane::Unusable
        );
        assert_eq!(
            dane(&signed, "none.example.test", 25).await.unwrap(),
            Dane::None
        );
    }

    #[test]
    fn literals() {
        assert_eq!(
            address_literal("[127.0.0.2]"),
            Some("127.0.0.2".parse().unwrap())
        );
        assert_eq!(address_literal("[IPv6:::1]"), Some("::1".parse().unwrap()));
        assert_eq!(address_literal("[::1]"), None);
        assert_eq!(address_literal("example.com"), None);
        assert_eq!(address_literal("[999.1.1.1]"), None);
    }
}
