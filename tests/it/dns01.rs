//! DNS-01 end to end: certificates for an apex and its wildcard, issued by a real Pebble that
//! validates the TXT records through a real BIND (RFC 2136 with TSIG) or through challtestsrv,
//! where the in-process Cloudflare and Google Cloud DNS fakes publish theirs. Provider failures
//! give 502 `dns_error` and leave no record behind; two providers serve two zones; records a
//! killed process left behind are removed at the next start.

use std::time::{Duration, Instant};

use certfleet::acme::solver::{Presented, Solver};
use certfleet::domain::{CertKey, KeyType, NameSet};
use certfleet::store::PresentedRecord;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::common;
use crate::dns;
use common::service::{ADMIN_KEY, Service, json};
use common::{Pebble, PebbleOptions};
use dns::Fault;
use dns::bind::{Bind, KEY_NAME};
use dns::cloudflare_fake::{self, CloudflareFake};
use dns::gcloud_fake::GcloudFake;

const CERT: &str = "/api/certificate";

/// The certfleet YAML with `dns01` entries (YAML list items, 4-space indented) and resolvers.
fn with_dns01(yaml: &str, entries: &str, resolvers: &str) -> String {
    yaml.replace(
        "challenges:\n",
        &format!("challenges:\n  resolvers: [\"{resolvers}\"]\n  dns01:\n{entries}"),
    )
}

fn cloudflare_entry(fake: &CloudflareFake, zones: &str, extra: &str) -> String {
    format!(
        "    - provider: cf\n      apiToken: \"{}\"\n      apiUrl: \"{}\"\n{zones}{extra}",
        cloudflare_fake::TOKEN,
        fake.api_url()
    )
}

fn gcloud_entry(fake: &GcloudFake, dir: &std::path::Path, zones: &str, extra: &str) -> String {
    let path = dir.join("service-account.json");
    std::fs::write(&path, fake.service_account_json()).expect("write the key file");
    format!(
        "    - provider: googleCloud\n      serviceAccountFile: \"{}\"\n      apiUrl: \"{}\"\n{zones}{extra}",
        path.display(),
        fake.api_url()
    )
}

/// The DNS names in the leaf of a success body, sorted.
fn leaf_names(body: &Value) -> Vec<String> {
    let pem = body["certificate"].as_str().expect("certificate");
    let leaf = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .expect("a leaf")
        .expect("PEM");
    common::san_dns_names(&leaf)
}

/// POSTs `names` and expects a fresh certificate for exactly them.
async fn issue(service: &Service, names: &[&str]) -> Value {
    let response = service
        .post(CERT, ADMIN_KEY, json!({"domains": names}))
        .await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 200, "{body}");
    let mut want: Vec<String> = names.iter().map(ToString::to_string).collect();
    want.sort();
    assert_eq!(leaf_names(&body), want);
    body
}

async fn expect_dns_error(service: &Service, names: &[&str]) -> String {
    let response = service
        .post(CERT, ADMIN_KEY, json!({"domains": names}))
        .await;
    assert_eq!(response.status(), 502);
    let body = json(response).await;
    assert_eq!(body["code"], "dns_error", "{body}");
    body["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn rfc2136_issues_an_apex_and_wildcard_certificate_validated_through_bind() {
    let bind = Bind::start(&["example.test"]).await;
    let pebble = Pebble::start(PebbleOptions {
        dns_server: Some(bind.addr()),
        ..PebbleOptions::default()
    })
    .await;
    // No zones: the zone comes from the SOA walk through the resolver, BIND.
    let entry = format!(
        "    - provider: rfc2136\n      nameserver: \"{}\"\n      tsigKeyName: {KEY_NAME}\n      \
         tsigSecret: \"{}\"\n      tsigAlgorithm: hmac-sha256\n      pollingInterval: 200ms\n",
        bind.addr(),
        bind.secret()
    );
    let service = Service::start_with(&pebble, "60s", |yaml| {
        with_dns01(&yaml, &entry, &bind.addr())
    })
    .await;
    issue(&service, &["example.test", "*.example.test"]).await;

    let server = bind.addr().parse().expect("address");
    let left = certfleet::dns::wire::txt_values(
        server,
        "_acme-challenge.example.test",
        Duration::from_secs(2),
    )
    .await
    .expect("query BIND");
    assert!(left.is_empty(), "TXT records left in BIND: {left:?}");
    assert_eq!(service.count_rows("presented").await, 0);
    assert_eq!(pebble.issued_count(), 1);
}

#[tokio::test]
async fn cloudflare_issues_an_apex_and_wildcard_certificate_end_to_end() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let fake = CloudflareFake::start(&["example.test"], Some(pebble.challtestsrv_url())).await;
    // No zones: challtestsrv answers SOA with NOTIMP, so the zone comes from GET /zones?name=.
    let entry = cloudflare_entry(&fake, "", "      pollingInterval: 200ms\n");
    let service = Service::start_with(&pebble, "60s", |yaml| {
        with_dns01(&yaml, &entry, &pebble.dns_server())
    })
    .await;
    issue(&service, &["example.test", "*.example.test"]).await;
    assert_eq!(fake.record_count(), 0, "records removed after issuance");
    let posts = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("POST"))
        .count();
    assert_eq!(posts, 2, "one TXT record per authorization");
    assert_eq!(service.count_rows("presented").await, 0);
}

