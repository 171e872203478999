//! One cell of the verification matrix: a scenario, a variant (the fixed
//! client or one bug), a checker strategy; and its result as one JSON line.
//!
//! Cells run in their own process (the `wsdrain-cell` binary) because loom
//! reports a deadlock with a panic that cannot unwind: the process aborts.
//! So the result line is written from the panic hook, at the first failure,
//! before anything can abort.
//!
//! Everything here is shared by the cell runner, the model suites
//! (`tests/common`) and `cargo xtask`: the typed result ([`CellResult`] with
//! [`Checker`], [`CellOutcome`] and the probe's [`Oracle`]), the runner's
//! command line ([`CellCommand`], built in this one place) and the bug
//! catalog as the runner reports it at run time ([`Catalog`]): a plain
//! build of this crate or of xtask knows no catalog name.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
pub use wsdrain::probe::Oracle;
#[cfg(wsdrain_bugs)]
use wsdrain::{Bug, Bugs};

use crate::scenarios::Scenario;

/// A model checker; each needs its own build of the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Checker {
    /// loom: every interleaving within a preemption bound.
    Loom,
    /// shuttle: randomized (PCT, random) schedules.
    Shuttle,
}

impl Checker {
    /// Both checkers, in report order.
    pub const ALL: [Checker; 2] = [Checker::Loom, Checker::Shuttle];

    /// The checker compiled into this build, if any.
    pub const COMPILED: Option<Checker> = if cfg!(wsdrain_loom) {
        Some(Checker::Loom)
    } else if cfg!(wsdrain_shuttle) {
        Some(Checker::Shuttle)
    } else {
        None
    };

    /// `"loom"` or `"shuttle"`.
    pub fn name(self) -> &'static str {
        match self {
            Checker::Loom => "loom",
            Checker::Shuttle => "shuttle",
        }
    }

    /// Look a checker up by name.
    pub fn from_name(name: &str) -> Option<Checker> {
        Checker::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The `RUSTFLAGS` of this checker's builds: its backend and the bug
    /// catalog.
    pub fn rustflags(self) -> String {
        format!("--cfg wsdrain_{} --cfg wsdrain_bugs", self.name())
    }

    /// This checker's own target directory under the workspace's `target/`
    /// (the cfgs change every crate's build).
    pub fn target_dir(self, workspace_root: &Path) -> PathBuf {
        workspace_root.join("target").join(self.name())
    }
}

impl fmt::Display for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellOutcome {
    /// Every explored execution passed every oracle.
    Pass,
    /// An execution failed (an oracle fired, or an unexpected panic).
    Caught,
    /// The time limit stopped the exploration before it finished.
    Incomplete,
}

impl CellOutcome {
    /// `"pass"`, `"caught"` or `"incomplete"`.
    pub fn name(self) -> &'static str {
        match self {
            CellOutcome::Pass => "pass",
            CellOutcome::Caught => "caught",
            CellOutcome::Incomplete => "incomplete",
        }
    }
}

impl fmt::Display for CellOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cell's result, as written on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    /// The checker that ran it.
    pub checker: Checker,
    /// "S1" ...
    pub scenario: String,
    /// "fixed" or "H1" ...
    pub variant: String,
    /// e.g. "loom bound 0..=3", "pct depth 2 seed 7".
    pub strategy: String,
    /// How it ended.
    pub result: CellOutcome,
    /// Executions run, the failing one included.
    pub executions: usize,
    /// Wall time, ms.
    pub elapsed_ms: f64,
    /// loom: the preemption bound that found the failure (or the last explored).
    pub bound: Option<usize>,
    /// shuttle: the RNG seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The oracle that fired (`None` with a failure: an unexpected panic).
    pub oracle: Option<Oracle>,
    /// The failure message.
    pub message: Option<String>,
    /// The readable counterexample (oracle, failure, interleaving, replay).
    pub report: Option<String>,
    /// The failing interleaving as data (for the HTML report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<crate::listing::Listing>,
    /// The file that replays it.
    pub artifact: Option<PathBuf>,
    /// The command that replays it.
    pub replay: Option<String>,
    /// Generated programs explored (the generated explorer's cells only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programs: Option<u64>,
    /// How many of the executions hit each of the scenario's race windows
    /// (see [`crate::windows`]), in the scenario's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coverage: Vec<crate::windows::WindowHits>,
}

