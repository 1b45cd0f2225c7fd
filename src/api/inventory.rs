//! `/api/certificates`: the operator's inventory. Every managed identity with its status, last
//! failure and next attempt, in pages by expiry; one identity with its issuance history and who
//! received which serial. An admin credential sees everything; any other sees only the
//! certificates whose names its patterns allow, and never learns that others exist.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::{ApiState, Shared};
use crate::auth::{Principal, policy};
use crate::domain::{CertKey, DomainPattern};
use crate::error::ApiError;
use crate::store::{Attempt, Delivery, EventRecord, InventoryCursor, InventoryEntry};
use crate::util::clock::{self, rfc3339};

/// Entries per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 100;
/// The largest `limit`.
const MAX_LIMIT: u32 = 1_000;
/// The most stored entries one request looks at while filtering: a filter that matches little
/// of a large fleet answers a short page with a `next` cursor instead of reading everything.
const MAX_SCAN: usize = 5_000;
/// The most history entries `GET /api/certificates/{id}` shows.
const HISTORY_LIMIT: u32 = 100;
/// The most events `GET /api/certificates/{id}` shows.
const EVENTS_LIMIT: u32 = 50;
/// The most events `GET /api/events` answers with (and its default).
const MAX_EVENTS: u32 = 500;

/// Every status an entry can have, in the order they are decided.
const STATUSES: [&str; 6] = [
    "revoked",
    "expired",
    "renewing",
    "backing_off",
    "due",
    "valid",
];

/// One page of the inventory.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InventoryPage {
    /// The entries, certificate-less failing identities first, then by `notAfter`.
    pub(super) items: Vec<Item>,
    /// The cursor of the next page (pass it as `cursor`), `null` on the last page.
    pub(super) next: Option<String>,
}

/// One identity in the inventory.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// Stable and opaque: `GET /api/certificates/{id}`.
    pub(super) id: String,
    /// Every name, sorted.
    pub(super) names: Vec<String>,
    #[serde(flatten)]
    pub(super) key: super::KeyFields,
    /// `valid`, `due`, `renewing`, `backing_off`, `expired` or `revoked`; `deleted` (only
    /// from `GET /api/certificates/{id}`) for an identity no longer managed, its history kept.
    pub(super) status: &'static str,
    /// The current certificate's serial, lowercase hex; `null` before the first issuance.
    pub(super) serial: Option<String>,
    /// RFC 3339, UTC.
    pub(super) not_before: Option<String>,
    /// RFC 3339, UTC.
    pub(super) not_after: Option<String>,
    /// When renewal starts (RFC 3339, UTC).
    pub(super) renew_after: Option<String>,
    /// When certfleet stored the current certificate (RFC 3339, UTC).
    pub(super) issued_at: Option<String>,
    /// The ACME directory that issued the current certificate (`acme.directoryUrl` or
    /// `acme.fallback.directoryUrl`); `null` when none is stored, or for one stored before
    /// fallbacks existed (the primary's).
    pub(super) ca: Option<String>,
    /// The failure it is backing off from.
    pub(super) last_error: Option<LastError>,
    /// No new order before this time (RFC 3339, UTC), while backing off.
    pub(super) next_attempt: Option<String>,
    /// When it was revoked (RFC 3339, UTC).
    pub(super) revoked_at: Option<String>,
    /// The RFC 5280 reason it was revoked for.
    pub(super) revocation_reason: Option<String>,
}

/// The last failure of an identity.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// The API error code of the failure (`validation_failed`, `ca_error`, ...).
    pub(super) code: &'static str,
    /// What failed.
    pub(super) message: String,
    /// When (RFC 3339, UTC), when the history has it.
    pub(super) at: Option<String>,
    /// Consecutive failures.
    pub(super) count: u32,
}

/// One identity with its history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    #[serde(flatten)]
    pub(super) item: Item,
    /// Every issuance attempt, newest first (at most 100).
    pub(super) history: Vec<HistoryEntry>,
    /// Per credential, the last serial it received, most recent first.
    pub(super) deliveries: Vec<DeliveryEntry>,
    /// The events about it (newest first, at most 50), each with where its notifications
    /// stand: every delivery attempt to every channel.
    pub(super) events: Vec<EventEntry>,
}

