//! uffd-conform: a conformance suite for Linux userfaultfd write-protect behaviour.
//!
//! - [`case`]: the case format and its loader.
//! - [`kernel`]: the kernel interface (uapi, userfaultfd, pagemap, memory backends, probing).
//! - [`trial`]: one case on one memory type, run in a fresh process.
//! - [`plan`]: which trials a run has, and which of them the machine can run.
//! - [`provision`]: huge pages and swap for a run, restored afterwards.
//! - [`report`]: verdicts for people.
//! - [`output`]: the run record (JSON) and the formats made from it (human, JUnit, HTML,
//!   compare), baselines of known failures, the progress line.
//! - [`repeat`]: `run --repeat N` and the trials whose verdict changed between rounds.
//! - [`ktap`]: KTAP output and its parser.
//! - [`bisect`]: `--bisect` exit codes.
//! - [`vm`]: running the suite inside a kernel under qemu.

pub mod case;
pub mod cli;
pub mod host;
pub mod kernel;
pub mod output;
pub mod run;
pub mod trial;
pub mod vm;
