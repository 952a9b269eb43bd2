//! The `fork` step: the child runs its steps and reports each one's checks over a pipe; the
//! parent attributes the messages the child causes (served by the handler through the uffd
//! UFFD_EVENT_FORK handed over) to the child step that caused them.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;
use serde::{Deserialize, Serialize};

use super::state::{gettid, StepOutcome, Trial};
use crate::case::model::ErrnoName;
use crate::case::step::Fork;
use crate::case::{Op, Step};
use crate::kernel::memory::Area;
use crate::kernel::pagemap::Pagemap;
use crate::trial::expect::{self, Expected};
use crate::trial::memops::{self, check_errno, mismatch, pages_of, verified, Checked};
use crate::trial::protocol::{Message, Mismatch};
use crate::trial::{ro_pin, scan};

/// What a child step found, sent to the parent as one JSON line.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ChildStep {
    observed: Vec<String>,
    mismatches: Vec<Mismatch>,
    skip: Option<String>,
}

impl ChildStep {
    fn skipped(reason: String) -> ChildStep {
        ChildStep {
            skip: Some(reason),
            ..Default::default()
        }
    }
}

pub(super) fn run(trial: &mut Trial, f: &Fork, mark: (usize, usize)) -> StepOutcome {
    let pipes = nix::unistd::pipe().and_then(|up| nix::unistd::pipe().map(|down| (up, down)));
    let ((up_r, up_w), (down_r, down_w)) = match pipes {
        Ok(p) => p,
        Err(e) => return StepOutcome::Failed(vec![mismatch("pipe", "success", e.desc())]),
    };
    match crate::kernel::process::raw_fork() {
        Err(e) => StepOutcome::Failed(vec![mismatch("fork", "success", e.desc())]),
        Ok(ForkResult::Child) => {
            drop(up_r);
            drop(down_w);
            child_main(&trial.area, &f.steps, up_w, down_r)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(up_w);
            drop(down_r);
            parent(trial, f, mark, child, up_r, down_w)
        }
    }
}

fn child_main(area: &Area, steps: &[Step], up: OwnedFd, down: OwnedFd) -> ! {
    let mut up = File::from(up);
    let mut down = File::from(down);
    let pagemap = Pagemap::open_self();
    for (j, step) in steps.iter().enumerate() {
        let mut ack = [0u8; 1];
        let started =
            writeln!(up, "B {j} {}", gettid()).is_ok() && down.read_exact(&mut ack).is_ok();
        if !started {
            break;
        }
        let result = match &pagemap {
            Ok(pm) => child_step(area, pm, step),
            Err(e) => ChildStep {
                mismatches: vec![mismatch(
                    "open /proc/self/pagemap",
                    "success",
                    e.to_string(),
                )],
                ..Default::default()
            },
        };
        let line = serde_json::to_string(&result).unwrap_or_default();
        // A skipped step ends the child: later steps would test what could not be set up.
        if writeln!(up, "R {line}").is_err() || result.skip.is_some() {
            break;
        }
    }
    // SAFETY: ends the child without running the parent's destructors or atexit handlers.
    unsafe { libc::_exit(0) }
}

fn child_step(area: &Area, pagemap: &Pagemap, step: &Step) -> ChildStep {
    let checked: Checked = match &step.op {
        Op::Write(a) => memops::access(area, a, true),
        Op::Read(a) => memops::access(area, a, false),
        Op::KernelWrite(k) => {
            let r = memops::kernel_write(area, &pages_of(area, &k.pages));
            check_errno(
                "read(/dev/zero) into the pages",
                k.errno.as_ref().map(ErrnoName::errno),
                r,
            )
        }
        Op::Poke(p) => {
            memops::poke(area, p.page, p.offset, p.value);
            Ok(vec![])
        }
        Op::Pagemap(p) => memops::check_pagemap(area, pagemap, p),
        Op::VmFlags(v) => memops::check_vmflags(area, v),
        Op::Scan(s) => scan::run(area, pagemap, s),
        Op::Madvise(m) => {
            let r = memops::madvise(area, &pages_of(area, &m.pages), m.advice);
            if m.may_fail {
                return ChildStep {
                    observed: vec![format!("madvise: {r:?}")],
                    ..Default::default()
                };
            }
            check_errno(
                &format!("madvise({:?})", m.advice),
                m.errno.as_ref().map(ErrnoName::errno),
                r,
            )
        }
        Op::Mprotect(m) => check_errno(
            "mprotect",
            None,
            memops::mprotect(area, &pages_of(area, &m.pages), m.prot),
        ),
        Op::Munmap(m) => check_errno(
            "munmap",
            None,
            memops::munmap(area, &pages_of(area, &m.pages), m.then_map_anon),
        ),
        Op::SwapOut(s) => match verified(
            memops::swap_out(area, pagemap, &pages_of(area, &s.pages)),
            |e| vec![mismatch("madvise(MADV_PAGEOUT)", "success", e.desc())],
        ) {
            Ok(checked) => checked,
            Err(reason) => return ChildStep::skipped(reason),
        },
        Op::RoPin(r) => match verified(
            ro_pin::ro_pin(area, pagemap, &pages_of(area, &r.pages), r.unshares, r.via),
            |m| m,
        ) {
            Ok(checked) => checked,
            Err(reason) => return ChildStep::skipped(reason),
        },
        other => Err(vec![mismatch(
            "child step",
            "an operation a child may run",
            other.key(),
        )]),
    };
    match checked {
        Ok(observed) => ChildStep {
            observed,
            ..Default::default()
        },
        Err(mismatches) => ChildStep {
            mismatches,
            ..Default::default()
        },
    }
}

