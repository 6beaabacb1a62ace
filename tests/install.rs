//! `tollgate generate install` and `generate helm-chart`: every object is a
//! valid Kubernetes object (it round-trips through the k8s-openapi type of
//! its kind), the security properties an operator relies on hold, output is
//! byte-identical on rerun, the webhook rules cover what the bundled pack
//! judges, Tollgate's own pods pass its own pack, and the self-signed
//! certificate serves `tollgate serve` to a client trusting only caBundle.
//! The Helm chart's tests are in [`chart`].

mod chart;
mod helm_template;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1 as admissionregistration;
use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
use k8s_openapi::api::{policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tollgate::cluster::{ClusterView, Empty};
use tollgate::evaluator::Evaluator;
use tollgate::policy::{PolicySet, SetConfig};
use tollgate::review::Review;

use crate::util::{Sandbox, runtime, tollgate, workspace};

/// The bundled pack, loaded as the generator loads it.
fn pack_set() -> PolicySet {
    PolicySet::load(
        runtime(),
        &["autoscaler-isolation".into()],
        &SetConfig::default(),
    )
    .expect("bundled pack loads")
}

/// `tollgate generate install <args>` on standard output, parsed.
fn generate(args: &[&str]) -> (String, Vec<Value>) {
    let mut argv = vec!["generate", "install"];
    argv.extend_from_slice(args);
    let run = tollgate(&argv, None);
    run.assert_code(0);
    let docs = parse_stream(&run.stdout);
    (run.stdout, docs)
}

fn parse_stream(text: &str) -> Vec<Value> {
    tollgate::cluster::snapshot::split_documents(text)
        .into_iter()
        .map(|(line, doc)| {
            tollgate::policy::parse_one(Path::new("<generated>"), doc)
                .unwrap_or_else(|e| panic!("document at line {line} is not YAML: {e}\n{doc}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the output"))
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or("?"),
                d["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// Deserialize into `T` and serialize back: an unknown or misplaced field,
/// or a value of the wrong type, changes the result.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!(
            "{} does not deserialize as {}: {e}",
            doc["kind"],
            std::any::type_name::<T>()
        )
    });
    let back = serde_json::to_value(&typed).expect("serialize");
    if let Some(path) = first_difference(doc, &back, String::new()) {
        panic!(
            "{} changed at {path} in a round trip through {} (unknown field or wrong type)",
            doc["kind"],
            std::any::type_name::<T>()
        );
    }
}

/// The first path where `a` and `b` differ, with both values there.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let missing = Value::Null;
                first_difference(
                    x.get(k).unwrap_or(&missing),
                    y.get(k).unwrap_or(&missing),
                    format!("{path}/{k}"),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, format!("{path}/{i}"))),
        _ => (a != b).then(|| format!("{path}: {a} vs {b}")),
    }
}

