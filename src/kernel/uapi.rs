//! Our own copy of the userfaultfd and PAGEMAP_SCAN uapi (include/uapi/linux/userfaultfd.h,
//! include/uapi/linux/fs.h). Kept by hand, not generated, so the suite sees every raw bit
//! regardless of the build host's headers.

// A copy of the kernel's uapi: its constants stay whole, used by the suite or not.
#![allow(dead_code)]

use nix::{ioctl_none, ioctl_read, ioctl_readwrite};

pub const UFFD_API: u64 = 0xAA;

/// Flag for userfaultfd(2) / USERFAULTFD_IOC_NEW: only handle faults from user mode.
pub const UFFD_USER_MODE_ONLY: i32 = 1;

// Message events.
pub const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
pub const UFFD_EVENT_FORK: u8 = 0x13;
pub const UFFD_EVENT_REMAP: u8 = 0x14;
pub const UFFD_EVENT_REMOVE: u8 = 0x15;
pub const UFFD_EVENT_UNMAP: u8 = 0x16;

// Page fault flags.
pub const UFFD_PAGEFAULT_FLAG_WRITE: u64 = 1 << 0;
pub const UFFD_PAGEFAULT_FLAG_WP: u64 = 1 << 1;
pub const UFFD_PAGEFAULT_FLAG_MINOR: u64 = 1 << 2;

// Register modes.
pub const UFFDIO_REGISTER_MODE_MISSING: u64 = 1 << 0;
pub const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
pub const UFFDIO_REGISTER_MODE_MINOR: u64 = 1 << 2;

// ioctl modes.
pub const UFFDIO_COPY_MODE_DONTWAKE: u64 = 1 << 0;
pub const UFFDIO_COPY_MODE_WP: u64 = 1 << 1;
pub const UFFDIO_ZEROPAGE_MODE_DONTWAKE: u64 = 1 << 0;
pub const UFFDIO_MOVE_MODE_DONTWAKE: u64 = 1 << 0;
pub const UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: u64 = 1 << 1;
pub const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;
pub const UFFDIO_WRITEPROTECT_MODE_DONTWAKE: u64 = 1 << 1;
pub const UFFDIO_CONTINUE_MODE_DONTWAKE: u64 = 1 << 0;
pub const UFFDIO_CONTINUE_MODE_WP: u64 = 1 << 1;
pub const UFFDIO_POISON_MODE_DONTWAKE: u64 = 1 << 0;

// ioctl numbers (the `_UFFDIO_*` bit positions reported in `ioctls` masks).
pub const _UFFDIO_REGISTER: u64 = 0x00;
pub const _UFFDIO_UNREGISTER: u64 = 0x01;
pub const _UFFDIO_WAKE: u64 = 0x02;
pub const _UFFDIO_COPY: u64 = 0x03;
pub const _UFFDIO_ZEROPAGE: u64 = 0x04;
pub const _UFFDIO_MOVE: u64 = 0x05;
pub const _UFFDIO_WRITEPROTECT: u64 = 0x06;
pub const _UFFDIO_CONTINUE: u64 = 0x07;
pub const _UFFDIO_POISON: u64 = 0x08;
pub const _UFFDIO_API: u64 = 0x3F;

