//! The AdmissionReview wire format (`admission.k8s.io/v1` and `v1beta1`):
//! parsing a request body into a [`Request`], and writing the response for a
//! [`Verdict`].
//!
//! A response echoes the request's apiVersion, `kind: AdmissionReview` and
//! `request.uid`, and carries:
//! - `allowed`; on denial a `status` (`code: 403`, `reason: Forbidden`) whose
//!   message names each denying policy and rule:
//!   `<policy>: <message> (<rule>)`, joined by `; `;
//! - on `/mutate`, when allowed and some policy patched the object,
//!   `patchType: JSONPatch` and `patch`: base64 of the policies' JSON Patches
//!   concatenated in evaluation order (each was computed on the object as the
//!   previous ones left it, which is how the evaluator applied them);
//! - `warnings`: every policy warning (warn-mode violations, ignored faults...),
//!   without duplicates;
//! - `auditAnnotations`: `<policy>: <rule>,<rule>` for audit-mode policies with
//!   violations. The API server stores each key as `<webhook name>/<key>`, and
//!   drops keys that would then hold a second `/`, so keys are bare policy names;
//!   and a native policy's audit annotations as `<policy>.<key>: <value>`.
//!
//! See <https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#response>
//! and `VerifyAdmissionResponse` in kubernetes/apiserver.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Error, envelope};
use crate::decision::{FailurePolicy, Mode, Verdict};
use crate::review::{self, Input, Review};

/// The AdmissionReview API version of a request, echoed in its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `admission.k8s.io/v1`.
    V1,
    /// `admission.k8s.io/v1beta1` (API servers before 1.16 send it).
    V1Beta1,
}

impl Version {
    /// The `apiVersion` string.
    pub fn api_version(self) -> &'static str {
        match self {
            Version::V1 => "admission.k8s.io/v1",
            Version::V1Beta1 => "admission.k8s.io/v1beta1",
        }
    }
}

/// What a request needs to be judged and answered.
#[derive(Debug)]
pub struct Request {
    /// The version to answer with.
    pub version: Version,
    /// `request.uid`, echoed in the response.
    pub uid: String,
    /// The review, or `None` when the request holds no object to judge (a
    /// DELETE from an API server that does not send `oldObject`).
    pub review: Option<Review>,
}

/// The envelope's version and the request's uid: enough to answer.
#[derive(Debug, Clone)]
pub struct Head {
    /// The version to answer with.
    pub version: Version,
    /// `request.uid`.
    pub uid: String,
}

#[derive(Deserialize)]
struct EnvelopeHead<'a> {
    #[serde(rename = "apiVersion", borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    request: Option<RequestHead<'a>>,
}

#[derive(Deserialize)]
struct RequestHead<'a> {
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
}

/// Read only the envelope's version and the request's uid, skipping the
/// rest (no tree is built). On any problem, the error is the one [`parse`]
/// gives, so messages are the same either way.
///
/// # Errors
/// As [`parse`].
pub fn head(body: &[u8]) -> Result<Head, Error> {
    let full_error = || match parse(body) {
        Err(e) => e,
        Ok(_) => Error::NoUid,
    };
    let Ok(envelope) = serde_json::from_slice::<EnvelopeHead<'_>>(body) else {
        return Err(full_error());
    };
    let version = version(
        envelope.api_version.as_deref().unwrap_or_default(),
        envelope.kind.as_deref().unwrap_or_default(),
    )?;
    match envelope
        .request
        .and_then(|r| r.uid)
        .filter(|uid| !uid.is_empty())
    {
        Some(uid) => Ok(Head {
            version,
            uid: uid.into_owned(),
        }),
        None => Err(full_error()),
    }
}

fn version(api_version: &str, kind: &str) -> Result<Version, Error> {
    match (api_version, kind) {
        ("admission.k8s.io/v1", "AdmissionReview") => Ok(Version::V1),
        ("admission.k8s.io/v1beta1", "AdmissionReview") => Ok(Version::V1Beta1),
        (api_version, kind) => Err(Error::NotAReview {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        }),
    }
}

