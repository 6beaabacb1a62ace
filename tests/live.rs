//! `tollgate audit` against a live cluster, played by the in-process
//! [`FakeApiServer`] serving the kube-hetzner demo snapshot: the live audit
//! equals the snapshot audit, lists are paginated, nothing is written unless
//! reports are asked for, reports are applied by server-side apply with stale
//! ones deleted, periodic audits follow watch events without relisting, and
//! of two replicas with `--leader-elect` one audits.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{Value, json};
use tollgate::cluster::Snapshot;

use crate::fake_apiserver::FakeApiServer;
use crate::util::{Sandbox, tollgate, workspace};

const NOW: &str = "2026-08-25T09:50:00Z";

fn demo() -> PathBuf {
    workspace().join("examples/clusters/kube-hetzner")
}

fn demo_objects() -> Vec<Value> {
    let snapshot = Snapshot::load(&demo()).expect("demo snapshot");
    assert!(snapshot.warnings().is_empty(), "{:?}", snapshot.warnings());
    snapshot
        .objects()
        .iter()
        .map(|o| o.as_ref().clone())
        .collect()
}

fn live_args(kubeconfig: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "audit",
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "--context",
        "fake",
        "--now",
        NOW,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn live_audit_equals_the_snapshot_audit_and_follows_pagination_without_writing() {
    let server = FakeApiServer::start(demo_objects());
    let sandbox = Sandbox::new();
    let kubeconfig = server.kubeconfig(&sandbox);
    let live = tollgate(
        &live_args(&kubeconfig, &["-o", "json", "--page-size", "5"]),
        None,
    );
    let offline = tollgate(
        &[
            "audit",
            "--snapshot",
            &demo().display().to_string(),
            "--now",
            NOW,
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(offline.code, 1, "the demo has findings: {}", offline.stderr);
    assert_eq!(live.code, offline.code, "stderr: {}", live.stderr);
    assert_eq!(
        live.json(),
        offline.json(),
        "live and snapshot audits of the same objects differ"
    );

    let requests = server.requests();
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| r.method != Method::GET)
        .collect();
    assert!(
        writes.is_empty(),
        "a plain audit wrote to the cluster: {writes:?}"
    );
    let pods: Vec<_> = requests.iter().filter(|r| r.is_list_of("pods")).collect();
    let tokens: BTreeSet<String> = pods
        .iter()
        .map(|r| r.query.get("continue").cloned().unwrap_or_default())
        .collect();
    let pod_count = server.objects("Pod").len();
    assert_eq!(
        pods.len(),
        pod_count.div_ceil(5),
        "one request per page of 5 pods"
    );
    assert_eq!(
        tokens.len(),
        pods.len(),
        "every page after the first follows a new continue token: {tokens:?}"
    );
    assert!(
        pods.iter()
            .all(|r| r.query.get("limit").map(String::as_str) == Some("5"))
    );
    for plural in [
        "namespaces",
        "nodes",
        "priorityclasses",
        "deployments",
        "daemonsets",
        "replicasets",
        "statefulsets",
        "jobs",
        "cronjobs",
        "poddisruptionbudgets",
    ] {
        assert!(
            requests.iter().any(|r| r.is_list_of(plural)),
            "{plural} were not listed"
        );
    }
    assert!(
        !requests
            .iter()
            .any(|r| r.is_list_of("persistentvolumeclaims")),
        "only the kinds evaluation needs are read"
    );

    let all = offline.json();
    let in_kube_system = |report: &Value| -> Vec<Value> {
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["resource"]["namespace"] == "kube-system")
            .cloned()
            .collect()
    };
    let restricted = tollgate(
        &live_args(&kubeconfig, &["-o", "json", "-n", "kube-system"]),
        None,
    )
    .json();
    assert!(
        !in_kube_system(&all).is_empty(),
        "the demo has kube-system findings"
    );
    assert_eq!(
        restricted["findings"].as_array().expect("findings"),
        &in_kube_system(&all),
        "-n kube-system keeps exactly its findings"
    );
    assert_eq!(
        restricted["scaleDown"], all["scaleDown"],
        "-n does not filter the node explanation"
    );
}

#[test]
fn an_unreachable_cluster_is_one_clear_error() {
    let sandbox = Sandbox::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let kubeconfig = sandbox.write(
        "kubeconfig.yaml",
        format!("apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"http://127.0.0.1:{port}\"}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: fake, context: {{cluster: c, user: u}}}}]\ncurrent-context: fake\n"),
    );
    tollgate(&live_args(&kubeconfig, &[]), None).assert_bad_input(&["cannot list namespaces"]);
    tollgate(
        &[
            "audit",
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--context",
            "nope",
        ],
        None,
    )
    .assert_bad_input(&["nope"]);
}

#[test]
fn missing_rbac_names_the_list_and_the_cluster_role() {
    let server = FakeApiServer::start(demo_objects());
    server.forbid("poddisruptionbudgets");
    let sandbox = Sandbox::new();
    let kubeconfig = server.kubeconfig(&sandbox);
    let mentions = [
        "cannot list poddisruptionbudgets",
        "forbidden",
        "ClusterRole of docs/audit.md",
    ];
    tollgate(&live_args(&kubeconfig, &[]), None).assert_bad_input(&mentions);
    // A periodic audit stops too, rather than waiting forever for a list it may not make.
    let periodic = tollgate(&live_args(&kubeconfig, &["--interval", "1m"]), None);
    periodic.assert_code(2);
    let last = periodic.last_stderr_line();
    assert!(
        mentions.iter().all(|m| last.contains(m)),
        "{}",
        periodic.stderr
    );
}

fn report(kind: &str, namespace: Option<&str>, name: &str, manager: &str) -> Value {
    let mut object = json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": kind,
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": manager}},
        "results": [], "summary": {}});
    if let Some(ns) = namespace {
        object["metadata"]["namespace"] = json!(ns);
    }
    object
}

