//! A fake of Google Cloud DNS v1 and of Google's OAuth token endpoint and metadata server,
//! faithful to what certfleet relies on: service-account JWT assertions verified with the key's
//! public half (400 `invalid_grant` otherwise), bearer tokens (401 `UNAUTHENTICATED`),
//! `managedZones?dnsName=` (paginated, one zone per page, public and private zones), one rrset
//! per (name, type) with quoted TXT rrdatas, atomic changes that answer `pending` first, 412
//! `conditionNotMet` for a deletion that does not match exactly, 409 `alreadyExists` for an
//! addition over an existing rrset, 404 `notFound`, and 429/500 when a fault is injected. Every
//! applied change is published to challtestsrv.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Fault, Publisher};

/// The project the fake serves.
pub const PROJECT: &str = "certfleet-test";
const CLIENT_EMAIL: &str = "certfleet@certfleet-test.iam.gserviceaccount.com";

/// A running fake.
#[derive(Debug, Clone)]
pub struct GcloudFake {
    base: String,
    key_pem: String,
    state: Arc<Mutex<FakeState>>,
}

/// (managed zone name, rrset name with dot).
type RrsetKey = (String, String);
/// (ttl, quoted rrdatas).
type Rrset = (u64, Vec<String>);

#[derive(Debug, Default)]
struct FakeState {
    /// (managed zone name, DNS name with dot, visibility)
    zones: Vec<(String, String, String)>,
    /// (managed zone name, rrset name with dot) -> (ttl, rrdatas)
    rrsets: BTreeMap<(String, String), (u64, Vec<String>)>,
    tokens: BTreeSet<String>,
    changes: u64,
    fault: Fault,
    /// Public key of the service account (PKCS#1 DER).
    public_key: Vec<u8>,
    /// Changes refused with 409 or 412.
    conflicts: u64,
    /// An rrset another writer puts in place just before the next change is applied.
    interfere: Option<(RrsetKey, Rrset)>,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<FakeState>>,
    publisher: Publisher,
    token_uri: Arc<Mutex<String>>,
}

impl GcloudFake {
    /// Starts the fake with public managed zones for `zones` (named `zone-0`, ...) and a
    /// private zone for the first one (which certfleet must not pick).
    pub async fn start(zones: &[&str], challtestsrv: Option<String>) -> GcloudFake {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .expect("generate an RSA key");
        let pair = RsaKeyPair::from_pkcs8(&key.serialize_der()).expect("RSA key");
        let mut state = FakeState {
            public_key: pair.public_key().as_ref().to_vec(),
            ..FakeState::default()
        };
        if let Some(first) = zones.first() {
            state.zones.push((
                "private-zone".to_owned(),
                format!("{first}."),
                "private".to_owned(),
            ));
        }
        for (i, zone) in zones.iter().enumerate() {
            state
                .zones
                .push((format!("zone-{i}"), format!("{zone}."), "public".to_owned()));
        }
        let state = Arc::new(Mutex::new(state));
        let shared = Shared {
            state: state.clone(),
            publisher: Publisher::new(challtestsrv),
            token_uri: Arc::new(Mutex::new(String::new())),
        };
        let project = "/dns/v1/projects/{project}/managedZones";
        let router = Router::new()
            .route("/token", post(token))
            .route(
                "/computeMetadata/v1/instance/service-accounts/default/token",
                get(metadata_token),
            )
            .route(
                "/computeMetadata/v1/project/project-id",
                get(metadata_project),
            )
            .route(project, get(list_zones))
            .route(&format!("{project}/{{zone}}/rrsets"), get(list_rrsets))
            .route(&format!("{project}/{{zone}}/changes"), post(create_change))
            .route(
                &format!("{project}/{{zone}}/changes/{{id}}"),
                get(get_change),
            )
            .with_state(shared.clone());
        let base = super::serve(router).await;
        *lock(&shared.token_uri) = format!("{base}/token");
        GcloudFake {
            base,
            key_pem: key.serialize_pem(),
            state,
        }
    }

    /// The `apiUrl` to configure: `http://127.0.0.1:PORT/dns/v1`.
    pub fn api_url(&self) -> String {
        format!("{}/dns/v1", self.base)
    }

