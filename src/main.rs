//! The `promptlab` command line. Parsing, exit codes and terminal output live here; the
//! work is done by the library.

mod cli;
mod tui;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
