//! Test kit: boots real PostgreSQL and the real server for tests and benchmarks.
//!
//! - [`TestDb`]: a fresh database per test, created from a migrated template in one private
//!   PostgreSQL cluster shared by every test process (started on first use under
//!   `$TMPDIR/chartroom-test-pg-<uid>` by `pgcluster`, the embedded-cluster code the server
//!   uses, and left running for the next run; `CHARTROOM_TEST_PG_DIR` overrides the place).
//! - [`TestApp`]: the real router served on `127.0.0.1:0` over real HTTP, with an injected
//!   [`ManualClock`].
//! - [`World`]: two practices with one user per role each, plus a user with no membership.
//! - [`schema::describe`]: the readable description of a migrated database's schema that is
//!   checked in as `migrations/SCHEMA.md`.
//!
//! Nothing here is for production: the superuser handle exists only to create and drop test
//! databases; isolation is always tested through the runtime role.

#![allow(
    clippy::missing_panics_doc,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test support code: a broken fixture must fail the test loudly"
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use domain::{Clock as _, ManualClock, PatientId, PracticeId, Role, RoleSet, UserId};
use pgcluster::{Cluster, ClusterConfig, DbRole};
use sha2::{Digest as _, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, Executor as _, PgConnection};
use store::{OwnerStore, SessionPolicy, Store};
use tokio::sync::OnceCell;

pub mod external_pg;
pub mod load;
pub mod mailpay_standins;
pub mod messaging_standins;
pub mod outbox_bench;
pub mod perio;
pub mod schema;
pub mod standins;

/// The password every fixture user has.
pub const PASSWORD: &str = "correct horse battery staple";

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();
static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static SERIAL: AtomicU32 = AtomicU32::new(0);
static HASH: OnceLock<String> = OnceLock::new();

/// Where the shared test cluster lives.
#[must_use]
pub fn cluster_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CHARTROOM_TEST_PG_DIR") {
        return PathBuf::from(d);
    }
    let uid =
        std::fs::metadata("/proc/self").map_or(0, |m| std::os::unix::fs::MetadataExt::uid(&m));
    // Under /tmp, not the target dir: PostgreSQL runs as an unprivileged user when the tests
    // run as root, and it must be able to reach its data directory.
    PathBuf::from("/tmp").join(format!("chartroom-test-pg-{uid}"))
}

async fn cluster() -> &'static Cluster {
    CLUSTER
        .get_or_init(|| async {
            Cluster::attach_or_start_shared(ClusterConfig::new(cluster_dir()))
                .await
                .unwrap_or_else(|e| panic!("cannot start the test PostgreSQL cluster: {e}"))
        })
        .await
}

async fn superuser(db: &str) -> PgConnection {
    PgConnection::connect_with(&cluster().await.connect_options(DbRole::Superuser, db))
        .await
        .expect("superuser connection to the test cluster")
}

fn template_name() -> String {
    let mut h = Sha256::new();
    for m in store::MIGRATOR.iter() {
        h.update(m.version.to_le_bytes());
        h.update(&m.checksum);
    }
    format!("chartroom_tpl_{}", &hex::encode(h.finalize())[..16])
}

async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut su = superuser("postgres").await;
            // One process builds the template; others wait on the advisory lock.
            su.execute("select pg_advisory_lock(727274)")
                .await
                .expect("advisory lock");
            drop_stale_databases(&mut su).await;
            // A template is ready once it no longer accepts connections (the last step of
            // building it); one that still does is what a crashed build left behind.
            let state: Option<bool> =
                sqlx::query_scalar("select datallowconn from pg_database where datname = $1")
                    .bind(&name)
                    .fetch_optional(&mut su)
                    .await
                    .expect("template lookup");
            if state != Some(false) {
                su.execute(format!("drop database if exists {name} with (force)").as_str())
                    .await
                    .expect("drop");
                su.execute(format!("create database {name} owner chartroom_owner").as_str())
                    .await
                    .expect("create template");
                secure(&name).await;
                let owner =
                    OwnerStore::connect(cluster().await.connect_options(DbRole::Owner, &name))
                        .await
                        .expect("owner connection");
                owner.migrate().await.expect("migrations");
                owner.close().await;
                // No session (autovacuum included) may enter the template from now on:
                // creating a database from it needs it free.
                su.execute(
                    format!("alter database {name} with allow_connections false is_template true")
                        .as_str(),
                )
                .await
                .expect("publish template");
            }
            su.execute("select pg_advisory_unlock(727274)")
                .await
                .expect("unlock");
            name
        })
        .await
}

