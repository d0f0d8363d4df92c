//! Outbound delivery end to end (issue 5): real `postern serve` processes submit, queue,
//! route through a test DNS zone and deliver to real receiving MTAs on loopback.
//!
//! - DNS: `crates/smtp/tests/dns_zone.py` (PyPI dnslib) serves a JSON zone on
//!   127.0.0.1:<ephemeral>; the tests rewrite the zone while it runs (DKIM keys printed by
//!   `postern domain dkim`, TLSA records) and set the AD bit for the DANE cases.
//! - Peers listen on 127.0.0.x:<one port per test> (`[outbound] port`): Postfix's
//!   `smtp-sink` (which dumps what it receives), a second `postern serve` (whose inbound
//!   verification is mail-auth's DKIM check), and `tests/outbound_peer.py` (aiosmtpd),
//!   scripted per address to answer 4xx/5xx at RCPT or after DATA, drop the connection in
//!   the middle of the data, answer slowly, or offer STARTTLS.
//! - Checks that are not postern's own code: `tests/outbound_check.py` reads INBOXes over
//!   IMAPS and parses DSNs with Python's email package, and verifies DKIM signatures with
//!   dkimpy; swaks submits.
//!
//! - The two-node test runs both nodes on one PostgreSQL schema (127.0.0.1:5432, trust
//!   auth, database `test`; POSTERN_TEST_PG_URL overrides), like `tests/two_nodes.rs`.
//!
//! A missing tool (python3 with dnslib, dkimpy, pynacl and aiosmtpd; swaks; smtp-sink from
//! the postfix package; openssl; PostgreSQL) fails the tests with the install line:
//! nothing is skipped. `.ci/run` installs them all.

mod common;
mod outbound_common;
use common::*;
use outbound_common::*;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FRIEND_PW: &str = "friend-outbound-pw";

// ---- the test DNS zone ----

/// `MX domain → mx.domain → ip`.
fn mx_to(domain: &str, ip: &str) -> Vec<Value> {
    vec![
        rr(domain, "MX", &format!("10 mx.{domain}")),
        rr(&format!("mx.{domain}"), "A", ip),
    ]
}

// ---- the aiosmtpd peer ----

/// Never a bare LF or CR on the wire, and the peer's record of how it came.
fn assert_clean_wire(m: &Received) {
    assert_eq!(
        m.meta["bare_lf"],
        json!(false),
        "bare LF on the wire: {:?}",
        m.meta
    );
    assert_eq!(
        m.meta["bare_cr"],
        json!(false),
        "bare CR on the wire: {:?}",
        m.meta
    );
}

// ---- postern ----

/// The `[dns]` and `[outbound]` sections of a test server: small timeouts and retries.
fn outbound_config(dns: u16, port: u16, extra: &str) -> String {
    format!(
        "[dns]\nnameservers = [\"127.0.0.1:{dns}\"]\ntimeout_secs = 2\n\
         [outbound]\nport = {port}\nallow_private_destinations = true\n\
         connect_timeout_secs = 2\ncommand_timeout_secs = 2\n\
         data_timeout_secs = 3\nlease_secs = 13\npoll_secs = 1\nretry_base_secs = 1\n\
         retry_max_secs = 1\nmax_queue_lifetime_secs = 600\ndelay_notice_secs = 0\n{extra}"
    )
}

/// Merges `[outbound]` keys of `over` into the section built by [`outbound_config`].
fn with_outbound(dns: u16, port: u16, outbound_keys: &str, rest: &str) -> String {
    let mut base: toml::Table = toml::from_str(&outbound_config(dns, port, "")).unwrap();
    let over: toml::Table = toml::from_str(outbound_keys).unwrap();
    let section = base.get_mut("outbound").unwrap().as_table_mut().unwrap();
    for (k, v) in over {
        section.insert(k, v);
    }
    let mut out = toml::to_string(&base).unwrap();
    out.push('\n');
    out.push_str(rest);
    out
}

/// A server for example.com with alice, bob.
fn example_server(config: &str) -> Server {
    let server = Server::start_with(config);
    add_user(&server, "example.com", "alice@example.com", ALICE_PW);
    add_user(&server, "example.com", "bob@example.com", "bob-outbound-pw");
    server
}

/// INBOX of `user` over IMAPS, read by Python's imaplib and email package.
fn inbox(server: &Server, user: &str, password: &str) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(CHECK_SCRIPT)
        .arg("fetch")
        .arg(server.addr("imaps").port().to_string())
        .arg(server.cert_path())
        .arg(user)
        .arg(password)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "fetching {user}'s INBOX failed: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn raw_of(m: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(m["raw"].as_str().unwrap())
        .unwrap()
}

/// The DSNs in alice's INBOX.
fn dsns(server: &Server) -> Vec<Value> {
    inbox(server, "alice@example.com", ALICE_PW)
        .into_iter()
        .filter(|m| !m["dsn"].is_null())
        .collect()
}

