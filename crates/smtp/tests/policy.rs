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
    let mut first = b"From: <a@sender.example>\r\nSubject: fill\r\n\r\n".to_vec();
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
    // Undeclared and too big for carol, not for alice: alice gets it, carol is left
    // out and named in the ledger entry (one reply after DATA: 250, one was stored).
    let blobs_before = env.blobs.list().await.unwrap().len();
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<carol@example.com>", 250).await;
    c.expect("RCPT TO:<alice@example.com>", 250).await;
    c.expect("DATA", 354).await;
    c.send(&first).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert!(r.text.starts_with("250 2.0.0"), "{}", r.text);
    assert_eq!(env.inbox("carol@example.com").await.len(), 1);
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
    let l = env.ledger("message.deliver").await;
    assert_eq!(l.len(), 2);
    let after = l[1].record.after.clone().unwrap();
    assert_eq!(
        after["recipients"],
        serde_json::json!(["alice@example.com"])
    );
    assert_eq!(
        after["quota_left_out"],
        serde_json::json!(["carol@example.com"])
    );
    // The sender hears of carol by a failure DSN (queued to its domain).
    let dsn = env.ledger("queue.dsn").await;
    assert_eq!(dsn.len(), 1);
    assert_eq!(dsn[0].record.target.as_deref(), Some("a@sender.example"));
    // Too big for the only recipient: 452 4.2.2, nothing stored, and no blob written
    // (the quota is checked before the blob exists).
    let blobs_mid = env.blobs.list().await.unwrap().len();
    // The message's blob and the DSN's.
    assert_eq!(blobs_mid, blobs_before + 2);
    let mut other = first.clone();
    other.extend_from_slice(b"another\r\n");
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<carol@example.com>", 250).await;
    c.expect("DATA", 354).await;
    c.send(&other).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert!(r.text.starts_with("452 4.2.2"), "{}", r.text);
    assert_eq!(env.inbox("carol@example.com").await.len(), 1);
    assert_eq!(env.ledger("message.deliver").await.len(), 2);
    assert_eq!(env.blobs.list().await.unwrap().len(), blobs_mid);
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
    // p=reject and SPF fails with no DKIM: 550 5.7.26 (RFC 7372), nothing stored.
    let r = send_from(&env, "reject.test", "r").await;
    assert!(r.text.starts_with("550 5.7.26"), "{}", r.text);
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

/// RFC 7489 §6.6.1: DMARC needs exactly one author domain. A second From field (in
/// either spelling), a second address, or no From at all would let a p=reject domain
/// through unchecked (the verifier sees another or no domain): refused, 550 5.7.1.
#[tokio::test]
async fn dmarc_needs_exactly_one_from() {
    let env = Env::start().await;
    dns_records(&env);
    let cases: [(&str, &[u8]); 6] = [
        (
            "two fields",
            b"From: <x@good.test>\r\nFrom: <ceo@reject.test>\r\nSubject: a\r\n\r\nx\r\n",
        ),
        (
            "obsolete colon",
            b"From: <x@good.test>\r\nFrom : <ceo@reject.test>\r\nSubject: b\r\n\r\nx\r\n",
        ),
        (
            "only obsolete",
            b"From : <ceo@reject.test>\r\nSubject: c\r\n\r\nx\r\n",
        ),
        (
            "two addresses",
            b"From: <x@good.test>, <ceo@reject.test>\r\nSubject: d\r\n\r\nx\r\n",
        ),
        ("none", b"Subject: e\r\n\r\nx\r\n"),
        // mail-auth ends the header section at the stray line and would see no From.
        (
            "after a stray line",
            b"Subject: f\r\nX no-colon\r\nFrom: <ceo@reject.test>\r\n\r\nx\r\n",
        ),
    ];
    for (what, body) in cases {
        let mut c = env.client().await;
        c.expect("EHLO client.example", 250).await;
        let r = c
            .send_mail("x@good.test", &["alice@example.com"], body)
            .await;
        assert!(r.text.starts_with("550 5.7.1"), "{what}: {}", r.text);
    }
    assert_eq!(env.inbox("alice@example.com").await.len(), 0);
    assert_eq!(env.ledger("message.deliver").await.len(), 0);
    // One From with one address (and a display name) is fine.
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    let ok = b"From: Good <x@good.test>\r\nSubject: ok\r\n\r\nx\r\n";
    let r = c.send_mail("x@good.test", &["alice@example.com"], ok).await;
    assert_eq!(r.code, 250, "{}", r.text);
}

