//! Runs a trial's steps inside the trial process and checks what the kernel did.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::expect::{self, Context, Expected};
use super::handler::{Geometry, Handler};
use super::memops::{self, check_errno, mismatch, pages_of, Checked, Verified};
use super::record::*;
use super::{data, fork, scan};
use crate::case::model::{mode_mask, Access, ErrnoName, Install, Open, Resolve, Via};
use crate::case::{Op, Step};
use crate::kernel::features::Feature;
use crate::kernel::memory::Area;
use crate::kernel::pagemap::Pagemap;
use crate::kernel::uapi::*;
use crate::kernel::uffd::{OpenVia, Uffd};

/// The live state of a trial.
pub(super) struct Trial {
    pub area: Area,
    pub uffd: Arc<Uffd>,
    pub handler: Handler,
    pub pagemap: Pagemap,
    pub features: u64,
    base: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
    resolve: Resolve,
    user_mode_only: bool,
    pins: Vec<crate::kernel::pin::Pin>,
    /// The trial's own memory cgroup, once a `memcg_limit` step made it.
    memcg: Option<super::memcg::Memcg>,
}

/// What one step came to.
pub(super) enum StepOutcome {
    Done(Vec<String>),
    Failed(Vec<Mismatch>),
    /// The machine could not do what the step needs (e.g. nothing was swapped out).
    Skip(String),
}

fn setup_failure(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure {
        step: 0,
        op: "setup".into(),
        mismatches: vec![mismatch(what, "success", e.to_string())],
    }
}

/// Runs the trial; `progress` is told each step before it runs.
pub fn run(spec: &TrialSpec, started: u64, progress: &mut dyn FnMut(usize)) -> TrialReport {
    let mut report = TrialReport::default();
    report.timing.started = started;
    let mut trial = match Trial::setup(spec, &mut report) {
        Ok(t) => t,
        Err(f) => {
            report.outcome = Outcome::Fail(f);
            return report;
        }
    };
    let steps_started = monotonic_ns();
    for (i, step) in spec.case.steps.iter().enumerate() {
        let n = i + 1;
        progress(n);
        let op = step.op.summary();
        if !step.applies_to(spec.memory) {
            report.steps.push(StepRecord {
                step: n,
                op,
                ran: false,
                observed: vec![],
            });
            continue;
        }
        match trial.step(step) {
            StepOutcome::Done(observed) => report.steps.push(StepRecord {
                step: n,
                op,
                ran: true,
                observed,
            }),
            StepOutcome::Failed(mismatches) => {
                report.steps.push(StepRecord {
                    step: n,
                    op: op.clone(),
                    ran: true,
                    observed: vec![],
                });
                report.outcome = Outcome::Fail(Failure {
                    step: n,
                    op,
                    mismatches,
                });
                break;
            }
            StepOutcome::Skip(reason) => {
                report.steps.push(StepRecord {
                    step: n,
                    op,
                    ran: true,
                    observed: vec![reason.clone()],
                });
                report.outcome = Outcome::Skip(format!("step {n}: {reason}"));
                break;
            }
        }
    }
    report.timing.steps = monotonic_ns() - steps_started;
    trial.handler.stop();
    report.messages = trial.handler.all_messages();
    if let Some(memcg) = trial.memcg.take() {
        memcg.leave();
    }
    // The process exits right after sending the report. Unmapping the area now would, with
    // UFFD_FEATURE_EVENT_UNMAP, wait forever for the stopped handler to read the event; and
    // threads still blocked on faults nobody resolves end with the process anyway.
    std::mem::forget(trial);
    report
}

/// Names of the range ioctls in a mask.
fn ioctl_names(mask: u64) -> String {
    let names: Vec<&str> = crate::kernel::uapi::IOCTL_NAMES
        .iter()
        .filter(|(b, _)| mask & (1 << b) != 0)
        .map(|(_, n)| *n)
        .collect();
    names.join("|")
}

