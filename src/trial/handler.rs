//! The fault-handler thread of a trial: reads every message from every userfaultfd of the trial,
//! records it raw, and resolves page faults (unprotect, copy, continue). Events are recorded
//! before the faulting or forking thread can go on, so a step sees all messages it caused.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::protocol::Message;
use crate::case::model::Resolve;
use crate::kernel::uapi::*;
use crate::kernel::uffd::Uffd;

/// The part of the area the handler needs to know to resolve faults. The base moves with
/// mremap, so it is shared with the trial.
#[derive(Debug, Clone)]
pub struct Geometry {
    pub base: Arc<AtomicUsize>,
    pub page_size: usize,
    pub pages: usize,
}

impl Geometry {
    fn page_of(&self, addr: u64) -> Option<usize> {
        let addr = addr as usize;
        let base = self.base.load(Ordering::SeqCst);
        (addr >= base && addr < base + self.pages * self.page_size)
            .then(|| (addr - base) / self.page_size)
    }
}

#[derive(Default)]
struct Log {
    messages: Vec<Message>,
    /// Resolution failures (errno), reported with the step's result.
    errors: Vec<String>,
}

pub struct Handler {
    log: Arc<Mutex<Log>>,
    stop_tx: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    /// What `restart` needs to serve again.
    uffd: Arc<Uffd>,
    geometry: Geometry,
    policy: Resolve,
}

impl Handler {
    pub fn start(uffd: Arc<Uffd>, geometry: Geometry, policy: Resolve) -> std::io::Result<Handler> {
        let mut handler = Handler {
            log: Arc::new(Mutex::new(Log::default())),
            stop_tx: None,
            thread: None,
            uffd,
            geometry,
            policy,
        };
        handler.restart()?;
        Ok(handler)
    }

    /// Serves again after `stop` (a `stress` step serves the uffd with its own threads
    /// meanwhile), adding to the same log.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        let (stop_rx, stop_tx) = nix::unistd::pipe()?;
        let (log, uffd, geometry, policy) = (
            self.log.clone(),
            self.uffd.clone(),
            self.geometry.clone(),
            self.policy,
        );
        self.thread = Some(
            std::thread::Builder::new()
                .name("uffd-handler".into())
                .spawn(move || serve(vec![uffd], geometry, policy, log, stop_rx))?,
        );
        self.stop_tx = Some(stop_tx);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many messages were recorded so far.
    pub fn mark(&self) -> (usize, usize) {
        let log = self.lock();
        (log.messages.len(), log.errors.len())
    }

    /// Messages and resolution errors recorded since `mark`.
    pub fn since(&self, mark: (usize, usize)) -> (Vec<Message>, Vec<String>) {
        let log = self.lock();
        (
            log.messages[mark.0..].to_vec(),
            log.errors[mark.1..].to_vec(),
        )
    }

    pub fn all_messages(&self) -> Vec<Message> {
        self.lock().messages.clone()
    }

