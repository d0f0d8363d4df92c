//! RCPT probing across connections (THREATS: account enumeration, "RCPT probing
//! rate-limited"): unknown recipients are counted per remote address in one
//! process-wide map; past a threshold within a window, that address's RCPTs are refused
//! with a temporary error for a while. Counting never goes to the ledger: writing each
//! refused RCPT there would let a flood of probes become a flood of writes. With several
//! nodes on one database the counters are also kept in the store's shared (unlogged)
//! counters, so probing through N nodes does not buy N times the budget; the node's own
//! map still decides when those cannot be reached.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses tracked; past it, expired entries are dropped, and if none are
/// expired the map is cleared (an attacker rotating addresses cannot grow memory).
const MAX_TRACKED: usize = 100_000;

/// IPv4 address, or IPv6 /64 (one subscriber gets a whole /64), as `postern-net` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    V4(u32),
    V6(u64),
}

fn key(ip: IpAddr) -> Key {
    match ip.to_canonical() {
        IpAddr::V4(v4) => Key::V4(u32::from(v4)),
        IpAddr::V6(v6) => Key::V6((u128::from(v6) >> 64) as u64),
    }
}

struct Entry {
    count: u32,
    since: Instant,
    blocked_until: Option<Instant>,
}

pub struct ProbeGuard {
    threshold: u32,
    window: Duration,
    block: Duration,
    map: Mutex<HashMap<Key, Entry>>,
    shared: Option<std::sync::Arc<dyn postern_core::store::SharedLimiter>>,
}

fn shared_key(ip: IpAddr) -> String {
    match key(ip) {
        Key::V4(v) => format!("probe:{}", std::net::Ipv4Addr::from(v)),
        Key::V6(v) => format!("probe:{v:016x}::/64"),
    }
}

impl ProbeGuard {
    pub fn new(threshold: u32, window: Duration, block: Duration) -> ProbeGuard {
        ProbeGuard {
            threshold,
            window,
            block,
            map: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Counts in `shared` too (several nodes on one store).
    pub fn with_shared(
        mut self,
        shared: Option<std::sync::Arc<dyn postern_core::store::SharedLimiter>>,
    ) -> ProbeGuard {
        self.shared = shared;
        self
    }

    /// True while `ip` is blocked, here or (shared) by any node.
    pub async fn blocked_anywhere(&self, ip: IpAddr) -> bool {
        if self.blocked(ip) {
            return true;
        }
        let Some(shared) = &self.shared else {
            return false;
        };
        let now = postern_core::store::now_ms();
        matches!(
            shared.blocked_until(&[shared_key(ip)], now).await,
            Ok(Some(_))
        )
    }

    /// Counts one unknown recipient from `ip` here and in the shared counters.
    pub async fn unknown_anywhere(&self, ip: IpAddr) {
        self.unknown(ip);
        let Some(shared) = &self.shared else {
            return;
        };
        let k = shared_key(ip);
        let now = postern_core::store::now_ms();
        let window = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        if let Ok(counts) = shared
            .count_failure(std::slice::from_ref(&k), now, window)
            .await
            && counts.first().is_some_and(|c| *c >= self.threshold)
        {
            let until =
                now.saturating_add(i64::try_from(self.block.as_millis()).unwrap_or(i64::MAX));
            let _ = shared.block(&k, until).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True while `ip` is blocked.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.lock()
            .get(&key(ip))
            .and_then(|e| e.blocked_until)
            .is_some_and(|until| until > now)
    }

    /// Counts one unknown recipient from `ip`.
    pub fn unknown(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            let window = self.window;
            map.retain(|_, e| {
                now.duration_since(e.since) < window || e.blocked_until.is_some_and(|u| u > now)
            });
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let e = map.entry(key(ip)).or_insert(Entry {
            count: 0,
            since: now,
            blocked_until: None,
        });
        if now.duration_since(e.since) >= self.window {
            e.count = 0;
            e.since = now;
        }
        e.count = e.count.saturating_add(1);
        if e.count >= self.threshold {
            e.blocked_until = Some(now + self.block);
            e.count = 0;
            e.since = now;
            metrics::counter!("postern_smtp_probe_blocks_total").increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_threshold_per_address() {
        let g = ProbeGuard::new(3, Duration::from_secs(60), Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b2: IpAddr = "2001:db8::2".parse().unwrap();
        g.unknown(a);
        g.unknown(a);
        assert!(!g.blocked(a));
        g.unknown(a);
        assert!(g.blocked(a));
        assert!(!g.blocked(b));
        for _ in 0..3 {
            g.unknown(b);
        }
        assert!(g.blocked(b2), "same /64");
        let short = ProbeGuard::new(1, Duration::from_secs(60), Duration::from_millis(1));
        short.unknown(a);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!short.blocked(a));
    }
}
