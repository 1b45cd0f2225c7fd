//! The web dashboard at `/ui` (`server.ui`, on by default): the inventory with the latest
//! notification problems, one certificate's history, who received it and its events'
//! notifications, and the renew, revoke and delete actions, as plain server-rendered HTML
//! ([`html`]) that works without JavaScript.
//!
//! **Sessions.** Signing in checks the key (or bearer token) like any API request; the session
//! is a cookie holding that credential, an expiry and a form token, sealed with the store's
//! encryption key ([`Store::seal_secret`]), so every replica sharing the store reads it and
//! nothing is kept in memory. `HttpOnly`, `SameSite=Strict`, `Secure` when the API is served
//! over TLS, `Path=/ui`, [`SESSION_TTL`]. Every request authenticates the credential again: a
//! key removed from the config or an expired token ends the session at once.
//!
//! **Forms.** Every POST carries the session's form token (compared in constant time) and is
//! refused when its `Origin` is another site. Revoke and delete ask for confirmation first. The
//! actions are the service's ([`crate::service::admin`]), with their history and audit lines;
//! no private key is ever rendered.
//!
//! [`Store::seal_secret`]: crate::store::Store::seal_secret

mod html;

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::admin::{ClientAddr, require_admin};
use super::certificate::authorize;
use super::inventory::{self, ListQuery, decode_id};
use crate::acme::solver::ChallengeChoice;
use crate::auth::{Principal, policy};
use crate::domain::RevocationReason;
use crate::error::ApiError;
use crate::service::{self, admin::Actor};
use crate::util::clock;
use html::Viewer;

/// The session cookie's name.
const COOKIE: &str = "certfleet_session";
/// How long a session lasts (seconds): a working day.
pub const SESSION_TTL: i64 = 8 * 3600;
/// The sealing context of the session cookie: it opens nowhere else.
const CONTEXT: &str = "ui-session";
/// Entries per list page.
const PAGE_SIZE: u32 = 50;
/// The most events the list's box of notification problems shows.
const PROBLEMS: u32 = 10;
/// What every page is sent with: no script, no framing, no caching, no referrer elsewhere.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes, on the API's state.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/style.css", get(style))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/certificates", get(list))
        .route("/ui/certificates/{id}", get(show))
        .route("/ui/certificates/{id}/{action}", post(act))
}

/// What the cookie holds, sealed.
#[derive(Serialize, Deserialize)]
struct Sealed {
    /// The `Authorization` value the user signed in with.
    credential: String,
    /// Unix seconds.
    expires: i64,
    /// The form token.
    csrf: String,
}

/// A signed-in user.
struct Session {
    principal: Principal,
    csrf: String,
}

impl Session {
    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            name: &self.principal.name,
            method: self.principal.method,
            admin: self.principal.admin,
            csrf: &self.csrf,
        }
    }
}

/// The session of the request's cookie, if it opens, has not expired, and its credential still
/// authenticates.
async fn session(state: &ApiState, headers: &HeaderMap) -> Option<Session> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())?;
    let opened = state.app.store.open_secret(&value, CONTEXT).ok()?;
    let sealed: Sealed = serde_json::from_str(&opened).ok()?;
    if sealed.expires <= clock::now() {
        return None;
    }
    let principal = state
        .app
        .auth
        .authenticate(Some(&sealed.credential))
        .await
        .ok()?;
    Some(Session {
        principal,
        csrf: sealed.csrf,
    })
}

/// An HTML answer with the dashboard's headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(headers);
    response
}

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on form
    // posts, which the cross-site check must refuse.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// 303 to `location` (a path of the dashboard).
fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    secure_headers(response.headers_mut());
    response
}

/// The answer to a request without a valid session.
fn sign_in_first() -> Response {
    see_other("/ui/login")
}

async fn home(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    match session(&state, &headers).await {
        Some(_) => see_other("/ui/certificates"),
        None => sign_in_first(),
    }
}

async fn style() -> Response {
    let mut response = include_str!("style.css").into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn login_form(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if session(&state, &headers).await.is_some() {
        return see_other("/ui/certificates");
    }
    html(StatusCode::OK, html::login(None))
}

async fn login(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(refused) = cross_site(&headers, &uri) {
        return refused;
    }
    let form = parse_form(&body);
    let key = form.get("key").map_or("", |k| k.trim());
    if key.is_empty() || key.chars().any(|c| !c.is_ascii_graphic()) {
        return html(
            StatusCode::BAD_REQUEST,
            html::login(Some("Give an API key or a bearer token.")),
        );
    }
    // A JWT has three dot-separated parts; an API key is anything else.
    let credential = if key.split('.').count() == 3 {
        format!("Bearer {key}")
    } else {
        format!("APIKey {key}")
    };
    let principal = match state.app.auth.authenticate(Some(&credential)).await {
        Ok(principal) => principal,
        Err(err) => {
            let (status, _) = err.status_and_code();
            // The key is not repeated: the message says only why it was refused.
            return html(status, html::login(Some(err.message())));
        }
    };
    let cookie = random_token()
        .ok_or_else(|| "the system random source failed".to_owned())
        .map(|csrf| Sealed {
            credential,
            expires: clock::now() + SESSION_TTL,
            csrf,
        })
        .and_then(|sealed| serde_json::to_string(&sealed).map_err(|e| e.to_string()))
        .and_then(|json| {
            state
                .app
                .store
                .seal_secret(&json, CONTEXT)
                .map_err(|e| e.to_string())
        });
    let cookie = match cookie {
        Ok(cookie) => cookie,
        Err(err) => {
            tracing::error!(error = %err, "cannot seal a dashboard session");
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                html::login(Some("internal error; the server log has the details")),
            );
        }
    };
    tracing::info!(
        target: crate::observe::audit::AUDIT_TARGET,
        principal = %principal.name,
        method = principal.method,
        admin = principal.admin,
        "dashboard sign-in"
    );
    let mut response = see_other("/ui/certificates");
    set_cookie(&mut response, &cookie, SESSION_TTL, state.app.tls);
    response
}

