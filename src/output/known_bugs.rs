//! Known kernel bugs (`known-bugs.yaml`, compiled in): versioned data saying which trials fail on
//! which kernels because the kernel is wrong. A failing trial that an entry applying to the
//! kernel covers is XFAIL with the entry's id; a covered trial that passes is XPASS. Kernels are
//! named by version ranges and release patterns, never by one exact `uname -r`, so the list
//! holds on every build of a kernel line. Format: docs/known-bugs.md.

use std::cmp::Ordering;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kernel::memory::MemoryType;

/// The list the suite ships.
pub const BUILTIN: &str = include_str!("../../known-bugs.yaml");
/// Its name in messages.
pub const BUILTIN_FILE: &str = "known-bugs.yaml";

/// One known kernel bug.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownBug {
    /// Stable identifier, lower-case words joined by `-` (shown in every report).
    pub id: String,
    /// One line: what is wrong.
    pub summary: String,
    /// The trials it makes fail.
    pub trials: Vec<TrialSelector>,
    /// What the kernel does wrong, as user space sees it.
    pub what: String,
    /// Why: the code path.
    pub why: String,
    /// Where it comes from: "found by this suite", an upstream report, a CVE.
    pub origin: String,
    /// The fix, if there is one (null: none yet).
    pub fix: Option<Fix>,
    /// The kernels that have the bug: any item matching is enough.
    pub kernels: Vec<KernelMatch>,
    /// Kernels inside `kernels` that do not have it (e.g. a distribution's backport).
    #[serde(default)]
    pub except: Vec<KernelMatch>,
    /// Links a reader can open.
    #[serde(default)]
    pub refs: Vec<String>,
}

/// Which trials an entry covers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrialSelector {
    /// `topic::case`: its trials on `memory` (default: every memory type).
    pub case: Option<String>,
    /// One trial by its full name (e.g. `vm::kernel-log::console`).
    pub trial: Option<String>,
    /// With `case`: only these memory types.
    pub memory: Option<OneOrMany>,
    /// The bug shows in some runs of the trial only (a race): its passes are expected and
    /// reported quietly, and tools that compare runs (`ci/mutate`) treat the trial as flaky.
    #[serde(default)]
    pub race: bool,
    /// The known failure's signature: text its failure message contains (one string, or a
    /// list whose every item must appear). A failure without it is another failure, not this
    /// bug (FAIL, not XFAIL); a pass is still XPASS.
    pub message: Option<Signature>,
}

/// The text a known failure's message contains.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Signature {
    /// One piece of text.
    One(String),
    /// Pieces of text that must all appear (e.g. the step, then what it saw).
    All(Vec<String>),
}

impl Signature {
    fn found_in(&self, message: &str) -> bool {
        match self {
            Signature::One(t) => message.contains(t.as_str()),
            Signature::All(ts) => ts.iter().all(|t| message.contains(t.as_str())),
        }
    }
}

/// One memory type or a list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single memory type.
    One(MemoryType),
    /// A list of memory types.
    Many(Vec<MemoryType>),
}

impl OneOrMany {
    fn contains(&self, m: MemoryType) -> bool {
        match self {
            OneOrMany::One(x) => *x == m,
            OneOrMany::Many(v) => v.contains(&m),
        }
    }
}

/// A fix.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fix {
    /// The commit id (12 hex digits or more).
    pub commit: Option<String>,
    /// Its subject line.
    pub title: Option<String>,
    /// The first upstream release with it.
    pub upstream: Option<String>,
    /// Distribution releases that carry it.
    #[serde(default)]
    pub distributions: Vec<String>,
    /// A proposed patch in this repository, for bugs without an upstream fix.
    pub patch: Option<String>,
}

/// A set of kernels: exactly one of the three fields.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelMatch {
    /// Upstream version range: comparisons joined by `,` (`">= 6.2, < 6.9"`), a wildcard
    /// (`"6.12.*"`) or an inclusive span (`"6.1 .. 6.8"`).
    pub upstream: Option<String>,
    /// Debian kernel version range, same syntax over Debian's numbers (`6.1.0-55`, `6.12.117`);
    /// matches Debian kernels only.
    pub debian: Option<String>,
    /// A pattern over `uname -r`: `*` matches any run of characters.
    pub release: Option<String>,
}

