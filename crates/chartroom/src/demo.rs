//! The demo: two synthetic practices, their members, patients, appointments and notes.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use chrono::{Duration, Timelike as _};
use domain::{Clock as _, Role, RoleSet, SystemClock};
use serde::{Deserialize, Serialize};
use store::OwnerStore;

/// One demo account.
#[derive(Serialize, Deserialize)]
pub(crate) struct DemoAccount {
    /// Practice name.
    pub practice: String,
    /// Roles, comma-separated.
    pub roles: String,
    /// Sign-in email.
    pub email: String,
    /// Password (random, generated at seeding).
    pub password: String,
}

const CREDENTIALS_FILE: &str = "demo-credentials.json";

/// A readable random password from the OS CSPRNG: six words of twenty and a 4-digit number
/// (about 39 bits; demo accounts only, behind argon2id and, later, a second factor).
fn random_password() -> String {
    use rand::Rng as _;
    use rand::seq::SliceRandom as _;
    const WORDS: &[&str] = &[
        "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor", "indigo",
        "juniper", "kelp", "lagoon", "meadow", "nectar", "orchid", "pebble", "quartz", "river",
        "spruce", "tundra",
    ];
    let mut rng = rand::rngs::OsRng;
    let words: Vec<&str> = (0..6)
        .map(|_| *WORDS.choose(&mut rng).unwrap_or(&"amber"))
        .collect();
    format!("{}-{:04}", words.join("-"), rng.gen_range(0..10_000))
}

/// The demo's accounts when this start seeded them (their passwords are then printed, once),
/// or `None` when the demo practices already existed.
pub(crate) struct Seeded(Option<Vec<DemoAccount>>);

/// Seeds the demo on first use and writes its credentials file (mode 0600).
pub(crate) async fn seed_once(
    owner: Option<&OwnerStore>,
    data_dir: &Path,
) -> anyhow::Result<Seeded> {
    let owner =
        owner.context("the demo needs the owner role to seed data: pass --owner-database-url")?;
    if !owner.demo_practices().await?.is_empty() {
        return Ok(Seeded(None));
    }
    let accounts = seed(owner).await?;
    let path = data_dir.join(CREDENTIALS_FILE);
    std::fs::create_dir_all(data_dir)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(serde_json::to_string_pretty(&accounts)?.as_bytes())?;
    Ok(Seeded(Some(accounts)))
}

/// Prints how to sign in: the accounts with their passwords only on the start that created
/// them (later starts, whose output may go to a log, name the credentials file instead), and
/// an example for the address the server really listens on (`base`, e.g.
/// `https://127.0.0.1:8443`).
pub(crate) fn print(seeded: &Seeded, data_dir: &Path, base: &str) {
    let path = data_dir.join(CREDENTIALS_FILE);
    println!();
    match &seeded.0 {
        Some(accounts) => {
            println!(
                "Demo data: two synthetic practices (no real people). Sign in with (shown once):"
            );
            for a in accounts {
                println!(
                    "  {:<24} {:<20} {:<30} {}",
                    a.practice, a.roles, a.email, a.password
                );
            }
            println!(
                "These are kept in {} (readable only by you).",
                path.display()
            );
        }
        None => println!(
            "Demo data: two synthetic practices. The sign-in accounts and their passwords are in {} (readable only by you).",
            path.display()
        ),
    }
    let ca = data_dir.join("secrets").join("tls-cert.pem");
    println!("Sign in (the first sign-in enrolls a second factor; see README, \"First run\"):");
    println!(
        "  curl -s --cacert {} -H 'content-type: application/json' \\",
        ca.display()
    );
    println!(
        "    -d '{{\"email\":\"owner@harbor.demo.invalid\",\"password\":\"<password>\"}}' {base}/api/v1/auth/login"
    );
    println!();
}

async fn seed(owner: &OwnerStore) -> anyhow::Result<Vec<DemoAccount>> {
    let now = SystemClock.now();
    let mut accounts = Vec::new();
    let mut people = domain::synthetic::Generator::new(now.timestamp().unsigned_abs());
    let practices = [
        (
            "Harbor Dental (demo)",
            "harbor",
            "Routine hygiene visit. Synthetic demo note: generalized mild gingivitis, oral hygiene instructions given.",
        ),
        (
            "Willow Bodywork (demo)",
            "willow",
            "Synthetic demo note: 60 min therapeutic massage, upper trapezius tension, no contraindications.",
        ),
    ];
    for (name, slug, note_text) in practices {
        let practice = owner.create_practice(name, now).await?;
        owner.mark_demo(practice).await?;
        let staff: [(&str, &str, &[Role]); 4] = [
            // The owner is a dentist too, so the first account a newcomer tries sees patients.
            ("owner", "Demo Owner", &[Role::Owner, Role::Clinician]),
            ("admin", "Demo Admin", &[Role::Admin]),
            ("clinician", "Demo Clinician", &[Role::Clinician]),
            ("reception", "Demo Reception", &[Role::Reception]),
        ];
        let mut clinicians = Vec::new();
        for (who, display, roles) in staff {
            let email = format!("{who}@{slug}.demo.invalid");
            let password = random_password();
            let hash = server::password::hash_blocking(&password).map_err(anyhow::Error::msg)?;
            let user = match owner.find_user(&email).await? {
                Some(u) => u,
                None => {
                    owner
                        .create_user(&email, &format!("{display} ({slug})"), &hash, now)
                        .await?
                }
            };
            let set: RoleSet = roles.iter().copied().collect();
            owner.add_member(practice, user, set, now).await?;
            if roles.contains(&Role::Clinician) {
                clinicians.push(user);
            }
            accounts.push(DemoAccount {
                practice: name.to_owned(),
                roles: set.names().join(","),
                email,
                password,
            });
        }
        anyhow::ensure!(!clinicians.is_empty(), "demo practice without a clinician");
        let start_of_day = now
            .with_hour(9)
            .and_then(|t| t.with_minute(0))
            .unwrap_or(now)
            + Duration::days(1);
        // Patients are shared out between the clinicians: each has a care team to see.
        for (i, clinician) in (0..12).zip(clinicians.iter().copied().cycle()) {
            let patient = owner
                .seed_patient(practice, &people.patient().into(), now)
                .await?;
            owner
                .seed_appointment(
                    practice,
                    patient,
                    clinician,
                    start_of_day + Duration::minutes(60 * i),
                    45,
                    now,
                )
                .await?;
            if i % 3 == 0 {
                owner
                    .seed_note(practice, patient, clinician, note_text, now)
                    .await?;
            }
        }
    }
    Ok(accounts)
}
