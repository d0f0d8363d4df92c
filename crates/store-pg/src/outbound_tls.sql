-- Outbound TLS (schema version 7): cached MTA-STS policies (RFC 8461 §5.1) and the
-- counters of SMTP TLS reports (RFC 8460), with which (domain, day) reports were sent.
CREATE TABLE mta_sts_policies (
    domain TEXT COLLATE "C" PRIMARY KEY,
    policy_id TEXT COLLATE "C" NOT NULL,
    mode TEXT COLLATE "C" NOT NULL,
    mx TEXT COLLATE "C" NOT NULL,
    max_age_secs BIGINT NOT NULL,
    fetched_ms BIGINT NOT NULL
);
CREATE TABLE tlsrpt_counts (
    domain TEXT COLLATE "C" NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    policy_type TEXT COLLATE "C" NOT NULL,
    policy_strings TEXT COLLATE "C" NOT NULL,
    mx_host TEXT COLLATE "C" NOT NULL,
    result_type TEXT COLLATE "C" NOT NULL,
    receiving_ip TEXT COLLATE "C" NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (domain, day, policy_type, policy_strings, mx_host, result_type, receiving_ip)
);
CREATE TABLE tlsrpt_reports (
    domain TEXT COLLATE "C" NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    lease_owner TEXT COLLATE "C",
    lease_until_ms BIGINT NOT NULL,
    sent_ms BIGINT,
    PRIMARY KEY (domain, day)
);
