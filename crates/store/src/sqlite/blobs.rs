//! The embedded backend's blobs: small ones in the database, the others as files.
//!
//! A blob of at most `inline_max` bytes is kept in the `inline_blobs` table and written
//! by an [`Op::PutBlob`] in the same batch as the records that refer to it
//! ([`BlobStore::stage`]), so the group commit's one fsync makes the blob and its
//! records durable together: no file, no file fsync, no directory fsync per message.
//! Bigger blobs are files ([`FsBlobStore`]: temp → fsync → rename → fsync dir, durable
//! before the batch that refers to them).
//!
//! Reads look in the table first, then in the files, so a data directory written before
//! schema version 7 (every blob a file) reads as before, and a blob stored both ways (the
//! limit changed) is found either way. Every read checks the bytes against their name.

use super::SqliteStore;
use crate::Store;
use crate::blob::{BlobStore, FsBlobStore, hash_bytes, valid_hash};
use crate::error::{Result, StoreError};
use crate::model::BlobRef;
use crate::ops::{BlobBytes, Op};
use async_trait::async_trait;
use rusqlite::OptionalExtension;
use std::sync::Arc;

/// Above this, hashing moves off the async worker threads.
const HASH_INLINE_MAX: usize = 64 * 1024;

/// Small blobs in the embedded store's database, the others as files.
pub struct SqliteBlobStore {
    store: Arc<SqliteStore>,
    files: FsBlobStore,
    inline_max: usize,
}

impl SqliteBlobStore {
    /// Blobs of at most `inline_max` bytes go into `store`'s database (0: none do); the
    /// others, and every blob written before, are in `files`.
    pub fn new(store: Arc<SqliteStore>, files: FsBlobStore, inline_max: usize) -> Self {
        SqliteBlobStore {
            store,
            files,
            inline_max,
        }
    }

    /// The blob files, for what reads or copies them directly.
    pub fn files(&self) -> &FsBlobStore {
        &self.files
    }

    async fn inline_get(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        let hash = hash.to_string();
        self.store
            .read(move |c| {
                Ok(
                    c.prepare_cached("SELECT data FROM inline_blobs WHERE hash = ?1")?
                        .query_row([&hash], |r| r.get::<_, Vec<u8>>(0))
                        .optional()?,
                )
            })
            .await
    }
}

async fn hashed(data: Vec<u8>) -> Result<(String, Vec<u8>)> {
    if data.len() <= HASH_INLINE_MAX {
        return Ok((hash_bytes(&data), data));
    }
    tokio::task::spawn_blocking(move || (hash_bytes(&data), data))
        .await
        .map_err(|e| StoreError::Unavailable(format!("hash task failed: {e}")))
}

#[async_trait]
impl BlobStore for SqliteBlobStore {
    async fn put(&self, data: Vec<u8>) -> Result<BlobRef> {
        let (blob, ops) = self.stage(data).await?;
        // Alone in its batch: durable when the write returns.
        self.store.write(ops).await?;
        Ok(blob)
    }

    async fn stage(&self, data: Vec<u8>) -> Result<(BlobRef, Vec<Op>)> {
        if data.len() > self.inline_max {
            return Ok((self.files.put(data).await?, Vec::new()));
        }
        let (hash, data) = hashed(data).await?;
        let blob = BlobRef {
            hash: hash.clone(),
            size: data.len() as u64,
        };
        let op = Op::PutBlob {
            hash,
            data: BlobBytes(Arc::new(data)),
        };
        Ok((blob, vec![op]))
    }

    async fn get(&self, hash: &str) -> Result<Vec<u8>> {
        if !valid_hash(hash) {
            return Err(StoreError::NotFound(format!("blob {hash:?}")));
        }
        match self.inline_get(hash).await? {
            Some(data) => {
                let actual = hash_bytes(&data);
                if actual != hash {
                    return Err(StoreError::CorruptBlob {
                        hash: hash.to_string(),
                        actual,
                    });
                }
                Ok(data)
            }
            None => self.files.get(hash).await,
        }
    }

    async fn exists(&self, hash: &str) -> Result<bool> {
        if !valid_hash(hash) {
            return Ok(false);
        }
        let h = hash.to_string();
        let inline = self
            .store
            .read(move |c| {
                Ok(
                    c.prepare_cached("SELECT 1 FROM inline_blobs WHERE hash = ?1")?
                        .query_row([&h], |_| Ok(()))
                        .optional()?
                        .is_some(),
                )
            })
            .await?;
        Ok(inline || self.files.exists(hash).await?)
    }

    async fn list(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .store
            .read(|c| {
                let mut st = c.prepare("SELECT hash FROM inline_blobs ORDER BY hash")?;
                let rows = st.query_map([], |r| r.get::<_, String>(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        out.extend(self.files.list().await?);
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn delete(&self, hash: &str) -> Result<()> {
        if !valid_hash(hash) {
            return Err(StoreError::NotFound(format!("blob {hash:?}")));
        }
        self.store
            .write(vec![Op::DeleteBlob(hash.to_string())])
            .await?;
        self.files.delete(hash).await
    }
}
