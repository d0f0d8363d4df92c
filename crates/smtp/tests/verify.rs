//! Inbound message authentication (src/verify.rs) against a real DNS server.
//!
//! The zone is served on 127.0.0.1:<ephemeral> (UDP and TCP) by `tests/dns_zone.py`
//! (PyPI `dnslib`). Keys are generated here: Ed25519 with ring (through mail-auth's
//! `Ed25519Key::generate_pkcs8`) and RSA-2048 with the `openssl` CLI. Messages are signed
//! with mail-auth's `DkimSigner` / `ArcSealer`, and cross-checked with Python `dkimpy`
//! in both directions. A missing python3, dnslib, dkimpy or openssl fails the tests with
//! the install line; nothing is skipped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults, SpfOutput, SpfResult};
use postern_smtp::verify::{
    DmarcDisposition, DmarcPolicy, DnsSettings, InboundVerifier, MAX_DKIM_SIGNATURES, Verdict,
    VerifyInput,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const HOST: &str = "mx.postern.test";
/// The sender's outbound relay, authorised by the SPF records below.
const GOOD_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
/// Not authorised anywhere.
const BAD_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
/// The mailing list's relay (ARC tests).
const LIST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20));
/// Per-query DNS timeout against the live test server: generous for a loaded CI box.
const DNS_TIMEOUT: Duration = Duration::from_secs(2);
/// Per-query DNS timeout for the tests where the DNS never answers.
const SILENT_DNS_TIMEOUT: Duration = Duration::from_millis(300);
/// How late the slow names of the zone are answered: well under [`SLOW_DNS_TIMEOUT`], so
/// no query times out, but eleven in a row take longer than the verifier's time budget
/// (6 × [`SLOW_DNS_TIMEOUT`]).
const SLOW_ANSWER: Duration = Duration::from_millis(300);
const SLOW_DNS_TIMEOUT: Duration = Duration::from_millis(500);

const DNS_INSTALL: &str = "install the test DNS server's dependency with `pip install dnslib`";
const DKIMPY_INSTALL: &str = "install the cross-check's dependency with `pip install dkimpy`";

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

struct Keys {
    ed_pkcs8: Vec<u8>,
    ed_public: Vec<u8>,
    rsa_pkcs8: Vec<u8>,
    rsa_spki: Vec<u8>,
    /// PKCS#1 PEM ("RSA PRIVATE KEY"), the form dkimpy signs with.
    rsa_pkcs1_pem: Vec<u8>,
}

fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `openssl` ({e}): the tests generate RSA keys with the openssl CLI; install it with `apt-get install -y openssl`")
        });
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ed_pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let ed_public = Ed25519Key::from_pkcs8_der(&ed_pkcs8).unwrap().public_key();
        // PEM from genpkey is PKCS#8 on every OpenSSL; its DER output format varies.
        let rsa_pem = openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            b"",
        );
        let rsa_pkcs8 = openssl(
            &["pkcs8", "-topk8", "-nocrypt", "-outform", "DER"],
            &rsa_pem,
        );
        let rsa_spki = openssl(&["pkey", "-pubout", "-outform", "DER"], &rsa_pem);
        let rsa_pkcs1_pem = openssl(&["rsa", "-traditional"], &rsa_pem);
        Keys {
            ed_pkcs8,
            ed_public,
            rsa_pkcs8,
            rsa_spki,
            rsa_pkcs1_pem,
        }
    })
}

fn ed_key() -> Ed25519Key {
    Ed25519Key::from_pkcs8_der(&keys().ed_pkcs8).unwrap()
}

fn rsa_key() -> RsaKey<Sha256> {
    RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        keys().rsa_pkcs8.clone(),
    )))
    .unwrap()
}

/// RFC 8463 §4: the raw 32-byte Ed25519 public key.
fn ed_record() -> String {
    format!("v=DKIM1; k=ed25519; p={}", B64.encode(&keys().ed_public))
}

/// RFC 6376 §3.6.1: the SubjectPublicKeyInfo DER of the RSA key.
fn rsa_record() -> String {
    format!("v=DKIM1; k=rsa; p={}", B64.encode(&keys().rsa_spki))
}

// ---------------------------------------------------------------------------------------
// The test DNS server
// ---------------------------------------------------------------------------------------

struct DnsServer {
    port: u16,
    // Holding the child holds its stdin pipe open; the server exits when the pipe
    // closes, i.e. when this value is dropped or the test process ends.
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self._child.kill();
        let _ = self._child.wait();
    }
}

fn start_dns(zone: &serde_json::Value) -> DnsServer {
    let dir = tempfile::tempdir().unwrap();
    let zone_path = dir.path().join("zone.json");
    std::fs::write(&zone_path, serde_json::to_vec_pretty(zone).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dns_zone.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(&zone_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 ({e}): the DKIM/SPF/DMARC tests need python3 and {DNS_INSTALL}"
            )
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Ok(port) = line.trim().parse::<u16>() else {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = child.kill();
            let _ = stderr.read_to_string(&mut err);
        }
        panic!("the test DNS server (tests/dns_zone.py) did not start: {err}\n{DNS_INSTALL}");
    };
    DnsServer {
        port,
        _child: child,
        _dir: dir,
    }
}

fn txt(name: &str, value: &str) -> serde_json::Value {
    serde_json::json!({ "name": name, "type": "TXT", "value": value })
}

fn a(name: &str, value: &str) -> serde_json::Value {
    serde_json::json!({ "name": name, "type": "A", "value": value })
}

fn mx(name: &str, value: &str) -> serde_json::Value {
    serde_json::json!({ "name": name, "type": "MX", "value": value })
}

