//! The scribe's capture path over the real HTTPS server on real PostgreSQL (issue 18, items
//! 1–3): recording consent per visit, captures with their state on the server, audio chunks
//! into encrypted blobs, consent withdrawal, the longest capture, the abandoned sweep and the
//! audio retention job — with the authorization matrix of every route and the audit rows.

use chrono::Duration;
use domain::Clock as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApp, TestDb, World};

use crate::util::call;

/// A WAV file of `ms` milliseconds of a 440 Hz tone, 16 kHz mono 16-bit PCM, `seed` varying
/// the amplitude so chunks differ.
#[allow(
    clippy::cast_possible_truncation,
    reason = "samples are within ±9000 by construction"
)]
pub(crate) fn tone_wav(ms: u32, seed: u16) -> Vec<u8> {
    let samples = 16 * ms;
    let mut w = Vec::with_capacity(44 + samples as usize * 2);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&32_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(samples * 2).to_le_bytes());
    let amp = 8000.0 + f64::from(seed % 100) * 10.0;
    for i in 0..samples {
        let v = (f64::from(i) * 2.0 * std::f64::consts::PI * 440.0 / 16_000.0).sin() * amp;
        w.extend_from_slice(&(v as i16).to_le_bytes());
    }
    w
}

pub(crate) struct Fx {
    pub db: TestDb,
    pub w: World,
    pub app: TestApp,
    pub clin: String,
}

pub(crate) async fn fx() -> Fx {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let clin = app.token(w.a.user("clinician")).await;
    Fx { db, w, app, clin }
}

impl Fx {
    fn base(&self) -> String {
        format!("/api/v1/practices/{}", self.w.a.id)
    }

