//! `tollgate serve` through the real binary over real HTTPS: a self-signed
//! certificate made per test, the server on 127.0.0.1 with a port it picks
//! (read from its JSON "listening" log line), and a rustls client over hyper
//! (HTTP/1.1 and HTTP/2).
//!
//! Covered: Kubewarden's AdmissionReview samples (read in place) and reviews
//! around `kubectl create deployment` output; allow, deny, dryRun, UPDATE with
//! oldObject, DELETE, v1beta1; mutation with a JSON Patch that applies; bad
//! bodies; startup failures; certificate rotation; policy hot reload while
//! requests flow; the request deadline; SIGTERM under load (in-flight
//! requests complete, exit 0). Test policies are CEL files written per test,
//! and the `echo` and `infinite-loop` guests; the bundled pack is only
//! checked for pack-independent behaviour.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::{http1, http2};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};

use crate::otlp::{Collector, attributes as otlp_attributes};
use crate::util::{
    Guest, Sandbox, admission_review, external_dir, kubectl_deployment, tollgate, workspace,
};

// ---------------------------------------------------------------------------
// Certificates

/// A self-signed certificate for `localhost` and 127.0.0.1.
pub(crate) struct Cert {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Cert {
    pub(crate) fn new() -> Self {
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("generate a self-signed certificate");
        Cert {
            cert_pem: made.cert.pem(),
            key_pem: made.signing_key.serialize_pem(),
            der: made.cert.der().clone(),
        }
    }

    /// Write `tls/tls.crt` and `tls/tls.key` in `sandbox`, each replaced in
    /// one rename as a Secret volume update would.
    pub(crate) fn install(&self, sandbox: &Sandbox) -> (PathBuf, PathBuf) {
        let cert = replace(sandbox, "tls/tls.crt", self.cert_pem.as_bytes());
        let key = replace(sandbox, "tls/tls.key", self.key_pem.as_bytes());
        (cert, key)
    }
}

/// Write `relative` atomically (a temporary file outside its directory, then a rename).
fn replace(sandbox: &Sandbox, relative: &str, contents: &[u8]) -> PathBuf {
    let staged = sandbox.write(&format!("staging/{}", relative.replace('/', "_")), contents);
    let target = sandbox.path().join(relative);
    std::fs::create_dir_all(target.parent().expect("a parent")).expect("create dir");
    std::fs::rename(&staged, &target).expect("rename into place");
    target
}

// ---------------------------------------------------------------------------
// The server process

/// A running `tollgate serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Start the server with `cert` and `args`, and wait until it is ready.
    pub(crate) fn start(sandbox: &Sandbox, cert: &Cert, args: &[&str]) -> Server {
        let mut server = Self::spawn(sandbox, cert, args);
        server.wait_ready();
        server
    }

    /// Start the server and wait until it listens (not necessarily ready).
    pub(crate) fn spawn(sandbox: &Sandbox, cert: &Cert, args: &[&str]) -> Server {
        Self::spawn_with_env(sandbox, cert, args, &[])
    }

    /// [`Server::spawn`] with extra environment variables.
    fn spawn_with_env(
        sandbox: &Sandbox,
        cert: &Cert,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let (cert_path, key_path) = cert.install(sandbox);
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("serve")
            .arg("--tls-cert")
            .arg(&cert_path)
            .arg("--tls-key")
            .arg(&key_path)
            .args(["--addr", "127.0.0.1:0", "--reload-interval", "250ms"])
            .args(args)
            .env(
                "TOLLGATE_CACHE_DIR",
                workspace().join("target").join("integration-cache"),
            )
            .env_remove("TOLLGATE_LOG")
            .env_remove("RUST_BACKTRACE")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tollgate serve");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            logs,
        };
        let listening = server
            .wait_for_log(Duration::from_secs(60), |log| {
                log["fields"]["message"] == "listening"
            })
            .unwrap_or_else(|| {
                panic!(
                    "the server did not log \"listening\"; logs:\n{}",
                    server.log_text()
                )
            });
        server.addr = listening["fields"]["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("an addr field");
        server
    }

    /// Wait (bounded) until `/readyz` answers 200.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(240);
        let client = Client::new(self.addr, &[]);
        let runtime = runtime();
        loop {
            let status = runtime.block_on(async {
                let mut conn = client.connect_insecure().await.ok()?;
                conn.get("/readyz").await.ok().map(|(status, _)| status)
            });
            if status == Some(StatusCode::OK) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                panic!(
                    "the server exited ({status}) before it was ready; logs:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the server was not ready within 240 s; logs:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The log lines so far, parsed (every line must be a JSON object).
    fn logs(&self) -> Vec<Value> {
        self.logs
            .lock()
            .expect("log lock")
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"))
            })
            .collect()
    }

