//! Connection limits: the refusal is written and the connection closed, while admitted
//! connections keep working and slots come back when connections end.

mod common;

use std::net::SocketAddr;

use common::*;
use postern_net::{Limits, ListenerKind};
use tokio::net::{TcpSocket, TcpStream};

/// Connects from a chosen loopback source address (Linux routes all of 127/8 to lo).
async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn per_ip_limit_refuses_with_bytes_and_spares_others() {
    let server = server(Limits {
        connections_per_ip: 2,
        max_connections: 100,
        ..Limits::default()
    });
    let (handler, _seen) = EchoHandler::new(true);
    let addr = listen(&server, ListenerKind::Smtp, handler);

    let mut first = connect_greeted(addr).await;
    let mut second = connect_greeted(addr).await;

    let mut third = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_until_closed(&mut third).await, REFUSAL);

    // The admitted ones are untouched.
    ping(&mut first).await;
    ping(&mut second).await;

    // Another address is counted separately.
    let mut elsewhere = connect_from("127.0.0.2", addr).await;
    expect(&mut elsewhere, GREETING).await;
    ping(&mut elsewhere).await;
    assert_eq!(server.active_connections(), 3);

    // A slot comes back when a connection ends.
    drop(first);
    wait_active(&server, 2).await;
    let mut again = connect_greeted(addr).await;
    ping(&mut again).await;
    ping(&mut second).await;
}

#[tokio::test]
async fn max_connections_refuses_but_admin_stays_reachable() {
    let server = server(Limits {
        max_connections: 2,
        connections_per_ip: 100,
        ..Limits::default()
    });
    let (handler, _seen) = EchoHandler::new(true);
    let imap = listen(&server, ListenerKind::Imap, handler.clone());
    let smtp = listen(&server, ListenerKind::Smtp, handler.clone());
    let admin = listen(&server, ListenerKind::Admin, handler);

    let mut a = connect_greeted(imap).await;
    let mut b = connect_greeted(smtp).await;

    // The limit is across listeners.
    for addr in [imap, smtp] {
        let mut refused = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_until_closed(&mut refused).await, REFUSAL);
    }

    // The admin listener is exempt from the total, so an operator can still get in.
    let mut operator = connect_greeted(admin).await;
    ping(&mut operator).await;
    assert_eq!(server.active_connections(), 3);

    ping(&mut a).await;
    drop(b);
    wait_active(&server, 2).await;
    b = connect_greeted(smtp).await;
    ping(&mut b).await;
}

#[tokio::test]
async fn refusal_without_bytes_just_closes() {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    use postern_net::{BoxStream, ConnInfo, Handler, Shutdown};
    use tokio::io::AsyncWriteExt;

    /// Greets and holds the connection; no refusal text.
    struct Quiet;
    impl Handler for Quiet {
        fn handle(
            &self,
            mut stream: BoxStream,
            _info: ConnInfo,
            mut shutdown: Shutdown,
        ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
            Box::pin(async move {
                let _ = stream.write_all(GREETING).await;
                shutdown.triggered().await;
            })
        }
    }

    let server = server(Limits {
        max_connections: 1,
        ..Limits::default()
    });
    let addr = listen(&server, ListenerKind::Http, Arc::new(Quiet));
    let _held = connect_greeted(addr).await;
    let mut refused = TcpStream::connect(addr).await.unwrap();
    assert!(read_until_closed(&mut refused).await.is_empty());
    assert_eq!(server.shutdown(PATIENCE).await, 0);
}

#[tokio::test]
async fn handler_sees_connection_info() {
    let server = server(Limits::default());
    let (handler, mut seen) = EchoHandler::new(true);
    let addr = listen(&server, ListenerKind::Submission, handler);
    let client = connect_greeted(addr).await;
    let info = seen.recv().await.unwrap();
    assert_eq!(info.kind, ListenerKind::Submission);
    assert_eq!(info.local, addr);
    assert_eq!(info.remote, client.local_addr().unwrap());
    assert!(!info.tls);
    assert!(info.tls_acceptor.is_none(), "no TLS material, no STARTTLS");

    let _second = connect_greeted(addr).await;
    let next = seen.recv().await.unwrap();
    assert_ne!(next.id, info.id, "session ids are unique");
}

#[tokio::test]
async fn panicking_handler_releases_its_slot() {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    use postern_net::{BoxStream, ConnInfo, Handler, Shutdown};

    struct Panics;
    impl Handler for Panics {
        fn handle(
            &self,
            _stream: BoxStream,
            _info: ConnInfo,
            _shutdown: Shutdown,
        ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
            Box::pin(async { panic!("handler bug (expected by this test)") })
        }
    }

    let server = server(Limits {
        max_connections: 1,
        connections_per_ip: 1,
        ..Limits::default()
    });
    let addr = listen(&server, ListenerKind::Smtp, Arc::new(Panics));
    // Each connection is admitted (slot free again after the panic) and closed.
    for _ in 0..3 {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        assert!(read_until_closed(&mut conn).await.is_empty());
        wait_active(&server, 0).await;
    }
}
