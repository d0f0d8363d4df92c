//! THREATS.md "IMAP bombs": memory stays flat. A counting global allocator records the
//! largest single allocation made while the decoder looks at each bomb; none may be
//! sized by the announced literal length or by the input beyond the line limit. (In its
//! own test binary, with one test, so no other thread allocates meanwhile; the library
//! itself stays `forbid(unsafe_code)`.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use postern_imap_proto::{Limits, ParseError, parse_command};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        TOTAL.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        TOTAL.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `parse_command` and returns (largest single allocation, total bytes allocated).
fn measure(buf: &[u8], limits: &Limits) -> (Result<(), ParseError>, usize, usize) {
    LARGEST.store(0, Ordering::Relaxed);
    TOTAL.store(0, Ordering::Relaxed);
    let r = parse_command(buf, limits).map(|_| ());
    (
        r,
        LARGEST.load(Ordering::Relaxed),
        TOTAL.load(Ordering::Relaxed),
    )
}

#[test]
fn bombs_allocate_nothing_of_their_size() {
    let limits = Limits::default();

    // Synchronising literal bomb before login: no allocation at all.
    let (r, largest, total) = measure(b"a LOGIN {4294967295}\r\n", &limits);
    assert!(
        matches!(
            r,
            Err(ParseError::LiteralNeeded {
                length: 4294967295,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(largest < 256 && total < 1024, "{largest} {total}");

    // Non-synchronising literal bomb: refused, tiny allocations (the error text).
    let (r, largest, _) = measure(b"a LOGIN {4294967295+}\r\n", &limits);
    assert!(matches!(r, Err(ParseError::Failed { .. })), "{r:?}");
    assert!(largest < 256, "{largest}");

    // 64 MiB without CRLF: refused after looking at line_length bytes, nothing copied.
    let big = vec![b'x'; 64 << 20];
    let (r, largest, _) = measure(&big, &limits);
    assert!(matches!(r, Err(ParseError::Failed { .. })), "{r:?}");
    assert!(largest < 256, "{largest}");

    // 100 000 nested parentheses with a line limit that admits them: refused at the
    // nesting limit, allocations bounded by the depth, not the input.
    let wide = Limits {
        line_length: 1 << 20,
        ..Limits::default()
    };
    let mut s = b"a SEARCH ".to_vec();
    s.extend(std::iter::repeat_n(b'(', 100_000));
    s.extend_from_slice(b"ALL");
    s.extend(std::iter::repeat_n(b')', 100_000));
    s.extend_from_slice(b"\r\n");
    let (r, largest, total) = measure(&s, &wide);
    assert!(matches!(r, Err(ParseError::Failed { .. })), "{r:?}");
    assert!(largest < 4096 && total < 64 * 1024, "{largest} {total}");
}
