//! S6: double `close()`; `WorkspaceStream::close` vs `Client::close`.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S6DoubleClose);
}

#[test]
fn h1_close_no_drain_is_caught() {
    common::bug_is_caught(
        Scenario::S6DoubleClose,
        Bug::CloseNoDrain,
        Oracle::DrainBarrier,
    );
}
