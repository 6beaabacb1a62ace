//! `tollgate serve`: the admission webhook over HTTPS (see
//! [`crate::admission`]). This file resolves the flags, sets up structured
//! JSON logs and the tokio runtime, and hands over to
//! [`crate::admission::server::run`].
//!
//! Exit codes: 0 after a graceful shutdown (SIGTERM/SIGINT), 2 when the
//! server cannot start (unusable certificate, address in use, policies that
//! do not load).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::common::{json_logs, parse_duration, use_logs_on_this_thread};
use crate::admission::reload::Source;
use crate::admission::server::{self, Live, Options};
use crate::admission::{Config, tls};
use crate::cluster::live::{Connect, DEFAULT_PAGE_SIZE};
use crate::cluster::{ClusterView, Empty};
use crate::decision::FailurePolicy;

/// Arguments of `tollgate serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// PEM certificate chain to serve; reloaded when the file changes.
    #[arg(long, value_name = "FILE", env = "TOLLGATE_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// PEM private key of the certificate; reloaded when the file changes.
    #[arg(long, value_name = "FILE", env = "TOLLGATE_TLS_KEY")]
    pub tls_key: PathBuf,
    /// Address to listen on (host:port).
    #[arg(long, default_value = "0.0.0.0:8443", env = "TOLLGATE_ADDR")]
    pub addr: String,
    /// Policies: .wasm components, CEL policy files, directories of them, or a
    /// bundled pack. Files and directories are reloaded when they change.
    #[arg(long = "policies", short = 'p', visible_alias = "policy", num_args = 1.., default_value = "autoscaler-isolation")]
    pub policies: Vec<String>,
    /// Policy settings (see `tollgate eval --help`); reloaded with the policies.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// A snapshot (file or directory of Kubernetes objects) used as the
    /// cluster view for lookups and node pools; read once at start.
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "cluster")]
    pub context: Option<PathBuf>,
    /// Watch the cluster (in-cluster service account, or `--kubeconfig`) for
    /// the policies' lookups: namespace labels, workloads, budgets, priority
    /// classes, node pools. Read-only; ready once everything is listed.
    #[arg(long)]
    pub cluster: bool,
    /// The kubeconfig for `--cluster` (default `$KUBECONFIG`, then
    /// `~/.kube/config`, then the in-cluster service account).
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// How often the watched cluster view is rebuilt when something changed.
    #[arg(long, default_value = "2s", value_parser = parse_duration, requires = "cluster")]
    pub cluster_refresh: Duration,
    /// Longest time to answer one review, waiting for an evaluation slot
    /// included; keep it below the webhook's timeoutSeconds (the API server's
    /// `?timeout=` shortens it further). Past it, --failure-policy answers.
    #[arg(long, default_value = "9s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// The answer when a review cannot be evaluated in time: `fail` denies,
    /// `ignore` allows with a warning.
    #[arg(long, value_enum, default_value_t = FailureMode::Fail)]
    pub failure_policy: FailureMode,
    /// Evaluation threads: reviews evaluated at the same time; others wait in
    /// a queue until their deadline. Default: one per CPU the process may use
    /// (its cgroup's CPU limit counts), at least two.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_concurrent: Option<u32>,
    /// Largest request body accepted, in bytes (the API server's limit is 3 MiB).
    #[arg(long, default_value_t = 3 << 20)]
    pub max_body_bytes: usize,
    /// How often the certificate and policy files are checked for changes (`0` disables reloading).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub reload_interval: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Threads serving HTTP (default: one per CPU). Evaluations run on a separate blocking pool.
    #[arg(long)]
    pub workers: Option<usize>,
}

/// `--failure-policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailureMode {
    /// Deny the request.
    Fail,
    /// Allow the request, with a warning.
    Ignore,
}

