//! IMAP against the real server over the wire: one file per command (or family), each
//! with OK, NO and BAD cases (mox's style, ../shared/STYLE.md).

mod client;
#[path = "../common/mod.rs"]
mod common;

mod limits;
mod smoke;
