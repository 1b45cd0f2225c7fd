//! The HTTP API: the whole route table in [`router`], and the pieces every route shares (the
//! JSON body extractor and the framework-level rejections, all answered as JSON errors).

mod certificate;
mod health;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::error::ApiError;

/// The largest request body accepted: a request names at most 100 names.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The most header bytes accepted in one request. Generous for any real bearer token, small
/// enough that nobody needs a bigger parsing buffer (hyper's own limit answers 431 beyond it).
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Every API route.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/api/certificate",
            post(certificate::post).get(certificate::get),
        )
        .route("/api/certificate/renew", post(certificate::renew))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limit_headers))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Answers 431 with a JSON body when the headers are larger than [`MAX_HEADER_BYTES`].
async fn limit_headers(request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge.into_response();
    }
    next.run(request).await
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
