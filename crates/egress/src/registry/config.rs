//! The deployment's integrations file (TOML), parsed into typed [`Integration`]s.
//!
//! # Syntax
//! ```toml
//! [[integration]]
//! kind = "sms"                         # sms | email | push | payments | geocoding | ai
//! vendor = "telnyx"                    # see Vendor
//! hosting = "vendor"                   # or "self_hosted" (smtp, nominatim only); default vendor
//! base_url = "https://api.telnyx.com/v2"   # https; no user, password, query or fragment
//! added = 2026-11-02                   # the date the operator added it
//! location = { country = "US", region = "us-east" }
//!
//! [integration.credentials]            # paths of 0600 files, never the secrets themselves
//! api_key_file = "/etc/chartroom/telnyx-api-key"
//! webhook_public_key_file = "/etc/chartroom/telnyx-webhook.pub"
//!
//! [integration.sender]
//! sms_number = "+15555550100"          # email: email_from, dkim_selector, dkim_domain, dkim_key_file
//!
//! [integration.baa]
//! status = "signed"                    # or "not_required" (no PHI, or self-hosted)
//! signed_on = 2026-10-30
//! document = "Telnyx BAA 2026-10"
//!
//! [integration.overrides]              # optional: role, data_categories, training, retention, hosts
//! retention = "30 days, then deleted"
//! ```
//! Unknown keys are refused, naming the key; error messages never repeat a value (a secret
//! pasted in the wrong place stays out of logs).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;

use super::facts::{Facts, Kind, Phi, Vendor, facts};

/// Largest integrations file read.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Most integrations in one file.
pub const MAX_INTEGRATIONS: usize = 32;
/// Longest free-text value (document reference, region, overrides).
const MAX_TEXT: usize = 200;

/// Why the integrations file was refused. The message names the file, the line or the
/// integration and the key; it never carries a configured value other than a file path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ConfigError {
    /// Where: the file and a line, or the file and the integration.
    pub at: String,
    /// The key at fault, when one is.
    pub key: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

/// Where an integration runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hosting {
    /// The vendor's service: a subprocessor.
    Vendor,
    /// The operator's own host: listed, but not a subprocessor.
    SelfHosted,
}

/// BAA status as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaaStatus {
    /// A BAA is signed.
    Signed,
    /// None is needed (no PHI, or self-hosted).
    NotRequired,
}

/// A BAA as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baa {
    /// Signed or not required.
    pub status: BaaStatus,
    /// When it was signed (with `Signed`).
    pub signed_on: Option<NaiveDate>,
    /// The document reference (with `Signed`; not published).
    pub document: Option<String>,
}

/// Where the vendor processes data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// Region, when the vendor names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Paths of the files holding an integration's secrets (each 0600 or stricter).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The API key or auth token.
    pub api_key_file: Option<PathBuf>,
    /// A shared webhook signing secret (Twilio, Stripe, Resend).
    pub webhook_secret_file: Option<PathBuf>,
    /// A webhook verification public key (Telnyx Ed25519).
    pub webhook_public_key_file: Option<PathBuf>,
    /// An SMTP password.
    pub password_file: Option<PathBuf>,
    /// The VAPID private key (Web Push).
    pub vapid_private_key_file: Option<PathBuf>,
    /// The account id or SMTP user name (not secret).
    pub account: Option<String>,
}

impl Credentials {
    /// Every configured secret file, with its key.
    #[must_use]
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        [
            ("api_key_file", &self.api_key_file),
            ("webhook_secret_file", &self.webhook_secret_file),
            ("webhook_public_key_file", &self.webhook_public_key_file),
            ("password_file", &self.password_file),
            ("vapid_private_key_file", &self.vapid_private_key_file),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.as_deref().map(|p| (k, p)))
        .collect()
    }
}

/// Who messages come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sender {
    /// The SMS sending number (E.164).
    pub sms_number: Option<String>,
    /// The email `From` address.
    pub email_from: Option<String>,
    /// DKIM signing: selector, domain and key file (0600).
    pub dkim: Option<Dkim>,
}

/// DKIM signing settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dkim {
    /// The selector (`s=`).
    pub selector: String,
    /// The signing domain (`d=`).
    pub domain: String,
    /// The private key file (0600).
    pub key_file: PathBuf,
}

