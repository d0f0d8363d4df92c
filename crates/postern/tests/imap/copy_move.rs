//! COPY, UID COPY, MOVE, UID MOVE (RFC 9051 §6.4.7, §6.4.8; RFC 4315 COPYUID; RFC 6851;
//! RFC 7162 §3.2.10 VANISHED under QRESYNC).

use super::client::*;
use super::fixtures::*;

#[test]
fn copy_keeps_flags_and_answers_copyuid() {
    let env = Env::start();
    let mut c = alice_with(&env, 3);
    c.cmd("CREATE Saved").ok();
    c.cmd("STORE 2 +FLAGS ($Work \\Flagged)").ok();
    let r = c.cmd("COPY 2:3 Saved");
    r.ok();
    let v = code_value(&r.text, "[COPYUID").unwrap();
    assert_eq!(r.text, format!("[COPYUID {v} 2:3 1:2] COPY completed"));
    // The source is unchanged; no EXPUNGE.
    assert!(r.untagged.is_empty(), "{r:#?}");
    let r = c.cmd("UID COPY 1,3 Saved");
    assert!(
        r.text.starts_with(&format!("[COPYUID {v} 1,3 3:4]")),
        "{r:?}"
    );
    // UIDs that do not exist: OK without COPYUID.
    let r = c.cmd("UID COPY 50:60 Saved");
    r.ok();
    assert!(!r.text.contains("COPYUID"), "{r:?}");
    let s = c.cmd("SELECT Saved");
    assert_eq!(s.lines("* 4 EXISTS").len(), 1, "{s:#?}");
    assert!(
        s.untagged
            .iter()
            .any(|l| l.starts_with("* OK [UIDVALIDITY ") && l.contains(&v)),
        "{s:#?}"
    );
    let r = c.cmd("FETCH 1:4 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(
        fetch_line(&r, 1).contains("FLAGS (\\Flagged $Work)"),
        "{r:#?}"
    );
    assert!(fetch_line(&r, 1).contains("Subject: m2"), "{r:#?}");
    assert!(fetch_line(&r, 2).contains("FLAGS ()"), "{r:#?}");
    assert!(fetch_line(&r, 4).contains("Subject: m3"), "{r:#?}");
}

#[test]
fn copy_errors() {
    let env = Env::start();
    let mut c = alice_with(&env, 2);
    let r = c.cmd("COPY 1 Nowhere");
    r.no();
    assert!(r.text.starts_with("[TRYCREATE]"), "{r:?}");
    let r = c.cmd("MOVE 1 Nowhere");
    r.no();
    assert!(r.text.starts_with("[TRYCREATE]"), "{r:?}");
    // Nothing moved.
    assert_eq!(c.cmd("NOOP").lines("* 1 EXPUNGE").len(), 0);
    c.cmd("COPY 3 Trash").bad();
    c.cmd("MOVE 0 Trash").bad();
    c.cmd("COPY 1").bad();
    c.cmd("COPY Trash").bad();
    c.cmd("UNSELECT").ok();
    c.cmd("COPY 1 Trash").bad();
    c.cmd("MOVE 1 Trash").bad();
}

#[test]
fn move_answers_copyuid_then_expunge() {
    let env = Env::start();
    let mut c = alice_with(&env, 4);
    c.cmd("CREATE Saved").ok();
    c.cmd("STORE 2 +FLAGS.SILENT (\\Answered)").ok();
    let r = c.cmd("MOVE 2:3 Saved");
    r.ok();
    // COPYUID in an untagged OK before the EXPUNGEs (RFC 6851 §4.3).
    assert!(r.untagged[0].starts_with("* OK [COPYUID "), "{r:#?}");
    assert!(r.untagged[0].contains(" 2:3 1:2]"), "{r:#?}");
    // Descending sequence numbers, each right when sent: 3 then 2.
    assert_eq!(&r.untagged[1..], &["* 3 EXPUNGE", "* 2 EXPUNGE"], "{r:#?}");
    let r = c.cmd("FETCH 1:* UID");
    assert_eq!(r.untagged, vec!["* 1 FETCH (UID 1)", "* 2 FETCH (UID 4)"]);
    // UID MOVE.
    let r = c.cmd("UID MOVE 4 Saved");
    r.ok();
    assert!(r.untagged[0].contains(" 4 3]"), "{r:#?}");
    assert_eq!(r.untagged[1], "* 2 EXPUNGE");
    let s = c.cmd("SELECT Saved");
    assert_eq!(s.lines("* 3 EXISTS").len(), 1);
    assert!(fetch_line(&c.cmd("FETCH 1 FLAGS"), 1).contains("\\Answered"));
}

