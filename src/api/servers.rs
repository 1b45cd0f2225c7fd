//! The server integrations: routes that speak a TLS server's own protocol for fetching
//! certificates, so the server needs no `certfleet fetch` beside it.
//!
//! - `GET /api/servers/caddy`: Caddy's `get_certificate http` manager. Caddy calls it during
//!   TLS handshakes with the client's SNI in `server_name` and wants one PEM body holding the
//!   chain and the private key (200), or 204 when the manager has nothing for that name, which
//!   makes Caddy go on with its other certificate sources. Caddy sends no headers of its own,
//!   so the API key rides in the URL (`key=`); see docs/recipes/caddy.md for the tradeoff.
//!   Answered from the certificate service's memory: it never issues, never waits.
//! - `GET /api/servers/traefik`: Traefik's HTTP provider. Traefik polls it (with the API key
//!   in its `headers` option) for a dynamic configuration whose `tls.certificates` hold every
//!   valid certificate the key may read, PEM inline in `certFile` and `keyFile`; an `ETag` of
//!   the serials, and 304 on `If-None-Match`, make an unchanged poll cheap.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ApiState;
use super::certificate::{IfNoneMatch, note_delivery, parse_key_type};
use crate::auth::{Principal, policy};
use crate::domain::{CertKey, DomainName, KeySpec, NameSet};
use crate::error::ApiError;
use crate::observe::{self, KeyDelivery};
use crate::util::clock;

/// The media type of Caddy's answer: PEM blocks, the chain then the private key.
const PEM_BUNDLE: &str = "application/x-pem-file";

/// What `GET /api/servers/caddy` reads from its query. Caddy adds `server_name`,
/// `signature_schemes` and `cipher_suites` to the URL it was configured with, keeping that
/// URL's own parameters (`key`, `domain`, `keyType`).
#[derive(Default)]
struct CaddyQuery {
    /// The API key, when it is in the URL (Caddy cannot send an `Authorization` header).
    key: Option<String>,
    /// The client's SNI name; absent or empty: the client sent none.
    server_name: Option<String>,
    /// The identity's names, when the certificate holds more than the SNI name.
    domains: Vec<String>,
    /// The identity's key type; absent: `acme.keyType`.
    key_type: Option<String>,
}

impl CaddyQuery {
    /// Every parameter Caddy or a recipe sends; others (`signature_schemes`, `cipher_suites`,
    /// anything a later Caddy adds) are ignored, so a new Caddy never breaks handshakes.
    fn parse(query: &str) -> Self {
        let mut parsed = Self::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "key" => parsed.key = Some(value.into_owned()),
                "server_name" => parsed.server_name = Some(value.into_owned()),
                "domain" => parsed.domains.extend(value.split(',').map(str::to_owned)),
                "keyType" => parsed.key_type = Some(value.into_owned()),
                _ => {}
            }
        }
        parsed
    }
}

/// `GET /api/servers/caddy`: Caddy's `get_certificate http` protocol.
#[utoipa::path(
    get,
    path = "/api/servers/caddy",
    tag = "servers",
    operation_id = "caddyCertificate",
    summary = "The certificate for an SNI name, as Caddy's get_certificate http wants it",
    description = "Caddy's `get_certificate http` manager: the stored certificate for \
        `server_name` as one PEM body (the leaf, its chain, then the private key), or 204 when \
        certfleet has none Caddy may serve for that name (none stored, not valid, a client's \
        key, or a name the credential may not read): Caddy then goes on with its other \
        certificate sources. The identity is `{server_name}`, then `{*.parent}` for a \
        wildcard, unless the URL names it with `domain` (it must cover `server_name`). Never \
        issues. The API key is `key` in the URL (Caddy sends no headers), or the \
        `Authorization` header.",
    params(
        ("server_name" = Option<String>, Query, description = "The client's SNI name (Caddy adds it)."),
        ("key" = Option<String>, Query, description = "The API key (`auth.psk`): Caddy cannot \
            send an `Authorization` header. certfleet never logs URLs."),
        ("domain" = Option<Vec<String>>, Query, style = Form, explode,
            description = "The identity's names, when it holds more than the SNI name."),
        ("keyType" = Option<super::openapi::KeyTypeName>, Query),
    ),
    security(("APIKey" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The leaf, its chain and the private key, PEM.",
            content_type = "application/x-pem-file", body = String),
        (status = 204, description = "certfleet has no certificate Caddy may serve for \
            `server_name`: Caddy falls back to its other sources."),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::AuthUnavailable),
    ),
)]
pub async fn caddy(
    State(state): State<ApiState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let app = &state.app;
    let query = CaddyQuery::parse(uri.query().unwrap_or(""));
    let principal = authenticate(app, &headers, query.key.as_deref()).await?;
    let key_type = parse_key_type(query.key_type.as_deref(), app.default_key_type)?;
    let Some(sni) = query
        .server_name
        .as_deref()
        .filter(|name| !name.is_empty())
        .and_then(|name| DomainName::parse(name).ok())
    else {
        return Ok(no_content());
    };
    let now = clock::now();
    for names in candidates(&sni, &query.domains)? {
        if let Some(name) = policy::first_denied(&principal.domains, &names) {
            // Denied is "not managed here" for Caddy: a 403 would fail the handshake.
            observe::metrics::auth_failure(principal.method, "domain_not_allowed");
            tracing::info!(
                principal = %principal.name,
                name = %name,
                "caddy: the credential may not read this name; answered 204"
            );
            continue;
        }
        let key = CertKey {
            names,
            key: KeySpec::Server(key_type),
            // The configured default profile is the identity without one.
            profile: None,
        };
        let Some(cert) = app.certs.valid(&key, now).await? else {
            continue;
        };
        let Some(private_key) = cert.key_pem.as_deref() else {
            continue;
        };
        // The inventory's "who has which serial": a store write at most hourly per key.
        let rendered = state.renderings.of(&key, &cert);
        note_delivery(app, &principal, &key, &rendered, now).await;
        let mut body = String::with_capacity(cert.cert_pem.len() + private_key.len() + 1);
        body.push_str(&cert.cert_pem);
        if !body.ends_with('\n') {
            body.push('\n');
        }
        body.push_str(private_key);
        let mut response = body.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PEM_BUNDLE));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        observe::key_handed_out(KeyDelivery {
            principal: principal.name,
            method: principal.method,
            cert,
        });
        return Ok(response);
    }
    Ok(no_content())
}

