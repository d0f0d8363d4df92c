//! # imap_load — a mixed-workload IMAP load generator for any server
//!
//! N clients, each looping over one session until the time is up; every command is one
//! op. Plain TCP and LOGIN only: it measures the server, not TLS.
//!
//! ```text
//! imap_load --addr 127.0.0.1:PORT --user U --pass P [--clients 10] [--seconds 20]
//!           [--mailbox INBOX] [--no-warmup]
//! ```
//!
//! One iteration: LOGIN; SELECT; FETCH 1:20 (FLAGS); FETCH <10 random> (ENVELOPE);
//! FETCH <random> BODY.PEEK[]; STORE <random> +FLAGS (\Seen); STORE <same> -FLAGS (\Seen);
//! APPEND a 4096-octet message; UID STORE <its uid> +FLAGS.SILENT (\Deleted);
//! UID EXPUNGE <its uid> (RFC 4315); LOGOUT. What an iteration appends it removes, so the
//! mailbox keeps its size and both servers in a comparison see the same one.
//!
//! **Standards:** RFC 9051 / RFC 3501 client side: tagged responses, literals `{N}` in
//! any response line, synchronizing literal for APPEND (no LITERAL+, which not every
//! server has); RFC 4315 APPENDUID and UID EXPUNGE (required of the server).
//!
//! **Errors:** a NO, BAD, disconnect, 30 s of silence or a FETCH that leaves out a
//! requested message is an error; the client reports it, drops the connection and starts
//! a new iteration. The first few are printed with the command and the server's lines.
//! A first session (mailbox size, and the warm-up unless `--no-warmup`) must succeed, or
//! nothing runs: a wrong password or mailbox is a setup mistake, not a load result.
//!
//! Output: a table of count, errors and p50/p99 latency per command; the last line is
//! `ops/s: X` (successful commands per second of wall time, iterations in flight at the
//! deadline run to their end and are counted).
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest wait for one command's tagged reply: a stuck server shows up as an error, not
/// as a load generator that never ends.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Errors printed in full; the rest are only counted.
const ERROR_SAMPLES: usize = 8;
const APPEND_SIZE: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connect,
    Login,
    Select,
    FetchFlags,
    FetchEnvelope,
    FetchBody,
    Store,
    Append,
    UidStore,
    UidExpunge,
    Logout,
}

const KINDS: [Kind; 11] = [
    Kind::Connect,
    Kind::Login,
    Kind::Select,
    Kind::FetchFlags,
    Kind::FetchEnvelope,
    Kind::FetchBody,
    Kind::Store,
    Kind::Append,
    Kind::UidStore,
    Kind::UidExpunge,
    Kind::Logout,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect+greeting",
            Kind::Login => "LOGIN",
            Kind::Select => "SELECT",
            Kind::FetchFlags => "FETCH 1:20 FLAGS",
            Kind::FetchEnvelope => "FETCH 10 ENVELOPE",
            Kind::FetchBody => "FETCH BODY.PEEK[]",
            Kind::Store => "STORE +/-\\Seen",
            Kind::Append => "APPEND 4 KiB",
            Kind::UidStore => "UID STORE \\Deleted",
            Kind::UidExpunge => "UID EXPUNGE",
            Kind::Logout => "LOGOUT",
        }
    }

    /// Connecting is not an IMAP command, so it is timed but not counted as an op.
    fn is_op(self) -> bool {
        self != Kind::Connect
    }
}

struct Config {
    addr: String,
    user: String,
    pass: String,
    clients: u32,
    seconds: u64,
    mailbox: String,
    warmup: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: imap_load --addr HOST:PORT --user U --pass P [--clients 10] [--seconds 20] \
         [--mailbox INBOX] [--no-warmup]"
    );
    std::process::exit(2)
}

