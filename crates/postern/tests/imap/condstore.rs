//! CONDSTORE and QRESYNC (RFC 7162): ENABLE, SELECT (CONDSTORE), FETCH CHANGEDSINCE,
//! SELECT (QRESYNC ...) with VANISHED (EARLIER), UID FETCH ... (CHANGEDSINCE n VANISHED).

use super::client::*;
use super::fixtures::*;

fn modseq_of(line: &str) -> u64 {
    code_value(line, "MODSEQ")
        .unwrap()
        .trim_start_matches('(')
        .parse()
        .unwrap()
}

fn highest(r: &Resp) -> u64 {
    let l = r.lines("* OK [HIGHESTMODSEQ ");
    assert_eq!(l.len(), 1, "{r:#?}");
    code_value(l[0], "HIGHESTMODSEQ").unwrap().parse().unwrap()
}

#[test]
fn enable_and_select_condstore() {
    let env = Env::start();
    let mut c = alice_with(&env, 3);
    let r = c.cmd("ENABLE CONDSTORE");
    r.ok();
    assert_eq!(r.untagged, vec!["* ENABLED CONDSTORE"]);
    let r = c.cmd("ENABLE QRESYNC");
    assert_eq!(r.untagged, vec!["* ENABLED QRESYNC"]);
    // Unknown capabilities are ignored.
    let r = c.cmd("ENABLE X-UNKNOWN");
    r.ok();
    assert_eq!(r.untagged, vec!["* ENABLED"]);
    c.cmd("ENABLE").bad();
    let mut n = env.login(ALICE);
    let r = n.cmd("SELECT INBOX (CONDSTORE)");
    r.ok();
    let h = highest(&r);
    // SELECT (CONDSTORE) enables CONDSTORE: a flag change made elsewhere arrives
    // with UID and MODSEQ (RFC 7162 §3.1); so does a STORE answer here.
    let r = n.cmd("FETCH 1 (FLAGS MODSEQ)");
    assert!(modseq_of(&fetch_line(&r, 1)) <= h);
    c.cmd("STORE 2 +FLAGS.SILENT (\\Flagged)").ok();
    let r = n.cmd("NOOP");
    let l = fetch_line(&r, 2);
    assert!(
        l.starts_with("* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ("),
        "{l}"
    );
    assert!(modseq_of(&l) > h);
    let r = n.cmd("STORE 3 +FLAGS (\\Seen)");
    assert!(fetch_line(&r, 3).contains(" MODSEQ ("), "{r:#?}");
    let h = modseq_of(&fetch_line(&r, 3));
    n.cmd("SELECT INBOX (BOGUS)").bad();
    let r = n.cmd("STATUS INBOX (HIGHESTMODSEQ)");
    assert_eq!(r.untagged[0], format!("* STATUS INBOX (HIGHESTMODSEQ {h})"));
}

#[test]
fn fetch_changedsince() {
    let env = Env::start();
    let mut c = alice_with(&env, 4);
    let r = c.cmd("SELECT INBOX (CONDSTORE)");
    let h = highest(&r);
    c.cmd("STORE 2,4 +FLAGS.SILENT (\\Seen)").ok();
    let r = c.cmd(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {h})"));
    r.ok();
    assert_eq!(r.untagged.len(), 2, "{r:#?}");
    assert!(
        fetch_line(&r, 2).starts_with("* 2 FETCH (FLAGS (\\Seen) MODSEQ ("),
        "{r:#?}"
    );
    assert!(modseq_of(&fetch_line(&r, 4)) > h);
    let r = c.cmd(&format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h})"));
    assert!(
        fetch_line(&r, 2).starts_with("* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ("),
        "{r:#?}"
    );
    // CHANGEDSINCE at the new highest: nothing.
    let r = c.cmd("STATUS INBOX (HIGHESTMODSEQ)");
    let h2: u64 = code_value(&r.untagged[0], "HIGHESTMODSEQ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(h2 > h);
    let r = c.cmd(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {h2})"));
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    // Syntax errors and VANISHED without UID/QRESYNC.
    c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE)").bad();
    c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE x)").bad();
    c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
        .bad();
    // MODSEQ search.
    let r = c.cmd(&format!("SEARCH MODSEQ {}", h + 1));
    r.ok();
    let l = r.lines("* SEARCH")[0];
    assert!(l.starts_with("* SEARCH 2 4 (MODSEQ "), "{l}");
}

