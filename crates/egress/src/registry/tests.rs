//! The integrations file, coverage, change planning and the host allow-list.

use chrono::{Duration, TimeZone as _, Utc};

use super::*;

const TELNYX: &str = r#"
[[integration]]
kind = "sms"
vendor = "telnyx"
base_url = "https://api.telnyx.com/v2"
added = 2026-11-02
location = { country = "US", region = "us-east" }

[integration.credentials]
api_key_file = "/etc/chartroom/telnyx-api-key"
webhook_public_key_file = "/etc/chartroom/telnyx-webhook.pub"

[integration.sender]
sms_number = "+15555550100"

[integration.baa]
status = "signed"
signed_on = 2026-10-30
document = "Telnyx BAA 2026-10"
"#;

const STRIPE: &str = r#"
[[integration]]
kind = "payments"
vendor = "stripe"
base_url = "https://api.stripe.com"
added = "2026-11-03"
location = { country = "US" }
credentials = { api_key_file = "/etc/chartroom/stripe-key" }
"#;

const SMTP_SELF: &str = r#"
[[integration]]
kind = "email"
vendor = "smtp"
hosting = "self_hosted"
base_url = "smtp://mail.clinic.internal:587"
added = 2026-11-04
location = { country = "CA" }
sender = { email_from = "desk@clinic.example", dkim_selector = "s1", dkim_domain = "clinic.example", dkim_key_file = "/etc/chartroom/dkim.pem" }
"#;

fn parse(text: &str) -> Result<Integrations, ConfigError> {
    Integrations::parse(text, "integrations.toml")
}

