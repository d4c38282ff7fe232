//! The `promptlab` command line. Parsing, exit codes and terminal output live here; the
//! work is done by the library.

mod cli;
mod tui;

use std::process::ExitCode;

// Training allocates and frees many large tensors per batch; glibc's allocator returns
// them to the kernel and pays page faults to get them back, mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
