//! wsdrain: a WebSocket client for the agentctl workspace stream whose
//! `Client::close()` is a true drain barrier.
// The README (the catalog's table included) is the crate's documentation
// only where documentation is built: a release rlib must not carry it.
#![cfg_attr(any(doc, doctest), doc = include_str!("../README.md"))]
#![warn(missing_docs)]

/// `bug!(holder, Name)`: whether catalog bug `Name` is switched on in
/// `holder` (anything with a `bugs()` method): with `--cfg wsdrain_bugs`,
/// the holder's `Bugs` decide.
#[cfg(wsdrain_bugs)]
macro_rules! bug {
    ($holder:expr, $name:ident) => {
        $holder.bugs().on($crate::bugs::Bug::$name)
    };
}
/// `bug!(holder, Name)` without `--cfg wsdrain_bugs`: a literal `false`
/// (the holder is only borrowed, so it counts as used); the name does not
/// survive expansion.
#[cfg(not(wsdrain_bugs))]
macro_rules! bug {
    ($holder:expr, $name:ident) => {{
        let _ = &$holder;
        false
    }};
}

#[cfg(wsdrain_bugs)]
mod bugs;
mod client;
mod error;
mod handler;
mod manager;
// Public surface. For a client user: the items re-exported below,
// `protocol` (the wire types) and `transport` (the seam `Client` is generic
// over, and the real `WsTransport`). For the harness, the benchmarks and
// the fuzz targets only, hidden from the docs and without stability
// promise: `probe` (task counts and oracles), `sync` (the facade) and
// `transport::MemoryTransport`.
#[doc(hidden)]
pub mod probe;
pub mod protocol;
mod stream;
#[doc(hidden)]
pub mod sync;
pub mod transport;

#[cfg(wsdrain_bugs)]
pub use bugs::{Bug, Bugs};
pub use client::{Client, ClientConfig, STREAM_PATH, stream_url};
pub use error::{Error, Result};
pub use handler::{Event, Handler, Skipped};
pub use manager::{ManagerConfig, StreamManager};
pub use stream::{StreamEnd, WorkspaceStream};
/// The future of [`WorkspaceStream::done`].
pub use sync::Closed;
