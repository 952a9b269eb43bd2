//! A short read-only pin of the pages: an O_DIRECT write of them to a scratch file on a disk
//! file system. The block layer pins the user pages (FOLL_PIN, no FOLL_WRITE) for the I/O;
//! an anonymous page still shared with a fork must be unshared (copied) before it can be
//! pinned, which is the path the unsharing regressions are about.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use super::memops::{mismatch, Verified};
use super::protocol::Mismatch;
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
) -> Result<Verified, Vec<Mismatch>> {
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
    let mut observed = Vec::new();
    let mut mismatches = Vec::new();
    for &p in pages {
        let before = pagemap.frame(area.page_addr(p));
        // SAFETY: the page lies in our own mapping; O_DIRECT needs the page-aligned buffer
        // it is, and the kernel only reads it.
        let buf =
            unsafe { std::slice::from_raw_parts(area.page_addr(p) as *const u8, area.page_size) };
        if let Err(e) = file.write_all(buf) {
            mismatches.push(mismatch(
                format!("O_DIRECT write of page {p}"),
                "success",
                e.to_string(),
            ));
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
