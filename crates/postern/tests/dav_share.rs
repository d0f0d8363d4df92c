//! Calendar and address-book sharing, the global address list and principal search
//! against a real `postern serve` (issue 6, parts 4 and 5): the Python `caldav`
//! library as a real client for discovery and reads of a shared calendar; read-only
//! grantees refused writes (403 need-privileges); write grantees writing; revocation
//! counting from the next request; IDOR (an ungranted account gets the answer of a
//! path that does not exist); delegate reads in the ledger; the GAL listing the
//! caller's domain only, read-only, with a sync token that follows the directory;
//! principal-property-search (by name, caseless address, domain only, capped).
//!
//! Needs `python3` with `caldav` (pip `caldav==3.6.0`): a missing library fails the
//! test, it never skips.

mod common;

use base64::Engine;
use common::*;
use std::net::SocketAddr;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const BOBBY: &str = "bobby@example.org";
const PW: &str = "share-secret-1";

fn server() -> Server {
    let s = Server::start_with("[auth]\nallow_plaintext_on_loopback = true\n");
    s.cli_ok(&["domain", "add", "example.com"], "");
    s.cli_ok(&["domain", "add", "example.org"], "");
    s.cli_ok(
        &["account", "add", ALICE, "--name", "Alice Archer"],
        format!("{PW}\n"),
    );
    s.cli_ok(
        &["account", "add", BOB, "--name", "Bob Builder"],
        format!("{PW}\n"),
    );
    s.cli_ok(&["account", "add", CAROL], format!("{PW}\n"));
    s.cli_ok(
        &["account", "add", BOBBY, "--name", "Bobby Other"],
        format!("{PW}\n"),
    );
    s
}

fn basic(user: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PW}"))
    )
}

fn dav(
    addr: SocketAddr,
    user: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let auth = basic(user);
    let mut h: Vec<(&str, &str)> = vec![("Authorization", &auth)];
    h.extend_from_slice(headers);
    http(addr, method, path, &h, body)
}

fn event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern test//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300101T090000Z\r\n\
         DTEND:20300101T100000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

const PROPS: &[u8] = br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:displayname/><d:resourcetype/><d:current-user-privilege-set/><d:owner/></d:prop></d:propfind>"#;

/// The `shared-…` collection paths in a home's Depth 1 listing.
fn shared_paths(addr: SocketAddr, user: &str, home: &str) -> Vec<String> {
    let r = dav(
        addr,
        user,
        "PROPFIND",
        &format!("/dav/{home}/{user}/"),
        &[("Depth", "1")],
        PROPS,
    );
    assert_eq!(r.status, 207);
    let t = r.text();
    t.split("<d:href>")
        .skip(1)
        .filter_map(|s| s.split("</d:href>").next())
        .filter(|h| h.contains("/shared-"))
        .map(str::to_string)
        .collect()
}

/// Bob, through the caldav library: the shared calendar is among his calendars, and
/// its event can be read. Prints the calendar's path.
const BOB_CLIENT: &str = r#"
import sys
import caldav
url, user, pw = sys.argv[1], sys.argv[2], sys.argv[3]
client = caldav.DAVClient(url=url, username=user, password=pw)
principal = client.principal()
cals = principal.calendars()
shared = [c for c in cals if "/shared-" in c.url.path]
assert len(shared) == 1, [c.url.path for c in cals]
cal = shared[0]
name = cal.get_display_name()
assert "Alice Archer" in name and "alice@example.com" in name, name
events = cal.events()
assert len(events) == 1, events
assert "Team offsite" in events[0].data, events[0].data
got = cal.event_by_uid("share-e1")
assert "Team offsite" in got.data
print("PATH", cal.url.path)
"#;

