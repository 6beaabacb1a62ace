//! The epoch [`Ticker`]: the thread that advances the engine's epoch every
//! millisecond while policies run, which is what interrupts a policy at its
//! deadline (`Store::set_epoch_deadline` counts these ticks).
//!
//! An idle engine does not tick: after [`IDLE_TICKS`] ticks with no call in
//! progress the thread parks, and the next call wakes it ([`Ticker::busy`]).
//! Under load no call waits for that wake-up: the thread only parks after
//! a tenth of a second without calls. Deadlines stay right, because they are
//! set relative to the epoch when a call starts, and the first tick after a
//! wake-up comes within a millisecond, as it does while ticking.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

/// Ticks without a call in progress after which the thread parks.
pub(crate) const IDLE_TICKS: u32 = 100;

/// Advances the engine's epoch every millisecond while calls are in
/// progress, until dropped.
pub(crate) struct Ticker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    /// Calls in progress ([`Busy`] guards alive).
    calls: AtomicUsize,
    /// The thread is parked (or about to park) and must be woken.
    parked: AtomicBool,
}

impl Ticker {
    /// Start the ticking thread for `engine`.
    pub(crate) fn start(engine: Engine) -> Self {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
        });
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tollgate-epoch".into())
            .spawn(move || tick(&engine, &state))
            .ok();
        Ticker { shared, thread }
    }

    /// Mark a call in progress until the guard is dropped, waking the thread
    /// if it parked. Take it before the store's epoch deadline is set.
    pub(crate) fn busy(&self) -> Busy<'_> {
        self.shared.calls.fetch_add(1, Ordering::SeqCst);
        if self.shared.parked.swap(false, Ordering::SeqCst)
            && let Some(thread) = &self.thread
        {
            thread.thread().unpark();
        }
        Busy(&self.shared)
    }

    /// Whether the thread is parked (idle), for tests.
    #[cfg(test)]
    pub(crate) fn is_parked(&self) -> bool {
        self.shared.parked.load(Ordering::SeqCst)
    }
}

fn tick(engine: &Engine, shared: &Shared) {
    let mut idle = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
        engine.increment_epoch();
        if shared.calls.load(Ordering::SeqCst) > 0 {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle < IDLE_TICKS {
            continue;
        }
        // Announce the park, then look again: a call that started before
        // the announcement is seen here; one that starts after it sees
        // `parked` and unparks (an unpark before `park` is not lost).
        shared.parked.store(true, Ordering::SeqCst);
        if shared.calls.load(Ordering::SeqCst) == 0 && !shared.stop.load(Ordering::SeqCst) {
            std::thread::park();
        }
        shared.parked.store(false, Ordering::SeqCst);
        idle = 0;
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// A call in progress ([`Ticker::busy`]).
pub(crate) struct Busy<'a>(&'a Shared);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked_within(ticker: &Ticker, limit: Duration) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if ticker.is_parked() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn an_idle_ticker_parks_and_a_call_wakes_it() {
        let engine = Engine::default();
        let ticker = Ticker::start(engine.clone());
        assert!(
            parked_within(&ticker, Duration::from_secs(5)),
            "the ticker kept ticking with no call in progress"
        );
        let busy = ticker.busy();
        assert!(!ticker.is_parked(), "a call did not wake the ticker");
        // It ticks, and keeps ticking, while the call lasts.
        std::thread::sleep(Duration::from_millis(IDLE_TICKS as u64 * 2));
        assert!(!ticker.is_parked(), "parked during a call");
        drop(busy);
        assert!(parked_within(&ticker, Duration::from_secs(5)));
    }
}