fn parse_args() -> Config {
    let mut c = Config {
        addr: String::new(),
        user: String::new(),
        pass: String::new(),
        clients: 10,
        seconds: 20,
        mailbox: "INBOX".to_owned(),
        warmup: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--no-warmup" {
            c.warmup = false;
            continue;
        }
        let Some(v) = args.next() else { usage() };
        match a.as_str() {
            "--addr" => c.addr = v,
            "--user" => c.user = v,
            "--pass" => c.pass = v,
            "--clients" => c.clients = v.parse().unwrap_or_else(|_| usage()),
            "--seconds" => c.seconds = v.parse().unwrap_or_else(|_| usage()),
            "--mailbox" => c.mailbox = v,
            _ => usage(),
        }
    }
    if c.addr.is_empty() || c.user.is_empty() || c.clients == 0 {
        usage()
    }
    c
}

/// An IMAP quoted string (RFC 9051 §4.3).
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            q.push('\\');
        }
        q.push(ch);
    }
    q.push('"');
    q
}

/// xorshift64*: enough randomness to pick messages, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % u64::from(n.max(1))) as u32
    }
}

/// Latencies and errors of one client; merged at the end.
struct Stats {
    micros: Vec<Vec<u32>>,
    errors: Vec<u64>,
    samples: Vec<String>,
    iterations: u64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            micros: vec![Vec::new(); KINDS.len()],
            errors: vec![0; KINDS.len()],
            samples: Vec::new(),
            iterations: 0,
        }
    }
    fn merge(&mut self, o: Stats) {
        for (a, b) in self.micros.iter_mut().zip(o.micros) {
            a.extend(b);
        }
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a += b;
        }
        for s in o.samples {
            if self.samples.len() < ERROR_SAMPLES {
                self.samples.push(s);
            }
        }
        self.iterations += o.iterations;
    }
}

/// A failed step: which command and what was said.
struct Fail {
    kind: Kind,
    detail: String,
}

/// A tagged OK and the untagged lines before it (literals left out, `{N}` kept).
struct Reply {
    tagged: String,
    untagged: Vec<String>,
}

struct Conn {
    io: BufReader<TcpStream>,
    tag: u32,
    /// The session's message count, kept from EXISTS and EXPUNGE.
    exists: u32,
    buf: Vec<u8>,
}

impl Conn {
    async fn connect(addr: &str) -> Result<Conn, String> {
        let s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut c = Conn {
            io: BufReader::with_capacity(64 * 1024, s),
            tag: 0,
            exists: 0,
            buf: Vec::new(),
        };
        let greeting = c.read_line().await.map_err(|e| format!("greeting: {e}"))?;
        if !greeting.starts_with("* OK") {
            return Err(format!("greeting: S: {greeting}"));
        }
        Ok(c)
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("a{}", self.tag)
    }

