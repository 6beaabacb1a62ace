//! Policies and policy sets: loading a `.wasm` component, a CEL policy file, a
//! directory of them, or a bundled pack; the operator's per-policy
//! configuration (settings, failure policy, mode, limits, capability grants,
//! and the requests it judges: [`selection`]).
//!
//! A settings file is either the settings of a single policy, or
//! `policies: {<name>: {settings, failurePolicy, mode, limits, grant,
//! instances, match, matchConditions}}` for several (a pack).

pub mod selection;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use tollgate_sdk::model::{Capability, Metadata, RuleInfo};

use crate::cel::CelPolicy;
use crate::cluster::ClusterView;
use crate::decision::{FailurePolicy, Mode};
use crate::native::{self, NativePolicy};
use crate::pack;
use crate::wasm::{self, Limits, Runtime, WasmPolicy};

/// Why a policy set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path does not exist and is not a bundled pack.
    #[error("{0}: no such file, directory or bundled pack (bundled: {packs})", packs = pack::NAMES.join(", "))]
    NotFound(String),
    /// A file could not be read.
    #[error("{path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A policy file is not YAML or JSON.
    #[error("{path}: invalid YAML or JSON: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A file is neither a component nor a CelPolicy.
    #[error(
        "{path}: not a policy (expected a .wasm component, a CelPolicy, or a ValidatingAdmissionPolicy, MutatingAdmissionPolicy or Kyverno ValidatingPolicy YAML file){detail}"
    )]
    NotAPolicy {
        /// The file.
        path: PathBuf,
        /// What was found instead (with a leading separator), if known.
        detail: String,
    },
    /// A WASM policy failed to load.
    #[error(transparent)]
    Wasm(#[from] wasm::Error),
    /// A CEL policy failed to load.
    #[error(transparent)]
    Cel(#[from] crate::cel::Error),
    /// A native policy (ValidatingAdmissionPolicy...) failed to load.
    #[error(transparent)]
    Native(#[from] crate::native::Error),
    /// The settings file is malformed.
    #[error("{path}: invalid settings: {message}")]
    Settings {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A policy's `match` or `matchConditions` is malformed.
    #[error(transparent)]
    Selection(#[from] selection::Error),
    /// Two policies have the same name.
    #[error("two policies are named {0}")]
    Duplicate(String),
    /// A directory holds no policy.
    #[error("{0}: no policies found (.wasm, CelPolicy or native policy .yaml files)")]
    Empty(PathBuf),
}

/// How the operator configures one policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyConfig {
    /// The policy's settings.
    #[serde(default)]
    pub settings: Value,
    /// Overrides the policy's failure policy.
    pub failure_policy: Option<FailurePolicy>,
    /// Enforce, warn or audit.
    #[serde(default)]
    pub mode: Mode,
    /// Limits for WASM policies.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Capabilities granted to a WASM policy.
    #[serde(default)]
    pub grant: Vec<Capability>,
    /// How a WASM policy gets its instances: `fresh` for every evaluation,
    /// or `reuse` warm ones. Default: `reuse` for the bundled pack's
    /// policies, `fresh` for any other.
    #[serde(default)]
    pub instances: Option<wasm::Instances>,
    /// Narrow the requests the policy judges: a ValidatingAdmissionPolicy's
    /// `matchConstraints` shape (resourceRules with operations,
    /// namespaceSelector, objectSelector, excludeResourceRules).
    #[serde(rename = "match", default)]
    pub match_resources: Option<crate::native::matching::MatchResources>,
    /// CEL conditions that must all be true for the policy to judge a request.
    #[serde(default)]
    pub match_conditions: Vec<selection::MatchCondition>,
}

/// The configuration of a whole set, keyed by policy name.
#[derive(Debug, Clone, Default)]
pub struct SetConfig {
    /// The file the configuration came from (for messages).
    path: PathBuf,
    per_policy: std::collections::BTreeMap<String, PolicyConfig>,
    /// Settings for the only policy, when the file was plain settings.
    single: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetConfigFile {
    policies: std::collections::BTreeMap<String, PolicyConfig>,
}

impl SetConfig {
    /// Read a settings file (YAML or JSON).
    ///
    /// # Errors
    /// Unreadable, unparsable, or a malformed `policies:` map.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.into(),
            source,
        })?;
        let doc = parse_one(path, &text)?;
        Self::from_value(path, doc)
    }

    /// Interpret a parsed settings document.
    ///
    /// # Errors
    /// A malformed `policies:` map.
    pub fn from_value(path: &Path, doc: Value) -> Result<Self, Error> {
        if doc.get("policies").is_some_and(Value::is_object) {
            let file: SetConfigFile = serde_json::from_value(doc).map_err(|e| Error::Settings {
                path: path.into(),
                message: e.to_string(),
            })?;
            Ok(SetConfig {
                path: path.into(),
                per_policy: file.policies,
                single: None,
            })
        } else {
            Ok(SetConfig {
                path: path.into(),
                per_policy: Default::default(),
                single: Some(doc),
            })
        }
    }

    fn for_policy(&self, name: &str, only_one: bool) -> PolicyConfig {
        let mut config = self.per_policy.get(name).cloned().unwrap_or_default();
        if only_one && let Some(settings) = &self.single {
            config.settings = settings.clone();
        }
        config
    }

    /// The selection configured for `policy` (`match`, `matchConditions`).
    fn selection(
        &self,
        policy: &str,
        cfg: &PolicyConfig,
    ) -> Result<Option<Arc<selection::Selection>>, Error> {
        Ok(selection::Selection::new(
            &self.path,
            policy,
            cfg.match_resources.as_ref(),
            &cfg.match_conditions,
        )?
        .map(Arc::new))
    }

    /// Names configured that no loaded policy has.
    fn unknown<'a>(&'a self, names: &'a [&str]) -> impl Iterator<Item = &'a String> + 'a {
        self.per_policy
            .keys()
            .filter(move |k| !names.contains(&k.as_str()))
    }
}

