//! The guest side: the suite binary is the initramfs's `/init`. As PID 1 it mounts the
//! pseudo-filesystems, loads the modules the host packed, runs the suite (a child process of
//! the same binary, KTAP on the serial console), prints its exit code and powers off. It
//! never returns: PID 1 exiting would panic the kernel, which the host would report as a
//! kernel panic instead of what really happened.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// Where the host puts the guest's configuration in the initramfs.
pub const CONFIG_PATH: &str = "/uffd-conform/config.json";
/// Where the cases go.
pub const CASES_DIR: &str = "/cases";
/// The line that carries the suite's exit code: `uffd-conform-guest: exit N`.
pub const EXIT_MARKER: &str = "uffd-conform-guest: exit ";
/// The serial port the suite's output goes to (the host reads it apart from the console).
const SUITE_TTY: &str = "/dev/ttyS1";
/// Prefix of the init's own log lines (unknown lines to a KTAP parser).
const LOG: &str = "uffd-conform-guest:";
/// The init's first line: the kernel has booted (the host times the phases by it).
pub const INIT_MARKER: &str = "uffd-conform-guest: init";
/// The booted kernel's `uname -r` and `uname -v`, after this prefix (the kernel's own banner is
/// below the console's log level).
pub const KERNEL_MARKER: &str = "uffd-conform-guest: kernel ";

/// finit_module(2) flag: the file is compressed and the kernel decompresses it.
const MODULE_INIT_COMPRESSED_FILE: libc::c_uint = 4;

/// What the host tells the guest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestConfig {
    /// `run -f` filters.
    pub filters: Vec<String>,
    /// `run -j`.
    pub jobs: Option<usize>,
    /// Modules to load, in order.
    pub modules: Vec<GuestModule>,
    /// Run `bench --rounds N` instead of the suite (`vm --bench`).
    #[serde(default)]
    pub bench_rounds: Option<usize>,
    /// The host's per-trial timeout cap (`UFFD_CONFORM_TRIAL_TIMEOUT_MS`) and failure cap
    /// (`UFFD_CONFORM_MAX_FAILURES`), passed on (`ci/mutate`).
    #[serde(default)]
    pub trial_timeout_ms: Option<u64>,
    /// Stop after this many failures, when set.
    #[serde(default)]
    pub max_failures: Option<u64>,
    /// The host run's stress seed and time scale (`--seed`, `--stress-time`).
    #[serde(default)]
    pub stress_seed: Option<u64>,
    /// `--stress-time`, as given.
    #[serde(default)]
    pub stress_time: Option<String>,
}

/// A kernel module the guest loads before the suite.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestModule {
    /// The module's name.
    pub name: String,
    /// Path inside the initramfs.
    pub path: String,
    /// Whether the module file is compressed.
    pub compressed: bool,
}

impl GuestConfig {
    /// The arguments for the suite process: `run` with KTAP, or `bench`.
    pub fn run_args(&self) -> Vec<String> {
        let mut args: Vec<String> = match self.bench_rounds {
            None => vec!["run".into(), "--format".into(), "ktap".into()],
            Some(n) => vec!["bench".into(), "--rounds".into(), n.to_string()],
        };
        args.push(CASES_DIR.into());
        for f in &self.filters {
            args.extend(["-f".into(), f.clone()]);
        }
        if let Some(j) = self.jobs {
            args.extend(["-j".into(), j.to_string()]);
        }
        args
    }
}

/// True when this process is the kernel's first process (the initramfs's /init).
pub fn is_init() -> bool {
    std::process::id() == 1
}

/// Runs the guest and powers the machine off. Never returns.
pub fn run_as_init() -> ! {
    eprintln!("{INIT_MARKER}");
    if let Ok(u) = nix::sys::utsname::uname() {
        eprintln!(
            "{KERNEL_MARKER}{} {}",
            u.release().to_string_lossy(),
            u.version().to_string_lossy()
        );
    }
    let code = match setup_and_run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{LOG} {e}");
            2
        }
    };
    println!("{EXIT_MARKER}{code}");
    // SAFETY: sync(2) and reboot(2) have no memory-safety preconditions; as PID 1 we may
    // power off, and must, or the host waits for its timeout.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    loop {
        std::thread::park();
    }
}

