//! ACL (RFC 4314) against the real server: SETACL/DELETEACL/GETACL/LISTRIGHTS/MYRIGHTS,
//! other users' and shared mailboxes (RFC 2342 namespaces `Other Users/` and `Shared/`),
//! the rights each command needs (RFC 4314 §4), no existence leak for mailboxes the
//! caller has no right on (IDOR), and the ledger entries of a delegate's reads.

use super::client::*;
use super::fixtures::*;

const CAROL: (&str, &str) = ("carol@example.com", "carol-password");
/// alice's `Projects` as bob and carol see it.
const SHARED: &str = "\"Other Users/alice@example.com/Projects\"";

fn env3() -> Env {
    let env = Env::start();
    env.server
        .cli_ok(&["account", "add", CAROL.0], format!("{}\n", CAROL.1));
    env
}

/// alice, logged in, with `Projects` holding two messages (PLAIN, MULTI), `rights` for
/// bob on it (none when empty).
fn alice_shares(env: &Env, rights: &str) -> Client {
    let mut a = env.login(ALICE);
    a.cmd("CREATE Projects").ok();
    a.append("Projects", "", PLAIN).ok();
    a.append("Projects", "", MULTI).ok();
    if !rights.is_empty() {
        a.cmd(&format!("SETACL Projects bob@example.com {rights}"))
            .ok();
    }
    a
}

/// `LIST "" "*"` as (attributes, name) pairs.
fn list(c: &mut Client) -> Vec<(String, String)> {
    let r = c.cmd("LIST \"\" \"*\"");
    r.ok();
    r.lines("* LIST ")
        .iter()
        .map(|l| {
            let rest = l.strip_prefix("* LIST (").unwrap();
            let (attrs, name) = rest.split_once(") \"/\" ").unwrap();
            (attrs.to_string(), name.to_string())
        })
        .collect()
}

/// The FLAGS of message `seq` in the selected mailbox, as written.
fn flags(c: &mut Client, seq: u32) -> String {
    let r = c.cmd(&format!("FETCH {seq} FLAGS"));
    r.ok();
    let l = fetch_line(&r, seq);
    let at = l.find("FLAGS (").unwrap() + 7;
    l[at..at + l[at..].find(')').unwrap()].to_string()
}

#[test]
fn capability_and_namespace() {
    let env = Env::start();
    let mut c = env.login(BOB);
    let r = c.cmd("CAPABILITY");
    r.ok();
    let caps = r.lines("* CAPABILITY")[0];
    assert!(
        caps.contains(" ACL") && caps.contains(" RIGHTS=texk"),
        "{caps}"
    );
    let r = c.cmd("NAMESPACE");
    r.ok();
    assert_eq!(
        r.untagged,
        vec!["* NAMESPACE ((\"\" \"/\")) ((\"Other Users/\" \"/\")) ((\"Shared/\" \"/\"))"]
    );
}

