//! Building the cell runners and running the verification matrix.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wsdrain_loom_tests::Scenario;
use wsdrain_loom_tests::cell::{Catalog, CellCommand, CellResult, Checker};
use wsdrain_loom_tests::listing::ListingStyle;

use crate::progress::{CellTimes, Expected, Progress};
use crate::report::{self, Report};
use crate::shard::{RunRecord, Shard};

/// `cargo` arguments that build the cell runner (under the checker's
/// RUSTFLAGS and target dir).
pub const BUILD_CELL: [&str; 7] = [
    "build",
    "--quiet",
    "--release",
    "-p",
    "wsdrain-loom-tests",
    "--bin",
    "wsdrain-cell",
];

/// Knobs of `cargo xtask verify`.
#[derive(clap::Args, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VerifyArgs {
    /// loom: preemption bound for the exhaustive runs of the fixed client
    /// (default: per scenario, the largest that fits the verify budget on two
    /// cores: `Scenario::loom_bound`).
    #[arg(long, env = "LOOM_MAX_PREEMPTIONS")]
    pub bound: Option<usize>,
    /// loom: largest bound tried (iteratively, from 0) when hunting a bug.
    #[arg(long, default_value_t = 3)]
    pub bug_bound: usize,
    /// loom: per-run time limit, seconds (a fixed-client run that hits it is
    /// reported as incomplete). S11 at bound 2 takes about 530 s on two
    /// cores at load 1-2; the limit leaves room for a slower machine.
    #[arg(long, default_value_t = 900)]
    pub loom_seconds: u64,
    /// loom: also find, per scenario, the largest bound that finishes within
    /// --loom-seconds (slow: up to that long per scenario and bound).
    #[arg(long)]
    pub find_bounds: bool,
    /// shuttle: executions of the fixed client, over all scenarios (half
    /// PCT depth 3, half the random scheduler).
    #[arg(long, default_value_t = 100_000)]
    pub shuttle_executions: usize,
    /// shuttle: seeds per bug, scenario and PCT depth.
    #[arg(long, default_value_t = 21)]
    pub seeds: u64,
    /// shuttle: executions allowed per seed before a bug counts as escaped.
    #[arg(long, default_value_t = 10_000)]
    pub bug_iterations: usize,
    /// Generated programs: how many the shuttle explorer runs (program i
    /// comes from a fixed seed: the same flags give the same programs).
    #[arg(long, default_value_t = 1000)]
    #[serde(default = "default_programs")]
    pub programs: u64,
    /// Generated programs: shuttle executions per program (half PCT depth
    /// 3, half random).
    #[arg(long, default_value_t = 100)]
    #[serde(default = "default_schedules")]
    pub schedules: usize,
    /// Generated programs: how many loom explores (those that fit its
    /// five threads).
    #[arg(long, default_value_t = 24)]
    #[serde(default = "default_loom_programs")]
    pub loom_programs: u64,
    /// Generated programs: loom's preemption bound (at 2 one program can
    /// take minutes).
    #[arg(long, default_value_t = 1)]
    #[serde(default = "default_loom_program_bound")]
    pub loom_program_bound: usize,
    /// Parallel cell processes (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Only these scenarios (e.g. `--scenario S1 --scenario S7`).
    #[arg(long)]
    pub scenario: Vec<String>,
    /// Only these checkers (`loom`, `shuttle`).
    #[arg(long, value_parser = parse_checker)]
    pub checker: Vec<Checker>,
    /// Where to write the JSON report (with `--shard I/N`, by default
    /// `target/wsdrain/verify-shard-I-of-N.json`).
    #[arg(long, default_value = "target/wsdrain/verify.json")]
    pub json: PathBuf,
    /// Run only shard I of N of the cells (e.g. `--shard 2/4`, one per CI
    /// machine); `cargo xtask merge` combines the shards' JSON reports.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// How counterexamples list their interleaving: `columns` (one per
    /// task) or `single` (one line per step, task first).
    #[arg(long, env = "WSDRAIN_LISTING", value_parser = ["columns", "single"])]
    #[serde(skip)]
    pub listing: Option<String>,
}

fn default_programs() -> u64 {
    1000
}
fn default_schedules() -> usize {
    100
}
fn default_loom_programs() -> u64 {
    24
}
fn default_loom_program_bound() -> usize {
    1
}

