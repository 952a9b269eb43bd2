//! The userfaultfd operations of a step: range ioctls (protect, unprotect, wake, register,
//! unregister), installing pages (copy, zeropage, continue, poison), UFFDIO_MOVE, UFFDIO_API,
//! opening a uffd, and closing the trial's own.

use nix::errno::Errno;

use super::state::{Ran, Trial};
use crate::case::model::{ErrnoName, Install, Move, Open, RangeOp, RegisterOp, Via};
use crate::case::pages::Pages;
use crate::kernel::uapi::*;
use crate::kernel::uffd::{OpenVia, Uffd};
use crate::trial::data;
use crate::trial::memops::{self, check_errno, mismatch, pages_of, Checked};
use crate::trial::protocol::Mismatch;

/// Names of the range ioctls in a mask.
fn ioctl_names(mask: u64) -> String {
    let names: Vec<&str> = crate::kernel::uapi::IOCTL_NAMES
        .iter()
        .filter(|(b, _)| mask & (1 << b) != 0)
        .map(|(_, n)| *n)
        .collect();
    names.join("|")
}

/// Checks UFFDIO_REGISTER's reported ioctls against `ioctls` / `no_ioctls`.
fn check_ioctls(
    reported: u64,
    r: &RegisterOp,
    observed: &mut Vec<String>,
) -> Result<(), Vec<Mismatch>> {
    observed.push(format!("UFFDIO_REGISTER ioctls: {}", ioctl_names(reported)));
    let want: u64 = r.ioctls.iter().fold(0, |m, i| m | i.bit());
    let not: u64 = r.no_ioctls.iter().fold(0, |m, i| m | i.bit());
    let mut mismatches = Vec::new();
    if reported & want != want {
        mismatches.push(mismatch(
            "UFFDIO_REGISTER ioctls",
            format!("including {}", ioctl_names(want)),
            ioctl_names(reported),
        ));
    }
    if reported & not != 0 {
        mismatches.push(mismatch(
            "UFFDIO_REGISTER ioctls",
            format!("none of {}", ioctl_names(not)),
            ioctl_names(reported),
        ));
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(mismatches)
    }
}

fn o_name(o: &Open) -> String {
    let via = match o.via {
        Via::Syscall => "userfaultfd(2)",
        Via::DevNode => "/dev/userfaultfd",
    };
    format!(
        "open {via}{}",
        if o.user_mode_only {
            " with UFFD_USER_MODE_ONLY"
        } else {
            ""
        }
    )
}

/// open(2)s a fresh uffd as `o` says and checks the errno.
pub(super) fn open(o: &Open) -> Checked {
    let via = match o.via {
        Via::Syscall => OpenVia::Syscall,
        Via::DevNode => OpenVia::DevNode,
    };
    let r = Uffd::open(via, o.user_mode_only).map(drop);
    check_errno(&o_name(o), o.errno.as_ref().map(ErrnoName::errno), r)
}

impl Trial {
    pub(super) fn range_ioctl(
        &self,
        name: &str,
        pages: &Pages,
        errno: &Option<ErrnoName>,
        shift: Option<usize>,
        ioctl: impl Fn(&Uffd, usize, usize) -> Result<(), Errno>,
    ) -> Checked {
        let pages = pages_of(&self.area, pages);
        let shift = shift.unwrap_or(0);
        let r = memops::over_runs(&self.area, &pages, |s, l| ioctl(&self.uffd, s + shift, l));
        check_errno(name, errno.as_ref().map(ErrnoName::errno), r)
    }

    /// UFFDIO_WRITEPROTECT over the pages, in `mode` unless the step gives its own.
    pub(super) fn writeprotect(&self, name: &str, r: &RangeOp, mode: u64) -> Ran {
        let mode = r.mode.unwrap_or(mode);
        Ran::checked(
            self.range_ioctl(name, &r.pages, &r.errno, r.shift, |u, s, l| {
                u.writeprotect(s, l, mode)
            }),
        )
    }

    /// UFFDIO_REGISTER over the pages, and the ioctls it reports.
    pub(super) fn register(&self, r: &RegisterOp) -> Ran {
        let mode = r
            .mode
            .unwrap_or_else(|| crate::case::model::mode_mask(&r.modes));
        let reported = std::cell::Cell::new(0u64);
        let checked =
            self.range_ioctl("UFFDIO_REGISTER", &r.pages, &r.errno, r.shift, |u, s, l| {
                u.register(s, l, mode).map(|ioctls| reported.set(ioctls))
            });
        Ran::checked(checked.and_then(|mut o| check_ioctls(reported.get(), r, &mut o).map(|_| o)))
    }

    /// UFFDIO_MOVE from one set of pages to another; no data may be lost.
    pub(super) fn move_pages(&self, m: &Move) -> Checked {
        let from = pages_of(&self.area, &m.from);
        let to = pages_of(&self.area, &m.to);
        let mode = if m.allow_src_holes {
            UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
        } else {
            0
        };
        let len = from.len() * self.area.page_size;
        let before = memops::snapshot_present(&self.area, &self.pagemap, &from);
        let r = self
            .uffd
            .move_(
                self.area.page_addr(to[0]),
                self.area.page_addr(from[0]),
                len,
                mode,
            )
            .map(drop);
        let moved = r.is_ok();
        let mut checked = check_errno("UFFDIO_MOVE", m.errno.as_ref().map(ErrnoName::errno), r);
        if moved && checked.is_ok() {
            // No data may be lost: each moved page now holds what its source held.
            checked = memops::compare_moved(&self.area, &before, &from, &to);
        }
        checked
    }

