//! `chartroom serve` and `chartroom demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use domain::SystemClock;
use server::jobs::Jobs;
use server::jobs::retention::Retention;
use server::jobs::sequencer::Sequencer;
use server::jobs::sweep::ExpiredChallenges;
use store::SessionPolicy;

use crate::db::Database;
use crate::services::Services;

/// Options of `serve`.
#[derive(Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// Address to listen on (HTTPS, TLS 1.3 only).
    #[arg(long, env = "CHARTROOM_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// TLS certificate chain (PEM). Without it (and --tls-key), a self-signed certificate is
    /// generated in the data directory on first start and its fingerprint printed.
    #[arg(long, env = "CHARTROOM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) for --tls-cert.
    #[arg(long, env = "CHARTROOM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Extra host names or addresses for the generated self-signed certificate.
    #[arg(long = "tls-name", value_name = "NAME")]
    pub tls_names: Vec<String>,

    /// Serve plain HTTP for a TLS-terminating reverse proxy on the same machine. Only on a
    /// loopback address; the client address is then taken from X-Forwarded-For.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub behind_proxy: bool,

    /// The origin users reach Chartroom at (for passkeys), e.g. `https://records.example.org`.
    /// Default: `https://localhost:<port>`.
    #[arg(long, env = "CHARTROOM_PUBLIC_ORIGIN")]
    pub public_origin: Option<String>,

    /// The origin of the links in messages to clients (manage, intake, pay), e.g.
    /// `https://book.example-dental.org`; the outbound scanner allows links to this host only.
    /// Default: the public origin.
    #[arg(long, env = "CHARTROOM_LINK_ORIGIN")]
    pub link_origin: Option<String>,

    /// A security contact for /.well-known/security.txt (RFC 9116): a `mailto:` or `https:` URI.
    /// Repeatable. Without one, security.txt is not served.
    #[arg(long = "security-contact", value_name = "URI")]
    pub security_contacts: Vec<String>,

    /// When security.txt expires, in days from start (RFC 9116 recommends less than a year).
    #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(u16).range(1..=365))]
    pub security_txt_days: u16,

    /// A security policy URL for security.txt.
    #[arg(long)]
    pub security_policy: Option<String>,

    /// Seed two synthetic demo practices on first start and print how to sign in.
    #[arg(long)]
    pub demo: bool,

    /// Minutes without a request after which a session ends.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u16).range(1..=120))]
    pub idle_timeout_minutes: u16,

    /// Patient lists and searches one member may make in 15 minutes; past it they wait, the
    /// refusal is audited and the owners alerted (req OPS-06).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub lookup_quota: u32,

    /// Record exports one member may make in 15 minutes (req OPS-06).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub export_quota: u32,

    /// Hours after sign-in after which a session ends, active or not.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=24))]
    pub session_lifetime_hours: u16,

    /// Run the audit sequencer this often (milliseconds): it gives queued audit events their
    /// place in the hash chain, so this bounds how long an event waits for it. The former
    /// name, --seal-interval-ms, is still accepted.
    #[arg(long, alias = "seal-interval-ms", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub sequence_interval_ms: u64,

    /// Write a signed audit checkpoint after this many new events in a practice… (Events
    /// sequenced since a practice's last checkpoint are what a database superuser could cut
    /// unnoticed; a clean shutdown checkpoints them all.)
    #[arg(long, default_value_t = server::checkpoint::DEFAULT_EVERY_EVENTS,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub checkpoint_every_events: u64,

    /// …or after this many seconds with new events, whichever comes first.
    #[arg(long, default_value_t = server::checkpoint::DEFAULT_EVERY_SECS,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub checkpoint_every_secs: u64,

    /// Database connections in the runtime pool.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub db_connections: u32,

    /// Most audit events of reads made durable in one transaction by the group-commit writer
    /// (a read's response waits until its event is durable).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub audit_batch_events: u32,

    /// Microseconds the group-commit writer waits for more reads' events after the first of a
    /// batch; 0 (the default) commits whatever queued while the previous batch was committing.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub audit_batch_wait_us: u64,

    /// Seconds a request may take before it is abandoned (a change it has not committed is
    /// rolled back) and answered 503 with the error code `TIMEOUT`.
    #[arg(long, env = "CHARTROOM_REQUEST_TIMEOUT_SECS",
          default_value_t = server::DEFAULT_REQUEST_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,

    /// The scribe's offline local transcription default.
    #[command(flatten)]
    pub scribe: crate::scribe_cmd::ScribeLocalArgs,

    /// A host the operator runs itself (a host name or IP address, e.g. `gpu1.internal`): an
    /// AI provider registered as self-hosted there is cleared by the provider gate, like one
    /// on loopback or a Unix socket. Repeatable; comma-separated in the environment.
    #[arg(
        long = "ai-self-hosted-host",
        env = "CHARTROOM_AI_SELF_HOSTED_HOSTS",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    pub ai_self_hosted_hosts: Vec<String>,

    /// The deployment's integrations (SMS, email, push, payments, geocoding): a TOML file, see
    /// `egress::registry`. Default: `<data dir>/integrations.toml` when it exists; without
    /// one, no messaging or payment vendor is called. A PHI-touching vendor without a signed
    /// BAA refuses the start.
    #[arg(long, env = "CHARTROOM_INTEGRATIONS", value_name = "FILE")]
    pub integrations: Option<PathBuf>,

    /// Days a newly added PHI-touching subprocessor is announced before it becomes active.
    #[arg(long, default_value_t = egress::registry::DEFAULT_NOTICE_DAYS,
          value_parser = clap::value_parser!(u16).range(0..=365))]
    pub subprocessor_notice_days: u16,

    /// The operator's own log sink for the audit log (req AUD-08): an OpenTelemetry
    /// collector's OTLP/HTTP logs endpoint (`http://127.0.0.1:4318/v1/logs`, or https on a
    /// host given with `--audit-sink-host`). Every sequenced audit event is sent, in order,
    /// at least once; while the sink is down the events wait in the log and requests are not
    /// slowed. Off by default.
    #[arg(long, env = "CHARTROOM_AUDIT_SINK", value_name = "URL")]
    pub audit_sink: Option<String>,

    /// A host the operator runs its log collector on (besides loopback). Repeatable;
    /// comma-separated in the environment.
    #[arg(
        long = "audit-sink-host",
        env = "CHARTROOM_AUDIT_SINK_HOSTS",
        value_delimiter = ',',
        value_name = "HOST",
        requires = "audit_sink"
    )]
    pub audit_sink_hosts: Vec<String>,

    /// The CA (PEM) that signed the sink's certificate: then the only one trusted for it.
    #[arg(
        long,
        env = "CHARTROOM_AUDIT_SINK_CA",
        value_name = "FILE",
        requires = "audit_sink"
    )]
    pub audit_sink_ca: Option<PathBuf>,

    /// The name the sink's delivery position is kept under: a new name sends every log again
    /// from its beginning (a new collector).
    #[arg(long, default_value = "otlp", requires = "audit_sink",
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub audit_sink_name: String,

    /// The evidence pack of this build (its directory, or its `evidence.json`, as
    /// `chartroom-evidence` wrote it), published on the trust page (`/trust`, `/trust.json`).
    /// Its signature is checked against the key beside it; a pack that fails the check
    /// refuses the start. Without one, the trust page says that no evidence is loaded.
    #[arg(long, env = "CHARTROOM_EVIDENCE_PACK", value_name = "PATH")]
    pub evidence_pack: Option<PathBuf>,
}

