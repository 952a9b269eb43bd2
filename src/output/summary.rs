//! Human-readable results: one line per failure or skip, and a summary whose last line is
//! `N passed, N failed, N skipped`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::trial::verdict::{TrialResult, Verdict};

/// One line (more for failures) about a finished trial.
pub fn trial_line(r: &TrialResult) -> String {
    let ms = r.duration.as_secs_f64() * 1000.0;
    match &r.verdict {
        Verdict::Pass => format!("ok      {} ({ms:.0} ms)", r.name),
        Verdict::Skip { reason } => format!("skip    {}: {reason}", r.name),
        Verdict::Fail { message, .. } => format!(
            "FAIL    {} ({ms:.0} ms)\n    {}",
            r.name,
            message.replace('\n', "\n    ")
        ),
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

pub fn counts(results: &[TrialResult]) -> Counts {
    let mut c = Counts::default();
    for r in results {
        match r.verdict {
            Verdict::Pass => c.passed += 1,
            Verdict::Fail { .. } => c.failed += 1,
            Verdict::Skip { .. } => c.skipped += 1,
        }
    }
    c
}

/// The end-of-run summary: failures in full, skips grouped by reason, then the counts.
pub fn summary(results: &[TrialResult]) -> String {
    let mut out = String::new();
    let failures: Vec<&TrialResult> = results.iter().filter(|r| r.verdict.is_failure()).collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nfailures:");
        for r in &failures {
            let _ = writeln!(out, "{}", trial_line(r));
        }
    }
    let mut skips: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in results {
        if let Verdict::Skip { reason } = &r.verdict {
            skips.entry(reason).or_default().push(&r.name);
        }
    }
    if !skips.is_empty() {
        let _ = writeln!(out, "\nskipped:");
        for (reason, names) in &skips {
            let _ = writeln!(
                out,
                "  {} trial{}: {reason}",
                names.len(),
                if names.len() == 1 { "" } else { "s" }
            );
        }
    }
    let c = counts(results);
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} skipped",
        c.passed, c.failed, c.skipped
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::memory::MemoryType;
    use crate::trial::verdict::FailKind;
    use std::time::Duration;

    fn result(name: &str, verdict: Verdict) -> TrialResult {
        TrialResult {
            duration: Duration::from_millis(3),
            ..TrialResult::unreported(name, MemoryType::Anon, verdict)
        }
    }

    #[test]
    fn summary_lists_failures_groups_skips_and_counts() {
        let results = vec![
            result("a::x::anon", Verdict::Pass),
            result(
                "a::y::anon",
                Verdict::fail(
                    FailKind::Mismatch,
                    "step 2 `write pages 0`:\n    messages: expected [a], observed [b]",
                ),
            ),
            result(
                "a::z::hugetlb",
                Verdict::Skip {
                    reason: "no huge pages".into(),
                },
            ),
            result(
                "a::w::hugetlb",
                Verdict::Skip {
                    reason: "no huge pages".into(),
                },
            ),
        ];
        let s = summary(&results);
        assert!(s.contains("FAIL    a::y::anon (3 ms)\n    step 2 `write pages 0`:\n        messages: expected [a], observed [b]"), "{s}");
        assert!(s.contains("  2 trials: no huge pages"), "{s}");
        assert!(s.ends_with("\n1 passed, 1 failed, 2 skipped\n"), "{s}");
    }
}
