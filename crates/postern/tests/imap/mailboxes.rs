//! CREATE, DELETE, RENAME (RFC 9051 §6.3.4–6.3.6), CREATE-SPECIAL-USE (RFC 6154 §3) and
//! mailbox names on the wire: modified UTF-7 for IMAP4rev1 clients, UTF-8 after
//! `ENABLE UTF8=ACCEPT` (RFC 6855) or `ENABLE IMAP4rev2`.

use super::client::*;

const MSG: &[u8] = b"From: a@example.org\r\nSubject: m\r\n\r\nbody\r\n";

/// The names `LIST "" "*"` shows, as on the wire, sorted.
fn names(c: &mut Client) -> Vec<String> {
    let r = c.cmd("LIST \"\" \"*\"");
    r.ok();
    let mut v: Vec<String> = r
        .untagged
        .iter()
        .map(|l| {
            let (_, name) = l.split_once(") \"/\" ").unwrap_or_else(|| panic!("{l}"));
            name.to_string()
        })
        .collect();
    v.sort();
    v
}

const DEFAULTS: [&str; 6] = ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"];

fn with_defaults(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = DEFAULTS
        .iter()
        .chain(extra.iter())
        .map(|s| s.to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn create_with_parents() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let r = c.cmd("CREATE projects/2026/q4");
    r.ok();
    assert_eq!(r.text, "CREATE completed");
    assert_eq!(
        names(&mut c),
        with_defaults(&["projects", "projects/2026", "projects/2026/q4"])
    );
    // A trailing separator only says children will follow (RFC 9051 §6.3.4).
    c.cmd("CREATE later/").ok();
    assert!(names(&mut c).contains(&"later".to_string()));
    // Existing names, INBOX in any case among them.
    for existing in ["projects", "projects/2026", "inbox", "INBOX", "later/"] {
        let r = c.cmd(&format!("CREATE {existing}"));
        r.no();
        assert!(r.text.starts_with("[ALREADYEXISTS] "), "{existing}: {r:?}");
    }
    // INBOX may have children.
    c.cmd("CREATE INBOX/sub").ok();
    c.cmd("SELECT projects/2026/q4").ok();
}

#[test]
fn create_bad_names() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    // Wildcards: not even an atom...
    c.cmd("CREATE a*b").bad();
    c.cmd("CREATE a%b").bad();
    // ...and quoted, refused by name rules.
    for name in ["\"a*b\"", "\"a%b\"", "\"/a\"", "\"a//b\"", "\"\""] {
        let r = c.cmd(&format!("CREATE {name}"));
        assert!(r.status == "NO" || r.status == "BAD", "{name}: {r:?}");
    }
    let r = c.cmd("CREATE \"a*b\"");
    r.no();
    assert_eq!(r.text, "[CANNOT] mailbox: contains a wildcard (* or %)");
    let r = c.cmd("CREATE \"a//b\"");
    r.no();
    assert_eq!(r.text, "[CANNOT] mailbox: empty hierarchy level");
    // Too deep and too long.
    let deep = vec!["x"; 33].join("/");
    c.cmd(&format!("CREATE \"{deep}\"")).no();
    let long = "x".repeat(513);
    c.cmd(&format!("CREATE \"{long}\"")).no();
    // A control character: not modified UTF-7 for an IMAP4rev1 client...
    c.cmd_bytes(b"CREATE \"a\x01b\"").bad();
    c.cmd_bytes(b"CREATE {3+}\r\na\x01b").bad();
    // ...and refused by name rules once names are UTF-8, as are invisible format
    // characters (a right-to-left override would disguise a name).
    c.cmd("ENABLE UTF8=ACCEPT").ok();
    let r = c.cmd_bytes(b"CREATE {3+}\r\na\x01b");
    r.no();
    assert_eq!(
        r.text,
        "[CANNOT] mailbox: contains a control or invisible character"
    );
    let r = c.cmd_bytes("CREATE \"a\u{202e}b\"".as_bytes());
    r.no();
    assert_eq!(
        r.text,
        "[CANNOT] mailbox: contains a control or invisible character"
    );
    c.cmd_bytes(b"CREATE \"a\rb\"").bad();
    assert_eq!(names(&mut c), with_defaults(&[]));
}

#[test]
fn create_special_use() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let r = c.cmd("CREATE Starred (USE (\\Flagged))");
    r.ok();
    assert_eq!(r.text, "CREATE completed");
    let r = c.cmd("LIST \"\" Starred");
    r.ok();
    assert_eq!(
        r.untagged,
        ["* LIST (\\HasNoChildren \\Flagged) \"/\" Starred"]
    );
    // Taken: \Flagged now, \Archive by the default Archive mailbox.
    for (name, attr) in [("Starred2", "\\Flagged"), ("Old", "\\Archive")] {
        let r = c.cmd(&format!("CREATE {name} (USE ({attr}))"));
        r.no();
        assert_eq!(r.text, "[USEATTR] That special use is taken");
    }
    // Unknown, \Inbox, or more than one.
    for attr in ["\\Important", "\\Inbox", "\\All \\Flagged", "\\Nonsense"] {
        let r = c.cmd(&format!("CREATE Other (USE ({attr}))"));
        r.no();
        assert_eq!(
            r.text, "[USEATTR] Unsupported special-use attribute",
            "{attr}"
        );
    }
    // Nothing was created by the refusals.
    assert_eq!(names(&mut c), with_defaults(&["Starred"]));
    // Syntax.
    c.cmd("CREATE X USE (\\All)").bad();
    c.cmd("CREATE X (USE \\All)").bad();
    // Once Starred is gone its special use is free again.
    c.cmd("DELETE Starred").ok();
    c.cmd("CREATE Starred2 (USE (\\flagged))").ok();
}

