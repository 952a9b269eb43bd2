//! The operations of a racing thread, each keeping the model in step with the kernel under
//! the locks `model` describes.

use std::sync::atomic::Ordering;

use nix::errno::Errno;

use super::env::Env;
use super::model::{write_page, OpRecord, Rng, Shared, SCHEDULE_DEPTH};
use super::{child, observe, relocate};
use crate::case::stress::{Sabotage, StressOp, Worker};
use crate::kernel::memory::MemoryType;
use crate::kernel::mm;
use crate::kernel::uapi::UFFDIO_WRITEPROTECT_MODE_WP;
use crate::trial::memops::mismatch;
use crate::trial::protocol::monotonic_ns;

/// How long an ioctl answered EAGAIN (an event in flight) is retried before it is a problem.
const EAGAIN_LIMIT_MS: u64 = 5000;

/// One thread's round: operations until the round ends or `max_ops` are done.
pub fn run_thread(
    shared: &Shared,
    env: &Env,
    slot: usize,
    worker: &Worker,
    mut rng: Rng,
    max_ops: Option<u64>,
) {
    let s = &shared.slots[slot];
    s.tid
        .store(crate::trial::exec::gettid() as u64, Ordering::SeqCst);
    let mut done = 0u64;
    while !shared.stop.load(Ordering::SeqCst) && max_ops.is_none_or(|m| done < m) {
        let ops = &worker.ops;
        // A cycle does its ops in order, each with its own range; otherwise one at random.
        let i = if worker.cycle {
            done as usize % ops.len()
        } else {
            rng.below(ops.len())
        };
        let op = ops[i];
        let (span, align) = worker.range_of(i);
        let align = align.clamp(1, shared.pages);
        let first = rng.below(shared.pages) / align * align;
        let count = (1 + rng.below(span.max(1)))
            .next_multiple_of(align)
            .min(shared.pages - first);
        let what = describe(op, first, count);
        *Shared::lock(&s.current) = what.clone();
        s.busy_since.store(monotonic_ns(), Ordering::SeqCst);
        let result = one(shared, env, op, first, count, &mut rng);
        s.busy_since.store(0, Ordering::SeqCst);
        let mut recent = Shared::lock(&s.recent);
        if recent.len() == SCHEDULE_DEPTH {
            recent.pop_front();
        }
        recent.push_back(OpRecord {
            at_ms: shared.elapsed_ms(),
            what,
            result,
        });
        drop(recent);
        s.ops.fetch_add(1, Ordering::Relaxed);
        done += 1;
        if op == StressOp::Close {
            return; // once per trial
        }
    }
}

fn describe(op: StressOp, first: usize, count: usize) -> String {
    match op {
        StressOp::Write | StressOp::Read | StressOp::Copy => format!("{op:?} page {first}"),
        StressOp::Fork | StressOp::Close | StressOp::Mremap => format!("{op:?}"),
        StressOp::Collapse => format!("{op:?} around page {first}"),
        _ => format!("{op:?} pages {first}..{}", first + count),
    }
    .to_lowercase()
}

