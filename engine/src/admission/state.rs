//! The webhook's shared [`State`]: the active evaluator (swapped whole on
//! reload), the cluster view, the evaluation pool, the configuration and
//! the metrics; and [`State::run_evaluation`], the bounded section every
//! review goes through.
//!
//! Evaluation is synchronous (WASM policies are epoch-interrupted, CEL runs to
//! completion). When no other request is in the handlers, and none has been
//! beside another there for [`Config::overlap_memory`], a review gets one
//! short try on the async worker that read it ([`INLINE_SLICE`], small
//! bodies only): a typical review takes a fraction of a millisecond, and
//! handing it to another thread and back costs two thread wake-ups, which at
//! low load are most of its latency. Under a load whose reviews overlap,
//! though, an inline try holds a worker that the reviews arriving with it
//! need for reading and answering (measured, docs/benchmarks.md: at an
//! offered 5,000/s the p99 was higher and the CPU per review too), so a
//! review that overlaps another keeps the next ones on the pool for a while.
//! Otherwise, and when the try is cut short, it is queued for the evaluation
//! pool's [`Config::max_concurrent`] threads, and waits there until its
//! deadline at most. A try is cut short when the slice's end interrupts a
//! WASM policy or leaves policies not run; the review is then evaluated
//! again from the start with its whole deadline, so a slow policy holds a
//! worker for at most the slice (evaluation has no side effects: the
//! discarded try changes nothing). CEL policies are not interrupted inside an
//! expression; their cost budget bounds them. Past the deadline a review is
//! answered by the failure policy: a queued one is withdrawn, and one in
//! evaluation, which cannot be cancelled, finishes in the background (its
//! WASM policies are interrupted at the deadline, and policies whose turn
//! comes later are not run). An evaluation that its deadline cut short is
//! answered the same way, whether it ends before the requester's timer
//! fires or after.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use super::metrics::{Metrics, Place};
use super::pool::{Outcome, Pool};
use crate::cluster::ClusterView;
use crate::decision::FailurePolicy;
use crate::evaluator::Evaluator;

/// How the webhook answers.
#[derive(Debug, Clone)]
pub struct Config {
    /// The longest a review may take, from its body being read to its answer
    /// (waiting in the queue included). Keep it below the webhook's
    /// `timeoutSeconds`; the API server's `?timeout=` shortens it further.
    pub request_timeout: Duration,
    /// What to answer when a review cannot be evaluated in time.
    pub failure_policy: FailurePolicy,
    /// Reviews evaluated at the same time: the evaluation threads;
    /// [`default_threads`] by default. The WASM instances are sized by
    /// [`instance_slots`].
    pub max_concurrent: u32,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long after two reviews were last in the handlers together a lone
    /// review still goes to the evaluation pool instead of being tried
    /// inline ([`State::run_evaluation`]).
    pub overlap_memory: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_timeout: Duration::from_secs(9),
            failure_policy: FailurePolicy::Fail,
            max_concurrent: default_threads(),
            max_body_bytes: 3 << 20,
            overlap_memory: Duration::from_millis(10),
        }
    }
}

/// The CPUs this process may use (`available_parallelism` counts the
/// cgroup's CPU quota).
fn cpus() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    u32::try_from(cpus).unwrap_or(u32::MAX)
}

/// The default number of evaluation threads: one per CPU this process may
/// use, and at least two, so that one slow review does not hold up all the
/// others. Evaluation is CPU-bound, so more threads add no throughput: they
/// only take turns on the CPUs, each with its own cold caches and heap.
/// Measured with 2 CPUs at an offered 5,000 reviews/s (docs/benchmarks.md,
/// session 11; the WASM instances sized alike, [`instance_slots`]): 2
/// threads spent 12% less CPU per review than 8 and had a lower p99 in five
/// of six alternating rounds. Far more threads cost more still: 64 against 8
/// at 64 connections gave about 10% fewer reviews per second and a p99 of
/// about 50 ms instead of 13 (session 4).
pub fn default_threads() -> u32 {
    cpus().max(2)
}

