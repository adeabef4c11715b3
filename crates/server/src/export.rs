//! The export of one patient's designated record set (HIPAA 164.524(c)(2); req PR-02): a FHIR
//! R4 `Bundle` (type `collection`) and a human-readable HTML rendering of the same records.
//!
//! # What it holds
//! | Record | FHIR R4 resource |
//! |---|---|
//! | demographics and contact details | `Patient` |
//! | appointments | `Appointment` |
//! | visits | `Encounter` |
//! | signed notes: the signed version, each amendment, each addendum | `DocumentReference` each, and a `Provenance` per signature |
//! | perio exams | `Observation` per probing depth and attachment loss ([`crate::fhir::perio`]) |
//! | accepted intake forms | `QuestionnaireResponse` |
//! | recording consents | `Consent` |
//! | amendment requests (164.526): the request, a denial, the patient's statement of disagreement, the practice's rebuttal | `DocumentReference` each, `relatesTo` (`appends`) the note version it names and, for the later documents, the request |
//!
//! Draft notes are not part of the record set (nothing was decided on them) and are left out.
//!
//! # Guarantees
//! - Every record is read by the patient's id through the store's own functions, under the
//!   caller's tenant transaction and row-level security: nothing of another patient or
//!   practice can be read into it. The export is refused (404) unless the actor may see the
//!   patient's clinical records (`app.clinical_visible`), so it is never silently partial.
//! - A record set larger than one export holds is refused (409 `EXPORT-0001`), never cut.
//! - The read is audited once, `patient.export`, with the format and counts only; opening an
//!   intake form also appends its `intake.read`.

use std::fmt::Write as _;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::notes::{NoteContent, NoteStatus, Signature};
use domain::{AuditAction, AuditObject, PatientId, PracticeId};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use store::TenantTx;
use store::amendments::AmendmentRequest;
use store::appointments::Appointment;
use store::capture::Consent;
use store::intake::Review;
use store::notes::{Note, Visit};
use store::patients::Patient;
use store::perio::Exam;

use crate::AppError;

/// Most appointments one export holds.
pub const MAX_APPOINTMENTS: usize = 1000;
/// Most notes, visits or perio exams one export holds (the store's list limits).
pub const MAX_PER_KIND: usize = 100;

/// The two renderings of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A FHIR R4 `Bundle` (JSON).
    Fhir,
    /// The HTML rendering.
    Html,
}

impl Format {
    /// The stable name (audit details, the query parameter).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::Fhir => "fhir_json",
            Format::Html => "html",
        }
    }
}

/// One patient's designated record set, read and opened.
#[derive(Debug, Clone)]
pub struct RecordSet {
    /// The practice.
    pub practice: PracticeId,
    /// The patient.
    pub patient: Patient,
    /// Appointments, oldest first.
    pub appointments: Vec<Appointment>,
    /// Visits, oldest first.
    pub visits: Vec<Visit>,
    /// Signed notes, oldest first.
    pub notes: Vec<Note>,
    /// Perio exams, oldest first.
    pub exams: Vec<Exam>,
    /// Accepted intake forms, oldest first.
    pub intakes: Vec<Review>,
    /// Recording consents, oldest first.
    pub consents: Vec<Consent>,
    /// Amendment requests with their denials, statements of disagreement and rebuttals,
    /// oldest first (164.526(d)(4)–(5): they go with every later copy of the record).
    pub amendments: Vec<AmendmentRequest>,
}

impl RecordSet {
    /// How many amendment documents (requests, denials, statements of disagreement,
    /// rebuttals) the set holds.
    #[must_use]
    pub fn amendment_documents(&self) -> usize {
        self.amendments
            .iter()
            .map(|r| amendment_parts(r).len())
            .sum()
    }
}

fn too_large(what: &str) -> AppError {
    AppError::Conflict(format!(
        "EXPORT-0001: the patient has more {what} than one export holds; ask the operator to export in parts"
    ))
}