    pub(crate) fn log_text(&self) -> String {
        self.logs.lock().expect("log lock").join("\n")
    }

    /// Wait (bounded) for a log line matching `matches`.
    fn wait_for_log(&self, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.logs().into_iter().find(|l| matches(l)) {
                return Some(found);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send SIGTERM to the server (by its pid).
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Wait (bounded) for the process to exit.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {timeout:?}; logs:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client trusting `certs`.
    pub(crate) fn client(&self, certs: &[&Cert]) -> Client {
        Client::new(self.addr, certs)
    }

    /// An HTTP/1.1 connection trusting `cert`.
    pub(crate) async fn connect(&self, cert: &Cert) -> Conn {
        self.client(&[cert])
            .connect(Protocol::Http1)
            .await
            .expect("connect")
    }

    /// The current `/metrics` text.
    fn metrics(&self, cert: &Cert) -> String {
        let client = self.client(&[cert]);
        block_on(async {
            let mut conn = client.connect(Protocol::Http1).await.expect("connect");
            let (status, body) = conn.get("/metrics").await.expect("GET /metrics");
            assert_eq!(status, StatusCode::OK);
            String::from_utf8(body.to_vec()).expect("UTF-8")
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The HTTPS client

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
}

/// Connects to the server over TLS.
#[derive(Clone)]
pub(crate) struct Client {
    addr: SocketAddr,
    roots: Arc<RootCertStore>,
}

enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

/// One TLS connection.
pub(crate) struct Conn {
    sender: Sender,
    /// The certificate the server presented.
    peer: CertificateDer<'static>,
    /// The negotiated ALPN protocol.
    alpn: Option<Vec<u8>>,
}

impl Client {
    fn new(addr: SocketAddr, certs: &[&Cert]) -> Self {
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert.der.clone())
                .expect("add a trusted certificate");
        }
        Client {
            addr,
            roots: Arc::new(roots),
        }
    }

    fn config(&self, protocol: Protocol, verify: bool) -> ClientConfig {
        self.config_with(protocol, verify, rustls::DEFAULT_VERSIONS)
    }

    fn config_with(
        &self,
        protocol: Protocol,
        verify: bool,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions");
        let mut config = if verify {
            builder
                .with_root_certificates(self.roots.clone())
                .with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny))
                .with_no_client_auth()
        };
        config.alpn_protocols = match protocol {
            Protocol::Http1 => vec![b"http/1.1".to_vec()],
            Protocol::Http2 => vec![b"h2".to_vec()],
        };
        config
    }

    /// Connect, verifying the server against the trusted certificates.
    pub(crate) async fn connect(&self, protocol: Protocol) -> Result<Conn, String> {
        self.open(self.config(protocol, true), protocol).await
    }

    /// Connect with TLS 1.2 only.
    async fn connect_tls12(&self) -> Result<Conn, String> {
        self.open(
            self.config_with(Protocol::Http1, true, &[&rustls::version::TLS12]),
            Protocol::Http1,
        )
        .await
    }

    /// Connect without verifying (readiness probing before a test's checks).
    async fn connect_insecure(&self) -> Result<Conn, String> {
        self.open(self.config(Protocol::Http1, false), Protocol::Http1)
            .await
    }

    async fn open(&self, config: ClientConfig, protocol: Protocol) -> Result<Conn, String> {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").expect("a DNS name");
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (_, session) = tls.get_ref();
        let peer = session
            .peer_certificates()
            .and_then(|c| c.first())
            .cloned()
            .ok_or("no peer certificate")?;
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(tls);
        let sender = match protocol {
            Protocol::Http1 => {
                let (sender, connection) = http1::handshake(io)
                    .await
                    .map_err(|e| format!("HTTP/1.1: {e}"))?;
                tokio::spawn(connection);
                Sender::Http1(sender)
            }
            Protocol::Http2 => {
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("HTTP/2: {e}"))?;
                tokio::spawn(connection);
                Sender::Http2(sender)
            }
        };
        Ok(Conn { sender, peer, alpn })
    }
}

