//! /proc/self/pagemap: one u64 per virtual page (Documentation/admin-guide/mm/pagemap.rst),
//! and the PAGEMAP_SCAN ioctl on the same file.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::uapi::{self, PageRegion, PmScanArg};

pub const PM_PFN_MASK: u64 = (1 << 55) - 1;
pub const PM_SOFT_DIRTY: u64 = 1 << 55;
pub const PM_MMAP_EXCLUSIVE: u64 = 1 << 56;
pub const PM_UFFD_WP: u64 = 1 << 57;
pub const PM_GUARD_REGION: u64 = 1 << 58;
pub const PM_FILE: u64 = 1 << 61;
pub const PM_SWAP: u64 = 1 << 62;
pub const PM_PRESENT: u64 = 1 << 63;

/// The base page size pagemap is indexed by.
pub fn base_page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// One raw pagemap entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry(pub u64);

impl Entry {
    pub fn present(self) -> bool {
        self.0 & PM_PRESENT != 0
    }
    pub fn swapped(self) -> bool {
        self.0 & PM_SWAP != 0
    }
    pub fn file(self) -> bool {
        self.0 & PM_FILE != 0
    }
    pub fn uffd_wp(self) -> bool {
        self.0 & PM_UFFD_WP != 0
    }
    pub fn exclusive(self) -> bool {
        self.0 & PM_MMAP_EXCLUSIVE != 0
    }
    #[allow(dead_code)] // Read by no check yet; the bit is part of the entry.
    pub fn soft_dirty(self) -> bool {
        self.0 & PM_SOFT_DIRTY != 0
    }
    /// The PFN of a present page; None when not present or hidden (the kernel reports 0 to
    /// readers without CAP_SYS_ADMIN).
    pub fn pfn(self) -> Option<u64> {
        Some(self.0 & PM_PFN_MASK).filter(|&f| self.present() && f != 0)
    }

    /// The named flag bits that are set, for reports: e.g. `present|wp|exclusive`.
    pub fn describe(self) -> String {
        let names = [
            (PM_PRESENT, "present"),
            (PM_SWAP, "swapped"),
            (PM_FILE, "file"),
            (PM_GUARD_REGION, "guard"),
            (PM_UFFD_WP, "wp"),
            (PM_MMAP_EXCLUSIVE, "exclusive"),
            (PM_SOFT_DIRTY, "soft-dirty"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(b, _)| self.0 & b != 0)
            .map(|(_, n)| *n)
            .collect();
        if set.is_empty() {
            format!("none (0x{:016x})", self.0)
        } else {
            format!("{} (0x{:016x})", set.join("|"), self.0)
        }
    }
}

/// Whether the page frame is (part of) a huge page, from /proc/kpageflags (root):
/// KPF_HUGE (17, hugetlb) or KPF_THP (22).
pub fn frame_is_huge(pfn: u64) -> std::io::Result<bool> {
    let mut buf = [0u8; 8];
    File::open("/proc/kpageflags")?.read_exact_at(&mut buf, pfn * 8)?;
    let flags = u64::from_ne_bytes(buf);
    Ok(flags & (1 << 17 | 1 << 22) != 0)
}

/// An open /proc/self/pagemap.
pub struct Pagemap {
    file: File,
}

impl Pagemap {
    pub fn open_self() -> std::io::Result<Pagemap> {
        Ok(Pagemap {
            file: File::open("/proc/self/pagemap")?,
        })
    }

    /// The entry of the base page holding `addr`.
    pub fn entry(&self, addr: usize) -> std::io::Result<Entry> {
        let mut buf = [0u8; 8];
        let offset = (addr / base_page_size()) as u64 * 8;
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(Entry(u64::from_ne_bytes(buf)))
    }

    /// The frame (PFN) of the page holding `addr`; None when not present, hidden or unread.
    pub fn frame(&self, addr: usize) -> Option<u64> {
        self.entry(addr).ok().and_then(Entry::pfn)
    }

    /// PAGEMAP_SCAN over `[start, end)`; returns the regions found and `walk_end`.
    pub fn scan(
        &self,
        mut arg: PmScanArg,
        capacity: usize,
    ) -> Result<(Vec<PageRegion>, u64), Errno> {
        let mut vec = vec![PageRegion::default(); capacity];
        arg.size = std::mem::size_of::<PmScanArg>() as u64;
        arg.vec = vec.as_mut_ptr() as u64;
        arg.vec_len = capacity as u64;
        // SAFETY: `arg` points at `vec`, which holds `vec_len` writable page_region entries.
        let n = unsafe { uapi::pagemap_scan(self.file.as_raw_fd(), &mut arg) }?;
        vec.truncate(n as usize);
        Ok((vec, arg.walk_end))
    }
}
