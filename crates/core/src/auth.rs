//! Authentication: the only module that can make an [`Authenticated`] or an
//! [`AdminSession`] (DESIGN invariant 2). Code that touches account data takes one of
//! them, so an unauthenticated path cannot reach it by mistake.
//!
//! **Security:** passwords are hashed with Argon2id. An unknown account, an account that
//! cannot log in (group, shared mailbox) and a wrong password cost the same — one
//! Argon2id verification against a dummy hash when there is no real one — and give the
//! same [`CoreError::AuthFailed`]. App passwords are 128-bit random secrets, so a SHA-256
//! digest compared in constant time protects them; they are tried first and cost
//! nothing extra on failure. A successful password check is remembered for
//! `auth_cache_ttl` ([`AuthCache`], like Dovecot's `auth_cache`): a repeated login with
//! the same account, stored hash and password skips Argon2id; wrong passwords never hit
//! it, so every failure still costs one verification (SECURITY.md has the trade-off).

use crate::error::{CoreError, Result};
use crate::{Core, Ctx};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use postern_store::{Actor, CredentialKind, Principal, PrincipalKind, Role, SessionInfo};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Argon2id cost. The defaults are OWASP's minimum for Argon2id (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Argon2Settings {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

pub(crate) fn argon2(s: Argon2Settings) -> Result<Argon2<'static>> {
    let params = Params::new(s.memory_kib, s.iterations, s.parallelism, None)
        .map_err(|e| CoreError::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A PHC string for a password.
pub fn hash_password(s: Argon2Settings, password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| CoreError::Internal(format!("salt: {e}")))?;
    Ok(argon2(s)?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| CoreError::Internal(format!("argon2: {e}")))?
        .to_string())
}

