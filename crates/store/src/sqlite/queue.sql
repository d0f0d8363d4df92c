-- The outbound queue and DKIM keys (schema version 4; see crates/store/src/queue.rs).
CREATE TABLE queue_messages (
    id INTEGER PRIMARY KEY,
    blob_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    sender TEXT NOT NULL,
    account_id INTEGER,
    envid TEXT,
    ret TEXT,
    requiretls INTEGER NOT NULL,
    smtputf8 INTEGER NOT NULL,
    eight_bit INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE queue_recipients (
    message_id INTEGER NOT NULL REFERENCES queue_messages(id),
    idx INTEGER NOT NULL,
    address TEXT NOT NULL,
    domain TEXT NOT NULL,
    orcpt TEXT,
    notify TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_status TEXT,
    last_error TEXT,
    remote_host TEXT,
    delay_notified INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until_ms INTEGER NOT NULL,
    PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
CREATE INDEX queue_recipients_due ON queue_recipients(state, next_attempt_ms);
CREATE TABLE dkim_keys (
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    private_der BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (domain_id, selector)
) WITHOUT ROWID;
