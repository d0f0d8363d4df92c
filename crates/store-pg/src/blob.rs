//! Content-addressed blobs in PostgreSQL: `blobs(hash, size)` plus the bytes in 1 MiB
//! rows of `blob_chunks`, written in one transaction (a blob exists whole or not at
//! all) and checked against their name on every read.

use crate::error::{pg_err, pool_err};
use async_trait::async_trait;
use deadpool_postgres::Pool;
use futures_util::{StreamExt, TryFutureExt};
use postern_store::blob::{hash_bytes, valid_hash};
use postern_store::{BlobBytes, BlobRef, BlobStore, Op, Result, StoreError};
use tokio_postgres::types::ToSql;

/// Bytes per `blob_chunks` row.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Above this, hashing moves off the async worker threads.
const HASH_INLINE_MAX: usize = 256 * 1024;

async fn hash_of(data: Vec<u8>) -> Result<(String, Vec<u8>)> {
    if data.len() <= HASH_INLINE_MAX {
        return Ok((hash_bytes(&data), data));
    }
    tokio::task::spawn_blocking(move || (hash_bytes(&data), data))
        .await
        .map_err(|e| StoreError::Unavailable(format!("hash task failed: {e}")))
}

/// Blobs in the metadata database, over the [`crate::PgStore`]'s pool.
#[derive(Clone)]
pub struct PgBlobStore {
    pool: Pool,
}

impl PgBlobStore {
    pub(crate) fn new(pool: Pool) -> Self {
        PgBlobStore { pool }
    }
}

#[async_trait]
impl BlobStore for PgBlobStore {
    async fn put(&self, data: Vec<u8>) -> Result<BlobRef> {
        let (hash, data) = hash_of(data).await?;
        let size = data.len() as u64;
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        // Storing the same bytes twice keeps one copy: a second writer of this name
        // waits for the first to commit, then finds the row and writes nothing.
        let st = tx
            .prepare_cached(
                "INSERT INTO blobs (hash, size) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING RETURNING 1",
            )
            .await
            .map_err(pg_err)?;
        let size_i = size.min(i64::MAX as u64) as i64;
        let inserted = tx
            .query_opt(&st, &[&hash, &size_i])
            .await
            .map_err(pg_err)?
            .is_some();
        if inserted {
            let st = tx
                .prepare_cached("INSERT INTO blob_chunks (hash, idx, data) VALUES ($1, $2, $3)")
                .await
                .map_err(pg_err)?;
            // An empty blob still gets its (empty) chunk 0, so every stored blob has one.
            let chunks: Vec<&[u8]> = if data.is_empty() {
                vec![&[]]
            } else {
                data.chunks(CHUNK_SIZE).collect()
            };
            let idx: Vec<i32> = (0..chunks.len() as i32).collect();
            // Sent back to back on the one connection (pipelined), not one round trip each.
            let params: Vec<[&(dyn ToSql + Sync); 3]> = chunks
                .iter()
                .zip(&idx)
                .map(|(chunk, i)| [&hash as &(dyn ToSql + Sync), i, chunk])
                .collect();
            let inserts = params
                .iter()
                .map(|p| tx.execute(&st, &p[..]).map_err(pg_err));
            futures_util::future::try_join_all(inserts).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(BlobRef { hash, size })
    }

    /// Up to one chunk: put by the batch that refers to it, in its transaction (one
    /// commit instead of two). Bigger blobs are written (and committed) first.
    async fn stage(&self, data: Vec<u8>) -> Result<(BlobRef, Vec<Op>)> {
        if data.len() > CHUNK_SIZE {
            return Ok((self.put(data).await?, Vec::new()));
        }
        let (hash, data) = hash_of(data).await?;
        let blob = BlobRef {
            hash: hash.clone(),
            size: data.len() as u64,
        };
        let op = Op::PutBlob {
            hash,
            data: BlobBytes(std::sync::Arc::new(data)),
        };
        Ok((blob, vec![op]))
    }

    async fn get(&self, hash: &str) -> Result<Vec<u8>> {
        if !valid_hash(hash) {
            return Err(StoreError::NotFound(format!("blob {hash:?}")));
        }
        let client = self.pool.get().await.map_err(pool_err)?;
        // One statement: one snapshot of the blob and all its chunks.
        let st = client
            .prepare_cached(
                "SELECT b.size, c.data FROM blobs b LEFT JOIN blob_chunks c ON c.hash = b.hash
                 WHERE b.hash = $1 ORDER BY c.idx",
            )
            .await
            .map_err(pg_err)?;
        let rows = client.query_raw(&st, [hash]).await.map_err(pg_err)?;
        futures_util::pin_mut!(rows);
        let mut data: Option<Vec<u8>> = None;
        while let Some(row) = rows.next().await {
            let row = row.map_err(pg_err)?;
            let buf = match &mut data {
                Some(buf) => buf,
                None => {
                    let size: i64 = row.try_get(0).map_err(crate::error::decode_err)?;
                    // The recorded size is only a hint for the allocation: capped, so a
                    // tampered row cannot make us reserve absurd amounts.
                    let hint = (size.max(0) as u64).min(64 << 20) as usize;
                    data.insert(Vec::with_capacity(hint))
                }
            };
            let chunk: Option<&[u8]> = row.try_get(1).map_err(crate::error::decode_err)?;
            if let Some(chunk) = chunk {
                buf.extend_from_slice(chunk);
            }
        }
        let Some(data) = data else {
            return Err(StoreError::NotFound(format!("blob {hash}")));
        };
        let want = hash.to_string();
        let (actual, data) = hash_of(data).await?;
        if actual != want {
            return Err(StoreError::CorruptBlob { hash: want, actual });
        }
        Ok(data)
    }

    async fn exists(&self, hash: &str) -> Result<bool> {
        if !valid_hash(hash) {
            return Ok(false);
        }
        let client = self.pool.get().await.map_err(pool_err)?;
        let st = client
            .prepare_cached("SELECT 1 FROM blobs WHERE hash = $1")
            .await
            .map_err(pg_err)?;
        Ok(client
            .query_opt(&st, &[&hash])
            .await
            .map_err(pg_err)?
            .is_some())
    }

    async fn list(&self) -> Result<Vec<String>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let st = client
            .prepare_cached("SELECT hash FROM blobs ORDER BY hash")
            .await
            .map_err(pg_err)?;
        client
            .query(&st, &[])
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.try_get(0).map_err(crate::error::decode_err))
            .collect()
    }

    async fn delete(&self, hash: &str) -> Result<()> {
        if !valid_hash(hash) {
            return Err(StoreError::NotFound(format!("blob {hash:?}")));
        }
        let client = self.pool.get().await.map_err(pool_err)?;
        let st = client
            .prepare_cached("DELETE FROM blobs WHERE hash = $1")
            .await
            .map_err(pg_err)?;
        client.execute(&st, &[&hash]).await.map_err(pg_err)?;
        Ok(())
    }
}
