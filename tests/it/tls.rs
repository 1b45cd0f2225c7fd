//! certfleet's own TLS with a real TLS client (rustls through reqwest): SNI selection between
//! the public certificate and the self-signed fallback, file reload, a corrupt file ignored,
//! the self-obtained certificate from Pebble swapped in after a renewal, the fallback's
//! fingerprint stable across restarts, the dashboard's session cookie `Secure` over TLS only.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;

use crate::common;
use common::service::{ADMIN_KEY, Service};
use common::{Pebble, PebbleOptions};

const HOST: &str = "certs.example.test";

/// A private CA that signs leaves for `HOST`.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "certfleet TLS test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).expect("CA").pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes a fresh leaf for `HOST` into `dir` and returns its DER.
    fn write_leaf(&self, dir: &Path) -> Vec<u8> {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec![HOST.to_owned()]).expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        // Write the key first, then the certificate: the reloader looks at both.
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("write key");
        std::fs::write(dir.join("tls.pem"), cert.pem()).expect("write cert");
        cert.der().to_vec()
    }
}

/// The DER of the certificate the server presents for `sni` (no SNI for an IP address).
async fn presented(addr: SocketAddr, sni: Option<&str>, trust: Option<&str>) -> Vec<u8> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    builder = match trust {
        Some(pem) => builder
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(pem.as_bytes()).expect("CA")),
        None => builder.tls_danger_accept_invalid_certs(true),
    };
    let url = match sni {
        Some(name) => {
            builder = builder.resolve(name, addr);
            format!("https://{name}:{}/healthz", addr.port())
        }
        None => format!("https://{addr}/healthz"),
    };
    let response = builder
        .build()
        .expect("client")
        .get(url)
        .send()
        .await
        .expect("TLS request");
    assert_eq!(response.status(), 200);
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("TLS info");
    info.peer_certificate().expect("a certificate").to_vec()
}

fn fingerprint(der: &[u8]) -> String {
    certfleet::tls::fingerprint(der)
}

fn api_addr(service: &Service) -> SocketAddr {
    service
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address")
}

/// The config of a service serving the leaf `Ca::write_leaf` put in `dir` (`tls.pem`,
/// `tls.key`), storing into `dir`; and its database URL.
fn files_config(dir: &Path) -> (String, String) {
    let db_url = format!("sqlite://{}", dir.join("certfleet.db").display());
    let tls = format!(
        "    certFile: \"{}\"\n    keyFile: \"{}\"\n",
        dir.join("tls.pem").display(),
        dir.join("tls.key").display()
    );
    (yaml(&db_url, &tls), db_url)
}

fn yaml(db_url: &str, tls: &str) -> String {
    format!(
        "server:\n  tls:\n{tls}storage:\n  url: \"{db_url}\"\nacme:\n  directoryUrl: \"https://127.0.0.1:9/dir\"\nchallenges:\n  http01:\n    listen: \"127.0.0.1:0\"\nauth:\n  psk:\n    keys:\n      - name: admin\n        key: \"{ADMIN_KEY}\"\n"
    )
}

#[tokio::test]
async fn files_are_served_by_sni_reloaded_and_a_corrupt_one_ignored() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let first = ca.write_leaf(dir.path());
    let (config, db_url) = files_config(dir.path());
    let service =
        Service::start_yaml(&config, tempfile::tempdir().expect("tmp"), db_url.clone()).await;
    let addr = api_addr(&service);

    assert_eq!(
        presented(addr, Some(HOST), Some(&ca.pem)).await,
        first,
        "the configured name gets its certificate"
    );
    let fallback = presented(addr, None, None).await;
    assert_ne!(fallback, first, "no SNI gets the fallback");
    assert_eq!(
        presented(addr, Some("unknown.example.test"), None).await,
        fallback,
        "an unknown name too"
    );
    assert_eq!(
        fingerprint(&fallback),
        service
            .app
            .tls
            .as_ref()
            .expect("TLS")
            .fallback_fingerprint(),
        "the fallback is the one certfleet logs"
    );

    // Replaced on disk: picked up without a restart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = ca.write_leaf(dir.path());
    let deadline = Instant::now() + Duration::from_secs(15);
    while presented(addr, Some(HOST), Some(&ca.pem)).await != second {
        assert!(
            Instant::now() < deadline,
            "the new certificate file was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A corrupt replacement is ignored: the last good certificate stays.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(
        dir.path().join("tls.pem"),
        "-----BEGIN CERTIFICATE-----\nbroken\n",
    )
    .expect("corrupt");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(presented(addr, Some(HOST), Some(&ca.pem)).await, second);

    // HTTP/2 is offered (ALPN) and plain HTTP/1.1 still works.
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.pem.as_bytes()).expect("CA"))
        .resolve(HOST, addr)
        .build()
        .expect("client");
    let response = client
        .get(format!("https://{HOST}:{}/healthz", addr.port()))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
}

