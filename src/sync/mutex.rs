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
pub struct Mutex<T> {
    raw: RawMutex<T>,
    /// What the model trace calls it (`client.state`); nothing in the real build.
    #[cfg_attr(not(any(wsdrain_loom, wsdrain_shuttle)), allow(dead_code))]
    name: super::trace::Name,
}

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
    name: &'a super::trace::Name,
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
        super::trace::record(
            || format!("{}.unlock()", self.name.or("Mutex")),
            self.location,
        );
    }
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex.
    #[inline]
    pub fn new(value: T) -> Self {
        Self::named(value, super::trace::Name::NONE)
    }

    /// A new, unlocked mutex that the model trace calls `name`, so a
    /// counterexample tells its critical sections from other locks'.
    #[inline]
    pub fn named(value: T, name: super::trace::Name) -> Self {
        Self {
            raw: RawMutex::new(value),
            name,
        }
    }

    /// Lock, blocking the current thread; never fails.
    #[inline]
    #[cfg_attr(any(wsdrain_loom, wsdrain_shuttle), track_caller)]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        let guard = self
            .raw
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
        {
            let location = std::panic::Location::caller();
            super::trace::record(
                || format!("{}.lock() (acquired)", self.name.or("Mutex")),
                location,
            );
            MutexGuard {
                guard,
                location,
                name: &self.name,
            }
        }
        #[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
        guard
    }
}
