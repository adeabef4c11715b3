//! Extractors: the request id, the signed-in user ([`Session`]), the signed-in member of the
//! practice in the path holding a privilege ([`Ctx`]), and JSON / path / query extractors
//! whose errors never echo submitted values.

use std::marker::PhantomData;

use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header::{self, AUTHORIZATION, CONTENT_TYPE, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use domain::{PracticeId, Privilege, RequestId, RoleSet, UserId};
use serde::de::DeserializeOwned;
use store::{Entry, SessionAuth, TenantTx, TokenHash, UserTx};

use crate::{AppError, AppState};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "__Host-chartroom_session";

/// The request id assigned by the request-frame middleware (a fresh UUIDv7 per request; any
/// id sent by the client is ignored).
#[derive(Clone, Copy, Debug)]
pub struct ReqId(pub RequestId);

impl<S: Send + Sync> FromRequestParts<S> for ReqId {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        Ok(parts
            .extensions
            .get::<ReqId>()
            .copied()
            .unwrap_or(ReqId(RequestId::new())))
    }
}

/// Whether a request comes from a page of this origin: by Fetch Metadata (`Sec-Fetch-Site:
/// same-origin`, sent by every current browser), or when that header is absent, by an
/// `Origin` whose host is the request's `Host`. A request with neither is refused: the web
/// face is for browsers (scripts use the API with a bearer token).
#[must_use]
pub fn same_origin_request(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(|o| {
            o.strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
        })
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// The session token presented with the request: `Authorization: Bearer …` or the session
/// cookie. `None` when absent. The cookie counts for a request that changes state only when
/// it comes from a page of this origin ([`same_origin_request`]): a browser sends the cookie
/// (`SameSite=Strict`) with requests from sibling sites too, and no page of Chartroom posts to
/// the API with it; scripts use a bearer token.
pub(crate) fn presented_token(parts: &Parts) -> Option<&str> {
    if let Some(v) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v.strip_prefix("Bearer ").map(str::trim);
    }
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !same_origin_request(&parts.headers) {
        return None;
    }
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
}

/// A request with a valid session, outside any practice. The session may be password-only:
/// routes that need a second factor check [`Session::require_mfa`] (or use [`MfaSession`]).
#[derive(Debug)]
pub struct Session {
    /// The transaction acting as the signed-in user.
    pub tx: UserTx,
    /// The presented token's hash (for logout and rotation).
    pub token: TokenHash,
    /// How the session was authenticated.
    pub auth: SessionAuth,
    /// The request id.
    pub request_id: RequestId,
}

impl Session {
    /// 401 `AUTH-0003` unless a second factor was presented on this session.
    pub fn require_mfa(&self) -> Result<(), AppError> {
        if self.auth.mfa_done() {
            Ok(())
        } else {
            Err(AppError::MfaRequired)
        }
    }

    /// 401 `AUTH-0004` unless a second factor was presented within the step-up window.
    pub fn require_step_up(&self, state: &AppState) -> Result<(), AppError> {
        self.require_mfa()?;
        if self
            .auth
            .fresh(state.clock.now(), state.identity.step_up_window)
        {
            Ok(())
        } else {
            Err(AppError::StepUpRequired)
        }
    }
}

/// A session whose second factor is done (401 `AUTH-0003` otherwise).
#[derive(Debug)]
pub struct MfaSession(pub Session);

impl FromRequestParts<AppState> for MfaSession {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let s = session(parts, state).await?;
        s.require_mfa()?;
        Ok(Self(s))
    }
}

/// The client's address and user agent ([`crate::identity::Client`]). The address is the
/// connection's peer, or with `--behind-proxy` the last `X-Forwarded-For` hop (the trusted
/// proxy's view of the client).
impl FromRequestParts<AppState> for crate::identity::Client {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = state
            .identity
            .trust_forwarded_for
            .then(|| {
                parts
                    .headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit(',').next())
                    .and_then(|v| v.trim().parse().ok())
            })
            .flatten();
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| {
                ua.chars()
                    .filter(|c| c.is_ascii_graphic() || *c == ' ')
                    .take(200)
                    .collect()
            });
        Ok(Self {
            ip: forwarded.or(peer),
            user_agent,
        })
    }
}

