//! One cell of the verification matrix: a scenario, a variant (the fixed
//! client or one bug), a checker strategy; and its result as one JSON line.
//!
//! Cells run in their own process (the `wsdrain-cell` binary) because loom
//! reports a deadlock with a panic that cannot unwind: the process aborts.
//! So the result line is written from the panic hook, at the first failure,
//! before anything can abort.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wsdrain::{Bug, Bugs};

use crate::scenarios::Scenario;

/// A cell's result, as written on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    /// "loom" or "shuttle".
    pub checker: String,
    /// "S1" ...
    pub scenario: String,
    /// "fixed" or "H1" ...
    pub variant: String,
    /// e.g. "loom bound 0..=3", "pct depth 2 seed 7".
    pub strategy: String,
    /// "pass", "caught" or "incomplete" (a time limit stopped it).
    pub result: String,
    /// Executions run, the failing one included.
    pub executions: usize,
    /// Wall time, ms.
    pub elapsed_ms: f64,
    /// loom: the preemption bound that found the failure (or the last explored).
    pub bound: Option<usize>,
    /// The oracle that fired.
    pub oracle: Option<String>,
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
}

impl CellResult {
    /// A cell about to run: result "pass" until something fails.
    pub fn new(checker: &str, scenario: &str, variant: String, strategy: String) -> Self {
        Self {
            checker: checker.into(),
            scenario: scenario.into(),
            variant,
            strategy,
            result: "pass".into(),
            executions: 0,
            elapsed_ms: 0.0,
            bound: None,
            oracle: None,
            message: None,
            report: None,
            listing: None,
            artifact: None,
            replay: None,
        }
    }

    /// Parse the last JSON line of a cell's stdout.
    pub fn parse(stdout: &str) -> Option<CellResult> {
        stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line.trim()).ok())
    }
}

/// The variant name of a bug set: "fixed" or the bug ids.
pub fn variant_name(bugs: Bugs) -> String {
    let ids: Vec<&str> = bugs.iter().map(|b| b.id()).collect();
    if ids.is_empty() {
        "fixed".to_owned()
    } else {
        ids.join("+")
    }
}

/// Parse "fixed" or a bug id/name.
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

/// Every bug of the catalog.
pub fn all_bugs() -> [Bug; 8] {
    Bug::ALL
}
