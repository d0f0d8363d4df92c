//! Shared by the targets: the `Limits` presets and the prefix-consistency check.

use postern_imap_proto::{Limits, ParseError};

/// Limits settings the targets run under: the defaults, and each limit small enough that
/// short fuzz inputs reach it (line length, literal size, nesting, item count, LITERAL-).
pub fn presets() -> [Limits; 5] {
    let d = Limits::default();
    [
        d.clone(),
        Limits {
            line_length: 48,
            literal_size: 16,
            ..d.clone()
        },
        Limits {
            nesting_depth: 3,
            max_items: 3,
            ..d.clone()
        },
        Limits {
            literal_plus: false,
            literal_size: 5000,
            ..d.clone()
        },
        Limits {
            line_length: 7,
            literal_size: 0,
            nesting_depth: 0,
            max_items: 1,
            literal_plus: false,
        },
    ]
}

/// Cut points to re-parse at: every one for short inputs, otherwise 64 spread over the
/// input plus the bytes around every LF (where framing decides).
pub fn cuts(len: usize, data: &[u8]) -> Vec<usize> {
    if len <= 96 {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = (0..64).map(|i| i * len / 64).collect();
    for (i, b) in data[..len].iter().enumerate() {
        if *b == b'\n' {
            v.extend([i.saturating_sub(1), i, i + 1]);
        }
        if v.len() > 512 {
            break;
        }
    }
    v.retain(|k| *k < len);
    v
}

/// "More bytes could make this valid": the only answers a prefix of a valid input may get.
// Not used by idle_auth, which has no literals.
#[allow(dead_code)]
pub fn is_wait(r: &Result<impl Sized, ParseError>) -> bool {
    matches!(
        r,
        Err(ParseError::Incomplete) | Err(ParseError::LiteralNeeded { .. })
    )
}
