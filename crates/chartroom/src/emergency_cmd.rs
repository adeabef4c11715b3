//! `chartroom emergency …`: the operator's switch for installation-wide emergency mode (req
//! CP-03). While it is on, every practice is read-only: the server refuses every change to
//! practice records (`503 EMERGENCY-0001`) and keeps serving reads, each audited as always.
//! Switching is audited (`emergency.switch`) on the installation's own log.

use clap::Subcommand;
use domain::{Clock as _, SystemClock};

use crate::services::{Access, Services};

/// `chartroom emergency …`.
#[derive(Subcommand, Debug)]
pub(crate) enum EmergencyCommand {
    /// Make the whole installation read-only.
    On,
    /// End installation-wide emergency mode.
    Off,
    /// Show whether installation-wide emergency mode is on.
    Status,
}

/// `chartroom emergency …`.
pub(crate) async fn run(svc: &Services, cmd: EmergencyCommand) -> anyhow::Result<()> {
    svc.as_owner(Access::Shared, async |owner, _| {
        match cmd {
            EmergencyCommand::On => {
                let changed = owner
                    .set_installation_emergency(true, SystemClock.now())
                    .await?;
                println!(
                    "emergency mode {}: every practice is read-only (changes answer 503)",
                    if changed {
                        "is now on"
                    } else {
                        "was already on"
                    }
                );
            }
            EmergencyCommand::Off => {
                let changed = owner
                    .set_installation_emergency(false, SystemClock.now())
                    .await?;
                println!(
                    "emergency mode {}",
                    if changed { "is now off" } else { "was not on" }
                );
            }
            EmergencyCommand::Status => match owner.installation_emergency().await? {
                Some(since) => println!("emergency mode is on since {since}"),
                None => println!("emergency mode is off"),
            },
        }
        Ok(())
    })
    .await
}
