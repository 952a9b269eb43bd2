//! The case format (v1): what a case file says. Loaded from YAML, passed to trial processes as
//! JSON, published as a JSON Schema (`uffd-conform schema`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::faults::Faults;
use super::pages::Pages;

/// A source for the rule a case checks. Every kind but `facts` is public: a reader without
/// this repository's authors' notes can open it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Ref {
    /// A mailing-list post by subject, author and date, as lore.kernel.org finds it, e.g.
    /// "Re: [PATCH] mm/uffd: UFFD_FEATURE_WP_ZEROPAGE (David Hildenbrand, 2023-03-02)".
    Thread(String),
    /// A kernel documentation file and section, e.g. "admin-guide/mm/userfaultfd.rst#write-protect-notifications".
    Doc(String),
    /// A kernel commit: id and subject.
    Commit(String),
    /// A kernel selftest scenario, e.g. "uffd-unit-tests: wp-fork".
    Selftest(String),
    /// A man page section, e.g. "ioctl_userfaultfd(2) UFFDIO_WRITEPROTECT".
    Man(String),
    /// A section of the authors' notes (shared/reference/uffd-facts.md), which readers do
    /// not have: only next to a public ref.
    Facts(String),
}

impl Ref {
    /// Whether a reader outside the project can open the source.
    pub fn is_public(&self) -> bool {
        !matches!(self, Ref::Facts(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegisterMode {
    Missing,
    Wp,
    Minor,
}

impl RegisterMode {
    pub fn bit(self) -> u64 {
        use crate::kernel::uapi::*;
        match self {
            RegisterMode::Missing => UFFDIO_REGISTER_MODE_MISSING,
            RegisterMode::Wp => UFFDIO_REGISTER_MODE_WP,
            RegisterMode::Minor => UFFDIO_REGISTER_MODE_MINOR,
        }
    }
}

pub fn mode_mask(modes: &[RegisterMode]) -> u64 {
    modes.iter().fold(0, |m, r| m | r.bit())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunAs {
    #[default]
    Runner,
    Nobody,
}

impl RunAs {
    pub fn is_runner(&self) -> bool {
        *self == RunAs::Runner
    }
}

/// A machine resource a case needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// A swap device (the runner provisions one when it runs as root).
    Swap,
    /// Root (CAP_SYS_ADMIN and friends), e.g. to read PFNs from pagemap.
    Root,
    /// vm.unprivileged_userfaultfd = 0 (the default): unprivileged users may only handle
    /// user-mode faults.
    UnprivilegedUserfaultfdOff,
    /// vm.unprivileged_userfaultfd = 1.
    UnprivilegedUserfaultfdOn,
}

/// How the fault handler resolves page faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolve {
    /// Write-protect faults: UFFDIO_WRITEPROTECT without MODE_WP on the page (which wakes).
    /// Missing faults: UFFDIO_COPY of a zero page. Minor faults: UFFDIO_CONTINUE.
    #[default]
    Unprotect,
    /// Missing faults: UFFDIO_COPY of a zero page (others as `unprotect`).
    Copy,
    /// Missing faults: UFFDIO_COPY of a zero page with UFFDIO_COPY_MODE_WP: the new pte is
    /// write-protected (others as `unprotect`).
    CopyWp,
    /// Missing faults: UFFDIO_ZEROPAGE (others as `unprotect`).
    Zeropage,
    /// Minor faults: UFFDIO_CONTINUE (others as `unprotect`).
    Continue,
    /// Minor faults: UFFDIO_CONTINUE with UFFDIO_CONTINUE_MODE_WP (others as `unprotect`).
    ContinueWp,
    /// Record the fault and leave it pending: the faulting thread stays blocked until a later
    /// step resolves it, or the trial's time limit ends it.
    Never,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectFailure {
    /// The 1-based step that must fail.
    pub step: usize,
    /// How it must fail; default `mismatch` (a check saw something else).
    #[serde(default)]
    pub kind: ExpectedFailKind,
    /// Strings the failure message must contain (e.g. the expected and observed values).
    #[serde(default)]
    pub contains: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedFailKind {
    #[default]
    Mismatch,
    /// The trial must be killed at its time limit while at the step.
    Timeout,
    /// The trial process must die of a signal while at the step.
    Signal,
}

/// A memory access of whole pages. Every access checks the messages it raised.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    pub pages: Pages,
    /// Writes: the data generation written (1-255; each 8-byte word encodes the generation,
    /// the page and the word's index; 0 writes zeroes). Default 1.
    /// Reads: the generation every page must hold (0 = all zeroes); omitted: contents unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<u8>,
    /// The messages the access must raise; default `none`.
    #[serde(default)]
    pub faults: Faults,
    /// Reads only: read through the unregistered alias mapping of the file (the page cache
    /// as another process sees it); no message may come.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alias: bool,
    /// Access from a new thread instead of the trial's main thread. The step waits until the
    /// thread finished or raised a message; a thread left blocked on a pending fault (see
    /// `resolve: never`) is waited for by a later `join` step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thread: bool,
    /// With `thread`: how long the step waits for the thread to finish (default 5000 ms). A
    /// thread still running after it is left to a later `join` or to the trial's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_ms: Option<u64>,
}

/// A one-byte write at an offset into a page (for EXACT_ADDRESS and sub-page writes).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Poke {
    pub page: usize,
    /// Byte offset into the page.
    pub offset: usize,
    /// The byte written (default 0xff).
    #[serde(default = "default_poke_value")]
    pub value: u8,
    /// Expected messages: with `wp`, one WRITE|WP fault at the page's address, or at the exact
    /// byte when the case requests `exact_address`.
    #[serde(default)]
    pub faults: Faults,
}

fn default_poke_value() -> u8 {
    0xff
}

/// madvise(2) over pages.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Madvise {
    pub pages: Pages,
    pub advice: Advice,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
    /// The call may fail with any errno (e.g. MADV_COLLAPSE, which may refuse); what matters
    /// is what the later steps see.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub may_fail: bool,
    /// Messages (events) the call must raise, e.g. `[{event: remove}]`; default none.
    #[serde(default)]
    pub events: Faults,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Advice {
    Dontneed,
    Remove,
    Pageout,
    Cold,
    Willneed,
    Free,
    Hugepage,
    Nohugepage,
    Collapse,
    Mergeable,
    Unmergeable,
    PopulateRead,
    PopulateWrite,
    /// MADV_HWPOISON: takes the pages' frames out of service for good (memory failure
    /// injection; CAP_SYS_ADMIN). Runs only on a disposable machine (the VM guest).
    Hwpoison,
}

impl Advice {
    pub fn raw(self) -> i32 {
        match self {
            Advice::Dontneed => libc::MADV_DONTNEED,
            Advice::Remove => libc::MADV_REMOVE,
            Advice::Pageout => libc::MADV_PAGEOUT,
            Advice::Cold => libc::MADV_COLD,
            Advice::Willneed => libc::MADV_WILLNEED,
            Advice::Free => libc::MADV_FREE,
            Advice::Hugepage => libc::MADV_HUGEPAGE,
            Advice::Nohugepage => libc::MADV_NOHUGEPAGE,
            Advice::Collapse => 25, // MADV_COLLAPSE (6.1)
            Advice::Mergeable => libc::MADV_MERGEABLE,
            Advice::Unmergeable => libc::MADV_UNMERGEABLE,
            Advice::PopulateRead => 22,  // MADV_POPULATE_READ (5.14)
            Advice::PopulateWrite => 23, // MADV_POPULATE_WRITE (5.14)
            Advice::Hwpoison => libc::MADV_HWPOISON,
        }
    }
}

/// MADV_PAGEOUT, verified: every page must end up out of memory (anon: pagemap bit 62;
/// shmem: not resident per mincore, as pagemap cannot show shmem swap). When the kernel
/// swapped nothing out (no swap device), the trial is skipped with the reason, not passed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwapOut {
    pub pages: Pages,
}

/// mprotect(2) over pages.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mprotect {
    pub pages: Pages,
    pub prot: Prot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Prot {
    None,
    Read,
    ReadWrite,
}

/// munmap(2) of pages.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Munmap {
    pub pages: Pages,
    /// e.g. `[{event: unmap}]` with UFFD_FEATURE_EVENT_UNMAP.
    #[serde(default)]
    pub events: Faults,
    /// Then map fresh private anonymous memory (not registered) at the same pages: a page
    /// table that outlived the unmap (its neighbours are still mapped) shows what it kept.
    #[serde(default)]
    pub then_map_anon: bool,
}

/// mremap(2) of the whole area to a new address (MREMAP_MAYMOVE|MREMAP_FIXED); later steps
/// address the pages at their new place.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mremap {
    /// e.g. `[{event: remap}]` with UFFD_FEATURE_EVENT_REMAP.
    #[serde(default)]
    pub events: Faults,
}

