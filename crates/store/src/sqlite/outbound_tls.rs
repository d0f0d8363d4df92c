//! Cached MTA-STS policies and TLS report counters in the embedded store.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Result, StoreError};
use crate::ops::{Op, OpResult, TLSRPT_SENT_KEEP_MS};
use crate::outbound_tls::*;

fn json_list(v: &[String]) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn list_of(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

pub(super) fn apply(c: &Connection, op: &Op) -> Result<OpResult> {
    match op {
        Op::PutStsPolicy(p) => {
            c.prepare_cached(
                "INSERT INTO mta_sts_policies (domain, policy_id, mode, mx, max_age_secs, fetched_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id,
                   mode = excluded.mode, mx = excluded.mx,
                   max_age_secs = excluded.max_age_secs, fetched_ms = excluded.fetched_ms",
            )?
            .execute(params![
                p.domain,
                p.policy_id,
                p.mode,
                json_list(&p.mx)?,
                p.max_age_secs,
                p.fetched_ms
            ])?;
            Ok(OpResult::Done)
        }
        Op::RemoveStsPolicy(domain) => {
            c.prepare_cached("DELETE FROM mta_sts_policies WHERE domain = ?1")?
                .execute([domain])?;
            Ok(OpResult::Done)
        }
        Op::AddTlsRpt(counts) => {
            let mut st = c.prepare_cached(
                "INSERT INTO tlsrpt_counts (domain, day, policy_type, policy_strings, mx_host,
                   result_type, receiving_ip, count)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
                  WHERE NOT EXISTS (SELECT 1 FROM tlsrpt_reports
                                     WHERE domain = ?1 AND day = ?2 AND sent_ms IS NOT NULL)
                 ON CONFLICT (domain, day, policy_type, policy_strings, mx_host, result_type,
                   receiving_ip) DO UPDATE SET count = tlsrpt_counts.count + excluded.count",
            )?;
            for n in counts {
                st.execute(params![
                    n.domain,
                    n.day,
                    n.policy_type,
                    json_list(&n.policy_strings)?,
                    n.mx_host,
                    n.result_type,
                    n.receiving_ip,
                    i64::try_from(n.count).unwrap_or(i64::MAX)
                ])?;
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
            let due: Vec<(String, String)> = c
                .prepare_cached(
                    "SELECT DISTINCT c.domain, c.day FROM tlsrpt_counts c
                       LEFT JOIN tlsrpt_reports r ON r.domain = c.domain AND r.day = c.day
                      WHERE c.day < ?1
                        AND (r.domain IS NULL
                             OR (r.sent_ms IS NULL AND r.lease_until_ms <= ?2))
                      ORDER BY c.day, c.domain LIMIT ?3",
                )?
                .query_map(params![before_day, now_ms, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut st = c.prepare_cached(
                "INSERT INTO tlsrpt_reports (domain, day, lease_owner, lease_until_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (domain, day) DO UPDATE SET lease_owner = excluded.lease_owner,
                   lease_until_ms = excluded.lease_until_ms",
            )?;
            for (domain, day) in &due {
                st.execute(params![domain, day, owner, lease_until_ms])?;
            }
            Ok(OpResult::TlsRptClaimed(due))
        }
        Op::FinishTlsRpt {
            owner,
            domain,
            day,
            now_ms,
        } => {
            let n = c
                .prepare_cached(
                    "UPDATE tlsrpt_reports SET sent_ms = ?4, lease_owner = NULL
                      WHERE domain = ?1 AND day = ?2 AND lease_owner = ?3 AND sent_ms IS NULL",
                )?
                .execute(params![domain, day, owner, now_ms])?;
            if n == 0 {
                // The lease ran out (another node may be sending it): nothing here is
                // this node's to finish, and the batch's ledger entry must not say so.
                return Err(StoreError::Conflict(format!(
                    "TLS report {domain} {day} is not leased to {owner}"
                )));
            }
            c.prepare_cached("DELETE FROM tlsrpt_counts WHERE domain = ?1 AND day = ?2")?
                .execute(params![domain, day])?;
            c.prepare_cached(
                "DELETE FROM tlsrpt_reports WHERE sent_ms IS NOT NULL AND sent_ms < ?1",
            )?
            .execute([now_ms.saturating_sub(TLSRPT_SENT_KEEP_MS)])?;
            Ok(OpResult::Done)
        }
        other => Err(StoreError::Invalid(format!(
            "not an outbound TLS operation: {other:?}"
        ))),
    }
}

pub(super) fn sts_policy(c: &Connection, domain: &str) -> Result<Option<StsPolicyRecord>> {
    Ok(c.prepare_cached(
        "SELECT domain, policy_id, mode, mx, max_age_secs, fetched_ms FROM mta_sts_policies
          WHERE domain = ?1",
    )?
    .query_row([domain], |r| {
        let mx: String = r.get(3)?;
        Ok(StsPolicyRecord {
            domain: r.get(0)?,
            policy_id: r.get(1)?,
            mode: r.get(2)?,
            mx: list_of(&mx),
            max_age_secs: r.get(4)?,
            fetched_ms: r.get(5)?,
        })
    })
    .optional()?)
}

pub(super) fn tlsrpt_counts(c: &Connection, domain: &str, day: &str) -> Result<Vec<TlsRptCount>> {
    let rows = c
        .prepare_cached(
            "SELECT domain, day, policy_type, policy_strings, mx_host, result_type,
                    receiving_ip, count FROM tlsrpt_counts
              WHERE domain = ?1 AND day = ?2
              ORDER BY policy_type, policy_strings, mx_host, result_type, receiving_ip",
        )?
        .query_map([domain, day], |r| {
            let strings: String = r.get(3)?;
            Ok(TlsRptCount {
                domain: r.get(0)?,
                day: r.get(1)?,
                policy_type: r.get(2)?,
                policy_strings: list_of(&strings),
                mx_host: r.get(4)?,
                result_type: r.get(5)?,
                receiving_ip: r.get(6)?,
                count: r.get::<_, i64>(7)?.max(0) as u64,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}