/// What a policy is made of.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A WASM component.
    Wasm(WasmPolicy),
    /// A CEL policy.
    Cel(CelPolicy),
    /// A Kubernetes-native policy with one of its bindings.
    Native(NativePolicy),
}

/// A loaded, configured policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The policy name (unique in its set).
    pub name: String,
    /// Where it came from (a path, or `autoscaler-isolation (bundled)`).
    pub source: String,
    /// WASM or CEL.
    pub kind: Kind,
    /// The settings as JSON text (what WASM policies receive).
    pub settings: Arc<str>,
    /// Fail closed or open.
    pub failure_policy: FailurePolicy,
    /// Enforce, warn or audit.
    pub mode: Mode,
    /// Static facts (kinds judged, rules, whether it mutates).
    pub metadata: Metadata,
    /// The operator's narrowing of the requests it judges, if any.
    pub selection: Option<Arc<selection::Selection>>,
}

impl Policy {
    /// Whether the policy judges objects of `kind`.
    pub fn judges(&self, kind: &str) -> bool {
        self.metadata.judges(kind)
    }
}

/// The policies that judge objects together, in order.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
    warnings: Vec<String>,
}

/// Where policies come from, before loading.
#[derive(Debug, Clone)]
enum Source {
    Wasm {
        label: String,
        bytes: Vec<u8>,
        origin: String,
        /// From a bundled pack (reviewed, stateless: reuses instances by default).
        bundled: bool,
    },
    Cel {
        path: PathBuf,
        doc: Value,
    },
}

/// Native policy documents, read before they are paired and compiled.
#[derive(Debug, Default)]
struct NativeSources {
    /// ValidatingAdmissionPolicies, MutatingAdmissionPolicies, their
    /// bindings, Kyverno ValidatingPolicies, with their files.
    docs: Vec<(PathBuf, Value)>,
    /// Other objects in files with native policies: candidate params.
    params: Vec<Value>,
}

impl PolicySet {
    /// Load policies from `specs` (paths or bundled pack names), configured by `config`.
    ///
    /// # Errors
    /// The first policy that cannot be read, compiled, or configured; or a
    /// configuration naming a policy that is not loaded.
    pub fn load(runtime: &Runtime, specs: &[String], config: &SetConfig) -> Result<Self, Error> {
        Self::load_in_context(runtime, specs, config, &crate::cluster::Empty::default())
    }

