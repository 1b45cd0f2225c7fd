//! `acme.fallback` against two real Pebbles: the second CA issues when the primary is down, and
//! is never asked when the primary refuses the name itself.

use serde_json::{Value, json};

use crate::common;
use common::service::{ADMIN_KEY, Service, json};
use common::{Pebble, PebbleOptions};

const CERT: &str = "/api/certificate";

/// certfleet on `primary`, with `fallback` as `acme.fallback` (both validate HTTP-01 on the
/// same certfleet port).
async fn service(primary: &Pebble, fallback: &Pebble) -> Service {
    let section = format!(
        "  fallback:\n    directoryUrl: \"{}\"\n    caCertificates: \"{}\"\n",
        fallback.directory_url(),
        fallback.ca().ca_pem_path().display()
    );
    Service::start_with(primary, "30s", |yaml| {
        let email = "  email: \"ops@example.test\"\n";
        assert!(yaml.contains(email), "the base config changed:\n{yaml}");
        yaml.replace(email, &format!("{email}{section}"))
    })
    .await
}

fn inventory_ca(list: &Value, name: &str) -> Value {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {list}"))
        .iter()
        .find(|item| item["names"] == json!([name]))
        .unwrap_or_else(|| panic!("{name} not in {list}"))["ca"]
        .clone()
}

#[tokio::test]
async fn with_the_primary_down_a_new_certificate_comes_from_the_fallback() {
    let primary = Pebble::start(PebbleOptions::default()).await;
    let fallback = Pebble::start(PebbleOptions {
        http_port: Some(primary.http_port()),
        ..PebbleOptions::default()
    })
    .await;
    let service = service(&primary, &fallback).await;

    let first = service
        .post(CERT, ADMIN_KEY, json!({"domain": "up.example.test"}))
        .await;
    assert_eq!(first.status(), 200);
    assert_eq!(primary.issued_count(), 1);
    assert_eq!(fallback.orders_count(), 0, "the primary answered");
    let primary_directory = primary.directory_url();
    drop(primary);

    let response = service
        .post(CERT, ADMIN_KEY, json!({"domain": "down.example.test"}))
        .await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 200, "{body}\n{}", fallback.log());
    assert_eq!(fallback.issued_count(), 1);
    // Signed by the fallback's intermediate (each Pebble makes its own at start).
    let intermediate = fallback.intermediate_pem().await;
    assert_eq!(
        body["issuerCert"].as_str().map(str::trim),
        Some(intermediate.trim()),
        "{body}"
    );

    let list = json(service.get("/api/certificates", ADMIN_KEY).await).await;
    assert_eq!(
        inventory_ca(&list, "down.example.test"),
        json!(fallback.directory_url())
    );
    assert_eq!(
        inventory_ca(&list, "up.example.test"),
        json!(primary_directory)
    );
}

#[tokio::test]
async fn a_name_the_primary_refuses_is_not_tried_at_the_fallback() {
    let primary = Pebble::start(PebbleOptions {
        blocklist: vec!["blocked.example.test".to_owned()],
        ..PebbleOptions::default()
    })
    .await;
    let fallback = Pebble::start(PebbleOptions {
        http_port: Some(primary.http_port()),
        ..PebbleOptions::default()
    })
    .await;
    let service = service(&primary, &fallback).await;
    let response = service
        .post(CERT, ADMIN_KEY, json!({"domain": "blocked.example.test"}))
        .await;
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["code"], "domain_rejected", "{body}");
    assert_eq!(
        fallback.orders_count(),
        0,
        "the name's own fault: no fallback"
    );
}