/// How many evaluations at once the WASM runtime's instances are sized for,
/// given `threads` evaluation threads: at least four per CPU, plus an
/// inline try and a reload's load-time calls. The runtime's idle warm
/// instances are shared by every policy of the set, so they must outnumber
/// the threads several times over: sized for the threads alone (2 + 3 for
/// 2 threads), a five-policy pack kept one idle instance per policy and
/// instantiated afresh so often that the server spent twice the kernel time
/// per review (docs/benchmarks.md, session 11).
pub fn instance_slots(threads: u32) -> u32 {
    threads.max(cpus().saturating_mul(4)).saturating_add(3)
}

/// Why a review was not evaluated.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    /// No policy set is loaded yet.
    #[error("the policies are still loading")]
    NotReady,
    /// Every evaluation thread stayed busy until the deadline.
    #[error("overloaded: no evaluation slot became free within {} ms ({max} reviews already in evaluation)", .waited.as_millis())]
    Overloaded {
        /// How long the review waited.
        waited: Duration,
        /// The number of evaluation threads.
        max: u32,
    },
    /// The evaluation did not finish before the deadline.
    #[error("policy evaluation did not finish within {} ms", .timeout.as_millis())]
    Deadline {
        /// The deadline.
        timeout: Duration,
    },
    /// The evaluation panicked (a bug; logged).
    #[error("policy evaluation failed unexpectedly")]
    Panicked,
}

/// How long a review may run on the async worker that read it before it is
/// cut short and evaluated again on the evaluation pool ([`State::run_evaluation`]).
pub const INLINE_SLICE: Duration = Duration::from_millis(2);

/// One evaluation attempt handed to the work of [`State::run_evaluation`].
#[derive(Debug, Clone, Copy)]
pub struct Try {
    /// When the attempt must stop its policies: the end of the inline
    /// slice, or the review's own deadline.
    pub deadline: std::time::Instant,
}

/// What one evaluation attempt came to.
#[derive(Debug)]
pub enum Attempt<R> {
    /// The answer.
    Done(R),
    /// The attempt's deadline cut it short: discard it. After an inline
    /// slice the review is evaluated again with its whole deadline; after
    /// the review's own deadline it is answered as past it.
    Cut,
}

/// The webhook's shared state. Cheap to clone.
#[derive(Clone, Debug)]
pub struct State {
    shared: Arc<Shared>,
}

