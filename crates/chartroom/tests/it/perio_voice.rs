//! `chartroom perio eval-voice` against the real local recognizer (the Whisper sidecar
//! installed by `scripts/install-scribe`) on a few clips of the public voice fixtures: the
//! summary line has the contract's format and no final is charted wrong, through a sidecar
//! the test starts (`--recognizer-url`) and through the one the command supervises itself. The full run (56
//! clips, minutes on two cores) is measured in BENCHMARKS.md, not run here.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The install made by `scripts/install-scribe` (same default as the script).
fn scribe_home() -> PathBuf {
    std::env::var_os("CHARTROOM_SCRIBE_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/chartroom-scribe"),
        PathBuf::from,
    )
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts the sidecar on a loopback port the kernel picks; returns it and its base URL.
pub(crate) fn start_sidecar() -> (Child, String) {
    let home = scribe_home();
    assert!(
        home.join("installed").exists(),
        "the local recognizer is not installed: run scripts/install-scribe"
    );
    let mut child = Command::new(home.join("venv/bin/python"))
        .arg(repo().join("scribe/whisper_server.py"))
        .args(["--model"])
        .arg(home.join("models/whisper-base"))
        .args(["--port", "0", "--threads", "2", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The sidecar prints its ready line once the model is loaded (bounded by its exit).
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("chartroom-whisper ready"))
        .expect("the sidecar exited before it was ready");
    let port: u16 = line.rsplit('=').next().unwrap().parse().unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

/// A manifest of the first `n` example cases, with their clips copied next to it.
pub(crate) fn small_manifest(dir: &Path, ids: &[&str]) -> PathBuf {
    let src = repo().join("../shared/perio/voice/examples");
    let text = std::fs::read_to_string(src.join("manifest.jsonl")).unwrap();
    let mut out = std::fs::File::create(dir.join("manifest.jsonl")).unwrap();
    for line in text.lines() {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        if !ids.contains(&case["id"].as_str().unwrap()) {
            continue;
        }
        for clip in case["clips"].as_array().unwrap() {
            let rel = clip.as_str().unwrap();
            let to = dir.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(src.join(rel), to).unwrap();
        }
        writeln!(out, "{line}").unwrap();
    }
    dir.join("manifest.jsonl")
}

#[test]
fn eval_voice_on_a_few_clips_charts_nothing_wrong() {
    let dir = std::env::temp_dir().join(format!("chartroom-eval-voice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A run, a repair, a furcation mishearing ("focation"), conversation.
    let manifest = small_manifest(&dir, &["1", "19", "28", "17"]);
    let (mut sidecar, url) = start_sidecar();
    let out = Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .args(["perio", "eval-voice", "--recognizer-url", &url])
        .arg(&manifest)
        .output()
        .unwrap();
    drop(sidecar.stdin.take());
    let _ = sidecar.wait();
    assert_summary(&out);
    // Without a URL the command starts the installed sidecar itself and stops it after.
    let supervised = Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .args(["perio", "eval-voice"])
        .arg(dir.join("manifest.jsonl"))
        .env("CHARTROOM_SCRIBE_HOME", scribe_home())
        .output()
        .unwrap();
    assert_summary(&supervised);
    std::fs::remove_dir_all(&dir).unwrap();
    refuses_an_unreachable_recognizer();
}

fn assert_summary(out: &std::process::Output) {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let last = stdout.lines().last().unwrap_or_default();
    let (finals, rest) = last.split_once(" finals: ").expect(&stdout);
    assert_eq!(finals, "4", "{stdout}");
    let parts: Vec<&str> = rest.split([',', ';']).map(str::trim).collect();
    assert_eq!(parts.len(), 4, "{last}");
    assert!(
        parts[0].ends_with(" exact") && parts[1].ends_with(" flagged"),
        "{last}"
    );
    assert_eq!(parts[2], "0 wrong", "{stdout}");
    assert_eq!(parts[3], "0/0 session charts exact", "{last}");
    assert!(out.status.success(), "{stdout}");
}

/// The command refuses a recognizer it cannot reach: an error, not a score.
fn refuses_an_unreachable_recognizer() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let refused = Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .args(["perio", "eval-voice", "--recognizer-url"])
        .arg(format!("http://127.0.0.1:{closed}"))
        .arg(repo().join("../shared/perio/voice/examples/manifest.jsonl"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("recognizer"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
