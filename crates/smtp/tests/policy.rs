//! Delivery policy: quotas at RCPT (RFC 1870 SIZE, 452 4.2.2 / 552 5.2.2) and at the
//! end of the message (nothing stored), and DMARC dispositions (p=reject → 550,
//! p=quarantine → Junk, both configurable) with SPF/DMARC answered by a local DNS.

mod common;
use common::*;
use postern_core::store::SpecialUse;
use postern_smtp::{DmarcQuarantineAction, DmarcRejectAction, SmtpLimits, SmtpPolicy};

async fn admin(env: &Env) -> postern_core::AdminSession {
    env.core
        .admin_session(
            "smtp-test-admin-token-0123456789",
            "cli:test",
            Default::default(),
        )
        .unwrap()
}

async fn used(env: &Env, address: &str) -> u64 {
    let a = admin(env).await;
    env.core.account_show(&a, address).await.unwrap().used_bytes
}

#[tokio::test]
async fn quota_at_rcpt_and_at_the_end() {
    let env = Env::start().await;
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    // carol's quota is 20000 octets.
    let mut first = b"Subject: fill\r\n\r\n".to_vec();
    first.extend(
        std::iter::repeat_n(
            b"0123456789012345678901234567890123456789012345678\r\n".to_vec(),
            300,
        )
        .flatten(),
    );
    assert_eq!(
        c.send_mail("a@sender.example", &["carol@example.com"], &first)
            .await
            .code,
        250
    );
    let left = 20_000 - used(&env, "carol@example.com").await;
    // A declared size that cannot fit: 552 5.2.2 (RFC 1870 §6.2).
    c.expect(
        &format!("MAIL FROM:<a@sender.example> SIZE={}", left + 1),
        250,
    )
    .await;
    let r = c.expect("RCPT TO:<carol@example.com>", 552).await;
    assert!(r.text.starts_with("552 5.2.2"), "{}", r.text);
    c.expect("RSET", 250).await;
    // Undeclared and too big: the batch fails on quota, nothing is stored for anyone.
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<carol@example.com>", 250).await;
    c.expect("RCPT TO:<alice@example.com>", 250).await;
    c.expect("DATA", 354).await;
    c.send(&first).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert!(r.text.starts_with("452 4.2.2"), "{}", r.text);
    assert_eq!(env.inbox("carol@example.com").await.len(), 1);
    assert_eq!(env.inbox("alice@example.com").await.len(), 0);
    assert_eq!(env.ledger("message.deliver").await.len(), 1);
    // Full (usage reaches the quota): 452 4.2.2 at RCPT.
    let a = admin(&env).await;
    let now = used(&env, "carol@example.com").await;
    env.core
        .account_quota(&a, "carol@example.com", Some(now))
        .await
        .unwrap();
    let r = c.expect("MAIL FROM:<a@sender.example>", 250).await;
    assert!(r.text.starts_with("250"));
    let r = c.expect("RCPT TO:<carol@example.com>", 452).await;
    assert!(r.text.starts_with("452 4.2.2"), "{}", r.text);
}

#[tokio::test]
async fn full_group_member_is_left_out() {
    let env = Env::start().await;
    let a = admin(&env).await;
    // bob is full (quota 0 < any message) — a group message still reaches alice.
    env.core
        .account_quota(&a, "bob@example.com", Some(0))
        .await
        .unwrap();
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<bob@example.com>", 452).await;
    c.expect("RCPT TO:<team@example.com>", 250).await;
    c.expect("DATA", 354).await;
    c.send(&message("a@sender.example", "team@example.com", "team"))
        .await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
    assert_eq!(env.inbox("bob@example.com").await.len(), 0);
    let l = env.ledger("message.deliver").await;
    let after = l[0].record.after.clone().unwrap();
    assert_eq!(
        after["details"]["quota_skipped"][0]["members"],
        serde_json::json!(["bob"])
    );
}

fn dns_records(env: &Env) {
    env.dns.txt("reject.test", "v=spf1 -all");
    env.dns.txt("_dmarc.reject.test", "v=DMARC1; p=reject");
    env.dns.txt("quarantine.test", "v=spf1 -all");
    env.dns
        .txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine");
    env.dns.txt("good.test", "v=spf1 ip4:127.0.0.1 -all");
    env.dns.txt("_dmarc.good.test", "v=DMARC1; p=reject");
}

async fn send_from(env: &Env, domain: &str, subject: &str) -> Reply {
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    let from = format!("ceo@{domain}");
    c.send_mail(
        &from,
        &["alice@example.com"],
        &message(&from, "alice@example.com", subject),
    )
    .await
}

#[tokio::test]
async fn dmarc_default_policy() {
    let env = Env::start().await;
    dns_records(&env);
    // p=reject and SPF fails with no DKIM: 550 5.7.1, nothing stored.
    let r = send_from(&env, "reject.test", "r").await;
    assert!(r.text.starts_with("550 5.7.1"), "{}", r.text);
    assert_eq!(env.inbox("alice@example.com").await.len(), 0);
    // p=quarantine: Junk.
    assert_eq!(send_from(&env, "quarantine.test", "q").await.code, 250);
    let junk = env.mailbox("alice@example.com", SpecialUse::Junk).await;
    assert_eq!(junk.len(), 1);
    assert!(
        String::from_utf8_lossy(&junk[0]).contains("dmarc=fail"),
        "{}",
        String::from_utf8_lossy(&junk[0])
    );
    // Aligned SPF pass: INBOX, and the header says so.
    assert_eq!(send_from(&env, "good.test", "g").await.code, 250);
    let inbox = env.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 1);
    let s = String::from_utf8_lossy(&inbox[0]);
    assert!(s.contains("spf=pass") && s.contains("dmarc=pass"), "{s}");
    let l = env.ledger("message.deliver").await;
    assert!(
        l.iter()
            .any(|e| e.record.after.as_ref().unwrap()["junk"] == true)
    );
}

#[tokio::test]
async fn dmarc_policy_is_configurable() {
    let policy = SmtpPolicy {
        dmarc_reject: DmarcRejectAction::Quarantine,
        dmarc_quarantine: DmarcQuarantineAction::Accept,
        ..test_policy()
    };
    let env = Env::with(SmtpLimits::default(), policy).await;
    dns_records(&env);
    assert_eq!(send_from(&env, "reject.test", "r").await.code, 250);
    assert_eq!(send_from(&env, "quarantine.test", "q").await.code, 250);
    assert_eq!(
        env.mailbox("alice@example.com", SpecialUse::Junk)
            .await
            .len(),
        1
    );
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
    let policy = SmtpPolicy {
        dmarc_reject: DmarcRejectAction::Accept,
        ..test_policy()
    };
    let env = Env::with(SmtpLimits::default(), policy).await;
    dns_records(&env);
    assert_eq!(send_from(&env, "reject.test", "r").await.code, 250);
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
}