#[tokio::test]
async fn gcloud_issues_an_apex_and_wildcard_certificate_end_to_end() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let fake = GcloudFake::start(&["example.test"], Some(pebble.challtestsrv_url())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = gcloud_entry(&fake, dir.path(), "", "      pollingInterval: 200ms\n");
    let service = Service::start_with(&pebble, "60s", |yaml| {
        with_dns01(&yaml, &entry, &pebble.dns_server())
    })
    .await;
    issue(&service, &["example.test", "*.example.test"]).await;
    assert_eq!(fake.rrset_count(), 0, "rrsets removed after issuance");
    // Apex and wildcard share one rrset: the second value was merged into it, not replacing it.
    assert!(fake.changes() >= 3, "{} changes", fake.changes());
    assert_eq!(service.count_rows("presented").await, 0);
}

#[tokio::test]
async fn a_provider_500_is_a_clean_502_and_leaves_no_record() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let fake = CloudflareFake::start(&["example.test"], Some(pebble.challtestsrv_url())).await;
    let entry = cloudflare_entry(&fake, "      zones: [example.test]\n", "");
    let service = Service::start_with(&pebble, "60s", |yaml| {
        with_dns01(&yaml, &entry, &pebble.dns_server())
    })
    .await;
    fake.set_fault(Fault::ServerError);
    let message = expect_dns_error(&service, &["example.test", "*.example.test"]).await;
    assert_eq!(
        message,
        "cloudflare: create TXT record in zone example.test: 500 10001 Internal server error"
    );
    assert!(!message.contains(cloudflare_fake::TOKEN));
    assert_eq!(fake.record_count(), 0);
    assert_eq!(service.count_rows("presented").await, 0);
    assert_eq!(pebble.issued_count(), 0);
}

