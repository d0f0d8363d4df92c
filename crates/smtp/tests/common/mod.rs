//! The SMTP test harness: a real `postern_net::Server` on 127.0.0.1 ephemeral ports
//! serving the `SmtpHandler` (MX, submission, submissions) over a temporary SQLite store,
//! with a fixture directory, and a raw-bytes client that can switch to TLS.
#![allow(dead_code)] // each test binary uses a different subset

use postern_core::store::sqlite::{SqliteBlobStore, SqliteOptions, SqliteStore};
use postern_core::store::{FsBlobStore, LedgerQuery, PrincipalKind, SpecialUse};
use postern_core::{Argon2Settings, Core, CoreSettings};
use postern_net::{BoxStream, Limits, ListenerKind, ListenerSpec, Server, bind_all};
use postern_smtp::verify::{DnsSettings, InboundVerifier};
use postern_smtp::{SmtpHandler, SmtpLimits, SmtpPolicy};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const HOST: &str = "mx.example.com";
pub const PATIENCE: Duration = Duration::from_secs(20);
pub const ALICE_PW: &str = "alice-password-1";
pub const BOB_PW: &str = "bob-password-12";

pub struct Env {
    pub core: Arc<Core>,
    /// The store and blobs under `core`, for the tests' own inspection (protocol code
    /// only ever sees `core`).
    pub store: Arc<dyn postern_core::store::Store>,
    pub blobs: Arc<dyn postern_core::store::BlobStore>,
    pub server: Arc<Server>,
    pub mx: SocketAddr,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
    pub cert: PathBuf,
    pub dir: tempfile::TempDir,
    pub dns: FakeDns,
}

pub fn fast_limits() -> SmtpLimits {
    SmtpLimits::default()
}

/// Loopback plaintext AUTH allowed (tests run on 127.0.0.1), everything else default.
pub fn test_policy() -> SmtpPolicy {
    SmtpPolicy {
        allow_plaintext_auth_on_loopback: true,
        ..Default::default()
    }
}

impl Env {
    pub async fn start() -> Env {
        Env::with(SmtpLimits::default(), test_policy()).await
    }

    pub async fn with(limits: SmtpLimits, policy: SmtpPolicy) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("meta.sqlite"), SqliteOptions::default()).unwrap(),
        );
        // As the server keeps them: small blobs in the database, big ones as files.
        let files = FsBlobStore::open(&dir.path().join("blobs")).unwrap();
        let blobs = SqliteBlobStore::new(store.clone(), files, 128 * 1024);
        let settings = CoreSettings {
            argon2: Argon2Settings {
                memory_kib: 8,
                iterations: 1,
                parallelism: 1,
            },
            ..Default::default()
        };
        let store: Arc<dyn postern_core::store::Store> = store;
        let blobs: Arc<dyn postern_core::store::BlobStore> = Arc::new(blobs);
        let core = Arc::new(Core::new(store.clone(), blobs.clone(), settings).unwrap());
        fixture(&core).await;
        let tls = postern_net::tls::load_or_create(dir.path(), HOST, None, None).unwrap();
        let server = Server::new(Limits::default(), Some(tls.config.clone()));
        // A local DNS server with the TXT records the test sets: no network, no waits.
        let fake_dns = FakeDns::start().await;
        let dns = DnsSettings {
            nameservers: vec![fake_dns.addr],
            timeout: Duration::from_secs(2),
        };
        let verifier = Arc::new(InboundVerifier::new(&dns).unwrap());
        let handler = Arc::new(SmtpHandler::new(
            core.clone(),
            HOST,
            limits,
            policy,
            verifier,
        ));
        let mut addrs = Vec::new();
        for kind in [
            ListenerKind::Smtp,
            ListenerKind::Submission,
            ListenerKind::Submissions,
        ] {
            let spec = ListenerSpec {
                kind,
                addr: "127.0.0.1:0".parse().unwrap(),
            };
            let mut report = bind_all(&[spec]);
            let bound = report.bound.pop().unwrap();
            addrs.push(bound.local_addr);
            server.spawn(bound, handler.clone()).unwrap();
        }
        Env {
            core,
            store,
            blobs,
            server,
            mx: addrs[0],
            submission: addrs[1],
            submissions: addrs[2],
            cert: tls.cert_path.clone(),
            dir,
            dns: fake_dns,
        }
    }

    /// Every message in `address`'s mailbox with this special use, in UID order.
    pub async fn mailbox(&self, address: &str, use_: SpecialUse) -> Vec<Vec<u8>> {
        let a = postern_core::address::parse_address(address).unwrap();
        let p = self.core.find_principal(&a).await.unwrap().unwrap();
        let mb = self.core.special_mailbox(p.id, use_).await.unwrap();
        let (_, entries) = self.store.mailbox_entries(p.id, mb.id).await.unwrap();
        let mut out = Vec::new();
        for e in entries {
            let m = self.store.message(p.id, e.message).await.unwrap().unwrap();
            out.push(self.blobs.get(&m.blob.hash).await.unwrap());
        }
        out
    }

    pub async fn inbox(&self, address: &str) -> Vec<Vec<u8>> {
        self.mailbox(address, SpecialUse::Inbox).await
    }

    /// Messages in every fixture account's INBOX together.
    pub async fn total_messages(&self) -> usize {
        let mut n = 0;
        for a in ACCOUNTS {
            n += self.inbox(a).await.len();
        }
        n
    }

    /// Ledger entries with this action.
    pub async fn ledger(&self, action: &str) -> Vec<postern_core::store::LedgerEntry> {
        let q = LedgerQuery {
            limit: 100_000,
            ..Default::default()
        };
        self.store
            .ledger(&q)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.record.action == action)
            .collect()
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.mx).await
    }

    /// A submission client (port 587, plaintext: loopback AUTH is allowed by
    /// [`test_policy`]), authenticated as alice.
    pub async fn alice(&self) -> Client {
        let mut c = Client::connect(self.submission).await;
        c.ok("EHLO client.example").await;
        c.expect(
            "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXBhc3N3b3JkLTE=",
            235,
        )
        .await;
        c
    }
}

