//! The listing of a counterexample's interleaving: one column per task with
//! the switch points marked (the default, like JetBrains Lincheck's traces),
//! or the single-column form (`WSDRAIN_LISTING=single`).
//!
//! The steps are kept as data ([`ListedStep`]) in the cell's JSON result, so
//! the HTML report can draw the same interleaving as a swimlane timeline.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One client-level step of a failing execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedStep {
    /// The task's label ("main", "caller", "reader#1", ...).
    pub task: String,
    /// The operation, e.g. `tasks.add(2) -> counter 2, waiters 0`.
    pub op: String,
    /// Where the client code called it.
    pub file: String,
    /// The line in `file`.
    pub line: u32,
}

/// How the listed order relates to sequential consistency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Memory {
    /// Every read returns the latest write listed above it, in the order
    /// the checker ran the steps (or nothing was checked yet).
    #[default]
    Sequential,
    /// The checker's order had reads of older values, but the same
    /// execution has another order, consistent with happens-before, in
    /// which every read returns the latest write: it is listed instead.
    Reordered {
        /// Steps listed at another place than the checker ran them.
        moved: usize,
    },
    /// No such order exists among the listed steps: a weak-memory
    /// execution. These reads returned an older value.
    Weak {
        /// The stale reads, by listed step index (0-based).
        stale: Vec<StaleRead>,
    },
}

/// A read that returned an older value than the latest write above it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleRead {
    /// The read (0-based index into the listed steps).
    pub step: usize,
    /// The write whose value it returned (`None`: the initial value).
    pub saw: Option<usize>,
    /// The latest write above it, which it did not see.
    pub latest: usize,
}

/// The steps of a failing execution that a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Every step recorded (facade-internal ones included).
    pub recorded: usize,
    /// Steps inside the facade or the model transport, not listed.
    pub hidden: usize,
    /// Client steps before `steps`, elided to keep the listing short.
    pub elided: usize,
    /// The listed steps, in execution order.
    pub steps: Vec<ListedStep>,
    /// Whether the order is sequentially consistent (see [`Listing::explained`]).
    #[serde(default)]
    pub memory: Memory,
}

/// How the terminal listing is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListingStyle {
    /// One column per task, switch points marked (the default).
    #[default]
    Columns,
    /// One line per step, task name first (the original form).
    Single,
}

impl ListingStyle {
    /// The environment variable that picks the style (`columns`, `single`).
    pub const ENV: &'static str = "WSDRAIN_LISTING";

    /// Parse `columns` or `single`.
    pub fn parse(name: &str) -> Option<ListingStyle> {
        match name.trim().to_ascii_lowercase().as_str() {
            "columns" | "column" | "lincheck" => Some(ListingStyle::Columns),
            "single" | "flat" => Some(ListingStyle::Single),
            _ => None,
        }
    }

    /// The style `WSDRAIN_LISTING` asks for (columns when unset or unknown).
    pub fn from_env() -> ListingStyle {
        std::env::var(Self::ENV)
            .ok()
            .and_then(|v| ListingStyle::parse(&v))
            .unwrap_or_default()
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            ListingStyle::Columns => "columns",
            ListingStyle::Single => "single",
        }
    }
}

impl Listing {
    /// The current execution's trace, trimmed to client-level steps (all of
    /// them with `WSDRAIN_FULL_TRACE`), at most the last `max`.
    #[cfg(any(wsdrain_loom, wsdrain_shuttle))]
    pub fn capture(max: usize) -> Listing {
        use wsdrain::sync::trace;
        let all = trace::steps();
        let full = std::env::var_os("WSDRAIN_FULL_TRACE").is_some();
        let kept: Vec<ListedStep> = all
            .iter()
            .filter(|s| full || !trace::is_internal(s))
            .map(|s| ListedStep {
                task: s.task.clone(),
                op: s.op.clone(),
                file: s.location.file().to_owned(),
                line: s.location.line(),
            })
            .collect();
        let hidden = all.len() - kept.len();
        let elided = kept.len().saturating_sub(max);
        Listing {
            recorded: all.len(),
            hidden,
            elided,
            steps: kept.into_iter().skip(elided).collect(),
            memory: Memory::Sequential,
        }
        .explained()
    }

