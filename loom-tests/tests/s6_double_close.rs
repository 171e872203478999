//! S6: double `close()`; `WorkspaceStream::close` vs `Client::close`.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes("S6", 1);
}

#[test]
fn h1_close_no_drain_is_caught() {
    common::bug_is_caught("S6", "H1", "drain-barrier");
}
