//! The `fork` operation: with every page's locks held (so no write is half done and the
//! model is the kernel's state), fork(2); the child checks what it inherited while the parent's
//! threads go on writing (copy-on-write races the child's reads), and reports over a pipe.
//!
//! The parent has other threads, one of which may hold a malloc lock at the fork: the child
//! allocates nothing, it reads its pages and its own pagemap and `_exit`s.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use super::env::Env;
use super::model::{verify_page, Shared};
use crate::kernel::pagemap::{PM_PRESENT, PM_SWAP, PM_UFFD_WP};
use crate::trial::memops::mismatch;

/// What a child found, as it crosses the pipe (plain integers; no allocation in the child).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ChildReport {
    /// 0: all good; 1: contents differ; 2: pagemap bit 57 differs; 3: pagemap unreadable.
    pub kind: u64,
    pub page: u64,
    pub word: u64,
    pub expected: u64,
    pub observed: u64,
}

pub fn fork(shared: &Shared, env: &Env) -> String {
    let data = shared.lock_data(0..shared.pages);
    let wp = shared.lock_wp(0..shared.pages);
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        let e = nix::errno::Errno::last();
        shared.problem(mismatch("pipe", "success", e.desc().to_string()));
        return "pipe failed".into();
    }
    let closed = shared.closed.load(Ordering::SeqCst);
    let base_page = crate::kernel::pagemap::base_page_size();
    let shared_memory = env.memory.is_shared();
    let hugetlb = env.memory.is_hugetlb();
    // The child allocates nothing (see raw_fork).
    let pid = match crate::kernel::process::raw_fork() {
        Ok(nix::unistd::ForkResult::Child) => 0,
        Ok(nix::unistd::ForkResult::Parent { child }) => child.as_raw() as i64,
        Err(e) => -(e as i64),
    };
    if pid == 0 {
        let report = check_in_child(
            shared,
            &data,
            &wp,
            env.event_fork,
            closed,
            (shared_memory, hugetlb),
            base_page,
        );
        // SAFETY: writing a plain struct to the pipe, then leaving without unwinding.
        unsafe {
            libc::write(
                fds[1],
                (&report as *const ChildReport).cast(),
                std::mem::size_of::<ChildReport>(),
            );
            libc::_exit(0);
        }
    }
    // SAFETY: the write end is ours; the read end is kept until the child is reaped.
    unsafe { libc::close(fds[1]) };
    if pid < 0 {
        let e = nix::errno::Errno::from_raw(-pid as i32);
        unsafe { libc::close(fds[0]) };
        shared.problem(mismatch("fork", "success", e.desc().to_string()));
        return "fork failed".into();
    }
    drop(wp);
    drop(data);
    // SAFETY: fds[0] is open and owned by nobody else.
    let read_end = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    Shared::lock(&env.children).push((pid as i32, read_end));
    Shared::lock(&shared.tasks).push(pid as u64);
    format!("child {pid}")
}

#[allow(clippy::needless_range_loop)] // pages index the model, the area and pagemap alike
/// In the child: pagemap bit 57 first (reading a page may change its entry), then contents.
fn check_in_child(
    shared: &Shared,
    data: &[std::sync::MutexGuard<'_, u32>],
    wp: &[std::sync::MutexGuard<'_, bool>],
    event_fork: bool,
    closed: bool,
    (shared_memory, hugetlb): (bool, bool),
    base_page: usize,
) -> ChildReport {
    let path = c"/proc/self/pagemap";
    // SAFETY: a static path; the descriptor is the child's own pagemap.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return ChildReport {
            kind: 3,
            ..Default::default()
        };
    }
    if !closed {
        for p in 0..shared.pages {
            let mut entry = 0u64;
            let offset = (shared.page_addr(p) / base_page * 8) as libc::off_t;
            // SAFETY: reading 8 bytes into `entry`.
            let mut n = unsafe { libc::pread(fd, (&mut entry as *mut u64).cast(), 8, offset) };
            // hugetlb's pagemap is read without the page table lock: a migration (the
            // parent's `migrate`) clears the entry for a moment before it writes the
            // migration entry. Where fork copied the page table (EVENT_FORK, or private
            // memory), a page reads as none only then: read again. (Shared hugetlb without
            // EVENT_FORK is not copied: none is its state.)
            // The wait is bounded by time, not tries: under TCG copying a huge page takes
            // milliseconds, far longer than a few hundred sched_yield()s.
            // "None" is no present, swap or uffd-wp bit, not a zero entry: with
            // CONFIG_MEM_SOFT_DIRTY (Debian's kernels) every entry of a VM_SOFTDIRTY vma, a
            // none one too, has PM_SOFT_DIRTY (pagemap_hugetlb_range()).
            let copied = event_fork || !shared_memory;
            let deadline = monotonic_ms() + 500;
            while hugetlb && copied && n == 8 && reads_none(entry) && monotonic_ms() < deadline {
                // SAFETY: as above; sched_yield has no arguments.
                unsafe {
                    libc::sched_yield();
                    n = libc::pread(fd, (&mut entry as *mut u64).cast(), 8, offset);
                }
            }
            if n != 8 {
                return ChildReport {
                    kind: 3,
                    page: p as u64,
                    ..Default::default()
                };
            }
            // With UFFD_EVENT_FORK the child keeps the parent's protection; without, it has
            // none (its area is not registered).
            let want = event_fork && *wp[p];
            let got = entry >> 57 & 1 == 1;
            if want != got {
                return ChildReport {
                    kind: 2,
                    page: p as u64,
                    word: entry, // the whole entry, for the report
                    expected: want as u64,
                    observed: got as u64,
                };
            }
        }
    }
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    for p in 0..shared.pages {
        if shared_memory {
            // Shared pages: the child sees the parent's later writes too, so each page must
            // hold its own pattern at the fork's sequence or a later one.
            // SAFETY: the page is mapped in the child as in the parent.
            let got = unsafe { std::ptr::read_volatile(shared.page_addr(p) as *const u64) };
            let want = super::model::word(*data[p], p, 0);
            if got >> 24 & 0xffff != p as u64 || (got >> 40) < (want >> 40) {
                return ChildReport {
                    kind: 1,
                    page: p as u64,
                    word: 0,
                    expected: want,
                    observed: got,
                };
            }
            continue;
        }
        // SAFETY: the page is mapped in the child as in the parent.
        if let Some((w, want, got)) =
            unsafe { verify_page(shared.page_addr(p), shared.page_size, p, *data[p]) }
        {
            return ChildReport {
                kind: 1,
                page: p as u64,
                word: w as u64,
                expected: want,
                observed: got,
            };
        }
    }
    ChildReport::default()
}

