//! Recovery codes: ten single-use codes, 80 random bits each (OS CSPRNG), shown once as
//! `xxxx-xxxx-xxxx-xxxx` in Crockford base32 and stored as SHA-256 hashes. With 80 bits of
//! entropy an unsalted fast hash is enough: the codes cannot be guessed from the hash
//! (NIST SP 800-63B §5.1.2.1: look-up secrets of at least 64 bits may be stored hashed).

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// How many codes a set has.
pub const COUNT: usize = 10;
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A fresh set of codes (to show once) and their hashes (to store).
#[must_use]
pub fn generate() -> (Vec<Zeroizing<String>>, Vec<[u8; 32]>) {
    let mut codes = Vec::with_capacity(COUNT);
    let mut hashes = Vec::with_capacity(COUNT);
    for _ in 0..COUNT {
        let mut raw = Zeroizing::new([0_u8; 10]);
        rand::rngs::OsRng.fill_bytes(raw.as_mut());
        let mut bits: u128 = 0;
        for b in raw.iter() {
            bits = (bits << 8) | u128::from(*b);
        }
        let mut code = Zeroizing::new(String::with_capacity(19));
        for i in 0..16 {
            if i > 0 && i % 4 == 0 {
                code.push('-');
            }
            let idx = usize::try_from((bits >> (75 - 5 * i)) & 31).unwrap_or_default();
            code.push(char::from(*ALPHABET.get(idx).unwrap_or(&b'0')));
        }
        hashes.push(hash(&code).unwrap_or([0; 32]));
        codes.push(code);
    }
    (codes, hashes)
}

/// The stored hash of a code as typed: case, spaces and dashes are ignored; `i`/`l` read as
/// `1` and `o` as `0` (Crockford). `None` when it cannot be a code.
#[must_use]
pub fn hash(typed: &str) -> Option<[u8; 32]> {
    let norm: Zeroizing<String> = Zeroizing::new(
        typed
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| match c.to_ascii_lowercase() {
                'i' | 'l' => '1',
                'o' => '0',
                c => c,
            })
            .collect(),
    );
    if norm.len() != 16 || !norm.bytes().all(|b| ALPHABET.contains(&b)) {
        return None;
    }
    Some(Sha256::digest(norm.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_hash_as_typed() {
        let (codes, hashes) = generate();
        assert_eq!(codes.len(), COUNT);
        let set: std::collections::HashSet<_> = hashes.iter().collect();
        assert_eq!(set.len(), COUNT);
        for (c, h) in codes.iter().zip(&hashes) {
            assert_eq!(c.len(), 19);
            assert_eq!(hash(c).as_ref(), Some(h));
            assert_eq!(hash(&c.to_uppercase().replace('-', " ")).as_ref(), Some(h));
        }
        assert_eq!(hash("short"), None);
        assert_eq!(
            hash("uuuu-uuuu-uuuu-uuuu"),
            None,
            "u is not in the alphabet"
        );
    }
}
