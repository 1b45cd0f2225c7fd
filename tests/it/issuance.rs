//! End to end against a real Pebble: certificates issued over HTTP-01 through the API, stored in
//! SQLite, and the CA's failures turned into the API's errors.

use std::time::{Duration, Instant};

use rcgen::PublicKeyData;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use futures_util::future::join_all;

use crate::common;
use common::service::{ADMIN_KEY, FLEET_A_KEY, Service, json};
use common::{Pebble, PebbleOptions, RateLimitProxy};

const CERT: &str = "/api/certificate";

/// The PEM blocks of a bundle, as DER.
fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates")
}

/// Checks a success body the way a client would: the chain verifies against Pebble's root for
/// every requested name, and the private key belongs to the leaf.
async fn check_certificate(pebble: &Pebble, body: &Value, names: &[&str]) {
    let chain = pem_certs(body["certificate"].as_str().expect("certificate"));
    let issuer = pem_certs(body["issuerCert"].as_str().expect("issuerCert"));
    assert!(chain.len() >= 2, "leaf and chain expected");
    assert_eq!(
        &chain[1..],
        &issuer[..],
        "issuerCert is the chain without the leaf"
    );
    let root_pem = pebble.root_pem().await;
    let root = pem_certs(&root_pem).remove(0);
    let anchors = [webpki::anchor_from_trusted_cert(&root).expect("Pebble root as anchor")];
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).expect("leaf parses");
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &issuer,
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .expect("the chain verifies against Pebble's root");
    for name in names {
        let server_name = ServerName::try_from(*name).expect("server name");
        leaf.verify_is_valid_for_subject_name(&server_name)
            .unwrap_or_else(|e| panic!("leaf not valid for {name}: {e:?}"));
    }
    let mut wanted: Vec<String> = names.iter().map(ToString::to_string).collect();
    wanted.sort();
    assert_eq!(
        common::san_dns_names(&chain[0]),
        wanted,
        "exactly the requested names"
    );

    let key = rcgen::KeyPair::from_pem(body["privateKey"].as_str().expect("privateKey"))
        .expect("key parses");
    let (_, parsed) = X509Certificate::from_der(&chain[0]).expect("leaf parses");
    assert_eq!(
        parsed.public_key().raw,
        key.subject_public_key_info().as_slice(),
        "key matches the leaf"
    );
    let mut sorted = wanted.clone();
    sorted.sort();
    assert_eq!(body["domain"], sorted[0].as_str());
    assert_eq!(body["domains"], json!(sorted));
    for field in ["notBefore", "notAfter", "renewAfter"] {
        let text = body[field].as_str().unwrap_or_default();
        assert!(
            text.ends_with('Z') && text.contains('T'),
            "{field} is RFC 3339: {text}"
        );
    }
}

#[tokio::test]
async fn issues_a_verified_multi_name_certificate_then_serves_it_cached() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let names = ["www.a.example.test", "a.example.test"];

    let response = service
        .post(CERT, FLEET_A_KEY, json!({"domains": names}))
        .await;
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let first = json(response).await;
    assert_eq!(first["cached"], false);
    check_certificate(&pebble, &first, &names).await;
    assert_eq!(pebble.orders_count(), 1);
    assert_eq!(pebble.issued_count(), 1);

    // Same names in another order and case: the same identity, served from the store.
    let again = json(
        service
            .post(
                CERT,
                FLEET_A_KEY,
                json!({"domains": ["A.example.test", "www.a.example.test."]}),
            )
            .await,
    )
    .await;
    assert_eq!(again["cached"], true);
    assert_eq!(again["certificate"], first["certificate"]);
    assert_eq!(
        pebble.orders_count(),
        1,
        "no new order for a cached certificate"
    );

    let query = format!("{CERT}?domain=a.example.test&domain=www.a.example.test");
    let get = service.get(&query, FLEET_A_KEY).await;
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["etag"].to_str().expect("etag"), etag);
    let unchanged = service
        .client()
        .get(format!("{}{query}", service.base))
        .header("Authorization", format!("APIKey {FLEET_A_KEY}"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional GET");
    assert_eq!(unchanged.status(), 304);
    assert_eq!(
        service.count_rows("http01_tokens").await,
        0,
        "challenge tokens removed"
    );
    assert_eq!(service.count_rows("acme_accounts").await, 1);
}

#[tokio::test]
async fn concurrent_requests_for_one_name_set_share_one_order() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let requests =
        (0..20).map(|_| service.post(CERT, ADMIN_KEY, json!({"domain": "shared.example.test"})));
    let responses = join_all(requests).await;
    let mut serials = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        let body = json(response).await;
        serials.push(
            body["certificate"]
                .as_str()
                .expect("certificate")
                .to_owned(),
        );
    }
    serials.dedup();
    assert_eq!(serials.len(), 1, "every client got the same certificate");
    assert_eq!(pebble.orders_count(), 1, "one ACME order for 20 requests");
    assert_eq!(pebble.issued_count(), 1);
    assert_eq!(service.app.api.certs.issuer().orders_created(), 1);
}

