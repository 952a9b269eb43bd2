//! The run record: everything a run found, in one versioned structure. JSON (`--json`), JUnit,
//! the HTML report, `compare` and the human summary are all rendered from it, so they cannot
//! disagree. The format is documented in docs/results-json.md and published as
//! schema/results.schema.json (`uffd-conform schema --results`).

use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::baseline::{Baseline, BaselineMatch};
use super::kconfig::KernelConfig;
use super::known_bugs::{KernelId, KnownBugMatch, KnownBugs};
use crate::kernel::features::Feature;
use crate::kernel::memory::MemoryType;
use crate::kernel::probe::Probe;
use crate::kernel::uapi::IOCTL_NAMES;
use crate::trial::protocol::{Message, Outcome, ProcessReport};
use crate::trial::verdict::{FailKind, TrialResult, Verdict};

/// Bumped on any change a reader of the previous version would misread (a field removed,
/// renamed or given another meaning); new optional fields keep the version.
pub const SCHEMA_VERSION: u32 = 1;

/// One run of the suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunRecord {
    /// The version of this format (see docs/results-json.md).
    pub schema_version: u32,
    /// The tool that wrote the record.
    pub tool: Tool,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// Wall time of the whole run, in milliseconds.
    pub duration_ms: f64,
    /// Which trials the run selected.
    pub selection: Selection,
    /// The kernel the run was on.
    pub kernel: KernelInfo,
    /// Huge pages, swap and privileges during the run.
    pub machine: MachineSetup,
    /// The known-failures file the run was judged with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineInfo>,
    /// How the suite's known kernel bugs (known-bugs.yaml) were applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_bugs: Option<KnownBugsInfo>,
    /// Trial counts by status.
    pub summary: Summary,
    /// Every trial, in plan order (case order, then memory order).
    pub trials: Vec<TrialRecord>,
}

/// The tool that wrote a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Tool {
    /// The tool's name (`uffd-conform`).
    pub name: String,
    /// The tool's version.
    pub version: String,
}

/// What was asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Selection {
    /// Case files or folders.
    pub paths: Vec<String>,
    /// `-f` filters (a trial runs when its name contains one).
    pub filters: Vec<String>,
    /// Parallel trials (`-j`).
    pub jobs: usize,
    /// Whether provisioning was turned off (`--no-provision`).
    pub no_provision: bool,
}

/// The running kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KernelInfo {
    /// `uname -r`.
    pub release: String,
    /// `uname -v`.
    pub version: String,
    /// The kernel's userfaultfd-related config options.
    pub config: KernelConfig,
    /// What UFFDIO_API offered; null when userfaultfd could not be opened (see `uffd_error`).
    pub uffd: Option<UffdInfo>,
    /// Why userfaultfd could not be opened; absent when it could.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uffd_error: Option<String>,
    /// null: /dev/userfaultfd works; otherwise why not.
    pub dev_userfaultfd_error: Option<String>,
    /// Whether pagemap shows bit 57 on a write-protected page; null: not probed.
    pub pagemap_wp_bit: Option<bool>,
    /// `vm`: the kernel image booted under qemu (the fields above are the guest's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booted: Option<BootedKernel>,
}

/// A kernel `vm` booted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BootedKernel {
    /// The image passed to `--kernel`.
    pub image: String,
    /// The module tree passed to `--modules`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<String>,
    /// e.g. `qemu-system-x86_64 -accel tcg, 2 cpus, 2G, 2 NUMA nodes`.
    pub machine: String,
}

/// The known-bugs list a run was judged with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KnownBugsInfo {
    /// The file the list was loaded from.
    pub file: String,
    /// `--strict`: the list was not applied; every failure is a failure.
    pub strict: bool,
    /// The ids of the entries that apply to this kernel.
    pub applicable: Vec<String>,
}

