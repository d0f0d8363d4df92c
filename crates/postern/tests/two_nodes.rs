//! Two `postern serve` nodes on one PostgreSQL schema (issue 7): mail delivered through
//! node A is there when node B is asked, and the other way round; both nodes' admin
//! APIs and CLIs see one set of accounts, and the ledger is one chain.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`; override with
//! POSTERN_TEST_PG_URL). `.ci/run` makes sure one answers; without it this test fails.

mod common;

use common::Server;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn pg_url() -> String {
    std::env::var("POSTERN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Drops the test's schema when the test ends, also on panic.
struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &pg_url(),
                "-qc",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0),
            ])
            .output();
    }
}

/// One SMTP transaction, checking every reply's code.
fn smtp_send(addr: SocketAddr, from: &str, to: &str, body: &str) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let expect = |code: &str, r: &mut BufReader<TcpStream>| loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    };
    expect("220", &mut r);
    for (cmd, code) in [
        ("EHLO client.example".to_string(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        write!(w, "{cmd}\r\n").unwrap();
        expect(code, &mut r);
    }
    write!(
        w,
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: two nodes\r\n\r\n{body}\r\n.\r\n"
    )
    .unwrap();
    expect("250", &mut r);
    write!(w, "QUIT\r\n").unwrap();
    expect("221", &mut r);
}

fn messages_of(node: &Server, address: &str) -> u64 {
    let out = node.cli_ok(&["account", "show", address], "");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["messages"].as_u64().unwrap()
}

#[test]
fn two_nodes_serve_one_set_of_mailboxes() {
    let schema = Schema(format!("postern_t_{:016x}", rand_u64()));
    let store = format!(
        "[auth]\nallow_plaintext_on_loopback = true\nfree_attempts_per_account = 2\nmax_delay_secs = 60\n[outbound]\nenabled = false\n[smtp]\nmax_unknown_recipients = 2\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"{}\"\npool_size = 4\n",
        pg_url(),
        schema.0
    );
    let a = Server::start_with(&store);
    let b = Server::start_with(&store);

    // Accounts made through A's CLI are B's too.
    a.cli_ok(&["domain", "add", "example.com"], "");
    a.cli_ok(
        &["account", "add", "alice@example.com"],
        "alice-password-1\n",
    );
    let listed = b.cli_ok(&["account", "list"], "");
    assert!(
        listed.starts_with("alice@example.com individual"),
        "{listed}"
    );

    // Delivered through A, read through B; and back.
    smtp_send(
        a.addr("smtp"),
        "sender@outside.example",
        "alice@example.com",
        "via node A",
    );
    assert_eq!(messages_of(&b, "alice@example.com"), 1);
    smtp_send(
        b.addr("smtp"),
        "sender@outside.example",
        "alice@example.com",
        "via node B",
    );
    assert_eq!(messages_of(&a, "alice@example.com"), 2);

    // B's admin API sees what A's CLI made.
    let (status, body) = b.api("GET", "/api/v1/accounts", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["accounts"][0]["address"], "alice@example.com",
        "{body}"
    );
    assert_eq!(body["accounts"][0]["messages"], 2, "{body}");

    // One ledger, one chain, whichever node checks it; the store verifies from both.
    for node in [&a, &b] {
        let v = node.cli_ok(&["audit", "verify"], "");
        assert!(v.starts_with("ledger ok: "), "{v}");
        let s = node.cli_ok(&["store", "verify"], "");
        assert!(s.contains("store ok"), "{s}");
    }
    let shown_a = a.cli_ok(
        &["audit", "show", "--account", "alice@example.com", "--json"],
        "",
    );
    let delivered = shown_a
        .lines()
        .filter(|l| l.contains("\"message.deliver\""))
        .count();
    assert_eq!(delivered, 2, "{shown_a}");

    // IDLE on node B sees a delivery through node A (LISTEN/NOTIFY → change journal).
    let mut idle = Imap::login(b.addr("imap"), "alice@example.com", "alice-password-1");
    idle.cmd("a1 SELECT INBOX", "a1 OK");
    idle.send("a2 IDLE\r\n");
    idle.until("+ ");
    let sent = std::time::Instant::now();
    smtp_send(
        a.addr("smtp"),
        "sender@outside.example",
        "alice@example.com",
        "wake node B",
    );
    let acked = sent.elapsed();
    idle.until("* 3 EXISTS");
    let seen = sent.elapsed();
    eprintln!(
        "IDLE on B saw A's delivery {:?} after the 250 ({:?} after DATA began)",
        seen - acked,
        seen
    );
    assert!(seen - acked < Duration::from_secs(5), "{:?}", seen - acked);
    idle.send("DONE\r\n");
    idle.until("a2 OK");

    // Login throttling counts across nodes (the counters are in the database). Two
    // failures on A, one on B (past the two free ones: 1 s delay), and a fourth on B,
    // whose answer waits out its 2 s delay: meanwhile the right password is refused on
    // both nodes.
    let fail = |addr: SocketAddr| {
        let mut c = Imap::connect(addr);
        c.send("f1 LOGIN \"alice@example.com\" \"wrong\"\r\n");
        let line = c.until("f1 ");
        assert!(line.starts_with("f1 NO"), "{line}");
    };
    fail(a.addr("imap"));
    fail(a.addr("imap"));
    fail(b.addr("imap"));
    let b_imap = b.addr("imap");
    let fourth = std::thread::spawn(move || fail(b_imap));
    std::thread::sleep(Duration::from_millis(500));
    for node in [&a, &b] {
        let mut c = Imap::connect(node.addr("imap"));
        c.send("t1 LOGIN \"alice@example.com\" \"alice-password-1\"\r\n");
        let line = c.until("t1 ");
        assert!(
            line.starts_with("t1 NO [UNAVAILABLE]"),
            "throttled everywhere: {line}"
        );
    }
    fourth.join().unwrap();

    // RCPT probing counts across nodes too: with 2 unknown recipients per connection
    // the per-address threshold is 10; 6 through A and 4 through B block the address on
    // both nodes, though neither node alone has seen 10.
    for (node, n) in [(&a, 3), (&b, 2)] {
        for _ in 0..n {
            let codes = probe(node.addr("smtp"), 2);
            assert_eq!(codes, vec![550, 550], "{codes:?}");
        }
    }
    for node in [&a, &b] {
        let codes = probe(node.addr("smtp"), 1);
        assert_eq!(codes, vec![450], "blocked everywhere: {codes:?}");
    }
}

/// One SMTP session naming `n` unknown recipients; the RCPT reply codes.
fn probe(addr: SocketAddr, n: usize) -> Vec<u16> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let reply = |r: &mut BufReader<TcpStream>| -> u16 {
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            }
        }
    };
    reply(&mut r);
    write!(w, "EHLO prober.example\r\n").unwrap();
    reply(&mut r);
    write!(w, "MAIL FROM:<p@prober.example>\r\n").unwrap();
    reply(&mut r);
    let mut codes = Vec::new();
    for i in 0..n {
        write!(w, "RCPT TO:<nobody{i}@example.com>\r\n").unwrap();
        codes.push(reply(&mut r));
    }
    let _ = write!(w, "QUIT\r\n");
    codes
}

/// A minimal IMAP client: line-based, enough for LOGIN, SELECT and IDLE.
struct Imap {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Imap {
    fn connect(addr: SocketAddr) -> Imap {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Imap {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        c.until("* OK");
        c
    }

    fn login(addr: SocketAddr, user: &str, pass: &str) -> Imap {
        let mut c = Imap::connect(addr);
        c.cmd(&format!("l1 LOGIN \"{user}\" \"{pass}\""), "l1 OK");
        c
    }

    fn send(&mut self, text: &str) {
        self.w.write_all(text.as_bytes()).unwrap();
    }

    /// Reads lines until one starts with `prefix`; panics on a timeout.
    fn until(&mut self, prefix: &str) -> String {
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).unwrap();
            assert!(n > 0, "connection closed waiting for {prefix:?}");
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    fn cmd(&mut self, line: &str, ok: &str) {
        self.send(&format!("{line}\r\n"));
        self.until(ok);
    }
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