/// Waits for a stop signal or, on the embedded cluster, for the database to exit. Returns why,
/// and the reason again when the database died under us: the stop is then a failure
/// (non-zero exit), so a service manager restarts Chartroom, and so its database.
async fn wait_for_stop(
    cluster: Option<&mut pgcluster::Cluster>,
    stop_signal: impl std::future::Future<Output = &'static str>,
) -> (String, Option<String>) {
    match cluster {
        Some(cluster) => tokio::select! {
            s = stop_signal => (s.to_owned(), None),
            r = cluster.exited() => {
                let why = format!("embedded PostgreSQL exited unexpectedly ({r:?})");
                tracing::error!(target: "chartroom::alert", reason = %why, "the database stopped: shutting down");
                (why.clone(), Some(why))
            }
        },
        None => (stop_signal.await.to_owned(), None),
    }
}

/// The group-commit writer's bounds from the command line.
fn group_commit(args: &ServeArgs) -> store::group_commit::GroupCommit {
    store::group_commit::GroupCommit {
        max_batch_events: args.audit_batch_events as usize,
        max_wait: Duration::from_micros(args.audit_batch_wait_us),
        ..store::group_commit::GroupCommit::default()
    }
}

/// Waits for SIGINT or SIGTERM. The handlers are installed when this is called, not when it
/// is first awaited: a signal that arrives once the server is up always means a clean stop
/// (with its last audit checkpoint), never the default action of killing the process.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    })
}

