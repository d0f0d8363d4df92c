//! SEARCH and UID SEARCH (RFC 9051 §6.4.4), ESEARCH results (RFC 4731 / RFC 9051
//! §7.3.4), SEARCHRES (RFC 5182), CHARSET and [BADCHARSET].

use super::client::*;

/// UIDs are seq+1 (a first message was expunged). 1: bob, "Lunch plans", \Seen,
/// X-Tag; 2: carol, large, \Flagged, June; 3: bob, "Re: Lunch plans"; 4: dave, UTF-8
/// subject and body, \Deleted, June.
fn corpus(env: &Env) -> Client {
    let mut c = env.login(ALICE);
    c.append("INBOX", "\\Deleted", b"Subject: gone\r\n\r\nx\r\n")
        .ok();
    let m1 = b"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: Lunch plans\r\nDate: Mon, 01 Jan 2024 09:00:00 +0000\r\nX-Tag: alpha\r\n\r\nLet us meet at noon.\r\n".to_vec();
    let mut m2 = b"From: Carol <carol@example.net>\r\nTo: alice@example.com\r\nSubject: Quarterly report\r\nDate: Sat, 15 Jun 2024 09:00:00 +0000\r\n\r\nThe numbers are attached.\r\n".to_vec();
    m2.extend_from_slice("padding padding padding\r\n".repeat(80).as_bytes());
    let m3 = b"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: Re: Lunch plans\r\nDate: Tue, 02 Jan 2024 09:00:00 +0000\r\n\r\nNoon works.\r\n".to_vec();
    let m4 = "From: Dave <dave@example.com>\r\nTo: alice@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Thu, 20 Jun 2024 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nEin Gruß von Dave.\r\n".as_bytes().to_vec();
    for (m, flags, date) in [
        (&m1, "\\Seen", "01-Jan-2024 09:00:00 +0000"),
        (&m2, "\\Flagged", "15-Jun-2024 09:00:00 +0000"),
        (&m3, "", "02-Jan-2024 09:00:00 +0000"),
        (&m4, "\\Deleted", "20-Jun-2024 09:00:00 +0000"),
    ] {
        let mut a = format!("APPEND INBOX ({flags}) \"{date}\" {{{}+}}\r\n", m.len()).into_bytes();
        a.extend_from_slice(m);
        c.cmd_bytes(&a).ok();
    }
    c.cmd("SELECT INBOX").ok();
    c.cmd("UID EXPUNGE 1").ok();
    c
}

fn search(c: &mut Client, q: &str) -> String {
    let r = c.cmd(q);
    r.ok();
    let l = r.lines("* SEARCH");
    assert_eq!(l.len(), 1, "{q}: {r:#?}");
    l[0].to_string()
}

