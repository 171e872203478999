//! S4: server disconnect (the old reader's exit cleanup) vs a new stream, then `close()`.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S4DisconnectVsNewStream);
}

#[test]
fn h1_close_no_drain_is_caught() {
    common::bug_is_caught(
        Scenario::S4DisconnectVsNewStream,
        Bug::CloseNoDrain,
        Oracle::DrainBarrier,
    );
}

#[test]
fn h4_cleanup_clobber_is_caught() {
    common::bug_is_caught(
        Scenario::S4DisconnectVsNewStream,
        Bug::CleanupClobber,
        Oracle::Identity,
    );
}

#[test]
fn h7_writer_not_woken_is_caught() {
    common::bug_is_caught(
        Scenario::S4DisconnectVsNewStream,
        Bug::WriterNotWoken,
        Oracle::Liveness,
    );
}
