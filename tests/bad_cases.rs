//! Every file in tests/bad-cases/ is a broken case file; its sidecar `NAME.expect` holds the
//! error it must give as `LINE:COL: text` (the text is a substring of the message). The loader
//! must report exactly that file, line and column, and must not panic on any of them.

use std::path::{Path, PathBuf};

use uffd_conform::case::load_path;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-cases")
}

fn cases() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/bad-cases")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `LINE:COL: text` from the sidecar.
fn expectation(file: &Path) -> (u64, u64, String) {
    let sidecar = file.with_extension("expect");
    let text =
        std::fs::read_to_string(&sidecar).unwrap_or_else(|e| panic!("{}: {e}", sidecar.display()));
    let line = text.lines().next().unwrap_or_default();
    let parse = || -> Option<(u64, u64, String)> {
        let (l, rest) = line.split_once(':')?;
        let (c, msg) = rest.split_once(": ")?;
        Some((l.parse().ok()?, c.parse().ok()?, msg.to_string()))
    };
    parse().unwrap_or_else(|| panic!("{}: want `LINE:COL: text`, got {line:?}", sidecar.display()))
}

#[test]
fn the_corpus_is_big_enough_and_every_file_has_an_expectation() {
    let files = cases();
    assert!(files.len() >= 30, "only {} bad cases", files.len());
    for f in &files {
        assert!(
            f.with_extension("expect").is_file(),
            "{} has no .expect",
            f.display()
        );
    }
}

#[test]
fn every_bad_case_gives_its_error_at_its_location() {
    let mut wrong = Vec::new();
    for file in cases() {
        let (line, column, text) = expectation(&file);
        // Any panic in the loader is a failure of this file, not of the whole test.
        let result = std::panic::catch_unwind(|| load_path(&file));
        let errors = match result {
            Err(_) => {
                wrong.push(format!("{}: the loader panicked", file.display()));
                continue;
            }
            Ok(Ok(cases)) => {
                wrong.push(format!(
                    "{}: loaded {} case(s), want an error",
                    file.display(),
                    cases.len()
                ));
                continue;
            }
            Ok(Err(errors)) => errors,
        };
        let want_prefix = format!("{}:{line}:{column}: ", file.display());
        let found = errors.iter().any(|e| {
            let s = e.to_string();
            s.starts_with(&want_prefix) && s.contains(&text)
        });
        if !found {
            let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            wrong.push(format!("want `{want_prefix}...{text}...`, got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} bad case(s) misreported:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
