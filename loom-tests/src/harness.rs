//! Running a scenario under the checker this build was compiled for, and
//! turning a failure into a readable, replayable counterexample.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wsdrain::Bugs;
use wsdrain::probe::{Oracle, Violation};

use crate::cell::{CellOutcome, Checker};
use crate::listing::{Listing, ListingStyle};
use crate::scenarios::Scenario;

/// The checker compiled into this build (the harness exists only in model
/// builds).
pub const CHECKER: Checker = match Checker::COMPILED {
    Some(checker) => checker,
    None => panic!("the harness is built only with a checker's cfg"),
};

/// How to explore.
#[derive(Debug, Clone)]
pub enum Strategy {
    /// loom, exhaustive within the preemption bound (`None`: unbounded).
    Loom {
        /// `LOOM_MAX_PREEMPTIONS`.
        preemption_bound: Option<usize>,
        /// Give up after this long (the run then counts as incomplete).
        max_duration: Option<Duration>,
        /// Where to keep the checkpoint that replays a failure.
        checkpoint: Option<PathBuf>,
    },
    /// shuttle's PCT scheduler.
    Pct {
        /// Bug depth.
        depth: usize,
        /// Executions.
        iterations: usize,
        /// RNG seed.
        seed: u64,
    },
    /// shuttle's uniform random scheduler.
    Random {
        /// Executions.
        iterations: usize,
        /// RNG seed.
        seed: u64,
    },
}

/// A failing execution, ready to show.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The oracle that fired (None: an unexpected panic).
    pub oracle: Option<Oracle>,
    /// The panic message.
    pub message: String,
    /// The interleaving that led there (trimmed), as listed.
    pub trace: String,
    /// The same interleaving as data.
    pub listing: Listing,
    /// The file that replays it (loom checkpoint or shuttle schedule).
    pub artifact: Option<PathBuf>,
    /// Its preemptions, as the heading says them ("2 preemption(s)",
    /// "1 preemption(s), shrunk from 9"), when known.
    pub preemptions: Option<String>,
    /// loom: what the search for a sequentially consistent execution of
    /// the same failure found, when the first one was weak (see
    /// [`crate::sc_search`]).
    pub memory_note: Option<String>,
}

/// What an exploration found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Executions run (the failing one included).
    pub executions: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// The first failure, if any.
    pub failure: Option<Failure>,
    /// Whether the exploration stopped on its time limit before finishing.
    pub incomplete: bool,
}

static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
/// The first panic of a run: its oracle (typed, when the probe raised it),
/// its message and the interleaving of the execution it happened in.
#[derive(Debug, Clone)]
struct Captured {
    oracle: Option<Oracle>,
    message: String,
    listing: Listing,
}

static FIRST_PANIC: Mutex<Option<Captured>> = Mutex::new(None);

/// Client steps a listing shows at most (the last ones).
const LISTED_STEPS: usize = 60;

/// Install (once) the panic hook that captures the first failure of a run
/// together with the trace of the execution it happened in. It stays quiet
/// unless `WSDRAIN_SHOW_PANICS` is set: failures are reported by the harness.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let (oracle, message) = payload_failure(info.payload());
            // An injected fault, not a failure: the client catches it (or
            // the task ends, as under tokio).
            if message.contains(wsdrain::transport::INJECTED_PANIC) {
                return;
            }
            let (oracle, message) = crate::oracles::explain(oracle, message);
            let mut first = FIRST_PANIC.lock().unwrap_or_else(|p| p.into_inner());
            let is_first = first.is_none();
            if is_first {
                let location = info
                    .location()
                    .filter(|_| !crate::oracles::is_causality(&message))
                    .map(|l| format!(" (at {}:{})", l.file(), l.line()))
                    .unwrap_or_default();
                *first = Some(Captured {
                    oracle,
                    message: format!("{message}{location}"),
                    listing: Listing::capture(LISTED_STEPS),
                });
            }
            let captured = first.clone();
            drop(first);
            if std::env::var_os("WSDRAIN_SHOW_PANICS").is_some() {
                default(info);
            }
            // The process may abort right after this hook (loom reports a
            // deadlock with a non-unwinding panic): write the cell now.
            // shuttle's panics unwind: its cell is written after the
            // failure was shrunk (`explore`, `replay`).
            if is_first
                && cfg!(wsdrain_loom)
                && !sc_searching()
                && let (Some(pending), Some(captured)) = (crate::cell::pending(), captured)
            {
                let oracle = captured
                    .oracle
                    .or_else(|| Oracle::classify(&captured.message));
                // A weak-memory failure is followed by the SC search, and
                // shrunk after it; any other, now, in case loom aborts.
                let weak = captured.listing.is_weak();
                crate::cell::write_once(&caught(pending, captured));
                if !weak {
                    crate::generated::shrink_at_failure(oracle);
                }
            }
        }));
    });
}

