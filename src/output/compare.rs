//! `uffd-conform compare A.json B.json`: what changed between two runs, as a markdown table a
//! release manager can read in a terminal or paste into a ticket. A regression is a trial that
//! fails in B (not XFAIL) and did not fail in A, including a trial new in B that fails.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

use super::record::{RunRecord, Status, TrialRecord};

/// One trial that changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub before: Option<Status>,
    pub after: Option<Status>,
    /// B's failure message or skip reason (A's for missing trials), on one line.
    pub detail: String,
}

#[derive(Debug, Default, PartialEq)]
pub struct Comparison {
    /// Fails in B, did not fail in A (or is new in B): the regressions.
    pub newly_failing: Vec<Row>,
    /// Passes in B (PASS or XPASS), did not pass in A.
    pub newly_passing: Vec<Row>,
    /// Skipped in B, ran in A.
    pub newly_skipped: Vec<Row>,
    /// In A, not in B (a smaller selection, or a removed case).
    pub missing: Vec<Row>,
    /// Any other change of status (FAIL to XFAIL, new trials that pass or skip, ...).
    pub other: Vec<Row>,
    pub unchanged: usize,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.newly_failing.len()
    }
}

fn passes(s: Status) -> bool {
    matches!(s, Status::Pass | Status::Xpass)
}

pub fn compare(a: &RunRecord, b: &RunRecord) -> Comparison {
    let before: BTreeMap<&str, &TrialRecord> =
        a.trials.iter().map(|t| (t.name.as_str(), t)).collect();
    let after: BTreeMap<&str, &TrialRecord> =
        b.trials.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut c = Comparison::default();
    for (name, t) in &before {
        if !after.contains_key(name) {
            c.missing.push(Row {
                name: name.to_string(),
                before: Some(t.status),
                after: None,
                detail: detail(t),
            });
        }
    }
    for (name, tb) in &after {
        let sa = before.get(name).map(|t| t.status);
        let sb = tb.status;
        let row = Row {
            name: name.to_string(),
            before: sa,
            after: Some(sb),
            detail: detail(tb),
        };
        if sa == Some(sb) {
            c.unchanged += 1;
        } else if sb == Status::Fail {
            c.newly_failing.push(row);
        } else if passes(sb) && sa.is_some_and(|s| !passes(s)) {
            c.newly_passing.push(row);
        } else if sb == Status::Skip && sa.is_some() {
            c.newly_skipped.push(row);
        } else if sa.is_some_and(passes) && passes(sb) {
            c.unchanged += 1; // PASS <-> XPASS: the kernel did the same; only the baseline differs
        } else {
            c.other.push(row);
        }
    }
    c
}

/// The message or skip reason on one line, shortened for a table cell.
fn detail(t: &TrialRecord) -> String {
    let text = match t.status {
        Status::Fail | Status::Xfail => t.message.as_deref().unwrap_or(""),
        Status::Skip => t.skip_reason.as_deref().unwrap_or(""),
        Status::Xpass => t.baseline.as_ref().map(|b| b.reason.as_str()).unwrap_or(""),
        Status::Pass => "",
    };
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 140 {
        format!("{}…", one_line.chars().take(139).collect::<String>())
    } else {
        one_line
    }
}

/// A markdown table with padded columns (readable as plain text too).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out += &line(width.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        out += &line(r);
    }
    out
}

fn status(s: Option<Status>) -> String {
    s.map(|s| s.label().to_string())
        .unwrap_or_else(|| "-".into())
}

fn counts(r: &RunRecord) -> String {
    let s = &r.summary;
    let mut out = format!(
        "{} passed, {} failed, {} skipped",
        s.passed, s.failed, s.skipped
    );
    if s.xfail + s.xpass > 0 {
        out += &format!(", {} xfail, {} xpass", s.xfail, s.xpass);
    }
    out
}

