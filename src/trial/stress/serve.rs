//! The fault handlers of a stress step: one or more threads read the trial's uffd (poll(2) then
//! a non-blocking read, or a blocking read(2)), check every message is well-formed, and
//! resolve faults. A fault whose page's protection lock is busy waits in a pending list and is
//! retried, and so is one the kernel answers with EAGAIN (an event is in flight): the handler
//! never blocks, so the event it must read next is always read.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::model::Shared;
use crate::case::stress::{HandlerWait, Sabotage};
use crate::kernel::features::Feature;
use crate::kernel::uapi::*;
use crate::kernel::uffd::Uffd;
use crate::trial::memops::mismatch;
use crate::trial::protocol::Message;

/// What a message may be, from the trial's registration and features.
#[derive(Debug, Clone)]
pub struct Allowed {
    /// Register modes of the area (UFFDIO_REGISTER_MODE_*).
    pub modes: u64,
    pub features: u64,
    /// The area as the message check sees it: base and length in bytes.
    pub base: usize,
    pub len: usize,
}

impl Allowed {
    /// Why `msg` is malformed, or None. `tids`: the trial's threads (with UFFD_FEATURE_THREAD_ID).
    pub fn check(&self, msg: &UffdMsg, tids: &[u64]) -> Option<String> {
        match msg.event {
            UFFD_EVENT_PAGEFAULT => {
                let (flags, addr) = (msg.arg[0], msg.arg[1] as usize);
                if addr < self.base || addr >= self.base + self.len {
                    return Some(format!(
                        "fault at 0x{addr:x}, outside the area 0x{:x}..0x{:x}",
                        self.base,
                        self.base + self.len
                    ));
                }
                let known =
                    UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_MINOR;
                let wp = flags & UFFD_PAGEFAULT_FLAG_WP != 0;
                let minor = flags & UFFD_PAGEFAULT_FLAG_MINOR != 0;
                let why = if flags & !known != 0 {
                    Some("unknown flag bits")
                } else if wp && minor {
                    Some("both WP and MINOR")
                } else if wp && flags & UFFD_PAGEFAULT_FLAG_WRITE == 0 {
                    Some("a WP fault that is not a write")
                } else if wp && self.modes & UFFDIO_REGISTER_MODE_WP == 0 {
                    Some("WP, but the area is not registered for WP")
                } else if minor && self.modes & UFFDIO_REGISTER_MODE_MINOR == 0 {
                    Some("MINOR, but the area is not registered for MINOR")
                } else if !wp && !minor && self.modes & UFFDIO_REGISTER_MODE_MISSING == 0 {
                    Some("a MISSING fault, but the area is not registered for MISSING")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Some(format!(
                        "fault at 0x{addr:x} with flags {}: {why}",
                        Message::flag_names(flags)
                    ));
                }
                if self.features & Feature::ThreadId.bit() != 0 {
                    let tid = msg.arg[2] & 0xffff_ffff;
                    if !tids.contains(&tid) {
                        return Some(format!(
                            "fault at 0x{addr:x} from thread {tid}, not one of the trial's {tids:?}"
                        ));
                    }
                }
                None
            }
            UFFD_EVENT_FORK if self.features & Feature::EventFork.bit() != 0 => None,
            UFFD_EVENT_REMOVE if self.features & Feature::EventRemove.bit() != 0 => None,
            UFFD_EVENT_REMAP if self.features & Feature::EventRemap.bit() != 0 => None,
            UFFD_EVENT_UNMAP if self.features & Feature::EventUnmap.bit() != 0 => None,
            other => Some(format!(
                "event 0x{other:02x}, which the trial's features 0x{:x} do not ask for",
                self.features
            )),
        }
    }
}

/// The running handler threads.
pub struct Serve {
    stop: Arc<AtomicBool>,
    stop_tx: Option<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
    wait: HandlerWait,
    uffd: Arc<Uffd>,
}

extern "C" fn wake_reader(_: libc::c_int) {}

