//! Router tests: every route through `admission::router(..)` with
//! `tower::ServiceExt::oneshot`, policies written as CEL files per test, and
//! the response writer on hand-made verdicts (CEL policies do not patch).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::review_protocol::{self, Version};
use super::{Config, State, router};
use crate::cluster::Empty;
use crate::decision::{FailurePolicy, Mode, PolicyResult, Verdict, Violation};
use crate::evaluator::Evaluator;
use crate::policy::{PolicySet, SetConfig};
use crate::wasm::{Runtime, RuntimeConfig};

const REPLICA_LIMIT: &str = "apiVersion: tollgate.dev/v1alpha1
kind: CelPolicy
metadata:
  name: replica-limit
spec:
  kinds: [Deployment]
  validations:
    - rule: too-many-replicas
      expression: \"!has(object.spec.replicas) || object.spec.replicas <= 3\"
      message: at most 3 replicas
";

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(&RuntimeConfig {
            max_concurrent: 8,
            cache_dir: None,
            ..RuntimeConfig::default()
        })
        .expect("wasm runtime")
    })
}

/// The replica-limit policy configured by `settings`, loaded into a state.
fn state_with(config: Config, settings: Value) -> State {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("replica-limit.yaml"), REPLICA_LIMIT).expect("write policy");
    let set_config = SetConfig::from_value(Path::new("settings.yaml"), settings).expect("settings");
    let set = PolicySet::load(runtime(), &[dir.path().display().to_string()], &set_config)
        .expect("policies load");
    let state = State::new(config, Arc::new(Empty::default())).unwrap();
    state.install(Evaluator::new(set));
    state
}

fn state() -> State {
    state_with(Config::default(), Value::Null)
}

fn mode(mode: &str) -> Value {
    json!({"policies": {"replica-limit": {"mode": mode}}})
}

fn deployment(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    })
}

fn review(api_version: &str, operation: &str, object: Value, old_object: Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "admin"},
            "object": object,
            "oldObject": old_object,
            "dryRun": false
        }
    })
}

fn create(replicas: i64) -> Value {
    review(
        "admission.k8s.io/v1",
        "CREATE",
        deployment(replicas),
        Value::Null,
    )
}

async fn send(state: &State, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = router(state.clone())
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, body)
}

async fn post_raw(
    state: &State,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let mut request = Request::post(path);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    send(state, request.body(Body::from(body)).expect("request")).await
}

/// POST `body` as JSON and parse the JSON answer.
async fn post(state: &State, path: &str, body: &Value) -> (StatusCode, Value) {
    let (status, bytes) = post_raw(
        state,
        path,
        Some("application/json"),
        body.to_string().into_bytes(),
    )
    .await;
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, value)
}

async fn get(state: &State, path: &str) -> (StatusCode, String) {
    let (status, body) = send(
        state,
        Request::get(path).body(Body::empty()).expect("request"),
    )
    .await;
    (status, String::from_utf8(body).expect("UTF-8"))
}

/// The `response` of an AdmissionReview answer, after checking the envelope.
/// A CREATE review whose body is too large to be tried inline, so it is
/// always evaluated on the pool.
fn too_large_to_try_inline() -> Value {
    let mut large = create(2);
    large["request"]["object"]["metadata"]["annotations"] =
        json!({"padding": "x".repeat(100 << 10)});
    large
}

/// Assert that every one of `lines` is a whole line of `text` (`context`
/// prefixes the failure message).
fn assert_lines(text: &str, lines: &[impl AsRef<str>], context: &str) {
    for line in lines {
        let line = line.as_ref();
        assert!(
            text.lines().any(|l| l == line),
            "{context}missing {line:?} in:\n{text}"
        );
    }
}

fn response<'a>(answer: &'a Value, api_version: &str) -> &'a Value {
    assert_eq!(answer["apiVersion"], api_version, "{answer}");
    assert_eq!(answer["kind"], "AdmissionReview", "{answer}");
    let response = &answer["response"];
    assert_eq!(
        response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002",
        "{answer}"
    );
    response
}

