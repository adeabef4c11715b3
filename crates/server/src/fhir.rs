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
