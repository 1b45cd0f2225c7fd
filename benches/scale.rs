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
//!    `host<i>.scale.example`, one real ECDSA P-256 leaf, its intermediate and its key reused for
//!    every row (the body has a real size), renewal times spread over 90 days with the first
//!    tenth already due. The seeding time is printed.
//! 2. The renewal worker's scan, in this process on that store before anything else touches it:
//!    `due(now, 20)` and `next_due()`, the median of 21 (as `benches/renewal_scan.rs`). Once the
//!    binary has run, its renewal worker has tried the due certificates (the CA is unreachable)
//!    and a varying number of them back off, so the scan runs first to stay comparable.
//! 3. The real `certfleet serve` starts on that store (metrics on, `metricsCertificates` at its
//!    default `due`, info logging to a file): the time from spawning it to `/readyz` answering 200
//!    (polled every 10 ms), then its VmRSS after 2 s idle.
//! 4. `/metrics`, scraped 5 times: the median time to the end of the body, and its size. Then
//!    the inventory, `GET /api/certificates`: the first page of 100 (median of 5), a walk with
//!    `limit=100` to the end (every certificate listed once), the last page (median of 5), and
//!    the first and last pages of 10 as ratios to the page of 10 from the same binary serving a
//!    store of 10 certificates of the same kind, measured in the same run before the large store
//!    is seeded ("100,000 certificates page as fast as 10": the bound is 1.5x). The first page
//!    at 100,000 holds the earliest certificates, which are due and failing (each shows its
//!    error), so its baseline is a store of 10 due certificates, failing alike; the last page
//!    holds valid ones, and so does its baseline store.
//! 5. Every certificate fetched once, `GET /api/certificate?domain=...` with a PSK allowed every
//!    name, 32 at a time over one client; each answer must be 200. Then VmRSS again (the service
//!    keeps at most `server.cacheSize`, default 32 MiB, of certificates and renderings in memory) and another scrape, which also
//!    tells how many renewals the worker attempted meanwhile.
//! 6. The binary restarted with `metricsCertificates: all`: a scrape listing every certificate,
//!    the worst case.
//!
//! Every figure is printed against its target as a `RESULT` line. The bounds are absolute (a
//! start-up or a scrape has no baseline to share a run with): Prometheus' default scrape timeout
//! is 10 s; 20 MiB is the idle target of every run of certfleet; 64 MiB after every certificate
//! was fetched is our bound with the default `server.cacheSize` of 32 MiB.

// The integration tests' harness, for its PostgreSQL and free ports; the rest is dead code here.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/common/mod.rs"]
mod common;
#[path = "util/mod.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use certfleet::domain::{KeyType, NameSet};
use certfleet::store::{Store, StoredCert};
use futures_util::StreamExt as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

const CERTIFICATES: i64 = 100_000;
/// Saves at once while seeding.
const SEED_CONCURRENCY: usize = 8;
/// Requests at once while fetching every certificate.
const FETCH_CONCURRENCY: usize = 32;
const SCRAPES: usize = 5;
const SCANS: usize = 21;
const KEY: &str = util::STORAGE_KEY;
const PSK: &str = "scale-bench-key-0123456789abcdef0123456789abcdef";

const TARGET_STARTUP_MS: f64 = 10_000.0;
const TARGET_IDLE_MIB: f64 = 20.0;
const TARGET_FETCHED_MIB: f64 = 64.0;
const TARGET_SCRAPE_MS: f64 = 10_000.0;
const TARGET_SCAN_MS: f64 = 50.0;
const TARGET_PAGE_MS: f64 = 50.0;
/// A page at 100,000 certificates against the same page of a store holding [`SMALL`].
const TARGET_PAGE_RATIO: f64 = 1.5;
/// Entries per timed inventory page.
const PAGE: usize = 100;
/// Certificates in the small store whose page is the inventory's baseline, and the page size
/// compared with it.
const SMALL: usize = 10;

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
        let sqlite = |file: &str| format!("sqlite://{}", dir.path().join(file).display());
        // `CERTFLEET_SCALE_BACKENDS=sqlite` (or `postgres`) runs one backend.
        let only = std::env::var("CERTFLEET_SCALE_BACKENDS").unwrap_or_default();
        let wanted = |backend: &str| only.is_empty() || only.split(',').any(|b| b == backend);
        if wanted("sqlite") {
            let urls = [
                sqlite("scale.db"),
                sqlite("small-due.db"),
                sqlite("small-valid.db"),
            ];
            run("sqlite", &urls, &binary, dir.path()).await;
        }
        if wanted("postgres") {
            let postgres = common::postgres::Postgres::start().await;
            let urls = [
                postgres.create_database("scale", "").await,
                postgres.create_database("scale_small_due", "").await,
                postgres.create_database("scale_small_valid", "").await,
            ];
            run("postgres", &urls, &binary, dir.path()).await;
        }
    });
}

