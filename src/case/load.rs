//! Loading case files: YAML (one or more documents per file) into [`Case`]s, with every error
//! located as file:line:column, and the checks serde cannot express (page ranges, names, modes).

use std::collections::HashMap;
use std::fmt;
use std::ops::Not;
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::document::Case;
use super::model::{Ref, RegisterMode};
use super::step::{Op, Step};
use crate::kernel::memory::MemoryType;

/// A case and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    /// The folder the file is in (e.g. `wp` for cases/wp/basic.yaml).
    pub topic: String,
    /// The case file's path.
    pub file: PathBuf,
    /// The parsed case.
    pub case: Case,
}

impl LoadedCase {
    /// `topic::case`, the prefix of its trials' names.
    pub fn id(&self) -> String {
        format!("{}::{}", self.topic, self.case.name)
    }
}

/// A case file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file with the error.
    pub file: PathBuf,
    /// Line of the error (0 when unknown).
    pub line: u64,
    /// Column of the error (0 when unknown).
    pub column: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl std::error::Error for LoadError {}

/// Loads every `.yaml`/`.yml` file under `path` (or the one file), sorted by path. Returns all
/// errors, not just the first, so one run shows every broken file.
pub fn load_path(path: &Path) -> Result<Vec<LoadedCase>, Vec<LoadError>> {
    let mut files = Vec::new();
    collect_files(path, &mut files).map_err(|e| {
        vec![LoadError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: e.to_string(),
        }]
    })?;
    files.sort();
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        match load_file(file) {
            Ok(mut c) => cases.append(&mut c),
            Err(e) => errors.push(e),
        }
    }
    check_unique_names(&cases, &mut errors);
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            collect_files(&entry?.path(), out)?;
        }
    } else if path.is_file() || !path.exists() {
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if yaml || !path.exists() {
            // A named file that does not exist reaches load_file and reports there.
            out.push(path.to_path_buf());
        }
    }
    Ok(())
}

fn topic_of(file: &Path) -> String {
    file.parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("cases")
        .to_string()
}

/// Loads one file; the first error found is returned.
pub fn load_file(file: &Path) -> Result<Vec<LoadedCase>, LoadError> {
    let text = std::fs::read_to_string(file).map_err(|e| LoadError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        message: e.to_string(),
    })?;
    load_str(file, &text)
}

/// Loads the text of a case file named `file`.
pub fn load_str(file: &Path, text: &str) -> Result<Vec<LoadedCase>, LoadError> {
    let err_at = |line: u64, column: u64, message: String| LoadError {
        file: file.to_path_buf(),
        line,
        column,
        message,
    };
    let cases: Vec<Case> = serde_saphyr::from_multiple(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        err_at(line, column, message_of(&e))
    })?;
    if cases.is_empty() {
        return Err(err_at(1, 1, "the file holds no case".into()));
    }
    let topic = topic_of(file);
    let mut out = Vec::new();
    for (doc, case) in cases.into_iter().enumerate() {
        if let Err((at, message)) = validate(&case) {
            let (line, column) = locate(text, doc, &at);
            return Err(err_at(
                line,
                column,
                format!("case `{}`: {message}", case.name.escape_debug()),
            ));
        }
        out.push(LoadedCase {
            topic: topic.clone(),
            file: file.to_path_buf(),
            case,
        });
    }
    Ok(out)
}

/// The error's message without the location and snippet (we print our own location).
fn message_of(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let mut msg = full.lines().next().unwrap_or_default().trim();
    msg = msg.strip_prefix("error: ").unwrap_or(msg);
    // serde-saphyr says "line L column C: ..." first; we print our own location.
    if msg.starts_with("line ") {
        if let Some((_, rest)) = msg.split_once(": ") {
            msg = rest;
        }
    }
    plain(msg)
}

