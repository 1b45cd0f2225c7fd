//! Proves the test harness in `tests/it/common/` against the real Pebble: each test fails if the
//! harness is broken (wrong trust, wrong ports, wrong config keys, a log marker Pebble does not
//! print, a proxy answer an ACME client would not take as a rate limit).
//!
//! End-to-end issuance through certfleet lives in its own test files; the one order placed here
//! goes through instant-acme directly, to prove `set_txt`, `add_a`, `issued_count` and
//! `orders_count`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::StatusCode;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, ExternalAccountKey,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

use crate::common;
use common::{Pebble, PebbleOptions, RateLimitProxy, TestCa, free_port};

#[tokio::test]
async fn directory_answers_over_https_trusting_the_test_ca() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let url = pebble.directory_url();
    assert!(
        url.starts_with("https://127.0.0.1:") && url.ends_with("/dir"),
        "{url}"
    );

    let directory = get_json(&pebble.ca().reqwest_client(), &url).await;
    for key in [
        "newNonce",
        "newAccount",
        "newOrder",
        "revokeCert",
        "keyChange",
    ] {
        let value = directory[key].as_str().unwrap_or_default();
        assert!(
            value.starts_with("https://127.0.0.1:"),
            "{key} in {directory}"
        );
    }

    // The trust really is this Pebble's TestCa: another CA's client is refused.
    let stranger = TestCa::new().reqwest_client();
    assert!(
        stranger.get(&url).send().await.is_err(),
        "TLS accepted without trusting ca()"
    );
    let ca_pem = std::fs::read_to_string(pebble.ca().ca_pem_path()).expect("read ca.pem");
    assert_eq!(ca_pem, pebble.ca().ca_pem());
}

#[tokio::test]
async fn root_and_intermediate_are_pem_certificates() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let root = pebble.root_pem().await;
    let intermediate = pebble.intermediate_pem().await;
    for (name, pem) in [("root", &root), ("intermediate", &intermediate)] {
        assert!(pem.contains("-----BEGIN CERTIFICATE-----"), "{name}: {pem}");
        assert_eq!(certificates(pem).len(), 1, "{name}: {pem}");
    }
    assert_ne!(root, intermediate);
    assert_ne!(
        root,
        pebble.ca().ca_pem(),
        "the issuing root is not the HTTPS CA"
    );
}

#[tokio::test]
async fn two_pebbles_run_at_once() {
    let (a, b) = tokio::join!(
        Pebble::start(PebbleOptions::default()),
        Pebble::start(PebbleOptions::default()),
    );
    assert_ne!(a.directory_url(), b.directory_url());
    assert_ne!(a.http_port(), b.http_port());
    assert_ne!(a.tls_port(), b.tls_port());
    assert_ne!(a.dns_server(), b.dns_server());
    for pebble in [&a, &b] {
        let directory = get_json(&pebble.ca().reqwest_client(), &pebble.directory_url()).await;
        assert!(directory["newOrder"].is_string(), "{directory}");
    }
    // Each has its own issuing root.
    assert_ne!(a.root_pem().await, b.root_pem().await);
}

#[tokio::test]
async fn options_and_environment_reach_pebble() {
    let http_port = free_port();
    let pebble = Pebble::start(PebbleOptions {
        http_port: Some(http_port),
        validity_secs: Some(120),
        nonce_reject_percent: 50,
        ..PebbleOptions::default()
    })
    .await;
    assert_eq!(pebble.http_port(), http_port);
    let log = pebble.log();
    for line in [
        "Using certificate validity period of 120 seconds",
        "Configured to reject 50% of good nonces",
        "Disabling random VA sleeps",
        "Configured to attempt authz reuse for each identifier 0% of the time",
        &format!(
            "Using custom DNS resolver for ACME challenges: {}",
            pebble.dns_server()
        ),
        "Creating TCP and UDP DNS-01 challenge server on",
    ] {
        assert!(
            log.contains(line),
            "no {line:?} in the captured output:\n{log}"
        );
    }
}

#[tokio::test]
async fn counts_start_at_zero() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    assert_eq!(pebble.issued_count(), 0, "{}", pebble.log());
    assert_eq!(pebble.orders_count(), 0, "{}", pebble.log());
}

