//! What the standard OTLP environment variables ask for, per signal: whether
//! it is exported at all, over which protocol (`grpc` or `http/protobuf`),
//! whether the connection uses TLS, which certificate files the TLS variables
//! name, and the export timeout.
//!
//! Each per-signal variable (`OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_*`)
//! wins over its generic `OTEL_EXPORTER_OTLP_*` form, as the specification
//! says. Endpoints themselves are resolved by the SDK (the generic HTTP
//! endpoint gets `/v1/<signal>` appended, a per-signal one is used as is);
//! here they only decide whether a signal is on and whether it needs TLS.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The three OpenTelemetry signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric points.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// Every signal, in the order their warnings list them.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }

    /// The signal's name in messages.
    pub fn lower(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }
}

/// The OTLP transport of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`grpc`), the default.
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`).
    HttpProtobuf,
}

/// A variable and the file it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSetting {
    /// The variable that named the file.
    pub variable: String,
    /// The file.
    pub path: PathBuf,
}

/// The certificate files a TLS connection uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `OTEL_EXPORTER_OTLP_[<SIGNAL>_]CERTIFICATE`: the CA to verify the
    /// collector with, instead of the system's.
    pub ca: Option<FileSetting>,
    /// `OTEL_EXPORTER_OTLP_[<SIGNAL>_]CLIENT_CERTIFICATE`: the client's chain (mTLS).
    pub client_certificate: Option<FileSetting>,
    /// `OTEL_EXPORTER_OTLP_[<SIGNAL>_]CLIENT_KEY`: the client's key (mTLS).
    pub client_key: Option<FileSetting>,
}

/// How one signal is exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The transport.
    pub protocol: Protocol,
    /// The certificate files, when the connection uses TLS (an `https://`
    /// endpoint, or a gRPC endpoint without scheme and not insecure).
    pub tls: Option<TlsFiles>,
    /// The export timeout (`OTEL_EXPORTER_OTLP_[<SIGNAL>_]TIMEOUT`, 10 s by default).
    pub timeout: Duration,
}

/// The export timeout when no variable sets one (the specification's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to export, per signal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Traces, when exported.
    pub traces: Option<Target>,
    /// Metrics, when exported.
    pub metrics: Option<Target>,
    /// Logs, when exported.
    pub logs: Option<Target>,
}

impl Config {
    /// Read the standard variables through `env`. A protocol this build
    /// does not speak turns its signals off, with one warning per variable.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> (Config, Vec<String>) {
        let set = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        // The per-signal variable, else the generic one: (variable, value).
        let pick = |signal: Signal, suffix: &str| {
            [
                format!("OTEL_EXPORTER_OTLP_{}_{suffix}", signal.upper()),
                format!("OTEL_EXPORTER_OTLP_{suffix}"),
            ]
            .into_iter()
            .find_map(|var| set(&var).map(|value| (var, value)))
        };
        let mut config = Config::default();
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return (config, Vec::new());
        }
        let mut refused: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
        for signal in Signal::ALL {
            let Some((_, endpoint)) = pick(signal, "ENDPOINT") else {
                continue;
            };
            if set(&format!("OTEL_{}_EXPORTER", signal.upper())).is_some_and(|e| e == "none") {
                continue;
            }
            let protocol = match pick(signal, "PROTOCOL") {
                None => Protocol::Grpc,
                Some((_, p)) if p == "grpc" => Protocol::Grpc,
                Some((_, p)) if p == "http/protobuf" => Protocol::HttpProtobuf,
                Some(other) => {
                    refused.entry(other).or_default().push(signal.lower());
                    continue;
                }
            };
            let secure = match scheme(&endpoint) {
                Some(scheme) => scheme.eq_ignore_ascii_case("https"),
                // The specification's INSECURE rule: gRPC only, endpoints
                // without a scheme (the SDK applies the same rule).
                None => {
                    protocol == Protocol::Grpc
                        && !pick(signal, "INSECURE")
                            .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"))
                }
            };
            let file = |suffix: &str| {
                pick(signal, suffix).map(|(variable, path)| FileSetting {
                    variable,
                    path: PathBuf::from(path),
                })
            };
            let tls = secure.then(|| TlsFiles {
                ca: file("CERTIFICATE"),
                client_certificate: file("CLIENT_CERTIFICATE"),
                client_key: file("CLIENT_KEY"),
            });
            let timeout = pick(signal, "TIMEOUT")
                .and_then(|(_, ms)| ms.parse::<u64>().ok())
                .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
            let target = Some(Target {
                protocol,
                tls,
                timeout,
            });
            match signal {
                Signal::Traces => config.traces = target,
                Signal::Metrics => config.metrics = target,
                Signal::Logs => config.logs = target,
            }
        }
        let warnings = refused
            .into_iter()
            .map(|((var, protocol), signals)| {
                let why = if protocol == "http/json" {
                    "OTLP/HTTP with JSON bodies is not built in"
                } else {
                    "not an OTLP protocol"
                };
                format!(
                    "{var}={protocol}: {why} (set grpc, port 4317, or http/protobuf, port 4318); not exported: {}",
                    signals.join(", ")
                )
            })
            .collect();
        (config, warnings)
    }

    /// The signals being exported, with their targets.
    pub fn targets(&self) -> impl Iterator<Item = (Signal, &Target)> {
        [
            (Signal::Traces, &self.traces),
            (Signal::Metrics, &self.metrics),
            (Signal::Logs, &self.logs),
        ]
        .into_iter()
        .filter_map(|(signal, target)| target.as_ref().map(|t| (signal, t)))
    }

    /// Whether any signal is exported.
    pub fn any(&self) -> bool {
        self.targets().next().is_some()
    }
}

