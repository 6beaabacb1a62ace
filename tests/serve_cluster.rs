//! `tollgate serve --cluster`: the webhook watches the cluster (a fake API
//! server) for its policies' lookups. Namespace labels decide a policy's
//! `namespaceSelector`; a label changed in the cluster is in force for new
//! reviews within the refresh interval; the server only ever reads (lists and
//! watches of the webhook's kinds, nothing else); and a cluster it may not
//! read stops it at startup with one clear line.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::admission::{Cert, Server, block_on, message, policy_text};
use crate::fake_apiserver::FakeApiServer;
use crate::util::{Sandbox, admission_review, kubectl_deployment, tollgate};

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": labels, "resourceVersion": "1"}})
}

/// A policy that denies every Deployment, narrowed by the operator to
/// namespaces labelled `placement: enforced`.
fn write_policy(sandbox: &Sandbox) -> (String, String) {
    let policy = sandbox.write(
        "policies/deny-deployments.yaml",
        policy_text(
            "deny-deployments",
            "  kinds: [Deployment]\n  validations:\n    - rule: no-deployments\n      expression: \"false\"\n      message: no Deployments here\n",
        ),
    );
    let settings = sandbox.write_json(
        "settings.json",
        &json!({"policies": {"deny-deployments": {"match": {
            "namespaceSelector": {"matchLabels": {"placement": "enforced"}}}}}}),
    );
    (policy.display().to_string(), settings.display().to_string())
}

#[test]
fn namespace_labels_come_from_the_watched_cluster_and_follow_its_changes() {
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    let api = FakeApiServer::start([namespace("team", json!({"placement": "relaxed"}))]);
    let kubeconfig = api.kubeconfig(&sandbox).display().to_string();
    let (policy, settings) = write_policy(&sandbox);
    let server = Server::start(
        &sandbox,
        &cert,
        &[
            "--policies",
            &policy,
            "--settings",
            &settings,
            "--cluster",
            "--kubeconfig",
            &kubeconfig,
            "--cluster-refresh",
            "100ms",
        ],
    );
    let review = admission_review("uid-ns", "CREATE", "team", kubectl_deployment(), None);
    block_on(async {
        let mut conn = server.connect(&cert).await;
        let response = conn.review("/validate", &review).await;
        assert_eq!(
            response["allowed"], true,
            "namespace team is not selected yet: {response}"
        );

        api.put(namespace("team", json!({"placement": "enforced"})));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let response = conn.review("/validate", &review).await;
            if response["allowed"] == false {
                assert!(
                    message(&response).contains("no Deployments here"),
                    "{response}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the relabelled namespace was not in force within 15 s: {response}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let requests = api.requests();
    assert!(
        requests.iter().all(|r| r.method == axum::http::Method::GET),
        "the webhook only reads: {requests:?}"
    );
    for plural in [
        "namespaces",
        "deployments",
        "poddisruptionbudgets",
        "priorityclasses",
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.is_watch() && r.path.ends_with(plural)),
            "no watch on {plural}: {requests:?}"
        );
    }
    for plural in ["pods", "nodes", "jobs"] {
        assert!(
            !requests.iter().any(|r| r.path.ends_with(plural)),
            "the webhook has no business reading {plural}"
        );
    }
}

#[test]
fn a_cluster_the_webhook_may_not_read_stops_it_with_one_clear_line() {
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    let (cert_path, key_path) = cert.install(&sandbox);
    let api = FakeApiServer::start([namespace("team", json!({}))]);
    api.forbid("namespaces");
    let kubeconfig = api.kubeconfig(&sandbox).display().to_string();
    let run = tollgate(
        &[
            "serve",
            "--tls-cert",
            &cert_path.display().to_string(),
            "--tls-key",
            &key_path.display().to_string(),
            "--addr",
            "127.0.0.1:0",
            "--cluster",
            "--kubeconfig",
            &kubeconfig,
        ],
        None,
    );
    run.assert_code(2);
    let last = run.last_stderr_line();
    assert!(
        last.starts_with("tollgate: the cluster could not be watched: cannot list namespaces"),
        "{}",
        run.stderr
    );
}
