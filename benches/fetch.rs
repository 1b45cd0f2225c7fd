//! Benchmark: the cached certificate fetch (`GET /api/certificate?domain=...` with a pre-shared
//! key) against a bare axum handler that returns the same bytes.
//!
//! Run with `cargo bench --bench fetch` (or `bench/run.sh`). Needs `wrk` (Debian package; install
//! it with `CERTFLEET_BENCH_DEPS=1 scripts/install-test-deps.sh`).
//!
//! One process serves both, on a multi-thread tokio runtime:
//! - the baseline: a bare axum `Router` with one GET route answering the exact JSON body
//!   certfleet answers (`Content-Type: application/json`), nothing else;
//! - certfleet: `App::start` from YAML (SQLite in a temporary directory, one PSK, an ACME
//!   directory that points nowhere since nothing is issued) with a certificate saved directly
//!   through `Store::save_certificate`, served by `App::serve` with what production runs
//!   around each request: the metrics listener on (so every request is counted and timed) and
//!   info-level logging, so every response with a key writes its audit line, formatted into a
//!   sink instead of a pipe: first in the default text format (`fetch_ratio`), then, in a child
//!   process of its own, in JSON (`fetch_ratio_json`). `CERTFLEET_BENCH_LOG=json|off` runs one
//!   format (`off`: no logging) alone.
//!
//! Then the split per layer: the same GET in-process through the router, without sockets, with
//! each layer of observability added in turn (see [`split`]).
//!
//! `wrk -t1 -c32 -d2s` with the same `Authorization: APIKey ...` header loads one, then the other,
//! alternating for several rounds; the result is the median of the per-round ratios
//! certfleet / bare (requests per second), against the target. Speed is only ever judged as that
//! ratio, measured in the same run: these machines are shared and noisy.
//!
//! Also printed: this process's resident memory when idle after start-up. It includes the bench's
//! own runtime, the bare server and the fixtures; `bench/run.sh` measures the real
//! `certfleet serve` binary on its own.

use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Request, header};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use certfleet::app::{App, Listeners};
use certfleet::config::{Config, LogConfig, LogFormat};
use certfleet::domain::{KeyType, NameSet};
use certfleet::store::StoredCert;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;

#[path = "util/mod.rs"]
mod util;
use util::{WRK_ARGS, median};

/// Measured rounds (each: bare, then certfleet). Nine short rounds rather than five long ones:
/// the two runs of a round are closer in time (the machine's speed drifts over seconds), and
/// the median of nine moves less with one disturbed round.
const ROUNDS: usize = 9;
/// `wrk` settings: one thread (the machine has 2 cores), 32 connections; 2 seconds a run.
const DURATION: &str = "2s";
/// certfleet must serve at least this fraction of the bare handler's requests per second.
const TARGET_RATIO: f64 = 0.8;
/// Idle resident memory target, MiB (VmRSS's "kB" are KiB).
const TARGET_RSS_MB: f64 = 20.0;

/// The key the bench's client presents; limited to the bench's domain, like a fleet key.
const BENCH_KEY: &str = "bench-fleet-key-0123456789abcdef0123456789abcdef";
const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef0123456789abcdef";
/// The certificate's names; the query asks for exactly this set.
const NAMES: [&str; 2] = ["www.bench.example.test", "bench.example.test"];
const QUERY: &str = "domain=bench.example.test&domain=www.bench.example.test";

