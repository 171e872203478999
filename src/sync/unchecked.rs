//! The facade's named exceptions: state the client keeps on plain `std`
//! primitives, outside the checkers' view, on purpose.
//!
//! Everything else the client shares between tasks goes through the
//! backend's primitives, so loom and shuttle explore every order of it. The
//! types here hold values no decision of the client depends on (labels,
//! statistics, reports read after a modelled barrier): making them
//! scheduling points would multiply the executions to explore without any
//! new behaviour to find. Each says why where it is defined; client code
//! names them, never `std::sync` (a test below keeps it so).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Hands out 1, 2, 3, ...: labels for logs and the probe.
///
/// Unchecked because an id is a name, not a synchronisation: uniqueness
/// holds in every order, and no code compares ids to decide anything
/// (streams are told apart by `Arc::ptr_eq`).
#[derive(Debug, Default)]
pub struct IdCounter(AtomicU64);

impl IdCounter {
    /// A counter whose first id is 1.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// The next id.
    #[inline]
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A statistic for the user (like tokio's `MetricAtomicU64`).
///
/// Unchecked because nothing in the client reads it: it is reported, never
/// acted on, so its order against other operations is not behaviour.
#[derive(Debug, Default)]
pub struct StatCounter(AtomicU64);

impl StatCounter {
    /// Zero.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Add one.
    #[inline]
    pub fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value set at most once (the first set wins) and read afterwards.
///
/// Unchecked because of how the client uses it: either the value is read
/// only after a modelled barrier that orders the set before the read (a
/// wait group's `wait`), so the checkers already explore the edge that
/// matters; or only the task that set it compares against it (the reader's
/// own task id), so no other order can change an outcome. A use that fits
/// neither belongs on the backend's primitives instead.
#[derive(Debug)]
pub struct SetOnce<T>(OnceLock<T>);

impl<T> Default for SetOnce<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> SetOnce<T> {
    /// Unset.
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// Set it, unless it is set already; whether this call set it.
    #[inline]
    pub fn set(&self, value: T) -> bool {
        self.0.set(value).is_ok()
    }

    /// The value, if set.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        self.0.get()
    }
}

/// `std`'s `Arc` in every build, for immutable values handed to the user
/// (the error in `StreamEnd::Failed`).
///
/// Unchecked because a reference count the client never branches on has
/// nothing to explore, and a public type must not change with the backend.
pub type PlainArc<T> = std::sync::Arc<T>;

/// The task that last ran a managed stream's handler, so that
/// `StreamManager::wait()` can tell it is called from one (it would wait
/// for itself). Written and read by that task itself before it can call
/// `wait()`: never a point the checkers need to explore.
#[derive(Debug, Default)]
pub struct TaskSlot(std::sync::Mutex<Option<super::TaskId>>);

impl TaskSlot {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record `task`.
    pub fn set(&self, task: Option<super::TaskId>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = task;
    }

    /// Whether `task` is the one recorded.
    pub fn holds(&self, task: Option<super::TaskId>) -> bool {
        task.is_some() && *self.0.lock().unwrap_or_else(|p| p.into_inner()) == task
    }
}

#[cfg(all(test, not(any(wsdrain_loom, wsdrain_shuttle))))]
mod tests {
    use super::*;

    #[test]
    fn ids_start_at_one() {
        let ids = IdCounter::new();
        assert_eq!((ids.next(), ids.next()), (1, 2));
    }

    #[test]
    fn first_set_wins() {
        let once = SetOnce::new();
        assert!(once.get().is_none());
        assert!(once.set(1));
        assert!(!once.set(2));
        assert_eq!(once.get(), Some(&1));
    }

    #[test]
    fn stat_counts() {
        let stat = StatCounter::new();
        stat.increment();
        stat.increment();
        assert_eq!(stat.get(), 2);
    }

    /// The facade's rule: client code synchronises through `crate::sync`
    /// only; its deliberate exceptions are the types above, by name.
    #[test]
    fn client_code_names_no_std_sync() {
        for (file, source) in [
            ("src/client.rs", include_str!("../client.rs")),
            ("src/stream.rs", include_str!("../stream.rs")),
            ("src/manager.rs", include_str!("../manager.rs")),
        ] {
            for (n, line) in source.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                assert!(
                    !code.contains("std::sync") && !code.contains("OnceLock"),
                    "{file}:{}: use crate::sync (or sync::unchecked), not std::sync: {line}",
                    n + 1
                );
            }
        }
    }
}
