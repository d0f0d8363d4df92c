//! Submission (RFC 6409) and AUTH (RFC 4954): PLAIN (with and without SASL-IR) and LOGIN,
//! TLS required (loopback exception only when configured), sender ownership at MAIL and
//! in the From header, local delivery, external recipients refused until the outbound
//! queue exists, AUTH not offered on the MX.

mod common;
use base64::Engine;
use common::*;
use postern_smtp::{SmtpLimits, SmtpPolicy};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn plain(user: &str, pw: &str) -> String {
    b64(&format!("\0{user}\0{pw}"))
}

/// Plaintext AUTH refused even on loopback.
fn strict() -> SmtpPolicy {
    SmtpPolicy {
        allow_plaintext_auth_on_loopback: false,
        ..Default::default()
    }
}

#[tokio::test]
async fn auth_needs_tls_then_plain_and_login_work() {
    let env = Env::with(SmtpLimits::default(), strict()).await;
    let mut c = Client::connect(env.submission).await;
    let r = c.expect("EHLO client.example", 250).await;
    // RFC 4954 / RFC 8314: no mechanisms offered before TLS.
    assert!(!r.text.contains("AUTH"), "{}", r.text);
    let r = c
        .expect(
            &format!("AUTH PLAIN {}", plain("alice@example.com", ALICE_PW)),
            538,
        )
        .await;
    assert!(r.text.starts_with("538 5.7.11"), "{}", r.text);
    c.expect("MAIL FROM:<alice@example.com>", 530).await;
    c.starttls(&env.cert).await;
    let r = c.expect("EHLO client.example", 250).await;
    assert!(
        r.text.contains("250-AUTH PLAIN LOGIN\r\n") || r.text.contains("250 AUTH PLAIN LOGIN\r\n"),
        "{}",
        r.text
    );
    // ok: PLAIN with the initial response (SASL-IR, RFC 4959).
    let r = c
        .expect(
            &format!("AUTH PLAIN {}", plain("alice@example.com", ALICE_PW)),
            235,
        )
        .await;
    assert!(r.text.starts_with("235 2.7.0"));
    c.expect(
        &format!("AUTH PLAIN {}", plain("alice@example.com", ALICE_PW)),
        503,
    )
    .await;
    let body = message("alice@example.com", "bob@example.com", "from-alice");
    assert_eq!(
        c.send_mail("alice@example.com", &["bob@example.com"], &body)
            .await
            .code,
        250
    );
    let got = env.inbox("bob@example.com").await;
    assert_eq!(without_trace(&got[0]), body);
    assert!(String::from_utf8_lossy(&got[0]).contains(" with ESMTPSA id "));
    // The delivery is recorded as alice's, with how she logged in.
    let l = env.ledger("message.deliver").await;
    assert_eq!(
        l[0].record.actor.account.as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(l[0].record.session.auth_method.as_deref(), Some("password"));

    // LOGIN, and PLAIN without initial response, on implicit TLS (465).
    let mut c = Client::connect_tls(env.submissions, &env.cert).await;
    c.expect("EHLO client.example", 250).await;
    c.expect("AUTH LOGIN", 334).await;
    c.expect(&b64("bob@example.com"), 334).await;
    c.expect(&b64(BOB_PW), 235).await;
    let mut c = Client::connect_tls(env.submissions, &env.cert).await;
    c.expect("EHLO client.example", 250).await;
    let r = c.expect("AUTH PLAIN", 334).await;
    assert_eq!(r.text, "334 \r\n");
    c.expect(&plain("bob@example.com", BOB_PW), 235).await;
}

#[tokio::test]
async fn auth_failures() {
    let env = Env::start().await;
    let mut c = Client::connect(env.submission).await;
    c.expect("AUTH PLAIN", 503).await; // before EHLO
    c.expect("EHLO client.example", 250).await;
    let r = c
        .expect(
            &format!(
                "AUTH PLAIN {}",
                plain("alice@example.com", "wrong-password")
            ),
            535,
        )
        .await;
    assert!(r.text.starts_with("535 5.7.8"), "{}", r.text);
    // Unknown user: the same answer.
    let r = c
        .expect(
            &format!(
                "AUTH PLAIN {}",
                plain("nobody@example.com", "wrong-password")
            ),
            535,
        )
        .await;
    assert!(r.text.starts_with("535 5.7.8"), "{}", r.text);
    c.expect("AUTH CRAM-MD5", 504).await;
    c.expect("AUTH PLAIN !!!notbase64", 501).await;
    c.expect("AUTH LOGIN", 334).await;
    let r = c.expect("*", 501).await;
    assert!(r.text.starts_with("501 5.0.0"), "{}", r.text);
    // Someone else's identity as authzid: no proxy authorization.
    let r = c
        .expect(
            &format!(
                "AUTH PLAIN {}",
                b64(&format!("bob@example.com\0alice@example.com\0{ALICE_PW}"))
            ),
            535,
        )
        .await;
    assert!(r.text.starts_with("535"));
    // Every attempt is in the ledger.
    let logins = env.ledger("auth.login").await;
    assert!(
        logins
            .iter()
            .filter(|e| e.record.result == "failed")
            .count()
            >= 2
    );
}

#[tokio::test]
async fn no_auth_on_the_mx() {
    let env = Env::start().await;
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("alice@example.com", ALICE_PW)),
        502,
    )
    .await;
}

