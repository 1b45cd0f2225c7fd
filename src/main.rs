//! The `certfleet` command: a thin shell over the library.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use certfleet::app::{App, Listeners};
use certfleet::config::{Config, Loaded, LogConfig};

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
    Fetch(Box<certfleet::fetch::FetchArgs>),
    /// Akash provider-API tokens (AEP-64): verify one, or mint one for testing.
    #[command(subcommand)]
    Akash(AkashCommand),
}

#[derive(Debug, Subcommand)]
enum AkashCommand {
    /// Verify a token: signature and claims (with --config, also its principals and audience);
    /// prints the address and claims as JSON. Exit 0 valid, 1 invalid, 2 cannot tell.
    Verify(certfleet::akash::cli::VerifyArgs),
    /// Mint a token from a key file or a BIP-39 mnemonic, for testing with curl.
    Token(certfleet::akash::cli::TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One crypto provider for every rustls user in the process (reqwest, instant-acme).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        Command::CheckConfig => match load_config(cli.config.as_deref()) {
            Some(loaded) => check_config(&loaded),
            None => ExitCode::FAILURE,
        },
        // The config says how to log, so the logger starts once it is loaded.
        Command::Serve => match load_config(cli.config.as_deref()) {
            Some(loaded) => {
                certfleet::logging::init(&loaded.config.log);
                run_async(serve(loaded))
            }
            None => ExitCode::FAILURE,
        },
        // A client: it talks to a server and never reads the server's config.
        Command::Fetch(args) => {
            certfleet::logging::init(&LogConfig::default());
            run_async(certfleet::fetch::run(*args))
        }
        Command::Akash(command) => {
            certfleet::logging::init(&LogConfig::default());
            akash(command, cli.config.as_deref())
        }
    }
}

/// `certfleet akash ...`. `verify` reads a config only when one is given.
fn akash(command: AkashCommand, config: Option<&Path>) -> ExitCode {
    /// `verify`'s exit code when it cannot tell (config, runtime).
    const CANNOT_TELL: u8 = 2;
    match command {
        AkashCommand::Token(args) => match certfleet::akash::cli::token(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("certfleet: {err}");
                ExitCode::FAILURE
            }
        },
        AkashCommand::Verify(args) => {
            let config = match config {
                None => None,
                Some(path) => match load_config(Some(path)) {
                    Some(loaded) => Some(loaded.config),
                    None => return ExitCode::from(CANNOT_TELL),
                },
            };
            match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime.block_on(certfleet::akash::cli::verify(args, config)),
                Err(err) => {
                    eprintln!("certfleet: cannot start the async runtime: {err}");
                    ExitCode::from(CANNOT_TELL)
                }
            }
        }
    }
}

/// Loads the config, printing every problem; `None` when it is invalid.
fn load_config(path: Option<&Path>) -> Option<Loaded> {
    match Config::load(path, std::env::vars()) {
        Ok(loaded) => Some(loaded),
        Err(err) => {
            eprintln!("certfleet: {err}");
            None
        }
    }
}

/// Runs a command's future on a multi-threaded runtime; its error is printed and exits 1.
fn run_async(work: impl Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("certfleet: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("certfleet: {err}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(loaded: &Loaded) -> ExitCode {
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}", loaded.config.to_redacted_yaml());
    ExitCode::SUCCESS
}

async fn serve(loaded: Loaded) -> Result<(), String> {
    let Loaded { config, warnings } = loaded;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let listeners = Listeners {
        api: bind("server.listen", config.server.listen).await?,
        http01: bind("challenges.http01.listen", config.challenges.http01.listen).await?,
        metrics: match config.server.metrics_listen {
            Some(address) => Some(bind("server.metricsListen", address).await?),
            None => None,
        },
    };
    if config.server.tls.is_none() {
        tracing::warn!(
            "the API is served over plain HTTP: private keys cross the network in clear; set server.tls"
        );
    }
    let app = App::start(&config).await?;
    let metrics = config
        .server
        .metrics_listen
        .map_or_else(|| "off".to_owned(), |address| address.to_string());
    tracing::info!(
        api = %config.server.listen,
        http01 = %config.challenges.http01.listen,
        metrics = %metrics,
        directory = %config.acme.directory_url,
        version = env!("CARGO_PKG_VERSION"),
        "certfleet is serving"
    );
    app.serve(listeners, shutdown_signal())
        .await
        .map_err(|e| format!("serving failed: {e}"))
}

async fn bind(key: &str, address: std::net::SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(address).await.map_err(|e| {
        format!("{key}: cannot listen on {address}: {e}; choose another address or free the port")
    })
}

/// Resolves on SIGINT or SIGTERM (what Kubernetes and systemd send).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = interrupt.await;
            return;
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
