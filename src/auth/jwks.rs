//! The identity provider's signing keys: OpenID Connect Discovery, the JWKS (RFC 7517), and
//! keeping them fresh without ever hammering the provider.
//!
//! - Loading runs in a background task: at start, then again after the JWKS's `Cache-Control:
//!   max-age` (bounded to 1 min .. 24 h; 10 min without one). A failed load is retried with
//!   back-off (1 s doubling to 30 s); keys already loaded stay in use meanwhile.
//! - A token naming an unknown `kid` (the provider rotated its key) may force one extra
//!   refresh, at most once per [`UNKNOWN_KID_INTERVAL`] whatever the number of such tokens.
//! - Until the first load succeeds, [`KeySource::current`] is `None` and bearer tokens are
//!   answered 503 `auth_unavailable`.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::JwtConfig;

/// A token with an unknown `kid` forces at most one JWKS refresh per this interval.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(30);
/// Bounds on the provider's `max-age`: not more often than this ...
const MIN_REFRESH: Duration = Duration::from_secs(60);
/// ... and not less often than this.
const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);
/// When the JWKS response says nothing about caching.
const DEFAULT_REFRESH: Duration = Duration::from_secs(600);
/// Retry delays after a failed load: from this, doubling ...
const BACKOFF_START: Duration = Duration::from_secs(1);
/// ... up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Discovery documents and key sets are a few KiB; anything past this is not one.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Keys used beyond this many in one set are ignored (real sets hold 1-10).
const MAX_KEYS: usize = 100;
/// One request to the provider, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// JWK fields are base64url without padding; a few providers pad them anyway.
const JWK_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a [`KeySource`] cannot be set up from `auth.jwt`.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    /// `auth.jwt.caCertificates` cannot be read.
    #[error("auth.jwt.caCertificates: cannot read {}: {source}", .path.display())]
    ReadCaCertificates {
        /// The file as configured.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// `auth.jwt.caCertificates` holds something other than PEM certificates.
    #[error("auth.jwt.caCertificates: {} is not a PEM bundle: {source}", .path.display())]
    CaCertificatesNotPem {
        /// The file as configured.
        path: PathBuf,
        /// What the PEM parser made of it.
        source: reqwest::Error,
    },
    /// The HTTP client cannot be built (the TLS backend, the roots).
    #[error("auth.jwt: build the HTTP client: {source}")]
    HttpClient {
        /// The client builder's error.
        source: reqwest::Error,
    },
}

/// The error of parsing a URL (`url::ParseError`, named through reqwest's re-exported `Url`
/// so certfleet needs no direct dependency on the `url` crate).
pub type UrlError = <Url as FromStr>::Err;

/// Why one load of the provider's keys failed, by step. The `Display` is what the loader
/// logs; it names the URL but never a token.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// OpenID Connect Discovery: finding the issuer and its `jwks_uri`.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// Fetching or parsing the JWKS at the discovered `jwks_uri`.
    #[error(transparent)]
    Jwks(#[from] JwksError),
}

/// Why OpenID Connect Discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// `auth.jwt.issuerUrl` does not make a discovery URL (config validation refuses such
    /// issuers too).
    #[error("discovery URL {url}: {source}")]
    Url {
        /// The discovery URL as built from the issuer.
        url: String,
        /// Why it does not parse.
        source: UrlError,
    },
    /// The discovery document could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The document is JSON but lacks `issuer` or `jwks_uri` as strings.
    #[error("{url} is not an OpenID discovery document (issuer, jwks_uri): {source}")]
    NotDiscovery {
        /// The discovery URL.
        url: Url,
        /// Why it does not deserialize.
        source: serde_json::Error,
    },
    /// The document names another issuer than the configured one (OIDC Discovery section
    /// 4.3).
    #[error(
        "{url} names the issuer {found:?}, not the configured {configured:?}; set \
         auth.jwt.issuerUrl to the issuer your tokens carry"
    )]
    IssuerMismatch {
        /// The discovery URL.
        url: Url,
        /// The document's `issuer`.
        found: String,
        /// `auth.jwt.issuerUrl`.
        configured: String,
    },
    /// `jwks_uri` does not parse as a URL.
    #[error("{url}: jwks_uri {jwks_uri:?} is not a URL: {source}")]
    JwksUriNotUrl {
        /// The discovery URL.
        url: Url,
        /// The document's `jwks_uri`.
        jwks_uri: String,
        /// Why it does not parse.
        source: UrlError,
    },
    /// `jwks_uri` is plain HTTP to a host other than loopback.
    #[error("{url}: jwks_uri {jwks_uri} is not https:// (http:// is accepted only on loopback)")]
    JwksUriInsecure {
        /// The discovery URL.
        url: Url,
        /// The document's `jwks_uri`.
        jwks_uri: Url,
    },
}