#[test]
fn reports_are_server_side_applied_bounded_and_stale_ones_deleted() {
    let mut objects = demo_objects();
    objects.push(report(
        "PolicyReport",
        Some("old"),
        "tollgate-audit-7",
        "tollgate",
    ));
    objects.push(report(
        "ClusterPolicyReport",
        None,
        "tollgate-audit-9",
        "tollgate",
    ));
    objects.push(report(
        "PolicyReport",
        Some("shop"),
        "kyverno-report",
        "kyverno",
    ));
    let server = FakeApiServer::start(objects);
    let sandbox = Sandbox::new();
    let kubeconfig = server.kubeconfig(&sandbox);
    let run = tollgate(
        &live_args(
            &kubeconfig,
            &[
                "-o",
                "json",
                "--report",
                "policyreport",
                "--report-apply",
                "--report-max-results",
                "5",
            ],
        ),
        None,
    );
    run.assert_code(1);
    let audit = run.json();

    let requests = server.requests();
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| r.method != Method::GET)
        .collect();
    assert!(!writes.is_empty());
    for w in &writes {
        assert!(
            w.path.ends_with("policyreports") || w.path.contains("policyreports/"),
            "a write outside the reports: {w:?}"
        );
        assert!(matches!(w.method, Method::PATCH | Method::DELETE), "{w:?}");
        if w.method == Method::PATCH {
            assert_eq!(w.content_type, "application/apply-patch+yaml");
            assert_eq!(
                w.query.get("fieldManager").map(String::as_str),
                Some("tollgate")
            );
            assert_eq!(w.query.get("force").map(String::as_str), Some("true"));
        }
    }
    let deleted: BTreeSet<&str> = writes
        .iter()
        .filter(|w| w.method == Method::DELETE)
        .map(|w| w.path.as_str())
        .collect();
    assert_eq!(
        deleted,
        BTreeSet::from([
            "/apis/wgpolicyk8s.io/v1alpha2/namespaces/old/policyreports/tollgate-audit-7",
            "/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/tollgate-audit-9",
        ])
    );

    let mut reports = server.objects("PolicyReport");
    assert!(
        reports
            .iter()
            .any(|r| r["metadata"]["name"] == "kyverno-report"),
        "another tool's report is left alone"
    );
    reports.retain(|r| r["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "tollgate");
    let cluster_reports = server.objects("ClusterPolicyReport");
    let all: Vec<&Value> = reports.iter().chain(&cluster_reports).collect();
    assert!(
        all.iter().all(|r| r["results"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.len() <= 5)),
        "reports hold 1..=5 results"
    );
    assert!(
        cluster_reports.len() > 1,
        "the cluster report is split into numbered reports"
    );
    let namespaces: BTreeSet<&str> = reports
        .iter()
        .filter_map(|r| r["metadata"]["namespace"].as_str())
        .collect();
    assert!(
        namespaces.contains("shop") && namespaces.contains("kube-system"),
        "{namespaces:?}"
    );

    // The reports say what the JSON audit says: every failed finding, node-level reason and blocker.
    let count = |result: &str| -> u64 {
        all.iter()
            .map(|r| r["summary"][result].as_u64().unwrap_or(0))
            .sum()
    };
    let fails = audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["result"] == "fail")
        .count()
        + audit["scaleDown"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                n["reasons"].as_array().unwrap().len() + n["blockers"].as_array().unwrap().len()
            })
            .sum::<usize>();
    assert_eq!(count("fail"), fails as u64);
    assert!(count("pass") > 0);
    let blocker = all
        .iter()
        .flat_map(|r| r["results"].as_array().unwrap())
        .find(|r| r["policy"] == "scale-down" && r["rule"] == "UnmovableKubeSystemPod")
        .expect("a blocking kube-system pod is reported");
    assert_eq!(blocker["resources"][0]["kind"], "Node");
    assert_eq!(blocker["resources"][1]["kind"], "Pod");
    assert_eq!(blocker["source"], "tollgate");

    // OpenReports go to their own API and leave the PolicyReports alone.
    let before = server.objects("PolicyReport").len();
    tollgate(
        &live_args(
            &kubeconfig,
            &["-o", "json", "--report", "openreports", "--report-apply"],
        ),
        None,
    )
    .assert_code(1);
    assert_eq!(server.objects("PolicyReport").len(), before);
    let open = server.objects("Report");
    assert_eq!(
        open.iter()
            .filter_map(|r| r["metadata"]["namespace"].as_str())
            .collect::<BTreeSet<_>>(),
        namespaces,
        "one Report per namespace with results"
    );
    assert!(
        open.iter()
            .all(|r| r["apiVersion"] == "openreports.io/v1alpha1" && r["source"] == "tollgate")
    );
    assert_eq!(
        server.objects("ClusterReport").len(),
        1,
        "under the default bound, one ClusterReport"
    );

    // An audit restricted to one namespace leaves the other namespaces' reports alone.
    tollgate(
        &live_args(
            &kubeconfig,
            &[
                "-o",
                "json",
                "-n",
                "shop",
                "--report",
                "policyreport",
                "--report-apply",
            ],
        ),
        None,
    )
    .assert_code(1);
    let namespaces_after: BTreeSet<String> = server
        .objects("PolicyReport")
        .iter()
        .filter_map(|r| r["metadata"]["namespace"].as_str().map(str::to_string))
        .collect();
    assert!(
        namespaces_after.contains("kube-system"),
        "{namespaces_after:?}"
    );
}