    /// The fake's base URL (also its metadata server's).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A service-account key JSON whose token_uri is this fake.
    pub fn service_account_json(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "0123456789abcdef",
            "private_key": self.key_pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000000",
            "token_uri": format!("{}/token", self.base),
        })
        .to_string()
    }

    /// Makes change creation fail as `fault` says.
    pub fn set_fault(&self, fault: Fault) {
        lock(&self.state).fault = fault;
    }

    /// The unquoted TXT values of `fqdn` (no dot) in any zone.
    pub fn values(&self, fqdn: &str) -> Vec<String> {
        let name = format!("{fqdn}.");
        lock(&self.state)
            .rrsets
            .iter()
            .filter(|((_, n), _)| *n == name)
            .flat_map(|(_, (_, datas))| datas.iter().map(|d| d.trim_matches('"').to_owned()))
            .collect()
    }

    /// How many changes the fake has applied.
    pub fn changes(&self) -> u64 {
        lock(&self.state).changes
    }

    /// How many changes were refused as conflicting (409 or 412).
    pub fn conflicts(&self) -> u64 {
        lock(&self.state).conflicts
    }

    /// How many rrsets the fake holds.
    pub fn rrset_count(&self) -> usize {
        lock(&self.state).rrsets.len()
    }

    /// Makes another writer replace `fqdn`'s rrset right before the next change is applied
    /// (between certfleet's read and its change).
    pub fn interfere_once(&self, zone: &str, fqdn: &str, rrdatas: &[&str]) {
        lock(&self.state).interfere = Some((
            (zone.to_owned(), format!("{fqdn}.")),
            (300, rrdatas.iter().map(|d| format!("\"{d}\"")).collect()),
        ));
    }

    /// Adds an rrset behind certfleet's back (another writer), publishing nothing.
    pub fn put_rrset(&self, zone: &str, fqdn: &str, rrdatas: &[&str]) {
        lock(&self.state).rrsets.insert(
            (zone.to_owned(), format!("{fqdn}.")),
            (300, rrdatas.iter().map(|d| format!("\"{d}\"")).collect()),
        );
    }
}

async fn token(State(shared): State<Shared>, body: Bytes) -> Response {
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error("unsupported_grant_type", "Invalid grant_type.");
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let public_key = lock(&shared.state).public_key.clone();
    let token_uri = lock(&shared.token_uri).clone();
    if let Err(why) = verify_assertion(assertion, &public_key, &token_uri) {
        return oauth_error("invalid_grant", &why);
    }
    issue_token(&shared)
}

async fn metadata_token(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return (
            StatusCode::FORBIDDEN,
            "Missing required header: Metadata-Flavor",
        )
            .into_response();
    }
    issue_token(&shared)
}

async fn metadata_project(headers: HeaderMap) -> Response {
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return (
            StatusCode::FORBIDDEN,
            "Missing required header: Metadata-Flavor",
        )
            .into_response();
    }
    PROJECT.into_response()
}

