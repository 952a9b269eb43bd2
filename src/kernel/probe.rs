//! What the running kernel and machine offer, probed once per run: uffd features and ioctls,
//! /dev/userfaultfd, huge pages, swap, privileges and the pagemap uffd-wp bit.

use serde::{Deserialize, Serialize};

use super::features::Feature;
use super::memory::{Area, MemoryType};
use super::pagemap::Pagemap;
use super::uapi::{UFFDIO_REGISTER_MODE_WP, UFFDIO_WRITEPROTECT_MODE_WP};
use super::uffd::{OpenVia, Uffd};

/// What the running kernel and machine offer, probed once per run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -v`.
    pub kernel_version: String,
    /// Features the kernel reports on a throwaway fd (UFFDIO_API with features = 0), or why
    /// userfaultfd could not be opened.
    pub uffd: Result<UffdCaps, String>,
    /// Whether /dev/userfaultfd can be opened, or why not.
    pub dev_userfaultfd: Result<(), String>,
    /// The default huge page size, in bytes (2 MiB when /proc/meminfo does not say).
    pub huge_page_size: usize,
    /// HugePages_Total from /proc/meminfo.
    pub huge_pages_total: u64,
    /// HugePages_Free from /proc/meminfo.
    pub huge_pages_free: u64,
    /// SwapTotal from /proc/meminfo, in KiB.
    pub swap_total_kib: u64,
    /// Whether the suite runs as root.
    pub is_root: bool,
    /// `vm.unprivileged_userfaultfd`, when readable.
    pub unprivileged_userfaultfd: Option<u32>,
    /// Whether pagemap shows bit 57 on a write-protected anon page (5.14+); None: not probed.
    pub pagemap_wp_bit: Option<bool>,
    /// PAGEMAP_SCAN (6.7) answers on /proc/self/pagemap: no feature bit tells.
    #[serde(default)]
    pub pagemap_scan: bool,
    /// UFFDIO_CONTINUE accepts UFFDIO_CONTINUE_MODE_WP (6.4): no feature bit tells.
    #[serde(default)]
    pub continue_mode_wp: bool,
}

/// What UFFDIO_API returned on a throwaway userfaultfd.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UffdCaps {
    /// The `features` mask the kernel returned.
    pub features: u64,
    /// The `ioctls` mask the kernel returned.
    pub ioctls: u64,
    /// Opened with UFFD_USER_MODE_ONLY because the full mode was refused.
    pub user_mode_only: bool,
}

impl Probe {
    /// Whether the kernel offers feature `f`.
    pub fn has_feature(&self, f: Feature) -> bool {
        matches!(&self.uffd, Ok(c) if c.features & f.bit() != 0)
    }

    /// Probes the kernel and the machine.
    pub fn run() -> Probe {
        let uname = nix::sys::utsname::uname().ok();
        let (kernel_release, kernel_version) = uname
            .map(|u| {
                (
                    u.release().to_string_lossy().into_owned(),
                    u.version().to_string_lossy().into_owned(),
                )
            })
            .unwrap_or_default();
        let meminfo = Meminfo::read();
        let uffd = probe_uffd();
        let dev_userfaultfd = match Uffd::open(OpenVia::DevNode, false) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("/dev/userfaultfd: {}", e.desc())),
        };
        let huge_page_size = (meminfo.field("Hugepagesize:") * 1024) as usize;
        let pagemap_wp_bit = uffd
            .as_ref()
            .ok()
            .and_then(|caps| probe_pagemap_wp_bit(caps).ok());
        let continue_mode_wp = uffd
            .as_ref()
            .ok()
            .is_some_and(|caps| probe_continue_mode_wp(caps).unwrap_or(false));
        Probe {
            kernel_release,
            kernel_version,
            uffd,
            dev_userfaultfd,
            huge_page_size: if huge_page_size == 0 {
                2 << 20
            } else {
                huge_page_size
            },
            huge_pages_total: meminfo.field("HugePages_Total:"),
            huge_pages_free: meminfo.field("HugePages_Free:"),
            swap_total_kib: meminfo.field("SwapTotal:"),
            is_root: nix::unistd::geteuid().is_root(),
            unprivileged_userfaultfd: std::fs::read_to_string(
                "/proc/sys/vm/unprivileged_userfaultfd",
            )
            .ok()
            .and_then(|s| s.trim().parse().ok()),
            pagemap_wp_bit,
            pagemap_scan: probe_pagemap_scan(),
            continue_mode_wp,
        }
    }

    /// Re-reads the huge page and swap counters (after provisioning changed them).
    pub fn refresh_pools(&mut self) {
        let meminfo = Meminfo::read();
        self.huge_pages_total = meminfo.field("HugePages_Total:");
        self.huge_pages_free = meminfo.field("HugePages_Free:");
        self.swap_total_kib = meminfo.field("SwapTotal:");
    }
}