impl CellResult {
    /// A cell about to run: a pass until something fails.
    pub fn new(checker: Checker, scenario: &str, variant: String, strategy: String) -> Self {
        Self {
            checker,
            scenario: scenario.into(),
            variant,
            strategy,
            result: CellOutcome::Pass,
            executions: 0,
            elapsed_ms: 0.0,
            bound: None,
            seed: None,
            oracle: None,
            message: None,
            report: None,
            listing: None,
            artifact: None,
            replay: None,
            programs: None,
            coverage: Vec::new(),
        }
    }

    /// Parse the last JSON line of a cell's stdout.
    pub fn parse(stdout: &str) -> Option<CellResult> {
        stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line.trim()).ok())
    }

    /// Whether the run failed.
    pub fn caught(&self) -> bool {
        self.result == CellOutcome::Caught
    }
}

/// The command line of one `wsdrain-cell` run: the only place it is built
/// (xtask's matrix and the model suites both use it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellCommand {
    args: Vec<String>,
    /// Environment for the child process only (e.g. the listing style).
    env: Vec<(String, String)>,
}

impl CellCommand {
    /// Explore `scenario` with `variant` (`"fixed"` or a bug id).
    pub fn run(scenario: Scenario, variant: &str) -> Self {
        Self {
            args: vec![
                "run".into(),
                "--scenario".into(),
                scenario.id().into(),
                "--variant".into(),
                variant.into(),
            ],
            env: Vec::new(),
        }
    }

    /// Replay a counterexample of `scenario`/`variant` from `artifact`.
    pub fn replay(scenario: &str, variant: &str, artifact: &Path) -> Self {
        Self {
            args: vec![
                "replay".into(),
                "--scenario".into(),
                scenario.into(),
                "--variant".into(),
                variant.into(),
                artifact.display().to_string(),
            ],
            env: Vec::new(),
        }
    }

    /// Explore generated programs `first..first + count` with `variant`
    /// (see `crate::generated`).
    pub fn generated(variant: &str, first: u64, count: u64) -> Self {
        Self {
            args: vec![
                "generated".into(),
                "--variant".into(),
                variant.into(),
                "--first".into(),
                first.to_string(),
                "--programs".into(),
                count.to_string(),
            ],
            env: Vec::new(),
        }
    }

    /// Replay a generated program's counterexample from its program file
    /// and artifact.
    pub fn replay_program(program: &Path, variant: &str, artifact: &Path) -> Self {
        Self {
            args: vec![
                "replay-program".into(),
                "--program".into(),
                program.display().to_string(),
                "--variant".into(),
                variant.into(),
                artifact.display().to_string(),
            ],
            env: Vec::new(),
        }
    }

    /// Explore the program in `file` (JSON) instead of the generated ones.
    pub fn program_file(self, file: &Path) -> Self {
        self.with("--program-file", file.display())
    }

    /// Report a generated program's failure as found, without shrinking it.
    pub fn no_shrink(self) -> Self {
        self.flag("--no-shrink")
    }

    /// shuttle: schedules per generated program.
    pub fn schedules(self, schedules: usize) -> Self {
        self.with("--schedules", schedules)
    }

    /// Print the bug catalog of this build ([`Catalog`]).
    pub fn catalog() -> Self {
        Self {
            args: vec!["catalog".into()],
            env: Vec::new(),
        }
    }

    fn with(mut self, flag: &str, value: impl ToString) -> Self {
        self.args.push(flag.into());
        self.args.push(value.to_string());
        self
    }

    fn flag(mut self, flag: &str) -> Self {
        self.args.push(flag.into());
        self
    }

