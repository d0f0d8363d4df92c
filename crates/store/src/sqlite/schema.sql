-- Postern embedded store, schema version 3.
CREATE TABLE domains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
);
CREATE TABLE principals (
    id INTEGER PRIMARY KEY,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    local_part TEXT NOT NULL,
    kind TEXT NOT NULL,
    display_name TEXT NOT NULL,
    quota_bytes INTEGER,
    used_bytes INTEGER NOT NULL DEFAULT 0,
    message_count INTEGER NOT NULL DEFAULT 0,
    highest_modseq INTEGER NOT NULL DEFAULT 0,
    last_uid_validity INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    UNIQUE (domain_id, local_part)
);
CREATE TABLE credentials (
    id INTEGER PRIMARY KEY,
    principal_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    protocols TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX credentials_principal ON credentials(principal_id);
CREATE TABLE aliases (
    id INTEGER PRIMARY KEY,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    local_part TEXT NOT NULL,
    target TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (domain_id, local_part, target)
);
CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    member TEXT NOT NULL,
    PRIMARY KEY (group_id, member)
) WITHOUT ROWID;
CREATE TABLE mailboxes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES principals(id),
    name TEXT NOT NULL,
    special_use TEXT,
    uid_validity INTEGER NOT NULL,
    uid_next INTEGER NOT NULL,
    highest_modseq INTEGER NOT NULL,
    subscribed INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (account_id, name)
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES principals(id),
    blob_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    thread_id TEXT NOT NULL,
    message_id_hdr TEXT,
    meta TEXT NOT NULL
);
CREATE INDEX messages_msgid ON messages(account_id, message_id_hdr);
-- No index on blob_hash (schema 7 dropped it): no lookup uses one, and each delivery
-- paid a random index page for it in every group commit.
CREATE TABLE mailbox_messages (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    uid INTEGER NOT NULL,
    message_id INTEGER NOT NULL REFERENCES messages(id),
    flags INTEGER NOT NULL,
    keywords TEXT NOT NULL,
    modseq INTEGER NOT NULL,
    saved_ms INTEGER NOT NULL,
    -- A copy of messages.size, so that listing a mailbox never reads `messages` (schema 3).
    size INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX mailbox_messages_message ON mailbox_messages(message_id);
CREATE INDEX mailbox_messages_modseq ON mailbox_messages(mailbox_id, modseq);
CREATE TABLE journal (
    account_id INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    mailbox_id INTEGER,
    message_id INTEGER,
    uid INTEGER,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, modseq)
) WITHOUT ROWID;
-- The last entry's number and hash, updated with every append. Deleting entries from
-- the end of `ledger` leaves this row ahead of the table, which verification reports,
-- and new entries keep counting from here instead of reusing the deleted numbers.
CREATE TABLE ledger_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE ledger (
    seq INTEGER PRIMARY KEY,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE mailbox_acl (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    account_id INTEGER NOT NULL REFERENCES principals(id),
    grantee_id INTEGER NOT NULL REFERENCES principals(id),
    rights TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, grantee_id)
) WITHOUT ROWID;
CREATE INDEX mailbox_acl_grantee ON mailbox_acl(grantee_id);
