//! The `chartroom` binary.
mod perio_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "chartroom", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Periodontal dictation engine: parse, evaluate fixtures, export the vocabulary.
    #[command(subcommand)]
    Perio(perio_cmd::PerioCommand),
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Perio(cmd) => perio_cmd::run(cmd),
    }
}