/// A checker by name, for the command line.
pub fn parse_checker(name: &str) -> Result<Checker, String> {
    Checker::from_name(name).ok_or_else(|| format!("unknown checker {name:?} (loom or shuttle)"))
}

/// One job for a cell process.
#[derive(Debug, Clone)]
pub struct Job {
    pub checker: Checker,
    pub command: CellCommand,
    /// What the job is for, to place its result.
    pub kind: JobKind,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum JobKind {
    Fixed,
    Bug {
        depth: usize,
    },
    Bound {
        bound: usize,
    },
    /// The generated explorer (`crate::generated`).
    Generated,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Build the cell runner for `checker`; returns the binary's path.
pub fn build_cell(checker: Checker) -> Result<PathBuf, String> {
    let root = workspace_root();
    let target = checker.target_dir(&root);
    let rustflags = checker.rustflags();
    eprintln!("building the {checker} harness (release, RUSTFLAGS=\"{rustflags}\") ...");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .env("RUSTFLAGS", &rustflags)
        .env("CARGO_TARGET_DIR", &target)
        .args(BUILD_CELL)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the {checker} harness failed"));
    }
    Ok(target.join("release").join("wsdrain-cell"))
}

/// The bug catalog the cell runner at `binary` was built with.
pub fn catalog(binary: &Path) -> Result<Catalog, String> {
    CellCommand::catalog().execute_catalog(binary)
}

pub(crate) fn selected(args: &VerifyArgs, all: &[Scenario]) -> Result<Vec<Scenario>, String> {
    if args.scenario.is_empty() {
        return Ok(all.to_vec());
    }
    args.scenario
        .iter()
        // `G`: the generated explorer (crate::generated), not a scenario.
        .filter(|s| !s.eq_ignore_ascii_case(crate::generated::ID))
        .map(|s| Scenario::from_name(s).ok_or_else(|| format!("unknown scenario {s:?}")))
        .collect()
}

/// The jobs of the matrix for one checker.
pub(crate) fn jobs(
    checker: Checker,
    catalog: &Catalog,
    args: &VerifyArgs,
    scenarios: &[Scenario],
) -> Vec<Job> {
    let mut jobs = Vec::new();
    let per_scenario = (args.shuttle_executions / scenarios.len().max(1)).max(1);
    let style = args.listing.as_deref().and_then(ListingStyle::parse);
    let mut push = |command: CellCommand, kind: JobKind| {
        let command = match style {
            Some(style) => command.listing(style),
            None => command,
        };
        jobs.push(Job {
            checker,
            command,
            kind,
        })
    };
    for &scenario in scenarios {
        // The fixed client.
        let fixed = CellCommand::run(scenario, "fixed").no_trace();
        match checker {
            Checker::Loom => {
                let bound = args.bound.unwrap_or(scenario.loom_bound());
                push(
                    fixed.bound(bound).max_seconds(args.loom_seconds),
                    JobKind::Fixed,
                );
            }
            // Half under PCT (depth 3), half under the random scheduler:
            // they have different blind spots (PCT at depth 3 never ran a
            // just-spawned thread to its end before main's next lock in
            // 2,000 schedules of a facade test; the random scheduler did in
            // 13 %). One cell of the table, both runs.
            Checker::Shuttle => {
                let pct = per_scenario.div_ceil(2);
                push(fixed.clone().depth(3).iterations(pct), JobKind::Fixed);
                if per_scenario > pct {
                    push(
                        fixed.depth(0).iterations(per_scenario - pct),
                        JobKind::Fixed,
                    );
                }
            }
        }
        if checker == Checker::Loom && args.find_bounds {
            for bound in 0..=5 {
                let command = CellCommand::run(scenario, "fixed")
                    .bound(bound)
                    .max_seconds(args.loom_seconds)
                    .no_trace();
                push(command, JobKind::Bound { bound });
            }
        }
        // Every bug that applies to the scenario.
        for bug in catalog.bugs.iter().filter(|b| b.applies(scenario)) {
            match checker {
                Checker::Loom => {
                    let command = CellCommand::run(scenario, &bug.id)
                        .bound(args.bug_bound)
                        .deepen()
                        .checkpoint()
                        .max_seconds(args.loom_seconds);
                    push(command, JobKind::Bug { depth: 0 });
                }
                Checker::Shuttle => {
                    // PCT depth 2 and 3 as the goals ask, and the uniform random
                    // scheduler: shuttle's schedulers have different blind spots.
                    for depth in [2, 3, 0] {
                        for seed in 0..args.seeds {
                            let command = CellCommand::run(scenario, &bug.id)
                                .depth(depth)
                                .iterations(args.bug_iterations)
                                .seed(seed);
                            push(command, JobKind::Bug { depth });
                        }
                    }
                }
            }
        }
    }
    // The loom cells that take minutes go first, so the other cores work
    // through everything else meanwhile instead of waiting for them at the end.
    jobs.sort_by_key(|job| !takes_minutes(job));
    jobs
}

/// A loom cell of the fixed client explored deeper than the model suite
/// explores it (S4 and S11 at bound 2): it takes minutes, where most cells
/// take milliseconds.
fn takes_minutes(job: &Job) -> bool {
    let bound = job.command.value_of("--bound").and_then(|b| b.parse().ok());
    let scenario = job
        .command
        .value_of("--scenario")
        .and_then(Scenario::from_name);
    job.kind == JobKind::Fixed
        && job.checker == Checker::Loom
        && bound
            .zip(scenario)
            .is_some_and(|(bound, scenario): (usize, Scenario)| bound > scenario.suite_loom_bound())
}

/// The jobs judged together: a shuttle seed's schedulers (PCT depth 2, 3
/// and random) form one portfolio; every other job stands alone.
pub(crate) fn portfolio(job: &Job) -> (Checker, Vec<String>) {
    let mut args = job.command.args().to_vec();
    if let Some(at) = args.iter().position(|a| a == "--depth") {
        args.drain(at..(at + 2).min(args.len()));
    }
    (job.checker, args)
}

/// `cargo xtask verify`.
pub fn verify(args: &VerifyArgs) -> Result<bool, String> {
    let scenarios = selected(args, &Scenario::ALL)?;
    let checkers: Vec<Checker> = Checker::ALL
        .into_iter()
        .filter(|c| args.checker.is_empty() || args.checker.contains(c))
        .collect();
    let started = Instant::now();
    let mut built = Vec::new();
    for &checker in &checkers {
        let binary = build_cell(checker)?;
        let catalog = catalog(&binary)?;
        built.push((checker, binary, catalog));
    }
    let mut all_jobs: Vec<(PathBuf, Job)> = Vec::new();
    for (checker, binary, catalog) in &built {
        for job in jobs(*checker, catalog, args, &scenarios) {
            all_jobs.push((binary.clone(), job));
        }
        for job in crate::generated::jobs(*checker, catalog, args) {
            all_jobs.push((binary.clone(), job));
        }
    }
    if let Some(shard) = args.shard {
        let total = all_jobs.len();
        all_jobs = shard.select(all_jobs, |(_, job)| portfolio(job));
        eprintln!("shard {shard}: {} of the {total} cells", all_jobs.len());
    }
    let catalogs: Vec<Catalog> = built.into_iter().map(|(_, _, c)| c).collect();
    // Bound-finding runs fill whole minutes: keep them to one at a time by
    // putting them last; everything else runs in parallel.
    all_jobs.sort_by_key(|(_, job)| matches!(job.kind, JobKind::Bound { .. }));
    let results = run_all(all_jobs, args.jobs)?;
    let record = RunRecord::new(args, &catalogs, &results, started.elapsed().as_secs_f64());
    let mut report = Report::build(args, &scenarios, &catalogs, results, started.elapsed());
    report.run = Some(record);
    let json_path = match args.shard {
        Some(shard) if args.json == Path::new("target/wsdrain/verify.json") => {
            PathBuf::from(format!(
                "target/wsdrain/verify-shard-{}-of-{}.json",
                shard.index, shard.count
            ))
        }
        _ => args.json.clone(),
    };
    write_report(&report, &json_path)?;
    if let Some(shard) = args.shard {
        println!(
            "shard {shard}: {} cells run, {} problem(s) among them; `cargo xtask merge` the {} shards' JSON reports for the table and the verdict",
            report.run.as_ref().map_or(0, |r| r.cells.len()),
            report.problems.len(),
            shard.count
        );
        return Ok(report.ok);
    }
    report::print(&report);
    Ok(report.ok)
}

/// Write the JSON report to `path` and the HTML report next to it
/// (`verify.json` -> `report.html`, `NAME.json` -> `NAME.html`).
pub fn write_report(report: &Report, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("write {}: {e}", path.display()))?;
    let html_path = html_path(path);
    std::fs::write(&html_path, crate::html::render(report))
        .map_err(|e| format!("write {}: {e}", html_path.display()))?;
    eprintln!(
        "report written to {} and {}",
        path.display(),
        html_path.display()
    );
    Ok(())
}