#[tokio::test]
async fn eab_keys_make_external_account_required() {
    let hmac = URL_SAFE_NO_PAD.encode([7_u8; 32]);
    let pebble = Pebble::start(PebbleOptions {
        eab_keys: vec![("kid-1".to_owned(), hmac.clone())],
        ..PebbleOptions::default()
    })
    .await;
    let directory = get_json(&pebble.ca().reqwest_client(), &pebble.directory_url()).await;
    assert_eq!(
        directory["meta"]["externalAccountRequired"], true,
        "{directory}"
    );

    let refused = new_account(&pebble, &pebble.directory_url(), None).await;
    let error = refused.err().expect("an account without EAB is refused");
    assert!(
        error.to_string().contains("externalAccountRequired")
            || format!("{error:?}").contains("externalAccountRequired"),
        "{error:?}"
    );
    let key = ExternalAccountKey::new(
        "kid-1".to_owned(),
        &URL_SAFE_NO_PAD.decode(&hmac).expect("base64url key"),
    );
    new_account(&pebble, &pebble.directory_url(), Some(&key))
        .await
        .expect("an account with the configured EAB key is accepted");

    let plain = Pebble::start(PebbleOptions::default()).await;
    let directory = get_json(&plain.ca().reqwest_client(), &plain.directory_url()).await;
    assert_ne!(
        directory["meta"]["externalAccountRequired"], true,
        "{directory}"
    );
}

#[tokio::test]
async fn blocklist_rejects_the_identifier() {
    let pebble = Pebble::start(PebbleOptions {
        blocklist: vec!["blocked.harness.test".to_owned()],
        ..PebbleOptions::default()
    })
    .await;
    let account = new_account(&pebble, &pebble.directory_url(), None)
        .await
        .expect("create account");
    let names = [Identifier::Dns("blocked.harness.test".to_owned())];
    let error = account
        .new_order(&NewOrder::new(&names))
        .await
        .err()
        .expect("a blocklisted name is refused");
    assert!(
        format!("{error:?}").contains("rejectedIdentifier"),
        "{error:?}"
    );
    assert_eq!(pebble.orders_count(), 0, "{}", pebble.log());
}

#[tokio::test]
async fn proxy_refuses_new_orders_and_forwards_the_rest() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let proxy = RateLimitProxy::start(&pebble, 7).await;
    let client = pebble.ca().reqwest_client();
    let proxy_base = proxy.directory_url().trim_end_matches("/dir").to_owned();
    let pebble_base = pebble.directory_url().trim_end_matches("/dir").to_owned();
    assert_ne!(proxy_base, pebble_base);

    let directory = get_json(&client, &proxy.directory_url()).await;
    let new_order = directory["newOrder"].as_str().expect("newOrder");
    assert_eq!(new_order, format!("{proxy_base}/new-order"));
    for key in ["newNonce", "newAccount", "revokeCert", "keyChange"] {
        let url = directory[key].as_str().unwrap_or_default();
        assert!(
            url.starts_with(&pebble_base),
            "{key}: {url} is not Pebble's"
        );
    }

    let response = client
        .post(new_order)
        .header("content-type", "application/jose+json")
        .body("{}")
        .send()
        .await
        .expect("POST new-order");
    assert_eq!(response.status(), 429);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("retry-after"), "7");
    assert_eq!(header("content-type"), "application/problem+json");
    let nonce = header("replay-nonce");
    assert!(!nonce.is_empty(), "no Replay-Nonce");
    let problem: Value = response.json().await.expect("problem JSON");
    assert_eq!(problem["type"], "urn:ietf:params:acme:error:rateLimited");
    assert_eq!(problem["status"], 429);
    assert_eq!(proxy.rejected(), 1);

    // A real ACME client sees the rate limit; its account still lives at Pebble.
    let account = new_account(&pebble, &proxy.directory_url(), None)
        .await
        .expect("create account through the proxy's directory");
    let names = [Identifier::Dns("limited.harness.test".to_owned())];
    let error = account
        .new_order(&NewOrder::new(&names))
        .await
        .err()
        .expect("the proxy refuses the order");
    assert!(format!("{error:?}").contains("rateLimited"), "{error:?}");
    assert_eq!(proxy.rejected(), 2);
    assert_eq!(pebble.orders_count(), 0);

    let url = proxy.directory_url();
    drop(proxy);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        client.get(&url).send().await.is_err(),
        "proxy still serves after drop"
    );
}

