//! The self-tests of the campaign scripts in ci/ (Python, stdlib only), run on their fixtures;
//! the campaigns themselves are documented commands, never run here.
//! - `ci/mutate selftest`: mutant generation from tests/mutate-fixture, apply/revert with
//!   sha256 proof, crash recovery, shard and subset selection, merge, selftest console parsing
//!   (README, "Mutation testing").
//! - `ci/stress-bench selftest`: its parsers of uffd-stress's output and of the suite's
//!   `stress:` lines, and the suite command line, on a stand-in binary (docs/stress-bench.md).

use std::path::Path;
use std::process::Command;

/// Runs `python3 SCRIPT selftest` and fails with its output when it fails.
fn selftest(script: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = match Command::new("python3")
        .arg(root.join(script))
        .arg("selftest")
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Skip is not pass: say so loudly; the scripts need python3 to run at all.
            eprintln!("SKIPPED: python3 not found; {script} selftest did not run");
            return;
        }
        Err(e) => panic!("cannot run python3 {script} selftest: {e}"),
    };
    assert!(
        out.status.success(),
        "{script} selftest failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mutate_machinery_selftest() {
    selftest("ci/mutate");
}

#[test]
fn stress_bench_machinery_selftest() {
    selftest("ci/stress-bench");
}
