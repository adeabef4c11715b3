//! Installation secrets under the key provider (issue 15.5): TOTP secrets and the lookup-tag
//! key sealed by the retired `secrets/identity.key` move under the installation data key at
//! start-up; sign-in and invitations keep working through `keys rotate-kek` and `keys
//! retire-kek`; each stored secret names the key version that sealed it; nothing stays under
//! the old key, whose file is removed.
//! req: AU-01, AU-02, ENC-02

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, hmac, rand};
use chrono::Duration;
use domain::{Clock as _, PracticeId, UserId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::identity::totp::TotpKey;
use store::crypto::{DekVersion, LegacyIdentityKey, LookupKey, LookupKind, field_dek_version};
use store::installation::InstallationMigration;
use testkit::{PASSWORD, TestApp, TestDb, World};

use crate::identity::{enroll, login, second_factor};
use crate::util::{call, email_of};

/// What versions before the installation data key wrote into `user_totp.secret_sealed`
/// (their `SecretBox::seal`), byte for byte: `01 ‖ nonce ‖ AES-256-GCM(identity key,
/// aad = "user_totp.secret_sealed:" ‖ user id)`.
fn legacy_seal(key: &[u8; 32], user: UserId, secret: &[u8]) -> Vec<u8> {
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce).unwrap();
    let mut aad = b"user_totp.secret_sealed:".to_vec();
    aad.extend_from_slice(user.as_uuid().as_bytes());
    let mut buf = secret.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .unwrap();
    let mut out = vec![1u8];
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    out
}

/// The invitation email tag those versions computed (their `SecretBox::lookup_tag`).
fn legacy_tag(key: &[u8; 32], email: &str) -> Vec<u8> {
    let k: hmac::Key = hkdf::Salt::new(hkdf::HKDF_SHA256, &[])
        .extract(key)
        .expand(
            &[b"chartroom identity lookup-tag/hmac-sha256 v1"],
            hmac::HMAC_SHA256,
        )
        .unwrap()
        .into();
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(b"invitation-email\0");
    ctx.update(email.as_bytes());
    ctx.sign().as_ref().to_vec()
}

/// Password, then a TOTP code: the status of the second step and the session token.
async fn sign_in_with_totp(app: &TestApp, email: &str, key: &TotpKey) -> (StatusCode, String) {
    let (s, body) = login(app, email, PASSWORD).await;
    assert_eq!(
        (s, &body["next"]),
        (StatusCode::OK, &json!("second_factor")),
        "{body}"
    );
    let code = key.code_at(app.clock.now());
    let token = body["token"].as_str().unwrap();
    let (s, body) = second_factor(app, token, "/api/v1/auth/second-factor/totp", &code).await;
    (s, body["token"].as_str().unwrap_or_default().to_owned())
}

/// The invitation ids the user sees addressed to their own email.
async fn my_invitations(app: &TestApp, user: UserId) -> Vec<String> {
    let token = app.token(user).await;
    let (s, list) = call(app, Method::GET, "/api/v1/invitations", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["invitation_id"].as_str().unwrap().to_owned())
        .collect()
}

/// (`secret_sealed`, `secret_enc`) of a user's TOTP row, read as superuser.
async fn totp_row(db: &TestDb, user: UserId) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_as("select secret_sealed, secret_enc from user_totp where user_id = $1")
        .bind(user)
        .fetch_one(&mut su)
        .await
        .unwrap()
}

/// The installation data key's versions and the KEK version wrapping each.
async fn installation_key_rows(db: &TestDb) -> Vec<(i32, i64)> {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_as(
        "select dek_version, kek_version from practice_data_key where practice_id = $1
          order by dek_version",
    )
    .bind(PracticeId::SYSTEM)
    .fetch_all(&mut su)
    .await
    .unwrap()
}

/// `key.encrypt_existing` / `key.rotate_kek` events on the installation's own log.
async fn installation_events(db: &TestDb, action: &str) -> Vec<Value> {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_scalar(
        "select coalesce(details, '{}'::jsonb) from audit_event
          where practice_id = $1 and action = $2 order by occurred_at",
    )
    .bind(PracticeId::SYSTEM)
    .bind(action)
    .fetch_all(&mut su)
    .await
    .unwrap()
}

