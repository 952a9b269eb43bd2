//! The case format (v1): what a case file says. Loaded from YAML, passed to trial processes as
//! JSON, published as a JSON Schema (`uffd-conform schema`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::faults::Faults;
use super::pages::Pages;
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
    /// The area's size in pages of the memory type (a hugetlb page is a huge page).
    pub pages: usize,
    /// Machine resources the case needs beyond userfaultfd; a trial without them is skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<Need>,
    /// How a page fault is resolved by the fault handler. Default: `unprotect`.
    #[serde(default)]
    pub resolve: Resolve,
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

/// A source for the rule a case checks.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Ref {
    /// A mailing-list seed thread in shared/seeds, by its number (e.g. "002").
    Seed(String),
    /// A kernel documentation file and section, e.g. "admin-guide/mm/userfaultfd.rst#write-protect-notifications".
    Doc(String),
    /// A kernel commit: id and subject.
    Commit(String),
    /// A kernel selftest scenario, e.g. "uffd-unit-tests: wp-fork".
    Selftest(String),
    /// A man page section, e.g. "ioctl_userfaultfd(2) UFFDIO_WRITEPROTECT".
    Man(String),
    /// shared/reference/uffd-facts.md, by section.
    Facts(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegisterMode {
    Missing,
    Wp,
    Minor,
}

impl RegisterMode {
    pub fn bit(self) -> u64 {
        use crate::kernel::uapi::*;
        match self {
            RegisterMode::Missing => UFFDIO_REGISTER_MODE_MISSING,
            RegisterMode::Wp => UFFDIO_REGISTER_MODE_WP,
            RegisterMode::Minor => UFFDIO_REGISTER_MODE_MINOR,
        }
    }
}

pub fn mode_mask(modes: &[RegisterMode]) -> u64 {
    modes.iter().fold(0, |m, r| m | r.bit())
}

/// A machine resource a case needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// A swap device (the runner provisions one when it runs as root).
    Swap,
    /// Root (CAP_SYS_ADMIN and friends), e.g. to read PFNs from pagemap.
    Root,
}

/// How the fault handler resolves page faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolve {
    /// Write-protect faults: UFFDIO_WRITEPROTECT without MODE_WP on the page (which wakes).
    /// Missing faults: UFFDIO_COPY of a zero page. Minor faults: UFFDIO_CONTINUE.
    #[default]
    Unprotect,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectFailure {
    /// The 1-based step that must fail.
    pub step: usize,
    /// Strings the failure message must contain (e.g. the expected and observed values).
    #[serde(default)]
    pub contains: Vec<String>,
}

/// A memory access of whole pages. Every access checks the messages it raised.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    pub pages: Pages,
    /// Writes: the data generation written (1-255; each 8-byte word encodes the generation,
    /// the page and the word's index; 0 writes zeroes). Default 1.
    /// Reads: the generation every page must hold (0 = all zeroes); omitted: contents unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<u8>,
    /// The messages the access must raise; default `none`.
    #[serde(default)]
    pub faults: Faults,
}

/// An ioctl over a page range.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeOp {
    pub pages: Pages,
    /// The errno the ioctl must fail with (e.g. `EINVAL`); omitted: it must succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
}

/// UFFDIO_REGISTER of a page range.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterOp {
    pub pages: Pages,
    pub modes: Vec<RegisterMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<ErrnoName>,
}

/// Expected /proc/self/pagemap bits of each page; omitted bits are not checked.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagemapExpect {
    pub pages: Pages,
    /// Bit 57: uffd-wp (pte, swap entry or pte marker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wp: Option<bool>,
    /// Bit 63: present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// Bit 62: swapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swapped: Option<bool>,
    /// Bit 61: file page or shared anon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<bool>,
    /// Bit 56: exclusively mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
}

/// An errno by its name, e.g. `EINVAL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct ErrnoName(pub String);

impl ErrnoName {
    pub fn errno(&self) -> nix::errno::Errno {
        errno_by_name(&self.0).expect("validated when loaded")
    }
}

pub fn errno_by_name(name: &str) -> Option<nix::errno::Errno> {
    (1..134)
        .map(nix::errno::Errno::from_raw)
        .find(|e| format!("{e:?}") == name)
}

impl TryFrom<String> for ErrnoName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match errno_by_name(&s) {
            Some(_) => Ok(ErrnoName(s)),
            None => Err(format!(
                "`{s}` is not an errno name (e.g. EINVAL, ENOENT, EPERM)"
            )),
        }
    }
}

impl From<ErrnoName> for String {
    fn from(e: ErrnoName) -> String {
        e.0
    }
}
