//! Session commands: greeting, EHLO/HELO, NOOP, RSET, HELP, VRFY, EXPN, QUIT, unknown
//! commands, RFC 5321 §4.1.4 ordering (503), PIPELINING, line limits and bare CR/LF in
//! commands, and the connection limits (errors, messages, command timeout).

mod common;
use common::*;
use std::time::Duration;

#[tokio::test]
async fn greeting_and_ehlo() {
    let env = Env::start().await;
    let mut c = env.client().await;
    let r = c.expect("EHLO client.example", 250).await;
    for ext in [
        "PIPELINING",
        "SIZE 52428800",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(
            r.text.contains(&format!("250-{ext}\r\n"))
                || r.text.contains(&format!("250 {ext}\r\n")),
            "{ext} missing: {}",
            r.text
        );
    }
    // DSN (RFC 3461) is not offered until the outbound queue can send the notices.
    assert!(!r.text.contains("DSN"), "{}", r.text);
    // No AUTH on the MX (port 25).
    assert!(!r.text.contains("AUTH"), "{}", r.text);
    assert!(
        r.text
            .starts_with(&format!("250-{HOST} Hello client.example [127.0.0.1]"))
    );
    // ok: HELO, address literals; bad: no argument, a header-breaking name.
    c.expect("HELO client.example", 250).await;
    c.expect("EHLO [127.0.0.1]", 250).await;
    c.expect("EHLO [IPv6:::1]", 250).await;
    c.expect("EHLO", 501).await;
    c.expect("EHLO bad;name", 501).await;
    c.expect("EHLO two words", 501).await;
    c.expect("QUIT", 221).await;
    assert_eq!(c.until_closed().await, "");
}

#[tokio::test]
async fn simple_commands() {
    let env = Env::start().await;
    let mut c = env.client().await;
    c.expect("NOOP", 250).await;
    c.expect("NOOP some text", 250).await;
    c.expect("HELP", 214).await;
    c.expect("RSET", 250).await;
    c.expect("RSET now", 501).await;
    // No enumeration: VRFY never says whether a user exists, EXPN is off.
    let r = c.expect("VRFY alice@example.com", 252).await;
    assert!(r.text.starts_with("252 2.5.0"));
    c.expect("VRFY nobody@example.com", 252).await;
    c.expect("EXPN team@example.com", 502).await;
    let r = c.expect("XYZZY", 500).await;
    assert!(r.text.starts_with("500 5.5.1"));
    c.expect("QUIT extra", 501).await;
}

#[tokio::test]
async fn bad_sequence() {
    let env = Env::start().await;
    let mut c = env.client().await;
    let r = c.expect("MAIL FROM:<a@sender.example>", 503).await;
    assert!(r.text.starts_with("503 5.5.1"), "{}", r.text);
    c.expect("EHLO client.example", 250).await;
    c.expect("RCPT TO:<alice@example.com>", 503).await;
    c.expect("DATA", 503).await;
    c.expect("BDAT 0 LAST", 503).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("MAIL FROM:<a@sender.example>", 503).await;
    // DATA with no accepted recipient: RFC 5321 §3.3.
    c.expect("DATA", 554).await;
    c.expect("RCPT TO:<alice@example.com>", 250).await;
    // RSET ends the transaction; EHLO does too.
    c.expect("RSET", 250).await;
    c.expect("RCPT TO:<alice@example.com>", 503).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("EHLO again.example", 250).await;
    c.expect("RCPT TO:<alice@example.com>", 503).await;
}

#[tokio::test]
async fn pipelining() {
    let env = Env::start().await;
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    let msg = message("a@sender.example", "alice@example.com", "piped");
    let mut group = b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n".to_vec();
    c.send(&group).await;
    for code in [250, 250, 550, 250, 354] {
        assert_eq!(c.reply().await.code, code);
    }
    group = msg.clone();
    group.extend_from_slice(b".\r\nNOOP\r\nQUIT\r\n");
    c.send(&group).await;
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 221);
    assert_eq!(env.inbox("alice@example.com").await.len(), 1);
    assert_eq!(env.inbox("bob@example.com").await.len(), 1);
}

