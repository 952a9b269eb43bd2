//! `uffd-conform report RUN.json -o report.html`: one self-contained HTML page (inline CSS, no
//! script, no external resources) from a run record, so it can be attached to a ticket or kept
//! as a CI artifact: summary, kernel and machine, a table per topic, and every failure with its
//! step, expected and observed values, messages and step records.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

use super::record::{RunRecord, Status, TrialRecord};
use super::xml::{attr, text as esc};

const CSS: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1.5em;color:#1d1d1f;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1.05em;margin:.2em 0;font-family:ui-monospace,monospace}
.sub{color:#555}.banner{padding:.7em 1em;border-radius:6px;font-weight:600;margin:1em 0}
.ok{background:#e3f5e6;color:#14532d}.bad{background:#fde2e1;color:#7f1d1d}
.counts span{display:inline-block;margin-right:.6em;padding:.25em .7em;border-radius:4px;font-weight:600}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #ddd;padding:.3em .55em;text-align:left;vertical-align:top}
th{background:#f4f4f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;white-space:pre-wrap;margin:.3em 0}
.s{display:inline-block;min-width:3.6em;text-align:center;padding:.05em .4em;border-radius:4px;font-weight:700;font-size:.85em}
.PASS{background:#dcfce7;color:#166534}.FAIL{background:#fecaca;color:#991b1b}.SKIP{background:#e5e7eb;color:#374151}
.XFAIL{background:#fef3c7;color:#92400e}.XPASS{background:#dbeafe;color:#1e40af}
.trial{border:1px solid #e5e7eb;border-left:5px solid #dc2626;border-radius:6px;padding:.6em 1em;margin:1em 0}
.trial.XFAIL{border-left-color:#d97706;background:#fffbeb;color:inherit}.trial.XPASS{border-left-color:#2563eb;background:#eff6ff;color:inherit}
.trial.FAIL{background:#fff;color:inherit}.zero{color:#aaa}
";

pub fn render(r: &RunRecord) -> String {
    let mut out = String::new();
    let title = format!("uffd-conform on Linux {}", r.kernel.release);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    let _ = writeln!(out, "<h1>{}</h1>", esc(&title));
    let _ = writeln!(
        out,
        "<p class=\"sub\">{} · started {} · {:.1} s · uffd-conform {} · <span class=\"mono\">{}</span></p>",
        esc(&r.kernel.version),
        esc(&r.started_at),
        r.duration_ms / 1000.0,
        esc(&r.tool.version),
        esc(&r.selection.paths.join(" "))
    );
    summary(&mut out, r);
    topics(&mut out, r);
    failures(&mut out, r);
    skips(&mut out, r);
    machine(&mut out, r);
    all_trials(&mut out, r);
    out.push_str("</body>\n</html>\n");
    out
}

fn badge(s: Status) -> String {
    format!("<span class=\"s {0}\">{0}</span>", s.label())
}

fn summary(out: &mut String, r: &RunRecord) {
    let s = &r.summary;
    let (class, verdict) = if r.ok() {
        (
            "ok",
            format!(
                "No failure: {} trials, {} passed, {} skipped",
                s.total, s.passed, s.skipped
            ),
        )
    } else {
        (
            "bad",
            format!(
                "{} trial{} failed",
                s.failed,
                if s.failed == 1 { "" } else { "s" }
            ),
        )
    };
    let _ = writeln!(out, "<div class=\"banner {class}\">{}</div>", esc(&verdict));
    out.push_str("<p class=\"counts\">");
    for (n, status) in [
        (s.passed, Status::Pass),
        (s.failed, Status::Fail),
        (s.skipped, Status::Skip),
        (s.xfail, Status::Xfail),
        (s.xpass, Status::Xpass),
    ] {
        let word = match status {
            Status::Pass => "passed",
            Status::Fail => "failed",
            Status::Skip => "skipped",
            Status::Xfail => "known failures (XFAIL)",
            Status::Xpass => "passed but listed in the baseline (XPASS)",
        };
        if n > 0 || matches!(status, Status::Pass | Status::Fail | Status::Skip) {
            let _ = write!(out, "<span class=\"{}\">{n} {word}</span>", status.label());
        }
    }
    out.push_str("</p>\n");
    if let Some(b) = &r.baseline {
        let _ = writeln!(
            out,
            "<p>Judged with the baseline <code>{}</code> ({} entr{}{}).{}</p>",
            esc(&b.file),
            b.entries,
            if b.entries == 1 { "y" } else { "ies" },
            if b.strict {
                ", strict: XPASS fails the run"
            } else {
                ""
            },
            if b.unmatched.is_empty() {
                String::new()
            } else {
                format!(
                    " Entries matching no trial: {}.",
                    esc(&b.unmatched.join(", "))
                )
            }
        );
    }
}

fn topics(out: &mut String, r: &RunRecord) {
    let mut by_topic: BTreeMap<&str, [usize; 5]> = BTreeMap::new();
    let mut time: BTreeMap<&str, f64> = BTreeMap::new();
    for t in &r.trials {
        by_topic.entry(&t.topic).or_default()[t.status as usize] += 1;
        *time.entry(&t.topic).or_default() += t.duration_ms;
    }
    out.push_str("<h2>Topics</h2>\n<table>\n<tr><th>topic</th><th>trials</th><th>pass</th><th>fail</th><th>skip</th><th>xfail</th><th>xpass</th><th>time</th></tr>\n");
    for (topic, c) in &by_topic {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td>",
            esc(topic),
            c.iter().sum::<usize>()
        );
        for n in c {
            let _ = write!(
                out,
                "<td class=\"n{}\">{n}</td>",
                if *n == 0 { " zero" } else { "" }
            );
        }
        let _ = writeln!(out, "<td class=\"n\">{:.0} ms</td></tr>", time[topic]);
    }
    out.push_str("</table>\n");
}

fn known(t: &TrialRecord) -> String {
    let Some(b) = &t.baseline else {
        return String::new();
    };
    let link = match &b.link {
        // Only web links become links: a baseline file must not put script in a report.
        Some(l) if l.starts_with("https://") || l.starts_with("http://") => {
            format!(" <a href=\"{}\">{}</a>", attr(l), esc(l))
        }
        Some(l) => format!(" {}", esc(l)),
        None => String::new(),
    };
    format!("<p>Baseline: {}{link}</p>\n", esc(&b.reason))
}

fn failures(out: &mut String, r: &RunRecord) {
    let shown: Vec<&TrialRecord> = [Status::Fail, Status::Xpass, Status::Xfail]
        .iter()
        .flat_map(|s| r.trials.iter().filter(move |t| t.status == *s))
        .collect();
    let _ = writeln!(
        out,
        "<h2>Failures and baseline changes ({})</h2>",
        shown.len()
    );
    if shown.is_empty() {
        out.push_str("<p>None.</p>\n");
    }
    for t in shown {
        let _ = writeln!(
            out,
            "<div class=\"trial {}\" id=\"{}\">\n<h3>{} {} <span class=\"sub\">({:.0} ms{})</span></h3>",
            t.status.label(),
            attr(&t.name),
            badge(t.status),
            esc(&t.name),
            t.duration_ms,
            t.fail_kind.as_deref().map(|k| format!(", {k}")).map(|k| esc(&k)).unwrap_or_default()
        );
        out.push_str(&known(t));
        if t.status == Status::Xpass {
            out.push_str(
                "<p>Passed, but the baseline lists it as failing: remove the entry.</p>\n</div>\n",
            );
            continue;
        }
        let Some(d) = &t.failure else {
            let _ = writeln!(
                out,
                "<pre>{}</pre>\n</div>",
                esc(t.message.as_deref().unwrap_or(""))
            );
            continue;
        };
        match (d.step, &d.op) {
            (Some(0), _) => {
                out.push_str("<p>Failed in the <b>setup</b> (map, UFFDIO_API, register).</p>\n")
            }
            (Some(n), Some(op)) => {
                let _ = writeln!(
                    out,
                    "<p>Failed at step <b>{n}</b> <code>{}</code>.</p>",
                    esc(op)
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "<pre>{}</pre>",
                    esc(t.message.as_deref().unwrap_or(""))
                );
            }
        }
        if !d.mismatches.is_empty() {
            out.push_str("<table>\n<tr><th>check</th><th>expected</th><th>observed</th></tr>\n");
            for m in &d.mismatches {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
                    esc(&m.check),
                    esc(&m.expected),
                    esc(&m.observed)
                );
            }
            out.push_str("</table>\n");
        }
        if !d.steps.is_empty() {
            out.push_str("<details open><summary>Steps</summary>\n<table>\n<tr><th>#</th><th>operation</th><th>observed</th></tr>\n");
            for s in &d.steps {
                let observed = if s.ran {
                    s.observed.join("\n")
                } else {
                    "(not run on this memory type)".into()
                };
                let _ = writeln!(
                    out,
                    "<tr><td class=\"n\">{}</td><td><code>{}</code></td><td class=\"mono\">{}</td></tr>",
                    s.step,
                    esc(&s.op),
                    esc(&observed).replace('\n', "<br>")
                );
            }
            out.push_str("</table>\n</details>\n");
        }
        let _ = writeln!(
            out,
            "<details open><summary>userfaultfd messages ({})</summary>",
            d.messages.len()
        );
        if d.messages.is_empty() {
            out.push_str("<p>None.</p>\n");
        } else {
            let lines: Vec<String> = d.messages.iter().map(|m| m.text.clone()).collect();
            let _ = writeln!(out, "<pre>{}</pre>", esc(&lines.join("\n")));
        }
        out.push_str("</details>\n");
        if !d.stderr.trim().is_empty() {
            let _ = writeln!(
                out,
                "<details><summary>stderr</summary><pre>{}</pre></details>",
                esc(&d.stderr)
            );
        }
        out.push_str("</div>\n");
    }
}

fn skips(out: &mut String, r: &RunRecord) {
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in r.trials.iter().filter(|t| t.status == Status::Skip) {
        by_reason
            .entry(t.skip_reason.as_deref().unwrap_or(""))
            .or_default()
            .push(&t.name);
    }
    let _ = writeln!(out, "<h2>Skipped ({})</h2>", r.summary.skipped);
    if by_reason.is_empty() {
        out.push_str("<p>None.</p>\n");
        return;
    }
    out.push_str("<table>\n<tr><th>reason</th><th>trials</th></tr>\n");
    for (reason, names) in by_reason {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"mono\">{}</td></tr>",
            esc(reason),
            esc(&names.join("\n")).replace('\n', "<br>")
        );
    }
    out.push_str("</table>\n");
}

fn machine(out: &mut String, r: &RunRecord) {
    let k = &r.kernel;
    let m = &r.machine;
    out.push_str("<h2>Kernel and machine</h2>\n<table>\n");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td class=\"mono\">{}</td></tr>",
            esc(name),
            esc(&value).replace('\n', "<br>")
        );
    };
    row("release", k.release.clone());
    row("version", k.version.clone());
    match (&k.uffd, &k.uffd_error) {
        (Some(u), _) => {
            row(
                "uffd features",
                format!(
                    "{}: {}{}",
                    u.features_raw,
                    u.features.join(" "),
                    if u.user_mode_only {
                        " (UFFD_USER_MODE_ONLY)"
                    } else {
                        ""
                    }
                ),
            );
            row(
                "uffd ioctls",
                format!("{}: {}", u.ioctls_raw, u.ioctls.join(" ")),
            );
        }
        (None, e) => row(
            "userfaultfd",
            format!("unavailable: {}", e.clone().unwrap_or_default()),
        ),
    }
    row(
        "/dev/userfaultfd",
        k.dev_userfaultfd_error
            .clone()
            .unwrap_or_else(|| "available".into()),
    );
    row(
        "pagemap bit 57",
        match k.pagemap_wp_bit {
            Some(true) => "shown".into(),
            Some(false) => "not shown".into(),
            None => "not probed".into(),
        },
    );
    row(
        "huge pages",
        format!(
            "{} kB pages, {} total, {} free",
            m.huge_page_size_kib, m.huge_pages_total, m.huge_pages_free
        ),
    );
    row("swap", format!("{} kB", m.swap_total_kib));
    row("root", m.is_root.to_string());
    row(
        "provisioning",
        if m.provisioning.is_empty() {
            "nothing needed".into()
        } else {
            m.provisioning.join("\n")
        },
    );
    let config = match (&k.config.source, &k.config.error) {
        (Some(src), _) => {
            let opts: Vec<String> = k
                .config
                .options
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            format!("{}\n(from {src})", opts.join("\n"))
        }
        (None, e) => format!("unknown: {}", e.clone().unwrap_or_default()),
    };
    row("config", config);
    out.push_str("</table>\n");
}

fn all_trials(out: &mut String, r: &RunRecord) {
    let _ = writeln!(out, "<details><summary>All {} trials</summary>\n<table>\n<tr><th>trial</th><th>verdict</th><th>time</th></tr>", r.trials.len());
    for t in &r.trials {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"n\">{:.0} ms</td></tr>",
            esc(&t.name),
            badge(t.status),
            t.duration_ms
        );
    }
    out.push_str("</table>\n</details>\n");
}

/// The command: exit 0 written, 2 the record could not be read or the page not written.
pub fn main(input: &Path, output: &Path) -> ExitCode {
    let record = match RunRecord::load(input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::write(output, render(&record)) {
        eprintln!("error: {}: {e}", output.display());
        return ExitCode::from(2);
    }
    eprintln!("wrote {}", output.display());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::record::sample;

    #[test]
    fn self_contained_with_summary_topics_and_failure_details() {
        let html = render(&sample::record(false));
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        for external in ["<script", "src=", "<link", "@import", "url("] {
            assert!(
                !html.contains(external),
                "{external} in a self-contained page"
            );
        }
        assert!(
            html.contains("<div class=\"banner bad\">1 trial failed</div>"),
            "{html}"
        );
        assert!(html.contains("<tr><td><code>wp</code></td><td class=\"n\">3</td><td class=\"n\">1</td><td class=\"n\">1</td>"), "{html}");
        assert!(
            html.contains("Failed at step <b>3</b> <code>write pages 0 data 2</code>."),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"mono\">no message &lt;none&gt; &amp; \"quiet\"</td>"),
            "{html}"
        );
        assert!(html.contains("pagemap page 0: present wp"), "{html}");
        assert!(
            html.contains("pagefault write|wp @ page 0 (0x7f0000000000)"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"https://example.org/bug?a=1&amp;b=2\">"),
            "{html}"
        );
        assert!(html.contains("CONFIG_USERFAULTFD=y"), "{html}");
        assert!(html.contains("needs 2 free 2048 kB huge pages"), "{html}");
    }

    #[test]
    fn a_passing_run_says_so_and_links_only_web_addresses() {
        let mut r = sample::record(false);
        r.trials
            .retain(|t| t.status == Status::Pass || t.status == Status::Xfail);
        r.trials[1].baseline.as_mut().expect("baseline").link = Some("javascript:alert(1)".into());
        r.summary = super::super::record::Summary::of(&r.trials, false);
        let html = render(&r);
        assert!(
            html.contains(
                "<div class=\"banner ok\">No failure: 2 trials, 1 passed, 0 skipped</div>"
            ),
            "{html}"
        );
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert!(
            html.contains("<h2>Skipped (0)</h2>\n<p>None.</p>"),
            "{html}"
        );
    }
}
