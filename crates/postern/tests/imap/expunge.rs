//! EXPUNGE and UID EXPUNGE (RFC 9051 §6.4.3, §6.4.9), and when another session learns
//! of an expunge (RFC 9051 §7.5.1: not during FETCH, STORE or SEARCH by sequence number).

use super::client::*;
use super::fixtures::*;

#[test]
fn expunge_answers_descending() {
    let env = Env::start();
    let mut c = alice_with(&env, 5);
    c.cmd("STORE 2,4,5 +FLAGS.SILENT (\\Deleted)").ok();
    let r = c.cmd("EXPUNGE");
    r.ok();
    // Each number is right at the moment it is sent.
    assert_eq!(
        r.untagged,
        vec!["* 5 EXPUNGE", "* 4 EXPUNGE", "* 2 EXPUNGE"]
    );
    let r = c.cmd("FETCH 1:* UID");
    assert_eq!(r.untagged, vec!["* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)"]);
    // Nothing deleted: OK, nothing said.
    let r = c.cmd("EXPUNGE");
    r.ok();
    assert!(r.untagged.is_empty());
    c.cmd("EXPUNGE 1").bad();
    c.cmd("UNSELECT").ok();
    c.cmd("EXPUNGE").bad();
}

#[test]
fn uid_expunge_only_the_named() {
    let env = Env::start();
    let mut c = alice_with(&env, 4);
    c.cmd("STORE 1:4 +FLAGS.SILENT (\\Deleted)").ok();
    let r = c.cmd("UID EXPUNGE 2:3,9");
    r.ok();
    assert_eq!(r.untagged, vec!["* 3 EXPUNGE", "* 2 EXPUNGE"]);
    let r = c.cmd("FETCH 1:* UID");
    assert_eq!(r.untagged, vec!["* 1 FETCH (UID 1)", "* 2 FETCH (UID 4)"]);
    c.cmd("UID EXPUNGE").bad();
    c.cmd("UID EXPUNGE x").bad();
    // QRESYNC: VANISHED instead.
    c.cmd("ENABLE QRESYNC").ok();
    let r = c.cmd("UID EXPUNGE 4");
    assert_eq!(r.untagged, vec!["* VANISHED 4"]);
}

#[test]
fn other_session_learns_expunge_only_when_allowed() {
    let env = Env::start();
    let mut c = alice_with(&env, 3);
    let mut o = env.login(ALICE);
    o.cmd("SELECT INBOX").ok();
    c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)").ok();
    c.cmd("EXPUNGE").ok();
    // FETCH, STORE and SEARCH by sequence number: no EXPUNGE; numbers stay as they
    // were (message 3 is still 3).
    let r = o.cmd("FETCH 3 UID");
    r.ok();
    assert!(r.untagged.iter().all(|l| !l.contains("EXPUNGE")), "{r:#?}");
    assert_eq!(fetch_line(&r, 3), "* 3 FETCH (UID 3)");
    let r = o.cmd("STORE 3 +FLAGS (\\Seen)");
    r.ok();
    assert!(r.untagged.iter().all(|l| !l.contains("EXPUNGE")), "{r:#?}");
    assert!(fetch_line(&r, 3).contains("\\Seen"), "{r:#?}");
    let r = o.cmd("SEARCH ALL");
    r.ok();
    assert!(r.untagged.iter().all(|l| !l.contains("EXPUNGE")), "{r:#?}");
    // The numbers are those of the view (3 is still 3); the expunged message has
    // nothing left to match.
    assert_eq!(r.lines("* SEARCH"), vec!["* SEARCH 1 3"]);
    // NOOP may announce it.
    let r = o.cmd("NOOP");
    assert_eq!(r.lines("* 2 EXPUNGE").len(), 1, "{r:#?}");
    let r = o.cmd("FETCH 1:* UID");
    assert_eq!(r.untagged, vec!["* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)"]);
}

#[test]
fn fetch_of_message_expunged_elsewhere() {
    let env = Env::start();
    let mut c = alice_with(&env, 2);
    let mut o = env.login(ALICE);
    o.cmd("SELECT INBOX").ok();
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok();
    c.cmd("EXPUNGE").ok();
    // The other session still shows message 1; fetching its content cannot succeed
    // silently as if nothing were there: OK or NO, never an invented message, and the
    // session goes on.
    let r = o.cmd("FETCH 1:2 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(r.status == "OK" || r.status == "NO", "{r:#?}");
    assert!(fetch_line(&r, 2).contains("Subject: m2"), "{r:#?}");
    assert!(r.untagged.iter().all(|l| !l.contains("EXPUNGE")), "{r:#?}");
    // UID FETCH may announce it.
    let r = o.cmd("UID FETCH 1:* UID");
    assert!(r.has("* 1 EXPUNGE"), "{r:#?}");
}

#[test]
fn pending_expunge_with_new_arrival_and_concurrent_expunge() {
    let env = Env::start();
    let mut c = alice_with(&env, 3);
    let mut o = env.login(ALICE);
    o.cmd("SELECT INBOX").ok();
    c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)").ok();
    c.cmd("EXPUNGE").ok();
    c.append("INBOX", "", b"Subject: m4\r\n\r\nx\r\n").ok();
    // FETCH by number: the arrival is announced, the expunge is not; message 2 keeps
    // its number, so the new one is 4.
    let r = o.cmd("FETCH 1:* UID");
    r.ok();
    assert!(r.has("* 4 EXISTS"), "{r:#?}");
    assert!(!r.untagged.iter().any(|l| l.contains("EXPUNGE")), "{r:#?}");
    let r = o.cmd("FETCH 4 UID");
    assert_eq!(r.untagged, vec!["* 4 FETCH (UID 4)"], "{r:#?}");
    // O marks 3 deleted and expunges: both expunges, highest first.
    o.cmd("STORE 3 +FLAGS.SILENT (\\Deleted)").ok();
    let r = o.cmd("EXPUNGE");
    r.ok();
    let ex: Vec<&String> = r
        .untagged
        .iter()
        .filter(|l| l.ends_with("EXPUNGE"))
        .collect();
    assert_eq!(ex, vec!["* 3 EXPUNGE", "* 2 EXPUNGE"], "{r:#?}");
    let r = o.cmd("FETCH 1:* UID");
    assert_eq!(r.untagged, vec!["* 1 FETCH (UID 1)", "* 2 FETCH (UID 4)"]);
    // C learns of O's expunge at NOOP with its own numbers.
    let r = c.cmd("NOOP");
    assert_eq!(r.lines("* 2 EXPUNGE").len(), 1, "{r:#?}");
    let r = c.cmd("FETCH 1:* UID");
    assert_eq!(r.untagged, vec!["* 1 FETCH (UID 1)", "* 2 FETCH (UID 4)"]);
}

#[test]
fn expunge_refused_read_only() {
    let env = Env::start();
    let mut c = alice_with(&env, 2);
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok();
    c.cmd("EXAMINE INBOX").ok();
    let r = c.cmd("EXPUNGE");
    r.no();
    assert!(r.text.starts_with("[READ-ONLY]"), "{r:?}");
    c.cmd("UID EXPUNGE 1").no();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("EXPUNGE");
    assert_eq!(r.untagged, vec!["* 1 EXPUNGE"]);
}
