//! S11: `StreamManager::wait()` called from a managed stream's handler
//! (under shuttle after the first managed handler panicked).
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::Scenario;
#[cfg(not(wsdrain_loom))]
use common::{Bug, Oracle};

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S11ManagerWaitFromHandler);
}

/// shuttle only: under loom S11 runs at bound 0, where H6's race is not
/// reached (S8 catches H6 under loom).
#[cfg(not(wsdrain_loom))]
#[test]
fn h6_untracked_helper_task_is_caught() {
    common::bug_is_caught(
        Scenario::S11ManagerWaitFromHandler,
        Bug::UntrackedHelperTask,
        Oracle::DrainBarrier,
    );
}
