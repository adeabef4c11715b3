//! Sign-in throttling without a lockout (req AU-03).
//!
//! Failures are counted per account (the submitted email, normalized, whether or not such an
//! account exists, so throttling itself reveals nothing) and per client address, over a
//! sliding window. After the free attempts, each further failure doubles the wait before the
//! next attempt is even checked, up to a cap; a throttled attempt is refused with `429` and a
//! `Retry-After` without checking the password. An attacker can therefore delay a victim's
//! password sign-in by at most the cap per attempt, never lock the account: the wait ends on
//! its own, and passkey sign-in (no password, nothing to guess) is not throttled by password
//! failures — the documented way in during an attack. A successful sign-in clears the
//! account's count. Times come from the injected clock; state is in memory per server
//! process (bounded: idle entries are dropped after the window).
//!
//! The same mechanism, keyed by client address only, limits the public client pages (online
//! booking, intake and manage links: no session to hold anyone to account): a second
//! [`Throttle`] whose every request counts ([`Throttle::admit_address`]), so an address that
//! goes past [`ThrottleConfig::client_pages`]' free requests in the window waits, with the same
//! doubling and cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest as _, Sha256};

/// Throttle settings.
#[derive(Clone, Copy, Debug)]
pub struct ThrottleConfig {
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
            account_free: u32::MAX,
            address_free: 300,
            window: Duration::minutes(15),
            max_delay: Duration::minutes(15),
        }
    }

    /// No throttling (benchmarks and timing tests only).
    #[must_use]
    pub fn off() -> Self {
        Self {
            account_free: u32::MAX,
            address_free: u32::MAX,
            ..Self::default()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Account([u8; 16]),
    Address(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Count {
    failures: u32,
    last: DateTime<Utc>,
    blocked_until: Option<DateTime<Utc>>,
    alerted: bool,
}

/// A refused attempt: try again after this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub i64);

/// What recording a failure found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailOutcome {
    /// This failure started a throttling burst (raise one alert for it).
    pub burst_started: bool,
}

/// The throttle.
#[derive(Debug)]
pub struct Throttle {
    cfg: ThrottleConfig,
    counts: Mutex<HashMap<Key, Count>>,
}

const MAX_ENTRIES: usize = 200_000;

/// The account key: a hash of the normalized email, so memory holds no emails.
fn account_key(email: &str) -> Key {
    let norm = email.trim().to_lowercase();
    let h = Sha256::digest(norm.as_bytes());
    let mut k = [0_u8; 16];
    k.copy_from_slice(h.get(..16).unwrap_or(&[0; 16]));
    Key::Account(k)
}

impl Throttle {
    /// A throttle with `cfg`.
    #[must_use]
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self {
            cfg,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn free(&self, key: &Key) -> u32 {
        match key {
            Key::Account(_) => self.cfg.account_free,
            Key::Address(_) => self.cfg.address_free,
        }
    }

    /// Whether an attempt for `email` from `addr` may be checked now.
    pub fn check(
        &self,
        email: &str,
        addr: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), RetryAfter> {
        self.check_keys(&[Some(account_key(email)), addr.map(Key::Address)], now)
    }

    fn check_keys(&self, keys: &[Option<Key>], now: DateTime<Utc>) -> Result<(), RetryAfter> {
        let Ok(counts) = self.counts.lock() else {
            return Ok(());
        };
        let wait = keys
            .iter()
            .flatten()
            .filter_map(|k| counts.get(k))
            .filter(|c| now - c.last <= self.cfg.window)
            .filter_map(|c| c.blocked_until)
            .filter(|until| *until > now)
            .max();
        match wait {
            Some(until) => Err(RetryAfter((until - now).num_seconds().max(1))),
            None => Ok(()),
        }
    }

    /// Records a failed attempt.
    pub fn fail(&self, email: &str, addr: Option<IpAddr>, now: DateTime<Utc>) -> FailOutcome {
        self.fail_keys(&[Some(account_key(email)), addr.map(Key::Address)], now)
    }

    /// Admits one request from `addr` to a page where every request counts (the public client
    /// pages): refused while the address waits, otherwise counted like a failure, so the
    /// address's free requests run out and the waits start. Without an address: admitted.
    pub fn admit_address(
        &self,
        addr: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), RetryAfter> {
        let Some(addr) = addr else { return Ok(()) };
        let key = [Some(Key::Address(addr))];
        self.check_keys(&key, now)?;
        self.fail_keys(&key, now);
        Ok(())
    }

    fn fail_keys(&self, keys: &[Option<Key>], now: DateTime<Utc>) -> FailOutcome {
        let Ok(mut counts) = self.counts.lock() else {
            return FailOutcome::default();
        };
        if counts.len() >= MAX_ENTRIES {
            let window = self.cfg.window;
            counts.retain(|_, c| now - c.last <= window);
        }
        let mut out = FailOutcome::default();
        for key in keys.iter().flatten().copied() {
            let free = self.free(&key);
            let c = counts.entry(key).or_insert(Count {
                failures: 0,
                last: now,
                blocked_until: None,
                alerted: false,
            });
            if now - c.last > self.cfg.window {
                *c = Count {
                    failures: 0,
                    last: now,
                    blocked_until: None,
                    alerted: false,
                };
            }
            c.failures = c.failures.saturating_add(1);
            c.last = now;
            if c.failures > free {
                let exp = (c.failures - free - 1).min(20);
                let delay = Duration::seconds(1_i64 << exp).min(self.cfg.max_delay);
                c.blocked_until = Some(now + delay);
                if !c.alerted {
                    c.alerted = true;
                    out.burst_started = true;
                }
            }
        }
        out
    }

    /// Records a successful sign-in: the account's count is cleared (the address's is not).
    pub fn succeed(&self, email: &str) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.remove(&account_key(email));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    // req: AU-03
    #[test]
    fn backoff_is_bounded_and_ends_on_its_own() {
        let th = Throttle::new(ThrottleConfig::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut now = t0();
        for _ in 0..5 {
            assert_eq!(th.check("v@x.invalid", Some(ip), now), Ok(()));
            assert!(!th.fail("v@x.invalid", Some(ip), now).burst_started);
        }
        // The sixth failure starts the burst (one alert) and a 1 s wait.
        assert!(th.fail("V@x.invalid ", Some(ip), now).burst_started);
        assert_eq!(th.check("v@x.invalid", None, now), Err(RetryAfter(1)));
        // Another address is throttled for this account too.
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(th.check("v@x.invalid", Some(other), now).is_err());
        // Waits double, capped at 15 minutes; one alert per burst: the account's burst is
        // under way, so only the new address's own burst (its 21st failure) raises one.
        let mut bursts = 0;
        for _ in 0..30 {
            now += Duration::seconds(1);
            bursts += usize::from(th.fail("v@x.invalid", Some(other), now).burst_started);
        }
        assert_eq!(bursts, 1);
        assert_eq!(th.check("v@x.invalid", None, now), Err(RetryAfter(15 * 60)));
        // The wait ends by itself: the victim can sign in after it.
        now += Duration::minutes(15) + Duration::seconds(1);
        assert_eq!(th.check("v@x.invalid", None, now), Ok(()));
        // Other accounts from a fresh address are unaffected.
        let third: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(th.check("w@x.invalid", Some(third), t0()), Ok(()));
        th.succeed("v@x.invalid");
        assert_eq!(th.check("v@x.invalid", None, now), Ok(()));
    }

    // issue 19 — the public client pages' limit: every request counts per address; past the
    // free ones the address waits (429), other addresses do not.
    #[test]
    fn client_pages_are_limited_per_address() {
        let th = Throttle::new(ThrottleConfig {
            address_free: 3,
            ..ThrottleConfig::client_pages()
        });
        let ip: IpAddr = "192.0.2.8".parse().unwrap();
        let now = t0();
        for _ in 0..3 {
            assert_eq!(th.admit_address(Some(ip), now), Ok(()));
        }
        // The fourth is admitted and starts a 1 s wait; the fifth waits.
        assert_eq!(th.admit_address(Some(ip), now), Ok(()));
        assert_eq!(th.admit_address(Some(ip), now), Err(RetryAfter(1)));
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        assert_eq!(th.admit_address(Some(other), now), Ok(()));
        assert_eq!(th.admit_address(None, now), Ok(()));
        assert_eq!(
            th.admit_address(Some(ip), now + Duration::seconds(2)),
            Ok(())
        );
    }

    #[test]
    fn address_limit_covers_spraying_many_accounts() {
        let th = Throttle::new(ThrottleConfig::default());
        let ip: IpAddr = "192.0.2.5".parse().unwrap();
        let now = t0();
        for i in 0..20 {
            th.fail(&format!("u{i}@x.invalid"), Some(ip), now);
        }
        assert_eq!(th.check("fresh@x.invalid", Some(ip), now), Ok(()));
        assert!(th.fail("u21@x.invalid", Some(ip), now).burst_started);
        assert!(th.check("fresh@x.invalid", Some(ip), now).is_err());
        assert_eq!(th.check("fresh@x.invalid", None, now), Ok(()));
    }
}