fn setup_and_run() -> Result<i32, String> {
    for (source, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
    ] {
        mount(source, target, fstype)?;
    }
    // Memory cgroups for `memcg_full` steps; a kernel without cgroup v2 just skips them.
    if mount("cgroup2", "/sys/fs/cgroup", "cgroup2").is_ok() {
        let _ = std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
        // One memory cgroup for the guest's lifetime, made now while nothing else runs, so that
        // the trials' cgroups flip no memcg static key: the first memory cgroup turns the kmem
        // key on, and the socket-accounting key is counted per memory cgroup (on with the first,
        // off with the last). Flipping a key live-patches kernel text (int3, then the new
        // bytes); in one of seven full runs under TCG, a trial hit such an int3 while a
        // `memcg_full` trial made its cgroup, and the kernel oopsed (`Oops: int3` in
        // kmem_cache_alloc_lru).
        let _ = std::fs::create_dir("/sys/fs/cgroup/uffd-conform-guest");
    }
    let text = std::fs::read_to_string(CONFIG_PATH).map_err(|e| format!("{CONFIG_PATH}: {e}"))?;
    let config: GuestConfig =
        serde_json::from_str(&text).map_err(|e| format!("{CONFIG_PATH}: {e}"))?;
    for m in &config.modules {
        match load_module(m) {
            Ok(()) => eprintln!("{LOG} loaded module {}", m.name),
            Err(e) => eprintln!("{LOG} module {}: {e}", m.name),
        }
    }
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut suite = Command::new(exe);
    // The guest is thrown away after the run: trials may damage its memory (MADV_HWPOISON).
    suite.env(crate::run::DISPOSABLE_ENV, "1");
    if let Some(ms) = config.trial_timeout_ms {
        suite.env(crate::run::STALL_ENV, ms.to_string());
    }
    if let Some(n) = config.max_failures {
        suite.env(crate::run::MAX_FAILURES_ENV, n.to_string());
    }
    if let Some(seed) = config.stress_seed {
        suite.env(crate::run::SEED_ENV, seed.to_string());
    }
    if let Some(t) = &config.stress_time {
        suite.env(crate::run::STRESS_TIME_ENV, t);
    }
    // The suite's stdout (KTAP) goes to the second serial port, which the kernel never writes
    // to: on the console a kernel message (a WARNING, an MCE kill) printed while a trial
    // reports lands inside its result line, and the host loses the verdict. Without a second
    // port (a kernel with one UART) the console carries both, as before.
    // O_NOCTTY: PID 1 must not take the port as its controlling terminal.
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(SUITE_TTY)
    {
        Ok(tty) => {
            suite.stdout(tty);
        }
        Err(e) => eprintln!("{LOG} {SUITE_TTY}: {e}; the suite reports on the console"),
    }
    let status = suite
        .args(config.run_args())
        .current_dir("/")
        .env("PATH", "/")
        .status()
        .map_err(|e| format!("cannot start the suite: {e}"))?;
    Ok(status.code().unwrap_or(2))
}

fn mount(source: &str, target: &str, fstype: &str) -> Result<(), String> {
    let _ = std::fs::create_dir_all(target);
    let c = |s: &str| CString::new(s).expect("no NUL in a constant");
    let (src, tgt, fs) = (c(source), c(target), c(fstype));
    // SAFETY: valid C strings; no data argument.
    let ret = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if ret != 0 {
        let err = std::io::Error::last_os_error();
        // Already mounted (the kernel may mount devtmpfs itself) is fine.
        if err.raw_os_error() != Some(libc::EBUSY) {
            return Err(format!("mount {fstype} on {target}: {err}"));
        }
    }
    Ok(())
}

fn load_module(m: &GuestModule) -> Result<(), String> {
    let file = std::fs::File::open(&m.path).map_err(|e| format!("{}: {e}", m.path))?;
    let flags = if m.compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    let params = CString::default();
    // SAFETY: an open fd, an empty parameter string, and flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            flags,
        )
    };
    if ret != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EEXIST) {
            return Ok(());
        }
        return Err(format!("finit_module: {err}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_args_carry_filters_and_jobs() {
        let c = GuestConfig {
            filters: vec!["wp::".into()],
            jobs: Some(2),
            modules: vec![],
            bench_rounds: None,
            trial_timeout_ms: None,
            max_failures: None,
            stress_seed: None,
            stress_time: None,
        };
        assert_eq!(
            c.run_args(),
            vec!["run", "--format", "ktap", "/cases", "-f", "wp::", "-j", "2"]
        );
        let bench = GuestConfig {
            bench_rounds: Some(3),
            ..c
        };
        assert_eq!(
            bench.run_args(),
            vec!["bench", "--rounds", "3", "/cases", "-f", "wp::", "-j", "2"]
        );
    }
}
