//! Minimal shuttle counterexamples: shrink a failing schedule to fewer
//! preemptions (shuttle build only).
//!
//! A shuttle schedule is the task chosen at every scheduling decision (and
//! where random values were drawn). A *preemption* is a decision that
//! switches away from a task that could have gone on running. PCT and the
//! random scheduler switch often, so the schedule they fail with has many
//! preemptions that have nothing to do with the bug.
//!
//! Shrinking replays the failure with a tolerant scheduler ([`Guided`]):
//! it follows a guide schedule where it can and otherwise keeps the running
//! task (a choice that is no preemption). Greedily, for one preemption at a
//! time, it tries the schedule without it: the same prefix, then either no
//! switch at all from there on, or the rest of the schedule unchanged. It
//! keeps a candidate when it fails the same oracle with fewer preemptions
//! (or as many in fewer steps), until no preemption can go or the budget is
//! spent. shuttle writes each failing candidate's exact schedule, which
//! replays it ([`shuttle::replay_from_file`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shuttle::scheduler::{DataSource, RandomDataSource, Schedule, Scheduler, Task, TaskId};
use shuttle_engine::scheduler::ScheduleStep;
use shuttle_engine::scheduler::serialization::{deserialize_schedule, serialize_schedule};

/// Candidates tried at most per shrink.
const MAX_CANDIDATES: usize = 300;
/// Time spent shrinking at most.
const MAX_TIME: Duration = Duration::from_secs(20);

/// What one guided execution did: the steps shuttle recorded, and where it
/// preempted.
#[derive(Debug, Clone, Default)]
pub struct Taken {
    /// The schedule as run (the same steps shuttle records).
    pub steps: Vec<ScheduleStep>,
    /// Step index of each preemption, with the task it switched away from.
    pub preemptions: Vec<(usize, TaskId)>,
}

/// A scheduler that follows `guide` where the guided task can run, and
/// otherwise keeps the running task (or, when that one cannot run or
/// yields, the first task that can).
pub struct Guided {
    guide: Vec<ScheduleStep>,
    at: usize,
    started: bool,
    data: RandomDataSource,
    taken: Arc<Mutex<Taken>>,
}

impl Guided {
    /// Follow `guide`; what was run is written to `taken`.
    pub fn new(guide: Schedule, taken: Arc<Mutex<Taken>>) -> Guided {
        Guided {
            data: RandomDataSource::initialize(guide.seed),
            guide: guide.steps,
            at: 0,
            started: false,
            taken,
        }
    }

    fn taken(&self) -> std::sync::MutexGuard<'_, Taken> {
        self.taken.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Scheduler for Guided {
    fn new_execution(&mut self) -> Option<Schedule> {
        if std::mem::replace(&mut self.started, true) {
            return None;
        }
        *self.taken() = Taken::default();
        Some(Schedule::new(self.data.reinitialize()))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        // A random draw the guide has and this execution did not make.
        while matches!(self.guide.get(self.at), Some(ScheduleStep::Random)) {
            self.at += 1;
        }
        let wanted = match self.guide.get(self.at) {
            Some(ScheduleStep::Task(task)) => {
                self.at += 1;
                Some(*task)
            }
            _ => None,
        };
        let can_run = |task: &TaskId| runnable.iter().any(|t| t.id() == *task);
        let stay = current.filter(|task| can_run(task) && !is_yielding);
        let chosen = wanted
            .filter(can_run)
            .or(stay)
            .or_else(|| {
                runnable
                    .iter()
                    .map(|t| t.id())
                    .find(|task| Some(*task) != current)
            })
            .unwrap_or_else(|| runnable[0].id());
        let mut taken = self.taken();
        if let Some(running) = stay
            && running != chosen
        {
            let at = taken.steps.len();
            taken.preemptions.push((at, running));
        }
        taken.steps.push(ScheduleStep::Task(chosen));
        Some(chosen)
    }

    fn next_u64(&mut self) -> u64 {
        if matches!(self.guide.get(self.at), Some(ScheduleStep::Random)) {
            self.at += 1;
        }
        self.taken().steps.push(ScheduleStep::Random);
        self.data.next_u64()
    }
}

/// Read a schedule file shuttle wrote.
pub fn read_schedule(path: &Path) -> Option<Schedule> {
    deserialize_schedule(std::fs::read_to_string(path).ok()?.trim())
}

/// Write the schedule a guided run took (seeded with `seed`) as shuttle
/// writes its own: [`shuttle::replay_from_file`] replays it.
pub fn write_schedule(path: &Path, seed: u64, taken: &Taken) -> std::io::Result<()> {
    let schedule = Schedule {
        seed,
        steps: taken.steps.clone(),
    };
    std::fs::write(path, serialize_schedule(&schedule))
}

/// One guided run's result, as the shrinker needs it.
#[derive(Debug, Clone)]
pub struct Attempt<F> {
    /// The failure (if it failed the way we want), with its schedule file.
    pub failure: Option<(F, PathBuf)>,
    /// What it ran.
    pub taken: Taken,
}

/// The smallest failing schedule found from `original`.
#[derive(Debug, Clone)]
pub struct Shrunk<F> {
    /// The failure of the smallest schedule.
    pub failure: F,
    /// Its schedule file (replays it).
    pub schedule: PathBuf,
    /// Its preemptions.
    pub preemptions: usize,
    /// The original schedule's preemptions.
    pub from: usize,
    /// Candidates run.
    pub tried: usize,
}

/// Shrink the failing schedule `original`. `attempt` runs one guided
/// execution of a guide schedule and says whether it failed the same way.
/// `None` if the original does not fail again under the guided scheduler.
pub fn shrink<F: Clone>(
    original: &Schedule,
    mut attempt: impl FnMut(Schedule) -> Attempt<F>,
) -> Option<Shrunk<F>> {
    let started = Instant::now();
    let first = attempt(original.clone());
    let (failure, schedule) = first.failure?;
    let from = first.taken.preemptions.len();
    let mut best = (failure, schedule, first.taken);
    let mut tried = 1;
    'shrinking: loop {
        let seed = original.seed;
        let steps = best.2.steps.clone();
        // Later preemptions first: they are the most likely to be noise
        // after the bug has happened.
        for &(at, running) in best.2.preemptions.clone().iter().rev() {
            let mut stay = steps[..at].to_vec();
            stay.push(ScheduleStep::Task(running));
            let mut delay = steps.clone();
            delay[at] = ScheduleStep::Task(running);
            for guide in [stay, delay] {
                if tried >= MAX_CANDIDATES || started.elapsed() > MAX_TIME {
                    break 'shrinking;
                }
                tried += 1;
                let result = attempt(Schedule { seed, steps: guide });
                if let Some((failure, schedule)) = result.failure {
                    let (p, n) = (result.taken.preemptions.len(), result.taken.steps.len());
                    let (bp, bn) = (best.2.preemptions.len(), best.2.steps.len());
                    if p < bp || (p == bp && n < bn) {
                        let _ = std::fs::remove_file(&best.1);
                        best = (failure, schedule, result.taken);
                        continue 'shrinking;
                    }
                    let _ = std::fs::remove_file(&schedule);
                }
            }
        }
        break;
    }
    Some(Shrunk {
        failure: best.0,
        schedule: best.1,
        preemptions: best.2.preemptions.len(),
        from,
        tried,
    })
}
