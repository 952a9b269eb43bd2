//! The stress benchmark's machinery (`ci/stress-bench selftest`): its parsers of uffd-stress's
//! output and of the suite's `stress:` lines, and the suite command line it runs, checked on
//! fixtures and a stand-in binary. The benchmark itself is a documented command
//! (docs/stress-bench.md), never run here.

use std::path::Path;
use std::process::Command;

#[test]
fn stress_bench_machinery_selftest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = match Command::new("python3")
        .arg(root.join("ci/stress-bench"))
        .arg("selftest")
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Skip is not pass: say so loudly.
            eprintln!("SKIPPED: python3 not found; ci/stress-bench selftest did not run");
            return;
        }
        Err(e) => panic!("cannot run python3 ci/stress-bench selftest: {e}"),
    };
    assert!(
        out.status.success(),
        "ci/stress-bench selftest failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
