//! FETCH and UID FETCH: every item (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ,
//! RFC 8474 EMAILID/THREADID, RFC 8514 SAVEDATE, RFC 8970 PREVIEW), implicit \Seen,
//! sequence-set errors, byte-exact bodies of a generated corpus, and the ledger.

use super::client::*;
use super::fixtures::*;

const PLAIN_HEADER: &str = "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: Hello\r\nMessage-ID: <m1@example.org>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n";

/// INBOX: 1 PLAIN, 2 MULTI (both unseen), selected.
fn two(env: &Env) -> Client {
    let mut c = env.login(ALICE);
    c.append("INBOX", "", PLAIN).ok();
    c.append("INBOX", "", MULTI).ok();
    c.cmd("SELECT INBOX").ok();
    c
}

#[test]
fn simple_items() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let mut a = format!(
        "APPEND INBOX (\\Flagged $Work) \"24-Nov-2026 10:00:00 +0000\" {{{}+}}\r\n",
        PLAIN.len()
    )
    .into_bytes();
    a.extend_from_slice(PLAIN);
    c.cmd_bytes(&a).ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH 1 (FLAGS UID INTERNALDATE RFC822.SIZE)");
    r.ok();
    assert_eq!(
        fetch_line(&r, 1),
        format!(
            "* 1 FETCH (FLAGS (\\Flagged $Work) UID 1 INTERNALDATE \"24-Nov-2026 10:00:00 +0000\" RFC822.SIZE {})",
            PLAIN.len()
        )
    );
    let r = c.cmd("FETCH 1 ENVELOPE");
    r.ok();
    assert_eq!(
        fetch_line(&r, 1),
        "* 1 FETCH (ENVELOPE (\"Tue, 24 Nov 2026 10:00:00 +0000\" \"Hello\" ((\"Bob\" NIL \"bob\" \"example.org\")) ((\"Bob\" NIL \"bob\" \"example.org\")) ((\"Bob\" NIL \"bob\" \"example.org\")) ((NIL NIL \"alice\" \"example.com\")) NIL NIL NIL \"<m1@example.org>\"))"
    );
    let r = c.cmd("FETCH 1 (BODY BODYSTRUCTURE)");
    r.ok();
    assert_eq!(
        fetch_line(&r, 1).to_ascii_lowercase(),
        "* 1 fetch (body (\"text\" \"plain\" (\"charset\" \"us-ascii\") nil nil \"7bit\" 10 1) bodystructure (\"text\" \"plain\" (\"charset\" \"us-ascii\") nil nil \"7bit\" 10 1 nil nil nil nil))"
    );
    // MODSEQ, EMAILID, THREADID, SAVEDATE, PREVIEW.
    let r = c.cmd("FETCH 1 (MODSEQ EMAILID THREADID SAVEDATE PREVIEW)");
    r.ok();
    let l = fetch_line(&r, 1);
    assert!(
        code_value(&l, "MODSEQ")
            .unwrap()
            .trim_start_matches('(')
            .parse::<u64>()
            .unwrap()
            > 0,
        "{l}"
    );
    let email = code_value(&l, "EMAILID").unwrap();
    assert!(email.len() > 1 && email.starts_with('('), "{l}");
    assert!(code_value(&l, "THREADID").unwrap().starts_with('('), "{l}");
    assert!(l.contains("SAVEDATE \""), "{l}");
    assert!(l.contains("PREVIEW \"Hi Alice\""), "{l}");
    // A copy has another EMAILID? No: the same message (RFC 8474 §5.1).
    c.cmd("CREATE Other").ok();
    c.cmd("COPY 1 Other").ok();
    c.cmd("SELECT Other").ok();
    let r = c.cmd("FETCH 1 EMAILID");
    assert!(
        fetch_line(&r, 1).contains(&format!("EMAILID {email}")),
        "{r:#?}"
    );
}