/// Whether loom's SC search runs (its failures are its own, not the cell's).
fn sc_searching() -> bool {
    #[cfg(wsdrain_loom)]
    return crate::sc_search::searching();
    #[cfg(not(wsdrain_loom))]
    false
}

/// The result of a cell whose run just failed with `message`.
fn caught(pending: crate::cell::Pending, captured: Captured) -> crate::cell::CellResult {
    let Captured {
        oracle,
        message,
        listing,
    } = captured;
    let mut result = pending.result;
    // `None`: a generated program ([`crate::generated`]).
    let scenario = Scenario::from_name(&result.scenario);
    let bugs = crate::cell::parse_variant(&result.variant).expect("a known variant");
    let executions = pending.executions_before + EXECUTIONS.load(Ordering::SeqCst);
    let replaying = result.strategy.starts_with("replay");
    #[cfg(wsdrain_loom)]
    let artifact = if replaying {
        result.artifact.clone()
    } else {
        current_artifact().map(|checkpoint| save_replay_meta(&checkpoint, result.bound))
    };
    #[cfg(not(wsdrain_loom))]
    let artifact = current_artifact();
    // A replay says what the run that found the failure said.
    let preemptions = if replaying {
        result
            .artifact
            .as_deref()
            .and_then(|a| read_sidecar(a, PREEMPTIONS))
    } else {
        let preemptions = found_preemptions(result.bound);
        if let (Some(artifact), Some(text)) = (&artifact, &preemptions) {
            let _ = std::fs::write(sidecar(artifact, PREEMPTIONS), text);
        }
        preemptions
    };
    // The SC search (which runs after this, see `explore`) leaves its note
    // next to the artifact it reports.
    let memory_note = if replaying {
        result
            .artifact
            .as_deref()
            .and_then(|a| read_sidecar(a, MEMORY_NOTE))
    } else {
        None
    };
    let failure = Failure {
        oracle: oracle.or_else(|| Oracle::classify(&message)),
        message,
        trace: listing.render(ListingStyle::from_env()),
        listing,
        artifact: artifact.clone(),
        preemptions,
        memory_note,
    };
    result.result = CellOutcome::Caught;
    result.executions = executions;
    result.elapsed_ms = crate::cell::ms(pending.started.elapsed());
    result.oracle = failure.oracle;
    result.message = Some(failure.message.clone());
    result.listing = Some(failure.listing.clone());
    // A replay reruns only the tail of the exploration (from the last loom
    // checkpoint, or shuttle's one schedule): it reports the number the
    // original run found the failure at, which it left next to the artifact.
    let found_after = if replaying {
        result
            .artifact
            .as_deref()
            .and_then(|a| read_sidecar(a, FOUND_AFTER))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(executions)
    } else {
        if let Some(artifact) = &artifact {
            let _ = std::fs::write(sidecar(artifact, FOUND_AFTER), executions.to_string());
        }
        executions
    };
    let (report, replay) = match scenario {
        Some(scenario) => (
            failure.report(CHECKER, scenario, bugs, found_after),
            artifact
                .as_deref()
                .map(|a| replay_command(scenario, bugs, a)),
        ),
        None => crate::generated::report(&failure, bugs, found_after),
    };
    result.report = Some(report);
    result.replay = replay;
    result.artifact = artifact;
    *CAUGHT.lock().unwrap_or_else(|p| p.into_inner()) = Some((result.clone(), found_after));
    result
}