fn assert_valid_object(doc: &Value) {
    match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
        (Some("v1"), Some("Namespace")) => round_trip::<core::Namespace>(doc),
        (Some("v1"), Some("ServiceAccount")) => round_trip::<core::ServiceAccount>(doc),
        (Some("v1"), Some("Service")) => round_trip::<core::Service>(doc),
        (Some("v1"), Some("Secret")) => round_trip::<core::Secret>(doc),
        (Some("v1"), Some("ConfigMap")) => round_trip::<core::ConfigMap>(doc),
        (Some("apps/v1"), Some("Deployment")) => round_trip::<apps::Deployment>(doc),
        (Some("batch/v1"), Some("CronJob")) => round_trip::<batch::CronJob>(doc),
        (Some("policy/v1"), Some("PodDisruptionBudget")) => {
            round_trip::<policy::PodDisruptionBudget>(doc)
        }
        (Some("scheduling.k8s.io/v1"), Some("PriorityClass")) => {
            round_trip::<scheduling::PriorityClass>(doc)
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
            round_trip::<rbac::ClusterRole>(doc)
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
            round_trip::<rbac::ClusterRoleBinding>(doc)
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("Role")) => round_trip::<rbac::Role>(doc),
        (Some("rbac.authorization.k8s.io/v1"), Some("RoleBinding")) => {
            round_trip::<rbac::RoleBinding>(doc)
        }
        (Some("admissionregistration.k8s.io/v1"), Some("ValidatingWebhookConfiguration")) => {
            round_trip::<admissionregistration::ValidatingWebhookConfiguration>(doc)
        }
        (Some("admissionregistration.k8s.io/v1"), Some("MutatingWebhookConfiguration")) => {
            round_trip::<admissionregistration::MutatingWebhookConfiguration>(doc)
        }
        // cert-manager's CRDs have no k8s-openapi type: check the shape cert-manager requires.
        (Some("cert-manager.io/v1"), Some("Issuer")) => {
            let spec = doc["spec"].as_object().expect("Issuer spec");
            assert_eq!(spec.len(), 1, "an Issuer has exactly one kind: {spec:?}");
            assert!(
                spec.contains_key("selfSigned") || spec["ca"]["secretName"].is_string(),
                "{spec:?}"
            );
        }
        (Some("cert-manager.io/v1"), Some("Certificate")) => {
            let spec = &doc["spec"];
            assert!(
                spec["secretName"].is_string() && spec["issuerRef"]["name"].is_string(),
                "{spec}"
            );
            assert!(
                spec["isCA"] == true || spec["dnsNames"].as_array().is_some_and(|n| !n.is_empty()),
                "{spec}"
            );
        }
        other => panic!("unexpected object {other:?}"),
    }
}

fn webhooks(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| {
            d["kind"]
                .as_str()
                .is_some_and(|k| k.ends_with("WebhookConfiguration"))
        })
        .flat_map(|d| d["webhooks"].as_array().expect("webhooks").iter())
        .collect()
}

fn ca_dir_args(dir: &Path) -> Vec<String> {
    vec![
        "--tls".into(),
        "self-signed".into(),
        "--ca-dir".into(),
        dir.display().to_string(),
    ]
}

#[test]
fn every_object_round_trips_through_its_kubernetes_type_in_every_mode() {
    let sandbox = Sandbox::new();
    let ca = sandbox.path().join("ca").display().to_string();
    let modes: [&[&str]; 4] = [
        &[],
        &[
            "--tls",
            "self-signed",
            "--ca-dir",
            &ca,
            "--audit",
            "cronjob",
            "--otlp-endpoint",
            "http://otel-collector.monitoring:4317",
        ],
        &[
            "--audit",
            "none",
            "--no-audit-reports",
            "-n",
            "policy-system",
            "--replicas",
            "3",
        ],
        &[
            "--audit",
            "deployment",
            "--failure-policy",
            "fail",
            "--timeout-seconds",
            "10",
        ],
    ];
    for args in modes {
        let (_, docs) = generate(args);
        assert!(docs.len() >= 12, "{args:?}: {:?}", kinds(&docs));
        for doc in &docs {
            assert_valid_object(doc);
        }
    }
}

