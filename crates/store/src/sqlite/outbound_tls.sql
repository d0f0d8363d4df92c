-- Outbound TLS (schema version 8): cached MTA-STS policies (RFC 8461 §5.1) and the
-- counters of SMTP TLS reports (RFC 8460), with which (domain, day) reports were sent.
CREATE TABLE mta_sts_policies (
    domain TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    mx TEXT NOT NULL,          -- JSON array of patterns
    max_age_secs INTEGER NOT NULL,
    fetched_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE tlsrpt_counts (
    domain TEXT NOT NULL,
    day TEXT NOT NULL,
    policy_type TEXT NOT NULL,
    policy_strings TEXT NOT NULL,  -- JSON array
    mx_host TEXT NOT NULL,
    result_type TEXT NOT NULL,     -- '' for success
    receiving_ip TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (domain, day, policy_type, policy_strings, mx_host, result_type, receiving_ip)
) WITHOUT ROWID;
CREATE TABLE tlsrpt_reports (
    domain TEXT NOT NULL,
    day TEXT NOT NULL,
    lease_owner TEXT,
    lease_until_ms INTEGER NOT NULL,
    sent_ms INTEGER,
    PRIMARY KEY (domain, day)
) WITHOUT ROWID;