#[test]
fn macros() {
    let env = Env::start();
    let mut c = two(&env);
    let r = c.cmd("FETCH 1 FAST");
    r.ok();
    let l = fetch_line(&r, 1);
    assert!(l.starts_with("* 1 FETCH (FLAGS () INTERNALDATE \""), "{l}");
    assert!(
        l.ends_with(&format!(" RFC822.SIZE {})", PLAIN.len())),
        "{l}"
    );
    let r = c.cmd("FETCH 1 ALL");
    let l = fetch_line(&r, 1);
    assert!(l.contains(" ENVELOPE (") && !l.contains(" BODY "), "{l}");
    let r = c.cmd("FETCH 1 FULL");
    let l = fetch_line(&r, 1);
    assert!(l.contains(" ENVELOPE (") && l.contains(" BODY ("), "{l}");
    // Macros are not allowed in a list.
    c.cmd("FETCH 1 (ALL)").bad();
    c.cmd("FETCH 1 (FLAGS FAST)").bad();
}

#[test]
fn body_sections() {
    let env = Env::start();
    let mut c = two(&env);
    let r = c.cmd("FETCH 1 BODY.PEEK[]");
    assert_eq!(
        literal_after(&fetch_line(&r, 1), "BODY[]")
            .unwrap()
            .as_bytes(),
        PLAIN
    );
    let r = c.cmd("FETCH 1 BODY.PEEK[HEADER]");
    assert_eq!(
        literal_after(&fetch_line(&r, 1), "BODY[HEADER]").unwrap(),
        PLAIN_HEADER
    );
    let r = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject From)]");
    let l = fetch_line(&r, 1);
    assert!(
        l.to_ascii_uppercase()
            .contains("BODY[HEADER.FIELDS (SUBJECT FROM)] {"),
        "{l}"
    );
    let at = l.find("] ").unwrap();
    assert_eq!(
        literal_after(&l, &l[..at + 1]).unwrap(),
        "From: Bob <bob@example.org>\r\nSubject: Hello\r\n\r\n"
    );
    let r = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Subject From Date Message-ID)]");
    let l = fetch_line(&r, 1);
    let at = l.find("] ").unwrap();
    assert_eq!(
        literal_after(&l, &l[..at + 1]).unwrap(),
        "To: alice@example.com\r\n\r\n"
    );
    let r = c.cmd("FETCH 1 BODY.PEEK[TEXT]");
    assert_eq!(
        literal_after(&fetch_line(&r, 1), "BODY[TEXT]").unwrap(),
        "Hi Alice\r\n"
    );
    // A non-multipart message's part 1 is its body.
    let r = c.cmd("FETCH 1 BODY.PEEK[1]");
    assert_eq!(
        literal_after(&fetch_line(&r, 1), "BODY[1]").unwrap(),
        "Hi Alice\r\n"
    );
    // Multipart: parts, MIME headers, nesting.
    let r = c.cmd(
        "FETCH 2 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2.1] BODY.PEEK[2.2] BODY.PEEK[2.MIME])",
    );
    r.ok();
    let l = fetch_line(&r, 2);
    assert_eq!(literal_after(&l, "BODY[1]").unwrap(), "Part one");
    assert_eq!(
        literal_after(&l, "BODY[1.MIME]").unwrap(),
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    );
    assert_eq!(literal_after(&l, "BODY[2.1]").unwrap(), "Inner plain");
    assert_eq!(literal_after(&l, "BODY[2.2]").unwrap(), "PGI+SGk8L2I+");
    assert_eq!(
        literal_after(&l, "BODY[2.MIME]").unwrap(),
        "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
    );
    let r = c.cmd("FETCH 2 BODY.PEEK[TEXT]");
    let text = literal_after(&fetch_line(&r, 2), "BODY[TEXT]").unwrap();
    assert!(
        text.starts_with("preamble\r\n--outer\r\n") && text.ends_with("--outer--\r\n"),
        "{text:?}"
    );
    // Partial: <offset.length>; the response names only the offset.
    let r = c.cmd("FETCH 1 (BODY.PEEK[]<0.10> BODY.PEEK[TEXT]<3.100>)");
    let l = fetch_line(&r, 1);
    assert_eq!(literal_after(&l, "BODY[]<0>").unwrap(), "From: Bob ");
    assert_eq!(literal_after(&l, "BODY[TEXT]<3>").unwrap(), "Alice\r\n");
    let r = c.cmd("FETCH 1 BODY.PEEK[]<100000.10>");
    r.ok();
    assert_eq!(
        literal_after(&fetch_line(&r, 1), "BODY[]<100000>").unwrap_or_default(),
        ""
    );
    // BODY structure of the multipart message.
    let r = c.cmd("FETCH 2 BODY");
    let l = fetch_line(&r, 2).to_ascii_lowercase();
    assert!(
        l.starts_with(
            "* 2 fetch (body ((\"text\" \"plain\" (\"charset\" \"us-ascii\") nil nil \"7bit\" 8 "
        ),
        "{l}"
    );
    assert!(
        l.contains("(\"text\" \"html\" (\"charset\" \"us-ascii\") nil nil \"base64\" 12 "),
        "{l}"
    );
    assert!(l.ends_with(" \"alternative\") \"mixed\"))"), "{l}");
    let r = c.cmd("FETCH 2 BODYSTRUCTURE");
    let l = fetch_line(&r, 2).to_ascii_lowercase();
    assert!(
        l.contains("\"alternative\" (\"boundary\" \"inner\")"),
        "{l}"
    );
    assert!(l.contains("\"mixed\" (\"boundary\" \"outer\")"), "{l}");
    // Still unseen: everything above was PEEK.
    let r = c.cmd("FETCH 1:2 FLAGS");
    assert_eq!(fetch_line(&r, 1), "* 1 FETCH (FLAGS ())");
    assert_eq!(fetch_line(&r, 2), "* 2 FETCH (FLAGS ())");
    // Bad section specs.
    c.cmd("FETCH 1 BODY[HEADER.FIELDS]").bad();
    c.cmd("FETCH 1 BODY[0]").bad();
    c.cmd("FETCH 1 BODY[]<0.0.1>").bad();
    c.cmd("FETCH 1 BODY[MIME]").bad();
    c.cmd("FETCH 1 BOGUS").bad();
}