/// What UFFDIO_API offered on the run's kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UffdInfo {
    /// `uffdio_api.features` as the kernel returned it, in hex (64-bit masks are strings so
    /// that JavaScript readers do not lose bits).
    pub features_raw: String,
    /// The bits above, by name (`UFFD_FEATURE_WP_ASYNC`); unknown bits as `bit N`.
    pub features: Vec<String>,
    /// `uffdio_api.ioctls`, in hex.
    pub ioctls_raw: String,
    /// The ioctls above, by name (`WRITEPROTECT`).
    pub ioctls: Vec<String>,
    /// Opened with UFFD_USER_MODE_ONLY because the full mode was refused.
    pub user_mode_only: bool,
}

/// Huge pages, swap and privileges during the run, and what provisioning changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MachineSetup {
    /// The default huge page size, in KiB.
    pub huge_page_size_kib: u64,
    /// HugePages_Total during the run.
    pub huge_pages_total: u64,
    /// HugePages_Free during the run.
    pub huge_pages_free: u64,
    /// Total swap, in KiB.
    pub swap_total_kib: u64,
    /// Whether the suite ran as root.
    pub is_root: bool,
    /// vm.unprivileged_userfaultfd; null: unknown.
    pub unprivileged_userfaultfd: Option<u32>,
    /// What provisioning did (or why it did not), e.g. `vm.nr_hugepages 0 -> 8 (restored afterwards)`.
    pub provisioning: Vec<String>,
}

/// The baseline a run was judged with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BaselineInfo {
    /// The baseline file.
    pub file: String,
    /// XPASS fails the run (`--strict-baseline`).
    pub strict: bool,
    /// How many entries the baseline has.
    pub entries: usize,
    /// Entries that matched no trial of this run (stale or misspelt).
    pub unmatched: Vec<String>,
}

/// Counts. `passed`, `failed` and `skipped` are what the last line of the human output says;
/// XFAIL counts in none of them, XPASS counts as passed (as failed with `strict`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Trials run.
    pub total: usize,
    /// Trials that passed, XPASS included unless `strict` counts it as failed.
    pub passed: usize,
    /// Trials that failed, including XPASS on a baseline entry with `strict`.
    pub failed: usize,
    /// Trials skipped.
    pub skipped: usize,
    /// Trials that failed as expected (XFAIL).
    pub xfail: usize,
    /// Trials that passed unexpectedly (XPASS).
    pub xpass: usize,
    /// Of `xfail`: failures that are known kernel bugs (known-bugs.yaml).
    #[serde(default)]
    pub known: usize,
}

impl Summary {
    /// Counts `trials` by status; with `strict`, an XPASS on a baseline entry counts as failed.
    pub fn of(trials: &[TrialRecord], strict: bool) -> Summary {
        let mut s = Summary {
            total: trials.len(),
            ..Summary::default()
        };
        for t in trials {
            match t.status {
                Status::Pass => s.passed += 1,
                Status::Fail => s.failed += 1,
                Status::Skip => s.skipped += 1,
                Status::Xfail => {
                    s.xfail += 1;
                    s.known += usize::from(t.known_bug.is_some());
                }
                Status::Xpass => {
                    s.xpass += 1;
                    // A fixed known bug is news, not a failure: only a baseline entry is strict.
                    if strict && t.known_bug.is_none() {
                        s.failed += 1
                    } else {
                        s.passed += 1
                    }
                }
            }
        }
        s
    }
}

/// How a trial ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Skipped (the machine or kernel cannot run it).
    Skip,
    /// Failed, and a known kernel bug (or listed in the baseline): not a failure of the run.
    Xfail,
    /// Passed, but a known kernel bug (or a baseline entry) covers it: the kernel may be fixed,
    /// or the entry is wrong.
    Xpass,
}

impl Status {
    /// Upper case, as the human output, JUnit and HTML show it.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
            Status::Xfail => "XFAIL",
            Status::Xpass => "XPASS",
        }
    }
}

