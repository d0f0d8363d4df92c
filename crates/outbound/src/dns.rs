//! A stub DNS client for outbound routing: MX, A/AAAA, TXT and TLSA questions to the
//! configured recursive resolvers (or resolv.conf's), over UDP with TCP when the answer is
//! truncated. Messages are encoded and decoded by `hickory-proto`; this module is the
//! transport and the checks on what comes back.
//!
//! It exists beside the resolver `mail-auth` uses because DANE (RFC 7672 §2.1) needs the
//! AD bit of each answer: TLSA records count only when the validating resolver we trust
//! says the answer is authentic (RFC 6840 §5.7 — we set AD in the query to ask for it).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// EDNS payload size we advertise (the DNS flag day 2020 value: avoids fragmentation).
const EDNS_PAYLOAD: u16 = 1232;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("DNS query for {0} timed out")]
    Timeout(String),
    #[error("DNS server failure for {0}")]
    ServFail(String),
    #[error("DNS: {0}")]
    Other(String),
}

/// The part of an answer routing cares about.
#[derive(Debug, Clone)]
pub struct Answer {
    /// NXDOMAIN: the name does not exist.
    pub nx_domain: bool,
    /// The resolver vouches for the answer (DNSSEC-validated, AD bit).
    pub authentic: bool,
    pub records: Vec<Record>,
}

impl Answer {
    pub fn data(&self) -> impl Iterator<Item = &RData> {
        self.records.iter().map(|r| &r.data)
    }
}

#[derive(Debug, Clone)]
pub struct DnsClient {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: usize,
    /// Believe the AD bit of every server, not only of loopback ones.
    trust_remote_ad: bool,
}

/// Nameservers from resolv.conf (`nameserver ADDR` lines), port 53.
pub fn system_nameservers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

impl DnsClient {
    /// `servers` empty = resolv.conf's. `timeout` is per attempt (zero: 5 s).
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> DnsClient {
        let servers = if servers.is_empty() {
            system_nameservers()
        } else {
            servers
        };
        DnsClient {
            servers,
            timeout: if timeout.is_zero() {
                Duration::from_secs(5)
            } else {
                timeout
            },
            attempts: 2,
            trust_remote_ad: false,
        }
    }

    /// Believes the AD bit of non-loopback resolvers too (`[dns] trust_ad`): only for a
    /// validating resolver reached over a path nobody can tamper with.
    pub fn trusting_remote_ad(mut self, trust: bool) -> DnsClient {
        self.trust_remote_ad = trust;
        self
    }

    /// RFC 6840 §5.7 / RFC 7672 §2.1: the AD bit is only as good as the path to the
    /// resolver that set it; a loopback resolver (unbound, systemd-resolved) is on it.
    fn trust_ad(&self, server: SocketAddr) -> bool {
        self.trust_remote_ad || server.ip().is_loopback()
    }

    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Asks each server in turn until one answers with something other than SERVFAIL.
    pub async fn query(&self, name: &str, rtype: RecordType) -> Result<Answer, DnsError> {
        let qname =
            Name::from_ascii(name).map_err(|e| DnsError::Other(format!("bad name {name}: {e}")))?;
        let mut last = DnsError::Other(format!("no DNS server configured for {name}"));
        for _ in 0..self.attempts {
            for server in &self.servers {
                match self.ask(*server, &qname, rtype).await {
                    Ok(a) => return Ok(a),
                    Err(e) => last = e,
                }
            }
        }
        Err(last)
    }

    async fn ask(
        &self,
        server: SocketAddr,
        qname: &Name,
        rtype: RecordType,
    ) -> Result<Answer, DnsError> {
        let id: u16 = rand::random();
        let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        msg.metadata.authentic_data = true;
        msg.add_query(Query::query(qname.clone(), rtype));
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        msg.set_edns(edns);
        let bytes = msg
            .to_vec()
            .map_err(|e| DnsError::Other(format!("encoding the query: {e}")))?;
        let name = qname.to_ascii();

        // A datagram that is not the answer to this question (stray, late, spoofed) is
        // skipped; the wait goes on until the deadline.
        let mut reply = tokio::time::timeout(self.timeout, async {
            let sock = udp_socket(server).await?;
            sock.send(&bytes)
                .await
                .map_err(|e| DnsError::Other(format!("UDP to {server}: {e}")))?;
            let mut buf = vec![0u8; 4096];
            loop {
                let n = sock
                    .recv(&mut buf)
                    .await
                    .map_err(|e| DnsError::Other(format!("UDP from {server}: {e}")))?;
                if let Ok(m) = check(&buf[..n], id, qname, rtype, &name) {
                    break Ok::<_, DnsError>(m);
                }
            }
        })
        .await
        .map_err(|_| DnsError::Timeout(name.clone()))??;
        if reply.metadata.truncation {
            let answer = tokio::time::timeout(self.timeout, tcp(server, &bytes))
                .await
                .map_err(|_| DnsError::Timeout(name.clone()))??;
            reply = check(&answer, id, qname, rtype, &name)?;
        }
        match reply.metadata.response_code {
            ResponseCode::NoError => Ok(Answer {
                nx_domain: false,
                authentic: reply.metadata.authentic_data && self.trust_ad(server),
                records: reply
                    .answers
                    .into_iter()
                    .filter(|r| r.record_type() == rtype)
                    .collect(),
            }),
            ResponseCode::NXDomain => Ok(Answer {
                nx_domain: true,
                authentic: reply.metadata.authentic_data && self.trust_ad(server),
                records: Vec::new(),
            }),
            ResponseCode::ServFail => Err(DnsError::ServFail(name)),
            other => Err(DnsError::Other(format!("{name}: {other}"))),
        }
    }
}

/// The reply must be a response to our question with our id (a spoofed or stray datagram
/// is not an answer).
fn check(
    bytes: &[u8],
    id: u16,
    qname: &Name,
    rtype: RecordType,
    name: &str,
) -> Result<Message, DnsError> {
    let reply = Message::from_vec(bytes)
        .map_err(|e| DnsError::Other(format!("{name}: bad answer: {e}")))?;
    let ours = reply.metadata.id == id
        && reply.metadata.message_type == MessageType::Response
        && reply
            .queries
            .first()
            .is_some_and(|q| q.name().eq_case(qname) && q.query_type() == rtype);
    if !ours {
        return Err(DnsError::Other(format!(
            "{name}: answer does not match the question"
        )));
    }
    Ok(reply)
}

async fn udp_socket(server: SocketAddr) -> Result<UdpSocket, DnsError> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let io = |e: std::io::Error| DnsError::Other(format!("UDP to {server}: {e}"));
    let sock = UdpSocket::bind(bind).await.map_err(io)?;
    sock.connect(server).await.map_err(io)?;
    Ok(sock)
}

async fn tcp(server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, DnsError> {
    let io = |e: std::io::Error| DnsError::Other(format!("TCP to {server}: {e}"));
    let mut s = TcpStream::connect(server).await.map_err(io)?;
    let len = u16::try_from(query.len()).map_err(|_| DnsError::Other("query too long".into()))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).await.map_err(io)?;
    // A u16 length: at most 64 KiB by construction.
    let n = usize::from(s.read_u16().await.map_err(io)?);
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await.map_err(io)?;
    Ok(buf)
}