/// The cell result the panic hook wrote last, and the execution count its
/// heading says: the SC search rewrites it (see [`crate::sc_search`]).
static CAUGHT: Mutex<Option<(crate::cell::CellResult, usize)>> = Mutex::new(None);

/// The cell result written at the failure, if any, and its "found after".
#[cfg_attr(not(wsdrain_loom), allow(dead_code))]
pub(crate) fn caught_result() -> Option<(crate::cell::CellResult, usize)> {
    CAUGHT.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The sidecar holding the execution count the failure was found at.
pub(crate) const FOUND_AFTER: &str = "found-after";
/// The sidecar holding the failure's preemptions, as its heading says them.
pub(crate) const PREEMPTIONS: &str = "preemptions";
/// The sidecar holding the SC search's note (see [`crate::sc_search`]).
pub(crate) const MEMORY_NOTE: &str = "memory";

/// Where a fact about a failure is kept for its replay, next to its artifact.
pub(crate) fn sidecar(artifact: &Path, what: &str) -> PathBuf {
    let mut path = artifact.as_os_str().to_owned();
    path.push(".");
    path.push(what);
    PathBuf::from(path)
}

fn read_sidecar(artifact: &Path, what: &str) -> Option<String> {
    std::fs::read_to_string(sidecar(artifact, what)).ok()
}

/// The preemptions of the failure just found: loom's is the bound it was
/// found at (iterative deepening: none was found below it); shuttle's is
/// that of the shrunk schedule.
#[cfg(wsdrain_loom)]
fn found_preemptions(bound: Option<usize>) -> Option<String> {
    bound.map(|b| format!("{b} preemption(s)"))
}

#[cfg(not(wsdrain_loom))]
fn found_preemptions(_bound: Option<usize>) -> Option<String> {
    shrunk_now().map(|s| {
        if s.from > s.preemptions {
            format!(
                "{} preemption(s) (shrunk from {} in {} replays)",
                s.preemptions, s.from, s.tried
            )
        } else {
            format!("{} preemption(s)", s.preemptions)
        }
    })
}

#[cfg(wsdrain_loom)]
static ARTIFACT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The replay artifact of the run in progress: the loom checkpoint it
/// writes, or the shrunk (else the newest) shuttle schedule.
fn current_artifact() -> Option<PathBuf> {
    #[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
    {
        shrunk_now()
            .map(|s| s.schedule)
            .or_else(|| newest_schedule(&schedule_dir()))
    }
    #[cfg(not(all(wsdrain_shuttle, not(wsdrain_loom))))]
    {
        ARTIFACT.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The oracle and message of a panic payload: typed when the probe raised
/// it (a [`Violation`]); otherwise the text, whose oracle (a `WaitGroup`
/// misuse, a checker's deadlock report) [`Oracle::classify`] recognises.
fn payload_failure(payload: &(dyn Any + Send)) -> (Option<Oracle>, String) {
    match payload.downcast_ref::<Violation>() {
        Some(violation) => (Some(violation.oracle), violation.message.clone()),
        None => (None, payload_text(payload)),
    }
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

/// Explore `scenario` with `bugs` switched on. A shuttle failure is shrunk
/// to its fewest preemptions (see [`crate::shrink`]) before it is reported.
///
/// loom: when the failure found first is a weak-memory execution (its
/// listing has stale reads no order explains), the same cell is explored
/// again with every atomic sequentially consistent, within a budget, for a
/// sequentially consistent execution of the same failure (see
/// [`crate::sc_search`]).
pub fn explore(scenario: Scenario, bugs: Bugs, strategy: &Strategy) -> Outcome {
    let program = Program::scenario(scenario, bugs);
    let outcome = run_program(&program, |body| run_checker(strategy, body));
    #[cfg(wsdrain_loom)]
    let outcome = crate::sc_search::follow_up(&program, strategy, outcome);
    #[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
    let outcome = shrunk(&program, outcome);
    outcome
}

/// What an exploration runs: one execution of a scenario of the catalog,
/// or of a small program (the harness's own tests).
#[derive(Clone)]
pub struct Program(std::sync::Arc<dyn Fn() + Send + Sync>);

impl Program {
    /// `scenario` with `bugs` switched on, its race windows recorded.
    pub fn scenario(scenario: Scenario, bugs: Bugs) -> Program {
        Program(std::sync::Arc::new(move || {
            scenario.run(bugs);
            crate::windows::record(scenario);
        }))
    }

    /// Any program over the sync facade (one execution of it; each starts
    /// a fresh trace).
    pub fn new(body: impl Fn() + Send + Sync + 'static) -> Program {
        Program(std::sync::Arc::new(move || {
            wsdrain::sync::trace::reset();
            body();
        }))
    }

    /// Run one execution (inside a checker's model).
    pub fn run(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Program")
    }
}

/// [`explore`] for any program: loom runs the same SC search after a weak
/// failure (no shrinking under shuttle, no cell result written).
pub fn explore_program(program: &Program, strategy: &Strategy) -> Outcome {
    let outcome = run_program(program, |body| run_checker(strategy, body));
    #[cfg(wsdrain_loom)]
    let outcome = crate::sc_search::follow_up(program, strategy, outcome);
    outcome
}

/// [`replay`] for any program.
pub fn replay_program(program: &Program, artifact: &Path) -> Outcome {
    let mut outcome = run_program(program, |body| {
        (
            replay_checker(artifact, body),
            Some(artifact.to_owned()),
            false,
        )
    });
    if let Some(failure) = &mut outcome.failure {
        failure.memory_note = read_sidecar(artifact, MEMORY_NOTE);
    }
    outcome
}

/// Shrink a shuttle failure of `program` to its fewest preemptions, as
/// [`explore`] does (the generated explorer shrinks its program first).
#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
pub fn shrink_schedule(program: &Program, outcome: Outcome) -> Outcome {
    shrunk(program, outcome)
}

/// The preemptions of the failure [`shrink_schedule`] just shrank, as a
/// counterexample's heading says them.
#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
pub fn shrunk_preemptions() -> Option<String> {
    found_preemptions(None)
}

/// [`replay_program`] for a cell: a shuttle failure's result is written at
/// the end, as [`replay`] writes a scenario's.
pub fn replay_cell(program: &Program, artifact: &Path) -> Outcome {
    let outcome = replay_program(program, artifact);
    #[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
    write_shuttle_result(&outcome);
    outcome
}

/// Replay a failure from its artifact (the loom replay file, or the shuttle
/// schedule): reruns the failing execution, which is the last one run.
pub fn replay(scenario: Scenario, bugs: Bugs, artifact: &Path) -> Outcome {
    let outcome = run(scenario, bugs, |body| {
        (
            replay_checker(artifact, body),
            Some(artifact.to_owned()),
            false,
        )
    });
    #[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
    write_shuttle_result(&outcome);
    outcome
}

/// The shrunk schedule of the shuttle failure being reported.
#[cfg(not(wsdrain_loom))]
static SHRUNK: Mutex<Option<ShrunkSchedule>> = Mutex::new(None);

#[cfg(not(wsdrain_loom))]
#[derive(Debug, Clone)]
struct ShrunkSchedule {
    schedule: PathBuf,
    preemptions: usize,
    from: usize,
    tried: usize,
}

#[cfg(not(wsdrain_loom))]
fn shrunk_now() -> Option<ShrunkSchedule> {
    SHRUNK.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Shrink the failure of `outcome` (if any) by replaying it with fewer
/// preemptions, keep the smallest that fails the same oracle, and write the
/// cell's result with it.
#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
fn shrunk(program: &Program, outcome: Outcome) -> Outcome {
    use std::sync::Arc;

    use crate::shrink::{self, Attempt, Taken};

    let Some(found) = outcome.failure.clone() else {
        return outcome;
    };
    let executions = EXECUTIONS.load(Ordering::SeqCst);
    let same = |f: &Failure| {
        f.oracle == found.oracle && (found.oracle.is_some() || f.message == found.message)
    };
    let original = found.artifact.as_deref().and_then(shrink::read_schedule);
    let mut candidates = 0;
    let result = original.and_then(|original| {
        shrink::shrink(&original, |guide| {
            let seed = guide.seed;
            let taken = Arc::new(Mutex::new(Taken::default()));
            let recorded = taken.clone();
            let out = run_program(program, move |body| guided_checker(guide, recorded, body));
            let taken = taken.lock().unwrap_or_else(|p| p.into_inner()).clone();
            // shuttle skips persisting a schedule as long as the last one
            // it persisted: the candidate's schedule is written here.
            if let Some(artifact) = out.failure.as_ref().and_then(|f| f.artifact.as_ref())
                && Some(artifact) != found.artifact.as_ref()
            {
                let _ = std::fs::remove_file(artifact);
            }
            let failure = out.failure.filter(|f| same(f)).and_then(|f| {
                candidates += 1;
                let path = schedule_dir().join(format!("schedule-shrunk-{candidates}.txt"));
                shrink::write_schedule(&path, seed, &taken).ok()?;
                Some((f, path))
            });
            Attempt { failure, taken }
        })
    });
    EXECUTIONS.store(executions, Ordering::SeqCst);
    let outcome = match result {
        Some(small) => {
            *SHRUNK.lock().unwrap_or_else(|p| p.into_inner()) = Some(ShrunkSchedule {
                schedule: small.schedule.clone(),
                preemptions: small.preemptions,
                from: small.from,
                tried: small.tried,
            });
            Outcome {
                failure: Some(Failure {
                    artifact: Some(small.schedule),
                    ..small.failure
                }),
                ..outcome
            }
        }
        None => outcome,
    };
    write_shuttle_result(&outcome);
    outcome
}

/// Write the cell's result for a shuttle failure (its panics unwind, so the
/// panic hook leaves the writing to the end of the run).
#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
fn write_shuttle_result(outcome: &Outcome) {
    if let (Some(pending), Some(failure)) = (crate::cell::pending(), &outcome.failure) {
        let captured = Captured {
            oracle: failure.oracle,
            message: failure.message.clone(),
            listing: failure.listing.clone(),
        };
        crate::cell::write_once(&caught(pending, captured));
    }
}

/// Run the body once under [`crate::shrink::Guided`], following `guide`.
#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
fn guided_checker(
    guide: shuttle::scheduler::Schedule,
    taken: std::sync::Arc<Mutex<crate::shrink::Taken>>,
    body: impl Fn() + Send + Sync + 'static,
) -> RunResult {
    let dir = schedule_dir();
    let before = newest_schedule(&dir);
    let mut config = shuttle::Config::new();
    config.failure_persistence = shuttle::FailurePersistence::File(Some(dir.clone()));
    config.silence_warnings = true;
    quiet_injected_panics(&config);
    let scheduler = crate::shrink::Guided::new(guide, taken);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shuttle::Runner::new(scheduler, config).run(body);
    }));
    let artifact = if result.is_err() {
        newest_schedule(&dir).filter(|p| Some(p) != before.as_ref())
    } else {
        None
    };
    (result, artifact, false)
}

/// Run the scenario's executions through `check`, counting them and turning
/// the first panic into a [`Failure`].
fn run(
    scenario: Scenario,
    bugs: Bugs,
    check: impl FnOnce(Box<dyn Fn() + Send + Sync>) -> RunResult,
) -> Outcome {
    run_program(&Program::scenario(scenario, bugs), check)
}

/// [`run`] for any program.
pub(crate) fn run_program(
    program: &Program,
    check: impl FnOnce(Box<dyn Fn() + Send + Sync>) -> RunResult,
) -> Outcome {
    install_panic_hook();
    EXECUTIONS.store(0, Ordering::SeqCst);
    *FIRST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let program = program.0.clone();
    let body = Box::new(move || {
        EXECUTIONS.fetch_add(1, Ordering::SeqCst);
        program();
    });
    let start = Instant::now();
    let (result, artifact, incomplete) = check(body);
    let elapsed = start.elapsed();
    let failure = result.err().map(|payload| {
        let captured = FIRST_PANIC.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Captured {
            oracle,
            message,
            listing,
        } = captured.unwrap_or_else(|| {
            let (oracle, message) = payload_failure(&*payload);
            let (oracle, message) = crate::oracles::explain(oracle, message);
            Captured {
                oracle,
                message,
                listing: Listing::default(),
            }
        });
        Failure {
            oracle: oracle.or_else(|| Oracle::classify(&message)),
            message,
            trace: listing.render(ListingStyle::from_env()),
            listing,
            artifact,
            preemptions: None,
            memory_note: None,
        }
    });
    Outcome {
        executions: EXECUTIONS.load(Ordering::SeqCst),
        elapsed,
        incomplete: incomplete && failure.is_none(),
        failure,
    }
}

pub(crate) type RunResult = (std::thread::Result<()>, Option<PathBuf>, bool);

/// How often (in executions) a loom exploration saves its checkpoint.
#[cfg(wsdrain_loom)]
const CHECKPOINT_INTERVAL: usize = 256;

/// What replaying a loom failure needs besides the checkpoint: the bound
/// and the failing execution's number within its exploration.
#[cfg(wsdrain_loom)]
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ReplayMeta {
    /// The checkpoint file (absent if the failure came before the first one).
    checkpoint: PathBuf,
    bound: Option<usize>,
    execution: usize,
    interval: usize,
    /// Whether it was found with every atomic forced to `SeqCst` (the SC
    /// search): the replay forces it too.
    #[serde(default)]
    seq_cst: bool,
}

/// Called at the failure: record where in the exploration it happened, in
/// the file that is the counterexample's replay artifact.
#[cfg(wsdrain_loom)]
fn save_replay_meta(checkpoint: &Path, bound: Option<usize>) -> PathBuf {
    save_replay_meta_of(checkpoint, bound, EXECUTIONS.load(Ordering::SeqCst), false)
}

/// Write the replay file of the failure at `execution` of an exploration
/// at `bound` that kept `checkpoint` (`seq_cst`: with every atomic forced
/// to `SeqCst`).
#[cfg(wsdrain_loom)]
pub(crate) fn save_replay_meta_of(
    checkpoint: &Path,
    bound: Option<usize>,
    execution: usize,
    seq_cst: bool,
) -> PathBuf {
    let meta = ReplayMeta {
        checkpoint: checkpoint.to_owned(),
        bound,
        execution,
        interval: CHECKPOINT_INTERVAL,
        seq_cst,
    };
    let path = checkpoint.with_extension("replay.json");
    if let Ok(json) = serde_json::to_string_pretty(&meta) {
        let _ = std::fs::write(&path, json);
    }
    path
}

#[cfg(wsdrain_loom)]
fn run_checker(strategy: &Strategy, body: impl Fn() + Send + Sync + 'static) -> RunResult {
    let Strategy::Loom {
        preemption_bound,
        max_duration,
        checkpoint,
    } = strategy
    else {
        panic!("this build has loom; shuttle strategies need --cfg wsdrain_shuttle");
    };
    *ARTIFACT.lock().unwrap_or_else(|p| p.into_inner()) = checkpoint.clone();
    loom_check(
        *preemption_bound,
        *max_duration,
        None,
        checkpoint.as_deref(),
        body,
    )
}

/// One loom exploration: at `preemption_bound`, stopping after
/// `max_duration` or `max_executions`, keeping `checkpoint`.
#[cfg(wsdrain_loom)]
pub(crate) fn loom_check(
    preemption_bound: Option<usize>,
    max_duration: Option<Duration>,
    max_executions: Option<usize>,
    checkpoint: Option<&Path>,
    body: impl Fn() + Send + Sync + 'static,
) -> RunResult {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = preemption_bound;
    builder.max_duration = max_duration;
    builder.max_branches = 10_000;
    if let Some(max) = max_executions {
        // loom checks its limits every `checkpoint_interval` executions.
        builder.checkpoint_interval = CHECKPOINT_INTERVAL;
        builder.max_permutations = Some(max);
    }
    if let Some(path) = checkpoint {
        // A fresh exploration: loom would resume from an existing file.
        let _ = std::fs::remove_file(path);
        // Every CHECKPOINT_INTERVAL executions the file takes the path of the
        // execution about to run. A failure at execution k then replays from
        // the last checkpoint in at most CHECKPOINT_INTERVAL executions (see
        // `replay_checker`); writing it every execution would cost 5-10x.
        builder.checkpoint_file = Some(path.to_owned());
        builder.checkpoint_interval = CHECKPOINT_INTERVAL;
    }
    let start = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.check(body)));
    let incomplete = max_duration.is_some_and(|d| start.elapsed() >= d);
    (result, checkpoint.map(Path::to_owned), incomplete)
}