/// One trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrialRecord {
    /// `topic::case::memory`.
    pub name: String,
    /// The case's topic (its folder).
    pub topic: String,
    /// The case's name.
    pub case: String,
    /// The memory type the trial ran on.
    pub memory: MemoryType,
    /// How the trial ended.
    pub status: Status,
    /// The trial's wall time, in milliseconds.
    pub duration_ms: f64,
    /// fail, xfail: `mismatch`, `timeout`, `signal`, `error` or `meta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_kind: Option<String>,
    /// fail, xfail: the verdict, naming the step, what was expected and what was observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// skip: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// The known kernel bug that covers this trial (xfail, xpass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_bug: Option<KnownBugMatch>,
    /// The baseline entry that lists this trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineMatch>,
    /// fail, xfail: what the trial saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureDetail>,
    /// `stress` steps that finished: their figures (`stress: <ms> ms, <n> faults resolved
    /// (<n>/s), <n> pages verified (<n>/s), <n> operations`) and their seed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stress: Vec<String>,
}

/// What a failing trial saw, step by step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDetail {
    /// The failing step (1-based; 0 is the setup); null when the trial died before reporting.
    pub step: Option<usize>,
    /// The failing step's operation, e.g. `write pages 0 data 2`.
    pub op: Option<String>,
    /// The checks that did not match at the failing step.
    pub mismatches: Vec<MismatchRecord>,
    /// Every step up to the failing one, with its observations (pagemap entries, errnos).
    pub steps: Vec<StepRecordOut>,
    /// Every userfaultfd message of the trial, in order.
    pub messages: Vec<MessageRecord>,
    /// The tail of the trial process's stderr.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

/// One check that did not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MismatchRecord {
    /// What was checked: `messages`, `contents`, `pagemap page 0 wp`, `errno`, ...
    pub check: String,
    /// What the case expects.
    pub expected: String,
    /// What the trial saw.
    pub observed: String,
}

/// One step as the trial ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StepRecordOut {
    /// The step's index.
    pub step: usize,
    /// The step's operation, e.g. `write pages 0 data 2`.
    pub op: String,
    /// False when the step's `only` excluded this memory type.
    pub ran: bool,
    /// What the step observed, one line each.
    pub observed: Vec<String>,
}

/// A userfaultfd message, raw and described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MessageRecord {
    /// 0: the trial's uffd; 1..: uffds handed over by UFFD_EVENT_FORK.
    pub uffd: usize,
    /// `pagefault`, `fork`, `remap`, `remove`, `unmap`, or `event 0xNN`.
    pub event: String,
    /// The message's three argument words in hex (for a page fault: flags, address, ptid).
    pub arg: [String; 3],
    /// For page faults: the page of the area the address falls in.
    pub page: Option<usize>,
    /// e.g. `pagefault write|wp @ page 0 (0x7f3a5c000000)`.
    pub text: String,
}

/// What a run was, besides its trials.
pub struct RunContext<'a> {
    /// The kernel the run was on.
    pub kernel: KernelInfo,
    /// Huge pages, swap and privileges during the run.
    pub machine: MachineSetup,
    /// When the run started.
    pub started_at: String,
    /// Wall time of the whole run.
    pub duration: Duration,
    /// Which trials the run selected.
    pub selection: Selection,
    /// The baseline the trials are judged with, if any.
    pub baseline: Option<&'a Baseline>,
    /// The suite's known bugs; judged raw with `strict`.
    pub known: Option<&'a KnownBugs>,
    /// `--strict`: the known-bugs list is not applied; every failure is a failure.
    pub strict: bool,
}

/// The known bugs that apply to a kernel: none with `strict` (every failure stays one).
pub fn applicable_known_bugs(known: &KnownBugs, kernel: &KernelId, strict: bool) -> KnownBugs {
    if strict {
        KnownBugs {
            file: known.file.clone(),
            bugs: Vec::new(),
        }
    } else {
        known.for_kernel(kernel)
    }
}

