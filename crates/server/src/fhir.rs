//! FHIR R4 renderings.

use serde_json::json;
use store::audit::AuditRow;

/// FHIR R4 `AuditEvent` for one event (<https://hl7.org/fhir/R4/auditevent.html>).
#[must_use]
pub fn audit_event(practice: domain::PracticeId, r: &AuditRow) -> serde_json::Value {
    let (code, display) = match r.action.rsplit('.').next().unwrap_or("") {
        "create" => ("C", "Create"),
        "update" => ("U", "Update"),
        "delete" => ("D", "Delete"),
        "export" => ("E", "Execute"),
        _ => ("R", "Read/View/Print"),
    };
    let mut agents = vec![];
    if let Some(a) = r.actor_id {
        agents.push(json!({
            "who": {"identifier": {"system": "urn:chartroom:user", "value": a.to_string()}},
            "requestor": true
        }));
    } else {
        agents.push(json!({"who": {"display": "Chartroom system"}, "requestor": false}));
    }
    let mut entities = vec![];
    if let Some(p) = r.patient_id {
        entities.push(json!({
            "what": {"identifier": {"system": "urn:chartroom:patient", "value": p.to_string()}},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
        }));
    }
    if let (Some(t), Some(id)) = (&r.object_type, r.object_id) {
        entities.push(json!({
            "what": {"identifier": {"system": format!("urn:chartroom:{t}"), "value": id.to_string()}},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"}
        }));
    }
    let mut ev = json!({
        "resourceType": "AuditEvent",
        "id": r.event_id.to_string(),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "urn:chartroom:audit-action", "code": r.action}],
        "action": code,
        "recorded": r.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "outcome": if r.outcome == "success" { "0" } else { "4" },
        "outcomeDesc": if r.outcome == "success" { "success" } else { "denied" },
        "agent": agents,
        "source": {"site": practice.to_string(), "observer": {"display": "Chartroom"}},
    });
    let _ = display;
    if let Some(obj) = ev.as_object_mut() {
        if !entities.is_empty() {
            obj.insert("entity".into(), serde_json::Value::Array(entities));
        }
        if let Some(req) = r.request_id {
            obj.insert(
                "extension".into(),
                json!([{"url": "urn:chartroom:request-id", "valueString": req.to_string()}]),
            );
        }
        if let Some(seq) = r.seq {
            obj.insert(
                "meta".into(),
                json!({"tag": [{"system": "urn:chartroom:audit-seq", "code": seq.to_string()}]}),
            );
        }
    }
    ev
}

/// FHIR R4 rendering of a perio exam: the one home of its `Observation` resources (the exam's
/// own export and the patient's record export both use it).
pub mod perio {
    use chrono::{DateTime, SecondsFormat, Utc};
    use perio::{Site, Tooth};
    use serde_json::{Value, json};
    use sha2::{Digest as _, Sha256};
    use store::perio::Exam;

    /// LOINC: probing depth, "measurement in mm from the free gingival margin to the base of
    /// the pocket" (SPEC §1.4).
    pub(crate) const LOINC_PROBING_DEPTH: &str = "32910-2";
    /// LOINC: periodontal attachment loss.
    pub(crate) const LOINC_ATTACHMENT_LOSS: &str = "32881-5";
    /// HL7 THO code system of the ADA Universal tooth numbers (SPEC §1.1).
    pub(crate) const TOOTH_SYSTEM: &str =
        "http://terminology.hl7.org/CodeSystem/ADAUniversalToothDesignationSystem";
    /// The extension on `bodySite` that names the probing site around the tooth.
    pub(crate) const SITE_EXTENSION: &str = "urn:chartroom:fhir:perio-site";
    /// Chartroom's code system of the six probing sites (Open Dental `PerioSurf` names).
    pub(crate) const SITE_SYSTEM: &str = "urn:chartroom:perio-site";

    fn time(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    fn site_display(site: Site) -> &'static str {
        match site {
            Site::MB => "mesio-facial",
            Site::B => "mid-facial",
            Site::DB => "disto-facial",
            Site::ML => "mesio-lingual",
            Site::L => "mid-lingual",
            Site::DL => "disto-lingual",
        }
    }

