//! The OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! It is generated from the code that builds the router: [`super::router`] registers every
//! route through `utoipa_axum::routes!`, which takes each handler's path, methods and
//! `#[utoipa::path]` documentation together, so a route cannot be served without being
//! documented, nor documented without being served. The schemas are derived from the types the
//! handlers really read and write (`CertRequest`, `CertBody`, `ErrorBody`). This module holds
//! what the handlers share: the document's frame (info, security schemes, tags), the reusable
//! responses, and the schemas of values parsed from plain strings (`keyType`, `challenge`).
//!
//! The document is serialised once, when the router is built, and served as a clone of
//! [`Bytes`]: nothing is rendered per request.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response as ApiResponse, ResponseBuilder};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{Modify, OpenApi as _, PartialSchema, ToResponse, ToSchema};

use super::body::CertBody;
use crate::domain::KeyType;
use crate::error::ErrorBody;

/// The document's description: what it covers and what it does not.
const DESCRIPTION: &str = "certfleet obtains TLS certificates from an ACME CA (HTTP-01 or DNS-01), \
keeps and renews them, and hands them to authenticated clients.\n\n\
This document is generated from the code that builds certfleet's router: it lists exactly the \
routes served on the API listener (`server.listen`). `GET /metrics` (Prometheus text format) is \
served on `server.metricsListen`, not on this listener, and is not described here.\n\n\
Every error body is `{\"code\": \"...\", \"message\": \"...\"}` with a stable `code` (the \
`ErrorCode` schema); the message is for humans and may change. An unknown route answers 404 \
`not_found`, a known route asked with another method 405 `method_not_allowed`, headers over \
16 KiB 431 `headers_too_large` on any route.";

/// The frame every route's documentation is added to.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "certfleet",
        version = env!("CARGO_PKG_VERSION"),
        description = DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&Frame),
    tags(
        (name = "certificates", description = "Get, read and renew certificates."),
        (name = "inventory", description = "What certfleet manages: every certificate's status, \
            last failure, history and who received which serial."),
        (name = "servers", description = "Certificates in the protocols of the TLS servers \
            that use them: Caddy's get_certificate http, Traefik's HTTP provider."),
        (name = "health", description = "Liveness and readiness, without credentials."),
        (name = "meta", description = "This document."),
    ),
)]
struct ApiDoc;

/// The document before any route is added.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// Adds the security schemes, the reusable responses and the schemas they refer to.
struct Frame;

impl Modify for Frame {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Components::new);
        components.add_security_scheme(
            "APIKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "A pre-shared key from `auth.psk`, sent as `Authorization: APIKey <key>`.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "`Authorization: Bearer <jwt>`: an OIDC / OAuth 2.0 access token \
                         (`auth.jwt`) or an Akash provider-API JWT (AEP-64, `ES256K` or \
                         `ES256KADR36`, `auth.akash`); told apart by `alg`.",
                    ))
                    .build(),
            ),
        );
        components.responses.extend(
            response_components()
                .into_iter()
                .map(|(name, response)| (name.to_owned(), response)),
        );
        add_schema::<CertBody>(components);
        add_schema::<ErrorBody>(components);
    }
}

/// Adds `T`'s schema, and those it refers to, to `components`.
fn add_schema<T: ToSchema>(components: &mut Components) {
    let mut schemas = Vec::new();
    T::schemas(&mut schemas);
    components.schemas.extend(schemas);
    components
        .schemas
        .insert(T::name().into_owned(), T::schema());
}

/// Adds `R` as the `status` answer of every operation: for what a layer answers on any route.
pub fn on_every_operation<'r, R: ToResponse<'r>>(openapi: &mut OpenApi, status: StatusCode) {
    let (name, _) = R::response();
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            operation.responses.responses.insert(
                status.as_u16().to_string(),
                Ref::from_response_name(name).into(),
            );
        }
    }
}

/// The serialised document, shared by every request.
#[derive(Debug, Clone)]
pub struct Document(Bytes);

impl Document {
    /// Serialises `openapi` once.
    pub fn render(openapi: &OpenApi) -> Self {
        // A tree of strings, numbers and string-keyed maps always serialises; failing here
        // would be a bug in utoipa, better seen at start-up than as an empty document.
        let json = serde_json::to_vec(openapi).expect("the OpenAPI document serialises");
        Self(Bytes::from(json))
    }
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    summary = "This OpenAPI 3.1 document",
    responses(
        (status = 200, description = "The document, generated from the router's code.",
            body = Object, content_type = "application/json"),
    ),
)]
pub async fn document(State(document): State<Document>) -> Response {
    let mut response = document.0.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The schema of `keyType`: every [`KeyType`]'s name.
#[derive(Debug)]
pub struct KeyTypeName;

impl PartialSchema for KeyTypeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "The private key type, part of the certificate's identity; absent: \
                 `acme.keyType` (default `ecdsa-p256`).",
            ))
            .enum_values(Some(KeyType::ALL.map(|key_type| key_type.as_str())))
            .into()
    }
}

impl ToSchema for KeyTypeName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("KeyType")
    }
}

/// The schema of a request's `challenge` (the values `certificate::parse_request` accepts).
#[derive(Debug)]
pub struct Challenge;

impl PartialSchema for Challenge {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Force a challenge type. Absent: DNS-PERSIST-01 for names a \
                 `challenges.dnsPersist` entry holds, else the `challenge` (DNS-01 or \
                 DNS-ACCOUNT-01) of the `challenges.dns01` entry holding the name, else HTTP-01 \
                 when enabled, else TLS-ALPN-01 (`challenges.tlsAlpn01`); wildcards always use \
                 a DNS challenge, IP addresses never. Not part of the certificate's identity.",
            ))
            .enum_values(Some([
                "http-01",
                "dns-01",
                "tls-alpn-01",
                "dns-account-01",
                "dns-persist-01",
            ]))
            .into()
    }
}

