-- CalDAV/CardDAV collections and resources (schema version 5).
CREATE TABLE dav_collections (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES principals(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    color TEXT,
    sort_order INTEGER,
    description TEXT,
    components TEXT NOT NULL,
    modseq INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (account_id, name)
);
-- A removed resource stays as a tombstone (deleted = 1, data '') so that
-- sync-collection can report it; a new PUT of the name revives the row.
CREATE TABLE dav_resources (
    id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES dav_collections(id),
    account_id INTEGER NOT NULL REFERENCES principals(id),
    name TEXT NOT NULL,
    etag TEXT NOT NULL,
    data TEXT NOT NULL,
    size INTEGER NOT NULL,
    component TEXT NOT NULL,
    uid TEXT NOT NULL,
    start_ms INTEGER,
    end_ms INTEGER,
    modseq INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    UNIQUE (collection_id, name)
);
CREATE INDEX dav_resources_modseq ON dav_resources(collection_id, modseq);
CREATE INDEX dav_resources_uid ON dav_resources(collection_id, uid);
