//! `uffd-conform bench`: runs the selected trials several times and prints wall time,
//! trials per second, where a trial's time goes (process start, memory, uffd setup, handler,
//! steps with their checks, report and reaping) and the runner's peak memory.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::run;
use crate::run::prepare::{prepare, Prepared};
use crate::trial::verdict::TrialResult;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Peak resident set of this process (the runner), in MiB.
fn runner_max_rss_mib() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF);
    usage.map(|u| u.max_rss() as f64 / 1024.0).unwrap_or(0.0)
}

/// The per-trial phases, in microseconds, of trials that reported.
fn phases(results: &[TrialResult]) -> Vec<(&'static str, f64)> {
    let us = |ns: u64| ns as f64 / 1000.0;
    let timings: Vec<_> = results
        .iter()
        .filter_map(|r| r.report.as_ref().map(|r| r.timing))
        .collect();
    let col = |f: &dyn Fn(&crate::trial::protocol::Timing) -> u64| {
        median(timings.iter().map(|t| us(f(t))).collect())
    };
    vec![
        (
            "process start (spawn to main)",
            col(&|t| t.started.saturating_sub(t.spawned)),
        ),
        ("memory (mmap, memfd)", col(&|t| t.memory)),
        ("uffd setup (open, API, register)", col(&|t| t.uffd)),
        ("handler thread and pagemap", col(&|t| t.handler)),
        ("steps and their checks", col(&|t| t.steps)),
        (
            "report and reaping",
            col(&|t| t.reaped.saturating_sub(t.finished)),
        ),
        ("whole trial", col(&|t| t.reaped.saturating_sub(t.spawned))),
    ]
}

/// The summed run time of the trials of each memory type, per round, in milliseconds; the
/// hugetlb total bounds a round's wall time from below, however many jobs run.
fn by_memory(results: &[TrialResult], rounds: usize) -> Vec<(String, f64)> {
    let mut sums: std::collections::BTreeMap<String, f64> = Default::default();
    for r in results {
        *sums.entry(r.memory.to_string()).or_default() += r.duration.as_secs_f64() * 1000.0;
    }
    let per_round = |v: f64| v / rounds.max(1) as f64;
    let hugetlb: f64 = results
        .iter()
        .filter(|r| r.memory.is_hugetlb())
        .map(|r| r.duration.as_secs_f64() * 1000.0)
        .sum();
    let all: f64 = sums.values().sum();
    let mut out: Vec<(String, f64)> = sums.into_iter().map(|(k, v)| (k, per_round(v))).collect();
    out.push(("all".into(), per_round(all)));
    out.push(("hugetlb lane".into(), per_round(hugetlb)));
    out
}

/// Runs `rounds` rounds of `trials` and prints the figures.
pub fn command(
    trials: &[crate::run::plan::PlannedTrial],
    rounds: usize,
    jobs: usize,
    no_provision: bool,
) -> ExitCode {
    let Prepared { probe, guard } = prepare(trials, !no_provision);
    let mut walls = Vec::new();
    let mut all = Vec::new();
    let mut failed = 0;
    for round in 1..=rounds.max(1) {
        let start = Instant::now();
        let results = run::run_all(trials, &probe, jobs, &|_| {});
        let wall = start.elapsed();
        failed += results.iter().filter(|r| r.verdict.is_failure()).count();
        eprintln!(
            "round {round}: {} trials in {:.3} s",
            results.len(),
            wall.as_secs_f64()
        );
        walls.push(wall);
        all.extend(results);
    }
    drop(guard);
    let wall = Duration::from_secs_f64(median(walls.iter().map(Duration::as_secs_f64).collect()));
    println!("trials per round:   {}", trials.len());
    println!("rounds:             {}", walls.len());
    println!("jobs:               {jobs}");
    println!(
        "wall time (median): {:.3} s (min {:.3}, max {:.3})",
        wall.as_secs_f64(),
        walls.iter().min().unwrap_or(&wall).as_secs_f64(),
        walls.iter().max().unwrap_or(&wall).as_secs_f64()
    );
    println!(
        "trials per second:  {:.0}",
        trials.len() as f64 / wall.as_secs_f64().max(1e-9)
    );
    println!("runner peak RSS:    {:.1} MiB", runner_max_rss_mib());
    println!("per trial (median of {} trials, microseconds):", all.len());
    for (name, us) in phases(&all) {
        println!("  {name:<36} {us:>9.0}");
    }
    println!(
        "trial time by memory type (per round, sum of whole trials; hugetlb trials share one lane):"
    );
    for (memory, ms) in by_memory(&all, walls.len()) {
        println!("  {memory:<36} {ms:>7.0} ms");
    }
    if failed > 0 {
        println!("note: {failed} trial runs failed; the figures include them");
    }
    ExitCode::SUCCESS
}