#[test]
fn binary_and_rfc822_items() {
    let env = Env::start();
    let mut c = two(&env);
    let r = c.cmd("FETCH 2 (BINARY.PEEK[2.2] BINARY.SIZE[2.2] BINARY.PEEK[1] BINARY.SIZE[1])");
    r.ok();
    let l = fetch_line(&r, 2);
    assert_eq!(literal_after(&l, "BINARY[2.2]").unwrap(), "<b>Hi</b>");
    assert!(l.contains("BINARY.SIZE[2.2] 9"), "{l}");
    assert_eq!(literal_after(&l, "BINARY[1]").unwrap(), "Part one");
    assert!(l.contains("BINARY.SIZE[1] 8"), "{l}");
    let r = c.cmd("FETCH 1 BINARY.PEEK[]");
    assert_eq!(
        literal_after(&fetch_line(&r, 1), "BINARY[]")
            .unwrap()
            .as_bytes(),
        PLAIN
    );
    // BINARY of a multipart (not a leaf) part is an error; so is an unknown encoding.
    let odd = b"From: x@example.org\r\nSubject: odd\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-rot13\r\n\r\nuryyb\r\n";
    c.append("INBOX", "", odd).ok();
    let r = c.cmd("FETCH 3 BINARY.PEEK[1]");
    r.no();
    assert!(r.text.starts_with("[UNKNOWN-CTE]"), "{r:?}");
    // RFC822 = BODY[] and sets \Seen; RFC822.HEADER = BODY.PEEK[HEADER]; RFC822.TEXT =
    // BODY[TEXT] and sets \Seen.
    let r = c.cmd("FETCH 1 RFC822.HEADER");
    let l = fetch_line(&r, 1);
    assert_eq!(literal_after(&l, "RFC822.HEADER").unwrap(), PLAIN_HEADER);
    assert!(!l.contains("FLAGS"), "{l}");
    let r = c.cmd("FETCH 1 RFC822.TEXT");
    let l = fetch_line(&r, 1);
    assert_eq!(literal_after(&l, "RFC822.TEXT").unwrap(), "Hi Alice\r\n");
    assert!(l.contains("FLAGS (\\Seen)"), "{l}");
    let r = c.cmd("FETCH 2 RFC822");
    let l = fetch_line(&r, 2);
    assert_eq!(literal_after(&l, "RFC822").unwrap().as_bytes(), MULTI);
    assert!(l.contains("FLAGS (\\Seen)"), "{l}");
}

