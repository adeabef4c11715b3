//! `chartroom perio …`: the command-line contract of the perio engine (SPEC §7).
//!
//! Thin by design: the engine, the fixture evaluation and the lexicon live in the `perio`
//! crate; this module reads files and arguments and prints.

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
    /// Recognize the clips of voice manifests, apply them as dictated finals and score each
    /// against its typed utterance (exact / flagged / wrong); print one line per non-exact
    /// final and the totals. Exits non-zero when any final is wrong.
    EvalVoice {
        /// Base URL of an OpenAI-compatible transcription endpoint, e.g.
        /// `http://127.0.0.1:8080`. Without it, the local Whisper sidecar installed by
        /// `scripts/install-scribe` is started for the run and stopped after it.
        #[arg(long, value_name = "URL")]
        recognizer_url: Option<String>,
        /// The model name sent to the endpoint.
        #[arg(long, default_value = "whisper-base")]
        model: String,
        /// Print a line for every final, exact ones too.
        #[arg(long)]
        all: bool,
        /// Voice manifests (`shared/perio/voice/*/manifest.jsonl`).
        #[arg(required = true, value_name = "MANIFEST.jsonl")]
        files: Vec<PathBuf>,
    },
    /// Print the recognizer prompt generated from the lexicon.
    VoicePrompt,
}

/// Runs a perio subcommand.
pub fn run(cmd: PerioCommand) -> anyhow::Result<ExitCode> {
    match run_to(cmd, &mut std::io::stdout().lock()) {
        // `chartroom perio vocabulary | head` is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

fn run_to(cmd: PerioCommand, out: &mut dyn std::io::Write) -> anyhow::Result<ExitCode> {
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
        PerioCommand::EvalVoice {
            recognizer_url,
            model,
            all,
            files,
        } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let totals = runtime.block_on(async {
                let (local, url, model) = if let Some(url) = recognizer_url {
                    (None, url, model)
                } else {
                    let (local, posture) = crate::perio_voice::start_local().await?;
                    (Some(local), posture.base_url, posture.model)
                };
                let result = match crate::perio_voice::Recognizer::new(&url, &model) {
                    Ok(recognizer) => {
                        crate::perio_voice::eval_voice(&files, &recognizer, all, out).await
                    }
                    Err(e) => Err(e),
                };
                if let Some(local) = local {
                    local.stop().await;
                }
                result
            })?;
            Ok(if totals.wrong == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PerioCommand::VoicePrompt => {
            writeln!(out, "{}", perio::voice::prompt())?;
            Ok(ExitCode::SUCCESS)
        }
        PerioCommand::Vocabulary => {
            for phrase in perio::lexicon::vocabulary() {
                writeln!(out, "{phrase}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(cmd: PerioCommand) -> (ExitCode, String) {
        let mut buf = Vec::new();
        let code = run_to(cmd, &mut buf).unwrap();
        (code, String::from_utf8(buf).unwrap())
    }

    fn path(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    #[test]
    fn eval_reports_failures_and_totals() {
        let examples = path("../../../shared/perio/examples.jsonl");
        let sessions = path("../../../shared/perio/sessions.jsonl");
        let (code, out) = output(PerioCommand::Eval {
            files: vec![examples.clone(), sessions.clone()],
        });
        assert_eq!(
            (code, out.as_str()),
            (ExitCode::SUCCESS, "43 passed, 0 failed\n")
        );
        // One case whose expectation the engine does not meet: reported, and the exit fails.
        let dir = std::env::temp_dir().join(format!("chartroom-perio-eval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let broken = dir.join("examples.jsonl");
        let text = std::fs::read_to_string(&examples).unwrap();
        std::fs::write(
            &broken,
            text.replace(
                r#""warnings": ["repair:4->3", "run_not_triplet"]"#,
                r#""warnings": ["repair:4->3"]"#,
            ),
        )
        .unwrap();
        let (code, out) = output(PerioCommand::Eval {
            files: vec![broken, sessions],
        });
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(code, ExitCode::FAILURE);
        assert!(out.ends_with("42 passed, 1 failed\n"), "{out}");
        assert!(out.starts_with("FAIL "), "{out}");
    }

    #[test]
    fn parse_prints_the_outcome() {
        let cmd = PerioCommand::Parse {
            ctx: Some(r#"{"cursor":{"tooth":3,"surface":"F","site":"DB"}}"#.to_owned()),
            utterance: vec!["three two four".to_owned(), "bleeding".to_owned()],
        };
        let (code, out) = output(cmd);
        assert_eq!(code, ExitCode::SUCCESS);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["status"], "ok");
        assert_eq!(
            json["events"][3],
            serde_json::json!({"type":"flag","tooth":3,"site":"MB","flag":"bleeding","on":true})
        );
        let bad = PerioCommand::Parse {
            ctx: Some("{".to_owned()),
            utterance: vec!["three".to_owned()],
        };
        assert_eq!(
            run_to(bad, &mut Vec::new()).unwrap_err().to_string(),
            "--ctx is not JSON"
        );
    }

    #[test]
    fn vocabulary_is_the_lexicon_export() {
        let (_, out) = output(PerioCommand::Vocabulary);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines, perio::lexicon::vocabulary());
    }
}
