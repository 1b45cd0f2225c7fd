//! Google Cloud DNS (API v1). Credentials are a service-account key (an RS256 JWT assertion,
//! RFC 7523, exchanged at the key's `token_uri`) or, without one, the platform's identity from
//! the metadata server (Compute Engine, GKE workload identity, Cloud Run).
//!
//! Cloud DNS holds one rrset per (name, type): adding a second value deletes the old rrset and
//! adds the merged one in the same change, and removing one value puts back the rest. A change
//! whose deletion no longer matches is refused (412 `conditionNotMet`), an addition that exists
//! already too (409 `alreadyExists`): both mean another writer came in between, so the rrset is
//! read again and the change retried.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex as AsyncMutex, OnceCell};

use super::{DnsError, DnsProvider, TxtRecord, http_client, transport_error, with_query};
use crate::config::{GcloudConfig, ServiceAccountKey};

const NAME: &str = "gcloud";
/// The OAuth scope for reading and changing Cloud DNS records.
const SCOPE: &str = "https://www.googleapis.com/auth/ndev.clouddns.readwrite";
/// The metadata server, unless `GCE_METADATA_HOST` names another (as Google's libraries read).
const METADATA_HOST: &str = "metadata.google.internal";
/// A change is retried this many times when another writer changed the rrset meanwhile.
const CONFLICT_RETRIES: u32 = 5;
/// Answers of 429 are retried this many times.
const RATE_LIMIT_RETRIES: u32 = 3;
/// How often, and how many times, a pending change is polled until `done`.
const CHANGE_POLL: Duration = Duration::from_millis(500);
const CHANGE_POLLS: u32 = 120;
/// Access tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Where access tokens come from.
#[derive(Debug)]
pub enum Credentials {
    /// A service-account key, parsed from its JSON with the config.
    ServiceAccount(ServiceAccountKey),
    /// The metadata server at this base URL (`http://metadata.google.internal`).
    Metadata {
        /// The server's base URL.
        base_url: String,
    },
}

impl Credentials {
    /// The entry's service-account key, else the platform's identity.
    pub fn of(config: &GcloudConfig) -> Self {
        match &config.service_account {
            Some(key) => Self::ServiceAccount(key.clone()),
            None => Self::metadata_server(),
        }
    }

    /// The platform's identity, from the metadata server (`GCE_METADATA_HOST` overrides its
    /// address, as in Google's own client libraries).
    pub fn metadata_server() -> Self {
        let host = std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| METADATA_HOST.to_owned());
        Self::Metadata {
            base_url: format!("http://{host}"),
        }
    }
}

/// The Google Cloud DNS provider.
#[derive(Debug)]
pub struct GoogleCloudDns {
    /// `https://dns.googleapis.com/dns/v1`, or a test fake.
    api_url: String,
    /// The configured project; else the key's `project_id`, else the metadata server's.
    configured_project: Option<String>,
    /// Who certfleet is.
    credentials: Credentials,
    /// TTL of created rrsets, seconds.
    ttl: u32,
    http: reqwest::Client,
    token: AsyncMutex<Option<(String, Instant)>>,
    project: OnceCell<String>,
    /// Zone DNS name -> managed zone name.
    managed_zones: Mutex<HashMap<String, String>>,
}

/// One rrset as the API shows it.
#[derive(Debug, Clone, Deserialize)]
struct RRSet {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    rrdatas: Vec<String>,
}

impl RRSet {
    fn json(&self) -> Value {
        json!({"name": self.name, "type": self.kind, "ttl": self.ttl, "rrdatas": self.rrdatas})
    }

    fn holds(&self, value: &str) -> bool {
        self.rrdatas.iter().any(|data| unquote(data) == value)
    }
}

/// A failed call: the HTTP status, Google's `reason`, and the message.
struct Failure {
    status: Option<StatusCode>,
    reason: String,
    message: String,
}

impl GoogleCloudDns {
    /// A provider calling `config.api_url` with the entry's credentials (its key, else the
    /// platform's identity), creating rrsets with `ttl`, each call bounded by `timeout`.
    pub fn new(config: &GcloudConfig, ttl: u32, timeout: Duration) -> Result<Self, DnsError> {
        Self::with_credentials(config, Credentials::of(config), ttl, timeout)
    }

