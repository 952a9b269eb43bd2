//! The zygote: a clean, single-threaded process of this binary, started (fork + exec) once per
//! runner thread, that forks one trial process per trial. A trial process is then a fresh
//! fork of a process that never ran a trial, never opened a userfaultfd and never started a
//! thread, without the cost of an exec per trial (under TCG in a VM, an exec of the static
//! binary and its start-up are most of a small trial's time).
//!
//! The runner keeps everything else: it makes the trial's stdin, stdout and stderr pipes and
//! hands the trial's ends to the zygote (SCM_RIGHTS), sends the spec, reads the same
//! [`ChildLine`](super::protocol::ChildLine)s, enforces the time limit and kills the trial's
//! process group. The zygote only forks (putting the trial in its own process group and, for
//! `run_as: nobody`, dropping to uid/gid 65534 as an exec'd process would be), reaps the trial
//! and sends its wait status back.
//!
//! Protocol, on a SOCK_SEQPACKET socket that is the zygote's stdin:
//! - runner -> zygote: one byte of flags ([`RUN_AS_NOBODY`]) with three descriptors (the
//!   trial's stdin, stdout, stderr);
//! - zygote -> runner: [`FORKED`] with the pid (or minus the fork's errno);
//! - runner -> zygote, once it has killed the trial's process group: [`REAP`];
//! - zygote -> runner: [`REAPED`] with the trial's raw wait status.
//!
//! The zygote reaps the trial only when asked, as the runner reaped its own child before: until
//! then a trial that ended is a zombie that keeps its pid and process group, so the runner's
//! kill of the group can never reach a process that reused the id.
//!
//! `UFFD_CONFORM_NO_ZYGOTE=1` makes the runner exec the binary for every trial instead.

use std::cell::RefCell;
use std::fs::File;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use super::child::NOBODY;

/// Set (to the runner's pid) in the zygote's environment.
pub const ZYGOTE_ENV: &str = "UFFD_CONFORM_ZYGOTE";
/// Set in the runner's environment to exec the binary for every trial instead.
pub const NO_ZYGOTE_ENV: &str = "UFFD_CONFORM_NO_ZYGOTE";

/// Request flag: drop to uid/gid [`NOBODY`] before running the trial.
const RUN_AS_NOBODY: u8 = 1;
/// Request: reap the trial forked last and send its status.
const REAP: u8 = 0x80;
/// Reply tags.
const FORKED: u32 = 1;
const REAPED: u32 = 2;

/// A trial process forked by this thread's zygote: its pid and the runner's ends of its pipes.
pub struct Forked {
    pub pid: i32,
    pub stdin: File,
    pub stdout: File,
    pub stderr: File,
}

/// Why a trial could not be forked.
pub enum ForkError {
    /// No zygote could be used: start the trial the old way (exec).
    Unavailable,
    /// The zygote's fork(2) failed.
    Fork(std::io::Error),
}

/// The runner's side of one zygote.
struct Zygote {
    sock: OwnedFd,
    process: Child,
}

thread_local! {
    /// Each runner thread has its own zygote: one trial at a time, no sharing, and it dies
    /// with the thread (PR_SET_PDEATHSIG, and this handle's drop).
    static ZYGOTE: RefCell<Option<Zygote>> = const { RefCell::new(None) };
}