    /// loom: the preemption bound.
    pub fn bound(self, bound: usize) -> Self {
        self.with("--bound", bound)
    }

    /// loom: explore bounds 0..=bound, stopping at the first failure.
    pub fn deepen(self) -> Self {
        self.flag("--deepen")
    }

    /// loom: keep a checkpoint so a failure can be replayed.
    pub fn checkpoint(self) -> Self {
        self.flag("--checkpoint")
    }

    /// Stop after this long.
    pub fn max_seconds(self, seconds: u64) -> Self {
        self.with("--max-seconds", seconds)
    }

    /// Do not record the facade trace.
    pub fn no_trace(self) -> Self {
        self.flag("--no-trace")
    }

    /// shuttle: PCT depth (0: the random scheduler).
    pub fn depth(self, depth: usize) -> Self {
        self.with("--depth", depth)
    }

    /// shuttle: executions.
    pub fn iterations(self, iterations: usize) -> Self {
        self.with("--iterations", iterations)
    }

    /// shuttle: RNG seed.
    pub fn seed(self, seed: u64) -> Self {
        self.with("--seed", seed)
    }

    /// List counterexamples in `style` (the child's `WSDRAIN_LISTING`).
    pub fn listing(mut self, style: crate::listing::ListingStyle) -> Self {
        self.env
            .retain(|(key, _)| key != crate::listing::ListingStyle::ENV);
        self.env.push((
            crate::listing::ListingStyle::ENV.into(),
            style.name().into(),
        ));
        self
    }

    /// The child's extra environment.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The value given to `flag` (`"--scenario"` -> `"S11"`), if any.
    pub fn value_of(&self, flag: &str) -> Option<&str> {
        self.args
            .windows(2)
            .find(|pair| pair[0] == flag)
            .map(|pair| pair[1].as_str())
    }

    fn output(&self, binary: &Path) -> Result<(String, String), String> {
        let output = Command::new(binary)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = format!(
            "status {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        Ok((stdout, stderr))
    }

    /// Run the cell in its own process and parse its result line.
    pub fn execute(&self, binary: &Path) -> Result<CellResult, String> {
        let (stdout, stderr) = self.output(binary)?;
        CellResult::parse(&stdout)
            .ok_or_else(|| format!("cell {} gave no result ({stderr})", self.args.join(" ")))
    }

    /// Run `catalog` and parse the catalog.
    pub fn execute_catalog(&self, binary: &Path) -> Result<Catalog, String> {
        let (stdout, stderr) = self.output(binary)?;
        serde_json::from_str(stdout.trim())
            .map_err(|e| format!("{} catalog: {e} ({stderr})", binary.display()))
    }
}

/// The bug catalog as one cell runner (one checker) knows it, printed by
/// `wsdrain-cell catalog`. `cargo xtask` learns ids, names and
/// applicability from it at run time, so that its own plain build carries
/// none of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    /// The checker of the runner that printed it.
    pub checker: Checker,
    /// Every bug, in catalog order.
    pub bugs: Vec<CatalogBug>,
}

/// One bug of a [`Catalog`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogBug {
    /// `"H1"` ...
    pub id: String,
    /// The catalog name (kebab-case).
    pub name: String,
    /// Scenario id -> why the bug cannot occur there under this checker.
    pub not_applicable: BTreeMap<String, String>,
    /// Why generated programs cannot reach the bug under this checker, if
    /// they cannot (see [`generated_not_applicable`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_not_applicable: Option<String>,
}

impl CatalogBug {
    /// Whether the bug can occur in `scenario` under the catalog's checker.
    pub fn applies(&self, scenario: Scenario) -> bool {
        !self.not_applicable.contains_key(scenario.id())
    }

    /// Why it cannot, if it cannot.
    pub fn not_applicable_because(&self, scenario: Scenario) -> Option<&str> {
        self.not_applicable.get(scenario.id()).map(String::as_str)
    }
}

