//! A test DNS server on loopback (UDP) answering from a table, for the routing, DANE and
//! MTA-STS tests. Unknown names get NXDOMAIN; known names without the asked type get an
//! empty NOERROR answer; `authentic` sets the AD bit on every answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

use crate::dns::DnsClient;

#[derive(Default, Clone)]
pub struct Zone {
    pub records: HashMap<String, Vec<RData>>,
    pub authentic: bool,
}

impl Zone {
    pub fn add(&mut self, name: &str, data: RData) -> &mut Self {
        self.records
            .entry(name.trim_end_matches('.').to_ascii_lowercase())
            .or_default()
            .push(data);
        self
    }
}

/// Serves `zone` until the test's runtime ends; returns a client that asks it.
pub async fn serve(zone: Zone) -> DnsClient {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = sock.local_addr().expect("addr");
    let zone = Arc::new(zone);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(query) = q.queries.first().cloned() else {
                continue;
            };
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.metadata.recursion_desired = true;
            r.metadata.recursion_available = true;
            r.metadata.authentic_data = zone.authentic;
            r.add_query(query.clone());
            let key = query
                .name()
                .to_ascii()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            match zone.records.get(&key) {
                None => r.metadata.response_code = ResponseCode::NXDomain,
                Some(list) => {
                    for d in list
                        .iter()
                        .filter(|d| d.record_type() == query.query_type())
                    {
                        let name = Name::from_ascii(&key).expect("name");
                        r.add_answer(Record::from_rdata(name, 60, d.clone()));
                    }
                }
            }
            if let Ok(bytes) = r.to_vec() {
                let _ = sock.send_to(&bytes, from).await;
            }
        }
    });
    DnsClient::new(vec![addr], Duration::from_secs(2))
}

pub fn a(ip: [u8; 4]) -> RData {
    RData::A(hickory_proto::rr::rdata::A(ip.into()))
}

pub fn mx(pref: u16, host: &str) -> RData {
    RData::MX(hickory_proto::rr::rdata::MX::new(
        pref,
        Name::from_ascii(host).expect("name"),
    ))
}

pub fn txt(s: &str) -> RData {
    RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![s.to_string()]))
}

pub fn tlsa(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> RData {
    RData::TLSA(hickory_proto::rr::rdata::TLSA::new(
        usage.into(),
        selector.into(),
        matching.into(),
        data,
    ))
}

#[allow(dead_code)]
pub fn record_type(d: &RData) -> RecordType {
    d.record_type()
}
