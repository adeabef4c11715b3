//! A stand-in for the Vault / OpenBao transit secrets engine, for tests only.
//!
//! **Why a stand-in:** no `vault` or `bao` binary could be installed on the build machine
//! (Debian has no package; the `PyPI` package `vault-dev` and the npm package `vault-bin` only
//! download the vendor's release archives, and that host was unreachable; no container runtime
//! ran). So
//! this server implements the HTTP contract the provider uses, modelled on
//! `builtin/logical/transit` and `sdk/helper/keysutil` of OpenBao:
//!
//! - `GET/POST /v1/transit/keys/{name}` (read / create with `type`, `derived`),
//!   `POST /v1/transit/keys/{name}/rotate`, `POST /v1/transit/keys/{name}/config`
//!   (`min_decryption_version`, not above the latest version);
//! - `POST /v1/transit/{encrypt,decrypt,rewrap}/{name}` with base64 `plaintext` / `context`;
//! - ciphertexts `vault:v<N>:base64(nonce ‖ AES-256-GCM ciphertext ‖ tag)`;
//! - derived keys: the per-request key is HKDF-SHA256(version key, no salt, info = context);
//!   a derived key without `context` is refused with Vault's message;
//! - errors as `{"errors": [...]}` with Vault's texts: `permission denied` (403, wrong
//!   `X-Vault-Token`), `invalid ciphertext: unable to decrypt`, `ciphertext or signature
//!   version is disallowed by policy (too old)`, `invalid ciphertext: version is too new`.
//!
//! Not modelled: key upsert on encrypt, convergent encryption, batch requests, other key
//! types, namespaces, leases, auth methods. Passing these tests shows the provider speaks this
//! contract; it does not prove a real server answers identically.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, rand};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub const TOKEN: &str = "test-root-token";

#[derive(Clone)]
pub struct TransitKey {
    pub versions: Vec<[u8; 32]>,
    pub min_decryption_version: usize,
    pub derived: bool,
}

#[derive(Clone, Default)]
pub struct Standin {
    pub keys: Arc<Mutex<HashMap<String, TransitKey>>>,
    pub requests: Arc<Mutex<Vec<String>>>,
}

fn err(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "errors": [msg] }))).into_response()
}

fn data(v: Value) -> Response {
    (
        StatusCode::OK,
        Json(json!({ "request_id": "standin", "data": v })),
    )
        .into_response()
}

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::fill(&mut k).unwrap();
    k
}

struct OkmLen;
impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        32
    }
}

fn aead_for(key: &TransitKey, version: usize, context: &[u8]) -> LessSafeKey {
    let base = key.versions[version - 1];
    let material = if key.derived {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(&base);
        let mut out = [0u8; 32];
        prk.expand(&[context], OkmLen)
            .unwrap()
            .fill(&mut out)
            .unwrap();
        out
    } else {
        base
    };
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &material).unwrap())
}

fn key_info(name: &str, k: &TransitKey) -> Value {
    let keys: serde_json::Map<String, Value> = (1..=k.versions.len())
        .map(|v| (v.to_string(), json!(1_700_000_000)))
        .collect();
    json!({
        "name": name,
        "type": "aes256-gcm96",
        "derived": k.derived,
        "keys": keys,
        "latest_version": k.versions.len(),
        "min_decryption_version": k.min_decryption_version,
        "min_encryption_version": 0,
        "supports_encryption": true,
        "supports_decryption": true,
        "supports_derivation": true,
    })
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("x-vault-token").and_then(|v| v.to_str().ok()) == Some(TOKEN)
}

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

const DERIVED_MSG: &str = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";

fn context_of(k: &TransitKey, body: &Value) -> Result<Vec<u8>, Response> {
    match (k.derived, field(body, "context")) {
        (true, None) => Err(err(StatusCode::BAD_REQUEST, DERIVED_MSG)),
        (true, Some(c)) => STANDARD
            .decode(c)
            .map_err(|_| err(StatusCode::BAD_REQUEST, "failed to base64-decode context")),
        (false, Some(_)) => Err(err(
            StatusCode::BAD_REQUEST,
            "key was not created as a derived key, but a context was provided",
        )),
        (false, None) => Ok(Vec::new()),
    }
}

fn seal(k: &TransitKey, context: &[u8], plaintext: &[u8]) -> String {
    let v = k.versions.len();
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce).unwrap();
    let mut buf = plaintext.to_vec();
    aead_for(k, v, context)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .unwrap();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    format!("vault:v{v}:{}", STANDARD.encode(out))
}