impl Conn {
    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        let response = match &mut self.sender {
            Sender::Http1(sender) => {
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(request).await
            }
            Sender::Http2(sender) => {
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(request).await
            }
        }
        .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, body))
    }

    fn request(&self, method: &str, path: &str) -> hyper::http::request::Builder {
        match self.sender {
            Sender::Http1(_) => Request::builder()
                .method(method)
                .uri(path)
                .header("host", "localhost"),
            Sender::Http2(_) => Request::builder()
                .method(method)
                .uri(format!("https://localhost{path}")),
        }
    }

    async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes), String> {
        let request = self
            .request("GET", path)
            .body(Full::new(Bytes::new()))
            .expect("request");
        self.send(request).await
    }

    async fn post_raw(
        &mut self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), String> {
        let request = self
            .request("POST", path)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        self.send(request).await
    }

    /// POST an AdmissionReview and return the `response` of the 200 answer,
    /// after checking the envelope echoes the request's apiVersion and uid.
    pub(crate) async fn review(&mut self, path: &str, review: &Value) -> Value {
        let (status, body) = self
            .post_raw(path, "application/json", review.to_string().into_bytes())
            .await
            .expect("POST a review");
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::OK, "{text}");
        let answer: Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        assert_eq!(answer["apiVersion"], review["apiVersion"], "{answer}");
        assert_eq!(answer["kind"], "AdmissionReview", "{answer}");
        assert_eq!(
            answer["response"]["uid"], review["request"]["uid"],
            "{answer}"
        );
        answer["response"].clone()
    }
}

/// Accepts any server certificate (readiness probes only).
#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// ---------------------------------------------------------------------------
// Test material

fn with_replicas(mut deployment: Value, replicas: i64) -> Value {
    deployment["spec"]["replicas"] = json!(replicas);
    deployment
}

/// A Kubewarden sample, read in place.
fn kubewarden(relative: &str) -> Value {
    let path = external_dir().join("kubewarden").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A bare AdmissionRequest in an AdmissionReview envelope of `api_version`.
fn envelope(api_version: &str, request: Value) -> Value {
    json!({"apiVersion": api_version, "kind": "AdmissionReview", "request": request})
}

/// The CEL policy `replica-limit`: Deployments have at most `max` replicas.
fn replica_limit(max: u32) -> String {
    format!(
        "  kinds: [Deployment]\n  matchConditions:\n    - name: has-object\n      expression: \"object != null\"\n  validations:\n    - rule: too-many-replicas\n      expression: \"!has(object.spec.replicas) || object.spec.replicas <= {max}\"\n      message: at most {max} replicas\n"
    )
}

/// Write the test policies: no privileged Pods, at most 3 replicas, and no
/// scaling down on UPDATE (which needs oldObject).
fn write_policies(sandbox: &Sandbox) -> PathBuf {
    sandbox.write_cel_policy(
        "policies/no-privileged",
        "  kinds: [Pod]\n  validations:\n    - rule: privileged-container\n      expression: \"!pod.spec.containers.exists(c, has(c.securityContext) && has(c.securityContext.privileged) && c.securityContext.privileged)\"\n      message: privileged containers are not allowed\n",
    );
    sandbox.write_cel_policy("policies/replica-limit", &replica_limit(3));
    sandbox.write_cel_policy(
        "policies/no-scale-down",
        "  kinds: [Deployment]\n  matchConditions:\n    - name: update\n      expression: \"request.operation == 'UPDATE'\"\n  validations:\n    - rule: scale-down\n      expression: \"!has(oldObject.spec.replicas) || !has(object.spec.replicas) || object.spec.replicas >= oldObject.spec.replicas\"\n      message: replicas may not decrease here\n",
    );
    sandbox.path().join("policies")
}

/// The JSON Patch of a /mutate response (base64 in `patch`).
fn patch_of(response: &Value) -> json_patch::Patch {
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("a base64 patch"))
        .expect("valid base64");
    serde_json::from_slice(&patch).expect("a JSON Patch")
}

