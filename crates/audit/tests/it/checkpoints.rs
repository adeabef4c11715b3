//! Checkpoint bodies, signed notes, keys and the key file — including known answers from
//! Go's `golang.org/x/mod/sumdb/note` and a checkpoint signed by sum.golang.org.

use std::os::unix::fs::PermissionsExt as _;

use audit::chain::GENESIS;
use audit::checkpoint::{
    Checkpoint, CheckpointError, KeyError, MAX_NOTE_BYTES, NoteError, Signer, Verifier, key_id,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

// From golang.org/x/mod/sumdb/note (note_test.go, and the package docs).
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

// A real checkpoint of the Go checksum database (retrieved from https://sum.golang.org/latest
// on 2024-09-23, as recorded in sigsum-go's tests) and the key Go's cmd/go pins for it.
const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
const SUMDB_CHECKPOINT: &str = "go.sum database tree\n30055305\nmXfgRcJ0bG0j3CPdKwgGWtUzBUbX67saZGRmFuJGGsM=\n\n— sum.golang.org Az3grpgEild5qw7+5dtV13Kf1C2Xurm8q4fhdxvcsDHnqNTaxL2AFjBY+2TyGKevucFcAAlWFJJYle3EJlDCrQ+y3A8=\n";

fn go_note() -> String {
    format!("{GO_TEXT}\n{PETER_SIG}")
}

#[test]
fn go_signer_key_gives_go_verifier_key_and_go_signature() {
    let signer = Signer::from_key_string(PETER_SKEY).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_id(), 0xc74f_20a3);
    assert_eq!(signer.verifier_key(), PETER_VKEY);
    assert_eq!(signer.to_key_string().as_str(), PETER_SKEY);
    // Ed25519 is deterministic: the same key and text give Go's exact note.
    assert_eq!(signer.sign_note(GO_TEXT).unwrap(), go_note());
}

#[test]
fn go_signed_note_opens_with_go_verifier_key() {
    let v = Verifier::new(PETER_VKEY).unwrap();
    assert_eq!(v.open_note(&go_note()).unwrap(), GO_TEXT);
    // With an unknown second signature (ignored) and with both keys.
    let both = format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    assert_eq!(v.open_note(&both).unwrap(), GO_TEXT);
    let enoch = Verifier::new(ENOCH_VKEY).unwrap();
    assert_eq!(enoch.open_note(&both).unwrap(), GO_TEXT);
    // Not signed by this key at all.
    assert_eq!(
        enoch.open_note(&go_note()),
        Err(NoteError::NotSignedByKey {
            name: "EnochRoot".into(),
            id: 0xaf0c_fe78
        })
    );
}

#[test]
fn sum_golang_org_checkpoint_opens() {
    let v = Verifier::new(SUMDB_VKEY).unwrap();
    let cp = v.open(SUMDB_CHECKPOINT).unwrap();
    assert_eq!(cp.origin, "go.sum database tree");
    assert_eq!(cp.size, 30_055_305);
    assert_eq!(
        B64.encode(cp.root),
        "mXfgRcJ0bG0j3CPdKwgGWtUzBUbX67saZGRmFuJGGsM="
    );
    assert!(cp.extensions.is_empty());
    assert_eq!(
        cp.to_body(),
        SUMDB_CHECKPOINT.split("\n\n").next().unwrap().to_owned() + "\n"
    );
    // One changed digit and the signature no longer holds.
    let forged = SUMDB_CHECKPOINT.replace("30055305", "30055304");
    assert_eq!(
        v.open(&forged),
        Err(NoteError::BadSignature {
            name: "sum.golang.org".into(),
            id: 0x033d_e0ae
        })
    );
}

