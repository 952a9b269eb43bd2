//! A memory cgroup of the trial's own, so that a case can make the kernel's own allocations
//! fail: page tables are charged to the process's memory cgroup (__GFP_ACCOUNT), and with the
//! limit reached and no OOM victim allowed, the charge fails with ENOMEM instead of killing.
//! cgroup v2 (a child of the root, `memory.max`, oom_score_adj -1000) or v1 (a child of the
//! process's memory cgroup, `memory.limit_in_bytes`, the OOM killer disabled).

use std::fs;
use std::path::{Path, PathBuf};

/// How full the cgroup was held while a `while_full` closure ran.
pub struct Fullness {
    pub limit: u64,
    /// Bytes the filler took up to the limit.
    pub filled: usize,
    /// Bytes that could be charged right after the closure: 0 when the cgroup stayed full.
    pub room_after: usize,
}

impl std::fmt::Display for Fullness {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "memory cgroup held at {} bytes (read(/dev/zero) charged {} bytes more before failing; room afterwards: {} bytes)",
            self.limit, self.filled, self.room_after
        )
    }
}

/// Size of the filler mapping: far more than the per-CPU stocks can hold.
const FILLER: usize = 64 << 20;

/// Prefix of the cgroups trials make; `sweep` removes any left behind by a killed trial.
const PREFIX: &str = "uffd-conform-trial-";

pub struct Memcg {
    dir: PathBuf,
    /// The cgroup.procs the process came from, to go back to before removing `dir`.
    home: PathBuf,
    limit_file: &'static str,
    usage_file: &'static str,
    unlimited: &'static str,
    /// The mapping that fills the cgroup to its limit: address and length.
    filler: Option<(usize, usize)>,
    /// Charge stocks are per CPU, and another CPU's is drained only by a work item some time
    /// later. The thread stays on one CPU from before it enters the cgroup, so every charge
    /// to the cgroup is made there and the drain that makes it full is synchronous.
    _pinned: PinnedToThisCpu,
    /// The limit file, opened before the cgroup is full: opening a file allocates memory
    /// charged to the cgroup, which a full cgroup cannot give.
    limit_fd: Option<fs::File>,
}

impl Memcg {
    /// Moves this process into a fresh memory cgroup. `Err` says why the machine cannot.
    pub fn enter() -> Result<Memcg, String> {
        let pinned = PinnedToThisCpu::new();
        let cgroups = fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let name = format!("{PREFIX}{}", std::process::id());
        let (parent, home, (limit_file, usage_file), unlimited) = if let Some(v2) = v2_root() {
            let path = cgroups
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or("no cgroup v2 path in /proc/self/cgroup")?;
            let home = v2.join(path.trim_start_matches('/'));
            (v2, home, ("memory.max", "memory.current"), "max")
        } else if let Some(v1) = v1_memory_mount() {
            let path = v1_own_path(&cgroups).ok_or("no memory cgroup in /proc/self/cgroup")?;
            let here = v1.join(path.trim_start_matches('/'));
            (
                here.clone(),
                here,
                ("memory.limit_in_bytes", "memory.usage_in_bytes"),
                "-1",
            )
        } else {
            return Err("no memory cgroup controller (cgroup v2 with memory, or v1 memory)".into());
        };
        let dir = parent.join(name);
        fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let memcg = Memcg {
            dir,
            home: home.join("cgroup.procs"),
            limit_file,
            usage_file,
            unlimited,
            filler: None,
            _pinned: pinned,
            limit_fd: None,
        };
        // Reclaim must not make room by swapping the filler out.
        let _ = memcg.write("memory.swap.max", "0");
        let _ = memcg.write("memory.swappiness", "0");
        let mut memcg = memcg;
        let opened = fs::OpenOptions::new()
            .write(true)
            .open(memcg.dir.join(limit_file))
            .map_err(|e| format!("open {limit_file}: {e}"));
        match opened
            .and_then(|f| {
                memcg.limit_fd = Some(f);
                memcg.forbid_oom_kill()
            })
            .and_then(|()| memcg.write("cgroup.procs", "0"))
        {
            Ok(()) => Ok(memcg),
            Err(e) => {
                let _ = fs::remove_dir(&memcg.dir);
                Err(e)
            }
        }
    }

