//! CalDAV/CardDAV against a real `postern serve`: the Python `caldav` library as a real
//! client (discovery, create, fetch, date-range search, update, sync token, delete,
//! MKCALENDAR), vCards over raw HTTP, the XML vectors of THREATS.md (DOCTYPE / billion
//! laughs / external entities → 400, depth bomb → 400, oversized body → 413), IDOR
//! between accounts (the answer equals a nonexistent path's, and the attempt is in the
//! ledger), preconditions (412), and the TLS rule for Basic credentials. Second slice:
//! time ranges on recurring events by instance, `expand`, `limit-recurrence-set`, the
//! THREATS.md RRULE bombs (quick, capped answers), free-busy-query, COPY and MOVE.
//!
//! Needs `python3` with `caldav` (pip `caldav==3.6.0`, installed by `.ci/run`): a
//! missing library fails the test, it never skips.

mod common;

use common::*;
use std::net::SocketAddr;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const ALICE_PW: &str = "alice-dav-secret-1";
const BOB_PW: &str = "bob-dav-secret-1";

fn server() -> Server {
    let s = Server::start_with("[auth]\nallow_plaintext_on_loopback = true\n");
    s.cli_ok(&["domain", "add", "example.com"], "");
    s.cli_ok(&["account", "add", ALICE], format!("{ALICE_PW}\n"));
    s.cli_ok(&["account", "add", BOB], format!("{BOB_PW}\n"));
    s
}

fn event(uid: &str, start: &str, end: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern test//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n\
         SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

const CLIENT: &str = r#"
import sys, uuid
from datetime import datetime, timedelta, timezone
import caldav
url, user, pw = sys.argv[1], sys.argv[2], sys.argv[3]
client = caldav.DAVClient(url=url, username=user, password=pw)
principal = client.principal()
assert principal.url.path == "/dav/principals/alice@example.com/", principal.url
cals = principal.calendars()
paths = sorted(c.url.path for c in cals)
assert any(p.endswith("/calendar/") for p in paths), paths
assert any(p.endswith("/tasks/") for p in paths), paths
cal = [c for c in cals if c.url.path.endswith("/calendar/")][0]
day0 = datetime(2030, 1, 1, 9, 0, tzinfo=timezone.utc)
uid = "lib-" + uuid.uuid4().hex
ics = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
       f"UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300101T090000Z\r\n"
       "DTEND:20300101T100000Z\r\nSUMMARY:Planning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
cal.save_event(ics)
sync0 = cal.objects_by_sync_token()
token0 = sync0.sync_token
assert len(list(sync0)) == 1
got = cal.event_by_uid(uid)
assert "Planning" in got.data
found = cal.search(start=day0 - timedelta(hours=1), end=day0 + timedelta(hours=2), event=True)
assert len(found) == 1, found
assert len(cal.search(start=day0 + timedelta(days=3), end=day0 + timedelta(days=4), event=True)) == 0
got.data = got.data.replace("Planning", "Changed")
got.save()
assert "Changed" in cal.event_by_uid(uid).data
changed = cal.objects_by_sync_token(sync_token=token0, load_objects=True)
assert len(list(changed)) == 1
assert changed.sync_token != token0
got.delete()
assert len(cal.search(start=day0 - timedelta(hours=1), end=day0 + timedelta(hours=2), event=True)) == 0
extra = principal.make_calendar(name="Extra", cal_id="extra")
assert extra.get_display_name() == "Extra"
assert any(c.url.path.endswith("/extra/") for c in principal.calendars())
extra.delete()
print("caldav", caldav.__version__, "ok")
"#;

#[test]
fn caldav_library_is_a_real_client() {
    let s = server();
    let url = format!("http://{}/dav/", s.addr("http"));
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .args([&url, ALICE, ALICE_PW])
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "python caldav client failed (pip install caldav==3.6.0):\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("ok"));
    // Every read of calendar data and every change is in the ledger.
    let audit = s.cli_ok(&["audit", "show", "--account", ALICE, "--json"], "");
    for action in ["dav.put", "dav.read", "dav.delete", "dav.collection.create"] {
        assert!(
            audit.contains(action),
            "{action} missing from the ledger:\n{audit}"
        );
    }
}

#[test]
fn discovery_well_known_and_tls_rule() {
    let s = server();
    let a = s.addr("http");
    for p in ["/.well-known/caldav", "/.well-known/carddav"] {
        let r = http(a, "GET", p, &[], b"");
        assert_eq!(r.status, 301, "{p}");
        assert_eq!(r.header("location"), Some("/dav/"));
    }
    let alice = basic(ALICE, ALICE_PW);
    let r = dav(a, &alice, "OPTIONS", "/dav/", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.header("dav").unwrap().contains("calendar-access"));
    assert!(r.header("dav").unwrap().contains("addressbook"));
    let body = br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><c:calendar-home-set/><card:addressbook-home-set/><c:calendar-user-address-set/><d:current-user-principal/><d:unknown-prop/></d:prop></d:propfind>"#;
    let r = dav(
        a,
        &alice,
        "PROPFIND",
        "/dav/principals/alice@example.com/",
        &[("Depth", "0")],
        body,
    );
    assert_eq!(r.status, 207);
    let t = r.text();
    assert!(
        t.contains("<d:href>/dav/calendars/alice@example.com/</d:href>"),
        "{t}"
    );
    assert!(
        t.contains("<d:href>/dav/addressbooks/alice@example.com/</d:href>"),
        "{t}"
    );
    assert!(t.contains("mailto:alice@example.com"), "{t}");
    assert!(t.contains("404 Not Found"), "{t}");
    // No credentials: a Basic challenge; wrong ones: the same.
    let r = http(a, "PROPFIND", "/dav/", &[], b"");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    let r = dav(a, &basic(ALICE, "wrong"), "PROPFIND", "/dav/", &[], b"");
    assert_eq!(r.status, 401);

    // Without the loopback opt-in, plaintext Basic is refused before it is checked.
    let strict = Server::start();
    let r = http(
        strict.addr("http"),
        "PROPFIND",
        "/dav/",
        &[("Authorization", &alice)],
        b"",
    );
    assert_eq!(r.status, 403);
    // Over TLS the same credentials work.
    strict.cli_ok(&["domain", "add", "example.com"], "");
    strict.cli_ok(&["account", "add", ALICE], format!("{ALICE_PW}\n"));
    let r = https(
        strict.addr("https"),
        &strict.cert_path(),
        "PROPFIND",
        "/dav/",
        &[("Authorization", &alice), ("Depth", "0")],
    );
    assert_eq!(r.status, 207, "{}", r.text());
    assert!(r.text().contains("<d:href>/dav/</d:href>"), "{}", r.text());
}

/// Reads one response whose length is given by Content-Length, leaving the connection open.
fn read_one_response(s: &mut std::net::TcpStream) -> Response {
    use std::io::Read;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if raw.len() >= split + 4 + len {
                return try_parse_response(&raw[..split + 4 + len]).unwrap();
            }
        }
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "connection closed after {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
}

