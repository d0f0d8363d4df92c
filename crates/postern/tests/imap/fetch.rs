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
    let mut a = format!("APPEND INBOX (\\Flagged $Work) \"24-Nov-2026 10:00:00 +0000\" {{{}+}}\r\n", PLAIN.len()).into_bytes();
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
    assert!(code_value(&l, "MODSEQ").unwrap().trim_start_matches('(').parse::<u64>().unwrap() > 0, "{l}");
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
    assert!(fetch_line(&r, 1).contains(&format!("EMAILID {email}")), "{r:#?}");
}

#[test]
fn macros() {
    let env = Env::start();
    let mut c = two(&env);
    let r = c.cmd("FETCH 1 FAST");
    r.ok();
    let l = fetch_line(&r, 1);
    assert!(l.starts_with("* 1 FETCH (FLAGS () INTERNALDATE \""), "{l}");
    assert!(l.ends_with(&format!(" RFC822.SIZE {})", PLAIN.len())), "{l}");
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
    assert_eq!(literal_after(&fetch_line(&r, 1), "BODY[]").unwrap().as_bytes(), PLAIN);
    let r = c.cmd("FETCH 1 BODY.PEEK[HEADER]");
    assert_eq!(literal_after(&fetch_line(&r, 1), "BODY[HEADER]").unwrap(), PLAIN_HEADER);
    let r = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject From)]");
    let l = fetch_line(&r, 1);
    assert!(l.to_ascii_uppercase().contains("BODY[HEADER.FIELDS (SUBJECT FROM)] {"), "{l}");
    let at = l.find("] ").unwrap();
    assert_eq!(
        literal_after(&l, &l[..at + 1]).unwrap(),
        "From: Bob <bob@example.org>\r\nSubject: Hello\r\n\r\n"
    );
    let r = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Subject From Date Message-ID)]");
    let l = fetch_line(&r, 1);
    let at = l.find("] ").unwrap();
    assert_eq!(literal_after(&l, &l[..at + 1]).unwrap(), "To: alice@example.com\r\n\r\n");
    let r = c.cmd("FETCH 1 BODY.PEEK[TEXT]");
    assert_eq!(literal_after(&fetch_line(&r, 1), "BODY[TEXT]").unwrap(), "Hi Alice\r\n");
    // A non-multipart message's part 1 is its body.
    let r = c.cmd("FETCH 1 BODY.PEEK[1]");
    assert_eq!(literal_after(&fetch_line(&r, 1), "BODY[1]").unwrap(), "Hi Alice\r\n");
    // Multipart: parts, MIME headers, nesting.
    let r = c.cmd("FETCH 2 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2.1] BODY.PEEK[2.2] BODY.PEEK[2.MIME])");
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
    assert!(text.starts_with("preamble\r\n--outer\r\n") && text.ends_with("--outer--\r\n"), "{text:?}");
    // Partial: <offset.length>; the response names only the offset.
    let r = c.cmd("FETCH 1 (BODY.PEEK[]<0.10> BODY.PEEK[TEXT]<3.100>)");
    let l = fetch_line(&r, 1);
    assert_eq!(literal_after(&l, "BODY[]<0>").unwrap(), "From: Bob ");
    assert_eq!(literal_after(&l, "BODY[TEXT]<3>").unwrap(), "Alice\r\n");
    let r = c.cmd("FETCH 1 BODY.PEEK[]<100000.10>");
    r.ok();
    assert_eq!(literal_after(&fetch_line(&r, 1), "BODY[]<100000>").unwrap_or_default(), "");
    // BODY structure of the multipart message.
    let r = c.cmd("FETCH 2 BODY");
    let l = fetch_line(&r, 2).to_ascii_lowercase();
    assert!(l.starts_with("* 2 fetch (body ((\"text\" \"plain\" (\"charset\" \"us-ascii\") nil nil \"7bit\" 8 "), "{l}");
    assert!(l.contains("(\"text\" \"html\" (\"charset\" \"us-ascii\") nil nil \"base64\" 12 "), "{l}");
    assert!(l.ends_with(" \"alternative\") \"mixed\"))"), "{l}");
    let r = c.cmd("FETCH 2 BODYSTRUCTURE");
    let l = fetch_line(&r, 2).to_ascii_lowercase();
    assert!(l.contains("\"alternative\" (\"boundary\" \"inner\")"), "{l}");
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
    assert_eq!(literal_after(&fetch_line(&r, 1), "BINARY[]").unwrap().as_bytes(), PLAIN);
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
    // Empty mailbox: `*` names nothing, a number is out of range, UIDs just miss.
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH * FLAGS");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    c.cmd("FETCH 1 FLAGS").bad();
    let r = c.cmd("UID FETCH 1:* FLAGS");
    r.ok();
    assert!(r.untagged.is_empty(), "{r:#?}");
    for i in 0..3 {
        c.append("INBOX", "", &msg("a@example.org", &format!("s{i}"), "Tue, 24 Nov 2026 10:00:00 +0000", "x")).ok();
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
    assert_eq!(r.untagged, vec!["* 2 FETCH (UID 2 FLAGS ())"]);
    // n:* with n above the highest UID still names the highest (RFC 9051 §9).
    let r = c.cmd("UID FETCH 100:* FLAGS");
    assert_eq!(r.untagged, vec!["* 3 FETCH (UID 3 FLAGS ())"]);
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
    let a = audit(&env);
    let read: Vec<&str> = a.lines().filter(|l| l.contains("message.read")).collect();
    assert!(
        read.iter().any(|l| l.contains("INBOX") && l.contains("uid:2")),
        "no message.read for INBOX uid:2 in\n{a}"
    );
    c.cmd("SEARCH SUBJECT Multi").ok();
    let a = audit(&env);
    assert!(
        a.lines().any(|l| l.contains("message.search") && l.contains("INBOX")),
        "no message.search in\n{a}"
    );
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
        assert!(m.ends_with(b"\r\n\r\n"), "mbox message without its blank line");
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
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
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
        let head = format!("* {seq} FETCH (RFC822.SIZE {} BODY[] {{{}}}\r\n", m.len(), m.len());
        assert!(l.starts_with(&head), "message {seq}: {:?} vs {head:?}", &l[..l.len().min(80)]);
        let body = &l[head.len()..l.len() - 1];
        assert!(
            body == String::from_utf8_lossy(m),
            "message {seq} differs (len {} vs {})",
            body.len(),
            m.len()
        );
    }
}
