//! HTTP-01 (RFC 8555 section 8.3): key authorizations served from the store at
//! `/.well-known/acme-challenge/{token}` on `challenges.http01.listen`.
//!
//! Tokens live in the store, not in memory, so any process sharing the store can answer the
//! CA's validation request.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use instant_acme::ChallengeType;

use super::IssueError;
use super::solver::{CleanupError, Presented, Solver};
use crate::store::{Store, StoreError};

/// An HTTP-01 token that could not be removed from the store.
#[derive(Debug, thiserror::Error)]
#[error("http-01: remove token for {name}: {source}")]
struct RemoveTokenError {
    /// The name it validated.
    name: String,
    source: StoreError,
}

/// Presents HTTP-01 responses by writing them to the store.
#[derive(Debug, Clone)]
pub struct Http01Solver {
    store: Arc<dyn Store>,
}

impl Http01Solver {
    /// A solver writing to `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Solver for Http01Solver {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::Http01
    }

    async fn present(
        &self,
        prepared: &Presented,
        token: &str,
        key_authorization: &str,
    ) -> Result<Presented, IssueError> {
        self.store
            .put_http01(token, key_authorization, crate::util::clock::now())
            .await
            .map_err(|e| {
                IssueError::Internal(format!("http-01: present token for {}: {e}", prepared.name))
            })?;
        Ok(prepared.clone())
    }

    async fn cleanup(&self, presented: &Presented) -> Result<(), CleanupError> {
        self.store
            .delete_http01(&presented.handle)
            .await
            .map_err(|source| {
                RemoveTokenError {
                    name: presented.name.clone(),
                    source,
                }
                .into()
            })
    }
}

/// The router of the HTTP-01 listener. With `https_port`, every other request is redirected
/// (308) to the same path on the API's HTTPS listener.
pub fn router(store: Arc<dyn Store>, https_port: Option<u16>) -> Router {
    let router = Router::new().route("/.well-known/acme-challenge/{token}", get(answer));
    let router = match https_port {
        Some(port) => {
            router.fallback(move |request: axum::extract::Request| redirect(request, port))
        }
        None => router,
    };
    router.with_state(store)
}

async fn redirect(request: axum::extract::Request, port: u16) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
        .filter(|h| !h.is_empty() && !h.contains(['/', '@', ' ']));
    let Some(host) = host else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}:{port}{path}");
    match header::HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn answer(State(store): State<Arc<dyn Store>>, Path(token): Path<String>) -> Response {
    match store.http01(&token).await {
        Ok(Some(key_authorization)) => {
            ([(header::CONTENT_TYPE, "text/plain")], key_authorization).into_response()
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => {
            tracing::error!(error = %err, "http-01: cannot read the token store");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
