//! SORT (RFC 5256, RFC 5957 DISPLAYFROM) and THREAD (RFC 5256 REFERENCES and
//! ORDEREDSUBJECT).

use super::client::*;

fn put(c: &mut Client, date: &str, m: &str) {
    let mut a = format!("APPEND INBOX \"{date}\" {{{}+}}\r\n", m.len()).into_bytes();
    a.extend_from_slice(m.as_bytes());
    c.cmd_bytes(&a).ok();
}

/// 1: Zoe, "beta", sent Jan 3, tiny, arrived Jan 5; 2: "Adam" <yann@…>, "Re: alpha",
/// sent Jan 1, large, arrived Jan 4; 3: mike@… (no name), "gamma", sent Jan 2, medium,
/// arrived Jan 6.
fn sortable(env: &Env) -> Client {
    let mut c = env.login(ALICE);
    put(
        &mut c,
        "05-Jan-2024 00:00:00 +0000",
        "From: Zoe <zoe@example.org>\r\nSubject: beta\r\nDate: Wed, 03 Jan 2024 00:00:00 +0000\r\n\r\nx\r\n",
    );
    put(
        &mut c,
        "04-Jan-2024 00:00:00 +0000",
        &format!(
            "From: Adam <yann@example.org>\r\nSubject: Re: alpha\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n{}\r\n",
            "y".repeat(500)
        ),
    );
    put(
        &mut c,
        "06-Jan-2024 00:00:00 +0000",
        &format!(
            "From: mike@example.org\r\nSubject: gamma\r\nDate: Tue, 02 Jan 2024 00:00:00 +0000\r\n\r\n{}\r\n",
            "z".repeat(200)
        ),
    );
    c.cmd("SELECT INBOX").ok();
    c
}

fn sort(c: &mut Client, q: &str) -> String {
    let r = c.cmd(q);
    r.ok();
    let l = r.lines("* SORT");
    assert_eq!(l.len(), 1, "{q}: {r:#?}");
    l[0].to_string()
}

#[test]
fn sort_criteria() {
    let env = Env::start();
    let mut c = sortable(&env);
    let cases = [
        ("SORT (ARRIVAL) UTF-8 ALL", "* SORT 2 1 3"),
        ("SORT (DATE) UTF-8 ALL", "* SORT 2 3 1"),
        ("SORT (REVERSE DATE) UTF-8 ALL", "* SORT 1 3 2"),
        ("SORT (FROM) UTF-8 ALL", "* SORT 3 2 1"),
        ("SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 2 3 1"),
        ("SORT (SUBJECT) UTF-8 ALL", "* SORT 2 1 3"),
        ("SORT (REVERSE SUBJECT) US-ASCII ALL", "* SORT 3 1 2"),
        ("SORT (SIZE) UTF-8 ALL", "* SORT 1 3 2"),
        ("SORT (REVERSE SIZE) UTF-8 ALL", "* SORT 2 3 1"),
        ("SORT (SUBJECT) UTF-8 NOT FROM zoe", "* SORT 2 3"),
        ("SORT (SIZE) UTF-8 FROM nobody", "* SORT"),
    ];
    for (q, want) in cases {
        assert_eq!(sort(&mut c, q), want, "{q}");
    }
    // UID SORT answers UIDs: make them differ from sequence numbers.
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok();
    c.cmd("EXPUNGE").ok();
    assert_eq!(sort(&mut c, "UID SORT (DATE) UTF-8 ALL"), "* SORT 2 3");
    assert_eq!(sort(&mut c, "SORT (DATE) UTF-8 ALL"), "* SORT 1 2");
}

#[test]
fn sort_errors() {
    let env = Env::start();
    let mut c = sortable(&env);
    let r = c.cmd("SORT (DATE) KOI8-R ALL");
    r.no();
    assert!(r.text.starts_with("[BADCHARSET"), "{r:?}");
    c.cmd("SORT (BOGUS) UTF-8 ALL").bad();
    c.cmd("SORT DATE UTF-8 ALL").bad();
    c.cmd("SORT () UTF-8 ALL").bad();
    c.cmd("SORT (DATE) UTF-8").bad();
    c.cmd("SORT (REVERSE) UTF-8 ALL").bad();
    c.cmd("UNSELECT").ok();
    c.cmd("SORT (DATE) UTF-8 ALL").bad();
}

