//! Runs a trial's steps inside the trial process and checks what the kernel did.
//!
//! - [`state`]: the trial's live state (memory, uffd, handler, pagemap) and a step's outcome.
//! - [`dispatch`]: the step loop and the one `match` from operation to body.
//! - [`ioctls`], [`memory`], [`memcg_full`], [`fork`]: the operations' bodies, by family.

mod dispatch;
mod fork;
mod ioctls;
mod memcg_full;
mod memory;
mod state;
mod stress;

pub use dispatch::run;
pub(crate) use state::gettid;