/// A client of the public client pages (online booking, intake and manage links: no
/// session), admitted by the per-address limit ([`crate::identity::Identity::client_pages`],
/// the sign-in throttle's mechanism): `429` with `Retry-After` (`AUTH-0007`) while the address
/// waits. Every request counts. The web's public pages pass the same check as a layer
/// ([`admit_public_client`]).
#[derive(Debug, Clone)]
pub struct PublicClient(pub crate::identity::Client);

impl FromRequestParts<AppState> for PublicClient {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        admit_public_client(parts, state).await.map(Self)
    }
}

/// The public client pages' per-address limit for a request's `parts`: its client, or
/// [`AppError::Throttled`].
///
/// # Errors
/// [`AppError::Throttled`] while the address waits.
pub async fn admit_public_client(
    parts: &mut Parts,
    state: &AppState,
) -> Result<crate::identity::Client, AppError> {
    let client = crate::identity::Client::from_request_parts(parts, state).await?;
    state
        .identity
        .client_pages
        .admit_address(&state.store, client.ip, state.clock.now())
        .await?;
    Ok(client)
}

async fn session(parts: &Parts, state: &AppState) -> Result<Session, AppError> {
    let request_id = parts
        .extensions
        .get::<ReqId>()
        .map_or_else(RequestId::new, |r| r.0);
    let token = presented_token(parts)
        .and_then(TokenHash::from_presented)
        .ok_or(AppError::Unauthenticated)?;
    let (tx, auth) = state
        .store
        .authenticate(&token, state.clock.now(), &state.sessions, request_id)
        .await?;
    Ok(Session {
        tx,
        token,
        auth,
        request_id,
    })
}

impl FromRequestParts<AppState> for Session {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        session(parts, state).await
    }
}

/// A privilege a route needs, as a type, so the handler signature states it.
pub trait Guard: Send + Sync + 'static {
    /// The privilege.
    const PRIVILEGE: Privilege;
    /// Whether a change under this guard goes through in emergency mode (req CP-03): only
    /// the switch that ends it. Every other change answers `503 EMERGENCY-0001`.
    const WRITES_IN_EMERGENCY: bool = false;
    /// Whether `roles` pass this guard (by default: hold [`Guard::PRIVILEGE`]).
    #[must_use]
    fn allows(roles: domain::RoleSet) -> bool {
        Self::PRIVILEGE.allows(roles)
    }
}

/// Any member of the practice.
#[derive(Debug)]
pub struct AnyMember;
impl Guard for AnyMember {
    const PRIVILEGE: Privilege = Privilege::Member;
}
/// Clinician or reception: demographics, contact details, scheduling.
#[derive(Debug)]
pub struct Scheduling;
impl Guard for Scheduling {
    const PRIVILEGE: Privilege = Privilege::Scheduling;
}
/// Clinician: clinical content.
#[derive(Debug)]
pub struct Clinical;
impl Guard for Clinical {
    const PRIVILEGE: Privilege = Privilege::Clinical;
}
/// Owner or admin: memberships and settings.
#[derive(Debug)]
pub struct Manage;
impl Guard for Manage {
    const PRIVILEGE: Privilege = Privilege::Manage;
}
/// An owner of the practice, also in emergency mode: switching the practice's emergency mode
/// (req CP-03).
#[derive(Debug)]
pub struct EmergencySwitch;
impl Guard for EmergencySwitch {
    const PRIVILEGE: Privilege = Privilege::Manage;
    const WRITES_IN_EMERGENCY: bool = true;
    fn allows(roles: domain::RoleSet) -> bool {
        roles.contains(domain::Role::Owner)
    }
}
/// Clinician, owner or admin: reading the AI provider registry (clinicians use the
/// providers, owners and admins manage them; reception has no business with them).
#[derive(Debug)]
pub struct ClinicalOrManage;
impl Guard for ClinicalOrManage {
    const PRIVILEGE: Privilege = Privilege::Member;
    fn allows(roles: domain::RoleSet) -> bool {
        Privilege::Clinical.allows(roles) || Privilege::Manage.allows(roles)
    }
}

/// Reception, owner or admin: the outbox (the states of messages to clients; never a contact
/// or a body). Clinicians have no business with it.
#[derive(Debug)]
pub struct FrontDeskOrManage;
impl Guard for FrontDeskOrManage {
    const PRIVILEGE: Privilege = Privilege::Member;
    fn allows(roles: domain::RoleSet) -> bool {
        roles.contains(domain::Role::Reception) || Privilege::Manage.allows(roles)
    }
}