#[test]
fn lookup_read_is_read_only_and_reads_are_in_the_ledger() {
    let env = Env::start();
    let mut a = alice_shares(&env, "lr");
    let mut b = env.login(BOB);
    let l = list(&mut b);
    assert!(
        l.contains(&("\\Noselect \\HasChildren".into(), "\"Other Users\"".into())),
        "{l:?}"
    );
    assert!(
        l.contains(&(
            "\\Noselect \\HasChildren".into(),
            "\"Other Users/alice@example.com\"".into()
        )),
        "{l:?}"
    );
    assert!(
        l.contains(&("\\HasNoChildren".into(), SHARED.into())),
        "{l:?}"
    );
    // Nothing else of alice's.
    assert_eq!(l.iter().filter(|(_, n)| n.contains("alice")).count(), 2);
    let r = b.cmd(&format!("SELECT {SHARED}"));
    r.ok();
    assert_eq!(r.text, "[READ-ONLY] SELECT completed");
    assert!(r.has("* 2 EXISTS"), "{r:?}");
    assert!(r.has("[PERMANENTFLAGS ()]"), "{r:?}");
    let r = b.cmd("FETCH 1 BODY[]");
    r.ok();
    assert_eq!(
        literal_after(&fetch_line(&r, 1), "BODY[]")
            .unwrap()
            .as_bytes(),
        PLAIN
    );
    // Read-only: no implicit \Seen, no STORE, no EXPUNGE.
    assert!(!flags(&mut b, 1).contains("\\Seen"));
    b.cmd("STORE 1 +FLAGS (\\Flagged)").no();
    b.cmd("EXPUNGE").no();
    b.cmd("SEARCH ALL").ok();
    // The ledger: bob, as a delegate, over IMAP, read alice's mailbox.
    let r = a.cmd("STATUS Projects (MAILBOXID)");
    let id = code_value(&r.untagged[0], "MAILBOXID").unwrap();
    let mailbox = format!("mailbox:{}", id.trim_start_matches("(M"));
    let log = audit(&env);
    let read: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" message.read ") && l.contains(&mailbox))
        .collect();
    assert_eq!(read.len(), 1, "{log}");
    assert!(
        read[0].contains("bob@example.com(delegate) via imap")
            && read[0].contains("on alice@example.com ok")
            && read[0].contains(&format!("[{mailbox} uid:1]")),
        "{read:?}"
    );
    assert!(
        log.lines().any(|l| l.contains(" message.search ")
            && l.contains("bob@example.com(delegate)")
            && l.contains(&mailbox)),
        "{log}"
    );
    // The grant itself, with before/after, by alice.
    assert!(
        log.lines().any(|l| l.contains(" mailbox.acl ")
            && l.contains("alice@example.com(owner)")
            && l.contains("grantee:bob@example.com")),
        "{log}"
    );
    // EXAMINE too; STATUS works with r.
    b.cmd(&format!("EXAMINE {SHARED}")).ok();
    let r = b.cmd(&format!("STATUS {SHARED} (MESSAGES)"));
    r.ok();
    assert_eq!(r.untagged, vec![format!("* STATUS {SHARED} (MESSAGES 2)")]);
}

/// Bob has no right: every command gets the answer it gets for a mailbox that does not
/// exist, names aside (no existence leak; RFC 4314 §6).
#[test]
fn no_rights_looks_like_nonexistent() {
    let env = Env::start();
    let _a = alice_shares(&env, "");
    let mut b = env.login(BOB);
    b.append("INBOX", "", PLAIN).ok();
    let existing = [
        "Other Users/alice@example.com/Projects",
        "Other Users/alice@example.com/INBOX",
    ];
    let missing = [
        "Other Users/alice@example.com/Nope",
        "Other Users/nobody@example.com/INBOX",
    ];
    let commands: &[&str] = &[
        "SELECT \"{}\"",
        "EXAMINE \"{}\"",
        "STATUS \"{}\" (MESSAGES)",
        "GETACL \"{}\"",
        "MYRIGHTS \"{}\"",
        "LISTRIGHTS \"{}\" bob@example.com",
        "SETACL \"{}\" bob@example.com lr",
        "DELETEACL \"{}\" bob@example.com",
        "DELETE \"{}\"",
        "RENAME \"{}\" \"Other Users/alice@example.com/Renamed\"",
        "SUBSCRIBE \"{}\"",
        "CREATE \"{}/child\"",
        "GETQUOTAROOT \"{}\"",
    ];
    let answer = |b: &mut Client, cmd: &str, name: &str| {
        let r = b.cmd(&cmd.replace("{}", name));
        assert!(r.untagged.is_empty(), "{cmd} {name}: {r:?}");
        format!("{} {}", r.status, r.text.replace(name, "<name>"))
    };
    for cmd in commands {
        let want = answer(&mut b, cmd, missing[0]);
        assert!(want.starts_with("NO "), "{cmd}: {want}");
        for name in existing.iter().chain(&missing[1..]) {
            assert_eq!(answer(&mut b, cmd, name), want, "{cmd} {name}");
        }
    }
    // APPEND and COPY say TRYCREATE alike.
    b.cmd("SELECT INBOX").ok();
    for name in existing.iter().chain(&missing) {
        let r = b.append(name, "", PLAIN);
        r.no();
        assert_eq!(r.text, "[TRYCREATE] No such mailbox", "{name}");
        let r = b.cmd(&format!("COPY 1 \"{name}\""));
        r.no();
        assert_eq!(r.text, "[TRYCREATE] No such mailbox", "{name}");
    }
    // LIST shows nothing of alice's.
    assert!(list(&mut b).iter().all(|(_, n)| !n.contains("alice")));
    let r = b.cmd("LIST \"Other Users/\" \"*\"");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:?}");
}

