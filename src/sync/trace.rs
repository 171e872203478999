//! A record of facade operations, for counterexamples (model builds only).
//!
//! In loom and shuttle builds every facade operation (lock, atomic access,
//! wait-group step, signal, queue step, spawn) appends `(task, operation,
//! source location)` to the trace of the current execution; when an
//! execution fails, the harness prints that trace as the interleaving that
//! led there. In the real build every function here is an empty
//! `#[inline(always)]` stub and the facade does not even capture locations.

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
mod imp {
    use std::collections::HashMap;
    use std::fmt::Write as _;
    use std::panic::Location;
    use std::sync::Mutex;

    use crate::sync::{TaskId, current_task};

    /// One recorded step.
    #[derive(Debug, Clone)]
    pub struct Step {
        /// The task's label ("main", "reader#1", ...).
        pub task: String,
        /// The operation, e.g. `tasks.add(2) -> counter 2, waiters 0`.
        pub op: String,
        /// Where the client code called it.
        pub location: &'static Location<'static>,
    }

    #[derive(Default)]
    struct Trace {
        steps: Vec<(Option<TaskId>, String, &'static Location<'static>)>,
        /// The client-level steps' templates, recorded even with the trace
        /// off (a push of a static string): what the harness's race-window
        /// coverage matches.
        marks: Vec<(Option<TaskId>, &'static str)>,
        labels: HashMap<TaskId, String>,
    }

    // The models run every task on one OS thread, one at a time: a plain
    // std mutex is uncontended and invisible to the checker.
    static TRACE: Mutex<Option<Trace>> = Mutex::new(None);

    fn with<R>(f: impl FnOnce(&mut Trace) -> R) -> R {
        let mut guard = TRACE.lock().unwrap_or_else(|p| p.into_inner());
        f(guard.get_or_insert_with(Trace::default))
    }

    /// Start the trace of a new execution.
    pub fn reset() {
        with(|t| *t = Trace::default());
    }

    static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

    /// Switch recording on or off (on by default). Off, a facade operation
    /// costs one relaxed load more than untraced, and `op` is never built.
    pub fn set_enabled(enabled: bool) {
        ENABLED.store(enabled, std::sync::atomic::Ordering::Relaxed);
    }

    /// Record the operation `op` builds, by the current task, at `location`.
    pub fn record<S: Into<String>>(op: impl FnOnce() -> S, location: &'static Location<'static>) {
        if !ENABLED.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let task = current_task();
        let op = op().into();
        with(|t| t.steps.push((task, op, location)));
    }

    /// Record that the current task reached the step `mark` (a
    /// [`trace_point!`](crate::trace_point)'s template, e.g.
    /// `"stream_workspace: publish stream {id}"`). Unlike the steps, marks
    /// are recorded with the trace switched off: they cost a push.
    pub fn mark(mark: &'static str) {
        let task = current_task();
        with(|t| t.marks.push((task, mark)));
    }

    /// The marks of the current execution, in order, as (task label, mark).
    pub fn marks() -> Vec<(String, &'static str)> {
        with(|t| {
            let labels = unnamed_labels(t);
            t.marks
                .iter()
                .map(|(task, mark)| (label_of(t, &labels, *task), *mark))
                .collect()
        })
    }

    /// Names for the tasks that never named themselves: `task-0`, ... in
    /// order of their first step or mark.
    fn unnamed_labels(t: &Trace) -> HashMap<TaskId, String> {
        let mut unnamed: HashMap<TaskId, String> = HashMap::new();
        let tasks = t
            .steps
            .iter()
            .map(|s| s.0)
            .chain(t.marks.iter().map(|m| m.0));
        for id in tasks.flatten() {
            if !t.labels.contains_key(&id) && !unnamed.contains_key(&id) {
                let n = unnamed.len();
                unnamed.insert(id, format!("task-{n}"));
            }
        }
        unnamed
    }

    fn label_of(t: &Trace, unnamed: &HashMap<TaskId, String>, task: Option<TaskId>) -> String {
        match task {
            None => "?".to_owned(),
            Some(id) => t
                .labels
                .get(&id)
                .or_else(|| unnamed.get(&id))
                .cloned()
                .unwrap_or_else(|| "?".to_owned()),
        }
    }

    /// Name the current task in the trace.
    pub fn label_current(label: impl Into<String>) {
        if let Some(task) = current_task() {
            let label = label.into();
            with(|t| t.labels.insert(task, label));
        }
    }

