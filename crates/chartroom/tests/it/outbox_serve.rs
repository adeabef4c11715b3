//! Issue 19, the outbox through the real binary: `chartroom serve` with an integrations file
//! naming the practice's own SMTP relay (a real SMTP server process on loopback) and the
//! Telnyx stand-in sends a public online booking's confirmation by email and SMS, with the
//! manage link on the link origin and none of the client's contact details or name in the
//! text; a bad SMTP integration refuses the start.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use testkit::mailpay_standins::{ReceivedMail, SmtpServer};
use testkit::messaging_standins::{TelnyxMessage, TelnyxStandIn};
use tokio::process::Command;

use crate::backup::{demo_login, practice_of};
use crate::embedded_binary::{Running, client_for, launch, sign_in, start, stop};

const TELNYX_KEY: &str = "KEY_SYNTHETIC_outbox_serve_0123456789";
const LINK_ORIGIN: &str = "https://book.harbour-dental.test";
const SENDER: &str = "desk@harbour-dental.test";

pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    let dir = Path::new("/tmp").join(format!(
        "chartroom-it-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn secret_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// The practice's own SMTP relay (self-hosted: not a subprocessor) at `smtp_url` and the
/// Telnyx stand-in (a BAA-covered subprocessor).
pub(crate) fn integrations(dir: &Path, smtp_url: &str, telnyx: &TelnyxStandIn) -> String {
    let key = secret_file(dir, "telnyx-key", TELNYX_KEY);
    format!(
        r#"
[[integration]]
kind = "email"
vendor = "smtp"
hosting = "self_hosted"
base_url = "{smtp_url}"
added = 2026-11-02
location = {{ country = "US" }}
sender = {{ email_from = "{SENDER}" }}

[[integration]]
kind = "sms"
vendor = "telnyx"
base_url = "{}"
added = 2026-11-02
location = {{ country = "US", region = "us-east" }}
credentials = {{ api_key_file = "{}" }}
sender = {{ sms_number = "+15555550100" }}
baa = {{ status = "signed", signed_on = 2026-10-30, document = "Telnyx BAA 2026-10" }}
"#,
        telnyx.url(),
        key.display()
    )
}

/// `chartroom serve` on `data` with `file`, messages linking to [`LINK_ORIGIN`].
pub(crate) fn serve_command(data: &Path, file: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chartroom"));
    cmd.arg("--data-dir")
        .arg(data)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--subprocessor-notice-days",
            "0",
            "--link-origin",
            LINK_ORIGIN,
            "--integrations",
        ])
        .arg(file)
        .env("RUST_LOG", "warn");
    cmd
}

/// A test's directory: on drop (a failed test included) the PostgreSQL of its data directory
/// is asked to shut down (a killed `serve` leaves it running); the files are kept for a look
/// unless the test removed them.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let pidfile = self.0.join("data/pg/postmaster.pid");
        let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        else {
            return;
        };
        let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*self.0.to_string_lossy()));
        if ours {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
        }
    }
}

/// A fresh data directory with the demo practice in it (the demo run is stopped).
pub(crate) async fn demo_data(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let demo = start(&data, "demo").await;
    stop(demo).await;
    // The sending tests run at any hour: no quiet hours hold their messages back (quiet hours
    // themselves are tested in `outbox`).
    with_stopped_server(&data, OPEN_ALL_DAY).await;
    data
}

