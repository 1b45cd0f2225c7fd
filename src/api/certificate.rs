//! `/api/certificate`: get a certificate (issuing it if needed), read it, or force a renewal.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::body::{Rendered, Renderings};
use super::{ApiJson, ApiState, Shared};
use crate::acme::csr::ClientCsr;
use crate::acme::solver::ChallengeChoice;
use crate::auth::{Principal, policy};
use crate::domain::{
    CertKey, DomainName, KeySpec, KeyType, NameSet, Profile, RevocationReason, SpkiHash,
};
use crate::error::ApiError;
use crate::observe::{self, KeyDelivery};
use crate::service::{self, Pending};
use crate::store::StoredCert;
use crate::util::clock;

/// How long a client told 202 should wait before asking again.
const RETRY_AFTER_ISSUING: u64 = 5;

/// The body of `POST /api/certificate` and `POST /api/certificate/renew`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(
    as = CertificateRequest,
    description = "The names of the certificate: `domain`, `domains`, or both (at least one name).",
    example = json!({"domains": ["example.com", "www.example.com"], "keyType": "ecdsa-p256"}),
)]
pub struct CertRequest {
    /// One name.
    domain: Option<String>,
    /// Up to 100 names (`*.example.com` for a wildcard); order, case and duplicates do not
    /// matter.
    domains: Option<Vec<String>>,
    #[schema(value_type = Option<super::openapi::KeyTypeName>)]
    key_type: Option<String>,
    #[schema(value_type = Option<super::openapi::Challenge>)]
    challenge: Option<String>,
    /// CSR mode: a PKCS #10 request (PEM, or base64url DER as in RFC 8555) for a key the
    /// client holds; certfleet never sees the private key and the answer has no `privateKey`.
    /// Its names are the certificate's (`domain`/`domains`, when given too, must be exactly
    /// those); its key (P-256, P-384 or RSA 2048-4096) is part of the identity. Not with
    /// `keyType`.
    csr: Option<String>,
    /// With `csr`: the `spkiSha256` of the client's previous key for the same names, whose
    /// identity is retired (renewed no more) once this one is issued.
    replaces: Option<String>,
    /// CSR mode without sending the CSR again: the client's key (its `spkiSha256`), whose CSR
    /// certfleet kept. Not with `csr` or `keyType`.
    spki_sha256: Option<String>,
    /// The ACME profile to order with (draft-ietf-acme-profiles), one the CA's directory lists,
    /// such as Let's Encrypt's `shortlived`: part of the identity, kept by renewals. Absent:
    /// `acme.profile`.
    profile: Option<String>,
}

/// What a certificate request asks for, parsed and checked.
struct Asked {
    key: CertKey,
    choice: ChallengeChoice,
    /// CSR mode: the client's CSR, and the key it rotates out.
    csr: Option<(ClientCsr, Option<KeySpec>)>,
}

/// `POST /api/certificate`: the stored certificate while it is valid, else a new one.
#[utoipa::path(
    post,
    path = "/api/certificate",
    tag = "certificates",
    operation_id = "requestCertificate",
    summary = "Get a certificate, issued if none is stored",
    description = "The stored certificate while it is valid (even when due: renewal goes on in \
        the background); otherwise issues one, or joins the issuance already under way for the \
        same identity (names and key type). Waits up to `server.issueWait`, then answers 202.",
    request_body = CertRequest,
    security(("APIKey" = []), ("bearer" = [])),
    responses(
        (status = 200, response = super::openapi::Certificate),
        (status = 202, response = super::openapi::Issuing),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 413, response = super::openapi::BodyTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 429, response = super::openapi::RateLimited),
        (status = 500, response = super::openapi::InternalError),
        (status = 502, response = super::openapi::BadGateway),
        (status = 503, response = super::openapi::AuthUnavailable),
    ),
)]
pub async fn post(
    State(state): State<ApiState>,
    principal: Principal,
    ApiJson(request): ApiJson<CertRequest>,
) -> Result<Response, ApiError> {
    let (app, renderings) = (&state.app, &state.renderings);
    let Asked {
        mut key,
        choice,
        csr,
    } = parse_request(request, app)?;
    authorize(&principal, &key)?;
    address_profile(app, &mut key).await?;
    check_challenges(app, &key, choice)?;
    check_profile(app, &key).await?;
    let now = clock::now();
    if let Some((csr, replaces)) = &csr {
        keep_csr(app, &key, csr, replaces.as_ref(), now).await?;
    }
    if let Some(cert) = app.certs.valid(&key, now).await? {
        if matches!(csr, Some((_, Some(_)))) {
            // A rotation whose new key was issued already: the old one goes now.
            app.certs.retire_replaced(&key).await;
        }
        let hit = renderings.of(&key, &cert);
        note_delivery(app, &principal, &key, &hit, now).await;
        return Ok(deliver(principal, &hit, cert, true));
    }
    check_client_key(app, &key, csr.is_some()).await?;
    let asker = service::limits::Asker {
        credential: Some(format!("{}:{}", principal.method, principal.name)),
        quota: principal.quota,
    };
    let pending = app.certs.issue_for(&key, now, choice, asker);
    wait_for(app, renderings, principal, &key, pending).await
}

