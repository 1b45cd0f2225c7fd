//! Benchmark: Akash provider-API token verification, and the cached certificate fetch with an
//! Akash token against the same fetch with a PSK, each measured against a baseline in the same
//! run (these machines are shared and noisy: only ratios are judged).
//!
//! Run with `cargo bench --bench akash`. The fetch part needs `wrk` (Debian package; install it
//! with `CERTFLEET_BENCH_DEPS=1 scripts/install-test-deps.sh`).
//!
//! 1. Verifications per second of one ES256K and one ES256KADR36 token (signature and claims),
//!    beside raw k256 `verify_prehash` of the same signature in the same run:
//!    - cold key, chain: a key source that has not met the wallets, so each verification asks
//!      a Cosmos REST endpoint (an in-process axum fake on loopback) for its key (200 wallets,
//!      one token each);
//!    - cold key, store: a key source just restarted, so each verification reads its key from
//!      certfleet's SQLite store (the same 200 wallets);
//!    - cached key: the key in memory (every verification after the first);
//!    - recover: the key recovered from the signature and checked against `iss`.
//! 2. `wrk -t1 -c32 -d3s` on `GET /api/certificate` for a stored certificate with
//!    `Authorization: APIKey ...`, then with `Authorization: Bearer <akash token>`, alternating
//!    for several rounds; the median of the per-round ratios Akash / PSK against the target
//!    (the verified-token cache keeps a repeated token to a hash and a map lookup).

use std::collections::HashMap;
use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use certfleet::akash::address::compressed;
use certfleet::akash::mint;
use certfleet::akash::{
    Address, Algorithm, ChainKeys, ChainOptions, KeyCache, KeySource, MemoryOnly, Validity,
    Verifier,
};
use certfleet::app::{App, Listeners};
use certfleet::auth::akash::StoreKeyCache;
use certfleet::config::Config;
use certfleet::store::Store;
use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
use k256::ecdsa::{Signature, SigningKey};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;

#[path = "util/mod.rs"]
mod util;
use util::{WRK_ARGS, median, wrk};

/// Measured rounds of each part.
const ROUNDS: usize = 5;
/// One verification measurement.
const VERIFY_TIME: Duration = Duration::from_millis(700);
/// Wallets whose tokens are verified once each, with their key not yet in memory.
const COLD_WALLETS: u8 = 200;
/// `wrk` settings: one thread (the machine has 2 cores), 32 connections; 3 seconds a run.
const DURATION: &str = "3s";
/// The Akash fetch must reach at least this fraction of the PSK fetch's requests per second.
const TARGET_RATIO: f64 = 0.8;

const PSK: &str = "bench-fleet-key-0123456789abcdef0123456789abcdef";
const NAMES: [&str; 2] = ["bench.example.test", "www.bench.example.test"];
const QUERY: &str = "domain=bench.example.test&domain=www.bench.example.test";

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    let key = SigningKey::from_slice(&[0x5a; 32]).expect("a valid scalar");
    runtime.block_on(verification(&key));
    fetch(&runtime, &key);
}

// ---------------------------------------------------------------------------------------------
// 1. Verification

