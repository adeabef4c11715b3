//! Chartroom's HTTP JSON API (axum): router, extractors, handlers, views and the OpenAPI 3.1
//! document generated from the same route registrations.
//!
//! # Guarantees
//! - Deny by default: every route under `/api/v1` except sign-in and the OpenAPI document
//!   needs a session; every practice route states the [`domain::Privilege`] it needs in its
//!   handler signature ([`extract::Ctx`]), checked after the session and the membership.
//! - Another practice's object, or a practice the caller does not belong to, is `404`, never
//!   `403`: nothing reveals that it exists.
//! - Handlers reach tenant data only through the [`store::TenantTx`] their [`extract::Ctx`]
//!   holds, and every success on a practice route appends its audit event in the same
//!   transaction before the response is sent.
//! - Errors are JSON `{"error": {"code", "message", "request_id"}}` with a stable code; 5xx
//!   bodies say only "internal error"; no message echoes a submitted value.
//! - Every response carries `x-request-id`, `Cache-Control: no-store` (except the public
//!   subprocessor documents, [`subprocessors::CACHE_CONTROL`]), `X-Content-Type-Options:
//!   nosniff`, `Referrer-Policy: no-referrer` and a CSP that forbids scripts and framing.
//! - A request that takes longer than [`Limits::request_timeout`] is abandoned (its
//!   transaction, if not yet committed, rolls back) and answered `503` `TIMEOUT`.
//!
//! # Example
//! ```no_run
//! # async fn f(state: server::AppState) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, server::app(state)).await
//! # }
//! ```

pub mod assistant;
pub mod checkpoint;
pub mod error;
mod etag;
pub mod export;
pub mod extract;
pub mod fhir;
pub mod identity;
pub mod jobs;
mod middleware;
pub mod outbox_preview;
pub mod password;
pub mod payments;
mod routes;
pub mod subprocessors;
pub mod tls;
pub mod trust;
mod views;
pub mod voice;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use domain::Clock;
use store::{SessionPolicy, Store};

pub use error::AppError;
pub use routes::push::PushSettings;

/// The sign-in steps, shared by the JSON API (`/api/v1/auth/…`) and the web pages, so both
/// faces throttle, audit, rotate tokens and answer failures the same way.
pub mod signin {
    pub use crate::routes::auth::{
        CLEARED_SESSION_COOKIE, NextStep, SignedIn, TotpEnrollment, begin_totp_enrollment,
        change_password, confirm_totp_enrollment, end_other_sessions, end_session,
        present_recovery_code, present_totp, regenerate_recovery_codes, session_cookie,
        sign_in_with_password, sign_out,
    };
    pub use crate::routes::passkeys::{
        AssertionFinish, CeremonyStart, PasskeyView, RegisterFinish, begin_passkey_registration,
        begin_passkey_second_factor, begin_passkey_sign_in, finish_passkey_registration, passkeys,
        present_passkey, remove_passkey, sign_in_with_passkey,
    };
}
/// The service steps both faces (the API's routes and the web pages) take for a change: the
/// store call, its rule checks and its audit event, in one place; the caller commits.
pub mod actions {
    pub use crate::routes::appointments::{book, change, list_appointments, read_appointment};
    pub use crate::routes::audit::audit_report;
    pub use crate::routes::care_team::{
        acknowledge_break_glass, break_glass_alert, break_glass_target, open_break_glass,
        review_break_glass,
    };
    pub use crate::routes::disclosures::{disclosure_accounting, record_disclosure};
    /// Security incidents: record, list, read, update, assess, scope, letters, close; and a
    /// patient's state of residence (each audited).
    pub mod incidents {
        pub use crate::routes::incidents::{
            assess_incident, close_incident, create_incident, list_incidents, read_incident,
            record_letter, scope_incident, set_residence, update_incident,
        };
    }
    pub use crate::identity::admit_quota;
    pub use crate::routes::intake::revoke_link;
    /// Patients' requests (HIPAA 164.524, 164.526): right-of-access requests (list, read,
    /// extend, deny, fulfil with the copy) and amendment requests (list, read, extend, deny,
    /// accept onto the note, the statement of disagreement and the rebuttal), each audited.
    pub mod rights {
        pub use crate::routes::amendments::{
            NoteChange, accept_amendment_request, create_amendment_request, deny_amendment_request,
            extend_amendment_request, link_statement, list_amendment_requests,
            read_amendment_request,
        };
        pub use crate::routes::rights::{
            create_access_request, deny_access_request, extend_access_request,
            fulfil_access_request, list_access_requests, read_access_request,
        };
    }
    pub use crate::routes::invitations::{invite, list_invitations, revoke_invitation};
    pub use crate::routes::memberships::{
        list_members, read_member, remove_member, set_member_roles,
    };
    pub use crate::routes::notes::{
        add_addendum, amend_note, list_notes, list_visits, open_visit, read_note, save_note,
        sign_note, start_note, verify_note,
    };
    pub use crate::routes::patients::{
        delete_patient, list_patients, read_patient, register_patient, search_patients,
        update_patient,
    };
    pub use crate::routes::practices::{
        read_practice, read_practice_security, set_practice_security, update_practice,
    };
    pub use crate::routes::retention::{place_legal_hold, read_retention, release_legal_hold};
    pub use crate::routes::support::{approve_support, list_support, revoke_support};
    /// The scribe: transcripts (read, correct, history) and note drafts (create, read, accept
    /// or edit a sentence, make the note, the note's changes from its draft).
    pub mod scribe {
        pub use crate::routes::scribe::{
            DraftOutcome, DraftView, SentenceChange, SentenceView, change_sentence,
            changes_from_draft, checked_sentences, correct_segment, create_draft,
            default_sentences, draft_changes, list_drafts, note_from_draft, read_draft,
            read_transcript, read_visit_transcript, segment_history,
        };
    }
    /// Assistant edits: a draft's revision proposed and accepted, an amendment proposed (each
    /// AI call one audited assistant turn).
    pub mod assist {
        pub use crate::routes::assist::{
            AmendmentProposalView, DraftProposalView, ProposedSentenceView, accept_draft_edit,
            instruction, propose_amendment, propose_draft_edit,
        };
    }
    /// The AI provider registry: register, change posture, list (each audited).
    pub mod providers {
        pub use crate::routes::providers::{change_provider, list_providers, register_provider};
    }
    /// The scribe's capture path: recording consent, captures, audio chunks, the live
    /// indicator's state and the scribe policy.
    pub mod capture {
        pub use crate::routes::capture::{
            Change, Uploaded, Withdrawn, change_capture, chunk_body, consent_input, list_captures,
            list_consents, live_capture, policy_input, read_capture, read_policy, record_consent,
            set_policy, start_capture, upload_chunk, withdraw_consent,
        };
    }
    /// Periodontal exams: create, list, read, and one change (final, confirm, decline,
    /// undo) with its audit event; a dictated clip recognized, then applied or held.
    pub mod perio {
        pub use crate::routes::perio::{
            Change, Changed, change_exam, create_exam, list_exams, read_exam,
        };
        pub use crate::routes::perio_voice::{
            Dictated, VOICE_MAX_BYTES, VOICE_MAX_MS, VoiceResult, check_clip, clip_body, dictate,
        };
    }
}

