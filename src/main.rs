use std::process::ExitCode;

use clap::Parser;

mod cli;

use cli::exit::{self, Exit};

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => return usage(&e),
    };
    match cli::run(args) {
        Ok(code) => code,
        // A reader that went away (`| head`, `| true`): nothing to say.
        Err(e) if exit::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vcheckd: error: {}", exit::line(&e));
            ExitCode::from(exit::diagnose(&e).exit as u8)
        }
    }
}

/// Help and version go to stdout with 0; a usage error is one line on
/// stderr with 64 (clap's own would exit 2 after several lines).
fn usage(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let code = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            Exit::Usage
        } else {
            Exit::Success
        };
        let _ = e.print();
        return ExitCode::from(code as u8);
    }
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    // clap lists missing arguments on the lines below the first: name them.
    let missing: Vec<&str> = rendered
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = if missing.is_empty() {
        format!("{first} (see --help)")
    } else {
        format!("{first} {} (see --help)", missing.join(", "))
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "check") && args.iter().any(|a| a == "--json") {
        cli::print_check_usage_json(&line);
    }
    eprintln!("vcheckd: error: {line}");
    ExitCode::from(Exit::Usage as u8)
}
