//! `chartroom serve` and `chartroom demo`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use domain::SystemClock;
use store::SessionPolicy;

use crate::Global;
use crate::db::Database;

/// Options of `serve`.
#[derive(Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// Address to listen on. Loopback by default; TLS termination is expected in front of it
    /// until Chartroom's own TLS listener is configured.
    #[arg(long, env = "CHARTROOM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Seed two synthetic demo practices on first start and print how to sign in.
    #[arg(long)]
    pub demo: bool,

    /// Minutes without a request after which a session ends.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u16).range(1..=120))]
    pub idle_timeout_minutes: u16,

    /// Hours after sign-in after which a session ends, active or not.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=24))]
    pub session_lifetime_hours: u16,

    /// Seal queued audit events this often (milliseconds): the bound on how long an event
    /// waits for its place in the hash chain.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub seal_interval_ms: u64,

    /// Write a signed audit checkpoint after this many new events in a practice…
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every_events: u64,

    /// …or after this many seconds, whichever comes first.
    #[arg(long, default_value_t = 60)]
    pub checkpoint_every_secs: u64,

    /// Database connections in the runtime pool.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub db_connections: u32,
}

async fn shutdown_signal() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = term => "SIGTERM",
    }
}

/// Runs the server until SIGINT/SIGTERM (or until the embedded PostgreSQL dies).
pub(crate) async fn run(g: &Global, args: ServeArgs, demo: bool) -> anyhow::Result<()> {
    let mut db = Database::for_serve(g).await?;
    let owner = db.migrate().await?;
    if demo || args.demo {
        let owner = owner
            .as_ref()
            .context("the demo needs the owner role to seed data: pass --owner-database-url")?;
        crate::demo::seed_and_print(owner, &g.data_dir).await?;
    }
    if let Some(o) = owner {
        o.close().await;
    }
    let store = db.runtime_store(args.db_connections).await?;
    let parallel = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let state = server::AppState {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        sessions: SessionPolicy {
            idle: chrono::Duration::minutes(i64::from(args.idle_timeout_minutes)),
            absolute: chrono::Duration::hours(i64::from(args.session_lifetime_hours)),
            ..SessionPolicy::default()
        },
        passwords: server::password::Hasher::new(parallel).map_err(anyhow::Error::msg)?,
        secure_cookies: !args.listen.ip().is_loopback(),
        checkpoints: Some(crate::audit_cmd::checkpoint_store(g)),
    };
    let checkpointer = crate::audit_cmd::checkpointer(
        g,
        args.checkpoint_every_events,
        args.checkpoint_every_secs,
    )?;
    tracing::info!(verifier_key = %checkpointer.signer.verifier_key(), "audit checkpoints are signed with this key");
    let (sealer, stop_sealer) = server::sealer::spawn(
        store.clone(),
        state.clock.clone(),
        Duration::from_millis(args.seal_interval_ms),
        Some(checkpointer),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving plain HTTP on a non-loopback address: put a TLS-terminating proxy in front");
    }
    println!("Chartroom listening on http://{addr}");
    tracing::info!(%addr, "listening");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, server::app(state))
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let reason = match db.cluster.as_mut() {
        Some(cluster) => tokio::select! {
            s = shutdown_signal() => s.to_owned(),
            r = cluster.exited() => format!("embedded PostgreSQL exited unexpectedly ({r:?})"),
        },
        None => shutdown_signal().await.to_owned(),
    };
    tracing::info!(%reason, "shutting down");
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server stopped with an error"),
        Ok(_) => {}
        Err(_) => tracing::warn!("connections still open after 10 s; closing anyway"),
    }
    let _ = stop_sealer.send(());
    let _ = sealer.await;
    store.close().await;
    db.shutdown().await?;
    println!("Chartroom stopped");
    Ok(())
}
