//! Akash provider-API tokens (auth.akash) end to end: tokens minted by the real Akash SDK (npm
//! `@akashnetwork/chain-sdk`, run with node from tests/akash/) get certificates from a real
//! Pebble through the API, for both algorithms and several lease shapes; hostile variants of
//! the same tokens are refused with 401 (never 500); the principals, the domain policy and the
//! audience apply.
//!
//! Needs node (20+) and `tests/akash/node_modules` (`scripts/install-test-deps.sh`), and Pebble:
//! without them these tests FAIL with an install hint, never skip.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common;
use crate::common::akash as sdk;
use common::service::{Service, json};
use common::{Pebble, PebbleOptions};
use sdk::{
    WALLET_A, WALLET_B, WALLET_C, WALLET_D, akash_yaml, change_one_char, expect_error,
    flip_one_byte, get_cert, mint, now, post_cert, with_der_signature, with_header, with_high_s,
};

/// Names principal A may request.
const DOMAINS_A: &str = r#"["akash.example.test", "*.akash.example.test"]"#;

/// The lease shapes the tests mint, by name.
fn lease_shapes(provider: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("full", json!({"access": "full"})),
        (
            "scoped",
            json!({"access": "scoped", "scope": ["send-manifest", "logs", "status"]}),
        ),
        (
            "granular-full",
            json!({"access": "granular", "permissions": [{"provider": provider, "access": "full"}]}),
        ),
        (
            "granular-deployments",
            json!({"access": "granular", "permissions": [{
                "provider": provider, "access": "granular",
                "deployments": [
                    {"dseq": 1234, "gseq": 1, "oseq": 1, "scope": ["logs", "shell"], "services": ["web", "db"]},
                    {"dseq": 99, "scope": ["status"], "services": ["api"]}
                ]
            }]}),
        ),
    ]
}

/// Every (algorithm, lease shape) token of wallet A, 10 minutes long, named `ALG/shape`.
fn sdk_tokens() -> sdk::Minted {
    // The provider address inside granular shapes: wallet C's (any valid address).
    let provider = mint(&json!({"wallets": {"c": WALLET_C}, "tokens": []}))
        .address("c")
        .to_owned();
    let now = now();
    let mut tokens = Vec::new();
    for alg in ["ES256K", "ES256KADR36"] {
        for (shape, leases) in lease_shapes(&provider) {
            tokens.push(json!({
                "name": format!("{alg}/{shape}"), "wallet": "a", "alg": alg,
                "leases": leases, "exp": now + 600, "jti": format!("{alg}-{shape}")
            }));
        }
    }
    mint(&json!({"wallets": {"a": WALLET_A}, "tokens": tokens}))
}

async fn start(pebble: &Pebble, akash: &str) -> Service {
    let section = akash_yaml(akash);
    Service::start_with(pebble, "30s", |yaml| yaml + &section).await
}

#[tokio::test]
async fn sdk_tokens_of_both_algorithms_and_every_lease_shape_get_certificates_from_pebble() {
    let minted = sdk_tokens();
    let a = minted.address("a").to_owned();
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = start(
        &pebble,
        &format!("principals:\n  - address: {a}\n    domains: {DOMAINS_A}"),
    )
    .await;
    let client = service.client();
    let mut issued = 0;
    let mut names: Vec<String> = Vec::new();
    for (name, token) in &minted.tokens {
        // One certificate per token: its own name under the principal's wildcard.
        let host = format!(
            "{}.akash.example.test",
            name.replace('/', "-").to_lowercase()
        );
        let response = post_cert(client, &service.base, token, &[&host]).await;
        let status = response.status();
        let body = json(response).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["domains"], json!([host]), "{name}");
        assert!(
            body["certificate"]
                .as_str()
                .is_some_and(|pem| pem.contains("BEGIN CERTIFICATE")),
            "{name}"
        );
        issued += 1;
        // The same token again: authenticated from the verified-token cache, served stored.
        let response = get_cert(client, &service.base, token, &[&host]).await;
        assert_eq!(response.status(), 200, "{name} GET");
        names.push(host);
    }
    assert_eq!(issued, 8, "2 algorithms x 4 lease shapes");
    assert_eq!(
        pebble.issued_count(),
        8,
        "each token got its own certificate"
    );
    // The principal's patterns apply: a name outside them is 403, like a PSK's.
    let token = minted.token("ES256K/full");
    let response = post_cert(client, &service.base, token, &["other.example.test"]).await;
    let body = expect_error(response, 403, "domain_not_allowed", token).await;
    assert!(
        body["message"].as_str().unwrap_or_default().contains(&a),
        "{body}"
    );
}

