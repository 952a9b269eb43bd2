//! `cargo test` entry: one libtest-mimic trial per case and memory type (`topic::case::memory`),
//! and the meta-tests (cases built to fail, under tests/meta), each judged by the library's own
//! judgement (`TrialRecord::judge`, as `run` and `vm` use it). Run as root, it provisions huge
//! pages and swap and restores them. The suite's other checks are in tests/.

use std::sync::Arc;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use uffd_conform::kernel::probe::Probe;
use uffd_conform::output::human;
use uffd_conform::output::known_bugs::{KernelId, KnownBugs};
use uffd_conform::output::record::{applicable_known_bugs, Status, TrialRecord};
use uffd_conform::run;
use uffd_conform::run::plan::plan;
use uffd_conform::run::prepare::{prepare, Prepared};

// The helpers the tests/ binaries share (the corpus loader among them).
#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    uffd_conform::trial::run_if_child();
    let args = Arguments::from_args();

    let cases = common::load_corpus();
    let planned = plan(&cases);

    let provisioning = !args.list && std::env::var_os("UFFD_CONFORM_NO_PROVISION").is_none();
    let prepared = prepare(&planned, provisioning);
    prepared.print_notes();
    let Prepared { probe, guard } = prepared;
    let probe = Arc::new(probe);
    let baseline = Arc::new(load_baseline());
    let known = Arc::new(load_known_bugs(&probe));
    let tally = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));

    let trials: Vec<Trial> = planned
        .into_iter()
        .map(|t| {
            let probe = probe.clone();
            let baseline = baseline.clone();
            let known = known.clone();
            let tally = tally.clone();
            Trial::ignorable_test(t.name.clone(), move || {
                let result = run::run_planned(&t, &probe);
                // The library's own judgement, as `run` and `vm` use it.
                let rec = TrialRecord::judge(&result, Some(&known), baseline.as_ref().as_ref());
                let why = || {
                    human::trial_line(&rec, false)
                        .unwrap_or_default()
                        .replace('\n', " ")
                };
                match rec.status {
                    Status::Pass => Ok(Completion::Completed),
                    Status::Skip => Ok(Completion::ignored_with(
                        rec.skip_reason.clone().unwrap_or_default(),
                    )),
                    Status::Fail => Err(Failed::from(rec.message.clone().unwrap_or_default())),
                    Status::Xfail => {
                        tally.lock().expect("tally").push(why());
                        Ok(Completion::ignored_with(format!(
                            "{} — {}",
                            why(),
                            rec.message.as_deref().unwrap_or("").replace('\n', " ")
                        )))
                    }
                    // A baseline entry that no longer fails must be noticed; a known kernel bug
                    // that passes is printed loudly (the kernel may be fixed) and passes.
                    Status::Xpass if rec.known_bug.is_some() => {
                        eprintln!("{}", human::trial_line(&rec, false).unwrap_or_default());
                        tally.lock().expect("tally").push(why());
                        Ok(Completion::Completed)
                    }
                    Status::Xpass => Err(Failed::from(why())),
                }
            })
        })
        .collect();

    let conclusion = libtest_mimic::run(&args, trials);
    drop(guard);
    let tally = tally.lock().expect("tally");
    if !tally.is_empty() {
        // Before libtest's own closing line is read, say what the ignored XFAILs were.
        eprintln!(
            "\nknown kernel bugs on this kernel ({}; UFFD_CONFORM_STRICT=1 fails them):",
            tally.len()
        );
        for line in tally.iter() {
            eprintln!("  {line}");
        }
    }
    conclusion.exit();
}

/// The suite's known kernel bugs that apply to this kernel; none with UFFD_CONFORM_STRICT=1
/// (qualification runs: every failure is a failure).
fn load_known_bugs(probe: &Probe) -> KnownBugs {
    let strict = std::env::var("UFFD_CONFORM_STRICT").is_ok_and(|v| !v.is_empty() && v != "0");
    let all = match KnownBugs::builtin() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let kernel = KernelId {
        release: probe.kernel_release.clone(),
        version: probe.kernel_version.clone(),
    };
    let applicable = applicable_known_bugs(&all, &kernel, strict);
    if strict {
        eprintln!("known bugs: not applied (UFFD_CONFORM_STRICT)");
    } else if !applicable.bugs.is_empty() {
        let ids: Vec<&str> = applicable.bugs.iter().map(|b| b.id.as_str()).collect();
        eprintln!(
            "known bugs applying to Linux {}: {}",
            kernel.release,
            ids.join(", ")
        );
    }
    applicable
}

/// The user's own baseline (team-accepted deviations) named by UFFD_CONFORM_BASELINE, if any. Not used
/// unless asked for: a kernel developer's run must show every deviation as a failure.
fn load_baseline() -> Option<uffd_conform::output::baseline::Baseline> {
    let path = std::env::var_os("UFFD_CONFORM_BASELINE")?;
    let path = std::path::PathBuf::from(path);
    match uffd_conform::output::baseline::Baseline::load(&path, true) {
        Ok(b) => {
            eprintln!("baseline: known deviations from {}", path.display());
            Some(b)
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
