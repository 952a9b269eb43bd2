//! Page migration, verified by the pages' frames (PFNs) changing. With two or more NUMA nodes
//! the pages are moved to another node with move_pages(2); with one node, memory compaction is
//! the only migration a process can ask for, and it moves a page only when the page lies below
//! the point where compaction's two scanners meet, so a page it leaves alone skips the trial.

use nix::errno::Errno;

use super::memops::Verified;
use crate::kernel::memory::Area;
use crate::kernel::mm;
use crate::kernel::pagemap::Pagemap;

/// Migrates `pages` of the area; the pages must be present.
pub fn migrate(
    area: &Area,
    pagemap: &Pagemap,
    pages: &[usize],
    whole_thp: bool,
) -> Result<Verified, String> {
    let before = frames(area, pagemap, pages)?;
    if let Some((p, _)) = before.iter().find(|(_, f)| f.is_none()) {
        return Err(format!(
            "page {p} has no frame to migrate (not present, or PFNs hidden: not root)"
        ));
    }
    let nodes = memory_nodes();
    let how = if nodes.len() >= 2 {
        match move_to_other_node(area, pages, &nodes)? {
            Ok(how) => how,
            Err(declined) => return Ok(Verified::Declined(declined)),
        }
    } else if area.memory.is_hugetlb() {
        return Ok(Verified::Declined(
            "one NUMA node, and compaction does not migrate hugetlb pages: migration needs a second node (`uffd-conform vm` boots a two-node guest)".into(),
        ));
    } else {
        std::fs::write("/proc/sys/vm/compact_memory", "1")
            .map_err(|e| format!("/proc/sys/vm/compact_memory: {e}"))?;
        "compaction (one NUMA node)".to_string()
    };
    let after = frames(area, pagemap, pages)?;
    // The reason names no pages or frames, so that skips group in the summary.
    if before.iter().zip(&after).any(|((_, a), (_, b))| a == b) {
        return Ok(Verified::Declined(format!(
            "{how} left the pages where they were: migration needs a second NUMA node (`uffd-conform vm` boots a two-node guest), or pages that compaction happens to move"
        )));
    }
    if whole_thp {
        for (p, frame) in &after {
            let huge = frame.map(crate::kernel::pagemap::frame_is_huge);
            match huge {
                Some(Ok(true)) => {}
                Some(Ok(false)) => {
                    return Ok(Verified::Declined(format!(
                        "{how} split the transparent huge page instead of migrating it whole: no PMD migration entry was made"
                    )))
                }
                _ => return Err(format!("cannot tell whether page {p} is huge (kpageflags)")),
            }
        }
    }
    let observed = before
        .iter()
        .zip(&after)
        .map(|((p, a), (_, b))| {
            format!(
                "page {p} migrated by {how}: PFN 0x{:x} -> 0x{:x}",
                a.unwrap_or(0),
                b.unwrap_or(0)
            )
        })
        .collect();
    Ok(Verified::Done(observed))
}

/// Each page's frame number, None when not present.
fn frames(
    area: &Area,
    pagemap: &Pagemap,
    pages: &[usize],
) -> Result<Vec<(usize, Option<u64>)>, String> {
    pages
        .iter()
        .map(|&p| {
            let entry = pagemap
                .entry(area.page_addr(p))
                .map_err(|e| format!("pagemap of page {p}: {e}"))?;
            Ok((p, entry.pfn()))
        })
        .collect()
}

/// The NUMA nodes that have memory (/sys/devices/system/node/has_memory, e.g. `0-1`).
pub fn memory_nodes() -> Vec<i32> {
    let text = std::fs::read_to_string("/sys/devices/system/node/has_memory")
        .unwrap_or_else(|_| "0".into());
    parse_node_list(text.trim())
}

/// Parses a kernel CPU/node list such as `0-2,4`.
pub fn parse_node_list(text: &str) -> Vec<i32> {
    let mut nodes = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    nodes.extend(a..=b);
                }
            }
            None => nodes.extend(part.parse::<i32>().ok()),
        }
    }
    nodes
}

/// Moves every page to a node other than its own (pages may start on different nodes). The
/// outer error is a failing syscall; the inner one a page the kernel declined to move (busy,
/// no memory on the node).
fn move_to_other_node(
    area: &Area,
    pages: &[usize],
    nodes: &[i32],
) -> Result<Result<String, String>, String> {
    let addrs: Vec<usize> = pages.iter().map(|&p| area.page_addr(p)).collect();
    let current = mm::move_pages(&addrs, None)?;
    let mut targets = Vec::with_capacity(current.len());
    for (i, &from) in current.iter().enumerate() {
        match nodes.iter().find(|&&n| n != from) {
            Some(&to) => targets.push(to),
            None => {
                return Ok(Err(format!(
                    "no node other than {from} has memory for page {}",
                    pages[i]
                )))
            }
        }
    }
    let status = mm::move_pages(&addrs, Some(&targets))?;
    if let Some(i) = (0..status.len()).find(|&i| status[i] != targets[i]) {
        let why = if status[i] < 0 {
            Errno::from_raw(-status[i]).desc().to_string()
        } else {
            format!("still on node {}", status[i])
        };
        return Ok(Err(format!(
            "move_pages(2) did not move page {} to node {}: {why}",
            pages[i], targets[i]
        )));
    }
    let moves: Vec<String> = current
        .iter()
        .zip(&targets)
        .map(|(from, to)| format!("{from}->{to}"))
        .collect();
    Ok(Ok(format!("move_pages(2) (nodes {})", moves.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::parse_node_list;

    #[rstest::rstest]
    #[case("0", vec![0])]
    #[case("0-1", vec![0, 1])]
    #[case("0-2,4", vec![0, 1, 2, 4])]
    #[case("", vec![])]
    fn node_lists(#[case] text: &str, #[case] nodes: Vec<i32>) {
        assert_eq!(parse_node_list(text), nodes);
    }
}
