//! The `stress` step's body: the trial's handler steps aside while the stress handlers serve
//! the uffd, and comes back after (unless the step closed the uffd).

use std::sync::atomic::Ordering;

use super::state::{StepOutcome, Trial};
use crate::case::stress::Stress;
use crate::trial::memops::mismatch;
use crate::trial::stress::{self, Input, Outcome};

impl Trial {
    pub(super) fn stress(&mut self, s: &Stress) -> StepOutcome {
        let migrates = s
            .threads
            .iter()
            .any(|w| w.ops.contains(&crate::case::stress::StressOp::Migrate));
        if migrates && crate::trial::migrate::memory_nodes().len() < 2 {
            return StepOutcome::Skip(
                "`migrate` needs two NUMA nodes with memory, and this machine has one (`uffd-conform vm --numa-nodes 2` boots a two-node guest)".into(),
            );
        }
        self.handler.stop();
        let input = Input {
            uffd: self.uffd.clone(),
            base: self.base.load(Ordering::SeqCst),
            page_size: self.area.page_size,
            pages: self.area.pages,
            memory: self.memory,
            features: self.features,
            modes: self.modes,
            pagemap: &self.pagemap,
            params: self.stress,
            trial: self.name.clone(),
        };
        let closes = s
            .threads
            .iter()
            .any(|w| w.ops.contains(&crate::case::stress::StressOp::Close));
        let outcome = stress::run(input, s);
        if !closes {
            if let Err(e) = self.handler.restart() {
                return StepOutcome::Failed(vec![mismatch(
                    "restart the fault handler",
                    "success",
                    e.to_string(),
                )]);
            }
        }
        match outcome {
            Outcome::Done(observed) => StepOutcome::Done(observed),
            Outcome::Failed(m) => StepOutcome::Failed(m),
            Outcome::Skipped(why) => StepOutcome::Skip(why),
        }
    }
}
