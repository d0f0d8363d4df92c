//! FETCH BODYSTRUCTURE, BODY and ENVELOPE compared with Dovecot's for the same messages
//! (issue 4): the shared corpus (`../shared/tools/gen_mbox.py`) plus hand-made tricky
//! MIME messages are APPENDed to a throwaway Dovecot (started by
//! `../shared/tools/dovecot_baseline.sh start` in a temporary directory, on its own
//! ports, stopped afterwards) and to Postern, fetched back from both, and compared item
//! by item. Postern's copy must also come back byte for byte.
//!
//! Both sessions speak IMAP4rev1 (Dovecot 2.3 has no IMAP4rev2). Differences that RFC
//! 9051 / 3501 permit are normalised before comparing, each with its reason (see
//! [`Norm`]) and listed in COMPATIBILITY.md; any other difference fails the test.
//!
//! Dovecot missing is a failure that says how to install it, never a skip (`.ci/run`
//! installs it). Dovecot is started as root (its mail processes run as the `vmail`
//! user the baseline script creates).

#[allow(dead_code)] // the fixture serves several test binaries
#[path = "imap/client.rs"]
mod client;
#[path = "common/mod.rs"]
mod common;

use client::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Corpus size: every shape gen_mbox.py makes shows up well within this many.
const CORPUS: u32 = 150;

