//! Criterion benchmarks for the evaluation core (docs/benchmarks.md):
//! a fresh-instance and a warm-instance evaluation of a bundled WASM policy
//! on a ~5 KB Pod (warm also with the review lowered instead of encoded),
//! the whole bundled pack, the webhook's in-process path
//! (AdmissionReview bytes in, response bytes out), building the Review,
//! JSON-to-CEL conversion, and typical placement CEL expressions.
//!
//! `cargo bench -p tollgate --bench evaluation`

use std::sync::Arc;

#[path = "common/fixtures.rs"]
mod fixtures;

use criterion::{Criterion, criterion_group, criterion_main};
use fixtures::{PLACEMENT_EXPRESSIONS, pod};
use tollgate::admission::review_protocol;
use tollgate::cel::value::to_cel;
use tollgate::cluster::{ClusterView, Empty};
use tollgate::evaluator::Evaluator;
use tollgate::policy::{PolicySet, SetConfig};
use tollgate::review::Review;
use tollgate::wasm::{Instances, Limits, Runtime, RuntimeConfig, WasmPolicy};

fn wasm(c: &mut Criterion) {
    // Under valgrind, which cannot reserve the default pool's address space,
    // run with TOLLGATE_BENCH_WASM_SLOTS=1 (docs/benchmarks.md).
    let slots = std::env::var("TOLLGATE_BENCH_WASM_SLOTS").ok();
    let runtime = Runtime::new(&RuntimeConfig {
        cache_dir: None,
        max_concurrent: slots.map_or(RuntimeConfig::default().max_concurrent, |s| {
            s.parse().expect("TOLLGATE_BENCH_WASM_SLOTS is a number")
        }),
        ..Default::default()
    })
    .expect("engine");
    let review = Review::from_object(pod()).expect("pod");
    let cluster: Arc<dyn ClusterView> = Arc::new(Empty::default());
    let mut group = c.benchmark_group("wasm");
    for (name, bytes) in tollgate::pack::policies("autoscaler-isolation").expect("bundled pack") {
        let policy =
            WasmPolicy::load(&runtime, name, bytes, Limits::default(), &[]).expect("loads");
        group.bench_function(format!("fresh_instance/{name}"), |b| {
            b.iter(|| {
                policy
                    .evaluate(&review, "", cluster.clone())
                    .expect("evaluates")
            })
        });
        let warm = policy.with_instances(Instances::Reuse);
        group.bench_function(format!("warm_instance/{name}"), |b| {
            b.iter(|| {
                warm.evaluate(&review, "", cluster.clone())
                    .expect("evaluates")
            })
        });
        // The same warm evaluation with the review lowered as the WIT record
        // instead of encoded (docs/policy-contract.md, "Encoded reviews").
        let lowered = warm.with_lowered_reviews().expect("plain world");
        group.bench_function(format!("warm_instance_lowered/{name}"), |b| {
            b.iter(|| {
                lowered
                    .evaluate(&review, "", cluster.clone())
                    .expect("evaluates")
            })
        });
    }
    // The fixed cost of a fresh instance: the same policy on a minimal Pod.
    let (name, bytes) = tollgate::pack::policies("autoscaler-isolation").expect("bundled pack")[3];
    let policy = WasmPolicy::load(&runtime, name, bytes, Limits::default(), &[]).expect("loads");
    let minimal = Review::from_object(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [{"name": "c"}]}}))
    .expect("pod");
    group.bench_function(format!("fresh_instance_minimal_pod/{name}"), |b| {
        b.iter(|| {
            policy
                .evaluate(&minimal, "", cluster.clone())
                .expect("evaluates")
        })
    });
    group.finish();

    let set = PolicySet::load(
        &runtime,
        &["autoscaler-isolation".into()],
        &SetConfig::default(),
    )
    .expect("pack");
    let evaluator = Evaluator::new(set);
    let object = pod();
    c.bench_function("pack/autoscaler-isolation/validate", |b| {
        b.iter(|| {
            let review = Review::from_object(object.clone()).expect("pod");
            evaluator.evaluate(&review, &cluster)
        })
    });
    let fresh = serde_json::json!({"policies": tollgate::pack::policies("autoscaler-isolation")
        .expect("bundled pack")
        .iter()
        .map(|(name, _)| (name.to_string(), serde_json::json!({"instances": "fresh"})))
        .collect::<serde_json::Map<_, _>>()});
    let fresh = SetConfig::from_value(std::path::Path::new("fresh.json"), fresh).expect("settings");
    let fresh = Evaluator::new(
        PolicySet::load(&runtime, &["autoscaler-isolation".into()], &fresh).expect("pack"),
    );
    c.bench_function("pack/autoscaler-isolation/validate_fresh_instances", |b| {
        b.iter(|| {
            let review = Review::from_object(object.clone()).expect("pod");
            fresh.evaluate(&review, &cluster)
        })
    });

    // The webhook's work per review without HTTP and TLS: parse the
    // AdmissionReview, evaluate the pack, write the response.
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/data/pod-review.json"
    ))
    .expect("the benchmark review");
    let mut group = c.benchmark_group("admission");
    group.bench_function("parse", |b| {
        b.iter(|| review_protocol::parse(&body).expect("a review"))
    });
    // The whole body as a tree, taken apart: the path before the one-pass
    // reader, and still the one for bodies it leaves.
    group.bench_function("parse_tree", |b| {
        b.iter(|| {
            let doc = serde_json::from_slice(&body).expect("JSON");
            Review::from_admission(doc).expect("a review")
        })
    });
    group.bench_function("parse_json_only", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(&body).expect("JSON"))
    });
    group.bench_function("validate_in_process", |b| {
        b.iter(|| {
            let request = review_protocol::parse(&body).expect("a review");
            let review = request.review.expect("an object");
            let verdict = evaluator.evaluate(&review, &cluster);
            review_protocol::respond(request.version, &request.uid, &verdict, false)
        })
    });
    group.finish();
}