/// The identities that may hold `sni`, in order: the ones the URL names (`domain`) when it
/// covers `sni`, else `{sni}` and then the wildcard one label up.
fn candidates(sni: &DomainName, domains: &[String]) -> Result<Vec<NameSet>, ApiError> {
    if !domains.is_empty() {
        let names = super::certificate::parse_names(domains)?;
        let covers = names.names().iter().any(|name| covers(name, sni));
        return Ok(if covers { vec![names] } else { Vec::new() });
    }
    let mut sets = vec![NameSet::new(vec![sni.clone()]).map_err(|e| invalid(&e))?];
    if let Some((_, parent)) = sni.as_str().split_once('.')
        && parent.contains('.')
        && let Ok(wildcard) = DomainName::parse(&format!("*.{parent}"))
    {
        sets.push(NameSet::new(vec![wildcard]).map_err(|e| invalid(&e))?);
    }
    Ok(sets)
}

/// Whether the certificate name `name` is valid for the SNI name `sni` (a wildcard covers
/// one label).
fn covers(name: &DomainName, sni: &DomainName) -> bool {
    if name == sni {
        return true;
    }
    name.is_wildcard()
        && sni
            .as_str()
            .split_once('.')
            .is_some_and(|(_, parent)| parent == name.base())
}

fn invalid(err: &crate::domain::DomainError) -> ApiError {
    ApiError::InvalidDomain(err.to_string())
}

/// The `Authorization` header when there is one, else the key from the URL.
async fn authenticate(
    app: &super::Shared,
    headers: &HeaderMap,
    key: Option<&str>,
) -> Result<Principal, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| {
            ApiError::Unauthorized("the Authorization header is not ASCII".to_owned())
        })?;
        return app.auth.authenticate(Some(value)).await;
    }
    match key {
        Some(key) if !key.is_empty() => app.auth.authenticate(Some(&format!("APIKey {key}"))).await,
        _ => Err(ApiError::Unauthorized(
            "missing credentials: put the API key in the URL (key=...) or send Authorization: \
             APIKey <key>"
                .to_owned(),
        )),
    }
}

/// The most identities one Traefik document reads from the inventory: a fleet with more
/// splits them over several keys (and several `http` providers).
const TRAEFIK_MAX_SCAN: usize = 10_000;

/// One inventory page read while building the Traefik document.
const TRAEFIK_BATCH: u32 = 500;

