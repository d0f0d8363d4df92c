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

/// Submission to another domain: the recipient is accepted and the message goes to the
/// outbound queue in the same batch as the local deliveries and the ledger entry.
#[tokio::test]
async fn external_recipients_go_to_the_queue() {
    let env = Env::start().await;
    let mut c = env.alice().await;
    c.expect("MAIL FROM:<alice@example.com>", 250).await;
    c.expect("RCPT TO:<friend@other.example>", 250).await;
    c.expect("RCPT TO:<nobody@example.com>", 550).await;
    c.expect("RCPT TO:<team@example.com>", 250).await;
    c.expect("DATA", 354).await;
    c.send(&message("alice@example.com", "team@example.com", "team"))
        .await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
    assert_eq!(env.inbox("bob@example.com").await.len(), 1);
    let stats = env.core.queue_stats().await.unwrap();
    assert_eq!((stats.messages, stats.queued_recipients), (1, 1));
    let delivered = env.ledger("message.deliver").await;
    let after = delivered.last().unwrap().record.after.clone().unwrap();
    assert_eq!(after["queued"]["recipients"][0], "friend@other.example");
    let id = postern_core::store::QueueId::parse(after["queued"]["id"].as_str().unwrap()).unwrap();
    let q = env.core.queued(id).await.unwrap().unwrap();
    assert_eq!(q.message.sender, "alice@example.com");
    assert_eq!(q.recipients[0].domain, "other.example");
    // Only external recipients: queued, nothing stored locally.
    c.expect("MAIL FROM:<alice@example.com>", 250).await;
    c.expect("RCPT TO:<a@other.example>", 250).await;
    c.expect("RCPT TO:<b@third.example>", 250).await;
    c.expect("DATA", 354).await;
    c.send(&message("alice@example.com", "a@other.example", "out"))
        .await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    let stats = env.core.queue_stats().await.unwrap();
    assert_eq!((stats.messages, stats.queued_recipients), (2, 3));
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
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

/// RFC 3461 (DSN) and RFC 8689 (REQUIRETLS) on submission: offered, parsed, checked,
/// carried into the queue; a local NOTIFY=SUCCESS recipient makes a `delivered` notice.
#[tokio::test]
async fn dsn_and_requiretls_parameters_on_submission() {
    let env = Env::start().await;
    // The MX offers neither, and refuses the parameters.
    let mut mx = env.client().await;
    let ehlo = mx.ok("EHLO client.example").await;
    assert!(
        !ehlo.text.contains("DSN") && !ehlo.text.contains("REQUIRETLS"),
        "{}",
        ehlo.text
    );
    mx.expect("MAIL FROM:<x@other.example> RET=HDRS", 555).await;

    // Plaintext submission (loopback): DSN yes, REQUIRETLS only over TLS.
    let mut c = Client::connect(env.submission).await;
    let ehlo = c.ok("EHLO client.example").await;
    assert!(
        ehlo.text.contains("250-DSN") || ehlo.text.contains("250 DSN"),
        "{}",
        ehlo.text
    );
    assert!(!ehlo.text.contains("REQUIRETLS"), "{}", ehlo.text);
    c.expect(
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXBhc3N3b3JkLTE=",
        235,
    )
    .await;
    c.expect("MAIL FROM:<alice@example.com> REQUIRETLS", 555)
        .await;
    c.expect("MAIL FROM:<alice@example.com> RET=ALL", 501).await;
    c.expect("MAIL FROM:<alice@example.com> ENVID=a=b", 501)
        .await;
    c.expect(
        &format!("MAIL FROM:<alice@example.com> ENVID={}", "x".repeat(101)),
        501,
    )
    .await;
    c.expect("MAIL FROM:<alice@example.com> RET=hdrs ENVID=QQ+2B314", 250)
        .await;
    c.expect("RCPT TO:<friend@other.example> NOTIFY=NEVER,SUCCESS", 501)
        .await;
    c.expect("RCPT TO:<friend@other.example> NOTIFY=SUCCESS,SUCCESS", 501)
        .await;
    c.expect("RCPT TO:<friend@other.example> ORCPT=rfc822", 501)
        .await;
    c.expect("RCPT TO:<friend@other.example> XFOO=1", 555).await;
    c.expect(
        "RCPT TO:<friend@other.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;Friend+40other.example",
        250,
    )
    .await;
    c.expect("RCPT TO:<bob@example.com> NOTIFY=SUCCESS", 250)
        .await;
    c.expect("DATA", 354).await;
    c.send(&message("alice@example.com", "bob@example.com", "dsn"))
        .await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);

    let delivered = env.ledger("message.deliver").await;
    let after = delivered
        .iter()
        .rev()
        .find_map(|e| e.record.after.clone().filter(|a| a.get("queued").is_some()))
        .unwrap();
    let id = postern_core::store::QueueId::parse(after["queued"]["id"].as_str().unwrap()).unwrap();
    let q = env.core.queued(id).await.unwrap().unwrap();
    assert_eq!(q.message.envid.as_deref(), Some("QQ+2B314"));
    assert_eq!(q.message.ret.as_deref(), Some("HDRS"));
    assert!(!q.message.requiretls);
    assert_eq!(q.recipients[0].notify.as_deref(), Some("FAILURE,DELAY"));
    assert_eq!(
        q.recipients[0].orcpt.as_deref(),
        Some("rfc822;Friend+40other.example")
    );
    // bob got the message; alice got the `delivered` notice for bob.
    assert_eq!(env.inbox("bob@example.com").await.len(), 1);
    let notices = env.inbox("alice@example.com").await;
    assert_eq!(notices.len(), 1);
    let text = String::from_utf8_lossy(&notices[0]);
    assert!(
        text.contains("Subject: Successful Mail Delivery Report"),
        "{text}"
    );
    assert!(
        text.contains("Final-Recipient: rfc822; bob@example.com"),
        "{text}"
    );
    assert!(
        text.contains("Action: delivered\r\nStatus: 2.0.0"),
        "{text}"
    );
    // RFC 3461 §6.3(a): ENVID decoded from xtext.
    assert!(text.contains("Original-Envelope-Id: QQ+314\r\n"), "{text}");
    assert!(text.contains("Content-Type: text/rfc822-headers"), "{text}");
    assert!(
        !text.contains("Hello bob@example.com."),
        "the body is not returned"
    );

    // Over TLS (587 STARTTLS): REQUIRETLS is offered and recorded on the queued message.
    let mut t = Client::connect(env.submission).await;
    t.ok("EHLO client.example").await;
    t.starttls(&env.cert).await;
    let ehlo = t.ok("EHLO client.example").await;
    assert!(ehlo.text.contains("REQUIRETLS"), "{}", ehlo.text);
    t.expect(
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXBhc3N3b3JkLTE=",
        235,
    )
    .await;
    t.expect("MAIL FROM:<alice@example.com> REQUIRETLS", 250)
        .await;
    t.expect("RCPT TO:<pal@other.example>", 250).await;
    t.expect("DATA", 354).await;
    t.send(&message("alice@example.com", "pal@other.example", "tls"))
        .await;
    t.send(b".\r\n").await;
    assert_eq!(t.reply().await.code, 250);
    let all = env.store.queue(10).await.unwrap();
    assert!(
        all.iter()
            .any(|(m, r)| m.requiretls && r[0].address == "pal@other.example")
    );
}

