//! Every response the server sends in a realistic IMAP4rev1 session must decode with an
//! independent decoder: imap-codec (2.0.0-alpha.10, quirks off, so its grammar is the
//! strict RFC 3501 one plus the extensions enabled in Cargo.toml). The bytes checked are
//! the raw bytes off the socket (the client's reads are teed), greeting included, split
//! into responses at CRLF with literals honoured.
//!
//! imap-codec knows IMAP4rev1 only, so the session never ENABLEs IMAP4rev2 or
//! UTF8=ACCEPT. A few extension responses it has no grammar for are skipped — see
//! `Skip` — and each skip is checked to be needed: a skipped response must fail to
//! decode, so the list cannot silently outlive imap-codec learning the extension.

use super::client::*;
use super::common::connect;

use imap_codec::imap_types::response::{Code, Response, Status};
use imap_codec::{GreetingCodec, ResponseCodec, decode::Decoder};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

/// A socket that keeps a copy of every byte read from it.
struct Tee {
    sock: TcpStream,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.log.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sock.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

/// Responses imap-codec has no grammar for (it is IMAP4rev1 plus a few extensions):
/// untagged responses starting with `prefix` and containing `contains` are not decoded.
struct Skip {
    prefix: &'static str,
    contains: &'static str,
    why: &'static str,
}

/// RFC 4731 ESEARCH (`SEARCH RETURN (...)`): imap-codec has no `esearch-response`.
const ESEARCH: Skip = Skip {
    prefix: "* ESEARCH",
    contains: "",
    why: "RFC 4731 ESEARCH response unknown to imap-codec",
};
/// RFC 8474 OBJECTID FETCH items: no `msg-att` for EMAILID / THREADID.
const EMAILID: Skip = Skip {
    prefix: "* ",
    contains: "EMAILID (",
    why: "RFC 8474 EMAILID/THREADID fetch items unknown to imap-codec",
};
/// RFC 8514 SAVEDATE FETCH item.
const SAVEDATE: Skip = Skip {
    prefix: "* ",
    contains: "SAVEDATE ",
    why: "RFC 8514 SAVEDATE fetch item unknown to imap-codec",
};
/// RFC 8970 PREVIEW FETCH item.
const PREVIEW: Skip = Skip {
    prefix: "* ",
    contains: "PREVIEW ",
    why: "RFC 8970 PREVIEW fetch item unknown to imap-codec",
};
/// A partial BINARY answer carries its origin, `BINARY[1]<0> {50}`, as RFC 3516 §4.2
/// describes (`BINARY[<section-binary>]<<number>>`) and RFC 9051 erratum 7246 adds to
/// the ABNF; imap-codec follows RFC 9051 §9 as printed (`"BINARY" section-binary SP
/// (nstring / literal8)`), without the origin.
const BINARY_PARTIAL: Skip = Skip {
    prefix: "* ",
    contains: "BINARY[",
    why: "partial BINARY origin <n> (RFC 3516 §4.2, RFC 9051 erratum 7246) not in imap-codec's ABNF",
};
/// RFC 5258 §9 `mbox-list-extended` (CHILDINFO): imap-codec 2.0.0-alpha.10 has an
/// `ext_list_extended` feature, but only in imap-types; its decoder has no grammar for it.
const CHILDINFO: Skip = Skip {
    prefix: "* LIST ",
    contains: "(\"CHILDINFO\" (",
    why: "RFC 5258 mbox-list-extended (CHILDINFO) unknown to imap-codec's decoder",
};
/// RFC 8474 MAILBOXID STATUS item.
const MAILBOXID: Skip = Skip {
    prefix: "* STATUS",
    contains: "MAILBOXID (",
    why: "RFC 8474 MAILBOXID status item unknown to imap-codec",
};

/// Response codes imap-codec parses into their own variants: seen as `Code::Other`,
/// the server's arguments did not match the code's grammar.
const KNOWN_CODES: &[&str] = &[
    "ALERT",
    "BADCHARSET",
    "CAPABILITY",
    "PARSE",
    "PERMANENTFLAGS",
    "READ-ONLY",
    "READ-WRITE",
    "TRYCREATE",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "COMPRESSIONACTIVE",
    "OVERQUOTA",
    "TOOBIG",
    "UNKNOWN-CTE",
    "APPENDUID",
    "COPYUID",
    "UIDNOTSTICKY",
    "HIGHESTMODSEQ",
    "NOMODSEQ",
    "MODIFIED",
    "CLOSED",
];

/// The oracle: decodes responses one at a time, the first as the greeting.
#[derive(Default)]
struct Checker {
    greeted: bool,
    decoded: usize,
    skipped: Vec<(String, &'static str)>,
    failures: Vec<String>,
}

struct Session {
    c: Client,
    log: Arc<Mutex<Vec<u8>>>,
    /// Bytes of `log` already checked.
    seen: usize,
    k: Checker,
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 600 {
        let cut = s.char_indices().nth(600).map_or(s.len(), |(i, _)| i);
        format!("{:?}...({} bytes)", &s[..cut], b.len())
    } else {
        format!("{s:?}")
    }
}

/// Splits a byte stream into whole responses (through CRLF, literals `{n}` / `~{n}`
/// included); the remainder is an incomplete response.
fn split(mut b: &[u8]) -> (Vec<&[u8]>, usize) {
    let (mut out, mut used) = (Vec::new(), 0);
    'resp: loop {
        let mut at = 0;
        loop {
            let Some(lf) = b[at..].iter().position(|x| *x == b'\n') else {
                break 'resp;
            };
            let line_end = at + lf + 1;
            let line = &b[at..line_end];
            let lit = line.strip_suffix(b"}\r\n").and_then(|l| {
                let open = l.iter().rposition(|x| *x == b'{')?;
                std::str::from_utf8(&l[open + 1..])
                    .ok()?
                    .parse::<usize>()
                    .ok()
            });
            match lit {
                Some(n) if b.len() >= line_end + n => at = line_end + n,
                Some(_) => break 'resp,
                None => {
                    out.push(&b[..line_end]);
                    used += line_end;
                    b = &b[line_end..];
                    continue 'resp;
                }
            }
        }
    }
    (out, used)
}

fn code_name(code: &Code) -> Option<String> {
    match code {
        Code::Other(o) => {
            let raw = String::from_utf8_lossy(o.inner());
            Some(raw.split(' ').next().unwrap_or("").to_ascii_uppercase())
        }
        _ => None,
    }
}

impl Checker {
    fn check_one(&mut self, after: &str, r: &[u8], skips: &[&Skip]) {
        let text = String::from_utf8_lossy(r);
        let skip = skips
            .iter()
            .find(|s| text.starts_with(s.prefix) && text.contains(s.contains));
        let code = if !self.greeted {
            self.greeted = true;
            match GreetingCodec::default().decode(r) {
                Ok((&[], g)) => g.code.as_ref().and_then(code_name),
                other => {
                    self.failures
                        .push(format!("greeting {}: {other:?}", show(r)));
                    return;
                }
            }
        } else {
            match (ResponseCodec::default().decode(r), skip) {
                (Ok((&[], _)), Some(s)) => {
                    self.failures.push(format!(
                        "after {after}: {} decodes, so skip {:?} ({}) is not needed",
                        show(r),
                        s.contains,
                        s.why
                    ));
                    return;
                }
                (_, Some(s)) => {
                    self.skipped.push((show(r), s.why));
                    return;
                }
                (Ok((&[], resp)), None) => match resp {
                    Response::Status(
                        Status::Untagged(b)
                        | Status::Tagged(imap_codec::imap_types::response::Tagged {
                            body: b, ..
                        }),
                    ) => b.code.as_ref().and_then(code_name),
                    Response::Status(Status::Bye(b)) => b.code.as_ref().and_then(code_name),
                    _ => None,
                },
                (other, None) => {
                    self.failures.push(format!(
                        "after {after}: imap-codec rejects {}: {other:?}",
                        show(r)
                    ));
                    return;
                }
            }
        };
        if let Some(name) = code.filter(|n| KNOWN_CODES.contains(&n.as_str())) {
            self.failures.push(format!(
                "after {after}: response code {name} does not match its grammar in {}",
                show(r)
            ));
            return;
        }
        self.decoded += 1;
    }
}

impl Session {
    fn start(env: &Env) -> Session {
        let log = Arc::new(Mutex::new(Vec::new()));
        let tee = Tee {
            sock: connect(env.server.addr("imap")),
            log: log.clone(),
        };
        let c = Client::over(Box::new(tee));
        let mut s = Session {
            c,
            log,
            seen: 0,
            k: Checker::default(),
        };
        s.check("greeting", &[]);
        s
    }

