//! The ramfs behind the `ramfs` memory type. The trial process unshares its mount namespace
//! and mounts a ramfs there: nobody else sees the mount, and it ends with the process, so
//! the host is left as found. Needs CAP_SYS_ADMIN (the plan skips the type without root).

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// Directories a ramfs may cover in the private namespace: the first that exists (the VM
/// guest's initramfs has /tmp as well).
const MOUNT_POINTS: &[&str] = &["/tmp", "/mnt", "/run"];

/// A new, already unlinked file on a private ramfs.
pub fn ramfs_file() -> Result<File, Errno> {
    let dir = MOUNT_POINTS
        .iter()
        .map(Path::new)
        .find(|d| d.is_dir())
        .ok_or(Errno::ENOENT)?;
    unshare(CloneFlags::CLONE_NEWNS)?;
    // Our mounts must not propagate back to the host's namespace (/ is often shared).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    mount(
        Some("uffd-conform"),
        dir,
        Some("ramfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )?;
    let path = dir.join("uffd-conform-area");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}
