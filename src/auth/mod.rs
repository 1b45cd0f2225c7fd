//! Who is asking: the [`Authenticator`] seam, the chain of configured methods, and the
//! extractor that puts a [`Principal`] into handlers.
//!
//! Each method looks at the `Authorization` header and answers "not mine", "this principal",
//! "mine and invalid" (401, never passed on to another method) or "mine, but I cannot check
//! now" (503). Several methods run side by side; the first that claims a credential decides.

pub mod akash;
pub mod jwks;
pub mod jwt;
pub mod policy;
pub mod psk;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::domain::DomainPattern;
use crate::error::ApiError;

/// An authenticated client and the names it may request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// A name for logs: the PSK's name, a token's subject.
    pub name: String,
    /// Which method authenticated it (`psk`, `jwt`, ...).
    pub method: &'static str,
    /// The patterns of names it may request.
    pub domains: Arc<[DomainPattern]>,
}

/// What one method made of a credential.
#[derive(Debug)]
pub enum Outcome {
    /// Not this method's kind of credential.
    NotMine,
    /// A valid credential.
    Authenticated(Principal),
    /// This method's kind, and invalid: the reason goes to the client (never the credential).
    Invalid(String),
    /// This method's kind and valid, but lacking a required scope (403, RFC 6750 section 3.1).
    InsufficientScope(String),
    /// This method's kind, but it cannot be checked now (503), e.g. an identity provider's
    /// keys are not loaded yet.
    Unavailable(String),
}

/// One authentication method.
#[async_trait]
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// Looks at one `Authorization` header: `scheme` (e.g. `APIKey`, `Bearer`) and the rest.
    async fn authenticate(&self, scheme: &str, credentials: &str) -> Outcome;
}

/// The configured methods, asked in order.
#[derive(Debug, Clone, Default)]
pub struct AuthChain {
    methods: Vec<Arc<dyn Authenticator>>,
}

impl AuthChain {
    /// A chain of `methods`.
    pub fn new(methods: Vec<Arc<dyn Authenticator>>) -> Self {
        Self { methods }
    }

    /// Authenticates a request from its `Authorization` header.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        let Some(header) = header else {
            return Err(ApiError::Unauthorized(
                "missing credentials: send Authorization: APIKey <key> or Authorization: Bearer <token>".to_owned(),
            ));
        };
        let (scheme, credentials) = header.trim().split_once(' ').unwrap_or((header, ""));
        let credentials = credentials.trim();
        if credentials.is_empty() {
            return Err(ApiError::Unauthorized(
                "empty credentials in the Authorization header".to_owned(),
            ));
        }
        for method in &self.methods {
            match method.authenticate(scheme, credentials).await {
                Outcome::NotMine => continue,
                Outcome::Authenticated(principal) => return Ok(principal),
                Outcome::Invalid(reason) => return Err(ApiError::Unauthorized(reason)),
                Outcome::InsufficientScope(reason) => {
                    return Err(ApiError::InsufficientScope(reason));
                }
                Outcome::Unavailable(reason) => return Err(ApiError::AuthUnavailable(reason)),
            }
        }
        // Akash tokens are told from OIDC ones by alg: say which section is missing.
        if scheme.eq_ignore_ascii_case("bearer")
            && crate::akash::token::header_algorithm(credentials)
                .is_some_and(|alg| crate::akash::Algorithm::from_name(&alg).is_some())
        {
            return Err(ApiError::Unauthorized(
                "Akash tokens (ES256K, ES256KADR36) are not accepted: auth.akash is not configured"
                    .to_owned(),
            ));
        }
        Err(ApiError::Unauthorized(format!(
            "no configured authentication method accepts the {scheme:?} scheme"
        )))
    }
}

/// Anything that holds the chain can authenticate requests through the extractor.
pub trait HasAuth {
    /// The chain to authenticate with.
    fn auth(&self) -> &AuthChain;
}

impl<S: HasAuth + Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = match parts.headers.get(AUTHORIZATION) {
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::Unauthorized("the Authorization header is not ASCII".to_owned())
            })?),
            None => None,
        };
        state.auth().authenticate(header).await
    }
}
