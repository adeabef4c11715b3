//! Signed audit checkpoints: the [`Checkpointer`] and the [`Place`]s it writes to.
//!
//! The background loop that sequences queued audit events and signs checkpoints on a cadence
//! (and every log that grew at a clean shutdown) is the [`crate::jobs::sequencer`] job;
//! `chartroom audit checkpoint` and `audit prune` sign through the same [`Checkpointer`] on
//! demand.
//!
//! # Never sign a shorter or rewritten log
//!
//! A database superuser can cut the newest events together with their sequence rows and tree
//! nodes; what is left is internally consistent. Only a checkpoint signed before the cut
//! shows that the log was longer — unless a new checkpoint of the shortened log were signed
//! after it. So before it signs, [`Checkpointer::checkpoint`] compares the log with the last
//! checkpoint signed for the practice — the largest one stored in any place (the checkpoint
//! directory and every mirror), read once per practice and then remembered — and signs only
//! a log that extends it ([`audit::verify::extends`]: not smaller, and consistent by an
//! RFC 6962 proof from the stored tree). Anything else is refused and reported on the
//! `chartroom::alert` target ([`report`]); sequencing goes on, and `chartroom audit verify`
//! keeps failing for the practice for as long as a stored checkpoint is larger than, or
//! inconsistent with, its log.
//!
//! # Places
//!
//! Checkpoints go to the checkpoint store first and then to each mirror ([`Place`]): a
//! directory, or an object store (`s3://…` — AWS or any S3-compatible service —, `gs://…`,
//! `az://…`, or `file://…` through `object_store`). The checkpoint store is
//! `<data dir>/checkpoints` on the local file system by default; several server replicas on one
//! database share one object store instead (`--checkpoint-store-url`), so whichever replica
//! holds the sequencer's lease signs into the same place and the proof routes of every replica
//! read the same notes. A replica that takes the sequencer over reads the last checkpoint from
//! the places again ([`Checkpointer::forget_signed`]) instead of trusting what it remembered
//! from its own earlier turn. Every place writes each checkpoint once and never
//! replaces it, and `audit verify` checks the log against the union of all places, so someone
//! who can rewrite the database — or the database and one of the places — cannot rewrite the
//! history the others hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit::checkpoint::{Checkpoint, MAX_NOTE_BYTES, Signer, origin};
use audit::store::{CheckpointStore as _, DirStore, Put};
use audit::verify::{NotAnExtension, extends};
use domain::PracticeId;
use store::Store;
use store::crypto::object_store::{
    self, ListResult, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload,
    path::Path as ObjectPath,
};
use uuid::Uuid;

/// The log target operators route to their paging (ids and sizes only), as break-glass does.
pub const ALERT_TARGET: &str = "chartroom::alert";

/// Default: a checkpoint after this many new events of a practice…
pub const DEFAULT_EVERY_EVENTS: u64 = 100;

/// …or after this many seconds with new events, whichever comes first. Events sequenced since
/// the last checkpoint are the ones a database superuser could cut unnoticed while the server
/// runs (a clean shutdown checkpoints them all).
pub const DEFAULT_EVERY_SECS: u64 = 5;

/// A place where checkpoints are written, each once and never replaced.
#[derive(Clone, Debug)]
pub enum Place {
    /// A directory: one file per checkpoint, published with `link(2)`, which never replaces
    /// an existing file ([`DirStore`]).
    Dir(DirStore),
    /// An object store: one object per checkpoint, created with `PutMode::Create`, which never
    /// overwrites.
    Object(ObjectPlace),
}

/// Checkpoints in an object store (S3, GCS, Azure, or a local directory through
/// `object_store`), laid out like a [`DirStore`]: `<prefix>/<practice>/<size>.checkpoint`.
#[derive(Clone, Debug)]
pub struct ObjectPlace {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    label: String,
}

