//! DATA: delivery into the right mailboxes, trace fields, dot-stuffing, SMTP smuggling
//! (every bare CR/LF end-marker variant followed by smuggled commands), bare CR/LF,
//! line and size limits, the data timeout.

mod common;
use common::*;
use postern_smtp::SmtpLimits;
use std::time::Duration;

async fn ready(env: &Env) -> Client {
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    c
}

#[tokio::test]
async fn delivers_with_trace_fields() {
    let env = Env::start().await;
    let mut c = ready(&env).await;
    let body = message("a@sender.example", "alice@example.com", "hello");
    let r = c
        .send_mail("a@sender.example", &["alice@example.com"], &body)
        .await;
    assert!(r.text.starts_with("250 2.0.0"), "{}", r.text);
    let inbox = env.inbox("alice@example.com").await;
    assert_eq!(inbox.len(), 1);
    let stored = String::from_utf8(inbox[0].clone()).unwrap();
    // RFC 5321 §4.4: Return-Path, then Received with from/by/with/id/for and a date.
    assert!(stored.starts_with("Return-Path: <a@sender.example>\r\nReceived: from client.example ([127.0.0.1])\r\n\tby mx.example.com with ESMTP id "), "{stored}");
    assert!(
        stored.contains("\r\n\tfor <alice@example.com>; "),
        "{stored}"
    );
    assert!(
        stored.contains("\r\nAuthentication-Results: mx.example.com"),
        "{stored}"
    );
    assert_eq!(without_trace(&inbox[0]), body);
    // The delivery's ledger entry (same batch as the message).
    let l = env.ledger("message.deliver").await;
    assert_eq!(l.len(), 1);
    let after = l[0].record.after.clone().unwrap();
    assert_eq!(after["sender"], "a@sender.example");
    assert_eq!(
        after["recipients"],
        serde_json::json!(["alice@example.com"])
    );
    assert_eq!(l[0].record.session.protocol, "smtp");
    assert!(
        l[0].record
            .session
            .remote
            .as_deref()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    // Null reverse-path (a bounce).
    let r = c
        .send_mail(
            "",
            &["bob@example.com"],
            &message("mailer-daemon@sender.example", "bob@example.com", "bounce"),
        )
        .await;
    assert_eq!(r.code, 250);
    assert!(env.inbox("bob@example.com").await[0].starts_with(b"Return-Path: <>\r\n"));
}

#[tokio::test]
async fn one_blob_one_copy_per_principal() {
    let env = Env::start().await;
    let mut c = ready(&env).await;
    let body = message("a@sender.example", "team@example.com", "fanout");
    // alice directly, by alias, by group (team = alice, bob, info→alice); bob by plus
    // address and by the catch-all of catch.example.
    let rcpts = [
        "alice@example.com",
        "info@example.com",
        "team@example.com",
        "bob+tag@example.com",
        "whoever@catch.example",
    ];
    assert_eq!(
        c.send_mail("a@sender.example", &rcpts, &body).await.code,
        250
    );
    let alice = env.inbox("alice@example.com").await;
    let bob = env.inbox("bob@example.com").await;
    assert_eq!((alice.len(), bob.len()), (1, 1));
    assert_eq!(alice[0], bob[0]);
    assert_eq!(without_trace(&alice[0]), body);
    // Several recipients: no `for` clause.
    assert!(!String::from_utf8_lossy(&alice[0]).contains("\tfor <"));
    assert_eq!(env.inbox("erin@catch.example").await.len(), 0);
    // One blob for all of them.
    assert_eq!(env.blobs.list().await.unwrap().len(), 1);
    // One ledger entry naming both.
    let l = env.ledger("message.deliver").await;
    assert_eq!(l.len(), 1);
    let after = l[0].record.after.clone().unwrap();
    let mut rcpts: Vec<String> = serde_json::from_value(after["recipients"].clone()).unwrap();
    rcpts.sort();
    assert_eq!(rcpts, ["alice@example.com", "bob@example.com"]);
}

#[tokio::test]
async fn dot_stuffing_is_undone() {
    let env = Env::start().await;
    let mut c = ready(&env).await;
    let wire = b"From: <a@sender.example>\r\nSubject: dots\r\n\r\n..leading dot\r\n..\r\n.\r\n";
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<alice@example.com>", 250).await;
    c.expect("DATA", 354).await;
    c.send(wire).await;
    assert_eq!(c.reply().await.code, 250);
    let got = env.inbox("alice@example.com").await;
    assert_eq!(
        without_trace(&got[0]),
        b"From: <a@sender.example>\r\nSubject: dots\r\n\r\n.leading dot\r\n.\r\n"
    );
    // The empty message.
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<bob@example.com>", 250).await;
    c.expect("DATA", 354).await;
    c.send(b".\r\n").await;
    // Read whole, then refused on the MX: no From field (RFC 7489 §6.6.1).
    let r = c.reply().await;
    assert!(
        r.text.starts_with("550 5.7.1") && r.text.contains("no From"),
        "{}",
        r.text
    );
    c.expect("NOOP", 250).await;
}

/// THREATS: SMTP smuggling. Each false end marker is followed by a complete smuggled
/// transaction; none of it may become a message. The message is refused for its bare
/// CR/LF, the session stays in step, and the next clean message is the only one stored.
#[tokio::test]
async fn smuggling_variants_never_make_a_second_message() {
    let variants: [&[u8]; 8] = [
        b"\n.\n",
        b"\n.\r\n",
        b"\r.\r",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\n.",
        b"\r\n\n.\n\n",
    ];
    for v in variants {
        let limits = SmtpLimits {
            errors_before_disconnect: 100,
            ..Default::default()
        };
        let env = Env::with(limits, test_policy()).await;
        let mut c = ready(&env).await;
        c.expect("MAIL FROM:<a@sender.example>", 250).await;
        c.expect("RCPT TO:<alice@example.com>", 250).await;
        c.expect("DATA", 354).await;
        let mut wire = b"From: <a@sender.example>\r\nSubject: first\r\n\r\nfirst".to_vec();
        wire.extend_from_slice(v);
        wire.extend_from_slice(
            b"MAIL FROM:<evil@sender.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nFrom: <ceo@example.com>\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n",
        );
        // All in one write, as a relaying MTA would send it.
        c.send(&wire).await;
        let r = c.reply().await;
        assert!(r.text.starts_with("550 5.6.0"), "variant {v:?}: {}", r.text);
        // Nothing else was answered: the smuggled commands were text.
        c.expect("NOOP", 250).await;
        let clean = message("a@sender.example", "alice@example.com", "clean");
        assert_eq!(
            c.send_mail("a@sender.example", &["alice@example.com"], &clean)
                .await
                .code,
            250,
            "variant {v:?}"
        );
        let alice = env.inbox("alice@example.com").await;
        assert_eq!(alice.len(), 1, "variant {v:?}");
        assert_eq!(without_trace(&alice[0]), clean, "variant {v:?}");
        assert_eq!(env.inbox("bob@example.com").await.len(), 0, "variant {v:?}");
        assert_eq!(env.total_messages().await, 1, "variant {v:?}");
    }
}

#[tokio::test]
async fn bare_cr_and_lf_in_text_are_refused() {
    let env = Env::start().await;
    let mut c = ready(&env).await;
    for (text, why) in [
        (&b"Subject: a\r\n\r\nline\nnext\r\n"[..], "bare LF"),
        (b"Subject: a\r\n\r\nline\rnext\r\n", "bare CR"),
        (b"Subject: a\nX: b\r\n\r\nbody\r\n", "bare LF"),
    ] {
        c.expect("MAIL FROM:<a@sender.example>", 250).await;
        c.expect("RCPT TO:<alice@example.com>", 250).await;
        c.expect("DATA", 354).await;
        c.send(text).await;
        c.send(b".\r\n").await;
        let r = c.reply().await;
        assert!(
            r.text.starts_with("550 5.6.0") && r.text.contains(why),
            "{}",
            r.text
        );
    }
    assert_eq!(env.total_messages().await, 0);
}

#[tokio::test]
async fn text_line_and_size_limits() {
    let limits = SmtpLimits {
        line_length: 1000,
        message_size: 65_536,
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = ready(&env).await;
    // A 1000-octet line (CRLF included) is fine; 1001 is not.
    let fits = format!(
        "From: <a@sender.example>\r\nSubject: x\r\n\r\n{}\r\n",
        "a".repeat(998)
    );
    assert_eq!(
        c.send_mail("a@sender.example", &["alice@example.com"], fits.as_bytes())
            .await
            .code,
        250
    );
    let long = format!("Subject: x\r\n\r\n{}\r\n", "a".repeat(999));
    let r = c
        .send_mail("a@sender.example", &["alice@example.com"], long.as_bytes())
        .await;
    assert!(r.text.starts_with("550 5.6.0"), "{}", r.text);
    // Far longer than the read buffer: the line is dropped as it streams in.
    let huge = format!("Subject: x\r\n\r\n{}\r\n", "a".repeat(200_000));
    let r = c
        .send_mail("a@sender.example", &["alice@example.com"], huge.as_bytes())
        .await;
    assert!(r.text.starts_with("550 5.6.0"), "{}", r.text);
    // Over message_size: 552 5.3.4 (RFC 5321 §4.5.3.1.10).
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    while big.len() <= 65_536 {
        big.extend_from_slice(&[b'b'; 98]);
        big.extend_from_slice(b"\r\n");
    }
    let r = c
        .send_mail("a@sender.example", &["alice@example.com"], &big)
        .await;
    assert!(r.text.starts_with("552 5.3.4"), "{}", r.text);
    c.expect("NOOP", 250).await;
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
}

#[tokio::test]
async fn data_timeout() {
    let limits = SmtpLimits {
        data_timeout: Duration::from_millis(400),
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = ready(&env).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<alice@example.com>", 250).await;
    c.expect("DATA", 354).await;
    c.send(b"Subject: slow\r\n\r\n").await;
    // Dripping keeps the connection busy but does not extend the total.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if !c.try_send(b"x").await {
            break;
        }
    }
    let r = c.reply().await;
    assert!(r.text.starts_with("421 4.4.2"), "{}", r.text);
    assert_eq!(c.until_closed().await, "");
    assert_eq!(env.total_messages().await, 0);
}

#[tokio::test]
async fn forged_authentication_results_are_removed() {
    let env = Env::start().await;
    let mut c = ready(&env).await;
    let body = b"Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n\
Authentication-Results: other.example; spf=pass\r\n\
authentication-results:  MX.EXAMPLE.COM 1;\r\n dkim=pass\r\n\
From: <ceo@example.com>\r\nSubject: forged\r\n\r\nbody\r\n";
    assert_eq!(
        c.send_mail("a@sender.example", &["alice@example.com"], body)
            .await
            .code,
        250
    );
    let got = env.inbox("alice@example.com").await;
    assert!(got[0].ends_with(b"\r\nAuthentication-Results: other.example; spf=pass\r\nFrom: <ceo@example.com>\r\nSubject: forged\r\n\r\nbody\r\n"));
    let s = String::from_utf8_lossy(&got[0]);
    // Ours (from the verifier) is the only one naming mx.example.com.
    assert_eq!(
        s.to_ascii_lowercase()
            .matches("authentication-results: mx.example.com")
            .count(),
        1,
        "{s}"
    );
}

/// RFC 8601 §5 with the header read as mail-parser (the metadata) reads it: a line with
/// no colon does not end the section, and `Authentication-Results :` (RFC 5322 §4.5.3
/// obsolete syntax) is still the field, so neither hides a forged verdict.
#[tokio::test]
async fn forged_results_after_a_stray_line_or_with_obsolete_colon_are_removed() {
    let env = Env::start().await;
    let mut c = ready(&env).await;
    let body = b"From: <ceo@example.com>\r\nX no-colon\r\n\
Authentication-Results : mx.example.com; dmarc=pass header.from=example.com\r\n\
Subject: forged\r\n\r\nbody\r\n";
    assert_eq!(
        c.send_mail("a@sender.example", &["alice@example.com"], body)
            .await
            .code,
        250
    );
    let got = env.inbox("alice@example.com").await;
    let s = String::from_utf8_lossy(&got[0]);
    assert!(!s.contains("Authentication-Results : "), "{s}");
    assert!(
        got[0].ends_with(
            b"\r\nFrom: <ceo@example.com>\r\nX no-colon\r\nSubject: forged\r\n\r\nbody\r\n"
        ),
        "{s}"
    );
}

/// The id in the 250 reply (and the Received field and ledger entry) is random, not the
/// connection number and message count, which start again with every process: two
/// fresh servers never hand out the same id.
#[tokio::test]
async fn message_ids_survive_restarts() {
    let mut ids = Vec::new();
    for _ in 0..2 {
        let env = Env::start().await;
        let mut c = ready(&env).await;
        let r = c
            .send_mail(
                "a@sender.example",
                &["alice@example.com"],
                &message("a@sender.example", "alice@example.com", "id"),
            )
            .await;
        assert_eq!(r.code, 250, "{}", r.text);
        let id = r
            .text
            .trim_end()
            .rsplit_once("id ")
            .map(|(_, id)| id.to_string())
            .unwrap();
        let l = env.ledger("message.deliver").await;
        let after = l[0].record.after.clone().unwrap();
        assert_eq!(after["details"]["message_id"], id.as_str());
        let stored = String::from_utf8_lossy(&env.inbox("alice@example.com").await[0]).into_owned();
        assert!(stored.contains(&format!(" id {id}")), "{stored}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
    assert!(ids[0].len() >= 8, "{}", ids[0]);
}

/// The process-wide budget of message bytes in memory (`inflight_bytes`): a message that
/// would need more while another holds the budget gets 452 4.3.1 and the session stays
/// in step; once a message is delivered its bytes are given back.
#[tokio::test]
async fn inflight_budget_is_shared_and_given_back() {
    let limits = SmtpLimits {
        message_size: 65_536,
        inflight_bytes: 12_000,
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let body = |n: usize| {
        format!(
            "From: <a@sender.example>\r\nSubject: b\r\n\r\n{}\r\n",
            "x\r\n".repeat(n)
        )
    };
    // Over the whole budget on its own: refused, temporarily, and nothing stored.
    let mut c = ready(&env).await;
    let r = c
        .send_mail(
            "a@sender.example",
            &["alice@example.com"],
            body(5000).as_bytes(),
        )
        .await;
    assert!(r.text.starts_with("452 4.3.1"), "{}", r.text);
    // The session is still in step and the budget was given back.
    for _ in 0..3 {
        let r = c
            .send_mail(
                "a@sender.example",
                &["alice@example.com"],
                body(2000).as_bytes(),
            )
            .await;
        assert_eq!(r.code, 250, "{}", r.text);
    }
    assert_eq!(env.inbox("alice@example.com").await.len(), 3);

    // While one session holds most of the budget in an unfinished DATA, another's
    // message does not fit; when the first finishes, it does.
    let mut holder = ready(&env).await;
    holder.expect("MAIL FROM:<a@sender.example>", 250).await;
    holder.expect("RCPT TO:<alice@example.com>", 250).await;
    holder.expect("DATA", 354).await;
    holder
        .send(
            format!(
                "From: <a@sender.example>\r\nSubject: h\r\n\r\n{}",
                "y\r\n".repeat(3000)
            )
            .as_bytes(),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut other = ready(&env).await;
    let r = other
        .send_mail(
            "a@sender.example",
            &["alice@example.com"],
            body(1500).as_bytes(),
        )
        .await;
    assert!(r.text.starts_with("452 4.3.1"), "{}", r.text);
    holder.send(b".\r\n").await;
    assert_eq!(holder.reply().await.code, 250);
    let r = other
        .send_mail(
            "a@sender.example",
            &["alice@example.com"],
            body(1500).as_bytes(),
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
}

/// RFC 5321 §6.3: a message carrying `limits.smtp_max_received` Received fields is a
/// loop: 554 5.4.6, nothing stored; one fewer is delivered.
#[tokio::test]
async fn too_many_received_fields_is_a_loop() {
    let limits = SmtpLimits {
        max_received: 30,
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = ready(&env).await;
    let with_hops = |n: usize| {
        let mut m = String::new();
        for i in 0..n {
            // Mixed case: the field name is case-insensitive.
            let name = if i % 2 == 0 { "Received" } else { "RECEIVED" };
            m.push_str(&format!(
                "{name}: from hop{i}.example by hop{}.example; Wed, 25 Nov 2026 10:00:00 +0000\r\n",
                i + 1
            ));
        }
        m.push_str("From: <a@sender.example>\r\nSubject: hops\r\n\r\nReceived: in the body does not count\r\n");
        m
    };
    let r = c
        .send_mail(
            "a@sender.example",
            &["alice@example.com"],
            with_hops(29).as_bytes(),
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
    let r = c
        .send_mail(
            "a@sender.example",
            &["alice@example.com"],
            with_hops(30).as_bytes(),
        )
        .await;
    assert!(r.text.starts_with("554 5.4.6"), "{}", r.text);
    c.expect("NOOP", 250).await;
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
}