impl Zygote {
    fn start() -> std::io::Result<Zygote> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let process = Command::new(std::env::current_exe()?)
            .env(ZYGOTE_ENV, std::process::id().to_string())
            .env_remove(super::child::CHILD_ENV)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Terminal signals are for the runner, which restores the host and exits; the
            // zygote and its trials follow it (socket closed, PR_SET_PDEATHSIG).
            .process_group(0)
            .spawn()?;
        Ok(Zygote {
            sock: ours,
            process,
        })
    }

    fn fork(&mut self, nobody: bool) -> Result<Forked, ForkError> {
        let (stdin_r, stdin_w) = pipe()?;
        let (stdout_r, stdout_w) = pipe()?;
        let (stderr_r, stderr_w) = pipe()?;
        let fds = [
            stdin_r.as_raw_fd(),
            stdout_w.as_raw_fd(),
            stderr_w.as_raw_fd(),
        ];
        let flags = [if nobody { RUN_AS_NOBODY } else { 0 }];
        sendmsg::<()>(
            self.sock.as_raw_fd(),
            &[IoSlice::new(&flags)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|_| ForkError::Unavailable)?;
        drop((stdin_r, stdout_w, stderr_w));
        let pid = self.reply(FORKED).ok_or(ForkError::Unavailable)?;
        if pid <= 0 {
            return Err(ForkError::Fork(std::io::Error::from_raw_os_error(-pid)));
        }
        Ok(Forked {
            pid,
            stdin: File::from(stdin_w),
            stdout: File::from(stdout_r),
            stderr: File::from(stderr_r),
        })
    }

    /// The next reply, which must carry `tag`; None when the zygote is gone or out of step.
    fn reply(&mut self, tag: u32) -> Option<i32> {
        let mut buf = [0u8; 8];
        let n = loop {
            match nix::sys::socket::recv(self.sock.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.ok()?,
            }
        };
        let got = u32::from_ne_bytes(buf[..4].try_into().expect("4 bytes"));
        (n == 8 && got == tag).then(|| i32::from_ne_bytes(buf[4..].try_into().expect("4 bytes")))
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        // Its trials die with it (PR_SET_PDEATHSIG); reap it so no zombie is left.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

impl From<std::io::Error> for ForkError {
    fn from(e: std::io::Error) -> ForkError {
        ForkError::Fork(e)
    }
}

/// Forks a trial process from this thread's zygote (started on first use, restarted once if
/// it died).
pub fn fork_trial(nobody: bool) -> Result<Forked, ForkError> {
    if std::env::var_os(NO_ZYGOTE_ENV).is_some() {
        return Err(ForkError::Unavailable);
    }
    ZYGOTE.with(|cell| {
        let mut slot = cell.borrow_mut();
        for _ in 0..2 {
            if slot.is_none() {
                *slot = Some(Zygote::start().map_err(|_| ForkError::Unavailable)?);
            }
            match slot.as_mut().expect("just set").fork(nobody) {
                Err(ForkError::Unavailable) => *slot = None,
                other => return other,
            }
        }
        Err(ForkError::Unavailable)
    })
}

/// Waits for the trial this thread's zygote forked last (the runner has killed its process
/// group or seen its stdout close) and returns its status.
pub fn wait_trial() -> std::io::Result<ExitStatus> {
    ZYGOTE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let status = slot.as_mut().and_then(|z| {
            nix::sys::socket::send(z.sock.as_raw_fd(), &[REAP], MsgFlags::MSG_NOSIGNAL).ok()?;
            z.reply(REAPED)
        });
        match status {
            Some(raw) => Ok(ExitStatus::from_raw(raw)),
            None => {
                *slot = None;
                Err(std::io::Error::other("the zygote process died"))
            }
        }
    })
}