// issue 15.5 — the retired key opens only what it sealed, for that user, unaltered, and its
// lookup-tag key, imported, gives the tags it gave.
#[test]
fn the_retired_identity_key_opens_only_what_it_sealed_and_keeps_its_tags() {
    let raw = [42u8; 32];
    let old = LegacyIdentityKey::from_bytes(&raw).unwrap();
    let (ada, bea) = (UserId::new(), UserId::new());
    let sealed = legacy_seal(&raw, ada, b"20 bytes of a secret");
    let opened = old.open_totp(ada, &sealed).unwrap();
    assert_eq!(opened.expose_secret().as_slice(), b"20 bytes of a secret");
    assert!(old.open_totp(bea, &sealed).is_err(), "bound to its user");
    let mut altered = sealed.clone();
    *altered.last_mut().unwrap() ^= 1;
    for bad in [&altered[..], &sealed[..10], &[][..]] {
        assert!(old.open_totp(ada, bad).is_err());
    }
    let other = LegacyIdentityKey::from_bytes(&[1u8; 32]).unwrap();
    assert!(other.open_totp(ada, &sealed).is_err(), "another key");
    let imported = LookupKey::from_bytes(old.lookup_key_material()).unwrap();
    assert_eq!(
        imported
            .tag(LookupKind::InvitationEmail, "ada@example.invalid")
            .to_vec(),
        legacy_tag(&raw, "ada@example.invalid")
    );
    assert_ne!(
        imported.tag(LookupKind::InvitationEmail, "ada@example.invalid"),
        imported.tag(LookupKind::InvitationEmail, "bea@example.invalid")
    );
}