/// One event (docs/notifications.md) and its notifications.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventEntry {
    /// `evt_...`: the `webhook-id` receivers got.
    pub(super) id: String,
    /// `certificate.issued`, `certificate.renewed`, `certificate.renewal_failed`,
    /// `certificate.expiring`, `certificate.revoked`, `certificate.deleted`,
    /// `certificate.renewal_advanced`, `delivery.stale` or `dns_persist.expiring` (its
    /// certificate is the record's name alone).
    #[serde(rename = "type")]
    pub(super) kind: String,
    /// The certificate's id.
    pub(super) certificate: String,
    /// When it happened (RFC 3339, UTC).
    pub(super) at: String,
    /// One per channel it goes to.
    pub(super) notifications: Vec<NotificationEntry>,
}

/// One event on its way to one channel.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationEntry {
    /// The webhook's name, or `email`.
    pub(super) channel: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub(super) state: String,
    /// Attempts made.
    pub(super) attempts: u32,
    /// The next attempt (RFC 3339, UTC), while pending.
    pub(super) next_attempt: Option<String>,
    /// What the last failed attempt said.
    pub(super) last_error: Option<String>,
    /// When it was delivered or given up (RFC 3339, UTC).
    pub(super) done_at: Option<String>,
    /// Every attempt, oldest first.
    pub(super) history: Vec<NotificationAttemptEntry>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationAttemptEntry {
    /// When (RFC 3339, UTC).
    pub(super) at: String,
    /// `delivered` or `failed`.
    pub(super) outcome: String,
    /// The receiver's answer, or what went wrong.
    pub(super) message: String,
    /// How long it took.
    pub(super) duration_ms: i64,
}

/// `GET /api/events`: the latest events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    /// Newest first.
    pub(super) items: Vec<EventEntry>,
}

/// One issuance attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// `request`, `renewal`, `forced`, `resume` or `replacement` (issuances), `revocation`
    /// or `deletion` (admin actions: the message names who, and from where).
    pub(super) trigger: String,
    /// `success` or `failure`.
    pub(super) outcome: &'static str,
    /// The API error code of a failure.
    pub(super) error_code: Option<String>,
    /// The failure's message.
    pub(super) message: Option<String>,
    /// The serial issued.
    pub(super) serial: Option<String>,
    /// How long it took.
    pub(super) duration_ms: i64,
    /// When it started (RFC 3339, UTC).
    pub(super) at: String,
}

/// When one credential last received a serial.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryEntry {
    /// `method:name`, as the audit line names it (`psk:fleet-a`, `jwt:<sub>`,
    /// `akash:<address>`).
    pub(super) principal: String,
    /// The serial it received.
    pub(super) serial: String,
    /// When (RFC 3339, UTC): the first fetch of that serial, refreshed at most hourly.
    pub(super) at: String,
}

/// `GET /api/certificates`.
#[utoipa::path(
    get,
    path = "/api/certificates",
    tag = "inventory",
    operation_id = "listCertificates",
    summary = "List the managed certificates",
    description = "Every managed identity (an admin credential), or those whose names the \
        credential may request: identities whose every attempt failed first, then by \
        `notAfter`. Pages of `limit` entries; pass `next` as `cursor` for the following one. \
        A filtered page may hold fewer than `limit` entries and still have a `next`.",
    params(
        ("name" = Option<String>, Query,
            description = "Only certificates with a name this pattern matches (`a.example.com`, \
            `*.example.com`)."),
        ("status" = Option<String>, Query,
            description = "Only this status: `valid`, `due`, `renewing`, `backing_off`, \
            `expired` or `revoked`."),
        ("limit" = Option<u32>, Query, description = "Entries per page, 1 to 1000 (default 100)."),
        ("cursor" = Option<String>, Query, description = "The `next` of the previous page."),
    ),
    security(("APIKey" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "One page.", body = InventoryPage),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::AuthUnavailable),
    ),
)]
pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    uri: Uri,
) -> Result<Json<InventoryPage>, ApiError> {
    let query = ListQuery::parse(uri.query().unwrap_or(""))?;
    page(&state.app, &principal, query).await.map(Json)
}

