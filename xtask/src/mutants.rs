//! `cargo xtask mutants`: measure the harness on bugs nobody planted.
//!
//! cargo-mutants lists the mutants of the concurrency core (`cargo mutants
//! --list --json --diff`); each one is applied to the worktree in place,
//! the shuttle (or loom) cell runner is rebuilt, and the model suites judge
//! it: the fixed-client cells of every scenario, then the generated
//! explorer's fixed-client job, then (`--facade`) the facade's model suite
//! and the in-memory transport's (under loom also the SC search's); never
//! the catalog's bug cells. A mutant
//! is *killed* when a cell fails (an oracle fires, a deadlock, an
//! unexpected panic), gives no result (an abort), runs past its time
//! limit (a hang) or, judged "after" under loom, explores its scenario to
//! the end without hitting one of its race windows (`verify` fails such a
//! run too; shuttle's 1,000 executions a cell can miss a rare window by
//! chance, so there it is not counted); otherwise it *survives*.
//! The patch is reverted after every mutant, also when a step fails.
//!
//! Two judges, from the same build of each mutant:
//! - **after**: every scenario with every oracle (issue 10's included,
//!   checked in S1-S8 too), the generated programs and the facade and
//!   transport suites;
//! - **before** (`--before`): S1-S8 as they were judged before issue 10 (the
//!   probe's drain-barrier, no-orphan and identity, liveness, the
//!   end-of-execution checks; S5's server a sink, S8's shuttle shape
//!   without the reconnect promise), selected in the cells by
//!   `WSDRAIN_ORACLES=before`.
//!
//! Not mutated: the bug-catalog switch sites (a mutant on a line with
//! `bug!(` only changes a catalog switch, which the fixed client never
//! turns on), `fmt` functions (Display/Debug text), unit-test code, the
//! trace module and the backends the judge does not compile (see
//! [`DEFAULT_FILES`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wsdrain_loom_tests::Scenario;
use wsdrain_loom_tests::cell::{CellCommand, CellOutcome, CellResult, Checker};

use crate::matrix::workspace_root;

/// The concurrency core: the sync facade (less its diagnostics, `trace.rs`,
/// and the std and loom backends, which the shuttle judge does not
/// compile), the client, its streams, the manager and the in-memory
/// transport.
pub const DEFAULT_FILES: &[&str] = &[
    "src/sync/close_signal.rs",
    "src/sync/waiters.rs",
    "src/sync/wait_group.rs",
    "src/sync/queue.rs",
    "src/sync/mutex.rs",
    "src/sync/atomic.rs",
    "src/sync/unchecked.rs",
    "src/sync/mod.rs",
    "src/sync/backend_shuttle.rs",
    "src/stream.rs",
    "src/client.rs",
    "src/manager.rs",
    "src/transport/memory.rs",
];

/// Knobs of `cargo xtask mutants`.
#[derive(clap::Args, Debug, Clone)]
pub struct MutantsArgs {
    /// A source file to mutate (repeatable; default: the concurrency core).
    #[arg(long = "file")]
    pub files: Vec<String>,
    /// Only mutants whose name matches this regex (cargo-mutants' `--re`).
    #[arg(long = "re")]
    pub re: Vec<String>,
    /// Leave out mutants whose name matches this regex (`--exclude-re`).
    #[arg(long = "exclude-re")]
    pub exclude_re: Vec<String>,
    /// Only count and list the mutants.
    #[arg(long)]
    pub list: bool,
    /// Mutate the memory orderings instead, which cargo-mutants leaves
    /// alone: every `Ordering::Acquire`, `Release` and `AcqRel` of the
    /// files weakened, one at a time, to each weaker ordering. Needs
    /// `--checker loom` (shuttle is sequentially consistent: it cannot tell
    /// orderings apart); `--re` and `--exclude-re` match substrings here.
    #[arg(long)]
    pub orderings: bool,
    /// Skip this many mutants of the list (to split a run).
    #[arg(long, default_value_t = 0)]
    pub skip: usize,
    /// Test at most this many mutants.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The judge's checker: `shuttle` (PCT depth 3) or `loom` (each
    /// scenario at the model suite's bound, `Scenario::suite_loom_bound`).
    #[arg(long, default_value = "shuttle", value_parser = crate::matrix::parse_checker)]
    pub checker: Checker,
    /// shuttle: executions per scenario cell.
    #[arg(long, default_value_t = 1000)]
    pub iterations: usize,
    /// Also judge with the harness as it was before issue 10.
    #[arg(long)]
    pub before: bool,
    /// After the cells, run the facade's model suite and the in-memory
    /// transport's on a survivor.
    #[arg(long)]
    pub facade: bool,
    /// Generated programs the fixed client must pass after the scenario
    /// cells ("after" only; shuttle: as many as `verify` explores, each
    /// with `--schedules` executions; loom: the first 24 at bound 1; 0:
    /// none).
    #[arg(long, default_value_t = 1000)]
    pub programs: u64,
    /// shuttle: executions per generated program (as in `verify`).
    #[arg(long, default_value_t = 100)]
    pub schedules: usize,
    /// Seconds a cell may run before the mutant counts as killed (a hang).
    #[arg(long, default_value_t = 120)]
    pub cell_timeout: u64,
    /// Where to write the results (JSON).
    #[arg(long, default_value = "target/wsdrain/mutants.json")]
    pub json: PathBuf,
}