fn open(k: &TransitKey, context: &[u8], ciphertext: &str) -> Result<Vec<u8>, Response> {
    let bad = |m: &str| err(StatusCode::BAD_REQUEST, m);
    let rest = ciphertext
        .strip_prefix("vault:v")
        .ok_or_else(|| bad("invalid ciphertext: no prefix"))?;
    let (digits, b64) = rest
        .split_once(':')
        .ok_or_else(|| bad("invalid ciphertext: wrong number of fields"))?;
    let v: usize = digits
        .parse()
        .map_err(|_| bad("invalid ciphertext: version number could not be decoded"))?;
    if v > k.versions.len() {
        return Err(bad("invalid ciphertext: version is too new"));
    }
    if v == 0 || v < k.min_decryption_version {
        return Err(bad(
            "ciphertext or signature version is disallowed by policy (too old)",
        ));
    }
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| bad("invalid ciphertext: could not decode base64"))?;
    if raw.len() < NONCE_LEN {
        return Err(bad("invalid ciphertext length"));
    }
    let (nonce, body) = raw.split_at(NONCE_LEN);
    let mut buf = body.to_vec();
    let plain = aead_for(k, v, context)
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).unwrap(),
            Aad::empty(),
            &mut buf,
        )
        .map_err(|_| bad("invalid ciphertext: unable to decrypt"))?;
    Ok(plain.to_vec())
}

async fn read_key(State(s): State<Standin>, h: HeaderMap, Path(name): Path<String>) -> Response {
    if !authorized(&h) {
        return err(StatusCode::FORBIDDEN, "permission denied");
    }
    match s.keys.lock().unwrap().get(&name) {
        Some(k) => data(key_info(&name, k)),
        None => (StatusCode::NOT_FOUND, Json(json!({ "errors": [] }))).into_response(),
    }
}

async fn create_key(
    State(s): State<Standin>,
    h: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&h) {
        return err(StatusCode::FORBIDDEN, "permission denied");
    }
    if body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("aes256-gcm96")
        != "aes256-gcm96"
    {
        return err(
            StatusCode::BAD_REQUEST,
            "the stand-in only models aes256-gcm96 keys",
        );
    }
    let derived = body
        .get("derived")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    s.keys
        .lock()
        .unwrap()
        .entry(name)
        .or_insert_with(|| TransitKey {
            versions: vec![random_key()],
            min_decryption_version: 1,
            derived,
        });
    StatusCode::NO_CONTENT.into_response()
}

async fn key_action(
    State(s): State<Standin>,
    h: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Response {
    if !authorized(&h) {
        return err(StatusCode::FORBIDDEN, "permission denied");
    }
    let mut keys = s.keys.lock().unwrap();
    let Some(k) = keys.get_mut(&name) else {
        return err(StatusCode::BAD_REQUEST, "key not found");
    };
    match action.as_str() {
        "rotate" => {
            k.versions.push(random_key());
            data(key_info(&name, k))
        }
        "config" => {
            let body = body.map_or(Value::Null, |Json(b)| b);
            if let Some(min) = body.get("min_decryption_version").and_then(Value::as_u64) {
                let min = min as usize;
                if min > k.versions.len() {
                    return err(
                        StatusCode::BAD_REQUEST,
                        "cannot set min decryption version of 3, latest key version is 2",
                    );
                }
                k.min_decryption_version = min.max(1);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn crypt(
    State(s): State<Standin>,
    h: HeaderMap,
    Path((op, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    s.requests.lock().unwrap().push(format!("{op}/{name}"));
    if !authorized(&h) {
        return err(StatusCode::FORBIDDEN, "permission denied");
    }
    let keys = s.keys.lock().unwrap();
    let Some(k) = keys.get(&name) else {
        return err(StatusCode::BAD_REQUEST, "encryption key not found");
    };
    let context = match context_of(k, &body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match op.as_str() {
        "encrypt" => {
            let Some(pt) = field(&body, "plaintext").and_then(|p| STANDARD.decode(p).ok()) else {
                return err(StatusCode::BAD_REQUEST, "failed to base64-decode plaintext");
            };
            data(json!({ "ciphertext": seal(k, &context, &pt), "key_version": k.versions.len() }))
        }
        "decrypt" | "rewrap" => {
            let Some(ct) = field(&body, "ciphertext") else {
                return err(StatusCode::BAD_REQUEST, "missing ciphertext to decrypt");
            };
            match open(k, &context, ct) {
                Err(r) => r,
                Ok(pt) if op == "decrypt" => data(json!({ "plaintext": STANDARD.encode(pt) })),
                Ok(pt) => data(
                    json!({ "ciphertext": seal(k, &context, &pt), "key_version": k.versions.len() }),
                ),
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Starts the stand-in on a free loopback port (bound to port 0, so no fixed port).
pub async fn start() -> (SocketAddr, Standin) {
    let state = Standin::default();
    let app = Router::new()
        .route("/v1/transit/keys/{name}", get(read_key).post(create_key))
        .route("/v1/transit/keys/{name}/{action}", post(key_action))
        .route("/v1/transit/{op}/{name}", post(crypt))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, state)
}
