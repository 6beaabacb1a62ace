//! `generate fixes`: turn what the pack says about a snapshot into a kustomize
//! overlay.
//!
//! The evaluator decides everything: each object audit would judge is run
//! through [`Evaluator::evaluate_mutating`], and the patches the mutating
//! policies applied (in policy order, each on the object the previous left)
//! become the overlay's JSON patches. Nodes are judged as audit judges them;
//! a Node reported `missing-pool-taint` or `missing-pool-label` gets a patch
//! adding its pool's taints and labels (the pool is found with the SDK's
//! [`pool_of`], the lookup the policy itself uses). Nothing here decides what
//! is a violation.
//!
//! Not patched, and said so in the README: Pods and Jobs (their pod template
//! is immutable), and violations no mutation fixes.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use tollgate_sdk::model::{NodePool, Taint};
use tollgate_sdk::patch::{Patch, pointer};
use tollgate_sdk::placement::{array, string_map, taint};
use tollgate_sdk::scheduling::pool_of;

use super::k3s::{self, PackagedAddon};
use super::kustomize::Overlay;
use super::pools::taint_json;
use super::{Files, Resource, file_stem, to_yaml};
use crate::audit::{Finding, findings_of, judged};
use crate::cluster::{ClusterView, Snapshot};
use crate::decision::{Mode, Verdict};
use crate::defaulting::default_pod;
use crate::evaluator::Evaluator;
use crate::review::Review;

/// The rule id of a Node missing its pool's taint.
pub const MISSING_POOL_TAINT: &str = "missing-pool-taint";
/// The rule id of a Node missing its pool's label.
pub const MISSING_POOL_LABEL: &str = "missing-pool-label";
/// Kinds whose pod template cannot change once created.
const IMMUTABLE_TEMPLATE: &[&str] = &["Pod", "Job"];

/// An object the pack's mutations change.
#[derive(Debug, Clone)]
pub struct ObjectFix {
    /// The object.
    pub resource: Resource,
    /// As in the snapshot.
    pub original: Value,
    /// After every mutation.
    pub fixed: Value,
    /// Each mutating policy's applied patch, in order.
    pub patches: Vec<(String, Vec<Value>)>,
    /// `policy/rule` of the violations the mutations remove.
    pub fixes: BTreeSet<String>,
}

/// A pool Node without its pool's taints or labels.
#[derive(Debug, Clone)]
pub struct NodeFix {
    /// The Node.
    pub resource: Resource,
    /// As in the snapshot.
    pub node: Value,
    /// Its pool.
    pub pool: String,
    /// The JSON patch.
    pub ops: Vec<Value>,
    /// What the patch adds, for people (`taint k=v:Effect`, `label k=v`).
    pub adds: Vec<String>,
}

/// An object a mutation would change but that cannot be patched in place.
#[derive(Debug, Clone)]
pub struct NotPatchable {
    /// The object.
    pub resource: Resource,
    /// The policies whose mutation it needs.
    pub policies: Vec<String>,
}

/// Everything `generate fixes` found, before rendering.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Objects to patch.
    pub objects: Vec<ObjectFix>,
    /// Nodes to patch.
    pub nodes: Vec<NodeFix>,
    /// Objects that need a mutation but cannot take one.
    pub not_patchable: Vec<NotPatchable>,
    /// Violations left after the fixes (no mutation addresses them).
    pub remaining: Vec<Finding>,
    /// Problems with the input (skipped documents, no pools).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Whether nothing needs a patch.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.nodes.is_empty()
    }
}

