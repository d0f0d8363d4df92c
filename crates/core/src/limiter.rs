//! One rate limiter for every login surface (DESIGN invariant 11).
//!
//! Failures are counted per key — the account name tried, the client address (IPv6 by
//! /64, since one host holds a whole /64), and a keyed fingerprint of the password tried
//! (one password sprayed across many accounts). Past a key's free attempts, each further
//! failure doubles a delay (1 s, 2 s, 4 s, … up to a maximum) during which attempts on
//! that key are refused without checking the password. There is no lockout: the owner
//! gets in once the delay has passed. Unknown and known account names are keyed the same
//! way, so the limiter's behaviour tells nothing about which names exist.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
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
        }
    }

    pub fn keys(&self, account: &str, remote: Option<IpAddr>, password: &[u8]) -> AttemptKeys {
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
        h.update(self.secret);
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

    /// `Some(wait)` when any key is in its delay.
    pub fn check(&self, keys: &AttemptKeys) -> Option<Duration> {
        let now = Instant::now();
        let table = self.table.lock().ok()?;
        keys.keys
            .iter()
            .filter_map(|k| table.get(k)?.blocked_until)
            .filter(|&until| until > now)
            .map(|until| until - now)
            .max()
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

    /// Counts a failure; returns the delay it started (zero while attempts are free).
    pub fn failure(&self, keys: &AttemptKeys) -> Duration {
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
            let free = self.free(k.0);
            if c.failures > free {
                let exp = (c.failures - free - 1).min(20);
                let delay = Duration::from_secs(1u64 << exp).min(self.settings.max_delay);
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
    pub fn success(&self, keys: &AttemptKeys) {
        if let Ok(mut table) = self.table.lock() {
            for k in &keys.keys {
                if k.0 == KeyKind::Account {
                    table.remove(k);
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

    #[test]
    fn delays_grow_and_cap() {
        let l = RateLimiter::new(settings());
        let k = l.keys("a@x", None, b"pw");
        for _ in 0..3 {
            assert_eq!(l.failure(&k), Duration::ZERO);
            assert!(l.check(&k).is_none());
        }
        let delays: Vec<u64> = (0..6).map(|_| l.failure(&k).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);
        assert!(l.check(&k).is_some());
        // Another account from elsewhere is not affected.
        assert!(l.check(&l.keys("b@x", None, b"other")).is_none());
    }

    #[test]
    fn spraying_one_password_is_caught() {
        let mut s = settings();
        s.free_per_account = 100;
        s.free_per_password = 5;
        let l = RateLimiter::new(s);
        for i in 0..6 {
            l.failure(&l.keys(&format!("user{i}@x"), None, b"Summer2026!"));
        }
        assert!(l.check(&l.keys("user99@x", None, b"Summer2026!")).is_some());
        assert!(l.check(&l.keys("user99@x", None, b"different")).is_none());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let mut s = settings();
        s.free_per_account = 100;
        s.free_per_ip = 2;
        let l = RateLimiter::new(s);
        for i in 0..3u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            l.failure(&l.keys(&format!("u{i}@x"), Some(ip), format!("p{i}").as_bytes()));
        }
        let other: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!(l.check(&l.keys("z@x", Some(other), b"q")).is_some());
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.check(&l.keys("z@x", Some(elsewhere), b"q")).is_none());
    }

    #[test]
    fn success_clears_the_account_only() {
        let l = RateLimiter::new(settings());
        let k = l.keys("a@x", None, b"pw");
        for _ in 0..4 {
            l.failure(&k);
        }
        assert!(l.check(&k).is_some());
        l.success(&k);
        assert!(l.check(&l.keys("a@x", None, b"new")).is_none());
    }

    #[test]
    fn own_logins_do_not_reset_an_address() {
        let mut s = settings();
        s.free_per_account = 100;
        s.free_per_ip = 3;
        let l = RateLimiter::new(s);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..4 {
            l.failure(&l.keys(
                &format!("victim{i}@x"),
                Some(ip),
                format!("guess{i}").as_bytes(),
            ));
        }
        // The attacker logs into their own account from the same address.
        l.success(&l.keys("attacker@x", Some(ip), b"own"));
        assert!(l.check(&l.keys("victim9@x", Some(ip), b"guess9")).is_some());
    }
}
