//! Sealing of identity secrets at rest (TOTP secrets): AES-256-GCM (`aws-lc-rs`) under a
//! server key kept outside the database (`<data-dir>/secrets/identity.key`, 0600), with a
//! random 96-bit nonce per seal and the owning user's id as associated data, so a sealed
//! secret copied to another user's row does not open.
//!
//! Layout: `version (1 byte = 1) || nonce (12) || ciphertext || tag (16)`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use zeroize::Zeroizing;

const VERSION: u8 = 1;

/// Why a sealed secret did not open.
#[derive(Debug, thiserror::Error)]
#[error("a stored secret could not be opened (wrong server key or altered data)")]
pub struct OpenError;

/// The key that seals identity secrets. `Debug` prints nothing of it.
pub struct SecretBox {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

impl SecretBox {
    /// A box from 32 key bytes.
    pub fn new(key: &[u8; 32]) -> Result<Self, OpenError> {
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| OpenError)?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// A box with a fresh random key (tests, and the first start).
    pub fn generate() -> Result<(Self, Zeroizing<[u8; 32]>), OpenError> {
        let mut key = Zeroizing::new([0_u8; 32]);
        SystemRandom::new()
            .fill(key.as_mut())
            .map_err(|_| OpenError)?;
        Ok((Self::new(&key)?, key))
    }

    /// Seals `secret` for the row identified by `aad`.
    pub fn seal(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut nonce = [0_u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| OpenError)?;
        let mut buf = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| OpenError)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens a sealed secret for the row identified by `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (&version, rest) = sealed.split_first().ok_or(OpenError)?;
        if version != VERSION || rest.len() < NONCE_LEN + 16 {
            return Err(OpenError);
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
            .map_err(|_| OpenError)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_binding() {
        let (b, _) = SecretBox::generate().unwrap();
        let sealed = b.seal(b"user-1", b"JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(
            b.open(b"user-1", &sealed).unwrap().as_slice(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert!(b.open(b"user-2", &sealed).is_err(), "bound to its row");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(b.open(b"user-1", &bad).is_err(), "tamper detected");
        let (other, _) = SecretBox::generate().unwrap();
        assert!(
            other.open(b"user-1", &sealed).is_err(),
            "wrong key is an error"
        );
        assert!(b.open(b"user-1", &sealed[..10]).is_err());
        assert!(b.open(b"user-1", &[]).is_err());
    }
}
