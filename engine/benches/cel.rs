//! Criterion benchmarks for CEL (docs/benchmarks.md, "CEL"): typical
//! placement expressions evaluated on their own against the realistic Pod
//! (`benches/data/pod.json`, converted once), Kubernetes library calls, and
//! the CEL form of the whole autoscaler-isolation pack (the `policy.cel.yaml`
//! twins under `policies/*/`) on that Pod.
//!
//! `cargo bench -p tollgate --bench cel`

use std::path::Path;
use std::sync::Arc;

#[path = "common/fixtures.rs"]
mod fixtures;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use fixtures::{PLACEMENT_EXPRESSIONS, pod};
use tollgate::cel::CelPolicy;
use tollgate::cel::expression::{Bindings, Expression};
use tollgate::cluster::{ClusterView, Empty};
use tollgate::evaluator::Evaluator;
use tollgate::policy::{PolicySet, SetConfig};
use tollgate::review::Review;
use tollgate::wasm::{Runtime, RuntimeConfig};

/// The allocator of the `tollgate` binary (`src/main.rs`): the figures are
/// those of what ships (glibc's malloc makes the conversion of a request a
/// third slower; docs/benchmarks.md, "CEL").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn expressions(c: &mut Criterion) {
    let mut bindings = Bindings::new();
    bindings.insert_json("object", &pod());
    // Kubernetes library calls and a two-variable comprehension, besides the
    // placement expressions shared with the evaluation benchmark.
    let library = [
        (
            "image_registry_matches",
            "object.spec.containers.all(c, c.image.matches('^(registry\\\\.k8s\\\\.io|quay\\\\.io)/'))",
        ),
        (
            "memory_request_quantity",
            "object.spec.containers.all(c, !has(c.resources.requests) || !('memory' in c.resources.requests) || quantity(c.resources.requests.memory).isLessThan(quantity('1Gi')))",
        ),
        (
            "two_variable_all",
            "object.metadata.labels.all(k, v, k.size() <= 63 && v.size() <= 63)",
        ),
    ];
    let mut group = c.benchmark_group("cel/standalone");
    for &(name, source) in PLACEMENT_EXPRESSIONS.iter().chain(&library) {
        let expr = Expression::compile(source).expect("compiles");
        let value = expr.evaluate(&bindings).expect("evaluates");
        assert!(value.is_boolean(), "{name}: {value}");
        group.bench_function(name, |b| b.iter(|| expr.evaluate_with(&bindings, |_| ())));
    }
    group.finish();
}

fn pack(c: &mut Criterion) {
    let runtime = Runtime::new(&RuntimeConfig {
        cache_dir: None,
        // No WASM policy runs here: one slot keeps the pooling allocator's
        // address-space reservation small enough for valgrind (callgrind).
        max_concurrent: 1,
        ..Default::default()
    })
    .expect("engine");
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut twins: Vec<String> = std::fs::read_dir(&policies)
        .expect("policies/")
        .filter_map(|e| e.ok().map(|e| e.path().join("policy.cel.yaml")))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    twins.sort();
    assert_eq!(twins.len(), 5, "the five CEL twins: {twins:?}");
    let set = PolicySet::load(&runtime, &twins, &SetConfig::default()).expect("CEL pack");
    let evaluator = Evaluator::new(set);
    let cluster: Arc<dyn ClusterView> = Arc::new(Empty::default());
    let object = pod();
    let warmed = Review::from_object(object.clone()).expect("pod");
    let verdict = evaluator.evaluate(&warmed, &cluster);
    assert!(
        verdict.results.iter().all(|r| r.error.is_none()),
        "{verdict:?}"
    );
    // A CEL policy that reads nothing: evaluating it converts a review's CEL
    // inputs, and computes no variable the twins could share.
    let convert = CelPolicy::compile(
        Path::new("convert.yaml"),
        serde_json::json!({
            "apiVersion": "tollgate.dev/v1alpha1",
            "kind": "CelPolicy",
            "metadata": {"name": "convert"},
            "spec": {"validations": [{"expression": "true"}]},
        }),
    )
    .expect("converting policy");
    let mut group = c.benchmark_group("cel/pack");
    // The CEL inputs of a review are converted once and shared: this is the
    // cost of the five policies themselves, on a review whose inputs are
    // converted and whose variables no policy has computed yet (the first
    // twin to need a variable the others share computes it).
    group.bench_function("autoscaler-isolation/warmed_review", |b| {
        b.iter_batched(
            || {
                let review = Review::from_object(object.clone()).expect("pod");
                convert
                    .evaluate(&review, cluster.as_ref())
                    .expect("converts");
                review
            },
            |review| {
                let verdict = evaluator.evaluate(&review, &cluster);
                (review, verdict)
            },
            BatchSize::SmallInput,
        )
    });
    // The whole request: Review from JSON, conversion to CEL, five policies.
    group.bench_function("autoscaler-isolation/from_json", |b| {
        b.iter(|| {
            let review = Review::from_object(object.clone()).expect("pod");
            evaluator.evaluate(&review, &cluster)
        })
    });
    group.finish();
}

criterion_group!(benches, expressions, pack);
criterion_main!(benches);