fn main() {
    if let Ok(mode) = std::env::var(SPLIT_CHILD) {
        split_child(&mode);
        return;
    }
    let wrk_version = Command::new("wrk").arg("--version").output();
    assert!(
        wrk_version.is_ok(),
        "wrk is missing: install it with `CERTFLEET_BENCH_DEPS=1 scripts/install-test-deps.sh` \
         (Debian package `wrk`)"
    );
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    let setup = runtime.block_on(start());

    // Idle: every server is up, the certificate is stored, nothing has been fetched yet.
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = vm_rss_kb();

    let certfleet_url = format!("http://{}/api/certificate?{QUERY}", setup.certfleet);
    let bare_url = format!("http://{}/api/certificate?{QUERY}", setup.bare);
    runtime.block_on(check_same_bytes(&certfleet_url, &bare_url, &setup.body));

    // Warm-up (not counted): connections, allocator, caches.
    wrk(&bare_url, "1s");
    wrk(&certfleet_url, "1s");

    println!("fetch: GET /api/certificate with a PSK, cached certificate");
    println!(
        "  body {} bytes; wrk {} -d{DURATION} with `Authorization: APIKey ...`",
        setup.body.len(),
        WRK_ARGS.join(" ")
    );
    let mut ratios = Vec::with_capacity(ROUNDS);
    let mut bare_rps = Vec::with_capacity(ROUNDS);
    let mut certfleet_rps = Vec::with_capacity(ROUNDS);
    for round in 1..=ROUNDS {
        let bare = wrk(&bare_url, DURATION);
        let certfleet = wrk(&certfleet_url, DURATION);
        let ratio = certfleet / bare;
        println!(
            "  round {round}: bare {bare:>10.0} req/s   certfleet {certfleet:>10.0} req/s   ratio {ratio:.3}"
        );
        bare_rps.push(bare);
        certfleet_rps.push(certfleet);
        ratios.push(ratio);
    }
    let ratio = median(&mut ratios);
    println!(
        "  median: bare {:.0} req/s, certfleet {:.0} req/s",
        median(&mut bare_rps),
        median(&mut certfleet_rps)
    );
    let log = std::env::var(LOG_FORMAT).unwrap_or_default();
    let name = match log.as_str() {
        "json" => "fetch_ratio_json",
        "off" => "fetch_ratio_nolog",
        _ => "fetch_ratio",
    };
    println!(
        "RESULT {name} {ratio:.3} target >= {TARGET_RATIO} {}",
        verdict(ratio >= TARGET_RATIO)
    );
    if log.is_empty() {
        // The default run measures the other log format too, in a process of its own (the
        // logger is global), then the split.
        json_run();
        split();
        let idle_mb = kb_to_mb(idle_rss);
        println!(
            "RESULT bench_process_idle_rss_mib {idle_mb:.1} target < {TARGET_RSS_MB} {} \
             (this bench process: certfleet plus the bench's runtime, bare server and fixtures; \
             bench/run.sh measures the real binary)",
            verdict(idle_mb < TARGET_RSS_MB)
        );
        println!(
            "  (bench process RSS after the load: {:.1} MiB, for information)",
            kb_to_mb(vm_rss_kb())
        );
    }

    runtime.block_on(async {
        let _ = setup.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), setup.task).await;
    });
}

struct Setup {
    certfleet: std::net::SocketAddr,
    bare: std::net::SocketAddr,
    body: Bytes,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// Starts certfleet with a stored certificate and the bare handler with the body certfleet is
/// expected to answer.
async fn start() -> Setup {
    let dir = tempfile::Builder::new()
        .prefix("certfleet-bench-fetch-")
        .tempdir()
        .expect("create a temporary directory");
    let yaml = config_yaml(&dir);
    let config = Config::from_yaml(&yaml, std::iter::empty())
        .expect("the bench config is valid")
        .config;
    // As in production: info-level lines (one audit line per response with a key), formatted
    // into a sink rather than a pipe. CERTFLEET_BENCH_LOG=json measures the JSON format.
    let format = match std::env::var(LOG_FORMAT).as_deref() {
        Ok("json") => Some(LogFormat::Json),
        Ok("off") => None,
        _ => Some(LogFormat::Text),
    };
    println!("  logging: {format:?}, info level, into a sink; metrics listener on");
    if let Some(format) = format {
        certfleet::observe::logging::init_with_writer(
            &LogConfig {
                format,
                level: "info".to_owned(),
            },
            std::io::sink,
        );
    }
    let app = App::start(&config).await.expect("certfleet starts");

    let cert = fixture_certificate();
    app.api
        .store
        .save_certificate(&cert, &[])
        .await
        .expect("save the certificate");
    let body = expected_body(&cert);

    let api = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the API");
    let http01 = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the HTTP-01 listener");
    // Metrics on, as by default: every request is counted and timed.
    let metrics = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the metrics listener");
    let certfleet = api.local_addr().expect("API address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.serve(
        Listeners {
            api,
            http01: Some(http01),
            tls_alpn01: None,
            metrics: Some(metrics),
        },
        async {
            let _ = stopped.await;
        },
    ));