#[test]
fn the_webhook_role_only_reads_and_the_audit_writes_only_reports_and_its_lease() {
    let (_, docs) = generate(&[]);
    const READ: [&str; 3] = ["get", "list", "watch"];
    let verbs = |doc: &Value| -> Vec<(String, String)> {
        doc["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .flat_map(|rule| {
                let resources: Vec<String> = rule["resources"]
                    .as_array()
                    .expect("resources")
                    .iter()
                    .map(|r| r.as_str().expect("str").to_string())
                    .collect();
                let verbs: Vec<String> = rule["verbs"]
                    .as_array()
                    .expect("verbs")
                    .iter()
                    .map(|v| v.as_str().expect("str").to_string())
                    .collect();
                resources
                    .into_iter()
                    .flat_map(move |r| verbs.clone().into_iter().map(move |v| (r.clone(), v)))
            })
            .collect()
    };
    for (resource, verb) in verbs(find(&docs, "ClusterRole", "tollgate-webhook")) {
        assert!(
            READ.contains(&verb.as_str()),
            "the webhook may {verb} {resource}"
        );
    }
    for (resource, verb) in verbs(find(&docs, "ClusterRole", "tollgate-audit")) {
        assert!(
            READ.contains(&verb.as_str()),
            "the audit may {verb} {resource} cluster-wide"
        );
    }
    for (resource, verb) in verbs(find(&docs, "ClusterRole", "tollgate-audit-reports")) {
        assert!(
            resource.ends_with("policyreports"),
            "the audit may {verb} {resource}"
        );
    }
    let lease = find(&docs, "Role", "tollgate-audit");
    assert_eq!(
        lease["metadata"]["namespace"], "tollgate",
        "the Lease grant is namespaced"
    );
    for (resource, verb) in verbs(lease) {
        assert_eq!(
            resource, "leases",
            "the audit Role grants {verb} {resource}"
        );
    }
    for rule in lease["rules"].as_array().expect("rules") {
        if rule["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .any(|v| v == "update")
        {
            assert_eq!(
                rule["resourceNames"],
                json!(["tollgate-audit"]),
                "update is limited to its own Lease"
            );
        }
    }
    assert!(
        docs.iter().all(|d| d["kind"] != "ClusterRole"
            || !verbs(d).iter().any(|(r, _)| r == "*" || r == "secrets")),
        "no wildcard or Secret access"
    );

    let (_, quiet) = generate(&["--no-audit-reports"]);
    assert!(
        !kinds(&quiet).iter().any(|k| k.contains("reports")),
        "no report grant without reports: {:?}",
        kinds(&quiet)
    );
    let (_, cron) = generate(&["--audit", "cronjob"]);
    assert!(
        !kinds(&cron).iter().any(|k| k.starts_with("Role/")),
        "a CronJob elects no leader: {:?}",
        kinds(&cron)
    );
    let (_, none) = generate(&["--audit", "none"]);
    assert!(
        !kinds(&none).iter().any(|k| k.contains("audit")),
        "{:?}",
        kinds(&none)
    );
}

