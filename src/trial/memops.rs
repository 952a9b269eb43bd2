//! Memory operations on the trial's area that need no userfaultfd: accesses, madvise,
//! mprotect, munmap, swap-out, and the pagemap check. Shared by the trial and fork children.

use nix::errno::Errno;

use super::data;
use super::protocol::Mismatch;
use crate::case::model::{Access, Advice, PagemapExpect, Prot};
use crate::case::pages::Pages;
use crate::kernel::memory::Area;
use crate::kernel::mm;
use crate::kernel::pagemap::{Entry, Pagemap};

pub fn mismatch(
    check: impl Into<String>,
    expected: impl Into<String>,
    observed: impl Into<String>,
) -> Mismatch {
    Mismatch {
        check: check.into(),
        expected: expected.into(),
        observed: observed.into(),
    }
}

/// Observations on success, mismatches on failure.
pub type Checked = Result<Vec<String>, Vec<Mismatch>>;

pub fn checked(observed: Vec<String>, mismatches: Vec<Mismatch>) -> Checked {
    if mismatches.is_empty() {
        Ok(observed)
    } else {
        Err(mismatches)
    }
}

pub fn pages_of(area: &Area, pages: &Pages) -> Vec<usize> {
    pages.resolve(area.pages).expect("validated when loaded")
}

/// Writes or reads whole pages (in this thread); reads check contents when `data` is given.
pub fn access(area: &Area, a: &Access, write: bool) -> Checked {
    access_at(area, a, write, area.base())
}

/// An access of the pages as mapped at `base` (the area, or its alias mapping).
pub fn access_at(area: &Area, a: &Access, write: bool, base: usize) -> Checked {
    let mut mismatches = Vec::new();
    for p in pages_of(area, &a.pages) {
        let addr = base + p * area.page_size;
        // SAFETY: the page is inside the mapping; faults are resolved by the handler (or the
        // case expects the process to die of a signal).
        unsafe {
            if write {
                data::write_page(addr, area.page_size, p, a.data.unwrap_or(1));
            } else {
                data::touch_read(addr);
                if let Some(gen) = a.data {
                    if let Some((word, want, got)) = data::verify_page(addr, area.page_size, p, gen)
                    {
                        mismatches.push(mismatch(
                            format!("data of page {p} at word {word}"),
                            data::explain(want),
                            data::explain(got),
                        ));
                    }
                }
            }
        }
    }
    checked(vec![], mismatches)
}

/// Fills the pages from kernel mode: read(2) from /dev/zero into them.
pub fn kernel_write(area: &Area, pages: &[usize]) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let zero = std::fs::File::open("/dev/zero")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    over_runs(area, pages, |addr, len| {
        let n = mm::read_into(zero.as_raw_fd(), addr, len)?;
        if n == len {
            Ok(())
        } else {
            Err(Errno::EIO)
        }
    })
}

/// Writes one byte at `addr` through /proc/self/mem (FOLL_FORCE, as ptrace would).
pub fn proc_mem_write(addr: usize, value: u8) -> Result<(), Errno> {
    use std::os::unix::fs::FileExt;
    let errno = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    let mem = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/mem")
        .map_err(errno)?;
    mem.write_at(&[value], addr as u64).map(drop).map_err(errno)
}

/// Writes one byte at `offset` into `page`.
pub fn poke(area: &Area, page: usize, offset: usize, value: u8) {
    // SAFETY: offset is inside the page (validated); faults are resolved by the handler.
    unsafe { std::ptr::write_volatile((area.page_addr(page) + offset) as *mut u8, value) };
}

/// Runs `call(addr, len)` over each run of consecutive pages; stops at the first error.
pub fn over_runs(
    area: &Area,
    pages: &[usize],
    mut call: impl FnMut(usize, usize) -> Result<(), Errno>,
) -> Result<(), Errno> {
    for (first, count) in Pages::runs(pages) {
        call(area.page_addr(first), count * area.page_size)?;
    }
    Ok(())
}

pub fn madvise(area: &Area, pages: &[usize], advice: Advice) -> Result<(), Errno> {
    over_runs(area, pages, |addr, len| {
        mm::madvise(addr, len, advice.raw())
    })
}

pub fn mprotect(area: &Area, pages: &[usize], prot: Prot) -> Result<(), Errno> {
    let raw = match prot {
        Prot::None => libc::PROT_NONE,
        Prot::Read => libc::PROT_READ,
        Prot::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
    };
    over_runs(area, pages, |addr, len| mm::mprotect(addr, len, raw))
}

