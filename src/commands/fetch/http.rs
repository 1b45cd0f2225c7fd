//! The conversation with certfleet's API (docs/api.md): `GET /api/certificate` with
//! `If-None-Match`, `POST` when the server has none, `202` polled at its `Location`, and every
//! other answer turned into one line naming the request, the status and the server's
//! `{code, message}`. With `--key local` the certificate is named by the key's `spkiSha256`
//! instead of a `keyType` and the `POST` carries a CSR; a rotation `POST`s at once, with
//! `replaces` naming the old key ([`Ask`]).

use std::fmt;
use std::time::Duration;

use reqwest::header::{ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH, LOCATION, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use tokio::time::Instant;

use super::args::UrlError;
use super::bundle::CertBody;
use super::credential::Credential;
use super::credential::CredentialError;
use super::tls::{Trust, TrustError};
use certfleet::domain::{DomainName, KeyType, NameSet, Profile};
use certfleet::util::duration::format_duration;

/// Answers are a few KiB; anything much larger is not certfleet.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long to wait before asking again after a 202 without `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Connecting is quick or not happening; the requests themselves may wait for an issuance.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a run got no usable answer from the server. The variants about an exchange name its
/// request ([`Call`]); none holds the credential.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// reqwest refused the client configuration.
    #[error("cannot set up the HTTP client: {}", error_chain(.source))]
    Client { source: reqwest::Error },
    /// The trust flags cannot be applied.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The credential cannot be made a header.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The API path does not join onto `--server`.
    #[error("--server {server}: {source}")]
    ApiUrl { server: Url, source: UrlError },
    /// A 200 whose body is not certfleet's certificate JSON.
    #[error("{call}: the 200 answer is not a certificate response: {source}")]
    NotACertificate {
        call: Call,
        source: serde_json::Error,
    },
    /// 404 again after the POST: the issuance failed (the server tells why on the next run).
    #[error(
        "{call}: the issuance for {names} ended without a certificate; run again to see the server's error"
    )]
    IssuanceEnded { call: Call, names: NameSet },
    /// The next 202 poll would end after `--wait`.
    #[error(
        "the certificate for {names} is still being issued after --wait {}; the server goes on: run again later",
        format_duration(*.wait)
    )]
    StillIssuing { names: NameSet, wait: Duration },
    /// A 202's `Location` does not resolve against the API URL.
    #[error("{call}: 202 with an unusable Location {location:?}: {source}")]
    BadLocation {
        call: Call,
        location: String,
        source: UrlError,
    },
    /// A 202's `Location` is on another origin (sanitized for the terminal).
    #[error(
        "{call}: 202 points at another server ({origin}); not following it with the credential"
    )]
    OtherOrigin { call: Call, origin: String },
    /// `--wait` ran out before or during the request.
    #[error(
        "{call}: no answer within --wait {}; the server may still be working: run again later",
        format_duration(*.wait)
    )]
    OutOfTime { call: Call, wait: Duration },
    /// The request failed before an answer (connect, TLS, protocol); the URL is left out of
    /// `source`, `call` already names it.
    #[error("{call}: {}", describe(.source))]
    Request { call: Call, source: reqwest::Error },
    /// The answer's body broke off.
    #[error("{call}: reading the answer: {}", error_chain(.source))]
    Read { call: Call, source: reqwest::Error },
    /// The answer's body is larger than [`MAX_BODY_BYTES`].
    #[error("{call}: the answer is larger than {MAX_BODY_BYTES} bytes; is --server certfleet?")]
    TooLarge { call: Call },
    /// Any other status: what the server said, when it says to retry, and what to do about
    /// the codes of the key modes.
    #[error("{call}: {status}: {said}{}{}", retry_note(*.retry_after), said.hint())]
    Refused {
        call: Call,
        status: StatusCode,
        said: ServerSaid,
        retry_after: Option<Duration>,
    },
}

/// One request of a run, as messages name it: `GET https://...`.
#[derive(Debug, Clone)]
pub struct Call {
    method: Method,
    /// Boxed: a `Url` alone would make every `Result<_, HttpError>` large.
    url: Box<Url>,
}

impl Call {
    fn new(method: Method, url: &Url) -> Self {
        Self {
            method,
            url: Box::new(url.clone()),
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)
    }
}