impl KernelInfo {
    /// The running kernel, as the probe saw it.
    pub fn of_host(p: &Probe, config: KernelConfig) -> KernelInfo {
        KernelInfo {
            release: p.kernel_release.clone(),
            version: p.kernel_version.clone(),
            config,
            uffd: p.uffd.as_ref().ok().map(|c| UffdInfo {
                features_raw: format!("0x{:x}", c.features),
                features: feature_names(c.features),
                ioctls_raw: format!("0x{:x}", c.ioctls),
                ioctls: ioctl_names(c.ioctls),
                user_mode_only: c.user_mode_only,
            }),
            uffd_error: p.uffd.as_ref().err().cloned(),
            dev_userfaultfd_error: p.dev_userfaultfd.as_ref().err().cloned(),
            pagemap_wp_bit: p.pagemap_wp_bit,
            booted: None,
        }
    }

    /// The kernel's identity: release and version.
    pub fn id(&self) -> KernelId {
        KernelId {
            release: self.release.clone(),
            version: self.version.clone(),
        }
    }
}

impl MachineSetup {
    /// This machine, as the probe saw it.
    pub fn of_host(p: &Probe, provisioning: Vec<String>) -> MachineSetup {
        MachineSetup {
            huge_page_size_kib: p.huge_page_size as u64 / 1024,
            huge_pages_total: p.huge_pages_total,
            huge_pages_free: p.huge_pages_free,
            swap_total_kib: p.swap_total_kib,
            is_root: p.is_root,
            unprivileged_userfaultfd: p.unprivileged_userfaultfd,
            provisioning,
        }
    }
}

impl RunRecord {
    /// Builds the record of a run from its context and trial results.
    pub fn build(ctx: RunContext<'_>, results: &[TrialResult]) -> RunRecord {
        let trials: Vec<TrialRecord> = results
            .iter()
            .map(|r| TrialRecord::judge(r, ctx.known, ctx.baseline))
            .collect();
        let strict = ctx.baseline.is_some_and(|b| b.strict);
        let known_bugs = ctx.known.map(|k| KnownBugsInfo {
            file: k.file.clone(),
            strict: ctx.strict,
            applicable: k.bugs.iter().map(|b| b.id.clone()).collect(),
        });
        let baseline = ctx.baseline.map(|b| {
            let names: Vec<(&str, MemoryType)> =
                trials.iter().map(|t| (t.name.as_str(), t.memory)).collect();
            BaselineInfo {
                file: b.file.clone(),
                strict: b.strict,
                entries: b.entries.len(),
                unmatched: b.unmatched(&names).into_iter().map(|e| e.label()).collect(),
            }
        });
        RunRecord {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: env!("CARGO_PKG_NAME").into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            started_at: ctx.started_at,
            duration_ms: ms(ctx.duration),
            selection: ctx.selection,
            kernel: ctx.kernel,
            machine: ctx.machine,
            baseline,
            known_bugs,
            summary: Summary::of(&trials, strict),
            trials,
        }
    }

    /// Whether the run passed: no failure (XPASS counts as one with `--strict-baseline`).
    pub fn ok(&self) -> bool {
        self.summary.failed == 0
    }

    /// The record as pretty-printed JSON, with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a run record serializes");
        s.push('\n');
        s
    }

    /// Reads a record written by `run --json`, refusing other schema versions by name.
    pub fn load(path: &Path) -> Result<RunRecord, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        RunRecord::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a record from JSON text, refusing other schema versions by name.
    pub fn parse(text: &str) -> Result<RunRecord, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match value.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "schema_version {v} is not supported (this uffd-conform {} reads version {SCHEMA_VERSION})",
                    env!("CARGO_PKG_VERSION")
                ))
            }
            None => return Err("no schema_version: not a run record written by `uffd-conform run --json`".into()),
        }
        serde_json::from_value(value).map_err(|e| format!("not a valid run record: {e}"))
    }
}

/// The JSON Schema (draft-07) of a run record, generated from the Rust types.
pub fn json_schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<RunRecord>();
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