    /// As [`GoogleCloudDns::new`], with `credentials` instead of the entry's (a metadata
    /// server at another address).
    pub fn with_credentials(
        config: &GcloudConfig,
        credentials: Credentials,
        ttl: u32,
        timeout: Duration,
    ) -> Result<Self, DnsError> {
        Ok(Self {
            http: http_client(NAME, timeout)?,
            api_url: config.api_url.clone(),
            configured_project: config.project.clone(),
            credentials,
            ttl,
            token: AsyncMutex::new(None),
            project: OnceCell::new(),
            managed_zones: Mutex::new(HashMap::new()),
        })
    }

    /// A valid access token, renewed shortly before it expires.
    async fn access_token(&self) -> Result<String, Failure> {
        let mut slot = self.token.lock().await;
        if let Some((token, until)) = slot.as_ref().filter(|(_, until)| *until > Instant::now()) {
            let _ = until;
            return Ok(token.clone());
        }
        let request = match &self.credentials {
            Credentials::ServiceAccount(key) => {
                let assertion = assertion(key).map_err(|_| Failure {
                    status: None,
                    reason: String::new(),
                    message: "sign the token request".to_owned(),
                })?;
                let form = form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                    .append_pair("assertion", &assertion)
                    .finish();
                self.http
                    .post(&key.token_uri)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form)
            }
            Credentials::Metadata { base_url } => self
                .http
                .get(format!(
                    "{base_url}/computeMetadata/v1/instance/service-accounts/default/token"
                ))
                .header("Metadata-Flavor", "Google"),
        };
        let (status, body) = send(request).await?;
        if !status.is_success() {
            let reason = body["error"].as_str().unwrap_or_default().to_owned();
            let description = body["error_description"].as_str().unwrap_or_default();
            return Err(Failure {
                status: Some(status),
                message: format!(
                    "get an access token: {} {reason} {description}",
                    status.as_u16()
                )
                .trim_end()
                .to_owned(),
                reason,
            });
        }
        let token = body["access_token"].as_str().ok_or_else(|| Failure {
            status: Some(status),
            reason: String::new(),
            message: "get an access token: the answer has no access_token".to_owned(),
        })?;
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(300));
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        *slot = Some((token.to_owned(), until));
        Ok(token.to_owned())
    }

    /// The project: configured, else the key's, else the metadata server's.
    async fn project(&self) -> Result<&str, Failure> {
        self.project
            .get_or_try_init(|| async {
                if let Some(project) = &self.configured_project {
                    return Ok(project.clone());
                }
                match &self.credentials {
                    Credentials::ServiceAccount(key) => key.project_id.clone().ok_or(Failure {
                        status: None,
                        reason: String::new(),
                        message: "the key names no project_id; set project".to_owned(),
                    }),
                    Credentials::Metadata { base_url } => {
                        let url = format!("{base_url}/computeMetadata/v1/project/project-id");
                        let response = self
                            .http
                            .get(url)
                            .header("Metadata-Flavor", "Google")
                            .send()
                            .await
                            .map_err(|e| Failure {
                                status: None,
                                reason: String::new(),
                                message: format!(
                                    "ask the metadata server for the project: {}",
                                    transport_error(e)
                                ),
                            })?;
                        response.text().await.map_err(|e| Failure {
                            status: None,
                            reason: String::new(),
                            message: format!("read the project id: {}", transport_error(e)),
                        })
                    }
                }
            })
            .await
            .map(String::as_str)
    }

    /// One authenticated API call, 429 retried; an error answer becomes a [`Failure`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let project = self.project().await?.to_owned();
        let url = with_query(
            &format!(
                "{}/projects/{project}{path}",
                self.api_url.trim_end_matches('/')
            ),
            query,
        );
        let mut attempt = 0;
        loop {
            let token = self.access_token().await?;
            let mut request = self.http.request(method.clone(), &url).bearer_auth(token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let (status, answer) = send(request).await?;
            if status == StatusCode::TOO_MANY_REQUESTS && attempt < RATE_LIMIT_RETRIES {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                continue;
            }
            if status.is_success() {
                return Ok(answer);
            }
            let error = &answer["error"];
            let reason = error["errors"][0]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let message = error["message"].as_str().unwrap_or("no error details");
            return Err(Failure {
                status: Some(status),
                message: format!("{} {reason}: {message}", status.as_u16()).replace("  ", " "),
                reason,
            });
        }
    }

    /// The managed zone whose DNS name is `zone` (public zones first).
    async fn managed_zone(&self, zone: &str) -> Result<Option<String>, Failure> {
        if let Some(name) = lock(&self.managed_zones).get(zone) {
            return Ok(Some(name.clone()));
        }
        let dns_name = format!("{zone}.");
        let mut found: Option<(String, bool)> = None;
        let mut page_token = String::new();
        loop {
            let mut query = vec![("dnsName", dns_name.as_str())];
            if !page_token.is_empty() {
                query.push(("pageToken", page_token.as_str()));
            }
            let answer = self
                .call(Method::GET, "/managedZones", &query, None)
                .await?;
            for managed in answer["managedZones"].as_array().into_iter().flatten() {
                let public = managed["visibility"].as_str().unwrap_or("public") == "public";
                if let Some(name) = managed["name"].as_str()
                    && found
                        .as_ref()
                        .is_none_or(|(_, was_public)| public && !was_public)
                {
                    found = Some((name.to_owned(), public));
                }
            }
            match answer["nextPageToken"].as_str() {
                Some(next) if !next.is_empty() => page_token = next.to_owned(),
                _ => break,
            }
        }
        let name = found.map(|(name, _)| name);
        if let Some(name) = &name {
            lock(&self.managed_zones).insert(zone.to_owned(), name.clone());
        }
        Ok(name)
    }

    async fn zone_for(&self, record: &TxtRecord, step: &str) -> Result<String, DnsError> {
        self.managed_zone(&record.zone)
            .await
            .map_err(|f| DnsError::new(NAME, step, f.message))?
            .ok_or_else(|| {
                DnsError::new(
                    NAME,
                    step,
                    format!(
                        "no managed zone has the DNS name {}. in project {}",
                        record.zone,
                        self.project.get().map_or("?", String::as_str)
                    ),
                )
            })
    }

    /// The TXT rrset of `fqdn` in `zone`, if there is one.
    async fn rrset(&self, zone: &str, fqdn: &str) -> Result<Option<RRSet>, Failure> {
        let name = format!("{fqdn}.");
        let answer = self
            .call(
                Method::GET,
                &format!("/managedZones/{zone}/rrsets"),
                &[("name", &name), ("type", "TXT")],
                None,
            )
            .await?;
        Ok(answer["rrsets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|set| serde_json::from_value::<RRSet>(set.clone()).ok())
            .find(|set| set.kind == "TXT" && set.name.eq_ignore_ascii_case(&name)))
    }

    /// Applies a change and waits until Cloud DNS reports it `done`.
    async fn change(
        &self,
        zone: &str,
        deletions: Vec<Value>,
        additions: Vec<Value>,
    ) -> Result<(), Failure> {
        let body = json!({"deletions": deletions, "additions": additions});
        let path = format!("/managedZones/{zone}/changes");
        let mut change = self.call(Method::POST, &path, &[], Some(&body)).await?;
        for _ in 0..CHANGE_POLLS {
            if change["status"].as_str() != Some("pending") {
                return Ok(());
            }
            tokio::time::sleep(CHANGE_POLL).await;
            let id = change["id"].as_str().unwrap_or_default().to_owned();
            change = self
                .call(Method::GET, &format!("{path}/{id}"), &[], None)
                .await?;
        }
        Err(Failure {
            status: None,
            reason: String::new(),
            message: "the change stayed pending".to_owned(),
        })
    }

    /// Reads the rrset, lets `edit` compute the change, applies it; retried when another
    /// writer changed the rrset in between (409/412).
    async fn edit_rrset(
        &self,
        zone: &str,
        record: &TxtRecord,
        step: &str,
        edit: impl Fn(Option<RRSet>) -> Option<(Vec<Value>, Vec<Value>)>,
    ) -> Result<(), DnsError> {
        let fail = |f: Failure| DnsError::new(NAME, step, f.message);
        for attempt in 0..=CONFLICT_RETRIES {
            let current = self.rrset(zone, &record.fqdn).await.map_err(fail)?;
            let Some((deletions, additions)) = edit(current) else {
                return Ok(());
            };
            match self.change(zone, deletions, additions).await {
                Ok(()) => return Ok(()),
                Err(f)
                    if attempt < CONFLICT_RETRIES
                        && matches!(
                            f.status,
                            Some(StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED)
                        ) =>
                {
                    tracing::debug!(zone, reason = %f.reason, "Cloud DNS rrset changed meanwhile; retrying");
                }
                Err(f) => return Err(fail(f)),
            }
        }
        Err(DnsError::new(
            NAME,
            step,
            "the rrset kept changing under concurrent writers",
        ))
    }
}

