//! A run's plan: every case on every memory type it applies to, with what each trial needs
//! (features, huge pages, swap, privileges) and, when the machine cannot give it, why it skips.

use std::sync::Arc;

use super::DISPOSABLE_ENV;
use crate::case::model::{Advice, Need, RegisterMode, RunAs};
use crate::case::{LoadedCase, Op};
use crate::kernel::features::{mask, Feature};
use crate::kernel::memory::MemoryType;
use crate::kernel::probe::Probe;
use crate::trial::protocol::TrialSpec;

/// One case on one memory type.
#[derive(Debug, Clone)]
pub struct PlannedTrial {
    /// `topic::case::memory`.
    pub name: String,
    /// The case the trial runs.
    pub case: Arc<LoadedCase>,
    /// The memory type the trial runs on.
    pub memory: MemoryType,
    /// Features requested in UFFDIO_API: the case's and those its memory and modes imply.
    pub features: Vec<Feature>,
    /// Huge pages the trial needs.
    pub huge_pages: u64,
    /// Whether the trial needs swap.
    pub needs_swap: bool,
    /// Whether the trial needs KSM.
    pub needs_ksm: bool,
    /// Whether the trial needs transparent huge pages.
    pub needs_thp: bool,
    /// Capabilities no feature bit advertises, probed directly.
    pub uses_scan: bool,
    /// Whether the trial uses UFFDIO_CONTINUE with UFFDIO_CONTINUE_MODE_WP.
    pub uses_continue_wp: bool,
    /// Whether the trial needs root.
    pub needs_root: bool,
    /// Turns a swap device off: runs while no other trial swaps.
    pub uses_swapoff: bool,
    /// Damages memory for good (MADV_HWPOISON): only on a disposable machine.
    pub needs_disposable: bool,
}

impl PlannedTrial {
    /// The case's topic (its folder).
    pub fn topic(&self) -> &str {
        &self.case.topic
    }

    /// Why the machine cannot run this trial, or None.
    pub fn skip_reason(&self, probe: &Probe) -> Option<String> {
        let caps = match &probe.uffd {
            Ok(c) => c,
            Err(e) => return Some(e.clone()),
        };
        let missing: Vec<String> = self
            .features
            .iter()
            .filter(|f| caps.features & f.bit() == 0)
            .map(|f| f.kernel_name())
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "kernel lacks {} (UFFDIO_API does not offer it)",
                missing.join(", ")
            ));
        }
        let case = &self.case.case;
        if self.uses_scan && !probe.pagemap_scan {
            return Some("kernel lacks PAGEMAP_SCAN on /proc/PID/pagemap (6.7)".into());
        }
        if self.uses_continue_wp && !probe.continue_mode_wp {
            return Some("kernel's UFFDIO_CONTINUE lacks UFFDIO_CONTINUE_MODE_WP (6.4)".into());
        }
        if self.needs_disposable && std::env::var_os(DISPOSABLE_ENV).is_none() {
            return Some(format!(
                "MADV_HWPOISON takes page frames out of service for good: only on a disposable machine (the `uffd-conform vm` guest, or {DISPOSABLE_ENV}=1)"
            ));
        }
        if self.needs_root && !probe.is_root {
            return Some("needs root (run the suite as root)".into());
        }
        if case.run_as == RunAs::Nobody && !probe.is_root {
            return Some("runs as nobody, which needs a root runner to switch users".into());
        }
        let sysctl = probe.unprivileged_userfaultfd;
        if case.needs.contains(&Need::UnprivilegedUserfaultfdOff) && sysctl != Some(0) {
            return Some(format!(
                "needs vm.unprivileged_userfaultfd=0 (it is {sysctl:?})"
            ));
        }
        if case.needs.contains(&Need::UnprivilegedUserfaultfdOn) && sysctl != Some(1) {
            return Some(format!(
                "needs vm.unprivileged_userfaultfd=1 (it is {sysctl:?}); set it to run this case"
            ));
        }
        if self.huge_pages > probe.huge_pages_free {
            return Some(format!(
                "needs {} free {} kB huge pages, {} are free (run as root so the suite provisions them, or raise vm.nr_hugepages)",
                self.huge_pages,
                probe.huge_page_size / 1024,
                probe.huge_pages_free
            ));
        }
        if self.needs_swap && probe.swap_total_kib == 0 {
            return Some("needs swap and none is configured (run as root so the suite provisions it, or add a swap device)".into());
        }
        if self.features.contains(&Feature::EventFork) && !probe.is_root {
            return Some("UFFD_FEATURE_EVENT_FORK needs CAP_SYS_PTRACE (run as root)".into());
        }
        None
    }

    /// What the trial process is given to run this trial on this machine.
    pub fn spec(&self, probe: &Probe) -> TrialSpec {
        TrialSpec {
            case: self.case.case.clone(),
            memory: self.memory,
            features: mask(&self.features),
            huge_page_size: probe.huge_page_size,
            user_mode_only: match self.case.case.run_as {
                // An unprivileged trial may only handle user-mode faults unless the sysctl
                // allows more.
                RunAs::Nobody => probe.unprivileged_userfaultfd != Some(1),
                RunAs::Runner => probe
                    .uffd
                    .as_ref()
                    .map(|c| c.user_mode_only)
                    .unwrap_or(false),
            },
            stress: crate::run::stress_params(),
        }
    }
}

