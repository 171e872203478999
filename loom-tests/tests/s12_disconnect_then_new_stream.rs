//! S12: server disconnect, at once a retirement (`close_workspace_stream`),
//! a new stream and `close()`: the old reader's exit cleanup lands before or
//! after the new publish, or straddles the retirement.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S12DisconnectThenNewStream);
}

#[test]
fn h1_close_no_drain_is_caught() {
    common::bug_is_caught(
        Scenario::S12DisconnectThenNewStream,
        Bug::CloseNoDrain,
        Oracle::DrainBarrier,
    );
}

#[test]
fn h4_cleanup_clobber_is_caught() {
    common::bug_is_caught(
        Scenario::S12DisconnectThenNewStream,
        Bug::CleanupClobber,
        Oracle::Identity,
    );
}

#[test]
fn h7_writer_not_woken_is_caught() {
    common::bug_is_caught(
        Scenario::S12DisconnectThenNewStream,
        Bug::WriterNotWoken,
        Oracle::Liveness,
    );
}