#[async_trait]
impl DnsProvider for GoogleCloudDns {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn add_txt(&self, record: &TxtRecord) -> Result<Value, DnsError> {
        let step = format!("create TXT record in zone {}", record.zone);
        let zone = self.zone_for(record, &step).await?;
        let ttl = self.ttl;
        self.edit_rrset(&zone, record, &step, |current| {
            let quoted = format!("\"{}\"", record.value);
            match current {
                Some(set) if set.holds(&record.value) => None,
                Some(set) => {
                    let mut merged = set.clone();
                    merged.rrdatas.push(quoted);
                    Some((vec![set.json()], vec![merged.json()]))
                }
                None => {
                    let new = RRSet {
                        name: format!("{}.", record.fqdn),
                        kind: "TXT".to_owned(),
                        ttl,
                        rrdatas: vec![quoted],
                    };
                    Some((Vec::new(), vec![new.json()]))
                }
            }
        })
        .await?;
        Ok(json!({"managedZone": zone}))
    }

    async fn delete_txt(&self, record: &TxtRecord, handle: Option<&Value>) -> Result<(), DnsError> {
        let step = format!("delete TXT record in zone {}", record.zone);
        let zone = match handle.and_then(|h| h["managedZone"].as_str()) {
            Some(zone) => zone.to_owned(),
            None => self.zone_for(record, &step).await?,
        };
        self.edit_rrset(&zone, record, &step, |current| {
            let set = current.filter(|set| set.holds(&record.value))?;
            let mut rest = set.clone();
            rest.rrdatas.retain(|data| unquote(data) != record.value);
            let additions = if rest.rrdatas.is_empty() {
                Vec::new()
            } else {
                vec![rest.json()]
            };
            Some((vec![set.json()], additions))
        })
        .await
    }