#[test]
fn body_sets_seen_peek_and_examine_do_not() {
    let env = Env::start();
    let mut c = two(&env);
    let r = c.cmd("FETCH 1 BODY.PEEK[]");
    assert!(!fetch_line(&r, 1).contains("FLAGS"), "{r:#?}");
    // EXAMINE: BODY[] does not set \Seen.
    c.cmd("EXAMINE INBOX").ok();
    let r = c.cmd("FETCH 1 BODY[]");
    r.ok();
    assert!(!fetch_line(&r, 1).contains("FLAGS"), "{r:#?}");
    let r = c.cmd("FETCH 1 FLAGS");
    assert_eq!(fetch_line(&r, 1), "* 1 FETCH (FLAGS ())");
    // SELECT: BODY[] sets it and says so in the same response.
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH 1 BODY[TEXT]");
    r.ok();
    assert!(fetch_line(&r, 1).contains("FLAGS (\\Seen)"), "{r:#?}");
    let r = c.cmd("FETCH 1:2 FLAGS");
    assert_eq!(fetch_line(&r, 1), "* 1 FETCH (FLAGS (\\Seen))");
    assert_eq!(fetch_line(&r, 2), "* 2 FETCH (FLAGS ())");
    // Another session sees it.
    let mut o = env.login(ALICE);
    o.cmd("EXAMINE INBOX").ok();
    let r = o.cmd("FETCH 1 FLAGS");
    assert_eq!(fetch_line(&r, 1), "* 1 FETCH (FLAGS (\\Seen))");
}

#[test]
fn sequence_sets() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    // Empty mailbox: every sequence number is out of range, `*` included (as Dovecot);
    // UIDs just miss.
    c.cmd("SELECT INBOX").ok();
    c.cmd("FETCH * FLAGS").bad();
    c.cmd("FETCH 1:* FLAGS").bad();
    c.cmd("STORE * +FLAGS (\\Seen)").bad();
    c.cmd("FETCH 1 FLAGS").bad();
    let r = c.cmd("UID FETCH 1:* FLAGS");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    for i in 0..3 {
        c.append(
            "INBOX",
            "",
            &msg(
                "a@example.org",
                &format!("s{i}"),
                "Tue, 24 Nov 2026 10:00:00 +0000",
                "x",
            ),
        )
        .ok();
    }
    // Sequence numbers beyond EXISTS (3): BAD; 0 is not a number.
    c.cmd("FETCH 4 FLAGS").bad();
    c.cmd("FETCH 2:4 FLAGS").bad();
    c.cmd("FETCH 0 FLAGS").bad();
    c.cmd("FETCH 1,7 FLAGS").bad();
    // `*` and reversed ranges.
    let r = c.cmd("FETCH * UID");
    assert_eq!(r.untagged, vec!["* 3 FETCH (UID 3)"]);
    let r = c.cmd("FETCH 3:2 UID");
    assert_eq!(r.untagged, vec!["* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"]);
    // UID FETCH: missing UIDs are not an error and give nothing; UID is always included.
    let r = c.cmd("UID FETCH 50:60 FLAGS");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    let r = c.cmd("UID FETCH 2,50 FLAGS");
    r.ok();
    // Appended while selected: \Recent for this IMAP4rev1 session.
    assert_eq!(r.untagged, vec!["* 2 FETCH (UID 2 FLAGS (\\Recent))"]);
    // n:* with n above the highest UID still names the highest (RFC 9051 §9).
    let r = c.cmd("UID FETCH 100:* FLAGS");
    assert_eq!(r.untagged, vec!["* 3 FETCH (UID 3 FLAGS (\\Recent))"]);
    // Not selected.
    c.cmd("UNSELECT").ok();
    c.cmd("FETCH 1 FLAGS").bad();
    c.cmd("UID FETCH 1 FLAGS").bad();
}

