//! The OpenAPI document at `GET /openapi.json` against the router that serves it, in-process
//! (`tower::ServiceExt::oneshot` on `api::router`): the document's operations are exactly the
//! routes, the certificate schema is exactly a real certificate body (issued by Pebble), and
//! every error code the API can answer with is in the document's enum.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use certfleet::error::ApiError;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common;
use common::service::{ADMIN_KEY, Service};
use common::{Pebble, PebbleOptions};

/// Every method a client could send; axum routes no other (CONNECT never reaches a route).
const METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::TRACE,
];

/// Paths near the real ones that must not be routed.
const UNDOCUMENTED_PATHS: [&str; 10] = [
    "/",
    "/api",
    "/api/",
    "/api/certificate/",
    "/api/certificates/",
    "/api/certificate/renew/now",
    "/healthz/",
    "/openapi.yaml",
    // Served on `server.metricsListen`, never on the API listener.
    "/metrics",
    "/no/such/route",
];

/// certfleet with a directory nobody answers at (as in tests/it/api.rs), plus `extra_yaml`.
async fn service(extra_yaml: &str) -> Service {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let yaml = format!(
        "storage:\n  url: \"{db_url}\"\nacme:\n  directoryUrl: \"https://127.0.0.1:9/dir\"\nchallenges:\n  http01:\n    listen: \"127.0.0.1:0\"\n{extra_yaml}auth:\n  psk:\n    keys:\n      - name: admin\n        key: \"{ADMIN_KEY}\"\n"
    );
    Service::start_yaml(&yaml, dir, db_url).await
}

/// One answer of the router, its body read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered a body that is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("APIKey {key}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).expect("a valid request"))
        .await
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("read the body")
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

async fn document(router: &Router) -> Value {
    let answer = send(router, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    answer.json()
}

/// Every `(METHOD, path)` operation of the document.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("a path item");
            METHODS
                .iter()
                .filter(|method| methods.contains_key(&method.as_str().to_lowercase()))
                .map(|method| (method.to_string(), path.clone()))
        })
        .collect()
}

/// The schema `name` of the document's components.
fn schema<'d>(document: &'d Value, name: &str) -> &'d Value {
    let schema = &document["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name} in the document");
    schema
}

/// The values of the enum schema `name`.
fn enum_values(document: &Value, name: &str) -> BTreeSet<String> {
    schema(document, name)["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("schema {name} has no enum"))
        .iter()
        .map(|value| value.as_str().expect("a string").to_owned())
        .collect()
}

/// The documented statuses of an operation.
fn statuses(document: &Value, method: &str, path: &str) -> BTreeSet<u16> {
    document["paths"][path][method.to_lowercase()]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} has no responses"))
        .keys()
        .map(|status| status.parse().expect("a numeric status"))
        .collect()
}

/// The response documented for `status` of an operation, references followed.
fn response<'d>(document: &'d Value, method: &str, path: &str, status: u16) -> &'d Value {
    let response = &document["paths"][path][method.to_lowercase()]["responses"][status.to_string()];
    match response["$ref"].as_str() {
        Some(reference) => resolve(document, reference),
        None => response,
    }
}

fn resolve<'d>(document: &'d Value, reference: &str) -> &'d Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("{reference} is not local"));
    document
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} does not resolve"))
}