/// What the Python `caldav` library (and most clients) do: a PROPFIND without
/// credentials, the 401, then the same request with credentials on the same connection.
/// The refused request's body arrives after its head; the server reads it before the
/// 401, so the connection carries the retry. A body past the drain cap gets
/// `Connection: close` instead.
#[test]
fn challenge_keeps_the_connection_for_the_retry() {
    use std::io::Write;
    let s = server();
    let a = s.addr("http");
    let body = br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/></d:prop></d:propfind>"#;
    let mut c = connect(a);
    let head = format!(
        "PROPFIND /dav/ HTTP/1.1\r\nHost: {a}\r\nDepth: 0\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    c.write_all(body).unwrap();
    let r = read_one_response(&mut c);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("connection"), None);
    let retry = format!(
        "PROPFIND /dav/ HTTP/1.1\r\nHost: {a}\r\nDepth: 0\r\nAuthorization: {}\r\n\
         Content-Length: {}\r\n\r\n",
        basic(ALICE, ALICE_PW),
        body.len()
    );
    c.write_all(retry.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    let r = read_one_response(&mut c);
    assert_eq!(r.status, 207, "{}", r.text());
    assert!(
        r.text().contains("/dav/principals/alice@example.com/"),
        "{}",
        r.text()
    );

    // More than the drain cap (64 KiB) unauthenticated: refused, and the connection ends.
    let big = vec![b' '; 200 * 1024];
    let r = http(
        a,
        "PUT",
        "/dav/calendars/alice@example.com/calendar/x.ics",
        &[],
        &big,
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("connection"), Some("close"));
}

/// `auth.login` entries of `account` with result `ok`, from the ledger.
fn logins_ok(s: &Server, account: &str) -> usize {
    s.cli_ok(&["audit", "show", "--account", account, "--json"], "")
        .lines()
        .filter(|l| l.contains("\"auth.login\"") && l.contains("\"result\":\"ok\""))
        .count()
}

/// Writes one request with `auth` on `c` and reads its answer (connection kept).
fn on_conn(
    c: &mut std::net::TcpStream,
    a: SocketAddr,
    auth: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Response {
    use std::io::Write;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {a}\r\nDepth: 0\r\nAuthorization: {auth}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    read_one_response(c)
}

/// The connection is the session, as in IMAP: N requests with the same credentials on
/// one keep-alive connection are one `auth.login` entry (every data read still has its
/// own `dav.read`); another connection logs in again; a wrong password on a logged-in
/// connection is 401 and forgets the login; `auth_cache_ttl_secs = 0` logs in on every
/// request, and past the TTL the next request logs in again.
#[test]
fn one_login_per_connection() {
    let s = server();
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let cal = "/dav/calendars/alice@example.com/calendar/";
    let ev = event("conn-1", "20300101T090000Z", "20300101T100000Z", "x");
    let mut c = connect(a);
    let r = on_conn(
        &mut c,
        a,
        &alice,
        "PUT",
        &format!("{cal}c1.ics"),
        ev.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let before = logins_ok(&s, ALICE);
    for _ in 0..5 {
        let r = on_conn(&mut c, a, &alice, "GET", &format!("{cal}c1.ics"), b"");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        logins_ok(&s, ALICE),
        before,
        "reused the connection's login"
    );
    let audit = s.cli_ok(&["audit", "show", "--account", ALICE, "--json"], "");
    assert!(
        audit.lines().filter(|l| l.contains("\"dav.read\"")).count() >= 5,
        "every read is in the ledger:\n{audit}"
    );

    // A wrong password on the same connection is refused, not served from the login.
    let wrong = basic(ALICE, "not-the-password");
    let r = on_conn(&mut c, a, &wrong, "GET", &format!("{cal}c1.ics"), b"");
    assert_eq!(r.status, 401);
    // Another account's good credentials on the same connection are a new login.
    let who = br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/></d:prop></d:propfind>"#;
    let r = on_conn(&mut c, a, &basic(BOB, BOB_PW), "PROPFIND", "/dav/", who);
    assert_eq!(r.status, 207);
    assert!(
        r.text().contains("/dav/principals/bob@example.com/"),
        "{}",
        r.text()
    );
    let r = on_conn(&mut c, a, &alice, "GET", &format!("{cal}c1.ics"), b"");
    assert_eq!(r.status, 200);
    assert_eq!(logins_ok(&s, ALICE), before + 1, "the login was forgotten");
    drop(c);

    // Another connection is another login.
    let mut c2 = connect(a);
    for _ in 0..3 {
        let r = on_conn(&mut c2, a, &alice, "GET", &format!("{cal}c1.ics"), b"");
        assert_eq!(r.status, 200);
    }
    assert_eq!(logins_ok(&s, ALICE), before + 2);

    // With the cache off, every request logs in.
    let s0 =
        Server::start_with("[auth]\nallow_plaintext_on_loopback = true\nauth_cache_ttl_secs = 0\n");
    s0.cli_ok(&["domain", "add", "example.com"], "");
    s0.cli_ok(&["account", "add", ALICE], format!("{ALICE_PW}\n"));
    let a0 = s0.addr("http");
    let mut c = connect(a0);
    for _ in 0..3 {
        let r = on_conn(&mut c, a0, &alice, "PROPFIND", "/dav/", b"");
        assert_eq!(r.status, 207);
    }
    assert_eq!(logins_ok(&s0, ALICE), 3);

    // A connection's login lasts auth_cache_ttl_secs, then the next request logs in.
    let s1 =
        Server::start_with("[auth]\nallow_plaintext_on_loopback = true\nauth_cache_ttl_secs = 1\n");
    s1.cli_ok(&["domain", "add", "example.com"], "");
    s1.cli_ok(&["account", "add", ALICE], format!("{ALICE_PW}\n"));
    let a1 = s1.addr("http");
    let mut c = connect(a1);
    for _ in 0..2 {
        let r = on_conn(&mut c, a1, &alice, "PROPFIND", "/dav/", b"");
        assert_eq!(r.status, 207);
    }
    assert_eq!(logins_ok(&s1, ALICE), 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = on_conn(&mut c, a1, &alice, "PROPFIND", "/dav/", b"");
    assert_eq!(r.status, 207);
    assert_eq!(logins_ok(&s1, ALICE), 2, "re-verified after the TTL");
}

#[test]
fn resources_preconditions_and_sync() {
    let s = server();
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let p = "/dav/calendars/alice@example.com/calendar/e1.ics";
    let ev = event("e1", "20300101T090000Z", "20300101T100000Z", "One");
    let ct = ("Content-Type", "text/calendar");

    let r = dav(
        a,
        &alice,
        "PUT",
        p,
        &[ct, ("If-None-Match", "*")],
        ev.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let etag = r.header("etag").unwrap().to_string();
    // Create-only again: 412.
    let r = dav(
        a,
        &alice,
        "PUT",
        p,
        &[ct, ("If-None-Match", "*")],
        ev.as_bytes(),
    );
    assert_eq!(r.status, 412);
    // Wrong If-Match: 412, unchanged.
    let ev2 = event("e1", "20300101T090000Z", "20300101T100000Z", "Two");
    let r = dav(
        a,
        &alice,
        "PUT",
        p,
        &[ct, ("If-Match", "\"nope\"")],
        ev2.as_bytes(),
    );
    assert_eq!(r.status, 412);
    let r = dav(a, &alice, "GET", p, &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), ev);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/calendar")
    );
    let r = dav(a, &alice, "GET", p, &[("If-None-Match", &etag)], b"");
    assert_eq!(r.status, 304);
    // Right If-Match: replaced, new ETag.
    let r = dav(
        a,
        &alice,
        "PUT",
        p,
        &[ct, ("If-Match", &etag)],
        ev2.as_bytes(),
    );
    assert_eq!(r.status, 204);
    let etag2 = r.header("etag").unwrap().to_string();
    assert_ne!(etag, etag2);

    // valid-calendar-data: garbage, METHOD, a second UID, a UID taken by another name.
    for (bad, pre) in [
        ("hello".to_string(), "valid-calendar-data"),
        (
            ev2.replace("VERSION:2.0\r\n", "VERSION:2.0\r\nMETHOD:REQUEST\r\n"),
            "valid-calendar-data",
        ),
        (
            ev2.replace(
                "END:VCALENDAR",
                "BEGIN:VEVENT\r\nUID:other\r\nDTSTART:20300101T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR",
            ),
            "valid-calendar-data",
        ),
    ] {
        let r = dav(
            a,
            &alice,
            "PUT",
            "/dav/calendars/alice@example.com/calendar/bad.ics",
            &[ct],
            bad.as_bytes(),
        );
        assert_eq!(r.status, 403, "{bad}");
        assert!(r.text().contains(pre), "{}", r.text());
    }
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/calendars/alice@example.com/calendar/dup.ics",
        &[ct],
        ev.as_bytes(),
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("no-uid-conflict"));
    // A VTODO does not go into the event calendar; it does into the task list.
    let todo = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:t1\r\nSUMMARY:x\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/calendars/alice@example.com/calendar/t1.ics",
        &[ct],
        todo.as_bytes(),
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("supported-calendar-component"));
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/calendars/alice@example.com/tasks/t1.ics",
        &[ct],
        todo.as_bytes(),
    );
    assert_eq!(r.status, 201);

    // calendar-query with a time-range, calendar-multiget.
    let ev3 = event("e3", "20300105T090000Z", "20300105T100000Z", "Three");
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/calendars/alice@example.com/calendar/e3.ics",
        &[ct],
        ev3.as_bytes(),
    );
    assert_eq!(r.status, 201);
    let q = br#"<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"><c:time-range start="20300101T000000Z" end="20300102T000000Z"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"#;
    let cal = "/dav/calendars/alice@example.com/calendar/";
    let r = dav(a, &alice, "REPORT", cal, &[("Depth", "1")], q);
    assert_eq!(r.status, 207);
    let t = r.text();
    assert!(t.contains("e1.ics") && t.contains("SUMMARY:Two"), "{t}");
    assert!(!t.contains("e3.ics"), "{t}");
    // text-match on a property.
    let q = br#"<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"><c:prop-filter name="SUMMARY"><c:text-match>THREE</c:text-match></c:prop-filter></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"#;
    let t = dav(a, &alice, "REPORT", cal, &[("Depth", "1")], q).text();
    assert!(t.contains("e3.ics") && !t.contains("e1.ics"), "{t}");
    assert!(!t.contains("SUMMARY"), "data only when asked for: {t}");
    let mg = br#"<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop><d:href>/dav/calendars/alice@example.com/calendar/e3.ics</d:href><d:href>/dav/calendars/alice@example.com/calendar/missing.ics</d:href></c:calendar-multiget>"#;
    let r = dav(a, &alice, "REPORT", cal, &[("Depth", "1")], mg);
    assert_eq!(r.status, 207);
    let t = r.text();
    assert!(t.contains("SUMMARY:Three"), "{t}");
    assert!(
        t.contains("missing.ics</d:href><d:status>HTTP/1.1 404"),
        "{t}"
    );

    // sync-collection: initial, then the delta with a removal.
    let sync = |token: &str| {
        format!(
            r#"<d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#
        )
    };
    let r = dav(a, &alice, "REPORT", cal, &[], sync("").as_bytes());
    assert_eq!(r.status, 207);
    let t = r.text();
    assert!(t.contains("e1.ics") && t.contains("e3.ics"), "{t}");
    let token = t
        .split("<d:sync-token>")
        .nth(1)
        .and_then(|x| x.split("</d:sync-token>").next())
        .unwrap()
        .to_string();
    // DAV:limit: one change at a time, 507 on the collection until the last.
    let limited = |token: &str| {
        format!(
            r#"<d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level><d:limit><d:nresults>1</d:nresults></d:limit><d:prop><d:getetag/></d:prop></d:sync-collection>"#
        )
    };
    let r = dav(a, &alice, "REPORT", cal, &[], limited("").as_bytes());
    let t = r.text();
    assert_eq!(r.status, 207);
    assert!(t.contains("507 Insufficient Storage"), "{t}");
    assert!(t.contains("e1.ics") != t.contains("e3.ics"), "{t}");
    let part = t
        .split("<d:sync-token>")
        .nth(1)
        .and_then(|x| x.split("</d:sync-token>").next())
        .unwrap()
        .to_string();
    let t2 = dav(a, &alice, "REPORT", cal, &[], limited(&part).as_bytes()).text();
    assert!(t2.contains("e1.ics") != t2.contains("e3.ics"), "{t2}");
    assert!(t.contains("e1.ics") != t2.contains("e1.ics"), "{t}\n{t2}");
    let r = dav(a, &alice, "DELETE", p, &[("If-Match", "\"nope\"")], b"");
    assert_eq!(r.status, 412);
    let r = dav(a, &alice, "DELETE", p, &[("If-Match", &etag2)], b"");
    assert_eq!(r.status, 204);
    let r = dav(a, &alice, "GET", p, &[], b"");
    assert_eq!(r.status, 404);
    let r = dav(a, &alice, "REPORT", cal, &[], sync(&token).as_bytes());
    assert_eq!(r.status, 207);
    let t = r.text();
    assert!(t.contains("e1.ics</d:href><d:status>HTTP/1.1 404"), "{t}");
    assert!(!t.contains("e3.ics"), "{t}");
    assert!(!t.contains(&format!("<d:sync-token>{token}<")), "{t}");
    let r = dav(
        a,
        &alice,
        "REPORT",
        cal,
        &[],
        sync("https://bogus/1").as_bytes(),
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("valid-sync-token"));

    // A token of a collection removed and made again under its name is refused.
    let x = "/dav/calendars/alice@example.com/again/";
    assert_eq!(dav(a, &alice, "MKCALENDAR", x, &[], b"").status, 201);
    let t = dav(a, &alice, "REPORT", x, &[], sync("").as_bytes()).text();
    let old = t
        .split("<d:sync-token>")
        .nth(1)
        .and_then(|x| x.split("</d:sync-token>").next())
        .unwrap()
        .to_string();
    assert_eq!(dav(a, &alice, "DELETE", x, &[], b"").status, 204);
    assert_eq!(dav(a, &alice, "MKCALENDAR", x, &[], b"").status, 201);
    let r = dav(a, &alice, "REPORT", x, &[], sync(&old).as_bytes());
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("valid-sync-token"));

    // PROPPATCH color/order/name; PROPFIND shows them.
    let pp = br##"<d:propertyupdate xmlns:d="DAV:" xmlns:i="http://apple.com/ns/ical/"><d:set><d:prop><d:displayname>Work</d:displayname><i:calendar-color>#FF0000FF</i:calendar-color><i:calendar-order>2</i:calendar-order></d:prop></d:set></d:propertyupdate>"##;
    let r = dav(a, &alice, "PROPPATCH", cal, &[], pp);
    assert_eq!(r.status, 207);
    assert!(r.text().contains("200 OK"), "{}", r.text());
    let r = dav(a, &alice, "PROPFIND", cal, &[("Depth", "0")], b"");
    let t = r.text();
    assert!(t.contains("<d:displayname>Work</d:displayname>"), "{t}");
    assert!(
        t.contains("#FF0000FF") && t.contains("<ical:calendar-order>2<"),
        "{t}"
    );
    // A CSS colour name is kept as given; anything else is refused and changes nothing.
    let color = |v: &str| {
        format!(
            r#"<d:propertyupdate xmlns:d="DAV:" xmlns:i="http://apple.com/ns/ical/"><d:set><d:prop><i:calendar-color>{v}</i:calendar-color></d:prop></d:set></d:propertyupdate>"#
        )
    };
    let r = dav(a, &alice, "PROPPATCH", cal, &[], color("blue").as_bytes());
    assert!(r.text().contains("200 OK"), "{}", r.text());
    let r = dav(a, &alice, "PROPFIND", cal, &[("Depth", "0")], b"");
    assert!(r.text().contains(">blue<"), "{}", r.text());
    for bad in ["#12345", "red;x", "url(x)"] {
        let r = dav(a, &alice, "PROPPATCH", cal, &[], color(bad).as_bytes());
        assert!(!r.text().contains("200 OK"), "{bad}: {}", r.text());
        let r = dav(a, &alice, "PROPFIND", cal, &[("Depth", "0")], b"");
        assert!(r.text().contains(">blue<"), "{bad}: {}", r.text());
    }

    // A vCard in the default address book.
    let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Carol Example\r\nEMAIL:carol@example.org\r\nEND:VCARD\r\n";
    let cp = "/dav/addressbooks/alice@example.com/contacts/c1.vcf";
    let r = dav(
        a,
        &alice,
        "PUT",
        cp,
        &[("Content-Type", "text/vcard")],
        card.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = dav(a, &alice, "GET", cp, &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), card);
    assert!(r.header("content-type").unwrap().starts_with("text/vcard"));
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/addressbooks/alice@example.com/contacts/x.vcf",
        &[],
        b"not a card",
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("valid-address-data"));
    let mg = br#"<card:addressbook-multiget xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><d:getetag/><card:address-data/></d:prop><d:href>/dav/addressbooks/alice@example.com/contacts/c1.vcf</d:href></card:addressbook-multiget>"#;
    let r = dav(
        a,
        &alice,
        "REPORT",
        "/dav/addressbooks/alice@example.com/contacts/",
        &[],
        mg,
    );
    assert_eq!(r.status, 207);
    assert!(r.text().contains("FN:Carol Example"));
}

