//! `parse_idle_done` and `parse_auth_response` on any bytes under several `Limits`: no
//! panic, consistent answers as bytes are appended, and AUTHENTICATE data that survives
//! base64 re-encoding.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use postern_imap_proto::{AuthResponse, ParseError, parse_auth_response, parse_idle_done};

#[path = "common.rs"]
mod common;

/// Ok or Failed for a prefix must stay the answer for the whole input; a prefix of
/// the bytes an Ok answer used must be Incomplete.
fn consistent<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    used: Option<usize>,
    full: &Result<T, ParseError>,
    f: impl Fn(&[u8]) -> Result<T, ParseError>,
) {
    for k in common::cuts(data.len(), data) {
        let r = f(&data[..k]);
        match &r {
            Ok(_) => assert_eq!(&r, full),
            Err(ParseError::Failed { .. }) => {
                assert!(matches!(full, Err(ParseError::Failed { .. })))
            }
            Err(ParseError::LiteralNeeded { .. }) => panic!("no literals in a continuation"),
            Err(ParseError::Incomplete) => {}
        }
        if let Some(n) = used
            && k < n
        {
            assert_eq!(r, Err(ParseError::Incomplete), "prefix {k} of {n}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for limits in common::presets() {
        let done = parse_idle_done(data, &limits);
        if let Ok(n) = done {
            assert!(n >= 6 && n <= data.len());
            assert!(data[..n].eq_ignore_ascii_case(b"DONE\r\n"));
        }
        let used = done.as_ref().ok().copied();
        consistent(data, used, &done, |b| parse_idle_done(b, &limits));

        let auth = parse_auth_response(data, &limits);
        let used = auth.as_ref().ok().map(|(n, _)| *n);
        if let Ok((n, resp)) = &auth {
            assert!(*n >= 2 && *n <= data.len());
            assert_eq!(&data[n - 2..*n], b"\r\n");
            match resp {
                AuthResponse::Cancel => assert_eq!(&data[..*n], b"*\r\n"),
                AuthResponse::Data(d) => {
                    // Re-encoded canonically, the same bytes come back.
                    let line = format!(
                        "{}\r\n",
                        base64::engine::general_purpose::STANDARD.encode(d.expose())
                    );
                    match parse_auth_response(line.as_bytes(), &limits) {
                        Ok((m, AuthResponse::Data(again))) => {
                            assert_eq!(m, line.len());
                            assert_eq!(again.expose(), d.expose());
                        }
                        // Canonical base64 is longer than the input only if the input
                        // was not canonical; a small line limit may then refuse it.
                        Err(ParseError::Failed { .. }) if line.len() > limits.line_length => {}
                        r => panic!("re-encoded {line:?}: {r:?}"),
                    }
                }
            }
        }
        consistent(data, used, &auth, |b| parse_auth_response(b, &limits));
    }
});
