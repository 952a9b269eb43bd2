//! `cargo test` entry: one libtest-mimic trial per case and memory type (`topic::case::memory`),
//! the meta-tests (cases built to fail, under tests/meta), and checks of the published schema
//! and the command line. Run as root, it provisions huge pages and swap and restores them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use uffd_conform::case::load_path;
use uffd_conform::kernel::probe::Probe;
use uffd_conform::plan::plan;
use uffd_conform::trial::verdict::Verdict;
use uffd_conform::{provision, run};

mod output;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    uffd_conform::trial::child::run_if_child();
    let args = Arguments::from_args();

    let mut cases = Vec::new();
    for dir in ["cases", "tests/meta"] {
        match load_path(&root().join(dir)) {
            Ok(mut c) => cases.append(&mut c),
            Err(errors) => {
                for e in errors {
                    eprintln!("error: {e}");
                }
                std::process::exit(2);
            }
        }
    }
    let planned = plan(&cases);

    let mut probe = Probe::run();
    let provisioning = !args.list && std::env::var_os("UFFD_CONFORM_NO_PROVISION").is_none();
    let guard = provisioning.then(|| provision::provision(run::request_for(&planned), &mut probe));
    for note in guard.iter().flat_map(|g| g.notes.iter()) {
        eprintln!("provision: {note}");
    }
    let probe = Arc::new(probe);
    let baseline = Arc::new(load_baseline());

    let mut trials: Vec<Trial> = planned
        .into_iter()
        .map(|t| {
            let probe = probe.clone();
            let baseline = baseline.clone();
            Trial::ignorable_test(t.name.clone(), move || {
                let verdict = run::run_planned(&t, &probe).verdict;
                let known = baseline.as_ref().as_ref().and_then(|(file, b)| {
                    b.lookup(&t.name, t.memory).map(|e| (file.clone(), e.reason.clone()))
                });
                match (verdict, known) {
                    (Verdict::Pass, None) => Ok(Completion::Completed),
                    // A listed deviation that no longer happens must be noticed.
                    (Verdict::Pass, Some((file, reason))) => Err(Failed::from(format!(
                        "XPASS: {file} lists this trial as a known deviation ({reason}), but it passes: remove the entry"
                    ))),
                    (Verdict::Skip { reason }, _) => Ok(Completion::ignored_with(reason)),
                    (Verdict::Fail { message, .. }, Some((file, reason))) => Ok(Completion::ignored_with(format!(
                        "XFAIL, a known kernel deviation listed in {file} ({reason}): {}",
                        message.replace('\n', " ")
                    ))),
                    (Verdict::Fail { message, .. }, None) => Err(Failed::from(message)),
                }
            })
        })
        .collect();
    trials.push(Trial::test("suite::schema-is-current", schema_is_current));
    trials.push(Trial::test(
        "suite::cli-yaml-error-exits-2",
        cli_yaml_error_exits_2,
    ));
    trials.push(Trial::test(
        "suite::cli-run-passes-and-summarises",
        cli_run_passes_and_summarises,
    ));
    trials.push(Trial::test(
        "suite::cli-failure-exits-1",
        cli_failure_exits_1,
    ));
    trials.extend(output::trials());
    trials.push(Trial::test(
        "suite::cli-ktap-output-parses",
        cli_ktap_output_parses,
    ));
    trials.push(Trial::ignorable_test(
        "suite::vm-boots-a-debian-kernel",
        vm_boots_a_debian_kernel,
    ));
    trials.push(Trial::ignorable_test(
        "suite::vm-two-nodes-run-every-migration",
        vm_two_nodes_run_every_migration,
    ));
    trials.push(Trial::test(
        "suite::coverage-appendix-matches-the-corpus",
        coverage_appendix_matches_the_corpus,
    ));
    trials.push(Trial::test(
        "suite::ci-configs-parse-and-name-real-scripts",
        ci_configs_parse,
    ));

    let conclusion = libtest_mimic::run(&args, trials);
    drop(guard);
    conclusion.exit();
}

