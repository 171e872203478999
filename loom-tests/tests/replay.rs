//! A counterexample replays: the artifact a failure leaves (loom checkpoint,
//! shuttle schedule) reruns exactly the failing execution, which fails the
//! same way, with the same oracle, message and interleaving.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

fn same_failure(scenario: &str, bug: &str, oracle: &str) {
    let found = common::bug_is_caught(scenario, bug, oracle);
    let replayed = common::replay(&found);
    assert_eq!(
        replayed.result, "caught",
        "the replay did not fail: {replayed:?}"
    );
    assert_eq!(
        replayed.executions, 1,
        "a replay runs exactly the failing execution"
    );
    assert_eq!(replayed.oracle, found.oracle);
    assert_eq!(replayed.message, found.message);
    let interleaving = |report: &Option<String>| {
        let report = report.clone().unwrap_or_default();
        report[report.find("interleaving (").expect("an interleaving")..].to_owned()
    };
    assert_eq!(interleaving(&replayed.report), interleaving(&found.report));
}

#[test]
fn the_seed_bug_replays() {
    same_failure("S1", "H5", "drain-barrier");
}

#[test]
fn a_deadlock_replays() {
    same_failure("S7", "H8", "liveness");
}
