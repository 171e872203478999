//! S7: `close()` called from a handler on the reader task.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S7CloseFromHandler);
}

#[test]
fn h1_close_no_drain_is_caught() {
    common::bug_is_caught(
        Scenario::S7CloseFromHandler,
        Bug::CloseNoDrain,
        Oracle::DrainBarrier,
    );
}

#[test]
fn h7_writer_not_woken_is_caught() {
    common::bug_is_caught(
        Scenario::S7CloseFromHandler,
        Bug::WriterNotWoken,
        Oracle::Liveness,
    );
}

#[test]
fn h8_close_from_callback_is_caught() {
    common::bug_is_caught(
        Scenario::S7CloseFromHandler,
        Bug::CloseFromCallback,
        Oracle::Liveness,
    );
}
