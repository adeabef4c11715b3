//! Auditing cannot be switched off (there is no switch, and the runtime role has no way
//! around the audit tables' rules), and audit times are UTC instants whose chain time never
//! runs backwards.

use std::path::Path;

use chrono::{Duration, Utc};
use domain::Clock as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Executor as _;
use testkit::{TestApp, TestDb, World};

use crate::util::{call, db_code};

/// Patient reads audited in practice `p` (as the superuser sees them: fixtures only).
async fn reads(su: &mut sqlx::PgConnection, p: domain::PracticeId) -> i64 {
    sqlx::query_scalar(
        "select count(*) from audit_event where practice_id = $1 and action = 'patient.read'",
    )
    .bind(p)
    .fetch_one(su)
    .await
    .unwrap()
}

// req: AUD-03 — a fresh install audits from its first request, and there is no switch to turn
// auditing off: no command-line option or environment variable, no practice setting, no
// route; the runtime role can neither disable nor skip the audit tables' triggers, nor remove
// a row.
#[tokio::test]
async fn auditing_is_on_from_the_start_and_has_no_off_switch() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let mut su = db.superuser_unsafe().await;
    let reception = app.token(w.a.user("reception")).await;
    let path = format!("/api/v1/practices/{}/patients/{}", w.a.id, w.a.patient);
    assert_eq!(reads(&mut su, w.a.id).await, 0);
    let (s, _) = call(&app, Method::GET, &path, Some(&reception), None).await;
    assert_eq!(s, StatusCode::OK);
    let (actor, patient): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "select actor_id, patient_id from audit_event where practice_id = $1 and action = 'patient.read'",
    )
    .bind(w.a.id)
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(actor.to_string(), w.a.user("reception").to_string());
    assert_eq!(patient.to_string(), w.a.patient.to_string());

    // No option of any command turns auditing off.
    for args in [
        &["--help"][..],
        &["serve", "--help"][..],
        &["demo", "--help"][..],
        &["audit", "--help"][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chartroom"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout).to_lowercase();
        for line in help.lines().filter(|l| l.contains("audit")) {
            for word in ["disable", "no-audit", "audit-off", "skip", "without audit"] {
                assert!(!line.contains(word), "{args:?}: {line}");
            }
        }
    }
    // No environment variable either: every one the binary and the server read, by name.
    let mut sources = Vec::new();
    for dir in [
        "crates/chartroom/src",
        "crates/server/src",
        "crates/store/src",
    ] {
        crate::util::source_files(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(dir),
            &["rs"],
            &mut sources,
        );
    }
    for f in &sources {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains("\"CHARTROOM_") {
                let upper = line.to_uppercase();
                assert!(
                    !(upper.contains("AUDIT")
                        && (upper.contains("DISABLE") || upper.contains("OFF"))),
                    "{}:{}: {line}",
                    f.display(),
                    i + 1
                );
            }
        }
    }
    // No practice setting: the settings are a closed set, and an owner's attempt is refused
    // with nothing stored.
    let owner = app.token(w.a.user("owner")).await;
    let practice = format!("/api/v1/practices/{}", w.a.id);
    for settings in [
        json!({"audit": false}),
        json!({"audit_enabled": false}),
        json!({"auditing": "off"}),
    ] {
        let (s, v) = call(
            &app,
            Method::PATCH,
            &practice,
            Some(&owner),
            Some(&json!({ "settings": settings })),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    }
    let (_, p) = call(&app, Method::GET, &practice, Some(&owner), None).await;
    assert!(p["settings"].get("audit").is_none(), "{p}");
    // No route: nothing in the API description changes the audit log's configuration.
    let doc = serde_json::to_value(server::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.contains("/audit") {
            for method in item.as_object().unwrap().keys() {
                assert_eq!(method, "get", "{method} {path}: the audit routes only read");
            }
        }
    }

    // The runtime role cannot get around the audit tables.
    let mut rt = db.runtime_conn().await;
    for sql in [
        "alter table audit_event disable trigger all",
        "alter table audit_event disable trigger audit_event_no_update_delete",
        "drop trigger audit_event_no_update_delete on audit_event",
        "set session_replication_role = replica",
        "delete from audit_event",
        "truncate audit_event",
        "update audit_event set action = 'patient.list'",
    ] {
        let e = rt.execute(sql).await.unwrap_err();
        assert_eq!(db_code(&e), "42501", "{sql}: {e}");
    }
    // The read is still there, and the next read adds another.
    let (s, _) = call(&app, Method::GET, &path, Some(&reception), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(reads(&mut su, w.a.id).await, 2);
}

// req: AUD-04 — audit times are `timestamptz` instants (UTC whatever the session's time
// zone), the API reports them in UTC, and each chain's time never runs backwards, even when
// the host clock is stepped back between two sequencer passes.
#[tokio::test]
async fn audit_times_are_utc_and_monotonic_per_chain() {
    let db = TestDb::new().await;
    let w = World::build(&db).await;
    let app = TestApp::start(&db).await;
    let mut su = db.superuser_unsafe().await;

    // Every time column of every audit table is a timestamptz.
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "select table_name::text, column_name::text, data_type::text from information_schema.columns
          where table_schema = 'public' and table_name like 'audit%' and data_type like 'timestamp%'
          order by 1, 2",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(
        columns
            .iter()
            .any(|(t, c, _)| t == "audit_event" && c == "occurred_at")
            && columns
                .iter()
                .any(|(t, c, _)| t == "audit_sequence" && c == "sequenced_at"),
        "{columns:?}"
    );
    for (t, c, ty) in &columns {
        assert_eq!(ty, "timestamp with time zone", "{t}.{c}");
    }

    let owner = app.token(w.a.user("owner")).await;
    let path = format!("/api/v1/practices/{}/patients/{}", w.a.id, w.a.patient);
    // A read with a session of its own (the clock moves by hours below).
    let read = async || {
        let reception = app.token(w.a.user("reception")).await;
        let (s, _) = call(&app, Method::GET, &path, Some(&reception), None).await;
        assert_eq!(s, StatusCode::OK);
    };
    let t0 = app.clock.now();
    read().await;
    app.store.sequence_pending(t0).await.unwrap();

    // The same instant, whatever the reading session's time zone: only the rendering moves.
    let micros = |t: chrono::DateTime<Utc>| t.timestamp_micros();
    let query = "select occurred_at, occurred_at::text from audit_event
                  where practice_id = $1 and action = 'patient.read'";
    let mut seen = Vec::new();
    for zone in ["UTC", "Pacific/Chatham", "America/St_Johns"] {
        su.execute(format!("set time zone '{zone}'").as_str())
            .await
            .unwrap();
        let (at, text): (chrono::DateTime<Utc>, String) = sqlx::query_as(query)
            .bind(w.a.id)
            .fetch_one(&mut su)
            .await
            .unwrap();
        assert_eq!(micros(at), micros(t0), "{zone}");
        seen.push(text);
    }
    su.execute("set time zone 'UTC'").await.unwrap();
    assert!(seen[0].ends_with("+00"), "{seen:?}");
    assert!(seen[1] != seen[0] && seen[2] != seen[0], "{seen:?}");

    // The API reports UTC.
    let (s, page) = call(
        &app,
        Method::GET,
        &format!("/api/v1/practices/{}/audit/events", w.a.id),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    for e in page["items"].as_array().unwrap() {
        let t = e["occurred_at"].as_str().unwrap();
        assert!(t.ends_with('Z'), "{t}");
    }

    // The host clock is stepped back an hour: events keep their own (earlier) times, but the
    // chain's time stays put rather than running backwards.
    app.clock.advance(Duration::hours(-1));
    read().await;
    read().await;
    app.store
        .sequence_pending(t0 - Duration::hours(1))
        .await
        .unwrap();
    app.clock.advance(Duration::hours(2));
    read().await;
    app.store
        .sequence_pending(t0 + Duration::hours(1))
        .await
        .unwrap();
    let chain: Vec<(i64, chrono::DateTime<Utc>)> = sqlx::query_as(
        "select seq, sequenced_at from audit_sequence where practice_id = $1 order by seq",
    )
    .bind(w.a.id)
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(chain.len() >= 4, "{chain:?}");
    for pair in chain.windows(2) {
        assert!(pair[0].1 <= pair[1].1, "chain time ran backwards: {pair:?}");
    }
    assert_eq!(
        micros(chain.last().unwrap().1),
        micros(t0 + Duration::hours(1)),
        "and follows the clock again once it is ahead"
    );
}

/// `chartroom inventory --format FORMAT` on a configuration that needs no database.
fn inventory(data: &Path, format: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .arg("--data-dir")
        .arg(data)
        .args([
            "--database-url",
            "postgres://chartroom_app@db.internal.example:6432/records?sslmode=verify-full",
            "inventory",
            "--format",
            format,
            "--scribe-local",
            "off",
        ])
        .env_remove("CHARTROOM_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// req: AUD-04 — the deployment's clock check: the inventory says how audit times are kept and
// whether the host clock is synchronized (NTP), exactly as the host's `timedatectl` reports
// it (`unknown` where it cannot tell, as in a container).
#[tokio::test]
async fn the_inventory_reports_the_host_clock_synchronization() {
    let dir =
        std::env::temp_dir().join(format!("chartroom-clock-{}", uuid::Uuid::new_v4().simple()));
    let inv: serde_json::Value = serde_json::from_str(&inventory(&dir, "json")).unwrap();
    let clock = &inv["clock"];
    assert!(
        clock["audit_times"].as_str().unwrap().contains("UTC"),
        "{clock}"
    );
    let host = std::process::Command::new("timedatectl")
        .args(["show", "--property=NTPSynchronized", "--value"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| v == "yes" || v == "no")
        .unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(clock["synchronized"], host.as_str(), "{clock}");
    let md = inventory(&dir, "markdown");
    assert!(
        md.contains(&format!("Host clock synchronized (NTP): **{host}**")),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
