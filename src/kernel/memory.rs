//! The five memory backends a case runs on, and the mapped area a trial works in.

use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A kind of memory, as named in cases and trial names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryType {
    /// Private anonymous memory (mmap MAP_PRIVATE|MAP_ANONYMOUS).
    Anon,
    /// A memfd mapped MAP_SHARED.
    Shmem,
    /// A memfd mapped MAP_PRIVATE (reads map the page cache, writes copy on write).
    ShmemPrivate,
    /// A hugetlb memfd (MFD_HUGETLB, default huge page size) mapped MAP_SHARED.
    Hugetlb,
    /// A hugetlb memfd mapped MAP_PRIVATE.
    HugetlbPrivate,
    /// A file on ramfs mapped MAP_SHARED: page-cache memory that is neither anonymous, shmem
    /// nor hugetlb, which only UFFD_FEATURE_WP_ASYNC may register (for WP alone). Only cases
    /// that name it run on it (it is not in the default list). The ramfs is mounted in the
    /// trial process's own mount namespace, so it needs root and leaves nothing behind.
    Ramfs,
}

impl MemoryType {
    pub const ALL: [MemoryType; 5] = [
        MemoryType::Anon,
        MemoryType::Shmem,
        MemoryType::ShmemPrivate,
        MemoryType::Hugetlb,
        MemoryType::HugetlbPrivate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MemoryType::Anon => "anon",
            MemoryType::Shmem => "shmem",
            MemoryType::ShmemPrivate => "shmem-private",
            MemoryType::Hugetlb => "hugetlb",
            MemoryType::HugetlbPrivate => "hugetlb-private",
            MemoryType::Ramfs => "ramfs",
        }
    }

    pub fn is_hugetlb(self) -> bool {
        matches!(self, MemoryType::Hugetlb | MemoryType::HugetlbPrivate)
    }

    pub fn is_shmem(self) -> bool {
        matches!(self, MemoryType::Shmem | MemoryType::ShmemPrivate)
    }

    /// Backed by a file (a memfd, or the ramfs file), so it has a page cache and can be mapped
    /// twice.
    pub fn has_file(self) -> bool {
        self != MemoryType::Anon
    }

    pub fn is_shared(self) -> bool {
        matches!(
            self,
            MemoryType::Shmem | MemoryType::Hugetlb | MemoryType::Ramfs
        )
    }
}

impl std::fmt::Display for MemoryType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The PMD size on x86-64: the size of a transparent huge page.
pub const PMD_SIZE: usize = 2 << 20;

/// The PUD size on x86-64: what one PMD page table maps.
pub const PUD_SIZE: usize = 1 << 30;

/// Reserves `len` bytes of address space aligned to `align` (PROT_NONE), for MAP_FIXED.
pub fn reserve(len: usize, align: usize) -> Result<usize, Errno> {
    let total = len + align;
    // SAFETY: a fresh PROT_NONE reservation; trimmed below to exactly `len` bytes.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    let start = raw as usize;
    let aligned = start.next_multiple_of(align);
    // SAFETY: unmaps the slack of our own reservation on both sides.
    unsafe {
        if aligned > start {
            libc::munmap(raw, aligned - start);
        }
        let end = aligned + len;
        if start + total > end {
            libc::munmap(end as *mut libc::c_void, start + total - end);
        }
    }
    Ok(aligned)
}

/// A mapping of `pages` pages of one memory type. Unmapped on drop.
pub struct Area {
    pub memory: MemoryType,
    pub page_size: usize,
    pub pages: usize,
    base: NonNull<libc::c_void>,
    /// The file behind the area (a memfd, or the ramfs file), if any.
    file: Option<std::fs::File>,
    /// A second, shared mapping of the same file (for filling the page cache behind the
    /// registered mapping's back); made on demand.
    alias: Option<(NonNull<libc::c_void>, usize)>,
}

