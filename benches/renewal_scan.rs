//! Benchmark: the renewal worker's scan over 100,000 stored certificates (target under 50 ms),
//! with the process's memory printed beside it.
//!
//! Run with `cargo bench --bench renewal_scan` (or `bench/run.sh renewal_scan`). The store is a
//! real SQLite file opened through `certfleet::store::open`, filled with 100,000 certificate rows
//! (renewal times spread over 90 days, a tenth already due, a thousand backing off). One scan is
//! what the worker does each time it wakes: `Store::due` (the batch of due certificates not
//! backing off) and `Store::next_due` (when to wake next). Reported: the median and the worst of
//! 21 scans, against the target.

#[path = "util/mod.rs"]
mod util;

use std::time::Instant;

use certfleet::domain::FailureKind;
use certfleet::store::Failure;

const CERTIFICATES: i64 = 100_000;
const SCANS: usize = 21;
const TARGET_MS: f64 = 50.0;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("scan.db");
    let url = format!("sqlite://{}", db.display());
    let store = util::open_store(&url).await;

    let now = certfleet::util::clock::now();
    fill(&url, now).await;
    for i in 0..1_000 {
        let key = certfleet::domain::CertKey {
            names: certfleet::domain::NameSet::parse(&[format!("host{}.scan.example", i * 10)])
                .expect("names"),
            key: certfleet::domain::KeySpec::Server(certfleet::domain::KeyType::EcdsaP256),
            profile: None,
        };
        let failure = Failure {
            count: 1,
            next_attempt: now + 3600,
            kind: FailureKind::Ca,
            message: "bench".to_owned(),
        };
        store
            .record_failure(&key, &failure, &[])
            .await
            .expect("failure");
    }

    let mut times = Vec::with_capacity(SCANS);
    let mut due_count = 0;
    for _ in 0..SCANS {
        let started = Instant::now();
        let due = store.due(now, 20).await.expect("due");
        let next = store.next_due().await.expect("next due");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        due_count = due.len();
        assert!(next.is_some());
    }
    assert_eq!(due_count, 20, "a full batch of due certificates");
    times.sort_by(f64::total_cmp);
    let median = times[SCANS / 2];
    let worst = times[SCANS - 1];
    let rss = rss_mib();
    let verdict = if median < TARGET_MS {
        "PASS"
    } else {
        "ABOVE TARGET"
    };
    println!("renewal scan over {CERTIFICATES} certificates (due + next_due), {SCANS} scans:");
    println!("  median {median:.2} ms, worst {worst:.2} ms (target < {TARGET_MS} ms): {verdict}");
    println!("  process RSS after the scans: {rss:.1} MiB");
    println!(
        "RESULT renewal_scan_ms {median:.2} target < {TARGET_MS} {verdict} (RSS {rss:.1} MiB)"
    );
}

/// Inserts the rows in one transaction (the realistic part is the table and its index).
async fn fill(url: &str, now: i64) {
    let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
    let mut tx = pool.begin().await.expect("transaction");
    for i in 0..CERTIFICATES {
        // Renewal times spread over 90 days, the first tenth already due.
        let renew_after = now - 9 * 86_400 + (i * 90 * 86_400) / CERTIFICATES;
        sqlx::query(
            "INSERT INTO certificates (names, key_type, cert_pem, key_pem, issuer_pem, serial, \
             not_before, not_after, renew_after, issued_at) \
             VALUES ($1, 'ecdsa-p256', 'cert', 'v1.x.y', 'chain', $2, $3, $4, $5, $3)",
        )
        .bind(format!("host{i}.scan.example"))
        .bind(format!("{i:x}"))
        .bind(renew_after - 60 * 86_400)
        .bind(renew_after + 30 * 86_400)
        .bind(renew_after)
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");
    pool.close().await;
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}
