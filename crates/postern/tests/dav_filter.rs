//! calendar-query and addressbook-query filters against a real `postern serve` (RFC 4791
//! §9.7, RFC 6352 §10.5): component scoping (a VALARM's property is not the VEVENT's),
//! nested comp-filters, param-filter (ATTENDEE PARTSTAT, EMAIL TYPE), prop-filter
//! time-range (DTSTAMP, COMPLETED of a VTODO), CardDAV `test=` anyof/allof, and the
//! 403 preconditions supported-collation and valid-filter (CardDAV: supported-filter).

mod common;

use common::*;
use std::net::SocketAddr;

const ALICE: &str = "alice@example.com";
const ALICE_PW: &str = "alice-filter-secret-1";
const CAL: &str = "/dav/calendars/alice@example.com/calendar/";
const TASKS: &str = "/dav/calendars/alice@example.com/tasks/";
const BOOK: &str = "/dav/addressbooks/alice@example.com/contacts/";

fn server() -> Server {
    let s = Server::start_with("[auth]\nallow_plaintext_on_loopback = true\n");
    s.cli_ok(&["domain", "add", "example.com"], "");
    s.cli_ok(&["account", "add", ALICE], format!("{ALICE_PW}\n"));
    s
}

fn put(a: SocketAddr, path: &str, ct: &str, body: &str) {
    let r = dav(
        a,
        &basic(ALICE, ALICE_PW),
        "PUT",
        path,
        &[("Content-Type", ct)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "PUT {path}: {}", r.text());
}

fn ics(comp: &str, uid: &str, body: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern test//EN\r\nBEGIN:{comp}\r\n\
         UID:{uid}\r\n{body}END:{comp}\r\nEND:VCALENDAR\r\n"
    )
}

/// A calendar-query REPORT with `filter` inside VCALENDAR > `comp`; (status, body).
fn cal_query(a: SocketAddr, col: &str, comp: &str, inner: &str) -> (u16, String) {
    let q = format!(
        r#"<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="{comp}">{inner}</c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"#
    );
    let r = dav(
        a,
        &basic(ALICE, ALICE_PW),
        "REPORT",
        col,
        &[("Depth", "1")],
        q.as_bytes(),
    );
    (r.status, r.text())
}

fn card_query(a: SocketAddr, test: &str, inner: &str) -> (u16, String) {
    let q = format!(
        r#"<card:addressbook-query xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><d:getetag/></d:prop><card:filter{test}>{inner}</card:filter></card:addressbook-query>"#
    );
    let r = dav(
        a,
        &basic(ALICE, ALICE_PW),
        "REPORT",
        BOOK,
        &[("Depth", "1")],
        q.as_bytes(),
    );
    (r.status, r.text())
}

/// Which of `names` the multistatus `body` lists (207 asserted).
fn found(res: (u16, String), names: &[&str]) -> Vec<String> {
    assert_eq!(res.0, 207, "{}", res.1);
    names
        .iter()
        .filter(|n| res.1.contains(&format!("/{n}<")))
        .map(|n| n.to_string())
        .collect()
}

