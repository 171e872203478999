//! A mutex whose `lock()` never reports poisoning.

use super::backend::RawMutex;

/// A mutual-exclusion lock over the backend's mutex.
///
/// Unlike `std::sync::Mutex`, [`lock`](Mutex::lock) returns the guard
/// directly: a panic while the lock was held does not poison it for every
/// later caller (the state it protects is kept consistent by construction:
/// no client code panics while holding it). This mirrors tokio's `src/loom/`
/// facade.
#[derive(Debug, Default)]
pub struct Mutex<T>(RawMutex<T>);

/// The guard returned by [`Mutex::lock`].
#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
pub type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
#[cfg(wsdrain_loom)]
type RawGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
type RawGuard<'a, T> = shuttle::sync::MutexGuard<'a, T>;

/// The guard returned by [`Mutex::lock`]. In model builds it records the
/// release in the trace, so a counterexample shows where each critical
/// section ends (the happens-before edge to the next holder starts there).
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
#[derive(Debug)]
pub struct MutexGuard<'a, T> {
    guard: RawGuard<'a, T>,
    /// Where the lock was taken (a drop has no caller location).
    location: &'static std::panic::Location<'static>,
}

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
impl<T> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // Recorded while still held (the raw guard is dropped after this),
        // so no other task's acquisition can be listed before it.
        super::trace::record(|| "Mutex::unlock", self.location);
    }
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex.
    #[inline]
    pub fn new(value: T) -> Self {
        Self(RawMutex::new(value))
    }

    /// Lock, blocking the current thread; never fails.
    #[inline]
    #[cfg_attr(any(wsdrain_loom, wsdrain_shuttle), track_caller)]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        let guard = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
        {
            let location = std::panic::Location::caller();
            super::trace::record(|| "Mutex::lock (acquired)", location);
            MutexGuard { guard, location }
        }
        #[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
        guard
    }
}
