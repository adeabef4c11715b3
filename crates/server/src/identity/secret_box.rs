//! Sealing of identity secrets at rest (TOTP secrets): AES-256-GCM (`aws-lc-rs`) under a
//! server key kept outside the database (`<data-dir>/secrets/identity.key`, 0600), with a
//! random 96-bit nonce per seal and the owning user's id as associated data, so a sealed
//! secret copied to another user's row does not open.
//!
//! Layout: `version (1 byte = 1) || nonce (12) || ciphertext || tag (16)`.
//!
//! The same key also yields, through HKDF-SHA256 (RFC 5869; label
//! [`LOOKUP_TAG_INFO`]), an HMAC-SHA256 key for **lookup tags** ([`SecretBox::lookup_tag`]):
//! keyed hashes that let the database find rows by a value it never stores (an invited
//! email address), installation-wide. A tag reveals only that two rows name the same value.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use zeroize::Zeroizing;

const VERSION: u8 = 1;

/// HKDF info of the lookup-tag key (domain separation from the sealing key).
pub const LOOKUP_TAG_INFO: &[u8] = b"chartroom identity lookup-tag/hmac-sha256 v1";

/// What a lookup tag is of. The label is part of the HMAC input, so a tag of one kind never
/// equals a tag of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupKind {
    /// The normalized email address an invitation is addressed to.
    InvitationEmail,
}

impl LookupKind {
    const fn label(self) -> &'static [u8] {
        match self {
            LookupKind::InvitationEmail => b"invitation-email\0",
        }
    }
}

/// Why a sealed secret did not open.
#[derive(Debug, thiserror::Error)]
#[error("a stored secret could not be opened (wrong server key or altered data)")]
pub struct OpenError;

/// The key that seals identity secrets (and derives lookup tags). `Debug` prints nothing of
/// it.
pub struct SecretBox {
    key: LessSafeKey,
    lookup: hmac::Key,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

impl SecretBox {
    /// A box from 32 key bytes.
    pub fn new(key: &[u8; 32]) -> Result<Self, OpenError> {
        let lookup = hkdf::Salt::new(hkdf::HKDF_SHA256, &[])
            .extract(key)
            .expand(&[LOOKUP_TAG_INFO], hmac::HMAC_SHA256)
            .map(hmac::Key::from)
            .map_err(|_| OpenError)?;
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| OpenError)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            lookup,
        })
    }

    /// The lookup tag of `value` (already normalized by the caller):
    /// `HMAC-SHA256(lookup key, kind label ‖ value)`. Deterministic for one installation key.
    #[must_use]
    pub fn lookup_tag(&self, kind: LookupKind, value: &str) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.lookup);
        ctx.update(kind.label());
        ctx.update(value.as_bytes());
        let mut out = [0_u8; 32];
        for (o, b) in out.iter_mut().zip(ctx.sign().as_ref()) {
            *o = *b;
        }
        out
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

    #[test]
    fn lookup_tags_are_keyed_and_deterministic() {
        let (b, key) = SecretBox::generate().unwrap();
        let again = SecretBox::new(&key).unwrap();
        let t = b.lookup_tag(LookupKind::InvitationEmail, "ada@example.com");
        assert_eq!(
            t,
            again.lookup_tag(LookupKind::InvitationEmail, "ada@example.com")
        );
        assert_ne!(
            t,
            b.lookup_tag(LookupKind::InvitationEmail, "bob@example.com")
        );
        let (other, _) = SecretBox::generate().unwrap();
        assert_ne!(
            t,
            other.lookup_tag(LookupKind::InvitationEmail, "ada@example.com"),
            "another installation key gives another tag"
        );
    }
}