/// Runs the server until SIGINT/SIGTERM (or until the embedded PostgreSQL dies).
#[expect(
    clippy::too_many_lines,
    reason = "the start-up in order: database, keys, registry, providers, state, jobs, listener"
)]
pub(crate) async fn run(svc: &Services, args: ServeArgs, demo: bool) -> anyhow::Result<()> {
    let g = svc.global();
    Database::check_external(g)?;
    let (operator_hosts, integrations) = preflight(&args, &g.data_dir)?;
    let audit_sink = audit_sink(&args)?;
    // The local transcription default (on first use, unless `--scribe-local on`). Hand
    // `scribe_local.handle()` to the transcription job: its provider is `wait_ready`'s posture.
    let scribe_local = crate::scribe_cmd::start_local(&args.scribe, &g.data_dir)?;
    let mut db = Database::for_serve(g).await?;
    let owner = db.migrate().await?;
    let owner = crate::startup::prepare_owner(svc, &db, owner).await?;
    let seeded = if demo || args.demo {
        Some(crate::demo::seed_once(owner.as_ref(), &g.data_dir).await?)
    } else {
        None
    };
    let stop_signal = shutdown_signal()?;
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    if let Some(seeded) = &seeded {
        let scheme = if args.behind_proxy { "http" } else { "https" };
        crate::demo::print(seeded, &g.data_dir, &format!("{scheme}://{addr}"));
    }
    let origin = args
        .public_origin
        .clone()
        .unwrap_or_else(|| format!("https://localhost:{}", addr.port()));
    let identity = identity(
        &origin,
        args.behind_proxy,
        server::identity::QuotaConfig {
            lookups: args.lookup_quota,
            exports: args.export_quota,
            ..server::identity::QuotaConfig::default()
        },
    )?;
    let store = db
        .runtime_store(args.db_connections)
        .await?
        .with_group_commit(group_commit(&args))
        .with_keyring(svc.keyring(db.runtime.clone()).await?);
    crate::startup::prepare_runtime(svc, &store).await;
    let subprocessors = crate::subprocessors::record(
        &store,
        owner.as_ref(),
        integrations,
        args.subprocessor_notice_days,
        &origin,
        domain::Clock::now(&SystemClock),
    )
    .await?;
    let web_push = crate::outbox_wiring::web_push(
        &store,
        &subprocessors.registry,
        domain::Clock::now(&SystemClock),
        &origin,
        Arc::new(SystemClock),
    )
    .await?;
    let (push_settings, push_sender) = match web_push {
        Some((settings, sender)) => (Some(Arc::new(settings)), Some(sender)),
        None => (None, None),
    };
    let parallel = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let link_origin = args.link_origin.as_deref().unwrap_or(&origin);
    let now = domain::Clock::now(&SystemClock);
    let (payments, hook) =
        crate::payments_wiring::for_serve(&subprocessors.registry, now, link_origin)?;
    let evidence_pack = match &args.evidence_pack {
        Some(path) => Some(
            server::trust::load_pack(path)
                .map_err(|e| anyhow::anyhow!("evidence pack {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let state = server::AppState {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        sessions: SessionPolicy {
            idle: chrono::Duration::minutes(i64::from(args.idle_timeout_minutes)),
            absolute: chrono::Duration::hours(i64::from(args.session_lifetime_hours)),
            ..SessionPolicy::default()
        },
        passwords: server::password::Hasher::new(parallel).map_err(anyhow::Error::msg)?,
        identity: Arc::new(identity),
        security_txt: (!args.security_contacts.is_empty()).then(|| {
            Arc::from(server::render_security_txt(
                &args.security_contacts,
                domain::Clock::now(&SystemClock)
                    + chrono::Duration::days(i64::from(args.security_txt_days)),
                args.security_policy.as_deref(),
            ))
        }),
        checkpoints: Some(svc.checkpoint_place()?),
        blobs: Some(Arc::new(svc.blob_store(store.keyring()?.clone())?)),
        assistant: assistant(scribe_local.as_ref(), operator_hosts)?,
        subprocessors: Arc::new(subprocessors),
        payments,
        push: push_settings,
        trust: Arc::new(server::trust::Trust::new(
            evidence_pack,
            Some(svc.signer()?.verifier_key()),
        )),
    };
    let checkpointer =
        svc.checkpointer(args.checkpoint_every_events, args.checkpoint_every_secs)?;
    tracing::info!(verifier_key = %checkpointer.signer.verifier_key(), "audit checkpoints are signed with this key");
    let (webhooks, outbox) =
        crate::outbox_wiring::wire(&state, owner.as_ref(), &origin, &args, push_sender)?;
    let stripe = crate::payments_wiring::webhook_routes(hook, owner.as_ref(), state.clock.clone());
    let webhooks = webhooks.merge(stripe);
    let jobs = start_jobs(
        &args,
        &store,
        owner,
        checkpointer,
        &state,
        outbox,
        audit_sink,
    );
    let limits = server::Limits {
        request_timeout: Duration::from_secs(args.request_timeout_secs),
    };
    // The web app's pages beside the API, and the providers' webhooks when one is configured.
    let app = web::router(state.clone(), limits).merge(server::app_with_limits(state, limits));
    let app = app.merge(webhooks);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = listen(svc, &args, listener, app, stop_rx)?;
    tracing::info!(%addr, "listening");
    if crate::inventory_cmd::clock_status().synchronized == "no" {
        tracing::warn!(
            "the host clock is not synchronized (NTP): audit times come from it; synchronize it (req AUD-04)"
        );
    }
    let (reason, database_died) = wait_for_stop(db.cluster.as_mut(), stop_signal).await;
    tracing::info!(%reason, "shutting down");
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(12), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server stopped with an error"),
        Ok(_) => {}
        Err(_) => tracing::warn!("connections still open after 10 s; closing anyway"),
    }
    // No request can add events from here on. The jobs stop in the reverse order of their
    // start: a retention run in progress finishes, then the sequencer sequences what is queued and
    // signs a checkpoint of every log that grew.
    for s in jobs.stop().await {
        if let Some((at, error)) = &s.last_error {
            tracing::warn!(job = s.name, passes = s.passes, failures = s.failures, %at, %error, "background job: last failure");
        }
    }
    if let Some(local) = scribe_local {
        local.stop().await;
    }
    store.close().await;
    db.shutdown().await?;
    if let Some(why) = database_died {
        anyhow::bail!("{why}: Chartroom stopped; start it again to restart the database");
    }
    println!("Chartroom stopped");
    Ok(())
}

/// Refuses bad settings before anything starts: transport, security contacts, the operator's
/// hosts, and the integrations file (a PHI-touching vendor without a signed BAA: no start).
fn preflight(
    args: &ServeArgs,
    data_dir: &std::path::Path,
) -> anyhow::Result<(
    server::assistant::OperatorHosts,
    egress::registry::Integrations,
)> {
    if args.behind_proxy && !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "--behind-proxy serves plain HTTP and is allowed on a loopback address only (got {})",
            args.listen
        );
    }
    // The intake form definitions are validated before anything is served.
    let forms = domain::intake::catalogue()?;
    tracing::info!(forms = forms.current().len(), "intake forms loaded");
    for c in &args.security_contacts {
        if !(c.starts_with("mailto:") || c.starts_with("https://")) {
            anyhow::bail!("--security-contact must be a mailto: or https: URI");
        }
    }
    let operator_hosts = operator_hosts(args)?;
    let integrations = crate::subprocessors::load(args.integrations.as_deref(), data_dir)?;
    Ok((operator_hosts, integrations))
}

