//! The HTTP API: the whole route table in [`router`], and the pieces every route shares (the
//! JSON body extractor and the framework-level rejections, all answered as JSON errors).
//!
//! Every route is registered with its OpenAPI documentation (`utoipa_axum::routes!`), so the
//! document served at `GET /openapi.json` (`api/openapi.rs`) and the router come from one source.

mod admin;
mod body;
mod certificate;
mod dashboard;
mod health;
mod inventory;
mod openapi;
mod servers;
pub mod watch;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tower::{Layer, Service};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AuthChain, HasAuth};
use crate::domain::{KeyType, PrivateKeys};
use crate::error::ApiError;
use crate::service::CertService;
use crate::store::Store;

/// The largest request body accepted: a request names at most 100 names.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The most header bytes accepted in one request. Generous for any real bearer token, small
/// enough that nobody needs a bigger parsing buffer (hyper's own limit answers 431 beyond it).
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// How the API's answers name an identity's key: flattened into them as `keyMode`, `keyType`
/// and `spkiSha256`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyFields {
    /// Who holds the private key.
    #[schema(value_type = body::KeyMode)]
    key_mode: &'static str,
    /// The type of a key certfleet holds; `null` for a client's key.
    #[schema(value_type = Option<openapi::KeyTypeName>)]
    key_type: Option<&'static str>,
    /// A client's key (CSR mode): the base64url SHA-256 of its SubjectPublicKeyInfo; `null`
    /// for a key certfleet holds.
    spki_sha256: Option<String>,
    /// The ACME profile the identity names; `null`: the configured default (`acme.profile`).
    profile: Option<String>,
}

impl KeyFields {
    /// The key in a few words, for the dashboard: its type, or `client key`.
    fn short(&self) -> &'static str {
        self.key_type.unwrap_or("client key")
    }

    /// The key in full, for the dashboard's detail page.
    fn long(&self) -> String {
        match (&self.key_type, &self.spki_sha256) {
            (Some(key_type), _) => format!("{key_type}, held by certfleet"),
            (None, spki) => format!(
                "the client's own (CSR mode), SPKI SHA-256 {}",
                spki.as_deref().unwrap_or("-")
            ),
        }
    }
}

impl From<&crate::domain::CertKey> for KeyFields {
    fn from(identity: &crate::domain::CertKey) -> Self {
        let key = &identity.key;
        Self {
            key_mode: key.mode(),
            key_type: key.key_type().map(|t| t.as_str()),
            spki_sha256: key.spki().map(|spki| spki.digest_b64().to_owned()),
            profile: identity.profile.as_ref().map(|p| p.as_str().to_owned()),
        }
    }
}

/// What the routes need, shared by every request; [`crate::app`] builds it from the config.
#[derive(Debug)]
pub struct Shared {
    /// Certificates: cache, store, issuance.
    pub certs: Arc<CertService>,
    /// The database (readiness).
    pub store: Arc<dyn Store>,
    /// The configured authentication methods.
    pub auth: AuthChain,
    /// `acme.keyType`: the key type of requests that name none.
    pub default_key_type: KeyType,
    /// `certificates.privateKeys`: who may hold private keys.
    pub private_keys: PrivateKeys,
    /// `certificates.maxClientKeys`: how many client keys one name set may have (0: no bound).
    pub max_client_keys: u32,
    /// `acme.profile`: what a request that names no profile gets; a request naming this one
    /// names the same identity.
    pub default_profile: Option<crate::domain::Profile>,
    /// `server.issueWait`: how long a request waits for an issuance before 202.
    pub issue_wait: Duration,
    /// The bytes the rendered answers may hold in memory: their share of `server.cacheSize`.
    pub renderings_budget: usize,
    /// `server.ui`: whether the dashboard is served at `/ui`.
    pub ui: bool,
    /// Whether the API is served over TLS (the dashboard's cookie is then `Secure`).
    pub tls: bool,
    /// `server.watch`: the requests waiting for their certificate to change.
    pub watchers: Arc<watch::Watchers>,
}

