//! Race-window coverage: the windows each scenario exists to hit, and how
//! many explored executions hit each.
//!
//! A window is a sequence of events, each a task reaching a trace mark (a
//! `trace_point!`'s template, or the probe's task start and exit). An
//! execution hits the window when the events occur in that order among its
//! marks (other marks may come between them). The scenarios name their
//! windows next to their bodies (`Scenario::windows`); the harness counts
//! the hits per execution; `cargo xtask verify` prints them and fails a
//! fixed-client run that never hit one of them: a scenario that cannot
//! reach its window does not test what it says.

use serde::{Deserialize, Serialize};

use crate::cell::Checker;

/// One event of a window: the task `task` reaches the mark `mark`.
///
/// `task` is a label (`"main"`, `"caller"`), a role that matches every task
/// of that role (`"reader"` matches `reader#1`, `reader#2`), or `"*"` (any
/// task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The task's label or role.
    pub task: &'static str,
    /// The mark it reaches.
    pub mark: &'static str,
}

/// `task` reaches `mark`.
pub const fn on(task: &'static str, mark: &'static str) -> Event {
    Event { task, mark }
}

impl Event {
    fn matches(&self, task: &str, mark: &str) -> bool {
        mark == self.mark && task_matches(self.task, task)
    }
}

fn task_matches(pattern: &str, label: &str) -> bool {
    pattern == "*"
        || pattern == label
        || label
            .strip_prefix(pattern)
            .is_some_and(|rest| rest.starts_with('#'))
}

/// A race window a scenario exists to hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// What a person calls it ("close lands between the publish and the
    /// task start").
    pub name: &'static str,
    /// The events that delimit it, in the order that makes it.
    pub events: &'static [Event],
    /// Only under this checker (a scenario that runs differently per
    /// checker, e.g. S8); `None`: under both.
    pub only: Option<Checker>,
}

impl Window {
    /// Whether an execution whose marks were `marks` (task label, mark; in
    /// order) hit this window: its events occur in order among them.
    pub fn hit<'a>(&self, marks: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        let mut next = self.events.iter().peekable();
        for (task, mark) in marks {
            match next.peek() {
                None => break,
                // The earliest match is never worse: it leaves the most
                // marks for the events after it.
                Some(event) if event.matches(task, mark) => {
                    next.next();
                }
                Some(_) => {}
            }
        }
        next.peek().is_none()
    }
}

/// How often one window was hit, in a cell's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowHits {
    /// The window's name.
    pub window: String,
    /// Executions that hit it.
    pub hits: usize,
}

/// Counting in model builds: one counter per window of the scenario that
/// runs, for the whole process (a cell runs one scenario; iterative
/// deepening adds up its bounds).
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
mod count {
    use std::sync::Mutex;

    use super::{Window, WindowHits};
    use crate::harness::CHECKER;
    use crate::scenarios::Scenario;

    static HITS: Mutex<Vec<(&str, usize)>> = Mutex::new(Vec::new());

    /// Count the windows of `scenario` the execution that just ended hit.
    pub fn record(scenario: Scenario) {
        let windows: Vec<&Window> = scenario.windows_for(CHECKER).collect();
        if windows.is_empty() {
            return;
        }
        let marks = wsdrain::sync::trace::marks();
        // Every execution's marks on stderr, for naming a scenario's windows.
        static DUMP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if *DUMP.get_or_init(|| std::env::var_os("WSDRAIN_DUMP_MARKS").is_some()) {
            eprintln!("{marks:?}");
        }
        let mut hits = HITS.lock().unwrap_or_else(|p| p.into_inner());
        if hits.len() != windows.len() {
            *hits = windows.iter().map(|w| (w.name, 0)).collect();
        }
        for (window, (_, count)) in windows.iter().zip(hits.iter_mut()) {
            if window.hit(marks.iter().map(|(task, mark)| (task.as_str(), *mark))) {
                *count += 1;
            }
        }
    }

    /// The counts so far, one per window of `scenario` (zero if never hit).
    pub fn hits(scenario: Scenario) -> Vec<WindowHits> {
        let hits = HITS.lock().unwrap_or_else(|p| p.into_inner());
        scenario
            .windows_for(CHECKER)
            .map(|w| WindowHits {
                window: w.name.to_owned(),
                hits: hits
                    .iter()
                    .find(|(name, _)| *name == w.name)
                    .map_or(0, |(_, n)| *n),
            })
            .collect()
    }
}

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub use count::{hits, record};

#[cfg(test)]
mod tests {
    use super::*;

    const BETWEEN: Window = Window {
        name: "close between the publish and the task start",
        events: &[
            on("caller", "publish"),
            on("main", "close"),
            on("reader", "task started"),
        ],
        only: None,
    };

    fn hit(window: &Window, marks: &[(&str, &str)]) -> bool {
        window.hit(marks.iter().copied())
    }

    #[test]
    fn events_in_order_with_others_between_hit() {
        assert!(hit(
            &BETWEEN,
            &[
                ("caller", "dial"),
                ("caller", "publish"),
                ("writer#1", "task started"),
                ("main", "close"),
                ("main", "close() returns"),
                ("reader#1", "task started"),
            ]
        ));
    }

    #[test]
    fn another_order_misses() {
        assert!(!hit(
            &BETWEEN,
            &[
                ("caller", "publish"),
                ("reader#1", "task started"),
                ("main", "close"),
            ]
        ));
        assert!(!hit(
            &BETWEEN,
            &[
                ("main", "close"),
                ("caller", "publish"),
                ("reader#1", "task started"),
            ]
        ));
    }

    #[test]
    fn the_task_must_match() {
        // The mark, but on another task.
        assert!(!hit(
            &BETWEEN,
            &[
                ("main", "publish"),
                ("main", "close"),
                ("reader#1", "task started"),
            ]
        ));
        // A role matches its numbered tasks only, not a longer name.
        assert!(!hit(
            &BETWEEN,
            &[
                ("caller", "publish"),
                ("main", "close"),
                ("readers", "task started"),
            ]
        ));
        const ANY: Window = Window {
            name: "any",
            events: &[on("*", "publish"), on("reader#2", "task started")],
            only: None,
        };
        assert!(hit(
            &ANY,
            &[
                ("main", "publish"),
                ("reader#1", "task started"),
                ("reader#2", "task started")
            ]
        ));
        assert!(!hit(
            &ANY,
            &[("main", "publish"), ("reader#1", "task started")]
        ));
    }

    #[test]
    fn a_repeated_mark_is_matched_at_its_earliest_useful_place() {
        // Two publishes: the window wants a close after the second one's
        // predecessor event, so it must not stop at the first.
        const LATE_CLEANUP: Window = Window {
            name: "the old reader's cleanup after the new publish",
            events: &[
                on("reader#1", "task started"),
                on("main", "publish"),
                on("reader#1", "reader exit cleanup"),
            ],
            only: None,
        };
        let marks = [
            ("main", "publish"),
            ("reader#1", "task started"),
            ("reader#1", "reader exit cleanup"),
            ("main", "publish"),
        ];
        assert!(!hit(&LATE_CLEANUP, &marks));
        let marks = [
            ("main", "publish"),
            ("reader#1", "task started"),
            ("main", "publish"),
            ("reader#1", "reader exit cleanup"),
        ];
        assert!(hit(&LATE_CLEANUP, &marks));
    }

    #[test]
    fn an_empty_execution_hits_nothing() {
        assert!(!hit(&BETWEEN, &[]));
    }
}
