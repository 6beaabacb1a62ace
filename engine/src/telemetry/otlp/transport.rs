//! The exporter of each signal on the transport its [`Target`] names:
//! OTLP/gRPC on tonic (TLS through tonic's rustls configuration), or
//! OTLP/HTTP with protobuf bodies on opentelemetry-http's hyper client over
//! a hyper-rustls connector.
//!
//! The SDK's batch processors and periodic reader export from threads of
//! their own, outside any tokio runtime, while the hyper client needs one:
//! [`OnRuntime`] runs each request on the exporters' runtime, and logs the
//! first failure with its cause.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{
    ExporterBuildError, LogExporter, MetricExporter, SpanExporter, WithExportConfig,
    WithHttpConfig, WithTonicConfig,
};
use tokio::runtime::Handle;

use super::config::{Protocol, Target};
use super::tls::{self, Tls};

/// Why a signal's exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TLS variables name unusable files.
    #[error(transparent)]
    Tls(#[from] tls::Error),
    /// The SDK refused the configuration (an invalid endpoint, say).
    #[error(transparent)]
    Build(#[from] ExporterBuildError),
}

/// Build the exporter of one signal: `$exporter` is the SDK exporter type.
macro_rules! exporter {
    ($exporter:ty, $target:expr, $runtime:expr) => {{
        let target: &Target = $target;
        Ok(match target.protocol {
            Protocol::Grpc => grpc(<$exporter>::builder().with_tonic(), target)?.build()?,
            Protocol::HttpProtobuf => {
                http(<$exporter>::builder().with_http(), target, $runtime)?.build()?
            }
        })
    }};
}

/// The span exporter of `target`.
pub fn spans(target: &Target, runtime: &Handle) -> Result<SpanExporter, Error> {
    exporter!(SpanExporter, target, runtime)
}

/// The metric exporter of `target`.
pub fn metrics(target: &Target, runtime: &Handle) -> Result<MetricExporter, Error> {
    exporter!(MetricExporter, target, runtime)
}

/// The log exporter of `target`.
pub fn logs(target: &Target, runtime: &Handle) -> Result<LogExporter, Error> {
    exporter!(LogExporter, target, runtime)
}

/// A gRPC builder with the target's TLS settings (the SDK reads the
/// endpoint, headers, timeout and compression).
fn grpc<B: WithTonicConfig>(builder: B, target: &Target) -> Result<B, tls::Error> {
    Ok(match &target.tls {
        Some(files) => builder.with_tls_config(Tls::load(files)?.tonic()),
        None => builder,
    })
}

/// An HTTP/protobuf builder with a hyper client for the target (the SDK
/// reads the endpoint, appending `/v1/<signal>` to the generic one, and the
/// headers, timeout and compression).
fn http<B: WithHttpConfig + WithExportConfig>(
    builder: B,
    target: &Target,
    runtime: &Handle,
) -> Result<B, tls::Error> {
    let builder = builder.with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
    Ok(match &target.tls {
        Some(files) => {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(Tls::load(files)?.rustls()?)
                .https_only()
                .enable_http1()
                .build();
            builder.with_http_client(OnRuntime::new(
                HyperClient::new(connector, target.timeout, None),
                runtime,
            ))
        }
        None => builder.with_http_client(OnRuntime::new(
            HyperClient::with_default_connector(target.timeout, None),
            runtime,
        )),
    })
}

/// An HTTP client whose requests run on the exporters' runtime, whatever
/// thread sends them.
#[derive(Debug)]
struct OnRuntime<C> {
    client: Arc<C>,
    runtime: Handle,
}

impl<C> OnRuntime<C> {
    fn new(client: C, runtime: &Handle) -> Self {
        OnRuntime {
            client: Arc::new(client),
            runtime: runtime.clone(),
        }
    }
}

impl<C: HttpClient + 'static> HttpClient for OnRuntime<C> {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let client = Arc::clone(&self.client);
        let uri = request.uri().clone();
        let sent = self
            .runtime
            .spawn(async move { client.send_bytes(request).await });
        Box::pin(async move {
            let result = sent.await.map_err(HttpError::from).and_then(|sent| sent);
            // The SDK reports a failed request without its cause (a refused
            // certificate, say): log the first one here.
            if let Err(e) = &result {
                super::log_failure_once(format_args!(
                    "OpenTelemetry export to {uri} failed: {}",
                    crate::error_text::one_line(e.as_ref())
                ));
            }
            result
        })
    }
}
