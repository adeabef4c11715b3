//! `chartroom perio …` (placeholder, filled in by the perio work).
use clap::Subcommand;

/// Perio subcommands.
#[derive(Subcommand)]
pub enum PerioCommand {
    /// Print the recognizer phrase list.
    Vocabulary,
}

/// Runs a perio subcommand.
pub fn run(_cmd: PerioCommand) -> anyhow::Result<std::process::ExitCode> {
    Ok(std::process::ExitCode::SUCCESS)
}
