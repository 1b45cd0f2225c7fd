//! The DNS conformance suite: every provider, against the real thing where it can run here (BIND
//! for RFC 2136) and against faithful fakes of the APIs that cannot (Cloudflare, Google Cloud
//! DNS), observed through DNS: add, visible, delete, gone; two values under one name, deleting
//! one keeps the other; adding twice and deleting twice succeed; deleting a record without its
//! handle (a crash came between the add and storing it) and a record that never existed succeed.
//! Zone discovery too: the SOA walk against BIND, the provider-API fallback against challtestsrv
//! (which answers SOA with NOTIMP).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use certfleet::config::{
    CloudflareConfig, GcloudConfig, Rfc2136Config, Secret, ServiceAccountKey, TsigAlgorithm,
};
use certfleet::dns::{DnsProvider, TxtRecord, cloudflare, gcloud, rfc2136, wire, zone};

use crate::common;
use crate::dns;
use common::{Pebble, PebbleOptions};
use dns::Fault;
use dns::bind::{Bind, KEY_NAME};
use dns::cloudflare_fake::{self, CloudflareFake};
use dns::gcloud_fake::GcloudFake;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The suite every provider passes, on `fqdn`'s zone `zone`, observed at `server`.
async fn conformance(provider: &dyn DnsProvider, zone: &str, server: SocketAddr) {
    let fqdn = format!("_acme-challenge.conformance.{zone}");
    let record = |value: &str| TxtRecord {
        zone: zone.to_owned(),
        fqdn: fqdn.clone(),
        value: value.to_owned(),
    };
    let (a, b) = (record("value-a-0123456789"), record("value-b-0123456789"));
    let name = provider.name();

    let handle_a = provider
        .add_txt(&a)
        .await
        .unwrap_or_else(|e| panic!("{name}: add a: {e}"));
    visible(server, &fqdn, &[&a.value]).await;
    let handle_b = provider
        .add_txt(&b)
        .await
        .unwrap_or_else(|e| panic!("{name}: add b: {e}"));
    visible(server, &fqdn, &[&a.value, &b.value]).await;
    // Adding a value that is there already (a retry after a crash) succeeds, adds nothing.
    let again = provider
        .add_txt(&b)
        .await
        .unwrap_or_else(|e| panic!("{name}: add b again: {e}"));
    assert_eq!(
        again, handle_b,
        "{name}: adding twice hands back the same record"
    );
    visible(server, &fqdn, &[&a.value, &b.value]).await;

    provider
        .delete_txt(&a, Some(&handle_a))
        .await
        .unwrap_or_else(|e| panic!("{name}: delete a: {e}"));
    visible(server, &fqdn, &[&b.value]).await;
    provider
        .delete_txt(&a, Some(&handle_a))
        .await
        .unwrap_or_else(|e| panic!("{name}: delete a again (already gone) must succeed: {e}"));
    // Without its handle, the record is found by name and value.
    provider
        .delete_txt(&b, None)
        .await
        .unwrap_or_else(|e| panic!("{name}: delete b without handle: {e}"));
    visible(server, &fqdn, &[]).await;
    provider
        .delete_txt(&record("never-added"), None)
        .await
        .unwrap_or_else(|e| panic!("{name}: deleting a missing record must succeed: {e}"));
}