/// Where the HTML report of the JSON report at `json` goes.
pub fn html_path(json: &Path) -> PathBuf {
    if json.file_name().is_some_and(|n| n == "verify.json") {
        json.with_file_name("report.html")
    } else {
        json.with_extension("html")
    }
}

/// `cargo xtask merge`: the table and verdict of the shards' reports together.
pub fn merge(files: &[PathBuf], json: &Path) -> Result<bool, String> {
    let record = crate::shard::combine(files)?;
    let scenarios = record.scenarios()?;
    let report = Report::build(
        &record.args,
        &scenarios,
        &record.catalogs,
        record.results(),
        std::time::Duration::from_secs_f64(record.elapsed_s),
    );
    let mut report = report;
    report.run = Some(record);
    write_report(&report, json)?;
    report::print(&report);
    Ok(report.ok)
}

fn run_all(
    jobs: Vec<(PathBuf, Job)>,
    parallel: Option<usize>,
) -> Result<Vec<(Job, CellResult)>, String> {
    let total = jobs.len();
    let times = Mutex::new(CellTimes::load(Path::new("target/wsdrain/cell-times.json")));
    let keys: Vec<String> = jobs.iter().map(|(_, job)| job_key(job)).collect();
    // The expected times, and where each comes from, before this run
    // records any.
    let (expected, timed, trust) = {
        let times = times.lock().unwrap();
        let (expected, timed) = times.expected(&keys);
        let trust: Vec<Expected> = jobs
            .iter()
            .zip(&keys)
            .map(|((_, job), key)| {
                if times.knows(key) {
                    Expected::Timed
                } else if takes_minutes(job) {
                    Expected::GuessedLong
                } else {
                    Expected::Guessed
                }
            })
            .collect();
        (expected, timed, trust)
    };
    let workers = parallel
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let progress = Progress::new(&expected, timed, workers);
    let queue = Arc::new(Mutex::new(
        jobs.into_iter()
            .zip(keys.into_iter().zip(expected).zip(trust))
            .collect::<VecDeque<_>>(),
    ));
    let results = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let errors = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (queue, results, errors, progress, times) =
                    (&queue, &results, &errors, &progress, &times);
                scope.spawn(move || {
                    loop {
                        let Some(((binary, job), ((key, expected), trust))) =
                            queue.lock().unwrap().pop_front()
                        else {
                            break;
                        };
                        let cell = progress.started(job_label(&job), expected, trust);
                        let started = Instant::now();
                        let outcome = job.command.execute(&binary);
                        times
                            .lock()
                            .unwrap()
                            .record(key, started.elapsed().as_secs_f64() * 1e3);
                        match outcome {
                            Ok(result) => {
                                progress.finished(cell, result.executions);
                                results.lock().unwrap().push((job, result));
                            }
                            Err(e) => {
                                progress.finished(cell, 0);
                                errors.lock().unwrap().push(e);
                            }
                        }
                    }
                })
            })
            .collect();
        let ticker = scope.spawn(|| progress.ticker());
        for handle in handles {
            let _ = handle.join();
        }
        progress.finish();
        let _ = ticker.join();
    });
    times.lock().unwrap().save();
    let errors = Arc::try_unwrap(errors).unwrap().into_inner().unwrap();
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(Arc::try_unwrap(results).unwrap().into_inner().unwrap())
}

