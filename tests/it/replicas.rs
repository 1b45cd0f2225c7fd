//! Several certfleet processes (the real binary) sharing one store and one Pebble, each on its
//! own loopback address: no certificate is ever ordered twice, HTTP-01 is answered by whichever
//! replica the CA reaches, a replica killed mid-issuance is taken over, renewals happen once.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use crate::common;
use common::process::{self, Process};
use common::service::{ADMIN_KEY, base_yaml};
use common::webhook::Receiver;
use common::{Pebble, PebbleOptions, free_port};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// One certfleet process on 127.0.0.`host`.
struct Replica {
    process: Process,
    ip: String,
    base: String,
}

impl Replica {
    fn start(host: u8, yaml: &str, dir: &Path, failpoint: Option<&str>) -> Replica {
        let ip = format!("127.0.0.{host}");
        let api = free_port();
        let config = dir.join(format!("replica{host}.yaml"));
        std::fs::write(
            &config,
            yaml.replace("REPLICA_IP", &ip)
                .replace("API_PORT", &api.to_string()),
        )
        .expect("write config");
        Replica {
            process: process::serve(&config, Some("info"), failpoint),
            base: format!("http://{ip}:{api}"),
            ip,
        }
    }

    fn log(&self) -> String {
        self.process.log()
    }

