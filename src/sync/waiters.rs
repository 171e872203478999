//! A list of parked wakers, kept under the owner's lock.

use std::task::Waker;

/// Wakers of futures that wait for something, each under a key so a future
/// that is dropped before it is woken can take its waker out again (no
/// growth from cancelled waits).
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    next_key: u64,
    entries: Vec<(u64, Waker)>,
}

impl Waiters {
    /// Park `waker` under `key`, or under a new key when `key` is `None`;
    /// returns the key. A waker that would wake the same task is not cloned
    /// again.
    pub(crate) fn park(&mut self, key: Option<u64>, waker: &Waker) -> u64 {
        if let Some(key) = key
            && let Some((_, parked)) = self.entries.iter_mut().find(|(k, _)| *k == key)
        {
            if !parked.will_wake(waker) {
                parked.clone_from(waker);
            }
            return key;
        }
        let key = key.unwrap_or_else(|| {
            self.next_key += 1;
            self.next_key
        });
        self.entries.push((key, waker.clone()));
        key
    }

    /// How many wakers are parked (for `CloseSignal::parked`).
    #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forget the waker parked under `key`, if it is still there.
    pub(crate) fn remove(&mut self, key: u64) {
        if let Some(i) = self.entries.iter().position(|(k, _)| *k == key) {
            self.entries.swap_remove(i);
        }
    }

    /// Take the oldest parked waker, to wake one waiter.
    pub(crate) fn take_one(&mut self) -> Option<Waker> {
        (!self.entries.is_empty()).then(|| self.entries.remove(0).1)
    }

    /// Take every parked waker, to wake them all once the lock is released.
    pub(crate) fn take_all(&mut self) -> Vec<Waker> {
        self.entries.drain(..).map(|(_, w)| w).collect()
    }
}

/// Wake every waker, outside any lock.
pub(crate) fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}
