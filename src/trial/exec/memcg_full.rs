//! `protect` with `memcg_full`: UFFDIO_WRITEPROTECT while the trial's memory cgroup is held
//! at its limit, so a page-table allocation the ioctl needs fails.

use super::state::{Ran, StepOutcome, Trial};
use crate::case::model::{ErrnoName, RangeOp};
use crate::case::pages::Pages;
use crate::kernel::memcg::Memcg;
use crate::kernel::uapi::UFFDIO_WRITEPROTECT_MODE_WP;
use crate::trial::memops::{check_errno, mismatch, pages_of, Checked};

impl Trial {
    /// The step: its checks, or a skip when the cgroup could not be made or held full.
    pub(super) fn protect_memcg_full(&mut self, r: &RangeOp) -> Ran {
        match self.protect_with_memcg_full(r) {
            Ok(checked) => Ran::checked(checked),
            Err(reason) => Ran::Final(StepOutcome::Skip(reason)),
        }
    }

    /// UFFDIO_WRITEPROTECT while the trial's memory cgroup is full. Nothing is allocated
    /// while it is: a user-mode fault that cannot be charged would wait for memory.
    fn protect_with_memcg_full(&mut self, r: &RangeOp) -> Result<Checked, String> {
        if self.memcg.is_none() {
            self.memcg =
                Some(Memcg::enter().map_err(|e| {
                    format!("cannot give the trial a memory cgroup of its own: {e}")
                })?);
        }
        let mode = r.mode.unwrap_or(UFFDIO_WRITEPROTECT_MODE_WP);
        let shift = r.shift.unwrap_or(0);
        let runs: Vec<(usize, usize)> = Pages::runs(&pages_of(&self.area, &r.pages))
            .into_iter()
            .map(|(first, count)| {
                (
                    self.area.page_addr(first) + shift,
                    count * self.area.page_size,
                )
            })
            .collect();
        let uffd = &self.uffd;
        let memcg = self.memcg.as_mut().expect("entered above");
        let (result, fullness) = memcg
            .while_full(|| {
                runs.iter()
                    .try_for_each(|&(s, l)| uffd.writeprotect(s, l, mode))
            })
            .map_err(|e| format!("cannot hold the memory cgroup at its limit: {e}"))?;
        if result.is_ok() && fullness.room_after > 0 {
            // The ioctl may have found room instead of meeting the limit: no verdict either way.
            return Err(format!(
                "the memory cgroup had room again while UFFDIO_WRITEPROTECT ran, so its success says nothing ({fullness})"
            ));
        }
        if result.is_ok() && r.errno.is_some() {
            // Success with no room: either the kernel needed no page table (they were there
            // already, left by an earlier mapping of these addresses), and then every page is
            // protected, or it failed to allocate one and said nothing, leaving pages bare.
            let pages = pages_of(&self.area, &r.pages);
            let bare: Vec<usize> = pages
                .iter()
                .copied()
                .filter(|&p| {
                    !self
                        .pagemap
                        .entry(self.area.page_addr(p))
                        .is_ok_and(|e| e.uffd_wp())
                })
                .collect();
            if bare.is_empty() {
                return Err(format!(
                    "UFFDIO_WRITEPROTECT needed no page table (they existed already) and protected every page: nothing to test ({fullness})"
                ));
            }
            return Ok(Err(vec![mismatch(
                "UFFDIO_WRITEPROTECT(WP) with the memory cgroup full",
                r.errno.as_ref().map_or(String::new(), |e| {
                    let e = e.errno();
                    format!("{e:?} ({})", e.desc())
                }),
                format!(
                    "success, with {} of {} pages left unprotected (first: page {}) [{fullness}]",
                    bare.len(),
                    pages.len(),
                    bare[0]
                ),
            )]));
        }
        let checked = check_errno(
            "UFFDIO_WRITEPROTECT(WP) with the memory cgroup full",
            r.errno.as_ref().map(ErrnoName::errno),
            result,
        );
        Ok(match checked {
            Ok(mut o) => {
                o.insert(0, fullness.to_string());
                Ok(o)
            }
            Err(mut m) => {
                for x in &mut m {
                    x.observed = format!("{} [{fullness}]", x.observed);
                }
                Err(m)
            }
        })
    }
}
