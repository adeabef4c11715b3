//! The services a run of the binary builds once and every command shares: the key provider
//! (KEK) and the practice secrets, keyrings on the wrapped-key table, the blob store, and the
//! audit checkpoints (directory, mirrors, signing key, checkpointer); and the owner-role run
//! every administrative command goes through ([`Services::as_owner`]).
//!
//! Each service is built on first use and then kept for the run, so a command that needs no
//! key never opens the key provider (nor creates a key file), and one that needs it opens it
//! once. Commands share wiring only through here (and `serve`'s start-up work through
//! [`crate::startup`]): no `*_cmd` module imports another.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use audit::checkpoint::Signer;
use audit::store::DirStore;
use domain::SystemClock;
use server::checkpoint::{Checkpointer, ObjectPlace, Place};
use sqlx::postgres::PgConnectOptions;
use store::OwnerStore;
use store::crypto::{
    BlobStore, DirSecretStore, KeyProvider, Keyring, LocalKeyProvider, MemoryKeyStore,
    PracticeSecretStore, Secret, VaultConfig, VaultTransitProvider,
};
use store::keys::PgKeyStore;

use crate::Global;
use crate::db::Database;

/// Name of the audit checkpoint signing key.
const CHECKPOINT_KEY_NAME: &str = "chartroom-audit";

/// Where the key-encryption key (KEK) lives.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyProviderKind {
    /// A key file in `<data dir>/secrets/` (0600, created on first start). Back it up apart
    /// from the database: without it, nothing encrypted can be read.
    Local,
    /// Vault / OpenBao transit. Settings from the environment: `CHARTROOM_VAULT_ADDR`,
    /// `CHARTROOM_VAULT_TOKEN`, `CHARTROOM_VAULT_KEY` (default `chartroom`),
    /// `CHARTROOM_VAULT_MOUNT` (default `transit`), `CHARTROOM_VAULT_NAMESPACE`.
    Vault,
}

/// The key material a keyring needs: the KEK provider and the practice secrets.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    /// The KEK provider chosen by `--key-provider`.
    pub(crate) provider: Arc<dyn KeyProvider>,
    /// The practice secrets, in `<data dir>/secrets/practice-keys` (never in a backup).
    pub(crate) secrets: Arc<dyn PracticeSecretStore>,
}

/// How an administrative command reaches the database as the owner role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Next to a running server (on the embedded cluster it supervises), no keyring.
    Shared,
    /// Next to a running server, with a keyring (the command decrypts).
    SharedWithKeys,
    /// Refused while a server runs on the embedded cluster (it changes what a running server
    /// holds in memory: data keys), with a keyring.
    ExclusiveWithKeys,
}

/// The services of one run, built from the global options.
pub(crate) struct Services {
    global: Global,
    keys: tokio::sync::OnceCell<Keys>,
    signer: OnceLock<Arc<Signer>>,
}

impl Services {
    /// Nothing is opened yet: each service is built on first use.
    pub(crate) fn new(global: Global) -> Self {
        Self {
            global,
            keys: tokio::sync::OnceCell::new(),
            signer: OnceLock::new(),
        }
    }

    /// The global options.
    pub(crate) fn global(&self) -> &Global {
        &self.global
    }

