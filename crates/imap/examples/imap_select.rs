//! # imap_select — how long SELECT of a large mailbox takes, over the wire
//!
//! Fills the mailbox (MULTIAPPEND, RFC 3502, batches of small messages with
//! synchronizing literals) until it holds `--fill` messages, then logs in `--rounds`
//! times and times `SELECT` from the command to its tagged OK (all untagged lines read).
//! Works against any IMAP4rev1 server with MULTIAPPEND.
//!
//! ```text
//! imap_select --addr 127.0.0.1:PORT --user U --pass P [--mailbox INBOX]
//!             [--fill 100000] [--rounds 10] [--batch 500]
//! ```
//!
//! Messages are ~300 octets; 1000 distinct bodies repeat, so a server that
//! de-duplicates content stores 1000 blobs (SELECT reads no content anyway).
//! Output: the first EXAMINE's time (a cold open when the server just started), the
//! fill time, then min / p50 / max of SELECT in ms; the last line is
//! `select_ms_p50: X (N messages)`.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
    n: u32,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(300))).ok();
        s.set_nodelay(true).ok();
        let w = s.try_clone().expect("clone socket");
        let mut c = Conn {
            r: BufReader::new(s),
            w,
            n: 0,
        };
        let greeting = c.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        c
    }

    /// One response line (a literal inside is read and dropped).
    fn line(&mut self) -> String {
        let mut l = String::new();
        let n = self.r.read_line(&mut l).expect("read");
        assert!(n > 0, "connection closed");
        // `{N}` at the end: skip the literal and read the rest of the line.
        if let Some(open) = l.trim_end().strip_suffix('}').and_then(|s| s.rfind('{')) {
            let len: usize = l.trim_end()[open + 1..l.trim_end().len() - 1]
                .trim_end_matches('+')
                .parse()
                .unwrap_or(0);
            let mut buf = vec![0; len];
            std::io::Read::read_exact(&mut self.r, &mut buf).expect("literal");
            l.push_str(&self.line());
        }
        l
    }

    fn tag(&mut self) -> String {
        self.n += 1;
        format!("s{}", self.n)
    }

    /// Sends a command and reads to its tagged reply; returns the untagged lines.
    fn cmd(&mut self, c: &str) -> Vec<String> {
        let tag = self.tag();
        self.w
            .write_all(format!("{tag} {c}\r\n").as_bytes())
            .expect("write");
        self.until(&tag, c)
    }

    fn until(&mut self, tag: &str, what: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.line();
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "{what}: {}", l.trim_end());
                return out;
            }
            out.push(l);
        }
    }

    fn login(&mut self, user: &str, pass: &str) {
        self.cmd(&format!("LOGIN \"{user}\" \"{pass}\""));
    }

    fn exists(lines: &[String]) -> u64 {
        lines
            .iter()
            .find_map(|l| {
                let l = l.trim_end();
                l.strip_suffix(" EXISTS")?.strip_prefix("* ")?.parse().ok()
            })
            .unwrap_or(0)
    }

    /// MULTIAPPEND of `msgs` with synchronizing literals.
    fn multiappend(&mut self, mailbox: &str, msgs: &[Vec<u8>]) {
        let tag = self.tag();
        let mut head = format!("{tag} APPEND \"{mailbox}\"");
        for (i, m) in msgs.iter().enumerate() {
            head.push_str(&format!(" {{{}}}\r\n", m.len()));
            self.w.write_all(head.as_bytes()).expect("write");
            let cont = self.line();
            assert!(
                cont.starts_with('+'),
                "APPEND literal {i}: {}",
                cont.trim_end()
            );
            self.w.write_all(m).expect("write");
            head.clear();
        }
        self.w.write_all(b"\r\n").expect("write");
        self.until(&tag, "APPEND");
    }
}

fn message(i: u64) -> Vec<u8> {
    let k = i % 1000;
    format!(
        "From: Sender {k} <sender{k}@example.org>\r\nTo: bench@example.com\r\n\
         Subject: select bench {k}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <sel{k}@example.org>\r\n\r\nBody of message {k}.\r\n"
    )
    .into_bytes()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut user, mut pass) = (String::new(), String::new(), String::new());
    let mut mailbox = "INBOX".to_string();
    let (mut fill, mut rounds, mut batch) = (100_000u64, 10usize, 500usize);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--addr" => addr = v(),
            "--user" => user = v(),
            "--pass" => pass = v(),
            "--mailbox" => mailbox = v(),
            "--fill" => fill = v().parse().expect("--fill N"),
            "--rounds" => rounds = v().parse().expect("--rounds N"),
            "--batch" => batch = v().parse().expect("--batch N"),
            _ => panic!("unknown argument {a}"),
        }
    }
    assert!(
        !addr.is_empty() && !user.is_empty(),
        "--addr and --user are required"
    );

    let mut c = Conn::open(&addr);
    c.login(&user, &pass);
    let t = Instant::now();
    let mut have = Conn::exists(&c.cmd(&format!("EXAMINE \"{mailbox}\"")));
    // The first open after the server started reads the whole mailbox; later ones may
    // be served from what the server keeps of it.
    println!(
        "first EXAMINE ({have} messages): {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    c.cmd("UNSELECT");
    let t = Instant::now();
    let start = have;
    while have < fill {
        let n = (fill - have).min(batch as u64);
        let msgs: Vec<Vec<u8>> = (have..have + n).map(message).collect();
        c.multiappend(&mailbox, &msgs);
        have += n;
        if have % 10_000 < batch as u64 {
            eprintln!("filled {have}");
        }
    }
    if have > start {
        println!(
            "filled {} message(s) in {:.1} s",
            have - start,
            t.elapsed().as_secs_f64()
        );
    }
    c.cmd("LOGOUT");

    let mut times = Vec::with_capacity(rounds);
    let mut exists = 0;
    for _ in 0..rounds {
        let mut c = Conn::open(&addr);
        c.login(&user, &pass);
        let t = Instant::now();
        let lines = c.cmd(&format!("SELECT \"{mailbox}\""));
        times.push(t.elapsed());
        exists = Conn::exists(&lines);
        c.cmd("LOGOUT");
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "SELECT of {exists} messages over {rounds} round(s): min {:.1} ms, p50 {:.1} ms, max {:.1} ms",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    println!(
        "select_ms_p50: {:.1} ({exists} messages)",
        ms(times[times.len() / 2])
    );
}
