//! APPEND (RFC 9051 §6.3.12), APPENDUID (RFC 4315), MULTIAPPEND (RFC 3502), literal
//! limits and APPENDLIMIT (RFC 7889), LITERAL+ (RFC 7888), literal8 (RFC 3516), quota
//! (RFC 9208 [OVERQUOTA]).

use super::client::*;
use super::fixtures::*;

fn messages(c: &mut Client, mailbox: &str) -> String {
    let r = c.cmd(&format!("STATUS {mailbox} (MESSAGES)"));
    r.ok();
    r.untagged[0].clone()
}

#[test]
fn append_with_flags_and_date() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let mut a = format!(
        "APPEND INBOX (\\Seen \\Draft $Label) \" 5-Mar-2024 14:30:00 +0000\" {{{}+}}\r\n",
        PLAIN.len()
    )
    .into_bytes();
    a.extend_from_slice(PLAIN);
    let r = c.cmd_bytes(&a);
    r.ok();
    let v = code_value(&r.text, "[APPENDUID").unwrap();
    assert_eq!(r.text, format!("[APPENDUID {v} 1] APPEND completed"));
    // Another zone: stored as the same instant.
    let mut a = format!(
        "APPEND INBOX \"05-Mar-2024 16:30:00 +0200\" {{{}+}}\r\n",
        PLAIN.len()
    )
    .into_bytes();
    a.extend_from_slice(PLAIN);
    let r = c.cmd_bytes(&a);
    assert!(r.text.starts_with(&format!("[APPENDUID {v} 2]")), "{r:?}");
    let s = c.cmd("SELECT INBOX");
    assert!(s.has(&format!("[UIDVALIDITY {v}]")), "{s:#?}");
    let r = c.cmd("FETCH 1:2 (FLAGS INTERNALDATE BODY.PEEK[])");
    r.ok();
    let l = fetch_line(&r, 1);
    assert!(
        l.starts_with(
            "* 1 FETCH (FLAGS (\\Seen \\Draft $Label) INTERNALDATE \" 5-Mar-2024 14:30:00 +0000\""
        ),
        "{l}"
    );
    assert_eq!(literal_after(&l, "BODY[]").unwrap().as_bytes(), PLAIN);
    assert!(
        fetch_line(&r, 2).contains("INTERNALDATE \" 5-Mar-2024 14:30:00 +0000\""),
        "{r:#?}"
    );
    // Without flags or date: no flags, internal date about now.
    let r = c.append("INBOX", "", PLAIN);
    assert!(r.text.starts_with(&format!("[APPENDUID {v} 3]")), "{r:?}");
    // The selected mailbox learns of its new message.
    assert!(r.has("* 3 EXISTS"), "{r:#?}");
}

#[test]
fn append_errors() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let r = c.append("Nowhere", "", PLAIN);
    r.no();
    assert!(r.text.starts_with("[TRYCREATE]"), "{r:?}");
    c.append("INBOX", "\\Bogus", PLAIN).bad();
    c.cmd("APPEND INBOX").bad();
    c.cmd("APPEND INBOX \"not a date\" {3+}\r\nabc").bad();
    c.cmd("APPEND INBOX (\\Seen {3+}\r\nabc").bad();
    let r = c.cmd("APPEND INBOX {0+}\r\n");
    assert!(r.status == "NO" || r.status == "BAD", "{r:?}");
    assert_eq!(messages(&mut c, "INBOX"), "* STATUS INBOX (MESSAGES 0)");
}

#[test]
fn multiappend_is_all_or_nothing() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let two = msg(
        "c@example.org",
        "second",
        "Tue, 24 Nov 2026 10:00:00 +0000",
        "two",
    );
    let mut a = format!("APPEND INBOX (\\Seen) {{{}+}}\r\n", PLAIN.len()).into_bytes();
    a.extend_from_slice(PLAIN);
    a.extend_from_slice(format!(" (\\Flagged) {{{}+}}\r\n", two.len()).as_bytes());
    a.extend_from_slice(&two);
    let r = c.cmd_bytes(&a);
    r.ok();
    let v = code_value(&r.text, "[APPENDUID").unwrap();
    assert_eq!(r.text, format!("[APPENDUID {v} 1:2] APPEND completed"));
    // A bad second message: nothing stored.
    let mut a = format!("APPEND INBOX {{{}+}}\r\n", PLAIN.len()).into_bytes();
    a.extend_from_slice(PLAIN);
    a.extend_from_slice(format!(" (\\Bogus) {{{}+}}\r\n", two.len()).as_bytes());
    a.extend_from_slice(&two);
    c.cmd_bytes(&a).bad();
    let mut a = format!("APPEND INBOX {{{}+}}\r\n", PLAIN.len()).into_bytes();
    a.extend_from_slice(PLAIN);
    a.extend_from_slice(b" {0+}\r\n");
    let r = c.cmd_bytes(&a);
    assert!(r.status == "NO" || r.status == "BAD", "{r:?}");
    assert_eq!(messages(&mut c, "INBOX"), "* STATUS INBOX (MESSAGES 2)");
    c.cmd("EXAMINE INBOX").ok();
    let r = c.cmd("FETCH 1:2 FLAGS");
    assert_eq!(fetch_line(&r, 1), "* 1 FETCH (FLAGS (\\Seen))");
    assert_eq!(fetch_line(&r, 2), "* 2 FETCH (FLAGS (\\Flagged))");
}

