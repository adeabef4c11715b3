//! A PostgreSQL standing in for an external or managed one (req TX-02): its own cluster under a
//! temporary directory, listening on a loopback TCP port with TLS 1.3 only (`hostssl` lines
//! only, so a connection without TLS is refused) under a server certificate issued by a test
//! CA, and holding none of Chartroom's roles or databases — what `chartroom db bootstrap`
//! starts from.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use pgcluster::{Cluster, ClusterConfig, DbRole, TlsListener};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use sqlx::{Connection as _, PgConnection};

/// A certificate authority for tests: its certificate (PEM) and an issuer for server
/// certificates.
pub struct TestCa {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA named `name`.
    #[must_use]
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (host names or IP addresses) signed by this CA:
    /// (certificate PEM, key PEM).
    #[must_use]
    pub fn server_certificate(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "chartroom test database");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// The external-PostgreSQL stand-in. Stopped by [`ExternalPg::stop`].
pub struct ExternalPg {
    cluster: Cluster,
    dir: PathBuf,
    /// The loopback TCP port it listens on (TLS only).
    pub port: u16,
    /// The file holding the CA certificate its server certificate chains to.
    pub ca_file: PathBuf,
}

impl ExternalPg {
    /// Starts a fresh cluster on a free loopback port with a certificate for `localhost` and
    /// `127.0.0.1` from a new test CA, and removes Chartroom's roles and database from it.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "chartroom-ext-pg-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("fixture directory");
        let ca = TestCa::new("Chartroom test database CA");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, &ca.cert_pem).expect("CA file");
        let (cert_pem, key_pem) = ca.server_certificate(&["localhost", "127.0.0.1"]);
        let port = free_port();
        let mut cfg = ClusterConfig::new(dir.join("data"));
        cfg.tls_listener = Some(TlsListener {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
            cert_pem,
            key_pem,
        });
        let cluster = Cluster::start(cfg)
            .await
            .unwrap_or_else(|e| panic!("cannot start the external PostgreSQL stand-in: {e}"));
        let pg = Self {
            cluster,
            dir,
            port,
            ca_file,
        };
        // A fresh server: none of what the embedded bootstrap made for itself.
        pg.superuser_sql(
            "drop database chartroom with (force); \
             drop role chartroom_app; drop role chartroom_owner; drop role chartroom_runtime",
        )
        .await;
        pg
    }

    /// Runs the `;`-separated statements of `sql` one by one (each in its own transaction, as
    /// `DROP DATABASE` needs) as the cluster's superuser, over its socket; fixture set-up only.
    pub async fn superuser_sql(&self, sql: &str) {
        let mut su = PgConnection::connect_with(
            &self.cluster.connect_options(DbRole::Superuser, "postgres"),
        )
        .await
        .expect("superuser connection");
        for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
            sqlx::raw_sql(statement)
                .execute(&mut su)
                .await
                .unwrap_or_else(|e| panic!("fixture SQL {statement}: {e}"));
        }
        su.close().await.expect("close");
    }

    /// Creates login role `name` with `attributes` (e.g. `CREATEROLE CREATEDB`), allowed to
    /// connect to `postgres`, and a random password, which it returns.
    pub async fn create_login(&self, name: &str, attributes: &str) -> String {
        let password = uuid::Uuid::new_v4().simple().to_string();
        // The embedded bootstrap took CONNECT on `postgres` from PUBLIC; a managed service's
        // administrator has it.
        self.superuser_sql(&format!(
            "create role {name} login {attributes} password '{password}'; \
             grant connect on database postgres to {name}"
        ))
        .await;
        password
    }

    /// A URL for `user` (no password: give it in `PGPASSWORD`) to database `db` on
    /// `localhost`, with `params` as its query.
    #[must_use]
    pub fn url(&self, user: &str, db: &str, params: &str) -> String {
        format!("postgres://{user}@localhost:{}/{db}?{params}", self.port)
    }

    /// The fixture's directory (removed by [`ExternalPg::stop`]).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the cluster and removes its directory.
    pub async fn stop(self) {
        self.cluster.stop().await.expect("stop the stand-in");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback TCP port nobody listens on right now (the kernel's choice).
fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
