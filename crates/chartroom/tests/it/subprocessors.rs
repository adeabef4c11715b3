//! Issue 19.4, the subprocessor registry: the integrations file through the real binary (no
//! BAA, no start; the published registry equals the configuration; a restart with the same
//! file records nothing), dated changes recorded once, the notice period on the injected
//! clock, the JSON document, the Atom feed (parsed by an XML parser), the public page, and the
//! owners' notices with their authorization matrix.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use chrono::{Duration, SubsecRound as _, Utc};
use domain::Clock as _;
use egress::registry::{ChangeKind, Integrations};
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use testkit::{TestApp, TestDb, World};
use tokio::process::Command;

use crate::embedded_binary::{client_for, launch, stop};
use crate::web_pages::{client, request, request_id};

/// A secret no response, page, feed or message may ever show.
pub(crate) const SECRET: &str = "sk_test_SYNTHETIC0123456789registry";
const BAA_DOC: &str = "Telnyx BAA 2026-10 contract 4471";

pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    let dir = Path::new("/tmp").join(format!(
        "chartroom-it-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 0600 credential file holding the synthetic secret.
fn secret_file(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, SECRET).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Telnyx (PHI, with `baa` as given) and Stripe (no PHI), with credential files in `dir`.
pub(crate) fn config(dir: &Path, baa: &str) -> String {
    let telnyx_key = secret_file(dir, "telnyx-key");
    let stripe_key = secret_file(dir, "stripe-key");
    format!(
        r#"
[[integration]]
kind = "sms"
vendor = "telnyx"
base_url = "https://api.telnyx.com/v2"
added = 2026-11-02
location = {{ country = "US", region = "us-east" }}
credentials = {{ api_key_file = "{}" }}
sender = {{ sms_number = "+15555550100" }}
{baa}

[[integration]]
kind = "payments"
vendor = "stripe"
base_url = "https://api.stripe.com"
added = 2026-11-03
location = {{ country = "US" }}
credentials = {{ api_key_file = "{}" }}
"#,
        telnyx_key.display(),
        stripe_key.display()
    )
}

pub(crate) fn signed_baa() -> String {
    format!("baa = {{ status = \"signed\", signed_on = 2026-10-30, document = \"{BAA_DOC}\" }}")
}

async fn serve_refused(data_dir: &Path, file: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--integrations"])
        .arg(file)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "serve must refuse to start");
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains(SECRET), "{err}");
    assert!(!data_dir.join("pg").exists(), "nothing was started: {err}");
    err
}

