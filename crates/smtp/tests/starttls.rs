//! STARTTLS (RFC 3207): the upgrade, the reset after it, and command injection
//! (CVE-2011-0411): plaintext pipelined after STARTTLS is never executed.

mod common;
use common::*;

#[tokio::test]
async fn upgrade_resets_the_session() {
    let env = Env::start().await;
    let mut c = env.client().await;
    // bad: before EHLO
    c.expect("STARTTLS", 503).await;
    c.expect("EHLO client.example", 250).await;
    c.expect("STARTTLS now", 501).await;
    c.starttls(&env.cert).await;
    // RFC 3207 §4.2: the EHLO from before is forgotten.
    c.expect("MAIL FROM:<a@sender.example>", 503).await;
    let r = c.expect("EHLO client.example", 250).await;
    assert!(!r.text.contains("STARTTLS"), "{}", r.text);
    // no: twice
    c.expect("STARTTLS", 503).await;
    let body = message("a@sender.example", "alice@example.com", "tls");
    assert_eq!(
        c.send_mail("a@sender.example", &["alice@example.com"], &body)
            .await
            .code,
        250
    );
    let stored = env.inbox("alice@example.com").await;
    assert!(String::from_utf8_lossy(&stored[0]).contains(" with ESMTPS id "));
}

#[tokio::test]
async fn transaction_before_tls_is_dropped() {
    let env = Env::start().await;
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    // Not during a transaction? RFC 3207 does not forbid it; the transaction is simply
    // forgotten with the rest of the pre-TLS state.
    c.starttls(&env.cert).await;
    c.expect("EHLO client.example", 250).await;
    c.expect("RCPT TO:<alice@example.com>", 503).await;
}

/// `STARTTLS\r\nRSET\r\n` in one segment: the RSET (and anything else in the same
/// plaintext read) is discarded, not answered before or after the handshake.
#[tokio::test]
async fn injection_after_starttls_is_discarded() {
    let env = Env::start().await;
    for injected in [
        &b"RSET\r\n"[..],
        b"MAIL FROM:<evil@sender.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\n",
    ] {
        let mut c = env.client().await;
        c.expect("EHLO client.example", 250).await;
        let mut segment = b"STARTTLS\r\n".to_vec();
        segment.extend_from_slice(injected);
        c.send(&segment).await;
        let r = c.reply().await;
        assert_eq!(r.code, 220, "{}", r.text);
        // The handshake succeeds: the injected bytes were neither answered nor fed to
        // TLS. `starttls` on the client asserts no plaintext reply followed the 220.
        c.finish_starttls(&env.cert).await;
        // The first reply inside TLS answers our EHLO, not the injected RSET.
        let r = c.expect("EHLO client.example", 250).await;
        assert!(r.text.starts_with("250-mx.example.com Hello"), "{}", r.text);
        c.expect("NOOP", 250).await;
        c.expect("QUIT", 221).await;
    }
    assert_eq!(env.total_messages().await, 0);
}

#[tokio::test]
async fn implicit_tls_submission_has_no_starttls() {
    let env = Env::start().await;
    let mut c = Client::connect_tls(env.submissions, &env.cert).await;
    let r = c.expect("EHLO client.example", 250).await;
    assert!(!r.text.contains("STARTTLS"));
    assert!(r.text.contains("AUTH PLAIN LOGIN"));
    c.expect("STARTTLS", 503).await;
}
