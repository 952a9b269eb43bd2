//! The initramfs for one VM run: the static suite binary as `/init`, the selected case files,
//! the modules to load, the guest configuration, and `/dev/console`, without which the kernel
//! starts init with no stdin/stdout/stderr.

use std::collections::BTreeSet;
use std::path::Path;

use super::cpio::Cpio;
use super::guest::{GuestConfig, GuestModule, CASES_DIR, CONFIG_PATH};
use super::modules::PackedModule;

/// A case file to pack: its topic folder and file name, and its text.
pub struct CaseFile {
    pub topic: String,
    pub file_name: String,
    pub text: Vec<u8>,
}

/// Builds the archive. `config` gets the modules' paths filled in.
pub fn build(
    suite: &[u8],
    cases: &[CaseFile],
    modules: &[PackedModule],
    mut config: GuestConfig,
) -> Vec<u8> {
    let mut c = Cpio::new();
    for dir in [
        "dev",
        "proc",
        "sys",
        "tmp",
        "uffd-conform",
        "uffd-conform/modules",
        &CASES_DIR[1..],
    ] {
        c.dir(dir);
    }
    c.char_device("dev/console", 0o600, 5, 1);
    c.file("init", 0o755, suite);
    let topics: BTreeSet<&str> = cases.iter().map(|f| f.topic.as_str()).collect();
    for t in topics {
        c.dir(&format!("{}/{t}", &CASES_DIR[1..]));
    }
    for f in cases {
        c.file(
            &format!("{}/{}/{}", &CASES_DIR[1..], f.topic, f.file_name),
            0o644,
            &f.text,
        );
    }
    config.modules.clear();
    for (i, m) in modules.iter().enumerate() {
        let path = format!(
            "uffd-conform/modules/{i:02}-{}.ko{}",
            m.name,
            if m.compressed { ".compressed" } else { "" }
        );
        c.file(&path, 0o644, &m.bytes);
        config.modules.push(GuestModule {
            name: m.name.clone(),
            path: format!("/{path}"),
            compressed: m.compressed,
        });
    }
    let json = serde_json::to_vec_pretty(&config).expect("the guest config serializes");
    c.file(&CONFIG_PATH[1..], 0o644, &json);
    c.finish()
}

/// The file name part of a path, for the archive.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "case.yaml".into())
}
