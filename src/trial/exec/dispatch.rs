//! The step loop of a trial process: each step dispatched to its operation's body, its
//! outcome recorded; the first failing or skipping step ends the trial.

use super::fork;
use super::state::{gettid, Ran, StepOutcome, Trial};
use crate::case::{Op, Step};
use crate::kernel::uapi::UFFDIO_WRITEPROTECT_MODE_WP;
use crate::trial::memops::{self, check_errno, mismatch, pages_of, verified};
use crate::trial::protocol::*;
use crate::trial::{migrate, ro_pin, scan, swapoff};

/// Runs the trial; `progress` is told each step before it runs.
pub fn run(spec: &TrialSpec, started: u64, progress: &mut dyn FnMut(usize)) -> ProcessReport {
    let mut report = ProcessReport::default();
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
        if !record(&mut report, n, op, trial.step(step)) {
            break;
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

/// Records step `n`'s outcome in the report; false when it ends the trial (a failure or skip).
fn record(report: &mut ProcessReport, n: usize, op: String, outcome: StepOutcome) -> bool {
    match outcome {
        StepOutcome::Done(observed) => {
            report.steps.push(StepRecord {
                step: n,
                op,
                ran: true,
                observed,
            });
            true
        }
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
            false
        }
        StepOutcome::Skip(reason) => {
            report.steps.push(StepRecord {
                step: n,
                op,
                ran: true,
                observed: vec![reason.clone()],
            });
            report.outcome = Outcome::Skip(format!("step {n}: {reason}"));
            false
        }
    }
}

impl Trial {
    /// Runs one step: the operation's own checks, then the messages it raised.
    fn step(&mut self, step: &Step) -> StepOutcome {
        let mark = self.handler.mark();
        let ctx = self.context(gettid());
        let (area, pagemap) = (&self.area, &self.pagemap);
        let ran = match &step.op {
            Op::Write(a) => self.access(a, true, mark, &ctx),
            Op::Read(a) => self.access(a, false, mark, &ctx),
            Op::Poke(p) => self.poke(p, &ctx),
            Op::Join(j) => self.join(j, &ctx),
            Op::Protect(r) if r.memcg_full => self.protect_memcg_full(r),
            Op::Protect(r) => {
                self.writeprotect("UFFDIO_WRITEPROTECT(WP)", r, UFFDIO_WRITEPROTECT_MODE_WP)
            }
            Op::Unprotect(r) => self.writeprotect("UFFDIO_WRITEPROTECT(0)", r, 0),
            Op::Wake(r) => Ran::checked(self.range_ioctl(
                "UFFDIO_WAKE",
                &r.pages,
                &r.errno,
                r.shift,
                |u, s, l| u.wake(s, l),
            )),
            Op::Register(r) => self.register(r),
            Op::Unregister(r) => Ran::checked(self.range_ioctl(
                "UFFDIO_UNREGISTER",
                &r.pages,
                &r.errno,
                r.shift,
                |u, s, l| u.unregister(s, l),
            )),
            Op::Api(api) => Ran::checked(self.api(api)),
            Op::Open(o) => Ran::checked(super::ioctls::open(o)),
            Op::KernelWrite(k) => self.kernel_write(k, &ctx),
            Op::PunchHole(p) => self.punch_hole(p, &ctx),
            Op::CloseUffd(_) => {
                self.handler.stop();
                Ran::checked(self.close_uffd())
            }
            Op::ProcMemWrite(p) => Ran::checked(self.proc_mem_write(p)),
            Op::Copy(i) => Ran::checked(self.install("UFFDIO_COPY", i)),
            Op::Zeropage(i) => Ran::checked(self.install("UFFDIO_ZEROPAGE", i)),
            Op::Continue(i) => Ran::checked(self.install("UFFDIO_CONTINUE", i)),
            Op::Poison(i) => Ran::checked(self.install("UFFDIO_POISON", i)),
            Op::Move(m) => Ran::checked(self.move_pages(m)),
            Op::Fill(f) => Ran::checked(self.fill(&pages_of(&self.area, &f.pages), f.data)),
            Op::Pagemap(p) => Ran::checked(memops::check_pagemap(area, pagemap, p)),
            Op::VmFlags(v) => Ran::checked(memops::check_vmflags(area, v)),
            Op::PageTables(t) => Ran::checked(self.page_tables(t)),
            Op::Scan(s) => Ran::checked(scan::run(area, pagemap, s)),
            Op::Madvise(m) => self.madvise(m, &ctx),
            Op::Pin(p) => self.pin(p),
            Op::Unpin(_) => {
                self.pins.clear();
                Ran::checked(Ok(vec![]))
            }
            Op::Collapse(c) => Ran::verified(verified(
                memops::collapse(area, pagemap, &pages_of(area, &c.pages)),
                |e| vec![mismatch("pagemap", "an entry", e.desc())],
            )),
            Op::Migrate(m) => Ran::verified(verified(
                migrate::migrate(area, pagemap, &pages_of(area, &m.pages), m.whole_thp),
                |e| vec![mismatch("migration", "present pages moved", e)],
            )),
            Op::Swapoff(o) => Ran::verified(verified(
                swapoff::run(area, pagemap, &pages_of(area, &o.pages)),
                |m| m,
            )),
            Op::RoPin(r) => Ran::verified(verified(
                ro_pin::ro_pin(area, pagemap, &pages_of(area, &r.pages), r.unshares, r.via),
                |m| m,
            )),
            Op::KsmMerge(k) => Ran::verified(verified(
                memops::ksm_merge(area, pagemap, &pages_of(area, &k.pages)),
                |e| vec![mismatch("madvise(MADV_MERGEABLE)", "success", e.desc())],
            )),
            Op::SwapOut(s) => Ran::verified(verified(
                memops::swap_out(area, pagemap, &pages_of(area, &s.pages)),
                |e| vec![mismatch("madvise(MADV_PAGEOUT)", "success", e.desc())],
            )),
            Op::Mprotect(m) => Ran::checked(check_errno(
                "mprotect",
                None,
                memops::mprotect(area, &pages_of(area, &m.pages), m.prot),
            )),
            Op::Munmap(m) => self.munmap(m, &ctx),
            Op::Mremap(m) => self.mremap(m, &ctx),
            Op::Fork(f) => Ran::Final(fork::run(self, f, mark)),
            Op::Stress(s) => Ran::Final(self.stress(s)),
        };
        match ran {
            Ran::Checked(checked, expected) => self.finish(mark, checked, &expected),
            Ran::Final(outcome) => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_done_step_is_recorded_and_the_trial_goes_on() {
        let mut report = ProcessReport::default();
        assert!(record(
            &mut report,
            1,
            "write".into(),
            StepOutcome::Done(vec!["x".into()])
        ));
        assert_eq!(report.steps[0].observed, ["x"]);
        assert!(report.steps[0].ran);
        assert!(matches!(report.outcome, Outcome::Pass));
    }

    #[test]
    fn a_failed_step_ends_the_trial_with_its_mismatches() {
        let mut report = ProcessReport::default();
        let m = mismatch("check", "1", "0");
        assert!(!record(
            &mut report,
            3,
            "pagemap".into(),
            StepOutcome::Failed(vec![m.clone()])
        ));
        let Outcome::Fail(f) = &report.outcome else {
            panic!("not a failure: {:?}", report.outcome)
        };
        assert_eq!((f.step, f.op.as_str()), (3, "pagemap"));
        assert_eq!(f.mismatches, [m]);
        assert!(report.steps[0].observed.is_empty());
    }

    #[test]
    fn a_skipped_step_ends_the_trial_naming_the_step() {
        let mut report = ProcessReport::default();
        assert!(!record(
            &mut report,
            2,
            "swap_out".into(),
            StepOutcome::Skip("no swap".into())
        ));
        assert!(matches!(&report.outcome, Outcome::Skip(s) if s == "step 2: no swap"));
        assert_eq!(report.steps[0].observed, ["no swap"]);
    }
}
