//! The audit log forwarded to the operator's own log sink (req AUD-08), over OTLP/HTTP: the
//! OpenTelemetry Protocol's logs signal in its JSON encoding, one `POST` of an
//! `ExportLogsServiceRequest` per batch to the collector's logs endpoint
//! (`https://collector.clinic.internal:4318/v1/logs`).
//!
//! # Guarantees
//! - The sink is the operator's own: a loopback address, `localhost`, or a host the operator
//!   lists — the provider gate's self-hosted rule ([`crate::gate_with_hosts`]) — else
//!   [`SinkError::NotSelfHosted`] before anything is sent. The audit log names patients by id,
//!   so a vendor-hosted sink would be a PHI-touching subprocessor; this path offers none.
//!   `http` only on loopback; with a CA file, the sink's certificate is verified against that
//!   CA alone.
//! - A batch counts as delivered only on a 2xx reply that rejects no record
//!   (`partialSuccess.rejectedLogRecords`); anything else is an error and the caller keeps the
//!   batch to send again. Delivery is at least once: every record carries its practice, log
//!   position and event id for the receiver to drop a repeat.
//! - Records carry only typed values ([`AuditRecord`]): ids, the action, outcome and object
//!   names (checked against the audit log's own patterns), the chain hash, and `details`, which
//!   the audit log has already checked to hold ids, counts, flags and names only
//!   (`audit::event::validate`). No free text reaches the sink.
//! - Redirects are never followed; each call gives up after its timeout; a reply is read up to
//!   [`MAX_REPLY_BYTES`].
//!
//! # Example
//! ```no_run
//! # async fn f(records: Vec<egress::audit_sink::AuditRecord>) -> Result<(), egress::audit_sink::SinkError> {
//! use egress::audit_sink::{AuditSink, SinkConfig};
//! let sink = AuditSink::new(&SinkConfig {
//!     endpoint: "http://127.0.0.1:4318/v1/logs".into(),
//!     ..SinkConfig::default()
//! })?;
//! sink.export(&records, chrono::Utc::now()).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::gate::{Hosting, ProviderPosture};

/// Largest reply read from the sink, bytes.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Most records sent in one request.
pub const MAX_BATCH: usize = 1_000;
/// Longest `details` forwarded, bytes (the audit log's own limit, migration 0001).
const MAX_DETAILS_BYTES: usize = 2_048;
/// OTLP `SeverityNumber` INFO (opentelemetry-proto `logs/v1/logs.proto`).
const SEVERITY_INFO: u8 = 9;

/// The installation's audit sink settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkConfig {
    /// The collector's OTLP/HTTP logs endpoint, path included (`…/v1/logs`).
    pub endpoint: String,
    /// Hosts the operator runs besides loopback (as for self-hosted AI providers).
    pub operator_hosts: Vec<String>,
    /// A PEM file of the CA that signed the sink's certificate (then the only one trusted).
    pub ca_pem: Option<Vec<u8>>,
    /// Each call's timeout (10 s when zero).
    pub timeout: Duration,
}

/// Why the sink was not built or a batch was not delivered. Never carries record content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The endpoint is not the operator's own, not an http(s) URL, or `http` off loopback.
    #[error(
        "the audit sink must be the operator's own host (loopback, localhost or a listed host; http only on loopback)"
    )]
    NotSelfHosted,
    /// The CA file is not a PEM certificate.
    #[error("the audit sink's CA file holds no usable PEM certificate")]
    BadCa,
    /// A record is not the audit log's shape (an action, outcome or object name off its
    /// pattern, details too large): nothing of the batch was sent.
    #[error("an audit record is not of the audit log's shape ({0})")]
    BadRecord(&'static str),
    /// No connection, or no reply in time.
    #[error("the audit sink could not be reached")]
    Unreachable,
    /// A reply the sink asks to retry (429, 502, 503, 504).
    #[error("the audit sink answered HTTP {0} (retryable)")]
    Retry(u16),
    /// Any other non-2xx reply.
    #[error("the audit sink answered HTTP {0}")]
    Status(u16),
    /// A 2xx reply rejecting records.
    #[error("the audit sink rejected {0} record(s)")]
    Rejected(u64),
    /// A reply too large or not JSON.
    #[error("the audit sink's reply was malformed")]
    Malformed,
}