/// The kernel a run judged, as matching needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KernelId {
    /// `uname -r`.
    pub release: String,
    /// `uname -v` (empty when unknown).
    pub version: String,
}

impl KernelId {
    /// Whether this is a Debian kernel (its `uname -v` or its release string says so).
    pub fn is_debian(&self) -> bool {
        self.version.contains("Debian ")
            || self.release.contains("+deb")
            || debian_61_abi(&self.release).is_some()
    }

    /// The upstream version: Debian's `uname -v` names it (`Debian 6.1.158-1`); otherwise the
    /// leading numbers of the release string.
    pub fn upstream(&self) -> Option<Vec<u64>> {
        if let Some(at) = self.version.find("Debian ") {
            if let Some(v) = leading_version(&self.version[at + 7..]) {
                return Some(v);
            }
        }
        leading_version(&self.release)
    }

    /// Debian's own number: `6.1.0-47-cloud-amd64` is 6.1.0-47, `6.12.117+deb12-…` is 6.12.117.
    pub fn debian(&self) -> Option<Vec<u64>> {
        if !self.is_debian() {
            return None;
        }
        debian_61_abi(&self.release).or_else(|| leading_version(&self.release))
    }
}

/// `6.1.0-47-…` as [6, 1, 0, 47].
fn debian_61_abi(release: &str) -> Option<Vec<u64>> {
    let mut parts = release.splitn(3, '-');
    let v = parts.next()?;
    let abi = parts.next()?;
    parts.next()?; // the flavour (cloud-amd64)
    let mut out = parse_version(v).ok()?;
    if out.len() != 3 {
        return None;
    }
    out.push(abi.parse().ok()?);
    Some(out)
}

/// The `X.Y[.Z]` a string starts with.
fn leading_version(s: &str) -> Option<Vec<u64>> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    parse_version(s[..end].trim_end_matches('.')).ok()
}

/// `6.1.0-55` or `6.12` as numbers.
fn parse_version(s: &str) -> Result<Vec<u64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty version".into());
    }
    s.split(['.', '-'])
        .map(|p| {
            p.parse::<u64>()
                .map_err(|_| format!("`{s}` is not a version (numbers joined by `.` or `-`)"))
        })
        .collect()
}

/// Versions compare as number lists; a missing number is 0 (`6.9` = `6.9.0`).
fn cmp_version(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            a.get(i)
                .copied()
                .unwrap_or(0)
                .cmp(&b.get(i).copied().unwrap_or(0))
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// A parsed version range.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Range {
    /// Every comparison must hold.
    All(Vec<(Op, Vec<u64>)>),
    /// `6.12.*`: versions starting with these numbers.
    Prefix(Vec<u64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Range {
    fn parse(s: &str) -> Result<Range, String> {
        let s = s.trim();
        if let Some(prefix) = s.strip_suffix(".*") {
            return Ok(Range::Prefix(parse_version(prefix)?));
        }
        if let Some((lo, hi)) = s.split_once("..") {
            return Ok(Range::All(vec![
                (Op::Ge, parse_version(lo)?),
                (Op::Le, parse_version(hi)?),
            ]));
        }
        let mut all = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (op, rest) = [
                ("<=", Op::Le),
                (">=", Op::Ge),
                ("<", Op::Lt),
                (">", Op::Gt),
                ("=", Op::Eq),
            ]
            .into_iter()
            .find_map(|(p, op)| part.strip_prefix(p).map(|r| (op, r)))
            .ok_or_else(|| {
                format!("`{part}` is not a comparison (`>= 6.2`, `< 6.9`), a wildcard (`6.12.*`) or a span (`6.1 .. 6.8`)")
            })?;
            all.push((op, parse_version(rest)?));
        }
        Ok(Range::All(all))
    }

    fn contains(&self, v: &[u64]) -> bool {
        match self {
            Range::Prefix(p) => v.len() >= p.len() && v[..p.len()] == p[..],
            Range::All(all) => all.iter().all(|(op, b)| {
                let o = cmp_version(v, b);
                match op {
                    Op::Lt => o.is_lt(),
                    Op::Le => o.is_le(),
                    Op::Gt => o.is_gt(),
                    Op::Ge => o.is_ge(),
                    Op::Eq => o.is_eq(),
                }
            }),
        }
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            s.starts_with(head)
                && (0..=s.len() - head.len())
                    .any(|i| s.is_char_boundary(head.len() + i) && glob(tail, &s[head.len() + i..]))
        }
    }
}