/// Sets the session cookie to `value` for `max_age` seconds (0 removes it); `Secure` when the
/// API is served over TLS.
fn set_cookie(response: &mut Response, value: &str, max_age: i64, tls: bool) {
    let secure = if tls { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={value}; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
}

async fn logout(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(refused) = cross_site(&headers, &uri) {
        return refused;
    }
    if let Some(session) = session(&state, &headers).await
        && !csrf_matches(&session, &parse_form(&body))
    {
        return csrf_refused(Some(&session));
    }
    let mut response = see_other("/ui/login");
    set_cookie(&mut response, "", 0, state.app.tls);
    response
}

async fn list(State(state): State<ApiState>, headers: HeaderMap, uri: Uri) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return sign_in_first();
    };
    let raw = uri.query().unwrap_or("");
    let fields: HashMap<String, String> = form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    // The API's own parameters (an empty filter field means no filter), a page of 50.
    let api_query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for name in ["name", "status", "cursor"] {
            if let Some(value) = fields.get(name).filter(|v| !v.is_empty()) {
                query.append_pair(name, value);
            }
        }
        query.finish()
    };
    let query = match ListQuery::parse(&api_query) {
        Ok(mut query) => {
            query.limit = PAGE_SIZE;
            query
        }
        Err(err) => return problem(Some(&session), &err, "/ui/certificates"),
    };
    let page = match inventory::page(&state.app, &session.principal, query).await {
        Ok(page) => page,
        Err(err) => return problem(Some(&session), &err, "/ui/certificates"),
    };
    // The box of notification problems on the first page; without it when it cannot be read.
    let troubled = if fields.get("cursor").is_some_and(|c| !c.is_empty()) {
        Vec::new()
    } else {
        inventory::recent_events(&state.app, &session.principal, PROBLEMS, true)
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(error = ?err, "cannot read the notification problems");
                Vec::new()
            })
    };
    let field = |name: &str| fields.get(name).map_or("", String::as_str);
    html(
        StatusCode::OK,
        html::list(
            &session.viewer(),
            &page,
            &troubled,
            field("name"),
            field("status"),
            notice(field("done")),
            clock::now(),
        ),
    )
}

async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return sign_in_first();
    };
    let done = uri
        .query()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(name, _)| name == "done")
                .map(|(_, value)| value.into_owned())
        })
        .unwrap_or_default();
    match inventory::detail(&state.app, &session.principal, &id).await {
        Ok(detail) => {
            let may_renew = decode_id(&id).is_some_and(|key| {
                policy::first_denied(&session.principal.domains, &key.names).is_none()
            });
            html(
                StatusCode::OK,
                html::detail(
                    &session.viewer(),
                    &detail,
                    may_renew,
                    notice(&done),
                    clock::now(),
                ),
            )
        }
        Err(err) => problem(Some(&session), &err, "/ui/certificates"),
    }
}