/// Waits until `fqdn` answers exactly `values` at `server`.
async fn visible(server: SocketAddr, fqdn: &str, values: &[&str]) {
    let mut want: Vec<String> = values.iter().map(ToString::to_string).collect();
    want.sort();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut seen = wire::txt_values(server, fqdn, Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("query {fqdn} at {server}: {e}"));
        seen.sort();
        if seen == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{fqdn} at {server}: want {want:?}, see {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rfc2136_provider(bind: &Bind, secret: &str, key_name: &str) -> rfc2136::Rfc2136 {
    let config = Rfc2136Config {
        nameserver: bind.addr(),
        tsig_key_name: key_name.to_owned(),
        tsig_secret: Secret::new(secret.to_owned()),
        tsig_algorithm: TsigAlgorithm::HmacSha256,
    };
    rfc2136::Rfc2136::new(&config, 60, TIMEOUT).expect("rfc2136 provider")
}

fn cloudflare_provider(fake: &CloudflareFake, token: &str) -> cloudflare::Cloudflare {
    let config = CloudflareConfig {
        api_url: fake.api_url(),
        api_token: Secret::new(token.to_owned()),
    };
    cloudflare::Cloudflare::new(&config, 120, TIMEOUT).expect("cloudflare provider")
}

fn service_account_key(fake: &GcloudFake) -> gcloud::Credentials {
    let key = ServiceAccountKey::from_json(&fake.service_account_json()).expect("key");
    gcloud::Credentials::ServiceAccount(key)
}

fn gcloud_provider(
    fake: &GcloudFake,
    credentials: gcloud::Credentials,
    project: Option<&str>,
) -> gcloud::GoogleCloudDns {
    let config = GcloudConfig {
        api_url: fake.api_url(),
        project: project.map(str::to_owned),
        service_account: None,
    };
    gcloud::GoogleCloudDns::with_credentials(&config, credentials, 120, TIMEOUT)
        .expect("gcloud provider")
}

#[tokio::test]
async fn rfc2136_passes_the_suite_against_bind() {
    let bind = Bind::start(&["example.test"]).await;
    let server: SocketAddr = bind.addr().parse().expect("address");
    let provider = rfc2136_provider(&bind, bind.secret(), KEY_NAME);
    // BIND answers SOA: the walk finds the zone from any name below it.
    let found = zone::find(
        "_acme-challenge.a.b.example.test",
        &[],
        &[server],
        &provider,
        TIMEOUT,
    )
    .await
    .expect("SOA walk");
    assert_eq!(found, "example.test");
    conformance(&provider, "example.test", server).await;
}

#[tokio::test]
async fn rfc2136_refuses_a_wrong_secret_and_an_unknown_key_clearly() {
    let bind = Bind::start(&["example.test"]).await;
    let server: SocketAddr = bind.addr().parse().expect("address");
    let record = TxtRecord {
        zone: "example.test".to_owned(),
        fqdn: "_acme-challenge.example.test".to_owned(),
        value: "forged".to_owned(),
    };
    let wrong = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=";
    let err = rfc2136_provider(&bind, wrong, KEY_NAME)
        .add_txt(&record)
        .await
        .expect_err("a wrong secret is refused");
    let text = err.to_string();
    assert!(
        text.starts_with("rfc2136: create TXT record in zone example.test: "),
        "{text}"
    );
    assert!(
        text.contains("NOTAUTH (TSIG BADSIG)") && text.contains("tsigSecret"),
        "{text}"
    );
    assert!(
        !text.contains(wrong) && !text.contains(bind.secret()),
        "no secret in {text}"
    );

    let err = rfc2136_provider(&bind, bind.secret(), "other-key")
        .add_txt(&record)
        .await
        .expect_err("an unknown key is refused");
    assert!(err.to_string().contains("NOTAUTH (TSIG BADKEY)"), "{err}");
    // Nothing was written.
    visible(server, &record.fqdn, &[]).await;
}

#[tokio::test]
async fn cloudflare_passes_the_suite_against_its_fake() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let server: SocketAddr = pebble.dns_server().parse().expect("address");
    let fake = CloudflareFake::start(
        &["example.test", "other.test"],
        Some(pebble.challtestsrv_url()),
    )
    .await;
    let provider = cloudflare_provider(&fake, cloudflare_fake::TOKEN);
    // challtestsrv answers SOA with NOTIMP: the zone comes from GET /zones?name=.
    let found = zone::find(
        "_acme-challenge.www.example.test",
        &[],
        &[server],
        &provider,
        TIMEOUT,
    )
    .await
    .expect("zone through the API");
    assert_eq!(found, "example.test");
    conformance(&provider, "example.test", server).await;
    assert_eq!(fake.record_count(), 0);
}

#[tokio::test]
async fn cloudflare_errors_carry_its_codes_and_rate_limits_are_retried() {
    let fake = CloudflareFake::start(&["example.test"], None).await;
    let record = TxtRecord {
        zone: "example.test".to_owned(),
        fqdn: "_acme-challenge.example.test".to_owned(),
        value: "v".to_owned(),
    };
    let err = cloudflare_provider(&fake, "bad-token-1234")
        .add_txt(&record)
        .await
        .expect_err("a bad token is refused");
    assert_eq!(
        err.to_string(),
        "cloudflare: create TXT record in zone example.test: 403 9109 Invalid access token"
    );
    let provider = cloudflare_provider(&fake, cloudflare_fake::TOKEN);
    fake.set_fault(Fault::RateLimit(2));
    provider
        .add_txt(&record)
        .await
        .expect("429 answers are retried");
    assert_eq!(fake.values(&record.fqdn), ["v"]);
    fake.set_fault(Fault::ServerError);
    let err = provider
        .add_txt(&TxtRecord {
            value: "w".to_owned(),
            ..record.clone()
        })
        .await
        .expect_err("500");
    assert_eq!(
        err.to_string(),
        "cloudflare: create TXT record in zone example.test: 500 10001 Internal server error"
    );
}

#[tokio::test]
async fn gcloud_passes_the_suite_with_a_service_account_and_with_the_platform_identity() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let server: SocketAddr = pebble.dns_server().parse().expect("address");
    let fake = GcloudFake::start(&["example.test"], Some(pebble.challtestsrv_url())).await;
    let key = service_account_key(&fake);
    let provider = gcloud_provider(&fake, key, None);
    let found = zone::find(
        "_acme-challenge.www.example.test",
        &[],
        &[server],
        &provider,
        TIMEOUT,
    )
    .await
    .expect("zone through the API");
    assert_eq!(found, "example.test");
    conformance(&provider, "example.test", server).await;
    assert_eq!(fake.rrset_count(), 0);

    // The metadata server's identity (Compute Engine, GKE workload identity), its project too.
    let metadata = gcloud::Credentials::Metadata {
        base_url: fake.base().to_owned(),
    };
    conformance(
        &gcloud_provider(&fake, metadata, None),
        "example.test",
        server,
    )
    .await;
}

