//! The keyring: wrapped data keys at rest, unwrapped data keys cached in memory.
//!
//! # Records
//!
//! Each version of each practice's data key is persisted as one [`WrappedDataKey`] (practice,
//! DEK version, KEK id + version, wrapped bytes) through a [`WrappedKeyStore`] — the store
//! crate implements it on a PostgreSQL table; [`MemoryKeyStore`] is the in-memory version for
//! tests. A suggested table:
//!
//! ```sql
//! create table practice_data_key (
//!     practice_id uuid not null,
//!     dek_version int4 not null check (dek_version > 0),
//!     kek_id text not null,
//!     kek_version int8 not null,
//!     wrapped bytea not null,
//!     primary key (practice_id, dek_version)
//! );
//! -- crypto-shredding tombstones
//! create table practice_key_destroyed (practice_id uuid primary key, destroyed_at timestamptz not null);
//! ```
//!
//! # Life cycle
//!
//! | operation | what happens |
//! |---|---|
//! | [`Keyring::ensure_practice_keys`] | version 1 is generated, wrapped under the current KEK, stored |
//! | [`Keyring::rotate_data_key`] (`keys rotate-data-key`) | a new version becomes active; older versions still decrypt |
//! | [`Keyring::retire_data_key`] | an older version is deleted (after its data was re-encrypted) |
//! | [`Keyring::rotate_kek`] + [`Keyring::rewrap_all`] (`keys rotate-kek`) | every wrapped key moves to the new KEK version |
//! | [`Keyring::retire_kek_versions_below`] | old KEK versions stop unwrapping (refused while still in use) |
//! | [`Keyring::destroy_practice_keys`] | crypto-shredding: all versions deleted, a tombstone kept; every later read fails with [`CryptoError::KeyDestroyed`] |
//!
//! # Cache
//!
//! Unwrapped keys are cached per practice for a bounded time ([`DEFAULT_CACHE_TTL`], read from
//! the injected [`Clock`]), so the KEK provider is called once per practice per TTL, not once
//! per request. Entries are zeroized when evicted and the last request holding them ends.
//!
//! # Several replicas: the bound
//!
//! Every server replica on one database has its own cache. A cached practice's
//! [`KeyGeneration`] (tombstone, newest version, number of versions: it changes with every
//! rotation, retirement and destruction, and never returns to an earlier value) is read
//! again from the key store when the entry was last checked [`DEFAULT_RECHECK`] or more ago
//! (one small query, no KEK call); if it changed, the keys are reloaded. So a rotation, a
//! retirement or a crypto-shredding made by one replica (or by `chartroom keys …`) is seen by
//! every other replica **within [`DEFAULT_RECHECK`] (5 seconds) of its clock**: after that a
//! shredded practice's fields and blobs are refused with [`CryptoError::KeyDestroyed`]
//! everywhere. A ciphertext naming a version this replica has not cached yet reloads at once.
//! [`Keyring::with_recheck`] sets the bound.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use domain::{Clock, PracticeId};
use serde::{Deserialize, Serialize};

use crate::error::{CryptoError, Result};
use crate::field::{FieldContext, decrypt_field, encrypt_field, field_dek_version};
use crate::keys::{DataKey, DekVersion, PracticeKeys, generate_material};
use crate::practice_secret::{PracticeSecretStore, apply_mask};
use crate::provider::{KekRef, KeyProvider, WrapContext};

/// How long unwrapped keys stay cached by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::minutes(5);
/// How often a cached practice's [`KeyGeneration`] is checked against the key store by
/// default: the bound within which a rotation or a shredding made by another replica is seen.
pub const DEFAULT_RECHECK: Duration = Duration::seconds(5);
/// Page size of [`Keyring::rewrap_all`] and [`Keyring::retire_kek_versions_below`] scans.
const SCAN_PAGE: usize = 256;

/// One version of one practice's data key, wrapped by a KEK: the row the store persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedDataKey {
    /// The practice.
    pub practice: PracticeId,
    /// The data key version.
    pub version: DekVersion,
    /// The KEK (id and version) that wrapped it.
    pub kek: KekRef,
    /// The provider's wrapped bytes (opaque).
    pub wrapped: Vec<u8>,
    /// Whether the wrapped material is masked with the practice secret
    /// ([`crate::practice_secret`]): then unwrapping also needs that secret. Keys written by a
    /// keyring with a secret store always are; older ones are not.
    #[serde(default)]
    pub masked: bool,
}

impl WrappedDataKey {
    fn context(&self) -> WrapContext {
        WrapContext {
            practice: self.practice,
            dek_version: self.version,
        }
    }
}

/// What the store holds for one practice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRecords {
    /// The practice's wrapped keys (empty if none were created yet).
    Live(Vec<WrappedDataKey>),
    /// The practice's keys were destroyed (a tombstone).
    Destroyed,
}

