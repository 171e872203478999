//! S3: two concurrent `stream_workspace` callers, then `close()`.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S3ConcurrentDial);
}

#[test]
fn h1_close_no_drain_is_caught() {
    common::bug_is_caught(
        Scenario::S3ConcurrentDial,
        Bug::CloseNoDrain,
        Oracle::DrainBarrier,
    );
}

#[test]
fn h3_concurrent_dial_orphan_is_caught() {
    common::bug_is_caught(
        Scenario::S3ConcurrentDial,
        Bug::ConcurrentDialOrphan,
        Oracle::NoOrphan,
    );
}

#[test]
fn h7_writer_not_woken_is_caught() {
    common::bug_is_caught(
        Scenario::S3ConcurrentDial,
        Bug::WriterNotWoken,
        Oracle::Liveness,
    );
}