#[tokio::test]
async fn the_fallback_fingerprint_survives_a_restart() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("tempdir");
    ca.write_leaf(dir.path());
    let (config, db_url) = files_config(dir.path());
    let first =
        Service::start_yaml(&config, tempfile::tempdir().expect("tmp"), db_url.clone()).await;
    let before = presented(api_addr(&first), None, None).await;
    first.stop().await;
    let second = Service::start_yaml(&config, tempfile::tempdir().expect("tmp"), db_url).await;
    let after = presented(api_addr(&second), None, None).await;
    assert_eq!(fingerprint(&before), fingerprint(&after));
}

#[tokio::test]
async fn certfleet_obtains_its_own_certificate_and_swaps_in_renewals() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml.replace(
            "server:\n",
            &format!("server:\n  tls:\n    acme:\n      hostnames: [\"{HOST}\"]\n"),
        )
    })
    .await;
    let addr = api_addr(&service);
    let root = pebble.root_pem().await;
    let fallback = presented(addr, None, None).await;

    // Until the public certificate is issued the fallback serves everyone; then the name gets it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let public = loop {
        let served = presented(addr, Some(HOST), None).await;
        if served != fallback {
            break served;
        }
        assert!(
            Instant::now() < deadline,
            "certfleet never obtained its own certificate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // It chains to Pebble's root: a client trusting that root connects by name.
    assert_eq!(presented(addr, Some(HOST), Some(&root)).await, public);

    // A renewal (forced through the API, over TLS) is served to new connections, no restart.
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(root.as_bytes()).expect("root"))
        .resolve(HOST, addr)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let renewed = client
        .post(format!(
            "https://{HOST}:{}/api/certificate/renew",
            addr.port()
        ))
        .header("Authorization", format!("APIKey {ADMIN_KEY}"))
        .json(&json!({"domain": HOST}))
        .send()
        .await
        .expect("renew over TLS");
    assert_eq!(renewed.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    while presented(addr, Some(HOST), Some(&root)).await == public {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not swapped in"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The HTTP-01 listener sends everything but challenges to HTTPS.
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = http
        .get(format!(
            "http://127.0.0.1:{}/api/certificate?domain=x",
            pebble.http_port()
        ))
        .header("Host", HOST)
        .send()
        .await
        .expect("plain HTTP");
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!("https://{HOST}:{}/api/certificate?domain=x", addr.port()).as_str()
    );
    let challenge = http
        .get(format!(
            "http://127.0.0.1:{}/.well-known/acme-challenge/nope",
            pebble.http_port()
        ))
        .send()
        .await
        .expect("challenge path");
    assert_eq!(
        challenge.status(),
        404,
        "challenge paths are answered, not redirected"
    );
}

/// `POST /ui/login` with `key` as a form from `origin`, redirects not followed.
async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    origin: &str,
    key: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/ui/login"))
        .header("Origin", origin)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("key", key)
                .finish(),
        )
        .send()
        .await
        .expect("POST /ui/login")
}

