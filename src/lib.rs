//! uffd-conform: a conformance suite for Linux userfaultfd write-protect behaviour.
//!
//! Layers, each using only those before it (tests/layers.rs checks it):
//! - [`kernel`]: the kernel interface and every raw call (uapi, userfaultfd, pagemap, memory
//!   backends, mm calls, swap, memory cgroups, probing).
//! - [`case`]: the case format and its loader.
//! - [`trial`]: one case on one memory type, run in a fresh process.
//! - `host`: huge pages, swap, THP and KSM for a run, restored afterwards.
//! - [`run`]: which trials a run has, preparing the machine, running them, `--repeat`.
//! - [`output`]: the run record (JSON) and the formats made from it (human, JUnit, KTAP,
//!   HTML, compare), known bugs, baselines, the progress line.
//! - [`vm`]: running the suite inside a kernel under qemu.
//! - [`cli`]: the command line.

#![warn(missing_docs)]

pub mod case;
pub mod cli;
pub(crate) mod host;
pub mod kernel;
pub mod output;
pub mod run;
pub mod trial;
pub mod vm;
