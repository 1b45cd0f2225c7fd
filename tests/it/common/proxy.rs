//! A fault-injecting HTTPS proxy in front of Pebble that refuses every new order with
//! `rateLimited` (RFC 8555 section 6.7), the one sanctioned stand-in for a CA rate limit:
//! Pebble 2.4 has none.
//!
//! Only the directory and new-order are served here: the directory is Pebble's with `newOrder`
//! pointing at this proxy, so accounts, nonces and everything else still go to Pebble.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::Pebble;

/// The problem document sent with every refused new-order.
const RATE_LIMITED_DETAIL: &str =
    "too many new orders recently: see https://letsencrypt.org/docs/rate-limits/";

/// The proxy; it stops serving (and drops every open connection) when dropped.
#[derive(Debug)]
pub struct RateLimitProxy {
    port: u16,
    rejected: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

#[derive(Debug, Clone)]
struct ProxyState {
    directory: Arc<Value>,
    new_nonce_url: String,
    retry_after_secs: u64,
    client: reqwest::Client,
    rejected: Arc<AtomicUsize>,
}

impl RateLimitProxy {
    /// Starts the proxy on a free loopback port, serving HTTPS with the Pebble's `TestCa` leaf
    /// (a client that trusts Pebble trusts the proxy). Every new-order answers 429 with
    /// `Retry-After: retry_after_secs`.
    pub async fn start(pebble: &Pebble, retry_after_secs: u64) -> RateLimitProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the rate-limit proxy on 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("rate-limit proxy's local address")
            .port();

        let client = pebble.ca().reqwest_client();
        let pebble_dir = pebble.directory_url();
        let mut directory: Value = client
            .get(&pebble_dir)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("GET {pebble_dir}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {pebble_dir}: body: {e}"));
        let new_nonce_url = directory["newNonce"]
            .as_str()
            .unwrap_or_else(|| panic!("no newNonce in Pebble's directory {directory}"))
            .to_owned();
        directory["newOrder"] = json!(format!("https://127.0.0.1:{port}/new-order"));

        let rejected = Arc::new(AtomicUsize::new(0));
        let state = ProxyState {
            directory: Arc::new(directory),
            new_nonce_url,
            retry_after_secs,
            client,
            rejected: Arc::clone(&rejected),
        };
        let router = Router::new()
            .route("/dir", get(directory_handler))
            .route("/new-order", post(new_order_handler))
            .with_state(state);
        let acceptor = TlsAcceptor::from(pebble.ca().rustls_server_config());
        let task = tokio::spawn(serve(listener, acceptor, router));
        RateLimitProxy {
            port,
            rejected,
            task,
        }
    }

    /// The proxy's ACME directory, e.g. `https://127.0.0.1:PORT/dir`.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// How many new-order requests it has refused so far.
    pub fn rejected(&self) -> usize {
        self.rejected.load(Ordering::SeqCst)
    }
}

impl Drop for RateLimitProxy {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

/// Accepts TLS connections and serves each with hyper-util's HTTP/1 + HTTP/2 builder.
async fn serve(listener: TcpListener, acceptor: TlsAcceptor, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            // A client hanging up mid-request is not the proxy's failure.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn directory_handler(State(state): State<ProxyState>) -> Response {
    axum::Json(state.directory.as_ref().clone()).into_response()
}

/// Answers like a CA over its limit: 429, `rateLimited`, `Retry-After`, and a fresh nonce from
/// Pebble so the client's next request (to Pebble) carries a valid one.
async fn new_order_handler(State(state): State<ProxyState>) -> Response {
    let nonce = match fresh_nonce(&state).await {
        Ok(nonce) => nonce,
        Err(e) => return (StatusCode::BAD_GATEWAY, e).into_response(),
    };
    state.rejected.fetch_add(1, Ordering::SeqCst);
    let body = json!({
        "type": "urn:ietf:params:acme:error:rateLimited",
        "detail": RATE_LIMITED_DETAIL,
        "status": 429,
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from(state.retry_after_secs),
    );
    headers.insert("replay-nonce", nonce);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn fresh_nonce(state: &ProxyState) -> Result<HeaderValue, String> {
    let response = state
        .client
        .head(&state.new_nonce_url)
        .send()
        .await
        .map_err(|e| format!("HEAD {}: {e}", state.new_nonce_url))?;
    response
        .headers()
        .get("replay-nonce")
        .cloned()
        .ok_or_else(|| format!("HEAD {}: no Replay-Nonce", state.new_nonce_url))
}