    /// Names this replica placed an order for (from its own log).
    fn ordered(&self) -> HashSet<String> {
        self.log()
            .lines()
            .filter(|line| line.contains("ACME order created"))
            .filter_map(|line| line.split("names=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }
}

async fn wait_ready(client: &reqwest::Client, replicas: &[Replica]) {
    for replica in replicas {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let response = client.get(format!("{}/readyz", replica.base)).send().await;
            if response.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} not ready:\n{}",
                replica.ip,
                replica.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(90))
        .build()
        .expect("client")
}

async fn post(client: &reqwest::Client, replica: &Replica, name: &str) -> reqwest::Response {
    client
        .post(format!("{}/api/certificate", replica.base))
        .header("Authorization", format!("APIKey {ADMIN_KEY}"))
        .json(&json!({"domain": name}))
        .send()
        .await
        .expect("POST reaches the replica")
}

/// The replicas' config: one shared store, one HTTP-01 port on each replica's own address.
fn replica_yaml(pebble: &Pebble, db_url: &str, lease_ttl: &str) -> String {
    base_yaml(pebble, db_url, "60s")
        .replace(
            "server:\n",
            "server:\n  listen: \"REPLICA_IP:API_PORT\"\n  metricsListen: \"REPLICA_IP:0\"\n",
        )
        .replace(
            &format!("127.0.0.1:{}", pebble.http_port()),
            &format!("REPLICA_IP:{}", pebble.http_port()),
        )
        .replace(
            "storage:\n",
            &format!("storage:\n  encryptionKey: \"{KEY}\"\n  leaseTtl: {lease_ttl}\n"),
        )
}

/// 50 requests for 10 new name sets spread over 3 replicas; names point at replicas other than
/// the ones asked, so validations reach replicas that did not place the order.
async fn fifty_requests_ten_certificates(db_url: &str, dir: &Path) {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let yaml = replica_yaml(&pebble, db_url, "5s");
    let replicas: Vec<Replica> = (2..=4)
        .map(|host| Replica::start(host, &yaml, dir, None))
        .collect();
    let client = client();
    wait_ready(&client, &replicas).await;

    // One issuance alone, as the yardstick (after warming up the account).
    pebble.add_a("warm.example.test", &replicas[0].ip).await;
    assert_eq!(
        post(&client, &replicas[0], "warm.example.test")
            .await
            .status(),
        200
    );
    pebble.add_a("single.example.test", &replicas[1].ip).await;
    let started = Instant::now();
    assert_eq!(
        post(&client, &replicas[0], "single.example.test")
            .await
            .status(),
        200
    );
    let single = started.elapsed();

    for j in 0..10 {
        pebble
            .add_a(&format!("r{j}.example.test"), &replicas[(j + 1) % 3].ip)
            .await;
    }
    let started = Instant::now();
    let requests = (0..50).map(|i| {
        let name = format!("r{}.example.test", i % 10);
        let (client, replica) = (client.clone(), &replicas[i % 3]);
        async move {
            let response = post(&client, replica, &name).await;
            (
                name,
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        }
    });
    let results = join_all(requests).await;
    let all = started.elapsed();
    for (name, status, body) in &results {
        assert_eq!(*status, 200, "{name}: {body}");
    }
    assert_eq!(
        pebble.issued_count(),
        12,
        "exactly one certificate per name set across replicas"
    );
    assert_eq!(pebble.orders_count(), 12, "and exactly one order");
    // Ten serial issuances would take 10x; shared leases and parallel orders keep it near 3x.
    assert!(
        all < single * 8,
        "10 name sets took {all:?}, one took {single:?}"
    );

    // Validations were answered by replicas that had not placed the order.
    let mut crossed = 0;
    for j in 0..10 {
        let name = format!("r{j}.example.test");
        let answerer = (j + 1) % 3;
        let placers: Vec<usize> = (0..3)
            .filter(|&r| replicas[r].ordered().contains(&name))
            .collect();
        assert_eq!(placers.len(), 1, "{name} ordered by {placers:?}");
        if placers[0] != answerer {
            crossed += 1;
        }
    }
    assert!(crossed > 0, "no validation crossed replicas");
    eprintln!(
        "replicas: 50 requests, 10 certificates, {crossed} validations answered by another replica; one issuance {single:?}, all {all:?}"
    );
}

/// A replica killed (SIGKILL) in the middle of issuances: the others take its orders over
/// once its leases expire; no name set gets two certificates, nothing is left behind.
async fn a_killed_replica_is_taken_over(db_url: &str, dir: &Path) {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let yaml = replica_yaml(&pebble, db_url, "3s");
    // Replica 2 stops for good right after the CA accepted its first challenge response.
    let mut doomed = Replica::start(2, &yaml, dir, Some("challenge-ready"));
    let others = [
        Replica::start(3, &yaml, dir, None),
        Replica::start(4, &yaml, dir, None),
    ];
    let client = client();
    wait_ready(&client, std::slice::from_ref(&doomed)).await;
    wait_ready(&client, &others).await;
    for j in 0..5 {
        // Validation reaches a surviving replica.
        pebble
            .add_a(&format!("k{j}.example.test"), &others[j % 2].ip)
            .await;
    }
    let stuck = {
        let client = client.clone();
        let base = doomed.base.clone();
        tokio::spawn(async move {
            let _ = client
                .post(format!("{base}/api/certificate"))
                .header("Authorization", format!("APIKey {ADMIN_KEY}"))
                .json(&json!({"domain": "k0.example.test"}))
                .send()
                .await;
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !doomed.log().contains("failpoint challenge-ready reached") {
        assert!(
            Instant::now() < deadline,
            "replica 2 never reached its failpoint:\n{}",
            doomed.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    doomed.process.kill();
    stuck.abort();

    // The survivors serve every name, k0 included (taken over, not ordered again).
    let requests = (0..5).map(|j| {
        let (client, replica) = (client.clone(), &others[j % 2]);
        async move {
            post(&client, replica, &format!("k{j}.example.test"))
                .await
                .status()
                .as_u16()
        }
    });
    for status in join_all(requests).await {
        assert_eq!(status, 200);
    }
    assert_eq!(pebble.issued_count(), 5, "no name set got two certificates");
    let resumed = others
        .iter()
        .any(|r| r.log().contains("resuming the ACME order"));
    assert!(resumed, "the killed replica's order was resumed by its URL");
    assert_eq!(
        pebble.orders_count(),
        5,
        "the killed replica's order was taken over, not placed again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_sqlite_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("shared.db").display());
    fifty_requests_ten_certificates(&db_url, dir.path()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("shared.db").display());
    a_killed_replica_is_taken_over(&db_url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_postgresql() {
    let postgres = common::postgres::Postgres::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = postgres.create_database("replicas_fifty", "").await;
    fifty_requests_ten_certificates(&db_url, dir.path()).await;
    let db_url = postgres.create_database("replicas_killed", "").await;
    a_killed_replica_is_taken_over(&db_url, dir.path()).await;
    let db_url = postgres.create_database("replicas_renewals", "").await;
    renewals_happen_once_across_replicas(&db_url, dir.path()).await;
}

/// With short certificates, every certificate is renewed exactly once per cycle, although all
/// three replicas' workers see it due.
async fn renewals_happen_once_across_replicas(db_url: &str, dir: &Path) {
    let pebble = Pebble::start(PebbleOptions {
        validity_secs: Some(30),
        ..Default::default()
    })
    .await;
    // Every replica delivers notifications to one receiver, which refuses them at first, so
    // each is due again and again while every replica's worker looks for work.
    let receiver = Receiver::start().await;
    receiver.set_status(503);
    let yaml = replica_yaml(&pebble, db_url, "5s")
        + &crate::notify::notifications(&receiver.url("/hooks/ops"), "");
    let replicas: Vec<Replica> = (2..=4)
        .map(|host| Replica::start(host, &yaml, dir, None))
        .collect();
    let client = client();
    wait_ready(&client, &replicas).await;
    for j in 0..3 {
        let name = format!("cycle{j}.example.test");
        pebble.add_a(&name, &replicas[(j + 1) % 3].ip).await;
        assert_eq!(post(&client, &replicas[j], &name).await.status(), 200);
    }
    assert_eq!(pebble.issued_count(), 3);
    // Renewal is due about 20 s after issuance; the next one about 20 s after that.
    let deadline = Instant::now() + Duration::from_secs(40);
    while pebble.issued_count() < 6 {
        assert!(
            Instant::now() < deadline,
            "only {} certificates issued",
            pebble.issued_count()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Give every worker time to (wrongly) renew again before the next cycle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pebble.issued_count(),
        6,
        "each certificate renewed exactly once in the cycle"
    );

    // Each of the six events (three issued, three renewed) delivered exactly once.
    assert!(
        receiver.requests().iter().any(|r| r.refused),
        "the receiver refused some"
    );
    receiver.set_status(204);
    let accepted = receiver.wait_for(6, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = receiver.requests();
    crate::notify::assert_signed_once(&receiver, &received);
    let mut types: Vec<String> = crate::notify::events(&received)
        .into_iter()
        .map(|(_, e)| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "certificate.issued",
            "certificate.issued",
            "certificate.issued",
            "certificate.renewed",
            "certificate.renewed",
            "certificate.renewed"
        ],
        "{} accepted",
        accepted.len()
    );
}

/// Replicas sharing a fresh SQLite file start together: SQLite answers "database is locked" at
/// once, without waiting, to a process switching the new file to WAL while another does, so
/// each opens the file only under the lock beside it (`<database>.lock`). Shown by holding that
/// lock: the replica neither touches the database nor gets ready until it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_opens_the_shared_sqlite_file_only_under_its_lock() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("shared.db");
    let lock = std::fs::File::create(dir.path().join("shared.db.lock")).expect("lock file");
    lock.lock().expect("take the lock");

    let yaml = replica_yaml(&pebble, &format!("sqlite://{}", db.display()), "5s");
    let replica = Replica::start(2, &yaml, dir.path(), None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let wal = dir.path().join("shared.db-wal");
    assert!(
        !wal.exists() && std::fs::metadata(&db).map_or(true, |m| m.len() == 0),
        "the database was opened while another process held its lock:\n{}",
        replica.log()
    );
    let client = client();
    let ready = client
        .get(format!("{}/readyz", replica.base))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .map(|r| r.status());
    assert!(
        ready.is_err(),
        "ready while waiting for the lock: {ready:?}"
    );

    lock.unlock().expect("release the lock");
    wait_ready(&client, std::slice::from_ref(&replica)).await;
    assert!(wal.exists(), "the database is in WAL mode once open");
}
