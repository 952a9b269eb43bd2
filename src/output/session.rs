//! The output side of `run` and `vm`: the options (`--json`, `--junit`, `--strict`,
//! `--baseline`, `--strict-baseline`), the live lines and progress while trials run, and at the
//! end the run record and everything rendered from it. One reporter for both commands.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use clap::Args;

use super::baseline::Baseline;
use super::known_bugs::{KernelId, KnownBugs};
use super::progress::Progress;
use super::record::{
    applicable_known_bugs, KernelInfo, MachineSetup, RunContext, RunRecord, Selection, TrialRecord,
};
use super::{human, junit, time};
use crate::trial::verdict::TrialResult;

/// How a run is recorded and judged: JSON and JUnit files, baseline, strictness.
#[derive(Args, Debug, Default, Clone)]
pub struct OutputArgs {
    /// Write the run record as JSON (docs/results-json.md) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML (for GitLab, Jenkins) to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Known failures (YAML, docs/output.md): listed failing trials are XFAIL and do not fail
    /// the run; listed trials that pass are XPASS.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// With --baseline: an XPASS (listed trial that passes) fails the run.
    #[arg(long, requires = "baseline")]
    pub strict_baseline: bool,
    /// Judge every trial raw: a known kernel bug (known-bugs.yaml) fails the run like any
    /// other failure (qualification runs).
    #[arg(long)]
    pub strict: bool,
}

/// One run's output, from start to summary.
pub struct Session {
    baseline: Option<Baseline>,
    known: KnownBugs,
    strict: bool,
    /// The known bugs that apply to the kernel under test (set by [`Session::kernel`]).
    applicable: Option<KnownBugs>,
    json: Option<(PathBuf, File)>,
    junit: Option<(PathBuf, File)>,
    progress: Progress,
    verbose: bool,
    started_at: SystemTime,
    started: Instant,
    human_to_stderr: bool,
}

/// What the run was, for the record.
pub struct RunFacts {
    /// The kernel the run is on.
    pub kernel: KernelInfo,
    /// Huge pages, swap and privileges during the run.
    pub machine: MachineSetup,
    /// Which trials the run selected.
    pub selection: Selection,
}

fn create(path: &Option<PathBuf>) -> Result<Option<(PathBuf, File)>, String> {
    path.as_ref()
        .map(|p| {
            File::create(p)
                .map(|f| (p.clone(), f))
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .transpose()
}

impl Session {
    /// Loads the baseline and creates the output files now, so that a typo fails before a
    /// long run rather than after it.
    /// With `human_to_stderr` (KTAP owns stdout) the human lines and summary go to stderr.
    pub fn start(
        args: &OutputArgs,
        total: usize,
        verbose: bool,
        human_to_stderr: bool,
    ) -> Result<Session, String> {
        let baseline = args
            .baseline
            .as_ref()
            .map(|p| Baseline::load(p, args.strict_baseline))
            .transpose()?;
        Ok(Session {
            baseline,
            known: KnownBugs::builtin()?,
            strict: args.strict,
            applicable: None,
            json: create(&args.json)?,
            junit: create(&args.junit)?,
            // With KTAP on stdout the progress line stays off: on a console (a VM guest) stdout
            // and stderr are one terminal, and `\r` updates would break KTAP lines.
            progress: if human_to_stderr {
                Progress::new(total, false, Box::new(std::io::sink()))
            } else {
                Progress::stderr(total)
            },
            verbose,
            human_to_stderr,
            started_at: SystemTime::now(),
            started: Instant::now(),
        })
    }

    /// Names the kernel under test, before any trial is reported: the known bugs that apply
    /// to it are chosen here.
    pub fn kernel(&mut self, kernel: &KernelId) {
        self.applicable = Some(applicable_known_bugs(&self.known, kernel, self.strict));
    }

    /// Called as each trial finishes (from several threads).
    pub fn on_done(&self, r: &TrialResult) {
        let t = TrialRecord::judge(r, self.applicable.as_ref(), self.baseline.as_ref());
        self.progress.finished(&t.name, t.status, || {
            if let Some(line) = human::trial_line(&t, self.verbose) {
                if self.human_to_stderr {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
        });
    }

    /// Builds the run record, writes the files, prints the summary; the exit code is 0 when
    /// nothing failed, 1 when a trial failed, 2 when an output file could not be written.
    pub fn finish(self, facts: RunFacts, results: &[TrialResult]) -> (ExitCode, RunRecord) {
        self.progress.clear();
        let applicable = self
            .applicable
            .clone()
            .unwrap_or_else(|| applicable_known_bugs(&self.known, &facts.kernel.id(), self.strict));
        let record = RunRecord::build(
            RunContext {
                kernel: facts.kernel,
                machine: facts.machine,
                started_at: time::rfc3339(self.started_at),
                duration: self.started.elapsed(),
                selection: facts.selection,
                baseline: self.baseline.as_ref(),
                known: Some(&applicable),
                strict: self.strict,
            },
            results,
        );
        let mut write_failed = false;
        for (file, text) in [
            (self.json, record.to_json()),
            (self.junit, junit::render(&record)),
        ]
        .into_iter()
        .filter_map(|(f, t)| f.map(|f| (f, t)))
        {
            let (path, mut f) = file;
            if let Err(e) = f.write_all(text.as_bytes()).and_then(|_| f.sync_all()) {
                eprintln!("error: {}: {e}", path.display());
                write_failed = true;
            }
        }
        if self.human_to_stderr {
            eprint!("{}", human::summary(&record));
        } else {
            print!("{}", human::summary(&record));
        }
        let code = if write_failed {
            ExitCode::from(2)
        } else if record.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
        (code, record)
    }
}
