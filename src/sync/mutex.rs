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
/// The guard returned by [`Mutex::lock`].
#[cfg(wsdrain_loom)]
pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
/// The guard returned by [`Mutex::lock`].
#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
pub type MutexGuard<'a, T> = shuttle::sync::MutexGuard<'a, T>;

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
        super::trace::record(|| "Mutex::lock (acquired)", std::panic::Location::caller());
        guard
    }
}