fn err(text: &str) -> ConfigError {
    parse(text).expect_err("refused")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

// req: EGR-04
#[test]
fn a_good_file_parses_into_typed_integrations_with_facts_from_code() {
    let all = parse(&format!("{TELNYX}{STRIPE}{SMTP_SELF}")).unwrap();
    let ids: Vec<String> = all.list().iter().map(Integration::id).collect();
    assert_eq!(ids, ["sms.telnyx", "payments.stripe", "email.smtp"]);
    let [telnyx, stripe, smtp] = all.list() else {
        panic!("three integrations")
    };
    assert!(telnyx.touches_phi() && telnyx.is_subprocessor());
    assert_eq!(telnyx.sender.sms_number.as_deref(), Some("+15555550100"));
    assert_eq!(
        telnyx.credentials.files(),
        vec![
            (
                "api_key_file",
                std::path::Path::new("/etc/chartroom/telnyx-api-key")
            ),
            (
                "webhook_public_key_file",
                std::path::Path::new("/etc/chartroom/telnyx-webhook.pub")
            ),
        ]
    );
    assert_eq!(telnyx.hosts(), ["api.telnyx.com"]);
    // Stripe: no PHI by construction, said so; no BAA needed.
    assert!(!stripe.touches_phi());
    let e = stripe.entry();
    assert!(
        e.phi_basis.contains("no PHI by construction"),
        "{}",
        e.phi_basis
    );
    assert_eq!(e.baa_status, "not_required");
    // A self-hosted SMTP relay sees PHI but is not a subprocessor.
    assert!(smtp.touches_phi() && !smtp.is_subprocessor());
    assert_eq!(smtp.sender.dkim.as_ref().unwrap().domain, "clinic.example");
    assert!(all.check_coverage().is_ok());
    // Web Push: content-free, the browser vendors' push hosts.
    let push = parse(
        "[[integration]]\nkind = \"push\"\nvendor = \"webpush\"\nadded = 2026-11-05\nlocation = { country = \"US\" }\n",
    )
    .unwrap();
    let p = &push.list()[0];
    assert!(!p.touches_phi());
    assert!(p.hosts().contains(&"fcm.googleapis.com".to_owned()));
    // No file: no integrations.
    assert!(parse("").unwrap().list().is_empty());
}

// req: EGR-04
#[test]
fn unknown_keys_are_refused_by_name() {
    let e = err(&TELNYX.replace("added =", "colour = \"blue\"\nadded ="));
    assert_eq!(e.key.as_deref(), Some("colour"));
    assert!(e.to_string().starts_with("integrations.toml: line "), "{e}");
    assert!(e.to_string().contains("unknown field `colour`"), "{e}");
    assert!(!e.to_string().contains("blue"), "{e}");
    let e = err("[other]\nx = 1\n");
    assert_eq!(e.key.as_deref(), Some("other"));
    let e = err(&TELNYX.replace("vendor = \"telnyx\"", "vendor = \"sk_live_secretvendor\""));
    assert!(!e.to_string().contains("sk_live"), "{e}");
    assert!(e.to_string().contains("unknown value"), "{e}");
}

// req: EGR-04
#[test]
fn an_inline_secret_is_refused_without_repeating_it() {
    let secret = "KEY0123456789abcdefSECRET";
    // A secret under a key of its own.
    let e = err(&TELNYX.replace(
        "api_key_file = \"/etc/chartroom/telnyx-api-key\"",
        &format!("api_key = \"{secret}\""),
    ));
    assert_eq!(e.key.as_deref(), Some("api_key"));
    assert!(e.message.contains("give `api_key_file`"), "{e}");
    assert!(!e.to_string().contains(secret), "{e}");
    // A secret where its file's path belongs.
    let e = err(&TELNYX.replace("/etc/chartroom/telnyx-api-key", secret));
    assert_eq!(e.key.as_deref(), Some("credentials.api_key_file"));
    assert!(!e.to_string().contains(secret), "{e}");
    // A secret in the base URL.
    for url in [
        format!("https://user:{secret}@api.telnyx.com/v2"),
        format!("https://api.telnyx.com/v2?key={secret}"),
    ] {
        let e = err(&TELNYX.replace("https://api.telnyx.com/v2", &url));
        assert_eq!(e.key.as_deref(), Some("base_url"));
        assert!(!e.to_string().contains(secret), "{e}");
    }
    // A secret given a wrong type is not echoed either.
    let e = err(&TELNYX.replace(
        "sms_number = \"+15555550100\"",
        &format!("sms_number = [\"{secret}\"]"),
    ));
    assert!(!e.to_string().contains(secret), "{e}");
}

// req: EGR-04
#[test]
fn bad_dates_and_values_are_refused_by_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "signed_on = 2026-10-30",
            "signed_on = 2026-13-45",
            "signed_on",
        ),
        (
            "signed_on = 2026-10-30",
            "signed_on = \"30/10/2026\"",
            "baa.signed_on",
        ),
        (
            "signed_on = 2026-10-30",
            "signed_on = 2026-10-30T10:00:00Z",
            "baa.signed_on",
        ),
        ("signed_on = 2026-10-30\n", "", "baa.signed_on"),
        ("document = \"Telnyx BAA 2026-10\"\n", "", "baa.document"),
        ("added = 2026-11-02", "added = \"soon\"", "added"),
        ("country = \"US\"", "country = \"usa\"", "location.country"),
        ("+15555550100", "5550100", "sender.sms_number"),
        ("kind = \"sms\"", "kind = \"email\"", "vendor"),
        (
            "https://api.telnyx.com/v2",
            "http://api.telnyx.com/v2",
            "base_url",
        ),
        (
            "vendor = \"telnyx\"",
            "vendor = \"telnyx\"\nhosting = \"self_hosted\"",
            "hosting",
        ),
    ];
    for (from, to, key) in cases {
        let text = TELNYX.replace(from, to);
        assert_ne!(text, TELNYX, "{from}");
        let e = err(&text);
        assert_eq!(e.key.as_deref(), Some(*key), "{from} -> {to}: {e}");
    }
    // A not_required BAA takes no date.
    let e = err(&STRIPE.replace(
        "location",
        "baa = { status = \"not_required\", signed_on = 2026-01-01 }\nlocation",
    ));
    assert_eq!(e.key.as_deref(), Some("baa.signed_on"));
    // The same integration twice.
    let e = err(&format!("{STRIPE}{STRIPE}"));
    assert_eq!(e.key.as_deref(), Some("vendor"));
}