/// The body of a refusal, made one harmless line (see [`sanitize`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSaid {
    /// certfleet's `{code, message}`.
    Error { code: String, message: String },
    /// An empty body.
    Nothing,
    /// Something else (a proxy's page), cut to about 200 bytes.
    Other(String),
}

impl fmt::Display for ServerSaid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Error { code, message } => write!(f, "{code}: {message}"),
            Self::Nothing => f.write_str("no body"),
            Self::Other(text) => write!(f, "not certfleet's JSON error: {text}"),
        }
    }
}

impl ServerSaid {
    /// What to do about a refusal whose code says the key mode is wrong, or the server holds
    /// too many client keys for the names; empty for other codes.
    fn hint(&self) -> &'static str {
        let Self::Error { code, .. } = self else {
            return "";
        };
        match code.as_str() {
            "csr_required" => {
                "; the server's certificates.privateKeys wants the keys made on the clients: use --key local"
            }
            "csr_not_allowed" => {
                "; the server's certificates.privateKeys wants the keys made by the server: use --key server"
            }
            "client_key_limit" => {
                "; the server holds as many client keys for these names as it allows: share one key.pem between the machines, or have the server's operator delete the certificates of keys no longer used"
            }
            _ => "",
        }
    }
}

/// The end of a refusal's line when the server sent `Retry-After`.
fn retry_note(retry_after: Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |delay| {
        format!(" (the server says retry after {})", format_duration(delay))
    })
}

/// What the server answered, in the end.
#[derive(Debug)]
pub(super) enum Answer {
    /// 304: the files in place are current.
    NotModified,
    /// 200: a certificate, not yet checked, and its `ETag` if the server sent one.
    Certificate {
        body: CertBody,
        etag: Option<String>,
    },
}

/// Which certificate a run asks for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ask<'a> {
    /// `--key server`: the one with the server's key, of this type (else `acme.keyType`).
    Server(Option<KeyType>),
    /// `--key local`: the one for the client's key; `csr` (base64url DER) is sent when the
    /// server has none.
    Local { csr: &'a str, spki_sha256: &'a str },
    /// A rotation: a `POST` at once for the new key's `csr`, retiring the certificate of the
    /// key `replaces` names (`None`: there was no old key).
    Rotation {
        csr: &'a str,
        spki_sha256: &'a str,
        replaces: Option<&'a str>,
    },
}

/// A client for one server with one credential.
#[derive(Debug)]
pub(super) struct Api {
    client: reqwest::Client,
    certificate_url: Url,
    authorization: HeaderValue,
}

/// The next request of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Get,
    Post,
}

/// A client under `trust` that follows no redirect: one could carry the credential elsewhere,
/// and certfleet never sends one.
pub(crate) fn client(
    trust: &Trust,
    user_agent: &'static str,
) -> Result<reqwest::Client, HttpError> {
    let builder = reqwest::Client::builder()
        .user_agent(user_agent)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT);
    trust
        .apply(builder)?
        .build()
        .map_err(|source| HttpError::Client { source })
}

impl Api {
    /// `server` ends in `/` (see `parse_server`).
    pub(super) fn new(
        server: &Url,
        credential: &Credential,
        trust: &Trust,
    ) -> Result<Self, HttpError> {
        let client = client(
            trust,
            concat!("certfleet-fetch/", env!("CARGO_PKG_VERSION")),
        )?;
        let certificate_url =
            server
                .join("api/certificate")
                .map_err(|source| HttpError::ApiUrl {
                    server: server.clone(),
                    source,
                })?;
        Ok(Self {
            client,
            certificate_url,
            authorization: credential.header()?,
        })
    }

