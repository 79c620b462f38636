//! `engine`: the command line. Parses the arguments, runs the subcommand, and turns its error
//! into a message and a failing exit status.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Preprocess(args) => cli::preprocess::run(args),
        Command::Train(args) => cli::train::run(args),
        Command::Evaluate(args) => cli::evaluate::run(args),
        Command::Generate(args) => cli::generate::run(args),
        Command::Assess(args) => cli::assess::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
