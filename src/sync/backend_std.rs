//! Real backend: `std::sync` leaves and the tokio runtime.

use std::future::Future;
use std::time::Duration;

pub(crate) const NAME: &str = "std";

pub use std::sync::Arc;
pub(crate) use std::sync::Mutex as RawMutex;

/// Identity of the task (or model thread) that is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(tokio::task::Id);

/// The current task, or `None` outside a task (e.g. in `block_on`).
#[inline]
pub fn current_task() -> Option<TaskId> {
    tokio::task::try_id().map(TaskId)
}

/// Spawn a detached task on the current tokio runtime.
///
/// # Panics
/// Outside a tokio runtime, like `tokio::spawn`.
#[inline]
pub fn spawn<F>(future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    drop(tokio::spawn(future));
}

/// Sleep for `duration` (models: a yield, as they have no clock).
#[inline]
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await
}

/// Give other tasks a chance to run.
#[inline]
pub async fn yield_now() {
    tokio::task::yield_now().await
}

/// A random duration in `[0, max]` (models: always zero, to stay deterministic).
pub fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}
