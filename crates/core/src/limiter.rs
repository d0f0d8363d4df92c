//! One rate limiter for every login surface (DESIGN invariant 11).
//!
//! Failures are counted per key — the account name tried, the client address (IPv6 by
//! /64, since one host holds a whole /64), and a keyed fingerprint of the password tried
//! (one password sprayed across many accounts). Past a key's free attempts, each further
//! failure doubles a delay (1 s, 2 s, 4 s, … up to a maximum) during which attempts on
//! that key are refused without checking the password. There is no lockout: the owner
//! gets in once the delay has passed. Unknown and known account names are keyed the same
//! way, so the limiter's behaviour tells nothing about which names exist.
//!
//! With several nodes on one database the counters live in the store
//! (`Store::shared_limiter`), so an attacker cannot multiply their budget by the number
//! of nodes; each node also keeps its own counters, which decide alone when the store
//! cannot be reached (throttling never fails open).

use postern_store::SharedLimiter;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LimiterSettings {
    pub free_per_account: u32,
    pub free_per_ip: u32,
    pub free_per_password: u32,
    pub max_delay: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        LimiterSettings {
            free_per_account: 5,
            free_per_ip: 20,
            free_per_password: 10,
            max_delay: Duration::from_secs(300),
            window: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum KeyKind {
    Account,
    Ip,
    Password,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key(KeyKind, String);

impl Key {
    /// The key as the shared counters name it.
    fn shared_name(&self) -> String {
        let kind = match self.0 {
            KeyKind::Account => "account",
            KeyKind::Ip => "ip",
            KeyKind::Password => "password",
        };
        format!("{kind}:{}", self.1)
    }
}

struct Counter {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// The keys one login attempt is counted under.
pub struct AttemptKeys {
    keys: Vec<Key>,
}

pub struct RateLimiter {
    settings: LimiterSettings,
    /// When a throttled attempt on an account was last written to the ledger: refused
    /// attempts cost an attacker nothing, so each must not cost us a durable write.
    throttle_noted: Mutex<HashMap<String, Instant>>,
    /// Per-process secret so the table never holds a password's plain hash.
    secret: [u8; 32],
    table: Mutex<HashMap<Key, Counter>>,
    /// Counters shared with the other nodes, when the store has them.
    shared: Option<Arc<dyn SharedLimiter>>,
    /// The nodes' common secret for password keys (fetched once from the store).
    shared_secret: tokio::sync::OnceCell<[u8; 32]>,
}

fn now_ms() -> i64 {
    postern_store::now_ms()
}

/// Upper bound on tracked keys; past it, expired entries are swept.
const SWEEP_AT: usize = 100_000;
/// At most one ledger entry per account for throttled attempts in this long.
pub const THROTTLE_NOTE_EVERY: Duration = Duration::from_secs(60);

impl RateLimiter {
    pub fn new(settings: LimiterSettings) -> Self {
        RateLimiter {
            settings,
            throttle_noted: Mutex::new(HashMap::new()),
            secret: rand::random(),
            table: Mutex::new(HashMap::new()),
            shared: None,
            shared_secret: tokio::sync::OnceCell::new(),
        }
    }

    /// Counts in `shared` too (several nodes on one store).
    pub fn with_shared(mut self, shared: Option<Arc<dyn SharedLimiter>>) -> Self {
        self.shared = shared;
        self
    }

    /// The secret for password keys: the nodes' common one when shared (so one sprayed
    /// password is one key everywhere), else this process's.
    async fn password_secret(&self) -> [u8; 32] {
        let Some(shared) = &self.shared else {
            return self.secret;
        };
        match self
            .shared_secret
            .get_or_try_init(|| async { shared.secret().await })
            .await
        {
            Ok(s) => *s,
            Err(e) => {
                tracing::warn!(error = %e, "shared limiter secret unavailable; using this node's");
                self.secret
            }
        }
    }

    pub async fn keys(
        &self,
        account: &str,
        remote: Option<IpAddr>,
        password: &[u8],
    ) -> AttemptKeys {
        let mut keys = vec![Key(KeyKind::Account, account.to_lowercase())];
        if let Some(ip) = remote {
            let ip_key = match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => v4.to_string(),
                    None => {
                        let s = v6.segments();
                        format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                    }
                },
            };
            keys.push(Key(KeyKind::Ip, ip_key));
        }
        let mut h = Sha256::new();
        h.update(self.password_secret().await);
        h.update(password);
        keys.push(Key(KeyKind::Password, hex::encode(&h.finalize()[..16])));
        AttemptKeys { keys }
    }

    fn free(&self, k: KeyKind) -> u32 {
        match k {
            KeyKind::Account => self.settings.free_per_account,
            KeyKind::Ip => self.settings.free_per_ip,
            KeyKind::Password => self.settings.free_per_password,
        }
    }

    /// `Some(wait)` when any key is in its delay, here or (shared) on any node.
    pub async fn check(&self, keys: &AttemptKeys) -> Option<Duration> {
        let local = self.check_local(keys);
        let Some(shared) = &self.shared else {
            return local;
        };
        let names: Vec<String> = keys.keys.iter().map(Key::shared_name).collect();
        let now = now_ms();
        match shared.blocked_until(&names, now).await {
            Ok(Some(until)) => {
                let wait = Duration::from_millis(until.saturating_sub(now).max(0) as u64);
                Some(local.map_or(wait, |l| l.max(wait)))
            }
            Ok(None) => local,
            Err(e) => {
                tracing::warn!(error = %e, "shared limiter unavailable; this node's counters decide");
                local
            }
        }
    }

    fn check_local(&self, keys: &AttemptKeys) -> Option<Duration> {
        let now = Instant::now();
        let table = self.table.lock().ok()?;
        keys.keys
            .iter()
            .filter_map(|k| table.get(k)?.blocked_until)
            .filter(|&until| until > now)
            .map(|until| until - now)
            .max()
    }

    /// The delay after `failures` failures on a key with `free` free attempts.
    fn delay_for(&self, failures: u32, free: u32) -> Duration {
        if failures <= free {
            return Duration::ZERO;
        }
        let exp = (failures - free - 1).min(20);
        Duration::from_secs(1u64 << exp).min(self.settings.max_delay)
    }

    /// Whether a throttled attempt should be written to the ledger: the first for an
    /// account, then at most one per [`THROTTLE_NOTE_EVERY`] (the rest are counted in metrics).
    pub fn note_throttled(&self, keys: &AttemptKeys) -> bool {
        let Some(Key(_, account)) = keys.keys.iter().find(|k| k.0 == KeyKind::Account) else {
            return true;
        };
        let now = Instant::now();
        let Ok(mut noted) = self.throttle_noted.lock() else {
            return true;
        };
        if noted.len() > SWEEP_AT {
            noted.retain(|_, at| now.duration_since(*at) < THROTTLE_NOTE_EVERY);
        }
        match noted.get(account) {
            Some(at) if now.duration_since(*at) < THROTTLE_NOTE_EVERY => false,
            _ => {
                noted.insert(account.clone(), now);
                true
            }
        }
    }

    /// Counts a failure (here, and on the shared counters); returns the delay it
    /// started (zero while attempts are free).
    pub async fn failure(&self, keys: &AttemptKeys) -> Duration {
        let local = self.failure_local(keys);
        let Some(shared) = &self.shared else {
            return local;
        };
        let names: Vec<String> = keys.keys.iter().map(Key::shared_name).collect();
        let now = now_ms();
        let window = i64::try_from(self.settings.window.as_millis()).unwrap_or(i64::MAX);
        let counts = match shared.count_failure(&names, now, window).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "shared limiter unavailable; counted on this node only");
                return local;
            }
        };
        let mut longest = local;
        for ((k, name), failures) in keys.keys.iter().zip(&names).zip(counts) {
            let delay = self.delay_for(failures, self.free(k.0));
            if !delay.is_zero() {
                let until =
                    now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                if let Err(e) = shared.block(name, until).await {
                    tracing::warn!(error = %e, "shared limiter: could not record a delay");
                }
                longest = longest.max(delay);
            }
        }
        longest
    }

    fn failure_local(&self, keys: &AttemptKeys) -> Duration {
        let now = Instant::now();
        let Ok(mut table) = self.table.lock() else {
            return Duration::ZERO;
        };
        if table.len() > SWEEP_AT {
            // Forget what the window forgot. If that frees nothing (a flood of distinct
            // keys inside one window), drop the counters that have no delay running,
            // oldest first, so the table stays bounded without erasing active delays —
            // and sweep only when the table has grown past the bound again.
            let window = self.settings.window;
            table.retain(|_, c| now.duration_since(c.last) < window);
            if table.len() > SWEEP_AT {
                table.retain(|_, c| c.blocked_until.is_some_and(|u| u > now));
            }
        }
        let mut longest = Duration::ZERO;
        for k in &keys.keys {
            let c = table.entry(k.clone()).or_insert(Counter {
                failures: 0,
                last: now,
                blocked_until: None,
            });
            if now.duration_since(c.last) >= self.settings.window {
                c.failures = 0;
            }
            c.failures = c.failures.saturating_add(1);
            c.last = now;
            let delay = self.delay_for(c.failures, self.free(k.0));
            if !delay.is_zero() {
                c.blocked_until = Some(now + delay);
                longest = longest.max(delay);
            }
        }
        longest
    }

    /// A success clears the account's counter only. Not the address's: an attacker who
    /// logs into an account of their own now and then must not reset the budget of the
    /// address they guess from. Not the password's: a sprayed password that works
    /// somewhere is still being sprayed.
    pub async fn success(&self, keys: &AttemptKeys) {
        if let Ok(mut table) = self.table.lock() {
            for k in &keys.keys {
                if k.0 == KeyKind::Account {
                    table.remove(k);
                }
            }
        }
        if let Some(shared) = &self.shared {
            for k in keys.keys.iter().filter(|k| k.0 == KeyKind::Account) {
                if let Err(e) = shared.clear(&k.shared_name()).await {
                    tracing::warn!(error = %e, "shared limiter: could not clear an account");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LimiterSettings {
        LimiterSettings {
            free_per_account: 3,
            free_per_ip: 100,
            free_per_password: 100,
            max_delay: Duration::from_secs(8),
            window: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn delays_grow_and_cap() {
        let l = RateLimiter::new(settings());
        let k = l.keys("a@x", None, b"pw").await;
        for _ in 0..3 {
            assert_eq!(l.failure(&k).await, Duration::ZERO);
            assert!(l.check(&k).await.is_none());
        }
        let mut delays = Vec::new();
        for _ in 0..6 {
            delays.push(l.failure(&k).await.as_secs());
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);
        assert!(l.check(&k).await.is_some());
        // Another account from elsewhere is not affected.
        let other = l.keys("b@x", None, b"other").await;
        assert!(l.check(&other).await.is_none());
    }

    #[tokio::test]
    async fn spraying_one_password_is_caught() {
        let mut s = settings();
        s.free_per_account = 100;
        s.free_per_password = 5;
        let l = RateLimiter::new(s);
        for i in 0..6 {
            let k = l.keys(&format!("user{i}@x"), None, b"Summer2026!").await;
            l.failure(&k).await;
        }
        let same = l.keys("user99@x", None, b"Summer2026!").await;
        assert!(l.check(&same).await.is_some());
        let different = l.keys("user99@x", None, b"different").await;
        assert!(l.check(&different).await.is_none());
    }

    #[tokio::test]
    async fn ipv6_counts_per_64() {
        let mut s = settings();
        s.free_per_account = 100;
        s.free_per_ip = 2;
        let l = RateLimiter::new(s);
        for i in 0..3u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            let k = l
                .keys(&format!("u{i}@x"), Some(ip), format!("p{i}").as_bytes())
                .await;
            l.failure(&k).await;
        }
        let other: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let k = l.keys("z@x", Some(other), b"q").await;
        assert!(l.check(&k).await.is_some());
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let k = l.keys("z@x", Some(elsewhere), b"q").await;
        assert!(l.check(&k).await.is_none());
    }

    #[tokio::test]
    async fn success_clears_the_account_only() {
        let l = RateLimiter::new(settings());
        let k = l.keys("a@x", None, b"pw").await;
        for _ in 0..4 {
            l.failure(&k).await;
        }
        assert!(l.check(&k).await.is_some());
        l.success(&k).await;
        let again = l.keys("a@x", None, b"new").await;
        assert!(l.check(&again).await.is_none());
    }

    #[tokio::test]
    async fn own_logins_do_not_reset_an_address() {
        let mut s = settings();
        s.free_per_account = 100;
        s.free_per_ip = 3;
        let l = RateLimiter::new(s);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..4 {
            let k = l
                .keys(
                    &format!("victim{i}@x"),
                    Some(ip),
                    format!("guess{i}").as_bytes(),
                )
                .await;
            l.failure(&k).await;
        }
        // The attacker logs into their own account from the same address.
        let own = l.keys("attacker@x", Some(ip), b"own").await;
        l.success(&own).await;
        let k = l.keys("victim9@x", Some(ip), b"guess9").await;
        assert!(l.check(&k).await.is_some());
    }

    /// Counters in memory standing in for the store's: two limiters (two nodes) on one
    /// set of shared counters throttle together; a failing store leaves each node's own
    /// counters deciding.
    #[derive(Default)]
    struct FakeShared {
        rows: Mutex<HashMap<String, (u32, i64, i64)>>,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl SharedLimiter for FakeShared {
        async fn secret(&self) -> Result<[u8; 32], String> {
            Ok([7; 32])
        }
        async fn blocked_until(&self, keys: &[String], now: i64) -> Result<Option<i64>, String> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("down".into());
            }
            let rows = self.rows.lock().unwrap();
            Ok(keys
                .iter()
                .filter_map(|k| rows.get(k).map(|r| r.2))
                .filter(|u| *u > now)
                .max())
        }
        async fn count_failure(
            &self,
            keys: &[String],
            now: i64,
            window: i64,
        ) -> Result<Vec<u32>, String> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("down".into());
            }
            let mut rows = self.rows.lock().unwrap();
            Ok(keys
                .iter()
                .map(|k| {
                    let r = rows.entry(k.clone()).or_insert((0, now, 0));
                    r.0 = if now - r.1 >= window { 1 } else { r.0 + 1 };
                    r.1 = now;
                    r.0
                })
                .collect())
        }
        async fn block(&self, key: &str, until: i64) -> Result<(), String> {
            if let Some(r) = self.rows.lock().unwrap().get_mut(key) {
                r.2 = r.2.max(until);
            }
            Ok(())
        }
        async fn clear(&self, key: &str) -> Result<(), String> {
            self.rows.lock().unwrap().remove(key);
            Ok(())
        }
    }

    #[tokio::test]
    async fn nodes_share_their_counters() {
        let shared = Arc::new(FakeShared::default());
        let a = RateLimiter::new(settings()).with_shared(Some(shared.clone()));
        let b = RateLimiter::new(settings()).with_shared(Some(shared.clone()));
        // Two failures on each node: four in all, one past the three free ones.
        for _ in 0..2 {
            let k = a.keys("v@x", None, b"g").await;
            a.failure(&k).await;
            let k = b.keys("v@x", None, b"g").await;
            b.failure(&k).await;
        }
        let k = b.keys("v@x", None, b"other").await;
        assert!(a.check(&k).await.is_some(), "node A sees B's failures");
        // The same password gives the same key on both nodes (the shared secret).
        assert_eq!(
            a.keys("x@x", None, b"pw").await.keys[1],
            b.keys("x@x", None, b"pw").await.keys[1]
        );
        // A success on B clears the account everywhere.
        b.success(&k).await;
        assert!(a.check(&a.keys("v@x", None, b"z").await).await.is_none());
        // Store down: each node's own counters still throttle.
        shared.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let k = a.keys("w@x", None, b"g").await;
        for _ in 0..4 {
            a.failure(&k).await;
        }
        assert!(a.check(&k).await.is_some());
    }
}
