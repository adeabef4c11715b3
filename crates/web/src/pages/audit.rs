//! The audit log viewer (owners and admins): the practice's events filtered by patient,
//! actor, action and time, newest first, a page at a time, and the FHIR R4 `AuditEvent`
//! export as a download — over the API's report and export ([`server::actions::audit_report`],
//! [`server::rules::audit`]: the same filter rules, the same store reads, the same
//! `audit.read` / `audit.export` events).
//!
//! Filters travel as ids, action names and dates only (a `GET` form), never PHI: the patient
//! is named by id, the actor is chosen from the members by id. Audit rows themselves hold ids,
//! actions, outcomes and times only.

use askama::Template;
use axum::extract::Query;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use domain::{AuditAction, PatientId, PracticeId, UserId};
use serde::Deserialize;
use server::AppError;
use server::extract::Manage;
use server::rules::audit as rules;

use super::{Chrome, FieldErrors, Member, chrome, filled, html_status};
use crate::{Assets, WebError, assets};

/// Events per page.
const PAGE: i64 = 50;

/// The filter form as typed (every field optional; empty means "any").
#[derive(Deserialize, Default)]
pub(crate) struct AuditForm {
    #[serde(default)]
    patient_id: String,
    #[serde(default)]
    actor_id: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    cursor: String,
}

/// A choice in a select.
pub(crate) struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// An event row.
pub(crate) struct EventRow {
    when: String,
    actor: String,
    action: String,
    outcome: String,
    patient: Option<String>,
    patient_filter: Option<String>,
    object: String,
    request: String,
    details: String,
}

/// The audit log page.
#[derive(Template)]
#[template(path = "audit.html")]
pub(crate) struct AuditPage {
    assets: &'static Assets,
    chrome: Option<Chrome>,
    practice_id: PracticeId,
    form: AuditForm,
    errors: FieldErrors,
    actors: Vec<Choice>,
    actions: Vec<Choice>,
    events: Vec<EventRow>,
    next: Option<String>,
    filtered: bool,
}

/// A date field as the start of that day (UTC).
fn day_start(
    errors: &mut FieldErrors,
    field: &'static str,
    label: &str,
    raw: &str,
) -> Option<DateTime<Utc>> {
    let t = filled(raw)?;
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0).map(|t| t.and_utc())
    } else {
        errors.add(field, format!("{label}: enter a full date (YYYY-MM-DD)."));
        None
    }
}

/// The API's report query for the form: from the start of `from`'s day to the end of `to`'s
/// day (inclusive of both days), newest first; or the refusal by field.
fn query(form: &AuditForm) -> Result<rules::ReportQuery, FieldErrors> {
    let mut errors = FieldErrors::default();
    let patient_id = filled(&form.patient_id).and_then(|p| {
        p.parse::<PatientId>()
            .map_err(|_| errors.add("patient_id", "Patient: enter a patient id (a UUID)."))
            .ok()
    });
    let actor_id = filled(&form.actor_id).and_then(|a| {
        a.parse::<UserId>()
            .map_err(|_| errors.add("actor_id", "Actor: choose a member from the list."))
            .ok()
    });
    let action = filled(&form.action).map(str::to_owned);
    if let Some(a) = &action
        && !AuditAction::ALL.iter().any(|x| x.as_str() == a)
    {
        errors.add("action", "Action: choose an action from the list.");
    }
    let from = day_start(&mut errors, "from", "From", &form.from);
    let to = day_start(&mut errors, "to", "To", &form.to).map(|d| d + chrono::Duration::days(1));
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        errors.add("to", "To: must not be before From.");
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(rules::ReportQuery {
        patient_id,
        actor_id,
        action,
        from,
        to,
        order: Some("desc".into()),
        limit: Some(PAGE),
        cursor: filled(&form.cursor).map(str::to_owned),
    })
}

/// `GET /app/practices/{practice_id}/audit?patient_id=&actor_id=&action=&from=&to=&cursor=`:
/// the events matching the filters, newest first, 50 a page (the API's report, audited
/// `audit.read` naming the filters used). A refused filter answers `400` with its message
/// next to its field and reads nothing.
pub(crate) async fn audit_page(
    Member(ctx): Member<Manage>,
    Query(form): Query<AuditForm>,
) -> Result<Response, WebError> {
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let chrome = chrome(&mut tx).await?;
    let members = server::actions::list_members(&mut tx).await?;
    let name_of = |id: Option<UserId>| match id {
        None => "system".to_owned(),
        Some(id) => members
            .iter()
            .find(|m| m.user_id == id)
            .map_or_else(|| id.to_string(), |m| m.display_name.clone()),
    };
    let (events, next, errors, status) = match query(&form) {
        Ok(q) => {
            let f = rules::filter(q, PAGE)?;
            let rows = server::actions::audit_report(&mut tx, &f).await?;
            let full = i64::try_from(rows.len()).unwrap_or(0) == f.limit;
            let next = if full {
                rows.last().map(rules::cursor)
            } else {
                None
            };
            let events = rows
                .into_iter()
                .map(|r| EventRow {
                    when: r.occurred_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                    actor: name_of(r.actor_id),
                    action: r.action,
                    outcome: r.outcome,
                    patient_filter: r
                        .patient_id
                        .map(|p| format!("/app/practices/{practice_id}/audit?patient_id={p}")),
                    patient: r.patient_id.map(|p| p.to_string()),
                    object: match (r.object_type, r.object_id) {
                        (Some(t), Some(id)) => format!("{t} {id}"),
                        (Some(t), None) => t,
                        _ => String::new(),
                    },
                    request: r.request_id.map(|r| r.to_string()).unwrap_or_default(),
                    details: r.details.map(|d| d.to_string()).unwrap_or_default(),
                })
                .collect();
            (
                events,
                next,
                FieldErrors::default(),
                axum::http::StatusCode::OK,
            )
        }
        Err(errors) => (
            Vec::new(),
            None,
            errors,
            axum::http::StatusCode::BAD_REQUEST,
        ),
    };
    tx.commit().await?;
    let (actors, actions) = choices(&form, &members);
    let filtered = [
        &form.patient_id,
        &form.actor_id,
        &form.action,
        &form.from,
        &form.to,
    ]
    .iter()
    .any(|v| !v.trim().is_empty());
    let next = next.map(|c| older_link(practice_id, &form, c));
    html_status(
        status,
        &AuditPage {
            assets: assets(),
            chrome: Some(chrome),
            practice_id,
            form,
            errors,
            actors,
            actions,
            events,
            next,
            filtered,
        },
    )
}