/// serde-saphyr's terse messages, said in the case format's words.
fn plain(msg: &str) -> String {
    let rewrites: &[(&str, &str)] = &[
        ("invalid u8", "expected a whole number from 0 to 255"),
        ("invalid u64", "expected a whole number, 0 or more"),
        ("invalid usize", "expected a whole number, 0 or more"),
        ("invalid boolean", "expected true or false"),
        (
            "expected mapping start",
            "expected a map of `key: value` fields here",
        ),
        ("expected sequence start", "expected a list here"),
    ];
    if let Some((_, better)) = rewrites.iter().find(|(terse, _)| msg == *terse) {
        return format!("{better} ({msg})");
    }
    // "duplicate mapping key: K, set DuplicateKeyPolicy in Options if acceptable": the advice
    // is for the library's users, not for case authors.
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("`{key}` appears twice in the same map");
    }
    msg.to_string()
}

/// Where in a case a semantic error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// A top-level field, by name.
    Field(&'static str),
    /// A step, by index.
    Step(usize),
}

/// What makes a public ref unfindable, if anything: a commit is looked up by its id, a
/// mailing-list thread by its subject, author and date.
fn ref_problem(r: &Ref) -> Option<String> {
    match r {
        Ref::Commit(s) => {
            let (id, subject) = s.split_once(' ').unwrap_or((s, ""));
            let ok = id.len() >= 12
                && id.chars().all(|c| c.is_ascii_hexdigit())
                && !subject.trim().is_empty();
            (!ok).then(|| {
                format!(
                    "commit ref `{}` must be `ID SUBJECT`, the id 12 or more hex digits",
                    s.escape_debug()
                )
            })
        }
        Ref::Thread(s) => (!thread_is_findable(s)).then(|| {
            format!(
                "thread ref `{}` must be `SUBJECT (AUTHOR, YYYY-MM-DD)`",
                s.escape_debug()
            )
        }),
        _ => None,
    }
}

fn thread_is_findable(s: &str) -> bool {
    let Some((subject, tail)) = s.strip_suffix(')').and_then(|t| t.rsplit_once(" (")) else {
        return false;
    };
    let Some((author, date)) = tail.rsplit_once(", ") else {
        return false;
    };
    let date_ok = date.len() == 10
        && date.char_indices().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    !subject.trim().is_empty() && !author.trim().is_empty() && date_ok
}