fn verify_password(s: Argon2Settings, phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2(s)
        .map(|a| a.verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// HMAC-SHA256 (RFC 2104) of the length-prefixed `parts` under a 32-byte key.
fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let mut inner = Sha256::new();
    inner.update(ipad);
    for p in parts {
        inner.update((p.len() as u64).to_be_bytes());
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(opad);
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Verified passwords, like Dovecot's `auth_cache`: a successful Argon2id check of
/// (account, stored hash, password) is remembered for `ttl`, so the next login with the
/// same password skips the hash. Only a keyed hash is kept (HMAC-SHA256 under a random
/// key made per process, never stored), not the password; the stored PHC string is part
/// of the key, so changing the password (new hash, new salt) makes old entries miss.
/// Failures are never cached. At most `max` entries.
pub(crate) struct AuthCache {
    key: [u8; 32],
    ttl: std::time::Duration,
    max: usize,
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::time::Instant>>,
    /// Argon2id verifications done (the cache's misses and every failure).
    pub(crate) verifications: std::sync::atomic::AtomicU64,
}

impl AuthCache {
    pub(crate) fn new(ttl: std::time::Duration, max: usize) -> AuthCache {
        AuthCache {
            key: rand::random(),
            ttl,
            max,
            entries: Default::default(),
            verifications: Default::default(),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max > 0
    }

    fn key_of(&self, principal: &Principal, phc: &str, password: &str) -> [u8; 32] {
        hmac_sha256(
            &self.key,
            &[
                &principal.id.0.to_be_bytes(),
                phc.as_bytes(),
                password.as_bytes(),
            ],
        )
    }

    /// Whether this (account, stored hash, password) was verified within the TTL.
    fn hit(&self, k: &[u8; 32]) -> bool {
        if !self.enabled() {
            return false;
        }
        let Ok(mut m) = self.entries.lock() else {
            return false;
        };
        match m.get(k) {
            Some(at) if at.elapsed() < self.ttl => true,
            Some(_) => {
                m.remove(k);
                false
            }
            None => false,
        }
    }

    fn insert(&self, k: [u8; 32]) {
        if !self.enabled() {
            return;
        }
        let Ok(mut m) = self.entries.lock() else {
            return;
        };
        if m.len() >= self.max && !m.contains_key(&k) {
            let ttl = self.ttl;
            m.retain(|_, at| at.elapsed() < ttl);
            if m.len() >= self.max {
                // Still full of live entries: the oldest goes (a miss only costs one
                // Argon2id check), so one busy client does not flush everyone's.
                if let Some(oldest) = m.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k) {
                    m.remove(&oldest);
                }
            }
        }
        m.insert(k, std::time::Instant::now());
    }
}

/// The stored form of an app password: `sha256:<hex>`.
pub(crate) fn app_password_digest(secret: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

/// A random secret of `n` characters from an alphabet without look-alikes.
pub fn generate_secret(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..n)
        .map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char)
        .collect()
}

/// Proof that a user logged in. Only [`Core::authenticate`] makes one.
#[derive(Debug, Clone)]
pub struct Authenticated {
    principal: Principal,
    address: String,
    ctx: Ctx,
}

impl Authenticated {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
    pub fn address(&self) -> &str {
        &self.address
    }
    /// The ledger context of this session: the owner, from where, how.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }
}

/// Proof of administrative access. Made only by [`Core::admin_session`], which checks
/// the admin token held inside `Core` — so no other crate can make one without knowing
/// the token (the CLI reads it from the data directory; the admin API gets it in the
/// `Authorization` header).
#[derive(Debug, Clone)]
pub struct AdminSession {
    ctx: Ctx,
}

impl AdminSession {
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }
}

impl Core {
    /// Installs the admin token (only its SHA-256 is kept). Until this is called no
    /// [`AdminSession`] can be made.
    pub fn set_admin_token(&self, token: &str) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Ok(mut t) = self.admin_token.write() {
            *t = Some(digest);
        }
    }

    /// An admin session for whoever presents the admin token (constant-time check).
    /// `actor` names them in the ledger (`cli:root`, `admin-api`).
    pub fn admin_session(
        &self,
        presented: &str,
        actor: &str,
        mut session: SessionInfo,
    ) -> Option<AdminSession> {
        let expected = (*self.admin_token.read().ok()?)?;
        let digest = Sha256::digest(presented.as_bytes());
        if !bool::from(digest.as_slice().ct_eq(&expected)) {
            return None;
        }
        session.auth_method.get_or_insert_with(|| "token".into());
        Some(AdminSession {
            ctx: Ctx {
                actor: Actor {
                    account: Some(actor.to_string()),
                    role: Role::Admin,
                },
                session,
            },
        })
    }
}