    /// One response line, literals read and dropped: a literal can hold anything,
    /// CRLF and `a1 OK` included, so it must be skipped by its length, never scanned.
    async fn read_line(&mut self) -> Result<String, String> {
        let mut text = Vec::new();
        loop {
            self.buf.clear();
            let n = self
                .io
                .read_until(b'\n', &mut self.buf)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 || !self.buf.ends_with(b"\n") {
                return Err("connection closed by server".to_owned());
            }
            let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            text.extend_from_slice(line);
            let Some(len) = literal_len(line) else { break };
            let got = tokio::io::copy(&mut (&mut self.io).take(len), &mut tokio::io::sink())
                .await
                .map_err(|e| e.to_string())?;
            if got < len {
                return Err(format!("connection closed inside a {len}-octet literal"));
            }
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// Sends `tag cmd` and reads to its tagged reply; anything but OK is an error.
    async fn command(&mut self, cmd: &str) -> Result<Reply, String> {
        let tag = self.next_tag();
        self.io
            .get_mut()
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .await
            .map_err(|e| format!("C: {tag} {}\n      write: {e}", shown(cmd)))?;
        self.read_reply(&tag, cmd).await
    }

    async fn read_reply(&mut self, tag: &str, cmd: &str) -> Result<Reply, String> {
        let mut untagged = Vec::new();
        loop {
            let line = match self.read_line().await {
                Ok(l) => l,
                Err(e) => return Err(describe(tag, cmd, &untagged, &e)),
            };
            if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                if rest.get(..3).is_some_and(|s| s.eq_ignore_ascii_case("OK ")) || rest == "OK" {
                    return Ok(Reply {
                        tagged: line,
                        untagged,
                    });
                }
                return Err(describe(tag, cmd, &untagged, &line));
            }
            if line.starts_with('+') {
                return Err(describe(tag, cmd, &untagged, &line));
            }
            self.track(&line);
            untagged.push(line);
        }
    }

    /// APPEND with a synchronizing literal; returns the new message's UID (APPENDUID).
    async fn append(&mut self, mailbox: &str, msg: &[u8]) -> Result<u32, String> {
        let tag = self.next_tag();
        let cmd = format!("APPEND {} (\\Seen) {{{}}}", quote(mailbox), msg.len());
        let io_err = |e: std::io::Error| format!("C: {tag} {cmd}\n      write: {e}");
        self.io
            .get_mut()
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .await
            .map_err(io_err)?;
        let mut untagged = Vec::new();
        loop {
            let line = match self.read_line().await {
                Ok(l) => l,
                Err(e) => return Err(describe(&tag, &cmd, &untagged, &e)),
            };
            if line.starts_with('+') {
                break;
            }
            if line.starts_with('*') {
                self.track(&line);
                untagged.push(line);
                continue;
            }
            return Err(describe(&tag, &cmd, &untagged, &line));
        }
        let mut data = Vec::with_capacity(msg.len() + 2);
        data.extend_from_slice(msg);
        data.extend_from_slice(b"\r\n");
        self.io.get_mut().write_all(&data).await.map_err(io_err)?;
        let r = self.read_reply(&tag, &cmd).await?;
        appenduid(&r.tagged).ok_or_else(|| {
            format!(
                "C: {tag} {cmd}\n      S: {}\n      no APPENDUID (RFC 4315) in the reply",
                r.tagged
            )
        })
    }

    fn track(&mut self, line: &str) {
        let mut w = line.split(' ');
        if w.next() != Some("*") {
            return;
        }
        let Some(Ok(n)) = w.next().map(str::parse::<u32>) else {
            return;
        };
        match w.next().map(str::to_ascii_uppercase).as_deref() {
            Some("EXISTS") => self.exists = n,
            Some("EXPUNGE") => self.exists = self.exists.saturating_sub(1),
            _ => {}
        }
    }
}

/// `{N}`, `{N+}` or `~{N}` at the end of a response line.
fn literal_len(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The UID from `[APPENDUID uidvalidity uid]`.
fn appenduid(tagged: &str) -> Option<u32> {
    let up = tagged.to_ascii_uppercase();
    let at = up.find("[APPENDUID ")?;
    let mut w = up[at + 11..].split([' ', ']']);
    w.next()?;
    w.next()?.parse().ok()
}

/// Passwords never reach the report.
fn shown(cmd: &str) -> String {
    if cmd
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("LOGIN "))
    {
        let user = cmd[6..].split(' ').next().unwrap_or("");
        format!("LOGIN {user} ***")
    } else {
        cmd.to_owned()
    }
}

fn describe(tag: &str, cmd: &str, untagged: &[String], last: &str) -> String {
    let mut s = format!("C: {tag} {}", shown(cmd));
    let skip = untagged.len().saturating_sub(3);
    if skip > 0 {
        let _ = write!(s, "\n      S: ... {skip} untagged line(s)");
    }
    for l in &untagged[skip..] {
        let _ = write!(s, "\n      S: {}", clip(l));
    }
    let _ = write!(s, "\n      S: {}", clip(last));
    s
}

fn clip(l: &str) -> String {
    if l.len() <= 200 {
        return l.to_owned();
    }
    let mut end = 200;
    while !l.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} octets)", &l[..end], l.len())
}

/// Message numbers that got a FETCH response carrying `item`. Unsolicited FETCHes (flag
/// changes by other clients) may add numbers; missing ones are what counts.
fn fetched(untagged: &[String], item: &str) -> HashSet<u32> {
    let mut got = HashSet::new();
    for l in untagged {
        let mut w = l.splitn(4, ' ');
        if w.next() != Some("*") {
            continue;
        }
        let Some(Ok(n)) = w.next().map(str::parse::<u32>) else {
            continue;
        };
        if !w.next().is_some_and(|s| s.eq_ignore_ascii_case("FETCH")) {
            continue;
        }
        if w.next()
            .is_some_and(|r| r.to_ascii_uppercase().contains(item))
        {
            got.insert(n);
        }
    }
    got
}

