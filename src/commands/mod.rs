//! One module per subcommand of `certfleet`, and what they share: loading the config and
//! running a future to completion.

pub mod akash;
pub mod certs;
pub mod check_config;
pub mod dns_persist;
pub mod fetch;
pub mod notify;
pub mod serve;

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use certfleet::config::{Config, Loaded};

/// Loads the config, printing every problem; `None` when it is invalid.
pub fn load_config(path: Option<&Path>) -> Option<Loaded> {
    match Config::load(path, std::env::vars()) {
        Ok(loaded) => Some(loaded),
        Err(err) => {
            eprintln!("certfleet: {err}");
            None
        }
    }
}

/// Runs a command's future on a multi-threaded runtime; its error is printed and exits 1.
pub fn run_async<E: std::fmt::Display>(work: impl Future<Output = Result<(), E>>) -> ExitCode {
    run_async_with_code(async { work.await.map(|()| ExitCode::SUCCESS) })
}

/// [`run_async`] for a command that chooses its own exit code when it succeeds.
pub fn run_async_with_code<E: std::fmt::Display>(
    work: impl Future<Output = Result<ExitCode, E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("certfleet: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("certfleet: {err}");
            ExitCode::FAILURE
        }
    }
}
