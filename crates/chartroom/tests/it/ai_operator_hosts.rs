//! The operator's own hosts (`chartroom serve --ai-self-hosted-host HOST`): a provider
//! registered as self-hosted on a listed host is cleared by the gate of every AI call in the
//! server and shown as "self-hosted (operator host)"; the same provider without the listing is
//! refused before any connection (the stand-in counts zero requests).
//!
//! The provider's address is `http://[::ffff:127.0.0.1]:PORT`: it reaches the loopback
//! stand-in, but the gate does not take an IPv4-mapped address for loopback, so only the
//! listing makes it the operator's own (as it would a name like `gpu1.internal`).

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use server::assistant::{Assistant, EgressAdapters, OperatorHosts};
use testkit::standins::StandIn;
use testkit::{TestApp, TestDb, World};

use crate::util::call;
use crate::web_pages::{client, request};

/// The listed host, as an operator would write it.
const HOST: &str = "::ffff:127.0.0.1";

fn assistant(hosts: &[&str]) -> Assistant {
    Assistant {
        adapters: Arc::new(EgressAdapters::default()),
        local_transcription: None,
        operator_hosts: OperatorHosts::new(hosts).unwrap(),
    }
}

/// A synthetic WAV: 16 kHz mono 16-bit, one second of silence.
fn wav() -> Vec<u8> {
    let data = 32_000u32;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&32_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    w.resize(w.len() + data as usize, 0);
    w
}

/// A stopped capture of A's patient whose one chunk waits for transcription (the rows as the
/// capture flow leaves them, the audio a real encrypted blob).
async fn captured_chunk(
    app: &TestApp,
    db: &TestDb,
    w: &World,
    clin: &str,
    blobs: &store::crypto::BlobStore,
) {
    let (s, v) = call(
        app,
        Method::POST,
        &format!(
            "/api/v1/practices/{}/patients/{}/visits",
            w.a.id, w.a.patient
        ),
        Some(clin),
        Some(&serde_json::json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let visit = uuid::Uuid::parse_str(v["visit_id"].as_str().unwrap()).unwrap();
    let app_store = db.store().await;
    let audio = wav();
    let b = blobs.put_stream(w.a.id, &audio[..]).await.unwrap();
    let store::Entry::Member(mut tx, _) = app_store
        .enter_practice(
            &store::TokenHash::from_presented(clin).unwrap(),
            w.a.id,
            chrono::Utc::now(),
            &store::SessionPolicy::default(),
            domain::RequestId::new(),
            store::Access::Write,
        )
        .await
        .unwrap()
    else {
        panic!("member")
    };
    let blob = tx.register_blob(&b).await.unwrap();
    tx.commit().await.unwrap();
    let mut su = db.superuser_unsafe().await;
    let (consent, capture) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    sqlx::query(
        "insert into recording_consent (practice_id, consent_id, visit_id, patient_id,
            consented_by, method, consent_rule, recorded_by, recorded_at)
         values ($1, $2, $3, $4, 'patient', 'verbal', 'all_party', $5, now())",
    )
    .bind(w.a.id)
    .bind(consent)
    .bind(visit)
    .bind(w.a.patient)
    .bind(w.a.user("clinician"))
    .execute(&mut su)
    .await
    .unwrap();
    sqlx::query(
        "insert into capture (practice_id, capture_id, visit_id, patient_id, consent_id,
            clinician_id, state, stop_reason, started_at, stopped_at, elapsed_ms, max_seconds,
            chunks, audio_bytes)
         values ($1, $2, $3, $4, $5, $6, 'stopped', 'clinician', now(), now(), 1000, 7200, 1, $7)",
    )
    .bind(w.a.id)
    .bind(capture)
    .bind(visit)
    .bind(w.a.patient)
    .bind(consent)
    .bind(w.a.user("clinician"))
    .bind(i64::try_from(audio.len()).unwrap())
    .execute(&mut su)
    .await
    .unwrap();
    sqlx::query(
        "insert into capture_chunk (practice_id, capture_id, patient_id, seq, blob_id, sha256,
            bytes, duration_ms, offset_ms, received_at)
         values ($1, $2, $6, 0, $3, sha256($4), $5, 1000, 0, now())",
    )
    .bind(w.a.id)
    .bind(capture)
    .bind(blob.as_uuid())
    .bind(&audio)
    .bind(i32::try_from(audio.len()).unwrap())
    .bind(w.a.patient)
    .execute(&mut su)
    .await
    .unwrap();
}

