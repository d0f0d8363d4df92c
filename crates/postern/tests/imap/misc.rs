//! NOOP, ID (RFC 2971), NAMESPACE (RFC 2342), ENABLE (RFC 5161), QUOTA (RFC 9208),
//! LOGOUT, and commands given in the wrong state (RFC 9051 §3, §6).

use super::client::*;

#[test]
fn noop_in_every_state() {
    let env = Env::start();
    let mut c = env.connect();
    let r = c.cmd("NOOP");
    r.ok();
    assert_eq!(r.text, "NOOP completed");
    assert!(r.untagged.is_empty());
    c.login(ALICE.0, ALICE.1);
    c.cmd("NOOP").ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("NOOP");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:?}");
    // A message delivered meanwhile is announced by NOOP.
    let mut other = env.login(ALICE);
    other.append("INBOX", "", b"Subject: x\r\n\r\nx\r\n").ok();
    let r = c.cmd("NOOP");
    r.ok();
    assert!(r.has("* 1 EXISTS"), "{r:?}");
    c.cmd("NOOP now").bad();
}

#[test]
fn id() {
    let env = Env::start();
    let mut c = env.connect();
    let r = c.cmd("ID NIL");
    r.ok();
    assert_eq!(r.text, "ID completed");
    assert_eq!(
        r.untagged,
        ["* ID (\"name\" \"Postern\" \"vendor\" \"Postern\")"]
    );
    let r = c.cmd("ID (\"name\" \"Thunderbird\" \"version\" \"140.0\")");
    r.ok();
    assert_eq!(
        r.untagged,
        ["* ID (\"name\" \"Postern\" \"vendor\" \"Postern\")"]
    );
    c.cmd("ID (\"name\")").bad();
    c.cmd("ID").bad();
    c.cmd("ID name").bad();
    c.login(ALICE.0, ALICE.1);
    c.cmd("ID NIL").ok();
}

#[test]
fn namespace() {
    let env = Env::start();
    let mut c = env.connect();
    c.cmd("NAMESPACE").bad();
    c.login(ALICE.0, ALICE.1);
    let r = c.cmd("NAMESPACE");
    r.ok();
    // Personal, other users' and shared (RFC 2342; ACL, acl.rs).
    assert_eq!(
        r.untagged,
        ["* NAMESPACE ((\"\" \"/\")) ((\"Other Users/\" \"/\")) ((\"Shared/\" \"/\"))"]
    );
    assert_eq!(r.text, "NAMESPACE completed");
    c.cmd("NAMESPACE x").bad();
}

#[test]
fn enable() {
    let env = Env::start();
    let mut c = env.connect();
    let r = c.cmd("ENABLE CONDSTORE");
    r.bad();
    assert_eq!(r.text, "Command not valid before authentication");
    c.login(ALICE.0, ALICE.1);
    // Unknown capabilities are ignored (RFC 5161 §3.1).
    let r = c.cmd("ENABLE CONDSTORE X-UNKNOWN utf8=accept");
    r.ok();
    assert_eq!(r.text, "ENABLE completed");
    assert_eq!(r.untagged, ["* ENABLED CONDSTORE utf8=accept"]);
    let r = c.cmd("ENABLE X-UNKNOWN");
    r.ok();
    assert_eq!(r.untagged, ["* ENABLED"]);
    c.cmd("ENABLE").bad();
    // CONDSTORE is on: STORE answers carry MODSEQ (RFC 7162 §3.1).
    c.append("INBOX", "", b"Subject: x\r\n\r\nx\r\n").ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("STORE 1 +FLAGS (\\Seen)");
    assert!(r.lines("* 1 FETCH")[0].contains(" MODSEQ ("), "{r:?}");
    // Without it, they do not.
    let mut plain = env.login(ALICE);
    plain.cmd("SELECT INBOX").ok();
    let r = plain.cmd("STORE 1 +FLAGS (\\Flagged)");
    assert_eq!(r.untagged, ["* 1 FETCH (FLAGS (\\Seen \\Flagged))"]);
    // IMAP4rev2: no RECENT in SELECT any more.
    let mut d = env.login(ALICE);
    let r = d.cmd("ENABLE IMAP4rev2");
    assert_eq!(r.untagged, ["* ENABLED IMAP4rev2"]);
    let r = d.cmd("SELECT INBOX");
    assert!(!r.has("RECENT"), "{r:?}");
}

