//! Snapshot loading (`--context`): nested folders, multi-document YAML, JSON,
//! `kind: List` and typed lists (`PodList`); one invalid document and one
//! object without `metadata.name` become warnings naming the file and the
//! document while everything else loads. Through the CLI the warnings go to
//! stderr and the exit code is still decided by the verdict.

use std::path::{Path, PathBuf};

use serde_json::json;
use tollgate::cluster::{ClusterView, Snapshot};
use tollgate_sdk::selector::LabelSelector;

use crate::util::{Eval, Guest, ResultExt, Sandbox, VerdictExt, labelled_pod, pod};

/// The Pods in namespace `team` that the snapshot holds, sorted.
const TEAM_PODS: &str = "pods=6: json-pod,list-1,list-2,multi-1,multi-2,typed-1";

/// The snapshot under test and its two faulty files.
struct Layout {
    root: PathBuf,
    namespaces: PathBuf,
    multi: PathBuf,
}

fn write_snapshot(sandbox: &Sandbox) -> Layout {
    let namespaces = sandbox.write(
        "snap/namespaces.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\nkind: [unclosed\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n",
    );
    let multi = sandbox.write(
        "snap/workloads/multi.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: multi-1, namespace: team}\n---\napiVersion: v1\nkind: Pod\nmetadata: {namespace: team}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: multi-2, namespace: team}\n",
    );
    sandbox.write_json(
        "snap/workloads/nested/deeper/pod.json",
        &pod("team", "json-pod"),
    );
    sandbox.write(
        "snap/workloads/list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: Pod, metadata: {name: list-1, namespace: team}}\n  - {apiVersion: v1, kind: Pod, metadata: {name: list-2, namespace: team}}\n",
    );
    let mut typed = labelled_pod("team", "typed-1", json!({"app": "typed"}));
    let item = typed.as_object_mut().expect("object");
    item.remove("kind");
    item.remove("apiVersion");
    sandbox.write_json(
        "snap/typed-list.json",
        &json!({"apiVersion": "v1", "kind": "PodList", "items": [typed]}),
    );
    sandbox.write(
        "snap/pod-in-other.yml",
        serde_json::to_string(&pod("other", "elsewhere")).expect("JSON is YAML"),
    );
    sandbox.write("snap/notes.txt", "not a snapshot file: [");
    Layout {
        root: sandbox.path().join("snap"),
        namespaces,
        multi,
    }
}

/// Assert `warnings` are exactly the two expected ones, in any order.
fn assert_two_warnings(warnings: &[String], layout: &Layout) {
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    let about = |file: &Path| {
        let prefix = format!("{} (document 2)", file.display());
        warnings
            .iter()
            .find(|w| w.contains(&prefix))
            .unwrap_or_else(|| panic!("no warning about {prefix}: {warnings:#?}"))
    };
    assert!(
        about(&layout.namespaces).contains("invalid YAML"),
        "{warnings:#?}"
    );
    assert!(
        about(&layout.multi).contains("metadata.name"),
        "{warnings:#?}"
    );
}

#[test]
fn library_loads_every_format_and_warns_about_bad_documents() {
    let sandbox = Sandbox::new();
    let layout = write_snapshot(&sandbox);
    let snapshot =
        Snapshot::load(&layout.root).expect("a directory with bad documents still loads");
    let warnings: Vec<String> = snapshot
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_two_warnings(&warnings, &layout);

    let mut names: Vec<String> = snapshot
        .list("v1", "Pod", Some("team"), &LabelSelector::default())
        .iter()
        .filter_map(|p| {
            p.pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert_eq!(
        format!("pods={}: {}", names.len(), names.join(",")),
        TEAM_PODS
    );
    assert!(
        snapshot.get("v1", "Namespace", "", "other").is_some(),
        "the document after the invalid one loads"
    );
    assert!(
        snapshot.get("v1", "Pod", "other", "elsewhere").is_some(),
        ".yml files load"
    );
    assert_eq!(
        snapshot
            .list("v1", "Pod", None, &LabelSelector::default())
            .len(),
        7
    );
}

#[test]
fn cli_prints_warnings_and_the_verdict_decides_the_exit_code() {
    let sandbox = Sandbox::new();
    let layout = write_snapshot(&sandbox);
    let object = sandbox.write_json("pod.json", &pod("team", "new"));
    let allow = sandbox.write_json("allow.json", &json!({"allow": true}));
    for (settings, code) in [(None, 1), (Some(&allow), 0)] {
        let mut eval = Eval::new(&[Guest::Echo.arg()])
            .context(&layout.root)
            .object(&object);
        if let Some(settings) = settings {
            eval = eval.settings(settings);
        }
        let (run, verdict) = eval.verdict();
        run.assert_code(code);
        let warnings: Vec<String> = run.stderr_lines().into_iter().map(str::to_string).collect();
        assert!(
            warnings
                .iter()
                .all(|w| w.starts_with("tollgate: warning: ")),
            "{warnings:#?}"
        );
        assert_two_warnings(&warnings, &layout);
        assert_eq!(verdict.result("echo").fact("seen-pods"), TEAM_PODS);
    }
}

#[test]
fn a_single_file_is_a_context() {
    let sandbox = Sandbox::new();
    let layout = write_snapshot(&sandbox);
    let object = sandbox.write_json("pod.json", &pod("team", "new"));
    let (run, verdict) = Eval::new(&[Guest::Echo.arg()])
        .context(&layout.multi)
        .object(&object)
        .verdict();
    assert_eq!(
        verdict.result("echo").fact("seen-pods"),
        "pods=2: multi-1,multi-2"
    );
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].contains(&format!("{} (document 2)", layout.multi.display())),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_context_is_bad_input() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("team", "new"));
    let missing = sandbox
        .path()
        .join("no-such-snapshot")
        .display()
        .to_string();
    Eval::new(&[Guest::Echo.arg()])
        .context(&missing)
        .object(&object)
        .run()
        .assert_bad_input(&[&missing]);
}