/// Input rules shared by the JSON API and the web pages, so both faces accept and refuse the
/// same values with the same messages (each error names its field, never echoes the value).
pub mod rules {
    /// Patients: demographics, contact details and search criteria.
    pub mod patients {
        pub use crate::routes::patients::{
            NAME_MAX, NO_CRITERION, contact_email, contact_phone, date_of_birth, name,
            search_criteria,
        };
    }
    /// Appointments: times and statuses.
    pub mod appointments {
        pub use crate::routes::appointments::{CANCELLED, LONGEST, STATUSES, appointment_times};
    }
    /// Memberships: the roles a member may be given.
    pub mod memberships {
        pub use crate::routes::memberships::parse_roles;
    }
    /// The audit log: report filters, paging and the FHIR export.
    pub mod audit {
        pub use crate::routes::audit::{ReportQuery, cursor, fhir_export, filter, filter_kinds};
    }
    /// Practices: security settings.
    pub mod practices {
        pub use crate::routes::practices::security_input;
    }
    /// Disclosures and the accounting of disclosures (HIPAA 164.528).
    pub mod disclosures {
        pub use crate::routes::disclosures::{
            DisclosureSummary, accounting_summary, disclosure_input,
        };
    }
    /// Patients' requests: what may be recorded, a statement's size, how a refused step of
    /// the lifecycle answers.
    pub mod rights {
        pub use crate::routes::amendments::{MAX_STATEMENT, amendment_request_input};
        pub use crate::routes::rights::{access_request_input, lifecycle_refused};
    }
    /// Security incidents: what may be recorded.
    pub mod incidents {
        pub use crate::routes::incidents::{DEFAULT_BAA_NOTICE_HOURS, incident_input};
    }
    /// Vendor support grants: what an owner may approve.
    pub mod support {
        pub use crate::routes::support::{GrantInput, NO_SUPPORT_ACCOUNT, grant_input};
    }
    /// AI providers: what may be registered and changed.
    pub mod providers {
        pub use crate::routes::providers::{
            API_KEY_MAX, ProviderForm, adapter, api_key, base_url, document_ref, gate_verdict,
            gate_verdict_with, hosting, label, model, on_operator_host, provider_input, region,
            retention, vendor,
        };
    }
    /// Clinical notes: the version a change names (`If-Match`) and how a refused change
    /// answers.
    pub mod notes {
        pub use crate::routes::notes::{if_match, refusal};
    }
    /// Break-glass: the reason's size and the window's length.
    pub mod break_glass {
        pub use crate::routes::care_team::{
            BREAK_GLASS_DEFAULT_MINUTES, BREAK_GLASS_REASON_MAX, break_glass_minutes,
        };
    }
}
pub use middleware::request_frame;
pub use routes::{openapi, openapi_schema_conflicts};