/// One sequenced audit event, as forwarded.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// The practice whose log holds it.
    pub practice: uuid::Uuid,
    /// Its position in that log.
    pub seq: u64,
    /// The event id.
    pub event_id: uuid::Uuid,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Who acted.
    pub actor: Option<uuid::Uuid>,
    /// The patient concerned.
    pub patient: Option<uuid::Uuid>,
    /// The action (`patient.read`).
    pub action: String,
    /// `success` or `denied`.
    pub outcome: String,
    /// The object's kind.
    pub object_type: Option<String>,
    /// The object's id.
    pub object_id: Option<uuid::Uuid>,
    /// The request that caused it.
    pub request: Option<uuid::Uuid>,
    /// Ids, counts, flags and names (checked by the audit log).
    pub details: Option<Value>,
    /// The hash chain's value after this event.
    pub chain_hash: [u8; 32],
}

/// The sink.
#[derive(Debug)]
pub struct AuditSink {
    endpoint: url::Url,
    client: reqwest::Client,
}

fn name_ok(s: &str, dotted: bool) -> bool {
    let mut parts = s.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    };
    if dotted {
        ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
    } else {
        ok(parts.next()) && parts.next().is_none()
    }
}

fn text(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn nanos(at: DateTime<Utc>) -> String {
    // i128 nanoseconds: no overflow for any time the audit log accepts.
    (i128::from(at.timestamp()) * 1_000_000_000 + i128::from(at.timestamp_subsec_nanos()))
        .to_string()
}

impl AuditRecord {
    /// The OTLP `LogRecord` of this event.
    fn log_record(&self, observed: DateTime<Utc>) -> Result<Value, SinkError> {
        if !name_ok(&self.action, true) {
            return Err(SinkError::BadRecord("action"));
        }
        if !matches!(self.outcome.as_str(), "success" | "denied") {
            return Err(SinkError::BadRecord("outcome"));
        }
        if self
            .object_type
            .as_deref()
            .is_some_and(|t| !name_ok(t, false))
        {
            return Err(SinkError::BadRecord("object type"));
        }
        let mut attributes = vec![
            text("chartroom.practice_id", &self.practice.to_string()),
            json!({ "key": "chartroom.audit.seq", "value": { "intValue": self.seq.to_string() } }),
            text("chartroom.audit.event_id", &self.event_id.to_string()),
            text("chartroom.audit.outcome", &self.outcome),
            text("chartroom.audit.chain_hash", &hex(&self.chain_hash)),
        ];
        let ids = [
            ("chartroom.audit.actor_id", self.actor),
            ("chartroom.audit.patient_id", self.patient),
            ("chartroom.audit.object_id", self.object_id),
            ("chartroom.audit.request_id", self.request),
        ];
        for (key, id) in ids {
            if let Some(id) = id {
                attributes.push(text(key, &id.to_string()));
            }
        }
        if let Some(t) = &self.object_type {
            attributes.push(text("chartroom.audit.object_type", t));
        }
        if let Some(d) = &self.details {
            if !d.is_object() {
                return Err(SinkError::BadRecord("details"));
            }
            let d = d.to_string();
            if d.len() > MAX_DETAILS_BYTES {
                return Err(SinkError::BadRecord("details"));
            }
            attributes.push(text("chartroom.audit.details", &d));
        }
        Ok(json!({
            "timeUnixNano": nanos(self.occurred_at),
            "observedTimeUnixNano": nanos(observed),
            "severityNumber": SEVERITY_INFO,
            "severityText": "INFO",
            "body": { "stringValue": self.action },
            "attributes": attributes,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The `ExportLogsServiceRequest` body for `records` (OTLP JSON encoding), observed at
/// `observed`.
///
/// # Errors
/// [`SinkError::BadRecord`] when a record is not of the audit log's shape.
pub fn request_body(
    records: &[AuditRecord],
    observed: DateTime<Utc>,
) -> Result<Vec<u8>, SinkError> {
    let logs = records
        .iter()
        .map(|r| r.log_record(observed))
        .collect::<Result<Vec<_>, _>>()?;
    let body = json!({
        "resourceLogs": [{
            "resource": { "attributes": [ text("service.name", "chartroom") ] },
            "scopeLogs": [{
                "scope": { "name": "chartroom.audit" },
                "logRecords": logs,
            }],
        }],
    });
    serde_json::to_vec(&body).map_err(|_| SinkError::BadRecord("encoding"))
}

impl AuditSink {
    /// A sink for `config`.
    ///
    /// # Errors
    /// [`SinkError::NotSelfHosted`], [`SinkError::BadCa`].
    pub fn new(config: &SinkConfig) -> Result<Self, SinkError> {
        let posture = ProviderPosture {
            provider_id: None,
            label: "audit sink".into(),
            base_url: config.endpoint.clone(),
            model: String::new(),
            hosting: Hosting::SelfHosted,
            baa: None,
            training_disabled: true,
            enabled: true,
        };
        let cleared = crate::gate_with_hosts(&posture, &config.operator_hosts)
            .map_err(|_| SinkError::NotSelfHosted)?;
        let endpoint = cleared.base_url().clone();
        let loopback = match endpoint.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost")
                    || d.to_ascii_lowercase().ends_with(".localhost")
            }
            None => false,
        };
        let scheme_ok = endpoint.scheme() == "https" || (endpoint.scheme() == "http" && loopback);
        if !scheme_ok || endpoint.query().is_some() || endpoint.fragment().is_some() {
            return Err(SinkError::NotSelfHosted);
        }
        let timeout = if config.timeout.is_zero() {
            Duration::from_secs(10)
        } else {
            config.timeout
        };
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)));
        if let Some(pem) = &config.ca_pem {
            let ca = reqwest::Certificate::from_pem(pem).map_err(|_| SinkError::BadCa)?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(ca);
        }
        let client = builder.build().map_err(|_| SinkError::Unreachable)?;
        Ok(Self { endpoint, client })
    }

    /// Sends `records` (at most [`MAX_BATCH`]; an empty slice sends nothing) as one export
    /// request, observed at `now`. `Ok` means the sink took every record.
    ///
    /// # Errors
    /// [`SinkError`]: the batch is then not delivered (send it again).
    pub async fn export(
        &self,
        records: &[AuditRecord],
        now: DateTime<Utc>,
    ) -> Result<(), SinkError> {
        if records.is_empty() {
            return Ok(());
        }
        if records.len() > MAX_BATCH {
            return Err(SinkError::BadRecord("batch too large"));
        }
        let body = request_body(records, now)?;
        let mut reply = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|_| SinkError::Unreachable)?;
        let status = reply.status().as_u16();
        if !reply.status().is_success() {
            // OTLP/HTTP §Failures: 429, 502, 503 and 504 are the retryable ones.
            return Err(if matches!(status, 429 | 502 | 503 | 504) {
                SinkError::Retry(status)
            } else {
                SinkError::Status(status)
            });
        }
        let mut read = Vec::new();
        while let Some(chunk) = reply.chunk().await.map_err(|_| SinkError::Unreachable)? {
            if read.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(SinkError::Malformed);
            }
            read.extend_from_slice(&chunk);
        }
        rejected(&read)
    }
}

