//! Kubernetes label selectors: the string syntax of `kubectl -l` and of the
//! `host.list-objects` import, and the `matchLabels`/`matchExpressions` object form.

use serde_json::Value;

use crate::model::{Labels, SelectorOperator, SelectorRequirement};
use crate::placement::array;

/// A parsed label selector: every requirement must hold. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements (ANDed).
    pub requirements: Vec<SelectorRequirement>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(labels.get(&r.key).map(String::as_str)))
    }

    /// Parse the string syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
    /// `a notin (x)`, `a`, `!a`, separated by commas.
    ///
    /// # Errors
    /// A message naming the part that could not be parsed.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                req(key.trim(), SelectorOperator::DoesNotExist, vec![])
            } else if let Some((k, v)) = part.split_once("!=") {
                req(
                    k.trim(),
                    SelectorOperator::NotIn,
                    vec![v.trim().to_string()],
                )
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                req(k.trim(), SelectorOperator::In, vec![v.trim().to_string()])
            } else if let Some((k, rest)) = split_set_op(part, " notin ") {
                req(k, SelectorOperator::NotIn, set_values(rest)?)
            } else if let Some((k, rest)) = split_set_op(part, " in ") {
                req(k, SelectorOperator::In, set_values(rest)?)
            } else {
                req(part, SelectorOperator::Exists, vec![])
            };
            if req.key.is_empty() || req.key.contains(char::is_whitespace) {
                return Err(format!("invalid label selector requirement {part:?}"));
            }
            requirements.push(req);
        }
        Ok(LabelSelector { requirements })
    }

    /// Read a `metav1.LabelSelector` object. `None` (absent) selects nothing in
    /// PDBs, so callers decide; an empty object selects everything.
    pub fn from_json(v: &Value) -> Option<Self> {
        let map = v.as_object()?;
        let mut requirements: Vec<SelectorRequirement> = map
            .get("matchLabels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some(req(k, SelectorOperator::In, vec![v.as_str()?.to_string()])))
            .collect();
        for e in array(map.get("matchExpressions")) {
            let key = e.get("key")?.as_str()?;
            let operator = match e.get("operator")?.as_str()? {
                "In" => SelectorOperator::In,
                "NotIn" => SelectorOperator::NotIn,
                "Exists" => SelectorOperator::Exists,
                "DoesNotExist" => SelectorOperator::DoesNotExist,
                _ => return None,
            };
            let values = array(e.get("values"))
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            requirements.push(req(key, operator, values));
        }
        Some(LabelSelector { requirements })
    }
}

fn req(key: &str, operator: SelectorOperator, values: Vec<String>) -> SelectorRequirement {
    SelectorRequirement {
        key: key.to_string(),
        operator,
        values,
    }
}

fn split_set_op<'a>(part: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let (k, rest) = part.split_once(op)?;
    Some((k.trim(), rest.trim()))
}

fn set_values(s: &str) -> Result<Vec<String>, String> {
    let inner = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected (values) in label selector, found {s:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

/// Split on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::labels;

    #[test]
    fn string_syntax() {
        let s = LabelSelector::parse("app=web,tier!=db,env in (a, b),!legacy").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("env", "a")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "c")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "a"), ("legacy", "")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "a"), ("tier", "db")])));
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("").unwrap().matches(&Labels::new()));
    }

    #[test]
    fn object_form() {
        let v = serde_json::json!({"matchLabels": {"k8s-app": "kube-dns"},
            "matchExpressions": [{"key": "tier", "operator": "Exists"}]});
        let s = LabelSelector::from_json(&v).unwrap();
        assert!(s.matches(&labels(&[("k8s-app", "kube-dns"), ("tier", "x")])));
        assert!(!s.matches(&labels(&[("k8s-app", "kube-dns")])));
    }
}
