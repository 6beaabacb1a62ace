//! The webhook's metrics, kept in atomics and written by hand in the
//! Prometheus text exposition format (version 0.0.4) for `GET /metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `tollgate_admission_requests_total` | counter | `endpoint` (validate, mutate), `outcome` (allowed, denied, unavailable, rejected) |
//! | `tollgate_admission_request_duration_seconds` | histogram, buckets from 50 µs to 10 s | `endpoint` |
//! | `tollgate_admission_in_flight` | gauge | |
//! | `tollgate_policy_results_total` | counter | `policy`, `result` (pass, deny, warn, audit, fault) |
//! | `tollgate_policy_set_reloads_total` | counter | `result` (success, failure) |
//! | `tollgate_tls_reloads_total` | counter | `result` (success, failure) |
//! | `tollgate_policies_loaded` | gauge | |
//! | `tollgate_ready` | gauge (0 or 1) | |
//!
//! `unavailable` counts answers given by the failure policy (no evaluation
//! slot, or evaluation past the deadline); `rejected` counts 4xx/503 answers
//! to bad or early requests. Durations are measured in the handler, from the
//! body being read to the response bytes being ready.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::decision::{Mode, PolicyResult, Verdict};

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// The webhook endpoints that answer AdmissionReviews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /validate`.
    Validate,
    /// `POST /mutate`.
    Mutate,
}

impl Endpoint {
    const ALL: [Endpoint; 2] = [Endpoint::Validate, Endpoint::Mutate];

    /// The `endpoint` label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
        }
    }
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An AdmissionReview with `allowed: true`.
    Allowed,
    /// An AdmissionReview with `allowed: false` from the policies.
    Denied,
    /// An AdmissionReview decided by the failure policy (overload, deadline).
    Unavailable,
    /// No AdmissionReview: bad input, or not ready.
    Rejected,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Allowed,
        Outcome::Denied,
        Outcome::Unavailable,
        Outcome::Rejected,
    ];

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Unavailable => "unavailable",
            Outcome::Rejected => "rejected",
        }
    }
}

const RESULTS: [&str; 5] = ["pass", "deny", "warn", "audit", "fault"];

/// Where a review was evaluated ([`crate::admission::state::State::run_evaluation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// On the async worker that read it, within the inline slice.
    Inline,
    /// Tried inline, cut short by the slice, and queued for the pool.
    InlineCut,
    /// On an evaluation thread of the pool.
    Pool,
}

impl Place {
    const ALL: [Place; 3] = [Place::Inline, Place::InlineCut, Place::Pool];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Place::Inline => "inline",
            Place::InlineCut => "inline_cut",
            Place::Pool => "pool",
        }
    }
}

#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; past the last bound only `count` grows.
    buckets: [AtomicU64; BUCKETS.len()],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Write the series of `name` with `labels` (`key="value",...`, or
    /// empty) before each `le`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        if labels.is_empty() {
            let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
        } else {
            let _ = writeln!(
                out,
                "{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {count}"
            );
        }
    }
}

#[derive(Default)]
struct EndpointMetrics {
    outcomes: [AtomicU64; Outcome::ALL.len()],
    duration: Histogram,
}

