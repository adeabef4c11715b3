//! Sign-in throttling without a lockout (req AU-03), shared by every server replica.
//!
//! Failures are counted per account (the submitted email, normalized, whether or not such an
//! account exists, so throttling itself reveals nothing) and per client address, over a
//! sliding window. After the free attempts, each further failure doubles the wait before the
//! next attempt is even checked, up to a cap; a throttled attempt is refused with `429` and a
//! `Retry-After` without checking the password. An attacker can therefore delay a victim's
//! password sign-in by at most the cap per attempt, never lock the account: the wait ends on
//! its own, and passkey sign-in (no password, nothing to guess) is not throttled by password
//! failures — the documented way in during an attack. A successful sign-in clears the
//! account's count. Times come from the injected clock.
//!
//! # Several replicas
//!
//! The counts live in PostgreSQL ([`store::throttle`], table `auth_throttle`), so every
//! `chartroom serve` on one database counts together: attempts spread over two replicas are
//! throttled exactly as if they had all reached one. Keys are SHA-256 hashes of the throttle's
//! scope, the key's kind and the normalized email or address: the database holds no email
//! and no address in clear. A check is one statement; a failure, one more; a public page
//! request, one. Counts expire at the end of their window and the passkey-challenge sweep
//! removes them.
//!
//! The same mechanism, keyed by client address only, limits the public client pages (online
//! booking, intake and manage links: no session to hold anyone to account): a second
//! [`Throttle`] (its own [`ThrottleConfig::scope`]) whose every request counts
//! ([`Throttle::admit_address`]), so an address that goes past
//! [`ThrottleConfig::client_pages`]' free requests in the window waits, with the same doubling
//! and cap.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest as _, Sha256};
use store::Store;
use store::throttle::{Counting, ThrottleKey};

use crate::AppError;

/// Throttle settings.
#[derive(Clone, Copy, Debug)]
pub struct ThrottleConfig {
    /// What is counted: throttles of different scopes never share a count (the sign-in
    /// throttle's address failures are not the client pages' requests).
    pub scope: &'static str,
    /// Failures per account before waits start (ASVS 6.3.1 / NIST SP 800-63B §5.2.2 allows at
    /// most 100 consecutive failures; we start slowing down much earlier).
    pub account_free: u32,
    /// Failures per client address before waits start.
    pub address_free: u32,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            scope: "sign-in",
            account_free: 5,
            address_free: 20,
            window: Duration::minutes(15),
            max_delay: Duration::minutes(15),
        }
    }
}

impl ThrottleConfig {
    /// The public client pages' limit: 300 requests per address in 15 minutes before waits
    /// start (a client filling in a long form or trying several times makes a few dozen).
    #[must_use]
    pub fn client_pages() -> Self {
        Self {
            scope: "client-pages",
            account_free: u32::MAX,
            address_free: 300,
            window: Duration::minutes(15),
            max_delay: Duration::minutes(15),
        }
    }

    /// No throttling (benchmarks and timing tests only): nothing is counted.
    #[must_use]
    pub fn off() -> Self {
        Self {
            account_free: u32::MAX,
            address_free: u32::MAX,
            ..Self::default()
        }
    }

    fn is_off(&self) -> bool {
        self.account_free == u32::MAX && self.address_free == u32::MAX
    }
}

/// A refused attempt: try again after this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub i64);

impl From<RetryAfter> for AppError {
    fn from(wait: RetryAfter) -> Self {
        AppError::Throttled(wait.0)
    }
}

/// What recording a failure found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailOutcome {
    /// This failure started a throttling burst (raise one alert for it).
    pub burst_started: bool,
}

/// The throttle: its settings; the counts are in the database.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    cfg: ThrottleConfig,
}

fn key(scope: &str, kind: &str, value: &str) -> ThrottleKey {
    let mut h = Sha256::new();
    for part in ["chartroom-throttle", scope, kind, value] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    ThrottleKey(h.finalize().into())
}