/// Writes pages through a second, unregistered MAP_SHARED mapping of the same file (fills the
/// page cache behind the registered mapping's back; shmem and hugetlb only). No message.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fill {
    pub pages: Pages,
    #[serde(default = "default_data")]
    pub data: u8,
}

fn default_data() -> u8 {
    1
}

/// A userfaultfd ioctl that installs pages: UFFDIO_COPY (from a page holding `data`),
/// UFFDIO_ZEROPAGE, UFFDIO_CONTINUE or UFFDIO_POISON.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Install {
    pub pages: Pages,
    /// UFFDIO_COPY only: the generation copied in (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<u8>,
    /// MODE_WP (COPY, CONTINUE): install write-protected ptes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wp: bool,
    /// MODE_DONTWAKE.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dontwake: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
}

/// UFFDIO_MOVE (anon): moves pages `from` to pages `to` of the area.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Move {
    pub from: Pages,
    pub to: Pages,
    /// UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_src_holes: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
}

/// Waits for every thread started by `thread: true` accesses to finish.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// Messages expected while waiting (faults the threads raise now).
    #[serde(default)]
    pub faults: Faults,
}

/// PAGEMAP_SCAN (6.7) over pages: categories as in include/uapi/linux/fs.h. The regions the
/// kernel returns are compared with `expect` (in pages, in order), and every returned
/// category is cross-checked with the pagemap entry of each page it covers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scan {
    pub pages: Pages,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<ScanFlag>,
    /// category_mask: every listed category must be set (or clear when also in `inverted`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Category>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inverted: Vec<Category>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anyof: Vec<Category>,
    /// return_mask; default: the union of categories and anyof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns: Option<Vec<Category>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u64>,
    /// vec_len passed to the kernel (default 64; 0 with WP_MATCHING only write-protects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vec_len: Option<u64>,
    /// The regions expected, in order; omitted: not compared (the cross-check still runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Vec<Region>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub pages: Pages,
    pub categories: Vec<Category>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanFlag {
    WpMatching,
    CheckWpasync,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Wpallowed,
    Written,
    File,
    Present,
    Swapped,
    Pfnzero,
    Huge,
    SoftDirty,
    Guard,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Wpallowed,
        Category::Written,
        Category::File,
        Category::Present,
        Category::Swapped,
        Category::Pfnzero,
        Category::Huge,
        Category::SoftDirty,
        Category::Guard,
    ];
    pub fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

