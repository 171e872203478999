//! The model-checking harness of wsdrain: scenarios S1-S11 over the real
//! client, run under loom (exhaustive within a preemption bound) or shuttle
//! (PCT, random), with the bug catalog H1-H8 switchable per run.
//!
//! Build with `RUSTFLAGS="--cfg wsdrain_loom"` or
//! `RUSTFLAGS="--cfg wsdrain_shuttle"`; in a plain build this crate only
//! describes the matrix (scenario names, applicability).

pub mod cell;
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
mod fault_scenarios;
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub mod harness;
pub mod oracles;
pub mod scenarios;

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub use harness::{Failure, Outcome, Strategy, explore, replay};
pub use scenarios::Scenario;