/// `POST /api/certificate/renew`: a new certificate, at most once per identity per hour.
#[utoipa::path(
    post,
    path = "/api/certificate/renew",
    tag = "certificates",
    operation_id = "renewCertificate",
    summary = "Force a new certificate",
    description = "A new certificate with a new key, at most once per identity per hour (else \
        429 `renew_too_soon`). Joins the issuance already under way for that identity, if any.",
    request_body = CertRequest,
    security(("APIKey" = []), ("bearer" = [])),
    responses(
        (status = 200, response = super::openapi::Certificate),
        (status = 202, response = super::openapi::Issuing),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 413, response = super::openapi::BodyTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 429, response = super::openapi::RateLimited),
        (status = 500, response = super::openapi::InternalError),
        (status = 502, response = super::openapi::BadGateway),
        (status = 503, response = super::openapi::AuthUnavailable),
    ),
)]
pub async fn renew(
    State(state): State<ApiState>,
    principal: Principal,
    ApiJson(request): ApiJson<CertRequest>,
) -> Result<Response, ApiError> {
    let (app, renderings) = (&state.app, &state.renderings);
    let Asked {
        mut key,
        choice,
        csr,
    } = parse_request(request, app)?;
    authorize(&principal, &key)?;
    address_profile(app, &mut key).await?;
    check_challenges(app, &key, choice)?;
    check_profile(app, &key).await?;
    let now = clock::now();
    if let Some((csr, replaces)) = &csr {
        keep_csr(app, &key, csr, replaces.as_ref(), now).await?;
    }
    check_client_key(app, &key, csr.is_some()).await?;
    let pending = app.certs.force(&key, now, choice).await?;
    wait_for(app, renderings, principal, &key, pending).await
}

