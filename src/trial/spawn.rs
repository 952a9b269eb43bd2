//! The runner's side of a trial: start a fresh process, enforce the time limit, and turn what
//! the process said (or how it died) into a [`TrialResult`].

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::child::{CHILD_ENV, NOBODY};
use super::protocol::{ChildLine, ProcessReport, TrialSpec};
use super::verdict::{FailKind, TrialResult, Verdict};
use super::zygote::{self, ForkError};
use crate::case::model::RunAs;

/// How much of a trial's stderr is kept for the report.
const STDERR_KEEP: usize = 16 * 1024;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `spec` in a fresh process: a child of this thread's zygote (see [`zygote`]), or of
/// this executable run afresh.
pub fn run_in_fresh_process(name: &str, spec: &TrialSpec, timeout: Duration) -> TrialResult {
    let started = Instant::now();
    let spawned = super::protocol::monotonic_ns();
    let (verdict, mut report, stderr) = run_process(spec, timeout);
    if let Some(r) = &mut report {
        r.timing.spawned = spawned;
        r.timing.reaped = super::protocol::monotonic_ns();
    }
    TrialResult {
        name: name.to_string(),
        memory: spec.memory,
        verdict,
        duration: started.elapsed(),
        report,
        stderr,
    }
}

fn run_process(spec: &TrialSpec, timeout: Duration) -> (Verdict, Option<ProcessReport>, String) {
    let nobody = spec.case.run_as == RunAs::Nobody;
    let mut process = match start(nobody) {
        Ok(p) => p,
        Err(e) => return (Verdict::fail(FailKind::Error, e), None, String::new()),
    };
    let pid = process.pid;
    let mut reaper = process.reaper;
    let input = serde_json::to_vec(spec).expect("a trial spec serializes");
    if let Some(mut stdin) = process.stdin.take() {
        // A child that died at once shows up below; the write error adds nothing.
        let _ = stdin.write_all(&input);
    }
    let (tx, rx) = mpsc::channel::<ChildLine>();
    let stdout = process.stdout;
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(parsed) = serde_json::from_str::<ChildLine>(&line) {
                if tx.send(parsed).is_err() {
                    break;
                }
            }
        }
    });
    let mut stderr_pipe = process.stderr;
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let cut = text.len().saturating_sub(STDERR_KEEP);
        text[text.ceil_char_boundary(cut)..].to_string()
    });

    let deadline = Instant::now() + timeout;
    let mut last_step = 0;
    let mut report = None;
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ChildLine::Step(n)) => last_step = n,
            Ok(ChildLine::Report(r)) => report = Some(r),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
        }
    }
    // Kill the whole group: the trial and anything it forked. The trial is not reaped yet (by
    // us or its zygote), so the group id is still its own.
    // SAFETY: kill(2) on the trial's own process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let status = reaper.wait();
    let _ = reader.join();
    let stderr = stderr_reader.join().unwrap_or_default();
    let at = |n: usize| {
        if n == 0 {
            "during setup".to_string()
        } else {
            format!("at step {n}")
        }
    };

    let tail = stderr_tail(&stderr);
    let with_tail = |msg: String| {
        if tail.is_empty() {
            msg
        } else {
            format!("{msg}\n{tail}")
        }
    };
    if timed_out && report.is_none() {
        let msg = format!(
            "TIMEOUT: no result after {:.1} s, {} (the trial was killed)",
            timeout.as_secs_f64(),
            at(last_step)
        );
        return (
            Verdict::fail(FailKind::Timeout, with_tail(msg)),
            None,
            stderr,
        );
    }
    if let Some(r) = report {
        return (Verdict::from_report(&r), Some(r), stderr);
    }
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            return (
                Verdict::fail(FailKind::Error, format!("cannot wait for the trial: {e}")),
                None,
                stderr,
            )
        }
    };
    let msg = match (status.signal(), status.code()) {
        (Some(sig), _) => {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or(sig.to_string());
            format!(
                "SIGNAL: the trial process was killed by {name} {}",
                at(last_step)
            )
        }
        // A Rust panic exits with 101 after printing "panicked at" (the tail below says where).
        (None, Some(101)) if stderr.contains("panicked at") => {
            format!(
                "PANIC: the trial process panicked {} without a result",
                at(last_step)
            )
        }
        (None, Some(code)) => format!(
            "the trial process exited with code {code} {} without a result",
            at(last_step)
        ),
        _ => format!("the trial process ended {} without a result", at(last_step)),
    };
    let kind = if status.signal().is_some() {
        FailKind::Signal
    } else {
        FailKind::Error
    };
    let msg = with_tail(msg);
    (Verdict::fail(kind, msg), None, stderr)
}

/// A started trial process: its pid (also its process group) and the runner's ends of its
/// stdin, stdout and stderr.
struct Process {
    pid: i32,
    stdin: Option<File>,
    stdout: File,
    stderr: File,
    reaper: Reaper,
}

/// Who reaps the trial process.
enum Reaper {
    /// This thread's zygote forked it and reports its status.
    Zygote,
    /// The runner started it with exec.
    Exec(Child),
}

impl Reaper {
    fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            Reaper::Zygote => zygote::wait_trial(),
            Reaper::Exec(child) => child.wait(),
        }
    }
}

/// Starts a trial process: forked by this thread's zygote, or, when no zygote can be had,
/// this executable run afresh. Either way a fresh process in its own process group.
fn start(nobody: bool) -> Result<Process, String> {
    match zygote::fork_trial(nobody) {
        Ok(f) => {
            return Ok(Process {
                pid: f.pid,
                stdin: Some(f.stdin),
                stdout: f.stdout,
                stderr: f.stderr,
                reaper: Reaper::Zygote,
            })
        }
        Err(ForkError::Fork(e)) => return Err(format!("cannot start the trial process: {e}")),
        Err(ForkError::Unavailable) => {}
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let mut command = Command::new(exe);
    command
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if nobody {
        // std drops the supplementary groups itself when root switches uid.
        command.uid(NOBODY).gid(NOBODY);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the trial process: {e}"))?;
    let pipe = |fd: Option<OwnedFd>| File::from(fd.expect("piped"));
    Ok(Process {
        pid: child.id() as i32,
        stdin: Some(pipe(child.stdin.take().map(OwnedFd::from))),
        stdout: pipe(child.stdout.take().map(OwnedFd::from)),
        stderr: pipe(child.stderr.take().map(OwnedFd::from)),
        reaper: Reaper::Exec(child),
    })
}

/// What of a dead trial's stderr goes into its verdict: for a panic, where and why it panicked
/// (a backtrace after it would push that out of the last lines); otherwise the last 5 lines.
fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    if let Some(i) = lines.iter().rposition(|l| l.contains("panicked at")) {
        return lines[i..]
            .iter()
            .take(2)
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
    }
    lines[lines.len().saturating_sub(5)..].join("\n")
}
