-- The outbound queue and DKIM keys (schema version 4). Mirrors
-- crates/store/src/sqlite/queue.sql with the differences schema.sql lists.
CREATE TABLE queue_messages (
    id BIGINT PRIMARY KEY,
    blob_hash TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    sender TEXT COLLATE "C" NOT NULL,
    account_id BIGINT,
    envid TEXT COLLATE "C",
    ret TEXT COLLATE "C",
    requiretls BOOLEAN NOT NULL,
    smtputf8 BOOLEAN NOT NULL,
    eight_bit BOOLEAN NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE queue_recipients (
    message_id BIGINT NOT NULL REFERENCES queue_messages(id),
    idx INT NOT NULL,
    address TEXT COLLATE "C" NOT NULL,
    domain TEXT COLLATE "C" NOT NULL,
    orcpt TEXT COLLATE "C",
    notify TEXT COLLATE "C",
    state TEXT COLLATE "C" NOT NULL,
    attempts INT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    last_status TEXT COLLATE "C",
    last_error TEXT COLLATE "C",
    remote_host TEXT COLLATE "C",
    delay_notified BOOLEAN NOT NULL,
    lease_owner TEXT COLLATE "C",
    lease_until_ms BIGINT NOT NULL,
    PRIMARY KEY (message_id, idx)
);
CREATE INDEX queue_recipients_due ON queue_recipients(state, next_attempt_ms);
CREATE TABLE dkim_keys (
    domain_id BIGINT NOT NULL REFERENCES domains(id),
    selector TEXT COLLATE "C" NOT NULL,
    algorithm TEXT COLLATE "C" NOT NULL,
    private_der BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (domain_id, selector)
);
