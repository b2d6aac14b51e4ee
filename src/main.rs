use std::process::ExitCode;

use clap::Parser;

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