/// One mutant, as cargo-mutants lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mutant {
    /// cargo-mutants' name: `src/x.rs:LINE:COL: replace ... with ...`.
    pub name: String,
    pub file: String,
    pub line: usize,
    pub end_line: usize,
    /// The unified diff that applies it.
    pub diff: String,
}

/// What a judge said about one mutant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    /// `killed` or `survived` (`unviable`: it does not build).
    pub outcome: &'static str,
    /// The cell that killed it: scenario and how.
    pub by: Option<String>,
    pub cells: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
struct Tested {
    mutant: Mutant,
    build_seconds: f64,
    after: Verdict,
    before: Option<Verdict>,
}

/// `cargo xtask mutants`.
pub fn run(args: &MutantsArgs) -> Result<bool, String> {
    let root = workspace_root();
    let files: Vec<String> = if args.files.is_empty() {
        DEFAULT_FILES.iter().map(|f| f.to_string()).collect()
    } else {
        args.files.clone()
    };
    if args.orderings && args.checker != Checker::Loom {
        return Err(
            "--orderings needs --checker loom: shuttle explores sequentially \
                    consistent executions only, where every ordering behaves alike"
                .into(),
        );
    }
    let (mutants, excluded) = if args.orderings {
        list_orderings(&root, &files, args)?
    } else {
        list(&root, &files, args)?
    };
    eprintln!(
        "{} mutants in {} file(s); {} left out (bug-catalog switch sites, fmt, unit-test code)",
        mutants.len(),
        files.len(),
        excluded.len()
    );
    let selected: Vec<Mutant> = mutants
        .into_iter()
        .skip(args.skip)
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    if args.list {
        for m in &selected {
            println!("{}", m.name);
        }
        for (m, why) in &excluded {
            println!("left out ({why}): {}", m.name);
        }
        return Ok(true);
    }
    let dirty = git(&root, &["status", "--porcelain", "--untracked-files=no"])?;
    if dirty.lines().any(|l| {
        files
            .iter()
            .any(|f| l.ends_with(f.as_str()) || l.contains(&format!(" {f}")))
    }) {
        return Err("commit or stash the changes to the mutated files first".into());
    }
    // The unmutated client must pass the judges, or every kill is noise.
    eprintln!("baseline: building and judging the unmutated client ...");
    let binary = build(&root, args.checker)?.ok_or("the unmutated harness does not build")?;
    let baseline = judge(&binary, args, false);
    if baseline.outcome != "survived" {
        return Err(format!(
            "the unmutated client fails the judge ({:?})",
            baseline.by
        ));
    }
    let mut tested = Vec::new();
    for (i, mutant) in selected.iter().enumerate() {
        eprintln!("[{}/{}] {}", i + 1, selected.len(), mutant.name);
        let applied = Applied::new(&root, &mutant.diff)?;
        let started = Instant::now();
        let built = build(&root, args.checker);
        let build_seconds = started.elapsed().as_secs_f64();
        let (after, before) = match built {
            Ok(Some(binary)) => {
                let after = judge(&binary, args, false);
                let before = args.before.then(|| judge(&binary, args, true));
                (after, before)
            }
            Ok(None) => {
                let unviable = Verdict {
                    outcome: "unviable",
                    by: None,
                    cells: 0,
                    seconds: 0.0,
                };
                (unviable.clone(), args.before.then_some(unviable))
            }
            Err(e) => return Err(e),
        };
        drop(applied);
        eprintln!(
            "    after: {} {}{}",
            after.outcome,
            after.by.as_deref().unwrap_or(""),
            before
                .as_ref()
                .map(|b| format!("; before: {} {}", b.outcome, b.by.as_deref().unwrap_or("")))
                .unwrap_or_default()
        );
        tested.push(Tested {
            mutant: mutant.clone(),
            build_seconds,
            after,
            before,
        });
        write_json(args, &tested, &excluded)?;
    }
    print_summary(&tested);
    Ok(true)
}