pub fn category_mask(c: &[Category]) -> u64 {
    c.iter().fold(0, |m, c| m | c.bit())
}

/// A signal by name, e.g. `SIGBUS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct SignalName(pub String);

impl SignalName {
    pub fn signal(&self) -> nix::sys::signal::Signal {
        self.0.parse().expect("validated when loaded")
    }
}

impl TryFrom<String> for SignalName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse::<nix::sys::signal::Signal>()
            .map(|_| SignalName(s.clone()))
            .map_err(|_| format!("`{s}` is not a signal name (e.g. SIGBUS, SIGSEGV)"))
    }
}

impl From<SignalName> for String {
    fn from(s: SignalName) -> String {
        s.0
    }
}

/// An ioctl over a page range.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeOp {
    pub pages: Pages,
    /// The errno the ioctl must fail with (e.g. `EINVAL`); omitted: it must succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
    /// Raw mode bits sent instead of the operation's own (for invalid-use cases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u64>,
    /// Move the range's start this many bytes up, keeping its length (unaligned ranges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<usize>,
    /// `protect` only: run the ioctl while the trial's own memory cgroup is full, so that
    /// the kernel cannot allocate what it charges to the process (page tables for markers).
    /// Needs root and a memory cgroup controller; skipped otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memcg_full: bool,
}