/// `GET /api/certificate?domain=...`: the stored certificate for exactly that name set. Never
/// issues.
#[utoipa::path(
    get,
    path = "/api/certificate",
    tag = "certificates",
    operation_id = "getCertificate",
    summary = "Read the stored certificate; never issues",
    description = "The stored certificate for exactly that identity (names and key type).",
    params(
        ("domain" = Vec<String>, Query, style = Form, explode,
            description = "A name; repeat it (or separate names with commas) for a name set."),
        ("keyType" = Option<super::openapi::KeyTypeName>, Query),
        ("spkiSha256" = Option<String>, Query,
            description = "CSR mode, instead of `keyType`: the base64url SHA-256 of the \
                client's public key (its DER SubjectPublicKeyInfo)."),
        ("wait" = Option<String>, Query,
            description = "With `If-None-Match` naming the current certificate: hold the \
                request until another is stored (then 200 with it) or this long has passed \
                (then 304), such as `60s`; at most `server.watch.maxWait`."),
        ("If-None-Match" = Option<String>, Header,
            description = "The `ETag` of the certificate the client holds: 304 while it is current."),
    ),
    security(("APIKey" = []), ("bearer" = [])),
    responses(
        (status = 200, response = super::openapi::Certificate),
        (status = 202, response = super::openapi::Issuing),
        (status = 304, response = super::openapi::NotModified),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 429, response = super::openapi::RateLimited),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::AuthUnavailable),
    ),
)]
pub async fn get(
    State(state): State<ApiState>,
    principal: Principal,
    // The URI rather than `RawQuery`, which copies the query: this is a refcount.
    uri: Uri,
    IfNoneMatch(tags): IfNoneMatch,
) -> Result<Response, ApiError> {
    let (app, renderings) = (&state.app, &state.renderings);
    let mut wait = None;
    let mut key = parse_identity_query(
        uri.query().unwrap_or(""),
        (app.default_key_type, app.default_profile.as_ref()),
        "domain (repeatable), keyType or spkiSha256, profile, wait",
        |name, value| match name {
            "wait" => {
                wait = Some(app.watchers.wait(value)?);
                Ok(true)
            }
            _ => Ok(false),
        },
    )?;
    authorize(&principal, &key)?;
    address_profile(app, &mut key).await?;
    let now = clock::now();
    if let Some(cert) = app.certs.valid(&key, now).await? {
        let mut hit = renderings.of(&key, &cert);
        let mut cert = cert;
        // A watch holding the current certificate waits for the next one.
        if let Some(wait) = wait.filter(|_| if_none_match(&tags, &hit.etag))
            && let Some(changed) =
                Box::pin(wait_for_change(&state, &principal, &key, &hit.etag, wait)).await?
        {
            (cert, hit) = changed;
        }
        if if_none_match(&tags, &hit.etag) {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            response
                .headers_mut()
                .insert(header::ETAG, hit.etag_header.clone());
            return Ok(response);
        }
        note_delivery(app, &principal, &key, &hit, now).await;
        return Ok(deliver(principal, &hit, cert, true));
    }
    if app.certs.is_issuing(&key) {
        return Ok(accepted(&key));
    }
    Err(ApiError::NotFound(format!(
        "no valid certificate for {key}; POST /api/certificate to obtain one"
    )))
}

/// Holds a watch (`wait=`) until `key`'s certificate is another than the one of `etag`, or
/// `wait` has passed (`None`: unchanged, answered 304).
async fn wait_for_change(
    state: &ApiState,
    principal: &Principal,
    key: &CertKey,
    etag: &str,
    wait: std::time::Duration,
) -> Result<Option<(Arc<StoredCert>, Arc<Rendered>)>, ApiError> {
    let _slot = state.app.watchers.enter(&principal.name)?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = state.app.certs.changes();
    loop {
        // Subscribed before looking, so a change between the look and the wait is not missed.
        changes.mark_unchanged();
        if let Some(cert) = state.app.certs.valid(key, clock::now()).await? {
            let hit = state.renderings.of(key, &cert);
            if hit.etag != etag {
                return Ok(Some((cert, hit)));
            }
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            // The wait is over, or the service is going away: the client holds the current one.
            Ok(Err(_)) | Err(_) => return Ok(None),
        }
    }
}

/// Waits `server.issueWait` for the issuance: 200 with the certificate, its error, or 202.
async fn wait_for(
    app: &Shared,
    renderings: &Renderings,
    principal: Principal,
    key: &CertKey,
    pending: Pending,
) -> Result<Response, ApiError> {
    match tokio::time::timeout(app.issue_wait, service::finished(pending)).await {
        Ok(Ok(cert)) => {
            let rendered = renderings.of(key, &cert);
            note_delivery(app, &principal, key, &rendered, clock::now()).await;
            Ok(deliver(principal, &rendered, cert, false))
        }
        Ok(Err(err)) => Err(err.into()),
        Err(_) => Ok(accepted(key)),
    }
}

/// 403 `domain_not_allowed` (counted) unless `principal` may request every name of `key`;
/// 403 `profile_not_allowed` unless it may ask for `key`'s profile.
pub(super) fn authorize(principal: &Principal, key: &CertKey) -> Result<(), ApiError> {
    if let Some(name) = policy::first_denied(&principal.domains, &key.names) {
        observe::metrics::auth_failure(principal.method, "domain_not_allowed");
        return Err(ApiError::DomainNotAllowed(format!(
            "{} ({}) may not request {name}",
            principal.name, principal.method
        )));
    }
    if !policy::profile_allowed(principal.profiles.as_deref(), key.profile.as_ref()) {
        observe::metrics::auth_failure(principal.method, "profile_not_allowed");
        return Err(ApiError::ProfileNotAllowed(format!(
            "{} ({}) may not ask for profile {}; it may ask for {}",
            principal.name,
            principal.method,
            key.profile.as_ref().map_or("(default)", Profile::as_str),
            policy::profiles_text(principal.profiles.as_deref()),
        )));
    }
    Ok(())
}