/// Why the JWKS at the discovered `jwks_uri` gave no keys.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The JWKS could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The document is JSON but not a JWK set.
    #[error("{url}: {source}")]
    NotJwkSet {
        /// The `jwks_uri`.
        url: Url,
        /// What is wrong with it.
        source: NotJwkSet,
    },
    /// The set holds no key certfleet can verify signatures with.
    #[error(
        "{url} holds no usable signing key (RSA of 2048 bits or more, P-256, P-384 or \
         Ed25519, for signatures)"
    )]
    NoUsableKey {
        /// The `jwks_uri`.
        url: Url,
    },
}

/// A JSON document without the `keys` array of a JWK set (RFC 7517 section 5).
#[derive(Debug, thiserror::Error)]
#[error("not a JWK set (no \"keys\" array)")]
pub struct NotJwkSet;

/// Why a GET of a discovery document or JWKS failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No response: connection, TLS, timeout.
    #[error("GET {url}: {source}")]
    Send {
        /// The URL requested.
        url: Url,
        /// reqwest's error, without its copy of the URL (`url` says it once).
        source: reqwest::Error,
    },
    /// A response other than 2xx (redirects are not followed).
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The URL requested.
        url: Url,
        /// The response's status.
        status: StatusCode,
    },
    /// The body broke off.
    #[error("GET {url}: read the body: {source}")]
    Body {
        /// The URL requested.
        url: Url,
        /// reqwest's error, without its copy of the URL.
        source: reqwest::Error,
    },
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("GET {url}: the body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge {
        /// The URL requested.
        url: Url,
    },
    /// The body is not JSON.
    #[error("GET {url}: the body is not JSON: {source}")]
    NotJson {
        /// The URL requested.
        url: Url,
        /// The JSON parser's error.
        source: serde_json::Error,
    },
}

/// The keys of one successful load.
#[derive(Debug)]
pub struct KeySet {
    /// The `issuer` of the discovery document: what every token's `iss` must equal.
    pub issuer: String,
    keys: Vec<Key>,
    /// The JWKS as served, to tell a changed set from a refreshed copy of the same one.
    raw: Value,
}

/// One usable public key.
struct Key {
    kid: Option<String>,
    /// The JWK's `alg`, when it names one: the key is then used for that algorithm only.
    alg: Option<Algorithm>,
    kind: KeyKind,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// What a token's `kid` found in a key set.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// The keys to try, in order (one, unless the token names no `kid`).
    Keys(Vec<&'a DecodingKey>),
    /// No key has this `kid`: the provider may have rotated.
    UnknownKid,
    /// Keys exist but none fits the token's `alg` (RFC 8725 section 3.1: the key decides).
    NoFittingKey,
}

impl KeySet {
    /// The keys a token signed with `alg` under `kid` may be checked against.
    pub fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        let named: Vec<&Key> = match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None => self.keys.iter().collect(),
        };
        if named.is_empty() && kid.is_some() {
            return Lookup::UnknownKid;
        }
        let fitting: Vec<&DecodingKey> = named
            .into_iter()
            .filter(|k| k.fits(alg))
            .map(|k| &k.decoding)
            .collect();
        match fitting.is_empty() {
            true => Lookup::NoFittingKey,
            false => Lookup::Keys(fitting),
        }
    }

    /// An empty set from `issuer`, for claim-check tests.
    #[cfg(test)]
    pub(crate) fn for_tests(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            keys: Vec::new(),
            raw: Value::Null,
        }
    }
}

impl Key {
    fn fits(&self, alg: Algorithm) -> bool {
        let kind_fits = match self.kind {
            KeyKind::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            KeyKind::P256 => alg == Algorithm::ES256,
            KeyKind::P384 => alg == Algorithm::ES384,
            KeyKind::Ed25519 => alg == Algorithm::EdDSA,
        };
        kind_fits && self.alg.is_none_or(|a| a == alg)
    }
}

