//! S2: `close()` while the dial is in flight.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S2CloseDuringDial);
}

#[test]
fn h2_dial_vs_close_is_caught() {
    common::bug_is_caught(
        Scenario::S2CloseDuringDial,
        Bug::DialVsClose,
        Oracle::DrainBarrier,
    );
}
