//! What the kernel reports of our own address space in /proc/self: the VmFlags of the vmas
//! (smaps) and the page-table memory (status).

use std::io;

/// One vma of /proc/self/smaps: its range and its VmFlags mnemonics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmaFlags {
    pub start: usize,
    pub end: usize,
    pub flags: Vec<String>,
}

/// The vmas of /proc/self/smaps that overlap `[start, end)`, in address order.
pub fn vma_flags(start: usize, end: usize) -> io::Result<Vec<VmaFlags>> {
    Ok(parse_smaps(&std::fs::read_to_string("/proc/self/smaps")?)
        .into_iter()
        .filter(|v| v.start < end && start < v.end)
        .collect())
}

/// Every vma of an smaps text with its VmFlags (a vma without the line gets none).
fn parse_smaps(text: &str) -> Vec<VmaFlags> {
    let mut out: Vec<VmaFlags> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("VmFlags:") {
            if let Some(last) = out.last_mut() {
                last.flags = rest.split_whitespace().map(str::to_string).collect();
            }
            continue;
        }
        // A vma header: "start-end perms offset dev inode [path]"; field lines have a colon
        // right after their first word.
        let Some(range) = line.split_whitespace().next() else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        if let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
            out.push(VmaFlags {
                start,
                end,
                flags: vec![],
            });
        }
    }
    out
}

/// The memory our page tables take (VmPTE of /proc/self/status), in KiB.
pub fn page_table_kib() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status_field_kib(&status, "VmPTE").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no VmPTE line in /proc/self/status",
        )
    })
}

fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_vmas_carry_their_flags() {
        let text = "\
7f0000000000-7f0000200000 rw-s 00000000 00:01 12 /memfd:x (deleted)
Size:               2048 kB
VmFlags: rd wr sh mr mw me ms uw
7f0000200000-7f0000400000 rw-p 00000000 00:00 0
Size:               2048 kB
VmFlags: rd wr mr mw me ac
";
        let v = parse_smaps(text);
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].start, v[0].end), (0x7f00_0000_0000, 0x7f00_0020_0000));
        assert!(v[0].flags.iter().any(|f| f == "uw"));
        assert!(!v[1].flags.iter().any(|f| f == "uw"));
    }

    #[test]
    fn status_gives_vmpte_in_kib() {
        let s = "VmLib:\t    2000 kB\nVmPTE:\t      56 kB\nVmSwap:\t       0 kB\n";
        assert_eq!(status_field_kib(s, "VmPTE"), Some(56));
        assert_eq!(status_field_kib(s, "VmPMD"), None);
    }

    #[test]
    fn our_own_smaps_and_status_parse() {
        assert!(page_table_kib().is_ok());
        let probe = 0u8;
        let addr = &probe as *const u8 as usize;
        let v = vma_flags(addr, addr + 1).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].flags.iter().any(|f| f == "rd"), "{v:?}");
    }
}
