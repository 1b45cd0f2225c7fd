//! Events and their notifications against real parts: certificates issued, renewed and failing
//! on Pebble (30-second certificates), a real HTTP receiver in the test (`common/webhook.rs`)
//! whose requests the published `standardwebhooks` library verifies, and a real SMTP server
//! (aiosmtpd, `common/smtp.rs`) over STARTTLS with AUTH. Each event arrives once, in order per
//! certificate; a receiver that was down gets everything when it returns; an event written
//! before a `kill -9` is delivered after the restart; a credential that never fetched a
//! renewed certificate is reported stale, and one that did is not.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common;
use common::process;
use common::service::{ADMIN_KEY, FLEET_A_KEY, Service, base_yaml, json};
use common::smtp::{SmtpOptions, SmtpServer, SmtpTls};
use common::webhook::{Received, Receiver};
use common::{Pebble, PebbleOptions, free_port};

/// The receivers' Standard Webhooks secret.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SMTP_USER: &str = "certfleet";
const SMTP_PASSWORD: &str = "smtp-password-for-the-test-0123456789";
const CERT: &str = "/api/certificate";

/// The `notifications` section: one signed webhook named `ops` at `url`, then `extra` lines.
pub fn notifications(url: &str, extra: &str) -> String {
    format!(
        "notifications:\n  webhooks:\n    - name: ops\n      url: \"{url}\"\n      secret: \"{SECRET}\"\n      timeout: 2s\n  retryInitial: 1s\n  retryMax: 2s\n{extra}"
    )
}

/// The events a receiver accepted, parsed, with their `webhook-id`.
pub fn events(received: &[Received]) -> Vec<(String, Value)> {
    received
        .iter()
        .filter(|r| !r.refused)
        .map(|r| {
            let id = r.headers.get("webhook-id").cloned().unwrap_or_default();
            let body: Value = serde_json::from_str(&r.body).expect("a JSON event");
            (id, body)
        })
        .collect()
}

