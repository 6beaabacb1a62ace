//! The records of the policy contract (`wit/policy.wit`) as plain Rust types.
//!
//! Policies, the native test harness and the host engine all use these types;
//! the WIT bindings on either side convert to and from them at the boundary, so
//! nobody outside `guest` (and the engine's `wasm::bindings`) sees generated code.
//! Field names and meanings follow the WIT file one to one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Labels, annotations or a node selector.
pub type Labels = BTreeMap<String, String>;

/// The controlling owner of a pod (`ownerReferences[]` with `controller: true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// `apiVersion` of the owner.
    pub api_version: String,
    /// Kind of the owner (`ReplicaSet`, `DaemonSet`, ...).
    pub kind: String,
    /// Name of the owner.
    pub name: String,
}

/// A taint effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaintEffect {
    /// `NoSchedule`
    NoSchedule,
    /// `PreferNoSchedule`
    PreferNoSchedule,
    /// `NoExecute`
    NoExecute,
}

impl TaintEffect {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }

    /// Parse the Kubernetes spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "NoSchedule" => Some(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
            "NoExecute" => Some(TaintEffect::NoExecute),
            _ => None,
        }
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Taint effect.
    pub effect: TaintEffect,
}

impl Taint {
    /// `key=value:Effect`, as `kubectl taint` spells it.
    pub fn to_kubectl(&self) -> String {
        match &self.value {
            Some(v) if !v.is_empty() => format!("{}={}:{}", self.key, v, self.effect.as_str()),
            _ => format!("{}:{}", self.key, self.effect.as_str()),
        }
    }

    /// Parse `key[=value]:Effect`.
    pub fn parse(s: &str) -> Option<Taint> {
        let (kv, effect) = s.rsplit_once(':')?;
        let effect = TaintEffect::parse(effect)?;
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv, None),
        };
        if key.is_empty() {
            return None;
        }
        Some(Taint {
            key: key.to_string(),
            value,
            effect,
        })
    }
}

impl std::fmt::Display for Taint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_kubectl())
    }
}

/// Toleration operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TolerationOperator {
    /// `Equal` (the default).
    Equal,
    /// `Exists`.
    Exists,
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    /// Key; `None` with `Exists` tolerates every taint.
    pub key: Option<String>,
    /// Operator.
    pub operator: TolerationOperator,
    /// Value (ignored by `Exists`).
    pub value: Option<String>,
    /// Effect; `None` matches every effect.
    pub effect: Option<TaintEffect>,
    /// Seconds a `NoExecute` taint is tolerated before eviction.
    pub toleration_seconds: Option<i64>,
}

/// Node selector requirement operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// `In`
    In,
    /// `NotIn`
    NotIn,
    /// `Exists`
    Exists,
    /// `DoesNotExist`
    DoesNotExist,
    /// `Gt`
    Gt,
    /// `Lt`
    Lt,
}

impl SelectorOperator {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SelectorOperator::In => "In",
            SelectorOperator::NotIn => "NotIn",
            SelectorOperator::Exists => "Exists",
            SelectorOperator::DoesNotExist => "DoesNotExist",
            SelectorOperator::Gt => "Gt",
            SelectorOperator::Lt => "Lt",
        }
    }

    /// Parse the Kubernetes spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "In" => SelectorOperator::In,
            "NotIn" => SelectorOperator::NotIn,
            "Exists" => SelectorOperator::Exists,
            "DoesNotExist" => SelectorOperator::DoesNotExist,
            "Gt" => SelectorOperator::Gt,
            "Lt" => SelectorOperator::Lt,
            _ => return None,
        })
    }
}

/// One requirement of a node selector term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorRequirement {
    /// Label (or field) key.
    pub key: String,
    /// Operator.
    pub operator: SelectorOperator,
    /// Values for `In`, `NotIn`, `Gt`, `Lt`.
    pub values: Vec<String>,
}

/// A node selector term: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTerm {
    /// Requirements on node labels.
    pub match_expressions: Vec<SelectorRequirement>,
    /// Requirements on node fields (`metadata.name`).
    pub match_fields: Vec<SelectorRequirement>,
}

/// A preferred scheduling term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferredTerm {
    /// Weight 1-100.
    pub weight: i32,
    /// The preference.
    pub preference: NodeSelectorTerm,
}

/// What backs a pod volume, as far as draining cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VolumeSource {
    /// An emptyDir on the node's disk (local storage for cluster-autoscaler).
    EmptyDir,
    /// An emptyDir with `medium: Memory`.
    EmptyDirMemory,
    /// A hostPath (local storage).
    HostPath,
    /// A PersistentVolumeClaim.
    PersistentVolumeClaim,
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
    /// A projected volume.
    Projected,
    /// A downwardAPI volume.
    DownwardApi,
    /// A generic ephemeral volume.
    Ephemeral,
    /// Anything else.
    Other,
}

impl VolumeSource {
    /// Whether cluster-autoscaler counts it as local storage (rule 11).
    pub fn is_local_storage(self) -> bool {
        matches!(self, VolumeSource::EmptyDir | VolumeSource::HostPath)
    }
}

/// A pod volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Volume name.
    pub name: String,
    /// What backs it.
    pub source: VolumeSource,
}

/// A host port the pod binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPort {
    /// Port number.
    pub port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

