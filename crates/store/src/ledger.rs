//! The hash chain of the access ledger. Each entry's hash covers its sequence number,
//! the previous entry's hash and the record's canonical JSON, so changing, removing or
//! reordering any stored entry breaks the chain at that entry.

use crate::model::{LedgerEntry, LedgerRecord};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Canonical bytes of a record: serde_json of a struct keeps field order, and
/// `serde_json::Value` objects are sorted maps, so the bytes are stable.
pub fn canonical(record: &LedgerRecord) -> Vec<u8> {
    // Serialising a plain struct of strings, numbers and JSON values cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

pub fn entry_hash(seq: u64, prev_hash: &str, record_json: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"postern-ledger-v1\0");
    h.update(seq.to_be_bytes());
    h.update(prev_hash.as_bytes());
    h.update(b"\0");
    h.update(record_json);
    hex::encode(h.finalize())
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: u64,
    pub reason: String,
}

/// Walks entries in order, carrying the state between pages.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: u64,
    prev_hash: String,
    pub checked: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS.to_string(),
            checked: 0,
        }
    }
}

impl ChainVerifier {
    /// The last entry checked: (seq, hash). An operator who keeps this elsewhere can
    /// later detect truncation or a rewritten tail, which a chain alone cannot show.
    pub fn head(&self) -> Option<(u64, String)> {
        (self.checked > 0).then(|| (self.expected_seq - 1, self.prev_hash.clone()))
    }

    /// Checks one entry. `stored_json` is the record exactly as stored (re-serialising
    /// a decoded record could hide a change that decodes to the same value).
    pub fn check(&mut self, entry: &LedgerEntry, stored_json: &[u8]) -> Result<(), ChainBreak> {
        let fail = |reason: String| ChainBreak {
            seq: entry.seq,
            reason,
        };
        if entry.seq != self.expected_seq {
            return Err(fail(format!(
                "sequence {} where {} was expected (an entry is missing or out of order)",
                entry.seq, self.expected_seq
            )));
        }
        if entry.prev_hash != self.prev_hash {
            return Err(fail("prev_hash does not match the entry before".into()));
        }
        let actual = entry_hash(entry.seq, &entry.prev_hash, stored_json);
        if actual != entry.hash {
            return Err(fail(
                "content does not match its hash (entry was altered)".into(),
            ));
        }
        self.expected_seq += 1;
        self.prev_hash = entry.hash.clone();
        self.checked += 1;
        Ok(())
    }
}