/// munmap(2) of the pages; with `then_map_anon`, fresh unregistered anonymous memory is
/// mapped at the same addresses, so later steps see what the old page tables left there.
pub fn munmap(area: &Area, pages: &[usize], then_map_anon: bool) -> Result<(), Errno> {
    over_runs(area, pages, mm::munmap)?;
    if then_map_anon {
        over_runs(area, pages, mm::anon_at)?;
    }
    Ok(())
}

/// Whether the page at `addr` is resident (mincore), for memory pagemap cannot show swapped.
pub fn resident(addr: usize, len: usize) -> bool {
    mm::resident(addr, len)
}

/// The result of an operation whose effect is verified (swap-out, KSM merge, collapse).
pub enum Verified {
    /// It happened; what was seen.
    Done(Vec<String>),
    /// The kernel or machine declined (reclaim kept a page, ksmd did not merge, no THP): the
    /// trial cannot test what it should and is skipped with this reason.
    Declined(String),
}

/// A verified operation as a step's checks: `Done`'s observations, the mismatches `fail`
/// makes of an error, or `Declined`'s reason as `Err` (the step, and so the trial, skips).
pub fn verified<E>(
    result: Result<Verified, E>,
    fail: impl FnOnce(E) -> Vec<Mismatch>,
) -> Result<Checked, String> {
    match result {
        Ok(Verified::Done(observed)) => Ok(Ok(observed)),
        Ok(Verified::Declined(reason)) => Err(reason),
        Err(e) => Ok(Err(fail(e))),
    }
}

/// MADV_PAGEOUT until every page is out (anon: bit 62; others: not resident), a few tries.
pub fn swap_out(area: &Area, pagemap: &Pagemap, pages: &[usize]) -> Result<Verified, Errno> {
    let is_out = |p: usize| -> bool {
        let entry = pagemap.entry(area.page_addr(p)).unwrap_or(Entry(0));
        entry.swapped() || (!entry.present() && !resident(area.page_addr(p), area.page_size))
    };
    // Reclaim may decline a page that is momentarily busy (locked, under writeback, on a
    // per-CPU LRU batch): try a few times before calling the machine unable to swap.
    for attempt in 0..10 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(2 * attempt));
        }
        madvise(area, pages, Advice::Pageout)?;
        if pages.iter().all(|&p| is_out(p)) {
            let observed = pages
                .iter()
                .map(|&p| {
                    format!(
                        "page {p} swapped out: {}",
                        pagemap
                            .entry(area.page_addr(p))
                            .unwrap_or(Entry(0))
                            .describe()
                    )
                })
                .collect();
            return Ok(Verified::Done(observed));
        }
    }
    let kept: Vec<String> = pages
        .iter()
        .filter(|&&p| !is_out(p))
        .map(|p| p.to_string())
        .collect();
    Ok(Verified::Declined(format!(
        "MADV_PAGEOUT left page(s) {} in memory (no swap device, or reclaim declined them: shared, pinned or locked)",
        kept.join(", ")
    )))
}

/// The contents of each present page (holes are not read: reading would fill them).
pub fn snapshot_present(area: &Area, pagemap: &Pagemap, pages: &[usize]) -> Vec<Option<Vec<u8>>> {
    pages
        .iter()
        .map(|&p| {
            let present = pagemap
                .entry(area.page_addr(p))
                .is_ok_and(|e| e.present() || e.swapped());
            // SAFETY: a present page of our own mapping, read without faulting.
            present.then(|| unsafe {
                std::slice::from_raw_parts(area.page_addr(p) as *const u8, area.page_size).to_vec()
            })
        })
        .collect()
}

/// After a move of `from` onto `to`: each destination holds what its source held.
pub fn compare_moved(
    area: &Area,
    before: &[Option<Vec<u8>>],
    from: &[usize],
    to: &[usize],
) -> Checked {
    let mut mismatches = Vec::new();
    let mut kept = 0;
    for ((bytes, &src), &dst) in before.iter().zip(from).zip(to) {
        let Some(bytes) = bytes else { continue };
        // SAFETY: the destination was just filled by UFFDIO_MOVE.
        let now =
            unsafe { std::slice::from_raw_parts(area.page_addr(dst) as *const u8, area.page_size) };
        match moved_page_differs(src, dst, bytes, now) {
            None => kept += 1,
            Some(m) => mismatches.push(m),
        }
    }
    checked(
        vec![format!("{kept} moved page(s) hold their source's contents")],
        mismatches,
    )
}

