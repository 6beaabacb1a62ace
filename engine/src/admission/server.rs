//! [`run`]: the webhook server. It binds first (so `/healthz` answers while
//! policies compile), with `--cluster` waits for its watches of the cluster
//! to list everything once, loads the policy set in the background (`/readyz`
//! turns 200 when it is installed), watches the certificate and the policy
//! files, keeps the cluster view current from the watches,
//! and on SIGTERM or SIGINT stops accepting connections, lets in-flight
//! requests finish (up to a grace period), and returns. A second signal stops
//! at once.
//!
//! If the first policy set cannot be loaded, or the cluster cannot be watched,
//! the server stops and `run` returns the error: a webhook without policies
//! would only ever answer 503.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum_server::Handle;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::signal::unix::{SignalKind, signal};

use super::reload::{self, Source};
use super::{Config, State, router, socket, tls};
use crate::cluster::live::kinds::webhook_kinds;
use crate::cluster::live::watch::Watches;
use crate::cluster::{ClusterView, Snapshot};
use crate::evaluator::Evaluator;
use crate::wasm::{Runtime, RuntimeConfig};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] tls::Error),
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The WASM engine could not be set up.
    #[error(transparent)]
    Wasm(#[from] crate::wasm::Error),
    /// The evaluation threads could not be started.
    #[error("cannot start the evaluation threads")]
    Threads(#[source] std::io::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// The first policy set did not load.
    #[error("the policies could not be loaded")]
    Policies(#[source] reload::Error),
    /// The cluster could not be watched (`--cluster`).
    #[error("the cluster could not be watched: {0}")]
    Cluster(String),
    /// The server failed while serving.
    #[error("server error")]
    Serve(#[source] std::io::Error),
}

/// What to serve, and how.
pub struct Options {
    /// The address to listen on.
    pub addr: SocketAddr,
    /// The certificate and key.
    pub tls: tls::Files,
    /// The policy set's source.
    pub policies: Source,
    /// The cluster view policies read (until a watched cluster replaces it).
    pub cluster: Arc<dyn ClusterView>,
    /// A cluster to watch for the policies' lookups, instead of a fixed view.
    pub live: Option<Live>,
    /// How requests are answered.
    pub config: Config,
    /// How often the certificate and policy files are checked for changes;
    /// zero disables reloading.
    pub reload_interval: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
}

/// A cluster watched for the policies' lookups (`serve --cluster`).
pub struct Live {
    /// The API client.
    pub client: kube::Client,
    /// Objects per page of the watches' initial lists.
    pub page_size: u32,
    /// How often the cluster view is rebuilt when the watches saw changes.
    pub refresh: Duration,
}

/// Serve until SIGTERM or SIGINT.
///
/// # Errors
/// Unusable certificate, address in use, the first policy set failing to
/// load, or an I/O error of the listener.
pub async fn run(options: Options) -> Result<(), Error> {
    let Options {
        addr,
        tls: tls_files,
        policies,
        cluster,
        live,
        config,
        reload_interval,
        shutdown_grace,
    } = options;
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Signals)?;

    let tls_stamp = tls_files.stamp();
    let tls_config = RustlsConfig::from_config(tls::load(&tls_files)?);
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let runtime = Runtime::new(&RuntimeConfig {
        // The evaluations in flight (the pool's threads and one inline try),
        // a reload's load-time calls, and room for warm instances of every
        // policy.
        max_concurrent: super::state::instance_slots(config.max_concurrent.max(1)),
        ..RuntimeConfig::default()
    })?;
    let state = State::new(config, cluster).map_err(Error::Threads)?;
    let handle: Handle<SocketAddr> = Handle::new();
    let acceptor = RustlsAcceptor::new(tls_config.clone()).acceptor(socket::Accept);
    let server = axum_server::from_tcp(listener)
        .map_err(|source| Error::Bind { addr, source })?
        .acceptor(acceptor)
        .handle(handle.clone())
        .serve(router(state.clone()).into_make_service());
    tracing::info!(addr = %local, "listening");

    let mut tasks = Vec::new();
    if !reload_interval.is_zero() {
        tasks.push(tokio::spawn(tls::watch(
            tls_files,
            tls_config,
            state.clone(),
            reload_interval,
            tls_stamp,
        )));
    }
    let (load_failed, mut load_failure) = tokio::sync::oneshot::channel();
    tasks.push(tokio::spawn(start(
        live,
        Arc::new(policies),
        runtime,
        state.clone(),
        reload_interval,
        handle.clone(),
        load_failed,
    )));
    tasks.push(tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutting down: draining in-flight requests"),
            _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutting down: draining in-flight requests"),
        }
        state.start_draining();
        handle.graceful_shutdown(Some(shutdown_grace));
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::warn!("second signal: stopping without waiting for in-flight requests");
        handle.shutdown();
    }));

    let served = server.await;
    for task in &tasks {
        task.abort();
    }
    if let Ok(e) = load_failure.try_recv() {
        return Err(e);
    }
    served.map_err(Error::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

/// Watch the cluster when asked (and keep following it), load the first
/// set, then watch for changes. If the cluster cannot be watched or the first
/// set fails, send the error on `failed` and stop the server.
async fn start(
    live: Option<Live>,
    source: Arc<Source>,
    runtime: Runtime,
    state: State,
    interval: Duration,
    handle: Handle<SocketAddr>,
    failed: tokio::sync::oneshot::Sender<Error>,
) {
    let fail = |e: Error| {
        tracing::error!("{e}");
        let _ = failed.send(e);
        handle.shutdown();
    };
    if let Some(live) = live {
        let started = Instant::now();
        let watches = Watches::start(&live.client, live.page_size, &webhook_kinds());
        if let Err(e) = watches.ready().await {
            return fail(Error::Cluster(e));
        }
        state.set_cluster(Arc::new(Snapshot::from_objects(watches.objects())));
        tracing::info!(
            events = watches.events(),
            ms = started.elapsed().as_millis() as u64,
            "cluster watches synced"
        );
        tokio::spawn(follow(watches, state.clone(), live.refresh));
    }
    let started = Instant::now();
    let (set, stamp) = match source.load_blocking(&runtime, state.cluster()).await {
        Ok(loaded) => loaded,
        Err(e) => return fail(Error::Policies(e)),
    };
    let names: Vec<&str> = set.policies().iter().map(|p| p.name.as_str()).collect();
    tracing::info!(
        policies = %names.join(","),
        ms = started.elapsed().as_millis() as u64,
        "policies loaded; ready"
    );
    state.install(Evaluator::new(set));
    if !interval.is_zero() && !source.watched().is_empty() {
        reload::watch(source, runtime, state, interval, stamp).await;
    }
}

/// Rebuild the cluster view from the watches every `refresh` in which they
/// saw events, and install it for new reviews. Never returns.
async fn follow(watches: Watches, state: State, refresh: Duration) {
    let mut seen = watches.events();
    loop {
        tokio::time::sleep(refresh).await;
        let events = watches.events();
        if events == seen {
            continue;
        }
        seen = events;
        let objects = watches.objects();
        let view = tokio::task::spawn_blocking(move || Snapshot::from_objects(objects)).await;
        match view {
            Ok(view) => state.set_cluster(Arc::new(view)),
            Err(e) => tracing::error!("cluster view not rebuilt: {e}"),
        }
    }
}
