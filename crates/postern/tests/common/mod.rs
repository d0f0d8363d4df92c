//! The harness every integration test of the binary uses (mini-redis style): it starts
//! the real `postern serve` on ephemeral loopback ports with a temporary data directory,
//! runs the CLI against the same configuration, and talks raw bytes to the listeners —
//! HTTP/1.1 over a plain `TcpStream`, TLS through rustls trusting the server's own
//! self-signed certificate.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_postern");
/// `hostname` of every test configuration (and so of the self-signed certificate).
pub const HOSTNAME: &str = "mail.test.example";
/// Every listener kind, in configuration order.
pub const KINDS: [&str; 8] = [
    "smtp",
    "submission",
    "submissions",
    "imap",
    "imaps",
    "http",
    "https",
    "admin",
];
/// Upper bound for anything that should happen promptly on a loaded 2-core CI box.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long `serve` may take to print `ready`.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// `server.shutdown_grace_secs` of the test configuration.
pub const GRACE_SECS: u64 = 5;

/// A `postern` command with nothing leaking in from the environment (`POSTERN_CONFIG`,
/// `POSTERN_DATA` and `RUST_LOG` would change what is tested).
pub fn postern() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("POSTERN_CONFIG")
        .env_remove("POSTERN_DATA")
        .env_remove("RUST_LOG");
    c
}

/// Runs `cmd` with `stdin` written to its standard input, to completion.
pub fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn postern");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // A thread, so a large input cannot deadlock against output the command writes
    // meanwhile. The command may exit without reading (a usage error): a broken pipe
    // is fine.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().expect("wait for postern");
    writer.join().unwrap();
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- a running process ----

/// How a server process ended after [`Proc::terminate`].
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// Standard output after the `ready` line.
    pub stdout: String,
    /// From SIGTERM to exit.
    pub elapsed: Duration,
}

/// A `postern serve` process whose standard output (line by line) and standard error
/// are collected by two threads. Killed with SIGKILL when dropped while still running.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    ready_at: Option<usize>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn postern serve");
        let (tx, lines) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, all) = (child.stdout.take().unwrap(), stdout.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let (mut err, buf) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Proc {
            child,
            lines,
            stdout,
            stderr,
            ready_at: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the `ready` line. `Err` with the exit status when the process ended
    /// first; panics (showing standard error) after [`START_TIMEOUT`].
    pub fn wait_ready(&mut self) -> Result<(), ExitStatus> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == "ready" => {
                    self.ready_at = Some(self.stdout.lock().unwrap().len());
                    return Ok(());
                }
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(self.wait_exit(PATIENCE)),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "postern serve did not print `ready` within {START_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                ),
            }
        }
    }

    /// All standard output so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// All standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Polls standard error until it contains `needle` (true) or `timeout` passes.
    /// Lines written before `ready` may still be in the pipe when `ready` is read.
    pub fn stderr_eventually_has(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "postern (pid {}) still running after {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.pid(),
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits for exit (panics after `timeout`) and for standard output to
    /// be read to its end.
    pub fn terminate(&mut self, timeout: Duration) -> Stopped {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let start = Instant::now();
        kill(Pid::from_raw(self.pid() as i32), Signal::SIGTERM).expect("send SIGTERM");
        let status = self.wait_exit(timeout);
        let elapsed = start.elapsed();
        // The reader thread ends at EOF, which follows exit.
        while self.lines.recv_timeout(PATIENCE).is_ok() {}
        let after = self.ready_at.unwrap_or(0);
        let stdout = self.stdout.lock().unwrap()[after..].join("\n");
        Stopped {
            status,
            stdout,
            elapsed,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- the server under test ----

/// `postern serve` on 127.0.0.1:0 for every listener, in a temporary directory holding
/// `postern.toml` and the data directory `data/`.
pub struct Server {
    // Field order is drop order: the process goes before its directory.
    pub proc: Proc,
    /// `(kind, address)` from the `listening` lines, in order.
    pub listeners: Vec<(String, SocketAddr)>,
    pub config: PathBuf,
    pub data: PathBuf,
    pub dir: tempfile::TempDir,
}

/// The test configuration: every listener on 127.0.0.1:0, a short shutdown grace, cheap
/// password hashing, quiet logs; `extra` (TOML) is merged over it, key by key.
pub fn test_config(data: &Path, extra: &str) -> String {
    let listen: String = KINDS
        .iter()
        .map(|k| format!("{k} = [\"127.0.0.1:0\"]\n"))
        .collect();
    let base = format!(
        "hostname = \"{HOSTNAME}\"\n\
         [listen]\n{listen}\
         [server]\nshutdown_grace_secs = {GRACE_SECS}\n\
         [auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n\
         [log]\nlevel = \"warn\"\n"
    );
    let mut config: toml::Table = toml::from_str(&base).unwrap();
    config.insert(
        "data_dir".into(),
        toml::Value::String(data.to_str().unwrap().into()),
    );
    let extra: toml::Table = toml::from_str(extra).expect("extra TOML for the test configuration");
    merge(&mut config, extra);
    toml::to_string(&config).unwrap()
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

impl Server {
    pub fn start() -> Server {
        Server::start_with("")
    }

    /// Starts with `extra` TOML merged over [`test_config`]; panics (with standard error)
    /// unless `ready` comes.
    pub fn start_with(extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        // Started as root, the server drops to an unprivileged user that must still
        // reach data/ below this directory (tempdir may make it 0700).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        let config = dir.path().join("postern.toml");
        std::fs::write(&config, test_config(&data, extra)).unwrap();
        let mut cmd = postern();
        cmd.arg("--config").arg(&config).arg("serve");
        let mut proc = Proc::spawn(cmd);
        if let Err(status) = proc.wait_ready() {
            panic!(
                "postern serve exited with {status} before `ready`\nstdout:\n{}\nstderr:\n{}",
                proc.stdout(),
                proc.stderr()
            );
        }
        let listeners = listening_lines(&proc.stdout());
        Server {
            proc,
            listeners,
            config,
            data,
            dir,
        }
    }

    /// The first address of listener `kind`.
    pub fn addr(&self, kind: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no `{kind}` listener in {:?}", self.listeners))
    }

    /// `postern --config <ours> ARGS…` with `stdin`.
    pub fn cli(&self, args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
        let mut cmd = postern();
        cmd.arg("--config").arg(&self.config).args(args);
        run(cmd, stdin.as_ref())
    }

    /// [`Server::cli`] that must succeed; its standard output.
    pub fn cli_ok(&self, args: &[&str], stdin: impl AsRef<[u8]>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "postern {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// [`Server::cli`] that must exit with status 1 and print nothing on standard
    /// output; its standard error.
    pub fn cli_err(&self, args: &[&str], stdin: impl AsRef<[u8]>) -> String {
        let out = self.cli(args, stdin);
        assert_eq!(
            out.status.code(),
            Some(1),
            "postern {args:?} should fail\nstdout:\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stdout),
            "",
            "postern {args:?} failed but printed on stdout"
        );
        text(&out.stderr)
    }

    /// The admin API token from the data directory.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn cert_path(&self) -> PathBuf {
        self.data.join("tls").join("cert.pem")
    }

    /// An admin API call with the token: status and JSON body (`null` when empty).
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let auth = format!("Bearer {}", self.token());
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![("Authorization", auth.as_str())];
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        let r = http(self.addr("admin"), method, path, &headers, body.as_bytes());
        (r.status, r.json())
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// SIGTERM and wait (up to the grace plus [`PATIENCE`]).
    pub fn stop(&mut self) -> Stopped {
        self.proc
            .terminate(Duration::from_secs(GRACE_SECS) + PATIENCE)
    }
}

/// `(kind, address)` of each `listening <kind> <ip:port>` line.
pub fn listening_lines(stdout: &str) -> Vec<(String, SocketAddr)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("listening "))
        .map(|l| {
            let (kind, addr) = l.split_once(' ').expect("listening <kind> <addr>");
            (kind.to_string(), addr.parse().expect("listening address"))
        })
        .collect()
}

// ---- HTTP/1.1 over a plain socket ----

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        text(&self.body)
    }
    /// The body as JSON; `null` when empty; panics when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        if self.body.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: body is not JSON: {}", self.text()))
    }
}

