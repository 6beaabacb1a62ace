//! The webhook reads an AdmissionReview in one pass and keeps the objects as
//! text, parsing only what the placement records read
//! (`admission::envelope`; `placement::pod_review` for Pods,
//! `placement::sparse_tree` for other kinds). These tests hold it to
//! the tree path (`Review::from_admission` over the parsed body): the same
//! records, object, old object and request for every object of the corpus,
//! the Kubernetes AdmissionReview samples and the benchmark review, in
//! CREATE, UPDATE and DELETE requests, compact and indented; and the same
//! answer for bodies the one-pass reader leaves to the tree path.

use serde_json::{Value, json};
use tollgate::admission::review_protocol;
use tollgate::review::Review;

use crate::corpus;
use crate::util::{external_dir, workspace};

/// Parse `body` both ways and compare everything a policy can see; return
/// the review of the one-pass path.
fn same_review(label: &str, body: &[u8]) -> Option<Review> {
    let fast = review_protocol::parse(body);
    let tree = serde_json::from_slice::<Value>(body)
        .map_err(|e| e.to_string())
        .and_then(|doc| Review::from_admission(doc).map_err(|e| e.to_string()));
    let (fast, tree) = match (fast, tree) {
        (Ok(fast), Ok(tree)) => (fast.review.expect("an object"), tree),
        (Err(_), Err(_)) => return None,
        (fast, tree) => panic!(
            "{label}: one path failed: {:?} / {:?}",
            fast.err(),
            tree.err()
        ),
    };
    assert_eq!(fast.records(), tree.records(), "{label}: records");
    assert_eq!(fast.object(), tree.object(), "{label}: object");
    assert_eq!(fast.old_object(), tree.old_object(), "{label}: oldObject");
    assert_eq!(fast.request(), tree.request(), "{label}: request");
    assert_eq!(fast.is_delete(), tree.is_delete(), "{label}: delete");
    let text = serde_json::from_str::<Value>(fast.object_text()).expect("object text parses");
    assert_eq!(&text, tree.object(), "{label}: object text");
    let old_text = fast
        .old_object_text()
        .map(|t| serde_json::from_str::<Value>(t).expect("old object text parses"));
    assert_eq!(
        old_text.as_ref(),
        tree.old_object(),
        "{label}: old object text"
    );
    Some(fast)
}

fn review(operation: &str, object: Option<&Value>, old_object: Option<&Value>) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "kube-system",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object,
            "oldObject": old_object,
            "dryRun": false,
        }
    })
}

/// `object` with a label changed, as an UPDATE's new object.
fn changed(object: &Value) -> Value {
    let mut changed = object.clone();
    if let Some(metadata) = changed.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("labels".into(), json!({"changed": "yes"}));
    }
    changed
}

fn every_form(label: &str, review: &Value) {
    same_review(label, &serde_json::to_vec(review).unwrap());
    let indented = same_review(
        &format!("{label} (indented)"),
        &serde_json::to_vec_pretty(review).unwrap(),
    )
    .expect("a review");
    // The object text is the request's own, indentation and all: the review
    // came from the one-pass path, not from the tree.
    assert!(
        indented.object_text().contains("\n  "),
        "{label}: the object was not kept as text"
    );
}

#[test]
fn every_corpus_object_reads_the_same_from_text_as_from_the_tree() {
    let objects = corpus::objects();
    assert!(
        objects.len() >= 20,
        "the corpus has {} objects",
        objects.len()
    );
    for (name, object) in &objects {
        let new = changed(object);
        every_form(
            &format!("{name} CREATE"),
            &review("CREATE", Some(object), None),
        );
        every_form(
            &format!("{name} UPDATE"),
            &review("UPDATE", Some(&new), Some(object)),
        );
        every_form(
            &format!("{name} DELETE"),
            &review("DELETE", None, Some(object)),
        );
    }
}

#[test]
fn kubernetes_samples_and_the_benchmark_review_read_the_same_from_text() {
    let samples = [
        external_dir().join("kubewarden/kwctl/tests/data/privileged-pod-admission-review.json"),
        external_dir().join("kubewarden/kwctl/tests/data/unprivileged-pod-admission-review.json"),
        workspace().join("engine/benches/data/pod-review.json"),
    ];
    for path in samples {
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        same_review(&path.display().to_string(), &body);
        let tree: Value = serde_json::from_slice(&body).unwrap();
        every_form(&path.display().to_string(), &tree);
    }
}

#[test]
fn bodies_left_to_the_tree_path_are_answered_as_it_answers_them() {
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
        "spec": {"priorityClassName": "a", "containers": [{"name": "c", "image": "i"}]}}"#;
    let request = |rest: &str| {
        format!(
            r#"{{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "request": {{"uid": "u", "operation": "CREATE", {rest}}}}}"#
        )
    };
    let bodies = [
        // An escaped key, repeated keys, null objects.
        request(&format!(r#""\u006fbject": {pod}"#)),
        request(&format!(r#""object": {{"kind": "Pod"}}, "object": {pod}"#)),
        request(&format!(r#""object": {pod}, "oldObject": null"#)),
        request(&format!(r#""object": null, "oldObject": {pod}"#)),
        format!(
            r#"{{"request": 1, "apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
               "request": {{"uid": "u", "object": {pod}}}}}"#
        ),
        format!(
            r#"{{"request": {{"uid": "first", "dryRun": true, "object": {pod}}},
               "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "request": {{"uid": "u", "userInfo": {{"username": "last"}}, "object": {pod}}}}}"#
        ),
        // Objects the full parser refuses, where no record reads.
        request(r#""object": {"apiVersion": "v1", "kind": "Pod", "status": {"m": "\ud800"}}"#),
        request(r#""object": {"apiVersion": "v1", "kind": "Pod", "status": {"n": 1e999}}"#),
        request(&format!(
            r#""object": {pod}, "oldObject": {{"x": "\udc00"}}"#
        )),
        request(&format!(
            r#""object": {{"apiVersion": "v1", "kind": "Pod", "status": {}1{}}}"#,
            "[".repeat(130),
            "]".repeat(130)
        )),
        // Not reviews.
        request(r#""object": {"kind": "Pod"}"#),
        request(&format!(r#""operation": "PATCH", "object": {pod}"#)),
        r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": []}"#.into(),
        r#"{"apiVersion": "v2", "kind": "AdmissionReview", "request": {"uid": "u"}}"#.into(),
        "[]".into(),
    ];
    for body in &bodies {
        let _ = same_review(body, body.as_bytes());
    }
    // A body the tree refuses gets the parser's message for the whole body.
    let bad =
        request(r#""object": {"apiVersion": "v1", "kind": "Pod", "status": {"m": "\ud800"}}"#);
    let error = review_protocol::parse(bad.as_bytes()).unwrap_err();
    let cause = std::error::Error::source(&error).map(ToString::to_string);
    let expected = serde_json::from_str::<Value>(&bad).unwrap_err().to_string();
    assert_eq!(cause, Some(expected), "{error}");
}
