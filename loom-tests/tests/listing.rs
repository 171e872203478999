//! The seed bug's counterexample reads at a glance: one column per task,
//! main's wait at zero listed before the caller's late add (a sequentially
//! consistent order, no weak-memory note needed), and no two steps alike.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use common::{Bug, Oracle, Scenario};

#[test]
fn the_seed_bug_is_listed_in_the_order_a_person_tells_it() {
    let found = common::bug_is_caught(
        Scenario::S1CloseVsStream,
        Bug::AddAfterPublish,
        Oracle::DrainBarrier,
    );
    let listing = found.listing.as_ref().expect("the interleaving as data");
    let ops = listing.ops();
    let wait = ops
        .iter()
        .position(|(task, op)| *task == "main" && op.starts_with("tasks.wait() -> counter 0"))
        .unwrap_or_else(|| panic!("main's wait at zero is listed: {ops:#?}"));
    let add = ops
        .iter()
        .position(|(task, op)| *task == "caller" && op.starts_with("tasks.add(2)"))
        .unwrap_or_else(|| panic!("the caller's add is listed: {ops:#?}"));
    assert!(
        wait < add,
        "main's wait at zero comes before the late add: {ops:#?}"
    );
    assert!(!listing.is_weak(), "{ops:#?}");

    let report = found.report.as_deref().unwrap_or_default();
    assert!(!report.contains("C11 memory model"), "{report}");
    assert!(!report.contains("[stale"), "{report}");
    // Columns: a header naming both tasks, and main's steps to the right.
    let header = report
        .lines()
        .find(|l| l.trim_start().starts_with("# |"))
        .unwrap_or_else(|| panic!("a column header in:\n{report}"));
    assert!(
        header.contains("| caller") && header.contains("| main"),
        "{header}"
    );
    assert!(report.contains('»'), "switch points are marked:\n{report}");
    // One line per operation: the two wait groups are told apart.
    let mut seen = std::collections::HashSet::new();
    for step in &listing.steps {
        assert!(
            seen.insert((&step.task, &step.op, &step.file, step.line)),
            "a step is listed twice: {step:?}\n{report}"
        );
    }
}
