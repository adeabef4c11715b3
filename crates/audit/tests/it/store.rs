//! The checkpoint directory: layout, atomic no-overwrite writes, listing.

use std::path::PathBuf;

use audit::checkpoint::{Checkpoint, Signer};
use audit::store::{CheckpointStore, DirStore, Put, StoreError};

use crate::support::{log_origin, other_practice, practice};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "audit-store-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn note(size: u64, root_byte: u8) -> String {
    let signer = Signer::from_seed("clinic.example/chartroom", &[7; 32]).unwrap();
    signer
        .sign(&Checkpoint::new(log_origin(), size, [root_byte; 32]))
        .unwrap()
}

#[test]
fn put_then_list_in_size_order() {
    let tmp = TempDir::new();
    let store = DirStore::new(&tmp.0);
    assert_eq!(store.latest(practice()).unwrap(), None);
    assert!(store.all(practice()).unwrap().is_empty());
    for size in [20, 3, 100, 0] {
        assert_eq!(
            store.put(practice(), &note(size, 1), size).unwrap(),
            Put::Written
        );
    }
    assert_eq!(store.sizes(practice()).unwrap(), vec![0, 3, 20, 100]);
    let all = store.all(practice()).unwrap();
    assert_eq!(all, vec![note(0, 1), note(3, 1), note(20, 1), note(100, 1)]);
    assert_eq!(store.latest(practice()).unwrap(), Some(note(100, 1)));
    // Other practices are separate.
    assert_eq!(store.latest(other_practice()).unwrap(), None);
    // Layout: <dir>/<practice uuid>/<20-digit size>.checkpoint, nothing else left behind.
    let path = tmp
        .0
        .join(practice().to_string())
        .join("00000000000000000020.checkpoint");
    assert_eq!(store.path_for(practice(), 20), path);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), note(20, 1));
    let names: Vec<_> = std::fs::read_dir(tmp.0.join(practice().to_string()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

#[test]
fn same_note_again_is_a_no_op_and_a_different_one_a_conflict() {
    let tmp = TempDir::new();
    let store = DirStore::new(&tmp.0);
    store.put(practice(), &note(7, 1), 7).unwrap();
    assert_eq!(
        store.put(practice(), &note(7, 1), 7).unwrap(),
        Put::AlreadyPresent
    );
    let err = store.put(practice(), &note(7, 2), 7).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("two different signed trees of one size"),
        "{err}"
    );
    // The original is untouched.
    assert_eq!(store.latest(practice()).unwrap(), Some(note(7, 1)));
}

#[test]
fn note_filed_under_another_size_is_refused() {
    let tmp = TempDir::new();
    let store = DirStore::new(&tmp.0);
    let err = store.put(practice(), &note(7, 1), 8).unwrap_err();
    assert!(
        matches!(err, StoreError::SizeMismatch { size: 8, ref stated } if stated == "7"),
        "{err}"
    );
}

#[test]
fn stray_files_are_ignored() {
    let tmp = TempDir::new();
    let store = DirStore::new(&tmp.0);
    store.put(practice(), &note(5, 1), 5).unwrap();
    let dir = tmp.0.join(practice().to_string());
    std::fs::write(dir.join("5.checkpoint"), "x").unwrap();
    std::fs::write(dir.join(".00000000000000000009.abc.tmp"), "x").unwrap();
    std::fs::write(dir.join("README"), "x").unwrap();
    assert_eq!(store.sizes(practice()).unwrap(), vec![5]);
}

#[test]
fn concurrent_writers_of_one_size_never_clobber() {
    let tmp = TempDir::new();
    let store = DirStore::new(&tmp.0);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u8)
            .map(|i| {
                let store = store.clone();
                s.spawn(move || store.put(practice(), &note(42, i % 2), 42))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let written = results
        .iter()
        .filter(|r| matches!(r, Ok(Put::Written)))
        .count();
    assert_eq!(written, 1, "{results:?}");
    let stored = store.latest(practice()).unwrap().unwrap();
    for r in results {
        assert!(
            matches!(r, Ok(_) | Err(StoreError::Conflict { .. })),
            "{r:?}"
        );
    }
    assert!(stored == note(42, 0) || stored == note(42, 1));
}
