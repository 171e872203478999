//! The model-checking harness of wsdrain: scenarios S1-S12 over the real
//! client, run under loom (exhaustive within a preemption bound) or shuttle
//! (PCT, random), with the bug catalog H1-H8 switchable per run.
//!
//! Build with `RUSTFLAGS="--cfg wsdrain_loom --cfg wsdrain_bugs"` or
//! `RUSTFLAGS="--cfg wsdrain_shuttle --cfg wsdrain_bugs"`; in a plain build
//! this crate only describes the scenarios and the cell runner's protocol,
//! and knows nothing of the bug catalog (a plain `cargo build --workspace
//! --release` must carry none of its names).

#[cfg(all(any(wsdrain_loom, wsdrain_shuttle), not(wsdrain_bugs)))]
compile_error!(
    "the model harness needs the bug catalog: add `--cfg wsdrain_bugs` to RUSTFLAGS \
     (`cargo xtask verify` and `cargo xtask test` set both)"
);

pub mod cell;
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
mod fault_scenarios;
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub mod generated;
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub mod harness;
pub mod listing;
pub mod oracles;
#[cfg(wsdrain_loom)]
pub mod sc_search;
pub mod scenarios;
#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
pub mod shrink;
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub mod small_model;
pub mod windows;

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub use harness::{Failure, Outcome, Strategy, explore, replay};
pub use scenarios::Scenario;
