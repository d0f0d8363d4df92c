//! Graceful shutdown: handlers are told, cooperative ones finish, the rest are aborted
//! after the grace period, and nothing is accepted afterwards.

mod common;

use std::time::{Duration, Instant};

use common::*;
use postern_net::{Limits, ListenerKind, ListenerSpec, NetError, bind_all};
use tokio::net::TcpStream;

#[tokio::test]
async fn cooperative_handler_finishes_and_stubborn_one_is_aborted() {
    let server = server(Limits::default());
    let (polite, _) = EchoHandler::new(true);
    let (stubborn, _) = EchoHandler::new(false);
    let smtp = listen(&server, ListenerKind::Smtp, polite);
    let imap = listen(&server, ListenerKind::Imap, stubborn);

    let mut leaves = connect_greeted(smtp).await;
    let mut stays = connect_greeted(imap).await;
    assert_eq!(server.active_connections(), 2);

    let grace = Duration::from_millis(500);
    let start = Instant::now();
    let aborted = server.shutdown(grace).await;
    assert_eq!(aborted, 1);
    assert!(start.elapsed() >= grace, "waited out the grace period");

    // The polite one said goodbye in protocol terms; the other was simply cut.
    assert_eq!(read_until_closed(&mut leaves).await, BYE);
    assert!(read_until_closed(&mut stays).await.is_empty());
    wait_active(&server, 0).await;

    // Nothing accepts any more.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for addr in [smtp, imap] {
        if let Ok(mut late) = TcpStream::connect(addr).await {
            assert!(read_until_closed(&mut late).await.is_empty());
        }
    }
}

#[tokio::test]
async fn shutdown_returns_early_when_everyone_leaves() {
    let server = server(Limits::default());
    let (polite, _) = EchoHandler::new(true);
    let addr = listen(&server, ListenerKind::Submission, polite);
    let mut client = connect_greeted(addr).await;

    let start = Instant::now();
    assert_eq!(server.shutdown(Duration::from_secs(30)).await, 0);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(read_until_closed(&mut client).await, BYE);
    assert_eq!(server.active_connections(), 0);
}

#[tokio::test]
async fn spawn_after_shutdown_is_refused() {
    let server = server(Limits::default());
    assert_eq!(server.shutdown(Duration::from_millis(10)).await, 0);
    let mut report = bind_all(&[ListenerSpec {
        kind: ListenerKind::Imap,
        addr: "127.0.0.1:0".parse().unwrap(),
    }]);
    let (handler, _) = EchoHandler::new(true);
    let err = server
        .spawn(report.bound.pop().unwrap(), handler)
        .unwrap_err();
    assert!(matches!(err, NetError::ShuttingDown), "{err:?}");
}

#[test]
fn spawn_outside_a_runtime_is_refused() {
    let server = server(Limits::default());
    let mut report = bind_all(&[ListenerSpec {
        kind: ListenerKind::Imap,
        addr: "127.0.0.1:0".parse().unwrap(),
    }]);
    let (handler, _) = EchoHandler::new(true);
    let err = server
        .spawn(report.bound.pop().unwrap(), handler)
        .unwrap_err();
    assert!(matches!(err, NetError::NoRuntime), "{err:?}");
}