/// Does one operation; returns what it came to, for the schedule.
fn one(
    shared: &Shared,
    env: &Env,
    op: StressOp,
    first: usize,
    count: usize,
    rng: &mut Rng,
) -> String {
    let range = first..first + count;
    let addr = shared.page_addr(first);
    let len = count * shared.page_size;
    match op {
        StressOp::Write => {
            let mut seq = Shared::lock(&shared.data[first]);
            // WP_ASYNC: the write itself changes the protection (the kernel resolves it).
            let wp = env.wp_async.then(|| Shared::lock(&shared.wp[first]));
            let next = (*seq + 1) & 0xff_ffff;
            if env.sabotage == Some(Sabotage::LoseWrite) && shared.sabotaged(first) {
                *seq = next;
                return format!("sequence {next} recorded, not written (sabotage)");
            }
            // SAFETY: the page is inside the area; faults are resolved by the handlers.
            unsafe { write_page(addr, shared.page_size, first, next) };
            *seq = next;
            if let Some(mut wp) = wp {
                *wp = false;
            }
            format!("sequence {next}")
        }
        StressOp::Read => {
            let seq = Shared::lock(&shared.data[first]);
            // SAFETY: as for writes.
            let bad = unsafe { super::model::verify_page(addr, shared.page_size, first, *seq) };
            shared.pages_verified.fetch_add(1, Ordering::Relaxed);
            match bad {
                None => format!("sequence {} verified", *seq),
                Some((w, want, got)) => {
                    shared.problem(mismatch(
                        format!("data of page {first} at word {w} (read by a stress thread)"),
                        super::model::explain(want),
                        super::model::explain(got),
                    ));
                    "lost write".into()
                }
            }
        }
        StressOp::Protect | StressOp::Unprotect => {
            let on = op == StressOp::Protect;
            let mut wp = shared.lock_wp(range.clone());
            if on
                && env.sabotage == Some(Sabotage::SkipProtect)
                && range.clone().any(|p| shared.sabotaged(p))
            {
                wp.iter_mut().for_each(|w| **w = true);
                return "recorded, not done (sabotage)".into();
            }
            let mode = if on { UFFDIO_WRITEPROTECT_MODE_WP } else { 0 };
            // Older kernels (6.1) want the range inside one vma: where a racing mprotect or
            // re-register split the area, they answer ENOENT, and the range is done page by
            // page (a page is always inside one vma).
            let r = match retry_eagain(shared, || env.uffd.writeprotect(addr, len, mode)) {
                Err(Errno::ENOENT) if count > 1 => {
                    shared.enoent.fetch_add(1, Ordering::Relaxed);
                    range.clone().try_fold(0, |tries, p| {
                        let a = shared.page_addr(p);
                        retry_eagain(shared, || env.uffd.writeprotect(a, shared.page_size, mode))
                            .map(|t| tries + t)
                    })
                }
                other => other,
            };
            match r {
                Ok(tries) => {
                    wp.iter_mut().for_each(|w| **w = on);
                    again(tries)
                }
                Err(e) => failed(shared, "UFFDIO_WRITEPROTECT", e),
            }
        }
        StressOp::Dontneed => {
            let mut data = shared.lock_data(range.clone());
            let mut wp = shared.lock_wp(range.clone());
            match mm::madvise(addr, len, libc::MADV_DONTNEED) {
                Ok(()) => {
                    // Anonymous memory loses the page and its protection; a private file
                    // mapping falls back to the file (zeroes) but keeps a marker; a shared one
                    // keeps both in the page cache.
                    match env.memory {
                        MemoryType::Anon => {
                            data.iter_mut().for_each(|d| **d = 0);
                            wp.iter_mut().for_each(|w| **w = false);
                        }
                        MemoryType::ShmemPrivate | MemoryType::HugetlbPrivate => {
                            data.iter_mut().for_each(|d| **d = 0)
                        }
                        MemoryType::Shmem | MemoryType::Hugetlb | MemoryType::Ramfs => {}
                    }
                    // With the range's locks still held nothing else changes its protection:
                    // the zap must have kept it exactly (as markers on file memory).
                    for (i, p) in range.clone().enumerate() {
                        if let Some(e) = env.pagemap_entry(shared.page_addr(p)) {
                            if e.uffd_wp() != *wp[i] {
                                shared.problem(mismatch(
                                    format!("pagemap bit 57 (uffd-wp) of page {p} right after MADV_DONTNEED"),
                                    wp[i].to_string(),
                                    format!("{} ({})", e.uffd_wp(), e.describe()),
                                ));
                            }
                        }
                    }
                    "done".into()
                }
                Err(e) => failed(shared, "madvise(MADV_DONTNEED)", e),
            }
        }
        StressOp::Pageout => match mm::madvise(addr, len, libc::MADV_PAGEOUT) {
            Ok(()) => "done".into(),
            // hugetlb is never swapped: the kernel refuses.
            Err(Errno::EINVAL) if env.memory.is_hugetlb() => "EINVAL (hugetlb)".into(),
            Err(e) => failed(shared, "madvise(MADV_PAGEOUT)", e),
        },
        StressOp::Mprotect => {
            let _data = shared.lock_data(range);
            let r = mm::mprotect(addr, len, libc::PROT_READ).and_then(|()| {
                std::thread::yield_now();
                mm::mprotect(addr, len, libc::PROT_READ | libc::PROT_WRITE)
            });
            match r {
                Ok(()) => "read-only, then read-write".into(),
                Err(e) => failed(shared, "mprotect", e),
            }
        }
        StressOp::Fork => child::fork(shared, env),
        StressOp::Migrate => relocate::migrate(shared, env, first, count),
        StressOp::Mremap => relocate::mremap(shared, env),
        StressOp::Pagemap => observe::pagemap(shared, env, range),
        StressOp::Scan => observe::scan(shared, env, range, false),
        StressOp::ScanProtect => observe::scan(shared, env, range, true),
        StressOp::Copy => {
            let mut seq = Shared::lock(&shared.data[first]);
            let mut wp = Shared::lock(&shared.wp[first]);
            let next = (*seq + 1) & 0xff_ffff;
            let mut src = vec![0u64; shared.page_size / 8];
            // SAFETY: `src` is a page-sized buffer we own.
            unsafe { write_page(src.as_mut_ptr() as usize, shared.page_size, first, next) };
            let r = retry_eagain(shared, || {
                env.uffd
                    .copy(addr, src.as_ptr() as usize, shared.page_size, 0)
                    .map(drop)
            });
            match r {
                Ok(tries) => {
                    *seq = next;
                    *wp = false;
                    format!("sequence {next} copied{}", again(tries))
                }
                Err(Errno::EEXIST) => "EEXIST (populated)".into(),
                Err(e) => failed(shared, "UFFDIO_COPY", e),
            }
        }
        StressOp::Reregister => {
            let mut wp = shared.lock_wp(range);
            let r = env
                .uffd
                .unregister(addr, len)
                .and_then(|()| env.uffd.register(addr, len, env.modes).map(drop));
            match r {
                Ok(()) => {
                    // Unregistering clears the range's protection (since 6.0).
                    wp.iter_mut().for_each(|w| **w = false);
                    "done".into()
                }
                Err(e) => failed(shared, "UFFDIO_UNREGISTER + UFFDIO_REGISTER", e),
            }
        }
        StressOp::Collapse => {
            let pmd = 2 << 20;
            let start = addr & !(pmd - 1);
            match mm::madvise(start, pmd, 25 /* MADV_COLLAPSE */) {
                Ok(()) => "collapsed".into(),
                Err(e) => format!("{} (allowed)", e.desc()),
            }
        }
        StressOp::Close => {
            let half = (shared_round_ms(shared) / 2).max(1) as usize;
            std::thread::sleep(std::time::Duration::from_millis(rng.below(half) as u64));
            shared.closed.store(true, Ordering::SeqCst);
            (env.stop_handlers)();
            match std::fs::File::open("/dev/null") {
                Ok(null) => {
                    let r = mm::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), env.uffd.raw());
                    match r {
                        Ok(()) => "uffd closed".into(),
                        Err(e) => failed(shared, "close(uffd)", e),
                    }
                }
                Err(e) => {
                    shared.problem(mismatch("open /dev/null", "success", e.to_string()));
                    "failed".into()
                }
            }
        }
    }
}