/// A job's identity across runs (its checker and its cell's arguments), for
/// the progress estimate's cell times.
fn job_key(job: &Job) -> String {
    format!("{} {}", job.checker.name(), job.command.args().join(" "))
}

/// A job in a few words for the progress line: `loom S11 fixed`.
fn job_label(job: &Job) -> String {
    let command = &job.command;
    match (
        command.value_of("--scenario"),
        command.value_of("--variant"),
    ) {
        (Some(scenario), Some(variant)) => {
            format!("{} {scenario} {variant}", job.checker.name())
        }
        _ => format!(
            "{} {}",
            job.checker.name(),
            command.args().first().map_or("cell", String::as_str)
        ),
    }
}

/// What `cargo xtask replay` reruns.
pub enum ReplayTarget<'a> {
    /// A hand-written scenario, by id.
    Scenario(&'a str),
    /// A generated program, by its file.
    Program(&'a Path),
}

/// `cargo xtask replay`.
pub fn replay(
    checker: Checker,
    target: ReplayTarget<'_>,
    bug: Option<&str>,
    artifact: &Path,
    listing: Option<ListingStyle>,
) -> Result<bool, String> {
    let binary = build_cell(checker)?;
    // Replay commands name the file relative to the workspace root.
    let rooted = |file: &Path| {
        if file.is_relative() && !file.exists() {
            workspace_root().join(file)
        } else {
            file.to_owned()
        }
    };
    let artifact = rooted(artifact);
    let variant = bug.unwrap_or("fixed");
    let command = match target {
        ReplayTarget::Scenario(scenario) => CellCommand::replay(scenario, variant, &artifact),
        ReplayTarget::Program(program) => {
            CellCommand::replay_program(&rooted(program), variant, &artifact)
        }
    };
    let command = match listing {
        Some(style) => command.listing(style),
        None => command,
    };
    let result = command.execute(&binary)?;
    match &result.report {
        Some(report) => {
            println!("replayed: the failure reproduces\n\n{report}");
            Ok(false)
        }
        None => {
            println!("replayed {} execution(s): no failure", result.executions);
            Ok(true)
        }
    }
}

/// `cargo xtask test`: the workspace's tests as they ship (no catalog cfg),
/// the catalog's tests on the real backend (`--cfg wsdrain_bugs`), each model
/// suite, then the release-artifact check ([`crate::release_check`]). Every
/// build with extra cfgs has its own target directory (the cfgs change every
/// crate's build).
pub fn test(no_models: bool) -> Result<bool, String> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // (name, cargo args, RUSTFLAGS and target directory)
    type Run<'a> = (String, Vec<&'a str>, Option<(String, PathBuf)>);
    let mut runs: Vec<Run> = vec![
        (
            "workspace, production form".into(),
            vec!["test", "--workspace"],
            None,
        ),
        (
            "bug catalog, real backend".into(),
            vec!["test", "-p", "wsdrain", "--lib", "--test", "proptest_ops"],
            Some((
                "--cfg wsdrain_bugs".into(),
                root.join("target").join("bugs"),
            )),
        ),
    ];
    if !no_models {
        for checker in Checker::ALL {
            runs.push((
                format!("{checker} model suite"),
                vec!["test", "--release", "-p", "wsdrain-loom-tests"],
                Some((checker.rustflags(), checker.target_dir(&root))),
            ));
        }
    }
    for (name, args, flags) in runs {
        eprintln!("== cargo {} ({name})", args.join(" "));
        let mut command = Command::new(&cargo);
        command.current_dir(&root).args(&args);
        if let Some((rustflags, target)) = flags {
            command
                .env("RUSTFLAGS", rustflags)
                .env("CARGO_TARGET_DIR", target);
        }
        let status = command
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            eprintln!("== {name} tests failed");
            return Ok(false);
        }
    }
    crate::release_check::run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_style_goes_to_every_cell_process_it_is_asked_for() {
        let catalog = &crate::shard::tests::catalogs()[0];
        let scenarios = [Scenario::S1CloseVsStream];
        let plain = crate::shard::tests::args(&[]);
        for job in jobs(Checker::Loom, catalog, &plain, &scenarios) {
            assert!(job.command.env().is_empty(), "{:?}", job.command);
        }
        let single = crate::shard::tests::args(&["--listing", "single"]);
        let jobs = jobs(Checker::Loom, catalog, &single, &scenarios);
        assert!(!jobs.is_empty());
        for job in jobs {
            assert_eq!(
                job.command.env(),
                [(ListingStyle::ENV.to_owned(), "single".to_owned())],
                "{:?}",
                job.command
            );
        }
    }
}
