//! The memory operations of a step in the trial process: accesses (from this thread, a new
//! thread or the alias mapping), kernel-mode writes, hole punching, /proc/self/mem, filling
//! through the alias, madvise, munmap, mremap, and pins.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::state::{gettid, Ran, StepOutcome, Trial};
use crate::case::model::{
    Access, Advice, ErrnoName, Join, KernelWrite, Madvise, Mremap, Munmap, PageTables, PinPages,
    Poke, ProcMemWrite, PunchHole, Resolve,
};
use crate::case::pages::Pages;
use crate::kernel::pin::Pin;
use crate::trial::data;
use crate::trial::expect::Context;
use crate::trial::memops::{self, check_errno, mismatch, pages_of, Checked};

impl Trial {
    /// `write` / `read`: from this thread, a new one (`thread`), or the alias (`alias`).
    pub(super) fn access(
        &mut self,
        a: &Access,
        write: bool,
        mark: (usize, usize),
        ctx: &Context,
    ) -> Ran {
        if a.thread {
            return Ran::Final(self.thread_access(a, write, mark));
        }
        if a.alias {
            let checked = match self.area.alias() {
                Ok(base) => memops::access_at(&self.area, a, write, base),
                Err(e) => Err(vec![mismatch("mmap of the alias", "success", e.desc())]),
            };
            return Ran::checked(checked);
        }
        let pages = pages_of(&self.area, &a.pages);
        Ran::Checked(
            memops::access(&self.area, a, write),
            ctx.access(&a.faults, &pages, write, 0),
        )
    }

    pub(super) fn poke(&self, p: &Poke, ctx: &Context) -> Ran {
        memops::poke(&self.area, p.page, p.offset, p.value);
        Ran::Checked(Ok(vec![]), ctx.access(&p.faults, &[p.page], true, p.offset))
    }

    /// Waits for the threads earlier steps started.
    pub(super) fn join(&mut self, j: &Join, ctx: &Context) -> Ran {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        Ran::Checked(Ok(vec![]), ctx.access(&j.faults, &[], true, 0))
    }

