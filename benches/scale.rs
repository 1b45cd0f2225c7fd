//! Benchmark: certfleet holding 100,000 certificates, in one SQLite file and in PostgreSQL.
//!
//! Run with `cargo bench --bench scale` (or `bench/run.sh scale`). Needs the release binary
//! (`cargo build --release`: `bench/run.sh` builds it) and PostgreSQL (Debian's `postgresql`,
//! started by the tests' harness `tests/it/common/postgres.rs`, which fails with the install
//! command when it is missing).
//!
//! For each backend:
//! 1. 100,000 certificates are saved through the real store (`store::open`, `save_certificate`,
//!    so every private key is sealed as in production), 8 saves at a time: names
//!    `host<i>.scale.example`, one real ECDSA P-256 certificate and key reused for every row (the
//!    body has a real size), renewal times spread over 90 days with the first tenth already due.
//! 2. The real `certfleet serve` starts on that store (metrics on, `metricsCertificates` at its
//!    default `due`, info logging to a file): the time from spawning it to `/readyz` answering 200
//!    (polled every 10 ms), then its VmRSS after 2 s idle.
//! 3. `/metrics`, scraped 5 times: the median time to the end of the body, and its size.
//! 4. Every certificate fetched once, `GET /api/certificate?domain=...` with a PSK allowed every
//!    name, 32 at a time over one client; each answer must be 200. Then VmRSS again (the service
//!    keeps at most 10,000 certificates and renderings in memory) and another scrape.
//! 5. The binary restarted with `metricsCertificates: all`: a scrape listing every certificate,
//!    the worst case.
//! 6. The renewal worker's scan, in this process on the same store: `due(now, 20)` and
//!    `next_due()`, the median of 21.
//!
//! Every figure is printed against its target as a `RESULT` line. The bounds are absolute (a
//! start-up or a scrape has no baseline to share a run with): Prometheus' default scrape timeout
//! is 10 s; 20 MiB is the idle target every run of certfleet meets; 64 MiB after every
//! certificate was fetched is our bound for a cache capped at 10,000 entries.

// The integration tests' harness, for its PostgreSQL and free ports; the rest is dead code here.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/common/mod.rs"]
mod common;
#[path = "util/mod.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certfleet::config::Config;
use certfleet::domain::NameSet;
use certfleet::store::{Store, StoredCert};
use futures_util::StreamExt as _;

const CERTIFICATES: i64 = 100_000;
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const PSK: &str = "scale-bench-key-0123456789abcdef0123456789abcdef";
const SCRAPES: usize = 5;
const SCANS: usize = 21;
const FETCH_CONCURRENCY: usize = 32;

const TARGET_STARTUP_MS: f64 = 10_000.0;
const TARGET_IDLE_MIB: f64 = 20.0;
const TARGET_FETCHED_MIB: f64 = 64.0;
const TARGET_SCRAPE_MS: f64 = 10_000.0;
const TARGET_SCAN_MS: f64 = 50.0;

fn main() {
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/certfleet");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --release` first (bench/run.sh does)",
        binary.display()
    );
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let dir = tempfile::Builder::new()
            .prefix("certfleet-bench-scale-")
            .tempdir()
            .expect("a temporary directory");
        let sqlite = format!("sqlite://{}", dir.path().join("scale.db").display());
        run("sqlite", &sqlite, &binary, dir.path()).await;
        let postgres = common::postgres::Postgres::start().await;
        let url = postgres.create_database("scale", "").await;
        run("postgres", &url, &binary, dir.path()).await;
    });
}

