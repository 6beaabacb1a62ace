//! The real manifests of ../shared/corpus, read in place and rendered the way
//! their tools would render them: k3s fills `%{NAME}%` placeholders at
//! startup, Terraform renders kube-hetzner's `${...}` and `%{ for }` templates.
//! Partial objects (kustomize patches) and Helm values files are not objects
//! and are left out.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use tollgate::cluster::Snapshot;

use crate::util::corpus_dir;

/// The corpus files that hold complete objects, and how to render them.
const FILES: &[(&str, Render)] = &[
    (
        "k3s/manifests/metrics-server/metrics-server-deployment.yaml",
        Render::K3s,
    ),
    ("k3s/manifests/coredns.yaml", Render::K3s),
    ("k3s/manifests/local-storage.yaml", Render::K3s),
    (
        "metrics-server/manifests/base/deployment.yaml",
        Render::AsIs,
    ),
    (
        "metrics-server/manifests/components/high-availability/pdb.yaml",
        Render::AsIs,
    ),
    (
        "kubernetes-autoscaler/cluster-autoscaler/cloudprovider/hetzner/examples/cluster-autoscaler-run-on-master.yaml",
        Render::AsIs,
    ),
    (
        "kube-hetzner/templates/autoscaler.yaml.tpl",
        Render::Terraform,
    ),
    (
        "hcloud-csi-driver/deploy/kubernetes/hcloud-csi.yml",
        Render::AsIs,
    ),
    (
        "hcloud-cloud-controller-manager/deploy/ccm.yaml",
        Render::AsIs,
    ),
    (
        "hcloud-cloud-controller-manager/deploy/ccm-networks.yaml",
        Render::AsIs,
    ),
    (
        "hcloud-cloud-controller-manager/README-node-examples/node-metadata-example-2025.yaml",
        Render::AsIs,
    ),
    (
        "hcloud-cloud-controller-manager/README-node-examples/node-metadata-example-2023.yaml",
        Render::AsIs,
    ),
];

#[derive(Debug, Clone, Copy)]
enum Render {
    AsIs,
    K3s,
    Terraform,
}

/// Every object of the corpus files, with the file it came from.
pub fn objects() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (file, render) in FILES {
        let path = corpus_dir().join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = match render {
            Render::AsIs => text,
            Render::K3s => k3s(&text),
            Render::Terraform => terraform(&text, &kube_hetzner_vars()),
        };
        let (docs, warnings) = Snapshot::parse_documents(Path::new(file), &text);
        assert!(
            warnings.is_empty(),
            "{file} should parse once rendered: {warnings:?}"
        );
        out.extend(docs.into_iter().map(|d| (file.to_string(), d)));
    }
    out
}

/// The k3s deploy controller's substitutions, with k3s's defaults.
fn k3s(text: &str) -> String {
    [
        ("%{SYSTEM_DEFAULT_REGISTRY}%", ""),
        ("%{SYSTEM_DEFAULT_REGISTRY_RAW}%", ""),
        (
            "%{PREFERRED_ADDRESS_TYPES}%",
            "InternalIP,ExternalIP,Hostname",
        ),
        ("%{CLUSTER_DOMAIN}%", "cluster.local"),
        ("%{CLUSTER_DNS}%", "10.43.0.10"),
        ("%{CLUSTER_DNS_LIST}%", "[10.43.0.10]"),
        ("%{CLUSTER_DNS_IPFAMILYPOLICY}%", "SingleStack"),
        (
            "%{DEFAULT_LOCAL_STORAGE_PATH}%",
            "/var/lib/rancher/k3s/storage",
        ),
        ("%{KUBERNETES_API}%", "10.43.0.1:443"),
    ]
    .iter()
    .fold(text.to_string(), |t, (k, v)| t.replace(k, v))
}

