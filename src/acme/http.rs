//! The HTTP client instant-acme talks through: reqwest on rustls, trusting the system's roots
//! plus `acme.caCertificates`, and remembering the CA's `Retry-After` for the current issuance.

use std::cell::Cell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, StatusCode};
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

tokio::task_local! {
    /// The last `Retry-After` the CA sent with a 429 or 503 inside the current scope.
    static RETRY_AFTER: Cell<Option<Duration>>;
}

/// Runs `work` and returns what it produced along with the last `Retry-After` delay the CA sent
/// with a 429 or 503 answer during it. instant-acme's errors do not carry the header, and the
/// client is shared by concurrent issuances, so the value is scoped to the task.
pub async fn with_retry_after<F: Future>(work: F) -> (F::Output, Option<Duration>) {
    RETRY_AFTER
        .scope(Cell::new(None), async {
            let output = work.await;
            (output, RETRY_AFTER.with(Cell::get))
        })
        .await
}

/// Why the ACME server's HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `acme.caCertificates` cannot be read.
    #[error("acme.caCertificates: cannot read {}: {source}", path.display())]
    ReadRoots {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `acme.caCertificates` is not a PEM bundle.
    #[error("acme.caCertificates: {} is not a PEM bundle: {source}", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: reqwest::Error,
    },
    /// The TLS stack refused the settings.
    #[error("build the ACME HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Builds the reqwest client used for the ACME server.