/// Reads `patient`'s record set in the transaction's practice (each store read is the one
/// the API's own routes use), without auditing: [`export`] audits. `404` when the patient
/// does not exist or its clinical records are not visible to the actor.
async fn gather(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    patient: PatientId,
) -> Result<RecordSet, AppError> {
    if !store::perio::patient_visible(tx, patient).await? {
        return Err(AppError::NotFound("patient"));
    }
    let p = store::patients::get(tx, keyring, patient)
        .await?
        .ok_or(AppError::NotFound("patient"))?;
    // One more than an export holds, to tell "exactly full" from "too many".
    let appointments = store::appointments::list_for_patient(tx, patient, 1001).await?;
    if appointments.len() > MAX_APPOINTMENTS {
        return Err(too_large("appointments"));
    }
    let mut visits = store::notes::list_visits(tx, patient).await?;
    if visits.len() >= MAX_PER_KIND {
        return Err(too_large("visits"));
    }
    visits.reverse();
    let mut notes = store::notes::list_for_patient(tx, keyring, patient, 100).await?;
    if notes.len() >= MAX_PER_KIND {
        return Err(too_large("notes"));
    }
    notes.retain(|n| n.status == NoteStatus::Signed);
    notes.reverse();
    let infos = store::perio::list_for_patient(tx, patient).await?;
    if infos.len() >= MAX_PER_KIND {
        return Err(too_large("perio exams"));
    }
    let mut exams = Vec::with_capacity(infos.len());
    for i in infos.iter().rev() {
        if let Some(e) = store::perio::get(tx, keyring, patient, i.exam_id).await? {
            exams.push(e);
        }
    }
    let mut intakes = Vec::new();
    for r in store::intake::on_chart(tx, patient).await?.iter().rev() {
        if let Some(review) = store::intake::open(tx, keyring, r.request_id).await? {
            intakes.push(review);
        }
    }
    let mut consents = Vec::new();
    for v in &visits {
        let mut c = store::capture::consents(tx, v.visit_id).await?;
        c.reverse();
        consents.extend(c);
    }
    let amendments = store::amendments::for_patient_opened(tx, keyring, patient).await?;
    if amendments.len() > MAX_PER_KIND {
        return Err(too_large("amendment requests"));
    }
    Ok(RecordSet {
        practice: tx.practice(),
        patient: p,
        appointments,
        visits,
        notes,
        exams,
        intakes,
        consents,
        amendments,
    })
}

/// Reads and renders `patient`'s record set in `format` and audits `patient.export` (format
/// and counts): the one path of the export route and of fulfilling an access request. The
/// caller commits.
pub async fn export(
    tx: &mut TenantTx,
    keyring: &store::crypto::Keyring,
    patient: PatientId,
    format: Format,
) -> Result<(RecordSet, String), AppError> {
    let set = gather(tx, keyring, patient).await?;
    let now = tx.now();
    let body = match format {
        Format::Fhir => bundle(&set, now).to_string(),
        Format::Html => html(&set, now),
    };
    tx.audit_details(
        AuditAction::PatientExport,
        Some(patient),
        Some(AuditObject::patient(patient)),
        Some(json!({
            "format": format.as_str(),
            "appointments": set.appointments.len(),
            "visits": set.visits.len(),
            "notes": set.notes.len(),
            "perio_exams": set.exams.len(),
            "intake_forms": set.intakes.len(),
            "consents": set.consents.len(),
            "amendment_requests": set.amendments.len(),
            "amendment_documents": set.amendment_documents(),
        })),
    )
    .await?;
    Ok((set, body))
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stable resource id per (kind, parts): the same record exports under the same id. A
/// `UUIDv8` from SHA-256 (RFC 9562 §5.8).
fn derived_id(kind: &str, parts: &[&[u8]]) -> uuid::Uuid {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut bytes = [0_u8; 16];
    for (b, d) in bytes.iter_mut().zip(digest.iter()) {
        *b = *d;
    }
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

fn entry(id: uuid::Uuid, resource: Value) -> Value {
    let mut e = serde_json::Map::new();
    e.insert("fullUrl".into(), Value::String(format!("urn:uuid:{id}")));
    e.insert("resource".into(), resource);
    Value::Object(e)
}

fn reference(id: uuid::Uuid, kind: &str) -> Value {
    json!({"reference": format!("urn:uuid:{id}"), "type": kind})
}

fn practitioner(id: uuid::Uuid, display: Option<&str>) -> Value {
    let mut r = json!({
        "type": "Practitioner",
        "identifier": {"system": "urn:chartroom:user", "value": id.to_string()}
    });
    if let (Some(d), Some(o)) = (display, r.as_object_mut()) {
        o.insert("display".into(), Value::String(d.to_owned()));
    }
    r
}

fn signer_display(s: &Signature) -> String {
    match &s.credential {
        Some(c) => format!("{}, {c}", s.printed_name),
        None => s.printed_name.clone(),
    }
}

/// One signed document of a note: the signed version, an amendment or an addendum.
struct SignedDoc<'a> {
    version: i32,
    kind: &'static str,
    text: String,
    reason: Option<&'a str>,
    signature: &'a Signature,
}

fn signed_docs(n: &Note) -> Vec<SignedDoc<'_>> {
    let mut out = Vec::new();
    if let (Some(sig), Some(v)) = (&n.signature, n.signed_version) {
        let original: &NoteContent = n.signed_content.as_ref().unwrap_or(&n.content);
        out.push(SignedDoc {
            version: v,
            kind: "signed",
            text: original.render_text(),
            reason: None,
            signature: sig,
        });
    }
    for a in &n.amendments {
        out.push(SignedDoc {
            version: a.version,
            kind: "amendment",
            text: a.content.render_text(),
            reason: Some(&a.reason),
            signature: &a.signature,
        });
    }
    for a in &n.addenda {
        out.push(SignedDoc {
            version: a.version,
            kind: "addendum",
            text: a.text.clone(),
            reason: Some(&a.reason),
            signature: &a.signature,
        });
    }
    out.sort_by_key(|d| d.version);
    out
}