// issue 15.5 — a TOTP enrolled before the change (sealed by secrets/identity.key) signs in
// after the start-up migration; an invitation addressed before it is still found; nothing
// stays under the old key, and its file is gone.
#[tokio::test]
async fn a_totp_sealed_by_the_retired_identity_key_signs_in_after_the_start_up_migration() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = w.a.user("clinician");
    let email = email_of(&db, user).await;

    // The installation as the previous version left it: secrets/identity.key, a confirmed
    // TOTP sealed with it, and a pending invitation tagged with its lookup key.
    let dir = std::env::temp_dir().join(format!(
        "chartroom-installation-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("identity.key");
    let mut old_key = [0u8; 32];
    rand::fill(&mut old_key).unwrap();
    std::fs::write(&file, old_key).unwrap();
    let mut secret = [0u8; 20];
    rand::fill(&mut secret).unwrap();
    let invitee = w.b.user("reception");
    let invitee_email = email_of(&db, invitee).await;
    let normalized = domain::values::Email::parse("email", &invitee_email).unwrap();
    let invitation = uuid::Uuid::new_v4();
    let mut su = db.superuser_unsafe().await;
    sqlx::query(
        "insert into user_totp (user_id, secret_sealed, confirmed_at, last_step, created_at)
         values ($1, $2, now(), 0, now())",
    )
    .bind(user)
    .bind(legacy_seal(&old_key, user, &secret))
    .execute(&mut su)
    .await
    .unwrap();
    sqlx::query(
        "insert into membership_invitation
           (practice_id, invitation_id, email_tag, roles, invited_by, created_at, expires_at)
         values ($1, $2, $3, '{clinician}', $4, now(), now() + interval '7 days')",
    )
    .bind(w.a.id)
    .bind(invitation)
    .bind(legacy_tag(&old_key, normalized.as_str()))
    .bind(w.a.user("owner"))
    .execute(&mut su)
    .await
    .unwrap();
    drop(su);

    // Start-up as the runtime role (no owner role needed): the lookup-tag key is imported,
    // so the invitation is found; the file stays (the TOTP rows are the owner's job).
    db.store()
        .await
        .prepare_installation_secrets(&file)
        .await
        .unwrap();
    assert!(file.exists());
    assert_eq!(
        my_invitations(&app, invitee).await,
        vec![invitation.to_string()]
    );

    // Start-up as the owner role: every TOTP secret moves, then the file goes.
    let owner = db.owner().await;
    let report = owner.migrate_installation_secrets(&file).await.unwrap();
    assert_eq!(
        report,
        InstallationMigration {
            totp_resealed: 1,
            totp_left: 0,
            legacy_key_removed: true
        }
    );
    assert!(!file.exists(), "the retired identity key file is removed");

    // Nothing TOTP-related is sealed by the old key any more, and it opens nothing stored.
    let (sealed, enc) = totp_row(&db, user).await;
    assert!(sealed.is_none());
    let enc = enc.expect("re-sealed under the installation data key");
    let mut su = db.superuser_unsafe().await;
    let left: i64 =
        sqlx::query_scalar("select count(*) from user_totp where secret_sealed is not null")
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(left, 0);
    drop(su);
    let old = LegacyIdentityKey::from_bytes(&old_key).unwrap();
    assert!(old.open_totp(user, &enc).is_err());
    // The ciphertext names the installation key version that sealed it.
    let versions = installation_key_rows(&db).await;
    assert_eq!(versions, vec![(1, 1)]);
    assert_eq!(field_dek_version(&enc).unwrap(), DekVersion::FIRST);

    // The user signs in with the same authenticator.
    let key = TotpKey::new(&secret, "Chartroom", &email).unwrap();
    let (s, token) = sign_in_with_totp(&app, &email, &key).await;
    assert_eq!(s, StatusCode::OK);
    let (s, me) = call(&app, Method::GET, "/api/v1/me", Some(&token), None).await;
    assert_eq!(
        (s, &me["second_factor_done"]),
        (StatusCode::OK, &json!(true))
    );
    assert_eq!(
        my_invitations(&app, invitee).await,
        vec![invitation.to_string()]
    );

    // Idempotent: a second start finds nothing to do; the move was audited once.
    let again = owner.migrate_installation_secrets(&file).await.unwrap();
    assert_eq!(again, InstallationMigration::default());
    assert_eq!(
        installation_events(&db, "key.encrypt_existing").await,
        vec![json!({"totp_secrets": 1})]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// issue 15.5 — req: ENC-02. `keys rotate-kek` rewraps the installation data key with the
// practices' keys, `keys retire-kek` then succeeds, and a fresh server (empty key cache, old
// KEK version gone) still signs the user in with TOTP and finds invitations. The installation
// key is never rotated or shredded on its own.
#[tokio::test]
async fn totp_sign_in_survives_rotate_kek_and_retire_kek() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let user = w.a.user("clinician");
    let email = email_of(&db, user).await;
    let (key, _, _) = enroll(&app, &email).await;
    let invitee = w.b.user("reception");
    let owner_token = app.token(w.a.user("owner")).await;
    let (s, sent) = call(
        &app,
        Method::POST,
        &format!("/api/v1/practices/{}/invitations", w.a.id),
        Some(&owner_token),
        Some(&json!({"email": email_of(&db, invitee).await, "roles": ["clinician"]})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{sent}");
    let invitation = sent["invitation_id"].as_str().unwrap().to_owned();

    // Sealed under the installation data key, version 1, wrapped by KEK version 1.
    let (sealed, enc) = totp_row(&db, user).await;
    assert!(sealed.is_none());
    let enc = enc.unwrap();
    assert_eq!(field_dek_version(&enc).unwrap(), DekVersion::FIRST);
    assert_eq!(installation_key_rows(&db).await, vec![(1, 1)]);

    // `keys rotate-kek`, then `keys retire-kek` (what the commands run).
    let owner = db.owner().await;
    let (kek, report) = owner.rotate_kek_audited().await.unwrap();
    assert_eq!(kek.version, 2);
    assert_eq!(
        report.rewrapped, 3,
        "both practices' data keys and the installation's"
    );
    assert_eq!(installation_key_rows(&db).await, vec![(1, 2)]);
    assert_eq!(
        installation_events(&db, "key.rotate_kek").await,
        vec![json!({"kek_id": kek.id, "kek_version": 2})]
    );
    let keyring = owner.keyring().unwrap();
    keyring
        .retire_kek_versions_below(kek.version)
        .await
        .expect("no data key is left on KEK version 1, the installation's included");
    // The KEK rotation rewrapped the key; the secret itself was not touched.
    assert_eq!(totp_row(&db, user).await.1.unwrap(), enc);

    // A fresh server: nothing cached, KEK version 1 retired.
    let app2 = TestApp::start(&db).await;
    app2.clock.advance(Duration::seconds(90)); // past the step spent at enrollment
    let (s, _) = sign_in_with_totp(&app2, &email, &key).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "TOTP sign-in after rotate-kek + retire-kek"
    );
    assert_eq!(my_invitations(&app2, invitee).await, vec![invitation]);

    // The installation key is rotated with the KEK only: per-practice rotation and
    // shredding refuse it, and nothing changed.
    let err = owner
        .rotate_data_key_audited(PracticeId::SYSTEM, false, 100, None, &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CRYPTO-0009"), "{err}");
    let err = owner
        .shred_practice_audited(PracticeId::SYSTEM)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CRYPTO-0009"), "{err}");
    assert_eq!(installation_key_rows(&db).await, vec![(1, 2)]);
    app2.clock.advance(Duration::seconds(60));
    let (s, _) = sign_in_with_totp(&app2, &email, &key).await;
    assert_eq!(s, StatusCode::OK);
}