/// UFFDIO_API on the trial's uffd again, or on a fresh one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Api {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<crate::kernel::features::Feature>,
    /// Raw feature bits added to `features` (e.g. bits no kernel defines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_features: Option<u64>,
    /// Use a newly opened uffd instead of the trial's (already handshaken) one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
}

/// Opens (and closes) a userfaultfd, to check who may.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Open {
    /// `syscall` (userfaultfd(2)) or `dev_node` (/dev/userfaultfd, 6.1).
    pub via: Via,
    /// UFFD_USER_MODE_ONLY.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_mode_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Syscall,
    DevNode,
}

/// A write into the pages by the kernel: read(2) from /dev/zero into them, so any fault is
/// taken in kernel mode (zeroes land on success).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelWrite {
    pub pages: Pages,
    /// The errno read(2) must fail with (e.g. EFAULT under UFFD_USER_MODE_ONLY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
    #[serde(default)]
    pub faults: Faults,
}

/// fallocate(FALLOC_FL_PUNCH_HOLE) of the pages in the file behind the memory.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PunchHole {
    pub pages: Pages,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
    /// e.g. `[{event: remove}]` with UFFD_FEATURE_EVENT_REMOVE.
    #[serde(default)]
    pub events: Faults,
}

/// Closes the trial's uffd (after stopping its handler) without unregistering.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseUffd {}

/// A one-byte write through /proc/self/mem (FOLL_FORCE), as a debugger would.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcMemWrite {
    pub page: usize,
    pub offset: usize,
    #[serde(default = "default_poke_value")]
    pub value: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
}

/// UFFDIO_REGISTER of a page range.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterOp {
    pub pages: Pages,
    pub modes: Vec<RegisterMode>,
    /// Ioctls the kernel must report for the range (UFFDIO_REGISTER's `ioctls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ioctls: Vec<IoctlName>,
    /// Ioctls the kernel must not report for the range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_ioctls: Vec<IoctlName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
    /// Raw mode bits sent instead of `modes` (for invalid-use cases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u64>,
    /// Move the range's start this many bytes up, keeping its length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<usize>,
}

/// A range ioctl as named in UFFDIO_REGISTER's `ioctls` mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IoctlName {
    Wake,
    Copy,
    Zeropage,
    Move,
    Writeprotect,
    Continue,
    Poison,
}

impl IoctlName {
    pub fn bit(self) -> u64 {
        use crate::kernel::uapi::*;
        1 << match self {
            IoctlName::Wake => _UFFDIO_WAKE,
            IoctlName::Copy => _UFFDIO_COPY,
            IoctlName::Zeropage => _UFFDIO_ZEROPAGE,
            IoctlName::Move => _UFFDIO_MOVE,
            IoctlName::Writeprotect => _UFFDIO_WRITEPROTECT,
            IoctlName::Continue => _UFFDIO_CONTINUE,
            IoctlName::Poison => _UFFDIO_POISON,
        }
    }
}

/// Expected /proc/self/pagemap bits of each page; omitted bits are not checked.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagemapExpect {
    pub pages: Pages,
    /// Bit 57: uffd-wp (pte, swap entry or pte marker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wp: Option<bool>,
    /// Bit 63: present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// Bit 62: swapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swapped: Option<bool>,
    /// Bit 61: file page or shared anon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<bool>,
    /// Bit 56: exclusively mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
    /// Backed by a huge page (a transparent huge page or hugetlb), from /proc/kpageflags of
    /// the page's PFN (needs root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huge: Option<bool>,
}

/// Pins the pages long-term (io_uring fixed buffers: FOLL_WRITE | FOLL_LONGTERM) until an
/// `unpin` step or the end of the trial. The pin takes write access, so pin before
/// protecting. When io_uring is unavailable (kernel.io_uring_disabled), the trial is skipped.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PinPages {
    pub pages: Pages,
}

/// Drops every pin taken by `pin` steps.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Unpin {}