/// Facts the operator overrides (descriptive only: whether a vendor touches PHI is code).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The role text.
    pub role: Option<String>,
    /// The data categories.
    pub data_categories: Option<Vec<String>>,
    /// The training posture.
    pub training: Option<String>,
    /// The retention posture.
    pub retention: Option<String>,
    /// Extra hosts the adapter may call (e.g. a second API host).
    pub hosts: Vec<String>,
}

/// One enabled integration of this deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integration {
    /// What it is for.
    pub kind: Kind,
    /// Whose service.
    pub vendor: Vendor,
    /// Where it runs.
    pub hosting: Hosting,
    /// The base URL the adapter calls (none for Web Push: each subscription names its own).
    pub base_url: Option<url::Url>,
    /// The secret files.
    pub credentials: Credentials,
    /// Sender identities.
    pub sender: Sender,
    /// The BAA (`None`: no `[baa]` section).
    pub baa: Option<Baa>,
    /// Where data is processed.
    pub location: Location,
    /// When the operator added it.
    pub added: NaiveDate,
    /// Overridden descriptive facts.
    pub overrides: Overrides,
}

impl Integration {
    /// The stable id, `<kind>.<vendor>` (unique in a file).
    #[must_use]
    pub fn id(&self) -> String {
        format!("{}.{}", self.kind.as_str(), self.vendor.as_str())
    }

    /// The vendor's facts (code, not configuration).
    #[must_use]
    pub fn facts(&self) -> Facts {
        facts(self.vendor)
    }

    /// Whether it sees PHI.
    #[must_use]
    pub fn touches_phi(&self) -> bool {
        matches!(self.facts().phi, Phi::Touches(_))
    }

    /// Whether it is a subprocessor (run by a vendor, not on the operator's own host).
    #[must_use]
    pub fn is_subprocessor(&self) -> bool {
        self.hosting == Hosting::Vendor
    }

    /// The hosts the adapter may call: the base URL's host, the vendor's default hosts when
    /// there is no base URL, and the overrides' extra hosts (lower case).
    #[must_use]
    pub fn hosts(&self) -> Vec<String> {
        let mut out: Vec<String> = match &self.base_url {
            Some(u) => u
                .host_str()
                .map(str::to_ascii_lowercase)
                .into_iter()
                .collect(),
            None => self
                .facts()
                .default_hosts
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
        };
        out.extend(self.overrides.hosts.iter().map(|h| h.to_ascii_lowercase()));
        out.sort();
        out.dedup();
        out
    }

    /// What a PHI-touching subprocessor lacks to be covered: `None` when covered (or when no
    /// BAA is needed).
    #[must_use]
    pub fn missing_baa(&self) -> Option<&'static str> {
        if !(self.touches_phi() && self.is_subprocessor()) {
            return None;
        }
        match &self.baa {
            None => Some(
                "no [baa] section: a signed BAA (status = \"signed\", signed_on, document) is required",
            ),
            Some(b) if b.status != BaaStatus::Signed => Some(
                "baa.status is \"not_required\", but it touches PHI: a signed BAA (status = \"signed\", signed_on, document) is required",
            ),
            Some(_) => None,
        }
    }
}

/// A PHI-touching subprocessor without a signed BAA (refused at start-up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {kind} integration with {vendor} touches PHI and is not BAA-covered: {missing}")]
pub struct Uncovered {
    /// The vendor's name.
    pub vendor: &'static str,
    /// The kind of integration.
    pub kind: &'static str,
    /// What is missing.
    pub missing: &'static str,
}

/// The integrations of this deployment (possibly none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Integrations {
    list: Vec<Integration>,
}

impl Integrations {
    /// No integrations: no messaging or payment vendor is called.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// The integrations, in file order.
    #[must_use]
    pub fn list(&self) -> &[Integration] {
        &self.list
    }

