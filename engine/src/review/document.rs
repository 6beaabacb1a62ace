//! [`Document`]: one JSON document (the object under review or the old
//! object) held as a tree, as text, or both, each form made from the other at
//! most once and only when asked for.
//!
//! An admission request arrives as text. WASM policies read the placement
//! records and, when they ask, the text; only CEL and native policies, a
//! mutation, and telemetry need the tree. So the webhook keeps the object as
//! text and parses the tree on first use. An object read from a file (audit,
//! `tollgate eval`) starts as a tree, and its text is written on first use.

use std::sync::OnceLock;

use serde_json::Value;
use tollgate_sdk::placement;

/// A JSON document in one or both forms.
#[derive(Debug)]
pub(crate) struct Document {
    tree: OnceLock<Value>,
    text: OnceLock<String>,
    /// How the text becomes the tree.
    parse: Parse,
}

/// How a document's text becomes its tree.
pub(crate) type Parse = fn(&str) -> serde_json::Result<Value>;

fn parse_whole(text: &str) -> serde_json::Result<Value> {
    serde_json::from_str(text)
}

impl Document {
    /// A document known as a tree.
    pub(crate) fn from_tree(tree: Value) -> Self {
        Document {
            tree: OnceLock::from(tree),
            text: OnceLock::new(),
            parse: parse_whole,
        }
    }

    /// A document known as text that [`Document::checked`],
    /// [`placement::sparse_tree`] or [`placement::pod_review`] accepted, so
    /// that it parses into a tree.
    pub(crate) fn from_checked_text(text: String) -> Self {
        Self::from_text_parsed_by(text, parse_whole)
    }

    /// A document known as text whose tree `parse` makes; the caller has
    /// checked that `parse` accepts the text.
    pub(crate) fn from_text_parsed_by(text: String, parse: Parse) -> Self {
        Document {
            tree: OnceLock::new(),
            text: OnceLock::from(text),
            parse,
        }
    }

    /// A document from text, checked to parse into a tree (without building
    /// one).
    ///
    /// # Errors
    /// When the text does not parse into a `serde_json::Value`.
    pub(crate) fn checked(text: String) -> serde_json::Result<Self> {
        serde_json::from_str::<placement::Discarded>(&text)?;
        Ok(Self::from_checked_text(text))
    }

    /// A document from text, with the sparse tree of what the placement
    /// records read (see [`placement::sparse_tree`]).
    ///
    /// # Errors
    /// When the text does not parse into a `serde_json::Value`.
    pub(crate) fn with_sparse_tree(text: String) -> serde_json::Result<(Self, Value)> {
        let sparse = placement::sparse_tree(&text)?;
        Ok((Self::from_checked_text(text), sparse))
    }

    /// The tree, parsed on first use.
    pub(crate) fn tree(&self) -> &Value {
        self.tree.get_or_init(|| {
            let text = self.text.get().map_or("null", String::as_str);
            // The text was checked to parse with the same parser and limits
            // when the document was made, so this cannot fail; should it
            // ever, the tree reads as null and the failure is logged.
            (self.parse)(text).unwrap_or_else(|e| {
                tracing::error!(error = %e, "a checked JSON document did not parse");
                Value::Null
            })
        })
    }

    /// The text, serialized on first use.
    pub(crate) fn text(&self) -> &str {
        self.text
            .get_or_init(|| self.tree.get().map_or_else(String::new, Value::to_string))
    }

    /// The tree if it is already built.
    #[cfg(test)]
    fn built_tree(&self) -> Option<&Value> {
        self.tree.get()
    }
}

impl Clone for Document {
    fn clone(&self) -> Self {
        match (self.tree.get(), self.text.get()) {
            (Some(tree), _) => Document::from_tree(tree.clone()),
            (None, Some(text)) => Document::from_text_parsed_by(text.clone(), self.parse),
            (None, None) => Document::from_tree(Value::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Document;

    #[test]
    fn text_and_tree_are_each_made_from_the_other() {
        let tree = json!({"kind": "Pod", "metadata": {"name": "p"}, "n": 1.5});
        let from_tree = Document::from_tree(tree.clone());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(from_tree.text()).unwrap(),
            tree
        );
        let from_text = Document::checked(tree.to_string()).unwrap();
        assert!(from_text.built_tree().is_none());
        assert_eq!(from_text.tree(), &tree);
        assert_eq!(from_text.text(), tree.to_string());
    }

    #[test]
    fn text_that_would_not_parse_into_a_tree_is_refused_up_front() {
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        for bad in [
            r#"{"a": "\udc00"}"#,
            "{\"a\": 1e999}",
            deep.as_str(),
            "{} {}",
        ] {
            assert!(Document::checked(bad.to_string()).is_err(), "{bad}");
            assert!(
                Document::with_sparse_tree(bad.to_string()).is_err(),
                "{bad}"
            );
        }
    }
}
