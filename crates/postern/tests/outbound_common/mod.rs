//! Helpers shared by the outbound tests (`tests/outbound.rs`, `tests/outbound_tls.rs`):
//! the test DNS zone (`crates/smtp/tests/dns_zone.py`, dnslib), the scripted receiving
//! MTA (`tests/outbound_peer.py`, aiosmtpd), submission with swaks, queue and ledger
//! readers, openssl, and the DKIM checks (`tests/outbound_check.py`, dkimpy).
#![allow(dead_code)]

use crate::common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const DNS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../smtp/tests/dns_zone.py");

pub const PEER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/outbound_peer.py");

pub const CHECK_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/outbound_check.py");

pub const PYTHON_INSTALL: &str =
    "python3 -m pip install dnslib dkimpy pynacl aiosmtpd (.ci/run installs them)";

pub const ALICE_PW: &str = "alice-outbound-pw";

/// How long a delivery that should happen may take on a loaded 2-core box.
pub const DELIVERY: Duration = Duration::from_secs(30);

pub fn require_tool(tool: &str, install: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} || test -x /usr/sbin/{tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(found, "`{tool}` is not installed: {install}");
}

pub fn require_python(modules: &str) {
    require_tool("python3", "apt-get install python3");
    let ok = Command::new("python3")
        .arg("-c")
        .arg(format!("import {modules}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "python3 cannot import {modules}: {PYTHON_INSTALL}");
}

/// Polls `f` until it gives `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A port free on every one of `hosts` (bound and released; the tests own these
/// loopback addresses, so nobody else races for it).
pub fn free_port(hosts: &[&str]) -> u16 {
    'again: loop {
        let first = TcpListener::bind((hosts[0], 0)).expect("bind loopback");
        let port = first.local_addr().unwrap().port();
        for h in &hosts[1..] {
            if TcpListener::bind((*h, port)).is_err() {
                continue 'again;
            }
        }
        return port;
    }
}

/// Reads the one line a helper prints once it listens; panics with its stderr when it
/// dies first.
pub fn port_line(child: &mut Child, what: &str, install: &str) -> u16 {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    match line.trim().parse() {
        Ok(p) => p,
        Err(_) => {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{what} did not start: {err}\n{install}");
        }
    }
}

pub fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

pub fn rr(name: &str, rtype: &str, value: &str) -> Value {
    json!({"name": name, "type": rtype, "value": value})
}

pub struct Dns {
    pub port: u16,
    pub path: PathBuf,
    pub records: Mutex<(Vec<Value>, bool)>,
    pub child: Child,
    pub _dir: tempfile::TempDir,
}

impl Drop for Dns {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Dns {
    pub fn start(records: Vec<Value>, ad: bool) -> Dns {
        require_python("dnslib");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zone.json");
        write_zone(&path, &records, ad);
        let mut child = Command::new("python3")
            .arg(DNS_SCRIPT)
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3");
        let port = port_line(&mut child, "the test DNS server", PYTHON_INSTALL);
        Dns {
            port,
            path,
            records: Mutex::new((records, ad)),
            child,
            _dir: dir,
        }
    }

    /// Adds records (the server reads the file again).
    pub fn publish(&self, more: Vec<Value>) {
        let mut r = self.records.lock().unwrap();
        r.0.extend(more);
        write_zone(&self.path, &r.0, r.1);
    }
}

pub fn write_zone(path: &Path, records: &[Value], ad: bool) {
    let tmp = path.with_extension("tmp");
    let zone = json!({"records": records, "ttl": 1, "ad": ad});
    std::fs::write(&tmp, serde_json::to_vec_pretty(&zone).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub struct Peer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub child: Child,
}

impl Drop for Peer {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub meta: Value,
    pub raw: Vec<u8>,
}

impl Received {
    pub fn text(&self) -> String {
        text(&self.raw)
    }
    pub fn rcpts(&self) -> Vec<String> {
        self.meta["rcpt_tos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }
    pub fn subject(&self) -> String {
        header(&self.text(), "Subject").unwrap_or_default()
    }
}

impl Peer {
    /// Listens on `port` (0: any) of every host; `tls`: (certificate, key) for STARTTLS.
    pub fn start(hosts: &[&str], port: u16, tls: Option<(&Path, &Path)>) -> Peer {
        require_python("aiosmtpd");
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(PEER_SCRIPT)
            .arg("--hosts")
            .arg(hosts.join(","))
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir.path());
        if let Some((cert, key)) = tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3");
        let port = port_line(&mut child, "the aiosmtpd peer", PYTHON_INSTALL);
        Peer { port, dir, child }
    }

    pub fn mode(&self, mode: Value) {
        let path = self.dir.path().join("mode.json");
        let tmp = self.dir.path().join("mode.json.tmp");
        std::fs::write(&tmp, mode.to_string()).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    pub fn messages(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("msg-"))
            })
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|p| {
                let meta: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                let raw = std::fs::read(p.with_extension("eml")).unwrap();
                Received { meta, raw }
            })
            .collect()
    }

    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The messages received for `rcpt`.
    pub fn for_rcpt(&self, rcpt: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.rcpts().iter().any(|r| r == rcpt))
            .collect()
    }

    pub fn wait_for_rcpt(&self, rcpt: &str) -> Received {
        wait_for(
            DELIVERY,
            &format!("a message for {rcpt} at the peer"),
            || self.for_rcpt(rcpt).into_iter().next(),
        )
    }
}

