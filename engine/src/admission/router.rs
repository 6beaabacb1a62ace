//! [`router`]: the webhook's routes, as a plain function of the state so tests
//! drive it with `tower::ServiceExt::oneshot` and the server wraps it in TLS.
//!
//! | route | answer |
//! |---|---|
//! | `POST /validate` | AdmissionReview: allowed or denied, never a patch |
//! | `POST /mutate` | AdmissionReview: allowed with a JSON Patch, or denied |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 once the policies are compiled; 503 before and while draining |
//! | `GET /metrics` | Prometheus text format |

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use super::{State, handlers};

/// The webhook's routes over `state`. Bodies over
/// [`Config::max_body_bytes`](super::Config::max_body_bytes) get a 413.
pub fn router(state: State) -> Router {
    let limit = state.config().max_body_bytes;
    Router::new()
        .route("/validate", post(handlers::validate))
        .route("/mutate", post(handlers::mutate))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
