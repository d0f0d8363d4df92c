//! CalDAV scheduling (RFC 6638) and iMIP (RFC 6047) against a real `postern serve`:
//! alice invites bob (local) and carol (another domain, by mail through the outbound
//! queue to a loopback aiosmtpd peer found through a test DNS zone); bob accepts with a
//! PUT and alice's copy shows it; carol's iMIP REPLY arriving by SMTP updates alice's
//! copy; forged REPLYs (wrong sender, other attendees, other fields) change nothing; a
//! room accepts when free and declines on conflict; free/busy through the outbox; the
//! inbox of another account answers like a path that does not exist; the Python
//! `caldav` library's scheduling helpers as a real client.
//!
//! Needs python3 with dnslib, aiosmtpd and caldav (`.ci/run` installs them): a missing
//! one fails the test, nothing is skipped.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DNS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../smtp/tests/dns_zone.py");
const PEER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/outbound_peer.py");
const PYTHON_INSTALL: &str = "python3 -m pip install dnslib aiosmtpd caldav==3.6.0";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@external.test";
const ROOM: &str = "room1@example.com";
const ALICE_PW: &str = "alice-sched-secret";
const BOB_PW: &str = "bob-sched-secret";
const DELIVERY: Duration = Duration::from_secs(30);

// ---- helpers shared with outbound.rs (a test binary cannot import another) ----

fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn port_line(child: &mut Child, what: &str) -> u16 {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    match line.trim().parse() {
        Ok(p) => p,
        Err(_) => {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{what} did not start: {err}\n{PYTHON_INSTALL}");
        }
    }
}