/// Why a [`Place`] could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The directory failed (or holds a different note for the size).
    #[error(transparent)]
    Dir(#[from] audit::store::StoreError),
    /// The object store failed.
    #[error("checkpoint mirror {label}: {source}")]
    Object {
        /// The place.
        label: String,
        /// The cause.
        source: object_store::Error,
    },
    /// A different note is already stored for this size: the log forked or a note was forged.
    #[error(
        "checkpoint {name} in {label} already exists with different content: two different signed trees of one size (forked log or forged checkpoint)"
    )]
    Conflict {
        /// The place.
        label: String,
        /// The object's name.
        name: String,
    },
    /// A stored object is not a note (too large, or not UTF-8).
    #[error(
        "checkpoint {name} in {label} is not a signed note (over {MAX_NOTE_BYTES} bytes or not UTF-8)"
    )]
    NotANote {
        /// The place.
        label: String,
        /// The object's name.
        name: String,
    },
    /// The blocking file task failed.
    #[error("checkpoint directory task failed")]
    Task,
}

impl ObjectPlace {
    /// Checkpoints under `prefix` (may be empty) in `store`; `label` names the place for
    /// operators (the URL without credentials).
    #[must_use]
    pub fn new(store: Arc<dyn ObjectStore>, prefix: String, label: String) -> Self {
        Self {
            store,
            prefix,
            label,
        }
    }

    fn failed(&self, source: object_store::Error) -> PlaceError {
        PlaceError::Object {
            label: self.label.clone(),
            source,
        }
    }

    /// `<prefix>/<practice>[/<name>]`.
    fn path(&self, practice: Uuid, name: Option<&str>) -> ObjectPath {
        let base = ObjectPath::from(self.prefix.as_str()).join(practice.hyphenated().to_string());
        match name {
            Some(n) => base.join(n),
            None => base,
        }
    }

    async fn list(&self, dir: Option<&ObjectPath>) -> Result<ListResult, PlaceError> {
        self.store
            .list_with_delimiter(dir)
            .await
            .map_err(|e| self.failed(e))
    }

    async fn put(&self, practice: Uuid, note: &str, size: u64) -> Result<Put, PlaceError> {
        let name = audit::store::file_name(size);
        let put = self
            .store
            .put_opts(
                &self.path(practice, Some(&name)),
                PutPayload::from(note.to_owned()),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(_) => Ok(Put::Written),
            Err(object_store::Error::AlreadyExists { .. }) => {
                if self.read(practice, size).await? == note {
                    Ok(Put::AlreadyPresent)
                } else {
                    Err(PlaceError::Conflict {
                        label: self.label.clone(),
                        name,
                    })
                }
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    async fn read(&self, practice: Uuid, size: u64) -> Result<String, PlaceError> {
        let name = audit::store::file_name(size);
        let not_a_note = || PlaceError::NotANote {
            label: self.label.clone(),
            name: name.clone(),
        };
        let got = self
            .store
            .get(&self.path(practice, Some(&name)))
            .await
            .map_err(|e| self.failed(e))?;
        if got.meta.size > MAX_NOTE_BYTES as u64 {
            return Err(not_a_note());
        }
        let bytes = got.bytes().await.map_err(|e| self.failed(e))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| not_a_note())
    }

    /// The stored sizes of `practice`'s checkpoints, ascending.
    async fn sizes(&self, practice: Uuid) -> Result<Vec<u64>, PlaceError> {
        let listed = self.list(Some(&self.path(practice, None))).await?;
        let mut sizes: Vec<u64> = listed
            .objects
            .iter()
            .filter_map(|o| {
                o.location
                    .filename()
                    .and_then(audit::store::parse_file_name)
            })
            .collect();
        sizes.sort_unstable();
        Ok(sizes)
    }

    async fn practices(&self) -> Result<Vec<Uuid>, PlaceError> {
        let root = ObjectPath::from(self.prefix.as_str());
        let listed = self
            .list((!self.prefix.is_empty()).then_some(&root))
            .await?;
        let mut out: Vec<Uuid> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|n| Uuid::parse_str(n).ok()))
            .collect();
        out.sort_unstable();
        Ok(out)
    }
}

impl From<DirStore> for Place {
    fn from(d: DirStore) -> Self {
        Self::Dir(d)
    }
}