    async fn find_zone(&self, fqdn: &str) -> Result<Option<String>, DnsError> {
        let mut candidate = fqdn;
        while let Some((label, parent)) = candidate.split_once('.') {
            if !label.starts_with('_') {
                let found = self.managed_zone(candidate).await.map_err(|f| {
                    DnsError::new(NAME, format!("find the zone of {fqdn}"), f.message)
                })?;
                if found.is_some() {
                    return Ok(Some(candidate.to_owned()));
                }
            }
            candidate = parent;
        }
        Ok(None)
    }
}

/// The signed JWT a service account trades for an access token (RFC 7523 section 2.1).
fn assertion(key: &ServiceAccountKey) -> Result<String, aws_lc_rs::error::Unspecified> {
    let now = crate::util::clock::now();
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &key.private_key_id {
        header["kid"] = json!(kid);
    }
    let claims = json!({
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": key.token_uri,
        "iat": now,
        "exp": now + 3600,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signer = key.private_key();
    let mut signature = vec![0u8; signer.public_modulus_len()];
    signer.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Sends `request`; the status and the JSON body (`Null` when the body is not JSON).
async fn send(request: reqwest::RequestBuilder) -> Result<(StatusCode, Value), Failure> {
    let response = request.send().await.map_err(|e| Failure {
        status: None,
        reason: String::new(),
        message: transport_error(e),
    })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// TXT rrdatas are quoted strings (`"\"abc\""`), possibly split in several.
fn unquote(data: &str) -> String {
    data.split("\" \"")
        .collect::<String>()
        .trim_matches('"')
        .to_owned()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
