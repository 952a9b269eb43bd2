//! The `stress` step: several threads of one trial race operations over the area for a bounded
//! time while handler threads resolve faults, and invariants are checked during the run and at
//! every quiescent point (all threads joined). See docs/case-format.md, "Stress".

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Threads racing operations over the area, in rounds; after each round every thread is
/// joined and the invariants are checked (contents word by word, pagemap bit 57 against the
/// protection the threads last set, a write to each protected page faults, PAGEMAP_SCAN's
/// written set with `wp_async`, every message well-formed, no kernel WARNING/BUG).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stress {
    /// How long each round runs, in milliseconds, before `--stress-time` scales it (default
    /// 150). A thread also stops after `max_ops` operations.
    #[serde(default = "default_round_ms")]
    pub round_ms: u64,
    /// Rounds, each ending in a quiescent point where the invariants are checked (default 3).
    #[serde(default = "default_rounds")]
    pub rounds: u32,
    /// At most this many operations per thread and round (default: no limit but the time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ops: Option<u64>,
    /// The fault-handler threads that serve the trial's uffd during the run.
    #[serde(default)]
    pub handler: StressHandler,
    /// The racing threads.
    pub threads: Vec<Worker>,
    /// A thread that makes no progress for this long (in one operation, e.g. a write blocked
    /// on a fault nobody resolves) fails the trial with every thread's last operations
    /// (default 3000 ms, not scaled).
    #[serde(default = "default_stall_ms")]
    pub stall_ms: u64,
    /// Every page starts write-protected (UFFDIO_WRITEPROTECT of the area after the first
    /// write) rather than unprotected (default false). Without writers, no page is then ever
    /// writable again on memory whose unprotect leaves ptes read-only (hugetlb).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start_protected: bool,
    /// Meta-tests only: break one invariant on purpose, to show its check fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sabotage: Option<Sabotage>,
}

fn default_round_ms() -> u64 {
    150
}

fn default_rounds() -> u32 {
    3
}

fn default_stall_ms() -> u64 {
    3000
}

/// How faults are served while a stress step runs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StressHandler {
    /// Handler threads (default 1). With more than one, they compete for the messages.
    #[serde(default = "default_handler_threads")]
    pub threads: u32,
    /// `poll`: poll(2) then a non-blocking read (default); `read`: a blocking read(2) per
    /// thread, as uffd-stress's read mode does.
    #[serde(default)]
    pub wait: HandlerWait,
}

impl Default for StressHandler {
    fn default() -> Self {
        StressHandler {
            threads: 1,
            wait: HandlerWait::Poll,
        }
    }
}

fn default_handler_threads() -> u32 {
    1
}

/// How a handler thread waits for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HandlerWait {
    /// poll(2), then a non-blocking read(2).
    #[default]
    Poll,
    /// A blocking read(2).
    Read,
}

/// One kind of racing thread: `count` threads, each choosing among `ops` with a seeded PRNG.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Worker {
    /// The operations the thread chooses among, with equal weight (list one twice to double
    /// its weight).
    pub ops: Vec<StressOp>,
    /// How many such threads (default 1).
    #[serde(default = "default_count")]
    pub count: u32,
    /// The longest run of pages a range operation covers (default 4); each range starts at a
    /// random page.
    #[serde(default = "default_span")]
    pub span: usize,
    /// Ranges start at a multiple of this many pages and cover a multiple of it (default 1):
    /// 512 makes every range of a 4 KiB-page area whole transparent huge pages (a PMD is
    /// protected, migrated or mprotected whole, not split).
    #[serde(default = "default_align")]
    pub align: usize,
    /// Do `ops` in their order, over and over, rather than choosing at random (default
    /// false): a sequence that re-creates, each time round, the state a race needs (e.g.
    /// unprotect, collapse, write, protect: an exclusive, protected, PMD-mapped THP).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cycle: bool,
    /// With `cycle`: each op's own `span` and `align`, in the order of `ops` (default: the
    /// worker's for every op), e.g. whole THPs for most and part of one for the op that
    /// splits it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<OpRange>,
}