/// Parse a request body.
///
/// The objects of the request are kept as text and parsed only as far as the
/// policies need ([`envelope`]); a body the one-pass reader does not take is
/// parsed as a tree, which gives the same answer and the same messages.
///
/// # Errors
/// Not JSON, not an AdmissionReview of a known version, no uid, or a request
/// that cannot be reviewed (no object kind, unknown operation).
pub fn parse(body: &[u8]) -> Result<Request, Error> {
    match parse_parts(body) {
        Some(request) => request,
        None => parse_tree(body),
    }
}

/// The one-pass path, or `None` to take the tree path.
fn parse_parts(body: &[u8]) -> Option<Result<Request, Error>> {
    let parts = envelope::read(body)?;
    let version = version(
        parts.api_version.as_str().unwrap_or_default(),
        parts.kind.as_str().unwrap_or_default(),
    )
    .ok()?;
    let uid = parts
        .head
        .get("uid")
        .and_then(Value::as_str)
        .filter(|uid| !uid.is_empty())?
        .to_string();
    let text = |text: Option<&str>| text.map(|t| Input::Text(t.to_owned()));
    let request = review::Request::Text {
        text: parts.body.to_owned(),
        head: Value::Object(parts.head),
        parse: envelope::request_in_body,
    };
    let review = match Review::from_request(request, text(parts.object), text(parts.old_object)) {
        Ok(review) => Some(review),
        Err(review::Error::NoObject) => None,
        // An object that does not parse: the tree path says where.
        Err(review::Error::Json { .. }) => return None,
        Err(e) => return Some(Err(Error::Review(e))),
    };
    Some(Ok(Request {
        version,
        uid,
        review,
    }))
}

/// Parse the whole body into a tree and take it apart.
fn parse_tree(body: &[u8]) -> Result<Request, Error> {
    let doc: Value = serde_json::from_slice(body).map_err(Error::Json)?;
    let text = |field: &str| doc.get(field).and_then(Value::as_str).unwrap_or_default();
    let version = version(text("apiVersion"), text("kind"))?;
    if !doc.get("request").is_some_and(Value::is_object) {
        return Err(Error::Review(review::Error::NoRequest));
    }
    let uid = doc
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .filter(|uid| !uid.is_empty())
        .ok_or(Error::NoUid)?
        .to_string();
    // The review takes the document apart (no copy of the objects).
    let review = match Review::from_admission(doc) {
        Ok(review) => Some(review),
        Err(review::Error::NoObject) => None,
        Err(e) => return Err(Error::Review(e)),
    };
    Ok(Request {
        version,
        uid,
        review,
    })
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    response: Response<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: BTreeMap<String, String>,
}

/// `metav1.Status` of a denial.
#[derive(Serialize)]
struct Status {
    status: &'static str,
    code: u16,
    reason: &'static str,
    message: String,
}

impl<'a> Response<'a> {
    fn new(uid: &'a str, allowed: bool) -> Self {
        Response {
            uid,
            allowed,
            status: None,
            patch_type: None,
            patch: None,
            warnings: Vec::new(),
            audit_annotations: BTreeMap::new(),
        }
    }

    fn deny(&mut self, code: u16, reason: &'static str, message: String) {
        self.status = Some(Status {
            status: "Failure",
            code,
            reason,
            message,
        });
    }

    fn into_bytes(self, version: Version) -> Vec<u8> {
        let envelope = Envelope {
            api_version: version.api_version(),
            kind: "AdmissionReview",
            response: self,
        };
        serde_json::to_vec(&envelope)
            .expect("an AdmissionReview response of strings, bools and maps always serializes")
    }
}

