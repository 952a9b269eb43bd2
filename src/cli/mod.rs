//! The `uffd-conform` command line.

pub(crate) mod bench;
pub(crate) mod bisect;
pub(crate) mod vm;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::case::{load_path, LoadedCase};
use crate::kernel::features::Feature;
use crate::kernel::probe::Probe;
use crate::kernel::uapi::IOCTL_NAMES;
use crate::output::{self, OutputArgs, RunFacts, Session};
use crate::run;
use crate::run::plan::{plan, PlannedTrial};
use crate::run::prepare::{prepare, Prepared};

/// The command line.
#[derive(Parser)]
#[command(
    name = "uffd-conform",
    version,
    about = "Conformance suite for Linux userfaultfd write-protect behaviour"
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run cases against the running kernel (default: the cases/ folder).
    Run(RunArgs),
    /// List the trials the cases make (topic::case::memory).
    List(ListArgs),
    /// Show what the running kernel and machine offer.
    Probe {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the case format (or, with --results, of `run --json`).
    Schema {
        /// The schema of the run record instead (schema/results.schema.json).
        #[arg(long)]
        results: bool,
        /// The schema of the known-bugs list instead (schema/known-bugs.schema.json).
        #[arg(long, conflicts_with = "results")]
        known_bugs: bool,
    },
    /// List the suite's known kernel bugs (known-bugs.yaml) and which apply to this kernel.
    KnownBugs,
    /// What changed between two runs (`run --json` files): exit 0 no regression, 1 regressions.
    Compare {
        /// The earlier run.
        before: PathBuf,
        /// The later run.
        after: PathBuf,
    },
    /// Write a self-contained HTML report of a run (`run --json` file).
    Report {
        /// The run record.
        record: PathBuf,
        /// The HTML file to write.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: PathBuf,
    },
    /// Measure the suite: wall time, trials per second, per-trial phases, runner memory.
    Bench {
        /// Which trials to measure.
        #[command(flatten)]
        select: Select,
        /// Rounds to run (the median is reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Trials run at once (default: the number of cores).
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Do not provision huge pages or swap.
        #[arg(long)]
        no_provision: bool,
    },
    /// Boot a kernel under qemu and run the cases inside it (see docs/vm.md).
    Vm(vm::VmArgs),
}

/// What `run` prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Failures as they happen, then a summary.
    Human,
    /// KTAP version 1 (human progress goes to stderr).
    Ktap,
}

/// Which trials: case paths and name filters.
#[derive(Args)]
pub struct Select {
    /// Case files or folders.
    pub paths: Vec<PathBuf>,
    /// Only trials whose name contains one of these strings.
    #[arg(long, short = 'f')]
    pub filter: Vec<String>,
}

/// How `stress` steps run (set before any trial starts; passed on to trial processes and to a
/// `vm` guest through the environment).
#[derive(Args, Clone, Debug, Default)]
pub struct StressOpts {
    /// The seed of stress steps' threads: a stress failure prints the run's seed, and this
    /// replays each thread's sequence of operations (the interleaving is the scheduler's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Multiplies every stress step's duration (e.g. 20 for a soak run; default 1).
    #[arg(long, value_name = "FACTOR")]
    pub stress_time: Option<f64>,
}

impl StressOpts {
    /// Puts the options in the environment the runner reads (`crate::run::stress_params`).
    pub fn apply(&self) {
        if let Some(seed) = self.seed {
            std::env::set_var(crate::run::SEED_ENV, seed.to_string());
        }
        if let Some(t) = self.stress_time {
            std::env::set_var(crate::run::STRESS_TIME_ENV, t.to_string());
        }
    }
}

/// Arguments of `list`.
#[derive(Args)]
pub struct ListArgs {
    /// Which trials to list.
    #[command(flatten)]
    pub select: Select,
    /// Print the docs/coverage.md appendix instead: each case, its memory types, needs, refs.
    #[arg(long)]
    pub coverage: bool,
}

/// Arguments of `run`.
#[derive(Args)]
pub struct RunArgs {
    /// Which trials to run.
    #[command(flatten)]
    pub select: Select,
    /// Seed and duration of stress steps.
    #[command(flatten)]
    pub stress: StressOpts,
    /// Do not provision huge pages or swap (trials that need them skip).
    #[arg(long)]
    pub no_provision: bool,
    /// Trials run at once (default: the number of cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Print a line for every trial, not just failures.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// How the run is recorded and judged.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Run the selected trials N times and report every trial whose verdict changed between
    /// rounds (exit 1 if any did).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Exit 0 good, 1 bad, 125 cannot test (for `git bisect run`; see README).
    #[arg(long)]
    pub bisect: bool,
}

