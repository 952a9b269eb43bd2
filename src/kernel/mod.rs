//! The kernel interface: our own uapi, a userfaultfd wrapper, pagemap, memory backends, probing.

pub(crate) mod features;
pub(crate) mod memcg;
pub(crate) mod memory;
pub(crate) mod mm;
pub(crate) mod mount;
pub(crate) mod pagemap;
pub(crate) mod pin;
pub mod probe;
pub(crate) mod process;
pub(crate) mod procfs;
pub(crate) mod swap;
pub(crate) mod uapi;
pub(crate) mod uffd;
