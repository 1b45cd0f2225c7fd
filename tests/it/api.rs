//! The API's answers to bad input and bad credentials, over a real socket. No CA is involved:
//! every request here is refused before an order could be placed.
//!
//! Each test is a table of refusals: a request, the status and stable error code it must get (a
//! JSON body with a non-empty message), and what the message must mention. `refuse` runs a table
//! and names the failing row.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common;
use common::service::{ADMIN_KEY, FLEET_A_KEY, Service, json};

const CERT: &str = "/api/certificate";

/// certfleet with a directory nobody answers at: any issuance attempt would fail with 502.
async fn service() -> Service {
    service_with_auth(&format!(
        "  psk:\n    keys:\n      - name: admin\n        key: \"{ADMIN_KEY}\"\n      - name: fleet-a\n        key: \"{FLEET_A_KEY}\"\n        domains: [\"*.a.example.test\", \"a.example.test\"]\n"
    ))
    .await
}

async fn service_with_auth(auth: &str) -> Service {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let yaml = format!(
        "storage:\n  url: \"{db_url}\"\nacme:\n  directoryUrl: \"https://127.0.0.1:9/dir\"\nchallenges:\n  http01:\n    listen: \"127.0.0.1:0\"\nauth:\n{auth}"
    );
    Service::start_yaml(&yaml, dir, db_url).await
}

/// One request the API must refuse, and how.
#[derive(Debug)]
struct Refusal {
    method: Method,
    path: String,
    /// The `Authorization` header (`None`: no header at all).
    authorization: Option<String>,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    status: u16,
    code: &'static str,
    /// Text the message must contain.
    mentions: Option<&'static str>,
    /// A header the refusal must carry.
    carries: Option<&'static str>,
}

impl Refusal {
    /// `method path`, as the admin key, expected to get `status` with `code`.
    fn new(method: Method, path: &str, status: u16, code: &'static str) -> Refusal {
        Refusal {
            method,
            path: path.to_owned(),
            authorization: Some(format!("APIKey {ADMIN_KEY}")),
            headers: Vec::new(),
            body: None,
            status,
            code,
            mentions: None,
            carries: None,
        }
    }

    /// `POST /api/certificate` with a JSON body, as the admin key.
    fn post(body: &Value, status: u16, code: &'static str) -> Refusal {
        Refusal::new(Method::POST, CERT, status, code)
            .content_type("application/json")
            .raw_body(body.to_string())
    }

    /// `GET path`, as the admin key.
    fn get(path: &str, status: u16, code: &'static str) -> Refusal {
        Refusal::new(Method::GET, path, status, code)
    }

    fn raw_body(mut self, body: impl Into<String>) -> Refusal {
        self.body = Some(body.into());
        self
    }

    fn content_type(self, content_type: &str) -> Refusal {
        self.header("Content-Type", content_type)
    }

    fn header(mut self, name: &'static str, value: &str) -> Refusal {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// As this PSK instead of the admin key.
    fn key(self, key: &str) -> Refusal {
        self.authorization(&format!("APIKey {key}"))
    }

    fn authorization(mut self, header: &str) -> Refusal {
        self.authorization = Some(header.to_owned());
        self
    }

    fn anonymous(mut self) -> Refusal {
        self.authorization = None;
        self
    }

    fn mentioning(mut self, text: &'static str) -> Refusal {
        self.mentions = Some(text);
        self
    }

    fn carrying(mut self, header: &'static str) -> Refusal {
        self.carries = Some(header);
        self
    }

    /// Sends the request and checks the answer; `row` names it in a failure.
    async fn check(&self, service: &Service, row: usize) {
        let what = format!("row {row}: {} {}", self.method, self.path);
        let mut request = service.client().request(
            self.method.clone(),
            format!("{}{}", service.base, self.path),
        );
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        }
        let response = request.send().await.expect("the request reaches certfleet");
        let status = response.status().as_u16();
        if let Some(header) = self.carries {
            assert!(
                response.headers().contains_key(header),
                "{what}: no {header} header"
            );
        }
        let content_type = response.headers().get("content-type").cloned();
        let body = response.text().await.expect("a body");
        assert_eq!(
            (status, content_type.as_ref().and_then(|v| v.to_str().ok())),
            (self.status, Some("application/json")),
            "{what}: {body}"
        );
        let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(body["code"], self.code, "{what}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{what}: {body}");
        if let Some(text) = self.mentions {
            assert!(message.contains(text), "{what}: {text:?} not in {body}");
        }
    }
}

