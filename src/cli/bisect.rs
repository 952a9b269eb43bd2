//! `--bisect` exit codes for `git bisect run`: 0 good, 1 bad, 125 this kernel cannot be
//! tested. Never 128 or more, which would make `git bisect run` give up.
//!
//! A skip means the kernel could not run the selected trial (a feature missing, no huge
//! pages), so it cannot say good or bad: any skip among the selected trials is 125, as is a
//! run that produced no verdict at all (the kernel did not boot, the suite could not start).
//! A failure anywhere wins over skips: the kernel did something wrong.

use crate::output::summary::Counts;

pub const GOOD: u8 = 0;
pub const BAD: u8 = 1;
pub const UNTESTABLE: u8 = 125;

/// What a run came to, as far as bisection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The selected trials ran; these are their verdicts.
    Ran(Counts),
    /// No verdict: the kernel did not boot, the suite could not start, nothing was selected.
    Untestable,
}

pub fn exit_code(outcome: RunOutcome) -> u8 {
    match outcome {
        RunOutcome::Ran(c) if c.failed > 0 => BAD,
        RunOutcome::Ran(c) if c.skipped == 0 && c.passed > 0 => GOOD,
        RunOutcome::Ran(_) | RunOutcome::Untestable => UNTESTABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(passed: usize, failed: usize, skipped: usize) -> RunOutcome {
        RunOutcome::Ran(Counts {
            passed,
            failed,
            skipped,
        })
    }

    #[test]
    fn pass_fail_and_untestable_map_to_bisect_codes() {
        assert_eq!(exit_code(ran(5, 0, 0)), 0);
        assert_eq!(exit_code(ran(4, 1, 0)), 1);
        assert_eq!(exit_code(ran(0, 1, 4)), 1, "a failure wins over skips");
        assert_eq!(
            exit_code(ran(4, 0, 1)),
            125,
            "a skipped selected trial cannot say good"
        );
        assert_eq!(exit_code(ran(0, 0, 5)), 125);
        assert_eq!(exit_code(ran(0, 0, 0)), 125, "nothing ran");
        assert_eq!(exit_code(RunOutcome::Untestable), 125);
    }
}