/// The operator's own hosts for the provider gate (`--ai-self-hosted-host`), checked.
fn operator_hosts(args: &ServeArgs) -> anyhow::Result<server::assistant::OperatorHosts> {
    server::assistant::OperatorHosts::new(&args.ai_self_hosted_hosts)
        .map_err(|e| anyhow::anyhow!("--ai-self-hosted-host: {e}"))
}

/// The scribe's AI calls: the registry's adapters, the supervised local Whisper as the
/// transcription default when it runs, and the operator's own hosts for the gate.
fn assistant(
    scribe_local: Option<&egress::local::LocalWhisper>,
    operator_hosts: server::assistant::OperatorHosts,
) -> anyhow::Result<server::assistant::Assistant> {
    Ok(server::assistant::Assistant {
        operator_hosts,
        adapters: Arc::new(server::assistant::EgressAdapters::default()),
        local_transcription: match scribe_local {
            Some(l) => Some(
                server::assistant::LocalTranscription::supervised(l.handle())
                    .map_err(|e| anyhow::anyhow!("the local transcription adapter: {e}"))?,
            ),
            None => None,
        },
    })
}

/// Starts the background jobs of `serve`, in the order they depend on each other: the
/// sequencer first (it sequences and checkpoints the events the others append, so it stops
/// last), the passkey-challenge sweep, and — on the owner role's store when there is one — the
/// scribe's transcription of uploaded audio chunks, the daily retention run and the incident
/// clock alerts.
fn start_jobs(
    args: &ServeArgs,
    store: &store::Store,
    owner: Option<store::OwnerStore>,
    checkpointer: server::checkpoint::Checkpointer,
    state: &server::AppState,
    outbox: Option<crate::outbox_wiring::OutboxParts>,
    audit_sink: Option<egress::audit_sink::AuditSink>,
) -> Jobs {
    let (clock, blobs) = (state.clock.clone(), state.blobs.clone());
    let sequence_interval = Duration::from_millis(args.sequence_interval_ms);
    // Several servers may share the database: each job runs on the one holding its lease.
    let mut jobs = Jobs::new(clock).with_leases(store.leases());
    jobs.start(Sequencer::new(
        store.clone(),
        sequence_interval,
        Some(checkpointer),
    ));
    // Swept as often as before, when it ran with the sequencing pass.
    jobs.start(ExpiredChallenges::new(store.clone(), sequence_interval));
    if let Some(sink) = audit_sink {
        jobs.start(server::jobs::forward::Forward::new(
            store.clone(),
            sink,
            args.audit_sink_name.clone(),
            Duration::from_secs(1),
        ));
    }
    if let Some(owner) = owner {
        // Started after retention, so it stops first (retention closes the owner's pool).
        let capture = blobs
            .clone()
            .map(|b| server::jobs::capture::CaptureJobs::new(owner.clone(), b));
        let transcription = blobs.map(|b| {
            server::jobs::transcription::Transcription::new(
                owner.clone(),
                b,
                state.assistant.clone(),
            )
        });
        let alerts = server::jobs::incidents::job(owner.clone());
        let access_alerts = server::jobs::rights::access_job(owner.clone());
        let amendment_alerts = server::jobs::rights::amendment_job(owner.clone());
        let owner_for_outbox = owner.clone();
        jobs.start(Retention::daily(owner));
        jobs.start(alerts);
        jobs.start(access_alerts);
        jobs.start(amendment_alerts);
        jobs.start(server::jobs::payments::ExpiredHolds::new(
            owner_for_outbox.clone(),
            server::jobs::payments::EVERY,
        ));
        if let Some(payments) = state.payments.clone() {
            jobs.start(server::jobs::payments::FeesAndRefunds::new(
                owner_for_outbox.clone(),
                payments,
                server::jobs::payments::EVERY,
            ));
        }
        if let Some(c) = capture {
            jobs.start(c);
        }
        if let Some(t) = transcription {
            jobs.start(t);
        }
        if let Some((channels, own, origin)) = outbox {
            jobs.start(server::jobs::outbox::Outbox::new(
                owner_for_outbox,
                channels,
                origin,
                own,
                server::jobs::outbox::EVERY,
            ));
        } else {
            tracing::info!("no SMS, email or push integration: the outbox job is off");
        }
    } else {
        tracing::info!(
            "no owner role: the daily retention job is off (schedule `chartroom retention run`), and so are transcription and the incident clock alerts"
        );
    }
    jobs
}

