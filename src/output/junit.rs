//! JUnit XML (`run --junit FILE`) for GitLab and Jenkins, from the run record: one
//! `<testsuite>` per topic, `classname` = topic, `name` = `case::memory`.
//!
//! | status | JUnit |
//! | --- | --- |
//! | pass | a bare `<testcase>` |
//! | fail | `<failure type=KIND message=VERDICT>` with the steps, messages and stderr as text |
//! | skip | `<skipped message=REASON/>` |
//! | xfail | `<skipped type="xfail" message="XFAIL ...">` and the failure in `<system-out>` (a known failure is not a failure, and CI must not go red for it) |
//! | xpass | `<system-out>XPASS ...</system-out>`; with `--strict-baseline` a `<failure type="xpass">` |
//!
//! The schema it follows is ci/junit.xsd.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::record::{FailureDetail, RunRecord, Status, TrialRecord};
use super::xml::{attr, text};

/// Renders a run record as JUnit XML.
pub fn render(r: &RunRecord) -> String {
    let strict = r.baseline.as_ref().is_some_and(|b| b.strict);
    let mut topics: BTreeMap<&str, Vec<&TrialRecord>> = BTreeMap::new();
    for t in &r.trials {
        topics.entry(&t.topic).or_default().push(t);
    }
    let counts = |trials: &[&TrialRecord]| {
        let failures = trials
            .iter()
            .filter(|t| is_failure(t.status, strict))
            .count();
        let skipped = trials
            .iter()
            .filter(|t| matches!(t.status, Status::Skip | Status::Xfail))
            .count();
        let secs: f64 = trials.iter().map(|t| t.duration_ms).sum::<f64>() / 1000.0;
        (trials.len(), failures, skipped, secs)
    };
    let all: Vec<&TrialRecord> = r.trials.iter().collect();
    let (tests, failures, skipped, _) = counts(&all);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"uffd-conform\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\" timestamp=\"{}\">",
        r.duration_ms / 1000.0,
        attr(&r.started_at)
    );
    for (topic, trials) in &topics {
        let (tests, failures, skipped, secs) = counts(trials);
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{secs:.3}\" timestamp=\"{}\">",
            attr(topic),
            attr(&r.started_at)
        );
        out.push_str("    <properties>\n");
        let mut props = vec![
            ("kernel.release", r.kernel.release.clone()),
            ("kernel.version", r.kernel.version.clone()),
            ("uffd-conform.version", r.tool.version.clone()),
        ];
        if let Some(b) = &r.baseline {
            props.push((
                "baseline",
                format!("{}{}", b.file, if b.strict { " (strict)" } else { "" }),
            ));
        }
        for (name, value) in props {
            let _ = writeln!(
                out,
                "      <property name=\"{name}\" value=\"{}\"/>",
                attr(&value)
            );
        }
        out.push_str("    </properties>\n");
        for t in trials {
            testcase(&mut out, t, strict);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn is_failure(status: Status, strict: bool) -> bool {
    status == Status::Fail || (strict && status == Status::Xpass)
}

fn testcase(out: &mut String, t: &TrialRecord, strict: bool) {
    let name = format!("{}::{}", t.case, t.memory);
    let _ = write!(
        out,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
        attr(&t.topic),
        attr(&name),
        t.duration_ms / 1000.0
    );
    let known = t.baseline.as_ref().map(|b| match &b.link {
        Some(link) => format!("{} ({link})", b.reason),
        None => b.reason.clone(),
    });
    let message = t.message.as_deref().unwrap_or("");
    match t.status {
        Status::Pass => out.push_str("/>\n"),
        Status::Skip => {
            let _ = write!(
                out,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                attr(t.skip_reason.as_deref().unwrap_or(""))
            );
        }
        Status::Fail => {
            let _ = write!(
                out,
                ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                attr(t.fail_kind.as_deref().unwrap_or("mismatch")),
                attr(message),
                text(&failure_text(t))
            );
        }
        Status::Xfail => {
            let _ = write!(
                out,
                ">\n      <skipped type=\"xfail\" message=\"{}\"/>\n      <system-out>{}</system-out>\n    </testcase>\n",
                attr(&format!("XFAIL: known failure: {}\n{message}", known.unwrap_or_default())),
                text(&failure_text(t))
            );
        }
        Status::Xpass => {
            let what = format!(
                "XPASS: passed, but the baseline lists it as failing: {}; remove the entry",
                known.unwrap_or_default()
            );
            if strict {
                let _ = write!(
                    out,
                    ">\n      <failure type=\"xpass\" message=\"{}\">{}</failure>\n    </testcase>\n",
                    attr(&what),
                    text(&format!("{what}\n(--strict-baseline makes XPASS a failure)"))
                );
            } else {
                let _ = write!(
                    out,
                    ">\n      <system-out>{}</system-out>\n    </testcase>\n",
                    text(&what)
                );
            }
        }
    }
}

/// The verdict, then what the trial saw: steps with observations, messages, stderr.
fn failure_text(t: &TrialRecord) -> String {
    let mut s = t.message.clone().unwrap_or_default();
    if let Some(d) = &t.failure {
        s.push_str(&detail_text(d));
    }
    s
}

/// A failure's details as plain text.
pub fn detail_text(d: &FailureDetail) -> String {
    let mut s = String::new();
    if !d.steps.is_empty() {
        s.push_str("\n\nsteps:");
        for st in &d.steps {
            let _ = write!(
                s,
                "\n  {} `{}`{}",
                st.step,
                st.op,
                if st.ran {
                    ""
                } else {
                    " (not on this memory type)"
                }
            );
            for o in &st.observed {
                let _ = write!(s, "\n      {o}");
            }
        }
    }
    s.push_str("\n\nuserfaultfd messages:");
    if d.messages.is_empty() {
        s.push_str(" none");
    }
    for m in &d.messages {
        let _ = write!(s, "\n  {}", m.text);
    }
    if !d.stderr.trim().is_empty() {
        let _ = write!(s, "\n\nstderr:\n{}", d.stderr.trim_end());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::record::sample;

    /// Attribute values of `attr_name` on every `<element ` in `xml`.
    fn attrs<'a>(xml: &'a str, element: &str, attr_name: &str) -> Vec<&'a str> {
        xml.split(&format!("<{element} "))
            .skip(1)
            .filter_map(|rest| {
                let head = &rest[..rest.find('>').unwrap_or(rest.len())];
                let start = head
                    .find(&format!(" {attr_name}=\""))
                    .map(|i| i + attr_name.len() + 3)
                    .or_else(|| {
                        head.starts_with(&format!("{attr_name}=\""))
                            .then_some(attr_name.len() + 2)
                    })?;
                Some(&head[start..start + head[start..].find('"')?])
            })
            .collect()
    }

    #[test]
    fn one_suite_per_topic_with_counts() {
        let xml = render(&sample::record(false));
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"uffd-conform\" tests=\"5\" failures=\"1\" errors=\"0\" skipped=\"2\""), "{xml}");
        assert_eq!(attrs(&xml, "testsuite", "name"), vec!["pagemap", "wp"]);
        assert_eq!(attrs(&xml, "testsuite", "tests"), vec!["2", "3"]);
        assert_eq!(attrs(&xml, "testsuite", "failures"), vec!["0", "1"]);
        assert_eq!(attrs(&xml, "testsuite", "skipped"), vec!["1", "1"]);
        assert_eq!(
            attrs(&xml, "testcase", "classname"),
            vec!["pagemap", "pagemap", "wp", "wp", "wp"]
        );
        assert_eq!(
            attrs(&xml, "testcase", "name"),
            vec![
                "fixed::anon",
                "bits::hugetlb",
                "passes::anon",
                "fails::shmem",
                "known::anon"
            ]
        );
        assert_eq!(attrs(&xml, "testcase", "time"), vec!["0.004"; 5]);
        assert!(xml.trim_end().ends_with("</testsuites>"));
        assert_eq!(xml.matches("<testcase ").count(), 5);
    }

    #[test]
    fn failures_name_step_expected_and_observed_escaped() {
        let xml = render(&sample::record(false));
        assert_eq!(attrs(&xml, "failure", "type"), vec!["mismatch"]);
        let msg = attrs(&xml, "failure", "message")[0];
        assert_eq!(msg, "step 3 `write pages 0 data 2`:&#10;    messages: expected [pagefault write|wp @ page 0], observed no message &lt;none&gt; &amp; &quot;quiet&quot;");
        assert!(xml.contains("steps:\n  1 `write pages all data 1`\n  2 `pagemap pages 0`\n      pagemap page 0: present wp"), "{xml}");
        assert!(
            xml.contains(
                "userfaultfd messages:\n  pagefault write|wp @ page 0 (0x7f0000000000)</failure>"
            ),
            "{xml}"
        );
        assert!(!xml.contains("<none>"), "raw markup leaked: {xml}");
    }

    #[test]
    fn skip_xfail_and_xpass() {
        let xml = render(&sample::record(false));
        let skipped = attrs(&xml, "skipped", "message");
        assert_eq!(skipped[0], "needs 2 free 2048 kB huge pages, 0 are free");
        assert!(
            skipped[1].starts_with(
                "XFAIL: known failure: known bug (https://example.org/bug?a=1&amp;b=2)&#10;step 3"
            ),
            "{}",
            skipped[1]
        );
        assert_eq!(attrs(&xml, "skipped", "type"), vec!["xfail"]);
        assert!(xml.contains("<system-out>XPASS: passed, but the baseline lists it as failing: fixed upstream; remove the entry</system-out>"));
        let strict = render(&sample::record(true));
        assert_eq!(attrs(&strict, "failure", "type"), vec!["xpass", "mismatch"]);
        assert_eq!(attrs(&strict, "testsuite", "failures"), vec!["1", "1"]);
    }
}
