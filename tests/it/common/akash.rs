//! Shared by tests/it/akash.rs and tests/it/akash_chain.rs: tokens minted by the real Akash SDK
//! (`node tests/akash/mint.mjs`), an in-process fake of the Cosmos REST auth module, and HTTP
//! helpers for bearer requests.
//!
//! Needs node (20+) and `tests/akash/node_modules` (`scripts/install-test-deps.sh` runs
//! `npm ci --prefix tests/akash`): without them these tests FAIL with that hint, never skip.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const INSTALL_HINT: &str = "the Akash tests need node (20+) and the Akash SDK's packages: run \
                                scripts/install-test-deps.sh (it runs `npm ci --prefix tests/akash`)";

/// BIP-39 test mnemonics (valid checksums): wallets that exist only in these tests.
pub const WALLET_A: &str = "surround miss nominee dream gap cross assault thank captain prosper \
                            drop duty group candy wealth weather scale put";
pub const WALLET_B: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
pub const WALLET_C: &str =
    "legal winner thank year wave sausage worth useful legal winner thank yellow";
pub const WALLET_D: &str =
    "letter advice cage absurd amount doctor acoustic avoid letter advice cage above";

/// What the SDK minted: each wallet's address and public key, each token by name.
#[derive(Debug, Clone)]
pub struct Minted {
    pub wallets: HashMap<String, (String, String)>,
    pub tokens: HashMap<String, String>,
}

impl Minted {
    /// The `akash1...` address of a wallet of the request.
    pub fn address(&self, wallet: &str) -> &str {
        &self.wallets[wallet].0
    }

    /// The base64 33-byte public key of a wallet of the request.
    pub fn pubkey(&self, wallet: &str) -> &str {
        &self.wallets[wallet].1
    }

    /// A token of the request.
    pub fn token(&self, name: &str) -> &str {
        self.tokens
            .get(name)
            .unwrap_or_else(|| panic!("no token {name} was minted"))
    }
}

fn akash_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/akash")
}

/// Runs the Akash SDK (`node mint.mjs`) on `request` (see mint.mjs for its shape).
pub fn mint(request: &Value) -> Minted {
    for package in ["@akashnetwork/chain-sdk", "@cosmjs/amino", "@cosmjs/crypto"] {
        assert!(
            akash_dir().join("node_modules").join(package).is_dir(),
            "tests/akash/node_modules/{package} is missing: {INSTALL_HINT}"
        );
    }
    let mut child = Command::new("node")
        .arg("mint.mjs")
        .current_dir(akash_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node: {e}; {INSTALL_HINT}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the request to node");
    let output = child.wait_with_output().expect("node runs");
    assert!(
        output.status.success(),
        "the Akash SDK failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("mint.mjs prints JSON");
    let wallets = answer["wallets"]
        .as_object()
        .expect("wallets")
        .iter()
        .map(|(name, w)| {
            let field = |k: &str| w[k].as_str().expect("a string").to_owned();
            (name.clone(), (field("address"), field("pubkey")))
        })
        .collect();
    let tokens = answer["tokens"]
        .as_object()
        .expect("tokens")
        .iter()
        .map(|(name, t)| (name.clone(), t.as_str().expect("a token").to_owned()))
        .collect();
    Minted { wallets, tokens }
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    certfleet::util::clock::now()
}

/// The YAML of an `auth.akash` section (indented under `auth:`).
pub fn akash_yaml(lines: &str) -> String {
    let mut out = String::from("  akash:\n");
    for line in lines.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Token surgery: the hostile variants of a real token

/// The token with one character of `segment` (0 header, 1 payload, 2 signature) changed at
/// `index` within the segment.
pub fn change_one_char(token: &str, segment: usize, index: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut chars: Vec<char> = parts[segment].chars().collect();
    let i = index.min(chars.len() - 1);
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    parts[segment] = chars.into_iter().collect();
    parts.join(".")
}

/// The token with one byte of the decoded `segment` flipped (still valid base64url).
pub fn flip_one_byte(token: &str, segment: usize, index: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut bytes = URL_SAFE_NO_PAD.decode(&parts[segment]).expect("base64url");
    let i = index.min(bytes.len() - 1);
    bytes[i] ^= 0x01;
    parts[segment] = URL_SAFE_NO_PAD.encode(bytes);
    parts.join(".")
}

/// The same signature with S replaced by n - S: still a valid ECDSA signature of the same
/// message (malleability), but high-S, which Akash refuses.
pub fn with_high_s(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').expect("three segments");
    let bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    let signature = k256::ecdsa::Signature::from_slice(&bytes).expect("R||S");
    let high = k256::ecdsa::Signature::from_scalars(
        signature.r().to_bytes(),
        (-*signature.s()).to_bytes(),
    )
    .expect("a high-S signature");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(high.to_bytes()))
}

/// The same signature DER-encoded (what a generic JOSE library must not accept for ES256K).
pub fn with_der_signature(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').expect("three segments");
    let bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    let signature = k256::ecdsa::Signature::from_slice(&bytes).expect("R||S");
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_der().as_bytes())
    )
}

