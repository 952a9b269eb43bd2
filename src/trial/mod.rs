//! One trial: one case on one memory type, run in a fresh process.
//!
//! - [`protocol`]: between runner and trial process: the spec it gets, the report it gives back.
//! - [`entry`]: where a binary that runs trials starts ([`run_if_child`]).
//! - [`child`]: the trial process: reads its spec, runs it, writes its report.
//! - [`exec`], [`handler`], [`data`]: running steps, serving faults, page contents.
//! - [`expect`]: expected messages made concrete and compared.
//! - [`memops`], [`fork`], [`scan`]: memory operations, the fork step, PAGEMAP_SCAN.
//! - [`migrate`], [`ro_pin`], [`swapoff`]: migration, read-only pins and swapoff, verified.
//! - [`spawn`]: the runner's side: start the process, enforce the time limit, read the report.
//! - [`zygote`]: the clean single-threaded process that forks trial processes.
//! - [`verdict`]: what a trial's result means (pass, fail, skip) and how it reads.

pub(crate) mod child;
pub(crate) mod data;
pub(crate) mod entry;
pub(crate) mod exec;
pub(crate) mod expect;
pub(crate) mod handler;
pub(crate) mod memops;
pub(crate) mod migrate;
pub(crate) mod protocol;
pub(crate) mod ro_pin;
pub(crate) mod scan;
pub(crate) mod spawn;
pub(crate) mod stress;
pub(crate) mod swapoff;
pub mod verdict;
pub(crate) mod zygote;

pub use entry::run_if_child;
