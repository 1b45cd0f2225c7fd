//! CA limits known in advance, against Pebble 2.10: a new certificate past a configured limit
//! (per registered domain, per exact set, a credential's quota) gets 429 `ca_limit` with a
//! `Retry-After`, and the CA sees no order for it; renewals still go through; a batch of
//! renewals due at once starts no faster than `limits.renewalPace`.

use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};

use crate::common;
use common::service::{ADMIN_KEY, Service, json};
use common::{Pebble, PebbleOptions};

const CERT: &str = "/api/certificate";
/// A key with a quota of two new certificates a week.
const QUOTA_KEY: &str = "quota-key-0123456789abcdef0123456789abcdef";

async fn pebble() -> Pebble {
    Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await
}

/// certfleet with `limits` appended (YAML at the top level) and the quota key added.
async fn service(pebble: &Pebble, limits: &str) -> Service {
    Service::start_with(pebble, "30s", |yaml| {
        let anchor = "        domains: [\"*.a.example.test\", \"a.example.test\"]\n";
        assert!(yaml.contains(anchor), "the base config changed:\n{yaml}");
        let yaml = yaml.replace(
            anchor,
            &format!(
                "{anchor}      - name: quota\n        key: \"{QUOTA_KEY}\"\n        \
                 quota: {{count: 2, window: 7d}}\n"
            ),
        );
        format!("{yaml}limits:\n{limits}")
    })
    .await
}

async fn status_and_body(service: &Service, path: &str, key: &str, body: Value) -> (u16, Value) {
    let response = service.post(path, key, body).await;
    let status = response.status().as_u16();
    (status, json(response).await)
}

async fn ok(service: &Service, key: &str, body: Value) -> Value {
    let (status, answer) = status_and_body(service, CERT, key, body.clone()).await;
    assert_eq!(status, 200, "{body}: {answer}");
    answer
}

/// Asks for `body` and expects 429 `ca_limit` naming `limit`; returns the `Retry-After`.
async fn refused(service: &Service, key: &str, body: Value, limit: &str) -> u64 {
    let response = service.post(CERT, key, body.clone()).await;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().expect("ascii").parse::<u64>().expect("seconds"));
    let answer = json(response).await;
    assert_eq!(status, 429, "{body}: {answer}");
    assert_eq!(answer["code"], "ca_limit", "{answer}");
    let message = answer["message"].as_str().expect("message");
    assert!(message.contains(limit), "{message}");
    retry_after.unwrap_or_else(|| panic!("no Retry-After with {answer}"))
}

#[tokio::test]
async fn the_fourth_new_name_under_a_registered_domain_is_refused_before_ordering() {
    let pebble = pebble().await;
    let service = service(&pebble, "  perRegisteredDomain: {count: 3, window: 7d}\n").await;
    for name in ["one", "two", "three"] {
        ok(
            &service,
            ADMIN_KEY,
            json!({"domain": format!("{name}.example.test")}),
        )
        .await;
    }
    assert_eq!(pebble.orders_count(), 3);

    let retry_after = refused(
        &service,
        ADMIN_KEY,
        json!({"domain": "four.example.test"}),
        "perRegisteredDomain",
    )
    .await;
    // The oldest of the three leaves the 7-day window in about 7 days.
    assert!(
        retry_after > 7 * 86_400 - 120 && retry_after <= 7 * 86_400,
        "{retry_after}"
    );
    assert_eq!(pebble.orders_count(), 3, "the CA saw no fourth order");

    // Another registered domain has its own count; `www.four` is under example.test again.
    ok(&service, ADMIN_KEY, json!({"domain": "one.example.org"})).await;
    refused(
        &service,
        ADMIN_KEY,
        json!({"domains": ["www.four.example.test", "one.example.org"]}),
        "example.test",
    )
    .await;
    assert_eq!(pebble.orders_count(), 4);

    // A forced renewal of one of the three is a renewal: it goes through.
    let (status, renewed) = status_and_body(
        &service,
        "/api/certificate/renew",
        ADMIN_KEY,
        json!({"domain": "two.example.test"}),
    )
    .await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(pebble.orders_count(), 5);
    assert_eq!(
        service
            .count_rows("ca_usage WHERE dimension = 'domain' AND renewal = 1")
            .await,
        1,
        "the renewal is counted, as a renewal"
    );
}

