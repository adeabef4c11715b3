//! Password policy (NIST SP 800-63B §5.1.1.2; req AU-05): a minimum length (12 by default),
//! long passwords allowed (up to 1,024 bytes, so ≥ 64 characters of any script), no
//! composition rules, no forced rotation; refused when on the shipped list of common
//! passwords, when it contains the account's own email or name, or when the `zxcvbn` strength
//! estimate is below "safely unguessable" (score 3).

use std::collections::HashSet;
use std::sync::OnceLock;

use zeroize::Zeroizing;

/// Why a password was refused. The message says what to do; it never echoes the password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    /// Shorter than the minimum.
    #[error(
        "the password is too short: use at least {0} characters (a passphrase of several words works well)"
    )]
    TooShort(usize),
    /// Longer than the maximum the server hashes.
    #[error("the password is too long: at most 1024 bytes")]
    TooLong,
    /// On the list of common or breached passwords.
    #[error("this password is on a list of common passwords; choose another")]
    Common,
    /// Contains the account's email or name.
    #[error("the password must not contain your email or name")]
    Personal,
    /// Too easy to guess by the strength estimate.
    #[error("this password is too easy to guess; make it longer or less predictable")]
    Weak,
}

impl PasswordRejection {
    /// The stable error code.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::TooShort(_) => "password_too_short",
            Self::TooLong => "password_too_long",
            Self::Common => "password_common",
            Self::Personal => "password_personal",
            Self::Weak => "password_weak",
        }
    }
}

/// The policy.
#[derive(Clone, Copy, Debug)]
pub struct PasswordPolicy {
    /// Minimum length in characters (NIST: at least 8; Chartroom's default 12). Values below
    /// 8 are raised to 8.
    pub min_chars: usize,
    /// Minimum `zxcvbn` score (0–4).
    pub min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            min_score: 3,
        }
    }
}

/// The shipped list of common passwords (`data/common-passwords.txt`, 20,000 entries).
fn common() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("../../data/common-passwords.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    })
}

impl PasswordPolicy {
    /// Checks `password` for the account with `email` and `name`. Length is counted in
    /// Unicode scalar values, spaces included and nothing trimmed (NIST: allow all printing
    /// characters and spaces).
    pub fn check(&self, password: &str, email: &str, name: &str) -> Result<(), PasswordRejection> {
        let min = self.min_chars.max(8);
        if password.len() > crate::password::MAX_BYTES {
            return Err(PasswordRejection::TooLong);
        }
        if password.chars().count() < min {
            return Err(PasswordRejection::TooShort(min));
        }
        let lower = Zeroizing::new(password.to_lowercase());
        if common().contains(lower.as_str()) {
            return Err(PasswordRejection::Common);
        }
        let local = email.split('@').next().unwrap_or_default().to_lowercase();
        let personal = std::iter::once(local)
            .chain(name.split_whitespace().map(str::to_lowercase))
            .filter(|w| w.chars().count() >= 4);
        for word in personal {
            if lower.contains(&word) {
                return Err(PasswordRejection::Personal);
            }
        }
        // zxcvbn is costly on very long inputs and long passphrases are strong anyway.
        if password.chars().count() < 64 {
            let inputs = [email, name];
            let score = u8::from(zxcvbn::zxcvbn(password, &inputs).score());
            if score < self.min_score.min(4) {
                return Err(PasswordRejection::Weak);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &str) -> Result<(), PasswordRejection> {
        PasswordPolicy::default().check(p, "dana.reyes@example.invalid", "Dana Reyes")
    }

    // req: AU-05
    #[test]
    fn table() {
        use PasswordRejection::*;
        let cases: &[(&str, Result<(), PasswordRejection>)] = &[
            ("short", Err(TooShort(12))),
            ("elevenchars", Err(TooShort(12))),
            ("1qaz2wsx3edc", Err(Common)),
            ("1QAZ2wsx3EDC", Err(Common)),
            ("megaparol12345", Err(Common)),
            ("1234567890123", Err(Common)),
            ("aaaaaaaaaaaaaaaa", Err(Weak)),
            ("abcabcabcabcabc", Err(Weak)),
            ("dana.reyes-2026!", Err(Personal)),
            ("my name is reyes!", Err(Personal)),
            ("tangerine mosaic orbit", Ok(())),
            // No composition rules: all lowercase letters and spaces are fine.
            ("paddle lantern quietly", Ok(())),
            ("correct horse battery staple", Ok(())),
        ];
        for (p, want) in cases {
            assert_eq!(&check(p), want, "{p:?}");
        }
    }

    // req: AU-05 — long Unicode passphrases are accepted (≥ 64 characters allowed).
    #[test]
    fn long_unicode_passphrase() {
        let p =
            "ünïcødé päßphrâse über den wölken — 雲の上の長いパスフレーズ 🌤️ and more words here";
        assert!(p.chars().count() >= 64);
        assert_eq!(check(p), Ok(()));
        let max = "a".repeat(1025);
        assert_eq!(check(&max), Err(PasswordRejection::TooLong));
    }

    #[test]
    fn minimum_is_never_below_eight() {
        let p = PasswordPolicy {
            min_chars: 4,
            min_score: 0,
        };
        assert_eq!(
            p.check("abcdefg", "x@y.invalid", "X"),
            Err(PasswordRejection::TooShort(8))
        );
    }
}
