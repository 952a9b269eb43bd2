use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    uffd_conform::trial::run_if_child();
    // In a VM's initramfs this binary is /init (see src/vm/guest.rs).
    if uffd_conform::vm::guest::is_init() {
        uffd_conform::vm::guest::run_as_init();
    }
    uffd_conform::cli::main(uffd_conform::cli::Cli::parse())
}
