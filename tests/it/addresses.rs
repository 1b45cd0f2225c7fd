//! IP address certificates (RFC 8738) and TLS-ALPN-01 (RFC 8737, RFC 8738 section 6) against
//! Pebble 2.10: addresses over HTTP-01 with no TLS-ALPN-01 configured, names and addresses over
//! TLS-ALPN-01 with no HTTP-01 listener at all, TLS-ALPN-01 answered on certfleet's own TLS
//! listener, and the credential patterns that hold addresses (no DNS pattern, not even `*`, does).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::common;
use common::service::{ADMIN_KEY, FLEET_A_KEY, Service, json};
use common::{Pebble, PebbleOptions};

const CERT: &str = "/api/certificate";
/// A key whose patterns hold 127.0.0.0/8, ::1 and names below ip.example.test.
const IP_KEY: &str = "ip-key-0123456789abcdef0123456789abcdef0123";
/// A key whose patterns hold 10.0.0.0/8 only.
const OTHER_NET_KEY: &str = "net-key-0123456789abcdef0123456789abcdef012";
const SIX_DAYS: u64 = 518_400;

/// Whether this machine has IPv6 loopback: the `::1` cases run only then.
fn has_ipv6() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

async fn pebble() -> Pebble {
    Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await
}

/// The base config with `acme.profile: default`, the two address keys, and `challenges` as
/// given (replacing the base's HTTP-01 section).
fn edit(yaml: &str, pebble: &Pebble, challenges: &str) -> String {
    let anchor = "        domains: [\"*.a.example.test\", \"a.example.test\"]\n";
    let email = "  email: \"ops@example.test\"\n";
    let http01 = format!(
        "challenges:\n  http01:\n    listen: \"127.0.0.1:{}\"\n",
        pebble.http_port()
    );
    assert!(
        yaml.contains(anchor) && yaml.contains(email) && yaml.contains(&http01),
        "the base config changed:\n{yaml}"
    );
    yaml.replace(email, &format!("{email}  profile: default\n"))
        .replace(&http01, challenges)
        .replace(
            anchor,
            &format!(
                "{anchor}      - name: ip\n        key: \"{IP_KEY}\"\n        domains: \
                 [\"127.0.0.0/8\", \"::1\", \"*.ip.example.test\"]\n      - name: other-net\n        \
                 key: \"{OTHER_NET_KEY}\"\n        domains: [\"10.0.0.0/8\"]\n"
            ),
        )
}

/// The leaf's subjectAltNames (DNS names as text, addresses parsed) and its lifetime.
fn leaf(body: &Value) -> (Vec<String>, u64) {
    let der = common::leaf_der(body);
    let (_, cert) = X509Certificate::from_der(&der).expect("parse the leaf");
    let mut sans = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                sans.push(match name {
                    GeneralName::DNSName(dns) => (*dns).to_owned(),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("v4")).to_string(),
                        _ => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("v6")).to_string(),
                    },
                    other => format!("{other}"),
                });
            }
        }
    }
    sans.sort();
    let validity = cert.validity();
    let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp() + 1;
    (sans, u64::try_from(lifetime).expect("positive"))
}

async fn answer(service: &Service, key: &str, body: &Value) -> (u16, Value) {
    let response = service.post(CERT, key, body.clone()).await;
    let status = response.status().as_u16();
    (status, json(response).await)
}

async fn issued(service: &Service, key: &str, body: Value) -> (Vec<String>, u64) {
    let (status, answer) = answer(service, key, &body).await;
    assert_eq!(status, 200, "{body}: {answer}");
    leaf(&answer)
}