async fn secure(db: &str) {
    let mut su = superuser(db).await;
    pgcluster::secure_database(&mut su, db)
        .await
        .expect("secure database");
}

/// Drops test databases left behind by test processes that are gone.
async fn drop_stale_databases(su: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where datname like 't\\_%'")
            .fetch_all(&mut *su)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = su
                .execute(format!("drop database if exists {name} with (force)").as_str())
                .await;
        }
    }
}

/// A fresh, migrated database for one test. Dropped (best effort) when the value is dropped.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    keys: TestKeys,
}

/// The test database's key-encryption key: a [`store::crypto::LocalKeyProvider`] in a
/// temporary directory, shared by every keyring made for this database.
#[derive(Debug)]
struct TestKeys {
    dir: PathBuf,
    provider: std::sync::Arc<store::crypto::LocalKeyProvider>,
    secrets: std::sync::Arc<store::crypto::DirSecretStore>,
}

impl TestKeys {
    async fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "chartroom-test-kek-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let provider = store::crypto::LocalKeyProvider::open(dir.join("keys"))
            .await
            .expect("test key provider");
        let secrets =
            store::crypto::DirSecretStore::open(dir.join("practice-keys")).expect("test secrets");
        Self {
            dir,
            provider: std::sync::Arc::new(provider),
            secrets: std::sync::Arc::new(secrets),
        }
    }
}

impl TestDb {
    /// Creates the database from the migrated template.
    pub async fn new() -> Self {
        let template = template().await;
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        let mut su = superuser("postgres").await;
        su.execute(
            format!("create database {name} template {template} owner chartroom_owner").as_str(),
        )
        .await
        .expect("create test database");
        drop(su);
        secure(&name).await;
        Self {
            name,
            keys: TestKeys::new().await,
        }
    }

    /// The key provider (a local key file in a temporary directory) of this database's
    /// keyrings.
    #[must_use]
    pub fn key_provider(&self) -> std::sync::Arc<store::crypto::LocalKeyProvider> {
        self.keys.provider.clone()
    }

    /// The practice secrets of this database's keyrings (a temporary directory).
    #[must_use]
    pub fn practice_secrets(&self) -> std::sync::Arc<store::crypto::DirSecretStore> {
        self.keys.secrets.clone()
    }

    /// A fresh keyring (empty cache) on the wrapped-key table, as `role` (runtime or owner).
    pub async fn keyring(&self, role: DbRole) -> std::sync::Arc<store::crypto::Keyring> {
        let opts = cluster().await.connect_options(role, &self.name);
        let keys = store::keys::PgKeyStore::connect(opts)
            .await
            .expect("key store");
        std::sync::Arc::new(
            store::crypto::Keyring::new(
                self.keys.provider.clone(),
                std::sync::Arc::new(keys),
                std::sync::Arc::new(domain::SystemClock),
            )
            .with_practice_secrets(self.keys.secrets.clone()),
        )
    }

    /// The database name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection options for the runtime role (what the server uses).
    pub async fn runtime_options(&self) -> PgConnectOptions {
        cluster().await.connect_options(DbRole::Runtime, &self.name)
    }

    /// Connection options for the owner role (migrations, admin commands).
    pub async fn owner_options(&self) -> PgConnectOptions {
        cluster().await.connect_options(DbRole::Owner, &self.name)
    }

    /// A superuser connection to this database. Only for fixtures that simulate an attacker
    /// with database superuser rights, never for isolation checks.
    pub async fn superuser_unsafe(&self) -> PgConnection {
        superuser(&self.name).await
    }

    /// A runtime-role connection.
    pub async fn runtime_conn(&self) -> PgConnection {
        PgConnection::connect_with(&self.runtime_options().await)
            .await
            .expect("runtime connection")
    }

    /// The owner store.
    pub async fn owner(&self) -> OwnerStore {
        OwnerStore::connect(self.owner_options().await)
            .await
            .expect("owner store")
            .with_keyring(self.keyring(DbRole::Owner).await)
    }