/// /proc/meminfo, read once.
pub struct Meminfo(String);

impl Meminfo {
    /// Reads /proc/meminfo (empty when unreadable).
    pub fn read() -> Meminfo {
        Meminfo(std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
    }

    /// The number after `name` (kB for sizes), or 0.
    pub fn field(&self, name: &str) -> u64 {
        self.0
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }
}

fn probe_uffd() -> Result<UffdCaps, String> {
    let (uffd, user_mode_only) = match Uffd::open(OpenVia::Syscall, false) {
        Ok(u) => (u, false),
        Err(full) => match Uffd::open(OpenVia::Syscall, true) {
            Ok(u) => (u, true),
            Err(_) => {
                return Err(format!(
                    "userfaultfd(2) failed: {} (run as root, or set vm.unprivileged_userfaultfd=1)",
                    full.desc()
                ))
            }
        },
    };
    let api = uffd
        .api(0)
        .map_err(|e| format!("UFFDIO_API failed: {}", e.desc()))?;
    Ok(UffdCaps {
        features: api.features,
        ioctls: api.ioctls,
        user_mode_only,
    })
}

/// Protects one populated anon page and reads its pagemap entry.
fn probe_pagemap_wp_bit(caps: &UffdCaps) -> Result<bool, String> {
    if caps.features & Feature::PagefaultFlagWp.bit() == 0 {
        return Ok(false);
    }
    let area = Area::map(MemoryType::Anon, 1, 0).map_err(|e| e.to_string())?;
    // SAFETY: the area is mapped read-write and one page long.
    unsafe { std::ptr::write_volatile(area.base() as *mut u8, 1) };
    let uffd = Uffd::open(OpenVia::Syscall, caps.user_mode_only).map_err(|e| e.to_string())?;
    uffd.api(Feature::PagefaultFlagWp.bit())
        .map_err(|e| e.to_string())?;
    uffd.register(area.base(), area.len(), UFFDIO_REGISTER_MODE_WP)
        .map_err(|e| e.to_string())?;
    uffd.writeprotect(area.base(), area.len(), UFFDIO_WRITEPROTECT_MODE_WP)
        .map_err(|e| e.to_string())?;
    let entry = Pagemap::open_self()
        .map_err(|e| e.to_string())?
        .entry(area.base())
        .map_err(|e| e.to_string())?;
    Ok(entry.uffd_wp())
}

/// Whether PAGEMAP_SCAN exists: an empty scan of one page of our own stack answers
/// anything but ENOTTY.
fn probe_pagemap_scan() -> bool {
    let Ok(pagemap) = Pagemap::open_self() else {
        return false;
    };
    let page = super::pagemap::base_page_size();
    let here = &page as *const usize as usize & !(page - 1);
    let arg = super::uapi::PmScanArg {
        start: here as u64,
        end: (here + page) as u64,
        return_mask: super::uapi::PAGE_IS_PRESENT,
        ..Default::default()
    };
    !matches!(pagemap.scan(arg, 1), Err(nix::errno::Errno::ENOTTY))
}

/// Whether UFFDIO_CONTINUE takes MODE_WP: a page in a memfd's page cache, mapped MINOR|WP,
/// continued with MODE_WP (EINVAL on kernels without the mode).
fn probe_continue_mode_wp(caps: &UffdCaps) -> Result<bool, String> {
    let need = Feature::MinorShmem.bit()
        | Feature::WpHugetlbfsShmem.bit()
        | Feature::PagefaultFlagWp.bit();
    if caps.features & need != need {
        return Ok(false);
    }
    let mut area = Area::map(MemoryType::Shmem, 1, 0).map_err(|e| e.to_string())?;
    let alias = area.alias().map_err(|e| e.to_string())?;
    // SAFETY: the alias maps the same one-page file, read-write; this fills the page cache.
    unsafe { std::ptr::write_volatile(alias as *mut u8, 1) };
    let uffd = Uffd::open(OpenVia::Syscall, caps.user_mode_only).map_err(|e| e.to_string())?;
    uffd.api(need).map_err(|e| e.to_string())?;
    let modes = super::uapi::UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP;
    uffd.register(area.base(), area.len(), modes)
        .map_err(|e| e.to_string())?;
    match uffd.continue_(
        area.base(),
        area.len(),
        super::uapi::UFFDIO_CONTINUE_MODE_WP,
    ) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EINVAL) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}