/// A kube-hetzner cluster's template variables (two pools, defaults elsewhere).
fn kube_hetzner_vars() -> BTreeMap<&'static str, Vec<BTreeMap<&'static str, &'static str>>> {
    let scalar = |v: &'static str| vec![BTreeMap::from([("", v)])];
    let pool = |name, min, max, server_type, location| {
        BTreeMap::from([
            ("name", name),
            ("min_nodes", min),
            ("max_nodes", max),
            ("server_type", server_type),
            ("location", location),
        ])
    };
    BTreeMap::from([
        (
            "ca_image",
            scalar("registry.k8s.io/autoscaling/cluster-autoscaler"),
        ),
        ("ca_version", scalar("v1.32.0")),
        ("cluster_autoscaler_log_level", scalar("4")),
        ("cluster_autoscaler_log_to_stderr", scalar("true")),
        ("cluster_autoscaler_stderr_threshold", scalar("INFO")),
        ("cluster_name", scalar("k3s-")),
        (
            "node_pools",
            vec![
                pool("batman", "0", "3", "cx32", "fsn1"),
                pool("robin", "0", "2", "cx22", "nbg1"),
            ],
        ),
        ("cluster_autoscaler_extra_args", vec![]),
        ("cloudinit_config", scalar("\"\"")),
        ("cluster_config", scalar("e30=")),
        ("ssh_key", scalar("1")),
        ("snapshot_id", scalar("2")),
        ("ipv4_subnet_id", scalar("3")),
        ("firewall_id", scalar("4")),
        ("enable_ipv4", scalar("true")),
        ("enable_ipv6", scalar("false")),
        ("cluster_autoscaler_server_creation_timeout", scalar("")),
    ])
}

/// Render the subset of Terraform's template syntax the corpus uses:
/// `${var}`, `${item.field}`, `%{ for item in list }...%{ endfor }` and
/// `%{ if var != "" }...%{ endif }`, one directive per line.
fn terraform(text: &str, vars: &BTreeMap<&str, Vec<BTreeMap<&str, &str>>>) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    render_lines(&lines, vars, &BTreeMap::new(), &mut out);
    out
}

fn render_lines(
    lines: &[&str],
    vars: &BTreeMap<&str, Vec<BTreeMap<&str, &str>>>,
    scope: &BTreeMap<String, BTreeMap<&str, &str>>,
    out: &mut String,
) {
    let mut i = 0;
    while i < lines.len() {
        let directive = lines[i]
            .trim()
            .trim_start_matches("%{")
            .trim_start_matches('~')
            .trim();
        if lines[i].trim().starts_with("%{")
            && (directive.starts_with("for ") || directive.starts_with("if "))
        {
            let end = block_end(lines, i);
            let body = &lines[i + 1..end];
            if let Some(rest) = directive.strip_prefix("for ") {
                let mut words = rest.split_whitespace();
                let (item, list) = (
                    words.next().unwrap_or_default(),
                    words.nth(1).unwrap_or_default(),
                );
                for element in vars.get(list).into_iter().flatten() {
                    let mut inner = scope.clone();
                    inner.insert(item.to_string(), element.clone());
                    render_lines(body, vars, &inner, out);
                }
            } else {
                let var = directive
                    .trim_start_matches("if ")
                    .split_whitespace()
                    .next()
                    .unwrap_or_default();
                let value = vars
                    .get(var)
                    .and_then(|v| v.first())
                    .and_then(|m| m.get(""))
                    .copied()
                    .unwrap_or("");
                if !value.is_empty() && value != "false" {
                    render_lines(body, vars, scope, out);
                }
            }
            i = end + 1;
            continue;
        }
        out.push_str(&substitute(lines[i], vars, scope));
        out.push('\n');
        i += 1;
    }
}

/// The index of the line closing the block opened at `start`.
fn block_end(lines: &[&str], start: usize) -> usize {
    let mut depth = 0;
    for (i, line) in lines.iter().enumerate().skip(start) {
        let d = line
            .trim()
            .trim_start_matches("%{")
            .trim_start_matches('~')
            .trim();
        if !line.trim().starts_with("%{") {
            continue;
        }
        if d.starts_with("for ") || d.starts_with("if ") {
            depth += 1;
        } else if d.starts_with("endfor") || d.starts_with("endif") {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
    }
    panic!("unclosed template block at line {}", start + 1)
}

fn substitute(
    line: &str,
    vars: &BTreeMap<&str, Vec<BTreeMap<&str, &str>>>,
    scope: &BTreeMap<String, BTreeMap<&str, &str>>,
) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + end];
        let value = match name.split_once('.') {
            Some((item, field)) => scope.get(item).and_then(|m| m.get(field)).copied(),
            None => vars
                .get(name)
                .and_then(|v| v.first())
                .and_then(|m| m.get(""))
                .copied(),
        };
        out.push_str(value.unwrap_or_else(|| panic!("template variable {name} has no value")));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}
