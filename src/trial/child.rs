//! The trial process: forked by a [zygote](super::zygote) (or, without one, the runner
//! re-executes its own binary with [`CHILD_ENV`] set); the runner sends a [`TrialSpec`] on
//! stdin and reads [`ChildLine`]s from stdout.

use std::io::{Read, Write};

use super::exec;
use super::protocol::{ChildLine, TrialSpec};

/// Set in the environment of a trial process.
pub const CHILD_ENV: &str = "UFFD_CONFORM_TRIAL_PROCESS";

/// The uid and gid of `run_as: nobody` trials.
pub const NOBODY: u32 = 65534;

/// Test hook, not part of the case format: `CASE:STEP` makes the trial process of case `CASE`
/// panic when it reaches step STEP, so the suite's own tests can check that a panicking trial
/// is reported as such (no case can make the runner's code panic on purpose).
pub const PANIC_ENV: &str = "UFFD_CONFORM_TEST_PANIC_AT";

fn panic_hook(case: &str) -> Option<usize> {
    let value = std::env::var(PANIC_ENV).ok()?;
    let (name, step) = value.rsplit_once(':')?;
    (name == case).then(|| step.parse().ok()).flatten()
}

/// The trial process proper: reads the spec on stdin, runs it, writes the report, exits.
/// `started` is when the process began (CLOCK_MONOTONIC), for the timing.
pub(super) fn run_spec_from_stdin(started: u64) -> ! {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("trial process: cannot read its spec: {e}");
        std::process::exit(3);
    }
    let spec: TrialSpec = match serde_json::from_str(&input) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("trial process: bad spec: {e}");
            std::process::exit(3);
        }
    };
    let panic_at = panic_hook(&spec.case.name);
    let mut progress = |step: usize| {
        emit(&ChildLine::Step(step));
        if panic_at == Some(step) {
            panic!("{PANIC_ENV} asked for a panic at step {step}");
        }
    };
    let mut report = exec::run(&spec, started, &mut progress);
    report.timing.finished = super::protocol::monotonic_ns();
    emit(&ChildLine::Report(report));
    std::process::exit(0);
}

fn emit(line: &ChildLine) {
    let mut out = std::io::stdout().lock();
    let text = serde_json::to_string(line).expect("a child line serializes");
    // A closed stdout means the runner is gone; nothing is left to tell.
    let _ = writeln!(out, "{text}").and_then(|_| out.flush());
}
