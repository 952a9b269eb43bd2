//! The operations that read the kernel's view of protection mid-run, under the range's
//! protection locks, so the model is exact while they read: `pagemap` (bit 57) and `scan`
//! (PAGEMAP_SCAN's written set, with `wp_async`).

use nix::errno::Errno;

use super::env::Env;
use super::model::Shared;
use crate::kernel::uapi::*;
use crate::trial::memops::mismatch;

/// pagemap bit 57 of each page of the range against the model.
pub fn pagemap(shared: &Shared, env: &Env, range: std::ops::Range<usize>) -> String {
    let wp = shared.lock_wp(range.clone());
    let mut differ = 0;
    for (i, p) in range.clone().enumerate() {
        match env.pagemap.entry(shared.page_addr(p)) {
            Ok(e) if e.uffd_wp() != *wp[i] => {
                differ += 1;
                shared.problem(mismatch(
                    format!("pagemap bit 57 (uffd-wp) of page {p}, read mid-run under its lock"),
                    format!("{} (as last set)", *wp[i]),
                    format!("{} ({})", e.uffd_wp(), e.describe()),
                ));
            }
            Ok(_) => {}
            Err(e) => {
                shared.problem(mismatch(
                    "read /proc/self/pagemap",
                    "success",
                    e.to_string(),
                ));
                return "unreadable".into();
            }
        }
    }
    if differ == 0 {
        format!("{} pages agree", range.len())
    } else {
        format!("{differ} pages differ")
    }
}

/// PAGEMAP_SCAN of the range (WP_ASYNC): the WRITTEN set must be the pages the model has
/// unprotected; with `protect` it also protects what it reports (PM_SCAN_WP_MATCHING), after
/// which the whole range is protected.
pub fn scan(shared: &Shared, env: &Env, range: std::ops::Range<usize>, protect: bool) -> String {
    let mut wp = shared.lock_wp(range.clone());
    let arg = PmScanArg {
        start: shared.page_addr(range.start) as u64,
        end: shared.page_addr(range.end) as u64,
        flags: if protect {
            PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC
        } else {
            0
        },
        category_mask: PAGE_IS_WRITTEN,
        return_mask: PAGE_IS_WRITTEN,
        ..Default::default()
    };
    let regions = match env.pagemap.scan(arg, range.len()) {
        Ok((r, _)) => r,
        Err(e) => return failed(shared, "PAGEMAP_SCAN", e),
    };
    // One region per page at most: the walk never stops short of the range's end.
    let mut written = vec![false; range.len()];
    for r in regions {
        let a = (r.start as usize - shared.page_addr(range.start)) / shared.page_size;
        let b = (r.end as usize - shared.page_addr(range.start)).div_ceil(shared.page_size);
        written[a..b.min(range.len())]
            .iter_mut()
            .for_each(|w| *w = true);
    }
    let mut differ = 0;
    for (i, p) in range.clone().enumerate() {
        if written[i] == *wp[i] {
            differ += 1;
            shared.problem(mismatch(
                format!("PAGEMAP_SCAN written of page {p}, mid-run under its lock (written since the last protect)"),
                (!*wp[i]).to_string(),
                written[i].to_string(),
            ));
        }
    }
    if protect {
        wp.iter_mut().for_each(|w| **w = true);
    }
    let how = if protect {
        "written, now protected"
    } else {
        "written"
    };
    format!(
        "{} of {} {how}{}",
        written.iter().filter(|w| **w).count(),
        range.len(),
        if differ > 0 {
            format!("; {differ} differ")
        } else {
            String::new()
        }
    )
}

fn failed(shared: &Shared, what: &str, e: Errno) -> String {
    shared.problem(mismatch(what, "success", e.desc().to_string()));
    e.desc().to_string()
}
