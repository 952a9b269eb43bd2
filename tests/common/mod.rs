//! Helpers shared by the test binaries under tests/: the repository root, the suite's own
//! command line, scratch files, checks that say what failed, and headless Chromium.

#![allow(dead_code)] // Each test binary uses some of these.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libtest_mimic::Failed;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The suite's binary, run in the repository root.
pub fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_uffd-conform"));
    c.current_dir(root());
    c
}

/// A per-process scratch directory `uffd-conform-test-PID/NAME`, created.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("uffd-conform-test-{}", std::process::id()))
        .join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Writes `text` to a scratch file `name` (under `cli/`) and returns its path.
pub fn scratch(name: &str, text: &str) -> PathBuf {
    let path = scratch_dir("cli").join(name);
    std::fs::write(&path, text).expect("scratch file");
    path
}

/// `Ok` when `ok`, else a failure saying `what`.
pub fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(what().into())
    }
}

/// A deliberately wrong case (tests/meta/unexpected-fault.yaml) without its `expect_failure`:
/// an ordinary case that fails at step 3.
pub fn wrong_case() -> Result<String, String> {
    let text = std::fs::read_to_string(root().join("tests/meta/unexpected-fault.yaml"))
        .map_err(|e| e.to_string())?;
    Ok(text
        .split("expect_failure:")
        .next()
        .unwrap_or_default()
        .to_string())
}

/// The headless Chromium on PATH, if any.
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Runs `browser` headless on the file `page` with `extra` arguments and a profile of its own
/// in `profile` (no network, no first-run work).
pub fn headless(
    browser: &str,
    profile: &Path,
    page: &Path,
    extra: &[String],
) -> Result<Output, Failed> {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .map_err(|e| Failed::from(e.to_string()))
}

/// Renders `page` in `browser` to the PNG `png` at 1200x900 and checks it is one: a plausible
/// size, and the window's dimensions.
pub fn screenshot(browser: &str, profile: &Path, page: &Path, png: &Path) -> Result<(), Failed> {
    let shot = headless(
        browser,
        profile,
        page,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,900".to_string(),
        ],
    )?;
    let bytes = std::fs::read(png).map_err(|e| {
        format!(
            "no screenshot ({e}); chromium said: {}",
            String::from_utf8_lossy(&shot.stderr)
        )
    })?;
    check(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        || format!("screenshot is not a plausible PNG ({} bytes)", bytes.len()),
    )?;
    let (w, h) = (
        u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes")),
        u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes")),
    );
    check((w, h) == (1200, 900), || {
        format!("screenshot is {w}x{h}, want 1200x900")
    })
}

/// The corpus and the meta-tests (cases/, tests/meta); a load error ends the binary with exit 2.
pub fn load_corpus() -> Vec<uffd_conform::case::LoadedCase> {
    let mut cases = Vec::new();
    for dir in ["cases", "tests/meta"] {
        match uffd_conform::case::load_path(&root().join(dir)) {
            Ok(mut c) => cases.append(&mut c),
            Err(errors) => {
                for e in errors {
                    eprintln!("error: {e}");
                }
                std::process::exit(2);
            }
        }
    }
    cases
}
