//! Fuzzes the case loader: any text must load or give a located error, never panic, hang or
//! exhaust memory. Seed it with the corpus: `cargo fuzz run load_case fuzz/corpus/load_case`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = uffd_conform::case::load::load_str(Path::new("fuzz/wp/case.yaml"), text) {
        // Every error names the file; a located error also has a line and column.
        assert!(e.to_string().starts_with("fuzz/wp/case.yaml:"));
    }
});