/// 400 `unknown_profile` unless the CA's directory lists the profile `key` names (no profile:
/// nothing to check; `acme.profile` was checked when the account was loaded).
/// An identity naming an IP address, asked for without a profile, takes the profile for
/// addresses (`acme.ipProfile`, else `shortlived` when the CA lists it): Let's Encrypt issues
/// for addresses only with short-lived certificates. It is the addresses' default, so it runs
/// after `authorize`: a credential limited to the default profile may have it.
pub(super) async fn address_profile(app: &Shared, key: &mut CertKey) -> Result<(), ApiError> {
    if key.profile.is_some() || !key.names.has_ip() {
        return Ok(());
    }
    // Boxed: the account's future is kilobytes, and every GET's future would carry it.
    let profile = Box::pin(app.certs.issuer().profile_for_addresses()).await?;
    key.profile = profile.filter(|p| Some(p) != app.default_profile.as_ref());
    Ok(())
}

async fn check_profile(app: &Shared, key: &CertKey) -> Result<(), ApiError> {
    let Some(profile) = &key.profile else {
        return Ok(());
    };
    app.certs.issuer().require_profile(profile).await??;
    Ok(())
}

/// A request's `profile`: checked for form; the configured default (`acme.profile`) is the
/// identity without one, so both spellings name the same certificate.
pub(super) fn parse_profile(
    text: Option<&str>,
    default: Option<&Profile>,
) -> Result<Option<Profile>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    let profile = Profile::parse(text).ok_or_else(|| {
        ApiError::InvalidBody(format!(
            "profile {text:?}: a profile name is 1 to {} letters, digits, '.', '_' or '-', \
             as the CA's directory lists it",
            Profile::MAX_LEN
        ))
    })?;
    Ok((Some(&profile) != default).then_some(profile))
}

/// Every name has a solver for the request's challenge choice: a wildcard, or a name asked for
/// with `dns-01`, needs a `challenges.dns01` entry whose zones hold it; an address needs
/// HTTP-01 or TLS-ALPN-01.
fn check_challenges(app: &Shared, key: &CertKey, choice: ChallengeChoice) -> Result<(), ApiError> {
    for name in key.names.names() {
        app.certs.issuer().solver_for(name.as_str(), choice)?;
    }
    Ok(())
}