/// Every API route, each with its OpenAPI documentation; the document is rendered here, once.
pub fn router(app: Arc<Shared>) -> Router {
    let (router, mut document) = OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(certificate::post, certificate::get, admin::delete))
        .routes(routes!(certificate::renew))
        .routes(routes!(admin::revoke))
        .routes(routes!(inventory::list))
        .routes(routes!(inventory::show))
        .routes(routes!(inventory::events))
        .routes(routes!(servers::caddy))
        .routes(routes!(servers::traefik))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(openapi::document))
        .split_for_parts();
    // `LimitHeaders` below answers on every route.
    openapi::on_every_operation::<openapi::HeadersTooLarge>(
        &mut document,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    );
    let state = ApiState(Arc::new(ApiParts {
        renderings: body::Renderings::new(app.renderings_budget),
        app,
        document: openapi::Document::render(&document),
    }));
    let router = if state.app.ui {
        router.merge(dashboard::routes())
    } else {
        router
    };
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(layers())
        .with_state(state)
}

/// What wraps every route, outermost first: the observation (request id, span, metrics, audit
/// line; it needs the matched route template, so it goes on each route), the header limit, the
/// body limit. One `Router::layer` call with all three: axum boxes each such call's service
/// into every route and clones it, box by box, for every request, so three calls cost the cached
/// fetch about 0.35 µs more than one (bench/README.md).
fn layers() -> (crate::observe::ObserveLayer, LimitHeaders, DefaultBodyLimit) {
    (
        crate::observe::ObserveLayer,
        LimitHeaders,
        DefaultBodyLimit::max(MAX_BODY_BYTES),
    )
}

/// The router's state: the app, the certificates' rendered responses, and the OpenAPI
/// document rendered when the router was built. One `Arc`: axum clones the state for every
/// request.
#[derive(Debug, Clone)]
struct ApiState(Arc<ApiParts>);

#[derive(Debug)]
struct ApiParts {
    app: Arc<Shared>,
    renderings: body::Renderings,
    document: openapi::Document,
}

impl std::ops::Deref for ApiState {
    type Target = ApiParts;

    fn deref(&self) -> &ApiParts {
        &self.0
    }
}

impl FromRef<ApiState> for Arc<Shared> {
    fn from_ref(state: &ApiState) -> Self {
        state.app.clone()
    }
}

impl FromRef<ApiState> for openapi::Document {
    fn from_ref(state: &ApiState) -> Self {
        state.document.clone()
    }
}

impl HasAuth for ApiState {
    fn auth(&self) -> &AuthChain {
        &self.app.auth
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Answers 431 with a JSON body when the headers are larger than [`MAX_HEADER_BYTES`].
///
/// A hand-written layer rather than `middleware::from_fn`: it runs for every request, and
/// `from_fn` clones the route's service and boxes a future each time.
#[derive(Debug, Clone, Copy)]
struct LimitHeaders;

impl<S> Layer<S> for LimitHeaders {
    type Service = LimitHeadersService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitHeadersService { inner }
    }
}

#[derive(Debug, Clone)]
struct LimitHeadersService<S> {
    inner: S,
}

impl<S> Service<Request> for LimitHeadersService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Limited<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let size: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if size > MAX_HEADER_BYTES {
            return Limited::Refused(Some(ApiError::HeadersTooLarge.into_response()));
        }
        Limited::Passed(self.inner.call(request))
    }
}

/// [`LimitHeadersService`]'s answer: the refusal, or the route's own.
#[derive(Debug)]
enum Limited<F> {
    Refused(Option<Response>),
    Passed(F),
}

impl<F> Future for Limited<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Limited::Refused(response) => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| ApiError::HeadersTooLarge.into_response()))),
            Limited::Passed(inner) => Pin::new(inner).poll(cx),
        }
    }
}

/// A JSON body whose every rejection is one of the API's JSON errors.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::JsonRejection;
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::BodyTooLarge)
            }
            Err(rejection) => Err(ApiError::InvalidBody(format!(
                "the body is not valid JSON for this route: {}",
                rejection.body_text()
            ))),
        }
    }
}
