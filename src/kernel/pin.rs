//! Long-term page pins without CONFIG_GUP_TEST: registering the pages as io_uring fixed
//! buffers pins them (FOLL_WRITE | FOLL_LONGTERM) until the ring is closed.

use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;

/// `struct io_uring_params` is 120 bytes; only zeroes are passed in.
const IO_URING_PARAMS_SIZE: usize = 120;
const IORING_REGISTER_BUFFERS: libc::c_uint = 0;

/// A set of pinned ranges; dropping it unpins them.
pub struct Pin {
    _ring: OwnedFd,
}

impl Pin {
    /// Pins each `(addr, len)` range as one io_uring fixed buffer.
    pub fn new(ranges: &[(usize, usize)]) -> Result<Pin, Errno> {
        let mut params = [0u8; IO_URING_PARAMS_SIZE];
        // SAFETY: io_uring_setup(entries, params) with a zeroed params buffer of the right size.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_io_uring_setup,
                1 as libc::c_uint,
                params.as_mut_ptr(),
            )
        };
        let fd = Errno::result(fd)? as i32;
        // SAFETY: a fresh descriptor nothing else owns.
        let ring = unsafe { OwnedFd::from_raw_fd(fd) };
        let iov: Vec<libc::iovec> = ranges
            .iter()
            .map(|&(addr, len)| libc::iovec {
                iov_base: addr as *mut libc::c_void,
                iov_len: len,
            })
            .collect();
        // SAFETY: the iovecs describe our own mapping; the kernel pins what they cover.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                fd,
                IORING_REGISTER_BUFFERS,
                iov.as_ptr(),
                iov.len() as libc::c_uint,
            )
        };
        Errno::result(ret)?;
        Ok(Pin { _ring: ring })
    }
}

/// Reads `len` bytes at `addr` of our own address space through process_vm_readv(2): the
/// kernel takes a short read-only pin of each page (pin_user_pages_remote without
/// FOLL_WRITE), so an anonymous page that may be shared is unshared first, with no disk or
/// file system involved.
pub fn read_pinned(addr: usize, len: usize) -> Result<(), Errno> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: both iovecs describe memory of this process: `buf`, which lives across the
    // call, and the caller's mapping, which the kernel only reads.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    match Errno::result(n)? as usize {
        n if n == len => Ok(()),
        _ => Err(Errno::EFAULT),
    }
}
