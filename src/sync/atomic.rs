//! Atomics of the active backend, traced in model builds.

pub use std::sync::atomic::Ordering;

#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
pub use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub use traced::{AtomicBool, AtomicU64, AtomicUsize};

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
mod traced {
    use super::Ordering;
    use crate::sync::backend::raw_atomic as raw;
    use crate::sync::trace::record;
    use std::panic::Location;

    macro_rules! traced_atomic {
        ($name:ident, $raw:ident, $t:ty, [$($rmw:ident),*]) => {
            /// A backend atomic whose every access is recorded in the trace.
            #[derive(Debug, Default)]
            pub struct $name(raw::$raw);

            impl $name {
                /// A new atomic.
                pub fn new(value: $t) -> Self {
                    Self(raw::$raw::new(value))
                }

                #[track_caller]
                /// Load.
                pub fn load(&self, order: Ordering) -> $t {
                    let v = self.0.load(order);
                    record(|| format!("{}::load -> {v:?}", stringify!($name)), Location::caller());
                    v
                }

                #[track_caller]
                /// Store.
                pub fn store(&self, value: $t, order: Ordering) {
                    record(|| format!("{}::store({value:?})", stringify!($name)), Location::caller());
                    self.0.store(value, order)
                }

                #[track_caller]
                /// Compare and exchange.
                pub fn compare_exchange(&self, current: $t, new: $t, success: Ordering, failure: Ordering) -> Result<$t, $t> {
                    let r = self.0.compare_exchange(current, new, success, failure);
                    record(|| format!("{}::compare_exchange({current:?} -> {new:?}) = {}", stringify!($name), if r.is_ok() { "ok" } else { "failed" }), Location::caller());
                    r
                }

                #[track_caller]
                /// Weak compare and exchange.
                pub fn compare_exchange_weak(&self, current: $t, new: $t, success: Ordering, failure: Ordering) -> Result<$t, $t> {
                    let r = self.0.compare_exchange_weak(current, new, success, failure);
                    record(|| format!("{}::compare_exchange_weak({current:?} -> {new:?}) = {}", stringify!($name), if r.is_ok() { "ok" } else { "failed" }), Location::caller());
                    r
                }

                $(
                #[track_caller]
                /// Read-modify-write.
                pub fn $rmw(&self, value: $t, order: Ordering) -> $t {
                    let v = self.0.$rmw(value, order);
                    record(|| format!("{}::{}({value:?}) -> {v:?}", stringify!($name), stringify!($rmw)), Location::caller());
                    v
                }
                )*
            }
        };
    }

    traced_atomic!(AtomicBool, AtomicBool, bool, [swap]);
    traced_atomic!(AtomicU64, AtomicU64, u64, [swap, fetch_add, fetch_sub]);
    traced_atomic!(
        AtomicUsize,
        AtomicUsize,
        usize,
        [swap, fetch_add, fetch_sub]
    );
}