/// Judge the snapshot and collect the fixes.
pub fn plan(snapshot: &Arc<Snapshot>, evaluator: &Evaluator) -> Plan {
    let cluster: Arc<dyn ClusterView> = snapshot.clone();
    let mut plan = Plan {
        warnings: snapshot
            .warnings()
            .iter()
            .map(ToString::to_string)
            .collect(),
        ..Plan::default()
    };
    if !snapshot.has_pools() {
        plan.warnings.push(
            "no node pools found: no cluster-autoscaler Deployment with --nodes flags in the snapshot and no --pools file"
                .into(),
        );
    }
    let mut objects: Vec<&Arc<Value>> = snapshot
        .objects()
        .iter()
        .filter(|o| judged(o, snapshot, evaluator))
        .collect();
    objects.sort_by_key(|o| file_stem(&Resource::of(o)));
    for object in objects {
        let resource = Resource::of(object);
        let Ok(review) =
            Review::from_object(default_pod(object.as_ref().clone(), cluster.as_ref()))
        else {
            continue;
        };
        if resource.kind == "Node" {
            let verdict = evaluator.evaluate(&review, &cluster);
            plan_node(&mut plan, &resource, object, &verdict, cluster.node_pools());
        } else {
            let before = evaluator.evaluate(&review, &cluster);
            let after = evaluator.evaluate_mutating(&review, &cluster);
            plan_object(&mut plan, &resource, object, &before, &after);
        }
    }
    plan
}

fn violations(findings: Vec<Finding>) -> Vec<Finding> {
    findings
        .into_iter()
        .filter(|f| f.result != "warn")
        .collect()
}

fn rule_key(f: &Finding) -> String {
    format!("{}/{}", f.policy, f.rule)
}

fn plan_object(
    plan: &mut Plan,
    resource: &Resource,
    object: &Value,
    before: &Verdict,
    after: &Verdict,
) {
    let remaining = violations(findings_of(resource, after));
    let still: BTreeSet<String> = remaining.iter().map(rule_key).collect();
    plan.remaining.extend(remaining);
    let patches: Vec<(String, Vec<Value>)> = after
        .results
        .iter()
        .filter(|r| r.mode != Mode::Audit)
        .filter_map(|r| {
            let ops = r.patch.as_ref()?.as_array()?.clone();
            (!ops.is_empty()).then(|| (r.policy.clone(), ops))
        })
        .collect();
    let Some(fixed) = after.mutated.as_ref().filter(|m| *m != object) else {
        return;
    };
    if patches.is_empty() {
        return;
    }
    if IMMUTABLE_TEMPLATE.contains(&resource.kind.as_str()) {
        plan.not_patchable.push(NotPatchable {
            resource: resource.clone(),
            policies: patches.into_iter().map(|(p, _)| p).collect(),
        });
        return;
    }
    let fixes = violations(findings_of(resource, before))
        .iter()
        .map(rule_key)
        .filter(|k| !still.contains(k))
        .collect();
    plan.objects.push(ObjectFix {
        resource: resource.clone(),
        original: object.clone(),
        fixed: fixed.clone(),
        patches,
        fixes,
    });
}

fn plan_node(
    plan: &mut Plan,
    resource: &Resource,
    node: &Value,
    verdict: &Verdict,
    pools: &[NodePool],
) {
    let findings = violations(findings_of(resource, verdict));
    let labels = string_map(node.pointer("/metadata/labels"));
    let pool = pool_of(pools, &resource.name, &labels);
    let wants = |rule: &str| findings.iter().any(|f| f.rule == rule);
    let (taints, labels_missing) = (wants(MISSING_POOL_TAINT), wants(MISSING_POOL_LABEL));
    let fixable = pool.is_some() && (taints || labels_missing);
    plan.remaining.extend(
        findings
            .iter()
            .filter(|f| {
                !(fixable && (f.rule == MISSING_POOL_TAINT || f.rule == MISSING_POOL_LABEL))
            })
            .cloned(),
    );
    let Some(pool) = pool.filter(|_| fixable) else {
        return;
    };
    let mut patch = Patch::new();
    let mut adds = Vec::new();
    if taints {
        add_taints(node, pool, &mut patch, &mut adds);
    }
    if labels_missing {
        add_labels(node, pool, &mut patch, &mut adds);
    }
    if patch.is_empty() {
        return;
    }
    plan.nodes.push(NodeFix {
        resource: resource.clone(),
        node: node.clone(),
        pool: pool.name.clone(),
        ops: patch.ops().to_vec(),
        adds,
    });
}