#[test]
fn keys() {
    let env = Env::start();
    let mut c = corpus(&env);
    let cases = [
        ("SEARCH ALL", "* SEARCH 1 2 3 4"),
        ("SEARCH FROM bob", "* SEARCH 1 3"),
        ("SEARCH FROM \"CAROL\"", "* SEARCH 2"),
        ("SEARCH TO alice", "* SEARCH 1 2 3 4"),
        ("SEARCH SUBJECT lunch", "* SEARCH 1 3"),
        ("SEARCH BODY noon", "* SEARCH 1 3"),
        ("SEARCH BODY carol", "* SEARCH"),
        ("SEARCH TEXT carol", "* SEARCH 2"),
        ("SEARCH TEXT attached", "* SEARCH 2"),
        ("SEARCH HEADER X-Tag alpha", "* SEARCH 1"),
        ("SEARCH HEADER X-Tag \"\"", "* SEARCH 1"),
        ("SEARCH LARGER 1000", "* SEARCH 2"),
        ("SEARCH SMALLER 1000", "* SEARCH 1 3 4"),
        ("SEARCH SINCE 1-Jun-2024", "* SEARCH 2 4"),
        ("SEARCH BEFORE 2-Jan-2024", "* SEARCH 1"),
        ("SEARCH ON 2-Jan-2024", "* SEARCH 3"),
        ("SEARCH SENTSINCE 16-Jun-2024", "* SEARCH 4"),
        ("SEARCH SENTBEFORE 2-Jan-2024", "* SEARCH 1"),
        ("SEARCH UID 3:4", "* SEARCH 2 3"),
        ("SEARCH UID 5:*", "* SEARCH 4"),
        ("SEARCH 2,4", "* SEARCH 2 4"),
        ("SEARCH 3:*", "* SEARCH 3 4"),
        ("SEARCH NOT FROM bob", "* SEARCH 2 4"),
        ("SEARCH OR FROM carol FROM dave", "* SEARCH 2 4"),
        ("SEARCH (FROM bob SUBJECT re) SEEN", "* SEARCH"),
        ("SEARCH FROM bob UNSEEN", "* SEARCH 3"),
        ("SEARCH SEEN", "* SEARCH 1"),
        ("SEARCH FLAGGED", "* SEARCH 2"),
        ("SEARCH DELETED", "* SEARCH 4"),
        ("SEARCH UNDELETED UNSEEN", "* SEARCH 2 3"),
        ("SEARCH KEYWORD $Work", "* SEARCH"),
        ("SEARCH CHARSET UTF-8 FROM bob", "* SEARCH 1 3"),
        ("SEARCH CHARSET US-ASCII FROM bob", "* SEARCH 1 3"),
        ("UID SEARCH FROM bob", "* SEARCH 2 4"),
        ("UID SEARCH UID 3:4", "* SEARCH 3 4"),
        ("UID SEARCH 1", "* SEARCH 2"),
        // `*` is the highest UID even when the range starts above it (RFC 9051 §9).
        ("UID SEARCH UID 100:*", "* SEARCH 5"),
        ("SEARCH UID 1", "* SEARCH"),
    ];
    for (q, want) in cases {
        assert_eq!(search(&mut c, q), want, "{q}");
    }
    // Non-ASCII: a literal under CHARSET UTF-8, against an encoded-word subject and
    // an 8bit body.
    let q = "SEARCH CHARSET UTF-8 SUBJECT {7+}\r\nGrüße".as_bytes();
    let r = c.cmd_bytes(q);
    r.ok();
    assert_eq!(r.lines("* SEARCH"), vec!["* SEARCH 4"], "{r:#?}");
    let q = "SEARCH CHARSET UTF-8 BODY {5+}\r\ngruß".as_bytes();
    let r = c.cmd_bytes(q);
    r.ok();
    assert_eq!(r.lines("* SEARCH"), vec!["* SEARCH 4"], "{r:#?}");
}

#[test]
fn errors() {
    let env = Env::start();
    let mut c = corpus(&env);
    let r = c.cmd("SEARCH CHARSET KOI8-R FROM bob");
    r.no();
    assert!(r.text.starts_with("[BADCHARSET"), "{r:?}");
    assert!(r.lines("* SEARCH").is_empty());
    c.cmd("SEARCH").bad();
    c.cmd("SEARCH FROM").bad();
    c.cmd("SEARCH BOGUS").bad();
    c.cmd("SEARCH SINCE 2024-01-01").bad();
    c.cmd("SEARCH LARGER x").bad();
    c.cmd("SEARCH OR FROM bob").bad();
    c.cmd("SEARCH (FROM bob").bad();
    c.cmd("SEARCH RETURN (BOGUS) ALL").bad();
    c.cmd("UNSELECT").ok();
    c.cmd("SEARCH ALL").bad();
}

#[test]
fn esearch_returns() {
    let env = Env::start();
    let mut c = corpus(&env);
    let r = c.cmd("SEARCH RETURN (MIN MAX COUNT ALL) FROM bob");
    r.ok();
    let l = r.lines("* ESEARCH");
    assert_eq!(l.len(), 1, "{r:#?}");
    assert!(l[0].starts_with("* ESEARCH (TAG \""), "{l:?}");
    assert!(l[0].ends_with("\") MIN 1 MAX 3 COUNT 2 ALL 1,3"), "{l:?}");
    assert!(r.lines("* SEARCH").is_empty());
    // RETURN () means ALL.
    let r = c.cmd("SEARCH RETURN () 2:4");
    assert!(r.lines("* ESEARCH")[0].ends_with(") ALL 2:4"), "{r:#?}");
    // UID SEARCH: UID marker and UIDs.
    let r = c.cmd("UID SEARCH RETURN (MIN MAX) ALL");
    assert!(
        r.lines("* ESEARCH")[0].ends_with(") UID MIN 2 MAX 5"),
        "{r:#?}"
    );
    // Nothing found: no MIN/MAX/ALL, COUNT 0.
    let r = c.cmd("SEARCH RETURN (MIN COUNT ALL) FROM nobody");
    let l = r.lines("* ESEARCH");
    assert!(l[0].ends_with(") COUNT 0"), "{l:?}");
}