#[test]
fn synchronising_literal_waits_for_continuation() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.send_raw(format!("s1 APPEND INBOX (\\Seen) {{{}}}\r\n", PLAIN.len()).as_bytes());
    let cont = c.read_response_line();
    assert!(cont.starts_with("+"), "{cont}");
    c.send_raw(PLAIN);
    c.send_raw(b"\r\n");
    let r = c.read_until_tagged("s1");
    r.ok();
    assert!(r.text.starts_with("[APPENDUID "), "{r:?}");
    assert_eq!(messages(&mut c, "INBOX"), "* STATUS INBOX (MESSAGES 1)");
}

#[test]
fn literal8_binary_append() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let m = b"From: x@example.org\r\nSubject: bin\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\na\0b\xffc\r\n";
    let mut a = format!("APPEND INBOX ~{{{}+}}\r\n", m.len()).into_bytes();
    a.extend_from_slice(m);
    let r = c.cmd_bytes(&a);
    r.ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])");
    r.ok();
    let l = fetch_line(&r, 1);
    assert!(l.contains("BINARY.SIZE[1] 7"), "{l}");
    // A NUL in the data: literal8.
    assert!(l.contains("BINARY[1] ~{7}\r\n"), "{l:?}");
    // A NUL in an ordinary literal is refused.
    let mut a = format!("APPEND INBOX {{{}+}}\r\n", m.len()).into_bytes();
    a.extend_from_slice(m);
    c.cmd_bytes(&a).bad();
}

#[test]
fn literal_over_appendlimit() {
    let env = Env::start_with("[limits]\nimap_literal_size = 70000\n");
    let mut c = env.login(ALICE);
    let caps = c.cmd("CAPABILITY");
    assert!(caps.untagged[0].contains(" APPENDLIMIT=70000"), "{caps:#?}");
    // Synchronising: NO [TOOBIG] at once, no `+`.
    c.send_raw(b"s1 APPEND INBOX {100000}\r\n");
    let l = c.read_response_line();
    assert!(l.starts_with("s1 NO [TOOBIG]"), "{l}");
    // LITERAL+: the client sends the data anyway; it must never run as commands.
    let mut big = b"s3 CREATE Injected\r\n".to_vec();
    big.resize(100000, b'x');
    let mut a = b"s2 APPEND INBOX {100000+}\r\n".to_vec();
    a.extend_from_slice(&big);
    a.extend_from_slice(b"\r\n");
    c.send_raw(&a);
    let l = c.read_response_line();
    assert!(
        l.starts_with("s2 NO [TOOBIG]") || l.starts_with("s2 BAD") || l.starts_with("* BYE"),
        "{l}"
    );
    // Within the limit is fine.
    let mut o = env.login(ALICE);
    let m = msg(
        "x@example.org",
        "fits",
        "Tue, 24 Nov 2026 10:00:00 +0000",
        &"y".repeat(60000),
    );
    o.append("INBOX", "", &m).ok();
    let r = o.cmd("LIST \"\" *");
    assert!(!r.has("Injected"), "literal data ran as a command: {r:#?}");
    assert_eq!(messages(&mut o, "INBOX"), "* STATUS INBOX (MESSAGES 1)");
}

#[test]
fn quota_exceeded() {
    let env = Env::start();
    env.server.cli_ok(&["account", "quota", ALICE.0, "2K"], "");
    let mut c = env.login(ALICE);
    let small = msg(
        "x@example.org",
        "small",
        "Tue, 24 Nov 2026 10:00:00 +0000",
        "ok",
    );
    c.append("INBOX", "", &small).ok();
    let big = msg(
        "x@example.org",
        "big",
        "Tue, 24 Nov 2026 10:00:00 +0000",
        &"z".repeat(3000),
    );
    let r = c.append("INBOX", "", &big);
    r.no();
    assert!(r.text.starts_with("[OVERQUOTA]"), "{r:?}");
    assert_eq!(messages(&mut c, "INBOX"), "* STATUS INBOX (MESSAGES 1)");
    // MULTIAPPEND over quota: nothing stored.
    let one = msg(
        "x@example.org",
        "one",
        "Tue, 24 Nov 2026 10:00:00 +0000",
        &"a".repeat(600),
    );
    let mut a = format!("APPEND INBOX {{{}+}}\r\n", one.len()).into_bytes();
    a.extend_from_slice(&one);
    a.extend_from_slice(format!(" {{{}+}}\r\n", big.len()).as_bytes());
    a.extend_from_slice(&big);
    let r = c.cmd_bytes(&a);
    r.no();
    assert!(r.text.starts_with("[OVERQUOTA]"), "{r:?}");
    assert_eq!(messages(&mut c, "INBOX"), "* STATUS INBOX (MESSAGES 1)");
    // COPY over quota too.
    c.append(
        "INBOX",
        "",
        &msg(
            "x@example.org",
            "mid",
            "Tue, 24 Nov 2026 10:00:00 +0000",
            &"m".repeat(1200),
        ),
    )
    .ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("COPY 1:2 Trash");
    r.no();
    assert!(r.text.starts_with("[OVERQUOTA]"), "{r:?}");
}