#[tokio::test]
async fn allows_a_conforming_object() {
    let (status, answer) = post(&state(), "/validate", &create(2)).await;
    assert_eq!(status, StatusCode::OK);
    let response = response(&answer, "admission.k8s.io/v1");
    assert_eq!(response["allowed"], true);
    for absent in [
        "status",
        "patch",
        "patchType",
        "warnings",
        "auditAnnotations",
    ] {
        assert!(
            response.get(absent).is_none(),
            "unexpected {absent}: {response}"
        );
    }
}

#[tokio::test]
async fn denies_with_a_403_naming_the_policy_and_rule() {
    let (status, answer) = post(&state(), "/validate", &create(5)).await;
    assert_eq!(status, StatusCode::OK);
    let response = response(&answer, "admission.k8s.io/v1");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(response["status"]["status"], "Failure");
    assert_eq!(
        response["status"]["message"],
        "replica-limit: at most 3 replicas (too-many-replicas)"
    );
}

#[tokio::test]
async fn dry_run_and_update_get_the_same_answer() {
    let state = state();
    let mut dry = create(5);
    dry["request"]["dryRun"] = json!(true);
    let (_, answer) = post(&state, "/validate", &dry).await;
    assert_eq!(response(&answer, "admission.k8s.io/v1")["allowed"], false);
    let update = review(
        "admission.k8s.io/v1",
        "UPDATE",
        deployment(2),
        deployment(5),
    );
    let (_, answer) = post(&state, "/validate", &update).await;
    assert_eq!(
        response(&answer, "admission.k8s.io/v1")["allowed"],
        true,
        "the new object is judged"
    );
}

#[tokio::test]
async fn a_request_without_any_object_is_allowed_and_annotated() {
    let delete = review("admission.k8s.io/v1", "DELETE", Value::Null, Value::Null);
    let (status, answer) = post(&state(), "/validate", &delete).await;
    assert_eq!(status, StatusCode::OK);
    let response = response(&answer, "admission.k8s.io/v1");
    assert_eq!(response["allowed"], true);
    assert!(
        response["auditAnnotations"]["skipped"].is_string(),
        "{response}"
    );
}

#[tokio::test]
async fn connect_and_subresource_requests_are_answered() {
    let state = state();
    let exec = json!({"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"], "container": "c", "stdin": true});
    let mut connect = review("admission.k8s.io/v1", "CONNECT", exec, Value::Null);
    connect["request"]["subResource"] = json!("exec");
    let (status, answer) = post(&state, "/validate", &connect).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response(&answer, "admission.k8s.io/v1")["allowed"], true);
    let mut scale = review(
        "admission.k8s.io/v1",
        "UPDATE",
        deployment(5),
        deployment(2),
    );
    scale["request"]["subResource"] = json!("status");
    let (_, answer) = post(&state, "/validate", &scale).await;
    assert_eq!(
        response(&answer, "admission.k8s.io/v1")["allowed"],
        false,
        "a sub-resource update judges the object"
    );
}

#[tokio::test]
async fn warn_mode_allows_with_a_warning() {
    let state = state_with(Config::default(), mode("warn"));
    let (_, answer) = post(&state, "/validate", &create(5)).await;
    let response = response(&answer, "admission.k8s.io/v1");
    assert_eq!(response["allowed"], true);
    assert_eq!(
        response["warnings"],
        json!(["replica-limit: at most 3 replicas (too-many-replicas)"])
    );
    assert!(response.get("status").is_none());
}

#[tokio::test]
async fn audit_mode_allows_with_an_audit_annotation() {
    let state = state_with(Config::default(), mode("audit"));
    let (_, answer) = post(&state, "/validate", &create(5)).await;
    let response = response(&answer, "admission.k8s.io/v1");
    assert_eq!(response["allowed"], true);
    assert_eq!(
        response["auditAnnotations"],
        json!({"replica-limit": "too-many-replicas"})
    );
}

#[tokio::test]
async fn v1beta1_is_answered_in_v1beta1() {
    let state = state();
    let request = review(
        "admission.k8s.io/v1beta1",
        "CREATE",
        deployment(5),
        Value::Null,
    );
    let (status, answer) = post(&state, "/validate", &request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        response(&answer, "admission.k8s.io/v1beta1")["allowed"],
        false
    );
}

