//! LIST (RFC 9051 §6.3.9) with LIST-EXTENDED (RFC 5258) selection and return options,
//! LIST-STATUS (RFC 5819), SPECIAL-USE (RFC 6154), LSUB and SUBSCRIBE/UNSUBSCRIBE.

use super::client::*;

/// alice with `work`, `work/a`, `work/a/deep`, `work/b`, `play`; `work/a` subscribed.
fn setup(env: &Env) -> Client {
    let mut c = env.login(ALICE);
    for m in ["work/a/deep", "work/b", "play"] {
        c.cmd(&format!("CREATE {m}")).ok();
    }
    c.cmd("SUBSCRIBE work/a").ok();
    c
}

fn list(c: &mut Client, args: &str) -> Vec<String> {
    let r = c.cmd(&format!("LIST {args}"));
    r.ok();
    assert_eq!(r.text, "LIST completed");
    r.untagged.clone()
}

#[test]
fn list_star_and_percent() {
    let env = Env::start();
    let mut c = setup(&env);
    assert_eq!(
        list(&mut c, "\"\" *"),
        [
            "* LIST (\\HasNoChildren \\Archive) \"/\" Archive",
            "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
            "* LIST (\\HasNoChildren) \"/\" INBOX",
            "* LIST (\\HasNoChildren \\Junk) \"/\" Junk",
            "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
            "* LIST (\\HasNoChildren \\Trash) \"/\" Trash",
            "* LIST (\\HasNoChildren) \"/\" play",
            "* LIST (\\HasChildren) \"/\" work",
            "* LIST (\\HasChildren) \"/\" work/a",
            "* LIST (\\HasNoChildren) \"/\" work/a/deep",
            "* LIST (\\HasNoChildren) \"/\" work/b",
        ]
    );
    assert_eq!(
        list(&mut c, "\"\" work/%"),
        [
            "* LIST (\\HasChildren) \"/\" work/a",
            "* LIST (\\HasNoChildren) \"/\" work/b",
        ]
    );
    assert_eq!(
        list(&mut c, "\"\" %/%/%"),
        ["* LIST (\\HasNoChildren) \"/\" work/a/deep"]
    );
    assert_eq!(
        list(&mut c, "\"\" w*p"),
        ["* LIST (\\HasNoChildren) \"/\" work/a/deep"]
    );
    assert_eq!(
        list(&mut c, "\"\" %").len(),
        8,
        "six defaults, play and work"
    );
    // INBOX matches in any case; other names do not.
    assert_eq!(
        list(&mut c, "\"\" inbox"),
        ["* LIST (\\HasNoChildren) \"/\" INBOX"]
    );
    assert_eq!(list(&mut c, "\"\" WORK"), Vec::<String>::new());
    assert_eq!(list(&mut c, "\"\" nothing*"), Vec::<String>::new());
}

#[test]
fn list_with_reference() {
    let env = Env::start();
    let mut c = setup(&env);
    assert_eq!(
        list(&mut c, "work/ %"),
        [
            "* LIST (\\HasChildren) \"/\" work/a",
            "* LIST (\\HasNoChildren) \"/\" work/b",
        ]
    );
    assert_eq!(
        list(&mut c, "work/a/ *"),
        ["* LIST (\\HasNoChildren) \"/\" work/a/deep"]
    );
    // The reference is prepended as is.
    assert_eq!(list(&mut c, "wo rk"), ["* LIST (\\HasChildren) \"/\" work"]);
}

#[test]
fn list_empty_pattern_gives_the_delimiter() {
    let env = Env::start();
    let mut c = setup(&env);
    assert_eq!(
        list(&mut c, "\"\" \"\""),
        ["* LIST (\\Noselect) \"/\" \"\""]
    );
}

#[test]
fn list_several_patterns() {
    let env = Env::start();
    let mut c = setup(&env);
    assert_eq!(
        list(&mut c, "\"\" (play work/b)"),
        [
            "* LIST (\\HasNoChildren) \"/\" play",
            "* LIST (\\HasNoChildren) \"/\" work/b",
        ]
    );
}

#[test]
fn list_selection_options() {
    let env = Env::start();
    let mut c = setup(&env);
    assert_eq!(
        list(&mut c, "(SPECIAL-USE) \"\" *"),
        [
            "* LIST (\\HasNoChildren \\Archive) \"/\" Archive",
            "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
            "* LIST (\\HasNoChildren \\Junk) \"/\" Junk",
            "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
            "* LIST (\\HasNoChildren \\Trash) \"/\" Trash",
        ]
    );
    c.cmd("UNSUBSCRIBE Junk").ok();
    // SUBSCRIBED: \Subscribed on each (RFC 5258 §3.1).
    assert_eq!(
        list(&mut c, "(SUBSCRIBED) \"\" *"),
        [
            "* LIST (\\HasNoChildren \\Subscribed \\Archive) \"/\" Archive",
            "* LIST (\\HasNoChildren \\Subscribed \\Drafts) \"/\" Drafts",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX",
            "* LIST (\\HasNoChildren \\Subscribed \\Sent) \"/\" Sent",
            "* LIST (\\HasNoChildren \\Subscribed \\Trash) \"/\" Trash",
            "* LIST (\\HasChildren \\Subscribed) \"/\" work/a",
        ]
    );
    // RECURSIVEMATCH: `work` is not subscribed, but a child is (RFC 5258 §3.5).
    assert_eq!(
        list(&mut c, "(SUBSCRIBED RECURSIVEMATCH) \"\" w%"),
        ["* LIST (\\HasChildren) \"/\" work (\"CHILDINFO\" (\"SUBSCRIBED\"))"]
    );
    let r = c.cmd("LIST (RECURSIVEMATCH) \"\" *");
    r.bad();
    assert_eq!(r.text, "RECURSIVEMATCH needs another selection option");
}

