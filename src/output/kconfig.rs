//! The kernel build options that decide what userfaultfd can do, from /proc/config.gz (or
//! /boot/config-RELEASE), so a run record says why a feature is missing, not only that it is.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options worth recording: userfaultfd itself, the memory types and pools the cases use, and
/// what later cases (swap, KSM, migration, GUP) depend on.
pub const RELEVANT: &[&str] = &[
    "CONFIG_USERFAULTFD",
    "CONFIG_HAVE_ARCH_USERFAULTFD_WP",
    "CONFIG_HAVE_ARCH_USERFAULTFD_MINOR",
    "CONFIG_PTE_MARKER_UFFD_WP",
    "CONFIG_PROC_PAGE_MONITOR",
    "CONFIG_SHMEM",
    "CONFIG_MEMFD_CREATE",
    "CONFIG_HUGETLBFS",
    "CONFIG_HUGETLB_PAGE",
    "CONFIG_TRANSPARENT_HUGEPAGE",
    "CONFIG_SWAP",
    "CONFIG_ZRAM",
    "CONFIG_ZSWAP",
    "CONFIG_KSM",
    "CONFIG_MIGRATION",
    "CONFIG_NUMA",
    "CONFIG_MEMORY_FAILURE",
    "CONFIG_GUP_TEST",
];

/// The relevant build options of the running kernel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KernelConfig {
    /// Where the options were read from, e.g. `/proc/config.gz`; null when no config was found.
    pub source: Option<String>,
    /// Why no config could be read (e.g. the kernel lacks CONFIG_IKCONFIG_PROC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Each relevant option: `y`, `m`, `n` (not set, or absent from the config), or its value.
    pub options: BTreeMap<String, String>,
}

/// Reads the running kernel's config: /proc/config.gz first, then /boot/config-`release`.
pub fn read(release: &str) -> KernelConfig {
    let proc = Path::new("/proc/config.gz");
    let boot = format!("/boot/config-{release}");
    let mut errors = Vec::new();
    match std::fs::read(proc)
        .map_err(|e| e.to_string())
        .and_then(|gz| gunzip(&gz))
    {
        Ok(text) => return from_text(proc.display().to_string(), &text),
        Err(e) => errors.push(format!("{}: {e}", proc.display())),
    }
    match std::fs::read_to_string(&boot) {
        Ok(text) => from_text(boot, &text),
        Err(e) => {
            errors.push(format!("{boot}: {e}"));
            KernelConfig {
                source: None,
                error: Some(errors.join("; ")),
                options: BTreeMap::new(),
            }
        }
    }
}

fn gunzip(gz: &[u8]) -> Result<String, String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| format!("not a gzip'd config: {e}"))?;
    Ok(text)
}

/// The relevant options of a `.config` text.
pub fn from_text(source: String, text: &str) -> KernelConfig {
    let mut all = BTreeMap::new();
    for line in text.lines() {
        if let Some((name, value)) = line.split_once('=') {
            all.insert(name.trim(), value.trim().trim_matches('"'));
        } else if let Some(name) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            all.insert(name.trim(), "n");
        }
    }
    let options = RELEVANT
        .iter()
        .map(|&n| {
            (
                n.to_string(),
                all.get(n).copied().unwrap_or("n").to_string(),
            )
        })
        .collect();
    KernelConfig {
        source: Some(source),
        error: None,
        options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const SAMPLE: &str = "#\n# Automatically generated\nCONFIG_USERFAULTFD=y\n# CONFIG_KSM is not set\nCONFIG_ZRAM=m\nCONFIG_LOCALVERSION=\"-test\"\n";

    #[test]
    fn reads_set_unset_module_and_absent_options() {
        let c = from_text("x".into(), SAMPLE);
        assert_eq!(c.options["CONFIG_USERFAULTFD"], "y");
        assert_eq!(c.options["CONFIG_KSM"], "n");
        assert_eq!(c.options["CONFIG_ZRAM"], "m");
        assert_eq!(
            c.options["CONFIG_GUP_TEST"], "n",
            "absent from the config reads as not set"
        );
        assert!(
            !c.options.contains_key("CONFIG_LOCALVERSION"),
            "only relevant options are kept"
        );
        assert_eq!(c.options.len(), RELEVANT.len());
    }

    #[test]
    fn decompresses_gzip() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(SAMPLE.as_bytes()).expect("compress");
        let gz = enc.finish().expect("compress");
        assert_eq!(gunzip(&gz).expect("decompress"), SAMPLE);
        assert!(gunzip(b"CONFIG_X=y")
            .unwrap_err()
            .contains("not a gzip'd config"));
    }

    #[test]
    fn the_running_kernel_says_where_its_config_is_or_why_not() {
        let c = read(
            &nix::sys::utsname::uname()
                .expect("uname")
                .release()
                .to_string_lossy(),
        );
        assert!(c.source.is_some() != c.error.is_some(), "{c:?}");
    }
}
