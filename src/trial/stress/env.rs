//! What a racing thread needs besides the shared model: the uffd, the memory type, the
//! registration, the features that change the rules, and the children it forked.

use std::sync::Arc;

use crate::case::stress::Sabotage;
use crate::kernel::memory::MemoryType;
use crate::kernel::uffd::Uffd;

/// What a thread needs besides the shared model.
pub struct Env {
    pub uffd: Arc<Uffd>,
    pub memory: MemoryType,
    pub modes: u64,
    pub wp_async: bool,
    pub event_fork: bool,
    /// UFFD_FEATURE_EVENT_REMAP: the registration follows an mremap.
    pub event_remap: bool,
    /// The NUMA nodes with memory, for `migrate`.
    pub nodes: Vec<i32>,
    pub sabotage: Option<Sabotage>,
    /// Forked children still running: (pid, the read end of their report pipe).
    pub children: Arc<std::sync::Mutex<Vec<(i32, std::os::fd::OwnedFd)>>>,
    /// The trial's /proc/self/pagemap, for checks done under a range's locks.
    pub pagemap: Arc<crate::kernel::pagemap::Pagemap>,
    /// Called by `close` to stop the handlers before the uffd goes.
    pub stop_handlers: Arc<dyn Fn() + Send + Sync>,
}

impl Env {
    /// The pagemap entry of `addr`, or None when pagemap cannot be read.
    pub fn pagemap_entry(&self, addr: usize) -> Option<crate::kernel::pagemap::Entry> {
        self.pagemap.entry(addr).ok()
    }
}