#[test]
fn threads() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let d = "01-Jan-2024 00:00:00 +0000";
    put(
        &mut c,
        d,
        "From: a@example.org\r\nMessage-ID: <a@x>\r\nSubject: plan\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n1\r\n",
    );
    put(
        &mut c,
        d,
        "From: b@example.org\r\nMessage-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\nReferences: <a@x>\r\nSubject: Re: plan\r\nDate: Tue, 02 Jan 2024 00:00:00 +0000\r\n\r\n2\r\n",
    );
    put(
        &mut c,
        d,
        "From: a@example.org\r\nMessage-ID: <c@x>\r\nReferences: <a@x> <b@x>\r\nSubject: Re: plan\r\nDate: Wed, 03 Jan 2024 00:00:00 +0000\r\n\r\n3\r\n",
    );
    put(
        &mut c,
        d,
        "From: d@example.org\r\nMessage-ID: <d@x>\r\nSubject: other\r\nDate: Mon, 01 Jan 2024 12:00:00 +0000\r\n\r\n4\r\n",
    );
    put(
        &mut c,
        d,
        "From: e@example.org\r\nMessage-ID: <e@x>\r\nReferences: <a@x>\r\nSubject: Re: plan\r\nDate: Thu, 04 Jan 2024 00:00:00 +0000\r\n\r\n5\r\n",
    );
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("THREAD REFERENCES UTF-8 ALL");
    r.ok();
    assert_eq!(
        r.lines("* THREAD"),
        vec!["* THREAD (1 (2 3)(5))(4)"],
        "{r:#?}"
    );
    let r = c.cmd("THREAD ORDEREDSUBJECT UTF-8 ALL");
    r.ok();
    assert_eq!(
        r.lines("* THREAD"),
        vec!["* THREAD (1 (2)(3)(5))(4)"],
        "{r:#?}"
    );
    // UID THREAD.
    c.cmd("STORE 4 +FLAGS.SILENT (\\Deleted)").ok();
    c.cmd("EXPUNGE").ok();
    let r = c.cmd("UID THREAD REFERENCES UTF-8 ALL");
    assert_eq!(r.lines("* THREAD"), vec!["* THREAD (1 (2 3)(5))"], "{r:#?}");
    let r = c.cmd("THREAD REFERENCES UTF-8 ALL");
    assert_eq!(r.lines("* THREAD"), vec!["* THREAD (1 (2 3)(4))"], "{r:#?}");
    // Errors.
    c.cmd("THREAD BOGUS UTF-8 ALL").bad();
    let r = c.cmd("THREAD REFERENCES KOI8-R ALL");
    r.no();
    assert!(r.text.starts_with("[BADCHARSET"), "{r:?}");
    c.cmd("THREAD REFERENCES UTF-8").bad();
}

#[test]
fn base_subject_and_ties() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let d = "01-Jan-2024 00:00:00 +0000";
    // Base subjects (RFC 5256 §2.1): "Re:", "Fwd:", "[tag]", "(fwd)" and case go.
    put(
        &mut c,
        d,
        "From: a@example.org\r\nSubject: Re: [list] Fwd: Charlie\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n1\r\n",
    );
    put(
        &mut c,
        d,
        "From: a@example.org\r\nSubject: alpha (fwd)\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n2\r\n",
    );
    put(
        &mut c,
        d,
        "From: a@example.org\r\nSubject: =?utf-8?q?Bravo?=\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n3\r\n",
    );
    put(
        &mut c,
        d,
        "From: a@example.org\r\nSubject: RE: re: ALPHA\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n4\r\n",
    );
    put(
        &mut c,
        d,
        "From: a@example.org\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n5\r\n",
    );
    c.cmd("SELECT INBOX").ok();
    // No subject sorts first (empty base subject); equal keys keep sequence order.
    assert_eq!(sort(&mut c, "SORT (SUBJECT) UTF-8 ALL"), "* SORT 5 2 4 3 1");
    // All equal dates: sequence order; REVERSE reverses the criterion, not the
    // tie-break (RFC 5256 §3, as Dovecot).
    assert_eq!(sort(&mut c, "SORT (DATE) UTF-8 ALL"), "* SORT 1 2 3 4 5");
    assert_eq!(
        sort(&mut c, "SORT (REVERSE DATE) UTF-8 ALL"),
        "* SORT 1 2 3 4 5"
    );
    assert_eq!(
        sort(&mut c, "SORT (REVERSE SUBJECT DATE) UTF-8 ALL"),
        "* SORT 1 3 2 4 5"
    );
    // ORDEREDSUBJECT groups by base subject.
    let r = c.cmd("THREAD ORDEREDSUBJECT UTF-8 ALL");
    assert_eq!(
        r.lines("* THREAD"),
        vec!["* THREAD (1)(2 4)(3)(5)"],
        "{r:#?}"
    );
}

