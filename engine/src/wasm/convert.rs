//! Conversions between the SDK model and the generated WIT types, done once
//! per review (the converted record is cached on the [`crate::Review`]) and
//! once per decision.

use tollgate_sdk::model as m;

use super::bindings::tollgate::policy::types as wit;

fn kvs(labels: &m::Labels) -> Vec<wit::KeyValue> {
    labels
        .iter()
        .map(|(k, v)| wit::KeyValue {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn effect(e: m::TaintEffect) -> wit::TaintEffect {
    match e {
        m::TaintEffect::NoSchedule => wit::TaintEffect::NoSchedule,
        m::TaintEffect::PreferNoSchedule => wit::TaintEffect::PreferNoSchedule,
        m::TaintEffect::NoExecute => wit::TaintEffect::NoExecute,
    }
}

fn taint(t: &m::Taint) -> wit::Taint {
    wit::Taint {
        key: t.key.clone(),
        value: t.value.clone(),
        effect: effect(t.effect),
    }
}

fn requirement(r: &m::SelectorRequirement) -> wit::SelectorRequirement {
    wit::SelectorRequirement {
        key: r.key.clone(),
        operator: match r.operator {
            m::SelectorOperator::In => wit::SelectorOperator::In,
            m::SelectorOperator::NotIn => wit::SelectorOperator::NotIn,
            m::SelectorOperator::Exists => wit::SelectorOperator::Exists,
            m::SelectorOperator::DoesNotExist => wit::SelectorOperator::DoesNotExist,
            m::SelectorOperator::Gt => wit::SelectorOperator::Gt,
            m::SelectorOperator::Lt => wit::SelectorOperator::Lt,
        },
        values: r.values.clone(),
    }
}

fn term(t: &m::NodeSelectorTerm) -> wit::NodeSelectorTerm {
    wit::NodeSelectorTerm {
        match_expressions: t.match_expressions.iter().map(requirement).collect(),
        match_fields: t.match_fields.iter().map(requirement).collect(),
    }
}

fn volume_source(s: m::VolumeSource) -> wit::VolumeSource {
    match s {
        m::VolumeSource::EmptyDir => wit::VolumeSource::EmptyDir,
        m::VolumeSource::EmptyDirMemory => wit::VolumeSource::EmptyDirMemory,
        m::VolumeSource::HostPath => wit::VolumeSource::HostPath,
        m::VolumeSource::PersistentVolumeClaim => wit::VolumeSource::PersistentVolumeClaim,
        m::VolumeSource::ConfigMap => wit::VolumeSource::ConfigMap,
        m::VolumeSource::Secret => wit::VolumeSource::Secret,
        m::VolumeSource::Projected => wit::VolumeSource::Projected,
        m::VolumeSource::DownwardApi => wit::VolumeSource::DownwardApi,
        m::VolumeSource::Ephemeral => wit::VolumeSource::Ephemeral,
        m::VolumeSource::Other => wit::VolumeSource::Other,
    }
}

/// A Pod's own labels and annotations are the review's: they are lowered
/// once, in the review, and the pod's lists stay empty (the contract in
/// wit/policy.wit; the SDK fills them back in inside the guest).
fn pod(p: &m::PodPlacement) -> wit::PodPlacement {
    let own_metadata = !p.template_path.is_empty();
    let metadata = |map| if own_metadata { kvs(map) } else { Vec::new() };
    wit::PodPlacement {
        template_path: p.template_path.clone(),
        controller: p.controller.as_ref().map(|o| wit::Owner {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
        }),
        labels: metadata(&p.labels),
        annotations: metadata(&p.annotations),
        tolerations: p
            .tolerations
            .iter()
            .map(|t| wit::Toleration {
                key: t.key.clone(),
                operator: match t.operator {
                    m::TolerationOperator::Equal => wit::TolerationOperator::Equal,
                    m::TolerationOperator::Exists => wit::TolerationOperator::Exists,
                },
                value: t.value.clone(),
                effect: t.effect.map(effect),
                toleration_seconds: t.toleration_seconds,
            })
            .collect(),
        node_selector: kvs(&p.node_selector),
        required_node_affinity: p.required_node_affinity.iter().map(term).collect(),
        preferred_node_affinity: p
            .preferred_node_affinity
            .iter()
            .map(|t| wit::PreferredTerm {
                weight: t.weight,
                preference: term(&t.preference),
            })
            .collect(),
        priority_class_name: p.priority_class_name.clone(),
        priority: p.priority,
        volumes: p
            .volumes
            .iter()
            .map(|v| wit::Volume {
                name: v.name.clone(),
                source: volume_source(v.source),
            })
            .collect(),
        host_ports: p
            .host_ports
            .iter()
            .map(|h| wit::HostPort {
                port: h.port,
                protocol: h.protocol.clone(),
            })
            .collect(),
        cpu_request_millis: p.cpu_request_millis,
        memory_request_bytes: p.memory_request_bytes,
        replicas: p.replicas,
        node_name: p.node_name.clone(),
    }
}

/// The WIT review record for a review's placement records.
pub(crate) fn review(r: &m::Review) -> wit::Review {
    wit::Review {
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        operation: match r.operation {
            m::Operation::Create => wit::Operation::Create,
            m::Operation::Update => wit::Operation::Update,
            m::Operation::Delete => wit::Operation::Delete,
            m::Operation::Connect => wit::Operation::Connect,
            m::Operation::None => wit::Operation::None,
        },
        labels: kvs(&r.labels),
        annotations: kvs(&r.annotations),
        pod: r.pod.as_ref().map(pod),
        node: r.node.as_ref().map(|n| wit::NodeInfo {
            labels: kvs(&n.labels),
            annotations: kvs(&n.annotations),
            taints: n.taints.iter().map(taint).collect(),
            unschedulable: n.unschedulable,
        }),
        request: r.request.as_ref().map(|q| wit::RequestInfo {
            uid: q.uid.clone(),
            sub_resource: q.sub_resource.clone(),
            user: q.user.clone(),
            groups: q.groups.clone(),
            dry_run: q.dry_run,
        }),
    }
}

/// The WIT record of a node pool.
pub(crate) fn pool(p: &m::NodePool) -> wit::NodePool {
    wit::NodePool {
        name: p.name.clone(),
        min_size: p.min_size,
        max_size: p.max_size,
        node_selector: kvs(&p.node_selector),
        name_prefix: p.name_prefix.clone(),
        taints: p.taints.iter().map(taint).collect(),
        labels: kvs(&p.labels),
        source: p.source.clone(),
    }
}

/// The SDK decision of a WIT decision.
pub(crate) fn decision(d: wit::Decision) -> m::Decision {
    m::Decision {
        allowed: d.allowed,
        violations: d
            .violations
            .into_iter()
            .map(|v| m::Violation {
                rule: v.rule,
                message: v.message,
                path: v.path,
            })
            .collect(),
        patch: d.patch,
        warnings: d.warnings,
    }
}

/// The SDK metadata of WIT metadata.
pub(crate) fn metadata(md: wit::Metadata) -> m::Metadata {
    m::Metadata {
        name: md.name,
        version: md.version,
        description: md.description,
        kinds: md.kinds,
        mutating: md.mutating,
        rules: md
            .rules
            .into_iter()
            .map(|r| m::RuleInfo {
                id: r.id,
                description: r.description,
            })
            .collect(),
        capabilities: md
            .capabilities
            .into_iter()
            .map(|c| match c {
                wit::Capability::Clocks => m::Capability::Clocks,
            })
            .collect(),
    }
}

/// Bytes a decision occupies, for the output limit.
pub(crate) fn decision_size(d: &wit::Decision) -> usize {
    d.violations
        .iter()
        .map(|v| v.rule.len() + v.message.len() + v.path.as_ref().map_or(0, String::len))
        .sum::<usize>()
        + d.patch.as_ref().map_or(0, String::len)
        + d.warnings.iter().map(String::len).sum::<usize>()
}
