//! A fake of the Cloudflare API v4 (`/client/v4`), faithful to what certfleet relies on:
//! `Authorization: Bearer` tokens (403 with code 9109 "Invalid access token" otherwise), the
//! envelope `{"success", "errors", "messages", "result", "result_info"}`, `GET /zones?name=`,
//! paginated `GET /zones/{id}/dns_records?type=&name=`, `POST` (400 81058 "An identical record
//! already exists.") and `DELETE` (404 81044 "Record does not exist."), 7003 for an unknown zone
//! id, 429 (code 971) and 500 when a fault is injected. Every TXT change is published to
//! challtestsrv.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::{Value, json};

use super::{Fault, Publisher};

/// The token the fake accepts.
pub const TOKEN: &str = "cf-test-token-0123456789";

/// A running fake; `api_url()` is what certfleet's `apiUrl` should be.
#[derive(Debug, Clone)]
pub struct CloudflareFake {
    base: String,
    state: Arc<Mutex<FakeState>>,
}

#[derive(Debug, Default)]
struct FakeState {
    /// zone id -> zone name
    zones: BTreeMap<String, String>,
    /// record id -> record
    records: BTreeMap<String, Record>,
    next_id: u64,
    fault: Fault,
    /// Every call, as `METHOD path`.
    calls: Vec<String>,
    /// The name of every record created, in order (kept after the record is deleted).
    created: Vec<String>,
}

#[derive(Debug, Clone)]
struct Record {
    zone_id: String,
    name: String,
    content: String,
    ttl: u64,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<FakeState>>,
    publisher: Publisher,
}

impl CloudflareFake {
    /// Starts the fake with `zones`, publishing to challtestsrv at `challtestsrv` when given.
    pub async fn start(zones: &[&str], challtestsrv: Option<String>) -> CloudflareFake {
        let mut state = FakeState::default();
        for (i, zone) in zones.iter().enumerate() {
            state
                .zones
                .insert(format!("{:032x}", 0xc0ffee + i), (*zone).to_owned());
        }
        let state = Arc::new(Mutex::new(state));
        let shared = Shared {
            state: state.clone(),
            publisher: Publisher::new(challtestsrv),
        };
        let router = Router::new()
            .route("/client/v4/zones", get(list_zones))
            .route(
                "/client/v4/zones/{zone_id}/dns_records",
                get(list_records).post(create_record),
            )
            .route(
                "/client/v4/zones/{zone_id}/dns_records/{record_id}",
                delete(delete_record),
            )
            .with_state(shared);
        CloudflareFake {
            base: super::serve(router).await,
            state,
        }
    }

    /// `http://127.0.0.1:PORT/client/v4`.
    pub fn api_url(&self) -> String {
        format!("{}/client/v4", self.base)
    }

    /// Makes record creation fail as `fault` says.
    pub fn set_fault(&self, fault: Fault) {
        lock(&self.state).fault = fault;
    }

    /// The TXT contents stored for `fqdn`.
    pub fn values(&self, fqdn: &str) -> Vec<String> {
        lock(&self.state)
            .records
            .values()
            .filter(|r| r.name == fqdn)
            .map(|r| r.content.clone())
            .collect()
    }

    /// How many records the fake holds.
    pub fn record_count(&self) -> usize {
        lock(&self.state).records.len()
    }

    /// Every call so far, as `METHOD path`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.state).calls.clone()
    }

    /// The name of every record created so far, deleted ones too.
    pub fn created(&self) -> Vec<String> {
        lock(&self.state).created.clone()
    }
}

async fn list_zones(
    State(shared): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Some(denied) = check_token(&headers) {
        return denied;
    }
    let q = super::params(q);
    let state = record_call(&shared, "GET /zones");
    let zones: Vec<Value> = state
        .zones
        .iter()
        .filter(|(_, name)| q.get("name").is_none_or(|wanted| wanted == *name))
        .map(|(id, name)| json!({"id": id, "name": name, "status": "active"}))
        .collect();
    drop(state);
    paginate(zones, &q)
}

