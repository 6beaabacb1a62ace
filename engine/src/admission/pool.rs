//! The evaluation [`Pool`]: a fixed set of threads that take reviews from one
//! queue, so the number of reviews evaluated at once is the number of
//! threads, and a thread that finishes a review starts the next queued one
//! without a hand-off.
//!
//! It replaces a semaphore in front of tokio's blocking pool. There, a review
//! that finished released its permit, which woke a waiting request on an
//! async worker, which then handed its review to the blocking pool, whose
//! thread had gone to sleep in the meantime: two thread wake-ups per review
//! under load. Measured on 2 CPUs (docs/benchmarks.md) the server spent about
//! a quarter less CPU per review with a queue in front of a fixed set of
//! threads (163-172 against 229-234 µs at 64 connections).
//!
//! Idle threads wait on one condition variable and each queued review wakes
//! one of them, so reviews queued together start together.
//!
//! A review waits in the queue until a thread takes it or its requester gives
//! up ([`Ticket::abandon`]); an abandoned review is not evaluated. A review
//! already running when its requester gives up finishes in the background
//! (its WASM policies are interrupted at the deadline) and its answer is
//! dropped.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Threads evaluating reviews from one queue. Its threads end once the pool
/// is dropped and the queue is empty.
pub(crate) struct Pool {
    queue: Arc<Queue>,
    threads: usize,
}

/// The jobs, and the idle threads waiting for one. Each job wakes one idle
/// thread directly, so reviews queued together start together (a channel
/// behind a mutex would wake the threads one after the other).
struct Queue {
    jobs: Mutex<Jobs>,
    ready: Condvar,
}

struct Jobs {
    waiting: VecDeque<Job>,
    /// Threads waiting on [`Queue::ready`]: a job queued while none is
    /// waiting wakes nobody (every thread is busy and takes it when done), so
    /// it costs no system call.
    idle: usize,
    open: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next job, or `None` once the pool is closed and the queue empty.
    fn next(&self) -> Option<Job> {
        let mut jobs = self.lock();
        loop {
            if let Some(job) = jobs.waiting.pop_front() {
                return Some(job);
            }
            if !jobs.open {
                return None;
            }
            jobs.idle += 1;
            jobs = self
                .ready
                .wait(jobs)
                .unwrap_or_else(PoisonError::into_inner);
            jobs.idle -= 1;
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads)
            .finish()
    }
}

/// What a requester holds for a queued review: the answer to come, and the
/// means to withdraw the review before a thread takes it.
pub(crate) struct Ticket<R> {
    answer: oneshot::Receiver<std::thread::Result<R>>,
    stage: Arc<AtomicU8>,
}

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const ABANDONED: u8 = 2;

impl Pool {
    /// Start `threads` threads (at least one), which log where the caller
    /// logs.
    ///
    /// # Errors
    /// When the operating system refuses to start a thread.
    pub(crate) fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let queue = Arc::new(Queue {
            jobs: Mutex::new(Jobs {
                waiting: VecDeque::new(),
                idle: 0,
                open: true,
            }),
            ready: Condvar::new(),
        });
        let pool = Pool {
            queue: Arc::clone(&queue),
            threads,
        };
        let logs = tracing::dispatcher::get_default(Clone::clone);
        for index in 0..threads {
            let queue = Arc::clone(&queue);
            let logs = logs.clone();
            // On failure the pool is dropped, which lets started threads end.
            std::thread::Builder::new()
                .name(format!("tollgate-eval-{index}"))
                .spawn(move || {
                    let _logs = tracing::dispatcher::set_default(&logs);
                    while let Some(job) = queue.next() {
                        job();
                    }
                })?;
        }
        Ok(pool)
    }

    /// The number of threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Queue `work`; its result, or its panic, comes through the ticket.
    pub(crate) fn submit<R, F>(&self, work: F) -> Ticket<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (send, answer) = oneshot::channel();
        let stage = Arc::new(AtomicU8::new(QUEUED));
        let job_stage = Arc::clone(&stage);
        let job: Job = Box::new(move || {
            if job_stage
                .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return;
            }
            let _ = send.send(std::panic::catch_unwind(AssertUnwindSafe(work)));
        });
        let mut jobs = self.queue.lock();
        jobs.waiting.push_back(job);
        let wake = jobs.idle > 0;
        drop(jobs);
        if wake {
            self.queue.ready.notify_one();
        }
        Ticket { answer, stage }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue.lock().open = false;
        self.queue.ready.notify_all();
    }
}