/// Every measurement on the store at `url`, with the inventory's baselines on `due_url` and
/// `valid_url`.
async fn run(backend: &str, [url, due_url, valid_url]: &[String; 3], binary: &Path, dir: &Path) {
    println!("scale: {CERTIFICATES} certificates in {backend}");
    let result = |what: &str, value: f64, bound: f64, note: &str| {
        let verdict = if value < bound {
            "PASS"
        } else {
            "ABOVE TARGET"
        };
        println!("RESULT scale_{backend}_{what} {value:.1} target < {bound} {verdict}{note}");
    };

    let store = util::open_store(url).await;
    let now = certfleet::util::clock::now();

    // The baselines first: the same pages on stores of SMALL certificates of each kind.
    let small_due = small_store_pages(backend, due_url, binary, dir, now, Seeding::Due).await;
    let small_valid = small_store_pages(backend, valid_url, binary, dir, now, Seeding::Valid).await;
    println!(
        "  baselines: GET /api/certificates?limit={SMALL} on {SMALL} certificates: {small_due:.2} \
         ms (due and failing), {small_valid:.2} ms (valid)"
    );

    let started = Instant::now();
    seed(&store, now, CERTIFICATES, Seeding::Spread).await;
    println!(
        "  seeded through the store in {:.1} s ({SEED_CONCURRENCY} saves at a time)",
        started.elapsed().as_secs_f64()
    );
    let scan = renewal_scan(&store, now).await;
    println!("  renewal scan (due + next_due): median {scan:.2} ms of {SCANS}");
    result("renewal_scan_ms", scan, TARGET_SCAN_MS, "");

    let server = Server::start(binary, dir, backend, url, "due").await;
    result("startup_ms", server.startup_ms, TARGET_STARTUP_MS, "");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server.rss_mib();
    println!("  idle VmRSS {idle:.1} MiB");
    result("idle_rss_mib", idle, TARGET_IDLE_MIB, "");
    let (ms, body) = server.scrape().await;
    println!("  /metrics (due): {ms:.1} ms, {} bytes", body.len());
    let size = format!(" ({} bytes)", body.len());
    result("metrics_due_ms", ms, TARGET_SCRAPE_MS, &size);
    let (first, last, pages, last_cursor) = server.inventory_pages().await;
    println!(
        "  GET /api/certificates?limit={PAGE}: first page {first:.1} ms, last page {last:.1} ms \
         (medians of {SCRAPES}; {pages} pages to the end)"
    );
    result("inventory_first_page_ms", first, TARGET_PAGE_MS, "");
    result("inventory_last_page_ms", last, TARGET_PAGE_MS, "");
    let first_small = server.page_ms(SMALL, None).await;
    let last_small = server.page_ms(SMALL, last_cursor.as_deref()).await;
    println!(
        "  GET /api/certificates?limit={SMALL}: first page {first_small:.2} ms, last page \
         {last_small:.2} ms"
    );
    let note = format!(" (limit={SMALL}, against {SMALL} certificates of the same kind)");
    let ratio = first_small / small_due;
    result(
        "inventory_first_page_vs_small",
        ratio,
        TARGET_PAGE_RATIO,
        &note,
    );
    let ratio = last_small / small_valid;
    result(
        "inventory_last_page_vs_small",
        ratio,
        TARGET_PAGE_RATIO,
        &note,
    );

    let started = Instant::now();
    let bytes = server.fetch_all().await;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "  every certificate fetched once: {elapsed:.1} s ({:.0} requests/s, bodies of {:.0} bytes)",
        CERTIFICATES as f64 / elapsed,
        bytes as f64 / CERTIFICATES as f64
    );
    let fetched = server.rss_mib();
    println!("  VmRSS after every fetch {fetched:.1} MiB");
    let note = " (every certificate fetched once)";
    result("rss_after_fetch_mib", fetched, TARGET_FETCHED_MIB, note);
    let (ms, body) = server.scrape().await;
    println!(
        "  /metrics (due) after the fetches: {ms:.1} ms, {} bytes; the renewal worker attempted \
         {} renewals so far (the CA is unreachable: each fails and backs off)",
        body.len(),
        renewal_attempts(&body)
    );
    drop(server);

    let server = Server::start(binary, dir, backend, url, "all").await;
    let (ms, body) = server.scrape().await;
    println!("  /metrics (all): {ms:.1} ms, {} bytes", body.len());
    let size = format!(" ({} bytes)", body.len());
    result("metrics_all_ms", ms, TARGET_SCRAPE_MS, &size);
}