#[tokio::test]
async fn distinct_name_sets_are_issued_in_parallel() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    // Warm up the account so both measurements are orders only.
    let started = Instant::now();
    assert_eq!(
        service
            .post(CERT, ADMIN_KEY, json!({"domain": "warm.example.test"}))
            .await
            .status(),
        200
    );
    let started_one = Instant::now();
    assert_eq!(
        service
            .post(CERT, ADMIN_KEY, json!({"domain": "one.example.test"}))
            .await
            .status(),
        200
    );
    let one = started_one.elapsed();

    let started_all = Instant::now();
    let requests = (0..20).map(|i| {
        service.post(
            CERT,
            ADMIN_KEY,
            json!({"domain": format!("n{i}.example.test")}),
        )
    });
    for response in join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    let twenty = started_all.elapsed();
    assert_eq!(pebble.issued_count(), 22);
    // Serial issuance would take 20x; parallel work must be far below (benchmarks measure it).
    assert!(
        twenty < one * 10,
        "20 parallel issuances took {twenty:?}, one took {one:?} (first with account: {:?})",
        started.elapsed()
    );
}

#[tokio::test]
async fn wrong_key_and_foreign_names_are_refused() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let response = service
        .post(
            CERT,
            "not-a-key-not-a-key-not-a-key-not-a-key",
            json!({"domain": "a.example.test"}),
        )
        .await;
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("APIKey")
    );
    assert_eq!(json(response).await["code"], "unauthorized");

    let response = service
        .post(
            CERT,
            FLEET_A_KEY,
            json!({"domains": ["a.example.test", "b.example.test"]}),
        )
        .await;
    assert_eq!(response.status(), 403);
    let body = json(response).await;
    assert_eq!(body["code"], "domain_not_allowed");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("b.example.test")
    );
    assert_eq!(pebble.orders_count(), 0, "refused requests place no order");
}

#[tokio::test]
async fn a_blocked_name_is_domain_rejected() {
    let pebble = Pebble::start(PebbleOptions {
        blocklist: vec!["blocked.example.test".to_owned()],
        ..Default::default()
    })
    .await;
    let service = Service::start(&pebble).await;
    let response = service
        .post(CERT, ADMIN_KEY, json!({"domain": "blocked.example.test"}))
        .await;
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["code"], "domain_rejected");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("rejectedIdentifier"),
        "{body}"
    );
}

#[tokio::test]
async fn an_unanswerable_http01_challenge_is_validation_failed() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    // Pebble's validator will dial 127.0.0.2, where nothing listens.
    pebble.add_a("unreachable.example.test", "127.0.0.2").await;
    let service = Service::start(&pebble).await;
    let response = service
        .post(
            CERT,
            ADMIN_KEY,
            json!({"domain": "unreachable.example.test"}),
        )
        .await;
    assert_eq!(response.status(), 502);
    let body = json(response).await;
    assert_eq!(body["code"], "validation_failed");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("unreachable.example.test") && message.contains("http-01"),
        "{message}"
    );
    assert_eq!(
        service.count_rows("http01_tokens").await,
        0,
        "failed orders are cleaned up too"
    );
}

#[tokio::test]
async fn a_ca_rate_limit_is_429_with_retry_after() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let proxy = RateLimitProxy::start(&pebble, 1234).await;
    let directory = proxy.directory_url();
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml.replace(&pebble.directory_url(), &directory)
    })
    .await;
    let response = service
        .post(CERT, ADMIN_KEY, json!({"domain": "limited.example.test"}))
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1234");
    let body = json(response).await;
    assert_eq!(body["code"], "rate_limited");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("too many new orders"),
        "{body}"
    );
    assert_eq!(proxy.rejected(), 1);
}

