//! `postern serve` as a process: first start with no arguments, every listener's first
//! bytes, draining on SIGTERM, the privilege drop, a busy address, the per-IP limit.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// The listeners of the embedded defaults (postern.example.toml).
const DEFAULT_LISTENERS: [(&str, &str); 8] = [
    ("smtp", "0.0.0.0:25"),
    ("submission", "0.0.0.0:587"),
    ("submissions", "0.0.0.0:465"),
    ("imap", "0.0.0.0:143"),
    ("imaps", "0.0.0.0:993"),
    ("http", "0.0.0.0:80"),
    ("https", "0.0.0.0:443"),
    ("admin", "127.0.0.1:8008"),
];

/// Serialises every test that binds the default ports, across test processes too: an
/// advisory lock the kernel releases when its holder dies, so a killed run never leaves
/// a stale lock behind (a `create_new` lock file would).
fn default_ports_lock() -> nix::fcntl::Flock<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/postern-default-ports.lock")
        .unwrap();
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock /tmp/postern-default-ports.lock")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The README's first command, `postern serve`, with no configuration and no options in
/// an empty directory. The default ports may be taken (or need root), so each must
/// either be listening or be named by a `could not bind` line, never neither or both.
#[test]
fn first_start_with_no_arguments() {
    let _lock = default_ports_lock();
    let cwd = tempfile::tempdir().unwrap();
    // Searchable by the service user the server drops to when run as root (tempdir's
    // mode varies by version); see `root_in_a_private_directory` for the other case.
    std::fs::set_permissions(cwd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = postern();
    cmd.arg("serve").current_dir(cwd.path());
    let mut proc = Proc::spawn(cmd);
    let ready = proc.wait_ready();

    let data = cwd.path().join("postern-data");
    assert!(data.is_dir(), "./postern-data was not created");
    assert_eq!(mode(&data), 0o700);
    assert!(data.join("admin.token").is_file());
    assert_eq!(mode(&data.join("admin.token")), 0o600);
    assert!(data.join("tls").join("cert.pem").is_file());
    let stdout = proc.stdout();
    assert!(
        stdout.contains("at ./postern-data/tls/cert.pem"),
        "{stdout}"
    );
    assert!(
        stdout.contains("created the admin API token in ./postern-data/admin.token"),
        "{stdout}"
    );

    match ready {
        Ok(()) => {
            assert!(
                stdout.contains("\nnext: add a domain and an account:\n"),
                "{stdout}"
            );
            assert!(
                stdout.contains("\n  postern --data ./postern-data domain add example.com\n"),
                "{stdout}"
            );
            let up = listening_lines(&stdout);
            assert!(!up.is_empty());
            for (kind, addr) in DEFAULT_LISTENERS {
                let listening = up.iter().any(|(k, a)| k == kind && a.to_string() == addr);
                let failed = format!("postern: could not bind {kind} on {addr}: ");
                if listening {
                    assert!(
                        !proc.stderr().contains(&failed),
                        "{kind} both bound and failed"
                    );
                } else {
                    assert!(
                        proc.stderr_eventually_has(&failed, PATIENCE),
                        "{kind} {addr} neither listening nor named as failed\nstdout:\n{stdout}\nstderr:\n{}",
                        proc.stderr()
                    );
                }
            }
            if up.iter().any(|(k, _)| k == "admin") {
                let r = http(
                    "127.0.0.1:8008".parse().unwrap(),
                    "GET",
                    "/healthz",
                    &[],
                    b"",
                );
                assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
            }
            // The default grace is 30 s; with no sessions open the drain is immediate.
            let stopped = proc.terminate(Duration::from_secs(30) + PATIENCE);
            assert!(stopped.status.success(), "{stopped:?}");
            assert_eq!(
                stopped.stdout.lines().last(),
                Some("stopped"),
                "{stopped:?}"
            );
        }
        Err(status) => {
            // Every port taken or privileged: each one is named, then the reason.
            assert_eq!(status.code(), Some(1), "stderr:\n{}", proc.stderr());
            let stderr = proc.stderr();
            for (kind, addr) in DEFAULT_LISTENERS {
                assert!(
                    stderr.contains(&format!("postern: could not bind {kind} on {addr}: ")),
                    "{stderr}"
                );
            }
            assert!(stderr.contains("no listener could be bound"), "{stderr}");
        }
    }
}

/// `sudo postern serve` from a directory only root can search (a home directory, /root,
/// a 0700 temporary directory): the server creates `./postern-data` as root, drops to
/// the service user, which cannot traverse the directory above it: serve refuses with a
/// message that says why and what to do, instead of failing later on a file.
#[test]
fn root_in_a_private_directory() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cwd.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let listen: String = KINDS
        .iter()
        .map(|k| format!("{k} = [\"127.0.0.1:0\"]\n"))
        .collect();
    std::fs::write(
        cwd.path().join("postern.toml"),
        format!("hostname = \"{HOSTNAME}\"\ndata_dir = \"./postern-data\"\n[listen]\n{listen}"),
    )
    .unwrap();
    let mut cmd = postern();
    cmd.args(["--config", "postern.toml", "serve"])
        .current_dir(cwd.path());
    let mut proc = Proc::spawn(cmd);
    let status = proc
        .wait_ready()
        .expect_err("the service user cannot reach the data directory: serve must refuse");
    assert!(!status.success());
    // The reader thread may still be draining the pipe after the exit.
    proc.stderr_eventually_has("chmod o+x", Duration::from_secs(5));
    let stderr = proc.stderr();
    assert!(
        stderr.contains("cannot reach the data directory")
            && stderr.contains("--data /var/lib/postern")
            && stderr.contains("chmod o+x"),
        "{stderr}"
    );
}

