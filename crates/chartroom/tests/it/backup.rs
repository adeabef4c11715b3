//! Encrypted backups through the real binary on the embedded cluster: the restore drill
//! (CP-01, CP-02), the canary that finds no PHI outside the encrypted fields (ENC-01), tamper
//! and wrong-key detection, and crypto-shredding reaching a backup taken earlier.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use pgcluster::{Cluster, ClusterConfig, DATABASE, DbRole};
use serde_json::{Value, json};
use sqlx::Connection as _;
use store::crypto::{BlobStore, DirSecretStore, Keyring, LocalKeyProvider};
use tokio::process::Command;

use crate::embedded_binary::{client_for, sign_in, start_logging, stop};

/// Distinct, searchable fake PHI: never a real person.
const CANARY: &str = "Zqxcanaryvorn";
const CANARY_PHONE: &str = "+1 555 0199 4242";
const CANARY_EMAIL: &str = "zqxcanaryvorn@example.invalid";
const CANARY_NOTE: &str = "Zqxcanaryvorn note: synthetic finding 7Q9";
const CANARY_BLOB: &[u8] = b"Zqxcanaryvorn recording bytes 0123456789";

fn tmp(tag: &str) -> PathBuf {
    Path::new("/tmp").join(format!(
        "chartroom-it-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

/// Runs `chartroom --data-dir <dir> <args>` to its end: success, standard output, standard error.
pub(crate) async fn chartroom(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run chartroom");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_canary(what: &str, bytes: &[u8]) {
    for c in [
        CANARY.as_bytes(),
        CANARY_PHONE.as_bytes(),
        CANARY_EMAIL.as_bytes(),
        CANARY_NOTE.as_bytes(),
        CANARY_BLOB,
        b"0199 4242",
    ] {
        assert!(
            !contains(bytes, c),
            "{what} holds the canary {:?}",
            String::from_utf8_lossy(c)
        );
    }
}

fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Copies the key material of `from` (its whole `secrets/` directory) into `to`.
fn copy_secrets(from: &Path, to: &Path) {
    let src = from.join("secrets");
    for f in files(&src) {
        let rel = f.strip_prefix(&src).unwrap();
        let dst = to.join("secrets").join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dst).unwrap();
    }
    for d in [to.join("secrets"), to.join("secrets/practice-keys")] {
        if d.exists() {
            std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .unwrap();
        }
    }
}

/// A demo account's sign-in (from `demo-credentials.json`) and its TOTP once enrolled.
pub(crate) struct Demo {
    pub(crate) login: Value,
    pub(crate) totp: Option<(server::identity::totp::TotpKey, i64)>,
}

pub(crate) fn demo_login(dir: &Path, email: &str) -> Demo {
    let creds: Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo-credentials.json")).unwrap()).unwrap();
    let a = creds
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == email)
        .unwrap()
        .clone();
    Demo {
        login: json!({"email": a["email"], "password": a["password"]}),
        totp: None,
    }
}

/// The first practice of the signed-in user.
pub(crate) async fn practice_of(http: &reqwest::Client, base: &str, token: &str) -> String {
    let me = crate::util::get_json(http, &format!("{base}/api/v1/me"), token).await;
    me["practices"][0]["practice_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn get_patient(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    practice: &str,
    patient: &str,
) -> (u16, Value) {
    let r = http
        .get(format!(
            "{base}/api/v1/practices/{practice}/patients/{patient}"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A keyring on the data directory's own KEK, practice secrets and key table (the cluster must
/// be running), as the server builds it.
pub(crate) async fn keyring_for(dir: &Path, cluster: &Cluster) -> Arc<Keyring> {
    let provider = LocalKeyProvider::open(dir.join("secrets")).await.unwrap();
    let secrets = DirSecretStore::open(dir.join("secrets/practice-keys")).unwrap();
    let keys = store::keys::PgKeyStore::connect(cluster.connect_options(DbRole::Owner, DATABASE))
        .await
        .unwrap();
    Arc::new(
        Keyring::new(
            Arc::new(provider),
            Arc::new(keys),
            Arc::new(domain::SystemClock),
        )
        .with_practice_secrets(Arc::new(secrets)),
    )
}

// req: CP-01, CP-02, ENC-01
#[tokio::test]
async fn backup_drill_canary_tamper_and_shredding() {
    let a = tmp("bk-a");
    let log_a = tmp("bk-a-log");
    let archive = tmp("bk-archive").with_extension("crbk");

    // 1. A running installation with canary PHI in every encrypted patient and note field.
    let running = start_logging(
        &a,
        "demo",
        Stdio::from(std::fs::File::create(&log_a).unwrap()),
        "debug,sqlx=debug",
    )
    .await;
    let http = client_for(&a);
    let mut harbor = demo_login(&a, "reception@harbor.demo.invalid");
    let mut harbor_clin = demo_login(&a, "clinician@harbor.demo.invalid");
    let mut willow = demo_login(&a, "reception@willow.demo.invalid");
    let t_h = sign_in(&http, &running.base, &harbor.login, &mut harbor.totp).await;
    let t_hc = sign_in(
        &http,
        &running.base,
        &harbor_clin.login,
        &mut harbor_clin.totp,
    )
    .await;
    let t_w = sign_in(&http, &running.base, &willow.login, &mut willow.totp).await;
    let p_h = practice_of(&http, &running.base, &t_h).await;
    let p_w = practice_of(&http, &running.base, &t_w).await;
    let created: Value = http
        .post(format!("{}/api/v1/practices/{p_h}/patients", running.base))
        .bearer_auth(&t_h)
        .json(
            &json!({"given_name": CANARY, "family_name": CANARY, "date_of_birth": "1961-02-03",
                      "phone": CANARY_PHONE, "email": CANARY_EMAIL}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patient_h = created["patient_id"].as_str().unwrap().to_owned();
    // Reception puts the new patient on the clinician's care team.
    let me: Value = http
        .get(format!("{}/api/v1/me", running.base))
        .bearer_auth(&t_hc)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let assigned = http
        .put(format!(
            "{}/api/v1/practices/{p_h}/patients/{patient_h}/assigned-clinician",
            running.base
        ))
        .bearer_auth(&t_h)
        .json(&json!({ "clinician_id": me["user_id"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(assigned.status(), 204);
    let note = http
        .post(format!(
            "{}/api/v1/practices/{p_h}/patients/{patient_h}/notes",
            running.base
        ))
        .bearer_auth(&t_hc)
        .json(&json!({ "content": {"subjective": CANARY_NOTE, "plan": CANARY_NOTE} }))
        .send()
        .await
        .unwrap();
    assert_eq!(note.status(), 201);
    let found: Value = http
        .post(format!(
            "{}/api/v1/practices/{p_h}/patients/search",
            running.base
        ))
        .bearer_auth(&t_h)
        .json(&json!({ "name_prefix": &CANARY[..6] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        found.to_string().contains(&patient_h),
        "search works: {found}"
    );
    let created: Value = http
        .post(format!("{}/api/v1/practices/{p_w}/patients", running.base))
        .bearer_auth(&t_w)
        .json(&json!({"given_name": "Ilse", "family_name": "Morrowgate"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patient_w = created["patient_id"].as_str().unwrap().to_owned();
    let (status, got) = get_patient(&http, &running.base, &t_h, &p_h, &patient_h).await;
    assert_eq!((status, got["family_name"].as_str()), (200, Some(CANARY)));
    stop(running).await;
    // A restored database remembers the last TOTP step used before the backup: sign-ins on a
    // restored installation continue from there.
    let harbor_step = harbor.totp.as_ref().unwrap().1;
    let willow_step = willow.totp.as_ref().unwrap().1;

    // 2. A canary blob through the blob store, then the database's table files and a plain
    //    pg_dump: no canary anywhere.
    let cluster = Cluster::start(ClusterConfig::new(&a)).await.unwrap();
    let keyring = keyring_for(&a, &cluster).await;
    let blobs = BlobStore::local(a.join("blobs"), keyring.clone()).unwrap();
    let practice_h: domain::PracticeId = p_h.parse().unwrap();
    let stored = blobs.put_stream(practice_h, CANARY_BLOB).await.unwrap();
    let back = blobs
        .get_range(practice_h, stored.id, 0..CANARY_BLOB.len() as u64)
        .await
        .unwrap();
    assert_eq!(
        &back[..],
        CANARY_BLOB,
        "the blob was written and reads back"
    );
    let env = cluster.libpq_env(DbRole::Superuser, DATABASE);
    let mut su =
        sqlx::PgConnection::connect_with(&cluster.connect_options(DbRole::Superuser, DATABASE))
            .await
            .unwrap();
    sqlx::query("checkpoint").execute(&mut su).await.unwrap();
    let dump =
        std::process::Command::new(pgcluster::find_pg_bin_dir(None).unwrap().join("pg_dump"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
    assert!(dump.status.success());
    assert!(
        contains(&dump.stdout, b"COPY public.patient"),
        "a real dump"
    );
    assert_no_canary("pg_dump", &dump.stdout);
    let (data_dir,): (String,) = sqlx::query_as("select current_setting('data_directory')")
        .fetch_one(&mut su)
        .await
        .unwrap();
    let rels: Vec<(String,)> = sqlx::query_as(
        "select pg_relation_filepath(c.oid) from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'public' and c.relkind in ('r', 't', 'i') and pg_relation_filepath(c.oid) is not null",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(rels.len() > 10);
    for (rel,) in rels {
        let path = Path::new(&data_dir).join(rel);
        if let Ok(bytes) = std::fs::read(&path) {
            assert_no_canary(&format!("table file {}", path.display()), &bytes);
        }
    }
    for f in files(&a.join("blobs")) {
        assert_no_canary("object store", &std::fs::read(f).unwrap());
    }
    drop(su);
    cluster.stop().await.unwrap();

    // 3. The backup: written, verified, no canary inside.
    let began = Instant::now();
    let (ok, out, err) = chartroom(
        &a,
        &["backup", "create", "--out", archive.to_str().unwrap()],
    )
    .await;
    assert!(ok, "backup create: {out} {err}");
    let backup_secs = began.elapsed().as_secs_f64();
    let bytes = std::fs::read(&archive).unwrap();
    assert_no_canary("backup archive", &bytes);
    assert!(!contains(&bytes, b"PGDMP"), "the dump inside is encrypted");
    let (ok, out, err) = chartroom(&a, &["backup", "verify", archive.to_str().unwrap()]).await;
    assert!(ok && out.contains("archive OK"), "verify: {out} {err}");
    assert!(out.contains("1 blob objects"), "{out}");

    // 4. One flipped byte, a truncation, or another installation's KEK: refused, clearly.
    let bad = tmp("bk-bad").with_extension("crbk");
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    std::fs::write(&bad, &flipped).unwrap();
    let (ok, out, err) = chartroom(&a, &["backup", "verify", bad.to_str().unwrap()]).await;
    assert!(
        !ok && err.contains("does not decrypt"),
        "tampered: {out} {err}"
    );
    std::fs::write(&bad, &bytes[..bytes.len() - 1000]).unwrap();
    let (ok, _, err) = chartroom(&a, &["backup", "verify", bad.to_str().unwrap()]).await;
    assert!(!ok && err.contains("does not decrypt"), "truncated: {err}");
    let stranger = tmp("bk-stranger");
    let (ok, _, err) = chartroom(&stranger, &["backup", "verify", archive.to_str().unwrap()]).await;
    assert!(
        !ok && err.contains("key-encryption key did not write"),
        "wrong KEK: {err}"
    );

    // 5. The restore drill: a new data directory with the original's secrets.
    let b = tmp("bk-b");
    copy_secrets(&a, &b);
    let began = Instant::now();
    let (ok, out, err) = chartroom(&b, &["backup", "restore", archive.to_str().unwrap()]).await;
    assert!(ok && out.contains("counts match"), "restore: {out} {err}");
    let restore_secs = began.elapsed().as_secs_f64();
    // A second restore into the now populated target is refused and changes nothing.
    let (ok, _, err) = chartroom(&b, &["backup", "restore", archive.to_str().unwrap()]).await;
    assert!(!ok && err.contains("not empty"), "{err}");
    let (ok, out, err) = chartroom(&b, &["audit", "verify"]).await;
    assert!(ok, "audit verify after restore: {out} {err}");
    assert_eq!(out.matches("no problems found").count(), 3, "{out}");
    let log_b = tmp("bk-b-log");
    let running = start_logging(
        &b,
        "serve",
        Stdio::from(std::fs::File::create(&log_b).unwrap()),
        "debug,sqlx=debug",
    )
    .await;
    harbor.totp.as_mut().unwrap().1 = harbor_step;
    let t_h = sign_in(&http, &running.base, &harbor.login, &mut harbor.totp).await;
    let (status, got) = get_patient(&http, &running.base, &t_h, &p_h, &patient_h).await;
    assert_eq!(status, 200);
    assert_eq!(got["family_name"], CANARY);
    assert_eq!(got["phone"], CANARY_PHONE);
    stop(running).await;
    let c = Cluster::start(ClusterConfig::new(&b)).await.unwrap();
    let back = BlobStore::local(b.join("blobs"), keyring_for(&b, &c).await)
        .unwrap()
        .get_range(practice_h, stored.id, 0..CANARY_BLOB.len() as u64)
        .await
        .unwrap();
    assert_eq!(&back[..], CANARY_BLOB, "the blob is restored");
    c.stop().await.unwrap();
    println!(
        "restore drill: backup {backup_secs:.1} s, restore {restore_secs:.1} s, archive {} bytes",
        bytes.len()
    );

    // 6. Shredding Harbor in the live installation reaches the earlier backup: restored with
    //    the installation's current secrets, Harbor's records do not decrypt; Willow's do;
    //    the audit chain still verifies.
    let (ok, out, err) = chartroom(&a, &["keys", "shred", "--practice", &p_h, "--confirm"]).await;
    assert!(ok, "shred: {out} {err}");
    let d = tmp("bk-d");
    copy_secrets(&a, &d);
    let (ok, out, err) = chartroom(&d, &["backup", "restore", archive.to_str().unwrap()]).await;
    assert!(ok, "restore of the earlier backup: {out} {err}");
    let (ok, out, err) = chartroom(&d, &["audit", "verify"]).await;
    assert!(
        ok && out.matches("no problems found").count() == 3,
        "{out} {err}"
    );
    let log_d = tmp("bk-d-log");
    let running = start_logging(
        &d,
        "serve",
        Stdio::from(std::fs::File::create(&log_d).unwrap()),
        "info",
    )
    .await;
    harbor.totp.as_mut().unwrap().1 = harbor_step;
    willow.totp.as_mut().unwrap().1 = willow_step;
    let t_h = sign_in(&http, &running.base, &harbor.login, &mut harbor.totp).await;
    let t_w = sign_in(&http, &running.base, &willow.login, &mut willow.totp).await;
    let (status, got) = get_patient(&http, &running.base, &t_h, &p_h, &patient_h).await;
    assert_eq!(status, 500, "shredded practice: {got}");
    assert!(!got.to_string().contains(CANARY));
    let (status, got) = get_patient(&http, &running.base, &t_w, &p_w, &patient_w).await;
    assert_eq!(
        (status, got["family_name"].as_str()),
        (200, Some("Morrowgate"))
    );
    stop(running).await;
    let c = Cluster::start(ClusterConfig::new(&d)).await.unwrap();
    let k = keyring_for(&d, &c).await;
    let shredded = BlobStore::local(d.join("blobs"), k)
        .unwrap()
        .get_range(practice_h, stored.id, 0..4)
        .await;
    assert!(
        shredded.is_err(),
        "the shredded practice's blob does not decrypt"
    );
    c.stop().await.unwrap();

    // 7. No server log line of any run carries the canary.
    for log in [&log_a, &log_b, &log_d] {
        let text = std::fs::read(log).unwrap();
        assert!(!text.is_empty());
        assert_no_canary("server log", &text);
    }
    for p in [
        &a, &b, &d, &stranger, &log_a, &log_b, &log_d, &archive, &bad,
    ] {
        let _ = std::fs::remove_dir_all(p);
        let _ = std::fs::remove_file(p);
    }
}
