//! swapoff with write-protected pages on the device. The suite's own swap device (provisioned
//! and labelled by the suite) is turned off, which makes the kernel's unuse path bring every
//! page back in, and then on again. A trial that does this runs while no other trial swaps
//! (the swap lane in `run`), so the only pages on the device are its own.

use super::memops::{mismatch, swap_out, Verified};
use super::protocol::Mismatch;
use crate::kernel::memory::Area;
use crate::kernel::pagemap::Pagemap;
use crate::kernel::swap::{self, SWAP_PRIORITY};

/// Pages out `pages`, then swapoff(2) of every swap device (all the suite's own), then
/// swapon(2) of them again. `Err` is a failing swapoff: the kernel's failure.
pub fn swap_out_then_swapoff(
    area: &Area,
    pagemap: &Pagemap,
    pages: &[usize],
) -> Result<Verified, String> {
    let devices = swap::active_swap();
    if devices.is_empty() {
        return Ok(Verified::Declined(
            "no swap device (the suite provisions one when it runs as root)".into(),
        ));
    }
    if let Some((other, _)) = devices.iter().find(|(_, ours)| !ours) {
        return Ok(Verified::Declined(format!(
            "swap the suite did not make is active ({}): swapoff of it would touch the machine's own swap",
            other.display()
        )));
    }
    let mut observed = match swap_out(area, pagemap, pages) {
        Ok(Verified::Done(o)) => o,
        Ok(declined) => return Ok(declined),
        Err(e) => return Err(format!("madvise(MADV_PAGEOUT) failed: {}", e.desc())),
    };
    let mut failed = None;
    for (dev, _) in &devices {
        match swap::swapoff(dev) {
            Ok(()) => observed.push(format!("swapoff {}: success", dev.display())),
            Err(e) => {
                failed.get_or_insert(format!("swapoff {}: {e:?} ({})", dev.display(), e.desc()));
            }
        }
    }
    // Back on for the trials after this one; a device left off is removed by the guard.
    for (dev, _) in &devices {
        let _ = swap::swapon(dev, SWAP_PRIORITY);
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(Verified::Done(observed)),
    }
}

/// The step's verdict: a failing swapoff is a mismatch, not a skip.
pub fn run(area: &Area, pagemap: &Pagemap, pages: &[usize]) -> Result<Verified, Vec<Mismatch>> {
    swap_out_then_swapoff(area, pagemap, pages)
        .map_err(|e| vec![mismatch("swapoff of the suite's swap", "success", e)])
}