/// Checks every row of `table` against `service`.
async fn refuse(service: &Service, table: &[Refusal]) {
    for (row, refusal) in table.iter().enumerate() {
        refusal.check(service, row).await;
    }
}

#[tokio::test]
async fn bad_names_are_400_invalid_domain() {
    let service = service().await;
    let long = format!("{}.example.com", "a".repeat(290));
    refuse(
        &service,
        &[
            Refusal::post(&json!({"domain": "127.0.0.01"}), 400, "invalid_domain"),
            Refusal::post(&json!({"domain": "fe80::1%eth0"}), 400, "invalid_domain")
                .mentioning("zone"),
            // An address is an identifier, but no name pattern holds it, not even `*`.
            Refusal::post(&json!({"domain": "127.0.0.1"}), 403, "domain_not_allowed")
                .mentioning("127.0.0.1"),
            Refusal::post(&json!({"domain": "a..b.com"}), 400, "invalid_domain")
                .mentioning("a..b.com"),
            Refusal::post(&json!({"domain": long}), 400, "invalid_domain"),
            Refusal::post(
                &json!({"domain": "under_score.example.com"}),
                400,
                "invalid_domain",
            ),
            Refusal::post(
                &json!({"domains": ["ok.example.com", "bad..example.com"]}),
                400,
                "invalid_domain",
            )
            .mentioning("bad..example.com"),
            // No name at all is a body that does not say what it wants.
            Refusal::post(&json!({"domains": []}), 400, "invalid_body"),
        ],
    )
    .await;
}

