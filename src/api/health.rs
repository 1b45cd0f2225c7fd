//! Liveness and readiness.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;
use crate::error::ErrorBody;

/// The body of a health answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Health)]
pub struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    #[schema(examples("ok", "ready"))]
    status: &'static str,
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    summary = "Liveness: the process answers",
    responses((status = 200, description = "The process runs.", body = Health)),
)]
pub async fn live() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /readyz`: the database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    summary = "Readiness: the database answers",
    responses(
        (status = 200, description = "The database answers.", body = Health),
        (status = 503, description = "`not_ready`: the database does not answer.", body = ErrorBody),
    ),
)]
pub async fn ready(
    State(app): State<Arc<Shared>>,
) -> Result<Json<Health>, (StatusCode, Json<ErrorBody<'static>>)> {
    match app.store.ping().await {
        Ok(()) => Ok(Json(Health { status: "ready" })),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                Json(ErrorBody {
                    code: "not_ready",
                    message: "the database does not answer",
                }),
            ))
        }
    }
}