/// Reads until the peer closes; the bytes as text.
fn greeting(addr: std::net::SocketAddr) -> String {
    text(&read_to_close(&mut connect(addr)))
}

/// An SMTP session that only says QUIT (RFC 5321 §4.1.1.10): the greeting and the
/// closing reply, as text.
fn smtp_quit<S: std::io::Read + std::io::Write>(mut stream: S) -> String {
    stream.write_all(b"QUIT\r\n").unwrap();
    text(&read_to_close(&mut stream))
}

const SMTP_SESSION: &str =
    "220 mail.test.example ESMTP ready\r\n221 2.0.0 mail.test.example closing connection\r\n";

#[test]
fn every_listener_answers_in_its_protocol() {
    let s = Server::start();
    let kinds: Vec<&str> = s.listeners.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds, KINDS,
        "one `listening` line per configured listener, in order"
    );
    for (kind, addr) in &s.listeners {
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{kind} {addr}");
    }

    assert_eq!(smtp_quit(connect(s.addr("smtp"))), SMTP_SESSION);
    assert_eq!(smtp_quit(connect(s.addr("submission"))), SMTP_SESSION);
    imap_logout(connect(s.addr("imap")));

    // Implicit TLS: the handshake succeeds against the self-signed certificate for the
    // configured host name, and the greeting comes inside TLS.
    let tls = tls_connect(s.addr("submissions"), &s.cert_path(), HOSTNAME);
    assert_eq!(smtp_quit(tls), SMTP_SESSION);
    imap_logout(tls_connect(s.addr("imaps"), &s.cert_path(), HOSTNAME));
    // The certificate also names localhost (clients on the same machine).
    imap_logout(tls_connect(s.addr("imaps"), &s.cert_path(), "localhost"));

    for kind in ["http", "admin"] {
        let r = http(s.addr(kind), "GET", "/healthz", &[], b"");
        assert_eq!((r.status, r.text().as_str()), (200, "ok\n"), "{kind}");
    }
    let r = https(s.addr("https"), &s.cert_path(), "GET", "/healthz", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = connect(s.addr("https"));
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(!text(&read_to_close(&mut plain)).contains("200"));
}

/// An IMAP session that only logs out: greeting, BYE, tagged OK, close.
fn imap_logout(mut c: impl Read + Write) {
    c.write_all(b"a LOGOUT\r\n").unwrap();
    let got = text(&read_to_close(&mut c));
    assert!(
        got.starts_with("* OK [CAPABILITY IMAP4rev2 ")
            && got.ends_with("* BYE Logging out\r\na OK LOGOUT completed\r\n"),
        "{got:?}"
    );
}

