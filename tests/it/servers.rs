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
    let start = text.find("```caddyfile\n").expect("the recipe has a caddyfile block") + 13;
    let end = start + text[start..].find("```").expect("the block ends");
    text[start..end].to_owned()
}

/// The recipe's Caddyfile pointed at this test's certfleet, name and ports.
fn caddyfile(service: &Service, https_port: u16, admin_port: u16) -> String {
    let recipe = recipe_caddyfile();
    for part in ["https://certfleet.example.com", "www.example.com {", "\tauto_https disable_certs\n"] {
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
            &format!("\tauto_https disable_certs\n\tadmin 127.0.0.1:{admin_port}\n"),
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
    assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 2, "{pem}");
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
        .post("/api/certificate/renew", FLEET_A_KEY, json!({ "domain": NAME }))
        .await;
    assert_eq!(response.status(), 200);
    let second = issued_serial(&json(response).await);
    assert_ne!(first, second);
    let renewed = Instant::now();
    loop {
        let served = served_serial(https_port, NAME).await;
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
        "caddy: the renewed certificate served {} ms after the renewal",
        renewed.elapsed().as_millis()
    );
    drop(caddy);
}
