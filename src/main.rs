use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    uffd_conform::trial::child::run_if_child();
    uffd_conform::cli::main(uffd_conform::cli::Cli::parse())
}
