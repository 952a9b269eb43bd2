//! Checks of the run output through the real command line on the real kernel: the JSON run
//! record, JUnit (validated against ci/junit.xsd by xmllint when installed), baselines
//! (XFAIL, XPASS, --strict-baseline), `compare` exit codes, and the HTML report rendered by a
//! headless Chromium when installed. Missing tools make a test ignored with the reason, never
//! a pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use libtest_mimic::{Completion, Failed, Trial};
use uffd_conform::output::record::Status;
use uffd_conform::output::{junit, RunRecord};

mod common;
use common::{check, chromium, cli, root, screenshot};

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    libtest_mimic::run(&args, trials()).exit();
}

fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "output::results-schema-is-current",
            results_schema_is_current,
        ),
        Trial::test(
            "output::json-record-of-a-real-run",
            json_record_of_a_real_run,
        ),
        Trial::test(
            "output::human-output-shows-xfail-and-xpass",
            human_output_shows_xfail_and_xpass,
        ),
        Trial::ignorable_test(
            "output::junit-validates-against-xsd",
            junit_validates_against_xsd,
        ),
        Trial::test(
            "output::strict-baseline-fails-on-xpass",
            strict_baseline_fails_on_xpass,
        ),
        Trial::test("output::bad-baseline-exits-2", bad_baseline_exits_2),
        Trial::test("output::compare-exit-codes", compare_exit_codes),
        Trial::ignorable_test("output::html-report-in-chromium", html_report_in_chromium),
    ]
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir()
        .join(format!("uffd-conform-test-{}", std::process::id()))
        .join("output");
    std::fs::create_dir_all(d.join("out")).expect("scratch dir");
    d
}

/// Known failures of the scenario: the wrong case on shmem (XFAIL), the good case on anon
/// (XPASS).
const BASELINE: &str = "\
- trial: out::unexpected-fault::shmem
  reason: \"deliberately wrong case <for tests> & more\"
  link: https://example.org/known?id=1&x=2
- case: out::protect-then-write-faults-once
  memory: anon
  reason: listed although it passes
";

/// One real run shared by the tests: a good case and a deliberately wrong one (the meta-test
/// without expect_failure) on anon and shmem, judged with [`BASELINE`].
struct Scenario {
    out: Output,
    json: PathBuf,
    junit: PathBuf,
}

fn scenario() -> Result<&'static Scenario, Failed> {
    static S: OnceLock<Result<Scenario, String>> = OnceLock::new();
    S.get_or_init(|| {
        let d = dir();
        let wrong = common::wrong_case()?;
        std::fs::write(d.join("out/wrong.yaml"), wrong).map_err(|e| e.to_string())?;
        std::fs::copy(
            root().join("cases/wp/protect-then-write-faults-once.yaml"),
            d.join("out/good.yaml"),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(d.join("baseline.yaml"), BASELINE).map_err(|e| e.to_string())?;
        let (json, junit) = (d.join("run.json"), d.join("run.xml"));
        let out = cli()
            .args(["run", "--no-provision", "-f", "::anon", "-f", "::shmem"])
            .arg(d.join("out"))
            .arg("--json")
            .arg(&json)
            .arg("--junit")
            .arg(&junit)
            .arg("--baseline")
            .arg(d.join("baseline.yaml"))
            .output()
            .map_err(|e| e.to_string())?;
        Ok(Scenario { out, json, junit })
    })
    .as_ref()
    .map_err(|e| Failed::from(e.clone()))
}

fn status_of(r: &RunRecord, name: &str) -> Option<Status> {
    r.trials.iter().find(|t| t.name == name).map(|t| t.status)
}

fn json_record_of_a_real_run() -> Result<(), Failed> {
    let s = scenario()?;
    let stdout = String::from_utf8_lossy(&s.out.stdout);
    check(s.out.status.code() == Some(1), || {
        format!(
            "exit {:?}, want 1 (a failure not in the baseline): {stdout}",
            s.out.status.code()
        )
    })?;
    let r = RunRecord::load(&s.json)?;
    let want = [
        ("out::unexpected-fault::anon", Status::Fail),
        ("out::unexpected-fault::shmem", Status::Xfail),
        ("out::unexpected-fault::shmem-private", Status::Fail),
        ("out::protect-then-write-faults-once::anon", Status::Xpass),
        ("out::protect-then-write-faults-once::shmem", Status::Pass),
    ];
    for (name, status) in want {
        check(status_of(&r, name) == Some(status), || {
            format!("{name}: {:?}, want {status:?}", status_of(&r, name))
        })?;
    }
    let s2 = &r.summary;
    check((s2.failed, s2.xfail, s2.xpass) == (2, 1, 1), || {
        format!("summary {s2:?}")
    })?;
    let t = r
        .trials
        .iter()
        .find(|t| t.name == "out::unexpected-fault::anon")
        .expect("checked above");
    let f = t
        .failure
        .as_ref()
        .ok_or("a failed trial has no failure detail")?;
    check(
        f.step == Some(3) && f.mismatches.iter().any(|m| m.check == "messages"),
        || format!("{f:?}"),
    )?;
    check(
        f.messages
            .iter()
            .any(|m| m.text.starts_with("pagefault write|wp @ page 0")),
        || format!("messages: {:?}", f.messages),
    )?;
    check(f.steps.len() == 3, || {
        format!("step records: {:?}", f.steps)
    })?;
    let k = &r.kernel;
    check(
        !k.release.is_empty()
            && k.uffd.as_ref().is_some_and(|u| {
                u.features
                    .contains(&"UFFD_FEATURE_PAGEFAULT_FLAG_WP".to_string())
            }),
        || format!("{k:?}"),
    )?;
    check(
        k.config.source.is_some() || k.config.error.is_some(),
        || "config neither read nor explained".into(),
    )?;
    check(
        r.started_at.ends_with('Z') && r.started_at.len() == 20,
        || format!("started_at {}", r.started_at),
    )?;
    Ok(())
}

