//! S10: a retired stream's handler and the current stream's handler both
//! call `Client::close()`, and main closes too.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

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
