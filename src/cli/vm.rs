//! `uffd-conform vm`: the command around the library's [`crate::vm`]: options, output
//! session, repeat rounds and exit codes.

use std::path::PathBuf;

use clap::Args;

use super::bisect::{self, RunOutcome};
use super::{OutputFormat, Select};
use crate::output::record::{BootedKernel, KernelInfo, MachineSetup};
use crate::output::{ktap, summary as report, RunFacts, Session};
use crate::run::plan::PlannedTrial;
use crate::vm::{boot_guest, console, guest, kernel_banner, qemu, run_in_vm, VmConfig};

#[derive(Args)]
pub struct VmArgs {
    #[command(flatten)]
    pub select: Select,
    /// Seed and duration of stress steps (passed to the guest).
    #[command(flatten)]
    pub stress: super::StressOpts,
    /// The kernel image to boot (a bzImage, e.g. arch/x86/boot/bzImage or a package's vmlinuz).
    #[arg(long)]
    pub kernel: PathBuf,
    /// The kernel's module tree (lib/modules/RELEASE), for zram and its compressors.
    #[arg(long)]
    pub modules: Option<PathBuf>,
    /// Seconds before the VM is killed (boot + suite + power-off).
    #[arg(long, default_value_t = 1200)]
    pub timeout: u64,
    /// Trials run at once inside the guest (default: the guest's cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Print every trial, and echo the guest console to stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Exit 0 good, 1 bad, 125 cannot test (for `git bisect run`).
    #[arg(long)]
    pub bisect: bool,
    /// The statically linked suite binary for the guest (default: found in the target folder).
    #[arg(long)]
    pub suite_binary: Option<PathBuf>,
    /// Save the guest's serial console here.
    #[arg(long)]
    pub console_log: Option<PathBuf>,
    /// qemu accelerator; TCG works everywhere, KVM only where it really works.
    #[arg(long, value_enum, default_value_t = qemu::Accel::Tcg)]
    pub accel: qemu::Accel,
    /// Guest memory (qemu -m).
    #[arg(long, default_value = "2G")]
    pub memory: String,
    /// Guest cores (qemu -smp).
    #[arg(long, default_value_t = 2)]
    pub cpus: usize,
    /// NUMA nodes the guest memory is split over; two let `migrate` steps move pages between
    /// nodes with move_pages(2).
    #[arg(long, default_value_t = 2)]
    pub numa_nodes: usize,
    /// Run `bench --rounds N` in the guest instead of the suite and print its figures (where a
    /// trial's time goes under emulation).
    #[arg(long, value_name = "ROUNDS")]
    pub bench: Option<usize>,
    /// The run record, JUnit, baseline and strict options, as for `run`.
    #[command(flatten)]
    pub output: crate::output::OutputArgs,
    /// Boot N times and report every trial whose verdict changed between boots (exit 1 if any
    /// did); the first boot is the run's record.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
}
impl VmArgs {
    fn config(&self) -> VmConfig {
        VmConfig {
            kernel: self.kernel.clone(),
            modules: self.modules.clone(),
            timeout: self.timeout,
            jobs: self.jobs,
            verbose: self.verbose,
            suite_binary: self.suite_binary.clone(),
            console_log: self.console_log.clone(),
            accel: self.accel,
            memory: self.memory.clone(),
            cpus: self.cpus,
            numa_nodes: self.numa_nodes,
            bench: self.bench,
            filters: self.select.filter.clone(),
        }
    }
}