fn wait(until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<(), RetryAfter> {
    match until {
        Some(until) if until > now => Err(RetryAfter((until - now).num_seconds().max(1))),
        _ => Ok(()),
    }
}

impl Throttle {
    /// A throttle with `cfg`.
    #[must_use]
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self { cfg }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &ThrottleConfig {
        &self.cfg
    }

    /// The account key: a hash of the scope and the normalized email.
    fn account_key(&self, email: &str) -> ThrottleKey {
        key(self.cfg.scope, "account", &email.trim().to_lowercase())
    }

    /// The address key: a hash of the scope and the address.
    fn address_key(&self, addr: IpAddr) -> ThrottleKey {
        key(self.cfg.scope, "address", &addr.to_string())
    }

    fn keys(&self, email: &str, addr: Option<IpAddr>) -> Vec<(ThrottleKey, u32)> {
        std::iter::once((self.account_key(email), self.cfg.account_free))
            .chain(addr.map(|a| (self.address_key(a), self.cfg.address_free)))
            .collect()
    }

    /// Whether an attempt for `email` from `addr` may be checked now: one statement.
    ///
    /// # Errors
    /// [`AppError::Throttled`] while the account or the address waits; the database failed.
    pub async fn check(
        &self,
        db: &Store,
        email: &str,
        addr: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        if self.cfg.is_off() {
            return Ok(());
        }
        let keys: Vec<ThrottleKey> = self.keys(email, addr).into_iter().map(|k| k.0).collect();
        wait(db.throttle_wait(&keys, now).await?, now).map_err(AppError::from)
    }

    /// Records a failed attempt: one statement.
    ///
    /// # Errors
    /// The database failed.
    pub async fn fail(
        &self,
        db: &Store,
        email: &str,
        addr: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<FailOutcome, AppError> {
        if self.cfg.is_off() {
            return Ok(FailOutcome::default());
        }
        let burst_started = db
            .throttle_fail(
                &self.keys(email, addr),
                self.cfg.window,
                self.cfg.max_delay,
                now,
            )
            .await?;
        Ok(FailOutcome { burst_started })
    }

    /// Admits one request from `addr` to a page where every request counts (the public client
    /// pages): refused while the address waits, otherwise counted like a failure, so the
    /// address's free requests run out and the waits start. One statement. Without an
    /// address: admitted.
    ///
    /// # Errors
    /// [`AppError::Throttled`] while the address waits; the database failed.
    pub async fn admit_address(
        &self,
        db: &Store,
        addr: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let Some(addr) = addr else { return Ok(()) };
        if self.cfg.is_off() {
            return Ok(());
        }
        let counting = Counting {
            free: self.cfg.address_free,
            window: self.cfg.window,
            max_delay: self.cfg.max_delay,
        };
        let until = db
            .throttle_admit(self.address_key(addr), counting, now)
            .await?;
        wait(until, now).map_err(AppError::from)
    }

    /// Records a successful sign-in: the account's count is cleared (the address's is not).
    ///
    /// # Errors
    /// The database failed.
    pub async fn succeed(&self, db: &Store, email: &str) -> Result<(), AppError> {
        if self.cfg.is_off() {
            return Ok(());
        }
        Ok(db.throttle_clear(self.account_key(email)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashes_separated_by_scope_and_kind() {
        let signin = Throttle::new(ThrottleConfig::default());
        let pages = Throttle::new(ThrottleConfig::client_pages());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        // Normalized: case and surrounding space do not make a new account key.
        assert_eq!(
            signin.account_key("V@x.invalid "),
            signin.account_key("v@x.invalid")
        );
        // The same address in two scopes is two counts.
        assert_ne!(signin.address_key(ip), pages.address_key(ip));
        // An email that spells an address is not that address.
        assert_ne!(signin.account_key("192.0.2.1"), signin.address_key(ip));
        // Nothing in clear.
        let k = signin.account_key("v@x.invalid");
        assert!(!k.0.windows(3).any(|w| w == b"v@x"));
    }

    #[test]
    fn waits_round_up_to_a_second() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(wait(None, now), Ok(()));
        assert_eq!(wait(Some(now), now), Ok(()));
        assert_eq!(
            wait(Some(now + Duration::milliseconds(10)), now),
            Err(RetryAfter(1))
        );
        assert_eq!(
            wait(Some(now + Duration::minutes(15)), now),
            Err(RetryAfter(900))
        );
    }
}