#[tokio::test]
async fn a_third_certificate_for_the_same_names_is_refused_per_exact_set() {
    let pebble = pebble().await;
    let service = service(&pebble, "  perExactSet: {count: 2, window: 1h}\n").await;
    let names = json!(["set.example.test", "www.set.example.test"]);
    // Two identities of the same names (one per key type), then a third.
    ok(&service, ADMIN_KEY, json!({"domains": names})).await;
    ok(
        &service,
        ADMIN_KEY,
        json!({"domains": names, "keyType": "rsa-2048"}),
    )
    .await;
    let retry_after = refused(
        &service,
        ADMIN_KEY,
        json!({"domains": names, "keyType": "ecdsa-p384"}),
        "perExactSet",
    )
    .await;
    assert!(retry_after > 3000 && retry_after <= 3600, "{retry_after}");
    assert_eq!(pebble.orders_count(), 2);
    // Another set of names is not this limit's business.
    ok(
        &service,
        ADMIN_KEY,
        json!({"domains": ["set.example.test"], "keyType": "ecdsa-p384"}),
    )
    .await;
    assert_eq!(pebble.orders_count(), 3);
}

#[tokio::test]
async fn a_credential_past_its_quota_is_refused_and_others_are_not() {
    let pebble = pebble().await;
    // No limit but the quota of `auth.psk.keys[].quota`.
    let service = service(&pebble, "  renewalReserve: 20%\n").await;
    ok(&service, QUOTA_KEY, json!({"domain": "q1.example.test"})).await;
    ok(&service, QUOTA_KEY, json!({"domain": "q2.example.test"})).await;
    // What the key already has is delivered without counting.
    let again = ok(&service, QUOTA_KEY, json!({"domain": "q1.example.test"})).await;
    assert_eq!(again["cached"], true);
    let retry_after = refused(
        &service,
        QUOTA_KEY,
        json!({"domain": "q3.example.test"}),
        "quota",
    )
    .await;
    assert!(retry_after > 7 * 86_400 - 120, "{retry_after}");
    assert_eq!(pebble.orders_count(), 2);
    // The quota is the key's own: another key gets the same name.
    ok(&service, ADMIN_KEY, json!({"domain": "q3.example.test"})).await;
    assert_eq!(pebble.orders_count(), 3);
}