/// Where the keys come from, and the keys loaded so far.
#[derive(Debug)]
pub struct KeySource {
    issuer_url: String,
    http: reqwest::Client,
    current: RwLock<Option<Arc<KeySet>>>,
    /// Bumped whenever the set of keys changes, so verified tokens cached under older keys
    /// are checked again.
    generation: AtomicU64,
    /// Held while fetching: one fetch at a time.
    fetch: Mutex<FetchState>,
}

#[derive(Debug, Default)]
struct FetchState {
    /// From discovery; `None` until it succeeds, and again after a failed load.
    endpoints: Option<Endpoints>,
    /// When a token with an unknown `kid` last forced a refresh.
    last_forced: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Endpoints {
    issuer: String,
    jwks_uri: Url,
}

impl KeySource {
    /// A source for `config`'s provider; nothing is fetched until [`KeySource::spawn_loader`].
    pub fn new(config: &JwtConfig) -> Result<Self, KeySourceError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("certfleet/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(REQUEST_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // Fetches are minutes apart: a pooled connection would be stale by then.
            .pool_max_idle_per_host(0);
        if let Some(path) = &config.ca_certificates {
            let pem = std::fs::read(path).map_err(|source| KeySourceError::ReadCaCertificates {
                path: path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                KeySourceError::CaCertificatesNotPem {
                    path: path.clone(),
                    source,
                }
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|source| KeySourceError::HttpClient { source })?;
        Ok(Self {
            issuer_url: config.issuer_url.clone(),
            http,
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
            fetch: Mutex::new(FetchState::default()),
        })
    }

    /// The keys loaded so far; `None` until the first load succeeds.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes whenever the loaded keys change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Starts the background task that loads the keys and keeps them fresh. It ends once the
    /// source is dropped.
    pub fn spawn_loader(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = BACKOFF_START;
            loop {
                let Some(source) = weak.upgrade() else {
                    return;
                };
                let wait = match source.reload().await {
                    Ok(max_age) => {
                        backoff = BACKOFF_START;
                        refresh_interval(max_age)
                    }
                    Err(err) => {
                        let loaded = source.current().is_some();
                        tracing::warn!(
                            issuer = %source.issuer_url,
                            retry_in = ?backoff,
                            keys_loaded = loaded,
                            "auth.jwt: cannot load the identity provider's keys: {err}"
                        );
                        let wait = backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        wait
                    }
                };
                drop(source);
                tokio::time::sleep(wait).await;
            }
        });
    }

    /// Refreshes the keys because a token names a `kid` the set does not hold. Does nothing
    /// (and answers `false`) when another such refresh ran less than [`UNKNOWN_KID_INTERVAL`]
    /// ago; answers `true` when the keys may have changed since `seen_generation`.
    pub async fn refresh_for_unknown_kid(&self, seen_generation: u64) -> bool {
        let mut state = self.fetch.lock().await;
        // Someone refreshed while this request waited for the lock: look again first.
        if self.generation() != seen_generation {
            return true;
        }
        if state
            .last_forced
            .is_some_and(|at| at.elapsed() < UNKNOWN_KID_INTERVAL)
        {
            return false;
        }
        state.last_forced = Some(Instant::now());
        match self.load(&mut state).await {
            Ok(_) => self.generation() != seen_generation,
            Err(err) => {
                tracing::warn!(
                    issuer = %self.issuer_url,
                    "auth.jwt: refreshing the keys for an unknown key id failed: {err}"
                );
                false
            }
        }
    }

    /// One load under the fetch lock; returns the JWKS's max-age.
    async fn reload(&self) -> Result<Option<Duration>, LoadError> {
        let mut state = self.fetch.lock().await;
        self.load(&mut state).await
    }