#[test]
fn tollgates_pods_are_hardened_available_and_on_control_plane_nodes() {
    let (_, docs) = generate(&["--audit", "cronjob"]);
    let deployment = find(&docs, "Deployment", "tollgate-webhook");
    let cron = find(&docs, "CronJob", "tollgate-audit");
    let webhook_pod = &deployment["spec"]["template"]["spec"];
    assert!(deployment["spec"]["replicas"].as_u64().expect("replicas") >= 2);
    for pod in [
        webhook_pod,
        &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ] {
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["priorityClassName"], "tollgate");
        let terms = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"];
        assert_eq!(
            terms[0]["matchExpressions"][0]["key"],
            "node-role.kubernetes.io/control-plane"
        );
        assert!(
            pod["tolerations"]
                .as_array()
                .expect("tolerations")
                .iter()
                .any(|t| t["key"] == "node-role.kubernetes.io/control-plane"
                    && t["effect"] == "NoSchedule")
        );
        for container in pod["containers"].as_array().expect("containers") {
            let security = &container["securityContext"];
            assert_eq!(security["readOnlyRootFilesystem"], true);
            assert_eq!(security["allowPrivilegeEscalation"], false);
            assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
            let resources = &container["resources"];
            for field in ["requests", "limits"] {
                assert!(
                    resources[field]["cpu"].is_string() && resources[field]["memory"].is_string(),
                    "{field}: {resources}"
                );
            }
        }
    }
    let container = &webhook_pod["containers"][0];
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path);
        assert_eq!(container[probe]["httpGet"]["scheme"], "HTTPS");
    }
    let anti = &webhook_pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        anti["labelSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let pdb = find(&docs, "PodDisruptionBudget", "tollgate-webhook");
    assert_eq!(pdb["spec"]["selector"], deployment["spec"]["selector"]);
    assert_eq!(
        pdb["spec"]["maxUnavailable"], 1,
        "drains proceed one replica at a time"
    );
    let service = find(&docs, "Service", "tollgate-webhook");
    assert_eq!(
        &service["spec"]["selector"],
        &deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn the_webhooks_exclude_tollgates_namespace_have_no_side_effects_and_time_out_after_the_server() {
    for namespace in ["tollgate", "policy-system"] {
        let (_, docs) = generate(&["-n", namespace, "--timeout-seconds", "7"]);
        let deployment = find(&docs, "Deployment", "tollgate-webhook");
        let args: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let server_deadline: u64 = args
            .iter()
            .find_map(|a| a.strip_prefix("--request-timeout="))
            .and_then(|t| t.strip_suffix('s'))
            .and_then(|t| t.parse().ok())
            .expect("--request-timeout=Ns");
        let hooks = webhooks(&docs);
        assert_eq!(hooks.len(), 2, "a validating and a mutating webhook");
        for hook in hooks {
            assert_eq!(hook["sideEffects"], "None");
            assert_eq!(hook["admissionReviewVersions"], json!(["v1", "v1beta1"]));
            let timeout = hook["timeoutSeconds"].as_u64().expect("timeoutSeconds");
            assert!(
                timeout < 30 && timeout > server_deadline,
                "timeout {timeout} s vs server deadline {server_deadline} s"
            );
            assert_eq!(hook["clientConfig"]["service"]["namespace"], namespace);
            assert_eq!(
                hook["namespaceSelector"]["matchExpressions"],
                json!([{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [namespace]}])
            );
            assert!(
                ["Fail", "Ignore"]
                    .contains(&hook["failurePolicy"].as_str().expect("failurePolicy"))
            );
        }
    }
}

#[test]
fn tls_comes_from_cert_manager_or_from_the_kept_self_signed_ca() {
    let (_, docs) = generate(&[]);
    let certificate = find(&docs, "Certificate", "tollgate-webhook");
    assert_eq!(certificate["spec"]["secretName"], "tollgate-webhook-tls");
    assert!(
        certificate["spec"]["dnsNames"]
            .as_array()
            .expect("dnsNames")
            .contains(&json!("tollgate-webhook.tollgate.svc"))
    );
    for config in docs.iter().filter(|d| {
        d["kind"]
            .as_str()
            .is_some_and(|k| k.ends_with("WebhookConfiguration"))
    }) {
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "tollgate/tollgate-webhook"
        );
        assert!(
            config["webhooks"][0]["clientConfig"]
                .get("caBundle")
                .is_none(),
            "the cainjector fills caBundle"
        );
    }

    let sandbox = Sandbox::new();
    let ca = sandbox.path().join("ca");
    let args = ca_dir_args(&ca);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (first, docs) = generate(&args);
    let secret = find(&docs, "Secret", "tollgate-webhook-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let decode = |v: &Value| {
        use base64::Engine as _;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().expect("base64 string"))
                .expect("base64"),
        )
        .expect("PEM text")
    };
    let ca_pem = std::fs::read_to_string(ca.join("ca.crt")).expect("ca.crt kept");
    assert_eq!(decode(&secret["data"]["ca.crt"]), ca_pem);
    for hook in webhooks(&docs) {
        assert_eq!(
            decode(&hook["clientConfig"]["caBundle"]),
            ca_pem,
            "caBundle is the kept CA"
        );
    }
    // The serving certificate chains to the CA and names the Service (checked
    // offline here; a real handshake with `tollgate serve` is the next test).
    verify_serving_certificate(
        &ca_pem,
        &decode(&secret["data"]["tls.crt"]),
        "tollgate-webhook.tollgate.svc",
    );
    let (again, _) = generate(&args);
    assert_eq!(
        first, again,
        "a rerun with the same --ca-dir writes the same bytes"
    );

    tollgate(&["generate", "install", "--tls", "self-signed"], None)
        .assert_bad_input(&["--ca-dir"]);
    tollgate(&["generate", "install", "-n", "Not_A_Namespace"], None)
        .assert_bad_input(&["Not_A_Namespace", "namespace"]);
    tollgate(
        &["generate", "install", "--otlp-endpoint", "collector:4317"],
        None,
    )
    .assert_bad_input(&["--otlp-endpoint", "http://"]);
}

fn verify_serving_certificate(ca_pem: &str, cert_pem: &str, name: &str) {
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject as _};
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM");
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("certificate PEM");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).expect("CA accepted as a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("verifier");
    use rustls::client::danger::ServerCertVerifier as _;
    verifier
        .verify_server_cert(
            &cert,
            &[],
            &ServerName::try_from(name.to_string()).expect("name"),
            &[],
            UnixTime::now(),
        )
        .expect("the serving certificate chains to caBundle and names the Service");
}

