//! MAIL and RCPT: parameters, address syntax, every open-relay form of THREATS.md,
//! unknown users, forwarding-only aliases, recipient limits and RCPT probing.

mod common;
use common::*;
use postern_smtp::{SmtpLimits, SmtpPolicy};
use std::time::Duration;

async fn in_tx(env: &Env) -> Client {
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    c.expect("MAIL FROM:<sender@sender.example>", 250).await;
    c
}

#[tokio::test]
async fn mail_parameters() {
    let env = Env::start().await;
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    // ok
    let r = c
        .expect("MAIL FROM:<a@sender.example> SIZE=1000 BODY=8BITMIME", 250)
        .await;
    assert!(r.text.starts_with("250 2.1.0"));
    c.expect("RSET", 250).await;
    c.expect("MAIL FROM:<>", 250).await;
    c.expect("RSET", 250).await;
    c.expect("mail from: <a@sender.example> smtputf8", 250)
        .await;
    c.expect("RSET", 250).await;
    // RFC 1870 §6.2: declared size over the limit.
    let r = c
        .expect("MAIL FROM:<a@sender.example> SIZE=52428801", 552)
        .await;
    assert!(r.text.starts_with("552 5.3.4"), "{}", r.text);
    // no: unknown or unoffered parameters
    let r = c.expect("MAIL FROM:<a@sender.example> FOO=bar", 555).await;
    assert!(r.text.starts_with("555 5.5.4"));
    c.expect("MAIL FROM:<a@sender.example> BODY=BINARYMIME", 555)
        .await;
    c.expect("MAIL FROM:<a@sender.example> AUTH=<>", 555).await;

    // bad: syntax
    c.expect("MAIL FROM:<a@sender.example> SIZE=abc", 501).await;
    c.expect("MAIL FROM:<a@sender.example> SIZE=1 SIZE=2", 501)
        .await;
    c.expect("MAIL FROM:a@sender.example", 501).await;
    c.expect("MAIL <a@sender.example>", 501).await;
    let r = c.expect("MAIL FROM:<not an address>", 553).await;
    assert!(r.text.starts_with("553 5.1.7"), "{}", r.text);
    // RFC 6531 §3.4: a UTF-8 address needs SMTPUTF8.
    let r = c.expect("MAIL FROM:<ü@sender.example>", 553).await;
    assert!(r.text.starts_with("553 5.6.7"), "{}", r.text);
    // DSN (RFC 3461) is not offered until issue 5 can send the notices.
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    // DSN (RFC 3461) is not offered until issue 5 can send the notices.
    for p in ["RET=HDRS", "ENVID=x+2By"] {
        let r = c
            .expect(&format!("MAIL FROM:<a@sender.example> {p}"), 555)
            .await;
        assert!(r.text.starts_with("555 5.5.4"), "{p}: {}", r.text);
    }
}

