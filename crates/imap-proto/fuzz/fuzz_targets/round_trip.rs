//! decode → encode → decode: every command that parses, re-encoded by the canonical
//! encoder, parses to the same `Command` (and the encoding is a fixed point).
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_imap_proto::encode::encode;
use postern_imap_proto::{Limits, parse_command};

fuzz_target!(|data: &[u8]| {
    // Roomy limits: the canonical form may be longer than the input (quoting, literals).
    let limits = Limits {
        line_length: 1 << 20,
        ..Limits::default()
    };
    let Ok((_, cmd)) = parse_command(data, &limits) else {
        return;
    };
    let enc = encode(&cmd);
    let (n, again) = match parse_command(&enc, &limits) {
        Ok(r) => r,
        Err(e) => panic!(
            "re-encoded {:?} fails: {e:?}\ninput {:?}",
            String::from_utf8_lossy(&enc),
            String::from_utf8_lossy(data)
        ),
    };
    assert_eq!(n, enc.len());
    assert_eq!(
        again,
        cmd,
        "input {:?} encoded {:?}",
        String::from_utf8_lossy(data),
        String::from_utf8_lossy(&enc)
    );
    assert_eq!(encode(&again), enc);
});