/// A group whose every member is full is refused at RCPT (452 4.2.2); a member the
/// message does not fit at the end of the data is left out and named in the ledger
/// entry, never dropped silently.
#[tokio::test]
async fn group_members_over_quota_are_recorded() {
    let env = Env::start().await;
    let a = admin(&env).await;
    // bob has room for a few octets only: not full at RCPT, too small for the message.
    let bob_used = used(&env, "bob@example.com").await;
    env.core
        .account_quota(&a, "bob@example.com", Some(bob_used + 10))
        .await
        .unwrap();
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
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
        after["quota_left_out"],
        serde_json::json!(["bob@example.com"])
    );
    // A group is a list (RFC 3461 §6.2.7.4): no failure DSN to the sender naming its
    // members; the ledger entry has them.
    assert_eq!(env.ledger("queue.dsn").await.len(), 0);
    // Every member full: 452 4.2.2 at RCPT.
    for who in ["alice@example.com", "bob@example.com"] {
        let u = used(&env, who).await;
        env.core.account_quota(&a, who, Some(u)).await.unwrap();
    }
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    let r = c.expect("RCPT TO:<team@example.com>", 452).await;
    assert!(r.text.starts_with("452 4.2.2"), "{}", r.text);
}

/// End to end through the MX: a message DKIM-signed (Ed25519, generated here) by a
/// domain whose SPF fails but whose DMARC policy is reject is delivered, because the
/// aligned DKIM signature passes; the stored message carries our Authentication-Results
/// with exactly those results. The same message with its body changed after signing
/// is refused by DMARC.
#[tokio::test]
async fn dkim_signed_mail_gets_the_right_authentication_results() {
    use base64::Engine;
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;

    let env = Env::start().await;
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let public = base64::engine::general_purpose::STANDARD.encode(key.public_key());
    env.dns.txt(
        "s1._domainkey.signed.test",
        &format!("v=DKIM1; k=ed25519; p={public}"),
    );
    // SPF fails on purpose: only DKIM can make DMARC pass.
    env.dns.txt("signed.test", "v=spf1 -all");
    env.dns.txt("_dmarc.signed.test", "v=DMARC1; p=reject");

    let from = "ceo@signed.test";
    let body = message(from, "alice@example.com", "signed");
    let sign = |msg: &[u8]| {
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
        let sig = DkimSigner::from_key(key)
            .domain("signed.test")
            .selector("s1")
            .headers(["From", "To", "Subject", "Message-ID"])
            .sign(msg)
            .unwrap();
        let mut out = sig.to_header().into_bytes();
        out.extend_from_slice(msg);
        out
    };
    let signed = sign(&body);

    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    let r = c.send_mail(from, &["alice@example.com"], &signed).await;
    assert_eq!(r.code, 250, "{}", r.text);
    let inbox = env.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 1);
    let stored = String::from_utf8_lossy(&inbox[0]);
    let ar_start = stored
        .find("Authentication-Results: ")
        .expect("our Authentication-Results");
    let ar_end = stored[ar_start..].find("\r\n").map(|e| {
        // The field may be folded: take continuation lines too.
        let mut end = ar_start + e;
        while stored[end + 2..].starts_with([' ', '\t']) {
            end += 2 + stored[end + 2..].find("\r\n").unwrap();
        }
        end
    });
    let ar = &stored[ar_start..ar_end.unwrap()];
    let flat = ar.replace("\r\n", "");
    assert!(
        flat.starts_with(&format!("Authentication-Results: {}", common::HOST)),
        "{ar}"
    );
    assert!(
        flat.contains("dkim=pass")
            && flat.contains("header.d=signed.test")
            && flat.contains("header.s=s1"),
        "{ar}"
    );
    assert!(
        flat.contains("spf=fail") && flat.contains("smtp.mailfrom=ceo@signed.test"),
        "{ar}"
    );
    assert!(
        flat.contains("dmarc=pass") && flat.contains("header.from=signed.test"),
        "{ar}"
    );
    // The message itself is stored as signed, below our trace fields.
    assert_eq!(without_trace(&inbox[0]), signed);

    // Changed after signing: DKIM fails, SPF fails, p=reject → refused.
    let mut tampered = signed.clone();
    let n = tampered.len();
    tampered[n - 4] = b'!';
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    let r = c.send_mail(from, &["alice@example.com"], &tampered).await;
    assert!(r.text.starts_with("550 5.7.26"), "{}", r.text);
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
}

