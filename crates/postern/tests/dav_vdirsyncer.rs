//! vdirsyncer, the real CalDAV/CardDAV synchronisation client, against a real `postern
//! serve`: one `caldav` pair and one `carddav` pair, each with a local `filesystem`
//! storage, synced in both directions. Checked on both sides (the local directory and the
//! server over raw HTTP — PROPFIND, GET, REPORT): objects created on the server (PUT)
//! arrive as files, files created locally arrive on the server, a change on either side
//! reaches the other, a conflict resolves as configured (`a wins`: the server's), a
//! deletion on either side is carried over, a second `sync` with nothing changed changes
//! nothing (same files, same ETags, nothing copied or deleted in its log), and a calendar
//! created locally (a new subdirectory) is created on the server by `discover` through
//! vdirsyncer's extended MKCOL (`implicit = "create"`, so nothing prompts), and
//! `metasync` carries display names and colours both ways (PROPFIND / PROPPATCH). The
//! read-only global address list is synced down like any address book; a vCard added to
//! its local copy is refused with 403 (vdirsyncer exits non-zero, the GAL is unchanged).
//! Discovery: the CalDAV storage is given `/dav/`, the CardDAV storage only the server
//! root, so it goes through `/.well-known/carddav` and `current-user-principal`. The
//! scheduling inbox is not offered as a calendar.
//!
//! Needs the `vdirsyncer` command (pip `vdirsyncer==0.21.0`, installed by `.ci/run`): a
//! missing client fails the test, it never skips. Network only to 127.0.0.1.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ALICE: &str = "alice@example.com";
const ALICE_PW: &str = "alice-vdir-secret-1";
const CAL: &str = "/dav/calendars/alice@example.com/calendar/";
const CARDS: &str = "/dav/addressbooks/alice@example.com/contacts/";

fn server() -> Server {
    let s = Server::start_with("[auth]\nallow_plaintext_on_loopback = true\n");
    s.cli_ok(&["domain", "add", "example.com"], "");
    s.cli_ok(&["account", "add", ALICE], format!("{ALICE_PW}\n"));
    s
}

fn event(uid: &str, day: u32, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern test//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:203003{day:02}T090000Z\r\n\
         DTEND:203003{day:02}T100000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn card(uid: &str, name: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n\
         EMAIL:{uid}@example.org\r\nEND:VCARD\r\n"
    )
}

/// A local vdirsyncer setup: its configuration and the two local trees.
struct Local {
    _dir: tempfile::TempDir,
    config: PathBuf,
    cal: PathBuf,
    card: PathBuf,
}

impl Local {
    fn new(addr: SocketAddr) -> Local {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let cal = root.join("cal");
        let card = root.join("card");
        std::fs::create_dir_all(&cal).unwrap();
        std::fs::create_dir_all(&card).unwrap();
        let config = root.join("config");
        let p = |p: &Path| p.to_str().unwrap().to_string();
        std::fs::write(
            &config,
            format!(
                r#"[general]
status_path = "{status}/"

[pair cal]
a = "cal_remote"
b = "cal_local"
collections = ["from a", "from b"]
conflict_resolution = "a wins"
implicit = "create"
metadata = ["displayname", "color"]

[storage cal_remote]
type = "caldav"
url = "http://{addr}/dav/"
username = "{ALICE}"
password = "{ALICE_PW}"

[storage cal_local]
type = "filesystem"
path = "{cal}/"
fileext = ".ics"

[pair card]
a = "card_remote"
b = "card_local"
collections = ["from a", "from b"]
conflict_resolution = "a wins"
implicit = "create"
metadata = ["displayname"]

[storage card_remote]
type = "carddav"
url = "http://{addr}/"
username = "{ALICE}"
password = "{ALICE_PW}"

[storage card_local]
type = "filesystem"
path = "{card}/"
fileext = ".vcf"
"#,
                status = p(&root.join("status")),
                cal = p(&cal),
                card = p(&card),
            ),
        )
        .unwrap();
        Local {
            _dir: dir,
            config,
            cal,
            card,
        }
    }