    let bare_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the bare handler");
    let bare = bare_listener.local_addr().expect("bare address");
    let bare_body = body.clone();
    let router = Router::new().route(
        "/api/certificate",
        get(move || {
            let body = bare_body.clone();
            async move {
                let mut response = body.into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
        }),
    );
    tokio::spawn(async move { axum::serve(bare_listener, router).await });

    Setup {
        certfleet,
        bare,
        body,
        stop,
        task,
        _dir: dir,
    }
}

/// certfleet's configuration in this bench: SQLite in `dir`, two PSKs, nothing to issue.
fn config_yaml(dir: &tempfile::TempDir) -> String {
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    format!(
        r#"server:
  issueWait: 30s
storage:
  url: "{db_url}"
acme:
  # Nothing is issued in this bench: the directory points nowhere.
  directoryUrl: "https://127.0.0.1:9/dir"
challenges:
  http01:
    listen: "127.0.0.1:0"
auth:
  psk:
    keys:
      - name: admin
        key: "{ADMIN_KEY}"
      - name: bench-fleet
        key: "{BENCH_KEY}"
        domains: ["bench.example.test", "*.bench.example.test"]
"#
    )
}

/// A real ECDSA P-256 leaf signed by a self-signed issuer: the stored chain is leaf +
/// issuer, about the size of what Pebble or Let's Encrypt hand out.
fn fixture_certificate() -> StoredCert {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 ns");
    let not_before = now - time::Duration::hours(1);
    let not_after = now + time::Duration::days(90);

    let issuer_key = KeyPair::generate().expect("generate the issuer key");
    let mut issuer_params =
        CertificateParams::new(Vec::<String>::new()).expect("empty SAN is valid");
    issuer_params
        .distinguished_name
        .push(DnType::CommonName, "certfleet bench intermediate");
    issuer_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    issuer_params.not_before = not_before;
    issuer_params.not_after = not_after + time::Duration::days(365);
    let issuer_cert = issuer_params
        .self_signed(&issuer_key)
        .expect("self-sign the issuer");
    let issuer = Issuer::new(issuer_params, issuer_key);

    let leaf_key = KeyPair::generate().expect("generate the leaf key");
    let mut leaf_params =
        CertificateParams::new(NAMES.map(str::to_owned).to_vec()).expect("valid names");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, NAMES[0]);
    leaf_params.not_before = not_before;
    leaf_params.not_after = not_after;
    let serial = [0x5a, 0x17, 0x3c, 0x01, 0x9e, 0x42, 0x8b, 0x6d];
    leaf_params.serial_number = Some(SerialNumber::from_slice(&serial));
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("sign the leaf");

    let issuer_pem = issuer_cert.pem();
    let lifetime = (not_after - not_before).whole_seconds();
    StoredCert {
        names: NameSet::parse(&NAMES).expect("valid names"),
        key: certfleet::domain::KeySpec::Server(KeyType::EcdsaP256),
        profile: None,
        ca: None,
        cert_pem: format!("{}{issuer_pem}", leaf.pem()),
        key_pem: Some(leaf_key.serialize_pem()),
        issuer_pem,
        serial: serial.iter().map(|b| format!("{b:02x}")).collect(),
        not_before: not_before.unix_timestamp(),
        not_after: not_after.unix_timestamp(),
        renew_after: not_before.unix_timestamp() + lifetime * 2 / 3,
        issued_at: now.unix_timestamp(),
    }
}

