//! The running service: shared state, the listeners, and graceful shutdown.
//!
//! [`App::start`] builds everything from a [`Config`]; [`App::serve`] runs the API, HTTP-01 and
//! metrics listeners on sockets the caller bound (tests bind `127.0.0.1:0`) until `shutdown`
//! resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::acme::dns01::Dns01Solver;
use crate::acme::http::ClientError;
use crate::acme::{Issuer, http01, tls_alpn01};
use crate::api::Shared;
use crate::auth::akash::{AkashAuth, AkashAuthError, StoreKeyCache};
use crate::auth::jwks::KeySourceError;
use crate::auth::jwt::JwtAuth;
use crate::auth::psk::PskAuth;
use crate::auth::{AuthChain, Authenticator};
use crate::config::{CertificateSeries, Config};
use crate::dns::DnsError;
use crate::notify::Notifier;
use crate::service::CertService;
use crate::store::{self, StoreError};
use crate::tls::{ServerTls, TlsError, serve_tls};

/// The running service's parts.
#[derive(Debug)]
pub struct App {
    /// What every API request shares: the certificate service, the store, the auth chain.
    pub api: Arc<Shared>,
    /// The API listener's TLS; `None` serves plain HTTP.
    pub tls: Option<ServerTls>,
    /// `challenges.tlsAlpn01`: answers `acme-tls/1` handshakes (on its listener, and on the
    /// API's TLS listener); `None` when TLS-ALPN-01 is off.
    pub tls_alpn01: Option<tls_alpn01::Responder>,
    /// `server.metricsCertificates`: which certificates `/metrics` lists one by one.
    pub metrics_certificates: CertificateSeries,
}

