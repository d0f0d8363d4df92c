-- Postern PostgreSQL store, schema version 3. Runs with search_path set to the
-- deployment's schema. Mirrors crates/store/src/sqlite/schema.sql; differences:
--  * every TEXT column is COLLATE "C", so uniqueness and ORDER BY compare bytes as
--    SQLite's BINARY collation does, whatever the database's locale;
--  * ledger_head holds the chain's last (seq, hash), locked FOR UPDATE by each append;
--  * blobs and blob_chunks hold content-addressed blobs (PgBlobStore).
CREATE TABLE domains (
    id BIGINT PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL
);
CREATE TABLE principals (
    id BIGINT PRIMARY KEY,
    domain_id BIGINT NOT NULL REFERENCES domains(id),
    local_part TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    quota_bytes BIGINT,
    used_bytes BIGINT NOT NULL DEFAULT 0,
    message_count BIGINT NOT NULL DEFAULT 0,
    highest_modseq BIGINT NOT NULL DEFAULT 0,
    last_uid_validity BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    UNIQUE (domain_id, local_part)
);
CREATE TABLE credentials (
    id BIGINT PRIMARY KEY,
    principal_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    kind TEXT COLLATE "C" NOT NULL,
    label TEXT COLLATE "C" NOT NULL,
    protocols TEXT COLLATE "C" NOT NULL,
    hash TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX credentials_principal ON credentials(principal_id);
CREATE TABLE aliases (
    id BIGINT PRIMARY KEY,
    domain_id BIGINT NOT NULL REFERENCES domains(id),
    local_part TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (domain_id, local_part, target)
);
CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    member TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (group_id, member)
);
CREATE TABLE mailboxes (
    id BIGINT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES principals(id),
    name TEXT COLLATE "C" NOT NULL,
    special_use TEXT COLLATE "C",
    uid_validity BIGINT NOT NULL,
    uid_next BIGINT NOT NULL,
    highest_modseq BIGINT NOT NULL,
    subscribed BOOLEAN NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (account_id, name)
);
CREATE TABLE messages (
    id BIGINT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES principals(id),
    blob_hash TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    thread_id TEXT COLLATE "C" NOT NULL,
    message_id_hdr TEXT COLLATE "C",
    meta TEXT COLLATE "C" NOT NULL
);
CREATE INDEX messages_msgid ON messages(account_id, message_id_hdr);
CREATE INDEX messages_blob ON messages(blob_hash);
CREATE TABLE mailbox_messages (
    mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id),
    uid BIGINT NOT NULL,
    message_id BIGINT NOT NULL REFERENCES messages(id),
    flags BIGINT NOT NULL,
    keywords TEXT COLLATE "C" NOT NULL,
    modseq BIGINT NOT NULL,
    saved_ms BIGINT NOT NULL,
    -- A copy of messages.size, so that listing a mailbox never reads `messages` (schema 3).
    size BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX mailbox_messages_message ON mailbox_messages(message_id);
CREATE INDEX mailbox_messages_modseq ON mailbox_messages(mailbox_id, modseq);
CREATE TABLE journal (
    account_id BIGINT NOT NULL,
    modseq BIGINT NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    mailbox_id BIGINT,
    message_id BIGINT,
    uid BIGINT,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, modseq)
);
-- `record` is TEXT, never JSONB: it must stay the exact bytes that were hashed.
-- actor_account, target and time_ms are copies of the record's fields for lookups
-- (the ledger grows with every access, so a query by account must not scan it). They
-- are not cast from `record` at query time: JSONB refuses a record holding "\u0000",
-- which an untrusted value (a client id, a login name) can put there.
CREATE TABLE ledger (
    seq BIGINT PRIMARY KEY,
    record TEXT COLLATE "C" NOT NULL,
    prev_hash TEXT COLLATE "C" NOT NULL,
    hash TEXT COLLATE "C" NOT NULL,
    actor_account TEXT COLLATE "C",
    target TEXT COLLATE "C",
    time_ms BIGINT NOT NULL
);
CREATE INDEX ledger_actor ON ledger (actor_account, seq);
CREATE INDEX ledger_target ON ledger (target, seq);
-- The chain's head: one row, locked by every append, so no two appends (from any
-- node) can chain to the same entry.
CREATE TABLE ledger_head (
    id INT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT COLLATE "C" NOT NULL
);
CREATE TABLE blobs (
    hash TEXT COLLATE "C" PRIMARY KEY,
    size BIGINT NOT NULL
);
CREATE TABLE blob_chunks (
    hash TEXT COLLATE "C" NOT NULL REFERENCES blobs(hash) ON DELETE CASCADE,
    idx INT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (hash, idx)
);
CREATE TABLE mailbox_acl (
    mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id),
    account_id BIGINT NOT NULL REFERENCES principals(id),
    grantee_id BIGINT NOT NULL REFERENCES principals(id),
    rights TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (mailbox_id, grantee_id)
);
CREATE INDEX mailbox_acl_grantee ON mailbox_acl(grantee_id);
