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
    local: Option<Local>,
}

/// Why the gate took a self-hosted provider for the operator's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// A loopback address or a `localhost` name.
    Loopback,
    /// A Unix socket (`unix:/path/to.sock`).
    UnixSocket,
    /// A host the operator listed as its own (`--ai-self-hosted-host`).
    OperatorHost,
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

    /// Why a self-hosted provider was taken for local; `None` for a vendor.
    #[must_use]
    pub fn local(&self) -> Option<Local> {
        self.local
    }
}

/// Decides whether an AI call may reach `posture`, before any connection opens, with no
/// operator-listed hosts: a self-hosted provider must be on loopback, `localhost` or a Unix
/// socket. See [`gate_with_hosts`].
pub fn gate(posture: &ProviderPosture) -> Result<Cleared, Refusal> {
    gate_with_hosts(posture, &[])
}

/// Decides whether an AI call may reach `posture`, before any connection opens.
///
/// - Disabled providers are refused ([`Refusal::Disabled`]).
/// - The base URL must be `http`, `https` with a host, or `unix:` with an absolute socket
///   path (`unix:/run/x.sock` or `unix:///run/x.sock`) ([`Refusal::BadUrl`]).
/// - A vendor needs a BAA attestation ([`Refusal::NoBaa`]) and training disabled
///   ([`Refusal::TrainingEnabled`]), and must be reached over `https` unless it listens on
///   loopback ([`Refusal::BadUrl`]).
/// - A self-hosted provider must really be local ([`Refusal::NotLocal`]): a Unix socket, a
///   loopback address, `localhost` (or a `*.localhost` name), or a host named in
///   `operator_hosts` (the installation's configuration; compared case-insensitively).
pub fn gate_with_hosts(
    posture: &ProviderPosture,
    operator_hosts: &[String],
) -> Result<Cleared, Refusal> {
    if !posture.enabled {
        return Err(Refusal::Disabled);
    }
    let base = url::Url::parse(&posture.base_url).map_err(|_| Refusal::BadUrl)?;
    let scheme = base.scheme();
    if !matches!(scheme, "http" | "https" | "unix") {
        return Err(Refusal::BadUrl);
    }
    if scheme == "unix" {
        if crate::unix::socket_path(&base).is_none() {
            return Err(Refusal::BadUrl);
        }
    } else if base.host().is_none() {
        return Err(Refusal::BadUrl);
    }
    if !base.username().is_empty() || base.password().is_some() {
        // Credentials belong in the sealed API key, never in a URL that is shown and logged.
        return Err(Refusal::BadUrl);
    }
    let local = match posture.hosting {
        Hosting::SelfHosted => {
            if scheme == "unix" {
                Some(Local::UnixSocket)
            } else if is_loopback(&base) {
                Some(Local::Loopback)
            } else if is_operator_host(&base, operator_hosts) {
                Some(Local::OperatorHost)
            } else {
                return Err(Refusal::NotLocal);
            }
        }
        Hosting::Vendor => {
            if posture.baa.is_none() {
                return Err(Refusal::NoBaa);
            }
            if !posture.training_disabled {
                return Err(Refusal::TrainingEnabled);
            }
            if scheme == "unix" || (scheme == "http" && !is_loopback(&base)) {
                return Err(Refusal::BadUrl);
            }
            None
        }
    };
    Ok(Cleared {
        posture: posture.clone(),
        base,
        local,
    })
}

/// Whether the URL's host is a loopback address or a `localhost` name.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => false,
    }
}

/// Whether the URL's host is one the operator listed as its own: the same name (compared
/// case-insensitively, without a trailing dot) or the same IP address (an IPv6 address listed
/// with or without brackets).
fn is_operator_host(url: &url::Url, operator_hosts: &[String]) -> bool {
    let Some(host) = url.host() else {
        return false;
    };
    operator_hosts
        .iter()
        .filter_map(|listed| listed_host(listed))
        .any(|listed| match (&listed, &host) {
            (url::Host::Domain(a), url::Host::Domain(b)) => a
                .trim_end_matches('.')
                .eq_ignore_ascii_case(b.trim_end_matches('.')),
            (url::Host::Ipv4(a), url::Host::Ipv4(b)) => a == b,
            (url::Host::Ipv6(a), url::Host::Ipv6(b)) => a == b,
            _ => false,
        })
}