impl Place {
    /// How operators name the place: the directory, or the object store's URL.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Dir(d) => d.root().display().to_string(),
            Self::Object(o) => o.label.clone(),
        }
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, audit::store::StoreError> + Send + 'static,
    ) -> Result<T, PlaceError> {
        Ok(tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| PlaceError::Task)??)
    }

    /// Stores `note`, `practice`'s signed checkpoint of tree size `size`. Never replaces: the
    /// same note again is [`Put::AlreadyPresent`], another one [`PlaceError::Conflict`] (or
    /// the directory's [`audit::store::StoreError::Conflict`]). Returns once it is durable.
    pub async fn put(&self, practice: Uuid, note: &str, size: u64) -> Result<Put, PlaceError> {
        match self {
            Self::Dir(d) => {
                let (d, note) = (d.clone(), note.to_owned());
                Self::blocking(move || d.put(practice, &note, size)).await
            }
            Self::Object(o) => o.put(practice, note, size).await,
        }
    }

    /// Every stored note of `practice` with the size it is filed under, ascending.
    pub async fn notes(&self, practice: Uuid) -> Result<Vec<(u64, String)>, PlaceError> {
        match self {
            Self::Dir(d) => {
                let d = d.clone();
                Self::blocking(move || d.notes(practice)).await
            }
            Self::Object(o) => {
                let mut out = Vec::new();
                for size in o.sizes(practice).await? {
                    out.push((size, o.read(practice, size).await?));
                }
                Ok(out)
            }
        }
    }

    /// The note of exactly `size`, if one is stored.
    pub async fn note(&self, practice: Uuid, size: u64) -> Result<Option<String>, PlaceError> {
        match self {
            Self::Dir(d) => {
                let path = d.path_for(practice, size);
                Self::blocking(move || match std::fs::read_to_string(&path) {
                    Ok(note) => Ok(Some(note)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(audit::store::StoreError::Io { path, source }),
                })
                .await
            }
            Self::Object(o) => match o.read(practice, size).await {
                Ok(note) => Ok(Some(note)),
                Err(PlaceError::Object {
                    source: object_store::Error::NotFound { .. },
                    ..
                }) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// The note with the largest size, if any.
    pub async fn latest(&self, practice: Uuid) -> Result<Option<String>, PlaceError> {
        match self {
            Self::Dir(d) => {
                let d = d.clone();
                Self::blocking(move || d.latest(practice)).await
            }
            Self::Object(o) => match o.sizes(practice).await?.last() {
                None => Ok(None),
                Some(&size) => o.read(practice, size).await.map(Some),
            },
        }
    }

    /// The practices that have checkpoints here.
    pub async fn practices(&self) -> Result<Vec<Uuid>, PlaceError> {
        match self {
            Self::Dir(d) => {
                let d = d.clone();
                Self::blocking(move || d.practices()).await
            }
            Self::Object(o) => o.practices().await,
        }
    }
}

/// Why a checkpoint was not signed or not stored everywhere.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The log does not extend the last signed checkpoint: it was shortened or rewritten.
    #[error("refused to sign a checkpoint: {reason}")]
    Refused {
        /// Why.
        reason: NotAnExtension,
    },
    /// A stored checkpoint does not open with the signing key or names another log: the
    /// checkpoint store was tampered with (or the key or origin changed).
    #[error("the stored checkpoint in {place} cannot be trusted: {reason}")]
    Untrusted {
        /// The place.
        place: String,
        /// Why.
        reason: String,
    },
    /// Reading the log's tree head failed.
    #[error("reading the audit log failed: {0}")]
    Store(#[from] store::StoreError),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The checkpoint directory could not be read or written.
    #[error("the checkpoint directory failed: {0}")]
    Place(#[from] PlaceError),
    /// The checkpoint is stored in the checkpoint directory, but a mirror failed.
    #[error("the checkpoint of size {size} is stored, but a mirror failed: {source}")]
    Mirror {
        /// The size signed.
        size: u64,
        /// The mirror's failure.
        source: PlaceError,
    },
}

impl CheckpointError {
    /// Whether this means the log or the stored checkpoints were changed around Chartroom
    /// (an alert), rather than a failure to reach a database or a disk.
    #[must_use]
    pub fn is_alert(&self) -> bool {
        let conflict = |e: &PlaceError| {
            matches!(
                e,
                PlaceError::Conflict { .. }
                    | PlaceError::NotANote { .. }
                    | PlaceError::Dir(
                        audit::store::StoreError::Conflict { .. }
                            | audit::store::StoreError::NotText { .. }
                            | audit::store::StoreError::TooLarge { .. }
                    )
            )
        };
        match self {
            Self::Refused { .. } | Self::Untrusted { .. } => true,
            Self::Store(e) => matches!(e, store::StoreError::Corrupt(_)),
            Self::Place(e) | Self::Mirror { source: e, .. } => conflict(e),
            Self::Sign(_) => false,
        }
    }
}

/// Logs a checkpoint failure of `practice`: on the [`ALERT_TARGET`] when it means tampering
/// ([`CheckpointError::is_alert`]), else as an error. Ids, sizes and paths only.
pub fn report(practice: PracticeId, e: &CheckpointError) {
    if e.is_alert() {
        tracing::error!(
            target: ALERT_TARGET,
            %practice,
            error = %e,
            "audit checkpoints: the audit log or its checkpoints were changed around Chartroom"
        );
    } else {
        tracing::error!(%practice, error = %e, "writing an audit checkpoint failed");
    }
}

/// Signs checkpoints and stores them, and how often.
#[derive(Clone)]
pub struct Checkpointer {
    /// The signing key (never in the database).
    pub signer: Arc<Signer>,
    /// The checkpoint store (written first; what the server's routes read): a directory, or
    /// an object store shared by several replicas.
    pub store: Place,
    /// Second, write-once places (another volume, an object store).
    pub mirrors: Vec<Place>,
    /// Origin prefix; each practice's origin is `<prefix>/<practice id>`.
    pub origin_prefix: String,
    /// Write a checkpoint after this many new events…
    pub every_events: u64,
    /// …or after this long, whichever comes first (when there is anything new).
    pub every: Duration,
    /// The last checkpoint signed per practice (read from the places once, then kept).
    signed: Arc<Mutex<HashMap<PracticeId, Checkpoint>>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("origin_prefix", &self.origin_prefix)
            .field("mirrors", &self.mirrors.len())
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Checkpoints signed by `signer` into `store`, every [`DEFAULT_EVERY_EVENTS`] events or
    /// [`DEFAULT_EVERY_SECS`] seconds, with no mirror.
    #[must_use]
    pub fn new(
        signer: Arc<Signer>,
        store: impl Into<Place>,
        origin_prefix: impl Into<String>,
    ) -> Self {
        Self {
            signer,
            store: store.into(),
            mirrors: Vec::new(),
            origin_prefix: origin_prefix.into(),
            every_events: DEFAULT_EVERY_EVENTS,
            every: Duration::from_secs(DEFAULT_EVERY_SECS),
            signed: Arc::default(),
        }
    }

    /// Also writes every checkpoint to `mirrors`.
    #[must_use]
    pub fn with_mirrors(mut self, mirrors: Vec<Place>) -> Self {
        self.mirrors = mirrors;
        self
    }

    /// A checkpoint after `every_events` new events or `every`, whichever comes first.
    #[must_use]
    pub fn with_cadence(mut self, every_events: u64, every: Duration) -> Self {
        self.every_events = every_events.max(1);
        self.every = every;
        self
    }

    /// Every place, the checkpoint store first.
    #[must_use]
    pub fn places(&self) -> Vec<Place> {
        std::iter::once(self.store.clone())
            .chain(self.mirrors.iter().cloned())
            .collect()
    }

    fn origin(&self, practice: PracticeId) -> String {
        origin(&self.origin_prefix, practice.as_uuid())
    }

    fn remembered(&self, practice: PracticeId) -> Option<Checkpoint> {
        self.signed
            .lock()
            .ok()
            .and_then(|m| m.get(&practice).cloned())
    }

    /// Forgets the checkpoints remembered as last signed, so the next
    /// [`Checkpointer::checkpoint`] of each practice reads them from the places again. The
    /// sequencer calls it whenever it takes the job (over): another replica may have signed
    /// larger checkpoints in the shared store meanwhile, and a log must never be signed
    /// unless it extends those.
    pub fn forget_signed(&self) {
        if let Ok(mut m) = self.signed.lock() {
            m.clear();
        }
    }

    fn remember(&self, practice: PracticeId, cp: Checkpoint) {
        if let Ok(mut m) = self.signed.lock() {
            m.insert(practice, cp);
        }
    }

    /// The last checkpoint signed for `practice`: remembered, or the largest stored in any
    /// place (each opened with the signing key's verifier and checked to name this
    /// practice's log; a mirror that cannot be read is skipped with a warning).
    async fn last_signed(
        &self,
        practice: PracticeId,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        if let Some(cp) = self.remembered(practice) {
            return Ok(Some(cp));
        }
        let verifier = self.signer.verifier();
        let origin = self.origin(practice);
        let mut best: Option<Checkpoint> = None;
        for (i, place) in self.places().into_iter().enumerate() {
            let note = match place.latest(practice.as_uuid()).await {
                Ok(Some(note)) => note,
                Ok(None) => continue,
                Err(e) if i > 0 => {
                    // A mirror out of reach must not stop checkpoints; it still holds what it
                    // has for `audit verify`.
                    tracing::warn!(%practice, error = %e, "reading the checkpoint mirror failed; going by the other places");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let untrusted = |reason: String| CheckpointError::Untrusted {
                place: place.label(),
                reason,
            };
            let cp = verifier.open(&note).map_err(|e| untrusted(e.to_string()))?;
            if cp.origin != origin {
                return Err(untrusted(format!("it names another log ({:?})", cp.origin)));
            }
            match &best {
                Some(b) if b.size > cp.size => {}
                Some(b) if b.size == cp.size => {
                    extends(b, &cp, &[]).map_err(|reason| CheckpointError::Refused { reason })?;
                }
                _ => best = Some(cp),
            }
        }
        if let Some(cp) = &best {
            self.remember(practice, cp.clone());
        }
        Ok(best)
    }

    /// Signs and stores a checkpoint of `practice` at its current sequenced size, in the
    /// checkpoint directory and then every mirror — unless that size is signed already.
    /// Returns the size checkpointed (`None`: nothing sequenced yet, nothing ever signed).
    ///
    /// Refuses ([`CheckpointError::Refused`]) when the log does not extend the last
    /// checkpoint signed ([`audit::verify::extends`]): shorter, or another history. Runs as
    /// the runtime role without an actor, like the sequencer; reads hashes only.
    pub async fn checkpoint(
        &self,
        db: &Store,
        practice: PracticeId,
    ) -> Result<Option<u64>, CheckpointError> {
        let last = self.last_signed(practice).await?;
        let since = last.as_ref().map_or(0, |c| c.size);
        let (head, proof) = db.tree_head_since(practice, since).await?;
        if head.size == 0 && last.is_none() {
            return Ok(None);
        }
        let cp = Checkpoint::new(self.origin(practice), head.size, head.root)
            .with_chain_head(&head.chain_head);
        if let Some(last) = &last {
            let refused = |reason| CheckpointError::Refused { reason };
            let proof = proof.map_err(|e| {
                refused(NotAnExtension::Forked {
                    signed: last.size,
                    size: head.size,
                    reason: format!("stored tree nodes: {e}"),
                })
            })?;
            extends(last, &cp, &proof).map_err(refused)?;
            if last.size == head.size {
                return Ok(Some(head.size));
            }
        }
        let note = self
            .signer
            .sign(&cp)
            .map_err(|e| CheckpointError::Sign(e.to_string()))?;
        let id = practice.as_uuid();
        self.store.put(id, &note, head.size).await?;
        self.remember(practice, cp);
        tracing::debug!(%practice, size = head.size, "audit checkpoint signed");
        for mirror in &self.mirrors {
            mirror
                .put(id, &note, head.size)
                .await
                .map_err(|source| CheckpointError::Mirror {
                    size: head.size,
                    source,
                })?;
        }
        Ok(Some(head.size))
    }
}
