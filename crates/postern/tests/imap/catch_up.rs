//! How a selected session catches up with changes made elsewhere: incrementally, from
//! the store's per-mailbox delta after the view's highest modseq (RFC 9051 §7.5: EXISTS,
//! EXPUNGE, FETCH FLAGS), after its own STORE, EXPUNGE and APPEND as well. After any mix
//! of changes the view must be the one a fresh SELECT gives.

use super::client::*;
use super::fixtures::*;

fn m(i: usize) -> Vec<u8> {
    msg(
        "Bob <bob@example.org>",
        &format!("n{i}"),
        "Tue, 24 Nov 2026 10:00:00 +0000",
        &format!("new body {i}"),
    )
}

/// The view as FETCH shows it, for comparison with a fresh session's (without
/// `\Recent`, which only the session that saw a message arrive shows).
fn view(c: &mut Client) -> Vec<String> {
    let r = c.cmd("FETCH 1:* (UID FLAGS)");
    r.ok();
    r.lines("* ")
        .iter()
        .map(|s| s.replace(" \\Recent", "").replace("\\Recent", ""))
        .collect()
}

fn fresh_view(env: &Env) -> Vec<String> {
    let mut f = env.login(ALICE);
    f.cmd("SELECT INBOX").ok();
    view(&mut f)
}

#[test]
fn other_sessions_append_expunge_and_flags() {
    let env = Env::start();
    let mut c = alice_with(&env, 5);
    let mut o = env.login(ALICE);
    o.cmd("SELECT INBOX").ok();
    o.cmd("STORE 2 +FLAGS.SILENT (\\Flagged)").ok();
    o.cmd("STORE 4 +FLAGS.SILENT (\\Deleted)").ok();
    o.cmd("EXPUNGE").ok();
    o.append("INBOX", "\\Seen", &m(6)).ok();
    let r = c.cmd("NOOP");
    r.ok();
    assert_eq!(r.lines("* 4 EXPUNGE").len(), 1, "{r:#?}");
    assert_eq!(r.lines("* 5 EXISTS").len(), 1, "{r:#?}");
    assert!(r.has("* 2 FETCH (UID 2 FLAGS (\\Flagged))"), "{r:#?}");
    // Nothing more to say the second time.
    let r = c.cmd("NOOP");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    let v = view(&mut c);
    assert_eq!(
        v,
        vec![
            "* 1 FETCH (UID 1 FLAGS ())",
            "* 2 FETCH (UID 2 FLAGS (\\Flagged))",
            "* 3 FETCH (UID 3 FLAGS ())",
            "* 4 FETCH (UID 5 FLAGS ())",
            "* 5 FETCH (UID 6 FLAGS (\\Seen))",
        ]
    );
    assert_eq!(v, fresh_view(&env));
}

/// Our own STORE answers with our flags and announces the other session's change from
/// the same delta, and neither is announced again.
#[test]
fn own_store_after_other_changes() {
    let env = Env::start();
    let mut c = alice_with(&env, 4);
    let mut o = env.login(ALICE);
    o.cmd("SELECT INBOX").ok();
    o.cmd("STORE 3 +FLAGS.SILENT (\\Answered $Work)").ok();
    o.append("INBOX", "", &m(5)).ok();
    let r = c.cmd("STORE 1 +FLAGS (\\Seen)");
    r.ok();
    assert_eq!(fetch_line(&r, 1), "* 1 FETCH (FLAGS (\\Seen))");
    assert!(
        r.has("* 3 FETCH (UID 3 FLAGS (\\Answered $Work))"),
        "{r:#?}"
    );
    assert_eq!(r.lines("* 5 EXISTS").len(), 1, "{r:#?}");
    // Our own change is not announced back, the other one not twice.
    let r = c.cmd("NOOP");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    // The keyword is known to the view now.
    let r = c.cmd("FETCH 3 FLAGS");
    assert!(r.has("$Work"), "{r:#?}");
    assert_eq!(view(&mut c), fresh_view(&env));
    // UID STORE: the other session sees it once.
    c.cmd("UID STORE 2 +FLAGS.SILENT (\\Draft)").ok();
    let r = o.cmd("NOOP");
    assert!(r.has("* 1 FETCH (UID 1 FLAGS (\\Seen))"), "{r:#?}");
    assert!(r.has("* 2 FETCH (UID 2 FLAGS (\\Draft))"), "{r:#?}");
    assert!(
        r.lines("* 5 EXISTS").is_empty(),
        "its own APPEND told it: {r:#?}"
    );
    let r = o.cmd("NOOP");
    assert!(r.untagged.is_empty(), "{r:#?}");
    assert_eq!(view(&mut o), fresh_view(&env));
}

/// Expunges that may not be announced yet (FETCH/STORE/SEARCH by sequence number) wait
/// across several catch-ups and are all announced by the next command that may.
#[test]
fn pending_expunges_accumulate() {
    let env = Env::start();
    let mut c = alice_with(&env, 5);
    let mut o = env.login(ALICE);
    o.cmd("SELECT INBOX").ok();
    o.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok();
    o.cmd("EXPUNGE").ok();
    let r = c.cmd("FETCH 1 UID");
    assert!(r.untagged.iter().all(|l| !l.contains("EXPUNGE")), "{r:#?}");
    o.cmd("UID STORE 4 +FLAGS.SILENT (\\Deleted)").ok();
    o.cmd("UID EXPUNGE 4").ok();
    o.append("INBOX", "", &m(6)).ok();
    let r = c.cmd("FETCH 5 UID");
    r.ok();
    assert!(r.untagged.iter().all(|l| !l.contains("EXPUNGE")), "{r:#?}");
    assert_eq!(r.lines("* 6 EXISTS").len(), 1, "{r:#?}");
    assert_eq!(fetch_line(&r, 5), "* 5 FETCH (UID 5)");
    // Both now, highest first.
    let r = c.cmd("NOOP");
    r.ok();
    let exp: Vec<&str> = r
        .untagged
        .iter()
        .filter(|l| l.ends_with("EXPUNGE"))
        .map(|s| s.as_str())
        .collect();
    assert_eq!(exp, vec!["* 4 EXPUNGE", "* 1 EXPUNGE"]);
    assert_eq!(view(&mut c), fresh_view(&env));
    // Under QRESYNC the same as VANISHED.
    c.cmd("ENABLE QRESYNC").ok();
    o.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok();
    o.cmd("EXPUNGE").ok();
    let r = c.cmd("NOOP");
    assert_eq!(r.untagged, vec!["* VANISHED 2"], "{r:#?}");
}

/// A message added and expunged between two catch-ups was never shown: nothing to say.
#[test]
fn added_and_expunged_in_between_is_silent() {
    let env = Env::start();
    let mut c = alice_with(&env, 2);
    let mut o = env.login(ALICE);
    o.cmd("SELECT INBOX").ok();
    o.append("INBOX", "\\Deleted", &m(3)).ok();
    o.cmd("EXPUNGE").ok();
    let r = c.cmd("NOOP");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    assert_eq!(view(&mut c), fresh_view(&env));
    // Our own EXPUNGE takes in a \Deleted set elsewhere just before it.
    o.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)").ok();
    let r = c.cmd("EXPUNGE");
    r.ok();
    assert_eq!(r.lines("* 2 EXPUNGE").len(), 1, "{r:#?}");
    assert_eq!(view(&mut c), fresh_view(&env));
}
