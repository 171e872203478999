//! Go's `sync.WaitGroup`, with an async `wait`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::Mutex;
use super::atomic::{AtomicU64, Ordering};
use super::waiters::{Waiters, wake_all};

/// Counts outstanding tasks; [`wait`](WaitGroup::wait) resolves when the
/// count is zero.
///
/// The semantics are Go's `sync.WaitGroup`, so a port of Go code keeps its
/// meaning: call [`add`](WaitGroup::add) *before* the task it counts can be
/// observed by a waiter, [`done`](WaitGroup::done) when the task ends, and
/// `wait().await` to block until the counter is zero.
///
/// Compared with its neighbours:
/// - `crossbeam_utils::sync::WaitGroup` counts clones of a handle and blocks
///   a thread; this counts explicit `add`/`done` and waits asynchronously.
/// - `tokio_util::task::TaskTracker` adds a `close` state so `wait` cannot
///   return before you say no more tasks will come; a `WaitGroup` has no such
///   state: the *caller* must order every `add` before the `wait` that is
///   meant to cover it. Getting that order wrong is the bug this crate exists
///   to catch (H5 in the catalog).
///
/// # Misuse is detected, like Go's runtime, in every build
/// Each of these panics, with the message quoted:
/// - the counter goes below zero: `"WaitGroup: negative counter"`;
/// - a positive `add` takes the counter from zero while a waiter is
///   registered: `"WaitGroup misuse: add called concurrently with wait"`;
/// - a waiter is released, but by the time it observes that, the counter was
///   raised again: `"WaitGroup is reused before previous wait has returned"`.
///
/// # What the panics cannot see
/// They fire only when a waiter is *registered*, and `wait` registers only if
/// it finds the counter above zero. The harmful schedule of the seed bug is
/// the other one: the waiter finds the counter at **zero**, returns at once,
/// and the `add` comes after. Nothing about that is detectable inside the
/// wait group. wsdrain's client-level oracles (the drain barrier: no task of
/// the client alive or starting after `close()` returned) catch it instead.
///
/// # Example
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use wsdrain::sync::{Arc, WaitGroup};
///
/// let wg = Arc::new(WaitGroup::new());
/// for _ in 0..3 {
///     wg.add(1); // before the task exists, so `wait` below covers it
///     let wg = wg.clone();
///     tokio::spawn(async move {
///         // ... work ...
///         wg.done();
///     });
/// }
/// wg.wait().await;
/// assert_eq!(wg.count(), 0);
/// # }
/// ```
#[derive(Debug, Default)]
pub struct WaitGroup {
    /// High 32 bits: the counter (as `i32`); low 32 bits: registered waiters.
    /// One word, as in Go, so `add` sees both in a single atomic step.
    state: AtomicU64,
    waiters: Mutex<Released>,
    /// What the trace calls it (`tasks`, `stream#1.wg`).
    #[cfg_attr(not(any(wsdrain_loom, wsdrain_shuttle)), allow(dead_code))]
    name: super::trace::Name,
}

#[derive(Debug, Default)]
struct Released {
    /// Bumped each time the counter reaches zero with waiters registered:
    /// a waiter registered under generation `g` is released when it moves.
    generation: u64,
    wakers: Waiters,
}

const ONE_WAITER: u64 = 1;

fn counter(state: u64) -> i32 {
    (state >> 32) as i32
}

fn waiters(state: u64) -> u32 {
    state as u32
}

impl WaitGroup {
    /// A wait group at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A wait group at zero that the model trace calls `name` (e.g.
    /// `stream#1.wg`), so two groups' steps never read the same.
    pub fn named(name: super::trace::Name) -> Self {
        Self {
            name,
            ..Self::default()
        }
    }

    /// Add `delta` (which may be negative) to the counter.
    ///
    /// # Panics
    /// See the type-level docs: negative counter, or `add` from zero while a
    /// waiter is registered.
    #[cfg_attr(any(wsdrain_loom, wsdrain_shuttle), track_caller)]
    pub fn add(&self, delta: i32) {
        self.add_at(delta, super::trace::caller());
    }