    /// The runtime store (checked least-privilege), with a keyring on this database's KEK.
    pub async fn store(&self) -> Store {
        Store::connect_runtime(self.runtime_options().await, 8)
            .await
            .expect("runtime store")
            .with_keyring(self.keyring(DbRole::Runtime).await)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.keys.dir);
        let name = self.name.clone();
        let Some(cluster) = CLUSTER.get() else { return };
        let opts = cluster.connect_options(DbRole::Superuser, "postgres");
        // Best effort, off the test's runtime; anything left is dropped by the next run.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut su) = PgConnection::connect_with(&opts).await {
                    let _ = su
                        .execute(format!("drop database if exists {name} with (force)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

/// Enters `practice` as `actor` on a runtime-role connection for SQL-level tests, deriving the
/// actor's roles from `membership` as `app.enter` does for a session: practice and actor
/// first, then `chartroom.roles` from the membership row those select (empty for a
/// non-member). `local`: for the current transaction only, else for the connection.
pub async fn enter_as(
    conn: &mut PgConnection,
    practice: Option<uuid::Uuid>,
    actor: Option<uuid::Uuid>,
    local: bool,
) {
    enter_trusted(conn, practice, actor, "", local)
        .await
        .expect("set practice and actor");
    sqlx::query(
        "select set_config('chartroom.roles',
                coalesce((select m.roles::text from membership m
                           where m.practice_id = app.practice() and m.user_id = app.actor()), ''), $1)",
    )
    .bind(local)
    .execute(&mut *conn)
    .await
    .expect("derive roles");
}

/// Sets practice, actor and roles (a PostgreSQL array literal such as `{reception}`) on a
/// runtime-role connection in one statement, taking them on trust: no session is checked.
/// For SQL-level tests and the benchmark harness's baselines, never a product path (the
/// server enters a practice only through [`Store::enter_practice`]). `local`: for the current
/// transaction only, else for the connection.
pub async fn enter_trusted(
    conn: &mut PgConnection,
    practice: Option<uuid::Uuid>,
    actor: Option<uuid::Uuid>,
    roles: &str,
    local: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "select set_config('chartroom.practice_id', $1, $4), set_config('chartroom.actor_id', $2, $4),
                set_config('chartroom.roles', $3, $4)",
    )
    .bind(practice.map(|p| p.to_string()).unwrap_or_default())
    .bind(actor.map(|a| a.to_string()).unwrap_or_default())
    .bind(roles)
    .bind(local)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Queues `n` synthetic `patient.read` events of `practice` by `actor` about `patient`, spread
/// over the last day, as the database superuser `su` (a fixture for the log's own jobs: the
/// append trigger queues each one for the sequencer, as for events the server writes).
pub async fn queue_synthetic_events(
    su: &mut PgConnection,
    practice: PracticeId,
    actor: UserId,
    patient: PatientId,
    n: i64,
) {
    sqlx::query(
        "insert into audit_event (practice_id, event_id, occurred_at, actor_id, patient_id, action,
                                  outcome, object_type, object_id, request_id)
         select $1, gen_random_uuid(), now() - interval '1 day' + make_interval(secs => g / 1000.0),
                $2, $3, 'patient.read', 'success', 'patient', $3, gen_random_uuid()
           from generate_series(1, $4) as g",
    )
    .bind(practice)
    .bind(actor)
    .bind(patient)
    .bind(n)
    .execute(&mut *su)
    .await
    .expect("synthetic audit events");
}

/// A full session token for `user` (password, then a second factor), created directly in
/// `store` now, under the default session policy (the sign-in routes have their own tests).
pub async fn session_token(store: &Store, user: UserId) -> String {
    new_session(
        store,
        user,
        domain::SystemClock.now(),
        &SessionPolicy::default(),
        true,
    )
    .await
}

/// A session token for `user` created directly in `store` at `now`: with a password only, or
/// (`second_factor`) rotated after a TOTP step.
async fn new_session(
    store: &Store,
    user: UserId,
    now: chrono::DateTime<Utc>,
    policy: &SessionPolicy,
    second_factor: bool,
) -> String {
    let first = store
        .create_session(
            user,
            store::AuthMethod::Password,
            Some("testkit"),
            now,
            policy,
        )
        .await
        .expect("session");
    if !second_factor {
        return first.expose().to_owned();
    }
    store
        .rotate_session(&first.hash(), store::AuthMethod::Totp, now)
        .await
        .expect("second factor")
        .expose()
        .to_owned()
}

/// The session check and practice entry a request presenting `token` makes
/// ([`Store::enter_practice`], now, the default session policy), without HTTP: the tenant
/// transaction, or [`store::StoreError::Unauthenticated`] / [`store::StoreError::NotMember`].
pub async fn enter_practice(
    store: &Store,
    token: &str,
    practice: PracticeId,
) -> Result<store::TenantTx, store::StoreError> {
    enter_practice_for(store, token, practice, store::Access::Write).await
}

/// [`enter_practice`] for `access`: [`store::Access::Read`] is what a `GET` route enters with
/// (a read-only transaction whose audit events go through the group-commit writer).
pub async fn enter_practice_for(
    store: &Store,
    token: &str,
    practice: PracticeId,
    access: store::Access,
) -> Result<store::TenantTx, store::StoreError> {
    let hash = store::TokenHash::from_presented(token).ok_or(store::StoreError::Unauthenticated)?;
    match store
        .enter_practice(
            &hash,
            practice,
            domain::SystemClock.now(),
            &SessionPolicy::default(),
            domain::RequestId::new(),
            access,
        )
        .await?
    {
        store::Entry::Member(tx, _) => Ok(tx),
        store::Entry::NotMember(..) => Err(store::StoreError::NotMember),
    }
}

/// One patient read the way the patient route does it, without HTTP: the session check and
/// practice entry ([`enter_practice`]), the read and decryption ([`store::patients::get`]), its
/// audit event, the commit. `Ok(None)`: no such patient.
pub async fn read_patient(
    store: &Store,
    token: &str,
    practice: PracticeId,
    patient: PatientId,
) -> Result<Option<store::patients::Patient>, store::StoreError> {
    read_patient_for(store, token, practice, patient, store::Access::Write).await
}

/// [`read_patient`] entered for `access`: with [`store::Access::Read`] (what the patient
/// route does) the audit event goes through the group-commit writer and the commit returns
/// once it is durable; with [`store::Access::Write`] it is written in the read's own
/// transaction.
pub async fn read_patient_for(
    store: &Store,
    token: &str,
    practice: PracticeId,
    patient: PatientId,
    access: store::Access,
) -> Result<Option<store::patients::Patient>, store::StoreError> {
    let mut tx = enter_practice_for(store, token, practice, access).await?;
    let found = store::patients::get(&mut tx, store.keyring()?, patient).await?;
    if let Some(p) = &found {
        tx.audit_patient(domain::AuditAction::PatientRead, p.patient_id)
            .await?;
    }
    tx.commit().await?;
    Ok(found)
}

/// The argon2id hash of [`PASSWORD`], computed once per process.
pub fn password_hash() -> &'static str {
    HASH.get_or_init(|| server::password::hash_blocking(PASSWORD).expect("hash"))
}

