//! Running planned trials: skips first, one fresh process per trial, several at once, with
//! hugetlb trials one at a time so they never compete for the huge page pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use crate::kernel::probe::Probe;
use crate::plan::PlannedTrial;
use crate::provision::Request;
use crate::trial::spawn::{run_trial, DEFAULT_TIMEOUT};
use crate::trial::verdict::{TrialResult, Verdict};

static HUGETLB_LANE: Mutex<()> = Mutex::new(());

/// Trials that swap share it; a trial that turns a swap device off holds it alone, so no other
/// trial's pages are swapped in behind its back.
static SWAP_LANE: RwLock<()> = RwLock::new(());

/// Runs one trial (or skips it with the reason).
pub fn run_planned(trial: &PlannedTrial, probe: &Probe) -> TrialResult {
    if let Some(reason) = trial.skip_reason(probe) {
        return TrialResult {
            name: trial.name.clone(),
            memory: trial.memory,
            verdict: Verdict::Skip { reason },
            duration: Duration::ZERO,
            report: None,
            stderr: String::new(),
        };
    }
    // One hugetlb trial at a time in this process (the mutex) and on the host (the file lock,
    // for other uffd-conform processes sharing the pool).
    let _lane = trial.memory.is_hugetlb().then(|| {
        let threads = HUGETLB_LANE.lock().unwrap_or_else(|p| p.into_inner());
        (threads, crate::hostlock::lock("hugetlb-lane"))
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
        .unwrap_or(DEFAULT_TIMEOUT);
    let mut result = run_trial(&trial.name, &trial.spec(probe), timeout);
    if let Some(expect) = &trial.case.case.expect_failure {
        result.verdict = result.verdict.judge_meta(expect);
    }
    result
}

/// Runs every trial on `jobs` threads; `on_done` sees each result as it finishes. Results come
/// back in plan order.
pub fn run_all(
    trials: &[PlannedTrial],
    probe: &Probe,
    jobs: usize,
    on_done: &(dyn Fn(&TrialResult) + Sync),
) -> Vec<TrialResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<TrialResult>>> = Mutex::new(vec![None; trials.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(trial) = trials.get(i) else { break };
                let result = run_planned(trial, probe);
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

/// What the trials need provisioned.
pub fn request_for(trials: &[PlannedTrial]) -> Request {
    Request {
        // One hugetlb trial runs at a time; a little spare covers the alias mapping.
        huge_pages: crate::plan::max_huge_pages(trials).max(
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