#[tokio::test]
async fn a_provider_timeout_is_a_clean_502_and_leaves_no_record() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let fake = GcloudFake::start(&["example.test"], Some(pebble.challtestsrv_url())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = gcloud_entry(
        &fake,
        dir.path(),
        "      zones: [example.test]\n",
        "      timeout: 2s\n",
    );
    let service = Service::start_with(&pebble, "60s", |yaml| {
        with_dns01(&yaml, &entry, &pebble.dns_server())
    })
    .await;
    fake.set_fault(Fault::Hang);
    let started = Instant::now();
    let message = expect_dns_error(&service, &["example.test", "*.example.test"]).await;
    assert_eq!(
        message,
        "gcloud: create TXT record in zone example.test: the API did not answer in time"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(fake.rrset_count(), 0);
    assert_eq!(service.count_rows("presented").await, 0);
}

#[tokio::test]
async fn two_providers_serve_two_zones_each_through_its_own() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let cf = CloudflareFake::start(&["cf.test"], Some(pebble.challtestsrv_url())).await;
    let gc = GcloudFake::start(&["gc.test"], Some(pebble.challtestsrv_url())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let entries = format!(
        "{}{}",
        cloudflare_entry(
            &cf,
            "      zones: [cf.test]\n",
            "      pollingInterval: 200ms\n"
        ),
        gcloud_entry(
            &gc,
            dir.path(),
            "      zones: [gc.test]\n",
            "      pollingInterval: 200ms\n"
        )
    );
    let service = Service::start_with(&pebble, "60s", |yaml| {
        with_dns01(&yaml, &entries, &pebble.dns_server())
    })
    .await;

    issue(&service, &["cf.test", "*.cf.test"]).await;
    let cf_posts = cf.calls().iter().filter(|c| c.starts_with("POST")).count();
    assert_eq!(
        (cf_posts, gc.changes()),
        (2, 0),
        "cf.test went through Cloudflare only"
    );

    issue(&service, &["gc.test", "*.gc.test"]).await;
    let cf_posts = cf.calls().iter().filter(|c| c.starts_with("POST")).count();
    assert_eq!(cf_posts, 2, "gc.test did not touch Cloudflare");
    assert!(gc.changes() >= 2, "gc.test went through Google Cloud DNS");
    assert_eq!((cf.record_count(), gc.rrset_count()), (0, 0));
}

#[tokio::test]
async fn the_challenge_is_chosen_per_name_and_a_request_may_force_it() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let fake = CloudflareFake::start(&["cf.test"], Some(pebble.challtestsrv_url())).await;
    let entry = cloudflare_entry(
        &fake,
        "      zones: [cf.test]\n",
        "      pollingInterval: 200ms\n",
    );
    let service = Service::start_with(&pebble, "60s", |yaml| {
        with_dns01(&yaml, &entry, &pebble.dns_server())
    })
    .await;
    let posts = || {
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("POST"))
            .count()
    };

    // No entry for other.test: dns-01 and wildcards are refused before any order.
    let response = service
        .post(
            CERT,
            ADMIN_KEY,
            json!({"domain": "other.test", "challenge": "dns-01"}),
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(json(response).await["code"], "invalid_body");
    let response = service
        .post(CERT, ADMIN_KEY, json!({"domains": ["*.other.test"]}))
        .await;
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["code"], "invalid_domain");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("DNS-01"),
        "{body}"
    );
    assert_eq!(pebble.orders_count(), 0);

    // A name outside every entry's zones uses HTTP-01.
    issue(&service, &["www.other.test"]).await;
    assert_eq!(posts(), 0);
    // A name inside one uses DNS-01, unless the request asks for HTTP-01.
    let response = service
        .post(
            CERT,
            ADMIN_KEY,
            json!({"domain": "http.cf.test", "challenge": "http-01"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(posts(), 0, "http-01 was asked for");
    issue(&service, &["dns.cf.test"]).await;
    assert_eq!(posts(), 1, "dns.cf.test is in cf.test: DNS-01");
}

#[tokio::test]
async fn records_a_killed_process_left_behind_are_removed_at_the_next_start() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let fake = CloudflareFake::start(&["example.test"], Some(pebble.challtestsrv_url())).await;
    let entry = cloudflare_entry(
        &fake,
        "      zones: [example.test]\n",
        "      pollingInterval: 200ms\n",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let yaml = with_dns01(
        &common::service::base_yaml(&pebble, &db_url, "60s"),
        &entry,
        &pebble.dns_server(),
    );

    // A first process presented two records and was killed: one with its provider handle
    // stored, one killed between the provider's add and storing the handle (intent only).
    let key = CertKey {
        names: NameSet::parse(&["left.example.test"]).expect("names"),
        key: certfleet::domain::KeySpec::Server(KeyType::EcdsaP256),
        profile: None,
    };
    {
        let loaded =
            certfleet::config::Config::from_yaml(&yaml, std::iter::empty()).expect("config");
        let store = certfleet::store::open(&loaded.config.storage)
            .await
            .expect("store");
        let solver = certfleet::acme::dns01::Dns01Solver::new(
            &loaded.config.challenges.dns01,
            loaded.config.challenges.resolvers.clone(),
        )
        .expect("solver");
        store
            .begin_order(&key, certfleet::util::clock::now())
            .await
            .expect("order");
        for (i, stored_final) in [(1, true), (2, false)] {
            let prepared = solver
                .prepare("left.example.test", "t", &format!("key-authorization-{i}"))
                .await
                .expect("prepare");
            let presented: Presented = solver
                .present(&prepared, "t", &format!("key-authorization-{i}"))
                .await
                .expect("present");
            let handle = if stored_final {
                presented.handle
            } else {
                prepared.handle
            };
            let record = PresentedRecord {
                challenge_type: "dns-01".to_owned(),
                name: "left.example.test".to_owned(),
                handle,
            };
            store.add_presented(&key, &record).await.expect("record");
        }
        assert_eq!(fake.record_count(), 2);
    }

    // The next start resumes the order: it is issued and both records are gone.
    let service = Service::start_yaml(&yaml, tempfile::tempdir().expect("tempdir"), db_url).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.record_count() > 0
        || service.count_rows("presented").await > 0
        || service.count_rows("certificates").await == 0
    {
        assert!(
            Instant::now() < deadline,
            "left-behind records stayed: {} in the fake",
            fake.record_count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