/// Add each pool taint the node lacks; a node taint with the same key and
/// effect but another value is replaced (as `kubectl taint --overwrite` does).
fn add_taints(node: &Value, pool: &NodePool, patch: &mut Patch, adds: &mut Vec<String>) {
    let have: Vec<Taint> = array(node.pointer("/spec/taints"))
        .filter_map(taint)
        .collect();
    let mut new = Vec::new();
    for want in &pool.taints {
        let same = |t: &Taint| {
            t.key == want.key
                && t.effect == want.effect
                && t.value.as_deref().unwrap_or("") == want.value.as_deref().unwrap_or("")
        };
        if have.iter().any(same) {
            continue;
        }
        adds.push(format!("taint {want}"));
        match have
            .iter()
            .position(|t| t.key == want.key && t.effect == want.effect)
        {
            Some(i) => {
                patch.replace(format!("/spec/taints/{i}"), taint_json(want));
            }
            None => new.push(taint_json(want)),
        }
    }
    if new.is_empty() {
    } else if node.pointer("/spec/taints").is_some_and(Value::is_array) {
        for t in new {
            patch.add("/spec/taints/-", t);
        }
    } else if node.get("spec").is_some_and(Value::is_object) {
        patch.add("/spec/taints", Value::Array(new));
    } else {
        patch.add("/spec", json!({"taints": new}));
    }
}

/// Add each expected label (the pool's labels and node selector) the node lacks.
fn add_labels(node: &Value, pool: &NodePool, patch: &mut Patch, adds: &mut Vec<String>) {
    let have = string_map(node.pointer("/metadata/labels"));
    let missing: Vec<(String, String)> = pool
        .expected_labels()
        .into_iter()
        .filter(|(k, v)| have.get(k) != Some(v))
        .collect();
    if missing.is_empty() {
        return;
    }
    adds.extend(missing.iter().map(|(k, v)| format!("label {k}={v}")));
    if node
        .pointer("/metadata/labels")
        .is_some_and(Value::is_object)
    {
        for (k, v) in missing {
            patch.add(pointer("/metadata/labels", &[&k]), json!(v));
        }
    } else {
        let labels: serde_json::Map<String, Value> =
            missing.into_iter().map(|(k, v)| (k, json!(v))).collect();
        patch.add("/metadata/labels", Value::Object(labels));
    }
}

/// Render the plan: the overlay, the k3s and Helm routes, and the README.
pub fn render(plan: &Plan, snapshot: &Snapshot) -> Files {
    let mut overlay = Overlay::new();
    for fix in &plan.objects {
        overlay.add_resource(&fix.original);
        for (policy, ops) in &fix.patches {
            let fixes: Vec<&str> = fix
                .fixes
                .iter()
                .filter_map(|k| k.strip_prefix(&format!("{policy}/")))
                .collect();
            let why = format!(
                "{policy}: the pack's mutation of {}{}.",
                fix.resource,
                if fixes.is_empty() {
                    String::new()
                } else {
                    format!(" (fixes {})", fixes.join(", "))
                }
            );
            overlay.add_patch(&fix.resource, policy, ops.clone(), &why);
        }
    }
    for fix in &plan.nodes {
        overlay.add_resource(&fix.node);
        let why = format!(
            "{} is a node of autoscaler pool {}: add the pool's {}.",
            fix.resource,
            fix.pool,
            fix.adds.join(", ")
        );
        overlay.add_patch(&fix.resource, "pool-nodes-tainted", fix.ops.clone(), &why);
    }
    let mut files = Files::new();
    overlay.render(&mut files);

    let mut addons: Vec<(&PackagedAddon, &ObjectFix)> = Vec::new();
    let mut chart_configs: Vec<(Value, &ObjectFix, bool)> = Vec::new();
    let mut helm_reverted: Vec<(&ObjectFix, k3s::HelmRelease)> = Vec::new();
    for fix in &plan.objects {
        if let Some(addon) = k3s::packaged_addon(&fix.original) {
            addons.push((addon, fix));
            files.insert(
                format!("k3s/manifests/tollgate-{}.yaml", addon.component),
                to_yaml(&k3s::replacement_manifest(&fix.fixed)),
            );
        } else if let Some(release) = k3s::helm_release(&fix.original) {
            let found = k3s::helm_chart_namespace(
                snapshot.objects().iter().map(|o| o.as_ref()),
                &release.name,
            );
            let namespace = found.clone().unwrap_or_else(|| "kube-system".into());
            match k3s::traefik_chart_config(&fix.original, &fix.fixed, &namespace) {
                Some(config) => {
                    files.insert(
                        format!("k3s/manifests/{}-helmchartconfig.yaml", release.name),
                        to_yaml(&config),
                    );
                    chart_configs.push((config, fix, found.is_some()));
                }
                None => helm_reverted.push((fix, release)),
            }
        }
    }
    if !addons.is_empty() {
        let skips: String = addons
            .iter()
            .map(|(a, _)| format!("{}\n", a.skip_file()))
            .collect();
        files.insert("k3s/skip-files.txt".into(), skips);
    }
    files.insert(
        "README.md".into(),
        readme(plan, &overlay, &addons, &chart_configs, &helm_reverted),
    );
    files
}