/// What changes whenever a practice's set of data keys changes: its tombstone, its newest
/// version and how many versions it has. Rotation raises the newest version, retirement
/// lowers the count under the same newest version, destruction sets the tombstone for good,
/// so a generation never comes back and comparing two tells whether anything changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyGeneration {
    /// The keys were destroyed.
    pub destroyed: bool,
    /// The newest version (0: none yet).
    pub newest: u32,
    /// How many versions are live.
    pub versions: u32,
}

impl KeyGeneration {
    /// The generation of what [`WrappedKeyStore::load`] returned.
    #[must_use]
    pub fn of(records: &KeyRecords) -> Self {
        match records {
            KeyRecords::Destroyed => Self {
                destroyed: true,
                ..Self::default()
            },
            KeyRecords::Live(r) => Self {
                destroyed: false,
                newest: r.iter().map(|k| k.version.get()).max().unwrap_or(0),
                versions: u32::try_from(r.len()).unwrap_or(u32::MAX),
            },
        }
    }
}

/// Errors of a [`WrappedKeyStore`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// A record with this practice and version already exists (lost a race; retry).
    #[error("data key version {version} of practice {practice} already exists")]
    Conflict {
        /// The practice.
        practice: PracticeId,
        /// The version.
        version: DekVersion,
    },
    /// The practice's keys were destroyed; nothing may be added.
    #[error("the keys of practice {practice} were destroyed")]
    Destroyed {
        /// The practice.
        practice: PracticeId,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// Persistence of wrapped data keys, implemented by the store crate.
///
/// Contract: `insert` fails with [`KeyStoreError::Conflict`] on a duplicate (practice,
/// version) and with [`KeyStoreError::Destroyed`] after `destroy`; `replace_wrapping` is a
/// compare-and-swap on the whole record; `destroy` deletes every version and records a
/// tombstone in one transaction.
#[async_trait]
pub trait WrappedKeyStore: Send + Sync + fmt::Debug {
    /// Every live version of a practice's key, or the tombstone.
    async fn load(&self, practice: PracticeId) -> Result<KeyRecords, KeyStoreError>;
    /// Adds a record.
    async fn insert(&self, key: &WrappedDataKey) -> Result<(), KeyStoreError>;
    /// Replaces `previous` by `next` (same practice and version) if the stored record still
    /// equals `previous`; `Ok(false)` if it changed meanwhile.
    async fn replace_wrapping(
        &self,
        previous: &WrappedDataKey,
        next: &WrappedDataKey,
    ) -> Result<bool, KeyStoreError>;
    /// Up to `limit` records ordered by (practice, version), strictly after `after`.
    async fn list_after(
        &self,
        after: Option<(PracticeId, DekVersion)>,
        limit: usize,
    ) -> Result<Vec<WrappedDataKey>, KeyStoreError>;
    /// Deletes one version.
    async fn delete_version(
        &self,
        practice: PracticeId,
        version: DekVersion,
    ) -> Result<(), KeyStoreError>;
    /// Deletes every version and records the tombstone.
    async fn destroy(&self, practice: PracticeId) -> Result<(), KeyStoreError>;
    /// The practice's [`KeyGeneration`], read cheaply (no wrapped bytes): what the
    /// [`Keyring`] compares with its cached keys every [`DEFAULT_RECHECK`]. The default reads
    /// it through [`WrappedKeyStore::load`].
    async fn generation(&self, practice: PracticeId) -> Result<KeyGeneration, KeyStoreError> {
        Ok(KeyGeneration::of(&self.load(practice).await?))
    }
}

/// An in-memory [`WrappedKeyStore`] for tests and benchmarks. Not durable.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    keys: BTreeMap<(PracticeId, DekVersion), WrappedDataKey>,
    destroyed: HashSet<PracticeId>,
}

impl MemoryKeyStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl WrappedKeyStore for MemoryKeyStore {
    async fn load(&self, practice: PracticeId) -> Result<KeyRecords, KeyStoreError> {
        let inner = self.lock();
        if inner.destroyed.contains(&practice) {
            return Ok(KeyRecords::Destroyed);
        }
        Ok(KeyRecords::Live(
            inner
                .keys
                .range((practice, DekVersion::FIRST)..)
                .take_while(|((p, _), _)| *p == practice)
                .map(|(_, k)| k.clone())
                .collect(),
        ))
    }

    async fn insert(&self, key: &WrappedDataKey) -> Result<(), KeyStoreError> {
        let mut inner = self.lock();
        if inner.destroyed.contains(&key.practice) {
            return Err(KeyStoreError::Destroyed {
                practice: key.practice,
            });
        }
        let slot = (key.practice, key.version);
        if inner.keys.contains_key(&slot) {
            return Err(KeyStoreError::Conflict {
                practice: key.practice,
                version: key.version,
            });
        }
        inner.keys.insert(slot, key.clone());
        Ok(())
    }

