//! The basic path a client walks: login, list, select, fetch, logout.

use super::client::*;

const MSG: &[u8] = b"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: Hello\r\nMessage-ID: <m1@example.org>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nHi Alice\r\n";

#[test]
fn login_select_fetch_logout() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    assert!(
        c.greeting.starts_with("* OK [CAPABILITY IMAP4rev2"),
        "{}",
        c.greeting
    );
    let r = c.append("INBOX", "", MSG);
    r.ok();
    assert!(r.text.starts_with("[APPENDUID "), "{r:?}");
    let r = c.cmd("SELECT INBOX");
    r.ok();
    assert!(r.has("* 1 EXISTS"), "{r:?}");
    let r = c.cmd("FETCH 1 (UID FLAGS BODY[])");
    r.ok();
    let f = r.lines("* 1 FETCH");
    assert_eq!(f.len(), 1);
    assert!(
        f[0].contains("Subject: Hello") && f[0].contains("Hi Alice"),
        "{f:?}"
    );
    let r = c.cmd("LOGOUT");
    r.ok();
    assert!(r.has("* BYE"));
}