#[tokio::test]
async fn an_eab_only_ca_is_served_with_acme_eab() {
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let pebble = Pebble::start(PebbleOptions {
        eab_keys: vec![("kid-1".to_owned(), hmac.to_owned())],
        ..Default::default()
    })
    .await;
    let without = Service::start(&pebble).await;
    let response = without
        .post(CERT, ADMIN_KEY, json!({"domain": "eab.example.test"}))
        .await;
    assert_eq!(response.status(), 502);
    let body = json(response).await;
    assert_eq!(body["code"], "ca_error");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("externalAccountRequired"),
        "{body}"
    );
    without.stop().await;

    let eab = format!("  eab:\n    kid: kid-1\n    hmacKey: \"{hmac}\"\n");
    let with = Service::start_with(&pebble, "30s", |yaml| {
        yaml.replace("  email:", &format!("{eab}  email:"))
    })
    .await;
    let response = with
        .post(CERT, ADMIN_KEY, json!({"domain": "eab.example.test"}))
        .await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

#[tokio::test]
async fn a_slow_issuance_answers_202_and_finishes_in_the_background() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start_with(&pebble, "1ms", |yaml| yaml).await;
    let response = service
        .post(
            CERT,
            ADMIN_KEY,
            json!({"domain": "slow.example.test", "keyType": "rsa-2048"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["retry-after"], "5");
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert_eq!(
        location,
        "/api/certificate?domain=slow.example.test&keyType=rsa-2048"
    );

    // A client that gave up does not cancel the order: the certificate appears at Location.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = service.get(&location, ADMIN_KEY).await;
        match response.status().as_u16() {
            200 => {
                let body = json(response).await;
                check_certificate(&pebble, &body, &["slow.example.test"]).await;
                assert!(
                    body["privateKey"]
                        .as_str()
                        .expect("key")
                        .contains("BEGIN PRIVATE KEY")
                );
                break;
            }
            202 => assert!(Instant::now() < deadline, "issuance never finished"),
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pebble.orders_count(), 1);
    // The ECDSA identity of the same names is another certificate.
    let missing = service
        .get("/api/certificate?domain=slow.example.test", ADMIN_KEY)
        .await;
    assert_eq!(missing.status(), 404);
    assert_eq!(json(missing).await["code"], "not_found");
}

#[tokio::test]
async fn forced_renewal_issues_a_new_certificate_once_per_hour() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let body = json!({"domain": "renew.example.test"});
    let first = json(service.post(CERT, ADMIN_KEY, body.clone()).await).await;
    let renewed = service
        .post("/api/certificate/renew", ADMIN_KEY, body.clone())
        .await;
    assert_eq!(renewed.status(), 200);
    let renewed = json(renewed).await;
    assert_eq!(renewed["cached"], false);
    assert_ne!(renewed["certificate"], first["certificate"]);
    assert_ne!(
        renewed["privateKey"], first["privateKey"],
        "a fresh key per certificate"
    );
    assert_eq!(pebble.issued_count(), 2);

    let again = service
        .post("/api/certificate/renew", ADMIN_KEY, body.clone())
        .await;
    assert_eq!(again.status(), 429);
    let retry: u64 = again.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((3500..=3600).contains(&retry), "{retry}");
    assert_eq!(json(again).await["code"], "renew_too_soon");
    // The renewed certificate is what POST now returns.
    let current = json(service.post(CERT, ADMIN_KEY, body.clone()).await).await;
    assert_eq!(current["certificate"], renewed["certificate"]);
    assert_eq!(pebble.issued_count(), 2);
}

#[tokio::test]
async fn the_account_is_created_once_and_reused_after_a_restart() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let yaml = common::service::base_yaml(&pebble, &db_url, "30s");
    let keep = tempfile::tempdir().expect("tempdir");
    let first = Service::start_yaml(&yaml, keep, db_url.clone()).await;
    assert_eq!(
        first
            .post(CERT, ADMIN_KEY, json!({"domain": "one.example.test"}))
            .await
            .status(),
        200
    );
    first.stop().await;
    let second = Service::start_yaml(&yaml, tempfile::tempdir().expect("tempdir"), db_url).await;
    assert_eq!(
        second
            .post(CERT, ADMIN_KEY, json!({"domain": "two.example.test"}))
            .await
            .status(),
        200
    );
    // The stored certificate survived the restart too.
    let cached = json(
        second
            .post(CERT, ADMIN_KEY, json!({"domain": "one.example.test"}))
            .await,
    )
    .await;
    assert_eq!(cached["cached"], true);
    assert_eq!(second.count_rows("acme_accounts").await, 1);
    assert_eq!(
        pebble.log().matches("There are now 1 accounts").count(),
        1,
        "one account registered"
    );
    let metadata = std::fs::metadata(dir.path().join("certfleet.db")).expect("database file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        metadata.permissions().mode() & 0o777,
        0o600,
        "the database file is private"
    );
}
