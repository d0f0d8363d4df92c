//! LOGIN and AUTHENTICATE PLAIN (RFC 9051 §6.2.2, §6.2.3; RFC 4616; SASL-IR RFC 4959):
//! success, the one failure answer for a wrong password and an unknown user, cancel,
//! authorization identities, TLS requirements (PRIVACYREQUIRED).

use super::capability::AUTHED;
use super::client::*;

fn b64(s: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn plain(authz: &str, user: &str, pass: &str) -> String {
    b64(format!("{authz}\0{user}\0{pass}").as_bytes())
}

/// After a failed or refused login the session is still unauthenticated.
fn assert_not_logged_in(c: &mut Client) {
    let r = c.cmd("SELECT INBOX");
    r.bad();
    assert_eq!(r.text, "Command not valid before authentication");
}

#[test]
fn login_ok() {
    let env = Env::start();
    let mut c = env.connect();
    let r = c.cmd(&format!("LOGIN {} {}", ALICE.0, ALICE.1));
    r.ok();
    assert_eq!(r.text, format!("[CAPABILITY {AUTHED}] Logged in"));
    c.cmd("SELECT INBOX").ok();
    // A second login in the same session is refused.
    let r = c.cmd(&format!("LOGIN {} {}", BOB.0, BOB.1));
    r.bad();
    assert_eq!(r.text, "Already authenticated");
    let r = c.cmd(&format!("AUTHENTICATE PLAIN {}", plain("", BOB.0, BOB.1)));
    r.bad();
    assert_eq!(r.text, "Already authenticated");
}

#[test]
fn login_with_literals() {
    let env = Env::start();
    let mut c = env.connect();
    let tag = c.tag();
    c.send_raw(format!("{tag} LOGIN {{{}}}\r\n", ALICE.0.len()).as_bytes());
    assert_eq!(c.read_response_line(), "+ Ready for literal data");
    c.send_raw(format!("{} {{{}}}\r\n", ALICE.0, ALICE.1.len()).as_bytes());
    assert_eq!(c.read_response_line(), "+ Ready for literal data");
    c.send_raw(format!("{}\r\n", ALICE.1).as_bytes());
    let r = c.read_until_tagged(&tag);
    r.ok();
    assert_eq!(r.text, format!("[CAPABILITY {AUTHED}] Logged in"));
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_answer() {
    let env = Env::start();
    let mut c = env.connect();
    let wrong = c.cmd(&format!("LOGIN {} not-the-password", ALICE.0));
    wrong.no();
    assert_eq!(wrong.text, "[AUTHENTICATIONFAILED] authentication failed");
    let unknown = c.cmd("LOGIN nobody@example.com not-the-password");
    unknown.no();
    assert_eq!(unknown.text, wrong.text);
    assert_eq!(unknown.untagged, wrong.untagged);
    let other_domain = c.cmd("LOGIN alice@other.example alice-password");
    other_domain.no();
    assert_eq!(other_domain.text, wrong.text);
    // Through AUTHENTICATE too.
    let r = c.cmd(&format!(
        "AUTHENTICATE PLAIN {}",
        plain("", ALICE.0, "not-the-password")
    ));
    r.no();
    assert_eq!(r.text, wrong.text);
    let r = c.cmd(&format!(
        "AUTHENTICATE PLAIN {}",
        plain("", "nobody@example.com", "x")
    ));
    r.no();
    assert_eq!(r.text, wrong.text);
    assert_not_logged_in(&mut c);
    // A failure does not end the session: the right password still works.
    c.login(ALICE.0, ALICE.1);
}

#[test]
fn login_syntax_errors_are_bad() {
    let env = Env::start();
    let mut c = env.connect();
    c.cmd("LOGIN").bad();
    c.cmd(&format!("LOGIN {}", ALICE.0)).bad();
    c.cmd(&format!("LOGIN {} {} extra", ALICE.0, ALICE.1)).bad();
    assert_not_logged_in(&mut c);
}

#[test]
fn authenticate_plain_with_initial_response() {
    let env = Env::start();
    let mut c = env.connect();
    let r = c.cmd(&format!(
        "AUTHENTICATE PLAIN {}",
        plain("", ALICE.0, ALICE.1)
    ));
    r.ok();
    assert!(r.untagged.is_empty(), "no continuation with SASL-IR: {r:?}");
    assert_eq!(r.text, format!("[CAPABILITY {AUTHED}] Logged in"));
    c.cmd("SELECT INBOX").ok();
}

#[test]
fn authenticate_plain_with_continuation() {
    let env = Env::start();
    let mut c = env.connect();
    let tag = c.tag();
    c.send_raw(format!("{tag} authenticate plain\r\n").as_bytes());
    assert_eq!(c.read_response_line(), "+ ");
    c.send_raw(format!("{}\r\n", plain("", ALICE.0, ALICE.1)).as_bytes());
    let r = c.read_until_tagged(&tag);
    r.ok();
    assert_eq!(r.text, format!("[CAPABILITY {AUTHED}] Logged in"));
}

#[test]
fn authenticate_cancelled_with_star() {
    let env = Env::start();
    let mut c = env.connect();
    let tag = c.tag();
    c.send_raw(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes());
    assert_eq!(c.read_response_line(), "+ ");
    c.send_raw(b"*\r\n");
    // RFC 9051 §6.2.2: a cancelled exchange gets a tagged BAD.
    let r = c.read_until_tagged(&tag);
    r.bad();
    assert_eq!(r.text, "AUTHENTICATE cancelled");
    assert!(r.untagged.is_empty(), "{r:?}");
    assert_not_logged_in(&mut c);
    c.login(ALICE.0, ALICE.1);
}

#[test]
fn authenticate_refuses_another_authorization_identity() {
    let env = Env::start();
    let mut c = env.connect();
    // alice's own password, asking to act as bob.
    let r = c.cmd(&format!(
        "AUTHENTICATE PLAIN {}",
        plain(BOB.0, ALICE.0, ALICE.1)
    ));
    r.no();
    assert_eq!(
        r.text,
        "[AUTHORIZATIONFAILED] Acting as another user is not allowed"
    );
    assert_not_logged_in(&mut c);
    // authzid = authcid is the same as none.
    let r = c.cmd(&format!(
        "AUTHENTICATE PLAIN {}",
        plain(ALICE.0, ALICE.0, ALICE.1)
    ));
    r.ok();
}

#[test]
fn authenticate_bad_input() {
    let env = Env::start();
    let mut c = env.connect();
    // Not base64.
    c.cmd("AUTHENTICATE PLAIN !!!notbase64!!!").bad();
    // Base64 of something that is not authzid NUL authcid NUL password.
    let r = c.cmd(&format!("AUTHENTICATE PLAIN {}", b64(b"just-a-name")));
    r.bad();
    assert_eq!(r.text, "Malformed PLAIN response");
    let r = c.cmd(&format!("AUTHENTICATE PLAIN {}", b64(b"a\0b\0c\0d")));
    r.bad();
    assert_eq!(r.text, "Malformed PLAIN response");
    // An unknown mechanism: NO, not BAD (RFC 9051 §6.2.2).
    let r = c.cmd("AUTHENTICATE CRAM-MD5");
    r.no();
    assert_eq!(r.text, "[CANNOT] Unsupported mechanism (use PLAIN)");
    assert_not_logged_in(&mut c);
}

#[test]
fn privacy_required_without_tls() {
    let env = Env::start_strict("");
    let mut c = env.connect();
    let r = c.cmd(&format!("LOGIN {} {}", ALICE.0, ALICE.1));
    r.no();
    assert_eq!(
        r.text,
        "[PRIVACYREQUIRED] LOGIN needs TLS (use STARTTLS or port 993)"
    );
    let r = c.cmd(&format!(
        "AUTHENTICATE PLAIN {}",
        plain("", ALICE.0, ALICE.1)
    ));
    r.no();
    assert_eq!(r.text, "[PRIVACYREQUIRED] AUTHENTICATE needs TLS");
    // Refused before the password was looked at: no continuation was offered either.
    let tag = c.tag();
    c.send_raw(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes());
    let r = c.read_until_tagged(&tag);
    r.no();
    assert!(r.untagged.is_empty(), "{r:?}");
    assert_not_logged_in(&mut c);
}

#[test]
fn login_over_starttls() {
    let env = Env::start_strict("");
    let mut c = env.connect();
    c.cmd("STARTTLS").ok();
    let mut c = c.start_tls(&env.server.cert_path());
    let r = c.cmd(&format!("LOGIN {} {}", ALICE.0, ALICE.1));
    r.ok();
    assert_eq!(r.text, format!("[CAPABILITY {AUTHED}] Logged in"));
    c.cmd("SELECT INBOX").ok();
}

#[test]
fn login_over_implicit_tls() {
    let env = Env::start_strict("");
    let mut c = Client::connect_tls(env.server.addr("imaps"), &env.server.cert_path());
    let r = c.cmd(&format!("LOGIN {} wrong", ALICE.0));
    r.no();
    assert_eq!(r.text, "[AUTHENTICATIONFAILED] authentication failed");
    let r = c.cmd(&format!("AUTHENTICATE PLAIN {}", plain("", BOB.0, BOB.1)));
    r.ok();
    assert_eq!(r.text, format!("[CAPABILITY {AUTHED}] Logged in"));
    c.cmd("SELECT INBOX").ok();
}

#[test]
fn throttled_answers_do_not_tell_accounts_apart() {
    // THREATS.md "Account enumeration": past the free attempts the answer for a real
    // account and for an unknown one must stay the same.
    // Keys without a header: they continue the `[auth]` table start_with opens.
    let env = Env::start_with(
        "free_attempts_per_account = 2\nfree_attempts_per_ip = 1000\nfree_attempts_per_password = 1000\nmax_delay_secs = 1\n",
    );
    let mut answers = Vec::new();
    let mut took = Vec::new();
    for user in [ALICE.0, "nobody@example.com"] {
        let mut c = env.connect();
        let mut texts = Vec::new();
        let started = std::time::Instant::now();
        for _ in 0..4 {
            let r = c.cmd(&format!("LOGIN {user} wrong-password"));
            r.no();
            texts.push(r.text.clone());
        }
        answers.push(texts);
        took.push(started.elapsed());
    }
    assert_eq!(answers[0], answers[1]);
    // And the same delays: past two free attempts both waited (max_delay_secs = 1).
    for t in &took {
        assert!(*t >= std::time::Duration::from_millis(900), "{took:?}");
    }
}