    /// Reads and parses `path` ([`Integrations::parse`]) and checks every credential file
    /// ([`Integrations::check_files`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let at = || name.clone();
        let meta = std::fs::metadata(path).map_err(|e| ConfigError {
            at: at(),
            key: None,
            message: format!("cannot be read ({})", e.kind()),
        })?;
        if meta.len() > MAX_CONFIG_BYTES as u64 {
            return Err(ConfigError {
                at: at(),
                key: None,
                message: format!("larger than {MAX_CONFIG_BYTES} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            at: at(),
            key: None,
            message: format!("cannot be read as UTF-8 text ({})", e.kind()),
        })?;
        let parsed = Self::parse(&text, &name)?;
        parsed.check_files(&name)?;
        Ok(parsed)
    }

    /// Parses the text of an integrations file named `origin` (for messages). Checks shapes
    /// and values, not the credential files.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError {
                at: origin.to_owned(),
                key: None,
                message: format!("larger than {MAX_CONFIG_BYTES} bytes"),
            });
        }
        let raw: RawFile = toml::from_str(text).map_err(|e| syntax_error(&e, text, origin))?;
        if raw.integration.len() > MAX_INTEGRATIONS {
            return Err(ConfigError {
                at: origin.to_owned(),
                key: Some("integration".into()),
                message: format!("more than {MAX_INTEGRATIONS} integrations"),
            });
        }
        let mut list: Vec<Integration> = Vec::with_capacity(raw.integration.len());
        for (i, r) in raw.integration.into_iter().enumerate() {
            let at = format!(
                "{origin}: integration {} ({}/{})",
                i + 1,
                r.kind.as_str(),
                r.vendor.as_str()
            );
            let integration = r.validate(&at)?;
            if list.iter().any(|x| x.id() == integration.id()) {
                return Err(ConfigError {
                    at,
                    key: Some("vendor".into()),
                    message: "the same kind and vendor are configured twice".into(),
                });
            }
            list.push(integration);
        }
        Ok(Self { list })
    }

    /// Checks that every credential file exists, is a regular file and is readable by its
    /// owner only (mode 0600 or 0400).
    pub fn check_files(&self, origin: &str) -> Result<(), ConfigError> {
        for i in &self.list {
            let at = format!("{origin}: integration {}", i.id());
            let mut files = i.credentials.files();
            if let Some(d) = &i.sender.dkim {
                files.push(("sender.dkim_key_file", d.key_file.as_path()));
            }
            for (key, path) in files {
                check_secret_file(path).map_err(|problem| ConfigError {
                    at: at.clone(),
                    key: Some(key.to_owned()),
                    message: format!("`{key}`: {} {problem}", path.display()),
                })?;
            }
        }
        Ok(())
    }

    /// Refuses a PHI-touching subprocessor without a signed BAA (every one is reported).
    pub fn check_coverage(&self) -> Result<(), Vec<Uncovered>> {
        let missing: Vec<Uncovered> = self
            .list
            .iter()
            .filter_map(|i| {
                i.missing_baa().map(|missing| Uncovered {
                    vendor: i.vendor.display_name(),
                    kind: i.kind.as_str(),
                    missing,
                })
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }
}

#[cfg(unix)]
fn check_secret_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read ({})", e.kind()))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "is readable by group or others (mode {mode:04o}): make it 0600"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_secret_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read ({})", e.kind()))?;
    if meta.is_file() {
        Ok(())
    } else {
        Err("is not a regular file".into())
    }
}

/// A TOML or shape error as a [`ConfigError`]: the line, the message with any quoted value
/// removed, and a hint when a secret was written where a file path belongs.
fn syntax_error(e: &toml::de::Error, text: &str, origin: &str) -> ConfigError {
    let line = e.span().map(|s| {
        text.get(..s.start)
            .map_or(0, |before| before.matches('\n').count())
            + 1
    });
    let mut message = redact(e.message());
    let key = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned)
        .or_else(|| line.and_then(|l| key_on_line(text, l)));
    if let Some(k) = key.as_ref().filter(|k| !k.ends_with("_file"))
        && message.contains("_file`")
    {
        let _ = write!(
            message,
            " (secrets are never written in this file: give `{k}_file`, the path of a 0600 file holding it)"
        );
    }
    ConfigError {
        at: match line {
            Some(l) => format!("{origin}: line {l}"),
            None => origin.to_owned(),
        },
        key,
        message,
    }
}

