//! The `stress` step (issue 15): racing threads over the trial's area, fault handlers serving
//! them, and the invariants checked during the run and at every quiescent point.
//!
//! - [`model`]: the per-page model, its locks, the schedule and the page pattern.
//! - [`ops`]: what one racing thread does.
//! - [`serve`]: the handler threads and the well-formedness of every message.
//! - [`child`]: the fork operation and what the child checks.
//! - [`env`]: what a racing thread needs besides the model.
//! - [`kmsg`]: kernel WARNING/BUG lines logged while the step ran.

mod child;
mod env;
pub(crate) mod kmsg;
pub(crate) mod model;
mod observe;
mod ops;
mod relocate;
pub(crate) mod serve;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use self::model::{thread_seed, Rng, Shared, Slot};
use crate::case::stress::{Sabotage, Stress, StressOp};
use crate::kernel::features::Feature;
use crate::kernel::memory::MemoryType;
use crate::kernel::pagemap::Pagemap;
use crate::kernel::uapi::*;
use crate::kernel::uffd::Uffd;
use crate::trial::memops::mismatch;
use crate::trial::protocol::{monotonic_ns, Mismatch, StressParams};

/// Everything the step needs from the trial.
pub struct Input<'a> {
    pub uffd: Arc<Uffd>,
    pub base: usize,
    pub page_size: usize,
    pub pages: usize,
    pub memory: MemoryType,
    pub features: u64,
    /// The area's register modes (UFFDIO_REGISTER_MODE_*).
    pub modes: u64,
    pub pagemap: &'a Pagemap,
    pub params: StressParams,
    /// Identifies the trial in the seed, so trials of one run race differently.
    pub trial: String,
}

/// What the step came to: observations, or the invariants it broke (with the schedule).
pub enum Outcome {
    Done(Vec<String>),
    Failed(Vec<Mismatch>),
    /// The step ran clean but could not test what it races: why.
    Skipped(String),
}