// req: EGR-04
#[test]
fn a_phi_touching_subprocessor_needs_a_signed_baa() {
    let no_baa = TELNYX.split("[integration.baa]").next().unwrap().to_owned();
    let missing = parse(&no_baa).unwrap().check_coverage().unwrap_err();
    assert_eq!(missing.len(), 1);
    let msg = missing[0].to_string();
    assert!(msg.contains("Telnyx") && msg.contains("sms"), "{msg}");
    assert!(msg.contains("signed BAA"), "{msg}");
    let not_required = format!("{no_baa}[integration.baa]\nstatus = \"not_required\"\n");
    let missing = parse(&not_required).unwrap().check_coverage().unwrap_err();
    assert!(missing[0].missing.contains("not_required"));
    // Self-hosted SMTP and Stripe need none.
    assert!(
        parse(&format!("{STRIPE}{SMTP_SELF}"))
            .unwrap()
            .check_coverage()
            .is_ok()
    );
    // A vendor SMTP relay does.
    let vendor_smtp = SMTP_SELF
        .replace("hosting = \"self_hosted\"\n", "")
        .replace(
            "smtp://mail.clinic.internal:587",
            "smtps://smtp.relay.example:465",
        );
    let missing = parse(&vendor_smtp).unwrap().check_coverage().unwrap_err();
    assert_eq!(missing[0].vendor, "SMTP relay");
}