    /// [`PolicySet::load`], reading native policy bindings also from `context`.
    ///
    /// # Errors
    /// As [`PolicySet::load`].
    pub fn load_in_context(
        runtime: &Runtime,
        specs: &[String],
        config: &SetConfig,
        context: &dyn ClusterView,
    ) -> Result<Self, Error> {
        let mut sources = Vec::new();
        let mut native_sources = NativeSources::default();
        for spec in specs {
            collect_sources(spec, &mut sources, &mut native_sources)?;
        }
        let native = native::load(native_sources.docs, native_sources.params, context)?;
        let only_one = sources.len() + native.policies.len() == 1;
        let mut policies: Vec<Policy> = Vec::new();
        for source in sources {
            let policy = match source {
                Source::Wasm {
                    label,
                    bytes,
                    origin,
                    bundled,
                } => {
                    // The name comes from the metadata, so the policy's own
                    // configuration (limits, grants) is applied after loading.
                    let loaded = WasmPolicy::load(
                        runtime,
                        &label,
                        &bytes,
                        Limits::default(),
                        &[Capability::Clocks],
                    )?;
                    let name = loaded.name().to_string();
                    let cfg = config.for_policy(&name, only_one);
                    if let Some(capability) = loaded
                        .metadata()
                        .capabilities
                        .iter()
                        .find(|c| !cfg.grant.contains(c))
                    {
                        return Err(wasm::Error::CapabilityDenied {
                            policy: name,
                            capability: *capability,
                        }
                        .into());
                    }
                    let policy = match cfg.limits {
                        Some(limits) => loaded.with_limits(limits)?,
                        None => loaded,
                    };
                    let default_instances = if bundled {
                        wasm::Instances::Reuse
                    } else {
                        wasm::Instances::Fresh
                    };
                    let policy = policy.with_instances(cfg.instances.unwrap_or(default_instances));
                    let settings = settings_text(&cfg.settings);
                    policy.validate_settings(&settings)?;
                    let selection = config.selection(&name, &cfg)?;
                    Policy {
                        name,
                        source: origin,
                        metadata: policy.metadata().clone(),
                        kind: Kind::Wasm(policy),
                        settings: settings.into(),
                        failure_policy: cfg.failure_policy.unwrap_or_default(),
                        mode: cfg.mode,
                        selection,
                    }
                }
                Source::Cel { path, doc } => {
                    let compiled = CelPolicy::compile(&path, doc)?;
                    let cfg = config.for_policy(compiled.name(), only_one);
                    let configured = compiled.with_settings(&cfg.settings);
                    let metadata = cel_metadata(
                        configured.name(),
                        configured.description().to_string(),
                        configured.kinds(),
                        &configured,
                    );
                    Policy {
                        name: configured.name().to_string(),
                        source: path.display().to_string(),
                        settings: settings_text(configured.settings()).into(),
                        failure_policy: cfg.failure_policy.unwrap_or(configured.failure_policy()),
                        mode: cfg.mode,
                        metadata,
                        selection: config.selection(configured.name(), &cfg)?,
                        kind: Kind::Cel(configured),
                    }
                }
            };
            push_unique(&mut policies, policy)?;
        }
        for policy in native.policies {
            push_unique(&mut policies, native_policy(policy, config, only_one)?)?;
        }
        let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
        if let Some(unknown) = config.unknown(&names).next() {
            return Err(Error::Settings {
                path: config.path.clone(),
                message: format!(
                    "settings name policy {unknown}, which is not loaded (loaded: {})",
                    names.join(", ")
                ),
            });
        }
        Ok(PolicySet {
            policies,
            warnings: native.warnings,
        })
    }