#[test]
fn insert_only_appends_but_cannot_select() {
    let env = Env::start();
    let mut a = alice_shares(&env, "i");
    let mut b = env.login(BOB);
    // Not listed (no `l`), but APPEND works; flags need s/w/t and are dropped.
    assert!(list(&mut b).iter().all(|(_, n)| !n.contains("alice")));
    let r = b.append(
        "Other Users/alice@example.com/Projects",
        "\\Seen \\Flagged",
        PLAIN,
    );
    r.ok();
    assert!(r.text.starts_with("[APPENDUID "), "{r:?}");
    let r = b.cmd(&format!("SELECT {SHARED}"));
    r.no();
    b.cmd(&format!("STATUS {SHARED} (MESSAGES)")).no();
    let r = b.cmd(&format!("MYRIGHTS {SHARED}"));
    r.ok();
    assert_eq!(r.untagged, vec![format!("* MYRIGHTS {SHARED} i")]);
    a.cmd("SELECT Projects").ok();
    assert_eq!(flags(&mut a, 3), "");
    // And the ledger names bob as a delegate appending to alice's mailbox.
    let log = audit(&env);
    assert!(
        log.lines().any(|l| l.contains(" message.append ")
            && l.contains("bob@example.com(delegate)")
            && l.contains("on alice@example.com")),
        "{log}"
    );
}

#[test]
fn flag_rights_decide_what_store_changes() {
    let env = Env::start();
    let mut a = alice_shares(&env, "lrs");
    let mut b = env.login(BOB);
    // s only: read-write, only \Seen is permanent; other flags silently ignored.
    let r = b.cmd(&format!("SELECT {SHARED}"));
    r.ok();
    assert_eq!(r.text, "[READ-WRITE] SELECT completed");
    assert!(r.has("[PERMANENTFLAGS (\\Seen)]"), "{r:?}");
    b.cmd("STORE 1 +FLAGS (\\Seen \\Flagged)").ok();
    assert_eq!(flags(&mut b, 1), "\\Seen");
    // Implicit \Seen with s.
    b.cmd("FETCH 2 BODY[]").ok();
    assert_eq!(flags(&mut b, 2), "\\Seen");
    let r = b.cmd("EXPUNGE");
    r.no();
    assert!(r.text.starts_with("[NOPERM] "), "{r:?}");

    // w and t without s: \Seen stays as it is, whatever STORE asks.
    a.cmd("SETACL Projects bob@example.com lrwt").ok();
    let r = b.cmd(&format!("SELECT {SHARED}"));
    assert!(
        r.has("[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Draft \\*)]"),
        "{r:?}"
    );
    b.cmd("STORE 1 +FLAGS (\\Deleted \\Flagged)").ok();
    assert_eq!(flags(&mut b, 1), "\\Seen \\Flagged \\Deleted");
    b.cmd("STORE 1 -FLAGS (\\Seen)").ok();
    assert!(flags(&mut b, 1).contains("\\Seen"));
    b.cmd("STORE 1 FLAGS (\\Answered $Work)").ok();
    assert_eq!(flags(&mut b, 1), "\\Seen \\Answered $Work");
    b.cmd("STORE 1 +FLAGS (\\Deleted)").ok();
    let r = b.cmd("EXPUNGE");
    r.no();
    assert!(r.text.starts_with("[NOPERM] "), "{r:?}");
    // CLOSE without `e` closes without expunging.
    b.cmd("CLOSE").ok();
    a.cmd("SELECT Projects").ok();
    assert!(a.cmd("FETCH 1 FLAGS").has("\\Deleted"));

    // e: EXPUNGE works, recorded as bob's.
    a.cmd("SETACL Projects bob@example.com +e").ok();
    b.cmd(&format!("SELECT {SHARED}")).ok();
    let r = b.cmd("EXPUNGE");
    r.ok();
    assert_eq!(r.untagged, vec!["* 1 EXPUNGE"]);
    let log = audit(&env);
    assert!(
        log.lines().any(|l| l.contains(" message.expunge ")
            && l.contains("bob@example.com(delegate)")
            && l.contains("on alice@example.com")),
        "{log}"
    );
    // A delegate's flag changes are recorded too.
    assert!(
        log.lines().any(|l| l.contains(" message.flags ")
            && l.contains("bob@example.com(delegate)")
            && l.contains("on alice@example.com")),
        "{log}"
    );
}