/// The first word where a moved page's contents `now` differ from what its source held.
fn moved_page_differs(src: usize, dst: usize, before: &[u8], now: &[u8]) -> Option<Mismatch> {
    let word_at =
        |b: &[u8], w: usize| u64::from_ne_bytes(b[w * 8..w * 8 + 8].try_into().expect("8 bytes"));
    let word = before
        .chunks_exact(8)
        .zip(now.chunks_exact(8))
        .position(|(a, b)| a != b)?;
    Some(mismatch(
        format!("contents of page {dst} moved from page {src}, word {word}"),
        data::explain(word_at(before, word)),
        data::explain(word_at(now, word)),
    ))
}

/// A pagemap bit: its name, number, the expected value and how to read it.
type BitCheck = (&'static str, u32, Option<bool>, fn(Entry) -> bool);

/// MADV_COLLAPSE, then touches the pages and checks the first is backed by a huge page.
pub fn collapse(area: &Area, pagemap: &Pagemap, pages: &[usize]) -> Result<Verified, Errno> {
    if let Err(e) = madvise(area, pages, Advice::Collapse) {
        return Ok(Verified::Declined(format!(
            "MADV_COLLAPSE declined: {e:?} ({})",
            e.desc()
        )));
    }
    for &p in pages {
        // SAFETY: a read of our own mapping (faults are served by the handler).
        unsafe { data::touch_read(area.page_addr(p)) };
    }
    let first = pages.first().copied().unwrap_or(0);
    let entry = pagemap
        .entry(area.page_addr(first))
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let huge = entry.pfn().map(crate::kernel::pagemap::frame_is_huge);
    match huge {
        Some(Ok(true)) => Ok(Verified::Done(vec![format!(
            "page {first} is in a transparent huge page ({})",
            entry.describe()
        )])),
        Some(Ok(false)) => Ok(Verified::Declined(
            "MADV_COLLAPSE succeeded but the pages are not in a huge page".into(),
        )),
        _ => Ok(Verified::Declined(format!(
            "cannot tell whether page {first} is huge (no PFN: {})",
            entry.describe()
        ))),
    }
}

/// MADV_MERGEABLE, then waits for ksmd to merge the pages into one frame.
pub fn ksm_merge(area: &Area, pagemap: &Pagemap, pages: &[usize]) -> Result<Verified, Errno> {
    madvise(area, pages, Advice::Mergeable)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let pfns: Vec<Option<u64>> = pages
            .iter()
            .map(|&p| pagemap.frame(area.page_addr(p)))
            .collect();
        if pfns.iter().all(|f| f.is_some() && *f == pfns[0]) {
            return Ok(Verified::Done(vec![format!(
                "merged into PFN 0x{:x}",
                pfns[0].unwrap_or(0)
            )]));
        }
        if std::time::Instant::now() > deadline {
            return Ok(Verified::Declined(
                "ksmd did not merge the pages within 5 s (KSM off or slow; the suite starts it when it runs as root)".into(),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Checks the named pagemap bits of each page.
pub fn check_pagemap(area: &Area, pagemap: &Pagemap, p: &PagemapExpect) -> Checked {
    let mut observed = Vec::new();
    let mut mismatches = Vec::new();
    let bits: [BitCheck; 5] = [
        ("wp", 57, p.wp, Entry::uffd_wp),
        ("present", 63, p.present, Entry::present),
        ("swapped", 62, p.swapped, Entry::swapped),
        ("file", 61, p.file, Entry::file),
        ("exclusive", 56, p.exclusive, Entry::exclusive),
    ];
    for page in pages_of(area, &p.pages) {
        let entry = match pagemap.entry(area.page_addr(page)) {
            Ok(e) => e,
            Err(e) => {
                mismatches.push(mismatch(
                    format!("pagemap of page {page}"),
                    "an entry",
                    e.to_string(),
                ));
                continue;
            }
        };
        observed.push(format!("pagemap page {page}: {}", entry.describe()));
        if let Some(want) = p.huge {
            let got = match entry.pfn() {
                Some(pfn) => crate::kernel::pagemap::frame_is_huge(pfn).map_err(|e| e.to_string()),
                None => Err(format!("no PFN ({})", entry.describe())),
            };
            match got {
                Ok(got) if got == want => {}
                Ok(got) => mismatches.push(mismatch(
                    format!("page {page} huge (kpageflags)"),
                    u8::from(want).to_string(),
                    u8::from(got).to_string(),
                )),
                Err(e) => mismatches.push(mismatch(
                    format!("page {page} huge (kpageflags)"),
                    u8::from(want).to_string(),
                    e,
                )),
            }
        }
        for (name, bit, want, get) in bits {
            if let Some(want) = want {
                let got = get(entry);
                if got != want {
                    mismatches.push(mismatch(
                        format!("pagemap page {page} bit {bit} ({name})"),
                        u8::from(want).to_string(),
                        format!("{} [entry: {}]", u8::from(got), entry.describe()),
                    ));
                }
            }
        }
    }
    checked(observed, mismatches)
}

/// Compares an errno expectation with a result.
pub fn check_errno(call: &str, want: Option<Errno>, got: Result<(), Errno>) -> Checked {
    let show = |r: Result<(), Errno>| match r {
        Ok(()) => "success".to_string(),
        Err(e) => format!("{e:?} ({})", e.desc()),
    };
    let ok = match (want, got) {
        (None, Ok(())) => true,
        (Some(w), Err(g)) => w == g,
        _ => false,
    };
    if ok {
        Ok(vec![format!("{call}: {}", show(got))])
    } else {
        Err(vec![mismatch(
            call,
            show(want.map_or(Ok(()), Err)),
            show(got),
        )])
    }
}

/// The `vmflags` step: every vma overlapping the pages shows each mnemonic of `has` and none
/// of `lacks`.
pub fn check_vmflags(area: &Area, v: &crate::case::model::VmFlagsExpect) -> Checked {
    let pages = pages_of(area, &v.pages);
    let (Some(&first), Some(&last)) = (pages.iter().min(), pages.iter().max()) else {
        return Ok(vec![]);
    };
    let (start, end) = (area.page_addr(first), area.page_addr(last) + area.page_size);
    let vmas = crate::kernel::procfs::vma_flags(start, end)
        .map_err(|e| vec![mismatch("read /proc/self/smaps", "the vmas", e.to_string())])?;
    if vmas.is_empty() {
        return Err(vec![mismatch(
            format!("vmas of pages {}", v.pages),
            "at least one",
            "none in /proc/self/smaps",
        )]);
    }
    let mut observed = Vec::new();
    let mut mismatches = Vec::new();
    for vma in &vmas {
        let (a, b) = (
            vma.start.max(area.base()),
            vma.end.min(area.base() + area.len()),
        );
        let at = format!(
            "VmFlags of the vma over pages {}..{}",
            (a - area.base()) / area.page_size,
            (b - area.base()).div_ceil(area.page_size)
        );
        observed.push(format!("{at}: {}", vma.flags.join(" ")));
        let shows = |m: &String| vma.flags.iter().any(|f| f == m);
        for m in v.has.iter().filter(|m| !shows(m)) {
            mismatches.push(mismatch(&at, format!("`{m}` shown"), vma.flags.join(" ")));
        }
        for m in v.lacks.iter().filter(|m| shows(m)) {
            mismatches.push(mismatch(&at, format!("no `{m}`"), vma.flags.join(" ")));
        }
    }
    checked(observed, mismatches)
}

#[cfg(test)]
mod tests {
    use super::{moved_page_differs, verified, Verified};
    use crate::trial::data::word;

    fn page(gen: u8, page: usize) -> Vec<u8> {
        (0..512)
            .flat_map(|w| word(gen, page, w).to_ne_bytes())
            .collect()
    }

    #[test]
    fn a_moved_page_with_its_sources_contents_passes() {
        assert!(moved_page_differs(0, 1, &page(1, 0), &page(1, 0)).is_none());
    }

    #[test]
    fn a_moved_page_that_lost_data_names_the_word_and_both_values() {
        let mut now = page(1, 0);
        now[8 * 3..8 * 4].fill(0);
        let m = moved_page_differs(0, 5, &page(1, 0), &now).expect("a mismatch");
        assert_eq!(m.check, "contents of page 5 moved from page 0, word 3");
        assert!(
            m.expected.contains("generation 1 of page 0 word 3"),
            "{}",
            m.expected
        );
        assert_eq!(m.observed, "zero");
    }

    #[test]
    fn verified_keeps_observations_skips_a_decline_and_maps_an_error() {
        let done: Result<Verified, &str> = Ok(Verified::Done(vec!["seen".into()]));
        assert_eq!(verified(done, |_| vec![]), Ok(Ok(vec!["seen".to_string()])));
        let declined: Result<Verified, &str> = Ok(Verified::Declined("no swap".into()));
        assert_eq!(verified(declined, |_| vec![]), Err("no swap".to_string()));
        let failed: Result<Verified, &str> = Err("EIO");
        let got = verified(failed, |e| vec![super::mismatch("call", "success", e)]);
        assert_eq!(got.unwrap().unwrap_err()[0].observed, "EIO");
    }
}