#[tokio::test]
async fn challtestsrv_serves_the_records_it_is_given() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let dns = pebble.dns_server();

    let default = dns_query(&dns, "anything.harness.test", 1).await;
    assert_eq!(answer_count(&default), 1, "every name resolves by default");
    assert!(contains(&default, &[127, 0, 0, 1]));
    pebble.add_a("moved.harness.test", "127.0.0.9").await;
    let moved = dns_query(&dns, "moved.harness.test", 1).await;
    assert!(contains(&moved, &[127, 0, 0, 9]), "{moved:?}");

    let name = "_acme-challenge.txt.harness.test";
    assert_eq!(answer_count(&dns_query(&dns, name, 16).await), 0);
    pebble.set_txt(name, "token-digest-value").await;
    let txt = dns_query(&dns, name, 16).await;
    assert_eq!(answer_count(&txt), 1);
    assert!(contains(&txt, b"token-digest-value"), "{txt:?}");
    pebble.clear_txt(name).await;
    assert_eq!(answer_count(&dns_query(&dns, name, 16).await), 0);
}

/// One order with a DNS-01 name (`set_txt`) and an HTTP-01 name that resolves, through
/// `add_a`, to 127.0.0.2 where the only challenge server listens: Pebble issues only if both
/// work, and the log counters see one order and one certificate.
#[tokio::test]
async fn issuance_is_counted_and_dns_records_are_served() {
    let pebble = Pebble::start(PebbleOptions {
        validity_secs: Some(3600),
        ..PebbleOptions::default()
    })
    .await;
    let account = new_account(&pebble, &pebble.directory_url(), None)
        .await
        .expect("create account");
    let (dns_name, http_name) = ("dns.harness.test", "http.harness.test");
    pebble.add_a(http_name, "127.0.0.2").await;

    let names = [
        Identifier::Dns(dns_name.to_owned()),
        Identifier::Dns(http_name.to_owned()),
    ];
    let mut order = account
        .new_order(&NewOrder::new(&names))
        .await
        .expect("new order");
    let mut http_tokens = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.expect("authorization");
        assert_eq!(authz.status, AuthorizationStatus::Pending);
        let Identifier::Dns(name) = authz.identifier().identifier.clone() else {
            panic!("unexpected identifier");
        };
        if name == dns_name {
            let challenge = authz.challenge(ChallengeType::Dns01).expect("dns-01");
            let value = challenge.key_authorization().dns_value();
            pebble
                .set_txt(&format!("_acme-challenge.{name}"), &value)
                .await;
        } else {
            let challenge = authz.challenge(ChallengeType::Http01).expect("http-01");
            http_tokens.push((challenge.token.clone(), challenge.key_authorization()));
        }
    }
    let _http01 = serve_http01(pebble.http_port(), http_tokens).await;

    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.expect("authorization");
        let kind = if authz.identifier().to_string() == dns_name {
            ChallengeType::Dns01
        } else {
            ChallengeType::Http01
        };
        let mut challenge = authz.challenge(kind).expect("challenge");
        challenge.set_ready().await.expect("challenge ready");
    }
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(200))
        .backoff(1.0)
        .timeout(Duration::from_secs(20));
    let status = order.poll_ready(&retries).await.expect("poll order");
    assert_eq!(
        status,
        OrderStatus::Ready,
        "{:#?}\n{}",
        order.state(),
        pebble.log()
    );

    let key = KeyPair::generate().expect("leaf key");
    let csr = CertificateParams::new(vec![dns_name.to_owned(), http_name.to_owned()])
        .expect("CSR params")
        .serialize_request(&key)
        .expect("CSR");
    order.finalize_csr(csr.der()).await.expect("finalize");
    let chain = order.poll_certificate(&retries).await.expect("certificate");

    assert_eq!(pebble.issued_count(), 1, "{}", pebble.log());
    assert_eq!(pebble.orders_count(), 1, "{}", pebble.log());
    let intermediate = certificates(&pebble.intermediate_pem().await);
    let chain = certificates(&chain);
    assert_eq!(chain.len(), 2, "leaf + intermediate");
    assert_eq!(
        chain[1], intermediate[0],
        "issued under the management API's intermediate"
    );
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).expect("parse leaf");
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert!(
        (3599..=3600).contains(&lifetime),
        "validity_secs not applied: {lifetime} s"
    );
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: body: {e}"))
}