#[test]
fn calendar_filters_follow_rfc4791() {
    let s = server();
    let a = s.addr("http");
    let ct = "text/calendar";
    // e1: the word only in its VALARM; e2: in the VEVENT; e3: no alarm.
    put(
        a,
        &format!("{CAL}e1.ics"),
        ct,
        &ics(
            "VEVENT",
            "e1",
            "DTSTAMP:20300101T000000Z\r\nDTSTART:20300105T090000Z\r\nDTEND:20300105T100000Z\r\n\
             SUMMARY:Standup\r\nATTENDEE;PARTSTAT=DECLINED;CN=\"Bob, B\":mailto:bob@example.org\r\n\
             BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Wake up\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n",
        ),
    );
    put(
        a,
        &format!("{CAL}e2.ics"),
        ct,
        &ics(
            "VEVENT",
            "e2",
            "DTSTAMP:20300101T000000Z\r\nDTSTART:20300106T090000Z\r\nDTEND:20300106T100000Z\r\n\
             SUMMARY:Review\r\nDESCRIPTION:Wake up the reviewers\r\n\
             ATTENDEE;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:carol@example.org\r\n\
             ATTENDEE;PARTSTAT=DECLINED:mailto:bob@example.org\r\n\
             BEGIN:VALARM\r\nACTION:AUDIO\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n",
        ),
    );
    put(
        a,
        &format!("{CAL}e3.ics"),
        ct,
        &ics(
            "VEVENT",
            "e3",
            "DTSTAMP:20300101T000000Z\r\nDTSTART:20300107T090000Z\r\nDTEND:20300107T100000Z\r\n\
             SUMMARY:Lunch\r\n",
        ),
    );
    let all = ["e1.ics", "e2.ics", "e3.ics"];
    let q = |inner: &str| found(cal_query(a, CAL, "VEVENT", inner), &all);

    // A VALARM-only property is not the VEVENT's...
    assert_eq!(
        q(
            r#"<c:prop-filter name="DESCRIPTION"><c:text-match>wake up</c:text-match></c:prop-filter>"#
        ),
        ["e2.ics"]
    );
    assert_eq!(q(r#"<c:prop-filter name="ACTION"/>"#), Vec::<String>::new());
    // ...but a VALARM comp-filter sees it.
    assert_eq!(
        q(
            r#"<c:comp-filter name="VALARM"><c:prop-filter name="DESCRIPTION"><c:text-match>wake up</c:text-match></c:prop-filter></c:comp-filter>"#
        ),
        ["e1.ics"]
    );
    assert_eq!(
        q(
            r#"<c:comp-filter name="VALARM"><c:prop-filter name="ACTION"><c:text-match>AUDIO</c:text-match></c:prop-filter></c:comp-filter>"#
        ),
        ["e2.ics"]
    );
    assert_eq!(q(r#"<c:comp-filter name="VALARM"/>"#), ["e1.ics", "e2.ics"]);
    assert_eq!(
        q(r#"<c:comp-filter name="VALARM"><c:is-not-defined/></c:comp-filter>"#),
        ["e3.ics"]
    );
    // A VALARM comp-filter combined with the event's time range.
    assert_eq!(
        q(
            r#"<c:time-range start="20300106T000000Z" end="20300108T000000Z"/><c:comp-filter name="VALARM"/>"#
        ),
        ["e2.ics"]
    );

    // param-filter on ATTENDEE PARTSTAT (one attendee must satisfy all).
    let att = |inner: &str| {
        q(&format!(
            r#"<c:prop-filter name="ATTENDEE">{inner}</c:prop-filter>"#
        ))
    };
    assert_eq!(
        att(
            r#"<c:param-filter name="PARTSTAT"><c:text-match>ACCEPTED</c:text-match></c:param-filter>"#
        ),
        ["e2.ics"]
    );
    assert_eq!(
        att(
            r#"<c:param-filter name="partstat"><c:text-match>declined</c:text-match></c:param-filter>"#
        ),
        ["e1.ics", "e2.ics"]
    );
    assert_eq!(
        att(
            r#"<c:text-match>bob@</c:text-match><c:param-filter name="PARTSTAT"><c:text-match>ACCEPTED</c:text-match></c:param-filter>"#
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        att(r#"<c:param-filter name="ROLE"><c:is-not-defined/></c:param-filter>"#),
        ["e1.ics", "e2.ics"]
    );
    assert_eq!(
        att(
            r#"<c:param-filter name="CN"><c:text-match match-type="equals">bob, b</c:text-match></c:param-filter>"#
        ),
        ["e1.ics"]
    );
    assert_eq!(
        q(r#"<c:prop-filter name="ATTENDEE"><c:is-not-defined/></c:prop-filter>"#),
        ["e3.ics"]
    );
}

#[test]
fn todo_property_time_ranges() {
    let s = server();
    let a = s.addr("http");
    let ct = "text/calendar";
    put(
        a,
        &format!("{TASKS}t1.ics"),
        ct,
        &ics(
            "VTODO",
            "t1",
            "DTSTAMP:20300105T100000Z\r\nCOMPLETED:20300110T080000Z\r\nSTATUS:COMPLETED\r\nSUMMARY:Done\r\n",
        ),
    );
    put(
        a,
        &format!("{TASKS}t2.ics"),
        ct,
        &ics(
            "VTODO",
            "t2",
            "DTSTAMP:20300201T100000Z\r\nDUE;VALUE=DATE:20300215\r\nSUMMARY:Open\r\n",
        ),
    );
    let all = ["t1.ics", "t2.ics"];
    let tr = |prop: &str, range: &str| {
        found(
            cal_query(
                a,
                TASKS,
                "VTODO",
                &format!(r#"<c:prop-filter name="{prop}"><c:time-range {range}/></c:prop-filter>"#),
            ),
            &all,
        )
    };
    assert_eq!(
        tr(
            "DTSTAMP",
            r#"start="20300105T000000Z" end="20300106T000000Z""#
        ),
        ["t1.ics"]
    );
    assert_eq!(tr("DTSTAMP", r#"start="20300115T000000Z""#), ["t2.ics"]);
    assert_eq!(
        tr(
            "DTSTAMP",
            r#"start="20300101T000000Z" end="20300301T000000Z""#
        ),
        ["t1.ics", "t2.ics"]
    );
    // [start, end): end is exclusive.
    assert_eq!(
        tr(
            "DTSTAMP",
            r#"start="20300101T000000Z" end="20300105T100000Z""#
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        tr(
            "COMPLETED",
            r#"start="20300110T000000Z" end="20300111T000000Z""#
        ),
        ["t1.ics"]
    );
    assert_eq!(
        tr("COMPLETED", r#"start="20300111T000000Z""#),
        Vec::<String>::new()
    );
    // A DATE covers its whole day.
    assert_eq!(
        tr("DUE", r#"start="20300215T120000Z" end="20300215T130000Z""#),
        ["t2.ics"]
    );
    // A malformed time-range is an invalid filter.
    let (status, body) = cal_query(
        a,
        TASKS,
        "VTODO",
        r#"<c:prop-filter name="DTSTAMP"><c:time-range start="soon"/></c:prop-filter>"#,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("valid-filter"), "{body}");
}

#[test]
fn addressbook_filters_follow_rfc6352() {
    let s = server();
    let a = s.addr("http");
    let ct = "text/vcard";
    put(
        a,
        &format!("{BOOK}c1.vcf"),
        ct,
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Carol Work\r\n\
         item1.EMAIL;TYPE=work,internet:carol@corp.example\r\nEND:VCARD\r\n",
    );
    put(
        a,
        &format!("{BOOK}c2.vcf"),
        ct,
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c2\r\nFN:Dave Home\r\n\
         EMAIL;TYPE=home:dave@home.example\r\nEMAIL;TYPE=\"work\":dave@corp.example\r\nEND:VCARD\r\n",
    );
    put(
        a,
        &format!("{BOOK}c3.vcf"),
        ct,
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c3\r\nFN:Erin Nomail\r\nEND:VCARD\r\n",
    );
    let all = ["c1.vcf", "c2.vcf", "c3.vcf"];
    let q = |test: &str, inner: &str| found(card_query(a, test, inner), &all);
    let email = |test: &str, inner: &str| {
        q(
            "",
            &format!(r#"<card:prop-filter name="EMAIL"{test}>{inner}</card:prop-filter>"#),
        )
    };
    // param-filter on EMAIL TYPE (group prefix item1. still matched by name).
    assert_eq!(
        email(
            "",
            r#"<card:param-filter name="TYPE"><card:text-match match-type="equals">work</card:text-match></card:param-filter>"#
        ),
        ["c1.vcf", "c2.vcf"]
    );
    assert_eq!(
        email(
            "",
            r#"<card:param-filter name="type"><card:text-match match-type="equals">HOME</card:text-match></card:param-filter>"#
        ),
        ["c2.vcf"]
    );
    // allof: text and parameter on the same EMAIL.
    let both = r#"<card:text-match>home.example</card:text-match><card:param-filter name="TYPE"><card:text-match match-type="equals">work</card:text-match></card:param-filter>"#;
    assert_eq!(email(r#" test="allof""#, both), Vec::<String>::new());
    // anyof (the default): either one.
    assert_eq!(email("", both), ["c1.vcf", "c2.vcf"]);
    assert_eq!(email("", "<card:is-not-defined/>"), ["c3.vcf"]);
    // filter test= anyof (default) / allof.
    let two = r#"<card:prop-filter name="FN"><card:text-match>carol</card:text-match></card:prop-filter><card:prop-filter name="EMAIL"><card:text-match>home.example</card:text-match></card:prop-filter>"#;
    assert_eq!(q("", two), ["c1.vcf", "c2.vcf"]);
    assert_eq!(q(r#" test="allof""#, two), Vec::<String>::new());
    assert_eq!(
        q(
            r#" test="allof""#,
            r#"<card:prop-filter name="FN"><card:text-match>dave</card:text-match></card:prop-filter><card:prop-filter name="EMAIL"><card:text-match match-type="ends-with">home.example</card:text-match></card:prop-filter>"#
        ),
        ["c2.vcf"]
    );
}

#[test]
fn unsupported_collation_and_invalid_filters_are_refused() {
    let s = server();
    let a = s.addr("http");
    put(
        a,
        &format!("{CAL}e1.ics"),
        "text/calendar",
        &ics(
            "VEVENT",
            "e1",
            "DTSTAMP:20300101T000000Z\r\nDTSTART:20300105T090000Z\r\nSUMMARY:x\r\n",
        ),
    );
    let (status, body) = cal_query(
        a,
        CAL,
        "VEVENT",
        r#"<c:prop-filter name="SUMMARY"><c:text-match collation="i;basic">x</c:text-match></c:prop-filter>"#,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("supported-collation"), "{body}");
    assert!(body.contains("urn:ietf:params:xml:ns:caldav"), "{body}");
    // The supported ones are accepted.
    for coll in ["i;ascii-casemap", "i;unicode-casemap", "i;octet"] {
        let (status, body) = cal_query(
            a,
            CAL,
            "VEVENT",
            &format!(
                r#"<c:prop-filter name="SUMMARY"><c:text-match collation="{coll}">x</c:text-match></c:prop-filter>"#
            ),
        );
        assert_eq!(status, 207, "{coll}: {body}");
        assert!(body.contains("e1.ics"), "{coll}: {body}");
    }
    let (status, body) = card_query(
        a,
        "",
        r#"<card:prop-filter name="FN"><card:text-match collation="i;klingon">x</card:text-match></card:prop-filter>"#,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("supported-collation"), "{body}");
    assert!(body.contains("urn:ietf:params:xml:ns:carddav"), "{body}");
    // Invalid structure: a comp-filter / prop-filter without a name.
    let (status, body) = cal_query(a, CAL, "VEVENT", "<c:comp-filter/>");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("valid-filter"), "{body}");
    let (status, body) = cal_query(a, CAL, "VEVENT", "<c:prop-filter/>");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("valid-filter"), "{body}");
    // CardDAV names it supported-filter (RFC 6352 §8.6 has no valid-filter).
    let (status, body) = card_query(a, r#" test="sometimes""#, "");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("supported-filter"), "{body}");
}
