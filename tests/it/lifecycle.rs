//! The certificate lifecycle against a real Pebble: renewal by the worker alone, failure
//! back-off, private keys sealed at rest and key rotation, the ACME profile check.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common;
use common::service::{ADMIN_KEY, Service, base_yaml, json};
use common::{Pebble, PebbleOptions};

const CERT: &str = "/api/certificate";
const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

async fn get(service: &Service, name: &str) -> (String, Value) {
    let response = service
        .get(&format!("{CERT}?domain={name}"), ADMIN_KEY)
        .await;
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    (etag, json(response).await)
}

#[tokio::test]
async fn the_worker_renews_short_certificates_without_any_client() {
    let pebble = Pebble::start(PebbleOptions {
        validity_secs: Some(30),
        ..Default::default()
    })
    .await;
    let service = Service::start(&pebble).await;
    let names = ["r1.example.test", "r2.example.test", "r3.example.test"];
    let mut before = Vec::new();
    for name in names {
        assert_eq!(
            service
                .post(CERT, ADMIN_KEY, json!({"domain": name}))
                .await
                .status(),
            200
        );
        before.push(get(&service, name).await);
    }
    assert_eq!(pebble.issued_count(), 3);

    // Two thirds of 30 s, less jitter: about 20 s. Nobody asks in between.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut after = Vec::new();
    for (name, (etag, body)) in names.iter().zip(&before) {
        loop {
            let (new_etag, new_body) = get(&service, name).await;
            if new_etag != *etag {
                assert_ne!(new_body["certificate"], body["certificate"]);
                assert_ne!(
                    new_body["privateKey"], body["privateKey"],
                    "a new key per renewal"
                );
                assert_eq!(new_body["cached"], true);
                after.push(new_body);
                break;
            }
            assert!(Instant::now() < deadline, "{name} was not renewed in time");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // Each renewed exactly once in this cycle, by the worker, with no client request.
    assert_eq!(pebble.issued_count(), 6, "one renewal per certificate");
    let renewed_at: Vec<&str> = after
        .iter()
        .map(|b| b["renewAfter"].as_str().expect("renewAfter"))
        .collect();
    assert!(renewed_at.iter().all(|t| t.ends_with('Z')));
}

#[tokio::test]
async fn a_failing_name_backs_off_without_new_orders() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    pebble.add_a("broken.example.test", "127.0.0.2").await;
    let service = Service::start(&pebble).await;
    let first = service
        .post(CERT, ADMIN_KEY, json!({"domain": "broken.example.test"}))
        .await;
    assert_eq!(first.status(), 502);
    assert_eq!(json(first).await["code"], "validation_failed");
    assert_eq!(pebble.orders_count(), 1);

    for _ in 0..5 {
        let again = service
            .post(CERT, ADMIN_KEY, json!({"domain": "broken.example.test"}))
            .await;
        assert_eq!(again.status(), 502);
        let retry: u64 = again.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("secs");
        assert!(
            (290..=300).contains(&retry),
            "first back-off is 5 minutes: {retry}"
        );
        let body = json(again).await;
        assert_eq!(body["code"], "validation_failed");
        let message = body["message"].as_str().expect("message");
        assert!(
            message.contains("failure 1") && message.contains("broken.example.test"),
            "{message}"
        );
    }
    let renew = service
        .post(
            "/api/certificate/renew",
            ADMIN_KEY,
            json!({"domain": "broken.example.test"}),
        )
        .await;
    assert_eq!(
        renew.status(),
        502,
        "a forced renewal cannot bypass the back-off"
    );
    assert_eq!(pebble.orders_count(), 1, "no new order while backing off");
}

/// The raw database files, as an attacker with a copy would read them.
fn raw_database(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(more) = std::fs::read(dir.join(format!("certfleet.db{suffix}"))) {
            bytes.extend(more);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn private_keys_are_sealed_at_rest_and_survive_key_rotation() {
    use std::os::unix::fs::PermissionsExt;
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let yaml = |storage: &str| {
        base_yaml(&pebble, &db_url, "30s").replace("storage:\n", &format!("storage:\n{storage}"))
    };

    // No key configured: one is generated beside the database, 0600.
    let first =
        Service::start_yaml(&yaml(""), tempfile::tempdir().expect("tmp"), db_url.clone()).await;
    let issued = json(
        first
            .post(CERT, ADMIN_KEY, json!({"domain": "sealed.example.test"}))
            .await,
    )
    .await;
    let private_key = issued["privateKey"].as_str().expect("key").to_owned();
    first.stop().await;
    let key_file = dir.path().join("certfleet.db.key");
    let mode = std::fs::metadata(&key_file)
        .expect("generated key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(meta) = std::fs::metadata(dir.path().join(format!("certfleet.db{suffix}"))) {
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o600,
                "certfleet.db{suffix}"
            );
        }
    }
    let generated = std::fs::read_to_string(&key_file)
        .expect("read key")
        .trim()
        .to_owned();
    let raw = raw_database(dir.path());
    assert!(
        !contains(&raw, b"PRIVATE KEY"),
        "no PEM private key in the database file"
    );
    let body_line = private_key
        .lines()
        .nth(1)
        .expect("a base64 line of the key");
    assert!(
        !contains(&raw, body_line.as_bytes()),
        "no key material in the clear"
    );
    assert!(
        !contains(&raw, b"key_pkcs8"),
        "the ACME account key is sealed too"
    );

    // Rotate: a new key, the generated one kept as previous.
    let rotated = yaml(&format!(
        "  encryptionKey: \"{KEY_A}\"\n  previousEncryptionKeys: [\"{generated}\"]\n"
    ));
    let second =
        Service::start_yaml(&rotated, tempfile::tempdir().expect("tmp"), db_url.clone()).await;
    let (_, body) = get(&second, "sealed.example.test").await;
    assert_eq!(
        body["privateKey"].as_str(),
        Some(private_key.as_str()),
        "old ciphertexts still open"
    );
    second.stop().await;

    // Every row was re-sealed at start: the old key is no longer needed.
    let only_new = yaml(&format!("  encryptionKey: \"{KEY_A}\"\n"));
    let third =
        Service::start_yaml(&only_new, tempfile::tempdir().expect("tmp"), db_url.clone()).await;
    let (_, body) = get(&third, "sealed.example.test").await;
    assert_eq!(body["privateKey"].as_str(), Some(private_key.as_str()));
    // The ACME account opens too: a second certificate on the same account.
    assert_eq!(
        third
            .post(CERT, ADMIN_KEY, json!({"domain": "sealed2.example.test"}))
            .await
            .status(),
        200
    );
    third.stop().await;

    // A key that never sealed anything cannot open the database's keys.
    let wrong = yaml(&format!("  encryptionKey: \"{KEY_B}\"\n"));
    let loaded =
        certfleet::config::Config::from_yaml(&wrong, std::iter::empty()).expect("valid config");
    let err = certfleet::app::App::start(&loaded.config)
        .await
        .expect_err("unknown key refused");
    assert!(err.to_string().contains("previousEncryptionKeys"), "{err}");
}

#[tokio::test]
async fn an_acme_profile_the_ca_does_not_offer_is_reported() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml.replace("  email:", "  profile: shortlived\n  email:")
    })
    .await;
    let response = service
        .post(CERT, ADMIN_KEY, json!({"domain": "profile.example.test"}))
        .await;
    assert_eq!(response.status(), 502);
    let body = json(response).await;
    assert_eq!(body["code"], "ca_error");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("acme.profile") && message.contains("shortlived"),
        "{message}"
    );
    assert_eq!(pebble.orders_count(), 0);
}

