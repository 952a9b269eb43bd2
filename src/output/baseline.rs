//! Known failures (`--baseline FILE`): a failing trial listed there is XFAIL and does not fail
//! the run; a listed trial that passes is XPASS, reported so the entry can be removed.
//!
//! ```yaml
//! - trial: wp::protect-twice-faults-once::hugetlb-private   # one trial
//!   reason: "private hugetlb loses the marker on fork"
//!   link: https://bugs.example/123
//! - case: pagemap::wp-bit-follows-protection                # every memory type of a case,
//!   memory: [shmem, shmem-private]                          # or only these
//!   reason: "bit 57 not shown for shmem before 6.x"
//! ```

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kernel::memory::MemoryType;

/// One entry as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    trial: Option<String>,
    case: Option<String>,
    memory: Option<OneOrMany>,
    reason: Option<String>,
    link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(MemoryType),
    Many(Vec<MemoryType>),
}

/// What an entry selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selects {
    /// `topic::case::memory`.
    Trial(String),
    /// `topic::case`, on these memory types (empty: all).
    Case {
        /// The case, `topic::case`.
        case: String,
        /// The memory types (empty: all).
        memory: Vec<MemoryType>,
    },
}

/// One baseline entry: what it selects and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The trials the entry covers.
    pub selects: Selects,
    /// Why the trials are expected to fail.
    pub reason: String,
    /// A link to the bug, if given.
    pub link: Option<String>,
}

impl Entry {
    /// The entry as a person would name it: the trial, or `topic::case` with its memory types.
    pub fn label(&self) -> String {
        match &self.selects {
            Selects::Trial(t) => t.clone(),
            Selects::Case { case, memory } if memory.is_empty() => {
                format!("{case} (all memory types)")
            }
            Selects::Case { case, memory } => {
                format!(
                    "{case} ({})",
                    memory
                        .iter()
                        .map(|m| m.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        }
    }

    fn matches(&self, trial: &str, memory: MemoryType) -> bool {
        match &self.selects {
            Selects::Trial(t) => t == trial,
            Selects::Case { case, memory: only } => {
                trial
                    .strip_suffix(memory.name())
                    .and_then(|t| t.strip_suffix("::"))
                    == Some(case.as_str())
                    && (only.is_empty() || only.contains(&memory))
            }
        }
    }
}

/// A loaded baseline.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    /// The file the baseline was loaded from.
    pub file: String,
    /// The entries, in file order.
    pub entries: Vec<Entry>,
    /// XPASS fails the run (`--strict-baseline`).
    pub strict: bool,
}

/// What the run record keeps of the entry a trial matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BaselineMatch {
    /// The entry: a trial name, or `topic::case (memory types)`.
    pub entry: String,
    /// The entry's reason.
    pub reason: String,
    /// The entry's link, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Baseline {
    /// Loads and checks a baseline file; `strict` makes XPASS on its entries fail the run.
    pub fn load(path: &Path, strict: bool) -> Result<Baseline, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Baseline::parse(&path.display().to_string(), &text, strict)
    }

    /// Parses a baseline named `file` (for messages); errors are `file:line:column: message`
    /// or `file: entry N: message`.
    pub fn parse(file: &str, text: &str, strict: bool) -> Result<Baseline, String> {
        let raw: Vec<RawEntry> = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            Vec::new()
        } else {
            serde_saphyr::from_str(text).map_err(|e| {
                let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
                let msg = e.to_string();
                let first = msg.lines().next().unwrap_or_default();
                format!("{file}:{line}:{column}: {first} (a baseline is a list of {{trial or case, memory, reason, link}})")
            })?
        };
        let entries = raw
            .into_iter()
            .enumerate()
            .map(|(i, r)| check(r).map_err(|m| format!("{file}: entry {}: {m}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Baseline {
            file: file.to_string(),
            entries,
            strict,
        })
    }

    /// The first entry that lists this trial.
    pub fn lookup(&self, trial: &str, memory: MemoryType) -> Option<&Entry> {
        self.entries.iter().find(|e| e.matches(trial, memory))
    }

    /// Entries that match none of `trials` (name, memory): stale, or misspelt.
    pub fn unmatched<'a>(&'a self, trials: &[(&str, MemoryType)]) -> Vec<&'a Entry> {
        self.entries
            .iter()
            .filter(|e| !trials.iter().any(|(t, m)| e.matches(t, *m)))
            .collect()
    }
}

impl From<&Entry> for BaselineMatch {
    fn from(e: &Entry) -> BaselineMatch {
        BaselineMatch {
            entry: e.label(),
            reason: e.reason.clone(),
            link: e.link.clone(),
        }
    }
}

