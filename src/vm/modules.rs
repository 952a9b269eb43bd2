//! Kernel modules for the guest: find the ones asked for in a kernel's module tree (the
//! `lib/modules/RELEASE` folder of a kernel package), add what they depend on, and
//! decompress them, so the guest's init can load them with finit_module(2) in order.
//!
//! Dependencies come from each module's own `.modinfo` section (`depends=`), so no
//! modules.dep (which only depmod writes, at install time) is needed. `.ko.xz` is decompressed
//! here with a pure-Rust decoder; other compressions are passed on as they are and the guest
//! asks the kernel to decompress them (MODULE_INIT_COMPRESSED_FILE, which needs
//! CONFIG_MODULE_DECOMPRESS).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Modules the guest wants when the kernel has them as modules: zram for swap, and the
/// compressors zram's default algorithm needs (loaded on demand via modprobe, which the
/// guest does not have).
pub const WANTED: &[&str] = &["zram", "lzo_rle", "lzo"];

/// A module ready for the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedModule {
    /// `zram`, `lzo_rle`: underscores, no extension.
    pub name: String,
    /// The module's bytes: plain ELF, or compressed when `compressed` is set.
    pub bytes: Vec<u8>,
    pub compressed: bool,
}

/// `lzo-rle.ko.xz` -> `lzo_rle`.
fn module_name(file: &str) -> Option<String> {
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

fn index(dir: &Path, into: &mut HashMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            index(&path, into);
        } else if let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(module_name)
        {
            into.entry(name).or_insert(path);
        }
    }
}

/// The module file's ELF bytes (decompressed), or None when it is compressed in a way this
/// program cannot read.
fn elf_bytes(path: &Path, raw: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let name = path.to_string_lossy();
    if name.ends_with(".ko") {
        return Ok(Some(raw.to_vec()));
    }
    if name.ends_with(".ko.xz") {
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut std::io::BufReader::new(raw), &mut out)
            .map_err(|e| format!("{}: xz: {e}", path.display()))?;
        return Ok(Some(out));
    }
    Ok(None)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The `.modinfo` section of a 64-bit little-endian ELF file, or None.
pub fn modinfo(elf: &[u8]) -> Option<&[u8]> {
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = u64_at(elf, 0x28)? as usize;
    let shentsize = u16_at(elf, 0x3a)? as usize;
    let shnum = u16_at(elf, 0x3c)? as usize;
    let shstrndx = u16_at(elf, 0x3e)? as usize;
    let section = |i: usize| -> Option<(u32, usize, usize)> {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((
            u32_at(elf, h)?,
            u64_at(elf, h + 0x18)? as usize,
            u64_at(elf, h + 0x20)? as usize,
        ))
    };
    let (_, strtab, strsize) = section(shstrndx)?;
    let names = elf.get(strtab..strtab.checked_add(strsize)?)?;
    (0..shnum).find_map(|i| {
        let (name, off, size) = section(i)?;
        let rest = names.get(name as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        (&rest[..end] == b".modinfo")
            .then(|| elf.get(off..off.checked_add(size)?))
            .flatten()
    })
}

/// The `depends=` list of a module's `.modinfo`.
pub fn depends(elf: &[u8]) -> Vec<String> {
    let Some(info) = modinfo(elf) else {
        return Vec::new();
    };
    info.split(|&b| b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|s| s.trim().replace('-', "_"))
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// The `wanted` modules that exist as files under `tree`, with their dependencies first.
/// Modules that are not there are built in (or absent): the guest finds out from sysfs.
pub fn collect(tree: &Path, wanted: &[&str]) -> Result<Vec<PackedModule>, String> {
    let mut files = HashMap::new();
    index(tree, &mut files);
    let mut out: Vec<PackedModule> = Vec::new();
    for name in wanted {
        add(&files, &name.replace('-', "_"), &mut out, 0)?;
    }
    Ok(out)
}

fn add(
    files: &HashMap<String, PathBuf>,
    name: &str,
    out: &mut Vec<PackedModule>,
    depth: usize,
) -> Result<(), String> {
    if depth > 32 || out.iter().any(|m| m.name == name) {
        return Ok(());
    }
    let Some(path) = files.get(name) else {
        return Ok(());
    };
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let module = match elf_bytes(path, &raw)? {
        Some(elf) => {
            for dep in depends(&elf) {
                add(files, &dep, out, depth + 1)?;
            }
            PackedModule {
                name: name.to_string(),
                bytes: elf,
                compressed: false,
            }
        }
        None => PackedModule {
            name: name.to_string(),
            bytes: raw,
            compressed: true,
        },
    };
    out.push(module);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with a section-name table and a `.modinfo` section.
    fn fake_module(modinfo: &[u8]) -> Vec<u8> {
        let shstr = b"\0.shstrtab\0.modinfo\0";
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let shstr_off = elf.len();
        elf.extend_from_slice(shstr);
        let info_off = elf.len();
        elf.extend_from_slice(modinfo);
        let shoff = elf.len();
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        for (name, off, size) in [
            (0u32, 0usize, 0usize),
            (1, shstr_off, shstr.len()),
            (11, info_off, modinfo.len()),
        ] {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&h);
        }
        elf
    }

    #[test]
    fn reads_depends_from_modinfo() {
        let elf = fake_module(b"license=GPL\0depends=zsmalloc,lzo-rle\0name=zram\0");
        assert_eq!(depends(&elf), vec!["zsmalloc", "lzo_rle"]);
        assert_eq!(depends(&fake_module(b"depends=\0")), Vec::<String>::new());
        assert_eq!(depends(b"not an elf"), Vec::<String>::new());
        assert_eq!(
            depends(&elf[..70]),
            Vec::<String>::new(),
            "a truncated file is not read past its end"
        );
    }

    #[test]
    fn collects_dependencies_first_and_skips_missing_modules() {
        let dir = std::env::temp_dir().join(format!("uffd-conform-modules-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("kernel/mm")).unwrap();
        std::fs::write(
            dir.join("kernel/zram.ko"),
            fake_module(b"depends=zsmalloc\0"),
        )
        .unwrap();
        std::fs::write(
            dir.join("kernel/mm/zsmalloc.ko"),
            fake_module(b"depends=\0"),
        )
        .unwrap();
        let got = collect(&dir, &["zram", "lzo"]).unwrap();
        let names: Vec<&str> = got.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["zsmalloc", "zram"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn module_names_normalise_dashes_and_extensions() {
        assert_eq!(module_name("lzo-rle.ko.xz").as_deref(), Some("lzo_rle"));
        assert_eq!(module_name("zram.ko").as_deref(), Some("zram"));
        assert_eq!(module_name("modules.dep"), None);
    }
}
