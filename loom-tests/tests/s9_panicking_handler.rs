//! S9: a handler panics (an injected fault); the stream must not become a
//! zombie.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes("S9", 1);
}

#[test]
fn h1_close_no_drain_is_caught() {
    common::bug_is_caught("S9", "H1", "drain-barrier");
}
