//! Building the cell runners and running the verification matrix.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use wsdrain_loom_tests::Scenario;
use wsdrain_loom_tests::cell::{Catalog, CellCommand, CellResult, Checker};

use crate::report::{self, Report};

/// Knobs of `cargo xtask verify`.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// loom: preemption bound for the exhaustive runs of the fixed client
    /// (default: per scenario, the largest that finishes within a minute here).
    #[arg(long, env = "LOOM_MAX_PREEMPTIONS")]
    pub bound: Option<usize>,
    /// loom: largest bound tried (iteratively, from 0) when hunting a bug.
    #[arg(long, default_value_t = 3)]
    pub bug_bound: usize,
    /// loom: per-run time limit, seconds (a fixed-client run that hits it is
    /// reported as incomplete).
    #[arg(long, default_value_t = 60)]
    pub loom_seconds: u64,
    /// loom: also find, per scenario, the largest bound that finishes within
    /// --loom-seconds (slow: up to that long per scenario and bound).
    #[arg(long)]
    pub find_bounds: bool,
    /// shuttle: PCT executions of the fixed client, over all scenarios.
    #[arg(long, default_value_t = 100_000)]
    pub shuttle_executions: usize,
    /// shuttle: seeds per bug, scenario and PCT depth.
    #[arg(long, default_value_t = 21)]
    pub seeds: u64,
    /// shuttle: executions allowed per seed before a bug counts as escaped.
    #[arg(long, default_value_t = 10_000)]
    pub bug_iterations: usize,
    /// Parallel cell processes (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Only these scenarios (e.g. `--scenario S1 --scenario S7`).
    #[arg(long)]
    pub scenario: Vec<String>,
    /// Only these checkers (`loom`, `shuttle`).
    #[arg(long, value_parser = parse_checker)]
    pub checker: Vec<Checker>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/wsdrain/verify.json")]
    pub json: PathBuf,
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

#[derive(Debug, Clone, PartialEq)]
pub enum JobKind {
    Fixed,
    Bug { depth: usize },
    Bound { bound: usize },
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
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "wsdrain-loom-tests",
            "--bin",
            "wsdrain-cell",
        ])
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

fn selected(args: &VerifyArgs, all: &[Scenario]) -> Result<Vec<Scenario>, String> {
    if args.scenario.is_empty() {
        return Ok(all.to_vec());
    }
    args.scenario
        .iter()
        .map(|s| Scenario::from_name(s).ok_or_else(|| format!("unknown scenario {s:?}")))
        .collect()
}

/// The jobs of the matrix for one checker.
fn jobs(
    checker: Checker,
    catalog: &Catalog,
    args: &VerifyArgs,
    scenarios: &[Scenario],
) -> Vec<Job> {
    let mut jobs = Vec::new();
    let per_scenario = (args.shuttle_executions / scenarios.len().max(1)).max(1);
    let mut push = |command: CellCommand, kind: JobKind| {
        jobs.push(Job {
            checker,
            command,
            kind,
        })
    };
    for &scenario in scenarios {
        // The fixed client.
        let fixed = CellCommand::run(scenario, "fixed").no_trace();
        let fixed = match checker {
            Checker::Loom => fixed
                .bound(args.bound.unwrap_or(scenario.loom_bound()))
                .max_seconds(args.loom_seconds),
            Checker::Shuttle => fixed.depth(3).iterations(per_scenario),
        };
        push(fixed, JobKind::Fixed);
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
    jobs
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
    }
    let catalogs: Vec<Catalog> = built.into_iter().map(|(_, _, c)| c).collect();
    // Bound-finding runs fill whole minutes: keep them to one at a time by
    // putting them last; everything else runs in parallel.
    all_jobs.sort_by_key(|(_, job)| matches!(job.kind, JobKind::Bound { .. }));
    let results = run_all(all_jobs, args.jobs)?;
    let report = Report::build(args, &scenarios, &catalogs, results, started.elapsed());
    report::print(&report);
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&args.json, json).map_err(|e| format!("write {}: {e}", args.json.display()))?;
    eprintln!("report written to {}", args.json.display());
    Ok(report.ok)
}

fn run_all(
    jobs: Vec<(PathBuf, Job)>,
    parallel: Option<usize>,
) -> Result<Vec<(Job, CellResult)>, String> {
    let total = jobs.len();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} cells  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<_>>()));
    let results = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let workers = parallel
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (queue, results, errors, bar) = (&queue, &results, &errors, &bar);
            scope.spawn(move || {
                loop {
                    let Some((binary, job)) = queue.lock().unwrap().pop_front() else {
                        break;
                    };
                    bar.set_message(format!(
                        "{} {}",
                        job.checker,
                        job.command.args()[2..].join(" ")
                    ));
                    match job.command.execute(&binary) {
                        Ok(result) => results.lock().unwrap().push((job, result)),
                        Err(e) => errors.lock().unwrap().push(e),
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let errors = Arc::try_unwrap(errors).unwrap().into_inner().unwrap();
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(Arc::try_unwrap(results).unwrap().into_inner().unwrap())
}

/// `cargo xtask replay`.
pub fn replay(
    checker: Checker,
    scenario: &str,
    bug: Option<&str>,
    artifact: &Path,
) -> Result<bool, String> {
    let binary = build_cell(checker)?;
    let result =
        CellCommand::replay(scenario, bug.unwrap_or("fixed"), artifact).execute(&binary)?;
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
