//! `tollgate cel eval`: values printed as JSON with exit 0, evaluation and
//! compile errors with exit 1, bad usage with exit 2; the Kubernetes
//! libraries and semantics as a policy author sees them.

use serde_json::{Value, json};

use crate::util::{Sandbox, tollgate};

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/name": "web"}
        },
        "spec": {
            "terminationGracePeriodSeconds": 30,
            "containers": [
                {"name": "app", "image": "registry.k8s.io/app:1.2.3",
                 "resources": {"requests": {"memory": "200Mi", "cpu": "250m"}}},
                {"name": "sidecar", "image": "quay.io/side:0.9.0",
                 "resources": {"requests": {"memory": "64Mi", "cpu": "50m"}}}
            ],
            "tolerations": [{"key": "dedicated", "value": "autoscaler", "effect": "NoSchedule"}]
        }
    })
}

/// Evaluate `expr` with the pod as `object`.
fn eval(sandbox: &Sandbox, expr: &str) -> crate::util::Run {
    let object = sandbox.write_json("pod.json", &pod());
    tollgate(
        &[
            "cel".as_ref(),
            "eval".as_ref(),
            "--expr".as_ref(),
            expr.as_ref(),
            "--object".as_ref(),
            object.as_os_str(),
        ],
        None,
    )
}

#[test]
fn values_print_as_json_with_kubernetes_libraries() {
    let sandbox = Sandbox::new();
    for (expr, expected) in [
        // Integers from JSON stay int; label keys are not escaped.
        ("object.spec.terminationGracePeriodSeconds + 1", json!(31)),
        (
            "type(object.spec.terminationGracePeriodSeconds) == int",
            json!(true),
        ),
        (
            "object.metadata.labels['app.kubernetes.io/name']",
            json!("web"),
        ),
        (
            "object.spec.containers.map(c, quantity(c.resources.requests.memory)).all(q, q.isLessThan(quantity('1Gi')))",
            json!(true),
        ),
        (
            "object.spec.containers.map(c, c.image.find('[0-9]+\\\\.[0-9]+\\\\.[0-9]+'))",
            json!(["1.2.3", "0.9.0"]),
        ),
        ("[3, 1, 2].max() + [3, 1, 2].sum()", json!(9)),
        (
            "[1, 2, 3].isSorted() && ['b', 'a'].isSorted() == false",
            json!(true),
        ),
        (
            "semver('1.10.0').isGreaterThan(semver('1.9.0'))",
            json!(true),
        ),
        ("cidr('10.0.0.0/8').containsIP(ip('10.1.2.3'))", json!(true)),
        (
            "url('https://example.com:8443/a?b=c').getPort()",
            json!("8443"),
        ),
        ("sets.intersects(['a', 'b'], ['b'])", json!(true)),
        (
            "object.spec.containers.transformList(i, c, i > 0, c.name)",
            json!(["sidecar"]),
        ),
        (
            "object.metadata.labels.exists(k, v, k.startsWith('app.') && v == 'web')",
            json!(true),
        ),
        (
            "format.dns1123Label().validate('web') == optional.none()",
            json!(true),
        ),
        ("quantity('1.5Gi')", json!("1610612736")),
        // An error absorbed by ||, as in Kubernetes.
        ("object.metadata.missing == 'x' || true", json!(true)),
        ("oldObject == null", json!(true)),
    ] {
        let run = eval(&sandbox, expr);
        run.assert_code(0);
        assert_eq!(run.json(), expected, "{expr}");
    }
}

#[test]
fn errors_exit_1_and_name_the_problem() {
    let sandbox = Sandbox::new();
    for (expr, mention) in [
        // A missing key is an error, not false.
        ("object.metadata.labels['team'] == 'x'", "team"),
        ("[].min()", "empty list"),
        ("'abc'.matches('[')", "not a valid regex"),
        ("[1, 'a'].size()", "aggregate literal"),
        ("quantity('10Mo')", "quantity"),
        ("object.spec.", "compile error"),
    ] {
        let run = eval(&sandbox, expr);
        run.assert_code(1);
        assert!(run.stdout.trim().is_empty(), "{expr}: {}", run.stdout);
        assert!(run.stderr.contains(mention), "{expr}: {}", run.stderr);
    }
}

#[test]
fn params_old_object_and_namespace_are_bound() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod());
    let params = sandbox.write("params.yaml", "maxReplicas: 3\nallowed: [shop]\n");
    let namespace = sandbox.write_json(
        "ns.json",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"tier": "gold"}}}),
    );
    let run = tollgate(
        &[
            "cel".as_ref(),
            "eval".as_ref(),
            "-e".as_ref(),
            "object.metadata.namespace in params.allowed && namespaceObject.metadata.labels.tier == 'gold' && oldObject.metadata.name == 'web' && params.maxReplicas == 3".as_ref(),
            "--object".as_ref(),
            object.as_os_str(),
            "--old-object".as_ref(),
            object.as_os_str(),
            "--params".as_ref(),
            params.as_os_str(),
            "--namespace-object".as_ref(),
            namespace.as_os_str(),
            "-o".as_ref(),
            "yaml".as_ref(),
        ],
        None,
    );
    run.assert_code(0);
    assert_eq!(run.stdout.trim(), "true");
}

#[test]
fn an_unreadable_file_is_bad_input() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path().join("nope.yaml");
    tollgate(
        &[
            "cel".as_ref(),
            "eval".as_ref(),
            "--expr".as_ref(),
            "true".as_ref(),
            "--params".as_ref(),
            missing.as_os_str(),
        ],
        None,
    )
    .assert_bad_input(&["nope.yaml"]);
}