/// One page of what `principal` may read, filtered by `query` (the list route's and the
/// dashboard's).
pub(super) async fn page(
    app: &Shared,
    principal: &Principal,
    query: ListQuery,
) -> Result<InventoryPage, ApiError> {
    let now = clock::now();
    let limit = query.limit as usize;
    let mut items = Vec::new();
    let mut cursor = query.cursor;
    let mut scanned = 0;
    let next = loop {
        // Exactly what is missing when nothing is filtered out (an admin's unfiltered list);
        // else batches of at least 50, as a filter usually drops some of what is read.
        let filtered = query.status.is_some() || query.name.is_some() || !principal.admin;
        let missing = limit - items.len();
        let want = if filtered { missing.max(50) } else { missing };
        let batch = app
            .store
            .inventory(cursor.as_ref(), u32::try_from(want).unwrap_or(MAX_LIMIT))
            .await?;
        let full = batch.len() >= want;
        for entry in batch {
            scanned += 1;
            cursor = Some(entry.cursor());
            let status = status(&entry, app.certs.is_issuing(&entry.key), now);
            if may_read(principal, &entry.key)
                && query.status.is_none_or(|wanted| wanted == status)
                && query.name.as_ref().is_none_or(|pattern| {
                    entry.key.names.names().iter().any(|n| pattern.matches(n))
                })
            {
                items.push(item(entry, status));
                if items.len() == limit {
                    break;
                }
            }
        }
        if items.len() == limit || (full && scanned >= MAX_SCAN) {
            break cursor.as_ref().map(encode_cursor);
        }
        if !full {
            break None;
        }
    };
    Ok(InventoryPage { items, next })
}

/// `GET /api/certificates/{id}`.
#[utoipa::path(
    get,
    path = "/api/certificates/{id}",
    tag = "inventory",
    operation_id = "showCertificate",
    summary = "One managed certificate, with its history",
    description = "The inventory entry, its issuance history (newest first: issuances, \
        revocations, the deletion) and, per credential, the last serial it received. A deleted \
        identity answers with status `deleted` and its history. A credential that may not read \
        every name of it gets 404, as if it did not exist.",
    params(("id" = String, Path, description = "An `id` from the list.")),
    security(("APIKey" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The certificate and its history.", body = Detail),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::AuthUnavailable),
    ),
)]
pub async fn show(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Detail>, ApiError> {
    detail(&state.app, &principal, &id).await.map(Json)
}

/// The identity `id` names with its history and deliveries, if `principal` may read it (the
/// detail route's and the dashboard's).
pub(super) async fn detail(
    app: &Shared,
    principal: &Principal,
    id: &str,
) -> Result<Detail, ApiError> {
    let not_found = || ApiError::NotFound(format!("no managed certificate has the id {id}"));
    let key = decode_id(id).ok_or_else(not_found)?;
    if !may_read(principal, &key) {
        return Err(not_found());
    }
    let history = app.store.attempts(&key, HISTORY_LIMIT).await?;
    let (entry, status) = match app.store.inventory_entry(&key).await? {
        Some(entry) => {
            let status = status(&entry, app.certs.is_issuing(&key), clock::now());
            (entry, status)
        }
        // Deleted: no longer managed, its history kept.
        None if history.iter().any(|a| a.trigger == "deletion") => {
            (InventoryEntry::unmanaged(key.clone()), "deleted")
        }
        None => return Err(not_found()),
    };
    let deliveries = app.store.deliveries(&key).await?;
    let events = app.store.events(&key, EVENTS_LIMIT).await?;
    Ok(Detail {
        item: item(entry, status),
        history: history.into_iter().map(history_entry).collect(),
        deliveries: deliveries.into_iter().map(delivery_entry).collect(),
        events: events.into_iter().map(event_entry).collect(),
    })
}

/// `GET /api/events`.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "inventory",
    operation_id = "listEvents",
    summary = "The latest events and their notifications",
    description = "Events of every certificate the credential may read (all of them for an \
        admin), newest first, each with the state and attempts of its notifications. With \
        `troubled=true`, only the events with a notification given up or failing: what an \
        operator looks at when a receiver was down.",
    params(
        ("troubled" = Option<bool>, Query,
            description = "Only events with a notification given up or failing (default false)."),
        ("limit" = Option<u32>, Query, description = "At most this many, 1 to 500 (default 100)."),
    ),
    security(("APIKey" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The events.", body = EventList),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::AuthUnavailable),
    ),
)]
pub async fn events(
    State(state): State<ApiState>,
    principal: Principal,
    uri: Uri,
) -> Result<Json<EventList>, ApiError> {
    let mut troubled = false;
    let mut limit = DEFAULT_LIMIT;
    for (name, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match &*name {
            "troubled" => {
                troubled = match &*value {
                    "true" | "1" => true,
                    "false" | "0" | "" => false,
                    _ => {
                        return Err(ApiError::InvalidBody(format!(
                            "troubled={value} is not true or false"
                        )));
                    }
                }
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_EVENTS).contains(n))
                    .ok_or_else(|| {
                        ApiError::InvalidBody(format!(
                            "limit={value} is not a number from 1 to {MAX_EVENTS}"
                        ))
                    })?;
            }
            other => {
                return Err(ApiError::InvalidBody(format!(
                    "unknown query parameter {other}; use troubled and limit"
                )));
            }
        }
    }
    recent_events(&state.app, &principal, limit, troubled)
        .await
        .map(|items| Json(EventList { items }))
}

