//! Blind indexes: keyed tags that let the database find rows by a normalized name prefix,
//! date of birth or phone number without storing any of them in the clear.
//!
//! # What a tag is
//!
//! `tag = HMAC-SHA256(index key, kind ‖ normalized token)[..16]`
//!
//! - The *index key* is the practice's DEK index sub-key, derived with HKDF-SHA256 from the
//!   data key (label `blind-index/hmac-sha256`, see [`crate::keys`]). It is never stored; it
//!   dies with the practice's keys (crypto-shredding makes every tag meaningless).
//! - *kind* is one byte ([`IndexKind`]), so a date tag can never equal a name tag.
//! - Tags are truncated to 128 bits ([`TAG_LEN`]; NIST SP 800-107 Rev. 1 §5.3.3 allows
//!   truncated HMAC outputs; 128 bits keeps accidental collisions out of reach for any practice
//!   size).
//!
//! # What an index reveals — and what it does not
//!
//! Someone who can read the index table (a database administrator, a backup thief) learns:
//! - **equality within one practice**: two rows of the same practice with the same tag share
//!   the same normalized token — the same name prefix, the same date of birth, the same phone
//!   number;
//! - **frequency**: how many rows share a tag, so a common surname or a popular birth date
//!   stands out by count; and how many name words / prefixes a row has (roughly, the lengths
//!   of its name words, capped at [`MAX_PREFIX`]).
//!
//! They do **not** learn:
//! - any plaintext: without the index key a tag is indistinguishable from random, and the key
//!   exists only unwrapped in server memory;
//! - **links across practices**: each practice has its own key, so the same name in two
//!   practices gives unrelated tags;
//! - anything once a practice's keys are destroyed, or (for old tags) once the DEK version that
//!   made them is retired.
//!
//! # Normalization
//!
//! - **Names** ([`normalize_name`]): Unicode NFKD, combining marks dropped (é → e, ñ → n),
//!   lower case, a few letters without a decomposition folded (ß → ss, æ → ae, œ → oe, ø → o,
//!   ł → l, đ/ð → d, þ → th, ı → i), apostrophes removed (O'Brien → obrien), every other
//!   non-alphanumeric character splits words (Smith-Jones → smith, jones). At most
//!   [`MAX_NAME_WORDS`] words are indexed. Each word yields one tag per prefix of
//!   [`MIN_PREFIX`]`..=`[`MAX_PREFIX`] characters; a query word longer than [`MAX_PREFIX`] is
//!   cut to it, so it may match more rows than the full word would (the caller decrypts and
//!   filters).
//! - **Dates of birth**: the ISO 8601 calendar date `YYYY-MM-DD`.
//! - **Phones** ([`normalize_phone`]): E.164-like digits with the country code, no `+`.
//!
//! # Searching during a data-key rotation
//!
//! New tags use the active DEK version. Until the re-encryption job has rewritten every row's
//! tags, old rows carry tags of the older version, so a query computes its tags under **every
//! live version** ([`PracticeKeys::name_query_tags`] and friends) and matches any of them.

use aws_lc_rs::hmac;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::error::{CryptoError, Result};
use crate::keys::{DataKey, PracticeKeys};

/// Tag length in bytes (128 bits).
pub const TAG_LEN: usize = 16;
/// Shortest indexed name prefix, in characters.
pub const MIN_PREFIX: usize = 2;
/// Longest indexed name prefix, in characters.
pub const MAX_PREFIX: usize = 12;
/// Most words of one name that are indexed (bounds the tags per row).
pub const MAX_NAME_WORDS: usize = 8;
/// Longest phone number in digits, country code included (ITU-T E.164 §6.1: 15 digits).
pub const MAX_PHONE_DIGITS: usize = 15;
/// Shortest phone number accepted, country code included.
pub const MIN_PHONE_DIGITS: usize = 7;

/// One blind index tag, as stored in an index table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlindTag([u8; TAG_LEN]);

impl BlindTag {
    /// The tag's bytes (store as `bytea`).
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; TAG_LEN] {
        &self.0
    }

    /// A tag read back from storage.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; TAG_LEN]) -> Self {
        Self(bytes)
    }
}