fn doc_id(n: &Note, version: i32) -> uuid::Uuid {
    derived_id(
        "note-version",
        &[n.note_id.as_uuid().as_bytes(), &version.to_be_bytes()],
    )
}

fn appointment_status(s: &str) -> &'static str {
    match s {
        "arrived" => "arrived",
        "completed" => "fulfilled",
        "cancelled" => "cancelled",
        "no_show" => "noshow",
        _ => "booked",
    }
}

/// The FHIR R4 `Bundle` (type `collection`) of `set`, stamped `now`.
#[must_use]
#[expect(
    clippy::too_many_lines,
    reason = "one resource mapping per record kind, kept in one place"
)]
pub fn bundle(set: &RecordSet, now: DateTime<Utc>) -> Value {
    let pid = set.patient.patient_id.as_uuid();
    let patient_ref = reference(pid, "Patient");
    let mut entries = Vec::new();

    let p = &set.patient;
    let mut patient = json!({
        "resourceType": "Patient",
        "id": pid.to_string(),
        "identifier": [{"system": "urn:chartroom:patient", "value": pid.to_string()}],
        "name": [{"use": "official", "family": p.family_name, "given": [p.given_name]}],
    });
    if let Some(o) = patient.as_object_mut() {
        let mut telecom = Vec::new();
        if let Some(phone) = &p.phone {
            telecom.push(json!({"system": "phone", "value": phone}));
        }
        if let Some(email) = &p.email {
            telecom.push(json!({"system": "email", "value": email}));
        }
        if !telecom.is_empty() {
            o.insert("telecom".into(), Value::Array(telecom));
        }
        if let Some(dob) = p.date_of_birth {
            o.insert("birthDate".into(), Value::String(dob.to_string()));
        }
    }
    entries.push(entry(pid, patient));

    for a in &set.appointments {
        let id = a.appointment_id.as_uuid();
        entries.push(entry(
            id,
            json!({
                "resourceType": "Appointment",
                "id": id.to_string(),
                "identifier": [{"system": "urn:chartroom:appointment", "value": id.to_string()}],
                "status": appointment_status(&a.status),
                "start": time(a.starts_at),
                "end": time(a.ends_at),
                "created": time(a.created_at),
                "participant": [
                    {"actor": patient_ref, "status": "accepted"},
                    {"actor": practitioner(a.clinician_id.as_uuid(), None), "status": "accepted"}
                ]
            }),
        ));
    }

    for v in &set.visits {
        let id = v.visit_id.as_uuid();
        let mut enc = json!({
            "resourceType": "Encounter",
            "id": id.to_string(),
            "identifier": [{"system": "urn:chartroom:visit", "value": id.to_string()}],
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
            "subject": patient_ref,
            "participant": [{"individual": practitioner(v.clinician_id.as_uuid(), None)}],
            "period": {"start": time(v.started_at)}
        });
        if let (Some(a), Some(o)) = (v.appointment_id, enc.as_object_mut())
            && set.appointments.iter().any(|x| x.appointment_id == a)
        {
            o.insert(
                "appointment".into(),
                json!([reference(a.as_uuid(), "Appointment")]),
            );
        }
        entries.push(entry(id, enc));
    }

    for n in &set.notes {
        let docs = signed_docs(n);
        let original = docs.first().map(|d| doc_id(n, d.version));
        let last_content = docs
            .iter()
            .filter(|d| d.kind != "addendum")
            .map(|d| d.version)
            .max();
        for d in &docs {
            let id = doc_id(n, d.version);
            let superseded = d.kind != "addendum" && Some(d.version) != last_content;
            let mut doc = json!({
                "resourceType": "DocumentReference",
                "id": id.to_string(),
                "masterIdentifier": {"system": "urn:chartroom:note-version", "value": format!("{}/{}", n.note_id, d.version)},
                "identifier": [{"system": "urn:chartroom:note", "value": n.note_id.to_string()}],
                "status": if superseded { "superseded" } else { "current" },
                "docStatus": if d.kind == "amendment" { "amended" } else { "final" },
                "type": {
                    "coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}],
                    "text": format!("{} ({})", n.template.title(), d.kind)
                },
                "subject": patient_ref,
                "date": time(d.signature.signed_at),
                "author": [practitioner(d.signature.signer_id, Some(&signer_display(d.signature)))],
                "authenticator": practitioner(d.signature.signer_id, Some(&signer_display(d.signature))),
                "content": [{"attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64::engine::general_purpose::STANDARD.encode(d.text.as_bytes()),
                    "title": format!("{} — {} version {}", n.template.title(), d.kind, d.version)
                }}]
            });
            if let Some(o) = doc.as_object_mut() {
                if let Some(reason) = d.reason {
                    o.insert("description".into(), Value::String(reason.to_owned()));
                }
                let relation = match d.kind {
                    "amendment" => Some("replaces"),
                    "addendum" => Some("appends"),
                    _ => None,
                };
                if let (Some(code), Some(target)) = (relation, original) {
                    o.insert(
                        "relatesTo".into(),
                        json!([{"code": code, "target": reference(target, "DocumentReference")}]),
                    );
                }
                if let Some(v) = n.visit_id
                    && set.visits.iter().any(|x| x.visit_id == v)
                {
                    o.insert(
                        "context".into(),
                        json!({"encounter": [reference(v.as_uuid(), "Encounter")]}),
                    );
                }
            }
            entries.push(entry(id, doc));
            let prov = derived_id(
                "note-signature",
                &[n.note_id.as_uuid().as_bytes(), &d.version.to_be_bytes()],
            );
            let who = practitioner(d.signature.signer_id, Some(&signer_display(d.signature)));
            entries.push(entry(
                prov,
                json!({
                    "resourceType": "Provenance",
                    "id": prov.to_string(),
                    "target": [reference(id, "DocumentReference")],
                    "recorded": time(d.signature.signed_at),
                    "agent": [{
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author", "display": "Author"}]},
                        "who": who
                    }],
                    "signature": [{
                        "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1", "display": "Author's Signature"}],
                        "when": time(d.signature.signed_at),
                        "who": who
                    }],
                    "extension": [{"url": "urn:chartroom:signature-meaning", "valueString": d.signature.meaning}]
                }),
            ));
        }
    }

    for e in &set.exams {
        entries.extend(crate::fhir::perio::observations(e));
    }

    for r in &set.intakes {
        let id = r.request.request_id.as_uuid();
        let items: Vec<Value> = r
            .answers
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    json!({"linkId": k})
                } else {
                    json!({"linkId": k, "answer": [{"valueString": v}]})
                }
            })
            .collect();
        let mut qr = json!({
            "resourceType": "QuestionnaireResponse",
            "id": id.to_string(),
            "identifier": {"system": "urn:chartroom:intake-request", "value": id.to_string()},
            "status": "completed",
            "subject": patient_ref,
            "authored": time(r.signed_at),
            "source": patient_ref,
            "extension": [{"url": "urn:chartroom:intake-form", "valueString": format!("{} v{}", r.request.form_id, r.request.form_version)}]
        });
        if let Some(o) = qr.as_object_mut()
            && !items.is_empty()
        {
            o.insert("item".into(), Value::Array(items));
        }
        entries.push(entry(id, qr));
    }

    for c in &set.consents {
        let id = c.consent_id.as_uuid();
        let mut provision = json!({
            "type": "permit",
            "period": {"start": time(c.recorded_at)},
            "action": [{"text": "audio recording of the visit for the clinical note"}]
        });
        if let (Some((at, _)), Some(o)) = (c.withdrawn, provision.as_object_mut()) {
            o.insert(
                "period".into(),
                json!({"start": time(c.recorded_at), "end": time(at)}),
            );
        }
        entries.push(entry(
            id,
            json!({
                "resourceType": "Consent",
                "id": id.to_string(),
                "identifier": [{"system": "urn:chartroom:recording-consent", "value": id.to_string()}],
                "status": if c.withdrawn.is_some() { "inactive" } else { "active" },
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy", "display": "Privacy Consent"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
                "patient": patient_ref,
                "dateTime": time(c.recorded_at),
                "performer": [patient_ref],
                "policyRule": {
                    "coding": [{"system": "urn:chartroom:recording-consent-rule", "code": c.consent_rule.as_str()}],
                    "text": format!("consented by {} ({})", c.consented_by.as_str(), c.method.as_str())
                },
                "provision": provision
            }),
        ));
    }

    for r in &set.amendments {
        entries.extend(amendment_entries(set, r, &patient_ref));
    }

    json!({
        "resourceType": "Bundle",
        "id": derived_id("export", &[set.practice.as_uuid().as_bytes(), pid.as_bytes(), time(now).as_bytes()]).to_string(),
        "meta": {"lastUpdated": time(now)},
        "identifier": {"system": "urn:chartroom:record-export", "value": format!("{pid}/{}", now.timestamp_micros())},
        "type": "collection",
        "timestamp": time(now),
        "entry": entries
    })
}