/// The token with its header replaced by `header` (JSON), payload and signature kept.
pub fn with_header(token: &str, header: &str) -> String {
    let (_, rest) = token.split_once('.').expect("three segments");
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header))
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

/// `GET /api/certificate?domain=...` with `Authorization: Bearer token`.
pub async fn get_cert(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    names: &[&str],
) -> reqwest::Response {
    let query: Vec<String> = names.iter().map(|n| format!("domain={n}")).collect();
    client
        .get(format!("{base}/api/certificate?{}", query.join("&")))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET reaches certfleet")
}

/// `POST /api/certificate {"domains": names}` with `Authorization: Bearer token`.
pub async fn post_cert(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    names: &[&str],
) -> reqwest::Response {
    client
        .post(format!("{base}/api/certificate"))
        .bearer_auth(token)
        .json(&json!({ "domains": names }))
        .send()
        .await
        .expect("POST reaches certfleet")
}

/// Asserts the status and error code; returns the body. The body never holds the token.
pub async fn expect_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
    token: &str,
) -> Value {
    let got = response.status().as_u16();
    let www = response.headers().get("www-authenticate").cloned();
    let text = response.text().await.expect("a body");
    assert_eq!(got, status, "{text}");
    let sig = token.rsplit('.').next().unwrap_or(token);
    assert!(
        !text.contains(sig),
        "the error body quotes the token: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("a JSON error body");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    if status == 401 {
        assert!(www.is_some(), "401 without WWW-Authenticate");
    }
    body
}

// ---------------------------------------------------------------------------------------------
// The Cosmos REST auth module, faked in-process (the real one needs a chain node)

/// What the fake answers for one address.
#[derive(Debug, Clone)]
pub enum Account {
    /// `/cosmos.auth.v1beta1.BaseAccount` with this secp256k1 key (base64).
    Base(String),
    /// `/cosmos.vesting.v1beta1.ContinuousVestingAccount`, the key in its base account.
    Vesting(String),
    /// A type whose key `accounts` does not show where the SDK's types put it: only
    /// `account_info` (flattened) tells it.
    Exotic(String),
    /// A BaseAccount whose `pub_key` is null: it never sent a transaction.
    NullKey,
    /// An ed25519 key (not secp256k1).
    Ed25519,
}

/// A Cosmos REST endpoint on loopback: `GET /cosmos/auth/v1beta1/accounts/{address}` and
/// `.../account_info/{address}`, in the shapes a Cosmos SDK 0.47+ node answers with. Unknown
/// addresses get the gRPC gateway's 404 (`code` 5); `set_down(true)` answers 500 to everything.
#[derive(Debug, Clone)]
pub struct CosmosFake {
    pub url: String,
    state: FakeState,
}

