//! KTAP version 1 (Documentation/dev-tools/ktap.rst): a writer for `run --format ktap` and a
//! parser for the VM host, which reads the guest's results off the serial console.
//!
//! Layout: one top-level test per case (`topic::case`), each with one subtest per memory type.
//! A failure's diagnostic lines (`# ...`) come right before its result line, as the spec
//! recommends; a skip is `ok N name # SKIP reason`; a case fails when a subtest fails and is
//! skipped when every subtest is.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::trial::verdict::{FailKind, TrialResult, Verdict};

/// The first line of a KTAP document.
pub const VERSION_LINE: &str = "KTAP version 1";
/// One level of nesting.
const INDENT: &str = "  ";

/// A description may not contain `#` (it starts the directive) nor a line break.
fn description(text: &str) -> String {
    text.replace('#', "_").replace(['\n', '\r'], " ")
}

/// Directive text and diagnostic data live on one line.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The `# ...` lines and the result line of one trial, at `indent`.
/// A trial's run time as the diagnostic data of a result line without a directive
/// (`ok 1 anon # 12 ms`, as the spec's `ok 5 check return code # rcode=0`); none when zero.
fn time_data(duration: Duration) -> String {
    match duration.as_millis() {
        0 => String::new(),
        ms => format!(" # {ms} ms"),
    }
}

fn trial_lines(
    out: &mut String,
    indent: &str,
    number: usize,
    name: &str,
    verdict: &Verdict,
    duration: Duration,
) {
    let name = description(name);
    let time = time_data(duration);
    match verdict {
        Verdict::Pass => out.push_str(&format!("{indent}ok {number} {name}{time}\n")),
        Verdict::Skip { reason } => out.push_str(&format!(
            "{indent}ok {number} {name} # SKIP {}\n",
            one_line(reason)
        )),
        Verdict::Fail { kind, message } => {
            for line in message.lines() {
                out.push_str(&format!("{indent}# {line}\n"));
            }
            let first = one_line(message.lines().next().unwrap_or_default());
            match kind {
                FailKind::Timeout => out.push_str(&format!(
                    "{indent}not ok {number} {name} # TIMEOUT {first}\n"
                )),
                FailKind::Signal | FailKind::Error => {
                    out.push_str(&format!("{indent}not ok {number} {name} # ERROR {first}\n"))
                }
                FailKind::Mismatch | FailKind::Meta => {
                    out.push_str(&format!("{indent}not ok {number} {name}{time}\n"))
                }
            }
        }
    }
}

/// The document's first two lines: version and plan.
pub fn header(cases: usize) -> String {
    format!("{VERSION_LINE}\n1..{cases}\n")
}

/// One case as a nested test numbered `number`: its trials (one per memory type, named by the
/// memory type), then the case's own result line.
pub fn case_block(number: usize, case_name: &str, trials: &[&TrialResult]) -> String {
    let mut out = format!("{INDENT}{VERSION_LINE}\n{INDENT}1..{}\n", trials.len());
    for (i, t) in trials.iter().enumerate() {
        // The memory type: the last part of `topic::case::memory`.
        let short = t.name.rsplit_once("::").map(|(_, m)| m).unwrap_or(&t.name);
        trial_lines(&mut out, INDENT, i + 1, short, &t.verdict, t.duration);
    }
    let failed = trials.iter().filter(|t| t.verdict.is_failure()).count();
    let skipped = trials
        .iter()
        .filter(|t| matches!(t.verdict, Verdict::Skip { .. }))
        .count();
    let case_verdict = if failed > 0 {
        Verdict::fail(
            FailKind::Mismatch,
            format!("{failed} of {} memory types failed", trials.len()),
        )
    } else if skipped == trials.len() {
        Verdict::Skip {
            reason: "every memory type skipped".into(),
        }
    } else {
        Verdict::Pass
    };
    trial_lines(
        &mut out,
        "",
        number,
        case_name,
        &case_verdict,
        Duration::ZERO,
    );
    out
}

