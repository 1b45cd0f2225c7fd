//! Benchmark: issuing certificates over HTTP-01 from a real Pebble, certfleet against certbot.
//!
//! Run with `cargo bench --bench issuance` (or `bench/run.sh`). Needs Pebble and certbot (Debian
//! packages; install them with `CERTFLEET_BENCH_DEPS=1 scripts/install-test-deps.sh`): the bench
//! fails, never skips, when one is missing.
//!
//! On one Pebble (the integration tests' harness, `tests/it/common/`):
//! 1. certbot `certonly --standalone` on Pebble's HTTP-01 port: one run that registers the account
//!    (not counted), then [`SINGLE_RUNS`] timed runs for distinct names; the median wall time of
//!    the whole command.
//! 2. certfleet in-process (`Service`, whose HTTP-01 listener takes the same port, so it starts
//!    only once certbot is done): one issuance that creates the account (not counted), then
//!    [`SINGLE_RUNS`] timed `POST /api/certificate` for distinct names, one at a time; the median.
//!    Ratio certfleet / certbot, target <= 0.5.
//! 3. [`PARALLEL`] `POST /api/certificate` for distinct names at once: the wall time of the whole
//!    batch against the median single issuance, target <= 2.0.
//!
//! Every issuance is checked: exit status 0 and a certificate on disk for certbot, 200 with a
//! freshly issued certificate for certfleet, and Pebble's count of issued certificates grows by
//! exactly the number of issuances.

// The integration tests' harness; this benchmark uses the Pebble and in-process service parts of
// it, so the rest is dead code here (and only here: the test crate uses all of it).
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use common::service::{ADMIN_KEY, Service};
use common::{Pebble, PebbleOptions};

/// Timed single issuances, for each client.
const SINGLE_RUNS: usize = 5;
/// Issuances at once through the API.
const PARALLEL: usize = 20;
/// Issuances at once under load: the CA client's connections, nonces and polling shared.
const LOAD: usize = 100;
/// The load batch must take at most this many single issuances.
const TARGET_LOAD: f64 = 3.0;
/// certfleet's single issuance must take at most this fraction of certbot's.
const TARGET_VS_CERTBOT: f64 = 0.5;
/// The parallel batch must take at most this many single issuances.
const TARGET_PARALLEL: f64 = 2.0;

const CERTBOT_BIN: &str = "/usr/bin/certbot";
const INSTALL_HINT: &str = "install the benchmark dependencies with \
                            `CERTFLEET_BENCH_DEPS=1 scripts/install-test-deps.sh` \
                            (Debian packages `pebble` and `certbot`)";
const CERT: &str = "/api/certificate";