fn esc(s: &str) -> String {
    crate::routes::notes::esc(s)
}

/// The HTML rendering of `set` (no script, no style attribute): every record the Bundle
/// holds, in the same order, for reading or printing.
#[must_use]
pub fn html(set: &RecordSet, now: DateTime<Utc>) -> String {
    let p = &set.patient;
    let mut out = String::from("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    let _ = write!(
        out,
        "<title>Health record of {} {}</title></head><body><main>",
        esc(&p.given_name),
        esc(&p.family_name)
    );
    let _ = write!(
        out,
        "<h1>Health record of {} {}</h1><p>Exported {} (UTC). Patient id {}.</p>",
        esc(&p.given_name),
        esc(&p.family_name),
        now.format("%Y-%m-%d %H:%M"),
        p.patient_id
    );
    out.push_str("<section><h2>Demographics</h2><dl>");
    let _ = write!(
        out,
        "<dt>Name</dt><dd>{} {}</dd>",
        esc(&p.given_name),
        esc(&p.family_name)
    );
    if let Some(d) = p.date_of_birth {
        let _ = write!(out, "<dt>Date of birth</dt><dd>{d}</dd>");
    }
    if let Some(phone) = &p.phone {
        let _ = write!(out, "<dt>Phone</dt><dd>{}</dd>", esc(phone));
    }
    if let Some(email) = &p.email {
        let _ = write!(out, "<dt>Email</dt><dd>{}</dd>", esc(email));
    }
    out.push_str("</dl></section>");

    out.push_str("<section><h2>Appointments</h2><table><thead><tr><th>Start</th><th>End</th><th>Status</th></tr></thead><tbody>");
    for a in &set.appointments {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.starts_at.format("%Y-%m-%d %H:%M"),
            a.ends_at.format("%Y-%m-%d %H:%M"),
            esc(&a.status)
        );
    }
    out.push_str("</tbody></table></section>");

    out.push_str("<section><h2>Visits</h2><ul>");
    for v in &set.visits {
        let _ = write!(
            out,
            "<li>Visit {} on {}</li>",
            v.visit_id,
            v.started_at.format("%Y-%m-%d %H:%M")
        );
    }
    out.push_str("</ul></section>");

    out.push_str("<section><h2>Clinical notes</h2>");
    for n in &set.notes {
        let _ = write!(
            out,
            "<article><h3>{} (note {})</h3>",
            esc(n.template.title()),
            n.note_id
        );
        for d in signed_docs(n) {
            let _ = write!(out, "<h4>{} — version {}</h4>", esc(d.kind), d.version);
            if let Some(r) = d.reason {
                let _ = write!(out, "<p>Reason: {}</p>", esc(r));
            }
            let _ = write!(out, "<pre>{}</pre>", esc(&d.text));
            out.push_str(&crate::routes::notes::signature_html(d.signature));
        }
        out.push_str("</article>");
    }
    out.push_str("</section>");

    out.push_str("<section><h2>Periodontal charts</h2>");
    for e in &set.exams {
        perio_html(&mut out, e);
    }
    out.push_str("</section>");
    amendments_html(&mut out, set);
    rest_html(&mut out, set);
    out
}