fn parse_request(request: CertRequest, app: &Shared) -> Result<Asked, ApiError> {
    let profile = parse_profile(request.profile.as_deref(), app.default_profile.as_ref())?;
    let mut inputs = request.domains.unwrap_or_default();
    inputs.extend(request.domain);
    let choice = match request.challenge.as_deref() {
        None => ChallengeChoice::Auto,
        Some("http-01") => ChallengeChoice::Http01,
        Some("dns-01") => ChallengeChoice::Dns01,
        Some("tls-alpn-01") => ChallengeChoice::TlsAlpn01,
        Some("dns-account-01") => ChallengeChoice::DnsAccount01,
        Some("dns-persist-01") => ChallengeChoice::DnsPersist01,
        Some(other) => {
            return Err(ApiError::InvalidBody(format!(
                "challenge {other:?}: use \"http-01\", \"dns-01\", \"tls-alpn-01\", \"dns-account-01\" or \"dns-persist-01\""
            )));
        }
    };
    let Some(text) = request.csr else {
        if request.replaces.is_some() {
            return Err(ApiError::InvalidBody(
                "replaces names the key a CSR rotates out: send it with csr".to_owned(),
            ));
        }
        // A key certfleet makes (`keyType`), or a client's whose CSR it kept (`spkiSha256`).
        let spki = request.spki_sha256.as_deref();
        if spki.is_some() && !app.private_keys.client_allowed() {
            return Err(csr_not_allowed());
        }
        if spki.is_none() && !app.private_keys.server_allowed() {
            return Err(ApiError::CsrRequired(
                "certificates.privateKeys is client: certfleet holds no private key; send a CSR \
                 for your own key in \"csr\" (certfleet fetch --key local does)"
                    .to_owned(),
            ));
        }
        if inputs.is_empty() {
            return Err(ApiError::InvalidBody(
                "name the certificate: {\"domain\": \"x\"} or {\"domains\": [\"x\", \"*.x\"]}, \
                 or send a CSR in \"csr\""
                    .to_owned(),
            ));
        }
        let key = CertKey {
            names: parse_names(&inputs)?,
            key: parse_key_spec(request.key_type.as_deref(), spki, app.default_key_type)?,
            profile,
        };
        return Ok(Asked {
            key,
            choice,
            csr: None,
        });
    };
    if !app.private_keys.client_allowed() {
        return Err(csr_not_allowed());
    }
    if request.key_type.is_some() || request.spki_sha256.is_some() {
        return Err(ApiError::InvalidBody(
            "keyType and spkiSha256 do not go with csr: the CSR's own key is the certificate's"
                .to_owned(),
        ));
    }
    let csr = crate::acme::csr::parse(&text)?;
    if !inputs.is_empty() {
        let names = parse_names(&inputs)?;
        if names != csr.names {
            return Err(ApiError::CsrNamesMismatch(format!(
                "the request names {names} but the CSR asks for {}; send the same names, or \
                 leave domains out to take the CSR's",
                csr.names
            )));
        }
    }
    let key = CertKey {
        names: csr.names.clone(),
        key: csr.key_spec(),
        profile,
    };
    let replaces = request
        .replaces
        .map(|text| {
            SpkiHash::parse(&text)
                .map(KeySpec::Client)
                .filter(|old| *old != key.key)
                .ok_or_else(|| {
                    ApiError::InvalidBody(format!(
                        "replaces {text:?}: give the spkiSha256 (43 base64url characters) of \
                         the previous key, not the CSR's own"
                    ))
                })
        })
        .transpose()?;
    Ok(Asked {
        key,
        choice,
        csr: Some((csr, replaces)),
    })
}

fn csr_not_allowed() -> ApiError {
    ApiError::CsrNotAllowed(
        "certificates.privateKeys is server: certfleet makes every key; send the request \
         without \"csr\" or \"spkiSha256\""
            .to_owned(),
    )
}

/// 400 `key_compromised` for a client's key whose certificate was revoked for `keyCompromise`:
/// only a new key gets a certificate again. (A key certfleet holds is replaced by a new one.)
/// A request that did not bring its CSR (`sent_csr` false) without a kept one: 400
/// `csr_required`, nothing to issue with.
async fn check_client_key(app: &Shared, key: &CertKey, sent_csr: bool) -> Result<(), ApiError> {
    if !matches!(key.key, KeySpec::Client(_)) {
        return Ok(());
    }
    if !sent_csr && app.store.client_csr(key).await?.is_none() {
        return Err(ApiError::CsrRequired(format!(
            "no CSR is kept for {key}: send it in \"csr\""
        )));
    }
    let revoked = app
        .store
        .inventory_entry(key)
        .await?
        .and_then(|e| e.revoked);
    match revoked {
        Some((_, reason)) if reason == RevocationReason::KeyCompromise.as_str() => {
            Err(ApiError::KeyCompromised(format!(
                "the certificate of {key} was revoked for keyCompromise: certfleet issues for \
                 that key no more; make a new key and send its CSR (with \"replaces\" naming \
                 the old one)"
            )))
        }
        _ => Ok(()),
    }
}