#[test]
fn xml_vectors_are_refused() {
    let s = server();
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><d:propfind xmlns:d="DAV:"><d:prop><d:displayname>&lol3;</d:displayname></d:prop></d:propfind>"#;
    let xxe = br#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d:propfind xmlns:d="DAV:"><d:prop><d:displayname>&x;</d:displayname></d:prop></d:propfind>"#;
    let param = br#"<!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd"> %p;]><d:propfind xmlns:d="DAV:"/>"#;
    let undeclared = br#"<d:propfind xmlns:d="DAV:"><d:prop><d:displayname>&x;</d:displayname></d:prop></d:propfind>"#;
    let deep = format!(
        "<d:propfind xmlns:d=\"DAV:\">{}{}</d:propfind>",
        "<d:x>".repeat(100_000),
        "</d:x>".repeat(100_000)
    );
    for (name, body) in [
        ("billion laughs", &laughs[..]),
        ("external entity", &xxe[..]),
        ("parameter entity", &param[..]),
        ("undeclared entity", &undeclared[..]),
        ("depth bomb", deep.as_bytes()),
    ] {
        for path in ["/dav/", "/dav/calendars/alice@example.com/calendar/"] {
            let r = dav(a, &alice, "PROPFIND", path, &[("Depth", "0")], body);
            assert_eq!(r.status, 400, "{name} on {path}: {}", r.text());
        }
        let r = dav(
            a,
            &alice,
            "REPORT",
            "/dav/calendars/alice@example.com/calendar/",
            &[],
            body,
        );
        assert_eq!(r.status, 400, "{name} as REPORT");
    }
    // Over the body cap: 413, for XML and for a resource.
    let big = vec![b' '; postern_dav_max_body() + 1];
    let r = dav(a, &alice, "PROPFIND", "/dav/", &[], &big);
    assert_eq!(r.status, 413);
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/calendars/alice@example.com/calendar/big.ics",
        &[],
        &big,
    );
    assert_eq!(r.status, 413);
    // Path traversal shapes: 400, never another account's data.
    for p in [
        "/dav/calendars/alice@example.com/../bob@example.com/calendar/",
        "/dav/calendars/alice@example.com/%2e%2e/calendar/",
        "/dav/calendars/alice@example.com/..%2fcalendar/",
        "/dav/calendars/alice@example.com/%252e%252e/",
        "/dav/calendars/alice@example.com/%c0%ae%c0%ae/",
        "/dav/calendars/alice@example.com/a%00b/",
    ] {
        let r = dav(a, &alice, "PROPFIND", p, &[], b"");
        assert!(r.status == 400 || r.status == 404, "{p}: {}", r.status);
    }
}

