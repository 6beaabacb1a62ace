//! Logging setup: `tracing` to stderr, filtered by `TOLLGATE_LOG` (default
//! [`DEFAULT_FILTER`]); OpenTelemetry export over OTLP is in [`otlp`].

pub mod otlp;

/// The default filter of command-line runs. kube's client logs every failed
/// request at ERROR; Tollgate reports those failures itself, once.
pub const DEFAULT_FILTER: &str = "warn,kube_client::client::builder=off";

/// The default filter of services (`serve`, `audit --interval`).
pub const SERVICE_FILTER: &str = "info,kube_client::client::builder=off";

/// Install the stderr log subscriber (once).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