pub fn render(c: &Comparison, a: (&str, &RunRecord), b: (&str, &RunRecord)) -> String {
    let mut out = format!(
        "# uffd-conform: {} -> {}\n\n",
        a.1.kernel.release, b.1.kernel.release
    );
    let baseline = |r: &RunRecord| {
        r.baseline
            .as_ref()
            .map(|b| b.file.clone())
            .unwrap_or_else(|| "-".into())
    };
    out += &table(
        &["", "A (before)", "B (after)"],
        &[
            vec!["file".into(), a.0.into(), b.0.into()],
            vec![
                "kernel".into(),
                a.1.kernel.release.clone(),
                b.1.kernel.release.clone(),
            ],
            vec![
                "started".into(),
                a.1.started_at.clone(),
                b.1.started_at.clone(),
            ],
            vec![
                "uffd-conform".into(),
                a.1.tool.version.clone(),
                b.1.tool.version.clone(),
            ],
            vec!["baseline".into(), baseline(a.1), baseline(b.1)],
            vec!["result".into(), counts(a.1), counts(b.1)],
        ],
    );
    let mut section = |title: &str, rows: &[Row], what: &str| {
        let _ = write!(out, "\n## {title} ({})\n\n", rows.len());
        if rows.is_empty() {
            out.push_str("none\n");
            return;
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    status(r.before),
                    status(r.after),
                    r.detail.clone(),
                ]
            })
            .collect();
        out += &table(&["trial", "A", "B", what], &cells);
    };
    section("Newly failing", &c.newly_failing, "what B saw");
    section("Newly passing", &c.newly_passing, "note");
    section("Newly skipped", &c.newly_skipped, "why B skipped");
    section("Missing from B", &c.missing, "A's detail");
    if !c.other.is_empty() {
        section("Other changes", &c.other, "detail");
    }
    let _ = write!(
        out,
        "\n{} unchanged. {}\n",
        match c.unchanged {
            1 => "1 trial".to_string(),
            n => format!("{n} trials"),
        },
        match c.regressions() {
            0 => "No regression.".to_string(),
            n => format!(
                "{n} regression{} (newly failing).",
                if n == 1 { "" } else { "s" }
            ),
        }
    );
    out
}

/// The command: exit 0 no regression, 1 regressions, 2 a file could not be read.
pub fn main(a: &Path, b: &Path) -> ExitCode {
    let (ra, rb) = match (RunRecord::load(a), RunRecord::load(b)) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (ea, eb) => {
            for e in [ea.err(), eb.err()].into_iter().flatten() {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let c = compare(&ra, &rb);
    print!(
        "{}",
        render(
            &c,
            (&a.display().to_string(), &ra),
            (&b.display().to_string(), &rb)
        )
    );
    if c.regressions() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::record::sample;

    fn set(r: &mut RunRecord, name: &str, status: Status) {
        let t = r.trials.iter_mut().find(|t| t.name == name).expect("trial");
        t.status = status;
        if status == Status::Skip {
            t.skip_reason = Some("no | huge pages".into());
        }
    }

    #[test]
    fn classifies_every_kind_of_change() {
        let a = sample::record(false);
        let mut b = a.clone();
        set(&mut b, "wp::passes::anon", Status::Fail);
        set(&mut b, "wp::fails::shmem", Status::Pass);
        set(&mut b, "pagemap::fixed::anon", Status::Skip);
        set(&mut b, "wp::known::anon", Status::Fail);
        let removed = b.trials.remove(4);
        let mut added = b.trials[0].clone();
        added.name = "wp::new::anon".into();
        b.trials.push(added);
        let c = compare(&a, &b);
        let names = |rows: &[Row]| rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&c.newly_failing),
            vec!["wp::known::anon", "wp::new::anon", "wp::passes::anon"]
        );
        assert_eq!(names(&c.newly_passing), vec!["wp::fails::shmem"]);
        assert_eq!(names(&c.newly_skipped), vec!["pagemap::fixed::anon"]);
        assert_eq!(names(&c.missing), vec![removed.name]);
        assert_eq!(c.unchanged, 0);
        assert_eq!(c.regressions(), 3);
        assert_eq!(c.newly_failing[1].before, None);
    }

    #[test]
    fn same_run_has_no_regression() {
        let a = sample::record(false);
        let c = compare(&a, &a);
        assert_eq!(
            c,
            Comparison {
                unchanged: 5,
                ..Comparison::default()
            }
        );
        let text = render(&c, ("a.json", &a), ("a.json", &a));
        assert!(text.contains("## Newly failing (0)\n\nnone\n"), "{text}");
        assert!(
            text.ends_with("5 trials unchanged. No regression.\n"),
            "{text}"
        );
    }

    #[test]
    fn renders_a_table_with_kernels_and_escaped_cells() {
        let a = sample::record(false);
        let mut b = a.clone();
        b.kernel.release = "6.19.0-rc1".into();
        set(&mut b, "wp::passes::anon", Status::Skip);
        let text = render(&compare(&a, &b), ("a.json", &a), ("b.json", &b));
        assert!(
            text.starts_with(
                "# uffd-conform: 6.18.0-test -> 6.19.0-rc1\n\n|              | A (before)"
            ),
            "{text}"
        );
        assert!(text.contains("| kernel       | 6.18.0-test"), "{text}");
        assert!(
            text.contains("| result       | 2 passed, 1 failed, 1 skipped, 1 xfail, 1 xpass |"),
            "{text}"
        );
        assert!(
            text.contains("| wp::passes::anon | PASS | SKIP | no \\| huge pages |"),
            "{text}"
        );
        assert!(text.contains("## Newly skipped (1)"), "{text}");
    }
}
