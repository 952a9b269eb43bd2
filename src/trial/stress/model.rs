//! What the racing threads share: the model of every page (the sequence number its last
//! writer wrote, the protection the threads last set), the locks that keep the model in the
//! kernel's order, each thread's recent operations, and the counters.
//!
//! Locks, always taken in this order: data locks by ascending page, then protection locks by
//! ascending page. A data lock is held by whoever changes or checks contents (write, read,
//! MADV_DONTNEED, mprotect, fork, UFFDIO_COPY); a protection lock by whoever changes the
//! protection and its model together (protect, unprotect, re-register, the handler's
//! unprotect). The handler only ever *tries* a lock and retries later, so it never blocks
//! while a thread holding locks waits for it (a fault, a fork or remove event).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::trial::protocol::{monotonic_ns, Mismatch};

/// Each 8-byte word of a page written by a stress thread: the sequence number (24 bits), the
/// page (16 bits) and the word's index (24 bits). Sequence 0 is all zeroes.
pub fn word(seq: u32, page: usize, index: usize) -> u64 {
    if seq == 0 {
        0
    } else {
        (seq as u64 & 0xff_ffff) << 40 | (page as u64 & 0xffff) << 24 | (index as u64 & 0xff_ffff)
    }
}

/// Explains an observed word, e.g. `sequence 3 of page 1 word 0`.
pub fn explain(w: u64) -> String {
    if w == 0 {
        return "zero".into();
    }
    format!(
        "0x{w:016x} (sequence {} of page {} word {})",
        w >> 40,
        (w >> 24) & 0xffff,
        w & 0xff_ffff
    )
}

/// Writes sequence `seq` over the page at `addr`, first word first (so a fault is taken at the
/// page's start).
///
/// # Safety
/// `addr..addr+page_size` must be mapped and writable (faults are resolved by the handler).
pub unsafe fn write_page(addr: usize, page_size: usize, page: usize, seq: u32) {
    let words = addr as *mut u64;
    for i in 0..page_size / 8 {
        std::ptr::write_volatile(words.add(i), word(seq, page, i));
    }
}

/// The first word of the page at `addr` that is not sequence `seq`: (index, expected, seen).
/// Allocates nothing (a fork child calls it).
///
/// # Safety
/// `addr..addr+page_size` must be mapped readable.
pub unsafe fn verify_page(
    addr: usize,
    page_size: usize,
    page: usize,
    seq: u32,
) -> Option<(usize, u64, u64)> {
    let words = addr as *const u64;
    for i in 0..page_size / 8 {
        let got = std::ptr::read_volatile(words.add(i));
        let want = word(seq, page, i);
        if got != want {
            return Some((i, want, got));
        }
    }
    None
}

/// splitmix64: a small, seedable generator; each thread has its own, so its sequence of
/// operations depends only on the seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The seed of thread `index` in round `round`, from the trial's seed.
pub fn thread_seed(seed: u64, index: usize, round: u32) -> u64 {
    let mut r = Rng::new(seed ^ (index as u64 + 1).wrapping_mul(0xa076_1d64_78bd_642f));
    r.next() ^ (round as u64).wrapping_mul(0xe703_7ed1_a0b4_28db)
}

/// One operation a thread did, for the schedule printed on a failure.
#[derive(Debug, Clone)]
pub struct OpRecord {
    /// Milliseconds since the stress step started.
    pub at_ms: u64,
    pub what: String,
    pub result: String,
}

/// How many operations of each thread the schedule keeps.
pub const SCHEDULE_DEPTH: usize = 12;

/// A racing thread's public state: what it is doing since when, and what it did last.
pub struct Slot {
    pub name: String,
    pub tid: AtomicU64,
    /// monotonic ns when the current operation started; 0 when between operations.
    pub busy_since: AtomicU64,
    pub current: Mutex<String>,
    pub recent: Mutex<VecDeque<OpRecord>>,
    pub ops: AtomicU64,
}

impl Slot {
    pub fn new(name: String) -> Slot {
        Slot {
            name,
            tid: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            current: Mutex::new(String::new()),
            recent: Mutex::new(VecDeque::new()),
            ops: AtomicU64::new(0),
        }
    }
}

/// The model and everything the threads share.
pub struct Shared {
    pub base: usize,
    pub page_size: usize,
    pub pages: usize,
    /// Per page: the sequence number of its last write (0: zeroes).
    pub data: Vec<Mutex<u32>>,
    /// Per page: whether the threads last write-protected it.
    pub wp: Vec<Mutex<bool>>,
    /// Per page: flags of a fault read but not yet resolved (bit 63 set), else 0.
    pub pending: Vec<AtomicU64>,
    /// Per page: WP faults read from the trial's uffd.
    pub wp_faults: Vec<AtomicU64>,
    /// Per page: MISSING faults read from the trial's uffd.
    pub missing_faults: Vec<AtomicU64>,
    pub slots: Vec<Slot>,
    pub started_ns: u64,
    /// A round's length after `--stress-time`, in milliseconds.
    pub round_ms: AtomicU64,
    /// Set to end the current round.
    pub stop: AtomicBool,
    /// The uffd was closed (a `close` operation): no protection is left to model.
    pub closed: AtomicBool,
    pub faults_resolved: AtomicU64,
    pub messages: AtomicU64,
    pub pages_verified: AtomicU64,
    /// Ioctls retried because the kernel answered EAGAIN (an event was in flight).
    pub eagain: AtomicU64,
    /// UFFDIO_WRITEPROTECT calls retried on ENOENT (the range spanned a vma split).
    pub enoent: AtomicU64,
    /// Pages `migrate` found on its target node after move_pages(2).
    pub migrated: AtomicU64,
    /// Pages `migrate` asked for that the kernel did not move (busy, no memory, a hole).
    pub not_migrated: AtomicU64,
    /// `mremap` operations done (the area away and back).
    pub remaps: AtomicU64,
    /// Invariant violations found while threads run.
    pub problems: Mutex<Vec<Mismatch>>,
    /// Sabotages not used yet (meta-tests): each fires once.
    pub sabotage_armed: AtomicBool,
    /// The page a sabotage breaks (usize::MAX: not chosen yet).
    pub left_page: AtomicUsize,
    /// The step's tasks besides its operating threads (`tids`): handler threads and fork
    /// children. A kernel WARNING from a user task that is neither belongs to a trial
    /// running beside this one.
    pub tasks: Mutex<Vec<u64>>,
}