fn review(c: &mut Criterion) {
    let object = pod();
    c.bench_function("review/from_object", |b| {
        b.iter(|| Review::from_object(object.clone()).expect("pod"))
    });
    c.bench_function("review/clone_json_only", |b| b.iter(|| object.clone()));
}

fn cel(c: &mut Criterion) {
    let object = pod();
    c.bench_function("cel/json_to_cel", |b| {
        b.iter(|| {
            let mut longest = 0;
            to_cel(&object, &mut longest)
        })
    });
    let dir = std::env::temp_dir().join(format!("tollgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cluster: Arc<dyn ClusterView> = Arc::new(Empty::default());
    let runtime = Runtime::new(&RuntimeConfig {
        cache_dir: None,
        max_concurrent: 4,
        ..Default::default()
    })
    .expect("engine");
    let mut group = c.benchmark_group("cel/expression");
    for &(name, expr) in PLACEMENT_EXPRESSIONS {
        let file = dir.join(format!("{name}.yaml"));
        let policy = format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: CelPolicy\nmetadata: {{name: {}}}\nspec:\n  validations:\n  - expression: {:?}\n",
            name.replace('_', "-"),
            expr
        );
        std::fs::write(&file, policy).expect("write policy");
        let set = PolicySet::load(
            &runtime,
            &[file.display().to_string()],
            &SetConfig::default(),
        )
        .expect("compiles");
        let evaluator = Evaluator::new(set);
        // The Review (and its CEL inputs) is shared by every policy of a request;
        // measure one expression's evaluation on a warmed Review.
        let review = Review::from_object(object.clone()).expect("pod");
        let verdict = evaluator.evaluate(&review, &cluster);
        assert!(
            verdict.results[0].error.is_none(),
            "{name}: {:?}",
            verdict.results[0].error
        );
        group.bench_function(name, |b| b.iter(|| evaluator.evaluate(&review, &cluster)));
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, wasm, review, cel);
criterion_main!(benches);
