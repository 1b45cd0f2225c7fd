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

use super::solver::{Presented, Solver};
use crate::store::Store;

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
        name: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<Presented, String> {
        self.store
            .put_http01(token, key_authorization, crate::clock::now())
            .await
            .map_err(|e| format!("http-01: present token for {name}: {e}"))?;
        Ok(Presented {
            name: name.to_owned(),
            handle: token.to_owned(),
        })
    }

    async fn cleanup(&self, presented: &Presented) -> Result<(), String> {
        self.store
            .delete_http01(&presented.handle)
            .await
            .map_err(|e| format!("http-01: remove token for {}: {e}", presented.name))
    }
}

/// The router of the HTTP-01 listener.
pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(answer))
        .with_state(store)
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