#[test]
fn fetch_body_writes_the_ledger() {
    let env = Env::start();
    let mut c = two(&env);
    c.cmd("FETCH 2 BODY[]").ok();
    // The ledger names the mailbox by its id.
    let r = c.cmd("STATUS INBOX (MAILBOXID)");
    let id = code_value(&r.untagged[0], "MAILBOXID").unwrap();
    let mailbox = format!("mailbox:{}", id.trim_start_matches("(M"));
    let a = audit(&env);
    let read: Vec<&str> = a.lines().filter(|l| l.contains(" message.read ")).collect();
    assert_eq!(read.len(), 1, "{a}");
    assert!(
        read[0].contains(&format!("[{mailbox} uid:2]")) && read[0].contains(" via imap "),
        "{mailbox} uid:2 in {read:?}"
    );
    // A range of UIDs.
    c.cmd("FETCH 1:2 ENVELOPE").ok();
    let a = audit(&env);
    assert!(
        a.lines()
            .any(|l| l.contains(" message.read ") && l.contains(&format!("[{mailbox} uid:1:2]"))),
        "{a}"
    );
    c.cmd("SEARCH SUBJECT Multi").ok();
    let a = audit(&env);
    assert!(
        a.lines()
            .any(|l| l.contains(" message.search ") && l.contains(&mailbox)),
        "no message.search in\n{a}"
    );
    // Flags only: no read of message data, no entry.
    let before = audit(&env)
        .lines()
        .filter(|l| l.contains(" message.read "))
        .count();
    c.cmd("FETCH 1:2 (FLAGS UID RFC822.SIZE)").ok();
    let after = audit(&env)
        .lines()
        .filter(|l| l.contains(" message.read "))
        .count();
    assert_eq!(before, after);
}

/// Messages of an mbox as the mbox holds them: split at `From ` lines, the `>From `
/// quoting of mboxo/mboxrd undone one level, the blank line before the next separator
/// dropped, LF line ends as CRLF (what the importer stores).
fn mbox_messages(mbox: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in mbox.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b"From ") {
            out.push(Vec::new());
            continue;
        }
        let m = out.last_mut().expect("mbox starts with From_");
        let mut l = line.strip_suffix(b"\n").unwrap_or(line);
        let gt = l.iter().take_while(|b| **b == b'>').count();
        if gt > 0 && l[gt..].starts_with(b"From ") {
            l = &l[1..];
        }
        m.extend_from_slice(l);
        m.extend_from_slice(b"\r\n");
    }
    for m in &mut out {
        assert!(
            m.ends_with(b"\r\n\r\n"),
            "mbox message without its blank line"
        );
        m.truncate(m.len() - 2);
    }
    out
}

#[test]
fn corpus_bodies_are_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpus.mbox");
    let st = std::process::Command::new("python3")
        .arg("/work/shared/tools/gen_mbox.py")
        .args(["--count", "50", "--out"])
        .arg(&file)
        .output()
        .expect("run gen_mbox.py");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let mbox = std::fs::read(&file).unwrap();
    let want = mbox_messages(&mbox);
    assert_eq!(want.len(), 50);
    assert!(
        want.iter().any(|m| m.windows(7).any(|w| w == b"\nFrom h")),
        "the corpus should exercise From_ quoting"
    );
    let env = Env::start();
    env.import(ALICE.0, None, &mbox);
    let mut c = env.login(ALICE);
    let r = c.cmd("SELECT INBOX");
    assert_eq!(r.lines("* 50 EXISTS").len(), 1, "{r:#?}");
    for (i, m) in want.iter().enumerate() {
        let seq = i + 1;
        let r = c.cmd(&format!("FETCH {seq} (RFC822.SIZE BODY.PEEK[])"));
        r.ok();
        let l = fetch_line(&r, seq as u32);
        let head = format!(
            "* {seq} FETCH (RFC822.SIZE {} BODY[] {{{}}}\r\n",
            m.len(),
            m.len()
        );
        assert!(
            l.starts_with(&head),
            "message {seq}: {:?} vs {head:?}",
            &l[..l.len().min(80)]
        );
        let body = &l[head.len()..l.len() - 1];
        assert!(
            body == String::from_utf8_lossy(m),
            "message {seq} differs (len {} vs {})",
            body.len(),
            m.len()
        );
    }
}

const FORWARD: &[u8] = b"From: a@example.org\r\n\
To: alice@example.com\r\n\
Subject: Fwd\r\n\
Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain\r\n\
\r\n\
see attached\r\n\
--b1\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: \"Inner, Person\" <inner@example.net>\r\n\
Subject: =?utf-8?q?Caf=C3=A9?=\r\n\
Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\
Message-ID: <inner@x>\r\n\
\r\n\
inner body\r\n\
--b1--\r\n";

