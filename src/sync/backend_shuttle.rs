//! shuttle backend: tasks run on shuttle's own deterministic executor.

use std::future::Future;
use std::time::Duration;

pub(crate) const NAME: &str = "shuttle";

pub use shuttle::sync::Arc;
pub(crate) use shuttle::sync::Mutex as RawMutex;

/// The backend's raw atomics (wrapped by `sync::atomic`).
pub(crate) mod raw_atomic {
    pub use shuttle::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
}

/// Identity of the shuttle task that is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(shuttle::current::TaskId);

/// The current shuttle task.
pub fn current_task() -> Option<TaskId> {
    shuttle::current::try_get_current_task().map(TaskId)
}

/// Spawn a detached shuttle future task.
pub fn spawn<F>(future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    drop(shuttle::future::spawn(super::task_body(future)));
}

/// Spawn a thread of the model itself (a scenario's concurrent caller).
pub fn model_thread<F, T>(f: F) -> shuttle::thread::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    shuttle::thread::spawn(f)
}

/// Drive a future to completion on the current model thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    shuttle::future::block_on(future)
}

/// Models have no clock: a sleep is one yield to the scheduler.
pub async fn sleep(_duration: Duration) {
    yield_now().await
}

/// Give other tasks a chance to run.
pub async fn yield_now() {
    shuttle::future::yield_now().await
}

/// Deterministic in models.
pub fn jitter(_max: Duration) -> Duration {
    Duration::ZERO
}