/// The one zone every test queries (each test uses its own names).
fn zone() -> &'static DnsServer {
    static ZONE: OnceLock<DnsServer> = OnceLock::new();
    ZONE.get_or_init(|| {
        let mut records = vec![
            // --- SPF, IPv4 literal style
            txt("ip4.spf.test", "v=spf1 ip4:192.0.2.10 -all"),
            txt("soft.spf.test", "v=spf1 ip4:192.0.2.10 ~all"),
            txt("neutral.spf.test", "v=spf1 ip4:192.0.2.10 ?all"),
            a("none.spf.test", "192.0.2.99"),
            txt("none.spf.test", "this is not an SPF record"),
            txt("malformed.spf.test", "v=spf1 include -all"),
            txt(
                "lenient.spf.test",
                "v=spf1 frob ip4:300.1.1.1 ip4:192.0.2.10 -all",
            ),
            // --- SPF, include: style
            txt("_spf.provider.test", "v=spf1 ip4:192.0.2.0/24 -all"),
            txt("inc.spf.test", "v=spf1 include:_spf.provider.test -all"),
            txt("incsoft.spf.test", "v=spf1 include:_spf.provider.test ~all"),
            txt(
                "incmissing.spf.test",
                "v=spf1 include:nothing.provider.test -all",
            ),
            txt("loop.spf.test", "v=spf1 redirect=loop.spf.test"),
            // --- SPF, other mechanisms
            txt("mx.spf.test", "v=spf1 mx -all"),
            mx("mx.spf.test", "10 mail.mx.spf.test"),
            a("mail.mx.spf.test", "192.0.2.10"),
            txt("a.spf.test", "v=spf1 a:host.a.spf.test -all"),
            a("host.a.spf.test", "192.0.2.10"),
            txt("helo.spf.test", "v=spf1 ip4:192.0.2.10 -all"),
            txt(
                "void.spf.test",
                "v=spf1 a:v1.void.test a:v2.void.test a:v3.void.test ip4:192.0.2.10 -all",
            ),
            txt("slow.spf.test", "v=spf1 ip4:192.0.2.10 -all"),
            // --- DKIM keys and DMARC policies
            txt("ed._domainkey.example.test", &ed_record()),
            txt("rsa._domainkey.example.test", &rsa_record()),
            txt("example.test", "v=spf1 ip4:192.0.2.10 -all"),
            txt("_dmarc.example.test", "v=DMARC1; p=reject"),
            txt("mail.example.test", "v=spf1 ip4:192.0.2.10 -all"),
            txt("other.test", "v=spf1 -all"),
            txt("quarantine.test", "v=spf1 -all"),
            txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine"),
            txt("monitor.test", "v=spf1 -all"),
            txt("_dmarc.monitor.test", "v=DMARC1; p=none"),
            txt("_dmarc.parent.test", "v=DMARC1; p=reject; sp=quarantine"),
            a("sub.parent.test", "192.0.2.50"),
            txt("nodmarc.test", "v=spf1 -all"),
            txt("_dmarc.strict.test", "v=DMARC1; p=reject; aspf=s"),
            txt("mail.strict.test", "v=spf1 ip4:192.0.2.10 -all"),
            txt("pct.test", "v=spf1 -all"),
            txt("_dmarc.pct.test", "v=DMARC1; p=reject; pct=0"),
            txt("slowdmarc.test", "v=spf1 ip4:192.0.2.10 -all"),
            txt("_dmarc.slowdmarc.test", "v=DMARC1; p=reject"),
            // --- ARC: the mailing list
            txt("list.test", "v=spf1 ip4:192.0.2.20 -all"),
            txt("arc._domainkey.list.test", &rsa_record()),
        ];
        // Exactly ten DNS-querying mechanisms (RFC 7208 §4.6.4: allowed), then eleven.
        for i in 1..=11 {
            records.push(txt(&format!("l{i}.chain.test"), "v=spf1 -all"));
        }
        let includes = |n: usize| {
            (1..=n)
                .map(|i| format!("include:l{i}.chain.test "))
                .collect::<String>()
        };
        records.push(txt(
            "inc10.spf.test",
            &format!("v=spf1 {}ip4:192.0.2.10 -all", includes(10)),
        ));
        // Every answer of this chain is slow (see `time_budget_bounds_slow_dns`).
        records.push(txt(
            "slowchain.spf.test",
            &format!(
                "v=spf1 {}ip4:192.0.2.10 -all",
                (1..=10)
                    .map(|i| format!("include:s{i}.slowchain.test "))
                    .collect::<String>()
            ),
        ));
        for i in 1..=10 {
            records.push(txt(&format!("s{i}.slowchain.test"), "v=spf1 -all"));
        }
        let mut delays = serde_json::Map::new();
        delays.insert(
            "slowchain.spf.test".into(),
            SLOW_ANSWER.as_secs_f64().into(),
        );
        for i in 1..=10 {
            delays.insert(
                format!("s{i}.slowchain.test"),
                SLOW_ANSWER.as_secs_f64().into(),
            );
        }
        records.push(txt(
            "inc11.spf.test",
            &format!("v=spf1 {}ip4:192.0.2.10 -all", includes(11)),
        ));
        start_dns(&serde_json::json!({
            "records": records,
            "ttl": 1,
            "silent_names": ["slow.spf.test", "_dmarc.slowdmarc.test"],
            // The RSA key is served over TCP only: the resolver must follow TC=1.
            "tcp_only_names": ["rsa._domainkey.example.test"],
            "delay_names": delays,
        }))
    })
}

fn verifier_for(port: u16, timeout: Duration) -> InboundVerifier {
    InboundVerifier::new(&DnsSettings {
        nameservers: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        timeout,
    })
    .unwrap()
}