    /// GET the certificate (conditional on `etag`, and with `hold` held by the server until it
    /// changes: the watch); POST once when the server has none (a rotation POSTs at once);
    /// follow 202s until `wait` has passed.
    pub(super) async fn fetch(
        &self,
        names: &NameSet,
        profile: Option<&Profile>,
        ask: Ask<'_>,
        etag: Option<&str>,
        wait: Duration,
        hold: Option<Duration>,
    ) -> Result<Answer, HttpError> {
        let hold = hold.filter(|_| etag.is_some());
        let deadline = Instant::now() + wait + hold.unwrap_or_default();
        let mut get_url = query_url(&self.certificate_url, names, ask);
        if let Some(profile) = profile {
            get_url
                .query_pairs_mut()
                .append_pair("profile", profile.as_str());
        }
        if let Some(hold) = hold {
            get_url
                .query_pairs_mut()
                .append_pair("wait", &format!("{}s", hold.as_secs().max(1)));
        }
        let mut post = post_body(names, ask);
        if let Some(profile) = profile {
            post["profile"] = profile.as_str().into();
        }
        let mut posted = matches!(ask, Ask::Rotation { .. });
        let mut step = if posted { Step::Post } else { Step::Get };
        loop {
            let call = match step {
                Step::Get => Call::new(Method::GET, &get_url),
                Step::Post => Call::new(Method::POST, &self.certificate_url),
            };
            let request = self
                .client
                .request(call.method.clone(), call.url.as_ref().clone());
            let request = match (step, etag) {
                (Step::Get, Some(etag)) => request.header(IF_NONE_MATCH, etag),
                (Step::Get, None) => request,
                (Step::Post, _) => request.json(&post),
            };
            let response = self.send(request, &call, deadline, wait).await?;
            match response.status() {
                StatusCode::OK => {
                    let etag = header_text(response.headers(), &ETAG);
                    let body = read_body(response, &call, deadline, wait).await?;
                    let body = serde_json::from_slice(&body)
                        .map_err(|source| HttpError::NotACertificate { call, source })?;
                    return Ok(Answer::Certificate { body, etag });
                }
                StatusCode::NOT_MODIFIED if step == Step::Get && etag.is_some() => {
                    return Ok(Answer::NotModified);
                }
                StatusCode::NOT_FOUND if !posted => {
                    posted = true;
                    step = Step::Post;
                }
                StatusCode::NOT_FOUND if step == Step::Get => {
                    return Err(HttpError::IssuanceEnded {
                        call,
                        names: names.clone(),
                    });
                }
                StatusCode::ACCEPTED => {
                    let delay = retry_after(response.headers()).unwrap_or(DEFAULT_RETRY_AFTER);
                    if Instant::now() + delay > deadline {
                        return Err(HttpError::StillIssuing {
                            names: names.clone(),
                            wait,
                        });
                    }
                    if let Some(location) = header_text(response.headers(), &LOCATION) {
                        get_url = self.same_origin(location, call)?;
                    }
                    tokio::time::sleep(delay).await;
                    step = Step::Get;
                }
                status => {
                    let headers = response.headers().clone();
                    let body = read_body(response, &call, deadline, wait)
                        .await
                        .unwrap_or_default();
                    return Err(refusal(call, status, &headers, &body));
                }
            }
        }
    }

    /// Resolves a 202's `Location`; only the server's own origin gets the credential.
    fn same_origin(&self, location: String, call: Call) -> Result<Url, HttpError> {
        let url = match self.certificate_url.join(&location) {
            Ok(url) => url,
            Err(source) => {
                return Err(HttpError::BadLocation {
                    call,
                    location,
                    source,
                });
            }
        };
        if url.origin() != self.certificate_url.origin() {
            return Err(HttpError::OtherOrigin {
                call,
                origin: sanitize(&url.origin().ascii_serialization()),
            });
        }
        Ok(url)
    }

    /// Sends with the credential and the time left before the deadline as its timeout.
    async fn send(
        &self,
        request: RequestBuilder,
        call: &Call,
        deadline: Instant,
        wait: Duration,
    ) -> Result<Response, HttpError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(out_of_time(call, wait));
        }
        request
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .timeout(left)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    out_of_time(call, wait)
                } else {
                    HttpError::Request {
                        call: call.clone(),
                        source: e.without_url(),
                    }
                }
            })
    }
}

/// `GET /api/certificate?domain=a&domain=b` and `&keyType=T` (server's key) or
/// `&spkiSha256=H` (client's key), never both.
fn query_url(certificate_url: &Url, names: &NameSet, ask: Ask<'_>) -> Url {
    let mut url = certificate_url.clone();
    {
        let mut query = url.query_pairs_mut();
        for name in names.names() {
            query.append_pair("domain", name.as_str());
        }
        match ask {
            Ask::Server(Some(key_type)) => {
                query.append_pair("keyType", key_type.as_str());
            }
            Ask::Server(None) => {}
            Ask::Local { spki_sha256, .. } | Ask::Rotation { spki_sha256, .. } => {
                query.append_pair("spkiSha256", spki_sha256);
            }
        }
    }
    url
}