/// Largest accepted request body (bytes). Bigger bodies get `413` before any parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Default of [`Limits::request_timeout`] (seconds).
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;

/// Limits every request is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A request not answered within this time is abandoned — its handler is dropped, so a
    /// transaction not yet committed rolls back — and answered `503` `TIMEOUT`.
    pub request_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: std::time::Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
        }
    }
}

/// Everything a handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database, as the runtime role.
    pub store: Store,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// Session timeouts.
    pub sessions: SessionPolicy,
    /// Password hashing on a bounded blocking pool.
    pub passwords: password::Hasher,
    /// Identity: password policy, throttling, second factors, passkeys.
    pub identity: Arc<identity::Identity>,
    /// The body of `/.well-known/security.txt` (RFC 9116), when configured.
    pub security_txt: Option<Arc<str>>,
    /// The signed audit checkpoints' store (read by the proof routes), when configured: a
    /// directory, or the object store several replicas share.
    pub checkpoints: Option<checkpoint::Place>,
    /// The scribe's AI calls: adapters for registered providers and the local default.
    pub assistant: assistant::Assistant,
    /// The encrypted blob store (captured audio), when configured; routes that store blobs
    /// answer 503 without it.
    pub blobs: Option<Arc<store::crypto::BlobStore>>,
    /// The subprocessor registry in force (the adapters' host allow-list) and how it is
    /// published ([`subprocessors`]).
    pub subprocessors: Arc<subprocessors::Subprocessors>,
    /// The payment processor for online bookings of paid services (Stripe), when configured
    /// and allowed by the registry; without it such bookings answer `503 PAY-0001`.
    pub payments: Option<Arc<payments::Payments>>,
    /// Web Push (the VAPID public key and the push services' hosts subscriptions may name),
    /// when a Web Push integration is active; the subscription routes refuse without it.
    pub push: Option<Arc<PushSettings>>,
    /// The live trust page's evidence pack and checkpoint key ([`trust`]).
    pub trust: Arc<trust::Trust>,
}

/// The whole application: routes, the OpenAPI document, and the layers every request passes,
/// with the default [`Limits`].
pub fn app(state: AppState) -> Router {
    app_with_limits(state, Limits::default())
}

/// [`app`] with the given limits.
pub fn app_with_limits(state: AppState, limits: Limits) -> Router {
    // Every `/api/v1` route comes from the registrations, so each is in the document.
    let (api, _) = routes::router().split_for_parts();
    Router::new()
        .merge(api)
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/.well-known/security.txt",
            axum::routing::get(security_txt),
        )
        .route(
            "/.well-known/subprocessors.json",
            axum::routing::get(subprocessors::subprocessors_json),
        )
        .route(
            "/subprocessors.atom",
            axum::routing::get(subprocessors::subprocessors_atom),
        )
        .route("/trust.json", axum::routing::get(trust::trust_json))
        .fallback(|| async { AppError::NotFound("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            middleware::timeout,
        ))
        .layer(axum::middleware::from_fn(request_frame))
        .with_state(state)
}

/// `/.well-known/security.txt` (RFC 9116): contact and expiry from configuration; 404 when
/// none is configured.
async fn security_txt(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match &state.security_txt {
        Some(body) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            body.to_string(),
        )
            .into_response(),
        None => AppError::NotFound("security.txt").into_response(),
    }
}

/// Renders a `security.txt` (RFC 9116 §2.5): one `Contact:` line per contact (a `mailto:` or
/// `https:` URI) and the `Expires:` date, plus an optional policy URL and preferred languages.
#[must_use]
pub fn render_security_txt(
    contacts: &[String],
    expires: chrono::DateTime<chrono::Utc>,
    policy: Option<&str>,
) -> String {
    let mut out = String::new();
    for c in contacts {
        out.push_str("Contact: ");
        out.push_str(c);
        out.push('\n');
    }
    out.push_str("Expires: ");
    out.push_str(&expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    out.push('\n');
    if let Some(p) = policy {
        out.push_str("Policy: ");
        out.push_str(p);
        out.push('\n');
    }
    out.push_str("Preferred-Languages: en\n");
    out
}
