//! The `keybridge` binary: parses arguments and hands each subcommand to the library
//! crates. It holds no logic beyond parsing and wiring.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            // Print the whole cause chain: the top line says what failed, the rest why.
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(commands::EXIT_ERROR)
        }
    }
}
