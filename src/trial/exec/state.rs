//! The live state of a trial: its memory, uffd, fault handler and pagemap, set up once; the
//! context its expected messages are made concrete in; and how a step's checks and messages
//! become the step's outcome.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::case::model::{mode_mask, Resolve};
use crate::kernel::features::Feature;
use crate::kernel::memory::Area;
use crate::kernel::pagemap::Pagemap;
use crate::kernel::uffd::{OpenVia, Uffd};
use crate::trial::expect::{self, Context, Expected};
use crate::trial::handler::{Geometry, Handler};
use crate::trial::memops::{mismatch, Checked};
use crate::trial::protocol::{monotonic_ns, Failure, Mismatch, ProcessReport, TrialSpec};

/// The live state of a trial.
pub(crate) struct Trial {
    pub(super) area: Area,
    pub(super) uffd: Arc<Uffd>,
    pub(super) handler: Handler,
    pub(super) pagemap: Pagemap,
    pub(super) features: u64,
    pub(super) base: Arc<AtomicUsize>,
    pub(super) threads: Vec<JoinHandle<()>>,
    pub(super) resolve: Resolve,
    pub(super) user_mode_only: bool,
    pub(super) pins: Vec<crate::kernel::pin::Pin>,
    /// The trial's own memory cgroup, once a `memcg_limit` step made it.
    pub(super) memcg: Option<crate::kernel::memcg::Memcg>,
    pub(super) memory: crate::kernel::memory::MemoryType,
    /// The case's register modes (UFFDIO_REGISTER_MODE_*).
    pub(super) modes: u64,
    pub(super) stress: crate::trial::protocol::StressParams,
    /// `case::memory`, for the stress seed.
    pub(super) name: String,
    /// VmPTE (KiB) at the last `page_tables: {mark: true}` step.
    pub(super) page_tables_mark: Option<u64>,
}

/// What one step came to.
pub(crate) enum StepOutcome {
    Done(Vec<String>),
    Failed(Vec<Mismatch>),
    /// The machine could not do what the step needs (e.g. nothing was swapped out).
    Skip(String),
}

/// What an operation's body came to: its own checks and the messages it must have raised
/// (checked by [`Trial::finish`]), or an outcome already final (a skip, or a body that
/// finished the step itself).
pub(super) enum Ran {
    Checked(Checked, Vec<Expected>),
    Final(StepOutcome),
}

impl Ran {
    /// Checks, and no message expected.
    pub(super) fn checked(checked: Checked) -> Ran {
        Ran::Checked(checked, vec![])
    }

    /// A verified operation ([`crate::trial::memops::verified`]): its checks, or a skip.
    pub(super) fn verified(checked: Result<Checked, String>) -> Ran {
        match checked {
            Ok(checked) => Ran::checked(checked),
            Err(reason) => Ran::Final(StepOutcome::Skip(reason)),
        }
    }
}

fn setup_failure(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure {
        step: 0,
        op: "setup".into(),
        mismatches: vec![mismatch(what, "success", e.to_string())],
    }
}

pub(crate) fn gettid() -> u32 {
    nix::unistd::gettid().as_raw() as u32
}

impl Trial {
    pub(super) fn setup(spec: &TrialSpec, report: &mut ProcessReport) -> Result<Trial, Failure> {
        let case = &spec.case;
        let t0 = monotonic_ns();
        let area = Area::map_with(
            spec.memory,
            case.pages,
            spec.huge_page_size,
            case.thp,
            case.huge_pages.is_some(),
            case.across_pud,
        )
        .map_err(|e| {
            setup_failure(
                &format!("mmap {} pages of {}", case.pages, spec.memory),
                e.desc(),
            )
        })?;
        let t1 = monotonic_ns();
        report.timing.memory = t1 - t0;
        let uffd = Uffd::open(OpenVia::Syscall, spec.user_mode_only)
            .map_err(|e| setup_failure("userfaultfd(2)", e.desc()))?;
        let api = uffd.api(spec.features).map_err(|e| {
            setup_failure(
                &format!("UFFDIO_API features 0x{:x}", spec.features),
                e.desc(),
            )
        })?;
        report.api_ioctls = api.ioctls;
        if !case.register.is_empty() {
            let ioctls = uffd
                .register(area.base(), area.len(), mode_mask(&case.register))
                .map_err(|e| {
                    setup_failure(
                        &format!("UFFDIO_REGISTER modes {:?}", case.register),
                        e.desc(),
                    )
                })?;
            report.register_ioctls = Some(ioctls);
        }
        let t2 = monotonic_ns();
        report.timing.uffd = t2 - t1;
        let uffd = Arc::new(uffd);
        let base = Arc::new(AtomicUsize::new(area.base()));
        let geometry = Geometry {
            base: base.clone(),
            page_size: area.page_size,
            pages: area.pages,
        };
        let handler = Handler::start(uffd.clone(), geometry, case.resolve)
            .map_err(|e| setup_failure("start the fault handler", e))?;
        let pagemap =
            Pagemap::open_self().map_err(|e| setup_failure("open /proc/self/pagemap", e))?;
        report.timing.handler = monotonic_ns() - t2;
        Ok(Trial {
            area,
            uffd,
            handler,
            pagemap,
            features: spec.features,
            base,
            threads: vec![],
            resolve: case.resolve,
            user_mode_only: spec.user_mode_only,
            pins: vec![],
            memcg: None,
            memory: spec.memory,
            modes: mode_mask(&case.register),
            stress: spec.stress,
            name: format!("{}::{}", case.name, spec.memory),
            page_tables_mark: None,
        })
    }

    pub(super) fn has(&self, f: Feature) -> bool {
        self.features & f.bit() != 0
    }

    /// The context expected messages are made concrete in.
    pub(super) fn context(&self, tid: u32) -> Context {
        Context {
            base: self.area.base(),
            page_size: self.area.page_size,
            thread_id: self.has(Feature::ThreadId),
            exact_address: self.has(Feature::ExactAddress),
            tid,
            from_child: false,
        }
    }

    /// Combines an operation's own checks with the check of the messages since `mark`.
    pub(super) fn finish(
        &self,
        mark: (usize, usize),
        outcome: Checked,
        expected: &[Expected],
    ) -> StepOutcome {
        let (messages, errors) = self.handler.since(mark);
        let (mut observed, mut mismatches) = match outcome {
            Ok(o) => (o, vec![]),
            Err(m) => (vec![], m),
        };
        if let Err(m) = expect::check(expected, &messages) {
            mismatches.push(m);
        }
        for e in errors {
            mismatches.push(mismatch(
                "fault resolution",
                "the handler resolves every fault",
                e,
            ));
        }
        if mismatches.is_empty() {
            if !messages.is_empty() {
                observed.push(format!(
                    "messages: {}",
                    expect::describe_messages(&messages)
                ));
            }
            StepOutcome::Done(observed)
        } else {
            StepOutcome::Failed(mismatches)
        }
    }

    /// The payload of a REMOVE/UNMAP event over one run of pages (None for several runs).
    pub(super) fn runs_payload(&self, pages: &[usize]) -> Option<[u64; 3]> {
        let runs = crate::case::pages::Pages::runs(pages);
        match runs.as_slice() {
            [(first, count)] => {
                let start = self.area.page_addr(*first) as u64;
                Some([start, start + (*count * self.area.page_size) as u64, 0])
            }
            _ => None,
        }
    }
}
