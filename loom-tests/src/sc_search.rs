//! loom: after a weak-memory failure, look for a sequentially consistent
//! execution of the same failure, and report that one instead.
//!
//! loom stops at the first failing execution, and the first one it finds
//! may be a weak-memory one: a load returned an older value than the
//! latest store, and no order of the listed steps explains it
//! ([`Listing::explained`](crate::listing::Listing::explained) marks it
//! weak). Such a counterexample is hard to believe. So the same program is
//! explored again with every traced atomic forced sequentially consistent
//! ([`wsdrain::sync::atomic::force_seq_cst`], whose documentation says
//! why that is sound: every execution found so is one of the program as
//! written), bound by bound from 0, within [`BUDGET`]. If that fails the
//! same oracle and its listing has no stale read (the listing stays the
//! judge), it is the counterexample, with a note saying how it was found,
//! and its replay file says to force `SeqCst` again. Otherwise the weak
//! one is kept, its stale reads marked, with a note saying the search
//! found none within its budget.
//!
//! A failure that loom reports by ending the process (a deadlock) cannot be
//! followed up: its cell result, written at the failure, is the weak one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wsdrain::sync::atomic::force_seq_cst;

use crate::harness::{self, Failure, Outcome, Program, Strategy};

/// How far the search goes: preemption bounds 0 up to one more than the
/// bound the weak failure was found at, at most `executions` executions
/// and `duration` in all.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Executions, all bounds together (loom checks every 256).
    pub executions: usize,
    /// Wall time, all bounds together.
    pub duration: Duration,
    /// Bounds beyond the one the weak failure was found at.
    pub extra_bounds: usize,
}

/// The search's budget.
pub const BUDGET: Budget = Budget {
    executions: 20_000,
    duration: Duration::from_secs(60),
    extra_bounds: 1,
};

static SEARCHING: AtomicBool = AtomicBool::new(false);

/// Whether the search is running (the panic hook leaves its failures to it).
pub fn searching() -> bool {
    SEARCHING.load(Ordering::SeqCst)
}

/// What the search ended with.
#[derive(Debug)]
enum Found {
    /// A sequentially consistent execution of the same failure.
    Same {
        failure: Failure,
        executions: usize,
        bound: usize,
    },
    /// None: why, in words.
    None(String),
}

/// After `outcome` (an exploration of `program` with `strategy`): if its
/// failure is weak, search for a sequentially consistent one and report
/// that instead, else add the search's note to the weak one. A cell's
/// result, already written at the failure, is written again (the last
/// line counts).
pub fn follow_up(program: &Program, strategy: &Strategy, mut outcome: Outcome) -> Outcome {
    let Some(weak) = outcome.failure.take_if(|f| f.listing.is_weak()) else {
        return outcome;
    };
    let Strategy::Loom {
        preemption_bound,
        checkpoint,
        ..
    } = strategy
    else {
        outcome.failure = Some(weak);
        return outcome;
    };
    let max_bound = preemption_bound.unwrap_or(2) + BUDGET.extra_bounds;
    let sc_checkpoint = checkpoint.as_deref().map(sc_path);
    let (found, executions) = search(program, &weak, max_bound, sc_checkpoint.as_deref());
    outcome.executions += executions;
    let is_same = matches!(found, Found::Same { .. });
    let failure = match found {
        Found::Same {
            failure,
            executions,
            bound,
        } => {
            let note = format!(
                "a sequentially consistent execution of the same failure, found with every \
                 atomic SeqCst after {executions} execution(s) at {bound} preemption(s) (the \
                 first failing execution loom found was a weak-memory one)"
            );
            let artifact = sc_checkpoint
                .as_deref()
                .map(|c| harness::save_replay_meta_of(c, Some(bound), executions, true));
            Failure {
                memory_note: Some(note),
                artifact,
                ..failure
            }
        }
        Found::None(why) => Failure {
            memory_note: Some(format!(
                "weak; a search with every atomic SeqCst found no sequentially consistent \
                 execution of the same failure within its budget: {why}"
            )),
            ..weak
        },
    };
    if is_same && let (Some(artifact), Some(note)) = (&failure.artifact, &failure.memory_note) {
        let _ = std::fs::write(harness::sidecar(artifact, harness::MEMORY_NOTE), note);
    }
    rewrite_cell(&failure, is_same, executions);
    outcome.failure = Some(failure);
    outcome
}