/// How [`seed`] spreads renewal times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seeding {
    /// Over 90 days, the first tenth already due: the large store.
    Spread,
    /// Every one due (the renewal worker fails them: the CA is unreachable).
    Due,
    /// None due.
    Valid,
}

/// A baseline of the inventory's pages: the median time of the first page of [`SMALL`]
/// entries from the real binary serving a store of [`SMALL`] certificates at `url`, seeded as
/// `seeding` says (for due ones, once the renewal worker has failed them).
async fn small_store_pages(
    backend: &str,
    url: &str,
    binary: &Path,
    dir: &Path,
    now: i64,
    seeding: Seeding,
) -> f64 {
    let store = util::open_store(url).await;
    seed(
        &store,
        now,
        i64::try_from(SMALL).expect("a small count"),
        seeding,
    )
    .await;
    let name = format!("{backend}-small-{seeding:?}").to_lowercase();
    let server = Server::start(binary, dir, &name, url, "due").await;
    let expected = if seeding == Seeding::Due {
        "backing_off"
    } else {
        "valid"
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) = server.page_json(SMALL, None).await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), SMALL, "every certificate listed");
        if items.iter().all(|item| item["status"] == expected) {
            break;
        }
        assert!(Instant::now() < deadline, "not all {expected}: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.page_ms(SMALL, None).await
}

/// Saves `count` rows, [`SEED_CONCURRENCY`] at a time, through the store.
async fn seed(store: &Arc<dyn Store>, now: i64, count: i64, seeding: Seeding) {
    // The first renewal time, days from now, and the days the rest spread over.
    let (first, span) = match seeding {
        Seeding::Spread => (-9, 90),
        Seeding::Due => (-9, 8),
        Seeding::Valid => (1, 80),
    };
    let fixture = fixture();
    futures_util::stream::iter(0..count)
        .for_each_concurrent(SEED_CONCURRENCY, |i| {
            let fixture = &fixture;
            async move {
                let renew_after = now + first * 86_400 + (i * span * 86_400) / count;
                let cert = StoredCert {
                    names: NameSet::parse(&[name(i)]).expect("a valid name"),
                    serial: format!("{i:x}"),
                    not_before: renew_after - 60 * 86_400,
                    not_after: renew_after + 30 * 86_400,
                    renew_after,
                    issued_at: renew_after - 60 * 86_400,
                    ..fixture.clone()
                };
                store.save_certificate(&cert, &[]).await.expect("save");
            }
        })
        .await;
}