/// When the CA fails a whole batch (here: nothing listens at its address), the worker pauses
/// instead of recording the same failure for every other due certificate as fast as the CA
/// refuses: of 100 due certificates, one batch of 20 is tried, and no more within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_pauses_when_the_ca_fails_a_whole_batch() {
    use certfleet::domain::{KeyType, NameSet};
    use certfleet::store::StoredCert;
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml.replace(&pebble.directory_url(), "https://127.0.0.1:9/dir")
    })
    .await;
    let now = certfleet::util::clock::now();
    let store = service.app.api.store.clone();
    for i in 0..100 {
        let cert = StoredCert {
            names: NameSet::parse(&[format!("down-{i}.example.test")]).expect("name"),
            key: certfleet::domain::KeySpec::Server(KeyType::EcdsaP256),
            profile: None,
            ca: None,
            cert_pem: "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n".into(),
            key_pem: Some("-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n".into()),
            issuer_pem: "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n".into(),
            serial: format!("{i:x}"),
            not_before: now - 86_400,
            not_after: now + 20 * 86_400,
            renew_after: now - 60,
            issued_at: now - 86_400,
        };
        store.save_certificate(&cert, &[]).await.expect("save");
    }
    service.app.api.certs.stored().notify_one();
    let deadline = Instant::now() + Duration::from_secs(20);
    while service.count_rows("attempts").await < 20 {
        assert!(Instant::now() < deadline, "the worker tried nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        service.count_rows("attempts").await,
        20,
        "one batch, then the pause"
    );
    assert_eq!(
        service
            .count_rows("attempts WHERE cause = 'renewal' AND outcome = 'ca_error'")
            .await,
        20
    );
    assert_eq!(
        service.count_rows("failures").await,
        20,
        "the others untouched"
    );
}