#[tokio::test]
async fn open_relay_forms_are_refused() {
    let limits = SmtpLimits {
        errors_before_disconnect: 100,
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = in_tx(&env).await;
    for (rcpt, code, status) in [
        ("<u@other.example>", 550, "5.7.1"),
        ("<u%other.example@example.com>", 553, "5.1.3"),
        ("<@example.com:u@other.example>", 553, "5.7.1"),
        ("<@example.com,@x.example:u@other.example>", 553, "5.7.1"),
        ("<\"u@other.example\">", 553, "5.1.3"),
        ("<\"u@other.example\"@example.com>", 553, "5.1.3"),
        ("<other.example!u>", 553, "5.1.3"),
        ("<other.example!u@example.com>", 553, "5.1.3"),
        ("<u@[127.0.0.1]>", 550, "5.7.1"),
        ("<u@[IPv6:::1]>", 550, "5.7.1"),
        ("<u@127.0.0.1>", 553, "5.1.3"),
    ] {
        let r = c.cmd(&format!("RCPT TO:{rcpt}")).await;
        assert_eq!(r.code, code, "{rcpt}: {}", r.text);
        assert!(
            r.text.starts_with(&format!("{code} {status}")),
            "{rcpt}: {}",
            r.text
        );
    }
    // Nothing was accepted, so there is nothing to send.
    c.expect("DATA", 554).await;
}

#[tokio::test]
async fn recipients_resolve() {
    let env = Env::start().await;
    let mut c = in_tx(&env).await;
    // ok: account, alias, group, plus addressing, catch-all, case, postmaster
    for rcpt in [
        "alice@example.com",
        "info@example.com",
        "team@example.com",
        "bob+lists@example.com",
        "anything@catch.example",
        "Alice@EXAMPLE.com",
        "Postmaster",
    ] {
        let r = c.expect(&format!("RCPT TO:<{rcpt}>"), 250).await;
        assert!(r.text.starts_with("250 2.1.5"), "{rcpt}: {}", r.text);
    }
    // no: unknown user
    let r = c.expect("RCPT TO:<nobody@example.com>", 550).await;
    assert!(r.text.starts_with("550 5.1.1"), "{}", r.text);
    // Only external targets: forwarding needs the installation's SRS key, which this
    // Core was not given (`postern serve` installs one; tests/outbound.rs
    // `alias_forwarding_uses_srs_and_bounces_come_back` forwards end to end) → 451.
    let r = c.expect("RCPT TO:<fwd@example.com>", 451).await;
    assert!(r.text.starts_with("451 4.3.0"), "{}", r.text);
    // Local and external targets (alice and an outside address): not only the local
    // half, the whole recipient waits → 451.
    let r = c.expect("RCPT TO:<both@example.com>", 451).await;
    assert!(r.text.starts_with("451 4.3.0"), "{}", r.text);
    // bad: parameters (DSN's NOTIFY and ORCPT are not offered: 555 5.5.4)
    for p in [
        "NOTIFY=SUCCESS,FAILURE",
        "ORCPT=rfc822;alice@example.com",
        "NOTIFY=NEVER",
    ] {
        let r = c
            .expect(&format!("RCPT TO:<alice@example.com> {p}"), 555)
            .await;
        assert!(r.text.starts_with("555 5.5.4"), "{p}: {}", r.text);
    }
    c.expect("RCPT TO:<alice@example.com> FOO=1", 555).await;
    c.expect("RCPT TO:<ü@example.com>", 553).await;
    c.expect("RCPT TO:<>", 501).await;
    c.expect("RCPT TO:alice@example.com", 501).await;
}

#[tokio::test]
async fn recipients_per_message() {
    let limits = SmtpLimits {
        recipients_per_message: 3,
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = in_tx(&env).await;
    for _ in 0..3 {
        c.expect("RCPT TO:<alice@example.com>", 250).await;
    }
    let r = c.expect("RCPT TO:<bob@example.com>", 452).await;
    assert!(r.text.starts_with("452 4.5.3"), "{}", r.text);
    // The message goes to the accepted recipients, once per principal.
    c.expect("DATA", 354).await;
    c.send(&message(
        "sender@sender.example",
        "alice@example.com",
        "limit",
    ))
    .await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
    assert_eq!(env.inbox("bob@example.com").await.len(), 0);
}

#[tokio::test]
async fn unknown_recipients_per_connection() {
    let policy = SmtpPolicy {
        max_unknown_recipients: 3,
        ..test_policy()
    };
    let env = Env::with(SmtpLimits::default(), policy).await;
    let all = postern_core::store::LedgerQuery {
        limit: 10_000,
        ..Default::default()
    };
    let ledger_before = env.store.ledger(&all).await.unwrap().len();
    let mut c = in_tx(&env).await;
    c.expect("RCPT TO:<nobody1@example.com>", 550).await;
    c.expect("RCPT TO:<alice@example.com>", 250).await;
    c.expect("RCPT TO:<nobody2@example.com>", 550).await;
    c.send(b"RCPT TO:<nobody3@example.com>\r\n").await;
    assert_eq!(c.reply().await.code, 550);
    let r = c.reply().await;
    assert!(r.text.starts_with("421 4.7.1"), "{}", r.text);
    assert_eq!(c.until_closed().await, "");
    // Refused RCPTs are counted in metrics, not written to the ledger one by one.
    assert!(env.ledger("message.deliver").await.is_empty());
    assert_eq!(env.store.ledger(&all).await.unwrap().len(), ledger_before);
}

#[tokio::test]
async fn probing_from_one_address_is_blocked() {
    let policy = SmtpPolicy {
        max_unknown_recipients: 100,
        probe_ip_threshold: 4,
        probe_window: Duration::from_secs(60),
        probe_block: Duration::from_millis(800),
        ..test_policy()
    };
    let env = Env::with(SmtpLimits::default(), policy).await;
    let ledger_before = env
        .store
        .ledger(&postern_core::store::LedgerQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len();
    // Spread over two connections from the same address.
    let mut c = in_tx(&env).await;
    c.expect("RCPT TO:<p1@example.com>", 550).await;
    c.expect("RCPT TO:<p2@example.com>", 550).await;
    c.expect("QUIT", 221).await;
    let mut c = in_tx(&env).await;
    c.expect("RCPT TO:<p3@example.com>", 550).await;
    c.expect("RCPT TO:<p4@example.com>", 550).await;
    // Blocked now, even for a real user.
    let r = c.expect("RCPT TO:<alice@example.com>", 450).await;
    assert!(r.text.starts_with("450 4.7.1"), "{}", r.text);
    c.expect("QUIT", 221).await;
    let mut c = in_tx(&env).await;
    c.expect("RCPT TO:<alice@example.com>", 450).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    c.expect("RCPT TO:<alice@example.com>", 250).await;
    // No ledger entry per refused RCPT (flood amplification).
    let ledger_after = env
        .store
        .ledger(&postern_core::store::LedgerQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len();
    assert_eq!(ledger_before, ledger_after);
}

/// 550 5.1.1 for an unknown recipient is not an error towards
/// `errors_before_disconnect`: a list with many stale addresses still reaches the valid
/// ones (the unknown-recipient limit is the probing defence).
#[tokio::test]
async fn stale_recipients_are_not_errors() {
    let limits = SmtpLimits {
        errors_before_disconnect: 3,
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = in_tx(&env).await;
    for i in 0..12 {
        c.expect(&format!("RCPT TO:<gone{i}@example.com>"), 550)
            .await;
    }
    c.expect("RCPT TO:<alice@example.com>", 250).await;
    c.expect("DATA", 354).await;
    c.send(&message(
        "sender@sender.example",
        "alice@example.com",
        "list",
    ))
    .await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
}

/// RFC 5321 §4.5.1: postmaster@ every one of our domains is deliverable even without an
/// alias; it goes to the domain's first individual account. A domain with no account
/// has no one to take it (550 5.1.1).
#[tokio::test]
async fn postmaster_of_every_domain() {
    use postern_core::store::PrincipalKind;
    let env = Env::start().await;
    let admin = env
        .core
        .admin_session(
            "smtp-test-admin-token-0123456789",
            "cli:test",
            Default::default(),
        )
        .unwrap();
    env.core.domain_add(&admin, "plain.example").await.unwrap();
    env.core.domain_add(&admin, "empty.example").await.unwrap();
    for a in ["first@plain.example", "second@plain.example"] {
        env.core
            .account_add(&admin, a, PrincipalKind::Individual, None, None, None)
            .await
            .unwrap();
        // Distinct creation times.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut c = in_tx(&env).await;
    c.expect("RCPT TO:<PostMaster@plain.example>", 250).await;
    let r = c.expect("RCPT TO:<postmaster@empty.example>", 550).await;
    assert!(r.text.starts_with("550 5.1.1"), "{}", r.text);
    c.expect("DATA", 354).await;
    c.send(&message(
        "sender@sender.example",
        "postmaster@plain.example",
        "pm",
    ))
    .await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(env.inbox("first@plain.example").await.len(), 1);
    assert_eq!(env.inbox("second@plain.example").await.len(), 0);
}