/// `GET /api/servers/traefik`: Traefik's HTTP provider.
#[utoipa::path(
    get,
    path = "/api/servers/traefik",
    tag = "servers",
    operation_id = "traefikConfiguration",
    summary = "Traefik's dynamic configuration: every certificate the key may read",
    description = "A Traefik dynamic configuration (HTTP provider) whose `tls.certificates` \
        hold every valid certificate the credential may read (its `domains` patterns; an admin \
        credential reads all), each with the chain in `certFile` and the private key in \
        `keyFile`, PEM inline. CSR-mode certificates (no key at certfleet), expired and revoked \
        ones are left out. The `ETag` changes when a certificate does; with `If-None-Match` \
        naming it, 304. Traefik sends the credential with the provider's `headers` option. \
        Each private key in a 200 writes its own audit line.",
    params(
        ("If-None-Match" = Option<String>, Header,
            description = "The `ETag` of the document Traefik holds: 304 while it is current."),
    ),
    security(("APIKey" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The dynamic configuration.",
            content_type = "application/json", body = TraefikConfig,
            headers(("ETag" = String, description = "A tag of the certificates' serials."))),
        (status = 304, response = super::openapi::NotModified),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::AuthUnavailable),
    ),
)]
pub async fn traefik(
    State(state): State<ApiState>,
    principal: Principal,
    IfNoneMatch(tags): IfNoneMatch,
) -> Result<Response, ApiError> {
    let app = &state.app;
    let now = clock::now();
    let mut certs = Vec::new();
    let mut cursor = None;
    let mut scanned = 0;
    loop {
        let batch = app.store.inventory(cursor.as_ref(), TRAEFIK_BATCH).await?;
        let full = batch.len() >= TRAEFIK_BATCH as usize;
        for entry in batch {
            scanned += 1;
            cursor = Some(entry.cursor());
            let readable = principal.admin
                || policy::first_denied(&principal.domains, &entry.key.names).is_none();
            if !readable || entry.revoked.is_some() || entry.cert.is_none() {
                continue;
            }
            if let Some(cert) = app.certs.valid(&entry.key, now).await?
                && cert.key_pem.is_some()
            {
                certs.push(cert);
            }
        }
        if !full || scanned >= TRAEFIK_MAX_SCAN {
            break;
        }
    }
    let mut context = digest::Context::new(&digest::SHA256);
    for cert in &certs {
        context.update(cert.names.to_string().as_bytes());
        context.update(b"\0");
        context.update(cert.key.as_str().as_bytes());
        context.update(b"\0");
        context.update(cert.serial.as_bytes());
        context.update(b"\n");
    }
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(context.finish().as_ref()));
    let etag_header = HeaderValue::from_str(&etag).map_err(|_| {
        ApiError::Internal("the Traefik document's ETag is not a header value".to_owned())
    })?;
    let current = tags
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag);
    if current {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, etag_header);
        return Ok(response);
    }
    let document = TraefikConfig {
        tls: TraefikTls {
            certificates: certs
                .iter()
                .map(|cert| TraefikCertificate {
                    cert_file: &cert.cert_pem,
                    key_file: cert.key_pem.as_deref().unwrap_or_default(),
                })
                .collect(),
        },
    };
    let mut response = axum::Json(&document).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::ETAG, etag_header);
    for cert in &certs {
        let key = CertKey {
            names: cert.names.clone(),
            key: cert.key,
            profile: cert.profile.clone(),
        };
        let rendered = state.renderings.of(&key, cert);
        note_delivery(app, &principal, &key, &rendered, now).await;
        // One audit line for each private key in the document.
        observe::key_handed_out(KeyDelivery {
            principal: principal.name.clone(),
            method: principal.method,
            cert: cert.clone(),
        });
    }
    Ok(response)
}

/// Traefik's dynamic configuration, the part certfleet fills: `tls.certificates`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TraefikConfig<'a> {
    #[schema(inline)]
    tls: TraefikTls<'a>,
}

/// `tls` of Traefik's dynamic configuration.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct TraefikTls<'a> {
    /// Every certificate the credential may read; Traefik picks one by the client's SNI.
    #[schema(inline)]
    certificates: Vec<TraefikCertificate<'a>>,
}

/// One of Traefik's `tls.certificates`: Traefik takes the PEM itself in place of a file path.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct TraefikCertificate<'a> {
    /// The leaf and its chain, PEM.
    cert_file: &'a str,
    /// The private key, PKCS#8 PEM.
    key_file: &'a str,
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> DomainName {
        DomainName::parse(text).expect("a name")
    }

    #[test]
    fn caddy_query_keeps_the_urls_parameters_and_ignores_caddys_others() {
        let query = CaddyQuery::parse(
            "cipher_suites=1301%2C1302&domain=a.example.test%2Cb.example.test&key=k%2By\
             &keyType=rsa2048&server_name=a.example.test&signature_schemes=403&local_ip=x",
        );
        assert_eq!(query.key.as_deref(), Some("k+y"));
        assert_eq!(query.server_name.as_deref(), Some("a.example.test"));
        assert_eq!(query.domains, ["a.example.test", "b.example.test"]);
        assert_eq!(query.key_type.as_deref(), Some("rsa2048"));
    }

    #[test]
    fn candidates_are_the_name_then_its_wildcard_or_the_named_set_when_it_covers() {
        let sets = candidates(&name("www.a.example.test"), &[]).expect("sets");
        let texts: Vec<String> = sets.iter().map(ToString::to_string).collect();
        assert_eq!(texts, ["www.a.example.test", "*.a.example.test"]);
        let sets = candidates(&name("example.test"), &[]).expect("sets");
        assert_eq!(sets.len(), 1, "no wildcard of a whole top-level domain");
        let named = ["*.a.example.test".to_owned(), "a.example.test".to_owned()];
        assert_eq!(
            candidates(&name("x.a.example.test"), &named)
                .expect("sets")
                .len(),
            1
        );
        assert!(
            candidates(&name("x.y.a.example.test"), &named)
                .expect("sets")
                .is_empty(),
            "a wildcard covers one label"
        );
    }
}