/// The response for `verdict`. With `mutating`, an allowed verdict carries
/// the policies' patches.
pub fn respond(version: Version, uid: &str, verdict: &Verdict, mutating: bool) -> Vec<u8> {
    let mut response = Response::new(uid, verdict.allowed);
    if !verdict.allowed {
        response.deny(403, "Forbidden", denial_message(verdict));
    }
    for warning in verdict.results.iter().flat_map(|r| &r.warnings) {
        if !response.warnings.contains(&warning.as_str()) {
            response.warnings.push(warning);
        }
    }
    for result in verdict
        .results
        .iter()
        .filter(|r| r.mode == Mode::Audit && !r.violations.is_empty())
    {
        let mut rules: Vec<&str> = Vec::new();
        for violation in &result.violations {
            if !rules.contains(&violation.rule.as_str()) {
                rules.push(&violation.rule);
            }
        }
        response
            .audit_annotations
            .insert(annotation_key(&result.policy), rules.join(","));
    }
    // Native policies' audit annotations (`<policy>/<key>`), with the `/`
    // the API server would refuse made a `.`.
    for (key, value) in verdict.results.iter().flat_map(|r| &r.annotations) {
        response
            .audit_annotations
            .insert(annotation_key(&key.replace('/', ".")), value.clone());
    }
    if mutating
        && verdict.allowed
        && let Some(patch) = combined_patch(verdict)
    {
        response.patch_type = Some("JSONPatch");
        response.patch = Some(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    response.into_bytes(version)
}

/// The response when nothing could be judged: no policy judges an absent
/// object, so the request is allowed and the reason recorded.
pub fn nothing_to_judge(version: Version, uid: &str) -> Vec<u8> {
    let mut response = Response::new(uid, true);
    response.audit_annotations.insert(
        "skipped".into(),
        "request has neither object nor oldObject".into(),
    );
    response.into_bytes(version)
}

/// The response when the review could not be evaluated in time (no free
/// evaluation slot, or evaluation past the deadline): `failure_policy` decides.
pub fn unavailable(
    version: Version,
    uid: &str,
    failure_policy: FailurePolicy,
    message: &str,
) -> Vec<u8> {
    let message = format!("tollgate: {message}");
    match failure_policy {
        FailurePolicy::Fail => {
            let mut response = Response::new(uid, false);
            response.deny(503, "ServiceUnavailable", message);
            response.into_bytes(version)
        }
        FailurePolicy::Ignore => {
            let mut response = Response::new(uid, true);
            response.warnings.push(&message);
            response
                .audit_annotations
                .insert("failed-open".into(), message.clone());
            response.into_bytes(version)
        }
    }
}

/// `<policy>: <message> (<rule>)` for each denial, `; `-separated.
fn denial_message(verdict: &Verdict) -> String {
    let mut parts = Vec::new();
    for result in verdict.results.iter().filter(|r| !r.allowed) {
        if let Some(fault) = &result.error {
            parts.push(format!(
                "{}: policy failed ({}): {}",
                result.policy,
                kind_name(fault.kind),
                fault.message
            ));
        } else if result.violations.is_empty() {
            parts.push(format!("{}: denied", result.policy));
        } else {
            parts.extend(
                result
                    .violations
                    .iter()
                    .map(|v| format!("{}: {} ({})", result.policy, v.message, v.rule)),
            );
        }
    }
    if parts.is_empty() {
        "denied".to_string()
    } else {
        parts.join("; ")
    }
}

fn kind_name(kind: crate::decision::FaultKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{kind:?}"))
}

/// Every policy's patch operations, in evaluation order, as one JSON array.
fn combined_patch(verdict: &Verdict) -> Option<Vec<u8>> {
    let operations: Vec<&Value> = verdict
        .results
        .iter()
        .filter_map(|r| r.patch.as_ref())
        .flat_map(|p| p.as_array().map(|ops| ops.iter()).into_iter().flatten())
        .collect();
    if operations.is_empty() {
        return None;
    }
    serde_json::to_vec(&operations).ok()
}

/// A policy name as an audit annotation key: a qualified-name part
/// (`[A-Za-z0-9][-A-Za-z0-9_.]*`, at most 63 characters).
fn annotation_key(policy: &str) -> String {
    let key: String = policy
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let key = key.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if key.is_empty() {
        "policy".to_string()
    } else {
        key.to_string()
    }
}