/// Checks UFFDIO_REGISTER's reported ioctls against `ioctls` / `no_ioctls`.
fn check_ioctls(
    reported: u64,
    r: &crate::case::model::RegisterOp,
    observed: &mut Vec<String>,
) -> Result<(), Vec<Mismatch>> {
    observed.push(format!("UFFDIO_REGISTER ioctls: {}", ioctl_names(reported)));
    let want: u64 = r.ioctls.iter().fold(0, |m, i| m | i.bit());
    let not: u64 = r.no_ioctls.iter().fold(0, |m, i| m | i.bit());
    let mut mismatches = Vec::new();
    if reported & want != want {
        mismatches.push(mismatch(
            "UFFDIO_REGISTER ioctls",
            format!("including {}", ioctl_names(want)),
            ioctl_names(reported),
        ));
    }
    if reported & not != 0 {
        mismatches.push(mismatch(
            "UFFDIO_REGISTER ioctls",
            format!("none of {}", ioctl_names(not)),
            ioctl_names(reported),
        ));
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(mismatches)
    }
}

fn o_name(o: &Open) -> String {
    let via = match o.via {
        Via::Syscall => "userfaultfd(2)",
        Via::DevNode => "/dev/userfaultfd",
    };
    format!(
        "open {via}{}",
        if o.user_mode_only {
            " with UFFD_USER_MODE_ONLY"
        } else {
            ""
        }
    )
}

pub fn gettid() -> u32 {
    nix::unistd::gettid().as_raw() as u32
}

