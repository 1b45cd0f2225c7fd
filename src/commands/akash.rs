//! `certfleet akash verify` and `certfleet akash token`. The verifier and the signing are the
//! library's (`certfleet::akash`, the `certfleet-akash` crate); these read flags, files and
//! the config, and print.

mod token;
mod verify;

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use certfleet::config::LogConfig;

pub use self::token::TokenArgs;
pub use self::verify::VerifyArgs;

/// `certfleet akash ...`.
#[derive(Debug, Subcommand)]
pub enum AkashCommand {
    /// Verify a token: signature and claims (with --config, also its principals and audience);
    /// prints the address and claims as JSON. Exit 0 valid, 1 invalid, 2 cannot tell.
    Verify(VerifyArgs),
    /// Mint a token from a key file or a BIP-39 mnemonic, for testing with curl.
    Token(TokenArgs),
}

/// `verify`'s exit code when it cannot tell (config, runtime).
const CANNOT_TELL: u8 = 2;

/// Runs one `akash` subcommand. `verify` reads a config only when one is given.
pub fn run(command: AkashCommand, config: Option<&Path>) -> ExitCode {
    certfleet::observe::logging::init(&LogConfig::default());
    match command {
        AkashCommand::Token(args) => match token::token(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("certfleet: {err}");
                ExitCode::FAILURE
            }
        },
        AkashCommand::Verify(args) => {
            let config = match config {
                None => None,
                Some(path) => match super::load_config(Some(path)) {
                    Some(loaded) => Some(loaded.config),
                    None => return ExitCode::from(CANNOT_TELL),
                },
            };
            match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime.block_on(verify::verify(args, config)),
                Err(err) => {
                    eprintln!("certfleet: cannot start the async runtime: {err}");
                    ExitCode::from(CANNOT_TELL)
                }
            }
        }
    }
}