/// The types of the accepted events about `name`, in arrival order.
fn types_for(received: &[Received], name: &str) -> Vec<String> {
    events(received)
        .iter()
        .filter(|(_, e)| e["data"]["certificate"]["names"] == json!([name]))
        .map(|(_, e)| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits until an accepted event of `kind` about `name` arrived; returns it.
async fn wait_for_event(receiver: &Receiver, kind: &str, name: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let found = events(&receiver.requests())
            .into_iter()
            .find(|(_, e)| e["type"] == kind && e["data"]["certificate"]["names"] == json!([name]));
        if let Some((_, event)) = found {
            return event;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} for {name} within {timeout:?}; got {:?}",
            events(&receiver.requests())
                .iter()
                .map(|(_, e)| format!("{} {}", e["type"], e["data"]["certificate"]["names"]))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every accepted request verifies with the standardwebhooks library, and no id came twice.
pub fn assert_signed_once(receiver: &Receiver, received: &[Received]) {
    let accepted: Vec<Received> = received.iter().filter(|r| !r.refused).cloned().collect();
    for (request, verdict) in accepted.iter().zip(receiver.verify(SECRET, &accepted)) {
        assert_eq!(verdict, Ok(()), "{}", request.body);
    }
    let ids: Vec<String> = events(&accepted).into_iter().map(|(id, _)| id).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an event arrived twice: {ids:?}");
    assert!(
        ids.iter()
            .all(|id| id.starts_with("evt_") && id.len() == 30),
        "{ids:?}"
    );
}

async fn issue(service: &Service, name: &str) -> Value {
    let response = service.post(CERT, ADMIN_KEY, json!({"domain": name})).await;
    assert_eq!(response.status(), 200, "{name}");
    json(response).await
}

async fn inventory_id(service: &Service, name: &str) -> String {
    let page = json(
        service
            .get(&format!("/api/certificates?name={name}"), ADMIN_KEY)
            .await,
    )
    .await;
    page["items"][0]["id"].as_str().expect("an id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_once_in_order_signed_and_mailed() {
    let pebble = Pebble::start(PebbleOptions {
        validity_secs: Some(30),
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let smtp = SmtpServer::start(SmtpOptions {
        tls: Some(SmtpTls::StartTls),
        credentials: Some((SMTP_USER.to_owned(), SMTP_PASSWORD.to_owned())),
    })
    .await;
    let email = format!(
        "  email:\n    host: localhost\n    port: {port}\n    tls: starttls\n    username: {SMTP_USER}\n    password: \"{SMTP_PASSWORD}\"\n    from: \"certfleet <certfleet@example.test>\"\n    to: [\"ops@example.test\"]\n    events: [certificate.renewal_failed, certificate.expiring, certificate.revoked]\n    caCertificates: \"{ca}\"\n  expiringAt: [\"25%\"]\n  staleAfter: 4s\n",
        port = smtp.port(),
        ca = smtp.ca_file().display(),
    );
    // Every type but delivery.stale (the admin never fetches the renewed certificate); a
    // short staleAfter makes the scans run every second.
    let yaml = notifications(&receiver.url("/hooks/ops"), &email).replace(
        "      timeout: 2s\n",
        "      timeout: 2s\n      events: [certificate.issued, certificate.renewed, \
         certificate.renewal_failed, certificate.expiring, certificate.revoked]\n",
    );
    let service = Service::start_with(&pebble, "30s", |base| format!("{base}{yaml}")).await;
    let (renewed, revoked) = ("events.a.example.test", "revoked.a.example.test");

    // Issued, then revoked at once: the revoked one is not renewed.
    issue(&service, renewed).await;
    issue(&service, revoked).await;
    let response = service
        .post(
            "/api/certificate/revoke",
            ADMIN_KEY,
            json!({"domain": revoked, "reason": "unspecified"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let first_serial = wait_for_event(
        &receiver,
        "certificate.issued",
        renewed,
        Duration::from_secs(10),
    )
    .await["data"]["certificate"]["serial"]
        .as_str()
        .expect("serial")
        .to_owned();
    wait_for_event(
        &receiver,
        "certificate.revoked",
        revoked,
        Duration::from_secs(10),
    )
    .await;

    // The renewal, about 20 s in; then the CA can no longer reach certfleet for that name, so
    // the next renewal fails, and the certificate crosses 25% of its life left unrenewed.
    let event = wait_for_event(
        &receiver,
        "certificate.renewed",
        renewed,
        Duration::from_secs(40),
    )
    .await;
    pebble.add_a(renewed, "127.0.0.2").await;
    assert_eq!(event["data"]["previousSerial"], first_serial.as_str());
    assert_eq!(event["data"]["trigger"], "renewal");
    let second_serial = event["data"]["certificate"]["serial"]
        .as_str()
        .expect("serial")
        .to_owned();
    assert_ne!(second_serial, first_serial);
    let failed = wait_for_event(
        &receiver,
        "certificate.renewal_failed",
        renewed,
        Duration::from_secs(40),
    )
    .await;
    let expiring = wait_for_event(
        &receiver,
        "certificate.expiring",
        renewed,
        Duration::from_secs(30),
    )
    .await;
    let mails = smtp.wait_for_messages(3, Duration::from_secs(20)).await;
    service.stop().await;

    let received = receiver.requests();
    assert_signed_once(&receiver, &received);
    let a = types_for(&received, renewed);
    assert_eq!(
        a[..3],
        [
            "certificate.issued",
            "certificate.renewed",
            "certificate.renewal_failed"
        ],
        "{a:?}"
    );
    assert_eq!(
        a.iter().filter(|t| *t == "certificate.expiring").count(),
        1,
        "{a:?}"
    );
    assert!(
        a[3..]
            .iter()
            .all(|t| t == "certificate.renewal_failed" || t == "certificate.expiring"),
        "{a:?}"
    );
    assert_eq!(
        types_for(&received, revoked),
        ["certificate.issued", "certificate.revoked"]
    );

    // What each says.
    assert_eq!(failed["data"]["error"]["code"], "validation_failed");
    assert_eq!(failed["data"]["attempt"], 1);
    assert_eq!(
        failed["data"]["certificate"]["serial"],
        second_serial.as_str()
    );
    assert!(failed["data"]["nextAttempt"].is_string(), "{failed}");
    assert_eq!(expiring["data"]["threshold"], "25%");
    assert_eq!(
        expiring["data"]["certificate"]["serial"],
        second_serial.as_str()
    );
    assert!(
        expiring["data"]["remainingSeconds"]
            .as_i64()
            .is_some_and(|s| s <= 8),
        "{expiring}"
    );
    let (_, revocation) = events(&received)
        .into_iter()
        .find(|(_, e)| e["type"] == "certificate.revoked")
        .expect("revoked");
    assert_eq!(revocation["data"]["reason"], "unspecified");
    assert_eq!(revocation["data"]["by"], "psk:admin");
    assert_eq!(revocation["data"]["certificate"]["keyType"], "ecdsa-p256");
    assert_eq!(revocation["data"]["certificate"]["keyMode"], "server");
    for (_, event) in events(&received) {
        assert!(event["timestamp"].is_string(), "{event}");
    }

    // The mails: the subscribed types only, over TLS, authenticated, with what to do.
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert!(
        subjects.contains(&"[certfleet] Certificate revoked for revoked.a.example.test"),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"[certfleet] Renewal failed for events.a.example.test"),
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("[certfleet] Certificate for events.a.example.test expires in")),
        "{subjects:?}"
    );
    assert!(
        !subjects
            .iter()
            .any(|s| s.contains("issued") || s.contains("renewed")),
        "{subjects:?}"
    );
    for mail in &mails {
        assert!(mail.tls && mail.authenticated, "{mail:?}");
        assert_eq!(mail.rcpt_tos, ["ops@example.test"]);
        assert!(mail.body.contains("What to do:"), "{}", mail.body);
        assert!(!mail.body.contains(SMTP_PASSWORD) && !mail.body.contains(SECRET));
    }
    let failure_mail = mails
        .iter()
        .find(|m| m.subject.starts_with("[certfleet] Renewal failed"))
        .expect("the failure's mail");
    assert!(
        failure_mail.body.contains("validation_failed"),
        "{}",
        failure_mail.body
    );
    assert!(
        failure_mail.body.contains("certfleet certs show"),
        "{}",
        failure_mail.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_was_down_gets_every_event_once_when_it_returns() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let mut receiver = Receiver::start().await;
    let url = receiver.url("/hooks/ops");
    receiver.stop().await;
    let yaml = notifications(&url, "");
    let service = Service::start_with(&pebble, "30s", |base| format!("{base}{yaml}")).await;
    let names = [
        "down-1.a.example.test",
        "down-2.a.example.test",
        "down-3.a.example.test",
    ];
    for name in names {
        issue(&service, name).await;
    }

    // Refused connections, retried: the events show it, each failing, none given up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let troubled = loop {
        let list = json(service.get("/api/events?troubled=true", ADMIN_KEY).await).await;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.len() == 3
            && items
                .iter()
                .all(|e| e["notifications"][0]["attempts"].as_u64() >= Some(2))
        {
            break items;
        }
        assert!(Instant::now() < deadline, "not retried: {list:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for event in &troubled {
        let notification = &event["notifications"][0];
        assert_eq!(notification["channel"], "ops");
        assert_eq!(notification["state"], "pending");
        assert!(notification["nextAttempt"].is_string(), "{notification}");
        let error = notification["lastError"].as_str().unwrap_or_default();
        assert!(error.contains("cannot connect"), "{error}");
        assert!(
            !error.contains("127.0.0.1"),
            "the URL stays out of errors: {error}"
        );
    }

    // Back, but failing for a while: an HTTP error is retried too.
    receiver.set_status(503);
    receiver.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !receiver.requests().iter().any(|r| r.refused) {
        assert!(Instant::now() < deadline, "no attempt reached the receiver");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver.set_status(204);
    receiver.wait_for(3, Duration::from_secs(15)).await;
    // Time for anything sent twice to arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = receiver.requests();
    assert_signed_once(&receiver, &received);
    let mut delivered: Vec<String> = events(&received)
        .iter()
        .map(|(_, e)| {
            e["data"]["certificate"]["names"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    delivered.sort();
    assert_eq!(delivered, names);

    // The inventory keeps every attempt: refused connections, the 503s, then the delivery.
    let id = inventory_id(&service, names[0]).await;
    let detail = json(
        service
            .get(&format!("/api/certificates/{id}"), ADMIN_KEY)
            .await,
    )
    .await;
    let notification = &detail["events"][0]["notifications"][0];
    assert_eq!(detail["events"][0]["type"], "certificate.issued");
    assert_eq!(notification["state"], "delivered", "{notification:#}");
    let history = notification["history"].as_array().expect("history");
    assert_eq!(history.last().expect("attempts")["outcome"], "delivered");
    assert!(history.len() >= 3, "{history:?}");
    assert!(
        history[..history.len() - 1]
            .iter()
            .all(|a| a["outcome"] == "failed")
    );
    assert!(notification["doneAt"].is_string());
    let troubled = json(service.get("/api/events?troubled=true", ADMIN_KEY).await).await;
    assert_eq!(troubled["items"], json!([]), "nothing failing any more");

    // A fleet credential sees only its own names' events; bad queries are 400s.
    let own = json(service.get("/api/events", FLEET_A_KEY).await).await;
    assert_eq!(own["items"].as_array().map(Vec::len), Some(3));
    for bad in [
        "/api/events?troubled=maybe",
        "/api/events?limit=0",
        "/api/events?x=1",
    ] {
        let response = service.get(bad, ADMIN_KEY).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(json(response).await["code"], "invalid_body");
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_written_before_a_kill_is_delivered_after_the_restart() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let port = free_port();
    let yaml = base_yaml(&pebble, &db_url, "30s").replace(
        "server:\n",
        &format!("server:\n  listen: \"127.0.0.1:{port}\"\n  metricsListen: \"\"\n"),
    ) + &notifications(&receiver.url("/hooks/ops"), "");
    let config = dir.path().join("certfleet.yaml");
    std::fs::write(&config, yaml).expect("write the config");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let ready = |client: reqwest::Client| {
        let base = base.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                assert!(Instant::now() < deadline, "certfleet is not ready");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    // The delivery worker stops for good right after claiming the event.
    let mut first = process::serve(&config, Some("info"), Some("notification-claimed"));
    ready(client.clone()).await;
    let response = client
        .post(format!("{base}{CERT}"))
        .header("Authorization", format!("APIKey {ADMIN_KEY}"))
        .json(&json!({"domain": "crash.a.example.test"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    first.wait_for_line(
        "failpoint notification-claimed reached",
        Duration::from_secs(10),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        receiver.requests().is_empty(),
        "nothing sent before the kill"
    );
    first.kill();

    // The next process takes the dead one's claim over once it expires (2 x 2 s + 5 s).
    let killed_at = Instant::now();
    let second = process::serve(&config, Some("info"), None);
    ready(client.clone()).await;
    let received = receiver.wait_for(1, Duration::from_secs(30)).await;
    let waited = killed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received_all = receiver.requests();
    assert_eq!(received_all.len(), 1, "delivered once: {received_all:?}");
    assert_signed_once(&receiver, &received);
    let (_, event) = &events(&received)[0];
    assert_eq!(event["type"], "certificate.issued");
    assert_eq!(
        event["data"]["certificate"]["names"],
        json!(["crash.a.example.test"])
    );
    assert!(
        waited >= Duration::from_secs(5),
        "the claim was honoured for {waited:?}"
    );
    assert!(
        second.log().contains("notification delivered"),
        "{}",
        second.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_still_on_the_old_serial_is_reported_stale() {
    let pebble = Pebble::start(PebbleOptions {
        validity_secs: Some(30),
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let yaml = notifications(&receiver.url("/hooks/ops"), "  staleAfter: 3s\n").replace(
        "      timeout: 2s\n",
        "      timeout: 2s\n      events: [delivery.stale, certificate.renewed]\n",
    );
    let service = Service::start_with(&pebble, "30s", |base| format!("{base}{yaml}")).await;
    let name = "stale.a.example.test";
    // The admin's POST issues and receives serial 1; the fleet credential fetches it too.
    issue(&service, name).await;
    let fetched = service
        .get(&format!("{CERT}?domain={name}"), FLEET_A_KEY)
        .await;
    assert_eq!(fetched.status(), 200);

    // After the renewal the admin fetches the new serial; the fleet credential never does.
    let renewed = wait_for_event(
        &receiver,
        "certificate.renewed",
        name,
        Duration::from_secs(40),
    )
    .await;
    let response = service
        .get(&format!("{CERT}?domain={name}"), ADMIN_KEY)
        .await;
    assert_eq!(response.status(), 200);
    let stale = wait_for_event(&receiver, "delivery.stale", name, Duration::from_secs(15)).await;
    let renewed_at = Instant::now();
    assert_eq!(stale["data"]["credential"], "psk:fleet-a");
    assert_eq!(
        stale["data"]["deliveredSerial"],
        renewed["data"]["previousSerial"]
    );
    assert_eq!(
        stale["data"]["certificate"]["serial"],
        renewed["data"]["certificate"]["serial"]
    );
    // Nothing for the admin, and nothing twice, over more scans.
    while renewed_at.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    service.stop().await;
    let received = receiver.requests();
    assert_signed_once(&receiver, &received);
    let stale: Vec<Value> = events(&received)
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e["type"] == "delivery.stale")
        .collect();
    let credentials: BTreeMap<String, usize> =
        stale.iter().fold(BTreeMap::new(), |mut counts, e| {
            *counts
                .entry(
                    e["data"]["credential"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
                .or_default() += 1;
            counts
        });
    // The second renewal (about 20 s after the first) may add one for its own serial; never
    // one for the admin, which fetched.
    assert!(
        credentials.keys().all(|c| c == "psk:fleet-a"),
        "{credentials:?}"
    );
    assert!(
        stale
            .iter()
            .map(|e| e["data"]["certificate"]["serial"].clone())
            .collect::<HashSet<_>>()
            .len()
            == stale.len(),
        "one per serial: {stale:?}"
    );
    assert!(
        events(&received)
            .iter()
            .all(|(_, e)| e["type"] != "certificate.issued"),
        "the webhook's events filter holds"
    );
}