    /// `<data dir>/secrets` (0700), created if missing: key files, the TLS key, role passwords.
    pub(crate) fn secrets_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self.global.data_dir.join("secrets");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
        Ok(dir)
    }

    /// The key file that sealed TOTP secrets before the installation data key (retired: read
    /// only to migrate, then removed).
    pub(crate) fn legacy_identity_key(&self) -> PathBuf {
        self.global.data_dir.join("secrets").join("identity.key")
    }

    /// The KEK provider (`--key-provider`) and the practice secret store, opened once.
    pub(crate) async fn keys(&self) -> anyhow::Result<&Keys> {
        self.keys
            .get_or_try_init(|| async {
                let provider = self.open_provider().await?;
                let dir = self.global.data_dir.join("secrets").join("practice-keys");
                let secrets = DirSecretStore::open(&dir).with_context(|| {
                    format!("cannot open the practice secrets in {}", dir.display())
                })?;
                anyhow::Ok(Keys {
                    provider,
                    secrets: Arc::new(secrets),
                })
            })
            .await
    }

    /// The KEK provider chosen by `--key-provider`.
    async fn open_provider(&self) -> anyhow::Result<Arc<dyn KeyProvider>> {
        match self.global.key_provider {
            KeyProviderKind::Local => {
                let p = LocalKeyProvider::open(&self.secrets_dir()?)
                    .await
                    .context("cannot open the local key-encryption key")?;
                Ok(Arc::new(p))
            }
            KeyProviderKind::Vault => {
                let p = VaultTransitProvider::connect(vault_config()?)
                    .await
                    .context("cannot use the Vault transit key")?;
                Ok(Arc::new(p))
            }
        }
    }

    /// A keyring on the wrapped-key table, connecting with `options` (runtime or owner role).
    pub(crate) async fn keyring(&self, options: PgConnectOptions) -> anyhow::Result<Arc<Keyring>> {
        let keys = self.keys().await?;
        let store = PgKeyStore::connect(options)
            .await
            .context("cannot connect the wrapped-key store")?;
        Ok(Arc::new(
            Keyring::new(
                keys.provider.clone(),
                Arc::new(store),
                Arc::new(SystemClock),
            )
            .with_practice_secrets(keys.secrets.clone()),
        ))
    }

    /// `owner` with a keyring on the owner role's connection.
    pub(crate) async fn owner_with_keyring(
        &self,
        db: &Database,
        owner: OwnerStore,
    ) -> anyhow::Result<OwnerStore> {
        let opts = db
            .owner
            .clone()
            .context("encryption needs the owner role: pass --owner-database-url")?;
        Ok(owner.with_keyring(self.keyring(opts).await?))
    }

    /// Runs `f` as the owner role: opens the database for `access` (applying pending
    /// migrations), gives the owner store a keyring when `access` asks for one, and closes
    /// the store and stops a cluster it started afterwards, whether `f` succeeded or not.
    pub(crate) async fn as_owner<T>(
        &self,
        access: Access,
        f: impl AsyncFnOnce(&OwnerStore, &Database) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let db = match access {
            Access::Shared | Access::SharedWithKeys => Database::for_admin(&self.global).await?,
            Access::ExclusiveWithKeys => Database::for_admin_exclusive(&self.global).await?,
        };
        let owner = async {
            let owner = db
                .migrate()
                .await?
                .context("this command needs the owner role")?;
            match access {
                Access::Shared => Ok(owner),
                Access::SharedWithKeys | Access::ExclusiveWithKeys => {
                    self.owner_with_keyring(&db, owner).await
                }
            }
        }
        .await;
        let result = match owner {
            Ok(owner) => {
                let r = f(&owner, &db).await;
                owner.close().await;
                r
            }
            Err(e) => Err(e),
        };
        db.shutdown().await?;
        result
    }

    /// The blob store: `--blob-store-url`, or `<data dir>/blobs` on this machine, sealing and
    /// opening with `keyring`.
    pub(crate) fn blob_store(&self, keyring: Arc<Keyring>) -> anyhow::Result<BlobStore> {
        match &self.global.blob_store_url {
            Some(url) => BlobStore::from_url(url, object_store_options(), keyring)
                .context("cannot open the blob store (--blob-store-url)"),
            None => BlobStore::local(self.global.data_dir.join("blobs"), keyring)
                .context("cannot open the blob store"),
        }
    }

    /// The blob store for copying objects as stored (backups): its keyring holds no data key,
    /// so nothing is ever decrypted through it.
    pub(crate) async fn raw_blob_store(&self) -> anyhow::Result<BlobStore> {
        let keyring = Keyring::new(
            self.keys().await?.provider.clone(),
            Arc::new(MemoryKeyStore::new()),
            Arc::new(SystemClock),
        );
        self.blob_store(Arc::new(keyring))
    }

    /// The checkpoint directory: `--checkpoint-dir`, or `<data dir>/checkpoints`.
    pub(crate) fn checkpoint_dir(&self) -> PathBuf {
        self.global
            .checkpoint_dir
            .clone()
            .unwrap_or_else(|| self.global.data_dir.join("checkpoints"))
    }

    /// The checkpoint store in [`Services::checkpoint_dir`].
    pub(crate) fn checkpoint_store(&self) -> DirStore {
        DirStore::new(self.checkpoint_dir())
    }

    /// Where checkpoints are signed into first and read from: `--checkpoint-store-url` (an
    /// object store replicas share), or the checkpoint directory.
    pub(crate) fn checkpoint_place(&self) -> anyhow::Result<Place> {
        match &self.global.checkpoint_store_url {
            Some(url) => Ok(Place::Object(
                object_place(url)
                    .context("cannot open the checkpoint store (--checkpoint-store-url)")?,
            )),
            None => Ok(Place::Dir(self.checkpoint_store())),
        }
    }

    /// Every place checkpoints are kept: the checkpoint store first, then the mirrors.
    pub(crate) fn checkpoint_places(&self) -> anyhow::Result<Vec<Place>> {
        let mut places = vec![self.checkpoint_place()?];
        places.extend(self.checkpoint_mirrors()?);
        Ok(places)
    }

    /// The mirrors of the checkpoint directory: `--checkpoint-mirror-dir`,
    /// `--checkpoint-mirror-url`.
    pub(crate) fn checkpoint_mirrors(&self) -> anyhow::Result<Vec<Place>> {
        let mut out = Vec::new();
        if let Some(dir) = &self.global.checkpoint_mirror_dir {
            out.push(Place::Dir(DirStore::new(dir)));
        }
        if let Some(url) = &self.global.checkpoint_mirror_url {
            out.push(Place::Object(object_place(url).context(
                "cannot open the checkpoint mirror (--checkpoint-mirror-url)",
            )?));
        }
        Ok(out)
    }

    /// The checkpoint signing key, `<data dir>/secrets/audit-checkpoint.key` (0600), created on
    /// first use and loaded once; its public half is written to `<data dir>/audit-verifier.key`
    /// for outside tools.
    pub(crate) fn signer(&self) -> anyhow::Result<Arc<Signer>> {
        if let Some(s) = self.signer.get() {
            return Ok(s.clone());
        }
        let path = self.secrets_dir()?.join("audit-checkpoint.key");
        let signer = Signer::load_or_create(&path, CHECKPOINT_KEY_NAME)
            .with_context(|| format!("audit signing key {}", path.display()))?;
        let vkey = self.global.data_dir.join("audit-verifier.key");
        std::fs::write(&vkey, format!("{}\n", signer.verifier_key()))
            .with_context(|| format!("cannot write {}", vkey.display()))?;
        Ok(self.signer.get_or_init(|| Arc::new(signer)).clone())
    }

    /// The checkpointer: the signing key, the checkpoint directory and the mirrors, signing
    /// after `every_events` new events or `every_secs` seconds.
    pub(crate) fn checkpointer(
        &self,
        every_events: u64,
        every_secs: u64,
    ) -> anyhow::Result<Checkpointer> {
        Ok(Checkpointer::new(
            self.signer()?,
            self.checkpoint_place()?,
            self.global.audit_origin.clone(),
        )
        .with_mirrors(self.checkpoint_mirrors()?)
        .with_cadence(
            every_events,
            std::time::Duration::from_secs(every_secs.max(1)),
        ))
    }
}

