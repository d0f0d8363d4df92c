//! `postern store migrate` (issue 7): an embedded installation with accounts, an app
//! password, an alias, a group, imported and delivered mail, flags and moves is copied
//! into PostgreSQL; a server started on the new schema shows every mailbox with the same
//! UIDVALIDITY, UIDs, flags, MODSEQs and bytes, and the same ledger head.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`; override with
//! POSTERN_TEST_PG_URL); without it this test fails.

#[path = "imap/client.rs"]
#[allow(dead_code)]
mod client;
mod common;

use client::Client;
use common::*;
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

/// Plaintext login on loopback; no queue runner (the queued message must stay queued and
/// nothing may leave loopback).
const AUTH: &str = "[auth]\nallow_plaintext_on_loopback = true\n[outbound]\nenabled = false\n";
const ALICE: (&str, &str) = ("alice@example.com", "alice-password");
const BOB: (&str, &str) = ("bob@example.com", "bob-password");

/// One SMTP transaction, checking every reply's code.
fn smtp_send(addr: SocketAddr, from: &str, to: &str, body: &str) {
    smtp_send_as(addr, None, from, to, body)
}

/// The same, after AUTH PLAIN with `login` (submission).
fn smtp_send_as(addr: SocketAddr, login: Option<&str>, from: &str, to: &str, body: &str) {
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
    let mut cmds = vec![("EHLO client.example".to_string(), "250")];
    if let Some(plain) = login {
        cmds.push((format!("AUTH PLAIN {plain}"), "235"));
    }
    for (cmd, code) in cmds.into_iter().chain([
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
    ]) {
        write!(w, "{cmd}\r\n").unwrap();
        expect(code, &mut r);
    }
    write!(
        w,
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: before the move\r\n\r\n{body}\r\n.\r\n"
    )
    .unwrap();
    expect("250", &mut r);
    write!(w, "QUIT\r\n").unwrap();
    expect("221", &mut r);
}

/// Everything IMAP shows of an account's mailboxes: per mailbox (by name) the SELECT
/// data (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, EXISTS) and every message's UID, FLAGS,
/// MODSEQ, size and whole bytes (BODY.PEEK[]: reading changes no flag).
fn imap_state(server: &Server, who: (&str, &str)) -> String {
    let mut c = Client::connect(server.addr("imap"));
    c.login(who.0, who.1);
    c.cmd("ENABLE CONDSTORE").ok();
    let list = c.cmd("LIST \"\" \"*\"");
    list.ok();
    let mut names: Vec<String> = list
        .lines("* LIST")
        .iter()
        .map(|l| {
            let name = l.rsplit_once(' ').unwrap().1;
            name.trim_matches('"').to_string()
        })
        .collect();
    names.sort();
    assert!(names.len() >= 2, "{list:?}");
    let mut out = String::new();
    for name in names {
        let sel = c.cmd(&format!("SELECT \"{name}\""));
        sel.ok();
        out += &format!("== {name}\n");
        for l in &sel.untagged {
            if ["UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ", "EXISTS"]
                .iter()
                .any(|k| l.contains(k))
            {
                out += &format!("{l}\n");
            }
        }
        let f = c.cmd("UID FETCH 1:* (UID FLAGS MODSEQ RFC822.SIZE BODY.PEEK[])");
        f.ok();
        for l in &f.untagged {
            out += &format!("{l}\n");
        }
    }
    c.cmd("LOGOUT").ok();
    out
}

/// `ledger ok: …` and `head: SEQ:HASH`.
fn audit(server: &Server) -> String {
    let v = server.cli_ok(&["audit", "verify"], "");
    assert!(v.starts_with("ledger ok: "), "{v}");
    v
}

/// The directory as the CLI lists it.
fn directory(server: &Server) -> String {
    let mut out = String::new();
    for args in [
        &["domain", "list"][..],
        &["account", "list"],
        &["alias", "list"],
        &["group", "members", "team@example.com"],
        &["account", "app-password", "list", ALICE.0],
    ] {
        out += &server.cli_ok(args, "");
    }
    out
}