/// The one `Set-Cookie` of a sign-in: the session cookie's value and its attributes.
fn session_cookie(response: &reqwest::Response) -> (String, Vec<String>) {
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("an ASCII cookie"))
        .collect();
    assert_eq!(cookies.len(), 1, "exactly one cookie: {cookies:?}");
    let mut parts = cookies[0].split(';').map(str::trim);
    let value = parts
        .next()
        .and_then(|pair| pair.strip_prefix("certfleet_session="))
        .unwrap_or_else(|| panic!("the session cookie: {}", cookies[0]))
        .to_owned();
    assert!(!value.is_empty(), "{}", cookies[0]);
    let attributes: Vec<String> = parts.map(str::to_owned).collect();
    for expected in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(
            attributes.iter().any(|a| a == expected),
            "{expected} in {}",
            cookies[0]
        );
    }
    let max_age: Vec<i64> = attributes
        .iter()
        .filter_map(|a| a.strip_prefix("Max-Age="))
        .map(|n| n.parse().expect("a number of seconds"))
        .collect();
    assert!(
        matches!(max_age[..], [n] if n > 0),
        "one positive Max-Age: {}",
        cookies[0]
    );
    (value, attributes)
}

#[tokio::test]
async fn the_dashboard_session_is_a_secure_cookie_over_tls() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("tempdir");
    ca.write_leaf(dir.path());
    let (config, db_url) = files_config(dir.path());
    let service = Service::start_yaml(&config, tempfile::tempdir().expect("tmp"), db_url).await;
    let addr = api_addr(&service);
    let base = format!("https://{HOST}:{}", addr.port());
    // HTTP/2, as browsers speak it with certfleet's TLS: its requests carry no Host header, so
    // the dashboard's Origin check must read the site from `:authority`.
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.pem.as_bytes()).expect("CA"))
        .resolve(HOST, addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    let form = client
        .get(format!("{base}/ui/login"))
        .send()
        .await
        .expect("GET /ui/login over TLS");
    assert_eq!(form.status(), 200);

    // Another site's form: refused before the key is looked at.
    let forged = sign_in(&client, &base, "https://evil.example", ADMIN_KEY).await;
    assert_eq!(forged.status(), 403);
    assert!(forged.headers().get("set-cookie").is_none());

    // A wrong key: refused, no cookie.
    let refused = sign_in(&client, &base, &base, "wrong-key-0123456789").await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("set-cookie").is_none());

    // The admin key: to the list, with a Secure session cookie that does not show the key.
    let signed_in = sign_in(&client, &base, &base, ADMIN_KEY).await;
    assert_eq!(signed_in.version(), reqwest::Version::HTTP_2);
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/ui/certificates");
    let (value, attributes) = session_cookie(&signed_in);
    assert!(
        attributes.iter().any(|a| a == "Secure"),
        "Secure over TLS: {attributes:?}"
    );
    assert!(!value.contains(ADMIN_KEY), "the key is sealed: {value}");

    // The cookie is a session over TLS.
    let list = client
        .get(format!("{base}/ui/certificates"))
        .header("Cookie", format!("certfleet_session={value}"))
        .send()
        .await
        .expect("GET /ui/certificates over TLS");
    assert_eq!(list.status(), 200);
    let page = list.text().await.expect("body");
    assert!(page.contains("<h1>Certificates</h1>"), "{page}");

    // Without certfleet's TLS (the same config but `server.tls`), the cookie is not Secure:
    // a browser would not send it back over plain HTTP.
    let plain_dir = tempfile::tempdir().expect("tempdir");
    let plain_db = format!(
        "sqlite://{}",
        plain_dir.path().join("certfleet.db").display()
    );
    let plain_config = yaml(&plain_db, "").replace("server:\n  tls:\n", "");
    assert!(!plain_config.contains("certFile"), "{plain_config}");
    let plain = Service::start_yaml(&plain_config, plain_dir, plain_db).await;
    assert!(plain.app.tls.is_none());
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let signed_in = sign_in(&http, &plain.base, &plain.base, ADMIN_KEY).await;
    assert_eq!(signed_in.status(), 303);
    let (value, attributes) = session_cookie(&signed_in);
    assert!(
        !attributes.iter().any(|a| a.eq_ignore_ascii_case("Secure")),
        "not Secure over plain HTTP: {attributes:?}"
    );
    assert!(!value.contains(ADMIN_KEY), "the key is sealed: {value}");
}
