//! The admin routes: `POST /api/certificate/revoke` and `DELETE /api/certificate`. Only a
//! credential with the admin right may call them (403 `admin_required` otherwise); the work,
//! the history and the audit line are the service's ([`crate::service::admin`]).

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::Uri;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use super::KeyFields;
use super::certificate::{parse_identity_query, parse_key_spec, parse_names, parse_profile};
use super::inventory::encode_id;
use super::{ApiJson, ApiState};
use crate::auth::Principal;
use crate::domain::{CertKey, KeyType, Profile, RevocationReason};
use crate::error::ApiError;
use crate::service::{self, admin::Actor};
use crate::util::clock::rfc3339;

/// The body of `POST /api/certificate/revoke`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(
    as = RevocationRequest,
    description = "The certificate's identity (`domain`, `domains` or both, and `keyType`) and \
        why it is revoked.",
    example = json!({"domains": ["example.com"], "keyType": "ecdsa-p256", "reason": "keyCompromise"}),
)]
pub struct RevokeRequest {
    /// One name.
    domain: Option<String>,
    /// The names; order, case and duplicates do not matter.
    domains: Option<Vec<String>>,
    #[schema(value_type = Option<super::openapi::KeyTypeName>)]
    key_type: Option<String>,
    /// A client's key (CSR mode) instead of `keyType`: its `spkiSha256`.
    spki_sha256: Option<String>,
    /// The profile the certificate was asked with, when it was.
    profile: Option<String>,
    /// RFC 5280: `unspecified`, `keyCompromise`, `superseded`, `cessationOfOperation` or
    /// `affiliationChanged`. `keyCompromise` and `superseded` get a replacement with a new key
    /// at once.
    reason: String,
}

/// What a revocation did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    /// The inventory id.
    id: String,
    names: Vec<String>,
    #[serde(flatten)]
    key: KeyFields,
    /// The serial revoked.
    serial: String,
    reason: &'static str,
    /// RFC 3339, UTC.
    revoked_at: String,
    /// The replacement (for `keyCompromise` and `superseded`), `null` for the other reasons:
    /// the identity stays revoked until a client asks for it again or an admin renews it.
    replacement: Option<Replacement>,
}

/// The replacement's state when the answer was written (after at most `server.issueWait`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    /// `issued`, `issuing` (it goes on; clients get it once stored) or `failed` (the renewal
    /// worker retries it, with the usual back-off).
    status: &'static str,
    /// The new certificate's serial, once issued.
    serial: Option<String>,
    /// The failure's API code and message.
    error: Option<ReplacementError>,
}

/// Why the replacement failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplacementError {
    code: &'static str,
    message: String,
}

/// What a deletion did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deletion {
    /// The inventory id, under which the history stays readable.
    id: String,
    names: Vec<String>,
    #[serde(flatten)]
    key: KeyFields,
    /// The serial of the certificate it held.
    serial: Option<String>,
    /// Whether that certificate was revoked at the CA (`cessationOfOperation`) first.
    revoked: bool,
}

/// `POST /api/certificate/revoke`.
#[utoipa::path(
    post,
    path = "/api/certificate/revoke",
    tag = "admin",
    operation_id = "revokeCertificate",
    summary = "Revoke a certificate at the CA (admin)",
    description = "Revokes the identity's current certificate at the CA (RFC 8555 section \
        7.6, signed by the account key) and records it: the certificate is never served \
        again, its private key is destroyed. For `keyCompromise` and `superseded` a \
        replacement with a new key is issued at once (waited for up to `server.issueWait`).",
    request_body = RevokeRequest,
    security(("APIKey" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Revoked.", body = Revocation),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::AdminForbidden),
        (status = 404, response = super::openapi::NotManaged),
        (status = 409, response = super::openapi::Conflict),
        (status = 413, response = super::openapi::BodyTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 500, response = super::openapi::InternalError),
        (status = 502, response = super::openapi::BadGateway),
        (status = 503, response = super::openapi::AuthUnavailable),
    ),
)]
pub async fn revoke(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(remote): ClientAddr,
    ApiJson(request): ApiJson<RevokeRequest>,
) -> Result<Json<Revocation>, ApiError> {
    require_admin(&principal, "revoke")?;
    let app = &state.app;
    let mut inputs = request.domains.unwrap_or_default();
    inputs.extend(request.domain);
    if inputs.is_empty() {
        return Err(ApiError::InvalidBody(
            "name the certificate: {\"domains\": [...], \"keyType\": ..., \"reason\": ...}"
                .to_owned(),
        ));
    }
    let mut key = CertKey {
        names: parse_names(&inputs)?,
        key: parse_key_spec(
            request.key_type.as_deref(),
            request.spki_sha256.as_deref(),
            app.default_key_type,
        )?,
        profile: parse_profile(request.profile.as_deref(), app.default_profile.as_ref())?,
    };
    super::certificate::address_profile(app, &mut key).await?;
    let reason = RevocationReason::parse(&request.reason).ok_or_else(|| {
        ApiError::InvalidBody(format!(
            "reason {:?}: use one of {}",
            request.reason,
            RevocationReason::names()
        ))
    })?;
    let actor = Actor {
        name: &principal.name,
        method: principal.method,
        remote,
    };
    let revoked = app.certs.revoke(&key, reason, actor).await?;
    state.renderings.forget(&key);
    let replacement = match revoked.replacement {
        None => None,
        Some(pending) => Some(
            match tokio::time::timeout(app.issue_wait, service::finished(pending)).await {
                Ok(Ok(cert)) => Replacement {
                    status: "issued",
                    serial: Some(cert.serial.clone()),
                    error: None,
                },
                Ok(Err(err)) => {
                    let err = ApiError::from(err);
                    Replacement {
                        status: "failed",
                        serial: None,
                        error: Some(ReplacementError {
                            code: err.status_and_code().1,
                            message: err.message().to_owned(),
                        }),
                    }
                }
                Err(_) => Replacement {
                    status: "issuing",
                    serial: None,
                    error: None,
                },
            },
        ),
    };
    Ok(Json(Revocation {
        id: encode_id(&key),
        names: names_of(&key),
        key: KeyFields::from(&key),
        serial: revoked.serial,
        reason: reason.as_str(),
        revoked_at: rfc3339(revoked.at),
        replacement,
    }))
}

