//! STARTTLS (RFC 9051 §6.2.1) and the injection it invites (CVE-2011-0411, THREATS.md):
//! plaintext pipelined after STARTTLS is thrown away, never run under TLS.

use super::client::*;

#[test]
fn starttls_ok_then_session_under_tls() {
    let env = Env::start();
    let mut c = env.connect();
    let r = c.cmd("STARTTLS");
    r.ok();
    assert_eq!(r.text, "Begin TLS negotiation now");
    assert!(r.untagged.is_empty(), "{r:?}");
    let mut c = c.start_tls(&env.server.cert_path());
    c.login(ALICE.0, ALICE.1);
    c.cmd("SELECT INBOX").ok();
}

#[test]
fn pipelined_commands_after_starttls_are_discarded() {
    let env = Env::start();
    let mut c = env.connect();
    // One segment: STARTTLS and, in plaintext behind it, a CAPABILITY and a LOGIN an
    // attacker on the path could have added.
    c.send_raw(
        format!(
            "a STARTTLS\r\nb CAPABILITY\r\nc LOGIN {} {}\r\n",
            ALICE.0, ALICE.1
        )
        .as_bytes(),
    );
    assert_eq!(c.read_response_line(), "a OK Begin TLS negotiation now");
    let mut c = c.start_tls(&env.server.cert_path());
    // Nothing queued answers under TLS: the next response is NOOP's own.
    let r = c.cmd("NOOP");
    r.ok();
    assert!(r.untagged.is_empty(), "plaintext ran under TLS: {r:?}");
    // And the injected LOGIN did not log in.
    let r = c.cmd("SELECT INBOX");
    r.bad();
    assert_eq!(r.text, "Command not valid before authentication");
}

#[test]
fn starttls_twice_is_bad() {
    let env = Env::start();
    let mut c = env.connect();
    c.cmd("STARTTLS").ok();
    let mut c = c.start_tls(&env.server.cert_path());
    let r = c.cmd("STARTTLS");
    r.bad();
    assert_eq!(r.text, "TLS is already active");
    // The TLS session goes on.
    c.login(ALICE.0, ALICE.1);
}

#[test]
fn starttls_on_implicit_tls_is_bad() {
    let env = Env::start();
    let mut c = Client::connect_tls(env.server.addr("imaps"), &env.server.cert_path());
    let r = c.cmd("STARTTLS");
    r.bad();
    assert_eq!(r.text, "TLS is already active");
    c.cmd("NOOP").ok();
}

#[test]
fn starttls_after_login_is_bad() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let r = c.cmd("STARTTLS");
    r.bad();
    assert_eq!(r.text, "Already authenticated");
    // Still plaintext and working.
    c.cmd("NOOP").ok();
}

#[test]
fn starttls_with_arguments_is_bad() {
    let env = Env::start();
    let mut c = env.connect();
    c.cmd("STARTTLS now").bad();
    c.cmd("NOOP").ok();
}