async fn list_records(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(zone_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Some(denied) = check_token(&headers) {
        return denied;
    }
    let q = super::params(q);
    let state = record_call(&shared, "GET /dns_records");
    if !state.zones.contains_key(&zone_id) {
        return unknown_zone(&zone_id);
    }
    let records: Vec<Value> = state
        .records
        .iter()
        .filter(|(_, r)| r.zone_id == zone_id)
        .filter(|_| q.get("type").is_none_or(|t| t == "TXT"))
        .filter(|(_, r)| q.get("name").is_none_or(|n| *n == r.name))
        .filter(|(_, r)| q.get("content").is_none_or(|c| *c == r.content))
        .map(|(id, r)| record_json(id, r))
        .collect();
    drop(state);
    paginate(records, &q)
}

async fn create_record(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(zone_id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(denied) = check_token(&headers) {
        return denied;
    }
    let fault = {
        let mut state = record_call(&shared, "POST /dns_records");
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
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                10001,
                "Internal server error",
            );
        }
        Fault::Hang => std::future::pending::<()>().await,
        Fault::RateLimit(_) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                971,
                "Please wait and consider throttling your request speed",
            );
            response
                .headers_mut()
                .insert("retry-after", "1".parse().expect("header"));
            return response;
        }
        Fault::None => {}
    }
    let (Some("TXT"), Some(name), Some(content)) = (
        body["type"].as_str(),
        body["name"].as_str(),
        body["content"].as_str(),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            9005,
            "Content for TXT record is invalid.",
        );
    };
    let (id, values) = {
        let mut state = lock(&shared.state);
        let Some(zone) = state.zones.get(&zone_id).cloned() else {
            return unknown_zone(&zone_id);
        };
        if name != zone && !name.ends_with(&format!(".{zone}")) {
            return error(
                StatusCode::BAD_REQUEST,
                9007,
                "Record name is not in the zone.",
            );
        }
        if state
            .records
            .values()
            .any(|r| r.name == name && r.content == content)
        {
            return error(
                StatusCode::BAD_REQUEST,
                81058,
                "An identical record already exists.",
            );
        }
        state.next_id += 1;
        let id = format!("{:032x}", 0xabc0_0000 + state.next_id);
        let record = Record {
            zone_id,
            name: name.to_owned(),
            content: content.to_owned(),
            ttl: body["ttl"].as_u64().unwrap_or(1),
        };
        state.records.insert(id.clone(), record);
        state.created.push(name.to_owned());
        (id, values_of(&state, name))
    };
    shared.publisher.publish(name, &values).await;
    let state = lock(&shared.state);
    let record = record_json(&id, &state.records[&id]);
    drop(state);
    ok(record, None)
}

async fn delete_record(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((zone_id, record_id)): Path<(String, String)>,
) -> Response {
    if let Some(denied) = check_token(&headers) {
        return denied;
    }
    let (name, values) = {
        let mut state = record_call(&shared, "DELETE /dns_records");
        if !state.zones.contains_key(&zone_id) {
            return unknown_zone(&zone_id);
        }
        match state.records.get(&record_id) {
            Some(r) if r.zone_id == zone_id => {}
            _ => return error(StatusCode::NOT_FOUND, 81044, "Record does not exist."),
        }
        let record = state.records.remove(&record_id).expect("checked above");
        let values = values_of(&state, &record.name);
        (record.name, values)
    };
    shared.publisher.publish(&name, &values).await;
    ok(json!({"id": record_id}), None)
}

/// The 403 a request without the right token gets, if it gets one.
fn check_token(headers: &HeaderMap) -> Option<Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(TOKEN) => None,
        _ => Some(error(StatusCode::FORBIDDEN, 9109, "Invalid access token")),
    }
}

fn record_call<'a>(shared: &'a Shared, call: &str) -> std::sync::MutexGuard<'a, FakeState> {
    let mut state = lock(&shared.state);
    state.calls.push(call.to_owned());
    state
}

fn values_of(state: &FakeState, name: &str) -> Vec<String> {
    state
        .records
        .values()
        .filter(|r| r.name == name)
        .map(|r| r.content.clone())
        .collect()
}

fn record_json(id: &str, r: &Record) -> Value {
    json!({
        "id": id, "zone_id": r.zone_id, "type": "TXT", "name": r.name,
        "content": r.content, "ttl": r.ttl, "proxied": false,
    })
}

/// Pages of `per_page` (default 20 here, as the real API's default is small too).
fn paginate(items: Vec<Value>, q: &BTreeMap<String, String>) -> Response {
    let per_page: usize = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .clamp(5, 5000);
    let page: usize = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let info = json!({"page": page, "per_page": per_page, "count": slice.len(), "total_count": total, "total_pages": pages});
    ok(Value::Array(slice), Some(info))
}

fn ok(result: Value, result_info: Option<Value>) -> Response {
    let mut body = json!({"success": true, "errors": [], "messages": []});
    body["result"] = result;
    if let Some(info) = result_info {
        body["result_info"] = info;
    }
    Json(body).into_response()
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null});
    (status, Json(body)).into_response()
}

fn unknown_zone(zone_id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        7003,
        &format!(
            "Could not route to /zones/{zone_id}/dns_records, perhaps your object identifier is invalid?"
        ),
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
