//! `chartroom perio …`: the command-line contract of the perio engine (SPEC §7).
//!
//! Thin by design: the engine, the fixture evaluation and the lexicon live in the `perio`
//! crate; this module reads files and arguments and prints.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use perio::fixtures::{Totals, evaluate_jsonl};

/// Perio subcommands.
#[derive(Subcommand)]
pub enum PerioCommand {
    /// Print the outcome of one final as JSON (SPEC §4).
    Parse {
        /// Session context: the defaults of SPEC §4.1 overridden by these fields; may carry
        /// `chart`, `history`, `cursor`, `last_site`, `cursor_moved_by`.
        #[arg(long, value_name = "JSON")]
        ctx: Option<String>,
        /// The final, as the recognizer produced it (several arguments are joined by spaces).
        #[arg(required = true, num_args = 1.., value_name = "UTTERANCE")]
        utterance: Vec<String>,
    },
    /// Run utterance and session fixtures; print one line per failing case and the totals.
    /// Exits 0 only if nothing failed.
    Eval {
        /// JSONL fixture files (utterance and session cases may be mixed).
        #[arg(required = true, value_name = "FILE.jsonl")]
        files: Vec<PathBuf>,
    },
    /// Print the recognizer phrase list generated from the lexicon, one phrase per line.
    Vocabulary,
}

/// Runs a perio subcommand.
pub fn run(cmd: PerioCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        PerioCommand::Parse { ctx, utterance } => {
            let ctx: serde_json::Value = match ctx {
                Some(text) => serde_json::from_str(&text).context("--ctx is not JSON")?,
                None => serde_json::json!({}),
            };
            let mut session = perio::Session::from_ctx(&ctx).context("--ctx")?;
            let outcome = session.apply_final(&utterance.join(" "));
            writeln!(out, "{}", serde_json::to_string(&outcome)?)?;
            Ok(ExitCode::SUCCESS)
        }
        PerioCommand::Eval { files } => {
            let mut totals = Totals::default();
            for file in &files {
                let contents = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let results = evaluate_jsonl(&contents);
                for failed in results.iter().filter(|r| !r.passed()) {
                    writeln!(out, "FAIL {}: {failed}", file.display())?;
                }
                totals.add(&results);
            }
            writeln!(out, "{totals}")?;
            Ok(if totals.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PerioCommand::Vocabulary => {
            for phrase in perio::lexicon::vocabulary() {
                writeln!(out, "{phrase}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
