//! The `certfleet` command: parses the command line and hands each subcommand to its module in
//! [`commands`]. The service itself is the `certfleet` library.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A central ACME certificate service for a fleet of servers.
#[derive(Debug, Parser)]
#[command(name = "certfleet", version, about)]
struct Cli {
    /// The YAML config file (also CERTFLEET_CONFIG). Without one: defaults and CERTFLEET_* variables.
    #[arg(long, global = true, env = "CERTFLEET_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: API, HTTP-01 and metrics listeners, renewal worker; migrates the
    /// database first.
    Serve,
    /// Load and validate the config, print it with secrets redacted; touches no database.
    CheckConfig,
    /// The fleet client: keep a certificate from a certfleet server in a directory.
    // Boxed: its many flags would make every other variant as large.
    Fetch(Box<commands::fetch::FetchArgs>),
    /// The operator's client: list, show, renew, revoke and delete certificates on a server.
    Certs(Box<commands::certs::CertsArgs>),
    /// Akash provider-API tokens (AEP-64): verify one, or mint one for testing.
    #[command(subcommand)]
    Akash(commands::akash::AkashCommand),
    /// Notifications: send a test event to the configured webhooks and email; touches no
    /// database.
    #[command(subcommand)]
    Notify(commands::notify::NotifyCommand),
    /// DNS-PERSIST-01: print the standing TXT record that validates a name for this server's
    /// ACME account (creating the account in the store if there is none yet).
    #[command(subcommand)]
    DnsPersist(commands::dns_persist::DnsPersistCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One crypto provider for every rustls user in the process (reqwest, instant-acme).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve => commands::serve::run(config),
        Command::CheckConfig => commands::check_config::run(config),
        Command::Fetch(args) => commands::fetch::main(*args),
        Command::Certs(args) => commands::certs::main(*args),
        Command::Akash(command) => commands::akash::run(command, config),
        Command::Notify(command) => commands::notify::run(command, config),
        Command::DnsPersist(command) => commands::dns_persist::run(command, config),
    }
}
