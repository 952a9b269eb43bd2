//! The kernel interface: our own uapi, a userfaultfd wrapper, pagemap, memory backends, probing.

pub mod features;
pub mod memcg;
pub mod memory;
pub mod mm;
pub mod pagemap;
pub mod pin;
pub mod probe;
pub mod swap;
pub mod uapi;
pub mod uffd;