    /// The tasks, in the order they first act.
    pub fn tasks(&self) -> Vec<&str> {
        let mut tasks: Vec<&str> = Vec::new();
        for step in &self.steps {
            if !tasks.contains(&step.task.as_str()) {
                tasks.push(&step.task);
            }
        }
        tasks
    }

    /// Each listed step as (task, operation), in listed order.
    pub fn ops(&self) -> Vec<(&str, &str)> {
        self.steps
            .iter()
            .map(|s| (s.task.as_str(), s.op.as_str()))
            .collect()
    }

    /// Indices of the steps at which the running task changes.
    pub fn switch_points(&self) -> Vec<usize> {
        (1..self.steps.len())
            .filter(|&i| self.steps[i].task != self.steps[i - 1].task)
            .collect()
    }

    /// The first line of a listing: how many steps, which are shown, and
    /// how the order relates to sequential consistency.
    pub fn heading(&self) -> String {
        let order = match &self.memory {
            Memory::Sequential => String::new(),
            Memory::Reordered { moved } => format!(
                "; listed in a sequentially consistent order of the same execution, {moved} step(s) moved from the checker's order"
            ),
            Memory::Weak { stale } => format!(
                "; weak memory: {} read(s) marked [stale] returned an older value than the latest write listed above them",
                stale.len()
            ),
        };
        format!(
            "interleaving ({} steps: {} shown, {} inside the facade hidden{}{order}):\n",
            self.recorded,
            self.steps.len(),
            self.hidden,
            if self.elided > 0 {
                format!(", first {} client steps elided", self.elided)
            } else {
                String::new()
            }
        )
    }

    /// Whether no sequentially consistent order explains the execution.
    pub fn is_weak(&self) -> bool {
        matches!(self.memory, Memory::Weak { .. })
    }