impl Shared {
    pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn elapsed_ms(&self) -> u64 {
        (monotonic_ns().saturating_sub(self.started_ns)) / 1_000_000
    }

    pub fn page_addr(&self, page: usize) -> usize {
        self.base + page * self.page_size
    }

    pub fn problem(&self, m: Mismatch) {
        Shared::lock(&self.problems).push(m);
    }

    /// Whether `page` is the one a lasting sabotage (lose_write, skip_protect) breaks: the
    /// first page asked about, for the rest of the step (so later operations do not mend it).
    pub fn sabotaged(&self, page: usize) -> bool {
        let _ =
            self.left_page
                .compare_exchange(usize::MAX, page, Ordering::SeqCst, Ordering::SeqCst);
        self.left_page.load(Ordering::SeqCst) == page
    }

    /// Takes the sabotage if it is still armed.
    pub fn fire_sabotage(&self) -> bool {
        self.sabotage_armed.swap(false, Ordering::SeqCst)
    }

    /// Data locks of `pages` (ascending), then protection locks.
    pub fn lock_data(&self, pages: std::ops::Range<usize>) -> Vec<MutexGuard<'_, u32>> {
        pages.map(|p| Shared::lock(&self.data[p])).collect()
    }

    pub fn lock_wp(&self, pages: std::ops::Range<usize>) -> Vec<MutexGuard<'_, bool>> {
        pages.map(|p| Shared::lock(&self.wp[p])).collect()
    }

    /// Every thread's last operations, oldest first, one thread per paragraph.
    pub fn schedule(&self) -> String {
        let mut out = String::new();
        for s in &self.slots {
            let busy = s.busy_since.load(Ordering::SeqCst);
            let now = if busy != 0 {
                format!(
                    ", now in `{}` for {} ms",
                    Shared::lock(&s.current),
                    monotonic_ns().saturating_sub(busy) / 1_000_000
                )
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{} (tid {}, {} ops{now}):",
                s.name,
                s.tid.load(Ordering::SeqCst),
                s.ops.load(Ordering::SeqCst)
            ));
            for r in Shared::lock(&s.recent).iter() {
                out.push_str(&format!(" [{} ms] {} → {};", r.at_ms, r.what, r.result));
            }
            out.push('\n');
        }
        out
    }

    /// Faults read and not resolved, e.g. `page 3 (WRITE|WP)`.
    pub fn pending_faults(&self) -> Vec<String> {
        self.pending
            .iter()
            .enumerate()
            .filter_map(|(p, f)| {
                let f = f.load(Ordering::SeqCst);
                (f != 0).then(|| {
                    format!(
                        "page {p} at 0x{:x} ({})",
                        self.page_addr(p),
                        crate::trial::protocol::Message::flag_names(f & !(1 << 63))
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_tell_sequence_page_and_index_apart() {
        assert_eq!(word(0, 5, 9), 0);
        assert_ne!(word(1, 0, 0), word(2, 0, 0));
        assert_ne!(word(1, 0, 0), word(1, 1, 0));
        assert_ne!(word(1, 0, 0), word(1, 0, 1));
        assert_eq!(
            explain(word(3, 1, 7)),
            "0x0000030001000007 (sequence 3 of page 1 word 7)"
        );
    }

    #[test]
    fn a_page_verifies_against_its_sequence_only() {
        let mut page = vec![0u64; 512];
        let addr = page.as_mut_ptr() as usize;
        unsafe {
            write_page(addr, 4096, 2, 9);
            assert_eq!(verify_page(addr, 4096, 2, 9), None);
            let (i, want, got) = verify_page(addr, 4096, 2, 8).expect("differs");
            assert_eq!((i, want, got), (0, word(8, 2, 0), word(9, 2, 0)));
        }
        page[100] = 0;
        assert_eq!(
            unsafe { verify_page(addr, 4096, 2, 9) },
            Some((100, word(9, 2, 100), 0))
        );
    }

    #[test]
    fn seeds_replay_and_differ_per_thread_and_round() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::new(thread_seed(7, 0, 0)).next())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(thread_seed(7, 0, 0), thread_seed(7, 1, 0));
        assert_ne!(thread_seed(7, 0, 0), thread_seed(7, 0, 1));
        assert_ne!(thread_seed(7, 0, 0), thread_seed(8, 0, 0));
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(5) < 5));
    }
}