/// The latest events `principal` may read (the events route's and the dashboard's).
pub(super) async fn recent_events(
    app: &Shared,
    principal: &Principal,
    limit: u32,
    troubled: bool,
) -> Result<Vec<EventEntry>, ApiError> {
    // A non-admin's filter drops some: read more, bounded.
    let read = if principal.admin { limit } else { MAX_EVENTS };
    let records = app.store.recent_events(read, troubled).await?;
    Ok(records
        .into_iter()
        .filter(|record| principal.admin || may_read(principal, &record.key))
        .take(limit as usize)
        .map(event_entry)
        .collect())
}

/// Whether `principal` may see `key`: an admin sees all, others what they may request.
pub(super) fn may_read(principal: &Principal, key: &CertKey) -> bool {
    principal.admin || policy::first_denied(&principal.domains, &key.names).is_none()
}

/// The entry's status at `now`, `issuing` telling whether this process runs an order for it.
fn status(entry: &InventoryEntry, issuing: bool, now: i64) -> &'static str {
    let backing_off = entry.failure.as_ref().is_some_and(|f| f.next_attempt > now);
    match &entry.cert {
        _ if entry.revoked.is_some() => "revoked",
        Some(cert) if cert.not_after <= now => "expired",
        _ if issuing || entry.ordering => "renewing",
        _ if backing_off => "backing_off",
        None => "due",
        Some(cert) if cert.renew_after <= now => "due",
        Some(_) => "valid",
    }
}

fn item(entry: InventoryEntry, status: &'static str) -> Item {
    let cert = entry.cert.as_ref();
    let at = |value: Option<i64>| value.map(rfc3339);
    Item {
        id: encode_id(&entry.key),
        names: entry
            .key
            .names
            .names()
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect(),
        key: super::KeyFields::from(&entry.key),
        status,
        serial: cert.map(|c| c.serial.clone()),
        not_before: at(cert.map(|c| c.not_before)),
        not_after: at(cert.map(|c| c.not_after)),
        renew_after: at(cert.map(|c| c.renew_after)),
        issued_at: at(cert.map(|c| c.issued_at)),
        ca: cert.and_then(|c| c.ca.clone()),
        next_attempt: at(entry.failure.as_ref().map(|f| f.next_attempt)),
        last_error: entry.failure.map(|f| LastError {
            code: f.kind.as_str(),
            message: f.message,
            at: at(entry.failed_at),
            count: f.count,
        }),
        revoked_at: at(entry.revoked.as_ref().map(|r| r.0)),
        revocation_reason: entry.revoked.map(|r| r.1),
    }
}

fn history_entry(attempt: Attempt) -> HistoryEntry {
    let success = attempt.outcome == "success";
    HistoryEntry {
        trigger: attempt.trigger,
        outcome: if success { "success" } else { "failure" },
        error_code: (!success).then_some(attempt.outcome),
        message: attempt.message,
        serial: attempt.serial,
        duration_ms: attempt.duration_ms,
        at: rfc3339(attempt.started_at),
    }
}

