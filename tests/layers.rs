//! The crate's dependencies run one way, and no modules import each other in a circle.
//!
//! Reads the `crate::…`, `super::…` and `self::…` paths of every file under src/ (tests
//! modules aside), resolves each to the module file it names, and checks two things:
//! - a top-level module uses only those below it in [`LAYERS`];
//! - the module graph (a file's use of a parent's re-export aside) has no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first: each may use only those before it.
const LAYERS: &[&str] = &[
    "kernel", "case", "trial", "host", "run", "output", "vm", "cli",
];

type Module = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every module file under src/: its module path (`trial::exec`) and its file.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, at: &Module, out: &mut BTreeMap<Module, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            if path.is_dir() {
                let mut m = at.clone();
                m.push(name);
                walk(&path, &m, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut m = at.clone();
                if name != "mod" && !(at.is_empty() && (name == "lib" || name == "main")) {
                    m.push(name);
                }
                out.insert(m, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &Vec::new(), &mut out);
    out
}

/// The code of a file without comments, strings and `#[cfg(test)]` modules.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut test_attr = false;
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let trimmed = line.trim();
        if skip_depth.is_none() && test_attr && trimmed.starts_with("mod ") {
            skip_depth = Some(depth);
        }
        test_attr = trimmed == "#[cfg(test)]" || (test_attr && trimmed.is_empty());
        // Strings may hold `crate::` text (messages): drop them.
        let mut clean = String::new();
        let mut in_str = false;
        let mut prev = ' ';
        for c in line.chars() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                clean.push(c);
            }
            prev = if prev == '\\' && c == '\\' { ' ' } else { c };
        }
        for c in clean.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
        }
        if let Some(d) = skip_depth {
            if depth <= d && clean.contains('}') {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(&clean);
        out.push('\n');
    }
    out
}

/// The paths a file names, each as written from its first segment (`crate`, `super`, `self`)
/// on, with `{a, b}` groups expanded one level.
fn paths(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !ident(chars[i]) || (i > 0 && (ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut segs = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < chars.len() && ident(chars[j]) {
                j += 1;
            }
            segs.push(chars[start..j].iter().collect::<String>());
            if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
                j += 2;
                if chars.get(j) == Some(&'{') {
                    let mut k = j + 1;
                    let mut depth = 1;
                    let mut item = String::new();
                    let mut items = Vec::new();
                    while k < chars.len() && depth > 0 {
                        match chars[k] {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                            c if depth == 1 => item.push(c),
                            _ => {}
                        }
                        k += 1;
                    }
                    items.push(item);
                    for item in items {
                        let mut p = segs.clone();
                        p.extend(
                            item.trim()
                                .split("::")
                                .map(|s| s.trim().to_string())
                                .filter(|s| !s.is_empty() && s.chars().all(ident)),
                        );
                        out.push(p);
                    }
                    j = k;
                    segs.clear();
                    break;
                }
                if j < chars.len() && ident(chars[j]) {
                    continue;
                }
            }
            break;
        }
        if !segs.is_empty() {
            out.push(segs);
        }
        i = j.max(i + 1);
    }
    out.retain(|p| matches!(p[0].as_str(), "crate" | "super" | "self") && p.len() > 1);
    out
}

/// The module a path names, from a file of module `at`: the longest module-file prefix.
fn resolve(
    path: &[String],
    at: &Module,
    is_dir_module: bool,
    known: &BTreeMap<Module, PathBuf>,
) -> Option<Module> {
    // A non-mod.rs file is its own module; `super` is its parent.
    let mut base: Module = match path[0].as_str() {
        "crate" => Vec::new(),
        _ => at.clone(),
    };
    let mut rest = &path[1..];
    if path[0] == "super" {
        base.pop();
        let _ = is_dir_module;
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
    }
    let mut best = None;
    let mut m = base.clone();
    if known.contains_key(&m) {
        best = Some(m.clone());
    }
    for seg in rest {
        m.push(seg.clone());
        if known.contains_key(&m) {
            best = Some(m.clone());
        } else {
            break;
        }
    }
    best
}

fn edges(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules(src);
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, file) in &known {
        let text = std::fs::read_to_string(file).unwrap();
        let is_dir = file.file_name().unwrap() == "mod.rs";
        let out = graph.entry(module.clone()).or_default();
        for p in paths(&code(&text)) {
            if let Some(to) = resolve(&p, module, is_dir, &known) {
                if &to != module {
                    out.insert(to);
                }
            }
        }
    }
    graph
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn the_parser_sees_every_kind_of_path() {
    let c = code(
        "use crate::a::b;\nuse super::{c, d::e};\nfn f() { crate::g::h(\"crate::no\"); }\n\
         #[cfg(test)]\nmod tests {\n    use crate::x;\n}\nuse self::y;\n",
    );
    let got: Vec<String> = paths(&c).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        got,
        [
            "crate::a::b",
            "super::c",
            "super::d::e",
            "crate::g::h",
            "self::y"
        ]
    );
}