/// A practice of the [`World`] and its members.
#[derive(Debug, Clone)]
pub struct PracticeFixture {
    /// The practice.
    pub id: PracticeId,
    /// One user per role: "owner", "admin", "clinician", "reception".
    pub users: HashMap<&'static str, UserId>,
    /// A patient of the practice.
    pub patient: PatientId,
}

impl PracticeFixture {
    /// The user holding `role` here.
    #[must_use]
    pub fn user(&self, role: &str) -> UserId {
        self.users[role]
    }
}

/// Two practices, A and B, each with an owner, an admin, a clinician and a reception member
/// and one patient; plus `nobody`, an account with no membership.
#[derive(Debug, Clone)]
pub struct World {
    /// Practice A.
    pub a: PracticeFixture,
    /// Practice B.
    pub b: PracticeFixture,
    /// An account that belongs to no practice.
    pub nobody: UserId,
}

impl World {
    /// Builds the world in `db` (as the owner role).
    pub async fn build(db: &TestDb) -> Self {
        let owner = db.owner().await;
        let now = Utc::now();
        let mut practices = Vec::new();
        for tag in ["a", "b"] {
            let id = owner
                .create_practice(&format!("Practice {tag}"), now)
                .await
                .expect("practice");
            let mut users = HashMap::new();
            for (role, r) in [
                ("owner", Role::Owner),
                ("admin", Role::Admin),
                ("clinician", Role::Clinician),
                ("reception", Role::Reception),
            ] {
                let email = format!(
                    "{role}.{tag}.{}@test.example.invalid",
                    uuid::Uuid::new_v4().simple()
                );
                let user = owner
                    .create_user(&email, &format!("{role} {tag}"), password_hash(), now)
                    .await
                    .expect("user");
                owner
                    .add_member(id, user, RoleSet::from_iter([r]), now)
                    .await
                    .expect("member");
                users.insert(role, user);
            }
            let mut g = domain::synthetic::Generator::new(u64::from(tag.as_bytes()[0]));
            let p = g.patient();
            let patient = owner
                .seed_patient(id, &p.into(), now)
                .await
                .expect("patient");
            // The practice's clinician has the patient on their care team.
            owner
                .assign_clinician(id, patient, users["clinician"])
                .await
                .expect("care team");
            practices.push(PracticeFixture { id, users, patient });
        }
        let nobody = owner
            .create_user(
                &format!(
                    "nobody.{}@test.example.invalid",
                    uuid::Uuid::new_v4().simple()
                ),
                "nobody",
                password_hash(),
                now,
            )
            .await
            .expect("user");
        owner.close().await;
        let b = practices.pop().expect("b");
        let a = practices.pop().expect("a");
        World { a, b, nobody }
    }
}

