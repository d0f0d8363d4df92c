-- Small blobs kept in the database (schema version 7), put by the same commit as the
-- records that refer to them (Op::PutBlob): one fsync makes both durable. Bigger blobs,
-- and every blob written before version 7, are files under blobs/ (FsBlobStore).
-- `hash` is the SHA-256 of `data`, checked when it is put and when it is read.
CREATE TABLE inline_blobs (
    hash TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