/// One perio exam as a table of the same values as its `Observation`s.
fn perio_html(out: &mut String, e: &Exam) {
    let _ = write!(
        out,
        "<h3>Exam of {}</h3><table><thead><tr><th>Measure</th><th>Tooth</th><th>Site</th><th>mm</th></tr></thead><tbody>",
        e.info.created_at.format("%Y-%m-%d")
    );
    for o in crate::fhir::perio::observations(e) {
        let at = |p: &str| {
            o.pointer(p)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .unwrap_or_default()
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&at("/resource/code/text")),
            esc(&at("/resource/bodySite/coding/0/code")),
            esc(&at("/resource/bodySite/extension/0/valueCoding/code")),
            esc(&at("/resource/valueQuantity/value"))
        );
    }
    out.push_str("</tbody></table>");
}

/// One document of an amendment request (164.526(d)(4)).
struct AmendmentPart<'a> {
    /// Stable name (`request`, `denial`, `disagreement`, `rebuttal`).
    part: &'static str,
    /// Its title.
    title: &'static str,
    /// What was written.
    text: &'a str,
    /// When.
    at: DateTime<Utc>,
    /// Whether the patient wrote it (else the practice).
    by_patient: bool,
}

/// The documents of request `r` that are part of the record: the request, and once denied
/// the denial, the patient's statement of disagreement and the practice's rebuttal.
fn amendment_parts(r: &AmendmentRequest) -> Vec<AmendmentPart<'_>> {
    let s = &r.summary;
    let mut out = vec![AmendmentPart {
        part: "request",
        title: "Request for amendment",
        text: &r.requested_change,
        at: s.received_at,
        by_patient: true,
    }];
    if let (Some(text), Some(at)) = (&r.denial_reason, s.closed_at) {
        out.push(AmendmentPart {
            part: "denial",
            title: "Denial of the amendment",
            text,
            at,
            by_patient: false,
        });
    }
    if let (Some(text), Some(at)) = (&r.disagreement, s.disagreement_at) {
        out.push(AmendmentPart {
            part: "disagreement",
            title: "Statement of disagreement",
            text,
            at,
            by_patient: true,
        });
    }
    if let (Some(text), Some(at)) = (&r.rebuttal, s.rebuttal_at) {
        out.push(AmendmentPart {
            part: "rebuttal",
            title: "Rebuttal of the statement of disagreement",
            text,
            at,
            by_patient: false,
        });
    }
    out
}

