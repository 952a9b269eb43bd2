//! Swap devices: swapon(2), swapoff(2), the version-1 header mkswap would write, and which
//! active swap is the suite's own (by the label in its header).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Writes a version-1 swap header (what mkswap writes), so no util-linux is needed (the VM
/// guest has none). The label (at most 16 bytes) marks devices the suite may sweep up.
pub fn write_swap_header(path: &Path, bytes: u64, label: &str) -> Result<(), String> {
    let page = super::pagemap::base_page_size();
    let mut header = vec![0u8; page];
    let last_page = (bytes / page as u64 - 1) as u32;
    header[1024..1028].copy_from_slice(&1u32.to_ne_bytes()); // version
    header[1028..1032].copy_from_slice(&last_page.to_ne_bytes());
    let label = &label.as_bytes()[..label.len().min(16)];
    header[SWAP_LABEL_AT..SWAP_LABEL_AT + label.len()].copy_from_slice(label);
    header[page - 10..].copy_from_slice(b"SWAPSPACE2");
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all_at(&header, 0)
        .map_err(|e| format!("write swap header to {}: {e}", path.display()))?;
    f.flush().map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())
}

/// Where a version-1 swap header keeps its 16-byte volume label.
const SWAP_LABEL_AT: usize = 1052;

/// The label of the suite's own swap device (written into its header).
pub const SWAP_LABEL: &str = "uffd-conform";

/// Priority of the suite's own swap: the highest, above any swap the machine already has.
pub const SWAP_PRIORITY: i32 = 32767;

fn cpath(path: &Path) -> std::ffi::CString {
    std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in a path")
}

/// Turns `path` on as swap at `priority` (SWAP_FLAG_PREFER).
pub fn swapon(path: &Path, priority: i32) -> Result<(), String> {
    const SWAP_FLAG_PREFER: i32 = 0x8000; // <linux/swap.h>
    let flags = SWAP_FLAG_PREFER | priority;
    // SAFETY: a valid C string and flags.
    let ret = unsafe { libc::swapon(cpath(path).as_ptr(), flags) };
    nix::errno::Errno::result(ret)
        .map(drop)
        .map_err(|e| format!("swapon {}: {}", path.display(), e.desc()))
}

/// Turns `path` off as swap.
pub fn swapoff(path: &Path) -> Result<(), nix::errno::Errno> {
    // SAFETY: a valid C string.
    nix::errno::Errno::result(unsafe { libc::swapoff(cpath(path).as_ptr()) }).map(drop)
}

/// The active swap devices and files (/proc/swaps), each with whether the suite made it.
pub fn active_swap() -> Vec<(PathBuf, bool)> {
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    swaps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(|dev| {
            let mut label = [0u8; 16];
            let ours = fs::File::open(dev)
                .and_then(|f| {
                    std::os::unix::fs::FileExt::read_exact_at(&f, &mut label, SWAP_LABEL_AT as u64)
                })
                .is_ok_and(|()| label.split(|&b| b == 0).next() == Some(SWAP_LABEL.as_bytes()));
            (PathBuf::from(dev), ours)
        })
        .collect()
}
