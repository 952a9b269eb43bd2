//! Kernel WARNING/BUG lines logged while a stress step ran: /dev/kmsg is opened and moved to
//! its end when the step starts, and read to its end when the step ends. Readable by root (in
//! `uffd-conform vm` the suite is root); elsewhere the step says the log was not checked.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// An open position in the kernel log, or why there is none.
pub struct Watch(Result<OwnedFd, String>);

impl Watch {
    pub fn start() -> Watch {
        // SAFETY: a static path; the descriptor is ours.
        let fd = unsafe {
            libc::open(
                c"/dev/kmsg".as_ptr(),
                libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Watch(Err(nix::errno::Errno::last().desc().to_string()));
        }
        // SAFETY: fd is open and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: SEEK_END on /dev/kmsg moves past every record logged so far.
        if unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_END) } < 0 {
            return Watch(Err(nix::errno::Errno::last().desc().to_string()));
        }
        Watch(Ok(fd))
    }

    /// A note on what was checked, and the alarming lines logged since `start` by `own`
    /// tasks or by no task we can tell (a kernel thread may work for us). A WARNING from
    /// another user task is another trial's: the note names it, and `uffd-conform vm`'s
    /// whole-console check (`vm::kernel-log::console`) still judges it.
    pub fn finish(self, own: &[u64]) -> (String, Vec<String>) {
        let fd = match self.0 {
            Ok(fd) => fd,
            Err(e) => return (format!("kernel log not checked: /dev/kmsg: {e}"), vec![]),
        };
        let mut records = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            // SAFETY: reading one record into `buf`.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                match nix::errno::Errno::last() {
                    nix::errno::Errno::EPIPE => continue, // records overwritten: go on
                    _ => break,                           // EAGAIN: the end
                }
            }
            if n == 0 {
                break;
            }
            records.push(String::from_utf8_lossy(&buf[..n as usize]).into_owned());
        }
        let (mut lines, mut others) = (Vec::new(), Vec::new());
        for (i, record) in records.iter().enumerate() {
            let Some(line) = alarming(record) else {
                continue;
            };
            // The task: on the WARNING line itself, or on the "CPU: .. PID: .. Comm: .." line
            // that follows a BUG or oops.
            let next = || {
                records[i + 1..]
                    .iter()
                    .take(8)
                    .filter_map(|r| task_of(r.split_once(';').map_or(r.as_str(), |(_, m)| m)))
            };
            let task = match task_of(&line) {
                Some((pid, None)) => Some((
                    pid,
                    next()
                        .find(|(p, c)| *p == pid && c.is_some())
                        .and_then(|(_, c)| c),
                )),
                Some(t) => Some(t),
                None => next().next(),
            };
            match task {
                Some((pid, comm))
                    if !own.contains(&pid) && !kernel_thread(pid, comm.as_deref()) =>
                {
                    others.push(format!("{line} (task {pid}, not this trial's)"))
                }
                _ => lines.push(line),
            }
        }
        let note = if others.is_empty() {
            "kernel log checked: no WARNING or BUG".into()
        } else {
            format!(
                "kernel log checked: nothing from this trial's tasks; from other trials' tasks: {}",
                others.join("; ")
            )
        };
        (note, lines)
    }
}

/// The PID (and, when the line has it, the command) a kernel log line names:
/// `WARNING: CPU: 0 PID: 42 at ...` or `CPU: 0 UID: 0 PID: 42 Comm: name ...`.
fn task_of(line: &str) -> Option<(u64, Option<String>)> {
    let line = line.lines().next().unwrap_or("");
    let (_, rest) = line.split_once("PID: ")?;
    let pid = rest.split_whitespace().next()?.parse().ok()?;
    let comm = rest
        .split_once("Comm: ")
        .and_then(|(_, c)| c.split_whitespace().next())
        .map(str::to_string);
    Some((pid, comm))
}

/// Whether `pid` is a kernel thread (its parent is kthreadd), which may be doing this trial's
/// work (ksmd, kcompactd, kworkers): when it is gone, its command name tells.
fn kernel_thread(pid: u64, comm: Option<&str>) -> bool {
    if pid <= 2 {
        return true;
    }
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) state ppid ...`: the comm may hold spaces, so split after its `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u64>().ok());
        return ppid == Some(2);
    }
    const KERNEL: [&str; 12] = [
        "kworker",
        "ksmd",
        "kcompactd",
        "khugepaged",
        "kswapd",
        "migration",
        "ksoftirqd",
        "rcu",
        "kthreadd",
        "swapper",
        "oom_reaper",
        "kdamond",
    ];
    // A gone task whose name we lack: assume the worst, it may have been ours.
    comm.is_none_or(|c| KERNEL.iter().any(|k| c.starts_with(k)))
}

/// The message of a /dev/kmsg record (`prio,seq,usec,flags;message`) when it reports a kernel
/// warning, bug or oops.
pub fn alarming(record: &str) -> Option<String> {
    let message = record.split_once(';').map_or(record, |(_, m)| m);
    let message = message.lines().next().unwrap_or("").trim();
    const MARKS: [&str; 6] = [
        "WARNING: CPU:",
        "BUG:",
        "kernel BUG at",
        "Oops:",
        "general protection fault",
        "Bad page state",
    ];
    MARKS
        .iter()
        .any(|m| message.contains(m))
        .then(|| message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_and_bugs_are_alarming_and_other_lines_not() {
        let warn =
            "4,1234,5678,-;WARNING: CPU: 1 PID: 42 at mm/memory.c:1234 zap_pte_range+0x1/0x2\n";
        assert_eq!(
            alarming(warn).as_deref(),
            Some("WARNING: CPU: 1 PID: 42 at mm/memory.c:1234 zap_pte_range+0x1/0x2")
        );
        assert!(alarming("0,1,2,-;kernel BUG at mm/huge_memory.c:2000!").is_some());
        assert!(
            alarming("1,2,3,-;BUG: Bad rss-counter state mm:0000 type:MM_ANONPAGES val:1")
                .is_some()
        );
        assert!(alarming(
            "6,3,4,-;Memory failure: 0x1234: recovery action for dirty LRU page: Recovered"
        )
        .is_none());
        assert!(alarming("6,3,4,-;zram0: detected capacity change").is_none());
    }

    #[test]
    fn warnings_name_their_task() {
        assert_eq!(
            task_of("WARNING: CPU: 0 PID: 2707 at mm/mprotect.c:367 change_protection+0x12ab"),
            Some((2707, None))
        );
        assert_eq!(
            task_of("CPU: 1 UID: 0 PID: 42 Comm: stress-3 Not tainted 6.12.118 #1"),
            Some((42, Some("stress-3".into())))
        );
        assert_eq!(task_of("kernel BUG at mm/huge_memory.c:2000!"), None);
        assert!(kernel_thread(2, None));
        assert!(kernel_thread(999_999_999, Some("kworker/0:1")));
        assert!(kernel_thread(999_999_999, None), "unknown: may be ours");
        assert!(!kernel_thread(999_999_999, Some("uffd-conform")));
        assert!(
            !kernel_thread(std::process::id() as u64, None),
            "a user process"
        );
    }
}
