//! # imap_idle — how soon an IDLE session hears of a delivery
//!
//! One client SELECTs INBOX and IDLEs. A second delivers N messages by SMTP (one MX
//! session each), then N by APPEND in another IMAP session.
//! For each delivery the time runs from the delivery's acknowledgement (the `250` after
//! the end of DATA, the tagged `OK` of APPEND) to the `* n EXISTS` that announces it in
//! the IDLE session; the next delivery starts once that has arrived.
//!
//! ```text
//! imap_idle --imap 127.0.0.1:PORT --smtp 127.0.0.1:PORT --user U --pass P [--count 200]
//! ```
//!
//! `--user` is the recipient's address and IMAP login; the SMTP listener must accept mail
//! for it from `idle-bench@sender.example` (SPF/DMARC answers must come quickly: point the
//! server's resolver at something that answers, as `benches/imap_idle.sh` does).
//!
//! An EXISTS may arrive before the acknowledgement has been read (the store announces a
//! commit before the delivering session writes its reply): that delivery counts as 0 ms
//! and is reported as "early".
//!
//! Output per path: `n`, `early`, p50/p95/p99/max in milliseconds, and for reference
//! the same from sending the message's last byte (so including the store's fsync); the
//! last line sums up both paths' p99.
//!
//! **Standards:** RFC 2177 / RFC 9051 §6.3.13 IDLE, RFC 5321 SMTP, RFC 7888 LITERAL+
//! (the server must offer it).
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest wait for one reply or for the EXISTS of one delivery.
const PATIENCE: Duration = Duration::from_secs(30);

struct Args {
    imap: String,
    smtp: String,
    user: String,
    pass: String,
    count: usize,
}

fn args() -> Args {
    let mut a = Args {
        imap: String::new(),
        smtp: String::new(),
        user: String::new(),
        pass: String::new(),
        count: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || {
            it.next()
                .unwrap_or_else(|| die(&format!("{k} needs a value")))
        };
        match k.as_str() {
            "--imap" => a.imap = v(),
            "--smtp" => a.smtp = v(),
            "--user" => a.user = v(),
            "--pass" => a.pass = v(),
            "--count" => a.count = v().parse().unwrap_or_else(|_| die("--count: a number")),
            _ => die(&format!("unknown argument {k}")),
        }
    }
    if a.imap.is_empty() || a.smtp.is_empty() || a.user.is_empty() || a.pass.is_empty() {
        die("usage: imap_idle --imap ADDR --smtp ADDR --user U --pass P [--count N]");
    }
    a
}

fn die(msg: &str) -> ! {
    eprintln!("imap_idle: {msg}");
    std::process::exit(2)
}

fn connect(addr: &str) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| die(&format!("connect {addr}: {e}")));
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_nodelay(true).unwrap();
    BufReader::new(s)
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    match r.read_line(&mut l) {
        Ok(0) => die("connection closed"),
        Ok(_) => l.trim_end().to_string(),
        Err(e) => die(&format!("read: {e}")),
    }
}

fn send(r: &mut BufReader<TcpStream>, bytes: &[u8]) {
    r.get_mut()
        .write_all(bytes)
        .unwrap_or_else(|e| die(&format!("write: {e}")));
}

/// Sends an IMAP command and reads to its tagged reply, which must be OK; the untagged
/// lines.
fn imap(r: &mut BufReader<TcpStream>, tag: &str, command: &[u8]) -> Vec<String> {
    let mut c = format!("{tag} ").into_bytes();
    c.extend_from_slice(command);
    c.extend_from_slice(b"\r\n");
    send(r, &c);
    let mut untagged = Vec::new();
    loop {
        let l = line(r);
        if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
            if !rest.starts_with("OK") {
                die(&format!("{tag}: {l}"));
            }
            return untagged;
        }
        // Skip a literal's bytes (none expected in these commands' answers).
        if let Some(n) = l
            .strip_suffix('}')
            .and_then(|x| x.rsplit_once('{'))
            .and_then(|(_, n)| n.parse::<usize>().ok())
        {
            let mut skip = vec![0; n];
            r.read_exact(&mut skip).unwrap();
        }
        untagged.push(l);
    }
}

/// An SMTP reply (multi-line folded); its code must start with `want`.
fn smtp(r: &mut BufReader<TcpStream>, command: Option<&[u8]>, want: &str) {
    if let Some(c) = command {
        send(r, c);
    }
    loop {
        let l = line(r);
        if l.len() >= 4 && l.as_bytes()[3] == b'-' {
            continue;
        }
        if !l.starts_with(want) {
            die(&format!("SMTP: expected {want}, got {l}"));
        }
        return;
    }
}

fn message(i: usize, how: &str) -> Vec<u8> {
    format!(
        "From: <idle-bench@sender.example>\r\nTo: <someone@example.com>\r\n\
         Subject: idle {how} {i}\r\nMessage-ID: <idle-{how}-{i}@sender.example>\r\n\r\n\
         delivery {i} by {how}\r\n"
    )
    .into_bytes()
}

struct Figures {
    /// Acknowledgement to EXISTS.
    ms: Vec<f64>,
    /// Sending the message's last byte to EXISTS (the store's commit included).
    from_send: Vec<f64>,
    early: usize,
}

