//! The suite binary the guest runs as /init must be statically linked: the initramfs has no
//! dynamic loader or libc. We build it with glibc's static libraries (no NSS is used, so a
//! static glibc binary works), in its own target folder:
//!
//! ```sh
//! RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target x86_64-unknown-linux-gnu
//! ```
//!
//! The explicit `--target` keeps RUSTFLAGS away from build scripts and proc macros, which
//! must stay dynamic. `vm` looks for that binary; it does not build it itself, so a run never
//! starts a surprise full build.

use std::path::{Path, PathBuf};

/// The target the static binary is built for.
pub const TRIPLE: &str = "x86_64-unknown-linux-gnu";
/// The command that builds the static binary.
pub const BUILD_HINT: &str =
    "RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target x86_64-unknown-linux-gnu";

/// True when `elf` is an ELF64 executable without a PT_INTERP program header (no dynamic
/// loader needed).
pub fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let read = |at: usize, n: usize| elf.get(at..at + n);
    if read(0, 5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (read(0x20, 8), read(0x36, 2), read(0x38, 2))
    else {
        return false;
    };
    let phoff = u64::from_le_bytes(phoff.try_into().expect("8 bytes")) as usize;
    let phentsize = u16::from_le_bytes(phentsize.try_into().expect("2 bytes")) as usize;
    let phnum = u16::from_le_bytes(phnum.try_into().expect("2 bytes")) as usize;
    (0..phnum).all(|i| {
        let at = phoff.saturating_add(i.saturating_mul(phentsize));
        read(at, 4)
            .map(|t| u32::from_le_bytes(t.try_into().expect("4 bytes")) != PT_INTERP)
            .unwrap_or(false)
    })
}

fn static_at(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    is_static_elf(&bytes).then_some(bytes)
}

/// Finds the static suite binary: `explicit`, else this program when it is static, else
/// `TRIPLE/release/uffd-conform` in $CARGO_TARGET_DIR or in a folder above this program.
pub fn locate(explicit: Option<&Path>) -> Result<(PathBuf, Vec<u8>), String> {
    if let Some(p) = explicit {
        return static_at(p).map(|b| (p.to_path_buf(), b)).ok_or(format!(
            "{} is not a statically linked ELF executable (build one with: {BUILD_HINT})",
            p.display()
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    if let Some(b) = static_at(&exe) {
        return Ok((exe, b));
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir));
    }
    candidates.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    for dir in candidates {
        let p = dir.join(TRIPLE).join("release").join("uffd-conform");
        if let Some(b) = static_at(&p) {
            return Ok((p, b));
        }
    }
    Err(format!(
        "no statically linked suite binary found; build it with: {BUILD_HINT}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_dynamic_and_garbage_is_not_static() {
        // cargo test binaries are linked dynamically (proc-macro-free, default flags).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let dynamic = !is_static_elf(&me);
        let rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
        assert!(
            dynamic || rustflags.contains("crt-static"),
            "test binary seen as static"
        );
        assert!(!is_static_elf(b"\x7fELF\x02 short"));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
    }
}