fn issue_token(shared: &Shared) -> Response {
    let mut state = lock(&shared.state);
    let token = format!("ya29.fake-{}", state.tokens.len() + 1);
    state.tokens.insert(token.clone());
    Json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

async fn list_zones(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Some(denied) = authorize(&shared, &headers, &project) {
        return denied;
    }
    let q = super::params(q);
    let state = lock(&shared.state);
    let matching: Vec<Value> = state
        .zones
        .iter()
        .filter(|(_, dns_name, _)| q.get("dnsName").is_none_or(|d| d == dns_name))
        .map(|(name, dns_name, visibility)| {
            json!({"kind": "dns#managedZone", "name": name, "dnsName": dns_name, "visibility": visibility, "id": "1"})
        })
        .collect();
    // One zone per page, so that pagination is always exercised.
    let page: usize = q
        .get("pageToken")
        .and_then(|t| t.strip_prefix("page-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut body = json!({"kind": "dns#managedZonesListResponse", "managedZones": matching.get(page).into_iter().collect::<Vec<_>>()});
    if page + 1 < matching.len() {
        body["nextPageToken"] = json!(format!("page-{}", page + 1));
    }
    Json(body).into_response()
}

async fn list_rrsets(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((project, zone)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Some(denied) = authorize(&shared, &headers, &project) {
        return denied;
    }
    let q = super::params(q);
    let state = lock(&shared.state);
    if !state.zones.iter().any(|(name, _, _)| *name == zone) {
        return not_found(&zone);
    }
    let rrsets: Vec<Value> = state
        .rrsets
        .iter()
        .filter(|((z, _), _)| *z == zone)
        .filter(|((_, n), _)| q.get("name").is_none_or(|wanted| wanted == n))
        .filter(|_| q.get("type").is_none_or(|t| t == "TXT"))
        .map(|((_, n), (ttl, datas))| json!({"kind": "dns#resourceRecordSet", "name": n, "type": "TXT", "ttl": ttl, "rrdatas": datas}))
        .collect();
    Json(json!({"kind": "dns#resourceRecordSetsListResponse", "rrsets": rrsets})).into_response()
}

async fn create_change(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((project, zone)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(denied) = authorize(&shared, &headers, &project) {
        return denied;
    }
    let fault = {
        let mut state = lock(&shared.state);
        let fault = state.fault;
        if let Fault::RateLimit(n) = fault {
            state.fault = if n > 1 {
                Fault::RateLimit(n - 1)
            } else {
                Fault::None
            };
        }
        fault
    };
    match fault {
        Fault::ServerError => {
            return google_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "backendError",
                "Internal error. Please try again.",
            );
        }
        Fault::Hang => std::future::pending::<()>().await,
        Fault::RateLimit(_) => {
            return google_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rateLimitExceeded",
                "Rate limit exceeded.",
            );
        }
        Fault::None => {}
    }
    let (id, touched) = {
        let mut state = lock(&shared.state);
        if !state.zones.iter().any(|(name, _, _)| *name == zone) {
            return not_found(&zone);
        }
        if let Some((key, value)) = state.interfere.take() {
            state.rrsets.insert(key, value);
        }
        let mut rrsets = state.rrsets.clone();
        let mut touched = BTreeSet::new();
        for deletion in body["deletions"].as_array().into_iter().flatten() {
            let key = (
                zone.clone(),
                deletion["name"].as_str().unwrap_or_default().to_owned(),
            );
            let wanted = (
                deletion["ttl"].as_u64().unwrap_or(0),
                strings(&deletion["rrdatas"]),
            );
            if rrsets.get(&key) != Some(&wanted) {
                lock_conflict(&mut state);
                return google_error(
                    StatusCode::PRECONDITION_FAILED,
                    "conditionNotMet",
                    &format!(
                        "Precondition not met for 'entity.change.deletions[{}]'",
                        key.1
                    ),
                );
            }
            rrsets.remove(&key);
            touched.insert(key.1);
        }
        for addition in body["additions"].as_array().into_iter().flatten() {
            let name = addition["name"].as_str().unwrap_or_default().to_owned();
            let zone_dns = state
                .zones
                .iter()
                .find(|(n, _, _)| *n == zone)
                .map(|(_, d, _)| d.clone())
                .unwrap_or_default();
            if !(name == zone_dns || name.ends_with(&format!(".{zone_dns}"))) {
                return google_error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    &format!("Invalid value for 'entity.change.additions[{name}].name'"),
                );
            }
            let datas = strings(&addition["rrdatas"]);
            if datas
                .iter()
                .any(|d| !(d.starts_with('"') && d.ends_with('"')))
            {
                return google_error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "Invalid value for 'entity.change.additions[0].rrdata'",
                );
            }
            let key = (zone.clone(), name.clone());
            if rrsets.contains_key(&key) {
                lock_conflict(&mut state);
                return google_error(
                    StatusCode::CONFLICT,
                    "alreadyExists",
                    &format!(
                        "The resource 'entity.change.additions[{name}][TXT]' named '{name} (TXT)' already exists"
                    ),
                );
            }
            rrsets.insert(key, (addition["ttl"].as_u64().unwrap_or(300), datas));
            touched.insert(name);
        }
        state.rrsets = rrsets;
        state.changes += 1;
        let touched: Vec<(String, Vec<String>)> = touched
            .into_iter()
            .map(|name| {
                let values = state
                    .rrsets
                    .get(&(zone.clone(), name.clone()))
                    .map(|(_, datas)| {
                        datas
                            .iter()
                            .map(|d| d.trim_matches('"').to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                (name, values)
            })
            .collect();
        (state.changes, touched)
    };
    for (name, values) in touched {
        shared.publisher.publish(&name, &values).await;
    }
    let mut change = body.clone();
    change["kind"] = json!("dns#change");
    change["id"] = json!(id.to_string());
    change["status"] = json!("pending");
    Json(change).into_response()
}

async fn get_change(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((project, _zone, id)): Path<(String, String, String)>,
) -> Response {
    if let Some(denied) = authorize(&shared, &headers, &project) {
        return denied;
    }
    Json(json!({"kind": "dns#change", "id": id, "status": "done"})).into_response()
}

/// The 401 or 403 a request gets without a token the fake issued, or for another project.
fn authorize(shared: &Shared, headers: &HeaderMap, project: &str) -> Option<Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !lock(&shared.state).tokens.contains(token) {
        let body = json!({"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", "errors": [{"reason": "authError", "message": "Invalid Credentials"}], "status": "UNAUTHENTICATED"}});
        return Some((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }
    if project != PROJECT {
        return Some(google_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("The caller does not have permission on project {project}"),
        ));
    }
    None
}

/// Checks an RS256 assertion as Google's token endpoint does: signature, iss, aud, scope, exp.
fn verify_assertion(assertion: &str, public_key: &[u8], token_uri: &str) -> Result<(), String> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("Invalid JWT: not three segments".to_owned());
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| "Invalid JWT encoding.".to_owned())
    };
    let header: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| "Invalid JWT header.")?;
    if header["alg"] != "RS256" {
        return Err("Invalid JWT: alg must be RS256.".to_owned());
    }
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key)
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &decode(signature)?,
        )
        .map_err(|_| "Invalid JWT Signature.".to_owned())?;
    let claims: Value =
        serde_json::from_slice(&decode(claims)?).map_err(|_| "Invalid JWT claims.")?;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time");
    if claims["iss"] != CLIENT_EMAIL || claims["aud"] != token_uri {
        return Err("Invalid JWT: iss or aud".to_owned());
    }
    if claims["scope"] != "https://www.googleapis.com/auth/ndev.clouddns.readwrite" {
        return Err("Invalid OAuth scope or ID token audience provided.".to_owned());
    }
    let exp = claims["exp"].as_i64().unwrap_or(0);
    if exp < now || exp > now + 3700 {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.".to_owned());
    }
    Ok(())
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn lock_conflict(state: &mut FakeState) {
    state.conflicts += 1;
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "errors": [{"domain": "global", "reason": reason, "message": message}]}});
    (status, Json(body)).into_response()
}

fn not_found(zone: &str) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("The 'parameters.managedZone' resource named '{zone}' does not exist."),
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
