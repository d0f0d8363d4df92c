//! SMTP TLS Reporting (RFC 8460), the sending side: each delivery's TLS outcome is
//! counted per policy domain and reporting period in the store (several nodes add to the
//! same counters); once a period is over, one node claims each (domain, period), looks up
//! the domain's `_smtp._tls` TXT record, and sends the aggregate JSON report (§4),
//! gzipped, to each `mailto:` address through the outbound queue (§5.3: a
//! `multipart/report; report-type=tlsrpt` message, DKIM-signed when we hold keys for its
//! From domain) and POSTs it to each `https:` address through the egress-safe client
//! ([`crate::egress`]). Reports about the delivery of reports are never made (§3: no
//! loops).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hickory_proto::rr::{RData, RecordType};
use postern_core::Core;
use postern_core::store::{TlsRptCount, now_ms};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::client::SessionFailure;
use crate::dns::DnsClient;
use crate::egress::{HttpsClient, parse_https_url};
use crate::tls::TlsPolicy;

/// Longest `_smtp._tls` TXT record read (RFC 8460 §3 records are short).
pub const MAX_TXT_BYTES: usize = 2048;
/// Most report addresses (`rua`) one domain gets its report sent to.
pub const MAX_RUA: usize = 10;
/// Most policies in one report; further ones are left out.
pub const MAX_POLICIES: usize = 100;
/// Most `failure-details` entries of one policy; the summary still counts every failure.
pub const MAX_FAILURE_DETAILS: usize = 1000;
/// Most answer bytes read from an `https:` report endpoint.
pub const MAX_HTTPS_ANSWER: usize = 16 * 1024;
/// Most (domain, period) reports one node claims per look.
pub const CLAIM_LIMIT: u32 = 100;
/// A report not sent this long after its period began (its domain's DNS or every
/// destination failing) is dropped instead of being tried again.
pub const GIVE_UP_AFTER_MS: i64 = 3 * 86_400_000;
/// The header field that marks a TLS report message (RFC 8460 §5.3).
const REPORT_FIELD: &str = "tls-report-domain:";

/// Reporting settings (`[outbound] tlsrpt_*`).
#[derive(Debug, Clone)]
pub struct TlsRptSettings {
    /// Length of one reporting period (a day; tests use seconds).
    pub period: Duration,
    /// How often finished periods are looked for.
    pub interval: Duration,
    /// `organization-name`.
    pub organization: String,
    /// `contact-info`, and the From of report mail.
    pub contact: String,
    /// For `https:` report addresses.
    pub https: HttpsClient,
    /// How long a claim on a report holds.
    pub lease: Duration,
}

/// The policy a connection was made under (RFC 8460 §4.4 `policy-type`, `policy-string`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub policy_type: &'static str,
    pub strings: Vec<String>,
}

impl Applied {
    pub fn of(policy: &TlsPolicy, sts: Option<&crate::mtasts::Policy>) -> Applied {
        match (policy, sts) {
            (TlsPolicy::Dane { records }, _) => Applied {
                policy_type: "tlsa",
                strings: records
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} {} {}",
                            r.usage,
                            r.selector,
                            r.matching,
                            hex::encode(&r.data)
                        )
                    })
                    .collect(),
            },
            (_, Some(p)) => Applied {
                policy_type: "sts",
                strings: p.strings(),
            },
            _ => Applied::none(),
        }
    }

    pub fn none() -> Applied {
        Applied {
            policy_type: "no-policy-found",
            strings: Vec::new(),
        }
    }
}

/// One connection's TLS outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub applied: Applied,
    pub mx: String,
    /// "" for success, else an RFC 8460 §4.3 result type.
    pub result: &'static str,
    pub ip: String,
}

/// The RFC 8460 §4.3 result type of a failed session, when TLS was what failed.
pub fn classify(policy: &TlsPolicy, f: &SessionFailure) -> Option<&'static str> {
    let reason = f.reason.to_ascii_lowercase();
    if reason.contains("does not offer starttls") || reason.contains("starttls refused") {
        return Some("starttls-not-supported");
    }
    if !f.tls_failed {
        return None;
    }
    if matches!(policy, TlsPolicy::Dane { .. }) {
        return Some("tlsa-invalid");
    }
    Some(
        if reason.contains("notvalidforname") || reason.contains("not valid for name") {
            "certificate-host-mismatch"
        } else if reason.contains("expired") {
            "certificate-expired"
        } else if reason.contains("unknownissuer")
            || reason.contains("unknown issuer")
            || reason.contains("badsignature")
        {
            "certificate-not-trusted"
        } else {
            "validation-failure"
        },
    )
}

