//! The generated explorer: programs of concurrent operations
//! (`wsdrain-model`) explored under the checker of this build.
//!
//! - shuttle: program `i` of the budget (`Program::generate(i)`, a fixed
//!   seed) under PCT (depth 3) and the random scheduler, `--schedules`
//!   executions each, until the first failure. A failure shrinks: first
//!   the program (deletion passes: a task, an operation, the manager;
//!   each candidate explored again with the same scheduler, seed and
//!   budget, kept if the same oracle fires), then the schedule (replayed
//!   with fewer context switches down to the fewest preemptions that still
//!   fail, as the hand-written scenarios' failures are: `crate::shrink`).
//! - loom: the programs that fit its five threads, each explored
//!   exhaustively at the preemption bound given. A failure shrinks too:
//!   first to the smallest bound at which the program fails, then the
//!   program by the same deletion passes, each candidate explored
//!   exhaustively at that bound in a child cell runner (loom aborts its
//!   process on a deadlock or a panic that cannot unwind, so a failure is
//!   shrunk from the panic hook, or after the SC search for a weak one);
//!   budget [`LOOM_SHRINK_TRIES`] candidates and
//!   [`LOOM_SHRINK_TIME`]. The counterexample is the smallest candidate's,
//!   with the replay file of its own exploration.
//!
//! A counterexample carries the program file and the checker's artifact;
//! `cargo xtask replay --program FILE ARTIFACT` reruns exactly that
//! execution and reports the same execution number.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wsdrain::probe::Oracle;
use wsdrain::{Bugs, ClientConfig};
use wsdrain_model::Program;
use wsdrain_model::generate::{Fit, program_seed};

use crate::cell::{self, CellOutcome, CellResult, Checker, Pending};
use crate::harness::{self, CHECKER, Failure, Outcome, Strategy};

/// The scenario id of generated cells in results and reports.
pub const SCENARIO_ID: &str = "G";

/// Deletion candidates tried at most when shrinking one failure.
const MAX_SHRINK_TRIES: usize = 80;
/// Time spent shrinking one failure at most.
const SHRINK_TIME: Duration = Duration::from_secs(60);

/// The program being explored, for the panic hook's report.
#[derive(Debug, Clone)]
struct Current {
    program: Program,
    file: PathBuf,
    /// How it was found and shrunk (one line).
    note: String,
}

static CURRENT: Mutex<Option<Current>> = Mutex::new(None);

fn lock_current() -> std::sync::MutexGuard<'static, Option<Current>> {
    CURRENT.lock().unwrap_or_else(|p| p.into_inner())
}

/// One execution of `program` with `bugs` switched on.
fn body(program: Program, bugs: Bugs) -> impl Fn() + Send + Sync + 'static {
    move || {
        wsdrain::sync::trace::reset();
        crate::oracles::reset();
        wsdrain_model::exec::run_model(&program, ClientConfig::default().with_bugs(bugs));
    }
}

/// The harness's form of one execution of `program`.
fn execution(program: &Program, bugs: Bugs) -> harness::Program {
    harness::Program::new(body(program.clone(), bugs))
}

/// Explore `program` once with `strategy` (no schedule shrinking).
pub fn explore_program(program: &Program, bugs: Bugs, strategy: &Strategy) -> Outcome {
    harness::explore_program(&execution(program, bugs), strategy)
}

/// Make `program` the current one, saved at `file` (a new file unless
/// given: replays keep theirs).
fn set_current(program: &Program, bugs: Bugs, file: Option<&Path>, note: String) -> PathBuf {
    let file = match file {
        Some(file) => file.to_owned(),
        None => {
            let file = harness::artifact_dir().join(format!(
                "generated-{CHECKER}-{}-{}.program.json",
                cell::variant_name(bugs),
                std::process::id()
            ));
            let _ = std::fs::write(&file, program.to_json());
            file
        }
    };
    *lock_current() = Some(Current {
        program: program.clone(),
        file: file.clone(),
        note,
    });
    file
}

/// The command that replays a generated counterexample.
pub fn replay_command(bugs: Bugs, program: &Path, artifact: &Path) -> String {
    let bug = bugs
        .iter()
        .next()
        .map(|b| format!(" --bug {}", b.id()))
        .unwrap_or_default();
    format!(
        "cargo xtask replay --checker {CHECKER} --program {}{bug} {}",
        program.display(),
        artifact.display()
    )
}

