//! The verdict table and the budgets, for the terminal and as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use wsdrain_loom_tests::Scenario;
use wsdrain_loom_tests::cell::{Catalog, CellOutcome, CellResult, Checker, Oracle};

use crate::matrix::{Job, JobKind, VerifyArgs};

/// The verdict of one cell of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    /// The fixed client passed.
    #[serde(rename = "pass")]
    Pass,
    /// The bug was caught.
    #[serde(rename = "caught")]
    Caught,
    /// A time limit stopped the exploration (fixed client, loom).
    #[serde(rename = "incomplete")]
    Incomplete,
    /// The fixed client failed.
    #[serde(rename = "FAILED")]
    Failed,
    /// A bug was not caught.
    #[serde(rename = "ESCAPED")]
    Escaped,
    /// The bug cannot occur in this scenario (the note says why).
    #[serde(rename = "n/a")]
    NotApplicable,
}

impl Status {
    /// The class of a cell with this verdict in `report.html`.
    pub fn css_class(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Caught => "caught",
            Status::Incomplete => "incomplete",
            Status::Failed => "FAILED",
            Status::Escaped => "ESCAPED",
            Status::NotApplicable => "na",
        }
    }
}

/// One cell of a table.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub scenario: String,
    pub status: Status,
    pub oracle: Option<Oracle>,
    /// loom: executions of the run (to detection, for bugs).
    pub executions: Option<usize>,
    /// loom: the bound that found the bug.
    pub bound: Option<usize>,
    pub elapsed_ms: Option<f64>,
    /// shuttle bugs: executions to detection per PCT depth over the seeds.
    pub pct: Vec<PctStats>,
    pub note: Option<String>,
}

impl Cell {
    /// The cell of a single run (loom, or the fixed client under shuttle).
    fn from_run(status: Status, run: &CellResult) -> Cell {
        Cell {
            scenario: run.scenario.clone(),
            status,
            oracle: run.oracle,
            executions: Some(run.executions),
            bound: run.bound,
            elapsed_ms: Some(run.elapsed_ms),
            pct: vec![],
            note: None,
        }
    }
}