impl Trial {
    fn setup(spec: &TrialSpec, report: &mut TrialReport) -> Result<Trial, Failure> {
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
        })
    }

    pub fn has(&self, f: Feature) -> bool {
        self.features & f.bit() != 0
    }

    /// The context expected messages are made concrete in.
    pub fn context(&self, tid: u32) -> Context {
        Context {
            base: self.area.base(),
            page_size: self.area.page_size,
            thread_id: self.has(Feature::ThreadId),
            exact_address: self.has(Feature::ExactAddress),
            tid,
            from_child: false,
        }
    }

    /// Runs one step: the operation's own checks, then the messages it raised.
    fn step(&mut self, step: &Step) -> StepOutcome {
        let mark = self.handler.mark();
        let ctx = self.context(gettid());
        let (outcome, expected): (Checked, Vec<Expected>) = match &step.op {
            Op::Write(a) | Op::Read(a) => {
                let write = matches!(step.op, Op::Write(_));
                if a.thread {
                    return self.thread_access(a, write, mark);
                }
                if a.alias {
                    let checked = match self.area.alias() {
                        Ok(base) => memops::access_at(&self.area, a, write, base),
                        Err(e) => Err(vec![mismatch("mmap of the alias", "success", e.desc())]),
                    };
                    return self.finish(mark, checked, &[]);
                }
                let pages = pages_of(&self.area, &a.pages);
                (
                    memops::access(&self.area, a, write),
                    ctx.access(&a.faults, &pages, write, 0),
                )
            }
            Op::Poke(p) => {
                memops::poke(&self.area, p.page, p.offset, p.value);
                (Ok(vec![]), ctx.access(&p.faults, &[p.page], true, p.offset))
            }
            Op::Join(j) => {
                for t in self.threads.drain(..) {
                    let _ = t.join();
                }
                (Ok(vec![]), ctx.access(&j.faults, &[], true, 0))
            }
            Op::Protect(r) if r.memcg_full => match self.protect_with_memcg_full(r) {
                Ok(checked) => (checked, vec![]),
                Err(reason) => return StepOutcome::Skip(reason),
            },
            Op::Protect(r) => {
                let mode = r.mode.unwrap_or(UFFDIO_WRITEPROTECT_MODE_WP);
                (
                    self.range_ioctl(
                        "UFFDIO_WRITEPROTECT(WP)",
                        &r.pages,
                        &r.errno,
                        r.shift,
                        |u, s, l| u.writeprotect(s, l, mode),
                    ),
                    vec![],
                )
            }
            Op::Unprotect(r) => {
                let mode = r.mode.unwrap_or(0);
                (
                    self.range_ioctl(
                        "UFFDIO_WRITEPROTECT(0)",
                        &r.pages,
                        &r.errno,
                        r.shift,
                        |u, s, l| u.writeprotect(s, l, mode),
                    ),
                    vec![],
                )
            }
            Op::Wake(r) => (
                self.range_ioctl("UFFDIO_WAKE", &r.pages, &r.errno, r.shift, |u, s, l| {
                    u.wake(s, l)
                }),
                vec![],
            ),
            Op::Register(r) => {
                let mode = r.mode.unwrap_or_else(|| mode_mask(&r.modes));
                let reported = std::cell::Cell::new(0u64);
                let checked =
                    self.range_ioctl("UFFDIO_REGISTER", &r.pages, &r.errno, r.shift, |u, s, l| {
                        u.register(s, l, mode).map(|ioctls| reported.set(ioctls))
                    });
                (
                    checked.and_then(|mut o| check_ioctls(reported.get(), r, &mut o).map(|_| o)),
                    vec![],
                )
            }
            Op::Unregister(r) => (
                self.range_ioctl(
                    "UFFDIO_UNREGISTER",
                    &r.pages,
                    &r.errno,
                    r.shift,
                    |u, s, l| u.unregister(s, l),
                ),
                vec![],
            ),
            Op::Api(api) => (self.api(api), vec![]),
            Op::Open(o) => {
                let via = match o.via {
                    Via::Syscall => OpenVia::Syscall,
                    Via::DevNode => OpenVia::DevNode,
                };
                let r = Uffd::open(via, o.user_mode_only).map(drop);
                (
                    check_errno(&o_name(o), o.errno.as_ref().map(ErrnoName::errno), r),
                    vec![],
                )
            }
            Op::KernelWrite(k) => {
                let pages = pages_of(&self.area, &k.pages);
                let r = memops::kernel_write(&self.area, &pages);
                (
                    check_errno(
                        "read(/dev/zero) into the pages",
                        k.errno.as_ref().map(ErrnoName::errno),
                        r,
                    ),
                    ctx.access(&k.faults, &pages, true, 0),
                )
            }
            Op::PunchHole(p) => {
                let pages = pages_of(&self.area, &p.pages);
                let r = self.punch_hole(&pages);
                let runs = self.runs_payload(&pages);
                (
                    check_errno(
                        "fallocate(PUNCH_HOLE)",
                        p.errno.as_ref().map(ErrnoName::errno),
                        r,
                    ),
                    ctx.events(&p.events, &|_| runs),
                )
            }
            Op::CloseUffd(_) => {
                self.handler.stop();
                (self.close_uffd(), vec![])
            }
            Op::ProcMemWrite(p) => {
                let r = memops::proc_mem_write(self.area.page_addr(p.page) + p.offset, p.value);
                (
                    check_errno(
                        "pwrite(/proc/self/mem)",
                        p.errno.as_ref().map(ErrnoName::errno),
                        r,
                    ),
                    vec![],
                )
            }
            Op::Copy(i) => (self.install("UFFDIO_COPY", i), vec![]),
            Op::Zeropage(i) => (self.install("UFFDIO_ZEROPAGE", i), vec![]),
            Op::Continue(i) => (self.install("UFFDIO_CONTINUE", i), vec![]),
            Op::Poison(i) => (self.install("UFFDIO_POISON", i), vec![]),
            Op::Move(m) => {
                let from = pages_of(&self.area, &m.from);
                let to = pages_of(&self.area, &m.to);
                let mode = if m.allow_src_holes {
                    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
                } else {
                    0
                };
                let len = from.len() * self.area.page_size;
                let before = memops::snapshot_present(&self.area, &self.pagemap, &from);
                let r = self
                    .uffd
                    .move_(
                        self.area.page_addr(to[0]),
                        self.area.page_addr(from[0]),
                        len,
                        mode,
                    )
                    .map(drop);
                let moved = r.is_ok();
                let mut checked =
                    check_errno("UFFDIO_MOVE", m.errno.as_ref().map(ErrnoName::errno), r);
                if moved && checked.is_ok() {
                    // No data may be lost: each moved page now holds what its source held.
                    checked = memops::compare_moved(&self.area, &before, &from, &to);
                }
                (checked, vec![])
            }
            Op::Fill(f) => (self.fill(&pages_of(&self.area, &f.pages), f.data), vec![]),
            Op::Pagemap(p) => (memops::check_pagemap(&self.area, &self.pagemap, p), vec![]),
            Op::Scan(s) => (scan::run(&self.area, &self.pagemap, s), vec![]),
            Op::Madvise(m) => {
                let pages = pages_of(&self.area, &m.pages);
                let r = memops::madvise(&self.area, &pages, m.advice);
                let call = format!("madvise({:?})", m.advice);
                let runs = self.runs_payload(&pages);
                let checked = if m.may_fail {
                    Ok(vec![format!(
                        "{call}: {}",
                        r.map_or_else(|e| format!("{e:?}"), |_| "success".into())
                    )])
                } else {
                    check_errno(&call, m.errno.as_ref().map(ErrnoName::errno), r)
                };
                (checked, ctx.events(&m.events, &|_| runs))
            }
            Op::Pin(p) => {
                let pages = pages_of(&self.area, &p.pages);
                let ranges: Vec<(usize, usize)> = crate::case::pages::Pages::runs(&pages)
                    .into_iter()
                    .map(|(first, n)| (self.area.page_addr(first), n * self.area.page_size))
                    .collect();
                match crate::kernel::pin::Pin::new(&ranges) {
                    Ok(pin) => {
                        self.pins.push(pin);
                        (Ok(vec![format!("pinned {} range(s)", ranges.len())]), vec![])
                    }
                    Err(e @ (Errno::ENOSYS | Errno::EPERM | Errno::ENOMEM)) => {
                        return StepOutcome::Skip(format!(
                            "cannot pin through io_uring: {e:?} ({}); io_uring disabled (kernel.io_uring_disabled) or RLIMIT_MEMLOCK too low",
                            e.desc()
                        ))
                    }
                    Err(e) => (Err(vec![mismatch("io_uring_register(BUFFERS)", "success", e.desc())]), vec![]),
                }
            }
            Op::Unpin(_) => {
                self.pins.clear();
                (Ok(vec![]), vec![])
            }
            Op::Collapse(c) => {
                let pages = pages_of(&self.area, &c.pages);
                match memops::collapse(&self.area, &self.pagemap, &pages) {
                    Ok(Verified::Done(observed)) => (Ok(observed), vec![]),
                    Ok(Verified::Declined(reason)) => return StepOutcome::Skip(reason),
                    Err(e) => (Err(vec![mismatch("pagemap", "an entry", e.desc())]), vec![]),
                }
            }
            Op::Migrate(m) => {
                let pages = pages_of(&self.area, &m.pages);
                match super::migrate::migrate(&self.area, &self.pagemap, &pages, m.whole_thp) {
                    Ok(Verified::Done(observed)) => (Ok(observed), vec![]),
                    Ok(Verified::Declined(reason)) => return StepOutcome::Skip(reason),
                    Err(e) => (
                        Err(vec![mismatch("migration", "present pages moved", e)]),
                        vec![],
                    ),
                }
            }
            Op::Swapoff(o) => {
                let pages = pages_of(&self.area, &o.pages);
                match super::swapoff::run(&self.area, &self.pagemap, &pages) {
                    Ok(Verified::Done(observed)) => (Ok(observed), vec![]),
                    Ok(Verified::Declined(reason)) => return StepOutcome::Skip(reason),
                    Err(m) => (Err(m), vec![]),
                }
            }
            Op::RoPin(r) => {
                let pages = pages_of(&self.area, &r.pages);
                match super::ro_pin::ro_pin(&self.area, &self.pagemap, &pages, r.unshares) {
                    Ok(Verified::Done(observed)) => (Ok(observed), vec![]),
                    Ok(Verified::Declined(reason)) => return StepOutcome::Skip(reason),
                    Err(m) => (Err(m), vec![]),
                }
            }
            Op::KsmMerge(k) => {
                let pages = pages_of(&self.area, &k.pages);
                match memops::ksm_merge(&self.area, &self.pagemap, &pages) {
                    Ok(Verified::Done(observed)) => (Ok(observed), vec![]),
                    Ok(Verified::Declined(reason)) => return StepOutcome::Skip(reason),
                    Err(e) => (
                        Err(vec![mismatch(
                            "madvise(MADV_MERGEABLE)",
                            "success",
                            e.desc(),
                        )]),
                        vec![],
                    ),
                }
            }
            Op::SwapOut(s) => {
                let pages = pages_of(&self.area, &s.pages);
                match memops::swap_out(&self.area, &self.pagemap, &pages) {
                    Ok(Verified::Done(observed)) => (Ok(observed), vec![]),
                    Ok(Verified::Declined(reason)) => return StepOutcome::Skip(reason),
                    Err(e) => (
                        Err(vec![mismatch("madvise(MADV_PAGEOUT)", "success", e.desc())]),
                        vec![],
                    ),
                }
            }
            Op::Mprotect(m) => {
                let r = memops::mprotect(&self.area, &pages_of(&self.area, &m.pages), m.prot);
                (check_errno("mprotect", None, r), vec![])
            }
            Op::Munmap(m) => {
                let pages = pages_of(&self.area, &m.pages);
                let runs = self.runs_payload(&pages);
                (
                    check_errno("munmap", None, memops::munmap(&self.area, &pages)),
                    ctx.events(&m.events, &|_| runs),
                )
            }
            Op::Mremap(m) => match self.area.move_to_fresh() {
                Ok((old, new)) => {
                    self.base.store(new, Ordering::SeqCst);
                    let len = self.area.len() as u64;
                    let payload = [old as u64, new as u64, len];
                    let observed = vec![format!("moved 0x{old:x} -> 0x{new:x}")];
                    (Ok(observed), ctx.events(&m.events, &|_| Some(payload)))
                }
                Err(e) => (Err(vec![mismatch("mremap", "success", e.desc())]), vec![]),
            },
            Op::Fork(f) => return fork::run(self, f, mark),
        };
        self.finish(mark, outcome, &expected)
    }

    /// Combines an operation's own checks with the check of the messages since `mark`.
    pub fn finish(
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
    fn runs_payload(&self, pages: &[usize]) -> Option<[u64; 3]> {
        let runs = crate::case::pages::Pages::runs(pages);
        match runs.as_slice() {
            [(first, count)] => {
                let start = self.area.page_addr(*first) as u64;
                Some([start, start + (*count * self.area.page_size) as u64, 0])
            }
            _ => None,
        }
    }

    /// An access from a new thread: waits until it finished, or, when faults are left
    /// pending (`resolve: never`), until it raised a message and so blocks.
    fn thread_access(&mut self, a: &Access, write: bool, mark: (usize, usize)) -> StepOutcome {
        let pages = pages_of(&self.area, &a.pages);
        let addrs: Vec<(usize, usize)> =
            pages.iter().map(|&p| (p, self.area.page_addr(p))).collect();
        let (page_size, gen) = (self.area.page_size, a.data.unwrap_or(1));
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let _ = tid_tx.send(gettid());
            for (p, addr) in addrs {
                // SAFETY: the page is in the trial's mapping; faults go to the handler.
                unsafe {
                    if write {
                        data::write_page(addr, page_size, p, gen);
                    } else {
                        data::touch_read(addr);
                    }
                }
            }
        });
        let tid = tid_rx.recv().unwrap_or(0);
        let pending = self.resolve == Resolve::Never;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !thread.is_finished()
            && (!pending || self.handler.mark().0 == mark.0)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        let expected = self.context(tid).access(&a.faults, &pages, write, 0);
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            self.threads.push(thread);
        }
        self.finish(mark, Ok(vec![format!("thread {tid}")]), &expected)
    }

    fn range_ioctl(
        &self,
        name: &str,
        pages: &crate::case::pages::Pages,
        errno: &Option<ErrnoName>,
        shift: Option<usize>,
        ioctl: impl Fn(&Uffd, usize, usize) -> Result<(), Errno>,
    ) -> Checked {
        let pages = pages_of(&self.area, pages);
        let shift = shift.unwrap_or(0);
        let r = memops::over_runs(&self.area, &pages, |s, l| ioctl(&self.uffd, s + shift, l));
        check_errno(name, errno.as_ref().map(ErrnoName::errno), r)
    }

    /// UFFDIO_WRITEPROTECT while the trial's memory cgroup is full. Nothing is allocated
    /// while it is: a user-mode fault that cannot be charged would wait for memory.
    fn protect_with_memcg_full(
        &mut self,
        r: &crate::case::model::RangeOp,
    ) -> Result<Checked, String> {
        if self.memcg.is_none() {
            self.memcg =
                Some(super::memcg::Memcg::enter().map_err(|e| {
                    format!("cannot give the trial a memory cgroup of its own: {e}")
                })?);
        }
        let mode = r.mode.unwrap_or(UFFDIO_WRITEPROTECT_MODE_WP);
        let shift = r.shift.unwrap_or(0);
        let runs: Vec<(usize, usize)> =
            crate::case::pages::Pages::runs(&pages_of(&self.area, &r.pages))
                .into_iter()
                .map(|(first, count)| {
                    (
                        self.area.page_addr(first) + shift,
                        count * self.area.page_size,
                    )
                })
                .collect();
        let uffd = &self.uffd;
        let memcg = self.memcg.as_mut().expect("entered above");
        let (result, fullness) = memcg
            .while_full(|| {
                runs.iter()
                    .try_for_each(|&(s, l)| uffd.writeprotect(s, l, mode))
            })
            .map_err(|e| format!("cannot hold the memory cgroup at its limit: {e}"))?;
        if result.is_ok() && fullness.room_after > 0 {
            // The ioctl may have found room instead of meeting the limit: no verdict either way.
            return Err(format!(
                "the memory cgroup had room again while UFFDIO_WRITEPROTECT ran, so its success says nothing ({fullness})"
            ));
        }
        if result.is_ok() && r.errno.is_some() {
            // Success with no room: either the kernel needed no page table (they were there
            // already, left by an earlier mapping of these addresses), and then every page is
            // protected, or it failed to allocate one and said nothing, leaving pages bare.
            let pages = pages_of(&self.area, &r.pages);
            let bare: Vec<usize> = pages
                .iter()
                .copied()
                .filter(|&p| {
                    !self
                        .pagemap
                        .entry(self.area.page_addr(p))
                        .is_ok_and(|e| e.uffd_wp())
                })
                .collect();
            if bare.is_empty() {
                return Err(format!(
                    "UFFDIO_WRITEPROTECT needed no page table (they existed already) and protected every page: nothing to test ({fullness})"
                ));
            }
            return Ok(Err(vec![mismatch(
                "UFFDIO_WRITEPROTECT(WP) with the memory cgroup full",
                r.errno.as_ref().map_or(String::new(), |e| {
                    let e = e.errno();
                    format!("{e:?} ({})", e.desc())
                }),
                format!(
                    "success, with {} of {} pages left unprotected (first: page {}) [{fullness}]",
                    bare.len(),
                    pages.len(),
                    bare[0]
                ),
            )]));
        }
        let checked = check_errno(
            "UFFDIO_WRITEPROTECT(WP) with the memory cgroup full",
            r.errno.as_ref().map(ErrnoName::errno),
            result,
        );
        Ok(match checked {
            Ok(mut o) => {
                o.insert(0, fullness.to_string());
                Ok(o)
            }
            Err(mut m) => {
                for x in &mut m {
                    x.observed = format!("{} [{fullness}]", x.observed);
                }
                Err(m)
            }
        })
    }

    /// UFFDIO_API again (the trial's uffd) or on a fresh uffd.
    fn api(&self, api: &crate::case::model::Api) -> Checked {
        let features = crate::kernel::features::mask(&api.features) | api.raw_features.unwrap_or(0);
        let r = if api.fresh {
            Uffd::open(OpenVia::Syscall, self.user_mode_only)
                .and_then(|u| u.api(features))
                .map(drop)
        } else {
            self.uffd.api(features).map(drop)
        };
        let which = if api.fresh {
            "a fresh uffd"
        } else {
            "the trial's uffd"
        };
        check_errno(
            &format!("UFFDIO_API(0x{features:x}) on {which}"),
            api.errno.as_ref().map(ErrnoName::errno),
            r,
        )
    }

    /// Closes the trial's uffd for good: the handler has stopped, so swapping /dev/null in
    /// with dup2 drops the last reference and the kernel releases the context.
    fn close_uffd(&self) -> Checked {
        let null = match std::fs::File::open("/dev/null") {
            Ok(f) => f,
            Err(e) => return Err(vec![mismatch("open /dev/null", "success", e.to_string())]),
        };
        // SAFETY: replaces our own uffd descriptor; the Uffd still owns (and later closes) it.
        let r = nix::errno::Errno::result(unsafe {
            libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), self.uffd.raw())
        });
        check_errno("close(uffd)", None, r.map(drop))
    }

    fn punch_hole(&self, pages: &[usize]) -> Result<(), Errno> {
        let Some(fd) = self.area.memfd_raw() else {
            return Err(Errno::EBADF);
        };
        let ps = self.area.page_size;
        for (first, count) in crate::case::pages::Pages::runs(pages) {
            let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
            // SAFETY: fallocate on our own memfd.
            Errno::result(unsafe {
                libc::fallocate(fd, mode, (first * ps) as i64, (count * ps) as i64)
            })?;
        }
        Ok(())
    }

    /// UFFDIO_COPY / ZEROPAGE / CONTINUE / POISON over the pages.
    fn install(&self, name: &str, i: &Install) -> Checked {
        let pages = pages_of(&self.area, &i.pages);
        let dontwake = if i.dontwake { 1 } else { 0 };
        let ps = self.area.page_size;
        let mut src = vec![0u64; 0];
        let r = memops::over_runs(&self.area, &pages, |start, len| {
            let first = (start - self.area.base()) / ps;
            match name {
                "UFFDIO_COPY" => {
                    // The source holds each page's own pattern, so contents can be checked.
                    src.resize(len / 8, 0);
                    for (k, chunk) in src.chunks_mut(ps / 8).enumerate() {
                        // SAFETY: the chunk is a page-sized buffer we own.
                        unsafe {
                            data::write_page(
                                chunk.as_mut_ptr() as usize,
                                ps,
                                first + k,
                                i.data.unwrap_or(1),
                            )
                        };
                    }
                    let mode = dontwake | if i.wp { UFFDIO_COPY_MODE_WP } else { 0 };
                    self.uffd
                        .copy(start, src.as_ptr() as usize, len, mode)
                        .map(drop)
                }
                "UFFDIO_ZEROPAGE" => self.uffd.zeropage(start, len, dontwake).map(drop),
                "UFFDIO_CONTINUE" => {
                    let mode = dontwake | if i.wp { UFFDIO_CONTINUE_MODE_WP } else { 0 };
                    self.uffd.continue_(start, len, mode).map(drop)
                }
                _ => self.uffd.poison(start, len, dontwake).map(drop),
            }
        });
        let mode = if i.wp { "(MODE_WP)" } else { "" };
        check_errno(
            &format!("{name}{mode}"),
            i.errno.as_ref().map(ErrnoName::errno),
            r,
        )
    }

    /// Writes pages through the unregistered alias mapping of the file.
    fn fill(&mut self, pages: &[usize], gen: u8) -> Checked {
        let alias = match self.area.alias() {
            Ok(a) => a,
            Err(e) => return Err(vec![mismatch("mmap of the alias", "success", e.desc())]),
        };
        for &p in pages {
            // SAFETY: the alias maps the same file, read-write, and is not registered.
            unsafe {
                data::write_page(alias + p * self.area.page_size, self.area.page_size, p, gen)
            };
        }
        Ok(vec![])
    }
}