#[tokio::test]
async fn hostile_variants_of_sdk_tokens_are_401_never_500() {
    let now = now();
    let mut specs = Vec::new();
    for alg in ["ES256K", "ES256KADR36"] {
        specs.push(
            json!({"name": format!("{alg}/good"), "wallet": "a", "alg": alg, "exp": now + 600}),
        );
        specs.push(json!({"name": format!("{alg}/other-key"), "wallet": "a", "signWith": "b", "alg": alg, "exp": now + 600}));
        // The SDK's default: one hour, more than maxTokenLifetime's 15 minutes.
        specs.push(json!({"name": format!("{alg}/one-hour"), "wallet": "a", "alg": alg}));
        specs.push(
            json!({"name": format!("{alg}/stranger"), "wallet": "b", "alg": alg, "exp": now + 600}),
        );
    }
    let minted = mint(&json!({"wallets": {"a": WALLET_A, "b": WALLET_B}, "tokens": specs}));
    let a = minted.address("a").to_owned();
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = start(
        &pebble,
        &format!("leeway: 0s\nprincipals:\n  - address: {a}\n    domains: {DOMAINS_A}"),
    )
    .await;
    let client = service.client();
    let names = ["akash.example.test"];
    // Short tokens, minted now: accepted (and cached) while valid, refused once exp has passed
    // (leeway 0s), checked at the end.
    let short_exp = sdk::now() + 4;
    let short = mint(&json!({"wallets": {"a": WALLET_A}, "tokens": [
        {"name": "ES256K", "wallet": "a", "alg": "ES256K", "exp": short_exp},
        {"name": "ES256KADR36", "wallet": "a", "alg": "ES256KADR36", "exp": short_exp},
    ]}));
    for alg in ["ES256K", "ES256KADR36"] {
        let token = short.token(alg);
        expect_error(
            get_cert(client, &service.base, token, &names).await,
            404,
            "not_found",
            token,
        )
        .await;
    }
    for alg in ["ES256K", "ES256KADR36"] {
        let good = minted.token(&format!("{alg}/good"));
        // Authenticated and authorised: nothing stored yet.
        let response = get_cert(client, &service.base, good, &names).await;
        expect_error(response, 404, "not_found", good).await;

        let mut hostile: Vec<(String, String, &str)> = vec![
            (
                "another key".into(),
                minted.token(&format!("{alg}/other-key")).into(),
                "signature",
            ),
            ("high S".into(), with_high_s(good), "high S"),
            ("DER signature".into(), with_der_signature(good), "DER"),
            (
                "one hour (the SDK's default)".into(),
                minted.token(&format!("{alg}/one-hour")).into(),
                "1 hour",
            ),
            (
                "alg none".into(),
                with_header(good, r#"{"alg":"none","typ":"JWT"}"#),
                "Bearer",
            ),
            (
                "the other Akash alg".into(),
                with_header(
                    good,
                    &format!(
                        r#"{{"alg":"{}","typ":"JWT"}}"#,
                        if alg == "ES256K" {
                            "ES256KADR36"
                        } else {
                            "ES256K"
                        }
                    ),
                ),
                "signature",
            ),
            (
                "two segments".into(),
                good.rsplit_once('.')
                    .map(|(i, _)| i.to_owned())
                    .unwrap_or_default(),
                "",
            ),
            ("padded signature".into(), format!("{good}="), "base64url"),
        ];
        let segments = good.split('.').map(str::len).collect::<Vec<_>>();
        for (segment, length) in segments.iter().enumerate() {
            for index in [0, length / 2, length - 1] {
                hostile.push((
                    format!("char {index} of segment {segment} changed"),
                    change_one_char(good, segment, index),
                    "",
                ));
            }
        }
        for (segment, index) in [(1, 10), (1, 40), (2, 0), (2, 31), (2, 32), (2, 63)] {
            hostile.push((
                format!("byte {index} of segment {segment} flipped"),
                flip_one_byte(good, segment, index),
                "",
            ));
        }
        for (what, token, reason) in &hostile {
            assert_ne!(token, good, "{alg}: {what}");
            let response = get_cert(client, &service.base, token, &names).await;
            let body = expect_error(response, 401, "unauthorized", token).await;
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains(reason), "{alg}, {what}: {message}");
        }

        // A valid token of a wallet that is not a principal: 403.
        let stranger = minted.token(&format!("{alg}/stranger"));
        let body = expect_error(
            get_cert(client, &service.base, stranger, &names).await,
            403,
            "insufficient_scope",
            stranger,
        )
        .await;
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("auth.akash.principals"),
            "{body}"
        );
    }

    while sdk::now() < short_exp {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for alg in ["ES256K", "ES256KADR36"] {
        let token = short.token(alg);
        let body = expect_error(
            get_cert(client, &service.base, token, &names).await,
            401,
            "unauthorized",
            token,
        )
        .await;
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("expired"),
            "{body}"
        );
    }
    assert_eq!(pebble.orders_count(), 0, "no hostile token reached the CA");
}

