//! `onboard-bulk`: parse the command line, run it, turn the outcome into an exit code.

use clap::Parser;
use onboard_bulk::cli::Cli;

// Several threads: sending, long polls and state writes overlap on a run of thousands.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = onboard_bulk::run::main(cli).await;
    std::process::ExitCode::from(code.as_u8())
}