/// Keeps the CSR of a client's key for its issuances and renewals; a key new to its names
/// first counts against `certificates.maxClientKeys` (the key it replaces aside).
async fn keep_csr(
    app: &Shared,
    key: &CertKey,
    csr: &ClientCsr,
    replaces: Option<&KeySpec>,
    now: i64,
) -> Result<(), ApiError> {
    let kept = app.store.client_csr(key).await?;
    if kept.is_none() && app.max_client_keys > 0 {
        let others = app
            .store
            .client_keys(&key.names)
            .await?
            .into_iter()
            .filter(|other| *other != key.key && Some(other) != replaces)
            .count();
        if others >= app.max_client_keys as usize {
            return Err(ApiError::ClientKeyLimit(format!(
                "{} has {others} client keys already (certificates.maxClientKeys is {}): each \
                 key is a certificate of its own, and Let's Encrypt issues at most five per \
                 exact name set a week; rotate a key with \"replaces\", or delete one",
                key.names, app.max_client_keys
            )));
        }
    }
    let changed = kept.is_none_or(|kept| replaces.is_some() && kept.replaces.as_ref() != replaces);
    if changed {
        app.store
            .put_client_csr(key, &csr.pem(), replaces, now)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
fn parse_query(
    query: &str,
    default_key_type: KeyType,
    default_profile: Option<&Profile>,
) -> Result<CertKey, ApiError> {
    parse_identity_query(
        query,
        (default_key_type, default_profile),
        "domain (repeatable), keyType or spkiSha256, profile",
        |_, _| Ok(false),
    )
}

/// The identity a query names with `domain` (repeatable, or comma-separated), `keyType`
/// (a key certfleet holds) or `spkiSha256` (a client's key), and `profile`, with `defaults`
/// (`acme.keyType`, `acme.profile`) for what it leaves out;
/// `extra` takes the route's other parameters (true: taken), anything else is refused with
/// `allowed`, the list of what the route takes.
pub(super) fn parse_identity_query(
    query: &str,
    (default_key_type, default_profile): (KeyType, Option<&Profile>),
    allowed: &str,
    mut extra: impl FnMut(&str, &str) -> Result<bool, ApiError>,
) -> Result<CertKey, ApiError> {
    // The values borrow from the query unless they were percent-encoded: a cached fetch parses
    // its names where they are, straight into the set.
    let mut names = Vec::new();
    let mut key_type = None;
    let mut spki = None;
    let mut profile = None;
    for (name, value) in query_pairs(query) {
        match name.as_ref() {
            "domain" => {
                for part in value.split(',') {
                    names.push(
                        DomainName::parse(part)
                            .map_err(|e| ApiError::InvalidDomain(e.to_string()))?,
                    );
                }
            }
            "keyType" => key_type = Some(value),
            "spkiSha256" => spki = Some(value),
            "profile" => profile = Some(value),
            other if extra(other, &value)? => {}
            other => {
                return Err(ApiError::InvalidBody(format!(
                    "unknown query parameter {other:?}: use {allowed}"
                )));
            }
        }
    }
    if names.is_empty() {
        return Err(ApiError::InvalidBody(
            "name the certificate: ?domain=x[&domain=y]".to_owned(),
        ));
    }
    Ok(CertKey {
        names: NameSet::new(names).map_err(|e| ApiError::InvalidDomain(e.to_string()))?,
        key: parse_key_spec(key_type.as_deref(), spki.as_deref(), default_key_type)?,
        profile: parse_profile(profile.as_deref(), default_profile)?,
    })
}

/// The query's `name=value` pairs, decoded as `application/x-www-form-urlencoded`. A query with
/// nothing to decode (no `%`, no `+`: what clients send for DNS names) is split in place.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    let plain = !query.bytes().any(|b| b == b'%' || b == b'+');
    let split = plain.then(|| {
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (Cow::Borrowed(name), Cow::Borrowed(value))
            })
    });
    let decoded = (!plain).then(|| form_urlencoded::parse(query.as_bytes()));
    split
        .into_iter()
        .flatten()
        .chain(decoded.into_iter().flatten())
}

pub(super) fn parse_names<S: AsRef<str>>(inputs: &[S]) -> Result<NameSet, ApiError> {
    NameSet::parse(inputs).map_err(|e| ApiError::InvalidDomain(e.to_string()))
}

/// The key of an identity named by `keyType` (a key certfleet holds; absent: `default`) or
/// `spkiSha256` (a client's key), never both.
pub(super) fn parse_key_spec(
    key_type: Option<&str>,
    spki: Option<&str>,
    default: KeyType,
) -> Result<KeySpec, ApiError> {
    match (key_type, spki) {
        (Some(_), Some(_)) => Err(ApiError::InvalidBody(
            "keyType and spkiSha256 name two kinds of key: give one".to_owned(),
        )),
        (_, Some(digest)) => SpkiHash::parse(digest).map(KeySpec::Client).ok_or_else(|| {
            ApiError::InvalidBody(format!(
                "spkiSha256 {digest:?}: give the base64url SHA-256 (43 characters) of the key's \
                 SubjectPublicKeyInfo"
            ))
        }),
        (key_type, None) => parse_key_type(key_type, default).map(KeySpec::Server),
    }
}

