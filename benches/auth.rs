//! Benchmark: the cached certificate fetch (`GET /api/certificate?domain=...`) with an OIDC
//! bearer token against the same fetch with a pre-shared key, in the same run.
//!
//! Run with `cargo bench --bench auth`. Needs `wrk` (Debian package; install it with
//! `CERTFLEET_BENCH_DEPS=1 scripts/install-test-deps.sh`).
//!
//! One process holds:
//! - an identity provider: a bare axum server with the OpenID discovery document and a JWKS
//!   holding one RSA-2048 key (RS256, the most common access-token algorithm). The benchmark
//!   signs its token with that key: what is measured is certfleet's side, not the provider's;
//! - certfleet: `App::start` from YAML with `auth.psk` and `auth.jwt` (required scope, domains
//!   claim), a certificate saved through `Store::save_certificate`, served by `App::serve`.
//!
//! `wrk -t1 -c32 -d3s` loads certfleet with `Authorization: APIKey ...`, then with
//! `Authorization: Bearer <jwt>`, alternating for several rounds; the result is the median of
//! the per-round ratios bearer / PSK (requests per second), against the target: a verified-token
//! cache (keyed by the token's SHA-256, bounded, never past `exp`) should keep a JWT within 80%
//! of a PSK, whose check is a hash and a constant-time compare.

use std::process::Command;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _};
use axum::Json;
use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certfleet::app::{App, Listeners};
use certfleet::config::Config;
use rcgen::{KeyPair, PKCS_RSA_SHA256, RsaKeySize};
use serde_json::json;
use tokio::net::TcpListener;

#[path = "util/mod.rs"]
mod util;
use util::{WRK_ARGS, median, wrk};

/// Measured rounds (each: PSK, then JWT).
const ROUNDS: usize = 5;
/// `wrk` settings: one thread (the machine has 2 cores), 32 connections; 3 seconds a run.
const DURATION: &str = "3s";
/// The JWT fetch must reach at least this fraction of the PSK fetch's requests per second.
const TARGET_RATIO: f64 = 0.8;

const PSK: &str = "bench-fleet-key-0123456789abcdef0123456789abcdef";
const AUDIENCE: &str = "https://certfleet.bench";
const SCOPE: &str = "certificates:request";
const NAMES: [&str; 2] = ["bench.example.test", "www.bench.example.test"];
const QUERY: &str = "domain=bench.example.test&domain=www.bench.example.test";

fn main() {
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
    let url = format!("http://{}/api/certificate?{QUERY}", setup.certfleet);
    let psk_header = format!("Authorization: APIKey {PSK}");
    let jwt_header = format!("Authorization: Bearer {}", setup.token);
    runtime.block_on(check_both_answer(&url, &setup.token));

    // Warm-up (not counted): connections, allocator, the verified-token cache.
    wrk(&url, &psk_header, "1s");
    wrk(&url, &jwt_header, "1s");

    println!("auth: GET /api/certificate, cached certificate, PSK vs OIDC bearer token (RS256)");
    println!(
        "  token {} bytes; wrk {} -d{DURATION}",
        setup.token.len(),
        WRK_ARGS.join(" ")
    );
    let (mut ratios, mut psk_rps, mut jwt_rps) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let psk = wrk(&url, &psk_header, DURATION);
        let jwt = wrk(&url, &jwt_header, DURATION);
        let ratio = jwt / psk;
        println!(
            "  round {round}: PSK {psk:>10.0} req/s   JWT {jwt:>10.0} req/s   ratio {ratio:.3}"
        );
        psk_rps.push(psk);
        jwt_rps.push(jwt);
        ratios.push(ratio);
    }
    let ratio = median(&mut ratios);
    println!(
        "  median: PSK {:.0} req/s, JWT {:.0} req/s",
        median(&mut psk_rps),
        median(&mut jwt_rps)
    );
    println!(
        "RESULT auth_jwt_vs_psk_ratio {ratio:.3} target >= {TARGET_RATIO} {}",
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

/// Starts the identity provider and certfleet with a stored certificate; mints the token.
async fn start() -> Setup {
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
        .expect("generate the provider's RSA key");
    let signer = signature::RsaKeyPair::from_pkcs8(&key.serialize_der()).expect("PKCS#8 RSA key");
    let issuer = start_provider(&signer).await;

    let dir = tempfile::Builder::new()
        .prefix("certfleet-bench-auth-")
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
  jwt:
    issuerUrl: "{issuer}"
    audience: "{AUDIENCE}"
    requiredScopes: ["{SCOPE}"]
    domainsClaim: domains
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
    Setup {
        certfleet,
        token: mint(&signer, &issuer),
        stop,
        task,
        _dir: dir,
    }
}

/// Serves discovery and the JWKS for `signer`'s public key; returns the issuer URL.
async fn start_provider(signer: &signature::RsaKeyPair) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the provider");
    let issuer = format!(
        "http://{}",
        listener.local_addr().expect("provider address")
    );
    let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(signer.public_key());
    let jwks = json!({"keys": [{
        "kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e),
    }]});
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
    let router = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route("/jwks", get(move || async move { Json(jwks) }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    issuer
}

/// An RFC 9068 access token for the bench's names, valid for an hour.
fn mint(signer: &signature::RsaKeyPair, issuer: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "bench"});
    let claims = json!({
        "iss": issuer, "aud": AUDIENCE, "sub": "bench-client", "client_id": "bench-client",
        "iat": now, "exp": now + 3600, "scope": SCOPE, "jti": "bench-token",
        "domains": ["bench.example.test", "*.bench.example.test"],
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; signer.public_modulus_len()];
    signer
        .sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .expect("sign the token");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Both credentials fetch the certificate (200) before any load; the JWT only once the
/// provider's keys are loaded in the background.
async fn check_both_answer(url: &str, token: &str) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build the HTTP client");
    for (who, header) in [
        ("PSK", format!("APIKey {PSK}")),
        ("JWT", format!("Bearer {token}")),
    ] {
        let mut attempts = 0;
        loop {
            let response = client
                .get(url)
                .header("Authorization", &header)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url} ({who}): {e}"));
            let status = response.status();
            if status == 503 && attempts < 100 {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            assert_eq!(status, 200, "GET {url} ({who}) answered {status}: {body}");
            break;
        }
    }
}
