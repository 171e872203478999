//! S8: the stream manager's reconnect loop vs `stop()`/`wait()`.
//!
//! One execution = one fresh client over the in-memory transport; see
//! `Scenario::explores` for what the checkers interleave here.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

#[test]
fn fixed_client_passes() {
    common::fixed_client_passes(Scenario::S8ManagerReconnect);
}

#[test]
fn h6_untracked_helper_task_is_caught() {
    common::bug_is_caught(
        Scenario::S8ManagerReconnect,
        Bug::UntrackedHelperTask,
        Oracle::DrainBarrier,
    );
}

/// Under loom S8 connects no stream (see `Scenario::explores`). Under
/// shuttle the parked writer keeps the dropped stream's `wait()` from
/// returning: the deadlock shows while main waits for the reconnect
/// (manager-promise), or, when the first drop's reconnect came through,
/// in `StreamManager::wait()` (liveness).
#[cfg(wsdrain_shuttle)]
#[test]
fn h7_writer_not_woken_is_caught() {
    common::bug_is_caught_by_one_of(
        Scenario::S8ManagerReconnect,
        Bug::WriterNotWoken,
        &[Oracle::Liveness, Oracle::ManagerPromise],
    );
}
