//! SELECT, EXAMINE, CLOSE and UNSELECT (RFC 9051 §6.3.2, §6.3.3, §6.4.1, §6.4.2; RFC
//! 3501 §6.3.1 for IMAP4rev1 clients).

use super::client::*;
use super::fixtures::*;

/// Three messages: 1 \Seen, 2 unseen, 3 with keyword $Important.
fn three(env: &Env) -> Client {
    let mut c = env.login(ALICE);
    c.append("INBOX", "\\Seen", PLAIN).ok();
    c.append("INBOX", "", MULTI).ok();
    c.append("INBOX", "$Important", PLAIN).ok();
    c
}

#[test]
fn select_answers_every_item_imap4rev1() {
    let env = Env::start();
    let mut c = three(&env);
    let r = c.cmd("SELECT INBOX");
    r.ok();
    assert_eq!(r.text, "[READ-WRITE] SELECT completed");
    let u = &r.untagged;
    assert_eq!(
        u[0],
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)"
    );
    assert_eq!(r.lines("* 3 EXISTS").len(), 1, "{r:#?}");
    // IMAP4rev1 still has RECENT and [UNSEEN n] (the first unseen message).
    assert_eq!(
        r.lines("* ")
            .iter()
            .filter(|l| l.ends_with(" RECENT"))
            .count(),
        1
    );
    assert_eq!(r.lines("* OK [UNSEEN 2]").len(), 1, "{r:#?}");
    let pf = r.lines("* OK [PERMANENTFLAGS ");
    assert_eq!(pf.len(), 1);
    assert!(
        pf[0].starts_with(
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important \\*)]"
        ),
        "{pf:?}"
    );
    let v = r.lines("* OK [UIDVALIDITY ");
    assert_eq!(v.len(), 1);
    assert!(
        code_value(v[0], "UIDVALIDITY")
            .unwrap()
            .parse::<u32>()
            .unwrap()
            > 0
    );
    assert_eq!(r.lines("* OK [UIDNEXT 4]").len(), 1, "{r:#?}");
    let hm = r.lines("* OK [HIGHESTMODSEQ ");
    assert_eq!(hm.len(), 1);
    assert!(
        code_value(hm[0], "HIGHESTMODSEQ")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 3
    );
    let id = r.lines("* OK [MAILBOXID (");
    assert_eq!(id.len(), 1, "{r:#?}");
    // No LIST for IMAP4rev1 clients.
    assert!(r.lines("* LIST").is_empty(), "{r:#?}");
    // MAILBOXID is the same as STATUS reports.
    let s = c.cmd("STATUS INBOX (MAILBOXID UIDNEXT MESSAGES)");
    s.ok();
    let want = code_value(id[0], "MAILBOXID").unwrap();
    assert!(
        s.untagged[0].contains(&format!("MAILBOXID {want}")),
        "{s:#?} vs {want}"
    );
}

#[test]
fn select_imap4rev2_sends_list_not_recent_or_unseen() {
    let env = Env::start();
    let mut c = three(&env);
    c.cmd("ENABLE IMAP4rev2").ok();
    let r = c.cmd("SELECT INBOX");
    r.ok();
    assert!(
        r.lines("* ").iter().all(|l| !l.ends_with(" RECENT")),
        "{r:#?}"
    );
    assert!(r.lines("* OK [UNSEEN").is_empty(), "{r:#?}");
    let list = r.lines("* LIST ");
    assert_eq!(list.len(), 1, "{r:#?}");
    assert!(list[0].ends_with(" \"/\" INBOX"), "{list:?}");
    assert_eq!(r.lines("* 3 EXISTS").len(), 1);
    assert_eq!(r.lines("* OK [UIDNEXT 4]").len(), 1);
}

