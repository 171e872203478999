//! Building the cell runners and running the verification matrix.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wsdrain_loom_tests::Scenario;
use wsdrain_loom_tests::cell::CellResult;

use crate::progress::Progress;
use crate::report::{self, Report};
use crate::shard::{RunRecord, Shard};
use wsdrain_loom_tests::listing::ListingStyle;

/// Knobs of `cargo xtask verify`.
#[derive(clap::Args, Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    #[arg(long)]
    pub checker: Vec<String>,
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

/// The listing style cell processes are asked for (`--listing`).
pub static LISTING: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// One job for a cell process.
#[derive(Debug, Clone)]
pub struct Job {
    pub checker: &'static str,
    pub args: Vec<String>,
    /// What the job is for, to place its result.
    pub kind: JobKind,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum JobKind {
    Fixed,
    Bug { depth: usize },
    Bound { bound: usize },
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Build the cell runner for `checker`; returns the binary's path.
pub fn build_cell(checker: &str) -> Result<PathBuf, String> {
    let root = workspace_root();
    let target = root.join("target").join(checker);
    eprintln!(
        "building the {checker} harness (release, RUSTFLAGS=\"--cfg wsdrain_{checker}\") ..."
    );
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .env("RUSTFLAGS", format!("--cfg wsdrain_{checker}"))
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

/// Run one cell process and parse its result line.
pub fn run_cell(binary: &Path, args: &[String]) -> Result<CellResult, String> {
    let mut command = Command::new(binary);
    if let Some(style) = LISTING.get() {
        command.env(ListingStyle::ENV, style);
    }
    let output = command
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    CellResult::parse(&stdout).ok_or_else(|| {
        format!(
            "cell {} gave no result (status {}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        )
    })
}

pub(crate) fn selected(args: &VerifyArgs, all: &[Scenario]) -> Result<Vec<Scenario>, String> {
    if args.scenario.is_empty() {
        return Ok(all.to_vec());
    }
    args.scenario
        .iter()
        .map(|s| Scenario::from_name(s).ok_or_else(|| format!("unknown scenario {s:?}")))
        .collect()
}

/// The jobs of the matrix for one checker.
pub(crate) fn jobs(checker: &'static str, args: &VerifyArgs, scenarios: &[Scenario]) -> Vec<Job> {
    let mut jobs = Vec::new();
    let per_scenario = (args.shuttle_executions / scenarios.len().max(1)).max(1);
    for &scenario in scenarios {
        let base = |variant: &str| -> Vec<String> {
            vec![
                "run".into(),
                "--scenario".into(),
                scenario.id().into(),
                "--variant".into(),
                variant.into(),
            ]
        };
        // The fixed client.
        let mut fixed = base("fixed");
        if checker == "loom" {
            let bound = args.bound.unwrap_or(scenario.loom_bound());
            fixed.extend(["--bound".into(), bound.to_string()]);
            fixed.extend(["--max-seconds".into(), args.loom_seconds.to_string()]);
            fixed.push("--no-trace".into());
        } else {
            fixed.extend([
                "--depth".into(),
                "3".into(),
                "--iterations".into(),
                per_scenario.to_string(),
            ]);
            fixed.push("--no-trace".into());
        }
        jobs.push(Job {
            checker,
            args: fixed,
            kind: JobKind::Fixed,
        });
        if checker == "loom" && args.find_bounds {
            for bound in 0..=5 {
                let mut a = base("fixed");
                a.extend(["--bound".into(), bound.to_string()]);
                a.extend([
                    "--max-seconds".into(),
                    args.loom_seconds.to_string(),
                    "--no-trace".into(),
                ]);
                jobs.push(Job {
                    checker,
                    args: a,
                    kind: JobKind::Bound { bound },
                });
            }
        }
        // Every bug that applies to the scenario.
        for bug in wsdrain_loom_tests::cell::all_bugs() {
            if !scenario.applies_under(checker, bug) {
                continue;
            }
            if checker == "loom" {
                let mut a = base(bug.id());
                a.extend([
                    "--bound".into(),
                    args.bug_bound.to_string(),
                    "--deepen".into(),
                    "--checkpoint".into(),
                ]);
                a.extend(["--max-seconds".into(), args.loom_seconds.to_string()]);
                jobs.push(Job {
                    checker,
                    args: a,
                    kind: JobKind::Bug { depth: 0 },
                });
            } else {
                // PCT depth 2 and 3 as the goals ask, and the uniform random
                // scheduler: shuttle's schedulers have different blind spots.
                for depth in [2, 3, 0] {
                    for seed in 0..args.seeds {
                        let mut a = base(bug.id());
                        a.extend(["--depth".into(), depth.to_string()]);
                        a.extend(["--iterations".into(), args.bug_iterations.to_string()]);
                        a.extend(["--seed".into(), seed.to_string()]);
                        jobs.push(Job {
                            checker,
                            args: a,
                            kind: JobKind::Bug { depth },
                        });
                    }
                }
            }
        }
    }
    jobs
}

/// The jobs judged together: a shuttle seed's schedulers (PCT depth 2, 3
/// and random) form one portfolio; every other job stands alone.
pub(crate) fn portfolio(job: &Job) -> (String, Vec<String>) {
    let mut args = job.args.clone();
    if let Some(at) = args.iter().position(|a| a == "--depth") {
        args.drain(at..(at + 2).min(args.len()));
    }
    (job.checker.to_owned(), args)
}

/// `cargo xtask verify`.
pub fn verify(args: &VerifyArgs) -> Result<bool, String> {
    let scenarios = selected(args, &Scenario::ALL)?;
    let checkers: Vec<&'static str> = ["loom", "shuttle"]
        .into_iter()
        .filter(|c| args.checker.is_empty() || args.checker.iter().any(|a| a == c))
        .collect();
    let started = Instant::now();
    let mut binaries = Vec::new();
    for &checker in &checkers {
        binaries.push((checker, build_cell(checker)?));
    }
    let mut all_jobs: Vec<(PathBuf, Job)> = Vec::new();
    for (checker, binary) in &binaries {
        for job in jobs(checker, args, &scenarios) {
            all_jobs.push((binary.clone(), job));
        }
    }
    if let Some(shard) = args.shard {
        let total = all_jobs.len();
        all_jobs = shard.select(all_jobs, |(_, job)| portfolio(job));
        eprintln!("shard {shard}: {} of the {total} cells", all_jobs.len());
    }
    // Bound-finding runs fill whole minutes: keep them to one at a time by
    // putting them last; everything else runs in parallel.
    all_jobs.sort_by_key(|(_, job)| matches!(job.kind, JobKind::Bound { .. }));
    let results = run_all(all_jobs, args.jobs)?;
    let record = RunRecord::new(args, &checkers, &results, started.elapsed().as_secs_f64());
    let mut report = Report::build(args, &scenarios, &checkers, results, started.elapsed());
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
        &record.checker_names(),
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
    let progress = Progress::new(total);
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<_>>()));
    let results = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let workers = parallel
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (queue, results, errors, progress) = (&queue, &results, &errors, &progress);
                scope.spawn(move || {
                    loop {
                        let Some((binary, job)) = queue.lock().unwrap().pop_front() else {
                            break;
                        };
                        progress.started();
                        match run_cell(&binary, &job.args) {
                            Ok(result) => {
                                progress.finished(result.executions);
                                results.lock().unwrap().push((job, result));
                            }
                            Err(e) => {
                                progress.finished(0);
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
    let errors = Arc::try_unwrap(errors).unwrap().into_inner().unwrap();
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(Arc::try_unwrap(results).unwrap().into_inner().unwrap())
}

/// `cargo xtask replay`.
pub fn replay(
    checker: &str,
    scenario: &str,
    bug: Option<&str>,
    artifact: &Path,
) -> Result<bool, String> {
    if !matches!(checker, "loom" | "shuttle") {
        return Err(format!("unknown checker {checker:?} (loom or shuttle)"));
    }
    let binary = build_cell(checker)?;
    let args: Vec<String> = vec![
        "replay".into(),
        "--scenario".into(),
        scenario.into(),
        "--variant".into(),
        bug.unwrap_or("fixed").into(),
        artifact.display().to_string(),
    ];
    let result = run_cell(&binary, &args)?;
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

/// `cargo xtask test`: the workspace tests, then each model suite in its own
/// target directory (the cfg changes every crate's build).
pub fn test(no_models: bool) -> Result<bool, String> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut runs: Vec<(&str, Vec<&str>, Option<&str>)> =
        vec![("workspace", vec!["test", "--workspace"], None)];
    if !no_models {
        for checker in ["loom", "shuttle"] {
            runs.push((
                checker,
                vec!["test", "--release", "-p", "wsdrain-loom-tests"],
                Some(checker),
            ));
        }
    }
    for (name, args, checker) in runs {
        eprintln!("== cargo {} ({name})", args.join(" "));
        let mut command = Command::new(&cargo);
        command.current_dir(&root).args(&args);
        if let Some(checker) = checker {
            command
                .env("RUSTFLAGS", format!("--cfg wsdrain_{checker}"))
                .env("CARGO_TARGET_DIR", root.join("target").join(checker));
        }
        let status = command
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            eprintln!("== {name} tests failed");
            return Ok(false);
        }
    }
    Ok(true)
}
