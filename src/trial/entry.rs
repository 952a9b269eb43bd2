//! Where a binary that runs trials starts: a trial process or a zygote is told so by its
//! environment, and never returns to the binary's own `main`.

use super::child::{self, CHILD_ENV};
use super::zygote;

/// If this process is a trial process (or a zygote, which forks them), runs the trial and
/// exits; otherwise returns. Call it first in `main` of every binary that runs trials, before
/// anything starts a thread.
pub fn run_if_child() {
    if std::env::var_os(zygote::ZYGOTE_ENV).is_some() {
        zygote::serve();
    }
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let started = super::protocol::monotonic_ns();
    // Die with the runner: a trial stuck on a fault must not outlive it.
    // SAFETY: prctl(PR_SET_PDEATHSIG) has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    child::run_spec_from_stdin(started)
}
