//! loom finds a weak-memory execution first (loads try the oldest value
//! first): when a sequentially consistent execution of the same failure
//! exists, the harness reports that one instead, found with every atomic
//! forced `SeqCst`, and its replay forces it again; when none exists, the
//! weak one is reported with its stale reads marked and a note saying the
//! search found none. Two wait groups `a` and `b`, in store-buffering form:
//! `x` adds to `a` and polls `b`'s wait once, `y` adds to `b` and polls
//! `a`'s wait once.
#![cfg(wsdrain_loom)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use wsdrain::sync::{Arc, WaitGroup, model_thread, trace};
use wsdrain_loom_tests::harness::{self, Outcome, Program, Strategy};

/// The harness's statics (trace, first panic, the SeqCst switch) are per
/// process: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Whether a wait on `group` returns at once when polled one time (a wait
/// that parks is dropped, which takes the waiter out again).
fn returns_at_once(group: &WaitGroup) -> bool {
    let mut wait = std::pin::pin!(group.wait());
    let mut cx = Context::from_waker(Waker::noop());
    matches!(wait.as_mut().poll(&mut cx), Poll::Ready(()))
}

/// Runs `x` and `y` and hands `check` whether each one's poll returned at
/// once.
fn store_buffering(check: fn(bool, bool)) -> Program {
    Program::new(move || {
        let a = Arc::new(WaitGroup::named(trace::name(|| "a")));
        let b = Arc::new(WaitGroup::named(trace::name(|| "b")));
        let x = {
            let (a, b) = (a.clone(), b.clone());
            model_thread(move || {
                trace::label_current("x");
                a.add(1);
                returns_at_once(&b)
            })
        };
        let y = model_thread(move || {
            trace::label_current("y");
            b.add(1);
            returns_at_once(&a)
        });
        let (x_at_once, y_at_once) = (x.join().unwrap(), y.join().unwrap());
        check(x_at_once, y_at_once);
    })
}

fn strategy(name: &str) -> (Strategy, PathBuf) {
    let checkpoint = harness::artifact_dir().join(format!("loom-sc-search-{name}.json"));
    let _ = std::fs::remove_file(&checkpoint);
    (
        Strategy::Loom {
            preemption_bound: Some(1),
            max_duration: Some(Duration::from_secs(120)),
            checkpoint: Some(checkpoint.clone()),
        },
        checkpoint,
    )
}

fn note(outcome: &Outcome) -> &str {
    outcome
        .failure
        .as_ref()
        .and_then(|f| f.memory_note.as_deref())
        .unwrap_or_default()
}

#[test]
fn a_sequentially_consistent_execution_of_the_same_failure_is_preferred() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // Fails whenever y's wait on `a` returns at once: weak when x's add ran
    // before it (loom's first failure), sequentially consistent when y ran
    // first.
    let program = store_buffering(|_, y_at_once| {
        assert!(!y_at_once, "y's wait on a returned at once");
    });
    let (strategy, _) = strategy("prefer");
    let outcome = harness::explore_program(&program, &strategy);
    let failure = outcome.failure.as_ref().expect("the program fails");
    assert!(
        failure.message.contains("y's wait on a returned at once"),
        "{}",
        failure.message
    );
    let note = note(&outcome);
    assert!(
        note.starts_with(
            "a sequentially consistent execution of the same failure, found with every atomic \
             SeqCst after"
        ) && note.contains("was a weak-memory one"),
        "{note}\n{}",
        failure.trace
    );
    assert!(!failure.listing.is_weak(), "{}", failure.trace);
    assert!(
        failure.listing.stale_reads().is_empty(),
        "{}",
        failure.trace
    );
    let ops = failure.listing.ops();
    // The story as it happened: y's wait at zero before x's add.
    let wait = ops
        .iter()
        .position(|s| *s == ("y", "a.wait() -> counter 0, returns at once"))
        .unwrap_or_else(|| panic!("{ops:#?}"));
    if let Some(add) = ops
        .iter()
        .position(|s| *s == ("x", "a.add(1) -> counter 1, waiters 0"))
    {
        assert!(wait < add, "{ops:#?}");
    }
    let report = failure.report(
        harness::CHECKER,
        wsdrain_loom_tests::Scenario::ALL[0],
        wsdrain::Bugs::NONE,
        outcome.executions,
    );
    assert!(report.contains(&format!("memory: {note}")), "{report}");
    assert!(!report.contains("[stale"), "{report}");

    // The replay forces SeqCst again and reruns the same execution.
    let artifact = failure.artifact.as_deref().expect("a replay file");
    assert!(
        artifact.to_string_lossy().ends_with("-sc.replay.json"),
        "{}",
        artifact.display()
    );
    let replayed = harness::replay_program(&program, artifact);
    let again = replayed.failure.as_ref().expect("the replay fails");
    assert_eq!(again.message, failure.message);
    assert_eq!(again.listing, failure.listing);
    assert_eq!(again.memory_note, failure.memory_note);
    assert!(
        !wsdrain::sync::atomic::seq_cst_forced(),
        "switched off after"
    );
}

#[test]
fn a_failure_only_weak_memory_explains_is_marked_weak() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // Both waits at zero: each add ran before the other task's wait, so no
    // sequentially consistent order explains it.
    let program = store_buffering(|x_at_once, y_at_once| {
        assert!(!(x_at_once && y_at_once), "both waits returned at once");
    });
    let (strategy, _) = strategy("weak");
    let outcome = harness::explore_program(&program, &strategy);
    let failure = outcome.failure.as_ref().expect("the program fails");
    assert!(failure.listing.is_weak(), "{}", failure.trace);
    assert!(
        failure.listing.steps.iter().any(|s| s
            .op
            .ends_with("returns at once [stale: saw the initial value, not step 1]")),
        "{}",
        failure.trace
    );
    let note = note(&outcome);
    assert!(
        note.starts_with(
            "weak; a search with every atomic SeqCst found no sequentially consistent execution \
             of the same failure within its budget: it explored every execution up to 2 \
             preemption(s)"
        ),
        "{note}"
    );
    assert!(
        !wsdrain::sync::atomic::seq_cst_forced(),
        "switched off after"
    );
}

#[test]
fn the_switch_makes_every_execution_sequentially_consistent() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // Store buffering: with every atomic SeqCst, no execution has both waits
    // at zero (without the switch loom finds one: the test above).
    wsdrain::sync::atomic::force_seq_cst(true);
    let result = std::panic::catch_unwind(|| {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        let program = store_buffering(|x_at_once, y_at_once| {
            assert!(!(x_at_once && y_at_once), "both waits returned at once");
        });
        builder.check(move || program.run());
    });
    wsdrain::sync::atomic::force_seq_cst(false);
    assert!(result.is_ok(), "a weak execution with the switch on");
}
