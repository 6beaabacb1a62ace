//! Hostile guests are contained: each misbehaving policy is stopped by the
//! right limit and reported with the right `error.kind`, its failure policy
//! decides the verdict (Fail denies, Ignore allows with a warning), the other
//! policies of the set still answer, and the next evaluation in the same
//! runtime works. A component of another world is refused at load.
//!
//! Limits are configured as an operator would, in the settings document
//! (`policies: {<name>: {limits: {...}, failurePolicy: ...}}`). Wall-clock
//! assertions are only coarse containment bounds.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate::decision::{FailurePolicy, FaultKind};

use crate::util::{
    Eval, Guest, ResultExt, Sandbox, VerdictExt, assert_echo_ran, load, no_context, pod, review,
    try_load,
};

/// Far above every limit under test, far below "hung".
const CONTAINED_WITHIN: Duration = Duration::from_secs(5);

/// A deadline long enough that only the limit under test can stop the guest.
const GENEROUS_TIMEOUT_MS: u64 = 10_000;

/// One hostile guest and how it must be stopped.
struct Hostile {
    guest: Guest,
    /// Its policy name (from its metadata).
    name: &'static str,
    fault: FaultKind,
    limits: Value,
}

/// The settings document: limits, failure policy and instance mode for the
/// hostile guest, and `echo` told to allow so that only the hostile policy
/// decides.
fn settings(hostile: &Hostile, failure_policy: FailurePolicy, instances: &str) -> Value {
    json!({"policies": {
        hostile.name: {"limits": hostile.limits, "failurePolicy": failure_policy, "instances": instances},
        "echo": {"settings": {"allow": true}, "instances": instances},
    }})
}

/// Evaluate the hostile guest (then `echo`, in one set) under both failure
/// policies, with fresh and with warm instances, and check containment, the
/// verdict, and that the runtime (and a warm policy's next evaluation) still works.
fn assert_contained(hostile: Hostile) {
    let subject = review(pod("default", "victim"));
    for (failure_policy, instances) in [
        (FailurePolicy::Fail, "fresh"),
        (FailurePolicy::Ignore, "fresh"),
        (FailurePolicy::Fail, "reuse"),
        (FailurePolicy::Ignore, "reuse"),
    ] {
        let evaluator = load(
            &[hostile.guest.wasm(), Guest::Echo.wasm()],
            settings(&hostile, failure_policy, instances),
        );
        let started = Instant::now();
        let verdict = evaluator.evaluate(&subject, &no_context());
        let elapsed = started.elapsed();
        assert!(
            elapsed < CONTAINED_WITHIN,
            "{} ran for {elapsed:?}",
            hostile.name
        );

        let result = verdict.result(hostile.name);
        assert_eq!(result.fault(), Some(hostile.fault), "{result:#?}");
        let message = &result.error.as_ref().expect("a fault").message;
        assert!(
            message.contains(hostile.name),
            "the fault does not name the policy: {message}"
        );
        assert!(
            result.violations.is_empty(),
            "a faulted policy reports no violations: {result:#?}"
        );
        let ignored = failure_policy == FailurePolicy::Ignore;
        assert_eq!(
            result.allowed, ignored,
            "failurePolicy {failure_policy:?} decides: {result:#?}"
        );
        assert_eq!(
            verdict.allowed, ignored,
            "failurePolicy {failure_policy:?} decides the verdict"
        );
        if ignored {
            assert!(
                result
                    .warnings
                    .iter()
                    .any(|w| w.contains(hostile.name) && w.contains("ignored")),
                "an ignored fault is a warning: {result:#?}"
            );
        }
        assert_echo_ran(&verdict, "default", "victim");

        // The runtime is not poisoned: a fresh set and the same set both work again.
        let next =
            load(&[Guest::Echo.wasm()], json!({"allow": true})).evaluate(&subject, &no_context());
        assert!(next.allowed, "{next:#?}");
        assert_echo_ran(&next, "default", "victim");
        let again = evaluator.evaluate(&subject, &no_context());
        assert_eq!(again.result(hostile.name).fault(), Some(hostile.fault));
        assert_echo_ran(&again, "default", "victim");
    }
}

#[test]
fn infinite_loop_is_stopped_at_its_deadline() {
    assert_contained(Hostile {
        guest: Guest::InfiniteLoop,
        name: "infinite-loop",
        fault: FaultKind::Timeout,
        limits: json!({"timeoutMs": 50}),
    });
}

#[test]
fn memory_bomb_is_stopped_at_its_memory_limit() {
    assert_contained(Hostile {
        guest: Guest::MemoryBomb,
        name: "memory-bomb",
        fault: FaultKind::MemoryLimit,
        limits: json!({"memoryBytes": 16 << 20, "timeoutMs": GENEROUS_TIMEOUT_MS}),
    });
}

#[test]
fn deep_recursion_is_a_stack_overflow() {
    assert_contained(Hostile {
        guest: Guest::DeepRecursion,
        name: "deep-recursion",
        fault: FaultKind::StackOverflow,
        limits: json!({"timeoutMs": GENEROUS_TIMEOUT_MS}),
    });
}

#[test]
fn panic_is_a_trap() {
    assert_contained(Hostile {
        guest: Guest::Trap,
        name: "trap",
        fault: FaultKind::Trap,
        limits: json!({"timeoutMs": GENEROUS_TIMEOUT_MS}),
    });
}