/// The zygote's main loop (this process was started with [`ZYGOTE_ENV`]). Never returns.
pub fn serve() -> ! {
    // SAFETY: prctl(PR_SET_PDEATHSIG) has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let runner: Option<i32> = std::env::var(ZYGOTE_ENV).ok().and_then(|v| v.parse().ok());
    if runner.is_some_and(|r| r != nix::unistd::getppid().as_raw()) {
        // The runner died before the parent-death signal was armed.
        std::process::exit(0);
    }
    let me = std::process::id() as i32;
    let control: RawFd = 0;
    loop {
        let mut flags = [0u8; 1];
        let mut space = nix::cmsg_space!([RawFd; 3]);
        let mut iov = [IoSliceMut::new(&mut flags)];
        let msg = match recvmsg::<()>(
            control,
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::process::exit(0),
            Ok(m) => m,
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: descriptors just received, owned by nobody else.
                    fds.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
        }
        if msg.bytes == 0 {
            // The runner closed its end.
            std::process::exit(0);
        }
        let nobody = flags[0] & RUN_AS_NOBODY != 0;
        if fds.len() != 3 {
            send(FORKED, -libc::EINVAL);
            continue;
        }
        // SAFETY: this process has one thread, so the child may do anything after fork.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            trial_process(fds, nobody, me);
        }
        drop(fds);
        if pid < 0 {
            send(
                FORKED,
                -std::io::Error::last_os_error().raw_os_error().unwrap_or(1),
            );
            continue;
        }
        // Also here, so the group exists before the runner can signal it.
        // SAFETY: setpgid(2) on our own child.
        unsafe { libc::setpgid(pid, pid) };
        send(FORKED, pid);
        // Reap only when the runner asks (see the module's doc). Anything else, or the runner
        // gone, ends the zygote, and the trial with it (PR_SET_PDEATHSIG).
        let mut request = [0u8; 1];
        loop {
            match nix::sys::socket::recv(control, &mut request, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(1) if request[0] == REAP => break,
                _ => std::process::exit(0),
            }
        }
        let mut status = 0;
        // SAFETY: waitpid(2) on our own child with a valid status pointer.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
        send(REAPED, status);
    }
}

fn send(tag: u32, value: i32) {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&tag.to_ne_bytes());
    buf[4..].copy_from_slice(&value.to_ne_bytes());
    if nix::sys::socket::send(0, &buf, MsgFlags::MSG_NOSIGNAL).is_err() {
        // The runner is gone; so are we.
        std::process::exit(0);
    }
}

/// The forked child: becomes the trial process. Never returns.
fn trial_process(fds: Vec<OwnedFd>, nobody: bool, zygote: i32) -> ! {
    let started = super::protocol::monotonic_ns();
    // SAFETY: plain syscalls on descriptors this process owns. The pipes are first moved above
    // 2 (one of them could be 0, 1 or 2 if the zygote was started without them); dup2 onto
    // 0, 1, 2 then replaces the control socket and the zygote's stdout and stderr.
    unsafe {
        libc::setpgid(0, 0);
        let high: Vec<RawFd> = fds
            .iter()
            .map(|fd| libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3))
            .collect();
        drop(fds);
        if high.iter().any(|&fd| fd < 0) {
            // Out of descriptors: without its pipes the trial cannot be run (the runner reports
            // an exit without a result).
            libc::_exit(3);
        }
        for (fd, target) in high.into_iter().zip(0..) {
            libc::dup2(fd, target);
            libc::close(fd);
        }
    }
    if nobody {
        if let Err(e) = become_nobody() {
            eprintln!("trial process: cannot run as uid/gid {NOBODY}: {e}");
            // SAFETY: _exit(2) ends the process without running the zygote's exit handlers.
            unsafe { libc::_exit(3) };
        }
    }
    // After the credential change, which clears it. Die with the zygote.
    // SAFETY: prctl(PR_SET_PDEATHSIG) has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if nix::unistd::getppid().as_raw() != zygote {
        // SAFETY: as above.
        unsafe { libc::_exit(3) };
    }
    super::child::run_spec_from_stdin(started)
}

/// What `Command::uid(65534).gid(65534)` does before exec, plus what the exec itself would do:
/// an exec by an ordinary user leaves the process dumpable, so /proc/self files (pagemap)
/// belong to the trial; a bare setuid(2) would leave them root's.
fn become_nobody() -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: credential syscalls and prctl with plain integer arguments.
    unsafe {
        if libc::getuid() == 0 {
            // As std does: drop the supplementary groups; ignore a failure.
            let _ = libc::setgroups(0, std::ptr::null());
        }
        check(libc::setgid(NOBODY))?;
        check(libc::setuid(NOBODY))?;
        check(libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0))?;
    }
    Ok(())
}