#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
fn run_checker(strategy: &Strategy, body: impl Fn() + Send + Sync + 'static) -> RunResult {
    use shuttle::scheduler::{PctScheduler, RandomScheduler};
    use shuttle::{Config, FailurePersistence, Runner};

    let dir = schedule_dir();
    let before = newest_schedule(&dir);
    let mut config = Config::new();
    config.failure_persistence = FailurePersistence::File(Some(dir.clone()));
    config.silence_warnings = true;
    quiet_injected_panics(&config);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match *strategy {
        Strategy::Pct {
            depth,
            iterations,
            seed,
        } => {
            Runner::new(PctScheduler::new_from_seed(seed, depth, iterations), config).run(body);
        }
        Strategy::Random { iterations, seed } => {
            Runner::new(RandomScheduler::new_from_seed(seed, iterations), config).run(body);
        }
        Strategy::Loom { .. } => {
            panic!("this build has shuttle; loom strategies need --cfg wsdrain_loom")
        }
    }));
    let artifact = if result.is_err() {
        newest_schedule(&dir).filter(|p| Some(p) != before.as_ref())
    } else {
        None
    };
    (result, artifact, false)
}

/// shuttle's panic hook (installed by its first run) saves a failing
/// schedule for every panic, caught or not; an injected handler panic is
/// caught by the client and is no failure. So: run shuttle once, with this
/// process's settings, to install its hook, then wrap it to skip injected
/// panics.
#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
fn quiet_injected_panics(config: &shuttle::Config) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        shuttle::Runner::new(
            shuttle::scheduler::RandomScheduler::new_from_seed(0, 1),
            config.clone(),
        )
        .run(|| {});
        let inner = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !payload_text(info.payload()).contains(wsdrain::transport::INJECTED_PANIC) {
                inner(info);
            }
        }));
    });
}

