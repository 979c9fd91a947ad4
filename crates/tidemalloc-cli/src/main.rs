//! The `tidemalloc` command: run a program on tidemalloc, walk through ptmalloc2's
//! behaviour, and benchmark allocators side by side.

mod bench;
mod bytes;
mod demo;
mod library;
mod report;
mod run;
mod smaps;
mod summary;
mod supervise;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "tidemalloc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run PROGRAM with libtidemalloc.so preloaded and report what it cost; with no
    /// program, walk through the seeds' demonstration of ptmalloc2.
    Run(run::RunArgs),
    /// The built-in walkthrough of the main heap (the same as `run` with no program).
    Demo,
    /// Run the benchmark suite on every allocator on this machine.
    Bench(bench::BenchArgs),
    /// Internal: the demonstration itself, run with the library preloaded.
    #[command(hide = true)]
    DemoChild,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run::main(args),
        Command::Demo => demo::main(),
        Command::Bench(args) => bench::main(args),
        Command::DemoChild => demo::child(),
    }
}
