//! The API's errors: every failure a client can see, mapped once to a status, a stable code
//! and a message (`{"code": "...", "message": "..."}`).
//!
//! Messages never hold a secret. Internal failures are logged in full and answered with a
//! generic message.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::acme::csr::CsrError;
use crate::acme::dns_persist01::RecordProblem;
use crate::acme::{IssueError, NoSolver, UnknownProfile};
use crate::domain::FailureKind;
use crate::service::ForceError;
use crate::service::admin::AdminError;
use crate::store::StoreError;

/// The `WWW-Authenticate` challenge sent with every 401 (RFC 9110 section 11.6.1).
pub const WWW_AUTHENTICATE: &str = "APIKey realm=\"certfleet\", Bearer realm=\"certfleet\"";
/// The challenge sent with 403 `insufficient_scope` (RFC 6750 section 3).
pub const WWW_AUTHENTICATE_SCOPE: &str = "Bearer realm=\"certfleet\", error=\"insufficient_scope\"";
/// How long a client waits before retrying after 503 `auth_unavailable`.
const AUTH_UNAVAILABLE_RETRY: Duration = Duration::from_secs(5);

/// Every error the HTTP API answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400 `invalid_body`: malformed JSON, a missing or wrong field, a bad query.
    InvalidBody(String),
    /// 400 `invalid_domain`: a name that cannot be certified, or a request this version cannot
    /// serve for it (a wildcard without DNS-01).
    InvalidDomain(String),
    /// 400 `domain_rejected`: the CA refuses the name.
    DomainRejected(String),
    /// 400 with the refusal's own code (`csr_malformed`, `csr_bad_signature`, ...): a CSR
    /// certfleet does not issue for ([`CsrError`]).
    Csr {
        /// The refusal's code ([`CsrError::code`]).
        code: &'static str,
        /// Why.
        message: String,
    },
    /// 400 `csr_names_mismatch`: the request's `domains` are not the CSR's names.
    CsrNamesMismatch(String),
    /// 400 `csr_required`: `certificates.privateKeys` is `client`, and the request has no CSR.
    CsrRequired(String),
    /// 400 `csr_not_allowed`: `certificates.privateKeys` is `server`, and the request has one.
    CsrNotAllowed(String),
    /// 409 `client_key_limit`: the name set has `certificates.maxClientKeys` client keys.
    ClientKeyLimit(String),
    /// 400 `key_compromised`: a CSR for a client key whose certificate was revoked for
    /// `keyCompromise`; certfleet issues for it no more.
    KeyCompromised(String),
    /// 400 `unknown_profile`: a profile the CA's directory does not list.
    UnknownProfile(String),
    /// 401 `unauthorized`: missing or invalid credentials.
    Unauthorized(String),
    /// 403 `domain_not_allowed`: authenticated, but the name is not the client's.
    DomainNotAllowed(String),
    /// 403 `profile_not_allowed`: the credential may not ask for that profile.
    ProfileNotAllowed(String),
    /// 403 `insufficient_scope`: a valid bearer token without a required scope.
    InsufficientScope(String),
    /// 403 `admin_required`: an action only an admin credential may take (revoke, delete).
    AdminRequired(String),
    /// 404 `not_found`.
    NotFound(String),
    /// 409 `issuance_in_progress`: an admin action on an identity being issued right now.
    IssuanceInProgress(String),
    /// 405 `method_not_allowed`.
    MethodNotAllowed,
    /// 413 `body_too_large`.
    BodyTooLarge,
    /// 415 `unsupported_media_type`: the body is not declared as JSON.
    UnsupportedMediaType,
    /// 431 `headers_too_large`.
    HeadersTooLarge,
    /// 429 `rate_limited`: the CA's rate limit.
    RateLimited {
        /// What the CA said.
        message: String,
        /// How long to wait.
        retry_after: Duration,
    },
    /// 429 `renew_too_soon`: a forced renewal ran less than an hour ago.
    RenewTooSoon {
        /// What to do.
        message: String,
        /// How long until the next forced renewal is allowed.
        retry_after: Duration,
    },
    /// 429 `ca_limit`: a new certificate would exceed a CA limit certfleet keeps to (`limits`,
    /// a credential's `quota`); refused before the CA is asked.
    CaLimit {
        /// The limit, the count and the window.
        message: String,
        /// How long until the oldest counted order leaves the window.
        retry_after: Duration,
    },
    /// 429 `watch_limit`: too many requests wait (`wait=`) on this server or for this
    /// credential (`server.watch`).
    WatchLimit {
        /// Which bound, and how many wait.
        message: String,
        /// When to ask again.
        retry_after: Duration,
    },
    /// 502 `validation_failed`: the CA could not validate a challenge.
    ValidationFailed(String),
    /// 502 `ca_error`: the CA failed or could not be reached.
    CaError(String),
    /// 502 `dns_error`: a DNS provider failed, or a DNS-01 record never became visible.
    DnsError(String),
    /// 502 `dns_persist_record_missing`: a name validated by DNS-PERSIST-01 has no
    /// `_validation-persist` record naming the CA; found before any order.
    DnsPersistRecordMissing(String),
    /// 502 `dns_persist_record_mismatch`: its record names another account, lacks
    /// `policy=wildcard`, is past `persistUntil` or is malformed; found before any order.
    DnsPersistRecordMismatch(String),
    /// 502 `dns_persist_record_expired`: this account's record is past its `persistUntil`;
    /// found before any order.
    DnsPersistRecordExpired(String),
    /// 503 `auth_unavailable`: an identity provider's keys cannot be loaded yet.
    AuthUnavailable(String),
    /// 500 `internal_error`: certfleet's own failure; details only in the log.
    Internal(String),
    /// An earlier failure of the same certificate is backing off: that failure's status and
    /// code, with `Retry-After`.
    Backoff {
        /// The failure being repeated.
        inner: Box<ApiError>,
        /// How long until the next attempt.
        retry_after: Duration,
    },
}

