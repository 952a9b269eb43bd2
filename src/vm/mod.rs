//! `uffd-conform vm`: run the suite inside a given kernel under qemu. The host builds an
//! initramfs (static suite binary as /init, the selected cases, the modules the guest needs),
//! boots it, reads KTAP off the serial console and reports each trial as a local run would:
//! same lines, same summary, same exit codes. A kernel panic, Oops, BUG or WARNING on the
//! console, a timeout, or a guest that stops before reporting every trial is a failure with a
//! console excerpt, never a pass.
//!
//! - [`cpio`]: the newc archive writer.
//! - [`initramfs`]: what goes in the archive.
//! - [`modules`]: kernel modules for the guest, with their dependencies.
//! - [`guest`]: the guest's /init.
//! - [`qemu`]: booting and collecting the console.
//! - [`console`]: kernel problems on the console.
//! - [`static_binary`]: finding the statically linked suite binary.

pub(crate) mod console;
pub(crate) mod cpio;
pub mod guest;
pub(crate) mod initramfs;
pub(crate) mod modules;
pub mod qemu;
pub mod static_binary;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::kernel::memory::MemoryType;
use crate::output::ktap;
use crate::run::plan::PlannedTrial;
use crate::trial::verdict::{FailKind, TrialResult, Verdict};

/// How to boot the guest and what it runs (the `vm` command's options, less its output ones).
pub struct VmConfig {
    /// The kernel image to boot.
    pub kernel: PathBuf,
    /// The kernel's module tree (lib/modules/RELEASE).
    pub modules: Option<PathBuf>,
    /// Seconds before the VM is killed.
    pub timeout: u64,
    /// Trials run at once inside the guest (None: the guest's cores).
    pub jobs: Option<usize>,
    /// Echo the guest console to stderr.
    pub verbose: bool,
    /// The statically linked suite binary for the guest (None: found in the target folder).
    pub suite_binary: Option<PathBuf>,
    /// Save the guest's serial console here.
    pub console_log: Option<PathBuf>,
    /// qemu accelerator.
    pub accel: qemu::Accel,
    /// Guest memory (qemu -m).
    pub memory: String,
    /// Guest cores (qemu -smp).
    pub cpus: usize,
    /// NUMA nodes the guest memory is split over.
    pub numa_nodes: usize,
    /// Run `bench --rounds N` in the guest instead of the suite.
    pub bench: Option<usize>,
    /// The guest's `--filter` strings (the host selected the case files).
    pub filters: Vec<String>,
}

/// How a VM run ended, before any exit code is chosen.
pub struct VmRun {
    /// The trials' results, read from the guest's KTAP.
    pub results: Vec<TrialResult>,
    /// No verdict could be had (no boot, no KTAP); the reason, with a console excerpt.
    pub untestable: Option<String>,
    /// Wall time of the VM run.
    pub elapsed: Duration,
}
/// `(release, version)` of the booted kernel: the guest init's line, or the kernel's own
/// `Linux version` banner when the console shows it.
pub fn kernel_banner(console: &str) -> Option<(String, String)> {
    let from_guest = console.lines().find_map(|l| {
        let rest = &l[l.find(guest::KERNEL_MARKER)? + guest::KERNEL_MARKER.len()..];
        let rest = rest.trim_end_matches('\r');
        let (release, version) = rest.split_once(' ').unwrap_or((rest, ""));
        Some((release.to_string(), version.trim().to_string()))
    });
    from_guest.or_else(|| {
        let line = console.lines().find(|l| l.contains("Linux version "))?;
        let rest = &line[line.find("Linux version ")? + "Linux version ".len()..];
        let release = rest.split_whitespace().next()?.to_string();
        let version = rest
            .rfind(" #")
            .map(|i| rest[i + 1..].trim().to_string())
            .unwrap_or_default();
        Some((release, version))
    })
}
/// Builds the initramfs, boots, and turns the console into results; also returns the console.
pub fn run_in_vm(args: &VmConfig, trials: &[PlannedTrial]) -> Result<(VmRun, String), String> {
    let boot = boot_guest(args, trials)?;
    Ok((interpret(trials, &boot, args.timeout), boot.all_output()))
}