/// What a tag indexes. The byte value is part of the HMAC input (domain separation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum IndexKind {
    /// A prefix of one normalized name word.
    NamePrefix = 1,
    /// A date of birth.
    DateOfBirth = 2,
    /// A phone number.
    Phone = 3,
}

fn tag(key: &hmac::Key, kind: IndexKind, token: &str) -> BlindTag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(&[kind as u8]);
    ctx.update(token.as_bytes());
    let full = ctx.sign();
    let mut out = [0u8; TAG_LEN];
    for (o, b) in out.iter_mut().zip(full.as_ref()) {
        *o = *b;
    }
    BlindTag(out)
}

fn fold(c: char, out: &mut String) {
    match c {
        'ß' => out.push_str("ss"),
        'æ' => out.push_str("ae"),
        'œ' => out.push_str("oe"),
        'ø' => out.push('o'),
        'ł' => out.push('l'),
        'đ' | 'ð' => out.push('d'),
        'þ' => out.push_str("th"),
        'ı' => out.push('i'),
        c => out.push(c),
    }
}

/// Normalizes a name into its index words (see the module docs). Words are returned in
/// order, at most [`MAX_NAME_WORDS`].
#[must_use]
pub fn normalize_name(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in name
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
    {
        if matches!(c, '\'' | '\u{2019}' | '\u{02BC}' | '`') {
            continue;
        }
        if c.is_alphanumeric() {
            fold(c, &mut word);
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words.truncate(MAX_NAME_WORDS);
    words
}

/// Normalizes a phone number to E.164-like digits (country code first, no `+`).
///
/// - `+CC…` or `00CC…`: international; the digits are kept as they are.
/// - otherwise national: one leading trunk `0` is dropped and `default_country_code` is put in
///   front — except for NANP (`1`) numbers already written with their leading `1` (11 digits).
///
/// Spaces, dots, dashes and parentheses are ignored; any other character, or a result outside
/// [`MIN_PHONE_DIGITS`]`..=`[`MAX_PHONE_DIGITS`] digits, is refused (the error never echoes
/// the number).
pub fn normalize_phone(phone: &str, default_country_code: u16) -> Result<String> {
    let trimmed = phone.trim();
    let (international, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '(' | ')' | '/' => {}
            _ => {
                return Err(CryptoError::InvalidInput(
                    "phone number has characters other than digits and separators",
                ));
            }
        }
    }
    let normalized = if international {
        digits
    } else if let Some(intl) = digits.strip_prefix("00") {
        intl.to_owned()
    } else if default_country_code == 1 && digits.len() == 11 && digits.starts_with('1') {
        digits
    } else {
        if default_country_code == 0 || default_country_code > 999 {
            return Err(CryptoError::InvalidInput(
                "country calling code must be 1..=999",
            ));
        }
        let national = digits.strip_prefix('0').unwrap_or(&digits);
        format!("{default_country_code}{national}")
    };
    if !(MIN_PHONE_DIGITS..=MAX_PHONE_DIGITS).contains(&normalized.len())
        || normalized.starts_with('0')
    {
        return Err(CryptoError::InvalidInput(
            "phone number is not a valid E.164 number",
        ));
    }
    Ok(normalized)
}

fn prefix(word: &str, chars: usize) -> Option<&str> {
    match word.char_indices().nth(chars) {
        Some((i, _)) => word.get(..i),
        None if word.chars().count() == chars => Some(word),
        None => None,
    }
}

impl DataKey {
    /// The tags to store for a name: every prefix of every normalized word, lengths
    /// [`MIN_PREFIX`]`..=`[`MAX_PREFIX`], deduplicated and sorted. Empty for a name with no
    /// word of two or more characters.
    #[must_use]
    pub fn name_index_tags(&self, name: &str) -> Vec<BlindTag> {
        let mut tags: Vec<BlindTag> = normalize_name(name)
            .iter()
            .flat_map(|w| (MIN_PREFIX..=MAX_PREFIX).filter_map(move |n| prefix(w, n)))
            .map(|p| tag(self.index_key(), IndexKind::NamePrefix, p))
            .collect();
        tags.sort_unstable();
        tags.dedup();
        tags
    }

    /// The query tags for a name search under this key: one per query word (words shorter than
    /// [`MIN_PREFIX`] are dropped, longer than [`MAX_PREFIX`] cut). A row matches when it has
    /// every returned tag. Empty when the query has no usable word — refuse such a search.
    #[must_use]
    pub fn name_query_tags(&self, query: &str) -> Vec<BlindTag> {
        normalize_name(query)
            .iter()
            .filter(|w| w.chars().count() >= MIN_PREFIX)
            .map(|w| prefix(w, MAX_PREFIX).unwrap_or(w))
            .map(|p| tag(self.index_key(), IndexKind::NamePrefix, p))
            .collect()
    }

    /// The tag of a date of birth (ISO 8601 `YYYY-MM-DD`).
    #[must_use]
    pub fn date_of_birth_tag(&self, date: NaiveDate) -> BlindTag {
        tag(
            self.index_key(),
            IndexKind::DateOfBirth,
            &date.format("%Y-%m-%d").to_string(),
        )
    }

    /// The tag of a phone number, normalized with [`normalize_phone`].
    pub fn phone_tag(&self, phone: &str, default_country_code: u16) -> Result<BlindTag> {
        let digits = normalize_phone(phone, default_country_code)?;
        Ok(tag(self.index_key(), IndexKind::Phone, &digits))
    }
}

impl PracticeKeys {
    /// Name-search tags under every live DEK version: one inner list per query word, each
    /// holding that word's tag under each version. A row matches when, for every word, it has
    /// any tag of that word's list (`tag = ANY($1)` per word).
    #[must_use]
    pub fn name_query_tags(&self, query: &str) -> Vec<Vec<BlindTag>> {
        let per_key: Vec<Vec<BlindTag>> = self.all().map(|k| k.name_query_tags(query)).collect();
        let words = per_key.first().map_or(0, Vec::len);
        (0..words)
            .map(|i| {
                per_key
                    .iter()
                    .filter_map(|tags| tags.get(i).copied())
                    .collect()
            })
            .collect()
    }

    /// Date-of-birth tags under every live DEK version (match any).
    #[must_use]
    pub fn date_of_birth_query_tags(&self, date: NaiveDate) -> Vec<BlindTag> {
        self.all().map(|k| k.date_of_birth_tag(date)).collect()
    }

    /// Phone tags under every live DEK version (match any).
    pub fn phone_query_tags(
        &self,
        phone: &str,
        default_country_code: u16,
    ) -> Result<Vec<BlindTag>> {
        self.all()
            .map(|k| k.phone_tag(phone, default_country_code))
            .collect()
    }
}

#[cfg(test)]
#[allow(
    clippy::many_single_char_names,
    clippy::cast_possible_truncation,
    reason = "short names and narrowing casts keep table-like tests readable"
)]
mod tests {
    use domain::PracticeId;