fn human_output_shows_xfail_and_xpass() -> Result<(), Failed> {
    let s = scenario()?;
    let stdout = String::from_utf8_lossy(&s.out.stdout);
    for want in [
        "XFAIL   out::unexpected-fault::shmem",
        "known failure: deliberately wrong case <for tests> & more (https://example.org/known?id=1&x=2)",
        "XPASS   out::protect-then-write-faults-once::anon",
        "FAIL    out::unexpected-fault::anon",
        ": 1 xfail, 1 xpass (XPASS does not fail the run",
    ] {
        check(stdout.contains(want), || format!("stdout lacks {want:?}:\n{stdout}"))?;
    }
    check(
        stdout.ends_with("\n3 passed, 2 failed, 0 skipped\n"),
        || format!("last line:\n{stdout}"),
    )
}

fn junit_validates_against_xsd() -> Result<Completion, Failed> {
    let s = scenario()?;
    let xml = std::fs::read_to_string(&s.junit).map_err(|e| e.to_string())?;
    // Structure, checked here whatever tools the machine has.
    for want in [
        "<testsuite name=\"out\" tests=\"6\" failures=\"2\" errors=\"0\" skipped=\"1\"",
        "<testcase classname=\"out\" name=\"unexpected-fault::anon\"",
        "<failure type=\"mismatch\" message=\"step 3 `write pages 0 data 2`:&#10;",
        "<skipped type=\"xfail\" message=\"XFAIL: known failure: deliberately wrong case &lt;for tests&gt; &amp; more",
        "<system-out>XPASS: passed, but the baseline lists it as failing",
    ] {
        check(xml.contains(want), || format!("JUnit lacks {want:?}:\n{xml}"))?;
    }
    if Command::new("xmllint").arg("--version").output().is_err() {
        return Ok(Completion::ignored_with("xmllint is not installed (Debian: apt-get install libxml2-utils); JUnit checked structurally only"));
    }
    // The real run, and the same record with a skipped and a strict-XPASS trial, so every
    // element the writer can produce is validated.
    let mut r = RunRecord::load(&s.json)?;
    r.trials[4].status = Status::Skip;
    r.trials[4].skip_reason = Some("needs \"swap\" & <root>\u{7}".into());
    r.baseline
        .as_mut()
        .ok_or("the scenario has a baseline")?
        .strict = true;
    let variant = dir().join("variant.xml");
    std::fs::write(&variant, junit::render(&r)).map_err(|e| e.to_string())?;
    for file in [&s.junit, &variant] {
        let out = Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(root().join("ci/junit.xsd"))
            .arg(file)
            .output()
            .map_err(|e| e.to_string())?;
        check(out.status.success(), || {
            format!(
                "{} does not validate: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    }
    // The schema must be able to say no: a testcase without classname is rejected.
    let broken = dir().join("broken.xml");
    let text = std::fs::read_to_string(&s.junit).map_err(|e| e.to_string())?;
    std::fs::write(&broken, text.replacen("classname=\"out\" ", "", 1))
        .map_err(|e| e.to_string())?;
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(root().join("ci/junit.xsd"))
        .arg(&broken)
        .output()
        .map_err(|e| e.to_string())?;
    check(!out.status.success(), || {
        "ci/junit.xsd accepts a testcase without classname".into()
    })?;
    Ok(Completion::Completed)
}

fn strict_baseline_fails_on_xpass() -> Result<(), Failed> {
    let d = dir();
    let base = d.join("only-xpass.yaml");
    std::fs::write(
        &base,
        "- trial: wp::protect-then-write-faults-once::anon\n  reason: listed although it passes\n",
    )
    .map_err(|e| e.to_string())?;
    let run = |strict: bool| {
        let mut c = cli();
        c.args([
            "run",
            "--no-provision",
            "cases/wp/protect-then-write-faults-once.yaml",
            "-f",
            "::anon",
            "--baseline",
        ])
        .arg(&base);
        if strict {
            c.arg("--strict-baseline");
        }
        c.output().map_err(|e| e.to_string())
    };
    let lenient = run(false)?;
    let stdout = String::from_utf8_lossy(&lenient.stdout);
    check(
        lenient.status.code() == Some(0)
            && stdout.contains("XPASS   wp::protect-then-write-faults-once::anon"),
        || format!("lenient: exit {:?}: {stdout}", lenient.status.code()),
    )?;
    let strict = run(true)?;
    let stdout = String::from_utf8_lossy(&strict.stdout);
    check(
        strict.status.code() == Some(1) && stdout.ends_with("\n0 passed, 1 failed, 0 skipped\n"),
        || format!("strict: exit {:?}: {stdout}", strict.status.code()),
    )
}

fn bad_baseline_exits_2() -> Result<(), Failed> {
    let bad = dir().join("bad-baseline.yaml");
    std::fs::write(
        &bad,
        "- trial: wp::x::anon\n  reason: r\n- case: wp\n  reason: r\n",
    )
    .map_err(|e| e.to_string())?;
    let out = cli()
        .args(["run", "--no-provision", "--baseline"])
        .arg(&bad)
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "error: {}: entry 2: case `wp` is not `topic::case`",
        bad.display()
    );
    check(
        out.status.code() == Some(2) && stderr.contains(&want),
        || format!("exit {:?}, stderr {stderr}", out.status.code()),
    )?;
    check(!stderr.contains("panicked"), || stderr.to_string())
}

fn compare_exit_codes() -> Result<(), Failed> {
    let s = scenario()?;
    let mut before = RunRecord::load(&s.json)?;
    // In the earlier run the wrong case's anon trial passed: now it is a regression.
    let t = before
        .trials
        .iter_mut()
        .find(|t| t.name == "out::unexpected-fault::anon")
        .ok_or("no trial")?;
    t.status = Status::Pass;
    before.kernel.release = "6.1.0-before".into();
    let a = dir().join("before.json");
    std::fs::write(&a, before.to_json()).map_err(|e| e.to_string())?;
    let compare = |x: &Path, y: &Path| {
        cli()
            .arg("compare")
            .arg(x)
            .arg(y)
            .output()
            .map_err(|e| e.to_string())
    };
    let out = compare(&a, &s.json)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    check(out.status.code() == Some(1), || {
        format!("exit {:?}, want 1: {stdout}", out.status.code())
    })?;
    for want in ["# uffd-conform: 6.1.0-before -> ", "## Newly failing (1)", "| out::unexpected-fault::anon | PASS | FAIL | step 3 `write pages 0 data 2`: messages: expected no message", "1 regression (newly failing)."] {
        check(stdout.contains(want), || format!("compare lacks {want:?}:\n{stdout}"))?;
    }
    let same = compare(&s.json, &s.json)?;
    check(same.status.code() == Some(0), || {
        format!("same run: exit {:?}", same.status.code())
    })?;
    let missing = compare(&a, &dir().join("nope.json"))?;
    let stderr = String::from_utf8_lossy(&missing.stderr);
    check(
        missing.status.code() == Some(2) && stderr.contains("nope.json: No such file"),
        || format!("missing file: exit {:?}, {stderr}", missing.status.code()),
    )
}

fn html_report_in_chromium() -> Result<Completion, Failed> {
    let s = scenario()?;
    let html = dir().join("report.html");
    let out = cli()
        .arg("report")
        .arg(&s.json)
        .arg("-o")
        .arg(&html)
        .output()
        .map_err(|e| e.to_string())?;
    check(out.status.success(), || {
        format!(
            "report: exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let page = std::fs::read_to_string(&html).map_err(|e| e.to_string())?;
    for want in [
        "2 trials failed",
        "Failed at step <b>3</b>",
        "deliberately wrong case &lt;for tests&gt; &amp; more",
    ] {
        check(page.contains(want), || format!("report lacks {want:?}"))?;
    }
    let Some(browser) = chromium() else {
        return Ok(Completion::ignored_with("chromium is not installed (Debian: apt-get install chromium); report checked as text only"));
    };
    screenshot(
        browser,
        &dir().join("chromium-profile"),
        &html,
        &dir().join("report.png"),
    )?;
    Ok(Completion::Completed)
}

fn results_schema_is_current() -> Result<(), Failed> {
    let path = root().join("schema/results.schema.json");
    let committed =
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    check(
        committed == uffd_conform::output::record::json_schema(),
        || {
            "schema/results.schema.json is stale: run `cargo run -- schema --results > schema/results.schema.json`".into()
        },
    )
}