    /// `vdirsyncer -c CONFIG ARGS…`, non-interactive (stdin closed, collections created
    /// through `implicit = "create"`), with no proxy from the environment: whether it
    /// exited 0, and its standard output + standard error. Panics if it cannot start.
    fn try_run(&self, args: &[&str]) -> (bool, String) {
        let out: Output = Command::new("vdirsyncer")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .output()
            .unwrap_or_else(|e| {
                panic!("vdirsyncer must be installed (pip install vdirsyncer==0.21.0): {e}")
            });
        let all = format!(
            "vdirsyncer {args:?} exited with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        (out.status.success(), all)
    }

    /// [`Local::try_run`], panicking with the output unless vdirsyncer exits 0.
    fn run(&self, args: &[&str]) -> String {
        let (ok, all) = self.try_run(args);
        assert!(ok, "{all}");
        all
    }

    fn sync(&self) -> String {
        self.run(&["sync"])
    }
}

/// Every file below `dir` (relative path → content).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_str().unwrap().to_string();
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The one local file of `dir` holding `UID:uid` (path and content); `None` if there is
/// none; panics if there are several.
fn local_object(dir: &Path, uid: &str) -> Option<(PathBuf, String)> {
    let needle = format!("UID:{uid}\n");
    let mut hits: Vec<(PathBuf, String)> = tree(dir)
        .into_iter()
        .filter(|(_, c)| c.replace("\r\n", "\n").contains(&needle))
        .map(|(p, c)| (dir.join(p), c))
        .collect();
    assert!(hits.len() <= 1, "{uid} is in several files: {hits:?}");
    hits.pop()
}

/// The `<d:href>` and `<d:getetag>` (unescaped) pairs of a multistatus body, in order.
fn hrefs_and_etags(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for resp in body.split("<d:response>").skip(1) {
        let between = |open: &str, close: &str| {
            resp.find(open).and_then(|i| {
                let rest = &resp[i + open.len()..];
                rest.find(close).map(|j| rest[..j].to_string())
            })
        };
        let href = between("<d:href>", "</d:href>").unwrap_or_default();
        let etag = between("<d:getetag>", "</d:getetag>")
            .unwrap_or_default()
            .replace("&quot;", "\"");
        out.push((href, etag));
    }
    out
}

/// The objects of a server collection: href → (ETag, body), through PROPFIND Depth 1 and
/// a GET of each member (whose ETag must equal the PROPFIND's).
fn server_objects(addr: SocketAddr, col: &str) -> BTreeMap<String, (String, String)> {
    let auth = basic(ALICE, ALICE_PW);
    let body = br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>"#;
    let r = dav(addr, &auth, "PROPFIND", col, &[("Depth", "1")], body);
    assert_eq!(r.status, 207, "PROPFIND {col}: {}", r.text());
    let mut out = BTreeMap::new();
    for (href, etag) in hrefs_and_etags(&r.text()) {
        if href == col {
            continue;
        }
        let got = dav(addr, &auth, "GET", &href, &[], b"");
        assert_eq!(got.status, 200, "GET {href}: {}", got.text());
        assert_eq!(
            got.header("etag"),
            Some(etag.as_str()),
            "GET and PROPFIND ETags of {href}"
        );
        out.insert(href, (etag, got.text()));
    }
    out
}

/// The one server object of `col` holding `UID:uid` (href, ETag, body).
fn server_object(addr: SocketAddr, col: &str, uid: &str) -> Option<(String, String, String)> {
    let needle = format!("UID:{uid}\r\n");
    let mut hits: Vec<_> = server_objects(addr, col)
        .into_iter()
        .filter(|(_, (_, b))| b.contains(&needle))
        .map(|(h, (e, b))| (h, e, b))
        .collect();
    assert!(hits.len() <= 1, "{uid} is in several objects: {hits:?}");
    hits.pop()
}

fn put(addr: SocketAddr, path: &str, ctype: &str, body: &str, if_match: Option<&str>) {
    let auth = basic(ALICE, ALICE_PW);
    let mut h = vec![("Content-Type", ctype)];
    match if_match {
        Some(etag) => h.push(("If-Match", etag)),
        None => h.push(("If-None-Match", "*")),
    }
    let r = dav(addr, &auth, "PUT", path, &h, body.as_bytes());
    assert!(
        r.status == 201 || r.status == 204,
        "PUT {path}: {} {}",
        r.status,
        r.text()
    );
}

fn delete(addr: SocketAddr, path: &str) {
    let r = dav(addr, &basic(ALICE, ALICE_PW), "DELETE", path, &[], b"");
    assert!(
        r.status == 204 || r.status == 200,
        "DELETE {path}: {}",
        r.status
    );
}

/// Lines of vdirsyncer's log that report a change to an item.
fn changes(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            ["Copying", "Deleting", "conflict resolution"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect()
}

#[test]
fn vdirsyncer_syncs_both_ways() {
    let s = server();
    let addr = s.addr("http");
    let local = Local::new(addr);
    let cal_dir = local.cal.join("calendar");
    let card_dir = local.card.join("contacts");

    // On the server before the first sync: two events and two contacts.
    for (uid, day) in [("srv-ev1", 1), ("srv-ev2", 2)] {
        put(
            addr,
            &format!("{CAL}{uid}.ics"),
            "text/calendar",
            &event(uid, day, &format!("Server {uid}")),
            None,
        );
    }
    for uid in ["srv-c1", "srv-c2"] {
        put(
            addr,
            &format!("{CARDS}{uid}.vcf"),
            "text/vcard",
            &card(uid, &format!("Server {uid}")),
            None,
        );
    }

    // discover creates the local collections of the server's (`from a`).
    let out = local.run(&["discover"]);
    assert!(cal_dir.is_dir(), "no local calendar/ after discover\n{out}");
    assert!(
        card_dir.is_dir(),
        "no local contacts/ after discover\n{out}"
    );
    assert!(
        local.cal.join("tasks").is_dir(),
        "no local tasks/ after discover\n{out}"
    );
    // The scheduling inbox is not a calendar to sync.
    assert_eq!(
        std::fs::read_dir(&local.cal).unwrap().count(),
        2,
        "local calendars: {:?}\n{out}",
        tree(&local.cal).keys().collect::<Vec<_>>()
    );

    // 1. Server → local.
    let out = local.sync();
    // The global address list (read-only) is an address book like the others: alice's
    // own entry arrives.
    let gal = local.card.join("gal");
    assert!(
        tree(&gal).values().any(|c| c.contains(ALICE)),
        "alice not in the local copy of the GAL: {:?}\n{out}",
        tree(&gal)
    );
    for uid in ["srv-ev1", "srv-ev2"] {
        let (_, c) = local_object(&cal_dir, uid)
            .unwrap_or_else(|| panic!("{uid} not synced to a local file\n{out}"));
        assert!(c.contains(&format!("SUMMARY:Server {uid}")), "{c}");
    }
    for uid in ["srv-c1", "srv-c2"] {
        let (_, c) = local_object(&card_dir, uid)
            .unwrap_or_else(|| panic!("{uid} not synced to a local file\n{out}"));
        assert!(c.contains(&format!("FN:Server {uid}")), "{c}");
    }
    // The server still holds exactly what it held.
    assert_eq!(server_objects(addr, CAL).len(), 2);
    assert_eq!(server_objects(addr, CARDS).len(), 2);

    // 2. Local → server.
    for (uid, day) in [("loc-ev1", 3), ("loc-ev2", 4)] {
        std::fs::write(
            cal_dir.join(format!("{uid}.ics")),
            event(uid, day, &format!("Local {uid}")),
        )
        .unwrap();
    }
    for uid in ["loc-c1", "loc-c2"] {
        std::fs::write(
            card_dir.join(format!("{uid}.vcf")),
            card(uid, &format!("Local {uid}")),
        )
        .unwrap();
    }
    let out = local.sync();
    for uid in ["loc-ev1", "loc-ev2"] {
        let (href, _, b) =
            server_object(addr, CAL, uid).unwrap_or_else(|| panic!("{uid} not uploaded\n{out}"));
        assert!(b.contains(&format!("SUMMARY:Local {uid}")), "{b}");
        assert!(href.starts_with(CAL), "{href}");
    }
    for uid in ["loc-c1", "loc-c2"] {
        let (_, _, b) =
            server_object(addr, CARDS, uid).unwrap_or_else(|| panic!("{uid} not uploaded\n{out}"));
        assert!(b.contains(&format!("FN:Local {uid}")), "{b}");
    }
    // A calendar-query REPORT sees the uploaded event in its time range.
    let q = br#"<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"><c:time-range start="20300303T000000Z" end="20300304T000000Z"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"#;
    let r = dav(
        addr,
        &basic(ALICE, ALICE_PW),
        "REPORT",
        CAL,
        &[("Depth", "1")],
        q,
    );
    assert_eq!(r.status, 207, "{}", r.text());
    assert!(r.text().contains("UID:loc-ev1"), "{}", r.text());
    assert!(!r.text().contains("UID:loc-ev2"), "{}", r.text());
    assert_eq!(tree(&cal_dir).len(), 4);
    assert_eq!(tree(&card_dir).len(), 4);

    // 3. Changes: a local file edited, a server object replaced (If-Match).
    let (p, c) = local_object(&cal_dir, "loc-ev1").unwrap();
    std::fs::write(
        &p,
        c.replace("SUMMARY:Local loc-ev1", "SUMMARY:Edited locally"),
    )
    .unwrap();
    let (p, c) = local_object(&card_dir, "loc-c1").unwrap();
    std::fs::write(&p, c.replace("FN:Local loc-c1", "FN:Edited locally")).unwrap();
    let (href, etag, _) = server_object(addr, CAL, "srv-ev1").unwrap();
    put(
        addr,
        &href,
        "text/calendar",
        &event("srv-ev1", 1, "Edited on the server"),
        Some(&etag),
    );
    let (href, etag, _) = server_object(addr, CARDS, "srv-c1").unwrap();
    put(
        addr,
        &href,
        "text/vcard",
        &card("srv-c1", "Edited on the server"),
        Some(&etag),
    );
    let out = local.sync();
    let (_, _, b) = server_object(addr, CAL, "loc-ev1").unwrap();
    assert!(b.contains("SUMMARY:Edited locally"), "{b}\n{out}");
    let (_, _, b) = server_object(addr, CARDS, "loc-c1").unwrap();
    assert!(b.contains("FN:Edited locally"), "{b}\n{out}");
    let (_, c) = local_object(&cal_dir, "srv-ev1").unwrap();
    assert!(c.contains("SUMMARY:Edited on the server"), "{c}\n{out}");
    let (_, c) = local_object(&card_dir, "srv-c1").unwrap();
    assert!(c.contains("FN:Edited on the server"), "{c}\n{out}");

    // A conflict (the same event edited on both sides): `a wins`, the server's version
    // ends up on both sides.
    let (p, c) = local_object(&cal_dir, "srv-ev1").unwrap();
    std::fs::write(
        &p,
        c.replace("SUMMARY:Edited on the server", "SUMMARY:Local side"),
    )
    .unwrap();
    let (href, etag, _) = server_object(addr, CAL, "srv-ev1").unwrap();
    put(
        addr,
        &href,
        "text/calendar",
        &event("srv-ev1", 1, "Server side"),
        Some(&etag),
    );
    let out = local.sync();
    assert!(
        out.contains("conflict resolution for item srv-ev1"),
        "no conflict seen\n{out}"
    );
    let (_, c) = local_object(&cal_dir, "srv-ev1").unwrap();
    assert!(c.contains("SUMMARY:Server side"), "{c}\n{out}");
    let (_, _, b) = server_object(addr, CAL, "srv-ev1").unwrap();
    assert!(b.contains("SUMMARY:Server side"), "{b}\n{out}");

    // 4. Deletions: a local file removed of each kind, a server object of each kind.
    std::fs::remove_file(local_object(&cal_dir, "srv-ev2").unwrap().0).unwrap();
    std::fs::remove_file(local_object(&card_dir, "srv-c2").unwrap().0).unwrap();
    delete(addr, &server_object(addr, CAL, "loc-ev2").unwrap().0);
    delete(addr, &server_object(addr, CARDS, "loc-c2").unwrap().0);
    let out = local.sync();
    assert!(
        server_object(addr, CAL, "srv-ev2").is_none(),
        "local deletion not carried\n{out}"
    );
    assert!(
        server_object(addr, CARDS, "srv-c2").is_none(),
        "local deletion not carried\n{out}"
    );
    let r = dav(
        addr,
        &basic(ALICE, ALICE_PW),
        "GET",
        &format!("{CAL}srv-ev2.ics"),
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    assert!(
        local_object(&cal_dir, "loc-ev2").is_none(),
        "server deletion not carried\n{out}"
    );
    assert!(
        local_object(&card_dir, "loc-c2").is_none(),
        "server deletion not carried\n{out}"
    );
    assert_eq!(server_objects(addr, CAL).len(), 2);
    assert_eq!(server_objects(addr, CARDS).len(), 2);
    assert_eq!(tree(&cal_dir).len(), 2);
    assert_eq!(tree(&card_dir).len(), 2);

    // 5. Nothing changed: a second sync changes nothing on either side.
    let before = (
        tree(&local.cal),
        tree(&local.card),
        server_objects(addr, CAL),
        server_objects(addr, CARDS),
    );
    let out = local.sync();
    assert!(changes(&out).is_empty(), "idle sync changed items:\n{out}");
    let after = (
        tree(&local.cal),
        tree(&local.card),
        server_objects(addr, CAL),
        server_objects(addr, CARDS),
    );
    assert_eq!(before, after, "idle sync changed something\n{out}");

    // 6. A calendar created locally (a new subdirectory) is created on the server by
    // discover (extended MKCOL, `implicit = "create"`), and its event uploaded by sync.
    let holidays = local.cal.join("holidays");
    std::fs::create_dir(&holidays).unwrap();
    std::fs::write(holidays.join("hol-1.ics"), event("hol-1", 5, "Holiday")).unwrap();
    let out = local.run(&["discover"]);
    let col = "/dav/calendars/alice@example.com/holidays/";
    let r = dav(
        addr,
        &basic(ALICE, ALICE_PW),
        "PROPFIND",
        col,
        &[("Depth", "0")],
        br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/></d:prop></d:propfind>"#,
    );
    assert_eq!(r.status, 207, "{}\n{out}", r.text());
    assert!(
        r.text().contains("<c:calendar/>"),
        "not a calendar: {}\n{out}",
        r.text()
    );
    let out = local.sync();
    let (_, _, b) = server_object(addr, col, "hol-1")
        .unwrap_or_else(|| panic!("hol-1 not uploaded to the new calendar\n{out}"));
    assert!(b.contains("SUMMARY:Holiday"), "{b}");
    // And a further sync is idle again.
    let out = local.sync();
    assert!(changes(&out).is_empty(), "idle sync changed items:\n{out}");

    // 7. Collection properties (`metasync`): the server's display names come down as
    // `displayname` files; a name and a colour set locally go up (PROPPATCH), and a
    // name changed on the server comes down.
    let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_default();
    let out = local.run(&["metasync"]);
    assert_eq!(read(cal_dir.join("displayname")), "Calendar", "{out}");
    assert_eq!(read(card_dir.join("displayname")), "Contacts", "{out}");
    std::fs::write(holidays.join("displayname"), "Holidays 2030").unwrap();
    std::fs::write(holidays.join("color"), "#ff0000").unwrap();
    let r = dav(
        addr,
        &basic(ALICE, ALICE_PW),
        "PROPPATCH",
        CAL,
        &[],
        br#"<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>Work</d:displayname></d:prop></d:set></d:propertyupdate>"#,
    );
    assert_eq!(r.status, 207, "{}", r.text());
    let out = local.run(&["metasync"]);
    assert_eq!(read(cal_dir.join("displayname")), "Work", "{out}");
    let r = dav(
        addr,
        &basic(ALICE, ALICE_PW),
        "PROPFIND",
        col,
        &[("Depth", "0")],
        br#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:i="http://apple.com/ns/ical/"><d:prop><d:displayname/><i:calendar-color/></d:prop></d:propfind>"#,
    );
    assert_eq!(r.status, 207, "{}", r.text());
    assert!(
        r.text().contains(">Holidays 2030</d:displayname>"),
        "{}\n{out}",
        r.text()
    );
    assert!(r.text().contains(">#ff0000</"), "{}\n{out}", r.text());

    // 8. The GAL is read-only: a vCard added to its local copy is refused (403), so
    // vdirsyncer exits non-zero and the server's GAL is unchanged.
    let gal_before = server_objects(addr, "/dav/addressbooks/alice@example.com/gal/");
    std::fs::write(gal.join("intruder.vcf"), card("intruder", "Intruder")).unwrap();
    let (ok, out) = local.try_run(&["sync"]);
    assert!(!ok, "an upload into the GAL succeeded\n{out}");
    assert!(out.contains("403"), "{out}");
    assert_eq!(
        server_objects(addr, "/dav/addressbooks/alice@example.com/gal/"),
        gal_before
    );
}
