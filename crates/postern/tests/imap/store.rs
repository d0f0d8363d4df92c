//! STORE and UID STORE (RFC 9051 §6.4.6; RFC 7162 §3.1.3 UNCHANGEDSINCE / MODSEQ).

use super::client::*;
use super::fixtures::*;

#[test]
fn store_forms() {
    let env = Env::start();
    let mut c = alice_with(&env, 3);
    let r = c.cmd("STORE 1 FLAGS (\\Seen \\Flagged)");
    r.ok();
    assert_eq!(r.untagged, vec!["* 1 FETCH (FLAGS (\\Seen \\Flagged))"]);
    let r = c.cmd("STORE 1 +FLAGS (\\Answered)");
    assert_eq!(
        r.untagged,
        vec!["* 1 FETCH (FLAGS (\\Seen \\Answered \\Flagged))"]
    );
    let r = c.cmd("STORE 1 -FLAGS (\\Seen)");
    assert_eq!(r.untagged, vec!["* 1 FETCH (FLAGS (\\Answered \\Flagged))"]);
    // .SILENT: no FETCH, but the change is made.
    let r = c.cmd("STORE 1:2 +FLAGS.SILENT (\\Draft)");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    let r = c.cmd("STORE 2 -FLAGS.SILENT (\\Draft)");
    assert!(r.untagged.is_empty(), "{r:#?}");
    let r = c.cmd("FETCH 1:2 FLAGS");
    assert_eq!(
        fetch_line(&r, 1),
        "* 1 FETCH (FLAGS (\\Answered \\Flagged \\Draft))"
    );
    assert_eq!(fetch_line(&r, 2), "* 2 FETCH (FLAGS ())");
    let r = c.cmd("STORE 1 FLAGS.SILENT ()");
    assert!(r.untagged.is_empty());
    assert_eq!(
        fetch_line(&c.cmd("FETCH 1 FLAGS"), 1),
        "* 1 FETCH (FLAGS ())"
    );
    // UID STORE includes UID.
    let r = c.cmd("UID STORE 3 +FLAGS (\\Deleted)");
    r.ok();
    assert_eq!(r.untagged, vec!["* 3 FETCH (UID 3 FLAGS (\\Deleted))"]);
    // A UID that does not exist: OK, nothing.
    let r = c.cmd("UID STORE 99 +FLAGS (\\Deleted)");
    r.ok();
    assert!(r.untagged.is_empty());
}

#[test]
fn keywords_and_recent() {
    let env = Env::start();
    let mut c = alice_with(&env, 2);
    let r = c.cmd("STORE 1 +FLAGS ($Work Junk)");
    r.ok();
    assert_eq!(r.untagged.last().unwrap(), "* 1 FETCH (FLAGS ($Work Junk))");
    // A new keyword extends FLAGS / PERMANENTFLAGS (RFC 9051 §7.3.5) at the latest on
    // re-select.
    let s = c.cmd("SELECT INBOX");
    assert!(
        s.untagged[0].contains("$Work") && s.untagged[0].contains("Junk"),
        "{s:#?}"
    );
    // Keywords are case-insensitive: removing $work removes $Work.
    let r = c.cmd("STORE 1 -FLAGS ($work)");
    assert_eq!(r.untagged.last().unwrap(), "* 1 FETCH (FLAGS (Junk))");
    // \Recent cannot be stored: it is ignored.
    let r = c.cmd("STORE 2 +FLAGS (\\Recent \\Seen)");
    r.ok();
    assert_eq!(r.untagged.last().unwrap(), "* 2 FETCH (FLAGS (\\Seen))");
    // Unknown system flag: BAD. Syntax errors: BAD.
    c.cmd("STORE 1 +FLAGS (\\Bogus)").bad();
    c.cmd("STORE 1 +FLAGS").bad();
    c.cmd("STORE 1 FLAGZ (\\Seen)").bad();
    c.cmd("STORE 1 +FLAGS (\\Seen").bad();
    c.cmd("STORE 9 +FLAGS (\\Seen)").bad();
    c.cmd("STORE 0 +FLAGS (\\Seen)").bad();
    // Nothing changed by the refused commands.
    assert_eq!(
        fetch_line(&c.cmd("FETCH 1 FLAGS"), 1),
        "* 1 FETCH (FLAGS (Junk))"
    );
}