/// Every `$ref` in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                found.push(reference.clone());
            }
            map.values().for_each(|value| references(value, found));
        }
        Value::Array(items) => items.iter().for_each(|value| references(value, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_json_served_without_credentials() {
    let service = service("").await;
    let router = certfleet::api::router(service.app.api.clone());
    let document = document(&router).await;

    let version = document["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(document["info"]["title"], "certfleet");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(document["info"]["license"]["identifier"], "Apache-2.0");
    let description = document["info"]["description"]
        .as_str()
        .expect("description");
    assert!(
        description.contains("GET /metrics") && description.contains("server.metricsListen"),
        "{description}"
    );

    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["APIKey"]["type"], "apiKey");
    assert_eq!(schemes["APIKey"]["in"], "header");
    assert_eq!(schemes["APIKey"]["name"], "Authorization");
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    for (method, path) in operations(&document) {
        let operation = &document["paths"][&path][method.to_lowercase()];
        let security = operation["security"].to_string();
        match path.starts_with("/api/") {
            true => assert_eq!(
                security, r#"[{"APIKey":[]},{"bearer":[]}]"#,
                "{method} {path}"
            ),
            false => assert_eq!(security, "null", "{method} {path} needs no credentials"),
        }
    }

    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(!found.is_empty());
    for reference in &found {
        resolve(&document, reference);
    }

    // The same bytes for every request: rendered once, with the router.
    let first = send(&router, Method::GET, "/openapi.json", None, None).await;
    let second = send(&router, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(first.body, second.body);
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes() {
    let service = service("").await;
    let router = certfleet::api::router(service.app.api.clone());
    let document = document(&router).await;

    let documented = operations(&document);
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/api/certificate"),
        ("POST", "/api/certificate"),
        ("POST", "/api/certificate/renew"),
        ("DELETE", "/api/certificate"),
        ("POST", "/api/certificate/revoke"),
        ("GET", "/api/certificates"),
        ("GET", "/api/certificates/{id}"),
        ("GET", "/api/events"),
        ("GET", "/api/servers/caddy"),
        ("GET", "/api/servers/traefik"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/openapi.json"),
    ]
    .into_iter()
    .map(|(method, path)| (method.to_owned(), path.to_owned()))
    .collect();
    assert_eq!(documented, expected);

    // What the fallbacks answer, to tell them from a handler's answer.
    let unknown = send(&router, Method::GET, "/no/such/route", None, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["code"], "not_found");
    let unknown_body = unknown.body;

    // Every documented operation is routed to its handler, which answers a documented status.
    for (method, path) in &documented {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let body = (method == Method::POST).then(|| json!({}));
        let answer = send(&router, method.clone(), path, None, body).await;
        assert_ne!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(
            !(answer.status == StatusCode::NOT_FOUND && answer.body == unknown_body),
            "{method} {path} reached the unknown-route fallback"
        );
        assert!(
            statuses(&document, method.as_str(), path).contains(&answer.status.as_u16()),
            "{method} {path} answered {}, which its documentation does not list",
            answer.status
        );
    }

    // Every other method on a documented path is 405.
    let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    for path in paths {
        let methods: BTreeSet<&str> = documented
            .iter()
            .filter(|(_, documented_path)| documented_path == path)
            .map(|(method, _)| method.as_str())
            .collect();
        for method in METHODS {
            if methods.contains(method.as_str()) {
                continue;
            }
            let answer = send(&router, method.clone(), path, None, None).await;
            if method == Method::HEAD && methods.contains("GET") {
                // RFC 9110 section 9.3.2: HEAD is GET without the body; axum answers it on
                // every GET route, and OpenAPI documents it through the GET.
                assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "HEAD {path}");
                continue;
            }
            assert_eq!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is not documented"
            );
            if method != Method::HEAD {
                assert_eq!(
                    answer.json()["code"],
                    "method_not_allowed",
                    "{method} {path}"
                );
            }
        }
    }

    // Every undocumented path is the unknown-route answer, whatever the method.
    for path in UNDOCUMENTED_PATHS {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            let answer = send(&router, method.clone(), path, Some(ADMIN_KEY), None).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(answer.body, unknown_body, "{method} {path}");
        }
    }

    // The health bodies are the documented schema.
    let health = schema(&document, "Health");
    for path in ["/healthz", "/readyz"] {
        let answer = send(&router, Method::GET, path, None, None).await;
        let keys: BTreeSet<String> = answer
            .json()
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, string_set(&health["required"]), "{path}");
    }
}

