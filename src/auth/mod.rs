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
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::domain::DomainPattern;
use crate::error::ApiError;

/// An authenticated client and the names it may request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// A name for logs: the PSK's name, a token's subject (shared: every request of a PSK or
    /// of a cached token clones it).
    pub name: Arc<str>,
    /// Which method authenticated it (`psk`, `jwt`, ...).
    pub method: &'static str,
    /// The patterns of names it may request.
    pub domains: Arc<[DomainPattern]>,
    /// Whether it may administer certfleet: list and read every certificate, revoke, delete
    /// (`admin: true` on a PSK, `auth.jwt.adminScope` granted; never an Akash token).
    pub admin: bool,
    /// The ACME profiles it may ask for besides the default; `None`: every profile the CA
    /// offers (`profiles` of a PSK key or Akash principal, `auth.jwt.profiles`).
    pub profiles: Option<Arc<[crate::domain::Profile]>>,
    /// The most new certificates it may obtain per window, counted per credential by the CA
    /// limits (`quota` of a PSK key or Akash principal, `auth.jwt.quota`); `None`: no quota.
    pub quota: Option<crate::config::Limit>,
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

/// How a method answers: at once, from what it holds in memory (a pre-shared key, a token it
/// has verified before), or after work that may wait (fetching an identity provider's keys).
/// The first costs nothing per request: it is what every cached fetch takes.
pub enum Check<'a> {
    /// The outcome, decided without waiting.
    Now(Outcome),
    /// The outcome, once the future completes.
    Later(Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>),
}

impl fmt::Debug for Check<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Now(outcome) => f.debug_tuple("Now").field(outcome).finish(),
            Check::Later(_) => f.write_str("Later(..)"),
        }
    }
}

impl Check<'_> {
    /// The outcome, waiting for it if it is not there yet.
    pub async fn outcome(self) -> Outcome {
        match self {
            Check::Now(outcome) => outcome,
            Check::Later(future) => future.await,
        }
    }
}

/// One authentication method.
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// The method's name in [`Principal::method`], logs and metrics (`psk`, `jwt`, `akash`).
    fn method(&self) -> &'static str;

    /// Looks at one `Authorization` header: `scheme` (e.g. `APIKey`, `Bearer`) and the rest.
    /// Answers [`Check::Now`] whenever it need not wait.
    fn authenticate<'a>(&'a self, scheme: &'a str, credentials: &'a str) -> Check<'a>;
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

    /// Authenticates a request from its `Authorization` header; refusals are counted by method
    /// and reason.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        self.decide(header).await.map_err(|refusal| {
            crate::observe::metrics::auth_failure(refusal.method, refusal.reason);
            refusal.error
        })
    }

    async fn decide(&self, header: Option<&str>) -> Result<Principal, Refusal> {
        let Some(header) = header else {
            return Err(Refusal::missing(
                "missing credentials: send Authorization: APIKey <key> or Authorization: Bearer <token>",
            ));
        };
        let (scheme, credentials) = header.trim().split_once(' ').unwrap_or((header, ""));
        let credentials = credentials.trim();
        if credentials.is_empty() {
            return Err(Refusal::missing(
                "empty credentials in the Authorization header",
            ));
        }
        for method in &self.methods {
            let (reason, error) = match method.authenticate(scheme, credentials).outcome().await {
                Outcome::NotMine => continue,
                Outcome::Authenticated(principal) => return Ok(principal),
                Outcome::Invalid(why) => ("invalid", ApiError::Unauthorized(why)),
                Outcome::InsufficientScope(why) => {
                    ("insufficient_scope", ApiError::InsufficientScope(why))
                }
                Outcome::Unavailable(why) => ("unavailable", ApiError::AuthUnavailable(why)),
            };
            return Err(Refusal {
                method: method.method(),
                reason,
                error,
            });
        }
        // Akash tokens are told from OIDC ones by alg: say which section is missing.
        let message = if scheme.eq_ignore_ascii_case("bearer")
            && crate::akash::token::header_algorithm(credentials)
                .is_some_and(|alg| crate::akash::Algorithm::from_name(&alg).is_some())
        {
            "Akash tokens (ES256K, ES256KADR36) are not accepted: auth.akash is not configured"
                .to_owned()
        } else {
            format!("no configured authentication method accepts the {scheme:?} scheme")
        };
        Err(Refusal {
            method: "none",
            reason: "invalid",
            error: ApiError::Unauthorized(message),
        })
    }
}

/// A refused credential: the answer, and its labels for the metrics.
struct Refusal {
    /// The method that refused it, `none` when no method claimed it.
    method: &'static str,
    /// `missing`, `invalid`, `insufficient_scope` or `unavailable`.
    reason: &'static str,
    error: ApiError,
}

impl Refusal {
    fn missing(message: &str) -> Self {
        Self {
            method: "none",
            reason: "missing",
            error: ApiError::Unauthorized(message.to_owned()),
        }
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