#[derive(Debug, Clone, Default)]
struct FakeState {
    accounts: Arc<Mutex<HashMap<String, Account>>>,
    down: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl CosmosFake {
    pub async fn start() -> CosmosFake {
        let state = FakeState::default();
        let router = Router::new()
            .route("/cosmos/auth/v1beta1/accounts/{address}", get(accounts))
            .route(
                "/cosmos/auth/v1beta1/account_info/{address}",
                get(account_info),
            )
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        CosmosFake { url, state }
    }

    pub fn set(&self, address: &str, account: Account) {
        self.state
            .accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(address.to_owned(), account);
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Every path asked so far.
    pub fn requests(&self) -> Vec<String> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests named `address`.
    pub fn requests_for(&self, address: &str) -> usize {
        self.requests()
            .iter()
            .filter(|p| p.ends_with(address))
            .count()
    }
}

fn pub_key(key: &str) -> Value {
    json!({"@type": "/cosmos.crypto.secp256k1.PubKey", "key": key})
}

fn base_account(address: &str, key: &Value) -> Value {
    json!({
        "@type": "/cosmos.auth.v1beta1.BaseAccount",
        "address": address, "pub_key": key, "account_number": "84213", "sequence": "17"
    })
}

/// What the fake knows of an address.
enum Looked {
    /// The fake is down: 500.
    Down,
    /// No such account: 404.
    Missing,
    Found(Account),
}

fn look(state: &FakeState, kind: &str, address: &str) -> Looked {
    state
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(format!("/cosmos/auth/v1beta1/{kind}/{address}"));
    if state.down.load(Ordering::SeqCst) {
        return Looked::Down;
    }
    state
        .accounts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(address)
        .cloned()
        .map_or(Looked::Missing, Looked::Found)
}

fn internal_error() -> Response {
    let body = json!({"code": 13, "message": "internal error", "details": []});
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

fn not_found(address: &str) -> Response {
    let body = json!({
        "code": 5,
        "message": format!("rpc error: code = NotFound desc = account {address} not found: key not found"),
        "details": []
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn accounts(State(state): State<FakeState>, UrlPath(address): UrlPath<String>) -> Response {
    let account = match look(&state, "accounts", &address) {
        Looked::Found(account) => account,
        Looked::Missing => return not_found(&address),
        Looked::Down => return internal_error(),
    };
    let account = match account {
        Account::Base(key) => base_account(&address, &pub_key(&key)),
        Account::NullKey => base_account(&address, &Value::Null),
        Account::Ed25519 => base_account(
            &address,
            &json!({"@type": "/cosmos.crypto.ed25519.PubKey", "key": "11111111111111111111111111111111111111111111"}),
        ),
        Account::Vesting(key) => json!({
            "@type": "/cosmos.vesting.v1beta1.ContinuousVestingAccount",
            "base_vesting_account": {
                "base_account": {
                    "address": address, "pub_key": pub_key(&key),
                    "account_number": "1203", "sequence": "4"
                },
                "original_vesting": [{"denom": "uakt", "amount": "5000000000"}],
                "delegated_free": [], "delegated_vesting": [], "end_time": "1767225600"
            },
            "start_time": "1704067200"
        }),
        Account::Exotic(_) => json!({
            "@type": "/akash.test.v1.WrappedAccount",
            "wrapped": {"address": address}
        }),
    };
    axum::Json(json!({ "account": account })).into_response()
}

async fn account_info(
    State(state): State<FakeState>,
    UrlPath(address): UrlPath<String>,
) -> Response {
    let account = match look(&state, "account_info", &address) {
        Looked::Found(account) => account,
        Looked::Missing => return not_found(&address),
        Looked::Down => return internal_error(),
    };
    let key = match account {
        Account::Base(key) | Account::Vesting(key) | Account::Exotic(key) => pub_key(&key),
        Account::NullKey => Value::Null,
        Account::Ed25519 => json!({"@type": "/cosmos.crypto.ed25519.PubKey", "key": "x"}),
    };
    axum::Json(json!({"info": {
        "address": address, "pub_key": key, "account_number": "77", "sequence": "1"
    }}))
    .into_response()
}