    /// `add`, with the caller's location for the trace (the atomic steps
    /// inside are then attributed to this file and hidden in the trimmed
    /// counterexample, which shows the `add` itself).
    fn add_at(&self, delta: i32, location: super::trace::Loc) {
        let _ = location;
        let step = (i64::from(delta) << 32) as u64;
        // AcqRel: Release so a waiter that sees the counter reach zero also
        // sees everything the finishing task did before `done`; Acquire so the
        // task that brings it to zero sees the waiter registrations.
        let state = self
            .state
            .fetch_add(step, Ordering::AcqRel)
            .wrapping_add(step);
        let (v, w) = (counter(state), waiters(state));
        #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
        super::trace::record(
            || {
                let name = self.name.or("WaitGroup");
                if delta == -1 {
                    format!("{name}.done() -> counter {v}, waiters {w}")
                } else {
                    format!("{name}.add({delta}) -> counter {v}, waiters {w}")
                }
            },
            location,
        );
        if v < 0 {
            panic!("WaitGroup: negative counter");
        }
        if w != 0 && delta > 0 && v == delta {
            panic!("WaitGroup misuse: add called concurrently with wait");
        }
        if v > 0 || w == 0 {
            return;
        }
        // The counter is zero and waiters are registered: release them. No
        // `add` may legally race with this (it would be an add from zero with
        // waiters registered), and `wait` does not register at zero.
        let wakers = {
            let mut released = self.waiters.lock();
            // Under the lock, waiters only leave (cancelled waits), so only
            // the counter part must still be zero. One swap, not a load and
            // a store: each atomic step is a scheduling point of the model
            // checkers (the misuse panics either way).
            if counter(self.state.swap(0, Ordering::AcqRel)) != 0 {
                panic!("WaitGroup misuse: add called concurrently with wait");
            }
            released.generation += 1;
            released.wakers.take_all()
        };
        wake_all(wakers);
    }

    /// Decrement the counter by one: the counted task is finished.
    #[inline]
    #[cfg_attr(any(wsdrain_loom, wsdrain_shuttle), track_caller)]
    pub fn done(&self) {
        self.add_at(-1, super::trace::caller());
    }

    /// The current counter (for diagnostics; racy by nature).
    pub fn count(&self) -> i32 {
        counter(self.state.load(Ordering::Acquire))
    }

    /// Waiters registered now (for the facade's tests: a dropped wait must
    /// take itself out; racy by nature). Model builds only.
    #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
    #[doc(hidden)]
    pub fn waiting(&self) -> u32 {
        waiters(self.state.load(Ordering::Acquire))
    }

    /// Resolves when the counter is zero: at once if it is zero now.
    #[cfg_attr(any(wsdrain_loom, wsdrain_shuttle), track_caller)]
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            location: std::panic::Location::caller(),
            group: self,
            registration: None,
            finished: false,
        }
    }
}

/// Future returned by [`WaitGroup::wait`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Wait<'a> {
    group: &'a WaitGroup,
    /// Where `wait` was called (for the model trace).
    #[cfg_attr(not(any(wsdrain_loom, wsdrain_shuttle)), allow(dead_code))]
    location: &'static std::panic::Location<'static>,
    /// (generation, waker key) once registered as a waiter.
    registration: Option<(u64, u64)>,
    finished: bool,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        assert!(!this.finished, "Wait polled after completion");
        let group = this.group;
        match this.registration {
            None => {
                // Fast path: at zero there is nothing to wait for. Acquire
                // pairs with the Release of the `add` that brought it there.
                let mut state = group.state.load(Ordering::Acquire);
                if counter(state) == 0 {
                    this.finished = true;
                    this.trace("wait() -> counter 0, returns at once");
                    return Poll::Ready(());
                }
                let mut released = group.waiters.lock();
                // Register under the lock, so a releaser (who takes the lock
                // before resetting the state) either sees our waiter count
                // and our waker, or we see its zero. The exchange starts from
                // the value read above (no second load): if the state moved
                // since, it fails and hands back the current value.
                loop {
                    if counter(state) == 0 {
                        this.finished = true;
                        this.trace("wait() -> counter 0, returns at once");
                        return Poll::Ready(());
                    }
                    match group.state.compare_exchange_weak(
                        state,
                        state + ONE_WAITER,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => break,
                        Err(actual) => state = actual,
                    }
                }
                let key = released.wakers.park(None, cx.waker());
                this.registration = Some((released.generation, key));
                drop(released);
                this.trace(format!("wait() -> parked at counter {}", counter(state)));
                Poll::Pending
            }
            Some((generation, key)) => {
                let mut released = group.waiters.lock();
                if released.generation == generation {
                    released.wakers.park(Some(key), cx.waker());
                    return Poll::Pending;
                }
                drop(released);
                this.registration = None;
                this.finished = true;
                // Released: the counter went to zero. If it is not zero now,
                // someone added before this waiter returned (Go's rule).
                if group.state.load(Ordering::Acquire) != 0 {
                    panic!("WaitGroup is reused before previous wait has returned");
                }
                this.trace("wait() -> released");
                Poll::Ready(())
            }
        }
    }
}

impl Wait<'_> {
    #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
    fn trace<S: Into<String>>(&self, op: S) {
        let name = self.group.name.or("WaitGroup");
        super::trace::record(|| format!("{name}.{}", op.into()), self.location);
    }

    #[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
    #[inline(always)]
    fn trace<S>(&self, _op: S) {}
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        // A registered waiter that gives up takes itself out, unless it was
        // already released (then the releaser has reset the state).
        if let Some((generation, key)) = self.registration {
            let mut released = self.group.waiters.lock();
            if released.generation == generation {
                released.wakers.remove(key);
                self.group.state.fetch_sub(ONE_WAITER, Ordering::AcqRel);
            }
        }
    }
}