#[test]
fn share_read_write_revoke() {
    let s = server();
    let a = s.addr("http");
    let r = dav(
        a,
        ALICE,
        "PUT",
        "/dav/calendars/alice@example.com/calendar/e1.ics",
        &[("Content-Type", "text/calendar")],
        event("share-e1", "Team offsite").as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // Nothing shared yet: Bob's home has no shared collection.
    assert!(shared_paths(a, BOB, "calendars").is_empty());

    let out = s.cli_ok(&["dav", "share", ALICE, "calendar", BOB, "read"], "");
    assert!(out.contains("bob@example.com read"), "{out}");
    let list = s.cli_ok(&["dav", "share", ALICE, "calendar"], "");
    assert_eq!(list.trim(), "bob@example.com read");

    // A real client finds and reads it.
    let url = format!("http://{a}/dav/");
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg(BOB_CLIENT)
        .args([&url, BOB, PW])
        .output()
        .expect("python3 must be installed");
    assert!(
        py.status.success(),
        "python caldav client failed (pip install caldav==3.6.0):\nstdout:\n{}\nstderr:\n{}",
        text(&py.stdout),
        text(&py.stderr)
    );
    let stdout = text(&py.stdout);
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PATH "))
        .expect("the client printed the path")
        .trim()
        .to_string();
    assert!(
        path.starts_with("/dav/calendars/bob@example.com/shared-"),
        "{path}"
    );
    assert_eq!(shared_paths(a, BOB, "calendars"), vec![path.clone()]);

    // Read-only: privileges say so (on the collection and its members), and writes
    // are refused with need-privileges.
    let r = dav(a, BOB, "PROPFIND", &path, &[("Depth", "1")], PROPS);
    assert_eq!(r.status, 207);
    let t = r.text();
    assert!(t.contains("e1.ics</d:href>"), "{t}");
    assert_eq!(t.matches("<d:read/>").count(), 2, "{t}");
    assert!(!t.contains("<d:write-content/>"), "{t}");
    assert!(
        t.contains("<d:owner><d:href>/dav/principals/alice@example.com/</d:href></d:owner>"),
        "{t}"
    );
    let r = dav(
        a,
        BOB,
        "PUT",
        &format!("{path}e2.ics"),
        &[("Content-Type", "text/calendar")],
        event("share-e2", "Bob was here").as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("need-privileges"), "{}", r.text());
    let r = dav(a, BOB, "DELETE", &format!("{path}e1.ics"), &[], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("need-privileges"), "{}", r.text());
    let r = dav(a, BOB, "DELETE", &path, &[], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    // MOVE out of a read-only share is refused before anything is copied.
    let r = dav(
        a,
        BOB,
        "MOVE",
        &format!("{path}e1.ics"),
        &[(
            "Destination",
            "/dav/calendars/bob@example.com/calendar/e1.ics",
        )],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("need-privileges"), "{}", r.text());
    let r = dav(
        a,
        BOB,
        "GET",
        "/dav/calendars/bob@example.com/calendar/e1.ics",
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    let r = dav(a, BOB, "GET", &format!("{path}e1.ics"), &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Team offsite"));
    // Only the canonical name: other spellings of the id are not the collection.
    let hex = path
        .trim_end_matches('/')
        .rsplit("shared-")
        .next()
        .unwrap()
        .to_string();
    for alt in [format!("shared-+{hex}"), format!("shared-0{hex}")] {
        let r = dav(
            a,
            BOB,
            "GET",
            &format!("/dav/calendars/bob@example.com/{alt}/e1.ics"),
            &[],
            b"",
        );
        assert_eq!(r.status, 404, "{alt}");
    }

    // IDOR: Carol, not granted, gets exactly the answer of a path that does not exist,
    // through her own home and through Alice's.
    let id = path.trim_end_matches('/').rsplit('/').next().unwrap();
    let missing = dav(
        a,
        CAROL,
        "GET",
        "/dav/calendars/carol@example.com/nothing/e1.ics",
        &[],
        b"",
    );
    assert_eq!(missing.status, 404);
    for p in [
        format!("/dav/calendars/carol@example.com/{id}/e1.ics"),
        "/dav/calendars/alice@example.com/calendar/e1.ics".to_string(),
    ] {
        let r = dav(a, CAROL, "GET", &p, &[], b"");
        assert_eq!(r.status, 404, "{p}");
        assert_eq!(r.body, missing.body, "{p}");
    }
    let r = dav(
        a,
        CAROL,
        "PROPFIND",
        &format!("/dav/calendars/carol@example.com/{id}/"),
        &[("Depth", "1")],
        PROPS,
    );
    assert_eq!(r.status, 404);
    assert!(shared_paths(a, CAROL, "calendars").is_empty());

    // Write: Bob may now create; Alice sees it in her own calendar.
    s.cli_ok(&["dav", "share", ALICE, "calendar", BOB, "write"], "");
    let r = dav(a, BOB, "PROPFIND", &path, &[("Depth", "0")], PROPS);
    assert!(r.text().contains("<d:write-content/>"), "{}", r.text());
    let r = dav(
        a,
        BOB,
        "PUT",
        &format!("{path}e2.ics"),
        &[("Content-Type", "text/calendar")],
        event("share-e2", "Bob was here").as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = dav(
        a,
        ALICE,
        "GET",
        "/dav/calendars/alice@example.com/calendar/e2.ics",
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Bob was here"));

    // The ledger: Bob's reads and write are delegate entries with Alice as target.
    let audit = s.cli_ok(&["audit", "show", "--account", BOB, "--json"], "");
    let delegate: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"delegate\""))
        .collect();
    assert!(
        delegate
            .iter()
            .any(|l| l.contains("dav.read") && l.contains(ALICE)),
        "{audit}"
    );
    assert!(
        delegate
            .iter()
            .any(|l| l.contains("dav.put") && l.contains(ALICE)),
        "{audit}"
    );
    let owner_audit = s.cli_ok(&["audit", "show", "--account", ALICE, "--json"], "");
    assert!(
        owner_audit
            .lines()
            .any(|l| l.contains("dav.share") && l.contains("grantee:bob@example.com")),
        "{owner_audit}"
    );

    // Revoked: gone at once, from the listing and by path.
    s.cli_ok(&["dav", "share", ALICE, "calendar", BOB, "none"], "");
    let r = dav(a, BOB, "GET", &format!("{path}e1.ics"), &[], b"");
    assert_eq!(r.status, 404);
    let r = dav(
        a,
        BOB,
        "PUT",
        &format!("{path}e3.ics"),
        &[("Content-Type", "text/calendar")],
        event("share-e3", "late").as_bytes(),
    );
    assert!(matches!(r.status, 404 | 409), "{}", r.status);
    assert!(shared_paths(a, BOB, "calendars").is_empty());
    assert_eq!(
        s.cli_ok(&["dav", "share", ALICE, "calendar"], "").trim(),
        ""
    );

    // Grants stay inside the domain, go to people, and not to the owner.
    let e = s.cli_err(&["dav", "share", ALICE, "calendar", BOBBY, "read"], "");
    assert!(e.contains("domain"), "{e}");
    let e = s.cli_err(&["dav", "share", ALICE, "calendar", ALICE, "read"], "");
    assert!(e.contains("owner"), "{e}");
    let e = s.cli_err(&["dav", "share", ALICE, "calendar", BOB, "admin"], "");
    assert!(e.contains("read, write or none"), "{e}");
    let e = s.cli_err(&["dav", "share", ALICE, "nothing", BOB, "read"], "");
    assert!(e.contains("nothing"), "{e}");
}

#[test]
fn shared_address_book() {
    let s = server();
    let a = s.addr("http");
    let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Zed Zebra\r\nEMAIL:zed@zoo.test\r\nEND:VCARD\r\n";
    let r = dav(
        a,
        ALICE,
        "PUT",
        "/dav/addressbooks/alice@example.com/contacts/c1.vcf",
        &[("Content-Type", "text/vcard")],
        card.as_bytes(),
    );
    assert_eq!(r.status, 201);
    s.cli_ok(&["dav", "share", ALICE, "contacts", BOB, "read"], "");
    let paths = shared_paths(a, BOB, "addressbooks");
    assert_eq!(paths.len(), 1, "{paths:?}");
    // Not in the calendar home.
    assert!(shared_paths(a, BOB, "calendars").is_empty());
    let q = br#"<?xml version="1.0"?><card:addressbook-query xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><d:getetag/><card:address-data/></d:prop></card:addressbook-query>"#;
    let r = dav(a, BOB, "REPORT", &paths[0], &[("Depth", "1")], q);
    assert_eq!(r.status, 207);
    assert!(r.text().contains("Zed Zebra"), "{}", r.text());
}

const GAL_QUERY: &[u8] = br#"<?xml version="1.0"?><card:addressbook-query xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><d:getetag/><card:address-data/></d:prop></card:addressbook-query>"#;

#[test]
fn global_address_list() {
    let s = server();
    s.cli_ok(
        &[
            "account",
            "add",
            "room1@example.com",
            "--kind",
            "resource",
            "--name",
            "Room One",
        ],
        "",
    );
    s.cli_ok(
        &["account", "add", "team@example.com", "--kind", "group"],
        "",
    );
    s.cli_ok(&["group", "add-member", "team@example.com", BOB], "");
    let a = s.addr("http");
    let home = "/dav/addressbooks/alice@example.com/";
    let r = dav(a, ALICE, "PROPFIND", home, &[("Depth", "1")], PROPS);
    let t = r.text();
    assert!(
        t.contains("<d:href>/dav/addressbooks/alice@example.com/gal/</d:href>"),
        "{t}"
    );
    assert!(t.contains("Global Address List"), "{t}");
    let gal = format!("{home}gal/");
    let r = dav(a, ALICE, "PROPFIND", &gal, &[("Depth", "0")], PROPS);
    let t = r.text();
    assert!(
        t.contains("<d:read/>") && !t.contains("<d:write-content/>"),
        "{t}"
    );

    let r = dav(a, ALICE, "REPORT", &gal, &[("Depth", "1")], GAL_QUERY);
    assert_eq!(r.status, 207);
    let t = r.text();
    for want in [
        "FN:Alice Archer",
        "FN:Bob Builder",
        "EMAIL;TYPE=work:bob@example.com",
        "FN:Room One",
        "KIND:location",
        "KIND:group",
        "MEMBER:mailto:bob@example.com",
        "KIND:individual",
    ] {
        assert!(t.contains(want), "{want} missing:\n{t}");
    }
    assert!(!t.contains("example.org"), "another domain leaked:\n{t}");
    // Bob's card by name: GET and multiget.
    let href = t
        .split("<d:href>")
        .skip(1)
        .filter_map(|x| x.split("</d:href>").next())
        .find(|h| {
            let r = dav(a, ALICE, "GET", h, &[], b"");
            r.status == 200 && r.text().contains("FN:Bob Builder")
        })
        .expect("bob's card")
        .to_string();
    let mg = format!(
        r#"<?xml version="1.0"?><card:addressbook-multiget xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><d:getetag/><card:address-data/></d:prop><d:href>{href}</d:href></card:addressbook-multiget>"#
    );
    let r = dav(a, ALICE, "REPORT", &gal, &[], mg.as_bytes());
    assert_eq!(r.status, 207);
    assert!(r.text().contains("FN:Bob Builder"), "{}", r.text());
    // Bobby of example.org sees his own domain only.
    let r = dav(
        a,
        BOBBY,
        "REPORT",
        "/dav/addressbooks/bobby@example.org/gal/",
        &[("Depth", "1")],
        GAL_QUERY,
    );
    let t = r.text();
    assert!(
        t.contains("FN:Bobby Other") && !t.contains("example.com"),
        "{t}"
    );

    // Read-only.
    let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:X\r\nEND:VCARD\r\n";
    let r = dav(
        a,
        ALICE,
        "PUT",
        &format!("{gal}x.vcf"),
        &[],
        card.as_bytes(),
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("need-privileges"));
    let r = dav(a, ALICE, "DELETE", &href, &[], b"");
    assert_eq!(r.status, 403);
    let r = dav(a, ALICE, "DELETE", &gal, &[], b"");
    assert_eq!(r.status, 403);
    let pp = br#"<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>mine</d:displayname></d:prop></d:set></d:propertyupdate>"#;
    let r = dav(a, ALICE, "PROPPATCH", &gal, &[], pp);
    assert_eq!(r.status, 403);
    let r = dav(a, ALICE, "MKCOL", &gal, &[], b"");
    assert!(matches!(r.status, 403 | 405), "{}", r.status);

    // sync-collection: a token, no changes with it, and after a directory change the
    // old token is refused (the client syncs again).
    let sync = |token: &str| {
        format!(
            r#"<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#
        )
    };
    let r = dav(a, ALICE, "REPORT", &gal, &[], sync("").as_bytes());
    assert_eq!(r.status, 207);
    let t = r.text();
    assert_eq!(t.matches(".vcf</d:href>").count(), 5, "{t}");
    let token = t
        .split("<d:sync-token>")
        .nth(1)
        .and_then(|x| x.split("</d:sync-token>").next())
        .unwrap()
        .to_string();
    let r = dav(a, ALICE, "REPORT", &gal, &[], sync(&token).as_bytes());
    assert_eq!(r.status, 207);
    assert!(!r.text().contains(".vcf"), "{}", r.text());
    s.cli_ok(&["account", "add", "dan@example.com"], format!("{PW}\n"));
    let r = dav(a, ALICE, "REPORT", &gal, &[], sync(&token).as_bytes());
    assert_eq!(r.status, 403);
    assert!(r.text().contains("valid-sync-token"));

    // Reading the GAL is in the ledger.
    let audit = s.cli_ok(&["audit", "show", "--account", ALICE, "--json"], "");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("dav.read") && l.contains("collection:gal")),
        "{audit}"
    );
}

/// Principal search through the caldav library (by name, and the list without a
/// filter that caldav-server-tester calls list-all).
const SEARCH_CLIENT: &str = r#"
import sys
import caldav
url, user, pw = sys.argv[1], sys.argv[2], sys.argv[3]
client = caldav.DAVClient(url=url, username=user, password=pw)
found = client.search_principals(name="buil")
paths = sorted(p.url.path for p in found)
assert paths == ["/dav/principals/bob@example.com/"], paths
everyone = sorted(p.url.path for p in client.search_principals())
assert "/dav/principals/alice@example.com/" in everyone, everyone
assert not any("example.org" in p for p in everyone), everyone
print("search ok")
"#;

fn pps(prop: &str, text: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><d:principal-property-search xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/"><d:property-search><d:prop>{prop}</d:prop><d:match>{text}</d:match></d:property-search><d:prop><d:displayname/><c:calendar-user-address-set/><cs:email-address-set/></d:prop></d:principal-property-search>"#
    )
}

#[test]
fn principal_property_search() {
    let s = server();
    let a = s.addr("http");
    let url = format!("http://{a}/dav/");
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg(SEARCH_CLIENT)
        .args([&url, ALICE, PW])
        .output()
        .expect("python3 must be installed");
    assert!(
        py.status.success(),
        "python caldav client failed:\nstdout:\n{}\nstderr:\n{}",
        text(&py.stdout),
        text(&py.stderr)
    );

    // By address, caseless, on the principal collection; the other domain's "bobby"
    // is never found.
    let r = dav(
        a,
        ALICE,
        "REPORT",
        "/dav/principals/",
        &[("Depth", "0")],
        pps("<c:calendar-user-address-set/>", "BOB").as_bytes(),
    );
    assert_eq!(r.status, 207);
    let t = r.text();
    assert!(
        t.contains("<d:href>/dav/principals/bob@example.com/</d:href>"),
        "{t}"
    );
    assert!(t.contains("mailto:bob@example.com"), "{t}");
    assert!(
        t.contains("<cs:email-address>bob@example.com</cs:email-address>"),
        "{t}"
    );
    assert!(!t.contains("example.org") && !t.contains("alice@"), "{t}");
    // By display name, as the other domain's user: only their own domain.
    let r = dav(
        a,
        BOBBY,
        "REPORT",
        "/dav/principals/",
        &[],
        pps("<d:displayname/>", "bob").as_bytes(),
    );
    let t = r.text();
    assert!(
        t.contains("bobby@example.org") && !t.contains("example.com"),
        "{t}"
    );
    // allof: both must match.
    let both = r#"<?xml version="1.0"?><d:principal-property-search xmlns:d="DAV:" test="allof"><d:property-search><d:prop><d:displayname/></d:prop><d:match>bob</d:match></d:property-search><d:property-search><d:prop><d:displayname/></d:prop><d:match>alice</d:match></d:property-search><d:prop><d:displayname/></d:prop></d:principal-property-search>"#;
    let r = dav(a, ALICE, "REPORT", "/dav/", &[], both.as_bytes());
    assert_eq!(r.status, 207);
    assert!(!r.text().contains("/dav/principals/"), "{}", r.text());
    // The searchable properties.
    let set = br#"<?xml version="1.0"?><d:principal-search-property-set xmlns:d="DAV:"/>"#;
    let r = dav(a, ALICE, "REPORT", "/dav/principals/", &[], set);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<d:displayname/>"), "{}", r.text());
    assert!(
        r.text().contains("calendar-user-address-set"),
        "{}",
        r.text()
    );
    // Too long a search text is a protocol error.
    let long = "x".repeat(postern_core::dav::gal::MAX_SEARCH_TEXT + 1);
    let r = dav(
        a,
        ALICE,
        "REPORT",
        "/dav/principals/",
        &[],
        pps("<d:displayname/>", &long).as_bytes(),
    );
    assert_eq!(r.status, 400);
    // Searches are in the ledger.
    let audit = s.cli_ok(&["audit", "show", "--account", ALICE, "--json"], "");
    assert!(audit.contains("dav.principal_search"), "{audit}");
}

#[test]
fn principal_search_is_capped() {
    let s = server();
    let cap = postern_core::dav::gal::MAX_PRINCIPAL_RESULTS;
    for i in 0..=cap {
        s.cli_ok(
            &[
                "account",
                "add",
                &format!("room{i:03}@example.com"),
                "--kind",
                "resource",
                "--name",
                &format!("Meeting room {i}"),
            ],
            "",
        );
    }
    let a = s.addr("http");
    let r = dav(
        a,
        ALICE,
        "REPORT",
        "/dav/principals/",
        &[],
        pps("<d:displayname/>", "meeting ROOM").as_bytes(),
    );
    assert_eq!(r.status, 207);
    let t = r.text();
    assert_eq!(
        t.matches("<d:response><d:href>/dav/principals/room")
            .count(),
        cap,
        "{}",
        &t[..t.len().min(2000)]
    );
    assert!(t.contains("507 Insufficient Storage"));
    // One fewer match than the cap: all of them, no 507.
    s.cli_ok(&["account", "remove", "room000@example.com"], "");
    s.cli_ok(&["account", "remove", "room001@example.com"], "");
    let r = dav(
        a,
        ALICE,
        "REPORT",
        "/dav/principals/",
        &[],
        pps("<d:displayname/>", "meeting room").as_bytes(),
    );
    let t = r.text();
    assert_eq!(
        t.matches("<d:response><d:href>/dav/principals/room")
            .count(),
        cap - 1
    );
    assert!(!t.contains("507"));
}

/// The members' names in a collection (PROPFIND Depth 1).
fn members(addr: SocketAddr, user: &str, path: &str) -> Vec<String> {
    let r = dav(addr, user, "PROPFIND", path, &[("Depth", "1")], PROPS);
    if r.status == 404 {
        return vec!["404".into()];
    }
    assert_eq!(r.status, 207, "{}", r.text());
    let mut v: Vec<String> = r
        .text()
        .split("<d:href>")
        .skip(1)
        .filter_map(|x| x.split("</d:href>").next())
        .filter(|h| h.len() > path.len() && h.starts_with(path))
        .map(|h| h[path.len()..].to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn copy_and_move_collections() {
    let s = server();
    let a = s.addr("http");
    let home = "/dav/calendars/alice@example.com/";
    let cal = format!("{home}calendar/");
    for (n, uid) in [("e1.ics", "cm-1"), ("e2.ics", "cm-2")] {
        let r = dav(
            a,
            ALICE,
            "PUT",
            &format!("{cal}{n}"),
            &[("Content-Type", "text/calendar")],
            event(uid, "copied").as_bytes(),
        );
        assert_eq!(r.status, 201);
    }
    let go = |user: &str, method: &str, from: &str, to: &str, h: &[(&str, &str)]| {
        let mut headers = vec![("Destination", to)];
        headers.extend_from_slice(h);
        dav(a, user, method, from, &headers, b"")
    };
    let both = vec!["e1.ics".to_string(), "e2.ics".to_string()];
    // COPY (Depth infinity by default): a new calendar with the members; the source stays.
    let copy1 = format!("{home}copy1/");
    let r = go(ALICE, "COPY", &cal, &copy1, &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(members(a, ALICE, &copy1), both);
    assert_eq!(members(a, ALICE, &cal), both);
    let r = dav(a, ALICE, "GET", &format!("{copy1}e1.ics"), &[], b"");
    assert!(r.text().contains("UID:cm-1"));
    // Overwrite F over it: 412; T: 204 and the same members.
    let r = go(ALICE, "COPY", &cal, &copy1, &[("Overwrite", "F")]);
    assert_eq!(r.status, 412);
    let r = go(ALICE, "COPY", &cal, &copy1, &[("Overwrite", "T")]);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(members(a, ALICE, &copy1), both);
    // Depth 0: the collection without members; Depth 1: refused.
    let r = go(
        ALICE,
        "COPY",
        &cal,
        &format!("{home}empty/"),
        &[("Depth", "0")],
    );
    assert_eq!(r.status, 201);
    assert!(members(a, ALICE, &format!("{home}empty/")).is_empty());
    let r = go(
        ALICE,
        "COPY",
        &cal,
        &format!("{home}d1/"),
        &[("Depth", "1")],
    );
    assert_eq!(r.status, 400);
    // MOVE: the destination has the members, the source is gone.
    let moved = format!("{home}moved/");
    let r = go(ALICE, "MOVE", &copy1, &moved, &[("Depth", "0")]);
    assert_eq!(r.status, 400);
    let r = go(ALICE, "MOVE", &copy1, &moved, &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(members(a, ALICE, &moved), both);
    assert_eq!(members(a, ALICE, &copy1), vec!["404".to_string()]);
    // Not across homes, not into another account, not onto reserved names.
    let r = go(
        ALICE,
        "COPY",
        &cal,
        "/dav/addressbooks/alice@example.com/cal/",
        &[],
    );
    assert_eq!(r.status, 403);
    let r = go(
        ALICE,
        "COPY",
        &cal,
        "/dav/calendars/bob@example.com/stolen/",
        &[],
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        members(a, BOB, "/dav/calendars/bob@example.com/stolen/"),
        vec!["404".to_string()]
    );
    let r = go(ALICE, "COPY", &cal, &format!("{home}shared-1/"), &[]);
    assert_eq!(r.status, 403);
    // A read-only grantee may copy the shared calendar into their own home, not move it.
    s.cli_ok(&["dav", "share", ALICE, "calendar", BOB, "read"], "");
    let shared = shared_paths(a, BOB, "calendars");
    assert_eq!(shared.len(), 1);
    let mine = "/dav/calendars/bob@example.com/mine/";
    let r = go(BOB, "MOVE", &shared[0], mine, &[]);
    assert_eq!(r.status, 403);
    let r = go(BOB, "COPY", &shared[0], mine, &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(members(a, BOB, mine), both);
    assert_eq!(members(a, ALICE, &cal), both);
}

#[test]
fn sharing_over_dav_post() {
    let s = server();
    let a = s.addr("http");
    let cal = "/dav/calendars/alice@example.com/calendar/";
    let cs = br#"<?xml version="1.0"?><CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:set><D:href>mailto:bob@example.com</D:href><CS:common-name>Bob</CS:common-name><CS:read-write/></CS:set><CS:set><D:href>mailto:carol@example.com</D:href><CS:read/></CS:set></CS:share>"#;
    let xml = [("Content-Type", "application/xml")];
    let r = dav(a, ALICE, "POST", cal, &xml, cs);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.cli_ok(&["dav", "share", ALICE, "calendar"], ""),
        "bob@example.com write\ncarol@example.com read\n"
    );
    let bob_path = shared_paths(a, BOB, "calendars")
        .pop()
        .expect("shared with bob");
    let r = dav(
        a,
        BOB,
        "PUT",
        &format!("{bob_path}p1.ics"),
        &[("Content-Type", "text/calendar")],
        event("post-1", "by bob").as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // Only the owner shares: a grantee's POST is refused, another's path is 404.
    let carol_path = shared_paths(a, CAROL, "calendars")
        .pop()
        .expect("shared with carol");
    let r = dav(a, CAROL, "POST", &carol_path, &xml, cs);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = dav(a, BOB, "POST", &bob_path, &xml, cs);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = dav(a, CAROL, "POST", cal, &xml, cs);
    assert_eq!(r.status, 404);
    // Another domain's sharee is refused, without looking the address up.
    let other = br#"<?xml version="1.0"?><D:share-resource xmlns:D="DAV:"><D:sharee><D:href>mailto:bobby@example.org</D:href><D:share-access><D:read/></D:share-access></D:sharee></D:share-resource>"#;
    let r = dav(a, ALICE, "POST", cal, &xml, other);
    assert_eq!(r.status, 403, "{}", r.text());
    // The resource-sharing draft's form revokes.
    let revoke = br#"<?xml version="1.0"?><D:share-resource xmlns:D="DAV:"><D:sharee><D:href>mailto:bob@example.com</D:href><D:share-access><D:no-access/></D:share-access></D:sharee><D:sharee><D:href>carol@example.com</D:href><D:share-access><D:no-access/></D:share-access></D:sharee></D:share-resource>"#;
    let r = dav(a, ALICE, "POST", cal, &xml, revoke);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(shared_paths(a, BOB, "calendars").is_empty());
    let r = dav(a, BOB, "GET", &format!("{bob_path}p1.ics"), &[], b"");
    assert_eq!(r.status, 404);
    // Malformed bodies are 400.
    let r = dav(
        a,
        ALICE,
        "POST",
        cal,
        &xml,
        b"<D:nothing xmlns:D=\"DAV:\"/>",
    );
    assert_eq!(r.status, 400);
}