async fn turns(db: &TestDb, w: &World, outcome: &str) -> i64 {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_scalar(
        "select count(*) from assistant_turn where practice_id = $1 and purpose = 'transcription'
            and outcome = $2",
    )
    .bind(w.a.id)
    .bind(outcome)
    .fetch_one(&mut su)
    .await
    .unwrap()
}

// req: SCR-03 — a provider on a host the operator listed is self-hosted: the gate of the
// server's AI calls clears it (the stand-in is called); without the listing the same provider
// is refused before any connection (zero requests), the refusal recorded as a turn. The API
// and the owner page show it as on an operator host.
#[tokio::test]
async fn a_provider_on_a_listed_operator_host_is_self_hosted_and_unlisted_it_is_refused() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let standin = StandIn::openai().await;
    let port = standin.url().rsplit(':').next().unwrap().to_owned();
    let base_url = format!("http://[{HOST}]:{port}");

    let listed = TestApp::start_with_assistant(db.store().await, assistant(&[HOST])).await;
    let owner = listed.token(w.a.user("owner")).await;
    let clin = listed.token(w.a.user("clinician")).await;
    let (s, p) = call(
        &listed,
        Method::POST,
        &format!("/api/v1/practices/{}/ai-providers", w.a.id),
        Some(&owner),
        Some(&serde_json::json!({
            "label": "Whisper on the clinic's GPU host",
            "adapter": "openai_transcription",
            "base_url": base_url,
            "model": "whisper-1",
            "hosting": "self_hosted",
            "vendor": "the clinic's own IT",
            "training_disabled": true,
            "retention": "",
            "region": "",
            "enabled": true,
        })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(
        (p["gate"].as_str(), p["operator_host"].as_bool()),
        (Some("cleared"), Some(true)),
        "{p}"
    );

    // Unlisted (an installation without the setting): the API says why it is refused.
    let unlisted = TestApp::start_with_assistant(db.store().await, assistant(&[])).await;
    let owner_u = unlisted.token(w.a.user("owner")).await;
    let (s, list) = call(
        &unlisted,
        Method::GET,
        &format!("/api/v1/practices/{}/ai-providers", w.a.id),
        Some(&owner_u),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (list[0]["gate"].as_str(), list[0]["operator_host"].as_bool()),
        (Some("not_local"), Some(false)),
        "{list}"
    );

    // The owner page of the listing installation names the operator host.
    let web = client();
    let page = request(
        &web,
        &listed,
        Method::GET,
        &format!("/app/practices/{}/ai-providers", w.a.id),
        Some(&owner),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("self-hosted (operator host)"), "{html}");
    let page = request(
        &web,
        &unlisted,
        Method::GET,
        &format!("/app/practices/{}/ai-providers", w.a.id),
        Some(&owner_u),
    )
    .send()
    .await
    .unwrap();
    let html = page.text().await.unwrap();
    assert!(!html.contains("operator host)"), "{html}");
    assert!(
        html.contains("refused: self-hosted but not local"),
        "{html}"
    );

    // The transcription job without the listing: refused, not one request.
    let blob_dir = std::env::temp_dir().join(format!(
        "chartroom-ophosts-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let owner_store = db.owner().await;
    let blobs =
        store::crypto::BlobStore::local(&blob_dir, owner_store.keyring().unwrap().clone()).unwrap();
    captured_chunk(&listed, &db, &w, &clin, &blobs).await;
    let r = server::jobs::transcription::transcribe_pending(
        &owner_store,
        &blobs,
        &assistant(&[]),
        Some(w.a.id),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(r.refused, 1, "{r:?}");
    assert_eq!(standin.requests(), 0, "refused before any connection");
    assert_eq!(turns(&db, &w, "refused").await, 1);

    // With the listing: cleared, called once, transcribed.
    captured_chunk(&listed, &db, &w, &clin, &blobs).await;
    let r = server::jobs::transcription::transcribe_pending(
        &owner_store,
        &blobs,
        &assistant(&[HOST]),
        Some(w.a.id),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(standin.requests(), 1, "{r:?}");
    assert_eq!(r.refused, 0, "{r:?}");
    assert_eq!(turns(&db, &w, "ok").await, 1);
    owner_store.close().await;
    let _ = std::fs::remove_dir_all(&blob_dir);
}