#[test]
fn acl_commands_need_administer() {
    let env = env3();
    let _a = alice_shares(&env, "lr");
    let mut b = env.login(BOB);
    for cmd in [
        format!("SETACL {SHARED} carol@example.com lr"),
        format!("DELETEACL {SHARED} bob@example.com"),
        format!("GETACL {SHARED}"),
        format!("LISTRIGHTS {SHARED} carol@example.com"),
    ] {
        let r = b.cmd(&cmd);
        r.no();
        assert!(r.text.starts_with("[NOPERM] "), "{cmd}: {r:?}");
    }
    // MYRIGHTS needs any right.
    let r = b.cmd(&format!("MYRIGHTS {SHARED}"));
    r.ok();
    assert_eq!(r.untagged, vec![format!("* MYRIGHTS {SHARED} lr")]);
    // Own mailboxes: bob administers them; nobody changes the owner's rights.
    let r = b.cmd("SETACL INBOX bob@example.com lr");
    r.no();
    assert!(r.text.starts_with("[CANNOT] "), "{r:?}");
    let r = b.cmd("MYRIGHTS INBOX");
    assert_eq!(r.untagged, vec!["* MYRIGHTS INBOX lrswipkxtea0cd"]);
}

#[test]
fn a_holder_of_administer_can_grant() {
    let env = env3();
    let _a = alice_shares(&env, "lra");
    let mut b = env.login(BOB);
    b.cmd(&format!("SETACL {SHARED} carol@example.com lr")).ok();
    let r = b.cmd(&format!("GETACL {SHARED}"));
    r.ok();
    assert_eq!(
        r.untagged,
        vec![format!(
            "* ACL {SHARED} alice@example.com lrswipkxtea0cd bob@example.com lra carol@example.com lr"
        )]
    );
    let mut c = env.login(CAROL);
    c.cmd(&format!("EXAMINE {SHARED}")).ok();
    // The owner's rights stay.
    let r = b.cmd(&format!("SETACL {SHARED} alice@example.com lr"));
    r.no();
    assert!(r.text.starts_with("[CANNOT] "), "{r:?}");
    let log = audit(&env);
    assert!(
        log.lines().any(|l| l.contains(" mailbox.acl ")
            && l.contains("bob@example.com(delegate)")
            && l.contains("grantee:carol@example.com")),
        "{log}"
    );
}

#[test]
fn getacl_listrights_myrights() {
    let env = Env::start();
    let mut a = alice_shares(&env, "");
    a.cmd("SETACL Projects bob@example.com lrs").ok();
    a.cmd("SETACL Projects bob@example.com +wi").ok();
    let r = a.cmd("GETACL Projects");
    r.ok();
    assert_eq!(
        r.untagged,
        vec!["* ACL Projects alice@example.com lrswipkxtea0cd bob@example.com lrswi"]
    );
    a.cmd("SETACL Projects bob@example.com -s").ok();
    let r = a.cmd("GETACL Projects");
    assert_eq!(
        r.untagged,
        vec!["* ACL Projects alice@example.com lrswipkxtea0cd bob@example.com lrwi"]
    );
    // RFC 2086 c and d mean kx and te (RIGHTS=texk).
    a.cmd("SETACL Projects bob@example.com lrcd").ok();
    let r = a.cmd("GETACL Projects");
    assert_eq!(
        r.untagged,
        vec!["* ACL Projects alice@example.com lrswipkxtea0cd bob@example.com lrkxtecd"]
    );
    let r = a.cmd("LISTRIGHTS Projects bob@example.com");
    r.ok();
    assert_eq!(
        r.untagged,
        vec!["* LISTRIGHTS Projects bob@example.com \"\" l r s w i p k x t e a 0"]
    );
    let r = a.cmd("LISTRIGHTS Projects alice@example.com");
    assert_eq!(
        r.untagged,
        vec!["* LISTRIGHTS Projects alice@example.com lrswipkxtea0"]
    );
    let r = a.cmd("MYRIGHTS Projects");
    assert_eq!(r.untagged, vec!["* MYRIGHTS Projects lrswipkxtea0cd"]);
    let mut b = env.login(BOB);
    let r = b.cmd(&format!("MYRIGHTS {SHARED}"));
    assert_eq!(r.untagged, vec![format!("* MYRIGHTS {SHARED} lrkxtecd")]);
    // Bad rights: BAD; unknown grantee: NO.
    a.cmd("SETACL Projects bob@example.com lrz").bad();
    a.cmd("SETACL Projects bob@example.com lrQ").bad();
    let r = a.cmd("SETACL Projects nobody@example.com lr");
    r.no();
    assert!(r.text.starts_with("[NONEXISTENT] "), "{r:?}");
    // SETACL with no rights removes the entry, as DELETEACL does.
    a.cmd("SETACL Projects bob@example.com \"\"").ok();
    let r = a.cmd("GETACL Projects");
    assert_eq!(
        r.untagged,
        vec!["* ACL Projects alice@example.com lrswipkxtea0cd"]
    );
    a.cmd("GETACL Nope").no();
    a.cmd("GETACL").bad();
}

