//! STATUS (RFC 9051 §6.3.11) with every item: MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED
//! SIZE (RFC 8438) HIGHESTMODSEQ (RFC 7162) MAILBOXID (RFC 8474) APPENDLIMIT (RFC 7889)
//! RECENT (IMAP4rev1) DELETED-STORAGE (RFC 9208).

use super::client::*;

const M1: &[u8] = b"From: a@example.org\r\nSubject: one\r\n\r\nfirst\r\n";
const M2: &[u8] = b"From: a@example.org\r\nSubject: two\r\n\r\nsecond message\r\n";
const M3: &[u8] = b"From: a@example.org\r\nSubject: three\r\n\r\nthird\r\n";

/// The value after `item ` in a response line.
fn value<'a>(line: &'a str, item: &str) -> &'a str {
    let at = line
        .find(&format!("{item} "))
        .unwrap_or_else(|| panic!("{item} in {line}"));
    let rest = &line[at + item.len() + 1..];
    let end = rest.find([' ', ']', ')']).unwrap_or(rest.len());
    if rest.starts_with('(') {
        let close = rest.find(')').unwrap();
        return &rest[..=close];
    }
    &rest[..end]
}

#[test]
fn every_item() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.cmd("CREATE box").ok();
    c.append("box", "\\Seen", M1).ok();
    c.append("box", "\\Deleted", M2).ok();
    c.append("box", "", M3).ok();
    // What SELECT says, to compare with.
    let sel = c.cmd("EXAMINE box");
    sel.ok();
    let line = |p: &str| sel.untagged.iter().find(|l| l.contains(p)).unwrap().clone();
    let uidvalidity = value(&line("[UIDVALIDITY "), "[UIDVALIDITY").to_string();
    let modseq = value(&line("[HIGHESTMODSEQ "), "[HIGHESTMODSEQ").to_string();
    let mailboxid = value(&line("[MAILBOXID "), "[MAILBOXID").to_string();
    c.cmd("CLOSE").ok();

    let r = c.cmd(
        "STATUS box (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ \
         MAILBOXID APPENDLIMIT RECENT DELETED-STORAGE)",
    );
    r.ok();
    assert_eq!(r.text, "STATUS completed");
    let size = M1.len() + M2.len() + M3.len();
    assert_eq!(
        r.untagged,
        [format!(
            "* STATUS box (MESSAGES 3 UIDNEXT 4 UIDVALIDITY {uidvalidity} UNSEEN 2 \
             DELETED 1 SIZE {size} HIGHESTMODSEQ {modseq} MAILBOXID {mailboxid} \
             APPENDLIMIT 52428800 RECENT 0 DELETED-STORAGE 1)"
        )]
    );
    // Items come in the order asked, once each.
    let r = c.cmd("STATUS box (UNSEEN MESSAGES)");
    assert_eq!(r.untagged, ["* STATUS box (UNSEEN 2 MESSAGES 3)"]);
    // A change moves HIGHESTMODSEQ on.
    c.cmd("SELECT box").ok();
    c.cmd("STORE 3 +FLAGS (\\Seen)").ok();
    c.cmd("UNSELECT").ok();
    let r = c.cmd("STATUS box (UNSEEN HIGHESTMODSEQ)");
    let after: u64 = value(&r.untagged[0], "HIGHESTMODSEQ").parse().unwrap();
    assert!(after > modseq.parse::<u64>().unwrap(), "{r:?} vs {modseq}");
    assert!(
        r.untagged[0].starts_with("* STATUS box (UNSEEN 1 "),
        "{r:?}"
    );
}

#[test]
fn status_of_an_empty_mailbox_and_inbox_in_any_case() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let r = c.cmd("STATUS inbox (MESSAGES UIDNEXT UNSEEN DELETED SIZE RECENT)");
    r.ok();
    assert_eq!(
        r.untagged,
        ["* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UNSEEN 0 DELETED 0 SIZE 0 RECENT 0)"]
    );
}

#[test]
fn status_of_the_selected_mailbox_is_allowed() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.append("INBOX", "", M1).ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("STATUS INBOX (MESSAGES)");
    r.ok();
    assert_eq!(r.untagged, ["* STATUS INBOX (MESSAGES 1)"]);
}

#[test]
fn status_no_and_bad() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let r = c.cmd("STATUS nope (MESSAGES)");
    r.no();
    assert_eq!(r.text, "[NONEXISTENT] not found: mailbox nope");
    assert!(r.untagged.is_empty(), "{r:?}");
    let r = c.cmd("STATUS \"a*\" (MESSAGES)");
    r.no();
    c.cmd("STATUS INBOX ()").bad();
    c.cmd("STATUS INBOX (BOGUS)").bad();
    c.cmd("STATUS INBOX MESSAGES").bad();
    c.cmd("STATUS INBOX").bad();
    c.cmd("STATUS").bad();
    let mut u = env.connect();
    let r = u.cmd("STATUS INBOX (MESSAGES)");
    r.bad();
    assert_eq!(r.text, "Command not valid before authentication");
}