/// A request with `Connection: close`. `Host` is the address unless `headers` has one;
/// `Content-Length` is sent for a body (and for POST/PUT).
pub fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// `Authorization: Basic` for `user`:`pw`.
pub fn basic(user: &str, pw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

/// A DAV request with `auth` as its Authorization field.
pub fn dav(
    addr: SocketAddr,
    auth: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut h: Vec<(&str, &str)> = vec![("Authorization", auth)];
    h.extend_from_slice(headers);
    http(addr, method, path, &h, body)
}

pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    http_raw(addr, &request_bytes(addr, method, path, headers, body))
}

/// Sends `request` as is and reads the response until the server closes.
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> Response {
    let raw = http_raw_bytes(addr, request);
    try_parse_response(&raw)
        .unwrap_or_else(|| panic!("no complete HTTP response head in {:?}", text(&raw)))
}

/// Sends `request` (a server that refuses the connection may close before it is all
/// written) and returns whatever comes back until the server closes.
pub fn http_raw_bytes(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    let _ = s.write_all(request);
    read_to_close(&mut s)
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Everything until EOF; a reset or a TLS peer that closes without close_notify also
/// ends it. Panics on a read timeout.
pub fn read_to_close<S: Read>(s: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "peer did not close within {PATIENCE:?}; read so far: {:?}",
                    text(&out)
                )
            }
            Err(_) => return out,
        }
    }
}

/// Parses one response (status line, headers, body by Content-Length, chunked, or
/// to the end).
pub fn parse_response(raw: &[u8]) -> Response {
    try_parse_response(raw)
        .unwrap_or_else(|| panic!("no complete HTTP response head in {:?}", text(raw)))
}

/// [`parse_response`], `None` without a complete head.
pub fn try_parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = text(&raw[..split]);
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if r.header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size =
                usize::from_str_radix(text(&rest[..eol]).split(';').next().unwrap().trim(), 16)
                    .unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest.drain(..eol + 2 + size + 2);
        }
        r.body = body;
    } else if let Some(n) = r
        .header("content-length")
        .map(|v| v.parse::<usize>().unwrap())
    {
        rest.truncate(n);
        r.body = rest;
    } else {
        r.body = rest;
    }
    Some(r)
}

// ---- TLS ----

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes a TLS handshake, trusting only the certificate(s) in
/// `cert_pem` and checking that they name `server_name`.
pub fn tls_connect(addr: SocketAddr, cert_pem: &Path, server_name: &str) -> TlsStream {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = connect(addr);
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
    }
    rustls::StreamOwned::new(conn, tcp)
}

/// An HTTP request over TLS (see [`request_bytes`]).
pub fn https(
    addr: SocketAddr,
    cert_pem: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut s = tls_connect(addr, cert_pem, HOSTNAME);
    s.write_all(&request_bytes(addr, method, path, headers, b""))
        .unwrap();
    s.flush().unwrap();
    parse_response(&read_to_close(&mut s))
}