#[test]
fn huge_output_is_refused_at_the_output_limit() {
    assert_contained(Hostile {
        guest: Guest::HugeOutput,
        name: "huge-output",
        fault: FaultKind::OutputLimit,
        limits: json!({"outputBytes": 1 << 20, "timeoutMs": GENEROUS_TIMEOUT_MS}),
    });
}

#[test]
fn log_flood_is_stopped_at_the_log_limit() {
    assert_contained(Hostile {
        guest: Guest::LogFlood,
        name: "log-flood",
        fault: FaultKind::LogLimit,
        limits: json!({"logLines": 200, "timeoutMs": GENEROUS_TIMEOUT_MS}),
    });
}

/// Without any configured limit, the default deadline still stops a loop.
#[test]
fn default_limits_stop_an_infinite_loop() {
    let evaluator = load(&[Guest::InfiniteLoop.wasm()], Value::Null);
    let started = Instant::now();
    let verdict = evaluator.evaluate(&review(pod("default", "victim")), &no_context());
    assert!(
        started.elapsed() < CONTAINED_WITHIN,
        "ran for {:?}",
        started.elapsed()
    );
    assert_eq!(
        verdict.result("infinite-loop").fault(),
        Some(FaultKind::Timeout)
    );
    assert!(!verdict.allowed, "the default failure policy is Fail");
}

/// The epoch ticker parks after a tenth of a second without calls; a loop
/// that starts after that is still stopped at its limit, and again after
/// the next idle spell.
#[test]
fn a_loop_after_an_idle_spell_is_still_stopped_at_its_limit() {
    let settings = json!({"policies": {"infinite-loop": {"limits": {"timeoutMs": 50}}}});
    let evaluator = load(&[Guest::InfiniteLoop.wasm()], settings);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        // On a thread, so a ticker that never woke fails the test instead of
        // hanging it.
        let (done, verdict) = std::sync::mpsc::channel();
        let judge = evaluator.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            let _ = done.send(judge.evaluate(&review(pod("default", "victim")), &no_context()));
        });
        let verdict = verdict
            .recv_timeout(CONTAINED_WITHIN)
            .unwrap_or_else(|_| panic!("the loop was not stopped within {CONTAINED_WITHIN:?}"));
        let took = started.elapsed();
        assert_eq!(
            verdict.result("infinite-loop").fault(),
            Some(FaultKind::Timeout),
            "{verdict:#?}"
        );
        assert!(
            took >= Duration::from_millis(50) && took < CONTAINED_WITHIN,
            "stopped after {took:?}, not at its 50 ms limit"
        );
    }
}

#[test]
fn memory_limit_above_the_engine_maximum_is_refused_at_load() {
    let settings = json!({"policies": {"echo": {"limits": {"memoryBytes": 64_u64 << 30}}}});
    let error = try_load(&[Guest::Echo.wasm()], settings)
        .expect_err("a 64 GiB memory limit must be refused");
    assert!(
        error.contains("memory limit") && error.contains("maximum"),
        "{error}"
    );
}

#[test]
fn wrong_world_is_refused_at_load_naming_the_file() {
    let path = Guest::WrongWorld.wasm();
    let error = try_load(&[path], Value::Null).expect_err("not a policy component");
    assert!(
        error.contains(&path.display().to_string()),
        "the error does not name the file: {error}"
    );
    assert!(error.contains("does not implement"), "{error}");
}

#[test]
fn wrong_world_is_bad_input_for_the_cli() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "victim"));
    let path = Guest::WrongWorld.arg();
    Eval::new(&[&path])
        .object(&object)
        .run()
        .assert_bad_input(&[&path, "does not implement"]);
}

/// Settings YAML for `infinite-loop` with a 50 ms deadline, as an operator writes it.
fn loop_settings(sandbox: &Sandbox, failure_policy: &str) -> std::path::PathBuf {
    sandbox.write(
        "settings.yaml",
        format!(
            "policies:\n  infinite-loop:\n    limits:\n      timeoutMs: 50\n    failurePolicy: {failure_policy}\n  echo:\n    settings:\n      allow: true\n"
        ),
    )
}

#[test]
fn cli_infinite_loop_times_out_and_fail_denies() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "victim"));
    let (run, verdict) = Eval::new(&[Guest::InfiniteLoop.arg(), Guest::Echo.arg()])
        .settings(loop_settings(&sandbox, "Fail"))
        .object(&object)
        .verdict();
    run.assert_code(1);
    let result = verdict.result("infinite-loop");
    assert_eq!(result.fault(), Some(FaultKind::Timeout), "{result:#?}");
    assert!(!result.allowed);
    assert_echo_ran(&verdict, "default", "victim");
}

#[test]
fn cli_infinite_loop_times_out_and_ignore_allows_with_a_warning() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "victim"));
    let (run, verdict) = Eval::new(&[Guest::InfiniteLoop.arg(), Guest::Echo.arg()])
        .settings(loop_settings(&sandbox, "Ignore"))
        .object(&object)
        .verdict();
    run.assert_code(0);
    let result = verdict.result("infinite-loop");
    assert_eq!(result.fault(), Some(FaultKind::Timeout), "{result:#?}");
    assert!(
        result.warnings.iter().any(|w| w.contains("ignored")),
        "{result:#?}"
    );
    assert_echo_ran(&verdict, "default", "victim");
}
