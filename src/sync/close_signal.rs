//! A one-shot, awaitable "closed" latch.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

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
    /// Fast-path copy of "closed", so a poll after close takes no lock.
    closed: AtomicBool,
    waiters: Mutex<Waiters>,
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
                waiters: Mutex::new(Waiters::default()),
            }),
        }
    }

    /// Close the signal and wake every waiter. Returns `true` for the call
    /// that closed it, `false` if it was already closed (idempotent).
    pub fn close(&self) -> bool {
        let wakers = {
            let mut waiters = self.inner.waiters.lock();
            // Set under the lock: a waiter that checked the flag under the
            // same lock and parked is guaranteed to be in `waiters` now.
            // Release pairs with the Acquire fast path in `is_closed`, so a
            // task that sees `true` also sees what the closer wrote before.
            if self.inner.closed.swap(true, Ordering::AcqRel) {
                return false;
            }
            waiters.take_all()
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

    /// Resolves once the signal is closed (at once if it already is).
    pub fn closed(&self) -> Closed<'_> {
        Closed {
            signal: self,
            key: None,
        }
    }
}

/// Future returned by [`CloseSignal::closed`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Closed<'a> {
    signal: &'a CloseSignal,
    key: Option<u64>,
}

impl Future for Closed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.signal.is_closed() {
            // `close` took every parked waker in the same critical section
            // that set the flag, so ours is gone too: nothing to remove.
            this.key = None;
            return Poll::Ready(());
        }
        let mut waiters = this.signal.inner.waiters.lock();
        // Re-check under the lock (`close` sets the flag under it): either we
        // see it closed, or our waker is parked before `close` takes them.
        // Relaxed is enough here: the lock orders us against `close`.
        if this.signal.inner.closed.load(Ordering::Relaxed) {
            this.key = None;
            return Poll::Ready(());
        }
        this.key = Some(waiters.park(this.key, cx.waker()));
        Poll::Pending
    }
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.signal.inner.waiters.lock().remove(key);
        }
    }
}