fn shared_tool(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/tools")
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: the shared tools live next to the repository",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Dovecot started by the baseline script; stopped (by its master pid, through the
/// script) when dropped.
struct Dovecot {
    work: PathBuf,
    port: u16,
}

impl Dovecot {
    fn start(dir: &Path) -> Dovecot {
        let found = Command::new("sh")
            .args(["-c", "command -v dovecot || test -x /usr/sbin/dovecot"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "`dovecot` is not installed: this test needs it (apt-get install dovecot-imapd \
             dovecot-pop3d dovecot-lmtpd, or ../shared/tools/install_tools.sh; .ci/run installs it)"
        );
        let work = dir.join("dovecot");
        let port = free_port();
        let log = dir.join("dovecot-start.log");
        // Output to a file: the daemon inherits the script's stdout, and a pipe would
        // stay open for as long as it runs.
        let out = std::fs::File::create(&log).unwrap();
        let status = Command::new("bash")
            .arg(shared_tool("dovecot_baseline.sh"))
            .arg("start")
            .env("WORK", &work)
            .env("IMAP_PORT", port.to_string())
            .env("POP3_PORT", free_port().to_string())
            .env("LMTP_PORT", free_port().to_string())
            .env("NUSERS", "1")
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/sbin",
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .expect("bash runs dovecot_baseline.sh");
        let d = Dovecot { work, port };
        assert!(
            status.success(),
            "dovecot_baseline.sh start failed ({status}); it needs root (for the vmail \
             user):\n{}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(d.work.join("dovecot.log")).unwrap_or_default()
        );
        d
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(shared_tool("dovecot_baseline.sh"))
            .arg("stop")
            .env("WORK", &self.work)
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/sbin",
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The generator's corpus, one message per entry with CRLF line ends (what APPEND
/// sends), split by Python's mailbox module as tests/clients/imaplib_corpus.py does.
fn corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mbox = dir.join("corpus.mbox");
    let status = Command::new("python3")
        .arg(shared_tool("gen_mbox.py"))
        .args(["--count", &CORPUS.to_string(), "--out"])
        .arg(&mbox)
        .stdout(Stdio::null())
        .status()
        .expect("python3 is needed to generate the test mbox");
    assert!(status.success(), "gen_mbox.py failed: {status}");
    let split = dir.join("split");
    std::fs::create_dir_all(&split).unwrap();
    let script = "import mailbox, re, sys, os\n\
                  box = mailbox.mbox(sys.argv[1])\n\
                  for i, k in enumerate(box.keys()):\n\
                  \x20   raw = re.sub(rb'\\r?\\n', b'\\r\\n', box.get_bytes(k))\n\
                  \x20   open(os.path.join(sys.argv[2], '%05d.eml' % i), 'wb').write(raw)\n";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&mbox)
        .arg(&split)
        .status()
        .expect("python3");
    assert!(status.success(), "splitting the mbox failed");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&split)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Hand-made messages for what the generator does not make: odd MIME, 8-bit and
/// encoded headers, groups.
fn tricky() -> Vec<Vec<u8>> {
    let list: &[&str] = &[
        // 0: nested multiparts three deep, an inline image in a related part.
        "From: Alice <alice@example.org>\n\
         To: Bob <bob@example.net>\n\
         Subject: nested\n\
         Date: Wed, 25 Nov 2026 04:20:45 +0000\n\
         Message-ID: <nested@example.org>\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\n\
         \n\
         preamble\n\
         --outer\n\
         Content-Type: multipart/alternative; boundary=\"alt\"\n\
         \n\
         --alt\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\
         \n\
         Grüße\n\
         --alt\n\
         Content-Type: multipart/related; boundary=\"rel\"; type=\"text/html\"\n\
         \n\
         --rel\n\
         Content-Type: text/html; charset=utf-8\n\
         \n\
         <p>hi <img src=\"cid:img1@x\"></p>\n\
         --rel\n\
         Content-Type: image/png\n\
         Content-ID: <img1@x>\n\
         Content-Transfer-Encoding: base64\n\
         Content-Disposition: inline\n\
         \n\
         iVBORw0KGgo=\n\
         --rel--\n\
         --alt--\n\
         --outer\n\
         Content-Type: application/octet-stream; name=data.bin\n\
         Content-Disposition: attachment; filename=data.bin; size=4\n\
         Content-Transfer-Encoding: base64\n\
         Content-Description: some data\n\
         Content-Language: en-GB\n\
         Content-Location: http://example.org/data.bin\n\
         \n\
         AAECAw==\n\
         --outer--\n\
         epilogue\n",
        // 1: a forwarded message/rfc822 that is itself multipart, with groups.
        "From: Carol <carol@example.org>\n\
         To: undisclosed-recipients:;\n\
         Cc: x@example.org, Team: c1@example.org, \"C Two\" <c2@example.org>;, z@example.org\n\
         Subject: Fwd: inner\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=b1\n\
         \n\
         --b1\n\
         Content-Type: text/plain\n\
         \n\
         See below.\n\
         --b1\n\
         Content-Type: message/rfc822\n\
         Content-Disposition: inline\n\
         \n\
         From: =?ISO-8859-1?Q?J=F6rg?= <joerg@example.de>\n\
         To: Team: a@example.de;\n\
         Subject: =?UTF-8?B?aW5uZXIgw6Q=?=\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
         Message-ID: <inner@example.de>\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/alternative; boundary=b2\n\
         \n\
         --b2\n\
         Content-Type: text/plain; charset=iso-8859-1\n\
         Content-Transfer-Encoding: quoted-printable\n\
         \n\
         caf=E9\n\
         --b2\n\
         Content-Type: text/html\n\
         \n\
         <b>caf&eacute;</b>\n\
         --b2--\n\
         --b1--\n",
        // 2: encoded-word and RFC 2231 parameters.
        "From: d@example.org\n\
         Subject: params\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"p\"\n\
         \n\
         --p\n\
         Content-Type: application/pdf; name=\"=?UTF-8?B?w6l0w6kucGRm?=\"\n\
         Content-Disposition: attachment; filename=\"=?UTF-8?Q?=C3=A9t=C3=A9.pdf?=\"\n\
         Content-Transfer-Encoding: base64\n\
         \n\
         JVBERi0=\n\
         --p\n\
         Content-Type: text/plain; charset=us-ascii; name*=UTF-8''%E2%82%AC%20rates.txt\n\
         Content-Disposition: attachment;\n\
         \x20filename*0*=UTF-8''%E2%82%AC%20very%20long%20;\n\
         \x20filename*1=\"name.txt\"\n\
         \n\
         rates\n\
         --p\n\
         Content-Type: text/plain; format=flowed; delsp=yes; CHARSET=\"UTF-8\"\n\
         Content-Disposition: inline; filename*=iso-8859-1'de'%E4.txt\n\
         \n\
         flowed\n\
         --p--\n",
        // 3: no Content-Type at all (MIME-Version present).
        "From: e@example.org\n\
         Subject: no type\n\
         MIME-Version: 1.0\n\
         Content-Transfer-Encoding: 7bit\n\
         \n\
         just text\n\
         two lines\n",
        // 4: a multipart whose close delimiter never comes.
        "From: f@example.org\n\
         Subject: unterminated\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"u\"\n\
         \n\
         --u\n\
         Content-Type: text/plain\n\
         \n\
         first\n\
         --u\n\
         Content-Type: text/plain\n\
         \n\
         second, and then the message ends\n",
        // 5: 8-bit header fields (RFC 6532 style UTF-8) and a body without a final line
        // end.
        "From: Jörg Müller <joerg@example.de>\n\
         To: \"Zoë\" <zoe@example.org>, plain@example.org\n\
         Subject: Grüße aus Köln\n\
         Date: Tue, 05 Mar 2024 10:20:30\n +0100\n\
         Message-ID: <8bit@example.de>\n\
         In-Reply-To: <parent@example.de>\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\
         \n\
         Grüße\n\
         no final newline",
        // 6: multipart/digest: children default to message/rfc822.
        "From: g@example.org\n\
         Subject: digest\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/digest; boundary=d\n\
         \n\
         --d\n\
         \n\
         From: one@example.org\n\
         Subject: first\n\
         \n\
         one\n\
         --d\n\
         Content-Type: text/plain\n\
         \n\
         not a message\n\
         --d--\n",
        // 7: an empty body, Sender and Reply-To present, a comment in From.
        "From: h@example.org (Harry Example)\n\
         Sender: list-owner@example.org\n\
         Reply-To: list@example.org\n\
         Bcc: hidden@example.org\n\
         Subject: \n\
         Content-Type: TEXT/Plain; Charset=US-ASCII\n\
         \n",
        // 8: message/rfc822 whose inner message has no MIME header and a multipart
        // with an empty part.
        "From: i@example.org\n\
         Subject: inner plain\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"e\"\n\
         \n\
         --e\n\
         \n\
         --e\n\
         Content-Type: message/rfc822\n\
         \n\
         Subject: bare\n\
         \n\
         bare body\n\
         --e--\n",
    ];
    list.iter()
        .map(|m| m.replace('\n', "\r\n").into_bytes())
        .collect()
}

/// A minimal IMAP client that keeps response bytes exact (literals included), for two
/// servers that may answer with quoted strings or literals as they like.
struct Raw {
    io: BufReader<TcpStream>,
    next: u32,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut r = Raw {
            io: BufReader::new(s),
            next: 1,
        };
        let greeting = r.response();
        assert!(greeting.starts_with(b"* OK"), "{}", lossy(&greeting));
        r
    }

    /// One response with its literals, without the final CRLF.
    fn response(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let n = self.io.read_until(b'\n', &mut out).unwrap();
            assert!(n > 0, "connection closed after {}", lossy(&out));
            let line = &out[start..];
            let lit = line
                .strip_suffix(b"}\r\n")
                .and_then(|l| l.iter().rposition(|&c| c == b'{').map(|i| &l[i + 1..]))
                .and_then(|n| {
                    std::str::from_utf8(n)
                        .ok()?
                        .trim_end_matches('+')
                        .parse()
                        .ok()
                });
            match lit {
                Some(len) => {
                    let mut data = vec![0u8; len];
                    self.io.read_exact(&mut data).unwrap();
                    out.extend_from_slice(&data);
                }
                None => {
                    out.truncate(out.len() - 2);
                    return out;
                }
            }
        }
    }

    /// Sends one command; the untagged responses, panicking unless the tagged one is OK.
    fn cmd(&mut self, command: &[u8]) -> Vec<Vec<u8>> {
        let tag = format!("r{}", self.next);
        self.next += 1;
        let mut line = format!("{tag} ").into_bytes();
        line.extend_from_slice(command);
        line.extend_from_slice(b"\r\n");
        self.io.get_mut().write_all(&line).unwrap();
        let mut untagged = Vec::new();
        loop {
            let r = self.response();
            if let Some(rest) = r.strip_prefix(format!("{tag} ").as_bytes()) {
                assert!(
                    rest.starts_with(b"OK"),
                    "{} -> {}",
                    lossy(&command[..command.len().min(200)]),
                    lossy(rest)
                );
                return untagged;
            }
            untagged.push(r);
        }
    }

    fn append(&mut self, msg: &[u8]) {
        let mut c = format!("APPEND INBOX {{{}+}}\r\n", msg.len()).into_bytes();
        c.extend_from_slice(msg);
        self.cmd(&c);
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An IMAP value as far as FETCH responses need: NIL, atoms and numbers, strings (quoted
/// or literal: the same value), parenthesised lists.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Nil,
    Atom(String),
    Str(Vec<u8>),
    List(Vec<V>),
}

struct P<'a> {
    b: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> u8 {
        self.b.get(self.i).copied().unwrap_or(0)
    }

    fn value(&mut self) -> V {
        while self.peek() == b' ' {
            self.i += 1;
        }
        match self.peek() {
            b'(' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    while self.peek() == b' ' {
                        self.i += 1;
                    }
                    if self.peek() == b')' {
                        self.i += 1;
                        return V::List(items);
                    }
                    assert!(self.i < self.b.len(), "unterminated list");
                    items.push(self.value());
                }
            }
            b'"' => {
                self.i += 1;
                let mut s = Vec::new();
                loop {
                    let c = self.peek();
                    self.i += 1;
                    match c {
                        b'"' => return V::Str(s),
                        b'\\' => {
                            s.push(self.peek());
                            self.i += 1;
                        }
                        0 if self.i > self.b.len() => panic!("unterminated string"),
                        c => s.push(c),
                    }
                }
            }
            b'{' | b'~' => {
                let close = self.i + self.b[self.i..].iter().position(|&c| c == b'}').unwrap();
                let open = self.b[..close].iter().rposition(|&c| c == b'{').unwrap();
                let n: usize = lossy(&self.b[open + 1..close])
                    .trim_end_matches('+')
                    .parse()
                    .unwrap();
                let start = close + 3; // "}\r\n"
                self.i = start + n;
                V::Str(self.b[start..start + n].to_vec())
            }
            _ => {
                let start = self.i;
                let mut depth = 0;
                while self.i < self.b.len() {
                    match self.b[self.i] {
                        b'[' => depth += 1,
                        b']' => depth -= 1,
                        b' ' | b'(' | b')' if depth == 0 => break,
                        _ => {}
                    }
                    self.i += 1;
                }
                let a = lossy(&self.b[start..self.i]);
                if a.eq_ignore_ascii_case("NIL") {
                    V::Nil
                } else {
                    V::Atom(a)
                }
            }
        }
    }
}

