//! Content-addressed blobs. A blob is named by the SHA-256 of its bytes, so one copy
//! serves every recipient of a message and a name can never point at other content.
//!
//! The file backend writes `tmp/<random>` → fsync → rename to `ab/cd/<hash>` → fsync
//! the directory, so after a crash a blob either exists whole under its name or not at
//! all. Reads check the hash. No path ever comes from outside: names are hex digests
//! checked by [`valid_hash`] before they touch the file system.

use crate::error::{Result, StoreError};
use crate::model::BlobRef;
use crate::ops::Op;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn hash_bytes(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A blob name is exactly 64 lower-case hex digits.
pub fn valid_hash(hash: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores the bytes durably and returns their name. Storing the same bytes twice
    /// keeps one copy.
    async fn put(&self, data: Vec<u8>) -> Result<BlobRef>;
    /// Stores the bytes as part of the batch that will refer to them: returns their name
    /// and the ops the caller must put in that same [`crate::Store::write`] (on the
    /// store this blob store belongs to), anywhere in it. When the batch commits the
    /// blob is durable with it; when it fails or is never written, nothing refers to
    /// the blob. A store that keeps the bytes elsewhere writes them durably here and
    /// returns no ops (the default).
    async fn stage(&self, data: Vec<u8>) -> Result<(BlobRef, Vec<Op>)> {
        Ok((self.put(data).await?, Vec::new()))
    }
    /// Reads a blob, checking its hash.
    async fn get(&self, hash: &str) -> Result<Vec<u8>>;
    async fn exists(&self, hash: &str) -> Result<bool>;
    /// Every stored blob name (for verification and garbage collection).
    async fn list(&self) -> Result<Vec<String>>;
    /// Removes a blob; removing a missing one is not an error.
    async fn delete(&self, hash: &str) -> Result<()>;
}

/// Blobs as files under one directory.
pub struct FsBlobStore {
    root: PathBuf,
    /// Directories (`ab/cd`, and `ab`) whose own entries (in `ab`, in the root) this
    /// process has made durable: once synced they stay so, and each needs it only once.
    durable_dirs: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl FsBlobStore {
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("tmp"))?;
        // Temp files left by a crash are never referenced: a blob only counts once
        // renamed. Only old ones go: another process (the CLI beside a running server)
        // may be writing its own right now.
        if let Ok(rd) = std::fs::read_dir(root.join("tmp")) {
            for e in rd.flatten() {
                let stale = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_TMP);
                if stale {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(FsBlobStore {
            root: root.to_path_buf(),
            durable_dirs: Default::default(),
        })
    }

    fn path_of(&self, hash: &str) -> Result<PathBuf> {
        if !valid_hash(hash) {
            return Err(StoreError::NotFound(format!("blob {hash:?}")));
        }
        Ok(self.root.join(&hash[0..2]).join(&hash[2..4]).join(hash))
    }

    fn sync_dir(dir: &Path) -> Result<()> {
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    fn put_sync(
        root: &Path,
        dest: PathBuf,
        data: &[u8],
        durable_dirs: &std::sync::Mutex<std::collections::HashSet<String>>,
    ) -> Result<()> {
        let dir = dest
            .parent()
            .ok_or_else(|| StoreError::Invalid("blob path has no parent".into()))?;
        let mid = dir
            .parent()
            .ok_or_else(|| StoreError::Invalid("blob path has no grandparent".into()))?;
        if dest.exists() {
            // Someone else wrote it, maybe a moment ago and not yet synced: make sure
            // the file and every directory entry leading to it are durable before our
            // caller acknowledges anything that refers to it.
            std::fs::File::open(&dest)?.sync_all()?;
        } else {
            std::fs::create_dir_all(dir)?;
            let tmp = root
                .join("tmp")
                .join(format!("{:016x}", rand::random::<u64>()));
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &dest)?;
        }
        // The rename is durable once `ab/cd` is synced; the directories create_dir_all
        // may have made (here or in another process or task, maybe not yet synced)
        // once `ab` (for `cd`) and the root (for `ab`) are — each done the first time
        // this process uses that directory. `ab` and `ab/cd` are tracked apart: a
        // fresh store makes up to 65,536 `ab/cd` but only 256 `ab`, and syncing the
        // root for each new `ab/cd` cost every new blob a fourth fsync, all of them on
        // the one root directory every writer shares.
        Self::sync_dir(dir)?;
        let rel = |p: &Path| {
            p.strip_prefix(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let (prefix, top) = (rel(dir), rel(mid));
        let known = |key: &str| {
            durable_dirs
                .lock()
                .map(|d| d.contains(key))
                .unwrap_or(false)
        };
        if !known(&prefix) {
            Self::sync_dir(mid)?;
            if !known(&top) {
                Self::sync_dir(root)?;
                if let Ok(mut d) = durable_dirs.lock() {
                    d.insert(top);
                }
            }
            if let Ok(mut d) = durable_dirs.lock() {
                d.insert(prefix);
            }
        }
        Ok(())
    }
}

/// Temp files older than this are leftovers of a crash.
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(3600);

fn join_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Unavailable(format!("blob task failed: {e}"))
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, data: Vec<u8>) -> Result<BlobRef> {
        let hash = hash_bytes(&data);
        let dest = self.path_of(&hash)?;
        let root = self.root.clone();
        let size = data.len() as u64;
        let durable_dirs = self.durable_dirs.clone();
        tokio::task::spawn_blocking(move || Self::put_sync(&root, dest, &data, &durable_dirs))
            .await
            .map_err(join_err)??;
        Ok(BlobRef { hash, size })
    }

    async fn get(&self, hash: &str) -> Result<Vec<u8>> {
        let path = self.path_of(hash)?;
        let want = hash.to_string();
        tokio::task::spawn_blocking(move || {
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::NotFound(format!("blob {want}")));
                }
                Err(e) => return Err(e.into()),
            };
            let actual = hash_bytes(&data);
            if actual != want {
                return Err(StoreError::CorruptBlob { hash: want, actual });
            }
            Ok(data)
        })
        .await
        .map_err(join_err)?
    }

    async fn exists(&self, hash: &str) -> Result<bool> {
        Ok(self.path_of(hash).map(|p| p.exists()).unwrap_or(false))
    }

    async fn list(&self) -> Result<Vec<String>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for a in std::fs::read_dir(&root)?.flatten() {
                if !a.path().is_dir() || a.file_name() == "tmp" {
                    continue;
                }
                for b in std::fs::read_dir(a.path())?.flatten() {
                    for f in std::fs::read_dir(b.path())?.flatten() {
                        if let Some(name) = f.file_name().to_str() {
                            out.push(name.to_string());
                        }
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(join_err)?
    }

    async fn delete(&self, hash: &str) -> Result<()> {
        let path = self.path_of(hash)?;
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
