//! Helpers shared by the integration tests: a small line-echo handler, a server
//! started on 127.0.0.1:0, and a TLS client that trusts our self-signed certificate.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_net::{
    BoxStream, ConnInfo, Handler, Limits, ListenerKind, ListenerSpec, Server, Shutdown, bind_all,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub const GREETING: &[u8] = b"hello\r\n";
pub const BYE: &[u8] = b"bye\r\n";
pub const REFUSAL: &[u8] = b"421 4.7.0 Too many connections\r\n";
/// Generous upper bound for anything that should happen "promptly" on a loaded CI box.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Greets, then echoes whatever it reads. With `obey_shutdown` it says "bye" and ends
/// when shutdown is signalled; without, it ignores the signal (to be aborted).
pub struct EchoHandler {
    pub obey_shutdown: bool,
    pub seen: mpsc::UnboundedSender<ConnInfo>,
}

impl EchoHandler {
    pub fn new(obey_shutdown: bool) -> (Arc<EchoHandler>, mpsc::UnboundedReceiver<ConnInfo>) {
        let (seen, rx) = mpsc::unbounded_channel();
        (
            Arc::new(EchoHandler {
                obey_shutdown,
                seen,
            }),
            rx,
        )
    }
}

impl Handler for EchoHandler {
    fn handle(
        &self,
        mut stream: BoxStream,
        info: ConnInfo,
        mut shutdown: Shutdown,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let obey = self.obey_shutdown;
        let seen = self.seen.clone();
        Box::pin(async move {
            let _ = seen.send(info);
            if stream.write_all(GREETING).await.is_err() {
                return;
            }
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    },
                    () = shutdown.triggered(), if obey => {
                        let _ = stream.write_all(BYE).await;
                        let _ = stream.shutdown().await;
                        return;
                    }
                }
            }
        })
    }

    fn refusal(&self) -> Option<&'static [u8]> {
        Some(REFUSAL)
    }
}

/// Binds `kind` on 127.0.0.1:0 and serves it with `handler` on `server`.
pub fn listen(server: &Arc<Server>, kind: ListenerKind, handler: Arc<dyn Handler>) -> SocketAddr {
    let spec = ListenerSpec {
        kind,
        addr: "127.0.0.1:0".parse().unwrap(),
    };
    let mut report = bind_all(&[spec]);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let bound = report.bound.pop().unwrap();
    let addr = bound.local_addr;
    server.spawn(bound, handler).unwrap();
    addr
}

pub fn server(limits: Limits) -> Arc<Server> {
    Server::new(limits, None)
}

/// Reads exactly `expected.len()` bytes and checks them.
pub async fn expect<S: AsyncRead + Unpin>(stream: &mut S, expected: &[u8]) {
    let mut buf = vec![0u8; expected.len()];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut buf))
        .await
        .expect("timed out waiting for bytes")
        .expect("read failed");
    assert_eq!(
        String::from_utf8_lossy(&buf),
        String::from_utf8_lossy(expected)
    );
}

/// Everything until the peer closes (a reset counts as closed).
pub async fn read_until_closed<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("connection was not closed in time");
        match read {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A connection that got past admission: greeted.
pub async fn connect_greeted(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    expect(&mut stream, GREETING).await;
    stream
}

/// Echo round trip on an admitted connection.
pub async fn ping(stream: &mut TcpStream) {
    stream.write_all(b"ping\r\n").await.unwrap();
    expect(stream, b"ping\r\n").await;
}

/// Polls until `server` reports `n` active connections.
pub async fn wait_active(server: &Server, n: usize) {
    let start = Instant::now();
    while server.active_connections() != n {
        assert!(
            start.elapsed() < PATIENCE,
            "active connections stuck at {}, expected {n}",
            server.active_connections()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A rustls client that trusts exactly the certificate(s) in `cert_path`.
pub fn tls_connector(cert_path: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_path).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}