/// A whole run as KTAP, grouping `results` (in plan order) by case.
pub fn document(results: &[TrialResult]) -> String {
    let groups = group_by_case(results.iter().map(|r| r.name.as_str()));
    let by_name: HashMap<&str, &TrialResult> =
        results.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut out = header(groups.len());
    for (i, (case, names)) in groups.iter().enumerate() {
        let trials: Vec<&TrialResult> = names
            .iter()
            .filter_map(|n| by_name.get(n.as_str()).copied())
            .collect();
        out.push_str(&case_block(i + 1, case, &trials));
    }
    out
}

/// The case part of a trial name: `topic::case` of `topic::case::memory`.
pub fn case_of(trial: &str) -> &str {
    trial
        .rsplit_once("::")
        .map(|(case, _)| case)
        .unwrap_or(trial)
}

/// Trial names grouped by case, in first-seen order.
pub fn group_by_case<'a>(names: impl Iterator<Item = &'a str>) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for name in names {
        let case = case_of(name);
        match groups.iter_mut().find(|(c, _)| c == case) {
            Some((_, members)) => members.push(name.to_string()),
            None => groups.push((case.to_string(), vec![name.to_string()])),
        }
    }
    groups
}

/// Writes KTAP as trials finish: results arrive in any order (trials run in parallel), and a
/// case's block is printed as soon as it and every case before it are complete, so a guest that
/// dies mid-run has already reported what finished.
pub struct KtapStream<W: Write + Send> {
    state: Mutex<StreamState<W>>,
}

struct StreamState<W> {
    out: W,
    groups: Vec<(String, Vec<String>)>,
    done: HashMap<String, TrialResult>,
    next_case: usize,
}

impl<W: Write + Send> KtapStream<W> {
    /// Starts the document for the trials named `planned` (in plan order).
    pub fn start(mut out: W, planned: &[String]) -> KtapStream<W> {
        let groups = group_by_case(planned.iter().map(String::as_str));
        // A closed stdout leaves nobody to tell; the exit code still says what happened.
        let _ = out
            .write_all(header(groups.len()).as_bytes())
            .and_then(|_| out.flush());
        KtapStream {
            state: Mutex::new(StreamState {
                out,
                groups,
                done: HashMap::new(),
                next_case: 0,
            }),
        }
    }

    /// Records a finished trial and writes every case block that is now complete, in order.
    pub fn record(&self, result: &TrialResult) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.done.insert(result.name.clone(), result.clone());
        while let Some((case, names)) = s.groups.get(s.next_case) {
            if !names.iter().all(|n| s.done.contains_key(n)) {
                break;
            }
            let trials: Vec<&TrialResult> = names.iter().filter_map(|n| s.done.get(n)).collect();
            let block = case_block(s.next_case + 1, case, &trials);
            s.next_case += 1;
            let _ = s
                .out
                .write_all(block.as_bytes())
                .and_then(|_| s.out.flush());
        }
    }
}

/// A result line's directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// `# SKIP`: the test was skipped.
    Skip,
    /// `# TODO`: the test is not expected to pass yet.
    Todo,
    /// `# XFAIL`: the test failed as expected.
    Xfail,
    /// `# TIMEOUT`: the test ran out of time.
    Timeout,
    /// `# ERROR`: the test could not be run.
    Error,
}

impl Directive {
    fn parse(word: &str) -> Option<Directive> {
        Some(match word.to_ascii_uppercase().as_str() {
            "SKIP" => Directive::Skip,
            "TODO" => Directive::Todo,
            "XFAIL" => Directive::Xfail,
            "TIMEOUT" => Directive::Timeout,
            "ERROR" => Directive::Error,
            _ => return None,
        })
    }
}

