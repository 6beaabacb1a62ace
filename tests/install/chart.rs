//! The Helm chart: the committed chart is `generate helm-chart`'s output,
//! and rendered (by real Helm, and by the subset renderer) it gives the
//! objects `generate install` writes; its values schema refuses what cannot
//! work.

use std::path::Path;

use serde_json::{Value, json};

use super::helm_template;
use super::{first_difference, generate, kinds, parse_stream};
use crate::util::{Sandbox, tollgate, workspace};

#[test]
fn the_committed_helm_chart_is_the_generators_output() {
    let sandbox = Sandbox::new();
    let out = sandbox.path().join("chart");
    tollgate(
        &["generate", "helm-chart", "-o", &out.display().to_string()],
        None,
    )
    .assert_code(0);
    let committed = workspace().join("deploy/helm/tollgate");
    let listing = |root: &Path| -> Vec<(String, String)> {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let relative = path
                        .strip_prefix(root)
                        .expect("inside")
                        .display()
                        .to_string();
                    files.push((relative, std::fs::read_to_string(&path).expect("read")));
                }
            }
        }
        files.sort();
        files
    };
    let (ours, theirs) = (listing(&out), listing(&committed));
    let names =
        |files: &[(String, String)]| files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&theirs),
        names(&ours),
        "deploy/helm/tollgate is stale: run `tollgate generate helm-chart -o deploy/helm/tollgate`"
    );
    for ((name, committed), (_, generated)) in theirs.iter().zip(&ours) {
        assert!(
            committed == generated,
            "deploy/helm/tollgate/{name} is stale: run `tollgate generate helm-chart -o deploy/helm/tollgate`"
        );
    }
}

/// Render the committed chart with its values.yaml plus `overrides` and the
/// release namespace, as `helm template` would.
fn render_chart(overrides: Value, namespace: &str) -> Vec<Value> {
    let chart = workspace().join("deploy/helm/tollgate");
    let values_text = std::fs::read_to_string(chart.join("values.yaml")).expect("values.yaml");
    let mut values = tollgate::policy::parse_one(&chart.join("values.yaml"), &values_text)
        .expect("values.yaml parses");
    merge(&mut values, overrides);
    let mut templates: Vec<_> = std::fs::read_dir(chart.join("templates"))
        .expect("templates")
        .map(|e| e.expect("entry").path())
        .collect();
    templates.sort();
    let mut docs = Vec::new();
    for template in templates {
        let text = std::fs::read_to_string(&template).expect("template");
        let rendered = helm_template::render(&text, &values, namespace)
            .unwrap_or_else(|e| panic!("{}: {e}", template.display()));
        docs.extend(parse_stream(&rendered));
    }
    docs
}

fn merge(base: &mut Value, overrides: Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (slot, value) => *slot = value,
    }
}

