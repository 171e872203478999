//! The sync facade: one API, three compile-time backends.
//!
//! Public for the harness (loom-tests) and the benchmarks only: it is
//! `#[doc(hidden)]` in the crate's documentation and has no stability
//! promise. A client user needs none of it.
//!
//! Every piece of client code that synchronises (locks, atomics, spawning
//! tasks, waiting) goes through this module, never through `std`, `tokio`,
//! `loom` or `shuttle` directly. The backend is picked at compile time, the
//! way tokio's `src/loom/` does it:
//!
//! | build | cfg | leaf primitives |
//! |---|---|---|
//! | real (default) | none | `std::sync`, `tokio::spawn`, `tokio::time` |
//! | loom | `RUSTFLAGS="--cfg wsdrain_loom"` | `loom::sync`, `loom::thread` + `loom::future::block_on` |
//! | shuttle | `RUSTFLAGS="--cfg wsdrain_shuttle"` | `shuttle::sync`, `shuttle::future` |
//!
//! The cfgs are namespaced (`wsdrain_*`, not a bare `loom`): a bare
//! `--cfg loom` makes tokio compile its own loom mocks and gate `tokio::net`
//! out, which breaks tokio-tungstenite.
//!
//! Only the *leaf* primitives differ between backends. The compound ones the
//! client needs ([`WaitGroup`], [`CloseSignal`], [`Queue`]) are written once,
//! on top of the leaves, so the code that is model-checked is the code that
//! ships. In the real build the leaves are type aliases or `#[inline]`
//! newtypes over `std`/`tokio`, so the facade costs nothing.
//!
//! The rule has named exceptions, in [`unchecked`]: ids, statistics and
//! set-once reports that the checkers must not see, each saying why.
//!
//! loom builds have one more type, `Witness`: a loom cell that holds nothing,
//! with which the probe's drain-barrier oracle asks loom whether a task's
//! exit happens before a barrier's return (see `witness.rs`).

pub mod atomic;
mod close_signal;
mod mutex;
mod queue;
pub mod trace;
pub mod unchecked;
mod wait_group;
mod waiters;
#[cfg(wsdrain_loom)]
mod witness;

#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
#[path = "backend_std.rs"]
mod backend;
#[cfg(wsdrain_loom)]
#[path = "backend_loom.rs"]
mod backend;
#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
#[path = "backend_shuttle.rs"]
mod backend;

pub use backend::{Arc, TaskId, current_task, jitter, sleep, spawn, yield_now};
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub use backend::{block_on, model_thread};
pub use close_signal::{CloseSignal, Closed};
pub use mutex::{Mutex, MutexGuard};
pub use queue::RecvMany;
pub use queue::{Queue, Recv, SendError, SendFuture};
pub use wait_group::{Wait, WaitGroup};
#[cfg(wsdrain_loom)]
pub use witness::Witness;

/// The name of the backend this build uses: `"std"`, `"loom"` or `"shuttle"`.
pub const BACKEND: &str = backend::NAME;

/// A spawned task's body under the checkers, ending the way a tokio task
/// does when it panics with an injected fault
/// ([`Fault::HandlerPanic`](crate::transport::Fault::HandlerPanic)): the
/// task just ends (tokio catches a task's panic), so the model sees what
/// the client does about it. Any other panic still fails the execution.
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub(crate) async fn task_body<F: std::future::Future<Output = ()>>(future: F) {
    use futures_util::FutureExt;
    if let Err(payload) = std::panic::AssertUnwindSafe(future).catch_unwind().await {
        let injected = payload
            .downcast_ref::<String>()
            .is_some_and(|m| m.contains(crate::transport::INJECTED_PANIC))
            || payload
                .downcast_ref::<&str>()
                .is_some_and(|m| m.contains(crate::transport::INJECTED_PANIC));
        if !injected {
            std::panic::resume_unwind(payload);
        }
    }
}
