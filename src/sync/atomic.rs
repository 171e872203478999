//! Atomics of the active backend, traced in model builds.

pub use std::sync::atomic::Ordering;

#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
pub use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub use traced::{AtomicBool, AtomicU64, AtomicUsize, force_seq_cst, seq_cst_forced};

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
mod traced {
    use super::Ordering;
    use crate::sync::backend::raw_atomic as raw;
    use crate::sync::trace::record;
    use std::panic::Location;

    /// Whether every traced atomic access runs sequentially consistent
    /// (see [`force_seq_cst`]). A plain std atomic: the harness sets it
    /// between explorations, the checkers never see it.
    static SEQ_CST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// Make every access of the traced atomics sequentially consistent (model
    /// builds only; the real build has no such switch), for the harness's
    /// search for a sequentially consistent counterexample.
    ///
    /// Forced, every ordering becomes `SeqCst`, every load is a
    /// read-modify-write that writes back the value it read (`fetch_or` of
    /// the identity) and every store a `swap`. `SeqCst` alone is not enough
    /// under loom: it models `SeqCst` accesses as `AcqRel` (its README,
    /// "Unsupported features"), so a load may still return an older store,
    /// the initial value in particular. A read-modify-write always reads the
    /// latest store in modification order, and with every access one, that
    /// order is loom's execution order: each read returns the latest write
    /// before it, i.e. the execution is sequentially consistent.
    ///
    /// Why it is sound: the operations and the values the program sees are
    /// those of an interleaving of the unchanged program in which every read
    /// returns the latest write, and the C11 model allows every such
    /// interleaving whatever the orderings (stronger orderings only remove
    /// behaviours; an extra write of the value already there changes no
    /// value any read can return). So a failure found this way is a failure
    /// of the program as written. shuttle is sequentially consistent
    /// already: there the switch changes nothing that can be observed.
    pub fn force_seq_cst(on: bool) {
        SEQ_CST.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`force_seq_cst`] is on.
    pub fn seq_cst_forced() -> bool {
        SEQ_CST.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `order`, or `SeqCst` when forced.
    fn forced(order: Ordering) -> Ordering {
        if seq_cst_forced() {
            Ordering::SeqCst
        } else {
            order
        }
    }

    macro_rules! traced_atomic {
        ($name:ident, $raw:ident, $t:ty, $identity:expr, [$($rmw:ident),*]) => {
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
                    let v = if seq_cst_forced() {
                        // A read-modify-write reads the latest store.
                        self.0.fetch_or($identity, Ordering::SeqCst)
                    } else {
                        self.0.load(order)
                    };
                    record(|| format!("{}::load -> {v:?}", stringify!($name)), Location::caller());
                    v
                }

                #[track_caller]
                /// Store.
                pub fn store(&self, value: $t, order: Ordering) {
                    record(|| format!("{}::store({value:?})", stringify!($name)), Location::caller());
                    if seq_cst_forced() {
                        // A read-modify-write orders the store after the
                        // latest one (loom's plain stores may be unordered).
                        self.0.swap(value, Ordering::SeqCst);
                    } else {
                        self.0.store(value, order)
                    }
                }

                #[track_caller]
                /// Compare and exchange.
                pub fn compare_exchange(&self, current: $t, new: $t, success: Ordering, failure: Ordering) -> Result<$t, $t> {
                    let r = self.0.compare_exchange(current, new, forced(success), forced(failure));
                    record(|| format!("{}::compare_exchange({current:?} -> {new:?}) = {}", stringify!($name), if r.is_ok() { "ok" } else { "failed" }), Location::caller());
                    r
                }

                #[track_caller]
                /// Weak compare and exchange.
                pub fn compare_exchange_weak(&self, current: $t, new: $t, success: Ordering, failure: Ordering) -> Result<$t, $t> {
                    let r = self.0.compare_exchange_weak(current, new, forced(success), forced(failure));
                    record(|| format!("{}::compare_exchange_weak({current:?} -> {new:?}) = {}", stringify!($name), if r.is_ok() { "ok" } else { "failed" }), Location::caller());
                    r
                }

                $(
                #[track_caller]
                /// Read-modify-write.
                pub fn $rmw(&self, value: $t, order: Ordering) -> $t {
                    let v = self.0.$rmw(value, forced(order));
                    record(|| format!("{}::{}({value:?}) -> {v:?}", stringify!($name), stringify!($rmw)), Location::caller());
                    v
                }
                )*
            }
        };
    }

    traced_atomic!(AtomicBool, AtomicBool, bool, false, [swap]);
    traced_atomic!(AtomicU64, AtomicU64, u64, 0, [swap, fetch_add, fetch_sub]);
    traced_atomic!(
        AtomicUsize,
        AtomicUsize,
        usize,
        0,
        [swap, fetch_add, fetch_sub]
    );
}
