//! Records of the outbound queue and of the DKIM signing keys.
//!
//! A queued message is a blob (the message as it will be sent, DKIM signature included)
//! plus its envelope; each recipient has its own state, attempt count and next attempt
//! time. A node works on a recipient only while it holds its lease (`ClaimQueued`), so two
//! nodes on one database never deliver the same recipient at the same time; a node that
//! dies loses its leases when they expire and another node takes over.

use serde::{Deserialize, Serialize};

use crate::model::{BlobRef, DomainId, PrincipalId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueId(pub i64);

impl QueueId {
    pub fn random() -> QueueId {
        QueueId(crate::random_id())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    pub id: QueueId,
    pub blob: BlobRef,
    /// The reverse-path without brackets; "" for `<>` (DSNs).
    pub sender: String,
    /// The account that submitted it; `None` for mail the server made (DSNs).
    pub account: Option<PrincipalId>,
    /// RFC 3461 ENVID (xtext) and RET (`FULL`/`HDRS`).
    pub envid: Option<String>,
    pub ret: Option<String>,
    pub requiretls: bool,
    pub smtputf8: bool,
    pub eight_bit: bool,
    pub created_ms: i64,
    /// Past this time a recipient still queued fails with a DSN.
    pub expires_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecipientState {
    Queued,
    Delivered,
    Failed,
}

impl RecipientState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Queued => "queued",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RecipientState> {
        match s {
            "queued" => Some(RecipientState::Queued),
            "delivered" => Some(RecipientState::Delivered),
            "failed" => Some(RecipientState::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRecipient {
    pub message: QueueId,
    /// Position in the envelope, 0-based; with `message` the key.
    pub idx: u32,
    pub address: String,
    /// Lower-cased domain part (the routing key).
    pub domain: String,
    /// RFC 3461 ORCPT (`addr-type;xtext`) and NOTIFY as given.
    pub orcpt: Option<String>,
    pub notify: Option<String>,
    pub state: RecipientState,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    /// RFC 3463 status and text of the last attempt.
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub remote_host: Option<String>,
    /// A delay DSN was sent for it.
    pub delay_notified: bool,
    /// The node holding it and until when (`ClaimQueued`); empty when free.
    pub lease_owner: Option<String>,
    pub lease_until_ms: i64,
}

/// The outcome of an attempt for one recipient; releases its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUpdate {
    pub message: QueueId,
    pub idx: u32,
    pub state: RecipientState,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub remote_host: Option<String>,
    pub delay_notified: bool,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimKeyRecord {
    pub domain: DomainId,
    pub selector: String,
    /// `ed25519` or `rsa`.
    pub algorithm: String,
    /// PKCS#8 DER. A secret: never logged, never returned by the admin API.
    pub private_der: Vec<u8>,
    pub created_ms: i64,
}

impl std::fmt::Debug for DkimKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKeyRecord")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

/// Counts for metrics and `postern queue list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub messages: u64,
    /// Recipients still to deliver.
    pub queued_recipients: u64,
    pub oldest_created_ms: Option<i64>,
    /// The earliest `next_attempt_ms` of a queued recipient.
    pub next_due_ms: Option<i64>,
}

impl std::fmt::Display for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl QueueId {
    /// Parses the hex form `Display` prints.
    pub fn parse(s: &str) -> Option<QueueId> {
        u64::from_str_radix(s, 16)
            .ok()
            .and_then(|v| i64::try_from(v).ok())
            .filter(|v| *v > 0)
            .map(QueueId)
    }
}
