//! The terminal output of `run`, from the run record: a line as each trial finishes (failures
//! always, everything with `-v`), then the summary whose last line is
//! `N passed, N failed, N skipped`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::record::{RunRecord, Status, TrialRecord};

/// The line(s) shown when a trial finishes, or None when it is not worth a line.
pub fn trial_line(t: &TrialRecord, verbose: bool) -> Option<String> {
    let ms = t.duration_ms;
    let why = t.baseline.as_ref().map(|b| match &b.link {
        Some(link) => format!("{} ({link})", b.reason),
        None => b.reason.clone(),
    });
    let indent = |s: &str| s.replace('\n', "\n    ");
    if let Some(k) = &t.known_bug {
        let what = match &k.link {
            Some(link) => format!("known kernel bug `{}`: {} ({link})", k.id, k.summary),
            None => format!("known kernel bug `{}`: {}", k.id, k.summary),
        };
        return Some(match t.status {
            // A race passes now and then: that says nothing about a fix.
            Status::Xpass if k.race => format!(
                "XPASS   {} ({ms:.0} ms): passed this run; {what} is a race here and shows in some runs only",
                t.name
            ),
            // Loud: the kernel may be fixed, or the entry covers too much.
            Status::Xpass => format!(
                "XPASS   {} ({ms:.0} ms)\n    !!! passed, but {what}\n    !!! lists this kernel as failing it: is the kernel fixed? update known-bugs.yaml",
                t.name
            ),
            Status::Xfail if verbose => format!(
                "XFAIL   {} ({ms:.0} ms): {what}\n    {}",
                t.name,
                indent(t.message.as_deref().unwrap_or(""))
            ),
            _ => format!("XFAIL   {} ({ms:.0} ms): {what}", t.name),
        });
    }
    Some(match t.status {
        Status::Fail => format!("FAIL    {} ({ms:.0} ms)\n    {}", t.name, indent(t.message.as_deref().unwrap_or(""))),
        Status::Xpass => format!(
            "XPASS   {} ({ms:.0} ms)\n    passed, but the baseline lists it as failing: {}; remove the entry",
            t.name,
            why.unwrap_or_default()
        ),
        Status::Xfail if verbose => format!(
            "XFAIL   {} ({ms:.0} ms): known failure: {}\n    {}",
            t.name,
            why.unwrap_or_default(),
            indent(t.message.as_deref().unwrap_or(""))
        ),
        Status::Xfail => format!("XFAIL   {} ({ms:.0} ms): known failure: {}", t.name, why.unwrap_or_default()),
        Status::Pass if verbose => format!("ok      {} ({ms:.0} ms)", t.name),
        Status::Skip if verbose => format!("skip    {}: {}", t.name, t.skip_reason.as_deref().unwrap_or("")),
        Status::Pass | Status::Skip => return None,
    })
}

