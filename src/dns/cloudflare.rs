//! Cloudflare (API v4): TXT records through `POST`/`DELETE /zones/{zone_id}/dns_records`, zones
//! through `GET /zones?name=`. A few REST calls over the crate's reqwest 0.13 rather than the
//! `cloudflare` crate (reqwest 0.12): see docs/design/dependencies.md.
//!
//! The token needs Zone.DNS Edit on the zones, and Zone.Zone Read to find zone ids.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{DnsError, DnsProvider, TxtRecord, http_client, transport_error, with_query};
use crate::config::CloudflareConfig;

const NAME: &str = "cloudflare";
/// Cloudflare's code for "An identical record already exists."
const IDENTICAL_RECORD: i64 = 81058;
/// Cloudflare's code for "Record does not exist."
const NO_SUCH_RECORD: i64 = 81044;
/// Answers of 429 are retried this many times, after the API's `Retry-After` (capped).
const RATE_LIMIT_RETRIES: u32 = 3;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// Records per page when listing (the API's maximum for DNS records is far higher).
const PER_PAGE: u32 = 100;

/// The Cloudflare provider.
#[derive(Debug)]
pub struct Cloudflare {
    config: CloudflareConfig,
    /// TTL of created records, seconds (Cloudflare's minimum is 60; 1 means automatic).
    ttl: u32,
    http: reqwest::Client,
    /// Zone name -> zone id, as the API answered.
    zone_ids: Mutex<HashMap<String, String>>,
}

/// The v4 envelope: `{"success", "errors": [{"code", "message"}], "result", "result_info"}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    #[serde(default)]
    result: Value,
    result_info: Option<ResultInfo>,
}

#[derive(Debug, Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct ResultInfo {
    #[serde(default)]
    total_pages: u32,
}

/// A failed call: the HTTP status and Cloudflare's error codes.
struct Failure {
    status: Option<StatusCode>,
    codes: Vec<i64>,
    message: String,
}

impl Cloudflare {
    /// A provider calling `config.api_url`, creating records with `ttl`, each call bounded by
    /// `timeout`.
    pub fn new(config: &CloudflareConfig, ttl: u32, timeout: Duration) -> Result<Self, DnsError> {
        Ok(Self {
            http: http_client(NAME, timeout)?,
            config: config.clone(),
            ttl,
            zone_ids: Mutex::new(HashMap::new()),
        })
    }

    /// The id of `zone`, from `GET /zones?name=`.
    async fn zone_id(&self, zone: &str, step: &str) -> Result<String, DnsError> {
        if let Some(id) = lock(&self.zone_ids).get(zone) {
            return Ok(id.clone());
        }
        let found = self
            .lookup_zone(zone)
            .await
            .map_err(|f| DnsError::new(NAME, step, f.message))?;
        let id = found.ok_or_else(|| {
            DnsError::new(
                NAME,
                step,
                format!("the token sees no zone named {zone} (it needs Zone.Zone Read on it)"),
            )
        })?;
        lock(&self.zone_ids).insert(zone.to_owned(), id.clone());
        Ok(id)
    }

    async fn lookup_zone(&self, zone: &str) -> Result<Option<String>, Failure> {
        let envelope = self
            .call(Method::GET, "/zones", &[("name", zone)], None)
            .await?;
        Ok(envelope
            .result
            .as_array()
            .and_then(|zones| zones.first())
            .and_then(|z| z["id"].as_str())
            .map(str::to_owned))
    }

    /// Every TXT record of `fqdn` in the zone, page by page: (id, content).
    async fn txt_records(
        &self,
        zone_id: &str,
        fqdn: &str,
    ) -> Result<Vec<(String, String)>, Failure> {
        let path = format!("/zones/{zone_id}/dns_records");
        let per_page = PER_PAGE.to_string();
        let mut records = Vec::new();
        let mut page = 1u32;
        loop {
            let page_text = page.to_string();
            let query = [
                ("type", "TXT"),
                ("name", fqdn),
                ("per_page", per_page.as_str()),
                ("page", page_text.as_str()),
            ];
            let envelope = self.call(Method::GET, &path, &query, None).await?;
            for record in envelope.result.as_array().into_iter().flatten() {
                if let (Some(id), Some(content)) =
                    (record["id"].as_str(), record["content"].as_str())
                {
                    records.push((id.to_owned(), unquote(content).to_owned()));
                }
            }
            let pages = envelope.result_info.map_or(1, |info| info.total_pages);
            if page >= pages {
                return Ok(records);
            }
            page += 1;
        }
    }

