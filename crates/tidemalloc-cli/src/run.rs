//! `tidemalloc run -- PROGRAM ARGS`: runs a program on libtidemalloc.so and, when it exits,
//! says what it cost and what the allocator held (S5.2). With no program, the built-in
//! walkthrough (`demo`) runs instead.

use crate::{demo, library, summary, supervise};
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, ExitCode};

#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// The program to run on tidemalloc and its arguments (after `--`); with none, the
    /// built-in walkthrough of the main heap runs.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM"
    )]
    pub command: Vec<OsString>,
}

pub fn main(args: RunArgs) -> ExitCode {
    let Some((program, rest)) = args.command.split_first() else {
        return demo::main();
    };
    let mut cmd = Command::new(program);
    cmd.args(rest);
    let name = Path::new(program)
        .file_name()
        .unwrap_or(program)
        .to_string_lossy();
    supervised(cmd, &name)
}

/// Runs `cmd` on the library, prints the summary on stderr (the program's stdout stays its
/// own), and ends as the program ended.
pub fn supervised(cmd: Command, name: &str) -> ExitCode {
    let library = match library::find() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tidemalloc: {e}");
            return ExitCode::from(2);
        }
    };
    match supervise::run(cmd, &library) {
        Ok(outcome) => {
            eprint!("{}", summary::render(name, &library, &outcome));
            ExitCode::from(summary::exit_code(outcome.status))
        }
        Err(e) => {
            eprintln!("tidemalloc: cannot run {name}: {e}");
            // The codes a shell gives for a command it cannot find or cannot execute.
            ExitCode::from(if e.kind() == ErrorKind::NotFound {
                127
            } else {
                126
            })
        }
    }
}