/// The end-of-run summary: failures in full, XPASS and XFAIL, skips grouped by reason, stale
/// baseline entries, then the counts.
pub fn summary(r: &RunRecord) -> String {
    let mut out = String::new();
    let section = |out: &mut String, title: &str, pick: &dyn Fn(&&TrialRecord) -> bool| {
        let lines: Vec<String> = r
            .trials
            .iter()
            .filter(pick)
            .filter_map(|t| trial_line(t, false))
            .collect();
        if !lines.is_empty() {
            let _ = writeln!(out, "\n{title}:");
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
    };
    section(&mut out, "failures", &|t| t.status == Status::Fail);
    let xpass_title = match &r.baseline {
        Some(b) if b.strict => "passed but listed in the baseline (failures: --strict-baseline)",
        _ => "passed but listed in the baseline",
    };
    let of = |status: Status, known: bool| {
        move |t: &&super::record::TrialRecord| t.status == status && t.known_bug.is_some() == known
    };
    section(
        &mut out,
        "passed but a known kernel bug covers it (XPASS)",
        &of(Status::Xpass, true),
    );
    section(&mut out, xpass_title, &of(Status::Xpass, false));
    section(
        &mut out,
        "known kernel bugs (XFAIL, known-bugs.yaml)",
        &of(Status::Xfail, true),
    );
    section(
        &mut out,
        "known failures (baseline)",
        &of(Status::Xfail, false),
    );
    let mut skips: BTreeMap<&str, usize> = BTreeMap::new();
    for t in r.trials.iter().filter(|t| t.status == Status::Skip) {
        *skips
            .entry(t.skip_reason.as_deref().unwrap_or(""))
            .or_default() += 1;
    }
    if !skips.is_empty() {
        let _ = writeln!(out, "\nskipped:");
        for (reason, n) in &skips {
            let _ = writeln!(
                out,
                "  {n} trial{}: {reason}",
                if *n == 1 { "" } else { "s" }
            );
        }
    }
    let s = &r.summary;
    if let Some(b) = &r.baseline {
        for entry in &b.unmatched {
            let _ = writeln!(
                out,
                "\nwarning: baseline {}: entry `{entry}` matches no trial of this run",
                b.file
            );
        }
        let _ = write!(
            out,
            "\nbaseline {}: {} xfail, {} xpass",
            b.file, s.xfail, s.xpass
        );
        if s.xpass > 0 && !b.strict {
            out.push_str(" (XPASS does not fail the run; --strict-baseline makes it)");
        }
        out.push('\n');
    }
    if let Some(k) = &r.known_bugs {
        if k.strict {
            let _ = write!(
                out,
                "\nknown kernel bugs: not applied (--strict): every failure counts"
            );
        } else {
            let xpass = r
                .trials
                .iter()
                .filter(|t| t.status == Status::Xpass && t.known_bug.is_some())
                .count();
            let _ = write!(out, "\nknown kernel bugs: {} known, {xpass} xpass", s.known);
            let ids: std::collections::BTreeSet<&str> = r
                .trials
                .iter()
                .filter_map(|t| t.known_bug.as_ref().map(|k| k.id.as_str()))
                .collect();
            if !ids.is_empty() {
                let _ = write!(out, " ({})", ids.into_iter().collect::<Vec<_>>().join(", "));
            }
        }
        out.push('\n');
    }
    // The last line is what CI parsers read: `N passed, N failed, N skipped`, with the known
    // kernel bugs counted apart after it.
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} skipped{}",
        s.passed,
        s.failed,
        s.skipped,
        if s.known > 0 {
            format!(", {} known", s.known)
        } else {
            String::new()
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::record::sample;

    #[test]
    fn summary_shows_each_verdict_and_ends_with_the_counts() {
        let s = summary(&sample::record(false));
        assert!(s.contains("failures:\nFAIL    wp::fails::shmem (4 ms)\n    step 3 `write pages 0 data 2`:\n        messages: expected"), "{s}");
        assert!(s.contains("XPASS   pagemap::fixed::anon (4 ms)\n    passed, but the baseline lists it as failing: fixed upstream; remove the entry"), "{s}");
        assert!(s.contains("XFAIL   wp::known::anon (4 ms): known failure: known bug (https://example.org/bug?a=1&b=2)"), "{s}");
        assert!(
            s.contains("  1 trial: needs 2 free 2048 kB huge pages, 0 are free"),
            "{s}"
        );
        assert!(
            s.contains("entry `gone::away (all memory types)` matches no trial"),
            "{s}"
        );
        assert!(
            s.contains("baseline known.yaml: 1 xfail, 1 xpass (XPASS does not fail"),
            "{s}"
        );
        assert!(s.ends_with("\n2 passed, 1 failed, 1 skipped\n"), "{s}");
        let strict = summary(&sample::record(true));
        assert!(
            strict.contains("(failures: --strict-baseline)")
                && strict.ends_with("\n1 passed, 2 failed, 1 skipped\n"),
            "{strict}"
        );
    }

    #[test]
    fn quiet_lines_only_for_what_needs_attention() {
        let r = sample::record(false);
        let shown: Vec<bool> = r
            .trials
            .iter()
            .map(|t| trial_line(t, false).is_some())
            .collect();
        assert_eq!(shown, vec![false, true, true, true, false]);
        assert!(r.trials.iter().all(|t| trial_line(t, true).is_some()));
    }
}