/// The bare key written at the start of line `line` (1-based), if the line is `key = …`.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (key, _) = l.split_once('=')?;
    let key = key.trim();
    (!key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'))
    .then(|| key.to_owned())
}

/// `message` without anything it quotes from the input: double-quoted strings become `"…"`
/// and an unknown value is not repeated.
fn redact(message: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let expected = rest.split_once("`, ").map_or("", |(_, e)| e);
        return format!("unknown value, {expected}")
            .trim_end_matches(", ")
            .to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut in_quote = false;
    for c in message.chars() {
        if c == '"' {
            if in_quote {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            in_quote = !in_quote;
        } else if !in_quote {
            out.push(c);
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    integration: Vec<RawIntegration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntegration {
    kind: Kind,
    vendor: Vendor,
    #[serde(default)]
    hosting: Option<Hosting>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    credentials: RawCredentials,
    #[serde(default)]
    sender: RawSender,
    #[serde(default)]
    baa: Option<RawBaa>,
    location: RawLocation,
    added: toml::Value,
    #[serde(default)]
    overrides: RawOverrides,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    api_key_file: Option<String>,
    webhook_secret_file: Option<String>,
    webhook_public_key_file: Option<String>,
    password_file: Option<String>,
    vapid_private_key_file: Option<String>,
    account: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSender {
    sms_number: Option<String>,
    email_from: Option<String>,
    dkim_selector: Option<String>,
    dkim_domain: Option<String>,
    dkim_key_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBaa {
    status: BaaStatus,
    #[serde(default)]
    signed_on: Option<toml::Value>,
    #[serde(default)]
    document: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocation {
    country: String,
    #[serde(default)]
    region: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOverrides {
    role: Option<String>,
    data_categories: Option<Vec<String>>,
    training: Option<String>,
    retention: Option<String>,
    #[serde(default)]
    hosts: Vec<String>,
}

/// A refusal at `at` naming `key`.
fn bad(at: &str, key: &str, problem: &str) -> ConfigError {
    ConfigError {
        at: at.to_owned(),
        key: Some(key.to_owned()),
        message: format!("`{key}`: {problem}"),
    }
}

/// A date written as a TOML date (`2026-10-30`) or a string in that form.
fn date(at: &str, key: &str, v: &toml::Value) -> Result<NaiveDate, ConfigError> {
    let text = match v {
        toml::Value::Datetime(d) if d.date.is_some() && d.time.is_none() => d.to_string(),
        toml::Value::String(s) => s.clone(),
        _ => return Err(bad(at, key, "expected a date (YYYY-MM-DD)")),
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|_| bad(at, key, "expected a date (YYYY-MM-DD)"))
}

/// Bounded printable text.
fn text(at: &str, key: &str, v: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > MAX_TEXT || v.chars().any(char::is_control) {
        return Err(bad(
            at,
            key,
            &format!("expected 1 to {MAX_TEXT} printable characters"),
        ));
    }
    Ok(v.to_owned())
}

/// An absolute path for a secret file; anything else is refused without repeating it (it may
/// be a secret pasted in place of its path).
fn secret_path(at: &str, key: &str, v: Option<&String>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let p = PathBuf::from(v);
    if !p.is_absolute() || v.chars().any(char::is_control) || v.len() > 4096 {
        return Err(bad(
            at,
            key,
            "expected the absolute path of a 0600 file holding the secret (secrets are never written in this file)",
        ));
    }
    Ok(Some(p))
}

/// A host name or address for the allow-list.
fn host(at: &str, key: &str, v: &str) -> Result<String, ConfigError> {
    let v = v.trim().trim_end_matches('.');
    if v.is_empty() || v.len() > 253 || url::Host::parse(v).is_err() || v.contains('/') {
        return Err(bad(at, key, "expected a host name"));
    }
    Ok(v.to_ascii_lowercase())
}

impl RawIntegration {
    fn validate(self, at: &str) -> Result<Integration, ConfigError> {
        let RawIntegration {
            kind,
            vendor,
            hosting,
            base_url,
            credentials,
            sender,
            baa,
            location,
            added,
            overrides,
        } = self;
        if vendor.kind() != kind {
            return Err(bad(
                at,
                "vendor",
                &format!(
                    "this vendor serves kind \"{}\", not \"{}\"",
                    vendor.kind().as_str(),
                    kind.as_str()
                ),
            ));
        }
        let hosting = hosting.unwrap_or(Hosting::Vendor);
        if hosting == Hosting::SelfHosted && !vendor.may_be_self_hosted() {
            return Err(bad(
                at,
                "hosting",
                "only smtp and nominatim can be self-hosted",
            ));
        }
        let base_url = match (vendor, base_url) {
            (Vendor::Webpush, Some(_)) => {
                return Err(bad(
                    at,
                    "base_url",
                    "Web Push has no base URL (each subscription names its push service); list extra hosts in overrides.hosts",
                ));
            }
            (Vendor::Webpush, None) => None,
            (_, None) => return Err(bad(at, "base_url", "required")),
            (_, Some(u)) => Some(base_url_of(at, &u, hosting)?),
        };
        let credentials = credentials_of(at, &credentials)?;
        let sender = sender_of(at, kind, sender)?;
        let baa = baa.map(|b| baa_of(at, b)).transpose()?;
        let location = location_of(at, location)?;
        let added = date(at, "added", &added)?;
        let overrides = overrides_of(at, overrides)?;
        Ok(Integration {
            kind,
            vendor,
            hosting,
            base_url,
            credentials,
            sender,
            baa,
            location,
            added,
            overrides,
        })
    }
}

fn credentials_of(at: &str, credentials: &RawCredentials) -> Result<Credentials, ConfigError> {
    Ok(Credentials {
        api_key_file: secret_path(
            at,
            "credentials.api_key_file",
            credentials.api_key_file.as_ref(),
        )?,
        webhook_secret_file: secret_path(
            at,
            "credentials.webhook_secret_file",
            credentials.webhook_secret_file.as_ref(),
        )?,
        webhook_public_key_file: secret_path(
            at,
            "credentials.webhook_public_key_file",
            credentials.webhook_public_key_file.as_ref(),
        )?,
        password_file: secret_path(
            at,
            "credentials.password_file",
            credentials.password_file.as_ref(),
        )?,
        vapid_private_key_file: secret_path(
            at,
            "credentials.vapid_private_key_file",
            credentials.vapid_private_key_file.as_ref(),
        )?,
        account: credentials
            .account
            .as_deref()
            .map(|a| text(at, "credentials.account", a))
            .transpose()?,
    })
}

fn overrides_of(at: &str, overrides: RawOverrides) -> Result<Overrides, ConfigError> {
    Ok(Overrides {
        role: overrides
            .role
            .as_deref()
            .map(|v| text(at, "overrides.role", v))
            .transpose()?,
        data_categories: match overrides.data_categories {
            None => None,
            Some(list) => {
                if list.is_empty() || list.len() > 12 {
                    return Err(bad(
                        at,
                        "overrides.data_categories",
                        "expected 1 to 12 categories",
                    ));
                }
                Some(
                    list.iter()
                        .map(|c| text(at, "overrides.data_categories", c))
                        .collect::<Result<_, _>>()?,
                )
            }
        },
        training: overrides
            .training
            .as_deref()
            .map(|v| text(at, "overrides.training", v))
            .transpose()?,
        retention: overrides
            .retention
            .as_deref()
            .map(|v| text(at, "overrides.retention", v))
            .transpose()?,
        hosts: {
            if overrides.hosts.len() > 8 {
                return Err(bad(at, "overrides.hosts", "at most 8 hosts"));
            }
            overrides
                .hosts
                .iter()
                .map(|h| host(at, "overrides.hosts", h))
                .collect::<Result<_, _>>()?
        },
    })
}

fn base_url_of(at: &str, raw: &str, hosting: Hosting) -> Result<url::Url, ConfigError> {
    let key = "base_url";
    let u = url::Url::parse(raw).map_err(|_| bad(at, key, "not a URL"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            at,
            key,
            "must not carry a user name or password (credentials go in credential files)",
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad(
            at,
            key,
            "must not carry a query or fragment (credentials go in credential files)",
        ));
    }
    let Some(h) = u.host() else {
        return Err(bad(at, key, "must name a host"));
    };
    let loopback = match h {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
    };
    let scheme_ok = match u.scheme() {
        // An SMTP relay: submission with TLS (smtps) or STARTTLS (smtp, upgraded by the
        // adapter); the adapter decides, the registry only lists the host.
        "https" | "smtp" | "smtps" => true,
        "http" => loopback || hosting == Hosting::SelfHosted,
        _ => false,
    };
    if !scheme_ok {
        return Err(bad(
            at,
            key,
            "expected https (http only for loopback or a self-hosted service; smtp/smtps for a relay)",
        ));
    }
    Ok(u)
}

fn sender_of(at: &str, kind: Kind, s: RawSender) -> Result<Sender, ConfigError> {
    let sms_number = match (&s.sms_number, kind) {
        (Some(n), Kind::Sms) => {
            let digits = n.strip_prefix('+').unwrap_or("");
            if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    at,
                    "sender.sms_number",
                    "expected an E.164 number (+ and 8 to 15 digits)",
                ));
            }
            Some(n.clone())
        }
        (None, Kind::Sms) => return Err(bad(at, "sender.sms_number", "required for sms")),
        (Some(_), _) => return Err(bad(at, "sender.sms_number", "applies to sms only")),
        (None, _) => None,
    };
    let email_from = match (&s.email_from, kind) {
        (Some(a), Kind::Email) => {
            let ok = a.len() <= 254
                && a.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty()
                        && d.contains('.')
                        && !a
                            .chars()
                            .any(|c| c.is_whitespace() || c.is_control() || c == '<')
                });
            if !ok {
                return Err(bad(at, "sender.email_from", "expected an email address"));
            }
            Some(a.clone())
        }
        (None, Kind::Email) => return Err(bad(at, "sender.email_from", "required for email")),
        (Some(_), _) => return Err(bad(at, "sender.email_from", "applies to email only")),
        (None, _) => None,
    };
    let dkim = match (s.dkim_selector, s.dkim_domain, s.dkim_key_file) {
        (None, None, None) => None,
        (Some(sel), Some(dom), Some(file)) if kind == Kind::Email => Some(Dkim {
            selector: text(at, "sender.dkim_selector", &sel)?,
            domain: host(at, "sender.dkim_domain", &dom)?,
            key_file: secret_path(at, "sender.dkim_key_file", Some(&file))?.unwrap_or_default(),
        }),
        _ if kind != Kind::Email => {
            return Err(bad(
                at,
                "sender.dkim_selector",
                "DKIM applies to email only",
            ));
        }
        _ => {
            return Err(bad(
                at,
                "sender.dkim_selector",
                "DKIM needs dkim_selector, dkim_domain and dkim_key_file together",
            ));
        }
    };
    Ok(Sender {
        sms_number,
        email_from,
        dkim,
    })
}

fn baa_of(at: &str, b: RawBaa) -> Result<Baa, ConfigError> {
    match b.status {
        BaaStatus::Signed => {
            let Some(on) = b.signed_on else {
                return Err(bad(at, "baa.signed_on", "required when the BAA is signed"));
            };
            let signed_on = date(at, "baa.signed_on", &on)?;
            let Some(doc) = b.document else {
                return Err(bad(
                    at,
                    "baa.document",
                    "required when the BAA is signed (a contract number or file name)",
                ));
            };
            Ok(Baa {
                status: BaaStatus::Signed,
                signed_on: Some(signed_on),
                document: Some(text(at, "baa.document", &doc)?),
            })
        }
        BaaStatus::NotRequired => {
            if b.signed_on.is_some() {
                return Err(bad(at, "baa.signed_on", "only with status = \"signed\""));
            }
            if b.document.is_some() {
                return Err(bad(at, "baa.document", "only with status = \"signed\""));
            }
            Ok(Baa {
                status: BaaStatus::NotRequired,
                signed_on: None,
                document: None,
            })
        }
    }
}

fn location_of(at: &str, l: RawLocation) -> Result<Location, ConfigError> {
    if l.country.len() != 2 || !l.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad(
            at,
            "location.country",
            "expected an ISO 3166-1 alpha-2 code (e.g. US)",
        ));
    }
    Ok(Location {
        country: l.country,
        region: l
            .region
            .as_deref()
            .map(|r| text(at, "location.region", r))
            .transpose()?,
    })
}
