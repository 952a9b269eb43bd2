//! Reliability of the runner itself, through the built binary: trials that hang, crash or
//! panic are reported and never stop the run; the host's huge pages, swap and sysctls are back
//! as they were after a normal, a failing and an interrupted run; an unprivileged run fails
//! nothing and says why it skips. The host checks run one at a time (they share the machine)
//! and need root: without it they are ignored with that reason.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

type Check = Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    // These tests change and inspect machine-wide state: never two at once.
    args.test_threads = Some(1);
    let root_only = |name: &'static str, f: fn() -> Check| {
        let t = Trial::test(name, f);
        if nix::unistd::geteuid().is_root() {
            t
        } else {
            t.with_ignored_flag(true)
        }
    };
    let trials = vec![
        Trial::test("isolation::report-is-complete", report_is_complete),
        Trial::test(
            "isolation::stuck-trials-die-with-the-runner",
            stuck_trials_die_with_the_runner,
        ),
        Trial::test("isolation::repeat-reports-rounds", repeat_reports_rounds),
        root_only("host::restored-after-a-passing-run", || {
            host_restored(Ending::Passes)
        }),
        root_only("host::restored-after-a-failing-run", || {
            host_restored(Ending::Fails)
        }),
        root_only("host::restored-after-sigint", || {
            host_restored(Ending::Signal(libc::SIGINT))
        }),
        root_only("host::restored-after-sigterm", || {
            host_restored(Ending::Signal(libc::SIGTERM))
        }),
        root_only(
            "privileges::unprivileged-run-fails-nothing",
            unprivileged_run_fails_nothing,
        ),
    ];
    if !nix::unistd::geteuid().is_root() {
        eprintln!("note: host:: and privileges:: tests need root (to provision and to drop privileges); ignored");
    }
    libtest_mimic::run(&args, trials).exit();
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tag in the runner's environment, inherited by its trial processes, to find them in /proc.
const TAG_ENV: &str = "UFFD_CONFORM_RELIABILITY_TAG";

fn cli(tag: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_uffd-conform"));
    c.current_dir(root())
        .env(TAG_ENV, tag)
        .env_remove("UFFD_CONFORM_NO_PROVISION");
    c
}

/// A fresh folder (the topic) holding `cases` as NAME.yaml files.
fn scratch(topic: &str, cases: &[(&str, String)]) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("uffd-conform-rel-{}", std::process::id()))
        .join(topic);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    for (name, text) in cases {
        std::fs::write(dir.join(format!("{name}.yaml")), text).expect("scratch case");
    }
    dir
}

fn case(name: &str, head: &str, steps: &str) -> String {
    format!("name: {name}\nabout: Reliability test case.\nrefs: [{{man: \"userfaultfd(2)\"}}]\n{head}steps:\n{steps}")
}

fn passing(memory: &str) -> String {
    case(
        "passes",
        &format!("memory: [{memory}]\npages: 1\n"),
        "  - write: {pages: 0, data: 1}\n  - read: {pages: 0, data: 1}\n",
    )
}

/// Blocks at step 3 until its time limit.
fn hanging(timeout_ms: u64) -> String {
    case(
        "hangs",
        &format!("memory: [anon]\npages: 1\nresolve: never\ntimeout_ms: {timeout_ms}\n"),
        "  - write: {pages: 0, data: 1}\n  - protect: {pages: 0}\n  - write: {pages: 0, data: 2, faults: wp}\n",
    )
}

/// Dies of SIGSEGV at step 3: the page is gone.
fn crashing() -> String {
    case(
        "crashes",
        "memory: [anon]\npages: 2\n",
        "  - write: {pages: all, data: 1}\n  - mprotect: {pages: 0, prot: none}\n  - write: {pages: 0, data: 2}\n",
    )
}

/// Panics at step 2 through the test hook.
fn panicking() -> String {
    case(
        "panics",
        "memory: [anon]\npages: 1\n",
        "  - write: {pages: 0, data: 1}\n  - read: {pages: 0, data: 1}\n",
    )
}

/// Waits for `child` at most `limit`; kills it and fails past that (the runner must not hang).
fn wait_output(mut child: Child, limit: Duration) -> Result<Output, Failed> {
    let start = Instant::now();
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return child.wait_with_output().map_err(|e| e.to_string().into());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!(
                "the runner did not finish in {limit:?}; stdout:\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes (other than zombies) whose environment carries `tag`.
fn tagged_processes(tag: &str) -> Vec<u32> {
    let needle = format!("{TAG_ENV}={tag}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('Z'))
                })
                .unwrap_or(true);
            !zombie && env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes())
        })
        .collect()
}

