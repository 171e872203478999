//! The historical bug catalog (H1-H8), as switches for test builds.
//!
//! Each [`Bug`] puts one bug that really shipped in (or was caught in review
//! of) the Go client back into this client, so the harness can prove it
//! catches it. This module exists only with `--cfg wsdrain_bugs` (set by
//! `cargo xtask` for the model builds and the catalog tests). Without it the
//! client's switches are the `bug!` macro's literal `false`:
//! no enum, no names, no branch reaches any artifact. A cfg rather than a
//! feature, so no feature unification in a workspace can switch it on.

use std::fmt;

/// One entry of the historical bug catalog (`docs/protocol.md`, the catalog).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Bug {
    /// H1: `close()` closes the connection but does not wait for the tasks.
    CloseNoDrain,
    /// H2: no `closed` flag: a dial in flight during `close()` publishes its
    /// stream and starts tasks after `close()` returned.
    DialVsClose,
    /// H3: no re-check after the dial: a second concurrent caller overwrites
    /// the first stream, which is orphaned with its tasks.
    ConcurrentDialOrphan,
    /// H4: the reader's exit cleanup clears the client's current stream
    /// without the identity check, erasing a newer stream.
    CleanupClobber,
    /// H5 (the seed, kandev PR #1272): the wait-group `add(2)` runs after the
    /// stream is published and the lock released.
    AddAfterPublish,
    /// H6: the stream manager's lazily spawned stop-signal merger is not
    /// registered on its wait group.
    UntrackedHelperTask,
    /// H7: closing paths close the connection but not the writer's input
    /// queue: a writer parked on an empty queue never exits.
    WriterNotWoken,
    /// H8: `close()` called from a handler on the reader task waits for that
    /// same reader.
    CloseFromCallback,
}

impl Bug {
    /// Every bug, in catalog order.
    pub const ALL: [Bug; 8] = [
        Bug::CloseNoDrain,
        Bug::DialVsClose,
        Bug::ConcurrentDialOrphan,
        Bug::CleanupClobber,
        Bug::AddAfterPublish,
        Bug::UntrackedHelperTask,
        Bug::WriterNotWoken,
        Bug::CloseFromCallback,
    ];

    /// The catalog id: `"H1"` ... `"H8"`.
    pub fn id(self) -> &'static str {
        ["H1", "H2", "H3", "H4", "H5", "H6", "H7", "H8"][self as usize]
    }

    /// The catalog name, e.g. `"add-after-publish"`.
    pub fn name(self) -> &'static str {
        [
            "close-no-drain",
            "dial-vs-close",
            "concurrent-dial-orphan",
            "cleanup-clobber",
            "add-after-publish",
            "untracked-helper-task",
            "writer-not-woken",
            "close-from-callback",
        ][self as usize]
    }

    /// Look a bug up by id (`"H5"`, case-insensitive) or name.
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL
            .into_iter()
            .find(|b| b.id().eq_ignore_ascii_case(name) || b.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id(), self.name())
    }
}

/// A set of switched-on bugs. Empty by default: the fixed client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs(u16);

impl Bugs {
    /// No bug: the fixed client.
    pub const NONE: Bugs = Bugs(0);

    /// The set with only `bug` on.
    pub fn only(bug: Bug) -> Self {
        Bugs(bug.bit())
    }

    /// This set plus `bug`.
    pub fn with(self, bug: Bug) -> Self {
        Bugs(self.0 | bug.bit())
    }

    /// Whether `bug` is switched on.
    #[inline(always)]
    pub fn on(self, bug: Bug) -> bool {
        self.0 & bug.bit() != 0
    }

    /// The bugs in this set.
    pub fn iter(self) -> impl Iterator<Item = Bug> {
        Bug::ALL.into_iter().filter(move |b| self.0 & b.bit() != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_round_trip() {
        for bug in Bug::ALL {
            assert_eq!(Bug::from_name(bug.id()), Some(bug));
            assert_eq!(Bug::from_name(&bug.id().to_lowercase()), Some(bug));
            assert_eq!(Bug::from_name(bug.name()), Some(bug));
        }
        assert_eq!(Bug::from_name("H9"), None);
        assert_eq!(Bug::AddAfterPublish.to_string(), "H5 add-after-publish");
    }

    #[test]
    fn sets() {
        let set = Bugs::only(Bug::CloseNoDrain).with(Bug::CloseFromCallback);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Bug::CloseNoDrain, Bug::CloseFromCallback]
        );
        assert!(!Bugs::NONE.on(Bug::CloseNoDrain));
        assert!(set.on(Bug::CloseFromCallback));
        assert!(!set.on(Bug::AddAfterPublish));
    }
}