fn main() {
    assert!(
        Path::new(CERTBOT_BIN).exists(),
        "{CERTBOT_BIN} is missing: {INSTALL_HINT}"
    );
    for bin in ["/usr/bin/pebble", "/usr/bin/pebble-challtestsrv"] {
        assert!(Path::new(bin).exists(), "{bin} is missing: {INSTALL_HINT}");
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    println!(
        "issuance: HTTP-01 against Pebble at {} (validation port {})",
        pebble.directory_url(),
        pebble.http_port()
    );

    // 1. certbot.
    let certbot = Certbot::new(&pebble);
    certbot.issue(&pebble, "certbot-account.bench.example.test");
    let mut certbot_times = Vec::with_capacity(SINGLE_RUNS);
    for run in 1..=SINGLE_RUNS {
        let elapsed = certbot.issue(&pebble, &format!("certbot-{run}.bench.example.test"));
        println!("  certbot   single {run}: {:>7.3} s", elapsed.as_secs_f64());
        certbot_times.push(elapsed.as_secs_f64());
    }
    let certbot_median = median(&mut certbot_times);

    // 2. certfleet, once certbot no longer holds the validation port.
    let service = Service::start_with(&pebble, "5m", |yaml| yaml).await;
    issue(&service, &pebble, &["certfleet-account.bench.example.test"]).await;
    let mut single_times = Vec::with_capacity(SINGLE_RUNS);
    for run in 1..=SINGLE_RUNS {
        let name = format!("single-{run}.bench.example.test");
        let elapsed = issue(&service, &pebble, &[name.as_str()]).await;
        println!("  certfleet single {run}: {:>7.3} s", elapsed.as_secs_f64());
        single_times.push(elapsed.as_secs_f64());
    }
    let single_median = median(&mut single_times);

    // 3. Many distinct names at once.
    let names: Vec<String> = (1..=PARALLEL)
        .map(|i| format!("parallel-{i}.bench.example.test"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let parallel = issue(&service, &pebble, &names).await.as_secs_f64();
    println!("  certfleet {PARALLEL} in parallel: {parallel:>7.3} s (wall time of the batch)");
    let names: Vec<String> = (1..=LOAD)
        .map(|i| format!("load-{i}.bench.example.test"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let load = issue(&service, &pebble, &names).await.as_secs_f64();
    println!("  certfleet {LOAD} in parallel: {load:>7.3} s (wall time of the batch)");
    service.stop().await;

    println!(
        "  median single issuance: certbot {certbot_median:.3} s, certfleet {single_median:.3} s"
    );
    let vs_certbot = single_median / certbot_median;
    println!(
        "RESULT issuance_vs_certbot {vs_certbot:.3} target <= {TARGET_VS_CERTBOT} {}",
        verdict(vs_certbot <= TARGET_VS_CERTBOT)
    );
    let parallel_ratio = parallel / single_median;
    println!(
        "RESULT parallel{PARALLEL}_vs_single {parallel_ratio:.3} target <= {TARGET_PARALLEL} {}",
        verdict(parallel_ratio <= TARGET_PARALLEL)
    );
    let load_ratio = load / single_median;
    println!(
        "RESULT parallel{LOAD}_vs_single {load_ratio:.3} target <= {TARGET_LOAD} {}",
        verdict(load_ratio <= TARGET_LOAD)
    );
}

/// Issues one certificate per name through the API, all at once, and returns the wall time until
/// the last answer. Panics unless every answer is 200 with a freshly issued certificate for its
/// name and Pebble issued exactly that many certificates meanwhile.
async fn issue(service: &Service, pebble: &Pebble, names: &[&str]) -> Duration {
    let before = pebble.issued_count();
    let started = Instant::now();
    let answers = join_all(names.iter().map(|name| async move {
        let response = service.post(CERT, ADMIN_KEY, json!({"domain": name})).await;
        let status = response.status();
        let body = response.text().await.expect("read the body");
        (*name, status, body)
    }))
    .await;
    let elapsed = started.elapsed();
    for (name, status, body) in answers {
        assert_eq!(
            status,
            200,
            "POST {CERT} for {name}: {status}: {body}\n--- pebble ---\n{}",
            pebble.log()
        );
        let body: Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(body["domain"], name, "the certificate for {name}");
        assert_eq!(
            body["cached"], false,
            "{name} must be freshly issued, not cached"
        );
    }
    wait_issued(pebble, before + names.len()).await;
    elapsed
}

/// Pebble logs an issuance as it finishes finalize; give its log pipe a moment to catch up, then
/// insist on the exact count.
async fn wait_issued(pebble: &Pebble, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pebble.issued_count() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        pebble.issued_count(),
        expected,
        "Pebble's count of issued certificates\n--- pebble ---\n{}",
        pebble.log()
    );
}

/// certbot with its own config, work and log directories, talking to `pebble`.
struct Certbot {
    dir: tempfile::TempDir,
    directory_url: String,
    http_port: u16,
    ca_bundle: PathBuf,
}

impl Certbot {
    fn new(pebble: &Pebble) -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("certfleet-bench-certbot-")
                .tempdir()
                .expect("create a temporary directory for certbot"),
            directory_url: pebble.directory_url(),
            http_port: pebble.http_port(),
            ca_bundle: pebble.ca().ca_pem_path().to_path_buf(),
        }
    }

    /// Runs `certbot certonly --standalone` for `name` and returns the wall time of the whole
    /// command. Panics unless it succeeded, left the certificate on disk, and Pebble issued
    /// exactly one certificate.
    fn issue(&self, pebble: &Pebble, name: &str) -> Duration {
        let before = pebble.issued_count();
        let base = self.dir.path();
        let mut command = Command::new(CERTBOT_BIN);
        command
            .args([
                "certonly",
                "--standalone",
                "--non-interactive",
                "--agree-tos",
            ])
            .arg("--register-unsafely-without-email")
            .args(["--http-01-address", "127.0.0.1"])
            .args(["--http-01-port", &self.http_port.to_string()])
            .args(["--server", &self.directory_url])
            .args(["--key-type", "ecdsa", "--elliptic-curve", "secp256r1"])
            .args(["-d", name])
            .arg("--config-dir")
            .arg(base.join("config"))
            .arg("--work-dir")
            .arg(base.join("work"))
            .arg("--logs-dir")
            .arg(base.join("logs"))
            .env("REQUESTS_CA_BUNDLE", &self.ca_bundle);
        let started = Instant::now();
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("run {CERTBOT_BIN}: {e}; {INSTALL_HINT}"));
        let elapsed = started.elapsed();
        assert!(
            output.status.success(),
            "certbot for {name} failed: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- pebble ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            pebble.log()
        );
        let fullchain = base.join("config/live").join(name).join("fullchain.pem");
        assert!(
            fullchain.exists(),
            "certbot for {name} succeeded but {} is missing",
            fullchain.display()
        );
        // Pebble logged the issuance before certbot could download it; its log pipe may lag.
        let deadline = Instant::now() + Duration::from_secs(5);
        while pebble.issued_count() < before + 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            pebble.issued_count(),
            before + 1,
            "Pebble's count of issued certificates after certbot for {name}\n--- pebble ---\n{}",
            pebble.log()
        );
        elapsed
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        f64::midpoint(values[mid - 1], values[mid])
    }
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "BELOW TARGET" }
}