/// Every measurement on the store at `url`.
async fn run(backend: &str, url: &str, binary: &Path, dir: &Path) {
    println!("scale: {CERTIFICATES} certificates in {backend}");
    let yaml = format!("storage:\n  url: \"{url}\"\n  encryptionKey: \"{KEY}\"\n");
    let config = Config::from_yaml(&yaml, std::iter::empty())
        .expect("config")
        .config;
    let store = certfleet::store::open(&config.storage)
        .await
        .expect("open the store");
    let now = certfleet::util::clock::now();
    let started = Instant::now();
    seed(&store, now).await;
    println!(
        "  seeded through the store in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let result = |what: &str, value: f64, op: &str, bound: f64, note: &str| {
        let pass = if op == "<" {
            value < bound
        } else {
            value <= bound
        };
        let verdict = if pass { "PASS" } else { "ABOVE TARGET" };
        println!("RESULT scale_{backend}_{what} {value:.1} target {op} {bound} {verdict}{note}");
    };

    let server = Server::start(binary, dir, url, "due").await;
    result("startup_ms", server.startup_ms, "<", TARGET_STARTUP_MS, "");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server.rss_mib();
    println!("  idle VmRSS {idle:.1} MiB");
    result("idle_rss_mib", idle, "<", TARGET_IDLE_MIB, "");
    let (ms, bytes) = server.scrape().await;
    println!("  /metrics (due): {ms:.1} ms, {bytes} bytes");
    result(
        "metrics_due_ms",
        ms,
        "<",
        TARGET_SCRAPE_MS,
        &format!(" ({bytes} bytes)"),
    );

    let started = Instant::now();
    server.fetch_all().await;
    let elapsed = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)] // 100,000 is exact in an f64.
    let rate = CERTIFICATES as f64 / elapsed;
    println!("  every certificate fetched once: {elapsed:.1} s ({rate:.0} requests/s)");
    let fetched = server.rss_mib();
    println!("  VmRSS after every fetch {fetched:.1} MiB");
    result(
        "rss_after_fetch_mib",
        fetched,
        "<",
        TARGET_FETCHED_MIB,
        " (every certificate fetched once)",
    );
    let (ms, bytes) = server.scrape().await;
    println!("  /metrics (due) after the fetches: {ms:.1} ms, {bytes} bytes");
    server.stop();

    let server = Server::start(binary, dir, url, "all").await;
    let (ms, bytes) = server.scrape().await;
    println!("  /metrics (all): {ms:.1} ms, {bytes} bytes");
    result(
        "metrics_all_ms",
        ms,
        "<",
        TARGET_SCRAPE_MS,
        &format!(" ({bytes} bytes)"),
    );
    server.stop();

    let mut times = Vec::with_capacity(SCANS);
    for _ in 0..SCANS {
        let started = Instant::now();
        let due = store.due(now, 20).await.expect("due");
        let next = store.next_due().await.expect("next due");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(due.len(), 20, "a full batch of due certificates");
        assert!(next.is_some(), "a next renewal time");
    }
    let scan = util::median(&mut times);
    println!("  renewal scan (due + next_due): median {scan:.2} ms of {SCANS}");
    result("renewal_scan_ms", scan, "<", TARGET_SCAN_MS, "");
}

/// Saves [`CERTIFICATES`] rows, 8 at a time, through the store.
async fn seed(store: &Arc<dyn Store>, now: i64) {
    let fixture = util::self_signed_certificate(&["fixture.scale.example"]);
    futures_util::stream::iter(0..CERTIFICATES)
        .for_each_concurrent(8, |i| {
            let fixture = &fixture;
            async move {
                // Renewal times spread over 90 days, the first tenth already due.
                let renew_after = now - 9 * 86_400 + (i * 90 * 86_400) / CERTIFICATES;
                let cert = StoredCert {
                    names: NameSet::parse(&[name(i)]).expect("a valid name"),
                    serial: format!("{i:x}"),
                    not_before: renew_after - 60 * 86_400,
                    not_after: renew_after + 30 * 86_400,
                    renew_after,
                    issued_at: renew_after - 60 * 86_400,
                    ..fixture.clone()
                };
                store.save_certificate(&cert).await.expect("save");
            }
        })
        .await;
}

fn name(i: i64) -> String {
    format!("host{i}.scale.example")
}