#[tokio::test]
async fn sender_must_be_owned() {
    let env = Env::start().await;
    let mut c = env.alice().await;
    // no: someone else's address, another domain, the null sender
    let r = c.expect("MAIL FROM:<bob@example.com>", 553).await;
    assert!(r.text.starts_with("553 5.7.1"), "{}", r.text);
    c.expect("MAIL FROM:<alice@other.example>", 553).await;
    c.expect("MAIL FROM:<>", 553).await;
    // The catch-all does not make every address of catch.example alice's (it is bob's).
    c.expect("MAIL FROM:<x@catch.example>", 553).await;
    // ok: her own, an alias pointing at her, plus forms of both, any case
    for from in [
        "alice@example.com",
        "info@example.com",
        "alice+x@example.com",
        "info+y@example.com",
        "ALICE@example.COM",
    ] {
        c.expect(&format!("MAIL FROM:<{from}>"), 250).await;
        c.expect("RSET", 250).await;
    }
}

#[tokio::test]
async fn from_header_must_be_owned() {
    let env = Env::start().await;
    let mut c = env.alice().await;
    let forged = b"From: Bob <bob@example.com>\r\nSubject: spoof\r\n\r\nx\r\n";
    let r = c
        .send_mail("alice@example.com", &["bob@example.com"], forged)
        .await;
    assert!(r.text.starts_with("550 5.7.1"), "{}", r.text);
    let two = b"From: <alice@example.com>\r\nFrom: <bob@example.com>\r\nSubject: two\r\n\r\nx\r\n";
    let r = c
        .send_mail("alice@example.com", &["bob@example.com"], two)
        .await;
    assert!(r.text.starts_with("550 5.7.1"), "{}", r.text);
    let mixed = b"From: <alice@example.com>, <bob@example.com>\r\nSubject: two\r\n\r\nx\r\n";
    let r = c
        .send_mail("alice@example.com", &["bob@example.com"], mixed)
        .await;
    assert!(r.text.starts_with("550 5.7.1"), "{}", r.text);
    let none = b"Subject: no from\r\n\r\nx\r\n";
    let r = c
        .send_mail("alice@example.com", &["bob@example.com"], none)
        .await;
    assert!(r.text.starts_with("550 5.7.1"), "{}", r.text);
    assert_eq!(env.inbox("bob@example.com").await.len(), 0);
    // ok: an alias of hers in From, with a display name
    let ok = b"From: Info Desk <info@example.com>\r\nSubject: fine\r\n\r\nx\r\n";
    assert_eq!(
        c.send_mail("alice@example.com", &["bob@example.com"], ok)
            .await
            .code,
        250
    );
    assert_eq!(env.inbox("bob@example.com").await.len(), 1);
}

