//! The one error type of the API.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use store::StoreError;

/// Every way a request can fail. Each variant's doc names its status and stable code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 401 `AUTH-0001`: no session, or it ended.
    #[error("sign in first: this request has no valid session, or the session has ended")]
    Unauthenticated,
    /// 401 `AUTH-0002`: the one message for every failed sign-in (no enumeration).
    #[error("the email or password is incorrect")]
    BadCredentials,
    /// 401 `AUTH-0003`: the session has only a password; complete sign-in with a second factor
    /// (or enroll one) first (req AU-01).
    #[error(
        "complete sign-in with your second factor (authenticator code, passkey or recovery code); enroll one if you have none"
    )]
    MfaRequired,
    /// 401 `AUTH-0004`: this change needs a second factor presented in the last few minutes.
    #[error("confirm it is you: present your second factor again, then retry")]
    StepUpRequired,
    /// 401 `AUTH-0005`: the code or passkey did not verify (or was already used).
    #[error("the code is incorrect or was already used")]
    SecondFactorFailed,
    /// 403 `AUTH-0006`: the practice requires owners and admins to sign in with a passkey.
    #[error("this practice requires owners and admins to sign in with a passkey")]
    PasskeyRequired,
    /// 429 `AUTH-0007`: too many failed attempts; retry after the given number of seconds.
    #[error("too many failed attempts; wait {0} seconds and try again, or sign in with a passkey")]
    Throttled(i64),
    /// 422 `AUTH-0008`: the new password does not meet the policy (the message says why).
    #[error("{0}")]
    PasswordRejected(crate::identity::PasswordRejection),
    /// 429 `RATE-0001`: the member made too many of these requests (patient searches and
    /// lists, record exports) in a short time; retry after the given number of seconds (req
    /// OPS-06). The refusal is audited and the practice's owners are alerted.
    #[error(
        "too many {0} in a short time: wait {1} seconds and try again (the practice's owners see when this limit is reached)"
    )]
    RateLimited(&'static str, i64),
    /// 403 `AUTHZ-0001`: signed in and a member, but without the role this needs.
    #[error("your role in this practice does not allow this; ask a practice owner or admin")]
    Forbidden,
    /// 404 `NOT-FOUND`: no such object here (also for other practices' objects).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// 400 `INPUT-0001`: a value broke a rule (the message names the field and the rule).
    #[error("{0}")]
    Invalid(String),
    /// 400 `INPUT-0002`: the body is not the JSON this route expects.
    #[error("{0}")]
    BadJson(String),
    /// 422 `INPUT-0005`: the body names an object (by id) that does not exist in this
    /// practice; nothing was changed.
    #[error("{0}")]
    UnknownReference(&'static str),
    /// 422 `INPUT-0006`: the audio body is not what the route takes (the message says what
    /// is expected); nothing was read or changed.
    #[error("{0}")]
    BadAudio(String),
    /// 413 `INPUT-0003`: the body is larger than the limit.
    #[error("the request body is larger than {} KiB", crate::MAX_BODY_BYTES / 1024)]
    TooLarge,
    /// 415 `INPUT-0004`: the body is not `application/json`.
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// 409 `CONFLICT-0001`: the change conflicts with existing data.
    #[error("{0}")]
    Conflict(String),
    /// 409 `NOTE-0001`: the note is signed and locked; amend it or add an addendum.
    #[error("{0}")]
    Locked(&'static str),
    /// 412 `CONFLICT-0002`: `If-Match` names a version that is no longer current.
    #[error(
        "someone changed this since you loaded it: reload, reapply your change, and send the new ETag in If-Match"
    )]
    PreconditionFailed,
    /// 428 `CONFLICT-0003`: this change needs `If-Match` with the version it was made against.
    #[error("send If-Match with the ETag of the version you edited")]
    PreconditionRequired,
    /// 410 `GONE`: the object was deleted (its history stays available to those allowed).
    #[error("this {0} was deleted")]
    Gone(&'static str),
    /// 503 `TIMEOUT`: the server did not answer within the request timeout (the request was
    /// abandoned; a change it had not committed was rolled back).
    #[error(
        "the server could not finish this request within its time limit ({0} s); try again in a moment (after a change, reload first to see whether it was saved)"
    )]
    Timeout(u64),
    /// 502 `AI-0001`: the AI provider failed (error, truncated reply, rate limit); the
    /// assistant turn was recorded and nothing else was written.
    #[error("{0}")]
    AiFailed(&'static str),
    /// 409 `AI-0002`: the provider gate refused the AI provider (no BAA, training not
    /// disabled, disabled, or not local); nothing was sent, and the refusal was recorded.
    #[error("{0}")]
    AiRefused(&'static str),
    /// 503 `AI-0003`: no AI provider is available for this call (none registered for the
    /// practice and no local default, or the local default not ready); nothing changed.
    #[error("{0}")]
    AiUnavailable(&'static str),
    /// 503 `EMERGENCY-0001`: the installation or the practice is in emergency mode
    /// (read-only, req CP-03): nothing was changed; reads keep working.
    #[error(
        "emergency mode: records can be read but not changed until the practice owner or the operator ends it; nothing was changed"
    )]
    EmergencyMode,
    /// 503 `PAY-0001`: the payment this booking needs could not be started (no processor
    /// configured, refused by the outbound scanner, or the processor failed); nothing was
    /// booked.
    #[error(
        "online payment could not be started, so nothing was booked; try again later or call the practice"
    )]
    PaymentUnavailable,
    /// 500 `INTERNAL`: logged with its cause; the body says only "internal error".
    #[error("internal error")]
    Internal(String),
}