#[test]
fn anyone_and_negative_rights_are_refused() {
    let env = Env::start();
    let mut a = alice_shares(&env, "");
    for id in ["anyone", "ANYONE", "-bob@example.com"] {
        let r = a.cmd(&format!("SETACL Projects {id} lr"));
        r.no();
        assert!(r.text.starts_with("[CANNOT] "), "{id}: {r:?}");
    }
    let r = a.cmd("SETACL Projects anyone lr");
    assert!(r.text.contains("anyone"), "{r:?}");
    let r = a.cmd("LISTRIGHTS Projects anyone");
    r.ok();
    assert_eq!(r.untagged, vec!["* LISTRIGHTS Projects anyone \"\""]);
    let mut b = env.login(BOB);
    b.cmd(&format!("SELECT {SHARED}")).no();
}

#[test]
fn deleteacl_takes_effect_mid_session() {
    let env = Env::start();
    let mut a = alice_shares(&env, "lr");
    let mut b = env.login(BOB);
    b.cmd(&format!("SELECT {SHARED}")).ok();
    b.cmd("FETCH 1 BODY[]").ok();
    a.cmd("DELETEACL Projects bob@example.com").ok();
    // The next read is refused, as for a mailbox that is not there.
    let r = b.cmd("FETCH 1 BODY[]");
    r.no();
    assert!(r.text.starts_with("[NONEXISTENT] "), "{r:?}");
    b.cmd("UID SEARCH ALL").no();
    b.cmd(&format!("STATUS {SHARED} (MESSAGES)")).no();
    assert!(list(&mut b).iter().all(|(_, n)| !n.contains("alice")));
    let log = audit(&env);
    let reads = log
        .lines()
        .filter(|l| l.contains(" message.read ") && l.contains("bob@example.com(delegate)"))
        .count();
    assert_eq!(reads, 1, "{log}");
}

#[test]
fn shared_principal_mailboxes_are_under_shared() {
    let env = Env::start();
    env.server.cli_ok(
        &["account", "add", "team@example.com", "--kind", "shared"],
        "",
    );
    env.server.cli_ok(
        &[
            "mailbox",
            "acl",
            "team@example.com",
            "INBOX",
            "bob@example.com",
            "lrswite",
        ],
        "",
    );
    let shown = env
        .server
        .cli_ok(&["mailbox", "acl", "team@example.com", "INBOX"], "");
    assert_eq!(
        shown,
        "team@example.com lrswipkxtea0\nbob@example.com lrswite\n"
    );
    let mut b = env.login(BOB);
    let l = list(&mut b);
    for want in [
        ("\\Noselect \\HasChildren", "Shared"),
        ("\\Noselect \\HasChildren", "Shared/team@example.com"),
        ("\\HasNoChildren", "Shared/team@example.com/INBOX"),
    ] {
        assert!(
            l.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {l:?}"
        );
    }
    b.append("Shared/team@example.com/INBOX", "\\Flagged", PLAIN)
        .ok();
    let r = b.cmd("SELECT Shared/team@example.com/INBOX");
    r.ok();
    assert_eq!(r.text, "[READ-WRITE] SELECT completed");
    assert!(flags(&mut b, 1).contains("\\Flagged"));
    b.cmd("FETCH 1 BODY[TEXT]").ok();
    // A shared principal is not under Other Users, and alice sees nothing.
    b.cmd("SELECT \"Other Users/team@example.com/INBOX\"").no();
    let mut a = env.login(ALICE);
    assert!(list(&mut a).iter().all(|(_, n)| !n.contains("team")));
    a.cmd("SELECT Shared/team@example.com/INBOX").no();
    let log = audit(&env);
    assert!(
        log.lines().any(|l| l.contains(" mailbox.acl ")
            && l.contains("grantee:bob@example.com")
            && l.contains("on team@example.com")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains(" message.read ")
            && l.contains("bob@example.com(delegate)")
            && l.contains("on team@example.com")),
        "{log}"
    );
    // Bad CLI input.
    env.server.cli_err(
        &[
            "mailbox",
            "acl",
            "team@example.com",
            "INBOX",
            "bob@example.com",
        ],
        "",
    );
    env.server.cli_err(
        &[
            "mailbox",
            "acl",
            "team@example.com",
            "INBOX",
            "bob@example.com",
            "lrZ",
        ],
        "",
    );
}

