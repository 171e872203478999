//! Shared helpers of the model-checking suites: each test runs one cell of
//! the matrix in its own `wsdrain-cell` process (loom reports deadlocks by
//! aborting the process) and asserts on its result line.
#![allow(dead_code)]

use std::process::Command;

use wsdrain_loom_tests::cell::CellResult;

/// The checker this test binary was built for.
pub const CHECKER: &str = if cfg!(wsdrain_loom) {
    "loom"
} else {
    "shuttle"
};

fn cell(args: &[String]) -> CellResult {
    let output = Command::new(env!("CARGO_BIN_EXE_wsdrain-cell"))
        .args(args)
        .output()
        .expect("run wsdrain-cell");
    let stdout = String::from_utf8_lossy(&output.stdout);
    CellResult::parse(&stdout).unwrap_or_else(|| {
        panic!(
            "wsdrain-cell {} gave no result ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn base(scenario: &str, variant: &str) -> Vec<String> {
    ["run", "--scenario", scenario, "--variant", variant]
        .map(String::from)
        .to_vec()
}

/// The fixed client passes `scenario`: under loom exhaustively at
/// `loom_bound` (overridden by `LOOM_MAX_PREEMPTIONS`), under shuttle for
/// `SHUTTLE_ITERATIONS` (default 2000) PCT executions of depth 3.
pub fn fixed_client_passes(scenario: &str, loom_bound: usize) -> CellResult {
    let mut args = base(scenario, "fixed");
    if CHECKER == "loom" {
        let bound = env_usize("LOOM_MAX_PREEMPTIONS").unwrap_or(loom_bound);
        args.extend(["--bound".into(), bound.to_string(), "--no-trace".into()]);
    } else {
        let iterations = env_usize("SHUTTLE_ITERATIONS").unwrap_or(2000);
        args.extend([
            "--depth".into(),
            "3".into(),
            "--iterations".into(),
            iterations.to_string(),
        ]);
    }
    let result = cell(&args);
    assert_eq!(
        result.result,
        "pass",
        "the fixed client failed {scenario} under {CHECKER}:\n{}",
        result.report.clone().unwrap_or_default()
    );
    assert!(result.executions > 0, "no execution was explored");
    result
}

/// `bug` is caught in `scenario` by the oracle named `oracle`, with a
/// readable counterexample and a replay command. loom: bounds 0..=3;
/// shuttle: for each of three seeds, a portfolio of PCT depth 3, PCT depth
/// 2 and the random scheduler (5,000 executions each) must catch it.
pub fn bug_is_caught(scenario: &str, bug: &str, oracle: &str) -> CellResult {
    let runs: Vec<Vec<Vec<String>>> = if CHECKER == "loom" {
        let mut args = base(scenario, bug);
        args.extend(
            [
                "--bound",
                "3",
                "--deepen",
                "--checkpoint",
                "--max-seconds",
                "120",
            ]
            .map(String::from),
        );
        vec![vec![args]]
    } else {
        (0..3)
            .map(|seed| {
                [3, 2, 0]
                    .map(|depth| {
                        let mut args = base(scenario, bug);
                        args.extend([
                            "--depth".into(),
                            depth.to_string(),
                            "--iterations".into(),
                            "5000".into(),
                        ]);
                        args.extend(["--seed".into(), seed.to_string()]);
                        args
                    })
                    .to_vec()
            })
            .collect()
    };
    let mut last = None;
    for portfolio in runs {
        let mut result = None;
        for args in portfolio {
            let r = cell(&args);
            let caught = r.result == "caught";
            result = Some(r);
            if caught {
                break;
            }
        }
        let result = result.expect("a portfolio has a strategy");
        assert_eq!(
            result.result, "caught",
            "{bug} escaped {CHECKER} in {scenario} ({} executions, {})",
            result.executions, result.strategy
        );
        assert_eq!(
            result.oracle.as_deref(),
            Some(oracle),
            "{bug} in {scenario} was caught by the wrong oracle: {:?}",
            result.message
        );
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
    cell(&[
        "replay".into(),
        "--scenario".into(),
        found.scenario.clone(),
        "--variant".into(),
        found.variant.clone(),
        artifact.display().to_string(),
    ])
}