/// Waits up to two seconds for every tagged process to be gone.
fn no_process_left(tag: &str) -> Check {
    let start = Instant::now();
    loop {
        let left = tagged_processes(tag);
        if left.is_empty() {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(2) {
            return Err(format!("trial processes outlived the runner: {left:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn expect(cond: bool, what: &str, out: &Output) -> Check {
    if cond {
        return Ok(());
    }
    Err(format!(
        "{what}\nexit: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .into())
}

/// One passing, one hanging, one crashing and one panicking trial: the run ends, names each
/// failure with its kind and step, and its summary counts all four.
fn report_is_complete() -> Check {
    let dir = scratch(
        "iso",
        &[
            ("passes", passing("anon")),
            ("hangs", hanging(1500)),
            ("crashes", crashing()),
            ("panics", panicking()),
        ],
    );
    let tag = format!("complete-{}", std::process::id());
    let child = cli(&tag)
        .args(["run", "--no-provision", "-j", "2"])
        .arg(&dir)
        .env("UFFD_CONFORM_TEST_PANIC_AT", "panics:2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = wait_output(child, Duration::from_secs(60))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    expect(out.status.code() == Some(1), "exit code is not 1", &out)?;
    expect(
        stdout.trim_end().ends_with("1 passed, 3 failed, 0 skipped"),
        "the summary does not count all four",
        &out,
    )?;
    for want in [
        "FAIL    iso::hangs::anon",
        "TIMEOUT: no result after 1.5 s, at step 3 (the trial was killed)",
        "FAIL    iso::crashes::anon",
        "SIGNAL: the trial process was killed by SIGSEGV at step 3",
        "FAIL    iso::panics::anon",
        "PANIC: the trial process panicked at step 2 without a result",
        "UFFD_CONFORM_TEST_PANIC_AT asked for a panic at step 2",
    ] {
        expect(
            stdout.contains(want),
            &format!("the report lacks {want:?}"),
            &out,
        )?;
    }
    no_process_left(&tag)
}

/// A runner killed outright (no chance to clean up) still takes its stuck trial with it:
/// PR_SET_PDEATHSIG in the trial process.
fn stuck_trials_die_with_the_runner() -> Check {
    let dir = scratch("stuck", &[("hangs", hanging(60_000))]);
    let tag = format!("stuck-{}", std::process::id());
    let mut child = cli(&tag)
        .args(["run", "--no-provision"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Wait for the trial process to exist.
    let start = Instant::now();
    while tagged_processes(&tag).len() < 2 {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            return Err("the trial process never started".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().map_err(|e| e.to_string())?;
    let _ = child.wait();
    no_process_left(&tag)
}

fn repeat_reports_rounds() -> Check {
    let dir = scratch("rep", &[("passes", passing("anon"))]);
    let out = cli("repeat")
        .args(["run", "--no-provision", "--repeat", "3"])
        .arg(&dir)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    expect(out.status.code() == Some(0), "exit code is not 0", &out)?;
    expect(
        stdout.contains("repeat: 3 rounds of 1 trials, 0 flaky"),
        "no repeat line",
        &out,
    )?;
    expect(
        // The summary and the run record are round 1's; the repeat line covers the rounds.
        stdout.trim_end().ends_with("1 passed, 0 failed, 0 skipped"),
        "the summary is not round 1's",
        &out,
    )?;
    let bad = cli("repeat")
        .args(["run", "--no-provision", "--repeat", "0"])
        .arg(&dir)
        .output()
        .map_err(|e| e.to_string())?;
    expect(
        bad.status.code() == Some(2),
        "--repeat 0 is not a usage error",
        &bad,
    )
}

/// What a run may change on the host, to compare before and after.
#[derive(Debug, PartialEq, Eq)]
struct HostState {
    nr_hugepages: String,
    nr_overcommit_hugepages: String,
    unprivileged_userfaultfd: String,
    /// Device or file names in /proc/swaps.
    swaps: Vec<String>,
    zram_devices: Vec<String>,
    swap_files: Vec<String>,
}

impl HostState {
    fn read() -> HostState {
        let sysctl = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/vm/{name}"))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let list = |dir: &Path, prefix: &str| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.file_name().to_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            v.retain(|n| n.starts_with(prefix));
            v.sort();
            v
        };
        let swaps = std::fs::read_to_string("/proc/swaps")
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect();
        HostState {
            nr_hugepages: sysctl("nr_hugepages"),
            nr_overcommit_hugepages: sysctl("nr_overcommit_hugepages"),
            unprivileged_userfaultfd: sysctl("unprivileged_userfaultfd"),
            swaps,
            zram_devices: list(Path::new("/sys/block"), "zram"),
            swap_files: list(&std::env::temp_dir(), "uffd-conform-swap."),
        }
    }
}

enum Ending {
    Passes,
    Fails,
    Signal(i32),
}

/// Runs trials that need huge pages and swap, ending as `ending` says, and checks the host is
/// as it was before.
fn host_restored(ending: Ending) -> Check {
    let before = HostState::read();
    let swap_case = |name: &str, steps: &str, head: &str| {
        case(
            name,
            &format!("memory: [anon, hugetlb]\npages: 1\nneeds: [swap]\n{head}"),
            steps,
        )
    };
    let (cases, topic) = match ending {
        Ending::Passes => (vec![("passes", swap_case("passes", "  - write: {pages: 0}\n", ""))], "host-pass"),
        Ending::Fails => (
            vec![
                ("passes", swap_case("passes", "  - write: {pages: 0}\n", "")),
                ("fails", swap_case("fails", "  - write: {pages: 0, data: 1}\n  - read: {pages: 0, data: 2}\n", "")),
            ],
            "host-fail",
        ),
        Ending::Signal(_) => (
            vec![(
                "hangs",
                swap_case(
                    "hangs",
                    "  - write: {pages: 0, data: 1}\n  - protect: {pages: 0}\n  - write: {pages: 0, data: 2, faults: wp}\n",
                    "resolve: never\ntimeout_ms: 60000\n",
                ),
            )],
            "host-signal",
        ),
    };
    let cases: Vec<(&str, String)> = cases.into_iter().collect();
    let dir = scratch(topic, &cases);
    let tag = format!("{topic}-{}", std::process::id());
    let mut child = cli(&tag)
        .args(["run", "-j", "2"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Read stderr as it comes: the provision notes, then the line that says trials started.
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let started = line.starts_with("uffd-conform: ");
        log.push(line);
        if started {
            break;
        }
    }
    if let Ending::Signal(sig) = ending {
        // Let the trials start (the hugetlb one holds huge pages, the anon one is blocked).
        std::thread::sleep(Duration::from_millis(500));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::try_from(sig).unwrap(),
        )
        .map_err(|e| e.to_string())?;
    }
    let out = wait_output(child, Duration::from_secs(90))?;
    let _ = reader.join();
    log.extend(rx.try_iter());
    let log = log.join("\n");
    let provisioned =
        log.contains("provision: vm.nr_hugepages") && log.contains("provision: swap on ");
    let after = HostState::read();
    let show = |what: &str| {
        format!(
            "{what}\nstderr:\n{log}\nstdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    };
    if !provisioned {
        return Err(show("the run provisioned nothing, so nothing was tested (does the host already have huge pages and swap?)").into());
    }
    let code = out.status.code();
    match ending {
        Ending::Passes if code != Some(0) => {
            return Err(show(&format!("exit {code:?}, want 0")).into())
        }
        Ending::Fails if code != Some(1) => {
            return Err(show(&format!("exit {code:?}, want 1")).into())
        }
        Ending::Signal(sig) if code != Some(128 + sig) || !log.contains("machine restored") => {
            return Err(show(&format!(
                "exit {code:?}, want {} and `machine restored`",
                128 + sig
            ))
            .into())
        }
        _ => {}
    }
    if after != before {
        return Err(show(&format!(
            "the host changed:\nbefore {before:?}\nafter  {after:?}"
        ))
        .into());
    }
    no_process_left(&tag)
}

/// The built binary as nobody (uid/gid 65534, no groups): with vm.unprivileged_userfaultfd 0
/// (UFFD_USER_MODE_ONLY) and 1, no trial fails and every skip says why.
fn unprivileged_run_fails_nothing() -> Check {
    const SYSCTL: &str = "/proc/sys/vm/unprivileged_userfaultfd";
    let original = std::fs::read_to_string(SYSCTL).map_err(|e| format!("{SYSCTL}: {e}"))?;
    // Put the sysctl back however this test ends.
    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = std::fs::write(SYSCTL, self.0.trim());
        }
    }
    let _restore = Restore(original.clone());
    for setting in ["0", "1"] {
        std::fs::write(SYSCTL, setting).map_err(|e| format!("{SYSCTL}: {e}"))?;
        let out = cli("unprivileged")
            .args(["run", "-v", "cases", "tests/meta"])
            .uid(65534)
            .gid(65534)
            .env("HOME", "/")
            .output()
            .map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let context = format!("vm.unprivileged_userfaultfd={setting}: ");
        expect(
            out.status.code() == Some(0),
            &format!("{context}exit is not 0"),
            &out,
        )?;
        let summary = stdout.lines().last().unwrap_or_default();
        expect(
            summary.contains(" passed, 0 failed, "),
            &format!("{context}failures: {summary}"),
            &out,
        )?;
        let passed: usize = summary
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        expect(
            passed > 0,
            &format!("{context}nothing passed: the run did not run what it can"),
            &out,
        )?;
        for line in stdout.lines().filter(|l| l.starts_with("skip ")) {
            let reason = line
                .split_once(": ")
                .map(|(_, r)| r.trim())
                .unwrap_or_default();
            expect(
                reason.len() > 10,
                &format!("{context}a skip without a reason: {line}"),
                &out,
            )?;
        }
    }
    let now = std::fs::read_to_string(SYSCTL).map_err(|e| e.to_string())?;
    drop(_restore);
    let restored = std::fs::read_to_string(SYSCTL).map_err(|e| e.to_string())?;
    if restored.trim() != original.trim() {
        return Err(format!(
            "{SYSCTL} is {restored}, was {original} (set to {now} during the test)"
        )
        .into());
    }
    Ok(())
}
