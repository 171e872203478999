//! A one-shot, awaitable "closed" latch.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::atomic::{AtomicBool, Ordering};
use super::waiters::{Waiters, wake_all};
use super::{Arc, Mutex};

/// A latch that goes from open to closed once and never back; any number of
/// tasks can await [`closed`](CloseSignal::closed).
///
/// Like Go's `close(ch)` on a `chan struct{}` used as a done channel, or
/// tokio-util's `CancellationToken` without the tree. Clones share the latch.
#[derive(Debug, Clone)]
pub struct CloseSignal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Lock-free copy of `State::closed`, so `is_closed` and a poll after
    /// close take no lock.
    closed: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The truth; the atomic mirrors it.
    closed: bool,
    waiters: Waiters,
}

impl Default for CloseSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl CloseSignal {
    /// A new, open signal.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                closed: AtomicBool::new(false),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Close the signal and wake every waiter. Returns `true` for the call
    /// that closed it, `false` if it was already closed (idempotent).
    #[cfg_attr(any(wsdrain_loom, wsdrain_shuttle), track_caller)]
    pub fn close(&self) -> bool {
        crate::trace_point!("CloseSignal::close");
        self.close_inner()
    }

    fn close_inner(&self) -> bool {
        let wakers = {
            let mut state = self.inner.state.lock();
            // Decided under the lock: a waiter that checked `closed` under
            // the same lock and parked is guaranteed to be in `waiters` now.
            if std::mem::replace(&mut state.closed, true) {
                return false;
            }
            // Release pairs with the Acquire in `is_closed`: a task that
            // sees `true` also sees what the closer wrote before closing.
            self.inner.closed.store(true, Ordering::Release);
            state.waiters.take_all()
        };
        wake_all(wakers);
        true
    }

    /// Whether the signal has been closed.
    #[inline]
    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release in `close`.
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Wakers parked now (for the facade's tests: a dropped wait must take
    /// its waker out). Model builds only.
    #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
    #[doc(hidden)]
    pub fn parked(&self) -> usize {
        self.inner.state.lock().waiters.len()
    }

    /// Resolves once the signal is closed (at once if it already is).
    pub fn closed(&self) -> Closed<'_> {
        Closed {
            signal: self,
            key: None,
            parked: None,
        }
    }
}

/// Future returned by [`CloseSignal::closed`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Closed<'a> {
    signal: &'a CloseSignal,
    key: Option<u64>,
    /// The waker parked under `key`, to re-poll without the lock.
    parked: Option<Waker>,
}

impl Future for Closed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Parked already, with a waker that wakes the same task, and still
        // open: the waker is still parked (only `close` takes it, and it
        // sets the flag first, which we just saw unset), so there is
        // nothing to update. This keeps a select over a busy read and this
        // signal lock-free. Only a re-poll pays the load: the first poll goes
        // straight to the lock (each atomic access is a scheduling point of
        // the model checkers).
        if this.key.is_some()
            && let Some(parked) = &this.parked
            && parked.will_wake(cx.waker())
            && !this.signal.is_closed()
        {
            return Poll::Pending;
        }
        // Decided under the lock (`close` decides under it): either we see
        // it closed, or our waker is parked before `close` takes them.
        let mut state = this.signal.inner.state.lock();
        if state.closed {
            // `close` took every parked waker in the same critical section
            // that set the flag, so ours is gone too: nothing to remove.
            this.key = None;
            return Poll::Ready(());
        }
        this.key = Some(state.waiters.park(this.key, cx.waker()));
        drop(state);
        match &mut this.parked {
            Some(parked) => parked.clone_from(cx.waker()),
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.signal.inner.state.lock().waiters.remove(key);
        }
    }
}
