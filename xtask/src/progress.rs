//! Progress of `cargo xtask verify`: a bar on a terminal (cells done/total,
//! executions, elapsed, estimate of the rest), plain periodic lines when
//! stderr is not a terminal (CI logs), so a long run is never silent.
//!
//! Cells differ by four orders of magnitude (a bug caught in one execution,
//! a loom scenario explored for a minute), so the estimate weighs each cell
//! by its wall time in the previous run on this machine ([`CellTimes`]);
//! cells never timed count as the median timed one, and with no history at
//! all every cell weighs the same.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed when not on a terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// A cell running this long is named on the progress line.
const LONG_CELL: Duration = Duration::from_secs(60);

/// The progress of a set of cells run in parallel.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    /// Cells that run at once.
    workers: usize,
    /// Whether the expected times come from an earlier run (otherwise
    /// every cell weighs the same and the pace is learnt from the first
    /// cells).
    timed: bool,
    /// The expected time of all the cells.
    total_ms: f64,
    started: Instant,
    state: Mutex<State>,
}

struct State {
    done: usize,
    executions: usize,
    /// Expected ms of the cells not started yet.
    waiting_ms: f64,
    running: Vec<RunningCell>,
    next_id: usize,
    /// Expected and actual ms of the finished cells: their ratio is the pace.
    done_expected_ms: f64,
    done_actual_ms: f64,
    /// Untimed: the actual ms of each finished cell, but for those that
    /// take minutes (their median is the pace). The two sums above leave
    /// those out too ([`Expected::GuessedLong`]).
    done_untimed_ms: Vec<f64>,
    last_line: Option<Instant>,
    finished: bool,
}

/// Where a cell's expected time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Its wall time in an earlier run ([`CellTimes`]).
    Timed,
    /// Never timed: a placeholder (the median timed cell, or 1 ms with no
    /// history). Most cells take milliseconds, so it says little.
    Guessed,
    /// Never timed, and one of the few cells known to take minutes where
    /// the rest take milliseconds (S4 and S11 at loom bound 2; they run
    /// first). The estimate leaves it out and says so ("left for the
    /// rest"), and its time sets no pace: counted in, S4's 166 s made the
    /// first run's estimate over a hundred minutes for a run that had four
    /// left, and, with an earlier run that had timed other cells (a new
    /// budget changes a cell's command), "~0:09 left" for five minutes.
    GuessedLong,
}

/// A cell that is running.
struct RunningCell {
    id: usize,
    start: Instant,
    expected_ms: f64,
    /// What the progress line calls it, e.g. `loom S11 fixed`.
    label: String,
    expected: Expected,
}

/// A started cell, for [`Progress::finished`].
pub struct Running(usize);