#[test]
fn delete() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.cmd("CREATE gone").ok();
    c.append("gone", "", MSG).ok();
    let r = c.cmd("DELETE gone");
    r.ok();
    assert_eq!(r.text, "DELETE completed");
    assert_eq!(names(&mut c), with_defaults(&[]));
    let r = c.cmd("STATUS gone (MESSAGES)");
    r.no();
    assert_eq!(r.text, "[NONEXISTENT] not found: mailbox gone");
    // Re-created, it is empty.
    c.cmd("CREATE gone").ok();
    let r = c.cmd("STATUS gone (MESSAGES)");
    assert_eq!(r.untagged, ["* STATUS gone (MESSAGES 0)"]);

    let r = c.cmd("DELETE nope");
    r.no();
    assert_eq!(r.text, "[NONEXISTENT] not found: mailbox nope");
    for inbox in ["INBOX", "inbox", "\"InBoX\""] {
        let r = c.cmd(&format!("DELETE {inbox}"));
        r.no();
        assert_eq!(r.text, "[CANNOT] refused: INBOX cannot be deleted");
    }
    c.cmd("DELETE").bad();
    c.cmd("DELETE a b").bad();
}

#[test]
fn delete_with_children_is_refused() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.cmd("CREATE parent/child").ok();
    // Like Dovecot: the children would be left under a name LIST "%" cannot show.
    let r = c.cmd("DELETE parent");
    r.no();
    assert_eq!(
        r.text,
        "[CANNOT] refused: mailbox has children; delete them first"
    );
    c.cmd("DELETE parent/child").ok();
    c.cmd("DELETE parent").ok();
    assert_eq!(names(&mut c), with_defaults(&[]));
}

#[test]
fn delete_the_selected_mailbox() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.cmd("CREATE sel").ok();
    c.cmd("SELECT sel").ok();
    c.cmd("DELETE sel").ok();
    // No longer selected.
    let r = c.cmd("FETCH 1:* FLAGS");
    r.bad();
    assert_eq!(r.text, "No mailbox selected");
}

#[test]
fn rename_with_children() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.cmd("CREATE a/b/c").ok();
    c.cmd("CREATE ab").ok();
    c.append("a/b", "", MSG).ok();
    let r = c.cmd("RENAME a x");
    r.ok();
    assert_eq!(r.text, "RENAME completed");
    // `ab` shares a prefix but is not a child.
    assert_eq!(names(&mut c), with_defaults(&["ab", "x", "x/b", "x/b/c"]));
    let r = c.cmd("STATUS x/b (MESSAGES)");
    assert_eq!(r.untagged, ["* STATUS x/b (MESSAGES 1)"]);
    // Into a new hierarchy: missing parents are created.
    c.cmd("RENAME ab deep/er/ab").ok();
    assert_eq!(
        names(&mut c),
        with_defaults(&["deep", "deep/er", "deep/er/ab", "x", "x/b", "x/b/c"])
    );
}

#[test]
fn rename_refusals() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.cmd("CREATE a/b").ok();
    let r = c.cmd("RENAME nope other");
    r.no();
    assert_eq!(r.text, "[NONEXISTENT] not found: mailbox nope");
    let r = c.cmd("RENAME a Sent");
    r.no();
    assert_eq!(r.text, "[ALREADYEXISTS] already exists: mailbox Sent");
    let r = c.cmd("RENAME Sent inbox");
    r.no();
    assert_eq!(r.text, "[ALREADYEXISTS] already exists: mailbox INBOX");
    let r = c.cmd("RENAME a a/b/c");
    r.no();
    assert_eq!(
        r.text,
        "[CANNOT] refused: a mailbox cannot be renamed below itself"
    );
    c.cmd("RENAME a \"x*\"").no();
    c.cmd("RENAME a").bad();
    c.cmd("RENAME a x*").bad();
    assert_eq!(names(&mut c), with_defaults(&["a", "a/b"]));
}

#[test]
fn rename_inbox_moves_messages_and_keeps_inbox() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.append("INBOX", "\\Seen", MSG).ok();
    c.append("INBOX", "", MSG).ok();
    let r = c.cmd("RENAME INBOX \"Old Mail\"");
    r.ok();
    let r = c.cmd("STATUS INBOX (MESSAGES UNSEEN)");
    assert_eq!(r.untagged, ["* STATUS INBOX (MESSAGES 0 UNSEEN 0)"]);
    let r = c.cmd("STATUS \"Old Mail\" (MESSAGES UNSEEN)");
    assert_eq!(r.untagged, ["* STATUS \"Old Mail\" (MESSAGES 2 UNSEEN 1)"]);
    assert_eq!(names(&mut c), with_defaults(&["\"Old Mail\""]));
    // INBOX still takes mail.
    c.append("INBOX", "", MSG).ok();
    let r = c.cmd("RENAME inbox INBOX/below");
    r.no();
    assert_eq!(
        r.text,
        "[CANNOT] refused: INBOX cannot be renamed below itself"
    );
}