impl Core {
    /// Argon2id password verifications done so far (logins that the verified-password
    /// cache answered are not counted): for tests and metrics.
    pub fn password_verifications(&self) -> u64 {
        self.auth_cache
            .verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks a user name and secret for `protocol` (`imap`, `smtp`, `dav`, …).
    ///
    /// Throttled attempts are refused before any password is checked. Every attempt,
    /// good or bad, is recorded in the ledger.
    pub async fn authenticate(
        &self,
        username: &str,
        secret: &str,
        protocol: &str,
        mut session: SessionInfo,
    ) -> Result<Authenticated> {
        let remote_ip = session.remote.as_deref().and_then(|r| {
            r.parse::<std::net::SocketAddr>()
                .ok()
                .map(|s| s.ip())
                .or_else(|| r.parse().ok())
        });
        let name = crate::address::parse_address(username).ok();
        // Keyed by the normalised address, so `Alice@Example.com.` and `alice@example.com`
        // share one budget.
        let account_key = name
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_else(|| username.to_string());
        let keys = self
            .limiter
            .keys(&account_key, remote_ip, secret.as_bytes())
            .await;
        let ctx_for = |session: SessionInfo| Ctx {
            actor: Actor {
                account: Some(
                    name.as_ref()
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "(invalid)".into()),
                ),
                role: Role::Owner,
            },
            session,
        };
        session.protocol = protocol.to_string();
        if let Some(wait) = self.limiter.check(&keys).await {
            metrics::counter!("postern_auth_throttled_total", "protocol" => protocol.to_string())
                .increment(1);
            if self.limiter.note_throttled(&keys) {
                let ctx = ctx_for(session);
                self.record(&ctx, "auth.login", None, vec![], "throttled", None, None)
                    .await?;
            }
            return Err(CoreError::Throttled(wait));
        }

        let principal = match &name {
            Some(a) => self.find_principal(a).await?,
            None => None,
        };
        let creds = match &principal {
            Some(p) if p.kind == PrincipalKind::Individual => self.store.credentials(p.id).await?,
            _ => Vec::new(),
        };
        // App passwords first: cheap, and only a success ends early.
        let digest = app_password_digest(secret);
        let app = creds.iter().find(|c| {
            c.kind == CredentialKind::App
                && (c.protocols.is_empty() || c.protocols.iter().any(|p| p == protocol))
                && bool::from(c.hash.as_bytes().ct_eq(digest.as_bytes()))
        });
        let (ok, method) = if app.is_some() {
            (true, "app-password")
        } else {
            // Exactly one Argon2id verification on every other path, unless this very
            // password was verified against this very stored hash within
            // `auth_cache_ttl` (a success; failures are never cached).
            let phc = creds
                .iter()
                .find(|c| c.kind == CredentialKind::Password)
                .map(|c| c.hash.clone());
            let cache_key = match (&principal, &phc) {
                (Some(p), Some(phc)) if self.auth_cache.enabled() => {
                    Some(self.auth_cache.key_of(p, phc, secret))
                }
                _ => None,
            };
            let cached = cache_key.as_ref().is_some_and(|k| self.auth_cache.hit(k));
            let real = phc.is_some();
            let phc = phc.unwrap_or_else(|| self.dummy_hash.clone());
            if cached {
                (true, "password")
            } else {
                let settings = self.settings.argon2;
                let secret_owned = secret.to_string();
                let _slot = self
                    .hash_slots
                    .acquire()
                    .await
                    .map_err(|e| CoreError::Internal(e.to_string()))?;
                self.auth_cache
                    .verifications
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let matched = tokio::task::spawn_blocking(move || {
                    verify_password(settings, &phc, &secret_owned)
                })
                .await
                .map_err(|e| CoreError::Internal(e.to_string()))?;
                if matched
                    && real
                    && let Some(k) = cache_key
                {
                    self.auth_cache.insert(k);
                }
                (matched && real, "password")
            }
        };
        session.auth_method = Some(method.into());
        match (ok, principal) {
            (true, Some(p)) => {
                self.limiter.success(&keys).await;
                let address = format!(
                    "{}@{}",
                    p.local_part,
                    name.as_ref()
                        .map(|a| a.domain().to_string())
                        .unwrap_or_default()
                );
                let ctx = Ctx {
                    actor: Actor {
                        account: Some(address.clone()),
                        role: Role::Owner,
                    },
                    session,
                };
                self.record(&ctx, "auth.login", Some(&address), vec![], "ok", None, None)
                    .await?;
                Ok(Authenticated {
                    principal: p,
                    address,
                    ctx,
                })
            }
            _ => {
                let delay = self.limiter.failure(&keys).await;
                self.record(
                    &ctx_for(session),
                    "auth.login",
                    None,
                    vec![],
                    "failed",
                    None,
                    None,
                )
                .await?;
                metrics::counter!("postern_auth_failures_total", "protocol" => protocol.to_string()).increment(1);
                // Growing delays: the answer to a failure waits as long as the next
                // attempt must (capped so a session is not held forever).
                tokio::time::sleep(delay.min(std::time::Duration::from_secs(5))).await;
                Err(CoreError::AuthFailed)
            }
        }
    }
}