/// The messages a child step must raise (its accesses' faults, from the fork uffd).
fn child_expected(trial: &Trial, step: &Step, tid: u32) -> Vec<Expected> {
    let mut ctx = trial.context(tid);
    ctx.from_child = true;
    match &step.op {
        Op::Write(a) => ctx.access(&a.faults, &pages_of(&trial.area, &a.pages), true, 0),
        Op::Read(a) => ctx.access(&a.faults, &pages_of(&trial.area, &a.pages), false, 0),
        Op::Poke(p) => ctx.access(&p.faults, &[p.page], true, p.offset),
        Op::KernelWrite(k) => ctx.access(&k.faults, &pages_of(&trial.area, &k.pages), true, 0),
        Op::Madvise(m) => ctx.events(&m.events, &|_| None),
        Op::Munmap(m) => ctx.events(&m.events, &|_| None),
        _ => vec![],
    }
}

fn parent(
    trial: &mut Trial,
    f: &Fork,
    mark: (usize, usize),
    child: nix::unistd::Pid,
    up: OwnedFd,
    down: OwnedFd,
) -> StepOutcome {
    let mut down = File::from(down);
    let mut observed = Vec::new();
    let mut mismatches = Vec::new();
    let mut skip = None;
    // Messages before the first child step belong to the fork itself (UFFD_EVENT_FORK).
    let mut fork_messages: Option<Vec<Message>> = None;
    let mut step_mark = mark;
    let mut current: Option<(usize, u32)> = None;
    let mut last_step = 0;
    for line in BufReader::new(File::from(up)).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("B ") {
            let mut parts = rest
                .split_whitespace()
                .map(|x| x.parse::<u64>().unwrap_or(0));
            let (j, tid) = (
                parts.next().unwrap_or(0) as usize,
                parts.next().unwrap_or(0) as u32,
            );
            if fork_messages.is_none() {
                fork_messages = Some(trial.handler.since(mark).0);
            }
            step_mark = trial.handler.mark();
            current = Some((j, tid));
            last_step = j + 1;
            let _ = down.write_all(b"k");
        } else if let Some(json) = line.strip_prefix("R ") {
            let Some((j, tid)) = current.take() else {
                continue;
            };
            let result: ChildStep = serde_json::from_str(json).unwrap_or_else(|e| ChildStep {
                mismatches: vec![mismatch("child report", "a result", e.to_string())],
                ..Default::default()
            });
            let label = format!("child step {} `{}`", j + 1, f.steps[j].op.summary());
            let (messages, errors) = trial.handler.since(step_mark);
            let expected = child_expected(trial, &f.steps[j], tid);
            let mut step_mismatches = result.mismatches;
            if let Err(m) = expect::check(&expected, &messages) {
                step_mismatches.push(m);
            }
            step_mismatches.extend(
                errors
                    .into_iter()
                    .map(|e| mismatch("fault resolution", "the handler resolves every fault", e)),
            );
            for m in step_mismatches {
                mismatches.push(Mismatch {
                    check: format!("{label}: {}", m.check),
                    ..m
                });
            }
            observed.extend(result.observed.into_iter().map(|o| format!("{label}: {o}")));
            if let Some(reason) = result.skip {
                skip.get_or_insert(format!("{label}: {reason}"));
            }
        }
    }
    let status = waitpid(child, None);
    let want_signal = f.child_signal.as_ref().map(|s| s.signal());
    let exit_ok = match (status, want_signal) {
        (Ok(WaitStatus::Exited(_, 0)), None) => true,
        (Ok(WaitStatus::Signaled(_, sig, _)), Some(want)) => {
            sig == want && last_step == f.steps.len()
        }
        _ => false,
    };
    // A child that stopped at a skipped step exits early, whatever signal was expected.
    let stopped_at_skip = skip.is_some() && matches!(status, Ok(WaitStatus::Exited(_, 0)));
    if !exit_ok && !stopped_at_skip {
        let observed_exit = match status {
            Ok(WaitStatus::Exited(_, code)) => format!("exit {code} after child step {last_step}"),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                format!("killed by {} at child step {last_step}", sig.as_str())
            }
            other => format!("{other:?}"),
        };
        let expected_exit = match want_signal {
            Some(s) => format!("killed by {} at child step {}", s.as_str(), f.steps.len()),
            None => "exit 0".into(),
        };
        mismatches.push(mismatch("fork child", expected_exit, observed_exit));
    }
    let fork_messages = fork_messages.unwrap_or_else(|| trial.handler.since(mark).0);
    let expected = trial.context(gettid()).events(&f.events, &|_| None);
    if let Err(m) = expect::check(&expected, &fork_messages) {
        mismatches.insert(
            0,
            Mismatch {
                check: format!("fork: {}", m.check),
                ..m
            },
        );
    }
    if !mismatches.is_empty() {
        StepOutcome::Failed(mismatches)
    } else if let Some(reason) = skip {
        StepOutcome::Skip(reason)
    } else {
        StepOutcome::Done(observed)
    }
}