/// The JSON error payload, kept on the response so the request-frame middleware can add the
/// request id.
#[derive(Clone, Debug)]
pub(crate) struct ErrorPayload {
    pub code: &'static str,
    pub message: String,
}

impl AppError {
    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated
            | AppError::BadCredentials
            | AppError::MfaRequired
            | AppError::StepUpRequired
            | AppError::SecondFactorFailed => StatusCode::UNAUTHORIZED,
            AppError::Forbidden | AppError::PasskeyRequired => StatusCode::FORBIDDEN,
            AppError::Throttled(_) | AppError::RateLimited(..) => StatusCode::TOO_MANY_REQUESTS,
            AppError::PasswordRejected(_)
            | AppError::UnknownReference(_)
            | AppError::BadAudio(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Invalid(_) | AppError::BadJson(_) => StatusCode::BAD_REQUEST,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Conflict(_) | AppError::Locked(_) | AppError::AiRefused(_) => {
                StatusCode::CONFLICT
            }
            AppError::AiFailed(_) => StatusCode::BAD_GATEWAY,
            AppError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            AppError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            AppError::Gone(_) => StatusCode::GONE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Timeout(_)
            | AppError::AiUnavailable(_)
            | AppError::EmergencyMode
            | AppError::PaymentUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "AUTH-0001",
            AppError::BadCredentials => "AUTH-0002",
            AppError::MfaRequired => "AUTH-0003",
            AppError::StepUpRequired => "AUTH-0004",
            AppError::SecondFactorFailed => "AUTH-0005",
            AppError::PasskeyRequired => "AUTH-0006",
            AppError::Throttled(_) => "AUTH-0007",
            AppError::RateLimited(..) => "RATE-0001",
            AppError::PasswordRejected(_) => "AUTH-0008",
            AppError::Forbidden => "AUTHZ-0001",
            AppError::NotFound(_) => "NOT-FOUND",
            AppError::Invalid(_) => "INPUT-0001",
            AppError::BadJson(_) => "INPUT-0002",
            AppError::TooLarge => "INPUT-0003",
            AppError::UnknownReference(_) => "INPUT-0005",
            AppError::BadAudio(_) => "INPUT-0006",
            AppError::UnsupportedMediaType => "INPUT-0004",
            AppError::Conflict(_) => "CONFLICT-0001",
            AppError::Locked(_) => "NOTE-0001",
            AppError::PreconditionFailed => "CONFLICT-0002",
            AppError::PreconditionRequired => "CONFLICT-0003",
            AppError::Gone(_) => "GONE",
            AppError::Internal(_) => "INTERNAL",
            AppError::Timeout(_) => "TIMEOUT",
            AppError::AiFailed(_) => "AI-0001",
            AppError::AiRefused(_) => "AI-0002",
            AppError::AiUnavailable(_) => "AI-0003",
            AppError::EmergencyMode => "EMERGENCY-0001",
            AppError::PaymentUnavailable => "PAY-0001",
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::Internal(cause) => tracing::error!(%cause, "request failed"),
            AppError::Timeout(secs) => {
                tracing::warn!(
                    timeout_secs = secs,
                    "request abandoned: not answered in time"
                );
            }
            _ => {}
        }
        let mut res = self.status().into_response();
        if let AppError::Throttled(secs) | AppError::RateLimited(_, secs) = &self
            && let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        res.extensions_mut().insert(ErrorPayload {
            code: self.code(),
            message: self.to_string(),
        });
        res
    }
}