/// Accounts with mailboxes.
pub const ACCOUNTS: &[&str] = &[
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "full@example.com",
    "erin@catch.example",
];

async fn fixture(core: &Core) {
    core.set_admin_token("smtp-test-admin-token-0123456789");
    let admin = core
        .admin_session(
            "smtp-test-admin-token-0123456789",
            "cli:test",
            Default::default(),
        )
        .unwrap();
    for d in ["example.com", "catch.example"] {
        core.domain_add(&admin, d).await.unwrap();
    }
    for (a, kind, pw, quota) in [
        (
            "alice@example.com",
            PrincipalKind::Individual,
            Some(ALICE_PW),
            None,
        ),
        (
            "bob@example.com",
            PrincipalKind::Individual,
            Some(BOB_PW),
            None,
        ),
        (
            "carol@example.com",
            PrincipalKind::Individual,
            None,
            Some(20_000u64),
        ),
        (
            "full@example.com",
            PrincipalKind::Individual,
            None,
            Some(1u64),
        ),
        ("erin@catch.example", PrincipalKind::Individual, None, None),
        ("team@example.com", PrincipalKind::Group, None, None),
    ] {
        core.account_add(&admin, a, kind, None, pw, quota)
            .await
            .unwrap();
    }
    for m in ["alice@example.com", "bob@example.com", "info@example.com"] {
        core.group_member_add(&admin, "team@example.com", m)
            .await
            .unwrap();
    }
    for (alias, target) in [
        ("info@example.com", "alice@example.com"),
        ("fwd@example.com", "someone@external.example"),
        ("both@example.com", "bob@example.com"),
        ("both@example.com", "partner@external.example"),
        ("*@catch.example", "bob@example.com"),
        ("postmaster@example.com", "alice@example.com"),
    ] {
        core.alias_add(&admin, alias, target).await.unwrap();
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// A raw SMTP client: bytes in, whole (multi-line) replies out.
pub struct Client {
    s: Option<BoxStream>,
    buf: Vec<u8>,
}

pub fn tls_connector(cert: &std::path::Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut c = Client {
            s: Some(Box::new(tcp)),
            buf: Vec::new(),
        };
        let r = c.reply().await;
        assert_eq!(r.code, 220, "greeting {r:?}");
        c
    }

    /// Implicit TLS (port 465).
    pub async fn connect_tls(addr: SocketAddr, cert: &std::path::Path) -> Client {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = tls_connector(cert).connect(name, tcp).await.unwrap();
        let mut c = Client {
            s: Some(Box::new(tls)),
            buf: Vec::new(),
        };
        let r = c.reply().await;
        assert_eq!(r.code, 220, "greeting {r:?}");
        c
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let s = self.s.as_mut().unwrap();
        s.write_all(bytes).await.unwrap();
        s.flush().await.unwrap();
    }

    /// Writes, giving up after `d` (when the server stopped reading); true when done.
    pub async fn write_within(&mut self, bytes: &[u8], d: Duration) -> bool {
        let s = self.s.as_mut().unwrap();
        matches!(
            tokio::time::timeout(d, s.write_all(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// Sends without failing if the server already closed.
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        let s = self.s.as_mut().unwrap();
        s.write_all(bytes).await.is_ok() && s.flush().await.is_ok()
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&l).into_owned());
            }
            let mut chunk = [0u8; 4096];
            let s = self.s.as_mut().unwrap();
            let n = tokio::time::timeout(PATIENCE, s.read(&mut chunk))
                .await
                .expect("timed out waiting for a reply")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// One complete reply; code 0 when the connection closed first.
    pub async fn reply(&mut self) -> Reply {
        let mut text = String::new();
        loop {
            let Some(l) = self.line().await else {
                return Reply { code: 0, text };
            };
            assert!(l.ends_with("\r\n"), "reply line without CRLF: {l:?}");
            text.push_str(&l);
            let b = l.as_bytes();
            assert!(
                b.len() >= 5 && b[..3].iter().all(u8::is_ascii_digit),
                "bad reply line {l:?}"
            );
            if b[3] == b' ' {
                return Reply {
                    code: l[..3].parse().unwrap(),
                    text,
                };
            }
            assert_eq!(b[3], b'-', "bad reply line {l:?}");
        }
    }

    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Sends `line` and checks the reply code.
    pub async fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line).await;
        assert_eq!(r.code, code, "{line:?} got {:?}", r.text);
        r
    }

    pub async fn ok(&mut self, line: &str) -> Reply {
        let r = self.cmd(line).await;
        assert!((200..400).contains(&r.code), "{line:?} got {:?}", r.text);
        r
    }

    /// STARTTLS and the handshake; asserts nothing was left unread in plaintext.
    pub async fn starttls(&mut self, cert: &std::path::Path) {
        self.expect("STARTTLS", 220).await;
        self.finish_starttls(cert).await;
    }

    /// The handshake after a 220 to STARTTLS; asserts no plaintext followed the 220.
    pub async fn finish_starttls(&mut self, cert: &std::path::Path) {
        assert!(
            self.buf.is_empty(),
            "plaintext after 220: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let plain = self.s.take().unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = tls_connector(cert).connect(name, plain).await.unwrap();
        self.s = Some(Box::new(tls));
    }

    /// Whatever arrives until the server closes (checks that it does close).
    pub async fn until_closed(&mut self) -> String {
        let mut out = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
        loop {
            let mut chunk = [0u8; 4096];
            let s = self.s.as_mut().unwrap();
            match tokio::time::timeout(PATIENCE, s.read(&mut chunk))
                .await
                .expect("server did not close")
            {
                Ok(0) | Err(_) => return out,
                Ok(n) => out.push_str(&String::from_utf8_lossy(&chunk[..n])),
            }
        }
    }

    /// A whole transaction; returns the final reply.
    pub async fn send_mail(&mut self, from: &str, rcpts: &[&str], body: &[u8]) -> Reply {
        self.expect(&format!("MAIL FROM:<{from}>"), 250).await;
        for r in rcpts {
            self.expect(&format!("RCPT TO:<{r}>"), 250).await;
        }
        self.expect("DATA", 354).await;
        self.send(body).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}

/// A small well-formed message (CRLF line ends, ends with CRLF).
pub fn message(from: &str, to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@test>\r\n\r\nHello {to}.\r\n"
    )
    .into_bytes()
}

/// The stored message with the trace fields we prepend (Return-Path, Received,
/// Authentication-Results) taken off the top.
pub fn without_trace(stored: &[u8]) -> Vec<u8> {
    let fields = postern_core::delivery::header_fields(stored);
    let mut start = 0;
    for f in fields {
        let n = f.name.to_ascii_lowercase();
        if n == b"return-path" || n == b"received" || n == b"authentication-results" {
            start = f.end;
        } else {
            break;
        }
    }
    stored[start..].to_vec()
}

/// A DNS server on 127.0.0.1 (UDP) answering TXT questions from a map; every other
/// name is NXDOMAIN, every other type of a known name is NODATA. Enough for SPF and
/// DMARC records (RFC 1035 §4.1 message format).
#[derive(Clone)]
pub struct FakeDns {
    pub addr: SocketAddr,
    txt: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>>,
}

impl FakeDns {
    pub async fn start() -> FakeDns {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let txt: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>> =
            Default::default();
        let map = txt.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let resp = answer(&buf[..n], &map.lock().unwrap());
                if let Some(resp) = resp {
                    let _ = sock.send_to(&resp, peer).await;
                }
            }
        });
        FakeDns { addr, txt }
    }

    /// Adds a TXT record (`name` without the trailing dot).
    pub fn txt(&self, name: &str, value: &str) {
        self.txt
            .lock()
            .unwrap()
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.to_string());
    }
}

fn answer(q: &[u8], txt: &std::collections::HashMap<String, Vec<String>>) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    let name = labels.join(".");
    let records = txt.get(&name);
    let answers: Vec<&String> = match (records, qtype) {
        (Some(r), 16) => r.iter().collect(),
        _ => Vec::new(),
    };
    let rcode = if records.is_some() { 0 } else { 3 };
    let mut out = Vec::new();
    out.extend_from_slice(&q[0..2]);
    // QR, opcode 0, AA, RD copied; RA; rcode.
    out.push(0x84 | (q[2] & 0x01));
    out.push(0x80 | rcode);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(q.get(12..question_end)?);
    for a in answers {
        let mut rdata = Vec::new();
        for chunk in a.as_bytes().chunks(255) {
            rdata.push(chunk.len() as u8);
            rdata.extend_from_slice(chunk);
        }
        out.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60]);
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}
