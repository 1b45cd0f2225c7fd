//! ACME Renewal Information (RFC 9773) against Pebble 2.6: the renewal time is a point in the
//! CA's suggested window, and a renewal order names the certificate it replaces.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use instant_acme::{Account, AccountCredentials, Identifier, NewOrder, RevocationRequest};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use crate::common;
use certfleet::acme::ari;
use certfleet::acme::http::{AcmeHttp, client};
use certfleet::store::seal::Sealer;
use common::service::{ADMIN_KEY, Service, json};
use common::webhook::Receiver;
use common::{Pebble, PebbleOptions};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The RFC 9773 section 4.1 identifier, computed independently of certfleet.
fn cert_id(cert_pem: &str) -> String {
    let der = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()
        .expect("a certificate")
        .expect("PEM");
    let (_, cert) = X509Certificate::from_der(&der).expect("parse");
    let aki = cert
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("authority key identifier");
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(aki),
        URL_SAFE_NO_PAD.encode(cert.tbs_certificate.raw_serial())
    )
}

fn unix(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
        .unix_timestamp()
}

#[tokio::test]
async fn renewal_follows_the_ca_window_and_names_what_it_replaces() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pebble = Pebble::start(PebbleOptions {
        ari: true,
        ..Default::default()
    })
    .await;
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml.replace(
            "storage:\n",
            &format!("storage:\n  encryptionKey: \"{KEY}\"\n"),
        )
    })
    .await;
    let body = json(
        service
            .post(
                "/api/certificate",
                ADMIN_KEY,
                json!({"domain": "ari.example.test"}),
            )
            .await,
    )
    .await;
    let first_pem = body["certificate"]
        .as_str()
        .expect("certificate")
        .to_owned();

    // The CA's window for this certificate, asked directly.
    let http = pebble.ca().reqwest_client();
    let directory: Value = http
        .get(pebble.directory_url())
        .send()
        .await
        .expect("directory")
        .json()
        .await
        .expect("json");
    let renewal_info = directory["renewalInfo"]
        .as_str()
        .expect("Pebble 2.6 has ARI");
    let id = cert_id(&first_pem);
    assert_eq!(
        ari::identifier(&first_pem).expect("identifier").to_string(),
        id
    );
    let info: Value = http
        .get(format!("{renewal_info}/{id}"))
        .send()
        .await
        .expect("renewalInfo")
        .json()
        .await
        .expect("json");
    let start = unix(info["suggestedWindow"]["start"].as_str().expect("start"));
    let end = unix(info["suggestedWindow"]["end"].as_str().expect("end"));
    let renew_after = unix(body["renewAfter"].as_str().expect("renewAfter"));
    assert!(
        (start..=end).contains(&renew_after),
        "{renew_after} outside [{start}, {end}]"
    );
    let not_after = unix(body["notAfter"].as_str().expect("notAfter"));
    let not_before = unix(body["notBefore"].as_str().expect("notBefore"));
    assert!(renew_after > not_before && renew_after < not_after);

    // A forced renewal: its order must carry `replaces` for the first certificate.
    let renewed = service
        .post(
            "/api/certificate/renew",
            ADMIN_KEY,
            json!({"domain": "ari.example.test"}),
        )
        .await;
    assert_eq!(renewed.status(), 200);
    let second_pem = json(renewed).await["certificate"]
        .as_str()
        .expect("certificate")
        .to_owned();
    assert_ne!(second_pem, first_pem);

    // Proof from the CA's side, with certfleet's own account: the first certificate already has
    // its replacement order, the second does not.
    let account = certfleet_account(&service, &pebble).await;
    let identifiers = [Identifier::Dns("ari.example.test".to_owned())];
    let first_id = ari::identifier(&first_pem).expect("identifier");
    let err = account
        .new_order(&NewOrder::new(&identifiers).replaces(first_id))
        .await
        .err()
        .expect("the first certificate was already replaced by certfleet's renewal");
    assert!(
        err.to_string().contains("already has a replacement"),
        "{err}"
    );
    let second_id = ari::identifier(&second_pem).expect("identifier");
    account
        .new_order(&NewOrder::new(&identifiers).replaces(second_id))
        .await
        .expect("the renewed certificate has not been replaced yet");
}

/// certfleet's own ACME account, opened from its database with the test's storage key.
async fn certfleet_account(service: &Service, pebble: &Pebble) -> Account {
    let pool = sqlx::SqlitePool::connect(&service.db_url)
        .await
        .expect("database");
    let sealed: String = sqlx::query_scalar("SELECT credentials FROM acme_accounts")
        .fetch_one(&pool)
        .await
        .expect("the account");
    let key = certfleet::config::EncryptionKey::parse("key", KEY).expect("key");
    let sealer = Sealer::new(&key, &[]).expect("sealer");
    let opened = sealer
        .open(&sealed, &format!("account|{}", pebble.directory_url()))
        .expect("open the account");
    let credentials: AccountCredentials = serde_json::from_slice(&opened).expect("credentials");
    let http = AcmeHttp::new(
        client(Some(pebble.ca().ca_pem_path())).expect("client"),
        &pebble.directory_url(),
    );
    Account::builder_with_http(Box::new(http))
        .from_credentials(credentials)
        .await
        .expect("account")
}