/// `POST /ui/certificates/{id}/{renew|revoke|delete}`.
async fn act(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    ClientAddr(remote): ClientAddr,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Some(refused) = cross_site(&headers, &uri) {
        return refused;
    }
    let Some(session) = session(&state, &headers).await else {
        return sign_in_first();
    };
    let form = parse_form(&body);
    if !csrf_matches(&session, &form) {
        return csrf_refused(Some(&session));
    }
    let back = format!("/ui/certificates/{id}");
    let detail = match inventory::detail(&state.app, &session.principal, &id).await {
        Ok(detail) => detail,
        Err(err) => return problem(Some(&session), &err, "/ui/certificates"),
    };
    let Some(key) = decode_id(&id) else {
        return problem(
            Some(&session),
            &ApiError::NotFound(format!("no managed certificate has the id {id}")),
            "/ui/certificates",
        );
    };
    let app = &state.app;
    let actor = Actor {
        name: &session.principal.name,
        method: session.principal.method,
        remote,
    };
    if matches!(action.as_str(), "revoke" | "delete")
        && let Err(err) = require_admin(&session.principal, &action)
    {
        return problem(Some(&session), &err, &back);
    }
    let confirmed = form.get("confirm").is_some_and(|v| v == "yes");
    let result = match action.as_str() {
        "renew" => {
            if let Err(err) = authorize(&session.principal, &key) {
                return problem(Some(&session), &err, &back);
            }
            match app
                .certs
                .force(&key, clock::now(), ChallengeChoice::Auto)
                .await
            {
                Ok(pending) => {
                    match tokio::time::timeout(app.issue_wait, service::finished(pending)).await {
                        Ok(Ok(_)) | Err(_) => Ok(format!("{back}?done=renewed")),
                        Ok(Err(err)) => Err(ApiError::from(err)),
                    }
                }
                Err(err) => Err(err.into()),
            }
        }
        "revoke" => {
            let reason_name = form.get("reason").map_or("", String::as_str);
            let Some(reason) = RevocationReason::parse(reason_name) else {
                let err = ApiError::InvalidBody(format!(
                    "reason {reason_name:?}: use one of {}",
                    RevocationReason::names()
                ));
                return problem(Some(&session), &err, &back);
            };
            if !confirmed {
                let what = format!(
                    "Revoke serial {} at the CA for {}? It is never served again{}.",
                    detail.item.serial.as_deref().unwrap_or("-"),
                    reason.as_str(),
                    if reason.replaces() {
                        "; a replacement with a new key is issued at once"
                    } else {
                        "; clients get a new certificate only when they ask for one"
                    }
                );
                return html(
                    StatusCode::OK,
                    html::confirm(
                        &session.viewer(),
                        &detail.item,
                        "revoke",
                        &what,
                        &[("reason", reason.as_str())],
                    ),
                );
            }
            match app.certs.revoke(&key, reason, actor).await {
                Ok(revoked) => {
                    state.renderings.forget(&key);
                    if let Some(pending) = revoked.replacement {
                        let _ =
                            tokio::time::timeout(app.issue_wait, service::finished(pending)).await;
                    }
                    Ok(format!("{back}?done=revoked"))
                }
                Err(err) => Err(err.into()),
            }
        }
        "delete" => {
            let revoke = form.get("revoke").is_some_and(|v| v == "true");
            if !confirmed {
                let what = format!(
                    "Stop managing this certificate? It is not renewed or served any more and its \
                     private key is deleted; its history stays.{}",
                    if revoke {
                        " It is revoked at the CA (cessationOfOperation) first."
                    } else {
                        ""
                    }
                );
                let fields: &[(&str, &str)] = if revoke { &[("revoke", "true")] } else { &[] };
                return html(
                    StatusCode::OK,
                    html::confirm(&session.viewer(), &detail.item, "delete", &what, fields),
                );
            }
            match app.certs.delete(&key, revoke, actor).await {
                Ok(_) => {
                    state.renderings.forget(&key);
                    Ok("/ui/certificates?done=deleted".to_owned())
                }
                Err(err) => Err(err.into()),
            }
        }
        other => Err(ApiError::NotFound(format!(
            "no action {other:?}: use renew, revoke or delete"
        ))),
    };
    match result {
        Ok(location) => see_other(&location),
        Err(err) => problem(Some(&session), &err, &back),
    }
}

/// The page for an error, with its status.
fn problem(session: Option<&Session>, err: &ApiError, back: &str) -> Response {
    let (status, code) = err.status_and_code();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = ?err, "dashboard request failed");
    }
    let viewer = session.map(Session::viewer);
    html(
        status,
        html::problem(viewer.as_ref(), code, err.message(), back),
    )
}

fn csrf_refused(session: Option<&Session>) -> Response {
    let viewer = session.map(Session::viewer);
    html(
        StatusCode::FORBIDDEN,
        html::problem(
            viewer.as_ref(),
            "csrf_failed",
            "The form is stale or did not come from this dashboard; open the page again and retry.",
            "/ui/certificates",
        ),
    )
}

/// A refusal when the request's `Origin` names another site (browsers send it with every
/// form POST). The site is the `Host` header over HTTP/1.1, the `:authority` (the URI's)
/// over HTTP/2, which has no `Host`.
fn cross_site(headers: &HeaderMap, uri: &Uri) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(Authority::as_str));
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    if host.is_some() && origin_host == host {
        return None;
    }
    Some(csrf_refused(None))
}

fn csrf_matches(session: &Session, form: &HashMap<String, String>) -> bool {
    form.get("csrf").is_some_and(|token| {
        !token.is_empty()
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                token.as_bytes(),
                session.csrf.as_bytes(),
            )
            .is_ok()
    })
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// 128 random bits, hex; `None` when the system's random source fails.
fn random_token() -> Option<String> {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The fixed message of a `done` parameter (never the parameter's own text).
fn notice(done: &str) -> Option<&'static str> {
    match done {
        "renewed" => Some("Renewed: a new certificate with a new key is stored."),
        "revoked" => Some(
            "Revoked at the CA. For keyCompromise and superseded a replacement is issued at once.",
        ),
        "deleted" => Some("Deleted: no longer managed. Its history stays."),
        _ => None,
    }
}