/// Twelve certificates due at once, with a pace of 4 renewals per 3 s: the renewals start in
/// three waves, never more than four in any 3 s (without the pace all twelve start at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_due_at_once_start_no_faster_than_the_pace() {
    use certfleet::domain::{KeySpec, KeyType, NameSet};
    use certfleet::store::StoredCert;
    // The figure: 200 certificates due at once, 50 per 3 s, so four waves.
    const DUE: usize = 200;
    const PACE: usize = 50;
    const WINDOW: i64 = 3;
    let pebble = pebble().await;
    let service = service(&pebble, "  renewalPace: {count: 50, window: 3s}\n").await;
    let now = certfleet::util::clock::now();
    let store = service.app.api.store.clone();
    for i in 0..DUE {
        // Placeholders the CA has no renewal window for: due now, renewed for real.
        let cert = StoredCert {
            names: NameSet::parse(&[format!("pace-{i}.example.test")]).expect("name"),
            key: KeySpec::Server(KeyType::EcdsaP256),
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
    let begun = Instant::now();
    service.app.api.certs.stored().notify_one();
    let done = "attempts WHERE cause = 'renewal' AND outcome = 'success'";
    let deadline = begun + Duration::from_secs(240);
    while service.count_rows(done).await < i64::try_from(DUE).expect("small") {
        assert!(
            Instant::now() < deadline,
            "the renewals did not finish\n{}",
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = begun.elapsed();
    let pool = sqlx::SqlitePool::connect(&service.db_url)
        .await
        .expect("open the database");
    let mut starts: Vec<i64> = sqlx::query_scalar(
        "SELECT started_at FROM attempts WHERE cause = 'renewal' ORDER BY started_at",
    )
    .fetch_all(&pool)
    .await
    .expect("read the attempts");
    starts.sort_unstable();
    assert_eq!(starts.len(), DUE, "one attempt each");
    // Whole seconds: renewals started a window apart are at least WINDOW - 1 apart as read.
    for (i, pair) in starts.windows(PACE + 1).enumerate() {
        assert!(
            pair[PACE] - pair[0] >= WINDOW - 1,
            "renewals {i}..={} started within {} s: {starts:?}",
            i + PACE,
            pair[PACE] - pair[0]
        );
    }
    assert!(
        elapsed >= Duration::from_secs(9),
        "four waves take three windows: {elapsed:?}"
    );
    eprintln!("{DUE} renewals due at once, paced {PACE} per {WINDOW} s: done in {elapsed:?}");
    assert_eq!(
        service
            .count_rows("ca_usage WHERE dimension = 'account' AND renewal = 1")
            .await,
        i64::try_from(DUE).expect("small"),
        "each renewal counted"
    );
}

/// A name whose validation failed is refused for another identity while the failure counts
/// (the failed identity itself is backing off: its own answer is the failure repeated).
#[tokio::test]
async fn a_name_that_failed_validation_is_refused_until_the_failure_leaves_the_window() {
    let pebble = pebble().await;
    let service = service(&pebble, "  failedValidations: {count: 1, window: 1h}\n").await;
    let name = "fails.example.test";
    // Pebble's validator dials an address nothing listens on.
    pebble.add_a(name, "127.0.0.2").await;
    let (status, answer) =
        status_and_body(&service, CERT, ADMIN_KEY, json!({"domain": name})).await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["code"], "validation_failed", "{answer}");
    assert_eq!(pebble.orders_count(), 1);
    let retry_after = refused(
        &service,
        ADMIN_KEY,
        json!({"domain": name, "keyType": "rsa-2048"}),
        "failedValidations",
    )
    .await;
    assert!(retry_after > 3000 && retry_after <= 3600, "{retry_after}");
    assert_eq!(pebble.orders_count(), 1, "no order for the refused name");
    ok(&service, ADMIN_KEY, json!({"domain": "fine.example.test"})).await;
}

/// With the real binary: each refusal is counted in `certfleet_ca_limit_refusals_total` by
/// limit, with no name or credential among the labels.
#[tokio::test]
async fn refusals_are_counted_by_limit_in_the_metrics() {
    use common::service::base_yaml;
    use common::{free_port, process};
    let pebble = pebble().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let (api, metrics_port) = (free_port(), free_port());
    let yaml = base_yaml(&pebble, &db_url, "30s").replace(
        "server:\n",
        &format!(
            "server:\n  listen: \"127.0.0.1:{api}\"\n  metricsListen: \"127.0.0.1:{metrics_port}\"\n"
        ),
    ) + "limits:\n  perExactSet: {count: 1, window: 1h}\n";
    let config = dir.path().join("certfleet.yaml");
    std::fs::write(&config, yaml).expect("write the config");
    let certfleet = process::serve(&config, None, None);
    let base = format!("http://127.0.0.1:{api}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    process::wait_ready(&client, &base, &certfleet).await;
    let post = |body: Value| {
        client
            .post(format!("{base}{CERT}"))
            .header("Authorization", format!("APIKey {ADMIN_KEY}"))
            .json(&body)
            .send()
    };
    let name = "metered.example.test";
    let first = post(json!({"domain": name})).await.expect("first");
    assert_eq!(first.status(), 200, "{}", certfleet.log());
    for key_type in ["rsa-2048", "ecdsa-p384"] {
        let refused = post(json!({"domain": name, "keyType": key_type}))
            .await
            .expect("refused");
        assert_eq!(refused.status(), 429);
    }
    let scrape = client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    let lines: Vec<&str> = scrape
        .lines()
        .filter(|line| line.starts_with("certfleet_ca_limit_refusals_total"))
        .collect();
    assert_eq!(
        lines,
        ["certfleet_ca_limit_refusals_total{limit=\"perExactSet\"} 2"],
        "{scrape}"
    );
    assert!(!scrape.contains(name), "no name in the metrics");
}

/// Two processes sharing one store count the same orders: of six new names under one registered
/// domain asked of both at once, with a limit of three, exactly three are ordered (the check
/// and the count are taken under a lease in the store, so neither replica takes a place the
/// other took).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_the_store_share_the_counts() {
    use futures_util::future::join_all;
    let pebble = pebble().await;
    let limits = "  perRegisteredDomain: {count: 3, window: 7d}\n";
    let first = service(&pebble, limits).await;
    // The second on the same database; its HTTP-01 listener elsewhere (the CA reaches the
    // first, which answers from the shared store).
    let listen = format!("127.0.0.1:{}", pebble.http_port());
    let yaml = common::service::base_yaml(&pebble, &first.db_url, "30s")
        .replace(&listen, &format!("127.0.0.2:{}", pebble.http_port()))
        + &format!("limits:\n{limits}");
    let dir = tempfile::tempdir().expect("tempdir");
    let second = Service::start_yaml(&yaml, dir, first.db_url.clone()).await;
    let asks = (0..6).map(|i| {
        let service = if i % 2 == 0 { &first } else { &second };
        let body = json!({"domain": format!("r{i}.example.test")});
        async move { status_and_body(service, CERT, ADMIN_KEY, body).await }
    });
    let answers = join_all(asks).await;
    let mut statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429], "{answers:?}");
    for (status, body) in &answers {
        if *status == 429 {
            assert_eq!(body["code"], "ca_limit", "{body}");
        }
    }
    assert_eq!(pebble.orders_count(), 3);
}