    /// The steps of the current execution, labelled.
    pub fn steps() -> Vec<Step> {
        with(|t| {
            let labels = unnamed_labels(t);
            t.steps
                .iter()
                .map(|(task, op, location)| Step {
                    task: label_of(t, &labels, *task),
                    op: op.clone(),
                    location,
                })
                .collect()
        })
    }

    /// Whether a step is inside the facade or the model transport (hidden in
    /// the trimmed view: the client's own calls into them are kept).
    pub fn is_internal(step: &Step) -> bool {
        let file = step.location.file();
        file.contains("src/sync/") || file.contains("src/transport/memory.rs")
    }

    /// The trimmed interleaving: client-level steps only, task by task, and
    /// at most the last `max` of them.
    pub fn render(max: usize) -> String {
        let steps = steps();
        let kept: Vec<&Step> = steps
            .iter()
            .filter(|s| std::env::var_os("WSDRAIN_FULL_TRACE").is_some() || !is_internal(s))
            .collect();
        let hidden = steps.len() - kept.len();
        let skip = kept.len().saturating_sub(max);
        let mut out = format!(
            "interleaving ({} steps: {} shown, {hidden} inside the facade hidden{}):\n",
            steps.len(),
            kept.len() - skip,
            if skip > 0 {
                format!(", first {skip} client steps elided")
            } else {
                String::new()
            }
        );
        let width = kept.iter().map(|s| s.task.len()).max().unwrap_or(4);
        for (i, step) in kept.iter().enumerate().skip(skip) {
            let _ = writeln!(
                out,
                "  {:>3}  {:<width$}  {:<44} {}:{}",
                i + 1,
                step.task,
                step.op,
                step.location.file(),
                step.location.line()
            );
        }
        out
    }
}

#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
mod imp {
    /// No trace in the real build.
    #[inline(always)]
    pub fn label_current(_label: &str) {}
}

pub use imp::*;

/// A source location in model builds; nothing in the real build.
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub type Loc = &'static std::panic::Location<'static>;
/// A source location in model builds; nothing in the real build.
#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
#[derive(Debug, Clone, Copy)]
pub struct Loc;

/// The name an object (a wait group, ...) goes by in the trace, e.g.
/// `stream#1.wg`, so that two objects' steps never read the same. Model
/// builds only; nothing in the real build.
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
#[derive(Debug, Clone, Default)]
pub struct Name(Option<Box<str>>);
/// The name an object goes by in the trace (nothing in the real build).
#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
#[derive(Debug, Clone, Copy, Default)]
pub struct Name;

#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
impl Name {
    /// No name.
    pub const NONE: Name = Name;
}

/// A [`Name`] built by `name` (model builds; never called in the real build).
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
pub fn name<S: Into<String>>(name: impl FnOnce() -> S) -> Name {
    Name(Some(name().into().into_boxed_str()))
}

/// A [`Name`] built by `name` (model builds; never called in the real build).
#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
#[inline(always)]
pub fn name<S>(_name: impl FnOnce() -> S) -> Name {
    Name
}

#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
impl Name {
    /// No name: the trace uses the type's (`Mutex`, `WaitGroup`).
    pub const NONE: Name = Name(None);

    /// The name, or `default` for an unnamed object.
    pub fn or<'a>(&'a self, default: &'a str) -> &'a str {
        self.0.as_deref().unwrap_or(default)
    }
}

/// The caller's location (model builds) or nothing (real build).
#[cfg(any(wsdrain_loom, wsdrain_shuttle))]
#[track_caller]
pub fn caller() -> Loc {
    std::panic::Location::caller()
}

/// The caller's location (model builds) or nothing (real build).
#[cfg(not(any(wsdrain_loom, wsdrain_shuttle)))]
#[inline(always)]
pub fn caller() -> Loc {
    Loc
}

/// Record a client-level step (model builds only; nothing in the real
/// build): the formatted step when the trace is on, and its template as a
/// mark always (the harness's race windows match marks).
#[macro_export]
#[doc(hidden)]
macro_rules! trace_point {
    ($template:literal $($arg:tt)*) => {
        #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
        {
            $crate::sync::trace::mark($template);
            $crate::sync::trace::record(
                || format!($template $($arg)*),
                ::std::panic::Location::caller(),
            );
        }
    };
}
