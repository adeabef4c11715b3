//! The database side of a backup or restore: where it is (the embedded cluster or a URL
//! given for the purpose), PostgreSQL's client tools, what the manifest records about the
//! database (schema version, row counts), and the owner-role connection that puts every backup
//! and restore on the installation's audit log. Passwords travel to the tools in their
//! environment, never on a command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use pgcluster::{Cluster, DATABASE, DbRole};
use sqlx::{Connection as _, PgConnection};

use crate::Global;

/// The directory of PostgreSQL's binaries (`pg_dump`, `pg_restore`), searched for as the
/// embedded cluster searches for its own (`--pg-bin-dir`, `CHARTROOM_PG_BIN_DIR`, `PATH`,
/// `/usr/lib/postgresql/*/bin`).
pub(super) fn pg_bin(g: &Global) -> anyhow::Result<PathBuf> {
    pgcluster::find_pg_bin_dir(g.pg_bin_dir.as_deref())
        .map_err(|e| anyhow::anyhow!("PostgreSQL client tools: {e}"))
}

/// What `<bin>/<tool> --version` prints, for the manifest.
pub(super) async fn tool_version(bin: &Path, tool: &str) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(bin.join(tool))
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("cannot run {tool}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// libpq environment from a PostgreSQL URL (the password stays out of the command line).
fn libpq_env_from_url(url: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let u = url::Url::parse(url).context("not a valid PostgreSQL URL")?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        bail!("not a PostgreSQL URL (postgres:// or postgresql://)");
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut env = Vec::new();
    if let Some(h) = u.host_str() {
        env.push(("PGHOST", h.to_owned()));
    }
    if let Some(p) = u.port() {
        env.push(("PGPORT", p.to_string()));
    }
    if !u.username().is_empty() {
        env.push(("PGUSER", decode(u.username())));
    }
    if let Some(p) = u.password() {
        env.push(("PGPASSWORD", decode(p)));
    }
    let db = u.path().trim_start_matches('/');
    if !db.is_empty() {
        env.push(("PGDATABASE", decode(db)));
    }
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "sslmode" => env.push(("PGSSLMODE", v.into_owned())),
            "host" => env.push(("PGHOST", v.into_owned())),
            "sslrootcert" => env.push(("PGSSLROOTCERT", v.into_owned())),
            _ => {}
        }
    }
    Ok(env)
}