impl ToSchema for Challenge {}

/// Declares each reusable response as a type for `#[utoipa::path(responses(...))]` and lists
/// them all in [`response_components`], so every response referenced is in the document.
macro_rules! responses {
    ($($(#[$doc:meta])* $name:ident => $response:expr;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<ApiResponse>) {
                    (stringify!($name), RefOr::T($response))
                }
            }
        )*

        fn response_components() -> Vec<(&'static str, RefOr<ApiResponse>)> {
            vec![$(<$name as ToResponse<'static>>::response()),*]
        }
    };
}

responses! {
    /// 200 with a certificate.
    Certificate => ResponseBuilder::new()
        .description("The certificate: the stored one while it is valid (even when due for \
            renewal), or one issued for this request.")
        .content("application/json", ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(CertBody::name())))
            .build())
        .header("ETag", string_header("A strong tag of the certificate chain, for \
            `If-None-Match`."))
        .header("Cache-Control", string_header("`no-store`: the body holds a private key."))
        .build();
    /// 202 while an issuance runs.
    Issuing => error(
        "`issuing`: the issuance still runs after `server.issueWait`; it goes on in the \
         background. GET the `Location` after `Retry-After` seconds.",
    )
        .header("Retry-After", seconds_header("Seconds to wait before asking again."))
        .header("Location", string_header("The `GET /api/certificate` URL of the same \
            identity (names and key type)."))
        .build();
    /// 304 for a matching `If-None-Match`.
    NotModified => ResponseBuilder::new()
        .description("`If-None-Match` names the current certificate: the client's copy is \
            current.")
        .header("ETag", string_header("The certificate's tag."))
        .build();
    /// 400.
    BadRequest => error(
        "`invalid_body` (unparseable JSON, an unknown field, no name, an unknown `keyType` or \
         `challenge`, a bad query), `invalid_domain` (an invalid name, more than 100 names, a \
         wildcard no `challenges.dns01` entry holds) or `domain_rejected` (the CA refuses a \
         name).",
    ).build();
    /// 401 with a challenge.
    Unauthorized => error("`unauthorized`: missing or invalid credentials.")
        .header("WWW-Authenticate", string_header(crate::error::WWW_AUTHENTICATE))
        .build();
    /// 403.
    Forbidden => error(
        "`domain_not_allowed` (the credentials may not request a name) or `insufficient_scope` \
         (a bearer token without a required scope, or an Akash wallet that is not a \
         principal).",
    )
        .header("WWW-Authenticate", string_header(crate::error::WWW_AUTHENTICATE_SCOPE))
        .build();
    /// 403 from an admin action.
    AdminForbidden => error(
        "`admin_required`: only a credential with the admin right (`admin: true` on an API \
         key, `auth.jwt.adminScope` in a token) may revoke or delete.",
    ).build();
    /// 404 from an admin action.
    NotManaged => error("`not_found`: the identity holds no certificate to revoke, or is not \
        managed at all.").build();
    /// 409 from an admin action.
    Conflict => error("`issuance_in_progress`: an issuance of the identity is under way (here \
        or on another replica); try again once it has ended.").build();
    /// 404 from the certificate read.
    NotFound => error("`not_found`: no valid certificate for that identity. Never issues: \
        POST to obtain one.").build();
    /// 413.
    BodyTooLarge => error("`body_too_large`: the body is over 64 KiB.").build();
    /// 415.
    UnsupportedMediaType => error("`unsupported_media_type`: the body is not sent as \
        `Content-Type: application/json`.").build();
    /// 429.
    RateLimited => error(
        "`rate_limited` (the CA's rate limit, or an earlier one backing off), \
         `renew_too_soon` (a forced renewal less than an hour ago) or `ca_limit` (a new \
         certificate would exceed a CA limit certfleet keeps to, or the credential's quota: \
         nothing was ordered), or `watch_limit` (too many requests wait with `wait=` on this \
         server or for this credential).",
    )
        .header("Retry-After", seconds_header("Seconds until a new attempt is allowed."))
        .build();
    /// 431, from the header limit on every route.
    HeadersTooLarge => error("`headers_too_large`: the headers are over 16 KiB (much larger \
        ones are cut by the HTTP server itself, without a body).").build();
    /// 500.
    InternalError => error("`internal_error`: certfleet's own failure; details only in its \
        log.").build();
    /// 502.
    BadGateway => error(
        "`validation_failed`, `ca_error` or `dns_error`: the CA or a DNS provider failed, or \
         the CA could not validate a challenge; `dns_persist_record_missing`, \
         `dns_persist_record_mismatch` or `dns_persist_record_expired`: a DNS-PERSIST-01 \
         record does not fit, found before ordering; the message says which step and why. While \
         the same failure backs off, `Retry-After` says when the next attempt runs.",
    )
        .header("Retry-After", seconds_header("Set while the failure backs off."))
        .build();
    /// 503.
    AuthUnavailable => error(
        "`auth_unavailable`: the identity provider's keys (or an Akash wallet's key on chain) \
         cannot be loaded yet. API keys keep working.",
    )
        .header("Retry-After", seconds_header("Seconds to wait before trying again."))
        .build();
}

/// An error answer: the `Error` body, and `description` (which codes, when).
fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ErrorBody::name())))
            .build(),
    )
}

fn string_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(String::schema()))
        .description(Some(description))
        .build()
}

fn seconds_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(1)),
        ))
        .description(Some(description))
        .build()
}
