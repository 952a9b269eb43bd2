//! The host a run changes and must leave as found: huge pages, swap, THP and KSM knobs
//! ([`provision`]), and the locks that keep concurrent suites off each other ([`lock`]).

pub mod lock;
pub mod provision;
