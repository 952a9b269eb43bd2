//! Raw memory-management and file calls on the process's own mappings: madvise, mprotect,
//! munmap, mincore, read(2) into a mapping, move_pages, fallocate(PUNCH_HOLE), statfs and
//! dup2. The callers choose addresses inside their own mappings; these only make the calls.

use std::os::fd::RawFd;

use nix::errno::Errno;

/// madvise(2) of `len` bytes at `addr` with `advice` (MADV_*).
pub fn madvise(addr: usize, len: usize, advice: libc::c_int) -> Result<(), Errno> {
    // SAFETY: advice on the caller's own mapping; destructive advice is what it asks for.
    Errno::result(unsafe { libc::madvise(addr as *mut libc::c_void, len, advice) }).map(drop)
}

/// mprotect(2) of `len` bytes at `addr` to `prot` (PROT_*).
pub fn mprotect(addr: usize, len: usize, prot: libc::c_int) -> Result<(), Errno> {
    // SAFETY: changes the protection of the caller's own mapping only.
    Errno::result(unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot) }).map(drop)
}

/// munmap(2) of `len` bytes at `addr`.
pub fn munmap(addr: usize, len: usize) -> Result<(), Errno> {
    // SAFETY: unmaps part of the caller's own mapping; later accesses are its intent.
    Errno::result(unsafe { libc::munmap(addr as *mut libc::c_void, len) }).map(drop)
}

/// Whether the first base page at `addr` is resident (mincore(2) over `len` bytes).
pub fn resident(addr: usize, len: usize) -> bool {
    let mut vec = vec![0u8; len.div_ceil(super::pagemap::base_page_size())];
    // SAFETY: `vec` has one byte per base page of the range.
    let ret = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
    ret == 0 && vec[0] & 1 != 0
}

/// read(2) from `fd` into `len` bytes at `addr`: the kernel writes the caller's mapping.
pub fn read_into(fd: RawFd, addr: usize, len: usize) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most `len` bytes at `addr`, inside the caller's mapping.
    Errno::result(unsafe { libc::read(fd, addr as *mut libc::c_void, len) }).map(|n| n as usize)
}

/// move_pages(2) flag: move pages even when other processes map them (needs CAP_SYS_NICE).
const MPOL_MF_MOVE_ALL: libc::c_int = 1 << 2;

/// move_pages(2) on this process: with `nodes`, moves each page at `addrs` to its node;
/// without, reports each page's node. Returns the per-page status (a node, or a negative
/// errno for a page not moved).
pub fn move_pages(addrs: &[usize], nodes: Option<&[i32]>) -> Result<Vec<i32>, String> {
    move_pages_errno(addrs, nodes).map_err(|e| format!("move_pages(2): {e:?} ({})", e.desc()))
}

/// As [`move_pages`], failing with the call's errno.
pub fn move_pages_errno(addrs: &[usize], nodes: Option<&[i32]>) -> Result<Vec<i32>, Errno> {
    let addrs: Vec<*mut libc::c_void> = addrs.iter().map(|&a| a as *mut libc::c_void).collect();
    let mut status = vec![0i32; addrs.len()];
    // SAFETY: the arrays have addrs.len() entries and outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0,
            addrs.len() as libc::c_ulong,
            addrs.as_ptr(),
            nodes.map_or(std::ptr::null(), |n| n.as_ptr()),
            status.as_mut_ptr(),
            if nodes.is_some() { MPOL_MF_MOVE_ALL } else { 0 },
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(status)
}

/// mremap(2) of `len` bytes at `old` to exactly `new` (MREMAP_MAYMOVE|MREMAP_FIXED, which
/// replaces whatever is mapped there).
pub fn mremap_fixed(old: usize, len: usize, new: usize) -> Result<(), Errno> {
    // SAFETY: the caller owns both ranges; the kernel checks them.
    let r = unsafe {
        libc::mremap(
            old as *mut libc::c_void,
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            new as *mut libc::c_void,
        )
    };
    if r == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    Ok(())
}

/// Fresh private anonymous read-write memory of `len` bytes at exactly `addr`, failing
/// (EEXIST) rather than replacing anything mapped there (MAP_FIXED_NOREPLACE).
pub fn anon_at(addr: usize, len: usize) -> Result<(), Errno> {
    anon_noreplace(addr, len, libc::PROT_READ | libc::PROT_WRITE, 0)
}

/// A PROT_NONE placeholder of `len` bytes at exactly `addr`, failing (EEXIST) rather than
/// replacing anything mapped there (MAP_FIXED_NOREPLACE).
pub fn placeholder_at(addr: usize, len: usize) -> Result<(), Errno> {
    anon_noreplace(addr, len, libc::PROT_NONE, libc::MAP_NORESERVE)
}

/// Private anonymous memory at exactly `addr` with `prot` and `flags` added, or EEXIST.
fn anon_noreplace(addr: usize, len: usize, prot: i32, flags: i32) -> Result<(), Errno> {
    // SAFETY: a fresh anonymous mapping that replaces nothing.
    let r = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE | flags,
            -1,
            0,
        )
    };
    if r == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    if r as usize != addr {
        // Kernels before 4.17 ignore the flag and map elsewhere.
        // SAFETY: the mapping just made, nobody else's.
        unsafe { libc::munmap(r, len) };
        return Err(Errno::EEXIST);
    }
    Ok(())
}

/// fallocate(2) PUNCH_HOLE|KEEP_SIZE of `len` bytes at `offset` of the file `fd`.
pub fn punch_hole(fd: RawFd, offset: usize, len: usize) -> Result<(), Errno> {
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: fallocate on a descriptor the caller owns.
    Errno::result(unsafe { libc::fallocate(fd, mode, offset as i64, len as i64) }).map(drop)
}

/// The filesystem type (statfs(2) `f_type`) of `path`, or None when it cannot be read.
pub fn filesystem_type(path: &str) -> Option<i64> {
    let path = std::ffi::CString::new(path).ok()?;
    // SAFETY: a plain C struct, all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a statfs buffer of the right type.
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_type as i64)
}

/// dup2(2): makes `target` a copy of `source`, closing what `target` was. The caller owns
/// both descriptors and accounts for `target`'s old file.
pub fn dup2(source: RawFd, target: RawFd) -> Result<(), Errno> {
    // SAFETY: replaces a descriptor the caller owns.
    Errno::result(unsafe { libc::dup2(source, target) }).map(drop)
}
