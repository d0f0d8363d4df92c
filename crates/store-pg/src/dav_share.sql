-- Calendar and address-book sharing (schema version 6). Mirrors
-- crates/store/src/sqlite/dav_share.sql.
CREATE TABLE dav_shares (
    collection_id BIGINT NOT NULL REFERENCES dav_collections(id),
    account_id BIGINT NOT NULL REFERENCES principals(id),
    grantee_id BIGINT NOT NULL REFERENCES principals(id),
    rights TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (collection_id, grantee_id)
);
CREATE INDEX dav_shares_grantee ON dav_shares(grantee_id);
