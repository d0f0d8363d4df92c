//! Binding: every spec is tried, failures are reported per spec with a readable reason.

use std::io::ErrorKind;

use postern_net::{ListenerKind, ListenerSpec, bind_all};

fn spec(kind: ListenerKind, addr: &str) -> ListenerSpec {
    ListenerSpec {
        kind,
        addr: addr.parse().unwrap(),
    }
}

#[test]
fn address_in_use_is_reported_by_name_and_others_still_bind() {
    let first = bind_all(&[spec(ListenerKind::Smtp, "127.0.0.1:0")]);
    assert!(first.failed.is_empty());
    let taken = first.bound[0].local_addr;
    assert_eq!(first.bound[0].spec.kind, ListenerKind::Smtp);
    assert_ne!(taken.port(), 0, "local_addr carries the real port");

    let second = bind_all(&[
        spec(ListenerKind::Imap, "127.0.0.1:0"),
        ListenerSpec {
            kind: ListenerKind::Submission,
            addr: taken,
        },
    ]);
    assert_eq!(second.bound.len(), 1, "the free address still binds");
    assert_eq!(second.bound[0].spec.kind, ListenerKind::Imap);
    assert_eq!(second.failed.len(), 1);
    let failure = &second.failed[0];
    assert_eq!(failure.spec.addr, taken);
    assert_eq!(failure.spec.kind, ListenerKind::Submission);
    assert_eq!(failure.reason, "address already in use");
    assert_eq!(failure.error_kind, ErrorKind::AddrInUse);
    let shown = failure.to_string();
    assert!(shown.contains(&taken.to_string()), "{shown}");
    assert!(shown.contains("submission"), "{shown}");
}

#[test]
fn unavailable_address_is_reported() {
    // 192.0.2.0/24 is TEST-NET-1: no interface has it.
    let report = bind_all(&[spec(ListenerKind::Admin, "192.0.2.1:0")]);
    assert!(report.bound.is_empty());
    assert_eq!(report.failed[0].error_kind, ErrorKind::AddrNotAvailable);
    assert!(report.failed[0].reason.starts_with("address not available"));
}

#[test]
fn ipv6_listener_is_v6_only() {
    let report = bind_all(&[spec(ListenerKind::Imap, "[::1]:0")]);
    let Some(bound) = report.bound.into_iter().next() else {
        eprintln!("skipped: no IPv6 loopback here ({:?})", report.failed);
        return;
    };
    let std_listener = bound.into_std();
    assert!(socket2::SockRef::from(&std_listener).only_v6().unwrap());
}

#[test]
fn bound_listener_is_nonblocking_and_accepts() {
    let report = bind_all(&[spec(ListenerKind::Http, "127.0.0.1:0")]);
    let bound = report.bound.into_iter().next().unwrap();
    let addr = bound.local_addr;
    let listener = bound.into_std();
    // Non-blocking: nothing pending yet, so accept must not hang.
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    let _client = std::net::TcpStream::connect(addr).unwrap();
    let start = std::time::Instant::now();
    loop {
        match listener.accept() {
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(start.elapsed().as_secs() < 10);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
}
