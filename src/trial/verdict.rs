//! What a trial's result means, and how it reads for a person.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::protocol::{Failure, Outcome, ProcessReport};
use crate::case::model::{ExpectFailure, ExpectedFailKind};
use crate::kernel::memory::MemoryType;

/// Why a trial failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailKind {
    /// A check saw something other than what the case expects.
    Mismatch,
    /// The trial did not finish in time.
    Timeout,
    /// The trial process died of a signal.
    Signal,
    /// The trial could not be run to the end for another reason.
    Error,
    /// A meta-test's deliberately wrong case did not fail as it should.
    Meta,
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check matched.
    Pass,
    /// The trial failed.
    Fail {
        /// Why it failed.
        kind: FailKind,
        /// What went wrong.
        message: String,
    },
    /// The trial could not run here.
    Skip {
        /// Why it could not run.
        reason: String,
    },
}

impl Verdict {
    /// A failure of `kind` with `message`.
    pub fn fail(kind: FailKind, message: impl Into<String>) -> Verdict {
        Verdict::Fail {
            kind,
            message: message.into(),
        }
    }

    /// The verdict a trial process's report gives.
    pub fn from_report(report: &ProcessReport) -> Verdict {
        match &report.outcome {
            Outcome::Pass => Verdict::Pass,
            Outcome::Skip(reason) => Verdict::Skip {
                reason: reason.clone(),
            },
            Outcome::Fail(f) => Verdict::fail(FailKind::Mismatch, describe_failure(f)),
        }
    }

    /// Whether the verdict is a failure.
    pub fn is_failure(&self) -> bool {
        matches!(self, Verdict::Fail { .. })
    }

    /// Judges a meta-test: it passes when the trial failed at the expected step with every
    /// expected string in its message.
    pub fn judge_meta(self, expect: &ExpectFailure) -> Verdict {
        let (wanted_kind, wanted_step) = match expect.kind {
            ExpectedFailKind::Mismatch => (FailKind::Mismatch, format!("step {} ", expect.step)),
            ExpectedFailKind::Timeout => (FailKind::Timeout, format!("at step {}", expect.step)),
            ExpectedFailKind::Signal => (FailKind::Signal, format!("at step {}", expect.step)),
        };
        let at_step = |m: &str| match expect.kind {
            ExpectedFailKind::Mismatch => m.starts_with(&wanted_step),
            _ => m.contains(&wanted_step),
        };
        match self {
            Verdict::Fail { kind, message }
                if kind == wanted_kind
                    && at_step(&message)
                    && expect.contains.iter().all(|s| message.contains(s.as_str())) =>
            {
                Verdict::Pass
            }
            Verdict::Skip { reason } => Verdict::Skip { reason },
            other => {
                let got = match &other {
                    Verdict::Pass => "it passed".to_string(),
                    Verdict::Fail { message, .. } => format!("it failed with: {message}"),
                    Verdict::Skip { .. } => unreachable!("handled above"),
                };
                Verdict::fail(
                    FailKind::Meta,
                    format!(
                        "meta-test: expected a {:?} failure at step {} mentioning {:?}, but {got}",
                        wanted_kind, expect.step, expect.contains
                    ),
                )
            }
        }
    }
}

/// e.g. "step 3 `write pages 0`: messages: expected [...], observed [...]".
pub fn describe_failure(f: &Failure) -> String {
    let mut out = if f.step == 0 {
        "setup".to_string()
    } else {
        format!("step {} `{}`", f.step, f.op)
    };
    out.push(':');
    for m in &f.mismatches {
        out.push_str(&format!(
            "\n    {}: expected {}, observed {}",
            m.check, m.expected, m.observed
        ));
    }
    out
}

/// A finished trial.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialResult {
    /// `topic::case::memory`.
    pub name: String,
    /// The memory type the trial ran on.
    pub memory: MemoryType,
    /// How the trial ended.
    pub verdict: Verdict,
    /// The trial's wall time.
    pub duration: Duration,
    /// What the trial process reported, when it reported.
    pub report: Option<ProcessReport>,
    /// The tail of the trial process's stderr.
    pub stderr: String,
}

impl TrialResult {
    /// A verdict no trial process reported: a skip decided before running, a result read
    /// from a guest's console, or a test's fixture.
    pub fn unreported(name: impl Into<String>, memory: MemoryType, verdict: Verdict) -> Self {
        TrialResult {
            name: name.into(),
            memory,
            verdict,
            duration: Duration::ZERO,
            report: None,
            stderr: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::protocol::Mismatch;

    fn failing(step: usize) -> Verdict {
        Verdict::from_report(&ProcessReport {
            outcome: Outcome::Fail(Failure {
                step,
                op: "write pages 0".into(),
                mismatches: vec![Mismatch {
                    check: "messages".into(),
                    expected: "[a]".into(),
                    observed: "[b]".into(),
                }],
            }),
            ..Default::default()
        })
    }

    #[test]
    fn failure_names_step_expected_and_observed() {
        let Verdict::Fail { message, .. } = failing(3) else {
            panic!()
        };
        assert_eq!(
            message,
            "step 3 `write pages 0`:\n    messages: expected [a], observed [b]"
        );
    }

    #[test]
    fn meta_passes_only_on_the_expected_failure() {
        let expect = ExpectFailure {
            step: 3,
            kind: ExpectedFailKind::Mismatch,
            contains: vec!["expected [a]".into()],
        };
        assert_eq!(failing(3).judge_meta(&expect), Verdict::Pass);
        assert!(failing(2).judge_meta(&expect).is_failure());
        assert!(Verdict::Pass.judge_meta(&expect).is_failure());
        let other = ExpectFailure {
            step: 3,
            kind: ExpectedFailKind::Mismatch,
            contains: vec!["observed [c]".into()],
        };
        assert!(failing(3).judge_meta(&other).is_failure());
    }
}
