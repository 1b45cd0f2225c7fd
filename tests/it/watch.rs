//! The watch (`GET /api/certificate?...&wait=` with `If-None-Match`) against real Pebble: held
//! while the client's certificate is current, answered with the new one as soon as a renewal is
//! stored (here or by another process sharing the store), 304 at the end of the wait, and
//! bounded per credential.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common;
use common::service::{ADMIN_KEY, FLEET_A_KEY, Service, json};
use common::{Pebble, PebbleOptions};

const CERT: &str = "/api/certificate";
const NAME: &str = "w.a.example.test";

async fn issue(service: &Service) -> (String, String) {
    let response = service.post(CERT, ADMIN_KEY, json!({"domain": NAME})).await;
    let etag = response.headers()["etag"]
        .to_str()
        .expect("ETag")
        .to_owned();
    let body = json(response).await;
    (etag, serial(&body))
}

fn serial(body: &Value) -> String {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = common::leaf_der(body);
    let (_, cert) = X509Certificate::from_der(&der).expect("leaf");
    common::serial_hex(&cert)
}

/// `GET ?domain=NAME&wait=WAIT` with `If-None-Match: etag`, as `key`: status, body, how long
/// it took.
async fn watch(
    service: &Service,
    key: &str,
    etag: &str,
    wait: &str,
) -> (u16, Option<Value>, Duration) {
    let started = Instant::now();
    let response = service
        .client()
        .get(format!("{}{CERT}?domain={NAME}&wait={wait}", service.base))
        .header("Authorization", format!("APIKey {key}"))
        .header("If-None-Match", etag)
        .send()
        .await
        .expect("the watch reaches certfleet");
    let status = response.status().as_u16();
    let body = match status {
        304 => None,
        _ => Some(json(response).await),
    };
    (status, body, started.elapsed())
}

#[tokio::test]
async fn a_watch_is_answered_with_the_renewal_as_soon_as_it_is_stored() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml.replace("server:\n", "server:\n  watch:\n    maxPerCredential: 1\n")
    })
    .await;
    let (etag, first) = issue(&service).await;

    // Nothing changes: 304 once the wait is over, not before.
    let (status, _, took) = watch(&service, FLEET_A_KEY, &etag, "1s").await;
    assert_eq!(status, 304);
    assert!(
        took >= Duration::from_millis(950),
        "answered after {took:?}"
    );
    // A client holding another certificate gets the current one at once.
    let (status, body, took) = watch(&service, FLEET_A_KEY, "\"other\"", "30s").await;
    assert_eq!(status, 200);
    assert_eq!(serial(&body.expect("body")), first);
    assert!(took < Duration::from_secs(2), "{took:?}");

    // A watch held while the certificate is renewed is answered with the new one.
    let held = {
        let (service, etag) = (&service, etag.clone());
        async move { watch(service, FLEET_A_KEY, &etag, "60s").await }
    };
    let renew = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        // Meanwhile the same credential may not hold a second watch (maxPerCredential: 1).
        let second = service
            .client()
            .get(format!("{}{CERT}?domain={NAME}&wait=60s", service.base))
            .header("Authorization", format!("APIKey {FLEET_A_KEY}"))
            .header("If-None-Match", &etag)
            .send()
            .await
            .expect("second watch");
        assert_eq!(second.status(), 429);
        assert!(second.headers().contains_key("retry-after"));
        assert_eq!(json(second).await["code"], "watch_limit");
        let renewed = service
            .post(&format!("{CERT}/renew"), ADMIN_KEY, json!({"domain": NAME}))
            .await;
        assert_eq!(renewed.status(), 200);
        let body = json(renewed).await;
        (serial(&body), Instant::now())
    };
    let ((status, body, took), (renewed, renewed_at)) = tokio::join!(held, renew);
    let answered_at = Instant::now();
    assert_eq!(status, 200, "{body:?}");
    let got = serial(&body.expect("body"));
    assert_eq!(got, renewed, "the watch got the renewed certificate");
    assert_ne!(got, first);
    assert!(took >= Duration::from_millis(800), "it waited: {took:?}");
    let lag = answered_at.saturating_duration_since(renewed_at);
    assert!(
        lag < Duration::from_secs(1),
        "woken {lag:?} after the renewal"
    );

    let response = service
        .get(&format!("{CERT}?domain={NAME}&wait=soon"), FLEET_A_KEY)
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(json(response).await["code"], "invalid_body");
}

#[tokio::test]
async fn a_watch_on_one_replica_wakes_for_a_renewal_by_another() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let first = Service::start(&pebble).await;
    let listen = format!("127.0.0.1:{}", pebble.http_port());
    let yaml = common::service::base_yaml(&pebble, &first.db_url, "30s")
        .replace(&listen, &format!("127.0.0.2:{}", pebble.http_port()));
    let second = Service::start_yaml(
        &yaml,
        tempfile::tempdir().expect("tempdir"),
        first.db_url.clone(),
    )
    .await;
    let (etag, old) = issue(&first).await;
    // The second replica serves the same certificate: the watch holds there.
    let held = {
        let (second, etag) = (&second, etag.clone());
        async move { watch(second, FLEET_A_KEY, &etag, "60s").await }
    };
    let renew = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let renewed = first
            .post(&format!("{CERT}/renew"), ADMIN_KEY, json!({"domain": NAME}))
            .await;
        assert_eq!(renewed.status(), 200);
        (serial(&json(renewed).await), Instant::now())
    };
    let ((status, body, _), (renewed, renewed_at)) = tokio::join!(held, renew);
    let lag = Instant::now().saturating_duration_since(renewed_at);
    assert_eq!(status, 200, "{body:?}");
    let got = serial(&body.expect("body"));
    assert_eq!(got, renewed);
    assert_ne!(got, old);
    // The other replica looks at the store's events every 2 s.
    assert!(
        lag < Duration::from_secs(5),
        "woken {lag:?} after the renewal"
    );
}