/// The body cap of the DAV layer (1 MiB object + 64 KiB).
fn postern_dav_max_body() -> usize {
    (1 << 20) + (64 << 10)
}

#[test]
fn idor_between_accounts() {
    let s = server();
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let bob = basic(BOB, BOB_PW);
    let ev = event(
        "secret",
        "20300101T090000Z",
        "20300101T100000Z",
        "Alice only",
    );
    let r = dav(
        a,
        &alice,
        "PUT",
        "/dav/calendars/alice@example.com/calendar/secret.ics",
        &[("Content-Type", "text/calendar")],
        ev.as_bytes(),
    );
    assert_eq!(r.status, 201);
    let q = br#"<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR"/></c:filter></c:calendar-query>"#;
    let evil = event(
        "evil",
        "20300101T090000Z",
        "20300101T100000Z",
        "Bob was here",
    );
    let cases: Vec<(&str, &str, &[u8])> = vec![
        ("PROPFIND", "/dav/principals/{u}/", b""),
        ("PROPFIND", "/dav/calendars/{u}/", b""),
        ("PROPFIND", "/dav/calendars/{u}/calendar/", b""),
        ("GET", "/dav/calendars/{u}/calendar/secret.ics", b""),
        (
            "PUT",
            "/dav/calendars/{u}/calendar/evil.ics",
            evil.as_bytes(),
        ),
        (
            "PUT",
            "/dav/calendars/{u}/calendar/secret.ics",
            evil.as_bytes(),
        ),
        ("DELETE", "/dav/calendars/{u}/calendar/secret.ics", b""),
        ("DELETE", "/dav/calendars/{u}/calendar/", b""),
        ("REPORT", "/dav/calendars/{u}/calendar/", q),
        (
            "PROPPATCH",
            "/dav/calendars/{u}/calendar/",
            b"<d:propertyupdate xmlns:d=\"DAV:\"/>",
        ),
        ("MKCALENDAR", "/dav/calendars/{u}/new/", b""),
        ("PROPFIND", "/dav/addressbooks/{u}/contacts/", b""),
    ];
    for (method, tpl, body) in cases {
        let theirs = dav(a, &bob, method, &tpl.replace("{u}", ALICE), &[], body);
        let nobody = dav(
            a,
            &bob,
            method,
            &tpl.replace("{u}", "nobody@example.com"),
            &[],
            body,
        );
        assert_eq!(theirs.status, 404, "{method} {tpl}: {}", theirs.text());
        assert_eq!(
            (theirs.status, theirs.body.clone()),
            (nobody.status, nobody.body.clone()),
            "{method} {tpl}: Alice's path answers differently from a nonexistent one"
        );
        assert!(!theirs.text().contains("Alice only"));
    }
    // Alice's event is untouched.
    let r = dav(
        a,
        &alice,
        "GET",
        "/dav/calendars/alice@example.com/calendar/secret.ics",
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), ev);
    // Multiget naming Alice's resource from Bob's own calendar: 404 for that href.
    let mg = br#"<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data/></d:prop><d:href>/dav/calendars/alice@example.com/calendar/secret.ics</d:href></c:calendar-multiget>"#;
    let r = dav(
        a,
        &bob,
        "REPORT",
        "/dav/calendars/bob@example.com/calendar/",
        &[],
        mg,
    );
    assert_eq!(r.status, 207);
    assert!(!r.text().contains("Alice only"), "{}", r.text());
    assert!(r.text().contains("404 Not Found"));
    // The attempts are in the ledger.
    let audit = s.cli_ok(&["audit", "show", "--account", BOB, "--json"], "");
    assert!(audit.contains("dav.denied"), "{audit}");
}