    /// A new visit of A's patient by A's clinician.
    pub async fn visit(&self) -> String {
        let (s, v) = call(
            &self.app,
            Method::POST,
            &format!("{}/patients/{}/visits", self.base(), self.w.a.patient),
            Some(&self.clin),
            Some(&json!({})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["visit_id"].as_str().unwrap().to_owned()
    }

    async fn consent(&self, visit: &str) -> String {
        let (s, v) = self
            .post(
                &format!("/visits/{visit}/consents"),
                Some(&json!({"consented_by": "patient", "method": "verbal"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["consent_id"].as_str().unwrap().to_owned()
    }

    async fn start(&self, visit: &str) -> String {
        let (s, v) = self.post(&format!("/visits/{visit}/captures"), None).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["capture_id"].as_str().unwrap().to_owned()
    }

    async fn post(&self, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        call(
            &self.app,
            Method::POST,
            &format!("{}{path}", self.base()),
            Some(&self.clin),
            body,
        )
        .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        call(
            &self.app,
            Method::GET,
            &format!("{}{path}", self.base()),
            Some(&self.clin),
            None,
        )
        .await
    }

    pub async fn chunk(&self, capture: &str, seq: i64, wav: &[u8]) -> (StatusCode, Value) {
        put_chunk(&self.app, &self.base(), &self.clin, capture, seq, wav).await
    }

    async fn rows(&self, sql: &str, id: &str) -> i64 {
        let mut su = self.db.superuser_unsafe().await;
        sqlx::query_scalar(sql)
            .bind(uuid::Uuid::parse_str(id).unwrap())
            .fetch_one(&mut su)
            .await
            .unwrap()
    }

    /// The audit actions naming `object`, in order.
    async fn actions_on(&self, object: &str) -> Vec<(String, Option<uuid::Uuid>, Value)> {
        let mut su = self.db.superuser_unsafe().await;
        sqlx::query_as(
            "select action, patient_id, coalesce(details, 'null'::jsonb) from audit_event
              where practice_id = $1 and object_id = $2 order by occurred_at, event_id",
        )
        .bind(self.w.a.id)
        .bind(uuid::Uuid::parse_str(object).unwrap())
        .fetch_all(&mut su)
        .await
        .unwrap()
    }
}

pub(crate) async fn put_chunk(
    app: &TestApp,
    base: &str,
    token: &str,
    capture: &str,
    seq: i64,
    wav: &[u8],
) -> (StatusCode, Value) {
    let res = app
        .http
        .put(app.url(&format!("{base}/captures/{capture}/chunks/{seq}")))
        .bearer_auth(token)
        .header("content-type", "audio/wav")
        .body(wav.to_vec())
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn actions(rows: &[(String, Option<uuid::Uuid>, Value)]) -> Vec<&str> {
    rows.iter().map(|r| r.0.as_str()).collect()
}

// req: SCR-01 — a capture starts only under the visit's consent in force; the refusal is 409
// and changes nothing.
#[tokio::test]
async fn capture_without_consent_is_refused() {
    let f = fx().await;
    let visit = f.visit().await;
    let (s, v) = f.post(&format!("/visits/{visit}/captures"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "CONFLICT-0001");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("consent"),
        "{v}"
    );
    assert_eq!(
        f.rows("select count(*) from capture where visit_id = $1", &visit)
            .await,
        0
    );
    // With consent it starts; a second consent while one is in force is refused.
    let consent = f.consent(&visit).await;
    let (s, _) = f
        .post(
            &format!("/visits/{visit}/consents"),
            Some(&json!({"consented_by": "guardian", "method": "form"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let capture = f.start(&visit).await;
    let (s, _) = f.post(&format!("/visits/{visit}/captures"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "one open capture per visit");
    // Bad input: named fields, nothing changed.
    let (s, v) = f
        .post(
            &format!("/visits/{visit}/consents"),
            Some(&json!({"consented_by": "neighbour", "method": "verbal"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("consented_by")
    );
    let rows = f.actions_on(&consent).await;
    assert_eq!(actions(&rows), ["recording_consent.record"]);
    assert_eq!(rows[0].1, Some(f.w.a.patient.as_uuid()));
    assert_eq!(rows[0].2["consented_by"], "patient");
    assert_eq!(rows[0].2["consent_rule"], "all_party");
    assert_eq!(actions(&f.actions_on(&capture).await), ["capture.start"]);
}

// req: SCR-01 — a chunk upload after stop is refused; pause refuses chunks too, resume takes
// them again; every state change is audited.
#[tokio::test]
async fn chunks_follow_the_capture_state() {
    let f = fx().await;
    let visit = f.visit().await;
    f.consent(&visit).await;
    let capture = f.start(&visit).await;
    let (s, v) = f.chunk(&capture, 0, &tone_wav(5000, 0)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["duration_ms"], 5000);
    assert_eq!(v["offset_ms"], 0);
    assert_eq!(v["capture"]["chunks"], 1);
    // Out of order: a gap is refused with the next seq named.
    let (s, v) = f.chunk(&capture, 2, &tone_wav(1000, 2)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("next chunk is 1")
    );
    // Not WAV, wrong rate: 400, nothing stored.
    let (s, _) = f.chunk(&capture, 1, b"not audio at all").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let mut wrong = tone_wav(1000, 1);
    wrong[24..28].copy_from_slice(&44_100u32.to_le_bytes());
    let (s, v) = f.chunk(&capture, 1, &wrong).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Over 1 MiB: 413.
    let big = vec![0u8; store::capture::CHUNK_MAX_BYTES + 1];
    let (s, _) = f.chunk(&capture, 1, &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);

    let (s, v) = f.post(&format!("/captures/{capture}/pause"), None).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("paused")));
    let (s, _) = f.chunk(&capture, 1, &tone_wav(1000, 1)).await;
    assert_eq!(s, StatusCode::CONFLICT, "a paused capture takes no audio");
    let (s, _) = f.post(&format!("/captures/{capture}/pause"), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = f.post(&format!("/captures/{capture}/resume"), None).await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("live")));
    let (s, v) = f.chunk(&capture, 1, &tone_wav(1000, 1)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["offset_ms"], 5000);
    let (s, v) = f.post(&format!("/captures/{capture}/stop"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["state"], "stopped");
    assert_eq!(v["stop_reason"], "clinician");
    // The chunk after stop is refused, and nothing changed.
    let (s, v) = f.chunk(&capture, 2, &tone_wav(1000, 2)).await;
    assert_eq!(s, StatusCode::CONFLICT, "a chunk upload after stop refused");
    assert!(v["error"]["message"].as_str().unwrap().contains("stopped"));
    let (s, _) = f.post(&format!("/captures/{capture}/resume"), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, v) = f.get(&format!("/captures/{capture}")).await;
    assert_eq!(v["chunks"], 2);
    assert_eq!(
        f.rows(
            "select count(*) from capture_chunk where capture_id = $1",
            &capture
        )
        .await,
        2
    );
    let rows = f.actions_on(&capture).await;
    assert_eq!(
        actions(&rows),
        [
            "capture.start",
            "capture.chunk",
            "capture.pause",
            "capture.resume",
            "capture.chunk",
            "capture.stop",
            "capture.read"
        ]
    );
    for r in &rows {
        assert_eq!(r.1, Some(f.w.a.patient.as_uuid()), "{r:?}");
    }
    assert_eq!(rows[5].2["reason"], "clinician");
    assert_eq!(rows[1].2["seq"], 0);
}

// issue 18 — a resend of an accepted chunk (same bytes) is a no-op answered 200; different
// bytes under an accepted seq are refused. The audio is stored only encrypted and reads back
// through the store's public function.
#[tokio::test]
async fn resending_a_chunk_is_idempotent_and_audio_is_encrypted() {
    let f = fx().await;
    let visit = f.visit().await;
    f.consent(&visit).await;
    let capture = f.start(&visit).await;
    let wav = tone_wav(2000, 7);
    let (s, _) = f.chunk(&capture, 0, &wav).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = f.chunk(&capture, 0, &wav).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["repeat"], true);
    assert_eq!(v["capture"]["chunks"], 1);
    let (s, _) = f.chunk(&capture, 0, &tone_wav(2000, 8)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(
        f.rows(
            "select count(*) from capture_chunk where capture_id = $1",
            &capture
        )
        .await,
        1
    );
    // One blob, registered; its object on disk is not the WAV.
    let mut su = f.db.superuser_unsafe().await;
    let (blob, object, len): (uuid::Uuid, uuid::Uuid, i64) = sqlx::query_as(
        "select b.blob_id, b.object_id, b.plaintext_len from capture_chunk k
           join blob_object b using (practice_id, blob_id) where k.capture_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&capture).unwrap())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(len, i64::try_from(wav.len()).unwrap());
    let blobs = f.app.blobs.clone().unwrap();
    let path = f.app.checkpoint_dir.join("blobs").join(
        blobs
            .object_path(store::crypto::BlobId::from_uuid(object))
            .trim_start_matches('/'),
    );
    let stored = std::fs::read(&path).unwrap();
    assert!(
        !stored.windows(4).any(|w| w == b"RIFF"),
        "stored in the clear"
    );
    // The store's read function gives the WAV back (as the transcription job reads it).
    let mut tx = testkit::enter_practice(&f.app.store, &f.clin, f.w.a.id)
        .await
        .unwrap();
    let back = store::capture::read_chunk_wav(
        &mut tx,
        &blobs,
        domain::CaptureId::from_uuid(uuid::Uuid::parse_str(&capture).unwrap()),
        0,
    )
    .await
    .unwrap();
    assert_eq!(back.as_deref(), Some(&wav[..]));
    drop(tx);
    let _ = blob;
}

// req: SCR-01 — withdrawing consent mid-capture stops it at once (consent_withdrawn), refuses
// further chunks, deletes its audio from the blob store and the registry; all audited.
#[tokio::test]
async fn withdrawing_consent_stops_and_purges() {
    let f = fx().await;
    let visit = f.visit().await;
    let consent = f.consent(&visit).await;
    let capture = f.start(&visit).await;
    for seq in 0..3 {
        let (s, _) = f
            .chunk(&capture, seq, &tone_wav(1000, u16::try_from(seq).unwrap()))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let mut su = f.db.superuser_unsafe().await;
    let objects: Vec<uuid::Uuid> = sqlx::query_scalar(
        "select b.object_id from capture_chunk k join blob_object b using (practice_id, blob_id)
          where k.capture_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&capture).unwrap())
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(objects.len(), 3);
    let blobs = f.app.blobs.clone().unwrap();
    let on_disk = |o: &uuid::Uuid| {
        f.app.checkpoint_dir.join("blobs").join(
            blobs
                .object_path(store::crypto::BlobId::from_uuid(*o))
                .trim_start_matches('/'),
        )
    };
    assert!(objects.iter().all(|o| on_disk(o).exists()));

    let (s, v) = f
        .post(
            &format!("/visits/{visit}/consents/{consent}/withdraw"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stopped"]["state"], "stopped");
    assert_eq!(v["stopped"]["stop_reason"], "consent_withdrawn");
    assert_eq!(v["purged_blobs"], 3);
    assert!(v["consent"]["withdrawn_at"].is_string());
    // Gone from the blob store and the registry; the capture says so.
    assert!(objects.iter().all(|o| !on_disk(o).exists()));
    let left: i64 = sqlx::query_scalar(
        "select count(*) from blob_object where practice_id = $1 and object_id = any($2)",
    )
    .bind(f.w.a.id)
    .bind(&objects)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(left, 0);
    let (_, c) = f.get(&format!("/captures/{capture}")).await;
    assert_eq!(c["audio_purge_reason"], "consent_withdrawn");
    assert!(c["audio_purged_at"].is_string());
    // Further chunks are refused; the withdrawal cannot be repeated; capture needs consent.
    let (s, _) = f.chunk(&capture, 3, &tone_wav(1000, 3)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = f
        .post(
            &format!("/visits/{visit}/consents/{consent}/withdraw"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = f.post(&format!("/visits/{visit}/captures"), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Audited: the withdrawal, the stop with its reason, the purge with its count.
    assert_eq!(
        actions(&f.actions_on(&consent).await),
        ["recording_consent.record", "recording_consent.withdraw"]
    );
    let rows = f.actions_on(&capture).await;
    let tail: Vec<&str> = actions(&rows)
        .into_iter()
        .filter(|a| *a != "capture.chunk")
        .collect();
    assert_eq!(
        tail,
        [
            "capture.start",
            "capture.stop",
            "capture.audio_purge",
            "capture.read"
        ]
    );
    let stop = rows.iter().find(|r| r.0 == "capture.stop").unwrap();
    assert_eq!(stop.2["reason"], "consent_withdrawn");
    let purge = rows.iter().find(|r| r.0 == "capture.audio_purge").unwrap();
    assert_eq!(purge.2["blobs"], 3);
    assert_eq!(purge.1, Some(f.w.a.patient.as_uuid()));
}

// issue 18 — the longest capture: a chunk crossing it is stored and stops the capture
// (max_duration); a pause/resume cannot go past it; the sweep stops one left live past it.
#[tokio::test]
async fn the_longest_capture_stops_it() {
    let f = fx().await;
    let owner_token = f.app.token(f.w.a.user("owner")).await;
    let (s, v) = call(
        &f.app,
        Method::PUT,
        &format!("{}/scribe-policy", f.base()),
        Some(&owner_token),
        Some(&json!({"consent_rule": "one_party", "audio_retention_days": 7, "max_capture_seconds": 60})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let visit = f.visit().await;
    f.consent(&visit).await;
    let capture = f.start(&visit).await;
    let (_, c) = f.get(&format!("/captures/{capture}")).await;
    assert_eq!(c["max_ms"], 60_000);
    for seq in 0..5 {
        let (s, v) = f
            .chunk(
                &capture,
                seq,
                &tone_wav(12_000, u16::try_from(seq).unwrap()),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{seq}: {v}");
        assert_eq!(
            v["capture"]["state"],
            if seq < 4 { "live" } else { "stopped" }
        );
    }
    let (_, c) = f.get(&format!("/captures/{capture}")).await;
    assert_eq!(c["stop_reason"], "max_duration");
    let (s, _) = f.chunk(&capture, 5, &tone_wav(1000, 5)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let rows = f.actions_on(&capture).await;
    let stop = rows.iter().find(|r| r.0 == "capture.stop").unwrap();
    assert_eq!(stop.2["reason"], "max_duration");

    // Left live past its longest by the wall clock: the sweep stops it.
    let visit = f.visit().await;
    f.consent(&visit).await;
    let capture = f.start(&visit).await;
    f.app.clock.advance(Duration::seconds(20));
    let (s, _) = f.chunk(&capture, 0, &tone_wav(1000, 0)).await;
    assert_eq!(s, StatusCode::CREATED);
    f.app.clock.advance(Duration::seconds(25));
    let (s, _) = f.chunk(&capture, 1, &tone_wav(1000, 1)).await;
    assert_eq!(s, StatusCode::CREATED);
    f.app.clock.advance(Duration::seconds(20));
    let owner = f.db.owner().await;
    let pass = server::jobs::capture::sweep_all(
        &owner,
        Some(f.w.a.id),
        f.app.clock.now(),
        server::jobs::capture::ABANDONED_AFTER,
    )
    .await
    .unwrap();
    assert_eq!(pass.done[0].1.max_duration.len(), 1);
    let (_, c) = f.get(&format!("/captures/{capture}")).await;
    assert_eq!(c["stop_reason"], "max_duration");
    assert_eq!(c["elapsed_ms"], 60_000);
}

// issue 18 — the abandoned sweep (injected clock): a live capture with no chunk for longer
// than the limit is stopped (abandoned) so the indicator never lies; a paused one, or one
// still receiving audio, is left alone. Audited.
#[tokio::test]
async fn the_sweep_stops_abandoned_captures() {
    let f = fx().await;
    let owner = f.db.owner().await;
    let sweep = || async {
        server::jobs::capture::sweep_all(
            &owner,
            Some(f.w.a.id),
            f.app.clock.now(),
            server::jobs::capture::ABANDONED_AFTER,
        )
        .await
        .unwrap()
    };
    let v1 = f.visit().await;
    f.consent(&v1).await;
    let live = f.start(&v1).await;
    let v2 = f.visit().await;
    f.consent(&v2).await;
    let paused = f.start(&v2).await;
    f.post(&format!("/captures/{paused}/pause"), None).await;
    let (s, _) = f.chunk(&live, 0, &tone_wav(1000, 0)).await;
    assert_eq!(s, StatusCode::CREATED);
    f.app.clock.advance(Duration::seconds(20));
    assert!(
        sweep().await.done[0].1.abandoned.is_empty(),
        "20 s is not abandoned"
    );
    let (_, me) = f.get("/me/capture").await;
    assert_eq!(me["capture"]["state"], "live");
    f.app.clock.advance(Duration::seconds(15));
    let pass = sweep().await;
    assert_eq!(
        pass.done[0].1.abandoned,
        [domain::CaptureId::from_uuid(
            uuid::Uuid::parse_str(&live).unwrap()
        )]
    );
    let (_, c) = f.get(&format!("/captures/{live}")).await;
    assert_eq!(c["state"], "stopped");
    assert_eq!(c["stop_reason"], "abandoned");
    let (_, c) = f.get(&format!("/captures/{paused}")).await;
    assert_eq!(c["state"], "paused");
    // The indicator now shows the paused one (the newest open capture).
    let (_, me) = f.get("/me/capture").await;
    assert_eq!(me["capture"]["capture_id"], paused.as_str());
    assert_eq!(me["capture"]["state"], "paused");
    let rows = f.actions_on(&live).await;
    let stop = rows.iter().find(|r| r.0 == "capture.stop").unwrap();
    assert_eq!(stop.2["reason"], "abandoned");
    assert_eq!(stop.1, Some(f.w.a.patient.as_uuid()));
}

// issue 18 — audio retention: N days after the visit's note is signed the audio is deleted
// (audited), unless the patient is under legal hold; not before.
#[tokio::test]
async fn retention_purges_audio_after_signing_except_under_legal_hold() {
    let f = fx().await;
    let owner_token = f.app.token(f.w.a.user("owner")).await;
    let (s, _) = call(
        &f.app,
        Method::PUT,
        &format!("{}/scribe-policy", f.base()),
        Some(&owner_token),
        Some(&json!({"consent_rule": "all_party", "audio_retention_days": 30, "max_capture_seconds": 7200})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let visit = f.visit().await;
    f.consent(&visit).await;
    let capture = f.start(&visit).await;
    f.chunk(&capture, 0, &tone_wav(1000, 0)).await;
    f.post(&format!("/captures/{capture}/stop"), None).await;
    // A signed note for the visit.
    let (s, n) = f
        .post(
            &format!("/patients/{}/notes", f.w.a.patient),
            Some(&json!({"template": "free", "visit_id": visit,
                         "content": {"subjective": "Synthetic visit note."}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{n}");
    let note = n["note_id"].as_str().unwrap().to_owned();
    let res = f
        .app
        .http
        .post(f.app.url(&format!("{}/notes/{note}/sign", f.base())))
        .bearer_auth(&f.clin)
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let blobs = f.app.blobs.clone().unwrap();
    let owner = f.db.owner().await;
    let purge = |at| {
        let owner = owner.clone();
        let blobs = blobs.clone();
        let practice = f.w.a.id;
        async move {
            server::jobs::capture::purge_audio_all(&owner, Some(practice), at, &blobs)
                .await
                .unwrap()
        }
    };
    // Before the window: nothing.
    let now = f.app.clock.now();
    let pass = purge(now + Duration::days(29)).await;
    assert!(pass.done[0].1.purged.is_empty());
    // Under legal hold: kept, counted.
    let (s, _) = call(
        &f.app,
        Method::PUT,
        &format!("{}/patients/{}/legal-hold", f.base(), f.w.a.patient),
        Some(&owner_token),
        Some(&json!({"category": "litigation"})),
    )
    .await;
    assert!(s.is_success());
    let pass = purge(now + Duration::days(31)).await;
    assert!(pass.done[0].1.purged.is_empty());
    assert_eq!(pass.done[0].1.held, 1);
    assert_eq!(
        f.rows(
            "select count(*) from capture_chunk where capture_id = $1 and blob_id is not null",
            &capture
        )
        .await,
        1
    );
    // Released: purged, audited.
    let (s, _) = call(
        &f.app,
        Method::DELETE,
        &format!("{}/patients/{}/legal-hold", f.base(), f.w.a.patient),
        Some(&owner_token),
        None,
    )
    .await;
    assert!(s.is_success());
    let pass = purge(now + Duration::days(31)).await;
    assert_eq!(pass.done[0].1.purged.len(), 1);
    assert_eq!(pass.done[0].1.blobs, 1);
    assert_eq!(
        f.rows(
            "select count(*) from capture_chunk where capture_id = $1 and blob_id is not null",
            &capture
        )
        .await,
        0
    );
    let (_, c) = f.get(&format!("/captures/{capture}")).await;
    assert_eq!(c["audio_purge_reason"], "retention");
    let rows = f.actions_on(&capture).await;
    let purge_row = rows.iter().find(|r| r.0 == "capture.audio_purge").unwrap();
    assert_eq!(purge_row.2["reason"], "retention");
    assert_eq!(purge_row.1, Some(f.w.a.patient.as_uuid()));
}

/// One scribe route of the matrix: method, path in A, the same naming B's object, the roles
/// that may use it, the audit action of a success, and its body.
struct Route {
    m: Method,
    path: String,
    foreign: Option<String>,
    roles: &'static [&'static str],
    action: Option<&'static str>,
    body: Option<Value>,
    wav: bool,
}

// The authorization matrix of every scribe route: anonymous 401, another practice's member
// 404 (and A's member naming B's visit or capture 404), wrong role 403 (audited denial),
// right role 2xx with its audit row.
// req: AC-02, AC-03, AC-04
#[tokio::test]
async fn capture_authorization_matrix() {
    let f = fx().await;
    let app = &f.app;
    let mut tokens = std::collections::HashMap::new();
    for role in ["owner", "admin", "clinician", "reception"] {
        tokens.insert(("a", role), app.token(f.w.a.user(role)).await);
        tokens.insert(("b", role), app.token(f.w.b.user(role)).await);
    }
    // B's own visit and capture, for cross-tenant references.
    let b_base = format!("/api/v1/practices/{}", f.w.b.id);
    let (_, bv) = call(
        app,
        Method::POST,
        &format!("{b_base}/patients/{}/visits", f.w.b.patient),
        Some(&tokens[&("b", "clinician")]),
        Some(&json!({})),
    )
    .await;
    let b_visit = bv["visit_id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        app,
        Method::POST,
        &format!("{b_base}/visits/{b_visit}/consents"),
        Some(&tokens[&("b", "clinician")]),
        Some(&json!({"consented_by": "patient", "method": "written"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, bc) = call(
        app,
        Method::POST,
        &format!("{b_base}/visits/{b_visit}/captures"),
        Some(&tokens[&("b", "clinician")]),
        None,
    )
    .await;
    let b_capture = bc["capture_id"].as_str().unwrap().to_owned();

    let visit = f.visit().await;
    let consent = f.consent(&visit).await;
    let capture = f.start(&visit).await;
    let wav = tone_wav(1000, 0);
    let a = f.base();
    let mut su = f.db.superuser_unsafe().await;

    let clinical: &[&str] = &["clinician"];
    let routes = vec![
        Route {
            m: Method::GET,
            path: format!("{a}/visits/{visit}/consents"),
            foreign: Some(format!("{a}/visits/{b_visit}/consents")),
            roles: clinical,
            action: None,
            body: None,
            wav: false,
        },
        Route {
            m: Method::GET,
            path: format!("{a}/visits/{visit}/captures"),
            foreign: Some(format!("{a}/visits/{b_visit}/captures")),
            roles: clinical,
            action: None,
            body: None,
            wav: false,
        },
        Route {
            m: Method::GET,
            path: format!("{a}/captures/{capture}"),
            foreign: Some(format!("{a}/captures/{b_capture}")),
            roles: clinical,
            action: Some("capture.read"),
            body: None,
            wav: false,
        },
        Route {
            m: Method::PUT,
            path: format!("{a}/captures/{capture}/chunks/0"),
            foreign: Some(format!("{a}/captures/{b_capture}/chunks/0")),
            roles: clinical,
            action: Some("capture.chunk"),
            body: None,
            wav: true,
        },
        Route {
            m: Method::GET,
            path: format!("{a}/me/capture"),
            foreign: None,
            roles: clinical,
            action: None,
            body: None,
            wav: false,
        },
        Route {
            m: Method::POST,
            path: format!("{a}/captures/{capture}/pause"),
            foreign: Some(format!("{a}/captures/{b_capture}/pause")),
            roles: clinical,
            action: Some("capture.pause"),
            body: None,
            wav: false,
        },
        Route {
            m: Method::POST,
            path: format!("{a}/captures/{capture}/resume"),
            foreign: Some(format!("{a}/captures/{b_capture}/resume")),
            roles: clinical,
            action: Some("capture.resume"),
            body: None,
            wav: false,
        },
        Route {
            m: Method::POST,
            path: format!("{a}/captures/{capture}/stop"),
            foreign: Some(format!("{a}/captures/{b_capture}/stop")),
            roles: clinical,
            action: Some("capture.stop"),
            body: None,
            wav: false,
        },
        Route {
            m: Method::POST,
            path: format!("{a}/visits/{visit}/consents/{consent}/withdraw"),
            foreign: Some(format!("{a}/visits/{b_visit}/consents/{consent}/withdraw")),
            roles: clinical,
            action: Some("recording_consent.withdraw"),
            body: None,
            wav: false,
        },
        Route {
            m: Method::POST,
            path: format!("{a}/visits/{visit}/consents"),
            foreign: Some(format!("{a}/visits/{b_visit}/consents")),
            roles: clinical,
            action: Some("recording_consent.record"),
            body: Some(json!({"consented_by": "guardian", "method": "form"})),
            wav: false,
        },
        Route {
            m: Method::POST,
            path: format!("{a}/visits/{visit}/captures"),
            foreign: Some(format!("{a}/visits/{b_visit}/captures")),
            roles: clinical,
            action: Some("capture.start"),
            body: None,
            wav: false,
        },
        Route {
            m: Method::GET,
            path: format!("{a}/scribe-policy"),
            foreign: None,
            roles: &["owner", "admin", "clinician", "reception"],
            action: None,
            body: None,
            wav: false,
        },
        Route {
            m: Method::PUT,
            path: format!("{a}/scribe-policy"),
            foreign: None,
            roles: &["owner", "admin"],
            action: Some("scribe_policy.update"),
            body: Some(
                json!({"consent_rule": "all_party", "audio_retention_days": 30, "max_capture_seconds": 3600}),
            ),
            wav: false,
        },
    ];
    let send = |m: Method, path: String, token: Option<String>, body: Option<Value>, wav: bool| {
        let wav = wav.then(|| tone_wav(1000, 0));
        async move {
            let mut req = app.http.request(m, app.url(&path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            if let Some(w) = wav {
                req = req.header("content-type", "audio/wav").body(w);
            }
            let res = req.send().await.unwrap();
            let rid: uuid::Uuid = res.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let s = res.status();
            let text = res.text().await.unwrap();
            (s, rid, text)
        }
    };
    let _ = &wav;
    for r in &routes {
        let label = format!("{} {}", r.m, r.path);
        let (s, ..) = send(r.m.clone(), r.path.clone(), None, r.body.clone(), r.wav).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{label}: anonymous");
        // B's members on A's path: 404.
        for role in r.roles {
            let (s, ..) = send(
                r.m.clone(),
                r.path.clone(),
                Some(tokens[&("b", *role)].clone()),
                r.body.clone(),
                r.wav,
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{label}: B's {role}");
        }
        // A's member naming B's object: 404.
        if let Some(fp) = &r.foreign {
            let (s, _, text) = send(
                r.m.clone(),
                fp.clone(),
                Some(tokens[&("a", r.roles[0])].clone()),
                r.body.clone(),
                r.wav,
            )
            .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{label}: B's object: {text}");
        }
        // Wrong roles: 403, audited as a denial.
        for role in ["owner", "admin", "clinician", "reception"] {
            if r.roles.contains(&role) {
                continue;
            }
            let (s, rid, _) = send(
                r.m.clone(),
                r.path.clone(),
                Some(tokens[&("a", role)].clone()),
                r.body.clone(),
                r.wav,
            )
            .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{label}: {role}");
            let rows: Vec<(String,)> = sqlx::query_as(
                "select action from audit_event where practice_id = $1 and request_id = $2",
            )
            .bind(f.w.a.id)
            .bind(rid)
            .fetch_all(&mut su)
            .await
            .unwrap();
            assert_eq!(rows, [("access.denied".to_owned(),)], "{label}: {role}");
        }
        // The right role: 2xx with its audit row.
        let role = r.roles[0];
        let (s, rid, text) = send(
            r.m.clone(),
            r.path.clone(),
            Some(tokens[&("a", role)].clone()),
            r.body.clone(),
            r.wav,
        )
        .await;
        assert!(s.is_success(), "{label}: {role}: {s} {text}");
        if let Some(action) = r.action {
            let rows: Vec<(String, Option<uuid::Uuid>, Option<uuid::Uuid>)> = sqlx::query_as(
                "select action, actor_id, patient_id from audit_event where practice_id = $1 and request_id = $2",
            )
            .bind(f.w.a.id)
            .bind(rid)
            .fetch_all(&mut su)
            .await
            .unwrap();
            assert!(rows.iter().any(|x| x.0 == action), "{label}: {rows:?}");
            for x in &rows {
                assert_eq!(x.1, Some(f.w.a.user(role).as_uuid()), "{label}");
                if action != "scribe_policy.update" {
                    assert_eq!(x.2, Some(f.w.a.patient.as_uuid()), "{label}");
                }
            }
        }
    }
    // The capture's clinician only: another clinician of the practice who can see the visit
    // still cannot drive someone else's recording.
    let (s, v) = call(
        app,
        Method::GET,
        &format!("{a}/me/capture"),
        Some(&tokens[&("a", "clinician")]),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["capture"]["state"], "live");
}

// issue 18 — a deleted patient's audio is deleted by the next audio retention pass (reason
// `patient_deleted`, audited), without waiting for a signed note.
#[tokio::test]
async fn a_deleted_patients_audio_is_purged() {
    let f = fx().await;
    let visit = f.visit().await;
    f.consent(&visit).await;
    let capture = f.start(&visit).await;
    let (s, _) = f.chunk(&capture, 0, &tone_wav(1000, 0)).await;
    assert_eq!(s, StatusCode::CREATED);
    f.post(&format!("/captures/{capture}/stop"), None).await;
    let (s, v) = call(
        &f.app,
        Method::DELETE,
        &format!("{}/patients/{}", f.base(), f.w.a.patient),
        Some(&f.clin),
        None,
    )
    .await;
    assert!(s.is_success(), "{s} {v}");
    let owner = f.db.owner().await;
    let pass = server::jobs::capture::purge_audio_all(
        &owner,
        Some(f.w.a.id),
        f.app.clock.now(),
        f.app.blobs.as_ref().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(pass.done[0].1.purged.len(), 1);
    assert_eq!(
        f.rows(
            "select count(*) from capture_chunk where capture_id = $1 and blob_id is not null",
            &capture
        )
        .await,
        0
    );
    let rows = f.actions_on(&capture).await;
    let purge = rows.iter().find(|r| r.0 == "capture.audio_purge").unwrap();
    assert_eq!(purge.2["reason"], "patient_deleted");
}