    /// UFFDIO_API again (the trial's uffd) or on a fresh uffd.
    pub(super) fn api(&self, api: &crate::case::model::Api) -> Checked {
        let features = crate::kernel::features::mask(&api.features) | api.raw_features.unwrap_or(0);
        let r = if api.fresh {
            Uffd::open(OpenVia::Syscall, self.user_mode_only)
                .and_then(|u| u.api(features))
                .map(drop)
        } else {
            self.uffd.api(features).map(drop)
        };
        let which = if api.fresh {
            "a fresh uffd"
        } else {
            "the trial's uffd"
        };
        check_errno(
            &format!("UFFDIO_API(0x{features:x}) on {which}"),
            api.errno.as_ref().map(ErrnoName::errno),
            r,
        )
    }

    /// Closes the trial's uffd for good: the handler has stopped, so swapping /dev/null in
    /// with dup2 drops the last reference and the kernel releases the context.
    pub(super) fn close_uffd(&self) -> Checked {
        let null = match std::fs::File::open("/dev/null") {
            Ok(f) => f,
            Err(e) => return Err(vec![mismatch("open /dev/null", "success", e.to_string())]),
        };
        // Replaces our own uffd descriptor; the Uffd still owns (and later closes) it.
        let r = crate::kernel::mm::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), self.uffd.raw());
        check_errno("close(uffd)", None, r)
    }

    /// UFFDIO_COPY / ZEROPAGE / CONTINUE / POISON over the pages.
    pub(super) fn install(&self, name: &str, i: &Install) -> Checked {
        let pages = pages_of(&self.area, &i.pages);
        let dontwake = if i.dontwake { 1 } else { 0 };
        let ps = self.area.page_size;
        let mut src = vec![0u64; 0];
        let r = memops::over_runs(&self.area, &pages, |start, len| {
            let first = (start - self.area.base()) / ps;
            match name {
                "UFFDIO_COPY" => {
                    // The source holds each page's own pattern, so contents can be checked.
                    src.resize(len / 8, 0);
                    for (k, chunk) in src.chunks_mut(ps / 8).enumerate() {
                        // SAFETY: the chunk is a page-sized buffer we own.
                        unsafe {
                            data::write_page(
                                chunk.as_mut_ptr() as usize,
                                ps,
                                first + k,
                                i.data.unwrap_or(1),
                            )
                        };
                    }
                    let mode = dontwake | if i.wp { UFFDIO_COPY_MODE_WP } else { 0 };
                    self.uffd
                        .copy(start, src.as_ptr() as usize, len, mode)
                        .map(drop)
                }
                "UFFDIO_ZEROPAGE" => self.uffd.zeropage(start, len, dontwake).map(drop),
                "UFFDIO_CONTINUE" => {
                    let mode = dontwake | if i.wp { UFFDIO_CONTINUE_MODE_WP } else { 0 };
                    self.uffd.continue_(start, len, mode).map(drop)
                }
                _ => self.uffd.poison(start, len, dontwake).map(drop),
            }
        });
        let mode = if i.wp { "(MODE_WP)" } else { "" };
        check_errno(
            &format!("{name}{mode}"),
            i.errno.as_ref().map(ErrnoName::errno),
            r,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::model::{IoctlName, RegisterMode};

    fn register(ioctls: Vec<IoctlName>, no_ioctls: Vec<IoctlName>) -> RegisterOp {
        RegisterOp {
            pages: Pages::All,
            modes: vec![RegisterMode::Wp],
            ioctls,
            no_ioctls,
            errno: None,
            mode: None,
            shift: None,
        }
    }

    #[test]
    fn ioctl_names_lists_the_bits_set_in_order() {
        let mask = (1 << _UFFDIO_WAKE) | (1 << _UFFDIO_WRITEPROTECT) | (1 << _UFFDIO_COPY);
        assert_eq!(ioctl_names(mask), "WAKE|COPY|WRITEPROTECT");
        assert_eq!(ioctl_names(0), "");
    }

    #[test]
    fn check_ioctls_passes_when_the_wanted_are_there_and_the_unwanted_not() {
        let reported = IoctlName::Wake.bit() | IoctlName::Writeprotect.bit();
        let r = register(vec![IoctlName::Writeprotect], vec![IoctlName::Continue]);
        let mut observed = Vec::new();
        assert!(check_ioctls(reported, &r, &mut observed).is_ok());
        assert_eq!(observed, ["UFFDIO_REGISTER ioctls: WAKE|WRITEPROTECT"]);
    }

    #[test]
    fn check_ioctls_names_a_missing_and_an_unwanted_ioctl() {
        let reported = IoctlName::Wake.bit() | IoctlName::Continue.bit();
        let r = register(vec![IoctlName::Writeprotect], vec![IoctlName::Continue]);
        let m = check_ioctls(reported, &r, &mut Vec::new()).unwrap_err();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].expected, "including WRITEPROTECT");
        assert_eq!(m[1].expected, "none of CONTINUE");
        assert_eq!(m[1].observed, "WAKE|CONTINUE");
    }

    #[test]
    fn o_name_says_how_the_uffd_is_opened() {
        let open = |via, user_mode_only| Open {
            via,
            user_mode_only,
            errno: None,
        };
        assert_eq!(o_name(&open(Via::Syscall, false)), "open userfaultfd(2)");
        assert_eq!(
            o_name(&open(Via::DevNode, true)),
            "open /dev/userfaultfd with UFFD_USER_MODE_ONLY"
        );
    }
}
