//! Crash safety, with the real binary: 50 issuances, each killed with SIGKILL right after one of
//! the persisted steps of its order (every failpoint in turn), then restarted. Every certificate
//! must be issued exactly once, and nothing presented to the CA may be left behind.

use std::time::{Duration, Instant};

use certfleet::util::failpoint::POINTS;
use serde_json::json;

use crate::common;
use common::process;
use common::service::ADMIN_KEY;
use common::{Pebble, PebbleOptions, free_port};

const ISSUANCES: usize = 50;

async fn count(db_url: &str, table: &str) -> i64 {
    let pool = sqlx::SqlitePool::connect(db_url)
        .await
        .expect("open the database");
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kill_point_recovers_without_a_second_certificate() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let api = free_port();
    let base = format!("http://127.0.0.1:{api}");
    // issueWait is short: the client gets 202 and the order goes on (or stops at the failpoint).
    let yaml = common::service::base_yaml(&pebble, &db_url, "1s")
        .replace(
            "server:\n",
            &format!("server:\n  listen: \"127.0.0.1:{api}\"\n  metricsListen: \"\"\n"),
        )
        // A killed process's issuance lease must expire before the next start takes over.
        .replace("storage:\n", "storage:\n  leaseTtl: 2s\n");
    let config = dir.path().join("certfleet.yaml");
    std::fs::write(&config, yaml).expect("write the config");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    for i in 0..ISSUANCES {
        let point = POINTS[i % POINTS.len()];
        let name = format!("crash{i}.example.test");

        let mut doomed = process::serve(&config, Some("warn"), Some(point));
        process::wait_ready(&client, &base, &doomed).await;
        let response = client
            .post(format!("{base}/api/certificate"))
            .header("Authorization", format!("APIKey {ADMIN_KEY}"))
            .json(&json!({"domain": name}))
            .send()
            .await
            .expect("POST");
        assert_eq!(
            response.status(),
            202,
            "{point}: the order stops at the failpoint"
        );
        doomed.wait_for_line(
            &format!("failpoint {point} reached"),
            Duration::from_secs(30),
        );
        doomed.kill();

        let mut survivor = process::serve(&config, Some("warn"), None);
        process::wait_ready(&client, &base, &survivor).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let response = client
                .get(format!("{base}/api/certificate?domain={name}"))
                .header("Authorization", format!("APIKey {ADMIN_KEY}"))
                .send()
                .await
                .expect("GET");
            match response.status().as_u16() {
                200 => break,
                // 202 while the resumed order runs; 404 before the resume has registered.
                202 | 404 => assert!(Instant::now() < deadline, "{point}: {name} never issued"),
                other => panic!(
                    "{point}: unexpected status {other}: {}",
                    response.text().await.unwrap_or_default()
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Let the resumed order finish its cleanup before the next kill.
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&db_url, "orders").await > 0 {
            assert!(
                Instant::now() < deadline,
                "{point}: the order record of {name} stayed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        survivor.kill();
    }

    assert_eq!(
        pebble.issued_count(),
        ISSUANCES,
        "exactly one certificate per name set"
    );
    assert_eq!(
        count(&db_url, "certificates").await,
        i64::try_from(ISSUANCES).expect("count")
    );
    assert_eq!(
        count(&db_url, "http01_tokens").await,
        0,
        "no challenge response left behind"
    );
    assert_eq!(count(&db_url, "presented").await, 0);
    assert_eq!(count(&db_url, "orders").await, 0);
    // At most one abandoned order per kill between the CA creating it and its URL being saved.
    let abandoned = pebble.orders_count() - ISSUANCES;
    let created_kills = (0..ISSUANCES)
        .filter(|i| POINTS[i % POINTS.len()] == "order-created")
        .count();
    assert!(
        abandoned <= created_kills,
        "{abandoned} abandoned orders for {created_kills} such kills"
    );
}
