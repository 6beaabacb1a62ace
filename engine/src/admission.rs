//! Admission mode (`tollgate serve`): a validating and mutating webhook for
//! the Kubernetes API server, over HTTPS.
//!
//! The path of one review is short and the same for every request: body
//! bytes → on an evaluation thread (or, when the server is otherwise idle,
//! on the async worker that read it): the request read in one pass with the
//! objects kept as text ([`review_protocol::parse`]) → [`Review`] →
//! [`Evaluator::evaluate`] (or `evaluate_mutating`) → AdmissionReview
//! response bytes. The request's JSON is read and freed on that one thread.
//! Policy logic lives only in the evaluator; this module owns the HTTP edge.
//!
//! | file | owns |
//! |---|---|
//! | [`router`](mod@router) | [`router`](fn@router)`(state) -> Router`: the routes and the body limit |
//! | [`handlers`] | thin axum handlers for `/validate`, `/mutate`, `/healthz`, `/readyz`, `/metrics` |
//! | [`review_protocol`] | the AdmissionReview v1/v1beta1 wire format: parsing requests, writing responses |
//! | [`state`] | the shared [`State`]: the swappable evaluator, the evaluation pool, the deadline |
//! | `pool` | the evaluation threads and their queue |
//! | `envelope` | reading a request body in one pass, the objects kept as text |
//! | [`error`] | [`Error`], the one error type of a request, and its HTTP response |
//! | [`metrics`] | counters and latency histograms in the Prometheus text format |
//! | [`tls`] | rustls configuration from PEM files, reloaded when they change |
//! | `socket` | accepted connections: `TCP_NODELAY` and a read buffer under TLS |
//! | [`reload`] | the policy set, rebuilt and swapped when its files change |
//! | `watch` | change detection by polling file stamps (certificate and policies) |
//! | [`server`] | [`server::run`]: bind, serve, reload, drain on SIGTERM/SIGINT |
//!
//! Wire contract: <https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#response>.
//!
//! [`Review`]: crate::review::Review
//! [`Evaluator::evaluate`]: crate::evaluator::Evaluator::evaluate

mod envelope;
pub mod error;
pub mod handlers;
pub mod metrics;
mod pool;
pub mod reload;
pub mod review_protocol;
pub mod router;
pub mod server;
mod socket;
pub mod state;
pub mod tls;
mod watch;

pub use error::Error;
pub use router::router;
pub use state::{Config, State};

#[cfg(test)]
mod tests;