/// Executions to detection over the seeds, at one PCT depth.
#[derive(Debug, Clone, Serialize)]
pub struct PctStats {
    pub depth: usize,
    pub seeds: usize,
    pub caught: usize,
    pub median: f64,
    pub max: usize,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub variant: String,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub checker: Checker,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Counterexample {
    pub checker: Checker,
    pub scenario: String,
    pub variant: String,
    pub report: String,
    pub replay: Option<String>,
    /// The interleaving as data (drawn in the HTML report).
    pub listing: Option<wsdrain_loom_tests::listing::Listing>,
}

impl Counterexample {
    /// The counterexample of a failed run, whose report is `report`.
    pub(crate) fn of(run: &CellResult, report: &str) -> Counterexample {
        Counterexample {
            checker: run.checker,
            scenario: run.scenario.clone(),
            variant: run.variant.clone(),
            report: report.to_owned(),
            replay: run.replay.clone(),
            listing: run.listing.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub problems: Vec<String>,
    pub elapsed_s: f64,
    pub cores: usize,
    pub settings: Settings,
    pub tables: Vec<Table>,
    pub budgets: Vec<String>,
    /// loom: per scenario, the largest bound that finished within the limit.
    pub largest_bounds: Vec<(String, Option<usize>)>,
    pub counterexamples: Vec<Counterexample>,
    /// The generated explorer's block (`crate::generated`).
    pub generated: Vec<crate::generated::GeneratedCell>,
    /// Race-window coverage of the fixed-client runs.
    pub coverage: Vec<crate::coverage::CoverageRow>,
    /// The cells and settings it was built from (what `merge` reads).
    pub run: Option<crate::shard::RunRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub loom_bound: Option<usize>,
    pub loom_bug_bound: usize,
    pub loom_seconds: u64,
    pub shuttle_executions: usize,
    pub seeds: u64,
    pub bug_iterations: usize,
    /// Generated programs under shuttle, and schedules per program.
    pub programs: u64,
    pub schedules: usize,
    /// Generated programs under loom, and their bound.
    pub loom_programs: u64,
    pub loom_program_bound: usize,
}

fn median(values: &mut [usize]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable();
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2] as f64
    } else {
        (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0
    }
}

impl Report {
    pub fn build(
        args: &VerifyArgs,
        scenarios: &[Scenario],
        catalogs: &[Catalog],
        results: Vec<(Job, CellResult)>,
        elapsed: Duration,
    ) -> Report {
        let mut problems = Vec::new();
        let mut tables = Vec::new();
        let mut counterexamples = Vec::new();
        let mut budgets = Vec::new();
        let find =
            |checker: Checker, scenario: &str, variant: &str, kind: &dyn Fn(&JobKind) -> bool| {
                results
                    .iter()
                    .filter(|(job, r)| {
                        job.checker == checker
                            && r.scenario == scenario
                            && r.variant == variant
                            && kind(&job.kind)
                    })
                    .map(|(_, r)| r.clone())
                    .collect::<Vec<_>>()
            };
        for catalog in catalogs {
            let checker = catalog.checker;
            let mut rows = Vec::new();
            let variants: Vec<String> = std::iter::once("fixed".to_owned())
                .chain(catalog.bugs.iter().map(|b| b.id.clone()))
                .collect();
            for variant in &variants {
                let bug = catalog.bug(variant);
                let mut cells = Vec::new();
                for &scenario in scenarios {
                    let sid = scenario.id();
                    if let Some(reason) = bug.and_then(|b| b.not_applicable_because(scenario)) {
                        cells.push(Cell {
                            scenario: sid.into(),
                            status: Status::NotApplicable,
                            oracle: None,
                            executions: None,
                            bound: None,
                            elapsed_ms: None,
                            pct: vec![],
                            note: Some(reason.into()),
                        });
                        continue;
                    }
                    let runs = if bug.is_none() {
                        find(checker, sid, variant, &|k| *k == JobKind::Fixed)
                    } else {
                        find(checker, sid, variant, &|k| matches!(k, JobKind::Bug { .. }))
                    };
                    let cell = if bug.is_none() {
                        // One cell for all the fixed client's runs of the
                        // scenario (shuttle: PCT and random): a failure if
                        // any failed, else their executions and time summed.
                        let Some(first) = runs.first() else { continue };
                        let r = runs
                            .iter()
                            .find(|r| r.result == CellOutcome::Caught)
                            .or_else(|| runs.iter().find(|r| r.result == CellOutcome::Incomplete))
                            .unwrap_or(first);
                        let status = match r.result {
                            CellOutcome::Caught => {
                                problems.push(format!(
                                    "the fixed client failed {sid} under {checker}: {}",
                                    r.message.clone().unwrap_or_default()
                                ));
                                if let Some(report) = &r.report {
                                    counterexamples.push(Counterexample::of(r, report));
                                }
                                Status::Failed
                            }
                            CellOutcome::Pass => Status::Pass,
                            CellOutcome::Incomplete => Status::Incomplete,
                        };
                        let mut cell = Cell::from_run(status, r);
                        if status != Status::Failed {
                            cell.executions = Some(runs.iter().map(|r| r.executions).sum());
                            cell.elapsed_ms = Some(runs.iter().map(|r| r.elapsed_ms).sum());
                        }
                        cell
                    } else if checker == Checker::Loom {
                        let Some(r) = runs.first() else { continue };
                        let status = if r.caught() {
                            if let Some(report) = &r.report {
                                counterexamples.push(Counterexample::of(r, report));
                            }
                            Status::Caught
                        } else {
                            problems.push(format!(
                                "{variant} escaped loom in {sid} ({} executions up to bound {:?})",
                                r.executions, r.bound
                            ));
                            Status::Escaped
                        };
                        Cell::from_run(status, r)
                    } else {
                        let mut pct = Vec::new();
                        let mut oracle = None;
                        // Caught per seed by any strategy (a portfolio, like
                        // shuttle's PortfolioRunner).
                        let mut seeds_caught = std::collections::BTreeSet::<Option<u64>>::new();
                        let mut seeds_run = std::collections::BTreeSet::<Option<u64>>::new();
                        for depth in [2, 3, 0] {
                            let runs =
                                find(checker, sid, variant, &|k| *k == JobKind::Bug { depth });
                            for r in &runs {
                                if r.caught() {
                                    seeds_caught.insert(r.seed);
                                }
                                seeds_run.insert(r.seed);
                            }
                            let mut caught: Vec<usize> = runs
                                .iter()
                                .filter(|r| r.caught())
                                .map(|r| r.executions)
                                .collect();
                            if let Some(r) = runs.iter().find(|r| r.caught()) {
                                oracle = oracle.or(r.oracle);
                                let first_of_variant = !counterexamples
                                    .iter()
                                    .any(|c| c.checker == checker && c.variant == *variant);
                                if first_of_variant && let Some(report) = &r.report {
                                    counterexamples.push(Counterexample::of(r, report));
                                }
                            }
                            let n = caught.len();
                            pct.push(PctStats {
                                depth,
                                seeds: runs.len(),
                                caught: n,
                                median: median(&mut caught),
                                max: caught.iter().copied().max().unwrap_or(0),
                                elapsed_ms: runs.iter().map(|r| r.elapsed_ms).sum(),
                            });
                        }
                        let escaped = seeds_caught.len() < seeds_run.len();
                        if escaped {
                            problems.push(format!(
                                "{variant} escaped every shuttle scheduler in {sid} for {} of {} seeds ({} executions each)",
                                seeds_run.len() - seeds_caught.len(),
                                seeds_run.len(),
                                args.bug_iterations
                            ));
                        }
                        Cell {
                            scenario: sid.into(),
                            status: if escaped {
                                Status::Escaped
                            } else {
                                Status::Caught
                            },
                            oracle,
                            executions: None,
                            bound: None,
                            elapsed_ms: Some(pct.iter().map(|p| p.elapsed_ms).sum()),
                            pct,
                            note: None,
                        }
                    };
                    cells.push(cell);
                }
                rows.push(Row {
                    variant: variant.clone(),
                    cells,
                });
            }
            tables.push(Table { checker, rows });
        }

        let generated = crate::generated::build(
            args,
            catalogs,
            &results,
            &mut problems,
            &mut counterexamples,
        );
        let coverage = crate::coverage::build(&results, scenarios, &mut problems);

        // Budgets, as figures.
        let mut largest_bounds = Vec::new();
        for table in &tables {
            let fixed = &table.rows[0];
            let total_ms: f64 = fixed.cells.iter().filter_map(|c| c.elapsed_ms).sum();
            let total_ex: usize = fixed.cells.iter().filter_map(|c| c.executions).sum();
            let incomplete: Vec<&str> = fixed
                .cells
                .iter()
                .filter(|c| c.status == Status::Incomplete)
                .map(|c| c.scenario.as_str())
                .collect();
            if table.checker == Checker::Loom {
                let bounds: Vec<String> = fixed
                    .cells
                    .iter()
                    .map(|c| format!("{} b{}", c.scenario, c.bound.unwrap_or(0)))
                    .collect();
                budgets.push(format!(
                    "loom, fixed client, exhaustive at preemption bounds [{}]: {total_ex} executions in {:.1} s over {} scenarios (goal at bound 3 everywhere: <= 60 s){}",
                    bounds.join(", "),
                    total_ms / 1e3,
                    fixed.cells.len(),
                    if incomplete.is_empty() { String::new() } else { format!("; hit the {} s limit: {}", args.loom_seconds, incomplete.join(", ")) }
                ));
                let bug_ms: Vec<f64> = table.rows[1..]
                    .iter()
                    .flat_map(|r| r.cells.iter())
                    .filter(|c| c.status == Status::Caught)
                    .filter_map(|c| c.elapsed_ms)
                    .collect();
                let worst = bug_ms.iter().copied().fold(0.0, f64::max);
                budgets.push(format!(
                    "loom, bugs: every catch took <= {:.0} ms (goal: <= 2 s each)",
                    worst
                ));
            } else {
                budgets.push(format!(
                    "shuttle, fixed client: {total_ex} executions (half PCT depth 3, half random) in {:.1} s, zero failures: {} (goal: 100000 in <= 60 s)",
                    total_ms / 1e3,
                    if fixed.cells.iter().all(|c| c.status == Status::Pass) { "yes" } else { "NO" }
                ));
                for depth in [2, 3, 0] {
                    let mut medians = Vec::new();
                    for row in &table.rows[1..] {
                        for cell in &row.cells {
                            if let Some(p) = cell.pct.iter().find(|p| p.depth == depth) {
                                let cell_id = format!("{}/{}", row.variant, cell.scenario);
                                medians.push(if p.caught == 0 {
                                    format!("{cell_id} - (0 of {} seeds)", p.seeds)
                                } else if p.caught < p.seeds {
                                    format!(
                                        "{cell_id} {}/{} ({} of {} seeds)",
                                        p.median, p.max, p.caught, p.seeds
                                    )
                                } else {
                                    format!("{cell_id} {}/{}", p.median, p.max)
                                });
                            }
                        }
                    }
                    let name = if depth == 0 {
                        "random scheduler".to_owned()
                    } else {
                        format!("PCT depth {depth}")
                    };
                    budgets.push(format!("shuttle {name}, executions to detection (median/max over {} seeds; - = not caught in {} executions): {}", args.seeds, args.bug_iterations, medians.join(", ")));
                }
            }
        }
        for &scenario in scenarios {
            let mut best = None;
            for bound in 0..=5 {
                let runs = find(Checker::Loom, scenario.id(), "fixed", &|k| {
                    *k == JobKind::Bound { bound }
                });
                if let Some(r) = runs.first()
                    && r.result == CellOutcome::Pass
                {
                    best = Some(bound);
                }
            }
            if args.find_bounds {
                largest_bounds.push((scenario.id().to_owned(), best));
            }
        }
        Report {
            ok: problems.is_empty(),
            problems,
            elapsed_s: elapsed.as_secs_f64(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            settings: Settings {
                loom_bound: args.bound,
                loom_bug_bound: args.bug_bound,
                loom_seconds: args.loom_seconds,
                shuttle_executions: args.shuttle_executions,
                seeds: args.seeds,
                bug_iterations: args.bug_iterations,
                programs: args.programs,
                schedules: args.schedules,
                loom_programs: args.loom_programs,
                loom_program_bound: args.loom_program_bound,
            },
            generated,
            tables,
            budgets,
            largest_bounds,
            counterexamples,
            coverage,
            run: None,
        }
    }
}

pub(crate) fn short(oracle: Option<Oracle>) -> &'static str {
    match oracle {
        Some(Oracle::DrainBarrier) => "drain",
        Some(Oracle::NoOrphan) => "orphan",
        Some(Oracle::Identity) => "identity",
        Some(Oracle::WaitGroupMisuse) => "wg-misuse",
        Some(Oracle::Liveness) => "liveness",
        Some(Oracle::NoZombie) => "zombie",
        Some(Oracle::ReadyAtBarrier) => "not-ready",
        Some(Oracle::InputHonesty) => "input",
        Some(Oracle::ManagerPromise) => "mgr-promise",
        Some(Oracle::Model) => "model",
        // An oracle this report does not know yet, or an unexpected panic.
        Some(_) | None => "panic",
    }
}

fn human(n: usize) -> String {
    if n >= 10_000 {
        format!("{:.0}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

fn time(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1}s", ms / 1e3)
    } else {
        format!("{ms:.0}ms")
    }
}

pub(crate) fn cell_text(checker: Checker, cell: &Cell) -> String {
    match cell.status {
        Status::NotApplicable => "n/a".into(),
        Status::Pass => format!(
            "pass {} {}",
            human(cell.executions.unwrap_or(0)),
            time(cell.elapsed_ms.unwrap_or(0.0))
        ),
        Status::Incomplete => format!(
            "part {} {}",
            human(cell.executions.unwrap_or(0)),
            time(cell.elapsed_ms.unwrap_or(0.0))
        ),
        Status::Failed => format!("FAIL {}", short(cell.oracle)),
        Status::Escaped => "ESCAPED".into(),
        Status::Caught if checker == Checker::Loom => format!(
            "{} {}x {}",
            short(cell.oracle),
            cell.executions.unwrap_or(0),
            time(cell.elapsed_ms.unwrap_or(0.0))
        ),
        Status::Caught => {
            let med: Vec<String> = cell
                .pct
                .iter()
                .map(|p| {
                    if p.caught == 0 {
                        "-".to_owned()
                    } else {
                        format!("{}", p.median)
                    }
                })
                .collect();
            format!("{} m{}", short(cell.oracle), med.join("/"))
        }
    }
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for table in &report.tables {
        let heading = if table.checker == Checker::Loom {
            format!(
                "loom (fixed: exhaustive at preemption bound {}; bugs: bounds 0..={} until caught). cell: oracle, executions to detection, wall time",
                report
                    .settings
                    .loom_bound
                    .map_or("per scenario (see budgets)".to_owned(), |b| b.to_string()),
                report.settings.loom_bug_bound
            )
        } else {
            format!(
                "shuttle (fixed: half PCT depth 3, half random; bugs: PCT depth 2, 3 and random x {} seeds). cell: oracle, median executions to detection d2/d3/random",
                report.settings.seeds
            )
        };
        let _ = writeln!(out, "\n{heading}");
        // Wide enough for the longest cell and a space (a cell such as
        // `wg-misuse 31506x 3.0s` ran into its neighbour at a fixed 18).
        let width = table
            .rows
            .iter()
            .flat_map(|row| &row.cells)
            .map(|cell| cell_text(table.checker, cell).chars().count() + 1)
            .max()
            .unwrap_or(0)
            .max(18);
        let _ = write!(out, "{:<8}", "");
        if let Some(row) = table.rows.first() {
            for cell in &row.cells {
                let _ = write!(out, "{:<width$}", cell.scenario);
            }
        }
        let _ = writeln!(out);
        for row in &table.rows {
            let _ = write!(out, "{:<8}", row.variant);
            for cell in &row.cells {
                let _ = write!(out, "{:<width$}", cell_text(table.checker, cell));
            }
            let _ = writeln!(out);
        }
    }
    crate::generated::render(&report.settings, &report.generated, &mut out);
    out.push_str(&crate::coverage::render(&report.coverage));
    let _ = writeln!(out, "\nbudgets (this machine: {} cores):", report.cores);
    for line in &report.budgets {
        let _ = writeln!(out, "  - {line}");
    }
    if !report.largest_bounds.is_empty() {
        let list: Vec<String> = report
            .largest_bounds
            .iter()
            .map(|(s, b)| format!("{s} {}", b.map_or("none".into(), |b| b.to_string())))
            .collect();
        let _ = writeln!(
            out,
            "  - loom, largest preemption bound finishing within {} s: {}",
            report.settings.loom_seconds,
            list.join(", ")
        );
    }
    let _ = writeln!(out, "\nscenarios:");
    for s in Scenario::ALL {
        let _ = writeln!(out, "  {s}: {}", s.explores());
    }
    out
}

pub fn print(report: &Report) {
    println!("{}", render(report));
    if let Some(example) = report
        .counterexamples
        .iter()
        .find(|c| c.checker == Checker::Loom && c.variant == "H5")
        .or(report.counterexamples.first())
    {
        println!(
            "example counterexample (all of them are in the JSON report):\n\n{}",
            example.report
        );
    }
    if report.ok {
        println!(
            "verdict: OK: the fixed client passes every scenario; every applicable bug is caught by every checker run ({:.0} s)",
            report.elapsed_s
        );
    } else {
        println!("verdict: FAILED");
        for problem in &report.problems {
            println!("  - {problem}");
        }
    }
}