#[test]
fn embedded_message_sections() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.append("INBOX", "", FORWARD).ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH 1 (BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] BODY.PEEK[2.MIME] BODY.PEEK[2.HEADER.FIELDS (MESSAGE-ID)])");
    r.ok();
    let l = fetch_line(&r, 1);
    let inner_header = "From: \"Inner, Person\" <inner@example.net>\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <inner@x>\r\n\r\n";
    assert_eq!(
        literal_after(&l, "BODY[2]").unwrap(),
        format!("{inner_header}inner body")
    );
    assert_eq!(literal_after(&l, "BODY[2.HEADER]").unwrap(), inner_header);
    assert_eq!(literal_after(&l, "BODY[2.TEXT]").unwrap(), "inner body");
    assert_eq!(literal_after(&l, "BODY[2.1]").unwrap(), "inner body");
    assert_eq!(
        literal_after(&l, "BODY[2.MIME]").unwrap(),
        "Content-Type: message/rfc822\r\n\r\n"
    );
    assert_eq!(
        literal_after(&l, "BODY[2.HEADER.FIELDS (MESSAGE-ID)]").unwrap(),
        "Message-ID: <inner@x>\r\n\r\n"
    );
    // BODYSTRUCTURE of message/rfc822: envelope, body and lines of the embedded message.
    let r = c.cmd("FETCH 1 BODYSTRUCTURE");
    let l = fetch_line(&r, 1);
    let low = l.to_ascii_lowercase();
    assert!(
        low.contains("(\"message\" \"rfc822\" nil nil nil \"7bit\" "),
        "{l}"
    );
    assert!(
        l.contains("(\"Mon, 01 Jan 2024 00:00:00 +0000\" \"=?"),
        "{l}"
    );
    assert!(
        l.contains("?=\" ((\"Inner, Person\" NIL \"inner\" \"example.net\"))"),
        "{l}"
    );
    assert!(
        l.contains(" NIL NIL NIL NIL \"<inner@x>\") (\"TEXT\" \"PLAIN\" "),
        "{l}"
    );
    // Lines of the embedded message: 4 header lines, the blank line, the body line.
    assert!(
        l.contains(" 10 1 NIL NIL NIL NIL) 6 NIL NIL NIL NIL)"),
        "{l}"
    );
    // Sections that do not exist: an empty string or NIL, never an error.
    let r = c.cmd("FETCH 1 (BODY.PEEK[3] BODY.PEEK[1.2])");
    assert!(r.status == "OK", "{r:#?}");
}

#[test]
fn envelope_edge_cases() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let m = b"From: \"Doe, \\\"JD\\\" John\" <jd@example.org>\r\nSender: sec@example.org\r\nReply-To: r@example.org\r\nTo: b@example.org\r\nCc: c1@example.org, c2@example.org\r\nSubject: with \"quotes\" and \\backslash\r\nMessage-ID: <e@x>\r\nIn-Reply-To: <p@x>\r\n\r\nx\r\n";
    c.append("INBOX", "", m).ok();
    c.append("INBOX", "", b"X-Nothing: here\r\n\r\nbody\r\n")
        .ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH 1:2 ENVELOPE");
    r.ok();
    assert_eq!(
        fetch_line(&r, 1),
        "* 1 FETCH (ENVELOPE (NIL \"with \\\"quotes\\\" and \\\\backslash\" ((\"Doe, \\\"JD\\\" John\" NIL \"jd\" \"example.org\")) ((NIL NIL \"sec\" \"example.org\")) ((NIL NIL \"r\" \"example.org\")) ((NIL NIL \"b\" \"example.org\")) ((NIL NIL \"c1\" \"example.org\")(NIL NIL \"c2\" \"example.org\")) NIL \"<p@x>\" \"<e@x>\"))"
    );
    assert_eq!(
        fetch_line(&r, 2),
        "* 2 FETCH (ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))"
    );
}

#[test]
fn header_fields_folded_and_case_insensitive() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let m = b"from: x@example.org\r\nSubject: a long\r\n  folded subject\r\nX-Multi: one\r\nx-multi: two\r\n\r\nbody\r\n";
    c.append("INBOX", "", m).ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT X-MULTI)]");
    let l = fetch_line(&r, 1);
    assert_eq!(
        literal_after(&l, "BODY[HEADER.FIELDS (SUBJECT X-MULTI)]").unwrap(),
        "Subject: a long\r\n  folded subject\r\nX-Multi: one\r\nx-multi: two\r\n\r\n"
    );
    let r = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (x-multi FROM)]");
    let l = fetch_line(&r, 1);
    assert_eq!(
        literal_after(&l, "BODY[HEADER.FIELDS.NOT (X-MULTI FROM)]").unwrap(),
        "Subject: a long\r\n  folded subject\r\n\r\n"
    );
    // A field that is absent: just the blank line.
    let r = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (X-ABSENT)]");
    assert_eq!(
        literal_after(&fetch_line(&r, 1), "BODY[HEADER.FIELDS (X-ABSENT)]").unwrap(),
        "\r\n"
    );
}

