//! THREATS.md "IMAP bombs" and IDOR, sent to the running server: literal and line bombs
//! before and after login, non-synchronising literals the server refuses (their data
//! must never run as commands), deep nesting, bad-command floods, the login timeout,
//! and one account reaching another's mail.

use super::client::*;
use std::time::Duration;

/// Resident memory of the server process, in KiB.
fn rss_kib(env: &Env) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", env.server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Every line until the server closes or sends the tagged answer to `tag`.
fn lines_until(c: &mut Client, tag: &str) -> Vec<String> {
    let mut v = Vec::new();
    while let Some(l) = c.try_read_line() {
        let done = l.starts_with(&format!("{tag} "));
        v.push(l);
        if done {
            break;
        }
    }
    v
}

#[test]
fn literal_bomb_before_login() {
    let env = Env::start();
    let mut c = env.connect();
    let before = rss_kib(&env);
    c.send_raw(b"a LOGIN {4294967295}\r\n");
    // Refused at once: no `+`, so the client never sends the data.
    let l = c.read_response_line();
    assert!(l.starts_with("a NO [TOOBIG] "), "{l}");
    // Just over the pre-login limit, and beyond u64.
    c.send_raw(b"b LOGIN {8193}\r\n");
    assert_eq!(
        c.read_response_line(),
        "b NO [TOOBIG] Literal of 8193 bytes is over the limit of 8192"
    );
    c.send_raw(b"c LOGIN {99999999999999999999999}\r\n");
    assert!(c.read_response_line().starts_with("c BAD "));
    // The session is fine and nothing large was allocated.
    c.cmd("NOOP").ok();
    assert!(
        rss_kib(&env) < before + 16 * 1024,
        "{before} → {}",
        rss_kib(&env)
    );
    // After login the limit is APPENDLIMIT.
    c.login(ALICE.0, ALICE.1);
    c.send_raw(b"d APPEND INBOX {4294967295}\r\n");
    let l = c.read_response_line();
    assert!(l.starts_with("d NO [TOOBIG] "), "{l}");
    c.send_raw(b"e APPEND INBOX {52428801}\r\n");
    assert_eq!(
        c.read_response_line(),
        "e NO [TOOBIG] Literal of 52428801 bytes is over the limit of 52428800"
    );
    c.cmd("NOOP").ok();
}

#[test]
fn non_sync_literal_over_4096_before_login_is_bad_and_ends_the_session() {
    let env = Env::start();
    let mut c = env.connect();
    // LITERAL- (RFC 7888 §5): up to 4096 is fine...
    let pass = "p".repeat(4096);
    let r = c.cmd(&format!("LOGIN {} {{4096+}}\r\n{pass}", ALICE.0));
    r.no();
    assert_eq!(r.text, "[AUTHENTICATIONFAILED] authentication failed");
    // ...over it is BAD, and as the data may follow it, the session ends.
    c.send_raw(b"a LOGIN {5000+}\r\n");
    assert_eq!(
        c.read_response_line(),
        "a BAD non-synchronizing literal over 4096 bytes (LITERAL-)"
    );
    assert_eq!(
        c.read_response_line(),
        "* BYE Cannot find the end of that command"
    );
    assert!(c.closed());
}

#[test]
fn refused_non_sync_literal_data_never_runs_as_commands() {
    // RFC 7888 §4: a literal the server refused must not be read as commands. A webmail
    // appending a message from outside would otherwise run the attacker's lines in the
    // victim's session.
    let env = Env::start_with("[limits]\nimap_literal_size = 1000\n");
    let mut c = env.login(ALICE);
    let mut evil = Vec::new();
    while evil.len() < 1500 {
        evil.extend_from_slice(b"x DELETE Sent\r\ny CREATE Pwned\r\n");
    }
    let mut cmd = format!("a APPEND INBOX {{{}+}}\r\n", evil.len()).into_bytes();
    cmd.extend_from_slice(&evil);
    cmd.extend_from_slice(b"\r\nz NOOP\r\n");
    c.try_send_raw(&cmd);
    let lines = lines_until(&mut c, "z");
    assert_eq!(lines[0], "a BAD literal too large", "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| !l.starts_with("x ") && !l.starts_with("y ")),
        "{lines:?}"
    );
    let mut check = env.login(ALICE);
    let r = check.cmd("LIST \"\" *");
    assert!(r.has("\\Sent) \"/\" Sent"), "{r:?}");
    assert!(!r.has("Pwned"), "{r:?}");

    // The same before login, with LITERAL-'s 4096.
    let mut c = env.connect();
    let mut evil = Vec::new();
    while evil.len() < 5000 {
        evil.extend_from_slice(b"x NOOP\r\n");
    }
    let mut cmd = format!("a LOGIN {} {{{}+}}\r\n", ALICE.0, evil.len()).into_bytes();
    cmd.extend_from_slice(&evil);
    cmd.extend_from_slice(b"\r\nz NOOP\r\n");
    c.try_send_raw(&cmd);
    let lines = lines_until(&mut c, "z");
    assert_eq!(
        lines[0],
        "a BAD non-synchronizing literal over 4096 bytes (LITERAL-)"
    );
    assert!(lines.iter().all(|l| !l.starts_with("x ")), "{lines:?}");
}

