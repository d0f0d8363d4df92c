//! Real IMAP clients against the real server: Python's imaplib and imapclient, node's
//! imapflow and mbsync (isync), each over a plain loopback connection and over TLS
//! trusting the server's self-signed certificate. The client scripts live in
//! `tests/clients/`. A missing tool is a failure that says how to install it, never a
//! skip (`.ci/run` installs them all).
//!
//! imapflow is looked up in `$POSTERN_NPM_DIR/node_modules`, by default
//! `<target dir>/npm/node_modules` (where `.ci/run` installs it).

#[allow(dead_code)] // the fixture serves several test binaries
#[path = "imap/client.rs"]
mod client;
#[path = "common/mod.rs"]
mod common;

use client::*;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest any one client script may run: each does a few dozen round trips on
/// loopback, so this only bounds a hang (a client waiting for an answer that never
/// comes) on a loaded 2-core CI box.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn script(name: &str) -> PathBuf {
    clients_dir().join(name)
}

/// Panics unless `tool` is on PATH, naming how to install it.
fn require(tool: &str, install: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: this test needs it ({install}; .ci/run installs it)"
    );
}

/// Panics unless python3 can import `module`.
fn require_py(module: &str, install: &str) {
    require("python3", "apt-get install python3");
    let ok = Command::new("python3")
        .arg("-c")
        .arg(format!("import {module}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python module `{module}` is not installed: this test needs it ({install}; .ci/run installs it)"
    );
}

/// Where `.ci/run` installs npm packages: `$POSTERN_NPM_DIR`, else `<target>/npm`.
fn npm_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("POSTERN_NPM_DIR") {
        return PathBuf::from(d);
    }
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("npm")
}