#[test]
fn sort_to_cc_and_displayfrom_encoded() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let d = "01-Jan-2024 00:00:00 +0000";
    put(
        &mut c,
        d,
        "From: =?utf-8?q?=C3=89mile?= <zz@example.org>\r\nTo: m@example.org\r\nCc: b@example.org\r\nSubject: 1\r\n\r\n1\r\n",
    );
    put(
        &mut c,
        d,
        "From: Denise <aa@example.org>\r\nTo: c@example.org\r\nCc: z@example.org\r\nSubject: 2\r\n\r\n2\r\n",
    );
    put(
        &mut c,
        d,
        "From: \"Bob\" <mm@example.org>\r\nTo: a@example.org\r\nSubject: 3\r\n\r\n3\r\n",
    );
    c.cmd("SELECT INBOX").ok();
    assert_eq!(sort(&mut c, "SORT (TO) UTF-8 ALL"), "* SORT 3 2 1");
    // No Cc sorts first.
    assert_eq!(sort(&mut c, "SORT (CC) UTF-8 ALL"), "* SORT 3 1 2");
    assert_eq!(sort(&mut c, "SORT (FROM) UTF-8 ALL"), "* SORT 2 3 1");
    // DISPLAYFROM decodes the name: Bob, Denise, Émile.
    assert_eq!(sort(&mut c, "SORT (DISPLAYFROM) UTF-8 ALL"), "* SORT 3 2 1");
}

/// RFC 5256 REFERENCES step 5: threads with the same base subject are gathered — a
/// reply under the original, two originals under a dummy.
#[test]
fn references_gathers_by_subject() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let d = "01-Jan-2024 00:00:00 +0000";
    put(
        &mut c,
        d,
        "From: a@example.org\r\nMessage-ID: <s1@x>\r\nSubject: foo\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\n1\r\n",
    );
    put(
        &mut c,
        d,
        "From: a@example.org\r\nMessage-ID: <s2@x>\r\nSubject: Re: foo\r\nDate: Tue, 02 Jan 2024 00:00:00 +0000\r\n\r\n2\r\n",
    );
    put(
        &mut c,
        d,
        "From: a@example.org\r\nMessage-ID: <s3@x>\r\nSubject: bar\r\nDate: Wed, 03 Jan 2024 00:00:00 +0000\r\n\r\n3\r\n",
    );
    put(
        &mut c,
        d,
        "From: a@example.org\r\nMessage-ID: <s4@x>\r\nSubject: bar\r\nDate: Thu, 04 Jan 2024 00:00:00 +0000\r\n\r\n4\r\n",
    );
    // A message whose parent is missing hangs under nothing: it is a root.
    put(
        &mut c,
        d,
        "From: a@example.org\r\nMessage-ID: <s5@x>\r\nReferences: <missing@x>\r\nSubject: Re: baz\r\nDate: Fri, 05 Jan 2024 00:00:00 +0000\r\n\r\n5\r\n",
    );
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("THREAD REFERENCES UTF-8 ALL");
    r.ok();
    assert_eq!(
        r.lines("* THREAD"),
        vec!["* THREAD (1 2)((3)(4))(5)"],
        "{r:#?}"
    );
}
