//! The provider gate: which providers an AI call may reach.

/// Where a provider runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosting {
    /// A vendor's service (a subprocessor).
    Vendor,
    /// The operator's own host: loopback, a Unix socket or a host the operator runs.
    SelfHosted,
}

/// What the registry says about one provider: everything the gate decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPosture {
    /// The registry id (`None`: the installation's built-in local default).
    pub provider_id: Option<domain::ProviderId>,
    /// Label shown to staff (not secret, not PHI).
    pub label: String,
    /// Base URL the adapter will call.
    pub base_url: String,
    /// Model name sent to the provider.
    pub model: String,
    /// Where it runs.
    pub hosting: Hosting,
    /// When and by whom a BAA was attested, with its document reference.
    pub baa: Option<BaaAttestation>,
    /// Whether the provider is contractually and technically barred from training on inputs.
    pub training_disabled: bool,
    /// Whether the practice has it switched on.
    pub enabled: bool,
}

/// A BAA attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaaAttestation {
    /// Who attested it.
    pub attested_by: domain::UserId,
    /// When.
    pub attested_at: chrono::DateTime<chrono::Utc>,
    /// The document reference (contract number, file name).
    pub document_ref: String,
}

/// Why the gate refused a provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Switched off.
    #[error("the provider is disabled")]
    Disabled,
    /// A vendor with no BAA on record.
    #[error("the provider is a vendor with no BAA attested")]
    NoBaa,
    /// A vendor that may train on inputs.
    #[error("the provider does not have training disabled")]
    TrainingEnabled,
    /// Marked self-hosted but its address is not the operator's own.
    #[error("the provider is marked self-hosted but its address is not local")]
    NotLocal,
    /// The address is not a usable http(s) URL.
    #[error("the provider's address is not a usable URL")]
    BadUrl,
}

/// A provider the gate let through; adapters take only this.
#[derive(Debug, Clone)]
pub struct Cleared {
    posture: ProviderPosture,
    base: url::Url,
}

impl Cleared {
    /// The provider as the registry described it.
    #[must_use]
    pub fn posture(&self) -> &ProviderPosture {
        &self.posture
    }

    /// The parsed base URL.
    #[must_use]
    pub fn base_url(&self) -> &url::Url {
        &self.base
    }
}

/// Decides whether an AI call may reach `posture`, before any connection opens.
pub fn gate(posture: &ProviderPosture) -> Result<Cleared, Refusal> {
    if !posture.enabled {
        return Err(Refusal::Disabled);
    }
    let base = url::Url::parse(&posture.base_url).map_err(|_| Refusal::BadUrl)?;
    if !matches!(base.scheme(), "http" | "https" | "unix") {
        return Err(Refusal::BadUrl);
    }
    match posture.hosting {
        Hosting::SelfHosted => {}
        Hosting::Vendor => {
            if posture.baa.is_none() {
                return Err(Refusal::NoBaa);
            }
            if !posture.training_disabled {
                return Err(Refusal::TrainingEnabled);
            }
        }
    }
    Ok(Cleared {
        posture: posture.clone(),
        base,
    })
}