fn options_from_env(env: &[(&'static str, String)]) -> sqlx::postgres::PgConnectOptions {
    let mut o = sqlx::postgres::PgConnectOptions::new_without_pgpass();
    for (k, v) in env {
        o = match *k {
            "PGHOST" => o.host(v),
            "PGPORT" => v.parse().map_or(o.clone(), |p| o.clone().port(p)),
            "PGUSER" => o.username(v),
            "PGPASSWORD" => o.password(v),
            "PGDATABASE" => o.database(v),
            "PGSSLMODE" => v.parse().map_or(o.clone(), |m| o.clone().ssl_mode(m)),
            "PGSSLROOTCERT" => o.ssl_root_cert(v),
            _ => o,
        };
    }
    o
}

/// A database to dump from or restore into, as libpq environment (for the tools) and sqlx
/// options (for the counts); with the embedded cluster this process started.
pub(super) struct Target {
    pub(super) env: Vec<(&'static str, String)>,
    pub(super) cluster: Option<Cluster>,
}

impl Target {
    pub(super) async fn open(
        g: &Global,
        url: Option<String>,
        what: &str,
        exclusive: bool,
    ) -> anyhow::Result<Self> {
        if let Some(url) = url {
            // The transport rule of every external URL (req TX-02), handed on to libpq.
            let ca = g.database_ca_file.as_deref();
            let checked = crate::db::external_options(&url, what, ca)?;
            let mut env = libpq_env_from_url(&url)?;
            env.retain(|(k, _)| *k != "PGSSLMODE");
            env.push((
                "PGSSLMODE",
                crate::db::ssl_mode_name(checked.get_ssl_mode()).to_owned(),
            ));
            if let Some(ca) = ca {
                env.push(("PGSSLROOTCERT", ca.display().to_string()));
            }
            return Ok(Self { env, cluster: None });
        }
        if g.database_url.is_some() {
            bail!(
                "with an external PostgreSQL, {what} needs a superuser (or BYPASSRLS) URL: see --help"
            );
        }
        let cfg = crate::db::cluster_config(g);
        // A backup is taken next to a running server; a restore needs the cluster to itself.
        let cluster = if exclusive {
            Cluster::start(cfg).await
        } else {
            Cluster::start_or_attach(cfg).await
        }
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            env: cluster.libpq_env(DbRole::Superuser, DATABASE),
            cluster: Some(cluster),
        })
    }

    pub(super) async fn connect(&self) -> anyhow::Result<PgConnection> {
        PgConnection::connect_with(&options_from_env(&self.env))
            .await
            .context("cannot connect to the database")
    }

    pub(super) async fn close(self) -> anyhow::Result<()> {
        if let Some(c) = self.cluster {
            c.stop().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(())
    }
}

/// The owner role that records a backup or restore on the installation's audit log (the
/// embedded cluster's, or `--owner-database-url`), connected before any work: without it the
/// command refuses to run, so no backup or restore is left off the log.
pub(super) async fn audit_owner(g: &Global, target: &Target) -> anyhow::Result<store::OwnerStore> {
    let owner = match (&target.cluster, &g.owner_database_url) {
        (Some(c), _) => c.connect_options(DbRole::Owner, DATABASE),
        (None, Some(url)) => {
            crate::db::external_options(url, "--owner-database-url", g.database_ca_file.as_deref())?
        }
        (None, None) => bail!(
            "backups and restores are recorded on the audit log as the owner role: give --owner-database-url (or CHARTROOM_OWNER_DATABASE_URL)"
        ),
    };
    store::OwnerStore::connect(owner)
        .await
        .context("cannot connect as the owner role to audit the backup")
}

/// Records `action` on the installation's audit log as `owner`.
pub(super) async fn audit(
    owner: store::OwnerStore,
    action: domain::AuditAction,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    let r = owner.audit_system_event(action, details).await;
    owner.close().await;
    r.context("cannot record the backup on the audit log")
}

/// Row counts of every table in the `public` schema, seen by `conn`'s transaction.
pub(super) async fn row_counts(conn: &mut PgConnection) -> anyhow::Result<BTreeMap<String, i64>> {
    let tables: Vec<(String,)> = sqlx::query_as(
        "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = BTreeMap::new();
    for (t,) in tables {
        let q = format!("select count(*) from public.{}", quote_ident(&t));
        let (n,): (i64,) = sqlx::query_as(&q).fetch_one(&mut *conn).await?;
        out.insert(t, n);
    }
    Ok(out)
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(super) async fn schema_version(conn: &mut PgConnection) -> anyhow::Result<i64> {
    let v: Option<(Option<i64>,)> =
        sqlx::query_as("select max(version) from public._sqlx_migrations where success")
            .fetch_optional(&mut *conn)
            .await
            .context("the database has no migration history: not a Chartroom database")?;
    Ok(v.and_then(|r| r.0).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_to_env_keeps_password_out_of_arguments() {
        let env =
            libpq_env_from_url("postgres://admin:p%40ss@db.example:6543/chartroom?sslmode=require")
                .expect("url");
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("PGHOST").as_deref(), Some("db.example"));
        assert_eq!(get("PGPORT").as_deref(), Some("6543"));
        assert_eq!(get("PGUSER").as_deref(), Some("admin"));
        assert_eq!(get("PGPASSWORD").as_deref(), Some("p@ss"));
        assert_eq!(get("PGDATABASE").as_deref(), Some("chartroom"));
        assert_eq!(get("PGSSLMODE").as_deref(), Some("require"));
        assert!(libpq_env_from_url("mysql://x@y/z").is_err());
    }
}
