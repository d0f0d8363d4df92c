//! Crash safety of SMTP delivery (DESIGN invariant 13, THREATS "Crash": `kill -9`
//! during SMTP DATA, under load). The real `postern serve` takes mail on its MX listener
//! from several parallel sessions; it is SIGKILLed mid-stream, restarted, and killed
//! again. Afterwards every message that got a 250 is in the INBOX byte-exact (below the
//! Return-Path / Received / Authentication-Results fields the server prepends) and
//! `postern store verify` passes. Every third message goes to two recipients (one blob,
//! two mailbox entries, one batch): each copy is there, and every acknowledged message
//! has exactly one `message.deliver` ledger entry, naming all its recipients. Most
//! messages are small (their blobs commit with their records, in the database); every
//! fifth is over 128 KiB (its blob is a file, durable before its records commit).

use postern_core::store::sqlite::{SqliteBlobStore, SqliteOptions, SqliteStore};
use postern_core::store::{BlobStore, FsBlobStore, LedgerQuery, SpecialUse, Store};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_postern");
const SESSIONS: usize = 4;
const KILLS: usize = 3;
/// Acknowledgements to wait for in each round before the kill.
const ACKS_PER_ROUND: usize = 15;

/// Answers every DNS question with NXDOMAIN at once, so SPF/DMARC checks cost nothing.
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

fn cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("POSTERN_CONFIG")
        .env_remove("POSTERN_DATA")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "postern {args:?} failed:\n{text}");
    text
}

/// Starts `postern serve`; returns the process and its MX address once `ready`.
fn serve(config: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env_remove("POSTERN_CONFIG")
        .env_remove("POSTERN_DATA")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut addr = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(a) = line.strip_prefix("listening smtp ") {
                addr = a.parse::<SocketAddr>().ok();
            }
            if line == "ready" {
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("postern serve did not print `ready`")
        .expect("no `listening smtp` line");
    (child, addr)
}

/// Every third message goes to alice and bob together.
fn group(n: usize) -> bool {
    n % 3 == 2
}

fn body(session: usize, n: usize, round: usize) -> Vec<u8> {
    let to = if group(n) {
        "<alice@example.com>, <bob@example.com>"
    } else {
        "<alice@example.com>"
    };
    let mut b = format!(
        "From: <s{session}@sender.example>\r\nTo: {to}\r\nSubject: crash r{round} s{session} n{n}\r\nMessage-ID: <r{round}.s{session}.n{n}@test>\r\n\r\n"
    )
    .into_bytes();
    // Every fifth is bigger than the embedded store keeps in its database (128 KiB): its
    // blob is a file, fsynced before the batch; the others commit with their batch.
    let lines = if n % 5 == 3 {
        4000
    } else {
        20 + (n * 37 + session * 11) % 200
    };
    for line in 0..lines {
        b.extend_from_slice(
            format!("line {line} of message {n} from session {session} in round {round}\r\n")
                .as_bytes(),
        );
    }
    b
}

struct Smtp {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Smtp {
    fn reply(&mut self) -> std::io::Result<u16> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                if line.len() >= 4 && line[3] == b'-' {
                    continue;
                }
                let code = std::str::from_utf8(&line[..3.min(line.len())])
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                return Ok(code);
            }
            let mut chunk = [0u8; 4096];
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn cmd(&mut self, line: &str, want: u16) -> std::io::Result<()> {
        self.s.write_all(format!("{line}\r\n").as_bytes())?;
        match self.reply()? {
            c if c == want => Ok(()),
            c => Err(std::io::Error::other(format!("{line}: {c}"))),
        }
    }
}

/// Acknowledged messages: the bytes sent, and whether bob got it too.
type Acked = Arc<Mutex<Vec<(Vec<u8>, bool)>>>;

/// Sends messages until `stop`; every message answered 250 goes into `acked`.
fn sender(addr: SocketAddr, session: usize, round: usize, stop: Arc<AtomicBool>, acked: Acked) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let Ok(s) = TcpStream::connect(addr) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let mut c = Smtp { s, buf: Vec::new() };
        let run = (|| -> std::io::Result<()> {
            if c.reply()? != 220 {
                return Err(std::io::Error::other("greeting"));
            }
            c.cmd("EHLO crash.example", 250)?;
            for _ in 0..20 {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let b = body(session, n, round);
                let both = group(n);
                n += 1;
                c.cmd("MAIL FROM:<s@sender.example>", 250)?;
                c.cmd("RCPT TO:<alice@example.com>", 250)?;
                if both {
                    c.cmd("RCPT TO:<bob@example.com>", 250)?;
                }
                c.cmd("DATA", 354)?;
                c.s.write_all(&b)?;
                c.s.write_all(b".\r\n")?;
                if c.reply()? == 250 {
                    acked.lock().unwrap().push((b, both));
                }
            }
            c.cmd("QUIT", 221)
        })();
        if run.is_err() {
            // The server died (or is dying): stop once told to.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn sigkill_during_smtp_delivery_loses_nothing_acknowledged() {
    crash_run(None);
}

/// The same on the PostgreSQL backend (issue 7: the crash suite on both backends). Needs
/// PostgreSQL on 127.0.0.1:5432 (POSTERN_TEST_PG_URL overrides); fails without it.
#[test]
fn sigkill_during_smtp_delivery_loses_nothing_acknowledged_on_postgres() {
    let url = std::env::var("POSTERN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let schema = format!(
        "postern_crash_{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            & 0xffff_ffff_ffff
    );
    struct DropSchema(String, String);
    impl Drop for DropSchema {
        fn drop(&mut self) {
            let _ = Command::new("psql")
                .args([
                    &self.0,
                    "-qc",
                    &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1),
                ])
                .output();
        }
    }
    let _cleanup = DropSchema(url.clone(), schema.clone());
    crash_run(Some((url, schema)));
}