    async fn load(&self, state: &mut FetchState) -> Result<Option<Duration>, LoadError> {
        let endpoints = match &state.endpoints {
            Some(endpoints) => endpoints.clone(),
            None => {
                let endpoints = self.discover().await?;
                state.endpoints = Some(endpoints.clone());
                endpoints
            }
        };
        let result = self.fetch_keys(&endpoints).await;
        if result.is_err() {
            // The jwks_uri may have moved: discover again next time.
            state.endpoints = None;
        }
        let (set, max_age) = result?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let changed = current
            .as_ref()
            .is_none_or(|old| old.raw != set.raw || old.issuer != set.issuer);
        if changed {
            tracing::info!(
                issuer = %set.issuer,
                keys = set.keys.len(),
                "auth.jwt: loaded the identity provider's signing keys"
            );
            *current = Some(Arc::new(set));
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(max_age)
    }

    /// OpenID Connect Discovery 1.0 section 4: the document at the issuer's well-known path,
    /// whose `issuer` must be the configured one (section 4.3).
    async fn discover(&self) -> Result<Endpoints, DiscoveryError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer_url.trim_end_matches('/')
        );
        let url = match Url::parse(&url) {
            Ok(parsed) => parsed,
            Err(source) => return Err(DiscoveryError::Url { url, source }),
        };
        let (body, _) = self.get_json(&url).await?;
        let doc: Discovery = match serde_json::from_value(body) {
            Ok(doc) => doc,
            Err(source) => return Err(DiscoveryError::NotDiscovery { url, source }),
        };
        if doc.issuer.trim_end_matches('/') != self.issuer_url.trim_end_matches('/') {
            return Err(DiscoveryError::IssuerMismatch {
                url,
                found: doc.issuer,
                configured: self.issuer_url.clone(),
            });
        }
        let jwks_uri = match Url::parse(&doc.jwks_uri) {
            Ok(jwks_uri) => jwks_uri,
            Err(source) => {
                return Err(DiscoveryError::JwksUriNotUrl {
                    url,
                    jwks_uri: doc.jwks_uri,
                    source,
                });
            }
        };
        if !secure_or_loopback(&jwks_uri) {
            return Err(DiscoveryError::JwksUriInsecure { url, jwks_uri });
        }
        Ok(Endpoints {
            issuer: doc.issuer,
            jwks_uri,
        })
    }

    async fn fetch_keys(
        &self,
        endpoints: &Endpoints,
    ) -> Result<(KeySet, Option<Duration>), JwksError> {
        let url = &endpoints.jwks_uri;
        let (body, max_age) = self.get_json(url).await?;
        let keys = parse_jwks(&body).map_err(|source| JwksError::NotJwkSet {
            url: url.clone(),
            source,
        })?;
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey { url: url.clone() });
        }
        let set = KeySet {
            issuer: endpoints.issuer.clone(),
            keys,
            raw: body,
        };
        Ok((set, max_age))
    }

    /// GETs a JSON document of at most [`MAX_BODY_BYTES`], with its `Cache-Control` max-age.
    async fn get_json(&self, url: &Url) -> Result<(Value, Option<Duration>), FetchError> {
        let mut response = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| FetchError::Send {
                url: url.clone(),
                source: e.without_url(),
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.clone(),
                status,
            });
        }
        let max_age = response
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| FetchError::Body {
            url: url.clone(),
            source: e.without_url(),
        })? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::TooLarge { url: url.clone() });
            }
            body.extend_from_slice(&chunk);
        }
        let json = serde_json::from_slice(&body).map_err(|source| FetchError::NotJson {
            url: url.clone(),
            source,
        })?;
        Ok((json, max_age))
    }
}

/// `https://`, or `http://` to a loopback host.
fn secure_or_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    url.scheme() == "https"
        || (url.scheme() == "http"
            && (host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())))
}

/// The `max-age` of one `Cache-Control` value (RFC 9111 section 5.2.2.1); `no-cache` and
/// `no-store` count as 0.
fn max_age(header: &str) -> Option<Duration> {
    header.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        lower
            .strip_prefix("max-age=")
            .and_then(|secs| secs.trim_matches('"').parse::<u64>().ok())
            .map(Duration::from_secs)
    })
}

/// When to refresh next: the provider's max-age within [`MIN_REFRESH`] .. [`MAX_REFRESH`].
fn refresh_interval(max_age: Option<Duration>) -> Duration {
    max_age
        .unwrap_or(DEFAULT_REFRESH)
        .clamp(MIN_REFRESH, MAX_REFRESH)
}