    /// What loading noticed but did not refuse (a native policy without a binding...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The policies, in order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

/// A native policy as a set member: its mode comes from its validation
/// actions; the operator's configuration can override its failure policy.
fn native_policy(
    native: NativePolicy,
    config: &SetConfig,
    only_one: bool,
) -> Result<Policy, Error> {
    let cfg = config.for_policy(native.name(), only_one);
    let metadata = cel_metadata(
        native.name(),
        format!(
            "{} {}{}",
            native.flavor().kind(),
            native.policy_name(),
            native
                .binding_name()
                .map(|b| format!(" (binding {b})"))
                .unwrap_or_default()
        ),
        native.kinds(),
        native.cel(),
    );
    Ok(Policy {
        name: native.name().to_string(),
        source: native.origin().to_string(),
        settings: "".into(),
        failure_policy: cfg.failure_policy.unwrap_or(native.failure_policy()),
        mode: native.mode(),
        metadata,
        selection: config.selection(native.name(), &cfg)?,
        kind: Kind::Native(native),
    })
}

/// Add a policy whose name is not taken yet.
fn push_unique(policies: &mut Vec<Policy>, policy: Policy) -> Result<(), Error> {
    if policies.iter().any(|p| p.name == policy.name) {
        return Err(Error::Duplicate(policy.name));
    }
    policies.push(policy);
    Ok(())
}

/// The static facts of a CEL-backed policy.
fn cel_metadata(name: &str, description: String, kinds: &[String], cel: &CelPolicy) -> Metadata {
    Metadata {
        name: name.to_string(),
        version: String::new(),
        description,
        kinds: kinds.to_vec(),
        mutating: cel.mutates(),
        rules: cel
            .rules()
            .map(|r| RuleInfo {
                id: r.to_string(),
                description: String::new(),
            })
            .collect(),
        capabilities: vec![],
    }
}

fn settings_text(settings: &Value) -> String {
    if settings.is_null() {
        String::new()
    } else {
        settings.to_string()
    }
}

fn collect_sources(
    spec: &str,
    out: &mut Vec<Source>,
    native: &mut NativeSources,
) -> Result<(), Error> {
    let path = Path::new(spec);
    if !path.exists() {
        let Some(policies) = pack::policies(spec) else {
            return Err(Error::NotFound(spec.to_string()));
        };
        for (name, bytes) in policies {
            out.push(Source::Wasm {
                label: name.to_string(),
                bytes: bytes.to_vec(),
                origin: format!("{spec} (bundled)"),
                bundled: true,
            });
        }
        return Ok(());
    }
    if path.is_dir() {
        let before = out.len() + native.docs.len();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| Error::Read {
                path: path.into(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_policy_file(p))
            .collect();
        entries.sort();
        for entry in entries {
            collect_file(&entry, out, native, true)?;
        }
        if out.len() + native.docs.len() == before {
            return Err(Error::Empty(path.into()));
        }
        return Ok(());
    }
    collect_file(path, out, native, false)
}

fn is_policy_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("wasm" | "yaml" | "yml" | "json")
    )
}

/// Read one file. In a directory, YAML files that are not CelPolicies are skipped.
fn collect_file(
    path: &Path,
    out: &mut Vec<Source>,
    native: &mut NativeSources,
    in_directory: bool,
) -> Result<(), Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    if bytes.starts_with(b"\0asm") || path.extension().and_then(|e| e.to_str()) == Some("wasm") {
        out.push(Source::Wasm {
            label: path.display().to_string(),
            bytes,
            origin: path.display().to_string(),
            bundled: false,
        });
        return Ok(());
    }
    let text = String::from_utf8(bytes).map_err(|_| Error::NotAPolicy {
        path: path.into(),
        detail: ": binary data".into(),
    })?;
    let (docs, warnings) = crate::cluster::Snapshot::parse_documents(path, &text);
    if let Some(w) = warnings
        .iter()
        .find(|w| w.message.starts_with("invalid"))
        .filter(|_| !in_directory)
    {
        return Err(Error::Parse {
            path: path.into(),
            message: w.message.clone(),
        });
    }
    let mut found = false;
    let mut others = Vec::new();
    for doc in docs {
        if CelPolicy::is_cel_policy(&doc) {
            out.push(Source::Cel {
                path: path.into(),
                doc,
            });
            found = true;
        } else if native::is_native(&doc) {
            native.docs.push((path.into(), doc));
            found = true;
        } else {
            others.push(doc);
        }
    }
    // Objects next to native policies may be their params.
    if found {
        native.params.extend(others);
    }
    if !found && !in_directory {
        let detail = match docs_kinds(&text) {
            Some(kind) => format!("; found a {kind}"),
            None => String::new(),
        };
        return Err(Error::NotAPolicy {
            path: path.into(),
            detail,
        });
    }
    Ok(())
}

/// The kind of the first document, for "found a Deployment" hints.
fn docs_kinds(text: &str) -> Option<String> {
    let (docs, _) = crate::cluster::Snapshot::parse_documents(Path::new(""), text);
    docs.first()
        .and_then(|d| d.get("kind"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Parse one YAML or JSON document.
///
/// # Errors
/// The parser's message, naming `path`.
pub fn parse_one(path: &Path, text: &str) -> Result<Value, Error> {
    if text.trim_start().starts_with(['{', '[']) {
        serde_json::from_str(text).map_err(|e| Error::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    } else {
        serde_saphyr::from_str::<Option<Value>>(text)
            .map(|v| v.unwrap_or(Value::Null))
            .map_err(|e| Error::Parse {
                path: path.into(),
                message: e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            })
    }
}
