//! Running planned trials: skips first, one fresh process per trial, several at once, with
//! hugetlb trials one at a time so they never compete for the huge page pool.

pub mod plan;
pub mod prepare;
pub(crate) mod repeat;

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, RwLock};
use std::time::Duration;

use crate::host::provision::Request;
use crate::kernel::probe::Probe;
use crate::run::plan::PlannedTrial;
use crate::trial::spawn::{run_in_fresh_process, DEFAULT_TIMEOUT};
use crate::trial::verdict::{TrialResult, Verdict};

static HUGETLB_LANE: Mutex<()> = Mutex::new(());

/// Trials that swap share it; a trial that turns a swap device off holds it alone, so no other
/// trial's pages are swapped in behind its back.
static SWAP_LANE: RwLock<()> = RwLock::new(());

/// Runs one trial (or skips it with the reason).
pub fn run_planned(trial: &PlannedTrial, probe: &Probe) -> TrialResult {
    if let Some(reason) = trial.skip_reason(probe) {
        return TrialResult::unreported(&trial.name, trial.memory, Verdict::Skip { reason });
    }
    // One hugetlb trial at a time in this process (the mutex) and on the host (the file lock,
    // for other uffd-conform processes sharing the pool).
    let _lane = trial.memory.is_hugetlb().then(|| {
        let threads = HUGETLB_LANE.lock().unwrap_or_else(|p| p.into_inner());
        (threads, crate::host::lock::lock("hugetlb-lane"))
    });
    let _swap_alone = trial
        .uses_swapoff
        .then(|| SWAP_LANE.write().unwrap_or_else(|p| p.into_inner()));
    let _swap_shared = (trial.needs_swap && !trial.uses_swapoff)
        .then(|| SWAP_LANE.read().unwrap_or_else(|p| p.into_inner()));
    let timeout = trial
        .case
        .case
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT)
        .saturating_add(stress_time(&trial.case.case))
        .min(stall_cap());
    let pool_before = _lane
        .as_ref()
        .and_then(|_| free_huge_pages(probe.huge_page_size));
    let mut result = run_in_fresh_process(&trial.name, &trial.spec(probe), timeout);
    if let Some(free) = pool_before {
        wait_for_pool(probe.huge_page_size, free);
    }
    if let Some(expect) = &trial.case.case.expect_failure {
        result.verdict = result.verdict.judge_meta(expect);
    }
    result
}

/// How long a case's `stress` steps run at this run's `--stress-time`: added to its time limit.
fn stress_time(case: &crate::case::Case) -> Duration {
    let scale = stress_params().time;
    let ms: f64 = case
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            crate::case::Op::Stress(st) => Some(st.rounds as f64 * st.round_ms as f64 * scale),
            _ => None,
        })
        .sum();
    Duration::from_millis(ms as u64)
}

/// The seed of `stress` steps (`--seed`); without it, each run picks one and reports it.
pub const SEED_ENV: &str = "UFFD_CONFORM_SEED";

/// Multiplies the duration of `stress` steps (`--stress-time`; default 1).
pub const STRESS_TIME_ENV: &str = "UFFD_CONFORM_STRESS_TIME";

/// The run's stress parameters, from the environment (the CLI sets it from its options), the
/// seed chosen once per run when none is given.
pub fn stress_params() -> crate::trial::protocol::StressParams {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::env::var(SEED_ENV)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                // A run without --seed still races reproducibly per thread: the seed it drew
                // is printed with every stress failure.
                let t = crate::trial::protocol::monotonic_ns();
                (t ^ (std::process::id() as u64) << 32) % 1_000_000_007
            })
    });
    let time = std::env::var(STRESS_TIME_ENV)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(1.0);
    crate::trial::protocol::StressParams { seed, time }
}

/// The environment variable that caps every trial's timeout (milliseconds): `ci/mutate` sets
/// it so a broken kernel on which trials hang costs seconds, not ten seconds per hung trial.
pub const STALL_ENV: &str = "UFFD_CONFORM_TRIAL_TIMEOUT_MS";

/// The cap from [`STALL_ENV`], or none.
fn stall_cap() -> Duration {
    std::env::var(STALL_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::MAX)
}

/// The environment variable that marks a machine whose memory the suite may damage for good
/// (MADV_HWPOISON): the `uffd-conform vm` guest sets it; elsewhere such trials skip, because
/// the host must be left as found.
pub const DISPOSABLE_ENV: &str = "UFFD_CONFORM_DISPOSABLE";