    async fn replace_wrapping(
        &self,
        previous: &WrappedDataKey,
        next: &WrappedDataKey,
    ) -> Result<bool, KeyStoreError> {
        let mut inner = self.lock();
        match inner.keys.get_mut(&(previous.practice, previous.version)) {
            Some(current)
                if current == previous
                    && next.practice == previous.practice
                    && next.version == previous.version =>
            {
                *current = next.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_after(
        &self,
        after: Option<(PracticeId, DekVersion)>,
        limit: usize,
    ) -> Result<Vec<WrappedDataKey>, KeyStoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let inner = self.lock();
        let range = match after {
            Some(a) => inner.keys.range((Excluded(a), Unbounded)),
            None => inner.keys.range(..),
        };
        Ok(range.take(limit).map(|(_, k)| k.clone()).collect())
    }

    async fn delete_version(
        &self,
        practice: PracticeId,
        version: DekVersion,
    ) -> Result<(), KeyStoreError> {
        self.lock().keys.remove(&(practice, version));
        Ok(())
    }

    async fn destroy(&self, practice: PracticeId) -> Result<(), KeyStoreError> {
        let mut inner = self.lock();
        inner.keys.retain(|(p, _), _| *p != practice);
        inner.destroyed.insert(practice);
        Ok(())
    }
}

/// Which wrapped keys [`Keyring::rewrap_all`] touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewrapScope {
    /// Only keys not wrapped by the current KEK version (the normal `rotate-kek` follow-up).
    Stale,
    /// Every key (for providers that version internally, like AWS KMS, or to move to another
    /// provider configuration).
    All,
}

/// What [`Keyring::rewrap_all`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// Wrapped keys looked at.
    pub examined: u64,
    /// Wrapped keys rewrapped.
    pub rewrapped: u64,
    /// Wrapped keys that changed concurrently and were left alone (run again to finish).
    pub raced: u64,
}

#[derive(Clone)]
enum CacheEntry {
    Live {
        keys: Arc<PracticeKeys>,
        loaded_at: DateTime<Utc>,
        /// The generation the keys were loaded at.
        generation: KeyGeneration,
        /// When the generation was last found unchanged in the key store.
        checked_at: DateTime<Utc>,
    },
    /// Destruction is final: nothing to check again.
    Destroyed { loaded_at: DateTime<Utc> },
}

impl CacheEntry {
    const fn loaded_at(&self) -> DateTime<Utc> {
        match self {
            Self::Live { loaded_at, .. } | Self::Destroyed { loaded_at } => *loaded_at,
        }
    }
}

/// Per-practice data keys: creation, rotation, retirement, destruction, and a cache of
/// unwrapped keys. Share one `Keyring` (in an `Arc`) across the process.
pub struct Keyring {
    provider: Arc<dyn KeyProvider>,
    store: Arc<dyn WrappedKeyStore>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    recheck: Duration,
    cache: RwLock<HashMap<PracticeId, CacheEntry>>,
    secrets: Option<Arc<dyn PracticeSecretStore>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("provider", &self.provider)
            .field("store", &self.store)
            .field("ttl", &self.ttl)
            .field("recheck", &self.recheck)
            .field("cached_practices", &self.cache_read().len())
            .finish_non_exhaustive()
    }
}

/// [`CryptoError::InstallationKey`] for the installation data key: it is rotated with the KEK
/// only and never destroyed ([`crate::installation`]).
fn refuse_installation(practice: PracticeId, operation: &'static str) -> Result<()> {
    if practice == crate::installation::INSTALLATION {
        return Err(CryptoError::InstallationKey { operation });
    }
    Ok(())
}

