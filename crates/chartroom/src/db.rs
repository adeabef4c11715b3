//! Choosing the database: the embedded cluster (default) or an external PostgreSQL, and the
//! transport rule for an external one (req TX-02): a server that is not on this machine is
//! reached over TLS with certificate and host-name verification (`sslmode=verify-full`), or
//! not at all.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context as _, bail};
use pgcluster::{Cluster, ClusterConfig, DATABASE, DbRole, EmbeddedError};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
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
            return Self::external(g, url);
        }
        let cluster = Cluster::start(cluster_config(g)).await.map_err(explain)?;
        Ok(Self::from_cluster(cluster))
    }

    /// Checks the external database URLs (syntax and the transport rule, req TX-02) before
    /// anything starts; nothing is connected.
    pub fn check_external(g: &Global) -> anyhow::Result<()> {
        if let Some(url) = &g.database_url {
            Self::external(g, url)?;
        }
        Ok(())
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
            let db = Self::external(g, url)?;
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

    fn external(g: &Global, url: &str) -> anyhow::Result<Self> {
        let ca = g.database_ca_file.as_deref();
        let runtime = external_options(url, "--database-url", ca)?;
        let owner = g
            .owner_database_url
            .as_deref()
            .map(|u| external_options(u, "--owner-database-url", ca))
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
            .with_context(|| connect_failed("the owner role", owner))?;
        store.migrate().await.context("migrations failed")?;
        Ok(Some(store))
    }

    /// Connects as the runtime role, refusing an unsafe role (req AU-09).
    pub async fn runtime_store(&self, max_connections: u32) -> anyhow::Result<Store> {
        Store::connect_runtime(self.runtime.clone(), max_connections)
            .await
            .with_context(|| connect_failed("the runtime database role", &self.runtime))
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

/// Parses an external PostgreSQL URL given as `flag` and applies the transport rule
/// (req TX-02): with `ca_file` (`--database-ca-file`) the server's certificate is checked
/// against that CA, and a URL that names no stricter `sslmode` than the default gets
/// `verify-full`; then [`require_verified_tls`].
pub(crate) fn external_options(
    url: &str,
    flag: &str,
    ca_file: Option<&Path>,
) -> anyhow::Result<PgConnectOptions> {
    let mut options: PgConnectOptions = url
        .parse()
        .with_context(|| format!("{flag} is not a valid PostgreSQL URL"))?;
    if let Some(ca) = ca_file {
        if !ca.is_file() {
            bail!("--database-ca-file {}: no such file", ca.display());
        }
        options = options.ssl_root_cert(ca);
        if !is_local(&options) && matches!(options.get_ssl_mode(), PgSslMode::Prefer) {
            options = options.ssl_mode(PgSslMode::VerifyFull);
        }
    }
    require_verified_tls(&options, flag)?;
    Ok(options)
}

/// Refuses a connection to a PostgreSQL that is not on this machine unless it verifies the
/// server's certificate and host name (`sslmode=verify-full`; req TX-02). A Unix socket or a
/// loopback address never leaves the machine and keeps whatever mode it names, as the
/// embedded cluster's socket does.
pub(crate) fn require_verified_tls(options: &PgConnectOptions, flag: &str) -> anyhow::Result<()> {
    if is_local(options) {
        return Ok(());
    }
    let mode = options.get_ssl_mode();
    if matches!(mode, PgSslMode::VerifyFull) {
        return Ok(());
    }
    bail!(
        "{flag} reaches the PostgreSQL at {} with sslmode={}: a database that is not on this machine must be reached with sslmode=verify-full (TLS with certificate and host-name verification); add sslmode=verify-full to the URL and give the server's CA with --database-ca-file (or sslrootcert=… in the URL)",
        options.get_host(),
        ssl_mode_name(mode)
    )
}

/// Whether `options` connect over a Unix socket or to a loopback address.
fn is_local(options: &PgConnectOptions) -> bool {
    let host = options.get_host();
    options.get_socket().is_some()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The libpq name of an `sslmode`.
pub(crate) fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// The context of a failed connection as `who`: says where TLS verification was asked for,
/// so a certificate that does not verify reads as what it is.
pub(crate) fn connect_failed(who: &str, options: &PgConnectOptions) -> String {
    match options.get_ssl_mode() {
        PgSslMode::VerifyFull | PgSslMode::VerifyCa => format!(
            "cannot connect as {who} to {} over verified TLS (if the certificate is rejected, the server's certificate does not chain to the CA given by --database-ca-file or sslrootcert, or does not name this host)",
            options.get_host()
        ),
        _ => format!("cannot connect as {who} to {}", options.get_host()),
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

#[cfg(test)]
mod tests {
    use super::*;

    // req: TX-02
    #[test]
    fn a_database_off_this_machine_needs_verify_full() {
        let refused = [
            "postgres://u@db.example.org/chartroom",
            "postgres://u@db.example.org/chartroom?sslmode=disable",
            "postgres://u@db.example.org/chartroom?sslmode=prefer",
            "postgres://u@db.example.org/chartroom?sslmode=require",
            "postgres://u@db.example.org/chartroom?sslmode=verify-ca",
            "postgres://u@10.0.0.5:5432/chartroom?sslmode=disable",
        ];
        for url in refused {
            let e = external_options(url, "--database-url", None).unwrap_err();
            let msg = format!("{e:#}");
            assert!(
                msg.contains("must be reached with sslmode=verify-full"),
                "{url}: {msg}"
            );
            assert!(
                msg.starts_with("--database-url reaches the PostgreSQL at "),
                "{msg}"
            );
        }
        let allowed = [
            "postgres://u@db.example.org/chartroom?sslmode=verify-full",
            // Loopback and Unix sockets never leave the machine.
            "postgres://u@localhost/chartroom?sslmode=disable",
            "postgres://u@127.0.0.1:5433/chartroom",
            "postgres://u@[::1]:5433/chartroom?sslmode=disable",
            "postgres://u@localhost/chartroom?host=/run/postgresql",
            "postgres://u@db.example.org/chartroom?host=/run/postgresql&sslmode=disable",
        ];
        for url in allowed {
            external_options(url, "--database-url", None).unwrap();
        }
    }

    // req: TX-02
    #[test]
    fn a_ca_file_turns_the_default_mode_into_verify_full() {
        let dir = std::env::temp_dir().join(format!("chartroom-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "not read until a connection").unwrap();
        let o =
            external_options("postgres://u@db.example.org/c", "--database-url", Some(&ca)).unwrap();
        assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyFull));
        // An explicit weaker mode is not silently upgraded: it is refused.
        let e = external_options(
            "postgres://u@db.example.org/c?sslmode=disable",
            "--database-url",
            Some(&ca),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("sslmode=disable"));
        let missing = dir.join("missing.pem");
        let e = external_options(
            "postgres://u@db.example.org/c",
            "--database-url",
            Some(&missing),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("no such file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