/// The scheme of `endpoint`, when it has one (`://` before any path).
fn scheme(endpoint: &str) -> Option<&str> {
    endpoint
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .filter(|scheme| !scheme.contains(['/', '?', '#']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_env(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    fn plain(protocol: Protocol) -> Option<Target> {
        Some(Target {
            protocol,
            tls: None,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert!(!config(&[]).0.any());
        assert!(
            !config(&[
                ("OTEL_SERVICE_NAME", "x"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", " ")
            ])
            .0
            .any()
        );
    }

    #[test]
    fn the_generic_endpoint_turns_every_signal_on_over_grpc() {
        let (c, warnings) = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
        assert_eq!(
            c,
            Config {
                traces: plain(Protocol::Grpc),
                metrics: plain(Protocol::Grpc),
                logs: plain(Protocol::Grpc),
            }
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn signal_endpoints_and_exporter_none_select_signals() {
        let (c, _) = config(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:4317",
            ),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://collector:4317"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ]);
        assert_eq!(
            c.targets().map(|(s, _)| s).collect::<Vec<_>>(),
            [Signal::Traces]
        );
        let (c, _) = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert!(!c.any());
    }

    #[test]
    fn the_protocol_is_chosen_per_signal() {
        let (c, warnings) = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.traces, plain(Protocol::HttpProtobuf));
        assert_eq!(c.metrics, plain(Protocol::Grpc));
        assert_eq!(c.logs, plain(Protocol::HttpProtobuf));
    }

    #[test]
    fn http_json_and_unknown_protocols_are_refused_with_one_warning_each() {
        let (c, warnings) = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "thrift"),
        ]);
        assert!(!c.any());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0]
                .starts_with("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=thrift: not an OTLP protocol")
        );
        assert!(warnings[0].ends_with("not exported: metrics"));
        assert!(
            warnings[1].starts_with("OTEL_EXPORTER_OTLP_PROTOCOL=http/json: OTLP/HTTP with JSON")
        );
        assert!(
            warnings[1].ends_with("not exported: traces, logs"),
            "{}",
            warnings[1]
        );
    }

    #[test]
    fn tls_files_apply_to_secure_endpoints_per_signal_variable_first() {
        let (c, _) = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
                "/etc/otel/logs-ca.pem",
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "/etc/otel/client.pem",
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/otel/client.key"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
        ]);
        let traces = c.traces.expect("traces");
        assert_eq!(traces.timeout, Duration::from_millis(2500));
        let tls = traces.tls.expect("https means TLS");
        assert_eq!(
            tls.ca,
            Some(FileSetting {
                variable: "OTEL_EXPORTER_OTLP_CERTIFICATE".into(),
                path: "/etc/otel/ca.pem".into()
            })
        );
        assert_eq!(
            tls.client_key.expect("a client key").variable,
            "OTEL_EXPORTER_OTLP_CLIENT_KEY"
        );
        let logs_ca = c.logs.and_then(|l| l.tls).and_then(|t| t.ca).expect("a CA");
        assert_eq!(logs_ca.variable, "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE");
        assert_eq!(c.metrics.expect("metrics").timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn insecure_only_decides_for_grpc_endpoints_without_a_scheme() {
        let tls = |vars: &[(&str, &str)]| config(vars).0.traces.expect("traces").tls.is_some();
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317");
        assert!(tls(&[endpoint]), "no scheme: TLS unless insecure");
        assert!(!tls(&[endpoint, ("OTEL_EXPORTER_OTLP_INSECURE", "true")]));
        assert!(!tls(&[
            endpoint,
            ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
            ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "TRUE")
        ]));
        let insecure = ("OTEL_EXPORTER_OTLP_INSECURE", "true");
        assert!(tls(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            insecure
        ]));
        assert!(!tls(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem")
        ]));
    }
}
