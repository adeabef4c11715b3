//! `chartroom-evidence`: writes the compliance evidence pack of this run (req OPS-07) and
//! fails when a requirement row has no passing test and is not listed as pending.
//!
//! ```text
//! chartroom-evidence --log target/evidence/cargo-test.log --out target/evidence \
//!     --signing-key /tmp/key   # created (mode 0600) when missing: an ephemeral key
//! ```
//! It prints the rows that are not proven, then one count line
//! (`61/102 requirements proven (41 pending, 0 failed, 0 unproven)`), and exits 1 when the
//! pack does not pass.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result};
use clap::Parser;
use evidence::pack::{self, Inputs, KEY_NAME, Status};
use evidence::{requirements, results, scan};

/// Writes the compliance evidence pack of this test run.
#[derive(Debug, Parser)]
#[command(name = "chartroom-evidence")]
struct Args {
    /// The requirement catalog (read only).
    #[arg(
        long,
        env = "CHARTROOM_REQUIREMENTS",
        default_value = "../shared/design/REQUIREMENTS.md"
    )]
    requirements: PathBuf,
    /// The project's refinements of catalog rows.
    #[arg(long, default_value = "docs/requirements-refined.md")]
    refinements: PathBuf,
    /// The rows not proven yet, one `ID reason` a line.
    #[arg(long, default_value = "docs/evidence-pending.txt")]
    pending: PathBuf,
    /// The directory of the workspace's packages, whose tests are scanned.
    #[arg(long, default_value = "crates")]
    crates: PathBuf,
    /// The output of this run's `cargo test` (stdout and stderr).
    #[arg(long)]
    log: PathBuf,
    /// Where the pack goes.
    #[arg(long)]
    out: PathBuf,
    /// The Ed25519 signer key file (created, mode 0600, when missing).
    #[arg(long)]
    signing_key: PathBuf,
    /// The commit tested (default: `git rev-parse HEAD`, `+dirty` with local changes).
    #[arg(long)]
    commit: Option<String>,
}

fn git_commit() -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(head) if !head.is_empty() => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{head}+dirty") } else { head }
        }
        _ => "unknown".into(),
    }
}

fn run(args: &Args) -> Result<bool> {
    let catalog = std::fs::read(&args.requirements)
        .with_context(|| format!("the requirement catalog {}", args.requirements.display()))?;
    let catalog_text = String::from_utf8(catalog.clone()).context("the catalog is not UTF-8")?;
    let mut rows = requirements::parse_requirements(&catalog_text)
        .map_err(anyhow::Error::msg)
        .with_context(|| args.requirements.display().to_string())?;
    let refinements = std::fs::read_to_string(&args.refinements)
        .with_context(|| format!("the refinements {}", args.refinements.display()))?;
    requirements::apply_refinements(&mut rows, &refinements).map_err(anyhow::Error::msg)?;
    let pending_text = std::fs::read_to_string(&args.pending)
        .with_context(|| format!("the pending list {}", args.pending.display()))?;
    let pending = requirements::parse_pending(&pending_text).map_err(anyhow::Error::msg)?;
    let label_root = std::env::current_dir().context("the working directory")?;
    let crates_dir = if args.crates.is_absolute() {
        args.crates.clone()
    } else {
        label_root.join(&args.crates)
    };
    let scanned = scan::scan_crates(&crates_dir, &label_root)
        .with_context(|| format!("scanning {}", crates_dir.display()))?;
    let log =
        std::fs::read(&args.log).with_context(|| format!("the test log {}", args.log.display()))?;
    let results = results::parse_log(&String::from_utf8_lossy(&log));
    anyhow::ensure!(
        !results.is_empty(),
        "the test log {} holds no test results",
        args.log.display()
    );
    #[allow(
        clippy::disallowed_methods,
        reason = "the pack records the wall-clock time of the run it describes"
    )]
    let generated_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let built = pack::build(&Inputs {
        requirements: &rows,
        requirements_sha256: pack::sha256_hex(&catalog),
        pending: &pending,
        scan: &scanned,
        results: &results,
        commit: args.commit.clone().unwrap_or_else(git_commit),
        generated_at,
    });
    let signer = audit::Signer::load_or_create(&args.signing_key, KEY_NAME)
        .with_context(|| format!("the signing key {}", args.signing_key.display()))?;
    let written = pack::write(&args.out, &built, &signer).map_err(anyhow::Error::msg)?;
    for problem in &built.problems {
        eprintln!("evidence: {problem}");
    }
    for row in built.not_done() {
        match row.status {
            Status::Failed => eprintln!("evidence: {} FAILED: a tagged test failed", row.id),
            Status::Unproven => eprintln!(
                "evidence: {} has no passing test ({} tagged, none passed) and is not pending",
                row.id,
                row.tests.len()
            ),
            Status::Pending | Status::Proven => {}
        }
    }
    eprintln!(
        "evidence: pack {} (sha256 {}, verifier key {})",
        written
            .files
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        written.sha256,
        written.verifier_key
    );
    println!("{}", built.count_line());
    Ok(built.passes())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chartroom-evidence: {e:#}");
            ExitCode::from(2)
        }
    }
}