/// What request `r` says of its outcome, for a reader.
fn amendment_outcome(r: &AmendmentRequest) -> String {
    let s = &r.summary;
    match (s.status, s.landed_version, s.landed_kind.as_deref()) {
        (domain::rights::Status::Granted, Some(v), Some(k)) => {
            format!("accepted: made as the {k} of version {v}")
        }
        (domain::rights::Status::Granted, ..) => "accepted".to_owned(),
        (st, ..) => st.as_str().to_owned(),
    }
}

/// The `DocumentReference` id of the note version request `r` names, when that note is in
/// the set: the version the patient read if it is one of the signed documents, else the
/// signed original.
fn amended_doc(set: &RecordSet, r: &AmendmentRequest) -> Option<uuid::Uuid> {
    let n = set
        .notes
        .iter()
        .find(|n| Some(n.note_id) == r.summary.note_id)?;
    let docs = signed_docs(n);
    let version = r
        .summary
        .note_version
        .filter(|v| docs.iter().any(|d| d.version == *v))
        .or_else(|| docs.first().map(|d| d.version))?;
    Some(doc_id(n, version))
}

/// The `DocumentReference` entries of amendment request `r`, each appending to the note
/// version it names (when that note is in the set) and, after the request, to the request.
fn amendment_entries(set: &RecordSet, r: &AmendmentRequest, patient_ref: &Value) -> Vec<Value> {
    let rid = r.summary.request_id.as_uuid();
    let target = amended_doc(set, r);
    let request_doc = derived_id("amendment-request", &[rid.as_bytes(), b"request"]);
    amendment_parts(r)
        .into_iter()
        .map(|p| {
            let id = derived_id("amendment-request", &[rid.as_bytes(), p.part.as_bytes()]);
            let mut relates = Vec::new();
            if let Some(t) = target {
                relates.push(json!({"code": "appends", "target": reference(t, "DocumentReference")}));
            }
            if p.part != "request" {
                relates.push(json!({"code": "appends", "target": reference(request_doc, "DocumentReference")}));
            }
            let mut doc = json!({
                "resourceType": "DocumentReference",
                "id": id.to_string(),
                "masterIdentifier": {"system": "urn:chartroom:amendment-request-document", "value": format!("{rid}/{}", p.part)},
                "identifier": [{"system": "urn:chartroom:amendment-request", "value": rid.to_string()}],
                "status": "current",
                "type": {"text": format!("{} (HIPAA 164.526)", p.title)},
                "subject": patient_ref,
                "date": time(p.at),
                "description": format!("Amendment request of {} ({}): {}", r.summary.received_at.format("%Y-%m-%d"), r.summary.record_kind, amendment_outcome(r)),
                "content": [{"attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64::engine::general_purpose::STANDARD.encode(p.text.as_bytes()),
                    "title": p.title
                }}]
            });
            if let Some(o) = doc.as_object_mut() {
                if p.by_patient {
                    o.insert("author".into(), json!([patient_ref]));
                } else if let (Some(by), "denial") = (r.closed_by, p.part) {
                    o.insert("author".into(), json!([practitioner(by.as_uuid(), None)]));
                }
                if !relates.is_empty() {
                    o.insert("relatesTo".into(), Value::Array(relates));
                }
            }
            entry(id, doc)
        })
        .collect()
}