#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
fn run_checker(_: &Strategy, _: impl Fn() + Send + Sync + 'static) -> RunResult {
    panic!("build with RUSTFLAGS=\"--cfg wsdrain_loom\" or \"--cfg wsdrain_shuttle\"");
}

#[cfg(wsdrain_loom)]
fn replay_checker(
    artifact: &Path,
    body: impl Fn() + Send + Sync + 'static,
) -> std::thread::Result<()> {
    let meta: ReplayMeta = std::fs::read_to_string(artifact)
        .ok()
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_else(|| panic!("{} is not a loom replay file", artifact.display()));
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = meta.bound;
    builder.max_branches = 10_000;
    // loom checks its limits every `checkpoint_interval` executions: 1 here,
    // so `max_permutations` stops right after the failing execution.
    builder.checkpoint_interval = 1;
    // The checkpoint holds the path of execution `from` (a multiple of the
    // interval); executions before the first checkpoint replay from the start.
    let from = (meta.execution / meta.interval) * meta.interval;
    let runs = if from > 0 && meta.checkpoint.exists() {
        // A copy: loom writes its progress back into the file it loads.
        let copy = meta.checkpoint.with_extension("replaying.json");
        std::fs::copy(&meta.checkpoint, &copy).expect("copy the checkpoint");
        builder.checkpoint_file = Some(copy);
        meta.execution - from + 1
    } else {
        meta.execution
    };
    // loom stops *before* execution number `max_permutations`.
    builder.max_permutations = Some(runs + 1);
    // Found by the SC search: replayed with every atomic SeqCst again.
    let forced = wsdrain::sync::atomic::seq_cst_forced();
    wsdrain::sync::atomic::force_seq_cst(meta.seq_cst);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.check(body)));
    wsdrain::sync::atomic::force_seq_cst(forced);
    result
}

