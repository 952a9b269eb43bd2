//! A short read-only pin of the pages: an O_DIRECT write of them to a scratch file on a disk
//! file system (the block layer pins the user pages, FOLL_PIN without FOLL_WRITE, for the
//! I/O), or process_vm_readv(2) of our own pages (pin_user_pages_remote, read-only). An
//! anonymous page still shared with a fork must be unshared (copied) before it can be
//! pinned, which is the path the unsharing regressions are about.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use super::memops::{mismatch, Verified};
use super::protocol::Mismatch;
use crate::case::model::PinVia;
use crate::kernel::memory::Area;
use crate::kernel::pagemap::Pagemap;

/// statfs f_type of file systems that copy O_DIRECT data instead of pinning pages.
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// Where the scratch file goes: the first directory on a file system that pins for O_DIRECT.
const SCRATCH_DIRS: &[&str] = &["/var/tmp", "/tmp"];

/// Pins `pages` read-only through O_DIRECT. With `unshares`, each page's frame must change
/// (the kernel copied a shared page before pinning it).
pub fn ro_pin(
    area: &Area,
    pagemap: &Pagemap,
    pages: &[usize],
    unshares: bool,
    via: PinVia,
) -> Result<Verified, Vec<Mismatch>> {
    if via == PinVia::ProcessVmReadv {
        if let Some(&p) = pages.first() {
            if crate::kernel::pin::read_pinned(area.page_addr(p), 0)
                == Err(nix::errno::Errno::ENOSYS)
            {
                return Ok(Verified::Declined(
                    "process_vm_readv(2) is ENOSYS: a kernel without CONFIG_CROSS_MEMORY_ATTACH"
                        .into(),
                ));
            }
        }
        let pin = |p: usize| {
            crate::kernel::pin::read_pinned(area.page_addr(p), area.page_size)
                .map_err(|e| format!("process_vm_readv of page {p}: {}", e.desc()))
        };
        return pin_each(area, pagemap, pages, unshares, pin);
    }
    let Some(dir) = SCRATCH_DIRS.iter().find(|d| pins_user_pages(d)) else {
        return Ok(Verified::Declined(format!(
            "no scratch directory on a disk file system ({} are tmpfs or missing): O_DIRECT there copies instead of pinning",
            SCRATCH_DIRS.join(", ")
        )));
    };
    let path = format!("{dir}/uffd-conform-ro-pin-{}", std::process::id());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path);
    let _ = std::fs::remove_file(&path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            return Ok(Verified::Declined(format!(
                "{dir} does not support O_DIRECT"
            )))
        }
        Err(e) => {
            return Err(vec![mismatch(
                format!("open {path} with O_DIRECT"),
                "success",
                e.to_string(),
            )])
        }
    };
    let pin = |p: usize| {
        // SAFETY: the page lies in our own mapping; O_DIRECT needs the page-aligned buffer
        // it is, and the kernel only reads it.
        let buf =
            unsafe { std::slice::from_raw_parts(area.page_addr(p) as *const u8, area.page_size) };
        file.write_all(buf)
            .map_err(|e| format!("O_DIRECT write of page {p}: {e}"))
    };
    pin_each(area, pagemap, pages, unshares, pin)
}

/// Pins each page with `pin`, then checks (with `unshares`) that its frame changed.
fn pin_each(
    area: &Area,
    pagemap: &Pagemap,
    pages: &[usize],
    unshares: bool,
    mut pin: impl FnMut(usize) -> Result<(), String>,
) -> Result<Verified, Vec<Mismatch>> {
    let mut observed = Vec::new();
    let mut mismatches = Vec::new();
    for &p in pages {
        let before = pagemap.frame(area.page_addr(p));
        if let Err(e) = pin(p) {
            mismatches.push(mismatch(format!("read-only pin of page {p}"), "success", e));
            continue;
        }
        let after = pagemap.frame(area.page_addr(p));
        let moved = before != after;
        observed.push(format!(
            "page {p} pinned read-only: PFN 0x{:x} -> 0x{:x}",
            before.unwrap_or(0),
            after.unwrap_or(0)
        ));
        if unshares && !moved {
            mismatches.push(mismatch(
                format!("page {p} after a read-only pin"),
                "a new frame (the shared page unshared)",
                format!("the same frame 0x{:x}", after.unwrap_or(0)),
            ));
        }
    }
    super::memops::checked(observed, mismatches).map(Verified::Done)
}

/// Whether O_DIRECT on `dir` goes through the block layer (which pins user pages).
fn pins_user_pages(dir: &str) -> bool {
    crate::kernel::mm::filesystem_type(dir)
        .is_some_and(|kind| kind != TMPFS_MAGIC && kind != RAMFS_MAGIC)
}
