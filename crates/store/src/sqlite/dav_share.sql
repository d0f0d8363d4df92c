-- Calendar and address-book sharing (schema version 6): grants on one account's DAV
-- collection to other accounts, as RFC 4314 rights letters (core::access::Rights).
CREATE TABLE dav_shares (
    collection_id INTEGER NOT NULL REFERENCES dav_collections(id),
    account_id INTEGER NOT NULL REFERENCES principals(id),
    grantee_id INTEGER NOT NULL REFERENCES principals(id),
    rights TEXT NOT NULL,
    PRIMARY KEY (collection_id, grantee_id)
) WITHOUT ROWID;
CREATE INDEX dav_shares_grantee ON dav_shares(grantee_id);