impl Figures {
    fn percentile(&self, q: f64) -> f64 {
        pct(&self.ms, q)
    }

    fn print(&self, how: &str) {
        println!(
            "{how:<7} n={} early={} p50={:.2}ms p95={:.2}ms p99={:.2}ms max={:.2}ms \
             (from sending: p50={:.2}ms p99={:.2}ms max={:.2}ms)",
            self.ms.len(),
            self.early,
            self.percentile(0.50),
            self.percentile(0.95),
            self.percentile(0.99),
            self.percentile(1.0),
            pct(&self.from_send, 0.50),
            pct(&self.from_send, 0.99),
            pct(&self.from_send, 1.0)
        );
    }
}

/// The `q` quantile (nearest rank) of `v`; 0 when empty.
fn pct(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[k]
}

fn main() {
    let a = args();
    let login = format!("LOGIN \"{}\" \"{}\"", a.user, a.pass).into_bytes();

    // The IDLE session; a thread stamps each EXISTS as it arrives.
    let mut idle = connect(&a.imap);
    line(&mut idle);
    imap(&mut idle, "a1", &login);
    let mut exists = 0usize;
    for l in imap(&mut idle, "a2", b"SELECT INBOX") {
        if let Some(n) = l.strip_prefix("* ").and_then(|x| x.strip_suffix(" EXISTS")) {
            exists = n.parse().unwrap_or(0);
        }
    }
    send(&mut idle, b"a3 IDLE\r\n");
    let l = line(&mut idle);
    if !l.starts_with('+') {
        die(&format!("IDLE: {l}"));
    }
    let mut idle_w = idle.get_ref().try_clone().unwrap();
    let (tx, rx) = mpsc::channel::<(usize, Instant)>();
    let reader = std::thread::spawn(move || {
        idle.get_ref().set_read_timeout(None).unwrap();
        let mut l = String::new();
        loop {
            l.clear();
            match idle.read_line(&mut l) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let at = Instant::now();
            if let Some(n) = l
                .trim_end()
                .strip_prefix("* ")
                .and_then(|x| x.strip_suffix(" EXISTS"))
                .and_then(|n| n.parse().ok())
                && tx.send((n, at)).is_err()
            {
                return;
            }
            if l.starts_with("a3 ") {
                return;
            }
        }
    });

    // Waits for the EXISTS that counts `want` messages.
    let wait = |want: usize, sent: Instant, acked: Instant, figures: &mut Figures| loop {
        let (n, at) = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| die(&format!("no EXISTS for message {want} within {PATIENCE:?}")));
        if n >= want {
            figures
                .from_send
                .push(at.saturating_duration_since(sent).as_secs_f64() * 1000.0);
            match at.checked_duration_since(acked) {
                Some(d) => figures.ms.push(d.as_secs_f64() * 1000.0),
                None => {
                    figures.ms.push(0.0);
                    figures.early += 1;
                }
            }
            return n;
        }
    };

    // SMTP: one MX session per message (a server caps the messages of one session).
    let rcpt = format!("RCPT TO:<{}>\r\n", a.user).into_bytes();
    let mut by_smtp = Figures {
        ms: Vec::new(),
        from_send: Vec::new(),
        early: 0,
    };
    for i in 0..a.count {
        let mut s = connect(&a.smtp);
        smtp(&mut s, None, "220");
        smtp(&mut s, Some(b"EHLO idle-bench.example\r\n"), "250");
        smtp(
            &mut s,
            Some(b"MAIL FROM:<idle-bench@sender.example>\r\n"),
            "250",
        );
        smtp(&mut s, Some(&rcpt), "250");
        smtp(&mut s, Some(b"DATA\r\n"), "354");
        let mut data = message(i, "smtp");
        data.extend_from_slice(b".\r\n");
        let sent = Instant::now();
        smtp(&mut s, Some(&data), "250");
        let acked = Instant::now();
        exists = wait(exists + 1, sent, acked, &mut by_smtp);
        smtp(&mut s, Some(b"QUIT\r\n"), "221");
    }

    // APPEND in another IMAP session.
    let mut o = connect(&a.imap);
    line(&mut o);
    imap(&mut o, "b1", &login);
    let mut by_append = Figures {
        ms: Vec::new(),
        from_send: Vec::new(),
        early: 0,
    };
    for i in 0..a.count {
        let m = message(i, "append");
        let mut c = format!("APPEND INBOX {{{}+}}\r\n", m.len()).into_bytes();
        c.extend_from_slice(&m);
        let sent = Instant::now();
        imap(&mut o, &format!("c{i}"), &c);
        let acked = Instant::now();
        exists = wait(exists + 1, sent, acked, &mut by_append);
    }
    imap(&mut o, "b2", b"LOGOUT");

    // DONE ends IDLE; the reader thread sees the tagged reply and stops.
    let _ = idle_w.write_all(b"DONE\r\n");
    let _ = reader.join();
    println!(
        "IDLE wake-up latency, acknowledgement to * n EXISTS ({} deliveries each):",
        a.count
    );
    by_smtp.print("smtp");
    by_append.print("append");
    println!(
        "p99 smtp {:.2} ms, append {:.2} ms",
        by_smtp.percentile(0.99),
        by_append.percentile(0.99)
    );
}