pub(super) fn parse_key_type(input: Option<&str>, default: KeyType) -> Result<KeyType, ApiError> {
    match input {
        None => Ok(default),
        Some(name) => KeyType::parse(name).ok_or_else(|| {
            ApiError::InvalidBody(format!("keyType {name:?}: use one of {}", KeyType::names()))
        }),
    }
}

/// 200 with the certificate. `no-store`: the body holds a private key, so the delivery is noted
/// for the audit line ([`observe::key_handed_out`]).
fn deliver(
    principal: Principal,
    entry: &Rendered,
    cert: Arc<StoredCert>,
    cached: bool,
) -> Response {
    let mut response = entry.body(cached).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::ETAG, entry.etag_header.clone());
    if cert.key_pem.is_none() {
        // CSR mode: no private key leaves certfleet, so there is no audit line to write.
        return response;
    }
    // Moved, not cloned: this runs for every certificate handed out.
    observe::key_handed_out(KeyDelivery {
        principal: principal.name,
        method: principal.method,
        cert,
    });
    response
}

/// Records in the store that `principal` received `rendered`'s serial (the inventory's "who
/// has which serial"): a write the first time, then at most hourly; every other fetch only
/// looks at the rendering's short list. A failed write is logged; the fetch goes on.
pub(super) async fn note_delivery(
    app: &Shared,
    principal: &Principal,
    key: &CertKey,
    rendered: &Arc<Rendered>,
    now: i64,
) {
    if !rendered.mark_delivered(principal.method, &principal.name, now) {
        return;
    }
    let who = format!("{}:{}", principal.method, principal.name);
    if let Err(err) = app
        .store
        .record_delivery(key, &who, &rendered.cert.serial, now)
        .await
    {
        tracing::warn!(names = %key.names, error = %err, "cannot record the delivery");
    }
}

/// 202: the issuance goes on; ask again at `Location` after `Retry-After` seconds.
fn accepted(key: &CertKey) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for name in key.names.names() {
        query.append_pair("domain", name.as_str());
    }
    match &key.key {
        KeySpec::Server(key_type) => query.append_pair("keyType", key_type.as_str()),
        KeySpec::Client(spki) => query.append_pair("spkiSha256", spki.digest_b64()),
    };
    let location = format!("/api/certificate?{}", query.finish());
    let body = serde_json::json!({
        "code": "issuing",
        "message": format!("the certificate for {key} is being issued; GET the Location after Retry-After seconds"),
    });
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_ISSUING));
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    response
}

/// The request's `If-None-Match` values, the one header GET reads: taken alone, where the
/// `HeaderMap` extractor would copy every header of every request.
#[derive(Debug)]
pub struct IfNoneMatch(pub(super) Vec<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let tags = parts.headers.get_all(header::IF_NONE_MATCH);
        Ok(Self(tags.iter().cloned().collect()))
    }
}