/// Sends a keep-alive request for /healthz and reads its response, leaving the
/// connection open and idle.
fn keep_alive(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let mut c = connect(addr);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\nok\n") {
        let n = c.read(&mut buf).expect("keep-alive response");
        assert!(n > 0, "closed after one request: {:?}", text(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 "), "{:?}", text(&got));
    c
}

#[test]
fn sigterm_closes_idle_connections_and_exits() {
    let mut s = Server::start();
    let mut idle_admin = keep_alive(s.addr("admin"));
    let mut idle_web = keep_alive(s.addr("http"));
    // Connected, admitted, never sent a byte.
    let mut silent = connect(s.addr("admin"));
    assert_eq!(
        http(s.addr("admin"), "GET", "/healthz", &[], b"").status,
        200
    );

    let stopped = s.stop();
    assert!(stopped.status.success(), "{stopped:?}");
    assert_eq!(stopped.stdout, "stopped");
    // Idle sessions end at once: nobody waits out the grace period for them.
    assert!(
        stopped.elapsed < Duration::from_secs(GRACE_SECS - 1),
        "took {:?} with a {GRACE_SECS} s grace",
        stopped.elapsed
    );
    assert!(
        !s.proc.stderr().contains("after the grace period"),
        "{}",
        s.proc.stderr()
    );
    for c in [&mut idle_admin, &mut idle_web, &mut silent] {
        assert_eq!(
            text(&read_to_close(c)),
            "",
            "the server closed the idle connection"
        );
    }
}

fn ids(status: &str, field: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// Every file below `dir` (and `dir`) with its owner.
fn owners(dir: &Path, out: &mut Vec<(std::path::PathBuf, u32)>) {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    out.push((dir.to_path_buf(), meta.uid()));
    if meta.is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            owners(&e.unwrap().path(), out);
        }
    }
}

#[test]
fn runs_unprivileged_and_owns_its_data() {
    let s = Server::start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let uids = ids(&status, "Uid:");
    let gids = ids(&status, "Gid:");
    let me = nix::unistd::geteuid();
    if me.is_root() {
        let uid = uids[0];
        assert_ne!(uid, 0, "serve still runs as root: {uids:?}");
        assert!(
            uids.iter().all(|&u| u == uid),
            "real/effective/saved/fs uids differ: {uids:?}"
        );
        assert!(
            gids.iter().all(|&g| g == gids[0] && g != 0),
            "gids {gids:?}"
        );
        let groups = ids(&status, "Groups:");
        assert!(
            groups.iter().all(|&g| g == gids[0]),
            "supplementary groups kept: {groups:?}"
        );
        assert!(
            s.proc
                .stdout()
                .contains(&format!("(uid {uid}, gid {})", gids[0])),
            "{}",
            s.proc.stdout()
        );
        // The CLI run as root writes as the data directory's owner, so the server can
        // still read and write everything afterwards.
        s.cli_ok(&["domain", "add", "example.com"], "");
        s.cli_ok(
            &["account", "add", "alice@example.com"],
            "a long password\n",
        );
        let mut all = Vec::new();
        owners(&s.data, &mut all);
        assert!(all.len() >= 5, "{all:?}");
        for (path, owner) in all {
            assert_eq!(owner, uid, "{} is owned by {owner}", path.display());
        }
        let (code, _) = s.api("GET", "/api/v1/accounts/alice@example.com", None);
        assert_eq!(code, 200);
    } else {
        assert!(uids.iter().all(|&u| u == me.as_raw()), "{uids:?}");
        assert!(!s.proc.stdout().contains("running as"));
    }
}

#[test]
fn address_in_use_is_named_and_the_rest_serve() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let s = Server::start_with(&format!("[listen]\nimap = [\"{addr}\"]\n"));
    assert!(
        s.proc.stderr_eventually_has(
            &format!("postern: could not bind imap on {addr}: "),
            PATIENCE
        ),
        "{}",
        s.proc.stderr()
    );
    let kinds: Vec<&str> = s.listeners.iter().map(|(k, _)| k.as_str()).collect();
    let expected: Vec<&str> = KINDS.iter().copied().filter(|k| *k != "imap").collect();
    assert_eq!(kinds, expected);
    assert_eq!(smtp_quit(connect(s.addr("smtp"))), SMTP_SESSION);
    assert_eq!(
        http(s.addr("admin"), "GET", "/healthz", &[], b"").status,
        200
    );
    drop(taken);
}

#[test]
fn connections_per_ip_limit_refuses_the_third() {
    let s = Server::start_with("[limits]\nconnections_per_ip = 2\n");
    // Two admitted, idle connections from 127.0.0.1 (a response proves admission).
    let first = keep_alive(s.addr("http"));
    let _second = keep_alive(s.addr("admin"));

    // SMTP refuses with its own reply and closes.
    assert_eq!(
        greeting(s.addr("smtp")),
        "421 4.7.0 Too many connections; try again later\r\n"
    );
    // HTTP refuses before reading a request: the answer comes unasked.
    assert_eq!(
        greeting(s.addr("http")),
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );

    // A slot freed is a slot available again.
    drop(first);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let raw = http_raw_bytes(
            s.addr("http"),
            &request_bytes(s.addr("http"), "GET", "/healthz", &[], b""),
        );
        // Refused: the 503, or a reset that swallowed it (the request was unread).
        match try_parse_response(&raw) {
            Some(r) if r.status == 200 => break,
            Some(r) => assert_eq!(r.status, 503),
            None => assert_eq!(text(&raw), ""),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never released"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