struct Shared {
    evaluator: ArcSwapOption<Evaluator>,
    /// Replaced whole when a watched cluster changes; each review keeps the
    /// view it started with.
    cluster: RwLock<Arc<dyn ClusterView>>,
    pool: Pool,
    config: Config,
    metrics: Metrics,
    draining: AtomicBool,
    /// When two reviews were last in the handlers together, in nanoseconds
    /// since `started` (0: never).
    last_overlap: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl State {
    /// A state with no policy set yet (not ready until [`State::install`]),
    /// and its evaluation threads.
    ///
    /// # Errors
    /// When the evaluation threads cannot be started.
    pub fn new(config: Config, cluster: Arc<dyn ClusterView>) -> std::io::Result<Self> {
        let pool = Pool::new(config.max_concurrent.max(1) as usize)?;
        Ok(State {
            shared: Arc::new(Shared {
                evaluator: ArcSwapOption::empty(),
                cluster: RwLock::new(cluster),
                pool,
                config,
                metrics: Metrics::default(),
                draining: AtomicBool::new(false),
                last_overlap: AtomicU64::new(0),
                started: Instant::now(),
            }),
        })
    }

    /// Make `evaluator` the one new reviews use. Reviews already in
    /// evaluation finish with the evaluator they started with.
    pub fn install(&self, evaluator: Evaluator) {
        self.shared.evaluator.store(Some(Arc::new(evaluator)));
    }

    /// The cluster view new reviews read.
    pub fn cluster(&self) -> Arc<dyn ClusterView> {
        match self.shared.cluster.read() {
            Ok(view) => view.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Make `view` the cluster view new reviews read (a watched cluster's
    /// latest state). Reviews in evaluation finish with the view they started with.
    pub fn set_cluster(&self, view: Arc<dyn ClusterView>) {
        match self.shared.cluster.write() {
            Ok(mut current) => *current = view,
            Err(poisoned) => *poisoned.into_inner() = view,
        }
    }

    /// The active evaluator, if any.
    pub fn evaluator(&self) -> Option<Arc<Evaluator>> {
        self.shared.evaluator.load_full()
    }

    /// Whether a policy set is loaded and the server is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.shared.evaluator.load().is_some() && !self.shared.draining.load(Ordering::Relaxed)
    }

    /// Report not ready from now on (the server is draining).
    pub fn start_draining(&self) {
        self.shared.draining.store(true, Ordering::Relaxed);
    }

    /// The number of policies in the active set.
    pub fn policies_loaded(&self) -> usize {
        self.shared
            .evaluator
            .load()
            .as_ref()
            .map_or(0, |e| e.policies().policies().len())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The time budget of one review: the configured timeout, shortened to
    /// 90% of the API server's `timeout` query parameter when that is lower.
    pub fn timeout(&self, query: Option<&str>) -> Duration {
        let configured = self.shared.config.request_timeout;
        query
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("timeout=")))
            .and_then(parse_go_duration)
            .map(|asked| asked.mul_f64(0.9).min(configured))
            .unwrap_or(configured)
    }

    /// Whether this review is alone in the handlers and none has been beside
    /// another for [`Config::overlap_memory`]; notes an overlap when it is not
    /// alone.
    fn quiet(&self) -> bool {
        let shared = &self.shared;
        // Nanoseconds since start, never 0 (which stands for "never").
        let now = u64::try_from(shared.started.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        if shared.metrics.in_flight_now() > 1 {
            shared.last_overlap.store(now, Ordering::Relaxed);
            return false;
        }
        let last = shared.last_overlap.load(Ordering::Relaxed);
        last == 0 || u128::from(now.saturating_sub(last)) >= shared.config.overlap_memory.as_nanos()
    }

    /// Run `work` with the active evaluator: when `inline` (the caller's
    /// judgement that the request is small) and no other request is in the
    /// handlers, nor has been beside another for [`Config::overlap_memory`],
    /// one try on this worker bounded by [`INLINE_SLICE`]; if that is
    /// [`Attempt::Cut`] or not made, a run on the evaluation pool with the
    /// review's whole deadline, answering no later than `timeout` after the
    /// call.
    ///
    /// `work` should own the request's bytes and do the parsing, evaluation
    /// and response writing itself, so the request's JSON is allocated and
    /// freed on one thread, and it must stop its policies at the
    /// [`Try::deadline`] it is given.
    ///
    /// # Errors
    /// A [`Refusal`] when no set is loaded, no evaluation thread came free in
    /// time, or `work` ran past the deadline (it then finishes in the
    /// background and its result is dropped).
    pub async fn run_evaluation<R, F>(
        &self,
        timeout: Duration,
        inline: bool,
        work: F,
    ) -> Result<R, Refusal>
    where
        F: Fn(&Evaluator, &Arc<dyn ClusterView>, Try) -> Attempt<R> + Send + 'static,
        R: Send + 'static,
    {
        let evaluator = self.shared.evaluator.load_full().ok_or(Refusal::NotReady)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let cluster = self.cluster();
        let ends = deadline.into_std();
        // Only when no other request is in the handlers, nor has been beside
        // another lately: under load, handing reviews to the pool keeps the
        // workers on I/O (measured: inline tries cost throughput at 16
        // connections, and latency and CPU at an offered 5,000/s, where the
        // reviews come in bursts), and the wake-ups they save are rare there
        // anyway. So at most one review is tried inline at a time.
        if inline && self.quiet() {
            let slice = std::time::Instant::now() + INLINE_SLICE;
            let attempt = Try {
                deadline: slice.min(ends),
            };
            let tried = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                work(&evaluator, &cluster, attempt)
            }));
            match tried {
                Ok(Attempt::Done(result)) => {
                    self.shared.metrics.evaluated(Place::Inline);
                    return Ok(result);
                }
                Ok(Attempt::Cut) if slice >= ends => {
                    self.shared.metrics.evaluated(Place::InlineCut);
                    return Err(Refusal::Deadline { timeout });
                }
                Ok(Attempt::Cut) => self.shared.metrics.evaluated(Place::InlineCut),
                Err(_) => {
                    tracing::error!("policy evaluation panicked");
                    return Err(Refusal::Panicked);
                }
            }
        }
        let state = self.clone();
        let queued = std::time::Instant::now();
        let mut ticket = self.shared.pool.submit(move || {
            state.shared.metrics.queued_for(queued.elapsed());
            state.shared.metrics.evaluated(Place::Pool);
            let last = Try { deadline: ends };
            match work(&evaluator, &cluster, last) {
                Attempt::Done(result) => Some(result),
                Attempt::Cut => None,
            }
        });
        match tokio::time::timeout_at(deadline, ticket.answer()).await {
            Ok(Outcome::Done(Some(result))) => Ok(result),
            // The review's deadline cut its policies short.
            Ok(Outcome::Done(None)) => Err(Refusal::Deadline { timeout }),
            Ok(Outcome::Failed) => {
                tracing::error!("policy evaluation panicked");
                Err(Refusal::Panicked)
            }
            Err(_) if ticket.abandon() => Err(Refusal::Overloaded {
                waited: timeout,
                max: u32::try_from(self.shared.pool.threads()).unwrap_or(u32::MAX),
            }),
            Err(_) => Err(Refusal::Deadline { timeout }),
        }
    }
}