fn event_entry(record: EventRecord) -> EventEntry {
    let certificate = record.key.opaque_id();
    EventEntry {
        id: record.id,
        kind: record.kind,
        certificate,
        at: rfc3339(record.at),
        notifications: record
            .notifications
            .into_iter()
            .map(|n| NotificationEntry {
                next_attempt: (n.state == "pending").then(|| rfc3339(n.next_attempt)),
                channel: n.channel,
                state: n.state,
                attempts: n.attempts,
                last_error: n.last_error,
                done_at: n.done_at.map(rfc3339),
                history: n
                    .history
                    .into_iter()
                    .map(|a| NotificationAttemptEntry {
                        at: rfc3339(a.at),
                        outcome: a.outcome,
                        message: a.message,
                        duration_ms: a.duration_ms,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn delivery_entry(delivery: Delivery) -> DeliveryEntry {
    DeliveryEntry {
        principal: delivery.principal,
        serial: delivery.serial,
        at: rfc3339(delivery.at),
    }
}

/// The query of the list.
pub(super) struct ListQuery {
    pub(super) name: Option<DomainPattern>,
    pub(super) status: Option<&'static str>,
    pub(super) limit: u32,
    pub(super) cursor: Option<InventoryCursor>,
}

impl ListQuery {
    pub(super) fn parse(query: &str) -> Result<Self, ApiError> {
        let bad = |message: String| ApiError::InvalidBody(message);
        let mut parsed = Self {
            name: None,
            status: None,
            limit: DEFAULT_LIMIT,
            cursor: None,
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "name" => {
                    parsed.name = Some(DomainPattern::parse(&value).map_err(|e| {
                        bad(format!("name: \"{value}\" is not a domain pattern: {e}"))
                    })?);
                }
                "status" => {
                    parsed.status =
                        Some(STATUSES.into_iter().find(|s| *s == value).ok_or_else(|| {
                            bad(format!(
                                "status: \"{value}\" is not a status; use one of {}",
                                STATUSES.join(", ")
                            ))
                        })?);
                }
                "limit" => {
                    parsed.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            bad(format!(
                                "limit: \"{value}\" is not a number from 1 to {MAX_LIMIT}"
                            ))
                        })?;
                }
                "cursor" => {
                    parsed.cursor = Some(decode_cursor(&value).ok_or_else(|| {
                        bad(
                            "cursor: not a cursor this server gave; pass a page's `next` as it is"
                                .to_owned(),
                        )
                    })?);
                }
                other => {
                    return Err(bad(format!(
                        "unknown query parameter \"{other}\"; use name, status, limit or cursor"
                    )));
                }
            }
        }
        Ok(parsed)
    }
}

/// An identity's id (see [`CertKey::opaque_id`]).
pub fn encode_id(key: &CertKey) -> String {
    key.opaque_id()
}

/// The identity an id names, if it is one.
pub fn decode_id(id: &str) -> Option<CertKey> {
    CertKey::from_opaque_id(id)
}

fn encode_cursor(cursor: &InventoryCursor) -> String {
    let at = cursor
        .not_after
        .map_or_else(|| "-".to_owned(), |at| at.to_string());
    URL_SAFE_NO_PAD.encode(format!("{at}|{}|{}", cursor.key_type, cursor.names))
}

fn decode_cursor(text: &str) -> Option<InventoryCursor> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
    let mut parts = text.splitn(3, '|');
    let not_after = match parts.next()? {
        "-" => None,
        at => Some(at.parse().ok()?),
    };
    Some(InventoryCursor {
        not_after,
        key_type: parts.next()?.to_owned(),
        names: parts.next()?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{KeySpec, KeyType, NameSet};

    #[test]
    fn ids_and_cursors_read_back() {
        let key = CertKey {
            names: NameSet::parse(&["www.a.example", "a.example"]).expect("names"),
            key: KeySpec::Server(KeyType::Rsa2048),
            profile: None,
        };
        assert_eq!(decode_id(&encode_id(&key)), Some(key.clone()));
        let short = CertKey {
            profile: crate::domain::Profile::parse("shortlived"),
            ..key
        };
        assert_eq!(decode_id(&encode_id(&short)), Some(short));
        for id in [
            "",
            "!!",
            "bm90IGFuIGlk",
            &URL_SAFE_NO_PAD.encode("rsa-1|a.example"),
        ] {
            assert_eq!(decode_id(id), None, "{id}");
        }
        for not_after in [None, Some(1_800_000_000)] {
            let cursor = InventoryCursor {
                not_after,
                names: "a.example,www.a.example".to_owned(),
                key_type: "ecdsa-p256".to_owned(),
            };
            assert_eq!(decode_cursor(&encode_cursor(&cursor)), Some(cursor));
        }
        assert_eq!(decode_cursor("x"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("soon|k|n")), None);
    }

    #[test]
    fn the_query_names_each_mistake() {
        for (query, says) in [
            ("status=broken", "use one of revoked, expired"),
            ("limit=0", "limit: \"0\" is not a number from 1 to 1000"),
            ("limit=1001", "from 1 to 1000"),
            ("cursor=zz", "not a cursor this server gave"),
            ("name=a..b", "name: \"a..b\" is not a domain pattern"),
            ("sort=expiry", "unknown query parameter \"sort\""),
        ] {
            match ListQuery::parse(query) {
                Err(ApiError::InvalidBody(message)) => {
                    assert!(message.contains(says), "{query}: {message}");
                }
                other => panic!("{query}: {:?}", other.map(|q| q.limit)),
            }
        }
        let parsed = ListQuery::parse("status=due&limit=7&name=*.example.com").expect("valid");
        assert_eq!((parsed.status, parsed.limit), (Some("due"), 7));
        assert!(parsed.name.is_some() && parsed.cursor.is_none());
    }
}