#[test]
fn unknown_command_with_a_literal_is_skipped_whole() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    // Well framed but not a command: its literal is part of it, not the next command.
    let r = c.cmd("FROB {12+}\r\nx CREATE Hi");
    r.bad();
    let r = c.cmd("NOOP");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:?}");
    let r = c.cmd("LIST \"\" Hi");
    assert!(r.untagged.is_empty(), "{r:?}");
}

#[test]
fn long_line_without_crlf() {
    let env = Env::start();
    let mut c = env.connect();
    // Before login the line limit is 8 KiB: BAD as soon as it is passed, no CRLF needed.
    let mut line = b"a NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 100_000));
    c.send_raw(&line);
    assert_eq!(c.read_response_line(), "a BAD line too long");
    // The rest of the line is dropped; the session goes on at the next line.
    c.send_raw(b"yyyy\r\nb NOOP\r\n");
    assert_eq!(c.read_response_line(), "b OK NOOP completed");

    // After login (64 KiB lines): 64 MiB without CRLF, memory stays flat.
    c.login(ALICE.0, ALICE.1);
    let before = rss_kib(&env);
    c.send_raw(b"c NOOP ");
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..64 {
        c.send_raw(&chunk);
    }
    assert_eq!(c.read_response_line(), "c BAD line too long");
    c.send_raw(b"\r\nd NOOP\r\n");
    assert_eq!(c.read_response_line(), "d OK NOOP completed");
    let after = rss_kib(&env);
    assert!(after < before + 16 * 1024, "RSS {before} KiB → {after} KiB");
}

#[test]
fn deeply_nested_search_is_bad_not_a_crash() {
    // Lines long enough to carry 100 000 `(` (THREATS.md), so the nesting cap is what
    // answers, not the line length.
    let env = Env::start_with("[limits]\nimap_line_length = 400000\n");
    let mut c = env.login(ALICE);
    c.append("INBOX", "", b"Subject: x\r\n\r\nx\r\n").ok();
    c.cmd("SELECT INBOX").ok();
    let n = 100_000;
    let cmd = format!("SEARCH {}ALL{}", "(".repeat(n), ")".repeat(n));
    let r = c.cmd(&cmd);
    r.bad();
    assert!(r.untagged.is_empty(), "{r:?}");
    let cmd = format!("SEARCH {}ALL", "NOT ".repeat(n));
    c.cmd(&cmd).bad();
    let cmd = format!("SEARCH {}", "OR ALL ".repeat(n / 2) + "ALL ALL");
    c.cmd(&cmd).bad();
    let cmd = format!("FETCH 1 {}FLAGS{}", "(".repeat(n), ")".repeat(n));
    c.cmd(&cmd).bad();
    // Within the cap (64) it works.
    let r = c.cmd(&format!("SEARCH {}ALL{}", "(".repeat(50), ")".repeat(50)));
    r.ok();
    assert_eq!(r.untagged, ["* SEARCH 1"]);
}

#[test]
fn many_bad_commands_end_the_session() {
    let env = Env::start();
    for logged_in in [false, true] {
        let mut c = if logged_in {
            env.login(ALICE)
        } else {
            env.connect()
        };
        // limits.imap_errors_before_disconnect, default 20.
        for i in 1..20 {
            let r = c.cmd("FROBNICATE");
            r.bad();
            assert!(r.untagged.is_empty(), "{i}: {r:?}");
        }
        let tag = c.tag();
        c.send_raw(format!("{tag} FROBNICATE\r\n").as_bytes());
        assert!(c.read_response_line().starts_with(&format!("{tag} BAD ")));
        assert_eq!(c.read_response_line(), "* BYE Too many invalid commands");
        assert!(c.closed());
    }
}

