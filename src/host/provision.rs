//! Huge pages and swap for a run, and putting the machine back as it was: on normal exit, on
//! failure (drop), and on SIGINT/SIGTERM. Every change is recorded as an [`Undo`] first.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::kernel::probe::Probe;
use crate::kernel::swap::{swapoff, swapon, write_swap_header, SWAP_LABEL, SWAP_PRIORITY};

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";
const SWAP_BYTES: u64 = 512 << 20;

/// What a run needs from the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request {
    pub huge_pages: u64,
    pub swap: bool,
    /// ksmd running and scanning fast (for `ksm_merge` steps).
    pub ksm: bool,
    /// Transparent huge pages available on madvise, for anon and shmem (`collapse` steps).
    pub thp: bool,
}

const THP: &str = "/sys/kernel/mm/transparent_hugepage";

const KSM: &str = "/sys/kernel/mm/ksm";

/// One change to undo.
#[derive(Debug)]
enum Undo {
    HugePages {
        original: u64,
    },
    /// A sysfs or procfs knob and the value it had.
    Knob {
        path: String,
        original: String,
    },
    Zram {
        id: u32,
    },
    SwapFile {
        path: PathBuf,
    },
}

static UNDO: Mutex<Vec<Undo>> = Mutex::new(Vec::new());

/// Set once a signal started the restore: from then on nothing new is provisioned, so a change
/// made while the signal thread restores cannot outlive the process.
static CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn undo_list() -> std::sync::MutexGuard<'static, Vec<Undo>> {
    UNDO.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes a change under the undo lock: `start` begins it and returns its undo (recorded at
/// once) and what `finish` needs; `finish` completes it. A restore running on the signal
/// thread therefore sees either nothing or the undo of everything done.
fn change<S, T>(
    start: impl FnOnce() -> Result<(Undo, S), String>,
    finish: impl FnOnce(S) -> Result<T, String>,
) -> Result<T, String> {
    let mut list = undo_list();
    if CLOSED.load(std::sync::atomic::Ordering::SeqCst) {
        return Err("the run is being interrupted".into());
    }
    let (undo, state) = start()?;
    list.push(undo);
    finish(state)
}

/// Restores everything on drop.
pub struct Guard {
    /// What was done, for the run's log.
    pub notes: Vec<String>,
    /// Held while this run may change or rely on the host's huge pages and swap: another root
    /// run that provisions waits, rather than restoring what this one still uses.
    _host: Option<crate::host::lock::HostLock>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Provisions what `req` asks for that the machine lacks. Needs root; otherwise it changes
/// nothing and the trials that need it skip with their reason.
pub fn provision(req: Request, probe: &mut Probe) -> Guard {
    install_signal_restore();
    let mut notes = Vec::new();
    if !probe.is_root {
        if req.huge_pages > probe.huge_pages_free || (req.swap && probe.swap_total_kib == 0) {
            notes.push("not root: huge pages and swap are not provisioned".into());
        }
        return Guard { notes, _host: None };
    }
    let needs_something = req.huge_pages > 0 || req.swap || req.ksm || req.thp;
    let host = needs_something.then(|| match crate::host::lock::try_lock("provision") {
        Some(l) => l,
        None => {
            eprintln!("provision: waiting for another uffd-conform run to finish with the huge pages and swap");
            crate::host::lock::lock("provision")
        }
    });
    // What another run left may be gone now that we hold the lock.
    probe.refresh_pools();
    if req.huge_pages > probe.huge_pages_free {
        match add_huge_pages(req.huge_pages - probe.huge_pages_free) {
            Ok(n) => notes.push(n),
            Err(e) => notes.push(format!("huge pages: {e}")),
        }
    }
    if req.swap && probe.swap_total_kib == 0 {
        match add_zram_swap()
            .or_else(|zram| add_swap_file().map_err(|file| format!("{zram}; {file}")))
        {
            Ok(n) => notes.push(n),
            Err(e) => notes.push(format!("swap: {e}")),
        }
    }
    if req.thp {
        match allow_thp() {
            Ok(Some(n)) => notes.push(n),
            Ok(None) => {}
            Err(e) => notes.push(format!("thp: {e}")),
        }
    }
    if req.ksm {
        match start_ksmd() {
            Ok(n) => notes.push(n),
            Err(e) => notes.push(format!("ksm: {e}")),
        }
    }
    probe.refresh_pools();
    Guard { notes, _host: host }
}

/// Sets a knob, recording its old value to restore.
fn set_knob(path: &str, value: &str) -> Result<(), String> {
    let original = fs::read_to_string(path)
        .map_err(|e| format!("{path}: {e}"))?
        .trim()
        .to_string();
    if original == value {
        return Ok(());
    }
    change(
        || {
            Ok((
                Undo::Knob {
                    path: path.to_string(),
                    original: original.clone(),
                },
                (),
            ))
        },
        |()| write_str(path, value),
    )
}

/// The selected value of a `a [b] c` sysfs choice.
fn selected_choice(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_string())
}

/// THP on madvise for anon and shmem when a knob says `never` (restored afterwards).
fn allow_thp() -> Result<Option<String>, String> {
    let mut changed = Vec::new();
    for (knob, want) in [("enabled", "madvise"), ("shmem_enabled", "advise")] {
        let path = format!("{THP}/{knob}");
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if selected_choice(&text).as_deref() == Some("never") {
            change(
                || {
                    Ok((
                        Undo::Knob {
                            path: path.clone(),
                            original: "never".into(),
                        },
                        (),
                    ))
                },
                |()| write_str(&path, want),
            )?;
            changed.push(format!("{knob} never -> {want}"));
        }
    }
    Ok((!changed.is_empty()).then(|| {
        format!(
            "transparent_hugepage {} (restored afterwards)",
            changed.join(", ")
        )
    }))
}

/// ksmd on, scanning quickly, so `ksm_merge` steps see merges within a second.
fn start_ksmd() -> Result<String, String> {
    set_knob(&format!("{KSM}/pages_to_scan"), "10000")?;
    set_knob(&format!("{KSM}/sleep_millisecs"), "1")?;
    set_knob(&format!("{KSM}/run"), "1")?;
    Ok("ksmd running, fast scan (restored afterwards)".into())
}

fn read_u64(path: &str) -> Result<u64, String> {
    fs::read_to_string(path)
        .map_err(|e| format!("{path}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{path}: {e}"))
}

fn write_str(path: impl AsRef<Path>, value: &str) -> Result<(), String> {
    fs::write(path.as_ref(), value)
        .map_err(|e| format!("write {value:?} to {}: {e}", path.as_ref().display()))
}

fn add_huge_pages(extra: u64) -> Result<String, String> {
    let original = read_u64(NR_HUGEPAGES)?;
    change(
        || Ok((Undo::HugePages { original }, ())),
        |()| write_str(NR_HUGEPAGES, &(original + extra).to_string()),
    )?;
    let now = read_u64(NR_HUGEPAGES)?;
    Ok(format!(
        "vm.nr_hugepages {original} -> {now} (restored afterwards)"
    ))
}

fn add_zram_swap() -> Result<String, String> {
    // hot_add creates the device: it happens under the undo lock, with its undo recorded.
    let start = || -> Result<(Undo, u32), String> {
        let id: u32 = fs::read_to_string("/sys/class/zram-control/hot_add")
            .map_err(|e| format!("zram: {e}"))?
            .trim()
            .parse()
            .map_err(|e| format!("zram hot_add: {e}"))?;
        Ok((Undo::Zram { id }, id))
    };
    let dev = change(start, |id| {
        let dev = PathBuf::from(format!("/dev/zram{id}"));
        write_str(
            format!("/sys/block/zram{id}/disksize"),
            &SWAP_BYTES.to_string(),
        )?;
        write_swap_header(&dev, SWAP_BYTES, SWAP_LABEL)?;
        swapon(&dev, SWAP_PRIORITY)?;
        Ok(dev)
    })?;
    Ok(format!(
        "swap on {} ({} MiB zram, removed afterwards)",
        dev.display(),
        SWAP_BYTES >> 20
    ))
}

fn add_swap_file() -> Result<String, String> {
    let path = std::env::temp_dir().join(format!("uffd-conform-swap.{}", std::process::id()));
    let start = || -> Result<(Undo, std::fs::File), String> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((Undo::SwapFile { path: path.clone() }, file))
    };
    change(start, |file| {
        nix::fcntl::fallocate(
            &file,
            nix::fcntl::FallocateFlags::empty(),
            0,
            SWAP_BYTES as i64,
        )
        .map_err(|e| format!("fallocate {}: {}", path.display(), e.desc()))?;
        drop(file);
        write_swap_header(&path, SWAP_BYTES, SWAP_LABEL)?;
        swapon(&path, SWAP_PRIORITY)
    })?;
    Ok(format!(
        "swap on {} ({} MiB file, removed afterwards)",
        path.display(),
        SWAP_BYTES >> 20
    ))
}