/// The environment variable that stops a run after this many failed trials (the trials not
/// started yet get no result): `ci/mutate` needs a few killing trials, not all of them.
pub const MAX_FAILURES_ENV: &str = "UFFD_CONFORM_MAX_FAILURES";

fn max_failures() -> usize {
    std::env::var(MAX_FAILURES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Free huge pages of `size` bytes in the pool, when the kernel says.
fn free_huge_pages(size: usize) -> Option<u64> {
    let path = format!(
        "/sys/kernel/mm/hugepages/hugepages-{}kB/free_hugepages",
        size / 1024
    );
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Holds the hugetlb lane until the pool has `free` pages again (at most a second). A trial's
/// huge pages return only when every process that mapped them is gone, and a killed child of
/// the trial, or an io_uring torn down in the background, may still hold some after the trial
/// itself was reaped; the next hugetlb trial would find the pool short (ENOMEM), a failure
/// that is not the kernel's.
fn wait_for_pool(size: usize, free: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while free_huge_pages(size).is_some_and(|n| n < free) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs every trial on `jobs` threads; `on_done` sees each result as it finishes. Results come
/// back in plan order.
///
/// Trials start in plan order, except that hugetlb trials, which take turns on one lane, go
/// first whenever the lane is free, and a thread never waits for the lane while other trials
/// are left: the lane is kept busy and the other threads do the rest meanwhile, so hugetlb
/// trials do not hold up the run (under TCG they are a third of its work).
pub fn run_all(
    trials: &[PlannedTrial],
    probe: &Probe,
    jobs: usize,
    on_done: &(dyn Fn(&TrialResult) + Sync),
) -> Vec<TrialResult> {
    let queue = Mutex::new(Queue::new(trials));
    let failures = std::sync::atomic::AtomicUsize::new(0);
    let max_failures = max_failures();
    let lane_freed = Condvar::new();
    let results: Mutex<Vec<Option<TrialResult>>> = Mutex::new(vec![None; trials.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let i = {
                    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                    loop {
                        match q.take() {
                            Take::Trial(i) => break Some(i),
                            Take::Done => break None,
                            Take::WaitForLane => {
                                q = lane_freed.wait(q).unwrap_or_else(|p| p.into_inner())
                            }
                        }
                    }
                };
                let Some(i) = i else { break };
                if failures.load(std::sync::atomic::Ordering::Relaxed) >= max_failures {
                    break; // ci/mutate: the kernel is already caught; the rest is not run
                }
                let trial = &trials[i];
                // Frees the lane when the trial is done, even if this thread panics.
                let _lane = trial.memory.is_hugetlb().then(|| LaneRelease {
                    queue: &queue,
                    freed: &lane_freed,
                });
                let result = run_planned(trial, probe);
                drop(_lane);
                if result.verdict.is_failure() {
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                on_done(&result);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// The trials not started yet, in plan order, hugetlb ones apart.
struct Queue {
    hugetlb: VecDeque<usize>,
    other: VecDeque<usize>,
    lane_busy: bool,
}

struct LaneRelease<'a> {
    queue: &'a Mutex<Queue>,
    freed: &'a Condvar,
}

impl Drop for LaneRelease<'_> {
    fn drop(&mut self) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lane_busy = false;
        self.freed.notify_all();
    }
}

enum Take {
    Trial(usize),
    /// Only hugetlb trials are left and one is running.
    WaitForLane,
    Done,
}

impl Queue {
    fn new(trials: &[PlannedTrial]) -> Queue {
        let (hugetlb, other) = (0..trials.len()).partition(|&i| trials[i].memory.is_hugetlb());
        Queue {
            hugetlb,
            other,
            lane_busy: false,
        }
    }

    fn take(&mut self) -> Take {
        if !self.lane_busy {
            if let Some(i) = self.hugetlb.pop_front() {
                self.lane_busy = true;
                return Take::Trial(i);
            }
        }
        match self.other.pop_front() {
            Some(i) => Take::Trial(i),
            None if self.hugetlb.is_empty() => Take::Done,
            None => Take::WaitForLane,
        }
    }
}

/// What the trials need provisioned.
pub fn request_for(trials: &[PlannedTrial]) -> Request {
    Request {
        // One hugetlb trial runs at a time; a little spare covers the alias mapping.
        huge_pages: crate::run::plan::max_huge_pages(trials).max(
            if trials.iter().any(|t| t.huge_pages > 0) {
                8
            } else {
                0
            },
        ),
        swap: trials.iter().any(|t| t.needs_swap),
        ksm: trials.iter().any(|t| t.needs_ksm),
        thp: trials.iter().any(|t| t.needs_thp),
    }
}

/// Default parallelism: the machine's cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