/// For several flag combinations, the chart rendered by `render` (values
/// overrides, release namespace) gives the objects `generate install` writes.
fn assert_chart_renders_like_generate_install(render: impl Fn(&Value, &str) -> Vec<Value>) {
    let sandbox = Sandbox::new();
    let ca = sandbox.path().join("ca");
    let ca_text = ca.display().to_string();
    // Make the CA and serving pair the self-signed values will carry.
    generate(&[
        "--tls",
        "self-signed",
        "--ca-dir",
        &ca_text,
        "-n",
        "policy-system",
    ]);
    let read = |name: &str| std::fs::read_to_string(ca.join(name)).expect("kept PEM");
    let self_signed = json!({"tls": {"mode": "self-signed", "selfSigned": {
        "caCert": read("ca.crt"),
        "cert": read("tollgate-webhook.policy-system.svc.crt"),
        "key": read("tollgate-webhook.policy-system.svc.key"),
    }}});
    let cases: Vec<(Vec<&str>, Value, &str)> = vec![
        (vec![], json!({}), "tollgate"),
        (
            vec![
                "-n",
                "policy-system",
                "--tls",
                "self-signed",
                "--ca-dir",
                &ca_text,
                "--audit",
                "cronjob",
                "--audit-schedule",
                "0 * * * *",
                "--otlp-endpoint",
                "https://otel.example:4318",
            ],
            {
                let mut v = self_signed.clone();
                merge(
                    &mut v,
                    json!({"audit": {"mode": "cronjob", "schedule": "0 * * * *"}, "otlp": {"endpoint": "https://otel.example:4318"}}),
                );
                v
            },
            "policy-system",
        ),
        (
            vec![
                "--audit",
                "none",
                "--replicas",
                "3",
                "--failure-policy",
                "fail",
                "--timeout-seconds",
                "12",
                "--image",
                "registry.local/tollgate:dev",
                "--image-pull-policy",
                "Always",
            ],
            json!({"audit": {"mode": "none"}, "replicas": 3, "webhook": {"failurePolicy": "Fail", "timeoutSeconds": 12}, "image": "registry.local/tollgate:dev", "imagePullPolicy": "Always"}),
            "tollgate",
        ),
        (
            vec![
                "--no-audit-reports",
                "--audit-interval",
                "1h",
                "--no-control-plane",
            ],
            json!({"audit": {"reports": false, "interval": "1h"}, "controlPlane": false}),
            "tollgate",
        ),
        (
            vec!["--no-control-plane", "--audit", "cronjob"],
            json!({"controlPlane": false, "audit": {"mode": "cronjob"}}),
            "tollgate",
        ),
    ];
    for (args, overrides, namespace) in cases {
        let (_, generated) = generate(&args);
        let rendered = render(&overrides, namespace);
        let without_namespace: Vec<Value> = generated
            .into_iter()
            .filter(|d| d["kind"] != "Namespace")
            .collect();
        assert_eq!(kinds(&rendered), kinds(&without_namespace), "{args:?}");
        for (chart, ours) in rendered.iter().zip(&without_namespace) {
            if let Some(difference) = first_difference(chart, ours, String::new()) {
                panic!(
                    "{args:?}: the chart's {}/{} differs (chart vs generate install) at {difference}",
                    ours["kind"], ours["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn the_chart_renders_to_the_same_objects_as_generate_install() {
    assert_chart_renders_like_generate_install(|overrides, namespace| {
        render_chart(overrides.clone(), namespace)
    });
}

/// Where the Helm SDK (Helm's Go library behind a Python binding, the one
/// package registry source of Helm here) is installed for the tests.
fn helm_python() -> Result<std::path::PathBuf, String> {
    static PATH: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let dir = workspace().join("target").join("helm-python");
        let importable = |dir: &Path| {
            std::process::Command::new("python3")
                .args(["-c", "import helm_python.chart"])
                .env("PYTHONPATH", dir)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !importable(&dir) {
            let install = std::process::Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--target",
                ])
                .arg(&dir)
                .arg(format!("helm-python-sdk=={HELM_PYTHON_VERSION}"))
                .output()
                .map_err(|e| format!("python3 is not available: {e}"))?;
            if !install.status.success() || !importable(&dir) {
                return Err(format!(
                    "pip could not install helm-python-sdk: {}",
                    String::from_utf8_lossy(&install.stderr).trim()
                ));
            }
        }
        Ok(dir)
    })
    .clone()
}

/// The helm-python-sdk release (Helm SDK v4.2.3) the tests render with.
const HELM_PYTHON_VERSION: &str = "0.2.2";

/// Render the committed chart with real Helm: values.yaml plus `overrides`,
/// checked against values.schema.json, as `helm template -n <namespace>`.
fn helm_render(dir: &Path, overrides: &Value, namespace: &str) -> Result<Vec<Value>, String> {
    const SCRIPT: &str = r#"
import json, sys
from helm_python.chart import Chart
chart = Chart.load(sys.argv[1])
values = json.loads(sys.argv[2])
try:
    chart.validate_schema(chart.merge_values(values))
    out = chart.render(values=values, name="tollgate", namespace=sys.argv[3], is_install=True)
except Exception as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(3)
print(json.dumps(out))
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(workspace().join("deploy/helm/tollgate"))
        .arg(overrides.to_string())
        .arg(namespace)
        .env("PYTHONPATH", dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    let files: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    Ok(files.values().flat_map(|text| parse_stream(text)).collect())
}

#[test]
fn helm_itself_renders_the_chart_to_the_same_objects_and_enforces_its_schema() {
    let dir = match helm_python() {
        Ok(dir) => dir,
        // CI sets TOLLGATE_REQUIRE_HELM, so there a missing Helm fails instead of skipping.
        Err(reason) if std::env::var_os("TOLLGATE_REQUIRE_HELM").is_some() => {
            panic!("real Helm is required (TOLLGATE_REQUIRE_HELM) but not available: {reason}")
        }
        Err(reason) => {
            eprintln!(
                "skipped: real Helm is not available ({reason}); the subset renderer test still ran"
            );
            return;
        }
    };
    assert_chart_renders_like_generate_install(|overrides, namespace| {
        helm_render(&dir, overrides, namespace)
            .unwrap_or_else(|e| panic!("helm could not render {overrides}: {e}"))
    });
    for (overrides, mentions) in [
        (json!({"audit": {"mode": "cron"}}), "audit"),
        (json!({"tls": {"mode": "self-signed"}}), "selfSigned"),
    ] {
        let error = helm_render(&dir, &overrides, "tollgate").expect_err("the schema refuses it");
        assert!(error.contains(mentions), "{overrides}: {error}");
    }
}

/// Check `value` against the JSON-schema keywords values.schema.json uses
/// (type, enum, const, minimum, maximum, minLength, properties,
/// additionalProperties: false, required, if/then); `pattern` is left to
/// Helm. Returns the first violation's path.
fn schema_violation(schema: &Value, value: &Value, path: &str) -> Option<String> {
    let fail = |what: String| Some(format!("{path}: {what}"));
    if let Some(kind) = schema["type"].as_str() {
        let ok = match kind {
            "object" => value.is_object(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" => value.is_boolean(),
            other => panic!("schema type {other} not handled"),
        };
        if !ok {
            return fail(format!("{value} is not {kind}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return fail(format!("{value} not in {allowed:?}"));
    }
    if !schema["const"].is_null() && &schema["const"] != value {
        return fail(format!("{value} is not {}", schema["const"]));
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), value.as_f64())
        && n < min
    {
        return fail(format!("{n} < {min}"));
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), value.as_f64())
        && n > max
    {
        return fail(format!("{n} > {max}"));
    }
    if let (Some(min), Some(s)) = (schema["minLength"].as_u64(), value.as_str())
        && (s.len() as u64) < min
    {
        return fail(format!("shorter than {min}"));
    }
    if let Some(object) = value.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(key.as_str().expect("required key")) {
                return fail(format!("{key} is required"));
            }
        }
        for (key, item) in object {
            match schema["properties"].get(key) {
                Some(property) => {
                    if let Some(v) = schema_violation(property, item, &format!("{path}.{key}")) {
                        return Some(v);
                    }
                }
                None if schema["additionalProperties"] == false => {
                    return fail(format!("unknown key {key}"));
                }
                None => {}
            }
        }
    }
    if schema["if"].is_object() && schema_violation(&schema["if"], value, path).is_none() {
        return schema_violation(&schema["then"], value, path);
    }
    None
}

#[test]
fn the_chart_schema_accepts_its_defaults_and_refuses_typos_and_missing_certificates() {
    let chart = workspace().join("deploy/helm/tollgate");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(chart.join("values.schema.json")).expect("schema"),
    )
    .expect("JSON");
    let text = std::fs::read_to_string(chart.join("values.yaml")).expect("values.yaml");
    let defaults =
        tollgate::policy::parse_one(&chart.join("values.yaml"), &text).expect("values.yaml parses");
    assert_eq!(schema_violation(&schema, &defaults, "values"), None);
    let pem = "-----BEGIN CERTIFICATE-----\n...";
    let cases = [
        (
            json!({"audit": {"mode": "cron"}}),
            Some("values.audit.mode"),
        ),
        (
            json!({"webhook": {"timeoutSeconds": 31}}),
            Some("values.webhook.timeoutSeconds"),
        ),
        (
            json!({"webhook": {"failurePolicy": "ignore"}}),
            Some("values.webhook.failurePolicy"),
        ),
        (json!({"replica": 3}), Some("unknown key replica")),
        (
            json!({"tls": {"mode": "self-signed"}}),
            Some("values.tls.selfSigned.caCert"),
        ),
        (
            json!({"tls": {"mode": "self-signed", "selfSigned": {"caCert": pem, "cert": pem, "key": pem}}}),
            None,
        ),
        (
            json!({"replicas": 3, "otlp": {"endpoint": "http://c:4317"}}),
            None,
        ),
    ];
    for (overrides, expected) in cases {
        let mut values = defaults.clone();
        merge(&mut values, overrides.clone());
        let found = schema_violation(&schema, &values, "values");
        match expected {
            None => assert_eq!(found, None, "{overrides}"),
            Some(needle) => assert!(
                found.as_deref().is_some_and(|f| f.contains(needle)),
                "{overrides}: {found:?}"
            ),
        }
    }
}