impl KernelMatch {
    /// Whether `k` is in this set. Ranges were checked at load.
    pub fn matches(&self, k: &KernelId) -> bool {
        let range = |r: &str| Range::parse(r).ok();
        if let Some(r) = &self.upstream {
            return k
                .upstream()
                .zip(range(r))
                .is_some_and(|(v, r)| r.contains(&v));
        }
        if let Some(r) = &self.debian {
            return k
                .debian()
                .zip(range(r))
                .is_some_and(|(v, r)| r.contains(&v));
        }
        if let Some(p) = &self.release {
            return glob(p, &k.release);
        }
        false
    }

    fn check(&self) -> Result<(), String> {
        match (&self.upstream, &self.debian, &self.release) {
            (Some(r), None, None) | (None, Some(r), None) => Range::parse(r).map(|_| ()),
            (None, None, Some(p)) if !p.trim().is_empty() => Ok(()),
            _ => Err("a kernel set names exactly one of `upstream`, `debian`, `release`".into()),
        }
    }
}

impl TrialSelector {
    fn matches(&self, trial: &str, memory: MemoryType, message: Option<&str>) -> bool {
        let named = match (&self.trial, &self.case) {
            (Some(t), _) => t == trial,
            (None, Some(c)) => {
                trial
                    .strip_suffix(memory.name())
                    .and_then(|t| t.strip_suffix("::"))
                    == Some(c.as_str())
                    && self.memory.as_ref().is_none_or(|m| m.contains(memory))
            }
            (None, None) => false,
        };
        // `message` is None for a pass: the signature only sorts failures.
        named
            && self
                .message
                .as_ref()
                .is_none_or(|want| message.is_none_or(|m| want.found_in(m)))
    }

    fn check(&self) -> Result<(), String> {
        match (&self.trial, &self.case) {
            (Some(_), Some(_)) => Err("a trial selector names `trial` or `case`, not both".into()),
            (None, None) => Err("a trial selector names `trial` or `case`".into()),
            (Some(_), None) if self.memory.is_some() => Err(
                "`memory` goes with `case`; a `trial` name already ends in its memory type".into(),
            ),
            (None, Some(c)) if c.split("::").count() != 2 => {
                Err(format!("case `{c}` is not `topic::case`"))
            }
            _ => Ok(()),
        }
    }

    /// The case name this selector names, if it names a case.
    pub fn case_name(&self) -> Option<&str> {
        self.case.as_deref()
    }
}

impl KnownBug {
    /// Whether the kernel has this bug, by the entry's kernel sets.
    pub fn applies_to(&self, k: &KernelId) -> bool {
        self.kernels.iter().any(|m| m.matches(k)) && !self.except.iter().any(|m| m.matches(k))
    }

    /// Whether a selector naming this trial says the bug is a race there.
    pub fn race_in(&self, trial: &str, memory: MemoryType) -> bool {
        self.trials
            .iter()
            .any(|s| s.race && s.matches(trial, memory, None))
    }

    /// Whether the entry covers this trial (and its failure message, for `message` selectors).
    pub fn covers(&self, trial: &str, memory: MemoryType, message: Option<&str>) -> bool {
        self.trials
            .iter()
            .any(|s| s.matches(trial, memory, message))
    }

    /// The link a report shows: the fix's patch or the first ref.
    pub fn link(&self) -> Option<String> {
        self.refs.first().cloned()
    }

    fn check(&self) -> Result<(), String> {
        let id_ok = !self.id.is_empty()
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !id_ok {
            return Err(format!(
                "id `{}` is not lower-case words joined by `-`",
                self.id
            ));
        }
        for (field, text) in [
            ("summary", &self.summary),
            ("what", &self.what),
            ("why", &self.why),
            ("origin", &self.origin),
        ] {
            if text.trim().is_empty() {
                return Err(format!("`{field}` is empty"));
            }
        }
        if self.trials.is_empty() {
            return Err("`trials` names no trial".into());
        }
        if self.kernels.is_empty() {
            return Err("`kernels` is empty: say which kernels have the bug (`upstream: \">= 5.7\"` for every kernel to date)".into());
        }
        for t in &self.trials {
            t.check()?;
        }
        for k in self.kernels.iter().chain(&self.except) {
            k.check()?;
        }
        if let Some(c) = self.fix.as_ref().and_then(|f| f.commit.as_ref()) {
            if c.len() < 12 || !c.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("fix commit `{c}` is not 12 or more hex digits"));
            }
        }
        Ok(())
    }
}