/// Submission to two local accounts, one of them too small for the message: the
/// sender gets a failed 5.2.2 DSN for it (in her own INBOX: she is local), naming the
/// address she wrote — unless that RCPT said NOTIFY=NEVER (RFC 3461 §4.1).
#[tokio::test]
async fn left_out_recipients_get_a_failure_notice_unless_notify_never() {
    let env = Env::start().await;
    let a = admin(&env).await;
    let carol = used(&env, "carol@example.com").await;
    env.core
        .account_quota(&a, "carol@example.com", Some(carol + 10))
        .await
        .unwrap();
    let body = b"From: alice@example.com\r\nTo: carol@example.com\r\nSubject: q\r\n\r\nsome text that does not fit in ten octets\r\n";
    for (notify, expected) in [("", 1), (" NOTIFY=NEVER", 0), (" NOTIFY=SUCCESS,DELAY", 0)] {
        let before = env.inbox("alice@example.com").await.len();
        let mut c = env.alice().await;
        c.expect("MAIL FROM:<alice@example.com>", 250).await;
        // The plus form names carol's account too.
        c.expect(&format!("RCPT TO:<carol+x@example.com>{notify}"), 250)
            .await;
        c.expect("RCPT TO:<bob@example.com>", 250).await;
        c.expect("DATA", 354).await;
        c.send(body).await;
        c.send(b".\r\n").await;
        assert_eq!(c.reply().await.code, 250);
        let inbox = env.inbox("alice@example.com").await;
        assert_eq!(inbox.len() - before, expected, "NOTIFY{notify}");
    }
    let dsn = env.inbox("alice@example.com").await;
    let text = String::from_utf8_lossy(&dsn[0]);
    assert!(
        text.contains("Final-Recipient: rfc822; carol+x@example.com"),
        "{text}"
    );
    assert!(text.contains("Status: 5.2.2"), "{text}");
}

/// A submission client authenticated as `user`.
async fn logged_in(env: &Env, user: &str, pw: &str) -> Client {
    use base64::Engine;
    let mut c = Client::connect(env.submission).await;
    c.ok("EHLO client.example").await;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pw}"));
    c.expect(&format!("AUTH PLAIN {token}"), 235).await;
    c
}