/// Booking on for the demo practice (booked at once, no notice), one 60-minute service by
/// its clinician, all day every day. Returns the practice and the service.
pub(crate) async fn set_up_booking(data: &Path, base: &str) -> (String, String) {
    let http = client_for(data);
    let mut owner = demo_login(data, "owner@harbor.demo.invalid");
    let mut clinician = demo_login(data, "clinician@harbor.demo.invalid");
    let t_o = sign_in(&http, base, &owner.login, &mut owner.totp).await;
    let t_c = sign_in(&http, base, &clinician.login, &mut clinician.totp).await;
    let practice = practice_of(&http, base, &t_o).await;
    let me = crate::util::get_json(&http, &format!("{base}/api/v1/me"), &t_c).await;
    let api = format!("{base}/api/v1/practices/{practice}/booking");
    let res = http
        .put(format!("{api}/settings"))
        .bearer_auth(&t_o)
        .json(&json!({
            "enabled": true, "new_clients": "allowed", "min_notice_minutes": 0,
            "max_days_ahead": 30, "step_minutes": 60, "currency": "usd",
            "cancellation": {"window_hours": 24, "late_cancel_fee_minor": 0, "no_show_fee_minor": 0}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let res = http
        .post(format!("{api}/services"))
        .bearer_auth(&t_o)
        .json(
            &json!({"name": "Cleaning", "duration_minutes": 60, "payment": {"kind": "none"},
                      "active": true, "clinicians": [me["user_id"]]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let service: Value = res.json().await.unwrap();
    let hours: Vec<Value> = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "00:00:00", "end": "23:59:00"}))
        .collect();
    let res = http
        .put(format!("{api}/hours/{}", me["user_id"].as_str().unwrap()))
        .bearer_auth(&t_o)
        .json(&json!({ "hours": hours }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    (practice, service["service_id"].as_str().unwrap().to_owned())
}

/// The free slots of the next `days` days.
pub(crate) async fn free_slots(
    http: &reqwest::Client,
    base: &str,
    practice: &str,
    service: &str,
    days: u32,
) -> Vec<String> {
    let b: Value = http
        .get(format!(
            "{base}/api/v1/public/practices/{practice}/booking/slots?service_id={service}&days={days}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    b["starts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// A public booking of `slot` for synthetic client `seed`: the HTTP status (or an error when
/// no answer came) and the client.
pub(crate) async fn book(
    http: &reqwest::Client,
    base: &str,
    practice: &str,
    service: &str,
    slot: &str,
    seed: u64,
) -> (Result<u16, String>, domain::synthetic::SyntheticPatient) {
    let c = domain::synthetic::Generator::new(seed).patient();
    let client = json!({"given_name": c.given_name, "family_name": c.family_name,
        "date_of_birth": c.date_of_birth, "phone": c.phone, "email": c.email});
    let res = http
        .post(format!("{base}/api/v1/public/practices/{practice}/booking"))
        .json(&json!({"service_id": service, "starts_at": slot, "client": client}))
        .send()
        .await;
    (
        res.map(|r| r.status().as_u16()).map_err(|e| e.to_string()),
        c,
    )
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let head = message.split("\r\n\r\n").next()?;
    head.split("\r\n")
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l.as_bytes()[name.len()] == b':'
        })
        .map(|l| l[name.len() + 1..].trim())
}

/// The decoded text body of a received message (7bit or base64).
pub(crate) fn body_text(mail: &ReceivedMail) -> String {
    let message = String::from_utf8_lossy(&mail.data).into_owned();
    let body = message.split("\r\n\r\n").nth(1).unwrap_or_default();
    match header(&message, "Content-Transfer-Encoding") {
        Some("base64") => {
            let b64: String = body.split_whitespace().collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            )
            .unwrap()
        }
        _ => body.to_owned(),
    }
}

/// Polls (every 100 ms, for at most `limit`) until `done` holds of the received mail and SMS.
pub(crate) async fn wait_for(
    smtp: &SmtpServer,
    telnyx: &TelnyxStandIn,
    limit: Duration,
    done: impl Fn(&[ReceivedMail], &[TelnyxMessage]) -> bool,
) -> (Vec<ReceivedMail>, Vec<TelnyxMessage>) {
    let deadline = Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let (mail, sms) = (smtp.messages(), telnyx.messages());
        if done(&mail, &sms) {
            return (mail, sms);
        }
        assert!(
            Instant::now() < deadline,
            "not delivered in {limit:?}: {} emails, {} SMS",
            mail.len(),
            sms.len()
        );
        tick.tick().await;
    }
}

/// The client's phone number as E.164 (`+` and digits).
pub(crate) fn e164(phone: &str) -> String {
    phone
        .chars()
        .filter(|c| *c == '+' || c.is_ascii_digit())
        .collect()
}

fn assert_no_contact(text: &str, c: &domain::synthetic::SyntheticPatient) {
    let digits = e164(&c.phone);
    for hidden in [&c.given_name, &c.family_name, &c.email, &c.phone, &digits] {
        assert!(!text.contains(hidden.as_str()), "client data in the text");
    }
}

// req: EGR-05 — a booking's confirmation goes out through the practice's own SMTP relay and
// the SMS vendor, through the real binary, carrying a manage link and no contact data.
#[tokio::test]
async fn serve_sends_a_booking_confirmation_by_smtp_and_sms() {
    let scratch = Scratch(temp_dir("outbox-serve"));
    let dir = scratch.0.clone();
    let smtp = SmtpServer::start().await;
    let telnyx = TelnyxStandIn::start(TELNYX_KEY).await;
    let file = dir.join("integrations.toml");
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port());
    std::fs::write(&file, integrations(&dir, &smtp_url, &telnyx)).unwrap();
    let data = demo_data(&dir).await;
    let server: Running = launch(serve_command(&data, &file)).await;
    let base = server.base.clone();
    let (practice, service) = set_up_booking(&data, &base).await;
    let http = client_for(&data);
    // After the reminder windows: the confirmation is the only message.
    let slots = free_slots(&http, &base, &practice, &service, 4).await;
    let a = &attempts(&slots, 1)[0];
    let (status, client) = book(&http, &base, &practice, &service, &a.slot_text, a.seed).await;
    assert_eq!(status, Ok(202));

    // The client's messages (the owners' notice emails of the registry's first recording
    // go to the demo owners: `subprocessor_notice_email`).
    let to_client = |m: &ReceivedMail| m.rcpt_to == [client.email.clone()];
    let (mail, sms) = wait_for(&smtp, &telnyx, Duration::from_secs(60), |m, s| {
        m.iter().any(to_client) && !s.is_empty()
    })
    .await;
    let mail: Vec<ReceivedMail> = mail.into_iter().filter(to_client).collect();
    assert_eq!((mail.len(), sms.len()), (1, 1));
    assert_eq!(mail[0].rcpt_to, vec![client.email.clone()]);
    assert_eq!(mail[0].mail_from, SENDER);
    let body = body_text(&mail[0]);
    assert!(body.contains(&format!("{LINK_ORIGIN}/manage/")), "{body}");
    assert_no_contact(&body, &client);
    assert_eq!(sms[0].to, e164(&client.phone));
    assert!(
        sms[0].text.contains(&format!("{LINK_ORIGIN}/manage/")),
        "{}",
        sms[0].text
    );
    assert_no_contact(&sms[0].text, &client);
    stop(server).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve` on `data` with `file` must exit with an error; its output.
async fn refused(data: &Path, file: &Path) -> String {
    let out = serve_command(data, file).output().await.unwrap();
    assert!(!out.status.success(), "serve must refuse to start");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

// A bad SMTP integration refuses the start with a clear error naming the integration.
#[tokio::test]
async fn serve_refuses_a_bad_smtp_integration() {
    let scratch = Scratch(temp_dir("outbox-serve-bad"));
    let dir = scratch.0.clone();
    let telnyx = TelnyxStandIn::start(TELNYX_KEY).await;
    let data = demo_data(&dir).await;
    let file = dir.join("integrations.toml");
    let good = integrations(&dir, "smtp://127.0.0.1:2525", &telnyx);

    // A user name without its password file.
    let text = good.replace(
        "sender = { email_from",
        "credentials = { account = \"desk\" }\nsender = { email_from",
    );
    std::fs::write(&file, text).unwrap();
    let err = refused(&data, &file).await;
    assert!(err.contains("email.smtp"), "{err}");
    assert!(err.contains("password_file"), "{err}");

    // A DKIM key file that holds no key.
    let junk = secret_file(&dir, "dkim.pem", "not a key");
    let text = good.replace(
        &format!("sender = {{ email_from = \"{SENDER}\" }}"),
        &format!(
            "sender = {{ email_from = \"{SENDER}\", dkim_selector = \"s1\", dkim_domain = \"harbour-dental.test\", dkim_key_file = \"{}\" }}",
            junk.display()
        ),
    );
    std::fs::write(&file, text).unwrap();
    let err = refused(&data, &file).await;
    assert!(err.contains("email.smtp"), "{err}");
    assert!(err.contains("DKIM"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A superuser connection to the data directory's cluster: attached to a running server's,
/// else started (then the caller stops it).
async fn superuser(data: &Path) -> (pgcluster::Cluster, sqlx::PgConnection) {
    use sqlx::Connection as _;
    let cluster = pgcluster::Cluster::start_or_attach(pgcluster::ClusterConfig::new(data))
        .await
        .unwrap();
    let su = sqlx::PgConnection::connect_with(
        &cluster.connect_options(pgcluster::DbRole::Superuser, pgcluster::DATABASE),
    )
    .await
    .unwrap();
    (cluster, su)
}

/// With the server stopped: runs `sql` as the superuser on the data directory's cluster.
async fn with_stopped_server(data: &Path, sql: &str) {
    let (cluster, mut su) = superuser(data).await;
    sqlx::query(sql).execute(&mut su).await.unwrap();
    drop(su);
    cluster.stop().await.unwrap();
}

/// Quiet hours that never hold back a message at the time the test runs.
const OPEN_ALL_DAY: &str =
    "insert into outbox_settings (practice_id, quiet_end, quiet_start, updated_at)
     select practice_id, '00:00', '23:59:59', now() from practice
     on conflict (practice_id) do update set quiet_end = excluded.quiet_end,
        quiet_start = excluded.quiet_start";

/// A server killed with `SIGKILL` leaves its claimed rows `sending` until their lease lapses
/// (`server::jobs::outbox::LEASE`): the test lets that time pass by moving the lease back.
const LEASES_LAPSED: &str = "update outbox_message set next_attempt_at = now() - interval '1 second' where status = 'sending'";

/// One attempted public booking.
pub(crate) struct Attempt {
    slot: chrono::DateTime<chrono::Utc>,
    pub(crate) slot_text: String,
    pub(crate) seed: u64,
    email: String,
    phone: String,
}

/// `n` attempts on distinct slots at least 50 h ahead (after the reminder windows), for
/// synthetic clients with distinct emails and phone numbers.
pub(crate) fn attempts(slots: &[String], n: usize) -> Vec<Attempt> {
    let later = chrono::Utc::now() + chrono::Duration::hours(50);
    let mut free = slots.iter().filter_map(|s| {
        let t: chrono::DateTime<chrono::Utc> = s.parse().unwrap();
        (t > later).then(|| (t, s.clone()))
    });
    let mut out: Vec<Attempt> = Vec::new();
    let mut seed = 40_000;
    while out.len() < n {
        seed += 1;
        assert!(seed < 41_000, "not enough distinct synthetic clients");
        let c = domain::synthetic::Generator::new(seed).patient();
        let phone = e164(&c.phone);
        if out.iter().any(|a| a.email == c.email || a.phone == phone) {
            continue;
        }
        let (slot, slot_text) = free.next().expect("enough free slots");
        out.push(Attempt {
            slot,
            slot_text,
            seed,
            email: c.email,
            phone,
        });
    }
    out
}

/// Bookings per round, and how many are in flight at once.
const PER_ROUND: usize = 10;
const IN_FLIGHT: usize = 5;

// req: EGR-05 — kill the server under booking load: every committed booking gets exactly one
// confirmation per channel (at most one where the crash left the send `uncertain`), none
// twice, and no booking that did not commit gets one. Rounds alternate between a kill while
// bookings are being made and a kill while the outbox is sending; the seed is printed and
// `CHARTROOM_OUTBOX_CRASH_SEED` replays it. The job marks each message `sending` just before
// its own send, so a kill leaves at most the one message in flight `uncertain`: at most one per
// round, and every other confirmation is delivered.
#[tokio::test]
async fn killing_the_server_under_booking_load_never_confirms_twice() {
    use rand::{Rng as _, SeedableRng as _};
    let seed: u64 = std::env::var("CHARTROOM_OUTBOX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("outbox crash: seed {seed} (CHARTROOM_OUTBOX_CRASH_SEED replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rounds = 4;

    let scratch = Scratch(temp_dir("outbox-crash"));
    let dir = scratch.0.clone();
    let smtp = SmtpServer::start().await;
    let telnyx = TelnyxStandIn::start(TELNYX_KEY).await;
    let file = dir.join("integrations.toml");
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port());
    std::fs::write(&file, integrations(&dir, &smtp_url, &telnyx)).unwrap();
    let data = demo_data(&dir).await;
    with_stopped_server(&data, OPEN_ALL_DAY).await;

    let mut server = launch(serve_command(&data, &file)).await;
    let (practice, service) = set_up_booking(&data, &server.base).await;
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(data.join("secrets/tls-cert.pem")).unwrap(),
            )
            .unwrap(),
        )
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let slots = free_slots(&http, &server.base, &practice, &service, 8).await;
    let all = std::sync::Arc::new(attempts(&slots, rounds * PER_ROUND));
    let mut answered: Vec<Option<u16>> = vec![None; all.len()];

    for round in 0..rounds {
        if round > 0 {
            with_stopped_server(&data, LEASES_LAPSED).await;
            server = launch(serve_command(&data, &file)).await;
        }
        let base = server.base.clone();
        let sent_before = smtp.messages().len() + telnyx.messages().len();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Result<u16, String>)>();
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut tasks = Vec::new();
        for i in round * PER_ROUND..(round + 1) * PER_ROUND {
            let (http, base, practice, service) = (
                http.clone(),
                base.clone(),
                practice.clone(),
                service.clone(),
            );
            let (all, tx, gate) = (all.clone(), tx.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                let a = &all[i];
                let (status, _) =
                    book(&http, &base, &practice, &service, &a.slot_text, a.seed).await;
                let _ = tx.send((i, status));
            }));
        }
        drop(tx);
        let during_bookings = round % 2 == 0;
        // The moment: after this many answered bookings, or this many messages out.
        let after = rng.gen_range(1..PER_ROUND);
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            while let Ok((i, status)) = rx.try_recv() {
                if let Ok(s) = status {
                    answered[i] = Some(s);
                }
                got += 1;
            }
            let out = smtp.messages().len() + telnyx.messages().len() - sent_before;
            if (during_bookings && got >= after) || (!during_bookings && out >= after) {
                break;
            }
            if Instant::now() > deadline {
                // Nothing more to wait for (e.g. everything already sent): kill now.
                break;
            }
            tick.tick().await;
        }
        server.child.start_kill().unwrap();
        let _ = server.child.wait().await;
        for t in tasks {
            t.await.unwrap();
        }
        while let Ok((i, status)) = rx.try_recv() {
            if let Ok(s) = status {
                answered[i] = Some(s);
            }
        }
    }

    // The last run drains the outbox (the leases of the interrupted sends lapsed).
    with_stopped_server(&data, LEASES_LAPSED).await;
    let server = launch(serve_command(&data, &file)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let (cluster, mut su) = superuser(&data).await;
        let open: i64 = sqlx::query_scalar(
            "select count(*) from outbox_message where status in ('queued', 'sending')",
        )
        .fetch_one(&mut su)
        .await
        .unwrap();
        drop(su);
        drop(cluster);
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} messages not settled");
        tick.tick().await;
    }
    stop(server).await;

    let (cluster, mut su) = superuser(&data).await;
    let rows: Vec<(chrono::DateTime<chrono::Utc>, Option<String>, Option<String>)> = sqlx::query_as(
        "select a.starts_at, m.channel, m.status from online_booking b
           join appointment a on a.practice_id = b.practice_id and a.appointment_id = b.appointment_id
           left join outbox_message m on m.practice_id = b.practice_id and m.cause_id = b.booking_id
                and m.template = 'booking_confirmed'
          where b.status = 'booked'",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    let others: i64 =
        sqlx::query_scalar("select count(*) from online_booking where status <> 'booked'")
            .fetch_one(&mut su)
            .await
            .unwrap();
    drop(su);
    cluster.stop().await.unwrap();
    assert_eq!(others, 0, "every public booking is booked at once");

    let mail = smtp.messages();
    let sms = telnyx.messages();
    let mut booked = std::collections::BTreeSet::new();
    let mut uncertain = 0;
    for (starts, channel, status) in &rows {
        let (Some(channel), Some(status)) = (channel, status) else {
            panic!("no confirmation queued for the booking at {starts}");
        };
        let a = all
            .iter()
            .find(|a| a.slot == *starts)
            .expect("a booked row is one of the attempts");
        booked.insert(a.seed);
        let received = match channel.as_str() {
            "email" => mail
                .iter()
                .filter(|m| m.rcpt_to == [a.email.clone()])
                .count(),
            "sms" => sms.iter().filter(|m| m.to == a.phone).count(),
            other => panic!("unexpected channel {other}"),
        };
        match status.as_str() {
            "sent" | "delivered" => assert_eq!(received, 1, "{channel} for {starts}"),
            "uncertain" => {
                uncertain += 1;
                assert!(
                    received <= 1,
                    "an uncertain {channel} sent twice for {starts}"
                );
            }
            other => panic!("{channel} for {starts} left {other}"),
        }
    }
    for (i, a) in all.iter().enumerate() {
        let channels = rows.iter().filter(|r| r.0 == a.slot).count();
        if booked.contains(&a.seed) {
            assert_eq!(channels, 2, "an email and an SMS row for {}", a.slot);
        } else {
            assert_ne!(answered[i], Some(202), "an acknowledged booking is there");
            assert!(
                !mail.iter().any(|m| m.rcpt_to == [a.email.clone()])
                    && !sms.iter().any(|m| m.to == a.phone),
                "a message for a booking that did not commit"
            );
        }
    }
    let mut statuses = std::collections::BTreeMap::<Option<u16>, usize>::new();
    for s in &answered {
        *statuses.entry(*s).or_default() += 1;
    }
    println!(
        "outbox crash: {} of {} bookings committed (answers {statuses:?}), {} emails, {} SMS, {uncertain} uncertain",
        booked.len(),
        all.len(),
        mail.len(),
        sms.len()
    );
    assert!(booked.len() >= rounds, "some bookings committed");
    assert!(
        uncertain <= rounds,
        "{uncertain} confirmations left uncertain by {rounds} kills: more than the one in flight each"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
