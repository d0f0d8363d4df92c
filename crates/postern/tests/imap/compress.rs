//! COMPRESS=DEFLATE (RFC 4978): raw deflate both ways after the tagged OK.

use super::capability::AUTHED;
use super::client::*;

#[test]
fn compress_then_commands_both_ways() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    let r = c.cmd("COMPRESS DEFLATE");
    r.ok();
    assert_eq!(r.text, "DEFLATE active");
    let mut c = c.start_deflate();
    // No COMPRESS=DEFLATE any more (RFC 4978 §3).
    let r = c.cmd("CAPABILITY");
    r.ok();
    assert_eq!(
        r.untagged,
        [format!(
            "* CAPABILITY {}",
            AUTHED.replace(" COMPRESS=DEFLATE", "")
        )]
    );
    // A large message up, and back down.
    let mut msg = b"Subject: big\r\n\r\n".to_vec();
    for i in 0..20_000 {
        msg.extend_from_slice(format!("line {i} of a compressible body\r\n").as_bytes());
    }
    c.append("INBOX", "", &msg).ok();
    c.cmd("SELECT INBOX").ok();
    let r = c.cmd("FETCH 1 BODY.PEEK[]");
    r.ok();
    let f = r.lines("* 1 FETCH");
    assert_eq!(f.len(), 1);
    let expect = format!("* 1 FETCH (BODY[] {{{}}}\r\n", msg.len());
    assert!(f[0].starts_with(&expect), "{}", &f[0][..80]);
    assert!(f[0].contains(std::str::from_utf8(&msg).unwrap()));
    // Several commands in one compressed write.
    c.send_raw(b"p1 NOOP\r\np2 NOOP\r\np3 STATUS INBOX (MESSAGES)\r\n");
    assert_eq!(c.read_until_tagged("p1").text, "NOOP completed");
    assert_eq!(c.read_until_tagged("p2").text, "NOOP completed");
    let r = c.read_until_tagged("p3");
    assert_eq!(r.untagged, ["* STATUS INBOX (MESSAGES 1)"]);
    // Twice: NO (RFC 4978 §3).
    let r = c.cmd("COMPRESS DEFLATE");
    r.no();
    assert_eq!(r.text, "[COMPRESSIONACTIVE] Already compressing");
    let r = c.cmd("LOGOUT");
    r.ok();
    assert_eq!(r.untagged, ["* BYE Logging out"]);
}

#[test]
fn compress_bad_and_before_login() {
    let env = Env::start();
    let mut c = env.connect();
    let r = c.cmd("COMPRESS DEFLATE");
    r.bad();
    assert_eq!(r.text, "Command not valid before authentication");
    c.login(ALICE.0, ALICE.1);
    let r = c.cmd("COMPRESS GZIP");
    r.bad();
    assert_eq!(r.text, "Unknown compression algorithm");
    c.cmd("COMPRESS").bad();
    // Still uncompressed: plain text works.
    c.cmd("NOOP").ok();
}

#[test]
fn compress_over_tls() {
    let env = Env::start();
    let mut c = Client::connect_tls(env.server.addr("imaps"), &env.server.cert_path());
    c.login(ALICE.0, ALICE.1);
    c.cmd("COMPRESS DEFLATE").ok();
    let mut c = c.start_deflate();
    c.append("INBOX", "", b"Subject: t\r\n\r\nover tls\r\n")
        .ok();
    let r = c.cmd("STATUS INBOX (MESSAGES)");
    assert_eq!(r.untagged, ["* STATUS INBOX (MESSAGES 1)"]);
}

#[test]
fn commands_pipelined_behind_compress_are_inflated() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    // COMPRESS and, in the same write, two commands already compressed (RFC 4978 §3:
    // compression starts right after the CRLF of COMPRESS).
    let mut comp = flate2::Compress::new(flate2::Compression::default(), false);
    let mut z = Vec::with_capacity(1024);
    comp.compress_vec(
        b"p1 NOOP\r\np2 STATUS INBOX (MESSAGES)\r\n",
        &mut z,
        flate2::FlushCompress::Sync,
    )
    .unwrap();
    let mut bytes = b"z COMPRESS DEFLATE\r\n".to_vec();
    bytes.extend_from_slice(&z);
    c.send_raw(&bytes);
    assert_eq!(c.read_response_line(), "z OK DEFLATE active");
    let mut c = c.start_deflate_with(comp);
    assert_eq!(c.read_until_tagged("p1").text, "NOOP completed");
    let r = c.read_until_tagged("p2");
    r.ok();
    assert_eq!(r.untagged, ["* STATUS INBOX (MESSAGES 0)"]);
    c.cmd("NOOP").ok();
}

#[test]
fn garbage_instead_of_deflate_closes_the_connection() {
    let env = Env::start();
    let mut c = env.login(ALICE);
    c.cmd("COMPRESS DEFLATE").ok();
    // Not a deflate stream (a reserved block type): the server cannot go on.
    c.send_raw(&[0xff; 64]);
    assert!(c.closed());
}
