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
    python("imapclient_client.py", &py_args(&env, mode))
        .assert_ok(&format!("imapclient ({mode})"));
}

#[test]
fn python_imapclient_plain() {
    imapclient_in("plain");
}

#[test]
fn python_imapclient_tls() {
    imapclient_in("tls");
}