#[test]
fn list_return_options() {
    let env = Env::start();
    let mut c = setup(&env);
    assert_eq!(
        list(&mut c, "\"\" work* RETURN (CHILDREN)"),
        [
            "* LIST (\\HasChildren) \"/\" work",
            "* LIST (\\HasChildren) \"/\" work/a",
            "* LIST (\\HasNoChildren) \"/\" work/a/deep",
            "* LIST (\\HasNoChildren) \"/\" work/b",
        ]
    );
    assert_eq!(
        list(
            &mut c,
            "\"\" (work/a work/b Sent) RETURN (SUBSCRIBED SPECIAL-USE)"
        ),
        [
            "* LIST (\\HasNoChildren \\Subscribed \\Sent) \"/\" Sent",
            "* LIST (\\HasChildren \\Subscribed) \"/\" work/a",
            "* LIST (\\HasNoChildren) \"/\" work/b",
        ]
    );
    c.append("play", "\\Seen", b"Subject: x\r\n\r\nx\r\n").ok();
    c.append("play", "", b"Subject: y\r\n\r\ny\r\n").ok();
    assert_eq!(
        list(&mut c, "\"\" p% RETURN (STATUS (MESSAGES UNSEEN))"),
        [
            "* LIST (\\HasNoChildren) \"/\" play",
            "* STATUS play (MESSAGES 2 UNSEEN 1)",
        ]
    );
    let r = c.cmd("LIST \"\" * RETURN (BOGUS)");
    r.bad();
    assert_eq!(r.text, "Unknown LIST option");
    c.cmd("LIST \"\" * RETURN (STATUS ())").bad();
}

#[test]
fn list_syntax_errors() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.cmd("LIST").bad();
    c.cmd("LIST \"\"").bad();
    let r = c.cmd("LIST (BOGUS) \"\" *");
    r.bad();
    assert_eq!(r.text, "Unknown LIST option");
    // REMOTE is known (RFC 5258 §3.1); there are no remote mailboxes.
    let r = c.cmd("LIST (REMOTE) \"\" INBOX");
    r.ok();
    assert_eq!(r.untagged, ["* LIST (\\HasNoChildren) \"/\" INBOX"]);
    c.cmd("LIST \"\" * extra").bad();
    // Before login: not valid.
    let mut u = env.connect();
    u.cmd("LIST \"\" *").bad();
}

#[test]
fn lsub_subscribe_unsubscribe() {
    let env = Env::start();
    let mut c = setup(&env);
    let r = c.cmd("SUBSCRIBE play");
    r.ok();
    assert_eq!(r.text, "SUBSCRIBE completed");
    let r = c.cmd("UNSUBSCRIBE Trash");
    r.ok();
    assert_eq!(r.text, "UNSUBSCRIBE completed");
    let r = c.cmd("LSUB \"\" *");
    r.ok();
    assert_eq!(r.text, "LSUB completed");
    assert_eq!(
        r.untagged,
        [
            "* LSUB (\\Archive) \"/\" Archive",
            "* LSUB (\\Drafts) \"/\" Drafts",
            "* LSUB () \"/\" INBOX",
            "* LSUB (\\Junk) \"/\" Junk",
            "* LSUB (\\Sent) \"/\" Sent",
            "* LSUB () \"/\" play",
            "* LSUB () \"/\" work/a",
        ]
    );
    let r = c.cmd("LSUB \"\" work/*");
    assert_eq!(r.untagged, ["* LSUB () \"/\" work/a"]);
    // `work` is not subscribed, but `%` cannot reach the subscribed work/a: LSUB
    // answers `work` as \Noselect (RFC 3501 §6.3.9).
    let r = c.cmd("LSUB \"\" w%");
    assert_eq!(r.untagged, ["* LSUB (\\Noselect) \"/\" work"]);
    // With `*` work/a itself matches, so `work` is not listed.
    let r = c.cmd("LSUB \"\" w*");
    assert_eq!(r.untagged, ["* LSUB () \"/\" work/a"]);
    // A name that does not exist cannot be subscribed here...
    let r = c.cmd("SUBSCRIBE nope");
    r.no();
    assert_eq!(r.text, "[NONEXISTENT] not found: mailbox nope");
    // ...but unsubscribing one is fine (RFC 9051 §6.3.8).
    let r = c.cmd("UNSUBSCRIBE nope");
    r.ok();
    c.cmd("SUBSCRIBE").bad();
    c.cmd("UNSUBSCRIBE a b").bad();
    c.cmd("LSUB \"\"").bad();
}