impl TrialRecord {
    /// The record of a finished trial, judged against the known bugs that apply to the kernel
    /// (see [`applicable_known_bugs`]) and then the user's baseline.
    pub fn judge(
        r: &TrialResult,
        known: Option<&KnownBugs>,
        baseline: Option<&Baseline>,
    ) -> TrialRecord {
        let (topic, case) = split_name(&r.name, r.memory);
        let message = match &r.verdict {
            Verdict::Fail { message, .. } => Some(message.as_str()),
            _ => None,
        };
        let bug = known.and_then(|k| k.lookup(&r.name, r.memory, message));
        let entry = if bug.is_some() {
            None
        } else {
            baseline.and_then(|b| b.lookup(&r.name, r.memory))
        };
        let covered = bug.is_some() || entry.is_some();
        let mut t = TrialRecord {
            name: r.name.clone(),
            topic,
            case,
            memory: r.memory,
            status: Status::Pass,
            duration_ms: ms(r.duration),
            fail_kind: None,
            message: None,
            skip_reason: None,
            known_bug: bug.map(|b| KnownBugMatch::new(b, &r.name, r.memory)),
            baseline: entry.map(BaselineMatch::from),
            failure: None,
            stress: r
                .report
                .iter()
                .flat_map(|rep| &rep.steps)
                .filter(|s| s.op.starts_with("stress"))
                .flat_map(|s| s.observed.iter().take(2).cloned())
                .collect(),
        };
        match &r.verdict {
            Verdict::Pass => t.status = if covered { Status::Xpass } else { Status::Pass },
            Verdict::Skip { reason } => {
                t.status = Status::Skip;
                t.skip_reason = Some(reason.clone());
            }
            Verdict::Fail { kind, message } => {
                t.status = if covered { Status::Xfail } else { Status::Fail };
                t.fail_kind = Some(kind_name(*kind).into());
                t.message = Some(message.clone());
                t.failure = Some(failure_detail(r.report.as_ref(), &r.stderr));
            }
        }
        t
    }