#[test]
fn output_is_byte_identical_on_rerun_and_the_directory_form_holds_the_same_objects() {
    let (first, docs) = generate(&["--otlp-endpoint", "http://collector:4318"]);
    let (second, _) = generate(&["--otlp-endpoint", "http://collector:4318"]);
    assert_eq!(first, second);
    let sandbox = Sandbox::new();
    let out = sandbox.path().join("out");
    let dir = out.display().to_string();
    let write_dir = |extra: &[&str]| {
        let mut argv = vec!["generate", "install", "-o", &dir];
        argv.extend_from_slice(extra);
        tollgate(&argv, None).assert_code(0);
    };
    let otlp = ["--otlp-endpoint", "http://collector:4318"];
    write_dir(&otlp);
    write_dir(&otlp);
    let mut files: Vec<_> = std::fs::read_dir(&out)
        .expect("output dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "00-namespace.yaml",
            "10-rbac.yaml",
            "20-tls.yaml",
            "30-webhook.yaml",
            "40-audit.yaml",
            "50-admission.yaml"
        ]
    );
    // A group left out by a rerun does not stay behind for `kubectl apply -f`.
    std::fs::write(out.join("notes.txt"), "mine").expect("write");
    write_dir(&["--audit", "none"]);
    assert!(
        !out.join("40-audit.yaml").exists(),
        "the stale audit file was removed"
    );
    assert!(
        out.join("notes.txt").exists(),
        "files the generator does not own are kept"
    );
    std::fs::remove_file(out.join("notes.txt")).expect("remove");
    write_dir(&otlp);
    let joined: String = files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .collect();
    assert_eq!(joined, first, "the files, in apply order, are the stream");
    let env = &find(&docs, "Deployment", "tollgate-webhook")["spec"]["template"]["spec"]["containers"]
        [0]["env"];
    let value = |name: &str| {
        env.as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        value("OTEL_EXPORTER_OTLP_ENDPOINT"),
        Some(json!("http://collector:4318"))
    );
    assert_eq!(value("OTEL_SERVICE_NAME"), Some(json!("tollgate-webhook")));
    assert!(value("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|v| {
        v.as_str()
            .is_some_and(|v| v.contains("k8s.pod.name=$(POD_NAME)"))
    }));
}

#[test]
fn kubectl_reads_every_generated_file() {
    // `kubectl apply --dry-run=client` asks the API server for its resource
    // mappings (and the OpenAPI schema unless --validate=false), so it cannot
    // run without a cluster; `kubectl kustomize` parses every document as a
    // Kubernetes resource offline (apiVersion, kind, metadata.name, YAML).
    let kubectl = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output();
    if !kubectl.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: kubectl is not installed");
        return;
    }
    eprintln!(
        "note: kubectl apply --dry-run=client needs an API server for discovery; using kubectl kustomize offline"
    );
    let sandbox = Sandbox::new();
    let out = sandbox.path().join("out");
    let ca = sandbox.path().join("ca").display().to_string();
    tollgate(
        &[
            "generate",
            "install",
            "--tls",
            "self-signed",
            "--ca-dir",
            &ca,
            "-o",
            &out.display().to_string(),
        ],
        None,
    )
    .assert_code(0);
    let files: Vec<String> = {
        let mut f: Vec<String> = std::fs::read_dir(&out)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        f.sort();
        f
    };
    std::fs::write(
        out.join("kustomization.yaml"),
        format!(
            "resources:\n{}",
            files.iter().map(|f| format!("- {f}\n")).collect::<String>()
        ),
    )
    .expect("write kustomization");
    let built = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(&out)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        built.status.success(),
        "kubectl kustomize failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let mut from_kubectl: Vec<String> =
        kinds(&parse_stream(&String::from_utf8_lossy(&built.stdout)));
    let (_, docs) = generate(
        &ca_dir_args(Path::new(&ca))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let mut ours = kinds(&docs);
    from_kubectl.sort();
    ours.sort();
    assert_eq!(from_kubectl, ours);
}

