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

    /// A note on what was checked, and the alarming lines logged since `start`.
    pub fn finish(self) -> (String, Vec<String>) {
        let fd = match self.0 {
            Ok(fd) => fd,
            Err(e) => return (format!("kernel log not checked: /dev/kmsg: {e}"), vec![]),
        };
        let mut lines = Vec::new();
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
            let record = String::from_utf8_lossy(&buf[..n as usize]);
            if let Some(line) = alarming(&record) {
                lines.push(line);
            }
        }
        ("kernel log checked: no WARNING or BUG".into(), lines)
    }
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
}