/// The report and replay command of a failure of the current program, in
/// the format of the hand-written scenarios' counterexamples.
pub fn report(failure: &Failure, bugs: Bugs, executions: usize) -> (String, Option<String>) {
    let current = lock_current().clone();
    let variant: Vec<String> = bugs.iter().map(|b| b.to_string()).collect();
    let variant = if variant.is_empty() {
        "fixed client".to_owned()
    } else {
        variant.join(", ")
    };
    let oracle = failure.oracle.map_or("unclassified panic", |o| o.name());
    let (program, file, note) = match &current {
        Some(c) => (c.program.describe(), Some(c.file.clone()), c.note.clone()),
        None => (String::new(), None, String::new()),
    };
    let preemptions = failure
        .preemptions
        .as_deref()
        .map(|p| format!(", {p}"))
        .unwrap_or_default();
    let mut out = format!(
        "counterexample: {variant} / {SCENARIO_ID} generated program / {CHECKER}, found after \
         {executions} execution(s){preemptions}{note}\n\
         oracle: {oracle}\n\
         failure: {}\n\n\
         program ({} ops{}):\n{program}\n{}",
        failure.message,
        current.as_ref().map_or(0, |c| c.program.len()),
        file.as_ref()
            .map(|f| format!(", {}", f.display()))
            .unwrap_or_default(),
        failure.trace
    );
    if failure.listing.is_weak() {
        out.push_str(
            "(loom explores the C11 memory model: a load may return an older value than the \
             latest store listed above when no happens-before edge orders them)\n",
        );
    }
    let replay = match (&file, &failure.artifact) {
        (Some(file), Some(artifact)) => Some(replay_command(bugs, file, artifact)),
        _ => None,
    };
    if let Some(replay) = &replay {
        out.push_str(&format!("\nreplay: {replay}\n"));
    }
    (out, replay)
}

/// The budget of one generated cell.
#[derive(Debug, Clone)]
pub struct Budget {
    /// The first program's index.
    pub first: u64,
    /// Programs to explore.
    pub programs: u64,
    /// shuttle: executions per program (half PCT depth 3, half random).
    pub schedules: usize,
    /// shuttle: the schedulers' base seed.
    pub seed: u64,
    /// loom: the preemption bound.
    pub bound: usize,
    /// Wall-time limit of the cell.
    pub max: Duration,
    /// Explore this program (e.g. a fuzz finding's file) instead of the
    /// generated ones.
    pub program: Option<Program>,
    /// Shrink a failure (off for the candidates a loom shrink explores).
    pub shrink: bool,
}

impl Budget {
    /// A hunt explores the given program once, or the generated ones.
    fn for_hunt(self) -> Budget {
        Budget {
            programs: if self.program.is_some() {
                1
            } else {
                self.programs
            },
            ..self
        }
    }

    /// Program `index` of this budget.
    fn program(&self, index: u64, fit: Fit) -> Program {
        match &self.program {
            Some(program) => program.clone(),
            None => Program::generate(index, fit),
        }
    }
}

fn strategies(index: u64, budget: &Budget) -> [Strategy; 2] {
    let seed = budget.seed ^ program_seed(index);
    let pct = budget.schedules.div_ceil(2);
    [
        Strategy::Pct {
            depth: 3,
            iterations: pct,
            seed,
        },
        Strategy::Random {
            iterations: (budget.schedules - pct).max(1),
            seed,
        },
    ]
}

fn describe(strategy: &Strategy) -> String {
    match strategy {
        Strategy::Pct { depth, seed, .. } => format!("PCT depth {depth} seed {seed}"),
        Strategy::Random { seed, .. } => format!("random seed {seed}"),
        Strategy::Loom {
            preemption_bound, ..
        } => format!("loom bound {}", preemption_bound.unwrap_or(0)),
    }
}

/// Run one generated cell under this build's checker; its result.
pub fn run(bugs: Bugs, budget: Budget) -> CellResult {
    harness::install_panic_hook();
    let strategy = match CHECKER {
        Checker::Shuttle => format!(
            "generated programs {}..{} x {} schedules (PCT depth 3 + random)",
            budget.first,
            budget.first + budget.programs,
            budget.schedules
        ),
        Checker::Loom => format!(
            "generated programs {}..{} fitting loom, bound {}",
            budget.first,
            budget.first + budget.programs,
            budget.bound
        ),
    };
    let mut result = CellResult::new(CHECKER, SCENARIO_ID, cell::variant_name(bugs), strategy);
    result.seed = Some(budget.seed);
    match CHECKER {
        Checker::Shuttle => hunt_shuttle(bugs, budget, result),
        Checker::Loom => hunt_loom(bugs, budget, result),
    }
}