    /// One API call, with 429 retried after `Retry-After`; a non-success envelope is a failure.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Envelope, Failure> {
        let url = with_query(
            &format!("{}{path}", self.config.api_url.trim_end_matches('/')),
            query,
        );
        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.config.api_token.expose());
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| Failure {
                status: None,
                codes: Vec::new(),
                message: transport_error(e),
            })?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS && attempt < RATE_LIMIT_RETRIES {
                attempt += 1;
                tokio::time::sleep(retry_after(&response)).await;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            let envelope: Option<Envelope> = serde_json::from_str(&text).ok();
            return match envelope {
                Some(envelope) if envelope.success && status.is_success() => Ok(envelope),
                Some(envelope) => Err(Failure {
                    status: Some(status),
                    codes: envelope.errors.iter().map(|e| e.code).collect(),
                    message: describe(status, &envelope.errors),
                }),
                None => Err(Failure {
                    status: Some(status),
                    codes: Vec::new(),
                    message: format!("{} (not a Cloudflare API answer)", status.as_u16()),
                }),
            };
        }
    }
}

#[async_trait]
impl DnsProvider for Cloudflare {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn add_txt(&self, record: &TxtRecord) -> Result<Value, DnsError> {
        let step = format!("create TXT record in zone {}", record.zone);
        let zone_id = self.zone_id(&record.zone, &step).await?;
        let body = json!({
            "type": "TXT",
            "name": record.fqdn,
            "content": record.value,
            "ttl": self.ttl,
            "comment": "certfleet ACME DNS-01 challenge",
        });
        let path = format!("/zones/{zone_id}/dns_records");
        let id = match self.call(Method::POST, &path, &[], Some(&body)).await {
            Ok(envelope) => envelope.result["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| DnsError::new(NAME, &step, "the answer carries no record id"))?,
            // Already there (a retry after a crash): find it and hand back its id.
            Err(failure) if failure.codes.contains(&IDENTICAL_RECORD) => self
                .txt_records(&zone_id, &record.fqdn)
                .await
                .map_err(|f| DnsError::new(NAME, &step, f.message))?
                .into_iter()
                .find(|(_, content)| *content == record.value)
                .map(|(id, _)| id)
                .ok_or_else(|| DnsError::new(NAME, &step, failure.message))?,
            Err(failure) => return Err(DnsError::new(NAME, step, failure.message)),
        };
        Ok(json!({"zoneId": zone_id, "recordId": id}))
    }

    async fn delete_txt(&self, record: &TxtRecord, handle: Option<&Value>) -> Result<(), DnsError> {
        let step = format!("delete TXT record in zone {}", record.zone);
        let known = handle.and_then(|h| Some((h["zoneId"].as_str()?, h["recordId"].as_str()?)));
        let (zone_id, ids) = match known {
            Some((zone_id, id)) => (zone_id.to_owned(), vec![id.to_owned()]),
            None => {
                let zone_id = self.zone_id(&record.zone, &step).await?;
                let ids = self
                    .txt_records(&zone_id, &record.fqdn)
                    .await
                    .map_err(|f| DnsError::new(NAME, &step, f.message))?
                    .into_iter()
                    .filter(|(_, content)| *content == record.value)
                    .map(|(id, _)| id)
                    .collect();
                (zone_id, ids)
            }
        };
        for id in ids {
            let path = format!("/zones/{zone_id}/dns_records/{id}");
            match self.call(Method::DELETE, &path, &[], None).await {
                Ok(_) => {}
                Err(f)
                    if f.codes.contains(&NO_SUCH_RECORD)
                        || f.status == Some(StatusCode::NOT_FOUND) => {}
                Err(f) => return Err(DnsError::new(NAME, step, f.message)),
            }
        }
        Ok(())
    }

    async fn find_zone(&self, fqdn: &str) -> Result<Option<String>, DnsError> {
        let mut candidate = fqdn;
        while let Some((label, parent)) = candidate.split_once('.') {
            // Zones never start with an underscore label such as `_acme-challenge`.
            if !label.starts_with('_') {
                let found = self.lookup_zone(candidate).await.map_err(|f| {
                    DnsError::new(NAME, format!("find the zone of {fqdn}"), f.message)
                })?;
                if let Some(id) = found {
                    lock(&self.zone_ids).insert(candidate.to_owned(), id);
                    return Ok(Some(candidate.to_owned()));
                }
            }
            candidate = parent;
        }
        Ok(None)
    }
}

/// `403 9109 Invalid access token` (several errors joined with `; `).
fn describe(status: StatusCode, errors: &[ApiMessage]) -> String {
    if errors.is_empty() {
        return format!("{} (no error details)", status.as_u16());
    }
    let details: Vec<String> = errors
        .iter()
        .map(|e| format!("{} {}", e.code, e.message))
        .collect();
    format!("{} {}", status.as_u16(), details.join("; "))
}

/// Cloudflare may show TXT content in quotes; the value compared is the bare string.
fn unquote(content: &str) -> &str {
    content
        .strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or(content)
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
        .min(MAX_RETRY_WAIT)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