#[test]
fn store_not_selected_and_read_only() {
    let env = Env::start();
    let mut c = alice_with(&env, 1);
    c.cmd("UNSELECT").ok();
    c.cmd("STORE 1 +FLAGS (\\Seen)").bad();
    c.cmd("EXAMINE INBOX").ok();
    let r = c.cmd("STORE 1 +FLAGS (\\Seen)");
    r.no();
}

#[test]
fn unchangedsince_and_modseq() {
    let env = Env::start();
    let mut c = alice_with(&env, 3);
    c.cmd("ENABLE CONDSTORE").ok();
    let r = c.cmd("FETCH 1:3 MODSEQ");
    let m: Vec<u64> = (1..=3)
        .map(|i| {
            code_value(&fetch_line(&r, i), "MODSEQ")
                .unwrap()
                .trim_start_matches('(')
                .parse()
                .unwrap()
        })
        .collect();
    // With CONDSTORE on, STORE answers carry MODSEQ, and the modseq grows.
    let r = c.cmd("STORE 1 +FLAGS (\\Seen)");
    let l = r.untagged.last().unwrap().clone();
    // RFC 7162 §3.2.4: UID and MODSEQ in every FETCH a STORE causes.
    assert!(
        l.starts_with("* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ ("),
        "{l}"
    );
    let m1: u64 = code_value(&l, "MODSEQ")
        .unwrap()
        .trim_start_matches('(')
        .parse()
        .unwrap();
    assert!(m1 > m[0] && m1 > m[2], "{m1} vs {m:?}");
    // UNCHANGEDSINCE below message 1's modseq: 1 fails ([MODIFIED 1]), 2 is stored.
    let r = c.cmd(&format!(
        "STORE 1:2 (UNCHANGEDSINCE {}) +FLAGS (\\Flagged)",
        m1 - 1
    ));
    r.ok();
    assert_eq!(r.text.split(']').next().unwrap(), "[MODIFIED 1", "{r:?}");
    assert!(
        r.untagged
            .iter()
            .any(|l| l.starts_with("* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (")),
        "{r:#?}"
    );
    assert!(
        !r.untagged.iter().any(|l| l.contains("\\Seen \\Flagged")),
        "{r:#?}"
    );
    // UID STORE: [MODIFIED] names UIDs.
    let r = c.cmd("UID STORE 1 (UNCHANGEDSINCE 1) -FLAGS (\\Seen)");
    assert!(r.text.starts_with("[MODIFIED 1]"), "{r:?}");
    // UNCHANGEDSINCE at the current modseq succeeds; .SILENT still reports MODSEQ
    // (RFC 7162 §3.1.3).
    let r = c.cmd(&format!(
        "STORE 1 (UNCHANGEDSINCE {m1}) +FLAGS.SILENT (\\Answered)"
    ));
    r.ok();
    assert!(!r.text.contains("MODIFIED"), "{r:?}");
    assert!(
        r.untagged
            .iter()
            .any(|l| l.starts_with("* 1 FETCH (") && l.contains("MODSEQ (")),
        "{r:#?}"
    );
    let r = c.cmd("FETCH 1 FLAGS");
    assert!(
        fetch_line(&r, 1).contains("FLAGS (\\Seen \\Answered)"),
        "{r:#?}"
    );
    // UNCHANGEDSINCE 0 is allowed (mod-sequence-valzer); every message has a higher
    // modseq, so the store fails for all.
    let r = c.cmd("STORE 3 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)");
    r.ok();
    assert!(r.text.starts_with("[MODIFIED 3]"), "{r:?}");
    c.cmd("STORE 3 (UNCHANGEDSINCE abc) +FLAGS (\\Seen)").bad();
    c.cmd("STORE 3 (BOGUS 1) +FLAGS (\\Seen)").bad();
}

#[test]
fn other_session_sees_flag_change_at_noop() {
    let env = Env::start();
    let mut c = alice_with(&env, 2);
    let mut o = env.login(ALICE);
    o.cmd("SELECT INBOX").ok();
    c.cmd("STORE 2 +FLAGS.SILENT (\\Flagged)").ok();
    let r = o.cmd("NOOP");
    r.ok();
    let f = r.lines("* 2 FETCH ");
    assert_eq!(f.len(), 1, "{r:#?}");
    assert!(f[0].contains("FLAGS (\\Flagged)"), "{f:?}");
    assert!(r.lines("* 1 FETCH").is_empty(), "{r:#?}");
    // Said once only.
    let r = o.cmd("NOOP");
    assert!(r.lines("* 2 FETCH").is_empty(), "{r:#?}");
}