/// The real binary, serving the store.
struct Server {
    child: Child,
    api: String,
    metrics: String,
    client: reqwest::Client,
    startup_ms: f64,
    log: PathBuf,
}

impl Server {
    /// Starts `certfleet serve` on `url` with `metricsCertificates: series` and waits for
    /// `/readyz`.
    async fn start(binary: &Path, dir: &Path, url: &str, series: &str) -> Server {
        let (api, http01, metrics) = (
            common::free_port(),
            common::free_port(),
            common::free_port(),
        );
        let config = dir.join(format!("config-{series}.yaml"));
        std::fs::write(
            &config,
            format!(
                r#"server:
  listen: "127.0.0.1:{api}"
  metricsListen: "127.0.0.1:{metrics}"
  metricsCertificates: {series}
storage:
  url: "{url}"
  encryptionKey: "{KEY}"
acme:
  # Nothing is issued: the directory points nowhere.
  directoryUrl: "https://127.0.0.1:9/dir"
challenges:
  http01:
    listen: "127.0.0.1:{http01}"
auth:
  psk:
    keys:
      - name: fleet
        key: "{PSK}"
        domains: ["*"]
log:
  level: info
"#
            ),
        )
        .expect("write the config");
        let log = dir.join(format!("certfleet-{series}.log"));
        let output = std::fs::File::create(&log).expect("the log file");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let started = Instant::now();
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(output)
            .spawn()
            .expect("start certfleet");
        let api = format!("http://127.0.0.1:{api}");
        loop {
            if let Some(status) = child.try_wait().expect("the child's status") {
                panic!(
                    "certfleet exited ({status}) during start-up:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let ready = client.get(format!("{api}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "not ready after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let startup_ms = started.elapsed().as_secs_f64() * 1000.0;
        println!("  certfleet serve ({series}) ready in {startup_ms:.0} ms");
        Server {
            child,
            api,
            metrics: format!("http://127.0.0.1:{metrics}/metrics"),
            client,
            startup_ms,
            log,
        }
    }

    /// The median time of [`SCRAPES`] whole scrapes, in ms, and the body's size.
    async fn scrape(&self) -> (f64, usize) {
        let mut times = Vec::with_capacity(SCRAPES);
        let mut size = 0;
        for _ in 0..SCRAPES {
            let started = Instant::now();
            let response = self.client.get(&self.metrics).send().await.expect("scrape");
            assert_eq!(response.status(), 200, "GET /metrics");
            let body = response.text().await.expect("the scrape's body");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(
                body.contains("certfleet_certificates{"),
                "no aggregate in the scrape"
            );
            size = body.len();
        }
        (util::median(&mut times), size)
    }

    /// Fetches every certificate once; each answer must be 200.
    async fn fetch_all(&self) {
        futures_util::stream::iter(0..CERTIFICATES)
            .for_each_concurrent(FETCH_CONCURRENCY, |i| async move {
                let response = self
                    .client
                    .get(format!("{}/api/certificate?domain={}", self.api, name(i)))
                    .header("Authorization", format!("APIKey {PSK}"))
                    .send()
                    .await
                    .expect("GET");
                let status = response.status();
                let body = response.bytes().await.expect("the body");
                assert_eq!(
                    status,
                    200,
                    "GET {}: {}\n{}",
                    name(i),
                    String::from_utf8_lossy(&body),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            })
            .await;
    }

    /// The child's VmRSS in MiB; its anonymous and file-backed parts are printed beside it.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the child's /proc status");
        let field = |name: &str| -> f64 {
            let kib: f64 = status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name} in /proc/<pid>/status"));
            kib / 1024.0
        };
        println!(
            "  (VmRSS: anonymous {:.1} MiB, file-backed {:.1} MiB, shared memory {:.1} MiB)",
            field("RssAnon:"),
            field("RssFile:"),
            field("RssShmem:")
        );
        field("VmRSS:")
    }

    /// Stops the child with SIGTERM and waits for it.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
