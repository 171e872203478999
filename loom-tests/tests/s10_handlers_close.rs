//! S10: a retired stream's handler and the current stream's handler both
//! call `Client::close()`, and main closes too.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};
use wsdrain_loom_tests::cell::Checker;

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S10HandlersClose);
}

#[test]
fn h8_close_from_callback_is_caught() {
    common::bug_is_caught(
        Scenario::S10HandlersClose,
        Bug::CloseFromCallback,
        Oracle::Liveness,
    );
}

/// loom only: its S10 body has main's dial of B in flight while A's handler
/// closes the client, so a client without the closed flag (H2) publishes B
/// after the close and counts its tasks into a released wait group.
/// (shuttle's body opens B before any close: there H2 is n/a.)
#[test]
fn h2_dial_vs_close_is_caught_under_loom() {
    if common::CHECKER != Checker::Loom {
        assert!(!Scenario::S10HandlersClose.applies_under(common::CHECKER, Bug::DialVsClose));
        return;
    }
    common::bug_is_caught_by_one_of(
        Scenario::S10HandlersClose,
        Bug::DialVsClose,
        &[Oracle::WaitGroupMisuse, Oracle::DrainBarrier],
    );
}
