//! The faces of wsdrain: the workspace server behind `wsdrain serve`, as a
//! library so tests and benchmarks can run it in-process, and (in
//! `main.rs`) the `wsdrain` command itself.
//!
//! The client lives in the [`wsdrain`] crate, which depends on none of this.
#![warn(missing_docs)]

pub mod server;