#[tokio::test]
async fn mutate_without_patches_carries_no_patch_and_still_denies() {
    let state = state();
    let (_, answer) = post(&state, "/mutate", &create(2)).await;
    let response_allowed = response(&answer, "admission.k8s.io/v1");
    assert_eq!(response_allowed["allowed"], true);
    assert!(response_allowed.get("patchType").is_none() && response_allowed.get("patch").is_none());
    let (_, answer) = post(&state, "/mutate", &create(5)).await;
    assert_eq!(response(&answer, "admission.k8s.io/v1")["allowed"], false);
}

fn result(policy: &str, patch: Option<Value>) -> PolicyResult {
    PolicyResult {
        policy: policy.into(),
        allowed: true,
        mode: Mode::Enforce,
        violations: vec![],
        patch,
        warnings: vec![],
        error: None,
        annotations: Default::default(),
    }
}

#[test]
fn the_mutate_answer_carries_every_patch_in_order_as_base64_json_patch() {
    let first = json!([{"op": "add", "path": "/metadata/annotations", "value": {"a": "1"}}]);
    let second = json!([{"op": "add", "path": "/metadata/annotations/b", "value": "2"}]);
    let verdict = Verdict::new(
        vec![
            result("one", Some(first)),
            result("none", None),
            result("two", Some(second)),
        ],
        None,
    );
    let bytes = review_protocol::respond(Version::V1, "u", &verdict, true);
    let answer: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(
            answer["response"]["patch"]
                .as_str()
                .expect("patch is a string"),
        )
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("a JSON Patch");
    let mut object = deployment(1);
    json_patch::patch(&mut object, &patch).expect("the patch applies");
    assert_eq!(
        object["metadata"]["annotations"],
        json!({"a": "1", "b": "2"})
    );

    let validating = serde_json::from_slice::<Value>(&review_protocol::respond(
        Version::V1,
        "u",
        &verdict,
        false,
    ))
    .expect("JSON");
    assert!(
        validating["response"].get("patch").is_none(),
        "/validate never patches"
    );
    let mut denied = verdict.clone();
    denied.results.push(PolicyResult {
        allowed: false,
        violations: vec![Violation::new("r", "no")],
        ..result("deny", None)
    });
    denied.allowed = false;
    let answer: Value =
        serde_json::from_slice(&review_protocol::respond(Version::V1, "u", &denied, true))
            .expect("JSON");
    assert!(
        answer["response"].get("patch").is_none(),
        "a denial carries no patch"
    );
    assert_eq!(answer["response"]["status"]["message"], "deny: no (r)");
}

#[test]
fn warnings_are_not_repeated() {
    let mut one = result("one", None);
    one.warnings = vec!["same".into(), "other".into()];
    let mut two = result("two", None);
    two.warnings = vec!["same".into()];
    let answer: Value = serde_json::from_slice(&review_protocol::respond(
        Version::V1,
        "u",
        &Verdict::new(vec![one, two], None),
        false,
    ))
    .expect("JSON");
    assert_eq!(answer["response"]["warnings"], json!(["same", "other"]));
}

/// Assert a 4xx answer with a metav1.Status body whose message mentions `needle`.
fn assert_rejected(status: StatusCode, body: &[u8], code: StatusCode, needle: &str) {
    assert_eq!(status, code, "{}", String::from_utf8_lossy(body));
    let answer: Value = serde_json::from_slice(body).expect("a JSON Status");
    assert_eq!(answer["kind"], "Status");
    assert_eq!(answer["code"], code.as_u16());
    let message = answer["message"].as_str().expect("message");
    assert!(
        message.contains(needle),
        "{message:?} does not mention {needle:?}"
    );
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let (status, body) = post_raw(
        &state(),
        "/validate",
        Some("application/json"),
        b"{\"apiVersion\": ".to_vec(),
    )
    .await;
    assert_rejected(status, &body, StatusCode::BAD_REQUEST, "not valid JSON");
}