fn verifier() -> InboundVerifier {
    verifier_for(zone().port, DNS_TIMEOUT)
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

fn message(from: &str, subject: &str, body: &str) -> String {
    format!(
        "From: Alice <{from}>\r\n\
         To: Bob <bob@postern.test>\r\n\
         Subject: {subject}\r\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
         Message-ID: <m1@example.test>\r\n\
         \r\n\
         {body}"
    )
}

const SIGNED_HEADERS: [&str; 5] = ["From", "To", "Subject", "Date", "Message-ID"];
const BODY: &str = "Hello Bob,\r\n\r\nthe report is attached.\r\n";

/// Signs a message (msg, d=, s=) and returns it with the DKIM-Signature prepended.
type Signer = fn(&str, &str, &str) -> String;

fn sign_ed(msg: &str, domain: &str, selector: &str) -> String {
    let sig = DkimSigner::from_key(ed_key())
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .sign(msg.as_bytes())
        .unwrap();
    format!("{}{msg}", sig.to_header())
}

fn sign_rsa(msg: &str, domain: &str, selector: &str) -> String {
    let sig = DkimSigner::from_key(rsa_key())
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .sign(msg.as_bytes())
        .unwrap();
    format!("{}{msg}", sig.to_header())
}

async fn check(ip: IpAddr, helo: &str, mail_from: &str, raw: &str) -> Verdict {
    check_with(&verifier(), ip, helo, mail_from, raw.as_bytes()).await
}

async fn check_with(
    v: &InboundVerifier,
    ip: IpAddr,
    helo: &str,
    mail_from: &str,
    raw: &[u8],
) -> Verdict {
    let verdict = v
        .verify(&VerifyInput {
            remote_ip: ip,
            helo,
            mail_from,
            hostname: HOST,
            raw,
        })
        .await;
    assert_header_shape(&verdict.authentication_results);
    verdict
}

/// RFC 8601 / RFC 5322 shape every verdict's header must have.
fn assert_header_shape(header: &str) {
    assert!(
        header.starts_with(&format!("Authentication-Results: {HOST};")),
        "{header:?}"
    );
    assert!(header.ends_with("\r\n"), "{header:?}");
    let body = header.strip_suffix("\r\n").unwrap();
    for (i, line) in body.split("\r\n").enumerate() {
        assert!(
            !line.contains('\r') && !line.contains('\n'),
            "bare CR/LF: {header:?}"
        );
        assert!(line.len() <= 998, "line over 998 octets: {header:?}");
        if i > 0 {
            assert!(
                line.starts_with('\t'),
                "continuation without WSP: {header:?}"
            );
        }
    }
}

fn assert_short_lines(header: &str) {
    for line in header.strip_suffix("\r\n").unwrap().split("\r\n") {
        assert!(line.len() <= 78, "line over 78: {line:?} in {header:?}");
    }
}

fn dkim_results(v: &Verdict) -> Vec<&str> {
    v.dkim.iter().map(|(_, r)| r.as_str()).collect()
}

// ---------------------------------------------------------------------------------------
// SPF
// ---------------------------------------------------------------------------------------

async fn spf(ip: IpAddr, mail_from: &str) -> Verdict {
    let raw = message("alice@nodmarc.test", "spf", BODY);
    check(ip, "relay.sender.test", mail_from, &raw).await
}

#[tokio::test]
async fn spf_ipv4_literal_pass_fail_softfail_neutral_none_permerror() {
    for (ip, mail_from, expected) in [
        (GOOD_IP, "a@ip4.spf.test", "pass"),
        (BAD_IP, "a@ip4.spf.test", "fail"),
        (BAD_IP, "a@soft.spf.test", "softfail"),
        (BAD_IP, "a@neutral.spf.test", "neutral"),
        (GOOD_IP, "a@none.spf.test", "none"),
        (GOOD_IP, "a@nxdomain.spf.test", "none"),
        (GOOD_IP, "a@malformed.spf.test", "permerror"),
    ] {
        let v = spf(ip, mail_from).await;
        assert_eq!(v.spf, expected, "{mail_from} from {ip}");
        assert_eq!(v.summary["spf"]["result"], expected);
        assert_eq!(
            v.summary["spf"]["domain"],
            mail_from.split('@').nth(1).unwrap()
        );
        assert!(
            v.authentication_results
                .contains(&format!("spf={expected} ")),
            "{}",
            v.authentication_results
        );
    }
}

#[tokio::test]
async fn spf_include_pass_fail_softfail_permerror() {
    for (ip, mail_from, expected) in [
        (GOOD_IP, "a@inc.spf.test", "pass"),
        (BAD_IP, "a@inc.spf.test", "fail"),
        (BAD_IP, "a@incsoft.spf.test", "softfail"),
        // RFC 7208 §5.2: an include: target without a record is a permerror.
        (GOOD_IP, "a@incmissing.spf.test", "permerror"),
        // RFC 7208 §4.6.4: ten DNS-querying terms are allowed, the eleventh is not.
        (GOOD_IP, "a@inc10.spf.test", "pass"),
        (GOOD_IP, "a@inc11.spf.test", "permerror"),
        // A redirect= loop runs into the same limit.
        (GOOD_IP, "a@loop.spf.test", "permerror"),
    ] {
        let v = spf(ip, mail_from).await;
        assert_eq!(v.spf, expected, "{mail_from} from {ip}");
    }
}

#[tokio::test]
async fn spf_a_and_mx_mechanisms() {
    assert_eq!(spf(GOOD_IP, "a@mx.spf.test").await.spf, "pass");
    assert_eq!(spf(BAD_IP, "a@mx.spf.test").await.spf, "fail");
    assert_eq!(spf(GOOD_IP, "a@a.spf.test").await.spf, "pass");
    assert_eq!(spf(BAD_IP, "a@a.spf.test").await.spf, "fail");
}

/// RFC 7208 §4.6.4 asks for a limit of two void lookups; mail-auth 0.13 does not enforce
/// it. This pins today's behaviour so a change (for the better) is noticed.
#[tokio::test]
async fn spf_void_lookup_limit_is_not_enforced_by_mail_auth() {
    assert_eq!(spf(GOOD_IP, "a@void.spf.test").await.spf, "pass");
}

/// RFC 7208 §4.6 makes an unknown mechanism or an invalid ip4 address a permerror;
/// mail-auth 0.13's parser accepts both (and the rest of the record still works). This
/// pins today's behaviour so a change is noticed.
#[tokio::test]
async fn spf_syntax_leniency_of_mail_auth() {
    assert_eq!(spf(GOOD_IP, "a@lenient.spf.test").await.spf, "pass");
}

/// RFC 7208 §2.4: with MAIL FROM:<> the HELO identity is checked as postmaster@helo.
#[tokio::test]
async fn spf_null_reverse_path_checks_helo() {
    let raw = message("alice@nodmarc.test", "bounce", BODY);
    let v = check(GOOD_IP, "helo.spf.test", "", &raw).await;
    assert_eq!(v.spf, "pass");
    assert_eq!(v.summary["spf"]["domain"], "helo.spf.test");
    assert!(
        v.authentication_results.contains("smtp.helo=helo.spf.test"),
        "{}",
        v.authentication_results
    );
    let v = check(BAD_IP, "helo.spf.test", "", &raw).await;
    assert_eq!(v.spf, "fail");
    // An address literal as HELO is not a domain: none, without a query (RFC 7208 §2.3).
    let v = check(GOOD_IP, "[192.0.2.10]", "", &raw).await;
    assert_eq!(v.spf, "none");
}

#[tokio::test]
async fn spf_malformed_identities_are_none() {
    for mail_from in ["no-at-sign", "a@localhost", "a@[192.0.2.1]", "a@bad..name"] {
        assert_eq!(spf(GOOD_IP, mail_from).await.spf, "none", "{mail_from}");
    }
}

#[tokio::test]
async fn spf_dns_timeout_is_temperror() {
    let v = verifier_for(zone().port, SILENT_DNS_TIMEOUT);
    let raw = message("alice@nodmarc.test", "slow", BODY);
    let start = Instant::now();
    let verdict = check_with(&v, GOOD_IP, "x.test", "a@slow.spf.test", raw.as_bytes()).await;
    assert_eq!(verdict.spf, "temperror");
    assert!(start.elapsed() <= v.time_budget() + Duration::from_secs(2));
}

/// Each answer arrives in time, but SPF's eleven sequential lookups (the record and ten
/// includes, 11 × 0.3 s) take longer than the whole budget (6 × 0.5 s): verification stops
/// at the budget with temperror instead of waiting.
#[tokio::test]
async fn time_budget_bounds_slow_dns() {
    let v = verifier_for(zone().port, SLOW_DNS_TIMEOUT);
    assert_eq!(v.time_budget(), SLOW_DNS_TIMEOUT * 6);
    let raw = message("alice@nodmarc.test", "slow chain", BODY);
    let start = Instant::now();
    let verdict = check_with(
        &v,
        GOOD_IP,
        "x.test",
        "a@slowchain.spf.test",
        raw.as_bytes(),
    )
    .await;
    let elapsed = start.elapsed();
    assert_eq!(verdict.spf, "temperror");
    assert!(elapsed >= v.time_budget(), "{elapsed:?}");
    assert!(
        elapsed <= v.time_budget() + Duration::from_millis(1500),
        "{elapsed:?}"
    );
    // Given time the record passes: it has the shape of `inc10.spf.test` (ten includes,
    // then the client's address), which passes in `spf_include_pass_fail_softfail_permerror`.
}

/// An IPv4 client seen through a dual-stack socket (::ffff:a.b.c.d) is the IPv4 client.
#[tokio::test]
async fn spf_ipv4_mapped_client() {
    let mapped: IpAddr = "::ffff:192.0.2.10".parse().unwrap();
    assert_eq!(spf(mapped, "a@ip4.spf.test").await.spf, "pass");
}

// ---------------------------------------------------------------------------------------
// DKIM
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn dkim_ed25519_pass() {
    let raw = sign_ed(
        &message("alice@example.test", "ed", BODY),
        "example.test",
        "ed",
    );
    let v = check(BAD_IP, "x.test", "a@other.test", &raw).await;
    assert_eq!(v.dkim, vec![("example.test".into(), "pass".into())]);
    assert_eq!(v.summary["dkim"][0]["selector"], "ed");
}

/// The RSA key record is only answered over TCP (UDP answers carry TC=1).
#[tokio::test]
async fn dkim_rsa_sha256_pass_over_tcp_fallback() {
    let raw = sign_rsa(
        &message("alice@example.test", "rsa", BODY),
        "example.test",
        "rsa",
    );
    let v = check(BAD_IP, "x.test", "a@other.test", &raw).await;
    assert_eq!(v.dkim, vec![("example.test".into(), "pass".into())]);
}

#[tokio::test]
async fn dkim_body_modified_fails() {
    let raw = sign_ed(
        &message("alice@example.test", "ed", BODY),
        "example.test",
        "ed",
    );
    let raw = raw.replace("attached", "ATTACHED");
    let v = check(BAD_IP, "x.test", "a@other.test", &raw).await;
    assert_eq!(dkim_results(&v), ["fail"]);
    assert!(
        v.authentication_results
            .contains("dkim=fail (body hash did not verify)"),
        "{}",
        v.authentication_results
    );
}

#[tokio::test]
async fn dkim_header_modified_fails() {
    let signers: [(Signer, &str); 2] = [(sign_ed, "ed"), (sign_rsa, "rsa")];
    for (sign, selector) in signers {
        let raw = sign(
            &message("alice@example.test", "original", BODY),
            "example.test",
            selector,
        );
        let raw = raw.replace("Subject: original", "Subject: forged");
        let v = check(BAD_IP, "x.test", "a@other.test", &raw).await;
        assert_eq!(dkim_results(&v), ["fail"], "{selector}");
        assert_eq!(v.dmarc, DmarcDisposition::Fail(DmarcPolicy::Reject));
    }
}

#[tokio::test]
async fn dkim_missing_key_is_permerror() {
    let raw = sign_ed(
        &message("alice@example.test", "gone", BODY),
        "example.test",
        "gone",
    );
    let v = check(BAD_IP, "x.test", "a@other.test", &raw).await;
    assert_eq!(dkim_results(&v), ["permerror"]);
    assert!(
        v.authentication_results
            .contains("dkim=permerror (dns record not found) header.d=example.test header.s=gone"),
        "{}",
        v.authentication_results
    );
}

/// RFC 6376 §8.2: a body length tag lets anyone append content; such signatures are not
/// verified (neutral) and cannot give DMARC a pass.
#[tokio::test]
async fn dkim_body_length_tag_is_not_trusted() {
    let msg = message("alice@example.test", "l=", BODY);
    let sig = DkimSigner::from_key(ed_key())
        .domain("example.test")
        .selector("ed")
        .headers(SIGNED_HEADERS)
        .body_length(true)
        .sign(msg.as_bytes())
        .unwrap();
    let raw = format!("{}{msg}", sig.to_header());
    assert!(raw.contains(" l="), "{raw}");
    let v = check(BAD_IP, "x.test", "a@other.test", &raw).await;
    assert_eq!(dkim_results(&v), ["neutral"]);
    assert_eq!(v.dmarc, DmarcDisposition::Fail(DmarcPolicy::Reject));
}

#[tokio::test]
async fn dkim_signature_count_is_capped() {
    let mut raw = message("alice@example.test", "many", BODY);
    for _ in 0..MAX_DKIM_SIGNATURES + 2 {
        raw = sign_ed(&raw, "example.test", "ed");
    }
    let v = check(BAD_IP, "x.test", "a@other.test", &raw).await;
    assert_eq!(v.dkim.len(), MAX_DKIM_SIGNATURES);
    // Only the signatures kept were verified: each one covers the same headers, so all
    // of them still pass.
    assert!(dkim_results(&v).iter().all(|r| *r == "pass"));

    // Malformed signatures are reported up to the same cap, without DNS work.
    let junk = "DKIM-Signature: v=1; garbage\r\n".repeat(200);
    let raw = format!("{junk}{}", message("alice@example.test", "junk", BODY));
    let v = check(BAD_IP, "x.test", "a@other.test", &raw).await;
    assert!(v.dkim.len() <= MAX_DKIM_SIGNATURES, "{}", v.dkim.len());
    assert!(v.authentication_results.len() < 4000);
}

#[tokio::test]
async fn dkim_absent_is_none() {
    let raw = message("alice@example.test", "plain", BODY);
    let v = check(GOOD_IP, "x.test", "a@other.test", &raw).await;
    assert!(v.dkim.is_empty());
    assert!(v.authentication_results.contains("\tdkim=none;"));
    assert_eq!(v.summary["dkim"], serde_json::json!([]));
}

// ---------------------------------------------------------------------------------------
// dkimpy cross-checks
// ---------------------------------------------------------------------------------------

const DKIMPY: &str = r#"
import sys
try:
    import dkim
except ImportError:
    sys.stderr.write("MISSING dkimpy\n")
    sys.exit(3)
mode = sys.argv[1]
msg = open(sys.argv[2], "rb").read()
if mode == "verify":
    record = open(sys.argv[3], "rb").read()
    ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: record)
    sys.stdout.write("pass" if ok else "fail")