#[test]
fn searchres_save_then_fetch() {
    let env = Env::start();
    let mut c = corpus(&env);
    let r = c.cmd("SEARCH RETURN (SAVE) FROM bob");
    r.ok();
    // SAVE alone: no result shown.
    assert!(
        r.lines("* ESEARCH").is_empty() && r.lines("* SEARCH").is_empty(),
        "{r:#?}"
    );
    let r = c.cmd("FETCH $ UID");
    assert_eq!(r.untagged, vec!["* 1 FETCH (UID 2)", "* 3 FETCH (UID 4)"]);
    let r = c.cmd("UID FETCH $ FLAGS");
    assert_eq!(
        r.untagged,
        vec![
            "* 1 FETCH (UID 2 FLAGS (\\Seen))",
            "* 3 FETCH (UID 4 FLAGS ())"
        ]
    );
    assert_eq!(search(&mut c, "SEARCH $ SEEN"), "* SEARCH 1");
    // SAVE with other results shows them and saves.
    let r = c.cmd("SEARCH RETURN (SAVE COUNT) FLAGGED");
    assert!(r.lines("* ESEARCH")[0].ends_with(") COUNT 1"), "{r:#?}");
    let r = c.cmd("FETCH $ UID");
    assert_eq!(r.untagged, vec!["* 2 FETCH (UID 3)"]);
    // A failed SEARCH ... SAVE empties $ (RFC 5182 §2.1); before any SAVE, $ is empty.
    c.cmd("SEARCH RETURN (SAVE) FROM {4+}\r\nnone").ok();
    let r = c.cmd("FETCH $ UID");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH $ UID");
    r.ok();
    assert!(r.untagged.is_empty(), "$ survived SELECT: {r:#?}");
}

#[test]
fn searchres_edge_cases() {
    let env = Env::start();
    let mut c = corpus(&env);
    // SAVE with MIN only saves the lowest match; with MIN and MAX both ends
    // (RFC 5182 §2.4).
    c.cmd("SEARCH RETURN (SAVE MIN) FROM bob").ok();
    assert_eq!(c.cmd("FETCH $ UID").untagged, vec!["* 1 FETCH (UID 2)"]);
    c.cmd("SEARCH RETURN (MAX SAVE) ALL").ok();
    assert_eq!(c.cmd("FETCH $ UID").untagged, vec!["* 4 FETCH (UID 5)"]);
    c.cmd("SEARCH RETURN (SAVE MIN MAX) UNSEEN").ok();
    assert_eq!(
        c.cmd("FETCH $ UID").untagged,
        vec!["* 2 FETCH (UID 3)", "* 4 FETCH (UID 5)"]
    );
    c.cmd("SEARCH RETURN (SAVE MIN COUNT) UNSEEN").ok();
    assert_eq!(c.cmd("FETCH $ UID").untagged.len(), 3);
    // A failed SEARCH ... SAVE empties $ (RFC 5182 §2.1).
    c.cmd("SEARCH RETURN (SAVE) FROM bob").ok();
    c.cmd("SEARCH RETURN (SAVE) CHARSET KOI8-R FROM bob").no();
    let r = c.cmd("FETCH $ UID");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
}

/// IMAP4rev2 has no SEARCH response: SEARCH without RETURN answers ESEARCH with ALL
/// (RFC 9051 §6.4.4).
#[test]
fn imap4rev2_search_answers_esearch() {
    let env = Env::start();
    let mut c = corpus(&env);
    c.cmd("ENABLE IMAP4rev2").ok();
    let r = c.cmd("SEARCH FROM bob");
    r.ok();
    assert!(r.lines("* SEARCH").is_empty(), "{r:#?}");
    let l = r.lines("* ESEARCH");
    assert_eq!(l.len(), 1, "{r:#?}");
    assert!(
        l[0].starts_with("* ESEARCH (TAG \"") && l[0].ends_with("\") ALL 1,3"),
        "{l:?}"
    );
    let r = c.cmd("UID SEARCH FROM bob");
    assert!(
        r.lines("* ESEARCH")[0].ends_with("\") UID ALL 2,4"),
        "{r:#?}"
    );
    let r = c.cmd("SEARCH FROM nobody");
    let l = r.lines("* ESEARCH");
    assert!(l[0].ends_with("\")"), "{l:?}");
}