#[tokio::test]
async fn the_certificate_schema_is_the_body_of_a_real_certificate() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    // Waits 1 ms before answering 202: the issuance goes on, and is read back with GET.
    let service = Service::start_with(&pebble, "1ms", |yaml| yaml).await;
    let router = certfleet::api::router(service.app.api.clone());
    let document = document(&router).await;
    let codes = enum_values(&document, "ErrorCode");
    let cert_path = "/api/certificate";

    let names = json!({"domains": ["www.schema.example.test", "schema.example.test"]});
    let answer = send(
        &router,
        Method::POST,
        cert_path,
        Some(ADMIN_KEY),
        Some(names),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let code = answer.json()["code"].as_str().expect("code").to_owned();
    assert!(
        codes.contains(&code),
        "{code} is not in the document's ErrorCode"
    );
    let documented = response(&document, "POST", cert_path, 202);
    for name in ["Retry-After", "Location"] {
        assert!(answer.headers.contains_key(name), "202 without {name}");
        assert!(
            documented["headers"][name].is_object(),
            "{name} of 202 is not documented"
        );
    }
    let location = answer.headers[header::LOCATION]
        .to_str()
        .expect("Location")
        .to_owned();

    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let answer = send(&router, Method::GET, &location, Some(ADMIN_KEY), None).await;
        match answer.status {
            StatusCode::OK => break answer,
            StatusCode::ACCEPTED => {
                assert!(Instant::now() < deadline, "the issuance never finished");
            }
            other => panic!(
                "GET {location}: {other} {}",
                String::from_utf8_lossy(&answer.body)
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pebble.issued_count(), 1);

    let schema = schema(&document, "Certificate");
    let properties = schema["properties"].as_object().expect("properties");
    let body = answer.json();
    let body = body.as_object().expect("an object");
    let keys: BTreeSet<String> = body.keys().cloned().collect();
    let mut expected = string_set(&schema["required"]);
    // Optional in the schema: absent in CSR mode, where the client holds the key.
    expected.insert("privateKey".to_owned());
    assert_eq!(
        expected, keys,
        "required properties and privateKey vs the real body of a server-held key"
    );
    assert_eq!(body["keyMode"], "server");
    let mut documented = keys.clone();
    // Only a client-held key's body has it (tests/it/csr.rs checks that one).
    documented.insert("spkiSha256".to_owned());
    assert_eq!(
        properties.keys().cloned().collect::<BTreeSet<_>>(),
        documented,
        "properties vs the real body"
    );
    for (key, value) in body {
        let kind = match value {
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Bool(_) => "boolean",
            other => panic!("{key}: unexpected {other}"),
        };
        let property = match properties[key]["$ref"].as_str() {
            Some(path) => {
                let name = path
                    .strip_prefix("#/components/schemas/")
                    .expect("a schema");
                &document["components"]["schemas"][name]
            }
            None => &properties[key],
        };
        assert_eq!(property["type"], kind, "{key}");
    }
    assert_eq!(
        enum_values(&document, "KeyMode"),
        BTreeSet::from(["client".to_owned(), "server".to_owned()])
    );
    let documented = response(&document, "GET", cert_path, 200);
    assert!(documented["content"]["application/json"].is_object());
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    for name in ["ETag", "Cache-Control"] {
        assert!(answer.headers.contains_key(name), "200 without {name}");
        assert!(
            documented["headers"][name].is_object(),
            "{name} of 200 is not documented"
        );
    }

    // The same certificate, unchanged: 304 with its ETag, as documented.
    let etag = answer.headers[header::ETAG]
        .to_str()
        .expect("ETag")
        .to_owned();
    let request = Request::get(&location)
        .header(header::AUTHORIZATION, format!("APIKey {ADMIN_KEY}"))
        .header(header::IF_NONE_MATCH, etag)
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert!(response.headers().contains_key(header::ETAG));
    assert!(statuses(&document, "GET", cert_path).contains(&304));
}

#[tokio::test]
async fn every_error_code_is_in_the_document() {
    let service = service("").await;
    let router = certfleet::api::router(service.app.api.clone());
    let document = document(&router).await;
    let codes = enum_values(&document, "ErrorCode");
    let documented_statuses: BTreeSet<u16> = operations(&document)
        .iter()
        .flat_map(|(method, path)| statuses(&document, method, path))
        .collect();

    for err in ApiError::one_of_each() {
        let (status, code) = err.status_and_code();
        assert!(
            codes.contains(code),
            "{code} is not in the document's ErrorCode"
        );
        // 405 is the method fallback's, described in the document's description.
        if status != StatusCode::METHOD_NOT_ALLOWED {
            assert!(
                documented_statuses.contains(&status.as_u16()),
                "{status} ({code}) is answered by no documented operation"
            );
        }
    }
    // The two codes answered outside ApiError: 202 (checked on a real answer in the Pebble
    // test) and 503 from /readyz.
    for code in ["issuing", "not_ready"] {
        assert!(codes.contains(code), "{code}");
    }
}

#[tokio::test]
async fn the_documented_key_types_and_challenges_are_accepted() {
    // An RFC 2136 entry so that `dns-01` and `dns-account-01` have a provider, a
    // `dnsPersist` entry for `dns-persist-01`; nothing here reaches them: the CA is
    // unreachable, so every accepted request fails afterwards with 502 `ca_error`.
    let service = service(
        "  dns01:\n    - provider: rfc2136\n      zones: [\"example.test\"]\n      nameserver: \"127.0.0.1:9\"\n      tsigKeyName: k\n      tsigSecret: \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==\"\n  dnsPersist:\n    - names: [\"dns-persist-01.example.test\"]\n  tlsAlpn01:\n    listen: \"127.0.0.1:0\"\n",
    )
    .await;
    let router = certfleet::api::router(service.app.api.clone());
    let document = document(&router).await;
    let request = schema(&document, "CertificateRequest");
    assert_eq!(request["additionalProperties"], false);

    let mut bodies = Vec::new();
    for key_type in enum_values(&document, "KeyType") {
        bodies.push(json!({"domain": format!("{key_type}.example.test"), "keyType": key_type}));
    }
    for challenge in enum_values(&document, "Challenge") {
        bodies.push(json!({"domain": format!("{challenge}.example.test"), "challenge": challenge}));
    }
    assert_eq!(bodies.len(), 10);
    for body in bodies {
        let answer = send(
            &router,
            Method::POST,
            "/api/certificate",
            Some(ADMIN_KEY),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_GATEWAY,
            "{body}: {}",
            answer.json()
        );
        assert_eq!(answer.json()["code"], "ca_error", "{body}");
    }
    // A value outside the enums is refused before anything is attempted.
    for body in [
        json!({"domain": "x.example.test", "keyType": "ed25519"}),
        json!({"domain": "x.example.test", "challenge": "tls-alpn-02"}),
    ] {
        let answer = send(
            &router,
            Method::POST,
            "/api/certificate",
            Some(ADMIN_KEY),
            Some(body.clone()),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.json()["code"], "invalid_body", "{body}");
    }
}

fn string_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|item| item.as_str().expect("a string").to_owned())
        .collect()
}