/// Explore `program` with every atomic SeqCst, bounds 0..=max_bound, for
/// the failure `weak` had: its result and the executions run.
fn search(
    program: &Program,
    weak: &Failure,
    max_bound: usize,
    checkpoint: Option<&Path>,
) -> (Found, usize) {
    let same = |f: &Failure| {
        f.oracle == weak.oracle && (weak.oracle.is_some() || f.message == weak.message)
    };
    SEARCHING.store(true, Ordering::SeqCst);
    force_seq_cst(true);
    let start = Instant::now();
    let mut executions = 0;
    let mut found = None;
    for bound in 0..=max_bound {
        let (Some(left), Some(time)) = (
            BUDGET.executions.checked_sub(executions).filter(|n| *n > 0),
            BUDGET.duration.checked_sub(start.elapsed()),
        ) else {
            found = Some(Found::None(limits(executions, start)));
            break;
        };
        let out = harness::run_program(program, |body| {
            harness::loom_check(Some(bound), Some(time), Some(left), checkpoint, body)
        });
        executions += out.executions;
        match out.failure {
            Some(f) if same(&f) && !f.listing.is_weak() => {
                found = Some(Found::Same {
                    failure: f,
                    executions: out.executions,
                    bound,
                });
                break;
            }
            Some(f) if same(&f) => {
                found = Some(Found::None(format!(
                    "the failure it found at {bound} preemption(s) is weak too"
                )));
                break;
            }
            Some(f) => {
                let other = f.oracle.map_or("an unclassified panic", |o| o.name());
                found = Some(Found::None(format!(
                    "it failed first with another failure ({other}) at {bound} preemption(s)"
                )));
                break;
            }
            None if out.executions >= left || start.elapsed() >= BUDGET.duration => {
                found = Some(Found::None(limits(executions, start)));
                break;
            }
            None => {}
        }
    }
    force_seq_cst(false);
    SEARCHING.store(false, Ordering::SeqCst);
    let found = found.unwrap_or_else(|| {
        Found::None(format!(
            "it explored every execution up to {max_bound} preemption(s) ({executions} \
             execution(s), {:.1} s)",
            start.elapsed().as_secs_f64()
        ))
    });
    (found, executions)
}

fn limits(executions: usize, start: Instant) -> String {
    format!(
        "it stopped at its limits ({} executions or {} s) after {executions} execution(s), \
         {:.1} s",
        BUDGET.executions,
        BUDGET.duration.as_secs(),
        start.elapsed().as_secs_f64()
    )
}

/// The SC search's checkpoint, next to the exploration's.
fn sc_path(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    checkpoint.with_file_name(format!("{stem}-sc.json"))
}

/// Write the cell's result again, with `failure` (the panic hook wrote the
/// weak one at the failure; the last line of a cell's output counts), and
/// leave the note next to the artifact it names, so its replay says the
/// same. `found`: `failure` is the SC search's; `searched`: its executions.
fn rewrite_cell(failure: &Failure, found: bool, searched: usize) {
    let Some((mut result, found_after)) = harness::caught_result() else {
        return;
    };
    let (Some(scenario), Some(bugs)) = (
        crate::Scenario::from_name(&result.scenario),
        crate::cell::parse_variant(&result.variant),
    ) else {
        return;
    };
    let sidecar = |artifact: &Path, what: &str| {
        std::fs::read_to_string(harness::sidecar(artifact, what)).ok()
    };
    // The heading's preemptions are the first failure's (the bound the
    // exploration found it at); the note says the SC execution's.
    let preemptions = result
        .artifact
        .as_deref()
        .and_then(|a| sidecar(a, harness::PREEMPTIONS));
    let artifact = if found {
        failure.artifact.clone()
    } else {
        result.artifact.clone()
    };
    if let Some(artifact) = &artifact {
        for (what, text) in [
            (harness::FOUND_AFTER, Some(found_after.to_string())),
            (harness::PREEMPTIONS, preemptions.clone()),
            (harness::MEMORY_NOTE, failure.memory_note.clone()),
        ] {
            if let Some(text) = text {
                let _ = std::fs::write(harness::sidecar(artifact, what), text);
            }
        }
    }
    let failure = Failure {
        preemptions,
        artifact: artifact.clone(),
        ..failure.clone()
    };
    result.executions += searched;
    result.message = Some(failure.message.clone());
    result.listing = Some(failure.listing.clone());
    result.report = Some(failure.report(harness::CHECKER, scenario, bugs, found_after));
    result.replay = artifact
        .as_deref()
        .map(|a| harness::replay_command(scenario, bugs, a));
    result.artifact = artifact;
    crate::cell::write_again(&result);
}
