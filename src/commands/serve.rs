//! `certfleet serve`: bind the listeners, start the service, run until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use tokio::net::TcpListener;

use certfleet::app::{App, Listeners, StartError};
use certfleet::config::Loaded;

/// Loads the config, starts logging as it says, and serves.
pub fn run(config: Option<&Path>) -> ExitCode {
    let Some(loaded) = super::load_config(config) else {
        return ExitCode::FAILURE;
    };
    // The config says how to log, so the logger starts once it is loaded.
    certfleet::observe::logging::init(&loaded.config.log);
    super::run_async(serve(loaded))
}

/// Why `serve` stopped.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    /// A listener's address cannot be bound.
    #[error("{key}: cannot listen on {address}: {source}; choose another address or free the port")]
    Bind {
        /// The config key of the address.
        key: &'static str,
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The service could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Serving failed.
    #[error("serving failed: {0}")]
    Serve(#[source] std::io::Error),
}

async fn serve(loaded: Loaded) -> Result<(), ServeError> {
    let Loaded { config, warnings } = loaded;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let listeners = Listeners {
        api: bind("server.listen", config.server.listen).await?,
        http01: match config.challenges.http01.enabled {
            true => Some(bind("challenges.http01.listen", config.challenges.http01.listen).await?),
            false => None,
        },
        tls_alpn01: match &config.challenges.tls_alpn01 {
            Some(_) if config.tls_alpn01_on_api_listener() => None,
            Some(alpn) => Some(bind("challenges.tlsAlpn01.listen", alpn.listen).await?),
            None => None,
        },
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
        http01 = %if config.challenges.http01.enabled { config.challenges.http01.listen.to_string() } else { "off".to_owned() },
        tls_alpn01 = %config.challenges.tls_alpn01.as_ref().map_or_else(|| "off".to_owned(), |alpn| alpn.listen.to_string()),
        metrics = %metrics,
        directory = %config.acme.directory_url,
        version = env!("CARGO_PKG_VERSION"),
        "certfleet is serving"
    );
    app.serve(listeners, shutdown_signal())
        .await
        .map_err(ServeError::Serve)
}

async fn bind(key: &'static str, address: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Bind {
            key,
            address,
            source,
        })
}

/// Resolves on SIGINT or SIGTERM (what Kubernetes and systemd send).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = interrupt.await;
        return;
    };
    tokio::select! {
        _ = interrupt => {}
        _ = term.recv() => {}
    }
}