fn hunt_shuttle(bugs: Bugs, budget: Budget, mut result: CellResult) -> CellResult {
    let budget = budget.for_hunt();
    let started = Instant::now();
    // The hook only captures: this run writes its result itself, after
    // shrinking (shuttle failures unwind; nothing aborts).
    cell::set_pending(None);
    let mut total = 0;
    let mut programs = 0;
    for index in budget.first..budget.first + budget.programs {
        if started.elapsed() >= budget.max {
            result.result = CellOutcome::Incomplete;
            break;
        }
        let program = budget.program(index, Fit::Any);
        programs += 1;
        for strategy in strategies(index, &budget) {
            let outcome = explore_program(&program, bugs, &strategy);
            total += outcome.executions;
            if let Some(failure) = outcome.failure.clone() {
                let found = Found {
                    index,
                    total,
                    ops: program.len(),
                };
                let (program, strategy, outcome) = if budget.shrink {
                    shrink(program, bugs, strategy, failure.oracle, outcome)
                } else {
                    (program, strategy, outcome)
                };
                let failure = outcome.failure.clone().expect("a shrunk failure fails");
                let note = format!(
                    " (program {} of the budget, {} execution(s) into it; shrunk from {} to {} \
                     ops; {})",
                    found.index,
                    found.total,
                    found.ops,
                    program.len(),
                    describe(&strategy)
                );
                let file = set_current(&program, bugs, None, note);
                if let Some(artifact) = &failure.artifact {
                    let _ = std::fs::write(
                        harness::sidecar(artifact, harness::FOUND_AFTER),
                        outcome.executions.to_string(),
                    );
                    if let Some(preemptions) = &failure.preemptions {
                        let _ = std::fs::write(
                            harness::sidecar(artifact, harness::PREEMPTIONS),
                            preemptions,
                        );
                    }
                }
                let (report, replay) = report(&failure, bugs, outcome.executions);
                result.result = CellOutcome::Caught;
                result.executions = found.total;
                result.programs = Some(programs);
                result.elapsed_ms = cell::ms(started.elapsed());
                result.oracle = failure.oracle;
                result.message = Some(failure.message.clone());
                result.report = Some(report);
                result.listing = Some(failure.listing.clone());
                result.artifact = failure.artifact.clone();
                result.replay = replay;
                let _ = file;
                return result;
            }
        }
    }
    result.executions = total;
    result.programs = Some(programs);
    result.elapsed_ms = cell::ms(started.elapsed());
    result
}

struct Found {
    index: u64,
    total: usize,
    ops: usize,
}

/// Shrink a failing program, then its schedule (see the module docs).
fn shrink(
    mut program: Program,
    bugs: Bugs,
    strategy: Strategy,
    oracle: Option<Oracle>,
    mut outcome: Outcome,
) -> (Program, Strategy, Outcome) {
    let deadline = Instant::now() + SHRINK_TIME;
    let same = |o: &Outcome| o.failure.as_ref().is_some_and(|f| f.oracle == oracle);
    let mut tries = 0;
    'smaller: loop {
        for candidate in program.shrink_candidates() {
            if tries >= MAX_SHRINK_TRIES || Instant::now() >= deadline {
                break 'smaller;
            }
            tries += 1;
            let out = explore_program(&candidate, bugs, &strategy);
            if same(&out) {
                program = candidate;
                outcome = out;
                continue 'smaller;
            }
        }
        break;
    }
    // Then the schedule: the fewest preemptions (replaying it with fewer
    // context switches, as the hand-written scenarios' failures are).
    #[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
    let outcome = {
        let mut outcome = harness::shrink_schedule(&execution(&program, bugs), outcome);
        if let Some(failure) = &mut outcome.failure {
            failure.preemptions = harness::shrunk_preemptions();
        }
        outcome
    };
    (program, strategy, outcome)
}

