//! `chartroom inventory` through the real binary (req OPS-04): what it prints follows the
//! options `serve` takes (database, blob store, checkpoint mirror, listener, integrations, key
//! provider), the places PHI lives are the sealed-column registry's, and no credential or
//! key material is printed, nor any key created.

use std::process::Output;

use serde_json::Value;
use tokio::process::Command;

use crate::subprocessors::{SECRET, config, signed_baa, temp_dir};

async fn inventory(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CHARTROOM_DATABASE_URL")
        .env_remove("CHARTROOM_BLOB_STORE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap()
}

// req: OPS-04
#[tokio::test]
async fn inventory_prints_the_live_configuration_without_secrets() {
    let dir = temp_dir("inventory");
    let data = dir.join("data");
    let integrations = dir.join("integrations.toml");
    std::fs::write(&integrations, config(&dir, &signed_baa())).unwrap();
    let mirror = dir.join("mirror");
    let db_password = "Synthetic-db-password-0451";
    let database_url = format!(
        "postgres://chartroom_app:{db_password}@db.internal.example:6432/records?sslmode=verify-full"
    );
    let args = [
        "--database-url",
        database_url.as_str(),
        "--blob-store-url",
        "file:///srv/chartroom-blobs",
        "--checkpoint-mirror-dir",
        mirror.to_str().unwrap(),
        "inventory",
        "--format",
        "json",
        "--listen",
        "127.0.0.1:9443",
        "--integrations",
        integrations.to_str().unwrap(),
        "--scribe-local",
        "off",
        "--audit-sink",
        "https://logs.clinic.internal:4318/v1/logs",
        "--audit-sink-host",
        "logs.clinic.internal",
    ];
    let out = inventory(&data, &args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    for secret in [SECRET, db_password] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    // No key was created to be listed.
    assert!(!data.join("secrets").join("kek.key").exists());
    let inv: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(inv["version"], 1);

    let store = |name: &str| -> Vec<Value> {
        inv["data_stores"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["name"] == name)
            .cloned()
            .collect()
    };
    let db = &store("database")[0];
    assert_eq!(db["kind"], "PostgreSQL, external");
    assert_eq!(db["location"], "db.internal.example:6432/records");
    assert!(
        db["protection"]
            .as_str()
            .unwrap()
            .contains("sslmode=verify-full")
    );
    assert_eq!(
        store("blob store")[0]["location"],
        "file:///srv/chartroom-blobs"
    );
    assert_eq!(
        store("checkpoint mirror")[0]["location"],
        mirror.to_str().unwrap()
    );
    // The audit log's copy at the operator's sink (req AUD-08), and its flow.
    assert_eq!(
        store("audit log sink")[0]["location"],
        "https://logs.clinic.internal/v1/logs"
    );
    assert!(
        inv["data_flows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["to"] == "audit log sink" && f["phi"] == true)
    );

    let listeners = inv["listeners"].as_array().unwrap();
    assert_eq!(
        listeners.len(),
        1,
        "external database, local scribe off: {listeners:?}"
    );
    assert_eq!(listeners[0]["address"], "127.0.0.1:9443");
    assert_eq!(listeners[0]["protocol"], "HTTPS, TLS 1.3 only");

    let kek = &inv["keys"][0];
    assert_eq!(kek["provider"], "local key file");
    assert!(kek["id"].is_null());

    let subs: Vec<&str> = inv["subprocessors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(subs, ["sms.telnyx", "payments.stripe"]);
    let telnyx = &inv["subprocessors"][0];
    assert_eq!(telnyx["touches_phi"], true);
    assert_eq!(telnyx["baa"], "signed");
    assert_eq!(telnyx["hosts"][0], "api.telnyx.com");
    assert_eq!(inv["subprocessors"][1]["touches_phi"], false);

    // Every table of the sealed-column registry, with its sealed columns, and nothing else
    // in the database but the audit log.
    let places: Vec<(String, Vec<String>)> = inv["phi_locations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["store"] == "database")
        .map(|p| {
            (
                p["place"].as_str().unwrap().to_owned(),
                p["sealed_columns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    let mut expected: Vec<(String, Vec<String>)> = store::sealed_columns::TABLES
        .iter()
        .map(|t| {
            (
                t.table.to_owned(),
                t.columns.iter().map(|c| c.enc.to_owned()).collect(),
            )
        })
        .collect();
    expected.push(("audit_event".to_owned(), Vec::new()));
    assert_eq!(places, expected);
    assert!(places.iter().any(|(t, c)| t == "patient" && !c.is_empty()));

    let flows = inv["data_flows"].as_array().unwrap();
    let to_telnyx = flows
        .iter()
        .find(|f| f["to"].as_str().unwrap().starts_with("sms.telnyx"))
        .unwrap();
    assert_eq!(to_telnyx["phi"], true);
    let to_db = flows.iter().find(|f| f["to"] == "database").unwrap();
    assert_eq!(to_db["transport"], "sslmode=verify-full");

    // Markdown: the same inventory as tables.
    let mut md_args = args.to_vec();
    let at = md_args.iter().position(|a| *a == "json").unwrap();
    md_args[at] = "markdown";
    let out = inventory(&data, &md_args).await;
    let md = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success());
    for heading in [
        "## Data stores",
        "## Keys (ids only, never material)",
        "## Listeners",
        "## Subprocessors",
        "## Where PHI lives",
        "## Data flows",
    ] {
        assert!(md.contains(heading), "{heading} missing:\n{md}");
    }
    assert!(md.contains("| sms.telnyx | vendor | yes | signed | US (us-east) | api.telnyx.com |"));
    assert!(!md.contains(SECRET) && !md.contains(db_password));

    // The embedded default: the database is the socket-only cluster under the data directory,
    // which is also a listener; an unverified external database is refused as `serve` does.
    let out = inventory(
        &data,
        &["inventory", "--format", "json", "--scribe-local", "off"],
    )
    .await;
    assert!(out.status.success());
    let inv: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inv["data_stores"][0]["kind"], "PostgreSQL, embedded");
    assert_eq!(inv["listeners"][1]["name"], "embedded PostgreSQL");
    assert_eq!(inv["subprocessors"].as_array().unwrap().len(), 0);
    let out = inventory(
        &data,
        &[
            "--database-url",
            "postgres://chartroom_app@db.internal.example/records?sslmode=disable",
            "inventory",
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sslmode=verify-full"));
    std::fs::remove_dir_all(&dir).unwrap();
}