#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
fn replay_checker(
    artifact: &Path,
    body: impl Fn() + Send + Sync + 'static,
) -> std::thread::Result<()> {
    let mut config = shuttle::Config::new();
    config.failure_persistence = shuttle::FailurePersistence::File(Some(schedule_dir()));
    config.silence_warnings = true;
    quiet_injected_panics(&config);
    let artifact = artifact.to_owned();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        shuttle::replay_from_file(body, artifact)
    }))
}

#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
fn replay_checker(_: &Path, _: impl Fn() + Send + Sync + 'static) -> std::thread::Result<()> {
    panic!("build with RUSTFLAGS=\"--cfg wsdrain_loom\" or \"--cfg wsdrain_shuttle\"");
}

/// The workspace's root directory (the harness crate's parent).
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("loom-tests lives in the workspace")
}

/// Where shuttle schedules and loom checkpoints are kept.
pub fn artifact_dir() -> PathBuf {
    let dir = std::env::var_os("WSDRAIN_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wsdrain/counterexamples"));
    std::fs::create_dir_all(&dir).expect("create the counterexample directory");
    dir
}

#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
fn schedule_dir() -> PathBuf {
    // One directory per process: shuttle's failure hook is installed once
    // per process with the first run's settings, and "newest file" must not
    // see another process's schedules.
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR
        .get_or_init(|| {
            let cell = crate::cell::pending()
                .map(|p| format!("{}-{}-", p.result.scenario, p.result.variant))
                .unwrap_or_default();
            artifact_dir().join(format!("shuttle/{cell}{}", std::process::id()))
        })
        .clone();
    std::fs::create_dir_all(&dir).expect("create the schedule directory");
    dir
}