impl Keyring {
    /// A keyring over a KEK provider and a wrapped-key store; cache lifetime
    /// [`DEFAULT_CACHE_TTL`] measured on `clock`.
    #[must_use]
    pub fn new(
        provider: Arc<dyn KeyProvider>,
        store: Arc<dyn WrappedKeyStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            provider,
            store,
            clock,
            ttl: DEFAULT_CACHE_TTL,
            recheck: DEFAULT_RECHECK,
            cache: RwLock::new(HashMap::new()),
            secrets: None,
        }
    }

    /// Masks every data key created from now on with its practice's secret from `secrets`
    /// (created with the practice's first key), so that shredding — which also deletes the
    /// secret — reaches copies of the wrapped keys in earlier backups. See
    /// [`crate::practice_secret`]. The server and the CLI always set it.
    #[must_use]
    pub fn with_practice_secrets(mut self, secrets: Arc<dyn PracticeSecretStore>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Sets how long unwrapped keys stay cached (zero: every call reloads).
    #[must_use]
    pub const fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets how often a cached practice's generation is checked against the key store
    /// ([`DEFAULT_RECHECK`]): the bound within which this keyring sees a rotation or a
    /// shredding made elsewhere (zero: at every call).
    #[must_use]
    pub const fn with_recheck(mut self, recheck: Duration) -> Self {
        self.recheck = recheck;
        self
    }

    /// The bound within which this keyring sees a rotation or a shredding made by another
    /// replica ([`Keyring::with_recheck`]).
    #[must_use]
    pub const fn recheck(&self) -> Duration {
        self.recheck
    }

    /// The KEK provider.
    #[must_use]
    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.provider
    }

    fn cache_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PracticeId, CacheEntry>> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn cache_put(&self, practice: PracticeId, entry: CacheEntry) {
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(practice, entry);
    }

    /// Drops a practice's cached keys (they are zeroized once no request holds them).
    pub fn evict(&self, practice: PracticeId) {
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&practice);
    }

    /// Drops every cached key.
    pub fn clear_cache(&self) {
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn cached(&self, practice: PracticeId) -> Option<CacheEntry> {
        let now = self.clock.now();
        self.cache_read()
            .get(&practice)
            .filter(|e| now.signed_duration_since(e.loaded_at()) < self.ttl)
            .cloned()
    }

    /// The practice's live keys, from the cache or unwrapped through the KEK provider.
    ///
    /// Fails with [`CryptoError::NoDataKey`] if the practice has none yet and
    /// [`CryptoError::KeyDestroyed`] after crypto-shredding.
    pub async fn keys(&self, practice: PracticeId) -> Result<Arc<PracticeKeys>> {
        match self.cached(practice) {
            Some(CacheEntry::Live {
                keys,
                loaded_at,
                generation,
                checked_at,
            }) => {
                let now = self.clock.now();
                if now.signed_duration_since(checked_at) < self.recheck {
                    return Ok(keys);
                }
                // Another replica may have rotated, retired or destroyed the keys.
                if self.store.generation(practice).await? != generation {
                    return self.load(practice).await;
                }
                self.cache_put(
                    practice,
                    CacheEntry::Live {
                        keys: keys.clone(),
                        loaded_at,
                        generation,
                        checked_at: now,
                    },
                );
                Ok(keys)
            }
            Some(CacheEntry::Destroyed { .. }) => Err(CryptoError::KeyDestroyed { practice }),
            None => self.load(practice).await,
        }
    }

    /// Like [`Keyring::keys`], but reloads once if the cached set lacks `version` (another
    /// replica may have rotated the key since this one cached it).
    pub async fn keys_including(
        &self,
        practice: PracticeId,
        version: DekVersion,
    ) -> Result<Arc<PracticeKeys>> {
        let keys = self.keys(practice).await?;
        if keys.contains(version) {
            return Ok(keys);
        }
        self.load(practice).await
    }

    async fn load(&self, practice: PracticeId) -> Result<Arc<PracticeKeys>> {
        let loaded = self.store.load(practice).await?;
        let generation = KeyGeneration::of(&loaded);
        let records = match loaded {
            KeyRecords::Destroyed => {
                self.cache_put(
                    practice,
                    CacheEntry::Destroyed {
                        loaded_at: self.clock.now(),
                    },
                );
                return Err(CryptoError::KeyDestroyed { practice });
            }
            KeyRecords::Live(records) => records,
        };
        let mut keys = BTreeMap::new();
        let mut secret = None;
        for r in &records {
            if r.practice != practice {
                return Err(CryptoError::Internal(
                    "key store returned another practice's key",
                ));
            }
            let mut material = self
                .provider
                .unwrap(&r.context(), &r.kek, &r.wrapped)
                .await?;
            if r.masked {
                if secret.is_none() {
                    let store = self.secrets.as_ref().ok_or(CryptoError::Internal(
                        "a data key is masked with a practice secret but no secret store is configured",
                    ))?;
                    // No secret for masked keys: the practice was shredded (and this
                    // database, or the restored backup it came from, predates that).
                    secret = Some(
                        store
                            .get(practice)
                            .await?
                            .ok_or(CryptoError::KeyDestroyed { practice })?,
                    );
                }
                if let Some(s) = &secret {
                    material = apply_mask(s, practice, r.version, &material)?;
                }
            }
            keys.insert(r.version, DataKey::derive(practice, r.version, &material)?);
        }
        let keys = Arc::new(PracticeKeys::from_keys(practice, keys)?);
        let now = self.clock.now();
        self.cache_put(
            practice,
            CacheEntry::Live {
                keys: keys.clone(),
                loaded_at: now,
                generation,
                checked_at: now,
            },
        );
        Ok(keys)
    }

    async fn create_version(&self, practice: PracticeId, version: DekVersion) -> Result<()> {
        let material = generate_material()?;
        let ctx = WrapContext {
            practice,
            dek_version: version,
        };
        let (stored, masked) = match &self.secrets {
            Some(store) => {
                let secret = store.get_or_create(practice).await?;
                (apply_mask(&secret, practice, version, &material)?, true)
            }
            None => (material, false),
        };
        let wrapped = self.provider.wrap(&ctx, &stored).await?;
        let record = WrappedDataKey {
            practice,
            version,
            kek: wrapped.kek,
            wrapped: wrapped.bytes,
            masked,
        };
        self.store.insert(&record).await.map_err(|e| match e {
            KeyStoreError::Destroyed { practice } => CryptoError::KeyDestroyed { practice },
            e => e.into(),
        })?;
        self.evict(practice);
        tracing::info!(%practice, dek_version = %version, kek = %record.kek, "created a data key version");
        Ok(())
    }

    async fn live_records(&self, practice: PracticeId) -> Result<Vec<WrappedDataKey>> {
        match self.store.load(practice).await? {
            KeyRecords::Destroyed => Err(CryptoError::KeyDestroyed { practice }),
            KeyRecords::Live(r) => Ok(r),
        }
    }

    /// Creates the practice's first data key if it has none; returns the active version.
    /// Idempotent; safe to race (the loser reads the winner's key).
    pub async fn ensure_practice_keys(&self, practice: PracticeId) -> Result<DekVersion> {
        let records = self.live_records(practice).await?;
        if let Some(max) = records.iter().map(|r| r.version).max() {
            return Ok(max);
        }
        match self.create_version(practice, DekVersion::FIRST).await {
            Ok(()) | Err(CryptoError::KeyStore(KeyStoreError::Conflict { .. })) => {
                Ok(DekVersion::FIRST)
            }
            Err(e) => Err(e),
        }
    }

    /// `keys rotate-data-key`: adds a new data key version and makes it active. Older
    /// versions stay readable until [`Keyring::retire_data_key`]. Re-encrypting old values
    /// (and rewriting blind index tags) is the caller's job; [`field_dek_version`] finds them.
    /// Refused for the installation data key ([`CryptoError::InstallationKey`]).
    pub async fn rotate_data_key(&self, practice: PracticeId) -> Result<DekVersion> {
        refuse_installation(practice, "rotated")?;
        let records = self.live_records(practice).await?;
        let next = records
            .iter()
            .map(|r| r.version)
            .max()
            .ok_or(CryptoError::NoDataKey { practice })?
            .next()?;
        self.create_version(practice, next).await?;
        Ok(next)
    }

    /// Deletes an older data key version. Data still sealed with it becomes unreadable, so
    /// re-encrypt first. The active version cannot be retired, nor any version of the
    /// installation data key ([`CryptoError::InstallationKey`]).
    pub async fn retire_data_key(&self, practice: PracticeId, version: DekVersion) -> Result<()> {
        refuse_installation(practice, "retired")?;
        let records = self.live_records(practice).await?;
        let active = records
            .iter()
            .map(|r| r.version)
            .max()
            .ok_or(CryptoError::NoDataKey { practice })?;
        if version == active {
            return Err(CryptoError::ActiveDataKey {
                practice,
                version: active,
            });
        }
        if !records.iter().any(|r| r.version == version) {
            return Err(CryptoError::UnknownDataKey { practice, version });
        }
        self.store.delete_version(practice, version).await?;
        self.evict(practice);
        tracing::info!(%practice, dek_version = %version, "retired a data key version");
        Ok(())
    }

    /// Crypto-shredding: deletes every version of the practice's data key and leaves a
    /// tombstone. Afterwards every read of the practice's fields and blobs fails with
    /// [`CryptoError::KeyDestroyed`] on this replica at once, on others within
    /// [`DEFAULT_RECHECK`] (their [`Keyring::with_recheck`]).
    /// Irreversible: with a practice secret store ([`Keyring::with_practice_secrets`]) the
    /// practice secret is deleted too, so wrapped keys restored from an earlier backup no
    /// longer unwrap either. Refused for the installation data key
    /// ([`CryptoError::InstallationKey`]).
    pub async fn destroy_practice_keys(&self, practice: PracticeId) -> Result<()> {
        refuse_installation(practice, "destroyed")?;
        self.store.destroy(practice).await?;
        if let Some(secrets) = &self.secrets {
            secrets.destroy(practice).await?;
        }
        self.cache_put(
            practice,
            CacheEntry::Destroyed {
                loaded_at: self.clock.now(),
            },
        );
        tracing::warn!(%practice, "destroyed all data keys of a practice (crypto-shredding)");
        Ok(())
    }

    /// `keys rotate-kek`, step 1: asks the provider for a new KEK version. Then run
    /// [`Keyring::rewrap_all`].
    pub async fn rotate_kek(&self) -> Result<KekRef> {
        self.provider.rotate_kek().await
    }

    /// `keys rotate-kek`, step 2: rewraps every wrapped data key in `scope` under the current
    /// KEK version. Each record is replaced on its own (compare-and-swap); old and new
    /// wrappings both unwrap until the old KEK version is retired, so an interrupted run is
    /// safe and a rerun continues. The data keys themselves do not change; nothing else is
    /// re-encrypted.
    pub async fn rewrap_all(&self, scope: RewrapScope) -> Result<RewrapReport> {
        let current = self.provider.current_kek().await?;
        let mut report = RewrapReport::default();
        let mut after = None;
        loop {
            let page = self.store.list_after(after, SCAN_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.practice, last.version));
            for record in &page {
                report.examined += 1;
                if scope == RewrapScope::Stale && record.kek == current {
                    continue;
                }
                let w = self
                    .provider
                    .rewrap(&record.context(), &record.kek, &record.wrapped)
                    .await?;
                let next = WrappedDataKey {
                    kek: w.kek,
                    wrapped: w.bytes,
                    ..record.clone()
                };
                if self.store.replace_wrapping(record, &next).await? {
                    report.rewrapped += 1;
                } else {
                    report.raced += 1;
                }
            }
        }
        tracing::info!(examined = report.examined, rewrapped = report.rewrapped, raced = report.raced, kek = %current, "rewrapped data keys");
        Ok(report)
    }

    /// Retires KEK versions below `min_version` at the provider, after checking that no
    /// wrapped data key still uses one (else [`CryptoError::KekInUse`]).
    pub async fn retire_kek_versions_below(&self, min_version: u32) -> Result<()> {
        let current = self.provider.current_kek().await?;
        let mut in_use = 0u64;
        let mut after = None;
        loop {
            let page = self.store.list_after(after, SCAN_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.practice, last.version));
            in_use += page
                .iter()
                .filter(|r| r.kek.id != current.id || r.kek.version < min_version)
                .count() as u64;
        }
        if in_use > 0 {
            return Err(CryptoError::KekInUse {
                count: in_use,
                min_version,
            });
        }
        self.provider.retire_kek_versions_below(min_version).await
    }

    /// Encrypts a field with the practice's active key ([`encrypt_field`]).
    pub async fn encrypt_field(&self, ctx: &FieldContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
        let keys = self.keys(ctx.practice).await?;
        encrypt_field(keys.active(), ctx, plaintext)
    }

    /// Decrypts a field with the key version its header names ([`decrypt_field`]).
    pub async fn decrypt_field(
        &self,
        ctx: &FieldContext<'_>,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>> {
        let version = field_dek_version(ciphertext)?;
        let keys = self.keys_including(ctx.practice, version).await?;
        decrypt_field(&keys, ctx, ciphertext)
    }
}