/// The audit sink of `--audit-sink`, checked before anything starts: not the operator's own
/// host, a bad CA file or a bad sink name refuses the start.
fn audit_sink(args: &ServeArgs) -> anyhow::Result<Option<egress::audit_sink::AuditSink>> {
    let Some(endpoint) = &args.audit_sink else {
        return Ok(None);
    };
    anyhow::ensure!(
        store::forward::sink_ok(&args.audit_sink_name),
        "--audit-sink-name: lowercase letters, digits and . _ : - (at most 128, not starting with a sign)"
    );
    let ca_pem = match &args.audit_sink_ca {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("--audit-sink-ca {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let sink = egress::audit_sink::AuditSink::new(&egress::audit_sink::SinkConfig {
        endpoint: endpoint.clone(),
        operator_hosts: args.audit_sink_hosts.clone(),
        ca_pem,
        timeout: Duration::from_secs(10),
    })
    .map_err(|e| anyhow::anyhow!("--audit-sink: {e}"))?;
    tracing::info!(sink = %args.audit_sink_name, "the audit log is forwarded to the operator's log sink");
    Ok(Some(sink))
}

/// Starts serving `app` on `listener`: HTTPS (TLS 1.3) with the configured or the generated
/// self-signed certificate, or plain HTTP on loopback with `--behind-proxy`. Stops gracefully
/// when `stop` changes.
fn listen(
    svc: &Services,
    args: &ServeArgs,
    listener: std::net::TcpListener,
    app: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let addr = listener.local_addr()?;
    if args.behind_proxy {
        tracing::warn!(%addr, "serving plain HTTP for a reverse proxy on loopback (--behind-proxy): the proxy must terminate TLS 1.3");
        println!("Chartroom listening on http://{addr} (behind a proxy)");
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        return Ok(tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await
        }));
    }
    let (certs, key) = if let (Some(c), Some(k)) = (&args.tls_cert, &args.tls_key) {
        server::tls::load_pem(c, k)?
    } else {
        let dir = svc.secrets_dir()?;
        let (certs, key, created) = server::tls::self_signed_in(&dir, &args.tls_names)?;
        let fp = certs
            .first()
            .map(server::tls::fingerprint)
            .unwrap_or_default();
        println!(
            "TLS: {} self-signed certificate {} (SHA-256 {fp})",
            if created { "generated a" } else { "using the" },
            dir.join("tls-cert.pem").display()
        );
        (certs, key)
    };
    let config = server::tls::server_config(certs, key)?;
    println!("Chartroom listening on https://{addr}");
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        let _ = stop.changed().await;
        h.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    Ok(tokio::spawn(async move {
        server::tls::serve_https(listener, config, app, handle).await
    }))
}