/// A self-signed certificate for `127.0.0.1` and `localhost`, made once per process:
/// (certificate PEM, key PEM).
pub fn test_certificate() -> &'static (String, String) {
    static CERT: OnceLock<(String, String)> = OnceLock::new();
    CERT.get_or_init(|| {
        server::tls::generate_self_signed(&["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("test certificate")
    })
}

/// An HTTPS client that trusts [`test_certificate`] (TLS 1.3, as any current client).
#[must_use]
pub fn https_client() -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent("chartroom-testkit")
        .add_root_certificate(
            reqwest::Certificate::from_pem(test_certificate().0.as_bytes()).expect("cert"),
        )
        .build()
        .expect("client")
}

/// The real application served over HTTPS (TLS 1.3 only, as in production) on an ephemeral
/// loopback port.
#[derive(Debug)]
pub struct TestApp {
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// The injected clock.
    pub clock: ManualClock,
    /// The runtime store the app uses.
    pub store: Store,
    /// The session policy.
    pub sessions: SessionPolicy,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// The checkpoint directory the app reads (a fresh temporary directory).
    pub checkpoint_dir: PathBuf,
    /// The identity settings the app runs with (shared).
    pub identity: std::sync::Arc<server::identity::Identity>,
    /// The address served.
    pub addr: std::net::SocketAddr,
    /// The encrypted blob store the app writes (under `checkpoint_dir`), when the store has a
    /// keyring.
    pub blobs: Option<std::sync::Arc<store::crypto::BlobStore>>,
    handle: axum_server::Handle<std::net::SocketAddr>,
}

impl TestApp {
    /// Starts the app on `db`.
    pub async fn start(db: &TestDb) -> Self {
        Self::start_with(db.store().await).await
    }

    /// Starts the app on a given runtime store.
    pub async fn start_with(store: Store) -> Self {
        Self::start_configured(store, |_| {}).await
    }

    /// Starts the app on `store`, letting `configure` adjust the identity settings (throttle,
    /// policy) first.
    pub async fn start_configured(
        store: Store,
        configure: impl FnOnce(&mut server::identity::Identity),
    ) -> Self {
        Self::start_inner(
            store,
            configure,
            |app| app,
            server::assistant::Assistant::default(),
        )
        .await
    }

    /// Starts the app on `store` with the scribe's AI calls going through `assistant`
    /// (adapters for registered providers, the local default).
    pub async fn start_with_assistant(
        store: Store,
        assistant: server::assistant::Assistant,
    ) -> Self {
        Self::start_inner(store, |_| {}, |app| app, assistant).await
    }

    /// Starts the app on `store` with Web Push enabled as `push` says (the VAPID public key
    /// and the push services' hosts subscriptions may name).
    pub async fn start_with_push(store: Store, push: server::PushSettings) -> Self {
        Self::start_adjusted(
            store,
            |_| {},
            |app| app,
            server::assistant::Assistant::default(),
            move |mut s| {
                s.push = Some(std::sync::Arc::new(push));
                s
            },
        )
        .await
    }