/// `DELETE /api/certificate?domain=...`.
#[utoipa::path(
    delete,
    path = "/api/certificate",
    tag = "admin",
    operation_id = "deleteCertificate",
    summary = "Stop managing a certificate (admin)",
    description = "No more renewals; the certificate and its private key are deleted and no \
        longer served. Its history stays (`GET /api/certificates/{id}`, status `deleted`). \
        With `revoke=true` the certificate is first revoked at the CA \
        (`cessationOfOperation`); if that fails, nothing is deleted.",
    params(
        ("domain" = Vec<String>, Query, style = Form, explode,
            description = "A name; repeat it (or separate names with commas) for a name set."),
        ("keyType" = Option<super::openapi::KeyTypeName>, Query),
        ("spkiSha256" = Option<String>, Query,
            description = "CSR mode, instead of `keyType`: the base64url SHA-256 of the \
                client's public key (its DER SubjectPublicKeyInfo)."),
        ("revoke" = Option<bool>, Query,
            description = "`true`: revoke the certificate (`cessationOfOperation`) first."),
    ),
    security(("APIKey" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Deleted.", body = Deletion),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::AdminForbidden),
        (status = 404, response = super::openapi::NotManaged),
        (status = 409, response = super::openapi::Conflict),
        (status = 500, response = super::openapi::InternalError),
        (status = 502, response = super::openapi::BadGateway),
        (status = 503, response = super::openapi::AuthUnavailable),
    ),
)]
pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(remote): ClientAddr,
    uri: Uri,
) -> Result<Json<Deletion>, ApiError> {
    require_admin(&principal, "delete")?;
    let app = &state.app;
    let (mut key, revoke) = parse_delete(
        uri.query().unwrap_or(""),
        (app.default_key_type, app.default_profile.as_ref()),
    )?;
    super::certificate::address_profile(app, &mut key).await?;
    let actor = Actor {
        name: &principal.name,
        method: principal.method,
        remote,
    };
    let deleted = app.certs.delete(&key, revoke, actor).await?;
    state.renderings.forget(&key);
    Ok(Json(Deletion {
        id: encode_id(&key),
        names: names_of(&key),
        key: KeyFields::from(&key),
        serial: deleted.serial,
        revoked: deleted.revoked,
    }))
}

/// 403 `admin_required` unless `principal` has the admin right.
pub(super) fn require_admin(principal: &Principal, action: &str) -> Result<(), ApiError> {
    if principal.admin {
        return Ok(());
    }
    Err(ApiError::AdminRequired(format!(
        "{} ({}) may not {action} certificates: that takes a credential with the admin right \
         (admin: true on an API key, auth.jwt.adminScope in a token)",
        principal.name, principal.method
    )))
}

fn names_of(key: &CertKey) -> Vec<String> {
    key.names
        .names()
        .iter()
        .map(|n| n.as_str().to_owned())
        .collect()
}

/// The query of `DELETE /api/certificate`: `domain` (repeatable, or comma-separated),
/// `keyType`, `revoke`.
fn parse_delete(
    query: &str,
    defaults: (KeyType, Option<&Profile>),
) -> Result<(CertKey, bool), ApiError> {
    let mut revoke = false;
    let allowed = "domain (repeatable), keyType or spkiSha256, profile, and revoke";
    let key = parse_identity_query(query, defaults, allowed, |name, value| {
        if name != "revoke" {
            return Ok(false);
        }
        revoke = match value {
            "true" => true,
            "false" => false,
            other => {
                return Err(ApiError::InvalidBody(format!(
                    "revoke {other:?}: use true or false"
                )));
            }
        };
        Ok(true)
    })?;
    Ok((key, revoke))
}

/// The client's address (for the audit line), when the server knows it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{KeySpec, KeyType};

    #[test]
    fn the_delete_query_reads_names_key_type_and_revoke() {
        let (key, revoke) = parse_delete(
            "domain=b.example.com,a.example.com&keyType=rsa-2048&revoke=true",
            (KeyType::EcdsaP256, None),
        )
        .expect("valid");
        assert_eq!(key.names.key(), "a.example.com,b.example.com");
        assert_eq!(key.key, KeySpec::Server(KeyType::Rsa2048));
        assert!(revoke);
        let (key, revoke) =
            parse_delete("domain=a.example.com", (KeyType::EcdsaP256, None)).expect("ok");
        assert_eq!(key.key, KeySpec::Server(KeyType::EcdsaP256));
        assert!(!revoke);
        for (query, code) in [
            ("", "invalid_body"),
            ("domain=a.example.com&revoke=yes", "invalid_body"),
            ("domain=a.example.com&force=1", "invalid_body"),
            ("domain=a..example.com", "invalid_domain"),
            ("domain=a.example.com&keyType=dsa", "invalid_body"),
        ] {
            let err = parse_delete(query, (KeyType::EcdsaP256, None)).expect_err(query);
            assert_eq!(err.status_and_code().1, code, "{query}");
        }
    }
}