#[tokio::test]
async fn the_audience_asks_for_a_granular_token_naming_certfleet() {
    let minted =
        mint(&json!({"wallets": {"certfleet": WALLET_D, "other": WALLET_C}, "tokens": []}));
    let (me, other) = (
        minted.address("certfleet").to_owned(),
        minted.address("other").to_owned(),
    );
    let now = now();
    let granular = |provider: &str| json!({"access": "granular", "permissions": [{"provider": provider, "access": "full"}]});
    let scoped_for_me = json!({"access": "granular", "permissions": [
        {"provider": other, "access": "full"},
        {"provider": me, "access": "scoped", "scope": ["status"]},
    ]});
    let tokens = json!([
        {"name": "for-me", "wallet": "a", "alg": "ES256KADR36", "exp": now + 600, "leases": granular(&me)},
        {"name": "for-me-among-others", "wallet": "a", "alg": "ES256K", "exp": now + 600, "leases": scoped_for_me},
        {"name": "for-another", "wallet": "a", "alg": "ES256K", "exp": now + 600, "leases": granular(&other)},
        {"name": "full", "wallet": "a", "alg": "ES256KADR36", "exp": now + 600},
        {"name": "scoped", "wallet": "a", "alg": "ES256K", "exp": now + 600, "leases": {"access": "scoped", "scope": ["logs"]}},
    ]);
    let minted = mint(&json!({"wallets": {"a": WALLET_A}, "tokens": tokens}));
    let a = minted.address("a");
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = start(
        &pebble,
        &format!("audience: {me}\nprincipals:\n  - address: {a}\n    domains: {DOMAINS_A}"),
    )
    .await;
    let client = service.client();
    let names = ["www.akash.example.test"];
    for name in ["for-me", "for-me-among-others"] {
        let token = minted.token(name);
        let response = post_cert(client, &service.base, token, &names).await;
        assert_eq!(
            response.status(),
            200,
            "{name}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    for name in ["for-another", "full", "scoped"] {
        let token = minted.token(name);
        let body = expect_error(
            get_cert(client, &service.base, token, &names).await,
            401,
            "unauthorized",
            token,
        )
        .await;
        assert!(
            body["message"].as_str().unwrap_or_default().contains(&me),
            "{name}: {body}"
        );
    }
}

#[tokio::test]
async fn akash_and_psk_clients_share_one_service() {
    let minted = mint(&json!({"wallets": {"a": WALLET_A}, "tokens": [
        {"name": "t", "wallet": "a", "alg": "ES256K", "exp": now() + 600}
    ]}));
    let a = minted.address("a");
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = start(
        &pebble,
        &format!("principals:\n  - address: {a}\n    domains: [\"*\"]"),
    )
    .await;
    let token = minted.token("t");
    let response = post_cert(
        service.client(),
        &service.base,
        token,
        &["shared.example.test"],
    )
    .await;
    assert_eq!(response.status(), 200);
    // The certificate the Akash client got is the one a PSK client of the same names gets.
    let response = service
        .get(
            "/api/certificate?domain=shared.example.test",
            common::service::ADMIN_KEY,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["cached"], true);
    assert_eq!(pebble.issued_count(), 1);
}

#[tokio::test]
async fn without_auth_akash_a_token_is_401_naming_the_section() {
    let minted = mint(&json!({"wallets": {"a": WALLET_A}, "tokens": [
        {"name": "t", "wallet": "a", "alg": "ES256KADR36", "exp": now() + 600}
    ]}));
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let token = minted.token("t");
    let response = get_cert(service.client(), &service.base, token, &["a.example.test"]).await;
    let body = expect_error(response, 401, "unauthorized", token).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("auth.akash is not configured"),
        "{body}"
    );
}