fn readme(
    plan: &Plan,
    overlay: &Overlay,
    addons: &[(&PackagedAddon, &ObjectFix)],
    chart_configs: &[(Value, &ObjectFix, bool)],
    helm_reverted: &[(&ObjectFix, k3s::HelmRelease)],
) -> String {
    let mut out = String::from("# Fixes generated by `tollgate generate fixes`\n\n");
    if plan.is_empty() {
        out.push_str("Nothing to patch: no mutation of the policies changes any object, and every pool node carries its pool's taints and labels. `kustomization.yaml` is empty.\n\n");
    } else {
        out.push_str(&format!(
            "A kustomize overlay with {} patch(es). Review it, then apply it:\n\n```sh\nkubectl kustomize . | kubectl diff -f -\nkubectl apply -k .\n```\n\n\
             `resources/` holds the objects as the snapshot had them (without `status` and server-owned metadata such as `resourceVersion`, so applying them never conflicts); \
             `patches/` holds one RFC 6902 JSON patch per object and policy, applied in policy order.\n\n",
            overlay.patch_count()
        ));
    }
    if !plan.objects.is_empty() {
        out.push_str("## Workloads: the pack's mutations\n\n| Object | Patches (policy) | Fixes |\n|---|---|---|\n");
        for fix in &plan.objects {
            let policies: Vec<&str> = fix.patches.iter().map(|(p, _)| p.as_str()).collect();
            let fixes: Vec<&str> = fix.fixes.iter().map(String::as_str).collect();
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                fix.resource,
                policies.join(", "),
                fixes.join(", ")
            ));
        }
        out.push('\n');
    }
    if !plan.nodes.is_empty() {
        out.push_str("## Pool nodes: taints and labels\n\n| Node | Pool | Adds |\n|---|---|---|\n");
        for fix in &plan.nodes {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                fix.resource.name,
                fix.pool,
                fix.adds.join(", ")
            ));
        }
        out.push_str(
            "\nThese patches fix the nodes that exist. Nodes the autoscaler creates later get their taints and labels from the pool's \
             node configuration only: `tollgate generate pools` writes it (kube-hetzner `autoscaler_nodepools`, cluster-autoscaler \
             `HCLOUD_CLUSTER_CONFIG` nodeConfigs, `kubectl taint`/`kubectl label` commands). A tainted node keeps running the pods it \
             has (the taints are NoSchedule); drain it, or let the autoscaler remove it, to move them.\n\n",
        );
    }
    if !addons.is_empty() {
        out.push_str(&format!(
            "## k3s packaged add-ons: make the fix survive a k3s restart\n\n\
             k3s rewrites the manifests of its packaged add-ons in `{}` and applies them again every time it starts, \
             so a patch to these objects lasts only until the next restart:\n\n| Object | k3s add-on | Skip file | Replacement manifest |\n|---|---|---|---|\n",
            k3s::MANIFESTS_DIR
        ));
        for (addon, fix) in addons {
            out.push_str(&format!(
                "| {} | {} | `{}` | `k3s/manifests/tollgate-{}.yaml` |\n",
                fix.resource,
                addon.component,
                addon.skip_file(),
                addon.component
            ));
        }
        out.push_str(&format!(
            "\nOn **every server node** (each one runs the deploy controller):\n\n```sh\n\
             xargs -n1 sudo touch < k3s/skip-files.txt          # k3s stops applying these manifests\n\
             sudo cp k3s/manifests/tollgate-*.yaml {}/   # k3s applies the fixed objects instead\n```\n\n\
             An empty `<file>.skip` makes k3s leave that manifest, and what it already deployed, alone; the replacement manifest is the \
             fixed object (the same as the overlay builds), which k3s then applies as a user AddOn on every start.\n\n\
             Not used: `disable:` in the k3s config (`/etc/rancher/k3s/config.yaml`). It uninstalls the add-on and deletes every object \
             its manifest created (for metrics-server also the Service, the APIService and the RBAC), so it needs a complete replacement \
             such as the upstream Helm chart through a HelmChart; a snapshot of the Deployment alone does not give one.\n\n\
             Once skipped, k3s upgrades no longer update these add-ons: you own them. To hand them back to k3s, delete the `.skip` files \
             and the `tollgate-*.yaml` manifests and restart k3s.\n\n",
            k3s::MANIFESTS_DIR
        ));
    }
    if !chart_configs.is_empty() || !helm_reverted.is_empty() {
        out.push_str("## Helm releases\n\nThe next `helm upgrade` of a release renders its objects from the chart's values again and reverts a patch.\n\n");
        for (config, fix, found) in chart_configs {
            let name = config
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let namespace = config
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.push_str(&format!(
                "- {}: `k3s/manifests/{name}-helmchartconfig.yaml` is a HelmChartConfig `{namespace}/{name}` carrying the fix into the traefik chart's values (k3s's helm-controller merges it into HelmChart `{namespace}/{name}`); apply it or put it into `{}`.{}\n",
                fix.resource,
                k3s::MANIFESTS_DIR,
                if *found { "" } else { " The snapshot has no HelmChart of that name: it is assumed in kube-system, where k3s keeps its own; a HelmChartConfig must be in its HelmChart's namespace." }
            ));
        }
        for (fix, release) in helm_reverted {
            out.push_str(&format!(
                "- {}: belongs to Helm release {}/{}{}; put the same placement into the chart's values (for kube-hetzner's hcloud CSI driver: `hetzner_csi_values`), or the next upgrade undoes the patch.\n",
                fix.resource,
                release.namespace,
                release.name,
                release.chart.as_deref().map(|c| format!(" (chart {c})")).unwrap_or_default()
            ));
        }
        out.push('\n');
    }
    if !plan.not_patchable.is_empty() {
        out.push_str("## Not patched: pod templates that cannot change\n\n");
        for item in &plan.not_patchable {
            out.push_str(&format!(
                "- {}: needs the mutation of {}; the pod template of a {} cannot change once created. Recreate it (under a Deployment or Job that the mutating webhook sees), or delete it.\n",
                item.resource,
                item.policies.join(", "),
                item.resource.kind
            ));
        }
        out.push('\n');
    }
    if !plan.remaining.is_empty() {
        out.push_str("## Findings no mutation fixes\n\nStill reported after these fixes; each message says what to change by hand.\n\n");
        for f in &plan.remaining {
            out.push_str(&format!(
                "- {} [{}/{}]: {}\n",
                f.resource, f.policy, f.rule, f.message
            ));
        }
        out.push('\n');
    }
    if !plan.warnings.is_empty() {
        out.push_str("## Input warnings\n\n");
        for w in &plan.warnings {
            out.push_str(&format!("- {w}\n"));
        }
        out.push('\n');
    }
    out.push_str("Regenerate with the same command after changing the cluster; the output is deterministic (byte-identical for the same input), and generating from a fixed snapshot yields no patches.\n");
    out
}