#[test]
fn quota_without_a_limit() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    // No limit, no quota root (RFC 9208 §4.3.2).
    let r = c.cmd("GETQUOTAROOT INBOX");
    r.ok();
    assert_eq!(r.text, "GETQUOTAROOT completed");
    assert_eq!(r.untagged, ["* QUOTAROOT INBOX"]);
    let r = c.cmd("GETQUOTA \"\"");
    r.no();
    assert_eq!(r.text, "[NONEXISTENT] No such quota root");
}

#[test]
fn quota_with_a_limit() {
    let env = Env::start();
    env.server.cli_ok(&["account", "quota", ALICE.0, "10M"], "");
    let mut c = env.login(ALICE);
    let msg = vec![b'x'; 3000];
    let mut m = b"Subject: big\r\n\r\n".to_vec();
    m.extend_from_slice(&msg);
    c.append("INBOX", "", &m).ok();
    let used = (m.len() as u64).div_ceil(1024);
    let r = c.cmd("GETQUOTAROOT inbox");
    r.ok();
    assert_eq!(
        r.untagged,
        [
            "* QUOTAROOT INBOX \"\"".to_string(),
            format!("* QUOTA \"\" (STORAGE {used} 10240)"),
        ]
    );
    let r = c.cmd("GETQUOTA \"\"");
    r.ok();
    assert_eq!(r.text, "GETQUOTA completed");
    assert_eq!(r.untagged, [format!("* QUOTA \"\" (STORAGE {used} 10240)")]);
    let r = c.cmd("GETQUOTA \"other\"");
    r.no();
    assert_eq!(r.text, "[NONEXISTENT] No such quota root");
    let r = c.cmd("GETQUOTAROOT nope");
    r.no();
    assert_eq!(r.text, "[NONEXISTENT] not found: mailbox nope");
    // bob's usage is his own.
    let mut b = env.login(BOB);
    let r = b.cmd("GETQUOTAROOT INBOX");
    assert_eq!(r.untagged, ["* QUOTAROOT INBOX"]);
}

#[test]
fn setquota_is_refused() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let r = c.cmd("SETQUOTA \"\" (STORAGE 1000000)");
    r.no();
    assert_eq!(r.text, "[NOPERM] Quotas are set by the administrator");
    c.cmd("SETQUOTA \"\"").bad();
    // Still no limit.
    let r = c.cmd("GETQUOTAROOT INBOX");
    assert_eq!(r.untagged, ["* QUOTAROOT INBOX"]);
}

#[test]
fn logout() {
    let env = Env::start();
    for logged_in in [false, true] {
        let mut c = if logged_in {
            env.login(ALICE)
        } else {
            env.connect()
        };
        let r = c.cmd("LOGOUT");
        r.ok();
        assert_eq!(r.untagged, ["* BYE Logging out"]);
        assert_eq!(r.text, "LOGOUT completed");
        assert!(c.closed());
    }
    let mut c = env.connect();
    c.cmd("LOGOUT now").bad();
    c.cmd("NOOP").ok();
}

#[test]
fn commands_in_the_wrong_state() {
    let env = Env::start();
    let mut c = env.connect();
    for cmd in [
        "SELECT INBOX",
        "EXAMINE INBOX",
        "CREATE x",
        "DELETE x",
        "RENAME x y",
        "SUBSCRIBE INBOX",
        "LSUB \"\" *",
        "STATUS INBOX (MESSAGES)",
        "APPEND INBOX {1+}\r\nx",
        "IDLE",
        "GETQUOTAROOT INBOX",
        "COMPRESS DEFLATE",
        "CLOSE",
        "FETCH 1 FLAGS",
        "UID SEARCH ALL",
    ] {
        let r = c.cmd(cmd);
        r.bad();
        assert_eq!(r.text, "Command not valid before authentication", "{cmd}");
    }
    // 15 of the 20 bad commands allowed: log in now.
    c.login(ALICE.0, ALICE.1);
    for cmd in [
        "CLOSE",
        "UNSELECT",
        "EXPUNGE",
        "FETCH 1 FLAGS",
        "UID FETCH 1 FLAGS",
        "STORE 1 +FLAGS (\\Seen)",
        "COPY 1 Trash",
        "MOVE 1 Trash",
        "SEARCH ALL",
        "UID EXPUNGE 1",
    ] {
        let r = c.cmd(cmd);
        r.bad();
        assert_eq!(r.text, "No mailbox selected", "{cmd}");
    }
    c.cmd("SELECT INBOX").ok();
    c.cmd("CLOSE").ok();
    c.cmd("CLOSE").bad();
}