fn hunt_loom(bugs: Bugs, budget: Budget, mut result: CellResult) -> CellResult {
    let budget = budget.for_hunt();
    let started = Instant::now();
    let mut total = 0;
    let mut programs = 0;
    result.bound = Some(budget.bound);
    for index in budget.first..budget.first + budget.programs {
        let left = budget.max.saturating_sub(started.elapsed());
        if left.is_zero() {
            result.result = CellOutcome::Incomplete;
            break;
        }
        let program = budget.program(index, Fit::Loom);
        programs += 1;
        let note = if budget.program.is_some() {
            file_note(budget.bound)
        } else {
            format!(
                " (program {index} of the budget, loom bound {})",
                budget.bound
            )
        };
        set_current(&program, bugs, None, note);
        // A replay needs the checkpoint: kept for a bug, and for a program
        // file (a loom shrink's candidate, whose failure is the one reported).
        let checkpoint = (bugs.iter().next().is_some() || budget.program.is_some()).then(|| {
            let path = harness::artifact_dir().join(format!(
                "loom-G-{}-{}.json",
                cell::variant_name(bugs),
                std::process::id()
            ));
            let _ = std::fs::remove_file(&path);
            path
        });
        result.programs = Some(programs);
        // A failure is written by the panic hook (loom may abort).
        cell::set_pending(Some(Pending {
            result: result.clone(),
            started,
            executions_before: total,
        }));
        let strategy = Strategy::Loom {
            preemption_bound: Some(budget.bound),
            max_duration: Some(left),
            checkpoint,
        };
        *lock_hunt() = budget.shrink.then(|| LoomHunt {
            program: program.clone(),
            bugs,
            bound: budget.bound,
            index,
            from_file: budget.program.is_some(),
            started,
        });
        let outcome = explore_program(&program, bugs, &strategy);
        total += outcome.executions;
        let hunt = lock_hunt().take();
        if let Some(failure) = &outcome.failure {
            // Written by the hook already: that is the result unless the
            // shrink (here, or from the hook if loom was about to abort)
            // finds a smaller program, which it then writes again.
            if let Some(hunt) = hunt
                && let Some(shrunk) = shrink_and_write(hunt, failure.oracle)
            {
                return shrunk;
            }
            return result;
        }
        if outcome.incomplete {
            result.result = CellOutcome::Incomplete;
            break;
        }
    }
    cell::set_pending(None);
    result.executions = total;
    result.programs = Some(programs);
    result.elapsed_ms = cell::ms(started.elapsed());
    result
}

/// loom: candidates explored at most when shrinking one failure.
const LOOM_SHRINK_TRIES: usize = 40;
/// loom: time spent shrinking one failure at most (it runs in each bug's
/// cell of `verify`: two-ops programs take 13-30 s at load 1-4).
const LOOM_SHRINK_TIME: Duration = Duration::from_secs(45);

/// A loom failure shrunk: the result of the cell that explored the
/// smallest failing program (its report, replay file and command), and
/// what the shrink cost.
struct LoomShrunk {
    result: CellResult,
    ops: usize,
    tries: usize,
    elapsed: Duration,
}

/// The note a program file's loom cell puts in its heading (a loom shrink
/// replaces it with how the program was found and shrunk).
fn file_note(bound: usize) -> String {
    format!(" (the program file, loom bound {bound})")
}

/// Shrink `program`, which failed `oracle` under loom at `bound`, as the
/// shuttle path does, but with loom's exhaustive exploration: first the
/// bound (the smallest below `bound` at which it fails), then the program
/// (deletion candidates: a task, an operation, the manager; kept if the
/// same oracle fires), each candidate explored at that bound in its own
/// cell-runner process (loom reports a deadlock by aborting the process).
/// Budget: [`LOOM_SHRINK_TRIES`] candidates, [`LOOM_SHRINK_TIME`]. `None`
/// if nothing smaller fails the same way (the original result stands).
fn shrink_loom(
    program: &Program,
    bugs: Bugs,
    bound: usize,
    oracle: Option<Oracle>,
) -> Option<LoomShrunk> {
    let started = Instant::now();
    let deadline = started + LOOM_SHRINK_TIME;
    let binary = std::env::current_exe().ok()?;
    let spent = |tries: usize| tries >= LOOM_SHRINK_TRIES || Instant::now() >= deadline;
    let mut tries = 0;
    let mut best: Option<(Program, CellResult)> = None;
    let mut at = bound;
    for lower in 0..bound {
        if spent(tries) {
            break;
        }
        tries += 1;
        if let Some(r) = explore_child(&binary, program, bugs, lower, oracle, deadline, tries) {
            best = Some((program.clone(), r));
            at = lower;
            break;
        }
    }
    let mut current = program.clone();
    'smaller: loop {
        for candidate in current.shrink_candidates() {
            if spent(tries) {
                break 'smaller;
            }
            tries += 1;
            if let Some(r) = explore_child(&binary, &candidate, bugs, at, oracle, deadline, tries) {
                current = candidate.clone();
                best = Some((candidate, r));
                continue 'smaller;
            }
        }
        break;
    }
    best.map(|(program, result)| LoomShrunk {
        result,
        ops: program.len(),
        tries,
        elapsed: started.elapsed(),
    })
}