    use super::*;
    use crate::keys::tests::test_keys;

    #[test]
    fn name_normalization() {
        let cases: &[(&str, &[&str])] = &[
            ("Ada Quillfeather", &["ada", "quillfeather"]),
            ("  ÉLODIE   Ñúñez ", &["elodie", "nunez"]),
            ("O'Brien", &["obrien"]),
            ("O’Brien", &["obrien"]),
            ("Smith-Jones", &["smith", "jones"]),
            ("Straße", &["strasse"]),
            ("Æsa Øberg Łukasz", &["aesa", "oberg", "lukasz"]),
            ("ﬁona", &["fiona"]),
            ("Zoë\tvan\nder Berg", &["zoe", "van", "der", "berg"]),
            ("", &[]),
            ("-- ,", &[]),
            (
                "a b c d e f g h i j",
                &["a", "b", "c", "d", "e", "f", "g", "h"],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_name(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn phone_normalization() {
        let ok: &[(&str, u16, &str)] = &[
            ("+1 555 0142", 1, "15550142"),
            ("+44 20 7946 0000", 1, "442079460000"),
            ("0044 20 7946 0000", 1, "442079460000"),
            ("020 7946 0000", 44, "442079460000"),
            ("(555) 010-0199", 1, "15550100199"),
            ("1-555-010-0199", 1, "15550100199"),
            ("030/1234567", 49, "49301234567"),
        ];
        for (input, cc, want) in ok {
            assert_eq!(
                normalize_phone(input, *cc).unwrap(),
                *want,
                "input {input:?}"
            );
        }
        for bad in ["", "+", "12", "call me", "+1234567890123456", "+0 555 0100"] {
            assert!(normalize_phone(bad, 1).is_err(), "accepted {bad:?}");
        }
        assert_eq!(
            normalize_phone("555-CALL-NOW", 1).unwrap_err().to_string(),
            "CRYPTO-0060: invalid input: phone number has characters other than digits and separators"
        );
    }

    #[test]
    fn prefixes_cover_lengths_two_to_twelve() {
        assert_eq!(prefix("ab", 2), Some("ab"));
        assert_eq!(prefix("a", 2), None);
        assert_eq!(prefix("élan", 2), Some("él"));
        let k = test_keys(PracticeId::new(), 1);
        // "quillfeathers" has 13 chars: prefixes 2..=12 -> 11 tags; "ada": 2..=3 -> 2 tags.
        assert_eq!(k.active().name_index_tags("Ada Quillfeathers").len(), 13);
        assert!(k.active().name_index_tags("A").is_empty());
    }

    #[test]
    fn query_matches_stored_prefix_across_spelling_variants() {
        let k = test_keys(PracticeId::new(), 1);
        let stored = k.active().name_index_tags("Élodie Núñez-Quillfeather");
        for q in [
            "el",
            "ELO",
            "nunez",
            "Ñu",
            "quillfeathe",
            "quillfeatherxyz",
            "elodie nu",
        ] {
            let tags = k.active().name_query_tags(q);
            assert!(!tags.is_empty(), "{q}");
            assert!(
                tags.iter().all(|t| stored.contains(t)),
                "query {q:?} should match"
            );
        }
        // A query word longer than MAX_PREFIX is cut: "quillfeathers" would match too.
        for q in ["eloise", "nx", "quillfeathen", "elodie nx"] {
            let tags = k.active().name_query_tags(q);
            assert!(
                !tags.iter().all(|t| stored.contains(t)),
                "query {q:?} should not match"
            );
        }
        assert!(k.active().name_query_tags("e").is_empty());
    }

    #[test]
    fn kinds_and_practices_are_separated() {
        let (a, b) = (
            test_keys(PracticeId::new(), 1),
            test_keys(PracticeId::new(), 1),
        );
        let d = NaiveDate::from_ymd_opt(1980, 1, 2).unwrap();
        assert_eq!(
            a.active().date_of_birth_tag(d),
            a.active().date_of_birth_tag(d)
        );
        assert_ne!(
            a.active().date_of_birth_tag(d),
            b.active().date_of_birth_tag(d)
        );
        assert_ne!(
            a.active().phone_tag("+1 555 0142", 1).unwrap(),
            b.active().phone_tag("+1 555 0142", 1).unwrap()
        );
        assert_eq!(
            a.active().phone_tag("+1 555 0142", 1).unwrap(),
            a.active().phone_tag("+1 (555) 01-42", 1).unwrap()
        );
        // Same token text under different kinds gives different tags.
        let name_tag = tag(a.active().index_key(), IndexKind::NamePrefix, "1980-01-02");
        assert_ne!(name_tag, a.active().date_of_birth_tag(d));
    }

    #[test]
    fn queries_cover_every_live_version() {
        let k = test_keys(PracticeId::new(), 2);
        let old = k.get(crate::DekVersion::FIRST).unwrap();
        let stored_old = old.name_index_tags("Ada Quillfeather");
        let q = k.name_query_tags("ad quill");
        assert_eq!(q.len(), 2);
        for word_tags in &q {
            assert_eq!(word_tags.len(), 2);
            assert!(word_tags.iter().any(|t| stored_old.contains(t)));
        }
        let d = NaiveDate::from_ymd_opt(1990, 5, 17).unwrap();
        assert!(
            k.date_of_birth_query_tags(d)
                .contains(&old.date_of_birth_tag(d))
        );
        assert_eq!(k.phone_query_tags("+1 555 0100", 1).unwrap().len(), 2);
    }
}