pub(crate) fn message(response: &Value) -> String {
    response["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn assert_denied(response: &Value, mentions: &[&str]) {
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 403, "{response}");
    let message = message(response);
    for needle in mentions {
        assert!(
            message.contains(needle),
            "denial message {message:?} does not mention {needle:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn judges_kubewarden_samples_and_kubectl_reviews_over_https() {
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    let policies = write_policies(&sandbox);
    let server = Server::start(
        &sandbox,
        &cert,
        &["--policies", &policies.display().to_string()],
    );
    let client = server.client(&[&cert]);
    let deployment = kubectl_deployment();
    block_on(async {
        let mut conn = client.connect(Protocol::Http1).await.expect("connect");
        assert_eq!(conn.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(conn.peer, cert.der);

        // Kubewarden's full AdmissionReview v1 samples, as they are.
        let privileged = kubewarden("kwctl/tests/data/privileged-pod-admission-review.json");
        let response = conn.review("/validate", &privileged).await;
        assert_denied(
            &response,
            &[
                "no-privileged",
                "privileged-container",
                "privileged containers are not allowed",
            ],
        );
        let unprivileged = kubewarden("kwctl/tests/data/unprivileged-pod-admission-review.json");
        assert_eq!(
            conn.review("/validate", &unprivileged).await["allowed"],
            true
        );

        // The bare AdmissionRequest samples, in a v1beta1 envelope.
        let beta = envelope(
            "admission.k8s.io/v1beta1",
            kubewarden("kwctl/tests/data/privileged-pod.json"),
        );
        assert_denied(&conn.review("/validate", &beta).await, &["no-privileged"]);
        let many = envelope(
            "admission.k8s.io/v1",
            kubewarden("policies/policies/cel-policy/test_data/deployment_gt_max_replicas.json"),
        );
        assert_denied(
            &conn.review("/validate", &many).await,
            &["replica-limit", "too-many-replicas", "at most 3 replicas"],
        );
        let three = envelope(
            "admission.k8s.io/v1",
            kubewarden("policy-evaluator/tests/data/app_deployment.json"),
        );
        assert_eq!(conn.review("/validate", &three).await["allowed"], true);

        // kubectl's Deployment: CREATE, dryRun, UPDATE with oldObject, DELETE.
        let create = admission_review("uid-create", "CREATE", "default", deployment.clone(), None);
        let response = conn.review("/validate", &create).await;
        assert_eq!(response["allowed"], true, "{response}");
        assert!(response.get("patch").is_none());
        let too_many = admission_review(
            "uid-10",
            "CREATE",
            "default",
            with_replicas(deployment.clone(), 10),
            None,
        );
        assert_denied(
            &conn.review("/validate", &too_many).await,
            &["replica-limit", "too-many-replicas"],
        );
        let mut dry_run = too_many.clone();
        dry_run["request"]["dryRun"] = json!(true);
        dry_run["request"]["uid"] = json!("uid-dry-run");
        assert_denied(
            &conn.review("/validate", &dry_run).await,
            &["replica-limit"],
        );
        let shrink = admission_review(
            "uid-shrink",
            "UPDATE",
            "default",
            with_replicas(deployment.clone(), 2),
            Some(with_replicas(deployment.clone(), 3)),
        );
        assert_denied(
            &conn.review("/validate", &shrink).await,
            &["no-scale-down", "scale-down"],
        );
        let grow = admission_review(
            "uid-grow",
            "UPDATE",
            "default",
            with_replicas(deployment.clone(), 3),
            Some(with_replicas(deployment.clone(), 2)),
        );
        assert_eq!(conn.review("/validate", &grow).await["allowed"], true);
        let delete = admission_review(
            "uid-delete",
            "DELETE",
            "default",
            Value::Null,
            Some(deployment.clone()),
        );
        assert_eq!(conn.review("/validate", &delete).await["allowed"], true);

        // TLS 1.2 is accepted too.
        let mut tls12 = client.connect_tls12().await.expect("connect with TLS 1.2");
        assert_eq!(tls12.review("/validate", &create).await["allowed"], true);

        // The same over HTTP/2.
        let mut h2 = client
            .connect(Protocol::Http2)
            .await
            .expect("connect with h2");
        assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
        assert_denied(&h2.review("/validate", &too_many).await, &["replica-limit"]);
        assert_eq!(h2.review("/mutate", &create).await["allowed"], true);
    });
    let metrics = server.metrics(&cert);
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "tollgate_admission_requests_total{endpoint=\"validate\",outcome=\"denied\"} "
        )),
        "{metrics}"
    );
    assert!(metrics.contains("tollgate_policies_loaded 3"), "{metrics}");
    let logs = server.logs();
    assert!(
        logs.iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string()),
        "structured logs: {logs:?}"
    );
}