fn expect_fetched(r: &Reply, item: &str, want: &[u32], cmd: &str) -> Result<(), String> {
    let got = fetched(&r.untagged, item);
    let missing: Vec<String> = want
        .iter()
        .filter(|n| !got.contains(n))
        .map(u32::to_string)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}\n      tagged OK, but no {item} for message(s) {}",
        describe("", cmd, &r.untagged, &r.tagged),
        missing.join(",")
    ))
}

/// A 4096-octet message, unique per client and iteration.
fn message(client: u32, n: u64) -> Vec<u8> {
    let mut m = format!(
        "From: Load <load{client}@bench.example>\r\n\
         To: Bench <bench@example.com>\r\n\
         Subject: load {client}/{n}\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <load.{client}.{n}@bench.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    let line = [b'x'; 70];
    while APPEND_SIZE - m.len() >= 144 {
        m.extend_from_slice(&line);
        m.extend_from_slice(b"\r\n");
    }
    let rest = APPEND_SIZE - m.len() - 2;
    m.extend(std::iter::repeat_n(b'y', rest));
    m.extend_from_slice(b"\r\n");
    m
}

/// Times one step; the op counts only when it succeeds.
async fn step<T>(
    st: &mut Stats,
    kind: Kind,
    f: impl Future<Output = Result<T, String>>,
) -> Result<T, Fail> {
    let t = Instant::now();
    let r = match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(format!("no reply in {} s", COMMAND_TIMEOUT.as_secs())),
    };
    match r {
        Ok(v) => {
            let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
            st.micros[kind as usize].push(us);
            Ok(v)
        }
        Err(detail) => Err(Fail { kind, detail }),
    }
}

async fn iteration(
    cfg: &Config,
    id: u32,
    rng: &mut Rng,
    st: &mut Stats,
    n: u64,
) -> Result<(), Fail> {
    let mut c = step(st, Kind::Connect, Conn::connect(&cfg.addr)).await?;
    let login = format!("LOGIN {} {}", quote(&cfg.user), quote(&cfg.pass));
    step(st, Kind::Login, c.command(&login)).await?;
    let select = format!("SELECT {}", quote(&cfg.mailbox));
    step(st, Kind::Select, c.command(&select)).await?;
    if c.exists == 0 {
        return Err(Fail {
            kind: Kind::Select,
            detail: format!("{} is empty: import messages first", cfg.mailbox),
        });
    }
    // Other clients' appended messages come and go at the end; the first ones stay.
    let stable = c.exists.saturating_sub(cfg.clients).max(1);

    let cmd = "FETCH 1:20 (FLAGS)";
    let want: Vec<u32> = (1..=c.exists.min(20)).collect();
    let r = step(st, Kind::FetchFlags, c.command(cmd)).await?;
    expect_fetched(&r, "FLAGS", &want, cmd).map_err(|detail| Fail {
        kind: Kind::FetchFlags,
        detail,
    })?;

    let mut want: Vec<u32> = (0..10).map(|_| 1 + rng.below(stable)).collect();
    want.sort_unstable();
    want.dedup();
    let set: Vec<String> = want.iter().map(u32::to_string).collect();
    let cmd = format!("FETCH {} (ENVELOPE)", set.join(","));
    let r = step(st, Kind::FetchEnvelope, c.command(&cmd)).await?;
    expect_fetched(&r, "ENVELOPE", &want, &cmd).map_err(|detail| Fail {
        kind: Kind::FetchEnvelope,
        detail,
    })?;

    let m = 1 + rng.below(stable);
    let cmd = format!("FETCH {m} BODY.PEEK[]");
    let r = step(st, Kind::FetchBody, c.command(&cmd)).await?;
    expect_fetched(&r, "BODY[]", &[m], &cmd).map_err(|detail| Fail {
        kind: Kind::FetchBody,
        detail,
    })?;

    let m = 1 + rng.below(stable);
    step(
        st,
        Kind::Store,
        c.command(&format!("STORE {m} +FLAGS (\\Seen)")),
    )
    .await?;
    step(
        st,
        Kind::Store,
        c.command(&format!("STORE {m} -FLAGS (\\Seen)")),
    )
    .await?;

    let msg = message(id, n);
    let uid = step(st, Kind::Append, c.append(&cfg.mailbox, &msg)).await?;
    let cmd = format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)");
    step(st, Kind::UidStore, c.command(&cmd)).await?;
    step(
        st,
        Kind::UidExpunge,
        c.command(&format!("UID EXPUNGE {uid}")),
    )
    .await?;
    step(st, Kind::Logout, c.command("LOGOUT")).await?;
    Ok(())
}