/// Reads an `ExportLogsServiceResponse`: an empty body or `{}` takes everything; a
/// `partialSuccess` with rejected records (a number, or a string as the JSON encoding writes
/// 64-bit integers) is [`SinkError::Rejected`].
fn rejected(body: &[u8]) -> Result<(), SinkError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| SinkError::Malformed)?;
    let n = match v.pointer("/partialSuccess/rejectedLogRecords") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_u64().ok_or(SinkError::Malformed)?,
        Some(Value::String(s)) => s.parse().map_err(|_| SinkError::Malformed)?,
        Some(_) => return Err(SinkError::Malformed),
    };
    if n == 0 {
        Ok(())
    } else {
        Err(SinkError::Rejected(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            practice: uuid::Uuid::from_u128(1),
            seq: 7,
            event_id: uuid::Uuid::from_u128(2),
            occurred_at: DateTime::from_timestamp(1_765_000_000, 123_456_000).unwrap(),
            actor: Some(uuid::Uuid::from_u128(3)),
            patient: Some(uuid::Uuid::from_u128(4)),
            action: "patient.read".into(),
            outcome: "success".into(),
            object_type: Some("patient".into()),
            object_id: Some(uuid::Uuid::from_u128(4)),
            request: None,
            details: Some(json!({ "fields": 5 })),
            chain_hash: [0xab; 32],
        }
    }

    #[test]
    fn a_record_is_an_otlp_log_record_with_its_ids() {
        let body = request_body(
            &[record()],
            DateTime::from_timestamp(1_765_000_001, 0).unwrap(),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let r = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(r["timeUnixNano"], "1765000000123456000");
        assert_eq!(r["observedTimeUnixNano"], "1765000001000000000");
        assert_eq!(r["body"]["stringValue"], "patient.read");
        assert_eq!(r["severityNumber"], 9);
        let attr = |k: &str| {
            r["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == k)
                .map(|a| a["value"].clone())
        };
        assert_eq!(attr("chartroom.audit.seq").unwrap()["intValue"], "7");
        assert_eq!(
            attr("chartroom.audit.event_id").unwrap()["stringValue"],
            uuid::Uuid::from_u128(2).to_string()
        );
        assert_eq!(
            attr("chartroom.audit.details").unwrap()["stringValue"],
            "{\"fields\":5}"
        );
        assert_eq!(
            attr("chartroom.audit.chain_hash").unwrap()["stringValue"],
            "ab".repeat(32)
        );
        assert!(attr("chartroom.audit.request_id").is_none());
        assert_eq!(
            v["resourceLogs"][0]["scopeLogs"][0]["scope"]["name"],
            "chartroom.audit"
        );
    }

    #[test]
    fn records_off_the_audit_logs_shape_are_refused() {
        for (change, what) in [
            (
                Box::new(|r: &mut AuditRecord| r.action = "Patient Read".into())
                    as Box<dyn Fn(&mut AuditRecord)>,
                "action",
            ),
            (
                Box::new(|r: &mut AuditRecord| r.action = "patient".into()),
                "action",
            ),
            (
                Box::new(|r: &mut AuditRecord| r.outcome = "maybe".into()),
                "outcome",
            ),
            (
                Box::new(|r: &mut AuditRecord| r.object_type = Some("a.b".into())),
                "object type",
            ),
            (
                Box::new(|r: &mut AuditRecord| r.details = Some(json!(["x"]))),
                "details",
            ),
            (
                Box::new(|r: &mut AuditRecord| r.details = Some(json!({ "k": "x".repeat(3000) }))),
                "details",
            ),
        ] {
            let mut r = record();
            change(&mut r);
            assert_eq!(
                request_body(&[r], DateTime::from_timestamp(1_765_000_001, 0).unwrap()),
                Err(SinkError::BadRecord(what))
            );
        }
    }

    #[test]
    fn replies_rejecting_records_are_errors() {
        assert_eq!(rejected(b""), Ok(()));
        assert_eq!(rejected(b"{}"), Ok(()));
        assert_eq!(rejected(br#"{"partialSuccess":{}}"#), Ok(()));
        assert_eq!(
            rejected(br#"{"partialSuccess":{"rejectedLogRecords":"0"}}"#),
            Ok(())
        );
        assert_eq!(
            rejected(br#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"x"}}"#),
            Err(SinkError::Rejected(3))
        );
        assert_eq!(
            rejected(br#"{"partialSuccess":{"rejectedLogRecords":2}}"#),
            Err(SinkError::Rejected(2))
        );
        assert_eq!(rejected(b"<html>"), Err(SinkError::Malformed));
    }

    #[test]
    fn only_the_operators_own_hosts_are_sinks() {
        let sink = |endpoint: &str, hosts: &[&str]| {
            AuditSink::new(&SinkConfig {
                endpoint: endpoint.into(),
                operator_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                ..SinkConfig::default()
            })
            .map(|_| ())
        };
        assert_eq!(sink("http://127.0.0.1:4318/v1/logs", &[]), Ok(()));
        assert_eq!(
            sink(
                "https://logs.clinic.internal/v1/logs",
                &["logs.clinic.internal"]
            ),
            Ok(())
        );
        for refused in [
            "https://logs.vendor.example/v1/logs",
            "http://logs.clinic.internal/v1/logs",
            "ftp://127.0.0.1/v1/logs",
            "http://user:pw@127.0.0.1:4318/v1/logs",
            "http://127.0.0.1:4318/v1/logs?x=1",
            "not a url",
        ] {
            assert_eq!(
                sink(refused, &["logs.clinic.internal"]),
                Err(SinkError::NotSelfHosted),
                "{refused}"
            );
        }
    }
}
