//! DNS-PERSIST-01 and DNS-ACCOUNT-01 end to end against Pebble 2.10 and its challtestsrv.
//!
//! DNS-PERSIST-01: the record `certfleet dns-persist record NAME` (the real binary, on the same
//! store as the service) prints, placed in challtestsrv, gives a certificate with no DNS
//! provider configured and no HTTP-01 listener on Pebble's validation port; records that do not
//! fit (another account, no `policy=wildcard` for a wildcard, a past `persistUntil`, none at
//! all) are refused before any order; a `persistUntil` within `warnBefore` is logged, measured
//! and written as a `dns_persist.expiring` event (the real binary); the fallback CA validates
//! through the record of its own account (`--fallback`).
//! DNS-ACCOUNT-01: a certificate through the Cloudflare fake, whose TXT records challtestsrv
//! serves, under the account-scoped label.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common;
use crate::dns::cloudflare_fake::{self, CloudflareFake};
use common::service::{ADMIN_KEY, Service, base_yaml, json};
use common::{Pebble, PebbleOptions, free_port};

const CERT: &str = "/api/certificate";

/// A test's certfleet config on disk, with the service's database beside it.
struct Setup {
    dir: TempDir,
    db_url: String,
    yaml: String,
    file: PathBuf,
}

/// The base config with HTTP-01 on a port Pebble never dials, challtestsrv as the resolver, no
/// `challenges.dns01`, and `persist` as `challenges.dnsPersist` (YAML list items).
fn setup(pebble: &Pebble, persist: &str, extra: &str) -> Setup {
    let dir = tempfile::Builder::new()
        .prefix("certfleet-persist-")
        .tempdir()
        .expect("temporary directory");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let email = "  email: \"ops@example.test\"\n";
    let base = base_yaml(pebble, &db_url, "60s");
    assert!(base.contains(email), "the base config changed:\n{base}");
    // Pebble 2.10 picks a random profile for an order that names none.
    let yaml = base
        .replace(email, &format!("{email}  profile: default\n"))
        .replace(
            &format!("listen: \"127.0.0.1:{}\"", pebble.http_port()),
            &format!("listen: \"127.0.0.1:{}\"", free_port()),
        )
        .replace(
            "challenges:\n",
            &format!(
                "challenges:\n  resolvers: [\"{}\"]\n  dnsPersist:\n{persist}",
                pebble.dns_server()
            ),
        )
        + extra;
    let file = dir.path().join("certfleet.yaml");
    std::fs::write(&file, &yaml).expect("write the config");
    Setup {
        dir,
        db_url,
        yaml,
        file,
    }
}

/// `certfleet dns-persist record NAME --json --config FILE`, by the real binary.
fn printed_record(config: &Path, name: &str) -> Value {
    printed_record_of(config, name, &[])
}