/// Exit codes: 0 all passed or skipped, 1 a trial failed, 2 the suite could not run.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(args) => run_command(args),
        Command::List(args) => match select_trials(&args.select) {
            Ok(trials) if args.coverage => {
                print!("{}", crate::output::coverage::appendix(&trials));
                ExitCode::SUCCESS
            }
            Ok(trials) => {
                for t in trials {
                    println!("{}", t.name);
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Probe { json } => {
            let probe = Probe::run();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&probe).expect("probe serializes")
                );
            } else {
                print!("{}", describe_probe(&probe));
            }
            ExitCode::SUCCESS
        }
        Command::KnownBugs => known_bugs_command(),
        Command::Schema {
            results,
            known_bugs,
        } => {
            print!(
                "{}",
                if results {
                    output::record::json_schema()
                } else if known_bugs {
                    output::known_bugs::KnownBugs::json_schema()
                } else {
                    crate::case::json_schema()
                }
            );
            ExitCode::SUCCESS
        }
        Command::Compare { before, after } => output::compare::main(&before, &after),
        Command::Report { record, output } => output::html::main(&record, &output),
        Command::Bench {
            select,
            rounds,
            jobs,
            no_provision,
        } => match select_trials(&select) {
            Ok(trials) => crate::cli::bench::command(
                &trials,
                rounds,
                jobs.unwrap_or_else(run::default_jobs),
                no_provision,
            ),
            Err(code) => code,
        },
        Command::Vm(args) => ExitCode::from(vm::command(args)),
    }
}

/// The cases/ folder: in the current directory, or the one this binary was built from.
pub fn default_cases_dir() -> PathBuf {
    let here = Path::new("cases");
    if here.is_dir() {
        here.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
    }
}

/// Loads cases from `paths`, reporting every error; None when any file is bad.
pub fn load_all(paths: &[PathBuf]) -> Option<Vec<LoadedCase>> {
    let mut cases = Vec::new();
    let mut ok = true;
    for path in paths {
        match load_path(path) {
            Ok(mut c) => cases.append(&mut c),
            Err(errors) => {
                ok = false;
                for e in errors {
                    eprintln!("error: {e}");
                }
            }
        }
    }
    ok.then_some(cases)
}

pub(crate) fn select_trials(select: &Select) -> Result<Vec<PlannedTrial>, ExitCode> {
    let paths = if select.paths.is_empty() {
        vec![default_cases_dir()]
    } else {
        select.paths.clone()
    };
    let cases = load_all(&paths).ok_or(ExitCode::from(2))?;
    let trials: Vec<PlannedTrial> = plan(&cases)
        .into_iter()
        .filter(|t| {
            select.filter.is_empty() || select.filter.iter().any(|f| t.name.contains(f.as_str()))
        })
        .collect();
    Ok(trials)
}

