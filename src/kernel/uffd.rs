//! A userfaultfd file descriptor and its ioctls, as thin wrappers that return the kernel's errno.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use super::uapi::{self, *};

/// How the descriptor is created: userfaultfd(2) or /dev/userfaultfd (6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenVia {
    Syscall,
    DevNode,
}

#[derive(Debug)]
pub struct Uffd {
    fd: OwnedFd,
}

fn range(start: usize, len: usize) -> UffdioRange {
    UffdioRange {
        start: start as u64,
        len: len as u64,
    }
}

impl Uffd {
    /// Opens a non-blocking, close-on-exec userfaultfd.
    pub fn open(via: OpenVia, user_mode_only: bool) -> Result<Uffd, Errno> {
        let mut flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
        if user_mode_only {
            flags |= UFFD_USER_MODE_ONLY;
        }
        let raw = match via {
            OpenVia::Syscall => {
                // SAFETY: the syscall takes one int argument and returns a new fd or -1.
                let ret = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
                Errno::result(ret)? as RawFd
            }
            OpenVia::DevNode => {
                let dev = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/userfaultfd")
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
                // SAFETY: USERFAULTFD_IOC_NEW takes the flags as its argument, by value.
                let ret = unsafe {
                    libc::ioctl(
                        dev.as_raw_fd(),
                        nix::request_code_none!(UFFD_API, 0x00),
                        flags,
                    )
                };
                Errno::result(ret)?
            }
        };
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        Ok(Uffd {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Takes ownership of a descriptor the kernel handed us (UFFD_EVENT_FORK).
    ///
    /// # Safety
    /// `raw` must be an open userfaultfd owned by nobody else.
    pub unsafe fn from_raw(raw: RawFd) -> Uffd {
        Uffd {
            fd: OwnedFd::from_raw_fd(raw),
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// UFFDIO_API handshake; returns what the kernel filled in (features and ioctls).
    pub fn api(&self, features: u64) -> Result<UffdioApi, Errno> {
        let mut api = UffdioApi {
            api: UFFD_API,
            features,
            ioctls: 0,
        };
        // SAFETY: `api` is a valid, writable uffdio_api.
        unsafe { uapi::uffdio_api(self.raw(), &mut api) }?;
        Ok(api)
    }

    /// UFFDIO_REGISTER; returns the ioctls allowed on the range.
    pub fn register(&self, start: usize, len: usize, mode: u64) -> Result<u64, Errno> {
        let mut reg = UffdioRegister {
            range: range(start, len),
            mode,
            ioctls: 0,
        };
        // SAFETY: `reg` is a valid, writable uffdio_register.
        unsafe { uapi::uffdio_register(self.raw(), &mut reg) }?;
        Ok(reg.ioctls)
    }

    pub fn unregister(&self, start: usize, len: usize) -> Result<(), Errno> {
        let mut r = range(start, len);
        // SAFETY: `r` is a valid uffdio_range.
        unsafe { uapi::uffdio_unregister(self.raw(), &mut r) }.map(drop)
    }

    pub fn wake(&self, start: usize, len: usize) -> Result<(), Errno> {
        let mut r = range(start, len);
        // SAFETY: `r` is a valid uffdio_range.
        unsafe { uapi::uffdio_wake(self.raw(), &mut r) }.map(drop)
    }

    pub fn writeprotect(&self, start: usize, len: usize, mode: u64) -> Result<(), Errno> {
        let mut wp = UffdioWriteprotect {
            range: range(start, len),
            mode,
        };
        // SAFETY: `wp` is a valid uffdio_writeprotect.
        unsafe { uapi::uffdio_writeprotect(self.raw(), &mut wp) }.map(drop)
    }

    /// UFFDIO_COPY; returns the byte count the kernel reports in `copy`.
    pub fn copy(&self, dst: usize, src: usize, len: usize, mode: u64) -> Result<i64, Errno> {
        let mut c = UffdioCopy {
            dst: dst as u64,
            src: src as u64,
            len: len as u64,
            mode,
            copy: 0,
        };
        // SAFETY: `c` is valid; the kernel reads `len` bytes at `src`, which the caller provides.
        unsafe { uapi::uffdio_copy(self.raw(), &mut c) }?;
        Ok(c.copy)
    }

    pub fn zeropage(&self, start: usize, len: usize, mode: u64) -> Result<i64, Errno> {
        let mut z = UffdioZeropage {
            range: range(start, len),
            mode,
            zeropage: 0,
        };
        // SAFETY: `z` is a valid uffdio_zeropage.
        unsafe { uapi::uffdio_zeropage(self.raw(), &mut z) }?;
        Ok(z.zeropage)
    }

    pub fn continue_(&self, start: usize, len: usize, mode: u64) -> Result<i64, Errno> {
        let mut c = UffdioContinue {
            range: range(start, len),
            mode,
            mapped: 0,
        };
        // SAFETY: `c` is a valid uffdio_continue.
        unsafe { uapi::uffdio_continue(self.raw(), &mut c) }?;
        Ok(c.mapped)
    }

    pub fn poison(&self, start: usize, len: usize, mode: u64) -> Result<i64, Errno> {
        let mut p = UffdioPoison {
            range: range(start, len),
            mode,
            updated: 0,
        };
        // SAFETY: `p` is a valid uffdio_poison.
        unsafe { uapi::uffdio_poison(self.raw(), &mut p) }?;
        Ok(p.updated)
    }

    pub fn move_(&self, dst: usize, src: usize, len: usize, mode: u64) -> Result<i64, Errno> {
        let mut m = UffdioMove {
            dst: dst as u64,
            src: src as u64,
            len: len as u64,
            mode,
            moved: 0,
        };
        // SAFETY: `m` is a valid uffdio_move.
        unsafe { uapi::uffdio_move(self.raw(), &mut m) }?;
        Ok(m.moved)
    }

    /// Reads one message, waiting for it when the descriptor is blocking (see
    /// [`Uffd::set_nonblocking`]); EINTR when a signal interrupts the wait.
    pub fn read_msg_blocking(&self) -> Result<UffdMsg, Errno> {
        match self.read_msg() {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(Errno::EAGAIN),
            Err(e) => Err(e),
        }
    }

    /// Makes reads wait for a message (false) or return at once (true, as opened).
    pub fn set_nonblocking(&self, on: bool) -> Result<(), Errno> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = OFlag::from_bits_truncate(fcntl(self.as_fd(), FcntlArg::F_GETFL)?);
        let flags = if on {
            flags | OFlag::O_NONBLOCK
        } else {
            flags & !OFlag::O_NONBLOCK
        };
        fcntl(self.as_fd(), FcntlArg::F_SETFL(flags)).map(drop)
    }

    /// Reads one message; `Ok(None)` when none is queued (the fd is non-blocking).
    pub fn read_msg(&self) -> Result<Option<UffdMsg>, Errno> {
        let mut msg = UffdMsg::default();
        let size = std::mem::size_of::<UffdMsg>();
        // SAFETY: `msg` is a plain 32-byte buffer.
        let n = unsafe { libc::read(self.raw(), (&mut msg as *mut UffdMsg).cast(), size) };
        match Errno::result(n) {
            Ok(n) if n as usize == size => Ok(Some(msg)),
            Ok(_) => Err(Errno::EIO),
            Err(Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for Uffd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