/// The identity settings: the passkey relying party for `origin`. (TOTP secrets and the
/// lookup-tag key are installation secrets under the key provider: `keys_cmd`.)
fn identity(
    origin: &str,
    behind_proxy: bool,
    quotas: server::identity::QuotaConfig,
) -> anyhow::Result<server::identity::Identity> {
    let webauthn = server::identity::relying_party(origin)
        .map_err(|e| anyhow::anyhow!("passkeys: the public origin {origin} is not usable: {e}"))?;
    let mut id = server::identity::Identity::new(Some(webauthn));
    id.trust_forwarded_for = behind_proxy;
    id.quotas = server::identity::Quotas::new(quotas);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser};

    use super::ServeArgs;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    // The sequencer's interval is `--sequence-interval-ms`; `--seal-interval-ms`, its former
    // name, still works in operators' scripts but is not listed as a flag of its own.
    #[test]
    fn the_sequence_interval_keeps_its_former_name_as_a_hidden_alias() {
        for flag in ["--sequence-interval-ms", "--seal-interval-ms"] {
            let serve = Serve::try_parse_from(["serve", flag, "500"]).unwrap();
            assert_eq!(serve.args.sequence_interval_ms, 500, "{flag}");
        }
        assert_eq!(
            Serve::try_parse_from(["serve"])
                .unwrap()
                .args
                .sequence_interval_ms,
            250
        );
        let cmd = Serve::command();
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some("sequence-interval-ms"))
            .unwrap();
        assert!(arg.get_visible_aliases().unwrap_or_default().is_empty());
        assert_eq!(arg.get_all_aliases(), Some(vec!["seal-interval-ms"]));
    }
}
