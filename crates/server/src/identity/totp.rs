//! TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, ±1 step of skew (RFC 6238 §5.2 and
//! §6), 160-bit secrets from the OS CSPRNG (RFC 4226 §4 R6 recommends 160 bits). Codes are
//! compared in constant time (by `totp-rs`); the matched step is returned so the caller can
//! accept each step once (the replay check is in the database, `last_step < step`).

use chrono::{DateTime, Utc};
use rand::RngCore as _;
use totp_rs::{Builder, Totp};
use zeroize::Zeroizing;

/// RFC 6238 §5.2: 30-second time step.
pub const STEP_SECONDS: u64 = 30;
/// Secret length: 160 bits (RFC 4226 §4, R6).
pub const SECRET_BYTES: usize = 20;

/// A TOTP generator/checker for one secret.
pub struct TotpKey {
    totp: Totp,
}

impl std::fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpKey(***)")
    }
}

/// A secret that cannot be used (wrong length).
#[derive(Debug, thiserror::Error)]
#[error("the TOTP secret is invalid")]
pub struct BadSecret;

impl TotpKey {
    /// A fresh random secret.
    #[must_use]
    pub fn generate_secret() -> Zeroizing<Vec<u8>> {
        let mut s = Zeroizing::new(vec![0_u8; SECRET_BYTES]);
        rand::rngs::OsRng.fill_bytes(s.as_mut_slice());
        s
    }

    /// A checker for `secret`, labelled `issuer:account` in authenticator apps.
    pub fn new(secret: &[u8], issuer: &str, account: &str) -> Result<Self, BadSecret> {
        let clean = |s: &str| s.replace(':', " ");
        let totp = Builder::new()
            .with_secret(secret.to_vec())
            .with_skew(1)
            .with_step_duration(STEP_SECONDS)
            .with_issuer(Some(clean(issuer)))
            .with_account_name(clean(account))
            .build()
            .map_err(|_| BadSecret)?;
        Ok(Self { totp })
    }

    /// A checker from an `otpauth://totp/...` URI (what an authenticator app does with the QR
    /// code; used by tests and the test kit).
    pub fn from_uri(uri: &str) -> Result<Self, BadSecret> {
        Ok(Self {
            totp: Totp::from_url(uri).map_err(|_| BadSecret)?,
        })
    }

    /// The `otpauth://totp/...` URI for authenticator apps.
    pub fn uri(&self) -> Result<Zeroizing<String>, BadSecret> {
        self.totp
            .to_url()
            .map(Zeroizing::new)
            .map_err(|_| BadSecret)
    }

    /// The URI as a QR code, an SVG document.
    pub fn qr_svg(&self) -> Result<String, BadSecret> {
        let uri = self.uri()?;
        let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
            .map_err(|_| BadSecret)?;
        Ok(code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build())
    }

    /// The step a `code` matches at `now` (the current step or one either side), or `None`.
    /// Anything that is not six ASCII digits is simply no match.
    #[must_use]
    pub fn check(&self, code: &str, now: DateTime<Utc>) -> Option<i64> {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let t = u64::try_from(now.timestamp()).ok()?;
        self.totp
            .check(code, t)
            .and_then(|step| i64::try_from(step).ok())
    }

    /// The code for time `at` (tests and the test kit's authenticator).
    #[must_use]
    pub fn code_at(&self, at: DateTime<Utc>) -> String {
        let t = u64::try_from(at.timestamp()).unwrap_or_default();
        self.totp.generate(t).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    // RFC 6238 Appendix B, SHA-1 secret "12345678901234567890", 8 digits there; the 6-digit
    // codes are the last six digits.
    #[test]
    fn rfc6238_vectors() {
        let k = TotpKey::new(b"12345678901234567890", "Chartroom", "x@example.invalid").unwrap();
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            let at = Utc.timestamp_opt(t, 0).unwrap();
            assert_eq!(k.code_at(at), code, "t={t}");
            assert_eq!(k.check(code, at), Some(t / 30));
        }
    }

    // req: AU-02 — ±1 step accepted, ±2 refused; junk never matches.
    #[test]
    fn window() {
        let k = TotpKey::new(&TotpKey::generate_secret(), "Chartroom", "x").unwrap();
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let step = 1_800_000_000 / 30;
        for (dt, ok) in [
            (-60, false),
            (-30, true),
            (0, true),
            (30, true),
            (60, false),
        ] {
            let code = k.code_at(now + chrono::Duration::seconds(dt));
            assert_eq!(k.check(&code, now).is_some(), ok, "dt={dt}");
            if ok {
                assert_eq!(k.check(&code, now), Some(step + dt / 30));
            }
        }
        for junk in ["", "12345", "1234567", "abcdef", "12 456", "١٢٣٤٥٦"] {
            assert_eq!(k.check(junk, now), None);
        }
        assert!(k.uri().unwrap().starts_with("otpauth://totp/Chartroom:x?"));
        assert!(k.qr_svg().unwrap().contains("<svg"));
    }
}