async fn verification(key: &SigningKey) {
    let address = Address::from_public_key(key.verifying_key());
    // Wallets verified once each with a key source that has not met them yet.
    let wallets: Vec<SigningKey> = (1..=COLD_WALLETS)
        .map(|seed| SigningKey::from_slice(&[seed; 32]).expect("a valid scalar"))
        .collect();
    let rest = start_chain(wallets.iter().chain([key])).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    for wallet in &wallets {
        let address = Address::from_public_key(wallet.verifying_key());
        store
            .save_akash_pubkey(address.as_str(), &compressed(wallet.verifying_key()))
            .await
            .expect("store a key");
    }
    let validity = Validity {
        leeway: Duration::from_secs(30),
        max_lifetime: Some(Duration::from_secs(900)),
    };
    println!("akash: token verifications per second (signature + claims), beside raw k256");
    for algorithm in [Algorithm::Es256k, Algorithm::Es256kAdr36] {
        let now = certfleet::util::clock::now();
        let full = json!({"access": "full"});
        let token = mint(key, algorithm, &full, None, now, now + 900).expect("mint a token");
        let cold_tokens: Vec<String> = wallets
            .iter()
            .map(|w| mint(w, algorithm, &full, None, now, now + 900).expect("mint a token"))
            .collect();
        // The raw baseline: SHA-256 of what the token signs, and one k256 verification.
        let input = token.rsplit_once('.').map(|(i, _)| i).unwrap_or_default();
        let message = match algorithm {
            Algorithm::Es256k => input.to_owned(),
            Algorithm::Es256kAdr36 => certfleet::akash::token::adr36_document(input, &address),
        };
        let signature = Signature::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.rsplit('.').next().unwrap_or_default())
                .expect("base64url"),
        )
        .expect("R||S");
        let verifying = *key.verifying_key();

        let cached = chain_verifier(&rest, Arc::new(MemoryOnly), validity);
        cached
            .verify(&token, now)
            .await
            .expect("the token verifies");
        let recover = Verifier::new(KeySource::Recover, validity);
        let store_cache: Arc<dyn KeyCache> = Arc::new(StoreKeyCache(store.clone()));
        let mut rows: Vec<(&str, Vec<f64>)> = vec![
            ("raw k256 verify_prehash", Vec::new()),
            ("cached key (memory)", Vec::new()),
            ("recover from signature", Vec::new()),
            ("cold key, from the store", Vec::new()),
            ("cold key, chain REST lookup", Vec::new()),
        ];
        for _ in 0..ROUNDS {
            rows[0].1.push(rate_sync(|| {
                let digest = Sha256::digest(message.as_bytes());
                verifying
                    .verify_prehash(&digest, &signature)
                    .expect("raw verification");
            }));
            rows[1]
                .1
                .push(rate(|| async { cached.verify(&token, now).await.expect("cached") }).await);
            rows[2]
                .1
                .push(rate(|| async { recover.verify(&token, now).await.expect("recover") }).await);
            // A restarted key source: every wallet's key read from the store once.
            let restarted = chain_verifier(&rest, store_cache.clone(), validity);
            rows[3]
                .1
                .push(each_once(&restarted, &cold_tokens, now).await);
            // A key source that never met these wallets: every key asked of the chain once.
            let fresh = chain_verifier(&rest, Arc::new(MemoryOnly), validity);
            rows[4].1.push(each_once(&fresh, &cold_tokens, now).await);
        }
        let raw = median(&mut rows[0].1.clone());
        println!(
            "  {} (token {} bytes), median of {ROUNDS} rounds:",
            algorithm.name(),
            token.len()
        );
        for (name, values) in &mut rows {
            let value = median(values);
            println!(
                "    {name:<30} {value:>10.0} /s   ratio to raw {:.3}",
                value / raw
            );
        }
    }
}

/// Verifications per second of `tokens`, each verified once by `verifier`.
async fn each_once(verifier: &Verifier, tokens: &[String], now: i64) -> f64 {
    let start = Instant::now();
    for token in tokens {
        verifier
            .verify(token, now)
            .await
            .expect("a cold token verifies");
    }
    f64::from(u32::try_from(tokens.len()).unwrap_or(u32::MAX)) / start.elapsed().as_secs_f64()
}

fn chain_verifier(rest: &str, cache: Arc<dyn KeyCache>, validity: Validity) -> Verifier {
    let keys = ChainKeys::new(ChainOptions::new(rest), cache).expect("a chain key source");
    Verifier::new(KeySource::Chain(keys), validity)
}

