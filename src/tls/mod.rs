//! certfleet's own TLS on the API listener: a certificate from files (reloaded when they
//! change) or obtained through certfleet's own ACME flow (swapped in when renewed), selected
//! by SNI, with a self-signed fallback kept in the store so that its fingerprint is stable and
//! can be pinned.

mod resolver;
mod serve;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use resolver::{Resolver, Served, ServedError, fingerprint};
pub use serve::serve_tls;

use crate::acme::solver::ChallengeChoice;
use crate::config::TlsConfig;
use crate::domain::{CertKey, KeySpec, KeyType};
use crate::service::CertService;
use crate::store::{Store, StoreError};
use crate::util::clock;

/// How often certificate files and the self-obtained certificate are checked for a new one.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The API listener's TLS: the acceptor and where its certificates come from.
#[derive(Clone)]
pub struct ServerTls {
    resolver: Arc<Resolver>,
    acceptor: TlsAcceptor,
    source: Source,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("resolver", &self.resolver)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
enum Source {
    Files { cert: PathBuf, key: PathBuf },
    Acme { key: CertKey },
}

impl ServerTls {
    /// Loads the fallback (creating it on first start) and the configured certificate.
    pub async fn new(
        config: &TlsConfig,
        store: &dyn Store,
        key_type: KeyType,
    ) -> Result<Self, TlsError> {
        let fallback = fallback(store).await?;
        tracing::info!(
            sha256 = %fallback.fingerprint,
            "TLS fallback certificate (served without SNI or for unknown names; pin it with certfleet fetch --pin-sha256)"
        );
        let resolver = Arc::new(Resolver::new(fallback));
        let source = match config {
            TlsConfig::Files {
                cert_file,
                key_file,
            } => {
                let served = load_files(cert_file, key_file)?;
                resolver.set_public(served);
                Source::Files {
                    cert: cert_file.clone(),
                    key: key_file.clone(),
                }
            }
            TlsConfig::Acme { acme } => Source::Acme {
                key: CertKey::new(acme.hostnames.clone(), KeySpec::Server(key_type)),
            },
        };
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        // TLS 1.2 and 1.3 only, with rustls' modern cipher suites.
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            resolver,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            source,
        })
    }

    /// The acceptor for the API listener.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The fallback certificate's SHA-256 fingerprint, hex.
    pub fn fallback_fingerprint(&self) -> &str {
        &self.resolver.fallback().fingerprint
    }

    /// Keeps the public certificate current until `stop`: files are re-read when they change
    /// (a broken file keeps the old certificate and logs why); the self-obtained certificate is
    /// ordered when missing and swapped in when the renewal worker replaces it.
    pub fn spawn_reloader(&self, certs: Arc<CertService>, mut stop: watch::Receiver<bool>) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut stamp = None;
            loop {
                match &this.source {
                    Source::Files { cert, key } => this.reload_files(cert, key, &mut stamp),
                    Source::Acme { key } => this.refresh_acme(&certs, key).await,
                }
                tokio::select! {
                    () = tokio::time::sleep(RELOAD_INTERVAL) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
        });
    }

    fn reload_files(&self, cert: &Path, key: &Path, stamp: &mut Option<(SystemTime, SystemTime)>) {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let (Some(cert_time), Some(key_time)) = (modified(cert), modified(key)) else {
            tracing::warn!(path = %cert.display(), "server.tls: cannot stat the certificate files");
            return;
        };
        let now = Some((cert_time, key_time));
        if stamp.is_none() {
            *stamp = now;
            return;
        }
        if *stamp == now {
            return;
        }
        *stamp = now;
        match load_files(cert, key) {
            Ok(served) => {
                tracing::info!(serial = %served.serial, "server.tls: reloaded the certificate files");
                self.resolver.set_public(served);
            }
            Err(err) => {
                tracing::error!(error = %err, "server.tls: keeping the previous certificate");
            }
        }
    }

    async fn refresh_acme(&self, certs: &Arc<CertService>, key: &CertKey) {
        let now = clock::now();
        match certs.valid(key, now).await {
            Ok(Some(entry)) => {
                let current = self.resolver.public().map(|p| p.serial);
                if current.as_deref() == Some(entry.serial.as_str()) {
                    return;
                }
                let key_pem = entry.key_pem.as_deref().unwrap_or_default();
                match Served::from_pem(&entry.cert_pem, key_pem) {
                    Ok(served) => {
                        tracing::info!(names = %key.names, serial = %served.serial, "serving certfleet's own certificate");
                        self.resolver.set_public(served);
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot serve certfleet's own certificate");
                    }
                }
            }
            Ok(None) if !certs.is_issuing(key) => {
                // Ordered like any other certificate; the back-off rules apply.
                drop(certs.issue(key, now, ChallengeChoice::Auto));
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "cannot read certfleet's own certificate"),
        }
    }
}

/// Why certfleet's own TLS cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `server.tls.certFile` or `keyFile` cannot be read.
    #[error("{key} {}: {source}", path.display())]
    Read {
        /// The config key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The files do not make a certificate to serve.
    #[error("server.tls: {0}")]
    Files(#[source] ServedError),
    /// The stored fallback certificate does not make one.
    #[error("stored fallback certificate: {0}")]
    StoredFallback(#[source] ServedError),
    /// The fallback certificate could not be generated.
    #[error("fallback certificate: {0}")]
    Generate(#[source] rcgen::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// rustls refused the protocol settings.
    #[error("TLS setup: {0}")]
    Setup(#[source] rustls::Error),
    /// The fallback stored by another process vanished before it could be read.
    #[error("the fallback certificate vanished")]
    Vanished,
}

fn load_files(cert: &Path, key: &Path) -> Result<Served, TlsError> {
    let read = |key: &'static str, path: &Path| {
        std::fs::read_to_string(path).map_err(|source| TlsError::Read {
            key,
            path: path.to_owned(),
            source,
        })
    };
    Served::from_pem(
        &read("server.tls.certFile", cert)?,
        &read("server.tls.keyFile", key)?,
    )
    .map_err(TlsError::Files)
}

/// The fallback identity from the store, generated (self-signed ECDSA P-256) on first start.
async fn fallback(store: &dyn Store) -> Result<Served, TlsError> {
    if let Some((cert, key)) = store.server_identity("fallback").await? {
        return Served::from_pem(&cert, &key).map_err(TlsError::StoredFallback);
    }
    let key = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let mut params = rcgen::CertificateParams::new(vec!["certfleet.invalid".to_owned()])
        .map_err(TlsError::Generate)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "certfleet fallback");
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    store
        .save_server_identity("fallback", &cert.pem(), &key.serialize_pem(), clock::now())
        .await?;
    // Another process may have stored its own first: serve whatever the store holds.
    let (cert, key) = store
        .server_identity("fallback")
        .await?
        .ok_or(TlsError::Vanished)?;
    Served::from_pem(&cert, &key).map_err(TlsError::StoredFallback)
}
