//! Password hashing: argon2id with the OWASP-recommended parameters, run on a bounded
//! blocking pool so a burst of sign-ins cannot starve the async workers or exhaust memory.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// argon2id memory cost in KiB: 19 MiB (OWASP Password Storage Cheat Sheet, argon2id
/// "m=19456 (19 MiB), t=2, p=1").
pub const M_COST_KIB: u32 = 19_456;
/// argon2id iterations (OWASP, as above).
pub const T_COST: u32 = 2;
/// argon2id parallelism (OWASP, as above).
pub const P_COST: u32 = 1;
/// Longest accepted password in bytes (≥ 64 characters must be allowed: NIST SP 800-63B; the
/// cap bounds hashing work).
pub const MAX_BYTES: usize = 1024;

fn argon2() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password (blocking; use [`Hasher::hash`] from async code).
pub fn hash_blocking(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verifies a password against a stored PHC string (blocking; use [`Hasher::verify`] from
/// async code).
#[must_use]
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// Runs argon2 off the async workers, at most `permits` at a time.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    dummy: Arc<str>,
}

impl Hasher {
    /// A hasher allowing `parallel` concurrent hashes (e.g. the number of cores).
    pub fn new(parallel: usize) -> Result<Self, String> {
        // A real hash of a random password: verifying against it costs the same as a real
        // verification, so unknown emails take as long as known ones.
        let random: String = {
            use rand::Rng as _;
            let mut rng = rand::rngs::OsRng;
            (0..32)
                .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
                .collect()
        };
        Ok(Self {
            permits: Arc::new(Semaphore::new(parallel.max(1))),
            dummy: hash_blocking(&random)?.into(),
        })
    }

    /// Hashes a password.
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Verifies a password against a stored hash, or against a dummy hash when there is none
    /// (same work either way).
    pub async fn verify(&self, password: Zeroizing<String>, stored: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let real = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy.to_string());
        tokio::task::spawn_blocking(move || verify_blocking(&password, &phc) && real)
            .await
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // req: AU-06
    #[test]
    fn argon2id_parameters() {
        let h = hash_blocking("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_blocking("correct horse battery", &h));
        assert!(!verify_blocking("correct horse batterz", &h));
    }
}
