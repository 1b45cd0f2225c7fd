//! OIDC bearer tokens against a real OpenID provider: npm `oidc-provider` (tests/oidc/), started
//! by each test with node on a free loopback port and killed on `Drop`.
//!
//! The provider signs with an RSA key the test generates, so the test can also mint hostile
//! tokens with the very same key (expired, foreign issuer, unknown kid, ...) and check that each
//! is refused for its own reason, not for a bad signature.
//!
//! Needs node (20+) and `tests/oidc/node_modules` (`scripts/install-test-deps.sh` runs
//! `npm ci --prefix tests/oidc`): without them these tests FAIL with that hint, never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_lc_rs::{hmac, rand::SystemRandom, signature};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::join_all;
use rcgen::{KeyPair, PKCS_RSA_SHA256, PublicKeyData, RsaKeySize};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common;
use common::free_port;
use common::process::Process;
use common::service::{ADMIN_KEY, Service, json};
use common::{Pebble, PebbleOptions};

/// The `resource` (RFC 8707) the tests ask tokens for, and certfleet's `auth.jwt.audience`.
const AUDIENCE: &str = "https://certfleet.test";
const SCOPE: &str = "certificates:request";
/// A client allowed `certificates:request`, whose tokens carry `domains` (see provider.mjs).
const CLIENT: (&str, &str) = ("certfleet-client", "certfleet-client-secret");
/// A client allowed only `other:read`.
const SCOPELESS: (&str, &str) = ("scopeless-client", "scopeless-client-secret");
/// A name inside the `domains` claim of CLIENT's tokens; GET of it answers 404 when the token
/// is accepted (authenticated and authorised, but nothing stored).
const ALLOWED_QUERY: &str = "/api/certificate?domain=www.oidc.example.test";
const INSTALL_HINT: &str = "the OIDC tests need node (20+) and the test provider's packages: run \
                            scripts/install-test-deps.sh (it runs `npm ci --prefix tests/oidc`)";

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test]
async fn client_credentials_token_gets_a_certificate_from_pebble() {
    let provider = Provider::start(SigningKey::generate()).await;
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml + &jwt_section(&provider.issuer())
    })
    .await;
    let token = provider.token(CLIENT, SCOPE, AUDIENCE).await;
    wait_until_keys_load(&service, &token).await;

    let names = ["oidc.example.test", "www.oidc.example.test"];
    let response = bearer(&service, &token)
        .post(format!("{}/api/certificate", service.base))
        .json(&json!({ "domains": names }))
        .send()
        .await
        .expect("POST reaches certfleet");
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["domains"], json!(names), "{body}");
    assert!(
        body["certificate"]
            .as_str()
            .is_some_and(|pem| pem.contains("BEGIN CERTIFICATE"))
    );
    assert_eq!(body["cached"], false);

    // The same token again: served from the store (and from the verified-token cache).
    let query = "/api/certificate?domain=oidc.example.test&domain=www.oidc.example.test";
    let response = get(&service, &token, query).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["domains"], json!(names));

    // Outside the token's domains claim: the same policy as for PSK keys.
    let response = bearer(&service, &token)
        .post(format!("{}/api/certificate", service.base))
        .json(&json!({ "domain": "a.example.test" }))
        .send()
        .await
        .expect("POST reaches certfleet");
    expect_error(response, 403, "domain_not_allowed").await;
    assert_eq!(pebble.issued_count(), 1, "one certificate issued");
}

#[tokio::test]
async fn a_client_without_the_required_scope_is_403() {
    let provider = Provider::start(SigningKey::generate()).await;
    let service = certfleet(&provider.issuer()).await;
    wait_until_keys_load(&service, &provider.token(CLIENT, SCOPE, AUDIENCE).await).await;
    let token = provider.token(SCOPELESS, "other:read", AUDIENCE).await;
    let response = get(&service, &token, ALLOWED_QUERY).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"certfleet\", error=\"insufficient_scope\""
    );
    let body = expect_error(response, 403, "insufficient_scope").await;
    assert!(body["message"].as_str().unwrap_or_default().contains(SCOPE));
}

#[tokio::test]
async fn a_token_for_another_audience_is_401() {
    let provider = Provider::start(SigningKey::generate()).await;
    let service = certfleet(&provider.issuer()).await;
    wait_until_keys_load(&service, &provider.token(CLIENT, SCOPE, AUDIENCE).await).await;
    let token = provider
        .token(CLIENT, SCOPE, "https://another-service.test")
        .await;
    let body = expect_error(
        get(&service, &token, ALLOWED_QUERY).await,
        401,
        "unauthorized",
    )
    .await;
    assert!(body["message"].as_str().unwrap_or_default().contains("aud"));
}