#[cfg(test)]
#[allow(
    clippy::many_single_char_names,
    clippy::cast_possible_truncation,
    reason = "short names and narrowing casts keep table-like tests readable"
)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use domain::ManualClock;

    use super::*;
    use crate::keys::DekMaterial;
    use crate::provider::{LocalKeyProvider, Wrapped};

    /// Counts unwraps, to prove the cache keeps the provider off the hot path.
    #[derive(Debug)]
    pub(crate) struct Counting {
        pub(crate) inner: LocalKeyProvider,
        pub(crate) unwraps: AtomicUsize,
    }

    #[async_trait]
    impl KeyProvider for Counting {
        fn kind(&self) -> &'static str {
            "counting"
        }
        async fn current_kek(&self) -> Result<KekRef> {
            self.inner.current_kek().await
        }
        async fn wrap(&self, ctx: &WrapContext, dek: &DekMaterial) -> Result<Wrapped> {
            self.inner.wrap(ctx, dek).await
        }
        async fn unwrap(
            &self,
            ctx: &WrapContext,
            kek: &KekRef,
            wrapped: &[u8],
        ) -> Result<DekMaterial> {
            self.unwraps.fetch_add(1, Ordering::SeqCst);
            self.inner.unwrap(ctx, kek, wrapped).await
        }
        async fn rotate_kek(&self) -> Result<KekRef> {
            self.inner.rotate_kek().await
        }
        async fn retire_kek_versions_below(&self, min_version: u32) -> Result<()> {
            self.inner.retire_kek_versions_below(min_version).await
        }
    }

    pub(crate) struct Fixture {
        pub(crate) _dir: tempfile::TempDir,
        pub(crate) provider: Arc<Counting>,
        pub(crate) store: Arc<MemoryKeyStore>,
        pub(crate) clock: ManualClock,
        pub(crate) keyring: Keyring,
    }

    pub(crate) async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let provider = Arc::new(Counting {
            inner: LocalKeyProvider::open(dir.path().join("keys"))
                .await
                .unwrap(),
            unwraps: AtomicUsize::new(0),
        });
        let store = Arc::new(MemoryKeyStore::new());
        let clock = ManualClock::starting_now();
        let keyring = Keyring::new(provider.clone(), store.clone(), Arc::new(clock.clone()));
        Fixture {
            _dir: dir,
            provider,
            store,
            clock,
            keyring,
        }
    }

    const ROW: &[u8] = &[9; 16];

    fn ctx(p: PracticeId) -> FieldContext<'static> {
        FieldContext::new(p, "patient", "given_name", ROW)
    }

    #[tokio::test]
    async fn provisioning_is_idempotent_and_cached() {
        let f = fixture().await;
        let p = PracticeId::new();
        assert!(matches!(
            f.keyring.keys(p).await,
            Err(CryptoError::NoDataKey { .. })
        ));
        assert_eq!(
            f.keyring.ensure_practice_keys(p).await.unwrap(),
            DekVersion::FIRST
        );
        assert_eq!(
            f.keyring.ensure_practice_keys(p).await.unwrap(),
            DekVersion::FIRST
        );
        let ct = f.keyring.encrypt_field(&ctx(p), b"Ada").await.unwrap();
        for _ in 0..100 {
            assert_eq!(f.keyring.decrypt_field(&ctx(p), &ct).await.unwrap(), b"Ada");
        }
        assert_eq!(
            f.provider.unwraps.load(Ordering::SeqCst),
            1,
            "one unwrap, then cache hits"
        );

        // After the TTL the keys are unwrapped again.
        f.clock.advance(DEFAULT_CACHE_TTL + Duration::seconds(1));
        f.keyring.decrypt_field(&ctx(p), &ct).await.unwrap();
        assert_eq!(f.provider.unwraps.load(Ordering::SeqCst), 2);
    }

    // req: ENC-02 — data key rotation: old versions readable until retired.
    #[tokio::test]
    async fn rotate_and_retire_data_key() {
        let f = fixture().await;
        let p = PracticeId::new();
        f.keyring.ensure_practice_keys(p).await.unwrap();
        let old = f.keyring.encrypt_field(&ctx(p), b"old").await.unwrap();
        let v2 = f.keyring.rotate_data_key(p).await.unwrap();
        assert_eq!(v2.get(), 2);
        let new = f.keyring.encrypt_field(&ctx(p), b"new").await.unwrap();
        assert_eq!(field_dek_version(&new).unwrap(), v2);
        assert_eq!(
            f.keyring.decrypt_field(&ctx(p), &old).await.unwrap(),
            b"old"
        );

        let err = f.keyring.retire_data_key(p, v2).await.unwrap_err();
        assert!(matches!(err, CryptoError::ActiveDataKey { .. }), "{err}");
        f.keyring
            .retire_data_key(p, DekVersion::FIRST)
            .await
            .unwrap();
        let err = f.keyring.decrypt_field(&ctx(p), &old).await.unwrap_err();
        assert!(
            matches!(err, CryptoError::UnknownDataKey { version, .. } if version == DekVersion::FIRST),
            "{err}"
        );
        assert_eq!(
            f.keyring.decrypt_field(&ctx(p), &new).await.unwrap(),
            b"new"
        );
    }

    #[tokio::test]
    async fn another_replicas_rotation_is_picked_up() {
        let f = fixture().await;
        let p = PracticeId::new();
        f.keyring.ensure_practice_keys(p).await.unwrap();
        f.keyring.keys(p).await.unwrap(); // cached with v1 only
        let other = Keyring::new(
            f.provider.clone(),
            f.store.clone(),
            Arc::new(f.clock.clone()),
        );
        other.rotate_data_key(p).await.unwrap();
        let ct = other
            .encrypt_field(&ctx(p), b"from the other replica")
            .await
            .unwrap();
        assert_eq!(
            f.keyring.decrypt_field(&ctx(p), &ct).await.unwrap(),
            b"from the other replica"
        );
    }

    // issue 21 — another replica's shredding and retirement reach this cache within
    // DEFAULT_RECHECK, not one cache TTL; a recheck that finds nothing changed costs a
    // generation read, no KEK call.
    #[tokio::test]
    async fn another_replicas_shredding_and_retirement_are_seen_within_the_recheck_bound() {
        let f = fixture().await;
        let (p, q) = (PracticeId::new(), PracticeId::new());
        f.keyring.ensure_practice_keys(p).await.unwrap();
        f.keyring.ensure_practice_keys(q).await.unwrap();
        let ct = f.keyring.encrypt_field(&ctx(p), b"Ada").await.unwrap();
        let ctq = f.keyring.encrypt_field(&ctx(q), b"Bea").await.unwrap();
        let other = Keyring::new(
            f.provider.clone(),
            f.store.clone(),
            Arc::new(f.clock.clone()),
        );
        let v2 = other.rotate_data_key(q).await.unwrap();
        other.destroy_practice_keys(p).await.unwrap();
        // Until the bound, this replica may still answer from its cache.
        f.keyring.decrypt_field(&ctx(p), &ct).await.unwrap();
        let unwraps = f.provider.unwraps.load(Ordering::SeqCst);
        f.clock.advance(DEFAULT_RECHECK);
        assert!(matches!(
            f.keyring.decrypt_field(&ctx(p), &ct).await,
            Err(CryptoError::KeyDestroyed { .. })
        ));
        // q's keys were reloaded once (its generation changed): new values use v2.
        let new = f.keyring.encrypt_field(&ctx(q), b"Cy").await.unwrap();
        assert_eq!(field_dek_version(&new).unwrap(), v2);
        assert_eq!(f.provider.unwraps.load(Ordering::SeqCst), unwraps + 2);
        // The other replica retires v1: values sealed with it fail here after the bound.
        other.retire_data_key(q, DekVersion::FIRST).await.unwrap();
        f.clock.advance(DEFAULT_RECHECK);
        assert!(matches!(
            f.keyring.decrypt_field(&ctx(q), &ctq).await,
            Err(CryptoError::UnknownDataKey { .. })
        ));
        // Nothing changed since: rechecks alone unwrap nothing.
        let unwraps = f.provider.unwraps.load(Ordering::SeqCst);
        for _ in 0..3 {
            f.clock.advance(DEFAULT_RECHECK);
            f.keyring.decrypt_field(&ctx(q), &new).await.unwrap();
        }
        assert_eq!(f.provider.unwraps.load(Ordering::SeqCst), unwraps);
        assert!(DEFAULT_RECHECK < DEFAULT_CACHE_TTL);
    }

    #[tokio::test]
    async fn destroyed_keys_fail_clearly() {
        let f = fixture().await;
        let (p, q) = (PracticeId::new(), PracticeId::new());
        f.keyring.ensure_practice_keys(p).await.unwrap();
        f.keyring.ensure_practice_keys(q).await.unwrap();
        let ct = f.keyring.encrypt_field(&ctx(p), b"Ada").await.unwrap();
        let ctq = f.keyring.encrypt_field(&ctx(q), b"Bea").await.unwrap();
        f.keyring.destroy_practice_keys(p).await.unwrap();

        let err = f.keyring.decrypt_field(&ctx(p), &ct).await.unwrap_err();
        assert!(
            matches!(err, CryptoError::KeyDestroyed { practice } if practice == p),
            "{err}"
        );
        assert!(err.to_string().contains("were destroyed"));
        for r in [
            f.keyring.encrypt_field(&ctx(p), b"x").await.map(|_| ()),
            f.keyring.rotate_data_key(p).await.map(|_| ()),
            f.keyring.ensure_practice_keys(p).await.map(|_| ()),
        ] {
            assert!(matches!(r, Err(CryptoError::KeyDestroyed { .. })), "{r:?}");
        }
        // A fresh replica (empty cache) sees the tombstone too.
        let fresh = Keyring::new(
            f.provider.clone(),
            f.store.clone(),
            Arc::new(f.clock.clone()),
        );
        assert!(matches!(
            fresh.decrypt_field(&ctx(p), &ct).await,
            Err(CryptoError::KeyDestroyed { .. })
        ));
        // The other practice is untouched.
        assert_eq!(
            f.keyring.decrypt_field(&ctx(q), &ctq).await.unwrap(),
            b"Bea"
        );
    }

    // req: ENC-02 — rotate the KEK, old records still decrypt, DEKs rewrapped, old KEK retired.
    #[tokio::test]
    async fn kek_rotation_rewraps_everything_and_retires_old_versions() {
        let f = fixture().await;
        let practices: Vec<_> = (0..5).map(|_| PracticeId::new()).collect();
        let mut cts = Vec::new();
        for p in &practices {
            f.keyring.ensure_practice_keys(*p).await.unwrap();
            f.keyring.rotate_data_key(*p).await.unwrap();
            cts.push(f.keyring.encrypt_field(&ctx(*p), b"kept").await.unwrap());
        }
        let k2 = f.keyring.rotate_kek().await.unwrap();
        assert_eq!(k2.version, 2);

        let err = f.keyring.retire_kek_versions_below(2).await.unwrap_err();
        assert!(
            matches!(
                err,
                CryptoError::KekInUse {
                    count: 10,
                    min_version: 2
                }
            ),
            "{err}"
        );

        let report = f.keyring.rewrap_all(RewrapScope::Stale).await.unwrap();
        assert_eq!(
            report,
            RewrapReport {
                examined: 10,
                rewrapped: 10,
                raced: 0
            }
        );
        let again = f.keyring.rewrap_all(RewrapScope::Stale).await.unwrap();
        assert_eq!(again.rewrapped, 0, "a rerun has nothing left to do");

        f.keyring.retire_kek_versions_below(2).await.unwrap();
        f.keyring.clear_cache();
        for (p, ct) in practices.iter().zip(&cts) {
            assert_eq!(
                f.keyring.decrypt_field(&ctx(*p), ct).await.unwrap(),
                b"kept"
            );
        }
        let all = f.store.list_after(None, 100).await.unwrap();
        assert!(all.iter().all(|r| r.kek == k2));
    }

    #[tokio::test]
    async fn tampered_wrapped_key_is_refused_not_garbage() {
        let f = fixture().await;
        let p = PracticeId::new();
        f.keyring.ensure_practice_keys(p).await.unwrap();
        let mut rec = f.store.list_after(None, 1).await.unwrap().remove(0);
        let original = rec.clone();
        rec.wrapped[20] ^= 1;
        assert!(f.store.replace_wrapping(&original, &rec).await.unwrap());
        f.keyring.clear_cache();
        let err = f.keyring.keys(p).await.unwrap_err();
        assert!(matches!(err, CryptoError::KekUnwrap { .. }), "{err}");

        // A wrapped key copied from another practice does not unwrap either.
        let q = PracticeId::new();
        f.keyring.ensure_practice_keys(q).await.unwrap();
        let theirs = f.store.load(q).await.unwrap();
        let KeyRecords::Live(theirs) = theirs else {
            panic!()
        };
        let stolen = WrappedDataKey {
            practice: p,
            ..theirs[0].clone()
        };
        assert!(f.store.replace_wrapping(&rec, &stolen).await.unwrap());
        f.keyring.clear_cache();
        assert!(matches!(
            f.keyring.keys(p).await,
            Err(CryptoError::KekUnwrap { .. })
        ));
    }
}
