//! grace: a minimal PID 1 for containers. See README.md.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod cli;
mod compat;
mod error;
mod logging;
mod procs;
mod reap;
mod signals;
mod spawn;
mod supervisor;
mod sys;
mod terminal;

use std::io::Write;
use std::process::ExitCode;

use cli::Cli;
use compat::Personality;

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let personality = Personality::from_argv0(&args.next().unwrap_or_default());
    let config = match compat::parse(personality, args, |k| std::env::var_os(k)) {
        Ok(Cli::Run(config)) => config,
        Ok(Cli::Help) => return print(cli::HELP, "", 0),
        Ok(Cli::Version) => return print(&format!("grace {}\n", env!("CARGO_PKG_VERSION")), "", 0),
        Ok(Cli::Exit {
            stdout,
            stderr,
            code,
        }) => return print(&stdout, &stderr, code),
        Err(e) => return fail(personality, e),
    };
    logging::init(config.verbosity);
    match supervisor::run(&config) {
        // _exit: nothing is left to clean up (no stdout written while supervising, log lines
        // written whole), and as PID 1 the time from the program's exit to ours is the tail of
        // every `docker stop`; std's exit runtime cost 20-27 us of ~230 (bench/proposals).
        Ok(code) => sys::exit_now(code),
        Err(e) => fail(personality, e),
    }
}

fn print(stdout: &str, stderr: &str, code: u8) -> ExitCode {
    _ = std::io::stdout().write_all(stdout.as_bytes());
    _ = std::io::stderr().write_all(stderr.as_bytes());
    ExitCode::from(code)
}

/// Fatal errors bypass the logger, so no log filter can hide why a container died.
fn fail(personality: Personality, e: error::Error) -> ExitCode {
    let (line, code) = personality.report(&e);
    logging::fatal(&line);
    ExitCode::from(code)
}
