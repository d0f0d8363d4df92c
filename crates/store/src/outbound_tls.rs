//! What outbound delivery remembers about receiving domains' TLS: their MTA-STS policies
//! (RFC 8461 §5.1: a policy is cached until its `max_age`, shared by every node and kept
//! across restarts, so a known `enforce` policy cannot be switched off by blocking its
//! fetch) and the counts of TLS outcomes per policy domain and UTC day that the daily
//! SMTP TLS reports (RFC 8460) are made from.

use serde::{Deserialize, Serialize};

/// A cached MTA-STS policy of one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StsPolicyRecord {
    /// Lower-case A-label domain, no trailing dot (the key).
    pub domain: String,
    /// The `id` of the `_mta-sts` TXT record the policy was fetched under.
    pub policy_id: String,
    /// `enforce` or `testing` (`none` is never cached).
    pub mode: String,
    /// The `mx:` patterns, lower-case.
    pub mx: Vec<String>,
    pub max_age_secs: i64,
    /// When it was fetched; it expires `max_age_secs` later.
    pub fetched_ms: i64,
}

impl StsPolicyRecord {
    pub fn expires_ms(&self) -> i64 {
        self.fetched_ms
            .saturating_add(self.max_age_secs.saturating_mul(1000))
    }
}

/// One counter of TLS outcomes (RFC 8460 §4.4): per policy domain, UTC day, applied
/// policy, MX host, result and receiving address. `result_type` is empty for successful
/// sessions; otherwise an RFC 8460 §4.3 result type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsRptCount {
    pub domain: String,
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// `sts`, `tlsa` or `no-policy-found`.
    pub policy_type: String,
    /// The policy as RFC 8460 §4.4 `policy-string` (each line / record).
    pub policy_strings: Vec<String>,
    /// The MX host the session was with ("" when none was reached).
    pub mx_host: String,
    pub result_type: String,
    /// The address connected to ("" when unknown).
    pub receiving_ip: String,
    pub count: u64,
}