fn errno_of(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Area {
    /// Maps a new area. `huge_page_size` is the default hugetlb page size (for hugetlb types).
    pub fn map(memory: MemoryType, pages: usize, huge_page_size: usize) -> Result<Area, Errno> {
        Area::map_with(memory, pages, huge_page_size, false, false, None)
    }

    /// Maps a new area; with `thp`, aligned to the PMD size and open to transparent huge pages;
    /// with `noreserve`, MAP_NORESERVE (hugetlb: no pool pages reserved up front); with
    /// `across_pud: Some(n)`, placed so that a 1 GiB (PUD) boundary falls after its first `n`
    /// pages.
    pub fn map_with(
        memory: MemoryType,
        pages: usize,
        huge_page_size: usize,
        thp: bool,
        noreserve: bool,
        across_pud: Option<usize>,
    ) -> Result<Area, Errno> {
        let page_size = if memory.is_hugetlb() {
            huge_page_size
        } else {
            super::pagemap::base_page_size()
        };
        let len = pages * page_size;
        let length = std::num::NonZeroUsize::new(len).ok_or(Errno::EINVAL)?;
        let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        // hugetlb areas of 1 GiB or more start on a PUD boundary, where the kernel may share
        // PMD page tables between mappings (what the PMD-sharing cases are about).
        let align = if thp {
            Some(PMD_SIZE)
        } else if memory.is_hugetlb() && len >= PUD_SIZE {
            Some(PUD_SIZE)
        } else {
            None
        };
        let fixed = match across_pud {
            // A PUD-aligned reservation with room for the area on both sides of its end.
            Some(n) => Some(reserve(PUD_SIZE + len, PUD_SIZE)? + PUD_SIZE - n * page_size),
            None => align.map(|a| reserve(len, a)).transpose()?,
        };
        let at = fixed.map(|a| std::num::NonZeroUsize::new(a).expect("mmap never returns 0"));
        let fixed_flag = if fixed.is_some() {
            MapFlags::MAP_FIXED
        } else {
            MapFlags::empty()
        } | if noreserve {
            MapFlags::MAP_NORESERVE
        } else {
            MapFlags::empty()
        };
        let (base, file) = if memory == MemoryType::Anon {
            // SAFETY: a fresh anonymous mapping (over our own reservation, with thp).
            let base =
                unsafe { mmap_anonymous(at, length, prot, MapFlags::MAP_PRIVATE | fixed_flag) }?;
            (base, None)
        } else {
            let mut opts = memfd::MemfdOptions::default().close_on_exec(true);
            if memory.is_hugetlb() {
                opts = opts.hugetlb(
                    Some(memfd::HugetlbSize::Huge2MB).filter(|_| huge_page_size == 2 << 20),
                );
            }
            let fd = match memory {
                MemoryType::Ramfs => super::mount::ramfs_file()?,
                _ => opts
                    .create("uffd-conform")
                    .map_err(|e| match e {
                        memfd::Error::Create(io) => errno_of(io),
                        memfd::Error::AddSeals(io) | memfd::Error::GetSeals(io) => errno_of(io),
                    })?
                    .into_file(),
            };
            fd.set_len(len as u64).map_err(errno_of)?;
            let flags = if memory.is_shared() {
                MapFlags::MAP_SHARED
            } else {
                MapFlags::MAP_PRIVATE
            };
            // SAFETY: a fresh mapping of a file only this trial uses (over our reservation).
            let base = unsafe { mmap(at, length, prot, flags | fixed_flag, fd.as_fd(), 0) }?;
            (base, Some(fd))
        };
        let area = Area {
            memory,
            page_size,
            pages,
            base,
            file,
            alias: None,
        };
        if thp {
            // shmem_enabled=advise and enabled=madvise honour only areas that asked.
            // SAFETY: advice on our own mapping.
            unsafe { libc::madvise(area.base.as_ptr(), len, libc::MADV_HUGEPAGE) };
        }
        if !memory.is_hugetlb() && !thp {
            // Keep base pages base pages unless a case asks for THP: a kernel configured
            // THP=always must not turn page-level expectations into huge-page ones.
            // SAFETY: advice on our own mapping.
            unsafe { libc::madvise(area.base.as_ptr(), len, libc::MADV_NOHUGEPAGE) };
        }
        Ok(area)
    }

    pub fn len(&self) -> usize {
        self.pages * self.page_size
    }

    pub fn base(&self) -> usize {
        self.base.as_ptr() as usize
    }

    pub fn page_addr(&self, page: usize) -> usize {
        self.base() + page * self.page_size
    }

    /// The file behind the area (a memfd, or the ramfs file), if any.
    pub fn memfd_raw(&self) -> Option<i32> {
        self.file.as_ref().map(|f| f.as_raw_fd())
    }

    /// A second MAP_SHARED mapping of the area's file, not registered with userfaultfd.
    pub fn alias(&mut self) -> Result<usize, Errno> {
        if let Some((a, _)) = self.alias {
            return Ok(a.as_ptr() as usize);
        }
        let fd = self.file.as_ref().ok_or(Errno::EINVAL)?;
        let length = std::num::NonZeroUsize::new(self.len()).ok_or(Errno::EINVAL)?;
        // SAFETY: a fresh shared mapping of our own memfd.
        let a = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd.as_fd(),
                0,
            )
        }?;
        self.alias = Some((a, self.len()));
        Ok(a.as_ptr() as usize)
    }

    /// Moves the whole area to a fresh address with mremap(MREMAP_MAYMOVE|MREMAP_FIXED);
    /// returns the old and new base.
    pub fn move_to_fresh(&mut self) -> Result<(usize, usize), Errno> {
        let align = if self.memory.is_hugetlb() {
            self.page_size
        } else {
            PMD_SIZE
        };
        let target = reserve(self.len(), align)?;
        let old = self.base();
        // Moves our own mapping over our own reservation.
        if let Err(e) = super::mm::mremap_fixed(old, self.len(), target) {
            // SAFETY: drops the unused reservation.
            unsafe { libc::munmap(target as *mut libc::c_void, self.len()) };
            return Err(e);
        }
        self.base = NonNull::new(target as *mut libc::c_void).ok_or(Errno::EFAULT)?;
        Ok((old, self.base()))
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: we own these mappings; nothing borrows them past the area's life.
        unsafe {
            if self.pages > 0 {
                let _ = munmap(self.base, self.len());
            }
            if let Some((a, len)) = self.alias {
                let _ = munmap(a, len);
            }
        }
    }
}