/// A ValidatingAdmissionPolicy loaded unchanged, with its binding and params
/// from `--context`, judges over HTTPS as `tollgate eval` does, and a
/// MutatingAdmissionPolicy next to it patches on /mutate
/// (tests/native_policies.rs).
#[test]
fn native_admission_policies_judge_and_mutate_over_https() {
    use crate::native_policies::{
        CLUSTER, MAP, REPLICA_LIMIT_VAP, deployment, replica_limit_binding,
    };
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    sandbox.write("policies/vap.yaml", REPLICA_LIMIT_VAP);
    sandbox.write("policies/map.yaml", MAP);
    let policy = sandbox.path().join("policies");
    sandbox.write("cluster/objects.yaml", CLUSTER);
    sandbox.write("cluster/binding.yaml", replica_limit_binding("[Deny]"));
    let server = Server::start(
        &sandbox,
        &cert,
        &[
            "--policies",
            &policy.display().to_string(),
            "--context",
            &sandbox.path().join("cluster").display().to_string(),
        ],
    );
    block_on(async {
        let mut conn = server.connect(&cert).await;
        let create = |uid: &str, namespace: &str, replicas: i64| {
            let object = deployment(namespace, "web", replicas);
            admission_review(uid, "CREATE", namespace, object, None)
        };
        let denied = conn
            .review("/validate", &create("uid-vap-1", "prod", 5))
            .await;
        assert_denied(&denied, &["replica-limit", "at most 3 replicas, got 5"]);
        assert_eq!(
            denied["auditAnnotations"]["replica-limit.replicas"], "5",
            "the policy's audit annotation: {denied}"
        );
        let small = conn
            .review("/validate", &create("uid-vap-2", "prod", 3))
            .await;
        assert_eq!(small["allowed"], true, "{small}");
        let elsewhere = conn
            .review("/validate", &create("uid-vap-3", "dev", 5))
            .await;
        assert_eq!(
            elsewhere["allowed"], true,
            "the binding selects namespaces labelled env=prod only"
        );
        let object = deployment("dev", "web", 1);
        let mutated = conn.review("/mutate", &create("uid-map-1", "dev", 1)).await;
        assert_eq!(mutated["patchType"], "JSONPatch", "{mutated}");
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &patch_of(&mutated)).expect("the patch applies");
        assert_eq!(
            patched["metadata"]["labels"]["example.com/team"],
            "platform"
        );
        assert_eq!(
            patched["metadata"]["annotations"]["example.com/stamped"],
            "true"
        );
    });
}

#[test]
fn mutate_answers_with_a_json_patch_that_applies() {
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    let settings = sandbox.write_json("echo-settings.json", &json!({"allow": true, "patch": true}));
    let echo = Guest::Echo.arg();
    let server = Server::start(
        &sandbox,
        &cert,
        &[
            "--policies",
            &echo,
            "--settings",
            &settings.display().to_string(),
        ],
    );
    let deployment = kubectl_deployment();
    let review = admission_review("uid-mutate", "CREATE", "default", deployment.clone(), None);
    block_on(async {
        let mut conn = server.connect(&cert).await;
        let response = conn.review("/mutate", &review).await;
        assert_eq!(response["allowed"], true, "{response}");
        assert_eq!(response["patchType"], "JSONPatch", "{response}");
        let mut object = deployment.clone();
        json_patch::patch(&mut object, &patch_of(&response))
            .expect("the patch applies to the request's object");
        assert_eq!(
            object["metadata"]["annotations"]["tollgate.dev/echo"],
            "seen"
        );
        let warnings = response["warnings"]
            .as_array()
            .expect("echo's facts come back as warnings");
        assert!(
            warnings.iter().any(|w| w == "seen-request-uid: uid-mutate"),
            "{warnings:?}"
        );

        let validated = conn.review("/validate", &review).await;
        assert_eq!(validated["allowed"], true);
        assert!(
            validated.get("patch").is_none() && validated.get("patchType").is_none(),
            "{validated}"
        );
    });
}

#[test]
fn bad_requests_get_clear_4xx_answers_and_the_bundled_pack_keeps_serving() {
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    let server = Server::start(&sandbox, &cert, &[]);
    let client = server.client(&[&cert]);
    let review = admission_review("uid-pack", "CREATE", "default", kubectl_deployment(), None);
    block_on(async {
        let mut conn = client.connect(Protocol::Http1).await.expect("connect");
        let status_message = |(status, body): (StatusCode, Bytes), expected: StatusCode| {
            assert_eq!(status, expected, "{}", String::from_utf8_lossy(&body));
            let answer: Value = serde_json::from_slice(&body).expect("a JSON Status");
            assert_eq!(answer["kind"], "Status");
            answer["message"].as_str().expect("a message").to_string()
        };
        let malformed = conn
            .post_raw("/validate", "application/json", b"{\"request\": [".to_vec())
            .await
            .expect("answered");
        assert!(status_message(malformed, StatusCode::BAD_REQUEST).contains("not valid JSON"));
        let text = conn
            .post_raw("/validate", "text/plain", review.to_string().into_bytes())
            .await
            .expect("answered");
        assert!(
            status_message(text, StatusCode::UNSUPPORTED_MEDIA_TYPE).contains("application/json")
        );
        let mut unknown = review.clone();
        unknown["apiVersion"] = json!("admission.k8s.io/v2");
        let unknown = conn
            .post_raw(
                "/mutate",
                "application/json",
                unknown.to_string().into_bytes(),
            )
            .await
            .expect("answered");
        assert!(status_message(unknown, StatusCode::BAD_REQUEST).contains("admission.k8s.io/v2"));

        // The bundled pack answers a real review, whatever it decides.
        let response = conn.review("/validate", &review).await;
        assert!(response["allowed"].is_boolean(), "{response}");

        // Over the 3 MiB default limit. Over HTTP/2, as the API server sends
        // reviews: the server answers 413 and resets only that stream, so the
        // answer always arrives. (Over HTTP/1.1 the server must close the
        // connection with the body unread, and a client still writing may see
        // the reset before the 413, depending on timing.)
        let mut oversized = review.clone();
        oversized["request"]["object"]["metadata"]["annotations"] =
            json!({"filler": "x".repeat(4 << 20)});
        let mut big = client.connect(Protocol::Http2).await.expect("connect");
        let answer = big
            .post_raw(
                "/validate",
                "application/json",
                oversized.to_string().into_bytes(),
            )
            .await;
        let answer = answer.expect("the oversized request is answered, not dropped");
        assert!(status_message(answer, StatusCode::PAYLOAD_TOO_LARGE).contains("limit"));

        // Still serving.
        let mut fresh = client
            .connect(Protocol::Http2)
            .await
            .expect("connect again");
        assert!(fresh.review("/validate", &review).await["allowed"].is_boolean());
        assert_eq!(
            fresh.get("/healthz").await.expect("healthz").0,
            StatusCode::OK
        );
    });
}