#[test]
fn modified_utf7_names_for_imap4rev1_clients() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    // "Entwürfe" and a name with `&`.
    c.cmd("CREATE Entw&APw-rfe").ok();
    c.cmd("CREATE \"R&-D\"").ok();
    assert_eq!(names(&mut c), with_defaults(&["Entw&APw-rfe", "R&-D"]));
    let r = c.cmd("STATUS Entw&APw-rfe (MESSAGES)");
    assert_eq!(r.untagged, ["* STATUS Entw&APw-rfe (MESSAGES 0)"]);
    // Not modified UTF-7: raw UTF-8, an unterminated shift, a non-canonical one ("a"
    // encoded), a bare `&`.
    for bad in ["\"Entwürfe\"", "&APw", "&AGE-", "\"a&b\""] {
        let r = c.cmd_bytes(format!("CREATE {bad}").as_bytes());
        r.bad();
        assert!(
            r.text.starts_with("mailbox name is not modified UTF-7"),
            "{bad}: {r:?}"
        );
    }
    c.cmd_bytes("LIST \"\" \"*ü*\"".as_bytes()).bad();
    // A UTF-8 client sees the same mailboxes in UTF-8.
    let mut u = env.login(ALICE);
    let r = u.cmd("ENABLE UTF8=ACCEPT");
    assert_eq!(r.untagged, ["* ENABLED UTF8=ACCEPT"]);
    assert_eq!(names(&mut u), with_defaults(&["\"Entwürfe\"", "R&D"]));
}

#[test]
fn utf8_names_after_enable() {
    for enable in ["UTF8=ACCEPT", "IMAP4rev2"] {
        let env = Env::start();
        let mut c = env.login(ALICE);
        c.cmd(&format!("ENABLE {enable}")).ok();
        let r = c.cmd_bytes("CREATE \"Übersicht/März\"".as_bytes());
        r.ok();
        // `&…-` is no longer special: this is a name of its own.
        c.cmd("CREATE &APw-").ok();
        assert_eq!(
            names(&mut c),
            with_defaults(&["&APw-", "\"Übersicht\"", "\"Übersicht/März\""]),
            "{enable}"
        );
        let r = c.cmd_bytes("STATUS \"Übersicht/März\" (MESSAGES)".as_bytes());
        assert_eq!(r.untagged, ["* STATUS \"Übersicht/März\" (MESSAGES 0)"]);
        c.cmd_bytes("RENAME \"Übersicht/März\" \"Übersicht/Mai\"".as_bytes())
            .ok();
        // NFC: the decomposed form names the same mailbox.
        let r = c.cmd_bytes("CREATE \"U\u{308}bersicht\"".as_bytes());
        r.no();
        assert!(r.text.starts_with("[ALREADYEXISTS]"), "{r:?}");
        // An IMAP4rev1 client sees modified UTF-7; `&` is written `&-`.
        let mut old = env.login(ALICE);
        assert_eq!(
            names(&mut old),
            with_defaults(&["&-APw-", "&ANw-bersicht", "&ANw-bersicht/Mai"])
        );
    }
}

#[test]
fn selected_mailbox_deleted_by_another_session() {
    let env = Env::start();
    let mut a = env.login(ALICE);
    a.cmd("CREATE shared").ok();
    a.append("shared", "", MSG).ok();
    a.cmd("SELECT shared").ok();
    let mut b = env.login(ALICE);
    b.cmd("DELETE shared").ok();
    // Like Dovecot: the session cannot go on in a mailbox that is gone; BYE means
    // the connection ends (RFC 9051 §7.1.5), so it does.
    let tag = a.tag();
    a.send_raw(format!("{tag} NOOP\r\n").as_bytes());
    assert_eq!(
        a.read_response_line(),
        "* BYE [UNAVAILABLE] The selected mailbox was deleted"
    );
    // The command's own completion may follow; then the connection closes.
    let mut rest = Vec::new();
    while let Some(l) = a.try_read_line() {
        rest.push(l);
    }
    assert!(
        rest.is_empty() || rest == [format!("{tag} OK NOOP completed")],
        "{rest:?}"
    );
    // Renamed under us is fine: same mailbox, new name.
    let mut a = env.login(ALICE);
    a.cmd("CREATE moving").ok();
    a.append("moving", "", MSG).ok();
    a.cmd("SELECT moving").ok();
    b.cmd("RENAME moving moved").ok();
    a.cmd("NOOP").ok();
    let r = a.cmd("FETCH 1 FLAGS");
    r.ok();
    assert_eq!(r.untagged, ["* 1 FETCH (FLAGS ())"]);
}
