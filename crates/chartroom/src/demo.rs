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

/// Seeds the demo on first use, then prints how to sign in.
pub(crate) async fn seed_and_print(owner: &OwnerStore, data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join(CREDENTIALS_FILE);
    let accounts = if owner.demo_practices().await?.is_empty() {
        let accounts = seed(owner).await?;
        std::fs::create_dir_all(data_dir)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(serde_json::to_string_pretty(&accounts)?.as_bytes())?;
        accounts
    } else {
        let Ok(bytes) = std::fs::read(&path) else {
            println!(
                "The demo practices exist, but their credentials file {} is gone.",
                path.display()
            );
            return Ok(());
        };
        serde_json::from_slice(&bytes).context("demo credentials file is damaged")?
    };
    println!();
    println!("Demo data: two synthetic practices (no real people). Sign in with:");
    for a in &accounts {
        println!(
            "  {:<34} {:<20} {:<38} {}",
            a.practice, a.roles, a.email, a.password
        );
    }
    println!("(also in {}, readable only by you)", path.display());
    println!(
        "Example (the certificate is the self-signed one in <data dir>/secrets/tls-cert.pem):"
    );
    println!(
        "  curl -s --cacert <data dir>/secrets/tls-cert.pem -H 'content-type: application/json' \\"
    );
    println!(
        "  -d '{{\"email\":\"<email>\",\"password\":\"<password>\"}}' https://127.0.0.1:8443/api/v1/auth/login"
    );
    println!(
        "Every account enrolls a second factor at its first sign-in: POST /api/v1/auth/mfa/totp"
    );
    println!(
        "with the returned token (scan the otpauth URI), then POST /api/v1/auth/mfa/totp/confirm {{\"code\"}}."
    );
    println!();
    Ok(())
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
            ("owner", "Demo Owner", &[Role::Owner]),
            ("admin", "Demo Admin", &[Role::Admin]),
            ("clinician", "Demo Clinician", &[Role::Clinician]),
            ("reception", "Demo Reception", &[Role::Reception]),
        ];
        let mut clinician = None;
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
                clinician = Some(user);
            }
            accounts.push(DemoAccount {
                practice: name.to_owned(),
                roles: set.names().join(","),
                email,
                password,
            });
        }
        let clinician = clinician.context("demo practice without a clinician")?;
        let start_of_day = now
            .with_hour(9)
            .and_then(|t| t.with_minute(0))
            .unwrap_or(now)
            + Duration::days(1);
        for i in 0..12 {
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