/// One certificate as a CA hands it out: an ECDSA P-256 leaf signed by an intermediate, the
/// chain after it, and its key. Every row reuses it under its own name and times.
fn fixture() -> StoredCert {
    let ca_key = KeyPair::generate().expect("the intermediate's key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("no names");
    ca.distinguished_name
        .push(DnType::CommonName, "certfleet scale bench intermediate");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let chain = ca.self_signed(&ca_key).expect("self-sign").pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("the leaf's key");
    let mut leaf = CertificateParams::new(vec![name(0)]).expect("a name");
    leaf.distinguished_name.push(DnType::CommonName, name(0));
    leaf.use_authority_key_identifier_extension = true;
    let leaf = leaf.signed_by(&key, &issuer).expect("sign the leaf");
    StoredCert {
        names: NameSet::parse(&[name(0)]).expect("a valid name"),
        key: certfleet::domain::KeySpec::Server(KeyType::EcdsaP256),
        profile: None,
        ca: None,
        cert_pem: format!("{}{chain}", leaf.pem()),
        key_pem: Some(key.serialize_pem()),
        issuer_pem: chain,
        serial: String::new(),
        not_before: 0,
        not_after: 0,
        renew_after: 0,
        issued_at: 0,
    }
}

fn name(i: i64) -> String {
    format!("host{i}.scale.example")
}

/// The median time in ms of [`SCANS`] scans of the renewal worker: `due(now, 20)`, `next_due()`.
async fn renewal_scan(store: &Arc<dyn Store>, now: i64) -> f64 {
    let mut times = Vec::with_capacity(SCANS);
    for _ in 0..SCANS {
        let started = Instant::now();
        let due = store.due(now, 20).await.expect("due");
        let next = store.next_due().await.expect("next due");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(due.len(), 20, "a full batch of due certificates");
        assert!(next.is_some(), "a next renewal time");
    }
    util::median(&mut times)
}

/// The renewals the worker attempted, from `certfleet_issuances_total{trigger="renewal",...}`.
fn renewal_attempts(scrape: &str) -> u64 {
    scrape
        .lines()
        .filter(|line| line.starts_with("certfleet_issuances_total{"))
        .filter(|line| line.contains("trigger=\"renewal\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The real binary, serving the store; stopped with SIGTERM when dropped.
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
    async fn start(binary: &Path, dir: &Path, backend: &str, url: &str, series: &str) -> Server {
        let (api, http01, metrics) = (
            common::free_port(),
            common::free_port(),
            common::free_port(),
        );
        let config = dir.join(format!("config-{backend}-{series}.yaml"));
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
        let log = dir.join(format!("certfleet-{backend}-{series}.log"));
        let output = std::fs::File::create(&log).expect("the log file");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(output.try_clone().expect("the log file"))
            .stderr(output)
            .spawn()
            .expect("start certfleet");
        let mut server = Server {
            child,
            api: format!("http://127.0.0.1:{api}"),
            metrics: format!("http://127.0.0.1:{metrics}/metrics"),
            client,
            startup_ms: 0.0,
            log,
        };
        server.wait_ready(started).await;
        server.startup_ms = started.elapsed().as_secs_f64() * 1000.0;
        println!(
            "  certfleet serve ({series}) ready in {:.0} ms",
            server.startup_ms
        );
        server
    }

    /// Polls `/readyz` every 10 ms until it answers 200.
    async fn wait_ready(&mut self, started: Instant) {
        let url = format!("{}/readyz", self.api);
        loop {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                panic!(
                    "certfleet exited ({status}) during start-up:\n{}",
                    self.log_tail()
                );
            }
            let ready = self.client.get(&url).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "not ready after 60 s:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The median time of [`SCRAPES`] whole scrapes, in ms, and the last body.
    async fn scrape(&self) -> (f64, String) {
        let mut times = Vec::with_capacity(SCRAPES);
        let mut body = String::new();
        for _ in 0..SCRAPES {
            let started = Instant::now();
            let response = self.client.get(&self.metrics).send().await.expect("scrape");
            assert_eq!(response.status(), 200, "GET /metrics");
            body = response.text().await.expect("the scrape's body");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(
                body.contains("certfleet_certificates{"),
                "no aggregate in the scrape:\n{body}"
            );
        }
        (util::median(&mut times), body)
    }

    /// One inventory page (`GET /api/certificates`) as JSON, and its time in ms (to the end
    /// of the body, parsed).
    async fn page_json(&self, limit: usize, cursor: Option<&str>) -> (f64, serde_json::Value) {
        let mut url = format!("{}/api/certificates?limit={limit}", self.api);
        if let Some(cursor) = cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let started = Instant::now();
        let response = self
            .client
            .get(&url)
            .header("Authorization", format!("APIKey {PSK}"))
            .send()
            .await
            .expect("GET /api/certificates");
        assert_eq!(response.status(), 200, "GET {url}\n{}", self.log_tail());
        let body: serde_json::Value = response.json().await.expect("a JSON page");
        (started.elapsed().as_secs_f64() * 1000.0, body)
    }

    /// One inventory page: its time in ms, its item count and its `next` cursor.
    async fn page(&self, limit: usize, cursor: Option<&str>) -> (f64, usize, Option<String>) {
        let (elapsed, body) = self.page_json(limit, cursor).await;
        let items = body["items"].as_array().map_or(0, Vec::len);
        (elapsed, items, body["next"].as_str().map(str::to_owned))
    }

    /// The median time of [`SCRAPES`] requests for one inventory page; each must list entries.
    async fn page_ms(&self, limit: usize, cursor: Option<&str>) -> f64 {
        let mut times = Vec::with_capacity(SCRAPES);
        for _ in 0..SCRAPES {
            let (ms, items, _) = self.page(limit, cursor).await;
            assert!(items > 0, "the page has entries");
            times.push(ms);
        }
        util::median(&mut times)
    }

    /// The median times of the inventory's first and last page of [`PAGE`] entries, how many
    /// pages the walk to the last one took, and the last page's cursor. Every certificate must
    /// be listed once.
    async fn inventory_pages(&self) -> (f64, f64, usize, Option<String>) {
        let mut first = Vec::with_capacity(SCRAPES);
        for _ in 0..SCRAPES {
            let (ms, items, _) = self.page(PAGE, None).await;
            assert_eq!(items, PAGE);
            first.push(ms);
        }
        // Walk to the end. A full page always has a `next`, which may lead to an empty one:
        // the last page is the last one with entries.
        let (mut cursor, mut last_page, mut listed, mut pages) = (None::<String>, None, 0, 0);
        loop {
            let (_, items, next) = self.page(PAGE, cursor.as_deref()).await;
            pages += 1;
            listed += items;
            if items > 0 {
                last_page = Some(cursor.clone());
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let cursor = last_page.expect("a non-empty page");
        assert_eq!(
            i64::try_from(listed).ok(),
            Some(CERTIFICATES),
            "every certificate listed once"
        );
        let last = self.page_ms(PAGE, cursor.as_deref()).await;
        (util::median(&mut first), last, pages, cursor)
    }

    /// Fetches every certificate once; each answer must be 200. Returns the bytes received.
    async fn fetch_all(&self) -> usize {
        let received = AtomicUsize::new(0);
        futures_util::stream::iter(0..CERTIFICATES)
            .for_each_concurrent(FETCH_CONCURRENCY, |i| {
                let received = &received;
                async move {
                    let response = self
                        .client
                        .get(format!("{}/api/certificate?domain={}", self.api, name(i)))
                        .header("Authorization", format!("APIKey {PSK}"))
                        .send()
                        .await
                        .expect("GET /api/certificate");
                    let status = response.status();
                    let body = response.bytes().await.expect("the body");
                    assert_eq!(
                        status,
                        200,
                        "GET {}: {}\n{}",
                        name(i),
                        String::from_utf8_lossy(&body),
                        self.log_tail()
                    );
                    received.fetch_add(body.len(), Ordering::Relaxed);
                }
            })
            .await;
        received.into_inner()
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
            "  (VmRSS: anonymous {:.1} MiB, file-backed {:.1} MiB)",
            field("RssAnon:"),
            field("RssFile:")
        );
        field("VmRSS:")
    }

    /// The last lines of the child's log, for a failure's message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}