/// `limits.imap_login_timeout_secs` bounds the whole time before login, not each
/// pause: a client trickling bytes of a command that never ends (slowloris) is logged
/// out as one that says nothing. (limits.rs tests the silent case.)
#[test]
fn login_timeout_is_not_reset_by_trickled_bytes() {
    let env = Env::start_with("[limits]\nimap_login_timeout_secs = 2\n");
    let mut c = env.connect();
    let started = std::time::Instant::now();
    // One byte every 250 ms from another thread, never a whole line.
    let mut w = c.raw_socket();
    let trickle = std::thread::spawn(move || {
        use std::io::Write;
        for b in b"a NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".iter() {
            if w.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    // Longer than the trickle lasts (about 10 s), so only the server ends the wait.
    c.set_timeout(Duration::from_secs(15));
    assert_eq!(
        c.read_response_line(),
        "* BYE Autologout; idle for too long"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert!(c.closed());
    trickle.join().unwrap();
    assert!(c.closed());
}

/// The login timeout ends with login: an authenticated session may be silent longer
/// (RFC 9051 §5.4: at least 30 minutes).
#[test]
fn login_timeout_does_not_apply_after_login() {
    let env = Env::start_with("[limits]\nimap_login_timeout_secs = 1\n");
    let mut c = env.login(ALICE);
    std::thread::sleep(Duration::from_millis(2500));
    c.cmd("NOOP").ok();
}

const SECRET: &[u8] = b"From: boss@example.org\r\nTo: alice@example.com\r\nSubject: Alice secret plans\r\nMessage-ID: <secret@example.org>\r\n\r\nThe vault code is 1234\r\n";

#[test]
fn bob_cannot_reach_alices_mail() {
    let env = Env::start();
    let mut a = env.login(ALICE);
    a.cmd("CREATE Private").ok();
    for _ in 0..3 {
        a.append("INBOX", "", SECRET).ok();
        a.append("Private", "", SECRET).ok();
    }
    let alice_inbox = a.cmd("STATUS INBOX (MAILBOXID UIDVALIDITY)");

    let mut b = env.login(BOB);
    // alice's mailbox names resolve in bob's account: not found, as for any name.
    for name in [
        "Private",
        "\"alice@example.com/INBOX\"",
        "\"alice@example.com/Private\"",
        "\"Other Users/alice@example.com/Private\"",
        "\"../alice@example.com/Private\"",
        "\"~alice/Private\"",
        "\"#shared/alice/Private\"",
    ] {
        let r = b.cmd(&format!("SELECT {name}"));
        assert!(r.status == "NO" || r.status == "BAD", "{name}: {r:?}");
        let r = b.cmd(&format!("STATUS {name} (MESSAGES)"));
        assert!(r.status == "NO" || r.status == "BAD", "{name}: {r:?}");
        assert!(r.untagged.is_empty(), "{name}: {r:?}");
    }
    let r = b.cmd("SELECT Private");
    r.no();
    assert_eq!(r.text, "[NONEXISTENT] not found: mailbox Private");
    let r = b.append("Private", "", b"Subject: from bob\r\n\r\nhi\r\n");
    r.no();
    assert_eq!(r.text, "[TRYCREATE] No such mailbox");

    // bob's own INBOX: his (empty) one, whatever UIDs alice's has.
    let r = b.cmd("STATUS INBOX (MESSAGES MAILBOXID UIDVALIDITY)");
    assert!(
        r.untagged[0].starts_with("* STATUS INBOX (MESSAGES 0 "),
        "{r:?}"
    );
    assert_ne!(r.untagged, alice_inbox.untagged);
    b.append("INBOX", "", b"Subject: bob's own\r\n\r\nmine\r\n")
        .ok();
    let r = b.cmd("SELECT INBOX");
    assert!(r.has("* 1 EXISTS"), "{r:?}");
    for cmd in [
        "UID FETCH 1:* (UID BODY.PEEK[] ENVELOPE)",
        "UID FETCH 2,3 (BODY.PEEK[])",
        "FETCH 1:* (BODY.PEEK[])",
        "UID SEARCH ALL",
        "SEARCH TEXT vault",
    ] {
        let r = b.cmd(cmd);
        r.ok();
        let all = r.untagged.join("\n");
        assert!(
            !all.contains("vault") && !all.contains("secret"),
            "{cmd}: {all}"
        );
    }
    let r = b.cmd("UID FETCH 2:3 (BODY.PEEK[])");
    assert!(r.untagged.is_empty(), "{r:?}");
    let r = b.cmd("SEARCH TEXT vault");
    assert_eq!(r.untagged, ["* SEARCH"]);
    // COPY/MOVE into alice's mailbox: no such mailbox in bob's account.
    let r = b.cmd("COPY 1 Private");
    r.no();
    assert_eq!(r.text, "[TRYCREATE] No such mailbox");
    let r = b.cmd("MOVE 1 Private");
    r.no();
    // RENAME/DELETE of alice's names do nothing to her.
    b.cmd("DELETE Private").no();
    b.cmd("RENAME Private Mine").no();

    // alice's mailboxes are untouched.
    let r = a.cmd("STATUS Private (MESSAGES)");
    assert_eq!(r.untagged, ["* STATUS Private (MESSAGES 3)"]);
    let r = a.cmd("STATUS INBOX (MESSAGES)");
    assert_eq!(r.untagged, ["* STATUS INBOX (MESSAGES 3)"]);
}

#[test]
fn deflate_bomb_line_is_bad_and_memory_stays_flat() {
    // 32 MiB without CRLF inflate from a few tens of KiB: the line limit still answers,
    // and the server never holds the inflated whole.
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.cmd("COMPRESS DEFLATE").ok();
    let mut c = c.start_deflate();
    let before = rss_kib(&env);
    c.send_raw(b"a NOOP ");
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..32 {
        c.send_raw(&chunk);
    }
    assert_eq!(c.read_response_line(), "a BAD line too long");
    c.send_raw(b"\r\nb NOOP\r\n");
    assert_eq!(c.read_response_line(), "b OK NOOP completed");
    let after = rss_kib(&env);
    assert!(after < before + 16 * 1024, "RSS {before} KiB → {after} KiB");
}