/// Builds the initramfs, boots the guest and waits for it to end.
pub fn boot_guest(args: &VmConfig, trials: &[PlannedTrial]) -> Result<qemu::Boot, String> {
    let qemu_bin = qemu::find_qemu()
        .ok_or("qemu-system-x86_64 is not on PATH (Debian: apt-get install qemu-system-x86)")?;
    if !args.kernel.is_file() {
        return Err(format!("{}: no such kernel image", args.kernel.display()));
    }
    let (suite_path, suite) = static_binary::locate(args.suite_binary.as_deref())?;
    let mut cases: BTreeMap<PathBuf, initramfs::CaseFile> = BTreeMap::new();
    for t in trials {
        if cases.contains_key(&t.case.file) {
            continue;
        }
        let text =
            std::fs::read(&t.case.file).map_err(|e| format!("{}: {e}", t.case.file.display()))?;
        let file = initramfs::CaseFile {
            topic: t.case.topic.clone(),
            file_name: initramfs::file_name(&t.case.file),
            text,
        };
        cases.insert(t.case.file.clone(), file);
    }
    let modules = match &args.modules {
        Some(tree) => modules::collect(tree, modules::WANTED)?,
        None => Vec::new(),
    };
    let config = guest::GuestConfig {
        filters: args.filters.clone(),
        jobs: args.jobs,
        modules: Vec::new(),
        bench_rounds: args.bench,
        trial_timeout_ms: std::env::var(crate::run::STALL_ENV)
            .ok()
            .and_then(|v| v.parse().ok()),
        max_failures: std::env::var(crate::run::MAX_FAILURES_ENV)
            .ok()
            .and_then(|v| v.parse().ok()),
        stress_seed: Some(crate::run::stress_params().seed),
        stress_time: Some(crate::run::stress_params().time.to_string()),
    };
    let cases: Vec<initramfs::CaseFile> = cases.into_values().collect();
    let archive = initramfs::build(&suite, &cases, &modules, config);
    let work = std::env::temp_dir().join(format!("uffd-conform-vm-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let initrd = work.join("initramfs.cpio");
    std::fs::write(&initrd, &archive).map_err(|e| format!("{}: {e}", initrd.display()))?;
    eprintln!(
        "uffd-conform: booting {} ({} trials, {} case files, modules [{}], suite {}, initramfs {} MiB, {:?})",
        args.kernel.display(),
        trials.len(),
        cases.len(),
        modules.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(" "),
        suite_path.display(),
        archive.len() >> 20,
        args.accel
    );
    let options = qemu::QemuOptions {
        qemu: qemu_bin,
        kernel: args.kernel.clone(),
        initrd: initrd.clone(),
        accel: args.accel,
        memory: args.memory.clone(),
        cpus: args.cpus,
        numa_nodes: args.numa_nodes,
        timeout: Duration::from_secs(args.timeout),
        suite_output: work.join("ttyS1.log"),
    };
    let verbose = args.verbose;
    // Phases for the benchmark: qemu start to the first KTAP line (boot: the kernel's, to the
    // init's first line, then the guest's setup: modules, cases, provisioning), to the last
    // result line (suite), to qemu's exit (power-off).
    let start = std::time::Instant::now();
    let (mut init, mut first_ktap, mut last_result) = (None, None, None);
    let boot = qemu::boot(&options, &mut |line| {
        if verbose {
            eprintln!("console: {line}");
        }
        if init.is_none() && line.contains(guest::INIT_MARKER) {
            init = Some(start.elapsed());
        }
        if first_ktap.is_none() && line.contains("KTAP version") {
            first_ktap = Some(start.elapsed());
        }
        if line.trim_start().starts_with("ok ") || line.trim_start().starts_with("not ok ") {
            last_result = Some(start.elapsed());
        }
    });
    let total = start.elapsed();
    if let (Some(k), Some(r)) = (first_ktap, last_result) {
        let split = init
            .filter(|i| *i <= k)
            .map(|i| {
                format!(
                    " (kernel {:.1} s, guest setup {:.1} s)",
                    i.as_secs_f64(),
                    (k - i).as_secs_f64()
                )
            })
            .unwrap_or_default();
        eprintln!(
            "vm timing: boot {:.1} s{split}, suite {:.1} s, power-off {:.1} s, total {:.1} s",
            k.as_secs_f64(),
            r.saturating_sub(k).as_secs_f64(),
            total.saturating_sub(r).as_secs_f64(),
            total.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    let boot = boot?;
    if let Some(path) = &args.console_log {
        std::fs::write(path, boot.all_output()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(boot)
}

/// Turns a finished boot into results (pure: tested without qemu).
pub fn interpret(trials: &[PlannedTrial], boot: &qemu::Boot, timeout_secs: u64) -> VmRun {
    let names: Vec<(String, MemoryType)> =
        trials.iter().map(|t| (t.name.clone(), t.memory)).collect();
    let (results, untestable) =
        interpret_console(&names, &boot.all_output(), boot.timed_out, timeout_secs);
    let untestable = untestable.map(|u| {
        if boot.qemu_stderr.trim().is_empty() {
            u
        } else {
            format!("{u}\nqemu said: {}", boot.qemu_stderr.trim())
        }
    });
    VmRun {
        results,
        untestable,
        elapsed: boot.elapsed,
    }
}

/// The console of a run of trials `names` as results: one per trial, plus one failed
/// `vm::kernel-log::console` result when the kernel reported problems. Returns the reason
/// instead when the console has no KTAP at all.
pub fn interpret_console(
    names: &[(String, MemoryType)],
    console: &str,
    timed_out: bool,
    timeout_secs: u64,
) -> (Vec<TrialResult>, Option<String>) {
    let problems = console::scan(console);
    let ended = if timed_out {
        format!("the VM did not finish within {timeout_secs} s and was killed")
    } else if let Some(p) = problems.iter().find(|p| p.kind == "kernel panic") {
        format!("the guest kernel panicked (console line {})", p.line)
    } else if !console.contains(guest::EXIT_MARKER) {
        "the guest stopped without saying the suite ended".to_string()
    } else {
        "the guest suite ended without reporting it".to_string()
    };
    let doc = match ktap::parse(console) {
        Ok(doc) => doc,
        Err(_) => {
            return (
                Vec::new(),
                Some(format!(
                    "no KTAP on the console: {ended}\n{}",
                    console::tail(console, 30)
                )),
            )
        }
    };
    let mut doc = doc;
    // A case block cut off by a panic has no result line, so no name: it is the case at its
    // position in the plan (the guest runs the same plan).
    let groups = ktap::group_by_case(names.iter().map(|(n, _)| n.as_str()));
    for (test, (case, _)) in doc.tests.iter_mut().zip(&groups) {
        if test.name.is_empty() {
            test.name = case.clone();
        }
    }
    let verdicts = ktap::trial_verdicts(&doc);
    let durations = ktap::trial_durations(&doc);
    let mut results: Vec<TrialResult> = names
        .iter()
        .map(|(name, memory)| {
            let verdict = verdicts.get(name).cloned().unwrap_or_else(|| {
                let kind = if timed_out {
                    FailKind::Timeout
                } else {
                    FailKind::Error
                };
                Verdict::fail(kind, format!("no result from the guest: {ended}"))
            });
            TrialResult {
                duration: durations.get(name).copied().unwrap_or_default(),
                ..TrialResult::unreported(name, *memory, verdict)
            }
        })
        .collect();
    if !problems.is_empty() {
        let text = problems
            .iter()
            .map(|p| format!("{} at console line {}:\n{}", p.kind, p.line, p.excerpt))
            .collect::<Vec<_>>()
            .join("\n");
        results.push(TrialResult::unreported(
            "vm::kernel-log::console",
            // Not a trial on memory: the field is required, and no memory type is meant.
            MemoryType::Anon,
            Verdict::fail(
                FailKind::Error,
                format!("the guest kernel reported problems:\n{text}"),
            ),
        ));
    }
    (results, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<(String, MemoryType)> {
        vec![
            ("wp::a::anon".into(), MemoryType::Anon),
            ("wp::a::shmem".into(), MemoryType::Shmem),
        ]
    }

    #[test]
    fn the_booted_kernel_is_read_off_the_console() {
        let guest = "[    1.2] x\r\nuffd-conform-guest: init\nuffd-conform-guest: kernel 6.1.0-47-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-11-09)\r\n";
        assert_eq!(
            kernel_banner(guest),
            Some((
                "6.1.0-47-cloud-amd64".into(),
                "#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-11-09)".into()
            ))
        );
        let banner = "[    0.000000] Linux version 6.12.118+deb12-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.12.118-1\n";
        assert_eq!(
            kernel_banner(banner).map(|(r, _)| r),
            Some("6.12.118+deb12-cloud-amd64".into())
        );
        assert_eq!(kernel_banner("no kernel here"), None);
    }

    #[test]
    fn a_clean_console_gives_each_trial_its_verdict() {
        let console = "boot\r\nKTAP version 1\r\n1..1\r\n  KTAP version 1\r\n  1..2\r\n  ok 1 anon\r\n  ok 2 shmem # SKIP no\r\nok 1 wp::a\r\nuffd-conform-guest: exit 0\r\n";
        let (r, untestable) = interpret_console(&names(), console, false, 60);
        assert!(untestable.is_none());
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].verdict, Verdict::Pass);
        assert_eq!(
            r[1].verdict,
            Verdict::Skip {
                reason: "no".into()
            }
        );
    }

    #[test]
    fn a_panic_mid_run_fails_the_missing_trials_and_names_the_panic() {
        let console = "KTAP version 1\n1..1\n  KTAP version 1\n  1..2\n  ok 1 anon\nKernel panic - not syncing: Fatal exception\n";
        let (r, untestable) = interpret_console(&names(), console, false, 60);
        assert!(untestable.is_none());
        assert_eq!(r[0].verdict, Verdict::Pass);
        let Verdict::Fail { message, .. } = &r[1].verdict else {
            panic!("{:?}", r[1].verdict)
        };
        assert!(message.contains("panicked"), "{message}");
        let Verdict::Fail { message, .. } = &r[2].verdict else {
            panic!("{:?}", r[2].verdict)
        };
        assert!(
            r[2].name == "vm::kernel-log::console"
                && message.contains("Kernel panic - not syncing"),
            "{message}"
        );
    }

    #[test]
    fn no_ktap_is_untestable_and_a_timeout_is_never_a_pass() {
        let (r, untestable) = interpret_console(&names(), "early boot\nhang\n", true, 60);
        assert!(r.is_empty());
        assert!(untestable.unwrap().contains("did not finish within 60 s"));
        let (r, _) = interpret_console(&names(), "KTAP version 1\n1..1\n", true, 60);
        assert!(r.iter().all(|r| matches!(
            r.verdict,
            Verdict::Fail {
                kind: FailKind::Timeout,
                ..
            }
        )));
    }

    #[test]
    fn a_warning_after_passing_trials_fails_the_run() {
        let console = "KTAP version 1\n1..1\n  KTAP version 1\n  1..2\n  ok 1 anon\n  ok 2 shmem\nok 1 wp::a\n------------[ cut here ]------------\nWARNING: CPU: 0 PID: 9 at mm/userfaultfd.c:1 x\nuffd-conform-guest: exit 0\n";
        let (r, _) = interpret_console(&names(), console, false, 60);
        assert_eq!(crate::output::summary::counts(&r).failed, 1);
        assert_eq!(r[2].name, "vm::kernel-log::console");
    }
}