/// A signed-in member of the practice named by the `{practice_id}` path segment, holding the
/// privilege `G`, with the tenant transaction to act in. Checks, in order: a valid session
/// (else 401), a second factor done on it (else 401 `AUTH-0003`, req AU-01), membership of
/// that practice (else 404, also for a malformed or unknown practice id), the privilege (else
/// 403), and a passkey on the session when the practice requires one of its owners and admins
/// (else 403 `AUTH-0006`).
#[derive(Debug)]
pub struct Ctx<G: Guard> {
    /// The tenant transaction (practice and actor set).
    pub tx: TenantTx,
    /// The actor.
    pub actor: UserId,
    /// The actor's roles in the practice.
    pub roles: RoleSet,
    /// How the session was authenticated.
    pub auth: SessionAuth,
    _guard: PhantomData<G>,
}

impl<G: Guard> Ctx<G> {
    /// 401 `AUTH-0004` unless a second factor was presented within the step-up window
    /// (signing notes, granting roles, approving support access).
    pub fn require_step_up(&self, state: &AppState) -> Result<(), AppError> {
        if self
            .auth
            .fresh(state.clock.now(), state.identity.step_up_window)
        {
            Ok(())
        } else {
            Err(AppError::StepUpRequired)
        }
    }
}

impl<G: Guard> FromRequestParts<AppState> for Ctx<G> {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let request_id = parts
            .extensions
            .get::<ReqId>()
            .map_or_else(RequestId::new, |r| r.0);
        let token = presented_token(parts)
            .and_then(TokenHash::from_presented)
            .ok_or(AppError::Unauthenticated)?;
        let practice: Option<PracticeId> = RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(k, _)| *k == "practice_id")
                    .and_then(|(_, v)| v.parse().ok())
            });
        let Some(practice) = practice else {
            // Still 401 for a bad session; a malformed practice id is simply unknown.
            session(parts, state).await?;
            return Err(AppError::NotFound("practice"));
        };
        let entry = match state
            .store
            .enter_practice(
                &token,
                practice,
                state.clock.now(),
                &state.sessions,
                request_id,
                // A GET or HEAD only reads: a read-only transaction, its audit events made
                // durable by the group-commit writer before the response leaves.
                if matches!(
                    parts.method,
                    axum::http::Method::GET | axum::http::Method::HEAD
                ) {
                    store::Access::Read
                } else {
                    store::Access::Write
                },
            )
            .await
        {
            Ok(entry) => entry,
            // An unknown practice id is as unknown as one the caller does not belong to.
            Err(store::StoreError::Invalid(_)) => return Err(AppError::NotFound("practice")),
            Err(e) => return Err(e.into()),
        };
        let (tx, auth) = match entry {
            Entry::Member(tx, auth) => (tx, auth),
            Entry::NotMember(user, auth) => {
                if !auth.mfa_done() {
                    return Err(AppError::MfaRequired);
                }
                deny(parts, state, practice, user, "not_member", request_id).await;
                return Err(AppError::NotFound("practice"));
            }
        };
        if !auth.mfa_done() {
            return Err(AppError::MfaRequired);
        }
        let roles = tx.roles();
        // Vendor support access is read-only, whatever its scope.
        if tx.support_grant().is_some()
            && !matches!(
                parts.method,
                axum::http::Method::GET | axum::http::Method::HEAD
            )
        {
            let user = tx.actor();
            drop(tx);
            deny(
                parts,
                state,
                practice,
                user,
                "support_read_only",
                request_id,
            )
            .await;
            return Err(AppError::Forbidden);
        }
        if !G::allows(roles) {
            let user = tx.actor();
            drop(tx);
            deny(parts, state, practice, user, "role", request_id).await;
            return Err(AppError::Forbidden);
        }
        if auth.practice_requires_passkey
            && roles.is_manager()
            && !auth.used(store::AuthMethod::Passkey)
        {
            drop(tx);
            return Err(AppError::PasskeyRequired);
        }
        let mut tx = tx;
        refuse_changes_in_emergency::<G>(&parts.method, &mut tx).await?;
        Ok(Ctx {
            actor: tx.actor(),
            roles,
            tx,
            auth,
            _guard: PhantomData,
        })
    }
}