#[test]
fn create_delete_rename_need_k_and_x() {
    let env = Env::start();
    let mut a = alice_shares(&env, "lrk");
    let mut b = env.login(BOB);
    let sub = "\"Other Users/alice@example.com/Projects/Sub\"";
    b.cmd(&format!("CREATE {sub}")).ok();
    // Created in alice's account, inheriting Projects' ACL.
    let r = a.cmd("GETACL Projects/Sub");
    assert_eq!(
        r.untagged,
        vec!["* ACL Projects/Sub alice@example.com lrswipkxtea0cd bob@example.com lrkc"]
    );
    // No `x`: no DELETE, no RENAME.
    let r = b.cmd(&format!("DELETE {sub}"));
    r.no();
    assert!(r.text.starts_with("[NOPERM] "), "{r:?}");
    b.cmd(&format!(
        "RENAME {sub} \"Other Users/alice@example.com/Projects/Sub2\""
    ))
    .no();
    a.cmd("SETACL Projects/Sub bob@example.com lrkx").ok();
    b.cmd(&format!(
        "RENAME {sub} \"Other Users/alice@example.com/Projects/Sub2\""
    ))
    .ok();
    assert!(list(&mut a).iter().any(|(_, n)| n == "Projects/Sub2"));
    // Not into another account, nor to the top of alice's (no parent to hold `k` on).
    let r = b.cmd("RENAME \"Other Users/alice@example.com/Projects/Sub2\" Mine");
    r.no();
    b.cmd(
        "RENAME \"Other Users/alice@example.com/Projects/Sub2\" \"Other Users/alice@example.com/Top\"",
    )
    .no();
    b.cmd("DELETE \"Other Users/alice@example.com/Projects/Sub2\"")
        .ok();
    assert!(list(&mut a).iter().all(|(_, n)| !n.contains("Sub")));
    // CREATE at the top of alice's namespace, or below a mailbox without `k`.
    for name in [
        "Other Users/alice@example.com/Top",
        "Other Users/alice@example.com/INBOX/x",
        "Other Users/alice@example.com/Nope/x",
    ] {
        let r = b.cmd(&format!("CREATE \"{name}\""));
        r.no();
        assert_eq!(
            r.text,
            format!("[NOPERM] not permitted: cannot create {name}"),
            "{name}"
        );
    }
    let log = audit(&env);
    assert!(
        log.lines().any(|l| l.contains(" mailbox.create ")
            && l.contains("bob@example.com(delegate)")
            && l.contains("on alice@example.com")),
        "{log}"
    );
}

