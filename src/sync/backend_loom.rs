//! loom backend: every task is a loom thread driven by `loom::future::block_on`.
//!
//! loom has no executor and models at most `loom::MAX_THREADS` (5) threads per
//! execution, the model's own thread included. Scenarios are sized for that.

use std::future::Future;
use std::time::Duration;

pub(crate) const NAME: &str = "loom";

pub(crate) use loom::cell::UnsafeCell;
pub(crate) use loom::sync::Mutex as RawMutex;
pub use std::sync::Arc;

/// The backend's raw atomics (wrapped by `sync::atomic`).
pub(crate) mod raw_atomic {
    pub use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
}

/// Identity of the task (here: the loom thread) that is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(loom::thread::ThreadId);

/// The current task: under loom every task is a thread.
pub fn current_task() -> Option<TaskId> {
    Some(TaskId(loom::thread::current().id()))
}

/// Spawn a detached task: a loom thread that drives the future.
pub fn spawn<F>(future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    drop(loom::thread::spawn(move || {
        loom::future::block_on(super::task_body(future))
    }));
}

/// Spawn a thread of the model itself (a scenario's concurrent caller).
pub fn model_thread<F, T>(f: F) -> loom::thread::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    loom::thread::spawn(f)
}

/// Drive a future to completion on the current model thread.
#[track_caller]
pub fn block_on<F: Future>(future: F) -> F::Output {
    loom::future::block_on(future)
}

/// loom has no clock: a sleep completes at once. (A yield here would let
/// loom explore every backoff as a spin loop, for nothing: what matters is
/// that the sleep races the stop signal, and the select does that.)
pub async fn sleep(_duration: Duration) {}

/// Give other threads a chance to run.
pub async fn yield_now() {
    loom::thread::yield_now();
}

/// Deterministic in models.
pub fn jitter(_max: Duration) -> Duration {
    Duration::ZERO
}
