//! The epoch [`Ticker`]: the thread that advances the engine's epoch when a
//! policy call in progress reaches its deadline, which is what interrupts a
//! policy that runs too long.
//!
//! Every store's epoch deadline is the next tick, and its deadline callback
//! ([`super::WasmPolicy`]'s stores) compares the clock with the store's own
//! deadline: a call past it is interrupted, any other call continues to the
//! next tick. So the thread need not tick on a fixed beat. Each call
//! registers its deadline for as long as it runs ([`Ticker::busy`]), and the
//! thread sleeps until the earliest registered deadline, ticks once it has
//! passed, and then every millisecond while a call past its deadline has not
//! yet stopped.
//!
//! A call normally ends long before its deadline (a warm evaluation of a
//! pack policy takes a few microseconds in the criterion benchmarks, against
//! a default limit of 100 ms), so under load the thread hardly ever wakes; a thread
//! ticking every millisecond woke the process about 1,000 times a second
//! for nothing (0.17 context switches per review at 5,000 reviews/s,
//! docs/benchmarks.md). A deadline stops a policy within the thread's
//! wake-up latency (its sleep ends at the deadline), instead of at the next
//! millisecond tick.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::Engine;

/// How often the epoch advances while a call is past its deadline: a call
/// in host code (a cluster lookup, say) sees the tick only once it returns
/// to WASM.
const OVERDUE_TICK: Duration = Duration::from_millis(1);

/// Advances the engine's epoch at the deadlines of the calls in progress,
/// until dropped.
pub(crate) struct Ticker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    calls: Mutex<Calls>,
    /// Epoch ticks so far (for tests and the thread's own accounting).
    ticks: AtomicU64,
}

/// The deadlines of the calls in progress, in slots that ended calls free.
#[derive(Default)]
struct Calls {
    deadlines: Vec<Option<Instant>>,
    free: Vec<usize>,
    /// When the thread will next look at the deadlines: `None` while it
    /// sleeps with no call in progress. A call due earlier wakes it.
    wakes_at: Option<Instant>,
    stop: bool,
}

impl Calls {
    fn earliest(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ticker {
    /// Start the ticking thread for `engine`.
    pub(crate) fn start(engine: Engine) -> Self {
        let shared = Arc::new(Shared {
            calls: Mutex::new(Calls::default()),
            ticks: AtomicU64::new(0),
        });
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tollgate-epoch".into())
            .spawn(move || tick(&engine, &state))
            .ok();
        Ticker { shared, thread }
    }

    /// Register a call in progress that must stop by `deadline`, until the
    /// guard is dropped, waking the thread if it would look later than that.
    /// Take it before the call starts; the store's own deadline must not be
    /// later than `deadline`.
    pub(crate) fn busy(&self, deadline: Instant) -> Busy<'_> {
        let mut calls = self.shared.lock();
        let slot = match calls.free.pop() {
            Some(slot) => {
                calls.deadlines[slot] = Some(deadline);
                slot
            }
            None => {
                calls.deadlines.push(Some(deadline));
                calls.deadlines.len() - 1
            }
        };
        if calls.wakes_at.is_none_or(|at| deadline < at) {
            calls.wakes_at = Some(deadline);
            drop(calls);
            if let Some(thread) = &self.thread {
                thread.thread().unpark();
            }
        }
        Busy {
            shared: &self.shared,
            slot,
        }
    }

    /// Epoch ticks so far.
    #[cfg(test)]
    pub(crate) fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::SeqCst)
    }
}

fn tick(engine: &Engine, shared: &Shared) {
    loop {
        let earliest = {
            let mut calls = shared.lock();
            if calls.stop {
                return;
            }
            let earliest = calls.earliest();
            calls.wakes_at = earliest;
            earliest
        };
        // A call registered after the lock was released unparks this thread
        // if it is due sooner; an unpark before `park` is not lost.
        match earliest {
            None => std::thread::park(),
            Some(at) => {
                let now = Instant::now();
                if at > now {
                    std::thread::park_timeout(at - now);
                } else {
                    engine.increment_epoch();
                    shared.ticks.fetch_add(1, Ordering::SeqCst);
                    std::thread::park_timeout(OVERDUE_TICK);
                }
            }
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// A call in progress ([`Ticker::busy`]).
pub(crate) struct Busy<'a> {
    shared: &'a Shared,
    slot: usize,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut calls = self.shared.lock();
        calls.deadlines[self.slot] = None;
        calls.free.push(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wait up to `limit` for `done`.
    fn within(limit: Duration, done: impl Fn() -> bool) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        done()
    }

    #[test]
    fn calls_within_their_deadlines_are_not_ticked_for() {
        let ticker = Ticker::start(Engine::default());
        for _ in 0..50 {
            let _call = ticker.busy(Instant::now() + Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(ticker.ticks(), 0, "ticked with no call past its deadline");
    }

    #[test]
    fn a_call_past_its_deadline_is_ticked_for_until_it_ends() {
        let ticker = Ticker::start(Engine::default());
        // A later call registered first must not hide the earlier one.
        let _later = ticker.busy(Instant::now() + Duration::from_secs(60));
        let overdue = ticker.busy(Instant::now() + Duration::from_millis(5));
        assert!(
            within(Duration::from_secs(5), || ticker.ticks() >= 3),
            "no tick for a call past its deadline"
        );
        drop(overdue);
        std::thread::sleep(Duration::from_millis(20));
        let after = ticker.ticks();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ticker.ticks(), after, "kept ticking after the call ended");
    }

    #[test]
    fn a_sooner_deadline_wakes_a_thread_sleeping_toward_a_later_one() {
        let ticker = Ticker::start(Engine::default());
        let _later = ticker.busy(Instant::now() + Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
        let _soon = ticker.busy(Instant::now() + Duration::from_millis(2));
        assert!(
            within(Duration::from_secs(5), || ticker.ticks() >= 1),
            "the sooner deadline was missed"
        );
    }
}