/// The JSON error body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// The stable machine code.
    #[schema(value_type = ErrorCode)]
    pub code: &'a str,
    /// A human-readable message. It may change: match on `code`.
    pub message: &'a str,
}

/// Every stable `code` of an error body: each [`ApiError`]'s (`tests/it/openapi.rs` checks that
/// none is missing), then the two bodies answered outside it: `issuing` (202 from the
/// certificate routes) and `not_ready` (503 from `/readyz`).
pub const ERROR_CODES: [&str; 41] = [
    "invalid_body",
    "invalid_domain",
    "domain_rejected",
    "csr_too_large",
    "csr_malformed",
    "csr_bad_signature",
    "csr_unsupported_key",
    "csr_no_names",
    "csr_ip_address",
    "csr_bad_name",
    "csr_names_mismatch",
    "csr_required",
    "csr_not_allowed",
    "client_key_limit",
    "key_compromised",
    "unknown_profile",
    "unauthorized",
    "domain_not_allowed",
    "profile_not_allowed",
    "insufficient_scope",
    "admin_required",
    "not_found",
    "issuance_in_progress",
    "method_not_allowed",
    "body_too_large",
    "unsupported_media_type",
    "headers_too_large",
    "rate_limited",
    "renew_too_soon",
    "ca_limit",
    "watch_limit",
    "validation_failed",
    "ca_error",
    "dns_error",
    "dns_persist_record_missing",
    "dns_persist_record_mismatch",
    "dns_persist_record_expired",
    "auth_unavailable",
    "internal_error",
    "issuing",
    "not_ready",
];

/// The OpenAPI schema of an error body's `code`: the enum of [`ERROR_CODES`].
#[derive(Debug)]
pub struct ErrorCode;

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A stable machine code: clients match on it."))
            .enum_values(Some(ERROR_CODES))
            .into()
    }
}

impl ToSchema for ErrorCode {}

