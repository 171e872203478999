//! S2: `close()` while the dial is in flight.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes("S2", 3);
}

#[test]
fn h2_dial_vs_close_is_caught() {
    common::bug_is_caught("S2", "H2", "drain-barrier");
}
