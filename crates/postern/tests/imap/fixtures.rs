//! Messages and small helpers shared by the message-command tests (select, fetch, store,
//! copy_move, expunge, search, sort_thread, append, idle, condstore).
#![allow(dead_code)] // each test file uses a different subset

use super::client::*;

/// A one-part message without MIME headers (text/plain; us-ascii by default).
pub const PLAIN: &[u8] = b"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: Hello\r\nMessage-ID: <m1@example.org>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nHi Alice\r\n";

/// multipart/mixed: 1 text/plain, 2 multipart/alternative (2.1 text/plain, 2.2 base64
/// text/html "<b>Hi</b>").
pub const MULTI: &[u8] = b"From: Carol <carol@example.net>\r\n\
To: alice@example.com\r\n\
Subject: Multi\r\n\
Date: Wed, 25 Nov 2026 08:30:00 +0100\r\n\
Message-ID: <multi@example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Part one\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain\r\n\
\r\n\
Inner plain\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PGI+SGk8L2I+\r\n\
--inner--\r\n\
\r\n\
--outer--\r\n";

/// A simple message with the given fields.
pub fn msg(from: &str, subject: &str, date: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: alice@example.com\r\nSubject: {subject}\r\nDate: {date}\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// `n` numbered messages (`Subject: m1` …) appended to alice's INBOX, INBOX selected.
pub fn alice_with(env: &Env, n: usize) -> Client {
    let mut c = env.login(ALICE);
    for i in 1..=n {
        let m = msg(
            "Bob <bob@example.org>",
            &format!("m{i}"),
            "Tue, 24 Nov 2026 10:00:00 +0000",
            &format!("body {i}"),
        );
        c.append("INBOX", "", &m).ok();
    }
    c.cmd("SELECT INBOX").ok();
    c
}

/// The value after `name ` in a response-code or FETCH line: `[UIDNEXT 5]` → "5".
pub fn code_value(line: &str, name: &str) -> Option<String> {
    let at = line.find(&format!("{name} "))? + name.len() + 1;
    let rest = &line[at..];
    let end = rest
        .find(|c: char| c == ']' || c == ')' || c == ' ')
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// The one `* n FETCH` line for sequence number `seq`.
pub fn fetch_line(r: &Resp, seq: u32) -> String {
    let l = r.lines(&format!("* {seq} FETCH "));
    assert_eq!(l.len(), 1, "one FETCH for {seq}: {r:#?}");
    l[0].to_string()
}

/// The literal (or quoted string) that follows `item` in a FETCH line.
pub fn literal_after(line: &str, item: &str) -> Option<String> {
    let at = line.find(item)? + item.len();
    let rest = line[at..].strip_prefix(' ')?;
    if let Some(r) = rest.strip_prefix('{').or_else(|| rest.strip_prefix("~{")) {
        let close = r.find('}')?;
        let n: usize = r[..close].parse().ok()?;
        let data = &r[close + 3..];
        return Some(data.get(..n)?.to_string());
    }
    if rest.starts_with("NIL") {
        return None;
    }
    let q = rest.strip_prefix('"')?;
    Some(q[..q.find('"')?].to_string())
}

/// Ledger entries as printed by `postern audit show`.
pub fn audit(env: &Env) -> String {
    env.server.cli_ok(&["audit", "show", "--limit", "1000"], "")
}