#[test]
fn binary_decodes_quoted_printable_and_partial() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let m = b"From: x@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 au =\r\nlait\r\n";
    c.append("INBOX", "", m).ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] BINARY.PEEK[1]<2.3>)");
    r.ok();
    let l = fetch_line(&r, 1);
    assert_eq!(literal_after(&l, "BINARY[1]").unwrap(), "Café au lait\r\n");
    // Decoded octets: é is two.
    assert!(l.contains("BINARY.SIZE[1] 15"), "{l}");
    // The partial counts decoded octets.
    assert_eq!(literal_after(&l, "BINARY[1]<2>").unwrap(), "fé");
}

#[test]
fn copy_keeps_internaldate() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let mut a = format!(
        "APPEND INBOX \"01-Feb-2020 12:00:00 +0000\" {{{}+}}\r\n",
        PLAIN.len()
    )
    .into_bytes();
    a.extend_from_slice(PLAIN);
    c.cmd_bytes(&a).ok();
    c.cmd("CREATE Kept").ok();
    c.cmd("SELECT INBOX").ok();
    c.cmd("COPY 1 Kept").ok();
    c.cmd("SELECT Kept").ok();
    let r = c.cmd("FETCH 1 INTERNALDATE");
    assert_eq!(
        fetch_line(&r, 1),
        "* 1 FETCH (INTERNALDATE \" 1-Feb-2020 12:00:00 +0000\")"
    );
}

/// RFC 9051 §7.5.2: a group is `(NIL NIL "name" NIL)` … `(NIL NIL NIL NIL)` in the
/// address list.
#[test]
fn envelope_groups() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let m = b"From: a@example.org\r\nTo: undisclosed-recipients:;, b@example.org\r\nCc: Team: c1@example.org, c2@example.org;\r\nSubject: g\r\n\r\nx\r\n";
    c.append("INBOX", "", m).ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH 1 ENVELOPE");
    let l = fetch_line(&r, 1);
    assert!(
        l.contains(" ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)(NIL NIL \"b\" \"example.org\")) ((NIL NIL \"Team\" NIL)(NIL NIL \"c1\" \"example.org\")(NIL NIL \"c2\" \"example.org\")(NIL NIL NIL NIL)) "),
        "{l}"
    );
    // Only an empty group: the two markers, nothing else.
    let m = b"From: a@example.org\r\nTo: undisclosed-recipients:;\r\nSubject: e\r\n\r\nx\r\n";
    c.append("INBOX", "", m).ok();
    // A group between plain addresses, with a display name and a folded line inside it.
    let m = b"From: a@example.org\r\nTo: x@example.org, Friends: \"Ann B\" <ann@example.net>,\r\n bob@example.net;, z@example.org\r\nSubject: m\r\n\r\nx\r\n";
    c.append("INBOX", "", m).ok();
    c.cmd("NOOP").ok();
    let r = c.cmd("FETCH 2:3 ENVELOPE");
    let l = fetch_line(&r, 2);
    assert!(
        l.contains(" \"e\" ((NIL NIL \"a\" \"example.org\")) ((NIL NIL \"a\" \"example.org\")) ((NIL NIL \"a\" \"example.org\")) ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL "),
        "{l}"
    );
    let l = fetch_line(&r, 3);
    assert!(
        l.contains(" ((NIL NIL \"x\" \"example.org\")(NIL NIL \"Friends\" NIL)(\"Ann B\" NIL \"ann\" \"example.net\")(NIL NIL \"bob\" \"example.net\")(NIL NIL NIL NIL)(NIL NIL \"z\" \"example.org\")) NIL NIL "),
        "{l}"
    );
    // Markers are not addresses: SORT (TO) takes the first member's mailbox, and SEARCH
    // finds members (and the group's name) but nothing through an end marker.
    let r = c.cmd("SORT (TO) UTF-8 ALL");
    assert!(r.untagged.iter().any(|l| l == "* SORT 2 1 3"), "{r:?}");
    let r = c.cmd("SEARCH TO bob@example.net");
    assert!(r.untagged.iter().any(|l| l == "* SEARCH 3"), "{r:?}");
    let r = c.cmd("SEARCH TO undisclosed");
    assert!(r.untagged.iter().any(|l| l == "* SEARCH 1 2"), "{r:?}");
}

