//! What passes between a trial process and the runner: the spec in, the report out.

use serde::{Deserialize, Serialize};

use crate::case::Case;
use crate::kernel::memory::MemoryType;
use crate::kernel::uapi::*;

/// Everything a trial process needs, sent as JSON on its stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialSpec {
    pub case: Case,
    pub memory: MemoryType,
    /// UFFD features requested in UFFDIO_API (the case's and the implied ones).
    pub features: u64,
    pub huge_page_size: usize,
    /// Open the uffd with UFFD_USER_MODE_ONLY (unprivileged, vm.unprivileged_userfaultfd=0).
    pub user_mode_only: bool,
    /// The seed and time scale of `stress` steps.
    #[serde(default)]
    pub stress: StressParams,
}

/// How `stress` steps run: `--seed` and `--stress-time`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct StressParams {
    /// The run's seed; each trial's threads derive theirs from it and the trial's name.
    pub seed: u64,
    /// Multiplies every round's duration (1: as the case says).
    pub time: f64,
}

impl Default for StressParams {
    fn default() -> Self {
        StressParams { seed: 0, time: 1.0 }
    }
}

/// One line of a trial process's stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildLine {
    /// About to run this 1-based step.
    Step(usize),
    Report(ProcessReport),
}

/// What a trial process found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcessReport {
    pub outcome: Outcome,
    pub steps: Vec<StepRecord>,
    /// Every message read from any userfaultfd of the trial, in order.
    pub messages: Vec<Message>,
    /// Ioctls UFFDIO_API and the case's UFFDIO_REGISTER reported.
    pub api_ioctls: u64,
    pub register_ioctls: Option<u64>,
    /// Where the trial process spent its time (for the benchmark).
    #[serde(default)]
    pub timing: Timing,
}

/// Phases of a trial process, in nanoseconds. `started` is CLOCK_MONOTONIC (system-wide), so
/// the runner can tell how long the process took to start.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Timing {
    /// Set by the runner: when it started the process, and when it had reaped it.
    pub spawned: u64,
    pub reaped: u64,
    /// Set by the trial process.
    pub started: u64,
    pub memory: u64,
    pub uffd: u64,
    pub handler: u64,
    pub steps: u64,
    pub finished: u64,
}

/// CLOCK_MONOTONIC in nanoseconds, comparable between processes.
pub fn monotonic_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Pass,
    Fail(Failure),
    /// The trial found at run time that it cannot test what it should (with the reason).
    Skip(String),
}

/// The first step whose checks failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    /// 1-based step; 0 is the setup (map, UFFDIO_API, register).
    pub step: usize,
    /// The step, e.g. `write pages 0..2`.
    pub op: String,
    pub mismatches: Vec<Mismatch>,
}

/// One check that saw something other than what it expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    pub check: String,
    pub expected: String,
    pub observed: String,
}

/// What one step did and saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub op: String,
    /// False when `only` excluded this memory type.
    pub ran: bool,
    /// Observations worth keeping for reports (pagemap entries, errnos, message counts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed: Vec<String>,
}

/// A message read from a userfaultfd, raw, plus where it landed in the area.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// 0: the trial's own uffd; 1..: uffds handed over by UFFD_EVENT_FORK, in order.
    pub uffd: usize,
    pub event: u8,
    pub arg: [u64; 3],
    /// For page faults: the page of the area the address falls in.
    pub page: Option<usize>,
}

impl Message {
    pub fn flags(&self) -> u64 {
        self.arg[0]
    }
    pub fn address(&self) -> u64 {
        self.arg[1]
    }
    pub fn ptid(&self) -> u32 {
        self.arg[2] as u32
    }

    pub fn event_name(event: u8) -> String {
        match event {
            UFFD_EVENT_PAGEFAULT => "pagefault".into(),
            UFFD_EVENT_FORK => "fork".into(),
            UFFD_EVENT_REMAP => "remap".into(),
            UFFD_EVENT_REMOVE => "remove".into(),
            UFFD_EVENT_UNMAP => "unmap".into(),
            other => format!("event 0x{other:02x}"),
        }
    }

    pub fn flag_names(flags: u64) -> String {
        let mut names: Vec<String> = [
            (UFFD_PAGEFAULT_FLAG_WRITE, "write"),
            (UFFD_PAGEFAULT_FLAG_WP, "wp"),
            (UFFD_PAGEFAULT_FLAG_MINOR, "minor"),
        ]
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| n.to_string())
        .collect();
        let known = UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_MINOR;
        if flags & !known != 0 {
            names.push(format!("0x{:x}", flags & !known));
        }
        if names.is_empty() {
            "no flags".into()
        } else {
            names.join("|")
        }
    }

    /// e.g. `pagefault write|wp @ page 2 (0x7f0000002000)`.
    pub fn describe(&self) -> String {
        let uffd = if self.uffd == 0 {
            String::new()
        } else {
            format!(" [fork uffd {}]", self.uffd)
        };
        match self.event {
            UFFD_EVENT_PAGEFAULT => {
                let at = match self.page {
                    Some(p) => format!("page {p} (0x{:x})", self.address()),
                    None => format!("0x{:x} (outside the area)", self.address()),
                };
                let tid = if self.ptid() != 0 {
                    format!(" tid {}", self.ptid())
                } else {
                    String::new()
                };
                format!(
                    "pagefault {} @ {at}{tid}{uffd}",
                    Self::flag_names(self.flags())
                )
            }
            UFFD_EVENT_REMAP => format!(
                "remap from 0x{:x} to 0x{:x} len 0x{:x}{uffd}",
                self.arg[0], self.arg[1], self.arg[2]
            ),
            UFFD_EVENT_REMOVE | UFFD_EVENT_UNMAP => format!(
                "{} 0x{:x}..0x{:x}{uffd}",
                Self::event_name(self.event),
                self.arg[0],
                self.arg[1]
            ),
            e => format!("{}{uffd}", Self::event_name(e)),
        }
    }
}