/// How a ticket's wait ended.
#[derive(Debug)]
pub(crate) enum Outcome<R> {
    /// The work finished.
    Done(R),
    /// The work panicked, or the pool is gone.
    Failed,
}

impl<R> Ticket<R> {
    /// Wait for the answer.
    pub(crate) async fn answer(&mut self) -> Outcome<R> {
        match (&mut self.answer).await {
            Ok(Ok(result)) => Outcome::Done(result),
            Ok(Err(_)) | Err(_) => Outcome::Failed,
        }
    }

    /// Withdraw the review: `true` when no thread had taken it (it will not
    /// run), `false` when it is running or done.
    pub(crate) fn abandon(&self) -> bool {
        self.stage
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::{Outcome, Pool};

    #[tokio::test]
    async fn work_runs_on_the_pool_threads_and_a_panic_is_reported() {
        let pool = Pool::new(2).unwrap();
        let mut name = pool.submit(|| std::thread::current().name().map(str::to_string));
        match name.answer().await {
            Outcome::Done(Some(name)) => assert!(name.starts_with("tollgate-eval-"), "{name}"),
            other => panic!("{other:?}"),
        }
        let mut panics = pool.submit(|| -> u8 { panic!("a policy bug") });
        assert!(matches!(panics.answer().await, Outcome::Failed));
        let mut after = pool.submit(|| 7);
        assert!(matches!(after.answer().await, Outcome::Done(7)));
    }

    #[tokio::test]
    async fn every_thread_evaluates_at_once_and_queued_work_outlives_the_pool() {
        let pool = Pool::new(3).unwrap();
        let (started, has_started) = mpsc::channel::<()>();
        let (release, hold) = mpsc::channel::<()>();
        let hold = std::sync::Arc::new(std::sync::Mutex::new(hold));
        let mut tickets = Vec::new();
        for _ in 0..3 {
            let started = started.clone();
            let hold = std::sync::Arc::clone(&hold);
            tickets.push(pool.submit(move || {
                started.send(()).unwrap();
                let _ = hold.lock().unwrap().recv_timeout(Duration::from_secs(5));
            }));
        }
        for _ in 0..3 {
            has_started
                .recv_timeout(Duration::from_secs(5))
                .expect("three threads run three reviews at once");
        }
        let mut queued = pool.submit(|| "after the pool");
        drop(pool);
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        assert!(matches!(
            queued.answer().await,
            Outcome::Done("after the pool")
        ));
        for mut ticket in tickets {
            assert!(matches!(ticket.answer().await, Outcome::Done(())));
        }
    }

    #[tokio::test]
    async fn a_review_abandoned_in_the_queue_never_runs_and_one_running_finishes() {
        let pool = Pool::new(1).unwrap();
        let (release, hold) = mpsc::channel::<()>();
        let (started, has_started) = mpsc::channel::<()>();
        let mut busy = pool.submit(move || {
            started.send(()).unwrap();
            hold.recv_timeout(Duration::from_secs(5)).is_ok()
        });
        has_started.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(!busy.abandon(), "a running review cannot be withdrawn");
        let (ran, did_run) = mpsc::channel::<()>();
        let queued = pool.submit(move || ran.send(()).unwrap());
        assert!(queued.abandon(), "a queued review can be withdrawn");
        release.send(()).unwrap();
        assert!(matches!(busy.answer().await, Outcome::Done(true)));
        let mut last = pool.submit(|| ());
        assert!(matches!(last.answer().await, Outcome::Done(())));
        assert!(did_run.try_recv().is_err(), "the withdrawn review ran");
    }
}
