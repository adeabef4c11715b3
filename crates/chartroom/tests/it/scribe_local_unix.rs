//! The scribe's offline local default over a Unix socket, as `serve` runs it by default: the
//! real Whisper sidecar listening on `<dir>/whisper.sock` in a private directory, spoken to
//! through the production OpenAI-compatible adapter (`egress::OpenAiTranscriber`, HTTP over
//! the socket), restarted on the same socket when it dies.
//!
//! Skipped (with a message) only when the install script has not run here, as in
//! `scribe_local`; `CHARTROOM_SCRIBE_REQUIRED=1` turns the skip into a failure.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use egress::local::{LocalListen, LocalStatus, LocalWhisper, LocalWhisperConfig};
use egress::{OpenAiTranscriber, Transcriber, TranscriptionRequest};

use crate::scribe_local::{SENTENCE, eventually, installed_home, run, speak, synth, wer, words};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

async fn transcribe(cleared: &egress::Cleared, wav: &[u8]) -> egress::TranscriptionReply {
    OpenAiTranscriber::new(None)
        .unwrap()
        .transcribe(
            cleared,
            TranscriptionRequest {
                wav: wav.to_vec().into(),
                prompt: None,
                language: Some("en".into()),
            },
        )
        .await
        .unwrap()
}

// Issue 18.4 — the local default "run by Chartroom as a supervised local process on … a Unix
// socket and spoken to through the same adapter": real speech in, the words out, over the
// socket; the socket private to Chartroom's user (directory 0700, socket 0600).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_whisper_answers_the_openai_adapter_over_a_private_unix_socket() {
    let Some(home) = installed_home() else { return };
    // A short path: a socket path must fit in 107 bytes.
    let root = std::env::temp_dir().join(format!("crsock-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let speech = speak(&root, "speech", "en-us", SENTENCE);
    let silence = synth(&root, "silence", &["trim", "0", "3"]);
    let dir = root.join("data/scribe");

    let mut config = LocalWhisperConfig::from_install(&home).unwrap();
    config.threads = 2;
    config.backoff_min = Duration::from_millis(100);
    config.listen = LocalListen::unix(dir.clone()).unwrap();
    let local = LocalWhisper::spawn(config);
    let handle = local.handle();
    let posture = handle.wait_ready(Duration::from_secs(180)).await.unwrap();
    let socket = dir.join("whisper.sock");
    assert_eq!(posture.base_url, format!("unix:{}", socket.display()));
    assert_eq!(posture.hosting, egress::Hosting::SelfHosted);
    assert_eq!(mode(&dir), 0o700, "the socket's directory is private");
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(mode(&socket), 0o600, "the socket is the user's only");
    let cleared = egress::gate(&posture).expect("a Unix socket is self-hosted");
    assert_eq!(cleared.local(), Some(egress::Local::UnixSocket));

    // Speech through the production adapter, over the socket.
    let reply = transcribe(&cleared, &speech).await;
    let text: Vec<&str> = reply.segments.iter().map(|s| s.text.as_str()).collect();
    let heard = words(&text.join(" "));
    for w in ["patient", "sensitivity", "fluoride", "varnish"] {
        assert!(heard.iter().any(|h| h == w), "{w:?} not in {heard:?}");
    }
    let rate = wer(&words(SENTENCE), &heard);
    assert!(rate <= 0.2, "word error rate {rate:.2}: {heard:?}");
    let mut last_end = 0;
    for s in &reply.segments {
        assert!(s.start_ms >= last_end && s.start_ms < s.end_ms, "{s:?}");
        last_end = s.end_ms;
    }
    // Silence: nothing invented.
    assert!(transcribe(&cleared, &silence).await.segments.is_empty());

    // Killed: restarted on the same socket (the dead child's socket file replaced), and it
    // answers the same posture again.
    let LocalStatus::Ready { pid, .. } = handle.status() else {
        panic!("not ready: {:?}", handle.status())
    };
    run(Command::new("kill").args(["-KILL", &pid.to_string()]));
    assert!(
        eventually(Duration::from_secs(180), || matches!(
            handle.status(),
            LocalStatus::Ready { pid: again, .. } if again != pid
        ))
        .await,
        "restarted: {:?}",
        handle.status()
    );
    assert_eq!(handle.restarts(), 1);
    let again = handle.posture().unwrap();
    assert_eq!(again, posture);
    assert_eq!(mode(&socket), 0o600);
    assert!(
        transcribe(&egress::gate(&again).unwrap(), &silence)
            .await
            .segments
            .is_empty()
    );

    local.stop().await;
    assert_eq!(handle.status(), LocalStatus::Stopped);
    assert!(handle.posture().is_none());
    std::fs::remove_dir_all(&root).unwrap();
}

// `serve` listens on a Unix socket under its data directory by default; a data directory too
// deep for a socket path is refused at start with what to do (before any database).
#[test]
fn serve_refuses_a_data_directory_too_deep_for_the_socket() {
    let Some(home) = installed_home() else { return };
    let deep = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("scribe-deep-{}", std::process::id()))
        .join("d".repeat(110));
    let out = Command::new(env!("CARGO_BIN_EXE_chartroom"))
        .args(["serve", "--scribe-local", "on", "--scribe-home"])
        .arg(&home)
        .arg("--data-dir")
        .arg(&deep)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("CHARTROOM_SCRIBE_LOCAL")
        .env_remove("CHARTROOM_SCRIBE_LISTEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--scribe-listen loopback") && stderr.contains("socket"),
        "{stderr}"
    );
    assert!(!deep.exists(), "nothing was created");
}
