use std::process::ExitCode;

use clap::Parser;

// glibc's allocator showed as a fifth of the proxy's CPU time under load; mimalloc is made for
// many small, short-lived allocations across threads. The `system-allocator` feature builds
// with glibc's instead, so heap profilers that hook malloc (heaptrack, massif) see everything.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = authgate::cli::Cli::parse();
    match authgate::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("authgate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
