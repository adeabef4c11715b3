//! Geocoding of the practice's own addresses through a self-hosted Nominatim-compatible
//! endpoint. Off by default.
//!
//! # Guarantees
//! - Nothing is built unless the operator switched geocoding on ([`GeocodeConfig::enabled`],
//!   `false` by default: [`GeocodeError::Disabled`]).
//! - The endpoint must be self-hosted: a loopback address, `localhost`, or a host the
//!   operator listed as its own — the provider gate's rule ([`crate::gate_with_hosts`]) —
//!   else [`GeocodeError::NotSelfHosted`]. Redirects are never followed.
//! - Every query passes the [`AddressGate`] first: a client's address, a neighbour's (same
//!   street, house number within [`outbound::NEAR_HOUSE_NUMBERS`]), a client's street, or the
//!   same street and postcode is refused ([`GeocodeError::ClientAddress`]) with no request
//!   made. Queries are structured (`street`, `city`, `postalcode`, `country`), each field
//!   length-capped and free of control characters.
//! - Replies are read up to [`MAX_REPLY_BYTES`]; at most [`MAX_RESULTS`] results with
//!   in-range coordinates are returned, anything else is [`GeocodeError::Malformed`].

use std::time::Duration;

use outbound::{AddressGate, AddressRefusal};

use crate::gate::{Hosting, ProviderPosture};

/// Largest reply read, bytes.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Most results returned (and asked for).
pub const MAX_RESULTS: usize = 5;
/// Longest query field, characters.
const MAX_FIELD_CHARS: usize = 200;

/// The installation's geocoding settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeocodeConfig {
    /// Whether geocoding is on (default off).
    pub enabled: bool,
    /// The endpoint's base URL (`http://127.0.0.1:8080`, `https://nominatim.clinic.internal`).
    pub base_url: String,
    /// Hosts the operator runs (as for self-hosted AI providers).
    pub operator_hosts: Vec<String>,
    /// The whole call's timeout (default 10 s when zero).
    pub timeout: Duration,
}

/// A practice address to geocode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PracticeAddress {
    /// House number and street (`12 Harbour Road`).
    pub street: String,
    /// City or town.
    pub city: String,
    /// Postcode, when known.
    pub postcode: Option<String>,
    /// Country name or ISO code, when known.
    pub country: Option<String>,
}

/// A point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
}

/// Why a geocoding call did not happen or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GeocodeError {
    /// Geocoding is switched off.
    #[error("geocoding is switched off")]
    Disabled,
    /// The endpoint is not self-hosted (or not a usable http(s) URL).
    #[error("the geocoding endpoint is not self-hosted")]
    NotSelfHosted,
    /// The address is, or is near, a client's address: nothing was sent.
    #[error("refused: {0}")]
    ClientAddress(AddressRefusal),
    /// A field is empty, too long or holds control characters.
    #[error("the address fields are not usable")]
    BadQuery,
    /// No connection.
    #[error("the geocoding endpoint could not be reached")]
    Unreachable,
    /// A non-2xx reply.
    #[error("the geocoding endpoint answered HTTP {0}")]
    Status(u16),
    /// The reply is too large or not the documented shape.
    #[error("the geocoding reply was malformed")]
    Malformed,
}

/// The geocoder.
#[derive(Debug)]
pub struct Geocoder {
    base: url::Url,
    client: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct Place {
    lat: String,
    lon: String,
}

fn field_ok(s: &str, required: bool) -> bool {
    let n = s.chars().count();
    (!required || !s.trim().is_empty()) && n <= MAX_FIELD_CHARS && !s.chars().any(char::is_control)
}

impl Geocoder {
    /// A geocoder for `config`.
    ///
    /// # Errors
    /// [`GeocodeError::Disabled`], [`GeocodeError::NotSelfHosted`].
    pub fn new(config: &GeocodeConfig) -> Result<Self, GeocodeError> {
        if !config.enabled {
            return Err(GeocodeError::Disabled);
        }
        let posture = ProviderPosture {
            provider_id: None,
            label: "geocoding".into(),
            base_url: config.base_url.clone(),
            model: String::new(),
            hosting: Hosting::SelfHosted,
            baa: None,
            training_disabled: true,
            enabled: true,
        };
        let cleared = crate::gate_with_hosts(&posture, &config.operator_hosts)
            .map_err(|_| GeocodeError::NotSelfHosted)?;
        let base = cleared.base_url().clone();
        if !matches!(base.scheme(), "http" | "https") || base.query().is_some() {
            return Err(GeocodeError::NotSelfHosted);
        }
        let timeout = if config.timeout.is_zero() {
            Duration::from_secs(10)
        } else {
            config.timeout
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|_| GeocodeError::Unreachable)?;
        Ok(Self { base, client })
    }