fn write_json(
    args: &MutantsArgs,
    tested: &[Tested],
    excluded: &[(Mutant, &'static str)],
) -> Result<(), String> {
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let excluded: Vec<_> = excluded
        .iter()
        .map(|(m, why)| serde_json::json!({ "name": m.name, "why": why }))
        .collect();
    let json = serde_json::json!({
        "checker": args.checker.name(),
        "iterations": args.iterations,
        "tested": tested,
        "excluded": excluded,
    });
    std::fs::write(&args.json, serde_json::to_string_pretty(&json).unwrap())
        .map_err(|e| format!("write {}: {e}", args.json.display()))
}

fn print_summary(tested: &[Tested]) {
    let rate = |pick: &dyn Fn(&Tested) -> Option<&Verdict>| {
        let verdicts: Vec<&Verdict> = tested.iter().filter_map(pick).collect();
        let viable = verdicts.iter().filter(|v| v.outcome != "unviable").count();
        let killed = verdicts.iter().filter(|v| v.outcome == "killed").count();
        (killed, viable)
    };
    let (killed, viable) = rate(&|t| Some(&t.after));
    println!(
        "\nmutants tested: {} ({} unviable)",
        tested.len(),
        tested.len() - viable
    );
    println!(
        "after  (every scenario and oracle, generated, facade, transport): {killed}/{viable} killed ({:.0}%)",
        100.0 * killed as f64 / viable.max(1) as f64
    );
    if tested.iter().any(|t| t.before.is_some()) {
        let (killed, viable) = rate(&|t| t.before.as_ref());
        println!(
            "before (S1-S8, old oracles):   {killed}/{viable} killed ({:.0}%)",
            100.0 * killed as f64 / viable.max(1) as f64
        );
    }
    println!("\nsurvivors (after):");
    for t in tested.iter().filter(|t| t.after.outcome == "survived") {
        println!("  {}", t.mutant.name);
    }
    let newly: Vec<&Tested> = tested
        .iter()
        .filter(|t| {
            t.after.outcome == "killed"
                && t.before.as_ref().is_some_and(|b| b.outcome == "survived")
        })
        .collect();
    if !newly.is_empty() {
        println!("\nkilled only by the harness after issue 10:");
        for t in newly {
            println!(
                "  {} (by {})",
                t.mutant.name,
                t.after.by.as_deref().unwrap_or("?")
            );
        }
    }
}

/// The mutants of `files`, and those left out with why.
#[allow(clippy::type_complexity)]
fn list(
    root: &Path,
    files: &[String],
    args: &MutantsArgs,
) -> Result<(Vec<Mutant>, Vec<(Mutant, &'static str)>), String> {
    let mut command = Command::new("cargo");
    command.current_dir(root).args([
        "mutants",
        "--list",
        "--json",
        "--diff",
        "--package",
        "wsdrain",
    ]);
    for file in files {
        command.args(["--file", file]);
    }
    for re in &args.re {
        command.args(["--re", re]);
    }
    for re in &args.exclude_re {
        command.args(["--exclude-re", re]);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo mutants (cargo install cargo-mutants): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo mutants --list failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo mutants --list --json: {e}"))?;
    let mut keep = Vec::new();
    let mut excluded = Vec::new();
    for value in listed {
        let mutant = parse_mutant(&value)?;
        let source = std::fs::read_to_string(root.join(&mutant.file))
            .map_err(|e| format!("read {}: {e}", mutant.file))?;
        let lines: Vec<&str> = source.lines().collect();
        let span = lines
            .get(mutant.line.saturating_sub(1)..mutant.end_line.min(lines.len()))
            .unwrap_or(&[]);
        let function = value["function"]["function_name"].as_str().unwrap_or("");
        // A whole function body replaced is a mutant of the function, not
        // of a switch in it.
        let whole_function = value["genre"].as_str() == Some("FnValue");
        if !whole_function && span.iter().any(|l| l.contains("bug!(")) {
            excluded.push((mutant, "bug-catalog switch site"));
        } else if function.ends_with("::fmt") || function == "fmt" {
            excluded.push((mutant, "Display/Debug"));
        } else if function.starts_with("tests::") || function.contains("::tests::") {
            // A unit test's helper: the cell runner does not compile it.
            excluded.push((mutant, "unit-test code"));
        } else {
            keep.push(mutant);
        }
    }
    // In the order the files were given (the facade first by default).
    keep.sort_by_key(|m| files.iter().position(|f| *f == m.file));
    Ok((keep, excluded))
}

/// The weaker orderings an ordering can be replaced by, valid wherever it
/// is (an `AcqRel` is a read-modify-write's or a successful exchange's).
fn weaker(ordering: &str) -> &'static [&'static str] {
    match ordering {
        "AcqRel" => &["Acquire", "Release", "Relaxed"],
        "Acquire" | "Release" => &["Relaxed"],
        _ => &[],
    }
}

/// The ordering mutants of `files` (`--orderings`): each `Ordering::X` of a
/// file's code (up to its unit tests, `mod tests`) weakened. (`SeqCst` and
/// `Relaxed` have none here: the core's `SeqCst` are the SC search's own
/// switches in `sync/atomic.rs`.)
#[allow(clippy::type_complexity)]
fn list_orderings(
    root: &Path,
    files: &[String],
    args: &MutantsArgs,
) -> Result<(Vec<Mutant>, Vec<(Mutant, &'static str)>), String> {
    let mut keep = Vec::new();
    for file in files {
        let source =
            std::fs::read_to_string(root.join(file)).map_err(|e| format!("read {file}: {e}"))?;
        for (index, line) in source.lines().enumerate() {
            if line.starts_with("mod tests") {
                break;
            }
            let mut from = 0;
            while let Some(at) = line[from..].find("Ordering::").map(|i| i + from) {
                let name_start = at + "Ordering::".len();
                let name: String = line[name_start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                for weaker in weaker(&name) {
                    let number = index + 1;
                    let mutated = format!(
                        "{}Ordering::{weaker}{}",
                        &line[..at],
                        &line[name_start + name.len()..]
                    );
                    let mutant = Mutant {
                        name: format!(
                            "{file}:{number}:{}: weaken Ordering::{name} to {weaker}",
                            at + 1
                        ),
                        file: file.clone(),
                        line: number,
                        end_line: number,
                        diff: format!(
                            "--- {file}\n+++ weaken\n@@ -{number},1 +{number},1 @@\n-{line}\n+{mutated}\n"
                        ),
                    };
                    let selected = (args.re.is_empty()
                        || args.re.iter().any(|re| mutant.name.contains(re.as_str())))
                        && !args
                            .exclude_re
                            .iter()
                            .any(|re| mutant.name.contains(re.as_str()));
                    if selected {
                        keep.push(mutant);
                    }
                }
                from = name_start;
            }
        }
    }
    Ok((keep, Vec::new()))
}

fn parse_mutant(value: &serde_json::Value) -> Result<Mutant, String> {
    let field = |v: &serde_json::Value, what: &str| -> Result<usize, String> {
        v.as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| format!("cargo mutants JSON without {what}: {value}"))
    };
    Ok(Mutant {
        name: value["name"]
            .as_str()
            .ok_or("a mutant without a name")?
            .to_owned(),
        file: value["file"]
            .as_str()
            .ok_or("a mutant without a file")?
            .to_owned(),
        line: field(&value["span"]["start"]["line"], "span.start.line")?,
        end_line: field(&value["span"]["end"]["line"], "span.end.line")?,
        diff: value["diff"]
            .as_str()
            .ok_or("a mutant without a diff (cargo mutants --diff)")?
            .to_owned(),
    })
}

/// A mutant's patch, applied to the worktree until dropped.
struct Applied {
    root: PathBuf,
    patch: PathBuf,
}

impl Applied {
    fn new(root: &Path, diff: &str) -> Result<Self, String> {
        // cargo-mutants' header names the file and then the mutation
        // (`+++ replace ...`): give patch both sides' paths.
        let mut lines = diff.lines();
        let (Some(old), Some(_)) = (lines.next(), lines.next()) else {
            return Err(format!("not a diff:\n{diff}"));
        };
        let file = old.trim_start_matches("--- ");
        let mut fixed = format!("--- a/{file}\n+++ b/{file}\n");
        for line in lines {
            fixed.push_str(line);
            fixed.push('\n');
        }
        let diff = fixed.as_str();
        let patch = root.join("target/wsdrain/mutant.patch");
        std::fs::create_dir_all(patch.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(&patch, diff).map_err(|e| e.to_string())?;
        let status = Command::new("patch")
            .current_dir(root)
            .args([
                "-p1",
                "--quiet",
                "--forward",
                "--no-backup-if-mismatch",
                "-i",
            ])
            .arg(&patch)
            .status()
            .map_err(|e| format!("cannot run patch: {e}"))?;
        if !status.success() {
            return Err(format!("the mutant's diff does not apply:\n{diff}"));
        }
        Ok(Self {
            root: root.to_owned(),
            patch,
        })
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        let reverted = Command::new("patch")
            .current_dir(&self.root)
            .args([
                "-p1",
                "--quiet",
                "--reverse",
                "--no-backup-if-mismatch",
                "-i",
            ])
            .arg(&self.patch)
            .status()
            .is_ok_and(|s| s.success());
        if !reverted {
            eprintln!(
                "xtask: could not revert {}: restore the file with git checkout",
                self.patch.display()
            );
        }
    }
}

/// Build the cell runner for the judge in its own target directory (a
/// mutant rebuilds only the client crate and the harness). `None`: the
/// mutant does not compile.
fn build(root: &Path, checker: Checker) -> Result<Option<PathBuf>, String> {
    let status = cargo_for(root, checker)
        .args(crate::matrix::BUILD_CELL)
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    Ok(status
        .success()
        .then(|| mutants_target(root, checker).join("release/wsdrain-cell")))
}

/// The judge's own target directory (a mutant rebuilds only the client
/// crate and the harness there).
fn mutants_target(root: &Path, checker: Checker) -> PathBuf {
    root.join("target").join(format!("mutants-{checker}"))
}

/// `cargo` set up for the judge's builds.
fn cargo_for(root: &Path, checker: Checker) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // Fast rebuilds: incremental, no debug info, the dependencies at
    // `opt-level` 1. A mutant rebuilds the client and, since most of it is
    // generic, the harness that instantiates it: under shuttle those are
    // built unoptimised (5-15 s a mutant at load 6-10 instead of 35-40 s;
    // the cells, a few seconds a mutant, run slower, the verdicts are the
    // same). loom's exhaustive cells need the optimiser.
    let members_opt = match checker {
        Checker::Shuttle => "0",
        Checker::Loom => "1",
    };
    command
        .current_dir(root)
        .args(["--config", "profile.release.package.\"*\".opt-level=1"])
        .env("RUSTFLAGS", checker.rustflags())
        .env("CARGO_TARGET_DIR", mutants_target(root, checker))
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", members_opt)
        .env("CARGO_PROFILE_RELEASE_DEBUG", "0");
    command
}

/// Run the judge's cells on `binary`, stopping at the first kill.
fn judge(binary: &Path, args: &MutantsArgs, before: bool) -> Verdict {
    let started = Instant::now();
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| !before || (*s as usize) < 8)
        .collect();
    let mut cells = 0;
    for scenario in scenarios {
        let command = CellCommand::run(scenario, "fixed").no_trace();
        let command = match args.checker {
            Checker::Shuttle => command.depth(3).iterations(args.iterations),
            Checker::Loom => command
                .bound(scenario.suite_loom_bound())
                .max_seconds(args.cell_timeout),
        };
        cells += 1;
        if let Some(by) = killed_by(binary, &command, scenario.id(), before, args.cell_timeout) {
            return Verdict {
                outcome: "killed",
                by: Some(by),
                cells,
                seconds: started.elapsed().as_secs_f64(),
            };
        }
    }
    // The generated explorer's fixed-client job, as `verify` runs it: its
    // programs mix faults, cancellations and manager calls no scenario
    // scripts (e.g. `stop()` without a `wait()`).
    if !before && args.programs > 0 {
        let command = match args.checker {
            Checker::Shuttle => {
                CellCommand::generated("fixed", 0, args.programs).schedules(args.schedules)
            }
            // verify's defaults: the first 24 programs (those that fit
            // loom's threads run), at bound 1.
            Checker::Loom => CellCommand::generated("fixed", 0, args.programs.min(24))
                .bound(1)
                .max_seconds(args.cell_timeout),
        }
        .no_trace();
        cells += 1;
        // Its time limit covers all its programs, not one scenario.
        let timeout = args.cell_timeout * 4;
        if let Some(by) = killed_by(binary, &command, crate::generated::ID, before, timeout) {
            return Verdict {
                outcome: "killed",
                by: Some(by),
                cells,
                seconds: started.elapsed().as_secs_f64(),
            };
        }
    }
    // The facade's own model suite (loom-tests/tests/facade.rs) judges
    // what the scenarios cannot see: a waker moved between tasks, a wait
    // dropped half-way. The transport's (loom-tests/tests/memory_transport.rs)
    // judges the harness's test double: a knob, a server action or a fault
    // that silently does nothing leaves every scenario passing. Under loom
    // also the SC search's (loom-tests/tests/sc_search.rs): its switch in
    // `sync/atomic.rs` is on only after a failure, so no passing cell sees
    // it. They came with this mutation run, so only "after".
    if !before && args.facade {
        let loom_only: &[(&str, &str)] = if args.checker == Checker::Loom {
            &[("sc_search", "SC search")]
        } else {
            &[]
        };
        for &(suite, name) in [("facade", "facade"), ("memory_transport", "transport")]
            .iter()
            .chain(loom_only)
        {
            cells += 1;
            if let Some(by) = suite_kills(args, suite, name) {
                return Verdict {
                    outcome: "killed",
                    by: Some(by),
                    cells,
                    seconds: started.elapsed().as_secs_f64(),
                };
            }
        }
    }
    Verdict {
        outcome: "survived",
        by: None,
        cells,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Run the model suite `loom-tests/tests/{suite}.rs` on the mutant; `Some`
/// if it fails or hangs.
fn suite_kills(args: &MutantsArgs, suite: &str, name: &str) -> Option<String> {
    let root = workspace_root();
    let mut child = cargo_for(&root, args.checker)
        .args([
            "test",
            "--quiet",
            "--release",
            "-p",
            "wsdrain-loom-tests",
            "--test",
            suite,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let limit = Duration::from_secs(args.cell_timeout * 2 + 120);
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return None,
            Ok(Some(_)) => return Some(format!("{name} suite (a test failed)")),
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(format!("{name} suite (hang)"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => return None,
        }
    }
}

/// Whether the cell kills the mutant, and how.
fn killed_by(
    binary: &Path,
    command: &CellCommand,
    cell: &str,
    before: bool,
    timeout: u64,
) -> Option<String> {
    let mut child = Command::new(binary)
        .args(command.args())
        .env("WSDRAIN_ORACLES", if before { "before" } else { "after" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // A cell's only output is its result line: the pipe never fills.
    let limit = Duration::from_secs(timeout + 30);
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(format!("{cell} (hang: no result in {timeout} s)"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => return None,
        }
    }
    let mut stdout = String::new();
    use std::io::Read;
    let _ = child.stdout.take()?.read_to_string(&mut stdout);
    verdict(cell, CellResult::parse(&stdout), before)
}

/// How a finished cell's result line judges the mutant: `Some(why)` kills it.
fn verdict(cell: &str, result: Option<CellResult>, before: bool) -> Option<String> {
    let Some(result) = result else {
        return Some(format!("{cell} (the cell aborted)"));
    };
    if result.caught() {
        return Some(format!(
            "{cell} ({})",
            result
                .oracle
                .map_or("unclassified panic".to_owned(), |o| o.name().to_owned())
        ));
    }
    // An exhaustive run that never reached a window the fixed client always
    // reaches: the mutant changed what the scenario does (`verify` fails it).
    let complete = result.result == CellOutcome::Pass && result.executions > 0;
    let missed = result.coverage.iter().find(|w| w.hits == 0);
    match missed {
        Some(window) if !before && complete && result.checker == Checker::Loom => {
            Some(format!("{cell} (window never hit: {})", window.window))
        }
        _ => None,
    }
}

fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .current_dir(root)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn loom_pass(hits: &[usize]) -> CellResult {
        let mut result =
            CellResult::new(Checker::Loom, "S12", "fixed".into(), "loom bound 2".into());
        result.executions = 10;
        result.coverage = hits
            .iter()
            .enumerate()
            .map(|(i, &hits)| wsdrain_loom_tests::windows::WindowHits {
                window: format!("window {i}"),
                hits,
            })
            .collect();
        result
    }

    #[test]
    fn a_complete_loom_run_that_misses_a_window_kills_the_mutant() {
        assert_eq!(verdict("S12", Some(loom_pass(&[3, 7])), false), None);
        assert_eq!(
            verdict("S12", Some(loom_pass(&[3, 0])), false).as_deref(),
            Some("S12 (window never hit: window 1)")
        );
        // Not under the "before" judge, not for a run cut short, not under
        // shuttle (whose sampled runs can miss a rare window by chance).
        assert_eq!(verdict("S12", Some(loom_pass(&[0])), true), None);
        let mut cut_short = loom_pass(&[0]);
        cut_short.result = CellOutcome::Incomplete;
        assert_eq!(verdict("S12", Some(cut_short), false), None);
        let mut shuttle = loom_pass(&[0]);
        shuttle.checker = Checker::Shuttle;
        assert_eq!(verdict("S12", Some(shuttle), false), None);
        assert_eq!(
            verdict("S12", None, false).as_deref(),
            Some("S12 (the cell aborted)")
        );
    }

    #[derive(Parser)]
    struct Argv {
        #[command(flatten)]
        args: MutantsArgs,
    }

    fn args(extra: &[&str]) -> MutantsArgs {
        let mut argv = vec!["mutants", "--orderings", "--checker", "loom"];
        argv.extend(extra);
        Argv::parse_from(argv).args
    }

    /// Each ordering weakened to each weaker one, line by line, with a
    /// one-line diff that names the file; none in the unit tests.
    #[test]
    fn orderings_are_weakened_one_at_a_time() {
        let root = std::env::temp_dir().join(format!("wsdrain-orderings-{}", std::process::id()));
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(
            root.join("src/core.rs"),
            "fn f(a: &A) {\n    a.x.fetch_add(1, Ordering::AcqRel);\n    \
             a.y.compare_exchange(0, 1, Ordering::Release, Ordering::Acquire).ok();\n    \
             a.z.load(Ordering::Relaxed);\n}\n\nmod tests {\n    fn g(a: &A) { a.x.load(Ordering::Acquire); }\n}\n",
        )
        .unwrap();
        let files = vec!["src/core.rs".to_string()];
        let (mutants, _) = list_orderings(&root, &files, &args(&[])).unwrap();
        let names: Vec<&str> = mutants.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "src/core.rs:2:22: weaken Ordering::AcqRel to Acquire",
                "src/core.rs:2:22: weaken Ordering::AcqRel to Release",
                "src/core.rs:2:22: weaken Ordering::AcqRel to Relaxed",
                "src/core.rs:3:32: weaken Ordering::Release to Relaxed",
                "src/core.rs:3:51: weaken Ordering::Acquire to Relaxed",
            ]
        );
        assert_eq!(
            mutants[4].diff,
            "--- src/core.rs\n+++ weaken\n@@ -3,1 +3,1 @@\n\
             -    a.y.compare_exchange(0, 1, Ordering::Release, Ordering::Acquire).ok();\n\
             +    a.y.compare_exchange(0, 1, Ordering::Release, Ordering::Relaxed).ok();\n"
        );
        let (picked, _) = list_orderings(&root, &files, &args(&["--re", "to Release"])).unwrap();
        assert_eq!(picked.len(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn orderings_need_loom() {
        let mut shuttle = args(&[]);
        shuttle.checker = Checker::Shuttle;
        let error = run(&shuttle).unwrap_err();
        assert!(error.contains("--checker loom"), "{error}");
    }
}
