//! S8: the stream manager's reconnect loop vs `stop()`/`wait()`.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes("S8", 2);
}

#[test]
fn h6_untracked_helper_task_is_caught() {
    common::bug_is_caught("S8", "H6", "drain-barrier");
}

/// Under loom S8 connects no stream (see `Scenario::explores`).
#[cfg(wsdrain_shuttle)]
#[test]
fn h7_writer_not_woken_is_caught() {
    common::bug_is_caught("S8", "H7", "liveness");
}