/// One parsed test: its result line, the diagnostic lines before it, and its subtests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KtapTest {
    /// The test number on the result line.
    pub number: usize,
    /// The test name on the result line.
    pub name: String,
    /// Whether the result line says `ok`.
    pub ok: bool,
    /// The result line's directive, if any.
    pub directive: Option<Directive>,
    /// What follows the directive (or the `#` when there is none).
    pub data: String,
    /// Diagnostic lines right before the result line, without the `# `.
    pub diagnostics: Vec<String>,
    /// The subtests' plan, when they have one.
    pub plan: Option<usize>,
    /// The subtests, in order.
    pub subtests: Vec<KtapTest>,
}

/// A parsed document. `problems` lists what does not follow the spec (numbering, plan counts,
/// a document that stops mid-way); unknown lines are allowed and not listed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KtapDocument {
    /// The top-level plan, when there is one.
    pub plan: Option<usize>,
    /// The top-level tests, in order.
    pub tests: Vec<KtapTest>,
    /// What is wrong with the document, one message each.
    pub problems: Vec<String>,
}

impl KtapDocument {
    /// Every test that was announced by the plan has a result, at every level.
    pub fn is_complete(&self) -> bool {
        self.problems.is_empty() && self.plan == Some(self.tests.len())
    }
}

/// A test level being read: its indentation, plan, finished tests and pending diagnostics.
struct Level {
    indent: usize,
    plan: Option<usize>,
    tests: Vec<KtapTest>,
    diagnostics: Vec<String>,
}

impl Level {
    fn new(indent: usize) -> Level {
        Level {
            indent,
            plan: None,
            tests: Vec::new(),
            diagnostics: Vec::new(),
        }
    }
}

fn is_version_line(content: &str) -> bool {
    matches!(
        content,
        "KTAP version 1" | "TAP version 13" | "TAP version 14"
    )
}

fn parse_plan(content: &str) -> Option<usize> {
    content.strip_prefix("1..")?.parse().ok()
}

