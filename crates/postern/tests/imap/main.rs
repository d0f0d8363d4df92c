//! IMAP against the real server over the wire: one file per command (or family), each
//! with OK, NO and BAD cases (mox's style, ../shared/STYLE.md).

mod client;
#[path = "../common/mod.rs"]
mod common;

mod acl;
mod capability;
mod codec;
mod compress;
mod hostile;
mod limits;
mod list;
mod login;
mod mailboxes;
mod misc;
mod smoke;
mod starttls;
mod status;

// Message commands.
mod append;
mod catch_up;
mod condstore;
mod copy_move;
mod expunge;
mod fetch;
mod fixtures;
mod idle;
mod search;
mod select;
mod sort_thread;
mod store;