else:
    key = open(sys.argv[3], "rb").read()
    sig = dkim.sign(msg, sys.argv[5].encode(), sys.argv[6].encode(), key,
                    signature_algorithm=sys.argv[4].encode(),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    sys.stdout.buffer.write(sig)
"#;

fn dkimpy(args: &[&str], files: &[(&str, &[u8])]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut argv: Vec<String> = vec!["-c".into(), DKIMPY.into(), args[0].into()];
    for (name, data) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        argv.push(path.display().to_string());
    }
    argv.extend(args[1..].iter().map(|s| s.to_string()));
    let out = Command::new("python3")
        .args(&argv)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {DKIMPY_INSTALL}"));
    assert!(
        out.status.success(),
        "dkimpy failed: {}\n{DKIMPY_INSTALL}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// What we sign, an independent implementation verifies.
#[test]
fn dkimpy_verifies_our_rsa_signature() {
    let raw = sign_rsa(
        &message("alice@example.test", "interop", BODY),
        "example.test",
        "rsa",
    );
    let out = dkimpy(
        &["verify"],
        &[
            ("msg.eml", raw.as_bytes()),
            ("key.txt", rsa_record().as_bytes()),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out), "pass");
    // And a tampered copy does not verify there either.
    let tampered = raw.replace("attached", "ATTACHED");
    let out = dkimpy(
        &["verify"],
        &[
            ("msg.eml", tampered.as_bytes()),
            ("key.txt", rsa_record().as_bytes()),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out), "fail");
}

/// What an independent implementation signs, we verify; rsa-sha1 is refused
/// (RFC 8301 §3.1) although the signature is cryptographically valid.
#[tokio::test]
async fn dkimpy_signatures_rsa_sha256_pass_rsa_sha1_permerror() {
    let msg = message("alice@example.test", "from dkimpy", BODY);
    for (algorithm, expected, dmarc) in [
        ("rsa-sha256", "pass", DmarcDisposition::Pass),
        (
            "rsa-sha1",
            "permerror",
            DmarcDisposition::Fail(DmarcPolicy::Reject),
        ),
    ] {
        let sig = dkimpy(
            &["sign", algorithm, "rsa", "example.test"],
            &[
                ("msg.eml", msg.as_bytes()),
                ("key.pem", &keys().rsa_pkcs1_pem),
            ],
        );
        let sig = String::from_utf8(sig).unwrap();
        assert!(sig.contains(&format!("a={algorithm}")), "{sig}");
        let raw = format!("{sig}{msg}");
        let v = check(BAD_IP, "x.test", "a@other.test", &raw).await;
        assert_eq!(dkim_results(&v), [expected], "{algorithm}");
        assert_eq!(v.dmarc, dmarc, "{algorithm}");
    }
}

// ---------------------------------------------------------------------------------------
// DMARC
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn dmarc_pass_via_aligned_dkim() {
    // SPF fails for an unrelated envelope domain; the aligned DKIM signature carries it.
    let raw = sign_ed(
        &message("alice@example.test", "d", BODY),
        "example.test",
        "ed",
    );
    let v = check(BAD_IP, "x.test", "bounce@other.test", &raw).await;
    assert_eq!(v.spf, "fail");
    assert_eq!(v.dmarc, DmarcDisposition::Pass);
    assert_eq!(v.summary["dmarc"]["result"], "pass");
    assert_eq!(v.summary["dmarc"]["policy"], "reject");
    assert_eq!(v.summary["dmarc"]["domain"], "example.test");
}

#[tokio::test]
async fn dmarc_pass_via_aligned_spf() {
    let raw = message("alice@example.test", "s", BODY);
    let v = check(GOOD_IP, "x.test", "alice@example.test", &raw).await;
    assert!(v.dkim.is_empty());
    assert_eq!(v.dmarc, DmarcDisposition::Pass);
    // Relaxed alignment (the default): a subdomain of the From domain aligns.
    let v = check(GOOD_IP, "x.test", "bounce@mail.example.test", &raw).await;
    assert_eq!(v.spf, "pass");
    assert_eq!(v.dmarc, DmarcDisposition::Pass);
}

#[tokio::test]
async fn dmarc_strict_spf_alignment() {
    let raw = message("alice@strict.test", "s", BODY);
    let v = check(GOOD_IP, "x.test", "bounce@mail.strict.test", &raw).await;
    assert_eq!(v.spf, "pass");
    assert_eq!(v.dmarc, DmarcDisposition::Fail(DmarcPolicy::Reject));
}

#[tokio::test]
async fn dmarc_fail_reports_the_published_policy() {
    for (from, expected) in [
        ("alice@example.test", DmarcPolicy::Reject),
        ("alice@quarantine.test", DmarcPolicy::Quarantine),
        ("alice@monitor.test", DmarcPolicy::None),
        // pct= is not applied: the full policy holds (documented in verify.rs).
        ("alice@pct.test", DmarcPolicy::Reject),
    ] {
        let raw = message(from, "unauthenticated", BODY);
        let v = check(BAD_IP, "x.test", "bounce@other.test", &raw).await;
        assert_eq!(v.dmarc, DmarcDisposition::Fail(expected), "{from}");
        assert_eq!(v.summary["dmarc"]["result"], "fail");
    }
}

/// RFC 7489 §6.3: `sp=` applies to subdomains of the organizational domain.
#[tokio::test]
async fn dmarc_subdomain_policy() {
    let raw = message("alice@sub.parent.test", "sub", BODY);
    let v = check(BAD_IP, "x.test", "bounce@other.test", &raw).await;
    assert_eq!(v.dmarc, DmarcDisposition::Fail(DmarcPolicy::Quarantine));
    assert_eq!(v.summary["dmarc"]["domain"], "sub.parent.test");
    let raw = message("alice@parent.test", "apex", BODY);
    let v = check(BAD_IP, "x.test", "bounce@other.test", &raw).await;
    assert_eq!(v.dmarc, DmarcDisposition::Fail(DmarcPolicy::Reject));
}

#[tokio::test]
async fn dmarc_none_without_record_or_from() {
    let raw = message("alice@nodmarc.test", "n", BODY);
    let v = check(BAD_IP, "x.test", "a@nodmarc.test", &raw).await;
    assert_eq!(v.spf, "fail");
    assert_eq!(v.dmarc, DmarcDisposition::None);
    assert_eq!(v.summary["dmarc"]["result"], "none");
    assert_eq!(v.summary["dmarc"]["policy"], serde_json::Value::Null);

    let raw = "To: bob@postern.test\r\nSubject: no from\r\n\r\nbody\r\n";
    let v = check(BAD_IP, "x.test", "a@example.test", raw).await;
    assert_eq!(v.dmarc, DmarcDisposition::None);
    assert!(v.authentication_results.contains("\tdmarc=none\r\n"));
}

/// The DMARC record cannot be fetched (the server never answers for it): temperror,
/// within the time budget.
#[tokio::test]
async fn dmarc_dns_timeout_is_temperror() {
    let v = verifier_for(zone().port, SILENT_DNS_TIMEOUT);
    let raw = message("alice@slowdmarc.test", "t", BODY);
    let start = Instant::now();
    let verdict = check_with(&v, GOOD_IP, "x.test", "a@slowdmarc.test", raw.as_bytes()).await;
    assert_eq!(verdict.spf, "pass");
    assert_eq!(verdict.dmarc, DmarcDisposition::TempError);
    assert_eq!(verdict.summary["dmarc"]["result"], "temperror");
    assert!(start.elapsed() <= v.time_budget() + Duration::from_secs(2));
}

/// No DNS answers at all (UDP and TCP accepted, never answered): every check is
/// temperror, DMARC is TempError, and the verdict comes within the time budget.
#[tokio::test]
async fn dns_not_answering_gives_temperror_within_budget() {
    let silent = start_dns(&serde_json::json!({ "records": [], "silent": true }));
    let v = verifier_for(silent.port, SILENT_DNS_TIMEOUT);
    let raw = sign_ed(
        &message("alice@example.test", "dead dns", BODY),
        "example.test",
        "ed",
    );
    let start = Instant::now();
    let verdict = check_with(&v, GOOD_IP, "x.test", "alice@example.test", raw.as_bytes()).await;
    let elapsed = start.elapsed();
    assert_eq!(verdict.spf, "temperror");
    assert_eq!(dkim_results(&verdict), ["temperror"]);
    assert_eq!(verdict.dmarc, DmarcDisposition::TempError);
    assert!(
        elapsed <= v.time_budget() + Duration::from_secs(2),
        "{elapsed:?} > budget {:?}",
        v.time_budget()
    );
}

/// Nothing listens at all (connection refused / ICMP unreachable).
#[tokio::test]
async fn dns_unreachable_gives_temperror() {
    let port = {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.local_addr().unwrap().port()
    };
    let v = verifier_for(port, SILENT_DNS_TIMEOUT);
    let raw = message("alice@example.test", "no dns", BODY);
    let start = Instant::now();
    let verdict = check_with(&v, GOOD_IP, "x.test", "alice@example.test", raw.as_bytes()).await;
    assert_eq!(verdict.spf, "temperror");
    assert_eq!(verdict.dmarc, DmarcDisposition::TempError);
    assert!(start.elapsed() <= v.time_budget() + Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------------
// ARC
// ---------------------------------------------------------------------------------------

/// The mailing list's view: the author's message, as the list rewrote it, sealed with an
/// ARC set (i=1, cv=none) recording what the list saw.
fn list_sealed_message() -> String {
    let original = sign_ed(
        &message("alice@example.test", "hello", BODY),
        "example.test",
        "ed",
    );
    // The list rewrites the subject and appends a footer: the author's DKIM breaks.
    let rewritten = format!(
        "{}-- \r\nlist footer\r\n",
        original.replace("Subject: hello", "Subject: [list] hello")
    );
    let parsed = AuthenticatedMessage::parse(rewritten.as_bytes()).unwrap();
    let spf = SpfOutput::new("example.test".into()).with_result(SpfResult::Pass);
    let results = AuthenticationResults::new("list.test").with_spf_mailfrom_result(
        &spf,
        GOOD_IP,
        "alice@example.test",
        "mail.example.test",
    );
    let set = ArcSealer::from_key(rsa_key())
        .domain("list.test")
        .selector("arc")
        .headers([
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "DKIM-Signature",
        ])
        .seal(&parsed, &results, &ArcOutput::default())
        .unwrap();
    format!("{}{rewritten}", set.to_header())
}

#[tokio::test]
async fn arc_pass() {
    let raw = list_sealed_message();
    let v = check(LIST_IP, "mail.list.test", "bounce@list.test", &raw).await;
    assert_eq!(v.arc, "pass");
    assert_eq!(v.summary["arc"], "pass");
    assert_eq!(v.spf, "pass");
    // The author's signature did not survive the list; DMARC fails and ARC is the
    // evidence a local policy could weigh (RFC 8617 §7.2).
    assert_eq!(dkim_results(&v), ["fail"]);
    assert_eq!(v.dmarc, DmarcDisposition::Fail(DmarcPolicy::Reject));
    assert!(
        v.authentication_results
            .contains("\tarc=pass smtp.remote-ip=192.0.2.20;"),
        "{}",
        v.authentication_results
    );
}

#[tokio::test]
async fn arc_broken_chain_fails() {
    // Modified after sealing: the ARC-Message-Signature's body hash no longer matches.
    let raw = list_sealed_message().replace("list footer", "list footer, edited");
    let v = check(LIST_IP, "mail.list.test", "bounce@list.test", &raw).await;
    assert_eq!(v.arc, "fail");

    // A seal claiming a validated earlier hop that does not exist (i=1 with cv=pass).
    let raw = list_sealed_message().replacen("cv=none", "cv=pass", 1);
    let v = check(LIST_IP, "mail.list.test", "bounce@list.test", &raw).await;
    assert_eq!(v.arc, "fail");

    // A set without its seal.
    let sealed = list_sealed_message();
    let raw: String = sealed
        .split_inclusive("\r\n")
        .scan(false, |in_seal, line| {
            if line.starts_with("ARC-Seal:") {
                *in_seal = true;
            } else if !line.starts_with([' ', '\t']) {
                *in_seal = false;
            }
            Some(if *in_seal { "" } else { line })
        })
        .collect();
    assert!(!raw.contains("ARC-Seal:"));
    let v = check(LIST_IP, "mail.list.test", "bounce@list.test", &raw).await;
    assert_eq!(v.arc, "fail");
}

#[tokio::test]
async fn arc_absent_is_none() {
    let raw = message("alice@example.test", "no arc", BODY);
    let v = check(GOOD_IP, "x.test", "alice@example.test", &raw).await;
    assert_eq!(v.arc, "none");
}

// ---------------------------------------------------------------------------------------
// Authentication-Results, exactly
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn authentication_results_exact_text() {
    let raw = sign_ed(
        &message("alice@example.test", "exact", BODY),
        "example.test",
        "ed",
    );
    let b = raw
        .split("b=")
        .last()
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(8)
        .collect::<String>();
    let v = check(GOOD_IP, "mail.example.test", "alice@example.test", &raw).await;
    let expected = format!(
        "Authentication-Results: mx.postern.test;\r\n\
         \tspf=pass (mx.postern.test: domain of alice@example.test designates 192.0.2.10\r\n\
         \tas permitted sender) smtp.mailfrom=alice@example.test;\r\n\
         \tdkim=pass header.d=example.test header.s=ed header.b={b};\r\n\
         \tarc=none smtp.remote-ip=192.0.2.10;\r\n\
         \tdmarc=pass header.from=example.test policy.dmarc=reject\r\n"
    );
    assert_eq!(v.authentication_results, expected);
    assert_short_lines(&v.authentication_results);
    assert_eq!(v.dmarc, DmarcDisposition::Pass);
    assert_eq!(
        v.summary,
        serde_json::json!({
            "spf": { "result": "pass", "domain": "example.test" },
            "dkim": [{ "domain": "example.test", "selector": "ed", "result": "pass" }],
            "arc": "none",
            "dmarc": { "result": "pass", "policy": "reject", "domain": "example.test" },
        })
    );
}

#[tokio::test]
async fn authentication_results_long_values_fold_and_quote() {
    // A quoted local part with spaces must stay one quoted-string (no fold inside it).
    let mail_from = "\"a very long local part with many spaces in it\"@ip4.spf.test";
    let raw = message("alice@nodmarc.test", "q", BODY);
    let v = check(GOOD_IP, "x.test", mail_from, &raw).await;
    assert_eq!(v.spf, "pass");
    assert!(
        v.authentication_results.contains(
            "smtp.mailfrom=\"\\\"a very long local part with many spaces in it\\\"@ip4.spf.test\""
        ),
        "{}",
        v.authentication_results
    );
    // Lines stay within 78, except the one token that cannot be folded, alone on its line.
    let token =
        "\tsmtp.mailfrom=\"\\\"a very long local part with many spaces in it\\\"@ip4.spf.test\";";
    for line in v.authentication_results.split("\r\n") {
        assert!(line.len() <= 78 || line == token, "{line:?}");
    }

    // Hostile, oversized identities stay bounded (RFC 5322 §2.1.1's 998).
    let helo = "h".repeat(5000);
    let mail_from = format!("{}@{}.test", "x".repeat(3000), "d".repeat(3000));
    let v = check(GOOD_IP, &helo, &mail_from, &raw).await;
    assert_eq!(v.spf, "none");
    assert!(v.authentication_results.len() < 2000);
}

// ---------------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unparseable_messages_still_get_a_verdict() {
    let inputs: [&[u8]; 7] = [
        b"",
        b"\r\n\r\n",
        b"no header here",
        b"\xff\xfe\x00\x01garbage\r\n",
        b"From:\r\n\r\n",
        b"From: <@>\r\nDKIM-Signature: \r\n\r\n",
        b"DKIM-Signature: v=1; a=rsa-sha256; d=; s=; b=; bh=; h=from\r\n\r\n",
    ];
    let v = verifier();
    for raw in inputs {
        let verdict = check_with(&v, GOOD_IP, "x.test", "alice@ip4.spf.test", raw).await;
        assert_eq!(verdict.spf, "pass", "{raw:?}");
        assert_eq!(verdict.dmarc, DmarcDisposition::None, "{raw:?}");
        assert_eq!(verdict.arc, "none", "{raw:?}");
        assert!(
            verdict.dkim.iter().all(|(_, r)| r != "pass"),
            "{raw:?}: {:?}",
            verdict.dkim
        );
    }
}

/// Deterministic mutations of signed and sealed messages: no panic, a well-formed header
/// every time.
#[tokio::test]
async fn mutated_messages_never_panic() {
    let v = verifier();
    let seeds = [
        list_sealed_message(),
        sign_rsa(
            &message("alice@example.test", "m", BODY),
            "example.test",
            "rsa",
        ),
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..60 {
        let mut raw = seeds[round % seeds.len()].clone().into_bytes();
        for _ in 0..1 + next() % 8 {
            let pos = (next() as usize) % raw.len();
            match next() % 4 {
                0 => raw[pos] = (next() % 256) as u8,
                1 => {
                    raw.remove(pos);
                }
                2 => {
                    let specials = b"\r\n:;=\"\\ \t";
                    raw.insert(pos, specials[(next() as usize) % specials.len()])
                }
                _ => raw.truncate(pos),
            }
            if raw.is_empty() {
                break;
            }
        }
        let verdict = check_with(&v, LIST_IP, "mail.list.test", "bounce@list.test", &raw).await;
        assert!(!verdict.spf.is_empty());
    }
}

#[test]
fn verifier_is_shareable_and_its_future_is_send() {
    fn shareable<T: Send + Sync>() {}
    shareable::<InboundVerifier>();
    fn send<F: std::future::Future + Send>(_: F) {}
    // Built outside any runtime (the server builds it at start-up).
    let v = verifier_for(53, DNS_TIMEOUT);
    let input = VerifyInput {
        remote_ip: GOOD_IP,
        helo: "x.test",
        mail_from: "",
        hostname: HOST,
        raw: b"",
    };
    send(v.verify(&input));
}

#[test]
fn system_resolver_configuration_is_used_when_no_nameservers_are_given() {
    let v = InboundVerifier::new(&DnsSettings {
        nameservers: vec![],
        timeout: Duration::from_secs(1),
    });
    assert!(
        v.is_ok() || !std::path::Path::new("/etc/resolv.conf").exists(),
        "{:?}",
        v.err()
    );
}
