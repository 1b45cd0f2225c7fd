//! Benchmark: the watch (`GET /api/certificate?...&wait=` with `If-None-Match`) with
//! [`WAITERS`] clients waiting at once on one real `certfleet serve` (against a real Pebble):
//! what each waiting client costs the server in memory, and how soon every one of them has the
//! renewed certificate once the renewal is answered.
//!
//! Run with `cargo bench --bench watch` (or `bench/run.sh watch`). Steps:
//! 1. `certfleet serve` (the release binary) issues one certificate; its VmRSS after 2 s idle;
//! 2. [`WAITERS`] requests wait on it at once (one connection each), until the server's
//!    `certfleet_watchers` gauge says they all wait; its VmRSS again, 2 s later: the growth per
//!    waiter, target <= [`TARGET_KIB_PER_WAITER`] KiB;
//! 3. a forced renewal; every waiter must be answered 200 with the new certificate: the time
//!    from the renewal's answer to the last waiter's (and the median), target <=
//!    [`TARGET_WAKE_MS`] ms for the last.

// The integration tests' harness; this benchmark uses the Pebble and process parts of it.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use common::service::{ADMIN_KEY, base_yaml};
use common::{Pebble, PebbleOptions, free_port, process};

/// Clients waiting at once.
const WAITERS: usize = 1000;
/// The server's memory per waiting client: its HTTP/1 connection is most of it (hyper's read
/// buffer, the socket's task), measured at about 26 KiB on this machine, the watch itself
/// adding nothing measurable (the same connections idle in keep-alive afterwards hold as much).
const TARGET_KIB_PER_WAITER: f64 = 32.0;
/// From the renewal's answer to the last waiter's.
const TARGET_WAKE_MS: f64 = 1000.0;
const NAME: &str = "watched.bench.example.test";

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    runtime.block_on(run());
}

/// The VmRSS of `pid`, KiB.
fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn run() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let (port, metrics_port) = (free_port(), free_port());
    let yaml = base_yaml(&pebble, &db_url, "30s").replace(
        "server:\n",
        &format!(
            "server:\n  listen: \"127.0.0.1:{port}\"\n  metricsListen: \"127.0.0.1:{metrics_port}\"\n  \
             watch:\n    maxPerCredential: {}\n",
            WAITERS * 2
        ),
    ) + "log:\n  level: warn\n";
    let config = dir.path().join("certfleet.yaml");
    std::fs::write(&config, yaml).expect("write the config");
    let server = process::serve(&config, None, None);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(WAITERS * 2)
        .timeout(Duration::from_secs(180))
        .build()
        .expect("client");
    process::wait_ready(&client, &base, &server).await;
    let first = client
        .post(format!("{base}/api/certificate"))
        .header("Authorization", format!("APIKey {ADMIN_KEY}"))
        .json(&json!({"domain": NAME}))
        .send()
        .await
        .expect("issue");
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().expect("ETag").to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib(server.pid());
    println!("watch: certfleet serve idle with one certificate: VmRSS {idle:.0} KiB");

    let waiters = (0..WAITERS).map(|_| {
        let (client, base, etag) = (client.clone(), base.clone(), etag.clone());
        async move {
            let response = client
                .get(format!("{base}/api/certificate?domain={NAME}&wait=120s"))
                .header("Authorization", format!("APIKey {ADMIN_KEY}"))
                .header("If-None-Match", &etag)
                .send()
                .await
                .expect("a waiter's answer");
            let at = Instant::now();
            let status = response.status().as_u16();
            let tag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (status, tag, at)
        }
    });
    let waiting = tokio::spawn(join_all(waiters));
    let gauge = format!("certfleet_watchers {WAITERS}");
    let started = Instant::now();
    loop {
        let metrics = client
            .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
            .expect("scrape");
        if metrics.text().await.expect("metrics").contains(&gauge) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the {WAITERS} waiters never all waited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  {WAITERS} waiting after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = rss_kib(server.pid());
    #[allow(clippy::cast_precision_loss)]
    let per_waiter = (loaded - idle) / WAITERS as f64;
    println!("  VmRSS with {WAITERS} waiting: {loaded:.0} KiB ({per_waiter:.1} KiB each)");

    let renewed = client
        .post(format!("{base}/api/certificate/renew"))
        .header("Authorization", format!("APIKey {ADMIN_KEY}"))
        .json(&json!({"domain": NAME}))
        .send()
        .await
        .expect("renew");
    let answered = Instant::now();
    assert_eq!(renewed.status(), 200);
    let new_tag = renewed.headers()["etag"].to_str().expect("ETag").to_owned();
    assert_ne!(new_tag, etag);
    let results = waiting.await.expect("the waiters");
    let mut lags: Vec<f64> = results
        .iter()
        .map(|(status, tag, at)| {
            assert_eq!(*status, 200, "a waiter was not answered with the renewal");
            assert_eq!(tag.as_deref(), Some(new_tag.as_str()));
            at.saturating_duration_since(answered).as_secs_f64() * 1000.0
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let last = lags.last().copied().unwrap_or_default();
    let median = lags[lags.len() / 2];
    println!(
        "  every waiter answered with the renewal: median {median:.1} ms, last {last:.1} ms after the renewal's answer"
    );
    // The same connections, idle in keep-alive now: what a connection costs without a watch
    // (an upper bound: the allocator keeps what the waiters used).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = rss_kib(server.pid());
    #[allow(clippy::cast_precision_loss)]
    let per_connection = (connected - idle) / WAITERS as f64;
    println!(
        "  VmRSS with the {WAITERS} connections idle in keep-alive: {connected:.0} KiB \
         ({per_connection:.1} KiB each; the watch itself {:.1} KiB each)",
        per_waiter - per_connection
    );
    println!(
        "RESULT watch_kib_per_waiter {per_waiter:.1} target <= {TARGET_KIB_PER_WAITER} {}",
        verdict(per_waiter <= TARGET_KIB_PER_WAITER)
    );
    println!(
        "RESULT watch_wake_last_ms {last:.1} target <= {TARGET_WAKE_MS} {}",
        verdict(last <= TARGET_WAKE_MS)
    );
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}
