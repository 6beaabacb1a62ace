//! A fake Kubernetes API server for live-audit tests: plain HTTP on
//! loopback, serving objects from memory the way the real one does where the
//! tests depend on it:
//!
//! - lists honour `limit` and `continue` (the token is an offset) and
//!   `labelSelector` (`key=value` only), and return items without
//!   `apiVersion`/`kind`, as typed lists do;
//! - `watch=true` streams `ADDED`/`MODIFIED`/`DELETED` events of later
//!   changes as newline-delimited JSON and keeps the stream open;
//! - GET, POST (409 when it exists), PUT (409 on a stale `resourceVersion`),
//!   PATCH (server-side apply: upsert) and DELETE of single objects;
//! - every request is recorded (method, path, query, content type);
//! - a resource can be forbidden (403), as missing RBAC does.
//!
//! It runs on its own thread and tokio runtime, so tests can run the real
//! `tollgate` binary against it with a kubeconfig from [`FakeApiServer::kubeconfig`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::util::Sandbox;

/// The resources the fake server knows: (group, kind, plural, namespaced).
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("", "Namespace", "namespaces", false),
    ("", "Node", "nodes", false),
    ("", "Pod", "pods", true),
    ("", "ReplicationController", "replicationcontrollers", true),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims", true),
    (
        "scheduling.k8s.io",
        "PriorityClass",
        "priorityclasses",
        false,
    ),
    ("apps", "Deployment", "deployments", true),
    ("apps", "StatefulSet", "statefulsets", true),
    ("apps", "DaemonSet", "daemonsets", true),
    ("apps", "ReplicaSet", "replicasets", true),
    ("batch", "Job", "jobs", true),
    ("batch", "CronJob", "cronjobs", true),
    (
        "policy",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    ("coordination.k8s.io", "Lease", "leases", true),
    ("wgpolicyk8s.io", "PolicyReport", "policyreports", true),
    (
        "wgpolicyk8s.io",
        "ClusterPolicyReport",
        "clusterpolicyreports",
        false,
    ),
    ("openreports.io", "Report", "reports", true),
    ("openreports.io", "ClusterReport", "clusterreports", false),
];

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Decoded query parameters.
    pub query: BTreeMap<String, String>,
    /// The Content-Type header.
    pub content_type: String,
}

impl Request {
    /// Whether this is a watch.
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
    }

    /// Whether this is a list (a GET of a collection, not a watch).
    pub fn is_list_of(&self, plural: &str) -> bool {
        self.method == Method::GET && !self.is_watch() && self.path.ends_with(&format!("/{plural}"))
    }
}

/// (group, plural) → (namespace, name) → object.
type Store = BTreeMap<(String, String), BTreeMap<(String, String), Value>>;

struct Inner {
    store: Store,
    version: u64,
    requests: Vec<Request>,
    forbidden: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<(String, String, String, Value)>,
}

/// The running server; stopped when dropped.
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn resource_of_kind(
    kind: &str,
) -> Option<&'static (&'static str, &'static str, &'static str, bool)> {
    RESOURCES.iter().find(|r| r.1 == kind)
}