#[tokio::test]
async fn malformed_bodies_are_json_errors() {
    let service = service().await;
    let raw = |content_type: Option<&str>, body: &str, status, code| {
        let refusal = Refusal::new(Method::POST, CERT, status, code).raw_body(body);
        match content_type {
            Some(content_type) => refusal.content_type(content_type),
            None => refusal,
        }
    };
    let json_type = Some("application/json");
    let huge = format!("{{\"domain\": \"{}\"}}", "a".repeat(100_000));
    refuse(
        &service,
        &[
            raw(json_type, "{\"domain\": ", 400, "invalid_body").mentioning("JSON"),
            raw(json_type, "[1, 2]", 400, "invalid_body"),
            raw(
                json_type,
                "{\"domian\": \"a.example.com\"}",
                400,
                "invalid_body",
            ),
            raw(json_type, "{}", 400, "invalid_body"),
            raw(
                None,
                "{\"domain\": \"a.example.com\"}",
                415,
                "unsupported_media_type",
            ),
            raw(
                Some("text/plain"),
                "{\"domain\": \"a.example.com\"}",
                415,
                "unsupported_media_type",
            ),
            raw(json_type, &huge, 413, "body_too_large"),
            Refusal::post(
                &json!({"domain": "a.example.com", "keyType": "dsa-1024"}),
                400,
                "invalid_body",
            )
            .mentioning("ecdsa-p256"),
            Refusal::post(
                &json!({"domain": "a.example.com", "challenge": "tls-alpn-01"}),
                400,
                "invalid_body",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn wildcards_and_dns01_need_a_dns_provider() {
    let service = service().await;
    refuse(
        &service,
        &[
            Refusal::post(
                &json!({"domains": ["example.com", "*.example.com"]}),
                400,
                "invalid_domain",
            )
            .mentioning("DNS-01"),
            Refusal::post(
                &json!({"domain": "example.com", "challenge": "dns-01"}),
                400,
                "invalid_body",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn credentials_are_checked_before_anything_else() {
    let service = service().await;
    let body = json!({"domain": "a.example.test"});
    refuse(
        &service,
        &[
            Refusal::post(&body, 401, "unauthorized")
                .anonymous()
                .carrying("www-authenticate"),
            Refusal::post(&body, 401, "unauthorized")
                .key("wrong-key-wrong-key-wrong-key-wrong-key"),
            // A bearer token reaches no configured method: 401, not 500.
            Refusal::get(
                &format!("{CERT}?domain=a.example.test"),
                401,
                "unauthorized",
            )
            .authorization("Bearer eyJhbGciOiJub25lIn0.e30."),
            // Bad credentials win over a bad body: nothing is parsed for strangers.
            Refusal::new(Method::POST, CERT, 401, "unauthorized")
                .authorization("APIKey nope")
                .content_type("application/json")
                .raw_body("{not json"),
            Refusal::post(
                &json!({"domain": "b.example.test"}),
                403,
                "domain_not_allowed",
            )
            .key(FLEET_A_KEY)
            .mentioning("fleet-a"),
            Refusal::get(
                &format!("{CERT}?domain=a.example.test&domain=example.test"),
                403,
                "domain_not_allowed",
            )
            .key(FLEET_A_KEY),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_le_cert_server_single_key_form_still_works() {
    let key = "sixteen-chars-ok!";
    let service = service_with_auth(&format!("  psk:\n    key: \"{key}\"\n")).await;
    let path = format!("{CERT}?domain=any.example.org");
    refuse(
        &service,
        &[
            // The key is accepted: there is just no such certificate yet.
            Refusal::get(&path, 404, "not_found").key(key),
            Refusal::get(&path, 401, "unauthorized").key("sixteen-chars-no!"),
        ],
    )
    .await;
}

#[tokio::test]
async fn oversized_headers_are_431() {
    let service = service().await;
    refuse(
        &service,
        &[Refusal::get("/healthz", 431, "headers_too_large")
            .anonymous()
            .header("X-Padding", &"x".repeat(20 * 1024))],
    )
    .await;
    // A 1 MB token is stopped by the server's header limit, never buffered and parsed.
    let token = "y".repeat(1024 * 1024);
    let response = service
        .client()
        .get(format!("{}{CERT}?domain=a.example.test", service.base))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(response.status(), 431),
        // hyper may close the connection while the client is still sending.
        Err(err) => assert!(
            err.is_request() || err.is_body() || err.is_connect(),
            "{err}"
        ),
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let service = service().await;
    refuse(
        &service,
        &[
            Refusal::get("/nope", 404, "not_found").anonymous(),
            Refusal::new(Method::PUT, CERT, 405, "method_not_allowed").anonymous(),
            Refusal::new(
                Method::DELETE,
                "/api/certificate/renew",
                405,
                "method_not_allowed",
            )
            .anonymous(),
            Refusal::get(CERT, 400, "invalid_body"),
            Refusal::get(
                &format!("{CERT}?domain=a.example.com&color=red"),
                400,
                "invalid_body",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn health_and_readiness() {
    let service = service().await;
    let live = service
        .client()
        .get(format!("{}/healthz", service.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(live.status(), 200);
    let ready = service
        .client()
        .get(format!("{}/readyz", service.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(ready.status(), 200);
    assert_eq!(json(ready).await["status"], "ready");
}

#[tokio::test]
async fn an_unreachable_ca_is_502_ca_error() {
    let service = service().await;
    refuse(
        &service,
        &[Refusal::post(&json!({"domain": "a.example.com"}), 502, "ca_error").mentioning("ACME")],
    )
    .await;
}