impl Catalog {
    /// The catalog of this build, for `checker`.
    #[cfg(wsdrain_bugs)]
    pub fn of_this_build(checker: Checker) -> Catalog {
        Catalog {
            checker,
            bugs: Bug::ALL
                .into_iter()
                .map(|bug| CatalogBug {
                    id: bug.id().into(),
                    name: bug.name().into(),
                    not_applicable: Scenario::ALL
                        .into_iter()
                        .filter(|s| !s.applies_under(checker, bug))
                        .map(|s| (s.id().into(), s.not_applicable_because(bug).into()))
                        .collect(),
                    generated_not_applicable: generated_not_applicable(checker, bug)
                        .map(Into::into),
                })
                .collect(),
        }
    }

    /// The bug with this id.
    pub fn bug(&self, id: &str) -> Option<&CatalogBug> {
        self.bugs.iter().find(|b| b.id == id)
    }
}

/// Why the generated explorer cannot reach `bug` under `checker`, if it
/// cannot: loom's five threads leave no room for the shapes these bugs need
/// (the hand-written scenarios named catch them under loom).
#[cfg(wsdrain_bugs)]
pub fn generated_not_applicable(checker: Checker, bug: Bug) -> Option<&'static str> {
    match (checker, bug) {
        (Checker::Loom, Bug::ConcurrentDialOrphan) => Some(
            "two dials that both publish need six threads (main, a caller, two streams of two); \
             loom programs keep to five (S3 catches H3 under loom)",
        ),
        (Checker::Loom, Bug::UntrackedHelperTask) => Some(
            "loom programs have no manager: a managed stream and a second task need six threads \
             (S8 catches H6 under loom)",
        ),
        _ => None,
    }
}

/// The variant name of a bug set: "fixed" or the bug ids.
#[cfg(wsdrain_bugs)]
pub fn variant_name(bugs: Bugs) -> String {
    let ids: Vec<&str> = bugs.iter().map(|b| b.id()).collect();
    if ids.is_empty() {
        "fixed".to_owned()
    } else {
        ids.join("+")
    }
}

/// Parse "fixed" or a bug id/name.
#[cfg(wsdrain_bugs)]
pub fn parse_variant(name: &str) -> Option<Bugs> {
    if name == "fixed" {
        Some(Bugs::NONE)
    } else {
        Bug::from_name(name).map(Bugs::only)
    }
}

/// What the panic hook needs to write a result on its own.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The result so far (result/oracle/message/report filled by the hook).
    pub result: CellResult,
    /// When the run started.
    pub started: Instant,
    /// Executions before this run (iterative deepening keeps counting).
    pub executions_before: usize,
}

static PENDING: Mutex<Option<Pending>> = Mutex::new(None);
static WRITTEN: Mutex<bool> = Mutex::new(false);

/// Register the cell that is running, so a failure can be written from the
/// panic hook.
pub fn set_pending(pending: Option<Pending>) {
    *PENDING.lock().unwrap_or_else(|p| p.into_inner()) = pending;
}

/// The cell currently registered.
pub fn pending() -> Option<Pending> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Write the result line once (the first caller wins: hook or normal exit).
pub fn write_once(result: &CellResult) {
    let mut written = WRITTEN.lock().unwrap_or_else(|p| p.into_inner());
    if *written {
        return;
    }
    *written = true;
    let line = serde_json::to_string(result).expect("serialize the cell result");
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Write the result line again, after [`write_once`]: a later, better
/// result of the same cell (the loom SC search's); [`CellResult::parse`]
/// takes the last line.
pub fn write_again(result: &CellResult) {
    let mut written = WRITTEN.lock().unwrap_or_else(|p| p.into_inner());
    *written = true;
    let line = serde_json::to_string(result).expect("serialize the cell result");
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Milliseconds of a duration, for the JSON.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The scenario of an id, or an error message listing them.
pub fn parse_scenario(name: &str) -> Result<Scenario, String> {
    Scenario::from_name(name).ok_or_else(|| {
        let ids: Vec<&str> = Scenario::ALL.iter().map(|s| s.id()).collect();
        format!("unknown scenario {name:?} (one of {})", ids.join(", "))
    })
}
