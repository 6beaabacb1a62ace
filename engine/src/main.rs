//! The `tollgate` binary: parse, run, map the outcome to an exit code.
//! Errors print on one line (`tollgate: <error chain>`) and exit 2.

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the webhook allocates and frees many
/// small objects per review on every worker thread, where glibc's arenas cost
/// measurably more CPU per review (docs/benchmarks.md, admission).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use tollgate::cli::{Cli, run};

fn main() -> ExitCode {
    tollgate::telemetry::init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