    /// The request URL for `address` (after the gate).
    ///
    /// # Errors
    /// [`GeocodeError::BadQuery`], [`GeocodeError::ClientAddress`].
    pub fn query_url(
        &self,
        gate: &AddressGate,
        address: &PracticeAddress,
    ) -> Result<url::Url, GeocodeError> {
        let optional_ok = |o: &Option<String>| o.as_deref().is_none_or(|s| field_ok(s, false));
        if !field_ok(&address.street, true)
            || !field_ok(&address.city, true)
            || !optional_ok(&address.postcode)
            || !optional_ok(&address.country)
        {
            return Err(GeocodeError::BadQuery);
        }
        gate.check(&address.street, address.postcode.as_deref())
            .map_err(|r| match r {
                AddressRefusal::Unreadable => GeocodeError::BadQuery,
                other => GeocodeError::ClientAddress(other),
            })?;
        let mut url = self.base.clone();
        let path = format!("{}/search", url.path().trim_end_matches('/'));
        url.set_path(&path);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("format", "jsonv2")
                .append_pair("limit", &MAX_RESULTS.to_string())
                .append_pair("street", address.street.trim())
                .append_pair("city", address.city.trim());
            if let Some(p) = address.postcode.as_deref().filter(|p| !p.trim().is_empty()) {
                q.append_pair("postalcode", p.trim());
            }
            if let Some(c) = address.country.as_deref().filter(|c| !c.trim().is_empty()) {
                q.append_pair("country", c.trim());
            }
        }
        Ok(url)
    }

    /// Geocodes a practice address.
    ///
    /// # Errors
    /// [`GeocodeError`]; a gate refusal sends nothing.
    pub async fn geocode(
        &self,
        gate: &AddressGate,
        address: &PracticeAddress,
    ) -> Result<Vec<GeoPoint>, GeocodeError> {
        let url = self.query_url(gate, address)?;
        let mut response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|_| GeocodeError::Unreachable)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(GeocodeError::Status(status));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
        {
            return Err(GeocodeError::Malformed);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| GeocodeError::Unreachable)?
        {
            if body.len().saturating_add(chunk.len()) > MAX_REPLY_BYTES {
                return Err(GeocodeError::Malformed);
            }
            body.extend_from_slice(&chunk);
        }
        parse(&body)
    }
}

/// Reads a `jsonv2` search reply.
fn parse(body: &[u8]) -> Result<Vec<GeoPoint>, GeocodeError> {
    let places: Vec<Place> = serde_json::from_slice(body).map_err(|_| GeocodeError::Malformed)?;
    places
        .into_iter()
        .take(MAX_RESULTS)
        .map(|p| {
            let lat: f64 = p.lat.trim().parse().map_err(|_| GeocodeError::Malformed)?;
            let lon: f64 = p.lon.trim().parse().map_err(|_| GeocodeError::Malformed)?;
            if lat.is_finite()
                && lon.is_finite()
                && (-90.0..=90.0).contains(&lat)
                && (-180.0..=180.0).contains(&lon)
            {
                Ok(GeoPoint { lat, lon })
            } else {
                Err(GeocodeError::Malformed)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_checked() {
        let ok = parse(br#"[{"place_id":1,"lat":"51.5","lon":"-0.12","display_name":"x"}]"#);
        assert_eq!(
            ok,
            Ok(vec![GeoPoint {
                lat: 51.5,
                lon: -0.12
            }])
        );
        assert_eq!(
            parse(br#"[{"lat":"91","lon":"0"}]"#),
            Err(GeocodeError::Malformed)
        );
        assert_eq!(parse(br#"{"lat":"1"}"#), Err(GeocodeError::Malformed));
        assert_eq!(parse(b"[]"), Ok(vec![]));
    }

    #[test]
    fn off_by_default_and_self_hosted_only() {
        assert_eq!(
            Geocoder::new(&GeocodeConfig::default()).map(|_| ()),
            Err(GeocodeError::Disabled)
        );
        let mut c = GeocodeConfig {
            enabled: true,
            base_url: "https://nominatim.openstreetmap.org".into(),
            ..GeocodeConfig::default()
        };
        assert_eq!(
            Geocoder::new(&c).map(|_| ()),
            Err(GeocodeError::NotSelfHosted)
        );
        c.operator_hosts = vec!["geo.clinic.internal".into()];
        c.base_url = "http://geo.clinic.internal:8080".into();
        assert!(Geocoder::new(&c).is_ok());
        c.base_url = "http://127.0.0.1:7070".into();
        assert!(Geocoder::new(&c).is_ok());
    }
}
