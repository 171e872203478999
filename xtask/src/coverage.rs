//! Race-window coverage of the fixed-client runs: per scenario and window,
//! how many explored executions hit it under each checker (the windows are
//! named in `loom-tests/src/scenarios.rs`, counted by the cell runner).
//!
//! A fixed-client run that explored executions but never hit one of its
//! scenario's windows fails the verdict: the scenario does not reach the
//! race it exists to test.

use std::fmt::Write as _;

use serde::Serialize;
use wsdrain_loom_tests::Scenario;
use wsdrain_loom_tests::cell::{CellOutcome, CellResult, Checker};

use crate::matrix::{Job, JobKind};

/// Executions that hit a window, out of the executions explored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hits {
    pub hits: usize,
    pub executions: usize,
}

/// One window of one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoverageRow {
    pub scenario: String,
    pub window: String,
    /// `None`: not run under loom (or the window is shuttle's only).
    pub loom: Option<Hits>,
    pub shuttle: Option<Hits>,
}

impl CoverageRow {
    fn hits_mut(&mut self, checker: Checker) -> &mut Option<Hits> {
        match checker {
            Checker::Loom => &mut self.loom,
            Checker::Shuttle => &mut self.shuttle,
        }
    }

    pub fn hits(&self, checker: Checker) -> Option<Hits> {
        match checker {
            Checker::Loom => self.loom,
            Checker::Shuttle => self.shuttle,
        }
    }
}

/// The coverage of the fixed-client runs among `results` (summed over
/// runs of the same scenario and checker, e.g. shards), in scenario order,
/// and a problem for every window a completed run never hit.
pub fn build(
    results: &[(Job, CellResult)],
    scenarios: &[Scenario],
    problems: &mut Vec<String>,
) -> Vec<CoverageRow> {
    let mut rows: Vec<CoverageRow> = Vec::new();
    for &scenario in scenarios {
        for (job, result) in results {
            if job.kind != JobKind::Fixed
                || result.scenario != scenario.id()
                || result.variant != "fixed"
                // A failed run stopped at its failure (already a problem).
                || result.result == CellOutcome::Caught
            {
                continue;
            }
            for window in &result.coverage {
                let at = rows
                    .iter()
                    .position(|r| r.scenario == result.scenario && r.window == window.window)
                    .unwrap_or_else(|| {
                        rows.push(CoverageRow {
                            scenario: result.scenario.clone(),
                            window: window.window.clone(),
                            loom: None,
                            shuttle: None,
                        });
                        rows.len() - 1
                    });
                let hits = rows[at].hits_mut(result.checker).get_or_insert(Hits {
                    hits: 0,
                    executions: 0,
                });
                hits.hits += window.hits;
                hits.executions += result.executions;
            }
        }
    }
    for row in &rows {
        for checker in Checker::ALL {
            if let Some(hits) = row.hits(checker)
                && hits.hits == 0
                && hits.executions > 0
            {
                let scenario = Scenario::from_name(&row.scenario)
                    .map_or(row.scenario.clone(), |s| s.to_string());
                problems.push(format!(
                    "{scenario}: the race window \"{}\" was never hit in {} {checker} executions of the fixed client; \
                     a scenario that cannot reach its window does not test it (fix the scenario, or the window's \
                     events in loom-tests/src/scenarios.rs)",
                    row.window, hits.executions
                ));
            }
        }
    }
    rows
}

fn cell(hits: Option<Hits>) -> String {
    match hits {
        None => "-".into(),
        Some(Hits {
            hits: 0,
            executions,
        }) => format!("NEVER / {executions}"),
        Some(Hits { hits, executions }) => format!("{hits} / {executions}"),
    }
}