impl From<domain::values::ValueError> for AppError {
    fn from(e: domain::values::ValueError) -> Self {
        AppError::Invalid(e.to_string())
    }
}

/// Human messages for the constraints code matches on.
fn conflict_message(constraint: &str) -> String {
    match constraint {
        "membership_pkey" => "that person is already a member of this practice".into(),
        "last_owner" => "a practice must keep at least one owner: make someone else owner first".into(),
        "appointment_patient_fkey" => "no such patient in this practice".into(),
        "appointment_clinician_fkey" => {
            "the clinician must be a member of this practice; reassign or cancel their appointments before removing them".into()
        }
        "clinical_note_patient_fkey" => "this patient has clinical notes, which are kept; the patient cannot be deleted".into(),
        "perio_exam_patient_fkey" => "this patient has perio exams, which are kept; the patient cannot be deleted".into(),
        "recording_consent_active_idx" => {
            "this visit has a recording consent in force already".into()
        }
        "capture_open_visit_idx" => {
            "this visit is being recorded already: pause, resume or stop that capture".into()
        }
        "app_user_active_email_key" => "an active account already uses that email".into(),
        "invitation_limit" => format!(
            "this practice has {} pending invitations; revoke some before inviting more",
            store::invitations::MAX_PENDING
        ),
        "waitlist_not_waiting" => "this client is no longer waiting on the waitlist".into(),
        _ => "the change conflicts with existing data".into(),
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unauthenticated => AppError::Unauthenticated,
            StoreError::NotMember => AppError::NotFound("practice"),
            StoreError::Forbidden => AppError::Forbidden,
            StoreError::Conflict(c) => AppError::Conflict(conflict_message(&c)),
            StoreError::Invalid(c) if c == "assistant_turn_unknown" => {
                AppError::NotFound("assistant turn")
            }
            StoreError::Invalid(c) => AppError::Invalid(match c.as_str() {
                "appointment_time_range" => {
                    "ends_at must be after starts_at, at most 24 hours later".into()
                }
                "membership_not_support" => {
                    "support staff cannot be members of a practice; approve a support grant instead"
                        .into()
                }
                f if [
                    "booking_settings.",
                    "service.",
                    "client.",
                    "hours",
                    "waitlist.",
                ]
                .iter()
                .any(|p| f.starts_with(p)) =>
                {
                    format!("{f} is not valid")
                }
                _ => "a value is out of range".into(),
            }),
            other => AppError::Internal(other.to_string()),
        }
    }
}
