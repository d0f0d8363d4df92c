//! Outbound mail: the SMTP client, routing (MX, null MX, DANE), TLS policies, DKIM signing
//! and delivery status notifications, and the queue runner that drives them. The queue
//! itself lives in the store, reached through `core`; this crate holds no state of its own.
#![forbid(unsafe_code)]

pub mod client;
pub mod dkim;
pub mod dns;
pub mod dsn;
pub mod egress;
pub mod mtasts;
pub mod route;
pub mod runner;
#[cfg(test)]
mod testdns;
pub mod tls;
pub mod tlsrpt;