/// Counters and histograms of one server.
#[derive(Default)]
pub struct Metrics {
    endpoints: [EndpointMetrics; Endpoint::ALL.len()],
    in_flight: AtomicI64,
    places: [AtomicU64; Place::ALL.len()],
    queue_wait: Histogram,
    policies: Mutex<BTreeMap<String, [u64; RESULTS.len()]>>,
    policy_reloads: [AtomicU64; 2],
    tls_reloads: [AtomicU64; 2],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Counts a request in flight until dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Count a request as in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Requests in the handlers now.
    pub fn in_flight_now(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Record one answered request.
    pub fn observe(&self, endpoint: Endpoint, outcome: Outcome, elapsed: Duration) {
        let metrics = &self.endpoints[endpoint as usize];
        metrics.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        metrics.duration.observe(elapsed);
    }

    /// Count a review evaluated at `place` (a cut inline try counts once as
    /// [`Place::InlineCut`] and again where it is then evaluated).
    pub fn evaluated(&self, place: Place) {
        self.places[place as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Record how long a review waited in the queue for an evaluation thread.
    pub fn queued_for(&self, waited: Duration) {
        self.queue_wait.observe(waited);
    }

    /// Record each policy's result in a verdict.
    pub fn observe_verdict(&self, verdict: &Verdict) {
        if verdict.results.is_empty() {
            return;
        }
        let Ok(mut policies) = self.policies.lock() else {
            return;
        };
        for result in &verdict.results {
            let index = result_index(result);
            match policies.get_mut(result.policy.as_str()) {
                Some(counts) => counts[index] += 1,
                None => {
                    let mut counts = [0; RESULTS.len()];
                    counts[index] = 1;
                    policies.insert(result.policy.clone(), counts);
                }
            }
        }
    }

    /// Record a policy set reload.
    pub fn policy_reload(&self, success: bool) {
        self.policy_reloads[usize::from(!success)].fetch_add(1, Ordering::Relaxed);
    }

    /// Record a certificate reload.
    pub fn tls_reload(&self, success: bool) {
        self.tls_reloads[usize::from(!success)].fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self, policies_loaded: usize, ready: bool) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "tollgate_admission_requests_total",
            "counter",
            "AdmissionReviews answered, by endpoint and outcome.",
        );
        for endpoint in Endpoint::ALL {
            for outcome in Outcome::ALL {
                let value = self.endpoints[endpoint as usize].outcomes[outcome as usize]
                    .load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "tollgate_admission_requests_total{{endpoint=\"{}\",outcome=\"{}\"}} {value}",
                    endpoint.label(),
                    outcome.label()
                );
            }
        }
        let name = "tollgate_admission_request_duration_seconds";
        header(
            &mut out,
            name,
            "histogram",
            "Time from a read request body to the response, by endpoint.",
        );
        for endpoint in Endpoint::ALL {
            let label = format!("endpoint=\"{}\"", endpoint.label());
            self.endpoints[endpoint as usize]
                .duration
                .render(&mut out, name, &label);
        }
        header(
            &mut out,
            "tollgate_admission_evaluations_total",
            "counter",
            "Reviews evaluated, by where: inline on the worker that read them, inline tries cut short by their slice, on the evaluation pool.",
        );
        for place in Place::ALL {
            let _ = writeln!(
                out,
                "tollgate_admission_evaluations_total{{place=\"{}\"}} {}",
                place.label(),
                self.places[place as usize].load(Ordering::Relaxed)
            );
        }
        let name = "tollgate_admission_queue_wait_seconds";
        header(
            &mut out,
            name,
            "histogram",
            "Time a review waited in the queue for an evaluation thread.",
        );
        self.queue_wait.render(&mut out, name, "");
        header(
            &mut out,
            "tollgate_admission_in_flight",
            "gauge",
            "Requests being answered now.",
        );
        let _ = writeln!(
            out,
            "tollgate_admission_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "tollgate_policy_results_total",
            "counter",
            "Policy results in admission, by policy and result.",
        );
        if let Ok(policies) = self.policies.lock() {
            for (policy, counts) in policies.iter() {
                for (result, count) in RESULTS.iter().zip(counts) {
                    let _ = writeln!(
                        out,
                        "tollgate_policy_results_total{{policy=\"{}\",result=\"{result}\"}} {count}",
                        escape(policy)
                    );
                }
            }
        }
        for (name, help, counters) in [
            (
                "tollgate_policy_set_reloads_total",
                "Policy set reloads after a change, by result.",
                &self.policy_reloads,
            ),
            (
                "tollgate_tls_reloads_total",
                "Certificate reloads after a change, by result.",
                &self.tls_reloads,
            ),
        ] {
            header(&mut out, name, "counter", help);
            for (result, counter) in ["success", "failure"].iter().zip(counters) {
                let _ = writeln!(
                    out,
                    "{name}{{result=\"{result}\"}} {}",
                    counter.load(Ordering::Relaxed)
                );
            }
        }
        header(
            &mut out,
            "tollgate_policies_loaded",
            "gauge",
            "Policies in the active policy set.",
        );
        let _ = writeln!(out, "tollgate_policies_loaded {policies_loaded}");
        header(
            &mut out,
            "tollgate_ready",
            "gauge",
            "1 once the first policy set is compiled and until shutdown.",
        );
        let _ = writeln!(out, "tollgate_ready {}", u8::from(ready));
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn result_index(result: &PolicyResult) -> usize {
    if result.error.is_some() {
        4
    } else if !result.allowed {
        1
    } else if result.violations.is_empty() {
        0
    } else if result.mode == Mode::Audit {
        3
    } else {
        2
    }
}

/// Escape a label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