/// The start of the reporting period holding `ms` (periods count from midnight UTC).
pub fn period_start(ms: i64, period: Duration) -> i64 {
    let p = i64::try_from(period.as_millis())
        .unwrap_or(86_400_000)
        .max(1000);
    let day = ms.div_euclid(86_400_000) * 86_400_000;
    day + (ms - day).div_euclid(p) * p
}

/// RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` (fixed width: sorts as the time does).
pub fn stamp(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn parse_stamp(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp() * 1000)
}

/// The counters of `outcomes`, same ones merged.
pub fn counts(domain: &str, period: &str, outcomes: Vec<Outcome>) -> Vec<TlsRptCount> {
    let mut merged: BTreeMap<(String, Vec<String>, String, String, String), u64> = BTreeMap::new();
    for o in outcomes {
        *merged
            .entry((
                o.applied.policy_type.to_string(),
                o.applied.strings,
                o.mx,
                o.result.to_string(),
                o.ip,
            ))
            .or_default() += 1;
    }
    merged
        .into_iter()
        .map(
            |((policy_type, policy_strings, mx_host, result_type, receiving_ip), count)| {
                TlsRptCount {
                    domain: domain.to_string(),
                    day: period.to_string(),
                    policy_type,
                    policy_strings,
                    mx_host,
                    result_type,
                    receiving_ip,
                    count,
                }
            },
        )
        .collect()
}