/// The command: returns the process exit code.
pub fn command(args: VmArgs) -> u8 {
    args.stress.apply();
    let untestable_code = if args.bisect {
        bisect::exit_code(RunOutcome::Untestable)
    } else {
        2
    };
    let trials = match super::select_trials(&args.select) {
        Ok(t) if !t.is_empty() => t,
        Ok(_) => {
            eprintln!("error: no trial selected");
            return untestable_code;
        }
        Err(_) => return untestable_code,
    };
    if args.bench.is_some() {
        return bench_in_vm(&args, &trials);
    }
    let ktap_mode = args.format == OutputFormat::Ktap;
    // Output files are created before the boot, so a typo fails before a long run.
    let mut session = match Session::start(&args.output, trials.len(), args.verbose, ktap_mode) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return untestable_code;
        }
    };
    let mut rounds = Vec::new();
    let mut first_console = String::new();
    for round in 1..=args.repeat {
        let (run, console) = match run_in_vm(&args.config(), &trials) {
            Ok(run) => run,
            Err(e) => {
                eprintln!("error: {e}");
                return untestable_code;
            }
        };
        eprintln!(
            "uffd-conform: VM run {round} took {:.1} s",
            run.elapsed.as_secs_f64()
        );
        if let Some(why) = &run.untestable {
            eprintln!("error: the kernel could not be tested: {why}");
            return untestable_code;
        }
        if round == 1 {
            first_console = console;
        }
        rounds.push(run.results);
    }
    let kernel = booted_kernel(&args, &first_console);
    session.kernel(&kernel.id());
    let results = &rounds[0];
    if ktap_mode {
        print!("{}", ktap::document(results));
    }
    for r in results {
        session.on_done(r);
    }
    let flakes = crate::run::repeat::flakes(&rounds);
    if args.repeat > 1 {
        crate::run::repeat::print_flakes(&rounds, &flakes, ktap_mode);
    }
    let selection = crate::output::record::Selection {
        paths: if args.select.paths.is_empty() {
            vec![super::default_cases_dir()]
        } else {
            args.select.paths.clone()
        }
        .iter()
        .map(|p| p.display().to_string())
        .collect(),
        filters: args.select.filter.clone(),
        jobs: args.jobs.unwrap_or(args.cpus),
        no_provision: false,
    };
    let machine = MachineSetup {
        huge_page_size_kib: 0,
        huge_pages_total: 0,
        huge_pages_free: 0,
        swap_total_kib: 0,
        is_root: true,
        unprivileged_userfaultfd: None,
        provisioning: vec!["inside the guest: huge pages and swap provisioned by its /init".into()],
    };
    let (code, _) = session.finish(
        RunFacts {
            kernel,
            machine,
            selection,
        },
        results,
    );
    if args.bisect {
        // Raw verdicts: bisecting a known bug is a normal use.
        bisect::exit_code(RunOutcome::Ran(report::counts(results)))
    } else if flakes.iter().any(|f| f.is_flaky()) {
        1
    } else if code == std::process::ExitCode::SUCCESS {
        0
    } else if code == std::process::ExitCode::from(1) {
        1
    } else {
        2
    }
}
/// The booted kernel, from its banner on the console (`Linux version RELEASE (…) #1 SMP …`).
fn booted_kernel(args: &VmArgs, console: &str) -> KernelInfo {
    let (release, version) = kernel_banner(console).unwrap_or_default();
    KernelInfo {
        release,
        version,
        config: crate::output::kconfig::KernelConfig {
            source: None,
            error: Some("not read: the kernel was booted under qemu".into()),
            options: Default::default(),
        },
        uffd: None,
        uffd_error: Some("probed inside the guest (see the trials' skip reasons)".into()),
        dev_userfaultfd_error: None,
        pagemap_wp_bit: None,
        booted: Some(BootedKernel {
            image: args.kernel.display().to_string(),
            modules: args.modules.as_ref().map(|m| m.display().to_string()),
            machine: format!(
                "qemu-system-x86_64 -accel {:?}, {} cpus, {}, {} NUMA nodes",
                args.accel, args.cpus, args.memory, args.numa_nodes
            )
            .to_lowercase(),
        }),
    }
}
/// `vm --bench`: the guest's `bench` output, from its first round to its end.
fn bench_in_vm(args: &VmArgs, trials: &[PlannedTrial]) -> u8 {
    let boot = match boot_guest(&args.config(), trials) {
        Ok(boot) => boot,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let output = boot.all_output();
    let Some(from) = output.find("round 1:") else {
        eprintln!(
            "error: the guest printed no benchmark\n{}",
            console::tail(&output, 30)
        );
        return 2;
    };
    for line in output[from..].lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with(guest::EXIT_MARKER) {
            break;
        }
        // Kernel messages (e.g. the poisoning cases' MCE lines) are not the benchmark's.
        if !line.starts_with('[') {
            println!("{line}");
        }
    }
    0
}