impl ApiError {
    /// The HTTP status and the stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            Self::InvalidDomain(_) => (StatusCode::BAD_REQUEST, "invalid_domain"),
            Self::DomainRejected(_) => (StatusCode::BAD_REQUEST, "domain_rejected"),
            Self::Csr { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::CsrNamesMismatch(_) => (StatusCode::BAD_REQUEST, "csr_names_mismatch"),
            Self::CsrRequired(_) => (StatusCode::BAD_REQUEST, "csr_required"),
            Self::CsrNotAllowed(_) => (StatusCode::BAD_REQUEST, "csr_not_allowed"),
            Self::ClientKeyLimit(_) => (StatusCode::CONFLICT, "client_key_limit"),
            Self::KeyCompromised(_) => (StatusCode::BAD_REQUEST, "key_compromised"),
            Self::UnknownProfile(_) => (StatusCode::BAD_REQUEST, "unknown_profile"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::DomainNotAllowed(_) => (StatusCode::FORBIDDEN, "domain_not_allowed"),
            Self::ProfileNotAllowed(_) => (StatusCode::FORBIDDEN, "profile_not_allowed"),
            Self::InsufficientScope(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
            Self::AdminRequired(_) => (StatusCode::FORBIDDEN, "admin_required"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::IssuanceInProgress(_) => (StatusCode::CONFLICT, "issuance_in_progress"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::RenewTooSoon { .. } => (StatusCode::TOO_MANY_REQUESTS, "renew_too_soon"),
            Self::CaLimit { .. } => (StatusCode::TOO_MANY_REQUESTS, "ca_limit"),
            Self::WatchLimit { .. } => (StatusCode::TOO_MANY_REQUESTS, "watch_limit"),
            Self::ValidationFailed(_) => (StatusCode::BAD_GATEWAY, "validation_failed"),
            Self::CaError(_) => (StatusCode::BAD_GATEWAY, "ca_error"),
            Self::DnsError(_) => (StatusCode::BAD_GATEWAY, "dns_error"),
            Self::DnsPersistRecordMissing(_) => {
                (StatusCode::BAD_GATEWAY, "dns_persist_record_missing")
            }
            Self::DnsPersistRecordMismatch(_) => {
                (StatusCode::BAD_GATEWAY, "dns_persist_record_mismatch")
            }
            Self::DnsPersistRecordExpired(_) => {
                (StatusCode::BAD_GATEWAY, "dns_persist_record_expired")
            }
            Self::AuthUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            Self::Backoff { inner, .. } => inner.status_and_code(),
        }
    }

    /// The message the body carries (generic for internal errors).
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidBody(m)
            | Self::InvalidDomain(m)
            | Self::DomainRejected(m)
            | Self::Csr { message: m, .. }
            | Self::CsrNamesMismatch(m)
            | Self::CsrRequired(m)
            | Self::CsrNotAllowed(m)
            | Self::ClientKeyLimit(m)
            | Self::KeyCompromised(m)
            | Self::UnknownProfile(m)
            | Self::Unauthorized(m)
            | Self::DomainNotAllowed(m)
            | Self::ProfileNotAllowed(m)
            | Self::InsufficientScope(m)
            | Self::AuthUnavailable(m)
            | Self::AdminRequired(m)
            | Self::NotFound(m)
            | Self::IssuanceInProgress(m)
            | Self::ValidationFailed(m)
            | Self::CaError(m)
            | Self::DnsError(m)
            | Self::DnsPersistRecordMissing(m)
            | Self::DnsPersistRecordMismatch(m)
            | Self::DnsPersistRecordExpired(m)
            | Self::RateLimited { message: m, .. }
            | Self::RenewTooSoon { message: m, .. }
            | Self::CaLimit { message: m, .. }
            | Self::WatchLimit { message: m, .. } => m,
            Self::MethodNotAllowed => "this method is not allowed on this route",
            Self::BodyTooLarge => "the request body is too large",
            Self::UnsupportedMediaType => {
                "the body must be JSON, sent with Content-Type: application/json"
            }
            Self::HeadersTooLarge => "the request headers are too large",
            Self::Internal(_) => "internal error; the server log has the details",
            Self::Backoff { inner, .. } => inner.message(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        let mut response = (
            status,
            Json(ErrorBody {
                code,
                message: self.message(),
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(WWW_AUTHENTICATE),
                );
            }
            Self::InsufficientScope(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(WWW_AUTHENTICATE_SCOPE),
                );
            }
            Self::AuthUnavailable(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(AUTH_UNAVAILABLE_RETRY.as_secs()),
                );
            }
            Self::RateLimited { retry_after, .. }
            | Self::RenewTooSoon { retry_after, .. }
            | Self::CaLimit { retry_after, .. }
            | Self::WatchLimit { retry_after, .. }
            | Self::Backoff { retry_after, .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_secs().max(1)),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<IssueError> for ApiError {
    fn from(err: IssueError) -> Self {
        match err {
            IssueError::Rejected(m) => Self::DomainRejected(m),
            IssueError::ValidationFailed(m) => Self::ValidationFailed(m),
            IssueError::RateLimited {
                detail,
                retry_after,
            } => Self::RateLimited {
                message: detail,
                // Without the CA's word, wait long enough not to add to the problem.
                retry_after: retry_after.unwrap_or(Duration::from_secs(300)),
            },
            IssueError::Ca(m) => Self::CaError(m),
            IssueError::Dns(m) => Self::DnsError(m),
            IssueError::DnsPersist { problem, message } => match problem {
                RecordProblem::Missing => Self::DnsPersistRecordMissing(message),
                RecordProblem::Mismatch => Self::DnsPersistRecordMismatch(message),
                RecordProblem::Expired => Self::DnsPersistRecordExpired(message),
            },
            IssueError::Internal(m) => Self::Internal(m),
            IssueError::Limited {
                message,
                retry_after,
                ..
            } => Self::CaLimit {
                message,
                retry_after,
            },
            IssueError::BackingOff {
                kind,
                message,
                retry_after,
            } => Self::Backoff {
                inner: Box::new(Self::failure(kind, message, retry_after)),
                retry_after,
            },
        }
    }
}

impl ApiError {
    /// The answer to a failure of `kind` (an issuance's, or the one a back-off repeats).
    fn failure(kind: FailureKind, message: String, retry_after: Duration) -> Self {
        match kind {
            FailureKind::Rejected => Self::DomainRejected(message),
            FailureKind::ValidationFailed => Self::ValidationFailed(message),
            FailureKind::Dns => Self::DnsError(message),
            FailureKind::RateLimited => Self::RateLimited {
                message,
                retry_after,
            },
            FailureKind::Ca => Self::CaError(message),
            FailureKind::DnsPersistMissing => Self::DnsPersistRecordMissing(message),
            FailureKind::DnsPersistMismatch => Self::DnsPersistRecordMismatch(message),
            FailureKind::DnsPersistExpired => Self::DnsPersistRecordExpired(message),
        }
    }
}

impl From<CsrError> for ApiError {
    fn from(err: CsrError) -> Self {
        Self::Csr {
            code: err.code(),
            message: err.to_string(),
        }
    }
}

impl From<UnknownProfile> for ApiError {
    fn from(err: UnknownProfile) -> Self {
        Self::UnknownProfile(err.to_string())
    }
}

impl From<NoSolver> for ApiError {
    /// A wildcard only DNS-01 can validate, or an identifier no challenge answered here fits, is
    /// a name this server cannot certify; a challenge the request asks for and that does not fit
    /// is a request it cannot serve.
    fn from(err: NoSolver) -> Self {
        match err.why.is_identifier_fault() {
            true => Self::InvalidDomain(err.to_string()),
            false => Self::InvalidBody(err.to_string()),
        }
    }
}

impl From<ForceError> for ApiError {
    fn from(err: ForceError) -> Self {
        match err {
            ForceError::TooSoon { retry_after, .. } => Self::RenewTooSoon {
                message: err.to_string(),
                retry_after,
            },
            ForceError::Store(err) => err.into(),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::NotFound(m) => Self::NotFound(m),
            AdminError::Busy(m) => Self::IssuanceInProgress(m),
            AdminError::Ca(err) => err.into(),
            AdminError::Store(err) => err.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::Internal(err.to_string())
    }
}

impl ApiError {
    /// One error of every variant, for checks that must cover them all (the stable codes, the
    /// OpenAPI document's code list). The match below stops compiling when a variant is added,
    /// until it is added here too.
    pub fn one_of_each() -> Vec<ApiError> {
        let retry_after = Duration::from_secs(1);
        let mut errors = vec![
            ApiError::InvalidBody(String::new()),
            ApiError::InvalidDomain(String::new()),
            ApiError::DomainRejected(String::new()),
            ApiError::CsrNamesMismatch(String::new()),
            ApiError::CsrRequired(String::new()),
            ApiError::CsrNotAllowed(String::new()),
            ApiError::ClientKeyLimit(String::new()),
            ApiError::KeyCompromised(String::new()),
            ApiError::UnknownProfile(String::new()),
            ApiError::Unauthorized(String::new()),
            ApiError::DomainNotAllowed(String::new()),
            ApiError::ProfileNotAllowed(String::new()),
            ApiError::InsufficientScope(String::new()),
            ApiError::AdminRequired(String::new()),
            ApiError::NotFound(String::new()),
            ApiError::IssuanceInProgress(String::new()),
            ApiError::MethodNotAllowed,
            ApiError::BodyTooLarge,
            ApiError::UnsupportedMediaType,
            ApiError::HeadersTooLarge,
            ApiError::RateLimited {
                message: String::new(),
                retry_after,
            },
            ApiError::RenewTooSoon {
                message: String::new(),
                retry_after,
            },
            ApiError::CaLimit {
                message: String::new(),
                retry_after,
            },
            ApiError::WatchLimit {
                message: String::new(),
                retry_after,
            },
            ApiError::ValidationFailed(String::new()),
            ApiError::CaError(String::new()),
            ApiError::DnsError(String::new()),
            ApiError::DnsPersistRecordMissing(String::new()),
            ApiError::DnsPersistRecordMismatch(String::new()),
            ApiError::DnsPersistRecordExpired(String::new()),
            ApiError::AuthUnavailable(String::new()),
            ApiError::Internal(String::new()),
            ApiError::Backoff {
                inner: Box::new(ApiError::CaError(String::new())),
                retry_after,
            },
        ];
        errors.extend(CsrError::one_of_each().into_iter().map(ApiError::from));
        for err in &errors {
            match err {
                ApiError::InvalidBody(_)
                | ApiError::InvalidDomain(_)
                | ApiError::DomainRejected(_)
                | ApiError::Csr { .. }
                | ApiError::CsrNamesMismatch(_)
                | ApiError::CsrRequired(_)
                | ApiError::CsrNotAllowed(_)
                | ApiError::ClientKeyLimit(_)
                | ApiError::KeyCompromised(_)
                | ApiError::UnknownProfile(_)
                | ApiError::Unauthorized(_)
                | ApiError::DomainNotAllowed(_)
                | ApiError::ProfileNotAllowed(_)
                | ApiError::InsufficientScope(_)
                | ApiError::AdminRequired(_)
                | ApiError::NotFound(_)
                | ApiError::IssuanceInProgress(_)
                | ApiError::MethodNotAllowed
                | ApiError::BodyTooLarge
                | ApiError::UnsupportedMediaType
                | ApiError::HeadersTooLarge
                | ApiError::RateLimited { .. }
                | ApiError::RenewTooSoon { .. }
                | ApiError::CaLimit { .. }
                | ApiError::WatchLimit { .. }
                | ApiError::ValidationFailed(_)
                | ApiError::CaError(_)
                | ApiError::DnsError(_)
                | ApiError::DnsPersistRecordMissing(_)
                | ApiError::DnsPersistRecordMismatch(_)
                | ApiError::DnsPersistRecordExpired(_)
                | ApiError::AuthUnavailable(_)
                | ApiError::Internal(_)
                | ApiError::Backoff { .. } => {}
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_status_and_code() {
        let cases = [
            (ApiError::InvalidBody(String::new()), 400, "invalid_body"),
            (
                ApiError::InvalidDomain(String::new()),
                400,
                "invalid_domain",
            ),
            (
                ApiError::DomainRejected(String::new()),
                400,
                "domain_rejected",
            ),
            (ApiError::Unauthorized(String::new()), 401, "unauthorized"),
            (
                ApiError::DomainNotAllowed(String::new()),
                403,
                "domain_not_allowed",
            ),
            (
                ApiError::InsufficientScope(String::new()),
                403,
                "insufficient_scope",
            ),
            (ApiError::NotFound(String::new()), 404, "not_found"),
            (
                ApiError::AdminRequired(String::new()),
                403,
                "admin_required",
            ),
            (
                ApiError::IssuanceInProgress(String::new()),
                409,
                "issuance_in_progress",
            ),
            (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
            (ApiError::BodyTooLarge, 413, "body_too_large"),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported_media_type",
            ),
            (ApiError::HeadersTooLarge, 431, "headers_too_large"),
            (
                ApiError::ValidationFailed(String::new()),
                502,
                "validation_failed",
            ),
            (ApiError::CaError(String::new()), 502, "ca_error"),
            (ApiError::DnsError(String::new()), 502, "dns_error"),
            (
                ApiError::AuthUnavailable(String::new()),
                503,
                "auth_unavailable",
            ),
            (ApiError::Internal(String::new()), 500, "internal_error"),
        ];
        for (err, status, code) in cases {
            assert_eq!(
                err.status_and_code(),
                (StatusCode::from_u16(status).expect("status"), code)
            );
        }
    }

    #[test]
    fn error_codes_are_exactly_the_codes_answered() {
        let mut answered: Vec<&str> = ApiError::one_of_each()
            .iter()
            .map(|err| err.status_and_code().1)
            .chain(["issuing", "not_ready"])
            .collect();
        answered.sort_unstable();
        answered.dedup();
        let mut listed = ERROR_CODES.to_vec();
        listed.sort_unstable();
        assert_eq!(answered, listed);
    }

    #[test]
    fn a_failure_kind_is_answered_with_the_code_it_is_stored_as() {
        for kind in FailureKind::ALL {
            let err = ApiError::failure(kind, String::new(), Duration::from_secs(1));
            assert_eq!(err.status_and_code().1, kind.as_str(), "{kind:?}");
        }
    }

    #[test]
    fn internal_details_stay_in_the_log() {
        let response = ApiError::Internal("database path /secret/x".to_owned()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            ApiError::Internal("database path /secret/x".to_owned()).message(),
            "internal error; the server log has the details"
        );
    }

    #[test]
    fn ca_limits_are_429_with_retry_after() {
        let err = ApiError::from(IssueError::Limited {
            limit: "perRegisteredDomain",
            message: "the CA limit perRegisteredDomain allows 3".to_owned(),
            retry_after: Duration::from_secs(604_000),
        });
        assert_eq!(
            err.status_and_code(),
            (StatusCode::TOO_MANY_REQUESTS, "ca_limit")
        );
        assert_eq!(err.message(), "the CA limit perRegisteredDomain allows 3");
        let response = err.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "604000");
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let response = ApiError::from(IssueError::RateLimited {
            detail: "slow down".to_owned(),
            retry_after: Some(Duration::from_secs(42)),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        let unauthorized = ApiError::Unauthorized("no".to_owned()).into_response();
        assert_eq!(
            unauthorized.headers()[header::WWW_AUTHENTICATE],
            WWW_AUTHENTICATE
        );
    }
}