/// `pg`: (url, schema) to run on PostgreSQL; `None` for the embedded store.
fn crash_run(pg: Option<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    // Started as root, the server drops to `nobody`, which must reach data/.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("postern.toml");
    let dns = nxdomain_dns();
    std::fs::write(
        &config,
        format!(
            "hostname = \"mx.example.com\"\ndata_dir = \"{}\"\n\
             [listen]\nsmtp = [\"127.0.0.1:0\"]\nsubmission = []\nsubmissions = []\nimap = []\nimaps = []\nhttp = []\nhttps = []\nadmin = []\n\
             [server]\nrun_as = \"nobody\"\nshutdown_grace_secs = 1\n\
             [auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n\
             [log]\nlevel = \"warn\"\n\
             [dns]\nnameservers = [\"{dns}\"]\ntimeout_secs = 2\n{}",
            data.display(),
            match &pg {
                Some((url, schema)) => format!(
                    "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\npool_size = 8\n"
                ),
                None => String::new(),
            }
        ),
    )
    .unwrap();
    // The first start creates the data directory and the admin token.
    let (mut first, _) = serve(&config);
    first.kill().unwrap();
    first.wait().unwrap();
    cli(&config, &["domain", "add", "example.com"]);
    cli(
        &config,
        &["account", "add", "alice@example.com", "--generate"],
    );
    cli(
        &config,
        &["account", "add", "bob@example.com", "--generate"],
    );

    let acked: Acked = Arc::default();
    for round in 0..KILLS {
        let (mut child, addr) = serve(&config);
        let stop = Arc::new(AtomicBool::new(false));
        let before = acked.lock().unwrap().len();
        let threads: Vec<_> = (0..SESSIONS)
            .map(|s| {
                let (stop, acked) = (stop.clone(), acked.clone());
                std::thread::spawn(move || sender(addr, s, round, stop, acked))
            })
            .collect();
        let start = Instant::now();
        while acked.lock().unwrap().len() < before + ACKS_PER_ROUND {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "too few acknowledgements in round {round}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Mid-stream: sessions are inside DATA or waiting for the fsync right now.
        std::thread::sleep(Duration::from_millis(3 + round as u64 * 7));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= KILLS * ACKS_PER_ROUND);
    assert!(
        acked.iter().any(|(_, both)| *both),
        "no two-recipient message was acknowledged"
    );

    let out = cli(&config, &["store", "verify"]);
    assert!(!out.to_lowercase().contains("error"), "{out}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (store, blobs): (Arc<dyn Store>, Box<dyn BlobStore>) = match &pg {
            None => {
                let s = Arc::new(
                    SqliteStore::open(&data.join("meta.sqlite"), SqliteOptions::default()).unwrap(),
                );
                // Small blobs in the database, big ones as files (as the server keeps them).
                let files = FsBlobStore::open(&data.join("blobs")).unwrap();
                let b = SqliteBlobStore::new(s.clone(), files, 128 * 1024);
                (s, Box::new(b))
            }
            Some((url, schema)) => {
                let s = postern_store_pg::PgStore::connect(url, schema, Default::default())
                    .await
                    .unwrap();
                let b = s.blob_store();
                (Arc::new(s), Box::new(b))
            }
        };
        let domain = store.domain_by_name("example.com").await.unwrap().unwrap();
        // Every message in an account's INBOX, with its blob name.
        let inbox_of = async |local: &str| {
            let p = store
                .principal_by_local(domain.id, local)
                .await
                .unwrap()
                .unwrap();
            let inbox = store
                .mailboxes(p.id)
                .await
                .unwrap()
                .into_iter()
                .find(|m| m.special_use == Some(SpecialUse::Inbox))
                .unwrap();
            let (_, entries) = store.mailbox_entries(p.id, inbox.id).await.unwrap();
            let mut out = Vec::new();
            for e in &entries {
                let m = store.message(p.id, e.message).await.unwrap().unwrap();
                out.push((blobs.get(&m.blob.hash).await.unwrap(), m.blob.hash.clone()));
            }
            out
        };
        let stored = inbox_of("alice").await;
        let bobs = inbox_of("bob").await;
        // Both kinds of blob were acknowledged: small ones kept in the database, big ones
        // as files.
        let big = stored.iter().filter(|(s, _)| s.len() > 128 * 1024).count();
        assert!(
            big > 0 && big < stored.len(),
            "{big} big messages of {}",
            stored.len()
        );
        if pg.is_none() {
            let files = FsBlobStore::open(&data.join("blobs"))
                .unwrap()
                .list()
                .await
                .unwrap();
            let small_in_files = stored
                .iter()
                .filter(|(s, h)| s.len() <= 128 * 1024 && files.contains(h))
                .count();
            assert_eq!(small_in_files, 0, "small blobs written as files");
            assert!(
                stored
                    .iter()
                    .filter(|(s, _)| s.len() > 128 * 1024)
                    .all(|(_, h)| files.contains(h)),
                "a big blob is not a file"
            );
        }
        assert!(
            stored.len() >= acked.len(),
            "{} stored, {} acknowledged",
            stored.len(),
            acked.len()
        );
        let deliveries: Vec<serde_json::Value> = store
            .ledger(&LedgerQuery {
                limit: 1_000_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.record.action == "message.deliver")
            .filter_map(|e| e.record.after)
            .collect();
        let is_copy = |s: &[u8], a: &[u8]| {
            s.ends_with(a) && s.starts_with(b"Return-Path: <s@sender.example>\r\nReceived: ")
        };
        for (a, both) in &acked {
            let subject =
                String::from_utf8_lossy(&a[..a.iter().position(|&b| b == b'\n').unwrap_or(0)])
                    .into_owned();
            let found: Vec<&String> = stored
                .iter()
                .filter(|(s, _)| is_copy(s, a))
                .map(|(_, h)| h)
                .collect();
            assert_eq!(
                found.len(),
                1,
                "acknowledged message {subject} found {} times",
                found.len()
            );
            let hash = found[0];
            let in_bob = bobs.iter().filter(|(s, _)| is_copy(s, a)).count();
            assert_eq!(
                in_bob,
                usize::from(*both),
                "{subject}: {in_bob} copies for bob"
            );
            // Exactly one ledger entry for the acknowledged message, naming everyone.
            let entries: Vec<&serde_json::Value> = deliveries
                .iter()
                .filter(|d| d["blob"] == hash.as_str())
                .collect();
            assert_eq!(
                entries.len(),
                1,
                "{subject}: {} ledger entries",
                entries.len()
            );
            let want = if *both {
                serde_json::json!(["alice@example.com", "bob@example.com"])
            } else {
                serde_json::json!(["alice@example.com"])
            };
            assert_eq!(entries[0]["recipients"], want, "{subject}");
        }
        // Nothing half-written: every stored message is one that was sent.
        for (s, _) in stored.iter().chain(&bobs) {
            assert!(
                s.windows(15).any(|w| w == b"\r\nSubject: cras"),
                "unexpected stored bytes"
            );
        }
    });
}