/// Why the service could not start: the subsystem that refused, with its own error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ACME server's HTTP client could not be built.
    #[error(transparent)]
    Acme(#[from] ClientError),
    /// A DNS-01 provider could not be set up.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// `auth.jwt` could not be set up.
    #[error(transparent)]
    Jwt(#[from] KeySourceError),
    /// `auth.akash` could not be set up.
    #[error(transparent)]
    Akash(#[from] AkashAuthError),
    /// certfleet's own TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A notification channel could not be set up.
    #[error("{0}")]
    Notifications(String),
}

/// The sockets the service answers on, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// `server.listen`: the API.
    pub api: TcpListener,
    /// `challenges.http01.listen`: HTTP-01 challenges; `None` when HTTP-01 is off.
    pub http01: Option<TcpListener>,
    /// `challenges.tlsAlpn01.listen`: TLS-ALPN-01 challenges; `None` when TLS-ALPN-01 is off or
    /// answered on the API's own TLS listener only.
    pub tls_alpn01: Option<TcpListener>,
    /// `server.metricsListen`: `GET /metrics`; `None` turns metrics off.
    pub metrics: Option<TcpListener>,
}

impl App {
    /// Opens the store (applying migrations) and builds the issuer and the auth chain.
    pub async fn start(config: &Config) -> Result<Arc<Self>, StartError> {
        let store = store::open(&config.storage).await?;
        let mut issuer = Issuer::new(&config.acme, store.clone())?.with_challenges(
            config.challenges.http01.enabled,
            config.challenges.tls_alpn01.is_some(),
        );
        if !config.challenges.dns01.is_empty() {
            let dns01 = Dns01Solver::new(
                &config.challenges.dns01,
                config.challenges.resolvers.clone(),
            )?;
            issuer = issuer.with_dns01(dns01);
        }
        if !config.challenges.dns_persist.is_empty() {
            issuer = issuer.with_dns_persist(crate::acme::dns_persist01::DnsPersistSolver::new(
                config.challenges.dns_persist.clone(),
                config.challenges.resolvers.clone(),
            ));
        }
        let fallback = match &config.acme.fallback {
            Some(fallback) => Some(Arc::new(Issuer::fallback(&config.acme, fallback, &issuer)?)),
            None => None,
        };
        let issuer = Arc::new(issuer);
        let mut methods: Vec<Arc<dyn Authenticator>> = Vec::new();
        if !config.auth.psk.is_empty() {
            methods.push(Arc::new(PskAuth::new(&config.auth.psk)));
        }
        if let Some(jwt) = &config.auth.jwt {
            // Keys load in the background: until then bearer tokens get 503, PSK works.
            let jwt = JwtAuth::new(jwt)?;
            jwt.start();
            methods.push(Arc::new(jwt));
        }
        if let Some(akash) = &config.auth.akash {
            // Public keys found on chain are kept in the store, so they survive restarts.
            let keys = Arc::new(StoreKeyCache(store.clone()));
            methods.push(Arc::new(AkashAuth::new(akash, keys)?));
        }
        let tls = match &config.server.tls {
            Some(tls) => Some(ServerTls::new(tls, store.as_ref(), config.acme.key_type).await?),
            None => None,
        };
        // `server.cacheSize` in halves: the stored certificates, and their rendered answers
        // (which each weigh about what their certificate does).
        let cache_budget = usize::try_from(config.server.cache_size / 2).unwrap_or(usize::MAX);
        let notifier =
            Arc::new(Notifier::new(&config.notifications).map_err(StartError::Notifications)?);
        let tls_alpn01 = config
            .challenges
            .tls_alpn01
            .as_ref()
            .map(|_| tls_alpn01::Responder::new(store.clone()));
        Ok(Arc::new(Self {
            tls,
            tls_alpn01,
            metrics_certificates: config.server.metrics_certificates,
            api: Arc::new(Shared {
                certs: Arc::new({
                    let certs = CertService::new(
                        store.clone(),
                        issuer,
                        config.storage.lease_ttl,
                        cache_budget,
                        notifier,
                    );
                    let certs = certs.with_limits(crate::service::limits::Limits::new(
                        config.limits.clone(),
                        &config.acme.directory_url,
                        store.clone(),
                        config.auth.longest_quota(),
                    ));
                    match fallback {
                        Some(fallback) => certs.with_fallback(fallback),
                        None => certs,
                    }
                }),
                store,
                auth: AuthChain::new(methods),
                default_key_type: config.acme.key_type,
                private_keys: config.certificates.private_keys,
                max_client_keys: config.certificates.max_client_keys,
                default_profile: config.acme.profile.clone(),
                issue_wait: config.server.issue_wait,
                renderings_budget: cache_budget,
                ui: config.server.ui,
                tls: config.server.tls.is_some(),
                watchers: Arc::new(crate::api::watch::Watchers::new(config.server.watch)),
            }),
        }))
    }

    /// Loads the ACME account, and runs the renewal worker (which also resumes unfinished
    /// orders) and the watch for revocations and deletions by other processes until `stop`
    /// turns true.
    fn start_background(self: &Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        let app = self.clone();
        // Unfinished orders are resumed by the worker's first pass.
        tokio::spawn(async move { app.api.certs.issuer().warm_up().await });
        tokio::spawn(crate::service::admin::watch_retirements(
            self.api.certs.clone(),
            self.api.store.clone(),
            stop.clone(),
        ));
        tokio::spawn(crate::notify::outbox::run(
            self.api.store.clone(),
            self.api.certs.notifier().clone(),
            self.api.certs.owner().to_owned(),
            stop.clone(),
        ));
        tokio::spawn(crate::notify::scan::run(
            self.api.store.clone(),
            self.api.certs.notifier().clone(),
            stop.clone(),
        ));
        tokio::spawn(crate::service::dns_persist::watch(
            self.api.certs.clone(),
            self.api.store.clone(),
            stop.clone(),
        ));
        tokio::spawn(crate::service::worker::watch_ari(
            self.api.certs.clone(),
            self.api.store.clone(),
            stop.clone(),
        ));
        tokio::spawn(crate::service::worker::run(
            self.api.certs.clone(),
            self.api.store.clone(),
            self.api.certs.stored(),
            stop,
        ));
    }

    /// Serves the API, HTTP-01 and metrics on `listeners` until `shutdown` resolves, then lets
    /// requests in progress finish.
    pub async fn serve(
        self: Arc<Self>,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Listeners {
            api,
            http01,
            tls_alpn01,
            metrics,
        } = listeners;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            // Err means the sender is gone, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // Installed before the first request, so every request is counted.
        let metrics_server = metrics.map(|listener| {
            let handle = crate::observe::metrics::install();
            crate::observe::metrics::spawn_upkeep(handle);
            axum::serve(
                listener,
                crate::observe::metrics::router(
                    handle,
                    self.api.store.clone(),
                    self.metrics_certificates,
                ),
            )
            .with_graceful_shutdown(stopped(stop_rx.clone()))
        });
        // With TLS, plain HTTP requests other than challenges are sent to the API over HTTPS.
        let https_port = match &self.tls {
            Some(_) => Some(api.local_addr()?.port()),
            None => None,
        };
        // Observed on every route (`api::router`), so the middleware sees the route template.
        let router = crate::api::router(self.api.clone());
        let api_server = async {
            match &self.tls {
                Some(tls) => {
                    let alpn = self.tls_alpn01.clone();
                    serve_tls(api, tls.acceptor(), alpn, router, stop_rx.clone()).await
                }
                None => {
                    let service = router.into_make_service_with_connect_info::<SocketAddr>();
                    axum::serve(api, service)
                        .with_graceful_shutdown(stopped(stop_rx.clone()))
                        .await
                }
            }
        };
        let http01_server = http01.map(|http01| {
            axum::serve(http01, http01::router(self.api.store.clone(), https_port))
                .with_graceful_shutdown(stopped(stop_rx.clone()))
        });
        if let (Some(listener), Some(responder)) = (tls_alpn01, &self.tls_alpn01) {
            tokio::spawn(responder.clone().serve(listener, stop_rx.clone()));
        }
        if let Some(tls) = &self.tls {
            tls.spawn_reloader(self.api.certs.clone(), stop_rx.clone());
        }
        self.start_background(stop_rx.clone());
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        });
        let metrics_server = async {
            match metrics_server {
                Some(server) => server.await,
                None => Ok(()),
            }
        };
        let http01_server = async {
            match http01_server {
                Some(server) => server.await,
                None => Ok(()),
            }
        };
        let (api_result, http01_result, metrics_result) =
            tokio::join!(api_server, http01_server, metrics_server);
        api_result.and(http01_result).and(metrics_result)
    }
}