fn resource_of_plural(
    group: &str,
    plural: &str,
) -> Option<&'static (&'static str, &'static str, &'static str, bool)> {
    RESOURCES.iter().find(|r| r.0 == group && r.2 == plural)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl FakeApiServer {
    /// Serve `objects` (every kind must be in the server's resource table).
    pub fn start(objects: impl IntoIterator<Item = Value>) -> Self {
        let (events, _) = broadcast::channel(1024);
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                store: Store::new(),
                version: 1,
                requests: Vec::new(),
                forbidden: Vec::new(),
            })),
            events,
        };
        for object in objects {
            shared.put(object, false);
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("fake API server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = axum::Router::new().fallback(handle).with_state(state);
                // Not a graceful shutdown: open watch streams would hold it forever.
                tokio::select! {
                    served = std::future::IntoFuture::into_future(axum::serve(listener, app)) => served.expect("fake API server"),
                    _ = rx => {}
                }
            });
            runtime.shutdown_background();
        });
        FakeApiServer {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// A kubeconfig (context `fake`) pointing at this server, written into `sandbox`.
    pub fn kubeconfig(&self, sandbox: &Sandbox) -> PathBuf {
        sandbox.write(
            "kubeconfig.yaml",
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"http://{}\"}}\nusers:\n- name: fake\n  user: {{token: test-token}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\n- name: elsewhere\n  context: {{cluster: fake, user: fake}}\ncurrent-context: elsewhere\n",
                self.addr
            ),
        )
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.inner.lock().expect("lock").requests.clone()
    }

    /// Answer every request for `plural` with 403, as missing RBAC does.
    pub fn forbid(&self, plural: &str) {
        self.shared
            .inner
            .lock()
            .expect("lock")
            .forbidden
            .push(plural.to_string());
    }

    /// Create or replace an object, notifying watchers.
    pub fn put(&self, object: Value) {
        self.shared.put(object, true);
    }

    /// The stored objects of a kind.
    pub fn objects(&self, kind: &str) -> Vec<Value> {
        let (group, _, plural, _) = resource_of_kind(kind).expect("known kind");
        let inner = self.shared.inner.lock().expect("lock");
        inner
            .store
            .get(&(group.to_string(), plural.to_string()))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// Store an object (new resourceVersion), optionally notifying watchers.
    fn put(&self, mut object: Value, notify: bool) -> Value {
        let kind = str_at(&object, "/kind").to_string();
        let (group, _, plural, namespaced) = *resource_of_kind(&kind)
            .unwrap_or_else(|| panic!("the fake API server does not serve {kind}"));
        let namespace = if namespaced {
            str_at(&object, "/metadata/namespace").to_string()
        } else {
            String::new()
        };
        let name = str_at(&object, "/metadata/name").to_string();
        let mut inner = self.inner.lock().expect("lock");
        inner.version += 1;
        let version = inner.version.to_string();
        object["metadata"]["resourceVersion"] = json!(version);
        if object.pointer("/metadata/uid").is_none() {
            object["metadata"]["uid"] = json!(format!("uid-{version}"));
        }
        let existed = inner
            .store
            .entry((group.to_string(), plural.to_string()))
            .or_default()
            .insert((namespace.clone(), name), object.clone())
            .is_some();
        drop(inner);
        if notify {
            let kind = if existed { "MODIFIED" } else { "ADDED" };
            let _ = self.events.send((
                group.to_string(),
                plural.to_string(),
                namespace,
                json!({"type": kind, "object": object}),
            ));
        }
        object
    }

    fn remove(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let mut inner = self.inner.lock().expect("lock");
        inner.version += 1;
        let removed = inner
            .store
            .get_mut(&(group.to_string(), plural.to_string()))
            .and_then(|m| m.remove(&(namespace.to_string(), name.to_string())));
        drop(inner);
        if let Some(object) = &removed {
            let _ = self.events.send((
                group.to_string(),
                plural.to_string(),
                namespace.to_string(),
                json!({"type": "DELETED", "object": object}),
            ));
        }
        removed
    }
}

/// `%XX` and `+` decoding of a query component.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("JSON")))
        .expect("response")
}