    /// The happens-before edges between listed steps that explain the
    /// interleaving: a wait group's add/done to a wait that follows it, a
    /// spawn to the task's first step, a lock's holder to its next holder.
    pub fn edges(&self) -> Vec<Edge> {
        let steps = &self.steps;
        let mut edges = Vec::new();
        for (to, step) in steps.iter().enumerate() {
            if let Some(Access::Read { group, .. }) = access(&step.op)
                && let Some(from) = (0..to).rev().find(|&i| {
                    steps[i].task != step.task
                        && matches!(access(&steps[i].op), Some(Access::Write { group: g, .. }) if g == group)
                })
            {
                edges.push(Edge {
                    from,
                    to,
                    kind: EdgeKind::WaitGroup,
                });
            }
            let first_of_task = steps[..to].iter().all(|s| s.task != step.task);
            if first_of_task
                && let Some(from) = (0..to).rev().find(|&i| {
                    steps[i].task != step.task
                        && steps[i].op.starts_with("spawn")
                        && steps[i]
                            .op
                            .split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')'))
                            .any(|word| word == step.task)
                })
            {
                edges.push(Edge {
                    from,
                    to,
                    kind: EdgeKind::Spawn,
                });
            }
            if let Some((lock, LockOp::Acquire)) = lock_of(step)
                && let Some(from) = (0..to)
                    .rev()
                    .find(|&i| lock_of(&steps[i]) == Some((lock, LockOp::Release)))
                && steps[from].task != step.task
            {
                edges.push(Edge {
                    from,
                    to,
                    kind: EdgeKind::Lock,
                });
            }
        }
        edges
    }

    /// The reads of wait-group counters that return an older value than
    /// the latest write listed above them.
    pub fn stale_reads(&self) -> Vec<StaleRead> {
        let accesses: Vec<Option<Access<'_>>> = self.steps.iter().map(|s| access(&s.op)).collect();
        let mut stale = Vec::new();
        for (i, a) in accesses.iter().enumerate() {
            let Some(Access::Read { group, value }) = a else {
                continue;
            };
            let writes: Vec<(usize, i64)> = (0..i)
                .filter_map(|j| match accesses[j] {
                    Some(Access::Write { group: g, value: v }) if g == *group => Some((j, v)),
                    _ => None,
                })
                .collect();
            let Some(&(latest, latest_value)) = writes.last() else {
                continue; // reads the initial value, or one elided: nothing to judge
            };
            if latest_value != *value {
                let saw = writes
                    .iter()
                    .rev()
                    .find(|(_, v)| v == value)
                    .map(|(j, _)| *j);
                stale.push(StaleRead {
                    step: i,
                    saw,
                    latest,
                });
            }
        }
        stale
    }

    /// This listing, judged for sequential consistency: as it is if every
    /// read returns the latest write above it; else reordered, within
    /// happens-before (program order, spawns, lock hand-offs, each
    /// counter's modification order), so that they do if such an order
    /// exists; else marked weak, with its stale reads.
    pub fn explained(mut self) -> Listing {
        let stale = self.stale_reads();
        if stale.is_empty() {
            self.memory = Memory::Sequential;
            return self;
        }
        if let Some(order) = self.sequential_order() {
            let moved = order.iter().enumerate().filter(|(i, j)| i != *j).count();
            let steps = order.iter().map(|&j| self.steps[j].clone()).collect();
            let reordered = Listing {
                steps,
                memory: Memory::Reordered { moved },
                ..self.clone()
            };
            if reordered.stale_reads().is_empty() {
                return reordered;
            }
        }
        for read in &stale {
            let step = &mut self.steps[read.step];
            let saw = match read.saw {
                Some(w) => format!("step {}", self.elided + w + 1),
                None if self.elided == 0 => "the initial value".to_owned(),
                None => "a value written before the listed steps".to_owned(),
            };
            step.op = format!(
                "{} [stale: saw {saw}, not step {}]",
                step.op,
                self.elided + read.latest + 1
            );
        }
        self.memory = Memory::Weak { stale };
        self
    }

    /// An order of the listed steps, consistent with happens-before, in
    /// which every wait-group read returns the latest write (None if the
    /// constraints have a cycle). Steps keep their place unless a read
    /// must move before the write that overwrote the value it saw.
    fn sequential_order(&self) -> Option<Vec<usize>> {
        let n = self.steps.len();
        let accesses: Vec<Option<Access<'_>>> = self.steps.iter().map(|s| access(&s.op)).collect();
        let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut edge = |from: usize, to: usize| {
            if from != to {
                after[from].push(to);
            }
        };
        // Program order.
        for i in 0..n {
            if let Some(j) = (i + 1..n).find(|&j| self.steps[j].task == self.steps[i].task) {
                edge(i, j);
            }
        }
        // Each counter's writes stay in their (modification) order.
        for i in 0..n {
            if let Some(Access::Write { group, .. }) = accesses[i]
                && let Some(j) = (i + 1..n).find(
                    |&j| matches!(accesses[j], Some(Access::Write { group: g, .. }) if g == group),
                )
            {
                edge(i, j);
            }
        }
        // Spawns.
        for e in self.edges() {
            if e.kind == EdgeKind::Spawn {
                edge(e.from, e.to);
            }
        }
        // Locks: an acquisition comes after the release before it (by any
        // task), and before the next release (program order does the rest).
        for (i, step) in self.steps.iter().enumerate() {
            if let Some((lock, LockOp::Acquire)) = lock_of(step) {
                if let Some(u) = (0..i)
                    .rev()
                    .find(|&u| lock_of(&self.steps[u]) == Some((lock, LockOp::Release)))
                {
                    edge(u, i);
                }
                if let Some(a) =
                    (i + 1..n).find(|&a| lock_of(&self.steps[a]).is_some_and(|(l, _)| l == lock))
                {
                    edge(i, a);
                }
            }
        }
        // Reads-from: a read comes after the write whose value it returned
        // and before the next write to the same counter.
        for (i, a) in accesses.iter().enumerate() {
            let Some(Access::Read { group, value }) = a else {
                continue;
            };
            let writes: Vec<(usize, i64)> = (0..n)
                .filter_map(|j| match accesses[j] {
                    Some(Access::Write { group: g, value: v }) if g == *group => Some((j, v)),
                    _ => None,
                })
                .collect();
            let seen = writes
                .iter()
                .rev()
                .find(|(j, v)| *j < i && v == value)
                .map(|(j, _)| *j);
            if seen.is_none() && (*value != 0 || self.elided > 0) {
                return None; // no write of that value is listed before it
            }
            if let Some(w) = seen {
                edge(w, i);
            }
            if let Some(&(next, _)) = writes.iter().find(|(j, _)| Some(*j) > seen) {
                edge(i, next);
            }
        }
        // Kahn's algorithm, always taking the earliest step that is ready:
        // the checker's order wherever the constraints allow it.
        let mut indegree = vec![0usize; n];
        for targets in &after {
            for &t in targets {
                indegree[t] += 1;
            }
        }
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(&i) = ready.iter().next() {
            ready.remove(&i);
            order.push(i);
            for &t in &after[i] {
                indegree[t] -= 1;
                if indegree[t] == 0 {
                    ready.insert(t);
                }
            }
        }
        (order.len() == n).then_some(order)
    }

    /// The listing as text, in `style`.
    pub fn render(&self, style: ListingStyle) -> String {
        match style {
            ListingStyle::Columns => self.render_columns(),
            ListingStyle::Single => self.render_single(),
        }
    }

    fn render_single(&self) -> String {
        let mut out = self.heading();
        let width = self.steps.iter().map(|s| s.task.len()).max().unwrap_or(4);
        for (i, step) in self.steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:>3}  {:<width$}  {:<44} {}:{}",
                self.elided + i + 1,
                step.task,
                step.op,
                step.file,
                step.line
            );
        }
        out
    }

    fn render_columns(&self) -> String {
        /// Wider operations wrap inside their column.
        const MAX_WIDTH: usize = 46;
        let mut out = self.heading();
        let tasks = self.tasks();
        let widths: Vec<usize> = tasks
            .iter()
            .map(|task| {
                self.steps
                    .iter()
                    .filter(|s| s.task == *task)
                    .map(|s| s.op.chars().count())
                    .chain([task.chars().count()])
                    .max()
                    .unwrap_or(0)
                    .min(MAX_WIDTH)
            })
            .collect();
        let number = (self.elided + self.steps.len()).to_string().len().max(3);
        let row = |out: &mut String, gutter: &str, cells: &[String], at: &str| {
            let mut line = format!("  {gutter:>number$} ");
            for (cell, width) in cells.iter().zip(&widths) {
                let pad = width.saturating_sub(cell.chars().count());
                let _ = write!(line, "| {cell}{} ", " ".repeat(pad));
            }
            let _ = write!(line, "| {at}");
            let _ = writeln!(out, "{}", line.trim_end());
        };
        let names: Vec<String> = tasks.iter().map(|t| t.to_string()).collect();
        row(&mut out, "#", &names, "at");
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        row(&mut out, "", &rule, "--");
        let switches = self.switch_points();
        for (i, step) in self.steps.iter().enumerate() {
            let column = tasks.iter().position(|t| *t == step.task).unwrap_or(0);
            let pieces = wrap(&step.op, widths[column]);
            for (k, piece) in pieces.iter().enumerate() {
                let mut cells = vec![String::new(); tasks.len()];
                cells[column] = piece.clone();
                let (gutter, at) = if k == 0 {
                    let marker = if switches.contains(&i) { "»" } else { "" };
                    (
                        format!("{marker}{}", self.elided + i + 1),
                        format!("{}:{}", step.file, step.line),
                    )
                } else {
                    (String::new(), String::new())
                };
                row(&mut out, &gutter, &cells, &at);
            }
        }
        let _ = writeln!(
            out,
            "  (» marks a switch point: the running task changes there. WSDRAIN_LISTING=single lists one column)"
        );
        out
    }
}