/// Emergency mode (req CP-03): reads go on; a change is refused (`503 EMERGENCY-0001`)
/// before its handler runs, so nothing is written, except under a guard that
/// [writes in emergency](Guard::WRITES_IN_EMERGENCY) (the switch that ends it).
async fn refuse_changes_in_emergency<G: Guard>(
    method: &axum::http::Method,
    tx: &mut TenantTx,
) -> Result<(), AppError> {
    if G::WRITES_IN_EMERGENCY
        || matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD)
    {
        return Ok(());
    }
    if store::emergency::state(tx).await?.is_on() {
        Err(AppError::EmergencyMode)
    } else {
        Ok(())
    }
}

/// Records a denied attempt (req AUD-01) on its own transaction: who, which practice, the
/// patient id the path names (as requested; the event names it as its patient only if it is
/// one of this practice's), the route template and the reason — never values.
async fn deny(
    parts: &mut Parts,
    state: &AppState,
    practice: PracticeId,
    actor: UserId,
    reason: &'static str,
    request: RequestId,
) {
    let route = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "?".to_owned(), |p| p.as_str().to_owned());
    let requested_patient = RawPathParams::from_request_parts(parts, state)
        .await
        .ok()
        .and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == "patient_id")
                .and_then(|(_, v)| v.parse().ok())
        });
    let denial = store::audit::Denial {
        practice,
        actor,
        requested_patient,
        reason,
        route: denied_route(&parts.method, &route),
        request,
        at: state.clock.now(),
    };
    if let Err(e) = state.store.audit_denied(&denial).await {
        tracing::error!(error = %e, %request, "could not record a denied attempt");
    }
}

/// A denied request's method and route template as an audit detail value (`[A-Za-z0-9._:-]`,
/// no ids): `GET /api/v1/practices/{practice_id}/patients` becomes
/// `GET:api.v1.practices.:practice_id.patients`.
fn denied_route(method: &axum::http::Method, template: &str) -> String {
    let path: Vec<String> = template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(param) => format!(":{param}"),
                None => s.to_owned(),
            },
        )
        .collect();
    audit::event::detail_value_lossy(&format!("{method}:{}", path.join(".")))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Path parameters; a malformed id is `400` with a message naming the parameter.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|_| AppError::Invalid("an id in the path is not a valid UUID".into()))
    }
}

/// Query parameters; errors name the problem, not the value.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|_| {
                AppError::Invalid("a query parameter is unknown or has the wrong format".into())
            })
    }
}

/// A JSON body. Requires `Content-Type: application/json`; bodies over
/// [`crate::MAX_BODY_BYTES`] are `413`; unknown fields are refused where the type says so
/// (`deny_unknown_fields`); errors name the field path and the kind of problem, never a value.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;
    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| AppError::TooLarge)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, turning errors into messages without values. Every request body of
/// the API is a JSON object: anything else is refused here, before serde would read an array
/// as a struct's fields by position (`[null, null]` as an update that names no field).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AppError::BadJson(
            "the body must be a JSON object".to_owned(),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!(
                    "the body is not valid JSON (line {}, column {})",
                    inner.line(),
                    inner.column()
                )
            }
            serde_json::error::Category::Io => "the body could not be read".to_owned(),
            serde_json::error::Category::Data => {
                let text = inner.to_string();
                if text.starts_with("unknown field") {
                    format!("unknown field `{}`", sanitize(&path))
                } else if let Some(rest) = text.strip_prefix("missing field `") {
                    let name = rest.split('`').next().unwrap_or("");
                    format!("missing field `{}`", sanitize(name))
                } else {
                    format!(
                        "field `{}` has the wrong type or an invalid value",
                        sanitize(&path)
                    )
                }
            }
        };
        AppError::BadJson(msg)
    })
}

/// Keeps field paths printable and short (they come from the client).
fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::denied_route;
    use axum::http::Method;

    // issue 15.1 — a denied route is recorded in the characters audit details allow.
    #[test]
    fn denied_routes_are_audit_detail_values() {
        assert_eq!(
            denied_route(
                &Method::GET,
                "/api/v1/practices/{practice_id}/patients/{patient_id}"
            ),
            "GET:api.v1.practices.:practice_id.patients.:patient_id"
        );
        assert_eq!(denied_route(&Method::POST, "?"), "POST:_");
    }
}