#[cfg(all(wsdrain_shuttle, not(wsdrain_loom)))]
fn newest_schedule(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            // Not the sidecars (`schedule000.txt.found-after`).
            name.starts_with("schedule") && name.ends_with(".txt")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// The loom checkpoint path for a run (fresh: any old file is removed, or
/// loom would resume from it).
pub fn loom_checkpoint(scenario: Scenario, bugs: Bugs) -> PathBuf {
    let name: Vec<&str> = bugs.iter().map(|b| b.id()).collect();
    let label = if name.is_empty() {
        "fixed".to_owned()
    } else {
        name.join("+")
    };
    let path = artifact_dir().join(format!("loom-{}-{label}.json", scenario.id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// The command that replays a failure.
pub fn replay_command(scenario: Scenario, bugs: Bugs, artifact: &Path) -> String {
    let bug = bugs
        .iter()
        .next()
        .map(|b| format!(" --bug {}", b.id()))
        .unwrap_or_default();
    // Relative to the workspace root, where `cargo xtask` runs.
    let artifact = artifact.strip_prefix(workspace_root()).unwrap_or(artifact);
    format!(
        "cargo xtask replay --checker {CHECKER} --scenario {}{bug} {}",
        scenario.id(),
        artifact.display()
    )
}

impl Failure {
    /// The full, human-readable report of this counterexample.
    pub fn report(
        &self,
        checker: Checker,
        scenario: Scenario,
        bugs: Bugs,
        executions: usize,
    ) -> String {
        let variant: Vec<String> = bugs.iter().map(|b| b.to_string()).collect();
        let variant = if variant.is_empty() {
            "fixed client".to_owned()
        } else {
            variant.join(", ")
        };
        let oracle = self.oracle.map_or("unclassified panic", |o| o.name());
        let preemptions = self
            .preemptions
            .as_deref()
            .map(|p| format!(", {p}"))
            .unwrap_or_default();
        let memory = self
            .memory_note
            .as_deref()
            .map(|note| format!("memory: {note}\n"))
            .unwrap_or_default();
        let mut out = format!(
            "counterexample: {variant} / {scenario} / {checker}, found after {executions} execution(s){preemptions}\n\
             oracle: {oracle}\n\
             failure: {}\n{memory}\n{}",
            self.message, self.trace
        );
        if self.listing.is_weak() {
            out.push_str(
                "(loom explores the C11 memory model: a load may return an older value than the \
                 latest store listed above when no happens-before edge orders them; no \
                 sequentially consistent order of these steps explains this execution)\n",
            );
        }
        if let Some(artifact) = &self.artifact {
            out.push_str(&format!(
                "\nreplay: {}\n",
                replay_command(scenario, bugs, artifact)
            ));
        }
        out
    }
}