/// What a finished client printed.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// Panics (showing both streams) unless the client exited 0 with `OK` as its last
    /// line.
    fn assert_ok(&self, what: &str) {
        assert!(
            self.ok && self.stdout.lines().last() == Some("OK"),
            "{what} failed\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
    fn both(&self) -> String {
        format!("--- stdout:\n{}\n--- stderr:\n{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` to completion, killing it (by its own pid) after [`SCRIPT_TIMEOUT`].
fn run_client(mut cmd: Command) -> Ran {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = text(&t_out.join().unwrap());
    let stderr = text(&t_err.join().unwrap());
    let Some(status) = status else {
        panic!(
            "{desc} still running after {SCRIPT_TIMEOUT:?}, killed\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
        );
    };
    Ran {
        ok: status.success(),
        stdout,
        stderr,
    }
}

fn python(script_name: &str, args: &[String]) -> Ran {
    let mut cmd = Command::new("python3");
    cmd.arg(script(script_name)).args(args);
    run_client(cmd)
}

/// The common arguments of the Python scripts for `mode` (plain, starttls or tls).
fn py_args(env: &Env, mode: &str) -> Vec<String> {
    let port = match mode {
        "tls" => env.server.addr("imaps").port(),
        _ => env.server.addr("imap").port(),
    };
    vec![
        "--port".into(),
        port.to_string(),
        "--mode".into(),
        mode.into(),
        "--cert".into(),
        env.server.cert_path().to_str().unwrap().into(),
        "--user".into(),
        ALICE.0.into(),
        "--password".into(),
        ALICE.1.into(),
        "--peer-user".into(),
        BOB.0.into(),
        "--peer-password".into(),
        BOB.1.into(),
    ]
}

// ---- 1. Python imaplib and imapclient ----

fn imaplib_in(mode: &str) {
    require_py("imaplib", "apt-get install python3");
    let env = Env::start();
    python("imaplib_client.py", &py_args(&env, mode)).assert_ok(&format!("imaplib ({mode})"));
}

#[test]
fn python_imaplib_plain() {
    imaplib_in("plain");
}

#[test]
fn python_imaplib_starttls() {
    imaplib_in("starttls");
}

#[test]
fn python_imaplib_tls() {
    imaplib_in("tls");
}

fn imapclient_in(mode: &str) {
    require_py("imapclient", "python3 -m pip install imapclient");
    let env = Env::start();
    python("imapclient_client.py", &py_args(&env, mode)).assert_ok(&format!("imapclient ({mode})"));
}

#[test]
fn python_imapclient_plain() {
    imapclient_in("plain");
}

#[test]
fn python_imapclient_tls() {
    imapclient_in("tls");
}

#[test]
fn python_imapclient_starttls() {
    imapclient_in("starttls");
}

// ---- 2. node imapflow ----

fn imapflow_in(mode: &str) {
    require("node", "apt-get install nodejs");
    let modules = npm_dir().join("node_modules");
    assert!(
        modules.join("imapflow").join("package.json").is_file(),
        "imapflow is not installed in {}: this test needs it (npm install --prefix {} imapflow, \
         or set POSTERN_NPM_DIR to a directory holding node_modules/imapflow; .ci/run installs it)",
        modules.display(),
        npm_dir().display()
    );
    let env = Env::start();
    let port = match mode {
        "tls" => env.server.addr("imaps").port(),
        _ => env.server.addr("imap").port(),
    };
    let mut cmd = Command::new("node");
    cmd.arg(script("imapflow_client.js"))
        .arg(mode)
        .arg(port.to_string())
        .arg(env.server.cert_path())
        .arg(ALICE.0)
        .arg(ALICE.1)
        .env("NODE_PATH", &modules);
    run_client(cmd).assert_ok(&format!("imapflow ({mode})"));
}

#[test]
fn node_imapflow_tls() {
    imapflow_in("tls");
}

#[test]
fn node_imapflow_starttls() {
    imapflow_in("starttls");
}

// ---- 4. the shared corpus through APPEND ----

/// `count` messages from the generator shared by the project's tools, as an mbox file
/// in `dir`.
fn gen_mbox(count: u32, dir: &Path) -> PathBuf {
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/gen_mbox.py");
    assert!(
        generator.is_file(),
        "{} is missing: the mbox generator lives in the shared tools next to the repository",
        generator.display()
    );
    let out = dir.join(format!("corpus-{count}.mbox"));
    let status = Command::new("python3")
        .arg(&generator)
        .args(["--count", &count.to_string(), "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .expect("python3 is needed to generate the test mbox");
    assert!(status.success(), "gen_mbox.py failed: {status}");
    out
}

#[test]
fn python_imaplib_corpus_append_fetch() {
    require_py("imaplib", "apt-get install python3");
    let env = Env::start();
    let mbox = gen_mbox(120, env.server.dir.path());
    let ran = python(
        "imaplib_corpus.py",
        &[
            "--port".into(),
            env.server.addr("imap").port().to_string(),
            "--user".into(),
            ALICE.0.into(),
            "--password".into(),
            ALICE.1.into(),
            "--mbox".into(),
            mbox.to_str().unwrap().into(),
        ],
    );
    ran.assert_ok("imaplib corpus");
    println!("{}", ran.stdout); // timings, shown with --nocapture
    assert!(
        ran.stdout.contains("corpus 120 messages")
            && ran.stdout.contains("fetched back 120 byte-exact"),
        "{}",
        ran.both()
    );
}

// ---- 3. mbsync (isync): two-way sync with a local Maildir ----

/// One message as `imap_dump.py` reports it.
#[derive(Debug, Clone)]
struct Held {
    uid: u32,
    flags: Vec<String>,
    body: Vec<u8>,
}

/// What `mailbox` of alice holds, read over IMAP by imaplib (byte-exact).
fn dump(env: &Env, mailbox: &str) -> Vec<Held> {
    use base64::Engine as _;
    let ran = python(
        "imap_dump.py",
        &[
            "--port".into(),
            env.server.addr("imap").port().to_string(),
            "--user".into(),
            ALICE.0.into(),
            "--password".into(),
            ALICE.1.into(),
            "--mailbox".into(),
            mailbox.into(),
        ],
    );
    ran.assert_ok(&format!("imap_dump.py {mailbox}"));
    ran.stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Held {
                uid: v["uid"].as_u64().unwrap() as u32,
                flags: v["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_string())
                    .collect(),
                body: base64::engine::general_purpose::STANDARD
                    .decode(v["body"].as_str().unwrap())
                    .unwrap(),
            }
        })
        .collect()
}

/// A Maildir message file: its path, its flag letters (after `:2,`) and its bytes.
#[derive(Debug, Clone)]
struct MaildirMsg {
    path: PathBuf,
    flags: String,
    body: Vec<u8>,
}

/// Every message in the Maildir folder `dir` (`cur/` and `new/`).
fn maildir(dir: &Path) -> Vec<MaildirMsg> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let flags = name
                .split_once(":2,")
                .map(|(_, f)| f.to_string())
                .unwrap_or_default();
            let body = std::fs::read(&path).unwrap();
            out.push(MaildirMsg { path, flags, body });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn crlf_to_lf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Maildir flag letters (maildir.cr.yp.to/flags.html) for IMAP system flags.
fn maildir_flags(imap: &[String]) -> String {
    let mut f: Vec<char> = imap
        .iter()
        .filter_map(|f| match f.as_str() {
            "\\Draft" => Some('D'),
            "\\Flagged" => Some('F'),
            "\\Answered" => Some('R'),
            "\\Seen" => Some('S'),
            "\\Deleted" => Some('T'),
            _ => None,
        })
        .collect();
    f.sort();
    f.into_iter().collect()
}

/// `msg` without the `X-TUID:` header line mbsync 1.4 adds to every message it copies
/// (its own mark to find a copy again after an interruption; isync's sync.c adds it at
/// the end of the header whether or not the target reports UIDs).
fn without_tuid(msg: &[u8]) -> Vec<u8> {
    let head_end = msg
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|p| p + 1)
        .unwrap_or(msg.len());
    let mut out = Vec::with_capacity(msg.len());
    let mut rest = msg;
    let mut at = 0;
    while !rest.is_empty() {
        let n = rest
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| p + 1)
            .unwrap_or(rest.len());
        let line = &rest[..n];
        if !(at < head_end && line.starts_with(b"X-TUID: ")) {
            out.extend_from_slice(line);
        }
        at += n;
        rest = &rest[n..];
    }
    out
}

/// Asserts the Maildir folder and the Postern mailbox hold the same messages (bytes,
/// modulo the Maildir's LF line ends and mbsync's X-TUID line, which it also adds to
/// what it uploads) with the same flags.
fn assert_same(local: &[MaildirMsg], remote: &[Held], what: &str) {
    let l: BTreeMap<Vec<u8>, String> = local
        .iter()
        .map(|m| (without_tuid(&m.body), m.flags.clone()))
        .collect();
    let r: BTreeMap<Vec<u8>, String> = remote
        .iter()
        .map(|m| (without_tuid(&crlf_to_lf(&m.body)), maildir_flags(&m.flags)))
        .collect();
    assert_eq!(
        l.len(),
        local.len(),
        "{what}: duplicate messages in the Maildir"
    );
    assert_eq!(
        r.len(),
        remote.len(),
        "{what}: duplicate messages in Postern"
    );
    let only_local: Vec<&Vec<u8>> = l.keys().filter(|k| !r.contains_key(*k)).collect();
    let only_remote: Vec<&Vec<u8>> = r.keys().filter(|k| !l.contains_key(*k)).collect();
    if !only_local.is_empty() || !only_remote.is_empty() {
        // Show, for each Maildir message without a twin, where it first differs from
        // the Postern message with the same Message-ID.
        let diffs: Vec<String> = only_local
            .iter()
            .map(
                |a| match only_remote.iter().find(|b| message_id(b) == message_id(a)) {
                    Some(b) => first_difference(a, b),
                    None => format!("no Postern message with Message-ID {:?}", message_id(a)),
                },
            )
            .collect();
        panic!(
            "{what}: message bytes differ ({} only in the Maildir, {} only in Postern)\n{}",
            only_local.len(),
            only_remote.len(),
            diffs.join("\n")
        );
    }
    for (body, flags) in &l {
        assert_eq!(
            flags,
            &r[body],
            "{what}: flags differ (Maildir vs Postern) for {:?}",
            text(&body[..body.len().min(200)])
        );
    }
}

/// The Message-ID header line's value, if any.
fn message_id(msg: &[u8]) -> Option<String> {
    text(msg)
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            l.strip_prefix("Message-ID:")
                .or_else(|| l.strip_prefix("Message-Id:"))
                .map(|v| v.trim().to_string())
        })
}

/// Where `maildir` and `postern` first differ, with some bytes of context.
fn first_difference(maildir: &[u8], postern: &[u8]) -> String {
    let at = maildir
        .iter()
        .zip(postern)
        .position(|(a, b)| a != b)
        .unwrap_or(maildir.len().min(postern.len()));
    let ctx = |b: &[u8]| text(&b[at.saturating_sub(40)..(at + 80).min(b.len())]);
    format!(
        "{:?}: lengths {} (Maildir) vs {} (Postern), first difference at byte {at}:\n  Maildir: {:?}\n  Postern: {:?}",
        message_id(maildir),
        maildir.len(),
        postern.len(),
        ctx(maildir),
        ctx(postern)
    )
}

/// An mbsyncrc for alice: `tls` is `IMAPS` (port imaps) or `STARTTLS` (port imap)
/// (isync 1.4 spells the key `SSLType`; 1.5 also accepts `TLSType`),
/// always verifying against the server's certificate.
fn mbsyncrc(env: &Env, dir: &Path, tls: &str) -> PathBuf {
    let port = match tls {
        "IMAPS" => env.server.addr("imaps").port(),
        _ => env.server.addr("imap").port(),
    };
    let mail = dir.join("mail");
    // mbsync creates folders below the store's path, not the path itself.
    std::fs::create_dir_all(&mail).unwrap();
    let rc = format!(
        "IMAPAccount postern\n\
         Host 127.0.0.1\n\
         Port {port}\n\
         User {user}\n\
         Pass {pass}\n\
         SSLType {tls}\n\
         CertificateFile {cert}\n\
         AuthMechs LOGIN\n\
         \n\
         IMAPStore remote\n\
         Account postern\n\
         \n\
         MaildirStore local\n\
         Path {mail}/\n\
         Inbox {mail}/INBOX\n\
         SubFolders Verbatim\n\
         \n\
         Channel sync\n\
         Far :remote:\n\
         Near :local:\n\
         Patterns *\n\
         Create Both\n\
         Remove None\n\
         Expunge Both\n\
         SyncState *\n\
         Sync All\n\
         CopyArrivalDate yes\n",
        user = ALICE.0,
        pass = ALICE.1,
        cert = env.server.cert_path().display(),
        mail = mail.display(),
    );
    let path = dir.join(format!("mbsyncrc-{tls}"));
    std::fs::write(&path, rc).unwrap();
    path
}

fn mbsync(rc: &Path) -> Ran {
    let mut cmd = Command::new("mbsync");
    cmd.arg("-c").arg(rc).arg("-V").arg("-a");
    let ran = run_client(cmd);
    assert!(ran.ok, "mbsync -c {} failed\n{}", rc.display(), ran.both());
    ran
}

#[test]
fn mbsync_two_way() {
    require("mbsync", "apt-get install isync");
    require_py("imaplib", "apt-get install python3");
    let env = Env::start();
    let work = tempfile::tempdir().unwrap();
    let mbox = std::fs::read(gen_mbox(30, work.path())).unwrap();
    env.import(ALICE.0, None, &mbox);
    // A second folder, so the sync covers folder discovery and creation.
    env.import(ALICE.0, Some("Archive"), &mbox_of(&[b"From: a@example.org\r\nSubject: archived\r\nMessage-ID: <arch1@example.org>\r\n\r\nold mail\r\n"]));
    // Flags set on the server before the first pull must arrive as Maildir flags.
    let mut c = env.login(ALICE);
    c.cmd("SELECT INBOX").ok();
    c.cmd("STORE 1:3 +FLAGS (\\Seen)").ok();
    c.cmd("STORE 4 +FLAGS (\\Flagged \\Answered)").ok();
    c.cmd("LOGOUT").ok();

    // Pull over implicit TLS.
    let rc_tls = mbsyncrc(&env, work.path(), "IMAPS");
    let first = mbsync(&rc_tls);
    let mail = work.path().join("mail");
    let inbox = maildir(&mail.join("INBOX"));
    let remote = dump(&env, "INBOX");
    assert_eq!(remote.len(), 30, "{}", first.both());
    assert_eq!(inbox.len(), 30, "{}", first.both());
    assert_same(&inbox, &remote, "after the first pull");
    assert_eq!(inbox.iter().filter(|m| m.flags.contains('S')).count(), 3);
    assert_eq!(inbox.iter().filter(|m| m.flags == "FR").count(), 1);
    assert_eq!(inbox.iter().filter(|m| m.flags.contains('F')).count(), 1);
    assert_same(
        &maildir(&mail.join("Archive")),
        &dump(&env, "Archive"),
        "Archive after the first pull",
    );

    // Local changes: flag one, read one, trash one, add one, and a new local folder.
    let unseen: Vec<&MaildirMsg> = inbox.iter().filter(|m| m.flags.is_empty()).collect();
    assert!(unseen.len() >= 3);
    let set_flags = |m: &MaildirMsg, flags: &str| {
        let name = m.path.file_name().unwrap().to_str().unwrap();
        let base = name.split_once(":2,").map(|(b, _)| b).unwrap_or(name);
        let to = m
            .path
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("cur")
            .join(format!("{base}:2,{flags}"));
        std::fs::rename(&m.path, &to).unwrap();
    };
    set_flags(unseen[0], "F");
    set_flags(unseen[1], "S");
    set_flags(unseen[2], "T");
    let added = b"From: Alice <alice@example.com>\nTo: bob@example.com\nSubject: written offline\nMessage-ID: <offline1@example.com>\nDate: Wed, 25 Nov 2026 06:00:00 +0000\n\nDrafted in the Maildir, pushed by mbsync.\n";
    std::fs::write(mail.join("INBOX/new/1764050000.P1Q1.test"), added).unwrap();
    let local_box = mail.join("Local");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(local_box.join(sub)).unwrap();
    }
    std::fs::write(
        local_box.join("new/1764050001.P1Q2.test"),
        b"Subject: local folder\n\nmade here\n",
    )
    .unwrap();

    // Push over STARTTLS.
    let rc_starttls = mbsyncrc(&env, work.path(), "STARTTLS");
    let second = mbsync(&rc_starttls);
    let remote = dump(&env, "INBOX");
    let inbox = maildir(&mail.join("INBOX"));
    let flagged = |b: &[u8], f: &str| {
        remote
            .iter()
            .find(|h| crlf_to_lf(&h.body) == without_tuid(b))
            .map(|h| h.flags.contains(&f.to_string()))
    };
    assert_eq!(
        flagged(&unseen[0].body, "\\Flagged"),
        Some(true),
        "{}",
        second.both()
    );
    assert_eq!(
        flagged(&unseen[1].body, "\\Seen"),
        Some(true),
        "{}",
        second.both()
    );
    assert_eq!(
        flagged(&unseen[2].body, "\\Deleted"),
        None,
        "trashed message still in Postern\n{}",
        second.both()
    );
    let pushed: Vec<&Held> = remote
        .iter()
        .filter(|h| text(&h.body).contains("written offline"))
        .collect();
    assert_eq!(pushed.len(), 1, "{}", second.both());
    // Byte-exact but for CRLF line ends and the X-TUID line mbsync put in.
    assert_eq!(
        text(&without_tuid(&crlf_to_lf(&pushed[0].body))),
        text(added),
        "the pushed message changed on its way"
    );
    assert!(
        text(&pushed[0].body).contains("+0000\r\nX-TUID: "),
        "{:?}",
        text(&pushed[0].body)
    );
    assert_eq!(remote.len(), 30, "{}", second.both());
    assert_same(&inbox, &remote, "after the push");
    let local_remote = dump(&env, "Local");
    assert_eq!(local_remote.len(), 1, "{}", second.both());
    assert_eq!(
        text(&without_tuid(&crlf_to_lf(&local_remote[0].body))),
        "Subject: local folder\n\nmade here\n"
    );

    // Changes on the server again, then a pull: a flag and a new message.
    let mut c = env.login(ALICE);
    c.cmd("SELECT INBOX").ok();
    let uid = pushed[0].uid;
    c.cmd(&format!("UID STORE {uid} +FLAGS (\\Answered)")).ok();
    c.append(
        "INBOX",
        "",
        b"From: bob@example.com\r\nSubject: after the push\r\n\r\nnew on the server\r\n",
    )
    .ok();
    c.cmd("LOGOUT").ok();
    let third = mbsync(&rc_tls);
    let remote = dump(&env, "INBOX");
    let inbox = maildir(&mail.join("INBOX"));
    assert_eq!(inbox.len(), 31, "{}", third.both());
    assert_same(&inbox, &remote, "after the last pull");

    // Nothing left to do: a further run changes nothing on either side.
    let fourth = mbsync(&rc_tls);
    assert_same(
        &maildir(&mail.join("INBOX")),
        &dump(&env, "INBOX"),
        "after a no-op sync",
    );
    assert_eq!(maildir(&mail.join("INBOX")).len(), 31, "{}", fourth.both());
}