/// Sender, Resent-From and Resent-Sender name the sender too (RFC 5322 §3.6.2, §3.6.6):
/// on submission each must be an address the user may send as, like From.
#[tokio::test]
async fn sender_and_resent_fields_must_be_owned() {
    let env = Env::start().await;
    let mut c = env.alice().await;
    for (field, code) in [
        ("Sender: <bob@example.com>", "550 5.7.1"),
        ("Sender: Alice <alice@example.com>", "250"),
        ("Resent-From: <ceo@example.com>", "550 5.7.1"),
        ("Resent-Sender: <bob@example.com>", "550 5.7.1"),
        ("Resent-From: <alice+lists@example.com>", "250"),
        ("Sender: undisclosed:;", "550 5.7.1"),
    ] {
        let body = format!(
            "From: <alice@example.com>\r\n{field}\r\nTo: <carol@example.com>\r\nSubject: s\r\n\r\nx\r\n"
        );
        let r = c
            .send_mail("alice@example.com", &["carol@example.com"], body.as_bytes())
            .await;
        assert!(r.text.starts_with(code), "{field}: {}", r.text);
    }
    assert_eq!(env.inbox("carol@example.com").await.len(), 2);
}

/// Send As (the `0` right on an account's INBOX, RFC 4314 §2.1 leaves digits to the
/// implementation): alice may send with bob's address once bob's INBOX grants it to her,
/// as From, Sender or MAIL FROM; carol, without the grant, may not.
#[tokio::test]
async fn send_as_is_granted_on_the_inbox() {
    use postern_core::access::{AclChange, Rights};
    let env = Env::start().await;
    let body =
        b"From: <bob@example.com>\r\nTo: <carol@example.com>\r\nSubject: as bob\r\n\r\nx\r\n";
    let mut c = env.alice().await;
    let r = c
        .send_mail("alice@example.com", &["carol@example.com"], body)
        .await;
    assert!(r.text.starts_with("550 5.7.1"), "{}", r.text);

    let admin = env
        .core
        .admin_session(
            "smtp-test-admin-token-0123456789",
            "test",
            postern_core::store::SessionInfo::default(),
        )
        .unwrap();
    env.core
        .admin_set_mailbox_acl(
            &admin,
            "bob@example.com",
            "INBOX",
            "alice@example.com",
            AclChange::Replace(Rights::parse("0").unwrap()),
        )
        .await
        .unwrap();
    let r = c
        .send_mail("bob@example.com", &["carol@example.com"], body)
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
    assert_eq!(env.inbox("carol@example.com").await.len(), 1);
    // The grant is for bob's addresses only.
    let as_carol =
        b"From: <carol@example.com>\r\nTo: <bob@example.com>\r\nSubject: as carol\r\n\r\nx\r\n";
    let r = c
        .send_mail("alice@example.com", &["bob@example.com"], as_carol)
        .await;
    assert!(r.text.starts_with("550 5.7.1"), "{}", r.text);
}
