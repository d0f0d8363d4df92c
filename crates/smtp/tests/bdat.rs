//! BDAT (RFC 3030 CHUNKING): chunks, LAST, counted bytes that are never commands, the
//! same text rules as DATA, the size limit.

mod common;
use common::*;
use postern_smtp::SmtpLimits;

async fn in_tx(env: &Env) -> Client {
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<alice@example.com>", 250).await;
    c
}

#[tokio::test]
async fn chunks_make_one_message() {
    let env = Env::start().await;
    let mut c = in_tx(&env).await;
    let body = message("a@sender.example", "alice@example.com", "chunked");
    let (a, b) = body.split_at(20);
    c.send(format!("BDAT {}\r\n", a.len()).as_bytes()).await;
    c.send(a).await;
    let r = c.reply().await;
    assert!(r.text.starts_with("250 2.0.0"), "{}", r.text);
    // DATA cannot follow BDAT.
    c.expect("DATA", 503).await;
    // A chunk may hold what looks like an end marker and commands: it is counted text.
    c.send(format!("BDAT {} LAST\r\n", b.len()).as_bytes())
        .await;
    c.send(b).await;
    assert_eq!(c.reply().await.code, 250);
    let got = env.inbox("alice@example.com").await;
    assert_eq!(without_trace(&got[0]), body);
    // Dots are not stuffed in BDAT: a lone "." line is text.
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<alice@example.com>", 250).await;
    let text = b"From: <a@sender.example>\r\nSubject: dot\r\n\r\n.\r\nMAIL FROM:<x@y.example>\r\n";
    c.send(format!("BDAT {} LAST\r\n", text.len()).as_bytes())
        .await;
    c.send(text).await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(
        without_trace(&env.inbox("alice@example.com").await[1]),
        text
    );
    // BDAT 0 LAST after chunks, and an empty message: read whole, then refused on
    // the MX for having no From field (RFC 7489 §6.6.1).
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<bob@example.com>", 250).await;
    c.send(b"BDAT 0 LAST\r\n").await;
    let r = c.reply().await;
    assert!(
        r.text.starts_with("550 5.7.1") && r.text.contains("no From"),
        "{}",
        r.text
    );
    c.expect("NOOP", 250).await;
}

/// Chunk bytes of a refused BDAT are read and dropped, never executed.
#[tokio::test]
async fn refused_chunk_is_still_consumed() {
    let env = Env::start().await;
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    let smuggled = b"MAIL FROM:<evil@sender.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n";
    c.send(format!("BDAT {}\r\n", smuggled.len()).as_bytes())
        .await;
    c.send(smuggled).await;
    let r = c.reply().await;
    assert_eq!(r.code, 503, "{}", r.text);
    c.expect("NOOP", 250).await;
    // Without a valid recipient: 554, bytes consumed as well.
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.send(format!("BDAT {} LAST\r\n", smuggled.len()).as_bytes())
        .await;
    c.send(smuggled).await;
    assert_eq!(c.reply().await.code, 554);
    c.expect("NOOP", 250).await;
    c.expect("BDAT x", 501).await;
    c.expect("BDAT 1 NOTLAST", 501).await;
    assert_eq!(env.total_messages().await, 0);
}

#[tokio::test]
async fn bare_newlines_and_size() {
    let limits = SmtpLimits {
        message_size: 65_536,
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = in_tx(&env).await;
    let text = b"Subject: x\r\n\r\nbare\nlf\r\n";
    c.send(format!("BDAT {} LAST\r\n", text.len()).as_bytes())
        .await;
    c.send(text).await;
    let r = c.reply().await;
    assert!(r.text.starts_with("550 5.6.0"), "{}", r.text);
    // The transaction is over.
    c.expect("RCPT TO:<alice@example.com>", 503).await;
    // Over the size limit: the chunk is consumed, the message refused.
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<alice@example.com>", 250).await;
    let big = vec![b'a'; 70_000];
    c.send(b"BDAT 70000\r\n").await;
    c.send(&big).await;
    let r = c.reply().await;
    assert!(r.text.starts_with("552 5.3.4"), "{}", r.text);
    c.send(b"BDAT 3 LAST\r\nabc").await;
    assert_eq!(c.reply().await.code, 503);
    c.expect("NOOP", 250).await;
    assert_eq!(env.total_messages().await, 0);
}