#[tokio::test]
async fn gcloud_keeps_values_another_writer_added_and_retries_conflicts() {
    let fake = GcloudFake::start(&["example.test"], None).await;
    let key = service_account_key(&fake);
    let provider = gcloud_provider(&fake, key, Some(dns::gcloud_fake::PROJECT));
    let fqdn = "_acme-challenge.example.test";
    fake.put_rrset("zone-0", fqdn, &["someone-else"]);
    let record = TxtRecord {
        zone: "example.test".to_owned(),
        fqdn: fqdn.to_owned(),
        value: "mine".to_owned(),
    };
    let handle = provider
        .add_txt(&record)
        .await
        .expect("add beside another value");
    let mut values = fake.values(fqdn);
    values.sort();
    assert_eq!(values, ["mine", "someone-else"]);
    // Another writer changes the rrset between certfleet's read and its change: 412, retried.
    fake.interfere_once("zone-0", fqdn, &["someone-else", "mine", "third"]);
    provider
        .delete_txt(&record, Some(&handle))
        .await
        .expect("delete");
    assert_eq!(
        fake.conflicts(),
        1,
        "the first change met 412 conditionNotMet"
    );
    let mut values = fake.values(fqdn);
    values.sort();
    assert_eq!(values, ["someone-else", "third"]);
    fake.set_fault(Fault::RateLimit(1));
    provider.add_txt(&record).await.expect("429 is retried");
    fake.set_fault(Fault::ServerError);
    let err = provider.delete_txt(&record, None).await.expect_err("500");
    assert_eq!(
        err.to_string(),
        "gcloud: delete TXT record in zone example.test: 500 backendError: Internal error. Please try again."
    );
}

#[test]
fn gcloud_refuses_keys_that_are_not_service_account_keys() {
    for (json, want) in [
        ("not json", "is not JSON"),
        (
            r#"{"type": "authorized_user"}"#,
            "not a service-account key",
        ),
        (
            r#"{"type": "service_account", "client_email": "x@y"}"#,
            "lacks private_key",
        ),
    ] {
        let err = ServiceAccountKey::from_json(json).expect_err(json);
        assert!(err.to_string().contains(want), "{json}: {err}");
    }
}