#[test]
fn top_level_modules_use_only_those_below_them() {
    let wrong = layer_breaks(&src());
    assert!(
        wrong.is_empty(),
        "layer order {LAYERS:?} broken:\n{}",
        wrong.join("\n")
    );
}

/// Every use of a higher layer, or of a module in no layer.
fn layer_breaks(src: &Path) -> Vec<String> {
    let graph = edges(src);
    let rank = |m: &Module| m.first().and_then(|t| LAYERS.iter().position(|l| l == t));
    let mut wrong = Vec::new();
    for (from, tos) in &graph {
        let Some(rf) = rank(from) else { continue };
        for to in tos {
            let Some(rt) = rank(to) else {
                if !to.is_empty() {
                    wrong.push(format!(
                        "{} uses {}, which is in no layer",
                        name(from),
                        name(to)
                    ));
                }
                continue;
            };
            if rt > rf {
                wrong.push(format!("{} uses {} (a higher layer)", name(from), name(to)));
            }
        }
    }
    let tops: BTreeSet<String> = graph.keys().filter_map(|m| m.first().cloned()).collect();
    for t in &tops {
        if !LAYERS.contains(&t.as_str()) {
            wrong.push(format!("src/{t}: a top-level module in no layer"));
        }
    }
    wrong
}

#[test]
fn no_module_cycles() {
    let cycles = cycles(&src());
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// Every cycle the depth-first search meets, as `a -> b -> a`.
fn cycles(src: &Path) -> Vec<String> {
    let graph = edges(src);
    // A module naming an ancestor uses the ancestor's re-exports, and an ancestor declares
    // its children: neither is a dependency between module files.
    let is_ancestor = |a: &Module, b: &Module| a.len() < b.len() && b.starts_with(a);
    let graph: BTreeMap<&Module, Vec<&Module>> = graph
        .iter()
        .map(|(from, tos)| {
            let tos = tos
                .iter()
                .filter(|to| !is_ancestor(to, from) && !is_ancestor(from, to))
                .collect();
            (from, tos)
        })
        .collect();
    // Depth-first search; a grey node met again closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        White,
        Grey,
        Black,
    }
    let mut mark: BTreeMap<&Module, Mark> = graph.keys().map(|k| (*k, Mark::White)).collect();
    let mut cycles = Vec::new();
    fn visit<'a>(
        m: &'a Module,
        graph: &BTreeMap<&'a Module, Vec<&'a Module>>,
        mark: &mut BTreeMap<&'a Module, Mark>,
        stack: &mut Vec<&'a Module>,
        cycles: &mut Vec<String>,
    ) {
        mark.insert(m, Mark::Grey);
        stack.push(m);
        for to in graph.get(m).into_iter().flatten() {
            match mark.get(to).copied().unwrap_or(Mark::Black) {
                Mark::White => visit(to, graph, mark, stack, cycles),
                Mark::Grey => {
                    let from = stack.iter().position(|s| s == to).unwrap();
                    let ring: Vec<String> = stack[from..].iter().map(|m| name(m)).collect();
                    cycles.push(format!("{} -> {}", ring.join(" -> "), name(to)));
                }
                Mark::Black => {}
            }
        }
        stack.pop();
        mark.insert(m, Mark::Black);
    }
    let keys: Vec<&Module> = graph.keys().copied().collect();
    for k in keys {
        if mark[k] == Mark::White {
            visit(k, &graph, &mut mark, &mut Vec::new(), &mut cycles);
        }
    }
    cycles
}

#[test]
fn only_lib_and_main_at_the_root_of_src() {
    let mut loose: Vec<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "lib.rs" && n != "main.rs")
        .collect();
    loose.sort();
    assert!(
        loose.is_empty(),
        "loose files at the root of src/: {loose:?}"
    );
}

/// The checks fail on a tree that breaks them: a kernel module using cli, and two trial
/// modules using each other (through `super::` and a `crate::` group).
#[test]
fn the_checks_catch_a_higher_layer_and_a_cycle() {
    let dir = std::env::temp_dir().join(format!("uffd-conform-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let files = [
        ("lib.rs", "pub mod cli;\npub mod kernel;\npub mod trial;\n"),
        ("kernel/mod.rs", "pub mod uapi;\n"),
        ("kernel/uapi.rs", "use crate::cli::Cli;\n"),
        ("cli/mod.rs", "pub struct Cli;\n"),
        ("trial/mod.rs", "pub mod a;\npub mod b;\n"),
        ("trial/a.rs", "use super::b::B;\npub struct A;\n"),
        (
            "trial/b.rs",
            "use crate::{kernel, trial::a};\npub struct B;\n#[cfg(test)]\nmod tests {\n    use crate::cli::Cli;\n}\n",
        ),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    assert_eq!(
        layer_breaks(&dir),
        ["kernel::uapi uses cli (a higher layer)"]
    );
    assert_eq!(cycles(&dir), ["trial::a -> trial::b -> trial::a"]);
    let _ = std::fs::remove_dir_all(&dir);
}