#[tokio::test]
async fn new_signing_key_works_without_restarting_certfleet() {
    let mut provider = Provider::start(SigningKey::generate()).await;
    let service = certfleet(&provider.issuer()).await;
    let old_token = provider.token(CLIENT, SCOPE, AUDIENCE).await;
    wait_until_keys_load(&service, &old_token).await;

    provider.restart(SigningKey::generate()).await;
    let new_token = provider.token(CLIENT, SCOPE, AUDIENCE).await;
    assert_ne!(kid_of(&old_token), kid_of(&new_token), "a new key id");
    expect_error(
        get(&service, &new_token, ALLOWED_QUERY).await,
        404,
        "not_found",
    )
    .await;
    // The old key left the provider's set: its tokens no longer verify, cached or not.
    expect_error(
        get(&service, &old_token, ALLOWED_QUERY).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(
        provider.jwks_fetches().await,
        1,
        "one fetch after the restart"
    );
}

#[tokio::test]
async fn provider_down_at_start_psk_works_bearer_503_until_it_is_up() {
    let key = SigningKey::generate();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let service = certfleet(&issuer).await;

    let response = service.get(ALLOWED_QUERY, ADMIN_KEY).await;
    expect_error(response, 404, "not_found").await;
    let early = key.mint(&json!({"alg": "RS256", "kid": "k"}), &claims(&issuer, 300));
    let response = get(&service, &early, ALLOWED_QUERY).await;
    assert_eq!(response.headers()["retry-after"], "5");
    expect_error(response, 503, "auth_unavailable").await;

    let provider = Provider::start_on(port, key).await;
    let token = provider.token(CLIENT, SCOPE, AUDIENCE).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = get(&service, &token, ALLOWED_QUERY).await;
        match response.status().as_u16() {
            503 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => {
                expect_error(response, 404, "not_found").await;
                break;
            }
        }
    }
    expect_error(
        service.get(ALLOWED_QUERY, ADMIN_KEY).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn hostile_tokens_are_401_and_never_500() {
    let key = SigningKey::generate();
    let provider = Provider::start(key.clone()).await;
    let issuer = provider.issuer();
    let service = certfleet(&issuer).await;
    let real = provider.token(CLIENT, SCOPE, AUDIENCE).await;
    wait_until_keys_load(&service, &real).await;
    let kid = kid_of(&real);
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": kid});

    // The control: a token minted here with the provider's key and good claims is accepted, so
    // each refusal below is for the one thing that differs.
    let good = key.mint(&header, &claims(&issuer, 300));
    expect_error(get(&service, &good, ALLOWED_QUERY).await, 404, "not_found").await;

    let mut hostile: Vec<(&str, String)> = Vec::new();
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let none = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
    hostile.push((
        "alg none",
        format!("{}.{}.", encode(&none), encode(&claims(&issuer, 300))),
    ));
    let hs256 = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    hostile.push((
        "HS256 keyed with the RSA public key",
        mint_hs256(&hs256, &claims(&issuer, 300), key.public_pem.as_bytes()),
    ));
    hostile.push(("expired", key.mint(&header, &claims(&issuer, -3600))));
    let mut early = claims(&issuer, 3600);
    early["nbf"] = json!(now() + 1800);
    hostile.push(("not yet valid", key.mint(&header, &early)));
    hostile.push((
        "foreign issuer",
        key.mint(&header, &claims("https://evil.example.test", 300)),
    ));
    let mut wrong_aud = claims(&issuer, 300);
    wrong_aud["aud"] = json!("https://another-service.test");
    hostile.push(("another audience", key.mint(&header, &wrong_aud)));
    let mut parts: Vec<&str> = real.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("payload")).expect("json");
    payload["domains"] = json!(["*"]);
    let tampered_payload = encode(&payload);
    parts[1] = &tampered_payload;
    hostile.push(("tampered payload", parts.join(".")));
    hostile.push((
        "typ of a DPoP proof",
        key.mint(
            &json!({"alg": "RS256", "typ": "dpop+jwt", "kid": kid}),
            &claims(&issuer, 300),
        ),
    ));
    hostile.push((
        "PS256 with a key published for RS256",
        key.mint_with(
            &json!({"alg": "PS256", "typ": "at+jwt", "kid": kid}),
            &claims(&issuer, 300),
            &signature::RSA_PSS_SHA256,
        ),
    ));
    hostile.push(("not a JWT", "not-a-jwt".to_owned()));
    hostile.push(("Akash algorithm, no Akash method", {
        let akash = json!({"alg": "ES256K", "typ": "JWT"});
        format!("{}.{}.c2ln", encode(&akash), encode(&claims(&issuer, 300)))
    }));
    let mut oversized = claims(&issuer, 300);
    oversized["padding"] = json!("p".repeat(9 * 1024));
    hostile.push(("over maxTokenBytes", key.mint(&header, &oversized)));

    for (what, token) in &hostile {
        let response = get(&service, token, ALLOWED_QUERY).await;
        assert_eq!(response.status(), 401, "{what}");
        let body = json(response).await;
        assert_eq!(body["code"], "unauthorized", "{what}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains(token.as_str()),
            "{what}: the token is echoed"
        );
    }
    assert_eq!(
        provider.jwks_fetches().await,
        1,
        "no refresh for known kids"
    );
}

#[tokio::test]
async fn a_burst_of_unknown_key_ids_fetches_the_jwks_at_most_twice() {
    let key = SigningKey::generate();
    let provider = Provider::start(key.clone()).await;
    let issuer = provider.issuer();
    let service = certfleet(&issuer).await;
    wait_until_keys_load(&service, &provider.token(CLIENT, SCOPE, AUDIENCE).await).await;

    let tokens: Vec<String> = (0..1000)
        .map(|i| {
            let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("unknown-{i}")});
            key.mint(&header, &claims(&issuer, 300))
        })
        .collect();
    let started = Instant::now();
    for chunk in tokens.chunks(100) {
        let statuses =
            join_all(chunk.iter().map(|token| async {
                get(&service, token, ALLOWED_QUERY).await.status().as_u16()
            }))
            .await;
        assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    }
    let fetches = provider.jwks_fetches().await;
    assert!(
        fetches <= 2,
        "{fetches} JWKS fetches for 1000 unknown kids in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_one_megabyte_token_is_stopped_by_the_header_limit() {
    let provider = Provider::start(SigningKey::generate()).await;
    let service = certfleet(&provider.issuer()).await;
    let token = format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", "y".repeat(1024 * 1024));
    let response = bearer(&service, &token)
        .get(format!("{}{ALLOWED_QUERY}", service.base))
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(response.status(), 431),
        // hyper may close the connection while the client is still sending.
        Err(err) => assert!(
            err.is_request() || err.is_body() || err.is_connect(),
            "{err}"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// certfleet

/// The `auth.jwt` section the tests use, indented to sit under `auth:`.
fn jwt_section(issuer: &str) -> String {
    format!(
        "  jwt:\n    issuerUrl: \"{issuer}\"\n    audience: \"{AUDIENCE}\"\n    requiredScopes: [\"{SCOPE}\"]\n    domainsClaim: domains\n"
    )
}

/// certfleet with a PSK and `auth.jwt`, and a CA nobody answers at (nothing is issued).
async fn certfleet(issuer: &str) -> Service {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let yaml = format!(
        "storage:\n  url: \"{db_url}\"\nacme:\n  directoryUrl: \"https://127.0.0.1:9/dir\"\nchallenges:\n  http01:\n    listen: \"127.0.0.1:0\"\nauth:\n  psk:\n    keys:\n      - name: admin\n        key: \"{ADMIN_KEY}\"\n{}",
        jwt_section(issuer)
    );
    Service::start_yaml(&yaml, dir, db_url).await
}

fn bearer(service: &Service, token: &str) -> BearerClient {
    BearerClient {
        client: service.client().clone(),
        header: format!("Bearer {token}"),
    }
}

/// A request builder that adds `Authorization: Bearer ...`.
struct BearerClient {
    client: reqwest::Client,
    header: String,
}

impl BearerClient {
    fn get(&self, url: String) -> reqwest::RequestBuilder {
        self.client.get(url).header("Authorization", &self.header)
    }

    fn post(&self, url: String) -> reqwest::RequestBuilder {
        self.client.post(url).header("Authorization", &self.header)
    }
}

async fn get(service: &Service, token: &str, path: &str) -> reqwest::Response {
    bearer(service, token)
        .get(format!("{}{path}", service.base))
        .send()
        .await
        .expect("GET reaches certfleet")
}

/// Polls until certfleet has loaded the provider's keys (a bearer request is no longer 503).
async fn wait_until_keys_load(service: &Service, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = get(service, token, ALLOWED_QUERY).await;
        if response.status() != 503 {
            expect_error(response, 404, "not_found").await;
            return;
        }
        assert!(Instant::now() < deadline, "the keys did not load in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let body = json(response).await;
    assert_eq!(body["code"], code, "{body}");
    body
}

// ---------------------------------------------------------------------------------------------
// Tokens minted here

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Claims like the provider's, for CLIENT, expiring `ttl` seconds from now.
fn claims(issuer: &str, ttl: i64) -> Value {
    let now = now();
    json!({
        "iss": issuer, "aud": AUDIENCE, "sub": CLIENT.0, "client_id": CLIENT.0,
        "iat": now.min(now + ttl) - 10, "exp": now + ttl, "scope": SCOPE,
        "domains": ["oidc.example.test", "*.oidc.example.test"],
    })
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().expect("header");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64")).expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

/// An RSA-2048 key, PKCS#8: the provider signs with it, and so do the tests.
#[derive(Clone)]
struct SigningKey {
    pkcs8_pem: String,
    pkcs8_der: Vec<u8>,
    /// SubjectPublicKeyInfo PEM: what an algorithm-confusion attacker uses as an HMAC key.
    public_pem: String,
}

impl SigningKey {
    fn generate() -> SigningKey {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
            .expect("generate an RSA key");
        let public_der = key.subject_public_key_info();
        let public_pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(public_der)
        );
        SigningKey {
            pkcs8_pem: key.serialize_pem(),
            pkcs8_der: key.serialize_der(),
            public_pem,
        }
    }

    fn mint(&self, header: &Value, claims: &Value) -> String {
        self.mint_with(header, claims, &signature::RSA_PKCS1_SHA256)
    }

    fn mint_with(
        &self,
        header: &Value,
        claims: &Value,
        algorithm: &'static dyn signature::RsaEncoding,
    ) -> String {
        let pair = signature::RsaKeyPair::from_pkcs8(&self.pkcs8_der).expect("PKCS#8 RSA key");
        let input = signing_input(header, claims);
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(algorithm, &SystemRandom::new(), input.as_bytes(), &mut sig)
            .expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn mint_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

// ---------------------------------------------------------------------------------------------
// The OpenID provider: node tests/oidc/provider.mjs PORT KEY_FILE

struct Provider {
    port: u16,
    process: Option<Process>,
    client: reqwest::Client,
    dir: TempDir,
}

impl Provider {
    async fn start(key: SigningKey) -> Provider {
        Self::start_on(free_port(), key).await
    }

    async fn start_on(port: u16, key: SigningKey) -> Provider {
        let dir = tempfile::Builder::new()
            .prefix("certfleet-oidc-")
            .tempdir()
            .expect("create a temporary directory for the provider");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build the test client");
        let mut provider = Provider {
            port,
            process: None,
            client,
            dir,
        };
        provider.process = Some(provider.spawn(&key).await);
        provider
    }

    /// Stops the provider and starts it again on the same port with a new signing key.
    async fn restart(&mut self, key: SigningKey) {
        self.process = None; // killed and reaped on drop
        self.process = Some(self.spawn(&key).await);
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An access token through the client-credentials grant (RFC 6749 section 4.4) for
    /// `resource` (RFC 8707), which becomes its `aud`.
    async fn token(&self, (id, secret): (&str, &str), scope: &str, resource: &str) -> String {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", scope)
            .append_pair("resource", resource)
            .finish();
        let response = self
            .client
            .post(format!("{}/token", self.issuer()))
            .basic_auth(id, Some(secret))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST /token reaches the provider");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON token response");
        assert_eq!(status, 200, "token request refused: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// How many times `/jwks` was fetched since this provider process started.
    async fn jwks_fetches(&self) -> u64 {
        let body: Value = self
            .client
            .get(format!("{}/test/jwks-count", self.issuer()))
            .send()
            .await
            .expect("GET /test/jwks-count")
            .json()
            .await
            .expect("JSON");
        body["count"].as_u64().expect("count")
    }

    async fn spawn(&self, key: &SigningKey) -> Process {
        let script = oidc_dir().join("provider.mjs");
        assert!(
            oidc_dir().join("node_modules/oidc-provider").is_dir(),
            "tests/oidc/node_modules is missing: {INSTALL_HINT}"
        );
        let key_file = self.dir.path().join(format!("key-{}.pem", now_nanos()));
        std::fs::write(&key_file, &key.pkcs8_pem).expect("write the provider's key");
        let mut command = Command::new("node");
        command
            .arg(&script)
            .arg(self.port.to_string())
            .arg(&key_file)
            .current_dir(oidc_dir());
        let mut process = Process::spawn("the OIDC provider", &mut command)
            .unwrap_or_else(|e| panic!("cannot run node: {e}; {INSTALL_HINT}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = process.log();
            if output.contains(&format!("listening {}", self.port)) {
                return process;
            }
            let exited = process.exit_status().is_some();
            assert!(
                !exited && Instant::now() < deadline,
                "the OIDC provider did not start (exited: {exited}); {INSTALL_HINT}\n{output}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