    /// Starts the app on `store` with `extend` applied to its router first (to serve routes
    /// of the caller's own next to the real ones, e.g. the benchmark harness's baselines).
    pub async fn start_extended(
        store: Store,
        configure: impl FnOnce(&mut server::identity::Identity),
        extend: impl FnOnce(axum::Router) -> axum::Router,
    ) -> Self {
        Self::start_inner(
            store,
            configure,
            extend,
            server::assistant::Assistant::default(),
        )
        .await
    }

    #[allow(
        clippy::unused_async,
        reason = "spawns the server on the caller's runtime; async like the public constructors"
    )]
    async fn start_inner(
        store: Store,
        configure: impl FnOnce(&mut server::identity::Identity),
        extend: impl FnOnce(axum::Router) -> axum::Router,
        assistant: server::assistant::Assistant,
    ) -> Self {
        Self::start_adjusted(store, configure, extend, assistant, |s| s).await
    }

    /// Starts the app on `store` with `adjust` applied to its state (e.g. a payment
    /// processor pointed at a stand-in, Web Push settings) and `extend` to its router (e.g. a
    /// webhook route).
    #[allow(
        clippy::unused_async,
        reason = "spawns the server on the caller's runtime; async like the public constructors"
    )]
    pub async fn start_adjusted(
        store: Store,
        configure: impl FnOnce(&mut server::identity::Identity),
        extend: impl FnOnce(axum::Router) -> axum::Router,
        assistant: server::assistant::Assistant,
        adjust: impl FnOnce(server::AppState) -> server::AppState,
    ) -> Self {
        let clock = ManualClock::starting_now();
        let sessions = SessionPolicy::default();
        let checkpoint_dir = std::env::temp_dir().join(format!(
            "chartroom-test-cp-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let rp = server::identity::relying_party(&format!("https://localhost:{}", addr.port()))
            .expect("relying party");
        let mut identity = server::identity::Identity::new(Some(rp));
        configure(&mut identity);
        let identity = std::sync::Arc::new(identity);
        // Captured audio goes to a blob store in the app's temporary directory.
        let blobs = store.keyring().ok().map(|k| {
            std::sync::Arc::new(
                store::crypto::BlobStore::local(checkpoint_dir.join("blobs"), k.clone())
                    .expect("blob store"),
            )
        });
        let state = server::AppState {
            store: store.clone(),
            clock: std::sync::Arc::new(clock.clone()),
            sessions,
            passwords: server::password::Hasher::new(2).expect("hasher"),
            identity: identity.clone(),
            security_txt: Some(std::sync::Arc::from(server::render_security_txt(
                &["mailto:security@test.example.invalid".to_owned()],
                clock.now() + chrono::Duration::days(180),
                None,
            ))),
            checkpoints: Some(audit::store::DirStore::new(&checkpoint_dir).into()),
            assistant,
            blobs: blobs.clone(),
            subprocessors: std::sync::Arc::default(),
            payments: None,
            push: None,
            trust: std::sync::Arc::default(),
        };
        let state = adjust(state);
        let (cert, key) = test_certificate();
        let certs = vec![rustls_pem_cert(cert)];
        let key = rustls_pem_key(key);
        let config = server::tls::server_config(certs, key).expect("tls config");
        let handle = axum_server::Handle::new();
        let h = handle.clone();
        let app =
            extend(web::router(state.clone(), server::Limits::default()).merge(server::app(state)));
        tokio::spawn(async move {
            let _ = server::tls::serve_https(listener, config, app, h).await;
        });
        Self {
            base: format!("https://{addr}"),
            clock,
            store,
            sessions,
            http: https_client(),
            checkpoint_dir,
            identity,
            addr,
            blobs,
            handle,
        }
    }

    /// A full session token for `user` (password, then a second factor), created directly in
    /// the store (the sign-in routes have their own tests).
    pub async fn token(&self, user: UserId) -> String {
        new_session(&self.store, user, self.clock.now(), &self.sessions, true).await
    }

    /// A session token for `user` with a password only (no second factor yet).
    pub async fn password_only_token(&self, user: UserId) -> String {
        new_session(&self.store, user, self.clock.now(), &self.sessions, false).await
    }

    /// `base` + `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

fn rustls_pem_cert(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("cert pem")
}

fn rustls_pem_key(pem: &str) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("key pem")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.handle.shutdown();
        let _ = std::fs::remove_dir_all(&self.checkpoint_dir);
    }
}