    /// Decodes every response that arrived since the last check.
    fn check(&mut self, after: &str, skips: &[&Skip]) {
        let log = self.log.lock().unwrap().clone();
        let (resps, used) = split(&log[self.seen..]);
        self.seen += used;
        for r in resps {
            self.k.check_one(after, r, skips);
        }
    }

    /// Runs a command, expects `status`, checks the responses.
    fn run(&mut self, cmd: &str, status: &str, skips: &[&Skip]) -> Resp {
        let r = self.c.cmd(cmd);
        assert_eq!(r.status, status, "{cmd}: {r:#?}");
        self.check(cmd, skips);
        r
    }

    fn ok(&mut self, cmd: &str) -> Resp {
        self.run(cmd, "OK", &[])
    }

    /// Runs a command whose status this test does not pin (others do), checks the
    /// responses.
    fn any(&mut self, cmd: &str) -> Resp {
        let r = self.c.cmd(cmd);
        self.check(cmd, &[]);
        r
    }
}

/// A message with raw UTF-8 in its headers (RFC 6532 mail reaching a non-UTF8 client)
/// and an 8-bit body.
const RAW_UTF8: &str = "From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.org>\r\nTo: Zoë <zoe@example.com>\r\nSubject: Grüße aus Köln\r\nMessage-ID: <utf8@example.org>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße, Jürgen\r\n";

#[test]
fn every_response_decodes_with_imap_codec() {
    let env = Env::start();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("corpus.mbox");
    let tool =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/gen_mbox.py");
    let st = std::process::Command::new("python3")
        .arg(tool)
        .args(["--count", "30", "--out"])
        .arg(&out)
        .output()
        .expect("python3");
    assert!(st.status.success(), "{st:?}");
    let mbox = std::fs::read(&out).unwrap();
    env.import(ALICE.0, None, &mbox);

    let mut s = Session::start(&env);
    // Not authenticated.
    s.ok("CAPABILITY");
    s.ok("NOOP");
    s.ok(r#"ID ("name" "codec-test" "version" "1")"#);
    s.run("FROB", "BAD", &[]);
    s.run(&format!("LOGIN \"{}\" \"wrong\"", ALICE.0), "NO", &[]);
    s.ok(&format!("LOGIN \"{}\" \"{}\"", ALICE.0, ALICE.1));

    // Authenticated: mailboxes, modified UTF-7 names (no UTF8=ACCEPT).
    s.ok("CAPABILITY");
    s.ok("ID NIL");
    s.ok("NAMESPACE");
    s.ok("CREATE Projects");
    s.ok("CREATE Entw&APw-rfe");
    s.ok("CREATE \"with space/child\"");
    s.run("CREATE Projects", "NO", &[]);
    s.ok("SUBSCRIBE Projects");
    s.ok(r#"LIST "" *"#);
    s.ok(r#"LIST "" %"#);
    s.ok(r#"LIST "" """#);
    s.ok(r#"LIST (SUBSCRIBED) "" *"#);
    s.ok(r#"LIST "" * RETURN (SPECIAL-USE CHILDREN)"#);
    s.ok(r#"LIST "" % RETURN (STATUS (MESSAGES UNSEEN))"#);
    s.ok(r#"LSUB "" *"#);
    s.ok("STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)");
    s.ok("STATUS INBOX (HIGHESTMODSEQ SIZE DELETED)");
    s.run("STATUS INBOX (MAILBOXID)", "OK", &[&MAILBOXID]);
    s.run("STATUS Nonexistent (MESSAGES)", "NO", &[]);
    s.ok("GETQUOTAROOT INBOX");
    s.run("SELECT Nonexistent", "NO", &[]);

    let utf8 = RAW_UTF8.as_bytes();
    let r = s.c.append("INBOX", "\\Flagged $Work", utf8);
    assert_eq!(r.status, "OK", "{r:#?}");
    s.check("APPEND", &[]);

    s.ok("EXAMINE INBOX");
    s.ok("FETCH 1:3 (FLAGS UID)");
    s.ok("SELECT INBOX");
    let items = [
        "FLAGS",
        "UID",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODY",
        "BODYSTRUCTURE",
        "BODY[]",
        "BODY[HEADER.FIELDS (SUBJECT)]",
        "BODY[1]",
        "BODY[TEXT]<0.100>",
        "RFC822.HEADER",
    ];
    for item in items {
        s.ok(&format!("FETCH 1:* ({item})"));
    }
    s.ok("FETCH 1:* (FLAGS UID INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)");
    s.ok("UID FETCH 1:* (BODY.PEEK[HEADER] BODY.PEEK[1.MIME] RFC822.TEXT)");
    s.ok("FETCH 1:5 FAST");
    s.ok("FETCH 1:5 ALL");
    s.ok("FETCH 1:5 FULL");
    s.ok("FETCH 1:* (MODSEQ)");
    s.ok("FETCH 1:* (BINARY.SIZE[1] BINARY.PEEK[1])");
    s.run("FETCH 1:3 (BINARY.PEEK[1]<0.50>)", "OK", &[&BINARY_PARTIAL]);
    // One command per extension item, so each skip is shown to be needed on its own.
    s.run("FETCH 1:3 (EMAILID THREADID)", "OK", &[&EMAILID]);
    s.run("FETCH 1:3 (SAVEDATE)", "OK", &[&SAVEDATE]);
    s.run("FETCH 1:3 (PREVIEW)", "OK", &[&PREVIEW]);
    s.any("FETCH 99999 FLAGS");

    s.ok(r"STORE 1:3 +FLAGS (\Seen $Label1)");
    s.ok(r"STORE 2 -FLAGS (\Seen)");
    s.ok(r"STORE 4 FLAGS.SILENT (\Answered)");
    s.ok(r"UID STORE 1:* +FLAGS (\Draft)");
    s.any(r"STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\Deleted)");

    s.ok("SEARCH ALL");
    s.ok("SEARCH UNSEEN");
    s.ok(r#"SEARCH OR FROM "smith" SUBJECT "report""#);
    s.ok("UID SEARCH SINCE 1-Jan-2000 LARGER 100");
    s.ok(r#"SEARCH CHARSET UTF-8 SUBJECT "nothing-matches-this""#);
    s.ok("SEARCH MODSEQ 1");
    s.run("SEARCH RETURN (MIN MAX COUNT) ALL", "OK", &[&ESEARCH]);
    s.any("SEARCH CHARSET KOI8-R ALL");
    s.ok("SORT (SUBJECT) UTF-8 ALL");
    s.ok("THREAD REFERENCES UTF-8 ALL");

    s.ok("COPY 1:3 Projects");
    s.ok("UID COPY 4 Projects");
    s.run("COPY 1 Nonexistent", "NO", &[]);
    s.ok("MOVE 5 Projects");
    s.ok(r"STORE 1:2 +FLAGS.SILENT (\Deleted)");
    s.ok("EXPUNGE");
    s.ok(r"STORE 1 +FLAGS.SILENT (\Deleted)");
    s.ok("UID EXPUNGE 1:*");
    s.ok("CHECK");

    // IDLE: the continuation and DONE.
    let tag = s.c.tag();
    s.c.send_raw(format!("{tag} IDLE\r\n").as_bytes());
    let cont = s.c.read_response_line();
    assert!(cont.starts_with("+ "), "{cont}");
    s.c.send_raw(b"DONE\r\n");
    let r = s.c.read_until_tagged(&tag);
    assert_eq!(r.status, "OK", "{r:#?}");
    s.check("IDLE", &[]);

    // A synchronising literal: the `+` continuation.
    let tag = s.c.tag();
    s.c.send_raw(format!("{tag} SELECT {{8}}\r\n").as_bytes());
    let cont = s.c.read_response_line();
    assert!(cont.starts_with("+ "), "{cont}");
    s.c.send_raw(b"Projects\r\n");
    let r = s.c.read_until_tagged(&tag);
    assert_eq!(r.status, "OK", "{r:#?}");
    s.check("SELECT {8}", &[]);

    s.ok("FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE)");
    s.ok("CLOSE");
    s.ok("SELECT INBOX");
    s.ok("UNSELECT");
    s.any("CLOSE");
    s.ok("DELETE \"with space/child\"");
    s.ok("RENAME Entw&APw-rfe Drafts2");
    s.ok(r#"LIST "" *"#);
    // RFC 5258 §4: a parent whose child alone is subscribed gets a CHILDINFO item.
    s.ok("CREATE Parent/Kid");
    s.ok("SUBSCRIBE Parent/Kid");
    s.run(
        r#"LIST (SUBSCRIBED RECURSIVEMATCH) "" %"#,
        "OK",
        &[&CHILDINFO],
    );

    // CONDSTORE / QRESYNC (RFC 7162): MODSEQ in FETCH, HIGHESTMODSEQ, VANISHED.
    s.ok("ENABLE CONDSTORE QRESYNC");
    let r = s.ok("STATUS INBOX (UIDVALIDITY)");
    let validity: u32 = r.untagged[0]
        .rsplit_once("UIDVALIDITY ")
        .and_then(|(_, v)| v.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{r:?}"));
    s.ok(&format!("SELECT INBOX (QRESYNC ({validity} 1))"));
    s.ok(r"STORE 1 +FLAGS (\Flagged)");
    s.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)");
    s.ok(r"STORE 1 +FLAGS.SILENT (\Deleted)");
    s.ok("EXPUNGE");
    s.ok("SEARCH MODSEQ 1");
    s.ok("LOGOUT");

    let total = s.k.decoded + s.k.skipped.len();
    eprintln!(
        "imap-codec: {} responses decoded, {} skipped",
        s.k.decoded,
        s.k.skipped.len()
    );
    for (r, why) in &s.k.skipped {
        eprintln!("  skipped ({why}): {r}");
    }
    assert!(
        s.k.failures.is_empty(),
        "{} of {total} responses failed:\n{}",
        s.k.failures.len(),
        s.k.failures.join("\n")
    );
    assert!(s.k.decoded > 300, "{}", s.k.decoded);
}

/// The oracle itself: it must catch what it is here to catch.
#[test]
fn checker_reports_bad_responses() {
    let mut k = Checker::default();
    k.check_one("t", b"* OK [CAPABILITY IMAP4rev1] hi\r\n", &[]);
    k.check_one("t", b"* 1 FETCH (FLAGS (\\Seen))\r\n", &[]);
    k.check_one("t", b"* 1 FETCH (BODY[] {3}\r\nabc)\r\n", &[]);
    assert_eq!((k.decoded, k.failures.len()), (3, 0), "{:?}", k.failures);
    let bad: [&[u8]; 6] = [
        // Unbalanced parenthesis.
        b"* 1 FETCH (FLAGS (\\Seen)\r\n",
        // 8-bit in a quoted string is not IMAP4rev1.
        "* LIST () \"/\" \"Entwürfe\"\r\n".as_bytes(),
        // A known code whose argument breaks its grammar (nz-number).
        b"* OK [UIDNEXT 0] next\r\n",
        // A tagged response without text.
        b"t1 OK\r\n",
        // Trailing space.
        b"* SEARCH 1 2 \r\n",
        // A literal shorter than announced.
        b"* 1 FETCH (BODY[] {4}\r\nabc)\r\n",
    ];
    for b in bad {
        k.check_one("t", b, &[]);
    }
    assert_eq!(k.failures.len(), bad.len(), "{:#?}", k.failures);
    // A skip that is not needed is a failure too.
    k.check_one("t", b"* ESEARCH\r\n", &[&MAILBOXID]);
    k.check_one("t", b"* 1 FETCH (UID 1)\r\n", &[&EMAILID]);
    k.check_one("t", b"* 1 FETCH (EMAILID (M1) UID 1)\r\n", &[&EMAILID]);
    assert_eq!(k.failures.len(), bad.len() + 1, "{:#?}", k.failures);
    assert_eq!(k.skipped.len(), 1);
}