/// The coverage table for the terminal.
pub fn render(rows: &[CoverageRow]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nrace-window coverage (fixed client): executions that hit each window / executions explored"
    );
    let window_width = rows
        .iter()
        .map(|r| r.window.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "{:<9}{:<window_width$}  {:>18}  {:>18}",
        "scenario", "window", "loom", "shuttle"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<9}{:<window_width$}  {:>18}  {:>18}",
            row.scenario,
            row.window,
            cell(row.loom),
            cell(row.shuttle)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsdrain_loom_tests::cell::CellCommand;
    use wsdrain_loom_tests::windows::WindowHits;

    fn fixed(checker: Checker, scenario: Scenario, hits: &[(&str, usize)]) -> (Job, CellResult) {
        let mut result = CellResult::new(
            checker,
            scenario.id(),
            "fixed".into(),
            "loom bound 1".into(),
        );
        result.executions = 100;
        result.coverage = hits
            .iter()
            .map(|(window, hits)| WindowHits {
                window: (*window).into(),
                hits: *hits,
            })
            .collect();
        let job = Job {
            checker,
            command: CellCommand::run(scenario, "fixed"),
            kind: JobKind::Fixed,
        };
        (job, result)
    }

    #[test]
    fn an_unreached_window_fails_the_run_and_names_scenario_and_window() {
        let results = vec![
            fixed(
                Checker::Loom,
                Scenario::S1CloseVsStream,
                &[
                    ("close() before the check", 3),
                    ("close() after the start", 97),
                ],
            ),
            fixed(
                Checker::Shuttle,
                Scenario::S1CloseVsStream,
                &[
                    ("close() before the check", 0),
                    ("close() after the start", 40),
                ],
            ),
        ];
        let mut problems = Vec::new();
        let rows = build(&results, &[Scenario::S1CloseVsStream], &mut problems);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].loom,
            Some(Hits {
                hits: 3,
                executions: 100
            })
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        let problem = &problems[0];
        assert!(problem.contains("S1 close-vs-stream"), "{problem}");
        assert!(
            problem.contains("\"close() before the check\""),
            "{problem}"
        );
        assert!(problem.contains("shuttle"), "{problem}");
        let table = render(&rows);
        assert!(table.contains("NEVER / 100"), "{table}");
        assert!(table.contains("97 / 100"), "{table}");
    }

    #[test]
    fn a_fixed_run_that_never_hit_a_window_fails_verify() {
        use crate::shard::tests::{args, catalogs, whole_run};
        let args = args(&["--seeds", "2"]);
        let scenarios = crate::matrix::selected(&args, &Scenario::ALL).unwrap();
        // The synthetic run without its escaped bug: a clean verdict.
        let mut results: Vec<(Job, CellResult)> = whole_run(&args)
            .into_iter()
            .filter(|(_, r)| r.variant == "fixed" || r.caught())
            .collect();
        let build = |results: &[(Job, CellResult)]| {
            crate::report::Report::build(
                &args,
                &scenarios,
                &catalogs(),
                results.to_vec(),
                std::time::Duration::from_secs(1),
            )
        };
        let clean = build(&results);
        assert!(clean.ok, "{:?}", clean.problems);
        let (_, loom_s7) = results
            .iter_mut()
            .find(|(job, r)| {
                job.kind == JobKind::Fixed && r.checker == Checker::Loom && r.scenario == "S7"
            })
            .expect("a fixed loom run of S7");
        loom_s7.coverage[1].hits = 0;
        let report = build(&results);
        assert!(!report.ok);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(
            report.problems[0].starts_with(
                "S7 close-from-handler: the race window \"close() after the start\" was never hit in"
            ),
            "{}",
            report.problems[0]
        );
        assert!(report.problems[0].contains(" loom executions"));
    }

    #[test]
    fn every_window_hit_is_no_problem_and_runs_add_up() {
        let results = vec![
            fixed(Checker::Loom, Scenario::S2CloseDuringDial, &[("w", 1)]),
            fixed(Checker::Loom, Scenario::S2CloseDuringDial, &[("w", 2)]),
        ];
        let mut problems = Vec::new();
        let rows = build(&results, &[Scenario::S2CloseDuringDial], &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            rows[0].loom,
            Some(Hits {
                hits: 3,
                executions: 200
            })
        );
        assert_eq!(rows[0].shuttle, None);
    }
}