/// The body certfleet's API documents for a cached certificate, built here independently of
/// certfleet's code so that the bare handler and the check below do not trust it.
fn expected_body(cert: &StoredCert) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        domain: &'a str,
        domains: Vec<&'a str>,
        certificate: &'a str,
        private_key: &'a str,
        key_mode: &'a str,
        issuer_cert: &'a str,
        not_before: String,
        not_after: String,
        renew_after: String,
        cached: bool,
    }
    let rfc3339 = |unix: i64| {
        OffsetDateTime::from_unix_timestamp(unix)
            .expect("a valid timestamp")
            .format(&Rfc3339)
            .expect("RFC 3339 formatting")
    };
    let mut names: Vec<&str> = NAMES.to_vec();
    names.sort_unstable();
    let body = Body {
        domain: names[0],
        domains: names,
        certificate: &cert.cert_pem,
        private_key: cert.key_pem.as_deref().expect("a server-held key"),
        key_mode: "server",
        issuer_cert: &cert.issuer_pem,
        not_before: rfc3339(cert.not_before),
        not_after: rfc3339(cert.not_after),
        renew_after: rfc3339(cert.renew_after),
        cached: true,
    };
    Bytes::from(serde_json::to_vec(&body).expect("serialise the body"))
}

/// One fetch from each server before any load: both must answer 200, JSON, the same bytes.
async fn check_same_bytes(certfleet_url: &str, bare_url: &str, expected: &Bytes) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build the HTTP client");
    for (who, url) in [("certfleet", certfleet_url), ("bare", bare_url)] {
        let response = client
            .get(url)
            .header("Authorization", format!("APIKey {BENCH_KEY}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} ({who}): {e}"));
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await.expect("read the body");
        assert_eq!(
            status,
            200,
            "GET {url} ({who}) answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(
            content_type, "application/json",
            "GET {url} ({who}): content type"
        );
        assert!(
            bytes == *expected,
            "GET {url} ({who}) did not answer the expected bytes: the benchmark would compare \
             different work.\n--- expected ({} bytes) ---\n{}\n--- got ({} bytes) ---\n{}",
            expected.len(),
            String::from_utf8_lossy(expected),
            bytes.len(),
            String::from_utf8_lossy(&bytes)
        );
    }
}

/// wrk with the bench key.
fn wrk(url: &str, duration: &str) -> f64 {
    util::wrk(url, &format!("Authorization: APIKey {BENCH_KEY}"), duration)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "BELOW TARGET" }
}

/// This process's resident set size in kB, from `/proc/self/status`.
fn vm_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[allow(clippy::cast_precision_loss)] // kB counts are far below 2^52.
fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// The log format of a run: unset (text, then a JSON run and the split), `json` or `off`.
const LOG_FORMAT: &str = "CERTFLEET_BENCH_LOG";

