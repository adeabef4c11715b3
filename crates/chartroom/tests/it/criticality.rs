//! The criticality manifest and the scripted restore order (req CP-04): `docs/criticality.toml`
//! names every service, data store and key that `chartroom inventory` reports for an
//! installation with every option on; no component is restored before one it depends on;
//! `scripts/restore-drill` brings the components back in the manifest's order, step for step;
//! and the script restores a real backup of the demo into a new data directory, verified.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::process::Command;

use crate::backup::chartroom;
use crate::embedded_binary::{start, stop};
use crate::subprocessors::{config, signed_baa, temp_dir};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Component {
    order: i64,
    tier: i64,
    depends_on: Vec<String>,
}

fn manifest() -> BTreeMap<String, Component> {
    let text = std::fs::read_to_string(root().join("docs/criticality.toml")).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for c in doc["component"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap().to_owned();
        for key in ["kind", "restore"] {
            assert!(
                c.get(key)
                    .and_then(|v| v.as_str())
                    .is_some_and(|s| !s.is_empty()),
                "{name}: {key} missing"
            );
        }
        for key in ["rto_hours", "rpo_minutes"] {
            assert!(
                c.get(key)
                    .and_then(toml::Value::as_integer)
                    .is_some_and(|n| n >= 0),
                "{name}: {key} missing"
            );
        }
        let component = Component {
            order: c["restore_order"].as_integer().unwrap(),
            tier: c["tier"].as_integer().unwrap(),
            depends_on: c["depends_on"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect(),
        };
        assert!(
            out.insert(name.clone(), component).is_none(),
            "{name} listed twice"
        );
    }
    out
}

/// `chartroom inventory --format json` with every optional part configured.
async fn full_inventory() -> Value {
    let dir = temp_dir("criticality");
    let integrations = dir.join("integrations.toml");
    std::fs::write(&integrations, config(&dir, &signed_baa())).unwrap();
    let mirror = dir.join("mirror");
    let out = Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--checkpoint-mirror-dir", mirror.to_str().unwrap()])
        .args(["--checkpoint-mirror-url", "file:///srv/chartroom-mirror"])
        .args([
            "inventory",
            "--format",
            "json",
            "--listen",
            "127.0.0.1:9443",
        ])
        .args(["--integrations", integrations.to_str().unwrap()])
        .args(["--scribe-local", "on"])
        .args(["--audit-sink", "http://127.0.0.1:4318/v1/logs"])
        .env_remove("CHARTROOM_DATABASE_URL")
        .env_remove("CHARTROOM_BLOB_STORE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `step N "name" …` lines of the restore script: per step, the names it restores.
fn script_steps() -> Vec<(i64, BTreeSet<String>)> {
    let text = std::fs::read_to_string(root().join("scripts/restore-drill")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("step "))
        .map(|l| {
            let (order, rest) = l.split_once(' ').unwrap();
            let names = rest
                .split('"')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s.to_owned())
                .collect();
            (order.parse().unwrap(), names)
        })
        .collect()
}

// req: CP-04
#[tokio::test]
async fn the_manifest_lists_every_service_and_data_store_of_the_inventory() {
    let manifest = manifest();
    let inv = full_inventory().await;
    let mut named = BTreeSet::new();
    for (section, field) in [
        ("data_stores", "name"),
        ("listeners", "name"),
        ("keys", "name"),
    ] {
        for item in inv[section].as_array().unwrap() {
            named.insert(item[field].as_str().unwrap().to_owned());
        }
    }
    assert!(
        named.len() >= 12,
        "the inventory lists more than this: {named:?}"
    );
    let missing: Vec<&String> = named
        .iter()
        .filter(|n| !manifest.contains_key(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "in the inventory, not in docs/criticality.toml: {missing:?}"
    );

    for (name, c) in &manifest {
        assert!((1..=3).contains(&c.tier), "{name}: tier 1-3");
        for dep in &c.depends_on {
            let d = manifest
                .get(dep)
                .unwrap_or_else(|| panic!("{name} depends on {dep}, which is not listed"));
            if c.order > 0 && d.order > 0 {
                assert!(
                    d.order <= c.order,
                    "{name} (step {}) is restored before {dep} (step {})",
                    c.order,
                    d.order
                );
            }
        }
    }

    // The script restores exactly the manifest's steps, in order.
    let steps = script_steps();
    let orders: Vec<i64> = steps.iter().map(|s| s.0).collect();
    let mut expected: Vec<i64> = manifest
        .values()
        .map(|c| c.order)
        .filter(|o| *o > 0)
        .collect();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(orders, expected, "the script's steps");
    for (order, names) in steps {
        let want: BTreeSet<String> = manifest
            .iter()
            .filter(|(_, c)| c.order == order)
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(names, want, "step {order} of scripts/restore-drill");
    }
}

// req: CP-04
#[tokio::test]
async fn the_restore_script_brings_a_backup_back_in_the_manifests_order() {
    let dir = temp_dir("restore-drill");
    let (old, new) = (dir.join("old"), dir.join("new"));
    let demo = start(&old, "demo").await;
    stop(demo).await;
    let archive = dir.join("drill.crbk");
    let (ok, out, err) = chartroom(
        &old,
        &["backup", "create", "--out", archive.to_str().unwrap()],
    )
    .await;
    assert!(ok, "backup create: {out} {err}");

    let out = Command::new("bash")
        .arg(root().join("scripts/restore-drill"))
        .arg(old.join("secrets"))
        .arg(&archive)
        .arg(&new)
        .env("CHARTROOM", env!("CARGO_BIN_EXE_chartroom"))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("restore step "))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(printed, ["1", "2", "3", "4"]);
    assert!(stdout.contains("restored and verified in"), "{stdout}");

    // A second run into the now used directory refuses, changing nothing.
    let again = Command::new("bash")
        .arg(root().join("scripts/restore-drill"))
        .arg(old.join("secrets"))
        .arg(&archive)
        .arg(&new)
        .env("CHARTROOM", env!("CARGO_BIN_EXE_chartroom"))
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));
    let _ = std::fs::remove_dir_all(&dir);
}
