//! Progress of `cargo xtask verify`: a bar on a terminal (cells done/total,
//! executions, elapsed, estimate of the rest), plain periodic lines when
//! stderr is not a terminal (CI logs), so a long run is never silent.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed when not on a terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// The progress of a set of cells run in parallel.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    done: usize,
    executions: usize,
    running: usize,
    last_line: Option<Instant>,
    finished: bool,
}

impl Progress {
    /// Progress over `total` cells: a bar if stderr is a terminal.
    pub fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} cells, {msg}, ETA {eta}",
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
            started: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A cell process started.
    pub fn started(&self) {
        self.lock().running += 1;
    }

    /// A cell finished after `executions` explored executions.
    pub fn finished(&self, executions: usize) {
        let mut state = self.lock();
        state.done += 1;
        state.running = state.running.saturating_sub(1);
        state.executions += executions;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} executions", state.executions));
            bar.inc(1);
        }
    }

    /// The plain progress line (also the bar's content, in words).
    pub fn line(&self) -> String {
        let state = self.lock();
        line(
            state.done,
            self.total,
            state.running,
            state.executions,
            self.started.elapsed(),
        )
    }

    /// Print a plain line if not on a terminal and `LINE_INTERVAL` has passed
    /// since the last one. Returns false once [`finish`](Self::finish) ran.
    pub fn tick(&self) -> bool {
        let mut state = self.lock();
        if state.finished {
            return false;
        }
        if self.bar.is_none() {
            let due = state.last_line.is_none_or(|t| t.elapsed() >= LINE_INTERVAL);
            if due {
                state.last_line = Some(Instant::now());
                eprintln!(
                    "verify: {}",
                    line(
                        state.done,
                        self.total,
                        state.running,
                        state.executions,
                        self.started.elapsed()
                    )
                );
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

/// `12/40 cells done (2 running), 31250 executions, 0:42 elapsed, ~1:38 left`.
fn line(done: usize, total: usize, running: usize, executions: usize, elapsed: Duration) -> String {
    let eta = if done == 0 {
        "estimate after the first cell".to_owned()
    } else if done >= total {
        "done".to_owned()
    } else {
        let per_cell = elapsed.as_secs_f64() / done as f64;
        format!(
            "~{} left",
            clock(Duration::from_secs_f64(per_cell * (total - done) as f64))
        )
    };
    format!(
        "{done}/{total} cells done ({running} running), {executions} executions, {} elapsed, {eta}",
        clock(elapsed)
    )
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_cells_executions_elapsed_and_what_is_left() {
        let text = line(10, 40, 2, 31_250, Duration::from_secs(20));
        assert_eq!(
            text,
            "10/40 cells done (2 running), 31250 executions, 0:20 elapsed, ~1:00 left"
        );
        assert!(line(0, 4, 2, 0, Duration::ZERO).contains("estimate after the first cell"));
        assert!(line(4, 4, 0, 9, Duration::from_secs(75)).ends_with("1:15 elapsed, done"));
    }
}
