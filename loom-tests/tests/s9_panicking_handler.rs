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

#[test]
fn h7_writer_not_woken_is_caught_as_a_zombie() {
    common::bug_is_caught(
        Scenario::S9PanickingHandler,
        Bug::WriterNotWoken,
        Oracle::NoZombie,
    );
}