/// What a path addresses.
struct Target {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => (String::new(), version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (group.to_string(), version.to_string(), rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(ns.to_string()), plural.to_string(), None),
        ["namespaces", ns, plural, name] => (
            Some(ns.to_string()),
            plural.to_string(),
            Some(name.to_string()),
        ),
        [plural] => (None, plural.to_string(), None),
        [plural, name] => (None, plural.to_string(), Some(name.to_string())),
        _ => return None,
    };
    Some(Target {
        group,
        version,
        plural,
        namespace,
        name,
    })
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: BTreeMap<String, String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let request = Request {
        method: method.clone(),
        path: uri.path().to_string(),
        query: query.clone(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    };
    shared
        .inner
        .lock()
        .expect("lock")
        .requests
        .push(request.clone());
    let Some(target) = parse_path(uri.path()) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {}", uri.path()),
        );
    };
    let Some(&(group, kind, plural, namespaced)) =
        resource_of_plural(&target.group, &target.plural)
    else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "the server could not find the requested resource {}",
                uri.path()
            ),
        );
    };
    if shared
        .inner
        .lock()
        .expect("lock")
        .forbidden
        .iter()
        .any(|f| f == plural)
    {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{plural} is forbidden: User \"system:serviceaccount:tollgate:audit\" cannot list resource \"{plural}\""
            ),
        );
    }
    let api_version = if group.is_empty() {
        target.version.clone()
    } else {
        format!("{group}/{}", target.version)
    };
    let key = (group.to_string(), plural.to_string());
    let namespace = target.namespace.clone().unwrap_or_default();
    match (&method, &target.name) {
        (&Method::GET, None) if request.is_watch() => {
            watch(&shared, group, plural, target.namespace.clone())
        }
        (&Method::GET, None) => {
            let inner = shared.inner.lock().expect("lock");
            let selector = query.get("labelSelector").and_then(|s| s.split_once('='));
            let items: Vec<Value> = inner
                .store
                .get(&key)
                .into_iter()
                .flat_map(|m| m.iter())
                .filter(|((ns, _), _)| target.namespace.as_ref().is_none_or(|want| want == ns))
                .filter(|(_, o)| {
                    selector.is_none_or(|(k, v)| {
                        o.pointer("/metadata/labels")
                            .and_then(|l| l.get(k))
                            .and_then(Value::as_str)
                            == Some(v)
                    })
                })
                .map(|(_, o)| {
                    let mut item = o.clone();
                    if let Value::Object(m) = &mut item {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    item
                })
                .collect();
            let start: usize = query
                .get("continue")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let limit: usize = query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| *l > 0)
                .unwrap_or(usize::MAX);
            let end = start.saturating_add(limit).min(items.len());
            let mut metadata = json!({"resourceVersion": inner.version.to_string()});
            if end < items.len() {
                metadata["continue"] = json!(end.to_string());
            }
            json_response(
                StatusCode::OK,
                &json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": metadata,
                    "items": items.get(start..end).unwrap_or_default()}),
            )
        }
        (&Method::GET, Some(name)) => {
            let inner = shared.inner.lock().expect("lock");
            match inner
                .store
                .get(&key)
                .and_then(|m| m.get(&(namespace.clone(), name.clone())))
            {
                Some(o) => json_response(StatusCode::OK, o),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{plural} \"{name}\" not found"),
                ),
            }
        }
        (&Method::POST, None) => {
            let Ok(mut object) = serde_json::from_slice::<Value>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "invalid JSON".into());
            };
            let name = str_at(&object, "/metadata/name").to_string();
            let exists = shared
                .inner
                .lock()
                .expect("lock")
                .store
                .get(&key)
                .is_some_and(|m| m.contains_key(&(namespace.clone(), name.clone())));
            if exists {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{plural} \"{name}\" already exists"),
                );
            }
            object["apiVersion"] = json!(api_version);
            object["kind"] = json!(kind);
            if namespaced {
                object["metadata"]["namespace"] = json!(namespace);
            }
            json_response(StatusCode::CREATED, &shared.put(object, true))
        }
        (&Method::PUT, Some(name)) => {
            let Ok(mut object) = serde_json::from_slice::<Value>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "invalid JSON".into());
            };
            let current = shared
                .inner
                .lock()
                .expect("lock")
                .store
                .get(&key)
                .and_then(|m| m.get(&(namespace.clone(), name.clone())).cloned());
            let Some(current) = current else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{plural} \"{name}\" not found"),
                );
            };
            if str_at(&object, "/metadata/resourceVersion")
                != str_at(&current, "/metadata/resourceVersion")
            {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified"
                    ),
                );
            }
            object["apiVersion"] = json!(api_version);
            object["kind"] = json!(kind);
            json_response(StatusCode::OK, &shared.put(object, true))
        }
        (&Method::PATCH, Some(_)) => {
            if request.content_type != "application/apply-patch+yaml" {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    format!("only server-side apply, not {}", request.content_type),
                );
            }
            // kube sends the applied configuration as JSON (a YAML subset).
            let Ok(object) = serde_json::from_slice::<Value>(&body) else {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "invalid apply body".into(),
                );
            };
            json_response(StatusCode::OK, &shared.put(object, true))
        }
        (&Method::DELETE, Some(name)) => match shared.remove(group, plural, &namespace, name) {
            Some(_) => json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200}),
            ),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{plural} \"{name}\" not found"),
            ),
        },
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} {}", uri.path()),
        ),
    }
}

/// A watch stream of later changes to `group/plural` (in `namespace` if given).
fn watch(
    shared: &Shared,
    group: &'static str,
    plural: &'static str,
    namespace: Option<String>,
) -> Response {
    let receiver = shared.events.subscribe();
    let stream = futures::stream::unfold(receiver, move |mut receiver| {
        let namespace = namespace.clone();
        async move {
            loop {
                match receiver.recv().await {
                    Ok((g, p, ns, event)) => {
                        if g == group
                            && p == plural
                            && namespace.as_ref().is_none_or(|want| *want == ns)
                        {
                            let mut line = serde_json::to_vec(&event).expect("JSON");
                            line.push(b'\n');
                            return Some((
                                Ok::<_, std::convert::Infallible>(Bytes::from(line)),
                                receiver,
                            ));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("response")
}