// req: EGR-04 — a PHI-touching integration without a signed BAA refuses the start, naming the
// vendor and what is missing; so do an inline secret and a credential file others can read.
#[tokio::test]
async fn serve_refuses_to_start_without_a_baa_or_with_a_bad_file() {
    let dir = temp_dir("registry-refused");
    let data = dir.join("data");
    let file = dir.join("integrations.toml");

    std::fs::write(&file, config(&dir, "")).unwrap();
    let err = serve_refused(&data, &file).await;
    assert!(err.contains("Telnyx") && err.contains("sms"), "{err}");
    assert!(err.contains("not BAA-covered"), "{err}");
    assert!(err.contains("signed BAA"), "{err}");

    std::fs::write(&file, config(&dir, "baa = { status = \"not_required\" }")).unwrap();
    let err = serve_refused(&data, &file).await;
    assert!(
        err.contains("Telnyx") && err.contains("not_required"),
        "{err}"
    );

    // The default file in the data directory is read when no --integrations is given.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("integrations.toml"), config(&dir, "")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Telnyx"));
    std::fs::remove_file(data.join("integrations.toml")).unwrap();

    // A secret written inline.
    let inline = config(&dir, &signed_baa()).replace(
        &format!("api_key_file = \"{}\"", dir.join("telnyx-key").display()),
        &format!("api_key = \"{SECRET}\""),
    );
    std::fs::write(&file, inline).unwrap();
    let err = serve_refused(&data, &file).await;
    assert!(
        err.contains("`api_key`") && err.contains("api_key_file"),
        "{err}"
    );

    // A credential file readable by others.
    std::fs::write(&file, config(&dir, &signed_baa())).unwrap();
    std::fs::set_permissions(
        dir.join("stripe-key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = serve_refused(&data, &file).await;
    assert!(
        err.contains("api_key_file") && err.contains("0644"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// req: EGR-04 — through the real binary: the published registry equals the configuration
// (the new PHI-touching vendor pending for the notice period, the other active), with no
// secret, path or document reference; a restart with the same file records no change.
#[tokio::test]
async fn serve_publishes_the_configured_registry_and_records_it_once() {
    let dir = temp_dir("registry-serve");
    let data = dir.join("data");
    let file = dir.join("integrations.toml");
    std::fs::write(&file, config(&dir, &signed_baa())).unwrap();
    let start = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chartroom"));
        cmd.arg("--data-dir")
            .arg(&data)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--subprocessor-notice-days",
                "14",
            ])
            .env("CHARTROOM_INTEGRATIONS", &file)
            .env("RUST_LOG", "warn");
        cmd
    };
    let before = Utc::now();
    let server = launch(start()).await;
    let http = client_for(&data);
    let get = async |base: &str| -> (serde_json::Value, String) {
        let res = http
            .get(format!("{base}/.well-known/subprocessors.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let text = res.text().await.unwrap();
        (serde_json::from_str(&text).unwrap(), text)
    };
    let (doc, text) = get(&server.base).await;
    for hidden in [SECRET, BAA_DOC, "telnyx-key", "api.telnyx.com", "/tmp/"] {
        assert!(!text.contains(hidden), "{hidden} published");
    }
    assert_eq!(doc["notice_days"], 14);
    let subs = doc["subprocessors"].as_array().unwrap();
    let ids: Vec<&str> = subs.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["payments.stripe", "sms.telnyx"]);
    let telnyx = &subs[1];
    assert_eq!(telnyx["touches_phi"], true);
    assert_eq!(telnyx["baa"]["status"], "signed");
    assert_eq!(telnyx["baa"]["signed_on"], "2026-10-30");
    assert_eq!(telnyx["location"]["region"], "us-east");
    assert_eq!(telnyx["date_added"], "2026-11-02");
    assert_eq!(telnyx["status"], "pending");
    let effective: chrono::DateTime<Utc> =
        telnyx["effective_at"].as_str().unwrap().parse().unwrap();
    assert!(effective >= before + Duration::days(14) - Duration::seconds(1));
    assert!(effective <= Utc::now() + Duration::days(14));
    assert_eq!(subs[0]["status"], "active");
    assert_eq!(subs[0]["touches_phi"], false);
    assert_eq!(doc["changes"].as_array().unwrap().len(), 2);
    stop(server).await;

    let server = launch(start()).await;
    let (again, _) = get(&server.base).await;
    assert_eq!(again["changes"], doc["changes"], "same file: no new change");
    assert_eq!(again["subprocessors"], doc["subprocessors"]);
    stop(server).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The three-integration registry used by the HTTP tests.
fn integrations(baa_date: &str, region: &str) -> Integrations {
    Integrations::parse(&integrations_text(baa_date, region), "integrations.toml").unwrap()
}

/// [`integrations`] without Stripe.
fn without_stripe() -> Integrations {
    let text = integrations_text("2026-10-30", "us-east");
    let (head, tail) = text
        .split_once("[[integration]]\nkind = \"payments\"")
        .unwrap();
    let (_, rest) = tail.split_once("\n\n").unwrap();
    Integrations::parse(&format!("{head}{rest}"), "integrations.toml").unwrap()
}

fn integrations_text(baa_date: &str, region: &str) -> String {
    format!(
        r#"
[[integration]]
kind = "sms"
vendor = "telnyx"
base_url = "https://api.telnyx.com/v2"
added = 2026-11-02
location = {{ country = "US", region = "{region}" }}
credentials = {{ api_key_file = "/etc/chartroom/telnyx-key" }}
sender = {{ sms_number = "+15555550100" }}
baa = {{ status = "signed", signed_on = {baa_date}, document = "{BAA_DOC}" }}

[[integration]]
kind = "payments"
vendor = "stripe"
base_url = "https://api.stripe.com"
added = 2026-11-03
location = {{ country = "US" }}
credentials = {{ api_key_file = "/etc/chartroom/stripe-key" }}

[[integration]]
kind = "email"
vendor = "smtp"
hosting = "self_hosted"
base_url = "smtp://mail.clinic.internal:587"
added = 2026-11-04
location = {{ country = "CA" }}
sender = {{ email_from = "desk@clinic.example" }}
"#
    )
}

async fn change_rows(db: &TestDb) -> i64 {
    let mut su = db.superuser_unsafe().await;
    sqlx::query_scalar("select count(*) from subprocessor_change")
        .fetch_one(&mut su)
        .await
        .unwrap()
}

// req: EGR-04 — changes are recorded once and dated; the history is append-only for the
// runtime role.
#[tokio::test]
async fn changes_are_recorded_once_dated_and_append_only() {
    let db = TestDb::new().await;
    let store = db.store().await;
    // At the database's precision (microseconds), as the store records times.
    let t0 = Utc::now().trunc_subsecs(6);
    let notice = Duration::days(30);
    let first = store
        .record_subprocessors(&integrations("2026-10-30", "us-east").entries(), t0, notice)
        .await
        .unwrap();
    assert_eq!(first.changes.len(), 3);
    assert!(first.changes.iter().all(|c| c.kind == ChangeKind::Added));
    assert_eq!(change_rows(&db).await, 3);
    // Same configuration, later: nothing new.
    let again = store
        .record_subprocessors(
            &integrations("2026-10-30", "us-east").entries(),
            t0 + Duration::days(2),
            notice,
        )
        .await
        .unwrap();
    assert!(again.changes.is_empty());
    assert_eq!(again.state, first.state);
    assert_eq!(change_rows(&db).await, 3);
    // A new BAA date and region; Stripe and SMTP removed.
    let t1 = t0 + Duration::days(5);
    let mut changed = integrations("2026-11-20", "us-west").entries();
    changed.truncate(1);
    let r = store
        .record_subprocessors(&changed, t1, notice)
        .await
        .unwrap();
    let kinds: Vec<(String, ChangeKind)> = r
        .changes
        .iter()
        .map(|c| (c.integration.clone(), c.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("sms.telnyx".to_owned(), ChangeKind::Baa),
            ("sms.telnyx".to_owned(), ChangeKind::Location),
            ("email.smtp".to_owned(), ChangeKind::Removed),
            ("payments.stripe".to_owned(), ChangeKind::Removed),
        ]
    );
    let history = store.subprocessor_changes(100).await.unwrap();
    assert_eq!(history.len(), 7);
    assert!(
        history[..4]
            .iter()
            .all(|c| c.recorded_at == t1 && c.effective_at == t1)
    );
    assert_eq!(store.subprocessors().await.unwrap().len(), 1);
    // The runtime role only appends.
    let mut rt = db.runtime_conn().await;
    for sql in [
        "update subprocessor_change set summary = 'x'",
        "delete from subprocessor_change",
    ] {
        let e = sqlx::query(sql).execute(&mut rt).await.unwrap_err();
        assert_eq!(crate::util::db_code(&e), "42501", "{sql}");
    }
    // Not even a superuser rewrites it (short of disabling the trigger).
    let mut su = db.superuser_unsafe().await;
    let e = sqlx::query("delete from subprocessor_change")
        .execute(&mut su)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
}

// req: EGR-04 — the notice period on the injected clock: the new PHI-touching vendor is
// published `pending` with its effective date and kept off the adapters' allow-list until
// then; afterwards it is `active` and allowed. Removed vendors leave the list at once.
#[tokio::test]
async fn a_new_phi_vendor_is_pending_until_the_notice_period_ends() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db).await;
    let http = client();
    let now = app.clock.now();
    let config = integrations("2026-10-30", "us-east");
    let recording = app
        .store
        .record_subprocessors(&config.entries(), now, Duration::days(30))
        .await
        .unwrap();
    let registry = egress::registry::Registry::new(config, &recording.state);
    assert_eq!(
        registry.allowed_hosts(now),
        ["api.stripe.com", "mail.clinic.internal"]
    );
    let status = async || -> Vec<(String, String)> {
        let doc: serde_json::Value = http
            .get(app.url("/.well-known/subprocessors.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        doc["subprocessors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_owned(),
                    s["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let pending = [
        ("email.smtp".to_owned(), "active".to_owned()),
        ("payments.stripe".to_owned(), "active".to_owned()),
        ("sms.telnyx".to_owned(), "pending".to_owned()),
    ];
    assert_eq!(status().await, pending);
    app.clock.advance(Duration::days(30) - Duration::seconds(1));
    assert_eq!(status().await, pending);
    assert!(!registry.allows_host("api.telnyx.com", app.clock.now()));
    app.clock.advance(Duration::seconds(1));
    assert_eq!(
        status().await[2],
        ("sms.telnyx".to_owned(), "active".to_owned())
    );
    assert!(registry.allows_host("api.telnyx.com", app.clock.now()));
    // Stripe removed: off the list at once.
    let config = without_stripe();
    assert_eq!(config.list().len(), 2);
    let later = app.clock.now().trunc_subsecs(6);
    let r = app
        .store
        .record_subprocessors(&config.entries(), later, Duration::days(30))
        .await
        .unwrap();
    assert_eq!(r.changes.len(), 1);
    assert_eq!(r.changes[0].kind, ChangeKind::Removed);
    assert_eq!(r.changes[0].effective_at, later);
    let registry = egress::registry::Registry::new(config, &r.state);
    assert_eq!(
        registry.allowed_hosts(later),
        ["api.telnyx.com", "mail.clinic.internal"]
    );
}

/// Records the three integrations at the app's clock, then a BAA change a day later.
async fn recorded_app(db: &TestDb) -> TestApp {
    let app = TestApp::start(db).await;
    let now = app.clock.now();
    app.store
        .record_subprocessors(
            &integrations("2026-10-30", "us-east").entries(),
            now,
            Duration::days(30),
        )
        .await
        .unwrap();
    app.clock.advance(Duration::days(1));
    app.store
        .record_subprocessors(
            &integrations("2026-11-20", "us-east").entries(),
            app.clock.now(),
            Duration::days(30),
        )
        .await
        .unwrap();
    app
}

fn keys(v: &serde_json::Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

// req: EGR-04 — the JSON document's documented shape, public and cacheable, with no secret.
#[tokio::test]
async fn the_json_document_has_the_documented_shape() {
    let db = TestDb::new().await;
    let app = recorded_app(&db).await;
    let res = client()
        .get(app.url("/.well-known/subprocessors.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=300");
    let text = res.text().await.unwrap();
    for hidden in [
        BAA_DOC,
        "/etc/chartroom",
        "api.telnyx.com",
        "desk@clinic.example",
        "+1555",
    ] {
        assert!(!text.contains(hidden), "{hidden} published");
    }
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        keys(&doc),
        [
            "changes",
            "generated_at",
            "notice_days",
            "subprocessors",
            "version"
        ]
    );
    assert_eq!(doc["version"], 1);
    let subs = doc["subprocessors"].as_array().unwrap();
    assert_eq!(subs.len(), 3);
    for s in subs {
        assert_eq!(
            keys(s),
            [
                "baa",
                "data_categories",
                "date_added",
                "effective_at",
                "hosting",
                "id",
                "kind",
                "location",
                "phi_basis",
                "retention",
                "role",
                "status",
                "subprocessor",
                "touches_phi",
                "training",
                "vendor",
                "vendor_name",
            ]
        );
        assert_eq!(keys(&s["baa"]), ["signed_on", "status"]);
    }
    let by_id = |id: &str| subs.iter().find(|s| s["id"] == id).unwrap();
    let smtp = by_id("email.smtp");
    assert_eq!(smtp["hosting"], "self_hosted");
    assert_eq!(smtp["subprocessor"], false);
    assert_eq!(smtp["touches_phi"], true);
    assert_eq!(smtp["status"], "active");
    let stripe = by_id("payments.stripe");
    assert_eq!(stripe["touches_phi"], false);
    assert!(
        stripe["phi_basis"]
            .as_str()
            .unwrap()
            .contains("no PHI by construction")
    );
    let telnyx = by_id("sms.telnyx");
    assert_eq!(telnyx["baa"]["signed_on"], "2026-11-20");
    assert_eq!(telnyx["status"], "pending");
    let changes = doc["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 4);
    assert_eq!(changes[0]["change"], "baa");
    assert_eq!(
        keys(&changes[0]),
        [
            "change",
            "effective_at",
            "id",
            "integration",
            "recorded_at",
            "summary",
            "vendor_name"
        ]
    );
}

// req: EGR-04 — the Atom feed is well-formed XML and valid RFC 4287 in what it requires: a
// feed id, title, updated and author; per change an entry with an id, title and updated.
#[tokio::test]
async fn the_atom_feed_is_well_formed_with_one_entry_per_change() {
    use quick_xml::events::Event;
    let db = TestDb::new().await;
    let app = recorded_app(&db).await;
    let res = client()
        .get(app.url("/subprocessors.atom"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[CONTENT_TYPE],
        "application/atom+xml; charset=utf-8"
    );
    assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=300");
    let body = res.text().await.unwrap();
    assert!(!body.contains(BAA_DOC));
    // Walk every event: a parse error fails the test; collect the elements by path.
    let mut reader = quick_xml::Reader::from_str(&body);
    reader.config_mut().check_end_names = true;
    let mut path: Vec<String> = Vec::new();
    // The text of each open element (quick-xml reports entity references apart).
    let mut buffers: Vec<String> = Vec::new();
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut root_ns = None;
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                if path.is_empty() {
                    assert_eq!(name, "feed");
                    root_ns = e
                        .try_get_attribute("xmlns")
                        .unwrap()
                        .map(|a| String::from_utf8(a.value.to_vec()).unwrap());
                }
                path.push(name);
                buffers.push(String::new());
            }
            Event::End(_) => {
                let text = buffers.pop().unwrap();
                if !text.trim().is_empty() {
                    texts.push((path.join("/"), text.trim().to_owned()));
                }
                path.pop();
            }
            Event::Text(t) => {
                if let Some(b) = buffers.last_mut() {
                    b.push_str(&t.decode().unwrap());
                }
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().unwrap() {
                    Some(c) => c,
                    None => match &*r.decode().unwrap() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => panic!("undefined entity {other}"),
                    },
                };
                buffers.last_mut().unwrap().push(c);
            }
            Event::Empty(_) | Event::Decl(_) | Event::Comment(_) => {}
            Event::Eof => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(path.is_empty(), "every element closed");
    assert_eq!(root_ns.as_deref(), Some("http://www.w3.org/2005/Atom"));
    let all = |p: &str| -> Vec<&str> {
        texts
            .iter()
            .filter(|(k, _)| k == p)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(all("feed/id"), ["https://localhost/subprocessors.atom"]);
    assert_eq!(all("feed/title"), ["Subprocessor changes"]);
    assert_eq!(all("feed/author/name"), ["Chartroom"]);
    let updated = all("feed/updated");
    assert_eq!(updated.len(), 1);
    chrono::DateTime::parse_from_rfc3339(updated[0]).unwrap();
    let ids = all("feed/entry/id");
    assert_eq!(ids.len(), 4);
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 4, "entry ids are unique");
    assert!(
        ids.iter()
            .all(|i| i.starts_with("https://localhost/subprocessors#change-"))
    );
    let titles = all("feed/entry/title");
    assert_eq!(titles.len(), 4);
    assert!(
        titles[0].contains("Telnyx (sms): BAA now signed, signed 2026-11-20"),
        "{titles:?}"
    );
    let entry_updated = all("feed/entry/updated");
    assert_eq!(entry_updated.len(), 4);
    for u in entry_updated {
        chrono::DateTime::parse_from_rfc3339(u).unwrap();
    }
    assert_eq!(
        updated[0],
        all("feed/entry/updated")[0],
        "the newest change"
    );
}

// req: EGR-04 — the public page shows the facts and the history, and no secret.
#[tokio::test]
async fn the_public_page_shows_the_facts_and_no_secrets() {
    let db = TestDb::new().await;
    let app = recorded_app(&db).await;
    let res = client()
        .get(app.url("/subprocessors"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=300");
    assert!(res.headers().contains_key("content-security-policy"));
    let body = res.text().await.unwrap();
    for fact in [
        "Telnyx",
        "SMS carrier",
        "client phone number",
        "Signed 2026-11-20",
        "Pending until",
        "US (us-east)",
        "2026-11-02",
        "Stripe",
        "no PHI by construction",
        "Not required",
        "self-hosted: not a subprocessor",
        "CA",
        "BAA now signed",
        "href=\"/subprocessors.atom\"",
        "href=\"/.well-known/subprocessors.json\"",
    ] {
        assert!(body.contains(fact), "{fact} missing");
    }
    for hidden in [
        BAA_DOC,
        "/etc/chartroom",
        "api.telnyx.com",
        "mail.clinic.internal",
        "desk@clinic.example",
    ] {
        assert!(!body.contains(hidden), "{hidden} shown");
    }
    assert!(!body.contains(" style=") && !body.contains("<style"));
}

// req: EGR-04 — owners and admins are notified in the app: the notices screen and their home
// page show every change with its effective date; reception and clinicians (of any practice)
// do not see them. The screen's authorization matrix: anonymous → sign-in, password only →
// second factor, another practice → 404, wrong role → 403 (audited), owner and admin → 200.
#[tokio::test]
async fn owners_see_the_notices_and_no_one_else_does() {
    let db = TestDb::new().await;
    let world = World::build(&db).await;
    let app = recorded_app(&db).await;
    let http = client();
    let a = &world.a;
    let path = format!("/app/practices/{}/notices", a.id);
    let token = async |u: domain::UserId| app.token(u).await;
    let owner = token(a.user("owner")).await;
    let admin = token(a.user("admin")).await;
    let reception = token(a.user("reception")).await;
    let clinician = token(a.user("clinician")).await;
    let other_owner = token(world.b.user("owner")).await;
    let other_reception = token(world.b.user("reception")).await;
    let nobody = token(world.nobody).await;
    let half = app.password_only_token(a.user("owner")).await;
    let get = async |t: Option<&str>, p: &str| {
        request(&http, &app, Method::GET, p, t)
            .send()
            .await
            .unwrap()
    };

    let res = get(None, &path).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in");
    let res = get(Some(&half), &path).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/app/sign-in/second-factor");
    for (who, t) in [
        ("other practice's owner", &other_owner),
        ("no practice", &nobody),
    ] {
        let res = get(Some(t), &path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{who}");
    }
    let mut su = db.superuser_unsafe().await;
    for (who, t) in [("reception", &reception), ("clinician", &clinician)] {
        let res = get(Some(t), &path).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who}");
        let id = request_id(&res);
        let audit: Vec<(String, String)> = sqlx::query_as(
            "select action, outcome from audit_event where practice_id = $1 and request_id = $2",
        )
        .bind(a.id)
        .bind(uuid::Uuid::parse_str(&id).unwrap())
        .fetch_all(&mut su)
        .await
        .unwrap();
        assert_eq!(
            audit,
            [("access.denied".to_owned(), "denied".to_owned())],
            "{who}"
        );
    }
    for (who, t) in [("owner", &owner), ("admin", &admin)] {
        let res = get(Some(t), &path).await;
        assert_eq!(res.status(), StatusCode::OK, "{who}");
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
        let body = res.text().await.unwrap();
        assert!(body.contains("Telnyx (sms): BAA now signed"), "{who}");
        assert!(
            body.contains("Takes effect on"),
            "{who}: the pending addition"
        );
        assert!(body.contains("In effect since"), "{who}");
        assert!(!body.contains(BAA_DOC));
        // The home page carries the notices, with a link to the screen.
        let home = get(Some(t), "/app").await.text().await.unwrap();
        assert!(home.contains("id=\"notices\""), "{who}");
        assert!(home.contains("Telnyx (sms) added"), "{who}");
        assert!(home.contains(&format!("href=\"{path}\"")), "{who}");
    }
    // The B practice's owner sees the installation's notices on their own screen too.
    let b_path = format!("/app/practices/{}/notices", world.b.id);
    assert_eq!(
        get(Some(&other_owner), &b_path).await.status(),
        StatusCode::OK
    );
    // Non-owners of either practice: no notices on the home page, no menu entry.
    for (who, t) in [
        ("reception", &reception),
        ("clinician", &clinician),
        ("B's reception", &other_reception),
        ("no practice", &nobody),
    ] {
        let home = get(Some(t), "/app").await.text().await.unwrap();
        assert!(!home.contains("id=\"notices\""), "{who}");
        assert!(!home.contains("Telnyx"), "{who}");
        assert!(!home.contains("/notices\""), "{who}");
    }
}