/// Whether one of the `If-None-Match` values names `etag` or is `*` (RFC 9110 section 13.1.2:
/// weak comparison, `*` matches any current representation).
fn if_none_match(values: &[HeaderValue], etag: &str) -> bool {
    values
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `handler` returns, without calling it.
    fn future_size<A, B, C, D, F: Future>(_: impl FnOnce(A, B, C, D) -> F) -> usize {
        size_of::<F>()
    }

    #[test]
    fn a_fetchs_future_stays_small() {
        // axum allocates every request's handler future and moves it into place: the cached
        // fetch pays for its size. Rare paths (the CA account behind an address's profile, a
        // watch) are boxed where they are taken; inlined, the account alone made it 3968 bytes
        // (unoptimised), past glibc's 1 KiB large-request threshold.
        let size = future_size(get);
        assert!(size < 1024, "GET /api/certificate's future is {size} bytes");
    }

    #[test]
    fn a_client_key_is_named_by_spki_sha256_in_queries_and_in_location() {
        let spki = SpkiHash::from_digest(&[9u8; 32]);
        let query = format!("domain=a.example.com&spkiSha256={}", spki.digest_b64());
        let key = parse_query(&query, KeyType::EcdsaP256, None).expect("a client key");
        assert_eq!(key.key, KeySpec::Client(spki));
        let response = accepted(&key);
        let location = response.headers()[header::LOCATION]
            .to_str()
            .expect("ascii");
        assert_eq!(location, format!("/api/certificate?{query}"));
        let both = format!("{query}&keyType=ecdsa-p256");
        let err = parse_query(&both, KeyType::EcdsaP256, None).expect_err("both");
        assert_eq!(err.status_and_code().1, "invalid_body");
        let err = parse_query(
            "domain=a.example.com&spkiSha256=abc",
            KeyType::EcdsaP256,
            None,
        )
        .expect_err("short");
        assert!(err.message().contains("43 characters"), "{}", err.message());
    }

    #[test]
    fn if_none_match_forms() {
        let etag = "\"abc\"";
        let cases = [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abd\"", false),
            ("abc", false),
        ];
        for (value, want) in cases {
            assert_eq!(
                if_none_match(&[HeaderValue::from_static(value)], etag),
                want,
                "{value}"
            );
        }
        let two = [
            HeaderValue::from_static("\"x\""),
            HeaderValue::from_static("\"abc\""),
        ];
        assert!(if_none_match(&two, etag), "every value counts");
        assert!(!if_none_match(&[], etag));
    }

    #[test]
    fn query_parsing() {
        let key = parse_query(
            "domain=b.example.com&domain=A.example.com&keyType=rsa-2048",
            KeyType::EcdsaP256,
            None,
        )
        .expect("valid query");
        assert_eq!(key.names.key(), "a.example.com,b.example.com");
        assert_eq!(key.key, KeySpec::Server(KeyType::Rsa2048));
        assert_eq!(key.profile, None);
        let default = parse_query("domain=a.example.com", KeyType::EcdsaP384, None).expect("valid");
        assert_eq!(default.key, KeySpec::Server(KeyType::EcdsaP384));
        for bad in [
            "",
            "keyType=rsa-2048",
            "domain=a.example.com&x=1",
            "domain=a..b.com",
            "domain=a.example.com&keyType=dsa",
        ] {
            assert!(parse_query(bad, KeyType::EcdsaP256, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_profile_is_part_of_the_identity_and_the_default_one_is_no_profile() {
        let default = Profile::parse("classic");
        let key = parse_query(
            "domain=a.example.com&profile=shortlived",
            KeyType::EcdsaP256,
            default.as_ref(),
        )
        .expect("a profile");
        assert_eq!(key.profile, Profile::parse("shortlived"));
        assert_eq!(key.variant(), "ecdsa-p256@shortlived");
        let same = parse_query(
            "domain=a.example.com&profile=classic",
            KeyType::EcdsaP256,
            default.as_ref(),
        )
        .expect("the default profile");
        assert_eq!(same.profile, None, "naming acme.profile names the default");
        assert_eq!(same.variant(), "ecdsa-p256");
        for bad in [
            "profile=",
            "profile=a%20b",
            &format!("profile={}", "p".repeat(65)),
        ] {
            let err = parse_query(
                &format!("domain=a.example.com&{bad}"),
                KeyType::EcdsaP256,
                None,
            )
            .expect_err(bad);
            assert_eq!(err.status_and_code().1, "invalid_body", "{bad}");
            assert!(err.message().contains("profile"), "{}", err.message());
        }
    }

    #[test]
    fn plain_queries_split_as_form_urlencoded_decodes_them() {
        for query in [
            "",
            "domain=a.example.com",
            "domain=a.example.com&domain=b.example.com,c.example.com&keyType=rsa-2048",
            "&&domain=a&&",
            "domain",
            "domain=&keyType=",
            "=x",
            "a=b=c",
            "domain=%61.example.com",
            "domain=a+b",
            "domain=a%2Cb&x=%",
        ] {
            let ours: Vec<(String, String)> = query_pairs(query)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            let theirs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(ours, theirs, "{query:?}");
        }
    }
}
