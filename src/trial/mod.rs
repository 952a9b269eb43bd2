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

pub mod child;
pub mod data;
pub mod entry;
pub mod exec;
pub mod expect;
pub mod handler;
pub mod memops;
pub mod migrate;
pub mod protocol;
pub mod ro_pin;
pub mod scan;
pub mod spawn;
pub mod swapoff;
pub mod verdict;
pub mod zygote;

pub use entry::run_if_child;
