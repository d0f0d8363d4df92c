//! CAPABILITY and the greeting (RFC 9051 §6.1.1, §7.1): what is offered before login
//! (LITERAL-, STARTTLS, AUTH=PLAIN or LOGINDISABLED), after STARTTLS, on port 993 and
//! after login.

use super::client::*;

/// Before login on a plain connection where loopback plaintext is allowed.
const PRE_PLAIN: &str = "IMAP4rev2 IMAP4rev1 SASL-IR ID ENABLE LITERAL- STARTTLS AUTH=PLAIN";
/// Before login on a plain connection when LOGIN needs TLS (RFC 9051 §6.2.3).
const PRE_STRICT: &str = "IMAP4rev2 IMAP4rev1 SASL-IR ID ENABLE LITERAL- STARTTLS LOGINDISABLED";
/// Before login under TLS: no STARTTLS any more, AUTH=PLAIN offered.
const PRE_TLS: &str = "IMAP4rev2 IMAP4rev1 SASL-IR ID ENABLE LITERAL- AUTH=PLAIN";
/// After login (the default `imap_literal_size` is the 50 MiB message size).
pub const AUTHED: &str = "IMAP4rev2 IMAP4rev1 SASL-IR ID ENABLE LITERAL+ IDLE NAMESPACE \
UNSELECT UIDPLUS MOVE SPECIAL-USE CREATE-SPECIAL-USE CONDSTORE QRESYNC ESEARCH SEARCHRES SORT \
SORT=DISPLAY THREAD=REFERENCES THREAD=ORDEREDSUBJECT LIST-EXTENDED LIST-STATUS STATUS=SIZE \
QUOTA QUOTA=RES-STORAGE BINARY MULTIAPPEND CHILDREN OBJECTID SAVEDATE PREVIEW UTF8=ACCEPT \
WITHIN ACL RIGHTS=texk COMPRESS=DEFLATE APPENDLIMIT=52428800";

fn capability(c: &mut Client) -> String {
    let r = c.cmd("CAPABILITY");
    r.ok();
    assert_eq!(r.text, "CAPABILITY completed");
    assert_eq!(r.untagged.len(), 1, "{r:?}");
    r.untagged[0].clone()
}

#[test]
fn greeting_and_capability_before_and_after_login() {
    let env = Env::start();
    let mut c = env.connect();
    assert_eq!(
        c.greeting,
        format!("* OK [CAPABILITY {PRE_PLAIN}] Postern IMAP4rev2 ready")
    );
    assert_eq!(capability(&mut c), format!("* CAPABILITY {PRE_PLAIN}"));
    let r = c.cmd(&format!("LOGIN \"{}\" \"{}\"", ALICE.0, ALICE.1));
    r.ok();
    // RFC 9051 §6.2.3: the capabilities change at login, so they come with the OK.
    assert_eq!(r.text, format!("[CAPABILITY {AUTHED}] Logged in"));
    assert!(r.untagged.is_empty(), "{r:?}");
    assert_eq!(capability(&mut c), format!("* CAPABILITY {AUTHED}"));
}

#[test]
fn capability_takes_no_arguments() {
    let env = Env::start();
    let mut c = env.connect();
    let r = c.cmd("CAPABILITY IMAP4rev2");
    r.bad();
    assert!(r.untagged.is_empty(), "{r:?}");
    // The session goes on.
    assert_eq!(capability(&mut c), format!("* CAPABILITY {PRE_PLAIN}"));
}

#[test]
fn logindisabled_without_tls_when_loopback_plaintext_is_off() {
    let env = Env::start_strict("");
    let mut c = env.connect();
    assert_eq!(
        c.greeting,
        format!("* OK [CAPABILITY {PRE_STRICT}] Postern IMAP4rev2 ready")
    );
    assert_eq!(capability(&mut c), format!("* CAPABILITY {PRE_STRICT}"));
    // After STARTTLS: no STARTTLS, no LOGINDISABLED, AUTH=PLAIN.
    let r = c.cmd("STARTTLS");
    r.ok();
    let mut c = c.start_tls(&env.server.cert_path());
    assert_eq!(capability(&mut c), format!("* CAPABILITY {PRE_TLS}"));
    c.login(ALICE.0, ALICE.1);
    assert_eq!(capability(&mut c), format!("* CAPABILITY {AUTHED}"));
}

#[test]
fn implicit_tls_offers_auth_and_no_starttls() {
    let env = Env::start_strict("");
    let mut c = Client::connect_tls(env.server.addr("imaps"), &env.server.cert_path());
    assert_eq!(
        c.greeting,
        format!("* OK [CAPABILITY {PRE_TLS}] Postern IMAP4rev2 ready")
    );
    assert_eq!(capability(&mut c), format!("* CAPABILITY {PRE_TLS}"));
}

#[test]
fn capability_after_starttls_with_loopback_plaintext_allowed() {
    let env = Env::start();
    let mut c = env.connect();
    c.cmd("STARTTLS").ok();
    let mut c = c.start_tls(&env.server.cert_path());
    assert_eq!(capability(&mut c), format!("* CAPABILITY {PRE_TLS}"));
}