/// The seed of a trial: the run's seed mixed with the trial's name.
pub fn trial_seed(run_seed: u64, trial: &str) -> u64 {
    trial
        .bytes()
        .fold(run_seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

pub fn run(input: Input, stress: &Stress) -> Outcome {
    let seed = trial_seed(input.params.seed, &input.trial);
    let round_ms = ((stress.round_ms as f64) * input.params.time).max(1.0) as u64;
    let wp_async = input.features & Feature::WpAsync.bit() != 0;
    let mut slots = Vec::new();
    let mut plan = Vec::new(); // (slot, worker)
    for (w, worker) in stress.threads.iter().enumerate() {
        for c in 0..worker.count {
            plan.push((slots.len(), worker.clone()));
            slots.push(Slot::new(format!(
                "thread {} ({w}.{c}: {})",
                slots.len(),
                names(&worker.ops)
            )));
        }
    }
    let shared = Arc::new(Shared {
        base: input.base,
        page_size: input.page_size,
        pages: input.pages,
        data: (0..input.pages).map(|_| Mutex::new(0)).collect(),
        wp: (0..input.pages).map(|_| Mutex::new(false)).collect(),
        pending: (0..input.pages).map(|_| AtomicU64::new(0)).collect(),
        wp_faults: (0..input.pages).map(|_| AtomicU64::new(0)).collect(),
        missing_faults: (0..input.pages).map(|_| AtomicU64::new(0)).collect(),
        slots,
        started_ns: monotonic_ns(),
        round_ms: AtomicU64::new(round_ms),
        stop: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        faults_resolved: AtomicU64::new(0),
        messages: AtomicU64::new(0),
        pages_verified: AtomicU64::new(0),
        eagain: AtomicU64::new(0),
        enoent: AtomicU64::new(0),
        migrated: AtomicU64::new(0),
        not_migrated: AtomicU64::new(0),
        remaps: AtomicU64::new(0),
        problems: Mutex::new(Vec::new()),
        sabotage_armed: AtomicBool::new(stress.sabotage.is_some()),
        left_page: AtomicUsize::new(usize::MAX),
        tasks: Mutex::new(Vec::new()),
    });
    let kmsg = kmsg::Watch::start();
    let tids = Arc::new(Mutex::new(vec![crate::trial::exec::gettid() as u64]));
    let allowed = serve::Allowed {
        modes: input.modes,
        features: input.features,
        base: input.base,
        len: input.pages * input.page_size,
    };
    let serve = match serve::Serve::start(
        input.uffd.clone(),
        shared.clone(),
        allowed,
        stress.handler.threads,
        stress.handler.wait,
        stress.sabotage,
        tids.clone(),
    ) {
        Ok(s) => Arc::new(Mutex::new(s)),
        Err(e) => {
            return Outcome::Failed(vec![mismatch(
                "start the stress handlers",
                "success",
                e.to_string(),
            )])
        }
    };
    let stopper = serve.clone();
    let env = Arc::new(env::Env {
        uffd: input.uffd.clone(),
        memory: input.memory,
        modes: input.modes,
        wp_async,
        event_fork: input.features & Feature::EventFork.bit() != 0,
        event_remap: input.features & Feature::EventRemap.bit() != 0,
        nodes: crate::trial::migrate::memory_nodes(),
        sabotage: stress.sabotage,
        children: Arc::new(Mutex::new(Vec::new())),
        pagemap: match Pagemap::open_self() {
            Ok(p) => Arc::new(p),
            Err(e) => {
                return Outcome::Failed(vec![mismatch(
                    "open /proc/self/pagemap",
                    "success",
                    e.to_string(),
                )])
            }
        },
        stop_handlers: Arc::new(move || Shared::lock(&stopper).stop()),
    });
    let fail = |shared: &Shared, mut problems: Vec<Mismatch>, seed: u64| {
        problems.push(mismatch(
            format!(
                "schedule (replay with --seed {}; this trial's threads derive theirs from {seed})",
                input.params.seed
            ),
            "each thread's last operations",
            shared.schedule(),
        ));
        Outcome::Failed(problems)
    };

    // Every page starts populated, unprotected and holding sequence 1.
    for p in 0..input.pages {
        // SAFETY: the page is inside the area; the handlers resolve its faults.
        unsafe { model::write_page(shared.page_addr(p), input.page_size, p, 1) };
        *Shared::lock(&shared.data[p]) = 1;
    }
    if stress.start_protected {
        let len = input.pages * input.page_size;
        if let Err(e) = input
            .uffd
            .writeprotect(input.base, len, UFFDIO_WRITEPROTECT_MODE_WP)
        {
            return Outcome::Failed(vec![mismatch(
                "UFFDIO_WRITEPROTECT of the area (start_protected)",
                "success",
                e.desc().to_string(),
            )]);
        }
        for w in &shared.wp {
            *Shared::lock(w) = true;
        }
    }

    for round in 0..stress.rounds {
        shared.stop.store(false, Ordering::SeqCst);
        let mut handles = Vec::new();
        // Every thread of the round is running (its start-up mappings, e.g. the signal stack,
        // made) before any operates: `mremap` leaves a hole where the area was for a moment,
        // and a thread starting then could map into it.
        let started = Arc::new(std::sync::Barrier::new(plan.len()));
        for (slot, worker) in &plan {
            let started = started.clone();
            let (sh, env, mut worker, tids) =
                (shared.clone(), env.clone(), worker.clone(), tids.clone());
            let rng = Rng::new(thread_seed(seed, *slot, round));
            let max_ops = stress.max_ops;
            let slot = *slot;
            let closed_before = sh.closed.load(Ordering::SeqCst);
            let spawned = std::thread::Builder::new()
                .name(format!("stress-{slot}"))
                .spawn(move || {
                    Shared::lock(&tids).push(crate::trial::exec::gettid() as u64);
                    started.wait();
                    // `close` is done once, in the first round (never in a cycle).
                    worker
                        .ops
                        .retain(|o| *o != StressOp::Close || (round == 0 && !closed_before));
                    if !worker.ops.is_empty() {
                        ops::run_thread(&sh, &env, slot, &worker, rng, max_ops);
                    }
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.stop.store(true, Ordering::SeqCst);
                    return Outcome::Failed(vec![mismatch(
                        "start a thread",
                        "success",
                        e.to_string(),
                    )]);
                }
            }
        }
        let round_start = monotonic_ns();
        // Run the round, watching for a thread that makes no progress.
        loop {
            std::thread::sleep(std::time::Duration::from_millis(2));
            let elapsed_ms = (monotonic_ns() - round_start) / 1_000_000;
            if elapsed_ms >= round_ms {
                shared.stop.store(true, Ordering::SeqCst);
            }
            if let Some(stuck) = stalled(&shared, stress.stall_ms) {
                shared.stop.store(true, Ordering::SeqCst);
                let pending = shared.pending_faults();
                let problem = mismatch(
                    format!("round {}: every fault is resolved", round + 1),
                    format!("every operation done within {} ms", stress.stall_ms),
                    format!(
                        "{stuck}; faults read and not resolved: {}",
                        if pending.is_empty() {
                            "none".into()
                        } else {
                            pending.join(", ")
                        }
                    ),
                );
                let out = fail(&shared, vec![problem], seed);
                // The stuck threads cannot be joined; the process ends after its report.
                std::mem::forget(handles);
                std::mem::forget(serve);
                return out;
            }
            if shared.stop.load(Ordering::SeqCst) && handles.iter().all(|h| h.is_finished()) {
                break;
            }
        }
        for h in handles {
            let _ = h.join();
        }
        child::reap(&shared, &env, stress.stall_ms);
        quiescent(&shared, &input, stress.sabotage, wp_async);
        let problems = std::mem::take(&mut *Shared::lock(&shared.problems));
        if !problems.is_empty() {
            let mut problems = problems;
            for p in &mut problems {
                p.check = format!("round {}: {}", round + 1, p.check);
            }
            return fail(&shared, problems, seed);
        }
    }
    Shared::lock(&serve).stop();
    // A fault the handlers still hold need not be a lost one: an unprotect of its range wakes
    // the thread too. A lost fault is a thread that stalls, which the rounds watch for.
    let mut problems = std::mem::take(&mut *Shared::lock(&shared.problems));
    let own: Vec<u64> = [
        Shared::lock(&tids).as_slice(),
        Shared::lock(&shared.tasks).as_slice(),
    ]
    .concat();
    let (log_note, warnings) = kmsg.finish(&own);
    for w in warnings {
        problems.push(mismatch(
            "kernel log during the step",
            "no WARNING or BUG",
            w,
        ));
    }
    if !problems.is_empty() {
        return fail(&shared, problems, seed);
    }
    let secs = (monotonic_ns() - shared.started_ns) as f64 / 1e9;
    let ops: u64 = shared
        .slots
        .iter()
        .map(|s| s.ops.load(Ordering::SeqCst))
        .sum();
    let faults = shared.faults_resolved.load(Ordering::SeqCst);
    let verified = shared.pages_verified.load(Ordering::SeqCst);
    let mut observed = vec![format!(
        "stress: {} ms, {faults} faults resolved ({:.0}/s), {verified} pages verified ({:.0}/s), {ops} operations",
        (secs * 1000.0) as u64,
        faults as f64 / secs,
        verified as f64 / secs,
    )];
    observed.push(format!(
        "seed {seed} (run seed {}), {} messages, {} EAGAIN retried, {} ranges done page by page (ENOENT: the range spanned split vmas), {} rounds of {round_ms} ms",
        input.params.seed,
        shared.messages.load(Ordering::SeqCst),
        shared.eagain.load(Ordering::SeqCst),
        shared.enoent.load(Ordering::SeqCst),
        stress.rounds
    ));
    let uses = |o: StressOp| stress.threads.iter().any(|w| w.ops.contains(&o));
    if uses(StressOp::Migrate) && shared.migrated.load(Ordering::SeqCst) == 0 {
        // Nothing raced a migration: a clean run would pass for nothing.
        return Outcome::Skipped(format!(
            "`migrate` moved no page in {} rounds ({} asked for and not moved: busy, no memory on the other node, or a hole): the race with migration was not tested",
            stress.rounds,
            shared.not_migrated.load(Ordering::SeqCst)
        ));
    }
    if uses(StressOp::Migrate) {
        observed.push(format!(
            "migrate: {} pages moved to another node, {} not moved (busy, no memory or a hole)",
            shared.migrated.load(Ordering::SeqCst),
            shared.not_migrated.load(Ordering::SeqCst)
        ));
    }
    if uses(StressOp::Mremap) {
        observed.push(format!(
            "mremap: the area moved away and back {} times",
            shared.remaps.load(Ordering::SeqCst)
        ));
    }
    observed.push(log_note);
    Outcome::Done(observed)
}

fn names(ops: &[StressOp]) -> String {
    let mut v: Vec<String> = ops
        .iter()
        .map(|o| format!("{o:?}").to_lowercase())
        .collect();
    v.dedup();
    v.join("/")
}

/// A thread busy in one operation for longer than `stall_ms`, described.
fn stalled(shared: &Shared, stall_ms: u64) -> Option<String> {
    let now = monotonic_ns();
    shared.slots.iter().find_map(|s| {
        let since = s.busy_since.load(Ordering::SeqCst);
        (since != 0 && now.saturating_sub(since) > stall_ms * 1_000_000).then(|| {
            format!(
                "{} is stuck in `{}` for {} ms",
                s.name,
                Shared::lock(&s.current),
                (now - since) / 1_000_000
            )
        })
    })
}

/// The checks at a quiescent point (every racing thread joined; the handlers still serve).
fn quiescent(shared: &Shared, input: &Input, sabotage: Option<Sabotage>, wp_async: bool) {
    let closed = shared.closed.load(Ordering::SeqCst);
    // 1. Contents, word by word.
    for p in 0..shared.pages {
        let seq = *Shared::lock(&shared.data[p]);
        // SAFETY: the page is inside the area; faults are resolved by the handlers.
        if let Some((w, want, got)) =
            unsafe { model::verify_page(shared.page_addr(p), shared.page_size, p, seq) }
        {
            shared.problem(mismatch(
                format!("data of page {p} at word {w} (no write is lost)"),
                model::explain(want),
                model::explain(got),
            ));
        }
        shared.pages_verified.fetch_add(1, Ordering::Relaxed);
    }
    if closed {
        return; // no protection is left to check
    }
    if wp_async && sabotage == Some(Sabotage::ForgeWritten) && shared.fire_sabotage() {
        if let Some(p) = (0..shared.pages).find(|&p| *Shared::lock(&shared.wp[p])) {
            *Shared::lock(&shared.wp[p]) = false;
        }
    }
    // 2. pagemap bit 57 is the protection the threads last set.
    for p in 0..shared.pages {
        let want = *Shared::lock(&shared.wp[p]);
        match input.pagemap.entry(shared.page_addr(p)) {
            Ok(e) if e.uffd_wp() != want => shared.problem(mismatch(
                format!("pagemap bit 57 (uffd-wp) of page {p}"),
                format!("{want} (as last set)"),
                format!("{} ({})", e.uffd_wp(), e.describe()),
            )),
            Ok(_) => {}
            Err(e) => shared.problem(mismatch(
                "read /proc/self/pagemap",
                "success",
                e.to_string(),
            )),
        }
    }
    if wp_async {
        // 3a. WP_ASYNC: PAGEMAP_SCAN's written set is the pages not protected since written.
        written_check(shared, input);
        return;
    }
    // 3. A write to each protected page faults (once), to each unprotected page not. With
    //    MISSING registered, a protected hole faults MISSING instead (that fault comes first),
    //    and an unprotected hole may fault MISSING.
    for p in 0..shared.pages {
        let mut seq = Shared::lock(&shared.data[p]);
        let protected = *Shared::lock(&shared.wp[p]);
        let (wp0, miss0) = (
            shared.wp_faults[p].load(Ordering::SeqCst),
            shared.missing_faults[p].load(Ordering::SeqCst),
        );
        let next = (*seq + 1) & 0xff_ffff;
        // SAFETY: as above.
        unsafe { model::write_page(shared.page_addr(p), shared.page_size, p, next) };
        *seq = next;
        let wp = shared.wp_faults[p].load(Ordering::SeqCst) - wp0;
        let missing = shared.missing_faults[p].load(Ordering::SeqCst) - miss0;
        let ok = if protected {
            wp + missing == 1
        } else {
            wp == 0 && missing <= 1
        };
        if !ok {
            shared.problem(mismatch(
                format!("a write to page {p} (a write to a protected page faults)"),
                if protected {
                    "1 WP fault (or 1 MISSING on a hole)".to_string()
                } else {
                    "no WP fault".to_string()
                },
                format!("{wp} WP, {missing} MISSING"),
            ));
        }
        *Shared::lock(&shared.wp[p]) = false;
    }
}

fn written_check(shared: &Shared, input: &Input) {
    let arg = PmScanArg {
        start: shared.base as u64,
        end: (shared.base + shared.pages * shared.page_size) as u64,
        category_mask: PAGE_IS_WRITTEN,
        return_mask: PAGE_IS_WRITTEN,
        ..Default::default()
    };
    let regions = match input.pagemap.scan(arg, shared.pages) {
        Ok((r, _)) => r,
        Err(e) => {
            shared.problem(mismatch("PAGEMAP_SCAN", "success", e.desc().to_string()));
            return;
        }
    };
    let mut written = vec![false; shared.pages];
    for r in regions {
        let first = (r.start as usize - shared.base) / shared.page_size;
        let end = (r.end as usize - shared.base).div_ceil(shared.page_size);
        written[first..end.min(shared.pages)]
            .iter_mut()
            .for_each(|w| *w = true);
    }
    for (p, &got) in written.iter().enumerate() {
        let want = !*Shared::lock(&shared.wp[p]);
        if got != want {
            shared.problem(mismatch(
                format!("PAGEMAP_SCAN written of page {p} (written since the last protect)"),
                want.to_string(),
                got.to_string(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_seeds_replay_and_differ_per_trial() {
        assert_eq!(trial_seed(1, "a::b::anon"), trial_seed(1, "a::b::anon"));
        assert_ne!(trial_seed(1, "a::b::anon"), trial_seed(1, "a::b::shmem"));
        assert_ne!(trial_seed(1, "a::b::anon"), trial_seed(2, "a::b::anon"));
    }
}
