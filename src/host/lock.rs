//! Locks shared by every uffd-conform process on the host, not just the threads of one run.
//! Two runs at once (two `cargo test`s, a CLI run beside a test run) share one huge page pool
//! and the swap devices: without these locks, one run's hugetlb trial takes the pages another
//! run's trial was counting on, and one run's restore removes the swap or huge pages another
//! run still uses. Both show up as failures that are not the kernel's.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};

/// Held until dropped. Holds nothing when the lock file cannot be opened (then only this
/// process's own locks order its trials; concurrent runs may disturb each other).
pub struct HostLock {
    _lock: Option<Flock<File>>,
}

/// The lock file for `name`: in /run/lock when it exists (root runs), else the temp dir.
fn path(name: &str) -> PathBuf {
    let dir = std::path::Path::new("/run/lock");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("uffd-conform-{name}.lock"))
}

fn open(name: &str) -> Option<File> {
    let path = path(name);
    // Read-only is enough for flock(2), so a file root created serves other users too.
    OpenOptions::new()
        .read(true)
        .write(false)
        .create(false)
        .open(&path)
        .ok()
        .or_else(|| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&path)
                .ok()
        })
}

/// Takes the host-wide exclusive lock `name`, waiting for other processes that hold it.
pub fn lock(name: &str) -> HostLock {
    HostLock {
        _lock: open(name).and_then(|f| Flock::lock(f, FlockArg::LockExclusive).ok()),
    }
}

/// Takes the lock if it is free; None when another process holds it.
pub fn try_lock(name: &str) -> Option<HostLock> {
    let file = open(name)?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .ok()
        .map(|l| HostLock { _lock: Some(l) })
}