/// A Cosmos REST endpoint answering each of `keys`' accounts as a BaseAccount.
async fn start_chain(keys: impl Iterator<Item = &SigningKey>) -> String {
    let accounts: Arc<HashMap<String, String>> = Arc::new(
        keys.map(|key| {
            let address = Address::from_public_key(key.verifying_key()).to_string();
            (address, STANDARD.encode(compressed(key.verifying_key())))
        })
        .collect(),
    );
    let router = Router::new().route(
        "/cosmos/auth/v1beta1/accounts/{address}",
        get(move |Path(address): Path<String>| {
            let public = accounts.get(&address).cloned();
            async move {
                Json(json!({"account": {
                    "@type": "/cosmos.auth.v1beta1.BaseAccount", "address": address,
                    "pub_key": {"@type": "/cosmos.crypto.secp256k1.PubKey", "key": public},
                    "account_number": "1", "sequence": "1"
                }}))
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the chain");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

async fn open_store(dir: &std::path::Path) -> Arc<dyn Store> {
    let yaml = format!(
        "storage:\n  url: \"sqlite://{}\"\n",
        dir.join("keys.db").display()
    );
    let config = Config::from_yaml(&yaml, std::iter::empty())
        .expect("a valid config")
        .config;
    certfleet::store::open(&config.storage)
        .await
        .expect("open the store")
}

/// Calls per second of `f` over [`VERIFY_TIME`].
fn rate_sync(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut count = 0u32;
    while start.elapsed() < VERIFY_TIME {
        f();
        count += 1;
    }
    f64::from(count) / start.elapsed().as_secs_f64()
}

/// Calls per second of the async `f` over [`VERIFY_TIME`].
async fn rate<F, Fut, T>(mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let start = Instant::now();
    let mut count = 0u32;
    while start.elapsed() < VERIFY_TIME {
        std::hint::black_box(f().await);
        count += 1;
    }
    f64::from(count) / start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// 2. The cached certificate fetch, Akash token vs PSK

fn fetch(runtime: &tokio::runtime::Runtime, key: &SigningKey) {
    if Command::new("wrk").arg("--version").output().is_err() {
        panic!(
            "wrk is missing: install it with `CERTFLEET_BENCH_DEPS=1 scripts/install-test-deps.sh` \
             (Debian package `wrk`)"
        );
    }
    let setup = runtime.block_on(start_certfleet(key));
    let url = format!("http://{}/api/certificate?{QUERY}", setup.certfleet);
    let psk_header = format!("Authorization: APIKey {PSK}");
    let akash_header = format!("Authorization: Bearer {}", setup.token);
    runtime.block_on(check_both_answer(&url, &setup.token));
    // Warm-up (not counted): connections, allocator, the verified-token cache.
    wrk(&url, &psk_header, "1s");
    wrk(&url, &akash_header, "1s");

    println!("akash: GET /api/certificate, cached certificate, PSK vs Akash token (ES256KADR36)");
    println!(
        "  token {} bytes; wrk {} -d{DURATION}",
        setup.token.len(),
        WRK_ARGS.join(" ")
    );
    let (mut ratios, mut psk_rps, mut akash_rps) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let psk = wrk(&url, &psk_header, DURATION);
        let akash = wrk(&url, &akash_header, DURATION);
        let ratio = akash / psk;
        println!(
            "  round {round}: PSK {psk:>10.0} req/s   Akash {akash:>10.0} req/s   ratio {ratio:.3}"
        );
        psk_rps.push(psk);
        akash_rps.push(akash);
        ratios.push(ratio);
    }
    let ratio = median(&mut ratios);
    println!(
        "  median: PSK {:.0} req/s, Akash {:.0} req/s",
        median(&mut psk_rps),
        median(&mut akash_rps)
    );
    println!(
        "RESULT akash_vs_psk_ratio {ratio:.3} target >= {TARGET_RATIO} {}",
        if ratio >= TARGET_RATIO {
            "ok"
        } else {
            "BELOW TARGET"
        }
    );
    runtime.block_on(async {
        let _ = setup.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), setup.task).await;
    });
}

struct Setup {
    certfleet: std::net::SocketAddr,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// certfleet with `auth.psk` and `auth.akash` (recover) and a stored certificate; the token.
async fn start_certfleet(key: &SigningKey) -> Setup {
    let address = Address::from_public_key(key.verifying_key());
    let dir = tempfile::Builder::new()
        .prefix("certfleet-bench-akash-")
        .tempdir()
        .expect("create a temporary directory");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let yaml = format!(
        r#"storage:
  url: "{db_url}"
acme:
  directoryUrl: "https://127.0.0.1:9/dir"
challenges:
  http01:
    listen: "127.0.0.1:0"
auth:
  psk:
    keys:
      - name: bench-fleet
        key: "{PSK}"
        domains: ["bench.example.test", "*.bench.example.test"]
  akash:
    principals:
      - address: {address}
        domains: ["bench.example.test", "*.bench.example.test"]
"#
    );
    let config = Config::from_yaml(&yaml, std::iter::empty())
        .expect("the bench config is valid")
        .config;
    let app = App::start(&config).await.expect("certfleet starts");
    app.api
        .store
        .save_certificate(&util::self_signed_certificate(&NAMES), &[])
        .await
        .expect("save the certificate");
    let api = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the API");
    let http01 = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the HTTP-01 listener");
    let certfleet = api.local_addr().expect("API address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.serve(
        Listeners {
            api,
            http01: Some(http01),
            tls_alpn01: None,
            metrics: None,
        },
        async {
            let _ = stopped.await;
        },
    ));
    let now = certfleet::util::clock::now();
    // The TypeScript SDK's algorithm: the longer message to hash of the two.
    let token = mint(
        key,
        Algorithm::Es256kAdr36,
        &json!({"access": "full"}),
        None,
        now,
        now + 900,
    )
    .expect("mint the token");
    Setup {
        certfleet,
        token,
        stop,
        task,
        _dir: dir,
    }
}

/// Both credentials fetch the certificate (200) before any load.
async fn check_both_answer(url: &str, token: &str) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build the HTTP client");
    for (who, header) in [
        ("PSK", format!("APIKey {PSK}")),
        ("Akash", format!("Bearer {token}")),
    ] {
        let response = client
            .get(url)
            .header("Authorization", &header)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} ({who}): {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "GET {url} ({who}) answered {status}: {body}");
    }
}