fn run_command(args: RunArgs) -> ExitCode {
    args.stress.apply();
    let cannot_run = ExitCode::from(if args.bisect {
        crate::cli::bisect::exit_code(crate::cli::bisect::RunOutcome::Untestable)
    } else {
        2
    });
    let trials = match select_trials(&args.select) {
        Ok(t) => t,
        Err(_) => return cannot_run,
    };
    if trials.is_empty() {
        eprintln!("error: no trial selected");
        return cannot_run;
    }
    let ktap_mode = args.format == OutputFormat::Ktap;
    let mut session = match Session::start(&args.output, trials.len(), args.verbose, ktap_mode) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return cannot_run;
        }
    };
    let prepared = prepare(&trials, !args.no_provision);
    prepared.print_notes();
    let probe = &prepared.probe;
    session.kernel(&crate::output::known_bugs::KernelId {
        release: probe.kernel_release.clone(),
        version: probe.kernel_version.clone(),
    });
    let jobs = args.jobs.unwrap_or_else(run::default_jobs);
    eprintln!(
        "uffd-conform: {} trials on Linux {} ({jobs} jobs)",
        trials.len(),
        probe.kernel_release
    );
    let ktap = ktap_mode.then(|| {
        let names: Vec<String> = trials.iter().map(|t| t.name.clone()).collect();
        crate::output::ktap::KtapStream::start(std::io::stdout(), &names)
    });
    let mut rounds = Vec::new();
    for round in 1..=args.repeat {
        // Round 1 is the run's record; later rounds only look for verdicts that change.
        let results = run::run_all(&trials, probe, jobs, &|r| {
            if round == 1 {
                if let Some(k) = &ktap {
                    k.record(r);
                }
                session.on_done(r);
            }
        });
        rounds.push(results);
    }
    let provisioning = prepared.notes().to_vec();
    let Prepared { probe, guard } = prepared;
    drop(guard);
    let flakes = crate::run::repeat::flakes(&rounds);
    if args.repeat > 1 {
        crate::run::repeat::print_flakes(&rounds, &flakes, ktap_mode);
    }
    let select = &args.select;
    let selection = output::record::Selection {
        paths: if select.paths.is_empty() {
            vec![default_cases_dir()]
        } else {
            select.paths.clone()
        }
        .iter()
        .map(|p| p.display().to_string())
        .collect(),
        filters: select.filter.clone(),
        jobs,
        no_provision: args.no_provision,
    };
    let (code, _) = session.finish(
        RunFacts {
            kernel: output::record::KernelInfo::of_host(
                &probe,
                output::kconfig::read(&probe.kernel_release),
            ),
            machine: output::record::MachineSetup::of_host(&probe, provisioning),
            selection,
        },
        &rounds[0],
    );
    if args.bisect {
        // Raw verdicts: bisecting a known bug is a normal use.
        let counts = crate::output::summary::counts(&rounds[0]);
        ExitCode::from(crate::cli::bisect::exit_code(
            crate::cli::bisect::RunOutcome::Ran(counts),
        ))
    } else if flakes.iter().any(|f| f.is_flaky()) {
        ExitCode::from(1)
    } else {
        code
    }
}

/// `known-bugs`: every entry, marked where it applies to the running kernel.
fn known_bugs_command() -> ExitCode {
    let known = match output::known_bugs::KnownBugs::builtin() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let probe = Probe::run();
    let kernel = output::known_bugs::KernelId {
        release: probe.kernel_release.clone(),
        version: probe.kernel_version.clone(),
    };
    println!("Linux {} {}", kernel.release, kernel.version);
    for b in &known.bugs {
        let here = if b.applies_to(&kernel) {
            "applies"
        } else {
            "-      "
        };
        println!("{here} {}: {}", b.id, b.summary);
    }
    ExitCode::SUCCESS
}

/// The probe as text.
pub fn describe_probe(p: &Probe) -> String {
    let mut out = format!("kernel: {} {}\n", p.kernel_release, p.kernel_version);
    match &p.uffd {
        Ok(caps) => {
            out += &format!(
                "userfaultfd: available{}\nfeatures: 0x{:x}\n",
                if caps.user_mode_only {
                    " (UFFD_USER_MODE_ONLY only)"
                } else {
                    ""
                },
                caps.features
            );
            for f in Feature::ALL {
                let mark = if caps.features & f.bit() != 0 {
                    "yes"
                } else {
                    "no "
                };
                out += &format!("  {mark} {}\n", f.kernel_name());
            }
            let ioctls: Vec<&str> = IOCTL_NAMES
                .iter()
                .filter(|(b, _)| caps.ioctls & (1 << b) != 0)
                .map(|(_, n)| *n)
                .collect();
            out += &format!("ioctls: {}\n", ioctls.join(" "));
        }
        Err(e) => out += &format!("userfaultfd: unavailable: {e}\n"),
    }
    out += &format!(
        "/dev/userfaultfd: {}\n",
        match &p.dev_userfaultfd {
            Ok(()) => "available".to_string(),
            Err(e) => e.clone(),
        }
    );
    out += &format!(
        "huge pages: {} kB, {} total, {} free\nswap: {} kB\nroot: {}\nvm.unprivileged_userfaultfd: {}\npagemap bit 57 (uffd-wp): {}\n",
        p.huge_page_size / 1024,
        p.huge_pages_total,
        p.huge_pages_free,
        p.swap_total_kib,
        p.is_root,
        p.unprivileged_userfaultfd.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into()),
        match p.pagemap_wp_bit {
            Some(true) => "shown",
            Some(false) => "not shown",
            None => "not probed",
        }
    );
    out += &format!(
        "PAGEMAP_SCAN: {}\nUFFDIO_CONTINUE_MODE_WP: {}\n",
        if p.pagemap_scan {
            "available"
        } else {
            "not available"
        },
        if p.continue_mode_wp {
            "accepted"
        } else {
            "not accepted (or not probed: needs MINOR_SHMEM)"
        }
    );
    out
}