/// The placement-relevant parts of a Pod or of a pod controller's template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodPlacement {
    /// JSON pointer from the object root to the pod template (`""` for a Pod).
    pub template_path: String,
    /// The controller the pods have, or will have.
    pub controller: Option<Owner>,
    /// Pod labels.
    pub labels: Labels,
    /// Pod annotations.
    pub annotations: Labels,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// `spec.nodeSelector`.
    pub node_selector: Labels,
    /// `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms` (ORed).
    pub required_node_affinity: Vec<NodeSelectorTerm>,
    /// `preferredDuringSchedulingIgnoredDuringExecution`.
    pub preferred_node_affinity: Vec<PreferredTerm>,
    /// `spec.priorityClassName`.
    pub priority_class_name: Option<String>,
    /// `spec.priority` (resolved by the API server's Priority admission plugin).
    pub priority: Option<i32>,
    /// Volumes.
    pub volumes: Vec<Volume>,
    /// Host ports of all containers.
    pub host_ports: Vec<HostPort>,
    /// CPU request of one pod in millicores.
    pub cpu_request_millis: i64,
    /// Memory request of one pod in bytes.
    pub memory_request_bytes: i64,
    /// `spec.replicas` of the workload.
    pub replicas: Option<i32>,
    /// `spec.nodeName`.
    pub node_name: Option<String>,
}

/// The placement-relevant parts of a Node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node labels.
    pub labels: Labels,
    /// Node annotations.
    pub annotations: Labels,
    /// Node taints.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
}

/// Admission operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// CREATE
    Create,
    /// UPDATE
    Update,
    /// DELETE
    Delete,
    /// CONNECT
    Connect,
    /// Not from an admission request (audit, `tollgate eval --object`).
    #[default]
    None,
}

impl Operation {
    /// Parse the AdmissionReview spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            "DELETE" => Operation::Delete,
            "CONNECT" => Operation::Connect,
            _ => return None,
        })
    }
}

/// Facts about the admission request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestInfo {
    /// Request uid.
    pub uid: String,
    /// Sub-resource (`status`, `scale`, ...).
    pub sub_resource: Option<String>,
    /// User name.
    pub user: String,
    /// User groups.
    pub groups: Vec<String>,
    /// Whether the request is a dry run.
    pub dry_run: bool,
}

/// One object to judge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// Object apiVersion.
    pub api_version: String,
    /// Object kind.
    pub kind: String,
    /// Object namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Object name (may be empty for `generateName` creates).
    pub name: String,
    /// Admission operation.
    pub operation: Operation,
    /// Object labels.
    pub labels: Labels,
    /// Object annotations.
    pub annotations: Labels,
    /// Set for Pods and pod controllers.
    pub pod: Option<PodPlacement>,
    /// Set for Nodes.
    pub node: Option<NodeInfo>,
    /// Set for admission requests.
    pub request: Option<RequestInfo>,
}

impl Review {
    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn display_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

/// A cluster-autoscaler node pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePool {
    /// Node group name (`--nodes=...:<name>`).
    pub name: String,
    /// Minimum size.
    pub min_size: u32,
    /// Maximum size.
    pub max_size: u32,
    /// Labels that identify the pool's nodes, if any.
    pub node_selector: Labels,
    /// Node-name prefix of the pool's servers, if known.
    pub name_prefix: Option<String>,
    /// The dedicated taints pool nodes must carry.
    pub taints: Vec<Taint>,
    /// The labels pool nodes must carry.
    pub labels: Labels,
    /// `config`, `cluster-autoscaler` or `preset`.
    pub source: String,
}

/// One thing wrong with an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Stable kebab-case rule id.
    pub rule: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// JSON pointer of the offending field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Violation {
    /// A violation of `rule` with `message`.
    pub fn new(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            rule: rule.into(),
            message: message.into(),
            path: None,
        }
    }

    /// The same violation pointing at `path`.
    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
}

/// A policy's answer for one review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the object is allowed.
    pub allowed: bool,
    /// What is wrong.
    pub violations: Vec<Violation>,
    /// RFC 6902 JSON Patch, as JSON text.
    pub patch: Option<String>,
    /// Warnings for the user.
    pub warnings: Vec<String>,
}

impl Default for Decision {
    fn default() -> Self {
        Decision::allow()
    }
}

impl Decision {
    /// Allowed, nothing to say.
    pub fn allow() -> Self {
        Decision {
            allowed: true,
            violations: Vec::new(),
            patch: None,
            warnings: Vec::new(),
        }
    }

    /// Denied with the given violations; allowed if there are none.
    pub fn from_violations(violations: Vec<Violation>) -> Self {
        Decision {
            allowed: violations.is_empty(),
            violations,
            patch: None,
            warnings: Vec::new(),
        }
    }

    /// Attach a patch (ignored when it has no operations).
    pub fn with_patch(mut self, patch: crate::patch::Patch) -> Self {
        self.patch = patch.to_json();
        self
    }

    /// Add a warning.
    pub fn warn(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

/// A capability a policy may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Capability {
    /// Real clocks (otherwise both WASI clocks read zero).
    Clocks,
}

/// A rule the policy may report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    /// Rule id.
    pub id: String,
    /// What it checks.
    pub description: String,
}

/// Static facts about a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Policy name.
    pub name: String,
    /// Policy version.
    pub version: String,
    /// What the policy is for.
    pub description: String,
    /// Kinds it judges; `*` for all.
    pub kinds: Vec<String>,
    /// Whether it may return patches.
    pub mutating: bool,
    /// Rules it may report.
    pub rules: Vec<RuleInfo>,
    /// Capabilities it asks for.
    pub capabilities: Vec<Capability>,
}

impl Metadata {
    /// Whether the policy judges objects of `kind`.
    pub fn judges(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == "*" || k == kind)
    }
}

/// Log level of a policy's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// trace
    Trace,
    /// debug
    Debug,
    /// info
    Info,
    /// warn
    Warn,
    /// error
    Error,
}