async fn client(cfg: Arc<Config>, id: u32, deadline: Instant) -> Stats {
    let mut st = Stats::new();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(id);
    let mut rng = Rng::new(seed);
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        match iteration(&cfg, id, &mut rng, &mut st, n).await {
            Ok(()) => st.iterations += 1,
            Err(f) => {
                st.errors[f.kind as usize] += 1;
                if st.samples.len() < ERROR_SAMPLES {
                    st.samples.push(format!(
                        "client {id}, {}:\n      {}",
                        f.kind.name(),
                        f.detail
                    ));
                }
                if f.kind == Kind::Connect {
                    // Refused connections must not become a busy loop.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    st
}

/// One session outside the timed run: the mailbox size, and with `warm` every message's
/// flags and envelope read once, so neither server is timed building its first index or
/// cache of a mailbox it has just been given.
async fn probe(cfg: &Config, warm: bool) -> Result<u32, String> {
    let mut c = Conn::connect(&cfg.addr).await?;
    c.command(&format!("LOGIN {} {}", quote(&cfg.user), quote(&cfg.pass)))
        .await?;
    c.command(&format!("SELECT {}", quote(&cfg.mailbox)))
        .await?;
    let exists = c.exists;
    if warm && exists > 0 {
        c.command("FETCH 1:* (FLAGS ENVELOPE)").await?;
    }
    c.command("LOGOUT").await?;
    Ok(exists)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main]
async fn main() {
    let cfg = Arc::new(parse_args());
    let before = match probe(&cfg, cfg.warmup).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("imap_load: warm-up session failed: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "imap_load: {} user {} mailbox {} ({before} messages), {} clients, {} s{}",
        cfg.addr,
        cfg.user,
        cfg.mailbox,
        cfg.clients,
        cfg.seconds,
        if cfg.warmup { ", after warm-up" } else { "" }
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs(cfg.seconds);
    let tasks: Vec<_> = (0..cfg.clients)
        .map(|id| tokio::spawn(client(cfg.clone(), id, deadline)))
        .collect();
    let mut all = Stats::new();
    for t in tasks {
        match t.await {
            Ok(s) => all.merge(s),
            Err(e) => eprintln!("imap_load: client task failed: {e}"),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();

    println!(
        "{:<20} {:>9} {:>7} {:>9} {:>9}",
        "command", "ok", "errors", "p50 ms", "p99 ms"
    );
    let mut ops = 0u64;
    let mut errors = 0u64;
    for k in KINDS {
        let v = &mut all.micros[k as usize];
        v.sort_unstable();
        if k.is_op() {
            ops += v.len() as u64;
        }
        errors += all.errors[k as usize];
        println!(
            "{:<20} {:>9} {:>7} {:>9.2} {:>9.2}",
            k.name(),
            v.len(),
            all.errors[k as usize],
            percentile(v, 0.50),
            percentile(v, 0.99)
        );
    }
    println!(
        "iterations: {}, ops: {ops}, errors: {errors}, elapsed: {elapsed:.2} s",
        all.iterations
    );
    for s in &all.samples {
        println!("error: {s}");
    }
    match probe(&cfg, false).await {
        Ok(n) => println!("mailbox after the run: {n} messages (before: {before})"),
        Err(e) => println!("error: closing probe: {e}"),
    }
    println!("ops/s: {:.1}", ops as f64 / elapsed);
}
