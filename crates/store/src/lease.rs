//! Leases: at most one server process runs each background job at a time, however many
//! replicas serve one database (issue 21, several replicas).
//!
//! A lease is a PostgreSQL session-level advisory lock, one per job name, held on one
//! connection of its own per process ([`Leases`]). Whoever holds the lock runs the job; every
//! other replica stands by and tries again at its next tick. A replica that dies (killed,
//! its machine gone, its connection cut) loses its session and with it every lock it held, so
//! a standing-by replica takes the job over at its next tick: no lease table, no expiry to
//! tune, no clock to trust.
//!
//! What it guarantees, and its bound:
//! - **One holder.** PostgreSQL grants a session lock to one session at a time.
//! - **Takeover.** A lock is released when its holder's session ends; the next
//!   [`Leases::hold`] of another process gets it.
//! - **Checked before each pass.** [`Leases::hold`] checks that the lease connection is alive
//!   (a round trip) before it says "held". A holder whose connection breaks *during* a pass
//!   finishes that pass while another replica may already have started: the overlap is at
//!   most one pass, which is why every job's pass stays safe to run twice (claims with
//!   `for update skip locked`, idempotent sequencing and purges).
//!
//! The lease connection is taken from the store's pool and detached from it (the pool may
//! open another in its place); it runs nothing but the lock calls.

use std::collections::BTreeSet;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::sync::Mutex;

use crate::{Store, StoreError};

/// The first key of every lease lock (`pg_try_advisory_lock(int, int)`): "CR", so Chartroom's
/// leases never collide with another advisory lock in the same database.
const LEASE_CLASS: i32 = 0x4352;

/// The second key: the job name's hash, stable across builds and replicas.
fn lease_key(name: &str) -> i32 {
    let h: [u8; 32] = Sha256::digest(name.as_bytes()).into();
    let [k0, k1, k2, k3, ..] = h;
    i32::from_be_bytes([k0, k1, k2, k3])
}

#[derive(Debug, Default)]
struct State {
    conn: Option<PgConnection>,
    held: BTreeSet<String>,
}

/// This process's leases, on one connection of their own. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Leases {
    pool: PgPool,
    state: Arc<Mutex<State>>,
}

impl Store {
    /// The leases of this process (one connection, taken on first use).
    #[must_use]
    pub fn leases(&self) -> Leases {
        Leases {
            pool: self.pool.clone(),
            state: Arc::new(Mutex::new(State::default())),
        }
    }
}

impl Leases {
    /// Whether this process holds the lease `name` now: held already (and its connection
    /// answers), or taken now. `false`: another process holds it.
    ///
    /// # Errors
    /// The database cannot be reached (the lease is then not held).
    pub async fn hold(&self, name: &str) -> Result<bool, StoreError> {
        let mut st = self.state.lock().await;
        if let Some(conn) = st.conn.as_mut()
            && conn.ping().await.is_err()
        {
            // The session is gone, and every lock it held with it.
            tracing::warn!(
                "the lease connection was lost: every job lease of this server is released"
            );
            st.conn = None;
            st.held.clear();
        }
        if st.conn.is_none() {
            st.conn = Some(self.pool.acquire().await?.detach());
        }
        if st.held.contains(name) {
            return Ok(true);
        }
        let Some(conn) = st.conn.as_mut() else {
            return Ok(false);
        };
        let got: bool = sqlx::query_scalar("select pg_try_advisory_lock($1, $2)")
            .bind(LEASE_CLASS)
            .bind(lease_key(name))
            .fetch_one(&mut *conn)
            .await?;
        if got {
            tracing::info!(job = name, "this server now runs the job (lease taken)");
            st.held.insert(name.to_owned());
        }
        Ok(got)
    }

    /// Whether `name` is held by this process, without asking the database (as of the last
    /// [`Leases::hold`]).
    pub async fn holds(&self, name: &str) -> bool {
        self.state.lock().await.held.contains(name)
    }

    /// Gives every lease back: closes the lease connection (its session's locks end with it).
    pub async fn release_all(&self) {
        let mut st = self.state.lock().await;
        st.held.clear();
        if let Some(conn) = st.conn.take() {
            let _ = conn.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(lease_key("sequencer"), lease_key("sequencer"));
        let names = [
            "sequencer",
            "challenge-sweep",
            "retention",
            "incident-alerts",
            "outbox",
        ];
        let keys: BTreeSet<i32> = names.iter().map(|n| lease_key(n)).collect();
        assert_eq!(keys.len(), names.len());
    }
}
