//! The TLS accept loop: tokio-rustls in front of hyper's HTTP/1.1 + HTTP/2 server, with
//! graceful shutdown (`axum::serve` has no TLS).

use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};
use tower::ServiceExt as _;

/// A handshake slower than this is dropped: it holds a connection slot for nothing.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long requests in progress may take to finish after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` over TLS on `listener` until `stop` turns true, then drains. With `alpn`, a
/// hello offering `acme-tls/1` gets the TLS-ALPN-01 challenge certificate instead.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    alpn: Option<crate::acme::tls_alpn01::Responder>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, router, builder) = (acceptor.clone(), router.clone(), builder.clone());
        let alpn = alpn.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let handshake = async {
                let start =
                    LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
                if let Some(alpn) = &alpn
                    && crate::acme::tls_alpn01::wants_challenge(&start.client_hello())
                {
                    alpn.answer(start).await;
                    return Ok(None);
                }
                start.into_stream(acceptor.config().clone()).await.map(Some)
            };
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(Some(tls))) => tls,
                Ok(Ok(None)) | Err(_) => return,
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "TLS handshake failed");
                    return;
                }
            };
            // The client's address for the audit line, as `axum::serve` gives it without TLS.
            let router =
                router.map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
            let service = TowerToHyperService::new(router);
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    Ok(())
}
