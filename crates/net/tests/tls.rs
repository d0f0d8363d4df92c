//! TLS: self-signed material is created once and reused, implicit-TLS listeners hand
//! the handler a finished TLS stream, silent peers are cut off, STARTTLS upgrades, and
//! bad certificate/key configuration is refused with a precise error.

mod common;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use postern_net::tls::{self, TlsMaterial};
use postern_net::{BoxStream, ConnInfo, Handler, Limits, ListenerKind, NetError, Server, Shutdown};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const HOST: &str = "mail.example.test";

fn material(dir: &std::path::Path) -> TlsMaterial {
    tls::load_or_create(dir, HOST, None, None).unwrap()
}

#[test]
fn self_signed_is_created_once_then_reused() {
    let dir = tempfile::tempdir().unwrap();
    let first = material(dir.path());
    assert!(first.created);
    assert!(first.self_signed);
    assert_eq!(first.cert_path, dir.path().join("tls").join("cert.pem"));
    let key_path = dir.path().join("tls").join("key.pem");
    let key_mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600, "key is private");
    let dir_mode = std::fs::metadata(dir.path().join("tls"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "tls directory is private");
    let cert_bytes = std::fs::read(&first.cert_path).unwrap();
    let key_bytes = std::fs::read(&key_path).unwrap();

    let second = material(dir.path());
    assert!(!second.created);
    assert!(second.self_signed);
    assert_eq!(second.cert_path, first.cert_path);
    assert_eq!(std::fs::read(&second.cert_path).unwrap(), cert_bytes);
    assert_eq!(std::fs::read(&key_path).unwrap(), key_bytes);
}

#[test]
fn loosened_key_mode_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    material(dir.path());
    let key_path = dir.path().join("tls").join("key.pem");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!material(dir.path()).created);
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn missing_key_regenerates_the_pair() {
    let dir = tempfile::tempdir().unwrap();
    let first = material(dir.path());
    let old = std::fs::read(&first.cert_path).unwrap();
    std::fs::remove_file(dir.path().join("tls").join("key.pem")).unwrap();
    let second = material(dir.path());
    assert!(second.created);
    assert_ne!(std::fs::read(&second.cert_path).unwrap(), old);
}

#[test]
fn configured_pair_is_loaded() {
    let made = tempfile::tempdir().unwrap();
    let generated = material(made.path());
    let key = made.path().join("tls").join("key.pem");
    let other = tempfile::tempdir().unwrap();
    let loaded =
        tls::load_or_create(other.path(), HOST, Some(&generated.cert_path), Some(&key)).unwrap();
    assert!(!loaded.created);
    assert!(!loaded.self_signed);
    assert_eq!(loaded.cert_path, generated.cert_path);
    assert!(
        !other.path().join("tls").exists(),
        "nothing is generated when a pair is configured"
    );
}

#[test]
fn bad_configuration_is_refused_precisely() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let cert_a = material(a.path()).cert_path;
    let key_a = a.path().join("tls").join("key.pem");
    let key_b = {
        material(b.path());
        b.path().join("tls").join("key.pem")
    };
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path();

    let only_cert = tls::load_or_create(data, HOST, Some(&cert_a), None).unwrap_err();
    assert!(
        matches!(
            only_cert,
            NetError::TlsPathsIncomplete {
                given: "certificate"
            }
        ),
        "{only_cert:?}"
    );
    let only_key = tls::load_or_create(data, HOST, None, Some(&key_a)).unwrap_err();
    assert!(
        matches!(only_key, NetError::TlsPathsIncomplete { given: "key" }),
        "{only_key:?}"
    );

    let mismatch = tls::load_or_create(data, HOST, Some(&cert_a), Some(&key_b)).unwrap_err();
    assert!(matches!(mismatch, NetError::TlsConfig(_)), "{mismatch:?}");

    // Key and certificate swapped: neither file holds what is expected of it.
    let swapped = tls::load_or_create(data, HOST, Some(&key_a), Some(&cert_a)).unwrap_err();
    assert!(
        matches!(swapped, NetError::TlsNoCertificate { .. }),
        "{swapped:?}"
    );
    let no_key = tls::load_or_create(data, HOST, Some(&cert_a), Some(&cert_a)).unwrap_err();
    assert!(
        matches!(no_key, NetError::TlsNoPrivateKey { .. }),
        "{no_key:?}"
    );

    let missing = data.join("absent.pem");
    let absent = tls::load_or_create(data, HOST, Some(&missing), Some(&key_a)).unwrap_err();
    assert!(matches!(absent, NetError::TlsPem { .. }), "{absent:?}");
    assert!(absent.to_string().contains("absent.pem"));
}

#[test]
fn bad_hostname_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = tls::load_or_create(dir.path(), "not a host name", None, None).unwrap_err();
    assert!(matches!(err, NetError::InvalidHostname { .. }), "{err:?}");
    assert!(!dir.path().join("tls").join("key.pem").exists());
}

fn tls_server(limits: Limits, material: &TlsMaterial) -> Arc<Server> {
    Server::new(limits, Some(material.config.clone()))
}