#[tokio::test]
async fn a_wrong_or_missing_content_type_is_a_415() {
    let state = state();
    let body = create(2).to_string().into_bytes();
    let (status, answer) = post_raw(&state, "/validate", Some("text/plain"), body.clone()).await;
    assert_rejected(
        status,
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "text/plain",
    );
    let (status, answer) = post_raw(&state, "/mutate", None, body.clone()).await;
    assert_rejected(
        status,
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "application/json",
    );
    let (status, _) = post_raw(
        &state,
        "/validate",
        Some("application/json; charset=utf-8"),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_oversized_body_is_a_413() {
    let state = state_with(
        Config {
            max_body_bytes: 4096,
            ..Config::default()
        },
        Value::Null,
    );
    let mut big = create(2);
    big["request"]["object"]["metadata"]["annotations"] = json!({"filler": "x".repeat(8192)});
    let (status, body) = post_raw(
        &state,
        "/validate",
        Some("application/json"),
        big.to_string().into_bytes(),
    )
    .await;
    assert_rejected(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "4096 bytes");
}

#[tokio::test]
async fn unknown_versions_kinds_and_bad_requests_are_400s() {
    let state = state();
    let cases = [
        (
            json!({"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview", "request": {}}),
            "admission.k8s.io/v2",
        ),
        (
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}),
            "\"Pod\"",
        ),
        (json!([1, 2]), "AdmissionReview"),
        (
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
            "no request",
        ),
    ];
    for (body, needle) in cases {
        let (status, answer) = post_raw(
            &state,
            "/validate",
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await;
        assert_rejected(status, &answer, StatusCode::BAD_REQUEST, needle);
    }
    let mut no_uid = create(2);
    no_uid["request"]
        .as_object_mut()
        .expect("object")
        .remove("uid");
    let (status, answer) = post_raw(
        &state,
        "/validate",
        Some("application/json"),
        no_uid.to_string().into_bytes(),
    )
    .await;
    assert_rejected(status, &answer, StatusCode::BAD_REQUEST, "uid");
    let mut bad_op = create(2);
    bad_op["request"]["operation"] = json!("PATCH");
    let (status, answer) = post_raw(
        &state,
        "/validate",
        Some("application/json"),
        bad_op.to_string().into_bytes(),
    )
    .await;
    assert_rejected(status, &answer, StatusCode::BAD_REQUEST, "PATCH");
}

#[tokio::test]
async fn probes_follow_the_policy_set() {
    let state = State::new(Config::default(), Arc::new(Empty::default())).unwrap();
    assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
    assert_eq!(
        get(&state, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, body) = post_raw(
        &state,
        "/validate",
        Some("application/json"),
        create(2).to_string().into_bytes(),
    )
    .await;
    assert_rejected(status, &body, StatusCode::SERVICE_UNAVAILABLE, "loading");
    let ready = self::state();
    assert_eq!(get(&ready, "/readyz").await.0, StatusCode::OK);
    ready.start_draining();
    let (status, body) = get(&ready, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("shutting down"), "{body}");
}

#[tokio::test]
async fn a_saturated_server_answers_by_its_failure_policy() {
    for (failure_policy, allowed) in [(FailurePolicy::Fail, false), (FailurePolicy::Ignore, true)] {
        let config = Config {
            max_concurrent: 2,
            request_timeout: Duration::from_millis(50),
            failure_policy,
            ..Config::default()
        };
        let state = state_with(config, Value::Null);
        let _busy = state.occupy_all_threads();
        // Larger than a review tried inline, so it waits for a thread.
        let large = too_large_to_try_inline();
        let (status, answer) = post(&state, "/validate", &large).await;
        assert_eq!(status, StatusCode::OK);
        let response = response(&answer, "admission.k8s.io/v1");
        assert_eq!(response["allowed"], allowed, "{response}");
        let text = response.to_string();
        assert!(
            text.contains("no evaluation slot became free within 50 ms"),
            "{text}"
        );
        if allowed {
            assert!(
                response["auditAnnotations"]["failed-open"].is_string(),
                "{response}"
            );
        } else {
            assert_eq!(response["status"]["code"], 503);
        }
    }
}

/// Evaluations abandoned at their deadline (slow policies) may hold every
/// evaluation thread; a small review arriving while no other request is in
/// the server is still judged, on the worker that read it.
#[tokio::test]
async fn a_lone_small_review_is_judged_while_every_evaluation_thread_is_busy() {
    let config = Config {
        max_concurrent: 2,
        request_timeout: Duration::from_millis(500),
        failure_policy: FailurePolicy::Fail,
        ..Config::default()
    };
    let state = state_with(config, Value::Null);
    let _busy = state.occupy_all_threads();
    let (status, answer) = post(&state, "/validate", &create(2)).await;
    assert_eq!(status, StatusCode::OK);
    let response = response(&answer, "admission.k8s.io/v1");
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("auditAnnotations").is_none(), "{response}");
}

/// A lone small review is evaluated inline, a large one on the pool after
/// a wait in its queue; the metrics say which.
#[tokio::test]
async fn metrics_say_where_reviews_were_evaluated_and_how_long_they_queued() {
    let state = state();
    post(&state, "/validate", &create(2)).await;
    let large = too_large_to_try_inline();
    post(&state, "/validate", &large).await;
    let (_, text) = get(&state, "/metrics").await;
    assert_lines(
        &text,
        &[
            "tollgate_admission_evaluations_total{place=\"inline\"} 1",
            "tollgate_admission_evaluations_total{place=\"inline_cut\"} 0",
            "tollgate_admission_evaluations_total{place=\"pool\"} 1",
            "tollgate_admission_queue_wait_seconds_count 1",
            "# TYPE tollgate_admission_queue_wait_seconds histogram",
        ],
        "",
    );
}

/// Once a review has been in the handlers beside another, lone reviews go
/// to the pool until `overlap_memory` passes without another overlap.
#[tokio::test]
async fn after_reviews_overlap_lone_ones_go_to_the_pool_for_a_while() {
    for (memory, places) in [
        (Duration::from_secs(3600), [1, 2]),
        (Duration::ZERO, [2, 1]),
    ] {
        let state = state_with(
            Config {
                overlap_memory: memory,
                ..Config::default()
            },
            Value::Null,
        );
        // Alone and nothing overlapped yet: inline.
        post(&state, "/validate", &create(2)).await;
        {
            // Beside another request: the pool.
            let _other = state.another_request_in_flight();
            post(&state, "/validate", &create(2)).await;
        }
        // Alone again: the pool while the overlap is remembered, else inline.
        post(&state, "/validate", &create(2)).await;
        let (_, text) = get(&state, "/metrics").await;
        let [inline, pool] = places;
        assert_lines(
            &text,
            &[
                format!("tollgate_admission_evaluations_total{{place=\"inline\"}} {inline}"),
                format!("tollgate_admission_evaluations_total{{place=\"pool\"}} {pool}"),
            ],
            &format!("memory {memory:?}: "),
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_in_sub_millisecond_buckets() {
    let state = state();
    post(&state, "/validate", &create(2)).await;
    post(&state, "/validate", &create(5)).await;
    post_raw(&state, "/mutate", Some("text/plain"), vec![]).await;
    let (status, text) = get(&state, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_lines(
        &text,
        &[
            "tollgate_admission_requests_total{endpoint=\"validate\",outcome=\"allowed\"} 1",
            "tollgate_admission_requests_total{endpoint=\"validate\",outcome=\"denied\"} 1",
            "tollgate_admission_requests_total{endpoint=\"mutate\",outcome=\"rejected\"} 1",
            "tollgate_admission_request_duration_seconds_count{endpoint=\"validate\"} 2",
            "tollgate_policy_results_total{policy=\"replica-limit\",result=\"deny\"} 1",
            "tollgate_policy_results_total{policy=\"replica-limit\",result=\"pass\"} 1",
            "tollgate_policies_loaded 1",
            "tollgate_ready 1",
        ],
        "",
    );
    assert!(text.contains(
        "tollgate_admission_request_duration_seconds_bucket{endpoint=\"validate\",le=\"0.0001\"}"
    ));
    assert!(text.contains("# TYPE tollgate_admission_request_duration_seconds histogram"));
}
