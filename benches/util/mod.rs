//! Helpers shared by the wrk benchmarks (`#[path = "util/mod.rs"] mod util;`): load generation
//! and the median of rounds. Each bench compiles this module and uses what it needs.

// Each bench is its own crate and uses a part of this module: the rest is dead code there.
#![allow(dead_code)]

use std::process::Command;

use certfleet::domain::{KeyType, NameSet};
use certfleet::store::StoredCert;
use rcgen::{CertificateParams, DnType, KeyPair};

/// The storage encryption key of the benches' stores (a fixed test value).
pub const STORAGE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The real store at `url` (SQLite or PostgreSQL), sealed with [`STORAGE_KEY`], migrated.
pub async fn open_store(url: &str) -> std::sync::Arc<dyn certfleet::store::Store> {
    let yaml = format!("storage:\n  url: \"{url}\"\n  encryptionKey: \"{STORAGE_KEY}\"\n");
    let config = certfleet::config::Config::from_yaml(&yaml, std::iter::empty())
        .expect("the store's config")
        .config;
    certfleet::store::open(&config.storage)
        .await
        .expect("open the store")
}

/// `wrk` settings: one thread (the machine has 2 cores), 32 connections.
pub const WRK_ARGS: [&str; 2] = ["-t1", "-c32"];

/// Runs wrk against `url` with `header` for `duration` and returns its requests per second.
/// Panics when wrk fails or saw non-2xx answers or socket errors: a fast wrong answer is no
/// measurement. The one exception is a run whose only errors are timeouts (a request unanswered
/// for wrk's 2 s while the server answers the others in microseconds: this shared machine was
/// paused): it is run once more, and said so.
pub fn wrk(url: &str, header: &str, duration: &str) -> f64 {
    match wrk_once(url, header, duration) {
        Ok(rps) => rps,
        Err(text) => {
            println!("  (wrk saw only timeouts, the machine stalled: the run is repeated)\n{text}");
            wrk_once(url, header, duration)
                .unwrap_or_else(|text| panic!("wrk {url}: timeouts twice\n{text}"))
        }
    }
}

/// One wrk run: its requests per second, or `Err` with wrk's output when timeouts were its only
/// errors.
fn wrk_once(url: &str, header: &str, duration: &str) -> Result<f64, String> {
    let output = Command::new("wrk")
        .args(WRK_ARGS)
        .args(["-d", duration, "-H", header])
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("run wrk: {e}; install it with `apt-get install -y wrk`"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wrk {url} failed: {}\n{text}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("Non-2xx or 3xx responses"),
        "wrk {url}: Non-2xx or 3xx responses\n{text}"
    );
    if let Some(errors) = text.lines().find(|line| line.contains("Socket errors")) {
        let only_timeouts = errors.contains("connect 0, read 0, write 0, timeout");
        assert!(only_timeouts, "wrk {url}: Socket errors\n{text}");
        return Err(text);
    }
    Ok(text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no `Requests/sec:` in wrk's output:\n{text}")))
}

/// The median (sorts `values`).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        f64::midpoint(values[mid - 1], values[mid])
    }
}

/// A self-signed certificate for `names`, valid for 90 days, as the store holds it: the
/// fixture the token benchmarks fetch.
pub fn self_signed_certificate(names: &[&str]) -> StoredCert {
    let now = certfleet::util::clock::now();
    let key = KeyPair::generate().expect("generate the leaf key");
    let owned: Vec<String> = names.iter().map(ToString::to_string).collect();
    let mut params = CertificateParams::new(owned).expect("names");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let cert = params.self_signed(&key).expect("self-sign");
    let (not_before, not_after) = (now - 3600, now + 90 * 86_400);
    StoredCert {
        names: NameSet::parse(names).expect("valid names"),
        key: certfleet::domain::KeySpec::Server(KeyType::EcdsaP256),
        profile: None,
        ca: None,
        cert_pem: cert.pem(),
        key_pem: Some(key.serialize_pem()),
        issuer_pem: String::new(),
        serial: "5a173c01".to_owned(),
        not_before,
        not_after,
        renew_after: not_before + (not_after - not_before) * 2 / 3,
        issued_at: now,
    }
}