#[test]
fn embedded_installation_migrates_without_loss() {
    let mut embedded = Server::start_with(AUTH);
    let s = &embedded;
    s.cli_ok(&["domain", "add", "example.com"], "");
    s.cli_ok(&["account", "add", ALICE.0], format!("{}\n", ALICE.1));
    s.cli_ok(&["account", "add", BOB.0], format!("{}\n", BOB.1));
    s.cli_ok(
        &["account", "add", "team@example.com", "--kind", "group"],
        "",
    );
    s.cli_ok(&["group", "add-member", "team@example.com", ALICE.0], "");
    s.cli_ok(&["group", "add-member", "team@example.com", BOB.0], "");
    s.cli_ok(&["alias", "add", "sales@example.com", ALICE.0], "");
    let added = s.cli_ok(
        &[
            "account",
            "app-password",
            "add",
            ALICE.0,
            "--label",
            "phone",
            "--protocol",
            "imap",
        ],
        "",
    );
    let app_secret = added
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("secret line")
        .to_string();

    // 40 messages of varied MIME structure for alice, the same bytes for bob (one blob
    // each, shared), and mail through SMTP to the alias and the group.
    let corpus = embedded.dir.path().join("corpus.mbox");
    let gen_out = std::process::Command::new("python3")
        .args(["/work/shared/tools/gen_mbox.py", "--count", "40", "--out"])
        .arg(&corpus)
        .output()
        .expect("python3 gen_mbox.py");
    assert!(gen_out.status.success(), "{}", text(&gen_out.stderr));
    let mbox = std::fs::read(&corpus).unwrap();
    let imported = s.cli_ok(&["mailbox", "import", ALICE.0], &mbox);
    assert_eq!(imported.lines().count(), 40, "{imported}");
    s.cli_ok(&["mailbox", "import", BOB.0], &mbox);
    smtp_send(
        s.addr("smtp"),
        "x@outside.example",
        "sales@example.com",
        "to the alias",
    );
    smtp_send(
        s.addr("smtp"),
        "y@outside.example",
        "team@example.com",
        "to the group",
    );

    // DKIM keys for the domain, and a message to another domain waiting in the queue
    // (DKIM-signed at submission; the runner is off).
    s.cli_ok(&["domain", "dkim", "example.com"], "");
    let dkim_before = s.cli_ok(&["domain", "dkim", "example.com", "--show"], "");
    assert_eq!(dkim_before.lines().count(), 2, "{dkim_before}");
    use base64::Engine as _;
    let plain =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{}\0{}", ALICE.0, ALICE.1));
    smtp_send_as(
        s.addr("submission"),
        Some(&plain),
        ALICE.0,
        "friend@elsewhere.example",
        "queued before the move",
    );
    let queue_before = s.cli_ok(&["queue", "list"], "");
    assert!(
        queue_before.contains("<friend@elsewhere.example>"),
        "{queue_before}"
    );

    // Flags, keywords, a move, an expunge: UIDs with gaps, modseqs above the appends.
    let mut c = Client::connect(s.addr("imap"));
    c.login(ALICE.0, ALICE.1);
    c.cmd("CREATE \"Projects/2026\"").ok();
    c.cmd("SELECT INBOX").ok();
    c.cmd("STORE 1:10 +FLAGS (\\Seen)").ok();
    c.cmd("STORE 5 +FLAGS (\\Flagged $Important)").ok();
    c.cmd("UID MOVE 11:15 Archive").ok();
    c.cmd("UID COPY 16 \"Projects/2026\"").ok();
    c.cmd("UID STORE 20 +FLAGS (\\Deleted)").ok();
    c.cmd("EXPUNGE").ok();
    c.cmd("SELECT Archive").ok();
    c.cmd("STORE 2 +FLAGS (\\Answered)").ok();
    c.cmd("LOGOUT").ok();
    let mut c = Client::connect(s.addr("imap"));
    c.login(BOB.0, BOB.1);
    c.cmd("SELECT INBOX").ok();
    c.cmd("STORE 1:3 +FLAGS (\\Answered $Work)").ok();
    c.cmd("LOGOUT").ok();

    // CalDAV/CardDAV: an event (replaced once), a removed one (a tombstone) and a card.
    let dav_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", ALICE.0, ALICE.1))
    );
    let ev = |uid: &str, summary: &str| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20300101T000000Z\r\n\
             DTSTART:20300101T090000Z\r\nDTEND:20300101T100000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    };
    let cal = "/dav/calendars/alice@example.com/calendar/";
    for (name, body) in [
        ("e1.ics", ev("e1", "first")),
        ("e1.ics", ev("e1", "second")),
        ("gone.ics", ev("gone", "removed")),
    ] {
        let r = http(
            s.addr("http"),
            "PUT",
            &format!("{cal}{name}"),
            &[("Authorization", &dav_auth)],
            body.as_bytes(),
        );
        assert!(r.status == 201 || r.status == 204, "{}", r.text());
    }
    let r = http(
        s.addr("http"),
        "DELETE",
        &format!("{cal}gone.ics"),
        &[("Authorization", &dav_auth)],
        b"",
    );
    assert_eq!(r.status, 204);
    let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Carol\r\nEND:VCARD\r\n";
    let r = http(
        s.addr("http"),
        "PUT",
        "/dav/addressbooks/alice@example.com/contacts/c1.vcf",
        &[("Authorization", &dav_auth)],
        card.as_bytes(),
    );
    assert_eq!(r.status, 201);
    let dav_state = |srv: &Server| {
        let sync = br#"<d:sync-collection xmlns:d="DAV:"><d:sync-token/><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#;
        let a = http(
            srv.addr("http"),
            "REPORT",
            cal,
            &[("Authorization", &dav_auth)],
            sync,
        )
        .text();
        let b = http(
            srv.addr("http"),
            "GET",
            &format!("{cal}e1.ics"),
            &[("Authorization", &dav_auth)],
            b"",
        )
        .text();
        let c = http(
            srv.addr("http"),
            "PROPFIND",
            "/dav/addressbooks/alice@example.com/",
            &[("Authorization", &dav_auth), ("Depth", "1")],
            b"",
        )
        .text();
        format!("{a}\n{b}\n{c}")
    };
    let dav_before = dav_state(s);
    assert!(
        dav_before.contains("SUMMARY:second") && dav_before.contains("e1.ics"),
        "{dav_before}"
    );

    let alice_before = imap_state(s, ALICE);
    let bob_before = imap_state(s, BOB);
    assert!(alice_before.contains("MODSEQ"), "{alice_before}");
    let dir_before = directory(s);

    // While the server runs (idle, between commands) the store is in use: refused, and
    // nothing is created in PostgreSQL.
    let schema = Schema(format!("postern_t_{:016x}", rand_u64()));
    let running = s.cli_err(
        &["store", "migrate", "--to", &pg_url(), "--schema", &schema.0],
        "",
    );
    assert!(running.contains("stop the server"), "{running}");
    let exists = std::process::Command::new("psql")
        .args([
            &pg_url(),
            "-Atc",
            &format!(
                "SELECT count(*) FROM pg_namespace WHERE nspname = '{}'",
                schema.0
            ),
        ])
        .output()
        .expect("psql");
    assert_eq!(text(&exists.stdout).trim(), "0");

    // Stopped: the migration holds the store's lock for its whole run.
    embedded.stop();
    let s = &embedded;
    let audit_before = audit(s);
    let verify_before = s.cli_ok(&["store", "verify"], "");
    assert!(verify_before.contains("store ok"), "{verify_before}");

    let out = s.cli_ok(
        &["store", "migrate", "--to", &pg_url(), "--schema", &schema.0],
        "",
    );
    let tables = out.lines().filter(|l| l.starts_with("table ")).count();
    assert_eq!(tables, 22, "{out}");
    assert!(
        out.lines()
            .filter(|l| l.starts_with("table "))
            .all(|l| l.ends_with(" equal")),
        "{out}"
    );
    assert!(out.contains("migrated into schema"), "{out}");
    assert!(
        out.contains(&format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"{}\"\n",
            pg_url(),
            schema.0
        )),
        "{out}"
    );
    let head = audit_before
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .expect("head line")
        .to_string();
    assert!(
        out.contains(&format!("head: {head}")),
        "{out}\n{audit_before}"
    );
    eprintln!("{out}");

    // Again into the same schema: refused, saying why.
    let again = s.cli_err(
        &["store", "migrate", "--to", &pg_url(), "--schema", &schema.0],
        "",
    );
    assert!(again.contains("not empty"), "{again}");

    // The same installation, served from PostgreSQL.
    let pg = Server::start_with(&format!(
        "{AUTH}[store]\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"{}\"\npool_size = 4\n",
        pg_url(),
        schema.0
    ));
    assert_eq!(audit(&pg), audit_before);
    assert_eq!(pg.cli_ok(&["store", "verify"], ""), verify_before);
    assert_eq!(directory(&pg), dir_before);
    assert_eq!(imap_state(&pg, ALICE), alice_before);
    assert_eq!(imap_state(&pg, BOB), bob_before);
    assert_eq!(dav_state(&pg), dav_before);
    assert_eq!(
        pg.cli_ok(&["domain", "dkim", "example.com", "--show"], ""),
        dkim_before
    );
    assert_eq!(pg.cli_ok(&["queue", "list"], ""), queue_before);
    // The app password still logs in (credential hashes copied as they were).
    let mut c = Client::connect(pg.addr("imap"));
    c.login(ALICE.0, &app_secret);
    c.cmd("LOGOUT").ok();
    // The chain goes on from the migrated head.
    let anchored = pg.cli_ok(&["audit", "verify", "--anchor", &head], "");
    assert!(anchored.starts_with("ledger ok: "), "{anchored}");

    // A postgres installation has nothing to migrate.
    let e = pg.cli_err(&["store", "migrate", "--to", &pg_url()], "");
    assert!(e.contains("already PostgreSQL"), "{e}");
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