pub fn client(extra_roots: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("certfleet/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .https_only(true);
    if let Some(path) = extra_roots {
        let pem = std::fs::read(path).map_err(|source| ClientError::ReadRoots {
            path: path.to_owned(),
            source,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| ClientError::NotPem {
                path: path.to_owned(),
                source,
            })?;
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(ClientError::Build)
}

/// instant-acme's [`HttpClient`] over a reqwest client, counting and timing every request by
/// ACME endpoint for the metrics.
#[derive(Debug, Clone)]
pub struct AcmeHttp {
    client: reqwest::Client,
    endpoints: Arc<Endpoints>,
}

impl AcmeHttp {
    /// Requests to the CA whose directory is at `directory_url`, through `client`.
    pub fn new(client: reqwest::Client, directory_url: &str) -> Self {
        Self {
            client,
            endpoints: Arc::new(Endpoints {
                directory: directory_url.to_owned(),
                resources: OnceLock::new(),
                caa_identities: OnceLock::new(),
            }),
        }
    }

    /// The directory's `meta.caaIdentities` (RFC 8555 section 7.1.1), once the directory has
    /// been read (the account is loaded): the CA's issuer domain names, first the preferred.
    pub fn caa_identities(&self) -> Option<&[String]> {
        self.endpoints.caa_identities.get().map(Vec::as_slice)
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let (client, endpoints) = (self.client.clone(), self.endpoints.clone());
        Box::pin(async move {
            let endpoint = endpoints.classify(&req.uri().to_string());
            let started = Instant::now();
            let (parts, body) = req.into_parts();
            let req = Request::from_parts(parts, reqwest::Body::wrap(body));
            let req = reqwest::Request::try_from(req)
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let rsp = match client.execute(req).await {
                Ok(rsp) => rsp,
                Err(e) => {
                    crate::observe::metrics::acme_request(endpoint, None, started.elapsed());
                    return Err(instant_acme::Error::Other(Box::new(e.without_url())));
                }
            };
            crate::observe::metrics::acme_request(
                endpoint,
                Some(rsp.status().as_u16()),
                started.elapsed(),
            );
            let throttled = matches!(
                rsp.status(),
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            if let Some(delay) = retry_after(rsp.headers()).filter(|_| throttled) {
                // Outside `with_retry_after` there is nobody to tell: ignore.
                let _ = RETRY_AFTER.try_with(|cell| cell.set(Some(delay)));
            }
            if endpoint == "directory" && rsp.status().is_success() {
                // Read the directory once to learn its resources' URLs, then hand it on.
                let rsp = http::Response::from(rsp);
                let (parts, body) = rsp.into_parts();
                let bytes = http_body_util::BodyExt::collect(body)
                    .await
                    .map_err(|e| instant_acme::Error::Other(Box::new(e)))?
                    .to_bytes();
                endpoints.learn(&bytes);
                let body = reqwest::Body::from(bytes);
                return Ok(BytesResponse::from(http::Response::from_parts(parts, body)));
            }
            Ok(BytesResponse::from(http::Response::from(rsp)))
        })
    }
}

/// Which ACME resource (RFC 8555 section 7.1) a URL is, for the `endpoint` metric label.
#[derive(Debug)]
struct Endpoints {
    directory: String,
    /// The directory's fixed resources, learnt from its first successful answer.
    resources: OnceLock<Vec<(String, &'static str)>>,
    /// Its `meta.caaIdentities`, learnt with them.
    caa_identities: OnceLock<Vec<String>>,
}

/// The directory's fields certfleet labels requests by (RFC 8555 section 7.1.1, RFC 9773).
const DIRECTORY_FIELDS: [&str; 6] = [
    "newNonce",
    "newAccount",
    "newOrder",
    "revokeCert",
    "keyChange",
    "renewalInfo",
];

impl Endpoints {
    fn learn(&self, directory: &[u8]) {
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(directory) else {
            return;
        };
        let resources = DIRECTORY_FIELDS
            .iter()
            .filter_map(|name| Some((fields.get(*name)?.as_str()?.to_owned(), *name)))
            .collect();
        let _ = self.resources.set(resources);
        let caa = fields
            .get("meta")
            .and_then(|meta| meta.get("caaIdentities"))
            .and_then(serde_json::Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(|name| Some(name.as_str()?.to_ascii_lowercase()))
                    .collect()
            })
            .unwrap_or_default();
        let _ = self.caa_identities.set(caa);
    }

    /// The directory's own resources by URL (`renewalInfo` by prefix: its URL ends in a
    /// certificate ID); the per-order resources by the shape of their URL, which CAs keep
    /// readable: Let's Encrypt's `/acme/authz/...`, Pebble's `/authZ/...`.
    fn classify(&self, url: &str) -> &'static str {
        if url == self.directory {
            return "directory";
        }
        for (resource, name) in self.resources.get().into_iter().flatten() {
            let renewal = *name == "renewalInfo" && url.starts_with(resource.as_str());
            if url == resource || renewal {
                return name;
            }
        }
        let path = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest.find('/').map_or("", |at| &rest[at..]))
            .to_ascii_lowercase();
        [
            ("finalize", "finalize"),
            ("chal", "challenge"),
            ("authz", "authorization"),
            ("cert", "certificate"),
            ("order", "order"),
        ]
        .into_iter()
        .find(|(needle, _)| path.contains(needle))
        .map_or("other", |(_, name)| name)
    }
}

/// Parses `Retry-After` (RFC 9110 section 10.2.3): delay-seconds or an HTTP-date.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_by_directory_then_by_shape() {
        let endpoints = Endpoints {
            directory: "https://ca.test/dir".to_owned(),
            resources: OnceLock::new(),
            caa_identities: OnceLock::new(),
        };
        endpoints.learn(
            br#"{"newNonce": "https://ca.test/nonce-plz", "newOrder": "https://ca.test/order-plz",
                 "renewalInfo": "https://ca.test/draft-ietf-acme-ari-03/renewalInfo",
                 "meta": {"termsOfService": "x", "caaIdentities": ["CA.test", "ca.example"]}}"#,
        );
        assert_eq!(
            endpoints.caa_identities.get().expect("learnt"),
            &["ca.test", "ca.example"]
        );
        let cases = [
            ("https://ca.test/dir", "directory"),
            ("https://ca.test/nonce-plz", "newNonce"),
            ("https://ca.test/order-plz", "newOrder"),
            (
                "https://ca.test/draft-ietf-acme-ari-03/renewalInfo/abc.def",
                "renewalInfo",
            ),
            ("https://ca.test/my-order/x1", "order"),
            ("https://ca.test/authZ/x2", "authorization"),
            ("https://ca.test/chalZ/x3", "challenge"),
            ("https://ca.test/finalize-order/x4", "finalize"),
            ("https://ca.test/certZ/x5", "certificate"),
            (
                "https://acme-v02.api.letsencrypt.org/acme/authz/1/2",
                "authorization",
            ),
            (
                "https://acme-v02.api.letsencrypt.org/acme/chall/1/2/x",
                "challenge",
            ),
            (
                "https://acme-v02.api.letsencrypt.org/acme/finalize/1/2",
                "finalize",
            ),
            (
                "https://acme-v02.api.letsencrypt.org/acme/cert/fa00",
                "certificate",
            ),
            (
                "https://acme-v02.api.letsencrypt.org/acme/order/1/2",
                "order",
            ),
            ("https://ca.test/something", "other"),
        ];
        for (url, want) in cases {
            assert_eq!(endpoints.classify(url), want, "{url}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(http::header::RETRY_AFTER, "120".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        headers.insert(http::header::RETRY_AFTER, later.parse().expect("header"));
        let delay = retry_after(&headers).expect("date form");
        assert!(
            delay > Duration::from_secs(3590) && delay <= Duration::from_secs(3600),
            "{delay:?}"
        );
        headers.insert(http::header::RETRY_AFTER, "soon".parse().expect("header"));
        assert_eq!(retry_after(&headers), None);
    }
}
