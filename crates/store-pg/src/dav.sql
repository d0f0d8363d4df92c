-- CalDAV/CardDAV collections and resources (schema version 5). Mirrors
-- crates/store/src/sqlite/dav.sql with the differences schema.sql lists.
CREATE TABLE dav_collections (
    id BIGINT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES principals(id),
    kind TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    color TEXT COLLATE "C",
    sort_order BIGINT,
    description TEXT COLLATE "C",
    components TEXT COLLATE "C" NOT NULL,
    modseq BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (account_id, name)
);
CREATE TABLE dav_resources (
    id BIGINT PRIMARY KEY,
    collection_id BIGINT NOT NULL REFERENCES dav_collections(id),
    account_id BIGINT NOT NULL REFERENCES principals(id),
    name TEXT COLLATE "C" NOT NULL,
    etag TEXT COLLATE "C" NOT NULL,
    data TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    component TEXT COLLATE "C" NOT NULL,
    uid TEXT COLLATE "C" NOT NULL,
    start_ms BIGINT,
    end_ms BIGINT,
    modseq BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    UNIQUE (collection_id, name)
);
CREATE INDEX dav_resources_modseq ON dav_resources(collection_id, modseq);
CREATE INDEX dav_resources_uid ON dav_resources(collection_id, uid);
