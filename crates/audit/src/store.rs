//! Where signed checkpoints live: outside PostgreSQL, so that a database superuser cannot
//! roll them back together with the log.
//!
//! [`DirStore`] keeps one file per checkpoint:
//! `<dir>/<practice uuid>/<tree size, 20 digits zero-padded>.checkpoint`, holding the
//! signed note exactly as signed. Files are written once and never changed: a second
//! `put` of the same size with the same note is a no-op, with a different note it is
//! [`StoreError::Conflict`] — two different signed trees of one size mean the log forked
//! (or someone is forging), which must be reported, never papered over. Point the
//! directory at storage the database host cannot rewrite (another machine, a write-once
//! bucket synced from it, a witness) for the guarantee to hold against its superuser.

use std::fs;
use std::io::{ErrorKind, Read as _, Write as _};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::checkpoint::MAX_NOTE_BYTES;

/// Suffix of checkpoint files.
pub const FILE_SUFFIX: &str = ".checkpoint";

/// What [`CheckpointStore::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// The checkpoint was written (and is durable).
    Written,
    /// The same note was already stored for this size.
    AlreadyPresent,
}

/// Why the checkpoint store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("checkpoint store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A different note is already stored for this size: the log forked or a note was
    /// forged. Investigate; never delete either file to "fix" it.
    #[error(
        "checkpoint {path} already exists with different content: two different signed trees of one size (forked log or forged checkpoint)"
    )]
    Conflict {
        /// The existing file.
        path: PathBuf,
    },
    /// The note's size line does not state the size it is filed under.
    #[error("note states tree size {stated:?}, but is being stored as size {size}")]
    SizeMismatch {
        /// The size given to `put`.
        size: u64,
        /// The second line of the note.
        stated: String,
    },
    /// A note larger than [`MAX_NOTE_BYTES`].
    #[error("checkpoint {path} is larger than {MAX_NOTE_BYTES} bytes")]
    TooLarge {
        /// The file (or the target file for `put`).
        path: PathBuf,
    },
    /// A stored file is not UTF-8.
    #[error("checkpoint {path} is not UTF-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
}

/// Storage for a practice's signed checkpoint notes.
pub trait CheckpointStore {
    /// Stores `note` (a signed checkpoint of tree size `size`) for `practice`. Never
    /// replaces a stored note: the same note again is [`Put::AlreadyPresent`], a different
    /// one is [`StoreError::Conflict`]. Returns once the note is durable.
    fn put(&self, practice: Uuid, note: &str, size: u64) -> Result<Put, StoreError>;

    /// The note with the largest size, if any.
    fn latest(&self, practice: Uuid) -> Result<Option<String>, StoreError>;

    /// Every stored note of `practice`, ascending by size.
    fn all(&self, practice: Uuid) -> Result<Vec<String>, StoreError>;
}

/// A [`CheckpointStore`] in a directory (see the module docs for the layout).
#[derive(Clone, Debug)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store rooted at `root` (created on first `put`).
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `practice`'s checkpoint of size `size`.
    #[must_use]
    pub fn path_for(&self, practice: Uuid, size: u64) -> PathBuf {
        self.practice_dir(practice).join(file_name(size))
    }

    /// The practices that have a checkpoint directory here (names that are not a practice
    /// id are ignored).
    pub fn practices(&self) -> Result<Vec<Uuid>, StoreError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.root, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&self.root, e))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| Uuid::parse_str(n).ok())
            {
                out.push(id);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn practice_dir(&self, practice: Uuid) -> PathBuf {
        self.root.join(practice.hyphenated().to_string())
    }

    /// Stored sizes of `practice`, ascending.
    pub fn sizes(&self, practice: Uuid) -> Result<Vec<u64>, StoreError> {
        let dir = self.practice_dir(practice);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir, e)),
        };
        let mut sizes = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(size) = parse_file_name(name) {
                sizes.push(size);
            }
        }
        sizes.sort_unstable();
        Ok(sizes)
    }

    /// Every stored note of `practice` with the size it is filed under, ascending by size.
    pub fn notes(&self, practice: Uuid) -> Result<Vec<(u64, String)>, StoreError> {
        self.sizes(practice)?
            .into_iter()
            .map(|size| Ok((size, Self::read(&self.path_for(practice, size))?)))
            .collect()
    }

    fn read(path: &Path) -> Result<String, StoreError> {
        let file = fs::File::open(path).map_err(|e| io_err(path, e))?;
        let mut bytes = Vec::new();
        file.take(MAX_NOTE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_err(path, e))?;
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(StoreError::TooLarge {
                path: path.to_owned(),
            });
        }
        String::from_utf8(bytes).map_err(|_| StoreError::NotText {
            path: path.to_owned(),
        })
    }

    fn compare_existing(path: &Path, note: &str) -> Result<Put, StoreError> {
        if Self::read(path)? == note {
            Ok(Put::AlreadyPresent)
        } else {
            Err(StoreError::Conflict {
                path: path.to_owned(),
            })
        }
    }
}

/// The name a checkpoint of tree size `size` is stored under (in a practice's directory, or
/// under a practice's prefix in an object store): `00000000000000000042.checkpoint`.
#[must_use]
pub fn file_name(size: u64) -> String {
    format!("{size:020}{FILE_SUFFIX}")
}

/// `00000000000000000042.checkpoint` → 42 (exactly 20 digits); `None` for any other name.
#[must_use]
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(FILE_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(path, e))
}

impl CheckpointStore for DirStore {
    /// Writes a temporary file in the practice directory, fsyncs it, then publishes it
    /// under its final name with `link(2)` — an atomic rename that fails instead of
    /// replacing an existing file, so two writers racing on one size can never clobber
    /// each other — removes the temporary name and fsyncs the directory.
    fn put(&self, practice: Uuid, note: &str, size: u64) -> Result<Put, StoreError> {
        let path = self.path_for(practice, size);
        if note.len() > MAX_NOTE_BYTES {
            return Err(StoreError::TooLarge { path });
        }
        let stated = note.split('\n').nth(1).unwrap_or_default();
        if stated != size.to_string() {
            return Err(StoreError::SizeMismatch {
                size,
                stated: stated.chars().take(40).collect(),
            });
        }
        match fs::symlink_metadata(&path) {
            Ok(_) => return Self::compare_existing(&path, note),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path, e)),
        }

        let dir = self.practice_dir(practice);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
            sync_dir(&self.root)?;
        }
        let tmp = dir.join(format!(".{size:020}.{:016x}.tmp", rand::random::<u64>()));
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.write_all(note.as_bytes())?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&tmp, e));
        }
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&dir)?;
                Ok(Put::Written)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Self::compare_existing(&path, note),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn latest(&self, practice: Uuid) -> Result<Option<String>, StoreError> {
        match self.sizes(practice)?.last() {
            None => Ok(None),
            Some(&size) => Self::read(&self.path_for(practice, size)).map(Some),
        }
    }

    fn all(&self, practice: Uuid) -> Result<Vec<String>, StoreError> {
        Ok(self.notes(practice)?.into_iter().map(|(_, n)| n).collect())
    }
}