/// The baseline of known kernel deviations named by UFFD_CONFORM_BASELINE, if any. Not used
/// unless asked for: a kernel developer's run must show every deviation as a failure.
fn load_baseline() -> Option<(String, uffd_conform::output::baseline::Baseline)> {
    let path = std::env::var_os("UFFD_CONFORM_BASELINE")?;
    let path = std::path::PathBuf::from(path);
    match uffd_conform::output::baseline::Baseline::load(&path, true) {
        Ok(b) => {
            eprintln!("baseline: known deviations from {}", path.display());
            Some((path.display().to_string(), b))
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

/// schema/case.schema.json must be what the types generate (run `uffd-conform schema`).
fn schema_is_current() -> Result<(), Failed> {
    let path = root().join("schema/case.schema.json");
    let committed =
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if committed != uffd_conform::case::json_schema() {
        return Err(
            "schema/case.schema.json is stale: run `cargo run -- schema > schema/case.schema.json`"
                .into(),
        );
    }
    Ok(())
}

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_uffd-conform"));
    c.current_dir(root());
    c
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("uffd-conform-test-{}", std::process::id()))
        .join("cli");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("scratch file");
    path
}

fn cli_yaml_error_exits_2() -> Result<(), Failed> {
    let bad = scratch(
        "bad.yaml",
        "name: broken\nabout: x\nrefs: [{seed: '1'}]\npages: 1\nsteps:\n  - write: {pages: 0\n",
    );
    let out = cli()
        .args(["run", "--no-provision"])
        .arg(&bad)
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2) {
        return Err(format!("exit {:?}, want 2; stderr: {stderr}", out.status.code()).into());
    }
    let want = format!("{}:6:12: unclosed bracket", bad.display());
    if !stderr.contains(&want) {
        return Err(format!("stderr does not name {want}: {stderr}").into());
    }
    Ok(())
}

fn cli_run_passes_and_summarises() -> Result<(), Failed> {
    let out = cli()
        .args([
            "run",
            "--no-provision",
            "cases/wp/protect-then-write-faults-once.yaml",
            "-f",
            "::anon",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(0) || !stdout.contains("1 passed, 0 failed, 0 skipped") {
        return Err(format!("exit {:?}, stdout: {stdout}", out.status.code()).into());
    }
    Ok(())
}

/// A deliberately wrong case (tests/meta/unexpected-fault.yaml) without its `expect_failure`:
/// an ordinary case that fails at step 3.
pub(crate) fn wrong_case() -> Result<String, String> {
    let text = std::fs::read_to_string(root().join("tests/meta/unexpected-fault.yaml"))
        .map_err(|e| e.to_string())?;
    Ok(text
        .split("expect_failure:")
        .next()
        .unwrap_or_default()
        .to_string())
}

fn cli_failure_exits_1() -> Result<(), Failed> {
    let wrong = wrong_case()?;
    let path = scratch("wrong.yaml", &wrong);
    let out = cli()
        .args(["run", "--no-provision", "-f", "::anon"])
        .arg(&path)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(1) || !stdout.contains("step 3 `write pages 0 data 2`") {
        return Err(format!("exit {:?}, stdout: {stdout}", out.status.code()).into());
    }
    Ok(())
}

/// Boots the Debian kernel that ci/fetch-kernel caches under target/kernels and runs one case
/// in it.
fn vm_boots_a_debian_kernel() -> Result<Completion, Failed> {
    run_in_debian_vm(
        "wp::protect-then-write-faults-once::",
        "5 passed, 0 failed, 0 skipped",
    )
}

/// The host has one NUMA node, where `migrate` steps mostly skip; the two-node guest that
/// `vm` boots runs every migration case on every memory type, none skipped.
fn vm_two_nodes_run_every_migration() -> Result<Completion, Failed> {
    let cases =
        load_path(&root().join("cases/migrate")).map_err(|_| "cannot load cases/migrate")?;
    let trials = plan(&cases).len();
    run_in_debian_vm(
        "migrate::",
        &format!("{trials} passed, 0 failed, 0 skipped"),
    )
}

/// Runs `vm --bisect -f FILTER` on the newest kernel under target/kernels and requires the
/// summary line `want`. Skips, with the reason, when qemu, the kernel or the static suite
/// binary is missing (.ci/run provides all three).
fn run_in_debian_vm(filter: &str, want: &str) -> Result<Completion, Failed> {
    if uffd_conform::vm::qemu::find_qemu().is_none() {
        return Ok(Completion::ignored_with(
            "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)",
        ));
    }
    let Some(kernel) = std::fs::read_dir(root().join("target/kernels"))
        .ok()
        .and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("vmlinuz").is_file())
                .max()
        })
    else {
        return Ok(Completion::ignored_with(
            "no kernel under target/kernels (run ci/fetch-kernel PACKAGE)",
        ));
    };
    if let Err(e) = uffd_conform::vm::static_binary::locate(None) {
        return Ok(Completion::ignored_with(e));
    }
    let out = cli()
        .args(["vm", "--bisect", "--timeout", "600", "-f", filter])
        .arg("--kernel")
        .arg(kernel.join("vmlinuz"))
        .arg("--modules")
        .arg(kernel.join("modules"))
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(0) || !stdout.contains(want) {
        return Err(format!(
            "want `{want}`; exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
            out.status.code()
        )
        .into());
    }
    Ok(Completion::Completed)
}