    /// A stable id per (exam, measure, tooth, site): the same export twice names the same
    /// resources. A `UUIDv8` from SHA-256 (RFC 9562 §5.8).
    fn resource_id(exam: &Exam, code: &str, tooth: Tooth, site: Site) -> uuid::Uuid {
        let mut h = Sha256::new();
        h.update(exam.info.exam_id.as_uuid().as_bytes());
        h.update(code.as_bytes());
        h.update([tooth.number()]);
        h.update(site.name().as_bytes());
        let digest = h.finalize();
        let mut bytes = [0_u8; 16];
        for (b, d) in bytes.iter_mut().zip(digest.iter()) {
            *b = *d;
        }
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    fn observation(
        exam: &Exam,
        code: &str,
        text: &str,
        tooth: Tooth,
        site: Site,
        mm: i16,
    ) -> Value {
        let id = resource_id(exam, code, tooth, site);
        let resource = json!({
            "resourceType": "Observation",
            "id": id.to_string(),
            "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "exam",
                "display": "Exam"
            }]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code}], "text": text},
            "subject": {"type": "Patient", "identifier": {"system": "urn:chartroom:patient", "value": exam.info.patient_id.to_string()}},
            "effectiveDateTime": time(exam.info.created_at),
            "issued": time(exam.info.updated_at),
            "performer": [{"type": "Practitioner", "identifier": {"system": "urn:chartroom:user", "value": exam.info.clinician_id.to_string()}}],
            "valueQuantity": {"value": mm, "unit": "mm", "system": "http://unitsofmeasure.org", "code": "mm"},
            "bodySite": {
                "coding": [{"system": TOOTH_SYSTEM, "code": tooth.number().to_string()}],
                "extension": [{"url": SITE_EXTENSION, "valueCoding": {
                    "system": SITE_SYSTEM, "code": site.name(), "display": site_display(site)
                }}],
                "text": format!("tooth {} {}", tooth.number(), site_display(site))
            }
        });
        json!({"fullUrl": format!("urn:uuid:{id}"), "resource": resource})
    }

    /// The exam's own Bundle (type `collection`) of its observations.
    pub(crate) fn bundle(exam: &Exam, now: DateTime<Utc>) -> Value {
        let entries = observations(exam);
        json!({
            "resourceType": "Bundle",
            "id": exam.info.exam_id.to_string(),
            "meta": {"lastUpdated": time(exam.info.updated_at)},
            "identifier": {"system": "urn:chartroom:perio-exam", "value": exam.info.exam_id.to_string()},
            "type": "collection",
            "timestamp": time(now),
            "entry": entries
        })
    }

    /// The exam's `Observation` entries (each `{fullUrl, resource}`). Teeth in Universal
    /// order; per tooth, sites in canonical order, the probing depth before the attachment
    /// loss.
    pub(crate) fn observations(exam: &Exam) -> Vec<Value> {
        let s = &exam.session;
        let mut entries = Vec::new();
        for (tooth, record) in s.chart().records() {
            if !record.status.is_examined() {
                continue;
            }
            for site in Site::ALL {
                if let Some(pd) = record.pd.get(site) {
                    entries.push(observation(
                        exam,
                        LOINC_PROBING_DEPTH,
                        "Probing depth",
                        tooth,
                        site,
                        i16::from(pd),
                    ));
                }
                if let Some(cal) = s.cal(tooth, site).filter(|c| *c >= 0) {
                    entries.push(observation(
                        exam,
                        LOINC_ATTACHMENT_LOSS,
                        "Clinical attachment loss",
                        tooth,
                        site,
                        cal,
                    ));
                }
            }
        }
        entries
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn at() -> DateTime<Utc> {
            DateTime::from_timestamp(1_790_000_000, 0).unwrap()
        }

        fn exam(finals: &[&str]) -> Exam {
            let mut session = perio::Session::default();
            for f in finals {
                assert_eq!(session.apply_final(f).status, perio::Status::Ok, "{f}");
            }
            let now = at();
            Exam {
                info: store::perio::ExamInfo {
                    exam_id: domain::PerioExamId::new(),
                    patient_id: domain::PatientId::new(),
                    clinician_id: domain::UserId::new(),
                    created_at: now,
                    updated_at: now,
                    version: 3,
                },
                session,
            }
        }

        #[test]
        fn probing_depths_and_attachment_loss_per_site() {
            let e = exam(&[
                "tooth three buccal three two four",
                "recession two on tooth three facial",
                "tooth one missing",
            ]);
            let b = bundle(&e, at());
            assert_eq!(b["resourceType"], "Bundle");
            assert_eq!(b["type"], "collection");
            let entries = b["entry"].as_array().unwrap();
            // Three depths on tooth 3 (DB 3, B 2, MB 4), recession at B only: one CAL (2 + 2).
            let codes: Vec<(&str, &str, &str, i64)> = entries
                .iter()
                .map(|en| {
                    let r = &en["resource"];
                    (
                        r["code"]["coding"][0]["code"].as_str().unwrap(),
                        r["bodySite"]["coding"][0]["code"].as_str().unwrap(),
                        r["bodySite"]["extension"][0]["valueCoding"]["code"]
                            .as_str()
                            .unwrap(),
                        r["valueQuantity"]["value"].as_i64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                codes,
                [
                    (LOINC_PROBING_DEPTH, "3", "MB", 4),
                    (LOINC_PROBING_DEPTH, "3", "B", 2),
                    (LOINC_ATTACHMENT_LOSS, "3", "B", 4),
                    (LOINC_PROBING_DEPTH, "3", "DB", 3),
                ]
            );
            for en in entries {
                let r = &en["resource"];
                assert_eq!(
                    en["fullUrl"],
                    format!("urn:uuid:{}", r["id"].as_str().unwrap())
                );
                assert_eq!(r["valueQuantity"]["system"], "http://unitsofmeasure.org");
                assert_eq!(
                    r["subject"]["identifier"]["value"],
                    e.info.patient_id.to_string()
                );
            }
            // Stable ids: the same export names the same resources.
            let again = bundle(&e, at());
            assert_eq!(b["entry"], again["entry"]);
        }

        #[test]
        fn empty_chart_is_an_empty_bundle() {
            let b = bundle(&exam(&[]), at());
            assert_eq!(b["entry"], json!([]));
        }
    }
}