/// A listed host, parsed as a URL host; `None` when empty or not a host.
fn listed_host(listed: &str) -> Option<url::Host> {
    let listed = listed.trim().trim_end_matches('.');
    if listed.is_empty() {
        return None;
    }
    if listed.contains(':') && !listed.starts_with('[') {
        url::Host::parse(&format!("[{listed}]")).ok()
    } else {
        url::Host::parse(listed).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posture(hosting: Hosting, base_url: &str) -> ProviderPosture {
        ProviderPosture {
            provider_id: None,
            label: "test".into(),
            base_url: base_url.into(),
            model: "m".into(),
            hosting,
            baa: None,
            training_disabled: false,
            enabled: true,
        }
    }

    fn baa() -> BaaAttestation {
        BaaAttestation {
            attested_by: domain::UserId::new(),
            attested_at: chrono::DateTime::UNIX_EPOCH,
            document_ref: "BAA-2026-001".into(),
        }
    }

    // req: SCR-03
    #[test]
    fn self_hosted_must_be_local() {
        let listed_hosts = vec!["whisper.clinic.internal".to_string()];
        let listed: &[String] = listed_hosts.as_slice();
        let none: &[String] = &[];
        let cases: Vec<(&str, &[String], Result<(), Refusal>)> = vec![
            ("http://127.0.0.1:8080", none, Ok(())),
            ("http://127.8.9.1:8080", none, Ok(())),
            ("http://[::1]:8080", none, Ok(())),
            ("http://localhost:11434", none, Ok(())),
            ("http://LOCALHOST.:11434", none, Ok(())),
            ("http://asr.localhost", none, Ok(())),
            ("unix:///run/whisper.sock", none, Ok(())),
            ("unix:/run/whisper.sock", none, Ok(())),
            ("unix:", none, Err(Refusal::BadUrl)),
            ("unix:/", none, Err(Refusal::BadUrl)),
            ("unix:relative.sock", none, Err(Refusal::BadUrl)),
            (
                "unix://somehost/run/whisper.sock",
                none,
                Err(Refusal::BadUrl),
            ),
            ("unix:/run/whisper.sock?x=1", none, Err(Refusal::BadUrl)),
            ("https://api.openai.com", none, Err(Refusal::NotLocal)),
            ("http://10.0.0.5:8080", none, Err(Refusal::NotLocal)),
            (
                "http://localhost.evil.example",
                none,
                Err(Refusal::NotLocal),
            ),
            (
                "http://whisper.clinic.internal",
                none,
                Err(Refusal::NotLocal),
            ),
            ("http://whisper.clinic.internal:9000", listed, Ok(())),
            ("http://WHISPER.clinic.internal", listed, Ok(())),
            (
                "http://other.clinic.internal",
                listed,
                Err(Refusal::NotLocal),
            ),
            // An IPv4-mapped address is not taken for loopback; listed, it is the operator's.
            (
                "http://[::ffff:127.0.0.1]:8080",
                none,
                Err(Refusal::NotLocal),
            ),
            ("ftp://localhost", none, Err(Refusal::BadUrl)),
            ("not a url", none, Err(Refusal::BadUrl)),
            ("http://user:pw@localhost", none, Err(Refusal::BadUrl)),
        ];
        for (url, hosts, want) in cases {
            let got = gate_with_hosts(&posture(Hosting::SelfHosted, url), hosts).map(|_| ());
            assert_eq!(got, want, "{url}");
        }
    }

    // req: SCR-03
    #[test]
    fn vendor_needs_baa_training_off_and_tls() {
        let mut p = posture(Hosting::Vendor, "https://api.vendor.example");
        assert_eq!(gate(&p).map(|_| ()), Err(Refusal::NoBaa));
        p.baa = Some(baa());
        assert_eq!(gate(&p).map(|_| ()), Err(Refusal::TrainingEnabled));
        p.training_disabled = true;
        assert!(gate(&p).is_ok());
        p.base_url = "http://api.vendor.example".into();
        assert_eq!(gate(&p).map(|_| ()), Err(Refusal::BadUrl));
        p.base_url = "http://127.0.0.1:9".into();
        assert!(gate(&p).is_ok());
        p.enabled = false;
        assert_eq!(gate(&p).map(|_| ()), Err(Refusal::Disabled));
    }

    #[test]
    fn listed_addresses_match_as_addresses() {
        let hosts = vec![
            "::ffff:127.0.0.1".to_string(),
            "[fd00::7]".into(),
            "10.1.2.3".into(),
        ];
        for url in [
            "http://[::ffff:7f00:1]:9000",
            "http://[FD00:0::7]",
            "http://10.1.2.3:80",
        ] {
            assert_eq!(
                gate_with_hosts(&posture(Hosting::SelfHosted, url), &hosts).map(|c| c.local()),
                Ok(Some(Local::OperatorHost)),
                "{url}"
            );
        }
        assert_eq!(
            gate_with_hosts(&posture(Hosting::SelfHosted, "http://10.1.2.4"), &hosts).map(|_| ()),
            Err(Refusal::NotLocal)
        );
    }

    #[test]
    fn the_clearance_says_why_a_provider_is_local() {
        let hosts = vec!["gpu1.internal".to_string()];
        let local = |url: &str| {
            gate_with_hosts(&posture(Hosting::SelfHosted, url), &hosts)
                .unwrap()
                .local()
        };
        assert_eq!(local("http://127.0.0.1:1"), Some(Local::Loopback));
        assert_eq!(local("unix:/run/x.sock"), Some(Local::UnixSocket));
        assert_eq!(
            local("http://gpu1.internal:8000"),
            Some(Local::OperatorHost)
        );
        let mut vendor = posture(Hosting::Vendor, "https://api.vendor.example");
        vendor.baa = Some(baa());
        vendor.training_disabled = true;
        assert_eq!(gate_with_hosts(&vendor, &hosts).unwrap().local(), None);
        // Listing a vendor's host does not make the vendor self-hosted.
        let mut listed_vendor = vendor.clone();
        listed_vendor.baa = None;
        listed_vendor.base_url = "https://gpu1.internal".into();
        assert_eq!(
            gate_with_hosts(&listed_vendor, &hosts).map(|_| ()),
            Err(Refusal::NoBaa)
        );
    }

    #[test]
    fn disabled_is_refused_first() {
        let mut p = posture(Hosting::SelfHosted, "http://127.0.0.1");
        p.enabled = false;
        assert_eq!(gate(&p).map(|_| ()), Err(Refusal::Disabled));
    }
}