/// Whether a queued message is a TLS report we made: from the null reverse-path with a
/// `TLS-Report-Domain` field. Its delivery is not reported on (RFC 8460 §3).
pub fn is_report(sender: &str, raw: &[u8]) -> bool {
    if !sender.is_empty() {
        return false;
    }
    let head = crate::dsn::header_of(raw);
    head.split(|b| *b == b'\n').any(|l| {
        l.len() >= REPORT_FIELD.len()
            && l[..REPORT_FIELD.len()].eq_ignore_ascii_case(REPORT_FIELD.as_bytes())
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A report destination (RFC 8460 §3 `rua`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rua {
    Mailto(String),
    Https {
        host: String,
        port: u16,
        path: String,
    },
}

/// `v=TLSRPTv1; rua=…` → its destinations (at most [`MAX_RUA`], unusable ones left out).
pub fn parse_record(txt: &str) -> Option<Vec<Rua>> {
    if txt.len() > MAX_TXT_BYTES {
        return None;
    }
    let mut fields = txt.split(';').map(str::trim);
    if fields.next() != Some("v=TLSRPTv1") {
        return None;
    }
    let rua = fields.find_map(|f| f.strip_prefix("rua="))?;
    let out: Vec<Rua> = rua
        .split(',')
        .map(str::trim)
        .filter_map(|u| {
            if let Some(m) = u.strip_prefix("mailto:") {
                let addr = percent_decode(m.split('?').next()?)?;
                let (local, domain) = addr.rsplit_once('@')?;
                let ok = !local.is_empty()
                    && !domain.is_empty()
                    && addr.len() <= 254
                    && !addr.bytes().any(|b| b <= b' ' || b == b'<' || b == b'>');
                ok.then_some(Rua::Mailto(addr))
            } else {
                let (host, port, path) = parse_https_url(u)?;
                Some(Rua::Https { host, port, path })
            }
        })
        .take(MAX_RUA)
        .collect();
    (!out.is_empty()).then_some(out)
}

/// The domain's report destinations: `None` when it publishes no (single, valid)
/// record; `Err` when the lookup failed (try again later).
async fn destinations(dns: &DnsClient, domain: &str) -> Result<Option<Vec<Rua>>, String> {
    let name = format!("_smtp._tls.{domain}.");
    let answer = match dns.query(&name, RecordType::TXT).await {
        Ok(a) => a,
        Err(e) => return Err(e.to_string()),
    };
    let records: Vec<String> = answer
        .data()
        .filter_map(|d| match d {
            RData::TXT(t) => {
                let mut s = String::new();
                for p in t.txt_data.iter() {
                    if s.len() + p.len() > MAX_TXT_BYTES {
                        return Some(String::new());
                    }
                    s.push_str(&String::from_utf8_lossy(p));
                }
                s.starts_with("v=TLSRPTv1").then_some(s)
            }
            _ => None,
        })
        .collect();
    // RFC 8460 §3: more than one record means no reporting.
    Ok(match records.as_slice() {
        [one] => parse_record(one),
        _ => None,
    })
}

/// The §4.4 JSON report of one domain and period.
pub fn report(
    organization: &str,
    contact: &str,
    report_id: &str,
    start_ms: i64,
    end_ms: i64,
    domain: &str,
    counts: &[TlsRptCount],
) -> Value {
    let mut by_policy: BTreeMap<(&str, &[String]), Vec<&TlsRptCount>> = BTreeMap::new();
    for c in counts {
        by_policy
            .entry((c.policy_type.as_str(), c.policy_strings.as_slice()))
            .or_default()
            .push(c);
    }
    let policies: Vec<Value> = by_policy
        .into_iter()
        .take(MAX_POLICIES)
        .map(|((policy_type, strings), rows)| {
            let ok: u64 = rows
                .iter()
                .filter(|r| r.result_type.is_empty())
                .map(|r| r.count)
                .sum();
            let failed: Vec<&&TlsRptCount> =
                rows.iter().filter(|r| !r.result_type.is_empty()).collect();
            let failures: u64 = failed.iter().map(|r| r.count).sum();
            let details: Vec<Value> = failed
                .iter()
                .take(MAX_FAILURE_DETAILS)
                .map(|r| {
                    let mut d = json!({
                        "result-type": r.result_type,
                        "failed-session-count": r.count,
                    });
                    if !r.mx_host.is_empty() {
                        d["receiving-mx-hostname"] = json!(r.mx_host);
                    }
                    if !r.receiving_ip.is_empty() {
                        d["receiving-ip"] = json!(r.receiving_ip);
                    }
                    d
                })
                .collect();
            let mut policy = json!({
                "policy-type": policy_type,
                "policy-domain": domain,
            });
            if !strings.is_empty() {
                policy["policy-string"] = json!(strings);
            }
            if policy_type == "sts" {
                let mx: Vec<&str> = strings
                    .iter()
                    .filter_map(|s| s.strip_prefix("mx: "))
                    .collect();
                policy["mx-host"] = json!(mx);
            }
            let mut p = json!({
                "policy": policy,
                "summary": {
                    "total-successful-session-count": ok,
                    "total-failure-session-count": failures,
                },
            });
            if !details.is_empty() {
                p["failure-details"] = json!(details);
            }
            p
        })
        .collect();
    json!({
        "organization-name": organization,
        "date-range": {
            "start-datetime": stamp(start_ms),
            "end-datetime": stamp(end_ms),
        },
        "contact-info": contact,
        "report-id": report_id,
        "policies": policies,
    })
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// The §5.3 report message (without DKIM signature).
#[allow(clippy::too_many_arguments)]
pub fn report_mail(
    from: &str,
    to: &str,
    submitter: &str,
    domain: &str,
    report_id: &str,
    start_ms: i64,
    end_ms: i64,
    gz: &[u8],
) -> Vec<u8> {
    let boundary = format!("tlsrpt-{:016x}", rand::random::<u64>());
    let now = time::OffsetDateTime::now_utc();
    let filename = format!(
        "{submitter}!{domain}!{}!{}.json.gz",
        start_ms.div_euclid(1000),
        end_ms.div_euclid(1000)
    );
    let mut m = String::new();
    m.push_str(&format!("From: <{from}>\r\n"));
    m.push_str(&format!("To: <{to}>\r\n"));
    m.push_str(&format!("Date: {}\r\n", crate::dsn::date(now)));
    m.push_str(&format!(
        "Message-ID: <tlsrpt.{:016x}@{submitter}>\r\n",
        rand::random::<u64>()
    ));
    m.push_str(&format!(
        "Subject: Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>\r\n"
    ));
    m.push_str(&format!("TLS-Report-Domain: {domain}\r\n"));
    m.push_str(&format!("TLS-Report-Submitter: {submitter}\r\n"));
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str("This is a multipart message in MIME format.\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/plain; charset=\"us-ascii\"\r\n");
    m.push_str("Content-Transfer-Encoding: 7bit\r\n\r\n");
    m.push_str(&format!(
        "This is an aggregate TLS report (RFC 8460) from {submitter} about mail to\r\n{domain} from {} to {}.\r\n\r\n",
        stamp(start_ms),
        stamp(end_ms)
    ));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: application/tlsrpt+gzip\r\n");
    m.push_str("Content-Transfer-Encoding: base64\r\n");
    m.push_str(&format!(
        "Content-Disposition: attachment;\r\n\tfilename=\"{filename}\"\r\n\r\n"
    ));
    let b64 = base64::engine::general_purpose::STANDARD.encode(gz);
    for chunk in b64.as_bytes().chunks(76) {
        m.push_str(&String::from_utf8_lossy(chunk));
        m.push_str("\r\n");
    }
    m.push_str(&format!("\r\n--{boundary}--\r\n"));
    m.into_bytes()
}

/// Signs with the DKIM keys of the From domain, when we hold any; unsigned (and said
/// so in the log) when signing fails.
async fn dkim_sign(core: &Core, from: &str, raw: Vec<u8>) -> Vec<u8> {
    let Some((_, domain)) = from.rsplit_once('@') else {
        return raw;
    };
    match crate::dkim::sign_as_domain(core, domain, &raw).await {
        Ok(Some(sig)) => {
            let mut out = sig.into_bytes();
            out.extend_from_slice(&raw);
            out
        }
        Ok(None) => raw,
        Err(e) => {
            warn!(error = %e, "DKIM signing a TLS report failed; sent unsigned");
            raw
        }
    }
}

/// Sends one claimed report; true when it is done (sent, or nobody wants it).
async fn send_one(
    core: &Core,
    node: &str,
    hostname: &str,
    dns: &DnsClient,
    s: &TlsRptSettings,
    domain: &str,
    period: &str,
) -> Result<Vec<String>, String> {
    let Some(rua) = destinations(dns, domain).await? else {
        debug!(%domain, "no TLSRPT record: nothing reported");
        return Ok(Vec::new());
    };
    let counts = core
        .tlsrpt_counts(domain, period)
        .await
        .map_err(|e| e.to_string())?;
    if counts.is_empty() {
        return Ok(Vec::new());
    }
    let start = parse_stamp(period).ok_or_else(|| format!("bad period {period:?}"))?;
    let period_ms = i64::try_from(s.period.as_millis()).unwrap_or(86_400_000);
    let end = start + period_ms - 1000;
    let report_id = format!("{period}_{domain}@{hostname}");
    let json = report(
        &s.organization,
        &s.contact,
        &report_id,
        start,
        end,
        domain,
        &counts,
    );
    let gz = gzip(json.to_string().as_bytes());
    let mut sent = Vec::new();
    let mut errors = Vec::new();
    for r in rua {
        match r {
            Rua::Mailto(to) => {
                let raw = report_mail(
                    &s.contact, &to, hostname, domain, &report_id, start, end, &gz,
                );
                let raw = dkim_sign(core, &s.contact, raw).await;
                match core
                    .enqueue_server_mail(
                        node,
                        "queue.tlsrpt",
                        &to,
                        raw,
                        &format!("tlsrpt:{report_id}"),
                    )
                    .await
                {
                    Ok(_) => sent.push(format!("mailto:{to}")),
                    Err(e) => errors.push(format!("mailto:{to}: {e}")),
                }
            }
            Rua::Https { host, port, path } => {
                let url = format!("https://{host}:{port}{path}");
                match s
                    .https
                    .request(
                        &host,
                        port,
                        &path,
                        Some(("application/tlsrpt+gzip", gz.clone())),
                        MAX_HTTPS_ANSWER,
                    )
                    .await
                {
                    Ok(r) if (200..300).contains(&r.status) => sent.push(url),
                    Ok(r) => errors.push(format!("{url}: HTTP status {}", r.status)),
                    Err(e) => errors.push(format!("{url}: {e}")),
                }
            }
        }
    }
    if sent.is_empty() && !errors.is_empty() {
        return Err(errors.join("; "));
    }
    for e in errors {
        warn!(%domain, error = %e, "a TLS report destination failed");
    }
    Ok(sent)
}

/// Whether a report of the period starting at `period` that could not be sent is
/// dropped at `now` ([`GIVE_UP_AFTER_MS`]; an unreadable period at once).
pub fn gives_up(period: &str, now: i64) -> bool {
    parse_stamp(period).is_none_or(|start| now.saturating_sub(start) > GIVE_UP_AFTER_MS)
}

/// One look: claims finished periods' reports and sends them.
pub async fn tick(core: &Core, node: &str, hostname: &str, dns: &DnsClient, s: &TlsRptSettings) {
    let before = stamp(period_start(now_ms(), s.period));
    let lease = i64::try_from(s.lease.as_millis()).unwrap_or(i64::MAX);
    // One report claimed at a time, sent, then finished: a lease covers one send (at
    // most MAX_RUA destinations), never a whole batch that could outlast it.
    for _ in 0..CLAIM_LIMIT {
        let claimed = match core.tlsrpt_claim(node, &before, lease, 1).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "claiming TLS reports failed");
                return;
            }
        };
        let Some((domain, period)) = claimed.into_iter().next() else {
            return;
        };
        match send_one(core, node, hostname, dns, s, &domain, &period).await {
            Ok(sent) => {
                let report_id = format!("{period}_{domain}@{hostname}");
                if let Err(e) = core
                    .tlsrpt_finish(node, &domain, &period, &report_id, &sent)
                    .await
                {
                    warn!(%domain, error = %e, "marking a TLS report sent failed");
                } else if !sent.is_empty() {
                    info!(%domain, %period, to = ?sent, "TLS report sent");
                }
            }
            // Given up on after a while: the counters go, with a ledger entry naming no
            // destination.
            Err(e) if gives_up(&period, now_ms()) => {
                warn!(%domain, %period, error = %e, "sending a TLS report failed; given up");
                let report_id = format!("{period}_{domain}@{hostname}");
                if let Err(e) = core
                    .tlsrpt_finish(node, &domain, &period, &report_id, &[])
                    .await
                {
                    warn!(%domain, error = %e, "dropping a TLS report failed");
                }
            }
            // The claim runs out and a later look tries again.
            Err(e) => warn!(%domain, %period, error = %e, "sending a TLS report failed"),
        }
    }
}

/// Looks for finished periods every `interval` until dropped.
pub async fn run(
    core: Arc<Core>,
    node: String,
    hostname: String,
    dns: DnsClient,
    s: TlsRptSettings,
) {
    loop {
        tick(&core, &node, &hostname, &dns, &s).await;
        tokio::time::sleep(s.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(policy: &str, result: &str, mx: &str, n: u64) -> TlsRptCount {
        TlsRptCount {
            domain: "example.net".into(),
            day: "2026-01-01T00:00:00Z".into(),
            policy_type: policy.into(),
            policy_strings: if policy == "sts" {
                vec!["version: STSv1".into(), "mx: mx.example.net".into()]
            } else {
                vec![]
            },
            mx_host: mx.into(),
            result_type: result.into(),
            receiving_ip: "192.0.2.1".into(),
            count: n,
        }
    }

    #[test]
    fn periods_and_stamps() {
        let day = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        assert_eq!(stamp(day), "2026-01-01T00:00:00Z");
        assert_eq!(parse_stamp("2026-01-01T00:00:00Z"), Some(day));
        let d = Duration::from_secs(86_400);
        assert_eq!(period_start(day + 5_000_000, d), day);
        let h = Duration::from_secs(3600);
        assert_eq!(period_start(day + 3_700_000, h), day + 3_600_000);
    }

    #[test]
    fn unsent_reports_are_given_up_on_after_a_while() {
        let start = 1_767_225_600_000;
        let p = stamp(start);
        assert!(!gives_up(&p, start + 86_400_000));
        assert!(!gives_up(&p, start + GIVE_UP_AFTER_MS));
        assert!(gives_up(&p, start + GIVE_UP_AFTER_MS + 1));
        assert!(gives_up("not a time", start));
    }

    #[test]
    fn records() {
        assert_eq!(
            parse_record(
                "v=TLSRPTv1; rua=mailto:tls%2Creports@example.net,https://r.example.net/x"
            ),
            Some(vec![
                Rua::Mailto("tls,reports@example.net".into()),
                Rua::Https {
                    host: "r.example.net".into(),
                    port: 443,
                    path: "/x".into()
                }
            ])
        );
        assert_eq!(parse_record("v=TLSRPTv2; rua=mailto:a@b"), None);
        assert_eq!(parse_record("v=TLSRPTv1;"), None);
        assert_eq!(
            parse_record("v=TLSRPTv1; rua=http://insecure.example/"),
            None
        );
        // Bounded: too long a record, and too many destinations.
        let long = format!(
            "v=TLSRPTv1; rua=mailto:{}@example.net",
            "a".repeat(MAX_TXT_BYTES)
        );
        assert_eq!(parse_record(&long), None);
        let many: Vec<String> = (0..MAX_RUA + 5)
            .map(|i| format!("mailto:r{i}@example.net"))
            .collect();
        let parsed = parse_record(&format!("v=TLSRPTv1; rua={}", many.join(","))).unwrap();
        assert_eq!(parsed.len(), MAX_RUA);
    }

    #[test]
    fn report_sums_and_caps_failure_details() {
        let mut rows = vec![
            count("sts", "", "mx.example.net", 3),
            count(
                "no-policy-found",
                "starttls-not-supported",
                "mx2.example.net",
                1,
            ),
        ];
        for i in 0..MAX_FAILURE_DETAILS + 5 {
            rows.push(count(
                "sts",
                "certificate-expired",
                &format!("mx{i}.example.net"),
                2,
            ));
        }
        let r = report(
            "Org",
            "postmaster@x",
            "id1",
            0,
            86_399_000,
            "example.net",
            &rows,
        );
        assert_eq!(
            r["date-range"]["end-datetime"],
            json!("1970-01-01T23:59:59Z")
        );
        let policies = r["policies"].as_array().unwrap();
        assert_eq!(policies.len(), 2);
        let sts = policies
            .iter()
            .find(|p| p["policy"]["policy-type"] == json!("sts"))
            .unwrap();
        assert_eq!(sts["summary"]["total-successful-session-count"], json!(3));
        assert_eq!(
            sts["summary"]["total-failure-session-count"],
            json!(2 * (MAX_FAILURE_DETAILS as u64 + 5))
        );
        assert_eq!(
            sts["failure-details"].as_array().unwrap().len(),
            MAX_FAILURE_DETAILS
        );
        assert_eq!(sts["policy"]["mx-host"], json!(["mx.example.net"]));
        // Too many policies: the first MAX_POLICIES only.
        let many: Vec<TlsRptCount> = (0..MAX_POLICIES + 3)
            .map(|i| {
                let mut c = count("tlsa", "", "mx", 1);
                c.policy_strings = vec![format!("3 1 1 {i:04}")];
                c
            })
            .collect();
        let r = report("Org", "c", "id2", 0, 0, "example.net", &many);
        assert_eq!(r["policies"].as_array().unwrap().len(), MAX_POLICIES);
    }

    #[test]
    fn failures_are_classified() {
        let f = |reason: &str, tls: bool| SessionFailure {
            status: "4.7.5".into(),
            reason: reason.into(),
            permanent: false,
            tls_failed: tls,
        };
        let pkix = TlsPolicy::Required;
        assert_eq!(
            classify(
                &pkix,
                &f(
                    "the server does not offer STARTTLS and the TLS policy requires it",
                    false
                )
            ),
            Some("starttls-not-supported")
        );
        assert_eq!(classify(&pkix, &f("connection refused", false)), None);
        assert_eq!(
            classify(
                &pkix,
                &f(
                    "TLS handshake: invalid peer certificate: UnknownIssuer",
                    true
                )
            ),
            Some("certificate-not-trusted")
        );
        assert_eq!(
            classify(
                &pkix,
                &f("TLS handshake: certificate not valid for name \"a\"", true)
            ),
            Some("certificate-host-mismatch")
        );
        let dane = TlsPolicy::Dane { records: vec![] };
        assert_eq!(
            classify(
                &dane,
                &f(
                    "TLS handshake: invalid peer certificate: ApplicationVerificationFailure",
                    true
                )
            ),
            Some("tlsa-invalid")
        );
    }

    #[test]
    fn report_messages_are_recognised() {
        let raw = report_mail(
            "postmaster@a.example",
            "r@b.example",
            "a.example",
            "b.example",
            "id",
            0,
            86_399_000,
            &gzip(b"{}"),
        );
        assert!(is_report("", &raw));
        assert!(!is_report("someone@a.example", &raw));
        assert!(!is_report(
            "",
            b"Subject: hi\r\n\r\nTLS-Report-Domain: x\r\n"
        ));
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.contains(
                "Subject: Report Domain: b.example Submitter: a.example Report-ID: <id>\r\n"
            ),
            "{text}"
        );
        assert!(text.contains("report-type=\"tlsrpt\""));
        assert!(text.contains("Content-Type: application/tlsrpt+gzip"));
    }
}