/// `* n FETCH (NAME value …)` → (n, [(NAME, value)]).
fn fetch_items(resp: &[u8]) -> Option<(u32, Vec<(String, V)>)> {
    let rest = resp.strip_prefix(b"* ")?;
    let sp = rest.iter().position(|&c| c == b' ')?;
    let n: u32 = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
    let rest = rest[sp + 1..].strip_prefix(b"FETCH ")?;
    let mut p = P { b: rest, i: 0 };
    let V::List(items) = p.value() else {
        return None;
    };
    let mut out = Vec::new();
    let mut it = items.into_iter();
    while let (Some(V::Atom(name)), Some(v)) = (it.next(), it.next()) {
        out.push((name.to_ascii_uppercase(), v));
    }
    Some((n, out))
}

/// RFC 2047 encoded words decoded (B and Q; UTF-8, US-ASCII and ISO-8859-1, which is
/// what both corpora use), white space between adjacent words dropped (§6.2).
fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, word) = rest.split_at(start);
        let blank = before.chars().all(|c| c == ' ' || c == '\t');
        match word_at(word) {
            Some((text, len)) => {
                if !(last_was_word && blank) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = &word[len..];
                last_was_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &word[2..];
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One encoded word at the start of `s`: its text and length.
fn word_at(s: &str) -> Option<(String, usize)> {
    let body = s.strip_prefix("=?")?;
    let q1 = body.find('?')?;
    let charset = body[..q1].split('*').next()?.to_ascii_lowercase();
    let enc = body.get(q1 + 1..q1 + 2)?.to_ascii_lowercase();
    let text_start = q1 + 3;
    if body.get(q1 + 2..q1 + 3)? != "?" {
        return None;
    }
    let end = body[text_start..].find("?=")? + text_start;
    let text = &body[text_start..end];
    let bytes: Vec<u8> = match enc.as_str() {
        "b" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(text.trim_end_matches('='))
                .or_else(|_| {
                    base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(text.trim_end_matches('='))
                })
                .ok()?
        }
        "q" => {
            let mut v = Vec::new();
            let b = text.as_bytes();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'_' => v.push(b' '),
                    b'=' if i + 2 < b.len() => {
                        v.push(u8::from_str_radix(&text[i + 1..i + 3], 16).ok()?);
                        i += 2;
                    }
                    c => v.push(c),
                }
                i += 1;
            }
            v
        }
        _ => return None,
    };
    let text = match charset.as_str() {
        "utf-8" | "us-ascii" => String::from_utf8_lossy(&bytes).into_owned(),
        "iso-8859-1" | "latin1" => bytes.iter().map(|&c| c as char).collect(),
        _ => return None,
    };
    Some((text, 2 + end + 2))
}