/// Removes a zram device: off as swap, reset, gone.
fn remove_zram(id: u32) {
    let _ = swapoff(Path::new(&format!("/dev/zram{id}")));
    let _ = write_str(format!("/sys/block/zram{id}/reset"), "1");
    let _ = write_str("/sys/class/zram-control/hot_remove", &id.to_string());
}

/// Undoes every recorded change, newest first. Safe to call more than once.
pub fn restore() {
    crate::kernel::memcg::sweep();
    let mut list = undo_list();
    while let Some(undo) = list.pop() {
        match undo {
            Undo::HugePages { original } => {
                let _ = write_str(NR_HUGEPAGES, &original.to_string());
            }
            Undo::Knob { path, original } => {
                let _ = write_str(&path, &original);
            }
            Undo::Zram { id } => remove_zram(id),
            Undo::SwapFile { path } => {
                let _ = swapoff(&path);
                let _ = fs::remove_file(&path);
            }
        }
    }
}

/// On SIGINT/SIGTERM/SIGHUP: restore the machine, then exit as the signal would.
fn install_signal_restore() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                CLOSED.store(true, std::sync::atomic::Ordering::SeqCst);
                restore();
                eprintln!("uffd-conform: interrupted by signal {sig}; machine restored");
                std::process::exit(128 + sig);
            }
        });
    });
}