    /// fail or xfail.
    pub fn failed(&self) -> bool {
        matches!(self.status, Status::Fail | Status::Xfail)
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// `topic::case::memory` into topic and case.
fn split_name(name: &str, memory: MemoryType) -> (String, String) {
    let rest = name
        .strip_suffix(memory.name())
        .and_then(|n| n.strip_suffix("::"))
        .unwrap_or(name);
    match rest.split_once("::") {
        Some((topic, case)) => (topic.to_string(), case.to_string()),
        None => (String::new(), rest.to_string()),
    }
}

fn kind_name(kind: FailKind) -> &'static str {
    match kind {
        FailKind::Mismatch => "mismatch",
        FailKind::Timeout => "timeout",
        FailKind::Signal => "signal",
        FailKind::Error => "error",
        FailKind::Meta => "meta",
    }
}

fn feature_names(bits: u64) -> Vec<String> {
    let mut names: Vec<String> = Feature::from_bits(bits)
        .into_iter()
        .map(Feature::kernel_name)
        .collect();
    let known = crate::kernel::features::mask(&Feature::ALL);
    names.extend(
        (0..64)
            .filter(|b| bits & !known & (1u64 << b) != 0)
            .map(|b| format!("bit {b}")),
    );
    names
}

fn ioctl_names(bits: u64) -> Vec<String> {
    let mut names: Vec<String> = IOCTL_NAMES
        .iter()
        .filter(|(b, _)| bits & (1 << b) != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let known = IOCTL_NAMES.iter().fold(0u64, |m, (b, _)| m | 1 << b);
    names.extend(
        (0..64)
            .filter(|b| bits & !known & (1u64 << b) != 0)
            .map(|b| format!("bit {b}")),
    );
    names
}

fn failure_detail(report: Option<&ProcessReport>, stderr: &str) -> FailureDetail {
    let mut d = FailureDetail {
        step: None,
        op: None,
        mismatches: vec![],
        steps: vec![],
        messages: vec![],
        stderr: stderr.to_string(),
    };
    let Some(report) = report else { return d };
    if let Outcome::Fail(f) = &report.outcome {
        d.step = Some(f.step);
        d.op = Some(f.op.clone());
        d.mismatches = f
            .mismatches
            .iter()
            .map(|m| MismatchRecord {
                check: m.check.clone(),
                expected: m.expected.clone(),
                observed: m.observed.clone(),
            })
            .collect();
    }
    d.steps = report
        .steps
        .iter()
        .map(|s| StepRecordOut {
            step: s.step,
            op: s.op.clone(),
            ran: s.ran,
            observed: s.observed.clone(),
        })
        .collect();
    d.messages = report.messages.iter().map(message_record).collect();
    d
}

fn message_record(m: &Message) -> MessageRecord {
    MessageRecord {
        uffd: m.uffd,
        event: Message::event_name(m.event),
        arg: m.arg.map(|w| format!("0x{w:x}")),
        page: m.page,
        text: m.describe(),
    }
}

/// Test data shared by the format modules' unit tests: a small run with one of each verdict.
#[cfg(test)]
pub mod sample {
    use super::*;
    use crate::trial::protocol::{Failure, Mismatch, StepRecord};

    /// A probe of a made-up kernel, for tests.
    pub fn probe() -> Probe {
        Probe {
            kernel_release: "6.18.0-test".into(),
            kernel_version: "#1 SMP PREEMPT_DYNAMIC".into(),
            uffd: Ok(crate::kernel::probe::UffdCaps {
                features: 0x1_f1ff,
                ioctls: 1 << 40 | 1 << 63 | 0x7,
                user_mode_only: false,
            }),
            dev_userfaultfd: Ok(()),
            huge_page_size: 2 << 20,
            huge_pages_total: 8,
            huge_pages_free: 8,
            swap_total_kib: 0,
            is_root: true,
            unprivileged_userfaultfd: Some(0),
            pagemap_wp_bit: Some(true),
            pagemap_scan: true,
            continue_mode_wp: true,
        }
    }

    /// A made-up trial result, for tests.
    pub fn result(name: &str, memory: MemoryType, verdict: Verdict) -> TrialResult {
        let report = verdict.is_failure().then(|| ProcessReport {
            outcome: Outcome::Fail(Failure {
                step: 3,
                op: "write pages 0 data 2".into(),
                mismatches: vec![Mismatch {
                    check: "messages".into(),
                    expected: "[pagefault write|wp @ page 0]".into(),
                    observed: "no message <none> & \"quiet\"".into(),
                }],
            }),
            steps: vec![
                StepRecord {
                    step: 1,
                    op: "write pages all data 1".into(),
                    ran: true,
                    observed: vec![],
                },
                StepRecord {
                    step: 2,
                    op: "pagemap pages 0".into(),
                    ran: true,
                    observed: vec!["pagemap page 0: present wp".into()],
                },
                StepRecord {
                    step: 3,
                    op: "write pages 0 data 2".into(),
                    ran: true,
                    observed: vec![],
                },
            ],
            messages: vec![Message {
                uffd: 0,
                event: crate::kernel::uapi::UFFD_EVENT_PAGEFAULT,
                arg: [0x3, 0x7f00_0000_0000, 0],
                page: Some(0),
            }],
            api_ioctls: 0,
            register_ioctls: None,
            timing: Default::default(),
        });
        TrialResult {
            name: name.into(),
            memory,
            verdict,
            duration: Duration::from_millis(4),
            report,
            stderr: String::new(),
        }
    }

    /// A set of made-up trial results covering every status, for tests.
    pub fn results() -> Vec<TrialResult> {
        use crate::trial::verdict::FailKind::Mismatch as M;
        let fail = || {
            Verdict::fail(M, "step 3 `write pages 0 data 2`:\n    messages: expected [pagefault write|wp @ page 0], observed no message <none> & \"quiet\"")
        };
        vec![
            result("wp::passes::anon", MemoryType::Anon, Verdict::Pass),
            result("wp::fails::shmem", MemoryType::Shmem, fail()),
            result("wp::known::anon", MemoryType::Anon, fail()),
            result("pagemap::fixed::anon", MemoryType::Anon, Verdict::Pass),
            result(
                "pagemap::bits::hugetlb",
                MemoryType::Hugetlb,
                Verdict::Skip {
                    reason: "needs 2 free 2048 kB huge pages, 0 are free".into(),
                },
            ),
        ]
    }

    /// A baseline file, for tests.
    pub const BASELINE: &str = "- trial: wp::known::anon\n  reason: known bug\n  link: https://example.org/bug?a=1&b=2\n- case: pagemap::fixed\n  reason: fixed upstream\n- case: gone::away\n  reason: stale\n";

    /// A made-up run record, for tests.
    pub fn record(strict: bool) -> RunRecord {
        let probe = probe();
        let baseline = crate::output::baseline::Baseline::parse("known.yaml", BASELINE, strict)
            .expect("baseline");
        RunRecord::build(
            RunContext {
                kernel: KernelInfo::of_host(
                    &probe,
                    super::super::kconfig::from_text(
                        "/proc/config.gz".into(),
                        "CONFIG_USERFAULTFD=y\n",
                    ),
                ),
                machine: MachineSetup::of_host(
                    &probe,
                    vec!["vm.nr_hugepages 0 -> 8 (restored afterwards)".into()],
                ),
                started_at: "2025-01-02T03:04:05Z".into(),
                duration: Duration::from_millis(1234),
                selection: Selection {
                    paths: vec!["cases".into()],
                    filters: vec![],
                    jobs: 2,
                    no_provision: false,
                },
                baseline: Some(&baseline),
                known: None,
                strict: false,
            },
            &results(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_baseline() {
        let r = sample::record(false);
        let status: Vec<(&str, Status)> = r
            .trials
            .iter()
            .map(|t| (t.name.as_str(), t.status))
            .collect();
        assert_eq!(
            status,
            vec![
                ("wp::passes::anon", Status::Pass),
                ("wp::fails::shmem", Status::Fail),
                ("wp::known::anon", Status::Xfail),
                ("pagemap::fixed::anon", Status::Xpass),
                ("pagemap::bits::hugetlb", Status::Skip),
            ]
        );
        assert_eq!(
            r.summary,
            Summary {
                total: 5,
                passed: 2,
                failed: 1,
                skipped: 1,
                xfail: 1,
                xpass: 1,
                known: 0,
            }
        );
        assert_eq!(
            sample::record(true).summary.failed,
            2,
            "strict: XPASS fails the run"
        );
        let b = r.baseline.as_ref().expect("baseline info");
        assert_eq!(
            b.unmatched,
            vec!["gone::away (all memory types)".to_string()]
        );
    }

    const KNOWN: &str = "\
- id: wp-known
  summary: the wp bug
  trials: [{case: wp::known}, {case: pagemap::fixed}, {case: wp::fails, memory: anon}]
  what: w
  why: y
  origin: found by this suite
  fix: null
  kernels: [{upstream: \">= 6.18\"}]
  refs: [https://example.org/wp]
";

    fn with_known(release: &str, strict: bool) -> RunRecord {
        let probe = sample::probe();
        let known = KnownBugs::parse("known-bugs.yaml", KNOWN).expect("known bugs");
        let mut kernel = KernelInfo::of_host(&probe, KernelConfig::default());
        kernel.release = release.into();
        let applicable = applicable_known_bugs(&known, &kernel.id(), strict);
        RunRecord::build(
            RunContext {
                kernel,
                machine: MachineSetup::of_host(&probe, vec![]),
                started_at: "2025-01-02T03:04:05Z".into(),
                duration: Duration::from_millis(1),
                selection: Selection::default(),
                baseline: None,
                known: Some(&applicable),
                strict,
            },
            &sample::results(),
        )
    }

    #[test]
    fn known_bugs_are_xfail_and_xpass_on_the_kernels_they_apply_to() {
        let r = with_known("6.18.44-fc-v1045", false);
        let status: Vec<(&str, Status, Option<&str>)> = r
            .trials
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.status,
                    t.known_bug.as_ref().map(|k| k.id.as_str()),
                )
            })
            .collect();
        assert_eq!(
            status,
            vec![
                ("wp::passes::anon", Status::Pass, None),
                ("wp::fails::shmem", Status::Fail, None),
                ("wp::known::anon", Status::Xfail, Some("wp-known")),
                ("pagemap::fixed::anon", Status::Xpass, Some("wp-known")),
                ("pagemap::bits::hugetlb", Status::Skip, None),
            ]
        );
        assert_eq!(
            (r.summary.failed, r.summary.known, r.summary.xpass),
            (1, 1, 1)
        );
        assert!(
            !r.ok(),
            "wp::fails::shmem is a failure: its entry names anon only"
        );
        let info = r.known_bugs.as_ref().expect("known bugs info");
        assert_eq!(
            (info.strict, info.applicable.clone()),
            (false, vec!["wp-known".to_string()])
        );
        assert_eq!(
            r.trials[2]
                .known_bug
                .as_ref()
                .and_then(|k| k.link.as_deref()),
            Some("https://example.org/wp")
        );
    }

    #[test]
    fn strict_and_other_kernels_judge_raw() {
        for r in [
            with_known("6.18.44-fc-v1045", true),
            with_known("6.12.117+deb12-cloud-amd64", false),
        ] {
            assert!(r.trials.iter().all(|t| t.known_bug.is_none()));
            assert_eq!(
                (r.summary.failed, r.summary.xfail, r.summary.xpass),
                (2, 0, 0)
            );
        }
        assert!(
            with_known("6.18.44-fc-v1", true)
                .known_bugs
                .expect("info")
                .strict
        );
    }

    #[test]
    fn a_failure_keeps_step_records_messages_and_observations() {
        let r = sample::record(false);
        let t = &r.trials[1];
        assert_eq!(
            (t.topic.as_str(), t.case.as_str(), t.memory),
            ("wp", "fails", MemoryType::Shmem)
        );
        assert_eq!(t.fail_kind.as_deref(), Some("mismatch"));
        let f = t.failure.as_ref().expect("failure detail");
        assert_eq!(
            (f.step, f.op.as_deref()),
            (Some(3), Some("write pages 0 data 2"))
        );
        assert_eq!(
            f.steps[1].observed,
            vec!["pagemap page 0: present wp".to_string()]
        );
        assert_eq!(
            f.messages[0].text,
            "pagefault write|wp @ page 0 (0x7f0000000000)"
        );
        assert!(
            r.trials[0].failure.is_none(),
            "passing trials carry no detail"
        );
        assert_eq!(
            r.trials[4].skip_reason.as_deref(),
            Some("needs 2 free 2048 kB huge pages, 0 are free")
        );
    }

    #[test]
    fn kernel_bits_are_named() {
        let r = sample::record(false);
        let u = r.kernel.uffd.as_ref().expect("uffd");
        assert!(u
            .features
            .contains(&"UFFD_FEATURE_PAGEFAULT_FLAG_WP".to_string()));
        assert!(
            u.ioctls.contains(&"bit 40".to_string()) && u.ioctls.contains(&"API".to_string()),
            "unknown bits are kept: {:?}",
            u.ioctls
        );
        assert_eq!(r.kernel.config.options["CONFIG_USERFAULTFD"], "y");
    }

    #[test]
    fn json_round_trips_and_other_versions_are_refused() {
        let r = sample::record(false);
        assert_eq!(RunRecord::parse(&r.to_json()).expect("parses"), r);
        let v2 = r
            .to_json()
            .replacen("\"schema_version\": 1", "\"schema_version\": 2", 1);
        assert!(RunRecord::parse(&v2)
            .unwrap_err()
            .contains("schema_version 2 is not supported"));
        assert!(RunRecord::parse("{}")
            .unwrap_err()
            .contains("no schema_version"));
        assert!(RunRecord::parse("[1,").unwrap_err().starts_with("not JSON"));
        let broken = r.to_json().replacen("\"trials\"", "\"trails\"", 1);
        assert!(RunRecord::parse(&broken)
            .unwrap_err()
            .contains("not a valid run record"));
    }
}