#[test]
fn qresync_select_and_vanished() {
    let env = Env::start();
    let mut c = alice_with(&env, 5);
    let r = c.cmd("SELECT INBOX");
    let v = code_value(r.lines("* OK [UIDVALIDITY ")[0], "UIDVALIDITY").unwrap();
    let h = highest(&r);
    // Changes after h: flags of 1, expunge of 3 and 4.
    c.cmd("STORE 1 +FLAGS.SILENT (\\Flagged)").ok();
    c.cmd("STORE 3:4 +FLAGS.SILENT (\\Deleted)").ok();
    c.cmd("EXPUNGE").ok();
    let mut q = env.login(ALICE);
    q.cmd("SELECT INBOX (QRESYNC (1 1))").bad();
    q.cmd("ENABLE QRESYNC").ok();
    let r = q.cmd(&format!("SELECT INBOX (QRESYNC ({v} {h}))"));
    r.ok();
    assert_eq!(
        r.lines("* VANISHED (EARLIER) 3:4"),
        vec!["* VANISHED (EARLIER) 3:4"],
        "{r:#?}"
    );
    let f = r.lines("* 1 FETCH ");
    assert_eq!(f.len(), 1, "{r:#?}");
    assert!(
        f[0].starts_with("* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ ("),
        "{f:?}"
    );
    assert!(r.lines("* 2 FETCH").is_empty(), "{r:#?}");
    assert_eq!(r.lines("* 3 EXISTS").len(), 1);
    // With known UIDs: only those reported.
    let r = q.cmd(&format!("EXAMINE INBOX (QRESYNC ({v} {h} 1:3))"));
    assert_eq!(
        r.lines("* VANISHED (EARLIER) 3"),
        vec!["* VANISHED (EARLIER) 3"],
        "{r:#?}"
    );
    // Wrong UIDVALIDITY: a plain SELECT.
    let r = q.cmd(&format!(
        "SELECT INBOX (QRESYNC ({} {h}))",
        v.parse::<u32>().unwrap().wrapping_add(1)
    ));
    r.ok();
    assert!(
        r.lines("* VANISHED").is_empty() && r.lines("* 1 FETCH").is_empty(),
        "{r:#?}"
    );
    // UID FETCH (CHANGEDSINCE VANISHED).
    q.cmd("SELECT INBOX").ok();
    let r = q.cmd(&format!(
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h} VANISHED)"
    ));
    r.ok();
    assert_eq!(r.untagged[0], "* VANISHED (EARLIER) 3:4", "{r:#?}");
    assert!(
        fetch_line(&r, 1).starts_with("* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ ("),
        "{r:#?}"
    );
    assert_eq!(r.untagged.len(), 2, "{r:#?}");
    // Only in the set's range.
    let r = q.cmd(&format!(
        "UID FETCH 4:5 (FLAGS) (CHANGEDSINCE {h} VANISHED)"
    ));
    assert_eq!(r.untagged, vec!["* VANISHED (EARLIER) 4"], "{r:#?}");
    // VANISHED needs CHANGEDSINCE and UID.
    q.cmd("UID FETCH 1:* (FLAGS) (VANISHED)").bad();
    q.cmd(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {h} VANISHED)"))
        .bad();
    // Expunges seen by a QRESYNC session: VANISHED, not EXPUNGE.
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok();
    c.cmd("EXPUNGE").ok();
    let r = q.cmd("NOOP");
    assert_eq!(r.lines("* VANISHED"), vec!["* VANISHED 1"], "{r:#?}");
}

#[test]
fn implicit_seen_under_condstore_reports_uid_and_modseq() {
    let env = Env::start();
    let mut c = alice_with(&env, 2);
    c.cmd("ENABLE CONDSTORE").ok();
    let r = c.cmd("FETCH 1 BODY[TEXT]");
    r.ok();
    let l = fetch_line(&r, 1);
    assert!(
        l.contains("FLAGS (\\Seen") && l.contains("UID 1") && l.contains("MODSEQ ("),
        "{l}"
    );
    // FLAGS asked for explicitly: MODSEQ still follows.
    let r = c.cmd("FETCH 2 (FLAGS BODY[TEXT])");
    let l = fetch_line(&r, 2);
    assert!(
        l.contains("FLAGS (\\Seen") && l.contains("UID 2") && l.contains("MODSEQ ("),
        "{l}"
    );
}

/// RFC 7162 §3.2.4: once CONDSTORE is enabled, every untagged FETCH caused by a STORE
/// carries UID and MODSEQ — a plain STORE's too.
#[test]
fn store_answer_under_condstore_includes_uid() {
    let env = Env::start();
    let mut c = alice_with(&env, 2);
    c.cmd("ENABLE CONDSTORE").ok();
    let r = c.cmd("STORE 2 +FLAGS (\\Flagged)");
    r.ok();
    let l = fetch_line(&r, 2);
    assert!(l.contains("UID 2") && l.contains("MODSEQ ("), "{l}");
}

/// RFC 7162 §3.1: the first CONDSTORE enabling command issued with a mailbox selected
/// reports its HIGHESTMODSEQ.
#[test]
fn implicit_enable_reports_highestmodseq() {
    let env = Env::start();
    let mut c = alice_with(&env, 2);
    let r = c.cmd("STATUS INBOX (HIGHESTMODSEQ)");
    let h = code_value(&r.untagged[0], "HIGHESTMODSEQ").unwrap();
    let mut n = env.login(ALICE);
    n.cmd("SELECT INBOX").ok();
    let r = n.cmd("FETCH 1 (MODSEQ)");
    r.ok();
    assert_eq!(
        r.lines("* OK [HIGHESTMODSEQ "),
        vec![format!("* OK [HIGHESTMODSEQ {h}] Highest").as_str()],
        "{r:#?}"
    );
    // Once only.
    let r = n.cmd("FETCH 1 (MODSEQ)");
    assert!(r.lines("* OK [HIGHESTMODSEQ").is_empty(), "{r:#?}");
    // By SEARCH MODSEQ.
    let mut m = env.login(ALICE);
    m.cmd("SELECT INBOX").ok();
    let r = m.cmd("SEARCH MODSEQ 1");
    assert_eq!(r.lines("* OK [HIGHESTMODSEQ ").len(), 1, "{r:#?}");
}

#[test]
fn condstore_select_errors() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let r = c.cmd("SELECT Nowhere (CONDSTORE)");
    r.no();
    assert!(r.text.starts_with("[NONEXISTENT]"), "{r:?}");
    c.cmd("ENABLE QRESYNC").ok();
    c.cmd("SELECT Nowhere (QRESYNC (1 1))").no();
    c.cmd("SELECT INBOX (QRESYNC)").bad();
    c.cmd("SELECT INBOX (QRESYNC (1))").bad();
    c.cmd("SELECT INBOX (QRESYNC (0 1))").bad();
    c.cmd("SELECT INBOX (CONDSTORE").bad();
    c.cmd("SELECT INBOX (QRESYNC (1 1))").ok();
}
