//! Runs a trial's steps inside the trial process and checks what the kernel did.

use std::sync::Arc;

use nix::errno::Errno;

use super::data;
use super::handler::{Geometry, Handler};
use super::record::*;
use crate::case::faults::{flag_mask, EventKind, MsgExpect};
use crate::case::model::{mode_mask, Access, PagemapExpect, RangeOp};
use crate::case::pages::Pages;
use crate::case::{Op, Step};
use crate::kernel::memory::Area;
use crate::kernel::pagemap::{Entry, Pagemap};
use crate::kernel::uapi::*;
use crate::kernel::uffd::{OpenVia, Uffd};

/// The live state of a trial.
struct Trial {
    area: Area,
    uffd: Arc<Uffd>,
    handler: Handler,
    pagemap: Pagemap,
}

type Checked = Result<Vec<String>, Vec<Mismatch>>;

fn mismatch(
    check: impl Into<String>,
    expected: impl Into<String>,
    observed: impl Into<String>,
) -> Mismatch {
    Mismatch {
        check: check.into(),
        expected: expected.into(),
        observed: observed.into(),
    }
}

fn setup_failure(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure {
        step: 0,
        op: "setup".into(),
        mismatches: vec![mismatch(what, "success", e.to_string())],
    }
}

/// Runs the trial; `progress` is told each step before it runs.
pub fn run(spec: &TrialSpec, progress: &mut dyn FnMut(usize)) -> TrialReport {
    let mut report = TrialReport::default();
    let mut trial = match Trial::setup(spec, &mut report) {
        Ok(t) => t,
        Err(f) => {
            report.outcome = Outcome::Fail(f);
            return report;
        }
    };
    for (i, step) in spec.case.steps.iter().enumerate() {
        let n = i + 1;
        progress(n);
        let op = describe(step);
        if !step.applies_to(spec.memory) {
            report.steps.push(StepRecord {
                step: n,
                op,
                ran: false,
                observed: vec![],
            });
            continue;
        }
        let result = trial.step(step);
        match result {
            Ok(observed) => report.steps.push(StepRecord {
                step: n,
                op,
                ran: true,
                observed,
            }),
            Err(mismatches) => {
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
        }
    }
    trial.handler.stop();
    report.messages = trial.handler.all_messages();
    report
}

/// A one-line summary of a step, e.g. `write pages 0..2 data 2`.
pub fn describe(step: &Step) -> String {
    match &step.op {
        Op::Write(a) | Op::Read(a) => {
            let data = a.data.map(|d| format!(" data {d}")).unwrap_or_default();
            format!("{} pages {}{data}", step.op.key(), a.pages)
        }
        Op::Protect(r) | Op::Unprotect(r) | Op::Unregister(r) => {
            format!("{} pages {}", step.op.key(), r.pages)
        }
        Op::Register(r) => format!("register pages {} modes {:?}", r.pages, r.modes),
        Op::Pagemap(p) => format!("pagemap pages {}", p.pages),
    }
}

impl Trial {
    fn setup(spec: &TrialSpec, report: &mut TrialReport) -> Result<Trial, Failure> {
        let case = &spec.case;
        let area = Area::map(spec.memory, case.pages, spec.huge_page_size).map_err(|e| {
            setup_failure(
                &format!("mmap {} pages of {}", case.pages, spec.memory),
                e.desc(),
            )
        })?;
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
        let uffd = Arc::new(uffd);
        let geometry = Geometry {
            base: area.base(),
            page_size: area.page_size,
            pages: area.pages,
        };
        let handler = Handler::start(uffd.clone(), geometry)
            .map_err(|e| setup_failure("start the fault handler", e))?;
        let pagemap =
            Pagemap::open_self().map_err(|e| setup_failure("open /proc/self/pagemap", e))?;
        Ok(Trial {
            area,
            uffd,
            handler,
            pagemap,
        })
    }

    fn pages(&self, pages: &Pages) -> Vec<usize> {
        pages
            .resolve(self.area.pages)
            .expect("validated when loaded")
    }

    /// Runs one step: the operation's own checks, then the messages it raised.
    fn step(&mut self, step: &Step) -> Checked {
        let mark = self.handler.mark();
        let (outcome, expected) = match &step.op {
            Op::Write(a) => (
                self.access(a, true),
                a.faults.expand(&self.pages(&a.pages), true),
            ),
            Op::Read(a) => (
                self.access(a, false),
                a.faults.expand(&self.pages(&a.pages), false),
            ),
            Op::Protect(r) => (self.writeprotect(r, UFFDIO_WRITEPROTECT_MODE_WP), vec![]),
            Op::Unprotect(r) => (self.writeprotect(r, 0), vec![]),
            Op::Register(r) => {
                let mode = mode_mask(&r.modes);
                (
                    self.range_ioctl("UFFDIO_REGISTER", &r.pages, &r.errno, |u, s, l| {
                        u.register(s, l, mode).map(drop)
                    }),
                    vec![],
                )
            }
            Op::Unregister(r) => (
                self.range_ioctl("UFFDIO_UNREGISTER", &r.pages, &r.errno, |u, s, l| {
                    u.unregister(s, l)
                }),
                vec![],
            ),
            Op::Pagemap(p) => (self.check_pagemap(p), vec![]),
        };
        let (messages, errors) = self.handler.since(mark);
        let (mut observed, mut mismatches) = match outcome {
            Ok(o) => (o, vec![]),
            Err(m) => (vec![], m),
        };
        if let Err(m) = self.check_messages(&expected, &messages) {
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
                observed.push(format!("messages: {}", describe_messages(&messages)));
            }
            Ok(observed)
        } else {
            Err(mismatches)
        }
    }

    fn access(&mut self, a: &Access, write: bool) -> Checked {
        let mut mismatches = Vec::new();
        for p in self.pages(&a.pages) {
            let addr = self.area.page_addr(p);
            // SAFETY: the page is inside our mapping; faults are resolved by the handler.
            unsafe {
                if write {
                    data::write_page(addr, self.area.page_size, p, a.data.unwrap_or(1));
                } else {
                    data::touch_read(addr);
                    if let Some(gen) = a.data {
                        if let Some((word, want, got)) =
                            data::verify_page(addr, self.area.page_size, p, gen)
                        {
                            mismatches.push(mismatch(
                                format!("data of page {p} at word {word}"),
                                format!("{} (generation {gen})", data::explain(want)),
                                data::explain(got),
                            ));
                        }
                    }
                }
            }
        }
        if mismatches.is_empty() {
            Ok(vec![])
        } else {
            Err(mismatches)
        }
    }

    fn writeprotect(&mut self, r: &RangeOp, mode: u64) -> Checked {
        let name = if mode & UFFDIO_WRITEPROTECT_MODE_WP != 0 {
            "UFFDIO_WRITEPROTECT(WP)"
        } else {
            "UFFDIO_WRITEPROTECT(0)"
        };
        self.range_ioctl(name, &r.pages, &r.errno, |u, s, l| {
            u.writeprotect(s, l, mode)
        })
    }

    /// Runs `ioctl` over each run of consecutive pages and checks the errno expectation.
    fn range_ioctl(
        &self,
        name: &str,
        pages: &Pages,
        errno: &Option<crate::case::model::ErrnoName>,
        ioctl: impl Fn(&Uffd, usize, usize) -> Result<(), Errno>,
    ) -> Checked {
        let pages = self.pages(pages);
        let mut result = Ok(());
        for (first, count) in Pages::runs(&pages) {
            result = ioctl(
                &self.uffd,
                self.area.page_addr(first),
                count * self.area.page_size,
            );
            if result.is_err() {
                break;
            }
        }
        let observed = match result {
            Ok(()) => "success".to_string(),
            Err(e) => format!("{e:?} ({})", e.desc()),
        };
        let expected = match errno {
            None => "success".to_string(),
            Some(e) => format!("{:?} ({})", e.errno(), e.errno().desc()),
        };
        let ok = match (errno, result) {
            (None, Ok(())) => true,
            (Some(want), Err(got)) => want.errno() == got,
            _ => false,
        };
        if ok {
            Ok(vec![format!("{name}: {observed}")])
        } else {
            Err(vec![mismatch(name, expected, observed)])
        }
    }

    fn check_pagemap(&self, p: &PagemapExpect) -> Checked {
        /// Name, bit number, expected value, and how to read it.
        type PagemapBit<'a> = (&'a str, u32, Option<bool>, fn(Entry) -> bool);
        let mut observed = Vec::new();
        let mut mismatches = Vec::new();
        let bits: [PagemapBit; 5] = [
            ("wp", 57, p.wp, Entry::uffd_wp),
            ("present", 63, p.present, Entry::present),
            ("swapped", 62, p.swapped, Entry::swapped),
            ("file", 61, p.file, Entry::file),
            ("exclusive", 56, p.exclusive, Entry::exclusive),
        ];
        for page in self.pages(&p.pages) {
            let entry = match self.pagemap.entry(self.area.page_addr(page)) {
                Ok(e) => e,
                Err(e) => {
                    mismatches.push(mismatch(
                        format!("pagemap of page {page}"),
                        "an entry",
                        e.to_string(),
                    ));
                    continue;
                }
            };
            observed.push(format!("pagemap page {page}: {}", entry.describe()));
            for (name, bit, want, get) in bits {
                if let Some(want) = want {
                    let got = get(entry);
                    if got != want {
                        mismatches.push(mismatch(
                            format!("pagemap page {page} bit {bit} ({name})"),
                            u8::from(want).to_string(),
                            format!("{} [entry: {}]", u8::from(got), entry.describe()),
                        ));
                    }
                }
            }
        }
        if mismatches.is_empty() {
            Ok(observed)
        } else {
            Err(mismatches)
        }
    }

    fn check_messages(&self, expected: &[MsgExpect], observed: &[Message]) -> Result<(), Mismatch> {
        let matches = expected.len() == observed.len()
            && expected
                .iter()
                .zip(observed)
                .all(|(e, o)| self.message_matches(e, o));
        if matches {
            Ok(())
        } else {
            Err(mismatch(
                "messages",
                self.describe_expected(expected),
                describe_messages(observed),
            ))
        }
    }

    fn message_matches(&self, e: &MsgExpect, o: &Message) -> bool {
        if o.event != e.event.code() {
            return false;
        }
        if e.event != EventKind::Pagefault {
            return true;
        }
        let page_ok = e
            .page
            .is_none_or(|p| o.address() == self.area.page_addr(p) as u64);
        let flags_ok = e.flags.as_ref().is_none_or(|f| flag_mask(f) == o.flags());
        page_ok && flags_ok
    }

    fn describe_expected(&self, expected: &[MsgExpect]) -> String {
        if expected.is_empty() {
            return "no message".into();
        }
        let items: Vec<String> = expected
            .iter()
            .map(|e| {
                let name = Message::event_name(e.event.code());
                if e.event != EventKind::Pagefault {
                    return name;
                }
                let flags = e
                    .flags
                    .as_ref()
                    .map(|f| Message::flag_names(flag_mask(f)))
                    .unwrap_or_else(|| "any flags".into());
                let at = e
                    .page
                    .map(|p| format!(" @ page {p} (0x{:x})", self.area.page_addr(p)))
                    .unwrap_or_default();
                format!("{name} {flags}{at}")
            })
            .collect();
        format!("[{}]", items.join(", "))
    }
}

pub fn describe_messages(messages: &[Message]) -> String {
    if messages.is_empty() {
        return "no message".into();
    }
    let items: Vec<String> = messages.iter().map(Message::describe).collect();
    format!("[{}]", items.join(", "))
}