#[test]
fn body_search_decodes_transfer_encodings() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.append("INBOX", "", super::fixtures::MULTI).ok();
    let qp = b"From: x@example.org\r\nSubject: qp\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 au =\r\nlait\r\n";
    c.append("INBOX", "", qp).ok();
    let latin = b"From: y@example.org\r\nSubject: latin\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nna\xefve\r\n";
    c.append("INBOX", "", latin).ok();
    c.cmd("SELECT INBOX").ok();
    // base64 text/html "<b>Hi</b>": decoded before matching.
    assert_eq!(search(&mut c, "SEARCH BODY Hi"), "* SEARCH 1");
    assert_eq!(search(&mut c, "SEARCH BODY PGI"), "* SEARCH");
    // Soft line breaks joined; case-insensitive beyond ASCII.
    assert_eq!(search(&mut c, "SEARCH BODY \"au lait\""), "* SEARCH 2");
    let r = c.cmd_bytes("SEARCH CHARSET UTF-8 BODY {5+}\r\nCAFÉ".as_bytes());
    assert_eq!(r.lines("* SEARCH"), vec!["* SEARCH 2"], "{r:#?}");
    // A body in ISO-8859-1 is matched as text.
    let r = c.cmd_bytes("SEARCH CHARSET UTF-8 BODY {6+}\r\nnaïve".as_bytes());
    assert_eq!(r.lines("* SEARCH"), vec!["* SEARCH 3"], "{r:#?}");
    // LARGER / SMALLER are strict.
    let size = super::fixtures::MULTI.len();
    assert_eq!(search(&mut c, &format!("SEARCH LARGER {size}")), "* SEARCH");
    assert_eq!(
        search(&mut c, &format!("SEARCH LARGER {}", size - 1)),
        "* SEARCH 1"
    );
    assert_eq!(
        search(&mut c, &format!("SEARCH SMALLER {size} FROM carol")),
        "* SEARCH"
    );
    // Nested NOT / OR.
    assert_eq!(search(&mut c, "SEARCH NOT NOT FROM carol"), "* SEARCH 1");
    assert_eq!(
        search(&mut c, "SEARCH OR OR FROM x@ FROM y@ FROM carol"),
        "* SEARCH 1 2 3"
    );
    assert_eq!(
        search(&mut c, "SEARCH OR (FROM x@ SUBJECT qp) NOT ALL"),
        "* SEARCH 2"
    );
}

#[test]
fn empty_mailbox_and_rev1_keys() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.cmd("SELECT INBOX").ok();
    assert_eq!(search(&mut c, "SEARCH ALL"), "* SEARCH");
    assert_eq!(search(&mut c, "UID SEARCH 1:*"), "* SEARCH");
    let r = c.cmd("SEARCH RETURN (COUNT MIN) ALL");
    assert!(r.lines("* ESEARCH")[0].ends_with(") COUNT 0"), "{r:#?}");
    // Arrived while selected: \Recent and NEW for this IMAP4rev1 session.
    c.append("INBOX", "", b"Subject: a\r\n\r\nx\r\n").ok();
    c.append("INBOX", "\\Seen", b"Subject: b\r\n\r\nx\r\n").ok();
    assert_eq!(search(&mut c, "SEARCH RECENT"), "* SEARCH 1 2");
    assert_eq!(search(&mut c, "SEARCH NEW"), "* SEARCH 1");
    assert_eq!(search(&mut c, "SEARCH OLD"), "* SEARCH");
    // A fresh session: nothing recent for it.
    let mut o = env.login(ALICE);
    o.cmd("SELECT INBOX").ok();
    assert_eq!(search(&mut o, "SEARCH OLD"), "* SEARCH 1 2");
}
