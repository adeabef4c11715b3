//! Field encryption: one database value → one self-describing ciphertext.
//!
//! # Format (version 1)
//!
//! ```text
//! offset  len  field
//! 0       1    format version = 0x01
//! 1       4    DEK version, u32 big-endian
//! 5       12   nonce, random (96 bits)
//! 17      n    AES-256-GCM ciphertext of the n plaintext bytes
//! 17+n    16   GCM tag
//! ```
//!
//! The AEAD key is the DEK's field sub-key ([`crate::keys`]). The associated data binds the
//! ciphertext to its place, so a value copied to another row, column, table or practice does
//! not decrypt there:
//!
//! ```text
//! "chartroom/field/v1" ‖ header (17 bytes) ‖ practice UUID (16)
//!   ‖ u32be len ‖ table ‖ u32be len ‖ column ‖ u32be len ‖ row id
//! ```
//!
//! Nonces are random; NIST SP 800-38D §8.3 allows 2^32 random-nonce encryptions per key,
//! and a practice's field key is rotated with its DEK long before that.

use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
use aws_lc_rs::rand;
use domain::PracticeId;

use crate::error::{CryptoError, Result};
use crate::keys::{DataKey, DekVersion, PracticeKeys};

/// The field format this build writes and reads.
pub const FIELD_FORMAT_V1: u8 = 1;
/// Header length: version (1) + DEK version (4) + nonce (12).
pub const FIELD_HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// GCM tag length: 128 bits (NIST SP 800-38D §5.2.1.2).
pub const FIELD_TAG_LEN: usize = 16;
/// Largest plaintext a field may hold. Anything bigger belongs in a blob ([`crate::blob`]).
pub const MAX_FIELD_LEN: usize = 16 * 1024 * 1024;

const AAD_LABEL: &[u8] = b"chartroom/field/v1";

/// Where a field value lives: the associated data of its ciphertext.
///
/// `row` is the row's primary key as bytes (for a UUID key: `id.as_uuid().as_bytes()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldContext<'a> {
    /// The practice that owns the row.
    pub practice: PracticeId,
    /// The table.
    pub table: &'a str,
    /// The column.
    pub column: &'a str,
    /// The row's primary key.
    pub row: &'a [u8],
}

impl<'a> FieldContext<'a> {
    /// A context.
    #[must_use]
    pub const fn new(practice: PracticeId, table: &'a str, column: &'a str, row: &'a [u8]) -> Self {
        Self {
            practice,
            table,
            column,
            row,
        }
    }

    fn aad(&self, header: &[u8]) -> Result<Vec<u8>> {
        let mut aad = Vec::with_capacity(
            AAD_LABEL.len()
                + header.len()
                + 16
                + 12
                + self.table.len()
                + self.column.len()
                + self.row.len(),
        );
        aad.extend_from_slice(AAD_LABEL);
        aad.extend_from_slice(header);
        aad.extend_from_slice(self.practice.as_uuid().as_bytes());
        for part in [self.table.as_bytes(), self.column.as_bytes(), self.row] {
            let len = u32::try_from(part.len())
                .map_err(|_| CryptoError::InvalidInput("context part longer than 4 GiB"))?;
            aad.extend_from_slice(&len.to_be_bytes());
            aad.extend_from_slice(part);
        }
        Ok(aad)
    }
}

/// The parsed header of a field ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    dek_version: DekVersion,
    nonce: [u8; NONCE_LEN],
}