#[cfg(test)]
impl State {
    /// Count one more request in the handlers until the guard is dropped, as
    /// a review being read beside the test's own would.
    pub(crate) fn another_request_in_flight(&self) -> super::metrics::InFlight<'_> {
        self.shared.metrics.in_flight()
    }

    /// Keep every evaluation thread busy until the returned sender is
    /// dropped, as a saturated server would keep them.
    pub(crate) fn occupy_all_threads(&self) -> std::sync::mpsc::Sender<()> {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold));
        let (started, has_started) = std::sync::mpsc::channel::<()>();
        for _ in 0..self.shared.pool.threads() {
            let hold = Arc::clone(&hold);
            let started = started.clone();
            drop(self.shared.pool.submit(move || {
                let _ = started.send(());
                // Every thread waits for the release (the lock is held by
                // one of them, the others wait for it).
                let _ = hold.lock().map(|hold| hold.recv());
            }));
        }
        for _ in 0..self.shared.pool.threads() {
            has_started
                .recv_timeout(Duration::from_secs(5))
                .expect("an evaluation thread starts its work");
        }
        release
    }
}

/// Parse a Go duration as the API server writes it (`10s`, `1m30s`, `500ms`).
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * seconds).ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("ten"), None);
        assert_eq!(parse_go_duration("10x"), None);
    }

    #[test]
    fn the_api_servers_timeout_shortens_the_budget() {
        let state = State::new(
            Config::default(),
            Arc::new(crate::cluster::Empty::default()),
        )
        .unwrap();
        assert_eq!(state.timeout(None), Duration::from_secs(9));
        assert_eq!(
            state.timeout(Some("timeout=5s")),
            Duration::from_millis(4500)
        );
        assert_eq!(
            state.timeout(Some("a=b&timeout=30s")),
            Duration::from_secs(9)
        );
        assert_eq!(state.timeout(Some("timeout=bogus")), Duration::from_secs(9));
    }
}
