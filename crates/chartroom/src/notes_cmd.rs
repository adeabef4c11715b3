//! `chartroom notes verify`: recomputes the hash of every version of every clinical note and
//! reports any whose content or signature manifestation (printed name, credential, time with
//! zone, meaning) no longer matches what was saved or signed (req INT-01, SIG-02). Run it on a
//! schedule; a mismatch means a change was made around the application (e.g. by a database
//! superuser) and is a security incident. Versions written before hash scheme 2 are counted:
//! their hash does not bind the printed name, credential, time zone or creation time.

use clap::Subcommand;
use domain::PracticeId;

use crate::services::{Access, Services};

/// `chartroom notes …`.
#[derive(Subcommand, Debug)]
pub(crate) enum NotesCommand {
    /// Verify every note version's hash; exits non-zero on any mismatch.
    Verify {
        /// Only this practice (default: every practice).
        #[arg(long)]
        practice: Option<PracticeId>,
    },
}

/// `chartroom notes …`.
pub(crate) async fn run(svc: &Services, cmd: NotesCommand) -> anyhow::Result<()> {
    let NotesCommand::Verify { practice } = cmd;
    svc.as_owner(Access::SharedWithKeys, async |owner, _| {
        let practices = server::jobs::practices(owner, practice).await?;
        let mut bad = 0usize;
        let pass = store::each_practice("notes_verify", practices, |p| owner.verify_notes(p)).await;
        for (p, r) in &pass.done {
            if r.manifestation_not_bound > 0 {
                println!(
                    "practice {p}: {} versions were signed or saved under hash scheme 1, which does not bind the printed name, credential, time zone or creation time",
                    r.manifestation_not_bound
                );
            }
            if r.mismatched.is_empty() {
                println!(
                    "practice {p}: {} notes, {} versions, no problems found",
                    r.notes, r.versions
                );
            } else {
                for (note, versions) in &r.mismatched {
                    println!(
                        "practice {p}: note {note}: versions {versions:?} do not match their hash"
                    );
                }
                bad += r.mismatched.len();
            }
        }
        for (p, e) in &pass.failed {
            println!("practice {p}: could not be verified ({e}); skipped");
        }
        if !pass.failed.is_empty() {
            anyhow::bail!(
                "{} practice(s) could not be verified, {bad} note(s) failed verification",
                pass.failed.len()
            );
        }
        if bad > 0 {
            anyhow::bail!("{bad} note(s) failed verification");
        }
        Ok(())
    })
    .await
}
