//! A [`Review`]: one object to judge, the admission request around it if there
//! is one, and the placement records computed once and shared by every policy.
//!
//! Bad input fails here, before any policy runs: an object without `kind` or
//! `apiVersion`, or an AdmissionReview without a request, is a [`Error`].
//!
//! The object, the old object and the request are [`Document`]s: the webhook
//! hands them over as text, with the placement records read from the text
//! (a Pod's without a tree, other kinds' from a sparse one), and each tree is
//! parsed only if a policy needs it ([`document`]).

mod document;

use std::sync::{Arc, OnceLock};

pub(crate) use document::Document;

use serde_json::Value;
use tollgate_sdk::model::{Operation, RequestInfo};
use tollgate_sdk::placement::{self, ReviewError};

/// Why a review could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object is not a Kubernetes object.
    #[error(transparent)]
    Object(#[from] ReviewError),
    /// The AdmissionReview has no `request`.
    #[error("AdmissionReview has no request")]
    NoRequest,
    /// The AdmissionReview request has neither `object` nor `oldObject`.
    #[error("AdmissionReview request has neither object nor oldObject")]
    NoObject,
    /// The operation is not CREATE, UPDATE, DELETE or CONNECT.
    #[error("unknown admission operation {0:?}")]
    UnknownOperation(String),
    /// The object's or old object's text is not valid JSON.
    #[error("the request's {field} is not valid JSON: {source}")]
    Json {
        /// `object` or `oldObject`.
        field: &'static str,
        /// The parser's error.
        source: serde_json::Error,
    },
}

/// One object to judge. Cheap to clone: everything is shared.
#[derive(Clone)]
pub struct Review {
    inner: Arc<Inner>,
}

struct Inner {
    object: Document,
    /// A DELETE: `object` is the deleted object (the request's oldObject).
    deleted: bool,
    old_object: Option<Document>,
    request: Option<Document>,
    records: tollgate_sdk::Review,
    wasm: OnceLock<crate::wasm::WitReview>,
    /// The records in the `wire` encoding, for `evaluate-encoded`.
    encoded: OnceLock<Vec<u8>>,
    cel: OnceLock<crate::cel::Inputs>,
}

impl std::fmt::Debug for Review {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Review")
            .field("kind", &self.inner.records.kind)
            .field("name", &self.inner.records.display_name())
            .finish()
    }
}

impl Review {
    /// Review `object` outside admission (audit, `tollgate eval --object`).
    ///
    /// # Errors
    /// When the object lacks `apiVersion` or `kind`.
    pub fn from_object(object: Value) -> Result<Self, Error> {
        let records = placement::review(&object, Operation::None)?;
        Ok(Self::build(
            Document::from_tree(object),
            None,
            None,
            records,
            false,
        ))
    }

    /// Review the request of an AdmissionReview (`v1` or `v1beta1`), taking
    /// it apart without copying: the object and old object move out of the
    /// request, and the rest of the request stays as CEL's `request`.
    ///
    /// For a DELETE the old object is judged (the placement records are the
    /// deleted object's); CEL still sees `object: null` and `oldObject` set.
    ///
    /// # Errors
    /// When the review has no request or object, or an unknown operation.
    pub fn from_admission(mut review: Value) -> Result<Self, Error> {
        let mut request = match review.get_mut("request").map(Value::take) {
            Some(request @ Value::Object(_)) => request,
            _ => return Err(Error::NoRequest),
        };
        let mut take = |field: &str| {
            request
                .get_mut(field)
                .map(Value::take)
                .filter(|o| !o.is_null())
                .map(Input::Tree)
        };
        let object = take("object");
        let old_object = take("oldObject");
        Self::from_request(Request::Tree(request), object, old_object)
    }

    /// Review an AdmissionReview request and its `object` and `oldObject`,
    /// each given as a tree or as JSON text; `None` for one that is absent
    /// or null.
    ///
    /// # Errors
    /// As [`Review::from_admission`], and when an object given as text is not
    /// valid JSON.
    pub fn from_request(
        request: Request,
        object: Option<Input>,
        old_object: Option<Input>,
    ) -> Result<Self, Error> {
        let (request, text_head) = match request {
            Request::Tree(tree) => (Document::from_tree(tree), None),
            Request::Text { text, head, parse } => {
                (Document::from_text_parsed_by(text, parse), Some(head))
            }
        };
        // What the records read: the tree's fields, or those read with the text.
        let head = text_head.as_ref().unwrap_or_else(|| request.tree());
        let op_text = head
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("CREATE");
        let operation = Operation::parse(op_text)
            .ok_or_else(|| Error::UnknownOperation(op_text.to_string()))?;
        let deleted = object.is_none();
        let (judged, old) = match (object, old_object) {
            (Some(object), old) => (object, old),
            (None, Some(old)) => (old, None),
            (None, None) => return Err(Error::NoObject),
        };
        let judged_field = if deleted { "oldObject" } else { "object" };
        let (judged, mut records) = judged.into_judged(judged_field, operation)?;
        let old = old.map(|old| old.into_document("oldObject")).transpose()?;
        if records.namespace.is_empty()
            && let Some(ns) = head.get("namespace").and_then(Value::as_str)
        {
            records.namespace = ns.to_string();
        }
        let user_info = head.get("userInfo");
        records.request = Some(RequestInfo {
            uid: str_at(head.get("uid")),
            sub_resource: head
                .get("subResource")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            user: str_at(user_info.and_then(|u| u.get("username"))),
            groups: placement::array(user_info.and_then(|u| u.get("groups")))
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect(),
            dry_run: head.get("dryRun").and_then(Value::as_bool).unwrap_or(false),
        });
        Ok(Self::build(judged, old, Some(request), records, deleted))
    }

