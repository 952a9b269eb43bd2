//! `run --repeat N`: the same trials N times, and which of them changed verdict between rounds.
//! A conformance verdict must depend on the kernel, not on timing: a trial that passes in one
//! round and fails in another is a bug in the suite (or a race in the kernel) worth reporting.
//! A trial that only alternates between pass and skip is not flaky: the machine declined to
//! do what it needs in some rounds (compaction left the page, ksmd was slow), and it never
//! passed without testing. It is listed apart.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::trial::verdict::{FailKind, TrialResult, Verdict};

/// What is compared between rounds: pass, skip, or failure of a kind. Messages are not
/// compared, since they carry addresses that differ from one process to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Pass,
    Skip,
    Fail(FailKindKey),
}

/// [`FailKind`] made orderable, for stable reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailKindKey {
    Mismatch,
    Timeout,
    Signal,
    Error,
    Meta,
}

impl Class {
    pub fn of(v: &Verdict) -> Class {
        match v {
            Verdict::Pass => Class::Pass,
            Verdict::Skip { .. } => Class::Skip,
            Verdict::Fail { kind, .. } => Class::Fail(match kind {
                FailKind::Mismatch => FailKindKey::Mismatch,
                FailKind::Timeout => FailKindKey::Timeout,
                FailKind::Signal => FailKindKey::Signal,
                FailKind::Error => FailKindKey::Error,
                FailKind::Meta => FailKindKey::Meta,
            }),
        }
    }

    fn label(self) -> String {
        match self {
            Class::Pass => "pass".into(),
            Class::Skip => "skip".into(),
            Class::Fail(k) => format!("fail ({k:?})").to_lowercase(),
        }
    }
}

/// A trial whose verdict changed between rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flake {
    pub name: String,
    /// How many rounds gave each verdict.
    pub tally: BTreeMap<Class, usize>,
    /// The message of the first failing round, if any.
    pub first_failure: Option<String>,
}

impl Flake {
    /// Failed in some round and not in another (or failed differently): flaky. A trial that
    /// only passed or skipped is not.
    pub fn is_flaky(&self) -> bool {
        self.tally.keys().any(|c| matches!(c, Class::Fail(_)))
    }
}

/// Finds the trials whose verdict class differs between `rounds` (each round holds the same
/// trials in the same order, as `run_all` returns them).
pub fn flakes(rounds: &[Vec<TrialResult>]) -> Vec<Flake> {
    let mut by_name: BTreeMap<&str, (BTreeMap<Class, usize>, Option<String>)> = BTreeMap::new();
    for round in rounds {
        for r in round {
            let entry = by_name.entry(&r.name).or_default();
            *entry.0.entry(Class::of(&r.verdict)).or_default() += 1;
            if let (None, Verdict::Fail { message, .. }) = (&entry.1, &r.verdict) {
                entry.1 = Some(message.clone());
            }
        }
    }
    by_name
        .into_iter()
        .filter(|(_, (tally, _))| tally.len() > 1)
        .map(|(name, (tally, first_failure))| Flake {
            name: name.to_string(),
            tally,
            first_failure,
        })
        .collect()
}

/// Prints [`describe_flakes`] where the human output goes: stderr when KTAP owns stdout.
pub fn print_flakes(rounds: &[Vec<TrialResult>], flakes: &[Flake], to_stderr: bool) {
    let text = describe_flakes(rounds, flakes);
    if to_stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// The flakes of `--repeat`: each flaky trial with its tally, the trials that only varied between
/// pass and skip, then one line of totals.
pub fn describe_flakes(rounds: &[Vec<TrialResult>], flakes: &[Flake]) -> String {
    let mut out = String::new();
    let trials = rounds.first().map_or(0, Vec::len);
    let tally = |f: &Flake| -> String {
        f.tally
            .iter()
            .map(|(c, n)| format!("{n} {}", c.label()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (flaky, varied): (Vec<&Flake>, Vec<&Flake>) = flakes.iter().partition(|f| f.is_flaky());
    if !flaky.is_empty() {
        let _ = writeln!(out, "\nflaky (verdict changed between rounds):");
        for f in &flaky {
            let _ = writeln!(out, "FLAKY   {}: {}", f.name, tally(f));
            if let Some(m) = &f.first_failure {
                let _ = writeln!(out, "    first failure: {}", m.replace('\n', "\n    "));
            }
        }
    }
    if !varied.is_empty() {
        let _ = writeln!(
            out,
            "\nvaried between pass and skip (the machine declined in some rounds; not flaky):"
        );
        for f in &varied {
            let _ = writeln!(out, "VARIED  {}: {}", f.name, tally(f));
        }
    }
    let _ = writeln!(
        out,
        "\nrepeat: {} rounds of {trials} trials, {} flaky, {} varied between pass and skip",
        rounds.len(),
        flaky.len(),
        varied.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::memory::MemoryType;

    fn result(name: &str, verdict: Verdict) -> TrialResult {
        TrialResult::unreported(name, MemoryType::Anon, verdict)
    }

    #[test]
    fn steady_trials_are_not_flaky_even_when_they_fail() {
        let round = || {
            vec![
                result("a::x::anon", Verdict::Pass),
                result(
                    "a::y::anon",
                    Verdict::fail(FailKind::Mismatch, "step 1 at 0x1000"),
                ),
                result("a::z::anon", Verdict::Skip { reason: "r".into() }),
            ]
        };
        // Messages differ (addresses), classes do not: no flake.
        let mut second = round();
        second[1] = result(
            "a::y::anon",
            Verdict::fail(FailKind::Mismatch, "step 1 at 0x2000"),
        );
        assert!(flakes(&[round(), second]).is_empty());
    }

    #[test]
    fn a_changed_verdict_is_a_flake_with_its_tally() {
        let rounds = vec![
            vec![result("a::x::anon", Verdict::Pass)],
            vec![result(
                "a::x::anon",
                Verdict::fail(FailKind::Timeout, "TIMEOUT at step 2"),
            )],
            vec![result("a::x::anon", Verdict::Pass)],
        ];
        let f = flakes(&rounds);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].tally[&Class::Pass], 2);
        assert_eq!(f[0].tally[&Class::Fail(FailKindKey::Timeout)], 1);
        assert_eq!(f[0].first_failure.as_deref(), Some("TIMEOUT at step 2"));
        let text = describe_flakes(&rounds, &f);
        assert!(
            text.contains("FLAKY   a::x::anon: 2 pass, 1 fail (timeout)"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "repeat: 3 rounds of 1 trials, 1 flaky, 0 varied between pass and skip\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_failure_kind_change_is_a_flake() {
        let rounds = vec![
            vec![result("a::x::anon", Verdict::fail(FailKind::Mismatch, "m"))],
            vec![result("a::x::anon", Verdict::fail(FailKind::Signal, "s"))],
        ];
        assert_eq!(flakes(&rounds).len(), 1);
    }

    #[test]
    fn pass_and_skip_alone_vary_but_are_not_flaky() {
        let rounds = vec![
            vec![result("a::x::anon", Verdict::Pass)],
            vec![result("a::x::anon", Verdict::Skip { reason: "r".into() })],
        ];
        let f = flakes(&rounds);
        assert_eq!(f.len(), 1);
        assert!(!f[0].is_flaky());
        let text = describe_flakes(&rounds, &f);
        assert!(
            text.contains("VARIED  a::x::anon: 1 pass, 1 skip"),
            "{text}"
        );
        assert!(
            text.ends_with("0 flaky, 1 varied between pass and skip\n"),
            "{text}"
        );
    }
}