#[test]
fn move_under_qresync_says_vanished() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    for i in 1..=3 {
        c.append(
            "INBOX",
            "",
            &msg(
                "a@example.org",
                &format!("q{i}"),
                "Tue, 24 Nov 2026 10:00:00 +0000",
                "x",
            ),
        )
        .ok();
    }
    c.cmd("ENABLE QRESYNC").ok();
    c.cmd("SELECT INBOX").ok();
    c.cmd("CREATE Saved").ok();
    let r = c.cmd("MOVE 1,3 Saved");
    r.ok();
    assert!(r.untagged[0].starts_with("* OK [COPYUID "), "{r:#?}");
    assert_eq!(r.lines("* VANISHED 1,3").len(), 1, "{r:#?}");
    assert!(r.untagged.iter().all(|l| !l.ends_with("EXPUNGE")), "{r:#?}");
}

#[test]
fn move_out_of_examine_is_refused() {
    let env = Env::start();
    let mut c = alice_with(&env, 1);
    c.cmd("CREATE Saved").ok();
    c.cmd("EXAMINE INBOX").ok();
    c.cmd("MOVE 1 Saved").no();
    c.cmd("SELECT Saved").ok();
    assert_eq!(
        c.cmd("STATUS INBOX (MESSAGES)").untagged,
        vec!["* STATUS INBOX (MESSAGES 1)"]
    );
}

#[test]
fn copy_and_move_within_the_selected_mailbox() {
    let env = Env::start();
    let mut c = alice_with(&env, 2);
    let r = c.cmd("COPY 1 INBOX");
    r.ok();
    assert!(r.text.contains(" 1 3]"), "{r:?}");
    let r = c.cmd("NOOP");
    let _ = r;
    let r = c.cmd("FETCH 1:* UID");
    assert_eq!(
        r.untagged,
        vec![
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 2)",
            "* 3 FETCH (UID 3)"
        ],
        "{r:#?}"
    );
    // MOVE to the same mailbox: a new UID, the old one expunged.
    let r = c.cmd("UID MOVE 2 INBOX");
    r.ok();
    assert!(r.untagged[0].contains(" 2 4]"), "{r:#?}");
    assert!(r.has("* 2 EXPUNGE"), "{r:#?}");
    let r = c.cmd("UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    r.ok();
    let uids: Vec<&str> = r
        .untagged
        .iter()
        .filter_map(|l| l.split("UID ").nth(1)?.split(' ').next())
        .collect();
    assert_eq!(uids, vec!["1", "3", "4"], "{r:#?}");
    assert!(r.untagged[2].contains("Subject: m2"), "{r:#?}");
}

/// MOVE does not grow the account: it must work at a full quota (Dovecot moves
/// without a quota check).
#[test]
fn move_at_full_quota() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let m = msg(
        "x@example.org",
        "big",
        "Tue, 24 Nov 2026 10:00:00 +0000",
        &"b".repeat(1200),
    );
    c.append("INBOX", "", &m).ok();
    env.server.cli_ok(&["account", "quota", ALICE.0, "2K"], "");
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("COPY 1 Trash");
    r.no();
    assert!(r.text.starts_with("[OVERQUOTA]"), "{r:?}");
    let r = c.cmd("MOVE 1 Trash");
    r.ok();
    assert!(r.has("* 1 EXPUNGE"), "{r:#?}");
    assert_eq!(
        c.cmd("STATUS Trash (MESSAGES)").untagged,
        vec!["* STATUS Trash (MESSAGES 1)"]
    );
}
