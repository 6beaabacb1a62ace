//! The policy's settings: which namespace is bound to which node pool, and
//! whether the decision carries a patch that fixes what it can (mutation).
//!
//! ```yaml
//! tenancies:
//!   - namespace: ci
//!     pool: k3s-batman
//! mutate: false
//! ```

use serde::Deserialize;

/// Settings of the `pool-tenancy` policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// One entry per bound namespace. Namespaces without an entry are not judged.
    #[serde(default)]
    pub tenancies: Vec<Tenancy>,
    /// When true, the decision also carries a JSON Patch that adds the pool's
    /// missing nodeSelector entries and tolerations, and the messages of the
    /// violations it fixes say so. The violations are reported either way:
    /// the policy judges the object as it is, and the engine, when it mutates
    /// (`tollgate eval --mutate`, the mutating webhook), applies the patch and
    /// judges the patched object again. Conflicting selections, blanket
    /// tolerations and tolerations of other pools are never patched.
    #[serde(default)]
    pub mutate: bool,
}

/// A namespace bound to one node pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tenancy {
    /// The namespace whose pods are bound (for example `ci`).
    pub namespace: String,
    /// The cluster-autoscaler node group they must run on, as the host names
    /// it (for example `k3s-batman`, from `--nodes=0:3:cx32:fsn1:k3s-batman`).
    pub pool: String,
}

impl Settings {
    /// The tenancy that binds `namespace`, if any.
    pub fn tenancy_for(&self, namespace: &str) -> Option<&Tenancy> {
        self.tenancies.iter().find(|t| t.namespace == namespace)
    }

    /// Check what deserialization cannot: no empty names, and each namespace
    /// bound at most once.
    ///
    /// # Errors
    /// A message naming the offending entry.
    pub fn validate(&self) -> Result<(), String> {
        for (i, tenancy) in self.tenancies.iter().enumerate() {
            if tenancy.namespace.trim().is_empty() {
                return Err(format!("tenancies[{i}]: namespace must not be empty"));
            }
            if tenancy.pool.trim().is_empty() {
                return Err(format!("tenancies[{i}]: pool must not be empty"));
            }
            if let Some(first) = self.tenancies[..i]
                .iter()
                .position(|t| t.namespace == tenancy.namespace)
            {
                return Err(format!(
                    "tenancies[{i}]: namespace {} is already bound by tenancies[{first}] \
                     (a namespace can be bound to one pool only)",
                    tenancy.namespace
                ));
            }
        }
        Ok(())
    }
}
