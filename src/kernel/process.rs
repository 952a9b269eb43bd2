//! Process creation the trial needs raw.

use nix::unistd::{ForkResult, Pid};

/// fork(2) by the raw clone syscall. glibc's fork() takes every malloc lock around the clone,
/// and with UFFD_EVENT_FORK the kernel blocks inside that clone until a handler thread has read
/// the event: a handler that allocates would deadlock. The child of a multi-threaded trial may
/// find a malloc lock held by another thread, so it must allocate nothing before it exits.
pub fn raw_fork() -> nix::Result<ForkResult> {
    // SAFETY: clone with only SIGCHLD is fork.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match nix::errno::Errno::result(ret)? {
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent {
            child: Pid::from_raw(pid as i32),
        }),
    }
}
