//! The API's answers to bad input and bad credentials, over a real socket. No CA is involved:
//! every request here is refused before an order could be placed.

mod common;

use serde_json::{Value, json};

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

async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = json(response).await;
    assert_eq!(body["code"], code, "{body}");
    assert!(
        !body["message"].as_str().unwrap_or_default().is_empty(),
        "{body}"
    );
    body
}

async fn raw_post(
    service: &Service,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = service
        .client()
        .post(format!("{}{CERT}", service.base))
        .header("Authorization", format!("APIKey {ADMIN_KEY}"))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    request.send().await.expect("POST reaches certfleet")
}

#[tokio::test]
async fn bad_names_are_400_invalid_domain() {
    let service = service().await;
    let long = format!("{}.example.com", "a".repeat(290));
    let cases = [
        json!({"domain": "127.0.0.1"}),
        json!({"domain": "::1"}),
        json!({"domain": "a..b.com"}),
        json!({"domain": long}),
        json!({"domain": "under_score.example.com"}),
        json!({"domains": ["ok.example.com", "bad..example.com"]}),
        json!({"domains": []}),
    ];
    for body in cases {
        let response = service.post(CERT, ADMIN_KEY, body.clone()).await;
        let status = response.status().as_u16();
        let body_json = json(response).await;
        assert_eq!(status, 400, "{body} -> {body_json}");
        let code = body_json["code"].as_str().expect("code");
        assert!(
            code == "invalid_domain" || code == "invalid_body",
            "{body} -> {body_json}"
        );
    }
    let response = service
        .post(CERT, ADMIN_KEY, json!({"domain": "a..b.com"}))
        .await;
    let body = expect_error(response, 400, "invalid_domain").await;
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("a..b.com")
    );
}

#[tokio::test]
async fn malformed_bodies_are_json_errors() {
    let service = service().await;
    let body = expect_error(
        raw_post(&service, Some("application/json"), "{\"domain\": ").await,
        400,
        "invalid_body",
    )
    .await;
    assert!(body["message"].as_str().expect("message").contains("JSON"));
    expect_error(
        raw_post(&service, Some("application/json"), "[1, 2]").await,
        400,
        "invalid_body",
    )
    .await;
    expect_error(
        raw_post(
            &service,
            Some("application/json"),
            "{\"domian\": \"a.example.com\"}",
        )
        .await,
        400,
        "invalid_body",
    )
    .await;
    expect_error(
        raw_post(&service, Some("application/json"), "{}").await,
        400,
        "invalid_body",
    )
    .await;
    expect_error(
        raw_post(&service, None, "{\"domain\": \"a.example.com\"}").await,
        415,
        "unsupported_media_type",
    )
    .await;
    expect_error(
        raw_post(
            &service,
            Some("text/plain"),
            "{\"domain\": \"a.example.com\"}",
        )
        .await,
        415,
        "unsupported_media_type",
    )
    .await;
    let huge = format!("{{\"domain\": \"{}\"}}", "a".repeat(100_000));
    expect_error(
        raw_post(&service, Some("application/json"), huge).await,
        413,
        "body_too_large",
    )
    .await;
    let response = service
        .post(
            CERT,
            ADMIN_KEY,
            json!({"domain": "a.example.com", "keyType": "dsa-1024"}),
        )
        .await;
    let body = expect_error(response, 400, "invalid_body").await;
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("ecdsa-p256"),
        "{body}"
    );
    let response = service
        .post(
            CERT,
            ADMIN_KEY,
            json!({"domain": "a.example.com", "challenge": "tls-alpn-01"}),
        )
        .await;
    expect_error(response, 400, "invalid_body").await;
}

#[tokio::test]
async fn wildcards_and_dns01_need_a_dns_provider() {
    let service = service().await;
    let response = service
        .post(
            CERT,
            ADMIN_KEY,
            json!({"domains": ["example.com", "*.example.com"]}),
        )
        .await;
    let body = expect_error(response, 400, "invalid_domain").await;
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("DNS-01"),
        "{body}"
    );
    let response = service
        .post(
            CERT,
            ADMIN_KEY,
            json!({"domain": "example.com", "challenge": "dns-01"}),
        )
        .await;
    expect_error(response, 400, "invalid_body").await;
}

#[tokio::test]
async fn credentials_are_checked_before_anything_else() {
    let service = service().await;
    let missing = service
        .client()
        .post(format!("{}{CERT}", service.base))
        .json(&json!({"domain": "a.example.test"}))
        .send()
        .await
        .expect("POST");
    assert!(missing.headers().contains_key("www-authenticate"));
    expect_error(missing, 401, "unauthorized").await;
    let wrong = service
        .post(
            CERT,
            "wrong-key-wrong-key-wrong-key-wrong-key",
            json!({"domain": "a.example.test"}),
        )
        .await;
    expect_error(wrong, 401, "unauthorized").await;
    // A bearer token reaches no configured method yet: 401, not 500.
    let bearer = service
        .client()
        .get(format!("{}{CERT}?domain=a.example.test", service.base))
        .header("Authorization", "Bearer eyJhbGciOiJub25lIn0.e30.")
        .send()
        .await
        .expect("GET");
    expect_error(bearer, 401, "unauthorized").await;
    // Bad credentials win over a bad body: nothing is parsed for strangers.
    let stranger = service
        .client()
        .post(format!("{}{CERT}", service.base))
        .header("Authorization", "APIKey nope")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("POST");
    expect_error(stranger, 401, "unauthorized").await;
    let foreign = service
        .post(CERT, FLEET_A_KEY, json!({"domain": "b.example.test"}))
        .await;
    let body = expect_error(foreign, 403, "domain_not_allowed").await;
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("fleet-a")
    );
    let foreign_get = service
        .get(
            "/api/certificate?domain=a.example.test&domain=example.test",
            FLEET_A_KEY,
        )
        .await;
    expect_error(foreign_get, 403, "domain_not_allowed").await;
}

#[tokio::test]
async fn the_le_cert_server_single_key_form_still_works() {
    let key = "sixteen-chars-ok!";
    let service = service_with_auth(&format!("  psk:\n    key: \"{key}\"\n")).await;
    let response = service
        .get("/api/certificate?domain=any.example.org", key)
        .await;
    expect_error(response, 404, "not_found").await;
    let response = service
        .get(
            "/api/certificate?domain=any.example.org",
            "sixteen-chars-no!",
        )
        .await;
    expect_error(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn oversized_headers_are_431() {
    let service = service().await;
    let big = "x".repeat(20 * 1024);
    let response = service
        .client()
        .get(format!("{}/healthz", service.base))
        .header("X-Padding", big)
        .send()
        .await
        .expect("GET");
    expect_error(response, 431, "headers_too_large").await;
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
    let response = service
        .client()
        .get(format!("{}/nope", service.base))
        .send()
        .await
        .expect("GET");
    expect_error(response, 404, "not_found").await;
    let response = service
        .client()
        .delete(format!("{}{CERT}", service.base))
        .send()
        .await
        .expect("DELETE");
    expect_error(response, 405, "method_not_allowed").await;
    let response = service.get("/api/certificate", ADMIN_KEY).await;
    expect_error(response, 400, "invalid_body").await;
    let response = service
        .get("/api/certificate?domain=a.example.com&color=red", ADMIN_KEY)
        .await;
    expect_error(response, 400, "invalid_body").await;
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
    let response = service
        .post(CERT, ADMIN_KEY, json!({"domain": "a.example.com"}))
        .await;
    let body = expect_error(response, 502, "ca_error").await;
    assert!(
        body["message"].as_str().expect("message").contains("ACME"),
        "{body}"
    );
}