/// Expands cases into trials, in case order then memory order.
pub fn plan(cases: &[LoadedCase]) -> Vec<PlannedTrial> {
    let mut trials = Vec::new();
    for case in cases {
        let shared = Arc::new(case.clone());
        for &memory in &case.case.memory {
            trials.push(plan_one(shared.clone(), memory));
        }
    }
    trials
}

fn plan_one(case: Arc<LoadedCase>, memory: MemoryType) -> PlannedTrial {
    let c = &case.case;
    let mut modes: Vec<RegisterMode> = c.register.clone();
    for step in c.steps.iter().filter(|s| s.applies_to(memory)) {
        if let Op::Register(r) = &step.op {
            modes.extend(&r.modes);
        }
    }
    let mut features = c.features.clone();
    features.extend(implied_features(memory, &modes));
    features.sort();
    features.dedup();
    PlannedTrial {
        name: format!("{}::{}::{}", case.topic, c.name, memory),
        memory,
        features,
        // Private hugetlb may hold a page cache page and a private copy of each page.
        huge_pages: {
            let touched = c.huge_pages.unwrap_or(c.pages) as u64;
            match memory {
                MemoryType::HugetlbPrivate => 2 * touched,
                MemoryType::Hugetlb => touched,
                _ => 0,
            }
        },
        needs_swap: c.needs.contains(&Need::Swap)
            || any_step(&c.steps, memory, &|op| {
                matches!(op, Op::SwapOut(_) | Op::Swapoff(_))
            }),
        uses_swapoff: any_step(&c.steps, memory, &|op| matches!(op, Op::Swapoff(_))),
        needs_disposable: any_step(
            &c.steps,
            memory,
            &|op| matches!(op, Op::Madvise(m) if m.advice == Advice::Hwpoison),
        ),
        needs_ksm: any_step(&c.steps, memory, &|op| matches!(op, Op::KsmMerge(_))),
        needs_thp: c.thp,
        uses_scan: any_step(&c.steps, memory, &|op| matches!(op, Op::Scan(_))),
        uses_continue_wp: c.resolve == crate::case::model::Resolve::ContinueWp
            || any_step(
                &c.steps,
                memory,
                &|op| matches!(op, Op::Continue(i) if i.wp),
            ),
        // PFNs (KSM merges, kpageflags) are zero for unprivileged readers.
        // The ramfs is mounted in the trial's own mount namespace (CAP_SYS_ADMIN).
        needs_root: c.needs.contains(&Need::Root)
            || memory == MemoryType::Ramfs
            || any_step(&c.steps, memory, &|op| {
                matches!(
                    op,
                    Op::KsmMerge(_) | Op::Collapse(_) | Op::Migrate(_) | Op::Swapoff(_)
                ) || matches!(op, Op::RoPin(r) if r.unshares)
                    || matches!(op, Op::Madvise(m) if m.advice == Advice::Hwpoison)
                    || matches!(op, Op::Pagemap(p) if p.huge.is_some())
            }),
        case,
    }
}

/// Whether any step (or fork child step) on this memory type is one `pred` picks.
fn any_step(steps: &[crate::case::Step], memory: MemoryType, pred: &dyn Fn(&Op) -> bool) -> bool {
    steps
        .iter()
        .filter(|s| s.applies_to(memory))
        .any(|s| match &s.op {
            Op::Fork(f) => pred(&s.op) || any_step(&f.steps, memory, pred),
            op => pred(op),
        })
}

/// Features a register mode needs on a memory type (gate on bits, never on versions).
pub fn implied_features(memory: MemoryType, modes: &[RegisterMode]) -> Vec<Feature> {
    let mut f = Vec::new();
    for mode in modes {
        match (mode, memory.is_hugetlb(), memory.is_shmem()) {
            (RegisterMode::Wp, false, false) => f.push(Feature::PagefaultFlagWp),
            (RegisterMode::Wp, _, _) => {
                f.extend([Feature::PagefaultFlagWp, Feature::WpHugetlbfsShmem])
            }
            (RegisterMode::Missing, true, _) => f.push(Feature::MissingHugetlbfs),
            (RegisterMode::Missing, _, true) => f.push(Feature::MissingShmem),
            (RegisterMode::Minor, true, _) => f.push(Feature::MinorHugetlbfs),
            (RegisterMode::Minor, _, true) => f.push(Feature::MinorShmem),
            _ => {}
        }
    }
    f
}

/// The largest huge page count any one trial needs (hugetlb trials run one at a time).
pub fn max_huge_pages(trials: &[PlannedTrial]) -> u64 {
    trials.iter().map(|t| t.huge_pages).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wp_on_shmem_and_hugetlb_needs_the_feature_bit() {
        assert_eq!(
            implied_features(MemoryType::Anon, &[RegisterMode::Wp]),
            vec![Feature::PagefaultFlagWp]
        );
        for m in [
            MemoryType::Shmem,
            MemoryType::ShmemPrivate,
            MemoryType::Hugetlb,
            MemoryType::HugetlbPrivate,
        ] {
            assert!(implied_features(m, &[RegisterMode::Wp]).contains(&Feature::WpHugetlbfsShmem));
        }
        assert_eq!(
            implied_features(MemoryType::Hugetlb, &[RegisterMode::Minor]),
            vec![Feature::MinorHugetlbfs]
        );
        assert_eq!(
            implied_features(MemoryType::Anon, &[RegisterMode::Missing]),
            vec![]
        );
    }
}
