//! Shared helpers of the model-checking suites: each test runs one cell of
//! the matrix in its own `wsdrain-cell` process (loom reports deadlocks by
//! aborting the process) and asserts on its result line. The command lines
//! come from [`CellCommand`], as `cargo xtask verify`'s do.
#![allow(dead_code)]

use std::path::Path;

pub use wsdrain::Bug;
pub use wsdrain_loom_tests::Scenario;
pub use wsdrain_loom_tests::cell::Oracle;
use wsdrain_loom_tests::cell::{CellCommand, CellOutcome, CellResult, Checker};

/// The checker this test binary was built for.
pub const CHECKER: Checker = match Checker::COMPILED {
    Some(checker) => checker,
    None => panic!("the model suites are built only with a checker's cfg"),
};

/// Run one cell in its own `wsdrain-cell` process; its result line.
pub fn cell(command: &CellCommand) -> CellResult {
    command
        .execute(Path::new(env!("CARGO_BIN_EXE_wsdrain-cell")))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The fixed client passes `scenario`: under loom exhaustively at
/// [`Scenario::suite_loom_bound`] (overridden by `LOOM_MAX_PREEMPTIONS`), under
/// shuttle for `SHUTTLE_ITERATIONS` (default 2000) PCT executions of depth 3.
pub fn fixed_client_passes(scenario: Scenario) -> CellResult {
    let command = CellCommand::run(scenario, "fixed").no_trace();
    let command = match CHECKER {
        Checker::Loom => {
            command.bound(env_usize("LOOM_MAX_PREEMPTIONS").unwrap_or(scenario.suite_loom_bound()))
        }
        Checker::Shuttle => command
            .depth(3)
            .iterations(env_usize("SHUTTLE_ITERATIONS").unwrap_or(2000)),
    };
    let result = cell(&command);
    assert_eq!(
        result.result,
        CellOutcome::Pass,
        "the fixed client failed {scenario} under {CHECKER}:\n{}",
        result.report.clone().unwrap_or_default()
    );
    assert!(result.executions > 0, "no execution was explored");
    // The scenario reaches every race window it exists to hit.
    assert!(
        !result.coverage.is_empty(),
        "{scenario} names no race window"
    );
    for window in &result.coverage {
        assert!(
            window.hits > 0,
            "{scenario} never hit its race window \"{}\" in {} {CHECKER} executions",
            window.window,
            result.executions
        );
    }
    result
}

/// `bug` is caught in `scenario` by `oracle`, with a readable
/// counterexample and a replay command. loom: bounds 0..=3; shuttle: for
/// each of three seeds, a portfolio of PCT depth 3, PCT depth 2 and the
/// random scheduler (5,000 executions each) must catch it.
pub fn bug_is_caught(scenario: Scenario, bug: Bug, oracle: Oracle) -> CellResult {
    bug_is_caught_by_one_of(scenario, bug, &[oracle])
}

/// [`bug_is_caught`] for a bug that shows in this scenario as whichever of
/// `oracles` the schedule found first (each run must name one of them).
pub fn bug_is_caught_by_one_of(scenario: Scenario, bug: Bug, oracles: &[Oracle]) -> CellResult {
    assert!(
        scenario.applies_under(CHECKER, bug),
        "{bug} cannot occur in {scenario} under {CHECKER}"
    );
    let runs: Vec<Vec<CellCommand>> = match CHECKER {
        Checker::Loom => vec![vec![
            CellCommand::run(scenario, bug.id())
                .bound(3)
                .deepen()
                .checkpoint()
                .max_seconds(120),
        ]],
        Checker::Shuttle => (0..3)
            .map(|seed| {
                [3, 2, 0]
                    .map(|depth| {
                        CellCommand::run(scenario, bug.id())
                            .depth(depth)
                            .iterations(5000)
                            .seed(seed)
                    })
                    .to_vec()
            })
            .collect(),
    };
    let mut last = None;
    for portfolio in runs {
        let mut result = None;
        for command in portfolio {
            let r = cell(&command);
            let caught = r.caught();
            result = Some(r);
            if caught {
                break;
            }
        }
        let result = result.expect("a portfolio has a strategy");
        assert_eq!(
            result.result,
            CellOutcome::Caught,
            "{bug} escaped {CHECKER} in {scenario} ({} executions, {})",
            result.executions,
            result.strategy
        );
        let oracle = result
            .oracle
            .filter(|o| oracles.contains(o))
            .unwrap_or_else(|| {
                panic!(
                    "{bug} in {scenario} was caught by the wrong oracle ({:?}, expected one of {oracles:?}): {:?}",
                    result.oracle, result.message
                )
            });
        let report = result.report.as_deref().expect("a counterexample report");
        assert!(report.contains(&format!("oracle: {oracle}")), "{report}");
        assert!(
            report.contains("interleaving ("),
            "no interleaving in:\n{report}"
        );
        assert!(
            report.contains("replay: cargo xtask replay"),
            "no replay command in:\n{report}"
        );
        assert!(
            result.artifact.as_ref().is_some_and(|a| a.exists()),
            "no replay artifact"
        );
        last = Some(result);
    }
    last.expect("at least one run")
}

/// Replay a caught counterexample from its artifact; returns the replayed
/// result.
pub fn replay(found: &CellResult) -> CellResult {
    let artifact = found.artifact.as_ref().expect("an artifact");
    cell(&CellCommand::replay(
        &found.scenario,
        &found.variant,
        artifact,
    ))
}
