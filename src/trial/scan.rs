//! The `scan` step: PAGEMAP_SCAN over pages, regions compared in pages, and every returned
//! category cross-checked with the pagemap entry read just before the scan.

use super::memops::{check_errno, checked, mismatch, pages_of, Checked};
use crate::case::model::{category_mask, Category, ErrnoName, Scan, ScanFlag};
use crate::kernel::memory::Area;
use crate::kernel::pagemap::{Entry, Pagemap};
use crate::kernel::uapi::*;

/// Categories every PAGEMAP_SCAN kernel (6.7) knows (the first seven; SOFT_DIRTY and GUARD
/// came later): the default return mask.
const BASE_CATEGORIES: &[Category] = Category::ALL.split_at(7).0;

fn names(bits: u64) -> String {
    let n: Vec<String> = Category::ALL
        .iter()
        .filter(|c| bits & c.bit() != 0)
        .map(|c| {
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    if n.is_empty() {
        "none".into()
    } else {
        n.join("|")
    }
}

pub fn run(area: &Area, pagemap: &Pagemap, s: &Scan) -> Checked {
    let pages = pages_of(area, &s.pages);
    let (first, last) = (
        *pages.iter().min().unwrap_or(&0),
        *pages.iter().max().unwrap_or(&0),
    );
    let before: Vec<Entry> = (first..=last)
        .map(|p| pagemap.entry(area.page_addr(p)).unwrap_or(Entry(0)))
        .collect();
    let returns = s
        .returns
        .clone()
        .unwrap_or_else(|| [s.categories.clone(), s.anyof.clone()].concat())
        .into_iter()
        .collect::<Vec<_>>();
    let return_mask = if returns.is_empty() {
        category_mask(BASE_CATEGORIES)
    } else {
        category_mask(&returns)
    };
    let flags = s.flags.iter().fold(0, |m, f| {
        m | match f {
            ScanFlag::WpMatching => PM_SCAN_WP_MATCHING,
            ScanFlag::CheckWpasync => PM_SCAN_CHECK_WPASYNC,
        }
    });
    let arg = PmScanArg {
        flags,
        start: area.page_addr(first) as u64,
        end: (area.page_addr(last) + area.page_size) as u64,
        max_pages: s.max_pages.unwrap_or(0),
        category_inverted: category_mask(&s.inverted),
        category_mask: category_mask(&s.categories),
        category_anyof_mask: category_mask(&s.anyof),
        return_mask,
        ..Default::default()
    };
    let result = pagemap.scan(arg, s.vec_len.unwrap_or(64) as usize);
    let want_errno = s.errno.as_ref().map(ErrnoName::errno);
    let (regions, walk_end) = match (result, want_errno) {
        (Ok(r), None) => r,
        (r, _) => return check_errno("PAGEMAP_SCAN", want_errno, r.map(drop)),
    };
    let to_page = |addr: u64| (addr as usize - area.base()).div_ceil(area.page_size);
    let observed_regions: Vec<String> = regions
        .iter()
        .map(|r| {
            format!(
                "{}..{} {}",
                to_page(r.start),
                to_page(r.end),
                names(r.categories)
            )
        })
        .collect();
    let observed_text = format!("[{}]", observed_regions.join(", "));
    let mut mismatches = Vec::new();
    if let Some(expect) = &s.expect {
        let expected: Vec<String> = expect
            .iter()
            .map(|r| {
                let p = r.pages.resolve(area.pages).expect("validated when loaded");
                let (a, b) = (
                    p.iter().min().copied().unwrap_or(0),
                    p.iter().max().copied().unwrap_or(0) + 1,
                );
                format!("{a}..{b} {}", names(category_mask(&r.categories)))
            })
            .collect();
        if expected != observed_regions {
            mismatches.push(mismatch(
                "PAGEMAP_SCAN regions",
                format!("[{}]", expected.join(", ")),
                observed_text.clone(),
            ));
        }
    }
    // Cross-check what pagemap said about the same pages just before.
    for r in &regions {
        for page in to_page(r.start)..to_page(r.end) {
            let Some(entry) = page.checked_sub(first).and_then(|i| before.get(i)) else {
                continue;
            };
            let pairs = [
                (Category::Present, entry.present()),
                (Category::Swapped, entry.swapped()),
                (Category::File, entry.present() && entry.file()),
                (Category::Written, !entry.uffd_wp()),
            ];
            // hugetlb: PAGEMAP_SCAN counts every non-present, non-none huge pte as SWAPPED,
            // uffd-wp markers included (pagemap_hugetlb_category), where pagemap shows a
            // marker only by bit 57. By design, not a divergence to report.
            let hugetlb_marker = area.memory.is_hugetlb() && !entry.present() && entry.uffd_wp();
            for (cat, from_pagemap) in pairs {
                let checkable = return_mask & cat.bit() != 0
                    && (cat != Category::Written || entry.present())
                    && !(cat == Category::Swapped && hugetlb_marker);
                let from_scan = r.categories & cat.bit() != 0;
                if checkable && from_scan != from_pagemap {
                    mismatches.push(mismatch(
                        format!(
                            "PAGEMAP_SCAN {} of page {page} against pagemap",
                            names(cat.bit())
                        ),
                        format!("{} (pagemap: {})", u8::from(from_pagemap), entry.describe()),
                        u8::from(from_scan).to_string(),
                    ));
                }
            }
        }
    }
    let observed = vec![format!(
        "PAGEMAP_SCAN: {observed_text} walk_end page {}",
        to_page(walk_end)
    )];
    checked(observed, mismatches)
}
