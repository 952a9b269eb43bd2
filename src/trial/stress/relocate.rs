//! The operations that move the area's pages or the area itself: `migrate` (move_pages(2) to
//! another NUMA node, taking no model lock: migration changes neither contents nor protection)
//! and `mremap` (the whole area away and back, every lock held).

use std::sync::atomic::Ordering;

use nix::errno::Errno;

use super::env::Env;
use super::model::Shared;
use crate::kernel::memory::{reserve, PMD_SIZE};
use crate::kernel::mm;
use crate::trial::memops::mismatch;

/// move_pages(2) of `first..first+count` to the node after the first page's own. A page the
/// kernel does not move (EBUSY, EAGAIN, ENOMEM, or EFAULT/ENOENT on a hole) is counted.
pub fn migrate(shared: &Shared, env: &Env, first: usize, count: usize) -> String {
    let addrs: Vec<usize> = (first..first + count)
        .map(|p| shared.page_addr(p))
        .collect();
    let from = match mm::move_pages_errno(&addrs[..1], None) {
        Ok(s) => s[0],
        Err(e) => return failed(shared, "move_pages(2) (query)", e),
    };
    let at = env.nodes.iter().position(|&n| n == from).unwrap_or(0);
    let to = env.nodes[(at + 1) % env.nodes.len()];
    let targets = vec![to; addrs.len()];
    match mm::move_pages_errno(&addrs, Some(&targets)) {
        Ok(status) => {
            let moved = status.iter().filter(|&&s| s == to).count();
            shared.migrated.fetch_add(moved as u64, Ordering::Relaxed);
            shared
                .not_migrated
                .fetch_add((status.len() - moved) as u64, Ordering::Relaxed);
            let first_bad = status.iter().find(|&&s| s < 0);
            match first_bad {
                Some(&e) => format!(
                    "{moved} of {count} on node {to} (first refusal: {})",
                    Errno::from_raw(-e).desc()
                ),
                None => format!("{moved} of {count} on node {to}"),
            }
        }
        // The whole call refused: no memory for its bookkeeping, or no page to move.
        Err(e @ (Errno::ENOMEM | Errno::ENOENT)) => {
            shared
                .not_migrated
                .fetch_add(count as u64, Ordering::Relaxed);
            format!("{} (counted)", e.desc())
        }
        Err(e) => failed(shared, "move_pages(2)", e),
    }
}

/// With every lock held: the area to a fresh address and back with mremap(2). Without
/// UFFD_FEATURE_EVENT_REMAP the moved area is unregistered (and must have lost its
/// protection): it is registered again and modelled unprotected.
pub fn mremap(shared: &Shared, env: &Env) -> String {
    let _data = shared.lock_data(0..shared.pages);
    let mut wp = shared.lock_wp(0..shared.pages);
    let len = shared.pages * shared.page_size;
    let align = if env.memory.is_hugetlb() {
        shared.page_size
    } else {
        PMD_SIZE
    };
    let temp = match reserve(len, align) {
        Ok(t) => t,
        Err(e) => return failed(shared, "reserve address space for mremap", e),
    };
    if let Err(e) = mm::mremap_fixed(shared.base, len, temp) {
        // SAFETY: our own unused reservation.
        unsafe { libc::munmap(temp as *mut libc::c_void, len) };
        return failed(shared, "mremap(2) away", e);
    }
    // Hold the area's address while it is away, so that no other thread's mmap lands there
    // and is then replaced by the move back.
    if let Err(e) = mm::placeholder_at(shared.base, len) {
        shared.problem(mismatch(
            "hold the area's address while mremap moves it away",
            "free",
            format!(
                "{} (another mapping took it: the area stays away)",
                e.desc()
            ),
        ));
        return "address taken".into();
    }
    if let Err(e) = mm::mremap_fixed(temp, len, shared.base) {
        return failed(shared, "mremap(2) back", e);
    }
    shared.remaps.fetch_add(1, Ordering::Relaxed);
    if env.event_remap {
        return "moved away and back (registration and protection moved along)".into();
    }
    match env.uffd.register(shared.base, len, env.modes) {
        Ok(_) => {
            wp.iter_mut().for_each(|w| **w = false);
            // Every lock is held: nothing else changes protection, and the moved area must have
            // lost it (the registration did not move).
            for p in 0..shared.pages {
                if let Some(e) = env.pagemap_entry(shared.page_addr(p)) {
                    if e.uffd_wp() {
                        shared.problem(mismatch(
                            format!("pagemap bit 57 (uffd-wp) of page {p} right after mremap without EVENT_REMAP"),
                            "false (the registration did not move)",
                            format!("true ({})", e.describe()),
                        ));
                    }
                }
            }
            "moved away and back, registered again".into()
        }
        Err(e) => failed(shared, "UFFDIO_REGISTER after mremap", e),
    }
}

fn failed(shared: &Shared, what: &str, e: Errno) -> String {
    shared.problem(mismatch(what, "success", e.desc().to_string()));
    e.desc().to_string()
}
