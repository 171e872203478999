//! S3: two concurrent `stream_workspace` callers, then `close()`.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes("S3", 1);
}

#[test]
fn h1_close_no_drain_is_caught() {
    common::bug_is_caught("S3", "H1", "drain-barrier");
}

#[test]
fn h3_concurrent_dial_orphan_is_caught() {
    common::bug_is_caught("S3", "H3", "no-orphan");
}

#[test]
fn h7_writer_not_woken_is_caught() {
    common::bug_is_caught("S3", "H7", "liveness");
}
