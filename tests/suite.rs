//! The suite's own checks, through its command line and published files: schemas, known bugs
//! naming real cases, exit codes, KTAP, the VM runner on a Debian kernel, the coverage
//! appendix, and the example CI configs.

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use uffd_conform::case::load_path;
use uffd_conform::output::known_bugs::KnownBugs;
use uffd_conform::run::plan::plan;
use uffd_conform::trial::verdict::Verdict;

mod common;
use common::{cli, root, scratch, wrong_case};

fn main() {
    let args = Arguments::from_args();
    let cases = common::load_corpus();
    let mut trials = Vec::new();
    trials.push(Trial::test("suite::schema-is-current", schema_is_current));
    let names: Vec<String> = cases
        .iter()
        .map(|c| format!("{}::{}", c.topic, c.case.name))
        .collect();
    trials.push(Trial::test(
        "suite::known-bugs-name-real-cases",
        move || known_bugs_name_real_cases(&names),
    ));
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
    trials.push(Trial::ignorable_test(
        "suite::vm-runs-every-stress-case",
        vm_runs_every_stress_case,
    ));
    trials.push(Trial::test(
        "suite::coverage-appendix-matches-the-corpus",
        coverage_appendix_matches_the_corpus,
    ));
    trials.push(Trial::test(
        "suite::ci-configs-parse-and-name-real-scripts",
        ci_configs_parse,
    ));

    libtest_mimic::run(&args, trials).exit();
}

/// Every known-bugs entry names cases of the corpus (a renamed case must not silently drop
/// out of the list) and gives each the signature of its failure (a known bug must not hide a
/// new failure of the same trial), and schema/known-bugs.schema.json is what the types
/// generate.
fn known_bugs_name_real_cases(cases: &[String]) -> Result<(), Failed> {
    let known = KnownBugs::builtin()?;
    for b in &known.bugs {
        for t in &b.trials {
            if t.message.is_none() {
                return Err(format!("known-bugs.yaml: entry `{}` covers a trial without `message`: give the signature of its failure", b.id).into());
            }
            if let Some(c) = t.case_name() {
                if !cases.iter().any(|n| n == c) {
                    return Err(format!("known-bugs.yaml: entry `{}` names case `{c}`, which the corpus does not have", b.id).into());
                }
            }
        }
    }
    let path = root().join("schema/known-bugs.schema.json");
    let committed =
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if committed != KnownBugs::json_schema() {
        return Err("schema/known-bugs.schema.json is stale: run `cargo run -- schema --known-bugs > schema/known-bugs.schema.json`".into());
    }
    Ok(())
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

fn cli_yaml_error_exits_2() -> Result<(), Failed> {
    let bad = scratch(
        "bad.yaml",
        "name: broken\nabout: x\nrefs: [{man: 'userfaultfd(2)'}]\npages: 1\nsteps:\n  - write: {pages: 0\n",
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

/// Stress trials that race into a known kernel bug of Debian's 6.12 (known-bugs.yaml
/// `pagemap-scan-…`): they fail in some runs, and this test judges raw verdicts (`--bisect`).
const KNOWN_BUG_RACES: &str = "stress::migrating-pages-race-scan-protect::";

/// The stress cases race threads inside the guest too (issue 15): every one passes on the
/// Debian 6.12 kernel, which has every feature they use.
fn vm_runs_every_stress_case() -> Result<Completion, Failed> {
    let cases = load_path(&root().join("cases/stress")).map_err(|_| "cannot load cases/stress")?;
    let names: Vec<String> = plan(&cases)
        .into_iter()
        .map(|t| t.name)
        .filter(|n| !n.starts_with(KNOWN_BUG_RACES))
        .collect();
    let filters: Vec<&str> = names.iter().map(String::as_str).collect();
    run_in_debian_vm_filters(
        &filters,
        &format!("{} passed, 0 failed, 0 skipped", names.len()),
    )
}

/// Runs `vm --bisect -f FILTER` on the newest kernel under target/kernels and requires the
/// summary line `want`. Skips, with the reason, when qemu, the kernel or the static suite
/// binary is missing (.ci/run provides all three).
fn run_in_debian_vm(filter: &str, want: &str) -> Result<Completion, Failed> {
    run_in_debian_vm_filters(&[filter], want)
}

/// As [`run_in_debian_vm`], with several `-f` filters (a trial runs when its name contains
/// one of them).
fn run_in_debian_vm_filters(filters: &[&str], want: &str) -> Result<Completion, Failed> {
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
    let tmp = std::env::temp_dir().join(format!(
        "uffd-conform-vmtest-{}-{}",
        std::process::id(),
        filters.iter().map(|f| f.len()).sum::<usize>()
    ));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let (json, junit) = (tmp.join("vm.json"), tmp.join("vm.xml"));
    let out = cli()
        // Two NUMA nodes (the default, said here): migration cases and the stress cases'
        // `migrate` op skip on one.
        .args(["vm", "--bisect", "--timeout", "600", "--numa-nodes", "2"])
        .args(filters.iter().flat_map(|f| ["-f", f]))
        .arg("--kernel")
        .arg(kernel.join("vmlinuz"))
        .arg("--modules")
        .arg(kernel.join("modules"))
        .arg("--json")
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
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
    // The VM's results go through run's reporter: a record of the booted kernel, and JUnit.
    let record = uffd_conform::output::RunRecord::load(&json)?;
    let release = std::fs::read_to_string(kernel.join("release")).unwrap_or_default();
    let booted = record
        .kernel
        .booted
        .as_ref()
        .ok_or("vm --json: no `kernel.booted`")?;
    if !booted.image.ends_with("vmlinuz")
        || (!release.trim().is_empty() && record.kernel.release != release.trim())
        || record.trials.is_empty()
    {
        return Err(format!(
            "vm --json: kernel {:?} (want release {release:?}), booted {booted:?}, {} trials",
            record.kernel.release,
            record.trials.len()
        )
        .into());
    }
    let xml = std::fs::read_to_string(&junit).map_err(|e| e.to_string())?;
    if !xml.contains("<testsuites") || !xml.contains(&record.trials[0].case) {
        return Err(format!("vm --junit: not a JUnit report of the run: {xml}").into());
    }
    let _ = std::fs::remove_dir_all(&tmp);
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
    let doc = uffd_conform::output::ktap::parse(&stdout).map_err(|e| format!("{e}: {stdout}"))?;
    let verdicts = uffd_conform::output::ktap::trial_verdicts(&doc);
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
