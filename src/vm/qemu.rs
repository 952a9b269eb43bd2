//! Booting a kernel with an initramfs under qemu and collecting the serial console.
//!
//! TCG (software emulation) by default: it works everywhere, including machines where KVM is
//! present but hangs. `--accel kvm` asks for KVM explicitly.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The qemu accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    // `doc = concat!(..)`, not `///`: clap would show a `///` doc in `vm --help`.
    #[doc = concat!("TCG: software emulation.")]
    Tcg,
    #[doc = concat!("KVM: hardware virtualization.")]
    Kvm,
}

/// How to start qemu for a VM run.
pub struct QemuOptions {
    /// The qemu binary.
    pub qemu: PathBuf,
    /// The kernel image to boot.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The accelerator.
    pub accel: Accel,
    /// Guest memory size, as qemu's `-m` takes it.
    pub memory: String,
    /// Guest CPUs.
    pub cpus: usize,
    /// Guest NUMA nodes.
    pub numa_nodes: usize,
    /// How long the VM may run before it is killed.
    pub timeout: Duration,
    /// The guest's second serial port (ttyS1) is written here: the suite's own output (KTAP),
    /// kept apart from the kernel's console so that no kernel message can land inside a line.
    pub suite_output: PathBuf,
}

/// What happened to the VM.
pub struct Boot {
    /// ttyS0: the kernel's console and the init's own lines.
    pub console: String,
    /// ttyS1: what the suite printed (KTAP), whole lines only.
    pub suite_output: String,
    /// Whether the VM was killed for running past the timeout.
    pub timed_out: bool,
    /// qemu's own stderr (its errors).
    pub qemu_stderr: String,
    /// qemu's exit status, when it exited.
    pub qemu_status: Option<std::process::ExitStatus>,
    /// Wall time of the VM run.
    pub elapsed: Duration,
}

impl Boot {
    /// The console followed by the suite's output: the kernel's lines, the init's markers and
    /// then the KTAP document, which no kernel line interrupts.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.console, self.suite_output)
    }
}

/// The kernel command line. `panic=-1` reboots at once on a panic and `-no-reboot` turns that
/// reboot into qemu exiting, so a panic ends the run instead of waiting for the timeout.
/// `loglevel=5` keeps boot chatter off the console but shows WARNINGs and worse.
/// `numa_balancing=disable`: with two nodes the kernel would otherwise move pages on its own,
/// changing the frames that PFN checks compare.
/// `init_on_alloc=0`: Debian turns zeroing every page at allocation on (hardening); under TCG,
/// zeroing the huge page pool the corpus provisions (512 pages, 1 GiB) took about 3 s of the
/// guest's setup. Pages a process maps are zeroed either way (`__GFP_ZERO`), so nothing a
/// trial can see changes.
pub const APPEND: &str =
    "console=ttyS0 loglevel=5 panic=-1 mitigations=off numa_balancing=disable init_on_alloc=0";

/// The emulated CPU under TCG: everything qemu can emulate except ERMS and FSRM. With those
/// the guest kernel clears and copies pages (and glibc sets and copies memory) with
/// `rep stosb` / `rep movsb`, which TCG executes one byte per loop iteration; without them,
/// with `rep stosq` / `rep movsq` or plain loops, 8 bytes at a time. It matters most for 2 MiB
/// huge pages: the hugetlb trials, the suite's critical path, took 2.9 s per run instead of
/// 4.5 to 5.1 s (docs/performance.md). Userfaultfd does not depend on either feature.
pub const TCG_CPU: &str = "max,-erms,-fsrm";

/// The qemu command line for `o`.
pub fn command(o: &QemuOptions) -> Command {
    let mut c = Command::new(&o.qemu);
    match o.accel {
        Accel::Tcg => c.args(["-accel", "tcg", "-cpu", TCG_CPU]),
        Accel::Kvm => c.args(["-accel", "kvm", "-cpu", "host"]),
    };
    c.args([
        "-m",
        &o.memory,
        "-smp",
        &smp_arg(o.cpus, o.numa_nodes),
        "-nographic",
        // ttyS0 (the kernel's console) on stdout; ttyS1 (the suite's output) to a file, so a
        // kernel message printed while a trial reports cannot split its KTAP line.
        "-serial",
        "mon:stdio",
        "-serial",
    ]);
    c.arg(format!("file:{}", o.suite_output.display()));
    c.args([
        "-no-reboot",
        // No network: the guest needs none, and the NIC's iPXE option ROM costs boot time.
        "-nic",
        "none",
    ]);
    c.args(numa_args(&o.memory, o.cpus, o.numa_nodes));
    c.arg("-kernel")
        .arg(&o.kernel)
        .arg("-initrd")
        .arg(&o.initrd)
        .args(["-append", APPEND]);
    c
}