fn certificates(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("parse PEM certificates: {e:?}\n{pem}"))
}

/// One DNS question (`qtype` 1 = A, 16 = TXT) over UDP; the raw response.
async fn dns_query(server: &str, name: &str, qtype: u16) -> Vec<u8> {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(u8::try_from(label.len()).expect("short label"));
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    query.extend_from_slice(&qtype.to_be_bytes());
    query.extend_from_slice(&1_u16.to_be_bytes());
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind UDP");
    socket
        .send_to(&query, server)
        .await
        .expect("send DNS query");
    let mut response = vec![0; 1500];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut response))
        .await
        .expect("DNS answer in time")
        .expect("receive DNS answer");
    response.truncate(len);
    assert_eq!(response[..2], query[..2], "answer to another query");
    response
}

fn answer_count(response: &[u8]) -> u16 {
    u16::from_be_bytes([response[6], response[7]])
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn new_account(
    pebble: &Pebble,
    directory_url: &str,
    eab: Option<&ExternalAccountKey>,
) -> Result<Account, instant_acme::Error> {
    let http = Box::new(ReqwestHttp(pebble.ca().reqwest_client()));
    let new_account = NewAccount {
        contact: &[],
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    Account::builder_with_http(http)
        .create(&new_account, directory_url.to_owned(), eab)
        .await
        .map(|(account, _credentials)| account)
}

/// Serves HTTP-01 answers on 127.0.0.2 only: Pebble reaches it only through `add_a`.
async fn serve_http01(
    port: u16,
    tokens: Vec<(String, instant_acme::KeyAuthorization)>,
) -> AbortOnDrop {
    let answers: Vec<(String, String)> = tokens
        .into_iter()
        .map(|(token, key_auth)| (token, key_auth.as_str().to_owned()))
        .collect();
    let router = Router::new()
        .route("/.well-known/acme-challenge/{token}", get(http01_answer))
        .with_state(Arc::new(answers));
    let listener = tokio::net::TcpListener::bind(("127.0.0.2", port))
        .await
        .expect("bind 127.0.0.2 for HTTP-01");
    AbortOnDrop(tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve HTTP-01");
    }))
}

async fn http01_answer(
    State(answers): State<Arc<Vec<(String, String)>>>,
    Path(token): Path<String>,
) -> Result<String, StatusCode> {
    answers
        .iter()
        .find(|(t, _)| *t == token)
        .map(|(_, answer)| answer.clone())
        .ok_or(StatusCode::NOT_FOUND)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// instant-acme's `HttpClient` over reqwest, to trust the Pebble's `TestCa` (certfleet builds
/// instant-acme without its hyper-rustls client).
struct ReqwestHttp(reqwest::Client);

impl HttpClient for ReqwestHttp {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request.map(reqwest::Body::wrap))
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let response = client
                .execute(request)
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            Ok(BytesResponse::from(http::Response::<reqwest::Body>::from(
                response,
            )))
        })
    }
}

#[tokio::test]
async fn pebble_2_10_lists_its_profiles_and_asks_dns_over_tcp_of_its_challtestsrv() {
    let pebble = Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await;
    let dir: Value = pebble
        .ca()
        .reqwest_client()
        .get(pebble.directory_url())
        .send()
        .await
        .expect("GET the directory")
        .json()
        .await
        .expect("the directory is JSON");
    let profiles = dir["meta"]["profiles"]
        .as_object()
        .unwrap_or_else(|| panic!("no meta.profiles in {dir}"));
    let mut names: Vec<&str> = profiles.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["default", "shortlived"], "{dir}");
    assert_eq!(profiles["shortlived"], "518400 s", "{dir}");
    // challtestsrv 2.10 answers DNS over TCP too (Pebble 2.10 asks over TCP).
    let log = pebble.log();
    assert!(
        log.contains("Creating TCP and UDP DNS-01 challenge server on")
            || log.contains("Creating TCP and UDP DNS server on"),
        "challtestsrv serves no TCP DNS:\n{log}"
    );
}