/// Names of the ioctl bits, for reports.
pub const IOCTL_NAMES: &[(u64, &str)] = &[
    (_UFFDIO_REGISTER, "REGISTER"),
    (_UFFDIO_UNREGISTER, "UNREGISTER"),
    (_UFFDIO_WAKE, "WAKE"),
    (_UFFDIO_COPY, "COPY"),
    (_UFFDIO_ZEROPAGE, "ZEROPAGE"),
    (_UFFDIO_MOVE, "MOVE"),
    (_UFFDIO_WRITEPROTECT, "WRITEPROTECT"),
    (_UFFDIO_CONTINUE, "CONTINUE"),
    (_UFFDIO_POISON, "POISON"),
    (_UFFDIO_API, "API"),
];

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioApi {
    pub api: u64,
    pub features: u64,
    pub ioctls: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioRange {
    pub start: u64,
    pub len: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioRegister {
    pub range: UffdioRange,
    pub mode: u64,
    pub ioctls: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioCopy {
    pub dst: u64,
    pub src: u64,
    pub len: u64,
    pub mode: u64,
    pub copy: i64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioZeropage {
    pub range: UffdioRange,
    pub mode: u64,
    pub zeropage: i64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioMove {
    pub dst: u64,
    pub src: u64,
    pub len: u64,
    pub mode: u64,
    pub moved: i64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioWriteprotect {
    pub range: UffdioRange,
    pub mode: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioContinue {
    pub range: UffdioRange,
    pub mode: u64,
    pub mapped: i64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioPoison {
    pub range: UffdioRange,
    pub mode: u64,
    pub updated: i64,
}

/// `struct uffd_msg` (packed, 32 bytes). The union is kept as three raw words and decoded by
/// [`UffdMsg::decode`], so nothing the kernel sends is lost.
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdMsg {
    pub event: u8,
    pub reserved1: u8,
    pub reserved2: u16,
    pub reserved3: u32,
    pub arg: [u64; 3],
}

const _: () = assert!(std::mem::size_of::<UffdMsg>() == 32);

/// `struct pm_scan_arg` for the PAGEMAP_SCAN ioctl on /proc/PID/pagemap (6.7).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct PmScanArg {
    pub size: u64,
    pub flags: u64,
    pub start: u64,
    pub end: u64,
    pub walk_end: u64,
    pub vec: u64,
    pub vec_len: u64,
    pub max_pages: u64,
    pub category_inverted: u64,
    pub category_mask: u64,
    pub category_anyof_mask: u64,
    pub return_mask: u64,
}

/// `struct page_region`, one result of PAGEMAP_SCAN.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct PageRegion {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}

pub const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
pub const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;

pub const PAGE_IS_WPALLOWED: u64 = 1 << 0;
pub const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub const PAGE_IS_FILE: u64 = 1 << 2;
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;
pub const PAGE_IS_PFNZERO: u64 = 1 << 5;
pub const PAGE_IS_HUGE: u64 = 1 << 6;
pub const PAGE_IS_SOFT_DIRTY: u64 = 1 << 7;
pub const PAGE_IS_GUARD: u64 = 1 << 8;

ioctl_readwrite!(uffdio_api, UFFD_API, _UFFDIO_API, UffdioApi);
ioctl_readwrite!(uffdio_register, UFFD_API, _UFFDIO_REGISTER, UffdioRegister);
ioctl_read!(uffdio_unregister, UFFD_API, _UFFDIO_UNREGISTER, UffdioRange);
ioctl_read!(uffdio_wake, UFFD_API, _UFFDIO_WAKE, UffdioRange);
ioctl_readwrite!(uffdio_copy, UFFD_API, _UFFDIO_COPY, UffdioCopy);
ioctl_readwrite!(uffdio_zeropage, UFFD_API, _UFFDIO_ZEROPAGE, UffdioZeropage);
ioctl_readwrite!(uffdio_move, UFFD_API, _UFFDIO_MOVE, UffdioMove);
ioctl_readwrite!(
    uffdio_writeprotect,
    UFFD_API,
    _UFFDIO_WRITEPROTECT,
    UffdioWriteprotect
);
ioctl_readwrite!(uffdio_continue, UFFD_API, _UFFDIO_CONTINUE, UffdioContinue);
ioctl_readwrite!(uffdio_poison, UFFD_API, _UFFDIO_POISON, UffdioPoison);
ioctl_none!(userfaultfd_ioc_new, UFFD_API, 0x00);
ioctl_readwrite!(pagemap_scan, b'f', 16, PmScanArg);

#[cfg(test)]
mod tests {
    // The request numbers must match the kernel's _IOWR/_IOR encodings bit for bit.
    #[test]
    fn ioctl_request_numbers_match_the_kernel() {
        use nix::{request_code_none, request_code_read, request_code_readwrite};
        assert_eq!(request_code_readwrite!(0xAA, 0x3F, 24), 0xC018_AA3F);
        assert_eq!(request_code_readwrite!(0xAA, 0x00, 32), 0xC020_AA00);
        assert_eq!(request_code_read!(0xAA, 0x01, 16), 0x8010_AA01);
        assert_eq!(request_code_readwrite!(0xAA, 0x06, 24), 0xC018_AA06);
        assert_eq!(request_code_readwrite!(0xAA, 0x03, 40), 0xC028_AA03);
        assert_eq!(request_code_none!(0xAA, 0x00), 0xAA00);
        assert_eq!(request_code_readwrite!(b'f', 16, 96), 0xC060_6610);
    }
}