/// A loaded list.
#[derive(Debug, Clone, Default)]
pub struct KnownBugs {
    /// The file the list was loaded from.
    pub file: String,
    /// The known bugs, in file order.
    pub bugs: Vec<KnownBug>,
}

/// What the run record keeps of the entry a trial matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KnownBugMatch {
    /// The bug's id.
    pub id: String,
    /// The bug's one-line summary.
    pub summary: String,
    /// A link to the bug report or fix, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The bug is a race in this trial: a pass says nothing about a fix.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub race: bool,
}

impl KnownBugMatch {
    /// The entry `b` as it covers this trial.
    pub fn new(b: &KnownBug, trial: &str, memory: MemoryType) -> KnownBugMatch {
        KnownBugMatch {
            id: b.id.clone(),
            summary: b.summary.clone(),
            link: b.link(),
            race: b.race_in(trial, memory),
        }
    }
}

impl KnownBugs {
    /// The list compiled into the suite.
    pub fn builtin() -> Result<KnownBugs, String> {
        KnownBugs::parse(BUILTIN_FILE, BUILTIN)
    }

    /// Parses a list named `file` (for messages); every error is `file:line:column: message`.
    pub fn parse(file: &str, text: &str) -> Result<KnownBugs, String> {
        let bugs: Vec<KnownBug> = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or_default();
            format!("{file}:{line}:{column}: {first} (see docs/known-bugs.md)")
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, b) in bugs.iter().enumerate() {
            let at = entry_position(text, i, &b.id);
            b.check()
                .map_err(|m| format!("{file}:{at}: entry `{}`: {m}", b.id))?;
            if !seen.insert(b.id.clone()) {
                return Err(format!("{file}:{at}: entry `{}`: id used twice", b.id));
            }
        }
        Ok(KnownBugs {
            file: file.to_string(),
            bugs,
        })
    }

    /// The entries that apply to kernel `k`.
    pub fn for_kernel(&self, k: &KernelId) -> KnownBugs {
        KnownBugs {
            file: self.file.clone(),
            bugs: self
                .bugs
                .iter()
                .filter(|b| b.applies_to(k))
                .cloned()
                .collect(),
        }
    }

    /// The first entry that covers this trial.
    pub fn lookup(
        &self,
        trial: &str,
        memory: MemoryType,
        message: Option<&str>,
    ) -> Option<&KnownBug> {
        self.bugs.iter().find(|b| b.covers(trial, memory, message))
    }

    /// The entries as the JSON schema documents them (`uffd-conform schema --known-bugs`).
    pub fn json_schema() -> String {
        let generator = schemars::generate::SchemaSettings::draft07().into_generator();
        let schema = generator.into_root_schema_for::<Vec<KnownBug>>();
        let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
        text.push('\n');
        text
    }
}