#[tokio::test]
async fn implicit_tls_handshake_then_handler_sees_tls() {
    let dir = tempfile::tempdir().unwrap();
    let material = material(dir.path());
    let server = tls_server(Limits::default(), &material);
    let (handler, mut seen) = EchoHandler::new(true);
    let addr = listen(&server, ListenerKind::Imaps, handler);

    let connector = tls_connector(&material.cert_path);
    for name in ["localhost", HOST] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let server_name = rustls_pki_types::ServerName::try_from(name).unwrap();
        let mut stream = connector.connect(server_name, tcp).await.unwrap();
        expect(&mut stream, GREETING).await;
        stream.write_all(b"over tls\r\n").await.unwrap();
        expect(&mut stream, b"over tls\r\n").await;

        let info = seen.recv().await.unwrap();
        assert!(info.tls);
        assert_eq!(info.kind, ListenerKind::Imaps);
        assert!(info.tls_acceptor.is_none(), "no STARTTLS inside TLS");
    }
}

#[tokio::test]
async fn silent_peer_is_closed_after_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let material = material(dir.path());
    let timeout = Duration::from_millis(300);
    let server = tls_server(
        Limits {
            tls_handshake_timeout: timeout,
            ..Limits::default()
        },
        &material,
    );
    let (handler, mut seen) = EchoHandler::new(true);
    let addr = listen(&server, ListenerKind::Submissions, handler);

    let start = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    wait_active(&server, 1).await;
    let got = read_until_closed(&mut silent).await;
    let waited = start.elapsed();
    assert!(got.is_empty(), "nothing is said before a handshake");
    assert!(
        waited >= timeout - Duration::from_millis(50),
        "closed too early: {waited:?}"
    );
    wait_active(&server, 0).await;
    assert!(seen.try_recv().is_err(), "handler never ran");
}

#[tokio::test]
async fn garbage_instead_of_client_hello_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let material = material(dir.path());
    let server = tls_server(Limits::default(), &material);
    let (handler, mut seen) = EchoHandler::new(true);
    let addr = listen(&server, ListenerKind::Https, handler);
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let reply = read_until_closed(&mut plain).await;
    // rustls may answer with a TLS alert record; never with application data.
    assert!(!reply.starts_with(GREETING));
    wait_active(&server, 0).await;
    assert!(seen.try_recv().is_err(), "handler never ran");
}

#[tokio::test]
async fn implicit_tls_listener_without_material_does_not_start() {
    let server = Server::new(Limits::default(), None);
    let (handler, _seen) = EchoHandler::new(true);
    for kind in [
        ListenerKind::Submissions,
        ListenerKind::Imaps,
        ListenerKind::Https,
    ] {
        let mut report = postern_net::bind_all(&[postern_net::ListenerSpec {
            kind,
            addr: "127.0.0.1:0".parse().unwrap(),
        }]);
        let bound = report.bound.pop().unwrap();
        let err = server.spawn(bound, handler.clone()).unwrap_err();
        assert!(
            matches!(err, NetError::TlsNotConfigured { listener } if listener == kind.name()),
            "{err:?}"
        );
    }
}

/// Speaks a tiny STARTTLS dialogue: "ready", then on "STARTTLS" answers "go",
/// upgrades and says "secure" over TLS.
struct StartTls {
    seen: tokio::sync::mpsc::UnboundedSender<bool>,
}

impl Handler for StartTls {
    fn handle(
        &self,
        mut stream: BoxStream,
        info: ConnInfo,
        _shutdown: Shutdown,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let seen = self.seen.clone();
        Box::pin(async move {
            let _ = seen.send(info.tls);
            let Some(acceptor) = info.tls_acceptor.clone() else {
                let _ = stream.write_all(b"no tls\r\n").await;
                return;
            };
            if stream.write_all(b"ready\r\n").await.is_err() {
                return;
            }
            // Read the command byte by byte so nothing after it is buffered: what the
            // client sends after STARTTLS belongs to the TLS layer.
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while !line.ends_with(b"\r\n") {
                match tokio::io::AsyncReadExt::read(&mut stream, &mut byte).await {
                    Ok(1) => line.push(byte[0]),
                    _ => return,
                }
            }
            if line != b"STARTTLS\r\n" || stream.write_all(b"go\r\n").await.is_err() {
                return;
            }
            let Ok(mut secure) = tls::starttls(stream, &acceptor, Duration::from_secs(5)).await
            else {
                return;
            };
            let _ = secure.write_all(b"secure\r\n").await;
            let _ = secure.shutdown().await;
        })
    }
}

#[tokio::test]
async fn starttls_upgrades_a_plain_connection() {
    let dir = tempfile::tempdir().unwrap();
    let material = material(dir.path());
    let server = tls_server(Limits::default(), &material);
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let addr = listen(
        &server,
        ListenerKind::Submission,
        Arc::new(StartTls { seen: seen_tx }),
    );

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    expect(&mut tcp, b"ready\r\n").await;
    tcp.write_all(b"STARTTLS\r\n").await.unwrap();
    expect(&mut tcp, b"go\r\n").await;
    let tls = tls_connector(&material.cert_path)
        .connect(localhost(), tcp)
        .await
        .unwrap();
    let mut lines = BufReader::new(tls).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("secure"));
    assert_eq!(seen.recv().await, Some(false), "started in plaintext");
}

#[tokio::test]
async fn starttls_handshake_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let material = material(dir.path());
    let acceptor = tokio_rustls::TlsAcceptor::from(material.config.clone());
    let (_client, server_side) = tokio::io::duplex(1024);
    let err = tls::starttls(Box::new(server_side), &acceptor, Duration::from_millis(100))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, NetError::TlsHandshakeTimeout), "{err:?}");
}
