//! `parse_command` on any bytes, under several `Limits`: must not panic, and the
//! Incomplete / LiteralNeeded / Failed answers must be consistent as bytes are appended
//! (lib.rs **Invariants**).
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_imap_proto::{Limits, ParseError, parse_command};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let default = Limits::default();
    for limits in common::presets() {
        let full = parse_command(data, &limits);
        match &full {
            Ok((n, cmd)) => {
                // Used bytes end in CRLF and lie inside the buffer.
                assert!(*n >= 2 && *n <= data.len());
                assert_eq!(&data[n - 2..*n], b"\r\n");
                // Only the used bytes matter: trailing bytes change nothing.
                assert_eq!(parse_command(&data[..*n], &limits), full);
                // Limits only refuse: what parses under tighter limits parses the same
                // under the defaults.
                assert_eq!(
                    parse_command(data, &default).as_ref().map(|(_, c)| c),
                    Ok(cmd)
                );
                // Every proper prefix of a valid command is "wait for more", never Failed.
                for k in common::cuts(*n, data) {
                    let r = parse_command(&data[..k], &limits);
                    assert!(common::is_wait(&r), "prefix {k} of {n}: {r:?}");
                }
            }
            Err(ParseError::Failed { .. }) => {}
            Err(ParseError::Incomplete) | Err(ParseError::LiteralNeeded { .. }) => {
                // Asking again without new bytes gives the same answer.
                assert_eq!(parse_command(data, &limits), full);
            }
        }
        // Appending bytes never changes a final answer: an answer for a prefix that is
        // Ok or Failed must be the answer for the whole input.
        for k in common::cuts(data.len(), data) {
            let r = parse_command(&data[..k], &limits);
            match &r {
                Ok(_) => assert_eq!(r, full, "prefix {k} parsed but the whole differs"),
                Err(ParseError::Failed { .. }) => {
                    assert!(
                        matches!(full, Err(ParseError::Failed { .. })),
                        "prefix {k} failed ({r:?}) but the whole gave {full:?}"
                    );
                }
                _ => {}
            }
        }
    }
});