/// The loom program being explored, kept for its shrink: from the panic
/// hook (loom may abort the process once it returns), or from the hunt
/// after the SC search of a weak-memory failure.
struct LoomHunt {
    program: Program,
    bugs: Bugs,
    bound: usize,
    index: u64,
    /// Whether the program came from a file (not the budget's generator).
    from_file: bool,
    started: Instant,
}

static LOOM_HUNT: Mutex<Option<LoomHunt>> = Mutex::new(None);

fn lock_hunt() -> std::sync::MutexGuard<'static, Option<LoomHunt>> {
    LOOM_HUNT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Called by the panic hook after it wrote the result of a loom failure:
/// shrink it now, before loom can abort the process (a deadlock, a panic
/// that cannot unwind), on a thread of its own (the hook runs on a loom
/// thread's small stack).
pub(crate) fn shrink_at_failure(oracle: Option<Oracle>) {
    let Some(hunt) = lock_hunt().take() else {
        return;
    };
    let _ = std::thread::spawn(move || shrink_and_write(hunt, oracle)).join();
}

/// Shrink the hunt's failing program ([`shrink_loom`]); if something
/// smaller fails the same way, write its result (the executions to
/// detection stay the hunt's) after the one written at the failure.
fn shrink_and_write(hunt: LoomHunt, oracle: Option<Oracle>) -> Option<CellResult> {
    let (found, _) = harness::caught_result()?;
    let LoomShrunk {
        result: mut shrunk,
        ops,
        tries,
        elapsed,
    } = shrink_loom(&hunt.program, hunt.bugs, hunt.bound, oracle)?;
    let at = shrunk.bound.unwrap_or(hunt.bound);
    if let Some(report) = &mut shrunk.report {
        let program = if hunt.from_file {
            "the program file".to_owned()
        } else {
            format!("program {} of the budget", hunt.index)
        };
        let note = format!(
            " ({program}, {} execution(s) into it at loom bound {}; shrunk from {} to {ops} ops \
             in {tries} candidate(s), {:.0} s; loom bound {at})",
            found.executions,
            hunt.bound,
            hunt.program.len(),
            elapsed.as_secs_f64(),
        );
        *report = report.replacen(&file_note(at), &note, 1);
    }
    shrunk.strategy = found.strategy;
    shrunk.seed = found.seed;
    shrunk.executions = found.executions;
    shrunk.programs = found.programs;
    shrunk.elapsed_ms = cell::ms(hunt.started.elapsed());
    cell::write_again(&shrunk);
    Some(shrunk)
}

/// Explore `candidate` under loom at `bound` in a child cell runner; its
/// result if it failed `oracle` within the time left.
fn explore_child(
    binary: &Path,
    candidate: &Program,
    bugs: Bugs,
    bound: usize,
    oracle: Option<Oracle>,
    deadline: Instant,
    n: usize,
) -> Option<CellResult> {
    let left = deadline.checked_duration_since(Instant::now())?;
    let variant = cell::variant_name(bugs);
    let file = harness::artifact_dir().join(format!(
        "generated-loom-{variant}-{}-candidate-{n}.program.json",
        std::process::id()
    ));
    std::fs::write(&file, candidate.to_json()).ok()?;
    let command = cell::CellCommand::generated(&variant, 0, 1)
        .program_file(&file)
        .bound(bound)
        .max_seconds(left.as_secs().max(1))
        .no_shrink();
    let result = command.execute(binary).ok();
    // The child saved its own copy, which its report and replay name.
    let _ = std::fs::remove_file(&file);
    result.filter(|r| r.caught() && r.oracle == oracle)
}

/// Replay a generated counterexample: `program` (its file) under the
/// checker's `artifact`. Writes the result itself or through the hook.
pub fn replay(program_file: &Path, bugs: Bugs, artifact: &Path) -> Result<CellResult, String> {
    let json = std::fs::read_to_string(program_file)
        .map_err(|e| format!("read {}: {e}", program_file.display()))?;
    let program = Program::from_json(&json)?;
    harness::install_panic_hook();
    set_current(&program, bugs, Some(program_file), " (replayed)".into());
    let mut result = CellResult::new(
        CHECKER,
        SCENARIO_ID,
        cell::variant_name(bugs),
        format!("replay {}", artifact.display()),
    );
    result.artifact = Some(artifact.to_owned());
    let started = Instant::now();
    cell::set_pending(Some(Pending {
        result: result.clone(),
        started,
        executions_before: 0,
    }));
    let outcome = harness::replay_cell(&execution(&program, bugs), artifact);
    cell::set_pending(None);
    result.executions = outcome.executions;
    result.elapsed_ms = cell::ms(started.elapsed());
    Ok(result)
}