fn validate(case: &Case) -> Result<(), (At, String)> {
    let name_ok = !case.name.is_empty()
        && case
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err((
            At::Field("name"),
            format!(
                "name `{}` must be lower-case letters, digits and `-`",
                case.name.escape_debug()
            ),
        ));
    }
    if case.about.trim().is_empty() {
        return Err((
            At::Field("about"),
            "`about` must say what the case checks".into(),
        ));
    }
    if case.refs.is_empty() {
        return Err((
            At::Field("refs"),
            "`refs` must name at least one source for the rule".into(),
        ));
    }
    if !case.refs.iter().any(Ref::is_public) {
        return Err((
            At::Field("refs"),
            "`refs` must name at least one public source (thread, commit, doc, man or \
             selftest); `facts` only backs one up"
                .into(),
        ));
    }
    if let Some(m) = case.refs.iter().find_map(ref_problem) {
        return Err((At::Field("refs"), m));
    }
    // 64 MiB of base pages (enough to span page tables); huge pages are 2 MiB each.
    let max_pages = if case.memory.iter().any(|m| m.is_hugetlb()) {
        1024
    } else {
        16384
    };
    if case.pages == 0 || case.pages > max_pages {
        let on = if max_pages == 1024 { " on hugetlb" } else { "" };
        return Err((
            At::Field("pages"),
            format!("pages must be 1 to {max_pages}{on}, not {}", case.pages),
        ));
    }
    if let Some(n) = case.huge_pages {
        if n == 0 || n > case.pages {
            return Err((
                At::Field("huge_pages"),
                format!("huge_pages must be 1 to pages ({}), not {n}", case.pages),
            ));
        }
    }
    if let Some(n) = case.across_pud {
        if n == 0 || n >= case.pages {
            return Err((
                At::Field("across_pud"),
                format!(
                    "across_pud must be 1 to pages - 1 ({}), not {n}",
                    case.pages - 1
                ),
            ));
        }
    }
    if case.memory.is_empty() {
        return Err((At::Field("memory"), "`memory` lists no memory type".into()));
    }
    let mut seen = Vec::new();
    for m in &case.memory {
        if seen.contains(m) {
            return Err((
                At::Field("memory"),
                format!("memory type `{m}` is listed twice"),
            ));
        }
        seen.push(*m);
    }
    check_modes(&case.register, &case.memory).map_err(|m| (At::Field("register"), m))?;
    if let Some(ms) = case.timeout_ms {
        if ms == 0 || ms > MAX_TIMEOUT_MS {
            return Err((
                At::Field("timeout_ms"),
                format!("timeout_ms must be 1 to {MAX_TIMEOUT_MS}, not {ms}"),
            ));
        }
    }
    if case.steps.is_empty() {
        return Err((At::Field("steps"), "a case needs at least one step".into()));
    }
    let mut marked = false;
    for (i, step) in case.steps.iter().enumerate() {
        validate_step(case, step, false)
            .map_err(|m| (At::Step(i), format!("step {}: {m}", i + 1)))?;
        if let Op::PageTables(t) = &step.op {
            if !t.mark && !marked {
                return Err((
                    At::Step(i),
                    format!("step {}: `page_tables` checks growth since a mark: an earlier step needs `page_tables: {{mark: true}}`", i + 1),
                ));
            }
            marked |= t.mark;
        }
        if let Some(only) = &step.only {
            if let Some(m) = only.iter().find(|m| !case.memory.contains(m)) {
                return Err((
                    At::Step(i),
                    format!(
                        "step {}: `only` names `{m}`, which the case does not run on",
                        i + 1
                    ),
                ));
            }
        }
    }
    if let Some(ef) = &case.expect_failure {
        if ef.step == 0 || ef.step > case.steps.len() {
            return Err((
                At::Field("expect_failure"),
                format!(
                    "expect_failure.step {} is not a step (1..={})",
                    ef.step,
                    case.steps.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The longest time limit a case may ask for: an hour. A larger value is a typo, and would
/// let one stuck trial hold the run for longer than anyone waits.
const MAX_TIMEOUT_MS: u64 = 3_600_000;

fn check_modes(modes: &[RegisterMode], memory: &[MemoryType]) -> Result<(), String> {
    if modes.contains(&RegisterMode::Minor) && memory.contains(&MemoryType::Anon) {
        return Err("register mode `minor` needs shmem or hugetlb memory; anon has no page cache (limit `memory`)".into());
    }
    Ok(())
}

/// What a `stress` step may combine: the model its invariants check must be exact.
fn validate_stress(
    case: &Case,
    s: &super::stress::Stress,
    memory: &[MemoryType],
) -> Result<(), String> {
    use super::stress::{Sabotage, StressOp as O};
    use crate::kernel::features::Feature as F;
    let ops: Vec<O> = s.threads.iter().flat_map(|w| w.ops.clone()).collect();
    let has = |o: O| ops.contains(&o);
    let feature = |f: F| case.features.contains(&f);
    if s.threads.is_empty() || s.threads.iter().any(|w| w.ops.is_empty() || w.count == 0) {
        return Err("`stress` needs threads, each with at least one op and a count above 0".into());
    }
    if s.threads
        .iter()
        .any(|w| w.span == 0 || w.ranges.iter().any(|r| r.span == 0))
    {
        return Err("`span` must be at least 1".into());
    }
    if s.threads
        .iter()
        .any(|w| !w.ranges.is_empty() && (!w.cycle || w.ranges.len() != w.ops.len()))
    {
        return Err(
            "`ranges` gives each op of a `cycle` its range: it needs `cycle: true` and one range per op"
                .into(),
        );
    }
    if s.threads
        .iter()
        .any(|w| w.cycle && w.ops.contains(&O::Close))
    {
        return Err("`close` is done once: not in a `cycle`".into());
    }
    if s.rounds == 0 || !(1..=8).contains(&s.handler.threads) {
        return Err("`rounds` must be at least 1 and `handler.threads` 1 to 8".into());
    }
    if !case.register.contains(&super::model::RegisterMode::Wp)
        || case.register.contains(&super::model::RegisterMode::Minor)
    {
        return Err(
            "`stress` needs the area registered with `wp` (and maybe `missing`), not `minor`"
                .into(),
        );
    }
    if s.threads
        .iter()
        .filter(|w| w.ops.contains(&O::Close))
        .map(|w| w.count)
        .sum::<u32>()
        > 1
    {
        return Err("one thread at most may `close`".into());
    }
    if has(O::Collapse) && (!case.thp || memory.iter().any(|m| m.is_hugetlb())) {
        return Err("`collapse` needs `thp: true` and anon or shmem memory".into());
    }
    if has(O::Dontneed) && memory.contains(&MemoryType::Anon) && !feature(F::WpUnpopulated) {
        return Err("`dontneed` on anon needs `features: [wp_unpopulated]`: without it, protecting a zapped anonymous page does nothing, and the model cannot tell which pages are zapped while writers race".into());
    }
    if feature(F::WpAsync) && (has(O::Dontneed) || has(O::Pageout) || has(O::Copy) || has(O::Close))
    {
        return Err("with `wp_async`, PAGEMAP_SCAN's written set is checked: `dontneed`, `pageout`, `copy` and `close` change it in ways the model does not follow".into());
    }
    if has(O::Fork)
        && s.handler.wait == super::stress::HandlerWait::Read
        && case.register.contains(&super::model::RegisterMode::Missing)
    {
        return Err(
            "a fork child's missing faults are served by polling handlers only: use `wait: poll`"
                .into(),
        );
    }
    // A parent's write to a private huge page a live child shares copies it: the pool (twice
    // the area for hugetlb-private) has a spare page for each only when every page counts.
    if has(O::Fork) && memory.contains(&MemoryType::HugetlbPrivate) && case.huge_pages.is_some() {
        return Err("`fork` races copy-on-write of huge pages: on hugetlb-private the pool needs a spare page for each page, so not with `huge_pages` (or limit with `only`)".into());
    }
    if has(O::Migrate) && !case.needs.contains(&super::model::Need::Root) {
        return Err("`migrate` moves pages with MPOL_MF_MOVE_ALL (also those a fork child shares), which needs root: add `needs: [root]`".into());
    }
    if has(O::Pagemap) && memory.iter().any(|m| m.is_hugetlb()) {
        return Err("`pagemap` reads hugetlb entries without the page table lock, so a racing migration's transient none entry shows (limit `memory` to anon or shmem; the quiescent checks read hugetlb pagemap)".into());
    }
    if (has(O::Scan) || has(O::ScanProtect)) && !feature(F::WpAsync) {
        return Err("`scan` and `scan_protect` check PAGEMAP_SCAN's written set, which only `features: [wp_async]` areas have".into());
    }
    if has(O::Mremap) && (has(O::Pageout) || has(O::Close)) {
        return Err("`mremap` moves the area away for a moment: `pageout` (which takes no lock) would find a hole, and `close` would leave nothing to register again".into());
    }
    match s.sabotage {
        Some(_) if case.expect_failure.is_none() => {
            return Err("`sabotage` is for meta-tests: the case needs `expect_failure`".into())
        }
        Some(Sabotage::ForgeWritten) if !feature(F::WpAsync) => return Err(
            "`forge_written` breaks the WP_ASYNC written check: it needs `features: [wp_async]`"
                .into(),
        ),
        Some(Sabotage::LoseWrite) if !has(O::Write) => {
            return Err("`lose_write` needs a thread that writes".into())
        }
        Some(Sabotage::SkipProtect) if !has(O::Protect) => {
            return Err("`skip_protect` needs a thread that protects".into())
        }
        _ => {}
    }
    Ok(())
}

fn validate_step(case: &Case, step: &Step, in_child: bool) -> Result<(), String> {
    let op = &step.op;
    let memory: Vec<MemoryType> = step.only.clone().unwrap_or_else(|| case.memory.clone());
    let on = |pred: fn(MemoryType) -> bool| {
        memory
            .iter()
            .copied()
            .filter(|m| pred(*m))
            .collect::<Vec<_>>()
    };
    let names = |ms: Vec<MemoryType>| ms.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ");
    for pages in op.page_sets() {
        pages.resolve(case.pages)?;
    }
    if let Op::Write(a) | Op::Read(a) = op {
        if let super::faults::Faults::List(msgs) = &a.faults {
            if let Some(bad) = msgs
                .iter()
                .filter_map(|m| m.page)
                .find(|&p| p >= case.pages)
            {
                return Err(format!(
                    "faults: page {bad} is out of range: the case has {} page{} (0..{})",
                    case.pages,
                    if case.pages == 1 { "" } else { "s" },
                    case.pages
                ));
            }
        }
    }
    if in_child && !op.allowed_in_child() {
        return Err(format!(
            "`{}` cannot run in a fork child (its uffd belongs to the monitor)",
            op.key()
        ));
    }
    match op {
        Op::Register(r) => check_modes(&r.modes, &memory)?,
        Op::Pagemap(p)
            if [p.wp, p.present, p.swapped, p.file, p.exclusive, p.huge]
                .iter()
                .all(Option::is_none) =>
        {
            return Err("`pagemap` checks no bit: name at least one of wp, present, swapped, file, exclusive, huge".into());
        }
        Op::VmFlags(v) if v.has.is_empty() && v.lacks.is_empty() => {
            return Err("`vmflags` checks nothing: name mnemonics in `has` or `lacks`".into());
        }
        Op::VmFlags(v) => {
            if let Some(bad) = v.has.iter().chain(&v.lacks).find(|m| {
                m.len() != 2
                    || !m
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            }) {
                return Err(format!(
                    "`vmflags`: `{bad}` is not a VmFlags mnemonic (two letters, e.g. uw, um, ui)"
                ));
            }
        }
        Op::PageTables(t) => {
            let checks = t.grown_at_most_kb.is_some() || t.grown_at_least_kb.is_some();
            if t.mark == checks {
                return Err("`page_tables` either marks (`mark: true`) or checks growth (`grown_at_most_kb`, `grown_at_least_kb`)".into());
            }
        }
        Op::Write(a) | Op::Read(a) if a.within_ms.is_some() && !a.thread => {
            return Err("`within_ms` is how long a `thread: true` access is waited for: this access runs in the step's own thread".into())
        }
        Op::Write(a) | Op::Read(a) if a.thread && in_child => {
            return Err("a fork child cannot start threads".into())
        }
        Op::Poke(p) => {
            if p.page >= case.pages {
                return Err(format!(
                    "page {} is out of range: the case has {} pages",
                    p.page, case.pages
                ));
            }
            if p.offset >= 4096 {
                return Err(format!(
                    "offset {} must be below 4096 (inside a base page)",
                    p.offset
                ));
            }
        }
        Op::Read(a) | Op::Write(a)
            if a.alias && (a.thread || matches!(a.faults, super::faults::Faults::None).not()) =>
        {
            return Err(
                "an access through the alias raises no message and runs in the main thread".into(),
            );
        }
        Op::ProcMemWrite(p) if p.page >= case.pages || p.offset >= 4096 => {
            return Err(format!(
                "page {} offset {} is outside the area's first 4096 bytes of a page",
                p.page, p.offset
            ));
        }
        Op::Collapse(_) if memory.iter().any(|m| m.is_hugetlb()) || !case.thp => {
            return Err(
                "`collapse` needs `thp: true` and anon or shmem memory (limit with `only`)".into(),
            );
        }
        Op::Swapoff(_) if memory.iter().any(|m| m.is_hugetlb()) => {
            return Err("hugetlb pages are never swapped: `swapoff` applies to anon and shmem (limit with `only`)".into());
        }
        Op::KsmMerge(_) if memory.iter().any(|m| m.is_shared() || m.is_hugetlb()) => {
            return Err("KSM merges private pages only: `ksm_merge` applies to anon and shmem-private (limit with `only`)".into());
        }
        Op::Read(a) | Op::Write(a) if a.alias && memory.contains(&MemoryType::Anon) => {
            return Err(
                "`alias` needs a file behind the memory: anon has none (limit with `only`)".into(),
            );
        }
        Op::Fill(_) | Op::Continue(_) | Op::PunchHole(_) if memory.contains(&MemoryType::Anon) => {
            return Err(format!(
                "`{}` needs a file behind the memory: anon has none (limit with `only`)",
                op.key()
            ));
        }
        Op::SwapOut(_) if !on(MemoryType::is_hugetlb).is_empty() => {
            return Err(format!(
                "hugetlb cannot be swapped out: `swap_out` does not apply to {} (limit with `only`)",
                names(on(MemoryType::is_hugetlb))
            ));
        }
        Op::Move(m) => {
            if memory.iter().any(|m| *m != MemoryType::Anon) {
                return Err("UFFDIO_MOVE works on anon memory only (limit with `only`)".into());
            }
            if m.from.resolve(case.pages)?.len() != m.to.resolve(case.pages)?.len() {
                return Err("`move` needs as many `to` pages as `from` pages".into());
            }
        }
        Op::Stress(s) => validate_stress(case, s, &memory)?,
        Op::Fork(f) => {
            if in_child {
                return Err("a fork child cannot fork again".into());
            }
            if f.steps.is_empty() {
                return Err("`fork` needs at least one child step".into());
            }
            for (j, child) in f.steps.iter().enumerate() {
                if child.only.is_some() {
                    return Err(format!(
                        "child step {}: limit the fork step with `only`, not its child steps",
                        j + 1
                    ));
                }
                validate_step(case, child, true)
                    .map_err(|m| format!("child step {}: {m}", j + 1))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Names must be unique within a topic.
fn check_unique_names(cases: &[LoadedCase], errors: &mut Vec<LoadError>) {
    let mut first: HashMap<String, &LoadedCase> = HashMap::new();
    for c in cases {
        if let Some(prev) = first.get(&c.id()) {
            let text = std::fs::read_to_string(&c.file).unwrap_or_default();
            let doc = doc_index_of(&text, &c.case.name);
            let (line, column) = locate(&text, doc, &At::Field("name"));
            errors.push(LoadError {
                file: c.file.clone(),
                line,
                column,
                message: format!(
                    "case name `{}` is used twice in topic `{}` (first in {})",
                    c.case.name,
                    c.topic,
                    prev.file.display()
                ),
            });
        } else {
            first.insert(c.id(), c);
        }
    }
}

/// The document whose `name` is `name` (the last one, for a duplicate within one file).
fn doc_index_of(text: &str, name: &str) -> usize {
    #[derive(Deserialize)]
    struct NameOnly {
        #[serde(default)]
        name: String,
    }
    serde_saphyr::from_multiple::<NameOnly>(text)
        .ok()
        .and_then(|docs| docs.iter().rposition(|d| d.name == name))
        .unwrap_or(0)
}

/// Finds line and column of a field or step in document `doc`, by parsing again with spans
/// (only on the error path, so loading stays one parse).
fn locate(text: &str, doc: usize, at: &At) -> (u64, u64) {
    #[derive(Deserialize)]
    struct Locator {
        name: Option<Spanned<IgnoredAny>>,
        about: Option<Spanned<IgnoredAny>>,
        refs: Option<Spanned<IgnoredAny>>,
        memory: Option<Spanned<IgnoredAny>>,
        register: Option<Spanned<IgnoredAny>>,
        pages: Option<Spanned<IgnoredAny>>,
        timeout_ms: Option<Spanned<IgnoredAny>>,
        steps: Option<Spanned<Vec<Spanned<IgnoredAny>>>>,
        expect_failure: Option<Spanned<IgnoredAny>>,
    }
    let Ok(docs) = serde_saphyr::from_multiple::<Locator>(text) else {
        return (1, 1);
    };
    let Some(d) = docs.get(doc) else {
        return (1, 1);
    };
    let loc = match at {
        At::Step(i) => d
            .steps
            .as_ref()
            .and_then(|s| s.value.get(*i))
            .map(|s| s.referenced),
        At::Field(f) => {
            let field = |s: &Option<Spanned<IgnoredAny>>| s.as_ref().map(|s| s.referenced);
            match *f {
                "name" => field(&d.name),
                "about" => field(&d.about),
                "refs" => field(&d.refs),
                "memory" => field(&d.memory),
                "register" => field(&d.register),
                "pages" => field(&d.pages),
                "timeout_ms" => field(&d.timeout_ms),
                "steps" => d.steps.as_ref().map(|s| s.referenced),
                "expect_failure" => field(&d.expect_failure),
                _ => None,
            }
        }
    };
    loc.map(|l| (l.line(), l.column())).unwrap_or((1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const GOOD: &str = "\
name: protect-then-write
about: A write to a protected page faults once.
refs: [{thread: 'Re: [PATCH] mm/uffd: UFFD_FEATURE_WP_ZEROPAGE (David Hildenbrand, 2023-03-02)'}]
pages: 2
steps:
  - write: {pages: all}
  - protect: {pages: 0}
  - write: {pages: 0, data: 2, faults: wp}
  - pagemap: {pages: 0, wp: false}
    only: [anon]
";

    fn load(text: &str) -> Result<Vec<LoadedCase>, LoadError> {
        load_str(Path::new("cases/wp/x.yaml"), text)
    }

    #[test]
    fn loads_a_good_case() {
        let cases = load(GOOD).unwrap();
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].id(), "wp::protect-then-write");
        assert_eq!(cases[0].case.memory.len(), 5);
        assert_eq!(cases[0].case.steps.len(), 4);
        assert_eq!(cases[0].case.steps[3].only, Some(vec![MemoryType::Anon]));
    }

    #[test]
    fn round_trips_through_json() {
        let case = load(GOOD).unwrap().remove(0).case;
        let json = serde_json::to_string(&case).unwrap();
        let back: Case = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[rstest]
    #[case::yaml_syntax("name: [x\n", 1, "")]
    #[case::unknown_field(&GOOD.replace("pages: 2", "pages: 2\ncolour: red"), 5, "unknown field `colour`")]
    #[case::unknown_op(&GOOD.replace("- protect: {pages: 0}", "- protekt: {pages: 0}"), 7, "unknown field `protekt`")]
    #[case::two_ops(&GOOD.replace("- protect: {pages: 0}", "- {protect: {pages: 0}, unprotect: {pages: 0}}"), 7, "exactly one operation")]
    #[case::page_out_of_range(&GOOD.replace("- protect: {pages: 0}", "- protect: {pages: 5}"), 7, "page 5 is out of range")]
    #[case::bad_memory(&GOOD.replace("pages: 2", "pages: 2\nmemory: [anon, ram]"), 5, "unknown variant `ram`")]
    #[case::bad_feature(&GOOD.replace("pages: 2", "pages: 2\nfeatures: [wp_turbo]"), 5, "unknown variant `wp_turbo`")]
    #[case::wrong_type(&GOOD.replace("pages: 2", "pages: two"), 4, "")]
    #[case::bad_faults(&GOOD.replace("faults: wp", "faults: wpp"), 8, "unknown variant `wpp`")]
    #[case::only_other_memory(&GOOD.replace("pages: 2", "pages: 2\nmemory: [shmem]"), 10, "does not run on")]
    #[case::minor_on_anon(&GOOD.replace("pages: 2", "pages: 2\nregister: [minor]"), 0, "needs shmem or hugetlb")]
    #[case::only_private_refs(&GOOD.replace("{thread: 'Re: [PATCH] mm/uffd: UFFD_FEATURE_WP_ZEROPAGE (David Hildenbrand, 2023-03-02)'}", "{facts: Messages}"), 3, "at least one public source")]
    #[case::thread_without_date(&GOOD.replace("David Hildenbrand, 2023-03-02)", "David Hildenbrand)"), 3, "must be `SUBJECT (AUTHOR, YYYY-MM-DD)`")]
    #[case::commit_without_id(&GOOD.replace("{thread: 'Re: [PATCH] mm/uffd: UFFD_FEATURE_WP_ZEROPAGE (David Hildenbrand, 2023-03-02)'}", "{commit: 'mm/uffd: UFFD_FEATURE_WP_ZEROPAGE'}"), 3, "the id 12 or more hex digits")]
    #[case::seed_is_gone(&GOOD.replace("{thread: 'Re: [PATCH] mm/uffd: UFFD_FEATURE_WP_ZEROPAGE (David Hildenbrand, 2023-03-02)'}", "{seed: '004'}"), 3, "unknown variant `seed`")]
    #[case::bad_errno(&GOOD.replace("- protect: {pages: 0}", "- protect: {pages: 0, errno: EWHAT}"), 7, "not an errno name")]
    fn reports_errors_with_location(#[case] text: &str, #[case] line: u64, #[case] contains: &str) {
        let err = load(text).unwrap_err();
        if line > 0 {
            assert_eq!(err.line, line, "{err}");
        }
        assert!(err.column > 0, "{err}");
        assert!(err.to_string().contains(contains), "{err}");
        assert!(err.to_string().starts_with("cases/wp/x.yaml:"), "{err}");
    }
}