/// Waits until alice's INBOX holds at least `n` DSNs; all of them.
fn wait_dsns(server: &Server, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let d = dsns(server);
        if d.len() >= n {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "{} DSN(s) of {n} within {DELIVERY:?}: {d:#?}\nqueue:\n{}\nserver stderr:\n{}",
            d.len(),
            server.cli_ok(&["queue", "list"], ""),
            server.proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asserts the RFC 3464 shape of one DSN (as read by Python's email package) and returns
/// its recipient blocks.
fn check_dsn(dsn: &Value, action: &str) -> Vec<Value> {
    let d = &dsn["dsn"];
    assert_eq!(d["report_type"], json!("delivery-status"), "{d}");
    // From the null sender's mailer daemon, marked automatic (RFC 3464 §2, RFC 3834).
    let raw = text(&raw_of(dsn));
    let from = header(&raw, "From").unwrap_or_default();
    assert!(
        from.contains(&format!("MAILER-DAEMON@{HOSTNAME}")),
        "{from}"
    );
    assert_eq!(
        header(&raw, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(header(&raw, "Return-Path").as_deref(), Some("<>"), "{raw}");
    let parts: Vec<&str> = d["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert_eq!(parts[0], "text/plain", "{parts:?}");
    assert_eq!(parts[1], "message/delivery-status", "{parts:?}");
    assert!(
        parts[2] == "message/rfc822" || parts[2] == "text/rfc822-headers",
        "{parts:?}"
    );
    let per_message = &d["per_message"];
    assert!(
        per_message["reporting-mta"]
            .as_str()
            .is_some_and(|v| v.starts_with("dns;") && v.contains(HOSTNAME)),
        "{per_message}"
    );
    let returned = d["returned"].as_str().unwrap_or("");
    assert!(
        returned.contains("Subject:"),
        "the DSN returns the original header: {returned}"
    );
    let recipients = d["recipients"].as_array().unwrap().clone();
    assert!(!recipients.is_empty(), "{d}");
    for r in &recipients {
        assert_eq!(r["action"], json!(action), "{r}");
        assert!(
            r["final-recipient"]
                .as_str()
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("rfc822;")),
            "{r}"
        );
    }
    recipients
}

/// The DSN whose returned header has `Subject: subject`.
fn dsn_about<'a>(dsns: &'a [Value], subject: &str) -> Vec<&'a Value> {
    dsns.iter()
        .filter(|d| {
            d["dsn"]["returned"].as_str().is_some_and(|r| {
                r.contains(&format!("Subject: {subject}\n"))
                    || r.contains(&format!("Subject: {subject}\r\n"))
            })
        })
        .collect()
}

// ---- keys and certificates ----

/// A self-signed certificate for `name` in `dir`; (cert, key, TLSA 3 1 1 hex of its key).
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let cert = dir.join("peer-cert.pem");
    let key = dir.join("peer-key.pem");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    let spki = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"]);
    let spki_pem = dir.join("peer-spki.pem");
    std::fs::write(&spki_pem, spki).unwrap();
    let der = openssl(&[
        "pkey",
        "-pubin",
        "-in",
        spki_pem.to_str().unwrap(),
        "-outform",
        "DER",
    ]);
    let digest = ring_sha256(&der);
    (cert, key, digest)
}

fn ring_sha256(data: &[u8]) -> String {
    let der = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(der.path(), data).unwrap();
    let out = openssl(&["dgst", "-sha256", "-r", der.path().to_str().unwrap()]);
    text(&out).split_whitespace().next().unwrap().to_string()
}

// =======================================================================================
// 1. The happy path: DKIM-signed, delivered to smtp-sink and to another postern.
// =======================================================================================

/// Postfix's smtp-sink on `addr`, dumping each transaction into `dir`.
struct Sink {
    child: Child,
    dir: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Sink {
    fn start(dir: &Path, addr: &str) -> Sink {
        require_tool(
            "smtp-sink",
            "apt-get install postfix (only its smtp-sink is used; .ci/run installs it)",
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let bin = if Path::new("/usr/sbin/smtp-sink").exists() {
            "/usr/sbin/smtp-sink"
        } else {
            "smtp-sink"
        };
        let mut cmd = Command::new(bin);
        if nix::unistd::Uid::effective().is_root() {
            // smtp-sink refuses to run as root without a user to switch to.
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .args(["-h", "sink.other.test", "-d"])
            .arg(format!("{}/msg.", dir.display()))
            .arg(addr)
            .arg("20")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run smtp-sink");
        // It listens once it runs; connect to be sure.
        wait_for(PATIENCE, "smtp-sink listening", || {
            std::net::TcpStream::connect(addr).ok().map(|_| ())
        });
        Sink {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// Dumped messages: the smtp-sink header lines removed, CRLF line ends restored.
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for e in entries.flatten() {
            let t = std::fs::read_to_string(e.path()).unwrap_or_default();
            // X-Client-Addr … X-Rcpt-Args, then a three-line Received field of its own.
            let mut lines: Vec<&str> = t.lines().collect();
            let start = lines
                .iter()
                .position(|l| {
                    l.starts_with("Received: from") && l.contains("smtp-sink")
                        || l.starts_with("Received:")
                })
                .map(|i| i + 3)
                .unwrap_or(0);
            let meta: Vec<&str> = lines.drain(..start).collect();
            let mut m = meta
                .iter()
                .filter(|l| l.starts_with("X-"))
                .map(|l| format!("{l}\r\n"))
                .collect::<String>();
            m.push_str("--\r\n");
            m.push_str(&lines.join("\r\n"));
            m.push_str("\r\n");
            out.push(m);
        }
        out
    }
}

#[test]
fn happy_path_dkim_signed_to_smtp_sink_and_a_postern_peer() {
    require_python("dnslib, dkim, nacl");
    let port = free_port(&["127.0.0.2", "127.0.0.3"]);
    let mut records = mx_to("other.test", "127.0.0.2");
    records.extend(mx_to("third.test", "127.0.0.3"));
    // SPF for the receiving postern: the sender connects from 127.0.0.1.
    records.push(rr("example.com", "TXT", "v=spf1 ip4:127.0.0.1 -all"));
    let dns = Dns::start(records, false);

    // The receiving postern (third.test) on 127.0.0.3:port.
    let peer_cfg = format!(
        "[listen]\nsmtp = [\"127.0.0.3:{port}\"]\n{}",
        outbound_config(dns.port, port, "")
    );
    let peer = Server::start_with(&peer_cfg);
    add_user(&peer, "third.test", "friend@third.test", FRIEND_PW);

    let server = example_server(&outbound_config(dns.port, port, ""));
    let printed = server.cli_ok(&["domain", "dkim", "example.com"], "");
    let keys = dkim_records(&printed);
    assert_eq!(keys.len(), 2, "one Ed25519 and one RSA record: {printed}");
    assert!(
        printed.contains("k=ed25519") && printed.contains("k=rsa"),
        "{printed}"
    );
    dns.publish(keys);

    // smtp-sink is not listening yet: other.test is deferred, third.test delivered.
    submit(
        &server,
        &["friend@other.test", "friend@third.test", "bob@example.com"],
        "happy path",
        "Hello from the outbound test.\n.a line with a leading dot\n",
    );
    let id = wait_attempts(&server, "friend@other.test", 1);
    let listing = server.cli_ok(&["queue", "list"], "");
    assert!(
        listing.contains(&id) && listing.contains("<friend@other.test>"),
        "{listing}"
    );
    let line = queue_line(&server, &id, "friend@other.test");
    assert!(
        line.contains("4.4.1"),
        "connection refused is 4.4.1: {line}"
    );

    // The local recipient has it at once.
    let bob = inbox(&server, "bob@example.com", "bob-outbound-pw");
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0]["subject"], json!("happy path"));

    // Now smtp-sink listens: the next retry delivers.
    let sink_dir = server.dir.path().join("sink");
    let sink = Sink::start(&sink_dir, &format!("127.0.0.2:{port}"));
    let dumped = wait_for(DELIVERY, "the message at smtp-sink", || {
        sink.messages().into_iter().next()
    });
    wait_queue_empty(&server);
    let (meta, msg) = dumped.split_once("--\r\n").unwrap();
    assert!(meta.contains("X-Rcpt-Args: <friend@other.test>"), "{meta}");
    assert!(meta.contains("X-Mail-Args: <alice@example.com>"), "{meta}");
    let sigs = all_headers(msg, "DKIM-Signature");
    assert_eq!(sigs.len(), 2, "{msg}");
    assert!(
        msg.contains("\r\n.a line with a leading dot\r\n"),
        "dot-stuffing undone: {msg}"
    );
    let verdicts = dkimpy(&dns.path, msg.as_bytes());
    assert_eq!(verdicts.len(), 2);
    for (alg, ok) in &verdicts {
        assert!(
            ok,
            "dkimpy rejects the {alg} signature: {verdicts:?}\n{msg}"
        );
    }
    let algs: Vec<&str> = verdicts.iter().map(|(a, _)| a.as_str()).collect();
    assert!(
        algs.contains(&"ed25519-sha256") && algs.contains(&"rsa-sha256"),
        "{algs:?}"
    );

    // The postern peer verified both signatures with mail-auth on the way in.
    let got = inbox(&peer, "friend@third.test", FRIEND_PW);
    assert_eq!(got.len(), 1);
    let raw = text(&raw_of(&got[0]));
    let results = all_headers(&raw, "Authentication-Results").join(";");
    let resinfos: Vec<&str> = results.split(';').map(str::trim).collect();
    for sel in ["postern-ed25519-", "postern-rsa-"] {
        assert!(
            resinfos.iter().any(|r| r.starts_with("dkim=pass")
                && r.contains("header.d=example.com")
                && r.contains(sel)),
            "mail-auth did not pass the {sel} signature: {results}"
        );
    }
    // dkimpy agrees on the copy that crossed postern → postern.
    let verdicts = dkimpy(&dns.path, &raw_of(&got[0]));
    assert!(
        verdicts
            .iter()
            .filter(|(a, ok)| *ok && !a.is_empty())
            .count()
            >= 2,
        "{verdicts:?}"
    );

    // Ledger: a queue.deliver per external recipient, a queue.defer for the refused one.
    let delivered = actions(&server, "queue.deliver");
    let targets: Vec<&str> = delivered
        .iter()
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert!(
        targets.contains(&"friend@other.test") && targets.contains(&"friend@third.test"),
        "{delivered:?}"
    );
    assert!(!actions(&server, "queue.defer").is_empty());
    let deliver = actions(&server, "message.deliver");
    assert!(
        deliver.iter().any(|e| e.to_string().contains("\"queued\"")),
        "message.deliver names what was queued: {deliver:?}"
    );
    drop(sink);
}

// =======================================================================================
// 2. Failures: 5xx bounces at once, 4xx and dropped connections are retried.
// =======================================================================================

/// One SMTP reply (all its lines) from a blocking stream.
fn smtp_reply(s: &mut impl Read) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = s.read(&mut byte).expect("read an SMTP reply");
        assert!(n > 0, "connection closed; got {:?}", text(&out));
        out.push(byte[0]);
        if byte[0] == b'\n' {
            let all = text(&out);
            let last = all.trim_end().rsplit('\n').next().unwrap_or("").to_string();
            if last.len() < 4 || last.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }
}

/// Submits `data` byte for byte (no line-end repair by a client library) over 465 as
/// alice; the final reply to the data.
fn submit_raw(server: &Server, rcpt: &str, data: &[u8]) -> String {
    use base64::Engine;
    let mut s = tls_connect(server.addr("submissions"), &server.cert_path(), HOSTNAME);
    let mut step = |line: &[u8]| -> String {
        if !line.is_empty() {
            s.write_all(line).unwrap();
            s.flush().unwrap();
        }
        smtp_reply(&mut s)
    };
    assert!(step(b"").starts_with("220"));
    assert!(step(b"EHLO client.example\r\n").starts_with("250"));
    let plain = base64::engine::general_purpose::STANDARD
        .encode(format!("\0alice@example.com\0{ALICE_PW}"));
    let r = step(format!("AUTH PLAIN {plain}\r\n").as_bytes());
    assert!(r.starts_with("235"), "{r}");
    assert!(step(b"MAIL FROM:<alice@example.com>\r\n").starts_with("250"));
    let r = step(format!("RCPT TO:<{rcpt}>\r\n").as_bytes());
    assert!(r.starts_with("250"), "{r}");
    assert!(step(b"DATA\r\n").starts_with("354"));
    let mut body = data.to_vec();
    body.extend_from_slice(b"\r\n.\r\n");
    let r = step(&body);
    let _ = step(b"QUIT\r\n");
    r
}

#[test]
fn failures_bounce_at_once_or_are_retried_until_delivered() {
    require_python("dnslib, aiosmtpd");
    let hosts = [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
    ];
    let peer = Peer::start(&hosts, 0, None);
    peer.mode(json!({
        "rcpt": {
            "default": "250 2.1.5 OK",
            "hard@rcpt.test": "550 5.1.1 <hard@rcpt.test>: no such user here",
            "soft@rcpt.test": "451 4.2.0 mailbox busy, try later",
            "hard2@rcpt.test": "550 5.1.1 <hard2@rcpt.test>: no such user here",
            "soft2@rcpt.test": "452 4.2.2 mailbox full",
        },
        "hosts": {
            "127.0.0.3": {"data": "554 5.6.0 content refused by policy"},
            "127.0.0.4": {"data": "451 4.3.0 queue full, try later"},
            "127.0.0.5": {"disconnect_in_data": true},
        },
    }));
    let mut records = mx_to("rcpt.test", "127.0.0.2");
    records.extend(mx_to("data5.test", "127.0.0.3"));
    records.extend(mx_to("data4.test", "127.0.0.4"));
    records.extend(mx_to("drop.test", "127.0.0.5"));
    records.extend(mx_to("ok.test", "127.0.0.6"));
    records.push(rr("nullmx.test", "MX", "0 ."));
    // The preferred MX refuses connections (nothing listens on 127.0.0.7): the backup.
    records.push(rr("backup.test", "MX", "10 mx1.backup.test"));
    records.push(rr("backup.test", "MX", "20 mx2.backup.test"));
    records.push(rr("mx1.backup.test", "A", "127.0.0.7"));
    records.push(rr("mx2.backup.test", "A", "127.0.0.6"));
    // No MX: the domain's own address (RFC 5321 §5.1).
    records.push(rr("implicit.test", "A", "127.0.0.6"));
    let dns = Dns::start(records, false);
    let server = example_server(&outbound_config(dns.port, peer.port, ""));

    for (rcpt, subject) in [
        ("hard@rcpt.test", "rcpt 5xx"),
        ("soft@rcpt.test", "rcpt 4xx"),
        ("a@data5.test", "data 5xx"),
        ("a@data4.test", "data 4xx"),
        ("a@drop.test", "mid-data drop"),
        ("a@nullmx.test", "null mx"),
        ("a@nxdomain.test", "nxdomain"),
    ] {
        submit(&server, &[rcpt], subject, "This is the message body.\n");
    }
    // One transaction, three outcomes: refused, deferred, accepted.
    submit(
        &server,
        &["hard2@rcpt.test", "soft2@rcpt.test", "fine@rcpt.test"],
        "mixed",
        "This is the message body.\n",
    );
    submit(&server, &["a@backup.test"], "backup mx", "x\n");
    submit(&server, &["a@implicit.test"], "implicit mx", "x\n");

    // Permanent failures: one bounce each, at once, in alice's INBOX.
    let bounces = wait_dsns(&server, 5);
    for (subject, rcpt, status, diagnostic) in [
        ("rcpt 5xx", "hard@rcpt.test", "5.1.1", "no such user here"),
        ("mixed", "hard2@rcpt.test", "5.1.1", "no such user here"),
        (
            "data 5xx",
            "a@data5.test",
            "5.6.0",
            "content refused by policy",
        ),
        ("null mx", "a@nullmx.test", "5.1.10", ""),
        ("nxdomain", "a@nxdomain.test", "5.1.2", ""),
    ] {
        let found = dsn_about(&bounces, subject);
        assert_eq!(found.len(), 1, "one bounce for {subject:?}: {bounces:#?}");
        let recipients = check_dsn(found[0], "failed");
        assert_eq!(recipients.len(), 1, "{recipients:?}");
        let r = &recipients[0];
        assert_eq!(r["status"], json!(status), "{subject}: {r}");
        assert!(
            r["final-recipient"].as_str().unwrap().contains(rcpt),
            "{subject}: {r}"
        );
        let diag = r["diagnostic-code"].as_str().unwrap_or("");
        assert!(
            diag.contains(diagnostic),
            "{subject}: Diagnostic-Code {diag:?}"
        );
        if subject.contains("5xx") || subject == "mixed" {
            // The peer's own reply, as SMTP said it (RFC 3464 §2.3.6).
            assert!(diag.to_ascii_lowercase().starts_with("smtp;"), "{diag:?}");
            assert!(
                r["remote-mta"].as_str().is_some_and(|m| m.contains("mx.")),
                "{r}"
            );
        }
        assert_eq!(
            found[0]["subject"].as_str().map(|s| !s.is_empty()),
            Some(true)
        );
    }

    // Temporary failures: deferred and retried, with the peer's reply as the last error.
    for (rcpt, needle) in [
        ("soft@rcpt.test", "mailbox busy"),
        ("a@data4.test", "queue full"),
        ("a@drop.test", ""),
        ("soft2@rcpt.test", "mailbox full"),
    ] {
        let id = wait_attempts(&server, rcpt, 2);
        let line = queue_line(&server, &id, rcpt);
        assert!(
            line.contains(needle) && line.contains(" last: 4."),
            "{line}"
        );
    }
    assert!(
        peer.events()
            .iter()
            .any(|e| e["reply"] == json!("disconnect")),
        "the peer dropped a connection in the data"
    );
    // Accepted: the one good recipient of "mixed", the backup MX, the implicit MX.
    let fine = peer.wait_for_rcpt("fine@rcpt.test");
    assert_eq!(fine.rcpts(), vec!["fine@rcpt.test".to_string()]);
    assert_eq!(
        peer.wait_for_rcpt("a@backup.test").meta["local"],
        json!("127.0.0.6")
    );
    assert_eq!(
        peer.wait_for_rcpt("a@implicit.test").meta["local"],
        json!("127.0.0.6")
    );
    assert_eq!(peer.messages().len(), 3, "nothing else accepted yet");

    // Bare line feeds submitted byte for byte: never on the wire.
    let reply = submit_raw(
        &server,
        "lf@ok.test",
        b"From: alice@example.com\nTo: lf@ok.test\nSubject: bare lf\n\nline one\nline two\r\nline three\n",
    );
    let bare_lf_accepted = reply.starts_with("250");
    if bare_lf_accepted {
        let m = peer.wait_for_rcpt("lf@ok.test");
        assert_clean_wire(&m);
        assert!(
            m.text().contains("line one\r\nline two\r\nline three\r\n"),
            "{}",
            m.text()
        );
    } else {
        assert!(reply.starts_with('5'), "{reply}");
    }

    // The peer accepts from now on: every deferred message arrives, once, cleanly.
    peer.mode(json!({}));
    for rcpt in [
        "soft@rcpt.test",
        "a@data4.test",
        "a@drop.test",
        "soft2@rcpt.test",
    ] {
        let m = peer.wait_for_rcpt(rcpt);
        assert_clean_wire(&m);
        assert!(m.text().contains("This is the message body.\r\n"));
        assert_eq!(
            all_headers(&m.text(), "DKIM-Signature").len(),
            0,
            "example.com has no key here"
        );
    }
    wait_queue_empty(&server);
    for rcpt in [
        "soft@rcpt.test",
        "a@data4.test",
        "a@drop.test",
        "soft2@rcpt.test",
        "fine@rcpt.test",
        "a@backup.test",
        "a@implicit.test",
    ] {
        assert_eq!(peer.for_rcpt(rcpt).len(), 1, "{rcpt} delivered once");
    }
    assert!(peer.for_rcpt("hard2@rcpt.test").is_empty());
    assert!(peer.for_rcpt("hard@rcpt.test").is_empty());
    assert!(peer.for_rcpt("a@data5.test").is_empty());
    // No more DSNs: no delay notices (delay_notice_secs = 0), none for the delivered.
    assert_eq!(dsns(&server).len(), 5);
    let fails = actions(&server, "queue.fail");
    assert_eq!(fails.len(), 5, "{fails:#?}");
    assert!(actions(&server, "queue.defer").len() >= 8);
    assert_eq!(
        actions(&server, "queue.deliver").len(),
        7 + usize::from(bare_lf_accepted)
    );
    println!("bare LF submission: {}", reply.trim());
}

#[test]
fn one_delay_notice_then_an_expiry_bounce() {
    require_python("dnslib, aiosmtpd");
    let peer = Peer::start(&["127.0.0.2"], 0, None);
    peer.mode(json!({"rcpt": {"default": "451 4.2.1 greylisted, come back later"}}));
    let dns = Dns::start(mx_to("slow.test", "127.0.0.2"), false);
    let cfg = with_outbound(
        dns.port,
        peer.port,
        "max_queue_lifetime_secs = 5\ndelay_notice_secs = 2\n",
        "",
    );
    let server = example_server(&cfg);
    submit(&server, &["late@slow.test"], "slow one", "x\n");
    wait_queue_empty(&server);
    let got = wait_dsns(&server, 2);
    // A few more retry periods: nothing else comes.
    std::thread::sleep(Duration::from_millis(2500));
    let got2 = dsns(&server);
    assert_eq!(got2.len(), 2, "{got:#?}");
    let delayed: Vec<&Value> = got2
        .iter()
        .filter(|d| d["dsn"]["recipients"][0]["action"] == json!("delayed"))
        .collect();
    assert_eq!(delayed.len(), 1, "exactly one delay notice: {got2:#?}");
    let r = &check_dsn(delayed[0], "delayed")[0];
    assert!(r["status"].as_str().unwrap().starts_with("4."), "{r}");
    assert!(r.get("will-retry-until").is_some(), "{r}");
    assert!(
        r["diagnostic-code"]
            .as_str()
            .unwrap()
            .contains("greylisted"),
        "{r}"
    );
    let failed: Vec<&Value> = got2
        .iter()
        .filter(|d| d["dsn"]["recipients"][0]["action"] == json!("failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{got2:#?}");
    let r = &check_dsn(failed[0], "failed")[0];
    assert_eq!(r["status"], json!("4.4.7"), "{r}");
    assert!(
        r["diagnostic-code"]
            .as_str()
            .unwrap()
            .contains("greylisted"),
        "{r}"
    );
    assert_eq!(actions(&server, "queue.expire").len(), 1);
    assert!(peer.messages().is_empty());
}

#[test]
fn a_bounce_that_fails_is_not_bounced_again() {
    require_python("dnslib, aiosmtpd");
    let peer = Peer::start(&["127.0.0.2"], 0, None);
    peer.mode(json!({"rcpt": {"default": "451 4.2.0 not yet"}}));
    let mut records = mx_to("far.test", "127.0.0.2");
    // Once example.com is no longer ours, mail to it goes out to the same peer.
    records.extend(mx_to("example.com", "127.0.0.2"));
    let dns = Dns::start(records, false);
    let server = example_server(&outbound_config(dns.port, peer.port, ""));
    submit(&server, &["x@far.test"], "doomed", "x\n");
    wait_attempts(&server, "x@far.test", 1);
    // The sender goes away: its bounce has to leave through the queue, from <>.
    server.cli_ok(&["account", "remove", "alice@example.com"], "");
    server.cli_ok(&["account", "remove", "bob@example.com"], "");
    server.cli_ok(&["domain", "remove", "example.com"], "");
    peer.mode(json!({"rcpt": {"default": "550 5.1.1 nobody here"}}));
    wait_for(DELIVERY, "the bounce to fail", || {
        (actions(&server, "queue.fail").len() >= 2).then_some(())
    });
    wait_queue_empty(&server);
    std::thread::sleep(Duration::from_millis(2000));
    let dsn = actions(&server, "queue.dsn");
    assert_eq!(
        dsn.len(),
        1,
        "one bounce queued, none about the bounce: {dsn:#?}"
    );
    let fails = actions(&server, "queue.fail");
    assert_eq!(fails.len(), 2, "{fails:#?}");
    assert!(
        fails
            .iter()
            .any(|f| f["target"] == json!("alice@example.com")),
        "{fails:#?}"
    );
    assert_eq!(queue_ids(&server).len(), 0);
    assert!(peer.messages().is_empty());
}

// =======================================================================================
// 3. SIGKILL while delivering to a slow peer.
// =======================================================================================

#[test]
fn sigkill_mid_delivery_loses_nothing() {
    require_python("dnslib, aiosmtpd");
    const N: usize = 20;
    let peer = Peer::start(&["127.0.0.2"], 0, None);
    peer.mode(json!({"delay": 1.0}));
    let dns = Dns::start(mx_to("slow.test", "127.0.0.2"), false);
    let cfg = with_outbound(
        dns.port,
        peer.port,
        "connect_timeout_secs = 1\ncommand_timeout_secs = 1\ndata_timeout_secs = 3\n\
         lease_secs = 8\nconcurrency = 4\n",
        "",
    );
    let mut server = example_server(&cfg);
    let out = Command::new("python3")
        .arg(CHECK_SCRIPT)
        .arg("submit")
        .arg(server.addr("submission").port().to_string())
        .arg(server.cert_path())
        .arg(ALICE_PW)
        .arg(N.to_string())
        .arg("many@slow.test")
        .arg("kill")
        .output()
        .unwrap();
    assert!(out.status.success(), "submit: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        N,
        "every message acknowledged"
    );
    // Some delivered, and at least one transaction in its data phase right now: kill.
    let (before, in_flight) = wait_for(DELIVERY, "a delivery and one in flight", || {
        let delivered = peer.messages().len();
        let started = peer
            .events()
            .iter()
            .filter(|e| e["event"] == json!("data_start"))
            .count();
        (delivered > 0 && started > delivered).then_some((delivered, started - delivered))
    });
    assert!(
        before < N,
        "the kill must come mid-delivery ({before} of {N} delivered)"
    );
    {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        kill(Pid::from_raw(server.pid() as i32), Signal::SIGKILL).unwrap();
        server.proc.wait_exit(PATIENCE);
    }
    peer.mode(json!({"delay": 0.1}));
    restart(&mut server);
    let all = wait_for(Duration::from_secs(40), "every message at the peer", || {
        let subjects: std::collections::BTreeSet<String> =
            peer.messages().iter().map(Received::subject).collect();
        (subjects.len() == N).then_some(())
    });
    let _ = all;
    wait_queue_empty(&server);
    let received = peer.messages();
    for m in &received {
        assert_clean_wire(m);
    }
    let duplicates = received.len() - N;
    println!(
        "kill mid-delivery: {before} delivered before the kill, {in_flight} in the data phase at the kill, \
         {} deliveries in all, {duplicates} duplicate(s)",
        received.len()
    );
    assert!(in_flight > 0, "the kill must catch transactions in flight");
    server.stop();
    let verify = server.cli_ok(&["store", "verify"], "");
    assert!(!verify.to_lowercase().contains("broken"), "{verify}");
}

// =======================================================================================
// 4. The operator's commands: queue retry / delete, DKIM keys.
// =======================================================================================

#[test]
fn cli_queue_retry_delete_and_dkim_keys() {
    require_python("dnslib, aiosmtpd, dkim, nacl");
    let peer = Peer::start(&["127.0.0.2"], 0, None);
    peer.mode(json!({"rcpt": {"default": "451 4.2.0 not now"}}));
    let dns = Dns::start(mx_to("later.test", "127.0.0.2"), false);
    let cfg = with_outbound(
        dns.port,
        peer.port,
        "retry_base_secs = 3600\nretry_max_secs = 3600\n",
        "",
    );
    let server = example_server(&cfg);

    // DKIM keys: two added, one removed; --show prints what is left.
    let out = server.cli_ok(
        &[
            "domain",
            "dkim",
            "example.com",
            "--algorithm",
            "ed25519",
            "--selector",
            "one",
        ],
        "",
    );
    assert!(out.contains("one._domainkey.example.com."), "{out}");
    server.cli_ok(
        &[
            "domain",
            "dkim",
            "example.com",
            "--algorithm",
            "rsa",
            "--selector",
            "two",
        ],
        "",
    );
    let shown = server.cli_ok(&["domain", "dkim", "example.com", "--show"], "");
    assert_eq!(dkim_records(&shown).len(), 2, "{shown}");
    let removed = server.cli_ok(&["domain", "dkim", "example.com", "--remove", "two"], "");
    assert!(removed.contains("removed"), "{removed}");
    let shown = server.cli_ok(&["domain", "dkim", "example.com", "--show"], "");
    let keys = dkim_records(&shown);
    assert_eq!(keys.len(), 1, "{shown}");
    assert!(
        shown.contains("one._domainkey") && !shown.contains("two._domainkey"),
        "{shown}"
    );
    dns.publish(keys);

    submit(&server, &["a@later.test"], "retry me", "x\n");
    submit(&server, &["b@later.test"], "delete me", "x\n");
    let id_a = wait_attempts(&server, "a@later.test", 1);
    let id_b = wait_attempts(&server, "b@later.test", 1);
    assert_ne!(id_a, id_b);
    peer.mode(json!({}));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        peer.messages().is_empty(),
        "the next attempt is an hour away"
    );

    let out = server.cli_ok(&["queue", "retry", &id_a], "");
    assert!(out.contains("1 recipient"), "{out}");
    let m = peer.wait_for_rcpt("a@later.test");
    let sigs = all_headers(&m.text(), "DKIM-Signature");
    assert_eq!(sigs.len(), 1, "only the remaining key signs");
    assert!(sigs[0].contains("s=one"), "{sigs:?}");
    let verdicts = dkimpy(&dns.path, &m.raw);
    assert_eq!(verdicts, vec![("ed25519-sha256".to_string(), true)]);

    server.cli_ok(&["queue", "delete", &id_b], "");
    assert_eq!(queue_ids(&server), Vec::<String>::new());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(peer.for_rcpt("b@later.test").is_empty());
    assert!(dsns(&server).is_empty(), "a deleted message is not bounced");
    assert_eq!(actions(&server, "queue.retry").len(), 1);
    assert_eq!(actions(&server, "queue.delete").len(), 1);
    assert_eq!(actions(&server, "dkim.add").len(), 2);
    assert_eq!(actions(&server, "dkim.remove").len(), 1);
}

// =======================================================================================
// 5. TLS: opportunistic STARTTLS, DANE-EE matching and not matching.
// =======================================================================================

#[test]
fn tls_opportunistic_and_dane() {
    require_python("dnslib, aiosmtpd");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, spki_sha256) = self_signed(dir.path(), "mx.tls.test");
    let peer = Peer::start(&["127.0.0.2"], 0, Some((&cert, &key)));
    let port = peer.port;
    // The same port on another address, without STARTTLS (stripped by an attacker).
    let plain = Peer::start(&["127.0.0.3"], port, None);
    let mut records = mx_to("tls.test", "127.0.0.2");
    records.extend(mx_to("stripped.test", "127.0.0.3"));
    records.push(rr(
        &format!("_{port}._tcp.mx.stripped.test"),
        "TLSA",
        &format!("3 1 1 {spki_sha256}"),
    ));
    records.extend(mx_to("dane.test", "127.0.0.2"));
    records.extend(mx_to("badane.test", "127.0.0.2"));
    records.push(rr(
        &format!("_{port}._tcp.mx.dane.test"),
        "TLSA",
        &format!("3 1 1 {spki_sha256}"),
    ));
    records.push(rr(
        &format!("_{port}._tcp.mx.badane.test"),
        "TLSA",
        &format!("3 1 1 {}", "ab".repeat(32)),
    ));
    // The resolver vouches for every answer (AD bit): DANE applies.
    let dns = Dns::start(records, true);
    let server = example_server(&outbound_config(dns.port, port, ""));
    submit(&server, &["a@tls.test"], "opportunistic", "x\n");
    submit(&server, &["a@dane.test"], "dane match", "x\n");
    submit(&server, &["a@badane.test"], "dane mismatch", "x\n");
    submit(
        &server,
        &["a@stripped.test"],
        "dane without starttls",
        "x\n",
    );

    for rcpt in ["a@tls.test", "a@dane.test"] {
        let m = peer.wait_for_rcpt(rcpt);
        assert_eq!(m.meta["tls"], json!(true), "{rcpt} over TLS: {:?}", m.meta);
        assert_clean_wire(&m);
    }
    let id = wait_attempts(&server, "a@badane.test", 2);
    let line = queue_line(&server, &id, "a@badane.test");
    assert!(line.contains("4.7.5"), "{line}");
    assert!(peer.for_rcpt("a@badane.test").is_empty());
    assert!(
        !peer
            .events()
            .iter()
            .any(|e| e["rcpt_tos"].to_string().contains("badane")),
        "never sent in plaintext: {:?}",
        peer.events()
    );
    let id = wait_attempts(&server, "a@stripped.test", 2);
    let line = queue_line(&server, &id, "a@stripped.test");
    assert!(line.contains("4.7.5"), "{line}");
    assert!(plain.messages().is_empty(), "never sent in plaintext");
    assert!(plain.events().is_empty(), "{:?}", plain.events());
    let deliveries = actions(&server, "queue.deliver");
    assert_eq!(deliveries.len(), 2, "{deliveries:#?}");
}

// =======================================================================================
// 8BITMIME and SMTPUTF8 carried to the next hop.
// =======================================================================================

#[test]
fn eight_bit_and_smtputf8_reach_the_next_hop_intact() {
    require_python("dnslib, aiosmtpd");
    let peer = Peer::start(&["127.0.0.2"], 0, None);
    let dns = Dns::start(mx_to("utf8.test", "127.0.0.2"), false);
    let server = example_server(&outbound_config(dns.port, peer.port, ""));
    let rcpt = "jürgen@utf8.test";
    let out = Command::new("python3")
        .arg(CHECK_SCRIPT)
        .arg("submit-utf8")
        .arg(server.addr("submission").port().to_string())
        .arg(server.cert_path())
        .arg(ALICE_PW)
        .arg(rcpt)
        .output()
        .unwrap();
    assert!(out.status.success(), "submit: {}", text(&out.stderr));
    let m = peer.wait_for_rcpt(rcpt);
    let options: Vec<String> = m.meta["mail_options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_ascii_uppercase())
        .collect();
    assert!(options.contains(&"SMTPUTF8".to_string()), "{options:?}");
    assert!(
        options.contains(&"BODY=8BITMIME".to_string()),
        "{options:?}"
    );
    let body = String::from_utf8(m.raw.clone()).expect("UTF-8 as sent");
    assert!(body.contains("Subject: Grüße aus Köln\r\n"), "{body}");
    assert!(body.contains("Schöne Grüße, ½ € — ✓\r\n"), "{body}");
    assert_clean_wire(&m);
    wait_queue_empty(&server);
}

// =======================================================================================
// DSN parameters of the submission (RFC 3461) through the queue.
// =======================================================================================

fn send(server: &Server, spec: Value) {
    let out = Command::new("python3")
        .arg(CHECK_SCRIPT)
        .arg("send")
        .arg(server.addr("submission").port().to_string())
        .arg(server.cert_path())
        .arg(ALICE_PW)
        .arg(spec.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "submit: {}", text(&out.stderr));
}

#[test]
fn dsn_parameters_notify_ret_envid_orcpt() {
    require_python("dnslib, aiosmtpd");
    let peer = Peer::start(&["127.0.0.2"], 0, None);
    peer.mode(json!({"rcpt": {
        "default": "250 2.1.5 OK",
        "never@dsn.test": "550 5.1.1 no such user",
        "hdrs@dsn.test": "550 5.1.1 no such user",
        "full@dsn.test": "550 5.1.1 no such user",
    }}));
    let dns = Dns::start(mx_to("dsn.test", "127.0.0.2"), false);
    let server = example_server(&outbound_config(dns.port, peer.port, ""));
    send(
        &server,
        json!([
            {"rcpts": ["relay@dsn.test"], "subject": "notify success",
             "mail_options": ["RET=HDRS", "ENVID=env-success"],
             "rcpt_options": ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;relay@dsn.test"]},
            {"rcpts": ["quiet@dsn.test"], "subject": "no notify", "body": "quiet\r\n"},
            {"rcpts": ["never@dsn.test"], "subject": "notify never",
             "rcpt_options": ["NOTIFY=NEVER"]},
            {"rcpts": ["hdrs@dsn.test"], "subject": "ret hdrs",
             "mail_options": ["RET=HDRS", "ENVID=env-hdrs"], "body": "SECRET BODY\r\n"},
            {"rcpts": ["full@dsn.test"], "subject": "ret full",
             "mail_options": ["RET=FULL"], "body": "THE FULL BODY\r\n"},
        ]),
    );
    peer.wait_for_rcpt("relay@dsn.test");
    peer.wait_for_rcpt("quiet@dsn.test");
    wait_queue_empty(&server);
    let got = wait_dsns(&server, 3);
    std::thread::sleep(Duration::from_millis(1500));
    let got = {
        let again = dsns(&server);
        assert_eq!(again.len(), got.len(), "{again:#?}");
        again
    };
    assert_eq!(
        got.len(),
        3,
        "relayed + two bounces, none for NOTIFY=NEVER: {got:#?}"
    );
    assert!(dsn_about(&got, "notify never").is_empty());
    assert!(
        dsn_about(&got, "no notify").is_empty(),
        "no success DSN unasked"
    );

    // The next hop has no DSN extension: we report `relayed` (RFC 3461 §6.2.2).
    let relayed = dsn_about(&got, "notify success");
    assert_eq!(relayed.len(), 1, "{got:#?}");
    let r = &check_dsn(relayed[0], "relayed")[0];
    assert!(r["status"].as_str().unwrap().starts_with("2."), "{r}");
    assert_eq!(
        r["original-recipient"]
            .as_str()
            .map(|s| s.replace(' ', "").to_ascii_lowercase()),
        Some("rfc822;relay@dsn.test".into()),
        "{r}"
    );
    assert_eq!(
        relayed[0]["dsn"]["per_message"]["original-envelope-id"],
        json!("env-success"),
        "{}",
        relayed[0]["dsn"]
    );
    assert_eq!(relayed[0]["dsn"]["parts"][2], json!("text/rfc822-headers"));

    let hdrs = dsn_about(&got, "ret hdrs");
    assert_eq!(hdrs.len(), 1);
    check_dsn(hdrs[0], "failed");
    assert_eq!(hdrs[0]["dsn"]["parts"][2], json!("text/rfc822-headers"));
    assert_eq!(
        hdrs[0]["dsn"]["per_message"]["original-envelope-id"],
        json!("env-hdrs")
    );
    assert!(
        !text(&raw_of(hdrs[0])).contains("SECRET BODY"),
        "RET=HDRS returns no body"
    );

    let full = dsn_about(&got, "ret full");
    assert_eq!(full.len(), 1);
    check_dsn(full[0], "failed");
    assert_eq!(full[0]["dsn"]["parts"][2], json!("message/rfc822"));
    assert!(
        full[0]["dsn"]["returned"]
            .as_str()
            .unwrap()
            .contains("THE FULL BODY")
    );
}

// =======================================================================================
// Two nodes on one PostgreSQL schema share the queue; one dies, the other takes over.
// =======================================================================================

fn pg_url() -> String {
    std::env::var("POSTERN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Drops the test's schema when the test ends, also on panic.
struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &pg_url(),
                "-qc",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0),
            ])
            .output();
    }
}

#[test]
fn two_nodes_share_the_queue_and_one_takes_over_from_a_dead_one() {
    require_python("dnslib, aiosmtpd");
    const N: usize = 20;
    let schema = Schema(format!("postern_ob_{:016x}", rand_u64()));
    let peer = Peer::start(&["127.0.0.2"], 0, None);
    peer.mode(json!({"delay": 0.5}));
    let dns = Dns::start(mx_to("slow.test", "127.0.0.2"), false);
    let store = format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"{}\"\npool_size = 4\n",
        pg_url(),
        schema.0
    );
    let cfg = with_outbound(
        dns.port,
        peer.port,
        "connect_timeout_secs = 1\ncommand_timeout_secs = 1\ndata_timeout_secs = 3\n\
         lease_secs = 8\nconcurrency = 2\n",
        &store,
    );
    let mut a = example_server(&cfg);
    let b = Server::start_with(&cfg);
    let out = Command::new("python3")
        .arg(CHECK_SCRIPT)
        .arg("submit")
        .arg(a.addr("submission").port().to_string())
        .arg(a.cert_path())
        .arg(ALICE_PW)
        .arg(N.to_string())
        .arg("many@slow.test")
        .arg("shared")
        .output()
        .unwrap();
    assert!(out.status.success(), "submit: {}", text(&out.stderr));
    let by_node = |server: &Server| -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for e in actions(server, "queue.deliver") {
            let node = e["session"]["client_id"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            *m.entry(node).or_default() += 1;
        }
        m
    };
    // Both nodes deliver.
    let first = wait_for(DELIVERY, "deliveries by both nodes", || {
        let m = by_node(&b);
        (m.len() == 2).then_some(m)
    });
    let before = peer.messages().len();
    assert!(
        before < N,
        "A must die mid-queue ({before} of {N} delivered)"
    );
    {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        kill(Pid::from_raw(a.pid() as i32), Signal::SIGKILL).unwrap();
        a.proc.wait_exit(PATIENCE);
    }
    // B delivers the rest, including what A held when it died (after the lease).
    wait_for(Duration::from_secs(40), "every message at the peer", || {
        let subjects: std::collections::BTreeSet<String> =
            peer.messages().iter().map(Received::subject).collect();
        (subjects.len() == N).then_some(())
    });
    wait_queue_empty(&b);
    let received = peer.messages().len();
    let after = by_node(&b);
    println!(
        "two nodes: deliveries by node before the kill {first:?}, in the end {after:?}; \
         {received} deliveries for {N} messages ({} duplicate(s))",
        received - N
    );
    let s = b.cli_ok(&["store", "verify"], "");
    assert!(s.contains("store ok"), "{s}");
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

/// One SMTP transaction on the MX listener (port 25 role) from 127.0.0.1; each reply in
/// order (greeting, EHLO, MAIL, RCPT…, and DATA's two when every RCPT got 250).
fn mx_transaction(server: &Server, from: &str, rcpts: &[&str], data: &str) -> Vec<String> {
    let mut s = connect(server.addr("smtp"));
    let mut out = vec![smtp_reply(&mut s)];
    let mut step = |line: String, out: &mut Vec<String>| {
        s.write_all(line.as_bytes()).unwrap();
        let r = smtp_reply(&mut s);
        out.push(r.clone());
        r
    };
    step("EHLO relay.origin.test\r\n".into(), &mut out);
    step(format!("MAIL FROM:<{from}>\r\n"), &mut out);
    let mut all_ok = true;
    for r in rcpts {
        all_ok &= step(format!("RCPT TO:<{r}>\r\n"), &mut out).starts_with("250");
    }
    if all_ok {
        step("DATA\r\n".into(), &mut out);
        step(format!("{data}\r\n.\r\n"), &mut out);
    }
    step("QUIT\r\n".into(), &mut out);
    out
}

/// An alias of ours forwarding to another domain: the mail goes out through the queue
/// with an SRS envelope sender of our domain; a bounce to that address goes back to the
/// original sender; forged, altered or misused SRS addresses are refused.
#[test]
fn alias_forwarding_uses_srs_and_bounces_come_back() {
    require_python("dnslib");
    let port = free_port(&["127.0.0.2", "127.0.0.3"]);
    let mut records = mx_to("other.test", "127.0.0.2");
    records.extend(mx_to("origin.test", "127.0.0.2"));
    records.extend(mx_to("rcpt.test", "127.0.0.3"));
    let dns = Dns::start(records, false);
    // An aiosmtpd peer for rcpt.test that has no such user.
    let peer = Peer::start(&["127.0.0.3"], port, None);
    peer.mode(json!({"rcpt": {"default": "250 2.1.5 OK",
        "nobody@rcpt.test": "550 5.1.1 <nobody@rcpt.test>: no such user here"}}));
    let server = example_server(&outbound_config(dns.port, port, ""));
    server.cli_ok(&["alias", "add", "fwd@example.com", "carol@other.test"], "");
    server.cli_ok(&["alias", "add", "both@example.com", "bob@example.com"], "");
    server.cli_ok(&["alias", "add", "both@example.com", "dave@other.test"], "");
    let sink = Sink::start(
        &server.dir.path().join("sink"),
        &format!("127.0.0.2:{port}"),
    );

    let data = "From: Sender <sender@origin.test>\r\nTo: fwd@example.com\r\n\
                Subject: forwarded\r\n\r\nPlease forward me.";
    let replies = mx_transaction(
        &server,
        "sender@origin.test",
        &["fwd@example.com", "both@example.com"],
        data,
    );
    assert!(replies[3].starts_with("250"), "{replies:?}");
    assert!(replies[4].starts_with("250"), "{replies:?}");
    assert!(replies[6].starts_with("250"), "{replies:?}");
    // bob (through `both`) has it locally.
    let bob = inbox(&server, "bob@example.com", "bob-outbound-pw");
    assert_eq!(bob.len(), 1, "{bob:?}");
    // carol and dave get it from the SRS sender of example.com, in one transaction.
    let dumped = wait_for(DELIVERY, "the forward at smtp-sink", || {
        sink.messages().into_iter().next()
    });
    let (meta, msg) = dumped.split_once("--\r\n").unwrap();
    assert!(msg.contains("Please forward me."), "{msg}");
    let mail_args = meta
        .lines()
        .find_map(|l| l.strip_prefix("X-Mail-Args: <"))
        .and_then(|l| l.split('>').next())
        .unwrap()
        .to_string();
    assert!(mail_args.starts_with("SRS0="), "{meta}");
    assert!(
        mail_args.ends_with("=origin.test=sender@example.com"),
        "{meta}"
    );
    assert!(
        meta.contains("<carol@other.test>") && meta.contains("<dave@other.test>"),
        "{meta}"
    );
    wait_queue_empty(&server);
    // The delivery's ledger entry names the forward.
    let entries = actions(&server, "message.deliver");
    assert!(
        entries
            .iter()
            .any(|e| e.to_string().contains("forwarded_to")
                && e.to_string().contains("carol@other.test")
                && e.to_string()
                    .contains(&format!("\"forward_sender\":\"{mail_args}\""))),
        "{entries:?}"
    );

    // A bounce to the SRS address goes back to the original sender, as a bounce.
    let bounce = "From: MAILER-DAEMON@other.test\r\nTo: sender@origin.test\r\n\
                  Subject: Undelivered Mail Returned to Sender\r\n\r\ncarol: mailbox full";
    let replies = mx_transaction(&server, "", &[&mail_args], bounce);
    assert!(replies[3].starts_with("250"), "{replies:?}");
    assert!(replies[5].starts_with("250"), "{replies:?}");
    let returned = wait_for(DELIVERY, "the returned bounce at smtp-sink", || {
        sink.messages()
            .into_iter()
            .find(|m| m.contains("mailbox full"))
    });
    assert!(returned.contains("X-Mail-Args: <>"), "{returned}");
    assert!(
        returned.contains("X-Rcpt-Args: <sender@origin.test>"),
        "{returned}"
    );

    // The SRS address used with a sender (not a bounce): refused.
    let r = mx_transaction(&server, "spammer@else.test", &[&mail_args], "x");
    assert!(r[3].starts_with("550 5.7.1"), "{r:?}");
    // Altered (another destination under the same hash), or made up: unknown.
    let forged = mail_args.replace("=origin.test=", "=victim.test=");
    let r = mx_transaction(&server, "", &[&forged], "x");
    assert!(r[3].starts_with("550 5.1.1"), "{r:?}");
    let r = mx_transaction(
        &server,
        "",
        &["SRS0=AAAAAA=AA=victim.test=x@example.com"],
        "x",
    );
    assert!(r[3].starts_with("550 5.1.1"), "{r:?}");
    // Nothing else left the server.
    wait_queue_empty(&server);
    assert_eq!(sink.messages().len(), 2);

    // The forward's destination refuses it: our own queue's bounce goes to the sender
    // the SRS address encodes (not to a catch-all of ours, not lost).
    server.cli_ok(&["alias", "add", "rej@example.com", "nobody@rcpt.test"], "");
    let replies = mx_transaction(
        &server,
        "sender@origin.test",
        &["rej@example.com"],
        "From: sender@origin.test\r\nSubject: will bounce\r\n\r\nno one there",
    );
    assert!(replies[5].starts_with("250"), "{replies:?}");
    let dsn = wait_for(DELIVERY, "the DSN for the refused forward", || {
        sink.messages()
            .into_iter()
            .find(|m| m.contains("nobody@rcpt.test") && m.contains("X-Mail-Args: <>"))
    });
    assert!(dsn.contains("X-Rcpt-Args: <sender@origin.test>"), "{dsn}");
    assert!(dsn.contains("Action: failed"), "{dsn}");
    // The ORCPT of the forward names the address the sender wrote.
    assert!(dsn.contains("rej@example.com"), "{dsn}");
    wait_queue_empty(&server);
}