/// A `tollgate audit --interval` process: its JSON reports arrive on a channel.
struct Periodic {
    child: Child,
    reports: Receiver<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Periodic {
    fn start(args: &[String]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .env("TOLLGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tollgate");
        let (tx, reports) = channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for value in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
                let Ok(value) = value else { break };
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Periodic {
            child,
            reports,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// The next report within `timeout`.
    fn next(&self, timeout: Duration) -> Option<Value> {
        self.reports.recv_timeout(timeout).ok()
    }

    /// The first report within `timeout` that satisfies `want`.
    fn wait_for(&self, timeout: Duration, want: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(v) if want(&v) => return Some(v),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    /// SIGTERM, then the exit code (None: it did not exit within 10 s).
    fn terminate(&mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const FIRST_REPORT: Duration = Duration::from_secs(60);

fn node_reasons(report: &Value, node: &str) -> Vec<String> {
    report["scaleDown"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["name"] == node)
        .flat_map(|n| n["reasons"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["reason"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn periodic_audits_follow_watch_events_without_relisting_and_stop_on_sigterm() {
    let server = FakeApiServer::start(demo_objects());
    let sandbox = Sandbox::new();
    let kubeconfig = server.kubeconfig(&sandbox);
    let mut audit = Periodic::start(&live_args(&kubeconfig, &["-o", "json", "--interval", "1s"]));
    let first = audit
        .next(FIRST_REPORT)
        .unwrap_or_else(|| panic!("no first report; stderr:\n{}", audit.stderr()));
    let removable = first["scaleDown"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["removable"] == true)
        .and_then(|n| n["name"].as_str())
        .expect("the demo has a removable pool node")
        .to_string();

    let mut node = server
        .objects("Node")
        .into_iter()
        .find(|n| n["metadata"]["name"] == removable.as_str())
        .expect("node");
    node["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/scale-down-disabled"] =
        json!("true");
    server.put(node);
    let after = audit
        .wait_for(Duration::from_secs(20), |r| {
            node_reasons(r, &removable).contains(&"ScaleDownDisabledAnnotation".to_string())
        })
        .unwrap_or_else(|| panic!("no audit saw the annotation; stderr:\n{}", audit.stderr()));
    assert!(
        after["scaleDown"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == removable.as_str() && n["removable"] == false)
    );

    let requests = server.requests();
    for plural in ["nodes", "pods", "deployments"] {
        assert_eq!(
            requests.iter().filter(|r| r.is_list_of(plural)).count(),
            1,
            "{plural} were relisted"
        );
        assert!(
            requests
                .iter()
                .any(|r| r.is_watch() && r.path.ends_with(plural)),
            "no watch on {plural}"
        );
    }
    assert!(
        requests.iter().all(|r| r.method == Method::GET),
        "a periodic audit without reports wrote"
    );
    assert_eq!(audit.terminate(), Some(0), "stderr:\n{}", audit.stderr());
}

#[test]
fn with_leader_election_one_of_two_replicas_audits_and_the_other_takes_over() {
    let server = FakeApiServer::start(demo_objects());
    let sandbox = Sandbox::new();
    let kubeconfig = server.kubeconfig(&sandbox);
    let replica = |id: &str| {
        Periodic::start(&live_args(
            &kubeconfig,
            &[
                "-o",
                "json",
                "--interval",
                "1s",
                "--leader-elect",
                "--lease-namespace",
                "kube-system",
                "--lease-duration",
                "5s",
                "--lease-identity",
                id,
            ],
        ))
    };
    let mut a = replica("replica-a");
    a.next(FIRST_REPORT)
        .unwrap_or_else(|| panic!("replica a never audited; stderr:\n{}", a.stderr()));
    let b = replica("replica-b");
    // b syncs its watches and competes for the Lease while a renews it.
    assert!(
        b.next(Duration::from_secs(8)).is_none(),
        "both replicas audited; b stderr:\n{}",
        b.stderr()
    );
    assert!(
        a.next(Duration::from_secs(5)).is_some(),
        "the leader stopped auditing"
    );
    let holder = |server: &FakeApiServer| {
        server.objects("Lease").first().map(|l| {
            l["spec"]["holderIdentity"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    };
    assert_eq!(holder(&server).as_deref(), Some("replica-a"));
    assert!(a.stderr().contains("became the leader") && !b.stderr().contains("became the leader"));

    assert_eq!(a.terminate(), Some(0), "stderr:\n{}", a.stderr());
    b.next(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("replica b did not take over; stderr:\n{}", b.stderr()));
    assert_eq!(holder(&server).as_deref(), Some("replica-b"));
}

#[test]
fn generate_fixes_and_pools_from_the_live_cluster_equal_those_from_the_snapshot() {
    let server = FakeApiServer::start(demo_objects());
    let sandbox = Sandbox::new();
    let kubeconfig = server.kubeconfig(&sandbox);
    let kubeconfig = kubeconfig.display().to_string();
    let demo = demo().display().to_string();
    let live = [
        "--cluster",
        "--kubeconfig",
        &kubeconfig,
        "--context",
        "fake",
    ];
    let offline = ["--snapshot", &demo];
    for (what, source) in [
        ("fixes", live.as_slice()),
        ("fixes", offline.as_slice()),
        ("pools", live.as_slice()),
        ("pools", offline.as_slice()),
    ] {
        let out = sandbox
            .path()
            .join(format!("{what}-{}", source[0].trim_start_matches('-')));
        let mut args = vec!["generate", what];
        args.extend_from_slice(source);
        let out_arg = out.display().to_string();
        args.extend_from_slice(&["-o", &out_arg]);
        let run = tollgate(&args, None);
        assert_eq!(run.code, 0, "generate {what} {source:?}: {}", run.stderr);
    }
    for what in ["fixes", "pools"] {
        let live = crate::generate::read_tree(&sandbox.path().join(format!("{what}-cluster")));
        let offline = crate::generate::read_tree(&sandbox.path().join(format!("{what}-snapshot")));
        assert!(!offline.is_empty(), "generate {what} wrote nothing");
        assert_eq!(
            live.keys().collect::<Vec<_>>(),
            offline.keys().collect::<Vec<_>>(),
            "generate {what}: the same files from the live cluster"
        );
        for (file, text) in &offline {
            assert_eq!(&live[file], text, "generate {what}: {file} differs");
        }
    }
    let writes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method != Method::GET)
        .collect();
    assert!(
        writes.is_empty(),
        "generate --cluster must not write to the cluster: {writes:?}"
    );
}

/// A measurement (docs/benchmarks.md, "Audit at scale"): the generated
/// 1,000-node, 10,000-pod cluster audited live, through the fake API server,
/// and from its snapshot file, each under `/usr/bin/time` for the peak
/// resident memory and wall time of the audit process. Both reports must be
/// the same. Run it by hand with a release binary:
///
/// ```sh
/// TOLLGATE_WRITE_SCALE_SNAPSHOT=/tmp/scale cargo bench -p tollgate --bench audit
/// cargo build --release
/// TOLLGATE_SCALE_SNAPSHOT=/tmp/scale TOLLGATE_SCALE_BIN=target/release/tollgate \
///   cargo test -p tollgate --test integration -- --ignored --nocapture live_audit_of_a_large_cluster
/// ```
#[test]
#[ignore = "a measurement: needs TOLLGATE_SCALE_SNAPSHOT, see its doc comment"]
fn live_audit_of_a_large_cluster_measured() {
    let Some(dir) = std::env::var_os("TOLLGATE_SCALE_SNAPSHOT") else {
        panic!("set TOLLGATE_SCALE_SNAPSHOT to the directory the audit bench writes");
    };
    // Relative paths are the workspace's (tests run in engine/).
    let dir = workspace().join(dir);
    let binary = std::env::var_os("TOLLGATE_SCALE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_tollgate")),
        |b| workspace().join(b),
    );
    let snapshot = Snapshot::load(&dir).expect("the scale snapshot loads");
    let objects: Vec<Value> = snapshot
        .objects()
        .iter()
        .map(|o| o.as_ref().clone())
        .collect();
    let count = objects.len();
    drop(snapshot);
    let server = FakeApiServer::start(objects);
    let sandbox = Sandbox::new();
    let kubeconfig = server.kubeconfig(&sandbox).display().to_string();
    let audit = |source: &[&str]| {
        let output = Command::new("/usr/bin/time")
            .args(["-f", "peak-rss-kb=%M wall-s=%e"])
            .arg(&binary)
            .arg("audit")
            .args(source)
            .args(["-o", "json"])
            .env(
                "TOLLGATE_CACHE_DIR",
                workspace().join("target/integration-cache"),
            )
            .output()
            .expect("run the audit under /usr/bin/time");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let report: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stderr}"));
        let measured = stderr
            .lines()
            .find(|l| l.starts_with("peak-rss-kb="))
            .expect("/usr/bin/time's line")
            .to_string();
        eprintln!(
            "audit {} of {count} objects ({}): {measured}, {} findings, {} pool nodes explained",
            source.join(" "),
            binary.display(),
            report["findings"].as_array().map_or(0, Vec::len),
            report["scaleDown"]["nodes"].as_array().map_or(0, Vec::len),
        );
        report
    };
    let live = audit(&["--cluster", "--kubeconfig", &kubeconfig]);
    let from_file = audit(&["--snapshot", &dir.display().to_string()]);
    // (Not `scaleDown.assumptions`: it carries the time of the run.)
    for part in ["/findings", "/scaleDown/nodes"] {
        assert!(
            live.pointer(part) == from_file.pointer(part),
            "{part} differs between the live and the snapshot audit"
        );
    }
}