#[test]
fn startup_failures_exit_2_with_one_clear_line() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path().join("missing.crt").display().to_string();
    let run = tollgate(
        &[
            "serve",
            "--tls-cert",
            &missing,
            "--tls-key",
            &missing,
            "--addr",
            "127.0.0.1:0",
        ],
        None,
    );
    run.assert_code(2);
    assert!(run.stderr.contains("missing.crt"), "{}", run.stderr);

    let cert = Cert::new();
    let (cert_path, key_path) = cert.install(&sandbox);
    let broken = sandbox.write_cel_policy(
        "broken/bad",
        "  validations:\n    - rule: broken\n      expression: \"object.spec.(\"\n",
    );
    let run = tollgate(
        &[
            "serve",
            "--tls-cert",
            &cert_path.display().to_string(),
            "--tls-key",
            &key_path.display().to_string(),
            "--addr",
            "127.0.0.1:0",
            "--policies",
            &broken.display().to_string(),
        ],
        None,
    );
    run.assert_code(2);
    let last = run.last_stderr_line();
    assert!(
        last.starts_with("tollgate: the policies could not be loaded"),
        "{}",
        run.stderr
    );
    assert!(last.contains("bad.yaml"), "{last}");
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart() {
    let sandbox = Sandbox::new();
    let first = Cert::new();
    let policies = write_policies(&sandbox);
    let server = Server::start(
        &sandbox,
        &first,
        &["--policies", &policies.display().to_string()],
    );
    let second = Cert::new();
    let client = server.client(&[&first, &second]);
    block_on(async {
        let mut old = client.connect(Protocol::Http1).await.expect("connect");
        assert_eq!(old.peer, first.der);
        second.install(&sandbox);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let conn = client
                .connect(Protocol::Http1)
                .await
                .expect("connect during rotation");
            if conn.peer == second.der {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the new certificate was not served within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The connection made before the rotation still works.
        assert_eq!(
            old.get("/healthz").await.expect("old connection").0,
            StatusCode::OK
        );
    });
    let metrics = server.metrics(&second);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tollgate_tls_reloads_total{result=\"success\"} ")),
        "{metrics}"
    );
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l["fields"]["message"] == "certificate reloaded")
    );
}

