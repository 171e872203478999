#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod bugs;
mod client;
mod error;
mod handler;
mod manager;
pub mod probe;
pub mod protocol;
mod stream;
pub mod sync;
pub mod transport;

#[cfg(feature = "bug-catalog")]
pub use bugs::{Bug, Bugs};
pub use client::{Client, ClientConfig, STREAM_PATH, stream_url};
pub use error::{Error, Result};
pub use handler::{Event, Handler, Skipped};
pub use manager::{ManagerConfig, StreamManager};
pub use stream::{StreamEnd, WorkspaceStream};