/// A happens-before edge between two listed steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The earlier step (0-based index into the listed steps).
    pub from: usize,
    /// The later step.
    pub to: usize,
    /// What orders them.
    pub kind: EdgeKind,
}

/// What orders the two steps of an [`Edge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// An `add`/`done` on a wait group, then a `wait` on it in another task.
    WaitGroup,
    /// A task's spawn, then its first step.
    Spawn,
    /// A lock released, then acquired by another task.
    Lock,
}

/// A lock step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockOp {
    Acquire,
    Release,
}

/// A wait-group step as a memory access on its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access<'a> {
    /// `add`/`done` (and a `wait` that parks: it registers with a
    /// read-modify-write), leaving the counter at `value`.
    Write { group: &'a str, value: i64 },
    /// A `wait` that found the counter at `value` and returned.
    Read { group: &'a str, value: i64 },
}

/// Parse `stream#1.wg.add(2) -> counter 2, waiters 0` and its kin.
fn access(op: &str) -> Option<Access<'_>> {
    let (head, result) = op.split_once(" -> ")?;
    let counter = |text: &str| -> Option<i64> {
        let at = text.find("counter ")? + "counter ".len();
        let digits: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        digits.parse().ok()
    };
    for verb in [".add(", ".done(", ".wait("] {
        if let Some(at) = head.find(verb) {
            let group = &head[..at];
            if verb != ".wait(" {
                return Some(Access::Write {
                    group,
                    value: counter(result)?,
                });
            }
            if result.starts_with("parked") {
                return Some(Access::Write {
                    group,
                    value: counter(result)?,
                });
            }
            if result.starts_with("released") {
                return Some(Access::Read { group, value: 0 });
            }
            return Some(Access::Read {
                group,
                value: counter(result)?,
            });
        }
    }
    None
}