pub fn add_user(server: &Server, domain: &str, address: &str, password: &str) {
    let domains = server.cli_ok(&["domain", "list"], "");
    if !domains
        .lines()
        .any(|l| l.split_whitespace().next() == Some(domain))
    {
        server.cli_ok(&["domain", "add", domain], "");
    }
    server.cli_ok(&["account", "add", address], format!("{password}\n"));
}

/// Submits over 587 with STARTTLS + AUTH PLAIN as alice (swaks); panics unless every
/// recipient is accepted.
pub fn submit(server: &Server, to: &[&str], subject: &str, body: &str) {
    require_tool(
        "swaks",
        "apt-get install swaks libnet-ssleay-perl (.ci/run installs it)",
    );
    let port = server.addr("submission").port().to_string();
    let to = to.join(",");
    let out = Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--ehlo",
            "client.example",
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice@example.com",
            "--auth-password",
            ALICE_PW,
            "--from",
            "alice@example.com",
            "--to",
            &to,
            "--header",
            &format!("Subject: {subject}"),
            "--body",
            body,
        ])
        .output()
        .expect("run swaks");
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "swaks failed:\n{all}");
}

/// The unfolded value of the first field `name` in the header section of `msg`.
pub fn header(msg: &str, name: &str) -> Option<String> {
    all_headers(msg, name).into_iter().next()
}

pub fn all_headers(msg: &str, name: &str) -> Vec<String> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    let head = head.split("\n\n").next().unwrap_or("");
    let unfolded = head
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    unfolded
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The ledger as JSON entries.
pub fn ledger(server: &Server) -> Vec<Value> {
    server
        .cli_ok(&["audit", "show", "--json"], "")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["record"].clone())
        .collect()
}

pub fn actions(server: &Server, action: &str) -> Vec<Value> {
    ledger(server)
        .into_iter()
        .filter(|e| e["action"] == json!(action))
        .collect()
}

/// Queue ids from `postern queue list`.
pub fn queue_ids(server: &Server) -> Vec<String> {
    server
        .cli_ok(&["queue", "list"], "")
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty() && *l != "the queue is empty")
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

pub fn wait_queue_empty(server: &Server) {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let out = server.cli_ok(&["queue", "list"], "");
        if out.trim() == "the queue is empty" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the queue did not empty within {DELIVERY:?}:\n{out}\nserver stderr:\n{}",
            server.proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The `queued` recipient line of `queue show` for `rcpt`.
pub fn queue_line(server: &Server, id: &str, rcpt: &str) -> String {
    server
        .cli_ok(&["queue", "show", id], "")
        .lines()
        .find(|l| l.contains(&format!("<{rcpt}>")))
        .unwrap_or_else(|| panic!("no line for {rcpt} in queue show {id}"))
        .to_string()
}

pub fn attempts_of(line: &str) -> u32 {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "attempts" {
            return words.next().unwrap().parse().unwrap();
        }
    }
    panic!("no attempts in {line:?}")
}

/// The only queued message's id, once a recipient `rcpt` of it has been tried `n` times.
pub fn wait_attempts(server: &Server, rcpt: &str, n: u32) -> String {
    wait_for(DELIVERY, &format!("{n} attempt(s) for {rcpt}"), || {
        for id in queue_ids(server) {
            let out = server.cli_ok(&["queue", "show", &id], "");
            if let Some(l) = out.lines().find(|l| l.contains(&format!("<{rcpt}>")))
                && l.trim_start().starts_with("queued")
                && attempts_of(l) >= n
            {
                return Some(id);
            }
        }
        None
    })
}

pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install openssl"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        text(&out.stderr)
    );
    out.stdout
}

/// The TXT records `postern domain dkim` printed (`NAME IN TXT ( "…" "…" )`), as zone
/// records (the character-strings joined, RFC 6376 §3.6.2.2).
pub fn dkim_records(printed: &str) -> Vec<Value> {
    printed
        .lines()
        .filter(|l| l.contains(" IN TXT "))
        .map(|l| {
            let name = l.split_whitespace().next().unwrap().trim_end_matches('.');
            let value: String = l.split('"').skip(1).step_by(2).collect();
            rr(name, "TXT", &value)
        })
        .collect()
}

/// Verifies every DKIM signature of `raw` with dkimpy against the zone file: (a=, ok).
pub fn dkimpy(zone: &Path, raw: &[u8]) -> Vec<(String, bool)> {
    require_python("dkim, nacl");
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), raw).unwrap();
    let out = Command::new("python3")
        .arg(CHECK_SCRIPT)
        .arg("dkim")
        .arg(zone)
        .arg(f.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "dkimpy: {}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["a"].as_str().unwrap_or("").to_string(),
                s["ok"] == json!(true),
            )
        })
        .collect()
}

/// Restarts a killed server on its configuration and data.
pub fn restart(server: &mut Server) {
    let mut cmd = postern();
    cmd.arg("--config").arg(&server.config).arg("serve");
    let mut proc = Proc::spawn(cmd);
    if let Err(status) = proc.wait_ready() {
        panic!("restart: exited with {status}\n{}", proc.stderr());
    }
    server.listeners = listening_lines(&proc.stdout());
    server.proc = proc;
}

impl Dns {
    /// Replaces every record (the server reads the file again).
    pub fn set(&self, records: Vec<Value>) {
        let mut r = self.records.lock().unwrap();
        r.0 = records;
        write_zone(&self.path, &r.0, r.1);
    }
}
