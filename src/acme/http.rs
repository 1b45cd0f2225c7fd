//! The HTTP client instant-acme talks through: reqwest on rustls, trusting the system's roots
//! plus `acme.caCertificates`, and remembering the CA's `Retry-After` for the current issuance.

use std::cell::Cell;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

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

/// Builds the reqwest client used for the ACME server.
pub fn client(extra_roots: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("certfleet/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .https_only(true);
    if let Some(path) = extra_roots {
        let pem = std::fs::read(path)
            .map_err(|e| format!("acme.caCertificates: cannot read {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            format!(
                "acme.caCertificates: {} is not a PEM bundle: {e}",
                path.display()
            )
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| format!("build the ACME HTTP client: {e}"))
}

/// instant-acme's [`HttpClient`] over a reqwest client.
#[derive(Debug, Clone)]
pub struct AcmeHttp(pub reqwest::Client);

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let req = Request::from_parts(parts, reqwest::Body::wrap(body));
            let req = reqwest::Request::try_from(req)
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let rsp = client
                .execute(req)
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e.without_url())))?;
            let throttled = matches!(
                rsp.status(),
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            if let Some(delay) = retry_after(rsp.headers()).filter(|_| throttled) {
                // Outside `with_retry_after` there is nobody to tell: ignore.
                let _ = RETRY_AFTER.try_with(|cell| cell.set(Some(delay)));
            }
            Ok(BytesResponse::from(http::Response::from(rsp)))
        })
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