/// Which lock a step takes or releases: `client.state.lock() (acquired)`,
/// `client.state.unlock()`. Unnamed mutexes (`Mutex::lock`) all count as
/// one lock: that orders more than needed, never less.
fn lock_of(step: &ListedStep) -> Option<(&str, LockOp)> {
    let op = &step.op;
    if let Some(name) = op.strip_suffix(".lock() (acquired)") {
        Some((name, LockOp::Acquire))
    } else if let Some(name) = op.strip_suffix(".unlock()") {
        Some((name, LockOp::Release))
    } else if op.starts_with("Mutex::lock") {
        Some(("Mutex", LockOp::Acquire))
    } else if op.starts_with("Mutex::unlock") {
        Some(("Mutex", LockOp::Release))
    } else {
        None
    }
}

/// Split `text` into pieces of at most `width` characters, at spaces where
/// possible.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut pieces = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let len = current.chars().count();
        let add = word.chars().count() + usize::from(len > 0);
        if len > 0 && len + add > width {
            pieces.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        while current.chars().count() > width {
            let head: String = current.chars().take(width).collect();
            current = current.chars().skip(width).collect();
            pieces.push(head);
        }
    }
    if !current.is_empty() || pieces.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(task: &str, op: &str, line: u32) -> ListedStep {
        ListedStep {
            task: task.into(),
            op: op.into(),
            file: "src/client.rs".into(),
            line,
        }
    }

    fn h5() -> Listing {
        Listing {
            recorded: 40,
            hidden: 37,
            elided: 0,
            steps: vec![
                step("caller", "stream_workspace: publish stream 1", 287),
                step("main", "tasks.wait() -> counter 0, returns at once", 383),
                step("caller", "stream#1.wg.add(2) -> counter 2, waiters 0", 301),
            ],
            memory: Memory::Sequential,
        }
    }

    /// H5 in S1 as loom lists it: the caller's adds run before main's wait,
    /// which still reads the counter at 0 (no happens-before orders them).
    fn h5_as_loom_ran_it() -> Vec<ListedStep> {
        vec![
            step("caller", "client.state.lock() (acquired)", 253),
            step("caller", "client.state.unlock()", 253),
            step("caller", "stream_workspace: dial", 263),
            step("caller", "client.state.lock() (acquired)", 272),
            step("caller", "stream_workspace: publish stream 1", 287),
            step("caller", "client.state.unlock()", 272),
            step("caller", "stream#1.wg.add(2) -> counter 2, waiters 0", 301),
            step("caller", "tasks.add(2) -> counter 2, waiters 0", 302),
            step("main", "client.state.lock() (acquired)", 346),
            step("main", "client.state.unlock()", 346),
            step(
                "main",
                "stream#1.wg.wait() -> counter 0, returns at once",
                383,
            ),
            step("main", "tasks.wait() -> counter 0, returns at once", 383),
            step("main", "close() returns", 387),
            step("caller", "spawn reader#1 and writer#1", 224),
        ]
    }

    #[test]
    fn a_stale_read_that_another_order_explains_is_listed_in_that_order() {
        let listing = Listing {
            steps: h5_as_loom_ran_it(),
            ..Listing::default()
        };
        assert_eq!(listing.stale_reads().len(), 2);
        let explained = listing.explained();
        assert_eq!(explained.memory, Memory::Reordered { moved: 6 });
        let ops: Vec<&str> = explained.steps.iter().map(|s| s.op.as_str()).collect();
        let wait = ops
            .iter()
            .position(|o| o.starts_with("tasks.wait"))
            .unwrap();
        let add = ops.iter().position(|o| o.starts_with("tasks.add")).unwrap();
        assert!(
            wait < add,
            "main's wait at zero is listed before the late add: {ops:#?}"
        );
        // Happens-before is kept: main locks after the caller published.
        let publish = ops.iter().position(|o| o.contains("publish")).unwrap();
        let main_lock = explained
            .steps
            .iter()
            .position(|s| s.task == "main" && s.op.starts_with("client.state.lock"))
            .unwrap();
        assert!(publish < main_lock);
        let text = explained.render(ListingStyle::Columns);
        assert!(text.contains("sequentially consistent order"), "{text}");
        assert!(!text.contains("stale"), "{text}");
    }

    #[test]
    fn a_stale_read_that_no_order_explains_is_marked_weak() {
        // main reads 0 although it locked after the caller's add inside the
        // same critical section: only weak memory explains it.
        let steps = vec![
            step("caller", "client.state.lock() (acquired)", 272),
            step("caller", "tasks.add(2) -> counter 2, waiters 0", 302),
            step("caller", "client.state.unlock()", 272),
            step("main", "client.state.lock() (acquired)", 346),
            step("main", "tasks.wait() -> counter 0, returns at once", 383),
        ];
        let explained = Listing {
            steps,
            ..Listing::default()
        }
        .explained();
        assert_eq!(
            explained.memory,
            Memory::Weak {
                stale: vec![StaleRead {
                    step: 4,
                    saw: None,
                    latest: 1
                }]
            }
        );
        let text = explained.render(ListingStyle::Single);
        assert!(
            text.contains("[stale: saw the initial value, not step 2]"),
            "{text}"
        );
        assert!(text.contains("weak memory: 1 read(s)"), "{text}");
    }

    #[test]
    fn a_sequentially_consistent_listing_is_left_alone() {
        // The same bug in the order a person tells it: main waits at zero
        // before the caller's late adds.
        let mut steps = h5_as_loom_ran_it();
        let adds: Vec<ListedStep> = steps.drain(6..8).collect();
        let returns = steps
            .iter()
            .position(|s| s.op == "close() returns")
            .unwrap();
        steps.splice(returns + 1..returns + 1, adds);
        let listing = Listing {
            steps: steps.clone(),
            ..Listing::default()
        };
        assert_eq!(listing.stale_reads(), vec![]);
        let explained = listing.explained();
        assert_eq!(explained.memory, Memory::Sequential);
        assert_eq!(explained.steps, steps);
    }

    #[test]
    fn columns_put_each_task_in_its_own_column_and_mark_switches() {
        let text = h5().render(ListingStyle::Columns);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("interleaving (40 steps: 3 shown"));
        assert!(
            lines[1].contains("| caller") && lines[1].contains("| main"),
            "{text}"
        );
        // main's step is in the second column: right of caller's.
        let main_row = lines.iter().find(|l| l.contains("tasks.wait()")).unwrap();
        let caller_row = lines.iter().find(|l| l.contains("publish")).unwrap();
        assert!(
            main_row.find("tasks.wait").unwrap() > caller_row.find("stream_workspace").unwrap()
        );
        assert!(main_row.contains("»2"), "{text}");
        assert!(lines.iter().any(|l| l.contains("»3")), "{text}");
        assert!(!caller_row.contains('»'), "{text}");
        assert!(main_row.trim_end().ends_with("src/client.rs:383"), "{text}");
    }

    #[test]
    fn single_is_the_one_column_form() {
        let text = h5().render(ListingStyle::Single);
        assert!(text.contains("    2  main    tasks.wait() -> counter 0, returns at once"));
        assert!(!text.contains('»'));
    }

    #[test]
    fn long_operations_wrap_inside_their_column() {
        let long = "x ".repeat(40);
        let listing = Listing {
            steps: vec![step("main", long.trim(), 1), step("other", "short", 2)],
            ..Listing::default()
        };
        let text = listing.render(ListingStyle::Columns);
        assert!(text.lines().all(|l| l.chars().count() < 120), "{text}");
        assert!(text.matches("x x").count() >= 2, "{text}");
    }

    #[test]
    fn the_style_parses() {
        assert_eq!(ListingStyle::parse("single"), Some(ListingStyle::Single));
        assert_eq!(ListingStyle::parse("Columns"), Some(ListingStyle::Columns));
        assert_eq!(ListingStyle::parse("pictures"), None);
    }
}
