//! Making the machine ready for a run: probe it, then provision the huge pages and swap the
//! trials need (restored when the [`Prepared`] is dropped). One routine for `run`, `bench` and
//! the `cargo test` harness.

use crate::host::provision::{self, Guard};
use crate::kernel::probe::Probe;

use super::plan::PlannedTrial;
use super::request_for;

/// The probed machine, provisioned for the trials unless asked not to.
pub struct Prepared {
    /// What the machine offers, after provisioning.
    pub probe: Probe,
    /// Holds the provisioning; dropping it restores the host.
    pub guard: Option<Guard>,
}

/// Probes the machine and, when `provision` is set, provisions it for `trials`.
pub fn prepare(trials: &[PlannedTrial], provision: bool) -> Prepared {
    let mut probe = Probe::run();
    let guard = provision.then(|| provision::provision(request_for(trials), &mut probe));
    Prepared { probe, guard }
}

impl Prepared {
    /// What provisioning did (empty without it), for the run's log and record.
    pub fn notes(&self) -> &[String] {
        self.guard.as_ref().map_or(&[], |g| &g.notes)
    }

    /// Prints the provisioning notes on stderr, one `provision:` line each.
    pub fn print_notes(&self) {
        for note in self.notes() {
            eprintln!("provision: {note}");
        }
    }
}
