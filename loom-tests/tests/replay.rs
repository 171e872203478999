//! A counterexample replays: the artifact a failure leaves (loom checkpoint
//! plus its metadata, shuttle schedule) reruns the failing execution, which
//! fails the same way, with the same oracle, message and interleaving.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

fn same_failure(scenario: Scenario, bug: Bug, oracle: Oracle) {
    let found = common::bug_is_caught(scenario, bug, oracle);
    let replayed = common::replay(&found);
    assert!(replayed.caught(), "the replay did not fail: {replayed:?}");
    // loom replays from its last checkpoint (every 256 executions), shuttle
    // the exact schedule: the failing execution is the last one run.
    assert!(
        replayed.executions <= 256,
        "replay ran {} executions",
        replayed.executions
    );
    // The replay names the execution the original run failed at, not the
    // count of its own (shorter) rerun.
    let headline = |report: &Option<String>| {
        report
            .as_deref()
            .and_then(|r| r.lines().next())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(headline(&replayed.report), headline(&found.report));
    assert!(
        headline(&found.report).contains(&format!("found after {} execution(s)", found.executions)),
        "{:?}",
        found.report
    );
    // At its fewest preemptions: loom's deepening bound, shuttle's shrunk
    // schedule (which the replay ran).
    assert!(
        headline(&found.report).contains(" preemption(s)"),
        "{:?}",
        found.report
    );
    if common::CHECKER == wsdrain_loom_tests::cell::Checker::Shuttle {
        let artifact = found.artifact.as_deref().expect("an artifact");
        let name = artifact.file_name().unwrap().to_string_lossy();
        assert!(
            name.starts_with("schedule-shrunk"),
            "{}",
            artifact.display()
        );
        assert!(
            found
                .replay
                .as_deref()
                .is_some_and(|r| r.ends_with(&*name) && !r.contains("/../")),
            "{:?}",
            found.replay
        );
    }
    assert_eq!(replayed.oracle, found.oracle);
    assert_eq!(replayed.message, found.message);
    let interleaving = |report: &Option<String>| {
        let report = report.clone().unwrap_or_default();
        let start = report.find("interleaving (").expect("an interleaving");
        let end = report.find("\nreplay:").unwrap_or(report.len());
        report[start..end].to_owned()
    };
    assert_eq!(interleaving(&replayed.report), interleaving(&found.report));
}

#[test]
fn the_seed_bug_replays() {
    same_failure(
        Scenario::S1CloseVsStream,
        Bug::AddAfterPublish,
        Oracle::DrainBarrier,
    );
}

#[test]
fn a_failure_deep_in_the_exploration_replays() {
    // H3 is found after thousands of loom executions: past a checkpoint.
    same_failure(
        Scenario::S3ConcurrentDial,
        Bug::ConcurrentDialOrphan,
        Oracle::NoOrphan,
    );
}

#[test]
fn a_deadlock_replays() {
    same_failure(
        Scenario::S7CloseFromHandler,
        Bug::CloseFromCallback,
        Oracle::Liveness,
    );
}
