//! A happens-before witness, for the drain-barrier oracle under loom.
//!
//! A barrier's promise ("when `close()` returns, every task has exited")
//! means, in the memory model, that each task's exit *happens before* the
//! return: whatever a task wrote is visible to the caller afterwards. The
//! probe's oracles see tasks leave in the order loom happens to run them,
//! which cannot tell a barrier that synchronises with the exits from one
//! that merely runs after them (a `Relaxed` load where an `Acquire` is
//! needed passes every check that reads plain state).
//!
//! loom can tell: its `UnsafeCell` tracks every access with the accessing
//! thread's vector clock and panics ("Causality violation") on a read that
//! a write does not happen before. A task records its exit on its witness
//! (a write); a barrier, when it returns, checks the witness of every task
//! it covers that has exited (a read). Neither access is a scheduling
//! point, so the witness costs no executions. loom builds only: shuttle is
//! sequentially consistent, and the real build has no checker to ask.

use super::backend::UnsafeCell;

/// One task's exit, as a loom cell that holds nothing.
#[derive(Debug)]
pub struct Witness(UnsafeCell<()>);

// SAFETY: the cell holds `()`: its accesses read and write no memory. They
// only tell loom's execution state (one OS thread, the model's) which
// model thread touched it when, which is the point.
unsafe impl Sync for Witness {}

impl Witness {
    /// A witness of an event that has not happened yet.
    pub fn new() -> Self {
        Self(UnsafeCell::new(()))
    }

    /// The event happens now, on this thread (a write).
    #[track_caller]
    pub fn record(&self) {
        self.0.with_mut(|_| ());
    }

    /// This thread relies on the recorded event having happened before
    /// now (a read): loom fails the execution with "Causality violation"
    /// if it did not.
    #[track_caller]
    pub fn check(&self) {
        self.0.with(|_| ());
    }
}

impl Default for Witness {
    fn default() -> Self {
        Self::new()
    }
}
