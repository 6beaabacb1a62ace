//! [`Error`]: why a request to the webhook got no AdmissionReview answer, and
//! the HTTP response it becomes.
//!
//! Bad input is a 4xx with a `metav1.Status` JSON body whose message says what
//! was wrong; nothing a client sends produces a 500 or a dropped connection.
//! A policy that fails is not an error here: the evaluator turns it into a
//! fault inside the verdict, and the answer is still an AdmissionReview.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why a request could not be answered with an AdmissionReview.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `Content-Type` is not `application/json`.
    #[error("unsupported content type {0:?}: expected application/json")]
    ContentType(String),
    /// The body is larger than the limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read.
    #[error("could not read the request body")]
    Body(#[source] axum::Error),
    /// The body is not JSON.
    #[error("request body is not valid JSON")]
    Json(#[source] serde_json::Error),
    /// The JSON is not an AdmissionReview of a known version.
    #[error(
        "expected an AdmissionReview (apiVersion admission.k8s.io/v1 or admission.k8s.io/v1beta1, kind AdmissionReview), got apiVersion {api_version:?}, kind {kind:?}"
    )]
    NotAReview {
        /// The document's apiVersion (empty when absent).
        api_version: String,
        /// The document's kind (empty when absent).
        kind: String,
    },
    /// The request has no uid to echo.
    #[error("AdmissionReview request has no uid")]
    NoUid,
    /// The request cannot be reviewed (no object, unknown operation...).
    #[error("invalid AdmissionReview")]
    Review(#[source] crate::review::Error),
    /// The first policy set is still being compiled.
    #[error("not ready: the policies are still loading")]
    NotReady,
}

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Error::Body(_)
            | Error::Json(_)
            | Error::NotAReview { .. }
            | Error::NoUid
            | Error::Review(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The message with its causes, one line.
    pub fn message(&self) -> String {
        chain(self)
    }
}

/// An error and its causes on one line, `: `-separated.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message.replace('\n', " ")
}

/// The `metav1.Status` body of an error response.
#[derive(Serialize)]
struct Status<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    status: &'static str,
    message: &'a str,
    reason: &'a str,
    code: u16,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.message();
        tracing::debug!(code = status.as_u16(), "request rejected: {message}");
        let reason = status
            .canonical_reason()
            .unwrap_or("Error")
            .replace(' ', "");
        let body = Status {
            api_version: "v1",
            kind: "Status",
            status: "Failure",
            message: &message,
            reason: &reason,
            code: status.as_u16(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| message.into_bytes());
        let mut response = (status, bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}
