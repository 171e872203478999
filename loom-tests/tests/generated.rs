//! The generated explorer (`wsdrain-cell generated`): the fixed client
//! passes the first programs; a catalog bug is caught, shrunk, and its
//! counterexample replays to the same report.
#![cfg(any(wsdrain_loom, wsdrain_shuttle))]

mod common;

use std::path::Path;

use common::{CHECKER, cell};
use wsdrain_loom_tests::cell::{CellCommand, CellOutcome, Checker};

fn budget(command: CellCommand) -> CellCommand {
    match CHECKER {
        Checker::Shuttle => command.schedules(100),
        Checker::Loom => command.bound(1).max_seconds(120),
    }
}

#[test]
fn the_fixed_client_passes_the_first_programs() {
    let programs = if CHECKER == Checker::Loom { 6 } else { 200 };
    let result = cell(&budget(CellCommand::generated("fixed", 0, programs)).no_trace());
    assert_eq!(
        result.result,
        CellOutcome::Pass,
        "{}",
        result.report.unwrap_or_default()
    );
    assert_eq!(result.programs, Some(programs));
    assert!(result.executions >= programs as usize);
}

#[test]
fn h5_is_caught_shrunk_and_replayed() {
    let found = cell(&budget(CellCommand::generated("H5", 0, 20)));
    assert!(found.caught(), "H5 escaped: {found:?}");
    let report = found.report.clone().expect("a counterexample");
    assert!(report.contains("G generated program"), "{report}");
    let replay = found.replay.clone().expect("a replay command");
    // `cargo xtask replay --checker C --program FILE --bug H5 ARTIFACT`
    let words: Vec<&str> = replay.split_whitespace().collect();
    let program = words[words.iter().position(|w| *w == "--program").unwrap() + 1];
    let artifact = words.last().unwrap();
    let replayed = cell(&CellCommand::replay_program(
        Path::new(program),
        "H5",
        Path::new(artifact),
    ));
    assert!(replayed.caught(), "the replay did not fail: {replayed:?}");
    assert_eq!(replayed.oracle, found.oracle);
    let heading = |r: &str| r.lines().next().unwrap_or_default().to_owned();
    let found_after = |r: &str| {
        let h = heading(r);
        h[h.find("found after").unwrap()..]
            .split(" execution")
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        found_after(replayed.report.as_deref().unwrap()),
        found_after(&report),
        "the replay reports another execution number"
    );
}

/// loom: a failing program is shrunk (smallest failing bound, then the
/// program), and the counterexample replays the shrunk program exactly.
#[test]
fn loom_shrinks_a_padded_h5_program() {
    if CHECKER != Checker::Loom {
        return;
    }
    use wsdrain_model::{FaultKind, HandlerKind, Op, Program};
    // H5's race (close racing stream_workspace) padded with ops it needs not.
    let padded = Program {
        manager: false,
        tasks: vec![
            vec![
                Op::ServerSend,
                Op::Stream {
                    handler: HandlerKind::Ignore,
                },
                Op::Ping,
            ],
            vec![
                Op::Fault {
                    fault: FaultKind::ConnectTimeout,
                },
                Op::ClientClose,
            ],
        ],
    };
    loom_shrinks("H5", &padded, "padded-h5");
}

/// loom: a deadlock is shrunk too. loom aborts the process on a deadlock,
/// so this failure is shrunk from the panic hook (the path a drain-barrier
/// failure such as H5's does not take), and the replay deadlocks again.
#[test]
fn loom_shrinks_a_padded_deadlock_program() {
    if CHECKER != Checker::Loom {
        return;
    }
    use wsdrain_model::{HandlerKind, Op, Program};
    // H8 (close from a handler waits for its own reader): the handler's
    // close deadlocks in every execution; the rest is padding.
    let padded = Program {
        manager: false,
        tasks: vec![
            vec![
                Op::Ping,
                Op::Stream {
                    handler: HandlerKind::CloseClient,
                },
                Op::ServerSend,
            ],
            vec![Op::Ping, Op::Ping],
        ],
    };
    let found = loom_shrinks("H8", &padded, "padded-h8");
    assert_eq!(
        found.oracle,
        Some(wsdrain_loom_tests::cell::Oracle::Liveness),
        "{found:?}"
    );
}

/// Explore `padded` under loom with `bug` on; it must be caught, its
/// counterexample must say it was shrunk, name a smaller program, and
/// replay to the same oracle and execution number. Returns the finding.
fn loom_shrinks(
    bug: &str,
    padded: &wsdrain_model::Program,
    name: &str,
) -> wsdrain_loom_tests::cell::CellResult {
    use wsdrain_model::Program;
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.program.json"));
    std::fs::write(&file, padded.to_json()).unwrap();
    let found = cell(
        &CellCommand::generated(bug, 0, 1)
            .program_file(&file)
            .bound(1)
            .max_seconds(300),
    );
    assert!(found.caught(), "{bug} escaped: {found:?}");
    let report = found.report.clone().expect("a counterexample");
    assert!(
        report.contains(&format!("shrunk from {} to", padded.len())),
        "{report}"
    );
    let replay = found.replay.clone().expect("a replay command");
    let words: Vec<&str> = replay.split_whitespace().collect();
    let program = words[words.iter().position(|w| *w == "--program").unwrap() + 1];
    let shrunk = Program::from_json(&std::fs::read_to_string(program).unwrap()).unwrap();
    assert!(shrunk.len() < padded.len(), "{shrunk:?}");
    let replayed = cell(&CellCommand::replay_program(
        Path::new(program),
        bug,
        Path::new(words.last().unwrap()),
    ));
    assert!(replayed.caught(), "the replay did not fail: {replayed:?}");
    assert_eq!(replayed.oracle, found.oracle);
    let heading = |r: &str| {
        let h = r.lines().next().unwrap_or_default();
        h[h.find("found after").unwrap()..]
            .split(" execution")
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        heading(replayed.report.as_deref().unwrap()),
        heading(&report)
    );
    found
}

/// Regression (found by the explorer, program 241 of the default budget):
/// a managed stream that ends after `StreamManager::stop()` returned is not
/// reconnected while the stop-merger task has not yet run. With the
/// supervisor reading only the merged signal this fails manager-promise at
/// execution 98 (two connections after `stop()`). shuttle only: programs
/// with a manager do not fit loom. The schedules are the budget's own
/// (seeded per program), so this replays the finding as it was found.
#[test]
fn no_reconnect_after_stop() {
    if CHECKER != Checker::Shuttle {
        return;
    }
    let result = cell(
        &CellCommand::generated("fixed", 241, 1)
            .schedules(100)
            .no_trace(),
    );
    assert_eq!(
        result.result,
        CellOutcome::Pass,
        "{}",
        result.report.unwrap_or_default()
    );
    assert_eq!(result.executions, 100);
}