    /// With no OOM victim in the cgroup, a charge beyond the limit fails instead. This process
    /// may not be chosen (oom_score_adj -1000, needs CAP_SYS_RESOURCE), or, on cgroup v1, the
    /// cgroup's OOM killer is off.
    fn forbid_oom_kill(&self) -> Result<(), String> {
        let adj = fs::write("/proc/self/oom_score_adj", "-1000");
        match adj {
            Ok(()) => Ok(()),
            Err(_) if self.limit_file == "memory.limit_in_bytes" => {
                self.write("memory.oom_control", "1")
            }
            Err(e) => Err(format!(
                "oom_score_adj -1000: {e} (needs CAP_SYS_RESOURCE; the OOM killer would kill the trial)"
            )),
        }
    }

    /// Runs `f` while the cgroup is full: its limit at its usage, the per-CPU charge stocks
    /// drained and the little room left taken by a filler. Lifts the limit afterwards. Says
    /// how full it was.
    pub fn while_full<R>(&mut self, f: impl FnOnce() -> R) -> Result<(R, Fullness), String> {
        // The limit at the usage, then a limit of 0 that the kernel refuses (EBUSY) after
        // draining the per-CPU stocks: pages charged ahead, which later allocations would
        // consume without meeting the limit.
        // Everything the filling needs is allocated first: a full cgroup could not.
        let zero = self.prepare_filler()?;
        let limit = self.limit_at_usage()?;
        let _ = self.set_limit("0");
        // Other CPUs drain in a work item: this thread charges only on its own CPU, but the
        // fault handler thread may have charged on another one.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let full = self
            .set_limit(&limit.to_string())
            .and_then(|()| self.fill_to_limit(&zero));
        let result = full.as_ref().ok().map(|_| f());
        // Room that appeared while `f` ran (a late uncharge, a reclaim) means `f` may not
        // have met the limit at all: the caller cannot conclude from a success.
        let room_after = match &full {
            Ok(filled) => self.probe_room(&zero, *filled),
            Err(_) => 0,
        };
        self.release_filler();
        self.set_limit(self.unlimited)?;
        let filled = full?;
        Ok((
            result.expect("ran when full"),
            Fullness {
                limit,
                filled,
                room_after,
            },
        ))
    }

    /// Whether a page more can be charged now: a kernel-mode read into the filler past what
    /// the fill reached. Returns the bytes it could charge (0: still full).
    fn probe_room(&self, zero: &fs::File, filled: usize) -> usize {
        let Some((addr, len)) = self.filler else {
            return 0;
        };
        let page = crate::kernel::pagemap::base_page_size();
        if filled + page > len {
            return 0;
        }
        // SAFETY: reads into our own filler mapping, past the filled part.
        let n = unsafe {
            libc::read(
                std::os::fd::AsRawFd::as_raw_fd(zero),
                (addr + filled) as *mut libc::c_void,
                page,
            )
        };
        n.max(0) as usize
    }

    fn limit_at_usage(&self) -> Result<u64, String> {
        // v1 refuses a limit below the usage (EBUSY), which may grow meanwhile.
        let mut last = String::new();
        for _ in 0..20 {
            let usage: u64 = fs::read_to_string(self.dir.join(self.usage_file))
                .map_err(|e| e.to_string())?
                .trim()
                .parse()
                .map_err(|e| format!("{}: {e}", self.usage_file))?;
            match self.set_limit(&usage.to_string()) {
                Ok(()) => return Ok(usage),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Maps the filler and opens /dev/zero.
    fn prepare_filler(&mut self) -> Result<fs::File, String> {
        // SAFETY: a fresh private anonymous mapping, ours alone.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FILLER,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(format!(
                "mmap of the filler: {}",
                std::io::Error::last_os_error()
            ));
        }
        self.filler = Some((addr as usize, FILLER));
        fs::File::open("/dev/zero").map_err(|e| format!("/dev/zero: {e}"))
    }

