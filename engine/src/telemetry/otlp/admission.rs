//! What `tollgate serve` exports over OTLP (see docs/audit.md "OpenTelemetry").
//!
//! - Traces: a span `admission review` per evaluated AdmissionReview (the
//!   object as `k8s.*` attributes, the endpoint, the operation, the verdict)
//!   with a child span per policy run.
//! - Metrics: the counter `tollgate.admission.reviews` by `tollgate.endpoint`
//!   and `tollgate.verdict` (allowed, denied, unavailable, rejected), and the
//!   histogram `tollgate.admission.duration` (seconds, the buckets of the
//!   Prometheus `/metrics`), both measured where the Prometheus ones are.
//!
//! When export is off, [`active`] is `None` and the handlers read no clock
//! for it.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use super::{SCOPE, object_attributes};
use crate::admission::metrics::BUCKETS;
use crate::audit::Resource;
use crate::decision::Verdict;
use crate::policy::PolicySet;
use crate::review::Review;

/// The webhook's OTLP instruments.
#[derive(Debug)]
pub struct Admission {
    tracer: Option<SdkTracer>,
    reviews: Option<Counter<u64>>,
    duration: Option<Histogram<f64>>,
}

static ADMISSION: OnceLock<Option<Admission>> = OnceLock::new();

/// The instruments, when OTLP export is on.
pub fn active() -> Option<&'static Admission> {
    ADMISSION
        .get_or_init(|| super::active().map(Admission::new))
        .as_ref()
}

impl Admission {
    fn new(providers: &super::Providers) -> Self {
        let meter = providers.meter.as_ref().map(|p| p.meter(SCOPE));
        Admission {
            tracer: providers.tracer.as_ref().map(|p| p.tracer(SCOPE)),
            reviews: meter.as_ref().map(|m| {
                m.u64_counter("tollgate.admission.reviews")
                    .with_description("AdmissionReviews answered, by endpoint and verdict")
                    .with_unit("{review}")
                    .build()
            }),
            duration: meter.as_ref().map(|m| {
                m.f64_histogram("tollgate.admission.duration")
                    .with_description("Time from the body read to the answer ready")
                    .with_unit("s")
                    .with_boundaries(BUCKETS.to_vec())
                    .build()
            }),
        }
    }

    /// Count one answered request.
    pub fn observe(&self, endpoint: &'static str, verdict: &'static str, elapsed: Duration) {
        let attributes = [
            KeyValue::new("tollgate.endpoint", endpoint),
            KeyValue::new("tollgate.verdict", verdict),
        ];
        if let Some(reviews) = &self.reviews {
            reviews.add(1, &attributes);
        }
        if let Some(duration) = &self.duration {
            duration.record(elapsed.as_secs_f64(), &attributes[..1]);
        }
    }

    /// Start timing one review's evaluation (`None` without traces).
    pub fn start_review(&self) -> Option<ReviewTrace> {
        self.tracer.as_ref().map(|_| ReviewTrace {
            started: SystemTime::now(),
            clock: Instant::now(),
            policies: Vec::new(),
        })
    }
}

/// The policy runs of one review, turned into spans by [`ReviewTrace::finish`].
#[derive(Debug)]
pub struct ReviewTrace {
    started: SystemTime,
    clock: Instant,
    policies: Vec<(usize, Instant, Duration)>,
}

impl ReviewTrace {
    /// Note a policy run (the evaluator's observer).
    pub fn policy_ran(&mut self, index: usize, started: Instant, elapsed: Duration) {
        self.policies.push((index, started, elapsed));
    }

    fn at(&self, instant: Instant) -> SystemTime {
        self.started + instant.saturating_duration_since(self.clock)
    }

    /// Export the review's span and its policies' child spans.
    pub fn finish(
        self,
        endpoint: &'static str,
        review: &Review,
        verdict: &Verdict,
        set: &PolicySet,
    ) {
        let Some(tracer) = active().and_then(|a| a.tracer.as_ref()) else {
            return;
        };
        let mut object = Resource::of(review.object());
        if object.namespace.is_empty() {
            // Objects in CREATE requests often carry their namespace only in the request.
            let namespace = review.request().and_then(|r| r.get("namespace"));
            object.namespace = namespace
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .into();
        }
        let mut attributes: Vec<KeyValue> = object_attributes(&object)
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        attributes.extend([
            KeyValue::new("tollgate.endpoint", endpoint),
            KeyValue::new(
                "tollgate.operation",
                format!("{:?}", review.operation()).to_uppercase(),
            ),
            KeyValue::new("tollgate.allowed", verdict.allowed),
        ]);
        let mut root = tracer
            .span_builder("admission review")
            .with_kind(SpanKind::Server)
            .with_start_time(self.started)
            .with_attributes(attributes)
            .start(tracer);
        if !verdict.allowed {
            let denied: Vec<&str> = verdict.denials().map(|(policy, _)| policy).collect();
            root.set_status(Status::error(format!("denied by {}", denied.join(", "))));
        }
        let parent = Context::current_with_span(root);
        for &(index, started, elapsed) in &self.policies {
            let Some(policy) = set.policies().get(index) else {
                continue;
            };
            let start = self.at(started);
            let mut span = tracer
                .span_builder(format!("policy {}", policy.name))
                .with_kind(SpanKind::Internal)
                .with_start_time(start)
                .with_attributes([KeyValue::new("tollgate.policy", policy.name.clone())])
                .start_with_context(tracer, &parent);
            span.end_with_timestamp(start + elapsed);
        }
        parent.span().end_with_timestamp(SystemTime::now());
    }
}
