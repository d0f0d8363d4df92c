//! Cached MTA-STS policies and TLS report counters in PostgreSQL. Counters from several
//! nodes add up in one row (`ON CONFLICT DO UPDATE`); a report is claimed with an upsert
//! whose condition PostgreSQL re-checks on the locked row, so two nodes claiming at once
//! never both get the same (domain, day).

use postern_store::ops::TLSRPT_SENT_KEEP_MS;
use postern_store::*;
use tokio_postgres::Row;

use crate::apply::{Batch, WResult};
use crate::rows::{col, u64_of};

fn json_list(v: &[String]) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn list_of(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

impl Batch<'_, '_> {
    pub(crate) async fn apply_outbound_tls(&mut self, op: &Op) -> WResult<OpResult> {
        match op {
            Op::PutStsPolicy(p) => {
                self.exec(
                    "INSERT INTO mta_sts_policies (domain, policy_id, mode, mx, max_age_secs, fetched_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id,
                       mode = excluded.mode, mx = excluded.mx,
                       max_age_secs = excluded.max_age_secs, fetched_ms = excluded.fetched_ms",
                    &[
                        &p.domain,
                        &p.policy_id,
                        &p.mode,
                        &json_list(&p.mx)?,
                        &p.max_age_secs,
                        &p.fetched_ms,
                    ],
                )
                .await?;
                Ok(OpResult::Done)
            }
            Op::RemoveStsPolicy(domain) => {
                self.exec("DELETE FROM mta_sts_policies WHERE domain = $1", &[domain])
                    .await?;
                Ok(OpResult::Done)
            }
            Op::AddTlsRpt(counts) => {
                for n in counts {
                    let count = i64::try_from(n.count).unwrap_or(i64::MAX);
                    self.exec(
                        "INSERT INTO tlsrpt_counts (domain, day, policy_type, policy_strings,
                           mx_host, result_type, receiving_ip, count)
                         SELECT $1, $2, $3, $4, $5, $6, $7, $8
                          WHERE NOT EXISTS (SELECT 1 FROM tlsrpt_reports
                                  WHERE domain = $1 AND day = $2 AND sent_ms IS NOT NULL)
                         ON CONFLICT (domain, day, policy_type, policy_strings, mx_host,
                           result_type, receiving_ip)
                         DO UPDATE SET count = tlsrpt_counts.count + excluded.count",
                        &[
                            &n.domain,
                            &n.day,
                            &n.policy_type,
                            &json_list(&n.policy_strings)?,
                            &n.mx_host,
                            &n.result_type,
                            &n.receiving_ip,
                            &count,
                        ],
                    )
                    .await?;
                }
                Ok(OpResult::Done)
            }
            Op::ClaimTlsRpt {
                owner,
                before_day,
                now_ms,
                lease_until_ms,
                limit,
            } => {
                let limit = i64::from(*limit);
                let due = self
                    .rows(
                        "SELECT DISTINCT c.domain, c.day FROM tlsrpt_counts c
                           LEFT JOIN tlsrpt_reports r ON r.domain = c.domain AND r.day = c.day
                          WHERE c.day < $1
                            AND (r.domain IS NULL
                                 OR (r.sent_ms IS NULL AND r.lease_until_ms <= $2))
                          ORDER BY c.day, c.domain LIMIT $3",
                        &[before_day, now_ms, &limit],
                    )
                    .await?;
                let mut claimed = Vec::new();
                for r in &due {
                    let domain: String = col(r, 0)?;
                    let day: String = col(r, 1)?;
                    // Re-checked on the row as it is when locked: a claim another node
                    // committed meanwhile wins.
                    let got = self
                        .opt(
                            "INSERT INTO tlsrpt_reports (domain, day, lease_owner, lease_until_ms)
                             VALUES ($1, $2, $3, $4)
                             ON CONFLICT (domain, day) DO UPDATE
                               SET lease_owner = excluded.lease_owner,
                                   lease_until_ms = excluded.lease_until_ms
                             WHERE tlsrpt_reports.sent_ms IS NULL
                               AND tlsrpt_reports.lease_until_ms <= $5
                             RETURNING domain",
                            &[&domain, &day, owner, lease_until_ms, now_ms],
                        )
                        .await?;
                    if got.is_some() {
                        claimed.push((domain, day));
                    }
                }
                Ok(OpResult::TlsRptClaimed(claimed))
            }
            Op::FinishTlsRpt {
                owner,
                domain,
                day,
                now_ms,
            } => {
                let n = self
                    .exec(
                        "UPDATE tlsrpt_reports SET sent_ms = $4, lease_owner = NULL
                          WHERE domain = $1 AND day = $2 AND lease_owner = $3
                            AND sent_ms IS NULL",
                        &[domain, day, owner, now_ms],
                    )
                    .await?;
                if n == 0 {
                    // The lease ran out: not this node's to finish (the batch, with its
                    // ledger entry, fails).
                    return Err(StoreError::Conflict(format!(
                        "TLS report {domain} {day} is not leased to {owner}"
                    ))
                    .into());
                }
                self.exec(
                    "DELETE FROM tlsrpt_counts WHERE domain = $1 AND day = $2",
                    &[domain, day],
                )
                .await?;
                let old = now_ms.saturating_sub(TLSRPT_SENT_KEEP_MS);
                self.exec(
                    "DELETE FROM tlsrpt_reports WHERE sent_ms IS NOT NULL AND sent_ms < $1",
                    &[&old],
                )
                .await?;
                Ok(OpResult::Done)
            }
            other => {
                Err(StoreError::Invalid(format!("not an outbound TLS operation: {other:?}")).into())
            }
        }
    }
}

pub(crate) const STS_POLICY_SQL: &str =
    "SELECT domain, policy_id, mode, mx, max_age_secs, fetched_ms FROM mta_sts_policies
      WHERE domain = $1";

pub(crate) fn sts_row(r: &Row) -> Result<StsPolicyRecord> {
    let mx: String = col(r, 3)?;
    Ok(StsPolicyRecord {
        domain: col(r, 0)?,
        policy_id: col(r, 1)?,
        mode: col(r, 2)?,
        mx: list_of(&mx),
        max_age_secs: col(r, 4)?,
        fetched_ms: col(r, 5)?,
    })
}

pub(crate) const TLSRPT_COUNTS_SQL: &str =
    "SELECT domain, day, policy_type, policy_strings, mx_host, result_type, receiving_ip, count
       FROM tlsrpt_counts WHERE domain = $1 AND day = $2
      ORDER BY policy_type, policy_strings, mx_host, result_type, receiving_ip";

pub(crate) fn count_row(r: &Row) -> Result<TlsRptCount> {
    let strings: String = col(r, 3)?;
    Ok(TlsRptCount {
        domain: col(r, 0)?,
        day: col(r, 1)?,
        policy_type: col(r, 2)?,
        policy_strings: list_of(&strings),
        mx_host: col(r, 4)?,
        result_type: col(r, 5)?,
        receiving_ip: col(r, 6)?,
        count: u64_of(col(r, 7)?),
    })
}