#[tokio::test]
async fn command_line_limits() {
    let limits = postern_smtp::SmtpLimits {
        line_length: 1000,
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = env.client().await;
    // 1000 octets with CRLF is the limit: accepted.
    let ok = format!("NOOP {}", "x".repeat(1000 - 7));
    c.expect(&ok, 250).await;
    let long = format!("NOOP {}", "x".repeat(5000));
    let r = c.expect(&long, 500).await;
    assert!(r.text.starts_with("500 5.5.2"), "{}", r.text);
    // Still in step: the rest of the long line was skipped, not read as commands.
    c.expect("NOOP", 250).await;
    // RFC 5321 §2.3.8: bare LF / bare CR in a command.
    c.send(b"NOOP\n").await;
    assert_eq!(c.reply().await.code, 500);
    c.send(b"NO\rOP\r\n").await;
    assert_eq!(c.reply().await.code, 500);
    c.send(b"EHLO a\nRSET\r\n").await;
    let r = c.reply().await;
    assert_eq!(r.code, 500, "{}", r.text);
    assert_eq!(c.reply().await.code, 250);
    // Not UTF-8.
    c.send(b"NOOP \xff\xfe\r\n").await;
    assert_eq!(c.reply().await.code, 500);
}

#[tokio::test]
async fn errors_before_disconnect() {
    let limits = postern_smtp::SmtpLimits {
        errors_before_disconnect: 3,
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = env.client().await;
    c.expect("BOGUS1", 500).await;
    c.expect("NOOP", 250).await;
    c.expect("BOGUS2", 500).await;
    c.send(b"BOGUS3\r\n").await;
    let r = c.reply().await;
    assert_eq!(r.code, 500);
    let r = c.reply().await;
    assert!(r.text.starts_with("421 4.7.0"), "{}", r.text);
    assert_eq!(c.until_closed().await, "");
}

#[tokio::test]
async fn messages_per_connection() {
    let limits = postern_smtp::SmtpLimits {
        messages_per_connection: 2,
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    for i in 0..2 {
        let m = message("a@sender.example", "alice@example.com", &format!("m{i}"));
        assert_eq!(
            c.send_mail("a@sender.example", &["alice@example.com"], &m)
                .await
                .code,
            250
        );
    }
    let r = c.cmd("MAIL FROM:<a@sender.example>").await;
    assert!(r.text.starts_with("421 4.7.0"), "{}", r.text);
    assert_eq!(c.until_closed().await, "");
    assert_eq!(env.inbox("alice@example.com").await.len(), 2);
}

#[tokio::test]
async fn command_timeout() {
    let limits = postern_smtp::SmtpLimits {
        command_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    // A slow drip does not reset the deadline: the whole line must arrive in time.
    c.send(b"NO").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.try_send(b"O").await;
    let r = c.reply().await;
    assert!(r.text.starts_with("421 4.4.2"), "{}", r.text);
    assert_eq!(c.until_closed().await, "");
}

#[tokio::test]
async fn shutdown_says_421() {
    let env = Env::start().await;
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    let server = env.server.clone();
    let stop = tokio::spawn(async move { server.shutdown(Duration::from_secs(5)).await });
    let r = c.reply().await;
    assert!(r.text.starts_with("421 4.3.2"), "{}", r.text);
    assert_eq!(stop.await.unwrap(), 0);
}

/// A peer that sends commands but never reads the replies: once the replies fill the
/// socket buffers, the server's write times out and the connection is dropped.
#[tokio::test]
async fn peer_that_never_reads_is_dropped() {
    let limits = postern_smtp::SmtpLimits {
        command_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = env.client().await;
    let chunk = "NOOP\r\n".repeat(10_000);
    for _ in 0..5_000 {
        if !c
            .write_within(chunk.as_bytes(), Duration::from_secs(2))
            .await
        {
            break;
        }
    }
    let start = std::time::Instant::now();
    while env.server.active_connections() != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "connection still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `smtp.max_junk_commands`: commands that move no mail are counted from the last
/// delivered message; past the limit, 421 and close.
#[tokio::test]
async fn junk_command_limit() {
    let limits = postern_smtp::SmtpLimits {
        max_junk_commands: 5,
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    for cmd in ["NOOP", "RSET", "VRFY alice", "HELP", "NOOP"] {
        assert!(c.cmd(cmd).await.code < 400, "{cmd}");
    }
    // A delivered message starts the count again.
    let msg = message("a@sender.example", "alice@example.com", "junk");
    assert_eq!(
        c.send_mail("a@sender.example", &["alice@example.com"], &msg)
            .await
            .code,
        250
    );
    for _ in 0..5 {
        c.expect("NOOP", 250).await;
    }
    let r = c.cmd("NOOP").await;
    assert!(r.text.starts_with("421 4.7.0"), "{}", r.text);
    assert_eq!(c.until_closed().await, "");
}

/// `smtp.max_session_secs`: a connection ends at its lifetime whatever it does.
#[tokio::test]
async fn session_lifetime_limit() {
    let limits = postern_smtp::SmtpLimits {
        max_session: Duration::from_millis(700),
        ..Default::default()
    };
    let env = Env::with(limits, test_policy()).await;
    let mut c = env.client().await;
    c.expect("EHLO client.example", 250).await;
    c.expect("NOOP", 250).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let r = c.reply().await;
    assert!(r.text.starts_with("421 4.4.2"), "{}", r.text);
    assert_eq!(c.until_closed().await, "");
}