#[test]
fn utf8_envelope_by_imap_version() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let m = "From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nx\r\n";
    c.append("INBOX", "", m.as_bytes()).ok();
    c.cmd("SELECT INBOX").ok();
    // IMAP4rev1: 7-bit only: an encoded word (any equivalent form).
    let r = c.cmd("FETCH 1 ENVELOPE");
    let l = fetch_line(&r, 1);
    assert!(l.is_ascii(), "{l}");
    assert!(l.contains(" \"=?") && l.contains("?=\" ((\"=?"), "{l}");
    // IMAP4rev2: UTF-8 quoted strings.
    c.cmd("ENABLE IMAP4rev2").ok();
    let r = c.cmd("FETCH 1 ENVELOPE");
    let l = fetch_line(&r, 1);
    assert!(
        l.contains(" \"Grüße\" ((\"Jörg\" NIL \"j\" \"example.org\"))"),
        "{l}"
    );
    // PREVIEW of an HTML-only message is text.
    let h = b"From: h@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n<html><body><p>Hello <b>there</b></p></body></html>\r\n";
    c.append("INBOX", "", h).ok();
    let r = c.cmd("FETCH 2 (PREVIEW)");
    let l = fetch_line(&r, 2);
    assert!(l.contains("PREVIEW \"Hello there\""), "{l}");
    // \Recent never appears for IMAP4rev2.
    assert!(
        !c.cmd("FETCH 1:2 FLAGS")
            .untagged
            .iter()
            .any(|l| l.contains("Recent"))
    );
}

#[test]
fn bodystructure_extension_data() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let m = b"From: x@example.org\r\nSubject: ext\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\nContent-Language: en\r\n\r\n--x\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\nContent-ID: <id1@x>\r\nContent-Description: The text\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Disposition: inline\r\nContent-Language: en, de\r\nContent-Location: http://example.org/a\r\n\r\nHi=\r\n there\r\n--x\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--x--\r\n";
    c.append("INBOX", "", m).ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH 1 BODYSTRUCTURE");
    let l = fetch_line(&r, 1).to_ascii_lowercase();
    assert!(
        l.contains("(\"text\" \"plain\" (\"charset\" \"utf-8\" \"format\" \"flowed\") \"<id1@x>\" \"the text\" \"quoted-printable\" 11 2 nil (\"inline\" nil) (\"en\" \"de\") \"http://example.org/a\")"),
        "{l}"
    );
    assert!(
        l.contains("(\"application\" \"pdf\" (\"name\" \"a.pdf\") nil nil \"base64\" 8 nil (\"attachment\" (\"filename\" \"a.pdf\")) nil nil)"),
        "{l}"
    );
    assert!(
        l.ends_with(" \"mixed\" (\"boundary\" \"x\") nil \"en\" nil))"),
        "{l}"
    );
    // BODY has no extension data.
    let r = c.cmd("FETCH 1 BODY");
    let l = fetch_line(&r, 1).to_ascii_lowercase();
    assert!(l.contains("\"quoted-printable\" 11 2)(\"application\" \"pdf\" (\"name\" \"a.pdf\") nil nil \"base64\" 8) \"mixed\"))"), "{l}");
}

#[test]
fn raw_eight_bit_headers_never_leak_unencoded() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let m = b"From: Ren\xe9 <r@example.org>\r\nSubject: caf\xe9 \xff\xfe\r\n\r\nx\r\n";
    c.append("INBOX", "", m).ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH 1 (ENVELOPE BODYSTRUCTURE)");
    r.ok();
    let l = fetch_line(&r, 1);
    // IMAP4rev1: envelope strings are 7-bit (RFC 2047 encoded words).
    assert!(
        l.is_ascii(),
        "8-bit bytes sent to an IMAP4rev1 client: {l:?}"
    );
}
