//! [`Secret`]: a value that never prints and is wiped when dropped.

use std::fmt;

use zeroize::Zeroize;

/// A secret value (key material, a token).
///
/// - `Debug` prints `Secret(***)`, so a secret cannot leak through a log line or a panic
///   message.
/// - The value is zeroized when the `Secret` is dropped.
/// - It is not `Clone`, `Serialize` or `PartialEq`: copying or comparing a secret has to be
///   spelled out with [`Secret::expose_secret`].
///
/// Zeroizing is best effort: a value moved *into* a `Secret` may have left copies on the
/// stack or in a reallocated buffer before it got here. The constructors in this crate build
/// key material in place to keep such copies to a minimum.
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// Borrows the secret value. Name the reason at the call site.
    #[must_use]
    pub const fn expose_secret(&self) -> &T {
        &self.0
    }

    /// Mutably borrows the secret value (to fill it in place).
    pub(crate) const fn expose_secret_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new(String::from("hunter2"));
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Secret::new([7u8; 32])), "Secret(***)");
        assert_eq!(s.expose_secret(), "hunter2");
    }
}
