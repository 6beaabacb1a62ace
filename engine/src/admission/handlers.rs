//! The axum handlers. `/validate` and `/mutate` share one path: check the
//! content type, then in the bounded section ([`State::run_evaluation`])
//! parse the AdmissionReview ([`review_protocol::parse`]), evaluate, and
//! write the response ([`review_protocol::respond`]). A review refused there
//! (no evaluation slot in time, past its deadline) is answered by the failure
//! policy after reading only the envelope's version and uid
//! ([`review_protocol::head`]); record metrics (and,
//! when OTLP export is on, a span per review: [`crate::telemetry::otlp::admission`]). The
//! probes and `/metrics` only read the state.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::metrics::{Endpoint, Outcome};
use super::review_protocol;
use super::state::{Attempt, Refusal, Try};
use super::{Error, State};
use crate::cluster::ClusterView;
use crate::decision::{FaultKind, Verdict};
use crate::evaluator::Evaluator;
use crate::telemetry::otlp;

/// Requests up to this size get a first evaluation attempt on the async
/// worker ([`State::run_evaluation`]); parsing a larger one alone would hold
/// the worker too long.
const INLINE_BODY_BYTES: usize = 64 << 10;

/// `POST /validate`: judge the review; never patches.
pub async fn validate(
    Extract(state): Extract<State>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    admit(&state, Endpoint::Validate, &uri, &headers, body).await
}

/// `POST /mutate`: apply the policies' patches in order, then judge; an
/// allowed answer carries the combined JSON Patch.
pub async fn mutate(
    Extract(state): Extract<State>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    admit(&state, Endpoint::Mutate, &uri, &headers, body).await
}

/// `GET /healthz`: the process serves HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 once every policy of the first set is compiled, 503
/// before that and while draining at shutdown.
pub async fn readyz(Extract(state): Extract<State>) -> (StatusCode, &'static str) {
    if state.is_ready() {
        (StatusCode::OK, "ready\n")
    } else if state.evaluator().is_none() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the policies are still loading\n",
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        )
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(Extract(state): Extract<State>) -> Response {
    let text = state
        .metrics()
        .render(state.policies_loaded(), state.is_ready());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn admit(
    state: &State,
    endpoint: Endpoint,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let _in_flight = state.metrics().in_flight();
    let started = Instant::now();
    let (outcome, response) = match answer(state, endpoint, uri, headers, body).await {
        Ok((outcome, bytes)) => {
            let mut response = bytes.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            (outcome, response)
        }
        Err(e) => (Outcome::Rejected, e.into_response()),
    };
    let elapsed = started.elapsed();
    state.metrics().observe(endpoint, outcome, elapsed);
    if let Some(otlp) = otlp::admission::active() {
        otlp.observe(endpoint.label(), outcome.label(), elapsed);
    }
    response
}

async fn answer(
    state: &State,
    endpoint: Endpoint,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Outcome, Vec<u8>), Error> {
    check_content_type(headers)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge {
            limit: state.config().max_body_bytes,
        },
        _ => Error::Body(axum::Error::new(rejection)),
    })?;
    let metrics = state.clone();
    let judged_body = body.clone();
    let judged = state
        .run_evaluation(
            state.timeout(uri.query()),
            body.len() <= INLINE_BODY_BYTES,
            move |evaluator, cluster, attempt| {
                judge(
                    &judged_body,
                    endpoint,
                    evaluator,
                    cluster,
                    attempt,
                    &metrics,
                )
            },
        )
        .await;
    match judged {
        Ok(answer) => answer,
        Err(Refusal::NotReady) => Err(Error::NotReady),
        Err(refusal) => {
            // Read only the envelope's version and uid, to answer in kind.
            let head = review_protocol::head(&body)?;
            let failure_policy = state.config().failure_policy;
            tracing::warn!(uid = %head.uid, ?failure_policy, "review answered by the failure policy: {refusal}");
            let answer = review_protocol::unavailable(
                head.version,
                &head.uid,
                failure_policy,
                &refusal.to_string(),
            );
            Ok((Outcome::Unavailable, answer))
        }
    }
}

/// Inside the bounded section: parse, evaluate, count, write the answer; or,
/// when the attempt's deadline cut the evaluation short, [`Attempt::Cut`]
/// with nothing counted.
fn judge(
    body: &[u8],
    endpoint: Endpoint,
    evaluator: &Evaluator,
    cluster: &Arc<dyn ClusterView>,
    attempt: Try,
    state: &State,
) -> Attempt<Result<(Outcome, Vec<u8>), Error>> {
    let mutating = endpoint == Endpoint::Mutate;
    let deadline = attempt.deadline;
    let mut trace = otlp::admission::active().and_then(|otlp| otlp.start_review());
    let request = match review_protocol::parse(body) {
        Ok(request) => request,
        Err(e) => return Attempt::Done(Err(e)),
    };
    let Some(review) = request.review else {
        return Attempt::Done(Ok((
            Outcome::Allowed,
            review_protocol::nothing_to_judge(request.version, &request.uid),
        )));
    };
    let verdict = match &mut trace {
        None => evaluator.evaluate_before(&review, cluster, mutating, deadline, None),
        Some(trace) => evaluator.evaluate_before(
            &review,
            cluster,
            mutating,
            deadline,
            Some(&mut |i, at, took| trace.policy_ran(i, at, took)),
        ),
    };
    if cut_short(&verdict, deadline) {
        return Attempt::Cut;
    }
    if let Some(trace) = trace {
        trace.finish(endpoint.label(), &review, &verdict, evaluator.policies());
    }
    state.metrics().observe_verdict(&verdict);
    let outcome = if verdict.allowed {
        Outcome::Allowed
    } else {
        Outcome::Denied
    };
    Attempt::Done(Ok((
        outcome,
        review_protocol::respond(request.version, &request.uid, &verdict, mutating),
    )))
}

/// Whether an evaluation that had until `deadline` was cut by it: the
/// deadline has passed and some policy timed out (interrupted, or not run).
fn cut_short(verdict: &Verdict, deadline: Instant) -> bool {
    Instant::now() >= deadline
        && verdict.results.iter().any(|r| {
            r.error
                .as_ref()
                .is_some_and(|f| f.kind == FaultKind::Timeout)
        })
}

/// Accept `application/json`, with parameters (`; charset=utf-8`) or not.
fn check_content_type(headers: &HeaderMap) -> Result<(), Error> {
    let value = headers.get(header::CONTENT_TYPE);
    let is_json = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        return Ok(());
    }
    let value = value.map_or_else(
        || "(none)".into(),
        |v| String::from_utf8_lossy(v.as_bytes()).into_owned(),
    );
    Err(Error::ContentType(value))
}