/// The amendment requests, each with its documents and the record it names.
fn amendments_html(out: &mut String, set: &RecordSet) {
    out.push_str("<section><h2>Amendment requests</h2>");
    for r in &set.amendments {
        let s = &r.summary;
        let _ = write!(
            out,
            "<article><h3>Request of {} about {}{} — {}</h3>",
            s.received_at.format("%Y-%m-%d"),
            esc(&s.record_kind),
            s.note_id
                .map(|n| format!(" (note {n})"))
                .unwrap_or_default(),
            esc(&amendment_outcome(r))
        );
        for p in amendment_parts(r) {
            let _ = write!(
                out,
                "<h4>{} ({})</h4><pre>{}</pre>",
                esc(p.title),
                p.at.format("%Y-%m-%d %H:%M"),
                esc(p.text)
            );
        }
        out.push_str("</article>");
    }
    out.push_str("</section>");
}

/// The intake forms and recording consents, and the end of the document.
fn rest_html(out: &mut String, set: &RecordSet) {
    out.push_str("<section><h2>Intake forms</h2>");
    for r in &set.intakes {
        let _ = write!(
            out,
            "<h3>{} (signed {} by {})</h3><dl>",
            esc(&r.request.title),
            r.signed_at.format("%Y-%m-%d %H:%M"),
            esc(&r.signer_name)
        );
        for (k, v) in &r.answers {
            let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
        }
        out.push_str("</dl>");
    }
    out.push_str("</section>");

    out.push_str("<section><h2>Recording consents</h2><ul>");
    for c in &set.consents {
        let _ = write!(
            out,
            "<li>Recorded {} (consented by {}, {}){}</li>",
            c.recorded_at.format("%Y-%m-%d %H:%M"),
            esc(c.consented_by.as_str()),
            esc(c.method.as_str()),
            c.withdrawn
                .map(|(at, _)| format!("; withdrawn {}", at.format("%Y-%m-%d %H:%M")))
                .unwrap_or_default()
        );
    }
    out.push_str("</ul></section></main></body></html>");
}
