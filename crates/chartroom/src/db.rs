//! Choosing the database: the embedded cluster (default) or an external PostgreSQL.

use anyhow::{Context as _, bail};
use pgcluster::{Cluster, ClusterConfig, DATABASE, DbRole, EmbeddedError};
use sqlx::postgres::PgConnectOptions;
use store::{OwnerStore, Store};

use crate::Global;

/// Connections for one run of a command.
pub(crate) struct Database {
    /// The embedded cluster, when there is one (owned: stopped on [`Database::shutdown`]).
    pub cluster: Option<Cluster>,
    /// Runtime-role connection options.
    pub runtime: PgConnectOptions,
    /// Owner-role connection options, when available.
    pub owner: Option<PgConnectOptions>,
}

impl Database {
    /// Opens the database for `serve`: starts and supervises the embedded cluster (refusing if
    /// another server uses the data directory), or uses the external URLs.
    pub async fn for_serve(g: &Global) -> anyhow::Result<Self> {
        if let Some(url) = &g.database_url {
            return Self::external(url, g.owner_database_url.as_deref());
        }
        let cluster = Cluster::start(cluster_config(g)).await.map_err(explain)?;
        Ok(Self::from_cluster(cluster))
    }

    /// Opens the database for an administrative command: the external owner URL, or the
    /// embedded cluster (started for the command and stopped after it, or the one a running
    /// server supervises, which keeps running).
    pub async fn for_admin(g: &Global) -> anyhow::Result<Self> {
        Self::admin(g, Cluster::start_or_attach).await
    }

    /// Like [`Database::for_admin`], but refuses while a server runs on the embedded cluster:
    /// for the commands that change what a running server holds in memory (data keys) or
    /// replace the database under it.
    pub async fn for_admin_exclusive(g: &Global) -> anyhow::Result<Self> {
        Self::admin(g, Cluster::start).await
    }

    async fn admin<F: Future<Output = Result<Cluster, EmbeddedError>>>(
        g: &Global,
        open: impl FnOnce(ClusterConfig) -> F,
    ) -> anyhow::Result<Self> {
        if let Some(url) = &g.database_url {
            let db = Self::external(url, g.owner_database_url.as_deref())?;
            if db.owner.is_none() {
                bail!(
                    "this command needs the owner role: pass --owner-database-url (or CHARTROOM_OWNER_DATABASE_URL)"
                );
            }
            return Ok(db);
        }
        match open(cluster_config(g)).await {
            Ok(cluster) => Ok(Self::from_cluster(cluster)),
            Err(e) => Err(explain(e)),
        }
    }

    fn from_cluster(cluster: Cluster) -> Self {
        Self {
            runtime: cluster.connect_options(DbRole::Runtime, DATABASE),
            owner: Some(cluster.connect_options(DbRole::Owner, DATABASE)),
            cluster: Some(cluster),
        }
    }

    fn external(url: &str, owner: Option<&str>) -> anyhow::Result<Self> {
        let runtime: PgConnectOptions = url
            .parse()
            .context("--database-url is not a valid PostgreSQL URL")?;
        let owner = owner
            .map(|u| {
                u.parse::<PgConnectOptions>()
                    .context("--owner-database-url is not a valid PostgreSQL URL")
            })
            .transpose()?;
        Ok(Self {
            cluster: None,
            runtime,
            owner,
        })
    }

    /// Connects as the owner role and applies pending migrations (when the owner is known).
    pub async fn migrate(&self) -> anyhow::Result<Option<OwnerStore>> {
        let Some(owner) = &self.owner else {
            return Ok(None);
        };
        let store = OwnerStore::connect(owner.clone())
            .await
            .context("cannot connect as the owner role")?;
        store.migrate().await.context("migrations failed")?;
        Ok(Some(store))
    }

    /// Connects as the runtime role, refusing an unsafe role (req AU-09).
    pub async fn runtime_store(&self, max_connections: u32) -> anyhow::Result<Store> {
        Store::connect_runtime(self.runtime.clone(), max_connections)
            .await
            .context("cannot serve with the runtime database role")
    }

    /// Stops the embedded cluster if this process started it.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(cluster) = self.cluster {
            cluster.stop().await.map_err(explain)?;
        }
        Ok(())
    }
}

/// The embedded cluster's configuration: `<data dir>` and `--pg-bin-dir`.
pub(crate) fn cluster_config(g: &Global) -> ClusterConfig {
    let mut cfg = ClusterConfig::new(g.data_dir.clone());
    cfg.pg_bin_dir.clone_from(&g.pg_bin_dir);
    cfg
}

#[allow(clippy::needless_pass_by_value, reason = "used as map_err(explain)")]
fn explain(e: EmbeddedError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// `chartroom migrate`.
pub(crate) async fn migrate_only(g: &Global) -> anyhow::Result<()> {
    let db = Database::for_admin(g).await?;
    let owner = db.migrate().await?;
    if let Some(o) = owner {
        o.close().await;
    }
    println!("migrations applied");
    db.shutdown().await
}