thread_local! {
    /// The body-fld-lines values met by the normalisation in progress, in order.
    static LINES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

thread_local! {
    /// Sizes of encapsulated messages that end in a close delimiter, in order.
    static SIZES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn take_lines() -> Vec<String> {
    LINES.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

fn take_sizes() -> Vec<String> {
    SIZES.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// Postern's sizes of encapsulated messages that end in a close delimiter against
/// Dovecot's: equal, or Dovecot's two (CRLF) higher; how many were higher.
fn sizes_agree(ours: &[String], theirs: &[String]) -> Option<usize> {
    if ours.len() != theirs.len() {
        return None;
    }
    let mut crlf = 0;
    for (o, t) in ours.iter().zip(theirs) {
        let (o, t): (u64, u64) = (o.parse().ok()?, t.parse().ok()?);
        if t == o + 2 {
            crlf += 1;
        } else if o != t {
            return None;
        }
    }
    Some(crlf)
}

/// Postern's line counts against Dovecot's: equal, or one more (see [`Norm::lines`]);
/// how many were one more.
fn lines_agree(ours: &[String], theirs: &[String]) -> Option<usize> {
    if ours.len() != theirs.len() {
        return None;
    }
    let mut partial = 0;
    for (o, t) in ours.iter().zip(theirs) {
        let (o, t): (u64, u64) = (o.parse().ok()?, t.parse().ok()?);
        if o == t + 1 {
            partial += 1;
        } else if o != t {
            return None;
        }
    }
    Some(partial)
}

/// An RFC 2231 extended value `charset'language'%XX…` as text (UTF-8, US-ASCII,
/// ISO-8859-1).
fn rfc2231(value: &str) -> Option<String> {
    let mut it = value.splitn(3, '\'');
    let (charset, _lang, text) = (it.next()?, it.next()?, it.next()?);
    let b = text.as_bytes();
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            bytes.push(u8::from_str_radix(text.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            bytes.push(b[i]);
            i += 1;
        }
    }
    match charset.to_ascii_lowercase().as_str() {
        "utf-8" | "us-ascii" | "" => Some(String::from_utf8_lossy(&bytes).into_owned()),
        "iso-8859-1" | "latin1" => Some(bytes.iter().map(|&c| c as char).collect()),
        _ => None,
    }
}

/// How one difference the RFCs permit is taken out before comparing. Each is listed in
/// COMPATIBILITY.md.
struct Norm;

impl Norm {
    /// A header-text string (subject, display name, description, parameter value):
    /// Dovecot sends the header's bytes as they are (encoded words kept, raw 8-bit in a
    /// literal); Postern decodes at delivery and, for an IMAP4rev1 client, writes
    /// non-ASCII text as its own UTF-8 encoded words. RFC 2047 makes both the same text,
    /// so both are compared decoded.
    fn text(v: &V) -> String {
        match v {
            V::Nil => "NIL".into(),
            V::Str(s) => format!("{:?}", decode_words(&lossy(s))),
            V::Atom(a) => a.clone(),
            V::List(l) => Norm::list(l.iter().map(Norm::text)),
        }
    }

    /// A MIME token (type, subtype, encoding, parameter name, disposition type): case
    /// does not matter (RFC 2045 §5.1, §6.1; RFC 2183 §2), Dovecot writes what the
    /// message has (or lower case), Postern upper case as RFC 9051's examples do.
    fn token(v: &V) -> String {
        match v {
            V::Str(s) => format!("{:?}", lossy(s).to_ascii_lowercase()),
            other => Norm::text(other),
        }
    }

    fn list(items: impl Iterator<Item = String>) -> String {
        format!("({})", items.collect::<Vec<_>>().join(" "))
    }

    /// `(name value …)` with names as tokens, values as text, and:
    /// - RFC 2231 extended values: Dovecot merges continuations (as RFC 2231 §3 asks of
    ///   IMAP servers) but keeps the `name*` form with its `charset'language'%XX` value;
    ///   Postern also decodes the charset and writes `name` with the text (in encoded
    ///   words for an IMAP4rev1 client, the form clients decode in a file name). Both say
    ///   the same; Dovecot's is decoded here.
    /// - the charset value is case-insensitive (RFC 2046 §4.1.2): Dovecot lower-cases
    ///   it, Postern writes it as the message has it.
    fn params(v: &V) -> String {
        match v {
            V::List(l) => Norm::list(l.chunks(2).map(|kv| {
                let name = match &kv[0] {
                    V::Str(n) => lossy(n).to_ascii_lowercase(),
                    other => Norm::text(other),
                };
                let value = kv.get(1).cloned().unwrap_or(V::Nil);
                let (name, value) = match (name.strip_suffix('*'), &value) {
                    (Some(bare), V::Str(x)) => match rfc2231(&lossy(x)) {
                        Some(text) => (bare.to_string(), V::Str(text.into_bytes())),
                        None => (name.clone(), value),
                    },
                    _ => (name, value),
                };
                let value = match (name.as_str(), &value) {
                    ("charset", V::Str(x)) => V::Str(x.to_ascii_lowercase()),
                    _ => value,
                };
                format!("{name:?} {}", Norm::text(&value))
            })),
            other => Norm::text(other),
        }
    }

    /// `(type params)` or NIL.
    fn disposition(v: &V) -> String {
        match v {
            V::List(l) if l.len() == 2 => {
                format!("({} {})", Norm::token(&l[0]), Norm::params(&l[1]))
            }
            other => Norm::text(other),
        }
    }

    fn envelope(v: &V) -> String {
        let V::List(f) = v else {
            return Norm::text(v);
        };
        let mut out: Vec<String> = Vec::new();
        for (i, field) in f.iter().enumerate() {
            out.push(match i {
                2..=7 => Norm::addresses(field),
                _ => Norm::text(field),
            });
        }
        Norm::list(out.into_iter())
    }

    /// An address list: every field as text (the mailbox of a group start marker is
    /// the group's phrase, header text like a display name); nothing else is relaxed.
    fn addresses(v: &V) -> String {
        Norm::text(v)
    }

    /// BODY / BODYSTRUCTURE, by the RFC 9051 §7.5.2 grammar.
    fn body(v: &V) -> String {
        let V::List(f) = v else {
            return Norm::text(v);
        };
        if matches!(f.first(), Some(V::List(_))) {
            // body-type-mpart: 1*body SP media-subtype [SP body-ext-mpart]
            let n = f.iter().take_while(|x| matches!(x, V::List(_))).count();
            let mut out: Vec<String> = f[..n].iter().map(Norm::body).collect();
            for (k, x) in f[n..].iter().enumerate() {
                out.push(match k {
                    0 => Norm::token(x),
                    1 => Norm::params(x),
                    2 => Norm::disposition(x),
                    3 => Norm::language(x),
                    _ => Norm::text(x),
                });
            }
            return Norm::list(out.into_iter());
        }
        // body-type-1part
        let media = |k: usize| match f.get(k) {
            Some(V::Str(s)) => lossy(s).to_ascii_lowercase(),
            _ => String::new(),
        };
        let is_text = media(0) == "text";
        let is_msg = media(0) == "message" && matches!(media(1).as_str(), "rfc822" | "global");
        // An encapsulated message that ends in its multipart's close delimiter: Dovecot
        // counts the CRLF after that delimiter into the message/rfc822 part, though
        // RFC 2046 §5.1.1 gives it to the enclosing multipart's next delimiter (as
        // Dovecot itself does for every other part). Its size is kept aside for
        // [`sizes_agree`].
        let ends_in_multipart =
            is_msg && matches!(f.get(8), Some(V::List(b)) if matches!(b.first(), Some(V::List(_))));
        let mut out = Vec::new();
        let mut k = 0;
        for x in f.iter() {
            let s = match k {
                0 | 1 | 5 => Norm::token(x),
                2 => Norm::params(x),
                6 if ends_in_multipart => {
                    SIZES.with(|l| l.borrow_mut().push(Norm::text(x)));
                    "%".into()
                }
                _ => Norm::text(x),
            };
            out.push(s);
            k += 1;
            if k == 7 {
                break;
            }
        }
        let mut rest = f[k.min(f.len())..].iter();
        if is_msg {
            if let Some(e) = rest.next() {
                out.push(Norm::envelope(e));
            }
            if let Some(b) = rest.next() {
                out.push(Norm::body(b));
            }
            if let Some(l) = rest.next() {
                out.push(Norm::lines(l));
            }
        } else if is_text && let Some(l) = rest.next() {
            out.push(Norm::lines(l));
        }
        // body-ext-1part: md5 disposition language location
        for (j, x) in rest.enumerate() {
            out.push(match j {
                1 => Norm::disposition(x),
                2 => Norm::language(x),
                _ => Norm::text(x),
            });
        }
        Norm::list(out.into_iter())
    }

    /// body-fld-lines is written as `#` and kept aside for [`lines_agree`]: Dovecot
    /// counts line ends only, Postern also counts a last line that has none (a part's
    /// last line, whose CRLF belongs to the next delimiter, RFC 2046 §5.1.1, or a message
    /// without a final CRLF). RFC 9051 §7.5.2 says "the size of the body in text lines"
    /// and does not settle that line.
    fn lines(v: &V) -> String {
        LINES.with(|l| l.borrow_mut().push(Norm::text(v)));
        "#".into()
    }

    /// body-fld-lang: a string or a list of strings, case-insensitive (RFC 5646 §2.1.1);
    /// one language may be written either way.
    fn language(v: &V) -> String {
        match v {
            V::List(l) if l.len() == 1 => Norm::token(&l[0]),
            V::List(l) => Norm::list(l.iter().map(Norm::token)),
            other => Norm::token(other),
        }
    }
}

/// Logs in, APPENDs every message, fetches the items back; per message (by sequence
/// number) the items by name.
fn load_and_fetch(
    addr: SocketAddr,
    user: &str,
    pass: &str,
    messages: &[Vec<u8>],
) -> Vec<Vec<(String, V)>> {
    let mut c = Raw::connect(addr);
    c.cmd(format!("LOGIN \"{user}\" \"{pass}\"").as_bytes());
    for m in messages {
        c.append(m);
    }
    c.cmd(b"SELECT INBOX");
    let mut out = vec![Vec::new(); messages.len()];
    for r in c.cmd(b"FETCH 1:* (BODYSTRUCTURE BODY ENVELOPE RFC822.SIZE BODY.PEEK[])") {
        if let Some((n, items)) = fetch_items(&r) {
            let slot = &mut out[n as usize - 1];
            slot.extend(items);
        }
    }
    c.cmd(b"LOGOUT");
    out
}

fn item<'a>(items: &'a [(String, V)], name: &str) -> &'a V {
    items
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in {items:?}"))
}

#[test]
fn fetch_matches_dovecot() {
    let dir = tempfile::tempdir().unwrap();
    // Dovecot's unprivileged processes (vmail, dovenull) must reach the work dir.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dovecot = Dovecot::start(dir.path());
    let env = Env::start();

    let mut messages = corpus(dir.path());
    let generated = messages.len();
    assert_eq!(generated, CORPUS as usize);
    messages.extend(tricky());

    let theirs = load_and_fetch(
        SocketAddr::from(([127, 0, 0, 1], dovecot.port)),
        "testuser1",
        "testpass",
        &messages,
    );
    let ours = load_and_fetch(env.server.addr("imap"), ALICE.0, ALICE.1, &messages);

    let mut differences = Vec::new();
    let mut partial_lines = 0;
    let mut trailing_crlf = 0;
    for (i, sent) in messages.iter().enumerate() {
        let (o, t) = (&ours[i], &theirs[i]);
        let what = if i < generated {
            format!("corpus message {i}")
        } else {
            format!("tricky message {}", i - generated)
        };
        // Byte-exact storage (both servers).
        match item(o, "BODY[]") {
            V::Str(b) if b == sent => {}
            other => differences.push(format!("{what}: BODY[] is not what was sent: {other:?}")),
        }
        match item(t, "BODY[]") {
            V::Str(b) if b == sent => {}
            _ => differences.push(format!("{what}: Dovecot's BODY[] is not what was sent")),
        }
        for name in ["RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE"] {
            let norm = |v: &V| match name {
                "ENVELOPE" => Norm::envelope(v),
                "RFC822.SIZE" => Norm::text(v),
                _ => Norm::body(v),
            };
            let a = norm(item(o, name));
            let (a_lines, a_sizes) = (take_lines(), take_sizes());
            let b = norm(item(t, name));
            let (b_lines, b_sizes) = (take_lines(), take_sizes());
            if let Some(n) = sizes_agree(&a_sizes, &b_sizes) {
                trailing_crlf += n;
            } else {
                differences.push(format!(
                    "{what}: {name} encapsulated message sizes differ: ours {a_sizes:?}, dovecot {b_sizes:?}"
                ));
            }
            let lines_ok = lines_agree(&a_lines, &b_lines);
            if let Some(n) = lines_ok {
                partial_lines += n;
            } else {
                differences.push(format!(
                    "{what}: {name} line counts differ: ours {a_lines:?}, dovecot {b_lines:?}"
                ));
            }
            if a != b {
                let at = a
                    .bytes()
                    .zip(b.bytes())
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                let from = at.saturating_sub(60);
                let ctx = |s: &str| {
                    let mut lo = from.min(s.len());
                    while !s.is_char_boundary(lo) {
                        lo -= 1;
                    }
                    let mut hi = (at + 100).min(s.len());
                    while !s.is_char_boundary(hi) {
                        hi += 1;
                    }
                    s[lo..hi].to_string()
                };
                differences.push(format!(
                    "{what}: {name} differs at {at}\n  ours:    …{}\n  dovecot: …{}",
                    ctx(&a),
                    ctx(&b)
                ));
            }
        }
    }
    println!(
        "compared {} messages ({generated} generated, {} hand-made) with Dovecot: {} \
         differences; {partial_lines} line counts one higher for a last line without CRLF, \
         {trailing_crlf} encapsulated message sizes where Dovecot counts the CRLF of the \
         next delimiter",
        messages.len(),
        messages.len() - generated,
        differences.len()
    );
    assert!(
        differences.is_empty(),
        "{} differences from Dovecot:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
