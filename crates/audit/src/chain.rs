//! The per-practice hash chain.
//!
//! Event `seq = i` of a practice has chain hash
//!
//! ```text
//! chain[i] = SHA-256( CHAIN_TAG || chain[i-1] || canonical(event i) )      chain[-1] = GENESIS
//! ```
//!
//! where `CHAIN_TAG` is the 24 ASCII bytes `chartroom audit chain v1` followed by one
//! `0x00` byte, and `canonical` is [`crate::event::canonical`]. The tag keeps chain hashes
//! apart from Merkle hashes (which start with `0x00` or `0x01`) and from any other SHA-256
//! use; `prev` has a fixed length, so the concatenation is unambiguous.
//!
//! [`GENESIS`] is the same for every practice: SHA-256 of the ASCII string
//! `chartroom audit chain genesis v1`. Events carry their `practice_id` inside the
//! canonical bytes, so two practices' chains diverge at their first event anyway.
//!
//! The chain says *in which order* events were sequenced; the Merkle tree ([`crate::merkle`])
//! gives compact proofs; the signed checkpoints ([`crate::checkpoint`]) pin both outside
//! the database.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Domain-separation tag that starts every chain-hash input.
pub const CHAIN_TAG: &[u8; 25] = b"chartroom audit chain v1\0";

/// The chain hash "before event 0": SHA-256(`chartroom audit chain genesis v1`).
pub const GENESIS: Hash = [
    0xcb, 0xe3, 0x87, 0x88, 0x6f, 0x81, 0x77, 0x02, 0x2e, 0x8d, 0xd7, 0x5a, 0x93, 0xb5, 0xe5, 0x0c,
    0x14, 0x2f, 0x4c, 0x62, 0x4d, 0xdd, 0x02, 0xa0, 0x84, 0x0c, 0x5d, 0x60, 0x4c, 0xea, 0xd0, 0xbb,
];

/// The ASCII string whose SHA-256 is [`GENESIS`].
pub const GENESIS_DOMAIN: &str = "chartroom audit chain genesis v1";

/// `SHA-256(CHAIN_TAG || prev || canonical)`: the chain hash of an event whose canonical
/// encoding is `canonical`, sequenced right after the event whose chain hash is `prev`.
#[must_use]
pub fn chain_hash(prev: &Hash, canonical: &[u8]) -> Hash {
    Sha256::new()
        .chain_update(CHAIN_TAG)
        .chain_update(prev)
        .chain_update(canonical)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_is_the_hash_of_its_domain_string() {
        let h: Hash = Sha256::digest(GENESIS_DOMAIN.as_bytes()).into();
        assert_eq!(h, GENESIS);
    }

    #[test]
    fn chain_hash_depends_on_prev_and_bytes() {
        let a = chain_hash(&GENESIS, b"x");
        assert_ne!(a, chain_hash(&GENESIS, b"y"));
        assert_ne!(a, chain_hash(&a, b"x"));
    }
}
