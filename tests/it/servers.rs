//! The server integrations against real servers: Caddy 2.11 (Debian forky's, unpacked by
//! scripts/install-test-deps.sh under target/test-tools/caddy-2.11) configured with the
//! Caddyfile of docs/recipes/caddy.md, serving what certfleet issued from Pebble 2.10 to a
//! real TLS client (`openssl s_client`), and a forced renewal reaching Caddy without a restart.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::common;
use common::process::Process;
use common::service::{FLEET_A_KEY, Service, json};
use common::{Pebble, PebbleOptions};

const CADDY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/test-tools/caddy-2.11/usr/bin/caddy"
);
const RECIPE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/recipes/caddy.md");
const ROUTE: &str = "/api/servers/caddy";
/// The name Caddy serves: one the `fleet-a` key may read.
const NAME: &str = "caddy.a.example.test";

/// The first ```caddyfile block of the recipe.
fn recipe_caddyfile() -> String {
    let text = std::fs::read_to_string(RECIPE).expect("read docs/recipes/caddy.md");
    let start = text
        .find("```caddyfile\n")
        .expect("the recipe has a caddyfile block")
        + 13;
    let end = start + text[start..].find("```").expect("the block ends");
    text[start..end].to_owned()
}

/// The recipe's Caddyfile pointed at this test's certfleet, name and ports.
fn caddyfile(service: &Service, https_port: u16, admin_port: u16) -> String {
    let recipe = recipe_caddyfile();
    for part in [
        "https://certfleet.example.com",
        "www.example.com {",
        "\tauto_https disable_certs\n",
    ] {
        assert!(recipe.contains(part), "the recipe lost {part:?}:\n{recipe}");
    }
    recipe
        .replace("https://certfleet.example.com", &service.base)
        .replace(
            "www.example.com {",
            &format!("https://{NAME}:{https_port} {{\n\tbind 127.0.0.1"),
        )
        .replace(
            "\tauto_https disable_certs\n",
            // The HTTP port of Caddy's redirects too: not port 80, which other tests' servers use.
            &format!(
                "\tauto_https disable_certs\n\tadmin 127.0.0.1:{admin_port}\n\thttp_port {}\n",
                common::free_port()
            ),
        )
}

/// Starts Caddy with `caddyfile`, its data and config under `dir`; fails when Caddy is missing.
fn start_caddy(dir: &Path, caddyfile: &str, https_port: u16) -> Process {
    assert!(
        Path::new(CADDY).exists(),
        "Caddy 2.11 is missing at {CADDY}: run scripts/install-test-deps.sh"
    );
    let file = dir.join("Caddyfile");
    std::fs::write(&file, caddyfile).expect("write the Caddyfile");
    let mut caddy = Process::spawn(
        "caddy",
        Command::new(CADDY)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("CERTFLEET_CADDY_KEY", FLEET_A_KEY),
    )
    .expect("spawn caddy");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", https_port)).is_err() {
        assert!(
            Instant::now() < deadline && caddy.exit_status().is_none(),
            "Caddy did not listen on {https_port}:\n{}",
            caddy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    caddy
}

/// The serial (lowercase hex) of the leaf a real TLS client gets from 127.0.0.1:`port` for
/// SNI `name`; `None` when the handshake fails. Off the runtime: certfleet runs on it and
/// answers Caddy during the handshake.
async fn served_serial(port: u16, name: &str) -> Option<String> {
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || s_client(port, &name))
        .await
        .expect("s_client task")
}

fn s_client(port: u16, name: &str) -> Option<String> {
    let output = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", name, "-showcerts"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&output.stdout);
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text[start..].find("-----END CERTIFICATE-----")? + start + 25;
    let body = json!({ "certificate": &text[start..end] });
    let der = common::leaf_der(&body);
    let (_, cert) = X509Certificate::from_der(&der).expect("parse the served leaf");
    Some(common::serial_hex(&cert))
}

fn issued_serial(answer: &Value) -> String {
    let der = common::leaf_der(answer);
    let (_, cert) = X509Certificate::from_der(&der).expect("parse the issued leaf");
    common::serial_hex(&cert)
}