/// A certificate revoked behind certfleet's back (here with certfleet's own account, as another
/// tool holding it could): Pebble moves its renewal window to now, certfleet's ARI watch
/// notices before the planned renewal, sends `certificate.renewal_advanced` and renews it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_moved_earlier_advances_the_renewal_with_an_event() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pebble = Pebble::start(PebbleOptions {
        ari: true,
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let hooks = crate::notify::notifications(&receiver.url("/hooks/ops"), "");
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml.replace(
            "storage:\n",
            &format!("storage:\n  encryptionKey: \"{KEY}\"\n"),
        ) + &hooks
    })
    .await;
    let name = "advanced.example.test";
    let body = json(
        service
            .post("/api/certificate", ADMIN_KEY, json!({"domain": name}))
            .await,
    )
    .await;
    let pem = body["certificate"]
        .as_str()
        .expect("certificate")
        .to_owned();
    let planned = unix(body["renewAfter"].as_str().expect("renewAfter"));
    let now = certfleet::util::clock::now();
    assert!(
        planned > now + 86_400,
        "Pebble's certificates renew years from now"
    );

    let account = certfleet_account(&service, &pebble).await;
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .expect("a certificate")
        .expect("PEM");
    account
        .revoke(&RevocationRequest {
            certificate: &der,
            reason: None,
        })
        .await
        .expect("revoked at the CA");

    // The first ARI look comes a tenth of the lifetime after issuance at the latest (6 hours
    // for Pebble's); have it now, as time passing would.
    sqlx::query("UPDATE certificates SET ari_next_check = 0")
        .execute(
            &sqlx::SqlitePool::connect(&service.db_url)
                .await
                .expect("db"),
        )
        .await
        .expect("due now");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (advanced, renewed) = loop {
        let got = crate::notify::events(&receiver.requests());
        let find = |kind: &str| {
            got.iter()
                .find(|(_, e)| e["type"] == kind)
                .map(|(_, e)| e.clone())
        };
        if let (Some(a), Some(r)) = (
            find("certificate.renewal_advanced"),
            find("certificate.renewed"),
        ) {
            break (a, r);
        }
        assert!(std::time::Instant::now() < deadline, "got {got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(advanced["data"]["certificate"]["names"], json!([name]));
    assert_eq!(
        unix(
            advanced["data"]["previousRenewAfter"]
                .as_str()
                .expect("previous")
        ),
        planned
    );
    assert!(
        unix(advanced["data"]["renewAfter"].as_str().expect("new")) <= now + 120,
        "{advanced}"
    );
    assert_eq!(
        renewed["data"]["previousSerial"],
        advanced["data"]["certificate"]["serial"]
    );
    let fresh = json(
        service
            .get(&format!("/api/certificate?domain={name}"), ADMIN_KEY)
            .await,
    )
    .await;
    assert_ne!(
        fresh["certificate"].as_str(),
        Some(pem.as_str()),
        "a new certificate is served"
    );
    let received = receiver.requests();
    crate::notify::assert_signed_once(&receiver, &received);
    let types: Vec<String> = crate::notify::events(&received)
        .into_iter()
        .map(|(_, e)| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "certificate.issued",
            "certificate.renewal_advanced",
            "certificate.renewed"
        ]
    );
}

/// Pebble 2.10 answers a second order replacing the same certificate with `alreadyReplaced`
/// (RFC 9773 section 7.4): certfleet's renewal must still be ordered, without `replaces`, when
/// an earlier order (here made by the test with certfleet's own account, as a crash between
/// the CA creating the order and certfleet saving its URL would leave) replaces it already.
#[tokio::test]
async fn a_renewal_whose_certificate_already_has_a_replacement_is_ordered_without_replaces() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pebble = Pebble::start(PebbleOptions {
        v2_10: true,
        profiles: vec![("default".to_owned(), 7_776_000)],
        ..Default::default()
    })
    .await;
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml.replace(
            "storage:\n",
            &format!("storage:\n  encryptionKey: \"{KEY}\"\n"),
        )
    })
    .await;
    let name = "replaced.example.test";
    let first = service
        .post("/api/certificate", ADMIN_KEY, json!({"domain": name}))
        .await;
    assert_eq!(first.status(), 200);
    let first_pem = json(first).await["certificate"]
        .as_str()
        .expect("certificate")
        .to_owned();

    // A replacement certfleet never stored: ordered, validated (certfleet's HTTP-01 listener
    // answers from its store, where the test puts the key authorization) and issued.
    let account = certfleet_account(&service, &pebble).await;
    let identifiers = [Identifier::Dns(name.to_owned())];
    let first_id = ari::identifier(&first_pem).expect("identifier");
    let mut order = account
        .new_order(&NewOrder::new(&identifiers).replaces(first_id.clone()))
        .await
        .expect("the replacement order");
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.expect("an authorization");
        let mut challenge = authz
            .challenge(instant_acme::ChallengeType::Http01)
            .expect("an HTTP-01 challenge");
        service
            .app
            .api
            .store
            .put_http01(
                &challenge.token,
                challenge.key_authorization().as_str(),
                certfleet::util::clock::now(),
            )
            .await
            .expect("the key authorization");
        challenge.set_ready().await.expect("validate");
    }
    let retry = instant_acme::RetryPolicy::new().timeout(std::time::Duration::from_secs(30));
    order.poll_ready(&retry).await.expect("ready");
    order.finalize().await.expect("finalize");
    order
        .poll_certificate(&retry)
        .await
        .expect("the replacement");
    let err = account
        .new_order(&NewOrder::new(&identifiers).replaces(first_id))
        .await
        .err()
        .expect("a second replacement of the same certificate is refused");
    assert!(err.to_string().contains("alreadyReplaced"), "{err}");

    let orders = pebble.orders_count();
    let renewed = service
        .post("/api/certificate/renew", ADMIN_KEY, json!({"domain": name}))
        .await;
    let status = renewed.status();
    let body = json(renewed).await;
    assert_eq!(status, 200, "{body}\n{}", pebble.log());
    assert_ne!(body["certificate"].as_str(), Some(first_pem.as_str()));
    assert_eq!(
        pebble.orders_count(),
        orders + 1,
        "one order, without replaces, after the refused one"
    );
}