fn query_range(start: &str, end: &str, data: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>{data}</d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"><c:time-range start="{start}" end="{end}"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"#
    )
}

fn recurring(uid: &str, rule_lines: &str, extra_components: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern test//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300107T090000Z\r\n\
         DTEND:20300107T100000Z\r\nSUMMARY:Weekly\r\n{rule_lines}END:VEVENT\r\n{extra_components}END:VCALENDAR\r\n"
    )
}

/// RFC 4791 §9.9 on recurring events (by instance: EXDATE, RDATE and overrides
/// respected), §9.6.5 `expand`, §9.6.6 `limit-recurrence-set`.
#[test]
fn recurrence_time_range_expand_and_limit() {
    let s = server();
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let ct = ("Content-Type", "text/calendar");
    let col = "/dav/calendars/alice@example.com/calendar/";
    // Weekly on Mondays from 2030-01-07, 6 times; the 21st excluded, the 28th moved to
    // 15:00, an extra date on Wednesday 2030-03-06.
    let ov = "BEGIN:VEVENT\r\nUID:w1\r\nDTSTAMP:20300101T000000Z\r\n\
              RECURRENCE-ID:20300128T090000Z\r\nDTSTART:20300128T150000Z\r\n\
              DTEND:20300128T160000Z\r\nSUMMARY:Moved\r\nEND:VEVENT\r\n";
    let w = recurring(
        "w1",
        "RRULE:FREQ=WEEKLY;COUNT=6\r\nEXDATE:20300121T090000Z\r\nRDATE:20300306T090000Z\r\n",
        ov,
    );
    let r = dav(
        a,
        &alice,
        "PUT",
        &format!("{col}w1.ics"),
        &[ct],
        w.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let open = recurring("open", "RRULE:FREQ=DAILY\r\n", "");
    let r = dav(
        a,
        &alice,
        "PUT",
        &format!("{col}open.ics"),
        &[ct],
        open.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let q = |start: &str, end: &str| {
        let r = dav(
            a,
            &alice,
            "REPORT",
            col,
            &[("Depth", "1")],
            query_range(start, end, "").as_bytes(),
        );
        assert_eq!(r.status, 207, "{}", r.text());
        r.text()
    };
    // An instance (Monday 14th).
    assert!(q("20300114T000000Z", "20300115T000000Z").contains("w1.ics"));
    // The excluded Monday.
    assert!(!q("20300121T000000Z", "20300122T000000Z").contains("w1.ics"));
    // The moved instance: not at 09:00, yes at 15:00.
    assert!(!q("20300128T080000Z", "20300128T120000Z").contains("w1.ics"));
    assert!(q("20300128T140000Z", "20300128T153000Z").contains("w1.ics"));
    // A Tuesday between instances.
    assert!(!q("20300115T000000Z", "20300116T000000Z").contains("w1.ics"));
    // The RDATE.
    assert!(q("20300306T000000Z", "20300307T000000Z").contains("w1.ics"));
    // After the series (COUNT=6 ends on 2030-02-11, the RDATE is in March).
    assert!(!q("20300401T000000Z", "20300501T000000Z").contains("w1.ics"));
    // The open-ended daily series, far in the future (beyond the instance cap:
    // the capped expansion still matches rather than hides it).
    assert!(q("20300401T000000Z", "20300402T000000Z").contains("open.ics"));
    assert!(q("21000401T000000Z", "21000402T000000Z").contains("open.ics"));
    // Before the first instance.
    assert!(!q("20290101T000000Z", "20290102T000000Z").contains("open.ics"));

    // expand: the instances of January as separate UTC components.
    let r = dav(
        a,
        &alice,
        "REPORT",
        col,
        &[("Depth", "1")],
        query_range(
            "20300101T000000Z",
            "20300201T000000Z",
            r#"<c:calendar-data><c:expand start="20300101T000000Z" end="20300201T000000Z"/></c:calendar-data>"#,
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 207);
    let body = r.text();
    let w1 = body
        .split("<d:response>")
        .find(|p| p.contains("w1.ics"))
        .unwrap_or_default()
        .to_string();
    assert_eq!(w1.matches("BEGIN:VEVENT").count(), 3, "{w1}");
    assert!(!w1.contains("RRULE") && !w1.contains("EXDATE") && !w1.contains("RDATE"));
    assert!(w1.contains("RECURRENCE-ID:20300128T090000Z"), "{w1}");
    assert!(w1.contains("DTSTART:20300128T150000Z"), "{w1}");
    assert!(w1.contains("RECURRENCE-ID:20300114T090000Z"), "{w1}");

    // limit-recurrence-set: the master, without the override outside the range.
    let r = dav(
        a,
        &alice,
        "REPORT",
        col,
        &[],
        format!(
            r#"<?xml version="1.0"?><c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data><c:limit-recurrence-set start="20300101T000000Z" end="20300115T000000Z"/></c:calendar-data></d:prop><d:href>{col}w1.ics</d:href></c:calendar-multiget>"#
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 207);
    let body = r.text();
    assert_eq!(body.matches("BEGIN:VEVENT").count(), 1, "{body}");
    assert!(body.contains("RRULE:FREQ=WEEKLY"), "{body}");
    // A bad expand range is refused.
    let r = dav(
        a,
        &alice,
        "REPORT",
        col,
        &[("Depth", "1")],
        query_range(
            "20300101T000000Z",
            "20300201T000000Z",
            r#"<c:calendar-data><c:expand start="20300201T000000Z" end="20300101T000000Z"/></c:calendar-data>"#,
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 403);
}

/// THREATS.md RRULE bombs over the wire: each PUT and REPORT (time range over 10 000
/// years, and `expand` over it) answers quickly with a capped answer or an error.
#[test]
fn rrule_bombs_answer_quickly() {
    let s = server();
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let ct = ("Content-Type", "text/calendar");
    let col = "/dav/calendars/alice@example.com/calendar/";
    let many_exdates: String = (0..40_000)
        .map(|i| format!("EXDATE:{}T090000Z\r\n", 20300108 + (i % 20)))
        .collect();
    let bombs: Vec<(&str, String)> = vec![
        ("secondly", "RRULE:FREQ=SECONDLY\r\n".into()),
        (
            "never",
            "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\r\n".into(),
        ),
        ("count31", "RRULE:FREQ=MINUTELY;COUNT=2147483647\r\n".into()),
        ("count4g", "RRULE:FREQ=SECONDLY;COUNT=4000000000\r\n".into()),
        (
            "interval",
            "RRULE:FREQ=SECONDLY;INTERVAL=4000000000\r\n".into(),
        ),
        ("interval16", "RRULE:FREQ=YEARLY;INTERVAL=65535\r\n".into()),
        (
            "setpos",
            "RRULE:FREQ=SECONDLY;BYSETPOS=-1,1,-2,2;BYMONTH=2;BYMONTHDAY=29;BYHOUR=0,1,2\r\n"
                .into(),
        ),
        (
            "sparse",
            "RRULE:FREQ=SECONDLY;BYHOUR=0;BYMINUTE=0;BYSECOND=0\r\n".into(),
        ),
        ("exdates", format!("RRULE:FREQ=DAILY\r\n{many_exdates}")),
    ];
    for (name, rule) in &bombs {
        let body = recurring(name, rule, "");
        let t0 = std::time::Instant::now();
        let r = dav(
            a,
            &alice,
            "PUT",
            &format!("{col}{name}.ics"),
            &[ct],
            body.as_bytes(),
        );
        eprintln!("PUT {name}: {} in {:?}", r.status, t0.elapsed());
        assert!(
            matches!(r.status, 201 | 400 | 403 | 413),
            "{name}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            t0.elapsed().as_secs() < 10,
            "{name}: PUT took {:?}",
            t0.elapsed()
        );
    }
    for data in [
        "",
        r#"<c:calendar-data><c:expand start="00010101T000000Z" end="99991231T000000Z"/></c:calendar-data>"#,
        r#"<c:calendar-data><c:limit-recurrence-set start="00010101T000000Z" end="99991231T000000Z"/></c:calendar-data>"#,
    ] {
        let t0 = std::time::Instant::now();
        // Read with a deadline above the one asserted below (the harness's default read
        // timeout is shorter than 15 s).
        let r = {
            use std::io::Write;
            let req = request_bytes(
                a,
                "REPORT",
                col,
                &[("Authorization", &alice), ("Depth", "1")],
                query_range("00010101T000000Z", "99991231T000000Z", data).as_bytes(),
            );
            let mut c = connect(a);
            c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            c.write_all(&req).unwrap();
            try_parse_response(&read_to_close(&mut c)).expect("a response")
        };
        let took = t0.elapsed();
        eprintln!("REPORT {data:.40}: {} in {took:?}", r.status);
        // A time range alone always answers (a capped series matches); an expansion cut
        // by the budget answers 503.
        if data.is_empty() || data.contains("limit-recurrence-set") {
            assert_eq!(r.status, 207, "{}", r.text());
        }
        assert!(matches!(r.status, 207 | 503), "{} {}", r.status, r.text());
        assert!(took.as_secs() < 15, "REPORT took {took:?}");
        if r.status == 207 {
            // Capped: never more than the instance cap per object.
            let n = r.text().matches("BEGIN:VEVENT").count();
            assert!(n <= 9 * postern_core::dav::recur::MAX_INSTANCES, "{n}");
        }
    }
    // The server still answers promptly afterwards.
    let r = dav(a, &alice, "OPTIONS", "/dav/", &[], b"");
    assert_eq!(r.status, 200);
}

/// RFC 4791 §7.10: free-busy-query over a range, recurring events expanded,
/// transparent and cancelled events left out.
#[test]
fn free_busy_query_report() {
    let s = server();
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let ct = ("Content-Type", "text/calendar");
    let col = "/dav/calendars/alice@example.com/calendar/";
    let put = |name: &str, body: &str| {
        let r = dav(
            a,
            &alice,
            "PUT",
            &format!("{col}{name}"),
            &[ct],
            body.as_bytes(),
        );
        assert_eq!(r.status, 201, "{name}: {}", r.text());
    };
    put(
        "busy.ics",
        &event("busy", "20300110T120000Z", "20300110T130000Z", "Lunch"),
    );
    put(
        "free.ics",
        &event("free", "20300110T140000Z", "20300110T150000Z", "x")
            .replace("SUMMARY:x\r\n", "TRANSP:TRANSPARENT\r\n"),
    );
    put(
        "gone.ics",
        &event("gone", "20300110T160000Z", "20300110T170000Z", "x")
            .replace("SUMMARY:x\r\n", "STATUS:CANCELLED\r\n"),
    );
    put(
        "maybe.ics",
        &event("maybe", "20300111T080000Z", "20300111T083000Z", "x")
            .replace("SUMMARY:x\r\n", "STATUS:TENTATIVE\r\n"),
    );
    put(
        "weekly.ics",
        &recurring(
            "weekly",
            "RRULE:FREQ=WEEKLY\r\nEXDATE:20300114T090000Z\r\n",
            "",
        ),
    );
    let fb = |start: &str, end: &str| {
        dav(
            a,
            &alice,
            "REPORT",
            col,
            &[("Depth", "1")],
            format!(
                r#"<?xml version="1.0"?><c:free-busy-query xmlns:c="urn:ietf:params:xml:ns:caldav"><c:time-range start="{start}" end="{end}"/></c:free-busy-query>"#
            )
            .as_bytes(),
        )
    };
    let r = fb("20300101T000000Z", "20300125T000000Z");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/calendar")
    );
    let t = r.text();
    assert!(t.contains("BEGIN:VFREEBUSY"), "{t}");
    assert!(t.contains("DTSTART:20300101T000000Z") && t.contains("DTEND:20300125T000000Z"));
    assert!(
        t.contains("FBTYPE=BUSY:20300110T120000Z/20300110T130000Z"),
        "{t}"
    );
    assert!(!t.contains("20300110T140000Z"), "transparent: {t}");
    assert!(!t.contains("20300110T160000Z"), "cancelled: {t}");
    assert!(
        t.contains("FBTYPE=BUSY-TENTATIVE:20300111T080000Z/20300111T083000Z"),
        "{t}"
    );
    assert!(t.contains("20300107T090000Z/20300107T100000Z"), "{t}");
    assert!(!t.contains("20300114T090000Z"), "exdate: {t}");
    assert!(t.contains("20300121T090000Z/20300121T100000Z"), "{t}");
    // A period crossing the range's edge is cut to it.
    let t = fb("20300110T123000Z", "20300110T140000Z").text();
    assert!(
        t.contains("FBTYPE=BUSY:20300110T123000Z/20300110T130000Z"),
        "{t}"
    );
    // No time-range: 400.
    let r = dav(
        a,
        &alice,
        "REPORT",
        col,
        &[],
        br#"<?xml version="1.0"?><c:free-busy-query xmlns:c="urn:ietf:params:xml:ns:caldav"/>"#,
    );
    assert_eq!(r.status, 400);
    // Reading for free-busy is in the ledger.
    let audit = s.cli_ok(&["audit", "show", "--account", ALICE, "--json"], "");
    assert!(audit.contains("dav.read"));
}

/// RFC 4918 §9.8/§9.9: COPY and MOVE within the caller's collections (Destination,
/// Overwrite, 201/204/412), each side in the ledger and in sync-collection.
#[test]
fn copy_and_move() {
    let s = server();
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let bob = basic(BOB, BOB_PW);
    let ct = ("Content-Type", "text/calendar");
    let home = "/dav/calendars/alice@example.com";
    let r = dav(a, &alice, "MKCALENDAR", &format!("{home}/work/"), &[], b"");
    assert_eq!(r.status, 201, "{}", r.text());
    let sync = |col: &str, token: &str| {
        let r = dav(
            a,
            &alice,
            "REPORT",
            &format!("{home}/{col}/"),
            &[],
            format!(
                r#"<d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 207, "{}", r.text());
        let t = r.text();
        let tok = t
            .split("<d:sync-token>")
            .nth(1)
            .and_then(|x| x.split("</d:sync-token>").next())
            .unwrap_or_default()
            .to_string();
        (t, tok)
    };
    let put = |p: &str, body: &str| {
        let r = dav(a, &alice, "PUT", p, &[ct], body.as_bytes());
        assert_eq!(r.status, 201, "{p}: {}", r.text());
    };
    put(
        &format!("{home}/calendar/m1.ics"),
        &event("m1", "20300101T090000Z", "20300101T100000Z", "Move me"),
    );
    put(
        &format!("{home}/calendar/c1.ics"),
        &event("c1", "20300102T090000Z", "20300102T100000Z", "Copy me"),
    );
    let (_, cal0) = sync("calendar", "");
    let (_, work0) = sync("work", "");
    let go = |method: &str, from: &str, to: &str, extra: &[(&str, &str)]| {
        let dest = format!("http://{a}{to}");
        let mut h = vec![("Destination", dest.as_str())];
        h.extend_from_slice(extra);
        dav(a, &alice, method, from, &h, b"")
    };
    // COPY to another calendar: 201, the same bytes; again with Overwrite: F → 412;
    // with Overwrite: T → 204.
    let r = go(
        "COPY",
        &format!("{home}/calendar/c1.ics"),
        &format!("{home}/work/c1.ics"),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let got = dav(a, &alice, "GET", &format!("{home}/work/c1.ics"), &[], b"");
    assert!(got.text().contains("Copy me"));
    let r = go(
        "COPY",
        &format!("{home}/calendar/c1.ics"),
        &format!("{home}/work/c1.ics"),
        &[("Overwrite", "F")],
    );
    assert_eq!(r.status, 412);
    let r = go(
        "COPY",
        &format!("{home}/calendar/c1.ics"),
        &format!("{home}/work/c1.ics"),
        &[("Overwrite", "T")],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    // COPY inside one calendar duplicates the UID: CalDAV's no-uid-conflict.
    let r = go(
        "COPY",
        &format!("{home}/calendar/c1.ics"),
        &format!("{home}/calendar/c2.ics"),
        &[],
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("no-uid-conflict"));
    // MOVE to the other calendar: 201, source gone.
    let r = go(
        "MOVE",
        &format!("{home}/calendar/m1.ics"),
        &format!("{home}/work/m1.ics"),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        dav(
            a,
            &alice,
            "GET",
            &format!("{home}/calendar/m1.ics"),
            &[],
            b""
        )
        .status,
        404
    );
    assert!(
        dav(a, &alice, "GET", &format!("{home}/work/m1.ics"), &[], b"")
            .text()
            .contains("Move me")
    );
    // MOVE (rename) inside one calendar keeps the UID.
    let r = go(
        "MOVE",
        &format!("{home}/work/m1.ics"),
        &format!("{home}/work/m2.ics"),
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        dav(a, &alice, "GET", &format!("{home}/work/m1.ics"), &[], b"").status,
        404
    );
    // MOVE onto an existing resource with Overwrite: F → 412, both unchanged.
    let r = go(
        "MOVE",
        &format!("{home}/work/m2.ics"),
        &format!("{home}/work/c1.ics"),
        &[("Overwrite", "F")],
    );
    assert_eq!(r.status, 412);
    assert_eq!(
        dav(a, &alice, "GET", &format!("{home}/work/m2.ics"), &[], b"").status,
        200
    );
    // Errors: no Destination (400), same resource (403), no such destination
    // collection (409), no such source (404), another account's calendar (404, as
    // for a path that does not exist), an address book for a calendar object (403).
    let r = dav(a, &alice, "MOVE", &format!("{home}/work/m2.ics"), &[], b"");
    assert_eq!(r.status, 400);
    let r = go(
        "MOVE",
        &format!("{home}/work/m2.ics"),
        &format!("{home}/work/m2.ics"),
        &[],
    );
    assert_eq!(r.status, 403);
    let r = go(
        "COPY",
        &format!("{home}/work/m2.ics"),
        &format!("{home}/nope/m2.ics"),
        &[],
    );
    assert_eq!(r.status, 409);
    let r = go(
        "COPY",
        &format!("{home}/work/zz.ics"),
        &format!("{home}/calendar/zz.ics"),
        &[],
    );
    assert_eq!(r.status, 404);
    let r = go(
        "COPY",
        &format!("{home}/work/m2.ics"),
        "/dav/calendars/bob@example.com/calendar/m2.ics",
        &[],
    );
    assert_eq!(r.status, 404);
    let r = go(
        "COPY",
        &format!("{home}/work/m2.ics"),
        "/dav/addressbooks/alice@example.com/contacts/m2.vcf",
        &[],
    );
    assert_eq!(r.status, 403);
    // Bob cannot move Alice's event either.
    let r = dav(
        a,
        &bob,
        "MOVE",
        &format!("{home}/work/m2.ics"),
        &[(
            "Destination",
            "/dav/calendars/bob@example.com/calendar/m2.ics",
        )],
        b"",
    );
    assert_eq!(r.status, 404);
    // sync-collection: the source calendar reports m1 removed, the destination has
    // c1 and m2 (and m1 removed after the rename).
    let (t, _) = sync("calendar", &cal0);
    assert!(t.contains("m1.ics") && t.contains("404"), "{t}");
    let (t, _) = sync("work", &work0);
    assert!(t.contains("c1.ics") && t.contains("m2.ics"), "{t}");
    // Ledger: the writes and the removal.
    let audit = s.cli_ok(&["audit", "show", "--account", ALICE, "--json"], "");
    assert!(audit.contains("resource:m2.ics"), "{audit}");
    assert!(audit.contains("dav.delete"));
}

/// RFC 4791 §9.9: calendar-query with a time range on VALARM finds events by when their
/// alarms ring (each instance's alarm for a series), not by the events' own times.
#[test]
fn alarm_time_range_query() {
    let s = server();
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let ct = ("Content-Type", "text/calendar");
    let col = "/dav/calendars/alice@example.com/calendar/";
    let with_alarm = |uid: &str, extra: &str| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern test//EN\r\nBEGIN:VEVENT\r\n\
             UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300110T100000Z\r\n\
             DTEND:20300110T110000Z\r\n{extra}SUMMARY:{uid}\r\nBEGIN:VALARM\r\n\
             ACTION:DISPLAY\r\nDESCRIPTION:soon\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n\
             END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    };
    for (uid, extra) in [("once", ""), ("daily", "RRULE:FREQ=DAILY;COUNT=5\r\n")] {
        let body = with_alarm(uid, extra);
        let r = dav(
            a,
            &alice,
            "PUT",
            &format!("{col}{uid}.ics"),
            &[ct],
            body.as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    // No alarm at all.
    let r = dav(
        a,
        &alice,
        "PUT",
        &format!("{col}plain.ics"),
        &[ct],
        event("plain", "20300110T100000Z", "20300110T110000Z", "plain").as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let query = |start: &str, end: &str| {
        let body = format!(
            r#"<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"><c:comp-filter name="VALARM"><c:time-range start="{start}" end="{end}"/></c:comp-filter></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"#
        );
        let r = dav(a, &alice, "REPORT", col, &[("Depth", "1")], body.as_bytes());
        assert_eq!(r.status, 207, "{}", r.text());
        let t = r.text();
        let mut found: Vec<&str> = ["once", "daily", "plain"]
            .into_iter()
            .filter(|u| t.contains(&format!("/{u}.ics<")))
            .collect();
        found.sort();
        found
    };
    // 09:45 on the 10th: both alarms; the events themselves start at 10:00.
    assert_eq!(
        query("20300110T094000Z", "20300110T095000Z"),
        ["daily", "once"]
    );
    // The event's own time, after the alarm: no alarm rings then.
    assert!(query("20300110T100000Z", "20300110T110000Z").is_empty());
    // 09:45 on the 13th: only the series' fourth instance.
    assert_eq!(query("20300113T094000Z", "20300113T095000Z"), ["daily"]);
}

const NEW_YORK: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern test//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\nBEGIN:STANDARD\r\nDTSTART:19701101T020000\r\n\
TZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n\
DTSTART:19700308T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nEND:DAYLIGHT\r\n\
END:VTIMEZONE\r\nEND:VCALENDAR\r\n";

/// RFC 4791 §5.2.2 calendar-timezone (MKCALENDAR, PROPFIND, PROPPATCH with
/// CALDAV:valid-calendar-data) and §9.9: floating times and all-day dates are read in
/// the calendar's zone, or in the query's CALDAV:timezone (§9.8) / timezone-id (RFC
/// 7809); `expand` answers in UTC.
#[test]
fn floating_times_follow_the_calendar_timezone() {
    let s = server();
    let a = s.addr("http");
    let alice = basic(ALICE, ALICE_PW);
    let home = "/dav/calendars/alice@example.com/";
    let col = "/dav/calendars/alice@example.com/ny/";
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('\r', "&#13;")
    };
    let mk = format!(
        r#"<?xml version="1.0"?><c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><d:displayname>NY</d:displayname><c:calendar-timezone>{}</c:calendar-timezone></d:prop></d:set></c:mkcalendar>"#,
        esc(NEW_YORK)
    );
    let r = dav(a, &alice, "MKCALENDAR", col, &[], mk.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    // A value that is not one VTIMEZONE makes no calendar.
    let bad = mk.replace("VTIMEZONE", "VTODO");
    let r = dav(
        a,
        &alice,
        "MKCALENDAR",
        &format!("{home}bad/"),
        &[],
        bad.as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("valid-calendar-data"), "{}", r.text());
    let propfind = br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-timezone/></d:prop></d:propfind>"#;
    let r = dav(a, &alice, "PROPFIND", col, &[("Depth", "0")], propfind);
    assert_eq!(r.status, 207, "{}", r.text());
    let t = r.text();
    assert!(t.contains("TZID:America/New_York"), "{t}");
    assert!(!t.contains("404 Not Found"), "{t}");

    let ct = ("Content-Type", "text/calendar");
    let put = |name: &str, start: &str, end: &str| {
        let body = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern test//EN\r\nBEGIN:VEVENT\r\n\
             UID:{name}\r\nDTSTAMP:20300101T000000Z\r\n{start}\r\n{end}\r\nSUMMARY:{name}\r\n\
             END:VEVENT\r\nEND:VCALENDAR\r\n"
        );
        let r = dav(
            a,
            &alice,
            "PUT",
            &format!("{col}{name}.ics"),
            &[ct],
            body.as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    };
    // 23:00 floating on 5 January: 04:00Z on the 6th in New York.
    put("late", "DTSTART:20300105T230000", "DTEND:20300105T233000");
    // All day on 10 January: 05:00Z on the 10th to 05:00Z on the 11th.
    put(
        "allday",
        "DTSTART;VALUE=DATE:20300110",
        "DTEND;VALUE=DATE:20300111",
    );
    // Fixed in UTC: unaffected by any zone.
    put("utc", "DTSTART:20300105T220000Z", "DTEND:20300105T223000Z");
    // A floating daily series: its last instance (20:00 on the 9th, 01:00Z on the
    // 10th) is found although its UTC reading ends on the 9th.
    put(
        "series",
        "DTSTART:20300105T200000",
        "DTEND:20300105T210000\r\nRRULE:FREQ=DAILY;COUNT=5",
    );
    // The hour clocks go back (3 November 2030, 01:00–02:00 twice in New York): its
    // first occurrence, 05:30Z. A name folded across lines is still read.
    put(
        "overlap",
        "DTSTART\r\n :20301103T013000",
        "DTEND:20301103T014500",
    );
    let found = |body: String| {
        let r = dav(a, &alice, "REPORT", col, &[("Depth", "1")], body.as_bytes());
        assert_eq!(r.status, 207, "{}", r.text());
        let t = r.text();
        let mut v: Vec<&str> = ["late", "allday", "utc", "series", "overlap"]
            .into_iter()
            .filter(|u| t.contains(&format!("/{u}.ics<")))
            .collect();
        v.sort();
        (v, t)
    };
    let q = |s: &str, e: &str| found(query_range(s, e, ""));
    assert_eq!(q("20300105T200000Z", "20300106T000000Z").0, ["utc"]);
    // The series' first instance (20:00 on the 5th) is 01:00Z on the 6th.
    assert_eq!(
        q("20300106T000000Z", "20300106T120000Z").0,
        ["late", "series"]
    );
    assert_eq!(q("20300111T020000Z", "20300111T030000Z").0, ["allday"]);
    assert_eq!(q("20300110T003000Z", "20300110T013000Z").0, ["series"]);
    assert_eq!(q("20301103T053000Z", "20301103T054000Z").0, ["overlap"]);
    assert!(q("20301103T063000Z", "20301103T064000Z").0.is_empty());
    assert_eq!(q("20300110T000000Z", "20300110T040000Z").0, ["series"]);
    // The query's own zone wins (Tokyo, +9: 23:00 on the 5th is 14:00Z on the 5th).
    let tokyo = NEW_YORK
        .replace("America/New_York", "Asia/Tokyo")
        .replace("-0500", "+0900")
        .replace("-0400", "+0900");
    let with_tz = |s: &str, e: &str, tz: &str| {
        query_range(s, e, "").replace(
            "</c:filter>",
            &format!("</c:filter><c:timezone>{}</c:timezone>", esc(tz)),
        )
    };
    assert_eq!(
        found(with_tz("20300105T130000Z", "20300105T150000Z", &tokyo)).0,
        ["late"]
    );
    let by_id = query_range("20300105T130000Z", "20300105T150000Z", "").replace(
        "</c:filter>",
        "</c:filter><c:timezone-id>Asia/Tokyo</c:timezone-id>",
    );
    assert_eq!(found(by_id).0, ["late"]);
    // Both forms at once: refused (RFC 7809 §5.2).
    let both = with_tz("20300105T130000Z", "20300105T150000Z", &tokyo).replace(
        "</c:filter>",
        "</c:filter><c:timezone-id>Asia/Tokyo</c:timezone-id>",
    );
    let r = dav(a, &alice, "REPORT", col, &[("Depth", "1")], both.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    let r = dav(
        a,
        &alice,
        "REPORT",
        col,
        &[("Depth", "1")],
        with_tz("20300105T130000Z", "20300105T150000Z", "garbage").as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("valid-calendar-data"), "{}", r.text());
    // expand answers in UTC.
    let (v, t) = found(query_range(
        "20300106T000000Z",
        "20300106T120000Z",
        r#"<c:calendar-data><c:expand start="20300101T000000Z" end="20300201T000000Z"/></c:calendar-data>"#,
    ));
    assert_eq!(v, ["late", "series"]);
    assert!(t.contains("DTSTART:20300106T040000Z"), "{t}");
    assert!(t.contains("DTSTART:20300106T010000Z"), "{t}");

    // PROPPATCH: a bad zone changes nothing and says why; removing it reads UTC.
    let set_tz = |tz: &str| {
        let body = format!(
            r#"<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><d:displayname>renamed</d:displayname><c:calendar-timezone>{}</c:calendar-timezone></d:prop></d:set></d:propertyupdate>"#,
            esc(tz)
        );
        let r = dav(a, &alice, "PROPPATCH", col, &[], body.as_bytes());
        assert_eq!(r.status, 207, "{}", r.text());
        let t = r.text();
        assert!(
            t.contains("403 Forbidden") && t.contains("valid-calendar-data"),
            "{t}"
        );
        assert!(t.contains("424 Failed Dependency"), "{t}");
    };
    set_tz("BEGIN:VCALENDAR");
    // MAX_TIMEZONE_BYTES (64 KiB): a valid zone padded past it.
    set_tz(&NEW_YORK.replace(
        "TZID:America/New_York\r\n",
        &format!(
            "TZID:America/New_York\r\nX-PAD:{}\r\n",
            "p".repeat(64 * 1024)
        ),
    ));
    // Control characters (the value is served back in XML).
    set_tz(&NEW_YORK.replace("PRODID:-//postern test//EN", "PRODID:-//\u{1}//EN"));
    let r = dav(a, &alice, "PROPFIND", col, &[("Depth", "0")], propfind);
    assert!(!r.text().contains("renamed") && r.text().contains("America/New_York"));
    let r = dav(
        a,
        &alice,
        "PROPPATCH",
        col,
        &[],
        br#"<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:remove><d:prop><c:calendar-timezone/></d:prop></d:remove></d:propertyupdate>"#,
    );
    assert_eq!(r.status, 207, "{}", r.text());
    assert!(r.text().contains("200 OK"), "{}", r.text());
    assert_eq!(
        q("20300105T200000Z", "20300106T000000Z").0,
        ["late", "series", "utc"]
    );
}