/// The range of one op of a `cycle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpRange {
    /// The longest run of pages the op covers (default 4).
    #[serde(default = "default_span")]
    pub span: usize,
    /// Ranges start at a multiple of this many pages and cover a multiple of it (default 1).
    #[serde(default = "default_align")]
    pub align: usize,
}

impl Worker {
    /// The span and align of the `i`th op (of a cycle; a random worker has one range).
    pub fn range_of(&self, i: usize) -> (usize, usize) {
        self.ranges
            .get(i)
            .map_or((self.span, self.align), |r| (r.span, r.align))
    }
}

fn default_align() -> usize {
    1
}

fn default_count() -> u32 {
    1
}

fn default_span() -> usize {
    4
}

/// An operation a stress thread performs on a page or a run of pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StressOp {
    /// Writes a page whole with its next sequence number.
    Write,
    /// Reads a page and verifies it word by word against the last write.
    Read,
    /// UFFDIO_WRITEPROTECT(MODE_WP) over a range (EAGAIN retried).
    Protect,
    /// UFFDIO_WRITEPROTECT(0) over a range (EAGAIN retried).
    Unprotect,
    /// MADV_DONTNEED over a range.
    Dontneed,
    /// MADV_PAGEOUT over a range (pages come back by the next access).
    Pageout,
    /// mprotect(PROT_READ) then mprotect(PROT_READ|PROT_WRITE) over a range.
    Mprotect,
    /// fork(2); the child checks every page's contents and pagemap bit 57 against the state at
    /// the fork (with `event_fork` it keeps the protection; without, it has none).
    Fork,
    /// UFFDIO_COPY of a new sequence number into a page (EEXIST when it is populated).
    Copy,
    /// UFFDIO_UNREGISTER then UFFDIO_REGISTER of a range (unregistering drops protection).
    Reregister,
    /// MADV_COLLAPSE over the transparent huge page holding a random page (errors ignored).
    Collapse,
    /// Once per trial, at a random time in the first round: stops the handlers and closes the
    /// uffd while other threads may be blocked on faults (they must all complete). uffd
    /// ioctls racing it may fail once it is closed.
    Close,
    /// move_pages(2) of a range to another NUMA node (the node after the first page's own).
    /// Migration changes neither contents nor protection, so it takes no model lock and races
    /// everything; pages the kernel does not move (busy, no memory, not present) are counted,
    /// not failures. Needs two NUMA nodes with memory (the trial skips otherwise) and root.
    Migrate,
    /// Reads pagemap bit 57 of a range under its protection locks and compares it with the
    /// model, mid-run (a racing migration leaves migration entries for it to read).
    Pagemap,
    /// PAGEMAP_SCAN of a range under its protection locks, with `wp_async` only: the WRITTEN
    /// set must be the pages not protected since written.
    Scan,
    /// As `scan`, with PM_SCAN_WP_MATCHING|PM_SCAN_CHECK_WPASYNC: the written pages are
    /// protected too, so the whole range is protected after it. (Racing `migrate` and a writer
    /// it meets a kernel bug in 6.12: a writable migration entry protected this way comes back
    /// writable and unprotected; docs/mutation/README.md, "Session 3".)
    ScanProtect,
    /// With every lock held: mremap(2) of the whole area to a fresh address and back. Without
    /// UFFD_FEATURE_EVENT_REMAP the moved area is no longer registered and loses its
    /// protection; it is registered again, unprotected.
    Mremap,
}

/// A deliberate break of one invariant (meta-tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sabotage {
    /// One write is recorded but not done: the content check must find the stale page.
    LoseWrite,
    /// The handler leaves faults on one page unresolved: the stall check must report it.
    LeaveFault,
    /// The message check is told the area starts one page later: a fault on page 0 is then
    /// outside it.
    ShiftArea,
    /// One protect is recorded but not done: pagemap bit 57 and the write check must differ.
    SkipProtect,
    /// With `wp_async`: one page is recorded as written although nothing wrote it.
    ForgeWritten,
}
