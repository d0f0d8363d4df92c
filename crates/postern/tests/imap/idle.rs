//! IDLE (RFC 2177, RFC 9051 §6.3.13): changes from another session and from SMTP
//! delivery arrive while idling; DONE ends it; anything else is BAD.

use super::client::*;
use super::fixtures::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};

/// Answers every DNS question with NXDOMAIN, so SPF/DMARC checks of the SMTP
/// delivery cost nothing.
fn nxdomain_dns() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut i = 12;
            while i < n && buf[i] != 0 {
                i += buf[i] as usize + 1;
            }
            let end = (i + 5).min(n);
            let mut out = buf[..2].to_vec();
            out.extend_from_slice(&[0x81 | (buf[2] & 1), 0x83, 0, 1, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&buf[12..end]);
            let _ = sock.send_to(&out, peer);
        }
    });
    addr
}

fn smtp_reply(s: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let mut line = Vec::new();
        loop {
            s.read_exact(&mut b).unwrap();
            line.push(b[0]);
            if b[0] == b'\n' {
                break;
            }
        }
        all.extend_from_slice(&line);
        if line.len() < 4 || line[3] != b'-' {
            return String::from_utf8_lossy(&all).into_owned();
        }
    }
}

fn smtp(s: &mut TcpStream, line: &str, want: &str) {
    s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    let r = smtp_reply(s);
    assert!(r.starts_with(want), "{line}: {r}");
}

#[test]
fn idle_sees_append_and_smtp_delivery() {
    let dns = nxdomain_dns();
    let env = Env::start_with(&format!(
        "[dns]\nnameservers = [\"{dns}\"]\ntimeout_secs = 2\n"
    ));
    let mut c = env.login(ALICE);
    c.cmd("SELECT INBOX").ok();
    c.send_raw(b"i1 IDLE\r\n");
    let l = c.read_response_line();
    assert!(l.starts_with("+ "), "{l}");
    // Another session appends.
    let mut o = env.login(ALICE);
    o.append("INBOX", "", PLAIN).ok();
    let l = c.read_response_line();
    assert_eq!(l, "* 1 EXISTS");
    // IMAP4rev1 client: RECENT follows.
    let l = c.read_response_line();
    assert_eq!(l, "* 1 RECENT");
    // A flag change by the other session.
    o.cmd("SELECT INBOX").ok();
    o.cmd("STORE 1 +FLAGS.SILENT (\\Flagged)").ok();
    let l = c.read_response_line();
    assert!(
        l.starts_with("* 1 FETCH (") && l.contains("\\Flagged"),
        "{l}"
    );
    // SMTP delivery.
    let mut s = TcpStream::connect(env.server.addr("smtp")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    assert!(smtp_reply(&mut s).starts_with("220"));
    smtp(&mut s, "EHLO client.example", "250");
    smtp(&mut s, "MAIL FROM:<someone@sender.example>", "250");
    smtp(&mut s, "RCPT TO:<alice@example.com>", "250");
    smtp(&mut s, "DATA", "354");
    smtp(
        &mut s,
        "From: <someone@sender.example>\r\nTo: <alice@example.com>\r\nSubject: by smtp\r\nMessage-ID: <smtp1@sender.example>\r\n\r\nhello\r\n.",
        "250",
    );
    smtp(&mut s, "QUIT", "221");
    let l = c.read_response_line();
    assert_eq!(l, "* 2 EXISTS");
    assert_eq!(c.read_response_line(), "* 2 RECENT");
    // An expunge by the other session (IDLE may announce expunges).
    o.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok();
    o.cmd("EXPUNGE").ok();
    let mut l = c.read_response_line();
    if l.starts_with("* 1 FETCH") {
        l = c.read_response_line();
    }
    assert_eq!(l, "* 1 EXPUNGE");
    c.send_raw(b"DONE\r\n");
    let r = c.read_until_tagged("i1");
    r.ok();
    let r = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]");
    assert!(fetch_line(&r, 1).contains("Subject: by smtp"), "{r:#?}");
}

#[test]
fn idle_ends_bad_on_other_input() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    // IDLE needs no selected mailbox.
    c.send_raw(b"i1 IDLE\r\n");
    assert!(c.read_response_line().starts_with("+ "));
    c.send_raw(b"i2 NOOP\r\n");
    let r = c.read_until_tagged("i1");
    r.bad();
    // The session goes on; the NOOP line was consumed as the bad input.
    c.cmd("NOOP").ok();
    c.cmd("IDLE x").bad();
    c.send_raw(b"i3 IDLE\r\n");
    assert!(c.read_response_line().starts_with("+ "));
    c.send_raw(b"done\r\n");
    c.read_until_tagged("i3").ok();
}

#[test]
fn idle_before_login_is_bad() {
    let env = Env::start();
    let mut c = env.connect();
    c.cmd("IDLE").bad();
}

#[test]
fn idle_under_qresync_says_vanished() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.append("INBOX", "", PLAIN).ok();
    c.append("INBOX", "", PLAIN).ok();
    c.cmd("ENABLE QRESYNC").ok();
    c.cmd("SELECT INBOX").ok();
    c.send_raw(b"i1 IDLE\r\n");
    assert!(c.read_response_line().starts_with("+ "));
    let mut o = env.login(ALICE);
    o.cmd("SELECT INBOX").ok();
    o.cmd("MOVE 1 Trash").ok();
    assert_eq!(c.read_response_line(), "* VANISHED 1");
    c.send_raw(b"DONE\r\n");
    c.read_until_tagged("i1").ok();
    let r = c.cmd("FETCH 1:* UID");
    assert_eq!(r.untagged, vec!["* 1 FETCH (UID 2)"]);
}