    /// The same review with a replaced object (after a mutation), keeping the
    /// request and old object.
    ///
    /// # Errors
    /// When the new object lacks `apiVersion` or `kind`.
    pub fn with_object(&self, object: Value) -> Result<Self, Error> {
        let mut records = placement::review(&object, self.operation())?;
        records.request = self.inner.records.request.clone();
        if records.namespace.is_empty() {
            records.namespace = self.inner.records.namespace.clone();
        }
        Ok(Self::build(
            Document::from_tree(object),
            self.inner.old_object.clone(),
            self.inner.request.clone(),
            records,
            self.inner.deleted,
        ))
    }

    fn build(
        object: Document,
        old_object: Option<Document>,
        request: Option<Document>,
        records: tollgate_sdk::Review,
        deleted: bool,
    ) -> Self {
        Review {
            inner: Arc::new(Inner {
                object,
                deleted,
                old_object,
                request,
                records,
                wasm: OnceLock::new(),
                encoded: OnceLock::new(),
                cel: OnceLock::new(),
            }),
        }
    }

    /// The object under review (parsed on first use when the review was
    /// made from text).
    pub fn object(&self) -> &Value {
        self.inner.object.tree()
    }

    /// Whether this is a DELETE, whose judged object is the deleted one.
    pub fn is_delete(&self) -> bool {
        self.inner.deleted
    }

    /// The previous object of an UPDATE.
    pub fn old_object(&self) -> Option<&Value> {
        self.inner.old_object.as_ref().map(Document::tree)
    }

    /// The AdmissionReview `request`, when there is one, with `object` and
    /// `oldObject` taken out.
    pub fn request(&self) -> Option<&Value> {
        self.inner.request.as_ref().map(Document::tree)
    }

    /// Whether the review comes from an admission request.
    pub fn has_request(&self) -> bool {
        self.inner.request.is_some()
    }

    /// The placement records.
    pub fn records(&self) -> &tollgate_sdk::Review {
        &self.inner.records
    }

    /// The admission operation.
    pub fn operation(&self) -> Operation {
        self.inner.records.operation
    }

    /// The object's kind.
    pub fn kind(&self) -> &str {
        &self.inner.records.kind
    }

    /// `Kind namespace/name` for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            self.inner.records.kind,
            self.inner.records.display_name()
        )
    }

    /// The object as JSON text (as received, or serialized once).
    pub fn object_text(&self) -> &str {
        self.inner.object.text()
    }

    /// The old object as JSON text (as received, or serialized once).
    pub fn old_object_text(&self) -> Option<&str> {
        self.inner.old_object.as_ref().map(Document::text)
    }

    pub(crate) fn wasm_cache(&self) -> &OnceLock<crate::wasm::WitReview> {
        &self.inner.wasm
    }

    /// The records in the SDK's `wire` encoding, encoded once per review.
    pub(crate) fn encoded_records(&self) -> &[u8] {
        self.inner
            .encoded
            .get_or_init(|| tollgate_sdk::wire::encode_review(&self.inner.records))
    }

    pub(crate) fn cel_cache(&self) -> &OnceLock<crate::cel::Inputs> {
        &self.inner.cel
    }
}

/// The fields of an AdmissionReview request that [`Review::from_request`]
/// reads for the placement records.
pub const REQUEST_FIELDS_READ: &[&str] = &[
    "uid",
    "operation",
    "namespace",
    "subResource",
    "userInfo",
    "dryRun",
];

/// An AdmissionReview request, for [`Review::from_request`].
#[derive(Debug)]
pub enum Request {
    /// As a tree, with `object` and `oldObject` taken out (null or absent).
    Tree(Value),
    /// As JSON text, with the fields of [`REQUEST_FIELDS_READ`] it has, and
    /// how the request's tree is made from the text when first asked for
    /// (the text may be the whole AdmissionReview). `parse` must accept the
    /// text and leave `object` and `oldObject` out, as in [`Request::Tree`].
    Text {
        /// The text the request's tree is parsed from.
        text: String,
        /// An object of the request's fields read.
        head: Value,
        /// Makes the request's tree from `text`.
        parse: fn(&str) -> serde_json::Result<Value>,
    },
}

/// An object of an admission request, as a tree or as JSON text.
#[derive(Debug)]
pub enum Input {
    /// Already parsed.
    Tree(Value),
    /// JSON text, parsed only as far as needed.
    Text(String),
}

impl Input {
    /// The judged object's document and placement records.
    fn into_judged(
        self,
        field: &'static str,
        operation: Operation,
    ) -> Result<(Document, tollgate_sdk::Review), Error> {
        match self {
            Input::Tree(tree) => {
                let records = placement::review(&tree, operation)?;
                Ok((Document::from_tree(tree), records))
            }
            Input::Text(text) => {
                // A Pod's records straight from the text, without a tree;
                // anything else through the sparse tree.
                if let Some(records) = placement::pod_review(&text, operation) {
                    return Ok((Document::from_checked_text(text), records));
                }
                let (document, sparse) = Document::with_sparse_tree(text)
                    .map_err(|source| Error::Json { field, source })?;
                Ok((document, placement::review(&sparse, operation)?))
            }
        }
    }

    fn into_document(self, field: &'static str) -> Result<Document, Error> {
        match self {
            Input::Tree(tree) => Ok(Document::from_tree(tree)),
            Input::Text(text) => {
                Document::checked(text).map_err(|source| Error::Json { field, source })
            }
        }
    }
}

fn str_at(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}