/// MADV_COLLAPSE, verified: the pages are touched again and the first one must be backed by
/// a transparent huge page (kpageflags; needs root). When the kernel declines to collapse
/// (THP disabled, no huge page free), the trial is skipped with the reason.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Collapse {
    pub pages: Pages,
}

/// MADV_MERGEABLE, then waits (up to 5 s) until ksmd has merged the pages into one KSM page
/// (one PFN; needs root, and the pages must hold the same data, e.g. `data: 0`). When ksmd
/// does not merge them, the trial is skipped with the reason.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KsmMerge {
    pub pages: Pages,
}

/// Migrates the pages to other frames, verified by their PFNs changing (needs root; the pages
/// must be present). With two NUMA nodes: move_pages(2) to the other node. With one: memory
/// compaction, which moves only some pages; when a page stays, the trial is skipped with the
/// reason (`uffd-conform vm` boots a two-node guest where every migration happens).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Migrate {
    pub pages: Pages,
    /// The pages are in a transparent huge page that must be migrated whole (a PMD migration
    /// entry); when the kernel split it instead (no huge page free where it went), the
    /// trial is skipped: what it is about did not happen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole_thp: bool,
}

/// A short read-only pin: an O_DIRECT write of the pages to a scratch file on a disk file
/// system (/var/tmp), for which the block layer pins them without FOLL_WRITE. An anonymous
/// page still shared with a fork is unshared (copied) before it is pinned. With
/// `unshares: true` every page's frame must change (needs root). With `via: o_direct` where
/// the scratch file system copies instead of pinning (tmpfs), the trial is skipped with the
/// reason.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoPin {
    pub pages: Pages,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unshares: bool,
    /// How the pages are pinned (default `o_direct`).
    #[serde(default, skip_serializing_if = "PinVia::is_default")]
    pub via: PinVia,
}

/// The read-only pin of a `ro_pin` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PinVia {
    /// An O_DIRECT write of the pages to a scratch file on a disk file system: the block
    /// layer pins them through GUP-fast (skipped without such a file system).
    #[default]
    ODirect,
    /// process_vm_readv(2) of our own pages: pin_user_pages_remote, the slow GUP path; needs
    /// no file system, so it also runs in the VM guest.
    ProcessVmReadv,
}

impl PinVia {
    fn is_default(&self) -> bool {
        *self == PinVia::ODirect
    }
}

/// The VmFlags mnemonics /proc/self/smaps shows for every vma overlapping the pages
/// (Documentation/filesystems/proc.rst: `um` userfaultfd missing tracking, `uw` userfaultfd
/// wr-protect tracking, `ui` userfaultfd minor fault).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmFlagsExpect {
    pub pages: Pages,
    /// Mnemonics each vma must show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub has: Vec<String>,
    /// Mnemonics no vma may show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lacks: Vec<String>,
}

/// The process's page-table memory (VmPTE of /proc/self/status): `mark: true` records it;
/// `grown_at_most_kb` / `grown_at_least_kb` check how much it grew since the last mark (a
/// page table is 4 KiB and maps 512 pages).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageTables {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mark: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grown_at_most_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grown_at_least_kb: Option<u64>,
}

/// Pages the pages out, then turns the suite's swap off with swapoff(2), which must succeed
/// and brings every page back in through the kernel's unuse path, and on again. Needs root
/// and the suite's own swap (skipped when other swap is active); runs while no other trial
/// swaps.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Swapoff {
    pub pages: Pages,
}

/// An errno by its name, e.g. `EINVAL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct ErrnoName(pub String);

impl ErrnoName {
    pub fn errno(&self) -> nix::errno::Errno {
        errno_by_name(&self.0).expect("validated when loaded")
    }
}

pub fn errno_by_name(name: &str) -> Option<nix::errno::Errno> {
    (1..134)
        .map(nix::errno::Errno::from_raw)
        .find(|e| format!("{e:?}") == name)
}

impl TryFrom<String> for ErrnoName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match errno_by_name(&s) {
            Some(_) => Ok(ErrnoName(s)),
            None => Err(format!(
                "`{s}` is not an errno name (e.g. EINVAL, ENOENT, EPERM)"
            )),
        }
    }
}

impl From<ErrnoName> for String {
    fn from(e: ErrnoName) -> String {
        e.0
    }
}