#[test]
fn policy_changes_are_reloaded_while_requests_flow_without_failures() {
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    sandbox.write_cel_policy("policies/replica-limit", &replica_limit(5));
    let policies = sandbox.path().join("policies");
    let server = Server::start(
        &sandbox,
        &cert,
        &["--policies", &policies.display().to_string()],
    );
    let client = server.client(&[&cert]);
    let deployment = with_replicas(kubectl_deployment(), 4);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = runtime().block_on(async {
        let mut workers = Vec::new();
        for worker in 0..4 {
            let client = client.clone();
            let stop = stop.clone();
            let deployment = deployment.clone();
            workers.push(tokio::spawn(async move {
                let mut conn = client.connect(Protocol::Http1).await.expect("connect");
                let mut seen = Vec::new();
                let started = Instant::now();
                // Bounded: 30 s or 100,000 requests per worker.
                for n in 0..100_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed)
                        || started.elapsed() > Duration::from_secs(30)
                    {
                        break;
                    }
                    let review = admission_review(
                        &format!("uid-{worker}-{n}"),
                        "CREATE",
                        "default",
                        deployment.clone(),
                        None,
                    );
                    let response = conn.review("/validate", &review).await;
                    seen.push(response["allowed"].as_bool().expect("allowed is a bool"));
                }
                seen
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        replace(
            &sandbox,
            "policies/replica-limit.yaml",
            policy_text("replica-limit", &replica_limit(3)).as_bytes(),
        );
        let mut probe = client.connect(Protocol::Http1).await.expect("connect");
        let review = admission_review("uid-probe", "CREATE", "default", deployment.clone(), None);
        let deadline = Instant::now() + Duration::from_secs(15);
        while probe.review("/validate", &review).await["allowed"] == true {
            assert!(
                Instant::now() < deadline,
                "the new policy set was not in force within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A set that does not load is logged, and the current one kept.
        sandbox.write_cel_policy(
            "policies/broken",
            "  validations:\n    - rule: broken\n      expression: \"object.(\"\n",
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while server
            .wait_for_log(Duration::ZERO, |l| l["level"] == "ERROR")
            .is_none()
        {
            assert!(
                Instant::now() < deadline,
                "the broken set was not reported within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            probe.review("/validate", &review).await["allowed"],
            false,
            "the last good set stays in force"
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut answers = Vec::new();
        for worker in workers {
            answers.push(
                worker
                    .await
                    .expect("a worker got an answer to every request"),
            );
        }
        answers
    });
    for seen in &answers {
        assert!(
            seen.len() >= 2,
            "each worker sent requests across the reload: {seen:?}"
        );
        let first_denial = seen
            .iter()
            .position(|allowed| !allowed)
            .unwrap_or(seen.len());
        assert!(
            seen[first_denial..].iter().all(|allowed| !allowed),
            "after the new set answered, the old one never did again"
        );
        assert!(seen[..first_denial].iter().all(|allowed| *allowed));
    }
    assert!(
        answers.iter().any(|seen| seen.contains(&false)),
        "requests flowed after the reload"
    );
    let metrics = server.metrics(&cert);
    assert!(
        metrics.contains("tollgate_policy_set_reloads_total{result=\"success\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_policy_set_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );
}

/// A CelPolicy document named `name` with `spec`.
pub(crate) fn policy_text(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: CelPolicy\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// Settings for the `infinite-loop` guest: spin for `ms`, then fault, ignored.
fn slow_policy(sandbox: &Sandbox, ms: u64) -> (String, String) {
    let settings = sandbox.write_json(
        "slow-settings.json",
        &json!({"policies": {"infinite-loop": {"failurePolicy": "Ignore", "limits": {"timeoutMs": ms}}}}),
    );
    (Guest::InfiniteLoop.arg(), settings.display().to_string())
}

#[test]
fn a_review_past_the_deadline_is_answered_by_the_failure_policy() {
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    let (policy, settings) = slow_policy(&sandbox, 3000);
    let server = Server::start(
        &sandbox,
        &cert,
        &[
            "--policies",
            &policy,
            "--settings",
            &settings,
            "--request-timeout",
            "300ms",
        ],
    );
    let review = admission_review("uid-slow", "CREATE", "default", kubectl_deployment(), None);
    block_on(async {
        let mut conn = server.connect(&cert).await;
        let started = Instant::now();
        let response = conn.review("/validate", &review).await;
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "answered at the deadline, not after the policy"
        );
        assert_eq!(response["allowed"], false, "{response}");
        assert_eq!(response["status"]["code"], 503);
        assert!(
            message(&response).contains("did not finish within 300 ms"),
            "{response}"
        );
    });
}

/// A lone review first gets a short try on the async worker; a policy that
/// outlasts the try is run again from the start on the evaluation pool, so
/// its verdict is the one its own limit gives, not a cut at the try's end.
/// The metrics count the cut tries and the pool's evaluations.
#[test]
fn a_slow_policy_is_judged_by_its_own_limit_not_by_the_inline_try() {
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    let (policy, settings) = slow_policy(&sandbox, 200);
    let server = Server::start(
        &sandbox,
        &cert,
        &["--policies", &policy, "--settings", &settings],
    );
    let review = admission_review("uid-alone", "CREATE", "default", kubectl_deployment(), None);
    block_on(async {
        let mut conn = server.connect(&cert).await;
        for _ in 0..3 {
            let started = Instant::now();
            let response = conn.review("/validate", &review).await;
            assert!(
                started.elapsed() >= Duration::from_millis(200),
                "answered before the policy's own 200 ms limit: {response}"
            );
            assert_eq!(
                response["allowed"], true,
                "the ignored fault allows: {response}"
            );
            let warnings = response["warnings"].to_string();
            assert!(
                warnings.contains("infinite-loop: deadline of 200 ms exceeded"),
                "{warnings}"
            );
        }
    });
    let metrics = server.metrics(&cert);
    for line in [
        "tollgate_admission_evaluations_total{place=\"inline\"} 0",
        "tollgate_admission_evaluations_total{place=\"inline_cut\"} 3",
        "tollgate_admission_evaluations_total{place=\"pool\"} 3",
        "tollgate_admission_queue_wait_seconds_count 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line} in:\n{metrics}"
        );
    }
}

#[test]
fn sigterm_under_load_completes_in_flight_requests_and_exits_0() {
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    let (policy, settings) = slow_policy(&sandbox, 1500);
    let mut server = Server::start(
        &sandbox,
        &cert,
        &["--policies", &policy, "--settings", &settings],
    );
    let client = server.client(&[&cert]);
    let answers = runtime().block_on(async {
        let mut in_flight = Vec::new();
        for n in 0..4 {
            let mut conn = client.connect(Protocol::Http1).await.expect("connect");
            let review = admission_review(
                &format!("uid-drain-{n}"),
                "CREATE",
                "default",
                kubectl_deployment(),
                None,
            );
            in_flight.push(tokio::spawn(async move {
                conn.review("/validate", &review).await
            }));
        }
        // SIGTERM once all four are being evaluated (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut probe = client.connect(Protocol::Http1).await.expect("connect");
            let (_, metrics) = probe.get("/metrics").await.expect("GET /metrics");
            if String::from_utf8_lossy(&metrics)
                .lines()
                .any(|l| l == "tollgate_admission_in_flight 4")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the four requests were not in flight within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.terminate();
        let mut answers = Vec::new();
        for request in in_flight {
            answers.push(request.await.expect("the in-flight request was answered"));
        }
        answers
    });
    for response in &answers {
        assert_eq!(
            response["allowed"], true,
            "the ignored fault allows: {response}"
        );
        let warnings = response["warnings"].to_string();
        assert!(warnings.contains("infinite-loop"), "{warnings}");
    }
    let status = server.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "logs:\n{}", server.log_text());
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l["fields"]["signal"] == "SIGTERM")
    );
    let refused = block_on(client.connect(Protocol::Http1));
    assert!(
        refused.is_err(),
        "the server still accepts connections after exiting"
    );
}

#[test]
fn with_an_otlp_endpoint_reviews_are_exported_as_spans_and_metrics() {
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    let policies = write_policies(&sandbox).display().to_string();
    let mut server = Server::spawn_with_env(
        &sandbox,
        &cert,
        &["--policies", &policies],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SERVICE_NAME", "tollgate-webhook-test"),
        ],
    );
    server.wait_ready();
    let denied = admission_review(
        "uid-otlp",
        "CREATE",
        "default",
        with_replicas(kubectl_deployment(), 5),
        None,
    );
    block_on(async {
        let mut conn = server.connect(&cert).await;
        let response = conn.review("/validate", &denied).await;
        assert_eq!(response["allowed"], false, "{response}");
    });
    // SIGTERM: the server flushes its exporters before it exits.
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(30)).success());

    let spans = collector.spans();
    let review = spans
        .iter()
        .find(|s| s.name == "admission review")
        .unwrap_or_else(|| panic!("no review span: {spans:#?}"));
    let a = otlp_attributes(&review.attributes);
    assert_eq!(a["tollgate.endpoint"], "validate");
    assert_eq!(a["tollgate.operation"], "CREATE");
    assert_eq!(a["tollgate.allowed"], "false");
    assert_eq!(a["k8s.namespace.name"], "default");
    assert_eq!(a["tollgate.resource.kind"], "Deployment");
    assert!(a.contains_key("k8s.deployment.name"), "{a:?}");
    let status = review.status.as_ref().expect("a status on a denial");
    assert!(status.message.contains("replica-limit"), "{status:?}");
    let children: Vec<String> = spans
        .iter()
        .filter(|s| s.parent_span_id == review.span_id)
        .map(|s| s.name.clone())
        .collect();
    assert!(
        children.contains(&"policy replica-limit".to_string()),
        "{children:?}"
    );

    let metrics = collector.metrics();
    let reviews = metrics
        .iter()
        .rev()
        .find(|m| m.name == "tollgate.admission.reviews")
        .expect("the reviews counter");
    let Some(metric::Data::Sum(sum)) = &reviews.data else {
        panic!("not a sum: {reviews:?}");
    };
    let denied_count: i64 = sum
        .data_points
        .iter()
        .filter(|p| otlp_attributes(&p.attributes)["tollgate.verdict"] == "denied")
        .map(|p| match p.value {
            Some(number_data_point::Value::AsInt(i)) => i,
            other => panic!("not an integer: {other:?}"),
        })
        .sum();
    assert_eq!(denied_count, 1);
    assert!(
        metrics
            .iter()
            .any(|m| m.name == "tollgate.admission.duration"),
        "the latency histogram"
    );
}
