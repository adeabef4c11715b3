//! Throttle counters shared by every server replica on one database (issue 21, several
//! replicas): sign-in failures per account and per client address, and the public client
//! pages' requests per address (`server::identity::throttle` decides what to count and how
//! long to wait; this module keeps the counts).
//!
//! Keys are 32-byte hashes made by the caller ([`ThrottleKey`]); the database never sees an
//! email or an address in clear. Each call is one round trip to one function of
//! `migrations/0045_shared_throttle.sql`, so a sign-in attempt costs one statement to check
//! and, when it fails, one to count; a public page request costs one. Concurrent counts of
//! one key from several replicas queue on its row and add up.
//!
//! Times are the caller's (the injected clock); rows expire at the end of the window after
//! their last counted attempt and [`Store::sweep_throttles`] removes them.

use chrono::{DateTime, Duration, Utc};

use crate::{Store, StoreError};

/// A throttled key: the SHA-256 of a domain-separated, normalized account or address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThrottleKey(pub [u8; 32]);

/// How a key is counted: its free failures, the window and the longest wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counting {
    /// Failures before waits start.
    pub free: u32,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

fn free(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Store {
    /// The end of the longest wait still running at `now` among `keys`; `None`: the attempt
    /// may be checked. Installation-wide (no practice); audits nothing.
    ///
    /// # Errors
    /// The database failed.
    pub async fn throttle_wait(
        &self,
        keys: &[ThrottleKey],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.0.as_slice()).collect();
        Ok(sqlx::query_scalar("select app.throttle_wait($1, $2)")
            .bind(keys)
            .bind(now)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Counts one failure for each key (each with its own free failures; `window` and
    /// `max_delay` shared) at `now`; returns whether this failure started a throttling burst
    /// for any of them. Installation-wide; audits nothing.
    ///
    /// # Errors
    /// The database failed.
    pub async fn throttle_fail(
        &self,
        keys: &[(ThrottleKey, u32)],
        window: Duration,
        max_delay: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let hashes: Vec<&[u8]> = keys.iter().map(|(k, _)| k.0.as_slice()).collect();
        let frees: Vec<i32> = keys.iter().map(|(_, f)| free(*f)).collect();
        Ok(
            sqlx::query_scalar("select app.throttle_fail($1, $2, $3, $4, $5)")
                .bind(hashes)
                .bind(frees)
                .bind(now)
                .bind(window)
                .bind(max_delay)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Admits one request counted under `key` (refused with the wait's end while it waits,
    /// otherwise counted), in one round trip. Installation-wide; audits nothing.
    ///
    /// # Errors
    /// The database failed.
    pub async fn throttle_admit(
        &self,
        key: ThrottleKey,
        counting: Counting,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(
            sqlx::query_scalar("select app.throttle_admit($1, $2, $3, $4, $5)")
                .bind(key.0.as_slice())
                .bind(free(counting.free))
                .bind(now)
                .bind(counting.window)
                .bind(counting.max_delay)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Forgets `key`'s count (a successful sign-in clears its account's).
    ///
    /// # Errors
    /// The database failed.
    pub async fn throttle_clear(&self, key: ThrottleKey) -> Result<(), StoreError> {
        sqlx::query("delete from auth_throttle where key_hash = $1")
            .bind(key.0.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Housekeeping: removes counts whose window ended before `now`; returns how many.
    ///
    /// # Errors
    /// The database failed.
    pub async fn sweep_throttles(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("select app.throttle_sweep($1)")
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