#[test]
fn go_bad_notes_are_refused() {
    let v = Verifier::new(PETER_VKEY).unwrap();
    let bad = [
        GO_TEXT.to_owned(),
        format!("{GO_TEXT}\n"),
        format!("{GO_TEXT}\n{}", PETER_SIG.trim_end_matches('\n')),
        format!("\x01{GO_TEXT}\n{PETER_SIG}"),
        format!(
            "{GO_TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        ),
        format!("{GO_TEXT}\n{PETER_SIG}Unexpected line.\n"),
        format!("{GO_TEXT}\n{PETER_SIG}\n"),
        format!(
            "{GO_TEXT}\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        ),
        format!("{GO_TEXT}\n— PeterNeumann x08g\n"),
        format!("{GO_TEXT}\n— PeterNeumann not*base64\n"),
        format!("{GO_TEXT}\r\n{PETER_SIG}"),
    ];
    for note in bad {
        assert!(v.open_note(&note).is_err(), "accepted {note:?}");
    }
    // Too many signatures (Go refuses more than 100 as well).
    let many = format!("{GO_TEXT}\n{}", PETER_SIG.repeat(101));
    assert_eq!(v.open_note(&many), Err(NoteError::TooManySignatures));
    let hundred = format!("{GO_TEXT}\n{}", PETER_SIG.repeat(100));
    assert_eq!(v.open_note(&hundred).unwrap(), GO_TEXT);
    // A corrupted signature by the known key rejects the note (Go's test vector).
    let (head, tail) = PETER_SIG.split_at(60);
    let corrupt = format!("{GO_TEXT}\n{head}ABCD{tail}");
    assert_eq!(
        v.open_note(&corrupt),
        Err(NoteError::BadSignature {
            name: "PeterNeumann".into(),
            id: 0xc74f_20a3
        })
    );
    // Oversize.
    let huge = format!("{}\n{PETER_SIG}", "a".repeat(MAX_NOTE_BYTES));
    assert_eq!(
        v.open_note(&huge),
        Err(NoteError::TooLarge { len: huge.len() })
    );
}

#[test]
fn go_key_string_manglings_are_refused() {
    assert!(Verifier::new(PETER_VKEY).is_ok());
    let b = PETER_VKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if (i, j) != (0, b.len())
                && let Ok(s) = std::str::from_utf8(&b[i..j])
            {
                assert!(Verifier::new(s).is_err(), "accepted {s:?}");
            }
        }
    }
    for i in 0..b.len() {
        let mut m = b.to_vec();
        m[i] += 1;
        let s = String::from_utf8(m).unwrap();
        // Changing the case of a hex digit of the ID keeps the same ID, as in Go.
        if s.to_lowercase() != PETER_VKEY.to_lowercase() || !s.contains("+c74f20a3+") {
            assert!(Verifier::new(&s).is_err(), "accepted {s:?}");
        }
    }
    // Go's two adjusted-hash cases.
    assert!(matches!(
        Verifier::new("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="),
        Err(KeyError::Malformed { .. })
    ));
    assert!(matches!(
        Verifier::new("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(KeyError::Algorithm(0x65))
    ));
    let s = PETER_SKEY.as_bytes();
    for i in 0..s.len() {
        let mut m = s.to_vec();
        m[i] += 1;
        let k = String::from_utf8(m).unwrap();
        assert!(Signer::from_key_string(&k).is_err(), "accepted {k:?}");
    }
}

#[test]
fn key_id_is_sha256_of_name_newline_type_key() {
    let raw = B64
        .decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        .unwrap();
    let key: [u8; 32] = raw[1..].try_into().unwrap();
    assert_eq!(key_id("PeterNeumann", &key), 0xc74f_20a3);
}

fn test_signer() -> Signer {
    Signer::from_seed("clinic.example/chartroom", &[7; 32]).unwrap()
}

#[test]
fn sign_and_open_round_trip() {
    let signer = test_signer();
    let cp =
        Checkpoint::new("clinic.example/chartroom/audit/x", 20, [9; 32]).with_chain_head(&GENESIS);
    let note = signer.sign(&cp).unwrap();
    let verifier = Verifier::new(&signer.verifier_key()).unwrap();
    assert_eq!(verifier, signer.verifier());
    let opened = verifier.open(&note).unwrap();
    assert_eq!(opened, cp);
    assert_eq!(opened.chain_head().unwrap(), Some(GENESIS));
    // A generated key round-trips through its key string.
    let fresh = Signer::generate("clinic.example/chartroom").unwrap();
    let again = Signer::from_key_string(&fresh.to_key_string()).unwrap();
    assert_eq!(again.verifier_key(), fresh.verifier_key());
    assert_ne!(fresh.verifier_key(), signer.verifier_key());
    // Another key's verifier does not accept it.
    assert!(matches!(
        fresh.verifier().open(&note),
        Err(NoteError::NotSignedByKey { .. })
    ));
    // A co-signature by another key is ignored, in either order.
    let cosig = fresh.sign_note(&cp.to_body()).unwrap();
    let cosig_line = cosig.rsplit("\n\n").next().unwrap();
    let both = format!("{note}{cosig_line}");
    assert_eq!(verifier.open(&both).unwrap(), cp);
    assert_eq!(fresh.verifier().open(&both).unwrap(), cp);
}

/// The example note shown in the crate docs is this exact output.
#[test]
fn example_note_in_the_docs() {
    let signer = test_signer();
    let practice = uuid::Uuid::parse_str("0190a0c4-7c9f-7d9a-9a3e-4b1c2d3e4f50").unwrap();
    let origin = audit::checkpoint::origin("clinic.example/chartroom/audit", practice);
    let cp = Checkpoint::new(origin, 20, audit::merkle::leaf_hash(b"example root"))
        .with_chain_head(&audit::chain::chain_hash(&GENESIS, b"example"));
    let note = signer.sign(&cp).unwrap();
    let docs = include_str!("../../src/lib.rs");
    let shown: String = note
        .lines()
        .map(|l| format!("//! {l}\n").replace("//! \n", "//!\n"))
        .collect();
    assert!(
        docs.contains(&shown),
        "update the example in src/lib.rs to:\n{shown}"
    );
    let vkey = format!("verifier key: `{}`", signer.verifier_key());
    let docs = docs.replace("//! ", "").replace('\n', " ");
    assert!(docs.contains(&vkey), "add to src/lib.rs: {vkey}");
}

#[test]
fn checkpoint_bodies_parse_strictly() {
    let root = B64.encode([3u8; 32]);
    let ok = format!("example.com/log\n42\n{root}\n");
    let cp = Checkpoint::parse(&ok).unwrap();
    assert_eq!(
        (cp.origin.as_str(), cp.size, cp.root),
        ("example.com/log", 42, [3; 32])
    );
    assert_eq!(cp.to_body(), ok);
    assert_eq!(
        Checkpoint::parse(&format!("o\n0\n{root}\n")).unwrap().size,
        0
    );
    assert_eq!(
        Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\next one\n"))
            .unwrap()
            .size,
        u64::MAX
    );
    let bad_root = B64.encode([3u8; 31]);
    let noncanonical = format!("{}B=", &root[..root.len() - 2]);
    let cases: Vec<(String, CheckpointError)> = vec![
        (format!("o\n42\n{root}"), CheckpointError::NoFinalNewline),
        (
            "o\n42\n".to_owned(),
            CheckpointError::TooFewLines { lines: 2 },
        ),
        (
            format!("\n42\n{root}\n"),
            CheckpointError::BadLine { line: 1 },
        ),
        (
            format!("o\n42\n{root}\n\n"),
            CheckpointError::BadLine { line: 4 },
        ),
        (
            format!("o\x7f\n42\n{root}\n"),
            CheckpointError::BadLine { line: 1 },
        ),
        (
            format!("o\n42\n{root}\r\n"),
            CheckpointError::BadLine { line: 3 },
        ),
        (
            format!("o\n042\n{root}\n"),
            CheckpointError::BadSize { text: "042".into() },
        ),
        (
            format!("o\n+42\n{root}\n"),
            CheckpointError::BadSize { text: "+42".into() },
        ),
        (
            format!("o\n 42\n{root}\n"),
            CheckpointError::BadSize { text: " 42".into() },
        ),
        (
            format!("o\n4_2\n{root}\n"),
            CheckpointError::BadSize { text: "4_2".into() },
        ),
        (
            format!("o\n00\n{root}\n"),
            CheckpointError::BadSize { text: "00".into() },
        ),
        (
            format!("o\n18446744073709551616\n{root}\n"),
            CheckpointError::BadSize {
                text: "18446744073709551616".into(),
            },
        ),
        (
            format!("o\n42\n{bad_root}\n"),
            CheckpointError::BadRoot {
                text: bad_root.clone(),
            },
        ),
        (
            format!("o\n42\n{noncanonical}\n"),
            CheckpointError::BadRoot {
                text: noncanonical.clone(),
            },
        ),
        (
            format!("o\n42\n{}\n", root.trim_end_matches('=')),
            CheckpointError::BadRoot {
                text: root.trim_end_matches('=').into(),
            },
        ),
        (
            format!("o\n42\n{root}\nchartroom-chain-head xyz\n"),
            CheckpointError::BadChainHead,
        ),
    ];
    for (body, want) in cases {
        assert_eq!(Checkpoint::parse(&body), Err(want), "{body:?}");
    }
    // Error messages say what was expected.
    assert_eq!(
        CheckpointError::BadSize { text: "042".into() }.to_string(),
        "checkpoint tree size \"042\" is not a decimal number without leading zeros that fits in 64 bits"
    );
}

#[test]
fn signer_refuses_unsignable_checkpoints() {
    let signer = test_signer();
    let mut cp = Checkpoint::new("o\nforged", 1, [0; 32]);
    assert!(matches!(
        signer.sign(&cp),
        Err(KeyError::Checkpoint(CheckpointError::BadLine { line: 1 }))
    ));
    cp.origin = "o".into();
    cp.extensions.push(String::new());
    assert!(matches!(
        signer.sign(&cp),
        Err(KeyError::Checkpoint(CheckpointError::BadLine { line: 4 }))
    ));
    assert!(matches!(
        signer.sign_note("no newline"),
        Err(KeyError::BadNoteText)
    ));
    assert!(matches!(
        signer.sign_note("tab\there\n"),
        Err(KeyError::BadNoteText)
    ));
    assert!(matches!(
        Signer::from_seed("has space", &[1; 32]),
        Err(KeyError::BadName(_))
    ));
    assert!(matches!(
        Signer::from_seed("a+b", &[1; 32]),
        Err(KeyError::BadName(_))
    ));
    assert!(matches!(
        Signer::from_seed("", &[1; 32]),
        Err(KeyError::BadName(_))
    ));
}

#[test]
fn debug_never_shows_key_material() {
    let signer = Signer::from_key_string(PETER_SKEY).unwrap();
    let shown = format!("{signer:?} {signer:#?}");
    assert_eq!(
        format!("{signer:?}"),
        "Signer { name: \"PeterNeumann\", key_id: c74f20a3, .. }"
    );
    let seed_b64 = PETER_SKEY.splitn(5, '+').nth(4).unwrap();
    let seed = B64.decode(seed_b64).unwrap();
    assert!(!shown.contains(seed_b64));
    assert!(!shown.contains(&hex::encode(&seed[1..])));
    assert!(!shown.to_lowercase().contains("private"));
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "audit-test-{tag}-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn key_file_is_created_0600_and_reloaded() {
    let dir = temp_dir("key");
    let path = dir.join("checkpoint.key");
    let created = Signer::load_or_create(&path, "clinic.example/chartroom").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("PRIVATE+KEY+clinic.example/chartroom+") && text.ends_with('\n'));
    let loaded = Signer::load_or_create(&path, "clinic.example/chartroom").unwrap();
    assert_eq!(loaded.verifier_key(), created.verifier_key());
    // Another name is refused rather than silently used.
    assert!(matches!(
        Signer::load_or_create(&path, "other.example"),
        Err(KeyError::NameMismatch { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn key_file_readable_by_others_is_refused() {
    let dir = temp_dir("perm");
    let path = dir.join("checkpoint.key");
    Signer::load_or_create(&path, "n").unwrap();
    for mode in [0o640, 0o604, 0o660, 0o644] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Signer::load_or_create(&path, "n").unwrap_err();
        assert!(
            matches!(err, KeyError::Permissions { mode: m, .. } if m == mode),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "key file {p} has mode {mode:04o}: a signing key must be readable by its owner only; run `chmod 600 {p}` and check who could have copied it",
                p = path.display()
            )
        );
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(Signer::load(&path, "n").is_ok());
    // A corrupt key file is an error, not a new key.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, "PRIVATE+KEY+n+00000000+AAAA\n").unwrap();
    assert!(Signer::load_or_create(&path, "n").is_err());
    // A directory is not a key file.
    assert!(matches!(
        Signer::load(&dir, "n"),
        Err(KeyError::NotAFile { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