/// Who may send to a group (`postern group senders`): anyone by default; with
/// `authenticated` nothing from port 25, also through an alias or an enclosing group;
/// with `members` only logged-in senders the group reaches. Each change is in the
/// ledger with before and after.
#[tokio::test]
async fn groups_can_take_mail_from_logged_in_senders_or_members_only() {
    let env = Env::start().await;
    let a = admin(&env).await;
    env.core
        .account_add(
            &a,
            "dave@example.com",
            postern_core::store::PrincipalKind::Individual,
            None,
            Some("dave-password-123"),
            None,
        )
        .await
        .unwrap();
    env.core
        .account_add(
            &a,
            "all@example.com",
            postern_core::store::PrincipalKind::Group,
            None,
            None,
            None,
        )
        .await
        .unwrap();
    env.core
        .group_member_add(&a, "all@example.com", "team@example.com")
        .await
        .unwrap();
    env.core
        .alias_add(&a, "staff@example.com", "team@example.com")
        .await
        .unwrap();
    assert_eq!(
        env.core
            .group_get_senders(&a, "team@example.com")
            .await
            .unwrap(),
        "anyone"
    );
    let mx_rcpt = |rcpt: &'static str, code: u16| {
        let env = &env;
        async move {
            let mut c = env.client().await;
            c.expect("EHLO client.example", 250).await;
            c.expect("MAIL FROM:<a@sender.example>", 250).await;
            c.expect(&format!("RCPT TO:<{rcpt}>"), code).await
        }
    };
    mx_rcpt("team@example.com", 250).await;

    env.core
        .group_set_senders(&a, "team@example.com", "authenticated")
        .await
        .unwrap();
    // The reply names the address written, never the group met inside it.
    for rcpt in ["team@example.com", "staff@example.com", "all@example.com"] {
        let r = mx_rcpt(rcpt, 550).await;
        let want = format!("550 5.7.1 {rcpt} accepts mail only from authenticated");
        assert!(r.text.starts_with(&want), "{rcpt}: {}", r.text);
    }
    // Postmaster is always deliverable (RFC 5321 §4.5.1), even when it is the group.
    env.core
        .alias_add(&a, "postmaster@catch.example", "team@example.com")
        .await
        .unwrap();
    mx_rcpt("postmaster@catch.example", 250).await;
    // Other recipients of the same domain are untouched.
    mx_rcpt("alice@example.com", 250).await;
    // A logged-in sender, member or not, gets through.
    let mut c = logged_in(&env, "dave@example.com", "dave-password-123").await;
    let r = c
        .send_mail(
            "dave@example.com",
            &["team@example.com"],
            &message("dave@example.com", "team@example.com", "from dave"),
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
    assert_eq!(env.inbox("bob@example.com").await.len(), 1);

    env.core
        .group_set_senders(&a, "team@example.com", "members")
        .await
        .unwrap();
    mx_rcpt("team@example.com", 550).await;
    // A notice the MX sends back to a claimed sender that is the group (carol has no
    // room) does not carry the outsider's text to the members either.
    let carol = used(&env, "carol@example.com").await;
    env.core
        .account_quota(&a, "carol@example.com", Some(carol + 10))
        .await
        .unwrap();
    let alice_before = env.inbox("alice@example.com").await.len();
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    c.expect("MAIL FROM:<team@example.com>", 250).await;
    c.expect("RCPT TO:<carol@example.com>", 250).await;
    c.expect("RCPT TO:<dave@example.com>", 250).await;
    c.expect("DATA", 354).await;
    c.send(b"From: team@example.com\r\nTo: carol@example.com\r\nSubject: URGENT reset your password\r\n\r\nmore text than carol has room for\r\n")
        .await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(env.inbox("alice@example.com").await.len(), alice_before);
    let mut c = logged_in(&env, "dave@example.com", "dave-password-123").await;
    c.expect("MAIL FROM:<dave@example.com>", 250).await;
    let r = c.expect("RCPT TO:<team@example.com>", 550).await;
    assert!(
        r.text.contains("accepts mail only from its members"),
        "{}",
        r.text
    );
    // bob is a member.
    let mut c = logged_in(&env, "bob@example.com", BOB_PW).await;
    let r = c
        .send_mail(
            "bob@example.com",
            &["team@example.com"],
            &message("bob@example.com", "team@example.com", "from bob"),
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
    assert_eq!(env.inbox("alice@example.com").await.len(), 2);

    // Back to anyone; a bad value changes nothing; only groups have the setting.
    env.core
        .group_set_senders(&a, "team@example.com", "anyone")
        .await
        .unwrap();
    mx_rcpt("team@example.com", 250).await;
    assert!(
        env.core
            .group_set_senders(&a, "team@example.com", "friends")
            .await
            .is_err()
    );
    assert!(
        env.core
            .group_set_senders(&a, "alice@example.com", "members")
            .await
            .is_err()
    );
    let l = env.ledger("group.senders").await;
    let changes: Vec<(String, String)> = l
        .iter()
        .map(|e| {
            (
                e.record.before.clone().unwrap()["senders"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                e.record.after.clone().unwrap()["senders"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("anyone".to_string(), "authenticated".to_string()),
            ("authenticated".into(), "members".into()),
            ("members".into(), "anyone".into()),
        ]
    );
}