#[test]
fn copy_and_move_between_accounts() {
    let env = Env::start();
    let mut a = alice_shares(&env, "lr");
    let mut b = env.login(BOB);
    b.append("INBOX", "\\Flagged", PLAIN).ok();
    b.cmd("SELECT INBOX").ok();
    // No `i` on the target.
    let r = b.cmd(&format!("COPY 1 {SHARED}"));
    r.no();
    assert!(r.text.starts_with("[NOPERM] "), "{r:?}");
    a.cmd("SETACL Projects bob@example.com lri").ok();
    let r = b.cmd(&format!("COPY 1 {SHARED}"));
    r.ok();
    assert!(r.text.starts_with("[COPYUID "), "{r:?}");
    a.cmd("SELECT Projects").ok();
    // Stored for alice; \Flagged dropped (bob has no `w`).
    assert_eq!(flags(&mut a, 3), "");
    let r = a.cmd("FETCH 3 BODY.PEEK[]");
    assert_eq!(
        literal_after(&fetch_line(&r, 3), "BODY[]")
            .unwrap()
            .as_bytes(),
        PLAIN
    );
    // From alice's mailbox into bob's: `r` is enough for COPY, MOVE needs `t` and `e`.
    b.cmd(&format!("SELECT {SHARED}")).ok();
    b.cmd("COPY 1 INBOX").ok();
    let r = b.cmd("MOVE 1 INBOX");
    r.no();
    a.cmd("SETACL Projects bob@example.com lrite").ok();
    b.cmd(&format!("SELECT {SHARED}")).ok();
    b.cmd("MOVE 1 INBOX").ok();
    let r = b.cmd("STATUS INBOX (MESSAGES)");
    assert_eq!(r.untagged, vec!["* STATUS INBOX (MESSAGES 3)"]);
    let r = a.cmd("STATUS Projects (MESSAGES)");
    assert_eq!(r.untagged, vec!["* STATUS Projects (MESSAGES 2)"]);
    // Both accounts' sides are in the ledger: the move out of alice's, the copy into
    // bob's.
    let log = audit(&env);
    assert!(
        log.lines()
            .any(|l| l.contains(" message.move ") && l.contains("on alice@example.com")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains(" message.copy_in ")
            && l.contains("on bob@example.com")
            && l.contains("from-account:alice@example.com")),
        "{log}"
    );
}

#[test]
fn other_users_mailboxes_are_always_subscribed() {
    let env = Env::start();
    let _a = alice_shares(&env, "lr");
    let mut b = env.login(BOB);
    b.cmd(&format!("SUBSCRIBE {SHARED}")).ok();
    let r = b.cmd("LSUB \"\" \"Other Users/*\"");
    r.ok();
    assert!(r.has(&format!("\"/\" {SHARED}")), "{r:?}");
    let r = b.cmd("LIST (SUBSCRIBED) \"\" \"*\"");
    assert!(
        r.has(&format!(
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" {SHARED}"
        )),
        "{r:?}"
    );
    let r = b.cmd(&format!("UNSUBSCRIBE {SHARED}"));
    r.no();
    assert!(r.text.starts_with("[CANNOT] "), "{r:?}");
    // LIST-STATUS: a STATUS for the mailbox, none for the \Noselect levels.
    let r = b.cmd("LIST \"\" \"Other Users/*\" RETURN (STATUS (MESSAGES))");
    r.ok();
    assert_eq!(
        r.lines("* STATUS"),
        vec![format!("* STATUS {SHARED} (MESSAGES 2)")]
    );
    let r = b.cmd("LIST \"\" \"%\"");
    assert!(
        r.has("* LIST (\\Noselect \\HasChildren) \"/\" \"Other Users\""),
        "{r:?}"
    );
    let r = b.cmd("LIST \"Other Users/\" \"%\"");
    assert_eq!(
        r.untagged,
        vec!["* LIST (\\Noselect \\HasChildren) \"/\" \"Other Users/alice@example.com\""]
    );
}

#[test]
fn a_delegate_sees_the_owners_changes() {
    let env = Env::start();
    let mut a = alice_shares(&env, "lrs");
    let mut b = env.login(BOB);
    b.cmd(&format!("SELECT {SHARED}")).ok();
    // Changes in alice's account reach bob's view of her mailbox (NOOP and IDLE).
    a.append("Projects", "", PLAIN).ok();
    let r = b.cmd("NOOP");
    assert!(r.has("* 3 EXISTS"), "{r:?}");
    a.cmd("SELECT Projects").ok();
    a.cmd("STORE 1 +FLAGS.SILENT (\\Flagged)").ok();
    let r = b.cmd("NOOP");
    assert!(r.has("* 1 FETCH (UID 1 FLAGS (\\Flagged))"), "{r:?}");
    let tag = b.tag();
    b.send_raw(format!("{tag} IDLE\r\n").as_bytes());
    assert!(b.read_response_line().starts_with("+ "));
    a.append("Projects", "", PLAIN).ok();
    assert_eq!(b.read_response_line(), "* 4 EXISTS");
    b.send_raw(b"DONE\r\n");
    b.read_until_tagged(&tag).ok();
}