struct Helper {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test DNS zone: `external.test` has its MX on 127.0.0.2 (so has `other.example`,
/// a second hosted domain, standing for its MX that would hand the mail back to us);
/// `external.test` and `example.com` publish SPF for 127.0.0.1 (the tests' SMTP client),
/// `nospf.test` nothing at all (no SPF, no DMARC, no DKIM: not authenticated).
fn dns() -> Helper {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone.json");
    let zone = json!({"records": [
        {"name": "external.test", "type": "MX", "value": "10 mx.external.test"},
        {"name": "mx.external.test", "type": "A", "value": "127.0.0.2"},
        {"name": "external.test", "type": "TXT", "value": "v=spf1 ip4:127.0.0.1 -all"},
        {"name": "example.com", "type": "TXT", "value": "v=spf1 ip4:127.0.0.1 -all"},
        {"name": "other.example", "type": "MX", "value": "10 mx.external.test"},
    ], "ttl": 1, "ad": false});
    std::fs::write(&path, zone.to_string()).unwrap();
    let mut child = Command::new("python3")
        .arg(DNS_SCRIPT)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let port = port_line(&mut child, "the test DNS server");
    Helper { child, port, dir }
}

/// The receiving MTA of external.test (aiosmtpd, accepts everything).
fn peer() -> Helper {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("python3")
        .arg(PEER_SCRIPT)
        .args(["--hosts", "127.0.0.2", "--port", "0", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let port = port_line(&mut child, "the aiosmtpd peer");
    Helper { child, port, dir }
}

/// Messages the peer received for `rcpt`, as text.
fn received(peer: &Helper, rcpt: &str) -> Vec<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(peer.dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("msg-"))
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .filter(|p| {
            let meta: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            meta["rcpt_tos"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r == rcpt))
        })
        .map(|p| text(&std::fs::read(p.with_extension("eml")).unwrap()))
        .collect()
}

/// The text/calendar part of a received iMIP message (base64 decoded) and its
/// Content-Type line.
fn calendar_of(msg: &str) -> (String, String) {
    let at = msg
        .find("Content-Type: text/calendar")
        .expect("a text/calendar part");
    let part = &msg[at..];
    let ct = part.lines().next().unwrap().to_string();
    let body_at = part.find("\r\n\r\n").unwrap() + 4;
    let b64: String = part[body_at..]
        .lines()
        .take_while(|l| !l.starts_with("--"))
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    (text(&raw), ct)
}

/// Unfolded text (continuation lines joined) for simple `contains` checks.
fn unfold(s: &str) -> String {
    s.replace("\r\n ", "").replace("\r\n\t", "")
}

/// The ATTENDEE line of `who` in an object.
fn attendee_line(data: &str, who: &str) -> String {
    unfold(data)
        .lines()
        .find(|l| {
            l.starts_with("ATTENDEE") && l.to_ascii_lowercase().ends_with(&format!("mailto:{who}"))
        })
        .unwrap_or_else(|| panic!("no ATTENDEE {who} in {data}"))
        .to_string()
}

fn invite(uid: &str, start: &str, end: &str, summary: &str, attendees: &[&str]) -> String {
    let mut atts = String::new();
    for a in attendees {
        atts.push_str(&format!(
            "ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:{a}\r\n"
        ));
    }
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern test//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n\
         SUMMARY:{summary}\r\nORGANIZER:mailto:{ALICE}\r\n\
         ATTENDEE;PARTSTAT=ACCEPTED:mailto:{ALICE}\r\n{atts}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// Names in a collection (PROPFIND depth 1), without the collection itself.
fn list(addr: SocketAddr, auth: &str, path: &str) -> Vec<String> {
    let r = dav(addr, auth, "PROPFIND", path, &[("Depth", "1")], b"");
    assert_eq!(r.status, 207, "{path}: {}", r.text());
    let body = r.text();
    body.split("<d:href>")
        .skip(1)
        .map(|s| s.split("</d:href>").next().unwrap().to_string())
        .filter(|h| h != path)
        .collect()
}

fn get(addr: SocketAddr, auth: &str, path: &str) -> String {
    let r = dav(addr, auth, "GET", path, &[], b"");
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.text()
}

/// One SMTP transaction to port 25 with `data` as the message.
fn smtp(addr: SocketAddr, from: &str, to: &str, data: &str) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
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
        ("EHLO mx.external.test".to_string(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        write!(w, "{cmd}\r\n").unwrap();
        expect(code, &mut r);
    }
    write!(w, "{data}\r\n.\r\n").unwrap();
    expect("250", &mut r);
    write!(w, "QUIT\r\n").unwrap();
    expect("221", &mut r);
}

/// An iMIP message with `ical` as its text/calendar part.
fn imip_mail(from: &str, to: &str, method: &str, ical: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Reply\r\nMessage-ID: <{}@external.test>\r\n\
         Date: Mon, 1 Jan 2030 00:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/calendar; charset=utf-8; method={method}\r\n\r\n{ical}",
        rand_hex()
    )
}

fn rand_hex() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn reply_ical(uid: &str, summary: &str, attendees: &[(&str, &str)]) -> String {
    let mut atts = String::new();
    for (a, ps) in attendees {
        atts.push_str(&format!("ATTENDEE;PARTSTAT={ps}:mailto:{a}\r\n"));
    }
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//carol//EN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300301T090000Z\r\n\
         SUMMARY:{summary}\r\nORGANIZER:mailto:{ALICE}\r\n{atts}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn sched_server(extra: &str) -> Server {
    let s = Server::start_with(&format!(
        "[auth]\nallow_plaintext_on_loopback = true\n{extra}"
    ));
    s.cli_ok(&["domain", "add", "example.com"], "");
    s.cli_ok(&["account", "add", ALICE], format!("{ALICE_PW}\n"));
    s.cli_ok(&["account", "add", BOB], format!("{BOB_PW}\n"));
    s
}

fn outbound_config(dns: u16, port: u16) -> String {
    format!(
        "[dns]\nnameservers = [\"127.0.0.1:{dns}\"]\ntimeout_secs = 2\n\
         [outbound]\nport = {port}\nallow_private_destinations = true\n\
         connect_timeout_secs = 2\ncommand_timeout_secs = 2\n\
         data_timeout_secs = 3\nlease_secs = 13\npoll_secs = 1\nretry_base_secs = 1\n\
         retry_max_secs = 1\nmax_queue_lifetime_secs = 600\ndelay_notice_secs = 0\n"
    )
}

const EV_PATH: &str = "/dav/calendars/alice@example.com/calendar/plan.ics";

// =======================================================================================

/// The whole round trip: invite (local + external + unknown + client-scheduled), accept
/// by PUT, a stale organiser re-PUT, an iMIP REPLY by SMTP, forged REPLYs, cancel.
#[test]
fn invitation_round_trip_local_and_external() {
    let dns = dns();
    let peer = peer();
    let s = sched_server(&outbound_config(dns.port, peer.port));
    // example.com signs its mail: iMIP messages are signed as submitted mail is.
    s.cli_ok(&["domain", "dkim", "example.com"], "");
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let bob = basic(BOB, BOB_PW);

    // OPTIONS advertises scheduling; the principal names the inbox and outbox.
    let r = dav(a, &alice, "OPTIONS", "/dav/", &[], b"");
    assert!(r.header("dav").unwrap().contains("calendar-auto-schedule"));
    let r = dav(
        a,
        &bob,
        "PROPFIND",
        "/dav/principals/bob@example.com/",
        &[("Depth", "0")],
        br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:schedule-inbox-URL/><c:schedule-outbox-URL/><c:calendar-user-type/></d:prop></d:propfind>"#,
    );
    let body = r.text();
    assert!(
        body.contains("/dav/calendars/bob@example.com/inbox/"),
        "{body}"
    );
    assert!(
        body.contains("/dav/calendars/bob@example.com/outbox/"),
        "{body}"
    );
    assert!(body.contains("INDIVIDUAL"), "{body}");
    let r = dav(
        a,
        &bob,
        "PROPFIND",
        "/dav/calendars/bob@example.com/inbox/",
        &[("Depth", "0")],
        b"",
    );
    assert!(r.text().contains("schedule-inbox"), "{}", r.text());

    // 1. alice invites bob, carol (external), nobody@ (unknown here), dave (client
    //    schedules: the server sends nothing).
    let ev = invite(
        "plan-1",
        "20300301T090000Z",
        "20300301T100000Z",
        "Planning",
        &[BOB, CAROL, "nobody@example.com", "dave@external.test"],
    )
    .replace(
        "ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:dave@external.test",
        "ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:dave@external.test",
    );
    let r = dav(a, &alice, "PUT", EV_PATH, &[], ev.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        r.header("etag").is_none(),
        "the server changed the object: no ETag"
    );
    let mine = get(a, &alice, EV_PATH);
    assert!(
        attendee_line(&mine, BOB).contains("SCHEDULE-STATUS=1.2"),
        "{mine}"
    );
    assert!(
        attendee_line(&mine, CAROL).contains("SCHEDULE-STATUS=1.1"),
        "{mine}"
    );
    assert!(
        attendee_line(&mine, "nobody@example.com").contains("SCHEDULE-STATUS=3.7"),
        "{mine}"
    );
    assert!(
        !attendee_line(&mine, "dave@external.test").contains("SCHEDULE-STATUS"),
        "{mine}"
    );

    // bob: a REQUEST in the inbox, the event in his calendar as NEEDS-ACTION.
    let items = list(a, &bob, "/dav/calendars/bob@example.com/inbox/");
    assert_eq!(items.len(), 1, "{items:?}");
    let req = get(a, &bob, &items[0]);
    assert!(
        req.contains("METHOD:REQUEST") && req.contains("UID:plan-1"),
        "{req}"
    );
    let bob_path = "/dav/calendars/bob@example.com/calendar/plan-1.ics";
    let bobs = get(a, &bob, bob_path);
    assert!(
        attendee_line(&bobs, BOB).contains("PARTSTAT=NEEDS-ACTION"),
        "{bobs}"
    );
    assert!(!bobs.contains("METHOD"), "{bobs}");

    // carol: an iMIP REQUEST through the queue.
    let mail = wait_for(DELIVERY, "the invitation at the peer", || {
        received(&peer, CAROL).into_iter().next()
    });
    assert!(mail.contains("From: <alice@example.com>"), "{mail}");
    assert!(mail.contains("multipart/alternative"), "{mail}");
    let head = unfold(mail.split("\r\n\r\n").next().unwrap());
    assert_eq!(
        head.lines()
            .filter(|l| l.starts_with("DKIM-Signature:") && l.contains("d=example.com"))
            .count(),
        2,
        "signed with both keys: {head}"
    );
    assert!(mail.contains("Subject: Invitation: Planning"), "{mail}");
    let (ical, ct) = calendar_of(&mail);
    assert!(ct.contains("method=REQUEST"), "{ct}");
    assert!(
        ical.contains("METHOD:REQUEST") && ical.contains("UID:plan-1"),
        "{ical}"
    );
    assert!(!ical.contains("SCHEDULE-STATUS"), "{ical}");

    // 2. bob accepts with a PUT of his copy: alice's copy shows it, a REPLY in her inbox.
    let accepted = bobs.replace(
        &attendee_line(&bobs, BOB),
        &attendee_line(&bobs, BOB).replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED"),
    );
    let r = dav(a, &bob, "PUT", bob_path, &[], accepted.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
    let mine = get(a, &alice, EV_PATH);
    assert!(
        attendee_line(&mine, BOB).contains("PARTSTAT=ACCEPTED"),
        "{mine}"
    );
    let alice_inbox = list(a, &alice, "/dav/calendars/alice@example.com/inbox/");
    assert_eq!(alice_inbox.len(), 1);
    assert!(get(a, &alice, &alice_inbox[0]).contains("METHOD:REPLY"));

    // 3. alice's client PUTs its stale copy (bob NEEDS-ACTION) again: bob's answer stays
    //    and nothing is sent again.
    let r = dav(a, &alice, "PUT", EV_PATH, &[], ev.as_bytes());
    assert_eq!(r.status, 204);
    let mine = get(a, &alice, EV_PATH);
    assert!(
        attendee_line(&mine, BOB).contains("PARTSTAT=ACCEPTED"),
        "{mine}"
    );
    assert_eq!(
        list(a, &bob, "/dav/calendars/bob@example.com/inbox/").len(),
        1
    );

    // 4. carol answers TENTATIVE by mail; the same message tries to decline for bob and
    //    rename the event: only carol's PARTSTAT changes.
    let mx = s.addr("smtp");
    let reply = reply_ical(
        "plan-1",
        "Renamed by carol",
        &[(CAROL, "TENTATIVE"), (BOB, "DECLINED")],
    );
    smtp(mx, CAROL, ALICE, &imip_mail(CAROL, ALICE, "REPLY", &reply));
    let mine = wait_for(DELIVERY, "carol's REPLY in alice's copy", || {
        let m = get(a, &alice, EV_PATH);
        attendee_line(&m, CAROL)
            .contains("PARTSTAT=TENTATIVE")
            .then_some(m)
    });
    assert!(
        attendee_line(&mine, BOB).contains("PARTSTAT=ACCEPTED"),
        "{mine}"
    );
    assert!(unfold(&mine).contains("SUMMARY:Planning"), "{mine}");

    // 5. Forged: the envelope says mallory, the From says carol.
    let forged = reply_ical("plan-1", "x", &[(CAROL, "DECLINED")]);
    smtp(
        mx,
        "mallory@external.test",
        ALICE,
        &imip_mail(CAROL, ALICE, "REPLY", &forged),
    );
    //    mallory in her own name, answering for carol.
    smtp(
        mx,
        "mallory@external.test",
        ALICE,
        &imip_mail("mallory@external.test", ALICE, "REPLY", &forged),
    );
    //    and a REQUEST claiming to be from alice (a local organiser) for bob.
    let fake_req = invite(
        "plan-1",
        "20300301T120000Z",
        "20300301T130000Z",
        "Moved!",
        &[BOB],
    )
    .replace("VERSION:2.0\r\n", "VERSION:2.0\r\nMETHOD:REQUEST\r\n");
    smtp(mx, ALICE, BOB, &imip_mail(ALICE, BOB, "REQUEST", &fake_req));
    //    and a REPLY with more than MAX_IMIP_COMPONENTS (64) components.
    let one = "BEGIN:VTIMEZONE\r\nTZID:x\r\nEND:VTIMEZONE\r\n";
    let bloated = reply_ical("plan-1", "Planning", &[(CAROL, "DECLINED")])
        .replace("BEGIN:VEVENT", &format!("{}BEGIN:VEVENT", one.repeat(64)));
    smtp(
        mx,
        CAROL,
        ALICE,
        &imip_mail(CAROL, ALICE, "REPLY", &bloated),
    );
    // The ledger shows each was looked at and ignored.
    wait_for(DELIVERY, "four ignored iMIP messages in the ledger", || {
        let audit = s.cli_ok(&["audit", "show", "--json"], "");
        (audit.matches("dav.schedule.imip.ignored").count() >= 4).then_some(())
    });
    let audit = s.cli_ok(&["audit", "show", "--json"], "");
    for why in [
        "From differs from the envelope sender",
        "the REPLY does not come from its attendee",
        "a local ORGANIZER does not schedule by mail",
        "too many components",
    ] {
        assert!(audit.contains(why), "{why}:\n{audit}");
    }
    let mine = get(a, &alice, EV_PATH);
    assert!(
        attendee_line(&mine, CAROL).contains("PARTSTAT=TENTATIVE"),
        "{mine}"
    );
    let bobs = get(a, &bob, bob_path);
    assert!(unfold(&bobs).contains("SUMMARY:Planning"), "{bobs}");
    assert!(bobs.contains("DTSTART:20300301T090000Z"), "{bobs}");

    // 6. IDOR: bob cannot read alice's inbox or its items (404 as for nothing there).
    let alice_inbox = list(a, &alice, "/dav/calendars/alice@example.com/inbox/");
    let r = dav(
        a,
        &bob,
        "PROPFIND",
        "/dav/calendars/alice@example.com/inbox/",
        &[("Depth", "1")],
        b"",
    );
    assert_eq!(r.status, 404);
    let r = dav(a, &bob, "GET", &alice_inbox[0], &[], b"");
    assert_eq!(r.status, 404);
    // Clients cannot write into an inbox.
    let r = dav(
        a,
        &bob,
        "PUT",
        "/dav/calendars/bob@example.com/inbox/x.ics",
        &[],
        ev.as_bytes(),
    );
    assert_eq!(r.status, 403);
    // The owner reads and deletes inbox items.
    let items = list(a, &bob, "/dav/calendars/bob@example.com/inbox/");
    let r = dav(a, &bob, "DELETE", &items[0], &[], b"");
    assert_eq!(r.status, 204);

    // 6b. Schedule-Tag (RFC 6638 §3.2.10): bob's copy has one; alice renaming the event
    //     changes it (bob's ACCEPTED stays: the time did not change); a PUT with the
    //     stale tag is 412, with the current one it goes through.
    let r = dav(a, &bob, "GET", bob_path, &[], b"");
    let tag1 = r
        .header("schedule-tag")
        .expect("a Schedule-Tag")
        .to_string();
    let renamed = ev.replace("SUMMARY:Planning", "SUMMARY:Planning v2");
    let r = dav(a, &alice, "PUT", EV_PATH, &[], renamed.as_bytes());
    assert_eq!(r.status, 204);
    let r = dav(a, &bob, "GET", bob_path, &[], b"");
    let tag2 = r.header("schedule-tag").unwrap().to_string();
    let bobs = r.text();
    assert_ne!(tag1, tag2);
    assert!(unfold(&bobs).contains("SUMMARY:Planning v2"), "{bobs}");
    assert!(
        attendee_line(&bobs, BOB).contains("PARTSTAT=ACCEPTED"),
        "{bobs}"
    );
    let tentative = bobs.replace(
        &attendee_line(&bobs, BOB),
        &attendee_line(&bobs, BOB).replace("PARTSTAT=ACCEPTED", "PARTSTAT=TENTATIVE"),
    );
    let r = dav(
        a,
        &bob,
        "PUT",
        bob_path,
        &[("If-Schedule-Tag-Match", &tag1)],
        tentative.as_bytes(),
    );
    assert_eq!(r.status, 412, "{}", r.text());
    let r = dav(
        a,
        &bob,
        "PUT",
        bob_path,
        &[("If-Schedule-Tag-Match", &tag2)],
        tentative.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        r.header("schedule-tag"),
        Some(tag2.as_str()),
        "a reply keeps the tag"
    );
    let mine = get(a, &alice, EV_PATH);
    assert!(
        attendee_line(&mine, BOB).contains("PARTSTAT=TENTATIVE"),
        "{mine}"
    );

    // 6c. alice moves the event: everyone is asked again (NEEDS-ACTION on both sides).
    let moved = renamed
        .replace("20300301T090000Z", "20300302T090000Z")
        .replace("20300301T100000Z", "20300302T100000Z");
    let r = dav(a, &alice, "PUT", EV_PATH, &[], moved.as_bytes());
    assert_eq!(r.status, 204);
    let bobs = get(a, &bob, bob_path);
    assert!(bobs.contains("DTSTART:20300302T090000Z"), "{bobs}");
    assert!(
        attendee_line(&bobs, BOB).contains("PARTSTAT=NEEDS-ACTION"),
        "{bobs}"
    );
    let mine = get(a, &alice, EV_PATH);
    assert!(
        attendee_line(&mine, BOB).contains("PARTSTAT=NEEDS-ACTION"),
        "{mine}"
    );

    // 7. alice deletes the event: bob's copy is cancelled, carol gets a CANCEL.
    let r = dav(a, &alice, "DELETE", EV_PATH, &[], b"");
    assert_eq!(r.status, 204);
    let bobs = get(a, &bob, bob_path);
    assert!(bobs.contains("STATUS:CANCELLED"), "{bobs}");
    let items = list(a, &bob, "/dav/calendars/bob@example.com/inbox/");
    assert!(
        items
            .iter()
            .any(|i| get(a, &bob, i).contains("METHOD:CANCEL")),
        "{items:?}"
    );
    let cancel = wait_for(DELIVERY, "the CANCEL at the peer", || {
        received(&peer, CAROL)
            .into_iter()
            .find(|m| m.contains("method=CANCEL"))
    });
    assert!(calendar_of(&cancel).0.contains("STATUS:CANCELLED"));
    // dave (SCHEDULE-AGENT=CLIENT) never got anything.
    assert!(received(&peer, "dave@external.test").is_empty());

    // The ledger has the cross-account writes and the mail.
    let audit = s.cli_ok(&["audit", "show", "--json"], "");
    for action in [
        "dav.schedule.deliver",
        "dav.schedule.reply",
        "dav.schedule.cancel",
        "dav.schedule.imip",
    ] {
        assert!(audit.contains(action), "{action} missing:\n{audit}");
    }
}

/// An external organiser's REQUEST by mail lands in bob's inbox and calendar; bob's
/// accept goes back by mail (iMIP REPLY from bob).
#[test]
fn external_organiser_request_and_reply_by_mail() {
    let dns = dns();
    let peer = peer();
    let s = sched_server(&outbound_config(dns.port, peer.port));
    let a = s.addr("http");
    let bob = basic(BOB, BOB_PW);
    let req = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//carol//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n\
         UID:ext-1\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300401T090000Z\r\n\
         DTEND:20300401T100000Z\r\nSUMMARY:Vendor call\r\nORGANIZER:mailto:{CAROL}\r\n\
         ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{BOB}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    smtp(
        s.addr("smtp"),
        CAROL,
        BOB,
        &imip_mail(CAROL, BOB, "REQUEST", &req),
    );
    let path = "/dav/calendars/bob@example.com/calendar/ext-1.ics";
    let copy = wait_for(
        DELIVERY,
        "the external invitation in bob's calendar",
        || {
            let r = dav(a, &bob, "GET", path, &[], b"");
            (r.status == 200).then(|| r.text())
        },
    );
    assert!(attendee_line(&copy, BOB).contains("NEEDS-ACTION"), "{copy}");
    let items = list(a, &bob, "/dav/calendars/bob@example.com/inbox/");
    assert_eq!(items.len(), 1);
    let accepted = copy.replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED");
    let r = dav(a, &bob, "PUT", path, &[], accepted.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
    let mail = wait_for(DELIVERY, "bob's REPLY at the peer", || {
        received(&peer, CAROL).into_iter().next()
    });
    assert!(mail.contains("From: <bob@example.com>"), "{mail}");
    let (ical, ct) = calendar_of(&mail);
    assert!(ct.contains("method=REPLY"), "{ct}");
    assert!(ical.contains("PARTSTAT=ACCEPTED"), "{ical}");
    assert!(!ical.contains(&format!("mailto:{ALICE}")), "{ical}");
    // bob removes it from his calendar: a DECLINED REPLY goes to carol.
    let r = dav(a, &bob, "DELETE", path, &[], b"");
    assert_eq!(r.status, 204);
    let declined = wait_for(DELIVERY, "bob's DECLINED REPLY at the peer", || {
        received(&peer, CAROL)
            .into_iter()
            .find(|m| calendar_of(m).0.contains("PARTSTAT=DECLINED"))
    });
    assert!(calendar_of(&declined).1.contains("method=REPLY"));
    // carol invites again and cancels by mail: bob's copy is marked, the CANCEL is in
    // his inbox.
    let req2 = req.replace("ext-1", "ext-2");
    smtp(
        s.addr("smtp"),
        CAROL,
        BOB,
        &imip_mail(CAROL, BOB, "REQUEST", &req2),
    );
    let path2 = "/dav/calendars/bob@example.com/calendar/ext-2.ics";
    wait_for(DELIVERY, "the second invitation", || {
        (dav(a, &bob, "GET", path2, &[], b"").status == 200).then_some(())
    });
    // An update (SEQUENCE 2) applies; a late older one (SEQUENCE 1) does not.
    let v2 = req2.replace(
        "SUMMARY:Vendor call",
        "SEQUENCE:2\r\nSUMMARY:Vendor call v2",
    );
    smtp(
        s.addr("smtp"),
        CAROL,
        BOB,
        &imip_mail(CAROL, BOB, "REQUEST", &v2),
    );
    wait_for(DELIVERY, "the update", || {
        unfold(&get(a, &bob, path2))
            .contains("SUMMARY:Vendor call v2")
            .then_some(())
    });
    let late = req2.replace(
        "SUMMARY:Vendor call",
        "SEQUENCE:1\r\nSUMMARY:Vendor call late",
    );
    smtp(
        s.addr("smtp"),
        CAROL,
        BOB,
        &imip_mail(CAROL, BOB, "REQUEST", &late),
    );
    wait_for(DELIVERY, "the late update ignored", || {
        s.cli_ok(&["audit", "show", "--json"], "")
            .contains("an older SEQUENCE")
            .then_some(())
    });
    assert!(unfold(&get(a, &bob, path2)).contains("SUMMARY:Vendor call v2"));
    // A CANCEL is held to the SEQUENCE rule too: an older one (1) is ignored; the
    // organiser's cancel raises it (3).
    let stale_cancel = req2.replace("METHOD:REQUEST", "METHOD:CANCEL").replace(
        "SUMMARY:Vendor call",
        "SEQUENCE:1\r\nSTATUS:CANCELLED\r\nSUMMARY:Vendor call",
    );
    smtp(
        s.addr("smtp"),
        CAROL,
        BOB,
        &imip_mail(CAROL, BOB, "CANCEL", &stale_cancel),
    );
    wait_for(DELIVERY, "the stale cancel ignored", || {
        (s.cli_ok(&["audit", "show", "--json"], "")
            .matches("an older SEQUENCE")
            .count()
            >= 2)
            .then_some(())
    });
    assert!(!get(a, &bob, path2).contains("STATUS:CANCELLED"));
    let cancel = req2
        .replace("METHOD:REQUEST", "METHOD:CANCEL")
        .replace("SUMMARY:Vendor call", "SEQUENCE:3\r\nSUMMARY:Vendor call");
    smtp(
        s.addr("smtp"),
        CAROL,
        BOB,
        &imip_mail(CAROL, BOB, "CANCEL", &cancel),
    );
    let copy = wait_for(DELIVERY, "the cancelled copy", || {
        let t = get(a, &bob, path2);
        t.contains("STATUS:CANCELLED").then_some(t)
    });
    assert!(unfold(&copy).contains("SUMMARY:Vendor call"), "{copy}");
    let items = list(a, &bob, "/dav/calendars/bob@example.com/inbox/");
    assert!(
        items
            .iter()
            .any(|i| get(a, &bob, i).contains("METHOD:CANCEL")),
        "{items:?}"
    );
    // Removing a cancelled event answers nothing.
    let before = received(&peer, CAROL).len();
    let r = dav(a, &bob, "DELETE", path2, &[], b"");
    assert_eq!(r.status, 204);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(received(&peer, CAROL).len(), before);
}

/// A room accepts when free and declines on conflict; its answer is in the organiser's
/// copy as stored. Free/busy through the outbox; 3.7 for unknown and external users.
#[test]
fn rooms_and_free_busy() {
    let s = sched_server("[outbound]\nenabled = false\n");
    s.cli_ok(&["account", "add", ROOM, "--kind", "resource"], "");
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let bob = basic(BOB, BOB_PW);

    let first = invite(
        "room-a",
        "20300501T090000Z",
        "20300501T100000Z",
        "First",
        &[ROOM],
    );
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/calendars/alice@example.com/calendar/room-a.ics",
        &[],
        first.as_bytes(),
    );
    assert_eq!(r.status, 201);
    let mine = get(
        a,
        &alice,
        "/dav/calendars/alice@example.com/calendar/room-a.ics",
    );
    assert!(
        attendee_line(&mine, ROOM).contains("PARTSTAT=ACCEPTED"),
        "{mine}"
    );

    // More than MAX_ATTENDEES (256) attendees: refused, nothing sent.
    let crowd: Vec<String> = (0..257).map(|i| format!("p{i}@example.com")).collect();
    let crowd: Vec<&str> = crowd.iter().map(String::as_str).collect();
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/calendars/alice@example.com/calendar/crowd.ics",
        &[],
        invite(
            "crowd",
            "20300701T090000Z",
            "20300701T100000Z",
            "All hands",
            &crowd,
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.text());

    // bob books an overlapping slot: declined.
    let clash = invite(
        "room-b",
        "20300501T093000Z",
        "20300501T103000Z",
        "Clash",
        &[ROOM],
    )
    .replace(&format!("mailto:{ALICE}"), &format!("mailto:{BOB}"));
    let r = dav(
        a,
        &bob,
        "PUT",
        "/dav/calendars/bob@example.com/calendar/room-b.ics",
        &[],
        clash.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let his = get(
        a,
        &bob,
        "/dav/calendars/bob@example.com/calendar/room-b.ics",
    );
    assert!(
        attendee_line(&his, ROOM).contains("PARTSTAT=DECLINED"),
        "{his}"
    );

    // bob moves it to a free hour: accepted.
    let moved = clash
        .replace("20300501T093000Z", "20300501T110000Z")
        .replace("20300501T103000Z", "20300501T120000Z");
    let r = dav(
        a,
        &bob,
        "PUT",
        "/dav/calendars/bob@example.com/calendar/room-b.ics",
        &[],
        moved.as_bytes(),
    );
    assert_eq!(r.status, 204);
    let his = get(
        a,
        &bob,
        "/dav/calendars/bob@example.com/calendar/room-b.ics",
    );
    assert!(
        attendee_line(&his, ROOM).contains("PARTSTAT=ACCEPTED"),
        "{his}"
    );

    // An attendee's DELETE declines: alice's copy shows bob DECLINED.
    let lunch = invite(
        "lunch-1",
        "20300801T120000Z",
        "20300801T130000Z",
        "Lunch",
        &[BOB],
    );
    let lunch_path = "/dav/calendars/alice@example.com/calendar/lunch-1.ics";
    let r = dav(a, &alice, "PUT", lunch_path, &[], lunch.as_bytes());
    assert_eq!(r.status, 201);
    let r = dav(
        a,
        &bob,
        "DELETE",
        "/dav/calendars/bob@example.com/calendar/lunch-1.ics",
        &[],
        b"",
    );
    assert_eq!(r.status, 204);
    let mine = get(a, &alice, lunch_path);
    assert!(
        attendee_line(&mine, BOB).contains("PARTSTAT=DECLINED"),
        "{mine}"
    );

    // A task assigned to bob lands in his task list.
    let todo = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:todo-1\r\n\
         DTSTAMP:20300101T000000Z\r\nDUE:20300901T000000Z\r\nSUMMARY:Report\r\n\
         ORGANIZER:mailto:{ALICE}\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{BOB}\r\n\
         END:VTODO\r\nEND:VCALENDAR\r\n"
    );
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/calendars/alice@example.com/tasks/todo-1.ics",
        &[],
        todo.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let his = get(a, &bob, "/dav/calendars/bob@example.com/tasks/todo-1.ics");
    assert!(his.contains("BEGIN:VTODO"), "{his}");

    // Free/busy: bob asks for alice, the room, nobody and someone outside.
    let transparent = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:tr\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300501T130000Z\r\nDTEND:20300501T140000Z\r\nTRANSP:TRANSPARENT\r\nSUMMARY:free\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/calendars/alice@example.com/calendar/tr.ics",
        &[],
        transparent.as_bytes(),
    );
    assert_eq!(r.status, 201);
    let fb = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\n\
         UID:fb-1\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300501T000000Z\r\nDTEND:20300502T000000Z\r\n\
         ORGANIZER:mailto:{BOB}\r\nATTENDEE:mailto:{ALICE}\r\nATTENDEE:mailto:{ROOM}\r\n\
         ATTENDEE:mailto:nobody@example.com\r\nATTENDEE:mailto:{CAROL}\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
    );
    let outbox = "/dav/calendars/bob@example.com/outbox/";
    let r = dav(
        a,
        &bob,
        "POST",
        outbox,
        &[("Content-Type", "text/calendar")],
        fb.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    assert!(body.contains("schedule-response"), "{body}");
    let part = |who: &str| -> String {
        body.split("<c:response>")
            .find(|p| p.contains(&format!("mailto:{who}</d:href>")))
            .unwrap_or_else(|| panic!("no answer for {who}: {body}"))
            .to_string()
    };
    let alice_fb = part(ALICE);
    assert!(alice_fb.contains("2.0;Success"), "{alice_fb}");
    assert!(
        alice_fb.contains("FREEBUSY;FBTYPE=BUSY:20300501T090000Z/20300501T100000Z"),
        "{alice_fb}"
    );
    assert!(
        !alice_fb.contains("20300501T130000Z/"),
        "transparent: {alice_fb}"
    );
    let room_fb = part(ROOM);
    assert!(
        room_fb.contains("20300501T090000Z/20300501T100000Z"),
        "{room_fb}"
    );
    assert!(
        room_fb.contains("20300501T110000Z/20300501T120000Z"),
        "{room_fb}"
    );
    assert!(!room_fb.contains("20300501T093000Z"), "declined: {room_fb}");
    assert!(part("nobody@example.com").contains("3.7"));
    assert!(part(CAROL).contains("3.7"));

    // Only for oneself: alice cannot POST to bob's outbox, nor as bob to her own.
    let r = dav(a, &alice, "POST", outbox, &[], fb.as_bytes());
    assert_eq!(r.status, 404);
    let r = dav(
        a,
        &alice,
        "POST",
        "/dav/calendars/alice@example.com/outbox/",
        &[],
        fb.as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    // A range over MAX_FREEBUSY_RANGE_MS (400 days).
    let long = fb.replace("DTEND:20300502T000000Z", "DTEND:20310606T000000Z");
    let r = dav(a, &bob, "POST", outbox, &[], long.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    // Too many recipients.
    let many: String = (0..65)
        .map(|i| format!("ATTENDEE:mailto:u{i}@example.com\r\n"))
        .collect();
    let big = fb.replace("ATTENDEE:mailto:nobody@example.com\r\n", &many);
    let r = dav(a, &bob, "POST", outbox, &[], big.as_bytes());
    assert_eq!(r.status, 403, "{}", r.text());
    // The outbox answers PROPFIND; the room principal says ROOM.
    let r = dav(a, &bob, "PROPFIND", outbox, &[("Depth", "0")], b"");
    assert!(r.text().contains("schedule-outbox"), "{}", r.text());
    let audit = s.cli_ok(&["audit", "show", "--json"], "");
    assert!(audit.contains("dav.schedule.busy"), "{audit}");
}

/// An attendee declines one instance of a weekly meeting (an override in its copy):
/// the organiser's copy gets an override for that instance with the answer, the series
/// keeps the earlier one; an answer for a time that is no instance adds nothing.
#[test]
fn one_instance_of_a_series() {
    let s = sched_server("[outbound]\nenabled = false\n");
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let bob = basic(BOB, BOB_PW);
    let series = invite(
        "weekly-1",
        "20300901T090000Z",
        "20300901T100000Z",
        "Weekly",
        &[BOB],
    )
    .replace(
        "SUMMARY:Weekly\r\n",
        "SUMMARY:Weekly\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n",
    );
    let path = "/dav/calendars/alice@example.com/calendar/weekly-1.ics";
    let r = dav(a, &alice, "PUT", path, &[], series.as_bytes());
    assert_eq!(r.status, 201);
    let bob_path = "/dav/calendars/bob@example.com/calendar/weekly-1.ics";
    let his = get(a, &bob, bob_path);
    let line = attendee_line(&his, BOB);
    let accepted = his.replace(&line, &line.replace("NEEDS-ACTION", "ACCEPTED"));
    let r = dav(a, &bob, "PUT", bob_path, &[], accepted.as_bytes());
    assert_eq!(r.status, 204);
    // The second week declined, in an override; and an "instance" at 09:30 that the
    // rule never makes.
    let override_at = |rid: &str, ps: &str| {
        format!(
            "BEGIN:VEVENT\r\nUID:weekly-1\r\nRECURRENCE-ID:{rid}\r\nDTSTAMP:20300101T000000Z\r\n\
             DTSTART:{rid}\r\nDURATION:PT1H\r\nSUMMARY:Weekly\r\nORGANIZER:mailto:{ALICE}\r\n\
             ATTENDEE;PARTSTAT={ps}:mailto:{BOB}\r\nEND:VEVENT\r\n"
        )
    };
    let declined = accepted.replace(
        "END:VCALENDAR",
        &format!(
            "{}{}END:VCALENDAR",
            override_at("20300908T090000Z", "DECLINED"),
            override_at("20300908T093000Z", "TENTATIVE")
        ),
    );
    let r = dav(a, &bob, "PUT", bob_path, &[], declined.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
    let mine = unfold(&get(a, &alice, path));
    let comps: Vec<&str> = mine.split("BEGIN:VEVENT").skip(1).collect();
    let master = comps.iter().find(|c| !c.contains("RECURRENCE-ID")).unwrap();
    assert!(
        attendee_line(master, BOB).contains("PARTSTAT=ACCEPTED"),
        "{mine}"
    );
    let second = comps
        .iter()
        .find(|c| c.contains("RECURRENCE-ID:20300908T090000Z"))
        .unwrap_or_else(|| panic!("no override for the second week: {mine}"));
    assert!(
        attendee_line(second, BOB).contains("PARTSTAT=DECLINED"),
        "{mine}"
    );
    assert!(second.contains("DTSTART:20300908T090000Z"), "{mine}");
    assert!(!second.contains("RRULE"), "{mine}");
    assert!(
        !mine.contains("20300908T093000Z"),
        "no phantom instance: {mine}"
    );
    // Free/busy of alice's own calendar still shows four weeks (the override is one).
    assert_eq!(comps.len(), 2, "{mine}");
}

const LIB_CLIENT: &str = r#"
import sys
import caldav
url, alice_pw, bob_pw = sys.argv[1], sys.argv[2], sys.argv[3]
alice = caldav.DAVClient(url=url, username="alice@example.com", password=alice_pw)
bob = caldav.DAVClient(url=url, username="bob@example.com", password=bob_pw)
ap = alice.principal()
bp = bob.principal()
assert alice.check_scheduling_support()
cal = [c for c in ap.calendars() if c.url.path.endswith("/calendar/")][0]
ics = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
       "UID:lib-sched-1\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300601T090000Z\r\n"
       "DTEND:20300601T100000Z\r\nSUMMARY:Library meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
cal.save_with_invites(ics, [bp])
inbox = bp.schedule_inbox()
items = list(inbox.get_items())
assert len(items) == 1, items
item = items[0]
assert item.is_invite_request()
bcal = [c for c in bp.calendars() if c.url.path.endswith("/calendar/")][0]
item.accept_invite(calendar=bcal)
ev = cal.event_by_uid("lib-sched-1")
ev.load()
assert "PARTSTAT=ACCEPTED" in ev.data.replace("\r\n ", ""), ev.data
fb = ap.freebusy_request(
    __import__("datetime").datetime(2030, 6, 1, 0, 0, tzinfo=__import__("datetime").timezone.utc),
    __import__("datetime").datetime(2030, 6, 2, 0, 0, tzinfo=__import__("datetime").timezone.utc),
    ["mailto:bob@example.com"],
)
assert not fb["errors"], fb
busy = fb["mailto:bob@example.com"].data.replace("\r\n ", "")
assert "FREEBUSY;FBTYPE=BUSY:20300601T090000Z/20300601T100000Z" in busy, busy
print("caldav scheduling ok")
"#;

/// The Python `caldav` library's scheduling helpers against the server: invite with
/// `save_with_invites`, read the inbox with `schedule_inbox()`, accept with
/// `accept_invite`, ask for free/busy with `freebusy_request`.
#[test]
fn caldav_library_scheduling_helpers() {
    let s = sched_server("[outbound]\nenabled = false\n");
    let url = format!("http://{}/dav/", s.addr("http"));
    let out = Command::new("python3")
        .arg("-c")
        .arg(LIB_CLIENT)
        .args([&url, ALICE_PW, BOB_PW])
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "python caldav failed ({PYTHON_INSTALL}):\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("caldav scheduling ok"));
}

// ---- review fixes: authentication, tenants, races, single instances ----

/// The ledger entries (`audit show --json`, one JSON object a line).
fn ledger(s: &Server) -> Vec<Value> {
    s.cli_ok(&["audit", "show", "--json"], "")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for an ignored iMIP message whose reason contains `why`, `n` of them.
fn wait_ignored(s: &Server, why: &str, n: usize) {
    wait_for(DELIVERY, &format!("{n} iMIP ignored: {why}"), || {
        (ledger(s)
            .iter()
            .filter(|e| {
                e["record"]["action"] == "dav.schedule.imip.ignored"
                    && e["record"]["result"] == "ignored"
                    && e["record"]["after"]["why"]
                        .as_str()
                        .is_some_and(|w| w.contains(why))
            })
            .count()
            >= n)
            .then_some(())
    });
}

/// A message in a domain that publishes nothing (no SPF, no DKIM, no DMARC) could have
/// been written by anyone on port 25: its REPLY and REQUEST change nothing and the
/// ledger says why; the same REPLY from a domain whose SPF passes is applied.
#[test]
fn imip_needs_an_authenticated_sender() {
    const EVE: &str = "eve@nospf.test";
    let dns = dns();
    let peer = peer();
    let s = sched_server(&outbound_config(dns.port, peer.port));
    let a = s.addr("http");
    let mx = s.addr("smtp");
    let alice = basic(ALICE, ALICE_PW);
    let bob = basic(BOB, BOB_PW);
    let ev = invite(
        "auth-1",
        "20300301T090000Z",
        "20300301T100000Z",
        "Auth",
        &[CAROL, EVE],
    );
    let path = "/dav/calendars/alice@example.com/calendar/auth-1.ics";
    let r = dav(a, &alice, "PUT", path, &[], ev.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    // eve answers, and invites bob to an event of hers: nothing authenticates nospf.test.
    let reply = reply_ical("auth-1", "Auth", &[(EVE, "ACCEPTED")]);
    smtp(mx, EVE, ALICE, &imip_mail(EVE, ALICE, "REPLY", &reply));
    let req = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//eve//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n\
         UID:eve-1\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300401T090000Z\r\n\
         DTEND:20300401T100000Z\r\nSUMMARY:Forged\r\nORGANIZER:mailto:{EVE}\r\n\
         ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{BOB}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    smtp(mx, EVE, BOB, &imip_mail(EVE, BOB, "REQUEST", &req));
    wait_ignored(&s, "the sender's domain is not authenticated", 2);
    let mine = get(a, &alice, path);
    assert!(
        attendee_line(&mine, EVE).contains("PARTSTAT=NEEDS-ACTION"),
        "{mine}"
    );
    let r = dav(
        a,
        &bob,
        "GET",
        "/dav/calendars/bob@example.com/calendar/eve-1.ics",
        &[],
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(list(a, &bob, "/dav/calendars/bob@example.com/inbox/").is_empty());
    // The same REPLY from carol, whose domain's SPF passes, is applied.
    let reply = reply_ical("auth-1", "Auth", &[(CAROL, "ACCEPTED")]);
    smtp(mx, CAROL, ALICE, &imip_mail(CAROL, ALICE, "REPLY", &reply));
    wait_for(DELIVERY, "carol's REPLY applied", || {
        attendee_line(&get(a, &alice, path), CAROL)
            .contains("PARTSTAT=ACCEPTED")
            .then_some(())
    });
}

/// A REPLY by mail cannot answer for a local attendee (they answer through CalDAV),
/// even with the sender's domain authenticated (SPF passes for example.com).
#[test]
fn mailed_reply_cannot_speak_for_a_local_attendee() {
    let dns = dns();
    let peer = peer();
    let s = sched_server(&outbound_config(dns.port, peer.port));
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let ev = invite(
        "local-1",
        "20300301T090000Z",
        "20300301T100000Z",
        "Local",
        &[BOB],
    );
    let path = "/dav/calendars/alice@example.com/calendar/local-1.ics";
    let r = dav(a, &alice, "PUT", path, &[], ev.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let reply = reply_ical("local-1", "Local", &[(BOB, "DECLINED")]);
    smtp(
        s.addr("smtp"),
        BOB,
        ALICE,
        &imip_mail(BOB, ALICE, "REPLY", &reply),
    );
    wait_ignored(&s, "a local attendee does not reply by mail", 1);
    let mine = get(a, &alice, path);
    assert!(
        attendee_line(&mine, BOB).contains("PARTSTAT=NEEDS-ACTION"),
        "{mine}"
    );
    assert!(list(a, &alice, "/dav/calendars/alice@example.com/inbox/").is_empty());
}

/// Two hosted domains are two tenants: alice (example.com) inviting accounts of
/// other.example writes nothing into their calendars, learns nothing about which
/// addresses exist there (1.1 for all, as for any other domain) and gets no automatic
/// answer from their room; the invitation goes by mail (to other.example's MX), and
/// that mail, handed back to us by SMTP, is delivered as any other domain's.
#[test]
fn scheduling_does_not_cross_tenants() {
    const XAVIER: &str = "xavier@other.example";
    const ROOM2: &str = "room2@other.example";
    const NOBODY: &str = "nobody@other.example";
    let dns = dns();
    let peer = peer();
    let s = sched_server(&outbound_config(dns.port, peer.port));
    s.cli_ok(&["domain", "add", "other.example"], "");
    s.cli_ok(&["account", "add", XAVIER], "xavier-sched-secret\n");
    s.cli_ok(&["account", "add", ROOM2, "--kind", "resource"], "");
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let xavier = basic(XAVIER, "xavier-sched-secret");
    let ev = invite(
        "tenant-1",
        "20300301T090000Z",
        "20300301T100000Z",
        "Tenants",
        &[BOB, XAVIER, ROOM2, NOBODY],
    );
    let path = "/dav/calendars/alice@example.com/calendar/tenant-1.ics";
    let r = dav(a, &alice, "PUT", path, &[], ev.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let mine = get(a, &alice, path);
    assert!(
        attendee_line(&mine, BOB).contains("SCHEDULE-STATUS=1.2"),
        "{mine}"
    );
    for other in [XAVIER, ROOM2, NOBODY] {
        let line = attendee_line(&mine, other);
        assert!(line.contains("SCHEDULE-STATUS=1.1"), "{other}: {mine}");
        assert!(line.contains("PARTSTAT=NEEDS-ACTION"), "{other}: {mine}");
    }
    // Nothing written into other.example's accounts by alice's PUT.
    let xpath = "/dav/calendars/xavier@other.example/calendar/tenant-1.ics";
    assert_eq!(dav(a, &xavier, "GET", xpath, &[], b"").status, 404);
    assert!(list(a, &xavier, "/dav/calendars/xavier@other.example/inbox/").is_empty());
    let audit = ledger(&s);
    assert!(
        !audit.iter().any(|e| {
            e["record"]["action"] == "dav.schedule.deliver"
                && e["record"]["target"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("@other.example"))
        }),
        "{audit:?}"
    );
    assert!(
        !audit.iter().any(|e| {
            e["record"]["action"] == "dav.schedule.busy" && e["record"]["target"] == ROOM2
        }),
        "no busy read of the other domain's room: {audit:?}"
    );
    // The invitations went by mail, to other.example's MX.
    let mails: Vec<String> = [XAVIER, ROOM2]
        .iter()
        .map(|who| {
            wait_for(DELIVERY, &format!("the invitation for {who}"), || {
                received(&peer, who).into_iter().next()
            })
        })
        .collect();
    // other.example's MX hands them back to us by SMTP (alice's domain passes SPF):
    // xavier gets the invitation; the room files it without answering by itself.
    for (who, mail) in [XAVIER, ROOM2].iter().zip(&mails) {
        let data = mail.replace("\r\n", "\n").replace('\n', "\r\n");
        let data = data.trim_end_matches("\r\n");
        smtp(s.addr("smtp"), ALICE, who, data);
    }
    let copy = wait_for(DELIVERY, "the invitation in xavier's calendar", || {
        let r = dav(a, &xavier, "GET", xpath, &[], b"");
        (r.status == 200).then(|| r.text())
    });
    assert!(
        attendee_line(&copy, XAVIER).contains("PARTSTAT=NEEDS-ACTION"),
        "{copy}"
    );
    let room_entry = wait_for(DELIVERY, "the room's copy", || {
        ledger(&s).into_iter().find(|e| {
            e["record"]["action"] == "dav.schedule.deliver" && e["record"]["target"] == ROOM2
        })
    });
    assert_eq!(
        room_entry["record"]["after"]["partstat"], "NEEDS-ACTION",
        "{room_entry}"
    );
    assert!(
        !ledger(&s).iter().any(|e| {
            e["record"]["action"] == "dav.schedule.imip" && e["record"]["after"]["from"] == ROOM2
        }),
        "the room sent no answer"
    );
    // Free/busy does not reach across either (it never did: kept so).
    let fb = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\n\
         UID:fb-t\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300301T000000Z\r\n\
         DTEND:20300302T000000Z\r\nORGANIZER:mailto:{ALICE}\r\nATTENDEE:mailto:{XAVIER}\r\n\
         END:VFREEBUSY\r\nEND:VCALENDAR\r\n"
    );
    let r = dav(
        a,
        &alice,
        "POST",
        "/dav/calendars/alice@example.com/outbox/",
        &[("Content-Type", "text/calendar")],
        fb.as_bytes(),
    );
    assert!(r.text().contains("3.7"), "{}", r.text());
}

/// Replies racing each other into the organiser's copy are all kept: three attendees
/// accept at the same moment, five times over.
#[test]
fn concurrent_replies_are_not_lost() {
    const PEOPLE: [(&str, &str); 3] = [
        (BOB, BOB_PW),
        ("dave@example.com", "dave-sched-secret"),
        ("erin@example.com", "erin-sched-secret"),
    ];
    let s = sched_server("[outbound]\nenabled = false\n");
    for (who, pw) in &PEOPLE[1..] {
        s.cli_ok(&["account", "add", who], format!("{pw}\n"));
    }
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    for round in 0..5 {
        let uid = format!("race-{round}");
        let ev = invite(
            &uid,
            "20300301T090000Z",
            "20300301T100000Z",
            "Race",
            &PEOPLE.map(|(w, _)| w),
        );
        let path = format!("/dav/calendars/alice@example.com/calendar/{uid}.ics");
        let r = dav(a, &alice, "PUT", &path, &[], ev.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(PEOPLE.len()));
        let threads: Vec<_> = PEOPLE
            .iter()
            .map(|(who, pw)| {
                let auth = basic(who, pw);
                let p = format!("/dav/calendars/{who}/calendar/{uid}.ics");
                let copy = get(a, &auth, &p);
                let line = attendee_line(&copy, who);
                let accepted = copy.replace(&line, &line.replace("NEEDS-ACTION", "ACCEPTED"));
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let r = dav(a, &auth, "PUT", &p, &[], accepted.as_bytes());
                    assert_eq!(r.status, 204, "{}", r.text());
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mine = get(a, &alice, &path);
        for (who, _) in PEOPLE {
            assert!(
                attendee_line(&mine, who).contains("PARTSTAT=ACCEPTED"),
                "round {round}, {who}: {mine}"
            );
        }
    }
}

const BERLIN: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\n\
TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\n\
TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";

/// Outlook and Exchange send a REQUEST or CANCEL about one occurrence with only that
/// instance (a RECURRENCE-ID component, no master): the attendee's copy of the series
/// keeps its master and other instances; the instance is matched by its UTC instant
/// (here the series is in Europe/Berlin and the CANCEL names the instance in UTC).
#[test]
fn one_occurrence_by_mail_keeps_the_series() {
    let dns = dns();
    let peer = peer();
    let s = sched_server(&outbound_config(dns.port, peer.port));
    let a = s.addr("http");
    let mx = s.addr("smtp");
    let bob = basic(BOB, BOB_PW);
    let head = |method: &str| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//outlook//EN\r\nMETHOD:{method}\r\n{BERLIN}"
        )
    };
    let comp = |extra: &str, summary: &str| {
        format!(
            "BEGIN:VEVENT\r\nUID:occ-1\r\nDTSTAMP:20300101T000000Z\r\n{extra}SUMMARY:{summary}\r\n\
             ORGANIZER:mailto:{CAROL}\r\nATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{BOB}\r\n\
             END:VEVENT\r\n"
        )
    };
    let series = format!(
        "{}{}END:VCALENDAR\r\n",
        head("REQUEST"),
        comp(
            "SEQUENCE:2\r\nDTSTART;TZID=Europe/Berlin:20300902T100000\r\n\
             DTEND;TZID=Europe/Berlin:20300902T110000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n",
            "Weekly"
        )
    );
    smtp(mx, CAROL, BOB, &imip_mail(CAROL, BOB, "REQUEST", &series));
    let path = "/dav/calendars/bob@example.com/calendar/occ-1.ics";
    wait_for(DELIVERY, "the series in bob's calendar", || {
        (dav(a, &bob, "GET", path, &[], b"").status == 200).then_some(())
    });
    // One occurrence moved (an instance-only REQUEST).
    let moved = format!(
        "{}{}END:VCALENDAR\r\n",
        head("REQUEST"),
        comp(
            "SEQUENCE:3\r\nRECURRENCE-ID;TZID=Europe/Berlin:20300909T100000\r\n\
             DTSTART;TZID=Europe/Berlin:20300909T140000\r\n\
             DTEND;TZID=Europe/Berlin:20300909T150000\r\n",
            "Weekly moved"
        )
    );
    smtp(mx, CAROL, BOB, &imip_mail(CAROL, BOB, "REQUEST", &moved));
    let copy = wait_for(DELIVERY, "the moved occurrence", || {
        let t = unfold(&get(a, &bob, path));
        t.contains("SUMMARY:Weekly moved").then_some(t)
    });
    assert!(copy.contains("RRULE:FREQ=WEEKLY;COUNT=4"), "{copy}");
    assert!(copy.contains("SUMMARY:Weekly\r\n"), "{copy}");
    assert_eq!(copy.matches("BEGIN:VEVENT").count(), 2, "{copy}");
    // Another occurrence cancelled, named in UTC (10:00 CEST = 08:00Z).
    let cancel_at = |rid_utc: &str, seq: u32| {
        format!(
            "{}{}END:VCALENDAR\r\n",
            head("CANCEL"),
            comp(
                &format!("SEQUENCE:{seq}\r\nSTATUS:CANCELLED\r\nRECURRENCE-ID:{rid_utc}\r\n"),
                "Weekly"
            )
        )
    };
    smtp(
        mx,
        CAROL,
        BOB,
        &imip_mail(CAROL, BOB, "CANCEL", &cancel_at("20300916T080000Z", 3)),
    );
    let copy = wait_for(DELIVERY, "the cancelled occurrence", || {
        let t = unfold(&get(a, &bob, path));
        t.contains("EXDATE").then_some(t)
    });
    let master = copy
        .split("BEGIN:VEVENT")
        .skip(1)
        .find(|c| !c.contains("RECURRENCE-ID"))
        .unwrap_or_else(|| panic!("the master is gone: {copy}"));
    assert!(master.contains("RRULE:FREQ=WEEKLY;COUNT=4"), "{copy}");
    assert!(!copy.contains("STATUS:CANCELLED"), "{copy}");
    assert!(copy.contains("SUMMARY:Weekly moved"), "{copy}");
    // The moved occurrence cancelled, named in UTC while the override says Berlin time:
    // its override goes.
    smtp(
        mx,
        CAROL,
        BOB,
        &imip_mail(CAROL, BOB, "CANCEL", &cancel_at("20300909T080000Z", 4)),
    );
    let copy = wait_for(DELIVERY, "the moved occurrence cancelled", || {
        let t = unfold(&get(a, &bob, path));
        (!t.contains("SUMMARY:Weekly moved")).then_some(t)
    });
    assert_eq!(copy.matches("BEGIN:VEVENT").count(), 1, "{copy}");
    assert_eq!(copy.matches("EXDATE").count(), 2, "{copy}");
    assert!(copy.contains("RRULE:FREQ=WEEKLY;COUNT=4"), "{copy}");
    // A calendar-query for the cancelled week finds nothing; the next week is there.
    let query = |start: &str, end: &str| {
        let body = format!(
            r#"<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"><c:time-range start="{start}" end="{end}"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"#
        );
        let r = dav(
            a,
            &bob,
            "REPORT",
            "/dav/calendars/bob@example.com/calendar/",
            &[("Depth", "1")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 207, "{}", r.text());
        r.text().contains("occ-1.ics")
    };
    assert!(!query("20300916T000000Z", "20300917T000000Z"));
    assert!(query("20300923T000000Z", "20300924T000000Z"));
}

/// Clients cannot make collections named like the scheduling inbox or outbox (in any
/// case): only the server's inbox is the inbox.
#[test]
fn inbox_and_outbox_names_are_reserved() {
    let s = sched_server("[outbound]\nenabled = false\n");
    let a = s.addr("http");
    let bob = basic(BOB, BOB_PW);
    for name in ["Inbox", "INBOX", "OUTBOX", "Outbox"] {
        let path = format!("/dav/calendars/bob@example.com/{name}/");
        for method in ["MKCALENDAR", "MKCOL"] {
            let r = dav(a, &bob, method, &path, &[], b"");
            assert!(
                !(200..300).contains(&r.status),
                "{method} {path}: {} {}",
                r.status,
                r.text()
            );
        }
    }
    let names = list(a, &bob, "/dav/calendars/bob@example.com/");
    for name in ["Inbox", "INBOX", "OUTBOX", "Outbox"] {
        assert!(
            !names.iter().any(|n| n.ends_with(&format!("/{name}/"))),
            "{names:?}"
        );
    }
}

/// A scheduling write refused because the other account's copy has another organiser
/// (a UID collision, or an attempt at someone else's event) is on record as `denied`.
#[test]
fn refused_scheduling_writes_are_on_record() {
    let s = sched_server("[outbound]\nenabled = false\n");
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let bob = basic(BOB, BOB_PW);
    // alice has an event bob is not invited to; bob writes a copy of "hers" listing
    // himself as ACCEPTED: his REPLY does not touch her copy.
    let secret = invite(
        "secret-1",
        "20300301T090000Z",
        "20300301T100000Z",
        "Secret",
        &["nobody@example.com"],
    );
    let apath = "/dav/calendars/alice@example.com/calendar/secret-1.ics";
    assert_eq!(
        dav(a, &alice, "PUT", apath, &[], secret.as_bytes()).status,
        201
    );
    let forged = secret.replace(
        "ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:nobody@example.com",
        &format!("ATTENDEE;PARTSTAT=ACCEPTED:mailto:{BOB}"),
    );
    let r = dav(
        a,
        &bob,
        "PUT",
        "/dav/calendars/bob@example.com/calendar/secret-1.ics",
        &[],
        forged.as_bytes(),
    );
    assert!(matches!(r.status, 201 | 204), "{}", r.text());
    assert!(!get(a, &alice, apath).contains(BOB));
    // bob organises his own "dup-1"; alice invites him to an event with that UID: his
    // copy stays his.
    let his = invite(
        "dup-1",
        "20300301T090000Z",
        "20300301T100000Z",
        "Bob's",
        &[],
    )
    .replace(&format!("mailto:{ALICE}"), &format!("mailto:{BOB}"));
    let bpath = "/dav/calendars/bob@example.com/calendar/dup-1.ics";
    assert_eq!(dav(a, &bob, "PUT", bpath, &[], his.as_bytes()).status, 201);
    let hers = invite(
        "dup-1",
        "20300301T090000Z",
        "20300301T100000Z",
        "Alice's",
        &[BOB],
    );
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/calendars/alice@example.com/calendar/dup-1.ics",
        &[],
        hers.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(unfold(&get(a, &bob, bpath)).contains("SUMMARY:Bob's"));
    let audit = ledger(&s);
    let denied = |action: &str, target: &str| {
        audit.iter().any(|e| {
            e["record"]["action"] == action
                && e["record"]["result"] == "denied"
                && e["record"]["target"] == target
        })
    };
    assert!(denied("dav.schedule.reply", ALICE), "{audit:?}");
    assert!(denied("dav.schedule.deliver", BOB), "{audit:?}");
}

/// An iMIP message delivered twice (an SMTP retry) leaves one inbox item, and an
/// update of the same event replaces it rather than adding another.
#[test]
fn inbox_items_are_idempotent() {
    let dns = dns();
    let peer = peer();
    let s = sched_server(&outbound_config(dns.port, peer.port));
    let a = s.addr("http");
    let bob = basic(BOB, BOB_PW);
    let req = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//carol//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n\
         UID:idem-1\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300401T090000Z\r\n\
         DTEND:20300401T100000Z\r\nSUMMARY:Once\r\nORGANIZER:mailto:{CAROL}\r\n\
         ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{BOB}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    let mail = imip_mail(CAROL, BOB, "REQUEST", &req);
    smtp(s.addr("smtp"), CAROL, BOB, &mail);
    smtp(s.addr("smtp"), CAROL, BOB, &mail);
    wait_for(DELIVERY, "both deliveries processed", || {
        (ledger(&s)
            .iter()
            .filter(|e| e["record"]["action"] == "dav.schedule.deliver")
            .count()
            >= 2)
            .then_some(())
    });
    let inbox = "/dav/calendars/bob@example.com/inbox/";
    assert_eq!(list(a, &bob, inbox).len(), 1);
    let v2 = req.replace("SUMMARY:Once", "SEQUENCE:1\r\nSUMMARY:Twice");
    smtp(
        s.addr("smtp"),
        CAROL,
        BOB,
        &imip_mail(CAROL, BOB, "REQUEST", &v2),
    );
    let items = wait_for(DELIVERY, "the update in the inbox", || {
        let items = list(a, &bob, inbox);
        items
            .iter()
            .any(|i| unfold(&get(a, &bob, i)).contains("SUMMARY:Twice"))
            .then_some(items)
    });
    assert_eq!(items.len(), 1, "{items:?}");
}