#[test]
fn the_webhook_rules_cover_every_kind_the_bundled_pack_judges() {
    let (_, docs) = generate(&[]);
    let covered = |kind: &str| -> BTreeSet<String> {
        docs.iter()
            .filter(|d| d["kind"] == kind)
            .flat_map(|d| d["webhooks"][0]["rules"].as_array().expect("rules").iter())
            .flat_map(|r| {
                r["resources"]
                    .as_array()
                    .expect("resources")
                    .iter()
                    .map(|x| x.as_str().expect("str").to_string())
            })
            .collect()
    };
    let validating = covered("ValidatingWebhookConfiguration");
    let mutating = covered("MutatingWebhookConfiguration");
    let plural = |kind: &str| {
        tollgate::generate::install::admission::RESOURCES
            .iter()
            .find(|r| r.kind == kind)
            .map(|r| r.resource)
            .unwrap_or_else(|| panic!("{kind} has a resource"))
    };
    let set = pack_set();
    let mut judged = BTreeSet::new();
    for policy in set.policies() {
        for kind in &policy.metadata.kinds {
            judged.insert(plural(kind).to_string());
            assert!(
                validating.contains(plural(kind)),
                "{} judges {kind}, not in {validating:?}",
                policy.name
            );
            if policy.metadata.mutating {
                assert!(
                    mutating.contains(plural(kind)),
                    "{} mutates {kind}, not in {mutating:?}",
                    policy.name
                );
            }
        }
    }
    assert_eq!(
        validating, judged,
        "the webhook intercepts nothing the pack does not judge"
    );
    assert!(validating.is_superset(&BTreeSet::from([
        "pods".to_string(),
        "nodes".to_string(),
        "deployments".to_string()
    ])));
}

#[test]
fn local_policy_files_are_packaged_and_a_kind_without_a_resource_is_refused() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("policies");
    sandbox.write_cel_policy("policies/pdb-only", "  kinds: [PodDisruptionBudget]\n  validations:\n  - expression: \"true\"\n    message: never\n");
    let (_, docs) = generate(&[
        "--policies",
        "autoscaler-isolation",
        &dir.display().to_string(),
        "--audit",
        "cronjob",
    ]);
    let configmap = find(&docs, "ConfigMap", "tollgate-policies");
    assert!(
        configmap["data"]["pdb-only.yaml"]
            .as_str()
            .is_some_and(|t| t.contains("PodDisruptionBudget"))
    );
    let pod = &find(&docs, "Deployment", "tollgate-webhook")["spec"]["template"]["spec"];
    let args = &pod["containers"][0]["args"];
    assert!(
        args.as_array()
            .expect("args")
            .contains(&json!("--policy=/etc/tollgate/policies")),
        "{args}"
    );
    assert!(
        pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["configMap"]["name"] == "tollgate-policies")
    );
    let job_pod = &find(&docs, "CronJob", "tollgate-audit")["spec"]["jobTemplate"]["spec"]["template"]
        ["spec"];
    assert_eq!(
        job_pod["containers"][0]["volumeMounts"][0]["mountPath"],
        "/etc/tollgate/policies"
    );

    sandbox.write_cel_policy(
        "odd/fancy",
        "  kinds: [FancyWidget]\n  validations:\n  - expression: \"true\"\n    message: never\n",
    );
    tollgate(
        &[
            "generate",
            "install",
            "--policies",
            &sandbox.path().join("odd").display().to_string(),
        ],
        None,
    )
    .assert_bad_input(&["FancyWidget", "is not a built-in Kubernetes kind"]);
}

