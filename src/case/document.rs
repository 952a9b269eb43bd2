//! The top level of a case file: what a case is, its memory types and register modes, and its
//! steps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{ExpectFailure, Need, Ref, RegisterMode, Resolve, RunAs};
use super::step::Step;
use crate::kernel::features::Feature;
use crate::kernel::memory::MemoryType;

/// One case: a sequence of steps run on each memory type it applies to.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique within its topic (the folder under cases/): lower-case words joined by `-`.
    pub name: String,
    /// The rule the case checks, in one or two sentences.
    pub about: String,
    /// Where the rule comes from.
    pub refs: Vec<Ref>,
    /// Memory types the case runs on; default: all five.
    #[serde(default = "all_memory")]
    pub memory: Vec<MemoryType>,
    /// UFFD features requested in UFFDIO_API. A kernel without one of them skips the trial.
    /// Features a memory type or register mode implies (e.g. `wp_hugetlbfs_shmem` for WP on
    /// shmem) are added by the runner.
    #[serde(default)]
    pub features: Vec<Feature>,
    /// Register modes applied to the whole area right after it is mapped; `[]` registers
    /// nothing (use a `register` step). Default: `[wp]`.
    #[serde(default = "default_register")]
    pub register: Vec<RegisterMode>,
    /// The area's size in pages of the memory type (a hugetlb page is a huge page), 1 to 16384 (1 to 1024 on hugetlb).
    pub pages: usize,
    /// Machine resources the case needs beyond userfaultfd; a trial without them is skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<Need>,
    /// How a page fault is resolved by the fault handler. Default: `unprotect`.
    #[serde(default)]
    pub resolve: Resolve,
    /// Map the area aligned to the PMD size and without MADV_NOHUGEPAGE, so transparent huge
    /// pages can back it (anon, shmem).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thp: bool,
    /// hugetlb only: the huge pages a trial touches, when fewer than `pages`. The area is then
    /// mapped with MAP_NORESERVE (nothing reserved for untouched pages), so the pool the
    /// suite provisions needs only these (twice for private hugetlb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huge_pages: Option<usize>,
    /// Place the area so that a 1 GiB boundary (a new PUD entry, with page tables of its
    /// own) falls after its first `across_pud` pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub across_pud: Option<usize>,
    /// Who runs the trial process: `runner` (default, the user running the suite) or `nobody`
    /// (uid/gid 65534, no capabilities; needs a root runner to switch). An unprivileged trial
    /// opens its uffd with UFFD_USER_MODE_ONLY when vm.unprivileged_userfaultfd is 0.
    #[serde(default, skip_serializing_if = "RunAs::is_runner")]
    pub run_as: RunAs,
    /// Per-trial time limit in milliseconds (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The steps, run in order; the first failing step ends the trial.
    pub steps: Vec<Step>,
    /// Meta-tests only: the case is built to fail, and passes as a meta-test when its trial
    /// fails at this step with a message containing every string in `contains`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_failure: Option<ExpectFailure>,
}

fn all_memory() -> Vec<MemoryType> {
    MemoryType::ALL.to_vec()
}

fn default_register() -> Vec<RegisterMode> {
    vec![RegisterMode::Wp]
}