// req: EGR-04
#[test]
fn credential_files_must_be_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("chartroom-reg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("stripe-key");
    std::fs::write(&key, "sk_test_synthetic").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = STRIPE.replace("/etc/chartroom/stripe-key", key.to_str().unwrap());
    let file = dir.join("integrations.toml");
    std::fs::write(&file, &text).unwrap();
    let e = Integrations::load(&file).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("api_key_file"));
    assert!(
        e.message.contains("0644") && e.message.contains("0600"),
        "{e}"
    );
    assert!(!e.to_string().contains("sk_test"), "{e}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(Integrations::load(&file).unwrap().list().len(), 1);
    std::fs::remove_file(&key).unwrap();
    let e = Integrations::load(&file).unwrap_err();
    assert!(e.message.contains("cannot be read"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// req: EGR-04
#[test]
fn the_same_configuration_records_no_change() {
    let entries = parse(&format!("{TELNYX}{STRIPE}")).unwrap().entries();
    let first = plan(&[], &entries, t0(), Duration::days(30));
    assert_eq!(first.changes.len(), 2);
    assert!(first.changes.iter().all(|c| c.kind == ChangeKind::Added));
    let again = plan(
        &first.state,
        &entries,
        t0() + Duration::days(3),
        Duration::days(30),
    );
    assert!(again.changes.is_empty());
    assert_eq!(again.state, first.state);
}

// req: EGR-04
#[test]
fn changes_are_dated_and_named() {
    let before = parse(&format!("{TELNYX}{STRIPE}")).unwrap().entries();
    let first = plan(&[], &before, t0(), Duration::days(30));
    let after_text = TELNYX
        .replace("signed_on = 2026-10-30", "signed_on = 2026-11-20")
        .replace("region = \"us-east\"", "region = \"us-west\"");
    let after = parse(&after_text).unwrap().entries();
    let later = t0() + Duration::days(40);
    let p = plan(&first.state, &after, later, Duration::days(30));
    let kinds: Vec<(&str, ChangeKind)> = p
        .changes
        .iter()
        .map(|c| (c.integration.as_str(), c.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("sms.telnyx", ChangeKind::Baa),
            ("sms.telnyx", ChangeKind::Location),
            ("payments.stripe", ChangeKind::Removed),
        ]
    );
    assert!(p.changes.iter().all(|c| c.effective_at == later));
    assert!(
        p.changes[1].summary.contains("US (us-west)"),
        "{}",
        p.changes[1].summary
    );
    // The existing subprocessor keeps its activation time.
    assert_eq!(p.state[0].active_from, first.state[0].active_from);
}

// req: EGR-04
#[test]
fn a_new_phi_subprocessor_waits_out_the_notice_period() {
    let entries = parse(&format!("{TELNYX}{STRIPE}")).unwrap().entries();
    let p = plan(&[], &entries, t0(), Duration::days(30));
    let telnyx = &p.changes[0];
    assert_eq!(telnyx.effective_at, t0() + Duration::days(30));
    assert!(
        telnyx.summary.contains("active from 2026-12-31"),
        "{}",
        telnyx.summary
    );
    assert_eq!(p.changes[1].effective_at, t0(), "no PHI: active at once");
    let registry = Registry::new(parse(&format!("{TELNYX}{STRIPE}")).unwrap(), &p.state);
    let pending = t0() + Duration::days(29);
    assert_eq!(registry.allowed_hosts(pending), ["api.stripe.com"]);
    assert!(!registry.allows_host("api.telnyx.com", pending));
    assert!(registry.active_of(Kind::Sms, pending).is_none());
    let active = t0() + Duration::days(30);
    assert_eq!(
        registry.allowed_hosts(active),
        ["api.stripe.com", "api.telnyx.com"]
    );
    assert!(registry.allows_host("API.Telnyx.com.", active));
    assert_eq!(
        registry
            .active_of(Kind::Sms, active)
            .map(Integration::id)
            .as_deref(),
        Some("sms.telnyx")
    );
    // A self-hosted relay moving to a vendor waits too.
    let own = parse(SMTP_SELF).unwrap().entries();
    let p1 = plan(&[], &own, t0(), Duration::days(30));
    assert_eq!(p1.state[0].active_from, t0());
    let vendor_text = format!(
        "{}\n[integration.baa]\nstatus = \"signed\"\nsigned_on = 2026-11-01\ndocument = \"Relay BAA\"\n",
        SMTP_SELF
            .replace("hosting = \"self_hosted\"\n", "")
            .replace(
                "smtp://mail.clinic.internal:587",
                "smtps://smtp.relay.example:465"
            )
    );
    let p2 = plan(
        &p1.state,
        &parse(&vendor_text).unwrap().entries(),
        t0(),
        Duration::days(7),
    );
    assert_eq!(p2.state[0].active_from, t0() + Duration::days(7));
    assert!(
        p2.changes
            .iter()
            .any(|c| c.kind == ChangeKind::Hosting && c.effective_at == t0() + Duration::days(7))
    );
}

// req: EGR-04
#[test]
fn removed_and_unrecorded_vendors_are_not_on_the_allow_list() {
    let both = parse(&format!("{TELNYX}{STRIPE}")).unwrap();
    let p = plan(&[], &both.entries(), t0(), Duration::days(0));
    let only_telnyx = parse(TELNYX).unwrap();
    let p2 = plan(&p.state, &only_telnyx.entries(), t0(), Duration::days(0));
    assert_eq!(p2.changes[0].kind, ChangeKind::Removed);
    let registry = Registry::new(only_telnyx, &p2.state);
    assert_eq!(registry.allowed_hosts(t0()), ["api.telnyx.com"]);
    // Configured but never recorded: never active.
    let registry = Registry::new(both, &[]);
    assert!(
        registry
            .allowed_hosts(t0() + Duration::days(3650))
            .is_empty()
    );
    assert!(Registry::empty().allowed_hosts(t0()).is_empty());
}

#[test]
fn entries_round_trip_through_json() {
    let entries = parse(&format!("{TELNYX}{STRIPE}{SMTP_SELF}"))
        .unwrap()
        .entries();
    let json = serde_json::to_string(&entries).unwrap();
    assert!(!json.contains("/etc/chartroom"), "no credential paths");
    assert!(
        !json.contains("Telnyx BAA 2026-10"),
        "no BAA document reference"
    );
    let back: Vec<Entry> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, entries);
    for k in [
        "added",
        "removed",
        "baa",
        "location",
        "role",
        "data_categories",
        "hosting",
        "posture",
    ] {
        assert_eq!(ChangeKind::parse(k).unwrap().as_str(), k);
    }
}
