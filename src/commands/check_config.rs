//! `certfleet check-config`: load and validate the config, print it with secrets redacted.
//! Touches no database and binds no port.

use std::path::Path;
use std::process::ExitCode;

/// Prints the warnings to stderr and the effective config to stdout; exit 1 when invalid.
pub fn run(config: Option<&Path>) -> ExitCode {
    let Some(loaded) = super::load_config(config) else {
        return ExitCode::FAILURE;
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}", loaded.config.to_redacted_yaml());
    ExitCode::SUCCESS
}