#[tokio::test]
async fn addresses_are_certified_over_http01_and_only_for_credentials_whose_patterns_hold_them() {
    let pebble = pebble().await;
    // Dual-stack, so that Pebble reaches the listener at 127.0.0.1 and at ::1.
    let listen = if has_ipv6() { "[::]" } else { "127.0.0.1" };
    let challenges = format!(
        "challenges:\n  http01:\n    listen: \"{listen}:{}\"\n",
        pebble.http_port()
    );
    let service =
        Service::start_with(&pebble, "30s", |yaml| edit(&yaml, &pebble, &challenges)).await;

    // No profile asked: the one for addresses, `shortlived` since Pebble lists it.
    let (sans, lifetime) = issued(&service, IP_KEY, json!({"domain": "127.0.0.1"})).await;
    assert_eq!(sans, ["127.0.0.1"]);
    assert_eq!(lifetime, SIX_DAYS, "an address gets the shortlived profile");
    // The same identity read back by GET, and asked again: the stored certificate.
    let got = service
        .get(&format!("{CERT}?domain=127.0.0.1"), IP_KEY)
        .await;
    assert_eq!(got.status(), 200);
    let (status, again) = answer(&service, IP_KEY, &json!({"domain": "127.0.0.1"})).await;
    assert_eq!((status, again["cached"].clone()), (200, json!(true)));
    assert_eq!(pebble.orders_count(), 1);

    // A name and an address on one certificate.
    let (sans, _) = issued(
        &service,
        IP_KEY,
        json!({"domains": ["www.ip.example.test", "127.0.0.2"], "challenge": "http-01"}),
    )
    .await;
    assert_eq!(sans, ["127.0.0.2", "www.ip.example.test"]);
    if has_ipv6() {
        let (sans, _) = issued(&service, IP_KEY, json!({"domain": "[::1]"})).await;
        assert_eq!(sans, ["::1"]);
    }
    let orders = pebble.orders_count();

    // Refused before any order: patterns that do not hold the address, `*` (the admin key has
    // no domain list) included; and DNS-01 for an address.
    for key in [FLEET_A_KEY, OTHER_NET_KEY, ADMIN_KEY] {
        let (status, body) = answer(&service, key, &json!({"domain": "127.0.0.3"})).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["code"], "domain_not_allowed", "{body}");
    }
    let (status, body) = answer(
        &service,
        IP_KEY,
        &json!({"domain": "127.0.0.3", "challenge": "dns-01"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("DNS-01")),
        "{body}"
    );
    let (status, body) = answer(&service, IP_KEY, &json!({"domain": "fe80::1%lo"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_domain", "{body}");
    assert_eq!(pebble.orders_count(), orders, "no order for a refusal");
}

#[tokio::test]
async fn tls_alpn01_alone_validates_names_and_addresses_with_no_http01_listener() {
    let pebble = pebble().await;
    let listen = if has_ipv6() { "[::]" } else { "127.0.0.1" };
    let challenges = format!(
        "challenges:\n  tlsAlpn01:\n    listen: \"{listen}:{}\"\n",
        pebble.tls_port()
    );
    let service =
        Service::start_with(&pebble, "30s", |yaml| edit(&yaml, &pebble, &challenges)).await;
    // challenges.tlsAlpn01 without a challenges.http01 section: no HTTP-01 listener at all.
    let http = tokio::net::TcpStream::connect(("127.0.0.1", pebble.http_port())).await;
    assert!(http.is_err(), "nothing may listen on Pebble's httpPort");

    let (sans, lifetime) =
        issued(&service, ADMIN_KEY, json!({"domain": "alpn.example.test"})).await;
    assert_eq!(sans, ["alpn.example.test"]);
    assert_eq!(lifetime, 7_776_000, "a name keeps acme.profile");
    let (sans, lifetime) = issued(&service, IP_KEY, json!({"domain": "127.0.0.1"})).await;
    assert_eq!(sans, ["127.0.0.1"]);
    assert_eq!(lifetime, SIX_DAYS);
    if has_ipv6() {
        let (sans, _) = issued(
            &service,
            IP_KEY,
            json!({"domain": "::1", "challenge": "tls-alpn-01"}),
        )
        .await;
        assert_eq!(sans, ["::1"]);
    }
    let orders = pebble.orders_count();
    let (status, body) = answer(
        &service,
        ADMIN_KEY,
        &json!({"domain": "h.example.test", "challenge": "http-01"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("challenges.http01")),
        "{body}"
    );
    assert_eq!(pebble.orders_count(), orders);
}

#[tokio::test]
async fn tls_alpn01_is_answered_on_certfleets_own_tls_listener() {
    let pebble = pebble().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["certs.example.test".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    std::fs::write(dir.path().join("tls.pem"), cert.pem()).expect("write cert");
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).expect("write key");
    let address: SocketAddr = format!("127.0.0.1:{}", pebble.tls_port())
        .parse()
        .expect("address");
    let tls = format!(
        "server:\n  listen: \"{address}\"\n  tls:\n    certFile: \"{}\"\n    keyFile: \"{}\"\n",
        dir.path().join("tls.pem").display(),
        dir.path().join("tls.key").display()
    );
    let challenges = format!("challenges:\n  tlsAlpn01:\n    listen: \"{address}\"\n");
    let service = Service::start_with(&pebble, "30s", |yaml| {
        edit(&yaml, &pebble, &challenges).replace("server:\n", &tls)
    })
    .await;
    // The API request itself goes over the same TLS listener that answers the CA's acme-tls/1.
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let response = client
        .post(format!("https://{address}{CERT}"))
        .header("Authorization", format!("APIKey {IP_KEY}"))
        .json(&json!({"domains": ["beside.ip.example.test", "127.0.0.1"]}))
        .send()
        .await
        .expect("POST over TLS");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(status, 200, "{body}");
    assert_eq!(leaf(&body).0, ["127.0.0.1", "beside.ip.example.test"]);
    assert_eq!(pebble.orders_count(), 1);
    drop(service);
}