/// `line:column` of entry `index` (its `- id:` line), for semantic errors.
fn entry_position(text: &str, index: usize, id: &str) -> String {
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('-') {
            if n == index {
                let col = line.find(id).map(|c| c + 1).unwrap_or(1);
                return format!("{}:{col}", i + 1);
            }
            n += 1;
        }
    }
    "0:0".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn k(release: &str, version: &str) -> KernelId {
        KernelId {
            release: release.into(),
            version: version.into(),
        }
    }

    #[rstest]
    #[case("6.18.44-fc-v657", "", Some(vec![6, 18, 44]), None)]
    #[case("6.18.44-fc-v1045", "#1 SMP", Some(vec![6, 18, 44]), None)]
    #[case(
        "6.1.0-47-cloud-amd64",
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-11-09)",
        Some(vec![6, 1, 158]),
        Some(vec![6, 1, 0, 47])
    )]
    #[case("6.1.0-55-cloud-amd64", "", Some(vec![6, 1, 0]), Some(vec![6, 1, 0, 55]))]
    #[case(
        "6.12.117+deb12-cloud-amd64",
        "#1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~bpo12+1",
        Some(vec![6, 12, 117]),
        Some(vec![6, 12, 117])
    )]
    #[case("6.9.0-rc3", "", Some(vec![6, 9, 0]), None)]
    #[case("6.13.0", "", Some(vec![6, 13, 0]), None)]
    fn versions_of_release_strings(
        #[case] release: &str,
        #[case] version: &str,
        #[case] upstream: Option<Vec<u64>>,
        #[case] debian: Option<Vec<u64>>,
    ) {
        let id = k(release, version);
        assert_eq!(id.upstream(), upstream, "{release}");
        assert_eq!(id.debian(), debian, "{release}");
    }

    #[rstest]
    #[case(">= 6.2, < 6.9", "6.2", true)]
    #[case(">= 6.2, < 6.9", "6.8.12", true)]
    #[case(">= 6.2, < 6.9", "6.9", false)]
    #[case(">= 6.2, < 6.9", "6.1.158", false)]
    #[case("< 6.9", "6.10.1", false)]
    #[case("6.12.*", "6.12.117", true)]
    #[case("6.12.*", "6.1.0-47", false)]
    #[case("6.1.0-47 .. 6.1.0-54", "6.1.0-54", true)]
    #[case("6.1.0-47 .. 6.1.0-54", "6.1.0-55", false)]
    #[case(">= 6.1.0-55, < 6.2", "6.1.0-57", true)]
    #[case("= 6.18.44", "6.18.44", true)]
    fn ranges(#[case] range: &str, #[case] v: &str, #[case] inside: bool) {
        let r = Range::parse(range).expect("parses");
        assert_eq!(
            r.contains(&parse_version(v).unwrap()),
            inside,
            "{v} in {range}"
        );
    }

    #[test]
    fn release_patterns_never_need_the_exact_string() {
        let m = KernelMatch {
            upstream: None,
            debian: None,
            release: Some("6.18.*-fc-*".into()),
        };
        assert!(m.matches(&k("6.18.44-fc-v657", "")));
        assert!(m.matches(&k("6.18.44-fc-v1045", "")));
        assert!(!m.matches(&k("6.12.117+deb12-cloud-amd64", "")));
        assert!(glob("a*b*c", "axxbyyc") && !glob("a*b*c", "axxbyy"));
    }

    const LIST: &str = "\
- id: close-bug
  summary: close keeps protection
  trials:
    - case: regressions::close
  what: w
  why: y
  origin: upstream
  fix: {commit: c88033efe9a3, upstream: \"6.9\", distributions: [Debian 6.1.0-55]}
  kernels:
    - upstream: \">= 5.7, < 6.9\"
  except:
    - debian: \">= 6.1.0-55, < 6.2\"
- id: warn-bug
  summary: a warning
  trials:
    - trial: vm::kernel-log::console
      message: at mm/mprotect.c
    - case: ksm::merge
      memory: [anon, shmem-private]
  what: w
  why: y
  origin: found by this suite
  fix: null
  kernels:
    - release: \"6.18.*\"
    - debian: \"6.12.*\"
";

    #[test]
    fn entries_apply_by_version_and_distribution() {
        let list = KnownBugs::parse("k.yaml", LIST).expect("parses");
        let ids = |r: &str, v: &str| -> Vec<String> {
            list.for_kernel(&k(r, v))
                .bugs
                .into_iter()
                .map(|b| b.id)
                .collect()
        };
        let deb = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1";
        assert_eq!(ids("6.1.0-47-cloud-amd64", deb), ["close-bug"]);
        assert!(ids("6.1.0-55-cloud-amd64", deb).is_empty(), "backported");
        assert!(
            ids("6.1.0-57-cloud-amd64", deb).is_empty(),
            "still backported"
        );
        assert_eq!(ids("6.8.1", ""), ["close-bug"]);
        assert_eq!(ids("6.18.44-fc-v1045", ""), ["warn-bug"]);
        assert_eq!(
            ids("6.12.118+deb12-cloud-amd64", "Debian 6.12.118-1"),
            ["warn-bug"]
        );
    }

    #[test]
    fn selectors_cover_cases_trials_and_messages() {
        let list = KnownBugs::parse("k.yaml", LIST).expect("parses");
        let hit = |t: &str, m: MemoryType, msg: Option<&str>| {
            list.lookup(t, m, msg).map(|b| b.id.as_str())
        };
        assert_eq!(
            hit("regressions::close::hugetlb", MemoryType::Hugetlb, None),
            Some("close-bug")
        );
        assert_eq!(
            hit("regressions::closed::anon", MemoryType::Anon, None),
            None
        );
        assert_eq!(
            hit("ksm::merge::anon", MemoryType::Anon, None),
            Some("warn-bug")
        );
        assert_eq!(hit("ksm::merge::shmem", MemoryType::Shmem, None), None);
        let warn = "kernel WARNING at console line 3: WARNING: CPU: 0 PID: 1 at mm/mprotect.c:367";
        assert_eq!(
            hit("vm::kernel-log::console", MemoryType::Anon, Some(warn)),
            Some("warn-bug")
        );
        assert_eq!(
            hit(
                "vm::kernel-log::console",
                MemoryType::Anon,
                Some("BUG at mm/memory.c")
            ),
            None,
            "another kernel problem is not this bug"
        );
        assert_eq!(
            hit("vm::kernel-log::console", MemoryType::Anon, None),
            Some("warn-bug"),
            "a pass of a trial with a signature is XPASS"
        );
    }

    #[rstest]
    #[case(
        "- id: a\n  summary: s\n",
        "k.yaml:2:3: error: line 2 column 3: missing field `trials`"
    )]
    #[case(LIST.replace("origin: upstream", "origin: upstream\n  color: red"), "k.yaml:")]
    #[case(LIST.replace("\">= 5.7, < 6.9\"", "\"about 6.8\""), "k.yaml:1:7: entry `close-bug`: `about 6.8` is not a comparison")]
    #[case(LIST.replace("id: warn-bug", "id: close-bug"), "k.yaml:13:7: entry `close-bug`: id used twice")]
    #[case(LIST.replace("id: warn-bug", "id: Warn_Bug"), "k.yaml:13:7: entry `Warn_Bug`: id")]
    #[case(LIST.replace("c88033efe9a3", "c880"), "fix commit `c880`")]
    #[case(LIST.replace("case: regressions::close", "case: close"), "case `close` is not `topic::case`")]
    #[case(LIST.replace("- release: \"6.18.*\"", "- {release: \"6.18.*\", upstream: \"6.18.*\"}"), "exactly one of")]
    #[case(LIST.replace("memory: [anon, shmem-private]", "memory: [anno]"), "k.yaml:")]
    fn bad_lists_are_clear_errors(#[case] text: String, #[case] want: &str) {
        let err = KnownBugs::parse("k.yaml", &text).expect_err("must be rejected");
        assert!(err.contains(want), "{err}");
        assert!(err.starts_with("k.yaml:"), "{err}");
    }

    #[test]
    fn the_shipped_list_parses_and_never_names_one_exact_release() {
        let list = KnownBugs::builtin().expect("known-bugs.yaml parses");
        assert!(list.bugs.len() >= 6);
        for b in &list.bugs {
            for m in b.kernels.iter().chain(&b.except) {
                if let Some(p) = &m.release {
                    assert!(
                        p.contains('*'),
                        "{}: release pattern `{p}` names one kernel",
                        b.id
                    );
                }
            }
        }
        let host = |r: &str| KernelId {
            release: r.into(),
            version: "#1 SMP PREEMPT_DYNAMIC".into(),
        };
        for r in ["6.18.44-fc-v657", "6.18.44-fc-v1045", "6.18.44-fc-v9"] {
            let ids: Vec<String> = list
                .for_kernel(&host(r))
                .bugs
                .into_iter()
                .map(|b| b.id)
                .collect();
            assert_eq!(
                ids,
                [
                    "ksm-merge-drops-uffd-wp",
                    "writeprotect-enomem-lost-past-pud",
                    "reregister-without-wp-keeps-uffd-wp",
                    "pagemap-scan-wp-loses-protection-of-migrating-page",
                    "pagemap-scan-hugetlb-misses-written-page-under-migration"
                ],
                "{r}"
            );
        }
    }
}