fn check(r: RawEntry) -> Result<Entry, String> {
    let reason = match r.reason {
        Some(s) if !s.trim().is_empty() => s,
        _ => return Err("`reason` is required: say why the failure is known".into()),
    };
    let memory = match r.memory {
        None => vec![],
        Some(OneOrMany::One(m)) => vec![m],
        Some(OneOrMany::Many(m)) => m,
    };
    let selects = match (r.trial, r.case) {
        (Some(t), None) => {
            if !memory.is_empty() {
                return Err(
                    "`memory` goes with `case`; a `trial` name already ends in its memory type"
                        .into(),
                );
            }
            let parts: Vec<&str> = t.split("::").collect();
            let known = parts
                .last()
                .is_some_and(|m| MemoryType::ALL.iter().any(|k| k.name() == *m));
            if parts.len() != 3 || !known {
                return Err(format!(
                    "trial `{t}` is not `topic::case::memory` with a memory type of {}",
                    memory_names()
                ));
            }
            Selects::Trial(t)
        }
        (None, Some(c)) => {
            if c.split("::").count() != 2 {
                return Err(format!("case `{c}` is not `topic::case`"));
            }
            Selects::Case { case: c, memory }
        }
        (Some(_), Some(_)) => return Err("name either `trial` or `case`, not both".into()),
        (None, None) => {
            return Err("name the `trial` (topic::case::memory) or the `case` (topic::case)".into())
        }
    };
    Ok(Entry {
        selects,
        reason,
        link: r.link,
    })
}

fn memory_names() -> String {
    MemoryType::ALL
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const GOOD: &str = "\
- trial: wp::a::hugetlb-private
  reason: known
  link: https://example.org/1
- case: pagemap::b
  memory: [shmem, shmem-private]
  reason: also known
- case: pagemap::c
  memory: anon
  reason: one type
";

    #[test]
    fn selects_trials_and_cases_by_memory() {
        let b = Baseline::parse("b.yaml", GOOD, false).expect("parses");
        assert_eq!(b.entries.len(), 3);
        let hit = b
            .lookup("wp::a::hugetlb-private", MemoryType::HugetlbPrivate)
            .expect("trial entry");
        assert_eq!(hit.link.as_deref(), Some("https://example.org/1"));
        assert!(b.lookup("wp::a::hugetlb", MemoryType::Hugetlb).is_none());
        assert!(b.lookup("pagemap::b::shmem", MemoryType::Shmem).is_some());
        assert!(b.lookup("pagemap::b::anon", MemoryType::Anon).is_none());
        assert!(
            b.lookup("pagemap::bb::shmem", MemoryType::Shmem).is_none(),
            "a case name is not a prefix"
        );
        assert!(b.lookup("pagemap::c::anon", MemoryType::Anon).is_some());
        assert_eq!(b.entries[1].label(), "pagemap::b (shmem, shmem-private)");
        let unmatched = b.unmatched(&[("pagemap::c::anon", MemoryType::Anon)]);
        assert_eq!(unmatched.len(), 2);
    }

    #[test]
    fn an_empty_or_comment_only_file_lists_nothing() {
        assert!(Baseline::parse("b", "# nothing known\n\n", false)
            .expect("parses")
            .entries
            .is_empty());
    }

    #[rstest]
    #[case("- trial: wp::a::anon\n", "entry 1: `reason` is required")]
    #[case("- trial: wp::a\n  reason: r\n", "is not `topic::case::memory`")]
    #[case("- trial: wp::a::huge\n  reason: r\n", "is not `topic::case::memory`")]
    #[case("- case: wp\n  reason: r\n", "case `wp` is not `topic::case`")]
    #[case("- reason: r\n", "name the `trial`")]
    #[case("- trial: wp::a::anon\n  case: wp::a\n  reason: r\n", "not both")]
    #[case(
        "- trial: wp::a::anon\n  memory: anon\n  reason: r\n",
        "`memory` goes with `case`"
    )]
    #[case("- case: wp::a\n  memory: [anno]\n  reason: r\n", "b.yaml:")]
    #[case("- case: wp::a\n  reasn: r\n", "b.yaml:2:")]
    #[case("trial: wp::a::anon\n", "b.yaml:")]
    fn bad_entries_are_clear_errors(#[case] text: &str, #[case] want: &str) {
        let err = Baseline::parse("b.yaml", text, false).expect_err("must be rejected");
        assert!(err.contains(want), "{err}");
        assert!(err.starts_with("b.yaml"), "{err}");
    }
}