impl Progress {
    /// Progress over cells expected to take these times (ms; see
    /// [`CellTimes`]; `timed` is false when they are placeholders), run
    /// `workers` at a time: a bar if stderr is a terminal.
    pub fn new(expected_ms: &[f64], timed: bool, workers: usize) -> Progress {
        let total = expected_ms.len();
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} cells, {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message("0 executions");
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress {
            bar,
            total,
            workers: workers.max(1),
            timed,
            total_ms: expected_ms.iter().sum(),
            started: Instant::now(),
            state: Mutex::new(State {
                done: 0,
                executions: 0,
                waiting_ms: expected_ms.iter().sum(),
                running: Vec::new(),
                next_id: 0,
                done_expected_ms: 0.0,
                done_actual_ms: 0.0,
                done_untimed_ms: Vec::new(),
                last_line: None,
                finished: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A cell (`label`, e.g. `loom S11 fixed`) expected to take
    /// `expected_ms` (from where: `expected`) started.
    pub fn started(
        &self,
        label: impl Into<String>,
        expected_ms: f64,
        expected: Expected,
    ) -> Running {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.waiting_ms = (state.waiting_ms - expected_ms).max(0.0);
        state.running.push(RunningCell {
            id,
            start: Instant::now(),
            expected_ms,
            label: label.into(),
            expected,
        });
        Running(id)
    }

    /// A cell finished after `executions` explored executions.
    pub fn finished(&self, cell: Running, executions: usize) {
        let mut state = self.lock();
        if let Some(at) = state
            .running
            .iter()
            .position(|running| running.id == cell.0)
        {
            let done = state.running.swap_remove(at);
            let actual_ms = done.start.elapsed().as_secs_f64() * 1e3;
            if done.expected != Expected::GuessedLong {
                state.done_expected_ms += done.expected_ms;
                state.done_actual_ms += actual_ms;
                state.done_untimed_ms.push(actual_ms);
            }
        }
        state.done += 1;
        state.executions += executions;
        if let Some(bar) = &self.bar {
            bar.set_message(self.message(&state));
            bar.inc(1);
        }
    }

    /// The plain progress line (also the bar's content, in words).
    pub fn line(&self) -> String {
        let state = self.lock();
        self.line_of(&state)
    }

    fn line_of(&self, state: &State) -> String {
        format!(
            "{}/{} cells done ({} running), {}",
            state.done,
            self.total,
            state.running.len(),
            self.message(state)
        )
    }

    /// `31250 executions, 0:42 elapsed, ~1:38 left`.
    fn message(&self, state: &State) -> String {
        // A running cell that takes minutes and was never timed is not in
        // the estimate (nothing says how long it takes): it is for the rest.
        let unknown = state
            .running
            .iter()
            .any(|cell| cell.expected == Expected::GuessedLong);
        let eta = match self.left(state) {
            _ if state.done >= self.total => "done".to_owned(),
            Some(left) if unknown => format!("~{} left for the rest", clock(left)),
            Some(left) => format!("~{} left", clock(left)),
            None => "estimate after the first cell".to_owned(),
        };
        // A cell that has run for minutes is named: without an earlier
        // run's times the estimate cannot know it (S11 at loom bound 2).
        let longest = state
            .running
            .iter()
            .map(|cell| (cell.start.elapsed(), &cell.label))
            .max_by_key(|(elapsed, _)| *elapsed)
            .filter(|(elapsed, _)| *elapsed >= LONG_CELL)
            .map(|(elapsed, label)| format!(" ({label} running for {})", clock(elapsed)))
            .unwrap_or_default();
        format!(
            "{} executions, {} elapsed, {eta}{longest}",
            state.executions,
            clock(self.started.elapsed())
        )
    }

    /// What is left: the expected time of the waiting cells and the rest of
    /// the running ones, at the pace the finished cells ran at, spread over
    /// the workers.
    fn left(&self, state: &State) -> Option<Duration> {
        // The pace (actual over expected time of the finished cells) says
        // how this run compares with the one that timed the cells; it is
        // trusted once the finished cells stand for a twentieth of the
        // work (a few quick cells say little about the loom cells), and
        // kept within a factor of four. Untimed cells weigh the same: the
        // pace is then the median time of a finished cell. Not the mean: the
        // cells that take seconds run early (the loom cells of the fixed
        // client), and their mean made a run with 20 s to go read 34 minutes.
        let ratio =
            (state.done_expected_ms > 0.0).then(|| state.done_actual_ms / state.done_expected_ms);
        let pace = if !self.timed {
            median(&state.done_untimed_ms)?
        } else if state.done_expected_ms >= self.total_ms / 20.0 {
            ratio.unwrap_or(1.0).clamp(0.25, 4.0)
        } else {
            1.0
        };
        let now = Instant::now();
        let running: f64 = state
            .running
            .iter()
            .filter(|cell| cell.expected != Expected::GuessedLong)
            .map(|cell| {
                (cell.expected_ms * pace - now.duration_since(cell.start).as_secs_f64() * 1e3)
                    .max(0.0)
            })
            .sum();
        let ms = (state.waiting_ms * pace + running) / self.workers as f64;
        Some(Duration::from_secs_f64(ms / 1e3))
    }

    /// Print a plain line if not on a terminal and `LINE_INTERVAL` has passed
    /// since the last one (on a terminal, refresh the bar's estimate).
    /// Returns false once [`finish`](Self::finish) ran.
    pub fn tick(&self) -> bool {
        let mut state = self.lock();
        if state.finished {
            return false;
        }
        match &self.bar {
            Some(bar) => bar.set_message(self.message(&state)),
            None => {
                let due = state.last_line.is_none_or(|t| t.elapsed() >= LINE_INTERVAL);
                if due {
                    state.last_line = Some(Instant::now());
                    eprintln!("verify: {}", self.line_of(&state));
                }
            }
        }
        true
    }

    /// Run [`tick`](Self::tick) about every second until [`finish`](Self::finish).
    pub fn ticker(&self) {
        while self.tick() {
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// All cells are done: clear the bar, print the last line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let text = self.line();
        self.lock().finished = true;
        eprintln!("verify: {text}");
    }
}

/// Each cell's wall time in earlier runs on this machine, by its command
/// (`target/wsdrain/cell-times.json`): the weights of the estimate.
#[derive(Debug, Default)]
pub struct CellTimes {
    path: PathBuf,
    ms: HashMap<String, f64>,
}

impl CellTimes {
    /// The times saved at `path` (none if it is missing or unreadable: the
    /// estimate then counts cells).
    pub fn load(path: &Path) -> CellTimes {
        let ms = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        CellTimes {
            path: path.to_owned(),
            ms,
        }
    }

    /// The expected ms of cells with these keys: their last time, else the
    /// median of the known ones; and whether any was known (if none, the
    /// times are placeholders of 1 ms each).
    pub fn expected(&self, keys: &[String]) -> (Vec<f64>, bool) {
        let known: Vec<f64> = keys
            .iter()
            .filter_map(|k| self.ms.get(k))
            .copied()
            .collect();
        let timed = !known.is_empty();
        let fallback = median(&known).unwrap_or(1.0).max(1.0);
        let ms = keys
            .iter()
            .map(|k| self.ms.get(k).copied().unwrap_or(fallback).max(1.0))
            .collect();
        (ms, timed)
    }

    /// Whether a cell with this key was timed in an earlier run.
    pub fn knows(&self, key: &str) -> bool {
        self.ms.contains_key(key)
    }

    /// Remember a cell's time.
    pub fn record(&mut self, key: String, ms: f64) {
        self.ms.insert(key, ms);
    }

    /// Save for the next run (best effort: only the estimate depends on it).
    pub fn save(&self) {
        if let Ok(text) = serde_json::to_string(&self.ms) {
            let _ = std::fs::write(&self.path, text);
        }
    }
}

/// The median of `values`; `None` if there are none.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(entries: &[(&str, f64)]) -> CellTimes {
        CellTimes {
            path: PathBuf::new(),
            ms: entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        }
    }

    fn minutes_left(line: &str) -> f64 {
        let eta = line.rsplit(", ~").next().unwrap();
        let (m, s) = eta.trim_end_matches(" left").split_once(':').unwrap();
        m.parse::<f64>().unwrap() + s.parse::<f64>().unwrap() / 60.0
    }

    #[test]
    fn the_line_says_cells_executions_elapsed_and_what_is_left() {
        let progress = Progress::new(&[1.0; 4], false, 2);
        let line = progress.line();
        assert!(
            line.starts_with("0/4 cells done (0 running), 0 executions, 0:00 elapsed"),
            "{line}"
        );
        assert!(line.ends_with("estimate after the first cell"), "{line}");
        let cell = progress.started("cell", 1.0, Expected::Guessed);
        progress.finished(cell, 31_250);
        let line = progress.line();
        assert!(
            line.starts_with("1/4 cells done (0 running), 31250 executions"),
            "{line}"
        );
        assert!(line.ends_with(" left"), "{line}");
        for _ in 0..3 {
            let cell = progress.started("cell", 1.0, Expected::Guessed);
            progress.finished(cell, 1);
        }
        assert!(
            progress.line().ends_with("elapsed, done"),
            "{}",
            progress.line()
        );
    }

    #[test]
    fn a_cell_running_for_minutes_is_named() {
        let progress = Progress::new(&[1.0; 3], false, 2);
        let _quick = progress.started("shuttle S1 H1", 1.0, Expected::Guessed);
        let _long = progress.started("loom S11 fixed", 1.0, Expected::GuessedLong);
        assert!(
            !progress.line().contains("running for"),
            "{}",
            progress.line()
        );
        let Some(earlier) = Instant::now().checked_sub(Duration::from_secs(125)) else {
            return; // a clock this young cannot show it
        };
        progress.lock().running[1].start = earlier;
        let line = progress.line();
        assert!(
            line.ends_with("(loom S11 fixed running for 2:05)"),
            "{line}"
        );
    }

    #[test]
    fn the_estimate_weighs_cells_by_their_last_time() {
        // Cells taken from an earlier run: 98 quick ones (10 ms) and two
        // loom cells of 100 s each, two workers. Before anything finished,
        // the estimate is already about 100 s, not "98% done".
        let mut keys: Vec<String> = (0..98).map(|i| format!("bug {i}")).collect();
        keys.extend(["loom S5".to_owned(), "loom S3".to_owned()]);
        let mut entries: Vec<(String, f64)> = (0..98).map(|i| (format!("bug {i}"), 10.0)).collect();
        entries.extend([
            ("loom S5".to_owned(), 100_000.0),
            ("loom S3".to_owned(), 100_000.0),
        ]);
        let history = CellTimes {
            path: PathBuf::new(),
            ms: entries.into_iter().collect(),
        };
        let (expected, timed) = history.expected(&keys);
        assert!(timed);
        let progress = Progress::new(&expected, timed, 2);
        let left = minutes_left(&progress.line());
        assert!((1.5..=2.0).contains(&left), "{}", progress.line());
        // The quick cells finishing moves it by next to nothing.
        for &ms in &expected[..98] {
            let cell = progress.started("cell", ms, Expected::Timed);
            progress.finished(cell, 1);
        }
        let _s5 = progress.started("cell", expected[98], Expected::Timed);
        let _s3 = progress.started("cell", expected[99], Expected::Timed);
        let line = progress.line();
        assert!(line.starts_with("98/100 cells done (2 running)"), "{line}");
        assert!(minutes_left(&line) >= 0.8, "{line}");
    }

    /// Untimed (no earlier run), a cell that takes minutes finishing first
    /// must not set the pace of the thousand quick ones after it.
    #[test]
    fn untimed_a_cell_that_takes_minutes_does_not_set_the_pace() {
        let progress = Progress::new(&[1.0; 1002], false, 2);
        let long = progress.started("loom S4 fixed", 1.0, Expected::GuessedLong);
        let _longer = progress.started("loom S11 fixed", 1.0, Expected::GuessedLong);
        let Some(earlier) = Instant::now().checked_sub(Duration::from_secs(166)) else {
            return; // a clock this young cannot show it
        };
        progress.lock().running[0].start = earlier;
        progress.finished(long, 1);
        assert!(
            progress.line().contains("estimate after the first cell"),
            "{}",
            progress.line()
        );
        // Then quick cells: the estimate follows them (about 1,000 cells of
        // a few ms on one free worker), not S4's 166 s a cell.
        for _ in 0..10 {
            let cell = progress.started("shuttle S1 H1", 1.0, Expected::Guessed);
            progress.finished(cell, 1);
        }
        let line = progress.line();
        assert!(line.contains(" left for the rest"), "{line}");
        let left = minutes_left(line.split(" for the rest").next().unwrap());
        assert!(left < 1.0, "{line}");
    }

    /// Untimed, the loom cells of the fixed client (seconds each) finish
    /// among the first: the thousand quick cells after them are estimated
    /// at the typical cell's time, not at the mean that those few inflate.
    #[test]
    fn untimed_the_pace_is_the_typical_cell_not_the_mean() {
        let progress = Progress::new(&[1.0; 1000], false, 2);
        let Some(earlier) = Instant::now().checked_sub(Duration::from_secs(40)) else {
            return;
        };
        for i in 0..20 {
            let cell = progress.started("cell", 1.0, Expected::Guessed);
            if i < 3 {
                progress.lock().running[0].start = earlier;
            }
            progress.finished(cell, 1);
        }
        let line = progress.line();
        assert!(minutes_left(&line) < 1.0, "{line}");
    }

    #[test]
    fn unknown_cells_count_as_the_median_known_one_and_no_history_is_untimed() {
        let history = times(&[("a", 10.0), ("b", 30.0), ("c", 20.0)]);
        let keys = ["a", "b", "new"].map(str::to_owned);
        assert_eq!(history.expected(&keys), (vec![10.0, 30.0, 30.0], true));
        assert_eq!(
            CellTimes::default().expected(&keys),
            (vec![1.0, 1.0, 1.0], false)
        );
    }
    /// An earlier run timed most cells but not the two that take minutes
    /// (a new budget changed their commands): they are left out of the
    /// estimate, which says so, and S4's 166 s sets no pace for the rest.
    #[test]
    fn partly_timed_a_cell_that_takes_minutes_and_was_never_timed_is_left_out() {
        let mut keys: Vec<String> = (0..1000).map(|i| format!("shuttle {i}")).collect();
        keys.extend(["loom S4 new".to_owned(), "loom S11 new".to_owned()]);
        let entries: Vec<(String, f64)> =
            (0..1000).map(|i| (format!("shuttle {i}"), 60.0)).collect();
        let history = CellTimes {
            path: PathBuf::new(),
            ms: entries.into_iter().collect(),
        };
        let (expected, timed) = history.expected(&keys);
        assert!(timed && !history.knows("loom S4 new") && history.knows("shuttle 0"));
        let progress = Progress::new(&expected, timed, 2);
        let s4 = progress.started("loom S4 fixed", expected[1000], Expected::GuessedLong);
        let _s11 = progress.started("loom S11 fixed", expected[1001], Expected::GuessedLong);
        let line = progress.line();
        assert!(line.ends_with(" left for the rest"), "{line}");
        let Some(earlier) = Instant::now().checked_sub(Duration::from_secs(166)) else {
            return; // a clock this young cannot show it
        };
        progress.lock().running[0].start = earlier;
        progress.finished(s4, 1);
        // 1,000 cells of 60 ms on two workers, one of them held by S11: a
        // minute or less, not four times that (S4's 166 s against its
        // placeholder would have set the pace to the clamp).
        for &ms in &expected[..60] {
            let cell = progress.started("shuttle", ms, Expected::Timed);
            progress.finished(cell, 1);
        }
        let line = progress.line();
        assert!(line.contains(" left for the rest"), "{line}");
        let left = minutes_left(line.split(" for the rest").next().unwrap());
        assert!(left < 1.0, "{line}");
    }
}