/// A second From written `From :` (RFC 5322 §4.5.3) is still a From field, and a line
/// that is neither a field nor a continuation is refused on submission (readers differ
/// on it).
#[tokio::test]
async fn from_header_obsolete_syntax_and_stray_lines() {
    let env = Env::start().await;
    let mut c = env.alice().await;
    let two = b"From: <alice@example.com>\r\nFrom : <ceo@example.com>\r\nSubject: two\r\n\r\nx\r\n";
    let r = c
        .send_mail("alice@example.com", &["bob@example.com"], two)
        .await;
    assert!(r.text.starts_with("550 5.7.1"), "{}", r.text);
    let stray = b"From: <alice@example.com>\r\nX no-colon\r\nFrom: <ceo@example.com>\r\nSubject: s\r\n\r\nx\r\n";
    let r = c
        .send_mail("alice@example.com", &["bob@example.com"], stray)
        .await;
    assert!(r.text.starts_with("550 5.7.1"), "{}", r.text);
    let stray_only = b"From: <alice@example.com>\r\nX no-colon\r\nSubject: s\r\n\r\nx\r\n";
    let r = c
        .send_mail("alice@example.com", &["bob@example.com"], stray_only)
        .await;
    assert!(r.text.starts_with("550 5.7.1"), "{}", r.text);
    assert!(r.text.contains("neither a field"), "{}", r.text);
    assert_eq!(env.inbox("bob@example.com").await.len(), 0);
}

#[tokio::test]
async fn external_recipients_wait_for_the_queue() {
    let env = Env::start().await;
    let mut c = env.alice().await;
    c.expect("MAIL FROM:<alice@example.com>", 250).await;
    // Issue 5 (outbound queue) is not built: 451 4.4.0, a temporary refusal.
    let r = c.expect("RCPT TO:<friend@other.example>", 451).await;
    assert!(r.text.starts_with("451 4.4.0"), "{}", r.text);
    c.expect("RCPT TO:<nobody@example.com>", 550).await;
    c.expect("RCPT TO:<team@example.com>", 250).await;
    c.expect("DATA", 354).await;
    c.send(&message("alice@example.com", "team@example.com", "team"))
        .await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
    assert_eq!(env.inbox("bob@example.com").await.len(), 1);
}

#[tokio::test]
async fn submission_forged_results_removed() {
    let env = Env::start().await;
    let mut c = env.alice().await;
    let body = b"Authentication-Results: mx.example.com; dkim=pass\r\nFrom: <alice@example.com>\r\nSubject: s\r\n\r\nx\r\n";
    assert_eq!(
        c.send_mail("alice@example.com", &["bob@example.com"], body)
            .await
            .code,
        250
    );
    let got = env.inbox("bob@example.com").await;
    let s = String::from_utf8_lossy(&got[0]);
    assert!(!s.contains("Authentication-Results"), "{s}");
    assert!(got[0].ends_with(b"\r\nFrom: <alice@example.com>\r\nSubject: s\r\n\r\nx\r\n"));
}

/// The shared login limiter (DESIGN invariant 11): past the free attempts, AUTH answers
/// 454 4.7.0 (temporary) without checking the password.
#[tokio::test]
async fn throttled_auth_is_temporary() {
    let env = Env::start().await;
    let mut c = Client::connect(env.submission).await;
    c.expect("EHLO client.example", 250).await;
    let mut throttled = None;
    for i in 0..12 {
        let r = c
            .cmd(&format!(
                "AUTH PLAIN {}",
                plain("bob@example.com", &format!("wrong-{i}"))
            ))
            .await;
        if r.code == 454 {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.code, 535, "{}", r.text);
        if r.code == 0 {
            break;
        }
        if i == 8 {
            // Errors-before-disconnect (10) must not end the session first.
            c = Client::connect(env.submission).await;
            c.expect("EHLO client.example", 250).await;
        }
    }
    let r = throttled.expect("no 454 after repeated failures");
    assert!(r.text.starts_with("454 4.7.0"), "{}", r.text);
    // Even the right password is refused while throttled.
    let r = c
        .cmd(&format!("AUTH PLAIN {}", plain("bob@example.com", BOB_PW)))
        .await;
    assert_eq!(r.code, 454, "{}", r.text);
}
