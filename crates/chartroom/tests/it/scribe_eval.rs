//! `chartroom scribe eval` (issue 18 item 9) through the real binary: synthetic visits spoken
//! by espeak-ng, transcribed by the real local Whisper, then drafted twice — the default
//! draft, and through a self-hosted OpenAI-compatible drafting provider (a loopback stand-in
//! of chat completions) whose reply cites every transcript segment and adds one sentence they
//! do not support — and the figures it reports: sentences, evidence coverage, flagged
//! sentences, per visit and overall. A provider the gate refuses stops the evaluation before
//! anything is sent.
//!
//! Skipped (with a message) only when the local scribe is not installed here; with
//! `CHARTROOM_SCRIBE_REQUIRED=1` (set by `./dev test`) the skip is a failure.

use std::process::{Command, Output};

use egress::local::LocalWhisperConfig;
use serde_json::{Value, json};
use testkit::standins::{Reply, StandIn};

fn installed() -> bool {
    let Some(home) = LocalWhisperConfig::default_home() else {
        return false;
    };
    if LocalWhisperConfig::is_installed(&home) {
        return true;
    }
    assert!(
        std::env::var_os("CHARTROOM_SCRIBE_REQUIRED").is_none(),
        "CHARTROOM_SCRIBE_REQUIRED is set but the local scribe is not installed in {}",
        home.display()
    );
    eprintln!(
        "SKIPPED: the local scribe is not installed in {} (run scripts/install-scribe)",
        home.display()
    );
    false
}

/// Runs `chartroom scribe eval ARGS` off the runtime's thread (the stand-in keeps serving).
async fn eval(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_chartroom"))
            .args(["scribe", "eval"])
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn figures(v: &Value) -> (u64, u64, u64, f64) {
    (
        v["sentences"].as_u64().unwrap(),
        v["citing"].as_u64().unwrap(),
        v["flagged_sentences"].as_u64().unwrap(),
        v["evidence_coverage"].as_f64().unwrap(),
    )
}

fn rounded(citing: u64, sentences: u64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let r = citing as f64 / sentences as f64;
    (r * 1000.0).round() / 1000.0
}

// req: SCR-05, SCR-06 — the evaluation drafts each synthetic (marked) transcript and reports
// evidence coverage and flagged sentences by the server's own evidence check.
#[tokio::test]
async fn the_evaluation_reports_drafting_figures_of_the_default_draft_and_a_provider() {
    if !installed() {
        return;
    }
    let drafter = StandIn::openai().await;
    let unsupported =
        json!({"section": "plan", "text": "Prescribed amoxicillin 500 mg.", "evidence": []});
    for _ in 0..2 {
        drafter.script(Reply::DraftPlus(vec![unsupported.clone()]));
    }
    let url = drafter.url();
    let out = eval(&[
        "--visits",
        "1",
        "--voices",
        "en-us,en-gb",
        "--beam-size",
        "1",
        "--json",
        "--drafter-url",
        &url,
        "--drafter-model",
        "model-x",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!(
        "{}",
        serde_json::to_string_pretty(&report["summary"]).unwrap()
    );
    assert_eq!(report["marker"], "SYNTHETIC");

    // One draft request per clip, each carrying the template and the clip's transcript.
    let recorded = drafter.recorded();
    assert_eq!(recorded.len(), 2);
    let clips = report["visits"].as_array().unwrap();
    assert_eq!(clips.len(), 2);
    let (mut all_sentences, mut all_citing, mut default_sentences) = (0, 0, 0);
    for (clip, request) in clips.iter().zip(&recorded) {
        assert_eq!(request.path, "/v1/chat/completions");
        let message = request.json.as_ref().unwrap()["messages"][1]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains("Template: dental_hygiene"), "{message}");
        let segments = clip["segments"].as_u64().unwrap();
        assert!(segments >= 3, "{clip}");
        assert_eq!(
            u64::try_from(message.lines().filter(|l| l.contains("] id=")).count()).unwrap(),
            segments,
            "every kept segment is sent: {message}"
        );
        assert!(clip["word_error_rate"].as_f64().unwrap() < 0.5, "{clip}");
        // The default draft: each segment quoted, citing itself; nothing flagged.
        assert_eq!(
            figures(&clip["drafting"]["default"]),
            (segments, segments, 0, 1.0),
            "{clip}"
        );
        // The provider's draft: each segment cited, plus the unsupported sentence, flagged.
        assert_eq!(
            figures(&clip["drafting"]["provider"]),
            (segments + 1, segments, 1, rounded(segments, segments + 1)),
            "{clip}"
        );
        assert!(clip["drafting"].get("provider_error").is_none(), "{clip}");
        all_sentences += segments + 1;
        all_citing += segments;
        default_sentences += segments;
    }
    let drafting = &report["summary"]["drafting"];
    assert_eq!(
        figures(&drafting["default"]["all"]),
        (default_sentences, default_sentences, 0, 1.0)
    );
    assert_eq!(
        figures(&drafting["provider"]["all"]),
        (
            all_sentences,
            all_citing,
            2,
            rounded(all_citing, all_sentences)
        )
    );
    assert_eq!(drafting["provider"]["drafts"], 2);
    assert_eq!(drafting["provider"]["failed"], 0);
    assert_eq!(drafting["provider"]["model"], "model-x");
    // Per visit: the one visit's two clips together.
    let by_visit = drafting["provider"]["by_visit"].as_object().unwrap();
    assert_eq!(by_visit.len(), 1);
    assert_eq!(
        figures(by_visit.values().next().unwrap()),
        figures(&drafting["provider"]["all"])
    );
}

// req: SCR-03 — a drafting provider that is not self-hosted is refused by the gate before the
// evaluation starts; nothing reaches it.
#[tokio::test]
async fn the_evaluation_refuses_a_drafting_provider_the_gate_refuses() {
    let out = eval(&[
        "--visits",
        "1",
        "--drafter-url",
        "http://drafter.example.com",
        "--drafter-model",
        "model-x",
    ])
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused by the provider gate"), "{stderr}");
    assert!(out.stdout.is_empty());
    // A URL without a model (or a model without a URL) is a usage error.
    let out = eval(&["--drafter-url", "http://127.0.0.1:9"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--drafter-model"),
        "{out:?}"
    );
}