impl Serve {
    pub fn start(
        uffd: Arc<Uffd>,
        shared: Arc<Shared>,
        allowed: Allowed,
        threads: u32,
        wait: HandlerWait,
        sabotage: Option<Sabotage>,
        tids: Arc<Mutex<Vec<u64>>>,
    ) -> std::io::Result<Serve> {
        let (stop_rx, stop_tx) = nix::unistd::pipe()?;
        let stop_rx = Arc::new(stop_rx);
        let stop = Arc::new(AtomicBool::new(false));
        let forked = Arc::new(Mutex::new(Vec::new()));
        if wait == HandlerWait::Read {
            // A blocking read(2) is interrupted by SIGUSR2 (no SA_RESTART) when the step ends.
            let action = nix::sys::signal::SigAction::new(
                nix::sys::signal::SigHandler::Handler(wake_reader),
                nix::sys::signal::SaFlags::empty(),
                nix::sys::signal::SigSet::empty(),
            );
            // SAFETY: the handler does nothing.
            unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGUSR2, &action) }?;
            uffd.set_nonblocking(false)?;
        }
        let mut handles = Vec::new();
        let pending = Arc::new(Mutex::new(Vec::new()));
        // In read mode every handler thread may sit in read(2): one more thread retries the
        // pending faults.
        let retrier = u32::from(wait == HandlerWait::Read);
        for i in 0..threads.max(1) + retrier {
            let retry_only = i == threads.max(1);
            let ctx = Ctx {
                pending: pending.clone(),
                uffd: uffd.clone(),
                shared: shared.clone(),
                allowed: allowed.clone(),
                sabotage,
                tids: tids.clone(),
                forked: forked.clone(),
                stop: stop.clone(),
            };
            let stop_rx = stop_rx.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("stress-handler-{i}"))
                    .spawn(move || {
                        let tid = crate::trial::exec::gettid() as u64;
                        Shared::lock(&ctx.shared.tasks).push(tid);
                        match wait {
                            _ if retry_only => ctx.retry_loop(),
                            HandlerWait::Poll => ctx.poll_loop(&stop_rx),
                            HandlerWait::Read => ctx.read_loop(),
                        }
                    })?,
            );
        }
        Ok(Serve {
            stop,
            stop_tx: Some(stop_tx),
            threads: handles,
            wait,
            uffd,
        })
    }

    /// Stops and joins the handler threads (idempotent).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.stop_tx.take();
        for t in self.threads.drain(..) {
            if self.wait == HandlerWait::Read {
                use std::os::unix::thread::JoinHandleExt;
                let pthread = t.as_pthread_t();
                while !t.is_finished() {
                    // SAFETY: the thread is alive (not finished, not joined).
                    unsafe { libc::pthread_kill(pthread, libc::SIGUSR2) };
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
            let _ = t.join();
        }
        if self.wait == HandlerWait::Read {
            let _ = self.uffd.set_nonblocking(true);
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fault waiting for its page's protection lock or for an event to be read.
struct Pending {
    uffd: Arc<Uffd>,
    flags: u64,
    addr: u64,
}

struct Ctx {
    /// Faults waiting for a retry, shared by the handler threads.
    pending: Arc<Mutex<Vec<Pending>>>,
    uffd: Arc<Uffd>,
    shared: Arc<Shared>,
    allowed: Allowed,
    sabotage: Option<Sabotage>,
    tids: Arc<Mutex<Vec<u64>>>,
    forked: Arc<Mutex<Vec<Arc<Uffd>>>>,
    stop: Arc<AtomicBool>,
}

impl Ctx {
    fn poll_loop(&self, stop_rx: &OwnedFd) {
        loop {
            let mut uffds = vec![self.uffd.clone()];
            uffds.extend(Shared::lock(&self.forked).iter().cloned());
            let mut fds: Vec<PollFd> = uffds
                .iter()
                .map(|u| PollFd::new(u.as_fd(), PollFlags::POLLIN))
                .collect();
            fds.push(PollFd::new(stop_rx.as_fd(), PollFlags::POLLIN));
            let timeout = if Shared::lock(&self.pending).is_empty() {
                100u16
            } else {
                1
            };
            let _ = poll(&mut fds, PollTimeout::from(timeout));
            let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
            if ready[ready.len() - 1] || self.stop.load(Ordering::SeqCst) {
                return;
            }
            for (i, uffd) in uffds.iter().enumerate().filter(|(i, _)| ready[*i]) {
                while let Ok(Some(msg)) = uffd.read_msg() {
                    self.take(uffd, i == 0, msg);
                }
            }
            self.retry();
        }
    }

    fn retry_loop(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_micros(200));
            self.retry();
        }
    }

    fn read_loop(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            match self.uffd.read_msg_blocking() {
                Ok(msg) => self.take(&self.uffd.clone(), true, msg),
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                Err(e) => {
                    self.shared.problem(mismatch(
                        "read(2) of the uffd",
                        "a message",
                        e.desc().to_string(),
                    ));
                    return;
                }
            }
        }
    }

    /// Checks one message and resolves it (or leaves it pending).
    fn take(&self, uffd: &Arc<Uffd>, main: bool, msg: UffdMsg) {
        self.shared.messages.fetch_add(1, Ordering::Relaxed);
        if main {
            let tids = Shared::lock(&self.tids).clone();
            let mut allowed = self.allowed.clone();
            if self.sabotage == Some(Sabotage::ShiftArea) {
                allowed.base += self.shared.page_size;
            }
            if let Some(why) = allowed.check(&msg, &tids) {
                self.shared
                    .problem(mismatch("message", "a well-formed message", why));
            }
        }
        match msg.event {
            UFFD_EVENT_PAGEFAULT => {
                let page = self.page_of(msg.arg[1]);
                if let Some(p) = page.filter(|_| main) {
                    self.shared.pending[p].store(msg.arg[0] | 1 << 63, Ordering::SeqCst);
                    if msg.arg[0] & UFFD_PAGEFAULT_FLAG_WP != 0 {
                        self.shared.wp_faults[p].fetch_add(1, Ordering::SeqCst);
                    } else if msg.arg[0] & UFFD_PAGEFAULT_FLAG_MINOR == 0 {
                        self.shared.missing_faults[p].fetch_add(1, Ordering::SeqCst);
                    }
                }
                let p = Pending {
                    uffd: uffd.clone(),
                    flags: msg.arg[0],
                    addr: msg.arg[1],
                };
                if !self.resolve(&p, main) {
                    Shared::lock(&self.pending).push(p);
                }
            }
            UFFD_EVENT_FORK => {
                // SAFETY: the kernel installed this descriptor for us with the message.
                let child = unsafe { Uffd::from_raw(msg.arg[0] as u32 as i32) };
                Shared::lock(&self.forked).push(Arc::new(child));
            }
            _ => {}
        }
    }

    fn retry(&self) {
        let Ok(mut pending) = self.pending.try_lock() else {
            return; // another thread is retrying them
        };
        pending.retain(|p| !self.resolve(p, Arc::ptr_eq(&p.uffd, &self.uffd)));
    }

    fn page_of(&self, addr: u64) -> Option<usize> {
        let addr = addr as usize;
        let s = &self.shared;
        (addr >= s.base && addr < s.base + s.pages * s.page_size)
            .then(|| (addr - s.base) / s.page_size)
    }

    /// Tries to resolve a fault; false when it must be retried later.
    fn resolve(&self, f: &Pending, main: bool) -> bool {
        let s = &self.shared;
        let page_start = (f.addr as usize) & !(s.page_size - 1);
        let page = self.page_of(f.addr);
        if self.sabotage == Some(Sabotage::LeaveFault) && main {
            if let Some(p) = page {
                let _ =
                    s.left_page
                        .compare_exchange(usize::MAX, p, Ordering::SeqCst, Ordering::SeqCst);
                if s.left_page.load(Ordering::SeqCst) == p {
                    return true; // dropped on purpose: nobody wakes the thread
                }
            }
        }
        let result = if f.flags & UFFD_PAGEFAULT_FLAG_WP != 0 {
            // The model's protection changes with the kernel's, under the page's lock.
            let Some(p) = page.filter(|_| main) else {
                return f.uffd.writeprotect(page_start, s.page_size, 0) != Err(Errno::EAGAIN);
            };
            let Ok(mut wp) = s.wp[p].try_lock() else {
                return false;
            };
            let r = f.uffd.writeprotect(page_start, s.page_size, 0);
            if r.is_ok() {
                *wp = false;
            }
            r
        } else if f.flags & UFFD_PAGEFAULT_FLAG_MINOR != 0 {
            f.uffd.continue_(page_start, s.page_size, 0).map(drop)
        } else {
            // MISSING: the page was zapped, so its model is zeroes already. A MISSING fault
            // comes before a WP one, even on a protected hole: the zero page copied in without
            // MODE_WP is not protected.
            let wp = match page.filter(|_| main) {
                Some(p) => match s.wp[p].try_lock() {
                    Ok(g) => Some(g),
                    Err(_) => return false,
                },
                None => None,
            };
            let zero = vec![0u8; s.page_size];
            match f
                .uffd
                .copy(page_start, zero.as_ptr() as usize, s.page_size, 0)
            {
                Err(Errno::EEXIST) => f.uffd.wake(page_start, s.page_size),
                Ok(_) => {
                    if let Some(mut wp) = wp {
                        *wp = false;
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        let done = match result {
            Ok(()) => true,
            Err(Errno::EAGAIN) => false,
            // A range unregistered meanwhile (a `reregister`), or the uffd closed (a `close`):
            // the kernel woke the thread itself.
            Err(Errno::ENOENT) => true,
            Err(_) if s.closed.load(Ordering::SeqCst) => true,
            Err(e) => {
                s.problem(mismatch(
                    format!(
                        "resolving a {} fault at 0x{:x}",
                        Message::flag_names(f.flags),
                        f.addr
                    ),
                    "success",
                    e.desc().to_string(),
                ));
                true
            }
        };
        if done {
            s.faults_resolved.fetch_add(1, Ordering::Relaxed);
            if let Some(p) = page.filter(|_| main) {
                s.pending[p].store(0, Ordering::SeqCst);
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(flags: u64, addr: u64, tid: u64) -> UffdMsg {
        UffdMsg {
            event: UFFD_EVENT_PAGEFAULT,
            arg: [flags, addr, tid],
            ..Default::default()
        }
    }

    const WP: u64 = UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_WRITE;

    fn allowed(modes: u64, features: u64) -> Allowed {
        Allowed {
            modes,
            features,
            base: 0x10000,
            len: 0x4000,
        }
    }

    #[test]
    fn a_wp_fault_inside_a_wp_area_is_well_formed() {
        let a = allowed(UFFDIO_REGISTER_MODE_WP, 0);
        assert_eq!(a.check(&fault(WP, 0x10000, 0), &[]), None);
        assert_eq!(a.check(&fault(WP, 0x13fff, 0), &[]), None);
    }

    #[test]
    fn malformed_messages_say_why() {
        let a = allowed(UFFDIO_REGISTER_MODE_WP, Feature::ThreadId.bit());
        let why = |m: UffdMsg| a.check(&m, &[7]).unwrap_or_default();
        assert!(why(fault(WP, 0x14000, 7)).contains("outside the area"));
        assert!(why(fault(UFFD_PAGEFAULT_FLAG_WP, 0x10000, 7)).contains("not a write"));
        assert!(why(fault(UFFD_PAGEFAULT_FLAG_WRITE, 0x10000, 7)).contains("MISSING"));
        assert!(why(fault(WP | 1 << 9, 0x10000, 7)).contains("unknown flag"));
        assert!(why(fault(WP, 0x10000, 8)).contains("not one of the trial's"));
        let fork = UffdMsg {
            event: UFFD_EVENT_FORK,
            ..Default::default()
        };
        assert!(why(fork).contains("do not ask for"));
    }
}