/// qemu options that split the guest's memory (and cores, round robin) evenly over `nodes`
/// NUMA nodes; none for one node or a size qemu's suffixes do not make plain.
pub fn numa_args(memory: &str, cpus: usize, nodes: usize) -> Vec<String> {
    let Some(total) = memory_mib(memory).filter(|_| nodes >= 2) else {
        return Vec::new();
    };
    let mut args = Vec::new();
    for node in 0..nodes {
        let size = total / nodes as u64 + if node == 0 { total % nodes as u64 } else { 0 };
        args.push("-object".to_string());
        args.push(format!("memory-backend-ram,id=mem{node},size={size}M"));
        let mut spec = format!("node,nodeid={node},memdev=mem{node}");
        // Each node gets whole sockets (see `smp_args`): a node sharing a socket with
        // another makes the kernel WARN about its topology at boot.
        let per_node = cpus.div_ceil(nodes);
        for cpu in (node * per_node..cpus).take(per_node) {
            spec.push_str(&format!(",cpus={cpu}"));
        }
        args.push("-numa".to_string());
        args.push(spec);
    }
    args
}

/// `-smp`: one socket per NUMA node when the cores divide evenly over the nodes.
pub fn smp_arg(cpus: usize, nodes: usize) -> String {
    if nodes >= 2 && cpus.is_multiple_of(nodes) {
        format!("{cpus},sockets={nodes}")
    } else {
        cpus.to_string()
    }
}

/// A qemu memory size (`2G`, `1536M`, `2048`: MiB) in MiB.
fn memory_mib(memory: &str) -> Option<u64> {
    let m = memory.trim();
    let (digits, scale) = match m.char_indices().last()? {
        (i, 'G' | 'g') => (&m[..i], 1024),
        (i, 'M' | 'm') => (&m[..i], 1),
        _ => (m, 1),
    };
    digits.parse::<u64>().ok().map(|n| n * scale)
}

/// Boots and waits for the VM to power off, or kills it at the timeout. `on_line` sees each
/// console line as it arrives.
pub fn boot(o: &QemuOptions, on_line: &mut dyn FnMut(&str)) -> Result<Boot, String> {
    let started = Instant::now();
    let mut child = command(o)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", o.qemu.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<Line>();
    let suite_tx = tx.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let suite_reader = {
        let (path, done) = (o.suite_output.clone(), done.clone());
        std::thread::spawn(move || tail_file(&path, &done, &suite_tx))
    };
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while let Ok(n) = r.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            if tx
                .send(Line::Console(String::from_utf8_lossy(&buf).into_owned()))
                .is_err()
            {
                return;
            }
            buf.clear();
        }
        let _ = tx.send(Line::ConsoleClosed);
    });
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let deadline = started + o.timeout;
    let mut console = String::new();
    let mut suite_output = String::new();
    let mut timed_out = false;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Line::Console(line)) => {
                on_line(line.trim_end_matches(['\n', '\r']));
                console.push_str(&line);
            }
            Ok(Line::Suite(line)) => {
                on_line(line.trim_end_matches(['\n', '\r']));
                suite_output.push_str(&line);
            }
            // The console closed: qemu has exited. Collect the rest of the suite's output.
            Ok(Line::ConsoleClosed) => done.store(true, std::sync::atomic::Ordering::Release),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait().ok();
    let _ = reader.join();
    done.store(true, std::sync::atomic::Ordering::Release);
    let _ = suite_reader.join();
    Ok(Boot {
        console,
        suite_output,
        timed_out,
        qemu_stderr: stderr_reader.join().unwrap_or_default(),
        qemu_status: status,
        elapsed: started.elapsed(),
    })
}

/// A line from one of the guest's serial ports.
enum Line {
    Console(String),
    ConsoleClosed,
    Suite(String),
}

/// Sends the whole lines appended to `path` (qemu's file backend of ttyS1) until `done` is set
/// and the file is read to its end.
fn tail_file(path: &Path, done: &std::sync::atomic::AtomicBool, tx: &mpsc::Sender<Line>) {
    let mut file = None;
    let mut pending = Vec::new();
    loop {
        let finished = done.load(std::sync::atomic::Ordering::Acquire);
        if file.is_none() {
            file = std::fs::File::open(path).ok();
        }
        if let Some(f) = file.as_mut() {
            let _ = f.read_to_end(&mut pending);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if tx
                    .send(Line::Suite(String::from_utf8_lossy(&line).into_owned()))
                    .is_err()
                {
                    return;
                }
            }
        }
        if finished {
            if !pending.is_empty() {
                let _ = tx.send(Line::Suite(String::from_utf8_lossy(&pending).into_owned()));
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `qemu-system-x86_64` on PATH, or None.
pub fn find_qemu() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::numa_args;

    #[test]
    fn two_nodes_split_memory_and_cores() {
        assert_eq!(
            numa_args("2G", 2, 2).join(" "),
            "-object memory-backend-ram,id=mem0,size=1024M -numa node,nodeid=0,memdev=mem0,cpus=0 \
             -object memory-backend-ram,id=mem1,size=1024M -numa node,nodeid=1,memdev=mem1,cpus=1"
        );
    }

    #[test]
    fn one_node_or_an_odd_size_adds_nothing() {
        assert!(numa_args("2G", 2, 1).is_empty());
        assert!(numa_args("2T", 2, 2).is_empty());
    }
}