    pub fn stop(&mut self) {
        self.stop_tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(
    mut uffds: Vec<Arc<Uffd>>,
    geo: Geometry,
    policy: Resolve,
    log: Arc<Mutex<Log>>,
    stop_rx: OwnedFd,
) {
    // A zero page to resolve missing faults with UFFDIO_COPY (works on every memory type).
    let zero = vec![0u8; geo.page_size];
    loop {
        let mut fds: Vec<PollFd> = uffds
            .iter()
            .map(|u| PollFd::new(u.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(stop_rx.as_fd(), PollFlags::POLLIN));
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        if *ready.last().unwrap_or(&false) {
            return; // the stop pipe closed
        }
        let count = uffds.len();
        for index in (0..count).filter(|&i| ready[i]) {
            let uffd = uffds[index].clone();
            // Hold the log while reading and recording: a thread woken by the read (events)
            // cannot look at the log before the message is in it.
            let mut guard = log.lock().unwrap_or_else(|p| p.into_inner());
            let msg = match uffd.read_msg() {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => {
                    guard
                        .errors
                        .push(format!("read from uffd {index}: {}", e.desc()));
                    continue;
                }
            };
            let arg = msg.arg;
            let record = Message {
                uffd: index,
                event: msg.event,
                arg,
                page: (msg.event == UFFD_EVENT_PAGEFAULT)
                    .then(|| geo.page_of(arg[1]))
                    .flatten(),
            };
            guard.messages.push(record);
            drop(guard);
            match msg.event {
                UFFD_EVENT_PAGEFAULT => {
                    if let Err(e) = resolve_retrying(&uffd, &geo, policy, arg[0], arg[1], &zero) {
                        // Said at once too: if the faulting thread now hangs, the runner's
                        // timeout report shows why.
                        eprintln!("fault handler: {e}");
                        let mut g = log.lock().unwrap_or_else(|p| p.into_inner());
                        g.errors.push(e);
                    }
                }
                UFFD_EVENT_FORK => {
                    // SAFETY: the kernel installed this fd for us with the message.
                    uffds.push(Arc::new(unsafe { Uffd::from_raw(arg[0] as u32 as i32) }));
                }
                _ => {}
            }
        }
    }
}

/// Resolves a fault, retrying while the kernel answers EAGAIN (the mm is changing: an event
/// such as UNMAP or REMAP is in flight), as the uapi asks.
fn resolve_retrying(
    uffd: &Uffd,
    geo: &Geometry,
    policy: Resolve,
    flags: u64,
    addr: u64,
    zero: &[u8],
) -> Result<(), String> {
    let mut last = Ok(());
    for _ in 0..2000 {
        last = resolve(uffd, geo, policy, flags, addr, zero);
        match last {
            Err((_, nix::errno::Errno::EAGAIN)) => {
                std::thread::sleep(std::time::Duration::from_micros(500))
            }
            _ => break,
        }
    }
    last.map_err(|(ioctl, e)| {
        let what = Message::flag_names(flags);
        format!("{ioctl} on {what} fault at 0x{addr:x}: {}", e.desc())
    })
}

/// Resolves one page fault on the page that holds `addr`, as `policy` says. A failure names
/// the ioctl and its errno.
fn resolve(
    uffd: &Uffd,
    geo: &Geometry,
    policy: Resolve,
    flags: u64,
    addr: u64,
    zero: &[u8],
) -> Result<(), (&'static str, nix::errno::Errno)> {
    if policy == Resolve::Never {
        return Ok(());
    }
    let page = (addr as usize) & !(geo.page_size - 1);
    let len = geo.page_size;
    let failed = |ioctl: &'static str| move |e: nix::errno::Errno| (ioctl, e);
    if flags & UFFD_PAGEFAULT_FLAG_WP != 0 {
        uffd.writeprotect(page, len, 0)
            .map_err(failed("UFFDIO_WRITEPROTECT(0)"))
    } else if flags & UFFD_PAGEFAULT_FLAG_MINOR != 0 {
        let mode = if policy == Resolve::ContinueWp {
            UFFDIO_CONTINUE_MODE_WP
        } else {
            0
        };
        uffd.continue_(page, len, mode)
            .map(drop)
            .map_err(failed("UFFDIO_CONTINUE"))
    } else {
        let result = match policy {
            Resolve::Zeropage => uffd.zeropage(page, len, 0).map(drop),
            Resolve::CopyWp => uffd
                .copy(page, zero.as_ptr() as usize, len, UFFDIO_COPY_MODE_WP)
                .map(drop),
            _ => uffd.copy(page, zero.as_ptr() as usize, len, 0).map(drop),
        };
        match result {
            Ok(()) => Ok(()),
            // Another thread resolved it first: wake the faulting thread to retry.
            Err(nix::errno::Errno::EEXIST) => uffd.wake(page, len).map_err(failed("UFFDIO_WAKE")),
            Err(e) => Err(("UFFDIO_COPY/ZEROPAGE", e)),
        }
    }
}