#[test]
fn tollgates_own_workloads_pass_its_own_pack() {
    let (_, docs) = generate(&["--audit", "deployment"]);
    let (_, cron) = generate(&["--audit", "cronjob"]);
    let evaluator = Evaluator::new(pack_set());
    let cluster: Arc<dyn ClusterView> = Arc::new(Empty::default());
    for doc in docs.iter().chain(cron.iter()).filter(|d| {
        ["Deployment", "CronJob", "PodDisruptionBudget"].contains(&d["kind"].as_str().unwrap_or(""))
    }) {
        let review = Review::from_object(doc.clone()).expect("review");
        let verdict = evaluator.evaluate(&review, &cluster);
        assert!(
            !verdict.results.is_empty(),
            "no policy judged {}",
            doc["kind"]
        );
        let findings: Vec<String> = verdict
            .results
            .iter()
            .flat_map(|r| {
                r.violations
                    .iter()
                    .map(move |v| format!("{}: {}", r.policy, v.message))
            })
            .collect();
        assert!(
            verdict.allowed && findings.is_empty(),
            "{}/{}: {findings:#?}",
            doc["kind"],
            doc["metadata"]["name"]
        );
    }
}

/// Kills the server when the test ends, passing or not.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_self_signed_secret_serves_the_webhook_to_a_client_that_trusts_only_the_ca_bundle() {
    use std::io::{Read as _, Write as _};
    use std::time::{Duration, Instant};

    use base64::Engine as _;
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject as _};

    let sandbox = Sandbox::new();
    let ca = sandbox.path().join("ca");
    let args = ca_dir_args(&ca);
    let (_, docs) = generate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // What the pod mounts (the Secret) and what the API server trusts (caBundle).
    let secret = find(&docs, "Secret", "tollgate-webhook-tls");
    let decode = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("base64")
    };
    let cert = sandbox.write("tls/tls.crt", decode(&secret["data"]["tls.crt"]));
    let key = sandbox.write("tls/tls.key", decode(&secret["data"]["tls.key"]));
    let bundle = decode(&webhooks(&docs)[0]["clientConfig"]["caBundle"]);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let _server = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["serve", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .env(
                "TOLLGATE_CACHE_DIR",
                workspace().join("target").join("integration-cache"),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tollgate serve"),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&bundle).expect("caBundle PEM"))
        .expect("caBundle as root");
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    // The name the API server uses for clientConfig.service.
    let name = ServerName::try_from("tollgate-webhook.tollgate.svc").expect("name");
    let deadline = Instant::now() + Duration::from_secs(60);
    let response = loop {
        let attempt = (|| -> Result<String, String> {
            let tcp =
                std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                .map_err(|e| e.to_string())?;
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            tls.write_all(b"GET /readyz HTTP/1.1\r\nHost: tollgate-webhook.tollgate.svc\r\nConnection: close\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut text = String::new();
            tls.read_to_string(&mut text).map_err(|e| e.to_string())?;
            Ok(text)
        })();
        match attempt {
            Ok(text) if text.starts_with("HTTP/1.1 200") => break text,
            // Certificate errors are final; refused connections and 503 (still loading) are retried.
            Err(e) if e.contains("certificate") || e.contains("Certificate") => {
                panic!("TLS handshake failed: {e}")
            }
            other if Instant::now() > deadline => {
                panic!("the server did not become ready: {other:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[test]
fn without_control_plane_placement_the_pods_schedule_anywhere_but_still_spread() {
    let pods = |docs: &[Value]| -> Vec<Value> {
        docs.iter()
            .filter_map(|d| match d["kind"].as_str() {
                Some("Deployment") => Some(d["spec"]["template"]["spec"].clone()),
                Some("CronJob") => {
                    Some(d["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone())
                }
                _ => None,
            })
            .collect()
    };
    for audit in ["deployment", "cronjob"] {
        let (_, docs) = generate(&["--no-control-plane", "--audit", audit]);
        let pods = pods(&docs);
        assert_eq!(pods.len(), 2, "webhook and audit pods");
        for pod in &pods {
            assert!(pod["tolerations"].is_null(), "{pod}");
            assert!(pod["affinity"]["nodeAffinity"].is_null(), "{pod}");
            assert!(pod["nodeSelector"].is_null(), "{pod}");
        }
        let webhook = &find(&docs, "Deployment", "tollgate-webhook")["spec"]["template"]["spec"];
        assert!(
            webhook["affinity"]["podAntiAffinity"].is_object(),
            "replicas still spread over nodes"
        );
    }
}
