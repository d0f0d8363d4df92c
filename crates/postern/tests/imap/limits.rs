//! Each IMAP limit is a named setting; these tests set it low and hit it.

use super::client::*;

/// `limits.imap_command_size`: MULTIAPPEND's total. A synchronising literal that would
/// take the command past it is refused before `+` (the client sends nothing more); a
/// command that grows past it with non-synchronising literals ends the session.
#[test]
fn command_size_caps_multiappend() {
    let env = Env::start_with(
        "[limits]\nmessage_size = 65536\nimap_literal_size = 65536\nimap_command_size = 100000\n",
    );
    let mut c = env.login(ALICE);
    let msg = vec![b'x'; 40_000];
    let mut m = b"Subject: big\r\n\r\n".to_vec();
    m.extend_from_slice(&msg);
    m.extend_from_slice(b"\r\n");
    // Two messages fit (≈ 80 KB), so this is fine.
    let mut cmd = format!("t1 APPEND INBOX {{{}+}}\r\n", m.len()).into_bytes();
    cmd.extend_from_slice(&m);
    cmd.extend_from_slice(format!(" {{{}+}}\r\n", m.len()).as_bytes());
    cmd.extend_from_slice(&m);
    cmd.extend_from_slice(b"\r\n");
    c.send_raw(&cmd);
    let r = c.read_until_tagged("t1");
    r.ok();
    // A third one as a synchronising literal: refused before `+`.
    let mut cmd = format!("t2 APPEND INBOX {{{}+}}\r\n", m.len()).into_bytes();
    cmd.extend_from_slice(&m);
    cmd.extend_from_slice(format!(" {{{}+}}\r\n", m.len()).as_bytes());
    cmd.extend_from_slice(&m);
    cmd.extend_from_slice(format!(" {{{}}}\r\n", m.len()).as_bytes());
    c.send_raw(&cmd);
    let line = c.read_response_line();
    assert!(
        line.starts_with("t2 NO [TOOBIG] Command would be over the limit of 100000 bytes"),
        "{line}"
    );
    // Nothing of t2 was stored, and the session is still in step.
    let r = c.cmd("STATUS INBOX (MESSAGES)");
    r.ok();
    assert_eq!(r.untagged, vec!["* STATUS INBOX (MESSAGES 2)"]);
    // The same with only non-synchronising literals, far past the cap: the session
    // ends before the command is complete (it is read 64 KiB at a time).
    let mut cmd = b"t3 APPEND INBOX".to_vec();
    for _ in 0..10 {
        cmd.extend_from_slice(format!(" {{{}+}}\r\n", m.len()).as_bytes());
        cmd.extend_from_slice(&m);
    }
    cmd.extend_from_slice(b"\r\n");
    c.try_send_raw(&cmd);
    let rest = c.read_to_close();
    assert!(
        rest.contains("* BYE [TOOBIG] Command larger than 100000 bytes"),
        "{rest}"
    );
    let mut c = env.login(ALICE);
    let r = c.cmd("STATUS INBOX (MESSAGES)");
    assert_eq!(r.untagged, vec!["* STATUS INBOX (MESSAGES 2)"]);
}

/// `limits.imap_login_timeout_secs`: a silent unauthenticated connection is logged out.
#[test]
fn login_timeout_logs_out() {
    let env = Env::start_with("[limits]\nimap_login_timeout_secs = 1\n");
    let mut c = env.connect();
    let started = std::time::Instant::now();
    let rest = c.read_to_close();
    assert_eq!(rest, "* BYE Autologout; idle for too long\r\n");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
}

/// `limits.imap_errors_before_disconnect`: the Nth bad command gets BYE.
#[test]
fn errors_before_disconnect() {
    let env = Env::start_with("[limits]\nimap_errors_before_disconnect = 3\n");
    let mut c = env.login(ALICE);
    c.cmd("FROBNICATE").bad();
    c.cmd("FETCH").bad();
    c.send_raw(b"t9 NONSENSE\r\n");
    let rest = c.read_to_close();
    assert!(rest.starts_with("t9 BAD "), "{rest}");
    assert!(
        rest.ends_with("* BYE Too many invalid commands\r\n"),
        "{rest}"
    );
}

/// `limits.imap_preauth_literal_size`: before login a literal over it is refused
/// without `+`; LITERAL+ is not honoured past 4096 (LITERAL-).
#[test]
fn preauth_literals() {
    let env = Env::start_with("[limits]\nimap_preauth_literal_size = 100\n");
    let mut c = env.connect();
    c.send_raw(b"a LOGIN {101}\r\n");
    let line = c.read_response_line();
    assert!(line.starts_with("a NO [TOOBIG]"), "{line}");
    c.send_raw(b"b LOGIN {4294967295}\r\n");
    let line = c.read_response_line();
    assert!(line.starts_with("b NO [TOOBIG]"), "{line}");
    // Within the limit: `+` and the login proceeds.
    c.send_raw(format!("c LOGIN {{{}}}\r\n", ALICE.0.len()).as_bytes());
    let line = c.read_response_line();
    assert!(line.starts_with("+ "), "{line}");
    c.send_raw(format!("{} {}\r\n", ALICE.0, ALICE.1).as_bytes());
    let r = c.read_until_tagged("c");
    r.ok();
}

/// One command cannot multiply work: FETCH names at most 64 body sections (repeats
/// count once), SEARCH at most 16 content keys, LIST patterns are bounded, and the
/// other-accounts namespaces are not names of one's own mailboxes.
#[test]
fn one_command_cannot_multiply_work() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.append("INBOX", "", b"Subject: x\r\n\r\nbody\r\n").ok();
    c.cmd("SELECT INBOX").ok();
    let many: Vec<String> = (0..65).map(|i| format!("BODY.PEEK[]<{i}.1>")).collect();
    let r = c.cmd(&format!("FETCH 1 ({})", many.join(" ")));
    r.bad();
    assert!(r.text.contains("At most 64 body sections"), "{r:?}");
    // The same section a thousand times is one section.
    let same = vec!["BODY.PEEK[]"; 1000].join(" ");
    let r = c.cmd(&format!("FETCH 1 ({same})"));
    r.ok();
    assert_eq!(r.lines("* 1 FETCH").len(), 1);
    assert_eq!(r.untagged[0].matches("BODY[]").count(), 1, "{r:?}");
    let keys = vec!["BODY x"; 17].join(" ");
    let r = c.cmd(&format!("SEARCH {keys}"));
    r.no();
    assert!(r.text.starts_with("[LIMIT]"), "{r:?}");
    c.cmd(&format!("SEARCH {}", vec!["BODY body"; 16].join(" ")))
        .ok();
    let r = c.cmd(&format!("LIST \"\" \"{}\"", "*".repeat(2000)));
    r.bad();
    let kw: Vec<String> = (0..65).map(|i| format!("k{i}")).collect();
    c.cmd(&format!("STORE 1 +FLAGS ({})", kw.join(" "))).no();
    c.cmd(&format!("STORE 1 +FLAGS ({})", kw[..64].join(" ")))
        .ok();
    c.cmd("CREATE \"Other Users/x\"").no();
    c.cmd("CREATE Shared").no();
}