/// The actor and action choices of the filter form, the chosen ones selected.
fn choices(form: &AuditForm, members: &[store::memberships::Member]) -> (Vec<Choice>, Vec<Choice>) {
    let actors = std::iter::once(Choice {
        value: String::new(),
        label: "Anyone".into(),
        selected: form.actor_id.trim().is_empty(),
    })
    .chain(members.iter().map(|m| Choice {
        value: m.user_id.to_string(),
        label: m.display_name.clone(),
        selected: form.actor_id.trim() == m.user_id.to_string(),
    }))
    .collect();
    let actions = std::iter::once(Choice {
        value: String::new(),
        label: "Any action".into(),
        selected: form.action.trim().is_empty(),
    })
    .chain(AuditAction::ALL.iter().map(|a| Choice {
        value: a.as_str().to_owned(),
        label: a.as_str().to_owned(),
        selected: form.action.trim() == a.as_str(),
    }))
    .collect();
    (actors, actions)
}

/// The link to the next (older) page: the same filters (already checked: ids, an action
/// name, dates) and the cursor.
fn older_link(practice_id: PracticeId, form: &AuditForm, cursor: String) -> String {
    let mut q = vec![("cursor", cursor)];
    for (k, v) in [
        ("patient_id", &form.patient_id),
        ("actor_id", &form.actor_id),
        ("action", &form.action),
        ("from", &form.from),
        ("to", &form.to),
    ] {
        if !v.trim().is_empty() {
            q.push((k, v.trim().to_owned()));
        }
    }
    let q: Vec<String> = q.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("/app/practices/{practice_id}/audit?{}", q.join("&"))
}

/// The export window.
#[derive(Deserialize, Default)]
pub(crate) struct ExportForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// `GET /app/practices/{practice_id}/audit/fhir?from=&to=`: the API's FHIR R4 export
/// ([`rules::fhir_export`], audited `audit.export`) of the events from the start of `from`'s
/// day (default: 30 days ago) to the end of `to`'s day (default: no end), as a download
/// (`application/fhir+ndjson`, `Content-Disposition: attachment`).
pub(crate) async fn audit_fhir(
    Member(ctx): Member<Manage>,
    Query(form): Query<ExportForm>,
) -> Result<Response, WebError> {
    let mut errors = FieldErrors::default();
    let from = day_start(&mut errors, "from", "From", &form.from);
    let to = day_start(&mut errors, "to", "To", &form.to).map(|d| d + chrono::Duration::days(1));
    if let Some(e) = errors.get("from").or_else(|| errors.get("to")) {
        return Err(AppError::Invalid(e.to_owned()).into());
    }
    let mut tx = ctx.tx;
    let practice_id = tx.practice();
    let from = from.unwrap_or_else(|| tx.now() - chrono::Duration::days(30));
    if to.is_some_and(|to| from >= to) {
        return Err(AppError::Invalid("To: must not be before From.".into()).into());
    }
    let out = rules::fhir_export(&mut tx, from, to).await?;
    tx.commit().await?;
    let mut res = out.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+ndjson"),
    );
    let name = format!(
        "attachment; filename=\"chartroom-audit-{practice_id}-{}.ndjson\"",
        from.format("%Y%m%d")
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 17 — the viewer's filters become the API's report query: whole days, newest
    // first; malformed ids, unknown actions and reversed days are refused by field.
    #[test]
    fn filters_become_the_api_report_query() {
        let q = query(&AuditForm {
            from: "2031-03-03".into(),
            to: "2031-03-03".into(),
            action: "patient.read".into(),
            ..AuditForm::default()
        })
        .unwrap();
        assert_eq!(q.from.unwrap().to_rfc3339(), "2031-03-03T00:00:00+00:00");
        assert_eq!(q.to.unwrap().to_rfc3339(), "2031-03-04T00:00:00+00:00");
        assert_eq!(q.order.as_deref(), Some("desc"));
        assert_eq!(q.patient_id, None);
        let e = query(&AuditForm {
            patient_id: "Jane Doe".into(),
            actor_id: "x".into(),
            action: "patient.peek".into(),
            from: "2031-03-04".into(),
            to: "2031-03-02".into(),
            ..AuditForm::default()
        })
        .unwrap_err();
        for f in ["patient_id", "actor_id", "action", "to"] {
            assert!(e.get(f).is_some(), "{f}");
        }
    }
}