/// The POST body: `{"domains": [...]}` with `"keyType"` (server's key) or `"csr"` and maybe
/// `"replaces"` (client's key), never `keyType` with `csr`.
fn post_body(names: &NameSet, ask: Ask<'_>) -> serde_json::Value {
    let domains: Vec<&str> = names.names().iter().map(DomainName::as_str).collect();
    let mut body = serde_json::json!({ "domains": domains });
    match ask {
        Ask::Server(Some(key_type)) => body["keyType"] = key_type.as_str().into(),
        Ask::Server(None) => {}
        Ask::Local { csr, .. } => body["csr"] = csr.into(),
        Ask::Rotation { csr, replaces, .. } => {
            body["csr"] = csr.into();
            if let Some(replaces) = replaces {
                body["replaces"] = replaces.into();
            }
        }
    }
    body
}

fn out_of_time(call: &Call, wait: Duration) -> HttpError {
    HttpError::OutOfTime {
        call: call.clone(),
        wait,
    }
}

/// Reads a body of at most [`MAX_BODY_BYTES`].
async fn read_body(
    mut response: Response,
    call: &Call,
    deadline: Instant,
    wait: Duration,
) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .map_err(|_| out_of_time(call, wait))?
            .map_err(|e| HttpError::Read {
                call: call.clone(),
                source: e.without_url(),
            })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(HttpError::TooLarge { call: call.clone() });
        }
        body.extend_from_slice(&chunk);
    }
}

/// The server's error body, `{"code": "...", "message": "..."}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

/// A refusal: request, status, the server's code and message, and `Retry-After`.
fn refusal(call: Call, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> HttpError {
    let said = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => ServerSaid::Error {
            code: sanitize(&error.code),
            message: sanitize(&error.message),
        },
        Err(_) if body.is_empty() => ServerSaid::Nothing,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let mut text = sanitize(text.trim());
            if text.len() > 200 {
                let cut = (0..=200)
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                text.truncate(cut);
                text.push_str("...");
            }
            ServerSaid::Other(text)
        }
    };
    HttpError::Refused {
        call,
        status,
        said,
        retry_after: retry_after(headers),
    }
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 section 10.2.3), at least one second.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = header_text(headers, &RETRY_AFTER)?;
    let delay = match text.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(text.trim())
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    };
    Some(delay.max(Duration::from_secs(1)))
}