/// Checkpoints in the object store at `url`, named for operators without any credentials the
/// URL might carry.
fn object_place(url: &str) -> anyhow::Result<ObjectPlace> {
    let (store, prefix) = store::crypto::blob::object_store_from_url(url, object_store_options())?;
    let label = url_label(url).unwrap_or_else(|| "the checkpoint store URL".to_owned());
    Ok(ObjectPlace::new(store, prefix, label))
}

/// The Vault / OpenBao transit settings from `CHARTROOM_VAULT_*` (see [`KeyProviderKind::Vault`]).
pub(crate) fn vault_config() -> anyhow::Result<VaultConfig> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let addr =
        var("CHARTROOM_VAULT_ADDR").context("--key-provider vault needs CHARTROOM_VAULT_ADDR")?;
    let token =
        var("CHARTROOM_VAULT_TOKEN").context("--key-provider vault needs CHARTROOM_VAULT_TOKEN")?;
    let mut cfg = VaultConfig::new(
        addr.parse()
            .context("CHARTROOM_VAULT_ADDR is not a valid URL")?,
        Secret::new(token),
        var("CHARTROOM_VAULT_KEY").unwrap_or_else(|| "chartroom".into()),
    );
    if let Some(m) = var("CHARTROOM_VAULT_MOUNT") {
        cfg.mount = m;
    }
    cfg.namespace = var("CHARTROOM_VAULT_NAMESPACE");
    Ok(cfg)
}

/// A URL as `scheme://host/path`: without the credentials, port or query it may carry. `None`
/// when it is not a URL.
pub(crate) fn url_label(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|u| {
        format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.path()
        )
    })
}

/// `object_store`'s configuration for a cloud URL, from the environment: its keys are the
/// lower-cased `AWS_*`, `GOOGLE_*` and `AZURE_*` variable names.
fn object_store_options() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_")
        })
        .map(|(k, v)| (k.to_lowercase(), v))
        .collect()
}