    /// read(2) from /dev/zero into the filler until a charge fails: a kernel-mode fault
    /// whose charge fails ends the read (a user-mode one would wait for memory). Returns the
    /// bytes charged.
    fn fill_to_limit(&self, zero: &fs::File) -> Result<usize, String> {
        let (addr, len) = self.filler.expect("prepared");
        let mut filled = 0usize;
        while filled < len {
            // SAFETY: reads into our own filler mapping.
            let n = unsafe {
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(zero),
                    (addr + filled) as *mut libc::c_void,
                    len - filled,
                )
            };
            if n <= 0 {
                return Ok(filled);
            }
            filled += n as usize;
        }
        Err(format!(
            "the limit did not bind: {len} bytes were charged beyond it"
        ))
    }

    fn release_filler(&mut self) {
        if let Some((addr, len)) = self.filler.take() {
            // SAFETY: our own filler mapping (parts may be unmapped already).
            unsafe { libc::munmap(addr as *mut libc::c_void, len) };
        }
    }

    /// Back to the cgroup the process came from; the trial's cgroup is removed.
    pub fn leave(mut self) {
        self.release_filler();
        let _ = self.set_limit(self.unlimited);
        // "0" moves the writing process, every thread of it.
        let _ = fs::write(&self.home, "0");
        let _ = fs::remove_dir(&self.dir);
    }

    /// Sets the limit through the file opened in advance.
    fn set_limit(&self, value: &str) -> Result<(), String> {
        let fd = self.limit_fd.as_ref().expect("opened when entered");
        std::os::unix::fs::FileExt::write_at(fd, value.as_bytes(), 0)
            .map(drop)
            .map_err(|e| format!("write {value} to {}: {e}", self.limit_file))
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        let path = self.dir.join(file);
        fs::write(&path, value).map_err(|e| format!("write {value} to {}: {e}", path.display()))
    }
}

/// Keeps the calling thread on the CPU it runs on until dropped.
struct PinnedToThisCpu {
    previous: Option<libc::cpu_set_t>,
}

impl PinnedToThisCpu {
    fn new() -> PinnedToThisCpu {
        // SAFETY: plain syscalls on this thread with a zeroed, then filled, cpu_set_t.
        unsafe {
            let mut previous: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            if libc::sched_getaffinity(0, size, &mut previous) != 0 {
                return PinnedToThisCpu { previous: None };
            }
            let cpu = libc::sched_getcpu();
            if cpu < 0 {
                return PinnedToThisCpu { previous: None };
            }
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut one);
            libc::sched_setaffinity(0, size, &one);
            PinnedToThisCpu {
                previous: Some(previous),
            }
        }
    }
}

impl Drop for PinnedToThisCpu {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            // SAFETY: restores the mask read in `new`.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), previous) };
        }
    }
}

/// The cgroup v2 mount, when the memory controller is available to its children.
fn v2_root() -> Option<PathBuf> {
    mounts("cgroup2").into_iter().find(|m| {
        fs::read_to_string(m.join("cgroup.subtree_control"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
    })
}

/// This process's cgroup v1 memory path, from the text of /proc/self/cgroup.
fn v1_own_path(cgroups: &str) -> Option<&str> {
    cgroups
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p))
}

/// The cgroup v1 memory controller's mount.
fn v1_memory_mount() -> Option<PathBuf> {
    mounts("cgroup")
        .into_iter()
        .find(|m| m.join("memory.limit_in_bytes").exists())
}

/// Mount points of file systems of `kind` (/proc/self/mounts).
fn mounts(kind: &str) -> Vec<PathBuf> {
    fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, at, fs_type) = (f.next()?, f.next()?, f.next()?);
            (fs_type == kind).then(|| PathBuf::from(at))
        })
        .collect()
}

/// Removes the (empty) cgroups of trials that were killed before they could.
pub fn sweep() {
    let mut parents: Vec<PathBuf> = v2_root().into_iter().collect();
    if let (Some(v1), Ok(cgroups)) = (v1_memory_mount(), fs::read_to_string("/proc/self/cgroup")) {
        if let Some(path) = v1_own_path(&cgroups) {
            parents.push(v1.join(path.trim_start_matches('/')));
        }
    }
    for parent in parents {
        remove_trial_dirs(&parent);
    }
}

fn remove_trial_dirs(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(PREFIX) {
            let _ = fs::remove_dir(e.path());
        }
    }
}