/// `ok N [- ]name[ # DIRECTIVE data]`.
fn parse_result(content: &str) -> Option<KtapTest> {
    let (ok, rest) = if let Some(r) = content.strip_prefix("not ok ") {
        (false, r)
    } else {
        (true, content.strip_prefix("ok ")?)
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let number: usize = rest[..digits].parse().ok()?;
    let rest = &rest[digits..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let (name, tail) = match rest.split_once('#') {
        Some((n, t)) => (n, Some(t.trim())),
        None => (rest, None),
    };
    let name = name.trim();
    let name = name.strip_prefix("- ").unwrap_or(name).to_string();
    let (directive, data) = match tail {
        None => (None, String::new()),
        Some(t) => {
            let (word, after) = t.split_once(' ').unwrap_or((t, ""));
            match Directive::parse(word) {
                Some(d) => (Some(d), after.trim().to_string()),
                None => (None, t.to_string()),
            }
        }
    };
    Some(KtapTest {
        number,
        name,
        ok,
        directive,
        data,
        ..Default::default()
    })
}

/// Parses the first KTAP document in `text`. Text before the version line (boot messages) is
/// ignored, and so is any prefix on the version line itself (a console timestamp): the same
/// number of columns is cut from every later line. Lines that are none of the four kinds are
/// unknown lines, which the spec allows anywhere. Errors only when there is no version line.
pub fn parse(text: &str) -> Result<KtapDocument, String> {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let mut prefix = None;
    for line in lines.by_ref() {
        if let Some(at) = ["KTAP version 1", "TAP version 13", "TAP version 14"]
            .iter()
            .find_map(|v| line.find(v))
        {
            if is_version_line(line[at..].trim_end()) {
                prefix = Some(at);
                break;
            }
        }
    }
    let prefix = prefix.ok_or("no KTAP version line")?;
    let mut stack = vec![Level::new(0)];
    let mut problems = Vec::new();
    for raw in lines {
        let line = raw.get(prefix..).unwrap_or("");
        let indent = line.len() - line.trim_start_matches(' ').len();
        let content = line[indent..].trim_end();
        let depth = stack.len();
        let top = stack.last_mut().expect("the root level is never popped");
        if let Some(diag) = content.strip_prefix('#') {
            // Diagnostics belong to the next result line; after a subtest block that is the
            // parent's, which also receives the subtest level's leftovers.
            top.diagnostics
                .push(diag.strip_prefix(' ').unwrap_or(diag).to_string());
        } else if is_version_line(content) && indent == top.indent + INDENT.len() {
            stack.push(Level::new(indent));
        } else if let Some(n) = parse_plan(content).filter(|_| indent == top.indent) {
            top.plan = Some(n);
        } else if let Some(mut test) = parse_result(content) {
            if indent == top.indent {
                test.diagnostics = std::mem::take(&mut top.diagnostics);
                push_result(top, test, &mut problems);
            } else if depth > 1 && indent + INDENT.len() == top.indent {
                let child = stack.pop().expect("checked above");
                check_plan(&child, &mut problems);
                let parent = stack.last_mut().expect("checked above");
                test.diagnostics = std::mem::take(&mut parent.diagnostics);
                test.diagnostics.extend(child.diagnostics);
                test.plan = child.plan;
                test.subtests = child.tests;
                push_result(parent, test, &mut problems);
            }
            // A result line at any other indentation is console noise: an unknown line.
        }
    }
    if stack.len() > 1 {
        problems.push(format!(
            "the document stops inside a subtest (after {} results)",
            count(&stack[0].tests)
        ));
    }
    // Fold any unterminated subtests so what they reported is not lost.
    while stack.len() > 1 {
        let child = stack.pop().expect("len > 1");
        let parent = stack.last_mut().expect("len >= 1");
        parent.tests.push(KtapTest {
            number: parent.tests.len() + 1,
            name: String::new(),
            ok: false,
            directive: Some(Directive::Error),
            data: "no result line: the output stopped".into(),
            diagnostics: child.diagnostics,
            plan: child.plan,
            subtests: child.tests,
        });
    }
    let root = stack.pop().expect("the root level");
    check_plan(&root, &mut problems);
    Ok(KtapDocument {
        plan: root.plan,
        tests: root.tests,
        problems,
    })
}

fn count(tests: &[KtapTest]) -> usize {
    tests.iter().map(|t| 1 + count(&t.subtests)).sum()
}

fn push_result(level: &mut Level, test: KtapTest, problems: &mut Vec<String>) {
    let want = level.tests.len() + 1;
    if test.number != want {
        problems.push(format!(
            "test `{}` is numbered {}, expected {want}",
            test.name, test.number
        ));
    }
    level.tests.push(test);
}

fn check_plan(level: &Level, problems: &mut Vec<String>) {
    if let Some(plan) = level.plan {
        if plan != level.tests.len() {
            problems.push(format!("plan 1..{plan} but {} results", level.tests.len()));
        }
    }
}

/// What a KTAP test result means as a verdict: SKIP is a skip, `ok` a pass, `not ok` a failure
/// whose message is the diagnostic lines (or the directive's data).
pub fn verdict_of(test: &KtapTest) -> Verdict {
    if test.directive == Some(Directive::Skip) {
        return Verdict::Skip {
            reason: test.data.clone(),
        };
    }
    if test.ok {
        return Verdict::Pass;
    }
    let kind = match test.directive {
        Some(Directive::Timeout) => FailKind::Timeout,
        Some(Directive::Error) => FailKind::Error,
        _ => FailKind::Mismatch,
    };
    let message = if test.diagnostics.is_empty() {
        test.data.clone()
    } else {
        test.diagnostics.join("\n")
    };
    Verdict::fail(kind, message)
}

/// The run time a result line carries as its data (`12 ms`), or zero.
pub fn duration_of(test: &KtapTest) -> Duration {
    if test.directive.is_some() {
        return Duration::ZERO;
    }
    test.data
        .strip_suffix(" ms")
        .and_then(|n| n.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::ZERO)
}

/// Trial run times by name, for trials whose result line carries one.
pub fn trial_durations(doc: &KtapDocument) -> HashMap<String, Duration> {
    let mut out = HashMap::new();
    for case in &doc.tests {
        for trial in &case.subtests {
            out.insert(format!("{}::{}", case.name, trial.name), duration_of(trial));
        }
    }
    out
}

/// Trial verdicts by name (`topic::case::memory`) from a document in this module's layout.
pub fn trial_verdicts(doc: &KtapDocument) -> HashMap<String, Verdict> {
    let mut out = HashMap::new();
    for case in &doc.tests {
        for trial in &case.subtests {
            out.insert(format!("{}::{}", case.name, trial.name), verdict_of(trial));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::memory::MemoryType;
    use std::time::Duration;

    fn result(name: &str, memory: MemoryType, verdict: Verdict) -> TrialResult {
        TrialResult::unreported(name, memory, verdict)
    }

    fn sample() -> Vec<TrialResult> {
        vec![
            result("wp::a::anon", MemoryType::Anon, Verdict::Pass),
            result(
                "wp::a::shmem",
                MemoryType::Shmem,
                Verdict::fail(
                    FailKind::Mismatch,
                    "step 3 `write pages 0`:\n    messages: expected [a], observed [b]",
                ),
            ),
            result(
                "wp::a::hugetlb",
                MemoryType::Hugetlb,
                Verdict::Skip {
                    reason: "needs 4 free huge pages".into(),
                },
            ),
            result(
                "wp::b::anon",
                MemoryType::Anon,
                Verdict::fail(FailKind::Timeout, "TIMEOUT: no result after 10.0 s"),
            ),
            result(
                "pm::c::hugetlb",
                MemoryType::Hugetlb,
                Verdict::Skip {
                    reason: "kernel lacks X".into(),
                },
            ),
        ]
    }

    #[test]
    fn writer_output_follows_the_spec_layout() {
        let text = document(&sample());
        let want = "\
KTAP version 1
1..3
  KTAP version 1
  1..3
  ok 1 anon
  # step 3 `write pages 0`:
  #     messages: expected [a], observed [b]
  not ok 2 shmem
  ok 3 hugetlb # SKIP needs 4 free huge pages
# 1 of 3 memory types failed
not ok 1 wp::a
  KTAP version 1
  1..1
  # TIMEOUT: no result after 10.0 s
  not ok 1 anon # TIMEOUT TIMEOUT: no result after 10.0 s
# 1 of 1 memory types failed
not ok 2 wp::b
  KTAP version 1
  1..1
  ok 1 hugetlb # SKIP kernel lacks X
ok 3 pm::c # SKIP every memory type skipped
";
        assert_eq!(text, want);
    }

    #[test]
    fn every_line_is_one_of_the_spec_kinds_with_two_space_nesting() {
        for line in document(&sample()).lines() {
            let indent = line.len() - line.trim_start().len();
            assert!(
                indent % 2 == 0 && indent <= 2,
                "indentation is a multiple of two spaces: {line:?}"
            );
            let c = line.trim_start();
            assert!(
                is_version_line(c)
                    || parse_plan(c).is_some()
                    || c.starts_with('#')
                    || parse_result(c).is_some(),
                "unknown line {line:?}"
            );
        }
    }

    #[test]
    fn parser_reads_back_what_the_writer_wrote() {
        let results = sample();
        let doc = parse(&document(&results)).expect("a document");
        assert!(doc.is_complete(), "{:?}", doc.problems);
        let verdicts = trial_verdicts(&doc);
        assert_eq!(verdicts.len(), results.len());
        for r in &results {
            assert_eq!(verdicts[&r.name], r.verdict, "{}", r.name);
        }
        assert!(!doc.tests[0].ok && doc.tests[2].directive == Some(Directive::Skip));
    }

    #[test]
    fn run_times_travel_as_result_line_data() {
        let mut results = sample();
        results[0].duration = Duration::from_millis(12);
        results[1].duration = Duration::from_millis(7);
        let text = document(&results);
        assert!(text.contains("  ok 1 anon # 12 ms\n"), "{text}");
        assert!(text.contains("  not ok 2 shmem # 7 ms\n"), "{text}");
        let doc = parse(&text).expect("a document");
        let times = trial_durations(&doc);
        assert_eq!(times["wp::a::anon"], Duration::from_millis(12));
        assert_eq!(times["wp::a::shmem"], Duration::from_millis(7));
        assert_eq!(
            times["wp::a::hugetlb"],
            Duration::ZERO,
            "a skip carries no time"
        );
        assert_eq!(trial_verdicts(&doc)["wp::a::anon"], Verdict::Pass);
    }

    #[test]
    fn the_stream_writes_cases_in_plan_order_whatever_order_trials_finish_in() {
        let results = sample();
        let names: Vec<String> = results.iter().map(|r| r.name.clone()).collect();
        let mut buf = Vec::new();
        {
            let stream = KtapStream::start(&mut buf, &names);
            for r in results.iter().rev() {
                stream.record(r);
            }
        }
        assert_eq!(String::from_utf8(buf).expect("utf-8"), document(&results));
    }

    #[test]
    fn parses_the_spec_example_with_console_noise_and_prefixes() {
        let text = "\
[    0.000000] Linux version 6.1
[    1.000000] KTAP version 1
[    1.000000] 1..2
[    1.000000]   KTAP version 1
[    1.000000]   1..2
[    1.000000]   # test_1: initializing
[    1.000000]   ok 1 test_1
[    1.000000] random: crng init done
[    1.000000]   ok 2 - test_2 # SKIP test_2 skipped
[    1.000000] ok 1 example_test_1
[    1.000000] not ok 2 example_test_2 # TIMEOUT 30 seconds
";
        let doc = parse(text).expect("a document");
        assert!(doc.is_complete(), "{:?}", doc.problems);
        assert_eq!(
            doc.tests[0].subtests[0].diagnostics,
            vec!["test_1: initializing"]
        );
        assert_eq!(doc.tests[0].subtests[1].name, "test_2");
        assert_eq!(doc.tests[0].subtests[1].data, "test_2 skipped");
        assert_eq!(doc.tests[1].directive, Some(Directive::Timeout));
        assert!(!doc.tests[1].ok);
    }

    #[test]
    fn a_truncated_document_is_incomplete_and_keeps_what_it_had() {
        let full = document(&sample());
        let cut = &full[..full
            .find("  KTAP version 1\n  1..1\n  # TIMEOUT")
            .expect("second case")
            + 24];
        let doc = parse(cut).expect("a document");
        assert!(!doc.is_complete());
        assert!(
            doc.problems
                .iter()
                .any(|p| p.contains("stops inside a subtest")),
            "{:?}",
            doc.problems
        );
        assert_eq!(trial_verdicts(&doc)["wp::a::anon"], Verdict::Pass);
    }

    #[test]
    fn misnumbered_results_and_wrong_plans_are_problems() {
        let doc = parse("KTAP version 1\n1..3\nok 1 a\nok 3 b\n").expect("a document");
        assert!(!doc.is_complete());
        assert!(
            doc.problems
                .iter()
                .any(|p| p.contains("numbered 3, expected 2")),
            "{:?}",
            doc.problems
        );
        assert!(
            doc.problems
                .iter()
                .any(|p| p.contains("plan 1..3 but 2 results")),
            "{:?}",
            doc.problems
        );
    }

    #[test]
    fn no_version_line_is_an_error_and_hashes_in_names_are_escaped() {
        assert!(parse("ok 1 a\n").is_err());
        let mut out = String::new();
        trial_lines(&mut out, "", 1, "a#b\nc", &Verdict::Pass, Duration::ZERO);
        assert_eq!(out, "ok 1 a_b c\n");
    }
}