#[tokio::test]
async fn caddy_serves_certfleets_certificate_and_its_renewal_without_a_restart() {
    let pebble = Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await;
    let service = Service::start(&pebble).await;

    // Before any certificate: 204, Caddy's "not managed here".
    let client = service.client();
    let url = |query: &str| format!("{}{ROUTE}?{query}", service.base);
    let response = client
        .get(url(&format!("key={FLEET_A_KEY}&server_name={NAME}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 204);

    let response = service
        .post("/api/certificate", FLEET_A_KEY, json!({ "domain": NAME }))
        .await;
    assert_eq!(response.status(), 200);
    let first = issued_serial(&json(response).await);

    // The protocol, as Caddy speaks it: chain and key in one PEM body.
    let response = client
        .get(url(&format!(
            "key={FLEET_A_KEY}&server_name={NAME}&signature_schemes=403&cipher_suites=1301"
        )))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-pem-file");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let pem = response.text().await.expect("body");
    assert_eq!(
        pem.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{pem}"
    );
    assert!(pem.contains("-----BEGIN PRIVATE KEY-----"), "{pem}");
    // A name the key may not read is "not managed" (204), not a handshake failure; a bad key
    // is an error Caddy logs.
    for (query, status) in [
        (format!("key={FLEET_A_KEY}&server_name=b.example.test"), 204),
        (format!("key={FLEET_A_KEY}"), 204),
        (format!("key=wrong-key-0123456789&server_name={NAME}"), 401),
        (format!("server_name={NAME}"), 401),
    ] {
        let response = client.get(url(&query)).send().await.expect("GET");
        assert_eq!(response.status(), status, "{query}");
    }

    // A certificate of several names is named in the URL (`domain`), for any SNI name it holds.
    let set = "caddy2.a.example.test,caddy3.a.example.test";
    let response = service
        .post(
            "/api/certificate",
            FLEET_A_KEY,
            json!({ "domains": ["caddy2.a.example.test", "caddy3.a.example.test"] }),
        )
        .await;
    assert_eq!(response.status(), 200);
    for (query, status) in [
        (
            format!("key={FLEET_A_KEY}&server_name=caddy3.a.example.test&domain={set}"),
            200,
        ),
        (
            format!("key={FLEET_A_KEY}&server_name=caddy3.a.example.test"),
            204,
        ),
        (
            format!("key={FLEET_A_KEY}&server_name={NAME}&domain={set}"),
            204,
        ),
        (
            format!("key={FLEET_A_KEY}&server_name={NAME}&keyType=dsa"),
            400,
        ),
    ] {
        let response = client.get(url(&query)).send().await.expect("GET");
        assert_eq!(response.status(), status, "{query}");
    }

    // Real Caddy with the recipe's Caddyfile, a real TLS client.
    let dir = tempfile::tempdir().expect("temporary directory");
    let (https_port, admin_port) = (common::free_port(), common::free_port());
    let caddy = start_caddy(
        dir.path(),
        &caddyfile(&service, https_port, admin_port),
        https_port,
    );
    let served = served_serial(https_port, NAME).await;
    assert_eq!(served.as_deref(), Some(first.as_str()), "{}", caddy.log());

    // A forced renewal: the next handshake gets the new serial, Caddy untouched.
    let response = service
        .post(
            "/api/certificate/renew",
            FLEET_A_KEY,
            json!({ "domain": NAME }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let second = issued_serial(&json(response).await);
    assert_ne!(first, second);
    let renewed = Instant::now();
    let mut connections = 0;
    loop {
        let served = served_serial(https_port, NAME).await;
        connections += 1;
        if served.as_deref() == Some(second.as_str()) {
            break;
        }
        assert!(
            renewed.elapsed() < Duration::from_secs(10),
            "Caddy still serves {served:?} 10 s after the renewal to {second}:\n{}",
            caddy.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "caddy: the renewed certificate served {} ms after the renewal, on connection {connections}",
        renewed.elapsed().as_millis()
    );
    // Caddy keeps no copy of what the manager answers: the first new connection has it.
    assert_eq!(
        connections, 1,
        "Caddy served the old certificate after the renewal"
    );
    assert!(
        !caddy.log().contains(FLEET_A_KEY),
        "Caddy logged the key:\n{}",
        caddy.log()
    );
    drop(caddy);
}

/// The private key's PEM matches the leaf's public key.
fn key_matches_leaf(cert_pem: &str, key_pem: &str) -> bool {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let leaf = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()
        .expect("a certificate")
        .expect("PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("a PEM private key");
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .expect("a key rustls loads");
    let (_, cert) = X509Certificate::from_der(&leaf).expect("parse the leaf");
    signing
        .public_key()
        .is_some_and(|spki| spki.as_ref() == cert.tbs_certificate.subject_pki.raw)
}

/// Traefik cannot be installed here: the document is checked against Traefik's published
/// dynamic-configuration format (the HTTP provider takes the file provider's; `tls.certificates`
/// entries with `certFile` and `keyFile`, which take the PEM content in place of a path).
#[tokio::test]
async fn traefik_gets_every_certificate_its_key_may_read_with_an_etag() {
    let pebble = Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await;
    let service = Service::start(&pebble).await;
    let route = format!("{}/api/servers/traefik", service.base);
    let get = |key: &'static str, tag: Option<String>| {
        let mut request = service
            .client()
            .get(&route)
            .header("Authorization", format!("APIKey {key}"));
        if let Some(tag) = tag {
            request = request.header("If-None-Match", tag);
        }
        async move { request.send().await.expect("GET") }
    };

    // No credential: 401; nothing issued yet: an empty list, valid for Traefik.
    let response = service.client().get(&route).send().await.expect("GET");
    assert_eq!(response.status(), 401);
    let response = get(FLEET_A_KEY, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await, json!({"tls": {"certificates": []}}));

    // One certificate fleet-a may read, one it may not.
    for (key, name) in [
        (FLEET_A_KEY, "t1.a.example.test"),
        (common::service::ADMIN_KEY, "other.example.test"),
    ] {
        let response = service
            .post("/api/certificate", key, json!({ "domain": name }))
            .await;
        assert_eq!(response.status(), 200, "{name}");
    }
    // A CSR-mode certificate fleet-a may read: certfleet has no key to give Traefik.
    let dir = tempfile::tempdir().expect("temporary directory");
    let output = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .args(["-subj", "/CN=csr.a.example.test"])
        .args(["-addext", "subjectAltName=DNS:csr.a.example.test"])
        .output()
        .expect("run openssl req");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csr = String::from_utf8(output.stdout).expect("PEM");
    let response = service
        .post("/api/certificate", FLEET_A_KEY, json!({ "csr": csr }))
        .await;
    assert_eq!(response.status(), 200, "{}", json(response).await);

    let response = get(FLEET_A_KEY, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let etag = response.headers()["etag"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let document = json(response).await;
    // The shape Traefik reads: only `tls.certificates`, each with exactly certFile and keyFile.
    let top: Vec<&String> = document.as_object().expect("an object").keys().collect();
    assert_eq!(top, ["tls"]);
    let tls: Vec<&String> = document["tls"].as_object().expect("tls").keys().collect();
    assert_eq!(tls, ["certificates"]);
    let certificates = document["tls"]["certificates"].as_array().expect("a list");
    assert_eq!(
        certificates.len(),
        1,
        "fleet-a reads only its own: {document}"
    );
    let entry = certificates[0].as_object().expect("an entry");
    let mut fields: Vec<&String> = entry.keys().collect();
    fields.sort();
    assert_eq!(fields, ["certFile", "keyFile"]);
    let cert_pem = entry["certFile"].as_str().expect("certFile");
    let key_pem = entry["keyFile"].as_str().expect("keyFile");
    assert_eq!(
        cert_pem.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "the chain"
    );
    let der = common::leaf_der(&json!({ "certificate": cert_pem }));
    assert_eq!(common::san_dns_names(&der), ["t1.a.example.test"]);
    assert!(
        key_matches_leaf(cert_pem, key_pem),
        "keyFile is the leaf's key"
    );

    // The admin reads both.
    let response = get(common::service::ADMIN_KEY, None).await;
    let all = json(response).await;
    let mut names: Vec<Vec<String>> = all["tls"]["certificates"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|entry| {
            let der = common::leaf_der(&json!({ "certificate": entry["certFile"] }));
            common::san_dns_names(&der)
        })
        .collect();
    names.sort();
    assert_eq!(names, [["other.example.test"], ["t1.a.example.test"]]);
    // The inventory notes who has which serial, as for any delivery.
    let noted = service
        .count_rows("deliveries WHERE principal = 'psk:admin' AND names LIKE '%t1.a.example.test%'")
        .await;
    assert_eq!(
        noted, 1,
        "the admin's Traefik delivery of t1 is in the inventory"
    );

    // Unchanged: 304 with the same tag. A renewal changes the tag.
    let response = get(FLEET_A_KEY, Some(etag.clone())).await;
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"], etag.as_str());
    let response = service
        .post(
            "/api/certificate/renew",
            FLEET_A_KEY,
            json!({ "domain": "t1.a.example.test" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let renewed = common::leaf_der(&json(response).await);
    let response = get(FLEET_A_KEY, Some(etag.clone())).await;
    assert_eq!(response.status(), 200, "a renewal is a new document");
    assert_ne!(response.headers()["etag"], etag.as_str());
    let document = json(response).await;
    let served = common::leaf_der(&json!({
        "certificate": document["tls"]["certificates"][0]["certFile"]
    }));
    assert_eq!(served, renewed, "the renewed certificate");
    // A renewal by the other identity does not change fleet-a's document.
    let response = get(FLEET_A_KEY, None).await;
    let tag = response.headers()["etag"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let response = service
        .post(
            "/api/certificate/renew",
            common::service::ADMIN_KEY,
            json!({ "domain": "other.example.test" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = get(FLEET_A_KEY, Some(tag)).await;
    assert_eq!(
        response.status(),
        304,
        "fleet-a's certificates did not change"
    );
}

/// The key Caddy sends in the URL is in no line of certfleet's log, at `debug` and at `trace`
/// (the real binary, as an operator runs it): not on a delivery (whose audit line names the
/// key by its name), a refusal, or a wrong key. And the Traefik document, which holds several
/// private keys, writes one audit line for each.
#[tokio::test]
async fn the_key_in_caddys_url_is_never_logged_and_every_key_handed_out_is_audited() {
    let pebble = Pebble::start(PebbleOptions {
        v2_10: true,
        ..PebbleOptions::default()
    })
    .await;
    let wrong = "wrong-caddy-key-0123456789abcdef0123456789";
    for level in ["debug", "trace"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
        let port = common::free_port();
        let yaml = common::service::base_yaml(&pebble, &db_url, "30s").replace(
            "server:\n",
            &format!("server:\n  listen: \"127.0.0.1:{port}\"\n  metricsListen: \"\"\n"),
        );
        let config = dir.path().join("certfleet.yaml");
        std::fs::write(&config, yaml).expect("write the config");
        let certfleet = common::process::serve(&config, Some(level), None);
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        common::process::wait_ready(&client, &base, &certfleet).await;
        let second = "second.a.example.test";
        for name in [NAME, second] {
            let response = client
                .post(format!("{base}/api/certificate"))
                .header("Authorization", format!("APIKey {FLEET_A_KEY}"))
                .json(&json!({ "domain": name }))
                .send()
                .await
                .expect("POST");
            assert_eq!(response.status(), 200, "{name}: {}", certfleet.log());
        }
        let response = client
            .get(format!("{base}/api/servers/traefik"))
            .header("Authorization", format!("APIKey {FLEET_A_KEY}"))
            .send()
            .await
            .expect("GET the Traefik document");
        assert_eq!(response.status(), 200);
        let traefik_request = response.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        for (query, status) in [
            (format!("key={FLEET_A_KEY}&server_name={NAME}"), 200),
            (format!("key={FLEET_A_KEY}&server_name=b.example.test"), 204),
            (format!("key={wrong}&server_name={NAME}"), 401),
        ] {
            let response = client
                .get(format!("{base}{ROUTE}?{query}"))
                .send()
                .await
                .expect("GET");
            assert_eq!(response.status(), status, "{query}");
        }
        // The log is written by the time the answer is read; give the drains a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = certfleet.log();
        assert!(
            log.contains("fleet-a") && log.contains(NAME),
            "the delivery is logged ({level}):\n{log}"
        );
        let mut audited: Vec<&str> = log
            .lines()
            .filter(|line| {
                line.contains("certfleet::audit: private key delivered")
                    && line.contains(&format!("request_id={traefik_request}"))
            })
            .map(|line| {
                let names = line.split(" names=").nth(1).unwrap_or_default();
                names.split(' ').next().unwrap_or_default()
            })
            .collect();
        audited.sort_unstable();
        assert_eq!(
            audited,
            [NAME, second],
            "one audit line per key in the Traefik document ({level}):\n{log}"
        );
        assert!(
            !log.contains(FLEET_A_KEY),
            "the key is logged ({level}):\n{log}"
        );
        assert!(
            !log.contains(wrong),
            "a wrong key is logged ({level}):\n{log}"
        );
        drop(certfleet);
    }
}