fn shared_round_ms(shared: &Shared) -> u64 {
    shared.round_ms.load(Ordering::SeqCst)
}

fn again(tries: u32) -> String {
    if tries > 1 {
        format!("done after {} EAGAIN", tries - 1)
    } else {
        "done".into()
    }
}

fn failed(shared: &Shared, what: &str, e: Errno) -> String {
    if shared.closed.load(Ordering::SeqCst) {
        // A `close` raced it: the descriptor is /dev/null now.
        return format!("{} (uffd closed)", e.desc());
    }
    shared.problem(mismatch(what, "success", e.desc().to_string()));
    e.desc().to_string()
}

/// Calls `f` until it does not fail with EAGAIN (the kernel's answer while a non-cooperative
/// event is being delivered), up to a limit; returns how many calls it took.
fn retry_eagain(shared: &Shared, mut f: impl FnMut() -> Result<(), Errno>) -> Result<u32, Errno> {
    let start = monotonic_ns();
    let mut tries = 0;
    loop {
        tries += 1;
        match f() {
            Ok(()) => return Ok(tries),
            Err(Errno::EAGAIN) if monotonic_ns() - start < EAGAIN_LIMIT_MS * 1_000_000 => {
                shared.eagain.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
            Err(e) => return Err(e),
        }
    }
}
