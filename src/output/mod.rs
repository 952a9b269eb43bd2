//! Run output: the run record and every format rendered from it.
//!
//! - [`record`]: the run record (`--json`), versioned, the one source of every format.
//! - [`human`]: the terminal lines and summary of `run`.
//! - [`junit`]: JUnit XML (`--junit`).
//! - [`html`]: the self-contained HTML page (`report`).
//! - [`compare`]: what changed between two runs (`compare`).
//! - [`known_bugs`]: the suite's known kernel bugs (known-bugs.yaml): XFAIL and XPASS.
//! - [`baseline`]: a user's own known failures (`--baseline`), on top.
//! - [`progress`]: the progress line on a terminal.
//! - [`session`]: `run`'s output options, tying the above together.
//! - [`kconfig`], [`time`], [`xml`]: kernel config options, timestamps, escaping.

pub mod baseline;
pub(crate) mod compare;
pub(crate) mod coverage;
pub(crate) mod html;
pub mod human;
pub mod junit;
pub(crate) mod kconfig;
pub mod known_bugs;
pub mod ktap;
pub(crate) mod progress;
pub mod record;
pub(crate) mod session;
pub(crate) mod summary;
pub(crate) mod time;
pub(crate) mod xml;

pub use record::RunRecord;
pub use session::{OutputArgs, RunFacts, Session};