/// The same load with JSON logging, in a child process: its output goes on this one's.
fn json_run() {
    let exe = std::env::current_exe().expect("this bench's path");
    let output = Command::new(exe)
        .arg("--bench")
        .env(LOG_FORMAT, "json")
        .output()
        .expect("run the JSON round");
    print!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "the JSON run failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The environment variable that makes this binary one child of [`split`], measuring one mode.
const SPLIT_CHILD: &str = "CERTFLEET_BENCH_SPLIT_CHILD";
/// Requests per batch of the split, and batches (the median batch counts).
const SPLIT_REQUESTS: u32 = 50_000;
const SPLIT_BATCHES: usize = 7;

/// The split per layer: the same GET through the router in-process (no sockets, no kernel), once
/// per mode, each in its own process since the logger and the metrics recorder are global:
/// the bare handler; certfleet with metrics and logging off (the handler under the observe
/// layer: request id, route label, authentication, query, cache, body, headers); with the
/// metrics recorder on; with info logging in text (the request span and the audit line); in
/// JSON. Printed as time per request and the difference each layer adds.
fn split() {
    let exe = std::env::current_exe().expect("this bench's path");
    let modes = ["bare", "handler", "metrics", "text", "json"];
    let mut us = Vec::with_capacity(modes.len());
    for mode in modes {
        let output = Command::new(&exe)
            .env(SPLIT_CHILD, mode)
            .output()
            .unwrap_or_else(|e| panic!("run the split child {mode}: {e}"));
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "split child {mode} failed: {}\n{text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let value: f64 = text
            .lines()
            .find_map(|line| line.strip_prefix("SPLIT "))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no SPLIT line from child {mode}:\n{text}"));
        us.push(value);
    }
    println!(
        "fetch split per layer: the same GET in-process through the router (no sockets), \
         median of {SPLIT_BATCHES} batches of {SPLIT_REQUESTS}"
    );
    let [bare, handler, metrics, text, json] = us[..] else {
        unreachable!("five modes")
    };
    println!("  bare handler                                  {bare:>6.2} us/request");
    println!(
        "  certfleet, metrics and logging off            {handler:>6.2} us  (+{:.2}: observe layer skeleton, auth, query, cache, body)",
        handler - bare
    );
    println!(
        "  + metrics recorder                            {metrics:>6.2} us  (+{:.2}: HTTP counter and histogram, delivery counter)",
        metrics - handler
    );
    println!(
        "  + info logging, text                          {text:>6.2} us  (+{:.2}: request span, audit line)",
        text - metrics
    );
    println!(
        "  + info logging, JSON instead                  {json:>6.2} us  (+{:.2} over metrics)",
        json - metrics
    );
}

/// One mode of [`split`]: prints `SPLIT <microseconds per request>`.
fn split_child(mode: &str) {
    use tower::ServiceExt as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    runtime.block_on(async {
        let dir = tempfile::Builder::new()
            .prefix("certfleet-bench-split-")
            .tempdir()
            .expect("create a temporary directory");
        let cert = fixture_certificate();
        let body = expected_body(&cert);
        let format = match mode {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        };
        if let Some(format) = format {
            certfleet::observe::logging::init_with_writer(
                &LogConfig {
                    format,
                    level: "info".to_owned(),
                },
                std::io::sink,
            );
        }
        if mode != "bare" && mode != "handler" {
            certfleet::observe::metrics::install();
        }
        let router = if mode == "bare" {
            Router::new().route(
                "/api/certificate",
                get(move || {
                    let body = body.clone();
                    async move {
                        let mut response = body.into_response();
                        response.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        );
                        response
                    }
                }),
            )
        } else {
            let config = Config::from_yaml(&config_yaml(&dir), std::iter::empty())
                .expect("the bench config is valid")
                .config;
            let app = App::start(&config).await.expect("certfleet starts");
            app.api
                .store
                .save_certificate(&cert, &[])
                .await
                .expect("save the certificate");
            certfleet::api::router(app.api.clone())
        };
        let remote: std::net::SocketAddr = "127.0.0.1:40000".parse().expect("an address");
        let uri = format!("/api/certificate?{QUERY}");
        let authorization = HeaderValue::from_str(&format!("APIKey {BENCH_KEY}")).expect("ASCII");
        let call = |router: Router| {
            let mut request = Request::get(uri.as_str())
                .header(header::AUTHORIZATION, authorization.clone())
                .body(axum::body::Body::empty())
                .expect("a request");
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(remote));
            async move {
                let response = router.oneshot(request).await.expect("infallible");
                assert_eq!(response.status(), 200, "GET in mode {mode}");
                // The body is one frame of bytes already: taking it is what a server does.
                let bytes = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .expect("the body")
                    .to_bytes();
                std::hint::black_box(bytes);
            }
        };
        for _ in 0..SPLIT_REQUESTS / 5 {
            call(router.clone()).await;
        }
        let mut batches = Vec::with_capacity(SPLIT_BATCHES);
        for _ in 0..SPLIT_BATCHES {
            let started = std::time::Instant::now();
            for _ in 0..SPLIT_REQUESTS {
                call(router.clone()).await;
            }
            batches.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(SPLIT_REQUESTS));
        }
        println!("SPLIT {:.3}", median(&mut batches));
    });
}