fn header_text(headers: &HeaderMap, name: &reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Control characters (terminal escapes, newlines) in what the server says become spaces, so
/// the message stays one harmless line.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A failed request in the words an operator needs: a refused TLS certificate with the flags
/// that fix it, a connection failure with its innermost cause, anything else with its chain.
fn describe(error: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut innermost = error.to_string();
    while let Some(err) = source {
        match rustls_error(err) {
            Some(rustls::Error::InvalidCertificate(problem)) => {
                return format!(
                    "the server's certificate is not trusted ({problem:?}): give its CA with --ca-file FILE, or pin it with --pin-sha256 HEX"
                );
            }
            Some(rustls::Error::Other(other)) => return format!("TLS: {other}"),
            Some(tls) => return format!("TLS handshake failed: {tls}"),
            None => {}
        }
        innermost = err.to_string();
        source = err.source();
    }
    if error.is_connect() {
        return format!("cannot connect: {innermost}");
    }
    error_chain(error)
}

/// The rustls error in `err`, looking inside nested `io::Error`s: hyper-util hands it up as
/// an io::Error in an io::Error, and `io::Error::source` skips the error it wraps.
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = err;
    loop {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = current.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// An error and its sources, joined by `: `, each said once.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(err) = source {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    #[test]
    fn retry_after_forms() {
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(90));
        let cases = [
            ("7", Some(7)),
            ("0", Some(1)),
            ("Wed, 21 Oct 2015 07:28:00 GMT", Some(1)),
            ("soon", None),
        ];
        for (value, want) in cases {
            let got = retry_after(&headers(&[("retry-after", value)])).map(|d| d.as_secs());
            assert_eq!(got, want, "{value}");
        }
        let got = retry_after(&headers(&[("retry-after", &later)])).expect("a date");
        assert!((85..=90).contains(&got.as_secs()), "{got:?}");
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    fn call(method: Method) -> Call {
        Call::new(
            method,
            &Url::parse("https://h.example/api/certificate").expect("URL"),
        )
    }

    /// The line `refusal` prints.
    fn refusal(method: Method, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> String {
        super::refusal(call(method), status, headers, body).to_string()
    }

    #[test]
    fn a_client_key_is_asked_for_by_its_hash_and_posted_as_a_csr() {
        let base = Url::parse("https://h.example/api/certificate").expect("URL");
        let names = NameSet::parse(&["b.example.com", "a.example.com"]).expect("names");
        let hash = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
        let keep = Ask::Local {
            csr: "MIIB",
            spki_sha256: hash,
        };
        let rotate = Ask::Rotation {
            csr: "MIIC",
            spki_sha256: hash,
            replaces: Some("old-hash"),
        };
        let server = Ask::Server(Some(KeyType::Rsa2048));
        let cases = [
            (
                server,
                "domain=a.example.com&domain=b.example.com&keyType=rsa-2048",
                serde_json::json!({"domains": ["a.example.com", "b.example.com"], "keyType": "rsa-2048"}),
            ),
            (
                keep,
                &format!("domain=a.example.com&domain=b.example.com&spkiSha256={hash}") as &str,
                serde_json::json!({"domains": ["a.example.com", "b.example.com"], "csr": "MIIB"}),
            ),
            (
                rotate,
                &format!("domain=a.example.com&domain=b.example.com&spkiSha256={hash}"),
                serde_json::json!({
                    "domains": ["a.example.com", "b.example.com"],
                    "csr": "MIIC",
                    "replaces": "old-hash",
                }),
            ),
        ];
        for (ask, query, body) in cases {
            assert_eq!(
                query_url(&base, &names, ask).query(),
                Some(query),
                "{ask:?}"
            );
            assert_eq!(post_body(&names, ask), body, "{ask:?}");
        }
        let first = Ask::Rotation {
            csr: "MIIC",
            spki_sha256: hash,
            replaces: None,
        };
        assert_eq!(post_body(&names, first).get("replaces"), None);
    }

    #[test]
    fn the_key_mode_codes_say_what_to_do() {
        let cases = [
            ("csr_required", StatusCode::BAD_REQUEST, "use --key local"),
            (
                "csr_not_allowed",
                StatusCode::BAD_REQUEST,
                "use --key server",
            ),
            (
                "client_key_limit",
                StatusCode::CONFLICT,
                "as many client keys",
            ),
        ];
        for (code, status, want) in cases {
            let body = format!(r#"{{"code":"{code}","message":"m"}}"#);
            let line = refusal(Method::POST, status, &HeaderMap::new(), body.as_bytes());
            assert!(line.contains(&format!("{code}: m; ")), "{line}");
            assert!(line.contains(want), "{line}");
        }
        let other = br#"{"code":"not_found","message":"m"}"#;
        let line = refusal(Method::GET, StatusCode::NOT_FOUND, &HeaderMap::new(), other);
        assert!(line.ends_with("not_found: m"), "{line}");
    }

    #[test]
    fn refusals_name_status_code_and_message_on_one_line() {
        let json = br#"{"code":"unauthorized","message":"bad key\n\u001b[31mred"}"#;
        let line = refusal(
            Method::GET,
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            json,
        );
        assert_eq!(
            line,
            "GET https://h.example/api/certificate: 401 Unauthorized: unauthorized: bad key  [31mred"
        );

        let limited = headers(&[("retry-after", "300")]);
        let body = br#"{"code":"rate_limited","message":"slow down"}"#;
        let line = refusal(Method::POST, StatusCode::TOO_MANY_REQUESTS, &limited, body);
        assert!(
            line.ends_with("rate_limited: slow down (the server says retry after 5m)"),
            "{line}"
        );

        let html = "<html>".repeat(100);
        let line = refusal(
            Method::GET,
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            html.as_bytes(),
        );
        assert!(
            line.contains("not certfleet's JSON error: <html>"),
            "{line}"
        );
        assert!(line.len() < 300, "{line}");
        let line = refusal(Method::GET, StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"");
        assert!(line.ends_with("502 Bad Gateway: no body"), "{line}");
    }
}