/// [`printed_record`] with more arguments (`--fallback`).
fn printed_record_of(config: &Path, name: &str, more: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_certfleet"))
        .args(["dns-persist", "record", name, "--json"])
        .args(more)
        .arg("--config")
        .arg(config)
        .env_remove("CERTFLEET_CONFIG")
        .output()
        .expect("run certfleet dns-persist record");
    assert!(
        output.status.success(),
        "dns-persist record failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

async fn start(setup: Setup) -> Service {
    Service::start_yaml(&setup.yaml, setup.dir, setup.db_url).await
}

async fn post(service: &Service, body: Value) -> (u16, Value) {
    let response = service.post(CERT, ADMIN_KEY, body).await;
    let status = response.status().as_u16();
    (status, json(response).await)
}

#[tokio::test]
async fn the_printed_record_gives_a_certificate_without_dns_credentials_or_http01() {
    let pebble = Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await;
    let setup = setup(&pebble, "    - names: [\"persist.example.test\"]\n", "");
    let printed = printed_record(&setup.file, "persist.example.test");
    let value = printed["value"].as_str().expect("value");
    assert!(
        value.starts_with("pebble.letsencrypt.org; accounturi=https://127.0.0.1:"),
        "{printed}"
    );
    assert_eq!(
        printed["zoneLine"],
        format!("_validation-persist.persist.example.test. IN TXT \"{value}\"")
    );
    assert_eq!(printed["policy"], Value::Null);
    pebble
        .set_txt("_validation-persist.persist.example.test.", value)
        .await;

    let service = start(setup).await;
    let (status, body) = post(&service, json!({"domain": "persist.example.test"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pebble.issued_count(), 1);
    // The record names the account the service uses (loaded from the same store).
    let account = service
        .app
        .api
        .certs
        .issuer()
        .account_uri()
        .await
        .expect("account");
    assert_eq!(printed["accountUri"], account);
    assert_eq!(service.count_rows("presented").await, 0);
    // Pebble validated the authorization without any HTTP-01 request (its validation port
    // has no listener, and there is no DNS provider): through the standing record.
    let log = pebble.log();
    assert!(log.contains("set VALID by completed challenge"), "{log}");
    assert!(!log.contains("Attempting to validate w/ HTTP"), "{log}");
}

#[tokio::test]
async fn records_that_do_not_fit_are_refused_before_any_order() {
    let pebble = Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await;
    let setup = setup(
        &pebble,
        "    - names: [\"*.strict.example.test\"]\n    - names: [\"*.open.example.test\"]\n      \
         policy: wildcard\n",
        "",
    );
    let printed = printed_record(&setup.file, "a.strict.example.test");
    let mine = printed["value"].as_str().expect("value").to_owned();
    let account = printed["accountUri"].as_str().expect("account").to_owned();
    // Another account's record, a record without policy=wildcard for a wildcard, an expired one.
    pebble
        .set_txt(
            "_validation-persist.other.strict.example.test.",
            "pebble.letsencrypt.org; accounturi=https://127.0.0.1:1/my-account/999",
        )
        .await;
    pebble
        .set_txt("_validation-persist.w.open.example.test.", &mine)
        .await;
    let past = certfleet::util::clock::now() - 60;
    pebble
        .set_txt(
            "_validation-persist.old.strict.example.test.",
            &format!("{mine}; persistUntil={past}"),
        )
        .await;
    let service = start(setup).await;
    let orders = pebble.orders_count();

    let (status, body) = post(&service, json!({"domain": "other.strict.example.test"})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "dns_persist_record_mismatch", "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains("my-account/999"), "{message}");
    assert!(
        message.contains(&format!(
            "_validation-persist.other.strict.example.test. IN TXT \"pebble.letsencrypt.org; accounturi={account}\""
        )),
        "names what to publish: {message}"
    );

    let (status, body) = post(&service, json!({"domain": "none.strict.example.test"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("dns_persist_record_missing")),
        "{body}"
    );
    // Asked again while that failure backs off: the same code; the message is the first's.
    let (again, repeated) = post(&service, json!({"domain": "none.strict.example.test"})).await;
    assert_eq!(again, 502, "{repeated}");
    assert_eq!(repeated["code"], "dns_persist_record_missing", "{repeated}");
    assert!(
        repeated["message"]
            .as_str()
            .is_some_and(|m| m.contains("_validation-persist.none.strict.example.test")),
        "{repeated}"
    );

    let (status, body) = post(&service, json!({"domain": "old.strict.example.test"})).await;
    assert_eq!(body["code"], "dns_persist_record_expired", "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("expired at persistUntil"),
        "{body}"
    );
    assert_eq!(status, 502);

    // A wildcard under an entry without `policy: wildcard`: refused, saying what to set.
    let (status, body) = post(&service, json!({"domain": "*.x.strict.example.test"})).await;
    assert_eq!(body["code"], "dns_persist_record_mismatch", "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("policy: wildcard"),
        "{body}"
    );
    assert_eq!(status, 502);
    // Under one with it, a record without policy=wildcard does not cover the wildcard.
    let (status, body) = post(&service, json!({"domain": "*.w.open.example.test"})).await;
    assert_eq!(body["code"], "dns_persist_record_mismatch", "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("policy=wildcard"),
        "{body}"
    );
    assert_eq!(status, 502);

    // Asking for a challenge no entry answers for the name: the client's mistake, 400.
    for (challenge, section) in [
        ("dns-persist-01", "challenges.dnsPersist"),
        ("dns-account-01", "challenges.dns01"),
    ] {
        let (status, body) = post(
            &service,
            json!({"domain": "elsewhere.example.test", "challenge": challenge}),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_body")),
            "{body}"
        );
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains(challenge) && m.contains(section)),
            "{body}"
        );
    }

    assert_eq!(pebble.orders_count(), orders, "no order was created");
}

#[tokio::test]
async fn a_wildcard_and_its_base_through_one_record_with_policy_wildcard() {
    let pebble = Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await;
    let setup = setup(
        &pebble,
        "    - names: [\"wild.example.test\", \"*.wild.example.test\"]\n      policy: wildcard\n      \
         persistUntil: 365d\n",
        "",
    );
    let printed = printed_record(&setup.file, "*.wild.example.test");
    assert_eq!(printed["fqdn"], "_validation-persist.wild.example.test");
    assert_eq!(printed["policy"], "wildcard");
    let until = printed["persistUntil"].as_i64().expect("persistUntil");
    assert!(
        until > certfleet::util::clock::now() + 364 * 86_400,
        "{printed}"
    );
    let value = printed["value"].as_str().expect("value");
    assert!(
        value.ends_with(&format!("; policy=wildcard; persistUntil={until}")),
        "{value}"
    );
    pebble
        .set_txt("_validation-persist.wild.example.test.", value)
        .await;
    let service = start(setup).await;
    let (status, body) = post(
        &service,
        json!({"domains": ["wild.example.test", "*.wild.example.test"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pebble.issued_count(), 1);
}

#[tokio::test]
async fn dns_account_01_through_a_provider_under_the_account_label() {
    let pebble = Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await;
    let fake = CloudflareFake::start(&["acct.example.test"], Some(pebble.challtestsrv_url())).await;
    let entry = format!(
        "    - provider: cf\n      apiToken: \"{}\"\n      apiUrl: \"{}\"\n      \
         pollingInterval: 200ms\n      zones: [\"acct.example.test\"]\n      \
         challenge: dns-account-01\n",
        cloudflare_fake::TOKEN,
        fake.api_url()
    );
    let setup = setup(&pebble, "    - names: [\"unused.example.test\"]\n", "");
    let yaml = setup.yaml.replace(
        "  dnsPersist:\n",
        &format!("  dns01:\n{entry}  dnsPersist:\n"),
    );
    let service = Service::start_yaml(&yaml, setup.dir, setup.db_url).await;

    // The entry's `challenge`, and a request's `challenge` for a name of another entry kind.
    let (status, body) = post(&service, json!({"domain": "a.acct.example.test"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &service,
        json!({"domain": "b.acct.example.test", "challenge": "dns-account-01"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let account = service
        .app
        .api
        .certs
        .issuer()
        .account_uri()
        .await
        .expect("account");
    let label = certfleet::acme::dns01::account_label(&account);
    // The records the provider was asked to create: exactly the two account-scoped ones
    // (Pebble validated at them: it issued), no plain `_acme-challenge.` record.
    let created = fake.created();
    assert_eq!(
        created,
        [
            format!("{label}._acme-challenge.a.acct.example.test"),
            format!("{label}._acme-challenge.b.acct.example.test"),
        ],
        "calls: {:?}",
        fake.calls()
    );
    assert_eq!(fake.record_count(), 0, "records removed after issuance");
    assert_eq!(pebble.issued_count(), 2);
}

#[tokio::test]
async fn a_persist_until_within_warn_before_is_logged_measured_and_evented() {
    let pebble = Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await;
    let until = certfleet::util::clock::now() + 86_400;
    let setup = setup(
        &pebble,
        &format!(
            "    - names: [\"soon.example.test\"]\n      persistUntil: \"{}\"\n      \
             warnBefore: 30d\n    - names: [\"later.example.test\"]\n      persistUntil: 365d\n",
            certfleet::util::clock::rfc3339(until)
        ),
        "",
    );
    let printed = printed_record(&setup.file, "soon.example.test");
    assert_eq!(printed["persistUntil"], until, "{printed}");
    let value = printed["value"].as_str().expect("value");
    assert!(
        value.ends_with(&format!("; persistUntil={until}")),
        "{value}"
    );
    pebble
        .set_txt("_validation-persist.soon.example.test.", value)
        .await;
    let later = printed_record(&setup.file, "later.example.test");
    pebble
        .set_txt(
            "_validation-persist.later.example.test.",
            later["value"].as_str().expect("value"),
        )
        .await;

    // The real binary, with its metrics listener.
    let (api, metrics_port) = (free_port(), free_port());
    let yaml = setup.yaml.replace(
        "server:\n",
        &format!(
            "server:\n  listen: \"127.0.0.1:{api}\"\n  metricsListen: \"127.0.0.1:{metrics_port}\"\n"
        ),
    );
    std::fs::write(&setup.file, yaml).expect("write the config");
    let certfleet = common::process::serve(&setup.file, Some("info"), None);
    let base = format!("http://127.0.0.1:{api}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let listed = client
            .get(format!("{base}/api/events"))
            .header("Authorization", format!("APIKey {ADMIN_KEY}"))
            .send()
            .await;
        if let Ok(response) = listed
            && response.status() == 200
        {
            let list: Value = response.json().await.expect("JSON body");
            let expiring: Vec<Value> = list["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|event| event["type"] == "dns_persist.expiring")
                .collect();
            if !expiring.is_empty() {
                break expiring;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no dns_persist.expiring event:\n{}",
            certfleet.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // One event, about the record due within warnBefore; the one a year away is not one.
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt_"))
    );
    let log = certfleet.log();
    assert!(
        log.contains("persistUntil is near")
            && log.contains("_validation-persist.soon.example.test"),
        "{log}"
    );
    assert!(
        !log.contains("_validation-persist.later.example.test"),
        "{log}"
    );

    let scrape = client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let gauge = |entry: &str| -> f64 {
        let prefix = format!("certfleet_dns_persist_expires_seconds{{entry=\"{entry}\"}} ");
        scrape
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{scrape}"))
            .trim()
            .parse()
            .expect("a number")
    };
    let soon = gauge("0");
    assert!((86_000.0..=86_400.0).contains(&soon), "{soon}");
    let year = gauge("1");
    assert!(year > 364.0 * 86_400.0, "{year}");
    // The record names the account's URL, never anything secret.
    assert!(!scrape.contains("accounturi"), "{scrape}");
}

#[tokio::test]
async fn the_fallback_ca_validates_through_its_own_accounts_record() {
    let primary = Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await;
    let fallback = Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await;
    let setup = setup(&primary, "    - names: [\"both.example.test\"]\n", "");
    let email = "  email: \"ops@example.test\"\n";
    // The primary's challtestsrv goes with it: certfleet reads records at the fallback's.
    let resolvers = format!("  resolvers: [\"{}\"]\n", primary.dns_server());
    assert!(setup.yaml.contains(&resolvers), "{}", setup.yaml);
    let yaml = setup.yaml.replace(
        &resolvers,
        &format!("  resolvers: [\"{}\"]\n", fallback.dns_server()),
    );
    let yaml = yaml.replace(
        email,
        &format!(
            "{email}  fallback:\n    directoryUrl: \"{}\"\n    caCertificates: \"{}\"\n    \
             profile: default\n",
            fallback.directory_url(),
            fallback.ca().ca_pem_path().display()
        ),
    );
    std::fs::write(&setup.file, &yaml).expect("write the config");
    let mine = printed_record(&setup.file, "both.example.test");
    let theirs = printed_record_of(&setup.file, "both.example.test", &["--fallback"]);
    assert_ne!(mine["accountUri"], theirs["accountUri"]);
    let fallback_origin = fallback.directory_url().trim_end_matches("/dir").to_owned();
    assert!(
        theirs["accountUri"]
            .as_str()
            .is_some_and(|uri| uri.starts_with(&fallback_origin)),
        "{theirs} at {fallback_origin}"
    );
    fallback
        .set_txt(
            "_validation-persist.both.example.test.",
            theirs["value"].as_str().expect("value"),
        )
        .await;

    let service = Service::start_yaml(&yaml, setup.dir, setup.db_url).await;
    drop(primary);
    let (status, body) = post(&service, json!({"domain": "both.example.test"})).await;
    assert_eq!(status, 200, "{body}\n{}", fallback.log());
    assert_eq!(fallback.issued_count(), 1);
}
