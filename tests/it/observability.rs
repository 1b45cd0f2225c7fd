//! What operators see, with the real binary on a real Pebble: the `/metrics` listener (the
//! expiry gauge equals the certificate's notAfter; outcome, ACME, auth and HTTP series move), JSON
//! log lines carrying the request id, and exactly one audit line per private key handed out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common;
use common::process;
use common::service::{ADMIN_KEY, FLEET_A_KEY, base_yaml};
use common::{Pebble, PebbleOptions, free_port};

const NAME: &str = "metrics.example.test";

/// The JSON log lines of `log` (every line must be one).
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"))
        })
        .collect()
}

/// The audit lines among the JSON log lines of `log`.
fn audit_lines(log: &str) -> Vec<Value> {
    json_lines(log)
        .into_iter()
        .filter(|line| line["target"] == "certfleet::audit")
        .collect()
}

/// One scraped series: its labels and value.
#[derive(Debug)]
struct Series {
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (what this test needs of it: no escaped commas or quotes
/// inside label values).
fn parse_metrics(text: &str) -> BTreeMap<String, Vec<Series>> {
    let mut families: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let value: f64 = value.parse().expect("numeric value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        // Values hold commas (name sets): split on `",` boundaries.
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once("=\"").expect("key=\"value\"");
            map.insert(key.to_owned(), value.trim_end_matches('"').to_owned());
        }
        families
            .entry(name.to_owned())
            .or_default()
            .push(Series { labels: map, value });
    }
    families
}

/// The value of the one series of `name` whose labels are exactly `labels`.
fn value(metrics: &BTreeMap<String, Vec<Series>>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let series = metrics
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in the scrape: {metrics:#?}"));
    series
        .iter()
        .find(|s| s.labels == want)
        .unwrap_or_else(|| panic!("no {name}{want:?}; have {series:#?}"))
        .value
}

fn unix(rfc3339: &str) -> f64 {
    let at = OffsetDateTime::parse(rfc3339, &Rfc3339).expect("RFC 3339 time");
    at.unix_timestamp() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_audit_lines_account_for_each_delivery() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let (api, metrics_port) = (free_port(), free_port());
    let yaml = base_yaml(&pebble, &db_url, "30s").replace(
        "server:\n",
        &format!(
            "server:\n  listen: \"127.0.0.1:{api}\"\n  metricsListen: \"127.0.0.1:{metrics_port}\"\n  metricsCertificates: all\n"
        ),
    ) + "log:\n  format: json\n  level: info\n";
    let config = dir.path().join("certfleet.yaml");
    std::fs::write(&config, yaml).expect("write the config");
    // The config's log.level decides, as in production.
    let certfleet = process::serve(&config, None, None);
    let base = format!("http://127.0.0.1:{api}");
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    process::wait_ready(&client, &base, &certfleet).await;

    // Issue, with the client's own request id.
    let response = client
        .post(format!("{base}/api/certificate"))
        .header("Authorization", format!("APIKey {ADMIN_KEY}"))
        .header("X-Request-Id", "client-chosen-42")
        .json(&json!({"domain": NAME}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    let body: Value = response.json().await.expect("JSON body");
    let not_after = unix(body["notAfter"].as_str().expect("notAfter"));
    let renew_after = unix(body["renewAfter"].as_str().expect("renewAfter"));
    let pem = body["certificate"].as_str().expect("certificate");
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'static>| c)
        .expect("leaf");
    let (_, leaf) = x509_parser::parse_x509_certificate(&der).expect("parse the leaf");
    let serial = leaf.raw_serial_as_string().replace(':', "");

    // A 304 hands out no key; a plain GET does. Refusals: no header, a wrong key, a name the
    // key may not ask for.
    let not_modified = client
        .get(format!("{base}/api/certificate?domain={NAME}"))
        .header("Authorization", format!("APIKey {ADMIN_KEY}"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(not_modified.status(), 304);
    let generated_id = not_modified.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    assert_eq!(generated_id.len(), 20, "{generated_id}");
    let fetched = client
        .get(format!("{base}/api/certificate?domain={NAME}"))
        .header("Authorization", format!("APIKey {ADMIN_KEY}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(fetched.status(), 200);
    let fetched_id = fetched.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    assert_ne!(fetched_id, generated_id, "every request gets its own id");
    let refusals = [
        (None, NAME, 401),
        (
            Some("wrong-key-0123456789abcdef0123456789abcdef"),
            NAME,
            401,
        ),
        (Some(FLEET_A_KEY), "b.example.test", 403),
    ];
    for (key, name, status) in refusals {
        let mut request = client
            .post(format!("{base}/api/certificate"))
            .json(&json!({"domain": name}));
        if let Some(key) = key {
            request = request.header("Authorization", format!("APIKey {key}"));
        }
        assert_eq!(request.send().await.expect("POST").status(), status);
    }

    // The scrape.
    let scrape = client.get(&metrics_url).send().await.expect("scrape");
    assert_eq!(scrape.status(), 200);
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/plain; version=0.0.4"),
    );
    let text = scrape.text().await.expect("text");
    let metrics = parse_metrics(&text);
    let cert = [("names", NAME), ("key_type", "ecdsa-p256")];
    let expiry = value(
        &metrics,
        "certfleet_certificate_expiry_timestamp_seconds",
        &cert,
    );
    assert_eq!(expiry, not_after, "the expiry gauge is the notAfter");
    let renewal = value(
        &metrics,
        "certfleet_certificate_renewal_timestamp_seconds",
        &cert,
    );
    assert_eq!(renewal, renew_after);
    // The aggregates that stay bounded at any fleet size.
    for (state, count) in [
        ("valid", 1.0),
        ("due", 0.0),
        ("backing_off", 0.0),
        ("expired", 0.0),
    ] {
        assert_eq!(
            value(&metrics, "certfleet_certificates", &[("state", state)]),
            count,
            "certificates in state {state}"
        );
    }
    assert_eq!(
        value(
            &metrics,
            "certfleet_certificate_earliest_expiry_timestamp_seconds",
            &[]
        ),
        not_after
    );
    assert_eq!(value(&metrics, "certfleet_certificates_unlisted", &[]), 0.0);
    let issued = [("trigger", "request"), ("outcome", "success")];
    assert_eq!(value(&metrics, "certfleet_issuances_total", &issued), 1.0);
    for (endpoint, status) in [
        ("directory", "200"),
        ("newNonce", "200"),
        ("newAccount", "201"),
        ("newOrder", "201"),
        ("authorization", "200"),
        ("challenge", "200"),
        ("finalize", "200"),
        ("certificate", "200"),
    ] {
        let labels = [("endpoint", endpoint), ("status", status)];
        assert!(
            value(&metrics, "certfleet_acme_requests_total", &labels) >= 1.0,
            "{endpoint}"
        );
        let count = value(
            &metrics,
            "certfleet_acme_request_duration_seconds_count",
            &[("endpoint", endpoint)],
        );
        assert!(count >= 1.0, "{endpoint} durations");
    }
    for (method, reason) in [
        ("none", "missing"),
        ("psk", "invalid"),
        ("psk", "domain_not_allowed"),
    ] {
        let labels = [("method", method), ("reason", reason)];
        assert_eq!(
            value(&metrics, "certfleet_auth_failures_total", &labels),
            1.0,
            "{method} {reason}"
        );
    }
    let route = |method, status| {
        [
            ("route", "/api/certificate"),
            ("method", method),
            ("status", status),
        ]
    };
    let http = "certfleet_http_requests_total";
    assert_eq!(value(&metrics, http, &route("POST", "200")), 1.0);
    assert_eq!(value(&metrics, http, &route("GET", "304")), 1.0);
    assert_eq!(value(&metrics, http, &route("GET", "200")), 1.0);
    assert_eq!(value(&metrics, http, &route("POST", "401")), 2.0);
    assert_eq!(value(&metrics, http, &route("POST", "403")), 1.0);
    let deliveries = "certfleet_private_key_deliveries_total";
    assert_eq!(value(&metrics, deliveries, &[("method", "psk")]), 2.0);
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(value(&metrics, "certfleet_build_info", &version), 1.0);

    // Metrics stay on their own listener.
    let on_api = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics on the API");
    assert_eq!(on_api.status(), 404);

    // Exactly one audit line per key handed out: the POST and the 200 GET, not the 304.
    let audits = audit_lines(&certfleet.log());
    assert_eq!(audits.len(), 2, "audit lines: {audits:#?}");
    for (line, id) in audits.iter().zip(["client-chosen-42", fetched_id.as_str()]) {
        assert_eq!(line["message"], "private key delivered");
        assert_eq!(line["principal"], "admin");
        assert_eq!(line["method"], "psk");
        assert_eq!(line["names"], NAME);
        assert_eq!(line["key_type"], "ecdsa-p256");
        assert_eq!(line["serial"], serial.as_str());
        assert_eq!(line["request_id"], id);
        assert_eq!(line["span"]["id"], id, "the request's span is on the line");
        let remote = line["remote"].as_str().expect("remote");
        assert!(remote.starts_with("127.0.0.1:"), "{remote}");
        assert!(line["timestamp"].is_string(), "when: {line}");
    }

    // No secret reaches the log.
    let log = certfleet.log();
    for secret in [
        ADMIN_KEY,
        FLEET_A_KEY,
        "PRIVATE KEY",
        "wrong-key-0123456789",
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
}

/// `server.metricsCertificates` on a real SQLite store holding certificates in every state and
/// more due ones than `due` lists: the aggregates count each state, `due` lists the due rows
/// only, earliest renewal first and at most its limit, `all` lists every row, `none` only the
/// aggregates, and `certfleet_certificates_unlisted` counts what each left out.
#[tokio::test(flavor = "multi_thread")]
async fn certificate_series_are_bounded_by_the_configured_choice() {
    use certfleet::config::{CertificateSeries, Config};
    use certfleet::domain::{CertKey, FailureKind, KeyType, NameSet};
    use certfleet::observe::metrics;
    use certfleet::store::{self, Failure, StoredCert};

    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "storage:\n  url: \"sqlite://{}\"\n  encryptionKey: \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n",
        dir.path().join("series.db").display()
    );
    let config = Config::from_yaml(&yaml, std::iter::empty())
        .expect("config")
        .config;
    let store = store::open(&config.storage).await.expect("open the store");

    let now = OffsetDateTime::now_utc().unix_timestamp();
    let day = 86_400;
    let limit = CertificateSeries::DUE_LIMIT as usize;
    let due_count = limit + 3;
    let save = |name: String, not_after: i64, renew_after: i64| {
        let store = store.clone();
        async move {
            let cert = StoredCert {
                names: NameSet::parse(&[name.as_str()]).expect("name"),
                key: certfleet::domain::KeySpec::Server(KeyType::EcdsaP256),
                profile: None,
                ca: None,
                cert_pem: "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n".into(),
                key_pem: Some(
                    "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n".into(),
                ),
                issuer_pem: "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n".into(),
                serial: format!("{name}-serial"),
                not_before: now - day,
                not_after,
                renew_after,
                issued_at: now - day,
            };
            store.save_certificate(&cert, &[]).await.expect("save");
            cert.key()
        }
    };
    for i in 0..2 {
        save(
            format!("valid-{i}.example.test"),
            now + 90 * day,
            now + 60 * day,
        )
        .await;
    }
    for i in 0..due_count {
        let i = i64::try_from(i).expect("small");
        save(
            format!("due-{i}.example.test"),
            now + 20 * day,
            now - 100 - i,
        )
        .await;
    }
    let failing: CertKey = save(
        "failing.example.test".into(),
        now + 10 * day,
        now - 40 * day,
    )
    .await;
    store
        .record_failure(
            &failing,
            &Failure {
                count: 2,
                next_attempt: now + 3600,
                kind: FailureKind::ValidationFailed,
                message: "validation failed".into(),
            },
            &[],
        )
        .await
        .expect("record the failure");
    save("expired.example.test".into(), now - 5, now - 50 * day).await;
    let total = 2 + due_count + 2;

    let handle = metrics::install();
    for (mode, listed, unlisted) in [
        (CertificateSeries::Due, limit, due_count + 2 - limit),
        (CertificateSeries::All, total, 0),
        (CertificateSeries::None, 0, total),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/metrics", listener.local_addr().expect("addr"));
        let server = tokio::spawn(
            axum::serve(listener, metrics::router(handle, store.clone(), mode)).into_future(),
        );
        let text = reqwest::get(&url)
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        server.abort();
        let scraped = parse_metrics(&text);
        for (state, count) in [
            ("valid", 2),
            ("due", due_count),
            ("backing_off", 1),
            ("expired", 1),
        ] {
            assert_eq!(
                value(&scraped, "certfleet_certificates", &[("state", state)]),
                count as f64,
                "{mode:?}: {state}"
            );
        }
        assert_eq!(
            value(
                &scraped,
                "certfleet_certificate_earliest_expiry_timestamp_seconds",
                &[]
            ),
            (now - 5) as f64
        );
        assert_eq!(
            value(&scraped, "certfleet_certificates_unlisted", &[]),
            unlisted as f64,
            "{mode:?}"
        );
        let expiry = scraped.get("certfleet_certificate_expiry_timestamp_seconds");
        let renewal = scraped.get("certfleet_certificate_renewal_timestamp_seconds");
        assert_eq!(
            expiry.map_or(0, Vec::len),
            listed,
            "{mode:?}: expiry series"
        );
        assert_eq!(
            renewal.map_or(0, Vec::len),
            listed,
            "{mode:?}: renewal series"
        );
        let names = |series: Option<&Vec<Series>>| -> Vec<String> {
            series
                .into_iter()
                .flatten()
                .map(|s| s.labels["names"].clone())
                .collect()
        };
        let listed_names = names(expiry);
        match mode {
            CertificateSeries::Due => {
                // Earliest renewal first: the expired and the failing ones, then the due ones
                // that have waited longest; never a valid one.
                let longest = format!("due-{}.example.test", due_count - 1);
                for name in ["expired.example.test", "failing.example.test", &longest] {
                    assert!(listed_names.iter().any(|n| n == name), "{name} is listed");
                }
                let latest = "due-0.example.test".to_owned();
                assert!(
                    !listed_names.contains(&latest),
                    "the latest due one is past the limit"
                );
                assert!(
                    !listed_names.iter().any(|n| n.starts_with("valid-")),
                    "no valid one"
                );
                let renewals: Vec<f64> = renewal.into_iter().flatten().map(|s| s.value).collect();
                assert!(renewals.iter().all(|at| *at <= now as f64), "only due rows");
            }
            CertificateSeries::All => {
                assert!(listed_names.iter().any(|n| n == "valid-1.example.test"));
                let expired = value(
                    &scraped,
                    "certfleet_certificate_expiry_timestamp_seconds",
                    &[
                        ("names", "expired.example.test"),
                        ("key_type", "ecdsa-p256"),
                    ],
                );
                assert_eq!(expired, (now - 5) as f64);
            }
            CertificateSeries::None => assert!(listed_names.is_empty()),
        }
    }
}

/// The cached fetch is certfleet's hot path, made cheap (issue 14): the audit line formatted
/// directly, spans with hand-written JSON fields, a borrowed query. On the real binary, in both
/// log formats, every cached GET still leaves all three traces with exactly the fields they
/// had: one audit line with every field (and the request's span), its HTTP and delivery series
/// counted and timed, and the request id on the answer, the line and the span alike.
#[tokio::test]
async fn the_fast_path_keeps_every_audit_field_metric_and_request_id() {
    const FETCHES: usize = 4;
    let pebble = Pebble::start(PebbleOptions::default()).await;
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
        let (api, metrics_port) = (free_port(), free_port());
        let yaml = base_yaml(&pebble, &db_url, "30s").replace(
            "server:\n",
            &format!(
                "server:\n  listen: \"127.0.0.1:{api}\"\n  metricsListen: \"127.0.0.1:{metrics_port}\"\n"
            ),
        ) + &format!("log:\n  format: {format}\n  level: info\n");
        let config = dir.path().join("certfleet.yaml");
        std::fs::write(&config, yaml).expect("write the config");
        let certfleet = process::serve(&config, None, None);
        let base = format!("http://127.0.0.1:{api}");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "not ready:\n{}", certfleet.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let issued = client
            .post(format!("{base}/api/certificate"))
            .header("Authorization", format!("APIKey {ADMIN_KEY}"))
            .json(&json!({"domain": NAME}))
            .send()
            .await
            .expect("POST");
        assert_eq!(issued.status(), 200, "{format}");
        let serial = {
            let body: Value = issued.json().await.expect("JSON body");
            let pem = body["certificate"].as_str().expect("certificate");
            let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
                .map(|c: rustls_pki_types::CertificateDer<'static>| c)
                .expect("leaf");
            let (_, leaf) = x509_parser::parse_x509_certificate(&der).expect("parse the leaf");
            leaf.raw_serial_as_string().replace(':', "")
        };

        // Cached fetches: half with the client's id, half with one certfleet makes.
        let mut ids = Vec::new();
        for i in 0..FETCHES {
            let mut request = client
                .get(format!("{base}/api/certificate?domain={NAME}"))
                .header("Authorization", format!("APIKey {ADMIN_KEY}"));
            if i % 2 == 0 {
                request = request.header("X-Request-Id", format!("fast-{format}-{i}"));
            }
            let response = request.send().await.expect("GET");
            assert_eq!(response.status(), 200, "{format}");
            let id = response.headers()["x-request-id"]
                .to_str()
                .expect("id")
                .to_owned();
            if i % 2 == 0 {
                assert_eq!(id, format!("fast-{format}-{i}"));
            } else {
                assert_eq!(id.len(), 20, "a generated id: {id}");
            }
            let body: Value = response.json().await.expect("JSON body");
            assert_eq!(body["cached"], true, "served from the store");
            ids.push(id);
        }

        // The audit lines of the fetches: every field, nothing else, and the span.
        let log = certfleet.log();
        let fetch_lines: Vec<(BTreeMap<String, String>, String)> = log
            .lines()
            .filter(|line| line.contains("certfleet::audit"))
            .map(|line| audit_fields(format, line))
            .collect();
        assert_eq!(
            fetch_lines.len(),
            FETCHES + 1,
            "{format}: the POST and each GET:\n{log}"
        );
        for ((fields, span_id), id) in fetch_lines[1..].iter().zip(&ids) {
            let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                [
                    "key_type",
                    "method",
                    "names",
                    "principal",
                    "remote",
                    "request_id",
                    "serial"
                ],
                "{format}: the audit line's fields"
            );
            assert_eq!(fields["principal"], "admin");
            assert_eq!(fields["method"], "psk");
            assert_eq!(fields["names"], NAME);
            assert_eq!(fields["key_type"], "ecdsa-p256");
            assert_eq!(fields["serial"], serial);
            assert!(fields["remote"].starts_with("127.0.0.1:"), "{fields:?}");
            assert_eq!(
                &fields["request_id"], id,
                "{format}: the line names the answer's id"
            );
            assert_eq!(span_id, id, "{format}: the request's span is on the line");
        }

        // Counted and timed, once per request.
        let text = client
            .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        let metrics = parse_metrics(&text);
        let get = [("route", "/api/certificate"), ("method", "GET")];
        let fetches = FETCHES as f64;
        assert_eq!(
            value(
                &metrics,
                "certfleet_http_requests_total",
                &[get[0], get[1], ("status", "200")]
            ),
            fetches,
            "{format}"
        );
        assert_eq!(
            value(
                &metrics,
                "certfleet_http_request_duration_seconds_count",
                &get
            ),
            fetches,
            "{format}"
        );
        let bucket = metrics["certfleet_http_request_duration_seconds_bucket"]
            .iter()
            .find(|s| {
                s.labels
                    .get("route")
                    .is_some_and(|r| r == "/api/certificate")
                    && s.labels.get("method").is_some_and(|m| m == "GET")
                    && s.labels["le"] == "+Inf"
            })
            .expect("the +Inf bucket");
        assert_eq!(bucket.value, fetches, "{format}");
        assert!(
            value(
                &metrics,
                "certfleet_http_request_duration_seconds_sum",
                &get
            ) > 0.0,
            "{format}"
        );
        assert_eq!(
            value(
                &metrics,
                "certfleet_private_key_deliveries_total",
                &[("method", "psk")]
            ),
            fetches + 1.0,
            "{format}"
        );
    }
}

/// One audit line's event fields, and the id of the span it names, in either format.
fn audit_fields(format: &str, line: &str) -> (BTreeMap<String, String>, String) {
    if format == "json" {
        let value: Value = serde_json::from_str(line).expect("a JSON line");
        let object = value.as_object().expect("an object");
        let mut fields = BTreeMap::new();
        for (key, value) in object {
            if ["timestamp", "level", "message", "target", "span"].contains(&key.as_str()) {
                continue;
            }
            fields.insert(
                key.clone(),
                value.as_str().expect("a string field").to_owned(),
            );
        }
        assert_eq!(value["message"], "private key delivered");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["span"]["name"], "request");
        let span = value["span"]["id"]
            .as_str()
            .expect("the span's id")
            .to_owned();
        return (fields, span);
    }
    // `<time>  INFO request{id=<id>}: certfleet::audit: private key delivered k=v k="v" ...`
    let (_, rest) = line
        .split_once(" INFO request{id=")
        .expect("the level and the span");
    let (span, rest) = rest.split_once("}: ").expect("the span's end");
    let rest = rest
        .strip_prefix("certfleet::audit: private key delivered ")
        .unwrap_or_else(|| panic!("the target and message: {line}"));
    let fields = rest
        .split(' ')
        .map(|pair| {
            let (key, value) = pair.split_once('=').expect("key=value");
            (key.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect();
    (fields, span.to_owned())
}

/// `server.cacheSize` bounds what the caches hold in bytes, whatever the number of certificates:
/// the real binary, 300 stored certificates of about 3 kB each and a 256 KiB cache (room for a
/// few dozen), every one fetched twice. Each answer is that certificate's own (a dropped entry
/// is read again, never confused with another); the cache gauges stay within the halves of the
/// budget and hold fewer entries than were fetched; nothing is cached before the first fetch.
#[tokio::test(flavor = "multi_thread")]
async fn the_cache_stays_within_its_size_and_serves_every_certificate() {
    use certfleet::config::Config;
    use certfleet::domain::{KeyType, NameSet};
    use certfleet::store::{self, StoredCert};

    const CERTIFICATES: usize = 300;
    const BUDGET: f64 = 256.0 * 1024.0;
    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const PSK: &str = "cache-test-key-0123456789abcdef0123456789abcdef";
    let name = |i: usize| format!("host{i}.cache.example");

    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("cache.db").display());
    let storage = format!("storage:\n  url: \"{db_url}\"\n  encryptionKey: \"{KEY}\"\n");
    let config = Config::from_yaml(&storage, std::iter::empty())
        .expect("config")
        .config;
    let store = store::open(&config.storage).await.expect("open the store");
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let pad = "A".repeat(64);
    for i in 0..CERTIFICATES {
        let pem = |what: &str, lines: usize| {
            format!(
                "-----BEGIN CERTIFICATE-----\n{what} {i}\n{}-----END CERTIFICATE-----\n",
                format!("{pad}\n").repeat(lines)
            )
        };
        let leaf = pem("leaf", 16);
        let issuer = pem("issuer", 8);
        let cert = StoredCert {
            names: NameSet::parse(&[name(i)]).expect("name"),
            key: certfleet::domain::KeySpec::Server(KeyType::EcdsaP256),
            profile: None,
            ca: None,
            cert_pem: format!("{leaf}{issuer}"),
            key_pem: Some(format!(
                "-----BEGIN PRIVATE KEY-----\nkey {i}\n-----END PRIVATE KEY-----\n"
            )),
            issuer_pem: issuer,
            serial: format!("{i:x}"),
            not_before: now - 86_400,
            not_after: now + 90 * 86_400,
            renew_after: now + 60 * 86_400,
            issued_at: now - 86_400,
        };
        store.save_certificate(&cert, &[]).await.expect("save");
    }
    drop(store);

    let (api, http01, metrics_port) = (free_port(), free_port(), free_port());
    let yaml = format!(
        "server:\n  listen: \"127.0.0.1:{api}\"\n  metricsListen: \"127.0.0.1:{metrics_port}\"\n  \
         cacheSize: 256KiB\n{storage}acme:\n  directoryUrl: \"https://127.0.0.1:9/dir\"\n\
         challenges:\n  http01:\n    listen: \"127.0.0.1:{http01}\"\n\
         auth:\n  psk:\n    keys:\n      - name: fleet\n        key: \"{PSK}\"\n        domains: [\"*\"]\n"
    );
    let config_file = dir.path().join("certfleet.yaml");
    std::fs::write(&config_file, yaml).expect("write the config");
    let certfleet = process::serve(&config_file, None, None);
    let base = format!("http://127.0.0.1:{api}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "not ready:\n{}", certfleet.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let scrape = || async {
        let text = client
            .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        parse_metrics(&text)
    };
    let gauge = |scraped: &BTreeMap<String, Vec<Series>>, family: &str, cache: &str| {
        scraped
            .get(family)
            .into_iter()
            .flatten()
            .find(|s| s.labels.get("cache").map(String::as_str) == Some(cache))
            .map(|s| s.value)
    };
    let before = scrape().await;
    assert_eq!(
        gauge(&before, "certfleet_cache_bytes", "certificates"),
        None
    );

    for round in 0..2 {
        for i in 0..CERTIFICATES {
            let response = client
                .get(format!("{base}/api/certificate?domain={}", name(i)))
                .header("Authorization", format!("APIKey {PSK}"))
                .send()
                .await
                .expect("GET");
            assert_eq!(response.status(), 200, "round {round}, {}", name(i));
            let body: Value = response.json().await.expect("JSON body");
            assert_eq!(body["domain"], name(i));
            let certificate = body["certificate"].as_str().expect("certificate");
            assert!(
                certificate.contains(&format!("leaf {i}\n")),
                "round {round}: {} got another certificate",
                name(i)
            );
            assert_eq!(
                body["privateKey"],
                format!("-----BEGIN PRIVATE KEY-----\nkey {i}\n-----END PRIVATE KEY-----\n")
            );
        }
    }

    let after = scrape().await;
    for cache in ["certificates", "renderings"] {
        let bytes = gauge(&after, "certfleet_cache_bytes", cache)
            .unwrap_or_else(|| panic!("no certfleet_cache_bytes for {cache}"));
        let entries = gauge(&after, "certfleet_cache_entries", cache)
            .unwrap_or_else(|| panic!("no certfleet_cache_entries for {cache}"));
        assert!(
            bytes > 0.0 && bytes <= BUDGET / 2.0,
            "{cache}: {bytes} bytes, budget {}",
            BUDGET / 2.0
        );
        assert!(
            entries >= 10.0 && entries < CERTIFICATES as f64,
            "{cache}: {entries} entries"
        );
    }
}
