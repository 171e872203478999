//! S9: a handler panics (an injected fault); the stream must not become a
//! zombie.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S9PanickingHandler);
}

#[test]
fn h1_close_no_drain_is_caught() {
    common::bug_is_caught(
        Scenario::S9PanickingHandler,
        Bug::CloseNoDrain,
        Oracle::DrainBarrier,
    );
}

/// H7 shows two ways here: as a zombie (the first stream's writer stays
/// parked and its `wait()` never resolves) when main's input is refused, or,
/// when that input is queued and wakes the writer (which then sees the
/// stream closed and exits), as a deadlock of the final `close()`, which
/// never wakes the second stream's writer.
#[test]
fn h7_writer_not_woken_is_caught() {
    common::bug_is_caught_by_one_of(
        Scenario::S9PanickingHandler,
        Bug::WriterNotWoken,
        &[Oracle::NoZombie, Oracle::Liveness],
    );
}