/// Send As (`0`) is the owner's alone to give: a delegate holding `a` can neither grant
/// it (to anyone, themselves included) nor take it away by replacing an entry; it exists
/// on the INBOX only and is not inherited. Grants stay within the owner's domain and go
/// to people's accounts.
#[test]
fn send_as_is_the_owners_to_give_and_grants_stay_in_the_domain() {
    let env = env3();
    env.server.cli_ok(&["domain", "add", "other.org"], "");
    env.server.cli_ok(
        &["account", "add", "mallory@other.org"],
        "mallory-password\n",
    );
    env.server.cli_ok(
        &["account", "add", "team@example.com", "--kind", "group"],
        "",
    );
    let mut a = env.login(ALICE);
    a.cmd("SETACL INBOX bob@example.com lra").ok();
    a.cmd("SETACL INBOX carol@example.com lr0").ok();
    let inbox = "\"Other Users/alice@example.com/INBOX\"";
    let mut b = env.login(BOB);
    for cmd in [
        format!("SETACL {inbox} bob@example.com +0"),
        format!("SETACL {inbox} bob@example.com lra0"),
        format!("SETACL {inbox} carol@example.com -0"),
    ] {
        let r = b.cmd(&cmd);
        r.no();
        assert!(r.text.starts_with("[NOPERM] "), "{cmd}: {r:?}");
    }
    // A delegate's replace keeps carol's send-as.
    b.cmd(&format!("SETACL {inbox} carol@example.com lrs")).ok();
    let r = a.cmd("GETACL INBOX");
    r.ok();
    assert!(
        r.untagged[0].contains("carol@example.com lrs0"),
        "{:?}",
        r.untagged
    );
    // `0` outside the INBOX, grants to another domain or to a group: refused.
    a.cmd("CREATE Sub").ok();
    for cmd in [
        "SETACL Sub carol@example.com lr0",
        "SETACL INBOX mallory@other.org lr",
        "SETACL INBOX team@example.com lr",
    ] {
        a.cmd(cmd).no();
    }
    // A folder made under a mailbox with send-as grants does not inherit `0`.
    b.cmd(&format!("SETACL {inbox} bob@example.com lrak")).ok();
    b.cmd("CREATE \"Other Users/alice@example.com/INBOX/Child\"")
        .ok();
    let r = a.cmd("GETACL INBOX/Child");
    r.ok();
    assert!(!r.untagged[0].contains("lrs0"), "{:?}", r.untagged);
}

/// Losing `r` (keeping `l`) while the mailbox is selected: the next catch-up ends the
/// session with BYE [NOPERM] instead of serving the stale view.
#[test]
fn losing_read_while_selected_ends_the_session() {
    let env = Env::start();
    let mut a = alice_shares(&env, "lr");
    let mut b = env.login(BOB);
    b.cmd(&format!("SELECT {SHARED}")).ok();
    a.cmd("SETACL Projects bob@example.com l").ok();
    b.send_raw(b"n1 NOOP\r\n");
    let rest = b.read_to_close();
    assert!(
        rest.contains("* BYE [NOPERM] Access to the selected mailbox was withdrawn"),
        "{rest}"
    );
    assert!(!rest.contains("FETCH"), "{rest}");
}

/// A folder the owner makes under a shared one is shared alike (as one a delegate makes).
#[test]
fn owner_made_children_inherit_the_acl() {
    let env = Env::start();
    let mut a = alice_shares(&env, "lr");
    a.cmd("CREATE Projects/Sub/Deeper").ok();
    for name in ["Projects/Sub", "Projects/Sub/Deeper"] {
        let r = a.cmd(&format!("GETACL {name}"));
        r.ok();
        assert_eq!(
            r.untagged,
            vec![format!(
                "* ACL {name} alice@example.com lrswipkxtea0cd bob@example.com lr"
            )]
        );
    }
    let mut b = env.login(BOB);
    b.cmd("EXAMINE \"Other Users/alice@example.com/Projects/Sub/Deeper\"")
        .ok();
}
