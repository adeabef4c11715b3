//! Typed payment fields: what a payment processor may be told (req EGR-02). An amount in
//! minor units, a currency, opaque ids and a description from a fixed list; nothing about the
//! visit, the patient or the treatment.

/// An ISO 4217 currency Chartroom charges in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Currency {
    /// US dollar.
    Usd,
    /// Canadian dollar.
    Cad,
    /// Euro.
    Eur,
    /// Pound sterling.
    Gbp,
    /// Australian dollar.
    Aud,
}

impl Currency {
    /// The lower-case code processors expect.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Usd => "usd",
            Self::Cad => "cad",
            Self::Eur => "eur",
            Self::Gbp => "gbp",
            Self::Aud => "aud",
        }
    }
}

/// Largest single charge, in minor units (100,000.00).
pub const MAX_AMOUNT_MINOR: u64 = 10_000_000;

/// An amount in minor units (cents), 1 to [`MAX_AMOUNT_MINOR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    minor: u64,
    currency: Currency,
}

/// Why an amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an amount must be between 1 and {MAX_AMOUNT_MINOR} minor units")]
pub struct AmountError;

impl Amount {
    /// An amount.
    ///
    /// # Errors
    /// [`AmountError`] for zero or more than [`MAX_AMOUNT_MINOR`].
    pub const fn new(minor: u64, currency: Currency) -> Result<Self, AmountError> {
        if minor == 0 || minor > MAX_AMOUNT_MINOR {
            Err(AmountError)
        } else {
            Ok(Self { minor, currency })
        }
    }

    /// Minor units.
    #[must_use]
    pub const fn minor(self) -> u64 {
        self.minor
    }

    /// The currency.
    #[must_use]
    pub const fn currency(self) -> Currency {
        self.currency
    }
}

/// What a charge is for, as the processor and the card statement show it: generic words only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Description {
    /// A deposit for an appointment.
    Deposit,
    /// Payment in advance for an appointment.
    Prepayment,
    /// A late-cancellation fee.
    LateCancellationFee,
    /// A no-show fee.
    NoShowFee,
    /// Saving a card for later charges.
    CardOnFile,
}

impl Description {
    /// The fixed text.
    #[must_use]
    pub const fn text(self) -> &'static str {
        match self {
            Self::Deposit => "Appointment deposit",
            Self::Prepayment => "Appointment prepayment",
            Self::LateCancellationFee => "Late cancellation fee",
            Self::NoShowFee => "Missed appointment fee",
            Self::CardOnFile => "Card saved for appointments",
        }
    }
}

/// An opaque reference Chartroom gives the processor (metadata, idempotency key): a UUID, so
/// nothing else can be put there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpaqueRef(uuid::Uuid);

impl OpaqueRef {
    /// A reference to an internal record by its id.
    #[must_use]
    pub const fn new(id: uuid::Uuid) -> Self {
        Self(id)
    }

    /// The id it names (a webhook's reference, read back).
    #[must_use]
    pub const fn as_uuid(self) -> uuid::Uuid {
        self.0
    }

    /// Its text.
    #[must_use]
    pub fn to_text(self) -> String {
        self.0.as_hyphenated().to_string()
    }
}

/// One charge request: every field a processor call may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// How much.
    pub amount: Amount,
    /// What for (fixed words).
    pub description: Description,
    /// Chartroom's reference (metadata and idempotency key).
    pub reference: OpaqueRef,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_bounded() {
        assert_eq!(Amount::new(0, Currency::Usd), Err(AmountError));
        assert_eq!(
            Amount::new(MAX_AMOUNT_MINOR + 1, Currency::Usd),
            Err(AmountError)
        );
        let a = Amount::new(5000, Currency::Cad).unwrap();
        assert_eq!((a.minor(), a.currency().code()), (5000, "cad"));
    }

    #[test]
    fn descriptions_are_generic() {
        for d in [
            Description::Deposit,
            Description::Prepayment,
            Description::LateCancellationFee,
            Description::NoShowFee,
            Description::CardOnFile,
        ] {
            let t = d.text().to_lowercase();
            for clinical in [
                "dental",
                "massage",
                "therapy",
                "clean",
                "perio",
                "treatment",
            ] {
                assert!(!t.contains(clinical), "{t}");
            }
        }
    }
}