#[test]
fn examine_is_read_only() {
    let env = Env::start();
    let mut c = three(&env);
    let r = c.cmd("EXAMINE INBOX");
    r.ok();
    assert_eq!(r.text, "[READ-ONLY] EXAMINE completed");
    assert_eq!(r.lines("* OK [PERMANENTFLAGS ()]").len(), 1, "{r:#?}");
    assert_eq!(r.lines("* 3 EXISTS").len(), 1);
    c.cmd("STORE 2 +FLAGS (\\Deleted)").no();
    c.cmd("UID STORE 1 +FLAGS (\\Flagged)").no();
    c.cmd("EXPUNGE").no();
    c.cmd("UID EXPUNGE 1:*").no();
    c.cmd("MOVE 1 Trash").no();
    // Nothing changed.
    let f = c.cmd("FETCH 1:3 FLAGS");
    f.ok();
    assert_eq!(fetch_line(&f, 1), "* 1 FETCH (FLAGS (\\Seen))");
    assert_eq!(fetch_line(&f, 2), "* 2 FETCH (FLAGS ())");
    // COPY out of a read-only mailbox is fine.
    c.cmd("CREATE Saved").ok();
    c.cmd("COPY 1 Saved").ok();
}

#[test]
fn select_missing_mailbox_is_no_and_leaves_nothing_selected() {
    let env = Env::start();
    let mut c = three(&env);
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("SELECT Nonexistent");
    r.no();
    assert!(r.text.starts_with("[NONEXISTENT]"), "{r:?}");
    // RFC 9051 §6.3.2: a failed SELECT leaves no mailbox selected.
    c.cmd("FETCH 1 FLAGS").bad();
    c.cmd("EXAMINE Nonexistent").no();
    c.cmd("SELECT INBOX").ok();
    c.cmd("FETCH 1 FLAGS").ok();
    // Syntax errors.
    c.cmd("SELECT").bad();
    c.cmd("SELECT INBOX extra").bad();
    c.cmd("EXAMINE").bad();
}

#[test]
fn close_expunges_deleted_unselect_does_not() {
    let env = Env::start();
    let mut c = three(&env);
    c.cmd("SELECT INBOX").ok();
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok();
    let r = c.cmd("UNSELECT");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    c.cmd("FETCH 1 FLAGS").bad();
    let r = c.cmd("SELECT INBOX");
    assert_eq!(r.lines("* 3 EXISTS").len(), 1, "UNSELECT expunged: {r:#?}");
    // CLOSE expunges silently (no untagged EXPUNGE, RFC 9051 §6.4.1).
    let r = c.cmd("CLOSE");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    c.cmd("FETCH 1 FLAGS").bad();
    let r = c.cmd("SELECT INBOX");
    assert_eq!(
        r.lines("* 2 EXISTS").len(),
        1,
        "CLOSE did not expunge: {r:#?}"
    );
    // CLOSE after EXAMINE expunges nothing.
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok();
    c.cmd("EXAMINE INBOX").ok();
    c.cmd("CLOSE").ok();
    let r = c.cmd("SELECT INBOX");
    assert_eq!(r.lines("* 2 EXISTS").len(), 1, "{r:#?}");
    // Not selected: BAD; arguments: BAD.
    c.cmd("CLOSE").ok();
    c.cmd("CLOSE").bad();
    c.cmd("UNSELECT").bad();
    c.cmd("SELECT INBOX").ok();
    c.cmd("UNSELECT bogus").bad();
    c.cmd("CLOSE bogus").bad();
}

#[test]
fn reselect_under_qresync_says_closed() {
    let env = Env::start();
    let mut c = three(&env);
    c.cmd("ENABLE QRESYNC").ok();
    let r = c.cmd("SELECT INBOX");
    r.ok();
    assert!(r.lines("* OK [CLOSED]").is_empty(), "{r:#?}");
    let r = c.cmd("EXAMINE INBOX");
    r.ok();
    // [CLOSED] comes first, before anything about the new mailbox (RFC 7162 §3.2.11).
    assert!(r.untagged[0].starts_with("* OK [CLOSED]"), "{r:#?}");
}
