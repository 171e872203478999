//! S1: `close()` vs `stream_workspace` (the seed, kandev PR #1272).
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S1CloseVsStream);
}

#[test]
fn h1_close_no_drain_is_caught() {
    common::bug_is_caught(
        Scenario::S1CloseVsStream,
        Bug::CloseNoDrain,
        Oracle::DrainBarrier,
    );
}

#[test]
fn h2_dial_vs_close_is_caught() {
    common::bug_is_caught(
        Scenario::S1CloseVsStream,
        Bug::DialVsClose,
        Oracle::DrainBarrier,
    );
}

#[test]
fn h5_add_after_publish_is_caught() {
    common::bug_is_caught(
        Scenario::S1CloseVsStream,
        Bug::AddAfterPublish,
        Oracle::DrainBarrier,
    );
}

#[test]
fn h7_writer_not_woken_is_caught() {
    common::bug_is_caught(
        Scenario::S1CloseVsStream,
        Bug::WriterNotWoken,
        Oracle::Liveness,
    );
}