/// Run `tollgate serve` until SIGTERM or SIGINT.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // One process-wide provider; the server's own configuration names ring explicitly too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let logs = json_logs();
    tracing::dispatcher::with_default(&logs, || {
        let options = resolve(&args)?;
        // Dropped after the runtime: flushes what the last reviews exported.
        let _otlp = crate::telemetry::otlp::init();
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all().thread_name("tollgate-serve");
        if let Some(workers) = args.workers {
            builder.worker_threads(workers.max(1));
        }
        let thread_logs = logs.clone();
        builder.on_thread_start(move || use_logs_on_this_thread(&thread_logs));
        let runtime = builder.build().context("cannot start the async runtime")?;
        let result = runtime.block_on(async {
            let mut options = options;
            if args.cluster {
                let connect = Connect {
                    kubeconfig: args.kubeconfig.clone(),
                    context: None,
                };
                options.live = Some(Live {
                    client: connect.client().await?,
                    page_size: DEFAULT_PAGE_SIZE,
                    refresh: args.cluster_refresh,
                });
            }
            server::run(options).await.map_err(anyhow::Error::from)
        });
        runtime.shutdown_timeout(Duration::from_secs(2));
        result?;
        Ok(ExitCode::SUCCESS)
    })
}

fn resolve(args: &ServeArgs) -> anyhow::Result<Options> {
    let addr = resolve_addr(&args.addr)?;
    let cluster = load_context(args.context.as_deref())?;
    Ok(Options {
        addr,
        tls: tls::Files {
            cert: args.tls_cert.clone(),
            key: args.tls_key.clone(),
        },
        policies: Source {
            specs: args.policies.clone(),
            settings: args.settings.clone(),
        },
        cluster,
        live: None,
        config: Config {
            request_timeout: args.request_timeout,
            failure_policy: match args.failure_policy {
                FailureMode::Fail => FailurePolicy::Fail,
                FailureMode::Ignore => FailurePolicy::Ignore,
            },
            max_concurrent: args
                .max_concurrent
                .unwrap_or_else(crate::admission::state::default_threads),
            max_body_bytes: args.max_body_bytes,
            ..Config::default()
        },
        reload_interval: args.reload_interval,
        shutdown_grace: args.shutdown_grace,
    })
}

fn resolve_addr(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("--addr {addr}: expected host:port"))?
        .next()
        .with_context(|| format!("--addr {addr}: the host resolves to no address"))
}

/// The snapshot of `--context` (its load warnings logged), or the empty view.
fn load_context(context: Option<&Path>) -> anyhow::Result<Arc<dyn ClusterView>> {
    let Some(path) = context else {
        return Ok(Arc::new(Empty::default()));
    };
    // Warnings go to the structured log, not to stderr as in `eval`.
    let snapshot = super::common::load_snapshot(path, None)?;
    for warning in snapshot.warnings() {
        tracing::warn!("context: {warning}");
    }
    Ok(Arc::new(snapshot))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve(args: &[&str]) -> ServeArgs {
        let mut argv = vec![
            "tollgate",
            "serve",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("valid flags").command {
            Command::Serve(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let args = serve(&[]);
        assert_eq!(args.policies, ["autoscaler-isolation"]);
        assert_eq!(args.addr, "0.0.0.0:8443");
        assert_eq!(args.request_timeout, Duration::from_secs(9));
        assert_eq!(args.failure_policy, FailureMode::Fail);
        assert_eq!(
            args.max_concurrent, None,
            "one per CPU, worked out at start"
        );
        assert_eq!(args.max_body_bytes, 3 << 20);
        assert_eq!(args.reload_interval, Duration::from_secs(2));
    }

    #[test]
    fn policies_repeat_and_take_several_values() {
        let args = serve(&[
            "--policies",
            "a",
            "b",
            "--policy",
            "c",
            "--request-timeout",
            "250ms",
        ]);
        assert_eq!(args.policies, ["a", "b", "c"]);
        assert_eq!(args.request_timeout, Duration::from_millis(250));
    }

    #[test]
    fn certificate_and_key_are_required() {
        assert!(Cli::try_parse_from(["tollgate", "serve", "--tls-cert", "c.pem"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("9s"), Ok(Duration::from_secs(9)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