    /// An access from a new thread: waits until it finished, or, when faults are left
    /// pending (`resolve: never`), until it raised a message and so blocks.
    pub(super) fn thread_access(
        &mut self,
        a: &Access,
        write: bool,
        mark: (usize, usize),
    ) -> StepOutcome {
        let pages = pages_of(&self.area, &a.pages);
        let addrs: Vec<(usize, usize)> =
            pages.iter().map(|&p| (p, self.area.page_addr(p))).collect();
        let (page_size, gen) = (self.area.page_size, a.data.unwrap_or(1));
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let _ = tid_tx.send(gettid());
            for (p, addr) in addrs {
                // SAFETY: the page is in the trial's mapping; faults go to the handler.
                unsafe {
                    if write {
                        data::write_page(addr, page_size, p, gen);
                    } else {
                        data::touch_read(addr);
                    }
                }
            }
        });
        let tid = tid_rx.recv().unwrap_or(0);
        let pending = self.resolve == Resolve::Never;
        let deadline = Instant::now() + Duration::from_millis(a.within_ms.unwrap_or(5000));
        while !thread.is_finished()
            && (!pending || self.handler.mark().0 == mark.0)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        let expected = self.context(tid).access(&a.faults, &pages, write, 0);
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            self.threads.push(thread);
        }
        self.finish(mark, Ok(vec![format!("thread {tid}")]), &expected)
    }

    pub(super) fn kernel_write(&self, k: &KernelWrite, ctx: &Context) -> Ran {
        let pages = pages_of(&self.area, &k.pages);
        let r = memops::kernel_write(&self.area, &pages);
        Ran::Checked(
            check_errno(
                "read(/dev/zero) into the pages",
                k.errno.as_ref().map(ErrnoName::errno),
                r,
            ),
            ctx.access(&k.faults, &pages, true, 0),
        )
    }

    pub(super) fn punch_hole(&self, p: &PunchHole, ctx: &Context) -> Ran {
        let pages = pages_of(&self.area, &p.pages);
        let r = self.punch_hole_pages(&pages);
        let runs = self.runs_payload(&pages);
        Ran::Checked(
            check_errno(
                "fallocate(PUNCH_HOLE)",
                p.errno.as_ref().map(ErrnoName::errno),
                r,
            ),
            ctx.events(&p.events, &|_| runs),
        )
    }

    fn punch_hole_pages(&self, pages: &[usize]) -> Result<(), Errno> {
        let Some(fd) = self.area.memfd_raw() else {
            return Err(Errno::EBADF);
        };
        let ps = self.area.page_size;
        for (first, count) in Pages::runs(pages) {
            crate::kernel::mm::punch_hole(fd, first * ps, count * ps)?;
        }
        Ok(())
    }

    /// The `page_tables` step: records VmPTE, or checks its growth since the last mark.
    pub(super) fn page_tables(&mut self, t: &PageTables) -> Checked {
        let now = crate::kernel::procfs::page_table_kib().map_err(|e| {
            vec![mismatch(
                "VmPTE of /proc/self/status",
                "a size",
                e.to_string(),
            )]
        })?;
        if t.mark {
            self.page_tables_mark = Some(now);
            return Ok(vec![format!("VmPTE {now} kB marked")]);
        }
        let mark = self
            .page_tables_mark
            .expect("the loader requires a mark first");
        let grown = now.saturating_sub(mark);
        let observed = vec![format!("VmPTE {mark} kB -> {now} kB (grew {grown} kB)")];
        let mut mismatches = Vec::new();
        if let Some(max) = t.grown_at_most_kb.filter(|&max| grown > max) {
            mismatches.push(mismatch(
                "page-table memory (VmPTE) since the mark",
                format!("grown by at most {max} kB"),
                format!("grown by {grown} kB ({mark} -> {now} kB)"),
            ));
        }
        if let Some(min) = t.grown_at_least_kb.filter(|&min| grown < min) {
            mismatches.push(mismatch(
                "page-table memory (VmPTE) since the mark",
                format!("grown by at least {min} kB"),
                format!("grown by {grown} kB ({mark} -> {now} kB)"),
            ));
        }
        memops::checked(observed, mismatches)
    }

    pub(super) fn proc_mem_write(&self, p: &ProcMemWrite) -> Checked {
        let r = memops::proc_mem_write(self.area.page_addr(p.page) + p.offset, p.value);
        check_errno(
            "pwrite(/proc/self/mem)",
            p.errno.as_ref().map(ErrnoName::errno),
            r,
        )
    }

    /// Writes pages through the unregistered alias mapping of the file.
    pub(super) fn fill(&mut self, pages: &[usize], gen: u8) -> Checked {
        let alias = match self.area.alias() {
            Ok(a) => a,
            Err(e) => return Err(vec![mismatch("mmap of the alias", "success", e.desc())]),
        };
        for &p in pages {
            // SAFETY: the alias maps the same file, read-write, and is not registered.
            unsafe {
                data::write_page(alias + p * self.area.page_size, self.area.page_size, p, gen)
            };
        }
        Ok(vec![])
    }

    pub(super) fn madvise(&self, m: &Madvise, ctx: &Context) -> Ran {
        let pages = pages_of(&self.area, &m.pages);
        let r = memops::madvise(&self.area, &pages, m.advice);
        if m.advice == Advice::Hwpoison && r == Err(Errno::EINVAL) && m.errno.is_none() {
            // madvise() knows MADV_HWPOISON only with CONFIG_MEMORY_FAILURE.
            return Ran::Final(StepOutcome::Skip(
                "MADV_HWPOISON is EINVAL: the kernel has no memory-failure injection (CONFIG_MEMORY_FAILURE)".into(),
            ));
        }
        let call = format!("madvise({:?})", m.advice);
        let runs = self.runs_payload(&pages);
        let checked = if m.may_fail {
            Ok(vec![format!(
                "{call}: {}",
                r.map_or_else(|e| format!("{e:?}"), |_| "success".into())
            )])
        } else {
            check_errno(&call, m.errno.as_ref().map(ErrnoName::errno), r)
        };
        Ran::Checked(checked, ctx.events(&m.events, &|_| runs))
    }

    pub(super) fn munmap(&self, m: &Munmap, ctx: &Context) -> Ran {
        let pages = pages_of(&self.area, &m.pages);
        let runs = self.runs_payload(&pages);
        Ran::Checked(
            check_errno(
                "munmap",
                None,
                memops::munmap(&self.area, &pages, m.then_map_anon),
            ),
            ctx.events(&m.events, &|_| runs),
        )
    }

    /// Moves the whole area to fresh addresses; the handler follows it.
    pub(super) fn mremap(&mut self, m: &Mremap, ctx: &Context) -> Ran {
        match self.area.move_to_fresh() {
            Ok((old, new)) => {
                self.base.store(new, Ordering::SeqCst);
                let len = self.area.len() as u64;
                let payload = [old as u64, new as u64, len];
                let observed = vec![format!("moved 0x{old:x} -> 0x{new:x}")];
                Ran::Checked(Ok(observed), ctx.events(&m.events, &|_| Some(payload)))
            }
            Err(e) => Ran::checked(Err(vec![mismatch("mremap", "success", e.desc())])),
        }
    }

    /// Pins the pages (io_uring fixed buffers) until an `unpin` step.
    pub(super) fn pin(&mut self, p: &PinPages) -> Ran {
        let pages = pages_of(&self.area, &p.pages);
        let ranges: Vec<(usize, usize)> = Pages::runs(&pages)
            .into_iter()
            .map(|(first, n)| (self.area.page_addr(first), n * self.area.page_size))
            .collect();
        match Pin::new(&ranges) {
            Ok(pin) => {
                self.pins.push(pin);
                Ran::checked(Ok(vec![format!("pinned {} range(s)", ranges.len())]))
            }
            Err(e @ (Errno::ENOSYS | Errno::EPERM | Errno::ENOMEM)) => Ran::Final(StepOutcome::Skip(format!(
                "cannot pin through io_uring: {e:?} ({}); io_uring disabled (kernel.io_uring_disabled) or RLIMIT_MEMLOCK too low",
                e.desc()
            ))),
            Err(e) => Ran::checked(Err(vec![mismatch("io_uring_register(BUFFERS)", "success", e.desc())])),
        }
    }
}