/// A pagemap entry that is neither present nor a swap entry and has no uffd-wp bit: a none
/// pte (or, on hugetlb, whose pagemap shows no swap bit, an unprotected migration entry).
/// Other bits may be set: PM_SOFT_DIRTY for every page of a VM_SOFTDIRTY vma.
fn reads_none(entry: u64) -> bool {
    entry & (PM_PRESENT | PM_SWAP | PM_UFFD_WP) == 0
}

/// Waits for every child (up to `stall_ms` each) and turns its report into problems.
pub fn reap(shared: &Shared, env: &Env, stall_ms: u64) {
    let children: Vec<(i32, OwnedFd)> = std::mem::take(&mut *Shared::lock(&env.children));
    for (pid, fd) in children {
        let start = crate::trial::protocol::monotonic_ns();
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if crate::trial::protocol::monotonic_ns() - start > stall_ms * 1_000_000 {
                shared.problem(mismatch(
                    format!("fork child {pid}"),
                    format!("done within {stall_ms} ms"),
                    "still running (killed): a fault in the child was never resolved?",
                ));
                // SAFETY: our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut report = ChildReport::default();
        // SAFETY: reading a plain struct from the pipe.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                (&mut report as *mut ChildReport).cast(),
                std::mem::size_of::<ChildReport>(),
            )
        };
        if n as usize != std::mem::size_of::<ChildReport>() {
            let how = if libc::WIFSIGNALED(status) {
                format!("killed by signal {}", libc::WTERMSIG(status))
            } else {
                format!(
                    "exited with status {} and no report",
                    libc::WEXITSTATUS(status)
                )
            };
            shared.problem(mismatch(format!("fork child {pid}"), "its report", how));
            continue;
        }
        shared
            .pages_verified
            .fetch_add(shared.pages as u64, Ordering::Relaxed);
        let p = report.page;
        match report.kind {
            0 => {}
            1 => shared.problem(mismatch(
                format!("fork child {pid}: data of page {p} at word {}", report.word),
                super::model::explain(report.expected),
                super::model::explain(report.observed),
            )),
            2 => shared.problem(mismatch(
                format!("fork child {pid}: pagemap bit 57 (uffd-wp) of page {p}"),
                (report.expected == 1).to_string(),
                format!(
                    "{} ({})",
                    report.observed == 1,
                    crate::kernel::pagemap::Entry(report.word).describe()
                ),
            )),
            _ => shared.problem(mismatch(
                format!("fork child {pid}: /proc/self/pagemap"),
                "readable",
                format!("unreadable at page {p}"),
            )),
        }
    }
}

/// CLOCK_MONOTONIC in milliseconds (clock_gettime allocates nothing, as the child must not).
fn monotonic_ms() -> u64 {
    crate::trial::protocol::monotonic_ns() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::pagemap::{PM_MMAP_EXCLUSIVE, PM_SOFT_DIRTY};

    #[test]
    fn a_none_entry_may_be_soft_dirty() {
        assert!(reads_none(0));
        assert!(reads_none(PM_SOFT_DIRTY)); // Debian's 6.12.118 cloud kernel, a none pte
        assert!(!reads_none(PM_UFFD_WP | PM_SOFT_DIRTY)); // a protected migration entry
        assert!(!reads_none(PM_PRESENT | PM_MMAP_EXCLUSIVE | 0x1234));
        assert!(!reads_none(PM_SWAP | PM_UFFD_WP));
    }
}
