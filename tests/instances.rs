//! How WASM policies get their instances (`instances: fresh | reuse` in the
//! settings, engine/src/wasm/warm.rs): a fresh instance carries nothing over;
//! a warm one is reused until a fault, memory growth on reuse, or its use
//! limit retires it; the host never shows one evaluation's review to the
//! next; and the bundled pack, which reuses by default, judges the demo
//! cluster exactly as it does with fresh instances.

use serde_json::{Value, json};
use tollgate::evaluator::Evaluator;
use tollgate::wasm::MAX_USES;

use crate::util::{Guest, Sandbox, VerdictExt, load, no_context, pod, review, tollgate, try_load};

/// The `counter` guest's message for one evaluation of `pod` in `default`.
fn count(evaluator: &Evaluator, pod_name: &str) -> String {
    let verdict = evaluator.evaluate(&review(pod("default", pod_name)), &no_context());
    let result = verdict.result("counter");
    assert!(result.error.is_none(), "{result:#?}");
    result.violations[0].message.clone()
}

fn counter(settings: Value) -> Evaluator {
    load(
        &[Guest::Counter.wasm()],
        json!({"policies": {"counter": settings}}),
    )
}

#[test]
fn a_fresh_instance_starts_from_nothing_every_time() {
    for settings in [json!({}), json!({"instances": "fresh"})] {
        let evaluator = counter(settings);
        for name in ["a", "b", "c"] {
            assert_eq!(
                count(&evaluator, name),
                format!("evaluation 1 of this instance: default/{name}")
            );
        }
    }
}

#[test]
fn a_warm_instance_is_reused_and_sees_only_its_own_review() {
    let evaluator = counter(json!({"instances": "reuse"}));
    for (n, name) in ["a", "b", "c", "d"].iter().enumerate() {
        assert_eq!(
            count(&evaluator, name),
            format!("evaluation {} of this instance: default/{name}", n + 1)
        );
    }
}

#[test]
fn a_warm_instance_is_retired_after_its_use_limit() {
    let evaluator = counter(json!({"instances": "reuse"}));
    for n in 1..=MAX_USES {
        assert_eq!(
            count(&evaluator, "p"),
            format!("evaluation {n} of this instance: default/p")
        );
    }
    assert_eq!(
        count(&evaluator, "p"),
        "evaluation 1 of this instance: default/p",
        "a new instance after {MAX_USES} evaluations"
    );
}

#[test]
fn a_warm_instance_whose_memory_grows_on_reuse_is_retired() {
    let evaluator = counter(json!({"instances": "reuse", "settings": {"grow": true}}));
    // The first evaluation sizes the heap; the second grows it on reuse and
    // retires the instance; the third starts afresh.
    let seen: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|name| count(&evaluator, name))
        .collect();
    assert_eq!(
        seen,
        [
            "evaluation 1 of this instance: default/a",
            "evaluation 2 of this instance: default/b",
            "evaluation 1 of this instance: default/c",
            "evaluation 2 of this instance: default/d",
        ]
    );
}

#[test]
fn an_unknown_instance_mode_is_refused_naming_the_file() {
    let error = try_load(
        &[Guest::Counter.wasm()],
        json!({"policies": {"counter": {"instances": "shared"}}}),
    )
    .err()
    .expect("refused");
    assert!(error.contains("test-settings.yaml"), "{error}");
    assert!(error.contains("shared"), "{error}");
}

#[test]
fn the_bundled_pack_judges_the_demo_cluster_the_same_with_fresh_instances() {
    let sandbox = Sandbox::new();
    let names = [
        "no-blanket-tolerations",
        "pdb-drainable",
        "pool-nodes-tainted",
        "pool-opt-in",
        "pool-workloads-evictable",
        "priority-classes",
        "system-components-off-pools",
    ];
    let fresh: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| (n.to_string(), json!({"instances": "fresh"})))
        .collect();
    let settings = sandbox.write_json("fresh.json", &json!({"policies": fresh}));
    let demo = crate::util::workspace().join("examples/clusters/kube-hetzner");
    let demo = demo.display().to_string();
    let warm = tollgate(&["audit", "--snapshot", &demo, "-o", "json"], None);
    let cold = tollgate(
        &[
            "audit",
            "--snapshot",
            &demo,
            "-o",
            "json",
            "--settings",
            &settings.display().to_string(),
        ],
        None,
    );
    assert_eq!(warm.code, 1, "{}", warm.stderr);
    assert_eq!(cold.code, 1, "{}", cold.stderr);
    let (warm, cold) = (warm.json(), cold.json());
    assert!(
        warm["findings"].as_array().is_some_and(|f| f.len() > 5),
        "the demo has findings: {warm}"
    );
    assert_eq!(warm["findings"], cold["findings"]);
    // Each run stamps the time it judged at; the two may be a second apart.
    let (mut warm, mut cold) = (warm["scaleDown"].clone(), cold["scaleDown"].clone());
    for scale_down in [&mut warm, &mut cold] {
        if let Some(assumptions) = scale_down["assumptions"].as_object_mut() {
            assumptions.remove("now");
        }
    }
    assert_eq!(warm, cold);
}
