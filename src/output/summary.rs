//! The verdict counts of a run's raw results (what `--bisect` judges by).

use crate::trial::verdict::{TrialResult, Verdict};

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
    fn counts_tally_each_verdict() {
        let results = vec![
            result("a::x::anon", Verdict::Pass),
            result("a::y::anon", Verdict::fail(FailKind::Mismatch, "m")),
            result(
                "a::z::hugetlb",
                Verdict::Skip {
                    reason: "no huge pages".into(),
                },
            ),
        ];
        let c = counts(&results);
        assert_eq!((c.passed, c.failed, c.skipped), (1, 1, 1));
    }
}