fn parse_header(ciphertext: &[u8]) -> Result<Header> {
    let min = FIELD_HEADER_LEN + FIELD_TAG_LEN;
    let Some(&version) = ciphertext.first() else {
        return Err(truncated(0, min));
    };
    if version != FIELD_FORMAT_V1 {
        return Err(CryptoError::UnknownFormat {
            what: "field",
            found: version,
            supported: FIELD_FORMAT_V1,
        });
    }
    if ciphertext.len() < min {
        return Err(truncated(ciphertext.len(), min));
    }
    let dek: [u8; 4] = ciphertext
        .get(1..5)
        .and_then(|s| s.try_into().ok())
        .ok_or(CryptoError::Internal("header slice"))?;
    let nonce: [u8; NONCE_LEN] = ciphertext
        .get(5..FIELD_HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(CryptoError::Internal("header slice"))?;
    Ok(Header {
        dek_version: DekVersion::new(u32::from_be_bytes(dek)).map_err(|_| CryptoError::Decrypt)?,
        nonce,
    })
}

fn truncated(len: usize, min: usize) -> CryptoError {
    CryptoError::Truncated {
        len: len as u64,
        min: min as u64,
    }
}

/// Encrypts one field value under `key` (normally `keys.active()`), bound to `ctx`.
///
/// Decrypts nothing; audits nothing (the caller audits the write). Fails only on a practice
/// mismatch between `key` and `ctx`, an oversized value, or a broken random source.
pub fn encrypt_field(key: &DataKey, ctx: &FieldContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
    if key.practice() != ctx.practice {
        return Err(CryptoError::PracticeMismatch {
            key: key.practice(),
            context: ctx.practice,
        });
    }
    if plaintext.len() > MAX_FIELD_LEN {
        return Err(CryptoError::TooLarge {
            what: "field value",
            len: plaintext.len() as u64,
            max: MAX_FIELD_LEN as u64,
        });
    }
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce).map_err(|_| CryptoError::Internal("random source failed"))?;
    let mut out = Vec::with_capacity(FIELD_HEADER_LEN + plaintext.len() + FIELD_TAG_LEN);
    out.push(FIELD_FORMAT_V1);
    out.extend_from_slice(&key.version().get().to_be_bytes());
    out.extend_from_slice(&nonce);
    let aad = ctx.aad(&out)?;
    out.extend_from_slice(plaintext);
    let body = out
        .get_mut(FIELD_HEADER_LEN..)
        .ok_or(CryptoError::Internal("field buffer"))?;
    let tag = key
        .field_key()
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
        .map_err(|_| CryptoError::Internal("AES-GCM seal failed"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Decrypts one field value with the practice's keys, checking that it was sealed for `ctx`.
///
/// Returns [`CryptoError::Decrypt`] — never wrong plaintext — if the ciphertext was altered or
/// belongs to another practice, table, column or row; [`CryptoError::UnknownDataKey`] if its
/// DEK version was retired; [`CryptoError::UnknownFormat`] / [`CryptoError::Truncated`] for a
/// value that is not a field ciphertext of this format.
pub fn decrypt_field(
    keys: &PracticeKeys,
    ctx: &FieldContext<'_>,
    ciphertext: &[u8],
) -> Result<Vec<u8>> {
    if keys.practice() != ctx.practice {
        return Err(CryptoError::PracticeMismatch {
            key: keys.practice(),
            context: ctx.practice,
        });
    }
    let header = parse_header(ciphertext)?;
    let key = keys.get(header.dek_version)?;
    let (head, body) = ciphertext
        .split_at_checked(FIELD_HEADER_LEN)
        .ok_or(CryptoError::Internal("field split"))?;
    let aad = ctx.aad(head)?;
    let mut buf = body.to_vec();
    let len = key
        .field_key()
        .open_in_place(
            Nonce::assume_unique_for_key(header.nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| CryptoError::Decrypt)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// The DEK version that sealed a field ciphertext (to find values still under an old version
/// during `rotate-data-key`). Reads the header only; authenticates nothing.
pub fn field_dek_version(ciphertext: &[u8]) -> Result<DekVersion> {
    parse_header(ciphertext).map(|h| h.dek_version)
}

#[cfg(test)]
#[allow(
    clippy::many_single_char_names,
    clippy::cast_possible_truncation,
    reason = "short names and narrowing casts keep table-like tests readable"
)]
mod tests {
    use super::*;
    use crate::keys::tests::test_keys;

    const ROW_A: &[u8] = &[1; 16];
    const ROW_B: &[u8] = &[2; 16];

    fn ctx(p: PracticeId, row: &[u8]) -> FieldContext<'_> {
        FieldContext::new(p, "patient", "family_name", row)
    }

    // req: ENC-01 — AES-GCM field encryption under the practice DEK.
    #[test]
    fn roundtrip() {
        let p = PracticeId::new();
        let keys = test_keys(p, 1);
        for pt in [&b""[..], b"Quillfeather", &[0u8; 4096]] {
            let ct = encrypt_field(keys.active(), &ctx(p, ROW_A), pt).unwrap();
            assert_eq!(ct.len(), FIELD_HEADER_LEN + pt.len() + FIELD_TAG_LEN);
            assert_eq!(decrypt_field(&keys, &ctx(p, ROW_A), &ct).unwrap(), pt);
        }
    }

    #[test]
    fn same_plaintext_gives_different_ciphertexts() {
        let p = PracticeId::new();
        let keys = test_keys(p, 1);
        let a = encrypt_field(keys.active(), &ctx(p, ROW_A), b"Ada").unwrap();
        let b = encrypt_field(keys.active(), &ctx(p, ROW_A), b"Ada").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn moved_to_other_row_fails() {
        let p = PracticeId::new();
        let keys = test_keys(p, 1);
        let ct = encrypt_field(keys.active(), &ctx(p, ROW_A), b"Ada").unwrap();
        assert!(matches!(
            decrypt_field(&keys, &ctx(p, ROW_B), &ct),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn other_column_or_table_fails() {
        let p = PracticeId::new();
        let keys = test_keys(p, 1);
        let ct = encrypt_field(keys.active(), &ctx(p, ROW_A), b"Ada").unwrap();
        let col = FieldContext::new(p, "patient", "given_name", ROW_A);
        let tab = FieldContext::new(p, "contact", "family_name", ROW_A);
        // Length prefixes keep "patient"+"family_name" apart from "patientf"+"amily_name".
        let shifted = FieldContext::new(p, "patientf", "amily_name", ROW_A);
        for c in [col, tab, shifted] {
            assert!(matches!(
                decrypt_field(&keys, &c, &ct),
                Err(CryptoError::Decrypt)
            ));
        }
    }

    #[test]
    fn other_practice_fails() {
        let (p, q) = (PracticeId::new(), PracticeId::new());
        let (kp, kq) = (test_keys(p, 1), test_keys(q, 1));
        let ct = encrypt_field(kp.active(), &ctx(p, ROW_A), b"Ada").unwrap();
        // Copied into the other practice's row with the same row id: other key, other AAD.
        assert!(matches!(
            decrypt_field(&kq, &ctx(q, ROW_A), &ct),
            Err(CryptoError::Decrypt)
        ));
        // Handing one practice's keys a context of another is refused outright.
        assert!(matches!(
            decrypt_field(&kp, &ctx(q, ROW_A), &ct),
            Err(CryptoError::PracticeMismatch { .. })
        ));
        assert!(matches!(
            encrypt_field(kp.active(), &ctx(q, ROW_A), b"x"),
            Err(CryptoError::PracticeMismatch { .. })
        ));
    }

    #[test]
    fn header_tamper_fails() {
        let p = PracticeId::new();
        let keys = test_keys(p, 2);
        let ct = encrypt_field(keys.active(), &ctx(p, ROW_A), b"Ada").unwrap();
        // DEK version 2 -> 1: a live key, but the wrong one, and the header is in the AAD.
        let mut t = ct.clone();
        t[4] = 1;
        assert!(matches!(
            decrypt_field(&keys, &ctx(p, ROW_A), &t),
            Err(CryptoError::Decrypt)
        ));
        // DEK version -> 0.
        let mut t = ct.clone();
        t[4] = 0;
        assert!(matches!(
            decrypt_field(&keys, &ctx(p, ROW_A), &t),
            Err(CryptoError::Decrypt)
        ));
        // Nonce byte.
        let mut t = ct;
        t[9] ^= 0x80;
        assert!(matches!(
            decrypt_field(&keys, &ctx(p, ROW_A), &t),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn every_one_byte_flip_fails() {
        let p = PracticeId::new();
        let keys = test_keys(p, 1);
        let ct = encrypt_field(keys.active(), &ctx(p, ROW_A), b"Hazelmere-Mock").unwrap();
        for i in 0..ct.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = ct.clone();
                t[i] ^= bit;
                let r = decrypt_field(&keys, &ctx(p, ROW_A), &t);
                assert!(r.is_err(), "flip of byte {i} bit {bit:#x} was accepted");
            }
        }
    }

    #[test]
    fn truncated_fails() {
        let p = PracticeId::new();
        let keys = test_keys(p, 1);
        let ct = encrypt_field(keys.active(), &ctx(p, ROW_A), b"Ada").unwrap();
        for len in 0..ct.len() {
            let r = decrypt_field(&keys, &ctx(p, ROW_A), &ct[..len]);
            match r {
                Err(CryptoError::Truncated { .. } | CryptoError::Decrypt) => {}
                other => panic!("length {len}: {other:?}"),
            }
        }
        assert_eq!(
            decrypt_field(&keys, &ctx(p, ROW_A), &ct[..10])
                .unwrap_err()
                .to_string(),
            "CRYPTO-0002: ciphertext is truncated: 10 bytes where at least 33 are needed"
        );
        // Appending a byte fails too (the tag no longer sits at the end).
        let mut longer = ct;
        longer.push(0);
        assert!(matches!(
            decrypt_field(&keys, &ctx(p, ROW_A), &longer),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn unknown_version_is_a_clear_error() {
        let p = PracticeId::new();
        let keys = test_keys(p, 1);
        let mut ct = encrypt_field(keys.active(), &ctx(p, ROW_A), b"Ada").unwrap();
        ct[0] = 2;
        let err = decrypt_field(&keys, &ctx(p, ROW_A), &ct).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CRYPTO-0003: unknown field format version 2; this build reads version 1"
        );
        assert_eq!(err.code(), "CRYPTO-0003");
    }

    #[test]
    fn retired_dek_version_is_named() {
        let p = PracticeId::new();
        let old = test_keys(p, 3);
        let ct = encrypt_field(
            old.get(DekVersion::new(2).unwrap()).unwrap(),
            &ctx(p, ROW_A),
            b"x",
        )
        .unwrap();
        assert_eq!(field_dek_version(&ct).unwrap().get(), 2);
        let only_v1 = test_keys(p, 1);
        let err = decrypt_field(&only_v1, &ctx(p, ROW_A), &ct).unwrap_err();
        assert!(matches!(err, CryptoError::UnknownDataKey { version, .. } if version.get() == 2));
    }
}
