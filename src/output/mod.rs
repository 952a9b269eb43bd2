//! Run output: the run record and every format rendered from it.
//!
//! - [`record`]: the run record (`--json`), versioned, the one source of every format.
//! - [`human`]: the terminal lines and summary of `run`.
//! - [`junit`]: JUnit XML (`--junit`).
//! - [`html`]: the self-contained HTML page (`report`).
//! - [`compare`]: what changed between two runs (`compare`).
//! - [`baseline`]: known failures (`--baseline`): XFAIL and XPASS.
//! - [`progress`]: the progress line on a terminal.
//! - [`session`]: `run`'s output options, tying the above together.
//! - [`kconfig`], [`time`], [`xml`]: kernel config options, timestamps, escaping.

pub mod baseline;
pub mod compare;
pub mod html;
pub mod human;
pub mod junit;
pub mod kconfig;
pub mod progress;
pub mod record;
pub mod session;
pub mod time;
pub mod xml;

pub use record::RunRecord;
pub use session::{OutputArgs, RunFacts, Session};
