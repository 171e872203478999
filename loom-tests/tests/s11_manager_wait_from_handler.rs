//! S11: `StreamManager::wait()` called from a managed stream's handler
//! (under shuttle after the first managed handler panicked).
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::Scenario;

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S11ManagerWaitFromHandler);
}