/// docs/coverage.md ends with the appendix `list --coverage` generates from cases/.
fn coverage_appendix_matches_the_corpus() -> Result<(), Failed> {
    let out = cli()
        .args(["list", "--coverage"])
        .output()
        .map_err(|e| e.to_string())?;
    let generated = String::from_utf8_lossy(&out.stdout);
    let doc =
        std::fs::read_to_string(root().join("docs/coverage.md")).map_err(|e| e.to_string())?;
    if !out.status.success() || !doc.ends_with(generated.as_ref()) {
        return Err("docs/coverage.md's appendix is stale: replace it with the output of `uffd-conform list --coverage`".into());
    }
    Ok(())
}

/// The example CI configs in ci/ are valid YAML, and every ci/ script they name exists.
fn ci_configs_parse() -> Result<(), Failed> {
    for file in ["ci/gitlab-ci.yml", "ci/github-actions.yml"] {
        let text =
            std::fs::read_to_string(root().join(file)).map_err(|e| format!("{file}: {e}"))?;
        serde_saphyr::from_str::<serde_json::Value>(&text).map_err(|e| format!("{file}: {e}"))?;
        for word in
            text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '(' || c == ')')
        {
            if let Some(script) = word
                .strip_prefix("ci/")
                .filter(|s| !s.is_empty() && !s.contains('$'))
            {
                let path = root().join("ci").join(script.trim_end_matches([';', ',']));
                if !path.exists() {
                    return Err(format!("{file} names {word}, which does not exist").into());
                }
            }
        }
    }
    Ok(())
}

/// `run --format ktap` prints only KTAP on stdout, which our parser reads back completely.
fn cli_ktap_output_parses() -> Result<(), Failed> {
    let out = cli()
        .args([
            "run",
            "--no-provision",
            "--format",
            "ktap",
            "cases/wp/protect-then-write-faults-once.yaml",
            "-f",
            "::anon",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = uffd_conform::ktap::parse(&stdout).map_err(|e| format!("{e}: {stdout}"))?;
    let verdicts = uffd_conform::ktap::trial_verdicts(&doc);
    if !stdout.starts_with("KTAP version 1\n1..1\n")
        || !doc.is_complete()
        || stdout.contains("passed,")
    {
        return Err(format!("not clean KTAP: {:?}\n{stdout}", doc.problems).into());
    }
    if out.status.code() != Some(0)
        || verdicts.get("wp::protect-then-write-faults-once::anon") != Some(&Verdict::Pass)
    {
        return Err(format!("exit {:?}, verdicts {verdicts:?}", out.status.code()).into());
    }
    Ok(())
}