/// The usable signing keys of a JWKS document. Keys of other types, for encryption, with an
/// unknown or symmetric `alg`, or too weak are skipped: one odd key must not hide the others.
fn parse_jwks(body: &Value) -> Result<Vec<Key>, NotJwkSet> {
    let Some(items) = body.get("keys").and_then(Value::as_array) else {
        return Err(NotJwkSet);
    };
    Ok(items.iter().take(MAX_KEYS).filter_map(parse_jwk).collect())
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn parse_jwk(value: &Value) -> Option<Key> {
    let jwk: RawJwk = serde_json::from_value(value.clone()).ok()?;
    if jwk.usage.as_deref().is_some_and(|u| u != "sig")
        || jwk
            .key_ops
            .as_ref()
            .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return None;
    }
    let alg =
        match jwk.alg.as_deref() {
            None => None,
            Some(name) => Some(name.parse::<Algorithm>().ok().filter(|a| {
                !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
            })?),
        };
    let decode = |field: &Option<String>| JWK_BASE64.decode(field.as_deref()?).ok();
    let (kind, decoding) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let n = decode(&jwk.n)?;
            let e = decode(&jwk.e)?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            // RFC 8725 section 3.5 / NIST SP 800-131A: smaller RSA keys are forgeable.
            if bits < 2048 || e.is_empty() {
                return None;
            }
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (kind, size) = match crv {
                "P-256" => (KeyKind::P256, 32),
                _ => (KeyKind::P384, 48),
            };
            let (x, y) = (decode(&jwk.x)?, decode(&jwk.y)?);
            if x.len() != size || y.len() != size {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, DecodingKey::from_ec_der(&point))
        }
        ("OKP", Some("Ed25519")) => {
            let x = decode(&jwk.x)?;
            if x.len() != 32 {
                return None;
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
        }
        _ => return None,
    };
    Some(Key {
        kid: jwk.kid,
        alg,
        kind,
        decoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(max_age("max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(
            max_age("public, max-age=3600, must-revalidate"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(refresh_interval(Some(Duration::ZERO)), MIN_REFRESH);
        assert_eq!(
            refresh_interval(Some(Duration::from_secs(86_400 * 30))),
            MAX_REFRESH
        );
        assert_eq!(refresh_interval(None), DEFAULT_REFRESH);
        assert_eq!(
            refresh_interval(Some(Duration::from_secs(900))),
            Duration::from_secs(900)
        );
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn jwks_keeps_only_usable_signing_keys() {
        let n2048 = b64(&[0xc5; 256]);
        let n1024 = b64(&[0xc5; 128]);
        let e = b64(&[1, 0, 1]);
        let p256 = b64(&[7; 32]);
        let body = json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "n": n2048, "e": e, "alg": "RS256", "use": "sig"},
            {"kty": "RSA", "kid": "weak", "n": n1024, "e": e},
            {"kty": "RSA", "kid": "enc", "n": n2048, "e": e, "use": "enc"},
            {"kty": "RSA", "kid": "hmac-alg", "n": n2048, "e": e, "alg": "HS256"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": p256, "y": p256},
            {"kty": "EC", "kid": "short", "crv": "P-256", "x": b64(&[7; 31]), "y": p256},
            {"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": p256, "y": p256},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": p256},
            "not an object",
        ]});
        let keys = parse_jwks(&body).expect("a JWK set");
        let kids: Vec<_> = keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, ["rsa", "ec", "ed"]);
        let set = KeySet {
            issuer: "https://idp".to_owned(),
            keys,
            raw: body,
        };
        assert!(
            matches!(set.lookup(Some("rsa"), Algorithm::RS256), Lookup::Keys(k) if k.len() == 1)
        );
        // The JWK says RS256: the same key may not verify PS256.
        assert!(matches!(
            set.lookup(Some("rsa"), Algorithm::PS256),
            Lookup::NoFittingKey
        ));
        assert!(matches!(
            set.lookup(Some("ec"), Algorithm::ES384),
            Lookup::NoFittingKey
        ));
        assert!(matches!(
            set.lookup(Some("nope"), Algorithm::RS256),
            Lookup::UnknownKid
        ));
        assert!(matches!(set.lookup(None, Algorithm::EdDSA), Lookup::Keys(k) if k.len() == 1));
        assert!(parse_jwks(&json!({"no": "keys"})).is_err());
    }

    /// The loader logs these texts and operators search for them: the typed errors must read
    /// exactly as the messages they replaced.
    #[test]
    fn load_errors_read_as_before() {
        let url = Url::parse("https://idp.test/.well-known/openid-configuration").expect("url");
        let jwks = Url::parse("https://idp.test/jwks").expect("url");
        let url_error = Url::parse("no scheme").expect_err("not a URL");
        let json_error = serde_json::from_slice::<Value>(b"{").expect_err("not JSON");
        let not_object = serde_json::from_value::<u8>(json!("x")).expect_err("not a number");
        let cases: [(LoadError, String); 10] = [
            (
                DiscoveryError::Url {
                    url: "idp/.well-known/openid-configuration".to_owned(),
                    source: url_error,
                }
                .into(),
                format!("discovery URL idp/.well-known/openid-configuration: {url_error}"),
            ),
            (
                DiscoveryError::Fetch(FetchError::Status {
                    url: url.clone(),
                    status: StatusCode::SERVICE_UNAVAILABLE,
                })
                .into(),
                format!("GET {url}: HTTP 503 Service Unavailable"),
            ),
            (
                DiscoveryError::NotDiscovery {
                    url: url.clone(),
                    source: serde_json::from_value::<u8>(json!("x")).expect_err("not a number"),
                }
                .into(),
                format!(
                    "{url} is not an OpenID discovery document (issuer, jwks_uri): {not_object}"
                ),
            ),
            (
                DiscoveryError::IssuerMismatch {
                    url: url.clone(),
                    found: "https://other.test".to_owned(),
                    configured: "https://idp.test".to_owned(),
                }
                .into(),
                format!(
                    "{url} names the issuer \"https://other.test\", not the configured \
                     \"https://idp.test\"; set auth.jwt.issuerUrl to the issuer your tokens carry"
                ),
            ),
            (
                DiscoveryError::JwksUriNotUrl {
                    url: url.clone(),
                    jwks_uri: "no scheme".to_owned(),
                    source: url_error,
                }
                .into(),
                format!("{url}: jwks_uri \"no scheme\" is not a URL: {url_error}"),
            ),
            (
                DiscoveryError::JwksUriInsecure {
                    url: url.clone(),
                    jwks_uri: Url::parse("http://idp.test/jwks").expect("url"),
                }
                .into(),
                format!(
                    "{url}: jwks_uri http://idp.test/jwks is not https:// (http:// is accepted \
                     only on loopback)"
                ),
            ),
            (
                JwksError::Fetch(FetchError::TooLarge { url: jwks.clone() }).into(),
                format!("GET {jwks}: the body is larger than 1048576 bytes"),
            ),
            (
                JwksError::Fetch(FetchError::NotJson {
                    url: jwks.clone(),
                    source: json_error,
                })
                .into(),
                format!(
                    "GET {jwks}: the body is not JSON: {}",
                    serde_json::from_slice::<Value>(b"{").expect_err("not JSON")
                ),
            ),
            (
                JwksError::NotJwkSet {
                    url: jwks.clone(),
                    source: NotJwkSet,
                }
                .into(),
                format!("{jwks}: not a JWK set (no \"keys\" array)"),
            ),
            (
                JwksError::NoUsableKey { url: jwks.clone() }.into(),
                format!(
                    "{jwks} holds no usable signing key (RSA of 2048 bits or more, P-256, P-384 \
                     or Ed25519, for signatures)"
                ),
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn load_errors_keep_their_sources() {
        use std::error::Error as _;
        let url = Url::parse("https://idp.test/jwks").expect("url");
        let error = LoadError::from(JwksError::Fetch(FetchError::NotJson {
            url,
            source: serde_json::from_slice::<Value>(b"{").expect_err("not JSON"),
        }));
        // Transparent wrappers: the JSON error is the first source, not the fetch error again.
        assert!(
            error
                .source()
                .is_some_and(|s| s.downcast_ref::<serde_json::Error>().is_some())
        );
        assert!(matches!(
            error,
            LoadError::Jwks(JwksError::Fetch(FetchError::NotJson { .. }))
        ));
    }

    #[test]
    fn setup_errors_read_as_before() {
        let path = PathBuf::from("/nonexistent/roots.pem");
        let io = std::fs::read(&path).expect_err("no such file");
        let text = format!("auth.jwt.caCertificates: cannot read /nonexistent/roots.pem: {io}");
        let error = KeySourceError::ReadCaCertificates {
            path: path.clone(),
            source: io,
        };
        assert_eq!(error.to_string(), text);
    }

    #[test]
    fn only_https_or_loopback_jwks() {
        for (url, ok) in [
            ("https://idp.example.com/keys", true),
            ("http://127.0.0.1:9/jwks", true),
            ("http://[::1]:9/jwks", true),
            ("http://localhost/jwks", true),
            ("http://idp.example.com/keys", false),
            ("ftp://idp.example.com/keys", false),
        ] {
            assert_eq!(
                secure_or_loopback(&Url::parse(url).expect("url")),
                ok,
                "{url}"
            );
        }
    }
}
