//! Login-throttling counters in PostgreSQL, shared by every node on the schema
//! (`postern_store::SharedLimiter`). The table is UNLOGGED: counters are worth no WAL
//! fsync per failed login (an attacker's failures must not cost us durable writes), and
//! losing them in a database crash only restarts the counting.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use postern_store::SharedLimiter;

/// Created at connect, outside the versioned schema (they hold no data worth migrating).
pub(crate) const SQL: &str = "
CREATE UNLOGGED TABLE IF NOT EXISTS login_throttle (
    key TEXT COLLATE \"C\" PRIMARY KEY,
    failures INT NOT NULL,
    last_ms BIGINT NOT NULL,
    blocked_until_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS node_secrets (
    name TEXT COLLATE \"C\" PRIMARY KEY,
    value BYTEA NOT NULL
);";

/// Past this many failures recorded by one node, stale counters are swept.
const SWEEP_EVERY: u64 = 1000;

pub(crate) struct PgLimiter {
    pool: Pool,
    counted: std::sync::atomic::AtomicU64,
}

impl PgLimiter {
    pub(crate) fn new(pool: Pool) -> PgLimiter {
        PgLimiter {
            pool,
            counted: std::sync::atomic::AtomicU64::new(0),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, String> {
        self.pool.get().await.map_err(|e| e.to_string())
    }
}

#[async_trait]
impl SharedLimiter for PgLimiter {
    async fn secret(&self) -> Result<[u8; 32], String> {
        let c = self.client().await?;
        let fresh: [u8; 32] = rand::random();
        c.execute(
            "INSERT INTO node_secrets (name, value) VALUES ('limiter', $1) ON CONFLICT DO NOTHING",
            &[&fresh.as_slice()],
        )
        .await
        .map_err(|e| e.to_string())?;
        let row = c
            .query_one("SELECT value FROM node_secrets WHERE name = 'limiter'", &[])
            .await
            .map_err(|e| e.to_string())?;
        let v: Vec<u8> = row.try_get(0).map_err(|e| e.to_string())?;
        v.try_into()
            .map_err(|_| "limiter secret is not 32 bytes".to_string())
    }

    async fn blocked_until(&self, keys: &[String], now_ms: i64) -> Result<Option<i64>, String> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT MAX(blocked_until_ms) FROM login_throttle WHERE key = ANY($1)",
                &[&keys],
            )
            .await
            .map_err(|e| e.to_string())?;
        let until: Option<i64> = row.try_get(0).map_err(|e| e.to_string())?;
        Ok(until.filter(|u| *u > now_ms))
    }

    async fn count_failure(
        &self,
        keys: &[String],
        now_ms: i64,
        window_ms: i64,
    ) -> Result<Vec<u32>, String> {
        let c = self.client().await?;
        let n = self
            .counted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let _ = c
                .execute(
                    "DELETE FROM login_throttle WHERE last_ms < $1 AND blocked_until_ms < $2",
                    &[&(now_ms - window_ms), &now_ms],
                )
                .await;
        }
        let st = c
            .prepare_cached(
                "INSERT INTO login_throttle (key, failures, last_ms, blocked_until_ms)
                 VALUES ($1, 1, $2, 0)
                 ON CONFLICT (key) DO UPDATE SET
                   failures = CASE WHEN $2 - login_throttle.last_ms >= $3 THEN 1
                                   ELSE login_throttle.failures + 1 END,
                   last_ms = $2
                 RETURNING failures",
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let row = c
                .query_one(&st, &[k, &now_ms, &window_ms])
                .await
                .map_err(|e| e.to_string())?;
            let f: i32 = row.try_get(0).map_err(|e| e.to_string())?;
            out.push(f.max(0) as u32);
        }
        Ok(out)
    }

    async fn block(&self, key: &str, until_ms: i64) -> Result<(), String> {
        let c = self.client().await?;
        c.execute(
            "UPDATE login_throttle SET blocked_until_ms = GREATEST(blocked_until_ms, $2) WHERE key = $1",
            &[&key, &until_ms],
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), String> {
        let c = self.client().await?;
        c.execute("DELETE FROM login_throttle WHERE key = $1", &[&key])
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}
